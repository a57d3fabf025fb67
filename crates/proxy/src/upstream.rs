//! Connections to one instance: a small pool of HTTP/1.1 connections kept alive between
//! requests, spoken by [`crate::h1`] from the request's own task.
//!
//! Why not hyper-util's pooled `Client`: it keys one shared pool by authority in a SipHash map
//! behind a mutex, boxes every request future and races a new connect against every checkout;
//! in profiles of `foresight serve` that was about a tenth of the CPU per proxied request. Here
//! each instance owns its pool (no key lookup), idle connections are reused newest first, and a
//! connection goes back to the pool only when its response body has been read to the end, so a
//! reused connection is always ready. Errors are classified exactly: a refused or timed-out
//! connect (nothing was sent, safe to retry elsewhere) versus a failure after sending.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foresight_http::tls::{ServerNameOwned, TlsConnector};
use http::request::Parts;
use http::uri::Authority;
use http::Response;
use hyper::body::Incoming;
use tokio::net::TcpStream;

use crate::stream::Stream;

use crate::deadline::Deadlines;
use crate::h1::{self, Connection, H1Error, Outgoing};

/// Idle connections kept per instance beyond which returned connections are closed.
const MAX_IDLE: usize = 256;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The connection could not be made; nothing was sent.
    #[error("connect to {0} failed: {1}")]
    Connect(String, std::io::Error),
    /// The connection was made but the exchange failed.
    #[error(transparent)]
    Exchange(#[from] H1Error),
    /// An HTTP/2 stream to the instance failed (reset, GOAWAY, a protocol error).
    #[error("HTTP/2 to the instance: {0}")]
    H2(String),
    /// The instance did not process the request (RFC 9113 §8.7): it refused the stream
    /// (`REFUSED_STREAM`), the stream was above a graceful GOAWAY's last one, or the
    /// connection was closing before the request went out. Safe to send again, whatever the
    /// method.
    #[error("HTTP/2 to the instance, not processed: {0}")]
    H2Refused(String),
}

impl UpstreamError {
    /// Whether nothing of the request reached the instance.
    pub fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(..))
    }

    /// Whether the instance did not process the request (an HTTP/2 stream refused or above a
    /// graceful GOAWAY), so that it may go to another instance whatever its method.
    pub fn is_refused(&self) -> bool {
        matches!(self, UpstreamError::H2Refused(..))
    }

    /// Whether the request timed out (waiting for the instance, or for the client's body).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            UpstreamError::Exchange(H1Error::Timeout | H1Error::ClientTimeout)
        )
    }

    /// Whether the client's body failed or came too slowly (the instance is not to blame).
    pub fn is_client(&self) -> bool {
        matches!(
            self,
            UpstreamError::Exchange(H1Error::ClientBody(_) | H1Error::ClientTimeout)
        )
    }
}

/// The connections of one instance.
pub struct Upstream {
    authority: Authority,
    connect_timeout: Duration,
    idle_timeout: Duration,
    /// Idle connections and since when, oldest first.
    idle: Mutex<VecDeque<(Connection, Instant)>>,
    deadlines: Arc<Deadlines>,
    /// For `https://`: the connector and the name to verify.
    tls: Option<(TlsConnector, ServerNameOwned<'static>)>,
    /// For an `h2c` or `h2` service: its multiplexed connections, the first made at the
    /// first request, more while the streams in flight exceed `h2_max_streams` per
    /// connection, each replaced after it closes (`None` for HTTP/1.1).
    h2: Option<H2Slot>,
}

/// An instance's HTTP/2 connections: the open ones, read (and a sender cloned) under a plain
/// mutex on every request; connecting is serialised by the async one, so that a burst of
/// requests to a new instance makes one connection.
#[derive(Default)]
struct H2Slot {
    /// The open connections, each with when it last got a stream.
    open: Mutex<Vec<(H2Sender, Instant)>>,
    connecting: tokio::sync::Mutex<()>,
    /// Streams one connection carries before another is opened (`h2_max_streams`), at most
    /// the instance's own limit.
    max_streams: u32,
    /// The instance's `SETTINGS_MAX_CONCURRENT_STREAMS`, as its newest connection last saw it
    /// (h2's assumption, 100, until the instance's SETTINGS arrive; 0 before any connection).
    peer_streams: Arc<std::sync::atomic::AtomicUsize>,
    /// Turns among the connections in use.
    next: std::sync::atomic::AtomicUsize,
    /// An extra connection (past the first) that has had no new stream for this long is let
    /// go (`timeouts.upstream_idle`).
    idle_timeout: Duration,
}

impl H2Slot {
    /// Connections wanted for `in_flight` streams (this request's included): one per
    /// `max_streams` or the instance's own limit, whichever is lower, at most
    /// [`crate::config::defaults::H2_MAX_CONNECTIONS`].
    fn wanted(&self, in_flight: u32) -> usize {
        let per = match self.peer_streams.load(std::sync::atomic::Ordering::Relaxed) {
            0 => self.max_streams,
            peer => self
                .max_streams
                .min(u32::try_from(peer).unwrap_or(u32::MAX)),
        };
        (in_flight.max(1).div_ceil(per.max(1)) as usize)
            .min(crate::config::defaults::H2_MAX_CONNECTIONS)
    }

