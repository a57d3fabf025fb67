//! Min-Min (Ibarra and Kim, "Heuristic algorithms for scheduling independent tasks on
//! nonidentical processors", JACM 1977; compared by Braun et al., JPDC 2001): of all
//! unassigned tasks, the one with the smallest earliest completion time goes first, to the
//! machine giving it that time. Small tasks go first and land on the fastest machines.
//!
//! Online adaptation: over the requests held in a batch window, with completion times from
//! [`crate::batch`]; a request asked for alone (no batch) goes to its earliest-completing
//! instance.

use crate::batch::{min_min_into, Heuristic, Ledger};
use crate::{Algorithm, RequestInfo};

/// Min-Min as a balancer.
pub(crate) fn new() -> Heuristic {
    Heuristic {
        algorithm: Algorithm::MinMin,
        assign,
    }
}

fn assign(ledger: &mut Ledger, batch: &[RequestInfo], out: &mut [usize]) {
    let all: Vec<usize> = (0..batch.len()).collect();
    min_min_into(ledger, batch, &all, false, out);
}
