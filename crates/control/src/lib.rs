//! # foresight-control
//!
//! The live control loop that runs inside `foresight serve` when the configuration has a
//! `[control]` section: every `interval` it measures the client request rate and the pool's
//! utilisation (the proxy's own counters), closes forecaster steps, asks the scaling policy
//! (under the [`foresight_scale::Governor`]: limits, cooldowns, stabilisation, dry-run), and applies the count
//! through an actuator. It never touches the request path: it reads atomics and swaps the
//! pool's snapshot through the same calls as the admin API. `GET /control` on the admin
//! listener shows the forecast, the desired and ready instances and the last decisions with
//! their reasons; the `foresight_control_*` metrics show the same numbers. With several
//! services there is one loop per service that has a control section, each on its own pool;
//! [`routes`] serves their status and Alertmanager's webhook ([`alerts`]: a firing alert can
//! raise a service's floor).
//!
//! # Layout
//! - `lib.rs`: [`spec`] (the section as an `AutoscalerSpec`), [`start`] and the loop itself
//!   (measure → step the autoscaler → act → publish), [`Status`]
//! - `config`: the `[control]` section (as the proxy's file types it,
//!   `foresight_proxy::config::RawControl`) validated into a [`ControlConfig`];
//!   `config/mode.rs`: what `serve` and `controller` each also require ([`Mode`])
//! - `meter`, `prometheus`, `scrape`, `features`: measuring an interval (the proxy's counters,
//!   PromQL, the instances' `/metrics`, feature queries)
//! - `kafka`: samples published to and consumed from a topic
//! - `warm`: the forecaster's warm start (Prometheus, Kafka or a history file)
//! - `act`: applying decisions through the actuator; `aws`: the `aws-asg` actuator's set-up
//! - `admin`, `alerts`: `GET /control` and Alertmanager's webhook; `history`: the loop's
//!   recent past for the dashboard (`GET /control/history`)
//! - `gauges`: the `foresight_control_*` series ([`ControlFamilies`]), in the proxy's
//!   registry or the controller's
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::Instrument;

use act::Act;
use warm::{warm_source, warm_start, warmup_status};

use foresight_actuate::{Actuator, ExecHook, PoolMembership, ProcessPool, ProcessPoolConfig};
use foresight_autoscale::{
    Assembled, Autoscaler, AutoscalerSpec, ModelSource, PolicyParams, Settings, StepClock,
};
use foresight_proxy::Pool;
use foresight_scale::{HpaConfig, InstanceModel, Limits, LogEntry, PredictiveConfig};

mod act;
mod admin;
pub mod alerts;
mod aws;
mod config;
mod features;
mod gauges;
pub mod history;
mod kafka;
mod meter;
mod prometheus;
mod scrape;
mod warm;

pub use admin::routes;
pub use alerts::Alerts;
pub use config::{
    ActuatorKind, ControlConfig, KafkaConfig, Load, MetricsSource, Mode, MAX_FEATURES,
};
pub use features::{FeatureReader, FeatureReading};
pub use foresight_autoscale::Learner;
pub use foresight_autoscale::{ForecasterSpec, PolicySpec};
pub use gauges::{ControlFamilies, ControlGauges};
pub use history::{History, Point};
pub use kafka::{Consumer, KafkaStatus, Publisher, Sample};
pub use meter::{Measured, Meter};
pub use prometheus::PromSource;
pub use scrape::Scraper;

