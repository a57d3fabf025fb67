//! Open connections, their idle timeout and graceful shutdown, without a timer per request.
//!
//! hyper's own `header_read_timeout` arms a fresh timer (an allocation, a clock read, a timer
//! wheel insert and removal) for every request, and hyper-util's graceful shutdown polls a
//! watch channel (a mutex) on every wake of every connection; in callgrind profiles of the
//! proxy the two were about 6% of the instructions per request. Here one sweeper task per
//! server, ticking a few times per idle period, owns the clock: a request only counts itself
//! in and out of its connection with two atomic operations, and a connection is told to close
//! (gracefully: hyper finishes what it is serving) through a flag and a waker.
//!
//! The same sweeper bounds how long an HTTP/1.1 request head may take to arrive (the header-read
//! timeout): [`Io`], the socket as hyper sees it, notes when bytes of a new head start to arrive
//! while no request is in progress, and once the timeout has passed answers `408 Request
//! Timeout` itself and ends the stream. hyper's own header timeout would close the connection
//! without a word.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// All open connections of one server.
pub(crate) struct Tracker {
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    next_id: AtomicU64,
    open: AtomicUsize,
    all_closed: Notify,
    /// Milliseconds since `start`, advanced by the sweeper (a coarse clock nobody else reads
    /// the system time for).
    clock_ms: Arc<AtomicU64>,
    start: Instant,
    idle_ms: u64,
    header_ms: u64,
}

/// `head_since_ms` when no request head is on its way.
const NO_HEAD: u64 = u64::MAX;

/// One connection, as the sweeper and its requests see it.
pub(crate) struct ConnState {
    close: AtomicBool,
    /// Set one sweep after `close` if the connection is still idle: an HTTP/1.1 connection in
    /// the middle of reading request headers does not end on a graceful shutdown (hyper waits
    /// for the request), so a client that never finishes them is cut off.
    kill: AtomicBool,
    waker: AtomicWaker,
    /// Requests being served (HTTP/2: streams), counting until the response body is dropped.
    active: AtomicU32,
    /// The coarse time when `active` last fell to zero (or the connection opened).
    idle_since_ms: AtomicU64,
    /// The coarse time when the first bytes of the next HTTP/1.1 request head arrived (or the
    /// connection opened), [`NO_HEAD`] while a request is in progress or none has started.
    head_since_ms: AtomicU64,
    /// Set by the sweeper when a request head took longer than the header-read timeout.
    head_expired: AtomicBool,
    clock_ms: Arc<AtomicU64>,
}

