//! `foresight controller`: the control loops without the proxy, for a control plane apart from
//! the data plane. It reads the same configuration file as `serve` and runs one loop per
//! service with a `[control]` section; the rate comes from what every proxy replica reports
//! (PromQL over all of them, or the Kafka topic they publish to), never from its own traffic.
//! With `--lease`, controller replicas elect one leader with a Kubernetes Lease and only the
//! leader actuates; the others keep forecasting, so a new leader acts on a warm forecaster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use foresight_control::ControlFamilies;
use foresight_control::{ControlConfig, Gate, Mode};
use foresight_proxy::config::{AdminToken, Overrides, RawConfig};
use foresight_proxy::Pool;

use crate::{failure, shutdown_signal, usage_error};

/// Shortest and longest lease.
const LEASE_BOUNDS: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(600));

#[derive(Args)]
pub struct ControllerArgs {
    /// TOML configuration file, as for `serve`: each service's `[control]` section is run
    /// (listeners, routes and discovery are `serve`'s and not used here).
    #[arg(long, short)]
    config: PathBuf,
    /// Admin API address: GET /control, /leader, /metrics, /healthz, and Alertmanager's webhook; a
    /// loopback address unless an admin token is set (as for `serve`).
    #[arg(long, default_value = "127.0.0.1:9901")]
    admin: SocketAddr,
    /// Elect one leader among controller replicas with this coordination.k8s.io Lease; only
    /// the leader actuates (a build with `--features kubernetes`).
    #[arg(long)]
    lease: Option<String>,
    /// The Lease's namespace [default: the client configuration's].
    #[arg(long)]
    lease_namespace: Option<String>,
    /// How long a lease lasts without renewal (2s..=10m); the leader stops acting 1/3 of it
    /// before another replica may take over.
    #[arg(long, default_value = "15s")]
    lease_duration: String,
    /// This replica's name in the election [default: $POD_NAME, else host name and pid].
    #[arg(long)]
    identity: Option<String>,
    /// Serve KEDA's external scaler (gRPC, `externalscaler.proto`) at this address: each
    /// service's planned load for a ScaledObject trigger (a build with `--features keda`).
    #[arg(long, value_name = "ADDR")]
    keda: Option<SocketAddr>,
    /// Serve the KEDA scaler over TLS with this PEM certificate chain (with
    /// `--keda-tls-key`; KEDA's trigger then needs `caCert`).
    #[arg(long, value_name = "FILE", requires = "keda_tls_key")]
    keda_tls_cert: Option<PathBuf>,
    /// The PEM private key of `--keda-tls-cert`.
    #[arg(long, value_name = "FILE", requires = "keda_tls_cert")]
    keda_tls_key: Option<PathBuf>,
    /// Mutual TLS: accept only KEDA clients whose certificate chains to this PEM CA bundle
    /// (the trigger's `tlsClientCert` and `tlsClientKey`).
    #[arg(long, value_name = "FILE", requires = "keda_tls_cert")]
    keda_client_ca: Option<PathBuf>,
    /// The API server at a plain URL (e.g. `kubectl proxy`) [default: in-cluster or
    /// KUBECONFIG].
    #[arg(long)]
    kube_url: Option<String>,
}

/// The controller's `/metrics`: the loops' `foresight_control_*` series (one per service)
/// and `foresight_control_leader`. It proxies nothing, so none of the proxy's families.
#[derive(Clone)]
struct Metrics {
    registry: Arc<prometheus_client::registry::Registry>,
    families: Arc<ControlFamilies>,
    leader: prometheus_client::metrics::gauge::Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        use foresight_proxy::ServiceSeries;
        let mut registry = prometheus_client::registry::Registry::default();
        let families = ControlFamilies::new();
        families.register(&mut registry);
        let leader = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "foresight_control_leader",
            "1 while this controller replica leads (and so actuates), else 0; 1 without an election",
            leader.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            families,
            leader,
        }
    }
}

