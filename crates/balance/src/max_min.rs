//! Max-Min (Ibarra and Kim 1977; compared by Braun et al., JPDC 2001): like Min-Min, but of the
//! unassigned tasks the one whose *earliest* completion time is *largest* goes first, so big
//! tasks are placed while the fast machines are still free and small ones fill in around them.
//!
//! Online adaptation: over the requests held in a batch window (see [`crate::batch`]); a request
//! asked for alone goes to its earliest-completing instance.

use crate::batch::{min_min_into, Heuristic, Ledger};
use crate::{Algorithm, RequestInfo};

/// Max-Min as a balancer.
pub(crate) fn new() -> Heuristic {
    Heuristic {
        algorithm: Algorithm::MaxMin,
        assign,
    }
}

fn assign(ledger: &mut Ledger, batch: &[RequestInfo], out: &mut [usize]) {
    let all: Vec<usize> = (0..batch.len()).collect();
    min_min_into(ledger, batch, &all, true, out);
}
