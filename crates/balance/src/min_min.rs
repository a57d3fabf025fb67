//! Min-Min (Ibarra and Kim, "Heuristic algorithms for scheduling independent tasks on
//! nonidentical processors", JACM 1977; compared by Braun et al., JPDC 2001): of all
//! unassigned tasks, the one with the smallest earliest completion time goes first, to the
//! machine giving it that time. Small tasks go first and land on the fastest machines.
//!
//! Online adaptation: over the requests held in a batch window, with completion times from
//! [`crate::batch`]; a request asked for alone (no batch) goes to its earliest-completing
//! instance.

use foresight_core::Time;

use crate::batch::{min_min_into, Ledger};
use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// See the module documentation.
#[derive(Debug)]
pub struct MinMin;

impl Balancer for MinMin {
    fn algorithm(&self) -> Algorithm {
        Algorithm::MinMin
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
        Some(out)
    }
}
