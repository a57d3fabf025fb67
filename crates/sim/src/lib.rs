//! # foresight-sim
//!
//! A discrete-event simulator of a pool of instances behind a balancer, on a virtual clock.
//!
//! It drives the **same** [`foresight_balance::Balancer`] objects and [`foresight_balance::Load`]
//! trackers as the proxy: a request is placed with `pick(endpoints, request, now)`, counted with
//! `Load::begin`, and on completion `Load::end` and `Load::observe(rtt, now)` are called, exactly
//! as the proxy does around a real exchange (`observe` only for algorithms that read the
//! latency estimate, see `Balancer::uses_latency`). Time is `foresight_core::Time` counted in virtual
//! nanoseconds, so a run is deterministic for a seed and independent of the machine.
//!
//! Model: each instance has `workers` servers and a FIFO queue (bounded or not; a full queue
//! drops the request, like the example backend's 503). Requests arrive as a Poisson process
//! whose rate follows a [`foresight_workload::Profile`] (thinning). Each request has a class
//! (route) drawn by share, and a *size* (its service time on a speed-1 instance) drawn from the
//! class's distribution; both come from streams of their own, so every algorithm sees the same
//! arrivals, classes and sizes. An instance of effective speed `s` serves size `x` in `x / s`;
//! the effective speed includes a slow-down event and the warm-up after joining (speed rises
//! linearly from `warmup_speed` to full over `warmup`). A crash fails the requests the
//! instance holds and takes it out of the balancer's set; an instance joining late enters it.
//! Membership changes rebuild the balancer, as the proxy's snapshots do.
//!
//! # Layout
//! - `lib.rs`: the event loop ([`run`], [`run_scaled`]) and its bookkeeping
//! - `model`: the scenario a run is given and the outcome it returns
//! - `pool`: the simulated instances, their in-flight counts and their endpoints
//! - `arrivals`: a trace's arrival times, drawn per piece
//! - `events`: the future event list and the waiting-time statistics; `calendar`: the
//!   calendar queue under it
//! - [`mod@file`]: scenario files; [`erlang`]: the M/M/c reference the tests check against
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod erlang;
pub mod file;

mod arrivals;
mod calendar;
mod events;
mod model;
mod pool;

pub use model::*;

use events::{Event, Queue, Waits};
use pool::{new_endpoint, new_instance, share_forecast, InFlight, Instance};

use std::time::{Duration, Instant};

use foresight_balance::{build, Balancer, BalancerConfig, Endpoint, EwmaParams, RequestInfo};
use foresight_core::dist::Sampler;
use foresight_core::rng::mix64;
use foresight_core::Time;
use foresight_workload::Profile;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::Exp1;

/// How long batch heuristics hold arrivals before assigning them together.
pub const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// A batch is assigned at once when it reaches this many requests.
pub const MAX_BATCH: usize = 64;

/// Puts a request on instance `i`: into service, into its queue, or refused when the queue is
/// full. `arrived_at` is when the request arrived (latency counts from then).
#[allow(clippy::too_many_arguments)]
fn dispatch(
    inst: &mut Instance,
    endpoint: &Endpoint,
    in_flight: &mut InFlight,
    i: usize,
    queue: &mut Queue,
    now: u64,
    arrived_at: u64,
    size: u64,
    counted: bool,
    stats_from: u64,
    waits: &mut Waits,
    dropped: &mut u64,
) {
    if inst.busy < inst.workers {
        let done = inst.start(now, size, stats_from);
        in_flight.set(inst, endpoint);
        queue.push(done, Event::Completion(i, arrived_at, counted, inst.epoch));
        if counted {
            waits.add_ns(now - arrived_at);
        }
    } else if (inst.queue.len() as u32) < inst.queue_limit {
        inst.queue.push_back((arrived_at, size, counted));
        in_flight.set(inst, endpoint);
    } else {
        *dropped += u64::from(counted);
    }
}

