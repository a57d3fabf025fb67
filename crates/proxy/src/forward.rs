//! The request path: pick an instance, forward, stream the response back, account for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use foresight_balance::RequestInfo;
use foresight_core::rng::stable_hash;
use foresight_http::Peer;
use http::header::{HeaderValue, CONTENT_TYPE, HOST};
use http::{Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::sync::{mpsc, oneshot};

use crate::admission::{Admission, Refusal};
use crate::body::{ResponseBody, Tracked};
use crate::config::{HashOn, RetryConfig, ServiceConfig};
use crate::deadline::Deadlines;
use crate::headers::{add_forwarded, strip_hop_by_hop};
use crate::metrics::BackendError;
use crate::pool::{Backend, Pool};
use crate::retry_budget::RetryBudget;

mod h2;
mod switch;

/// How many times a pick may land on a draining instance or the one that just failed before we
/// take what we get (a new snapshot is normally published within microseconds).
const MAX_REPICKS: usize = 4;

/// Request header that marks a priority request for PA-LBIMM: `high`, or a number above 0.
pub const PRIORITY_HEADER: &str = "x-foresight-priority";

fn priority_of(headers: &http::HeaderMap) -> u8 {
    match headers.get(PRIORITY_HEADER).and_then(|v| v.to_str().ok()) {
        None => 0,
        Some(v) if v.eq_ignore_ascii_case("high") => 1,
        Some(v) => v.trim().parse::<u8>().unwrap_or(0),
    }
}

/// A short plain-text answer from the proxy itself.
pub(crate) fn reply(status: StatusCode, msg: &'static str) -> Response<ResponseBody> {
    let mut r = Response::new(ResponseBody::Full(Full::new(Bytes::from_static(
        msg.as_bytes(),
    ))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// An instance's HTTP/1.1 answer on its way to the client: hop-by-hop fields removed, the
/// body streamed while the request stays in flight.
fn relay(
    resp: Response<crate::h1::Body>,
    flight: InFlight,
    backend: Arc<Backend>,
) -> Response<ResponseBody> {
    let (mut rparts, inner) = resp.into_parts();
    strip_hop_by_hop(&mut rparts.headers);
    let done = inner.is_end_stream();
    let mut tracked = Tracked {
        inner: Some(inner),
        flight: Some(flight),
        upstream: backend,
    };
    if done {
        // Nothing to stream: finish now rather than when hyper drops the body.
        tracked.finish();
    }
    Response::from_parts(rparts, ResponseBody::Upstream(tracked))
}

/// Methods the proxy forwards, for `Allow` on a refused CONNECT.
const ALLOW: &str = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE";

/// A request the proxy must not forward, answered at once (RFC 9112 §3.2, RFC 9110 §9.3.6):
/// CONNECT (this is not a forward proxy: 405), and an HTTP/1.1 request without exactly one
/// valid Host field line (400; HTTP/1.0 may go without, and the instance's address is sent).
pub(crate) fn refuse_target(parts: &http::request::Parts) -> Option<Response<ResponseBody>> {
    if parts.method == http::Method::CONNECT {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT is not supported: this is a reverse proxy\n",
        );
        r.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static(ALLOW));
        // What the client sends next may be tunnel bytes, not a request.
        r.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        return Some(r);
    }
    if parts.version == http::Version::HTTP_2 {
        return None;
    }
    let mut hosts = parts.headers.get_all(HOST).iter();
    let valid = match (hosts.next(), hosts.next()) {
        (Some(h), None) => {
            h.is_empty()
                || http::uri::Authority::try_from(h.as_bytes())
                    .is_ok_and(|a| !a.as_str().contains('@'))
        }
        (None, _) => parts.version != http::Version::HTTP_11,
        (Some(_), Some(_)) => false,
    };
    (!valid).then(|| {
        let mut r = reply(
            StatusCode::BAD_REQUEST,
            "an HTTP/1.1 request needs exactly one valid Host header field\n",
        );
        r.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        r
    })
}

/// What the request path needs.
pub(crate) struct Forwarder {
    pub pool: Arc<Pool>,
    pub hash_on: HashOn,
    pub request_timeout: Duration,
    /// Longest silence of a switched connection (`timeouts.tunnel_idle`).
    pub tunnel_idle: Duration,
    /// Whether the service's instances speak HTTP/2 (`protocol = "h2c"` or `"h2"`).
    pub h2: bool,
    pub retry: RetryConfig,
    budget: RetryBudget,
    admission: Arc<Admission>,
    /// For batch heuristics (Min-Min family): the queue of the task that assigns requests held
    /// for a batch window together.
    batcher: Option<mpsc::Sender<BatchItem>>,
    /// Keeps this forwarder's deadline sweeper running (it ends with the forwarder).
    _sweeping: Arc<()>,
}

/// A request waiting in the batch window, and where to send its instance.
type BatchItem = (RequestInfo, oneshot::Sender<Option<Arc<Backend>>>);

/// Requests assigned together at most.
const MAX_BATCH: usize = 64;

/// Collects requests for `window` after the first one (or until [`MAX_BATCH`]), assigns them
/// with the balancer's batch heuristic on the current snapshot, and marks each in flight on its
/// instance before handing it over. Ends when the forwarder is dropped.
async fn run_batcher(pool: Arc<Pool>, window: Duration, mut rx: mpsc::Receiver<BatchItem>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + window;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(item)) => batch.push(item),
                _ => break,
            }
        }
        let snap = pool.snapshot();
        let infos: Vec<RequestInfo> = batch.iter().map(|b| b.0).collect();
        let assigned = snap
            .balancer
            .assign_batch(&snap.endpoints, &infos, pool.clock().now())
            .unwrap_or_default();
        for (k, (_, reply)) in batch.into_iter().enumerate() {
            let backend = assigned
                .get(k)
                .and_then(|i| snap.backends.get(*i))
                .cloned()
                .filter(|b| {
                    b.load.begin();
                    // As in Forwarder::pick: a drain may have started since the snapshot.
                    let usable = !(b.is_draining() || b.is_removed());
                    if !usable {
                        b.load.end();
                    }
                    usable
                });
            let _ = reply.send(backend);
        }
    }
}

