//! Weighted least-connection (LVS `wlc`, Zhang 2000): the instance with the smallest
//! (in-flight + 1) / weight. The `+ 1` (as in Envoy's least-request) counts the request being
//! placed, so an idle pool still fills in proportion to weight instead of treating every idle
//! instance as equal. Compared by cross-multiplication in integers; ties rotate.

use std::sync::atomic::{AtomicUsize, Ordering};

use foresight_core::{rng::mix64, Time};

use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// See the module documentation.
#[derive(Debug)]
pub struct WeightedLeastConnections {
    start: AtomicUsize,
}

impl WeightedLeastConnections {
    pub fn new(seed: u64) -> Self {
        WeightedLeastConnections {
            start: AtomicUsize::new(mix64(seed) as usize),
        }
    }
}

impl Balancer for WeightedLeastConnections {
    fn algorithm(&self) -> Algorithm {
        Algorithm::WeightedLeastConnections
    }

    fn uses_latency(&self) -> bool {
        false
    }

    fn pick(&self, endpoints: &[Endpoint], _: &RequestInfo, _: Time) -> Option<usize> {
        let n = endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.start.fetch_add(1, Ordering::Relaxed) % n;
        let cost = |i: usize| {
            (
                u64::from(endpoints[i].load.in_flight()) + 1,
                u64::from(endpoints[i].weight),
            )
        };
        let mut best = start;
        let (mut bl, mut bw) = cost(start);
        // Scan from `start` to the end, then wrap: no division per element.
        for i in (start + 1..n).chain(0..start) {
            let (l, w) = cost(i);
            // l / w < bl / bw
            if l * bw < bl * w {
                best = i;
                bl = l;
                bw = w;
            }
        }
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Places `n` requests that never finish and returns how many each endpoint holds.
    fn fill(weights: &[u32], n: usize) -> Vec<u32> {
        let eps = crate::testing::endpoints(weights);
        let b = WeightedLeastConnections::new(5);
        for _ in 0..n {
            let i = b.pick(&eps, &RequestInfo::default(), Time::ZERO).unwrap();
            eps[i].load.begin();
        }
        eps.iter().map(|e| e.load.in_flight()).collect()
    }

    #[test]
    fn outstanding_requests_follow_weights() {
        assert_eq!(fill(&[3, 1], 40), vec![30, 10]);
        assert_eq!(fill(&[1, 2, 1], 40), vec![10, 20, 10]);
    }

    #[test]
    fn prefers_spare_capacity_per_weight() {
        let eps = crate::testing::endpoints(&[4, 1]);
        for _ in 0..3 {
            eps[0].load.begin();
        }
        // (3+1)/4 = 1 vs (0+1)/1 = 1: tie; add one more to the heavy one and the light wins.
        eps[0].load.begin();
        let b = WeightedLeastConnections::new(0);
        assert_eq!(b.pick(&eps, &RequestInfo::default(), Time::ZERO), Some(1));
    }
}
