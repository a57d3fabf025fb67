//! `foresight`: one binary for the whole product. Each subcommand is a thin shell over a library
//! crate; this file parses flags, sets up logging and the runtime, and maps errors to exit codes
//! (64 for configuration and usage errors, 1 for the rest).
//!
//! # Layout
//! - `main.rs`: the subcommands' flags, `serve` (the proxy with its control loops), `check`
//! - one file per subcommand: `controller`, `keda`, `demo` (with `demo_balancing`),
//!   `simulate`, `experiment`, `forecast`, `generate`, `history`, `loadgen`, `report` (JTL),
//!   `top`
//! - `experiment/` (the experiment itself is `foresight-experiment`): `report` (tables,
//!   JSON, plots of one trace), `suite` (`--suite`: bars, tables, JSON, the CDF plot),
//!   `parity_tests` (its autoscaler against the live loop's)
//! - `plot` (SVG charts), `progress` (bars for long work)
#![forbid(unsafe_code)]

mod controller;
mod demo;
mod demo_balancing;
mod experiment;
mod forecast;
mod generate;
mod history;
#[cfg(feature = "keda")]
mod keda;
mod loadgen;
mod plot;
mod progress;
mod report;
mod simulate;
mod top;

/// mimalloc: the proxy allocates per request (headers, bodies, futures); glibc malloc cost ~10%
/// of a proxied request's CPU in profiles, mimalloc about half of that (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use foresight_balance::Algorithm;
use foresight_proxy::config::{Overrides, RawConfig};
use foresight_proxy::ProxyConfig;

/// Exit status for configuration and usage errors (`EX_USAGE` from sysexits.h).
const EX_USAGE: u8 = 64;

#[derive(Parser)]
#[command(name = "foresight", version, about = "A load balancer and auto-scaler that forecasts traffic", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the reverse proxy in front of a pool of instances.
    Serve(ServeArgs),
    /// Check a configuration file as `serve` would load it (and a reload would), without
    /// serving: exit 0 when valid, 64 with the reason (like `nginx -t`).
    Check(CheckArgs),
    /// Run the control loops without the proxy (a control plane apart from the proxies),
    /// optionally electing one leader among replicas with a Kubernetes Lease.
    Controller(controller::ControllerArgs),
    /// Run an example service instance with emulated capacity (for demos, tests, experiments).
    Backend(BackendArgs),
    /// List the balancing algorithms.
    Algorithms,
    /// The live loop on embedded data: HPA vs hybrid scaling of real processes under a replayed trace.
    Demo(demo::DemoArgs),
    /// Run a scenario in the discrete-event simulator for several algorithms and compare.
    Simulate(simulate::SimulateArgs),
    /// Train the LSTM forecaster on a trace and save it (model, configuration and scalers).
    Train(forecast::TrainArgs),
    /// Evaluate forecasters on a trace, or forecast with a saved model.
    #[command(subcommand)]
    Forecast(forecast::ForecastCommand),
    /// Send open-loop HTTP load (profiles, trace replay, routes mix) and report latency.
    Loadgen(loadgen::LoadgenArgs),
    /// Read a JTL file (JMeter's or `loadgen --jtl`'s) into loadgen's summary table and plots.
    Report(report::ReportArgs),
    /// The control loops of a running serve or controller as a table refreshed in the terminal.
    Top(top::TopArgs),
    /// Compare static, reactive (HPA) and predictive scaling on a replayed trace, in simulation.
    Experiment(experiment::ExperimentArgs),
    /// Export a training CSV (rate and feature columns) from Prometheus's history.
    History(history::HistoryArgs),
    /// Write a synthetic per-minute trace (`minute,count` CSV).
    #[command(subcommand)]
    Generate(generate::GenerateCommand),
}

#[derive(Args)]
struct CheckArgs {
    /// The TOML configuration file to check.
    #[arg(long, short)]
    config: PathBuf,
}

