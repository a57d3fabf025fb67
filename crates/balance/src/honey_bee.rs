//! Honey Bee Foraging (Nakrani and Tovey, "On honey bees and dynamic server allocation in
//! Internet hosting centers", Adaptive Behavior 2004; as a load balancer: Dhinesh Babu and
//! Venkata Krishna, "Honey bee behavior inspired load balancing of tasks in cloud computing
//! environments", Applied Soft Computing 2013): servers are flower patches whose
//! *profitability* foragers advertise with a waggle dance; a forager follows a dance with
//! probability proportional to the patch's profitability, and a few scouts explore at random.
//!
//! Online adaptation: each instance's profitability is its capacity share per unit of current
//! work, `weight / ((in_flight + 1) × rtt_estimate)`; a request is a forager that follows an
//! instance with probability proportional to its profitability (roulette wheel), or, with
//! probability [`SCOUT_SHARE`], scouts a uniformly random instance, so that an instance that
//! looked bad is rediscovered when it recovers. Seeded.

use foresight_core::{rng::AtomicSplitMix, Time};

use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// Share of requests that scout a random instance.
pub const SCOUT_SHARE: f64 = 0.05;

/// Smallest RTT used in the profitability (keeps an instance that was idle for long from
/// becoming infinitely attractive).
const MIN_RTT_NS: f64 = 100_000.0;

/// See the module documentation.
#[derive(Debug)]
pub struct HoneyBee {
    rng: AtomicSplitMix,
}

impl HoneyBee {
    pub fn new(seed: u64) -> Self {
        HoneyBee {
            rng: AtomicSplitMix::new(seed),
        }
    }
}

fn profitability(e: &Endpoint, now: Time) -> f64 {
    f64::from(e.weight)
        / (f64::from(e.load.in_flight() + 1) * e.load.rtt_estimate_ns(now).max(MIN_RTT_NS))
}

impl Balancer for HoneyBee {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HoneyBee
    }

    fn pick(&self, endpoints: &[Endpoint], _: &RequestInfo, now: Time) -> Option<usize> {
        let n = endpoints.len();
        if n == 0 {
            return None;
        }
        if self.rng.unit_f64() < SCOUT_SHARE {
            return Some(self.rng.below(n));
        }
        Some(crate::roulette(&self.rng, endpoints, |e| {
            profitability(e, now)
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::endpoints;

    #[test]
    fn follows_profitable_patches_and_still_scouts() {
        let eps = endpoints(&[1, 1]);
        // Samples a minute in: the 30 ms default has decayed away.
        let t = Time::ZERO + Duration::from_secs(60);
        eps[0].load.observe(Duration::from_millis(10), t);
        eps[1].load.observe(Duration::from_millis(90), t);
        // Same in-flight: profitability 1/10 vs 1/90 → 90% vs 10%, plus 5% scouting split evenly.
        let b = HoneyBee::new(4);
        let mut slow = 0;
        for _ in 0..40_000 {
            if b.pick(&eps, &RequestInfo::default(), t) == Some(1) {
                slow += 1;
            }
        }
        let expected = 40_000.0 * (0.95 * 0.1 + 0.05 * 0.5);
        assert!(
            (slow as f64 - expected).abs() < 600.0,
            "{slow} vs {expected}"
        );
    }
}
