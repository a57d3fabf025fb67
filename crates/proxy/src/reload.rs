//! Live reload: `SIGHUP` or `POST /reload` on the admin API reads and validates the
//! configuration again (the file and the flags the proxy started with) and swaps it in
//! without closing a connection or losing a request in flight.
//!
//! What a reload changes, and how:
//! - routes and every service's request settings (retries, rate limits, concurrency limits,
//!   request timeout): a new `Dispatch` is swapped in atomically; requests that already
//!   chose a service finish on the old one. A service whose settings are unchanged keeps its
//!   forwarder, so its rate-limit and concurrency counts carry over;
//! - a service's instances, when its balancer, health checks, outlier ejection and upstream
//!   timeouts are unchanged: the pool is kept (with every instance's load, health and
//!   ejection state); new instances join, removed ones are drained;
//! - otherwise a new pool replaces the old, which is drained after a grace second;
//! - certificates: re-read from their files and served to new handshakes.
//!
//! What needs a restart is applied at the next start and listed in the answer
//! (`restart_needed`): the listener and admin addresses, workers, client limits and timeouts,
//! the admin token, the access log, turning TLS on or off, `drain_timeout`, and every
//! `[control]` section and every `discovery` (a control loop or a discovery source owns its
//! service's pool: such a service keeps its pool and instances until restart, and gets only
//! its request settings).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::access_log::AccessLog;
use crate::config::{Discovery, ProxyConfig, RawControl, ServiceConfig};
use crate::dispatch::Dispatch;
use crate::forward::Forwarder;
use crate::metrics::{ProxyMetrics, ReloadLabel};
use crate::pool::{Clock, Pool};

/// Reads and validates the configuration again, with the messages of a start.
pub type Loader = Arc<dyn Fn() -> Result<ProxyConfig, String> + Send + Sync>;

/// How long a replaced pool keeps serving requests that chose it just before the swap.
const GRACE: Duration = Duration::from_secs(1);

/// What a reload did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Every service of the new configuration, and those it removed.
    pub services: Vec<ServiceReport>,
    /// Routes now.
    pub routes: usize,
    /// Whether the certificates were re-read.
    pub certificates_reloaded: bool,
    /// Changes that take effect only at the next start.
    pub restart_needed: Vec<String>,
}

/// One service's part in a reload.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceReport {
    /// Its name.
    pub name: String,
    /// `kept` (same pool), `rebuilt` (a new pool), `added` or `removed`.
    pub pool: &'static str,
    /// Instances that joined.
    pub added: Vec<String>,
    /// Instances drained out.
    pub removed: Vec<String>,
}

/// The parts of a running proxy that a reload replaces.
pub(crate) struct Live {
    /// What the listener dispatches with.
    pub dispatch: ArcSwap<Dispatch>,
    /// Every service's pool, for the admin API and the ejection ticker.
    pub pools: Arc<ArcSwap<Vec<Arc<Pool>>>>,
    running: tokio::sync::Mutex<ProxyConfig>,
    /// Services whose pools a control loop manages (since start).
    controlled: Vec<String>,
    /// Services whose instances a discovery source finds (since start), and how.
    discovered: Vec<(String, Discovery)>,
    metrics: Arc<ProxyMetrics>,
    clock: Clock,
    log: Option<Arc<AccessLog>>,
    /// The certificates the listener serves (replaced in place).
    certificates: Option<Arc<foresight_http::tls::Certificates>>,
    loader: Option<Loader>,
}

/// Whether a service is scaled by a control loop (a `[control]` not `enabled = false`).
fn has_control(s: &ServiceConfig) -> bool {
    s.control.as_ref().is_some_and(RawControl::enabled)
}

/// Whether two services' forwarders would behave alike (everything but instances and
/// control).
fn same_requests(a: &ServiceConfig, b: &ServiceConfig) -> bool {
    let strip = |s: &ServiceConfig| ServiceConfig {
        backends: Vec::new(),
        control: None,
        discovery: None,
        ..s.clone()
    };
    strip(a) == strip(b)
}

