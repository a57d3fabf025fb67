//! `foresight demo`: the README's main job, on embedded data with no external services. The
//! whole live loop, twice: the proxy with its control loop in this process, `foresight
//! backend` instances started and stopped by the process-pool actuator (each takes a
//! start-up delay to become ready), and the load generator replaying a morning of the NASA
//! trace, time-compressed, through the proxy. Once with the Kubernetes-HPA rule, once with
//! the hybrid policy on the embedded LSTM. Prints latency, errors and instance-seconds, and
//! writes a plot. Every process it starts is stopped when it ends, also on Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use foresight_control::{ActuatorKind, ControlConfig, ForecasterSpec, PolicySpec};
use foresight_loadgen::{Arrivals, Hooks, Mode, Plan, Report};
use foresight_proxy::config::RawConfig;
use foresight_scale::STATIC_TARGET;
use foresight_workload::{Profile, Series};
use indicatif::{ProgressBar, ProgressStyle};

use crate::demo_balancing::BalancingArgs;

const TRACE: &str = include_str!("../assets/nasa-1995-08-23.csv");
const MODEL_JSON: &str = include_str!("../assets/nasa-lstm/model.json");
const MODEL_WEIGHTS: &[u8] = include_bytes!("../assets/nasa-lstm/model.safetensors");
/// The replayed segment: 1995-08-24 06:00–09:59 (the morning ramp); what comes before it is
/// the forecaster's history.
const SEGMENT_START: &str = "1995-08-24 06:00:00";

#[derive(Args)]
pub struct DemoArgs {
    /// Live time per trace minute (time compression; 250ms replays 4 hours in 1 minute).
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    minute: Duration,
    /// Request rate of the busiest replayed minute.
    #[arg(long, default_value_t = 300.0)]
    peak_rps: f64,
    /// Instance start-up delay in trace time (the provisioning delay policies must plan for).
    #[arg(long, default_value = "4m", value_parser = humantime::parse_duration)]
    provision: Duration,
    /// Policies to run, comma-separated: hpa, reactive, hybrid, predictive, cost-optimal, static.
    #[arg(long, value_delimiter = ',', default_value = "hpa,hybrid")]
    policies: Vec<String>,
    /// Write the load and instances over time here (SVG).
    #[arg(long, default_value = "foresight-demo.svg")]
    plot: PathBuf,
    /// Also write the comparison as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Instead: the balancing demo (round-robin vs p2c-ewma around a slow instance).
    #[arg(long)]
    balancing: bool,
    #[command(flatten)]
    balancing_args: BalancingArgs,
}

/// Capacity of one instance: 4 workers at 40 ms mean service = 100 req/s.
const WORKERS: u32 = 4;
const SERVICE_MS: f64 = 40.0;

pub fn run(args: DemoArgs) -> ExitCode {
    if args.balancing {
        return crate::demo_balancing::run(args.balancing_args);
    }
    let rt = match crate::runtime(2) {
        Ok(rt) => rt,
        Err(e) => return crate::failure(e),
    };
    let result = rt.block_on(async {
        tokio::select! {
            r = demo(&args) => r,
            _ = crate::shutdown_signal() => Err(anyhow::anyhow!("interrupted; stopping every instance")),
        }
    });
    // Dropping the runtime drops the process pools, which kill their instances.
    drop(rt);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => crate::failure(format!("{e:#}")),
    }
}

/// One sample of a run, every trace minute.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Point {
    /// Trace minutes since the segment's start.
    pub minute: f64,
    /// Observed client rate (req/s).
    pub rps: f64,
    /// Forecast rate at the planning lead (req/s), 0 without a forecast.
    pub forecast_rps: f64,
    /// Instances serving.
    pub ready: usize,
    /// Instances serving or starting.
    pub instances: usize,
}

struct Outcome {
    policy: String,
    report: Report,
    points: Vec<Point>,
    /// Trace-time instance-hours (ready + starting, integrated).
    instance_hours: f64,
    decisions: usize,
    /// The forecaster at the end (for `auto`, what it chose) and the candidates' scores.
    forecaster: String,
    candidates: Vec<foresight_forecast::Candidate>,
}

struct Data {
    counts: Vec<f64>,
    max: f64,
    history: PathBuf,
    model: PathBuf,
}

