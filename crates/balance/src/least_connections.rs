//! Least connections: the instance with the fewest requests in flight. Ties are broken by
//! starting the scan at a rotating position, so an idle pool is used in turn rather than always
//! from its first instance. Weights are ignored (see `wlc` for the weighted form).

use std::sync::atomic::{AtomicUsize, Ordering};

use foresight_core::{rng::mix64, Time};

use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// See the module documentation.
#[derive(Debug)]
pub struct LeastConnections {
    start: AtomicUsize,
}

impl LeastConnections {
    pub fn new(seed: u64) -> Self {
        LeastConnections {
            start: AtomicUsize::new(mix64(seed) as usize),
        }
    }
}

impl Balancer for LeastConnections {
    fn algorithm(&self) -> Algorithm {
        Algorithm::LeastConnections
    }

    fn pick(&self, endpoints: &[Endpoint], _: &RequestInfo, _: Time) -> Option<usize> {
        let n = endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.start.fetch_add(1, Ordering::Relaxed) % n;
        // Two passes: a min reduction over independent loads (no index carried from one
        // element to the next), then the first instance at that minimum from `start`, which
        // ends early in the usual case of many ties.
        let min = endpoints.iter().map(|e| e.load.in_flight()).min()?;
        (start..n)
            .chain(0..start)
            .find(|i| endpoints[*i].load.in_flight() <= min)
            .or(Some(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{endpoints, histogram};

    #[test]
    fn picks_the_least_loaded() {
        let eps = endpoints(&[1, 1, 1]);
        eps[0].load.begin();
        eps[0].load.begin();
        eps[2].load.begin();
        let b = LeastConnections::new(1);
        for _ in 0..10 {
            assert_eq!(b.pick(&eps, &RequestInfo::default(), Time::ZERO), Some(1));
        }
    }

    #[test]
    fn ties_rotate() {
        let eps = endpoints(&[1, 1, 1, 1]);
        let b = LeastConnections::new(2);
        assert_eq!(histogram(&b, &eps, 400), vec![100; 4]);
    }
}
