//! The machinery shared by the batch heuristics of the Min-Min family (Ibarra and Kim 1977;
//! Braun et al., JPDC 2001): expected completion times and the Min-Min / Max-Min loop.
//!
//! Adaptation to online HTTP requests: requests arriving within a short batch window are held
//! and assigned together (the proxy and the simulator hold them; the delay is part of what they
//! measure). The expected time to compute request `r` on instance `i` is
//! `ETC(r, i) = cost(r) × unit(i)`, where `cost(r)` is the request's expected size relative to
//! an average request (its route's mean service time) and `unit(i)` is the instance's observed
//! time per average request per worker slot (peak-EWMA latency / slots). Its *ready time* is
//! its backlog: the requests it holds (in flight) plus those already assigned in this batch,
//! times `unit(i)`. Completion time `CT(r, i) = (backlog(i) + cost(r)) × unit(i)`.

use foresight_core::Time;

use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// How one heuristic of the family assigns a batch, given a fresh ledger.
pub(crate) type Assign = fn(&mut Ledger, &[RequestInfo], &mut [usize]);

/// A batch heuristic as a [`Balancer`]: a request asked for alone goes to its
/// earliest-completing instance; a batch is assigned by `assign`.
#[derive(Debug)]
pub(crate) struct Heuristic {
    pub algorithm: Algorithm,
    pub assign: Assign,
}

impl Balancer for Heuristic {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn pick(&self, endpoints: &[Endpoint], request: &RequestInfo, now: Time) -> Option<usize> {
        (!endpoints.is_empty()).then(|| Ledger::new(endpoints, now).best(request.cost_or_one()).0)
    }

    fn assign_batch(
        &self,
        endpoints: &[Endpoint],
        batch: &[RequestInfo],
        now: Time,
    ) -> Option<Vec<usize>> {
        if endpoints.is_empty() {
            return Some(Vec::new());
        }
        let mut ledger = Ledger::new(endpoints, now);
        let mut out = vec![0; batch.len()];
        (self.assign)(&mut ledger, batch, &mut out);
        Some(out)
    }
}

/// Expected-completion-time bookkeeping for one batch.
pub(crate) struct Ledger {
    /// Work queued on each instance, in average-request units.
    pub backlog: Vec<f64>,
    /// Time per average request per slot on each instance (ns).
    pub unit: Vec<f64>,
}

/// The latency floor used for an instance with no history (keeps units positive).
const MIN_UNIT_NS: f64 = 1_000.0;

impl Ledger {
    pub fn new(endpoints: &[Endpoint], now: Time) -> Self {
        Ledger {
            backlog: endpoints
                .iter()
                .map(|e| f64::from(e.load.in_flight()))
                .collect(),
            unit: endpoints
                .iter()
                .map(|e| {
                    let slots = if e.capacity > 0 {
                        e.capacity
                    } else {
                        e.weight.max(1)
                    };
                    (e.load.rtt_estimate_ns(now) / f64::from(slots)).max(MIN_UNIT_NS)
                })
                .collect(),
        }
    }

    /// Completion time of a request of `cost` on instance `i`.
    pub fn ct(&self, cost: f64, i: usize) -> f64 {
        (self.backlog[i] + cost) * self.unit[i]
    }

    /// The instance with the earliest completion for `cost`, and that completion time.
    pub fn best(&self, cost: f64) -> (usize, f64) {
        (0..self.unit.len())
            .map(|i| (i, self.ct(cost, i)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, f64::INFINITY))
    }

    /// Time at which instance `i` finishes all its work.
    pub fn finish(&self, i: usize) -> f64 {
        self.backlog[i] * self.unit[i]
    }
}

/// Min-Min (`largest = false`) or Max-Min (`largest = true`) over the requests `which` of
/// `batch`: repeatedly, for every unassigned request find its earliest-completing instance; of
/// those pairs assign the one whose completion time is smallest (Min-Min) or largest
/// (Max-Min); update that instance's backlog. Writes into `out`.
pub(crate) fn min_min_into(
    ledger: &mut Ledger,
    batch: &[RequestInfo],
    which: &[usize],
    largest: bool,
    out: &mut [usize],
) {
    let mut left: Vec<usize> = which.to_vec();
    while !left.is_empty() {
        let mut chosen = 0;
        let mut chosen_pair = ledger.best(batch[left[0]].cost_or_one());
        for (k, r) in left.iter().enumerate().skip(1) {
            let pair = ledger.best(batch[*r].cost_or_one());
            let better = if largest {
                pair.1 > chosen_pair.1
            } else {
                pair.1 < chosen_pair.1
            };
            if better {
                chosen = k;
                chosen_pair = pair;
            }
        }
        let r = left.swap_remove(chosen);
        out[r] = chosen_pair.0;
        ledger.backlog[chosen_pair.0] += batch[r].cost_or_one();
    }
}

