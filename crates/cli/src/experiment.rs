//! `foresight experiment`: static, reactive and predictive scaling on the same replayed trace,
//! in the simulator, at their defaults and along each policy's cost–quality frontier.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use clap::Args;
use foresight_balance::Algorithm;
use foresight_core::dist::Distribution;
use foresight_forecast::pipeline::Dataset;
use foresight_forecast::{AnomalyConfig, Detector, ForecastConfig, Forecaster, Lstm, Series};
use foresight_scale::{
    CostOptimal, Governor, Hpa, HpaConfig, Hybrid, InstanceModel, Limits, Observation, Policy,
    Predictive, PredictiveConfig, Static,
};
use foresight_sim::{Controller, InstanceSpec, PoolView, RequestClass, Scaling, Scenario, Tick};
use foresight_workload::Profile;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::{failure, usage_error};

mod report;
use report::report;

#[derive(Args)]
pub struct ExperimentArgs {
    /// Trace CSV (`minute,count`); its test part (the last 15%) is replayed.
    #[arg(long)]
    trace: PathBuf,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write plots (timeline.svg, frontiers.svg) into this directory.
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
    /// Forecaster for the predictive policies: lstm, holt-winters, moving-average or
    /// persistence.
    #[arg(long, default_value = "lstm")]
    forecaster: String,
    /// Cost of one instance-hour (C_VM).
    #[arg(long, default_value_t = 1.0)]
    cost_per_hour: f64,
    /// Replay only the first N minutes of the test part (quick runs).
    #[arg(long)]
    minutes: Option<usize>,
    /// Seed of arrivals, sizes and training.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Run only these policies (comma-separated): static-peak, static-mean, hpa, predictive,
    /// hybrid, cost-optimal, oracle [default: all].
    #[arg(long, value_delimiter = ',')]
    policies: Vec<String>,
    /// Skip the knob sweep (defaults only).
    #[arg(long)]
    no_sweep: bool,
    /// Do not draw progress bars.
    #[arg(long)]
    quiet: bool,
}

const WORKERS: u32 = 4;
const TICK: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Static,
    Hpa,
    Predictive,
    Hybrid,
    CostOptimal,
    Oracle,
}

/// One run to do: a policy at one knob value.
#[derive(Clone, Debug)]
struct Job {
    name: String,
    kind: Kind,
    knob: f64,
    default: bool,
}

#[derive(Clone, Debug, Serialize)]
struct RunResult {
    name: String,
    knob: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
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

struct Setup {
    counts: Vec<f64>,
    start_time: i64,
    rps_per_count: f64,
    peak_rps: f64,
    model: InstanceModel,
    warm: Vec<(i64, f64)>,
    horizon: usize,
}

/// The controller: observations per minute for the forecaster, a decision every 15 s.
struct PolicyController<'a> {
    governor: Governor,
    setup: &'a Setup,
    forecaster: Option<Box<dyn Forecaster>>,
    oracle: bool,
    detector: Detector,
    minute_arrivals: u64,
    minute: usize,
    /// Forecast made at the last minute boundary: rates (req/s) for the next minutes.
    current: Option<Vec<f64>>,
    /// (minute index, forecast for it) awaiting the actual, for the anomaly detector.
    pending: std::collections::VecDeque<(usize, f64)>,
    lead_minutes: usize,
    recorded: Vec<(f64, f64)>,
    /// Realised errors (actual − forecast, req/s) at the planning lead, most recent last.
    residuals: std::collections::VecDeque<f64>,
}

/// The forecast is the expected rate; sizing for it leaves every above-average minute short.
/// The controller plans for its upper band instead: the forecast plus this quantile of the
/// last [`RESIDUAL_WINDOW`] realised errors at the planning lead (past errors only).
const UPPER_QUANTILE: f64 = 0.95;
const RESIDUAL_WINDOW: usize = 240;

fn upper_band(residuals: &std::collections::VecDeque<f64>) -> f64 {
    if residuals.len() < 30 {
        return 0.0;
    }
    let mut v: Vec<f64> = residuals.iter().copied().collect();
    v.sort_by(f64::total_cmp);
    let k = ((v.len() - 1) as f64 * UPPER_QUANTILE).round() as usize;
    v[k].max(0.0)
}

