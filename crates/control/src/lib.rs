//! # foresight-control
//!
//! The live control loop that runs inside `foresight serve` when the configuration has a
//! `[control]` section: every `interval` it measures the client request rate and the pool's
//! utilisation (the proxy's own counters), closes forecaster steps, asks the scaling policy
//! (under the [`Governor`]: limits, cooldowns, stabilisation, dry-run), and applies the count
//! through an actuator. It never touches the request path: it reads atomics and swaps the
//! pool's snapshot through the same calls as the admin API. `GET /control` on the admin
//! listener shows the forecast, the desired and ready instances and the last decisions with
//! their reasons; the `foresight_control_*` metrics show the same numbers.
#![deny(missing_docs)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Json, Router};
use foresight_actuate::{Actuator, ExecHook, PoolMembership, ProcessPool, ProcessPoolConfig};
use foresight_forecast::{Forecaster, Lstm, MovingAverage, Persistence, SeasonalNaive};
use foresight_proxy::Pool;
use foresight_scale::{
    CostOptimal, Governor, Hpa, HpaConfig, Hybrid, InstanceModel, Limits, LogEntry, Observation,
    Policy, Predictive, PredictiveConfig, Static,
};

mod config;
mod kafka;
mod learner;
mod planner;
mod prometheus;
mod scrape;

pub use config::{
    ActuatorKind, ControlConfig, ForecasterKind, KafkaConfig, MetricsSource, PolicyKind,
};
pub use kafka::{Consumer, KafkaStatus, Publisher, Sample};
pub use learner::Learner;
pub use planner::Planner;
pub use prometheus::PromSource;
pub use scrape::Scraper;

/// What `GET /control` shows.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Status {
    /// Policy name.
    pub policy: String,
    /// Actuator name.
    pub actuator: String,
    /// Seconds since the loop started.
    pub uptime_s: f64,
    /// Client requests per second over the last interval.
    pub observed_rps: f64,
    /// Mean utilisation of the ready instances over the last interval.
    pub utilisation: f64,
    /// Where utilisation came from (`instances (n scraped)` or `proxy in-flight`).
    pub utilisation_source: String,
    /// Instances wanted.
    pub desired: usize,
    /// Instances serving.
    pub ready: usize,
    /// Instances starting.
    pub starting: usize,
    /// Forecast (with its error band) as (seconds ahead, requests per second).
    pub forecast: Option<Vec<(f64, f64)>>,
    /// Whether the forecast is trusted.
    pub trusted: bool,
    /// The forecaster and its state (training, retrained n times, unavailable: why).
    pub forecaster: String,
    /// Forecaster steps observed.
    pub steps: usize,
    /// Where the rate came from this interval (`prometheus`, `builtin`, or `builtin` with
    /// the reason Prometheus could not be used).
    pub metrics_source: String,
    /// Kafka publisher health, when publishing.
    pub kafka_publish: Option<KafkaStatus>,
    /// Kafka consumer health, when consuming.
    pub kafka_consume: Option<KafkaStatus>,
    /// The last actuator error, if the last apply failed.
    pub actuator_error: Option<String>,
    /// The most recent decisions, newest last.
    pub decisions: VecDeque<Decision>,
}

/// A logged decision.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Decision {
    /// Seconds since the loop started.
    pub at_s: f64,
    /// Instances before.
    pub from: usize,
    /// Instances after (equal to `from` in dry-run).
    pub to: usize,
    /// Why.
    pub reason: String,
    /// Only logged.
    pub dry_run: bool,
}

impl From<&LogEntry> for Decision {
    fn from(e: &LogEntry) -> Self {
        Decision {
            at_s: e.now,
            from: e.from,
            to: e.to,
            reason: e.reason.clone(),
            dry_run: e.dry_run,
        }
    }
}

const DECISIONS_KEPT: usize = 50;

