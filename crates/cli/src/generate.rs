//! `foresight generate`: synthetic per-minute traces in the shared `minute,count` format, for
//! `experiment`, `simulate` (trace profiles), `loadgen --trace` and `forecast eval`.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Datelike;
use clap::{Args, Subcommand};
use foresight_workload::suite::Workload;
use foresight_workload::RecurringBursts;

use crate::{failure, usage_error};

/// Longest trace generated (a year of minutes).
const MAX_DAYS: u32 = 366;

#[derive(Subcommand)]
pub enum GenerateCommand {
    /// A diurnal base with short bursts of k× at fixed minutes past chosen hours, with jitter
    /// and some bursts skipped.
    RecurringBursts(BurstArgs),
    /// A suite of workloads drawn from broad distributions of real shapes (diurnal and weekly
    /// cycles, trend, recurring bursts with jitter, skips and echoes, flash crowds, outages,
    /// gaps, Poisson to heavy-tailed noise): `wNNN.csv` and its parameters `wNNN.json` each,
    /// and `suite.json`.
    Suite(SuiteArgs),
}

#[derive(Args)]
pub struct SuiteArgs {
    /// Seed of the suite: the same seed draws the same workloads.
    #[arg(long)]
    seed: u64,
    /// Workloads to draw (1–1000).
    #[arg(long, default_value_t = 30)]
    count: u32,
    /// Days of minutes of each (21–366).
    #[arg(long, default_value_t = 28)]
    days: u32,
    /// First minute, `YYYY-MM-DD` (a Monday, midnight).
    #[arg(long, default_value = "2026-01-05")]
    start: String,
    /// Directory to write into (created if missing).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct BurstArgs {
    /// Write the trace here (`minute,count` CSV).
    #[arg(long)]
    out: PathBuf,
    /// Days of minutes (at most 366).
    #[arg(long, default_value_t = 21)]
    days: u32,
    /// First minute, `YYYY-MM-DD` (midnight).
    #[arg(long, default_value = "2026-01-05")]
    start: String,
    /// Mean of the diurnal base, requests per minute.
    #[arg(long, default_value_t = 600.0)]
    base: f64,
    /// Relative daily swing of the base (0–1).
    #[arg(long, default_value_t = 0.5)]
    amplitude: f64,
    /// Burst height as a multiple of the base.
    #[arg(long, default_value_t = 4.5)]
    factor: f64,
    /// Minutes past the hour at which bursts start (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "0,30")]
    minutes_past: Vec<u32>,
    /// First and last hour of the day with bursts.
    #[arg(long, default_value = "8-20")]
    hours: String,
    /// Length of a burst, minutes.
    #[arg(long, default_value_t = 3)]
    length: u32,
    /// Bursts start up to this many minutes early or late.
    #[arg(long, default_value_t = 1)]
    jitter: u32,
    /// Share of bursts skipped.
    #[arg(long, default_value_t = 0.1)]
    skip: f64,
    /// Relative noise of each minute.
    #[arg(long, default_value_t = 0.05)]
    noise: f64,
    /// Seed of jitter, skips and noise.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn run(c: GenerateCommand) -> ExitCode {
    let a = match c {
        GenerateCommand::RecurringBursts(a) => a,
        GenerateCommand::Suite(s) => return suite(&s),
    };
    let cfg = match settings(&a) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let Ok(start) = chrono::NaiveDate::parse_from_str(&a.start, "%Y-%m-%d") else {
        return usage_error(format!(
            "invalid value `{}` for `--start`: expected a date, YYYY-MM-DD",
            a.start
        ));
    };
    let start = start.and_hms_opt(0, 0, 0).expect("midnight exists");
    let minutes = a.days as usize * 1440;
    let counts: Vec<Option<f64>> = cfg.per_minute(minutes).into_iter().map(Some).collect();
    match std::fs::write(&a.out, csv(start, &counts)) {
        Ok(()) => {
            eprintln!(
                "generate: {} days of recurring bursts ({}× for {} min at :{} past {}, seed {}) written to {}",
                a.days,
                a.factor,
                a.length,
                a.minutes_past.iter().map(|m| format!("{m:02}")).collect::<Vec<_>>().join(", :"),
                a.hours,
                a.seed,
                a.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => failure(format!("cannot write {}: {e}", a.out.display())),
    }
}

fn settings(a: &BurstArgs) -> Result<RecurringBursts, String> {
    if a.days == 0 || a.days > MAX_DAYS {
        return Err(format!(
            "invalid value `{}` for `--days`: expected 1–{MAX_DAYS}",
            a.days
        ));
    }
    let (lo, hi) = a
        .hours
        .split_once('-')
        .and_then(|(l, h)| Some((l.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .filter(|(l, h)| l <= h && *h < 24)
        .ok_or_else(|| {
            format!(
                "invalid value `{}` for `--hours`: expected FIRST-LAST, hours 0–23",
                a.hours
            )
        })?;
    if !(a.base.is_finite() && a.base > 0.0 && a.base <= 1e9) {
        return Err(format!(
            "invalid value `{}` for `--base`: expected a positive number up to 1e9 requests per minute",
            a.base
        ));
    }
    if !(a.factor.is_finite() && a.factor > 0.0 && a.factor <= 1000.0) {
        return Err(format!(
            "invalid value `{}` for `--factor`: expected a positive number up to 1000",
            a.factor
        ));
    }
    let cfg = RecurringBursts {
        base: a.base,
        amplitude: a.amplitude,
        factor: a.factor,
        minutes_past: a.minutes_past.clone(),
        hours: (lo..=hi).collect(),
        length: a.length,
        jitter: a.jitter,
        skip: a.skip,
        noise: a.noise,
        seed: a.seed,
    };
    cfg.validate()
        .map_err(|e| format!("invalid recurring-bursts settings: {e}"))?;
    Ok(cfg)
}

/// The `minute,count` CSV of per-minute counts from `start`; a missing count is a missing row.
fn csv(start: chrono::NaiveDateTime, counts: &[Option<f64>]) -> String {
    let mut csv = String::with_capacity(counts.len() * 28 + 13);
    csv.push_str("minute,count\n");
    for (i, v) in counts.iter().enumerate() {
        if let Some(v) = v {
            let t = start + chrono::Duration::minutes(i as i64);
            csv.push_str(&format!(
                "{},{}\n",
                t.format("%Y-%m-%d %H:%M:%S"),
                v.round()
            ));
        }
    }
    csv
}

/// Most workloads in one suite.
const MAX_SUITE: u32 = 1000;

/// What `suite.json` records: how the suite was drawn and what it holds.
#[derive(serde::Serialize)]
struct SuiteIndex<'a> {
    seed: u64,
    days: u32,
    start: &'a str,
    workloads: Vec<&'a Workload>,
}

fn suite(a: &SuiteArgs) -> ExitCode {
    if a.count == 0 || a.count > MAX_SUITE {
        return usage_error(format!(
            "invalid value `{}` for `--count`: expected 1–{MAX_SUITE}",
            a.count
        ));
    }
    if !(21..=MAX_DAYS).contains(&a.days) {
        return usage_error(format!(
            "invalid value `{}` for `--days`: expected 21–{MAX_DAYS} (three weeks at least, so that a weekly cycle repeats)",
            a.days
        ));
    }
    let start = match chrono::NaiveDate::parse_from_str(&a.start, "%Y-%m-%d") {
        Ok(d) if d.weekday() == chrono::Weekday::Mon => {
            d.and_hms_opt(0, 0, 0).expect("midnight exists")
        }
        _ => {
            return usage_error(format!(
                "invalid value `{}` for `--start`: expected a Monday, YYYY-MM-DD",
                a.start
            ))
        }
    };
    if let Err(e) = std::fs::create_dir_all(&a.out) {
        return failure(format!("cannot create {}: {e}", a.out.display()));
    }
    let workloads: Vec<Workload> = (0..a.count)
        .map(|i| Workload::draw(a.seed, i, a.days))
        .collect();
    let bar = crate::progress::bar(
        false,
        u64::from(a.count),
        "workloads [{bar:30}] {pos}/{len} {elapsed}",
    );
    for w in &workloads {
        let g = w.generate();
        let json = serde_json::to_string_pretty(w).expect("plain data");
        let written = std::fs::write(a.out.join(format!("{}.csv", w.name)), csv(start, &g.counts))
            .and_then(|()| std::fs::write(a.out.join(format!("{}.json", w.name)), json + "\n"));
        if let Err(e) = written {
            return failure(format!("cannot write into {}: {e}", a.out.display()));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let index = SuiteIndex {
        seed: a.seed,
        days: a.days,
        start: &a.start,
        workloads: workloads.iter().collect(),
    };
    let json = serde_json::to_string_pretty(&index).expect("plain data");
    if let Err(e) = std::fs::write(a.out.join("suite.json"), json + "\n") {
        return failure(format!(
            "cannot write {}: {e}",
            a.out.join("suite.json").display()
        ));
    }
    eprintln!(
        "generate: a suite of {} workloads of {} days (seed {}) written to {}",
        a.count,
        a.days,
        a.seed,
        a.out.display()
    );
    ExitCode::SUCCESS
}