impl Metrics {
    /// The OpenMetrics text, with `leading` as the leader gauge.
    fn render(&self, leading: bool) -> String {
        self.leader.set(i64::from(leading));
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// A service's loop as the controller runs it.
struct Loop {
    pool: Arc<Pool>,
    control: ControlConfig,
}

/// What the controller runs: the loops, the drain timeout, the admin token.
type Plan = (Vec<Loop>, Duration, Option<AdminToken>);

/// The services' control loops, checked for running apart from a proxy, and the admin token
/// (`admin_token_file`, or `FORESIGHT_ADMIN_TOKEN`, which wins).
fn loops(path: &std::path::Path) -> Result<Plan, String> {
    let mut raw = RawConfig::from_file(path).map_err(|e| e.to_string())?;
    raw.apply(Overrides {
        admin_token: std::env::var("FORESIGHT_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        ..Overrides::default()
    });
    let single = raw.services.is_empty();
    let config = raw.validate().map_err(|e| e.to_string())?;
    let controls = ControlConfig::for_services(
        &config.services,
        single,
        Mode::Controller,
        config.drain_timeout,
    )?;
    let out: Vec<Loop> = config
        .services
        .iter()
        .zip(controls)
        .filter_map(|(s, c)| {
            c.map(|control| Loop {
                pool: Pool::detached(s),
                control,
            })
        })
        .collect();
    if out.is_empty() {
        return Err(format!(
            "{}: no service has a [control] section: nothing to control",
            path.display()
        ));
    }
    Ok((out, config.drain_timeout, config.admin_token))
}

fn lease_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("invalid value {s:?} for `--lease-duration`: {e}"))?;
    if !(LEASE_BOUNDS.0..=LEASE_BOUNDS.1).contains(&d) {
        return Err(format!(
            "invalid value {s:?} for `--lease-duration`: expected 2s..=10m"
        ));
    }
    Ok(d)
}

pub fn run(args: ControllerArgs) -> ExitCode {
    let metrics = Metrics::default();
    let (loops, drain_timeout, token) = match loops(&args.config) {
        Ok(l) => l,
        Err(e) => return usage_error(e),
    };
    if token.is_none() && !args.admin.ip().is_loopback() {
        return usage_error(format!(
            "invalid value {} for `--admin`: a loopback address, unless an admin token is set \
             (admin_token_file in the configuration, or FORESIGHT_ADMIN_TOKEN)",
            args.admin
        ));
    }
    let duration = match lease_duration(&args.lease_duration) {
        Ok(d) => d,
        Err(e) => return usage_error(e),
    };
    let dns_name = |v: &str, max: usize| {
        (1..=max).contains(&v.len())
            && v.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
    };
    for (flag, value, max) in [
        ("--lease", &args.lease, 253),
        ("--lease-namespace", &args.lease_namespace, 63),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !dns_name(v, max)) {
            return usage_error(format!(
                "invalid value {v:?} for `{flag}`: a Kubernetes name (lowercase letters, \
                 digits, '-' and '.', at most {max} characters)"
            ));
        }
    }
    if let Some(v) = args
        .identity
        .as_deref()
        .filter(|v| v.is_empty() || v.len() > 253 || v.chars().any(char::is_control))
    {
        return usage_error(format!(
            "invalid value {v:?} for `--identity`: 1 to 253 printable characters"
        ));
    }
    if args.lease.is_none() && (args.lease_namespace.is_some() || args.identity.is_some()) {
        return usage_error("`--lease-namespace` and `--identity` need `--lease`");
    }
    if args.lease.is_some() && !cfg!(feature = "kubernetes") {
        return usage_error(
            "`--lease` needs foresight built with the `kubernetes` feature (cargo build \
             --release --features kubernetes)",
        );
    }
    if args.keda.is_some() && !cfg!(feature = "keda") {
        return usage_error(
            "`--keda` needs foresight built with the `keda` feature (cargo build --release \
             --features keda)",
        );
    }
    if args.keda.is_none() && args.keda_tls_cert.is_some() {
        return usage_error("`--keda-tls-cert` needs `--keda`");
    }
    let keda_tls = match keda_tls(&args) {
        Ok(t) => t,
        Err(e) => return usage_error(e),
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return failure(e),
    };
    let result = rt.block_on(async move {
        let gate: Option<Arc<dyn Gate>> = match &args.lease {
            None => None,
            Some(name) => Some(election(&args, name, duration).await?),
        };
        let admin = foresight_http::bind(args.admin).await?;
        let keda = match args.keda {
            Some(a) => Some(
                tokio::net::TcpListener::bind(a)
                    .await
                    .map_err(|e| anyhow::anyhow!("--keda {a}: {e}"))?,
            ),
            None => None,
        };
        match &keda {
            Some(k) => println!(
                "foresight controller: admin={} keda={}",
                admin.local_addr()?,
                k.local_addr()?
            ),
            None => println!("foresight controller: admin={}", admin.local_addr()?),
        }
        let mut handles = Vec::new();
        for l in loops {
            let name = l.pool.service().to_string();
            let gauges = metrics.families.for_service(&name);
            let h = foresight_control::start_gated(
                l.control,
                l.pool,
                gauges,
                drain_timeout,
                gate.clone(),
            )
            .map_err(|e| anyhow::anyhow!("control loop of service {name}: {e}"))?;
            tracing::info!(service = %name, "control loop started");
            handles.push(h);
        }
        let keda = keda.map(|listener| {
            let statuses = handles.iter().map(|h| h.status.clone()).collect();
            tokio::spawn(scaler(listener, statuses, keda_tls))
        });
        let leader = gate.clone();
        let metrics_gate = gate.clone();
        let router = foresight_control::routes(&handles.iter().collect::<Vec<_>>())
            .route("/healthz", axum::routing::get(|| async { "ok\n" }))
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let text = metrics.render(metrics_gate.as_ref().is_none_or(|g| g.open()));
                    async move {
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            text,
                        )
                    }
                }),
            )
            .route(
                "/leader",
                axum::routing::get(move || {
                    let g = leader.clone();
                    async move {
                        axum::Json(match g {
                            None => serde_json::json!({ "election": false, "leader": true }),
                            Some(g) => serde_json::json!({
                                "election": true,
                                "leader": g.open(),
                                "holder": g.leader(),
                            }),
                        })
                    }
                }),
            );
        let router = foresight_proxy::guarded_admin(router, token);
        axum::serve(admin, router)
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        if let Some(k) = keda {
            k.abort();
        }
        for h in handles {
            h.shutdown().await;
        }
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failure(e),
    }
}

