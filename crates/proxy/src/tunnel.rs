//! Connections that switch protocols (RFC 9110 §7.8): a WebSocket handshake (RFC 6455 §4) is
//! an HTTP/1.1 request with `Upgrade` and `Connection: upgrade`, forwarded to the chosen
//! instance on a connection of its own; when the instance answers 101 the proxy relays the
//! 101 and from then on copies bytes both ways until either side closes, no byte passes for
//! `timeouts.tunnel_idle`, or the instance leaves the pool (a drain that ran out of
//! `drain_timeout`). The request's in-flight count is held for as long as the tunnel lives,
//! so least-connections, `max_requests` and utilisation see open sockets.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, UPGRADE};
use http::{Request, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::forward::InFlight;
use crate::pool::Backend;
use crate::stream::Stream;

/// A client's request to switch protocols: the protocol it asked for and hyper's handle on
/// the client's connection once the 101 has been sent.
pub(crate) struct Upgrade {
    /// The `Upgrade` field as the client sent it (`websocket`).
    pub protocol: HeaderValue,
    /// Resolves to the client's connection after the 101.
    pub on: OnUpgrade,
}

/// Whether `req` asks to switch protocols: HTTP/1.1, an `Upgrade` field, `upgrade` among the
/// `Connection` tokens, and no body (a handshake has none; a request with a body is
/// forwarded as an ordinary one, its `Upgrade` dropped). Takes hyper's upgrade handle.
pub(crate) fn wanted<B: http_body::Body>(req: &mut Request<B>) -> Option<Upgrade> {
    if req.version() != Version::HTTP_11 || !req.body().is_end_stream() {
        return None;
    }
    let protocol = req.headers().get(UPGRADE)?.clone();
    let asks = req
        .headers()
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
    asks.then(|| Upgrade {
        protocol,
        on: hyper::upgrade::on(req),
    })
}

/// Puts back the two hop-by-hop fields a switch needs, after the others were stripped.
pub(crate) fn restore(headers: &mut http::HeaderMap, protocol: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, protocol);
}

/// How often a tunnel checks its idle time and whether its instance has left the pool.
fn tick(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// Runs the tunnel: waits for the client's side of the switch, sends it the bytes of the new
/// protocol that came with the instance's 101, then copies both ways. `flight` is the
/// request's in-flight count, held until the tunnel ends.
pub(crate) async fn run(
    on: OnUpgrade,
    upstream: Stream,
    early: Bytes,
    flight: InFlight,
    backend: Arc<Backend>,
    idle: Duration,
) {
    let client = match on.await {
        Ok(u) => TokioIo::new(u),
        Err(e) => {
            tracing::debug!(backend = %backend.address, error = %e, "the client's side of the switch failed");
            return;
        }
    };
    let _open = backend.metrics.upgraded();
    let origin = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut client = Active::new(client, last.clone(), origin);
    let mut upstream = Active::new(upstream, last.clone(), origin);
    if !early.is_empty() && client.inner.write_all(&early).await.is_err() {
        return;
    }
    let why = {
        let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
        let watch = async {
            let mut t = tokio::time::interval(tick(idle));
            loop {
                t.tick().await;
                if backend.is_removed() {
                    return "the instance left the pool";
                }
                let quiet = origin
                    .elapsed()
                    .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                if quiet >= idle {
                    return "idle";
                }
            }
        };
        tokio::select! {
            r = copy => match r {
                Ok(_) => "closed",
                Err(_) => "failed",
            },
            w = watch => w,
        }
    };
    tracing::debug!(backend = %backend.address, ended = why, lived_ms = origin.elapsed().as_millis() as u64, "tunnel ended");
    drop(flight);
}

/// A stream that stamps the time of its last read or write (milliseconds since `origin`).
struct Active<S> {
    inner: S,
    last: Arc<AtomicU64>,
    origin: Instant,
}

impl<S> Active<S> {
    fn new(inner: S, last: Arc<AtomicU64>, origin: Instant) -> Self {
        Active {
            inner,
            last,
            origin,
        }
    }

    fn stamp(&self) {
        self.last
            .store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Active<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.stamp();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Active<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.stamp();
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, fields: &[(&str, &str)], body: &'static str) -> Request<String> {
        let mut b = Request::builder().version(version).uri("/chat");
        for (k, v) in fields {
            b = b.header(*k, *v);
        }
        b.body(body.to_string()).unwrap()
    }

    #[test]
    fn only_a_bodiless_http11_request_with_both_fields_switches() {
        let ws = [
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
        ];
        let u = wanted(&mut request(Version::HTTP_11, &ws, "")).expect("a handshake");
        assert_eq!(u.protocol, "websocket");
        assert!(wanted(&mut request(Version::HTTP_10, &ws, "")).is_none());
        assert!(wanted(&mut request(Version::HTTP_11, &ws, "body")).is_none());
        assert!(wanted(&mut request(Version::HTTP_11, &ws[..1], "")).is_none());
        assert!(wanted(&mut request(Version::HTTP_11, &ws[1..], "")).is_none());
        let mut h = http::HeaderMap::new();
        restore(&mut h, HeaderValue::from_static("websocket"));
        assert_eq!(h[CONNECTION], "upgrade");
        assert_eq!(h[UPGRADE], "websocket");
        assert_eq!(tick(Duration::from_secs(3600)), Duration::from_secs(1));
        assert_eq!(tick(Duration::from_millis(100)), Duration::from_millis(50));
    }
}
