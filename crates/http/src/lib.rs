//! # foresight-http
//!
//! The plumbing that the proxy, the example backend and the admin API would otherwise each
//! repeat: one accept loop that speaks HTTP/1.1 and cleartext HTTP/2 (h2c, prior knowledge) on
//! the same port (told apart once per connection by the HTTP/2 preface), a client idle timeout,
//! graceful shutdown (stop accepting, let open connections finish their in-flight requests),
//! and helpers for short bodies.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

mod conn;

/// The body type every Foresight server answers with: streamed upstream bodies and short
/// generated ones alike.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A short plain-text response, the way the proxy and backend report their own errors.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Connection-level settings of a server.
#[derive(Clone, Copy, Debug)]
pub struct ServerOptions {
    /// How long a connection may sit with no request in progress (a kept-alive HTTP/1.1
    /// connection waiting for, or slowly sending, the headers of its next request; an HTTP/2
    /// connection with no open stream) before it is closed: the client idle timeout. Checked
    /// by a sweeper a few times per period, so a connection closes up to a quarter period
    /// (at most 1 s) late.
    pub idle_timeout: Duration,
    /// How long to wait for open connections to finish after shutdown begins.
    pub grace: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            idle_timeout: Duration::from_secs(60),
            grace: Duration::from_secs(10),
        }
    }
}

/// The client at the other end of a connection, computed once per connection.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Its address.
    pub addr: SocketAddr,
    /// Its IP address as a header value (for `X-Forwarded-For`), rendered once per connection
    /// rather than once per request.
    pub ip_header: HeaderValue,
}

/// The first bytes an HTTP/2 client sends with prior knowledge (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether the client opens with the HTTP/2 preface, read without consuming it. Deciding once
/// per connection lets HTTP/1.1 connections run hyper's HTTP/1 server directly, rather than
/// hyper-util's `auto` server that re-checks every read through a rewind buffer.
async fn is_h2(stream: &TcpStream) -> std::io::Result<bool> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 || buf[..n] != H2_PREFACE[..n] {
            return Ok(false);
        }
        if n == H2_PREFACE.len() {
            return Ok(true);
        }
        // A prefix of the preface so far (rare: clients send it in one write). Peeking again
        // at once would return the same bytes, so wait a little for the rest.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Serves `handler` on `listener` until `shutdown` completes, then drains open connections for
/// at most `options.grace`. `handler` gets each request and the [`Peer`] that sent it.
pub async fn serve<H, F, B>(
    listener: TcpListener,
    options: ServerOptions,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>, Peer) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.keep_alive(true);
    let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new());
    let tracker = conn::Tracker::new(options.idle_timeout);
    let sweeper = {
        let tracker = tracker.clone();
        let mut tick = tokio::time::interval(conn::Tracker::tick(options.idle_timeout));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::spawn(async move {
            loop {
                tick.tick().await;
                tracker.sweep();
            }
        })
    };
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let peer = Peer {
            addr: peer,
            ip_header: HeaderValue::from_str(&peer.ip().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
        };
        let (id, state) = tracker.open();
        let service = {
            let state = state.clone();
            hyper::service::service_fn(move |req| {
                let active = state.begin();
                // Boxed once here, so that hyper's dispatcher and the wrapper below move a
                // pointer rather than the handler's whole future.
                let fut = Box::pin(handler(req, peer.clone()));
                async move { Ok::<_, Infallible>(fut.await.map(|b| conn::Counted::new(b, active))) }
            })
        };
        let (h1, h2, tracker) = (h1.clone(), h2.clone(), tracker.clone());
        let idle = options.idle_timeout;
        tokio::spawn(async move {
            let result = match tokio::time::timeout(idle, is_h2(&stream)).await {
                Ok(Ok(false)) => {
                    let conn = h1.serve_connection(TokioIo::new(stream), service);
                    conn::Watched::new(conn, state).await
                }
                Ok(Ok(true)) => {
                    let conn = h2.serve_connection(TokioIo::new(stream), service);
                    conn::Watched::new(conn, state).await
                }
                // Nothing arrived within the idle timeout, or the socket failed.
                Ok(Err(_)) | Err(_) => Ok(()),
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            tracker.closed(id);
        });
    }
    drop(listener);
    if tokio::time::timeout(options.grace, tracker.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?options.grace, "connections still open after the grace period");
    }
    sweeper.abort();
}

/// Binds a TCP listener, naming the address in the error.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}