impl PolicyController<'_> {
    fn on_minute(&mut self) {
        let s = self.setup;
        let m = self.minute;
        let count = self.minute_arrivals as f64 / (60.0 * s.rps_per_count);
        let t = s.start_time + m as i64 * 60;
        while self.pending.front().is_some_and(|(at, _)| *at <= m) {
            let (at, f) = self.pending.pop_front().expect("checked");
            if at == m {
                self.detector.update(t, count, f);
                if self.residuals.len() == RESIDUAL_WINDOW {
                    self.residuals.pop_front();
                }
                self.residuals.push_back((count - f) * s.rps_per_count);
            }
        }
        if let Some(f) = self.forecaster.as_mut() {
            f.observe(t, count, &[]);
            let expected: Option<Vec<f64>> = f
                .forecast(s.horizon)
                .map(|v| v.iter().map(|c| c * s.rps_per_count).collect());
            if let Some(fc) = &expected {
                let k = self.lead_minutes.min(fc.len()).max(1);
                self.pending.push_back((m + k, fc[k - 1] / s.rps_per_count));
                self.recorded.push(((m + k) as f64 * 60.0, fc[k - 1]));
            }
            let band = upper_band(&self.residuals);
            self.current = expected.map(|v| v.iter().map(|r| r + band).collect());
        }
        self.minute_arrivals = 0;
        self.minute += 1;
    }
}

impl Controller for PolicyController<'_> {
    fn interval(&self) -> Duration {
        TICK
    }

    fn decide(&mut self, view: &PoolView) -> usize {
        self.minute_arrivals += view.arrivals;
        let now = view.now.as_secs_f64();
        while now >= (self.minute + 1) as f64 * 60.0 - 1e-6 {
            self.on_minute();
        }
        let into_minute = now - self.minute as f64 * 60.0;
        let forecast = if self.oracle {
            let s = self.setup;
            let from = self.minute;
            Some(
                (0..s.horizon.max(12))
                    .filter_map(|k| {
                        s.counts
                            .get(from + k)
                            .map(|c| ((k as f64 + 1.0) * 60.0 - into_minute, c * s.rps_per_count))
                    })
                    .collect::<Vec<_>>(),
            )
        } else {
            self.current.as_ref().map(|fc| {
                fc.iter()
                    .enumerate()
                    .map(|(k, r)| ((k as f64 + 1.0) * 60.0 - into_minute, *r))
                    .collect()
            })
        };
        let t = self.setup.start_time + now as i64;
        let obs = Observation {
            now,
            ready: view.ready,
            starting: view.starting,
            utilisation: view.utilisation,
            rate: view.arrivals as f64 / view.period.as_secs_f64().max(1e-9),
            forecast,
            trusted: self.oracle || self.detector.trustworthy(t),
        };
        self.governor.decide(&obs).replicas
    }
}

/// The trained forecaster, copied for every run.
enum Base {
    Lstm(Box<Lstm>),
    HoltWinters(foresight_forecast::HoltWinters),
    MovingAverage(foresight_forecast::MovingAverage),
    Persistence,
    SeasonalNaive(foresight_forecast::SeasonalNaive),
}

