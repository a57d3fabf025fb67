//! A calendar queue (Brown, "Calendar queues: a fast O(1) priority queue implementation for
//! the simulation event set problem", CACM 31(10), 1988): the simulator's future event list.
//!
//! Keys are `u128`s whose top 64 bits are a time in nanoseconds. Time is cut into buckets of
//! `width` ns; a key goes into bucket `(time / width) mod buckets`, like a day of a year in a
//! desk calendar. Popping looks only at the bucket of the current day and takes its smallest
//! key if that key falls in the current day; otherwise it turns to the next day. With the
//! width near a few average gaps between events, a bucket holds one or two keys and both
//! operations take constant time, where a heap of `n` keys walks `log n` levels of dependent
//! loads (the 4-ary heap this replaces was a quarter of the simulator's time).
//!
//! Keys come out in exactly the order of a heap (smallest whole key first, so ties at one
//! nanosecond keep their sequence order) whatever the width: the width only decides the speed.
//! It adapts: the bucket count follows the size (between half and twice), and the width
//! follows the average gap between popped keys, re-measured every time the table is rebuilt.

/// Fewest buckets kept (a power of two).
const MIN_BUCKETS: usize = 16;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Calendar<T> {
    /// Keys with their payloads, so a pop touches one place (no side table of events).
    buckets: Vec<Vec<(u128, T)>>,
    /// `buckets.len() - 1` (the count is a power of two).
    mask: usize,
    /// Bucket width is `1 << shift` ns.
    shift: u32,
    len: usize,
    /// The current day: its bucket and the time its window ends (exclusive). No key is earlier
    /// than the window's start, `top - width`.
    cur: usize,
    top: u64,
    /// The smallest key and where it sits, once found (pushes keep it up to date).
    head: Option<(u128, usize, usize)>,
    /// Time of the last pop and a running sum of gaps between pops, for the width.
    last_pop: Option<u64>,
    gap_sum: u64,
    gaps: u64,
}

impl<T> Default for Calendar<T> {
    fn default() -> Self {
        Calendar {
            buckets: (0..MIN_BUCKETS).map(|_| Vec::new()).collect(),
            mask: MIN_BUCKETS - 1,
            shift: 10,
            len: 0,
            cur: 0,
            top: 1 << 10,
            head: None,
            last_pop: None,
            gap_sum: 0,
            gaps: 0,
        }
    }
}

fn time(key: u128) -> u64 {
    (key >> 64) as u64
}

impl<T> Calendar<T> {
    pub(crate) fn push(&mut self, key: u128, value: T) {
        let t = time(key);
        if self.len == 0 || t < self.top.saturating_sub(1 << self.shift) {
            // Empty, or earlier than the current day: make its day the current one.
            self.set_day(t);
        }
        let b = (t >> self.shift) as usize & self.mask;
        self.buckets[b].push((key, value));
        self.len += 1;
        if let Some((k, _, _)) = self.head {
            if key < k {
                self.head = Some((key, b, self.buckets[b].len() - 1));
            }
        }
        if self.len > 2 * self.buckets.len() {
            self.rebuild(self.buckets.len() * 2);
        }
    }

    pub(crate) fn peek(&mut self) -> Option<u128> {
        if self.head.is_none() {
            self.head = self.find();
        }
        self.head.map(|(k, _, _)| k)
    }

    pub(crate) fn pop(&mut self) -> Option<(u128, T)> {
        let (key, b, i) = match self.head.take() {
            Some(h) => h,
            None => self.find()?,
        };
        let popped = self.buckets[b].swap_remove(i);
        self.len -= 1;
        let t = time(key);
        if let Some(last) = self.last_pop {
            self.gap_sum = self.gap_sum.saturating_add(t.saturating_sub(last));
            self.gaps += 1;
        }
        self.last_pop = Some(t);
        let n = self.buckets.len();
        if n > MIN_BUCKETS && self.len < n / 2 {
            self.rebuild(n / 2);
        } else if self.gaps >= 4 * n as u64 {
            // Same size, but the pace may have changed (a ramp, a diurnal trough): refit
            // the width when it is off by 4x or more, else start a fresh measurement.
            if self.fitted_shift().abs_diff(self.shift) >= 2 {
                self.rebuild(n);
            } else {
                self.gap_sum = 0;
                self.gaps = 0;
            }
        }
        Some(popped)
    }