/// What `GET /control` shows.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Status {
    /// The service this loop scales.
    pub service: String,
    /// Policy name.
    pub policy: String,
    /// Actuator name.
    pub actuator: String,
    /// Seconds since the loop started.
    pub uptime_s: f64,
    /// What the loop forecasts (`load`): `req/s`, or `connections` for open WebSocket
    /// connections; the unit of `observed_rps`, `planned_rps` and the forecast.
    pub load_unit: String,
    /// Client requests per second over the last interval (with `load = "connections"`: the
    /// mean of the open connections).
    pub observed_rps: f64,
    /// Mean utilisation of the ready instances over the last interval.
    pub utilisation: f64,
    /// Where utilisation came from (`instances (n scraped)` or `proxy in-flight`).
    pub utilisation_source: String,
    /// Instances wanted (in dry run: what the loop would set, while the pool stays).
    pub desired: usize,
    /// Instances serving.
    pub ready: usize,
    /// Instances starting.
    pub starting: usize,
    /// Forecast (with its error band) as (seconds ahead, requests per second).
    pub forecast: Option<Vec<(f64, f64)>>,
    /// Whether the forecast is trusted.
    pub trusted: bool,
    /// The quantile of the load at the lead that the policy plans for (none without a
    /// forecast).
    pub planned_quantile: Option<f64>,
    /// The planned load: the highest planned rate (the forecast quantile the policy plans
    /// for) in [lead, lead + margin], requests per second; none without a forecast.
    pub planned_rps: Option<f64>,
    /// Requests per second one instance is planned to serve: `capacity_rps` × `target`.
    pub per_instance_rps: f64,
    /// The forecaster and its state (training, retrained n times, unavailable: why; `auto`:
    /// what it chose, or what plans until it has chosen).
    pub forecaster: String,
    /// `auto`: every candidate scored at its last choice, best (the one in use) first —
    /// the pinball loss of the capacity it would have planned on the recent history, and
    /// the share of windows it covered.
    pub forecaster_candidates: Vec<foresight_forecast::Candidate>,
    /// The tail band's relative margin on the plan now (0.4: 40% above it): standing
    /// headroom for the share of the load the plan left above itself over the last week.
    pub tail_margin: f64,
    /// Forecaster steps observed.
    pub steps: usize,
    /// Where the forecaster's first input window came from, and while it cannot forecast
    /// for lack of history, `warming up: N of M steps`.
    pub warmup: String,
    /// Where the rate came from this interval (`prometheus`, `builtin`, or `builtin` with
    /// the reason Prometheus could not be used).
    pub metrics_source: String,
    /// The `[control.features]` read this interval, each with its value or why it has none.
    pub features: Vec<FeatureReading>,
    /// Kafka publisher health, when publishing.
    pub kafka_publish: Option<KafkaStatus>,
    /// Kafka consumer health, when consuming.
    pub kafka_consume: Option<KafkaStatus>,
    /// Scale-up alerts firing for this service (`NAME: floor N`), from `POST /alerts`.
    pub alerts: Vec<String>,
    /// The last actuator error, if the last apply failed.
    pub actuator_error: Option<String>,
    /// With leader election (`foresight controller --lease`): whether this replica leads
    /// and so actuates; `None` without an election.
    pub leader: Option<bool>,
    /// With leader election: the lease's holder as last seen.
    pub leader_identity: Option<String>,
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

/// The autoscaler's settings from the `[control]` section.
pub fn settings(c: &ControlConfig) -> Settings {
    let model = InstanceModel {
        workers: c.workers,
        mean_service: f64::from(c.workers) / c.capacity_rps,
    };
    let mut params = PolicyParams::new(model);
    params.predictive = PredictiveConfig {
        theta_up: c.theta_up,
        theta_down: c.theta_down,
        target: c.target,
        lead: c.lead.as_secs_f64(),
        margin: c.margin.as_secs_f64(),
    };
    params.hpa = HpaConfig {
        target: c.hpa_target,
        ..HpaConfig::default()
    };
    params.floor = HpaConfig {
        target: c.floor_target,
        ..HpaConfig::default()
    };
    params.static_replicas = c.min;
    Settings {
        policy: c.policy,
        params,
        limits: Limits {
            min: c.min,
            max: c.max,
            stabilisation: c.stabilisation.as_secs_f64(),
            ..Limits::default()
        },
        dry_run: c.dry_run,
        quantile: c.quantile,
        widen: c.widen,
        tail_share: c.tail_share,
        interruption_hold: c.interruption_hold.as_secs_f64(),
    }
}

