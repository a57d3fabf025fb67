//! The pool of instances: every member with its state, and the immutable snapshot of eligible
//! members that the request path reads.
//!
//! Readers never lock: a request loads the current [`Snapshot`] (arc-swap), picks, and goes.
//! Writers (admin API, health checks, ejections) take the members lock, change state, and
//! publish a new snapshot with a freshly built balancer. Per-instance load counters live in the
//! members and survive snapshots.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use foresight_balance::{build, Balancer, Endpoint, Load};
use foresight_core::{rng::stable_hash, Time};
use http::uri::Authority;
use serde::Serialize;

use crate::config::{
    BackendSpec, BalancerSettings, HealthCheckConfig, OutlierConfig, ServiceConfig, Timeouts,
    UpstreamTls,
};
use crate::deadline::Deadlines;
use crate::health::HealthState;
use crate::metrics::{BackendMetrics, ProxyMetrics, ServiceMetrics};
use crate::outlier::EjectionState;
use crate::upstream::Upstream;

/// Maps the process's monotonic clock onto [`Time`] (epoch = proxy start), the one place the
/// proxy reads a clock for the algorithms.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock whose epoch is now.
    pub fn new() -> Self {
        Clock {
            origin: Instant::now(),
        }
    }

    /// The current time.
    pub fn now(&self) -> Time {
        self.at(Instant::now())
    }

    /// The time at `instant`, for a caller that has read the clock already (each read is a
    /// `clock_gettime`, and the request path needs the same instant several times).
    pub fn at(&self, instant: Instant) -> Time {
        Time::from_nanos(instant.saturating_duration_since(self.origin).as_nanos() as u64)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// One instance and everything the proxy knows about it.
pub struct Backend {
    /// As configured: metrics label and admin key.
    pub address: String,
    /// The address, shared with the access log's lines.
    pub(crate) log_name: Arc<str>,
    /// What makes two addresses one instance (see [`crate::config::instance_key`]).
    pub identity: String,
    /// `host:port` to connect to.
    pub authority: Authority,
    /// Relative capacity.
    pub weight: u32,
    /// In-flight and latency, read by the balancer.
    pub load: Arc<Load>,
    key: u64,
    healthy: AtomicBool,
    ejected: AtomicBool,
    draining: AtomicBool,
    removed: AtomicBool,
    consecutive_errors: AtomicU32,
    requests: AtomicU64,
    control: Mutex<Control>,
    pub(crate) metrics: BackendMetrics,
    /// Its kept-alive connections.
    pub(crate) upstream: Upstream,
}

struct Control {
    health: HealthState,
    ejection: EjectionState,
}

impl Backend {
    /// Whether the instance has left the pool.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::SeqCst)
    }

    /// Whether the instance is draining (gets no new requests).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    fn eligible(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
            && !self.ejected.load(Ordering::SeqCst)
            && !self.draining.load(Ordering::SeqCst)
            && !self.removed.load(Ordering::SeqCst)
    }

    fn control(&self) -> MutexGuard<'_, Control> {
        // A panic while holding this lock leaves plain data behind; keep using it.
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("address", &self.address)
            .finish()
    }
}

/// The eligible instances at one moment, with the balancer built for them.
pub struct Snapshot {
    /// Eligible instances; index `i` here is index `i` in `endpoints`.
    pub backends: Vec<Arc<Backend>>,
    /// The balancer's view of them.
    pub endpoints: Vec<Endpoint>,
    /// Built for exactly `endpoints`.
    pub balancer: Box<dyn Balancer>,
}

/// What the admin API shows for an instance.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct BackendStatus {
    /// As configured.
    pub address: String,
    /// Relative capacity.
    pub weight: u32,
    /// Passes active health checks.
    pub healthy: bool,
    /// Ejected by outlier detection.
    pub ejected: bool,
    /// Time left in the ejection.
    pub ejected_for_ms: u64,
    /// Draining: no new requests, removed when in-flight reaches zero.
    pub draining: bool,
    /// Gets new requests now.
    pub eligible: bool,
    /// Requests in flight.
    pub in_flight: u32,
    /// Requests sent to it since it joined.
    pub requests: u64,
    /// Peak-EWMA latency estimate.
    pub rtt_estimate_ms: f64,
    /// Kept-alive connections to it, idle now.
    pub idle_connections: usize,
    /// The control loop's forecast of its load (req/s), read by `forecast-aware`.
    pub forecast_rps: Option<f64>,
}

