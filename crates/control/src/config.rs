//! The `[control]` section of the proxy's configuration file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use foresight_autoscale::{ForecasterSpec, PolicySpec, FLOOR_TARGET};
use foresight_proxy::config::RawControl;
use foresight_proxy::ConfigError;
use foresight_scale::{HpaConfig, PredictiveConfig};

mod mode;
pub use mode::Mode;

/// `rate_query` by default: the service's client request rate. `$service` in a query is
/// replaced by the service's name, so one query serves every service.
pub const DEFAULT_RATE_QUERY: &str =
    "sum(rate(foresight_client_requests_total{service=\"$service\"}[1m]))";

/// `rate_query` by default with `load = "connections"`: the service's open WebSocket (switched)
/// connections, summed over its instances.
pub const DEFAULT_CONNECTIONS_QUERY: &str =
    "sum(foresight_upgraded_connections{service=\"$service\"})";

/// What the loop forecasts and sizes for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Load {
    /// Client requests per second (a gRPC call is a request).
    #[default]
    Requests,
    /// Open switched (WebSocket) connections, the mean over the interval: for services whose
    /// clients hold a connection and send little on it. `capacity_rps` then reads as the
    /// connections one instance holds at full utilisation.
    Connections,
}

impl Load {
    /// The unit of the load's figures in `GET /control` (`observed_rps`, `planned_rps`).
    pub fn unit(self) -> &'static str {
        match self {
            Load::Requests => "req/s",
            Load::Connections => "connections",
        }
    }
}

/// Which actuator turns counts into instances.
#[derive(Clone, Debug, PartialEq)]
pub enum ActuatorKind {
    /// Local `foresight backend` processes joined to this proxy's pool.
    Process {
        /// Extra `foresight backend` flags.
        backend_args: Vec<String>,
    },
    /// A command run with the count.
    Exec {
        /// Program and arguments (`{replicas}` is replaced).
        command: Vec<String>,
        /// Longest run.
        timeout: Duration,
    },
    /// A Kubernetes Deployment's replicas (needs the `kubernetes` feature).
    Kubernetes {
        /// Namespace (default: the kubeconfig's).
        namespace: Option<String>,
        /// Deployment name.
        deployment: String,
        /// API server URL without authentication (e.g. `kubectl proxy`); default: the
        /// kubeconfig or the in-cluster service account.
        url: Option<String>,
    },
    /// An EC2 Auto Scaling group's desired capacity (needs the `aws` feature).
    AwsAsg {
        /// The group's name.
        group: String,
        /// The API endpoint (an emulator); default: `AWS_ENDPOINT_URL` or AWS's own.
        endpoint: Option<String>,
        /// How long an instance being removed stays in `Standby`, drained by every proxy,
        /// before it is terminated.
        drain: Duration,
    },
    /// Decide and report only.
    None,
}

