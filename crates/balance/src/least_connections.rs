//! Least connections: the instance with the fewest requests in flight. Ties are broken by
//! starting the scan at a rotating position, so an idle pool is used in turn rather than always
//! from its first instance. Weights are ignored (see `wlc` for the weighted form).

use std::sync::atomic::{AtomicUsize, Ordering};

use foresight_core::{rng::mix64, Time};

use crate::{Algorithm, Balancer, Endpoint, RequestInfo};

/// See the module documentation.
#[derive(Debug)]
pub struct LeastConnections {
    start: AtomicUsize,
    /// The widest vector instructions this CPU has, detected once (see [`packed_pick`]).
    arch: pulp::Arch,
}

impl LeastConnections {
    pub fn new(seed: u64) -> Self {
        LeastConnections {
            start: AtomicUsize::new(mix64(seed) as usize),
            arch: pulp::Arch::new(),
        }
    }
}

impl Balancer for LeastConnections {
    fn algorithm(&self) -> Algorithm {
        Algorithm::LeastConnections
    }

    fn uses_latency(&self) -> bool {
        false
    }

    fn pick(&self, endpoints: &[Endpoint], _: &RequestInfo, _: Time) -> Option<usize> {
        let start = self.next_start(endpoints.len())?;
        // Two passes: the smallest count (branch-free, four running minima so four compare
        // chains are in flight at once), then the first instance from `start` that has it.
        // Under load most instances share the minimum, so the second pass stops early. If
        // another thread moved the counts in between, `start` is as good an answer as any.
        let min = min_in_flight(endpoints);
        let has_min = |e: &Endpoint| e.load.in_flight() == min;
        let found = match endpoints[start..].iter().position(has_min) {
            Some(d) => start + d,
            None => endpoints[..start].iter().position(has_min).unwrap_or(start),
        };
        Some(found)
    }

    fn pick_with_counts(
        &self,
        endpoints: &[Endpoint],
        in_flight: &[u32],
        request: &RequestInfo,
        now: Time,
    ) -> Option<usize> {
        if in_flight.len() != endpoints.len() {
            return self.pick(endpoints, request, now);
        }
        let start = self.next_start(in_flight.len())?;
        if let Some(found) = packed_pick(self.arch, in_flight, start) {
            return Some(found);
        }
        // The same rule over one contiguous array in two passes: the minimum vectorises, the
        // search goes four at a time.
        let min = min_count(in_flight);
        let found = match first_equal(&in_flight[start..], min) {
            Some(d) => start + d,
            None => first_equal(&in_flight[..start], min).unwrap_or(start),
        };
        Some(found)
    }
}

impl LeastConnections {
    /// Where this pick's scan starts (`None` for an empty pool), and the next one's. The
    /// rotation only breaks ties, so a lost update between threads is harmless: a load and a
    /// store instead of a locked add, and no division while it stays in range.
    fn next_start(&self, n: usize) -> Option<usize> {
        if n == 0 {
            return None;
        }
        let s = self.start.load(Ordering::Relaxed);
        let start = if s < n { s } else { s % n };
        self.start
            .store(if start + 1 < n { start + 1 } else { 0 }, Ordering::Relaxed);
        Some(start)
    }
}

/// Pools of up to this many instances take [`packed_pick`].
const PACKED_MAX_POOL: usize = 256;
/// ... whose counts are all below this.
const PACKED_MAX_COUNT: u32 = 1 << 22;

/// The least-connections rule in one branch-free pass, for pools of at most 256 instances whose
/// counts are below 2^22 (`None` otherwise). Each instance gets a key: its count, then its
/// distance from `start` in scan order as 9 bits, `(index - start) mod 512` (instances before
/// `start`, where the scan wraps, come out at 256 and above, after all the others); so the
/// smallest key is the first instance from `start` with the fewest in flight. As an `i32` the
/// key is a plain signed minimum, over the whole array in one loop of the same length every
/// time: no data-dependent branch, where the two-pass search ends at an unpredictable place
/// (a branch misprediction per pick).
///
/// The loop is compiled twice, for baseline x86-64 and for AVX2, and `arch` (pulp's run-time
/// detection) picks the build: eight keys per instruction instead of four, and a one-instruction
/// signed minimum that baseline SSE2 lacks. On the simulator's least-connections benchmark the
/// one pass with AVX2 took the whole run from 4.75 to 5.4 M requests/s (median), with identical
/// answers (the arithmetic is integer).
fn packed_pick(arch: pulp::Arch, counts: &[u32], start: usize) -> Option<usize> {
    let n = counts.len();
    if n == 0 || n > PACKED_MAX_POOL || start >= n {
        return None;
    }
    let (best, all) = arch.dispatch(PackedMin {
        counts,
        start: start as u32,
    });
    if all >= PACKED_MAX_COUNT {
        // A shifted count lost its top bits: the keys do not order the counts.
        return None;
    }
    Some(((best as u32 + start as u32) & 0x1FF) as usize)
}

