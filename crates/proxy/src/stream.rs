//! The byte stream to an instance: plain TCP, or TLS over it for `https://` instances.

use std::pin::Pin;
use std::task::{Context, Poll};

use foresight_http::tls::ClientStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connection's stream.
pub(crate) enum Stream {
    /// `http://`.
    Plain(TcpStream),
    /// `https://` (boxed: TLS state is large and the plain kind is the common one).
    Tls(Box<ClientStream<TcpStream>>),
}

impl Stream {
    /// Whether an idle connection is still usable: the instance has neither closed it nor
    /// sent anything unasked (for TLS: no record at all, since an alert such as `close_notify`
    /// means the end). Costs no system call unless the socket turned readable.
    pub(crate) fn is_idle_open(&self) -> bool {
        match self {
            Stream::Plain(s) => {
                matches!(s.try_read(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            }
            Stream::Tls(t) => {
                let (tcp, session) = t.get_ref();
                if session.wants_write() {
                    return false;
                }
                // Peeked, not read: the TLS layer must still see every byte.
                let mut byte = [0u8; 1];
                let mut buf = ReadBuf::new(&mut byte);
                let mut cx = Context::from_waker(std::task::Waker::noop());
                matches!(tcp.poll_peek(&mut cx, &mut buf), Poll::Pending)
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
        }
    }
}