/// Result of a drain.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct DrainReport {
    /// The instance.
    pub address: String,
    /// How long the drain waited for in-flight requests.
    pub waited_ms: u64,
    /// Requests still in flight when it was removed (non-zero only after `drain_timeout`).
    pub abandoned_in_flight: u32,
}

/// The member of `members` that `address` names (see [`Pool::find`]).
fn find<'a>(members: &'a [Arc<Backend>], address: &str) -> Option<&'a Arc<Backend>> {
    members.iter().find(|b| b.address == address).or_else(|| {
        let key = crate::config::key_of(address)?;
        members.iter().find(|b| b.identity == key)
    })
}

/// Errors of pool changes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    /// Adding an address that is already a member (the member's address as configured).
    #[error("backend {0} is already in the pool")]
    Exists(String),
    /// Naming an address that is not a member.
    #[error("backend {0} is not in the pool")]
    NotFound(String),
    /// An `https://` instance whose TLS cannot be set up (its name, the system's roots).
    #[error("backend {0}: {1}")]
    Tls(String, String),
}

/// The pool.
pub struct Pool {
    members: Mutex<Vec<Arc<Backend>>>,
    snapshot: ArcSwap<Snapshot>,
    balancer: BalancerSettings,
    outlier: Option<OutlierConfig>,
    health: Option<HealthCheckConfig>,
    /// TLS to `https://` instances (`None`: the system's roots, loaded on first use).
    /// What its instances speak.
    protocol: crate::config::UpstreamProtocol,
    h2_max_streams: u32,
    upstream_tls: Option<UpstreamTls>,
    clock: Clock,
    timeouts: Timeouts,
    pub(crate) metrics: ServiceMetrics,
    /// Every upstream connection's request deadline, for the sweeper.
    pub(crate) deadlines: Arc<Deadlines>,
}

impl Pool {
    /// An empty pool for `service`'s settings, its series in `metrics`.
    pub(crate) fn new(
        service: &ServiceConfig,
        clock: Clock,
        metrics: &Arc<ProxyMetrics>,
    ) -> Arc<Pool> {
        let balancer = service.balancer.clone();
        let empty = Snapshot {
            backends: Vec::new(),
            endpoints: Vec::new(),
            balancer: build(&balancer.config, &[]),
        };
        Arc::new(Pool {
            members: Mutex::new(Vec::new()),
            snapshot: ArcSwap::from_pointee(empty),
            balancer,
            outlier: service.outlier,
            health: service.health_check.clone(),
            upstream_tls: service.upstream_tls.clone(),
            protocol: service.protocol,
            h2_max_streams: service.h2_max_streams,
            clock,
            timeouts: service.timeouts,
            metrics: metrics.for_service(&service.name),
            deadlines: Deadlines::new(),
        })
    }

    /// A pool with `service`'s balancer, outlier, health and timeout settings (and none of its
    /// instances) that no listener serves: for tools and tests that drive membership, counters
    /// and the control loop without a proxy. Health checks, if configured, do not run.
    pub fn detached(service: &ServiceConfig) -> Arc<Pool> {
        Pool::new(service, Clock::new(), &Arc::new(ProxyMetrics::new()))
    }

    /// The service's name.
    pub fn service(&self) -> &str {
        &self.metrics.service
    }

    /// The Prometheus text of every service's metrics (they share one registry).
    pub fn render_metrics(&self) -> String {
        self.metrics.families.render()
    }

