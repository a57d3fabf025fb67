//! Additive Holt-Winters (triple exponential smoothing) with a damped trend.
//!
//! Written here because the maintained Rust option, `augurs` 0.10, has no seasonal ETS
//! (`NoModelFound`, see docs/forecasting.md). Equations (Hyndman & Athanasopoulos, *Forecasting:
//! Principles and Practice*, §8.3, damped additive): with season length m,
//!
//! ```text
//! level    l_t = α (y_t − s_{t−m}) + (1 − α)(l_{t−1} + φ b_{t−1})
//! trend    b_t = β (l_t − l_{t−1}) + (1 − β) φ b_{t−1}
//! season   s_t = γ (y_t − l_t) + (1 − γ) s_{t−m}
//! forecast ŷ_{t+k} = l_t + (φ + … + φ^k) b_t + s_{t+k−m}
//! ```
//!
//! The season slot is keyed by time, so a gap keeps the daily phase; after a gap the trend is
//! reset. Parameters are chosen by grid search on the training part for the evaluated horizon.

use crate::model::Forecaster;

/// Smoothing parameters.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct HwParams {
    /// Level smoothing.
    pub alpha: f64,
    /// Trend smoothing.
    pub beta: f64,
    /// Season smoothing.
    pub gamma: f64,
    /// Trend damping.
    pub phi: f64,
}

/// An additive, damped Holt-Winters forecaster.
#[derive(Clone, Debug)]
pub struct HoltWinters {
    params: HwParams,
    step: i64,
    period: usize,
    level: f64,
    trend: f64,
    season: Vec<f64>,
    init: Vec<f64>,
    initialised: bool,
    last_time: Option<i64>,
}

impl HoltWinters {
    /// An untrained model; it initialises itself from its first two seasons of observations.
    pub fn new(step: i64, period: usize, params: HwParams) -> HoltWinters {
        HoltWinters {
            params,
            step,
            period: period.max(2),
            level: 0.0,
            trend: 0.0,
            season: vec![0.0; period.max(2)],
            init: Vec::new(),
            initialised: false,
            last_time: None,
        }
    }

    /// Chooses parameters by grid search, minimising the mean absolute error `horizon` steps
    /// ahead over `train` (gap-free segments as (start time, values)).
    pub fn fit(step: i64, period: usize, horizon: usize, train: &[(i64, &[f64])]) -> HoltWinters {
        let mut best: Option<(f64, HwParams)> = None;
        for alpha in [0.02, 0.05, 0.1, 0.2, 0.4, 0.7] {
            for beta in [0.0, 0.005, 0.02, 0.1] {
                for gamma in [0.02, 0.05, 0.1, 0.3] {
                    for phi in [0.8, 0.95, 0.99] {
                        let p = HwParams {
                            alpha,
                            beta,
                            gamma,
                            phi,
                        };
                        let err = Self::score(step, period, horizon, train, p);
                        if err.is_finite() && best.is_none_or(|(e, _)| err < e) {
                            best = Some((err, p));
                        }
                    }
                }
            }
        }
        let params = best.map(|(_, p)| p).unwrap_or(HwParams {
            alpha: 0.2,
            beta: 0.0,
            gamma: 0.1,
            phi: 0.95,
        });
        HoltWinters::new(step, period, params)
    }

    fn score(
        step: i64,
        period: usize,
        horizon: usize,
        train: &[(i64, &[f64])],
        p: HwParams,
    ) -> f64 {
        let mut m = HoltWinters::new(step, period, p);
        let (mut sum, mut n) = (0.0, 0usize);
        let mut pending: std::collections::VecDeque<(usize, f64)> = Default::default();
        for (start, values) in train {
            pending.clear();
            for (i, v) in values.iter().enumerate() {
                while pending.front().is_some_and(|(at, _)| *at == i) {
                    let (_, f) = pending.pop_front().unwrap();
                    sum += (f - v).abs();
                    n += 1;
                }
                m.observe(start + i as i64 * step, *v, &[]);
                if let Some(f) = m.ahead(horizon) {
                    pending.push_back((i + horizon, f));
                }
            }
        }
        if n == 0 {
            f64::INFINITY
        } else {
            sum / n as f64
        }
    }