impl Live {
    /// The running state for `config`, its `pools` built and filled.
    pub fn new(
        config: ProxyConfig,
        pools: Vec<Arc<Pool>>,
        metrics: Arc<ProxyMetrics>,
        clock: Clock,
        log: Option<Arc<AccessLog>>,
        loader: Option<Loader>,
    ) -> Live {
        let forwarders = pools
            .iter()
            .zip(&config.services)
            .map(|(pool, service)| Arc::new(Forwarder::new(pool.clone(), service)))
            .collect();
        let dispatch = Dispatch::new(&config, forwarders, metrics.clone(), log.clone());
        Live {
            dispatch: ArcSwap::from_pointee(dispatch),
            pools: Arc::new(ArcSwap::from_pointee(pools)),
            controlled: config
                .services
                .iter()
                .filter(|s| has_control(s))
                .map(|s| s.name.clone())
                .collect(),
            discovered: config
                .services
                .iter()
                .filter_map(|s| Some((s.name.clone(), s.discovery.clone()?)))
                .collect(),
            certificates: config.tls.as_ref().map(|t| t.certificates.clone()),
            running: tokio::sync::Mutex::new(config),
            metrics,
            clock,
            log,
            loader,
        }
    }

    /// Reads the configuration again and swaps it in; an invalid one changes nothing and its
    /// error is returned.
    pub async fn reload(&self) -> Result<Report, String> {
        let loader = self.loader.clone().ok_or_else(|| {
            "this proxy was started without a configuration to reload".to_string()
        })?;
        let mut running = self.running.lock().await;
        // Reading and validating touches files (certificates): off the runtime's threads.
        let loaded = tokio::task::spawn_blocking(move || loader())
            .await
            .map_err(|e| format!("reading the configuration failed: {e}"))
            .and_then(|r| r)
            .and_then(|new| {
                let pools = self.pools.load();
                let counts: Vec<(&str, usize)> = pools
                    .iter()
                    .map(|p| (p.service(), p.status().len()))
                    .collect();
                match emptied(&counts, &new) {
                    Some(e) => Err(e),
                    None => Ok(new),
                }
            });
        let result = if loaded.is_ok() { "applied" } else { "refused" };
        self.metrics
            .config_reloads
            .get_or_create(&ReloadLabel { result })
            .inc();
        let new = loaded?;
        let report = self.apply(&running, &new);
        *running = new;
        Ok(report)
    }