fn policy(c: &ControlConfig, forecaster: &str) -> Box<dyn Policy> {
    let model = InstanceModel {
        workers: c.workers,
        mean_service: f64::from(c.workers) / c.capacity_rps,
    };
    let pcfg = PredictiveConfig {
        theta_up: c.theta_up,
        theta_down: c.theta_down,
        target: c.target,
        lead: c.lead.as_secs_f64(),
        margin: c.margin.as_secs_f64(),
    };
    let hpa = HpaConfig {
        target: c.hpa_target,
        ..HpaConfig::default()
    };
    match c.policy {
        PolicyKind::Static => Box::new(Static { replicas: c.min }),
        PolicyKind::Hpa => Box::new(Hpa::new(hpa)),
        PolicyKind::Predictive => Box::new(Predictive::new(
            &format!("predictive-{forecaster}"),
            pcfg,
            model,
        )),
        PolicyKind::CostOptimal => Box::new(CostOptimal::new(
            &format!("cost-optimal-{forecaster}"),
            model,
            1.0,
            0.99,
            pcfg.lead,
            pcfg.margin,
        )),
        PolicyKind::Hybrid => Box::new(Hybrid::new(
            &format!("hybrid-{forecaster}"),
            Box::new(Predictive::new("predictive", pcfg, model)),
            HpaConfig {
                target: c.floor_target,
                ..HpaConfig::default()
            },
            hpa,
        )),
    }
}

/// Builds the forecaster and warms it on the configured history. Returns `None` (reactive
/// only) with a logged reason when the model cannot be loaded: the loop keeps running.
fn planner(c: &ControlConfig) -> Result<Option<Planner>, String> {
    let model_step = c.model_step.as_secs() as i64;
    let history = match &c.history {
        None => None,
        Some(path) => Some(foresight_workload::Trace::load(path).map_err(|e| e.to_string())?),
    };
    let mut fcfg = foresight_forecast::ForecastConfig::default();
    fcfg.lstm.epochs = c.train_epochs;
    let policy = c.retrain_every.map(|d| foresight_forecast::RetrainPolicy {
        every_secs: d.as_secs() as i64,
        max_history: 7 * 24 * 60,
    });
    let (mut forecaster, horizon): (Box<dyn Forecaster + Send>, usize) = match &c.forecaster {
        ForecasterKind::None => return Ok(None),
        ForecasterKind::Persistence => (Box::new(Persistence::new()), 30),
        ForecasterKind::MovingAverage(w) => (Box::new(MovingAverage::new(model_step, *w)), 30),
        ForecasterKind::SeasonalNaive(season) => (
            Box::new(SeasonalNaive::new("seasonal-naive", model_step, *season)),
            30.min(*season),
        ),
        ForecasterKind::Lstm(Some(dir)) => match Lstm::load(dir) {
            Ok(m) => {
                let l = Learner::loaded(m, fcfg, policy);
                let h = l.horizon();
                (Box::new(l), h)
            }
            Err(e) => {
                tracing::error!(model = %dir.display(), error = %e, "cannot load the model; scaling reactively (hpa) until it is fixed");
                let l = Learner::Failed(format!("cannot load {}: {e}", dir.display()));
                (Box::new(l), 15)
            }
        },
        ForecasterKind::Lstm(None) => {
            let h = history.as_ref().expect("validated: history is set");
            let series = foresight_forecast::Series {
                start: h.start.and_utc().timestamp(),
                step: 60,
                values: h.counts.clone(),
                features: Vec::new(),
            };
            tracing::info!(points = h.counts.len(), "training the lstm on the history in the background; scaling reactively until it is ready");
            let l = Learner::train(series, fcfg, policy);
            let hz = l.horizon();
            (Box::new(l), hz)
        }
    };
    let mut next_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if let Some(trace) = &history {
        let start = trace.start.and_utc().timestamp();
        for (i, v) in trace.counts.iter().enumerate() {
            if let Some(v) = v {
                forecaster.observe(start + i as i64 * 60, *v, &[]);
            }
        }
        next_time = start + trace.counts.len() as i64 * 60;
        tracing::info!(rows = trace.counts.len(), "forecaster warmed on history");
    }
    let step_secs = c.step.as_secs_f64();
    let lead_steps = (c.lead.as_secs_f64() / step_secs).ceil().max(1.0) as usize;
    Ok(Some(Planner::new(
        forecaster,
        horizon,
        lead_steps,
        step_secs,
        next_time,
        model_step,
        1.0 / c.history_scale,
    )))
}

