//! # foresight-proxy
//!
//! The data plane: an HTTP reverse proxy on hyper 1.x and tokio that puts every request on one
//! instance chosen by a [`foresight_balance::Balancer`].
//!
//! ## Layout
//! - [`config`]: the TOML file and flags, validated once into [`ProxyConfig`].
//! - `pool`: members and the lock-free snapshot the request path reads; drain.
//! - [`route`]: which service a request goes to (`[[routes]]`, compiled once); `dispatch`
//!   applies it in front of the services' forwarders.
//! - `forward`: the request path (pick, rewrite headers, forward, retry a refused connection,
//!   account for the response until its body is done).
//! - `health`, `outlier`: active checks (rise/fall) and passive ejection, as pure state
//!   machines plus the tasks that feed them.
//! - `admin`: the admin API and `/metrics`.
//!
//! Things this proxy deliberately leaves out for now: TLS, WebSocket upgrades and retries of
//! requests with bodies (they would need buffering).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod access_log;
mod admin;
pub mod admission;
mod body;
pub mod config;
mod deadline;
mod dispatch;
mod forward;
mod h1;
mod headers;
pub mod health;
mod metrics;
pub mod outlier;
mod pool;
mod retry_budget;
pub mod route;
mod upstream;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use config::{ConfigError, ProxyConfig};
pub use metrics::ControlMetrics;
pub use pool::{BackendStatus, Clock, DrainReport, Pool};

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

/// Runs the proxy on `listener` and the admin API on `admin` until `shutdown` completes; then
/// stops accepting and lets open requests finish.
pub async fn run(
    config: ProxyConfig,
    listener: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(config, listener, admin, shutdown, |_| Ok(None)).await
}

/// [`run`], with `extend` called once the pools exist (one per service, in the
/// configuration's order): it may start work that uses them (the control loops) and return
/// extra admin API routes, merged into the admin router.
pub async fn run_with(
    config: ProxyConfig,
    listener: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    extend: impl FnOnce(&[Arc<Pool>]) -> anyhow::Result<Option<axum::Router>>,
) -> anyhow::Result<()> {
    for w in &config.warnings {
        tracing::warn!("configuration: {w}");
    }
    let metrics = Arc::new(metrics::ProxyMetrics::new());
    let clock = Clock::new();
    let mut pools = Vec::with_capacity(config.services.len());
    for service in &config.services {
        let pool = Pool::new(service, clock, &metrics);
        for spec in &service.backends {
            pool.add(spec.clone(), true)?;
        }
        pools.push(pool);
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let ticker = {
        let pools = pools.clone();
        tokio::spawn(async move {
            let mut t = tokio::time::interval(TICK);
            loop {
                t.tick().await;
                for pool in &pools {
                    pool.tick();
                }
            }
        })
    };

    let mut admin_router = admin::router(pools.clone(), config.drain_timeout);
    if let Some(extra) = extend(&pools)? {
        admin_router = admin_router.merge(extra);
    }
    let admin_router = admin::finish(admin_router, config.admin_token.clone());
    let admin_stop = stopped(stop_rx.clone());
    let admin_task = tokio::spawn(async move {
        axum::serve(admin, admin_router)
            .with_graceful_shutdown(admin_stop)
            .await
    });

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
    let dispatch = Arc::new(dispatch::Dispatch {
        forwarders: pools
            .iter()
            .zip(&config.services)
            .map(|(pool, service)| Arc::new(forward::Forwarder::new(pool.clone(), service)))
            .collect(),
        names: config
            .services
            .iter()
            .map(|s| Arc::from(s.name.as_str()))
            .collect(),
        routes: config.routes.clone(),
        metrics,
        log,
    });
    let options = foresight_http::ServerOptions {
        idle_timeout: config.timeouts.client_idle,
        header_timeout: config.timeouts.client_header,
        max_head: config.limits.max_request_head,
        max_connections: max_connections(config.limits.max_connections),
        grace: config.drain_timeout,
        tls: config.tls.as_ref().map(|t| t.server.clone()),
    };
    foresight_http::serve(
        listener,
        options,
        move |req, peer: foresight_http::Peer| dispatch.handle(req, peer),
        stopped(stop_rx),
    )
    .await;
    ticker.abort();
    let _ = admin_task.await;
    Ok(())
}
