//! The `[control]` section of the proxy's configuration file.

use std::path::PathBuf;
use std::time::Duration;

use foresight_autoscale::{ForecasterSpec, PolicySpec, FLOOR_TARGET};
use foresight_proxy::ConfigError;
use foresight_scale::{HpaConfig, PredictiveConfig};

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

struct Reader<'a> {
    t: &'a toml::Table,
}

impl Reader<'_> {
    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.t.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(invalid(key, v, "a string")),
        }
    }

    fn duration(&self, key: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.string(key)? {
            None => Ok(default),
            Some(s) => humantime::parse_duration(&s)
                .map_err(|_| invalid(key, &s, "a duration like 15s or 3m")),
        }
    }

    fn float(&self, key: &str, default: f64, lo: f64, hi: f64) -> Result<f64, ConfigError> {
        let v = match self.t.get(key) {
            None => return Ok(default),
            Some(toml::Value::Float(f)) => *f,
            Some(toml::Value::Integer(i)) => *i as f64,
            Some(v) => return Err(invalid(key, v, &format!("a number in {lo}–{hi}"))),
        };
        if !(lo..=hi).contains(&v) {
            return Err(invalid(key, v, &format!("a number in {lo}–{hi}")));
        }
        Ok(v)
    }

    fn int(&self, key: &str, default: i64, lo: i64, hi: i64) -> Result<i64, ConfigError> {
        match self.t.get(key) {
            None => Ok(default),
            Some(toml::Value::Integer(i)) if (lo..=hi).contains(i) => Ok(*i),
            Some(v) => Err(invalid(key, v, &format!("a whole number in {lo}–{hi}"))),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        match self.t.get(key) {
            None => Ok(Vec::new()),
            Some(toml::Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s.clone()),
                    v => Err(invalid(key, v, "an array of strings")),
                })
                .collect(),
            Some(v) => Err(invalid(key, v, "an array of strings")),
        }
    }
}

const KEYS: &[&str] = &[
    "enabled",
    "interval",
    "step",
    "model_step",
    "policy",
    "min",
    "max",
    "dry_run",
    "load",
    "capacity_rps",
    "workers",
    "hpa_target",
    "floor_target",
    "target",
    "theta_up",
    "theta_down",
    "lead",
    "margin",
    "stabilisation",
    "interruption_hold",
    "widen",
    "tail_share",
    "forecaster",
    "model",
    "window",
    "history",
    "history_scale",
    "actuator",
    "backend_args",
    "command",
    "command_timeout",
    "metrics",
    "prometheus_url",
    "rate_query",
    "kafka_brokers",
    "kafka_publish",
    "kafka_consume",
    "kafka_source",
    "retrain_every",
    "train_epochs",
    "season",
    "seasons",
    "season_quantile",
    "quantile",
    "scrape_instances",
    "namespace",
    "deployment",
    "group",
    "aws_endpoint",
    "drain",
    "kube_url",
    "features",
];

/// Most features a model takes from the live loop.
pub const MAX_FEATURES: usize = 32;

/// `[control.features]`: names as in the training file's columns, PromQL queries; only for
/// an LSTM loaded from `model` with the rate from Prometheus.
fn features(
    t: &toml::Table,
    forecaster: &ForecasterSpec,
    model: &Option<PathBuf>,
    metrics: &MetricsSource,
) -> Result<Vec<(String, String)>, ConfigError> {
    let table = match t.get("features") {
        None => return Ok(Vec::new()),
        Some(toml::Value::Table(f)) => f,
        Some(v) => return Err(invalid("features", v, "a table of name = \"PromQL query\"")),
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
            let key = format!("features.{name}");
            match q {
                toml::Value::String(q) if !q.trim().is_empty() => Ok((name.clone(), q.clone())),
                v => Err(invalid(&key, v, "a PromQL query")),
            }
        })
        .collect()
}

