//! # foresight-sim
//!
//! A discrete-event simulator of a pool of instances behind a balancer, on a virtual clock.
//!
//! It drives the **same** [`foresight_balance::Balancer`] objects and [`foresight_balance::Load`]
//! trackers as the proxy: a request is placed with `pick(endpoints, request, now)`, counted with
//! `Load::begin`, and on completion `Load::end` and `Load::observe(rtt, now)` are called, exactly
//! as the proxy does around a real exchange. Time is `foresight_core::Time` counted in virtual
//! nanoseconds, so a run is deterministic for a seed and independent of the machine.
//!
//! Model: each instance has `workers` servers and a FIFO queue (bounded or not; a full queue
//! drops the request, like the example backend's 503). Requests arrive as a Poisson process.
//! Each request's *size* (its service time on a speed-1 instance) is drawn at arrival from a
//! stream of its own, so every algorithm sees the same arrivals and the same sizes; an instance
//! of speed `s` serves a request of size `x` in `x / s`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod erlang;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use foresight_balance::{build, Algorithm, BalancerConfig, Endpoint, EwmaParams, RequestInfo};
use foresight_core::dist::Distribution;
use foresight_core::rng::mix64;
use foresight_core::Time;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// One instance of the simulated pool.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceSpec {
    /// Requests served at once.
    pub workers: u32,
    /// Requests that may wait; `None` = unbounded.
    pub queue_limit: Option<u32>,
    /// Service speed relative to 1 (0.5 = twice as slow).
    pub speed: f64,
    /// Balancer weight.
    pub weight: u32,
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The pool.
    pub instances: Vec<InstanceSpec>,
    /// Poisson arrival rate, requests per second.
    pub arrival_rate: f64,
    /// Requests to simulate (after the warm-up).
    pub requests: u64,
    /// Requests simulated first and left out of the statistics (the queue starts empty).
    pub warmup: u64,
    /// Mean request size (service time on a speed-1 instance).
    pub service_mean: Duration,
    /// Distribution of request sizes.
    pub distribution: Distribution,
    /// The balancing algorithm.
    pub algorithm: Algorithm,
    /// Seed of arrivals, sizes and the balancer.
    pub seed: u64,
}

/// What happened.
#[derive(Debug)]
pub struct Outcome {
    /// Requests completed (after warm-up).
    pub completed: u64,
    /// Requests dropped because the chosen instance's queue was full (after warm-up).
    pub dropped: u64,
    /// Response times (queueing + service), nanoseconds.
    pub response_ns: Histogram<u64>,
    /// Mean time waiting for a worker, seconds.
    pub mean_wait: f64,
    /// Batch-means standard error of `mean_wait` (30 batches), seconds.
    pub mean_wait_stderr: f64,
    /// Completed requests per instance.
    pub served: Vec<u64>,
    /// Busy worker-seconds per instance divided by workers × simulated time.
    pub utilisation: Vec<f64>,
    /// Events processed (arrivals + completions).
    pub events: u64,
    /// Wall-clock time of the run.
    pub wall: Duration,
}

impl Outcome {
    /// A latency quantile in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.response_ns.value_at_quantile(q) as f64 / 1e6
    }
}

struct Instance {
    spec: InstanceSpec,
    busy: u32,
    /// (arrival time, size in ns at speed 1, counted in statistics)
    queue: VecDeque<(u64, u64, bool)>,
    busy_ns: u128,
}

impl Instance {
    /// A worker starts a request of `size` (ns at speed 1) at `now`; returns when it finishes.
    fn start(&mut self, now: u64, size: u64) -> u64 {
        self.busy += 1;
        let service = (size as f64 / self.spec.speed) as u64;
        self.busy_ns += u128::from(service);
        now + service
    }
}

/// Waiting times in consecutive batches, for the mean and its batch-means standard error.
struct BatchMeans {
    batch_len: u64,
    sums: [f64; BATCHES],
    count: u64,
}

impl BatchMeans {
    fn new(expected: u64) -> Self {
        BatchMeans {
            batch_len: (expected / BATCHES as u64).max(1),
            sums: [0.0; BATCHES],
            count: 0,
        }
    }

    fn add(&mut self, wait_secs: f64) {
        self.sums[((self.count / self.batch_len) as usize).min(BATCHES - 1)] += wait_secs;
        self.count += 1;
    }