#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file (see docs/configuration.md); flags override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Client-facing listen address [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// Admin API and /metrics listen address [default: 127.0.0.1:9900].
    #[arg(long)]
    admin: Option<String>,
    /// An instance, e.g. http://127.0.0.1:9001; repeat for more. Replaces the file's list.
    #[arg(long = "backend")]
    backends: Vec<String>,
    /// Balancing algorithm [default: p2c-ewma]; see `foresight algorithms`.
    #[arg(long)]
    algorithm: Option<String>,
    /// Seed for the balancer's random choices [default: 1].
    #[arg(long)]
    seed: Option<u64>,
    /// Runtime worker threads [default: number of cores].
    #[arg(long)]
    workers: Option<i64>,
}

#[derive(Args)]
struct BackendArgs {
    /// Listen address; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    /// Requests served at once.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Requests that may wait for a worker; beyond it the instance answers 503.
    #[arg(long, default_value_t = 128)]
    queue: usize,
    /// Service-time distribution: exponential, lognormal, lognormal:SIGMA or constant.
    #[arg(long, default_value = "exponential")]
    distribution: String,
    /// A route and its mean service time, e.g. /auth=5ms; repeat for more. Replaces the
    /// defaults (/auth=5ms, /process=20ms, /external=50ms).
    #[arg(long = "route")]
    routes: Vec<String>,
    /// Multiply every service time (3 = three times slower).
    #[arg(long, default_value_t = 1.0)]
    slowdown: f64,
    /// Time before /ready answers 200 and routes serve, e.g. 5s.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    startup_delay: Duration,
    /// Seed of the service-time draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Instance name in the x-foresight-instance header [default: the listen address].
    #[arg(long, default_value = "")]
    name: String,
}

/// Logs go to stderr (stdout carries results), filtered by `RUST_LOG` or `default`.
fn init_logging(default: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Completes on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

/// A runtime of `workers` threads (one: the current thread).
fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    }
}

