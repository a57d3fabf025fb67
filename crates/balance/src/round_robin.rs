//! Round-robin: each instance in turn, weights ignored. One atomic counter; the start position
//! comes from the seed so that several proxies started together do not all hit instance 0 first.

use std::sync::atomic::{AtomicUsize, Ordering};

use foresight_core::{rng::mix64, Time};

use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// See the module documentation.
#[derive(Debug)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    pub fn new(seed: u64) -> Self {
        RoundRobin {
            next: AtomicUsize::new(mix64(seed) as usize),
        }
    }
}

impl Balancer for RoundRobin {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RoundRobin
    }

    fn uses_latency(&self) -> bool {
        false
    }

    fn pick(&self, endpoints: &[Endpoint], _: &RequestInfo, _: Time) -> Option<usize> {
        if endpoints.is_empty() {
            return None;
        }
        Some(self.next.fetch_add(1, Ordering::Relaxed) % endpoints.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{endpoints, histogram};

    #[test]
    fn visits_each_in_turn_ignoring_weights() {
        let eps = endpoints(&[1, 5, 1]);
        let b = RoundRobin::new(3);
        let first: Vec<usize> = (0..6)
            .map(|_| b.pick(&eps, &RequestInfo::default(), Time::ZERO).unwrap())
            .collect();
        assert_eq!(first[0..3], first[3..6]);
        assert_eq!(histogram(&b, &eps, 300), vec![100, 100, 100]);
    }
}
