//! Forecasts for the scaling policy: observations per step in, the expected rate plus an error
//! band out, with the anomaly detector's verdict on whether to trust it.

use std::collections::VecDeque;

use foresight_forecast::{AnomalyConfig, Detector, Forecaster};

/// The forecast is the expected rate; sizing for it leaves every above-average step short. The
/// planner adds this quantile of the last [`RESIDUAL_WINDOW`] realised errors at the planning
/// lead (past errors only) — the same rule as `foresight experiment`.
pub const UPPER_QUANTILE: f64 = 0.95;
/// Realised errors kept for the band.
pub const RESIDUAL_WINDOW: usize = 240;

/// Turns per-step request counts into rate forecasts.
pub struct Planner {
    forecaster: Box<dyn Forecaster + Send>,
    detector: Detector,
    horizon: usize,
    lead_steps: usize,
    /// Live seconds per step.
    step_secs: f64,
    /// Model time (Unix seconds) of the next step, and model seconds per step.
    next_time: i64,
    model_step: i64,
    /// Model units per live request.
    to_model: f64,
    step: usize,
    pending: VecDeque<(usize, f64)>,
    residuals: VecDeque<f64>,
    current: Option<Vec<f64>>,
    expected: Option<Vec<f64>>,
}

impl Planner {
    /// `forecaster` already warmed on history up to `next_time − model_step`; forecasts
    /// `horizon` steps; the band is measured at `lead_steps` ahead.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        forecaster: Box<dyn Forecaster + Send>,
        horizon: usize,
        lead_steps: usize,
        step_secs: f64,
        next_time: i64,
        model_step: i64,
        to_model: f64,
    ) -> Planner {
        Planner {
            forecaster,
            detector: Detector::new(AnomalyConfig::default()),
            horizon: horizon.max(1),
            lead_steps: lead_steps.clamp(1, horizon.max(1)),
            step_secs,
            next_time,
            model_step,
            to_model,
            step: 0,
            pending: VecDeque::new(),
            residuals: VecDeque::new(),
            current: None,
            expected: None,
        }
    }

    /// Closes a step in which `requests` arrived.
    pub fn observe(&mut self, requests: f64) {
        let t = self.next_time;
        let value = requests * self.to_model;
        let rate = |v: f64, s: &Planner| v / s.to_model / s.step_secs;
        while self.pending.front().is_some_and(|(at, _)| *at <= self.step) {
            let (at, f) = self.pending.pop_front().expect("checked");
            if at == self.step {
                self.detector.update(t, value, f);
                if self.residuals.len() == RESIDUAL_WINDOW {
                    self.residuals.pop_front();
                }
                self.residuals.push_back(rate(value - f, self));
            }
        }
        self.forecaster.observe(t, value, &[]);
        let expected: Option<Vec<f64>> = self
            .forecaster
            .forecast(self.horizon)
            .map(|v| v.iter().map(|x| rate(x.max(0.0), self)).collect());
        if let Some(fc) = &expected {
            let k = self.lead_steps.min(fc.len()).max(1);
            self.pending
                .push_back((self.step + k, fc[k - 1] * self.to_model * self.step_secs));
        }
        let band = upper_band(&self.residuals);
        self.current = expected
            .as_ref()
            .map(|v| v.iter().map(|r| r + band).collect());
        self.expected = expected;
        self.step += 1;
        self.next_time += self.model_step;
    }

    /// The planned rates (forecast + band) as (seconds ahead, requests per second), given how
    /// far into the current step `now` is.
    pub fn forecast(&self, into_step: f64) -> Option<Vec<(f64, f64)>> {
        self.current.as_ref().map(|fc| {
            fc.iter()
                .enumerate()
                .map(|(k, r)| ((k as f64 + 1.0) * self.step_secs - into_step, *r))
                .collect()
        })
    }

    /// The expected rates without the band.
    pub fn expected(&self) -> Option<&[f64]> {
        self.expected.as_deref()
    }

    /// Whether the anomaly detector trusts the forecast now.
    pub fn trusted(&self) -> bool {
        self.detector.trustworthy(self.next_time)
    }

    /// The forecaster's name and state.
    pub fn forecaster_name(&self) -> String {
        self.forecaster.name()
    }

    /// Steps observed.
    pub fn steps(&self) -> usize {
        self.step
    }
}

fn upper_band(residuals: &VecDeque<f64>) -> f64 {
    if residuals.len() < 30 {
        return 0.0;
    }
    let mut v: Vec<f64> = residuals.iter().copied().collect();
    v.sort_by(f64::total_cmp);
    let k = ((v.len() - 1) as f64 * UPPER_QUANTILE).round() as usize;
    v[k].max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use foresight_forecast::Persistence;

    #[test]
    fn converts_units_and_times() {
        // One live second = one model minute; a live request = 2 model units.
        let mut p = Planner::new(Box::new(Persistence::new()), 3, 2, 1.0, 0, 60, 2.0);
        assert!(p.forecast(0.0).is_none());
        p.observe(50.0);
        let f = p.forecast(0.25).unwrap();
        assert_eq!(f.len(), 3);
        assert!(
            (f[0].0 - 0.75).abs() < 1e-9 && (f[0].1 - 50.0).abs() < 1e-9,
            "{f:?}"
        );
        assert!((f[2].0 - 2.75).abs() < 1e-9);
        assert_eq!(p.steps(), 1);
        assert!(p.trusted());
    }

    #[test]
    fn band_grows_with_underforecasts() {
        let mut p = Planner::new(Box::new(Persistence::new()), 1, 1, 1.0, 0, 60, 1.0);
        // A rising series: persistence is always 10 short.
        for i in 0..60 {
            p.observe(100.0 + 10.0 * i as f64);
        }
        let last = 100.0 + 10.0 * 59.0;
        let f = p.forecast(0.0).unwrap();
        assert!((f[0].1 - (last + 10.0)).abs() < 1e-6, "{f:?}");
    }
}
