//! Slow start for new instances, around any algorithm (Envoy's slow start mode, envoyproxy.io
//! docs "Slow start mode"): during `window` after an instance joins, it gets only a fraction of
//! its normal share,
//!
//! `factor = max(min_weight_percent / 100, (age / window) ^ (1 / aggression))`,
//!
//! so a cold instance (empty caches, JIT not warm, connection pools cold) is not flooded the
//! moment it passes its health checks.
//!
//! Envoy scales the weights of its weighted round-robin and least-request schedulers. To work
//! around *any* algorithm without rewriting weights on every pick, this wrapper accepts a pick of
//! a young instance with probability `factor` and otherwise asks the algorithm again (at most
//! [`MAX_TRIES`] times), which gives a young instance `factor` of the share the algorithm would
//! give it. Seeded, allocation-free, and a no-op once every instance is older than `window`.

use std::time::Duration;

use foresight_core::{rng::AtomicSplitMix, Time};

use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// Picks asked of the inner algorithm before its last answer is taken as it is.
pub const MAX_TRIES: usize = 8;

/// Slow-start parameters (Envoy's names).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlowStartConfig {
    /// How long after joining an instance ramps up.
    pub window: Duration,
    /// Shape of the ramp: 1 is linear, larger is faster at first.
    pub aggression: f64,
    /// Floor of the share during the window, in percent.
    pub min_weight_percent: f64,
}

impl SlowStartConfig {
    /// The fraction of its normal share an instance that joined at `created` gets at `now`.
    pub fn factor(&self, created: Time, now: Time) -> f64 {
        let age = now.saturating_since(created);
        if age >= self.window || self.window.is_zero() {
            return 1.0;
        }
        let t = age.as_secs_f64() / self.window.as_secs_f64();
        t.powf(1.0 / self.aggression.max(1e-3))
            .max(self.min_weight_percent / 100.0)
            .min(1.0)
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct SlowStart {
    inner: Box<dyn Balancer>,
    config: SlowStartConfig,
    rng: AtomicSplitMix,
}

impl SlowStart {
    pub fn new(inner: Box<dyn Balancer>, config: SlowStartConfig, seed: u64) -> Self {
        SlowStart {
            inner,
            config,
            rng: AtomicSplitMix::new(foresight_core::rng::mix64(seed ^ 0x5105)),
        }
    }
}

impl Balancer for SlowStart {
    fn algorithm(&self) -> Algorithm {
        self.inner.algorithm()
    }

    fn uses_latency(&self) -> bool {
        self.inner.uses_latency()
    }

    fn pick(&self, endpoints: &[Endpoint], request: &RequestInfo, now: Time) -> Option<usize> {
        let mut last = None;
        for _ in 0..MAX_TRIES {
            let i = self.inner.pick(endpoints, request, now)?;
            let f = self.config.factor(endpoints[i].load.created(), now);
            if f >= 1.0 || self.rng.unit_f64() < f {
                return Some(i);
            }
            last = Some(i);
        }
        last
    }

    /// Batches are assigned by the inner heuristic as they are: its completion-time model
    /// already sees a young instance's (higher) observed latency.
    fn assign_batch(
        &self,
        endpoints: &[Endpoint],
        batch: &[RequestInfo],
        now: Time,
    ) -> Option<Vec<usize>> {
        self.inner.assign_batch(endpoints, batch, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{build, BalancerConfig, EwmaParams};

    fn config() -> SlowStartConfig {
        SlowStartConfig {
            window: Duration::from_secs(60),
            aggression: 1.0,
            min_weight_percent: 10.0,
        }
    }

    #[test]
    fn batch_heuristics_keep_their_batches_under_slow_start() {
        let eps: Vec<Endpoint> = (0..3)
            .map(|i| Endpoint::new(i, 1, EwmaParams::default(), Time::ZERO))
            .collect();
        let mut cfg = BalancerConfig::new(Algorithm::MinMin, 1);
        cfg.slow_start = Some(config());
        let b = build(&cfg, &eps);
        let batch = vec![RequestInfo::default(); 6];
        assert_eq!(
            b.assign_batch(&eps, &batch, Time::ZERO).map(|v| v.len()),
            Some(6)
        );
    }

    #[test]
    fn factor_follows_envoys_formula() {
        let c = config();
        let t0 = Time::ZERO;
        assert_eq!(c.factor(t0, t0), 0.1, "floor");
        assert!((c.factor(t0, t0 + Duration::from_secs(30)) - 0.5).abs() < 1e-9);
        assert_eq!(c.factor(t0, t0 + Duration::from_secs(61)), 1.0);
        let fast = SlowStartConfig {
            aggression: 2.0,
            ..c
        };
        assert!((fast.factor(t0, t0 + Duration::from_secs(15)) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_new_instance_gets_a_reduced_share_around_round_robin() {
        let now = Time::ZERO + Duration::from_secs(600);
        let young_since = now - Duration::from_secs(15); // factor 0.25
        let eps: Vec<Endpoint> = (0..4)
            .map(|i| {
                let created = if i == 3 { young_since } else { Time::ZERO };
                Endpoint::new(i, 1, EwmaParams::default(), created)
            })
            .collect();
        let mut cfg = BalancerConfig::new(Algorithm::RoundRobin, 3);
        cfg.slow_start = Some(config());
        let b = build(&cfg, &eps);
        let mut counts = [0usize; 4];
        for _ in 0..40_000 {
            counts[b.pick(&eps, &RequestInfo::default(), now).unwrap()] += 1;
        }
        // Normal share 1/4; young one gets about a quarter of it relative to the others.
        let ratio = counts[3] as f64 / counts[0] as f64;
        assert!((0.2..0.3).contains(&ratio), "{counts:?}");
        // Past the window it is an ordinary instance again.
        let later = young_since + Duration::from_secs(61);
        let mut counts = [0usize; 4];
        for _ in 0..400 {
            counts[b.pick(&eps, &RequestInfo::default(), later).unwrap()] += 1;
        }
        assert_eq!(counts, [100; 4]);
    }
}
