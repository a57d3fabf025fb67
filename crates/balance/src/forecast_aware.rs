//! Forecast-aware weighting — the paper's idea that "the load balancer routes to under-utilised
//! nodes using predictions": each instance's share follows its *predicted spare capacity*.
//!
//! Input: a per-instance forecast, `Load::set_forecast(predicted_rps, capacity_rps)`, set by the
//! forecaster (wired by the live control loop; given directly in tests and scenarios). Each
//! instance's spare capacity is `max(capacity − predicted, FLOOR × capacity)`; a request goes to
//! an instance drawn with probability proportional to its spare capacity divided by
//! `(in_flight + 1)` (so a momentary burst still spreads). Instances without a forecast count
//! with the mean spare capacity per unit of weight of those that have one; when no instance has
//! a forecast, the choice falls back to P2C over peak-EWMA, the default reactive algorithm.
//! Seeded.
//!
//! The simulator and the live control loop set the forecasts with [`split_planned_load`]: the
//! autoscaler's planned load split by effective capacity, so an instance that joined for a
//! planned scale-up ramps into its part of the plan over the slow-start window (the proxy's
//! `slow_start_window`, the experiment's `--slow-start`) instead of looking idle.

use foresight_core::{rng::AtomicSplitMix, Time};

use crate::p2c_ewma::P2cPeakEwma;
use crate::slow_start::SlowStart;
use crate::SlowStartConfig;
use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// Share of its capacity an instance predicted to be full still counts as spare, so it keeps
/// receiving a little traffic (and keeps being measured).
pub const FLOOR: f64 = 0.05;

/// See the module documentation.
#[derive(Debug)]
pub struct ForecastAware {
    rng: AtomicSplitMix,
    fallback: Box<dyn Balancer>,
}

impl ForecastAware {
    pub fn new(seed: u64) -> Self {
        ForecastAware {
            rng: AtomicSplitMix::new(seed),
            fallback: Box::new(P2cPeakEwma::new(seed ^ 0xFA11)),
        }
    }

    /// With slow start: the forecasts carry it (whoever sets them splits the plan with
    /// [`split_planned_load`] and each instance's slow-start factor), and the fallback, P2C over
    /// peak-EWMA before any forecast exists, is wrapped in it.
    pub fn with_slow_start(seed: u64, slow_start: SlowStartConfig) -> Self {
        let plain = ForecastAware::new(seed);
        ForecastAware {
            fallback: Box::new(SlowStart::new(plain.fallback, slow_start, seed)),
            ..plain
        }
    }
}

/// Splits the `planned` load (req/s, the autoscaler's plan for the coming interval) over the
/// instances as their forecasts: instance `i`, of full-speed `capacity[i]` req/s and slow-start
/// factor `factor[i]` (1 once warm; [`SlowStartConfig::factor`]), is predicted to carry the
/// part of the plan its effective capacity `capacity[i] × factor[i]` is of the pool's, on that
/// effective capacity. An instance that joined for a planned scale-up so takes on its part of
/// the plan as its slow start ramps, and its predicted spare capacity is its share of the
/// pool's, never a newcomer's empty record. Returns `(predicted, capacity)` per instance, for
/// [`Load::set_forecast`](crate::Load::set_forecast); NaN (which clears a forecast) when the
/// plan or the capacities are unusable.
///
/// [`SlowStartConfig::factor`]: crate::SlowStartConfig::factor
pub fn split_planned_load(planned: f64, members: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let effective: Vec<f64> = members
        .iter()
        .map(|&(c, f)| {
            if c.is_finite() && c > 0.0 && f.is_finite() && f > 0.0 {
                c * f.min(1.0)
            } else {
                0.0
            }
        })
        .collect();
    let total: f64 = effective.iter().sum();
    effective
        .iter()
        .map(|&e| {
            if planned.is_finite() && planned >= 0.0 && total > 0.0 && e > 0.0 {
                (planned * e / total, e)
            } else {
                (f64::NAN, f64::NAN)
            }
        })
        .collect()
}

fn spare(predicted: f64, capacity: f64) -> f64 {
    (capacity - predicted).max(FLOOR * capacity)
}

