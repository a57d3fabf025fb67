//! The forecaster's warm start: its input window filled before the first step from
//! Prometheus, the Kafka topic or the configured history, and how `/control` says so.

use crate::{kafka, prometheus, ControlConfig, FeatureReader, MetricsSource};
use foresight_autoscale::Autoscaler;

/// Fills the forecaster's input window before the first step from the best source there is:
/// Prometheus (the rate over the steps just past, when it is the metrics source), else the
/// history the forecaster was built with. Returns where the window came from; logs it, or
/// that the loop is warming up and for how long.
pub(crate) async fn warm_start(c: &ControlConfig, autoscaler: &mut Autoscaler) -> String {
    let Some((_, needed)) = autoscaler.warming() else {
        return warm_source(c, autoscaler);
    };
    if let MetricsSource::Prometheus { url, rate_query } = &c.metrics {
        let prom = prometheus::PromSource::new(url, rate_query);
        let features = FeatureReader::new(url, &c.features);
        match prom.history_with(&features.sources(), needed, c.step).await {
            Ok((rates, rows)) if !rates.is_empty() => {
                let step_secs = c.step.as_secs_f64();
                let requests: Vec<f64> = rates.iter().map(|r| r * step_secs).collect();
                autoscaler.warm_with(&requests, &rows);
                tracing::info!(
                    steps = requests.len(),
                    needed,
                    features = c.features.len(),
                    "forecaster window filled from Prometheus"
                );
                return format!("prometheus ({} of {needed} steps)", requests.len());
            }
            Ok(_) => {
                tracing::warn!(%url, "Prometheus has no recent samples to warm the forecaster with")
            }
            Err(e) => tracing::warn!(error = %e, "cannot warm the forecaster from Prometheus"),
        }
    }
    if autoscaler.has_features() {
        // Kafka's samples carry no features: the model cannot be fed them.
        return "none (the features come from Prometheus only)".into();
    }
    if let Some(topic) = c
        .kafka
        .as_ref()
        .and_then(|k| k.consume.as_ref().map(|t| (k, t)))
    {
        let (k, topic) = topic;
        // Every proxy publishes one sample per interval; read enough for many of them.
        let per_step = (c.step.as_secs_f64() / c.interval.as_secs_f64())
            .round()
            .max(1.0);
        let records = (needed as f64 * per_step * 64.0).min(kafka::BUFFER as f64) as usize;
        match kafka::recent(&k.brokers, topic, records).await {
            Ok(samples) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                let mut steps =
                    kafka::per_step(&samples, c.step.as_secs_f64(), now, prometheus::RECENT);
                // The newest step may still be filling; a partial step would read as a drop.
                steps.pop();
                let start = steps.len().saturating_sub(needed);
                let steps = &steps[start..];
                if !steps.is_empty() {
                    autoscaler.warm(steps);
                    tracing::info!(steps = steps.len(), needed, %topic, "forecaster window filled from Kafka");
                    return format!("kafka {topic} ({} of {needed} steps)", steps.len());
                }
                tracing::warn!(%topic, "Kafka has no recent samples to warm the forecaster with");
            }
            Err(e) => tracing::warn!(error = %e, "cannot warm the forecaster from Kafka"),
        }
    }
    if let Some((have, needed)) = autoscaler.warming() {
        let wait = humantime::format_duration(c.step * (needed - have) as u32);
        tracing::warn!(
            "warming up: {have} of {needed} steps; no forecast for {wait} (to forecast at once: \
             `history`, `metrics = \"prometheus\"` with the rate in Prometheus, or \
             `kafka_consume` of a topic with samples)"
        );
    }
    "none".into()
}

/// Where the window comes from, as far as is known before asking Prometheus.
pub(crate) fn warm_source(c: &ControlConfig, autoscaler: &Autoscaler) -> String {
    match (
        &c.history,
        autoscaler.planner(),
        autoscaler.warming(),
        &c.metrics,
    ) {
        (_, None, ..) => "no forecaster".into(),
        (_, Some(_), Some(_), MetricsSource::Prometheus { .. }) => "prometheus, querying".into(),
        (_, Some(_), Some(_), _) if c.kafka.as_ref().is_some_and(|k| k.consume.is_some()) => {
            "kafka, reading".into()
        }
        (_, Some(_), Some(_), _) => "none".into(),
        (Some(h), Some(_), None, _) => format!("history {}", h.display()),
        (None, Some(_), None, _) => "the model alone".into(),
    }
}

/// `GET /control`'s `warmup`: where the window came from, and the progress while warming up.
pub(crate) fn warmup_status(autoscaler: &Autoscaler, source: &str) -> String {
    match autoscaler.warming() {
        Some((have, needed)) => {
            format!("warming up: {have} of {needed} steps (warm start: {source})")
        }
        None => format!("window from {source}"),
    }
}
