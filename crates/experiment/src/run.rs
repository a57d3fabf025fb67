//! One run: a job's autoscaler stepping the simulated pool over the replayed part, and what
//! it came to (latency, queueing, SLO attainment, instance-hours, its timeline).

use std::time::Duration;

use foresight_autoscale::{Autoscaler, Fitted, PolicySpec, Sample};
use foresight_balance::SlowStartConfig;
use foresight_core::dist::Distribution;
use foresight_scale::{HpaConfig, InstanceModel};
use foresight_sim::{Controller, InstanceSpec, PoolView, RequestClass, Scaling, Scenario, Tick};
use foresight_workload::Profile;
use serde::Serialize;

use crate::assemble::spec_for;
use crate::jobs::Job;
use crate::options::Options;

/// Workers per instance.
pub const WORKERS: u32 = 4;
/// Speed of a cold instance (`--cold-start`) relative to a warm one.
const COLD_SPEED: f64 = 0.5;
/// Most instances a run may need (static-peak's size bounds `--peak-rps`).
pub const MAX_INSTANCES: usize = 1000;
/// How often the autoscaler steps.
pub const TICK: Duration = Duration::from_secs(15);

/// What is replayed and how it is sized.
#[derive(Clone)]
pub struct Setup {
    /// Requests per minute of the replayed part, as in the trace.
    pub counts: Vec<f64>,
    /// Unix time of its first minute.
    pub start_time: i64,
    /// Requests per second the simulator sends per count of the trace.
    pub rps_per_count: f64,
    /// The rate of the busiest minute.
    pub peak_rps: f64,
    /// One instance's workers and mean service time.
    pub model: InstanceModel,
    /// The history before the replayed part (time, count) that warms the forecasters.
    pub warm: Vec<(i64, f64)>,
    /// The forecast's horizon in steps.
    pub horizon: usize,
    /// The tail band's share for the forecast-driven policies (`--tail-share`, or auto's
    /// choice).
    pub tail_share: f64,
    /// Minutes the forecast-driven policies may widen their plan by (`--widen`, or auto's
    /// choice).
    pub widen: usize,
}

/// What a run came to.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    /// The policy's name.
    pub name: String,
    /// Its knob.
    pub knob: f64,
    /// The planned quantile of the load at the lead (predictive policies).
    pub quantile: f64,
    /// Response-time percentiles.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Mean response time of the served requests.
    pub mean_ms: f64,
    /// Queueing delay (arrival to a worker; a dropped request counts as 60 s).
    pub queue_p50_ms: f64,
    /// Its 99th percentile.
    pub queue_p99_ms: f64,
    /// Its mean.
    pub queue_mean_ms: f64,
    /// Share of arrived requests answered within the objective.
    pub slo_attainment: f64,
    /// Requests refused by a full queue or for want of an instance.
    pub dropped: u64,
    /// Requests that arrived.
    pub arrived: u64,
    /// Instance-hours paid for.
    pub instance_hours: f64,
    /// Their cost.
    pub cost: f64,
    /// Launches and removals.
    pub scale_actions: u64,
    /// The pool at every tick.
    #[serde(skip)]
    pub ticks: Vec<Tick>,
    /// The planner's forecasts (time, planned rate).
    #[serde(skip)]
    pub forecasts: Vec<(f64, f64)>,
    /// A policy at its defaults.
    #[serde(skip)]
    pub default: bool,
    /// The governor's decisions, a line each.
    #[serde(skip)]
    pub decisions: Vec<String>,
}

/// The simulator's seat for the autoscaler: what the pool showed in, the count out.
struct SimController {
    autoscaler: Autoscaler,
    /// The planned load of the last step, for forecast-aware balancing.
    planned: Option<f64>,
}

impl Controller for SimController {
    fn interval(&self) -> Duration {
        TICK
    }

    fn decide(&mut self, view: &PoolView) -> usize {
        let step = self.autoscaler.step(&sample_of(view));
        self.planned = step.planned;
        step.decision.replicas
    }