impl Balancer for ForecastAware {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ForecastAware
    }

    fn pick(&self, endpoints: &[Endpoint], request: &RequestInfo, now: Time) -> Option<usize> {
        let n = endpoints.len();
        if n == 0 {
            return None;
        }
        let (mut known_spare, mut known_weight) = (0.0, 0.0);
        for e in endpoints {
            if let Some((p, c)) = e.load.forecast() {
                known_spare += spare(p, c);
                known_weight += f64::from(e.weight);
            }
        }
        if known_weight == 0.0 {
            return self.fallback.pick(endpoints, request, now);
        }
        let per_weight = known_spare / known_weight;
        let score = |e: &Endpoint| {
            let s = match e.load.forecast() {
                Some((p, c)) => spare(p, c),
                None => per_weight * f64::from(e.weight),
            };
            s / f64::from(e.load.in_flight() + 1)
        };
        Some(crate::roulette(&self.rng, endpoints, score))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{endpoints, histogram};

    #[test]
    fn shares_follow_predicted_spare_capacity() {
        let eps = endpoints(&[1, 1, 1]);
        // Same capacity; predicted 90, 50 and 10 of 100 req/s → spare 10 : 50 : 90.
        for (e, p) in eps.iter().zip([90.0, 50.0, 10.0]) {
            e.load.set_forecast(p, 100.0);
        }
        let h = histogram(&ForecastAware::new(1), &eps, 30_000);
        let expect = [2_000.0, 10_000.0, 18_000.0];
        for (got, want) in h.iter().zip(expect) {
            assert!((*got as f64 - want).abs() < 500.0, "{h:?}");
        }
    }

    #[test]
    fn an_instance_predicted_full_keeps_a_trickle_and_unknowns_get_the_mean() {
        let eps = endpoints(&[1, 1, 1]);
        eps[0].load.set_forecast(500.0, 100.0); // over capacity: floor 5
        eps[1].load.set_forecast(5.0, 100.0); // spare 95
                                              // eps[2] has no forecast: mean spare per weight = 50.
        let h = histogram(&ForecastAware::new(2), &eps, 30_000);
        assert!(h[0] > 500 && h[0] < 1_500, "{h:?}");
        assert!(h[1] > h[2] && h[2] > h[0], "{h:?}");
    }

    #[test]
    fn without_forecasts_it_is_p2c_ewma() {
        let eps = endpoints(&[1, 1]);
        for _ in 0..3 {
            eps[0].load.begin();
        }
        let b = ForecastAware::new(3);
        for _ in 0..20 {
            assert_eq!(b.pick(&eps, &RequestInfo::default(), Time::ZERO), Some(1));
        }
    }

    #[test]
    fn the_plan_is_split_by_effective_capacity() {
        // Two warm instances and one at a quarter of its slow start.
        let got = split_planned_load(90.0, &[(20.0, 1.0), (20.0, 1.0), (20.0, 0.25)]);
        assert_eq!(got, vec![(40.0, 20.0), (40.0, 20.0), (10.0, 5.0)]);
        // Spare capacity follows the effective capacity: the newcomer gets a quarter.
        let eps = endpoints(&[1, 1, 1]);
        for (e, (p, c)) in eps.iter().zip(&got) {
            e.load.set_forecast(*p, *c);
        }
        let h = histogram(&ForecastAware::new(4), &eps, 27_000);
        for (got, want) in h.iter().zip([12_000.0, 12_000.0, 3_000.0]) {
            assert!((*got as f64 - want).abs() < 600.0, "{h:?}");
        }
    }

    #[test]
    fn with_slow_start_the_factor_is_applied_once() {
        use crate::{build, BalancerConfig, EwmaParams};
        use std::time::Duration;
        let slow = SlowStartConfig {
            window: Duration::from_secs(120),
            aggression: 1.0,
            min_weight_percent: 10.0,
        };
        // Two warm instances and one that joined 30 s before `now`: factor 0.25.
        let now = Time::from_nanos(150_000_000_000);
        let eps: Vec<Endpoint> = [0u64, 0, 120]
            .iter()
            .enumerate()
            .map(|(i, joined)| {
                Endpoint::new(
                    i as u64,
                    1,
                    EwmaParams::default(),
                    Time::from_nanos(joined * 1_000_000_000),
                )
            })
            .collect();
        let factors: Vec<(f64, f64)> = eps
            .iter()
            .map(|e| (20.0, slow.factor(e.load.created(), now)))
            .collect();
        for (e, (p, c)) in eps.iter().zip(split_planned_load(90.0, &factors)) {
            e.load.set_forecast(p, c);
        }
        let b = build(
            &BalancerConfig {
                algorithm: Algorithm::ForecastAware,
                seed: 5,
                slow_start: Some(slow),
            },
            &eps,
        );
        let mut h = [0usize; 3];
        for _ in 0..27_000 {
            h[b.pick(&eps, &RequestInfo::default(), now).unwrap()] += 1;
        }
        // 4 : 4 : 1 through the forecasts alone (wrapped again, the newcomer would get 1/16).
        for (got, want) in h.iter().zip([12_000.0, 12_000.0, 3_000.0]) {
            assert!((*got as f64 - want).abs() < 600.0, "{h:?}");
        }
    }

    #[test]
    fn an_unusable_plan_clears_the_forecasts() {
        for planned in [f64::NAN, -1.0, f64::INFINITY] {
            let got = split_planned_load(planned, &[(20.0, 1.0)]);
            assert!(got[0].0.is_nan() && got[0].1.is_nan(), "{planned}: {got:?}");
        }
        let got = split_planned_load(10.0, &[(0.0, 1.0), (20.0, f64::NAN), (20.0, 1.0)]);
        assert!(got[0].0.is_nan() && got[1].0.is_nan(), "{got:?}");
        assert_eq!(got[2], (10.0, 20.0));
        assert!(split_planned_load(10.0, &[]).is_empty());
    }

    #[test]
    fn bad_forecasts_are_ignored() {
        let eps = endpoints(&[1]);
        eps[0].load.set_forecast(f64::NAN, 100.0);
        assert_eq!(eps[0].load.forecast(), None);
        eps[0].load.set_forecast(10.0, 0.0);
        assert_eq!(eps[0].load.forecast(), None);
    }
}
