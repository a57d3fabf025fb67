//! LBMM, Load Balance Min-Min (Wang, Yan, Liao and Wang, "Towards a load balancing in a
//! three-level cloud computing network", IEEE ICCSIT 2010; the improved LBIMM of Kokilavani and
//! Amalarethinam, IJCA 2011): Min-Min, then a load-balancing phase that takes the machine that
//! finishes last and moves its smallest task to the machine where it would complete earliest,
//! as long as that shortens the makespan.
//!
//! Online adaptation: over the requests held in a batch window (see [`crate::batch`]), with at
//! most [`REBALANCE_ROUNDS`] moves per batch; a request asked for alone goes to its
//! earliest-completing instance.

use crate::batch::{min_min_into, rebalance, Heuristic, Ledger};
use crate::{Algorithm, RequestInfo};

/// Moves tried in the rebalancing phase of one batch.
pub const REBALANCE_ROUNDS: usize = 64;

/// LBMM as a balancer.
pub(crate) fn new() -> Heuristic {
    Heuristic {
        algorithm: Algorithm::Lbmm,
        assign,
    }
}

fn assign(ledger: &mut Ledger, batch: &[RequestInfo], out: &mut [usize]) {
    let all: Vec<usize> = (0..batch.len()).collect();
    min_min_into(ledger, batch, &all, false, out);
    rebalance(ledger, batch, out, |_| true, REBALANCE_ROUNDS);
}
