//! Choosing a forecaster on the data in front of it. Each candidate plans over a stretch of
//! held-out data exactly as the autoscaler would (a [`Planner`]: its curve at the planning
//! quantile plus the band of its realised errors), and is scored by the pinball loss, at the
//! planning quantile, of the peak it planned for each provisioning window (the lead to the
//! lead plus the margin) against the peak that came: under-provisioning weighs `q`,
//! over-provisioning `1 − q`, which is the trade capacity planning makes.

use foresight_forecast::Forecaster;
use foresight_scale::peak_between;

use crate::{Planner, StepClock};

/// How the autoscaler plans: what a candidate is scored on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Planning {
    /// Steps from a decision to the first step it provisions for.
    pub lead_steps: usize,
    /// Steps beyond the lead it provisions for too.
    pub margin_steps: usize,
    /// The planned quantile (0–1).
    pub quantile: f64,
    /// Steps forecast.
    pub horizon: usize,
}

/// A candidate's score.
#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    /// The candidate.
    pub name: String,
    /// Mean pinball loss of the planned window peak, in the data's units per step.
    pub pinball: f64,
    /// Share of windows whose peak the plan covered.
    pub coverage: f64,
    /// Windows scored.
    pub windows: usize,
}

/// The pinball (quantile) loss of planning `planned` for `actual` at quantile `q`.
pub fn pinball(q: f64, actual: f64, planned: f64) -> f64 {
    if actual >= planned {
        q * (actual - planned)
    } else {
        (1.0 - q) * (planned - actual)
    }
}

/// Scores `forecaster`, already fed what came before, planning over `values` (contiguous
/// steps of `step` seconds from `start`). A window without a forecast counts as planned at
/// zero: a candidate that cannot forecast is not rewarded for silence.
pub fn score(
    name: &str,
    forecaster: Box<dyn Forecaster + Send>,
    values: &[f64],
    start: i64,
    step: i64,
    plan: &Planning,
) -> Score {
    let clock = StepClock {
        step_secs: 1.0,
        next_time: start,
        model_step: step,
        to_model: 1.0,
    };
    let lead = plan.lead_steps.max(1);
    let mut p = Planner::new(forecaster, plan.horizon, lead, clock)
        .with_quantile(plan.quantile)
        .with_margin_steps(plan.margin_steps);
    // Forecast index k is the step observed next plus k: the window is lead−1 … lead−1+margin.
    let (lo, hi) = (lead - 1, lead - 1 + plan.margin_steps);
    let (mut loss, mut covered, mut n) = (0.0, 0usize, 0usize);
    for t in 0..values.len() {
        if t + hi < values.len() {
            let actual = values[t + lo..=t + hi].iter().copied().fold(0.0, f64::max);
            let planned = p
                .forecast(0.0)
                .and_then(|fc| peak_between(&fc, lead as f64, (lead + plan.margin_steps) as f64))
                .unwrap_or(0.0);
            loss += pinball(plan.quantile, actual, planned);
            covered += usize::from(actual <= planned);
            n += 1;
        }
        p.observe(values[t]);
    }
    Score {
        name: name.to_string(),
        pinball: loss / n.max(1) as f64,
        coverage: covered as f64 / n.max(1) as f64,
        windows: n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Knows the pattern: forecasts `pattern(t)` exactly.
    struct Oracle {
        last: i64,
    }

    fn pattern(t: i64) -> f64 {
        if (t / 60) % 30 == 10 {
            500.0
        } else {
            100.0
        }
    }

    impl Forecaster for Oracle {
        fn name(&self) -> String {
            "knows".into()
        }
        fn observe(&mut self, time: i64, _value: f64, _features: &[f64]) {
            self.last = time;
        }
        fn forecast(&mut self, horizon: usize) -> Option<Vec<f64>> {
            Some(
                (1..=horizon as i64)
                    .map(|k| pattern(self.last + 60 * k))
                    .collect(),
            )
        }
    }

    #[test]
    fn the_forecaster_that_sees_the_bursts_scores_better() {
        let values: Vec<f64> = (0..3000).map(|i| pattern(i * 60)).collect();
        let plan = Planning {
            lead_steps: 3,
            margin_steps: 2,
            quantile: 0.95,
            horizon: 15,
        };
        let knows = score(
            "knows",
            Box::new(Oracle { last: -60 }),
            &values,
            0,
            60,
            &plan,
        );
        let persistence = score(
            "persistence",
            Box::new(foresight_forecast::Persistence::new()),
            &values,
            0,
            60,
            &plan,
        );
        assert!(knows.pinball < 1e-9, "{knows:?}");
        assert_eq!(knows.coverage, 1.0);
        assert!(persistence.pinball > 10.0, "{persistence:?}");
        assert_eq!(knows.windows, 3000 - 4);
        assert!((pinball(0.9, 10.0, 0.0) - 9.0).abs() < 1e-12);
        assert!((pinball(0.9, 0.0, 10.0) - 1.0).abs() < 1e-12);
    }
}