/// The scaler's TLS files, read and checked (a usage error names the flag and file).
fn keda_tls(args: &ControllerArgs) -> Result<Option<KedaTls>, String> {
    let (Some(cert), Some(key)) = (&args.keda_tls_cert, &args.keda_tls_key) else {
        return Ok(None);
    };
    foresight_http::tls::server_config(&[(cert.clone(), key.clone())])
        .map_err(|e| format!("`--keda-tls-cert`/`--keda-tls-key`: {e}"))?;
    if let Some(ca) = &args.keda_client_ca {
        foresight_http::tls::client_config(&foresight_http::tls::ClientFiles {
            ca: Some(ca.clone()),
            identity: None,
        })
        .map_err(|e| format!("`--keda-client-ca`: {e}"))?;
    }
    let read = |flag: &str, p: &PathBuf| {
        std::fs::read(p).map_err(|e| format!("`{flag}` {}: {e}", p.display()))
    };
    Ok(Some(KedaTls {
        cert: read("--keda-tls-cert", cert)?,
        key: read("--keda-tls-key", key)?,
        client_ca: match &args.keda_client_ca {
            Some(ca) => Some(read("--keda-client-ca", ca)?),
            None => None,
        },
    }))
}

/// The scaler's TLS: certificate chain, key and client CA, PEM.
#[cfg_attr(not(feature = "keda"), allow(dead_code))]
struct KedaTls {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

/// Serves KEDA's external scaler from the loops' statuses until aborted.
#[cfg(feature = "keda")]
async fn scaler(
    listener: tokio::net::TcpListener,
    statuses: Vec<Arc<std::sync::Mutex<foresight_control::Status>>>,
    tls: Option<KedaTls>,
) {
    let loops = Arc::new(crate::keda::Loops(statuses));
    let scaler = foresight_keda::Scaler::new(loops, Duration::from_secs(1));
    let tls = tls.map(|t| foresight_keda::Tls {
        cert: t.cert,
        key: t.key,
        client_ca: t.client_ca,
    });
    if let Err(e) = foresight_keda::serve(listener, scaler, tls, std::future::pending()).await {
        tracing::error!(error = %e, "the KEDA external scaler stopped");
    }
}

#[cfg(not(feature = "keda"))]
async fn scaler(
    _listener: tokio::net::TcpListener,
    _statuses: Vec<Arc<std::sync::Mutex<foresight_control::Status>>>,
    _tls: Option<KedaTls>,
) {
}

#[cfg(feature = "kubernetes")]
async fn election(
    args: &ControllerArgs,
    name: &str,
    duration: Duration,
) -> anyhow::Result<Arc<dyn Gate>> {
    use foresight_kube::lease::{self, Elector, Leadership, Timing};

    struct LeaseGate(Leadership);
    impl Gate for LeaseGate {
        fn open(&self) -> bool {
            self.0.is_leader()
        }
        fn leader(&self) -> Option<String> {
            self.0.describe().1
        }
    }

    let identity = args.identity.clone().unwrap_or_else(|| {
        std::env::var("POD_NAME").unwrap_or_else(|_| {
            let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        })
    });
    let (leadership, _task) = lease::start_at(
        args.kube_url.as_deref(),
        args.lease_namespace.as_deref(),
        name,
        Elector::new(identity, Timing::for_duration(duration)),
    )
    .await
    .map_err(|e| anyhow::anyhow!("leader election: {e}"))?;
    Ok(Arc::new(LeaseGate(leadership)))
}

#[cfg(not(feature = "kubernetes"))]
async fn election(
    _args: &ControllerArgs,
    _name: &str,
    _duration: Duration,
) -> anyhow::Result<Arc<dyn Gate>> {
    anyhow::bail!("`--lease` needs foresight built with the `kubernetes` feature")
}
