//! A retry budget, as Linkerd and Finagle keep one: over a sliding window, retries may be at
//! most `ratio` of the requests plus `min_per_second` per second of the window, so that retries
//! cannot multiply the load on a service that is already failing (a retry storm).
//!
//! Lock-free: one-second buckets of request and retry counts in a ring, reset by the first
//! caller of a new second. Time is given (`now`), as everywhere the proxy decides.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use foresight_core::Time;

struct Bucket {
    /// The second this bucket counts, plus one (0: never used).
    second: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

/// The budget of one service.
pub struct RetryBudget {
    ratio: f64,
    min_per_second: f64,
    buckets: Box<[Bucket]>,
}

impl RetryBudget {
    /// Retries within `ratio` × requests + `min_per_second` × the window's seconds, over
    /// `window` (whole seconds, at least one).
    pub fn new(ratio: f64, min_per_second: f64, window: Duration) -> RetryBudget {
        let n = window.as_secs().max(1) as usize;
        RetryBudget {
            ratio,
            min_per_second,
            buckets: (0..n)
                .map(|_| Bucket {
                    second: AtomicU64::new(0),
                    requests: AtomicU64::new(0),
                    retries: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    fn stamp(now: Time) -> u64 {
        (now.as_secs_f64() as u64) + 1
    }

    /// The bucket of `stamp`, emptied if it held an older second.
    fn bucket(&self, stamp: u64) -> &Bucket {
        let b = &self.buckets[(stamp % self.buckets.len() as u64) as usize];
        let held = b.second.load(Ordering::Acquire);
        if held != stamp
            && b.second
                .compare_exchange(held, stamp, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            b.requests.store(0, Ordering::Relaxed);
            b.retries.store(0, Ordering::Relaxed);
        }
        b
    }

    /// Counts a request.
    pub fn deposit(&self, now: Time) {
        self.bucket(Self::stamp(now))
            .requests
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one retry from the budget if it has one left.
    pub fn try_withdraw(&self, now: Time) -> bool {
        let stamp = Self::stamp(now);
        let n = self.buckets.len() as u64;
        let (mut requests, mut retries) = (0u64, 0u64);
        for b in self.buckets.iter() {
            let s = b.second.load(Ordering::Acquire);
            if s <= stamp && s + n > stamp {
                requests += b.requests.load(Ordering::Relaxed);
                retries += b.retries.load(Ordering::Relaxed);
            }
        }
        let allowed = self.ratio * requests as f64 + self.min_per_second * n as f64;
        if (retries as f64) < allowed {
            self.bucket(stamp).retries.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> Time {
        Time::from_secs_f64(secs)
    }

    #[test]
    fn a_ratio_of_requests_plus_a_floor_over_the_window() {
        let b = RetryBudget::new(0.2, 1.0, Duration::from_secs(10));
        // The floor: 1 per second over 10 s = 10 retries with no requests.
        let taken = (0..20).filter(|_| b.try_withdraw(at(0.5))).count();
        assert_eq!(taken, 10);
        // 100 requests add 20 more.
        for _ in 0..100 {
            b.deposit(at(1.0));
        }
        let taken = (0..50).filter(|_| b.try_withdraw(at(1.5))).count();
        assert_eq!(taken, 20);
        // Ten seconds on, the window has forgotten them: the floor again.
        let taken = (0..50).filter(|_| b.try_withdraw(at(11.5))).count();
        assert_eq!(taken, 10);
    }

    #[test]
    fn no_floor_and_no_requests_is_no_retries() {
        let b = RetryBudget::new(0.2, 0.0, Duration::from_secs(10));
        assert!(!b.try_withdraw(at(3.0)));
        for _ in 0..10 {
            b.deposit(at(3.0));
        }
        assert!(b.try_withdraw(at(3.0)) && b.try_withdraw(at(3.0)));
        assert!(!b.try_withdraw(at(3.0)), "20% of 10");
    }
}
