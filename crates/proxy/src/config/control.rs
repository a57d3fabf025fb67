//! `[control]` (and `[services.control]`) as serde reads it: [`RawControl`], every key typed
//! and unknown keys rejected with their line, like the rest of the file. What the values mean
//! (policy and forecaster names, ranges, which keys go together) is checked once, by
//! `foresight_control::ControlConfig::from_raw`; the proxy only carries the section to it and
//! reads [`RawControl::enabled`].

use std::collections::BTreeMap;

use serde::Deserialize;

/// The control loop's section, as written. Durations are strings (`"15s"`, `"3m"`), parsed
/// with the other checks so that their errors name the key.
#[allow(missing_docs)]
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawControl {
    /// `false` keeps the section but runs no loop.
    pub enabled: Option<bool>,
    pub interval: Option<String>,
    pub step: Option<String>,
    pub model_step: Option<String>,
    pub policy: Option<String>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub dry_run: Option<bool>,
    pub load: Option<String>,
    pub capacity_rps: Option<f64>,
    pub workers: Option<i64>,
    pub hpa_target: Option<f64>,
    pub floor_target: Option<f64>,
    pub target: Option<f64>,
    pub theta_up: Option<f64>,
    pub theta_down: Option<f64>,
    pub lead: Option<String>,
    pub margin: Option<String>,
    pub stabilisation: Option<String>,
    pub interruption_hold: Option<String>,
    pub widen: Option<i64>,
    pub tail_share: Option<f64>,
    pub forecaster: Option<String>,
    pub model: Option<String>,
    pub window: Option<i64>,
    pub history: Option<String>,
    pub history_scale: Option<f64>,
    pub actuator: Option<String>,
    pub backend_args: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    pub command_timeout: Option<String>,
    pub metrics: Option<String>,
    pub prometheus_url: Option<String>,
    pub rate_query: Option<String>,
    pub kafka_brokers: Option<String>,
    pub kafka_publish: Option<String>,
    pub kafka_consume: Option<String>,
    pub kafka_source: Option<String>,
    pub retrain_every: Option<String>,
    pub train_epochs: Option<i64>,
    pub season: Option<i64>,
    pub seasons: Option<i64>,
    pub season_quantile: Option<f64>,
    pub quantile: Option<f64>,
    pub scrape_instances: Option<bool>,
    pub namespace: Option<String>,
    pub deployment: Option<String>,
    pub group: Option<String>,
    pub aws_endpoint: Option<String>,
    pub drain: Option<String>,
    pub kube_url: Option<String>,
    /// `[control.features]`: name = "PromQL query".
    pub features: Option<BTreeMap<String, String>>,
}

impl RawControl {
    /// Whether a loop runs (the section is present and not `enabled = false`).
    pub fn enabled(&self) -> bool {
        self.enabled != Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RawControl, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn keys_are_typed_and_unknown_ones_named_with_their_line() {
        let c = parse("capacity_rps = 20\ntarget = 0.5\nmin = 2\n[features]\ncpu = \"sum(c)\"")
            .unwrap();
        // A whole number is a number.
        assert_eq!(
            (c.capacity_rps, c.target, c.min),
            (Some(20.0), Some(0.5), Some(2))
        );
        assert_eq!(c.features.unwrap()["cpu"], "sum(c)");
        assert!(c.enabled.is_none());
        let e = parse("min = 1\ncolour = 1").unwrap_err();
        assert!(
            e.contains("line 2") && e.contains("unknown field `colour`"),
            "{e}"
        );
        let e = parse("min = 1.5").unwrap_err();
        assert!(e.contains("line 1") && e.contains("min"), "{e}");
        let e = parse("[features]\ncpu = 1").unwrap_err();
        assert!(e.contains("line 2") && e.contains("cpu"), "{e}");
        assert!(!parse("enabled = false").unwrap().enabled());
        assert!(parse("").unwrap().enabled());
    }
}