/// Assigns the held batch with the balancer's batch heuristic and dispatches it.
#[allow(clippy::too_many_arguments)]
fn flush(
    pending: &mut Vec<(RequestInfo, u64, u64, bool)>,
    infos: &mut Vec<RequestInfo>,
    balancer: &dyn Balancer,
    endpoints: &[Endpoint],
    active: &[usize],
    instances: &mut [Instance],
    all: &[Endpoint],
    in_flight: &mut InFlight,
    queue: &mut Queue,
    now: u64,
    stats_from: u64,
    waits: &mut Waits,
    dropped: &mut u64,
) {
    if pending.is_empty() {
        return;
    }
    infos.clear();
    infos.extend(pending.iter().map(|p| p.0));
    let t = Time::from_nanos(now);
    let assigned = balancer
        .assign_batch(endpoints, infos, t)
        .unwrap_or_else(|| {
            infos
                .iter()
                .filter_map(|r| balancer.pick(endpoints, r, t))
                .collect()
        });
    for (k, (_, arrived_at, size, counted)) in pending.drain(..).enumerate() {
        match assigned.get(k).and_then(|j| active.get(*j)) {
            Some(&i) => dispatch(
                &mut instances[i],
                &all[i],
                in_flight,
                i,
                queue,
                now,
                arrived_at,
                size,
                counted,
                stats_from,
                waits,
                dropped,
            ),
            None => *dropped += u64::from(counted),
        }
    }
}
const JOIN: usize = usize::MAX;

/// Why a scenario cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScenarioError {
    /// Something about the scenario is not runnable.
    #[error("{0}")]
    Invalid(String),
}

/// Runs a scenario to the end.
pub fn run(s: &Scenario) -> Result<Outcome, ScenarioError> {
    run_with_progress(s, &mut |_| {})
}

/// Runs a scenario, calling `progress` with the fraction of simulated time done now and then.
pub fn run_with_progress(
    s: &Scenario,
    progress: &mut dyn FnMut(f64),
) -> Result<Outcome, ScenarioError> {
    run_inner(s, None, progress).map(|(o, _)| o)
}

/// Runs a scenario with a scaling controller; the scenario's instances are the starting pool.
pub fn run_scaled(
    s: &Scenario,
    scaling: &mut Scaling<'_>,
    progress: &mut dyn FnMut(f64),
) -> Result<(Outcome, ScaleOutcome), ScenarioError> {
    if scaling.controller.interval().is_zero() {
        return Err(ScenarioError::Invalid(
            "the controller interval must be positive".into(),
        ));
    }
    run_inner(s, Some(scaling), progress).map(|(o, so)| (o, so.unwrap_or_default()))
}