/// LBMM's / LBIMM's rebalancing step: while it shortens the makespan, move the smallest movable
/// request off the instance that finishes last onto the instance where it would complete
/// earliest. `movable(r)` says which requests may move. At most `rounds` moves.
pub(crate) fn rebalance(
    ledger: &mut Ledger,
    batch: &[RequestInfo],
    out: &mut [usize],
    movable: impl Fn(usize) -> bool,
    rounds: usize,
) {
    let n = ledger.unit.len();
    if n < 2 {
        return;
    }
    for _ in 0..rounds {
        let heavy = (0..n)
            .max_by(|a, b| ledger.finish(*a).total_cmp(&ledger.finish(*b)))
            .unwrap_or(0);
        let makespan = ledger.finish(heavy);
        // The smallest request of this batch on the heaviest instance.
        let Some(r) = (0..out.len())
            .filter(|r| out[*r] == heavy && movable(*r))
            .min_by(|a, b| batch[*a].cost_or_one().total_cmp(&batch[*b].cost_or_one()))
        else {
            return;
        };
        let cost = batch[r].cost_or_one();
        let (target, ct) = (0..n)
            .filter(|i| *i != heavy)
            .map(|i| (i, ledger.ct(cost, i)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((heavy, f64::INFINITY));
        if ct >= makespan {
            return;
        }
        ledger.backlog[heavy] -= cost;
        ledger.backlog[target] += cost;
        out[r] = target;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::endpoints;

    /// Two instances, one three times slower, a minute into the run.
    pub fn skewed() -> (Vec<Endpoint>, Time) {
        let eps = endpoints(&[1, 1]);
        let t = Time::ZERO + Duration::from_secs(60);
        eps[0].load.observe(Duration::from_millis(10), t);
        eps[1].load.observe(Duration::from_millis(30), t);
        (eps, t)
    }

    pub fn req(cost: f64) -> RequestInfo {
        RequestInfo {
            cost,
            ..Default::default()
        }
    }

    #[test]
    fn min_min_fills_the_fast_instance_until_the_slow_one_is_earlier() {
        let (eps, t) = skewed();
        let mut ledger = Ledger::new(&eps, t);
        let batch: Vec<RequestInfo> = (0..4).map(|_| req(1.0)).collect();
        let mut out = vec![usize::MAX; 4];
        min_min_into(&mut ledger, &batch, &[0, 1, 2, 3], false, &mut out);
        // CT on fast: 10, 20, 30; on slow: 30. Three go to the fast one, one to the slow one.
        assert_eq!(out.iter().filter(|i| **i == 0).count(), 3, "{out:?}");
    }

    #[test]
    fn max_min_places_the_big_request_first() {
        let (eps, t) = skewed();
        let batch = vec![req(1.0), req(1.0), req(4.0)];
        let mut out = vec![usize::MAX; 3];
        let mut ledger = Ledger::new(&eps, t);
        min_min_into(&mut ledger, &batch, &[0, 1, 2], true, &mut out);
        assert_eq!(out[2], 0, "the big request gets the fast instance: {out:?}");
        let mut out_min = vec![usize::MAX; 3];
        let mut ledger = Ledger::new(&eps, t);
        min_min_into(&mut ledger, &batch, &[0, 1, 2], false, &mut out_min);
        // Min-Min places the two small ones on the fast instance first, then the big one
        // goes where it completes earliest: fast (2 + 4) x 10 = 60 vs slow 4 x 30 = 120.
        assert_eq!(out_min, vec![0, 0, 0]);
        let ledger_after = {
            let mut l = Ledger::new(&eps, t);
            for (r, i) in out.iter().enumerate() {
                l.backlog[*i] += batch[r].cost_or_one();
            }
            l
        };
        assert!(ledger_after.finish(0).max(ledger_after.finish(1)) <= 60e6 + 1.0);
    }

    #[test]
    fn rebalancing_moves_work_off_the_last_finisher() {
        let (eps, t) = skewed();
        let batch: Vec<RequestInfo> = (0..6).map(|_| req(1.0)).collect();
        let mut ledger = Ledger::new(&eps, t);
        let mut out = vec![0; 6]; // everything on the fast one: finishes at 60
        ledger.backlog[0] += 6.0;
        rebalance(&mut ledger, &batch, &mut out, |_| true, 10);
        // Moving one to the slow one (30) gives 50; a second (60) would not beat 40 → stop.
        assert_eq!(out.iter().filter(|i| **i == 1).count(), 1, "{out:?}");
    }
}
