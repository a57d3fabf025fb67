//! `foresight history`: a training CSV from a Prometheus server's history, so that a model is
//! trained on the user's own monitoring data (`foresight train --data FILE`).
//!
//! Each `--query NAME=PROMQL` is evaluated over the range with `/api/v1/query_range`; the one
//! named `rate` (requests per second) becomes the `value` column as requests per step, every
//! other name a feature column (`timestamp,value,cpu,...`). A step a query has no point for,
//! or a NaN, is an empty cell: the reader treats it as missing (docs/forecasting.md).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foresight_control::PromSource;

use crate::{failure, usage_error};

/// Longest export, in steps (as long as the longest trace the readers take).
const MAX_STEPS: usize = 5_000_000;
/// Most feature columns.
const MAX_FEATURES: usize = 32;

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    /// Prometheus base URL, e.g. http://127.0.0.1:9090.
    #[arg(long)]
    prometheus: String,
    /// NAME=PROMQL; repeat. `rate` (requests per second, one series) is required and is the
    /// forecast target; every other NAME is a feature column.
    #[arg(long = "query", required = true)]
    queries: Vec<String>,
    /// Start: RFC 3339 (2026-11-01T00:00:00Z), Unix seconds, or a duration before --to (7d).
    #[arg(long)]
    from: String,
    /// End: RFC 3339 or Unix seconds [default: now].
    #[arg(long)]
    to: Option<String>,
    /// Step between rows (1s to 1d); `foresight train` expects the step it trains on.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    step: Duration,
    /// The CSV to write.
    #[arg(long)]
    out: PathBuf,
    /// No progress on stderr.
    #[arg(long)]
    quiet: bool,
}

/// A point in time as the flags give it: RFC 3339 or Unix seconds.
fn instant(flag: &str, v: &str) -> Result<f64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp() as f64);
    }
    match v.parse::<f64>() {
        Ok(t) if t.is_finite() && (0.0..=253_402_300_799.0).contains(&t) => Ok(t),
        _ => Err(format!(
            "invalid value `{v}` for `{flag}`: expected RFC 3339 (2026-11-01T00:00:00Z) or Unix seconds"
        )),
    }
}

/// The checked queries: `rate` first, then the features in the order given.
fn queries(raw: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for q in raw {
        let Some((name, promql)) = q.split_once('=') else {
            return Err(format!(
                "invalid value `{q}` for `--query`: expected NAME=PROMQL"
            ));
        };
        let (name, promql) = (name.trim(), promql.trim());
        let valid = name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid || name == "timestamp" || name == "value" {
            return Err(format!(
                "invalid name `{name}` in `--query`: lower-case letters, digits and `_`, not `timestamp` or `value`"
            ));
        }
        if promql.is_empty() {
            return Err(format!("`--query {name}=` has no PromQL"));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("`--query {name}=…` is given twice"));
        }
        out.push((name.to_string(), promql.to_string()));
    }
    let Some(rate) = out.iter().position(|(n, _)| n == "rate") else {
        return Err("`--query rate=PROMQL` (requests per second) is required".into());
    };
    let r = out.remove(rate);
    out.insert(0, r);
    if out.len() - 1 > MAX_FEATURES {
        return Err(format!("at most {MAX_FEATURES} feature queries"));
    }
    Ok(out)
}

