//! Admission: what a service turns away before it picks an instance.
//!
//! - A rate limit (GCRA, the `governor` crate), keyed by the client's IP address or a header's
//!   value (requests without the header: by IP): over it, `429 Too Many Requests` with
//!   `Retry-After`.
//! - A concurrency limit (Envoy's circuit breaker `max_requests`): with that many requests of
//!   the service at its instances, another is answered `503` at once, before the instances'
//!   queues overflow. It counts as refused, the control loop's overload signal.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use http::{HeaderMap, HeaderName};

/// What a rate limit counts requests by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitKey {
    /// The client's IP address.
    ClientIp,
    /// A header's value (the client's IP address when the header is absent).
    Header(HeaderName),
}

/// A service's validated `rate_limit`.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimitConfig {
    /// Requests per second per key.
    pub rate: f64,
    /// Requests a key may send at once after a quiet spell.
    pub burst: u32,
    /// What requests are counted by.
    pub key: LimitKey,
}

/// What the limiter remembers per client: fixed-size, so that clients sending long distinct
/// header values (up to the 8 KB a header may have) cannot grow it by more than a few dozen
/// bytes each. A value is kept as its keyed hash (a per-process random key: nobody can aim
/// two values at one bucket).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    Value(u64),
}

type Limiter = RateLimiter<
    Key,
    governor::state::keyed::DefaultKeyedStateStore<Key>,
    DefaultClock,
    governor::middleware::NoOpMiddleware<<DefaultClock as Clock>::Instant>,
>;

/// Why a request was turned away.
pub enum Refusal {
    /// Over the rate limit; try again after this long.
    RateLimited(Duration),
    /// At the concurrency limit.
    Busy,
}

/// A service's rate and concurrency limits.
pub struct Admission {
    limiter: Option<(Limiter, LimitKey)>,
    values: std::hash::RandomState,
    clock: DefaultClock,
    max_requests: Option<u64>,
    /// Requests of the service at its instances (counted only with `max_requests`).
    pub in_flight: Option<Arc<AtomicU64>>,
}

impl Admission {
    /// Limits as configured (either may be absent).
    pub fn new(rate: Option<&RateLimitConfig>, max_requests: Option<u32>) -> Admission {
        let clock = DefaultClock::default();
        let limiter = rate.map(|r| {
            let burst = NonZeroU32::new(r.burst.max(1)).unwrap_or(NonZeroU32::MIN);
            let period = Duration::from_secs_f64(1.0 / r.rate);
            let quota = Quota::with_period(period)
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
                .allow_burst(burst);
            (
                RateLimiter::dashmap_with_clock(quota, clock.clone()),
                r.key.clone(),
            )
        });
        Admission {
            limiter,
            values: std::hash::RandomState::new(),
            clock,
            max_requests: max_requests.map(u64::from),
            in_flight: max_requests.map(|_| Arc::new(AtomicU64::new(0))),
        }
    }

    /// Whether it limits anything.
    pub fn is_active(&self) -> bool {
        self.limiter.is_some() || self.max_requests.is_some()
    }

    /// Admits the request, or says why not.
    pub fn check(&self, client: IpAddr, headers: &HeaderMap) -> Result<(), Refusal> {
        if let (Some(max), Some(n)) = (self.max_requests, &self.in_flight) {
            if n.load(Ordering::Relaxed) >= max {
                return Err(Refusal::Busy);
            }
        }
        if let Some((limiter, on)) = &self.limiter {
            let key = match on {
                LimitKey::ClientIp => Key::Ip(client),
                LimitKey::Header(name) => headers.get(name).map_or(Key::Ip(client), |v| {
                    Key::Value(std::hash::BuildHasher::hash_one(&self.values, v.as_bytes()))
                }),
            };
            if let Err(not_until) = limiter.check_key(&key) {
                return Err(Refusal::RateLimited(
                    not_until.wait_time_from(self.clock.now()),
                ));
            }
        }
        Ok(())
    }

    /// Forgets keys that are back to a full burst (run now and then: one entry per client
    /// otherwise stays forever).
    pub fn forget_idle(&self) {
        if let Some((limiter, _)) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn long_distinct_values_cost_a_fixed_size_key_each() {
        // 8 KB values (the most a header may carry) are kept as 8-byte hashes, not copies.
        fn copy<T: Copy>() {}
        copy::<Key>();
        assert!(std::mem::size_of::<Key>() <= 24);
        let a = Admission::new(
            Some(&RateLimitConfig {
                rate: 1.0,
                burst: 1,
                key: LimitKey::Header(HeaderName::from_static("x-user")),
            }),
            None,
        );
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let long = "x".repeat(8 << 10);
        for i in 0..2_000 {
            let mut h = HeaderMap::new();
            let v = format!("{i}{long}");
            h.insert("x-user", HeaderValue::from_str(&v).unwrap());
            assert!(a.check(ip, &h).is_ok(), "value {i} has its own burst");
            assert!(a.check(ip, &h).is_err(), "and its second request waits");
        }
    }

    #[test]
    fn a_burst_then_429s_per_key() {
        let a = Admission::new(
            Some(&RateLimitConfig {
                rate: 1.0,
                burst: 3,
                key: LimitKey::Header(HeaderName::from_static("x-api-key")),
            }),
            None,
        );
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("alice"));
        let ok = (0..5).filter(|_| a.check(ip, &h).is_ok()).count();
        assert_eq!(ok, 3, "the burst");
        match a.check(ip, &h) {
            Err(Refusal::RateLimited(wait)) => {
                assert!(
                    wait > Duration::ZERO && wait <= Duration::from_secs(1),
                    "{wait:?}"
                )
            }
            _ => panic!("over the limit"),
        }
        h.insert("x-api-key", HeaderValue::from_static("bob"));
        assert!(a.check(ip, &h).is_ok(), "another key has its own burst");
        a.forget_idle();
    }

    #[test]
    fn the_concurrency_limit_sheds_at_max() {
        let a = Admission::new(None, Some(2));
        let n = a.in_flight.clone().unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        n.store(1, Ordering::Relaxed);
        assert!(a.check(ip, &HeaderMap::new()).is_ok());
        n.store(2, Ordering::Relaxed);
        assert!(matches!(a.check(ip, &HeaderMap::new()), Err(Refusal::Busy)));
    }
}
