//! The instance's own Prometheus metrics.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

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
}

/// Process CPU time and memory, read from `/proc/self` at each scrape, in the standard
/// `process_*` names (CPU time is a counter, `process_cpu_seconds_total`).
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(cpu) = crate::procfs::cpu_seconds() {
            let c = ConstCounter::new(cpu);
            let e = encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time of this process, in seconds",
                None,
                c.metric_type(),
            )?;
            c.encode(e)?;
        }
        if let Some(rss) = crate::procfs::resident_bytes() {
            let g = Gauge::<i64>::default();
            g.set(rss as i64);
            let e = encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory of this process, in bytes",
                None,
                g.metric_type(),
            )?;
            g.encode(e)?;
        }
        Ok(())
    }
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
        registry.register_collector(Box::new(ProcessCollector));
        Metrics {
            registry,
            requests,
            duration,
            in_flight,
            queue_length,
        }
    }

    /// Renders the text exposition (reading `/proc` on the way).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
