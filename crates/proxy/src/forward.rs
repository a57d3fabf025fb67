//! The request path: pick an instance, forward, stream the response back, account for it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use foresight_balance::RequestInfo;
use foresight_core::rng::stable_hash;
use foresight_http::{text, Body};
use http::{request::Parts, Request, Response, StatusCode, Uri, Version};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::config::{HashOn, ProxyConfig};
use crate::headers::{add_forwarded, strip_hop_by_hop};
use crate::metrics::BackendError;
use crate::pool::{Backend, Pool};

/// How many times a pick may land on a draining instance or the one that just failed before we
/// take what we get (a new snapshot is normally published within microseconds).
const MAX_REPICKS: usize = 4;

/// What the request path needs.
pub(crate) struct Forwarder {
    pub pool: Arc<Pool>,
    pub hash_on: HashOn,
    pub request_timeout: Duration,
    pub retries: u32,
}

impl Forwarder {
    pub fn new(pool: Arc<Pool>, config: &ProxyConfig) -> Self {
        Forwarder {
            pool,
            hash_on: config.balancer.hash_on.clone(),
            request_timeout: config.timeouts.request,
            retries: config.retries,
        }
    }

    /// Picks an instance and marks a request in flight on it, avoiding `avoid` (the instance that
    /// just failed) when there is a choice.
    fn pick(&self, info: &RequestInfo, avoid: Option<&Arc<Backend>>) -> Option<InFlight> {
        for attempt in 0..=MAX_REPICKS {
            let snap = self.pool.snapshot();
            let i = snap
                .balancer
                .pick(&snap.endpoints, info, self.pool.clock().now())?;
            let b = snap.backends[i].clone();
            drop(snap);
            let last = attempt == MAX_REPICKS;
            if !last && avoid.is_some_and(|a| Arc::ptr_eq(a, &b)) {
                continue;
            }
            b.load.begin();
            // See Pool::drain for why this check comes after the increment.
            if b.is_draining() || b.is_removed() {
                b.load.end();
                continue;
            }
            b.metrics.in_flight.inc();
            b.count_request();
            return Some(InFlight {
                backend: b,
                started: Instant::now(),
            });
        }
        None
    }

    /// Forwards one client request.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let (mut parts, body) = req.into_parts();
        let info = RequestInfo {
            hash_key: match &self.hash_on {
                HashOn::Path => Some(stable_hash(parts.uri.path().as_bytes())),
                HashOn::Header(name) => parts.headers.get(name).map(|v| stable_hash(v.as_bytes())),
            },
        };
        strip_hop_by_hop(&mut parts.headers);
        add_forwarded(&mut parts.headers, peer.ip());
        // A request without a body can be sent again if the first instance refused the
        // connection: nothing of it reached anyone.
        let bodiless = body.is_end_stream();
        let mut body = Some(body);
        let mut failed: Option<Arc<Backend>> = None;
        let mut attempt = 0;
        loop {
            let Some(flight) = self.pick(&info, failed.as_ref()) else {
                self.pool.metrics.no_backend.inc();
                return text(StatusCode::SERVICE_UNAVAILABLE, "no healthy instance\n");
            };
            let upstream_body = match body.take() {
                Some(b) if !bodiless => b.boxed(),
                _ => foresight_http::full(Bytes::new()),
            };
            let req = match upstream_request(&parts, &flight.backend, upstream_body) {
                Ok(r) => r,
                Err(_) => return text(StatusCode::BAD_REQUEST, "bad request target\n"),
            };
            let backend = flight.backend.clone();
            let outcome =
                tokio::time::timeout(self.request_timeout, self.pool.client().request(req)).await;
            match outcome {
                Ok(Ok(resp)) => {
                    let now = self.pool.clock().now();
                    backend.load.observe(flight.started.elapsed(), now);
                    let status = resp.status();
                    self.pool
                        .record_outcome(&backend, !status.is_server_error());
                    backend.metrics.count(status.as_u16());
                    let (mut rparts, rbody) = resp.into_parts();
                    strip_hop_by_hop(&mut rparts.headers);
                    let tracked = Tracked {
                        inner: rbody,
                        _flight: flight,
                    };
                    return Response::from_parts(rparts, tracked.boxed());
                }
                Ok(Err(e)) => {
                    let connect = e.is_connect();
                    self.pool.record_outcome(&backend, false);
                    self.count_error(&backend, if connect { "connect" } else { "protocol" });
                    drop(flight);
                    if connect && bodiless && attempt < self.retries {
                        attempt += 1;
                        self.pool.metrics.retries.inc();
                        tracing::debug!(backend = %backend.address, error = %e, "connect failed; retrying elsewhere");
                        failed = Some(backend);
                        continue;
                    }
                    tracing::debug!(backend = %backend.address, error = %e, "upstream error");
                    backend.metrics.count(502);
                    let msg = if connect {
                        "upstream connect error\n"
                    } else {
                        "upstream error\n"
                    };
                    return text(StatusCode::BAD_GATEWAY, msg);
                }
                Err(_) => {
                    self.pool.record_outcome(&backend, false);
                    self.count_error(&backend, "timeout");
                    backend.metrics.count(504);
                    return text(StatusCode::GATEWAY_TIMEOUT, "upstream timeout\n");
                }
            }
        }
    }

    fn count_error(&self, backend: &Backend, kind: &'static str) {
        self.pool
            .metrics
            .upstream_errors
            .get_or_create(&BackendError {
                backend: backend.address.clone(),
                kind,
            })
            .inc();
    }
}

/// The request as sent to `backend`: same method, path, query and (cleaned) headers, HTTP/1.1.
fn upstream_request(
    parts: &Parts,
    backend: &Backend,
    body: Body,
) -> Result<Request<Body>, http::Error> {
    let uri = Uri::builder()
        .scheme("http")
        .authority(backend.authority.clone())
        .path_and_query(parts.uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()?;
    let mut req = Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .version(Version::HTTP_11)
        .body(body)?;
    *req.headers_mut() = parts.headers.clone();
    Ok(req)
}

/// A request in flight on one instance; dropping it (when the response body has been sent, or
/// the request failed or was cancelled) ends it.
pub(crate) struct InFlight {
    backend: Arc<Backend>,
    started: Instant,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.backend.load.end();
        self.backend.metrics.in_flight.dec();
        self.backend
            .metrics
            .duration
            .observe(self.started.elapsed().as_secs_f64());
    }
}

/// The instance's response body, keeping its request in flight until the body is done.
struct Tracked {
    inner: Incoming,
    _flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
