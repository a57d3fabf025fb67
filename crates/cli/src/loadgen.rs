//! `foresight loadgen`: open-loop load (our JMeter) with profiles, trace replay, a routes mix,
//! HDR histograms, a live progress line, a summary, JSON and JMeter JTL output.

use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use foresight_loadgen::jtl::JtlWriter;
use foresight_loadgen::{Arrivals, Hooks, Mode, Plan, Report, Summary};
use foresight_workload::{Profile, Series};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{failure, usage_error};

#[derive(Args)]
pub struct LoadgenArgs {
    /// URL of the server under test, e.g. http://127.0.0.1:8080. A path in it is what is
    /// requested when no `--route` is given (http://host/auth requests /auth); `--route`
    /// paths are appended to it (http://host/api with --route /auth requests /api/auth).
    #[arg(long)]
    target: String,
    /// Requests per second (open loop): the constant rate, or the starting/base/mean rate of
    /// step, ramp, burst and diurnal profiles.
    #[arg(long)]
    rate: Option<f64>,
    /// Closed loop as fast as `--connections` allow (a capacity test, like wrk).
    #[arg(long, conflicts_with_all = ["rate", "profile", "trace"])]
    max_rate: bool,
    /// Connections for `--max-rate`.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// How long to send [default: 30s; a trace: its length].
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// constant, low (10 req/s), medium (50), high (200), step, ramp, burst or diurnal.
    #[arg(long)]
    profile: Option<String>,
    /// Target rate of step (after the step), ramp (at the end) and burst (during bursts;
    /// default 5 × --rate).
    #[arg(long)]
    to: Option<f64>,
    /// When the step or the first burst happens [default: half the duration / 10s].
    #[arg(long, value_parser = humantime::parse_duration)]
    at: Option<Duration>,
    /// Length of each burst.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    burst_length: Duration,
    /// Time between burst starts (one burst when absent).
    #[arg(long, value_parser = humantime::parse_duration)]
    every: Option<Duration>,
    /// Diurnal swing relative to the mean, 0–1.
    #[arg(long, default_value_t = 0.5)]
    amplitude: f64,
    /// Diurnal cycle [default: the duration].
    #[arg(long, value_parser = humantime::parse_duration)]
    period: Option<Duration>,
    /// Replay a `minute,count` trace CSV, scaled to `--peak-rps`.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// The rate of the trace's busiest minute.
    #[arg(long, default_value_t = 100.0)]
    peak_rps: f64,
    /// How long one trace minute lasts in the replay (time compression; 60s = real time).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    minute: Duration,
    /// First trace minute to replay (0 = the file's first).
    #[arg(long, default_value_t = 0)]
    from_minute: usize,
    /// A path and its weight in the mix, e.g. /auth=3, under the target's path; repeat for
    /// more [default: the target's path, else /].
    #[arg(long = "route")]
    routes: Vec<String>,
    /// Send times evenly spaced (uniform) or a Poisson process (poisson, seeded).
    #[arg(long, default_value = "uniform")]
    arrivals: String,
    /// Seed for Poisson arrivals.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A request unanswered after this is an error.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Also summarise latency by the value of this response header (e.g. x-foresight-instance).
    #[arg(long)]
    group_by: Option<String>,
    /// Write the summary as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write every request here in JMeter's JTL CSV layout.
    #[arg(long)]
    jtl: Option<PathBuf>,
    /// Runtime worker threads [default: number of cores].
    #[arg(long)]
    workers: Option<usize>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

/// `/auth=3` → ("/auth", 3); `/auth` → weight 1.
fn parse_route(s: &str) -> Result<(String, u32), String> {
    let (path, weight) = match s.rsplit_once('=') {
        Some((p, w)) => {
            let w: u32 = w.parse().map_err(|_| {
                format!("invalid value `{s}` for `--route`: the weight `{w}` is not a whole number")
            })?;
            (p, w)
        }
        None => (s, 1),
    };
    if !path.starts_with('/') {
        return Err(format!(
            "invalid value `{s}` for `--route`: a path starts with `/`"
        ));
    }
    if weight == 0 || weight > 1000 {
        return Err(format!(
            "invalid value `{s}` for `--route`: the weight must be 1–1000"
        ));
    }
    Ok((path.to_string(), weight))
}

/// Smooth weighted round-robin over the routes: the rotation the engine cycles through.
fn rotation(routes: &[(String, u32)]) -> Vec<String> {
    let total: i64 = routes.iter().map(|r| r.1 as i64).sum();
    let mut current = vec![0i64; routes.len()];
    (0..total)
        .map(|_| {
            for (c, r) in current.iter_mut().zip(routes) {
                *c += r.1 as i64;
            }
            let best = (0..routes.len())
                .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
                .unwrap_or(0);
            current[best] -= total;
            routes[best].0.clone()
        })
        .collect()
}

/// Highest rate any profile may ask for: each request is a task, and far above what one
/// machine can send (this 2-core one: ~60k req/s), a higher rate only exhausts memory.
const MAX_RATE: f64 = 1e6;
/// Most closed-loop connections.
const MAX_CONNECTIONS: usize = 100_000;

/// The profile, its length, and a one-line description.
fn profile(a: &LoadgenArgs) -> Result<(Profile, Duration, String), String> {
    let positive = |name: &str, v: f64| {
        if v.is_finite() && (0.0..=MAX_RATE).contains(&v) {
            Ok(v)
        } else {
            Err(format!(
                "invalid value `{v}` for `{name}`: expected a rate from 0 to {MAX_RATE} requests per second"
            ))
        }
    };
    if let Some(path) = &a.trace {
        if a.profile.is_some() || a.rate.is_some() {
            return Err("`--trace` replaces `--profile` and `--rate`; use `--peak-rps`".into());
        }
        positive("--peak-rps", a.peak_rps)?;
        if a.minute.is_zero() {
            return Err("invalid value `0s` for `--minute`: expected a positive duration".into());
        }
        let mut trace = Series::load_minute_counts(path).map_err(|e| e.to_string())?;
        let filled = trace.fill_gaps(15);
        let counts: Vec<f64> = trace
            .values
            .iter()
            .skip(a.from_minute)
            .map(|c| c.unwrap_or(0.0))
            .collect();
        if counts.is_empty() {
            return Err(format!(
                "invalid value `{}` for `--from-minute`: {} has {} minutes",
                a.from_minute,
                path.display(),
                trace.values.len()
            ));
        }
        let unfilled = trace
            .values
            .iter()
            .skip(a.from_minute)
            .filter(|c| c.is_none())
            .count();
        if unfilled > 0 {
            tracing::warn!(
                minutes = unfilled,
                "trace minutes missing for longer than 15 minutes are replayed as no traffic"
            );
        }
        let profile = Profile::trace(&counts, a.peak_rps, a.minute);
        let natural = profile.natural_length().unwrap_or_default();
        let duration = a.duration.unwrap_or(natural).min(natural);
        let what = format!(
            "trace {} from minute {} ({} minutes, {} gap minutes filled), peak {} req/s, one minute per {}",
            path.display(),
            a.from_minute,
            counts.len(),
            filled,
            a.peak_rps,
            humantime::format_duration(a.minute)
        );
        return Ok((profile, duration, what));
    }
    let duration = a.duration.unwrap_or(Duration::from_secs(30));
    let name = a.profile.as_deref().unwrap_or("constant");
    let rate = |default: Option<f64>| -> Result<f64, String> {
        match (a.rate, default) {
            (Some(r), _) => positive("--rate", r),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(format!("the `{name}` profile needs `--rate`")),
        }
    };
    let p = match name {
        "constant" => Profile::Constant { rate: rate(None)? },
        "low" => Profile::Constant { rate: rate(Some(10.0))? },
        "medium" => Profile::Constant { rate: rate(Some(50.0))? },
        "high" => Profile::Constant { rate: rate(Some(200.0))? },
        "step" => Profile::Step {
            before: rate(None)?,
            after: positive("--to", a.to.ok_or("the `step` profile needs `--to`")?)?,
            at: a.at.unwrap_or(duration / 2),
        },
        "ramp" => Profile::Ramp {
            from: rate(None)?,
            to: positive("--to", a.to.ok_or("the `ramp` profile needs `--to`")?)?,
            over: duration,
        },
        "burst" => {
            let base = rate(None)?;
            Profile::Burst {
                base,
                peak: positive("--to", a.to.unwrap_or(base * 5.0))?,
                at: a.at.unwrap_or(Duration::from_secs(10)),
                length: a.burst_length,
                every: a.every,
            }
        }
        "diurnal" => {
            if !(0.0..=1.0).contains(&a.amplitude) {
                return Err(format!(
                    "invalid value `{}` for `--amplitude`: expected 0–1",
                    a.amplitude
                ));
            }
            Profile::Diurnal {
                mean: rate(None)?,
                amplitude: a.amplitude,
                period: a.period.unwrap_or(duration),
            }
        }
        other => {
            return Err(format!(
                "invalid value `{other}` for `--profile`: expected one of constant, low, medium, high, step, ramp, burst, diurnal"
            ))
        }
    };
    let what = describe(name, &p);
    Ok((p, duration, what))
}

fn describe(name: &str, p: &Profile) -> String {
    let d = |d: &Duration| humantime::format_duration(*d).to_string();
    match p {
        Profile::Constant { rate } => format!("{name}: {rate} req/s"),
        Profile::Step { before, after, at } => {
            format!("step: {before} → {after} req/s at {}", d(at))
        }
        Profile::Ramp { from, to, over } => format!("ramp: {from} → {to} req/s over {}", d(over)),
        Profile::Burst {
            base,
            peak,
            at,
            length,
            every,
        } => format!(
            "burst: {base} req/s, {peak} req/s for {} from {}{}",
            d(length),
            d(at),
            every
                .map(|e| format!(" every {}", d(&e)))
                .unwrap_or_default()
        ),
        Profile::Diurnal {
            mean,
            amplitude,
            period,
        } => {
            format!(
                "diurnal: {mean} req/s ± {:.0}% over {}",
                amplitude * 100.0,
                d(period)
            )
        }
        other => format!("{name}: {other:?}"),
    }
}

/// `--target` as the base URL the engine sends to (scheme and authority) and the path (with
/// any query) the routes are under.
fn split_target(target: &str) -> Result<(String, String), String> {
    let uri: http::Uri = target
        .parse()
        .map_err(|e| format!("invalid value `{target}` for `--target`: {e}"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(format!(
            "invalid value `{target}` for `--target`: expected an http://host:port URL"
        ));
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Ok((format!("{scheme}://{authority}"), path.to_string()))
}

/// The routes to send: `--route`s under the target's path, or the target's path alone.
fn routes_under(target_path: &str, routes: &[String]) -> Result<Vec<(String, u32)>, String> {
    if routes.is_empty() {
        return Ok(vec![(target_path.to_string(), 1)]);
    }
    if target_path.contains('?') {
        return Err(format!(
            "`--target` has a query (`{target_path}`) and `--route`s are given: put the query \
             in the routes"
        ));
    }
    let base = target_path.trim_end_matches('/');
    routes
        .iter()
        .map(|r| parse_route(r).map(|(p, w)| (format!("{base}{p}"), w)))
        .collect()
}

fn plan(a: &LoadgenArgs) -> Result<(Plan, String), String> {
    let (target, target_path) = split_target(&a.target)?;
    let routes = routes_under(&target_path, &a.routes)?;
    let (mode, duration, what) = if a.max_rate {
        if a.connections == 0 || a.connections > MAX_CONNECTIONS {
            return Err(format!(
                "invalid value `{}` for `--connections`: expected 1–{MAX_CONNECTIONS}",
                a.connections
            ));
        }
        let d = a.duration.unwrap_or(Duration::from_secs(30));
        (
            Mode::Max {
                connections: a.connections,
            },
            d,
            format!("closed loop, {} connections", a.connections),
        )
    } else {
        let arrivals = match a.arrivals.as_str() {
            "uniform" => Arrivals::Uniform,
            "poisson" => Arrivals::Poisson { seed: a.seed },
            other => {
                return Err(format!(
                    "invalid value `{other}` for `--arrivals`: expected uniform or poisson"
                ))
            }
        };
        let (profile, d, what) = profile(a)?;
        (
            Mode::Open { profile, arrivals },
            d,
            format!("open loop, {} arrivals, {what}", a.arrivals),
        )
    };
    let plan = Plan {
        target,
        paths: rotation(&routes),
        mode,
        duration,
        timeout: a.timeout,
        group_by: a.group_by.clone(),
    };
    foresight_loadgen::validate(&plan).map_err(|e| format!("{e:#}"))?;
    Ok((plan, what))
}

pub fn run(a: LoadgenArgs) -> ExitCode {
    let (plan, what) = match plan(&a) {
        Ok(p) => p,
        Err(e) => return usage_error(e),
    };
    let jtl = match &a.jtl {
        None => None,
        Some(p) => match std::fs::File::create(p).and_then(|f| JtlWriter::new(BufWriter::new(f))) {
            Ok(w) => Some(Arc::new(Mutex::new(Some(w)))),
            Err(e) => return failure(format!("cannot write {}: {e}", p.display())),
        },
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(w) = a.workers {
        rt.worker_threads(w.max(1));
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return failure(e),
    };
    println!(
        "target {}: {what}, for {}",
        plan.target,
        humantime::format_duration(plan.duration)
    );
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(plan.duration.as_secs().max(1))
    };
    bar.set_style(
        ProgressStyle::with_template("[{bar:30}] {pos:>4}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut hooks = Hooks::default();
    let b = bar.clone();
    hooks.progress = Some(Box::new(move |p| {
        b.set_position(p.elapsed.as_secs());
        b.set_message(format!(
            "sent {}  answered {}  failed {}  {:.0} req/s  p99 {:.1} ms",
            p.sent, p.answered, p.failed, p.rps, p.p99_ms
        ));
    }));
    if let Some(w) = &jtl {
        let w = w.clone();
        hooks.samples = Some(Box::new(move |s, plan| {
            if let Some(w) = w.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                w.write(s, plan);
            }
        }));
    }
    let result = rt.block_on(foresight_loadgen::run_with(&plan, hooks));
    bar.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => return failure(e),
    };
    if let (Some(w), Some(path)) = (jtl, &a.jtl) {
        let w = w.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(Err(e)) = w.map(|w| w.finish()) {
            return failure(format!("cannot write {}: {e}", path.display()));
        }
    }
    print_summary(&report);
    if let Some(path) = &a.json {
        let json = to_json(&plan, &what, &report);
        if let Err(e) = std::fs::write(
            path,
            serde_json::to_string_pretty(&json).unwrap_or_default() + "\n",
        ) {
            return failure(format!("cannot write {}: {e}", path.display()));
        }
    }
    ExitCode::SUCCESS
}

fn row(name: &str, s: &Summary) {
    println!(
        "{:<14} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        name, s.requests, s.p50_ms, s.p95_ms, s.p99_ms, s.p999_ms, s.max_ms
    );
}

fn print_summary(r: &Report) {
    println!(
        "sent {} ({:.1} req/s), answered {:.1} req/s, errors {}, non-2xx {}, max send lag {:.1} ms",
        r.sent,
        r.send_rps,
        r.achieved_rps,
        r.errors,
        r.failures() - r.errors,
        r.max_send_lag_ms
    );
    print_table(r);
}

/// The latency table by route, overall and by group, and the statuses: what `loadgen` prints
/// after a run and `report` prints for a JTL file.
pub(crate) fn print_table(r: &Report) {
    println!(
        "{:<14} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "route", "requests", "p50 ms", "p95 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    for (path, s) in &r.routes {
        row(path, s);
    }
    row("all", &r.overall);
    for (g, s) in &r.groups {
        row(g, s);
    }
    let statuses: Vec<String> = r.statuses.iter().map(|(c, n)| format!("{c}={n}")).collect();
    println!("statuses: {}", statuses.join(" "));
}

fn to_json(plan: &Plan, what: &str, r: &Report) -> serde_json::Value {
    let mut json = serde_json::json!({
        "target": plan.target,
        "load": what,
        "duration_s": plan.duration.as_secs_f64(),
        "requests": r.sent,
        "max_send_lag_ms": r.max_send_lag_ms,
    });
    if let Some(m) = json.as_object_mut() {
        m.extend(summary_json(r));
    }
    json
}

/// The fields `loadgen --json` and `report --json` share: responses, errors, failures and
/// statuses, the rates, the overall percentiles, and the summaries by route and group.
pub(crate) fn summary_json(r: &Report) -> serde_json::Map<String, serde_json::Value> {
    let json = serde_json::json!({
        "responses": r.overall.requests,
        "errors": r.errors,
        "failures": r.failures(),
        "statuses": r.statuses.iter().map(|(c, n)| (c.to_string(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
        "send_rps": r.send_rps,
        "achieved_rps": r.achieved_rps,
        "p50_ms": r.overall.p50_ms,
        "p95_ms": r.overall.p95_ms,
        "p99_ms": r.overall.p99_ms,
        "p999_ms": r.overall.p999_ms,
        "max_ms": r.overall.max_ms,
        "routes": r.routes,
        "groups": r.groups,
    });
    match json {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_rotation_is_smooth() {
        let r = rotation(&[("/a".into(), 3), ("/b".into(), 1)]);
        assert_eq!(r, ["/a", "/a", "/b", "/a"]);
        assert!(parse_route("auth=1").is_err());
        assert!(parse_route("/a=0").is_err());
        assert_eq!(parse_route("/a").unwrap(), ("/a".to_string(), 1));
    }

    #[test]
    fn a_target_with_a_path_is_the_route_or_the_routes_base() {
        let split = |t: &str| split_target(t).unwrap();
        assert_eq!(split("http://h:8080"), ("http://h:8080".into(), "/".into()));
        assert_eq!(
            split("http://h:8080/auth"),
            ("http://h:8080".into(), "/auth".into())
        );
        assert_eq!(split("http://h/a?b=1").1, "/a?b=1");
        assert!(split_target("h:8080/x").is_err());
        let none: Vec<String> = Vec::new();
        assert_eq!(routes_under("/auth", &none).unwrap(), [("/auth".into(), 1)]);
        assert_eq!(routes_under("/", &none).unwrap(), [("/".into(), 1)]);
        let two = vec!["/login=3".to_string(), "/".to_string()];
        assert_eq!(
            routes_under("/api/", &two).unwrap(),
            [("/api/login".into(), 3), ("/api/".into(), 1)]
        );
        assert_eq!(routes_under("/", &two).unwrap()[0], ("/login".into(), 3));
        assert!(routes_under("/a?x=1", &two).unwrap_err().contains("query"));
    }
}
