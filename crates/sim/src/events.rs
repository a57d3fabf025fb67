//! The engine's bookkeeping: the future event list, and the waiting times (their batch means
//! and their distribution).

use hdrhistogram::Histogram;

use crate::calendar::Calendar;

/// A dropped request's queueing delay in the distribution: it never got a worker, the worst
/// outcome, counted as a minute.
pub(crate) const DROPPED_WAIT_NS: u64 = 60_000_000_000;

/// Time from arrival to a worker, for every request counted: the batch means of the mean and
/// a histogram of the distribution (requests that found a worker at once are counted, not
/// recorded one by one: most requests, and the histogram's cost is per record).
pub(crate) struct Waits {
    pub(crate) means: BatchMeans,
    hist: Histogram<u64>,
    immediate: u64,
}

impl Waits {
    pub(crate) fn new(expected: u64) -> Self {
        Waits {
            means: BatchMeans::new(expected),
            hist: Histogram::new(3).expect("3 significant digits is valid"),
            immediate: 0,
        }
    }

    pub(crate) fn add_ns(&mut self, wait_ns: u64) {
        self.means.add(wait_ns as f64 / 1e9);
        if wait_ns == 0 {
            self.immediate += 1;
        } else {
            let _ = self.hist.record(wait_ns);
        }
    }

    /// The distribution, with `dropped` requests at [`DROPPED_WAIT_NS`].
    pub(crate) fn histogram(mut self, dropped: u64) -> Histogram<u64> {
        let _ = self.hist.record_n(0, self.immediate);
        let _ = self.hist.record_n(DROPPED_WAIT_NS, dropped);
        self.hist
    }
}

/// Waiting times in consecutive batches, for the mean and its batch-means standard error.
pub(crate) struct BatchMeans {
    batch_len: u64,
    sums: [f64; BATCHES],
    count: u64,
    /// The batch being filled and how many it still takes (no division per sample).
    batch: usize,
    left: u64,
}

impl BatchMeans {
    pub(crate) fn new(expected: u64) -> Self {
        BatchMeans {
            batch_len: (expected / BATCHES as u64).max(1),
            sums: [0.0; BATCHES],
            count: 0,
            batch: 0,
            left: (expected / BATCHES as u64).max(1),
        }
    }

    pub(crate) fn add(&mut self, wait_secs: f64) {
        if self.left == 0 && self.batch < BATCHES - 1 {
            self.batch += 1;
            self.left = self.batch_len;
        }
        self.sums[self.batch] += wait_secs;
        self.left = self.left.saturating_sub(1);
        self.count += 1;
    }

    /// (mean, standard error of the mean).
    pub(crate) fn result(&self) -> (f64, f64) {
        let full = ((self.count / self.batch_len) as usize).clamp(1, BATCHES);
        let means: Vec<f64> = (0..full)
            .map(|b| {
                let n = if b == BATCHES - 1 {
                    self.count - self.batch_len * (BATCHES as u64 - 1)
                } else {
                    self.batch_len
                };
                self.sums[b] / n.max(1) as f64
            })
            .collect();
        let mean = self.sums.iter().sum::<f64>() / self.count.max(1) as f64;
        let m = means.iter().sum::<f64>() / means.len() as f64;
        let var =
            means.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (means.len().max(2) - 1) as f64;
        (mean, (var / means.len() as f64).sqrt())
    }
}

/// The future event list: a calendar queue of events under `time << 64 | sequence` keys, so
/// events at the same nanosecond come out in the order they were scheduled.
pub(crate) struct Queue {
    calendar: Calendar<Event>,
    seq: u64,
}

impl Queue {
    pub(crate) fn new() -> Self {
        Queue {
            calendar: Calendar::default(),
            seq: 0,
        }
    }

    pub(crate) fn push(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.calendar
            .push((u128::from(at) << 64) | u128::from(self.seq), event);
    }

    /// Time of the earliest event, if any.
    pub(crate) fn peek_time(&mut self) -> Option<u64> {
        self.calendar.peek().map(|key| (key >> 64) as u64)
    }

    pub(crate) fn pop(&mut self) -> Option<(u64, Event)> {
        self.calendar
            .pop()
            .map(|(key, event)| ((key >> 64) as u64, event))
    }
}

pub(crate) enum Event {
    /// The batch window closes: assign the held requests.
    Flush,
    /// (instance, arrival time, counted, epoch)
    Completion(usize, u64, bool, u32),
    /// (instance, index into its changes; `usize::MAX` = join)
    Instance(usize, usize),
    /// The scaling controller's tick.
    Control,
}

pub(crate) const BATCHES: usize = 30;