    /// Swaps `new` in over `old` (see the module's documentation).
    fn apply(&self, old: &ProxyConfig, new: &ProxyConfig) -> Report {
        let mut report = Report {
            routes: new.routes.routes().len(),
            restart_needed: restart_only(old, new),
            ..Report::default()
        };
        let old_pools = self.pools.load_full();
        let old_dispatch = self.dispatch.load_full();
        let drain_timeout = old.drain_timeout;
        let mut pools = Vec::with_capacity(new.services.len());
        let mut forwarders = Vec::with_capacity(new.services.len());
        for s in &new.services {
            let prev = old.services.iter().position(|o| o.name == s.name);
            let (pool, entry) = match prev {
                Some(i) if self.owned(&s.name) => {
                    if !old_pools[i].same_settings(s) || old.services[i].backends != s.backends {
                        report.restart_needed.push(format!(
                            "service {}: instances, balancer, health checks, outlier ejection or \
                             upstream timeouts (a control loop or discovery manages its pool)",
                            s.name
                        ));
                    }
                    (old_pools[i].clone(), kept(s))
                }
                Some(i) if old_pools[i].same_settings(s) => {
                    let pool = old_pools[i].clone();
                    let entry = reconcile(&pool, s, drain_timeout);
                    (pool, entry)
                }
                Some(i) => {
                    let pool = self.fill(s);
                    let keep = s.backends.iter().map(|b| b.address.clone()).collect();
                    old_pools[i].clone().retire(GRACE, drain_timeout, keep);
                    let mut e = kept(s);
                    e.pool = "rebuilt";
                    (pool, e)
                }
                None => {
                    let mut e = kept(s);
                    e.pool = "added";
                    e.added = s.backends.iter().map(|b| b.address.clone()).collect();
                    (self.fill(s), e)
                }
            };
            let forwarder = match prev {
                Some(i)
                    if Arc::ptr_eq(&pool, &old_pools[i]) && same_requests(&old.services[i], s) =>
                {
                    old_dispatch.forwarders[i].clone()
                }
                _ => Arc::new(Forwarder::new(pool.clone(), s)),
            };
            if has_control(s) != self.controlled.contains(&s.name)
                || prev.is_some_and(|i| old.services[i].control != s.control)
            {
                report
                    .restart_needed
                    .push(format!("service {}: [control]", s.name));
            }
            let started = self.discovered.iter().find(|d| d.0 == s.name).map(|d| &d.1);
            if started != s.discovery.as_ref() {
                report
                    .restart_needed
                    .push(format!("service {}: discovery", s.name));
            }
            report.services.push(entry);
            pools.push(pool);
            forwarders.push(forwarder);
        }
        for (i, o) in old.services.iter().enumerate() {
            if new.services.iter().any(|s| s.name == o.name) {
                continue;
            }
            if self.owned(&o.name) {
                report.restart_needed.push(format!(
                    "service {}: removed, but its control loop or discovery runs until restart",
                    o.name
                ));
            }
            old_pools[i]
                .clone()
                .retire(GRACE, drain_timeout, Vec::new());
            report.services.push(ServiceReport {
                name: o.name.clone(),
                pool: "removed",
                added: Vec::new(),
                removed: old_pools[i]
                    .members_now()
                    .into_iter()
                    .map(|m| m.0)
                    .collect(),
            });
        }
        if let (Some(live), Some(t)) = (&self.certificates, &new.tls) {
            live.replace_with(&t.certificates);
            report.certificates_reloaded = true;
        }
        self.pools.store(Arc::new(pools));
        self.dispatch.store(Arc::new(Dispatch::new(
            new,
            forwarders,
            self.metrics.clone(),
            self.log.clone(),
        )));
        report
    }

    /// Whether a control loop or a discovery source manages `service`'s pool.
    fn owned(&self, service: &str) -> bool {
        self.controlled.iter().any(|c| c == service)
            || self.discovered.iter().any(|d| d.0 == service)
    }

    /// A new pool for `s` with its configured instances.
    fn fill(&self, s: &ServiceConfig) -> Arc<Pool> {
        let pool = Pool::new(s, self.clock, &self.metrics);
        for spec in &s.backends {
            if let Err(e) = pool.add(spec.clone(), true) {
                // Validation refuses duplicates; nothing else can fail here.
                tracing::warn!(service = %s.name, error = %e, "instance not added");
            }
        }
        pool
    }
}

fn kept(s: &ServiceConfig) -> ServiceReport {
    ServiceReport {
        name: s.name.clone(),
        pool: "kept",
        added: Vec::new(),
        removed: Vec::new(),
    }
}

/// Brings a kept pool's instances to `s.backends`: new ones join (serving at once, as at a
/// start), ones no longer listed are drained, a changed weight re-adds the instance.
fn reconcile(pool: &Arc<Pool>, s: &ServiceConfig, drain_timeout: Duration) -> ServiceReport {
    let mut report = kept(s);
    let members = pool.members_now();
    for spec in &s.backends {
        match members.iter().find(|m| m.1 == spec.key) {
            Some(m) if m.2 == spec.weight => continue,
            Some(m) => {
                let _ = pool.remove(&m.0);
            }
            None => {}
        }
        match pool.add(spec.clone(), true) {
            Ok(_) => report.added.push(spec.address.clone()),
            Err(e) => tracing::warn!(service = %s.name, error = %e, "instance not added"),
        }
    }
    for (address, identity, _) in members {
        if s.backends.iter().any(|b| b.key == identity) {
            continue;
        }
        report.removed.push(address.clone());
        // No new request from before the reload answers; the wait for in-flight ones after.
        let Ok(backend) = pool.stop_new_requests(&address) else {
            continue;
        };
        let pool = pool.clone();
        tokio::spawn(async move {
            pool.finish_drain(backend, drain_timeout).await;
        });
    }
    report
}