#[cfg(feature = "kubernetes")]
fn kubernetes(
    namespace: Option<String>,
    deployment: String,
    url: Option<String>,
    max: usize,
) -> Result<Arc<dyn Actuator>, String> {
    match url {
        Some(u) => {
            let ns = namespace.unwrap_or_else(|| "default".into());
            foresight_kube::KubeActuator::for_url(&u, &ns, &deployment, max)
                .map(|a| Arc::new(a) as Arc<dyn Actuator>)
                .map_err(|e| e.to_string())
        }
        None => Ok(Arc::new(kube_lazy::LazyKube::new(
            namespace, deployment, max,
        ))),
    }
}

#[cfg(not(feature = "kubernetes"))]
fn kubernetes(
    _namespace: Option<String>,
    _deployment: String,
    _url: Option<String>,
    _max: usize,
) -> Result<Arc<dyn Actuator>, String> {
    Err(
        "actuator = \"kubernetes\" needs a build with `--features kubernetes` \
         (cargo build --release --features kubernetes)"
            .into(),
    )
}

/// The cluster configuration is found asynchronously (kubeconfig or in-cluster), so the
/// actuator is built on first use; until then, and while it fails, calls return the error
/// (and the loop retries with backoff).
#[cfg(feature = "kubernetes")]
mod kube_lazy {
    use foresight_actuate::{Actuator, ActuatorError, BoxFuture, PoolState};
    use foresight_kube::KubeActuator;
    use tokio::sync::OnceCell;

    pub struct LazyKube {
        namespace: Option<String>,
        deployment: String,
        max: usize,
        cell: OnceCell<KubeActuator>,
    }

    impl LazyKube {
        pub fn new(namespace: Option<String>, deployment: String, max: usize) -> Self {
            LazyKube {
                namespace,
                deployment,
                max,
                cell: OnceCell::new(),
            }
        }

        async fn get(&self) -> Result<&KubeActuator, ActuatorError> {
            self.cell
                .get_or_try_init(|| {
                    KubeActuator::infer(self.namespace.as_deref(), &self.deployment, self.max)
                })
                .await
        }
    }

    impl Actuator for LazyKube {
        fn name(&self) -> String {
            format!("kubernetes deployment {}", self.deployment)
        }

        fn apply(&self, replicas: usize) -> BoxFuture<'_, Result<(), ActuatorError>> {
            Box::pin(async move { self.get().await?.apply(replicas).await })
        }

        fn state(&self) -> BoxFuture<'_, Result<PoolState, ActuatorError>> {
            Box::pin(async move { self.get().await?.state().await })
        }
    }
}

/// A running loop.
pub struct Handle {
    /// Admin routes (`GET /control`), to merge into the admin router.
    pub router: Router,
    /// What `GET /control` shows.
    pub status: Arc<Mutex<Status>>,
    task: tokio::task::JoinHandle<()>,
    actuator: Option<Arc<dyn Actuator>>,
}

impl Handle {
    /// Stops the loop; the instances it started are killed with it.
    pub fn stop(self) {
        self.task.abort();
    }

    /// Stops the loop, then lets the actuator drain and stop the instances it owns.
    pub async fn shutdown(self) {
        self.task.abort();
        let _ = self.task.await;
        if let Some(a) = &self.actuator {
            a.shutdown().await;
        }
    }
}

