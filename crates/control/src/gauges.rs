//! The control loops' Prometheus series (`foresight_control_*`, one per service), kept in the
//! registry of the program that runs the loops: the proxy's under `serve` (as a
//! [`ServiceSeries`], so that every service, also one a reload adds, shows them, at zero
//! while it has no loop: it wants nothing), or the controller's own.

use std::sync::Arc;

use foresight_proxy::ServiceSeries;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

/// The families, one series per service. Clones share the series.
#[derive(Clone, Default)]
pub struct ControlFamilies {
    desired: Family<ServiceLabel, Gauge>,
    ready: Family<ServiceLabel, Gauge>,
    starting: Family<ServiceLabel, Gauge>,
    observed_rps: Family<ServiceLabel, FloatGauge>,
    forecast_rps: Family<ServiceLabel, FloatGauge>,
    forecast_trusted: Family<ServiceLabel, Gauge>,
    scale_actions: Family<ServiceLabel, Counter>,
    max: Family<ServiceLabel, Gauge>,
    metrics_degraded: Family<ServiceLabel, Gauge>,
}

/// One service's gauges: what its loop sets every interval.
#[derive(Clone, Default)]
pub struct ControlGauges {
    /// Instances the scaling policy wants.
    pub desired: Gauge,
    /// Instances serving.
    pub ready: Gauge,
    /// Instances launched and not ready yet.
    pub starting: Gauge,
    /// Client request rate over the last control interval.
    pub observed_rps: FloatGauge,
    /// Forecast request rate at the planning lead (the upper band the policy sizes for).
    pub forecast_rps: FloatGauge,
    /// 1 while the anomaly detector trusts the forecast.
    pub forecast_trusted: Gauge,
    /// Changes of the desired count.
    pub scale_actions: Counter,
    /// The policy's upper limit (`control.max`).
    pub max: Gauge,
    /// 1 while the configured rate source (Prometheus, Kafka) gave nothing usable: the loop
    /// holds or counts for itself.
    pub metrics_degraded: Gauge,
}

impl ControlFamilies {
    /// New families, for a proxy's registry ([`ServiceSeries`]) or [`ControlFamilies::register`].
    pub fn new() -> Arc<ControlFamilies> {
        Arc::new(ControlFamilies::default())
    }

    /// One service's gauges; its series exist from here on.
    pub fn for_service(&self, service: &str) -> ControlGauges {
        let l = ServiceLabel {
            service: service.to_string(),
        };
        ControlGauges {
            desired: self.desired.get_or_create(&l).clone(),
            ready: self.ready.get_or_create(&l).clone(),
            starting: self.starting.get_or_create(&l).clone(),
            observed_rps: self.observed_rps.get_or_create(&l).clone(),
            forecast_rps: self.forecast_rps.get_or_create(&l).clone(),
            forecast_trusted: self.forecast_trusted.get_or_create(&l).clone(),
            scale_actions: self.scale_actions.get_or_create(&l).clone(),
            max: self.max.get_or_create(&l).clone(),
            metrics_degraded: self.metrics_degraded.get_or_create(&l).clone(),
        }
    }
}

impl ServiceSeries for ControlFamilies {
    fn register(&self, registry: &mut Registry) {
        for (name, help, g) in [
            (
                "foresight_control_desired_instances",
                "Instances the scaling policy wants (0 while the control loop is off)",
                &self.desired,
            ),
            (
                "foresight_control_ready_instances",
                "Instances serving, as the actuator reports",
                &self.ready,
            ),
            (
                "foresight_control_starting_instances",
                "Instances launched and not ready yet",
                &self.starting,
            ),
            (
                "foresight_control_forecast_trusted",
                "1 while the anomaly detector trusts the forecast",
                &self.forecast_trusted,
            ),
            (
                "foresight_control_max_instances",
                "The most instances the control loop may want (control.max)",
                &self.max,
            ),
            (
                "foresight_control_metrics_degraded",
                "1 while the configured rate source (Prometheus, Kafka) gave nothing usable: the loop holds or uses the proxy's own counters",
                &self.metrics_degraded,
            ),
        ] {
            registry.register(name, help, g.clone());
        }
        registry.register(
            "foresight_control_observed_rps",
            "Client request rate over the last control interval",
            self.observed_rps.clone(),
        );
        registry.register(
            "foresight_control_forecast_rps",
            "Forecast request rate at the planning lead, including the error band",
            self.forecast_rps.clone(),
        );
        registry.register(
            "foresight_control_scale_actions",
            "Changes of the desired instance count",
            self.scale_actions.clone(),
        );
    }

    fn add_service(&self, service: &str) {
        self.for_service(service);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(r: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, r).unwrap();
        out
    }

    #[test]
    fn a_service_shows_every_series_at_zero_until_its_loop_sets_them() {
        let families = ControlFamilies::new();
        let mut registry = Registry::default();
        families.register(&mut registry);
        families.add_service("idle");
        let g = families.for_service("busy");
        g.desired.set(3);
        g.scale_actions.inc();
        let text = render(&registry);
        for line in [
            "foresight_control_desired_instances{service=\"idle\"} 0",
            "foresight_control_desired_instances{service=\"busy\"} 3",
            "foresight_control_scale_actions_total{service=\"busy\"} 1",
            "foresight_control_forecast_rps{service=\"idle\"} 0.0",
            "foresight_control_metrics_degraded{service=\"idle\"} 0",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        // The same handles: a second call does not reset them.
        assert_eq!(families.for_service("busy").desired.get(), 3);
    }
}
