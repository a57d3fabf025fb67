//! Least request, as Envoy implements it (`LEAST_REQUEST`, envoyproxy.io docs, "Load balancers"):
//! with equal weights, the power of two choices over requests in flight (the fewer wins); with
//! unequal weights, a weighted choice where each instance's effective weight is
//! `weight / (in_flight + 1)` (Envoy's `active_request_bias` = 1). Envoy draws that weighted
//! choice with an EDF scheduler; here it is a seeded weighted random draw, which gives the same
//! expected shares without shared mutable state.

use foresight_core::{rng::AtomicSplitMix, Time};

use crate::p2c_ewma::distinct_pair;
use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// See the module documentation.
#[derive(Debug)]
pub struct LeastRequest {
    rng: AtomicSplitMix,
    equal_weights: bool,
}

impl LeastRequest {
    pub fn new(endpoints: &[Endpoint], seed: u64) -> Self {
        LeastRequest {
            rng: AtomicSplitMix::new(seed),
            equal_weights: endpoints.windows(2).all(|w| w[0].weight == w[1].weight),
        }
    }
}

impl Balancer for LeastRequest {
    fn algorithm(&self) -> Algorithm {
        Algorithm::LeastRequest
    }

    fn pick(&self, endpoints: &[Endpoint], _: &RequestInfo, _: Time) -> Option<usize> {
        match endpoints.len() {
            0 => None,
            1 => Some(0),
            n if self.equal_weights => {
                let (a, b) = distinct_pair(&self.rng, n);
                Some(
                    if endpoints[b].load.in_flight() < endpoints[a].load.in_flight() {
                        b
                    } else {
                        a
                    },
                )
            }
            n => {
                let eff = |e: &Endpoint| f64::from(e.weight) / f64::from(e.load.in_flight() + 1);
                Some(crate::roulette(&self.rng, endpoints, eff).min(n - 1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{endpoints, histogram};

    #[test]
    fn equal_weights_prefer_fewer_in_flight() {
        let eps = endpoints(&[1, 1]);
        for _ in 0..5 {
            eps[0].load.begin();
        }
        let b = LeastRequest::new(&eps, 1);
        for _ in 0..20 {
            assert_eq!(b.pick(&eps, &RequestInfo::default(), Time::ZERO), Some(1));
        }
    }

    #[test]
    fn unequal_weights_share_by_effective_weight() {
        let eps = endpoints(&[3, 1]);
        let h = histogram(&LeastRequest::new(&eps, 2), &eps, 40_000);
        assert!((29_000..31_000).contains(&h[0]), "{h:?}");
        // Three in flight on the heavy one: effective weights 3/4 vs 1 → 43% vs 57%.
        for _ in 0..3 {
            eps[0].load.begin();
        }
        let h = histogram(&LeastRequest::new(&eps, 2), &eps, 40_000);
        assert!((16_300..18_000).contains(&h[0]), "{h:?}");
    }
}
