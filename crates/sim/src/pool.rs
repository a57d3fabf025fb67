//! The simulated instances: each one's state (workers, queue, speed, membership, cost), the
//! in-flight counts the balancer reads, and the balancer's endpoints for them.

use std::collections::VecDeque;

use foresight_balance::{Endpoint, EwmaParams, SlowStartConfig};
use foresight_core::rng::mix64;
use foresight_core::Time;

use crate::InstanceSpec;

/// One simulated instance. The fields an arrival or a completion touches come first and share
/// two cache lines (`repr(C)` keeps that order, `align(64)` keeps them on line boundaries): a
/// pool of 100 instances then stays in the first-level cache next to the event list, where
/// the per-request misses were a tenth of the simulator's time.
#[repr(C, align(64))]
pub(crate) struct Instance {
    pub(crate) busy: u32,
    /// Bumped by a crash, so completions scheduled before it are ignored.
    pub(crate) epoch: u32,
    /// `spec.workers`, and `spec.queue_limit` with `u32::MAX` for unbounded.
    pub(crate) workers: u32,
    pub(crate) queue_limit: u32,
    /// Its position in the balancer's endpoints (and `InFlight::counts`); `u32::MAX` when
    /// it is not among them.
    pub(crate) slot: u32,
    pub(crate) up: bool,
    /// Out of the balancer's set, finishing what it holds.
    pub(crate) draining: bool,
    /// Scaled in before it became ready: its join is ignored.
    pub(crate) cancelled: bool,
    /// `spec.speed` divided by the current slow-down factor.
    pub(crate) speed: f64,
    /// `spec.warmup` and `spec.join_at` in ns, converted once; `spec.warmup_speed`.
    pub(crate) warm_ns: f64,
    pub(crate) join_ns: u64,
    pub(crate) warmup_speed: f64,
    /// (arrival time, size in ns at speed 1, counted in statistics)
    pub(crate) queue: VecDeque<(u64, u64, bool)>,
    /// All service time started, for the controller's utilisation.
    pub(crate) work_ns: u128,
    pub(crate) busy_ns: u128,
    // Cold: membership changes and the final report.
    pub(crate) spec: Box<InstanceSpec>,
    /// Launch time (cost starts), removal time (cost stops).
    pub(crate) launched_at: u64,
    pub(crate) stopped_at: Option<u64>,
    pub(crate) up_since: Option<u64>,
    pub(crate) up_ns: u128,
}

impl Instance {
    /// Effective speed at `now` (ns).
    #[inline]
    pub(crate) fn speed_at(&self, now: u64) -> f64 {
        let mut s = self.speed;
        let warm = self.warm_ns;
        if warm > 0.0 {
            let since = now.saturating_sub(self.join_ns) as f64;
            let f = (since / warm).min(1.0);
            s *= self.warmup_speed + (1.0 - self.warmup_speed) * f;
        }
        s.max(1e-9)
    }

    /// Requests it holds: in service and queued (what its `Load` shows as in flight).
    #[inline]
    pub(crate) fn held(&self) -> u32 {
        self.busy + self.queue.len() as u32
    }

    /// A worker starts a request of `size` (ns at speed 1) at `now`; returns when it finishes.
    #[inline]
    pub(crate) fn start(&mut self, now: u64, size: u64, stats_from: u64) -> u64 {
        self.busy += 1;
        let service = (size as f64 / self.speed_at(now)) as u64;
        self.work_ns += u128::from(service);
        if now >= stats_from {
            self.busy_ns += u128::from(service);
        }
        now + service
    }
}

/// Every instance's in-flight count, kept in two places: its shared [`Load`], which any
/// algorithm may read, and one array in the balancer's endpoint order for
/// [`Balancer::pick_with_counts`] (least-connections scans it instead of one `Load` per
/// instance behind its own pointer). The simulator is the only writer of both.
///
/// [`Load`]: foresight_balance::Load
#[derive(Default)]
pub(crate) struct InFlight {
    /// In the order of the balancer's endpoints (the active instances).
    pub(crate) counts: Vec<u32>,
}

impl InFlight {
    /// Publishes what `inst` holds now.
    #[inline]
    pub(crate) fn set(&mut self, inst: &Instance, endpoint: &Endpoint) {
        let n = inst.held();
        endpoint.load.set_in_flight(n);
        if let Some(c) = self.counts.get_mut(inst.slot as usize) {
            *c = n;
        }
    }

    /// Whether the array agrees with the loads (a debug check).
    pub(crate) fn matches(&self, endpoints: &[Endpoint]) -> bool {
        self.counts.len() == endpoints.len()
            && (self.counts.iter())
                .zip(endpoints)
                .all(|(&c, e)| c == e.load.in_flight())
    }

    /// After the active set changed.
    pub(crate) fn rebuild(
        &mut self,
        active: &[usize],
        instances: &mut [Instance],
        all: &[Endpoint],
    ) {
        for inst in instances.iter_mut() {
            inst.slot = u32::MAX;
        }
        self.counts.clear();
        for (k, &i) in active.iter().enumerate() {
            instances[i].slot = k as u32;
            self.counts.push(all[i].load.in_flight());
        }
    }
}

pub(crate) fn new_instance(spec: &InstanceSpec, launched_at: u64) -> Instance {
    Instance {
        busy: 0,
        epoch: 0,
        workers: spec.workers,
        queue_limit: spec.queue_limit.unwrap_or(u32::MAX),
        slot: u32::MAX,
        up: false,
        draining: false,
        cancelled: false,
        speed: spec.speed,
        warm_ns: spec.warmup.as_secs_f64() * 1e9,
        join_ns: spec.join_at.as_nanos() as u64,
        warmup_speed: spec.warmup_speed,
        queue: VecDeque::new(),
        work_ns: 0,
        busy_ns: 0,
        spec: Box::new(spec.clone()),
        launched_at,
        stopped_at: None,
        up_since: None,
        up_ns: 0,
    }
}

/// The balancer's view of instance `i`, created when it joins (slow start counts from then).
pub(crate) fn new_endpoint(i: usize, spec: &InstanceSpec) -> Endpoint {
    let mut e = Endpoint::new(
        mix64(i as u64 + 1),
        spec.weight,
        EwmaParams::default(),
        Time::from_nanos(spec.join_at.as_nanos() as u64),
    );
    e.capacity = spec.workers;
    e
}

/// Sets each ready instance's forecast for `forecast-aware`: the planned load split by
/// effective capacity ([`foresight_balance::split_planned_load`]), each instance's full-speed
/// capacity times its slow-start factor at `now` (the live loop's rule).
pub(crate) fn share_forecast(
    planned: f64,
    active: &[usize],
    instances: &[Instance],
    all: &[Endpoint],
    slow_start: Option<SlowStartConfig>,
    now: u64,
    mean_size: f64,
) {
    let now = Time::from_nanos(now);
    let members: Vec<(f64, f64)> = active
        .iter()
        .map(|&j| {
            let spec = &instances[j].spec;
            let capacity = f64::from(spec.workers) * spec.speed / mean_size.max(1e-12);
            let factor = slow_start.map_or(1.0, |s| s.factor(all[j].load.created(), now));
            (capacity, factor)
        })
        .collect();
    let split = foresight_balance::split_planned_load(planned, &members);
    for (&j, (predicted, capacity)) in active.iter().zip(split) {
        all[j].load.set_forecast(predicted, capacity);
    }
}
