//! Is the forecast trustworthy now? A residual-based robust z-score detector for sudden spikes
//! that the forecaster did not see coming.
//!
//! Every realised residual (actual − what was forecast for that step) is compared with the
//! median and MAD of the last `window` residuals: the modified z-score
//! `0.6745 (r − median) / MAD` (Iglewicz & Hoaglin, 1993) above `threshold` flags an anomaly,
//! and the forecast is then untrusted for `hold_secs`. The scaler asks [`Detector::trustworthy`]
//! and falls back to reactive scaling meanwhile.

use std::collections::VecDeque;

use crate::prep::median;

/// Detector settings.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    /// Residuals kept for the median and MAD.
    pub window: usize,
    /// Modified z-score above which a residual is anomalous.
    pub threshold: f64,
    /// Seconds the forecast stays untrusted after an anomaly.
    pub hold_secs: i64,
    /// Residuals needed before anything is flagged.
    pub min_points: usize,
    /// Flag only residuals above the forecast (actual higher than foreseen): for capacity, an
    /// over-forecast costs money, not requests, and the scale-in stabilisation handles it.
    pub upper_only: bool,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            window: 240,
            threshold: 3.5,
            hold_secs: 15 * 60,
            min_points: 30,
            upper_only: false,
        }
    }
}

/// What one residual said.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    /// Modified z-score (0 while warming up or when the residuals have no spread).
    pub z: f64,
    /// Whether it is an anomaly.
    pub anomalous: bool,
}

/// The detector; time-injected.
#[derive(Clone, Debug)]
pub struct Detector {
    cfg: AnomalyConfig,
    residuals: VecDeque<f64>,
    scratch: Vec<f64>,
    untrusted_until: Option<i64>,
    flagged: u64,
    seen: u64,
}

impl Detector {
    /// A detector with these settings.
    pub fn new(cfg: AnomalyConfig) -> Detector {
        Detector {
            residuals: VecDeque::with_capacity(cfg.window.max(1)),
            scratch: Vec::with_capacity(cfg.window.max(1)),
            cfg,
            untrusted_until: None,
            flagged: 0,
            seen: 0,
        }
    }

    /// Feeds the realised value `actual` at time `now` and what had been forecast for it.
    pub fn update(&mut self, now: i64, actual: f64, forecast: f64) -> Verdict {
        let r = actual - forecast;
        let mut verdict = Verdict {
            z: 0.0,
            anomalous: false,
        };
        if self.residuals.len() >= self.cfg.min_points.max(3) {
            self.scratch.clear();
            self.scratch.extend(self.residuals.iter().copied());
            let med = median(&mut self.scratch);
            for v in self.scratch.iter_mut() {
                *v = (*v - med).abs();
            }
            let mad = median(&mut self.scratch);
            if mad > 0.0 {
                verdict.z = 0.6745 * (r - med) / mad;
                verdict.anomalous = if self.cfg.upper_only {
                    verdict.z > self.cfg.threshold
                } else {
                    verdict.z.abs() > self.cfg.threshold
                };
            }
        }
        if verdict.anomalous {
            self.flagged += 1;
            self.untrusted_until = Some(now + self.cfg.hold_secs);
        }
        self.seen += 1;
        if self.residuals.len() == self.cfg.window.max(1) {
            self.residuals.pop_front();
        }
        self.residuals.push_back(r);
        verdict
    }

    /// Whether the forecast can be used at time `now`.
    pub fn trustworthy(&self, now: i64) -> bool {
        self.untrusted_until.is_none_or(|u| now >= u)
    }

    /// (flagged, seen) residuals so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.flagged, self.seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spike_is_flagged_and_distrust_lasts_the_hold_time() {
        let mut d = Detector::new(AnomalyConfig {
            window: 100,
            threshold: 3.5,
            hold_secs: 600,
            min_points: 20,
            upper_only: false,
        });
        for i in 0..100 {
            let noise = ((i * 7919) % 13) as f64 - 6.0;
            let v = d.update(i * 60, 100.0 + noise, 100.0);
            assert!(!v.anomalous, "noise at {i} flagged: {v:?}");
        }
        assert!(d.trustworthy(100 * 60));
        let v = d.update(100 * 60, 400.0, 100.0);
        assert!(v.anomalous && v.z > 3.5, "{v:?}");
        assert!(!d.trustworthy(100 * 60 + 599));
        assert!(d.trustworthy(100 * 60 + 600));
        assert_eq!(d.counts(), (1, 101));
    }

    #[test]
    fn upper_only_ignores_overforecasts() {
        let cfg = AnomalyConfig {
            upper_only: true,
            ..AnomalyConfig::default()
        };
        let mut d = Detector::new(cfg);
        for i in 0..100 {
            let noise = ((i * 7919) % 13) as f64 - 6.0;
            d.update(i * 60, 100.0 + noise, 100.0);
        }
        assert!(
            !d.update(100 * 60, 0.0, 100.0).anomalous,
            "far below: not distrusted"
        );
        assert!(
            d.update(101 * 60, 400.0, 100.0).anomalous,
            "far above: distrusted"
        );
    }

    #[test]
    fn nothing_is_flagged_while_warming_up() {
        let mut d = Detector::new(AnomalyConfig::default());
        for i in 0..10 {
            assert!(!d.update(i, if i == 5 { 1e6 } else { 1.0 }, 1.0).anomalous);
        }
    }
}