fn run_inner(
    s: &Scenario,
    mut scaling: Option<&mut Scaling<'_>>,
    progress: &mut dyn FnMut(f64),
) -> Result<(Outcome, Option<ScaleOutcome>), ScenarioError> {
    if s.instances.is_empty() {
        return Err(ScenarioError::Invalid("the pool has no instances".into()));
    }
    if s.classes.is_empty() || s.classes.iter().all(|c| c.share <= 0.0) {
        return Err(ScenarioError::Invalid(
            "no request class with a positive share".into(),
        ));
    }
    let max_rate = s.profile.max_rate();
    if !(max_rate.is_finite() && max_rate > 0.0) {
        return Err(ScenarioError::Invalid(
            "the arrival profile never sends anything".into(),
        ));
    }
    let started = Instant::now();
    let stats_from = s.warmup.as_nanos() as u64;
    let end = stats_from + s.duration.as_nanos() as u64;
    let mut all: Vec<Endpoint> = s
        .instances
        .iter()
        .enumerate()
        .map(|(i, spec)| new_endpoint(i, spec))
        .collect();
    let config = BalancerConfig {
        algorithm: s.algorithm,
        seed: s.seed,
        slow_start: s.slow_start,
    };
    let mut instances: Vec<Instance> = s
        .instances
        .iter()
        .map(|spec| new_instance(spec, 0))
        .collect();
    let mut queue = Queue::new();
    for (i, spec) in s.instances.iter().enumerate() {
        queue.push(spec.join_at.as_nanos() as u64, Event::Instance(i, JOIN));
        for (k, (at, _)) in spec.changes.iter().enumerate() {
            queue.push(at.as_nanos() as u64, Event::Instance(i, k));
        }
    }
    // The balancer's view: instances that are up, in index order.
    let mut active: Vec<usize> = Vec::new();
    let mut endpoints: Vec<Endpoint> = Vec::new();
    let mut balancer = build(&config, &endpoints);
    let mut in_flight = InFlight::default();
    // Rebuilds keep the algorithm, so this holds for the whole run.
    let observe_latency = balancer.uses_latency();

    let mut arrivals_rng = SmallRng::seed_from_u64(mix64(s.seed ^ 0xA11));
    let mut sizes_rng = SmallRng::seed_from_u64(mix64(s.seed ^ 0x517E));
    let total_share: f64 = s.classes.iter().map(|c| c.share.max(0.0)).sum();
    let mean_size = s
        .classes
        .iter()
        .map(|c| c.share.max(0.0) * c.mean.as_secs_f64())
        .sum::<f64>()
        / total_share;
    // Each class's cost relative to the mean request, worked out once (two divisions on
    // every arrival's path otherwise).
    let costs: Vec<f64> = (s.classes.iter())
        .map(|c| c.mean.as_secs_f64() / mean_size)
        .collect();
    let batching = s.algorithm.is_batch();
    let mut pending: Vec<(RequestInfo, u64, u64, bool)> = Vec::new();
    let mut batch_infos: Vec<RequestInfo> = Vec::new();
    let mean_gap_ns = 1e9 / max_rate;
    let expected =
        (s.profile.rate_at(Duration::ZERO).max(max_rate / 2.0) * s.duration.as_secs_f64()) as u64;
    let mut waits = Waits::new(expected);
    let mut response_ns = Histogram::<u64>::new(3).expect("3 significant digits is valid");
    let mut served = vec![0u64; instances.len()];
    let (mut arrived, mut dropped, mut failed, mut completed, mut events) = (0u64, 0, 0, 0, 0u64);
    let mut now = 0u64;
    // Scaling bookkeeping.
    let mut scale_out = ScaleOutcome::default();
    let mut tick_arrivals = 0u64;
    let mut dropped_at_tick = 0u64;
    let mut last_tick = 0u64;
    let mut last_work: Vec<u128> = Vec::new();
    let (mut tick_done, mut tick_resp_ns) = (0u64, 0u128);
    if let Some(sc) = &scaling {
        queue.push(sc.controller.interval().as_nanos() as u64, Event::Control);
    }

    let constant_rate = matches!(s.profile, Profile::Constant { .. });
    // A trace's arrivals are drawn per minute; the other profiles' by thinning.
    let mut pieces = match &s.profile {
        Profile::Trace { rates, minute } => {
            Some(arrivals::Pieces::new(rates, minute.as_nanos() as u64))
        }
        _ => None,
    };
    let single_class = s.classes.len() == 1;
    let samplers: Vec<Sampler> = (s.classes.iter())
        .map(|c| c.distribution.sampler(c.mean.as_secs_f64()))
        .collect();
    // The next arrival is kept out of the heap (half the heap traffic per request); at equal
    // times queued events go first.
    let mut next_arrival: Option<u64> = match &mut pieces {
        Some(p) => p.next(0, end, &mut arrivals_rng),
        None => {
            let first = (mean_gap_ns * arrivals_rng.sample::<f64, _>(Exp1)) as u64;
            (first < end).then_some(first)
        }
    };
    loop {
        // Arrivals are handled on their own branch rather than as a variant of the event
        // match: which of the two comes next is a coin toss, and it costs one mispredicted
        // branch here instead of also a mispredicted jump through the match's table.
        let arrival = match (next_arrival, queue.peek_time()) {
            (Some(a), Some(q)) => a < q,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        events += 1;
        if arrival {
            now = next_arrival.take().unwrap_or(now);
            if events & 0xFFFF == 0 {
                progress((now as f64 / end.max(1) as f64).min(1.0));
            }
            if let Some(p) = &mut pieces {
                next_arrival = p.next(now, end, &mut arrivals_rng);
            } else {
                // Next candidate arrival (thinning: accepted with probability rate(t) / max).
                let gap = mean_gap_ns * arrivals_rng.sample::<f64, _>(Exp1);
                let next = now + gap as u64;
                if next < end {
                    next_arrival = Some(next);
                }
            }
            if !constant_rate && pieces.is_none() {
                let rate = s.profile.rate_at(Duration::from_nanos(now));
                if arrivals_rng.random::<f64>() * max_rate >= rate {
                    continue;
                }
            }
            let counted = now >= stats_from;
            arrived += u64::from(counted);
            tick_arrivals += 1;
            let c = if single_class {
                0
            } else {
                let mut pick = sizes_rng.random::<f64>() * total_share;
                s.classes
                    .iter()
                    .position(|c| {
                        pick -= c.share.max(0.0);
                        pick < 0.0
                    })
                    .unwrap_or(0)
            };
            let class: &RequestClass = &s.classes[c];
            let secs = match &class.empirical {
                Some(samples) => samples[sizes_rng.random_range(0..samples.len())],
                None => samplers[c].sample_secs(&mut sizes_rng),
            };
            let size = (secs * 1e9) as u64;
            let info = RequestInfo {
                hash_key: None,
                cost: costs[c],
                priority: class.priority,
            };
            if batching {
                if pending.is_empty() {
                    queue.push(now + BATCH_WINDOW.as_nanos() as u64, Event::Flush);
                }
                pending.push((info, now, size, counted));
                if pending.len() >= MAX_BATCH {
                    // A full batch goes now; a flush already scheduled finds it empty.
                    queue.push(now, Event::Flush);
                }
                continue;
            }
            debug_assert!(
                events % 64 != 0 || in_flight.matches(&endpoints),
                "the in-flight array drifted from the instances' loads"
            );
            let Some(k) = balancer.pick_with_counts(
                &endpoints,
                &in_flight.counts,
                &info,
                Time::from_nanos(now),
            ) else {
                dropped += u64::from(counted);
                continue;
            };
            let i = active[k];
            dispatch(
                &mut instances[i],
                &all[i],
                &mut in_flight,
                i,
                &mut queue,
                now,
                now,
                size,
                counted,
                stats_from,
                &mut waits,
                &mut dropped,
            );
            continue;
        }
        let Some((t, event)) = queue.pop() else {
            break;
        };
        now = t;
        if events & 0xFFFF == 0 {
            progress((now as f64 / end.max(1) as f64).min(1.0));
        }
        match event {
            Event::Flush => {
                flush(
                    &mut pending,
                    &mut batch_infos,
                    &*balancer,
                    &endpoints,
                    &active,
                    &mut instances,
                    &all,
                    &mut in_flight,
                    &mut queue,
                    now,
                    stats_from,
                    &mut waits,
                    &mut dropped,
                );
            }
            Event::Completion(i, arrived_at, counted, epoch) => {
                let inst = &mut instances[i];
                if epoch != inst.epoch {
                    continue; // lost in a crash, already counted
                }
                let rtt = now - arrived_at;
                tick_done += 1;
                tick_resp_ns += u128::from(rtt);
                if observe_latency {
                    all[i]
                        .load
                        .observe(Duration::from_nanos(rtt), Time::from_nanos(now));
                }
                if counted {
                    completed += 1;
                    served[i] += 1;
                    let _ = response_ns.record(rtt.max(1));
                }
                inst.busy -= 1;
                in_flight.set(inst, &all[i]);
                if let Some((queued_at, size, was_counted)) = inst.queue.pop_front() {
                    let done = inst.start(now, size, stats_from);
                    queue.push(
                        done,
                        Event::Completion(i, queued_at, was_counted, inst.epoch),
                    );
                    if was_counted {
                        waits.add_ns(now - queued_at);
                    }
                } else if inst.draining && inst.busy == 0 {
                    // Drained: it stops, and stops costing.
                    inst.draining = false;
                    inst.up = false;
                    inst.stopped_at = Some(now);
                    if let Some(since) = inst.up_since.take() {
                        inst.up_ns += u128::from(now - since.max(stats_from).min(now));
                    }
                }
            }
            Event::Control => {
                let Some(sc) = scaling.as_deref_mut() else {
                    continue;
                };
                let period = now - last_tick;
                last_work.resize(instances.len(), 0);
                let (mut work, mut capacity) = (0u128, 0u128);
                for (j, inst) in instances.iter().enumerate() {
                    if inst.up && !inst.draining {
                        work += inst.work_ns - last_work[j];
                        capacity += u128::from(period) * u128::from(inst.spec.workers);
                    }
                    last_work[j] = inst.work_ns;
                }
                let ready = active.len();
                let starting = instances
                    .iter()
                    .filter(|i| !i.up && !i.cancelled && i.stopped_at.is_none())
                    .count();
                let waiting: usize = active.iter().map(|&j| instances[j].queue.len()).sum();
                let view = PoolView {
                    now: Duration::from_nanos(now),
                    ready,
                    starting,
                    queue: waiting,
                    dropped: dropped - dropped_at_tick,
                    arrivals: tick_arrivals,
                    period: Duration::from_nanos(period),
                    utilisation: if capacity == 0 {
                        0.0
                    } else {
                        (work as f64 / capacity as f64).min(1.0)
                    },
                };
                let desired = sc.controller.decide(&view).max(1);
                if let Some(planned) = sc.controller.planned_load() {
                    share_forecast(
                        planned,
                        &active,
                        &instances,
                        &all,
                        config.slow_start,
                        now,
                        mean_size,
                    );
                }
                scale_out.ticks.push(Tick {
                    t: now as f64 / 1e9,
                    rate: tick_arrivals as f64 / (period.max(1) as f64 / 1e9),
                    ready,
                    starting,
                    desired,
                    utilisation: view.utilisation,
                    mean_response_ms: if tick_done == 0 {
                        0.0
                    } else {
                        tick_resp_ns as f64 / tick_done as f64 / 1e6
                    },
                });
                tick_arrivals = 0;
                dropped_at_tick = dropped;
                tick_done = 0;
                tick_resp_ns = 0;
                last_tick = now;
                let current = ready + starting;
                let mut membership_changed = false;
                if desired > current {
                    for _ in current..desired {
                        let i = instances.len();
                        let mut spec = sc.template.clone();
                        spec.join_at = Duration::from_nanos(now) + sc.provision_delay;
                        spec.changes.clear();
                        instances.push(new_instance(&spec, now));
                        all.push(new_endpoint(i, &spec));
                        served.push(0);
                        queue.push(spec.join_at.as_nanos() as u64, Event::Instance(i, JOIN));
                        scale_out.actions += 1;
                    }
                } else if desired < current {
                    let mut remove = current - desired;
                    // Newest first: cancel launches, then drain ready instances.
                    for j in (0..instances.len()).rev() {
                        if remove == 0 {
                            break;
                        }
                        let inst = &mut instances[j];
                        if !inst.up && !inst.cancelled && inst.stopped_at.is_none() {
                            inst.cancelled = true;
                            inst.stopped_at = Some(now);
                            remove -= 1;
                            scale_out.actions += 1;
                        }
                    }
                    for j in (0..instances.len()).rev() {
                        if remove == 0 {
                            break;
                        }
                        let inst = &mut instances[j];
                        if inst.up && !inst.draining {
                            inst.draining = true;
                            membership_changed = true;
                            remove -= 1;
                            scale_out.actions += 1;
                            if inst.busy == 0 {
                                inst.draining = false;
                                inst.up = false;
                                inst.stopped_at = Some(now);
                                if let Some(since) = inst.up_since.take() {
                                    inst.up_ns += u128::from(now - since.max(stats_from).min(now));
                                }
                            }
                        }
                    }
                }
                if membership_changed {
                    active = (0..instances.len())
                        .filter(|j| instances[*j].up && !instances[*j].draining)
                        .collect();
                    endpoints = active.iter().map(|j| all[*j].clone()).collect();
                    balancer = build(&config, &endpoints);
                    in_flight.rebuild(&active, &mut instances, &all);
                }
                if now + (sc.controller.interval().as_nanos() as u64) < end {
                    queue.push(
                        now + sc.controller.interval().as_nanos() as u64,
                        Event::Control,
                    );
                }
            }
            Event::Instance(i, which) => {
                let inst = &mut instances[i];
                let membership_changed = if which == JOIN {
                    if inst.cancelled {
                        continue;
                    }
                    let joined = !inst.up;
                    inst.up = true;
                    inst.up_since = Some(now);
                    if joined && now > 0 {
                        // A fresh tracker, born now: slow start and peak-EWMA see a new instance.
                        let old = &all[i];
                        let mut fresh = Endpoint::new(
                            old.key,
                            old.weight,
                            EwmaParams::default(),
                            Time::from_nanos(now),
                        );
                        fresh.capacity = old.capacity;
                        all[i] = fresh;
                    }
                    joined
                } else {
                    match &inst.spec.changes[which].1 {
                        Change::Slowdown(f) => {
                            inst.speed = inst.spec.speed / f.max(1e-9);
                            false
                        }
                        Change::Crash => {
                            // Requests in service and in the queue are lost.
                            let counted_lost = inst.queue.iter().filter(|q| q.2).count() as u64
                                + if now >= stats_from {
                                    u64::from(inst.busy)
                                } else {
                                    0
                                };
                            failed += counted_lost;
                            inst.queue.clear();
                            inst.busy = 0;
                            in_flight.set(inst, &all[i]);
                            inst.epoch += 1;
                            let was_up = inst.up;
                            inst.up = false;
                            if let Some(since) = inst.up_since.take() {
                                inst.up_ns += u128::from(now - since.max(stats_from).min(now));
                            }
                            was_up
                        }
                    }
                };
                if membership_changed {
                    active = (0..instances.len())
                        .filter(|j| instances[*j].up && !instances[*j].draining)
                        .collect();
                    endpoints = active.iter().map(|j| all[*j].clone()).collect();
                    balancer = build(&config, &endpoints);
                    in_flight.rebuild(&active, &mut instances, &all);
                }
            }
        }
    }
    progress(1.0);
    let (mean_wait, mean_wait_stderr) = waits.means.result();
    let wait_ns = waits.histogram(dropped);
    let finish = now.max(end);
    scale_out.instance_hours = instances
        .iter()
        .map(|i| {
            // Billed from launch to stop, or to the end of the arrivals.
            let stop = i.stopped_at.unwrap_or(end).min(end);
            stop.saturating_sub(i.launched_at) as f64 / 3.6e12
        })
        .sum();
    let outcome = Outcome {
        arrived,
        completed,
        dropped,
        failed,
        response_ns,
        wait_ns,
        mean_wait,
        mean_wait_stderr,
        served,
        utilisation: instances
            .iter()
            .map(|inst| {
                let mut up = inst.up_ns;
                if let Some(since) = inst.up_since {
                    up += u128::from(finish - since.max(stats_from).min(finish));
                }
                if up == 0 {
                    0.0
                } else {
                    inst.busy_ns as f64 / (up as f64 * f64::from(inst.spec.workers))
                }
            })
            .collect(),
        events,
        wall: started.elapsed(),
    };
    Ok((outcome, scaling.map(|_| scale_out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_planned_load_is_split_by_effective_capacity() {
        let spec = InstanceSpec::new(4);
        let mut late = spec.clone();
        late.join_at = Duration::from_secs(120);
        let instances: Vec<Instance> = (0..3).map(|_| new_instance(&spec, 0)).collect();
        let all = vec![
            new_endpoint(0, &spec),
            new_endpoint(1, &spec),
            new_endpoint(2, &late),
        ];
        let active = [0, 2]; // instance 1 is gone
                             // Without slow start: equal shares; capacity = 4 workers / 0.2 s = 20 req/s.
        share_forecast(60.0, &active, &instances, &all, None, 150_000_000_000, 0.2);
        assert_eq!(all[0].load.forecast(), Some((30.0, 20.0)));
        assert_eq!(all[2].load.forecast(), Some((30.0, 20.0)));
        assert_eq!(all[1].load.forecast(), None);
        // With a 2-minute linear slow start, instance 2 joined 30 s ago: a quarter of its
        // capacity, a fifth of the plan.
        let slow = foresight_balance::SlowStartConfig {
            window: Duration::from_secs(120),
            aggression: 1.0,
            min_weight_percent: 10.0,
        };
        share_forecast(
            60.0,
            &active,
            &instances,
            &all,
            Some(slow),
            150_000_000_000,
            0.2,
        );
        assert_eq!(all[0].load.forecast(), Some((48.0, 20.0)));
        assert_eq!(all[2].load.forecast(), Some((12.0, 5.0)));
    }
}
