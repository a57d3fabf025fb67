//! Max-Min (Ibarra and Kim 1977; compared by Braun et al., JPDC 2001): like Min-Min, but of the
//! unassigned tasks the one whose *earliest* completion time is *largest* goes first, so big
//! tasks are placed while the fast machines are still free and small ones fill in around them.
//!
//! Online adaptation: over the requests held in a batch window (see [`crate::batch`]); a request
//! asked for alone goes to its earliest-completing instance.

use foresight_core::Time;

use crate::batch::{min_min_into, Ledger};
use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// See the module documentation.
#[derive(Debug)]
pub struct MaxMin;

impl Balancer for MaxMin {
    fn algorithm(&self) -> Algorithm {
        Algorithm::MaxMin
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
        min_min_into(&mut ledger, batch, &all, true, &mut out);
        Some(out)
    }
}
