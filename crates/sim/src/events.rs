//! The engine's bookkeeping: the future event list and the batch means of waiting times.

use crate::heap;

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

/// The future event list: a binary heap of 16-byte (time, sequence, slot) keys packed into
/// one `u128`, with the
/// events themselves in a slab. Moving 16 bytes per sift instead of a whole event halves the
/// simulator's time per request (the heap was half of it).
pub(crate) struct Queue {
    /// `time << 64 | seq << 32 | slot`: one integer compare per sift step.
    heap: heap::QuadHeap,
    slab: Vec<Option<Event>>,
    free: Vec<u32>,
    seq: u32,
}

impl Queue {
    pub(crate) fn new() -> Self {
        Queue {
            heap: heap::QuadHeap::default(),
            slab: Vec::new(),
            free: Vec::new(),
            seq: 0,
        }
    }

    pub(crate) fn push(&mut self, at: u64, event: Event) {
        let slot = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = Some(event);
                i
            }
            None => {
                self.slab.push(Some(event));
                (self.slab.len() - 1) as u32
            }
        };
        // Ties at the same nanosecond go in insertion order (wrapping after 2^32 events only
        // reorders exact ties, deterministically).
        self.seq = self.seq.wrapping_add(1);
        self.heap
            .push((u128::from(at) << 64) | (u128::from(self.seq) << 32) | u128::from(slot));
    }

    /// Time of the earliest event, if any.
    pub(crate) fn peek_time(&self) -> Option<u64> {
        self.heap.peek().map(|key| (key >> 64) as u64)
    }

    pub(crate) fn pop(&mut self) -> Option<(u64, Event)> {
        let key = self.heap.pop()?;
        let (at, slot) = ((key >> 64) as u64, key as u32);
        let event = self.slab[slot as usize].take()?;
        self.free.push(slot);
        Some((at, event))
    }
}

pub(crate) enum Event {
    Arrival,
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
