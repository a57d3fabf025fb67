//! Opportunistic Load Balancing (OLB; Freund et al., "Scheduling resources in multi-user,
//! heterogeneous, computing environments with SmartNet", HCW 1998; as compared by Braun et al.,
//! JPDC 2001): each task goes, in arbitrary order, to the next machine expected to be
//! *available*, regardless of how fast that machine would run it.
//!
//! Online adaptation: requests are placed one by one; instances are visited in rotation from
//! after the last choice, and the first with a free worker (`in_flight < capacity`; when the
//! capacity is unknown, an idle instance) takes the request. If none has a free worker, the
//! one expected to free one soonest *counting slots, not speed* takes it: the fewest
//! `(in_flight + 1) / capacity` (weight stands in for capacity when it is unknown). Keeping
//! machines busy while ignoring their speed is OLB's defining trait, and its weakness on
//! heterogeneous pools.

use std::sync::atomic::{AtomicUsize, Ordering};

use foresight_core::{rng::mix64, Time};

use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// See the module documentation.
#[derive(Debug)]
pub struct Olb {
    next: AtomicUsize,
}

impl Olb {
    pub fn new(seed: u64) -> Self {
        Olb {
            next: AtomicUsize::new(mix64(seed) as usize),
        }
    }
}

fn slots(e: &Endpoint) -> u64 {
    u64::from(if e.capacity > 0 { e.capacity } else { e.weight })
}

impl Balancer for Olb {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Olb
    }

    fn pick(&self, endpoints: &[Endpoint], _: &RequestInfo, _: Time) -> Option<usize> {
        let n = endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let free = |e: &Endpoint| {
            let busy = e.load.in_flight();
            if e.capacity > 0 {
                busy < e.capacity
            } else {
                busy == 0
            }
        };
        if let Some(i) = (start..n).chain(0..start).find(|i| free(&endpoints[*i])) {
            return Some(i);
        }
        let mut best = start;
        for i in (start + 1..n).chain(0..start) {
            let (a, b) = (&endpoints[i], &endpoints[best]);
            // (in_flight + 1) / slots, compared without division.
            if (u64::from(a.load.in_flight()) + 1) * slots(b)
                < (u64::from(b.load.in_flight()) + 1) * slots(a)
            {
                best = i;
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
    fn takes_the_next_instance_with_a_free_worker_not_the_least_loaded() {
        let mut eps = endpoints(&[1, 1, 1]);
        eps.iter_mut().for_each(|e| e.capacity = 4);
        eps[0].load.begin();
        eps[0].load.begin(); // 2 of 4 busy: still free
        let b = Olb::new(0);
        let mut picks = std::collections::BTreeSet::new();
        for _ in 0..3 {
            picks.insert(b.pick(&eps, &RequestInfo::default(), Time::ZERO).unwrap());
        }
        assert_eq!(
            picks.len(),
            3,
            "rotation over instances with free workers, busy or not"
        );
    }

    #[test]
    fn full_instances_are_skipped_and_all_full_falls_back_to_fewest_per_slot() {
        let mut eps = endpoints(&[1, 1]);
        eps.iter_mut().for_each(|e| e.capacity = 1);
        eps[0].load.begin();
        let b = Olb::new(0);
        for _ in 0..5 {
            assert_eq!(b.pick(&eps, &RequestInfo::default(), Time::ZERO), Some(1));
        }
        eps[1].load.begin();
        eps[1].load.begin();
        assert_eq!(b.pick(&eps, &RequestInfo::default(), Time::ZERO), Some(0));
    }
}