impl ControlConfig {
    /// Validates the `[control]` table; `None` when it is absent or `enabled = false`.
    pub fn from_table(t: Option<&toml::Table>) -> Result<Option<ControlConfig>, ConfigError> {
        let Some(t) = t else { return Ok(None) };
        for k in t.keys() {
            if !KEYS.contains(&k.as_str()) {
                return Err(invalid(
                    k,
                    "(present)",
                    &format!("a known key: {}", KEYS.join(", ")),
                ));
            }
        }
        let r = Reader { t };
        match t.get("enabled") {
            None | Some(toml::Value::Boolean(true)) => {}
            Some(toml::Value::Boolean(false)) => return Ok(None),
            Some(v) => return Err(invalid("enabled", v, "true or false")),
        }
        let d = ControlConfig::default();
        let interval = r.duration("interval", d.interval)?;
        if interval < Duration::from_millis(100) {
            return Err(invalid(
                "interval",
                humantime::format_duration(interval),
                "at least 100ms",
            ));
        }
        let step = r.duration("step", d.step.max(interval))?;
        let ratio = step.as_secs_f64() / interval.as_secs_f64();
        if ratio < 1.0 - 1e-9 || (ratio - ratio.round()).abs() > 1e-6 {
            return Err(invalid(
                "step",
                humantime::format_duration(step),
                "a whole multiple of `control.interval`",
            ));
        }
        let model_step = r.duration("model_step", step)?;
        if model_step.as_secs() == 0 {
            return Err(invalid(
                "model_step",
                humantime::format_duration(model_step),
                "at least 1s",
            ));
        }
        let policy = match r.string("policy")?.as_deref().unwrap_or("hybrid") {
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
        let min = r.int("min", 1, 1, 10_000)? as usize;
        let max = r.int("max", d.max.max(min) as i64, 1, 10_000)? as usize;
        if max < min {
            return Err(invalid(
                "max",
                max,
                &format!("at least control.min ({min})"),
            ));
        }
        let dry_run = match t.get("dry_run") {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(v) => return Err(invalid("dry_run", v, "true or false")),
        };
        let name = r.string("forecaster")?;
        let name = name.as_deref().unwrap_or("auto");
        let mut forecaster: ForecasterSpec =
            name.parse()
                .map_err(|e: foresight_autoscale::UnknownName| {
                    invalid("forecaster", name, &format!("one of {}", e.expected))
                })?;
        let mut model = None;
        match &mut forecaster {
            ForecasterSpec::Lstm => {
                model = r.string("model")?.map(PathBuf::from);
                if model.is_none() && !t.contains_key("history") {
                    return Err(invalid(
                        "model",
                        "(missing)",
                        "a model directory from `foresight train`, or `control.history` to train one at start",
                    ));
                }
            }
            ForecasterSpec::Auto => {
                // A model from `foresight train` is the first choice's LSTM candidate.
                model = r.string("model")?.map(PathBuf::from);
            }
            ForecasterSpec::HoltWinters => {
                return Err(invalid(
                    "forecaster",
                    name,
                    "a forecaster the live loop runs: auto, lstm, moving-average, persistence, seasonal-naive, seasonal-quantile, none (holt-winters alone is fitted offline by `foresight experiment`; live, auto fits it as a candidate)",
                ))
            }
            ForecasterSpec::MovingAverage { window } => {
                *window = r.int("window", 5, 1, 10_000)? as usize;
            }
            ForecasterSpec::SeasonalNaive { season } => {
                *season = r.int("season", 1440, 2, 1_000_000)? as usize;
            }
            ForecasterSpec::SeasonalQuantile {
                season,
                seasons,
                quantile,
            } => {
                *season = r.int("season", 1440, 2, 1_000_000)? as usize;
                *seasons = r.int("seasons", 7, 1, 1_000)? as usize;
                *quantile = r.float("season_quantile", 0.95, 0.0, 1.0)?;
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
        let actuator = match r.string("actuator")?.as_deref().unwrap_or("process") {
            "process" => ActuatorKind::Process {
                backend_args: r.strings("backend_args")?,
            },
            "exec" => {
                let command = r.strings("command")?;
                if command.is_empty() {
                    return Err(invalid(
                        "command",
                        "[]",
                        "a program and its arguments when actuator = \"exec\"",
                    ));
                }
                ActuatorKind::Exec {
                    command,
                    timeout: r.duration("command_timeout", Duration::from_secs(30))?,
                }
            }
            "kubernetes" => ActuatorKind::Kubernetes {
                namespace: r.string("namespace")?,
                deployment: r.string("deployment")?.ok_or_else(|| {
                    invalid(
                        "deployment",
                        "(missing)",
                        "a Deployment name when actuator = \"kubernetes\"",
                    )
                })?,
                url: r.string("kube_url")?,
            },
            "aws-asg" => ActuatorKind::AwsAsg {
                group: r.string("group")?.ok_or_else(|| {
                    invalid(
                        "group",
                        "(missing)",
                        "an Auto Scaling group name when actuator = \"aws-asg\"",
                    )
                })?,
                endpoint: r.string("aws_endpoint")?,
                drain: {
                    let d = r.duration("drain", Duration::from_secs(45))?;
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
        let theta_down = r.float("theta_down", d.theta_down, 0.0, 1.0)?;
        let theta_up = r.float("theta_up", d.theta_up, 0.0, 10.0)?;
        if theta_down >= theta_up {
            return Err(invalid("theta_down", theta_down, "below control.theta_up"));
        }
        let load = match r.string("load")?.as_deref() {
            None | Some("requests") => Load::Requests,
            Some("connections") => Load::Connections,
            Some(other) => return Err(invalid("load", other, "requests or connections")),
        };
        let metrics = match r.string("metrics")?.as_deref().unwrap_or("builtin") {
            "builtin" => MetricsSource::Builtin,
            "prometheus" => {
                let url = r
                    .string("prometheus_url")?
                    .unwrap_or_else(|| "http://127.0.0.1:9090".into());
                if !url.starts_with("http://") {
                    return Err(invalid("prometheus_url", &url, "an http:// URL"));
                }
                MetricsSource::Prometheus {
                    url,
                    rate_query: r.string("rate_query")?.unwrap_or_else(|| {
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
        let kafka = match r.string("kafka_brokers")? {
            None => {
                for k in ["kafka_publish", "kafka_consume"] {
                    if t.contains_key(k) {
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
                    return Err(invalid("kafka_brokers", &b, "host:port[,host:port…]"));
                }
                let publish = r.string("kafka_publish")?;
                let consume = r.string("kafka_consume")?;
                if publish.is_none() && consume.is_none() {
                    return Err(invalid(
                        "kafka_brokers",
                        &b,
                        "used with kafka_publish and/or kafka_consume",
                    ));
                }
                Some(KafkaConfig {
                    brokers,
                    publish,
                    consume,
                    source: r
                        .string("kafka_source")?
                        .unwrap_or_else(|| format!("proxy-{}", std::process::id())),
                })
            }
        };
        let retrain_every = match r.string("retrain_every")? {
            None => None,
            Some(v) => Some(
                humantime::parse_duration(&v)
                    .ok()
                    .filter(|d| d.as_secs() >= 60)
                    .ok_or_else(|| {
                        invalid(
                            "retrain_every",
                            &v,
                            "a duration of at least 1m (model time)",
                        )
                    })?,
            ),
        };
        let scrape_instances = match t.get("scrape_instances") {
            None => true,
            Some(toml::Value::Boolean(b)) => *b,
            Some(v) => return Err(invalid("scrape_instances", v, "true or false")),
        };
        let features = features(t, &forecaster, &model, &metrics)?;
        Ok(Some(ControlConfig {
            features,
            scrape_instances,
            retrain_every,
            train_epochs: r.int("train_epochs", 5, 1, 1000)? as usize,
            kafka,
            metrics,
            interval,
            step,
            model_step,
            policy,
            min,
            max,
            dry_run,
            sees_traffic: true,
            load,
            capacity_rps: r.float("capacity_rps", d.capacity_rps, 1e-6, 1e9)?,
            workers: r.int("workers", d.workers as i64, 1, 1_000_000)? as u32,
            hpa_target: r.float("hpa_target", d.hpa_target, 0.01, 1.0)?,
            floor_target: r.float("floor_target", d.floor_target, 0.01, 1.0)?,
            target: r.float("target", d.target, 0.01, 1.0)?,
            theta_up,
            theta_down,
            lead: r.duration("lead", d.lead)?,
            margin: r.duration("margin", d.margin)?,
            stabilisation: r.duration(
                "stabilisation",
                Duration::from_secs_f64(policy.default_scale_in_window()),
            )?,
            interruption_hold: {
                let hold = r.duration("interruption_hold", d.interruption_hold)?;
                if hold > Duration::from_secs(86_400) {
                    return Err(invalid(
                        "interruption_hold",
                        humantime::format_duration(hold),
                        "a duration of at most 1 day (0s: off)",
                    ));
                }
                hold
            },
            widen: r.int(
                "widen",
                d.widen as i64,
                0,
                foresight_autoscale::MAX_WIDEN as i64,
            )? as usize,
            tail_share: r.float("tail_share", d.tail_share, 0.0, 1.0)?,
            forecaster,
            model,
            quantile: r.float("quantile", d.quantile, 0.0, 1.0)?,
            history: r.string("history")?.map(PathBuf::from),
            history_scale: r.float("history_scale", 1.0, 1e-12, 1e12)?,
            actuator,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<ControlConfig>, String> {
        let t: toml::Table = toml::from_str(s).unwrap();
        ControlConfig::from_table(Some(&t)).map_err(|e| e.to_string())
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
            ("colour = 1", "`control.colour`"),
            ("hpa_target = 1.5", "`control.hpa_target`"),
            ("lead = \"soon\"", "`control.lead`"),
            ("theta_up = 0.4", "`control.theta_down`"),
            ("policy = \"oracle\"", "simulator only"),
            ("forecaster = \"prophet\"", "seasonal-quantile"),
            ("forecaster = \"holt-winters\"", "fitted offline"),
            ("forecaster = \"auto\"\nmodel = 3", "`control.model`"),
            ("quantile = 1.5", "`control.quantile`"),
            ("interruption_hold = \"2d\"", "`control.interruption_hold`"),
            ("widen = 6", "`control.widen`"),
            ("tail_share = -0.1", "`control.tail_share`"),
            ("features = 3", "`control.features`"),
            ("[features]\ncpu = \"x\"", "forecaster = \"lstm\""),
            (
                "forecaster = \"lstm\"\nmodel = \"m\"\n[features]\ncpu = \"x\"",
                "metrics = \"prometheus\"",
            ),
            (
                "forecaster = \"lstm\"\nmodel = \"m\"\nmetrics = \"prometheus\"\n[features]\ncpu = 1",
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
