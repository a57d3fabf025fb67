//! Arrival times of a per-minute trace drawn piece by piece: within each piece the arrivals
//! are a Poisson process at the piece's rate, and at a piece's end the next piece starts afresh
//! (exact, as the exponential gap is memoryless). Thinning at the trace's peak rate, which the
//! other profiles use, draws and rejects a candidate for every accepted arrival and more
//! (peak ÷ rate of them), and asks the profile for its rate each time: on bursty traces most
//! of the simulator's time went there.

use rand::Rng;
use rand_distr::Exp1;

/// A piecewise-constant rate: `rates[i]` requests per second over `[i, i + 1) × piece_ns`.
///
/// Per arrival this is one exponential draw and a multiply: the mean gap of each piece is
/// worked out once (a division per arrival was a stall the next multiply waited on), and the
/// piece the last arrival fell in is remembered (no integer division by the piece length).
pub(crate) struct Pieces {
    /// `1e9 / rate` per piece; negative for a piece without arrivals (rate 0 or not a number).
    mean_gap_ns: Vec<f64>,
    piece_ns: u64,
    /// The piece of the last call's answer and where it ends.
    piece: usize,
    piece_end: u64,
}

impl Pieces {
    /// Pieces of `piece_ns` nanoseconds (at least 1).
    pub(crate) fn new(rates: &[f64], piece_ns: u64) -> Pieces {
        let piece_ns = piece_ns.max(1);
        Pieces {
            mean_gap_ns: (rates.iter())
                .map(|&r| if r > 0.0 { 1e9 / r } else { -1.0 })
                .collect(),
            piece_ns,
            piece: 0,
            piece_end: piece_ns,
        }
    }

    /// The first arrival after `now` (ns) and before `end`, if any.
    pub(crate) fn next(&mut self, now: u64, end: u64, rng: &mut impl Rng) -> Option<u64> {
        let mut t = now;
        if !(self.piece_end - self.piece_ns..self.piece_end).contains(&t) {
            self.piece = (t / self.piece_ns) as usize;
            self.piece_end = (self.piece as u64 + 1).saturating_mul(self.piece_ns);
        }
        while t < end {
            let gap_ns = *self.mean_gap_ns.get(self.piece)?;
            if gap_ns >= 0.0 {
                let gap = gap_ns * rng.sample::<f64, _>(Exp1);
                let next = t.saturating_add(gap as u64);
                if next < self.piece_end {
                    return (next < end).then_some(next);
                }
            }
            t = self.piece_end;
            self.piece += 1;
            self.piece_end = self.piece_end.saturating_add(self.piece_ns);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn each_piece_gets_its_rate_and_empty_pieces_get_nothing() {
        // 100/s, nothing, 1000/s, for 60 s each.
        let rates = [100.0, 0.0, 1000.0];
        let mut p = Pieces::new(&rates, 60_000_000_000);
        let mut rng = SmallRng::seed_from_u64(7);
        let end = 180_000_000_000;
        let mut counts = [0u64; 3];
        let mut t = 0;
        while let Some(next) = p.next(t, end, &mut rng) {
            assert!(next >= t && next < end);
            counts[(next / 60_000_000_000) as usize] += 1;
            t = next;
        }
        // Poisson: mean 6000 and 60000, sd 77 and 245.
        assert!((5700..6300).contains(&counts[0]), "{counts:?}");
        assert_eq!(counts[1], 0);
        assert!((59_000..61_000).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn beyond_the_trace_or_the_end_there_are_no_arrivals() {
        let rates = [50.0];
        let mut p = Pieces::new(&rates, 1_000_000_000);
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(p.next(1_000_000_000, u64::MAX, &mut rng), None);
        assert_eq!(
            p.next(0, 1, &mut rng),
            None,
            "no arrival within 1 ns at 50/s"
        );
    }
}