/// [`packed_min`] as an operation pulp compiles per instruction set.
struct PackedMin<'a> {
    counts: &'a [u32],
    start: u32,
}

impl pulp::WithSimd for PackedMin<'_> {
    type Output = (i32, u32);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> (i32, u32) {
        packed_min(self.counts, self.start)
    }
}

/// The smallest key (see [`packed_pick`]) and the bitwise or of all counts. Written as scalar
/// code for the compiler to vectorise; `inline(always)` puts it inside each of pulp's
/// target-feature builds.
#[inline(always)]
fn packed_min(counts: &[u32], start: u32) -> (i32, u32) {
    let (mut best, mut all) = (i32::MAX, 0u32);
    for (i, &c) in counts.iter().enumerate() {
        let d = (i as u32).wrapping_sub(start) & 0x1FF;
        best = best.min((c << 9 | d) as i32);
        all |= c;
    }
    (best, all)
}

/// The smallest of `counts` (`u32::MAX` when empty). Compared as `i32`, which baseline
/// x86-64 vectors do in fewer instructions than an unsigned minimum; a count of
/// 2^31 or more reads as negative and sends it to the plain unsigned pass, so the answer is
/// exact either way.
fn min_count(counts: &[u32]) -> u32 {
    let signed = counts.iter().fold(i32::MAX, |m, &c| m.min(c as i32));
    if signed >= 0 && !counts.is_empty() {
        signed as u32
    } else {
        counts.iter().fold(u32::MAX, |m, &c| m.min(c))
    }
}

/// The position of the first `v` in `xs`: four at a time, a branch-free bit mask of the equal
/// ones and its lowest set bit (one data-dependent branch per four instead of per one).
fn first_equal(xs: &[u32], v: u32) -> Option<usize> {
    let mut blocks = xs.chunks_exact(4);
    for (b, q) in blocks.by_ref().enumerate() {
        let mask = u32::from(q[0] == v)
            | u32::from(q[1] == v) << 1
            | u32::from(q[2] == v) << 2
            | u32::from(q[3] == v) << 3;
        if mask != 0 {
            return Some(4 * b + mask.trailing_zeros() as usize);
        }
    }
    let tail = blocks.remainder();
    let base = xs.len() - tail.len();
    tail.iter().position(|&x| x == v).map(|p| base + p)
}

