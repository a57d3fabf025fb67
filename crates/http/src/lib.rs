//! # foresight-http
//!
//! The plumbing that the proxy, the example backend and the admin API would otherwise each
//! repeat: one accept loop that speaks HTTP/1.1 and cleartext HTTP/2 (h2c, prior knowledge) on
//! the same port (told apart once per connection by the HTTP/2 preface), or both over TLS
//! (told apart by ALPN; [`tls`]), a client idle timeout,
//! graceful shutdown (stop accepting, let open connections finish their in-flight requests),
//! and helpers for short bodies.
//!
//! # Layout
//! - `lib.rs`: `serve`, `ServerOptions`, `Peer`, body helpers (`full`, `text`), fd limits
//! - `conn`: open connections, their idle timeout and graceful shutdown (no timer per request)
//! - `tls`: TLS termination and client TLS with rustls (certificates by SNI, ALPN)
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

mod conn;
pub mod tls;

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
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// How long a connection may sit with no request in progress (a kept-alive HTTP/1.1
    /// connection waiting for, or slowly sending, the headers of its next request; an HTTP/2
    /// connection with no open stream) before it is closed: the client idle timeout. Checked
    /// by a sweeper a few times per period, so a connection closes up to a quarter period
    /// (at most 1 s) late.
    pub idle_timeout: Duration,
    /// How long an HTTP/1.1 request head may take from its first byte (or, for the first
    /// request, from the connection's start) to its end; past it the client gets `408` and the
    /// connection closes. Checked by the same sweeper.
    pub header_timeout: Duration,
    /// The largest request head accepted, in bytes (request line and header fields; HTTP/2: the
    /// header list); a larger one gets `431`. At least 8 KiB (hyper's minimum).
    pub max_head: usize,
    /// Client connections open at most; one more is answered `503` and closed at once.
    pub max_connections: usize,
    /// How long to wait for open connections to finish after shutdown begins.
    pub grace: Duration,
    /// TLS on every connection (see [`tls::server_config`]); HTTP/2 or HTTP/1.1 by ALPN.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl ServerOptions {
    /// The smallest `max_head` (hyper's minimum buffer).
    pub const MIN_HEAD: usize = 8 * 1024;
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            max_head: 64 * 1024,
            max_connections: 10_000,
            grace: Duration::from_secs(10),
            tls: None,
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
    let max_head = options.max_head.max(ServerOptions::MIN_HEAD);
    let mut h1 = hyper::server::conn::http1::Builder::new();
    // A head larger than the buffer is answered 431 by hyper.
    h1.keep_alive(true).max_buf_size(max_head);
    let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(max_head).unwrap_or(u32::MAX));
    let tracker = conn::Tracker::new(options.idle_timeout, options.header_timeout);
    let sweeper = {
        let tracker = tracker.clone();
        let mut tick = tokio::time::interval(conn::Tracker::tick(
            options.idle_timeout,
            options.header_timeout,
        ));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::spawn(async move {
            loop {
                tick.tick().await;
                tracker.sweep();
            }
        })
    };
    let mut accept_errors = AcceptErrors::default();
    let mut refused = Refusals::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning, say so once a second.
                    tokio::time::sleep(accept_errors.failed(&e, Instant::now())).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        accept_errors.succeeded();
        if tracker.open_count() >= options.max_connections {
            // Past the limit: a short answer and a close, rather than a client left waiting
            // or a descriptor the admin API and the instances need.
            let _ = stream.try_write(OVERLOADED);
            refused.refused(options.max_connections, Instant::now());
            continue;
        }
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
        let first_bytes = options.idle_timeout.min(options.header_timeout);
        let tls = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        tokio::spawn(async move {
            let result = match tls {
                None => match tokio::time::timeout(first_bytes, is_h2(&stream)).await {
                    Ok(Ok(false)) => {
                        let io = TokioIo::new(conn::Io::new(stream, state.clone(), true));
                        conn::Watched::new(h1.serve_connection(io, service).with_upgrades(), state)
                            .await
                    }
                    Ok(Ok(true)) => {
                        let io = TokioIo::new(conn::Io::new(stream, state.clone(), false));
                        conn::Watched::new(h2.serve_connection(io, service), state).await
                    }
                    // Nothing arrived within the idle timeout, or the socket failed.
                    Ok(Err(_)) | Err(_) => Ok(()),
                },
                Some(acceptor) => {
                    match tokio::time::timeout(first_bytes, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let h2_chosen = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                            let io = TokioIo::new(conn::Io::new(tls, state.clone(), !h2_chosen));
                            if h2_chosen {
                                conn::Watched::new(h2.serve_connection(io, service), state).await
                            } else {
                                conn::Watched::new(
                                    h1.serve_connection(io, service).with_upgrades(),
                                    state,
                                )
                                .await
                            }
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => Ok(()),
                    }
                }
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

/// The answer to a connection past `max_connections`.
const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 25\r\nconnection: close\r\n\r\ntoo many open connections\n";

/// Accept failures in a row: how long to back off, and one log line a second about them.
#[derive(Default)]
struct AcceptErrors {
    in_a_row: u32,
    unreported: u64,
    last_report: Option<Instant>,
}

impl AcceptErrors {
    /// Records a failure at `now`; how long to wait before accepting again (5 ms doubling to
    /// 1 s: descriptors run out under load and come back as connections close).
    fn failed(&mut self, e: &std::io::Error, now: Instant) -> Duration {
        self.in_a_row = self.in_a_row.saturating_add(1);
        self.unreported += 1;
        if self
            .last_report
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            tracing::warn!(error = %e, failures = self.unreported, "accept failed; backing off");
            self.unreported = 0;
            self.last_report = Some(now);
        }
        Duration::from_millis(5u64 << self.in_a_row.min(8).saturating_sub(1))
            .min(Duration::from_secs(1))
    }

    fn succeeded(&mut self) {
        self.in_a_row = 0;
    }
}

/// Connections refused past the limit, reported once a second.
#[derive(Default)]
struct Refusals {
    unreported: u64,
    last_report: Option<Instant>,
}

impl Refusals {
    fn refused(&mut self, limit: usize, now: Instant) {
        self.unreported += 1;
        if self
            .last_report
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            tracing::warn!(
                max_connections = limit,
                refused = self.unreported,
                "connection limit reached; refusing new connections with 503"
            );
            self.unreported = 0;
            self.last_report = Some(now);
        }
    }
}

/// Raises the soft limit on open files to the hard limit (as NGINX and HAProxy do at start),
/// so that connections, not a historical default of 1024, bound the server; returns the new
/// soft limit, or the error if it could not be raised.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// The soft limit on open files, if it can be read.
pub fn fd_limit() -> Option<u64> {
    rlimit::Resource::NOFILE.get().ok().map(|(soft, _)| soft)
}

/// Binds a TCP listener, naming the address in the error.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}