    /// A sender on one of the first `wanted` open connections, in turn, if that many are
    /// open (closed ones are dropped first). When load has fallen, the connections past
    /// those wanted get no new stream; each that has had none for `idle_timeout` is let go
    /// (the last first, never the first), and closes once its streams have ended.
    fn current(&self, wanted: usize, now: Instant) -> Option<H2Sender> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|(s, _)| !s.is_closed());
        if open.len() < wanted {
            return None;
        }
        while open.len() > wanted.max(1)
            && open
                .last()
                .is_some_and(|(_, used)| now.saturating_duration_since(*used) > self.idle_timeout)
        {
            open.pop();
        }
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % wanted;
        open[i].1 = now;
        Some(open[i].0.clone())
    }
}

/// The HTTP/2 handshake over `io` (keep-alive PINGs on); the connection is driven by a task
/// of its own until either side closes it, which keeps `peer_streams` at the instance's
/// `SETTINGS_MAX_CONCURRENT_STREAMS` (h2 learns it from the instance's SETTINGS, after the
/// handshake, and an instance may change it at any time).
async fn h2_handshake<I>(
    io: I,
    upstream: Authority,
    peer_streams: Arc<std::sync::atomic::AtomicUsize>,
) -> std::io::Result<H2Sender>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive_interval(H2_KEEPALIVE)
            .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT)
            .handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(std::io::Error::other)?;
    let mut conn = Box::pin(conn);
    tokio::spawn(async move {
        let ended = std::future::poll_fn(|cx| {
            let r = std::future::Future::poll(conn.as_mut(), cx);
            peer_streams.store(
                conn.current_max_send_streams(),
                std::sync::atomic::Ordering::Relaxed,
            );
            r
        })
        .await;
        if let Err(e) = ended {
            tracing::debug!(%upstream, error = %e, "HTTP/2 connection to the instance ended");
        }
    });
    Ok(sender)
}

/// A request body towards an HTTP/2 instance: the client's, streamed or read ahead, or the
/// proxy's own.
pub type H2Body = crate::replay::Replay;

/// The sending half of an HTTP/2 connection to an instance (cheap to clone; one per stream).
pub type H2Sender = hyper::client::conn::http2::SendRequest<H2Body>;

/// PINGs on an idle HTTP/2 connection to an instance this often...
const H2_KEEPALIVE: Duration = Duration::from_secs(20);
/// ...and the connection is closed when one goes unanswered this long.
const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

