//! JTL records tallied into the [`Report`] `loadgen` prints (by label and by thread group) and
//! a timeline of bounded size, one record at a time, so a file of any length fits in memory.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::read::Record;
use crate::{histogram, Report, Summary};

/// Distinct labels (and thread groups) kept apart; the rest are tallied under [`OTHER`].
pub const MAX_LABELS: usize = 1000;
/// The name the labels past [`MAX_LABELS`] share.
pub const OTHER: &str = "(other labels)";
/// Bins in the timeline at most; when a file spans more, bins double in width.
pub const MAX_BINS: usize = 2000;

/// One stretch of the timeline: the samples that started in it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bin {
    /// Samples.
    pub count: u64,
    /// Samples JMeter marked unsuccessful.
    pub failed: u64,
    /// Sum of their elapsed times.
    pub sum_ms: u64,
    /// The longest.
    pub max_ms: u64,
}

impl Bin {
    fn merge(&mut self, o: &Bin) {
        self.count += o.count;
        self.failed += o.failed;
        self.sum_ms += o.sum_ms;
        self.max_ms = self.max_ms.max(o.max_ms);
    }
}

/// Samples by start time, in bins of `width_ms` from `start_ms`.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Start of the first bin, ms since the epoch.
    pub start_ms: u64,
    /// Width of a bin (1 s, doubled as needed).
    pub width_ms: u64,
    /// The bins.
    pub bins: Vec<Bin>,
}

impl Timeline {
    fn add(&mut self, r: &Record) {
        if self.width_ms == 0 {
            self.width_ms = 1000;
            self.start_ms = r.epoch_ms - r.epoch_ms % 1000;
        }
        // A sample that started before the first bin (JMeter writes samples as they end).
        while r.epoch_ms < self.start_ms {
            let k = (self.start_ms - r.epoch_ms).div_ceil(self.width_ms) as usize;
            if self.bins.len() + k > MAX_BINS {
                self.coarsen();
                continue;
            }
            self.bins
                .splice(0..0, std::iter::repeat_n(Bin::default(), k));
            self.start_ms -= k as u64 * self.width_ms;
        }
        let mut i = ((r.epoch_ms - self.start_ms) / self.width_ms) as usize;
        while i >= MAX_BINS {
            self.coarsen();
            i = ((r.epoch_ms - self.start_ms) / self.width_ms) as usize;
        }
        if self.bins.len() <= i {
            self.bins.resize(i + 1, Bin::default());
        }
        let b = &mut self.bins[i];
        b.count += 1;
        b.failed += u64::from(!r.success);
        b.sum_ms += r.elapsed_ms;
        b.max_ms = b.max_ms.max(r.elapsed_ms);
    }

    /// Pairs of bins merged, the width doubled.
    fn coarsen(&mut self) {
        self.bins = self
            .bins
            .chunks(2)
            .map(|pair| {
                let mut b = pair[0];
                if let Some(o) = pair.get(1) {
                    b.merge(o);
                }
                b
            })
            .collect();
        self.width_ms *= 2;
    }
}

/// The running tally of a JTL file.
pub struct Tally {
    overall: Histogram<u64>,
    labels: BTreeMap<String, Histogram<u64>>,
    groups: BTreeMap<String, Histogram<u64>>,
    statuses: BTreeMap<u16, u64>,
    samples: u64,
    errors: u64,
    failed: u64,
    first_start_ms: u64,
    last_start_ms: u64,
    last_end_ms: u64,
    timeline: Timeline,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            overall: histogram(),
            labels: BTreeMap::new(),
            groups: BTreeMap::new(),
            statuses: BTreeMap::new(),
            samples: 0,
            errors: 0,
            failed: 0,
            first_start_ms: u64::MAX,
            last_start_ms: 0,
            last_end_ms: 0,
            timeline: Timeline::default(),
        }
    }
}

fn entry<'a>(map: &'a mut BTreeMap<String, Histogram<u64>>, key: &str) -> &'a mut Histogram<u64> {
    let key = if map.contains_key(key) || map.len() < MAX_LABELS {
        key
    } else {
        OTHER
    };
    map.entry(key.to_string()).or_insert_with(histogram)
}

impl Tally {
    /// Counts one sample. Latencies are tallied for samples with a response (any status), as
    /// `loadgen` does; the rest count as errors.
    pub fn add(&mut self, r: &Record) {
        self.samples += 1;
        self.failed += u64::from(!r.success);
        self.first_start_ms = self.first_start_ms.min(r.epoch_ms);
        self.last_start_ms = self.last_start_ms.max(r.epoch_ms);
        self.last_end_ms = self
            .last_end_ms
            .max(r.epoch_ms.saturating_add(r.elapsed_ms));
        self.timeline.add(r);
        let Some(code) = r.status else {
            self.errors += 1;
            return;
        };
        *self.statuses.entry(code).or_insert(0) += 1;
        let us = r.elapsed_ms.saturating_mul(1000).clamp(1, 3_600_000_000);
        let _ = self.overall.record(us);
        let _ = entry(&mut self.labels, &r.label).record(us);
        if !r.thread_group.is_empty() {
            let _ = entry(&mut self.groups, &r.thread_group).record(us);
        }
    }

