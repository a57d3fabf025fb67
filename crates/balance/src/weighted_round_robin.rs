//! Smooth weighted round-robin, NGINX's algorithm (`ngx_http_upstream_get_peer`, 2012): every
//! pick adds each instance's weight to its running score, takes the highest score and subtracts
//! the total weight from it. Over one cycle of `sum(weights)` picks each instance is chosen
//! exactly `weight` times, spread out rather than in runs (5:1:1 gives a a b a c a a, not
//! a a a a a b c).
//!
//! The running scores are mutable state that would need a lock on every pick. Instead the whole
//! cycle is computed once when the balancer is built (weights divided by their GCD, and scaled
//! down to at most [`MAX_CYCLE`] entries) and picks walk it with one atomic counter.

use std::sync::atomic::{AtomicUsize, Ordering};

use foresight_core::{rng::mix64, Time};

use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// The longest precomputed cycle; larger weight sums are scaled down proportionally.
pub const MAX_CYCLE: u64 = 1 << 16;

/// See the module documentation.
#[derive(Debug)]
pub struct WeightedRoundRobin {
    cycle: Vec<u32>,
    next: AtomicUsize,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The smooth weighted round-robin sequence for one full cycle.
fn smooth_cycle(weights: &[u32]) -> Vec<u32> {
    if weights.is_empty() {
        return Vec::new();
    }
    let mut w: Vec<u64> = weights.iter().map(|w| u64::from((*w).max(1))).collect();
    let g = w.iter().copied().fold(0, gcd);
    w.iter_mut().for_each(|x| *x /= g);
    let total: u64 = w.iter().sum();
    if total > MAX_CYCLE {
        let scale = MAX_CYCLE as f64 / total as f64;
        w.iter_mut()
            .for_each(|x| *x = ((*x as f64 * scale).round() as u64).max(1));
    }
    let total: i64 = w.iter().sum::<u64>() as i64;
    let mut current = vec![0i64; w.len()];
    let mut cycle = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for i in 0..w.len() {
            current[i] += w[i] as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        cycle.push(best as u32);
    }
    cycle
}

impl WeightedRoundRobin {
    pub fn new(endpoints: &[Endpoint], seed: u64) -> Self {
        let weights: Vec<u32> = endpoints.iter().map(|e| e.weight).collect();
        WeightedRoundRobin {
            cycle: smooth_cycle(&weights),
            next: AtomicUsize::new(mix64(seed) as usize),
        }
    }
}

impl Balancer for WeightedRoundRobin {
    fn algorithm(&self) -> Algorithm {
        Algorithm::WeightedRoundRobin
    }

    fn uses_latency(&self) -> bool {
        false
    }

    fn pick(&self, endpoints: &[Endpoint], _: &RequestInfo, _: Time) -> Option<usize> {
        if self.cycle.is_empty() || endpoints.is_empty() {
            return None;
        }
        let i = self.cycle[self.next.fetch_add(1, Ordering::Relaxed) % self.cycle.len()] as usize;
        Some(i.min(endpoints.len() - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{endpoints, histogram};

    #[test]
    fn matches_nginx_smooth_sequence() {
        // The example from NGINX's commit message: weights 5, 1, 1.
        assert_eq!(smooth_cycle(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn weights_respected_exactly_over_whole_cycles() {
        let eps = endpoints(&[3, 1, 2]);
        let b = WeightedRoundRobin::new(&eps, 9);
        assert_eq!(histogram(&b, &eps, 600), vec![300, 100, 200]);
    }

    #[test]
    fn gcd_reduces_and_huge_weights_are_capped() {
        assert_eq!(smooth_cycle(&[100, 200]).len(), 3);
        let c = smooth_cycle(&[u32::MAX, 1, u32::MAX]);
        assert!(c.len() as u64 <= MAX_CYCLE + 3);
        assert!(c.contains(&1), "a weight-1 instance still appears");
    }
}
