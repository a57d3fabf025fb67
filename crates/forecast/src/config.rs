//! The forecasting configuration file: `[data]`, `[lstm]` and `[anomaly]` sections, every key
//! optional (defaults in docs/forecasting.md), unknown keys rejected.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::anomaly::AnomalyConfig;
use crate::lstm::LstmConfig;
use crate::pipeline::PrepConfig;

/// Everything `foresight train` and `foresight forecast eval` can be told in a file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastConfig {
    /// Gap policy, noise removal, split.
    pub data: PrepConfig,
    /// The model's hyper-parameters.
    pub lstm: LstmConfig,
    /// The anomaly detector.
    pub anomaly: AnomalyConfig,
}

impl ForecastConfig {
    /// Reads and checks a TOML file; the error names the file, key and problem.
    pub fn load(path: &Path) -> Result<ForecastConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks TOML text.
    pub fn parse(text: &str) -> Result<ForecastConfig, String> {
        let cfg: ForecastConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every section.
    pub fn validate(&self) -> Result<(), String> {
        self.lstm.validate()?;
        let d = &self.data;
        if !(d.train > 0.0 && d.validation > 0.0 && d.train + d.validation < 1.0) {
            return Err(format!(
                "data.train ({}) and data.validation ({}) must be positive and sum to less than 1",
                d.train, d.validation
            ));
        }
        if d.hampel_sigmas.is_nan() || d.hampel_sigmas <= 0.0 {
            return Err(format!(
                "data.hampel_sigmas must be positive, got {}",
                d.hampel_sigmas
            ));
        }
        let a = &self.anomaly;
        if a.window < 3 || a.threshold.is_nan() || a.threshold <= 0.0 || a.hold_secs < 0 {
            return Err(format!(
                "anomaly: window must be ≥ 3, threshold > 0 and hold_secs ≥ 0 (got {}, {}, {})",
                a.window, a.threshold, a.hold_secs
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_optional_and_unknown_or_bad_ones_are_named() {
        let c = ForecastConfig::parse("[lstm]\nhidden = 16\n").unwrap();
        assert_eq!(c.lstm.hidden, 16);
        assert_eq!(c.lstm.seq_len, LstmConfig::default().seq_len);
        let e = ForecastConfig::parse("[lstm]\nhiden = 16\n").unwrap_err();
        assert!(e.contains("hiden"), "{e}");
        let e = ForecastConfig::parse("[lstm]\nlearning_rate = 3.0\n").unwrap_err();
        assert!(e.contains("lstm.learning_rate"), "{e}");
        let e = ForecastConfig::parse("[data]\ntrain = 0.9\nvalidation = 0.2\n").unwrap_err();
        assert!(e.contains("data.train"), "{e}");
        let e = ForecastConfig::parse("[lstm]\nlayers = 0\n").unwrap_err();
        assert!(e.contains("lstm.layers"), "{e}");
    }
}