/// What differs between `old` and `new` that only a restart applies.
fn restart_only(old: &ProxyConfig, new: &ProxyConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |differs: bool, what: &str| {
        if differs {
            out.push(what.to_string());
        }
    };
    check(old.listen != new.listen, "listen");
    check(old.admin != new.admin, "admin");
    check(old.workers != new.workers, "workers");
    check(old.limits != new.limits, "limits");
    check(
        old.timeouts.client_idle != new.timeouts.client_idle
            || old.timeouts.client_header != new.timeouts.client_header,
        "timeouts.client_idle and timeouts.client_header",
    );
    check(old.admin_token != new.admin_token, "admin_token");
    check(old.access_log != new.access_log, "access_log");
    check(old.drain_timeout != new.drain_timeout, "drain_timeout");
    check(
        old.tls.is_some() != new.tls.is_some(),
        "tls (turning it on or off; certificates are reloaded)",
    );
    out
}

/// Whether a service gets instances from somewhere: `backends`, discovery or a control loop.
pub fn sourced(s: &ServiceConfig) -> bool {
    !s.backends.is_empty() || s.discovery.is_some() || has_control(s)
}

/// Why `foresight check` refuses `config` although it is valid: no service has a source of
/// instances and the file does not say `allow_empty = true`, so a reload of it into a proxy that
/// serves would be refused (see [`emptied`]).
pub fn unserved(config: &ProxyConfig) -> Option<String> {
    (!config.allow_empty && !config.services.iter().any(sourced)).then(|| {
        "no service has an instance source (backends, discovery or [control]): a proxy that \
         serves would refuse to reload it; set `allow_empty = true` to mean it"
            .to_string()
    })
}

