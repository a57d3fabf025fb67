//! `foresight experiment`: static, reactive and predictive scaling on the same replayed trace,
//! in the simulator, at their defaults and along each policy's cost–quality frontier.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use clap::Args;
use foresight_autoscale::{
    Autoscaler, AutoscalerSpec, Fitted, ForecasterSpec, ModelSource, Planning, PolicyParams,
    PolicySpec, Sample, Settings, StepClock, FLOOR_TARGET,
};
use foresight_balance::{Algorithm, SlowStartConfig};
use foresight_core::dist::Distribution;
use foresight_forecast::pipeline::Dataset;
use foresight_forecast::{ForecastConfig, Series};
use foresight_scale::{
    instances_for, HpaConfig, InstanceModel, Limits, PredictiveConfig, STATIC_TARGET,
};
use foresight_sim::{Controller, InstanceSpec, PoolView, RequestClass, Scaling, Scenario, Tick};
use foresight_workload::Profile;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::{failure, usage_error};

mod assemble;
mod parts;
mod report;
mod schedule;
mod suite;
mod tail_choice;
use assemble::{planning, spec_for};
use parts::{history_before, stretch};
use report::report;
use tail_choice::{TailChoice, TailShare, Widen};

#[derive(Args)]
pub struct ExperimentArgs {
    /// Trace CSV (`minute,count`); its test part (the last 15%) is replayed.
    #[arg(long, required_unless_present = "suite", conflicts_with = "suite")]
    trace: Option<PathBuf>,
    /// Instead of one trace: every `*.csv` of this directory (`foresight generate suite`),
    /// each run as `--trace` would be, reported per workload and in aggregate.
    #[arg(long)]
    suite: Option<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write plots (timeline.svg, frontiers.svg; with `--suite`, suite.svg) into this
    /// directory.
    #[arg(long)]
    plots: Option<PathBuf>,
    /// Request rate of the trace's busiest test minute [default: what about 20 instances
    /// serve at 70% utilisation].
    #[arg(long)]
    peak_rps: Option<f64>,
    /// Launch-to-ready time of a new instance.
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    provision_delay: Duration,
    /// Response-time objective.
    #[arg(long, default_value_t = 1000.0)]
    slo_ms: f64,
    /// Share of requests that must meet the objective.
    #[arg(long, default_value_t = 0.99)]
    slo_goal: f64,
    /// Requests per second one instance serves at 100% utilisation (4 workers; the mean
    /// service time follows).
    #[arg(long, default_value_t = 20.0)]
    capacity_rps: f64,
    /// Forecaster for the predictive policies: auto (every candidate fitted, and the one that
    /// plans best on the validation part chosen), lstm, holt-winters, moving-average,
    /// persistence, seasonal-naive or seasonal-quantile.
    #[arg(long, default_value = "auto")]
    forecaster: ForecasterSpec,
    /// The season of `seasonal-naive` and `seasonal-quantile`: 1h (bursts that recur each
    /// hour), 1d or 1w; whole minutes, at most 2w.
    #[arg(long, default_value = "1d", value_parser = humantime::parse_duration)]
    season: Duration,
    /// Seasons `seasonal-quantile` remembers per slot (its window): 1–52.
    #[arg(long, default_value_t = 7)]
    seasons: usize,
    /// Plan for this quantile of the forecast's realised errors above the expected rate (the
    /// band the predictive policies add).
    #[arg(long, default_value_t = foresight_autoscale::UPPER_QUANTILE)]
    quantile: f64,
    /// Cost of one instance-hour (C_VM).
    #[arg(long, default_value_t = 1.0)]
    cost_per_hour: f64,
    /// Replay only the first N minutes of the test part, and of the validation part for
    /// `--tail-share auto` (quick runs).
    #[arg(long)]
    minutes: Option<usize>,
    /// Seed of arrivals, sizes and training.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Run only these policies (comma-separated): static-peak, static-mean, static, hpa,
    /// reactive (the hybrid's floor alone), predictive, hybrid, cost-optimal, oracle
    /// [default: all].
    #[arg(long, value_delimiter = ',')]
    policies: Vec<Selected>,
    /// Skip the knob sweep (defaults only).
    #[arg(long)]
    no_sweep: bool,
    /// Balancing algorithm inside the simulated pool (see `foresight algorithms`); with a
    /// forecasting policy, `forecast-aware` gets each instance's share of the planned load.
    #[arg(long, default_value = "least-connections")]
    algorithm: Algorithm,
    /// New instances serve at half speed for this long after they join (cold caches, JIT):
    /// how balancers treat a cold instance joining a surge. 0 = ready means warm.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    cold_start: Duration,
    /// New instances get a growing share of requests for this long after they join (Envoy's
    /// slow start: linear, from 10%); with `forecast-aware`, their part of the planned load
    /// ramps the same way. 0 = off.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    slow_start: Duration,
    /// Scale-in stabilisation window of the forecast-driven policies (predictive, hybrid,
    /// cost-optimal, oracle): scale in only to the highest count decided within it. The HPA
    /// and `reactive` keep Kubernetes' 300 s.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    scale_in_window: Duration,
    /// Widen the forecast-driven policies' plan for load that comes early or late by up to
    /// this many minutes each side, as far as the realised errors say it helps (0–5; 0: off);
    /// `auto`: 0 or 5, chosen on the validation part with the tail share (the cheaper first:
    /// for each share, unwidened, then widened; the first that reaches the goal).
    #[arg(long, default_value = "0")]
    widen: Widen,
    /// The forecast-driven policies (not the oracle) hold standing headroom so that, over the
    /// last week, at most this share of the load would have come above their plan (the tail
    /// band, for heavy tails and bursts no forecast places; 0.002 reached the goal on the most
    /// development workloads); 0 = off; `auto`: the smallest of 0, 0.002 and 0.005 with
    /// which the hybrid reaches the goal on the validation part (0 when the forecast alone
    /// reaches it there).
    #[arg(long, default_value = "auto")]
    tail_share: TailShare,
    /// The forecast-driven policies (not the oracle) hold their instances through an
    /// interruption of the load (arrivals stop dead) for at most this long, rather than meet
    /// its end at the floor; 0 = off; at most 1 day.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    interruption_hold: Duration,
    /// Do not draw progress bars.
    #[arg(long)]
    quiet: bool,
}