/// The autoscaler's whole specification from the `[control]` section: the forecaster warmed
/// on the configured history, with its model from a file or trained in the background.
pub fn spec(c: &ControlConfig) -> Result<AutoscalerSpec, String> {
    let model_step = c.model_step.as_secs() as i64;
    let history = match &c.history {
        None => None,
        Some(path) => {
            Some(foresight_workload::Series::load_minute_counts(path).map_err(|e| e.to_string())?)
        }
    };
    let mut training = foresight_forecast::ForecastConfig::default();
    training.lstm.epochs = c.train_epochs;
    let model = match (c.forecaster, &c.model, &history) {
        (ForecasterSpec::Lstm, Some(dir), _) => ModelSource::File(dir.clone()),
        (ForecasterSpec::Lstm, None, Some(h)) => ModelSource::Train(h.clone()),
        (ForecasterSpec::Lstm, None, None) => {
            return Err("`control.forecaster = \"lstm\"` needs `model` or `history`".into())
        }
        (ForecasterSpec::Auto, Some(dir), _) => ModelSource::File(dir.clone()),
        (ForecasterSpec::HoltWinters, ..) => {
            return Err(format!(
                "forecaster {} is not available in the live loop",
                c.forecaster
            ))
        }
        _ => ModelSource::Spec,
    };
    let mut next_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut warm = Vec::new();
    if let Some(trace) = &history {
        let start = trace.start;
        warm = trace
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (start + i as i64 * 60, v)))
            .collect();
        next_time = start + trace.values.len() as i64 * 60;
    }
    Ok(AutoscalerSpec {
        settings: settings(c),
        forecaster: c.forecaster,
        model,
        training,
        retrain: c.retrain_every.map(|d| foresight_forecast::RetrainPolicy {
            every_secs: d.as_secs() as i64,
            max_history: 7 * 24 * 60,
        }),
        history: warm,
        clock: StepClock {
            step_secs: c.step.as_secs_f64(),
            next_time,
            model_step,
            to_model: 1.0 / c.history_scale,
        },
        horizon: LIVE_HORIZON,
        features: c.features.iter().map(|(n, _)| n.clone()).collect(),
    })
}

/// Steps forecast by the forecasters without a horizon of their own, live.
const LIVE_HORIZON: usize = 30;

/// The one autoscaler, built from the `[control]` section.
pub fn autoscaler(c: &ControlConfig) -> Result<Autoscaler, String> {
    Ok(build(c)?.autoscaler)
}