    /// The clock the algorithms are given.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The current snapshot (lock-free).
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    fn members(&self) -> MutexGuard<'_, Vec<Arc<Backend>>> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an instance. With health checks enabled, `start_healthy = false` keeps it out of
    /// rotation until `rise` checks pass (instances added at run time may still be starting).
    pub fn add(
        self: &Arc<Self>,
        spec: BackendSpec,
        start_healthy: bool,
    ) -> Result<Arc<Backend>, PoolError> {
        let start_healthy = start_healthy || self.health.is_none();
        if self.protocol == crate::config::UpstreamProtocol::H2 && !spec.tls {
            return Err(PoolError::Tls(
                spec.address.clone(),
                "`protocol = \"h2\"` is HTTP/2 over TLS: the instance needs an `https://` address"
                    .into(),
            ));
        }
        let tls = if spec.tls {
            let fail = |e: String| PoolError::Tls(spec.address.clone(), e);
            let t = match &self.upstream_tls {
                Some(t) => t.clone(),
                None => UpstreamTls::system().map_err(fail)?,
            };
            Some(
                t.target(&spec.authority, self.protocol.is_h2())
                    .map_err(fail)?,
            )
        } else {
            None
        };
        let backend = {
            let mut members = self.members();
            if let Some(same) = members.iter().find(|b| b.identity == spec.key) {
                return Err(PoolError::Exists(same.address.clone()));
            }
            let backend = Arc::new(Backend {
                key: stable_hash(spec.address.as_bytes()),
                load: Arc::new(Load::new(self.balancer.ewma, self.clock.now())),
                healthy: AtomicBool::new(start_healthy),
                ejected: AtomicBool::new(false),
                draining: AtomicBool::new(false),
                removed: AtomicBool::new(false),
                consecutive_errors: AtomicU32::new(0),
                requests: AtomicU64::new(0),
                control: Mutex::new(Control {
                    health: HealthState::new(start_healthy),
                    ejection: EjectionState::default(),
                }),
                metrics: self.metrics.for_backend(&spec.address),
                upstream: Upstream::new(
                    spec.authority.clone(),
                    self.timeouts.connect,
                    self.timeouts.upstream_idle,
                    self.deadlines.clone(),
                    tls,
                )
                .speaking(self.protocol, self.h2_max_streams),
                log_name: Arc::from(spec.address.as_str()),
                address: spec.address,
                identity: spec.key,
                authority: spec.authority,
                weight: spec.weight,
            });
            members.push(backend.clone());
            self.publish(&members);
            backend
        };
        if let Some(h) = &self.health {
            tokio::spawn(crate::health::check_loop(
                self.clone(),
                Arc::downgrade(&backend),
                h.clone(),
            ));
        }
        tracing::info!(service = %self.metrics.service, backend = %backend.address, weight = backend.weight, healthy = start_healthy, "backend added");
        Ok(backend)
    }

    /// The member that `address` names: written as configured, or any way that
    /// [`crate::config::instance_key`] takes to be the same instance.
    pub fn find(&self, address: &str) -> Option<Arc<Backend>> {
        find(&self.members(), address).cloned()
    }

    /// Removes an instance at once; its in-flight requests still complete. `address` is any
    /// way of writing it ([`Pool::find`]).
    pub fn remove(&self, address: &str) -> Result<(), PoolError> {
        let mut members = self.members();
        let b = find(&members, address)
            .cloned()
            .ok_or_else(|| PoolError::NotFound(address.to_string()))?;
        members.retain(|m| !Arc::ptr_eq(m, &b));
        b.removed.store(true, Ordering::SeqCst);
        self.publish(&members);
        self.metrics.forget(&b.address);
        tracing::info!(service = %self.metrics.service, backend = %b.address, "backend removed");
        Ok(())
    }

    /// Drains an instance: no new requests from now on; once its in-flight requests have
    /// finished (or `timeout` passed) it is removed.
    pub async fn drain(&self, address: &str, timeout: Duration) -> Result<DrainReport, PoolError> {
        let backend = self.stop_new_requests(address)?;
        Ok(self.finish_drain(backend, timeout).await)
    }

    /// A drain's first half, at once: the instance takes no new request from the moment this
    /// returns. Who answers before waiting for [`Pool::finish_drain`] (a reload's reply) is
    /// then truthful about what the pool serves.
    pub fn stop_new_requests(&self, address: &str) -> Result<Arc<Backend>, PoolError> {
        let members = self.members();
        let b = find(&members, address)
            .cloned()
            .ok_or_else(|| PoolError::NotFound(address.to_string()))?;
        // Set before publishing and before reading in-flight: a request that picked from
        // an older snapshot increments in-flight and then checks this flag (both SeqCst),
        // so either we see its request or it sees the flag and picks again.
        b.draining.store(true, Ordering::SeqCst);
        self.publish(&members);
        Ok(b)
    }