pub fn run(a: HistoryArgs) -> ExitCode {
    let step = a.step.as_secs_f64();
    if !(1.0..=86_400.0).contains(&step) || a.step.subsec_nanos() != 0 {
        return usage_error(format!(
            "invalid value `{}` for `--step`: expected whole seconds from 1s to 1d",
            humantime::format_duration(a.step)
        ));
    }
    if !a.prometheus.starts_with("http://") {
        return usage_error(format!(
            "invalid value `{}` for `--prometheus`: expected an http:// URL",
            a.prometheus
        ));
    }
    let queries = match queries(&a.queries) {
        Ok(q) => q,
        Err(e) => return usage_error(e),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let end = match &a.to {
        None => now,
        Some(v) => match instant("--to", v) {
            Ok(t) => t,
            Err(e) => return usage_error(e),
        },
    };
    let start = match humantime::parse_duration(&a.from) {
        Ok(back) => end - back.as_secs_f64(),
        Err(_) => match instant("--from", &a.from) {
            Ok(t) => t,
            Err(e) => return usage_error(format!("{e}, or a duration such as 7d")),
        },
    };
    // Rows on whole multiples of the step, as the live loop's steps are.
    let (start, end) = ((start / step).ceil() * step, (end / step).floor() * step);
    if end < start {
        return usage_error("`--from` is not before `--to`");
    }
    let steps = ((end - start) / step) as usize + 1;
    if steps > MAX_STEPS {
        return usage_error(format!(
            "{steps} steps from `--from` to `--to`: at most {MAX_STEPS}; use a longer --step"
        ));
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return failure(e),
    };
    let quiet = a.quiet;
    let result = rt.block_on(async {
        let mut columns: Vec<BTreeMap<i64, f64>> = Vec::new();
        for (name, promql) in &queries {
            let source =
                PromSource::new(&a.prometheus, promql).with_timeout(Duration::from_secs(30));
            let points = source
                .export(start, end, step, |done, total| {
                    if !quiet {
                        eprint!("\r{name}: {done} of {total} steps");
                    }
                })
                .await
                .map_err(|e| format!("--query {name}: {e}"))?;
            if !quiet {
                eprintln!();
            }
            let present = points.iter().filter(|(_, v)| v.is_finite()).count();
            if present == 0 {
                return Err(format!(
                    "--query {name}: Prometheus has no values for `{promql}` in the range"
                ));
            }
            columns.push(
                points
                    .into_iter()
                    .map(|(t, v)| (((t - start) / step).round() as i64, v))
                    .collect(),
            );
        }
        Ok::<_, String>(columns)
    });
    let columns = match result {
        Ok(c) => c,
        Err(e) => return failure(e),
    };
    match write_csv(&a.out, &queries, &columns, start, step, steps) {
        Ok(rows) => {
            eprintln!("wrote {rows} rows to {}", a.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => failure(format!("cannot write {}: {e}", a.out.display())),
    }
}

/// Writes the rows that have a `rate` value to a temporary file beside `out`, then renames it
/// over `out` (a failed export leaves no half file). Returns the rows written.
fn write_csv(
    out: &PathBuf,
    queries: &[(String, String)],
    columns: &[BTreeMap<i64, f64>],
    start: f64,
    step: f64,
    steps: usize,
) -> std::io::Result<usize> {
    let tmp = out.with_extension("csv.partial");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    let names: Vec<&str> = queries[1..].iter().map(|(n, _)| n.as_str()).collect();
    write!(w, "timestamp,value")?;
    for n in &names {
        write!(w, ",{n}")?;
    }
    writeln!(w)?;
    let mut rows = 0;
    for i in 0..steps as i64 {
        let cell = |c: &BTreeMap<i64, f64>| c.get(&i).copied().filter(|v| v.is_finite());
        let Some(rate) = cell(&columns[0]) else {
            continue; // a missing step: the reader sees the gap
        };
        let t = chrono::DateTime::from_timestamp((start + i as f64 * step) as i64, 0)
            .unwrap_or_default();
        write!(
            w,
            "{},{}",
            t.format("%Y-%m-%dT%H:%M:%SZ"),
            rate.max(0.0) * step
        )?;
        for c in &columns[1..] {
            match cell(c) {
                Some(v) => write!(w, ",{v}")?,
                None => write!(w, ",")?,
            }
        }
        writeln!(w)?;
        rows += 1;
    }
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, out)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_put_rate_first_and_name_mistakes() {
        let q = |v: &[&str]| queries(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let ok = q(&["cpu=sum(rate(x[1m]))", "rate=sum(rate(y[1m]))"]).unwrap();
        assert_eq!(ok[0].0, "rate");
        assert_eq!(ok[1], ("cpu".into(), "sum(rate(x[1m]))".into()));
        assert!(q(&["cpu=x"]).unwrap_err().contains("rate=PROMQL"));
        assert!(q(&["rate"]).unwrap_err().contains("NAME=PROMQL"));
        assert!(q(&["rate=x", "Bad=y"]).unwrap_err().contains("`Bad`"));
        assert!(q(&["rate=x", "value=y"]).unwrap_err().contains("`value`"));
        assert!(q(&["rate=x", "rate=y"]).unwrap_err().contains("twice"));
        assert!(q(&["rate="]).unwrap_err().contains("no PromQL"));
    }

    #[test]
    fn instants_are_rfc3339_or_unix_seconds() {
        assert_eq!(instant("--to", "1970-01-01T00:01:00Z").unwrap(), 60.0);
        assert_eq!(instant("--to", "120").unwrap(), 120.0);
        assert!(instant("--to", "yesterday").unwrap_err().contains("`--to`"));
        assert!(instant("--to", "1e300").is_err());
    }
}