    /// Makes the day holding `t` the current one.
    fn set_day(&mut self, t: u64) {
        self.cur = (t >> self.shift) as usize & self.mask;
        self.top = ((t >> self.shift) + 1).saturating_mul(1 << self.shift);
    }

    /// The smallest key and its place, turning the days forward to it. Inlined into its
    /// callers: returned through memory, its answer was read back by a wider load than the
    /// stores that wrote it, which waited on them (the event loop's costliest instruction in
    /// `perf annotate`).
    #[inline(always)]
    fn find(&mut self) -> Option<(u128, usize, usize)> {
        if self.len == 0 {
            return None;
        }
        for _ in 0..self.buckets.len() {
            let bucket = &self.buckets[self.cur];
            if let Some((i, &(k, _))) = bucket.iter().enumerate().min_by_key(|(_, e)| e.0) {
                if time(k) < self.top {
                    return Some((k, self.cur, i));
                }
            }
            self.cur = (self.cur + 1) & self.mask;
            self.top = self.top.saturating_add(1 << self.shift);
        }
        // A year without a key: jump straight to the smallest.
        let (b, i, k) = (self.buckets.iter().enumerate())
            .flat_map(|(b, keys)| keys.iter().enumerate().map(move |(i, e)| (b, i, e.0)))
            .min_by_key(|&(_, _, k)| k)?;
        self.set_day(time(k));
        Some((k, b, i))
    }

    /// About three average gaps between pops, as a power of two (the current width until
    /// there is a gap to measure).
    fn fitted_shift(&self) -> u32 {
        if self.gaps == 0 {
            return self.shift;
        }
        let gap = (self.gap_sum / self.gaps).max(1);
        gap.saturating_mul(3).ilog2().min(62)
    }

    /// Re-buckets every key into `n` buckets (a power of two) of the fitted width.
    fn rebuild(&mut self, n: usize) {
        self.shift = self.fitted_shift();
        self.gap_sum = 0;
        self.gaps = 0;
        let entries: Vec<(u128, T)> = self.buckets.iter_mut().flat_map(|b| b.drain(..)).collect();
        self.buckets.resize_with(n, Vec::new);
        self.mask = n - 1;
        self.head = None;
        let earliest = entries.iter().map(|e| time(e.0)).min();
        self.set_day(earliest.or(self.last_pop).unwrap_or(0));
        for e in entries {
            self.buckets[(time(e.0) >> self.shift) as usize & self.mask].push(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foresight_core::rng::mix64;

    /// Interleaved pushes and pops, with ties, bursts far ahead and earlier-than-now pushes,
    /// against a sorted model, through growth and shrinkage.
    #[test]
    fn pops_in_order_like_a_sort() {
        for spread in [1u64, 1_000, 1_000_000, 1 << 40] {
            let mut cal = Calendar::<u64>::default();
            let mut model: Vec<u128> = Vec::new();
            let mut x = spread;
            let mut now = 0u64;
            for round in 0..20_000u64 {
                x = mix64(x ^ round);
                // Mostly future keys; now and then one before the last pop.
                let t = if x % 97 == 0 {
                    now.saturating_sub(x % 50)
                } else {
                    now + (x >> 8) % spread
                };
                let key = u128::from(t) << 64 | u128::from(round);
                cal.push(key, round);
                model.push(key);
                // Grow for the first half, then drain faster than filling.
                let pops = if round < 10_000 { x % 2 } else { 1 + x % 2 };
                for _ in 0..pops {
                    model.sort_unstable();
                    if model.is_empty() {
                        assert_eq!(cal.pop(), None);
                        continue;
                    }
                    let want = model.remove(0);
                    assert_eq!(cal.peek(), Some(want), "spread {spread}, round {round}");
                    assert_eq!(
                        cal.pop(),
                        Some((want, want as u64)),
                        "spread {spread}, round {round}"
                    );
                    now = time(want);
                }
            }
            model.sort_unstable();
            for want in model {
                assert_eq!(cal.pop(), Some((want, want as u64)));
            }
            assert_eq!(cal.pop(), None);
            assert_eq!(cal.peek(), None);
        }
    }
}
