//! Exponential Smooth Weighted Least-Connection (ESWLC; Ren, Lin and Zou, "A dynamic load
//! balancing strategy for cloud computing platform based on exponential smoothing forecast",
//! IEEE CCIS 2011): weighted least-connection where each node's load is not the instantaneous
//! count but an exponential-smoothing forecast of it, so short spikes do not swing placement.
//!
//! Online adaptation: each instance's forecast is a continuous-time exponential smoothing of its
//! requests in flight, `S ← S·e^(−Δt/τ) + n·(1 − e^(−Δt/τ))` with τ = [`SMOOTHING`], updated
//! whenever it is read; the request goes to the smallest `(S + 1) / weight` (ties rotate). The
//! smoothed state lives in the balancer and starts afresh when the pool changes.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use foresight_core::{rng::mix64, Time};

use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// Time constant of the smoothing.
pub const SMOOTHING: Duration = Duration::from_millis(500);

/// See the module documentation.
#[derive(Debug)]
pub struct Eswlc {
    start: AtomicUsize,
    /// Per endpoint: smoothed in-flight (f64 bits) and when it was last updated (ns).
    smoothed: Vec<(AtomicU64, AtomicU64)>,
}

impl Eswlc {
    pub fn new(endpoints: &[Endpoint], seed: u64) -> Self {
        Eswlc {
            start: AtomicUsize::new(mix64(seed) as usize),
            smoothed: endpoints
                .iter()
                .map(|_| (AtomicU64::new(0f64.to_bits()), AtomicU64::new(u64::MAX)))
                .collect(),
        }
    }

    /// The forecast for endpoint `i` at `now`, updated with its current in-flight count.
    fn forecast(&self, i: usize, current: u32, now: Time) -> f64 {
        let (value, stamp) = &self.smoothed[i];
        let prev_at = stamp.load(Ordering::Relaxed);
        let cur = f64::from(current);
        let next = if prev_at == u64::MAX {
            cur
        } else {
            let prev = f64::from_bits(value.load(Ordering::Relaxed));
            let dt = now.as_nanos().saturating_sub(prev_at) as f64;
            let w = (-dt / (SMOOTHING.as_secs_f64() * 1e9)).exp();
            prev * w + cur * (1.0 - w)
        };
        value.store(next.to_bits(), Ordering::Relaxed);
        stamp.store(now.as_nanos(), Ordering::Relaxed);
        next
    }
}

impl Balancer for Eswlc {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Eswlc
    }

    fn pick(&self, endpoints: &[Endpoint], _: &RequestInfo, now: Time) -> Option<usize> {
        let n = endpoints.len().min(self.smoothed.len());
        if n == 0 {
            return None;
        }
        let start = self.start.fetch_add(1, Ordering::Relaxed) % n;
        let cost = |i: usize| {
            (self.forecast(i, endpoints[i].load.in_flight(), now) + 1.0)
                / f64::from(endpoints[i].weight)
        };
        let mut best = start;
        let mut best_cost = cost(start);
        for i in (start + 1..n).chain(0..start) {
            let c = cost(i);
            if c < best_cost {
                best = i;
                best_cost = c;
            }
        }
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::endpoints;

    #[test]
    fn a_momentary_spike_does_not_dominate_the_forecast() {
        let eps = endpoints(&[1, 1]);
        let b = Eswlc::new(&eps, 0);
        let t0 = Time::ZERO;
        // Instance 0 has carried 4 requests for a long time, instance 1 just spiked to 6.
        for _ in 0..4 {
            eps[0].load.begin();
        }
        b.forecast(0, 4, t0);
        b.forecast(1, 0, t0);
        let t1 = t0 + Duration::from_millis(5000);
        b.forecast(0, 4, t1);
        b.forecast(1, 0, t1);
        for _ in 0..6 {
            eps[1].load.begin();
        }
        let t2 = t1 + Duration::from_millis(50);
        // Forecast for 1 is ~0.6 (6 × (1 − e^−0.1)), for 0 it is 4: 1 still wins.
        assert_eq!(b.pick(&eps, &RequestInfo::default(), t2), Some(1));
        // Once the spike persists, the forecast catches up and 0 wins.
        let t3 = t2 + Duration::from_secs(5);
        assert_eq!(b.pick(&eps, &RequestInfo::default(), t3), Some(0));
    }

    #[test]
    fn respects_weights_at_steady_load() {
        let eps = endpoints(&[3, 1]);
        for _ in 0..3 {
            eps[0].load.begin();
        }
        let b = Eswlc::new(&eps, 0);
        // (3+1)/3 = 1.33 vs (0+1)/1 = 1: the light one is cheaper.
        assert_eq!(b.pick(&eps, &RequestInfo::default(), Time::ZERO), Some(1));
    }
}