/// Starts the loop on `pool`.
pub fn start(c: ControlConfig, pool: Arc<Pool>, drain_timeout: Duration) -> Result<Handle, String> {
    let forecaster_name = match &c.forecaster {
        ForecasterKind::Lstm(_) => "lstm",
        ForecasterKind::MovingAverage(_) => "moving-average",
        ForecasterKind::Persistence => "persistence",
        ForecasterKind::SeasonalNaive(_) => "seasonal-naive",
        ForecasterKind::None => "none",
    };
    let planner = planner(&c)?;
    let policy = policy(&c, forecaster_name);
    let limits = Limits {
        min: c.min,
        max: c.max,
        stabilisation: c.stabilisation.as_secs_f64(),
        ..Limits::default()
    };
    let governor = Governor::new(policy, limits, c.dry_run)?;
    let actuator: Option<Arc<dyn Actuator>> = match &c.actuator {
        ActuatorKind::Process { backend_args } => {
            let mut pc = ProcessPoolConfig::new(c.max);
            pc.args = backend_args.clone();
            let membership = PoolMembership {
                pool: pool.clone(),
                drain_timeout,
            };
            Some(Arc::new(ProcessPool::start(pc, Box::new(membership))))
        }
        ActuatorKind::Exec { command, timeout } => Some(Arc::new(ExecHook::new(
            command[0].clone(),
            command[1..].to_vec(),
            *timeout,
        ))),
        ActuatorKind::Kubernetes {
            namespace,
            deployment,
            url,
        } => Some(kubernetes(
            namespace.clone(),
            deployment.clone(),
            url.clone(),
            c.max,
        )?),
        ActuatorKind::None => None,
    };
    let status = Arc::new(Mutex::new(Status {
        policy: governor.name(),
        actuator: actuator.as_ref().map_or("none".into(), |a| a.name()),
        ..Status::default()
    }));
    let task = tokio::spawn(run(
        c,
        pool,
        governor,
        planner,
        actuator.clone(),
        status.clone(),
    ));
    let s = status.clone();
    let router = Router::new().route(
        "/control",
        get(move || {
            let s = s.lock().unwrap_or_else(|p| p.into_inner()).clone();
            async move { Json(s) }
        }),
    );
    Ok(Handle {
        router,
        status,
        task,
        actuator,
    })
}