/// The validated section.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlConfig {
    /// Decision period.
    pub interval: Duration,
    /// Live time per forecaster step.
    pub step: Duration,
    /// Model time per forecaster step (equal to `step` unless replaying compressed time).
    pub model_step: Duration,
    /// Policy (`oracle` is the simulator's only).
    pub policy: PolicySpec,
    /// Fewest / most instances.
    pub min: usize,
    /// Most instances.
    pub max: usize,
    /// Log decisions, change nothing.
    pub dry_run: bool,
    /// Whether the loop's pool carries the service's traffic (in `serve`), so its own
    /// counters are a rate when Prometheus or Kafka fail. `foresight controller` sets this
    /// false (not a configuration key): there, a rate that cannot be read is no rate, and the
    /// loop holds instead of reading it as zero.
    pub sees_traffic: bool,
    /// What the loop forecasts and sizes for.
    pub load: Load,
    /// Requests per second one instance serves at full utilisation (with `load =
    /// "connections"`: the connections it holds).
    pub capacity_rps: f64,
    /// Requests one instance serves at once (for utilisation from in-flight counts).
    pub workers: u32,
    /// HPA target utilisation.
    pub hpa_target: f64,
    /// Hybrid's emergency floor target utilisation.
    pub floor_target: f64,
    /// Predictive sizing target utilisation.
    pub target: f64,
    /// Predictive thresholds.
    pub theta_up: f64,
    /// Predictive thresholds.
    pub theta_down: f64,
    /// Plan for the load this far ahead (the provisioning delay).
    pub lead: Duration,
    /// ... and this much beyond.
    pub margin: Duration,
    /// Scale-in stabilisation window.
    pub stabilisation: Duration,
    /// Longest scale-in hold while the load is interrupted (0: off).
    pub interruption_hold: Duration,
    /// Widest widening of the plan for load that comes early or late, steps each side.
    pub widen: usize,
    /// The share of the load the plan may leave above itself (the tail band; 0: off).
    pub tail_share: f64,
    /// Forecaster.
    pub forecaster: ForecasterSpec,
    /// The LSTM's model directory from `foresight train` (none: trained at start on
    /// `history`); with `auto`, the first choice's LSTM candidate.
    pub model: Option<PathBuf>,
    /// The quantile of realised forecast errors added to the expected rate (the band).
    pub quantile: f64,
    /// History (`minute,count` CSV) to warm the forecaster with before live data.
    pub history: Option<PathBuf>,
    /// Live requests per history count (e.g. peak rate / busiest history minute).
    pub history_scale: f64,
    /// Actuator.
    pub actuator: ActuatorKind,
    /// Where the request rate comes from.
    pub metrics: MetricsSource,
    /// Kafka publishing and consuming of metrics samples.
    pub kafka: Option<KafkaConfig>,
    /// Read utilisation from each instance's `/metrics` (falling back to the proxy's
    /// in-flight counts for instances that do not export Foresight's backend metrics).
    pub scrape_instances: bool,
    /// Retrain the LSTM on live data this often (model time), and swap it in; with `auto`,
    /// choose again (on the last week) this often.
    pub retrain_every: Option<Duration>,
    /// Epochs when training at start or retraining.
    pub train_epochs: usize,
    /// `[control.features]`: (name, PromQL) of each feature the LSTM was trained with,
    /// evaluated on the Prometheus of `metrics` every interval.
    pub features: Vec<(String, String)>,
}

/// `kafka_*` keys.
#[derive(Clone, Debug, PartialEq)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// Publish every interval's sample to this topic.
    pub publish: Option<String>,
    /// Read the request rate from samples on this topic (all proxies publishing to it).
    pub consume: Option<String>,
    /// This proxy's name in its samples.
    pub source: String,
}

/// Where the control loop reads the request rate.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricsSource {
    /// The proxy's own counters.
    Builtin,
    /// A Prometheus server, by PromQL; the built-in counters when it cannot answer.
    Prometheus {
        /// Base URL.
        url: String,
        /// PromQL giving requests per second.
        rate_query: String,
    },
}

impl Default for ControlConfig {
    /// The policies' own defaults (`foresight_scale`, `foresight_autoscale`), a one-minute
    /// forecaster step and the HPA's 15 s period.
    fn default() -> Self {
        let predictive = PredictiveConfig::default();
        ControlConfig {
            interval: Duration::from_secs(15),
            step: Duration::from_secs(60),
            model_step: Duration::from_secs(60),
            policy: PolicySpec::Hybrid,
            min: 1,
            max: 10,
            dry_run: false,
            sees_traffic: true,
            load: Load::Requests,
            capacity_rps: 20.0,
            workers: 8,
            hpa_target: HpaConfig::default().target,
            floor_target: FLOOR_TARGET,
            target: predictive.target,
            theta_up: predictive.theta_up,
            theta_down: predictive.theta_down,
            lead: Duration::from_secs_f64(predictive.lead),
            margin: Duration::from_secs_f64(predictive.margin),
            stabilisation: Duration::from_secs_f64(PolicySpec::Hybrid.default_scale_in_window()),
            interruption_hold: Duration::from_secs_f64(foresight_autoscale::INTERRUPTION_HOLD),
            widen: 0,
            tail_share: 0.0,
            forecaster: ForecasterSpec::Auto,
            model: None,
            quantile: foresight_autoscale::UPPER_QUANTILE,
            history: None,
            history_scale: 1.0,
            actuator: ActuatorKind::Process {
                backend_args: Vec::new(),
            },
            metrics: MetricsSource::Builtin,
            kafka: None,
            retrain_every: None,
            train_epochs: 5,
            scrape_instances: true,
            features: Vec::new(),
        }
    }
}

fn invalid(key: &str, value: impl ToString, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        key: format!("control.{key}"),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

/// A duration key: humantime text (`15s`, `3m`), or `default` when absent.
fn duration(key: &str, v: &Option<String>, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => {
            humantime::parse_duration(s).map_err(|_| invalid(key, s, "a duration like 15s or 3m"))
        }
    }
}

