//! `foresight experiment`: static, reactive and predictive scaling on the same replayed trace,
//! in the simulator, at their defaults and along each policy's cost–quality frontier. The
//! experiment itself is `foresight_experiment`; this module holds its flags, its progress
//! bars, the tables it prints and the files and plots it writes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use clap::Args;
use foresight_autoscale::ForecasterSpec;
use foresight_balance::Algorithm;
use foresight_experiment::{
    run_job, Error, Observer, Options, Prepared, RunResult, Selected, TailShare, Widen,
};
use foresight_forecast::lstm::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::progress::Training;
use crate::{failure, usage_error};

#[cfg(test)]
mod parity_tests;
mod report;
mod suite;
use report::report;

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

impl ExperimentArgs {
    /// The experiment's settings, flag for flag.
    fn options(&self) -> Options {
        Options {
            peak_rps: self.peak_rps,
            provision_delay: self.provision_delay,
            slo_ms: self.slo_ms,
            slo_goal: self.slo_goal,
            capacity_rps: self.capacity_rps,
            forecaster: self.forecaster,
            season: self.season,
            seasons: self.seasons,
            quantile: self.quantile,
            cost_per_hour: self.cost_per_hour,
            minutes: self.minutes,
            seed: self.seed,
            policies: self.policies.clone(),
            no_sweep: self.no_sweep,
            algorithm: self.algorithm,
            cold_start: self.cold_start,
            slow_start: self.slow_start,
            scale_in_window: self.scale_in_window,
            widen: self.widen,
            tail_share: self.tail_share,
            interruption_hold: self.interruption_hold,
        }
    }
}

pub fn run(a: ExperimentArgs) -> ExitCode {
    match experiment(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Usage(e)) => usage_error(e),
        Err(Error::Run(e)) => failure(e),
    }
}

fn experiment(a: &ExperimentArgs) -> Result<(), Error> {
    let o = a.options().check()?;
    let Some(trace) = &a.trace else {
        let dir = a.suite.as_ref().expect("clap: --trace or --suite");
        return suite::run(a, &o, dir);
    };
    let prepared = prepare(&o, trace, a.quiet)?;
    let multi = if a.quiet {
        MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    } else {
        MultiProgress::new()
    };
    let runs = run_jobs(&o, &prepared, &multi, 2)?;
    report(a, &o, trace, &prepared, &runs)
}

/// Stderr as the experiment's observer: its log lines, and with progress (not `quiet`) the
/// training bar and the validation runs.
struct Stderr {
    quiet: bool,
    training: Mutex<Option<Training>>,
}

impl Observer for Stderr {
    fn say(&self, line: &str) {
        eprintln!("{line}");
    }

    fn detail(&self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    fn training(&self, p: Progress) {
        if let Some(t) = &*self.training.lock().expect("not poisoned") {
            t.update(p);
        }
    }

    fn trained(&self) {
        if let Some(t) = self.training.lock().expect("not poisoned").take() {
            t.finish();
        }
    }
}

/// [`foresight_experiment::prepare`] with its log on stderr and, unless `quiet`, its
/// progress.
fn prepare(o: &Options, trace: &std::path::Path, quiet: bool) -> Result<Prepared, Error> {
    let observer = Stderr {
        quiet,
        training: Mutex::new(Some(Training::new(quiet))),
    };
    foresight_experiment::prepare(o, trace, &observer)
}

/// Runs `job` with its name on `bar` and its progress drawn there.
fn run_on_bar(
    job: &foresight_experiment::Job,
    o: &Options,
    p: &Prepared,
    bar: &ProgressBar,
) -> Result<RunResult, String> {
    bar.set_prefix(format!("{} {}", job.name, job.knob_label()));
    bar.set_position(0);
    run_job(job, o, &p.setup, &p.fitted, &mut |f| {
        bar.set_position((f * 1000.0) as u64)
    })
}

/// Runs every job of `p` on `workers` threads, each with a bar in `multi`, in job order.
fn run_jobs(
    o: &Options,
    p: &Prepared,
    multi: &MultiProgress,
    workers: usize,
) -> Result<Vec<RunResult>, Error> {
    let todo = &p.jobs;
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
            let (next, results, overall) = (&next, &results, &overall);
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
                let r = run_on_bar(job, o, p, &bar);
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
        .map(|(_, r)| r.map_err(Error::Run))
        .collect()
}