impl Tracker {
    pub(crate) fn new(idle_timeout: Duration, header_timeout: Duration) -> Arc<Self> {
        Arc::new(Tracker {
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            all_closed: Notify::new(),
            clock_ms: Arc::new(AtomicU64::new(0)),
            start: Instant::now(),
            idle_ms: u64::try_from(idle_timeout.as_millis()).unwrap_or(u64::MAX),
            header_ms: u64::try_from(header_timeout.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// How often the sweeper looks: a quarter of the shorter timeout, between 10 ms and 1 s.
    pub(crate) fn tick(idle_timeout: Duration, header_timeout: Duration) -> Duration {
        (idle_timeout.min(header_timeout) / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// Connections open now.
    pub(crate) fn open_count(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Registers a new connection.
    pub(crate) fn open(self: &Arc<Self>) -> (u64, Arc<ConnState>) {
        let state = Arc::new(ConnState {
            close: AtomicBool::new(false),
            kill: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            active: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(self.clock_ms.load(Ordering::Relaxed)),
            head_since_ms: AtomicU64::new(self.clock_ms.load(Ordering::Relaxed)),
            head_expired: AtomicBool::new(false),
            clock_ms: self.clock_ms.clone(),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut conns) = self.conns.lock() {
            conns.insert(id, state.clone());
        }
        (id, state)
    }

    /// A connection ended.
    pub(crate) fn closed(&self, id: u64) {
        if let Ok(mut conns) = self.conns.lock() {
            conns.remove(&id);
        }
        if self.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.all_closed.notify_waiters();
        }
    }

    /// Advances the clock and closes connections idle for the timeout.
    pub(crate) fn sweep(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.clock_ms.store(now, Ordering::Relaxed);
        let Ok(conns) = self.conns.lock() else {
            return;
        };
        for state in conns.values() {
            if state.active.load(Ordering::SeqCst) != 0 {
                continue;
            }
            let head_since = state.head_since_ms.load(Ordering::Relaxed);
            if head_since != NO_HEAD && now.saturating_sub(head_since) >= self.header_ms {
                state.head_expired.store(true, Ordering::Release);
                state.waker.wake();
            }
            if now.saturating_sub(state.idle_since_ms.load(Ordering::Relaxed)) >= self.idle_ms {
                if state.closing() {
                    state.kill.store(true, Ordering::Release);
                }
                state.close();
            }
        }
    }

    /// Asks every connection to finish what it is serving and close; returns when all have
    /// closed (the caller bounds the wait).
    pub(crate) async fn shutdown(&self) {
        if let Ok(conns) = self.conns.lock() {
            conns.values().for_each(|s| s.close());
        }
        loop {
            let notified = self.all_closed.notified();
            if self.open.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl ConnState {
    fn close(&self) {
        self.close.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether the connection was told to close (by the sweeper or at shutdown).
    pub(crate) fn closing(&self) -> bool {
        self.close.load(Ordering::Acquire)
    }

    /// Counts a request in until the returned guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::SeqCst);
        self.head_since_ms.store(NO_HEAD, Ordering::Relaxed);
        self.head_expired.store(false, Ordering::Relaxed);
        Active(self.clone())
    }

    /// Bytes arrived while no request is in progress: the next request's head has begun.
    fn head_arriving(&self) {
        if self.active.load(Ordering::Relaxed) == 0
            && self.head_since_ms.load(Ordering::Relaxed) == NO_HEAD
        {
            self.head_since_ms
                .store(self.clock_ms.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// A request being served; dropping it (with the response body, or with the request's future
/// if the client went away) counts it out.
pub(crate) struct Active(Arc<ConnState>);

impl Drop for Active {
    fn drop(&mut self) {
        let s = &self.0;
        s.idle_since_ms
            .store(s.clock_ms.load(Ordering::Relaxed), Ordering::Relaxed);
        s.active.fetch_sub(1, Ordering::SeqCst);
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as active until hyper drops it.
    pub(crate) struct Counted<B> {
        #[pin]
        inner: B,
        active: Option<Active>,
    }
}

impl<B> Counted<B> {
    pub(crate) fn new(inner: B, active: Active) -> Self {
        Counted {
            inner,
            active: Some(active),
        }
    }
}

impl<B: Body<Data = Bytes>> Body for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(None) = polled {
            // The body is complete: the request no longer keeps its connection busy.
            this.active.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A connection that starts a graceful shutdown when its [`ConnState`] is told to close.
    pub(crate) struct Watched<C> {
        #[pin]
        conn: C,
        state: Arc<ConnState>,
        closing: bool,
    }
}

impl<C> Watched<C> {
    pub(crate) fn new(conn: C, state: Arc<ConnState>) -> Self {
        Watched {
            conn,
            state,
            closing: false,
        }
    }
}

/// A served connection that can be asked to finish what it serves and close (hyper-util's
/// `GracefulConnection` leaves out HTTP/1.1 connections that allow upgrades).
pub(crate) trait Graceful: Future<Output = Result<(), hyper::Error>> {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> Graceful for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http1::UpgradeableConnection::graceful_shutdown(self);
    }
}

impl<I, S, B, E> Graceful for hyper::server::conn::http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http2::Connection::graceful_shutdown(self);
    }
}

impl<C: Graceful> Future for Watched<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        this.state.waker.register(cx.waker());
        if this.state.closing() {
            if this.state.kill.load(Ordering::Acquire) {
                // Dropping the connection closes the socket.
                return Poll::Ready(Ok(()));
            }
            if !*this.closing {
                *this.closing = true;
                this.conn.as_mut().graceful_shutdown();
            }
        }
        this.conn.poll(cx)
    }
}

/// The answer to a request head that did not arrive within the header-read timeout.
const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 24\r\nconnection: close\r\n\r\nrequest header timeout\r\n";

/// A client's socket as hyper reads and writes it; for HTTP/1.1, it times request heads (see
/// the module's documentation).
pub(crate) struct Io<S> {
    stream: S,
    state: Arc<ConnState>,
    /// Whether request heads are timed (HTTP/1.1; HTTP/2 has no request heads to time).
    timed: bool,
}

/// A client stream the 408 can be written to directly (a TCP socket), or not (a TLS stream:
/// its bytes must be encrypted, so the connection just ends).
pub(crate) trait RawWrite {
    fn try_write_raw(&self, bytes: &[u8]);
}

impl RawWrite for TcpStream {
    fn try_write_raw(&self, bytes: &[u8]) {
        let _ = self.try_write(bytes);
    }
}

impl RawWrite for tokio_rustls::server::TlsStream<TcpStream> {
    fn try_write_raw(&self, _: &[u8]) {}
}

impl<S> Io<S> {
    pub(crate) fn new(stream: S, state: Arc<ConnState>, timed: bool) -> Self {
        if !timed {
            state.head_since_ms.store(NO_HEAD, Ordering::Relaxed);
        }
        Io {
            stream,
            state,
            timed,
        }
    }
}

impl<S: AsyncRead + Unpin + RawWrite> AsyncRead for Io<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.timed
            && this.state.head_expired.load(Ordering::Acquire)
            && this.state.active.load(Ordering::SeqCst) == 0
        {
            // No request is in progress, so nothing else is being written: answer and end the
            // stream (best effort: a client that reads nothing may not get it).
            this.stream.try_write_raw(REQUEST_TIMEOUT);
            this.timed = false;
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        if this.timed && buf.filled().len() > before {
            this.state.head_arriving();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Io<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_only_idle_connections() {
        let t = Tracker::new(Duration::from_millis(50), Duration::from_secs(3600));
        let (_, busy) = t.open();
        let (idle_id, idle) = t.open();
        let guard = busy.begin();
        t.sweep();
        assert!(!idle.closing() && !busy.closing());
        std::thread::sleep(Duration::from_millis(60));
        t.sweep();
        assert!(idle.closing(), "idle past the timeout");
        assert!(
            !idle.kill.load(Ordering::SeqCst),
            "asked to close gracefully first"
        );
        t.sweep();
        assert!(
            idle.kill.load(Ordering::SeqCst),
            "then cut off if still open"
        );
        assert!(!busy.closing(), "a request in progress keeps it open");
        drop(guard);
        t.sweep();
        assert!(
            !busy.closing(),
            "idle only from when its last request ended"
        );
        std::thread::sleep(Duration::from_millis(60));
        t.sweep();
        assert!(busy.closing());
        t.closed(idle_id);
        assert_eq!(t.open.load(Ordering::SeqCst), 1);
    }
}