/// A number key within `lo..=hi`, or `default` when absent.
fn float(key: &str, v: Option<f64>, default: f64, lo: f64, hi: f64) -> Result<f64, ConfigError> {
    let v = v.unwrap_or(default);
    if !(lo..=hi).contains(&v) {
        return Err(invalid(key, v, &format!("a number in {lo}–{hi}")));
    }
    Ok(v)
}

/// A whole-number key within `lo..=hi`, or `default` when absent.
fn int(key: &str, v: Option<i64>, default: i64, lo: i64, hi: i64) -> Result<i64, ConfigError> {
    let v = v.unwrap_or(default);
    if !(lo..=hi).contains(&v) {
        return Err(invalid(key, v, &format!("a whole number in {lo}–{hi}")));
    }
    Ok(v)
}

/// Most features a model takes from the live loop.
pub const MAX_FEATURES: usize = 32;

/// `[control.features]`: names as in the training file's columns, PromQL queries; only for
/// an LSTM loaded from `model` with the rate from Prometheus.
fn features(
    table: Option<&BTreeMap<String, String>>,
    forecaster: &ForecasterSpec,
    model: &Option<PathBuf>,
    metrics: &MetricsSource,
) -> Result<Vec<(String, String)>, ConfigError> {
    let Some(table) = table else {
        return Ok(Vec::new());
    };
    if table.len() > MAX_FEATURES {
        return Err(invalid(
            "features",
            format!("{} entries", table.len()),
            &format!("at most {MAX_FEATURES} features"),
        ));
    }
    if *forecaster != ForecasterSpec::Lstm || model.is_none() {
        return Err(invalid(
            "features",
            "(present)",
            "used with forecaster = \"lstm\" and a `model` trained with these features \
             (`foresight history` then `foresight train`)",
        ));
    }
    if !matches!(metrics, MetricsSource::Prometheus { .. }) {
        return Err(invalid(
            "features",
            "(present)",
            "used with metrics = \"prometheus\" (the features are PromQL queries)",
        ));
    }
    table
        .iter()
        .map(|(name, q)| {
            if q.trim().is_empty() {
                Err(invalid(&format!("features.{name}"), q, "a PromQL query"))
            } else {
                Ok((name.clone(), q.clone()))
            }
        })
        .collect()
}