fn build_forecaster(
    name: &str,
    ds: &Dataset,
    cfg: &ForecastConfig,
    quiet: bool,
) -> Result<Base, String> {
    let horizon = cfg.lstm.horizon;
    match name {
        "lstm" => {
            let (train, val) = ds.prepared(&cfg.lstm);
            let bar = if quiet {
                ProgressBar::hidden()
            } else {
                ProgressBar::new(1)
            };
            bar.set_style(
                ProgressStyle::with_template("training lstm [{bar:30}] {percent:>3}% {elapsed} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            let m = Lstm::train(
                &cfg.lstm,
                ds.series.step,
                ds.value_scaler,
                ds.feature_scalers.clone(),
                &train,
                &val,
                |p| {
                    bar.set_length((p.epochs * p.batches) as u64);
                    bar.set_position(((p.epoch - 1) * p.batches + p.batch) as u64);
                },
            )
            .map_err(|e| e.to_string())?;
            bar.finish_and_clear();
            Ok(Base::Lstm(Box::new(m)))
        }
        "holt-winters" => Ok(Base::HoltWinters(ds.holt_winters(horizon))),
        "moving-average" => Ok(Base::MovingAverage(ds.moving_average(horizon).1)),
        "persistence" => Ok(Base::Persistence),
        "seasonal-naive" => Ok(Base::SeasonalNaive(foresight_forecast::SeasonalNaive::new(
            "seasonal-naive",
            ds.series.step,
            ds.day(),
        ))),
        other => Err(format!(
            "invalid value for `--forecaster`: `{other}` (expected lstm, holt-winters, moving-average, persistence or seasonal-naive)"
        )),
    }
}

fn copy_forecaster(base: &Base) -> Option<Box<dyn Forecaster>> {
    Some(match base {
        Base::Lstm(m) => Box::new((**m).clone()),
        Base::HoltWinters(m) => Box::new(m.clone()),
        Base::MovingAverage(m) => Box::new(m.clone()),
        Base::Persistence => Box::new(foresight_forecast::Persistence::new()),
        Base::SeasonalNaive(m) => Box::new(m.clone()),
    })
}

fn governor_for(job: &Job, a: &ExperimentArgs, setup: &Setup, fname: &str) -> Governor {
    let lead = a.provision_delay.as_secs_f64();
    let pcfg = |target: f64| PredictiveConfig {
        target,
        lead,
        margin: 120.0,
        ..PredictiveConfig::default()
    };
    let policy: Box<dyn Policy> = match job.kind {
        Kind::Static => Box::new(Static {
            replicas: job.knob as usize,
        }),
        Kind::Hpa => Box::new(Hpa::new(HpaConfig {
            target: job.knob,
            tolerance: 0.1,
        })),
        Kind::Predictive => Box::new(Predictive::new(&job.name, pcfg(job.knob), setup.model)),
        Kind::Oracle => Box::new(Predictive::new("oracle", pcfg(job.knob), setup.model)),
        Kind::Hybrid => Box::new(Hybrid::new(
            &job.name,
            Box::new(Predictive::new(
                &format!("predictive-{fname}"),
                pcfg(job.knob),
                setup.model,
            )),
            HpaConfig {
                target: 0.9,
                tolerance: 0.1,
            },
            HpaConfig {
                target: 0.6,
                tolerance: 0.1,
            },
        )),
        Kind::CostOptimal => Box::new(CostOptimal::new(
            &job.name,
            setup.model,
            a.slo_ms / 1000.0,
            job.knob,
            lead,
            120.0,
        )),
    };
    let limits = Limits {
        min: 1,
        max: 200,
        ..Limits::default()
    };
    Governor::new(policy, limits, false).expect("valid limits")
}

fn run_job(
    job: &Job,
    a: &ExperimentArgs,
    setup: &Setup,
    forecaster: Option<Box<dyn Forecaster>>,
    fname: &str,
    bar: &ProgressBar,
) -> Result<RunResult, String> {
    let mut spec = InstanceSpec::new(WORKERS);
    spec.queue_limit = Some(100);
    let initial = match job.kind {
        Kind::Static => job.knob as usize,
        _ => ((setup.counts[0] * setup.rps_per_count) / (setup.model.capacity() * 0.6))
            .ceil()
            .max(1.0) as usize,
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
        algorithm: Algorithm::LeastConnections,
        slow_start: None,
        seed: a.seed,
    };
    let uses_forecast = matches!(
        job.kind,
        Kind::Predictive | Kind::Hybrid | Kind::CostOptimal
    );
    let mut forecaster = if uses_forecast { forecaster } else { None };
    if let Some(f) = forecaster.as_mut() {
        for (t, v) in &setup.warm {
            f.observe(*t, *v, &[]);
        }
    }
    let mut controller = PolicyController {
        governor: governor_for(job, a, setup, fname),
        setup,
        forecaster,
        oracle: job.kind == Kind::Oracle,
        detector: Detector::new(AnomalyConfig {
            hold_secs: 15 * 60,
            ..AnomalyConfig::default()
        }),
        minute_arrivals: 0,
        minute: 0,
        current: None,
        pending: Default::default(),
        lead_minutes: (a.provision_delay.as_secs() / 60).max(1) as usize,
        recorded: Vec::new(),
        residuals: Default::default(),
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
        p50_ms: o.quantile_ms(0.5),
        p95_ms: o.quantile_ms(0.95),
        p99_ms: o.quantile_ms(0.99),
        p999_ms: o.quantile_ms(0.999),
        slo_attainment: within as f64 / o.arrived.max(1) as f64,
        dropped: o.dropped,
        arrived: o.arrived,
        instance_hours: so.instance_hours,
        cost: so.instance_hours * a.cost_per_hour,
        scale_actions: so.actions,
        ticks: so.ticks,
        decisions: controller
            .governor
            .log()
            .iter()
            .map(|e| {
                format!(
                    "{:>9.0} s  {:>3} -> {:<3} {}",
                    e.now, e.from, e.to, e.reason
                )
            })
            .collect(),
        forecasts: controller.recorded,
        default: job.default,
    })
}

