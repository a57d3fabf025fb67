//! LBMM, Load Balance Min-Min (Wang, Yan, Liao and Wang, "Towards a load balancing in a
//! three-level cloud computing network", IEEE ICCSIT 2010; the improved LBIMM of Kokilavani and
//! Amalarethinam, IJCA 2011): Min-Min, then a load-balancing phase that takes the machine that
//! finishes last and moves its smallest task to the machine where it would complete earliest,
//! as long as that shortens the makespan.
//!
//! Online adaptation: over the requests held in a batch window (see [`crate::batch`]), with at
//! most [`REBALANCE_ROUNDS`] moves per batch; a request asked for alone goes to its
//! earliest-completing instance.

use foresight_core::Time;

use crate::batch::{min_min_into, rebalance, Ledger};
use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// Moves tried in the rebalancing phase of one batch.
pub const REBALANCE_ROUNDS: usize = 64;

/// See the module documentation.
#[derive(Debug)]
pub struct Lbmm;

impl Balancer for Lbmm {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Lbmm
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
        let all: Vec<usize> = (0..batch.len()).collect();
        min_min_into(&mut ledger, batch, &all, false, &mut out);
        rebalance(&mut ledger, batch, &mut out, |_| true, REBALANCE_ROUNDS);
        Some(out)
    }
}
