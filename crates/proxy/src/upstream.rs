//! Connections to one instance: a small pool of HTTP/1.1 connections kept alive between
//! requests, on hyper's low-level client (`hyper::client::conn::http1`).
//!
//! Why not hyper-util's pooled `Client`: it keys one shared pool by authority in a SipHash map
//! behind a mutex, boxes every request future and races a new connect against every checkout;
//! in profiles of `foresight serve` that was about a tenth of the CPU per proxied request. Here
//! each instance owns its pool (no key lookup), idle connections are reused newest first, and a
//! connection goes back to the pool only when its response body has been read to the end, so a
//! reused connection is always ready. Errors are classified exactly: a refused or timed-out
//! connect (nothing was sent, safe to retry elsewhere) versus a failure after sending.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::RequestBody;
use crate::deadline::{Cut, Deadlines, Watch};

/// Idle connections kept per instance beyond which returned connections are closed.
const MAX_IDLE: usize = 256;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The connection could not be made; nothing was sent.
    #[error("connect to {0} failed: {1}")]
    Connect(String, std::io::Error),
    /// The connection was made but the exchange failed.
    #[error("upstream error: {0}")]
    Protocol(#[from] hyper::Error),
    /// No response head before the request's deadline; the connection was cut off.
    #[error("no response before the request timeout")]
    Timeout,
}

impl UpstreamError {
    /// Whether nothing of the request reached the instance.
    pub fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(..))
    }

    /// Whether the request timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, UpstreamError::Timeout)
    }
}

/// A connection lent to one request; return it with [`Upstream::put`] once the response is done.
pub struct Conn {
    sender: SendRequest<RequestBody>,
    watch: Arc<Watch>,
    /// Whether it came from the idle pool (a reused connection may have been closed by the peer
    /// in the meantime).
    pub reused: bool,
}

impl Conn {
    /// Sends `req` and waits for the response head until `deadline_ms` (from
    /// [`Deadlines::deadline`]), when the sweeper cuts the connection off; on failure, hands the
    /// request back if none of it was sent.
    pub fn try_send(
        &mut self,
        req: Request<RequestBody>,
        deadline_ms: u64,
    ) -> impl Future<
        Output = Result<Response<Incoming>, (UpstreamError, Option<Request<RequestBody>>)>,
    > + Send
           + '_ {
        self.watch.arm(deadline_ms);
        // Not an `async fn`: hyper hands `req` to the connection task here, and the future
        // returned then does not also hold a copy of it.
        let sent = self.sender.try_send_request(req);
        async move {
            let sent = sent.await;
            self.watch.disarm();
            if self.watch.expired() {
                // Also when the head came in just as the sweeper cut the connection: its body
                // cannot follow.
                return Err((UpstreamError::Timeout, None));
            }
            sent.map_err(|mut e| {
                let unsent = e.take_message();
                (UpstreamError::Protocol(e.into_error()), unsent)
            })
        }
    }
}

/// A kept-alive connection: its sender, its deadline watch, and since when it is idle.
type Idle = (SendRequest<RequestBody>, Arc<Watch>, Instant);

/// The connections of one instance.
pub struct Upstream {
    authority: Authority,
    connect_timeout: Duration,
    idle_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
    deadlines: Arc<Deadlines>,
}

impl Upstream {
    /// A pool for `authority`.
    pub(crate) fn new(
        authority: Authority,
        connect_timeout: Duration,
        idle_timeout: Duration,
        deadlines: Arc<Deadlines>,
    ) -> Self {
        Upstream {
            authority,
            connect_timeout,
            idle_timeout,
            idle: Mutex::new(Vec::new()),
            deadlines,
        }
    }

    /// Number of idle connections.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map_or(0, |v| v.len())
    }

    /// A connection: the newest idle one that is still open, or a new one.
    pub async fn get(&self) -> Result<Conn, UpstreamError> {
        loop {
            let candidate = self.idle.lock().ok().and_then(|mut v| v.pop());
            let Some((mut sender, watch, since)) = candidate else {
                break;
            };
            if since.elapsed() > self.idle_timeout || sender.is_closed() {
                continue;
            }
            if sender.ready().await.is_ok() {
                return Ok(Conn {
                    sender,
                    watch,
                    reused: true,
                });
            }
        }
        // Boxed: the connect and handshake futures are several times the size of the rest of
        // a request's future, and every request's future is moved a few times on its way into
        // hyper's dispatcher.
        Box::pin(self.connect_new()).await
    }

    /// A new connection, bypassing the idle pool.
    pub async fn connect_new(&self) -> Result<Conn, UpstreamError> {
        self.connect().await.map(|(sender, watch)| Conn {
            sender,
            watch,
            reused: false,
        })
    }

    async fn connect(&self) -> Result<(SendRequest<RequestBody>, Arc<Watch>), UpstreamError> {
        let addr = self.authority.as_str();
        let err = |e| UpstreamError::Connect(addr.to_string(), e);
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(err(e)),
                Err(_) => {
                    return Err(err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "connect timed out",
                    )))
                }
            };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| err(std::io::Error::other(e)))?;
        let watch = self.deadlines.watch();
        let cut = Cut::new(conn, watch.clone());
        tokio::spawn(async move {
            if let Err(e) = cut.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok((sender, watch))
    }

    /// Returns a connection whose response was read to the end at `now`.
    pub fn put(&self, conn: Conn, now: Instant) {
        if conn.sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push((conn.sender, conn.watch, now));
            }
        }
    }
}
