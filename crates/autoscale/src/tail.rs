//! The tail band: standing headroom for load no forecast places.
//!
//! The quantile band ([`crate::Planner`]) covers the planned quantile of the *steps*: at 0.95,
//! one step in twenty may exceed the plan. The service-level goal counts *requests*, and where
//! the load has a heavy tail (single minutes 3–10× their neighbours, bursts at random hours)
//! the few steps above the plan carry far more than their share of them. The tail band sizes
//! headroom for the requests instead: the smallest relative margin `m` such that, over the
//! last [`TAIL_WINDOW`] steps, the load above `plan × (1 + m)` would have been at most `share`
//! of all the load. Light-tailed load gives a margin the quantile band already exceeds (the
//! band is the larger of the two); heavy-tailed load gives the headroom a fixed fleet would
//! hold, and only while the tail is seen.

use std::collections::VecDeque;

/// Steps of realised errors the tail band is measured over: a week of minutes, long enough to
/// see a tail that shows once a day.
pub const TAIL_WINDOW: usize = 7 * 1440;
/// Steps between two measurements (sorting the window every step would cost more than the
/// rest of a simulated step).
const REFRESH_STEPS: usize = 30;
/// Steps needed before the band is used.
const MIN_STEPS: usize = 60;
/// Plans below this many requests per second carry no relative margin (a drop to zero).
const MIN_PLAN: f64 = 1e-6;
/// The largest margin: load more than this far above the plan (a return from a drop the plan
/// put near zero, a crowd no one foresaw) is for the reactive floor, not standing headroom.
pub const MAX_MARGIN: f64 = 1.0;

/// The share that reached the goal on the most development workloads (docs/results.md, "The
/// tail band"). Not the default: on traces the forecast serves well it cost 14–53% more at
/// the goal, so the band is off unless asked for (`--tail-share`, `[control] tail_share`).
pub const TAIL_SHARE: f64 = 0.002;

/// The relative margin that leaves at most a share of the load above the plan.
#[derive(Clone, Debug)]
pub struct TailBand {
    share: f64,
    /// (plan, actual) rates of the last steps, oldest first.
    steps: VecDeque<(f64, f64)>,
    since: usize,
    margin: f64,
}

impl TailBand {
    /// `share` of the load may lie above the plan with its margin (0 < share ≤ 1); 1 or more
    /// turns the band off.
    pub fn new(share: f64) -> TailBand {
        TailBand {
            share,
            steps: VecDeque::new(),
            since: 0,
            margin: 0.0,
        }
    }

    /// Whether the band can be non-zero.
    pub fn enabled(&self) -> bool {
        self.share > 0.0 && self.share < 1.0
    }

    /// A step closed: what was planned for it and what came (rates).
    pub fn record(&mut self, plan: f64, actual: f64) {
        if !self.enabled() || !plan.is_finite() || !actual.is_finite() {
            return;
        }
        if self.steps.len() == TAIL_WINDOW {
            self.steps.pop_front();
        }
        self.steps.push_back((plan.max(0.0), actual.max(0.0)));
        self.since += 1;
        if self.since >= REFRESH_STEPS && self.steps.len() >= MIN_STEPS {
            self.since = 0;
            self.margin = margin_for(self.steps.iter().copied(), self.share);
        }
    }

    /// The relative margin to add to the plan now (0 until [`MIN_STEPS`] steps are known).
    pub fn margin(&self) -> f64 {
        self.margin
    }
}