async fn run(
    c: ControlConfig,
    pool: Arc<Pool>,
    mut governor: Governor,
    mut planner: Option<Planner>,
    actuator: Option<Arc<dyn Actuator>>,
    status: Arc<Mutex<Status>>,
) {
    let started = Instant::now();
    let gauges = pool.control_metrics().clone();
    let mut applied: Option<usize> = None;
    let mut backoff_until: Option<Instant> = None;
    let mut failures = 0u32;
    if let Some(a) = &actuator {
        if !c.dry_run {
            match a.apply(c.min).await {
                Ok(()) => applied = Some(c.min),
                Err(e) => tracing::warn!(error = %e, "initial apply failed"),
            }
        }
    }
    let prom = match &c.metrics {
        MetricsSource::Builtin => None,
        MetricsSource::Prometheus { url, rate_query } => Some(PromSource::new(url, rate_query)),
    };
    let mut prom_failing = false;
    let publisher = c.kafka.as_ref().and_then(|k| {
        k.publish
            .as_ref()
            .map(|t| Publisher::start(k.brokers.clone(), t.clone()))
    });
    let consumer = c.kafka.as_ref().and_then(|k| {
        k.consume
            .as_ref()
            .map(|t| Consumer::start(k.brokers.clone(), t.clone()))
    });
    let mut last_count = pool.client_requests();
    let mut step_count = 0u64;
    let mut next_step = c.step.as_secs_f64();
    let mut tick = tokio::time::interval(c.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    // Utilisation: in-flight requests sampled 10 times per interval.
    let sample_every = c.interval / 10;
    let mut busy_sum = 0.0;
    let mut samples = 0u32;
    let scraper = Scraper::default();
    let (mut scraped_sum, mut scraped_samples, mut scraped_instances) = (0.0, 0u32, 0usize);
    let mut last_requests: std::collections::HashMap<String, u64> = Default::default();
    loop {
        let deadline = tokio::time::Instant::now() + c.interval;
        while tokio::time::Instant::now() + sample_every <= deadline {
            tokio::time::sleep(sample_every).await;
            let st = pool.status();
            let eligible = st.iter().filter(|b| b.eligible).count().max(1);
            let in_flight: u32 = st.iter().map(|b| b.in_flight).sum();
            if c.scrape_instances && samples.is_multiple_of(2) {
                let addresses: Vec<String> = st
                    .iter()
                    .filter(|b| b.eligible)
                    .map(|b| b.address.clone())
                    .collect();
                if let (Some(u), n) = scraper.utilisation(&addresses).await {
                    scraped_sum += u;
                    scraped_samples += 1;
                    scraped_instances = n;
                }
            }
            busy_sum += (f64::from(in_flight) / (eligible as f64 * f64::from(c.workers))).min(1.0);
            samples += 1;
        }
        tick.tick().await;
        let now = started.elapsed().as_secs_f64();
        let count = pool.client_requests();
        let mut arrivals = count.saturating_sub(last_count);
        last_count = count;
        let mut source = "builtin".to_string();
        if let Some(p) = &prom {
            match p.rate(c.interval.max(Duration::from_secs(2))).await {
                Ok(rps) => {
                    if prom_failing {
                        tracing::info!("prometheus answers again; using it");
                        prom_failing = false;
                    }
                    arrivals = (rps * c.interval.as_secs_f64()).round() as u64;
                    source = "prometheus".into();
                }
                Err(e) => {
                    if !prom_failing {
                        tracing::warn!(error = %e, "prometheus unavailable; using the proxy's own counters");
                        prom_failing = true;
                    }
                    source = format!("builtin (prometheus: {e})");
                }
            }
        }
        let (utilisation, utilisation_source) = if scraped_samples > 0 {
            (
                scraped_sum / f64::from(scraped_samples),
                format!("instances ({scraped_instances} scraped)"),
            )
        } else if samples > 0 {
            (busy_sum / f64::from(samples), "proxy in-flight".to_string())
        } else {
            (0.0, "proxy in-flight".to_string())
        };
        busy_sum = 0.0;
        samples = 0;
        scraped_sum = 0.0;
        scraped_samples = 0;
        let eligible = pool.status().iter().filter(|b| b.eligible).count();
        if let (Some(p), Some(k)) = (&publisher, &c.kafka) {
            p.publish(Sample {
                time: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0),
                source: k.source.clone(),
                interval_s: c.interval.as_secs_f64(),
                requests: arrivals,
                utilisation,
                ready: eligible,
            });
        }
        if let Some(k) = &consumer {
            let got = k.drain();
            if got.is_empty() {
                source = format!("{source} (kafka: no samples this interval)");
            } else {
                let mut sources: Vec<&str> = got.iter().map(|s| s.source.as_str()).collect();
                sources.sort_unstable();
                sources.dedup();
                arrivals = got.iter().map(|s| s.requests).sum();
                source = format!(
                    "kafka ({} samples from {} proxies)",
                    got.len(),
                    sources.len()
                );
            }
        }
        step_count += arrivals;
        if let Some(p) = planner.as_mut() {
            while now + 1e-6 >= next_step {
                p.observe(step_count as f64);
                step_count = 0;
                next_step += c.step.as_secs_f64();
            }
        }
        let (ready, starting, actuator_error) = match &actuator {
            Some(a) => match a.state().await {
                Ok(s) => (
                    s.ready
                        .unwrap_or_else(|| pool.status().iter().filter(|b| b.eligible).count()),
                    s.starting.unwrap_or(0),
                    None,
                ),
                Err(e) => (
                    pool.status().iter().filter(|b| b.eligible).count(),
                    0,
                    Some(e.to_string()),
                ),
            },
            None => (pool.status().iter().filter(|b| b.eligible).count(), 0, None),
        };
        let into_step = c.step.as_secs_f64() - (next_step - now);
        let forecast = planner
            .as_ref()
            .and_then(|p| p.forecast(into_step.max(0.0)));
        let trusted = planner.as_ref().is_some_and(|p| p.trusted());
        // Forecast-aware balancing: each instance's predicted load is the forecast at the lead
        // times its share of the last interval's requests (equal shares when idle).
        let members = pool.status();
        let deltas: Vec<(String, u64)> = members
            .iter()
            .map(|b| {
                let before = last_requests.get(&b.address).copied().unwrap_or(b.requests);
                (b.address.clone(), b.requests.saturating_sub(before))
            })
            .collect();
        last_requests = members
            .iter()
            .map(|b| (b.address.clone(), b.requests))
            .collect();
        let total: u64 = deltas.iter().map(|d| d.1).sum();
        let lead = c.lead.as_secs_f64();
        let planned = forecast
            .as_deref()
            .and_then(|f| foresight_scale::peak_between(f, lead, lead + c.margin.as_secs_f64()));
        for (address, d) in &deltas {
            let share = if total > 0 {
                *d as f64 / total as f64
            } else {
                1.0 / deltas.len().max(1) as f64
            };
            let predicted = planned.map_or(f64::NAN, |p| p * share);
            pool.set_forecast(address, predicted, c.capacity_rps);
        }
        let obs = Observation {
            now,
            ready,
            starting,
            utilisation,
            rate: arrivals as f64 / c.interval.as_secs_f64(),
            forecast: forecast.clone(),
            trusted,
        };
        let decision = governor.decide(&obs);
        if let Some(e) = &decision.entry {
            tracing::info!(from = e.from, to = e.to, dry_run = e.dry_run, reason = %e.reason, "scaling decision");
            gauges.scale_actions.inc();
        }
        let mut last_error = actuator_error;
        if let Some(a) = &actuator {
            let due = backoff_until.is_none_or(|t| Instant::now() >= t);
            if !c.dry_run && applied != Some(decision.replicas) && due {
                match a.apply(decision.replicas.min(c.max)).await {
                    Ok(()) => {
                        applied = Some(decision.replicas);
                        failures = 0;
                        backoff_until = None;
                    }
                    Err(e) => {
                        failures += 1;
                        let wait =
                            Duration::from_secs_f64((0.5 * 2f64.powi(failures as i32)).min(60.0));
                        tracing::warn!(error = %e, retry_in = ?wait, "actuator failed");
                        backoff_until = Some(Instant::now() + wait);
                        last_error = Some(e.to_string());
                    }
                }
            }
        }
        gauges.desired.set(decision.replicas as i64);
        gauges.ready.set(ready as i64);
        gauges.starting.set(starting as i64);
        gauges.observed_rps.set(obs.rate);
        gauges.forecast_trusted.set(i64::from(trusted));
        let lead = c.lead.as_secs_f64();
        gauges.forecast_rps.set(
            forecast
                .as_deref()
                .and_then(|f| foresight_scale::peak_between(f, lead, lead + c.margin.as_secs_f64()))
                .unwrap_or(0.0),
        );
        let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
        s.uptime_s = now;
        s.observed_rps = obs.rate;
        s.utilisation = utilisation;
        s.utilisation_source = utilisation_source;
        s.desired = decision.replicas;
        s.ready = ready;
        s.starting = starting;
        s.forecast = forecast;
        s.trusted = trusted;
        s.steps = planner.as_ref().map_or(0, |p| p.steps());
        s.forecaster = planner
            .as_ref()
            .map_or_else(|| "none (reactive)".to_string(), |p| p.forecaster_name());
        s.actuator_error = last_error;
        s.metrics_source = source;
        s.kafka_publish = publisher.as_ref().map(|p| p.status());
        s.kafka_consume = consumer.as_ref().map(|k| k.status());
        if let Some(e) = &decision.entry {
            if s.decisions.len() == DECISIONS_KEPT {
                s.decisions.pop_front();
            }
            s.decisions.push_back(e.into());
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(not(feature = "kubernetes"))]
    #[test]
    fn kubernetes_without_the_feature_is_a_clear_error() {
        let e = super::kubernetes(None, "web".into(), None, 3)
            .err()
            .unwrap();
        assert!(e.contains("--features kubernetes"), "{e}");
    }

    #[cfg(feature = "kubernetes")]
    #[tokio::test]
    async fn kubernetes_actuator_from_the_config() {
        let a =
            super::kubernetes(None, "web".into(), Some("http://127.0.0.1:1".into()), 3).unwrap();
        assert_eq!(a.name(), "kubernetes deployment default/web");
        let e = a.apply(2).await.unwrap_err().to_string();
        assert!(e.starts_with("deployment default/web: "), "{e}");
    }
}
