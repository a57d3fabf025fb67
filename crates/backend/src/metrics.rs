//! The instance's own Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteCode {
    pub route: String,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

/// Every metric the instance exports.
pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RouteCode, Counter>,
    pub duration: Family<RouteLabel, Histogram>,
    pub in_flight: Gauge,
    pub queue_length: Gauge,
    pub cpu_seconds: Gauge<f64, AtomicU64>,
    pub resident_bytes: Gauge,
}

impl Metrics {
    pub fn new(workers: usize, queue: usize) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RouteCode, Counter>::default();
        registry.register(
            "foresight_backend_requests",
            "Requests answered, by route and status code",
            requests.clone(),
        );
        let duration = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "foresight_backend_request_duration_seconds",
            "Time from arrival to response, queueing included",
            duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "foresight_backend_in_flight",
            "Requests being served by a worker",
            in_flight.clone(),
        );
        let queue_length = Gauge::default();
        registry.register(
            "foresight_backend_queue_length",
            "Requests waiting for a worker",
            queue_length.clone(),
        );
        let w: Gauge = Gauge::default();
        w.set(workers as i64);
        registry.register("foresight_backend_workers", "Worker limit", w);
        let q: Gauge = Gauge::default();
        q.set(queue as i64);
        registry.register("foresight_backend_queue_limit", "Queue limit", q);
        let cpu_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "process_cpu_seconds",
            "User and system CPU time of this process, in seconds (a counter read from /proc)",
            cpu_seconds.clone(),
        );
        let resident_bytes = Gauge::default();
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of this process",
            resident_bytes.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            in_flight,
            queue_length,
            cpu_seconds,
            resident_bytes,
        }
    }

    /// Reads `/proc`, then renders the text exposition.
    pub fn render(&self) -> String {
        if let Some(c) = crate::procfs::cpu_seconds() {
            self.cpu_seconds.set(c);
        }
        if let Some(r) = crate::procfs::resident_bytes() {
            self.resident_bytes.set(r as i64);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
