//! Power of two choices over peak-EWMA latency: draw two distinct instances at random and send to
//! the one with the lower cost `rtt_estimate × (in_flight + 1) / weight` (Mitzenmacher 2001 for
//! P2C; the cost is Finagle's and Linkerd's "peak EWMA"). Two random choices avoid the herd that
//! "always the least loaded" causes when load information is stale, and the latency term steers
//! traffic away from a slow instance before its queue builds. New instances start at
//! [`crate::DEFAULT_RTT`], decaying toward zero (see [`crate::Load`]).

use foresight_core::{rng::AtomicSplitMix, Time};

use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// See the module documentation.
#[derive(Debug)]
pub struct P2cPeakEwma {
    rng: AtomicSplitMix,
}

impl P2cPeakEwma {
    pub fn new(seed: u64) -> Self {
        P2cPeakEwma {
            rng: AtomicSplitMix::new(seed),
        }
    }
}

/// Two distinct indices in `0..n` (`n >= 2`), uniformly among pairs.
pub(crate) fn distinct_pair(rng: &AtomicSplitMix, n: usize) -> (usize, usize) {
    let a = rng.below(n);
    let mut b = rng.below(n - 1);
    if b >= a {
        b += 1;
    }
    (a, b)
}

/// The peak-EWMA cost of an endpoint at `now`.
pub fn cost(e: &Endpoint, now: Time) -> f64 {
    e.load.rtt_estimate_ns(now) * f64::from(e.load.in_flight() + 1) / f64::from(e.weight.max(1))
}

impl Balancer for P2cPeakEwma {
    fn algorithm(&self) -> Algorithm {
        Algorithm::P2cEwma
    }

    fn pick(&self, endpoints: &[Endpoint], _: &RequestInfo, now: Time) -> Option<usize> {
        match endpoints.len() {
            0 => None,
            1 => Some(0),
            n => {
                let (a, b) = distinct_pair(&self.rng, n);
                Some(if cost(&endpoints[b], now) < cost(&endpoints[a], now) {
                    b
                } else {
                    a
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::endpoints;

    #[test]
    fn pair_is_distinct_and_covers_all() {
        let rng = AtomicSplitMix::new(3);
        let mut seen = [0u32; 4];
        for _ in 0..4000 {
            let (a, b) = distinct_pair(&rng, 4);
            assert_ne!(a, b);
            seen[a] += 1;
            seen[b] += 1;
        }
        assert!(seen.iter().all(|c| *c > 1700), "{seen:?}");
    }

    #[test]
    fn avoids_a_slow_instance() {
        let eps = endpoints(&[1, 1, 1]);
        let now = Time::ZERO + Duration::from_millis(1);
        for (i, e) in eps.iter().enumerate() {
            let rtt = if i == 2 { 100 } else { 5 };
            // The first sample replaces the default only if slower, so feed a few.
            for _ in 0..50 {
                e.load
                    .observe(Duration::from_millis(rtt), now + Duration::from_secs(60));
            }
        }
        let later = now + Duration::from_secs(60);
        let b = P2cPeakEwma::new(8);
        let mut counts = [0; 3];
        for _ in 0..3000 {
            counts[b.pick(&eps, &RequestInfo::default(), later).unwrap()] += 1;
        }
        // The slow one only wins when drawn against... nothing: never, with both fast ones idle.
        assert_eq!(counts[2], 0, "{counts:?}");
    }

    #[test]
    fn in_flight_multiplies_cost() {
        let eps = endpoints(&[1, 1]);
        for _ in 0..3 {
            eps[0].load.begin();
        }
        let b = P2cPeakEwma::new(1);
        for _ in 0..20 {
            assert_eq!(b.pick(&eps, &RequestInfo::default(), Time::ZERO), Some(1));
        }
    }
}
