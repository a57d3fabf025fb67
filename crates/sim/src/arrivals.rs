//! Arrival times of a per-minute trace drawn piece by piece: within each piece the arrivals
//! are a Poisson process at the piece's rate, and at a piece's end the next piece starts afresh
//! (exact, as the exponential gap is memoryless). Thinning at the trace's peak rate, which the
//! other profiles use, draws and rejects a candidate for every accepted arrival and more
//! (peak ÷ rate of them), and asks the profile for its rate each time: on bursty traces most
//! of the simulator's time went there.

use rand::Rng;
use rand_distr::Exp1;

/// A piecewise-constant rate: `rates[i]` requests per second over `[i, i + 1) × piece_ns`.
pub(crate) struct Pieces<'a> {
    rates: &'a [f64],
    piece_ns: u64,
}

impl<'a> Pieces<'a> {
    /// Pieces of `piece_ns` nanoseconds (at least 1).
    pub(crate) fn new(rates: &'a [f64], piece_ns: u64) -> Pieces<'a> {
        Pieces {
            rates,
            piece_ns: piece_ns.max(1),
        }
    }

    /// The first arrival after `now` (ns) and before `end`, if any.
    pub(crate) fn next(&self, now: u64, end: u64, rng: &mut impl Rng) -> Option<u64> {
        let mut t = now;
        while t < end {
            let i = (t / self.piece_ns) as usize;
            let rate = *self.rates.get(i)?;
            let piece_end = (i as u64 + 1).saturating_mul(self.piece_ns);
            if rate > 0.0 {
                let gap = 1e9 / rate * rng.sample::<f64, _>(Exp1);
                let next = t.saturating_add(gap as u64);
                if next < piece_end {
                    return (next < end).then_some(next);
                }
            }
            t = piece_end;
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
        let p = Pieces::new(&rates, 60_000_000_000);
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
        let p = Pieces::new(&rates, 1_000_000_000);
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(p.next(1_000_000_000, u64::MAX, &mut rng), None);
        assert_eq!(
            p.next(0, 1, &mut rng),
            None,
            "no arrival within 1 ns at 50/s"
        );
    }
}
