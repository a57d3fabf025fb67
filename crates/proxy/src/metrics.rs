//! The proxy's Prometheus metrics (prometheus-client, the official Rust client; OpenMetrics
//! text on the admin listener's `/metrics`). Every series carries the label `service` (the
//! service's name; `default` for the single-pool form); per-instance series add `backend`, the
//! instance's address as configured.
//!
//! Families are looked up once per service and per instance, not per request: each
//! [`ServiceMetrics`] and [`BackendMetrics`] keeps its handles, and a lazily filled table of
//! per-status-code counters, so the request path updates metrics without hashing label sets.

use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ServiceLabel {
    pub service: String,
}

/// `result` of a reload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReloadLabel {
    /// `applied` or `refused`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BackendLabel {
    pub service: String,
    pub backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BackendCode {
    pub service: String,
    pub backend: String,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BackendGrpc {
    pub service: String,
    pub backend: String,
    pub grpc_status: u8,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BackendError {
    pub service: String,
    pub backend: String,
    pub kind: &'static str,
}

/// The `kind` label values of `foresight_upstream_errors`.
pub(crate) const ERROR_KINDS: [&str; 3] = ["connect", "timeout", "protocol"];

/// Every metric family the proxy exports.
pub(crate) struct ProxyMetrics {
    pub registry: Registry,
    requests: Family<BackendCode, Counter>,
    duration: Family<BackendLabel, Histogram>,
    in_flight: Family<BackendLabel, Gauge>,
    upgrades: Family<BackendLabel, Counter>,
    upgraded_open: Family<BackendLabel, Gauge>,
    grpc: Family<BackendGrpc, Counter>,
    pub healthy: Family<BackendLabel, Gauge>,
    pub ejections: Family<BackendLabel, Counter>,
    pub upstream_errors: Family<BackendError, Counter>,
    no_backend: Family<ServiceLabel, Counter>,
    refused: Family<ServiceLabel, Counter>,
    retries: Family<ServiceLabel, Counter>,
    retry_budget_exhausted: Family<ServiceLabel, Counter>,
    rate_limited: Family<ServiceLabel, Counter>,
    shed: Family<ServiceLabel, Counter>,
    client_requests: Family<ServiceLabel, Counter>,
    /// Requests that matched no route (404).
    pub no_route: Counter,
    /// Access log lines dropped because the writer was behind.
    pub access_log_dropped: Counter,
    /// Reloads by result (`applied`, `refused`).
    pub(crate) config_reloads: Family<ReloadLabel, Counter>,
    /// Series other parts of the program keep per service in this registry.
    series: Vec<Arc<dyn ServiceSeries>>,
}

/// Series that another part of the program keeps per service in the proxy's registry (the
/// control loops' gauges, `foresight_control::ControlFamilies`): registered when the registry
/// is built, and told of each service as its pool is built, at start and by a reload, so that
/// every service shows them from the start.
pub trait ServiceSeries: Send + Sync {
    /// Adds the families to `registry`.
    fn register(&self, registry: &mut Registry);
    /// `service`'s pool was built: its series should exist now.
    fn add_service(&self, service: &str);
}

/// One service's handles, and the families its instances' series live in.
pub(crate) struct ServiceMetrics {
    /// The `service` label.
    pub service: String,
    pub families: Arc<ProxyMetrics>,
    pub no_backend: Counter,
    /// 503s to clients, from instances (full queues) or for lack of an eligible one: the
    /// control loop's overload signal.
    pub refused: Counter,
    pub retries: Counter,
    /// Retries not made for lack of budget.
    pub retry_budget_exhausted: Counter,
    /// Requests answered 429 by the rate limit.
    pub rate_limited: Counter,
    /// Requests answered 503 by the concurrency limit.
    pub shed: Counter,
    pub client_requests: Counter,
    /// Switched (WebSocket) connections open to any of its instances: the load a control loop
    /// with `load = "connections"` forecasts. Not exported (the per-instance gauge is).
    pub upgraded_open: Gauge,
}

impl ProxyMetrics {
    /// Every family, for a proxy.
    pub fn new() -> Self {
        Self::with_series(Vec::new())
    }

    /// Every family, and `series` registered beside them.
    pub fn with_series(series: Vec<Arc<dyn ServiceSeries>>) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<BackendCode, Counter>::default();
        registry.register(
            "foresight_requests",
            "Responses from instances, by instance and status code",
            requests.clone(),
        );
        let duration = Family::<BackendLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "foresight_request_duration_seconds",
            "Time from picking an instance to the end of its response body",
            duration.clone(),
        );
        let in_flight = Family::<BackendLabel, Gauge>::default();
        registry.register(
            "foresight_in_flight",
            "Requests sent to an instance and not yet finished",
            in_flight.clone(),
        );
        let upgrades = Family::<BackendLabel, Counter>::default();
        registry.register(
            "foresight_upgrades",
            "Connections switched to another protocol (WebSocket) through an instance",
            upgrades.clone(),
        );
        let upgraded_open = Family::<BackendLabel, Gauge>::default();
        registry.register(
            "foresight_upgraded_connections",
            "Switched connections (WebSocket) open through an instance",
            upgraded_open.clone(),
        );
        let grpc = Family::<BackendGrpc, Counter>::default();
        registry.register(
            "foresight_grpc_responses",
            "gRPC calls answered by an instance, by the grpc-status of its trailers (or trailers-only head)",
            grpc.clone(),
        );
        let healthy = Family::<BackendLabel, Gauge>::default();
        registry.register(
            "foresight_backend_healthy",
            "1 when the instance passes health checks and is not ejected, else 0",
            healthy.clone(),
        );
        let ejections = Family::<BackendLabel, Counter>::default();
        registry.register(
            "foresight_ejections",
            "Passive outlier ejections of an instance",
            ejections.clone(),
        );
        let upstream_errors = Family::<BackendError, Counter>::default();
        registry.register(
            "foresight_upstream_errors",
            "Requests that got no response from an instance, by kind (connect, timeout, protocol)",
            upstream_errors.clone(),
        );
        let no_backend = Family::<ServiceLabel, Counter>::default();
        registry.register(
            "foresight_no_backend",
            "Requests answered 503 because no instance was eligible",
            no_backend.clone(),
        );
        let refused = Family::<ServiceLabel, Counter>::default();
        registry.register(
            "foresight_refused",
            "Requests answered 503, by an instance or for lack of an eligible one",
            refused.clone(),
        );
        let retries = Family::<ServiceLabel, Counter>::default();
        registry.register(
            "foresight_retries",
            "Requests sent again to another instance (after a connect error, a retried status or a per-try timeout)",
            retries.clone(),
        );
        let retry_budget_exhausted = Family::<ServiceLabel, Counter>::default();
        registry.register(
            "foresight_retry_budget_exhausted",
            "Retries not made because the service's retry budget was spent",
            retry_budget_exhausted.clone(),
        );
        let rate_limited = Family::<ServiceLabel, Counter>::default();
        registry.register(
            "foresight_rate_limited",
            "Requests answered 429 by the service's rate limit",
            rate_limited.clone(),
        );
        let shed = Family::<ServiceLabel, Counter>::default();
        registry.register(
            "foresight_shed",
            "Requests answered 503 by the service's concurrency limit (circuit_breaker.max_requests)",
            shed.clone(),
        );
        let client_requests = Family::<ServiceLabel, Counter>::default();
        registry.register(
            "foresight_client_requests",
            "Requests received from clients (the demand the forecaster learns), by the service they were routed to",
            client_requests.clone(),
        );
        let no_route = Counter::default();
        registry.register(
            "foresight_no_route",
            "Requests answered 404 because no route matched them",
            no_route.clone(),
        );
        let access_log_dropped = Counter::default();
        registry.register(
            "foresight_access_log_dropped",
            "Access log lines dropped because the writer was behind (requests never wait for it)",
            access_log_dropped.clone(),
        );
        let config_reloads = Family::<ReloadLabel, Counter>::default();
        registry.register(
            "foresight_config_reloads",
            "Configuration reloads (SIGHUP, POST /reload) by result: applied, or refused (the running configuration stays)",
            config_reloads.clone(),
        );
        for f in &series {
            f.register(&mut registry);
        }
        ProxyMetrics {
            series,
            client_requests,
            registry,
            requests,
            duration,
            in_flight,
            upgrades,
            upgraded_open,
            grpc,
            healthy,
            ejections,
            upstream_errors,
            no_backend,
            refused,
            retries,
            retry_budget_exhausted,
            rate_limited,
            shed,
            no_route,
            access_log_dropped,
            config_reloads,
        }
    }

    /// The handles of one service. The [`ServiceSeries`]' series of it exist from here on (a
    /// service without a control loop shows that it wants nothing).
    pub fn for_service(self: &Arc<Self>, service: &str) -> ServiceMetrics {
        let l = ServiceLabel {
            service: service.to_string(),
        };
        for f in &self.series {
            f.add_service(service);
        }
        ServiceMetrics {
            service: service.to_string(),
            no_backend: self.no_backend.get_or_create(&l).clone(),
            refused: self.refused.get_or_create(&l).clone(),
            retries: self.retries.get_or_create(&l).clone(),
            retry_budget_exhausted: self.retry_budget_exhausted.get_or_create(&l).clone(),
            rate_limited: self.rate_limited.get_or_create(&l).clone(),
            shed: self.shed.get_or_create(&l).clone(),
            client_requests: self.client_requests.get_or_create(&l).clone(),
            upgraded_open: Gauge::default(),
            families: self.clone(),
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl ServiceMetrics {
    /// Handles for one instance.
    pub fn for_backend(&self, address: &str) -> BackendMetrics {
        let f = &self.families;
        let label = BackendLabel {
            service: self.service.clone(),
            backend: address.to_string(),
        };
        BackendMetrics {
            duration: f.duration.get_or_create(&label).clone(),
            in_flight: f.in_flight.get_or_create(&label).clone(),
            upgrades: f.upgrades.clone(),
            upgraded_open: f.upgraded_open.clone(),
            service_upgraded_open: self.upgraded_open.clone(),
            grpc: f.grpc.clone(),
            codes: (0..CODES).map(|_| OnceLock::new()).collect(),
            requests: f.requests.clone(),
            label,
        }
    }

    /// Forgets every series of an instance once it has left the pool. Autoscaling churns
    /// instances all day, and series of instances that are gone would otherwise stay forever
    /// (2000 add/remove cycles grew `/metrics` from 8.5 KB to 3.3 MB); Prometheus handles a
    /// counter that disappears, as when a pod goes away. A response that arrives after the
    /// removal with a status code the instance never returned before re-creates that one
    /// series (bounded by the requests in flight at removal; a drain removes after the last).
    pub fn forget(&self, address: &str) {
        let f = &self.families;
        let label = BackendLabel {
            service: self.service.clone(),
            backend: address.to_string(),
        };
        f.in_flight.remove(&label);
        f.upgrades.remove(&label);
        f.upgraded_open.remove(&label);
        for grpc_status in 0..=16 {
            f.grpc.remove(&BackendGrpc {
                service: label.service.clone(),
                backend: label.backend.clone(),
                grpc_status,
            });
        }
        f.healthy.remove(&label);
        f.duration.remove(&label);
        f.ejections.remove(&label);
        for kind in ERROR_KINDS {
            f.upstream_errors.remove(&BackendError {
                service: label.service.clone(),
                backend: label.backend.clone(),
                kind,
            });
        }
        let mut key = BackendCode {
            service: label.service,
            backend: label.backend,
            code: 0,
        };
        for code in 100..=599 {
            key.code = code;
            f.requests.remove(&key);
        }
    }
}

/// Status codes 100..=599 get a cached counter each.
const CODES: usize = 500;

/// One instance's metric handles.
pub(crate) struct BackendMetrics {
    pub label: BackendLabel,
    pub duration: Histogram,
    pub in_flight: Gauge,
    /// Created at the first upgrade only: most services never switch protocols.
    upgrades: Family<BackendLabel, Counter>,
    upgraded_open: Family<BackendLabel, Gauge>,
    /// The service's count of the same.
    service_upgraded_open: Gauge,
    grpc: Family<BackendGrpc, Counter>,
    codes: Box<[OnceLock<Counter>]>,
    requests: Family<BackendCode, Counter>,
}

impl BackendMetrics {
    /// Counts a gRPC call's status (0–16; anything else is counted as UNKNOWN, 2).
    pub fn grpc_status(&self, value: &[u8]) {
        let code = std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.trim().parse::<u8>().ok())
            .filter(|c| *c <= 16)
            .unwrap_or(2);
        self.grpc
            .get_or_create(&BackendGrpc {
                service: self.label.service.clone(),
                backend: self.label.backend.clone(),
                grpc_status: code,
            })
            .inc();
    }

    /// A connection switched protocols: counted, and open until the guard is dropped.
    pub fn upgraded(&self) -> UpgradedGuard {
        self.upgrades.get_or_create(&self.label).inc();
        let open = self.upgraded_open.get_or_create(&self.label).clone();
        open.inc();
        self.service_upgraded_open.inc();
        UpgradedGuard([open, self.service_upgraded_open.clone()])
    }

    pub fn count(&self, code: u16) {
        let make = || {
            self.requests
                .get_or_create(&BackendCode {
                    service: self.label.service.clone(),
                    backend: self.label.backend.clone(),
                    code,
                })
                .clone()
        };
        match self.codes.get(usize::from(code).wrapping_sub(100)) {
            Some(slot) => slot.get_or_init(make).inc(),
            None => make().inc(),
        };
    }
}

/// An open switched connection in `foresight_upgraded_connections`.
/// An open switched connection in `foresight_upgraded_connections` and in its service's count.
pub(crate) struct UpgradedGuard([Gauge; 2]);

impl Drop for UpgradedGuard {
    fn drop(&mut self) {
        for g in &self.0 {
            g.dec();
        }
    }
}
