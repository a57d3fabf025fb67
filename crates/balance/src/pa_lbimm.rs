//! PA-LBIMM, user-Priority Aware Load Balance Improved Min-Min (Chen, Wang and Chen,
//! "User-priority guided Min-Min scheduling algorithm for load balancing in cloud computing",
//! NCCCS 2013): tasks are split into VIP and ordinary by user priority; VIP tasks are scheduled
//! first (Min-Min), then ordinary tasks (Min-Min over what is left), then LBIMM's
//! load-balancing phase moves ordinary tasks off the machine that finishes last. (The original
//! also reserves VIP-qualified machines; here every instance may serve VIP requests.)
//!
//! Online adaptation: over the requests held in a batch window (see [`crate::batch`]); priority
//! comes from [`RequestInfo::priority`] (a request header in the proxy, the request class in the
//! simulator); VIP requests are never moved by the rebalancing. A request asked for alone goes
//! to its earliest-completing instance.

use crate::batch::{min_min_into, rebalance, Heuristic, Ledger};
use crate::lbmm::REBALANCE_ROUNDS;
use crate::{Algorithm, RequestInfo};

/// PA-LBIMM as a balancer.
pub(crate) fn new() -> Heuristic {
    Heuristic {
        algorithm: Algorithm::PaLbimm,
        assign,
    }
}

fn assign(ledger: &mut Ledger, batch: &[RequestInfo], out: &mut [usize]) {
    let vip: Vec<usize> = (0..batch.len())
        .filter(|r| batch[*r].priority > 0)
        .collect();
    let ordinary: Vec<usize> = (0..batch.len())
        .filter(|r| batch[*r].priority == 0)
        .collect();
    min_min_into(ledger, batch, &vip, false, out);
    min_min_into(ledger, batch, &ordinary, false, out);
    rebalance(
        ledger,
        batch,
        out,
        |r| batch[r].priority == 0,
        REBALANCE_ROUNDS,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::tests::{req, skewed};
    use crate::Balancer;

    #[test]
    fn vip_requests_get_the_fast_instance_first() {
        let (eps, t) = skewed();
        // Four ordinary requests and one VIP one, all the same size.
        let mut batch: Vec<RequestInfo> = (0..5).map(|_| req(1.0)).collect();
        batch[4].priority = 1;
        let out = new().assign_batch(&eps, &batch, t).unwrap();
        assert_eq!(out[4], 0, "{out:?}");
    }

    #[test]
    fn vip_requests_are_never_moved_by_rebalancing() {
        let (eps, t) = skewed();
        // Six VIP requests: Min-Min puts most on the fast instance; rebalancing may not move them.
        let batch: Vec<RequestInfo> = (0..6)
            .map(|_| RequestInfo {
                priority: 1,
                ..req(1.0)
            })
            .collect();
        let pa = new().assign_batch(&eps, &batch, t).unwrap();
        let mut ledger = crate::batch::Ledger::new(&eps, t);
        let mut plain = vec![0; 6];
        let all: Vec<usize> = (0..6).collect();
        crate::batch::min_min_into(&mut ledger, &batch, &all, false, &mut plain);
        assert_eq!(pa, plain, "only Min-Min placed the VIP requests");
    }
}
