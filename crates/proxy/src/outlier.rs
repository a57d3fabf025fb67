//! Passive outlier ejection: an instance that fails `consecutive_errors` requests in a row (5xx
//! or connect errors) is taken out of the pool for a while, as Envoy's outlier detection does.
//!
//! The n-th ejection in a row lasts n × `base_ejection_time` (capped at `max_ejection_time`), so
//! a persistently broken instance is retried less and less often; the count falls back to zero
//! once the instance has served without being ejected for `max_ejection_time`. Never more than
//! `max_ejection_percent` of the pool is ejected at once (at least one instance always stays).
//!
//! The counting of consecutive errors is an atomic on the request path; this module holds the
//! rare, pure decision taken when the threshold is crossed.

use std::time::Duration;

use foresight_core::Time;

use crate::config::OutlierConfig;

/// Ejection history of one instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EjectionState {
    /// Ejections in a row (reset after a quiet period).
    pub times_ejected: u32,
    /// When the current or last ejection ends.
    pub ejected_until: Option<Time>,
}

impl EjectionState {
    /// Whether the instance is ejected at `now`.
    pub fn is_ejected(&self, now: Time) -> bool {
        self.ejected_until.is_some_and(|t| now < t)
    }

    /// Decides on ejection after the error threshold was crossed at `now`. `ejected_now` and
    /// `pool_size` are the pool's current counts. Returns the end of the new ejection, if any.
    pub fn on_threshold(
        &mut self,
        config: &OutlierConfig,
        now: Time,
        ejected_now: usize,
        pool_size: usize,
    ) -> Option<Time> {
        if self.is_ejected(now) {
            return None;
        }
        if !may_eject(config.max_ejection_percent, ejected_now, pool_size) {
            return None;
        }
        if let Some(until) = self.ejected_until {
            if now.saturating_since(until) > config.max_ejection_time {
                self.times_ejected = 0;
            }
        }
        self.times_ejected = self.times_ejected.saturating_add(1);
        let length = config
            .base_ejection_time
            .saturating_mul(self.times_ejected)
            .min(config.max_ejection_time);
        let until = now + length;
        self.ejected_until = Some(until);
        Some(until)
    }

    /// Time left in the current ejection.
    pub fn remaining(&self, now: Time) -> Duration {
        self.ejected_until
            .map_or(Duration::ZERO, |t| t.saturating_since(now))
    }
}

/// Whether one more of `pool_size` instances may be ejected when `ejected_now` already are.
pub fn may_eject(max_percent: u32, ejected_now: usize, pool_size: usize) -> bool {
    if pool_size <= 1 {
        return false;
    }
    // Keep at least one instance, and stay within the share.
    let after = ejected_now + 1;
    after < pool_size && after * 100 <= pool_size * max_percent as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OutlierConfig {
        OutlierConfig {
            consecutive_errors: 5,
            base_ejection_time: Duration::from_secs(5),
            max_ejection_time: Duration::from_secs(12),
            max_ejection_percent: 50,
        }
    }

    #[test]
    fn ejections_grow_and_are_capped() {
        let c = config();
        let mut s = EjectionState::default();
        let t0 = Time::ZERO;
        assert_eq!(
            s.on_threshold(&c, t0, 0, 4),
            Some(t0 + Duration::from_secs(5))
        );
        assert!(s.is_ejected(t0 + Duration::from_secs(4)));
        assert!(!s.is_ejected(t0 + Duration::from_secs(5)));
        // Already ejected: no new decision.
        assert_eq!(s.on_threshold(&c, t0 + Duration::from_secs(1), 0, 4), None);
        let t1 = t0 + Duration::from_secs(6);
        assert_eq!(
            s.on_threshold(&c, t1, 0, 4),
            Some(t1 + Duration::from_secs(10))
        );
        let t2 = t1 + Duration::from_secs(11);
        assert_eq!(
            s.on_threshold(&c, t2, 0, 4),
            Some(t2 + Duration::from_secs(12)),
            "capped"
        );
    }

    #[test]
    fn multiplier_resets_after_a_quiet_period() {
        let c = config();
        let mut s = EjectionState::default();
        s.on_threshold(&c, Time::ZERO, 0, 4);
        let much_later = Time::ZERO + Duration::from_secs(100);
        assert_eq!(
            s.on_threshold(&c, much_later, 0, 4),
            Some(much_later + Duration::from_secs(5))
        );
    }

    #[test]
    fn never_ejects_beyond_the_share_or_the_last_instance() {
        assert!(may_eject(50, 0, 4));
        assert!(may_eject(50, 1, 4));
        assert!(!may_eject(50, 2, 4));
        assert!(!may_eject(100, 1, 2), "the last instance stays");
        assert!(!may_eject(100, 0, 1));
        assert!(!may_eject(0, 0, 10));
        let c = config();
        let mut s = EjectionState::default();
        assert_eq!(s.on_threshold(&c, Time::ZERO, 2, 4), None);
    }
}
