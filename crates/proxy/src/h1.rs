//! The client side of HTTP/1.1 (RFC 9112) towards instances, written and read by the request's
//! own task.
//!
//! Why not hyper's client: it runs every upstream connection as a task of its own and passes
//! each request to it, and the response back, through three channels (the request, the response
//! head, the body). Each handoff wakes a task, and under callgrind that connection task was 45%
//! of the proxy's user-space instructions per request. HAProxy and NGINX read and write the
//! upstream socket from the code that handles the request; so does this module. The request's
//! future writes the request head (and body), reads and parses the response head (httparse, the
//! parser hyper uses), and the response body is read from the socket as the client's side of
//! the proxy polls it. What a client must handle is handled: `Content-Length`, chunked and
//! close-delimited bodies, interim 1xx responses, bodiless responses (HEAD, 204, 304),
//! keep-alive by version and `Connection`, and limits on head and chunk-line sizes.
//!
//! A request body is written while the response is read: an instance may answer before it has
//! read the whole body (a 413, an early error, a handler that ignores the body). Such a response
//! is relayed as it is and the connection is not reused, since the instance and the proxy no
//! longer agree on where the next request starts; a client that uploads too slowly for the
//! request timeout is told so (408) rather than held against the instance.
//!
//! A request to switch protocols (a WebSocket handshake) goes through [`Connection::switch`]:
//! a 101 hands the socket back for the tunnel. Not supported, by design of the proxy rather
//! than of this module: response trailers (read and dropped, as hyper's HTTP/1 server would
//! not send them to a client that did not ask).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::HeaderMap;
#[cfg(test)]
use http::header::HeaderValue;
use http::{Method, Response, StatusCode};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWriteExt};
#[cfg(test)]
use tokio::net::TcpStream;

use crate::stream::Stream;

use crate::deadline::{Cut, Watch};

mod chunked;
mod head;
#[cfg(test)]
mod props;
use chunked::{Chunked, Step};
use head::{encode_head, parse_head_as, BodyLength, Framing, Head};
#[cfg(test)]
use head::{parse_head, MAX_HEADERS};

/// Bytes of a response head accepted at most (interim responses included).
const MAX_HEAD: usize = 64 * 1024;
/// The read buffer grows by this much when it is full.
const READ_CHUNK: usize = 8 * 1024;

/// Why an exchange with an instance failed after its connection was made.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    /// Reading or writing the socket failed.
    #[error("upstream i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The instance closed the connection before a complete response head.
    #[error("upstream closed the connection before a complete response")]
    Closed {
        /// Whether any byte of a response had arrived.
        partial: bool,
        /// Whether writing the request failed (the instance had closed before reading it).
        at_write: bool,
    },
    /// The response is not valid HTTP/1.1.
    #[error("invalid response from upstream: {0}")]
    Invalid(&'static str),
    /// Reading the client's request body failed.
    #[error("client request body: {0}")]
    ClientBody(hyper::Error),
    /// The request's deadline passed while the client was still sending its body.
    #[error("the client's request body did not arrive before the request timeout")]
    ClientTimeout,
    /// The request's deadline passed before the response head.
    #[error("no response before the request timeout")]
    Timeout,
    /// An HTTP/2 response body from an instance failed (a reset stream, a lost connection).
    #[error("HTTP/2 response body: {0}")]
    Http2(hyper::Error),
}

/// One HTTP/1.1 connection to an instance, lent to one request at a time.
pub struct Connection {
    io: Stream,
    read: BytesMut,
    write: Vec<u8>,
    watch: Arc<Watch>,
    /// Whether it came from the idle pool (the instance may have closed it meanwhile).
    pub reused: bool,
}

/// How a request to switch protocols was answered.
pub enum Switched {
    /// 101: the head, the socket (now the new protocol's) and the bytes of it that came with
    /// the head.
    Yes(Response<()>, Stream, Bytes),
    /// Any other answer, relayed as a response.
    No(Response<Body>),
}

/// A request to send: what the request path has in a client request's parts.
pub struct Outgoing<'a> {
    /// Its method.
    pub method: &'a Method,
    /// Origin-form target: path and query.
    pub target: &'a str,
    /// Its header fields, hop-by-hop ones removed.
    pub headers: &'a HeaderMap,
    /// The Host to send when `headers` have none (an HTTP/1.0 client's request): the
    /// instance's `host:port`.
    pub default_host: &'a str,
}