/// A request in flight on one instance; dropping it (when the response body has been sent, or
/// the request failed or was cancelled) ends it.
pub(crate) struct InFlight {
    pub(crate) backend: Arc<Backend>,
    /// The service's count of requests at its instances, when it has a concurrency limit.
    service: Option<Arc<std::sync::atomic::AtomicU64>>,
    started: Instant,
    /// When it ended, if the caller read the clock already; otherwise read when dropped.
    pub(crate) ended: Option<Instant>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(n) = &self.service {
            n.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.backend.load.end();
        self.backend.metrics.in_flight.dec();
        let ended = self.ended.unwrap_or_else(Instant::now);
        self.backend
            .metrics
            .duration
            .observe(ended.saturating_duration_since(self.started).as_secs_f64());
    }
}

impl Forwarder {
    pub fn new(pool: Arc<Pool>, config: &ServiceConfig) -> Self {
        let batcher = config.balancer.config.algorithm.is_batch().then(|| {
            let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
            tokio::spawn(run_batcher(pool.clone(), config.balancer.batch_window, rx));
            tx
        });
        let shortest = config
            .retries
            .per_try_timeout
            .map_or(config.timeouts.request, |p| p.min(config.timeouts.request));
        let sweeping = Arc::new(());
        tokio::spawn(Deadlines::run(
            Arc::downgrade(&pool.deadlines),
            Arc::downgrade(&sweeping),
            Deadlines::tick(shortest),
        ));
        let admission = Arc::new(Admission::new(
            config.rate_limit.as_ref(),
            config.max_requests,
        ));
        if config.rate_limit.is_some() {
            let weak = Arc::downgrade(&admission);
            tokio::spawn(async move {
                let mut t = tokio::time::interval(Duration::from_secs(10));
                loop {
                    t.tick().await;
                    match weak.upgrade() {
                        Some(a) => a.forget_idle(),
                        None => return,
                    }
                }
            });
        }
        Forwarder {
            admission,
            pool,
            hash_on: config.balancer.hash_on.clone(),
            request_timeout: config.timeouts.request,
            tunnel_idle: config.timeouts.tunnel_idle,
            h2: config.protocol.is_h2(),
            retry: config.retries.clone(),
            budget: RetryBudget::new(
                config.retries.budget_ratio,
                config.retries.budget_min_per_second,
                config.retries.budget_window,
            ),
            batcher,
            _sweeping: sweeping,
        }
    }