fn prepare(dir: &Path) -> anyhow::Result<Data> {
    let mut trace = Series::parse_minute_counts(TRACE, "embedded NASA excerpt")?;
    trace.fill_gaps(15);
    let start = chrono::NaiveDateTime::parse_from_str(SEGMENT_START, "%Y-%m-%d %H:%M:%S")?;
    let first = chrono::DateTime::from_timestamp(trace.start, 0)
        .context("the embedded trace's first minute")?
        .naive_utc();
    let offset = (start - first).num_minutes() as usize;
    let counts: Vec<f64> = trace.values[offset..]
        .iter()
        .map(|c| c.unwrap_or(0.0))
        .collect();
    let max = counts.iter().copied().fold(1.0, f64::max);
    // History = the rows before the segment, as a file the control loop reads.
    let history = dir.join("history.csv");
    let mut text = String::from("minute,count\n");
    for (i, c) in trace.values[..offset].iter().enumerate() {
        if let Some(c) = c {
            let t = first + chrono::Duration::minutes(i as i64);
            text.push_str(&format!("{},{:.0}\n", t.format("%Y-%m-%d %H:%M:%S"), c));
        }
    }
    std::fs::write(&history, text)?;
    let model = dir.join("nasa-lstm");
    std::fs::create_dir_all(&model)?;
    std::fs::write(model.join("model.json"), MODEL_JSON)?;
    std::fs::write(model.join("model.safetensors"), MODEL_WEIGHTS)?;
    Ok(Data {
        counts,
        max,
        history,
        model,
    })
}

fn control_config(policy: &str, args: &DemoArgs, data: &Data) -> anyhow::Result<ControlConfig> {
    let compress = args.minute.as_secs_f64() / 60.0;
    let live = |trace_secs: f64| Duration::from_secs_f64(trace_secs * compress);
    let policy_kind = match policy.parse::<PolicySpec>() {
        Ok(PolicySpec::Oracle) | Err(_) => anyhow::bail!(
            "invalid value `{policy}` for `--policies`: expected hpa, reactive, hybrid, predictive, cost-optimal or static"
        ),
        Ok(p) => p,
    };
    let capacity = f64::from(WORKERS) * 1000.0 / SERVICE_MS;
    let defaults = ControlConfig::default();
    Ok(ControlConfig {
        // The HPA's 15 s period, compressed like the trace.
        interval: live(defaults.interval.as_secs_f64()).max(Duration::from_millis(100)),
        step: args.minute,
        policy: policy_kind,
        // `static` holds `min`: enough for the peak at 70%.
        min: if policy_kind == PolicySpec::Static {
            foresight_scale::instances_for(args.peak_rps, capacity, STATIC_TARGET)
        } else {
            1
        },
        max: 12,
        capacity_rps: capacity,
        workers: WORKERS,
        // Plan a trace minute past the start-up delay: the instance's first minute of service.
        lead: live(args.provision.as_secs_f64() + 60.0),
        margin: live(defaults.margin.as_secs_f64()),
        stabilisation: live(policy_kind.default_scale_in_window()),
        forecaster: if !policy_kind.uses_forecaster() {
            ForecasterSpec::None
        } else {
            ForecasterSpec::Auto
        },
        model: Some(data.model.clone()),
        history: Some(data.history.clone()),
        // Live requests per step for one history count.
        history_scale: args.peak_rps * args.minute.as_secs_f64() / data.max,
        actuator: ActuatorKind::Process {
            backend_args: vec![
                "--workers".into(),
                WORKERS.to_string(),
                "--route".into(),
                format!("/process={SERVICE_MS}ms"),
                "--startup-delay".into(),
                humantime::format_duration(live(args.provision.as_secs_f64())).to_string(),
            ],
        },
        ..defaults
    })
}

