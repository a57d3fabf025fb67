//! When the load comes, not only how much: a burst that the forecast places at 10:10 may come
//! at 10:08 or 10:13. Planning for one minute then misses it, and the error band, which has
//! to cover the misplaced burst's whole height, raises capacity at every step. [`Timing`]
//! measures, for each widening `w` (0 to [`MAX_WIDEN`] steps each side), the realised errors
//! of the plan widened to the highest plan within `w` steps, and picks the widening whose
//! plan plus band has the lowest pinball loss: the plan then covers the window in which the
//! load may come, and the band only what no plan near it foresaw.

use std::collections::VecDeque;

use crate::planner::{upper_band, BAND_MIN_POINTS, RESIDUAL_WINDOW};

/// Widest widening measured, steps each side (bursts up to 5 minutes early or late).
pub const MAX_WIDEN: usize = 5;

/// A widening is chosen over a narrower one only if its loss is lower by more than this
/// share: a tie keeps the narrower.
const WIDEN_GAIN: f64 = 0.01;

/// Realised errors of the plan widened by each `w`, measured [`MAX_WIDEN`] steps late (when
/// the plans on both sides of a step are known).
#[derive(Clone, Debug)]
pub struct Timing {
    /// (step, plan at the lead), newest last, rates.
    plans: VecDeque<(usize, f64)>,
    /// (step, actual), newest last, rates.
    actuals: VecDeque<(usize, f64)>,
    /// `residuals[w]`: actual − widened plan, last [`RESIDUAL_WINDOW`].
    residuals: Vec<VecDeque<f64>>,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            plans: VecDeque::new(),
            actuals: VecDeque::new(),
            residuals: vec![VecDeque::new(); MAX_WIDEN + 1],
        }
    }
}

impl Timing {
    /// Step `step` closed: what was planned for it at the lead, and what came.
    pub fn record(&mut self, step: usize, planned: f64, actual: f64) {
        self.plans.push_back((step, planned));
        self.actuals.push_back((step, actual));
        let Some(e) = step.checked_sub(MAX_WIDEN) else {
            return;
        };
        while self.actuals.front().is_some_and(|(s, _)| *s < e) {
            self.actuals.pop_front();
        }
        while self
            .plans
            .front()
            .is_some_and(|(s, _)| *s + 2 * MAX_WIDEN < step)
        {
            self.plans.pop_front();
        }
        let Some(&(_, actual)) = self.actuals.front().filter(|(s, _)| *s == e) else {
            return;
        };
        for w in 0..=MAX_WIDEN {
            let widened = self
                .plans
                .iter()
                .filter(|(s, _)| s.abs_diff(e) <= w)
                .map(|(_, p)| *p)
                .fold(f64::NEG_INFINITY, f64::max);
            if !widened.is_finite() {
                continue;
            }
            let r = &mut self.residuals[w];
            if r.len() == RESIDUAL_WINDOW {
                r.pop_front();
            }
            r.push_back(actual - widened);
        }
    }

    /// The widening (steps each side) whose plan, with its band for the `q` quantile of its
    /// errors, has the lowest pinball loss at `q` against what came (under-provisioning
    /// weighs `q`, over-provisioning `1 − q`, as `auto` scores forecasters), with that band;
    /// `None` until every widening has [`BAND_MIN_POINTS`] errors. A step-count quantile
    /// alone would not do: a burst shorter than `1 − q` of the steps falls outside it,
    /// however many requests it carries.
    pub fn choose(&self, q: f64, max: usize) -> Option<(usize, f64)> {
        if self.residuals.iter().any(|r| r.len() < BAND_MIN_POINTS) {
            return None;
        }
        let loss = |w: usize| {
            let band = upper_band(&self.residuals[w], q);
            // actual − (plan + band) = residual − band.
            let l = self.residuals[w]
                .iter()
                .map(|r| crate::select::pinball(q, r - band, 0.0))
                .sum::<f64>()
                / self.residuals[w].len() as f64;
            (l, band)
        };
        let (mut best, (mut best_loss, mut best_band)) = (0, loss(0));
        for w in 1..=max.min(MAX_WIDEN) {
            let (l, b) = loss(w);
            if l < best_loss * (1.0 - WIDEN_GAIN) {
                (best, best_loss, best_band) = (w, l, b);
            }
        }
        Some((best, best_band))
    }
}