const WORKERS: u32 = 4;
/// Speed of a cold instance (`--cold-start`) relative to a warm one.
const COLD_SPEED: f64 = 0.5;
/// Most instances a run may need (static-peak's size bounds `--peak-rps`).
const MAX_INSTANCES: usize = 1000;
const TICK: Duration = Duration::from_secs(15);

/// A policy named on the command line: any [`PolicySpec`], or one of the two static sizes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Selected {
    Spec(PolicySpec),
    StaticPeak,
    StaticMean,
}

impl std::str::FromStr for Selected {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "static-peak" => Ok(Selected::StaticPeak),
            "static-mean" => Ok(Selected::StaticMean),
            other => other.parse().map(Selected::Spec).map_err(|e| {
                format!(
                    "unknown policy `{other}` (expected static-peak, static-mean, {})",
                    e.expected
                )
            }),
        }
    }
}

/// One run to do: a policy at one knob value.
#[derive(Clone, Debug)]
struct Job {
    name: String,
    kind: PolicySpec,
    knob: f64,
    /// The planned quantile (`--quantile` unless the sweep sets it).
    quantile: Option<f64>,
    default: bool,
}

#[derive(Clone, Debug, Serialize)]
struct RunResult {
    name: String,
    knob: f64,
    /// The planned quantile of the load at the lead (predictive policies).
    quantile: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    /// Mean response time of the served requests.
    mean_ms: f64,
    /// Queueing delay (arrival to a worker; a dropped request counts as 60 s).
    queue_p50_ms: f64,
    queue_p99_ms: f64,
    queue_mean_ms: f64,
    slo_attainment: f64,
    dropped: u64,
    arrived: u64,
    instance_hours: f64,
    cost: f64,
    scale_actions: u64,
    #[serde(skip)]
    ticks: Vec<Tick>,
    #[serde(skip)]
    forecasts: Vec<(f64, f64)>,
    #[serde(skip)]
    default: bool,
    #[serde(skip)]
    decisions: Vec<String>,
}

