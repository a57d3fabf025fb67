//! Per-instance load as the balancers read it: requests in flight and a peak-EWMA latency.
//!
//! Peak-EWMA (Finagle's, later Linkerd's and tower's) keeps an exponentially weighted moving
//! average of round-trip times that jumps *up* to any slower sample at once and decays *down*
//! slowly, so one slow response makes an instance look expensive immediately. Read without new
//! samples, the estimate decays toward zero, so an instance that was avoided is retried.
//!
//! The math is two pure functions ([`peak_ewma_update`], [`peak_ewma_decay`]); [`Load`] stores
//! their state in atomics so request threads update it without a lock. Two concurrent updates
//! may lose one sample (last write wins); that costs less accuracy than a lock costs latency.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use foresight_core::Time;

/// The RTT a brand-new instance is assumed to have before its first response.
///
/// Zero would make every new instance the cheapest choice and flood it (all picks go to it until
/// its first responses come back); a large value would starve it. 30 ms is tower's choice of
/// `default_rtt` for the same reason, and it decays toward zero like any other estimate, so an
/// unobserved instance is tried within a few decay periods.
pub const DEFAULT_RTT: Duration = Duration::from_millis(30);

/// How fast the estimate forgets: the time constant of the exponential decay (tower's default).
pub const DEFAULT_DECAY: Duration = Duration::from_secs(10);

/// Parameters of the peak-EWMA estimator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EwmaParams {
    /// Time constant of the decay.
    pub decay: Duration,
    /// Estimate for an instance with no samples yet.
    pub default_rtt: Duration,
}

impl Default for EwmaParams {
    fn default() -> Self {
        EwmaParams {
            decay: DEFAULT_DECAY,
            default_rtt: DEFAULT_RTT,
        }
    }
}

/// The estimate after a sample of `rtt_ns` at `now`, given the previous estimate `prev_ns` set
/// at `prev_at`. A slower sample replaces the estimate (the "peak"); a faster one is blended in
/// with weight `1 - exp(-elapsed / decay)`.
pub fn peak_ewma_update(prev_ns: f64, prev_at: Time, rtt_ns: f64, now: Time, decay_ns: f64) -> f64 {
    if rtt_ns > prev_ns {
        return rtt_ns;
    }
    let elapsed = now.as_nanos().saturating_sub(prev_at.as_nanos()) as f64;
    let w = (-elapsed / decay_ns).exp();
    prev_ns * w + rtt_ns * (1.0 - w)
}

/// The estimate read at `now` with no new sample since `prev_at`: decays toward zero.
pub fn peak_ewma_decay(prev_ns: f64, prev_at: Time, now: Time, decay_ns: f64) -> f64 {
    let elapsed = now.as_nanos().saturating_sub(prev_at.as_nanos()) as f64;
    prev_ns * (-elapsed / decay_ns).exp()
}

/// Live load of one instance. Shared (`Arc`) between the balancer and the request path.
#[derive(Debug)]
pub struct Load {
    /// When the instance joined (for slow start).
    created: Time,
    /// A forecast of the instance's load and its capacity, both in requests/s (f64 bits; NaN =
    /// none), set by whoever forecasts, read by the forecast-aware balancer.
    predicted: AtomicU64,
    capacity_rps: AtomicU64,
    in_flight: AtomicU32,
    ewma_ns: AtomicU64,
    ewma_at: AtomicU64,
    params: EwmaParams,
    /// `params.decay` in nanoseconds, converted once (u128 → f64 is a slow software routine).
    decay_ns: f64,
}

impl Load {
    /// A tracker with no requests in flight and the default RTT as of `now`.
    pub fn new(params: EwmaParams, now: Time) -> Self {
        Load {
            created: now,
            predicted: AtomicU64::new(f64::NAN.to_bits()),
            capacity_rps: AtomicU64::new(f64::NAN.to_bits()),
            in_flight: AtomicU32::new(0),
            ewma_ns: AtomicU64::new((params.default_rtt.as_secs_f64() * 1e9).to_bits()),
            ewma_at: AtomicU64::new(now.as_nanos()),
            params,
            decay_ns: params.decay.as_secs_f64() * 1e9,
        }
    }

    /// The estimator's parameters.
    pub fn params(&self) -> EwmaParams {
        self.params
    }

    /// When the instance joined.
    pub fn created(&self) -> Time {
        self.created
    }