/// The autoscaler, and the features its forecaster takes, in its order.
fn build(c: &ControlConfig) -> Result<Assembled, String> {
    let built = spec(c)?.build()?;
    if let Some(h) = &c.history {
        tracing::info!(history = %h.display(), "forecaster warmed on history");
    }
    Ok(built)
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
    /// What `GET /control` shows.
    pub status: Arc<Mutex<Status>>,
    /// What `GET /control/history` shows.
    pub history: Arc<Mutex<History>>,
    /// The scale-up alerts firing for its service.
    pub alerts: Arc<Alerts>,
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

/// Whether this replica may actuate now, and who leads (for `GET /control`): a leader
/// election's view. Without one, every loop actuates.
pub trait Gate: Send + Sync {
    /// Whether to actuate now.
    fn open(&self) -> bool;
    /// The leader as last seen.
    fn leader(&self) -> Option<String>;
}

/// Starts the loop on `pool` (one service's), showing its numbers on `gauges`
/// ([`ControlFamilies::for_service`]).
pub fn start(
    c: ControlConfig,
    pool: Arc<Pool>,
    gauges: ControlGauges,
    drain_timeout: Duration,
) -> Result<Handle, String> {
    start_gated(c, pool, gauges, drain_timeout, None)
}

/// [`start`], actuating only while `gate` is open (a leader election): decisions are made
/// and shown either way, so a replica that becomes leader acts on a warm forecaster at once.
pub fn start_gated(
    mut c: ControlConfig,
    pool: Arc<Pool>,
    gauges: ControlGauges,
    drain_timeout: Duration,
    gate: Option<Arc<dyn Gate>>,
) -> Result<Handle, String> {
    if let MetricsSource::Prometheus { rate_query, .. } = &mut c.metrics {
        *rate_query = rate_query.replace("$service", pool.service());
    }
    for (_, q) in &mut c.features {
        *q = q.replace("$service", pool.service());
    }
    let Assembled {
        autoscaler,
        features: order,
    } = build(&c)?;
    // The meter reads the features in the order the forecaster takes them.
    c.features
        .sort_by_key(|(n, _)| order.iter().position(|o| o == n).unwrap_or(usize::MAX));
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
        ActuatorKind::AwsAsg {
            group,
            endpoint,
            drain,
        } => Some(aws::aws_asg(
            group.clone(),
            endpoint.clone(),
            c.max,
            *drain,
        )?),
        ActuatorKind::None => None,
    };
    let status = Arc::new(Mutex::new(Status {
        service: pool.service().to_string(),
        policy: autoscaler.name(),
        actuator: actuator.as_ref().map_or("none".into(), |a| a.name()),
        load_unit: c.load.unit().to_string(),
        warmup: warmup_status(&autoscaler, &warm_source(&c, &autoscaler)),
        per_instance_rps: c.capacity_rps * c.target,
        ..Status::default()
    }));
    let span = tracing::info_span!("control", service = %pool.service());
    let alerts = Arc::new(Alerts::default());
    let history = Arc::new(Mutex::new(History::default()));
    let task = tokio::spawn(
        run(
            c,
            pool,
            autoscaler,
            actuator.clone(),
            gate,
            Published {
                status: status.clone(),
                history: history.clone(),
                gauges,
            },
            alerts.clone(),
        )
        .instrument(span),
    );
    Ok(Handle {
        status,
        history,
        alerts,
        task,
        actuator,
    })
}

/// What the loop publishes: its status, its recent past and its gauges.
struct Published {
    status: Arc<Mutex<Status>>,
    history: Arc<Mutex<History>>,
    gauges: ControlGauges,
}