impl ControlConfig {
    /// Validates the `[control]` section; `None` when it is absent or `enabled = false`.
    pub fn from_raw(r: Option<&RawControl>) -> Result<Option<ControlConfig>, ConfigError> {
        let Some(r) = r else { return Ok(None) };
        if !r.enabled() {
            return Ok(None);
        }
        let d = ControlConfig::default();
        let interval = duration("interval", &r.interval, d.interval)?;
        if interval < Duration::from_millis(100) {
            return Err(invalid(
                "interval",
                humantime::format_duration(interval),
                "at least 100ms",
            ));
        }
        let step = duration("step", &r.step, d.step.max(interval))?;
        let ratio = step.as_secs_f64() / interval.as_secs_f64();
        if ratio < 1.0 - 1e-9 || (ratio - ratio.round()).abs() > 1e-6 {
            return Err(invalid(
                "step",
                humantime::format_duration(step),
                "a whole multiple of `control.interval`",
            ));
        }
        let model_step = duration("model_step", &r.model_step, step)?;
        if model_step.as_secs() == 0 {
            return Err(invalid(
                "model_step",
                humantime::format_duration(model_step),
                "at least 1s",
            ));
        }
        let policy = match r.policy.as_deref().unwrap_or("hybrid") {
            "oracle" => {
                return Err(invalid(
                    "policy",
                    "oracle",
                    "one of static, hpa, reactive, predictive, cost-optimal, hybrid (the oracle knows the future: simulator only)",
                ))
            }
            name => name.parse::<PolicySpec>().map_err(|_| {
                invalid(
                    "policy",
                    name,
                    "one of static, hpa, reactive, predictive, cost-optimal, hybrid",
                )
            })?,
        };
        let min = int("min", r.min, 1, 1, 10_000)? as usize;
        let max = int("max", r.max, d.max.max(min) as i64, 1, 10_000)? as usize;
        if max < min {
            return Err(invalid(
                "max",
                max,
                &format!("at least control.min ({min})"),
            ));
        }
        let name = r.forecaster.as_deref().unwrap_or("auto");
        let mut forecaster: ForecasterSpec =
            name.parse()
                .map_err(|e: foresight_autoscale::UnknownName| {
                    invalid("forecaster", name, &format!("one of {}", e.expected))
                })?;
        let mut model = None;
        match &mut forecaster {
            ForecasterSpec::Lstm => {
                model = r.model.as_ref().map(PathBuf::from);
                if model.is_none() && r.history.is_none() {
                    return Err(invalid(
                        "model",
                        "(missing)",
                        "a model directory from `foresight train`, or `control.history` to train one at start",
                    ));
                }
            }
            ForecasterSpec::Auto => {
                // A model from `foresight train` is the first choice's LSTM candidate.
                model = r.model.as_ref().map(PathBuf::from);
            }
            ForecasterSpec::HoltWinters => {
                return Err(invalid(
                    "forecaster",
                    name,
                    "a forecaster the live loop runs: auto, lstm, moving-average, persistence, seasonal-naive, seasonal-quantile, none (holt-winters alone is fitted offline by `foresight experiment`; live, auto fits it as a candidate)",
                ))
            }
            ForecasterSpec::MovingAverage { window } => {
                *window = int("window", r.window, *window as i64, 1, 10_000)? as usize;
            }
            ForecasterSpec::SeasonalNaive { season } => {
                *season = int("season", r.season, *season as i64, 2, 1_000_000)? as usize;
            }
            ForecasterSpec::SeasonalQuantile {
                season,
                seasons,
                quantile,
            } => {
                // The defaults are the name's (`ForecasterSpec::from_str`).
                *season = int("season", r.season, *season as i64, 2, 1_000_000)? as usize;
                *seasons = int("seasons", r.seasons, *seasons as i64, 1, 1_000)? as usize;
                *quantile = float("season_quantile", r.season_quantile, *quantile, 0.0, 1.0)?;
            }
            ForecasterSpec::Persistence | ForecasterSpec::None => {}
        }
        if forecaster == ForecasterSpec::None
            && matches!(policy, PolicySpec::Predictive | PolicySpec::CostOptimal)
        {
            return Err(invalid(
                "forecaster",
                "none",
                "a forecaster for a predictive policy",
            ));
        }
        let actuator = match r.actuator.as_deref().unwrap_or("process") {
            "process" => ActuatorKind::Process {
                backend_args: r.backend_args.clone().unwrap_or_default(),
            },
            "exec" => {
                let command = r.command.clone().unwrap_or_default();
                if command.is_empty() {
                    return Err(invalid(
                        "command",
                        "[]",
                        "a program and its arguments when actuator = \"exec\"",
                    ));
                }
                ActuatorKind::Exec {
                    command,
                    timeout: duration(
                        "command_timeout",
                        &r.command_timeout,
                        Duration::from_secs(30),
                    )?,
                }
            }
            "kubernetes" => ActuatorKind::Kubernetes {
                namespace: r.namespace.clone(),
                deployment: r.deployment.clone().ok_or_else(|| {
                    invalid(
                        "deployment",
                        "(missing)",
                        "a Deployment name when actuator = \"kubernetes\"",
                    )
                })?,
                url: r.kube_url.clone(),
            },
            "aws-asg" => ActuatorKind::AwsAsg {
                group: r.group.clone().ok_or_else(|| {
                    invalid(
                        "group",
                        "(missing)",
                        "an Auto Scaling group name when actuator = \"aws-asg\"",
                    )
                })?,
                endpoint: r.aws_endpoint.clone(),
                drain: {
                    let d = duration("drain", &r.drain, Duration::from_secs(45))?;
                    if d > Duration::from_secs(3600) {
                        return Err(invalid(
                            "drain",
                            humantime::format_duration(d),
                            "at most 1h (how long a removed instance drains before it is \
                             terminated)",
                        ));
                    }
                    d
                },
            },
            "none" => ActuatorKind::None,
            other => {
                return Err(invalid(
                    "actuator",
                    other,
                    "one of process, exec, kubernetes, aws-asg, none",
                ))
            }
        };
        let theta_down = float("theta_down", r.theta_down, d.theta_down, 0.0, 1.0)?;
        let theta_up = float("theta_up", r.theta_up, d.theta_up, 0.0, 10.0)?;
        if theta_down >= theta_up {
            return Err(invalid("theta_down", theta_down, "below control.theta_up"));
        }
        let load = match r.load.as_deref() {
            None | Some("requests") => Load::Requests,
            Some("connections") => Load::Connections,
            Some(other) => return Err(invalid("load", other, "requests or connections")),
        };
        let metrics = match r.metrics.as_deref().unwrap_or("builtin") {
            "builtin" => MetricsSource::Builtin,
            "prometheus" => {
                let url = r
                    .prometheus_url
                    .clone()
                    .unwrap_or_else(|| "http://127.0.0.1:9090".into());
                if !url.starts_with("http://") {
                    return Err(invalid("prometheus_url", &url, "an http:// URL"));
                }
                MetricsSource::Prometheus {
                    url,
                    rate_query: r.rate_query.clone().unwrap_or_else(|| {
                        match load {
                            Load::Requests => DEFAULT_RATE_QUERY,
                            Load::Connections => DEFAULT_CONNECTIONS_QUERY,
                        }
                        .into()
                    }),
                }
            }
            other => return Err(invalid("metrics", other, "builtin or prometheus")),
        };
        let kafka = match &r.kafka_brokers {
            None => {
                for (k, v) in [
                    ("kafka_publish", &r.kafka_publish),
                    ("kafka_consume", &r.kafka_consume),
                ] {
                    if v.is_some() {
                        return Err(invalid(
                            "kafka_brokers",
                            "(missing)",
                            &format!("brokers (host:port, comma-separated) when {k} is set"),
                        ));
                    }
                }
                None
            }
            Some(b) => {
                let brokers: Vec<String> = b
                    .split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect();
                if brokers.is_empty()
                    || brokers
                        .iter()
                        .any(|x| !x.contains(':') || x.contains("://"))
                {
                    return Err(invalid("kafka_brokers", b, "host:port[,host:port…]"));
                }
                let (publish, consume) = (r.kafka_publish.clone(), r.kafka_consume.clone());
                if publish.is_none() && consume.is_none() {
                    return Err(invalid(
                        "kafka_brokers",
                        b,
                        "used with kafka_publish and/or kafka_consume",
                    ));
                }
                Some(KafkaConfig {
                    brokers,
                    publish,
                    consume,
                    source: r
                        .kafka_source
                        .clone()
                        .unwrap_or_else(|| format!("proxy-{}", std::process::id())),
                })
            }
        };
        let retrain_every = match &r.retrain_every {
            None => None,
            Some(v) => Some(
                humantime::parse_duration(v)
                    .ok()
                    .filter(|d| d.as_secs() >= 60)
                    .ok_or_else(|| {
                        invalid("retrain_every", v, "a duration of at least 1m (model time)")
                    })?,
            ),
        };
        let features = features(r.features.as_ref(), &forecaster, &model, &metrics)?;
        Ok(Some(ControlConfig {
            features,
            scrape_instances: r.scrape_instances.unwrap_or(true),
            retrain_every,
            train_epochs: int("train_epochs", r.train_epochs, 5, 1, 1000)? as usize,
            kafka,
            metrics,
            interval,
            step,
            model_step,
            policy,
            min,
            max,
            dry_run: r.dry_run.unwrap_or(false),
            sees_traffic: true,
            load,
            capacity_rps: float("capacity_rps", r.capacity_rps, d.capacity_rps, 1e-6, 1e9)?,
            workers: int("workers", r.workers, d.workers as i64, 1, 1_000_000)? as u32,
            hpa_target: float("hpa_target", r.hpa_target, d.hpa_target, 0.01, 1.0)?,
            floor_target: float("floor_target", r.floor_target, d.floor_target, 0.01, 1.0)?,
            target: float("target", r.target, d.target, 0.01, 1.0)?,
            theta_up,
            theta_down,
            lead: duration("lead", &r.lead, d.lead)?,
            margin: duration("margin", &r.margin, d.margin)?,
            stabilisation: duration(
                "stabilisation",
                &r.stabilisation,
                Duration::from_secs_f64(policy.default_scale_in_window()),
            )?,
            interruption_hold: {
                let hold = duration(
                    "interruption_hold",
                    &r.interruption_hold,
                    d.interruption_hold,
                )?;
                if hold > Duration::from_secs(86_400) {
                    return Err(invalid(
                        "interruption_hold",
                        humantime::format_duration(hold),
                        "a duration of at most 1 day (0s: off)",
                    ));
                }
                hold
            },
            widen: int(
                "widen",
                r.widen,
                d.widen as i64,
                0,
                foresight_autoscale::MAX_WIDEN as i64,
            )? as usize,
            tail_share: float("tail_share", r.tail_share, d.tail_share, 0.0, 1.0)?,
            forecaster,
            model,
            quantile: float("quantile", r.quantile, d.quantile, 0.0, 1.0)?,
            history: r.history.as_ref().map(PathBuf::from),
            history_scale: float("history_scale", r.history_scale, 1.0, 1e-12, 1e12)?,
            actuator,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<ControlConfig>, String> {
        let raw: RawControl = toml::from_str(s).map_err(|e| e.to_string())?;
        ControlConfig::from_raw(Some(&raw)).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_errors_name_the_key() {
        let c = parse("").unwrap().unwrap();
        assert_eq!(c.policy, PolicySpec::Hybrid);
        assert_eq!(c.interruption_hold, Duration::from_secs(3600));
        assert_eq!(parse("enabled = false").unwrap(), None);
        let c = parse("interruption_hold = \"0s\"\nwiden = 3")
            .unwrap()
            .unwrap();
        let s = crate::settings(&c);
        assert_eq!((s.interruption_hold, s.widen), (0.0, 3));
        let c = parse("interval = \"1s\"\nstep = \"2s\"\npolicy = \"hpa\"\nmin = 2\nmax = 4")
            .unwrap()
            .unwrap();
        assert_eq!((c.min, c.max, c.step), (2, 4, Duration::from_secs(2)));
        for (text, needle) in [
            (
                "policy = \"magic\"",
                "invalid value `magic` for `control.policy`",
            ),
            ("min = 5\nmax = 2", "`control.max`"),
            ("interval = \"2s\"\nstep = \"3s\"", "`control.step`"),
            ("forecaster = \"lstm\"", "`control.model`"),
            ("retrain_every = \"10s\"", "`control.retrain_every`"),
            ("actuator = \"kubernetes\"", "`control.deployment`"),
            ("actuator = \"exec\"", "`control.command`"),
            ("actuator = \"aws-asg\"", "`control.group`"),
            (
                "actuator = \"aws-asg\"\ngroup = \"w\"\ndrain = \"2h\"",
                "`control.drain`",
            ),
            // Unknown keys and wrong types: serde's message, with the line.
            ("colour = 1", "unknown field `colour`"),
            ("hpa_target = 1.5", "`control.hpa_target`"),
            ("lead = \"soon\"", "`control.lead`"),
            ("theta_up = 0.4", "`control.theta_down`"),
            ("policy = \"oracle\"", "simulator only"),
            ("forecaster = \"prophet\"", "seasonal-quantile"),
            ("forecaster = \"holt-winters\"", "fitted offline"),
            ("forecaster = \"auto\"\nmodel = 3", "line 2"),
            ("quantile = 1.5", "`control.quantile`"),
            ("interruption_hold = \"2d\"", "`control.interruption_hold`"),
            ("widen = 6", "`control.widen`"),
            ("tail_share = -0.1", "`control.tail_share`"),
            ("features = 3", "features"),
            ("[features]\ncpu = \"x\"", "forecaster = \"lstm\""),
            (
                "forecaster = \"lstm\"\nmodel = \"m\"\n[features]\ncpu = \"x\"",
                "metrics = \"prometheus\"",
            ),
            (
                "forecaster = \"lstm\"\nmodel = \"m\"\nmetrics = \"prometheus\"\n[features]\ncpu = \" \"",
                "`control.features.cpu`",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
        let c = parse("actuator = \"aws-asg\"\ngroup = \"w\"")
            .unwrap()
            .unwrap();
        assert_eq!(
            c.actuator,
            ActuatorKind::AwsAsg {
                group: "w".into(),
                endpoint: None,
                drain: Duration::from_secs(45)
            }
        );
        let c = parse(
            "forecaster = \"lstm\"\nmodel = \"m\"\nmetrics = \"prometheus\"\n\
             [features]\nmem = \"sum(m)\"\ncpu = \"sum(c)\"",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            c.features,
            vec![
                ("cpu".to_string(), "sum(c)".to_string()),
                ("mem".to_string(), "sum(m)".to_string())
            ]
        );
    }
}