#[derive(Clone)]
struct Setup {
    counts: Vec<f64>,
    start_time: i64,
    rps_per_count: f64,
    peak_rps: f64,
    model: InstanceModel,
    warm: Vec<(i64, f64)>,
    horizon: usize,
    /// The tail band's share for the forecast-driven policies (`--tail-share`, or auto's
    /// choice).
    tail_share: f64,
    /// Minutes the forecast-driven policies may widen their plan by (`--widen`, or auto's
    /// choice).
    widen: usize,
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

fn run_job(
    job: &Job,
    a: &ExperimentArgs,
    setup: &Setup,
    fitted: &Fitted,
    bar: &ProgressBar,
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
    bar.set_prefix(format!("{} {}", job.name, knob_label(job)));
    bar.set_position(0);
    let (o, so) = foresight_sim::run_scaled(&scenario, &mut scaling, &mut |f| {
        bar.set_position((f * 1000.0) as u64)
    })
    .map_err(|e| e.to_string())?;
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

fn knob_label(job: &Job) -> String {
    match job.kind {
        PolicySpec::Static => format!("n={}", job.knob),
        PolicySpec::CostOptimal => format!("goal={}", job.knob),
        PolicySpec::Predictive | PolicySpec::Hybrid if job.quantile.is_some() => {
            format!("target={} q={}", job.knob, job.quantile.unwrap_or_default())
        }
        _ => format!("target={}", job.knob),
    }
}

fn jobs(a: &ExperimentArgs, fname: &str, static_mean: usize, static_peak: usize) -> Vec<Job> {
    let job = |name: &str, kind, knob: f64, default| Job {
        name: name.to_string(),
        kind,
        knob,
        quantile: None,
        default,
    };
    let (hpa, target) = (
        HpaConfig::default().target,
        PredictiveConfig::default().target,
    );
    let p = format!("predictive-{fname}");
    let h = format!("hybrid-{fname}");
    let c = format!("cost-optimal-{fname}");
    let mut v = vec![
        job("static-peak", PolicySpec::Static, static_peak as f64, true),
        job("static-mean", PolicySpec::Static, static_mean as f64, true),
        job("hpa", PolicySpec::Hpa, hpa, true),
        job("reactive", PolicySpec::Reactive, FLOOR_TARGET, true),
        job(&p, PolicySpec::Predictive, target, true),
        job(&h, PolicySpec::Hybrid, target, true),
        job(&c, PolicySpec::CostOptimal, a.slo_goal, true),
        job("oracle", PolicySpec::Oracle, target, true),
    ];
    if !a.no_sweep {
        let span = static_peak.saturating_sub(static_mean).max(4);
        for k in 1..=4 {
            let n = static_mean + span * k / 5;
            if n != static_peak {
                v.push(job("static", PolicySpec::Static, n as f64, false));
            }
        }
        for t in [0.3, 0.45, 0.75, 0.9] {
            v.push(job("hpa", PolicySpec::Hpa, t, false));
        }
        for t in [0.45, 0.6, 0.75, 0.95] {
            v.push(job("reactive", PolicySpec::Reactive, t, false));
        }
        for t in [0.4, 0.55, 0.85, 0.95] {
            v.push(job(&p, PolicySpec::Predictive, t, false));
            v.push(job(&h, PolicySpec::Hybrid, t, false));
            v.push(job("oracle", PolicySpec::Oracle, t, false));
        }
        // The planned quantile at the default target.
        for q in [0.5, 0.8, 0.9, 0.99] {
            if (q - a.quantile).abs() > 1e-9 {
                for (name, kind) in [(&p, PolicySpec::Predictive), (&h, PolicySpec::Hybrid)] {
                    v.push(Job {
                        quantile: Some(q),
                        ..job(name, kind, target, false)
                    });
                }
            }
        }
        // With exponential service of mean 1/μ, P(S > SLO) bounds what any size can reach.
        for g in [0.9, 0.95, 0.98] {
            if (g - a.slo_goal).abs() > 1e-9 {
                v.push(job(&c, PolicySpec::CostOptimal, g, false));
            }
        }
    }
    v
}

pub fn run(a: ExperimentArgs) -> ExitCode {
    match experiment(a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => usage_error(e),
        Err(Failure::Other(e)) => failure(e),
    }
}

enum Failure {
    Usage(String),
    Other(String),
}

/// Checks the flags, naming the first bad one.
fn validate(a: &ExperimentArgs) -> Result<(), Failure> {
    let usage = Failure::Usage;
    if !(a.slo_goal > 0.0 && a.slo_goal < 1.0) {
        return Err(usage(format!(
            "invalid value for `--slo-goal`: {} (expected between 0 and 1)",
            a.slo_goal
        )));
    }
    let bounded = |flag: &str, v: f64, lo_exclusive: f64, hi: f64, what: &str| {
        if v.is_finite() && v > lo_exclusive && v <= hi {
            Ok(())
        } else {
            Err(usage(format!(
                "invalid value `{v}` for `{flag}`: expected {what}"
            )))
        }
    };
    bounded(
        "--slo-ms",
        a.slo_ms,
        0.0,
        3.6e6,
        "a positive number of milliseconds, at most an hour",
    )?;
    bounded(
        "--capacity-rps",
        a.capacity_rps,
        0.0,
        1e6,
        "a positive rate up to 1e6 requests per second",
    )?;
    if !(a.cost_per_hour.is_finite() && (0.0..=1e9).contains(&a.cost_per_hour)) {
        return Err(usage(format!(
            "invalid value `{}` for `--cost-per-hour`: expected a cost from 0 to 1e9",
            a.cost_per_hour
        )));
    }
    if let Some(p) = a.peak_rps {
        // The peak decides the static sizes (and so the simulator's instance table): bounded
        // by what MAX_INSTANCES serve at 70% utilisation.
        let most = a.capacity_rps * STATIC_TARGET * MAX_INSTANCES as f64;
        bounded(
            "--peak-rps",
            p,
            0.0,
            most,
            &format!(
                "a positive rate up to {most} (what {MAX_INSTANCES} instances of --capacity-rps {} serve at 70%)",
                a.capacity_rps
            ),
        )?;
    }
    if a.provision_delay < Duration::from_secs(1) {
        return Err(usage("`--provision-delay` must be at least 1s".into()));
    }
    for (flag, d) in [
        ("--cold-start", a.cold_start),
        ("--slow-start", a.slow_start),
    ] {
        if d > Duration::from_secs(3600) {
            return Err(usage(format!(
                "invalid value `{}` for `{flag}`: expected at most 1h",
                humantime::format_duration(d)
            )));
        }
    }
    if a.scale_in_window > Duration::from_secs(3600) {
        return Err(usage(format!(
            "invalid value `{}` for `--scale-in-window`: expected at most 1h",
            humantime::format_duration(a.scale_in_window)
        )));
    }
    if !a.season.as_secs().is_multiple_of(60)
        || a.season.subsec_nanos() != 0
        || a.season < Duration::from_secs(60)
        || a.season > Duration::from_secs(14 * 86_400)
    {
        return Err(usage(format!(
            "invalid value `{}` for `--season`: expected whole minutes from 1m to 2w",
            humantime::format_duration(a.season)
        )));
    }
    if !(1..=52).contains(&a.seasons) {
        return Err(usage(format!(
            "invalid value `{}` for `--seasons`: expected 1–52",
            a.seasons
        )));
    }
    if a.interruption_hold > Duration::from_secs(86_400) {
        return Err(usage(format!(
            "invalid value `{}` for `--interruption-hold`: expected at most 1d",
            humantime::format_duration(a.interruption_hold)
        )));
    }
    if let Widen::Fixed(w) = a.widen {
        if w > foresight_autoscale::MAX_WIDEN {
            return Err(usage(format!(
                "invalid value `{w}` for `--widen`: expected 0–{} minutes or auto",
                foresight_autoscale::MAX_WIDEN
            )));
        }
    }
    a.tail_share.check().map_err(usage)?;
    if !(0.0..=1.0).contains(&a.quantile) {
        return Err(usage(format!(
            "invalid value for `--quantile`: {} (expected between 0 and 1)",
            a.quantile
        )));
    }
    if a.forecaster == ForecasterSpec::None {
        return Err(usage(
            "invalid value for `--forecaster`: `none` (the predictive policies need one)".into(),
        ));
    }
    Ok(())
}

fn experiment(mut a: ExperimentArgs) -> Result<(), Failure> {
    validate(&a)?;
    // The seasonal forecasters' period and window are flags of their own.
    let season = (a.season.as_secs() / 60) as usize;
    a.forecaster = a.forecaster.with_season(Some(season), Some(a.seasons));
    let a = &a;
    let Some(trace) = &a.trace else {
        let dir = a.suite.as_ref().expect("clap: --trace or --suite");
        return suite::run(a, dir);
    };
    let prepared = prepare(a, trace, a.quiet)?;
    let multi = if a.quiet {
        MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    } else {
        MultiProgress::new()
    };
    let runs = run_jobs(a, &prepared, &multi, 2)?;
    report(a, trace, &prepared, &runs)
}

/// A trace made ready to replay: what is replayed and how it is sized, the forecaster fitted
/// on its training part, and the runs to do.
struct Prepared {
    /// Shown before the progress of its runs (a suite's workload name).
    label: String,
    setup: Setup,
    fitted: Fitted,
    jobs: Vec<Job>,
    fname: String,
    /// `--tail-share auto`'s choice on the validation part.
    tail_choice: Option<TailChoice>,
}

/// Loads `trace`, picks the replayed part (the first gap-free stretch of the test part),
/// sizes the pool and fits the forecaster (training progress unless `quiet`).
fn prepare(a: &ExperimentArgs, trace: &Path, quiet: bool) -> Result<Prepared, Failure> {
    let usage = Failure::Usage;
    let fname = a.forecaster.to_string();
    let series = Series::load(trace, None, foresight_forecast::Aggregate::Sum)
        .map_err(|e| usage(e.to_string()))?;
    if series.step != 60 {
        return Err(usage(format!(
            "{}: the experiment replays per-minute traces; this one has {} s steps",
            trace.display(),
            series.step
        )));
    }
    let mut cfg = ForecastConfig::default();
    cfg.lstm.seed = a.seed;
    cfg.lstm.horizon = 15;
    let ds =
        Dataset::new(series, &cfg.data).map_err(|e| usage(format!("{}: {e}", trace.display())))?;
    let split = ds.report.split;
    // The replayed part: the longest gap-free stretch of the test part.
    let seg = stretch(&ds.series, split.val_end, split.len)
        .ok_or_else(|| usage("no test part to replay".into()))?;
    let (start_time, mut counts, offset) = seg;
    if let Some(m) = a.minutes {
        counts.truncate(m);
    }
    if counts.len() < 60 {
        return Err(usage(format!(
            "{}: the test part has only {} gap-free minutes (need 60)",
            trace.display(),
            counts.len()
        )));
    }
    let model = InstanceModel {
        workers: WORKERS,
        mean_service: f64::from(WORKERS) / a.capacity_rps,
    };
    let max_count = counts.iter().copied().fold(0.0, f64::max);
    let peak_rps = a.peak_rps.unwrap_or(20.0 * a.capacity_rps * STATIC_TARGET);
    let rps_per_count = peak_rps / max_count.max(1.0);
    let mean_rps = counts.iter().sum::<f64>() / counts.len() as f64 * rps_per_count;
    let static_peak = instances_for(peak_rps, a.capacity_rps, STATIC_TARGET);
    let static_mean = instances_for(mean_rps, a.capacity_rps, STATIC_TARGET);
    let warm = history_before(&ds.series, offset);
    eprintln!(
        "experiment: {} — replaying {} minutes from {}; peak {:.0} req/s (busiest minute), mean {:.1} req/s; instance = {} workers × {:.0} ms = {:.0} req/s; provisioning {}; SLO {} ms for {:.1}% of requests; forecaster {}; seed {}",
        trace.display(),
        counts.len(),
        chrono::DateTime::from_timestamp(start_time, 0).map(|d| d.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default(),
        peak_rps,
        mean_rps,
        WORKERS,
        model.mean_service * 1000.0,
        a.capacity_rps,
        humantime::format_duration(a.provision_delay),
        a.slo_ms,
        100.0 * a.slo_goal,
        fname,
        a.seed
    );
    let training = crate::progress::Training::new(quiet);
    let fitted = Fitted::fit(a.forecaster, &ds, &cfg, &planning(a, &cfg), |p| {
        training.update(p)
    })
    .map_err(Failure::Usage)?;
    training.finish();
    if let Some((chosen, scores)) = fitted.choice() {
        eprintln!(
            "auto: {} plans best on the validation part ({})",
            chosen,
            scores
                .iter()
                .map(|s| format!("{} {:.2}", s.name, s.pinball))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut setup = Setup {
        counts,
        start_time,
        rps_per_count,
        peak_rps,
        model,
        warm,
        horizon: cfg.lstm.horizon,
        tail_share: match a.tail_share {
            TailShare::Fixed(v) => v,
            TailShare::Auto => 0.0,
        },
        widen: match a.widen {
            Widen::Fixed(w) => w,
            Widen::Auto => 0,
        },
    };
    let forecasting = a.policies.is_empty()
        || a.policies
            .iter()
            .any(|p| matches!(p, Selected::Spec(s) if s.uses_forecaster()));
    let tail_choice = if (a.tail_share == TailShare::Auto || a.widen == Widen::Auto) && forecasting
    {
        let c = tail_choice::on_validation(a, trace, &ds, &setup, &fitted, &fname, quiet)?;
        setup.tail_share = c.chosen;
        setup.widen = c.widen;
        Some(c)
    } else {
        None
    };
    let todo: Vec<Job> = jobs(a, &fname, static_mean, static_peak)
        .into_iter()
        .filter(|j| {
            a.policies.is_empty()
                || a.policies.iter().any(|p| match p {
                    Selected::Spec(spec) => *spec == j.kind,
                    // Either static size brings the static sweep (its frontier) along.
                    Selected::StaticPeak | Selected::StaticMean => j.kind == PolicySpec::Static,
                })
        })
        .collect();
    Ok(Prepared {
        label: String::new(),
        setup,
        fitted,
        jobs: todo,
        fname,
        tail_choice,
    })
}

/// Runs every job of `p` on `workers` threads, each with a bar in `multi`, in job order.
fn run_jobs(
    a: &ExperimentArgs,
    p: &Prepared,
    multi: &MultiProgress,
    workers: usize,
) -> Result<Vec<RunResult>, Failure> {
    let (todo, setup, fitted) = (&p.jobs, &p.setup, &p.fitted);
    let overall = multi.add(ProgressBar::new(todo.len() as u64));
    overall.set_prefix(p.label.clone());
    overall.set_style(
        ProgressStyle::with_template("{prefix}runs [{bar:30}] {pos}/{len} {elapsed} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<(usize, Result<RunResult, String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let bar = multi.add(ProgressBar::new(1000));
            bar.set_style(
                ProgressStyle::with_template("{prefix:>30} [{bar:30}] {percent:>3}%")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            let (next, results, todo, setup, fitted, overall) =
                (&next, &results, &todo, &setup, &fitted, &overall);
            scope.spawn(move || loop {
                let i = {
                    let mut n = next.lock().expect("not poisoned");
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(job) = todo.get(i) else {
                    bar.finish_and_clear();
                    break;
                };
                let r = run_job(job, a, setup, fitted, &bar);
                results.lock().expect("not poisoned").push((i, r));
                overall.inc(1);
            });
        }
    });
    overall.finish_and_clear();
    let mut results = results.into_inner().expect("not poisoned");
    results.sort_by_key(|(i, _)| *i);
    results
        .into_iter()
        .map(|(_, r)| r.map_err(Failure::Other))
        .collect()
}

#[cfg(test)]
mod tests;
