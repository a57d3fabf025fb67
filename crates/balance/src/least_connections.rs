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

    fn uses_latency(&self) -> bool {
        false
    }

    fn pick(&self, endpoints: &[Endpoint], _: &RequestInfo, _: Time) -> Option<usize> {
        let n = endpoints.len();
        if n == 0 {
            return None;
        }
        // The rotation only breaks ties, so a lost update between threads is harmless: a load
        // and a store instead of a locked add, and no division while it stays in range.
        let s = self.start.load(Ordering::Relaxed);
        let start = if s < n { s } else { s % n };
        self.start
            .store(if start + 1 < n { start + 1 } else { 0 }, Ordering::Relaxed);
        // Two passes: the smallest count (branch-free, four running minima so four compare
        // chains are in flight at once), then the first instance from `start` that has it.
        // Under load most instances share the minimum, so the second pass stops early. If
        // another thread moved the counts in between, `start` is as good an answer as any.
        let min = min_in_flight(endpoints);
        let has_min = |e: &Endpoint| e.load.in_flight() == min;
        let found = match endpoints[start..].iter().position(has_min) {
            Some(d) => start + d,
            None => endpoints[..start].iter().position(has_min).unwrap_or(start),
        };
        Some(found)
    }
}

/// The smallest in-flight count of a non-empty pool.
fn min_in_flight(endpoints: &[Endpoint]) -> u32 {
    let mut acc = [u32::MAX; 4];
    let chunks = endpoints.chunks_exact(4);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, e) in acc.iter_mut().zip(chunk) {
            *a = (*a).min(e.load.in_flight());
        }
    }
    for (a, e) in acc.iter_mut().zip(rest) {
        *a = (*a).min(e.load.in_flight());
    }
    acc[0].min(acc[1]).min(acc[2].min(acc[3]))
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

    /// The branch-free scan agrees with the plain definition (first least-loaded instance
    /// from the rotating start) on pools of every size around the 4-wide blocks.
    #[test]
    fn agrees_with_a_plain_scan() {
        let mut x = 11u64;
        for n in 1..=13 {
            let eps = endpoints(&vec![1; n]);
            let b = LeastConnections::new(n as u64);
            for _ in 0..200 {
                x = mix64(x);
                let i = (x % n as u64) as usize;
                if x & 1 == 0 || eps[i].load.in_flight() == 0 {
                    eps[i].load.begin();
                } else {
                    eps[i].load.end();
                }
                let start = b.start.load(Ordering::Relaxed) % n;
                let min = eps.iter().map(|e| e.load.in_flight()).min().unwrap();
                let want = (start..n)
                    .chain(0..start)
                    .find(|&k| eps[k].load.in_flight() == min);
                assert_eq!(b.pick(&eps, &RequestInfo::default(), Time::ZERO), want);
            }
        }
    }
}