fn knob_label(job: &Job) -> String {
    match job.kind {
        Kind::Static => format!("n={}", job.knob),
        Kind::CostOptimal => format!("goal={}", job.knob),
        _ => format!("target={}", job.knob),
    }
}

fn jobs(a: &ExperimentArgs, fname: &str, static_mean: usize, static_peak: usize) -> Vec<Job> {
    let job = |name: &str, kind, knob: f64, default| Job {
        name: name.to_string(),
        kind,
        knob,
        default,
    };
    let p = format!("predictive-{fname}");
    let h = format!("hybrid-{fname}");
    let c = format!("cost-optimal-{fname}");
    let mut v = vec![
        job("static-peak", Kind::Static, static_peak as f64, true),
        job("static-mean", Kind::Static, static_mean as f64, true),
        job("hpa", Kind::Hpa, 0.6, true),
        job(&p, Kind::Predictive, 0.7, true),
        job(&h, Kind::Hybrid, 0.7, true),
        job(&c, Kind::CostOptimal, a.slo_goal, true),
        job("oracle", Kind::Oracle, 0.7, true),
    ];
    if !a.no_sweep {
        let span = static_peak.saturating_sub(static_mean).max(4);
        for k in 1..=4 {
            let n = static_mean + span * k / 5;
            if n != static_peak {
                v.push(job("static", Kind::Static, n as f64, false));
            }
        }
        for t in [0.3, 0.45, 0.75, 0.9] {
            v.push(job("hpa", Kind::Hpa, t, false));
        }
        for t in [0.4, 0.55, 0.85, 0.95] {
            v.push(job(&p, Kind::Predictive, t, false));
            v.push(job(&h, Kind::Hybrid, t, false));
            v.push(job("oracle", Kind::Oracle, t, false));
        }
        // With exponential service of mean 1/μ, P(S > SLO) bounds what any size can reach.
        for g in [0.9, 0.95, 0.98] {
            if (g - a.slo_goal).abs() > 1e-9 {
                v.push(job(&c, Kind::CostOptimal, g, false));
            }
        }
    }
    v
}

pub fn run(a: ExperimentArgs) -> ExitCode {
    match experiment(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => usage_error(e),
        Err(Failure::Other(e)) => failure(e),
    }
}

enum Failure {
    Usage(String),
    Other(String),
}