impl Connection {
    /// A connection over a connected socket; `watch` is its deadline.
    #[cfg(test)]
    pub(crate) fn new(io: TcpStream, watch: Arc<Watch>) -> Self {
        Connection::over(Stream::Plain(io), watch)
    }

    /// A connection over a stream (plain or TLS); `watch` is its deadline.
    pub(crate) fn over(io: Stream, watch: Arc<Watch>) -> Self {
        Connection {
            io,
            read: BytesMut::new(),
            write: Vec::new(),
            watch,
            reused: false,
        }
    }

    /// Whether an idle connection can take a request: the instance has neither closed it nor
    /// sent anything unasked. Costs no system call unless the socket turned readable (tokio
    /// tracks readiness from the reactor's events).
    pub(crate) fn is_open(&self) -> bool {
        if !self.read.is_empty() || self.watch.expired() {
            return false;
        }
        self.io.is_idle_open()
    }

    /// Sends `req` with `body` and reads the response head, which must come before
    /// `deadline_ms` (see [`crate::deadline`]); the response's body reads from this connection.
    pub async fn send(
        mut self,
        req: Outgoing<'_>,
        body: Option<hyper::body::Incoming>,
        deadline_ms: u64,
    ) -> Result<Response<Body>, H1Error> {
        let watch = self.watch.clone();
        watch.arm(deadline_ms);
        let head_only = req.method == Method::HEAD;
        let awaiting_client = AtomicBool::new(false);
        let exchanged = Cut::new(
            self.exchange(req, body, head_only, &awaiting_client),
            &watch,
        )
        .await;
        watch.disarm();
        let head = exchanged.ok_or_else(|| {
            if awaiting_client.load(Ordering::Relaxed) {
                H1Error::ClientTimeout
            } else {
                H1Error::Timeout
            }
        })??;
        let (parts, ()) = head.response.into_parts();
        let framing = match head.framing {
            Framing::Length(0) => Framing::Done,
            f => f,
        };
        Ok(Response::from_parts(
            parts,
            Body {
                conn: Some(self),
                framing,
                keep_alive: head.keep_alive,
            },
        ))
    }

    /// Sends `req`, a bodiless request to switch protocols (`Upgrade`, with `Connection:
    /// upgrade` among its fields), and reads the answer's head before `deadline_ms`. A 101
    /// gives back the socket, with the bytes of the new protocol that came with the head;
    /// any other answer is an ordinary response.
    pub async fn switch(
        mut self,
        req: Outgoing<'_>,
        deadline_ms: u64,
    ) -> Result<Switched, H1Error> {
        let watch = self.watch.clone();
        watch.arm(deadline_ms);
        let head = Cut::new(
            async {
                encode_head(&mut self.write, &req, BodyLength::None);
                self.io.write_all(&self.write).await.map_err(at_write)?;
                let mut received = false;
                let Connection { io, read, .. } = &mut self;
                std::future::poll_fn(|cx| {
                    poll_head(Pin::new(&mut *io), read, cx, (false, true), &mut received)
                })
                .await
            },
            &watch,
        )
        .await;
        watch.disarm();
        let head = head.ok_or(H1Error::Timeout)??;
        let (parts, ()) = head.response.into_parts();
        if parts.status == StatusCode::SWITCHING_PROTOCOLS {
            let leftover = std::mem::take(&mut self.read).freeze();
            return Ok(Switched::Yes(
                Response::from_parts(parts, ()),
                self.io,
                leftover,
            ));
        }
        let framing = match head.framing {
            Framing::Length(0) => Framing::Done,
            f => f,
        };
        Ok(Switched::No(Response::from_parts(
            parts,
            Body {
                conn: Some(self),
                framing,
                keep_alive: head.keep_alive,
            },
        )))
    }