/// The configuration `serve` runs: the file (if any) with the flags over it, validated, and
/// each service's control section checked; the same messages at start and on reload.
fn serve_config(
    args: &ServeArgs,
) -> Result<(ProxyConfig, Vec<Option<foresight_control::ControlConfig>>), String> {
    let mut raw = match &args.config {
        Some(path) => RawConfig::from_file(path).map_err(|e| e.to_string())?,
        None => RawConfig::default(),
    };
    raw.apply(Overrides {
        listen: args.listen.clone(),
        admin: args.admin.clone(),
        workers: args.workers,
        algorithm: args.algorithm.clone(),
        seed: args.seed,
        backends: args.backends.clone(),
        admin_token: std::env::var("FORESIGHT_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
    });
    let config = raw.validate().map_err(|e| e.to_string())?;
    for (i, s) in config.services.iter().enumerate() {
        let unbuilt = match s.discovery {
            Some(foresight_proxy::config::Discovery::Kubernetes(_))
                if !cfg!(feature = "kubernetes") =>
            {
                Some((
                    "kubernetes",
                    "kubernetes",
                    "; without it, use type = \"dns\" with a headless Service's name",
                ))
            }
            Some(foresight_proxy::config::Discovery::AwsAsg(_)) if !cfg!(feature = "aws") => {
                Some(("aws-asg", "aws", ""))
            }
            _ => None,
        };
        if let Some((kind, feature, hint)) = unbuilt {
            let at = if raw.services.is_empty() {
                String::new()
            } else {
                format!("services[{i}] ({}): ", s.name)
            };
            return Err(format!(
                "{at}discovery.type = \"{kind}\" needs foresight built with the `{feature}` \
                 feature (cargo build --release --features {feature}){hint}"
            ));
        }
    }
    let controls = foresight_control::ControlConfig::for_services(
        &config.services,
        raw.services.is_empty(),
        foresight_control::Mode::Serve,
        config.drain_timeout,
    )?;
    Ok((config, controls))
}

fn check(args: CheckArgs) -> ExitCode {
    let serve = ServeArgs {
        config: Some(args.config.clone()),
        listen: None,
        admin: None,
        backends: Vec::new(),
        algorithm: None,
        seed: None,
        workers: None,
    };
    let (config, controls) = match serve_config(&serve) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    if let Some(e) = foresight_proxy::reload::unserved(&config) {
        return usage_error(format!("{}: {e}", args.config.display()));
    }
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    let services: Vec<String> = config
        .services
        .iter()
        .zip(&controls)
        .map(|(s, c)| {
            let mut what = Vec::new();
            if !s.backends.is_empty() {
                what.push(format!("{} backend(s)", s.backends.len()));
            }
            if s.discovery.is_some() {
                what.push("discovery".to_string());
            }
            if let Some(c) = c {
                what.push(format!("control {}", c.policy));
            }
            format!("{} ({})", s.name, what.join(", "))
        })
        .collect();
    println!(
        "foresight check: {} is valid: {} service(s): {}; {} route(s)",
        args.config.display(),
        services.len(),
        services.join("; "),
        config.routes.routes().len()
    );
    ExitCode::SUCCESS
}

fn serve(args: ServeArgs) -> ExitCode {
    let (config, controls) = match serve_config(&args) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let args = std::sync::Arc::new(args);
    let loader: foresight_proxy::Loader =
        std::sync::Arc::new(move || serve_config(&args).map(|(c, _)| c));
    let rt = match runtime(config.workers) {
        Ok(rt) => rt,
        Err(e) => return failure(e),
    };
    let result = rt.block_on(async move {
        let listener = foresight_http::bind(config.listen).await?;
        let admin = foresight_http::bind(config.admin).await?;
        println!(
            "foresight serve: proxy={} admin={}",
            listener.local_addr()?,
            admin.local_addr()?
        );
        for s in &config.services {
            tracing::info!(
                service = %s.name,
                algorithm = %s.balancer.config.algorithm,
                backends = s.backends.len(),
                control = s.control.is_some(),
                "service"
            );
        }
        tracing::info!(
            proxy = %listener.local_addr()?,
            admin = %admin.local_addr()?,
            services = config.services.len(),
            routes = config.routes.routes().len(),
            workers = config.workers,
            "serving"
        );
        let drain_timeout = config.drain_timeout;
        #[cfg(feature = "kubernetes")]
        let kube_discovery: Vec<Option<foresight_proxy::config::KubernetesDiscovery>> = config
            .services
            .iter()
            .map(|s| match &s.discovery {
                Some(foresight_proxy::config::Discovery::Kubernetes(k)) => Some(k.clone()),
                _ => None,
            })
            .collect();
        #[cfg(feature = "aws")]
        let aws_discovery: Vec<Option<foresight_proxy::config::AwsAsgDiscovery>> = config
            .services
            .iter()
            .map(|s| match &s.discovery {
                Some(foresight_proxy::config::Discovery::AwsAsg(d)) => Some(d.clone()),
                _ => None,
            })
            .collect();
        let reload = Some(loader);
        // Every service's `foresight_control_*` series, in the proxy's registry.
        let gauges = foresight_control::ControlFamilies::new();
        foresight_proxy::run_reloadable(
            config,
            reload,
            vec![gauges.clone()],
            listener,
            admin,
            shutdown_signal(),
            move |pools, supervisor| {
                #[cfg(feature = "kubernetes")]
                for (k, pool) in kube_discovery.into_iter().zip(pools) {
                    if let Some(k) = k {
                        foresight_kube::discovery::start(
                            pool.clone(),
                            k,
                            drain_timeout,
                            supervisor,
                        );
                    }
                }
                #[cfg(feature = "aws")]
                for (d, pool) in aws_discovery.into_iter().zip(pools) {
                    if let Some(d) = d {
                        foresight_aws::discovery::start(pool.clone(), d, drain_timeout, supervisor);
                    }
                }
                let mut handles = Vec::new();
                for (c, pool) in controls.into_iter().zip(pools) {
                    if let Some(c) = c {
                        let name = pool.service().to_string();
                        let h = foresight_control::start(
                            c,
                            pool.clone(),
                            gauges.for_service(&name),
                            drain_timeout,
                        )
                        .map_err(|e| anyhow::anyhow!("control loop of service {name}: {e}"))?;
                        handles.push((name, h));
                    }
                }
                if handles.is_empty() {
                    return Ok(None);
                }
                let router =
                    foresight_control::routes(&handles.iter().map(|(_, h)| h).collect::<Vec<_>>());
                // The supervisor owns the loops: at shutdown each stops, then its actuator
                // drains and stops the instances it started.
                for (name, h) in handles {
                    supervisor.spawn_with(
                        format!("control loop of {name}"),
                        |cancelled| async move {
                            cancelled.cancelled().await;
                            h.shutdown().await;
                            tracing::info!(service = %name, "control loop stopped");
                        },
                    );
                }
                Ok(Some(router))
            },
        )
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failure(e),
    }
}

fn backend(args: BackendArgs) -> ExitCode {
    let distribution = match args.distribution.parse::<foresight_backend::Distribution>() {
        Ok(d) => d,
        Err(e) => return usage_error(format!("invalid value for `--distribution`: {e}")),
    };
    let routes = if args.routes.is_empty() {
        foresight_backend::BackendConfig::default().routes
    } else {
        match args
            .routes
            .iter()
            .map(|r| r.parse())
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(r) => r,
            Err(e) => return usage_error(e),
        }
    };
    let config = foresight_backend::BackendConfig {
        workers: args.workers,
        queue: args.queue,
        distribution,
        routes,
        slowdown: args.slowdown,
        startup_delay: args.startup_delay,
        seed: args.seed,
        name: args.name,
    };
    if let Err(e) = config.validate() {
        return usage_error(e);
    }
    // One thread: an instance emulates capacity with timers, and twenty of them must fit on two
    // cores.
    let rt = match runtime(1) {
        Ok(rt) => rt,
        Err(e) => return failure(e),
    };
    let result = rt.block_on(async move {
        let listener = foresight_http::bind(args.listen).await?;
        println!("foresight backend: listen={}", listener.local_addr()?);
        tracing::info!(listen = %listener.local_addr()?, slowdown = config.slowdown, "backend serving");
        foresight_backend::run(config, listener, shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failure(e),
    }
}

fn algorithms() -> ExitCode {
    println!(
        "{:<22} {:<8} {:<12} DESCRIPTION",
        "NAME", "CLASS", "DECISION"
    );
    for a in Algorithm::ALL {
        let class = if a.is_dynamic() { "dynamic" } else { "static" };
        let decision = if a.is_centralised() {
            "centralised"
        } else {
            "distributed"
        };
        println!(
            "{:<22} {:<8} {:<12} {}",
            a.name(),
            class,
            decision,
            a.description()
        );
    }
    ExitCode::SUCCESS
}

pub(crate) fn usage_error(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EX_USAGE)
}

pub(crate) fn failure(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    // Before any thread exists: candle's CPU kernels read this on every call.
    foresight_forecast::init_threads();
    // A bad flag is a usage error (64, as for bad configuration), not clap's default 2.
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() => {
            let _ = e.print();
            return ExitCode::from(EX_USAGE);
        }
        Err(e) => e.exit(),
    };
    // The demo prints its own progress; the proxy's info logs would bury it.
    init_logging(
        if matches!(
            cli.command,
            Command::Demo(_) | Command::Loadgen(_) | Command::Top(_)
        ) {
            "warn"
        } else {
            "info"
        },
    );
    if matches!(
        cli.command,
        Command::Serve(_) | Command::Backend(_) | Command::Demo(_) | Command::Loadgen(_)
    ) {
        // Servers and the load generator hold a socket per connection.
        if let Err(e) = foresight_http::raise_fd_limit() {
            tracing::warn!(error = %e, "could not raise the open-file limit");
        }
    }
    match cli.command {
        Command::Serve(a) => serve(a),
        Command::Check(a) => check(a),
        Command::Controller(a) => controller::run(a),
        Command::Backend(a) => backend(a),
        Command::Algorithms => algorithms(),
        Command::Demo(a) => demo::run(a),
        Command::Simulate(a) => simulate::run(a),
        Command::Train(a) => forecast::train(a),
        Command::Forecast(c) => forecast::forecast(c),
        Command::Experiment(a) => experiment::run(a),
        Command::Generate(c) => generate::run(c),
        Command::History(a) => history::run(a),
        Command::Loadgen(a) => loadgen::run(a),
        Command::Report(a) => report::run(a),
        Command::Top(a) => top::run(a),
    }
}
