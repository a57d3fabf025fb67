//! The request body towards an HTTP/2 instance: the client's, streamed as it comes, or read
//! whole first (up to a bound) so that a call can be sent again to another instance (gRPC
//! retries). Whatever was read ahead goes out first, then the rest of the client's body.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// Most bytes of a request body read ahead to make it replayable (a unary gRPC call's
/// request is small; a larger or streaming one goes out once, as it comes).
pub const MAX_REPLAY: usize = 64 * 1024;

/// A request body for one HTTP/2 exchange.
#[derive(Debug, Default)]
pub struct Replay {
    data: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    /// The client's body after what was read ahead (none once it has ended).
    rest: Option<Incoming>,
}

impl Replay {
    /// The client's body, streamed.
    pub fn streamed(body: Incoming) -> Replay {
        Replay {
            rest: Some(body),
            ..Replay::default()
        }
    }

    /// A whole body of the proxy's own (a health check).
    pub fn whole(data: Bytes) -> Replay {
        Replay {
            data: VecDeque::from([data]),
            ..Replay::default()
        }
    }

    /// Reads `body` ahead up to `limit` bytes: the whole of it (trailers too) when it ends
    /// within the bound, so that it can be sent again ([`Replay::again`]); otherwise what was
    /// read and the rest, to be sent once.
    pub async fn read_ahead(mut body: Incoming, limit: usize) -> Result<Replay, hyper::Error> {
        let mut r = Replay::default();
        let mut read = 0;
        while read <= limit {
            match body.frame().await {
                None => return Ok(r),
                Some(frame) => match frame?.into_data() {
                    Ok(d) => {
                        read += d.len();
                        r.data.push_back(d);
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            r.trailers = Some(t);
                        }
                        return Ok(r);
                    }
                },
            }
        }
        r.rest = Some(body);
        Ok(r)
    }

    /// The same body once more, if all of it was read ahead.
    pub fn again(&self) -> Option<Replay> {
        self.rest.is_none().then(|| Replay {
            data: self.data.clone(),
            trailers: self.trailers.clone(),
            rest: None,
        })
    }
}

impl Body for Replay {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(d) = this.data.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        if let Some(rest) = &mut this.rest {
            let polled = Pin::new(rest).poll_frame(cx);
            if let Poll::Ready(None) = polled {
                this.rest = None;
            }
            return polled;
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
            && self.trailers.is_none()
            && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let ahead: u64 = self.data.iter().map(|d| d.len() as u64).sum();
        match &self.rest {
            None => SizeHint::with_exact(ahead),
            Some(r) => {
                let h = r.size_hint();
                let mut s = SizeHint::new();
                s.set_lower(h.lower() + ahead);
                if let Some(u) = h.upper() {
                    s.set_upper(u + ahead);
                }
                s
            }
        }
    }
}
