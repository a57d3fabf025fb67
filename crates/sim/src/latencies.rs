//! Response times counted where an HdrHistogram of three significant digits counts them, one
//! array increment per request, and handed over as that histogram at the end.
//!
//! Recording into `hdrhistogram::Histogram` is a call that also checks the range, resizes,
//! tracks the minimum and maximum and adds to the total: a tenth of the simulator's time at
//! one record per completed request. Here a request costs an index worked out with the same
//! arithmetic (the histogram's layout: 2,048 sub-buckets, the lower half only in the first
//! bucket, each later bucket twice as wide) and an increment; [`Latencies::histogram`]
//! records each bucket's count once, at its lowest value. The histogram that comes out has
//! the same count in every bucket, so every quantile, the mean, `count_between` and the
//! bucket-rounded minimum and maximum equal those of recording request by request.

use hdrhistogram::Histogram;

/// Significant digits of the histogram handed over.
const SIGFIG: u8 = 3;
/// log2 of half the sub-buckets of a bucket: 2,048 sub-buckets hold three digits.
const HALF_MAGNITUDE: u32 = 10;
const HALF: u64 = 1 << HALF_MAGNITUDE;
/// Values below 2,048 fit the first bucket whole.
const MASK: u64 = 2 * HALF - 1;

/// The histogram's index for `value` (unit 1, three digits).
#[inline]
fn index(value: u64) -> usize {
    let bucket = 64 - HALF_MAGNITUDE - 1 - (value | MASK).leading_zeros();
    let sub = value >> bucket;
    (((u64::from(bucket) + 1) << HALF_MAGNITUDE) + sub - HALF) as usize
}

/// The lowest value of the bucket at `index`.
fn lowest(index: usize) -> u64 {
    let i = index as u64;
    let bucket = (i >> HALF_MAGNITUDE) as i64 - 1;
    let sub = (i & (HALF - 1)) + HALF;
    if bucket < 0 {
        sub - HALF
    } else {
        sub << bucket
    }
}

/// Counts of response times in nanoseconds, per bucket.
pub(crate) struct Latencies {
    counts: Vec<u64>,
}

impl Latencies {
    pub(crate) fn new() -> Self {
        Latencies {
            // Up to about 67 s; longer times grow the array.
            counts: vec![0; index(1 << 36) + 1],
        }
    }

    #[inline]
    pub(crate) fn record(&mut self, ns: u64) {
        let i = index(ns);
        match self.counts.get_mut(i) {
            Some(c) => *c += 1,
            None => {
                self.counts.resize(i + 1, 0);
                self.counts[i] = 1;
            }
        }
    }

    /// The histogram of every recorded time.
    pub(crate) fn histogram(&self) -> Histogram<u64> {
        let mut h = Histogram::new(SIGFIG).expect("3 significant digits is valid");
        for (i, &c) in self.counts.iter().enumerate() {
            if c > 0 {
                let _ = h.record_n(lowest(i), c);
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// Values over the whole range: small, around every power of two, up to minutes.
    fn values() -> Vec<u64> {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut v: Vec<u64> = (0..4096).collect();
        for p in 0..40 {
            let b = 1u64 << p;
            v.extend([b.saturating_sub(1), b, b + 1]);
        }
        v.extend((0..200_000).map(|_| {
            let magnitude = rng.random_range(0..38);
            rng.random_range(0..(2u64 << magnitude))
        }));
        v
    }

    #[test]
    fn every_value_lands_in_the_histograms_own_bucket() {
        let h = Histogram::<u64>::new(SIGFIG).unwrap();
        for v in values() {
            assert_eq!(lowest(index(v)), h.lowest_equivalent(v), "value {v}");
        }
    }

    #[test]
    fn the_histogram_handed_over_reads_as_recording_one_by_one() {
        let mut direct = Histogram::<u64>::new(SIGFIG).unwrap();
        let mut counted = Latencies::new();
        for v in values().into_iter().map(|v| v.max(1)) {
            direct.record(v).unwrap();
            counted.record(v);
        }
        let h = counted.histogram();
        assert_eq!(h.len(), direct.len());
        assert_eq!(h.min(), direct.min());
        assert_eq!(h.max(), direct.max());
        assert_eq!(h.mean().to_bits(), direct.mean().to_bits());
        for q in [0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0] {
            assert_eq!(h.value_at_quantile(q), direct.value_at_quantile(q), "q {q}");
        }
        for slo in [1, 1_000, 999_999, 1_000_000_000, 60_000_000_000] {
            assert_eq!(
                h.count_between(0, slo),
                direct.count_between(0, slo),
                "≤ {slo}"
            );
        }
        let (a, b): (Vec<_>, Vec<_>) = (
            h.iter_recorded()
                .map(|x| (x.value_iterated_to(), x.count_at_value()))
                .collect(),
            direct
                .iter_recorded()
                .map(|x| (x.value_iterated_to(), x.count_at_value()))
                .collect(),
        );
        assert_eq!(a, b);
    }
}
