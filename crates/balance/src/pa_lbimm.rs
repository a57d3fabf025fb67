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

use foresight_core::Time;

use crate::batch::{min_min_into, rebalance, Ledger};
use crate::lbmm::REBALANCE_ROUNDS;
use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// See the module documentation.
#[derive(Debug)]
pub struct PaLbimm;

impl Balancer for PaLbimm {
    fn algorithm(&self) -> Algorithm {
        Algorithm::PaLbimm
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
        let vip: Vec<usize> = (0..batch.len())
            .filter(|r| batch[*r].priority > 0)
            .collect();
        let ordinary: Vec<usize> = (0..batch.len())
            .filter(|r| batch[*r].priority == 0)
            .collect();
        min_min_into(&mut ledger, batch, &vip, false, &mut out);
        min_min_into(&mut ledger, batch, &ordinary, false, &mut out);
        rebalance(
            &mut ledger,
            batch,
            &mut out,
            |r| batch[r].priority == 0,
            REBALANCE_ROUNDS,
        );
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::tests::{req, skewed};

    #[test]
    fn vip_requests_get_the_fast_instance_first() {
        let (eps, t) = skewed();
        // Four ordinary requests and one VIP one, all the same size.
        let mut batch: Vec<RequestInfo> = (0..5).map(|_| req(1.0)).collect();
        batch[4].priority = 1;
        let out = PaLbimm.assign_batch(&eps, &batch, t).unwrap();
        assert_eq!(out[4], 0, "{out:?}");
        // The VIP request's completion is the earliest possible (first on the fast instance).
        let plain = crate::min_min::MinMin
            .assign_batch(&eps, &batch, t)
            .unwrap();
        assert_eq!(plain.len(), 5);
    }
}