async fn run_policy(
    policy: &str,
    args: &DemoArgs,
    data: &Data,
    bar: &ProgressBar,
) -> anyhow::Result<Outcome> {
    let control = control_config(policy, args, data)?;
    let raw = RawConfig {
        listen: Some("127.0.0.1:0".into()),
        admin: Some("127.0.0.1:0".into()),
        ..Default::default()
    };
    let config = raw.validate()?;
    let listener = foresight_http::bind(config.listen).await?;
    let admin = foresight_http::bind(config.admin).await?;
    let target = format!("http://{}", listener.local_addr()?);
    let handle: Arc<Mutex<Option<foresight_control::Handle>>> = Arc::default();
    let slot = handle.clone();
    let drain = config.drain_timeout;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let gauges = foresight_control::ControlFamilies::new();
    let proxy = tokio::spawn(foresight_proxy::run_with(
        config,
        vec![gauges.clone()],
        listener,
        admin,
        async move {
            let _ = stop_rx.await;
        },
        move |pools, _| {
            let pool = pools[0].clone();
            let h = foresight_control::start(
                control,
                pool.clone(),
                gauges.for_service(pool.service()),
                drain,
            )
            .map_err(anyhow::Error::msg)?;
            let router = foresight_control::routes(&[&h]);
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(h);
            Ok(Some(router))
        },
    ));
    // Wait for the first instance.
    let started = Instant::now();
    let status = loop {
        if let Some(h) = handle.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let s = h.status.clone();
            if s.lock().unwrap_or_else(|p| p.into_inner()).ready >= 1 {
                break s;
            }
        }
        if proxy.is_finished() {
            proxy.await??;
            anyhow::bail!("the proxy stopped early");
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "no instance became ready within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let profile = Profile::trace(&data.counts, args.peak_rps, args.minute);
    let duration = profile.natural_length().unwrap_or_default();
    let plan = Plan {
        target,
        paths: vec!["/process".into()],
        mode: Mode::Open {
            profile,
            arrivals: Arrivals::Poisson { seed: 7 },
        },
        duration,
        timeout: Duration::from_secs(30),
        group_by: None,
    };
    // Sample the loop's view once per trace minute.
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let sampler = {
        let status = status.clone();
        let minute = args.minute;
        let lead = control_lead(args);
        tokio::spawn(async move {
            let mut points = Vec::new();
            let mut tick = tokio::time::interval(minute);
            let t0 = Instant::now();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut done_rx => return points,
                }
                let s = status.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let forecast = s
                    .forecast
                    .as_deref()
                    .and_then(|f| foresight_scale::peak_between(f, lead.0, lead.1))
                    .unwrap_or(0.0);
                points.push(Point {
                    minute: t0.elapsed().as_secs_f64() / minute.as_secs_f64(),
                    rps: s.observed_rps,
                    forecast_rps: forecast,
                    ready: s.ready,
                    instances: s.ready + s.starting,
                });
            }
        })
    };
    bar.set_length(duration.as_secs().max(1));
    bar.set_position(0);
    bar.set_prefix(policy.to_string());
    let mut hooks = Hooks::default();
    let b = bar.clone();
    let st = status.clone();
    hooks.progress = Some(Box::new(move |p| {
        let s = st.lock().unwrap_or_else(|p| p.into_inner()).clone();
        b.set_position(p.elapsed.as_secs());
        b.set_message(format!(
            "{:>4.0} req/s  instances {} ready + {} starting  p99 {:.0} ms  failed {}",
            p.rps, s.ready, s.starting, p.p99_ms, p.failed
        ));
    }));
    let report = foresight_loadgen::run_with(&plan, hooks).await?;
    let _ = done_tx.send(());
    let points = sampler.await.unwrap_or_default();
    let decisions = status
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .decisions
        .len();
    let h = handle.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(h) = h {
        h.shutdown().await;
    }
    let _ = stop_tx.send(());
    proxy.await??;
    // One point per trace minute.
    let instance_hours = points.iter().map(|p| p.instances as f64).sum::<f64>() / 60.0;
    let (name, forecaster, candidates) = {
        let s = status.lock().unwrap_or_else(|p| p.into_inner());
        (
            s.policy.clone(),
            s.forecaster.clone(),
            s.forecaster_candidates.clone(),
        )
    };
    Ok(Outcome {
        policy: name,
        report,
        points,
        instance_hours,
        decisions,
        forecaster,
        candidates,
    })
}

/// The window the predictive policies plan for, in live seconds ahead.
fn control_lead(args: &DemoArgs) -> (f64, f64) {
    let compress = args.minute.as_secs_f64() / 60.0;
    let lead = (args.provision.as_secs_f64() + 60.0) * compress;
    (lead, lead + 120.0 * compress)
}

async fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.minute >= Duration::from_millis(100),
        "invalid value for `--minute`: at least 100ms"
    );
    anyhow::ensure!(
        args.peak_rps > 0.0 && args.peak_rps <= 5000.0,
        "invalid value for `--peak-rps`: 0 < rate ≤ 5000"
    );
    let dir = std::env::temp_dir().join(format!("foresight-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let data = prepare(&dir)?;
    let capacity = f64::from(WORKERS) * 1000.0 / SERVICE_MS;
    println!(
        "Foresight demo: the live loop on a NASA morning (1995-08-24 06:00–10:00), replayed with"
    );
    println!(
        "one trace minute per {} ({}× faster), peak {} req/s, through the proxy.",
        humantime::format_duration(args.minute),
        (60.0 / args.minute.as_secs_f64()).round(),
        args.peak_rps
    );
    println!(
        "Instances: `foresight backend` processes, {WORKERS} workers × {SERVICE_MS} ms = {capacity:.0} req/s each, ready {} (trace time) after launch.",
        humantime::format_duration(args.provision)
    );
    println!("Policies: {}; hybrid forecasts with `auto`: the embedded LSTM (trained on the first 70% of the NASA trace), seasonal quantiles, Holt-Winters and a moving average, scored on the last 30% of the 30 hours before the morning; the best plans.\n", args.policies.join(", "));
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>7} [{bar:30}] {pos:>3}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut outcomes = Vec::new();
    for policy in &args.policies {
        let o = run_policy(policy, args, &data, &bar).await?;
        bar.println(format!(
            "{:>7}: done, p99 {:.0} ms, {} failed, {:.1} instance-hours",
            o.policy,
            o.report.overall.p99_ms,
            o.report.failures(),
            o.instance_hours
        ));
        outcomes.push(o);
    }
    bar.finish_and_clear();
    println!();
    println!(
        "{:<22} {:>8} {:>8} {:>8} {:>9} {:>8} {:>11} {:>10}",
        "policy", "p50 ms", "p95 ms", "p99 ms", "p99.9 ms", "failed", "inst-hours", "decisions"
    );
    for o in &outcomes {
        let r = &o.report.overall;
        println!(
            "{:<22} {:>8.1} {:>8.1} {:>8.1} {:>9.1} {:>8} {:>11.1} {:>10}",
            o.policy,
            r.p50_ms,
            r.p95_ms,
            r.p99_ms,
            r.p999_ms,
            o.report.failures(),
            o.instance_hours,
            o.decisions
        );
    }
    println!(
        "(instance-hours in trace time: the 4-hour morning; requests {} per run)",
        outcomes.first().map_or(0, |o| o.report.sent)
    );
    for o in outcomes.iter().filter(|o| !o.candidates.is_empty()) {
        let scores: Vec<String> = o
            .candidates
            .iter()
            .map(|c| format!("{} {:.2}", c.name, c.pinball))
            .collect();
        println!(
            "{}: {}; pinball loss of the planned peak per candidate: {}",
            o.policy,
            o.forecaster,
            scores.join(", ")
        );
    }
    let series: Vec<(String, Vec<Point>)> = outcomes
        .iter()
        .map(|o| (o.policy.clone(), o.points.clone()))
        .collect();
    crate::plot::live_demo(&args.plot, &series, capacity)?;
    println!("plot: {}", args.plot.display());
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "segment": "NASA 1995-08-24 06:00-10:00",
            "minute_ms": args.minute.as_millis() as u64,
            "peak_rps": args.peak_rps,
            "policies": outcomes.iter().map(|o| serde_json::json!({
                "name": o.policy,
                "requests": o.report.sent,
                "failures": o.report.failures(),
                "p50_ms": o.report.overall.p50_ms,
                "p95_ms": o.report.overall.p95_ms,
                "p99_ms": o.report.overall.p99_ms,
                "p999_ms": o.report.overall.p999_ms,
                "instance_hours": o.instance_hours,
                "decisions": o.decisions,
                "forecaster": o.forecaster,
                "candidates": o.candidates,
                "timeline": o.points,
            })).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