    fn planned_load(&self) -> Option<f64> {
        self.planned
    }
}

/// The autoscaler's sample of what the simulated pool showed.
fn sample_of(view: &PoolView) -> Sample {
    Sample {
        now: view.now.as_secs_f64(),
        period: view.period.as_secs_f64(),
        arrivals: view.arrivals,
        utilisation: view.utilisation,
        queue: view.queue as f64,
        dropped: view.dropped,
        ready: view.ready,
        starting: view.starting,
    }
}

/// Runs `job` over `setup`'s replayed part, calling `progress` with the share of simulated
/// time done now and then.
pub fn run_job(
    job: &Job,
    a: &Options,
    setup: &Setup,
    fitted: &Fitted,
    progress: &mut dyn FnMut(f64),
) -> Result<RunResult, String> {
    let mut spec = InstanceSpec::new(WORKERS);
    spec.queue_limit = Some(100);
    spec.warmup = a.cold_start;
    spec.warmup_speed = COLD_SPEED;
    let initial = match job.kind {
        PolicySpec::Static => job.knob as usize,
        _ => setup.model.instances_for(
            setup.counts[0] * setup.rps_per_count,
            HpaConfig::default().target,
        ),
    };
    let scenario = Scenario {
        instances: vec![spec.clone(); initial],
        profile: Profile::trace(&setup.counts, setup.peak_rps, Duration::from_secs(60)),
        duration: Duration::from_secs(60 * setup.counts.len() as u64),
        warmup: Duration::ZERO,
        classes: vec![RequestClass {
            name: "/process".into(),
            share: 1.0,
            mean: Duration::from_secs_f64(setup.model.mean_service),
            distribution: Distribution::Exponential,
            priority: 0,
            empirical: None,
        }],
        algorithm: a.algorithm,
        slow_start: (!a.slow_start.is_zero()).then_some(SlowStartConfig {
            window: a.slow_start,
            aggression: 1.0,
            min_weight_percent: 10.0,
        }),
        seed: a.seed,
    };
    let mut controller = SimController {
        autoscaler: spec_for(job, a, setup, fitted)
            .build()?
            .autoscaler
            .recording(),
        planned: None,
    };
    let mut scaling = Scaling {
        template: spec,
        provision_delay: a.provision_delay,
        controller: &mut controller,
    };
    let (o, so) =
        foresight_sim::run_scaled(&scenario, &mut scaling, progress).map_err(|e| e.to_string())?;
    let slo_ns = (a.slo_ms * 1e6) as u64;
    let within = o.response_ns.count_between(0, slo_ns);
    Ok(RunResult {
        name: job.name.clone(),
        knob: job.knob,
        quantile: job.quantile.unwrap_or(a.quantile),
        p50_ms: o.quantile_ms(0.5),
        p95_ms: o.quantile_ms(0.95),
        p99_ms: o.quantile_ms(0.99),
        p999_ms: o.quantile_ms(0.999),
        mean_ms: o.response_ns.mean() / 1e6,
        queue_p50_ms: o.wait_quantile_ms(0.5),
        queue_p99_ms: o.wait_quantile_ms(0.99),
        queue_mean_ms: o.wait_ns.mean() / 1e6,
        slo_attainment: within as f64 / o.arrived.max(1) as f64,
        dropped: o.dropped,
        arrived: o.arrived,
        instance_hours: so.instance_hours,
        cost: so.instance_hours * a.cost_per_hour,
        scale_actions: so.actions,
        ticks: so.ticks,
        decisions: controller
            .autoscaler
            .governor()
            .log()
            .iter()
            .map(|e| {
                format!(
                    "{:>9.0} s  {:>3} -> {:<3} {}",
                    e.now, e.from, e.to, e.reason
                )
            })
            .collect(),
        forecasts: controller
            .autoscaler
            .planner()
            .map(|p| p.recorded().to_vec())
            .unwrap_or_default(),
        default: job.default,
    })
}