fn experiment(a: &ExperimentArgs) -> Result<(), Failure> {
    let usage = Failure::Usage;
    if !(a.slo_goal > 0.0 && a.slo_goal < 1.0) {
        return Err(usage(format!(
            "invalid value for `--slo-goal`: {} (expected between 0 and 1)",
            a.slo_goal
        )));
    }
    if a.slo_ms.is_nan() || a.slo_ms <= 0.0 || a.capacity_rps.is_nan() || a.capacity_rps <= 0.0 {
        return Err(usage(
            "`--slo-ms` and `--capacity-rps` must be positive".into(),
        ));
    }
    if a.provision_delay < Duration::from_secs(1) {
        return Err(usage("`--provision-delay` must be at least 1s".into()));
    }
    const POLICIES: [&str; 7] = [
        "static-peak",
        "static-mean",
        "hpa",
        "predictive",
        "hybrid",
        "cost-optimal",
        "oracle",
    ];
    if let Some(bad) = a.policies.iter().find(|p| !POLICIES.contains(&p.as_str())) {
        return Err(usage(format!(
            "invalid value for `--policies`: unknown policy `{bad}` (expected {})",
            POLICIES.join(", ")
        )));
    }
    let fname = a.forecaster.clone();
    let series = Series::load(&a.trace, None, foresight_forecast::Aggregate::Sum)
        .map_err(|e| usage(e.to_string()))?;
    if series.step != 60 {
        return Err(usage(format!(
            "{}: the experiment replays per-minute traces; this one has {} s steps",
            a.trace.display(),
            series.step
        )));
    }
    let mut cfg = ForecastConfig::default();
    cfg.lstm.seed = a.seed;
    cfg.lstm.horizon = 15;
    let ds = Dataset::new(series, &cfg.data)
        .map_err(|e| usage(format!("{}: {e}", a.trace.display())))?;
    let split = ds.report.split;
    // The replayed part: the first gap-free stretch of the test part.
    let seg = ds
        .series
        .segments()
        .into_iter()
        .filter(|s| s.offset + s.values.len() > split.val_end)
        .map(|s| {
            let skip = split.val_end.saturating_sub(s.offset);
            (
                s.start + skip as i64 * 60,
                s.values[skip..].to_vec(),
                s.offset + skip,
            )
        })
        .max_by_key(|(_, v, _)| v.len())
        .ok_or_else(|| usage("no test part to replay".into()))?;
    let (start_time, mut counts, offset) = seg;
    if let Some(m) = a.minutes {
        counts.truncate(m);
    }
    if counts.len() < 60 {
        return Err(usage(format!(
            "{}: the test part has only {} gap-free minutes (need 60)",
            a.trace.display(),
            counts.len()
        )));
    }
    let model = InstanceModel {
        workers: WORKERS,
        mean_service: f64::from(WORKERS) / a.capacity_rps,
    };
    let max_count = counts.iter().copied().fold(0.0, f64::max);
    let peak_rps = a.peak_rps.unwrap_or(20.0 * a.capacity_rps * 0.7);
    let rps_per_count = peak_rps / max_count.max(1.0);
    let mean_rps = counts.iter().sum::<f64>() / counts.len() as f64 * rps_per_count;
    let static_peak = (peak_rps / (a.capacity_rps * 0.7)).ceil() as usize;
    let static_mean = (mean_rps / (a.capacity_rps * 0.7)).ceil().max(1.0) as usize;
    // History before the replay (8 days: Holt-Winters initialises from two daily seasons,
    // seasonal naive needs one), so every forecaster is warm at the first replayed minute.
    let warm: Vec<(i64, f64)> = (offset.saturating_sub(8 * 1440)..offset)
        .filter_map(|i| ds.series.values[i].map(|v| (ds.series.time(i), v)))
        .collect();
    eprintln!(
        "experiment: {} — replaying {} minutes from {}; peak {:.0} req/s (busiest minute), mean {:.1} req/s; instance = {} workers × {:.0} ms = {:.0} req/s; provisioning {}; SLO {} ms for {:.1}% of requests; forecaster {}; seed {}",
        a.trace.display(),
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
    let base = build_forecaster(&fname, &ds, &cfg, a.quiet).map_err(Failure::Usage)?;
    let setup = Setup {
        counts,
        start_time,
        rps_per_count,
        peak_rps,
        model,
        warm,
        horizon: cfg.lstm.horizon,
    };
    let todo: Vec<Job> = jobs(a, &fname, static_mean, static_peak)
        .into_iter()
        .filter(|j| {
            a.policies.is_empty()
                || a.policies.iter().any(|p| {
                    let base = j.name.split(&format!("-{fname}")).next().unwrap_or("");
                    p == base
                        || (p == "static-peak" || p == "static-mean") && j.kind == Kind::Static
                })
        })
        .collect();
    let multi = if a.quiet {
        MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    } else {
        MultiProgress::new()
    };
    let overall = multi.add(ProgressBar::new(todo.len() as u64));
    overall.set_style(
        ProgressStyle::with_template("runs [{bar:30}] {pos}/{len} {elapsed} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<(usize, Result<RunResult, String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let bar = multi.add(ProgressBar::new(1000));
            bar.set_style(
                ProgressStyle::with_template("{prefix:>30} [{bar:30}] {percent:>3}%")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            let (next, results, todo, setup, base, overall, fname) =
                (&next, &results, &todo, &setup, &base, &overall, &fname);
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
                let f = copy_forecaster(base);
                let r = run_job(job, a, setup, f, fname, &bar);
                results.lock().expect("not poisoned").push((i, r));
                overall.inc(1);
            });
        }
    });
    overall.finish_and_clear();
    let mut results = results.into_inner().expect("not poisoned");
    results.sort_by_key(|(i, _)| *i);
    let mut runs = Vec::new();
    for (_, r) in results {
        runs.push(r.map_err(Failure::Other)?);
    }
    report(a, &setup, &fname, &runs)
}
