//! Active health checking: a pure rise/fall state machine, and the task that feeds it.
//!
//! An instance changes state only after `rise` consecutive successes or `fall` consecutive
//! failures (HAProxy's `rise`/`fall`), so one lost probe does not flap the pool.

use std::sync::{Arc, Weak};

use http::header::{HeaderMap, HeaderValue, USER_AGENT};
use http::Method;

use crate::config::HealthCheckConfig;
use crate::h1::{self, Outgoing};
use crate::pool::{Backend, Pool};

/// Rise/fall bookkeeping for one instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthState {
    healthy: bool,
    streak: u32,
}

impl HealthState {
    /// Starts healthy or not.
    pub fn new(healthy: bool) -> Self {
        HealthState { healthy, streak: 0 }
    }

    /// Whether the instance is currently considered healthy.
    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// Records one probe; returns the new state when it changed.
    pub fn record(&mut self, ok: bool, rise: u32, fall: u32) -> Option<bool> {
        if ok == self.healthy {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if ok { rise } else { fall };
        if self.streak >= needed {
            self.healthy = ok;
            self.streak = 0;
            Some(ok)
        } else {
            None
        }
    }
}

/// Probes one instance every `interval` until it leaves the pool.
pub(crate) async fn check_loop(pool: Arc<Pool>, backend: Weak<Backend>, config: HealthCheckConfig) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(b) = backend.upgrade() else { return };
        if b.is_removed() {
            return;
        }
        let ok = probe(&b, &config).await;
        pool.record_health(&b, ok);
    }
}

async fn probe(backend: &Backend, config: &HealthCheckConfig) -> bool {
    let fut = async {
        let now = std::time::Instant::now();
        let conn = backend.upstream.get(now).await.ok()?;
        let mut headers = HeaderMap::with_capacity(1);
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static("foresight-health-check"),
        );
        let req = Outgoing {
            method: &Method::GET,
            target: &config.path,
            headers: &headers,
            default_host: backend.authority.as_str(),
        };
        // Bounded by the probe's own timeout below.
        let resp = conn.send(req, None, crate::deadline::NONE).await.ok()?;
        let status = resp.status();
        // Read the (small) body so the connection can be reused.
        let mut body = resp.into_body();
        if h1::drain(&mut body).await {
            if let Some(conn) = body.into_reusable() {
                backend.upstream.put(conn, std::time::Instant::now());
            }
        }
        Some(status)
    };
    matches!(
        tokio::time::timeout(config.timeout, fut).await,
        Ok(Some(s)) if s.is_success()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_rise_successes_and_fall_failures() {
        let mut h = HealthState::new(true);
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(false, 2, 3), Some(false));
        assert!(!h.healthy());
        assert_eq!(h.record(true, 2, 3), None);
        assert_eq!(
            h.record(false, 2, 3),
            None,
            "a failure resets the rise streak"
        );
        assert_eq!(h.record(true, 2, 3), None);
        assert_eq!(h.record(true, 2, 3), Some(true));
    }

    #[test]
    fn a_single_blip_does_not_flap() {
        let mut h = HealthState::new(true);
        for _ in 0..10 {
            assert_eq!(h.record(false, 2, 3), None);
            assert_eq!(h.record(true, 2, 3), None);
        }
        assert!(h.healthy());
    }
}
