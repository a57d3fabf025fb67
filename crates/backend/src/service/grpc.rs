//! gRPC on the example instance, beside its HTTP routes on the same port (h2c):
//! `foresight.backend.v1.Backend` (`proto/backend.proto`: `Call`, unary, and `Stream`, server
//! streaming) through the same capacity model as HTTP requests, and the standard health check,
//! `grpc.health.v1.Health/Check`. The messages are derived with prost; the 5-byte gRPC
//! framing is done here. A refused call (full queue, starting) is UNAVAILABLE, trailers-only.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Frame;
use prost::Message;

use super::*;

const CALL: &str = "/foresight.backend.v1.Backend/Call";
const STREAM: &str = "/foresight.backend.v1.Backend/Stream";
const HEALTH: &str = "/grpc.health.v1.Health/Check";
/// The service name the health check knows (besides "", the whole server).
const SERVICE: &str = "foresight.backend.v1.Backend";
/// Largest request message read.
const MAX_MESSAGE: usize = 64 * 1024;
/// Most replies one `Stream` call asks for.
pub const MAX_STREAM: u32 = 1000;

/// `foresight.backend.v1.CallRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct CallRequest {
    /// The route whose service time applies; empty: the first route.
    #[prost(string, tag = "1")]
    pub route: String,
    /// A constant service time in milliseconds; 0: drawn.
    #[prost(uint32, tag = "2")]
    pub ms: u32,
    /// Replies of `Stream` (1–1000; 0: 1).
    #[prost(uint32, tag = "3")]
    pub count: u32,
}

/// `foresight.backend.v1.CallReply`.
#[derive(Clone, PartialEq, Message)]
pub struct CallReply {
    /// The instance that served it.
    #[prost(string, tag = "1")]
    pub instance: String,
    /// The route served.
    #[prost(string, tag = "2")]
    pub route: String,
    /// The reply's place in its stream, from 0.
    #[prost(uint32, tag = "3")]
    pub seq: u32,
}

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

/// `grpc.health.v1.HealthCheckResponse` (1: SERVING, 2: NOT_SERVING).
#[derive(Clone, PartialEq, Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// gRPC status codes used here.
const OK: u8 = 0;
const INVALID_ARGUMENT: u8 = 3;
const NOT_FOUND: u8 = 5;
const UNIMPLEMENTED: u8 = 12;
const UNAVAILABLE: u8 = 14;

/// Whether a request is a gRPC call (`content-type: application/grpc…`).
pub(super) fn is_call(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

impl State {
    /// Answers one gRPC call.
    pub(super) async fn grpc(self: &Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let message = match read_message(req.into_body()).await {
            Ok(m) => m,
            Err(why) => return status_only(INVALID_ARGUMENT, why),
        };
        match path.as_str() {
            HEALTH => {
                let Ok(r) = HealthCheckRequest::decode(message) else {
                    return status_only(INVALID_ARGUMENT, "not a HealthCheckRequest");
                };
                if !(r.service.is_empty() || r.service == SERVICE) {
                    return status_only(NOT_FOUND, "unknown service");
                }
                let status = if self.ready() { 1 } else { 2 };
                self.answer(vec![frame(&HealthCheckResponse { status })], OK, "")
            }
            CALL | STREAM => {
                let Ok(r) = CallRequest::decode(message) else {
                    return status_only(INVALID_ARGUMENT, "not a CallRequest");
                };
                let Some(route) = self.route(&r.route) else {
                    return status_only(NOT_FOUND, "no such route");
                };
                let forced = (r.ms > 0).then(|| Duration::from_millis(u64::from(r.ms)));
                if path == CALL {
                    let arrived = Instant::now();
                    let status = self.serve(route.mean, forced).await;
                    self.record(&route.path, status, arrived);
                    if status != StatusCode::OK {
                        return status_only(UNAVAILABLE, self.refusal());
                    }
                    self.answer(vec![frame(&self.reply(&route.path, 0))], OK, "")
                } else {
                    if r.count > MAX_STREAM {
                        return status_only(INVALID_ARGUMENT, "count is at most 1000");
                    }
                    self.stream(route.clone(), forced, r.count.max(1))
                }
            }
            _ => status_only(UNIMPLEMENTED, "no such method"),
        }
    }

    fn route(&self, path: &str) -> Option<&Route> {
        if path.is_empty() {
            self.config.routes.first()
        } else {
            self.config.routes.iter().find(|r| r.path == path)
        }
    }

    fn reply(&self, route: &str, seq: u32) -> CallReply {
        CallReply {
            instance: self.name.to_str().unwrap_or_default().to_string(),
            route: route.to_string(),
            seq,
        }
    }

    fn refusal(&self) -> &'static str {
        if self.ready() {
            "queue full"
        } else {
            "starting"
        }
    }

    /// A whole answer: `messages`, then the status in the trailers.
    fn answer(&self, messages: Vec<Bytes>, code: u8, msg: &str) -> Response<Body> {
        let (tx, body) = Frames::channel(messages.len() + 1);
        for m in messages {
            let _ = tx.try_send(Frame::data(m));
        }
        let _ = tx.try_send(Frame::trailers(trailers(code, msg)));
        self.respond(body)
    }

    /// `count` replies, each through the capacity model in turn, as they are served; a
    /// refusal ends the stream UNAVAILABLE.
    fn stream(
        self: &Arc<Self>,
        route: Route,
        forced: Option<Duration>,
        count: u32,
    ) -> Response<Body> {
        let (tx, body) = Frames::channel(4);
        let state = self.clone();
        tokio::spawn(async move {
            for seq in 0..count {
                let arrived = Instant::now();
                let status = state.serve(route.mean, forced).await;
                state.record(&route.path, status, arrived);
                if status != StatusCode::OK {
                    let t = trailers(UNAVAILABLE, state.refusal());
                    let _ = tx.send(Frame::trailers(t)).await;
                    return;
                }
                let m = frame(&state.reply(&route.path, seq));
                if tx.send(Frame::data(m)).await.is_err() {
                    return; // the client went away
                }
            }
            let _ = tx.send(Frame::trailers(trailers(OK, ""))).await;
        });
        self.respond(body)
    }

    fn respond(&self, body: Frames) -> Response<Body> {
        let mut r = Response::new(body.boxed());
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        r.headers_mut().insert(INSTANCE_HEADER, self.name.clone());
        r
    }
}

