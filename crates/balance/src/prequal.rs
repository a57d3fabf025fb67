//! Prequal (Wydrowski, Kleinberg, Rumble and Archer, "Load is not what you should balance:
//! Introducing Prequal", NSDI 2024): probe a few random replicas for their requests in flight
//! (RIF) and latency; a replica is *hot* when its RIF is above a quantile `Q_RIF` of the RIF
//! distribution; choose the *cold* probed replica with the lowest latency, or, if all probed
//! replicas are hot, the one with the lowest RIF. Balancing latency among the cold replicas,
//! and load only among hot ones, is what lets it beat least-loaded and P2C on tail latency.
//!
//! Online adaptation: Google's Prequal probes replicas asynchronously because the client does
//! not see their load; a proxy in front of the instances already tracks each one's RIF and
//! latency, so a "probe" is a read of [`crate::Load`]: [`PROBES`] distinct random instances per
//! request, hot meaning RIF above the `Q_RIF` = [`Q_RIF`] quantile of the pool's current RIF.
//! Prequal's latency is the replica's expected latency *at its current RIF* (it rises with
//! load immediately); here that is the peak-EWMA latency × (RIF + 1). Ranking cold replicas by
//! the bare EWMA instead herds every request onto whichever replica last looked fast, until
//! its queue shows up in completed requests (measured: p50 276 ms vs 14 ms on an even pool).
//! Seeded.

use foresight_core::{rng::AtomicSplitMix, Time};

use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// Instances probed per request (the paper's default probe rate makes about 3 available).
pub const PROBES: usize = 3;
/// The hot/cold quantile of requests in flight (the paper's default `Q_RIF` is 0.84).
pub const Q_RIF: f64 = 0.84;

/// See the module documentation.
#[derive(Debug)]
pub struct Prequal {
    rng: AtomicSplitMix,
}

impl Prequal {
    pub fn new(seed: u64) -> Self {
        Prequal {
            rng: AtomicSplitMix::new(seed),
        }
    }
}

/// The `q` quantile of the pool's requests in flight.
fn rif_quantile(endpoints: &[Endpoint], q: f64) -> u32 {
    let mut rif: Vec<u32> = endpoints.iter().map(|e| e.load.in_flight()).collect();
    let k = ((rif.len() - 1) as f64 * q).round() as usize;
    *rif.select_nth_unstable(k).1
}

/// Expected latency at the instance's current requests in flight.
fn latency_at_rif(e: &Endpoint, now: Time) -> f64 {
    e.load.rtt_estimate_ns(now) * f64::from(e.load.in_flight() + 1)
}

impl Balancer for Prequal {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Prequal
    }

    fn pick(&self, endpoints: &[Endpoint], _: &RequestInfo, now: Time) -> Option<usize> {
        let n = endpoints.len();
        if n <= 1 {
            return (n == 1).then_some(0);
        }
        let threshold = rif_quantile(endpoints, Q_RIF);
        let mut probed = [usize::MAX; PROBES];
        let d = PROBES.min(n);
        for k in 0..d {
            // Distinct draws: retry on a repeat (d is tiny next to n, or n is tiny).
            let mut i = self.rng.below(n);
            while probed[..k].contains(&i) {
                i = self.rng.below(n);
            }
            probed[k] = i;
        }
        let probed = &probed[..d];
        let cold = probed
            .iter()
            .copied()
            .filter(|i| endpoints[*i].load.in_flight() <= threshold)
            .min_by(|a, b| {
                latency_at_rif(&endpoints[*a], now).total_cmp(&latency_at_rif(&endpoints[*b], now))
            });
        cold.or_else(|| {
            probed
                .iter()
                .copied()
                .min_by_key(|i| endpoints[*i].load.in_flight())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::endpoints;

    #[test]
    fn among_cold_instances_the_fastest_wins_and_hot_ones_are_avoided() {
        let eps = endpoints(&[1, 1, 1, 1, 1, 1, 1]);
        let t = Time::ZERO + Duration::from_secs(60);
        for (i, e) in eps.iter().enumerate() {
            e.load.observe(Duration::from_millis(10 + 10 * i as u64), t);
        }
        // Instance 0 is the fastest but hot (RIF far above the pool's 84th percentile).
        for _ in 0..20 {
            eps[0].load.begin();
        }
        let b = Prequal::new(5);
        let mut counts = [0; 7];
        for _ in 0..7000 {
            counts[b.pick(&eps, &RequestInfo::default(), t).unwrap()] += 1;
        }
        assert_eq!(counts[0], 0, "hot instance chosen: {counts:?}");
        // Instance 1 is the fastest cold one: it wins whenever probed.
        assert!(counts[1] > counts[2] && counts[2] > counts[6], "{counts:?}");
    }

    #[test]
    fn when_all_probed_are_hot_the_least_loaded_wins() {
        let eps = endpoints(&[1, 1]);
        for _ in 0..5 {
            eps[0].load.begin();
        }
        for _ in 0..2 {
            eps[1].load.begin();
        }
        // Threshold = 84th percentile of {5, 2} = 5: instance 1 is cold → chosen.
        let b = Prequal::new(1);
        assert_eq!(b.pick(&eps, &RequestInfo::default(), Time::ZERO), Some(1));
    }
}