impl Upstream {
    /// A pool for `authority`.
    pub(crate) fn new(
        authority: Authority,
        connect_timeout: Duration,
        idle_timeout: Duration,
        deadlines: Arc<Deadlines>,
        tls: Option<(TlsConnector, ServerNameOwned<'static>)>,
    ) -> Self {
        Upstream {
            authority,
            connect_timeout,
            idle_timeout,
            idle: Mutex::new(VecDeque::new()),
            deadlines,
            tls,
            h2: None,
        }
    }

    /// The same instance spoken to in `protocol`.
    pub(crate) fn speaking(
        mut self,
        protocol: crate::config::UpstreamProtocol,
        h2_max_streams: u32,
    ) -> Self {
        self.h2 = protocol.is_h2().then(|| H2Slot {
            max_streams: h2_max_streams,
            idle_timeout: self.idle_timeout,
            ..H2Slot::default()
        });
        self
    }

    /// Whether the instance is spoken to over HTTP/2 (`protocol = "h2c"` or `"h2"`).
    pub(crate) fn speaks_h2(&self) -> bool {
        self.h2.is_some()
    }

    /// An HTTP/2 connection to the instance for a new stream, with `in_flight` streams to
    /// it (this one included): one of the open ones, or a new one when fewer are open than
    /// those streams need (a connect, for `h2` the TLS handshake agreeing on `h2` by ALPN,
    /// and the HTTP/2 handshake, all within the connect timeout). A connection the instance
    /// closed (GOAWAY, a reset) is replaced at the next request.
    async fn h2_sender(&self, in_flight: u32) -> Result<H2Sender, UpstreamError> {
        let slot = self.h2.as_ref().expect("an HTTP/2 upstream");
        let wanted = slot.wanted(in_flight);
        if let Some(s) = slot.current(wanted, Instant::now()) {
            return Ok(s);
        }
        let _connecting = slot.connecting.lock().await;
        if let Some(s) = slot.current(wanted, Instant::now()) {
            // Another request connected meanwhile.
            return Ok(s);
        }
        let addr = self.authority.as_str();
        let err = |e| UpstreamError::Connect(addr.to_string(), e);
        let connect = async {
            let tcp = TcpStream::connect(addr).await?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => h2_handshake(tcp, self.authority.clone(), slot.peer_streams.clone()).await,
                Some((connector, name)) => {
                    let tls = connector.connect(name.clone(), tcp).await?;
                    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                        return Err(std::io::Error::other(
                            "the instance did not agree to HTTP/2 (ALPN `h2`) in the TLS handshake",
                        ));
                    }
                    h2_handshake(tls, self.authority.clone(), slot.peer_streams.clone()).await
                }
            }
        };
        let sender = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(sender)) => sender,
            Ok(Err(e)) => return Err(err(e)),
            Err(_) => {
                return Err(err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                )))
            }
        };
        slot.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((sender.clone(), Instant::now()));
        Ok(sender)
    }

    /// One exchange over HTTP/2: a stream on the instance's connection, the response head
    /// before `deadline` (the body, trailers included, streams as the client reads it). The
    /// request goes in absolute form (`:scheme`, `:authority`); its body, trailers included,
    /// streams as the instance reads it.
    /// `in_flight`: the streams to this instance, this one included (more connections are
    /// opened past `h2_max_streams` each).
    pub async fn send_h2(
        &self,
        parts: &Parts,
        body: &mut Option<H2Body>,
        deadline: Duration,
        in_flight: u32,
    ) -> Result<Response<Incoming>, UpstreamError> {
        // The body stays with the caller until a connection is there: a refused connect can
        // be tried on another instance, body and all.
        let sender = self.h2_sender(in_flight).await?;
        let mut req = http::Request::new(body.take().unwrap_or_default());
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = http::Uri::builder()
            .scheme(self.scheme())
            .authority(self.authority.clone())
            .path_and_query(parts.uri.path_and_query().map_or("/", |pq| pq.as_str()))
            .build()
            .map_err(|_| H1Error::Invalid("a request target HTTP/2 cannot carry"))?;
        *req.version_mut() = http::Version::HTTP_2;
        *req.headers_mut() = parts.headers.clone();
        // HTTP/2 carries the authority in `:authority`; Host would be a second one.
        req.headers_mut().remove(http::header::HOST);
        Self::exchange_h2(sender, req, deadline).await
    }

    /// A request of the proxy's own (a health check) over the instance's HTTP/2 connection:
    /// `path` with `headers` and a whole `body`, the response head before `deadline`.
    pub(crate) async fn own_h2(
        &self,
        method: http::Method,
        path: &str,
        headers: http::HeaderMap,
        body: bytes::Bytes,
        deadline: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let sender = self.h2_sender(1).await?;
        let mut req = http::Request::new(H2Body::whole(body));
        *req.method_mut() = method;
        *req.uri_mut() = http::Uri::builder()
            .scheme(self.scheme())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|_| H1Error::Invalid("a request target HTTP/2 cannot carry"))?;
        *req.version_mut() = http::Version::HTTP_2;
        *req.headers_mut() = headers;
        Self::exchange_h2(sender, req, deadline).await
    }

    /// The request's `:scheme`: `https` over TLS.
    fn scheme(&self) -> http::uri::Scheme {
        if self.tls.is_some() {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        }
    }

    /// Sends `req` on a stream of `sender`'s connection; the response head before `deadline`.
    async fn exchange_h2(
        mut sender: H2Sender,
        req: http::Request<H2Body>,
        deadline: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let exchange = async {
            // A connection that cannot take a stream any more: nothing went out.
            sender
                .ready()
                .await
                .map_err(|e| UpstreamError::H2Refused(e.to_string()))?;
            sender.send_request(req).await.map_err(|e| {
                if unprocessed(&e) {
                    UpstreamError::H2Refused(e.to_string())
                } else {
                    UpstreamError::H2(e.to_string())
                }
            })
        };
        match tokio::time::timeout(deadline, exchange).await {
            Ok(r) => r,
            Err(_) => Err(UpstreamError::Exchange(H1Error::Timeout)),
        }
    }

    /// Number of idle connections.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map_or(0, |v| v.len())
    }

    /// The newest idle connection that is still open at `now`, if any.
    pub fn take_idle(&self, now: Instant) -> Option<Connection> {
        loop {
            let (mut conn, since) = self.idle.lock().ok()?.pop_back()?;
            if now.saturating_duration_since(since) <= self.idle_timeout && conn.is_open() {
                conn.reused = true;
                return Some(conn);
            }
        }
    }

    /// A connection at `now`: the newest idle one that is still open, or a new one.
    pub async fn get(&self, now: Instant) -> Result<Connection, UpstreamError> {
        match self.take_idle(now) {
            Some(conn) => Ok(conn),
            // Boxed: the connect future is larger than the rest of a request's future, and
            // every request's future is moved a few times on its way into hyper's dispatcher.
            None => Box::pin(self.connect()).await,
        }
    }

    /// A new connection, bypassing the idle pool: TCP, then for `https://` the TLS handshake,
    /// both within the connect timeout.
    pub async fn connect(&self) -> Result<Connection, UpstreamError> {
        let addr = self.authority.as_str();
        let err = |e| UpstreamError::Connect(addr.to_string(), e);
        let timed_out = || {
            err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))
        };
        let connect = async {
            let tcp = TcpStream::connect(addr).await?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => Ok(Stream::Plain(tcp)),
                Some((connector, name)) => connector
                    .connect(name.clone(), tcp)
                    .await
                    .map(|t| Stream::Tls(Box::new(t))),
            }
        };
        let stream = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(err(e)),
            Err(_) => return Err(timed_out()),
        };
        Ok(Connection::over(stream, self.deadlines.watch()))
    }

    /// One exchange: a connection (pooled or new), the request, the response head,
    /// which must come before `deadline_ms` (see [`crate::deadline`]; a new connection is bounded
    /// by the connect timeout). `parts` is only read, so a failed exchange leaves it intact for a
    /// retry elsewhere.
    ///
    /// A pooled connection can turn out closed by the instance only once the request is written
    /// (the instance closed it just as it was taken from the pool). The request then goes out
    /// again on a new connection if that is safe: it has no body, and either writing it failed
    /// (so the instance never read it) or its method is idempotent (RFC 9110 §9.2.2; the
    /// instance closed without answering, as it does at its keep-alive timeout).
    pub async fn exchange(
        &self,
        parts: &Parts,
        body: &mut Option<Incoming>,
        started: Instant,
        deadline_ms: u64,
    ) -> Result<Response<h1::Body>, UpstreamError> {
        let conn = self.get(started).await?;
        let reused = conn.reused;
        let bodiless = body.is_none();
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let out = || Outgoing {
            method: &parts.method,
            target,
            headers: &parts.headers,
            default_host: self.authority.as_str(),
        };
        match conn.send(out(), body.take(), deadline_ms).await {
            Ok(resp) => Ok(resp),
            Err(H1Error::Closed {
                partial: false,
                at_write,
            }) if reused && bodiless && (at_write || parts.method.is_idempotent()) => {
                tracing::debug!(upstream = %self.authority, "pooled connection was closed; reconnecting");
                // Boxed: a connect is rare next to a request on a pooled connection, and its
                // future is large (see `Forwarder::handle`).
                Box::pin(async {
                    let fresh = self.connect().await?;
                    Ok(fresh.send(out(), None, deadline_ms).await?)
                })
                .await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Returns a connection whose response was read to the end at `now`. Connections idle
    /// for longer than the idle timeout are closed here, oldest first.
    pub fn put(&self, conn: Connection, now: Instant) {
        if let Ok(mut idle) = self.idle.lock() {
            while idle
                .front()
                .is_some_and(|(_, since)| now.saturating_duration_since(*since) > self.idle_timeout)
            {
                idle.pop_front();
            }
            if idle.len() < MAX_IDLE {
                idle.push_back((conn, now));
            }
        }
    }
}

/// Whether an HTTP/2 exchange's failure says the instance did not process the request: it
/// was still queued in hyper when the connection closed (canceled), its stream was refused
/// (`REFUSED_STREAM`), or failed by a graceful GOAWAY (`NO_ERROR`), which h2 reports only for
/// the streams above the GOAWAY's last stream id; an error GOAWAY fails every stream,
/// processed or not, so it does not count.
fn unprocessed(e: &hyper::Error) -> bool {
    // Still in hyper's queue when the connection closed (a GOAWAY ended it): never sent.
    if e.is_canceled() {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<h2::Error>() {
            return h.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (h.is_go_away() && h.reason() == Some(h2::Reason::NO_ERROR));
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// What an instance does with each request on a connection: answer with these bytes, or
    /// close without answering (`None`).
    type Script = Vec<Option<&'static [u8]>>;

    /// An instance that follows one script per accepted connection, in order, and hands back
    /// the bytes of every request head (and body) it read, per connection.
    async fn instance(scripts: Vec<Script>) -> (Authority, tokio::task::JoinHandle<Vec<Vec<u8>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            for script in scripts {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut got = Vec::new();
                for step in script {
                    let mut request = Vec::new();
                    while !complete(&request) {
                        let mut buf = [0u8; 4096];
                        let n = s.read(&mut buf).await.unwrap();
                        assert!(n > 0, "request cut short");
                        request.extend_from_slice(&buf[..n]);
                    }
                    got.extend_from_slice(&request);
                    match step {
                        Some(resp) => s.write_all(resp).await.unwrap(),
                        None => break,
                    }
                }
                seen.push(got);
                if s.peer_addr().is_ok() {
                    drop(s);
                }
            }
            seen
        });
        (authority, task)
    }

    /// Whether `request` is a whole request (small test requests: chunked or with a length).
    fn complete(request: &[u8]) -> bool {
        let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
        let body = &request[end + 4..];
        if head.contains("transfer-encoding: chunked") {
            return body.ends_with(b"0\r\n\r\n");
        }
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |n| n.trim().parse().unwrap());
        body.len() >= length
    }

    fn upstream(authority: Authority) -> Upstream {
        Upstream::new(
            authority,
            Duration::from_secs(2),
            Duration::from_secs(60),
            Deadlines::new(),
            None,
        )
    }

    /// One request through `u`, its body read and its connection returned as the request path
    /// does; the status and body.
    async fn roundtrip(
        u: &Upstream,
        method: http::Method,
    ) -> Result<(u16, Vec<u8>), UpstreamError> {
        let (parts, ()) = Request::builder()
            .method(method)
            .uri("/x")
            .body(())
            .unwrap()
            .into_parts();
        let resp = u
            .exchange(&parts, &mut None, Instant::now(), crate::deadline::NONE)
            .await?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            out.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        if let Some(conn) = body.into_reusable() {
            u.put(conn, Instant::now());
        }
        Ok((status, out))
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    const OK2: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok2";

    #[tokio::test]
    async fn connections_are_kept_alive_and_reused() {
        let (authority, peer) = instance(vec![vec![Some(OK), Some(OK2), Some(OK)]]).await;
        let u = upstream(authority);
        assert_eq!(roundtrip(&u, http::Method::GET).await.unwrap().1, b"ok");
        assert_eq!(u.idle_count(), 1);
        assert_eq!(roundtrip(&u, http::Method::GET).await.unwrap().1, b"ok2");
        assert_eq!(roundtrip(&u, http::Method::GET).await.unwrap().1, b"ok");
        drop(u);
        let seen = peer.await.unwrap();
        assert_eq!(seen.len(), 1, "one connection for three requests");
    }

    /// The instance closes a kept-alive connection just as the next request arrives (its
    /// keep-alive timeout): an idempotent request without a body goes out again on a new
    /// connection; a POST does not (the instance may have acted on it).
    #[tokio::test]
    async fn a_request_on_a_connection_closed_under_it_is_resent_only_if_idempotent() {
        let (authority, peer) = instance(vec![vec![Some(OK), None], vec![Some(OK2)]]).await;
        let u = upstream(authority);
        assert_eq!(roundtrip(&u, http::Method::GET).await.unwrap().1, b"ok");
        assert_eq!(
            roundtrip(&u, http::Method::GET).await.unwrap().1,
            b"ok2",
            "resent"
        );
        peer.await.unwrap();

        let (authority, _peer) = instance(vec![vec![Some(OK), None], vec![Some(OK2)]]).await;
        let u = upstream(authority);
        assert_eq!(roundtrip(&u, http::Method::POST).await.unwrap().1, b"ok");
        let err = roundtrip(&u, http::Method::POST).await.unwrap_err();
        assert!(
            matches!(
                err,
                UpstreamError::Exchange(H1Error::Closed { partial: false, .. })
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_refused_connect_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        drop(listener);
        let err = roundtrip(&upstream(authority), http::Method::GET)
            .await
            .unwrap_err();
        assert!(err.is_connect(), "{err:?}");
    }

    #[tokio::test]
    async fn idle_connections_past_the_idle_timeout_are_not_reused() {
        let (authority, peer) = instance(vec![vec![Some(OK)], vec![Some(OK2)]]).await;
        let mut u = upstream(authority);
        u.idle_timeout = Duration::from_millis(1);
        assert_eq!(roundtrip(&u, http::Method::GET).await.unwrap().1, b"ok");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(roundtrip(&u, http::Method::GET).await.unwrap().1, b"ok2");
        drop(u);
        assert_eq!(peer.await.unwrap().len(), 2, "a new connection");
    }

    /// A client request with a body, through a real hyper server into `exchange`: the
    /// instance gets it with its Content-Length, or chunked when the client sent it chunked.
    #[tokio::test]
    async fn request_bodies_are_forwarded_with_their_framing() {
        for (client_sends, instance_gets) in [
            (
                &b"POST /up HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello"[..],
                &b"POST /up HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello"[..],
            ),
            (
                b"POST /up HTTP/1.1\r\nhost: a\r\ncontent-length: 00005\r\n\r\nhello",
                b"POST /up HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello",
            ),
            (
                b"POST /up HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                b"POST /up HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            ),
        ] {
            let (authority, peer) = instance(vec![vec![Some(OK)]]).await;
            let u = Arc::new(upstream(authority));
            let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let front_addr = front.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let (s, _) = front.accept().await.unwrap();
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let u = u.clone();
                    async move {
                        let (mut parts, body) = req.into_parts();
                        crate::headers::strip_hop_by_hop(&mut parts.headers);
                        let resp = u
                            .exchange(&parts, &mut Some(body), Instant::now(), crate::deadline::NONE)
                            .await
                            .map_err(std::io::Error::other)?;
                        let status = resp.status();
                        let body = resp
                            .into_body()
                            .collect()
                            .await
                            .map_err(std::io::Error::other)?
                            .to_bytes();
                        let mut out = Response::new(http_body_util::Full::new(body));
                        *out.status_mut() = status;
                        Ok::<_, std::io::Error>(out)
                    }
                });
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), service)
                    .await
            });
            let mut client = TcpStream::connect(front_addr).await.unwrap();
            client.write_all(client_sends).await.unwrap();
            let mut answer = vec![0u8; 1024];
            let n = client.read(&mut answer).await.unwrap();
            let answer = String::from_utf8_lossy(&answer[..n]).to_string();
            assert!(answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("ok"), "{answer}");
            drop(client);
            let _ = server.await;
            let seen = peer.await.unwrap();
            assert_eq!(
                String::from_utf8_lossy(&seen[0]),
                String::from_utf8_lossy(instance_gets)
            );
        }
    }
}
