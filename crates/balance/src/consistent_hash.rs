//! Consistent hashing on a ring (Karger et al. 1997; the "ketama" layout used by HAProxy and
//! Envoy's ring hash): each instance owns [`VNODES_PER_WEIGHT`] × weight points on a 64-bit ring,
//! placed by hashing its stable key; a request goes to the first point at or after its own hash.
//! Removing an instance moves only the keys it owned. The request's key (a header or the path)
//! is hashed by the proxy into [`RequestInfo::hash_key`]; a request without a key is placed at a
//! seeded random point.

use foresight_core::{
    rng::{mix64, AtomicSplitMix},
    Time,
};

use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// Ring points per unit of weight: enough that the share of each instance is within a few
/// percent of its weight share for small pools.
pub const VNODES_PER_WEIGHT: u32 = 160;

/// The ring is capped at this many points; weights are scaled down beyond it.
pub const MAX_RING: u64 = 1 << 20;

/// See the module documentation.
#[derive(Debug)]
pub struct ConsistentHash {
    /// (point, endpoint index), sorted by point.
    ring: Vec<(u64, u32)>,
    rng: AtomicSplitMix,
}

impl ConsistentHash {
    pub fn new(endpoints: &[Endpoint], seed: u64) -> Self {
        let total: u64 = endpoints
            .iter()
            .map(|e| u64::from(e.weight) * u64::from(VNODES_PER_WEIGHT))
            .sum();
        let scale = if total > MAX_RING {
            MAX_RING as f64 / total as f64
        } else {
            1.0
        };
        let mut ring = Vec::new();
        for (i, e) in endpoints.iter().enumerate() {
            let points =
                ((f64::from(e.weight) * f64::from(VNODES_PER_WEIGHT) * scale) as u64).max(1);
            for r in 0..points {
                ring.push((mix64(e.key ^ mix64(r)), i as u32));
            }
        }
        ring.sort_unstable();
        ConsistentHash {
            ring,
            rng: AtomicSplitMix::new(seed),
        }
    }
}

impl Balancer for ConsistentHash {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ConsistentHash
    }

    fn uses_latency(&self) -> bool {
        false
    }

    fn pick(&self, endpoints: &[Endpoint], request: &RequestInfo, _: Time) -> Option<usize> {
        if self.ring.is_empty() || endpoints.is_empty() {
            return None;
        }
        let h = match request.hash_key {
            Some(k) => mix64(k),
            None => self.rng.next_u64(),
        };
        let pos = self.ring.partition_point(|(p, _)| *p < h);
        let (_, i) = self.ring[if pos == self.ring.len() { 0 } else { pos }];
        Some((i as usize).min(endpoints.len() - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::endpoints;

    fn place(b: &ConsistentHash, eps: &[Endpoint], key: u64) -> u64 {
        let i = b
            .pick(
                eps,
                &RequestInfo {
                    hash_key: Some(key),
                    ..Default::default()
                },
                Time::ZERO,
            )
            .unwrap();
        eps[i].key
    }

    #[test]
    fn same_key_same_instance() {
        let eps = endpoints(&[1, 1, 1]);
        let b = ConsistentHash::new(&eps, 0);
        for k in 0..100 {
            assert_eq!(place(&b, &eps, k), place(&b, &eps, k));
        }
    }

    #[test]
    fn removing_one_moves_only_its_keys() {
        let eps = endpoints(&[1, 1, 1, 1]);
        let full = ConsistentHash::new(&eps, 0);
        let fewer: Vec<Endpoint> = eps
            .iter()
            .filter(|e| e.key != eps[1].key)
            .cloned()
            .collect();
        let partial = ConsistentHash::new(&fewer, 0);
        let mut moved = 0;
        for k in 0..10_000 {
            let before = place(&full, &eps, k);
            let after = place(&partial, &fewer, k);
            if before != eps[1].key {
                assert_eq!(before, after, "key {k} moved although its owner stayed");
            } else {
                moved += 1;
            }
        }
        assert!((1_800..3_200).contains(&moved), "{moved}");
    }

    #[test]
    fn shares_follow_weights() {
        let eps = endpoints(&[1, 3]);
        let b = ConsistentHash::new(&eps, 0);
        let heavy = (0..20_000u64)
            .filter(|k| place(&b, &eps, *k) == eps[1].key)
            .count();
        assert!((13_500..16_500).contains(&heavy), "{heavy}");
    }
}