    /// A drain's second half: waits for `backend`'s in-flight requests (at most `timeout`),
    /// then removes it.
    pub async fn finish_drain(&self, backend: Arc<Backend>, timeout: Duration) -> DrainReport {
        tracing::info!(service = %self.metrics.service, backend = %backend.address, in_flight = backend.load.in_flight(), "draining");
        let started = Instant::now();
        while backend.load.in_flight() > 0 && started.elapsed() < timeout {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let left = backend.load.in_flight();
        if left > 0 {
            tracing::warn!(service = %self.metrics.service, backend = %backend.address, in_flight = left, "drain timed out; removing anyway");
        }
        // Already removed by someone else is fine: the drain's goal is met.
        let _ = self.remove(&backend.address);
        DrainReport {
            address: backend.address.clone(),
            waited_ms: started.elapsed().as_millis() as u64,
            abandoned_in_flight: left,
        }
    }

    /// Whether `other` would build the same pool: balancer, health checks, outlier ejection,
    /// TLS to instances and the timeouts towards them (a reload keeps a pool, and its instances' state,
    /// when these are unchanged).
    pub(crate) fn same_settings(&self, other: &ServiceConfig) -> bool {
        self.balancer == other.balancer
            && self.health == other.health_check
            && self.outlier == other.outlier
            && self.upstream_tls == other.upstream_tls
            && self.protocol == other.protocol
            && self.h2_max_streams == other.h2_max_streams
            && self.timeouts.connect == other.timeouts.connect
            && self.timeouts.upstream_idle == other.timeouts.upstream_idle
    }

    /// The members, as `(address, identity, weight)`.
    pub(crate) fn members_now(&self) -> Vec<(String, String, u32)> {
        self.members()
            .iter()
            .map(|b| (b.address.clone(), b.identity.clone(), b.weight))
            .collect()
    }

    /// Retires a pool that a reload replaced: after `grace` (requests that chose it just
    /// before the swap still find their instances) every instance is drained and removed;
    /// the series of instances named in `keep` (served on by the new pool) stay.
    pub(crate) fn retire(
        self: Arc<Self>,
        grace: Duration,
        drain_timeout: Duration,
        keep: Vec<String>,
    ) {
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let members: Vec<Arc<Backend>> = {
                let m = self.members();
                for b in m.iter() {
                    b.draining.store(true, Ordering::SeqCst);
                }
                self.publish(&m);
                m.clone()
            };
            let started = Instant::now();
            while members.iter().any(|b| b.load.in_flight() > 0)
                && started.elapsed() < drain_timeout
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let mut m = self.members();
            for b in m.iter() {
                b.removed.store(true, Ordering::SeqCst);
                if !keep.contains(&b.address) {
                    self.metrics.forget(&b.address);
                }
            }
            m.clear();
            self.publish(&m);
            tracing::debug!(service = %self.metrics.service, "replaced pool retired");
        });
    }

    /// Requests received from clients since start (all of them, served or not).
    pub fn client_requests(&self) -> u64 {
        self.metrics.client_requests.get()
    }

    /// Switched (WebSocket) connections open now, to any instance.
    pub fn open_upgraded(&self) -> u64 {
        self.metrics.upgraded_open.get().max(0) as u64
    }

    /// Requests answered 503 since start (by an instance or for lack of an eligible one).
    pub fn refused(&self) -> u64 {
        self.metrics.refused.get()
    }

    /// Forecast-aware balancing: splits the `planned` load (req/s) over the eligible instances
    /// by effective capacity, `capacity_rps` each times its slow-start factor now
    /// ([`foresight_balance::split_planned_load`]); `None` clears every forecast.
    pub fn share_planned_load(&self, planned: Option<f64>, capacity_rps: f64) {
        let snapshot = self.snapshot();
        let now = self.clock.now();
        let slow_start = self.balancer.config.slow_start;
        let members: Vec<(f64, f64)> = snapshot
            .backends
            .iter()
            .map(|b| {
                let factor = slow_start.map_or(1.0, |s| s.factor(b.load.created(), now));
                (capacity_rps, factor)
            })
            .collect();
        let split = foresight_balance::split_planned_load(planned.unwrap_or(f64::NAN), &members);
        for (b, (predicted, capacity)) in snapshot.backends.iter().zip(split) {
            b.load.set_forecast(predicted, capacity);
        }
    }

    /// Every member's state.
    pub fn status(&self) -> Vec<BackendStatus> {
        let now = self.clock.now();
        self.members()
            .iter()
            .map(|b| {
                let c = b.control();
                BackendStatus {
                    address: b.address.clone(),
                    weight: b.weight,
                    healthy: c.health.healthy(),
                    ejected: c.ejection.is_ejected(now),
                    ejected_for_ms: c.ejection.remaining(now).as_millis() as u64,
                    draining: b.is_draining(),
                    eligible: b.eligible(),
                    in_flight: b.load.in_flight(),
                    requests: b.requests.load(Ordering::Relaxed),
                    rtt_estimate_ms: b.load.rtt_estimate_ns(now) / 1e6,
                    idle_connections: b.upstream.idle_count(),
                    forecast_rps: b.load.forecast().map(|(p, _)| p),
                }
            })
            .collect()
    }

    /// Records an active health probe.
    pub(crate) fn record_health(&self, b: &Backend, ok: bool) {
        let cfg = match &self.health {
            Some(h) => h,
            None => return,
        };
        let changed = {
            let mut c = b.control();
            let transition = c.health.record(ok, cfg.rise, cfg.fall);
            let changed = transition.is_some();
            // A passing probe does not end an ejection: an instance that answers its health
            // path but fails (or hangs on) real requests stays out until the ejection's time
            // is up. (Envoy ends ejections on a passing active check by default,
            // `successful_active_health_check_uneject_host`; a probe of `/ready` says nothing
            // about the requests that ejected it.)
            if let Some(h) = transition {
                b.healthy.store(h, Ordering::SeqCst);
                if h {
                    tracing::info!(service = %self.metrics.service, backend = %b.address, "backend healthy");
                } else {
                    tracing::warn!(service = %self.metrics.service, backend = %b.address, "backend unhealthy");
                }
            }
            changed
        };
        if changed {
            self.publish(&self.members());
        }
    }

    /// Records the outcome of a request for outlier detection.
    pub(crate) fn record_outcome(&self, b: &Backend, success: bool) {
        if success {
            if b.consecutive_errors.load(Ordering::Relaxed) != 0 {
                b.consecutive_errors.store(0, Ordering::Relaxed);
            }
            return;
        }
        let Some(cfg) = &self.outlier else { return };
        let n = b.consecutive_errors.fetch_add(1, Ordering::Relaxed) + 1;
        if n < cfg.consecutive_errors {
            return;
        }
        let members = self.members();
        if b.is_removed() {
            return;
        }
        let ejected_now = members
            .iter()
            .filter(|m| m.ejected.load(Ordering::SeqCst))
            .count();
        let now = self.clock.now();
        let until = b
            .control()
            .ejection
            .on_threshold(cfg, now, ejected_now, members.len());
        if let Some(until) = until {
            b.ejected.store(true, Ordering::SeqCst);
            b.consecutive_errors.store(0, Ordering::Relaxed);
            self.metrics
                .families
                .ejections
                .get_or_create(&b.metrics.label)
                .inc();
            tracing::warn!(
                service = %self.metrics.service,
                backend = %b.address,
                errors = n,
                for_ms = until.saturating_since(now).as_millis() as u64,
                "backend ejected"
            );
            self.publish(&members);
        }
    }

    /// Returns instances whose ejection has ended to rotation. Called periodically.
    pub(crate) fn tick(&self) {
        let now = self.clock.now();
        let members = self.members();
        let mut changed = false;
        for b in members.iter() {
            if b.ejected.load(Ordering::SeqCst) && !b.control().ejection.is_ejected(now) {
                b.ejected.store(false, Ordering::SeqCst);
                tracing::info!(service = %self.metrics.service, backend = %b.address, "ejection ended");
                changed = true;
            }
        }
        if changed {
            self.publish(&members);
        }
    }

    /// Builds and swaps in a snapshot of the eligible members. Called with the members lock.
    fn publish(&self, members: &[Arc<Backend>]) {
        let eligible: Vec<Arc<Backend>> =
            members.iter().filter(|b| b.eligible()).cloned().collect();
        let endpoints: Vec<Endpoint> = eligible
            .iter()
            .map(|b| Endpoint {
                key: b.key,
                weight: b.weight,
                capacity: 0,
                load: b.load.clone(),
            })
            .collect();
        let balancer = build(&self.balancer.config, &endpoints);
        for b in members {
            self.metrics
                .families
                .healthy
                .get_or_create(&b.metrics.label)
                .set(i64::from(
                    b.healthy.load(Ordering::SeqCst) && !b.ejected.load(Ordering::SeqCst),
                ));
        }
        self.snapshot.store(Arc::new(Snapshot {
            backends: eligible,
            endpoints,
            balancer,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A detached pool of `toml`'s first service, its backends added, and that service.
    fn pool_from(toml: &str) -> (Arc<Pool>, ServiceConfig) {
        let cfg = crate::config::RawConfig::from_toml(toml, "test")
            .unwrap()
            .validate()
            .unwrap();
        let service = cfg.services[0].clone();
        let pool = Pool::detached(&service);
        for spec in &service.backends {
            pool.add(spec.clone(), true).unwrap();
        }
        (pool, service)
    }

    #[tokio::test]
    async fn the_planned_load_is_split_by_effective_capacity() {
        let pool_with = |balancer: &str| {
            pool_from(&format!(
                "backends = [{{ address = \"http://127.0.0.1:9001\" }}, {{ address = \"http://127.0.0.1:9002\" }}]\n[balancer]\nalgorithm = \"forecast-aware\"\n{balancer}"
            ))
            .0
        };
        let forecasts = |pool: &Pool| -> Vec<Option<(f64, f64)>> {
            pool.snapshot()
                .backends
                .iter()
                .map(|b| b.load.forecast())
                .collect()
        };
        let warm = pool_with("");
        warm.share_planned_load(Some(30.0), 20.0);
        assert_eq!(forecasts(&warm), vec![Some((15.0, 20.0)); 2]);
        warm.share_planned_load(None, 20.0);
        assert_eq!(forecasts(&warm), vec![None; 2]);
        // Both just joined an hour-long slow start: each counts with its 10% floor.
        let young = pool_with("slow_start_window = \"1h\"");
        young.share_planned_load(Some(30.0), 20.0);
        for f in forecasts(&young) {
            let (p, c) = f.unwrap();
            assert!((p - 15.0).abs() < 1e-9 && (c - 2.0).abs() < 1e-3, "{p} {c}");
        }
    }

    #[tokio::test]
    async fn a_removed_instance_leaves_no_series_behind() {
        let (pool, _) = pool_from("backends = [{ address = \"http://127.0.0.1:9001\" }]");
        let size = || pool.render_metrics().len();
        let steady = size();
        for i in 0..300 {
            let address = format!("http://127.0.0.1:{}", 20_000 + i);
            let spec = crate::config::parse_backend("backends", &address, None).unwrap();
            let b = pool.add(spec, true).unwrap();
            // Every kind of series an instance gets under traffic.
            b.metrics.count(200);
            b.metrics.count(503);
            b.metrics.duration.observe(0.01);
            pool.metrics
                .families
                .upstream_errors
                .get_or_create(&crate::metrics::BackendError {
                    service: b.metrics.label.service.clone(),
                    backend: b.address.clone(),
                    kind: "connect",
                })
                .inc();
            pool.metrics
                .families
                .ejections
                .get_or_create(&b.metrics.label)
                .inc();
            pool.remove(&b.address).unwrap();
        }
        let text = pool.render_metrics();
        assert!(
            !text.contains("127.0.0.1:20"),
            "series of removed instances remain"
        );
        assert!(
            size() <= steady + 64,
            "{} bytes after churn, {steady} before",
            size()
        );
    }

    #[tokio::test]
    async fn a_passing_health_check_does_not_end_an_ejection() {
        let (pool, service) = pool_from(
            "backends = [{ address = \"http://127.0.0.1:9001\" }, { address = \"http://127.0.0.1:9002\" }]",
        );
        assert!(
            service.health_check.is_some() && service.outlier.is_some(),
            "both on by default"
        );
        let b = pool.members()[0].clone();
        let errors = service.outlier.expect("on by default").consecutive_errors;
        for _ in 0..errors {
            pool.record_outcome(&b, false);
        }
        assert!(!b.eligible(), "ejected after {errors} errors");
        // The probe keeps passing; the instance stays out until the ejection's time is up.
        for _ in 0..10 {
            pool.record_health(&b, true);
        }
        assert!(!b.eligible(), "a passing probe must not end the ejection");
        let st = pool.status();
        assert!(
            st[0].ejected && st[0].healthy && st[0].ejected_for_ms > 0,
            "{:?}",
            st[0]
        );
    }

    #[test]
    fn clock_at_an_instant_read_earlier() {
        let before = Instant::now();
        let clock = Clock::new();
        assert_eq!(
            clock.at(before),
            Time::from_nanos(0),
            "before the epoch: zero"
        );
        let later = Instant::now() + Duration::from_millis(5);
        let t = clock.at(later);
        assert!(t >= Time::from_nanos(5_000_000), "{t:?}");
        assert!(clock.now() <= t, "now is before the later instant");
    }
}
