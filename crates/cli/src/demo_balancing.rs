//! `foresight demo --balancing`: starts three `foresight backend` processes (two normal, one
//! three times slower), puts the proxy in front of them, sends the same open-loop burst once
//! per algorithm, and prints per-instance request counts and latency percentiles. Every
//! process it starts is killed when it exits, also on Ctrl-C.

use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use foresight_loadgen::{Plan, Report, Summary};
use foresight_proxy::config::{RawBackend, RawConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(Args)]
pub struct BalancingArgs {
    /// With --balancing: requests per second sent through the proxy (open loop).
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// With --balancing: how long each algorithm's run sends, e.g. 5s.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// With --balancing: algorithms to compare, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "round-robin,p2c-ewma")]
    algorithms: Vec<String>,
}

const INSTANCES: [(&str, f64); 3] = [("fast-1", 1.0), ("fast-2", 1.0), ("slow-3x", 3.0)];

pub fn run(args: BalancingArgs) -> ExitCode {
    let rt = match crate::runtime(2) {
        Ok(rt) => rt,
        Err(e) => return crate::failure(e),
    };
    let result = rt.block_on(async {
        tokio::select! {
            r = demo(&args) => r,
            _ = crate::shutdown_signal() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => crate::failure(format!("{e:#}")),
    }
}

/// Starts one backend process on a free port and returns it with its address.
async fn start_backend(name: &str, slowdown: f64, seed: u64) -> anyhow::Result<(Child, String)> {
    let exe = std::env::current_exe().context("cannot find the foresight executable")?;
    let mut child = Command::new(exe)
        .args(["backend", "--listen", "127.0.0.1:0", "--name", name])
        .args([
            "--slowdown",
            &slowdown.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start a backend process")?;
    let stdout = child.stdout.take().context("backend stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .context("backend did not report its address within 10s")??
        .context("backend exited before listening")?;
    let addr = line
        .split("listen=")
        .nth(1)
        .context("unexpected backend output")?
        .trim()
        .to_string();
    Ok((child, addr))
}

async fn demo(args: &BalancingArgs) -> anyhow::Result<()> {
    println!("Foresight demo: 3 instances (8 workers each, /process ~20 ms mean; one 3x slower),");
    println!(
        "{:.0} req/s open-loop for {} per algorithm.\n",
        args.rate,
        humantime::format_duration(args.duration)
    );
    let mut children = Vec::new();
    let mut addrs = Vec::new();
    for (i, (name, slowdown)) in INSTANCES.iter().enumerate() {
        let (child, addr) = start_backend(name, *slowdown, i as u64 + 1).await?;
        println!("  started backend {name:<8} at {addr} (slowdown {slowdown})");
        children.push(child);
        addrs.push(addr);
    }
    let mut results = Vec::new();
    for algorithm in &args.algorithms {
        println!("\n▶ {algorithm}: sending…");
        let report = run_once(algorithm, &addrs, args).await?;
        print_report(&report);
        results.push((algorithm.clone(), report));
    }
    println!("\nSummary");
    println!(
        "  {:<22} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "algorithm", "p50 ms", "p95 ms", "p99 ms", "max ms", "failed"
    );
    for (name, r) in &results {
        println!(
            "  {:<22} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>8}",
            name,
            r.overall.p50_ms,
            r.overall.p95_ms,
            r.overall.p99_ms,
            r.overall.max_ms,
            r.failures()
        );
    }
    for mut c in children {
        let _ = c.kill().await;
    }
    Ok(())
}

async fn run_once(
    algorithm: &str,
    addrs: &[String],
    args: &BalancingArgs,
) -> anyhow::Result<Report> {
    let mut raw = RawConfig {
        listen: Some("127.0.0.1:0".into()),
        admin: Some("127.0.0.1:0".into()),
        backends: addrs
            .iter()
            .map(|a| RawBackend {
                address: format!("http://{a}"),
                weight: None,
            })
            .collect(),
        ..Default::default()
    };
    raw.balancer.algorithm = Some(algorithm.to_string());
    let config = raw.validate()?;
    let listener = foresight_http::bind(config.listen).await?;
    let admin = foresight_http::bind(config.admin).await?;
    let target = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let proxy = tokio::spawn(foresight_proxy::run(config, listener, admin, async move {
        let _ = stop_rx.await;
    }));
    let plan = Plan {
        target,
        paths: vec!["/process".into()],
        mode: foresight_loadgen::Mode::Open {
            profile: foresight_workload::Profile::Constant { rate: args.rate },
            arrivals: foresight_loadgen::Arrivals::Uniform,
        },
        duration: args.duration,
        timeout: Duration::from_secs(30),
        group_by: Some("x-foresight-instance".into()),
    };
    let report = foresight_loadgen::run(&plan).await;
    let _ = stop_tx.send(());
    proxy.await??;
    report
}

fn row(name: &str, s: &Summary) {
    println!(
        "  {:<10} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
        name, s.requests, s.p50_ms, s.p95_ms, s.p99_ms, s.max_ms
    );
}

fn print_report(r: &Report) {
    println!(
        "  {:<10} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "instance", "requests", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for (name, s) in &r.groups {
        row(name, s);
    }
    row("all", &r.overall);
    println!(
        "  achieved {:.0} req/s; {} failed of {} sent",
        r.achieved_rps,
        r.failures(),
        r.sent
    );
}
