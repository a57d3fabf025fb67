//! A trace made ready to replay: loaded, its replayed part picked and sized, the forecaster
//! fitted on its training part, the tail band chosen on its validation part, and its runs
//! listed.

use std::path::Path;

use foresight_autoscale::Fitted;
use foresight_forecast::lstm::Progress;
use foresight_forecast::pipeline::Dataset;
use foresight_forecast::{ForecastConfig, Series};
use foresight_scale::{instances_for, InstanceModel, STATIC_TARGET};

use crate::assemble::planning;
use crate::jobs::{jobs, Job};
use crate::options::Options;
use crate::parts::{history_before, stretch};
use crate::run::{Setup, WORKERS};
use crate::tail_choice::{self, TailChoice, TailShare, Widen};
use crate::Error;

/// What the long steps of an experiment tell whoever watches: the CLI draws them on stderr.
pub trait Observer: Sync {
    /// A line for the log, always shown.
    fn say(&self, line: &str);
    /// A line about progress, shown where progress is.
    fn detail(&self, line: &str) {
        let _ = line;
    }
    /// LSTM training's progress, after every batch.
    fn training(&self, p: Progress) {
        let _ = p;
    }
    /// Training is over (the forecaster is fitted).
    fn trained(&self) {}
}

/// An observer that shows nothing.
pub struct Silent;

impl Observer for Silent {
    fn say(&self, _: &str) {}
}

/// A trace made ready to replay: what is replayed and how it is sized, the forecaster fitted
/// on its training part, and the runs to do.
pub struct Prepared {
    /// Shown before the progress of its runs (a suite's workload name).
    pub label: String,
    /// What is replayed and how it is sized.
    pub setup: Setup,
    /// The forecaster fitted on the training part.
    pub fitted: Fitted,
    /// The runs to do, in the order they are reported.
    pub jobs: Vec<Job>,
    /// The forecaster's name.
    pub fname: String,
    /// `--tail-share auto`'s choice on the validation part.
    pub tail_choice: Option<TailChoice>,
}

/// Loads `trace`, picks the replayed part (the longest gap-free stretch of the test part),
/// sizes the pool, fits the forecaster and, with `auto`, chooses the tail band.
pub fn prepare(a: &Options, trace: &Path, observer: &dyn Observer) -> Result<Prepared, Error> {
    let usage = Error::Usage;
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
    observer.say(&format!(
        "experiment: {} — replaying {} minutes from {}; peak {:.0} req/s (busiest minute), mean {:.1} req/s; instance = {} workers × {:.0} ms = {:.0} req/s; provisioning {}; SLO {} ms for {:.1}% of requests; forecaster {}; seed {}",
        trace.display(),
        counts.len(),
        chrono::DateTime::from_timestamp(start_time, 0)
            .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default(),
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
    ));
    let fitted = Fitted::fit(a.forecaster, &ds, &cfg, &planning(a, &cfg), |p| {
        observer.training(p)
    })
    .map_err(Error::Usage)?;
    observer.trained();
    if let Some((chosen, scores)) = fitted.choice() {
        observer.say(&format!(
            "auto: {} plans best on the validation part ({})",
            chosen,
            scores
                .iter()
                .map(|s| format!("{} {:.2}", s.name, s.pinball))
                .collect::<Vec<_>>()
                .join(", ")
        ));
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
    // The runs of one stretch feed their forecasters the same steps: one computes, the others
    // replay its answers (the experiment's steps are minutes, `assemble::spec_for`).
    let tail_choice =
        if (a.tail_share == TailShare::Auto || a.widen == Widen::Auto) && a.forecasting() {
            let val = fitted.memoised(60);
            let c = tail_choice::on_validation(a, trace, &ds, &setup, &val, &fname, observer)?;
            setup.tail_share = c.chosen;
            setup.widen = c.widen;
            Some(c)
        } else {
            None
        };
    Ok(Prepared {
        label: String::new(),
        jobs: jobs(a, &fname, static_mean, static_peak),
        setup,
        fitted: fitted.memoised(60),
        fname,
        tail_choice,
    })
}