    /// The fitted parameters.
    pub fn params(&self) -> HwParams {
        self.params
    }

    fn slot(&self, time: i64) -> usize {
        time.div_euclid(self.step).rem_euclid(self.period as i64) as usize
    }

    /// The forecast `k` steps ahead.
    fn ahead(&self, k: usize) -> Option<f64> {
        if !self.initialised {
            return None;
        }
        let t = self.last_time? + k as i64 * self.step;
        let phi = self.params.phi;
        let damp: f64 = if phi == 1.0 {
            k as f64
        } else {
            phi * (1.0 - phi.powi(k as i32)) / (1.0 - phi)
        };
        Some(self.level + damp * self.trend + self.season[self.slot(t)])
    }
}

impl Forecaster for HoltWinters {
    fn name(&self) -> String {
        "holt-winters".into()
    }

    fn history_needed(&self) -> usize {
        2 * self.period
    }

    fn observe(&mut self, time: i64, value: f64, _features: &[f64]) {
        let gap = matches!(self.last_time, Some(t) if time != t + self.step);
        self.last_time = Some(time);
        if !self.initialised {
            if gap {
                self.init.clear();
            }
            self.init.push(value);
            if self.init.len() == 2 * self.period {
                let m = self.period;
                let first = self.init[..m].iter().sum::<f64>() / m as f64;
                let second = self.init[m..].iter().sum::<f64>() / m as f64;
                self.trend = (second - first) / m as f64;
                self.level = second;
                let t0 = time - (2 * m as i64 - 1) * self.step;
                for i in 0..m {
                    let avg = (self.init[i] - first + self.init[i + m] - second) / 2.0;
                    let s = self.slot(t0 + i as i64 * self.step);
                    self.season[s] = avg;
                }
                self.initialised = true;
                self.init = Vec::new();
            }
            return;
        }
        if gap {
            self.trend = 0.0;
        }
        let HwParams {
            alpha,
            beta,
            gamma,
            phi,
        } = self.params;
        let s = self.slot(time);
        let prev_level = self.level;
        self.level =
            alpha * (value - self.season[s]) + (1.0 - alpha) * (prev_level + phi * self.trend);
        self.trend = beta * (self.level - prev_level) + (1.0 - beta) * phi * self.trend;
        self.season[s] = gamma * (value - self.level) + (1.0 - gamma) * self.season[s];
    }

    fn forecast(&mut self, horizon: usize) -> Option<Vec<f64>> {
        (1..=horizon).map(|k| self.ahead(k)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_clean_seasonal_pattern() {
        let period = 24;
        let f = |i: usize| {
            100.0 + 30.0 * ((i % period) as f64 / period as f64 * std::f64::consts::TAU).sin()
        };
        let values: Vec<f64> = (0..period * 10).map(f).collect();
        let mut hw = HoltWinters::fit(60, period, 5, &[(0, &values)]);
        for (i, v) in values.iter().enumerate() {
            hw.observe(i as i64 * 60, *v, &[]);
        }
        let fc = hw.forecast(5).unwrap();
        let n = values.len();
        for (k, v) in fc.iter().enumerate() {
            let truth = f(n + k);
            assert!((v - truth).abs() < 1.0, "step {k}: {v} vs {truth}");
        }
    }

    #[test]
    fn waits_for_two_seasons_before_forecasting() {
        let mut hw = HoltWinters::new(
            60,
            4,
            HwParams {
                alpha: 0.2,
                beta: 0.0,
                gamma: 0.1,
                phi: 0.9,
            },
        );
        for i in 0..7 {
            hw.observe(i * 60, 1.0, &[]);
            assert!(hw.forecast(1).is_none());
        }
        hw.observe(7 * 60, 1.0, &[]);
        assert!(hw.forecast(1).is_some());
    }
}