    /// An instance for the request: through the batch window for batch heuristics (the first
    /// attempt only), otherwise picked at once. `None` (counted as refused for want of an
    /// instance) when none is ready.
    async fn choose(&self, info: &RequestInfo, avoid: &[Arc<Backend>]) -> Option<InFlight> {
        let chosen = match (&self.batcher, avoid) {
            // Boxed: the batch window's channel futures would otherwise widen every request's
            // future (see `handle`).
            (Some(tx), []) => Box::pin(self.batched(tx, info)).await,
            _ => self.pick(info, avoid),
        };
        if chosen.is_none() {
            self.pool.metrics.no_backend.inc();
            self.pool.metrics.refused.inc();
        }
        chosen
    }

    /// An instance assigned by the batcher, or picked at once if the batcher is gone.
    async fn batched(&self, tx: &mpsc::Sender<BatchItem>, info: &RequestInfo) -> Option<InFlight> {
        let (reply, answer) = oneshot::channel();
        if tx.send((*info, reply)).await.is_ok() {
            if let Ok(Some(b)) = answer.await {
                return Some(self.started(b, Instant::now()));
            }
        }
        self.pick(info, &[])
    }

    /// Accounts a request that was marked in flight on `b`.
    fn started(&self, b: Arc<Backend>, at: Instant) -> InFlight {
        b.metrics.in_flight.inc();
        b.count_request();
        let service = self.admission.in_flight.clone();
        if let Some(n) = &service {
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        InFlight {
            service,
            backend: b,
            started: at,
            ended: None,
        }
    }

    /// Picks an instance and marks a request in flight on it, avoiding the instances in `avoid`
    /// (those this request already failed on) whenever another one is eligible: the balancer
    /// is asked again a few times, then the first eligible instance not yet tried is taken.
    fn pick(&self, info: &RequestInfo, avoid: &[Arc<Backend>]) -> Option<InFlight> {
        let at = Instant::now();
        let now = self.pool.clock().at(at);
        let tried = |b: &Arc<Backend>| avoid.iter().any(|a| Arc::ptr_eq(a, b));
        for attempt in 0..=MAX_REPICKS {
            let snap = self.pool.snapshot();
            let i = snap.balancer.pick(&snap.endpoints, info, now)?;
            let mut b = snap.backends[i].clone();
            if tried(&b) {
                if attempt < MAX_REPICKS {
                    continue;
                }
                // The balancer keeps choosing a failed instance (a refused connect is fast, so
                // a latency-aware balancer likes it): take an untried one if there is one.
                if let Some(other) = snap.backends.iter().find(|c| !tried(c)) {
                    b = other.clone();
                }
            }
            drop(snap);
            b.load.begin();
            // See Pool::drain for why this check comes after the increment.
            if b.is_draining() || b.is_removed() {
                b.load.end();
                continue;
            }
            return Some(self.started(b, at));
        }
        None
    }

    /// Forwards one client request. Takes the forwarder by `Arc` so that this future is the
    /// whole per-request future, without a wrapper that owns the `Arc` (see
    /// `tests::request_future_stays_small`).
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: Peer,
    ) -> Response<ResponseBody> {
        let (mut parts, body) = req.into_parts();
        let info = match self.admit(&mut parts, &peer) {
            Ok(info) => info,
            Err(why) => return self.refuse(why),
        };
        // A request without a body can be sent again if the first instance refused the
        // connection: nothing of it reached anyone. An idempotent one (RFC 9110 §9.2.2) can
        // be sent again after an answer or a timeout too.
        let bodiless = body.is_end_stream();
        let idempotent = bodiless
            && matches!(
                parts.method,
                http::Method::GET
                    | http::Method::HEAD
                    | http::Method::OPTIONS
                    | http::Method::TRACE
                    | http::Method::PUT
                    | http::Method::DELETE
            );
        let mut body = if bodiless { None } else { Some(body) };
        // Instances this request failed on (allocated only on a retry).
        let mut tried: Vec<Arc<Backend>> = Vec::new();
        let mut attempt = 0;
        let mut first: Option<Instant> = None;
        loop {
            let Some(flight) = self.choose(&info, &tried).await else {
                return reply(StatusCode::SERVICE_UNAVAILABLE, "no healthy instance\n");
            };
            let backend = flight.backend.clone();
            let first = *first.get_or_insert_with(|| {
                self.budget.deposit(self.pool.clock().at(flight.started));
                flight.started
            });
            // What is left of the request's time, and of it this try's.
            let left = self
                .request_timeout
                .saturating_sub(flight.started.saturating_duration_since(first));
            let this_try = self.retry.per_try_timeout.map_or(left, |p| p.min(left));
            let deadline = (self.pool.deadlines).deadline(flight.started, this_try);
            let exchanged = (backend.upstream)
                .exchange(&parts, &mut body, flight.started, deadline)
                .await;
            match exchanged {
                Ok(resp) => {
                    let at = Instant::now();
                    let now = self.pool.clock().at(at);
                    backend
                        .load
                        .observe(at.saturating_duration_since(flight.started), now);
                    let status = resp.status();
                    self.pool
                        .record_outcome(&backend, !status.is_server_error());
                    backend.metrics.count(status.as_u16());
                    if idempotent
                        && self.retry.on_status.contains(&status.as_u16())
                        && attempt < self.retry.attempts
                        && self.withdraw(at)
                    {
                        // The answer is dropped unread, and its connection with it.
                        drop((resp, flight));
                        attempt += 1;
                        self.pool.metrics.retries.inc();
                        tried.push(backend);
                        continue;
                    }
                    if status == StatusCode::SERVICE_UNAVAILABLE {
                        self.pool.metrics.refused.inc();
                    }
                    return relay(resp, flight, backend);
                }
                Err(e) if e.is_client() => {
                    // The client's body broke off or crawled: nothing to hold against the
                    // instance.
                    tracing::debug!(backend = %backend.address, error = %e, "client request body failed");
                    return if e.is_timeout() {
                        reply(StatusCode::REQUEST_TIMEOUT, "request body too slow\n")
                    } else {
                        reply(StatusCode::BAD_REQUEST, "request body error\n")
                    };
                }
                Err(e) if e.is_timeout() => {
                    self.pool.record_outcome(&backend, false);
                    self.count_error(&backend, "timeout");
                    backend.metrics.count(504);
                    let at = Instant::now();
                    let time_left = at.saturating_duration_since(first) < self.request_timeout;
                    if idempotent
                        && this_try < left
                        && time_left
                        && attempt < self.retry.attempts
                        && self.withdraw(at)
                    {
                        drop(flight);
                        attempt += 1;
                        self.pool.metrics.retries.inc();
                        tried.push(backend);
                        continue;
                    }
                    return reply(StatusCode::GATEWAY_TIMEOUT, "upstream timeout\n");
                }
                Err(e) => {
                    let connect = e.is_connect();
                    self.pool.record_outcome(&backend, false);
                    self.count_error(&backend, if connect { "connect" } else { "protocol" });
                    drop(flight);
                    if connect
                        && bodiless
                        && attempt < self.retry.attempts
                        && self.withdraw(Instant::now())
                    {
                        attempt += 1;
                        self.pool.metrics.retries.inc();
                        tracing::debug!(backend = %backend.address, error = %e, "connect failed; retrying elsewhere");
                        tried.push(backend);
                        continue;
                    }
                    tracing::debug!(backend = %backend.address, error = %e, "upstream error");
                    backend.metrics.count(502);
                    return reply(
                        StatusCode::BAD_GATEWAY,
                        if connect {
                            "upstream connect error\n"
                        } else {
                            "upstream error\n"
                        },
                    );
                }
            }
        }
    }

