//! A point in time as nanoseconds since an epoch the caller chooses.
//!
//! `std::time::Instant` cannot be built from a number, so a simulator cannot drive code that takes
//! an `Instant`. `Time` can: the proxy maps its monotonic clock onto it (epoch = process start),
//! the simulator counts virtual nanoseconds from zero.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// Nanoseconds since an epoch chosen by whoever owns the clock. Monotonic by contract.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    /// The epoch itself.
    pub const ZERO: Time = Time(0);

    /// A time `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Time {
        Time(nanos)
    }

    /// A time `secs` seconds after the epoch (negative or NaN input gives the epoch).
    pub fn from_secs_f64(secs: f64) -> Time {
        if secs.is_nan() || secs <= 0.0 {
            return Time::ZERO;
        }
        Time((secs * 1e9).min(u64::MAX as f64) as u64)
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Seconds since the epoch.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// How long after `earlier` this is; zero if `earlier` is later (clocks never run backwards,
    /// but two readers may race).
    pub fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, rhs: Duration) -> Time {
        Time(
            self.0
                .saturating_add(rhs.as_nanos().min(u64::MAX as u128) as u64),
        )
    }
}

impl Sub<Duration> for Time {
    type Output = Time;
    fn sub(self, rhs: Duration) -> Time {
        Time(
            self.0
                .saturating_sub(rhs.as_nanos().min(u64::MAX as u128) as u64),
        )
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}s", self.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        let t = Time::from_nanos(5);
        assert_eq!(t - Duration::from_nanos(10), Time::ZERO);
        assert_eq!(
            Time::from_nanos(u64::MAX) + Duration::from_secs(1),
            Time::from_nanos(u64::MAX)
        );
        assert_eq!(
            Time::from_nanos(3).saturating_since(Time::from_nanos(9)),
            Duration::ZERO
        );
        assert_eq!(
            Time::from_nanos(9).saturating_since(Time::from_nanos(3)),
            Duration::from_nanos(6)
        );
    }

    #[test]
    fn seconds_round_trip() {
        assert_eq!(Time::from_secs_f64(1.5).as_nanos(), 1_500_000_000);
        assert_eq!(Time::from_secs_f64(f64::NAN), Time::ZERO);
        assert_eq!(Time::from_secs_f64(-3.0), Time::ZERO);
        assert!((Time::from_nanos(2_500_000_000).as_secs_f64() - 2.5).abs() < 1e-12);
    }
}