    /// (mean, standard error of the mean).
    fn result(&self) -> (f64, f64) {
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

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Arrival,
    /// (instance, arrival time, counted)
    Completion(usize, u64, bool),
}

const BATCHES: usize = 30;

/// Runs a scenario to the end.
pub fn run(s: &Scenario) -> Outcome {
    let started = Instant::now();
    let endpoints: Vec<Endpoint> = s
        .instances
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            Endpoint::new(
                mix64(i as u64 + 1),
                spec.weight,
                EwmaParams::default(),
                Time::ZERO,
            )
        })
        .collect();
    let balancer = build(
        &BalancerConfig {
            algorithm: s.algorithm,
            seed: s.seed,
        },
        &endpoints,
    );
    let mut instances: Vec<Instance> = s
        .instances
        .iter()
        .map(|spec| Instance {
            spec: spec.clone(),
            busy: 0,
            queue: VecDeque::new(),
            busy_ns: 0,
        })
        .collect();
    let mut arrivals_rng = SmallRng::seed_from_u64(mix64(s.seed ^ 0xA11));
    let mut sizes_rng = SmallRng::seed_from_u64(mix64(s.seed ^ 0x517E));
    let mean_gap_ns = 1e9 / s.arrival_rate;
    let mean_size = s.service_mean.as_secs_f64();
    let total = s.warmup + s.requests;

    let mut heap: BinaryHeap<Reverse<(u64, u64, Event)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut arrived = 0u64;
    let mut response_ns = Histogram::<u64>::new(3).expect("histogram");
    let mut served = vec![0u64; instances.len()];
    let (mut dropped, mut completed, mut events) = (0u64, 0u64, 0u64);
    let mut waits = BatchMeans::new(s.requests);
    let mut first_counted_at: Option<u64> = None;
    let mut now = 0u64;

    heap.push(Reverse((0, seq, Event::Arrival)));
    while let Some(Reverse((t, _, event))) = heap.pop() {
        now = t;
        events += 1;
        match event {
            Event::Arrival => {
                let counted = arrived >= s.warmup;
                if counted && first_counted_at.is_none() {
                    first_counted_at = Some(now);
                }
                arrived += 1;
                if arrived < total {
                    let gap = -mean_gap_ns * (1.0 - arrivals_rng.random::<f64>()).ln();
                    seq += 1;
                    heap.push(Reverse((now + gap as u64, seq, Event::Arrival)));
                }
                let size = (s.distribution.sample_secs(mean_size, &mut sizes_rng) * 1e9) as u64;
                let Some(i) =
                    balancer.pick(&endpoints, &RequestInfo::default(), Time::from_nanos(now))
                else {
                    dropped += u64::from(counted);
                    continue;
                };
                let inst = &mut instances[i];
                if inst.busy < inst.spec.workers {
                    endpoints[i].load.begin();
                    let done = inst.start(now, size);
                    seq += 1;
                    heap.push(Reverse((done, seq, Event::Completion(i, now, counted))));
                    if counted {
                        waits.add(0.0);
                    }
                } else if inst
                    .spec
                    .queue_limit
                    .is_none_or(|l| (inst.queue.len() as u32) < l)
                {
                    endpoints[i].load.begin();
                    inst.queue.push_back((now, size, counted));
                } else {
                    dropped += u64::from(counted);
                }
            }
            Event::Completion(i, arrived_at, counted) => {
                let rtt = now - arrived_at;
                endpoints[i].load.end();
                endpoints[i]
                    .load
                    .observe(Duration::from_nanos(rtt), Time::from_nanos(now));
                if counted {
                    completed += 1;
                    served[i] += 1;
                    let _ = response_ns.record(rtt.max(1));
                }
                let inst = &mut instances[i];
                inst.busy -= 1;
                if let Some((queued_at, size, was_counted)) = inst.queue.pop_front() {
                    let done = inst.start(now, size);
                    seq += 1;
                    heap.push(Reverse((
                        done,
                        seq,
                        Event::Completion(i, queued_at, was_counted),
                    )));
                    if was_counted {
                        waits.add((now - queued_at) as f64 / 1e9);
                    }
                }
            }
        }
    }

    let (mean_wait, mean_wait_stderr) = waits.result();
    let span = (now - first_counted_at.unwrap_or(0)).max(1) as f64;
    Outcome {
        completed,
        dropped,
        response_ns,
        mean_wait,
        mean_wait_stderr,
        served,
        utilisation: instances
            .iter()
            .map(|i| i.busy_ns as f64 / (span * f64::from(i.spec.workers)))
            .collect(),
        events,
        wall: started.elapsed(),
    }
}
