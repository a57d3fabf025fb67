//! Active Clustering (Randles, Lamb and Taleb-Bendiab, "A comparative study into distributed
//! load balancing algorithms for cloud computing", IEEE WAINA 2010): nodes repeatedly rewire
//! through "matchmaker" neighbours so that similar nodes end up grouped, and work is spread
//! within a group of suitable nodes.
//!
//! Online adaptation: "similar" means similar speed. Every [`RECLUSTER_EVERY`] the instances are
//! re-grouped by their peak-EWMA response time: sorted, and split at the largest ratio between
//! neighbours when it exceeds [`SPLIT_RATIO`] (otherwise all form one cluster). Requests go
//! round-robin within the fast cluster, unless its load per unit of weight is more than
//! [`SPILL_FACTOR`] × the slow cluster's, in which case they spill round-robin into the slow
//! cluster. The grouping is stored in atomics and redone by whichever request finds it stale
//! (one wins a compare-and-swap), so no request waits on a lock.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use foresight_core::{rng::mix64, Time};

use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// How often the clusters are recomputed.
pub const RECLUSTER_EVERY: Duration = Duration::from_millis(100);
/// Neighbouring response times further apart than this ratio separate two clusters.
pub const SPLIT_RATIO: f64 = 1.5;
/// The fast cluster spills into the slow one when its load per weight is this many times higher.
pub const SPILL_FACTOR: f64 = 3.0;

/// See the module documentation.
#[derive(Debug)]
pub struct ActiveClustering {
    next: AtomicUsize,
    /// Per endpoint: true when in the slow cluster.
    slow: Vec<AtomicBool>,
    /// When the clusters were last computed (ns); `u64::MAX` = never.
    computed_at: AtomicU64,
}

impl ActiveClustering {
    pub fn new(endpoints: &[Endpoint], seed: u64) -> Self {
        ActiveClustering {
            next: AtomicUsize::new(mix64(seed) as usize),
            slow: endpoints.iter().map(|_| AtomicBool::new(false)).collect(),
            computed_at: AtomicU64::new(u64::MAX),
        }
    }

    fn recluster_if_stale(&self, endpoints: &[Endpoint], now: Time) {
        let at = self.computed_at.load(Ordering::Relaxed);
        let stale = at == u64::MAX
            || now.as_nanos().saturating_sub(at) >= RECLUSTER_EVERY.as_nanos() as u64;
        if !stale
            || self
                .computed_at
                .compare_exchange(at, now.as_nanos(), Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let mut order: Vec<(f64, usize)> = endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| (e.load.rtt_estimate_ns(now).max(1.0), i))
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0));
        let split = order
            .windows(2)
            .enumerate()
            .map(|(k, w)| (w[1].0 / w[0].0, k + 1))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .filter(|(ratio, _)| *ratio > SPLIT_RATIO)
            .map_or(order.len(), |(_, k)| k);
        for (rank, (_, i)) in order.iter().enumerate() {
            if let Some(flag) = self.slow.get(*i) {
                flag.store(rank >= split, Ordering::Relaxed);
            }
        }
    }

    fn load_per_weight(&self, endpoints: &[Endpoint], slow: bool) -> Option<f64> {
        let (mut load, mut weight) = (0.0, 0.0);
        for (e, flag) in endpoints.iter().zip(&self.slow) {
            if flag.load(Ordering::Relaxed) == slow {
                load += f64::from(e.load.in_flight());
                weight += f64::from(e.weight);
            }
        }
        (weight > 0.0).then_some(load / weight)
    }
}

impl Balancer for ActiveClustering {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ActiveClustering
    }

    fn pick(&self, endpoints: &[Endpoint], _: &RequestInfo, now: Time) -> Option<usize> {
        let n = endpoints.len().min(self.slow.len());
        if n == 0 {
            return None;
        }
        self.recluster_if_stale(endpoints, now);
        let use_slow = match (
            self.load_per_weight(endpoints, false),
            self.load_per_weight(endpoints, true),
        ) {
            (Some(fast), Some(slow)) => fast > SPILL_FACTOR * slow.max(1.0 / SPILL_FACTOR),
            (None, Some(_)) => true,
            _ => false,
        };
        // Round-robin over the chosen cluster's members.
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let in_cluster = |i: &usize| self.slow[*i].load(Ordering::Relaxed) == use_slow;
        let members = (0..n).filter(in_cluster).count();
        if members == 0 {
            return Some(turn % n);
        }
        (0..n).filter(in_cluster).nth(turn % members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::endpoints;

    #[test]
    fn groups_by_speed_and_serves_the_fast_cluster_until_it_is_much_busier() {
        let eps = endpoints(&[1, 1, 1, 1]);
        // Samples a minute in: the 30 ms default has decayed away.
        let t = Time::ZERO + Duration::from_secs(60);
        for (i, e) in eps.iter().enumerate() {
            e.load
                .observe(Duration::from_millis(if i >= 2 { 100 } else { 10 }), t);
        }
        let b = ActiveClustering::new(&eps, 0);
        let mut counts = [0; 4];
        for _ in 0..100 {
            counts[b.pick(&eps, &RequestInfo::default(), t).unwrap()] += 1;
        }
        assert_eq!(counts, [50, 50, 0, 0]);
        // Fast cluster loaded 4 per instance, slow idle: spill.
        for e in &eps[..2] {
            for _ in 0..4 {
                e.load.begin();
            }
        }
        let i = b.pick(&eps, &RequestInfo::default(), t).unwrap();
        assert!(i >= 2, "{i}");
    }

    #[test]
    fn similar_instances_form_one_cluster() {
        let eps = endpoints(&[1, 1, 1]);
        let t = Time::ZERO + Duration::from_secs(60);
        for (i, e) in eps.iter().enumerate() {
            e.load.observe(Duration::from_millis(10 + i as u64), t);
        }
        let b = ActiveClustering::new(&eps, 0);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..30 {
            seen.insert(b.pick(&eps, &RequestInfo::default(), t).unwrap());
        }
        assert_eq!(seen.len(), 3);
    }
}