/// The loop: measure → step the autoscaler → actuate → publish, every interval.
async fn run(
    c: ControlConfig,
    pool: Arc<Pool>,
    mut autoscaler: Autoscaler,
    actuator: Option<Arc<dyn Actuator>>,
    gate: Option<Arc<dyn Gate>>,
    published: Published,
    alerts: Arc<Alerts>,
) {
    let Published {
        status,
        history,
        gauges,
    } = published;
    gauges.max.set(c.max as i64);
    let mut act = Act {
        actuator: actuator.clone(),
        gate: gate.clone(),
        applied: None,
        backoff_until: None,
        failures: 0,
        max: c.max,
    };
    if !c.dry_run {
        if let Some(e) = act.apply(c.min).await {
            tracing::warn!(error = %e, "initial apply failed");
        }
    }
    let warm_source = warm_start(&c, &mut autoscaler).await;
    {
        // A warmed forecaster forecasts before the first interval ends: show it at once.
        let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
        s.warmup = warmup_status(&autoscaler, &warm_source);
        s.forecast = autoscaler.planner().and_then(|p| p.forecast(0.0));
        s.trusted = autoscaler.planner().is_some_and(|p| p.trusted());
    }
    let mut meter = Meter::new(&c, pool.clone(), actuator);
    loop {
        let m = meter.measure().await;
        if let Some(why) = m.blind.as_ref().filter(|_| c.policy != PolicySpec::Static) {
            // No rate (a controller's Prometheus or Kafka is down): deciding on zero would
            // scale in. Hold: no step, no change; show why. (`static` needs no rate.)
            gauges.ready.set(m.sample.ready as i64);
            gauges.starting.set(m.sample.starting as i64);
            gauges.metrics_degraded.set(1);
            let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
            s.uptime_s = m.sample.now;
            s.ready = m.sample.ready;
            s.starting = m.sample.starting;
            s.metrics_source = why.clone();
            s.actuator_error = m.actuator_error.clone();
            s.kafka_consume = meter.consume_status();
            continue;
        }
        autoscaler.set_floor(alerts.floor());
        let readings: Vec<Option<f64>> = m.features.iter().map(|f| f.value).collect();
        autoscaler.observe_features(&readings);
        let step = autoscaler.step(&m.sample);
        meter.share_forecast(step.planned);
        let decision = &step.decision;
        if let Some(e) = &decision.entry {
            tracing::info!(from = e.from, to = e.to, dry_run = e.dry_run, reason = %e.reason, "scaling decision");
            gauges.scale_actions.inc();
        }
        let mut last_error = m.actuator_error;
        if !c.dry_run {
            if let Some(e) = act.apply(decision.replicas).await {
                last_error = Some(e);
            }
        }
        // In dry run, what it would set (what KEDA is told), not the unchanged count.
        gauges.desired.set(decision.wanted as i64);
        gauges.metrics_degraded.set(i64::from(m.degraded));
        gauges.ready.set(m.sample.ready as i64);
        gauges.starting.set(m.sample.starting as i64);
        gauges.observed_rps.set(step.rate);
        gauges.forecast_trusted.set(i64::from(step.trusted));
        gauges.forecast_rps.set(step.planned.unwrap_or(0.0));
        let planner = autoscaler.planner();
        let expected = planner.and_then(|p| p.expected_at_lead());
        history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(history::Point {
                t: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
                observed_rps: step.rate,
                expected_rps: expected.map(|(r, _)| r),
                planned_rps: step.planned,
                lead_s: expected.map_or(c.lead.as_secs_f64(), |(_, lead)| lead),
                ready: m.sample.ready,
                starting: m.sample.starting,
                desired: decision.wanted,
            });
        let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
        s.uptime_s = m.sample.now;
        s.observed_rps = step.rate;
        s.utilisation = m.sample.utilisation;
        s.utilisation_source = m.utilisation_source;
        s.desired = decision.wanted;
        s.ready = m.sample.ready;
        s.starting = m.sample.starting;
        s.forecast = step.forecast.clone();
        s.trusted = step.trusted;
        s.planned_rps = step.planned;
        s.planned_quantile = planner.map(|p| p.quantile());
        s.steps = planner.map_or(0, |p| p.steps());
        s.warmup = warmup_status(&autoscaler, &warm_source);
        s.forecaster =
            planner.map_or_else(|| "none (reactive)".to_string(), |p| p.forecaster_name());
        s.forecaster_candidates = planner.map_or_else(Vec::new, |p| p.forecaster_candidates());
        s.tail_margin = planner.map_or(0.0, |p| p.tail_margin());
        s.actuator_error = last_error;
        s.metrics_source = m.metrics_source;
        s.features = m.features;
        s.kafka_publish = meter.publish_status();
        s.kafka_consume = meter.consume_status();
        s.alerts = alerts.describe();
        if let Some(g) = &gate {
            s.leader = Some(g.open());
            s.leader_identity = g.leader();
        }
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
    use super::*;

    fn pool() -> Arc<Pool> {
        let raw = foresight_proxy::config::RawConfig::default();
        Pool::detached(&raw.validate().expect("the defaults are valid").services[0])
    }

    fn section(text: &str) -> ControlConfig {
        let raw: foresight_proxy::config::RawControl = toml::from_str(text).unwrap();
        ControlConfig::from_raw(Some(&raw)).unwrap().unwrap()
    }

    /// A model trained with features runs only where `[control.features]` names the same
    /// ones (in any order): otherwise the loop refuses to start, naming both lists.
    #[test]
    fn a_model_needs_the_features_it_was_trained_with() {
        let values: Vec<f64> = (0..300).map(|i| 100.0 + (i % 24) as f64).collect();
        let mut series = foresight_forecast::Series::from_values(1_700_006_400, 60, &values);
        series.features = vec![foresight_forecast::series::Feature {
            name: "cpu".into(),
            values: values.iter().map(|v| Some(v / 100.0)).collect(),
        }];
        let ds = foresight_forecast::Dataset::new(series, &Default::default()).unwrap();
        let cfg = foresight_forecast::LstmConfig {
            hidden: 4,
            seq_len: 6,
            horizon: 3,
            epochs: 1,
            stride: 4,
            ..Default::default()
        };
        let m = ds.train_lstm(&cfg, |_| {}).unwrap();
        let dir = std::env::temp_dir().join(format!("foresight-feat-{}", std::process::id()));
        m.save(&dir).unwrap();
        let with = |features: &str| {
            section(&format!(
                "policy = \"predictive\"\nforecaster = \"lstm\"\nmodel = \"{}\"\n\
                 actuator = \"none\"\nmetrics = \"prometheus\"\n{features}",
                dir.display()
            ))
        };
        for (features, listed) in [("", "[]"), ("[features]\nmem = \"m\"", "[mem]")] {
            let e = autoscaler(&with(features)).err().expect("refused");
            assert!(
                e.contains("trained with the features [cpu]")
                    && e.contains(&format!("`control.features` has {listed}")),
                "{e}"
            );
        }
        let built = build(&with("[features]\ncpu = \"sum(c)\"")).unwrap();
        assert!(built.autoscaler.has_features());
        assert_eq!(built.features, vec!["cpu".to_string()]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The I/O shell on a paused clock: every interval it measures, steps the autoscaler once
    /// per step, and publishes what it decided; no real time passes.
    #[tokio::test(start_paused = true)]
    async fn the_loop_steps_once_per_interval_on_a_paused_clock() {
        let dir = std::env::temp_dir().join(format!("foresight-loop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let history = dir.join("h.csv");
        let mut csv = String::from("minute,count\n");
        for m in 0..30 {
            csv.push_str(&format!("2026-01-05 00:{m:02}:00,{}\n", 600 + 10 * m));
        }
        std::fs::write(&history, csv).unwrap();
        let c = section(&format!(
            "interval = \"1s\"\nstep = \"2s\"\nmodel_step = \"1m\"\npolicy = \"predictive\"\n\
             forecaster = \"persistence\"\nhistory = \"{}\"\nhistory_scale = 0.0333333333\n\
             capacity_rps = 1.0\nworkers = 1\nmin = 1\nmax = 50\nlead = \"3s\"\nmargin = \"2s\"\n\
             actuator = \"none\"\nscrape_instances = false",
            history.display()
        ));
        let h = start(c, pool(), ControlGauges::default(), Duration::from_secs(1)).unwrap();
        // Intervals end at 1, 2 and 3 s; steps (2 s each) close at 2 s only.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let s = h.status.lock().unwrap().clone();
        assert_eq!(s.steps, 1, "{s:?}");
        assert!((s.uptime_s - 3.0).abs() < 0.2, "{s:?}");
        // No traffic since the history: the step closed at 2 s saw 0, and persistence says 0.
        let f = s.forecast.clone().expect("a forecast");
        assert!(f.iter().all(|(_, r)| *r == 0.0), "{f:?}");
        assert_eq!(s.policy, "predictive-persistence");
        assert_eq!(s.forecaster, "persistence");
        assert_eq!(s.ready, 0, "no instance in the pool");
        // Warm from the history, the policy had a forecast at the first interval, before any
        // step closed: persistence of the last history minute, 890 counts of 1/30 live
        // request per 2 s step = 14.8 req/s, so ceil(14.8 / (1 × 0.7)) = 22 instances, of
        // which the governor's step limit allows +4 at once.
        let first = s.decisions.front().expect("a decision").clone();
        assert!(
            first.reason.contains("predicted 14.8 req/s") && first.reason.contains("= 22"),
            "{first:?}"
        );
        assert_eq!((first.from, first.to), (0, 4), "{first:?}");
        assert!(first.at_s > 0.9 && first.at_s < 1.2, "{first:?}");
        h.stop();
        let _ = std::fs::remove_dir_all(&dir);
    }

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