/// The smallest `m ≥ 0` with Σ max(0, actual − plan (1 + m)) ≤ share × Σ actual over `steps`
/// of (plan, actual), at most [`MAX_MARGIN`].
///
/// Each step above its plan contributes `plan × (x − m)` while `m < x`, with `x` its relative
/// excess; sorted by `x` from the largest, the shortfall over the first `k` is
/// `S_k − W_k m` (`S`: Σ plan × x, `W`: Σ plan), piecewise linear and falling in `m`.
pub fn margin_for(steps: impl Iterator<Item = (f64, f64)>, share: f64) -> f64 {
    let mut total = 0.0;
    let mut over: Vec<(f64, f64)> = Vec::new();
    for (plan, actual) in steps {
        total += actual;
        if plan > MIN_PLAN && actual > plan {
            over.push(((actual - plan) / plan, plan));
        }
    }
    let budget = share * total;
    over.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut s, mut w) = (0.0, 0.0);
    for (k, &(x, plan)) in over.iter().enumerate() {
        s += plan * x;
        w += plan;
        let next = over.get(k + 1).map_or(0.0, |n| n.0);
        // On [next, x] the shortfall is that of the first k + 1 steps, s − w m: if it is
        // within the budget at `next`, the margin is smaller still.
        if s - w * next <= budget {
            continue;
        }
        return ((s - budget) / w).clamp(next, x).min(MAX_MARGIN);
    }
    0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shortfall(steps: &[(f64, f64)], m: f64) -> f64 {
        steps
            .iter()
            .map(|&(p, a)| (a - p * (1.0 + m)).max(0.0))
            .sum()
    }

    #[test]
    fn the_margin_leaves_exactly_the_share_above_the_plan() {
        // 1,000 steps planned at 100; every 50th comes at 180, the rest at 90.
        let steps: Vec<(f64, f64)> = (0..1000)
            .map(|i| (100.0, if i % 50 == 0 { 180.0 } else { 90.0 }))
            .collect();
        let total: f64 = steps.iter().map(|s| s.1).sum();
        for share in [0.001, 0.005, 0.01] {
            let m = margin_for(steps.iter().copied(), share);
            let left = shortfall(&steps, m);
            assert!(
                (left - share * total).abs() < 1e-6 * total,
                "share {share}: margin {m} leaves {left} of {total}"
            );
            // Any smaller margin leaves more.
            assert!(shortfall(&steps, m - 0.01) > share * total);
        }
        // The load above the plan is 1.74% of all: a share above that needs no margin at all.
        assert!(margin_for(steps.iter().copied(), 0.017) > 0.0);
        assert_eq!(margin_for(steps.iter().copied(), 0.018), 0.0);
        // Spikes of 5× the plan would need a margin of 4 for a small share: capped.
        let spikes: Vec<(f64, f64)> = (0..1000)
            .map(|i| (100.0, if i % 50 == 0 { 500.0 } else { 90.0 }))
            .collect();
        assert_eq!(margin_for(spikes.iter().copied(), 0.001), MAX_MARGIN);
    }

    #[test]
    fn light_tails_get_no_margin_and_heavy_tails_a_large_one() {
        let mut light = TailBand::new(TAIL_SHARE);
        let mut heavy = TailBand::new(TAIL_SHARE);
        for i in 0..5000_u64 {
            // Uniforms in (0, 1), well spread (a multiplicative congruence modulo a prime).
            let u = ((i * 7919) % 10007) as f64 / 10007.0 + 0.5 / 10007.0;
            // Noise of ±10% around the plan.
            light.record(100.0, 100.0 * (0.9 + 0.2 * u));
            // Pareto (α 1.5) minutes on a base of 60.
            heavy.record(100.0, 60.0 * u.powf(-1.0 / 1.5));
        }
        assert!(light.margin() < 0.1, "light: {}", light.margin());
        assert_eq!(heavy.margin(), MAX_MARGIN, "heavy");
    }

    #[test]
    fn drops_to_zero_and_bad_numbers_are_ignored() {
        let mut band = TailBand::new(TAIL_SHARE);
        for i in 0..200 {
            let (plan, actual) = match i % 4 {
                0 => (0.0, 50.0),
                1 => (f64::NAN, 10.0),
                2 => (100.0, f64::INFINITY),
                _ => (100.0, 100.0),
            };
            band.record(plan, actual);
        }
        assert_eq!(band.margin(), 0.0);
        assert!(!TailBand::new(1.0).enabled() && !TailBand::new(0.0).enabled());
    }
}