    /// Samples read.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Samples JMeter marked unsuccessful (non-2xx/3xx, no response, failed assertions).
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// From the first sample's start to the last one's end, in seconds.
    pub fn span_s(&self) -> f64 {
        if self.samples == 0 {
            return 0.0;
        }
        (self.last_end_ms - self.first_start_ms) as f64 / 1000.0
    }

    /// The summary `loadgen` prints: by label (its routes) and by thread group (its groups).
    /// A JTL file does not record when a sample was due, so `max_send_lag_ms` is 0.
    pub fn report(&self) -> Report {
        let per_s = |n: u64, ms: u64| {
            if ms == 0 {
                0.0
            } else {
                n as f64 * 1000.0 / ms as f64
            }
        };
        let first = self.first_start_ms.min(self.last_start_ms);
        let summaries = |m: &BTreeMap<String, Histogram<u64>>| {
            m.iter()
                .map(|(k, h)| (k.clone(), Summary::of(h)))
                .collect::<BTreeMap<_, _>>()
        };
        Report {
            sent: self.samples,
            statuses: self.statuses.clone(),
            errors: self.errors,
            send_rps: per_s(self.samples, self.last_start_ms - first),
            achieved_rps: per_s(self.overall.len(), self.last_end_ms - first),
            max_send_lag_ms: 0.0,
            overall: Summary::of(&self.overall),
            routes: summaries(&self.labels),
            groups: summaries(&self.groups),
        }
    }

    /// The latency histograms by label, in microseconds.
    pub fn label_histograms(&self) -> impl Iterator<Item = (&str, &Histogram<u64>)> {
        self.labels.iter().map(|(k, h)| (k.as_str(), h))
    }

    /// The samples over time.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(t: u64, elapsed: u64, label: &str, status: Option<u16>) -> Record {
        Record {
            epoch_ms: t,
            elapsed_ms: elapsed,
            label: label.into(),
            status,
            success: status.is_some_and(|s| s < 400),
            thread_group: "low".into(),
        }
    }

    #[test]
    fn counts_by_label_status_and_group() {
        let mut t = Tally::default();
        for i in 0..90 {
            t.add(&rec(
                10_000 + i * 100,
                10 + i % 7,
                if i % 3 == 0 { "/a" } else { "/b" },
                Some(200),
            ));
        }
        t.add(&rec(19_000, 5, "/a", Some(503)));
        t.add(&rec(9_500, 3000, "/b", None));
        let r = t.report();
        assert_eq!((r.sent, r.errors), (92, 1));
        assert_eq!(r.statuses, BTreeMap::from([(200, 90), (503, 1)]));
        assert_eq!(r.routes["/a"].requests, 31);
        assert_eq!(r.routes["/b"].requests, 60);
        assert_eq!(r.groups["low"].requests, 91);
        assert_eq!(r.overall.requests, 91);
        assert_eq!(t.failed(), 2);
        assert_eq!(r.failures(), 2);
        // 9.5 s to 19.005 s.
        assert!((t.span_s() - 9.505).abs() < 1e-9);
        // The late-written early sample opened a bin before the first.
        let tl = t.timeline();
        assert_eq!((tl.start_ms, tl.width_ms), (9_000, 1000));
        assert_eq!(tl.bins.iter().map(|b| b.count).sum::<u64>(), 92);
        assert_eq!(tl.bins[0].max_ms, 3000);
    }

    #[test]
    fn timeline_and_labels_stay_bounded() {
        let mut t = Tally::default();
        // Three hours of one sample a second, each with a new label.
        for i in 0..10_800u64 {
            t.add(&rec(1_000_000 + i * 1000, 1, &format!("/u/{i}"), Some(200)));
        }
        let tl = t.timeline();
        assert!(tl.bins.len() <= MAX_BINS, "{}", tl.bins.len());
        assert_eq!(tl.width_ms, 8000);
        assert_eq!(tl.bins.iter().map(|b| b.count).sum::<u64>(), 10_800);
        let r = t.report();
        assert_eq!(r.routes.len(), MAX_LABELS + 1);
        assert_eq!(r.routes[OTHER].requests, 10_800 - MAX_LABELS as u64);
    }
}