/// `plan` widened by `w` steps each side: each step's highest plan within `w` steps.
pub fn widen(plan: &[f64], w: usize) -> Vec<f64> {
    if w == 0 {
        return plan.to_vec();
    }
    (0..plan.len())
        .map(|k| {
            let (lo, hi) = (k.saturating_sub(w), (k + w).min(plan.len() - 1));
            plan[lo..=hi]
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_takes_the_highest_plan_nearby() {
        assert_eq!(
            widen(&[1.0, 5.0, 1.0, 1.0, 1.0], 1),
            vec![5.0, 5.0, 5.0, 1.0, 1.0]
        );
        assert_eq!(widen(&[1.0, 2.0], 0), vec![1.0, 2.0]);
    }

    #[test]
    fn bursts_on_time_keep_the_plan_narrow_and_late_ones_widen_it() {
        // Plans foresee a burst of 500 at step 10 of every 30; the actual comes 0–3 late.
        let run = |late: &dyn Fn(usize) -> usize| {
            let mut t = Timing::default();
            for s in 0..3000 {
                let plan = if s % 30 == 10 { 500.0 } else { 100.0 };
                let n = s / 30;
                let at = 30 * n + 10 + late(n);
                let actual = if s == at { 500.0 } else { 100.0 };
                t.record(s, plan, actual);
            }
            t.choose(0.95, MAX_WIDEN).unwrap()
        };
        assert_eq!(run(&|_| 0), (0, 0.0));
        let (w, band) = run(&|n| (n * 7) % 4);
        assert_eq!(w, 3, "covers 3 steps late");
        assert!(band < 1.0, "{band}");
    }

    /// Forecasts a burst of 500 at step 10 of every 30 (the nominal minute), 100 otherwise.
    struct Nominal {
        last: i64,
    }

    impl foresight_forecast::Forecaster for Nominal {
        fn name(&self) -> String {
            "nominal".into()
        }
        fn observe(&mut self, time: i64, _value: f64, _features: &[f64]) {
            self.last = time;
        }
        fn forecast(&mut self, horizon: usize) -> Option<Vec<f64>> {
            Some(
                (1..=horizon as i64)
                    .map(|k| {
                        if ((self.last / 60 + k) % 30) == 10 {
                            500.0
                        } else {
                            100.0
                        }
                    })
                    .collect(),
            )
        }
    }

    /// The planner, stepped as the autoscaler steps it, on bursts `jitter(n)` steps off the
    /// nominal minute: (widening at the end, share of bursts whose step was provisioned).
    fn covered(jitter: &dyn Fn(usize) -> i64) -> (usize, f64) {
        covered_with(jitter, MAX_WIDEN)
    }

    fn covered_with(jitter: &dyn Fn(usize) -> i64, widen: usize) -> (usize, f64) {
        use crate::{Planner, StepClock};
        let clock = StepClock {
            step_secs: 1.0,
            next_time: 0,
            model_step: 60,
            to_model: 1.0,
        };
        let (lead, margin) = (3usize, 2usize);
        let mut p = Planner::new(Box::new(Nominal { last: -60 }), 15, lead, clock)
            .with_margin_steps(margin)
            .with_widening(widen);
        let n = 300usize;
        let actual: Vec<f64> = {
            let mut v = vec![100.0; n * 30];
            for b in 0..n {
                let at = (30 * b + 10) as i64 + jitter(b);
                if let Some(x) = v.get_mut(at as usize) {
                    *x = 500.0;
                }
            }
            v
        };
        // planned[t]: what the decision before step t provisions for steps t+lead−1 … +margin.
        let mut planned = Vec::new();
        for a in &actual {
            let fc = p.forecast(0.0).unwrap();
            planned.push(
                foresight_scale::peak_between(&fc, lead as f64, (lead + margin) as f64).unwrap(),
            );
            p.observe(*a);
        }
        let (mut bursts, mut ok) = (0, 0);
        for s in n * 30 / 2..actual.len() {
            if actual[s] < 500.0 {
                continue;
            }
            bursts += 1;
            let from = s.saturating_sub(lead - 1 + margin);
            let capacity = planned[from..=s + 1 - lead]
                .iter()
                .copied()
                .fold(0.0, f64::max);
            ok += usize::from(capacity >= 500.0);
        }
        (p.widening(), ok as f64 / bursts as f64)
    }

    #[test]
    fn a_jittered_burst_is_covered_by_the_widened_plan() {
        // On time: no widening, every burst provisioned.
        assert_eq!(covered(&|_| 0), (0, 1.0));
        // Up to 2 steps early or late: the plan widens and still provisions each burst.
        let (w, share) = covered(&|b| ((b * 7) % 5) as i64 - 2);
        assert!(w >= 2, "widening {w}");
        assert!(share >= 0.95, "covered {share}");
        // Off, the plan keeps to the forecast minute.
        assert_eq!(covered_with(&|b| ((b * 7) % 5) as i64 - 2, 0).0, 0);
    }
}