    /// Writes the request and reads the response head. A body is written while the head is
    /// awaited, so that an early answer is seen; `awaiting_client` is true while the client's
    /// next body bytes are awaited.
    async fn exchange(
        &mut self,
        req: Outgoing<'_>,
        body: Option<hyper::body::Incoming>,
        head_only: bool,
        awaiting_client: &AtomicBool,
    ) -> Result<Head, H1Error> {
        // The body's framing is decided by what the client's side of the proxy knows of its
        // length, never by a Content-Length field alone: a client's field that disagrees with
        // how its body was framed must not reach the instance (request smuggling).
        let length = match &body {
            None => BodyLength::None,
            Some(b) => b
                .size_hint()
                .exact()
                .map_or(BodyLength::Chunked, BodyLength::Exact),
        };
        encode_head(&mut self.write, &req, length);
        self.io.write_all(&self.write).await.map_err(at_write)?;
        let mut received = false;
        let Connection {
            io, read, write, ..
        } = self;
        let Some(body) = body else {
            return std::future::poll_fn(|cx| {
                poll_head(
                    Pin::new(&mut *io),
                    read,
                    cx,
                    (head_only, false),
                    &mut received,
                )
            })
            .await;
        };
        // Boxed: requests with bodies are the rarer kind, and this part of the future is
        // large (see `Forwarder::handle`).
        let chunked = length == BodyLength::Chunked;
        match io {
            Stream::Plain(tcp) => {
                let (rd, wr) = tcp.split();
                Box::pin(exchange_with_body(
                    rd,
                    wr,
                    read,
                    write,
                    (body, chunked),
                    head_only,
                    awaiting_client,
                ))
                .await
            }
            Stream::Tls(tls) => {
                let (rd, wr) = tokio::io::split(tls.as_mut());
                Box::pin(exchange_with_body(
                    rd,
                    wr,
                    read,
                    write,
                    (body, chunked),
                    head_only,
                    awaiting_client,
                ))
                .await
            }
        }
    }
}

/// [`Connection::exchange`] for a request with a body (`body.1`: sent chunked), once the head
/// is written: the body is sent while the response head is read.
async fn exchange_with_body<R: AsyncRead + Unpin, W: tokio::io::AsyncWrite + Unpin>(
    mut rd: R,
    mut wr: W,
    read: &mut BytesMut,
    write: &mut Vec<u8>,
    (body, chunked): (hyper::body::Incoming, bool),
    head_only: bool,
    awaiting_client: &AtomicBool,
) -> Result<Head, H1Error> {
    let mut received = false;
    let mut body = body;
    let (head, body_sent) = {
        let send = send_body(&mut wr, write, &mut body, chunked, awaiting_client);
        let head = std::future::poll_fn(|cx| {
            poll_head(
                Pin::new(&mut rd),
                read,
                cx,
                (head_only, false),
                &mut received,
            )
        });
        tokio::pin!(send, head);
        tokio::select! {
            biased;
            sent = &mut send => match sent {
                Ok(()) => (head.await, true),
                Err(Sending::Client(e)) => return Err(H1Error::ClientBody(e)),
                // The instance stopped reading (it answered and closed): its answer, if any.
                Err(Sending::Upstream(e)) => match head.await {
                    Err(H1Error::Closed { partial: false, .. }) => return Err(at_write(e)),
                    h => (h, false),
                },
            },
            h = &mut head => (h, false),
        }
    };
    let mut head = head?;
    if !body_sent {
        // The instance answered before taking the whole body: the connection's framing is
        // lost, so it is closed after this response. The rest of the client's body is read
        // and dropped for a while, as NGINX's lingering close does, so that the client
        // finishes sending and reads the answer instead of a reset.
        head.keep_alive = false;
        tokio::spawn(discard(body));
    }
    Ok(head)
}

/// How long the rest of a request body is read and dropped after an early answer.
const LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and drops `body` until it ends, fails or [`LINGER`] passes.
async fn discard(mut body: hyper::body::Incoming) {
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(_)) = body.frame().await {}
    })
    .await;
}

impl Connection {
    /// Reads what the socket has into the read buffer; `Ok(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        poll_fill(Pin::new(&mut self.io), &mut self.read, cx)
    }
}

/// A write error that means the instance is gone (it closed before reading the request).
fn at_write(e: std::io::Error) -> H1Error {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted => H1Error::Closed {
            partial: false,
            at_write: true,
        },
        _ => H1Error::Io(e),
    }
}

/// Why sending a request body stopped.
enum Sending {
    /// The client's body failed.
    Client(hyper::Error),
    /// Writing to the instance failed.
    Upstream(std::io::Error),
}