    /// Sets the forecast: `predicted_rps` of load over the coming interval on an instance that
    /// can serve `capacity_rps`. Values that are not finite and non-negative (or a zero
    /// capacity) clear it.
    pub fn set_forecast(&self, predicted_rps: f64, capacity_rps: f64) {
        let ok = predicted_rps.is_finite()
            && predicted_rps >= 0.0
            && capacity_rps.is_finite()
            && capacity_rps > 0.0;
        let (p, c) = if ok {
            (predicted_rps, capacity_rps)
        } else {
            (f64::NAN, f64::NAN)
        };
        self.capacity_rps.store(c.to_bits(), Ordering::Relaxed);
        self.predicted.store(p.to_bits(), Ordering::Relaxed);
    }

    /// The forecast (predicted load, capacity), both in requests/s, if one was set.
    pub fn forecast(&self) -> Option<(f64, f64)> {
        let p = f64::from_bits(self.predicted.load(Ordering::Relaxed));
        let c = f64::from_bits(self.capacity_rps.load(Ordering::Relaxed));
        (!p.is_nan() && !c.is_nan()).then_some((p, c))
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// A request was sent; returns the new in-flight count. Sequentially consistent, because a
    /// drain reads this after setting its flag and the request reads the flag after this.
    pub fn begin(&self) -> u32 {
        self.in_flight.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Sets the in-flight count outright, for an owner that counts its requests itself and is
    /// the only writer: the simulator, which knows each instance's busy workers and queue. A
    /// plain store, where [`Load::begin`] and [`Load::end`] are locked read-modify-writes.
    pub fn set_in_flight(&self, n: u32) {
        self.in_flight.store(n, Ordering::Relaxed);
    }

    /// A request finished (successfully or not).
    pub fn end(&self) {
        // Saturate rather than wrap if a caller ends twice.
        let _ = self
            .in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// Records a round-trip time observed at `now`.
    pub fn observe(&self, rtt: Duration, now: Time) {
        let prev = f64::from_bits(self.ewma_ns.load(Ordering::Relaxed));
        let at = Time::from_nanos(self.ewma_at.load(Ordering::Relaxed));
        let next = peak_ewma_update(prev, at, rtt.as_secs_f64() * 1e9, now, self.decay_ns);
        self.ewma_ns.store(next.to_bits(), Ordering::Relaxed);
        self.ewma_at
            .store(now.as_nanos().max(at.as_nanos()), Ordering::Relaxed);
    }

    /// The peak-EWMA latency estimate at `now`, in nanoseconds.
    pub fn rtt_estimate_ns(&self, now: Time) -> f64 {
        let prev = f64::from_bits(self.ewma_ns.load(Ordering::Relaxed));
        let at = Time::from_nanos(self.ewma_at.load(Ordering::Relaxed));
        peak_ewma_decay(prev, at, now, self.decay_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: f64 = 1e6;

    #[test]
    fn slower_sample_is_taken_at_once_faster_one_blended() {
        let decay = 10e9;
        let t0 = Time::ZERO;
        assert_eq!(
            peak_ewma_update(10.0 * MS, t0, 50.0 * MS, t0, decay),
            50.0 * MS
        );
        // One decay constant later a faster sample moves the estimate 63% of the way.
        let t1 = t0 + Duration::from_secs(10);
        let v = peak_ewma_update(50.0 * MS, t0, 10.0 * MS, t1, decay);
        let expected = 50.0 * MS * (-1f64).exp() + 10.0 * MS * (1.0 - (-1f64).exp());
        assert!((v - expected).abs() < 1.0, "{v} vs {expected}");
        // Same instant: a faster sample changes nothing.
        assert_eq!(
            peak_ewma_update(50.0 * MS, t0, 10.0 * MS, t0, decay),
            50.0 * MS
        );
    }

    #[test]
    fn estimate_decays_toward_zero_without_samples() {
        let l = Load::new(EwmaParams::default(), Time::ZERO);
        let start = l.rtt_estimate_ns(Time::ZERO);
        assert_eq!(start, DEFAULT_RTT.as_nanos() as f64);
        let later = l.rtt_estimate_ns(Time::ZERO + Duration::from_secs(30));
        assert!(later < start * 0.06, "{later}");
    }

    #[test]
    fn in_flight_counts_and_never_underflows() {
        let l = Load::new(EwmaParams::default(), Time::ZERO);
        assert_eq!(l.begin(), 1);
        assert_eq!(l.begin(), 2);
        l.end();
        l.end();
        l.end();
        assert_eq!(l.in_flight(), 0);
    }
}
