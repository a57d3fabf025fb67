//! # foresight-proxy
//!
//! The data plane: an HTTP reverse proxy on hyper 1.x and tokio that puts every request on one
//! instance chosen by a [`foresight_balance::Balancer`].
//!
//! ## Layout
//! - [`config`]: the TOML file and flags, validated once into [`ProxyConfig`].
//! - `pool`: members and the lock-free snapshot the request path reads; drain.
//! - [`path`]: request paths normalised before routing (`[paths]`).
//! - [`route`]: which service a request goes to (`[[routes]]`, compiled once); `dispatch`
//!   applies it in front of the services' forwarders.
//! - `upstream`, `h1`, `stream`: connections to instances (HTTP/1.1, plain or TLS, and their
//!   idle pool; or one multiplexed HTTP/2 connection for an `h2c` or `h2` service).
//! - `forward`: the request path (pick, rewrite headers, forward, retry a refused connection,
//!   account for the response until its body is done).
//! - `grpc`: gRPC calls on the HTTP/2 path: the proxy's own answers as gRPC errors,
//!   `grpc-timeout`.
//! - `tunnel`: connections that switch protocols (WebSocket): the handshake relayed, then
//!   bytes copied both ways, the request held in flight while the tunnel lives.
//! - [`discovery`]: instances found by DNS joining and leaving a pool.
//! - `health`, `outlier`: active checks (rise/fall) and passive ejection, as pure state
//!   machines plus the tasks that feed them.
//! - `admin`: the admin API and `/metrics`.
//! - [`reload`]: a new configuration swapped in while serving (`SIGHUP`, `POST /reload`).
//!
//! Things this proxy deliberately leaves out for now: HTTP/2 over TLS to instances and
//! retries of requests with bodies (they would need buffering).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod access_log;
mod admin;
pub mod admission;
mod body;
pub mod config;
mod deadline;
pub mod discovery;
mod dispatch;
mod forward;
mod grpc;
mod h1;
mod headers;
pub mod health;
mod metrics;
pub mod outlier;
pub mod path;
mod pool;
pub mod reload;
mod replay;
mod retry_budget;
pub mod route;
mod stream;
pub mod supervisor;
mod tunnel;
mod ui;
mod upstream;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use config::{ConfigError, ProxyConfig};
pub use metrics::ServiceSeries;
pub use pool::{BackendStatus, Clock, DrainReport, Pool};
pub use reload::Loader;
pub use supervisor::Supervisor;

/// How often ended ejections are noticed and their instances returned to rotation.
const TICK: Duration = Duration::from_millis(100);

/// Descriptors kept free of client connections: instances, the admin API, files.
const RESERVED_FDS: u64 = 256;

/// `configured`, lowered (with a warning) to what the open-file limit leaves for clients.
fn max_connections(configured: usize) -> usize {
    let Some(fds) = foresight_http::fd_limit() else {
        return configured;
    };
    let room = usize::try_from(fds.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX);
    if configured > room {
        tracing::warn!(
            max_connections = configured,
            open_file_limit = fds,
            using = room,
            "limits.max_connections is above what the open-file limit allows; lowered"
        );
        return room;
    }
    configured
}

/// `routes` behind the admin API's guard, as `serve`'s admin listener has them: with `token`,
/// every endpoint but `/healthz` and `/metrics` needs `Authorization: Bearer TOKEN`; token or
/// not, a change must carry JSON or `X-Foresight-Admin` and no foreign `Origin`; unknown paths
/// answer in JSON. For `foresight controller`'s admin listener.
pub fn guarded_admin(routes: axum::Router, token: Option<config::AdminToken>) -> axum::Router {
    admin::finish(routes, token)
}

/// Runs the proxy on `listener` and the admin API on `admin` until `shutdown` completes; then
/// stops accepting and lets open requests finish.
pub async fn run(
    config: ProxyConfig,
    listener: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(config, Vec::new(), listener, admin, shutdown, |_, _| {
        Ok(None)
    })
    .await
}

/// [`run`], with `series` in the metrics registry ([`ServiceSeries`]: the control loops'
/// gauges) and `extend` called once the pools exist (one per service, in the configuration's
/// order): it may start work that uses them (the control loops), spawned through the
/// [`Supervisor`] it is given so that shutdown waits for it, and return extra admin API
/// routes, merged into the admin router.
pub async fn run_with(
    config: ProxyConfig,
    series: Vec<Arc<dyn ServiceSeries>>,
    listener: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    extend: impl FnOnce(&[Arc<Pool>], &Supervisor) -> anyhow::Result<Option<axum::Router>>,
) -> anyhow::Result<()> {
    run_reloadable(config, None, series, listener, admin, shutdown, extend).await
}