/// Copies the client's `body` to the instance (`chunked`: in chunked coding), using `buf` for
/// chunk framing. `awaiting_client` is true while the next frame is awaited from the client.
async fn send_body<W: tokio::io::AsyncWrite + Unpin>(
    out: &mut W,
    buf: &mut Vec<u8>,
    body: &mut hyper::body::Incoming,
    chunked: bool,
    awaiting_client: &AtomicBool,
) -> Result<(), Sending> {
    loop {
        awaiting_client.store(true, Ordering::Relaxed);
        let frame = body.frame().await;
        awaiting_client.store(false, Ordering::Relaxed);
        let Some(frame) = frame else { break };
        let Ok(data) = frame.map_err(Sending::Client)?.into_data() else {
            continue; // trailers of the client's body are not forwarded
        };
        if data.is_empty() {
            continue;
        }
        if chunked {
            buf.clear();
            buf.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            buf.extend_from_slice(&data);
            buf.extend_from_slice(b"\r\n");
            out.write_all(buf).await.map_err(Sending::Upstream)?;
        } else {
            out.write_all(&data).await.map_err(Sending::Upstream)?;
        }
    }
    if chunked {
        out.write_all(b"0\r\n\r\n")
            .await
            .map_err(Sending::Upstream)?;
    }
    Ok(())
}

/// Reads until a final response head is parsed off `read` (interim 1xx responses are
/// skipped). `received` records whether any byte of a response arrived.
fn poll_head<R: AsyncRead>(
    mut io: Pin<&mut R>,
    read: &mut BytesMut,
    cx: &mut Context<'_>,
    (head_only, switching): (bool, bool),
    received: &mut bool,
) -> Poll<Result<Head, H1Error>> {
    loop {
        match parse_head_as(read, head_only, switching)? {
            Some(head) => return Poll::Ready(Ok(head)),
            None if read.len() > MAX_HEAD => {
                return Poll::Ready(Err(H1Error::Invalid("response head too large")))
            }
            None => {}
        }
        let n = match ready!(poll_fill(io.as_mut(), read, cx)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !*received => 0,
            r => r?,
        };
        if n == 0 {
            return Poll::Ready(Err(H1Error::Closed {
                partial: *received,
                at_write: false,
            }));
        }
        *received = true;
    }
}

/// Reads what `io` has into `read`; `Ok(0)` at the end of the stream.
fn poll_fill<R: AsyncRead>(
    io: Pin<&mut R>,
    read: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    if read.capacity() - read.len() < READ_CHUNK / 8 {
        read.reserve(READ_CHUNK);
    }
    tokio_util::io::poll_read_buf(io, cx, read).map_err(|e| {
        if e.kind() == std::io::ErrorKind::ConnectionReset {
            std::io::Error::new(e.kind(), "connection reset by upstream")
        } else {
            e
        }
    })
}

/// A response body read from its connection; when read to the end of a kept-alive response,
/// the connection can be reused ([`Body::into_reusable`]).
pub struct Body {
    conn: Option<Connection>,
    framing: Framing,
    keep_alive: bool,
}

impl Body {
    /// The connection, if the body was read to its end and the connection may carry another
    /// request.
    pub fn into_reusable(mut self) -> Option<Connection> {
        let conn = self.conn.take()?;
        let clean = matches!(self.framing, Framing::Done) && self.keep_alive;
        (clean && conn.read.is_empty()).then_some(conn)
    }

    fn fail(&mut self, e: H1Error) -> Poll<Option<Result<Frame<Bytes>, H1Error>>> {
        self.conn = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = H1Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, H1Error>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut this.framing {
                Framing::Done => return Poll::Ready(None),
                Framing::Length(left) if !conn.read.is_empty() => {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(conn.read.len());
                    let data = conn.read.split_to(n).freeze();
                    *left -= n as u64;
                    if *left == 0 {
                        this.framing = Framing::Done;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::UntilClose if !conn.read.is_empty() => {
                    let data = conn.read.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Chunked(state) => match state.step(&mut conn.read) {
                    Ok(Step::Data(data)) => {
                        if let Err(e) = state.settle(&mut conn.read) {
                            return this.fail(e);
                        }
                        if *state == Chunked::Done {
                            this.framing = Framing::Done;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(Step::Done) => {
                        this.framing = Framing::Done;
                        return Poll::Ready(None);
                    }
                    Ok(Step::NeedMore) => {}
                    Err(e) => return this.fail(e),
                },
                _ => {}
            }
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if matches!(this.framing, Framing::UntilClose) => {
                    this.framing = Framing::Done;
                    this.keep_alive = false;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    return this.fail(H1Error::Closed {
                        partial: true,
                        at_write: false,
                    })
                }
                Ok(_) => {}
                Err(e) => return this.fail(H1Error::Io(e)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.framing, Framing::Done) || self.conn.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("framing", &self.framing)
            .field("keep_alive", &self.keep_alive)
            .finish()
    }
}

/// Reads a whole body (health checks: small bodies), returning whether it ended cleanly.
pub(crate) async fn drain(body: &mut Body) -> bool {
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests;
