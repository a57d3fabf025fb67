//! Central Load Balancer (CLB; after the Central Load Balancing Decision Model of Radojević and
//! Žagar, "Analysis of issues with load balancing algorithms in hosted (cloud) environments",
//! MIPRO 2011): a central balancer improves round-robin by watching how long each node takes;
//! a node whose sessions run past a threshold is treated as overloaded and skipped until it
//! recovers.
//!
//! Online adaptation: instances are visited in round-robin order; an instance is *overloaded*
//! when its peak-EWMA response time exceeds [`OVERLOAD_FACTOR`] × the pool's median, and is
//! skipped. If every candidate is overloaded (or the pool is too small to judge), the instance
//! with the lowest `rtt × (in_flight + 1) / weight` takes the request — the central balancer's
//! full view of the pool.

use std::sync::atomic::{AtomicUsize, Ordering};

use foresight_core::{rng::mix64, Time};

use crate::{p2c_ewma::cost, Algorithm, Balancer, Endpoint, RequestInfo};

/// A response time this many times the pool's median marks an instance overloaded.
pub const OVERLOAD_FACTOR: f64 = 2.0;

/// See the module documentation.
#[derive(Debug)]
pub struct Clb {
    next: AtomicUsize,
}

impl Clb {
    pub fn new(seed: u64) -> Self {
        Clb {
            next: AtomicUsize::new(mix64(seed) as usize),
        }
    }
}

impl Balancer for Clb {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Clb
    }

    fn pick(&self, endpoints: &[Endpoint], _: &RequestInfo, now: Time) -> Option<usize> {
        let n = endpoints.len();
        if n == 0 {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        if n >= 3 {
            let rtts: Vec<f64> = endpoints
                .iter()
                .map(|e| e.load.rtt_estimate_ns(now))
                .collect();
            let threshold = {
                let mut sorted = rtts.clone();
                sorted.sort_by(f64::total_cmp);
                sorted[n / 2] * OVERLOAD_FACTOR
            };
            // Round-robin over the instances that are not overloaded, so a skipped instance's
            // turns are shared by all the others, not given to its neighbour.
            let eligible = rtts.iter().filter(|r| **r <= threshold).count();
            if eligible > 0 {
                let k = turn % eligible;
                return (0..n).filter(|i| rtts[*i] <= threshold).nth(k);
            }
        } else if endpoints[turn % n].load.in_flight() == 0 {
            return Some(turn % n);
        }
        (0..n).min_by(|a, b| cost(&endpoints[*a], now).total_cmp(&cost(&endpoints[*b], now)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::endpoints;

    #[test]
    fn round_robin_that_skips_an_overloaded_instance() {
        let eps = endpoints(&[1, 1, 1, 1]);
        let t = Time::ZERO + Duration::from_secs(60);
        for (i, e) in eps.iter().enumerate() {
            e.load
                .observe(Duration::from_millis(if i == 2 { 500 } else { 40 }), t);
        }
        let b = Clb::new(0);
        let mut counts = [0; 4];
        for _ in 0..400 {
            counts[b.pick(&eps, &RequestInfo::default(), t).unwrap()] += 1;
        }
        assert_eq!(counts[2], 0, "{counts:?}");
        assert!(
            [0, 1, 3].iter().all(|i| (133..=134).contains(&counts[*i])),
            "even round-robin over the others: {counts:?}"
        );
    }
}