/// [`run_with`], reloadable: with a `loader`, `SIGHUP` and `POST /reload` on the admin API
/// read the configuration again through it and swap it in ([`reload`]).
pub async fn run_reloadable(
    config: ProxyConfig,
    loader: Option<Loader>,
    series: Vec<Arc<dyn ServiceSeries>>,
    listener: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    extend: impl FnOnce(&[Arc<Pool>], &Supervisor) -> anyhow::Result<Option<axum::Router>>,
) -> anyhow::Result<()> {
    for w in &config.warnings {
        tracing::warn!("configuration: {w}");
    }
    let metrics = Arc::new(metrics::ProxyMetrics::with_series(series));
    let clock = Clock::new();
    let mut pools = Vec::with_capacity(config.services.len());
    for service in &config.services {
        let pool = Pool::new(service, clock, &metrics);
        for spec in &service.backends {
            pool.add(spec.clone(), true)?;
        }
        pools.push(pool);
    }
    // Every background task from here on is the supervisor's: at shutdown, once the
    // listener has stopped accepting and its connections have drained, it cancels them and
    // waits for them within `drain_timeout` (a control loop stops its instances then).
    let supervisor = Supervisor::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    supervisor.spawn("shutdown signal", async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let log = match &config.access_log {
        None => None,
        Some(cfg) => Some(
            access_log::AccessLog::start(cfg, metrics.access_log_dropped.clone()).map_err(|e| {
                anyhow::anyhow!(
                    "cannot open the access log {}: {e}",
                    cfg.path
                        .as_ref()
                        .map_or("(stdout)".into(), |p| p.display().to_string())
                )
            })?,
        ),
    };
    for (service, pool) in config.services.iter().zip(&pools) {
        if let Some(config::Discovery::Dns(d)) = &service.discovery {
            let target = discovery::Target {
                tls: d.tls,
                weight: d.weight,
            };
            let tx = discovery::follow_from(pool, target, config.drain_timeout, &supervisor);
            let own: Vec<std::net::SocketAddr> = [listener.local_addr(), admin.local_addr()]
                .into_iter()
                .flatten()
                .collect();
            supervisor.spawn(
                format!("dns discovery of {}", service.name),
                discovery::dns::resolve(service.name.clone(), d.clone(), own, tx),
            );
        }
    }
    let extra = extend(&pools, &supervisor)?;
    let options = foresight_http::ServerOptions {
        idle_timeout: config.timeouts.client_idle,
        header_timeout: config.timeouts.client_header,
        max_head: config.limits.max_request_head,
        max_connections: max_connections(config.limits.max_connections),
        grace: config.drain_timeout,
        tls: config.tls.as_ref().map(|t| t.server.clone()),
    };
    let (drain_timeout, admin_token) = (config.drain_timeout, config.admin_token.clone());
    let reloadable = loader.is_some();
    let live = Arc::new(reload::Live::new(
        config, pools, metrics, clock, log, loader,
    ));

    {
        let pools = live.pools.clone();
        supervisor.spawn("pool clock", async move {
            let mut t = tokio::time::interval(TICK);
            loop {
                t.tick().await;
                for pool in pools.load().iter() {
                    pool.tick();
                }
            }
        });
    }
    if reloadable {
        supervisor.spawn("reload on SIGHUP", reload_on_hangup(live.clone()));
    }

    let mut admin_router =
        admin::router(live.pools.clone(), drain_timeout).merge(admin::reload_routes(live.clone()));
    if let Some(extra) = extra {
        admin_router = admin_router.merge(extra);
    }
    let admin_router = admin::finish(admin_router, admin_token);
    let admin_stop = stopped(stop_rx.clone());
    let admin_task = tokio::spawn(async move {
        axum::serve(admin, admin_router)
            .with_graceful_shutdown(admin_stop)
            .await
    });

    let serving = live.clone();
    foresight_http::serve(
        listener,
        options,
        move |req, peer: foresight_http::Peer| serving.dispatch.load().handle(req, peer),
        stopped(stop_rx),
    )
    .await;
    let left = supervisor.shutdown(drain_timeout).await;
    if left.is_empty() {
        tracing::info!("background work stopped");
    }
    let _ = admin_task.await;
    Ok(())
}

/// A burst of `SIGHUP`s closer together than this is one reload.
const HANGUP_SETTLE: std::time::Duration = std::time::Duration::from_millis(200);
/// ... unless the burst goes on longer than this.
const HANGUP_SETTLE_MAX: std::time::Duration = std::time::Duration::from_secs(2);

/// Reloads on `SIGHUP`, logging what changed or why the file was refused. A burst of signals
/// (a tool that signals once per file it writes, several tools at once) is one reload, once
/// none has come for [`HANGUP_SETTLE`] (at most [`HANGUP_SETTLE_MAX`] after the first), so the
/// file is read once, after the writes.
async fn reload_on_hangup(live: Arc<reload::Live>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /reload");
        return;
    };
    while hup.recv().await.is_some() {
        let first = tokio::time::Instant::now();
        while first.elapsed() < HANGUP_SETTLE_MAX
            && tokio::time::timeout(HANGUP_SETTLE, hup.recv())
                .await
                .is_ok()
        {}
        match live.reload().await {
            Ok(r) => tracing::info!(
                services = r.services.len(),
                routes = r.routes,
                restart_needed = ?r.restart_needed,
                "configuration reloaded (SIGHUP)"
            ),
            Err(e) => tracing::error!(error = %e, "configuration refused; the running one stays"),
        }
    }
}