/// Why `new` would leave the proxy serving less by accident, if it would: a service that has
/// instances now (`counts`: service, instances) kept with no source of instances (no
/// `backends`, no discovery, no control loop), or every service that has instances removed
/// while the new configuration has no instance source at all (an empty or half-written file
/// read between an editor's truncate and write). `allow_empty = true` in the file means it.
pub(crate) fn emptied(counts: &[(&str, usize)], new: &ProxyConfig) -> Option<String> {
    if new.allow_empty {
        return None;
    }
    let hint = "an empty or half-written file? write the new file beside it and rename it over the old one (atomic); set `allow_empty = true` to mean it";
    for (name, n) in counts.iter().filter(|(_, n)| *n > 0) {
        if let Some(s) = new.services.iter().find(|s| s.name == *name) {
            if !sourced(s) {
                return Some(format!(
                    "reload refused: service `{name}` has {n} instance(s) and the new configuration gives it none ({hint})"
                ));
            }
        }
    }
    let had: Vec<&str> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, _)| *s)
        .collect();
    if !had.is_empty() && !new.services.iter().any(sourced) {
        return Some(format!(
            "reload refused: the new configuration has no instance for any service, and {} serve(s) now ({hint})",
            had.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;

    fn config(text: &str) -> ProxyConfig {
        RawConfig::from_toml(text, "t.toml")
            .unwrap()
            .validate()
            .unwrap()
    }

    const TWO: &str = r#"
[[services]]
name = "auth"
backends = [{ address = "http://127.0.0.1:9001" }]
[[services]]
name = "api"
backends = [{ address = "http://127.0.0.1:9002" }]
[[routes]]
path_prefix = "/a"
service = "auth"
[[routes]]
path_prefix = "/"
service = "api"
"#;

    /// Records the services it is told of.
    #[derive(Default)]
    struct Told(std::sync::Mutex<Vec<String>>);

    impl crate::ServiceSeries for Told {
        fn register(&self, registry: &mut prometheus_client::registry::Registry) {
            registry.register(
                "told",
                "services told",
                prometheus_client::metrics::counter::Counter::<u64>::default(),
            );
        }
        fn add_service(&self, service: &str) {
            self.0.lock().unwrap().push(service.to_string());
        }
    }

    #[tokio::test]
    async fn series_kept_per_service_hear_of_a_service_a_reload_adds() {
        let told = Arc::new(Told::default());
        let metrics = Arc::new(ProxyMetrics::with_series(vec![told.clone()]));
        assert!(metrics.render().contains("# HELP told services told"));
        let one = config(
            "[[services]]\nname = \"auth\"\nbackends = [{ address = \"http://127.0.0.1:9001\" }]\n",
        );
        let clock = Clock::new();
        let pools = (one.services.iter())
            .map(|s| Pool::new(s, clock, &metrics))
            .collect();
        let live = Live::new(one.clone(), pools, metrics, clock, None, None);
        assert_eq!(*told.0.lock().unwrap(), ["auth"]);
        live.apply(&one, &config(TWO));
        assert!(
            told.0.lock().unwrap().contains(&"api".to_string()),
            "{:?}",
            told.0
        );
    }

    /// An instance a reload removes takes no new request from the moment the reload returns
    /// (its reply), not from when the spawned wait for its in-flight requests first runs.
    #[tokio::test(flavor = "current_thread")]
    async fn an_instance_a_reload_removes_is_draining_when_the_reload_returns() {
        let both = config(
            "[[services]]\nname = \"auth\"\nbackends = [{ address = \"http://127.0.0.1:9001\" }, { address = \"http://127.0.0.1:9003\" }]\n",
        );
        let one = config(
            "[[services]]\nname = \"auth\"\nbackends = [{ address = \"http://127.0.0.1:9001\" }]\n",
        );
        let metrics = Arc::new(ProxyMetrics::new());
        let clock = Clock::new();
        let pools = (both.services.iter())
            .map(|s| Pool::new(s, clock, &metrics))
            .collect();
        let live = Live::new(both.clone(), pools, metrics, clock, None, None);
        for s in &both.services {
            for b in &s.backends {
                live.pools.load()[0].add(b.clone(), true).unwrap();
            }
        }
        live.apply(&both, &one);
        // No await since: on this single-threaded runtime no spawned task has run.
        let pool = live.pools.load()[0].clone();
        let removed = pool
            .find("http://127.0.0.1:9003")
            .expect("still listed while it drains");
        assert!(removed.is_draining());
        assert!(!pool.find("http://127.0.0.1:9001").unwrap().is_draining());
    }

    #[test]
    fn a_reload_that_would_empty_a_serving_service_is_refused_unless_meant() {
        let now = [("auth", 1), ("api", 2)];
        assert_eq!(emptied(&now, &config(TWO)), None);
        // An empty file: one `default` service with nothing, every serving one gone.
        let e = emptied(&now, &config("")).unwrap();
        assert!(
            e.contains("`auth`, `api`") && e.contains("allow_empty"),
            "{e}"
        );
        // A kept service left without instances.
        let half = TWO.replace("backends = [{ address = \"http://127.0.0.1:9002\" }]", "");
        let e = emptied(&now, &config(&half)).unwrap();
        assert!(e.contains("service `api` has 2 instance(s)"), "{e}");
        // Meant, or nothing served before: applied.
        assert_eq!(
            emptied(&now, &config(&format!("allow_empty = true\n{half}"))),
            None
        );
        assert_eq!(emptied(&[("auth", 0), ("api", 0)], &config(&half)), None);
        // Removing one service while others keep theirs is an ordinary change.
        let one =
            "[[services]]\nname = \"auth\"\nbackends = [{ address = \"http://127.0.0.1:9001\" }]\n";
        assert_eq!(emptied(&now, &config(one)), None);
    }
}
