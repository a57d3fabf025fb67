//! # foresight-scale
//!
//! Scaling policies behind one trait, pure and time-injected, so the simulator and the live
//! control loop run the same objects: `static`, a faithful Kubernetes `hpa`, the paper's
//! `predictive` threshold policy, its `cost-optimal` sizing (M/M/c), `hybrid` (max of
//! predictive and a fast reactive floor; the HPA rule until a forecast exists), `reactive` (the
//! hybrid's floor alone, scaling in by the HPA rule at its target) and `oracle` (predictive on the true future; simulator only).
//!
//! Every decision goes through [`Governor`]: min/max replicas, a per-step change limit,
//! cooldowns, a scale-in stabilisation window, dry-run, and a log that says why.
//!
//! # Layout
//! - `lib.rs`: the `Policy` trait, `Observation`, `Recommendation`, `InstanceModel`,
//!   `instances_for` (sizing)
//! - `policies`: `Static`, `Hpa`, `Predictive`, `CostOptimal` and their defaults
//! - `governor`: `Governor`, `Limits`, the decision log, around any policy
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod governor;
mod policies;

pub use governor::{Decision, Governor, Limits, LogEntry};
pub use policies::{
    mmc_response_tail, CostOptimal, FastFloor, Hpa, HpaConfig, Hybrid, Predictive,
    PredictiveConfig, Reactive, Static,
};

/// What a policy knows at a decision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    /// Seconds since the start (any fixed origin).
    pub now: f64,
    /// Instances serving.
    pub ready: usize,
    /// Instances launched and not ready yet.
    pub starting: usize,
    /// Mean utilisation of the ready instances over the last period (0–1; the HPA's metric).
    pub utilisation: f64,
    /// Observed request rate over the last period (requests per second): every request that
    /// arrived, served or refused — the demand.
    pub rate: f64,
    /// Requests waiting for a worker across the pool now.
    pub queue: f64,
    /// Requests refused or dropped for lack of capacity over the last period.
    pub dropped: u64,
    /// Predicted request rate (requests per second) at future times, as (seconds ahead, rate),
    /// or `None` while no forecast is ready.
    pub forecast: Option<Vec<(f64, f64)>>,
    /// Whether the anomaly detector trusts the forecast now.
    pub trusted: bool,
}

/// How many instances are wanted, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Recommendation {
    /// Instances wanted (ready + starting).
    pub replicas: usize,
    /// Why, in words, with the numbers.
    pub reason: String,
}

/// A scaling policy: pure, time-injected.
pub trait Policy: Send {
    /// Name used in tables (`hpa`, `predictive`, ...).
    fn name(&self) -> String;
    /// The raw recommendation (limits and stabilisation are the [`Governor`]'s).
    fn recommend(&mut self, obs: &Observation) -> Recommendation;
}

/// Capacity of one instance, for sizing from a rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InstanceModel {
    /// Requests served at once.
    pub workers: u32,
    /// Mean service time, seconds.
    pub mean_service: f64,
}

impl InstanceModel {
    /// Requests per second one instance serves at 100% utilisation.
    pub fn capacity(&self) -> f64 {
        f64::from(self.workers) / self.mean_service
    }

    /// Instances that serve `rate` requests per second at `target` utilisation (at least one).
    pub fn instances_for(&self, rate: f64, target: f64) -> usize {
        instances_for(rate, self.capacity(), target)
    }
}

/// Utilisation a fixed fleet is sized for at its peak (`static` in the experiment and the
/// demo): the predictive policies' default target.
pub const STATIC_TARGET: f64 = 0.7;

/// Instances of `capacity` requests per second that serve `rate` at `target` utilisation:
/// `ceil(rate / (capacity × target))`, at least one. The one sizing rule of every policy,
/// static fleet and initial pool.
pub fn instances_for(rate: f64, capacity: f64, target: f64) -> usize {
    ((rate / (capacity * target)).ceil() as usize).max(1)
}

/// The highest predicted rate in `[from, to]` seconds ahead (the latest point before `from`
/// when no point falls inside).
pub fn peak_between(forecast: &[(f64, f64)], from: f64, to: f64) -> Option<f64> {
    let inside = forecast
        .iter()
        .filter(|(t, _)| *t >= from && *t <= to)
        .map(|(_, r)| *r)
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
    inside.or_else(|| {
        forecast
            .iter()
            .filter(|(t, _)| *t <= from)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .or_else(|| forecast.first())
            .map(|(_, r)| *r)
    })
}