    /// What every request goes through before an instance is chosen: counted, admitted (rate
    /// limits, `max_requests`), its balancing key read, its header fields rewritten for the
    /// instance (hop-by-hop removed, `X-Forwarded-*` added, Host from an absolute target).
    fn admit(&self, parts: &mut http::request::Parts, peer: &Peer) -> Result<RequestInfo, Refusal> {
        self.pool.metrics.client_requests.inc();
        if self.admission.is_active() {
            self.admission.check(peer.addr.ip(), &parts.headers)?;
        }
        let info = RequestInfo {
            hash_key: match &self.hash_on {
                HashOn::Path => Some(stable_hash(parts.uri.path().as_bytes())),
                HashOn::Header(name) => parts.headers.get(name).map(|v| stable_hash(v.as_bytes())),
            },
            cost: 0.0,
            priority: priority_of(&parts.headers),
        };
        strip_hop_by_hop(&mut parts.headers);
        add_forwarded(&mut parts.headers, &peer.ip_header);
        if let Some(authority) = parts.uri.authority() {
            // An absolute-form target's authority replaces Host (RFC 9112 §3.2.2); HTTP/2
            // clients send :authority instead of Host, and HTTP/1.1 instances need Host.
            if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
                parts.headers.insert(HOST, v);
            }
        }
        Ok(info)
    }

    /// The answer to a request the service's admission turned away.
    fn refuse(&self, why: Refusal) -> Response<ResponseBody> {
        match why {
            Refusal::RateLimited(wait) => {
                self.pool.metrics.rate_limited.inc();
                let mut r = reply(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded\n");
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                r.headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
                r
            }
            Refusal::Busy => {
                self.pool.metrics.shed.inc();
                self.pool.metrics.refused.inc();
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the service is at its concurrency limit\n",
                )
            }
        }
    }

    /// Takes a retry from the service's budget, counting when it has none left.
    fn withdraw(&self, at: Instant) -> bool {
        let ok = self.budget.try_withdraw(self.pool.clock().at(at));
        if !ok {
            self.pool.metrics.retry_budget_exhausted.inc();
        }
        ok
    }

    fn count_error(&self, backend: &Backend, kind: &'static str) {
        self.pool
            .metrics
            .families
            .upstream_errors
            .get_or_create(&BackendError {
                service: backend.metrics.label.service.clone(),
                backend: backend.address.clone(),
                kind,
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Upstream;
    use http::request::Parts;

    /// Size of the future that `f` returns, without calling it.
    fn returned_size<A, B, C, F>(_f: impl Fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every request's future is moved a few times on its way into hyper's dispatcher (each
    /// move a `memcpy` of its full size), so it must stay small: cold paths (connects, the
    /// batch window, a resend on a fresh connection) are boxed. It was 5.7 KB before they were,
    /// 2.1 KB after, and 1.9 KB once the upstream exchange was the proxy's own (debug build).
    #[test]
    fn request_future_stays_small() {
        let handle = returned_size(|f: Arc<Forwarder>, req: Request<Incoming>, peer: Peer| {
            f.handle(req, peer)
        });
        let exchange = returned_size(
            |u: &'static Upstream, p: &'static Parts, body: &'static mut Option<Incoming>| {
                u.exchange(p, body, Instant::now(), 0)
            },
        );
        assert!(
            handle <= 2048,
            "Forwarder::handle's future is {handle} bytes"
        );
        assert!(exchange <= 1280, "exchange's future is {exchange} bytes");
    }
}