/// The smallest in-flight count of a non-empty pool.
fn min_in_flight(endpoints: &[Endpoint]) -> u32 {
    let mut acc = [u32::MAX; 4];
    let chunks = endpoints.chunks_exact(4);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, e) in acc.iter_mut().zip(chunk) {
            *a = (*a).min(e.load.in_flight());
        }
    }
    for (a, e) in acc.iter_mut().zip(rest) {
        *a = (*a).min(e.load.in_flight());
    }
    acc[0].min(acc[1]).min(acc[2].min(acc[3]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{endpoints, histogram};

    #[test]
    fn picks_the_least_loaded() {
        let eps = endpoints(&[1, 1, 1]);
        eps[0].load.begin();
        eps[0].load.begin();
        eps[2].load.begin();
        let b = LeastConnections::new(1);
        for _ in 0..10 {
            assert_eq!(b.pick(&eps, &RequestInfo::default(), Time::ZERO), Some(1));
        }
    }

    /// Counts that do not match the pool in length are ignored rather than trusted.
    #[test]
    fn mismatched_counts_fall_back_to_the_loads() {
        let eps = endpoints(&[1, 1, 1]);
        eps[0].load.begin();
        eps[2].load.begin();
        let b = LeastConnections::new(3);
        let info = RequestInfo::default();
        assert_eq!(
            b.pick_with_counts(&eps, &[0, 5], &info, Time::ZERO),
            Some(1)
        );
        assert_eq!(b.pick_with_counts(&eps, &[], &info, Time::ZERO), Some(1));
        assert_eq!(b.pick_with_counts(&[], &[], &info, Time::ZERO), None);
    }

    /// Counts of 2^31 and more (negative as `i32`) still compare as unsigned.
    #[test]
    fn huge_counts_compare_unsigned() {
        assert_eq!(min_count(&[5, 1 << 31, 7]), 5);
        assert_eq!(min_count(&[u32::MAX, 3]), 3);
        assert_eq!(min_count(&[1 << 31, u32::MAX]), 1 << 31);
        assert_eq!(min_count(&[]), u32::MAX);
        let eps = endpoints(&[1, 1, 1]);
        let b = LeastConnections::new(0);
        let info = RequestInfo::default();
        let counts = [u32::MAX, 1 << 31, 9];
        assert_eq!(
            b.pick_with_counts(&eps, &counts, &info, Time::ZERO),
            Some(2)
        );
    }

    /// The one-pass key holds counts up to 2^22 - 1 and pools up to 256; beyond either the
    /// two-pass search answers, and both agree with the plain rule.
    #[test]
    fn packed_keys_hold_up_to_their_limits() {
        let plain = |counts: &[u32], start: usize| {
            let min = *counts.iter().min().unwrap();
            (start..counts.len())
                .chain(0..start)
                .find(|&k| counts[k] == min)
        };
        let top = PACKED_MAX_COUNT - 1;
        let mut x = 5u64;
        for n in [1usize, 2, 3, 7, 64, 255, 256] {
            for round in 0..200 {
                x = mix64(x);
                let counts: Vec<u32> = (0..n)
                    .map(|k| match mix64(x ^ k as u64) % 4 {
                        0 => top,
                        1 => top - 1,
                        _ => (mix64(x + k as u64) % 3) as u32,
                    })
                    .collect();
                let start = (x >> 32) as usize % n;
                // The build pulp picks for this CPU and the baseline build agree.
                let baseline = packed_min(&counts, start as u32);
                let picked = pulp::Arch::new().dispatch(PackedMin {
                    counts: &counts,
                    start: start as u32,
                });
                assert_eq!(picked, baseline, "n {n}, round {round}");
                assert_eq!(
                    packed_pick(pulp::Arch::new(), &counts, start),
                    plain(&counts, start),
                    "n {n}, round {round}"
                );
            }
        }
        let arch = pulp::Arch::new();
        assert_eq!(packed_pick(arch, &[PACKED_MAX_COUNT, 1], 0), None);
        assert_eq!(packed_pick(arch, &vec![0; 257], 0), None);
        assert_eq!(packed_pick(arch, &[], 0), None);
        let eps = endpoints(&[1, 1, 1]);
        let b = LeastConnections::new(0);
        let counts = [PACKED_MAX_COUNT + 1, PACKED_MAX_COUNT, PACKED_MAX_COUNT + 2];
        let info = RequestInfo::default();
        assert_eq!(
            b.pick_with_counts(&eps, &counts, &info, Time::ZERO),
            Some(1)
        );
    }

    #[test]
    fn ties_rotate() {
        let eps = endpoints(&[1, 1, 1, 1]);
        let b = LeastConnections::new(2);
        assert_eq!(histogram(&b, &eps, 400), vec![100; 4]);
    }

    /// Both scans (over the endpoints' `Load`s and over an array of counts) agree with the
    /// plain definition (first least-loaded instance from the rotating start) on pools of
    /// every size around the 4-wide and 16-wide blocks.
    #[test]
    fn agrees_with_a_plain_scan() {
        let mut x = 11u64;
        for n in (1..=13).chain([15, 16, 17, 31, 32, 33, 47, 100, 255, 256, 257, 300]) {
            let eps = endpoints(&vec![1; n]);
            let b = LeastConnections::new(n as u64);
            for round in 0..400 {
                x = mix64(x);
                let i = (x % n as u64) as usize;
                if x & 1 == 0 || eps[i].load.in_flight() == 0 {
                    eps[i].load.begin();
                } else {
                    eps[i].load.end();
                }
                let start = b.start.load(Ordering::Relaxed) % n;
                let min = eps.iter().map(|e| e.load.in_flight()).min().unwrap();
                let want = (start..n)
                    .chain(0..start)
                    .find(|&k| eps[k].load.in_flight() == min);
                let got = if round % 2 == 0 {
                    b.pick(&eps, &RequestInfo::default(), Time::ZERO)
                } else {
                    let counts: Vec<u32> = eps.iter().map(|e| e.load.in_flight()).collect();
                    b.pick_with_counts(&eps, &counts, &RequestInfo::default(), Time::ZERO)
                };
                assert_eq!(got, want, "pool of {n}, round {round}");
            }
        }
    }
}