/// A response body fed by a channel of frames.
struct Frames(tokio::sync::mpsc::Receiver<Frame<Bytes>>);

impl Frames {
    fn channel(capacity: usize) -> (tokio::sync::mpsc::Sender<Frame<Bytes>>, Frames) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        (tx, Frames(rx))
    }
}

impl hyper::body::Body for Frames {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        self.0.poll_recv(cx).map(|f| f.map(Ok))
    }
}

/// The one uncompressed message of a unary request body, at most [`MAX_MESSAGE`] bytes.
async fn read_message(body: Incoming) -> Result<Bytes, &'static str> {
    let limited = http_body_util::Limited::new(body, MAX_MESSAGE + 5);
    let bytes = limited
        .collect()
        .await
        .map_err(|_| "the request is larger than 64 KiB or broke off")?
        .to_bytes();
    match bytes.split_first_chunk::<5>() {
        Some(([0, l @ ..], msg)) if u32::from_be_bytes(*l) as usize == msg.len() => {
            Ok(bytes.slice(5..))
        }
        Some(([1, ..], _)) => Err("compressed messages are not accepted"),
        _ => Err("not one length-prefixed message"),
    }
}

/// `m` as a length-prefixed, uncompressed gRPC message.
fn frame(m: &impl Message) -> Bytes {
    let len = m.encoded_len();
    let mut b = BytesMut::with_capacity(5 + len);
    b.put_u8(0);
    b.put_u32(len as u32);
    m.encode(&mut b).expect("capacity reserved");
    b.freeze()
}

fn trailers(code: u8, msg: &str) -> http::HeaderMap {
    let mut t = http::HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from(u16::from(code)));
    if let Ok(v) = HeaderValue::from_str(msg) {
        if !msg.is_empty() {
            t.insert("grpc-message", v);
        }
    }
    t
}

/// A trailers-only answer: the status in the head, no body.
fn status_only(code: u8, msg: &str) -> Response<Body> {
    let mut r = text(StatusCode::OK, "");
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    for (k, v) in &trailers(code, msg) {
        h.insert(k, v.clone());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_frame_as_grpc_writes_them() {
        let r = CallReply {
            instance: "a".into(),
            route: "/p".into(),
            seq: 2,
        };
        let f = frame(&r);
        assert_eq!(f[0], 0);
        assert_eq!(
            u32::from_be_bytes([f[1], f[2], f[3], f[4]]) as usize,
            f.len() - 5
        );
        assert_eq!(CallReply::decode(&f[5..]).unwrap(), r);
        // Field numbers as in proto/backend.proto: 1 instance, 2 route, 3 seq.
        assert_eq!(&f[5..], &[0x0a, 1, b'a', 0x12, 2, b'/', b'p', 0x18, 2]);
        let t = trailers(UNAVAILABLE, "queue full");
        assert_eq!(t["grpc-status"], "14");
        assert_eq!(t["grpc-message"], "queue full");
        assert!(!trailers(OK, "").contains_key("grpc-message"));
    }
}
