//! The scenario a run is given and the outcome it returns: pool, request classes, arrivals,
//! scaling hooks.

use std::time::Duration;

use foresight_balance::Algorithm;
use foresight_core::dist::Distribution;
use foresight_workload::Profile;
use hdrhistogram::Histogram;

/// Something that happens to an instance at a given time.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Service times are multiplied by this factor from now on (2 = twice as slow).
    Slowdown(f64),
    /// The instance stops: requests it holds fail, it leaves the balancer's set.
    Crash,
}

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
    /// When it joins the pool (zero: from the start).
    pub join_at: Duration,
    /// How long after joining it serves slower.
    pub warmup: Duration,
    /// Relative speed at the moment it joins (rises linearly to 1 over `warmup`).
    pub warmup_speed: f64,
    /// Changes at given times after the start.
    pub changes: Vec<(Duration, Change)>,
}

impl InstanceSpec {
    /// An instance with `workers` workers, no queue limit, full speed, present from the start.
    pub fn new(workers: u32) -> Self {
        InstanceSpec {
            workers,
            queue_limit: None,
            speed: 1.0,
            weight: 1,
            join_at: Duration::ZERO,
            warmup: Duration::ZERO,
            warmup_speed: 1.0,
            changes: Vec::new(),
        }
    }
}

/// A kind of request (a route) with its own service times.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestClass {
    /// Name, e.g. `/process`.
    pub name: String,
    /// Relative share of arrivals.
    pub share: f64,
    /// Mean size (service time on a speed-1 instance).
    pub mean: Duration,
    /// Distribution of sizes.
    pub distribution: Distribution,
    /// Priority (0 ordinary; higher for PA-LBIMM's VIP requests).
    pub priority: u8,
    /// Recorded sizes (seconds) to draw from uniformly instead of `distribution`; their mean
    /// is `mean`.
    pub empirical: Option<std::sync::Arc<[f64]>>,
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The pool.
    pub instances: Vec<InstanceSpec>,
    /// Request rate over time.
    pub profile: Profile,
    /// Simulated time in which requests arrive (after `warmup`).
    pub duration: Duration,
    /// Simulated time first, left out of the statistics (the queues start empty).
    pub warmup: Duration,
    /// Request classes (at least one).
    pub classes: Vec<RequestClass>,
    /// The balancing algorithm.
    pub algorithm: Algorithm,
    /// Slow start for instances that join, around the algorithm.
    pub slow_start: Option<foresight_balance::SlowStartConfig>,
    /// Seed of arrivals, classes, sizes and the balancer.
    pub seed: u64,
}

/// What happened.
#[derive(Debug)]
pub struct Outcome {
    /// Requests that arrived (after warm-up).
    pub arrived: u64,
    /// Requests completed (after warm-up).
    pub completed: u64,
    /// Requests refused because the chosen instance's queue was full, or no instance was up.
    pub dropped: u64,
    /// Requests lost in a crash.
    pub failed: u64,
    /// Response times (queueing + service), nanoseconds.
    pub response_ns: Histogram<u64>,
    /// Queueing delays (arrival to a worker: the response time less the request's own service),
    /// nanoseconds; a dropped request counts as the worst, 60 s.
    pub wait_ns: Histogram<u64>,
    /// Mean time waiting for a worker, seconds.
    pub mean_wait: f64,
    /// Batch-means standard error of `mean_wait` (30 batches), seconds.
    pub mean_wait_stderr: f64,
    /// Completed requests per instance.
    pub served: Vec<u64>,
    /// Busy worker-time per instance over workers × the time it was up (after warm-up).
    pub utilisation: Vec<f64>,
    /// Events processed.
    pub events: u64,
    /// Wall-clock time of the run.
    pub wall: Duration,
}

impl Outcome {
    /// A latency quantile in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.response_ns.value_at_quantile(q) as f64 / 1e6
    }

    /// A queueing-delay quantile in milliseconds (dropped requests at 60 s).
    pub fn wait_quantile_ms(&self, q: f64) -> f64 {
        self.wait_ns.value_at_quantile(q) as f64 / 1e6
    }

    /// Highest utilisation over the mean utilisation of instances that served (1 = even).
    pub fn imbalance(&self) -> f64 {
        let u: Vec<f64> = self
            .utilisation
            .iter()
            .copied()
            .filter(|u| *u > 0.0)
            .collect();
        if u.is_empty() {
            return 1.0;
        }
        let mean = u.iter().sum::<f64>() / u.len() as f64;
        u.iter().copied().fold(0.0, f64::max) / mean
    }
}

/// What a scaling controller sees at each tick.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolView {
    /// Simulated time since the start.
    pub now: Duration,
    /// Instances serving.
    pub ready: usize,
    /// Instances launched and not yet ready.
    pub starting: usize,
    /// Requests that arrived since the previous tick.
    pub arrivals: u64,
    /// Length of the period since the previous tick.
    pub period: Duration,
    /// Busy worker-time of the ready instances over their worker-time in the period (0–1).
    pub utilisation: f64,
    /// Requests waiting in the instances' queues now.
    pub queue: usize,
    /// Requests dropped (no instance, full queue) since the previous tick.
    pub dropped: u64,
}

/// Decides the pool size during a run (the scaling policy's seat in the simulator).
pub trait Controller {
    /// How often [`Controller::decide`] is called.
    fn interval(&self) -> Duration;
    /// The number of instances wanted (ready + starting) given what the pool shows now.
    fn decide(&mut self, view: &PoolView) -> usize;
    /// The load (requests per second) planned for at the provisioning lead by the last
    /// decision, if the controller forecasts. The simulator hands each ready instance its
    /// share (by the requests it completed since the last decision) for the `forecast-aware`
    /// balancer, as the live control loop does.
    fn planned_load(&self) -> Option<f64> {
        None
    }
}

/// Scaling during a run: new instances are copies of `template`, ready `provision_delay` after
/// launch; removed ones are drained (no new requests, held ones finish) and then stop.
pub struct Scaling<'a> {
    /// The instance launched on scale-out.
    pub template: InstanceSpec,
    /// Launch to ready.
    pub provision_delay: Duration,
    /// The policy.
    pub controller: &'a mut dyn Controller,
}

/// One controller tick, for plots.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Tick {
    /// Seconds since the start.
    pub t: f64,
    /// Arrival rate over the period (requests per second).
    pub rate: f64,
    /// Ready instances.
    pub ready: usize,
    /// Starting instances.
    pub starting: usize,
    /// What the controller asked for.
    pub desired: usize,
    /// Utilisation over the period.
    pub utilisation: f64,
    /// Mean response time of requests completed in the period (ms; 0 if none).
    pub mean_response_ms: f64,
}

/// What scaling did.
#[derive(Clone, Debug, Default)]
pub struct ScaleOutcome {
    /// Sum over instances of launch-to-stop time, in hours (what a cloud bills).
    pub instance_hours: f64,
    /// Launches plus removals.
    pub actions: u64,
    /// One entry per tick.
    pub ticks: Vec<Tick>,
}
