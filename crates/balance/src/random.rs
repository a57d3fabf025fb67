//! Random: uniform over the instances, or proportional to weight when weights differ (a
//! cumulative-weight table built once, searched by bisection). Seeded.

use foresight_core::{rng::AtomicSplitMix, Time};

use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// See the module documentation.
#[derive(Debug)]
pub struct Random {
    rng: AtomicSplitMix,
    /// Running sums of weights; empty when all weights are equal.
    cumulative: Vec<u64>,
}

impl Random {
    pub fn new(endpoints: &[Endpoint], seed: u64) -> Self {
        let equal = endpoints.windows(2).all(|w| w[0].weight == w[1].weight);
        let cumulative = if equal {
            Vec::new()
        } else {
            endpoints
                .iter()
                .scan(0u64, |acc, e| {
                    *acc += u64::from(e.weight);
                    Some(*acc)
                })
                .collect()
        };
        Random {
            rng: AtomicSplitMix::new(seed),
            cumulative,
        }
    }
}

impl Balancer for Random {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Random
    }

    fn uses_latency(&self) -> bool {
        false
    }

    fn pick(&self, endpoints: &[Endpoint], _: &RequestInfo, _: Time) -> Option<usize> {
        let n = endpoints.len();
        if n == 0 {
            return None;
        }
        if self.cumulative.len() != n {
            return Some(self.rng.below(n));
        }
        let total = *self.cumulative.last()?;
        let r = self.rng.next_u64() % total;
        Some(self.cumulative.partition_point(|c| *c <= r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{endpoints, histogram};

    #[test]
    fn proportional_to_weight() {
        let eps = endpoints(&[1, 3]);
        let h = histogram(&Random::new(&eps, 11), &eps, 40_000);
        assert!((9_000..11_000).contains(&h[0]), "{h:?}");
    }

    #[test]
    fn same_seed_same_choices() {
        let eps = endpoints(&[1, 1, 1]);
        let a = Random::new(&eps, 4);
        let b = Random::new(&eps, 4);
        for _ in 0..100 {
            let r = RequestInfo::default();
            assert_eq!(a.pick(&eps, &r, Time::ZERO), b.pick(&eps, &r, Time::ZERO));
        }
    }
}
