//! `foresight generate`: synthetic per-minute traces in the shared `minute,count` format, for
//! `experiment`, `simulate` (trace profiles), `loadgen --trace` and `forecast eval`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use foresight_workload::RecurringBursts;

use crate::{failure, usage_error};

/// Longest trace generated (a year of minutes).
const MAX_DAYS: u32 = 366;

#[derive(Subcommand)]
pub enum GenerateCommand {
    /// A diurnal base with short bursts of k× at fixed minutes past chosen hours, with jitter
    /// and some bursts skipped.
    RecurringBursts(BurstArgs),
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
    let GenerateCommand::RecurringBursts(a) = c;
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
    let mut csv = String::with_capacity(minutes * 28 + 13);
    csv.push_str("minute,count\n");
    for (i, v) in cfg.per_minute(minutes).iter().enumerate() {
        let t = start + chrono::Duration::minutes(i as i64);
        csv.push_str(&format!(
            "{},{}\n",
            t.format("%Y-%m-%d %H:%M:%S"),
            v.round()
        ));
    }
    match std::fs::write(&a.out, csv) {
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
