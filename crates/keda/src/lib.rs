//! # foresight-keda
//!
//! A KEDA external scaler: `foresight controller --keda ADDR` serves KEDA's
//! `externalscaler.proto` over gRPC (tonic), so a cluster that already runs KEDA (and the
//! HPA it creates) scales on Foresight's forecasts without giving Foresight write access to
//! its Deployments.
//!
//! A `ScaledObject` trigger of type `external` or `external-push` names the service in its
//! metadata (`service`, needed when the controller runs several) and the metric:
//!
//! - `metric: planned-load` (the default): the load the service's loop plans for, the forecast
//!   quantile at the lead when the forecast is trusted and the rate just observed otherwise,
//!   with the requests per second one replica is planned to serve (capacity × target
//!   utilisation) as the target. The HPA's `AverageValue` arithmetic,
//!   `ceil(value / target)`, is then the predictive policy's own sizing.
//! - `metric: replicas`: the loop's whole decision (policy, reactive floor, alerts, limits and
//!   stabilisation) as the value, with target 1, so the HPA lands on exactly that count.
//!
//! A service is active while it plans for load or wants instances. `StreamIsActive` sends the
//! current answer at once and again whenever it changes (polled from the loop's status).
//!
//! The gRPC code is generated at build time from `proto/externalscaler.proto` with protox (no
//! system `protoc`). This is its own crate because tonic is a large build; the `foresight`
//! binary includes it with the `keda` feature.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tonic::{Request, Response, Status};

/// The generated protobuf messages, server and client of `externalscaler.proto`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("externalscaler");
}

use pb::external_scaler_server::{ExternalScaler, ExternalScalerServer};

/// `StreamIsActive` streams open at once, across all clients; more are refused with
/// `RESOURCE_EXHAUSTED` (each one polls the loop's status).
pub const MAX_STREAMS: usize = 256;

/// What a service's control loop shows, as the scaler needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// The planned load at the lead (the forecast quantile the policy plans for), requests
    /// per second; `None` while there is no forecast.
    pub planned: Option<f64>,
    /// Whether the forecast is trusted.
    pub trusted: bool,
    /// Requests per second over the loop's last interval.
    pub observed: f64,
    /// Instances the loop wants.
    pub desired: usize,
    /// Requests per second one instance is planned to serve: its capacity × the policy's
    /// target utilisation.
    pub per_replica: f64,
}

impl Reading {
    /// The load to size for: the planned load when the forecast is trusted, else the rate
    /// just observed (a forecast that is distrusted or not there yet is not acted on).
    pub fn load(&self) -> f64 {
        match self.planned {
            Some(p) if self.trusted && p.is_finite() => p.max(0.0),
            _ if self.observed.is_finite() => self.observed.max(0.0),
            _ => 0.0,
        }
    }

    /// Whether the service should run: it plans for load, or its loop wants instances.
    pub fn active(&self) -> bool {
        self.load() > 0.0 || self.desired > 0
    }
}

/// Why a service has no reading.
#[derive(Clone, Debug, PartialEq)]
pub enum Unavailable {
    /// No such service is controlled.
    Unknown,
    /// Its loop has not measured yet (the reason shown to KEDA).
    Pending(String),
}

/// The controller's services and their loops' readings.
pub trait Readings: Send + Sync + 'static {
    /// The services, in the configuration's order.
    fn services(&self) -> Vec<String>;
    /// A service's reading now.
    fn reading(&self, service: &str) -> Result<Reading, Unavailable>;
}

/// The metric a trigger asks for (`metric` in its metadata).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// The planned load, target the load per replica.
    PlannedLoad,
    /// The loop's decision, target 1.
    Replicas,
}

impl Metric {
    /// The name in the trigger's metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::PlannedLoad => "planned-load",
            Metric::Replicas => "replicas",
        }
    }
}

impl FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Metric, String> {
        match s {
            "planned-load" => Ok(Metric::PlannedLoad),
            "replicas" => Ok(Metric::Replicas),
            other => Err(format!(
                "metadata metric: {other:?} is not a metric; expected \"planned-load\" or \
                 \"replicas\""
            )),
        }
    }
}

/// What a scaled object's trigger asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The service.
    pub service: String,
    /// The metric.
    pub metric: Metric,
}

impl Query {
    /// Reads `service` and `metric` from a trigger's metadata; other keys (KEDA passes its
    /// own, such as `scalerAddress`) are ignored. Without `service`, the only service.
    pub fn from_metadata(
        metadata: &HashMap<String, String>,
        services: &[String],
    ) -> Result<Query, String> {
        let metric = match metadata.get("metric") {
            None => Metric::PlannedLoad,
            Some(m) => m.parse()?,
        };
        let service = match (metadata.get("service"), services) {
            (Some(s), _) if services.contains(s) => s.clone(),
            (Some(s), _) => {
                return Err(format!(
                    "metadata service: {s:?} is not controlled here; services: {}",
                    services.join(", ")
                ))
            }
            (None, [one]) => one.clone(),
            (None, _) => {
                return Err(format!(
                    "metadata service: missing; this controller runs several services: {}",
                    services.join(", ")
                ))
            }
        };
        Ok(Query { service, metric })
    }

    /// The metric's name: `foresight-<service>-planned-rps` or `foresight-<service>-replicas`,
    /// with the service name reduced to what a metric name may hold (lowercase letters,
    /// digits, `-`).
    pub fn metric_name(&self) -> String {
        let service: String = self
            .service
            .chars()
            .map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9') => c,
                _ => '-',
            })
            .collect();
        let what = match self.metric {
            Metric::PlannedLoad => "planned-rps",
            Metric::Replicas => "replicas",
        };
        format!("foresight-{service}-{what}")
    }

    /// The target per replica for the HPA's `AverageValue`.
    pub fn target(&self, r: &Reading) -> f64 {
        match self.metric {
            Metric::PlannedLoad => r.per_replica,
            Metric::Replicas => 1.0,
        }
    }

    /// The metric's value now.
    pub fn value(&self, r: &Reading) -> f64 {
        match self.metric {
            Metric::PlannedLoad => r.load(),
            Metric::Replicas => r.desired as f64,
        }
    }

    /// The replicas an HPA computes from [`Query::value`] and [`Query::target`] with an
    /// `AverageValue` target, `ceil(value / target)` (outside its tolerance band).
    pub fn hpa_replicas(&self, r: &Reading) -> usize {
        let target = self.target(r);
        if target > 0.0 {
            (self.value(r) / target - 1e-9).ceil().max(0.0) as usize
        } else {
            0
        }
    }
}

/// The gRPC service.
pub struct Scaler {
    readings: Arc<dyn Readings>,
    poll: Duration,
    streams: Arc<Semaphore>,
}

impl Scaler {
    /// A scaler answering from `readings`; streams poll them every `poll`.
    pub fn new(readings: Arc<dyn Readings>, poll: Duration) -> Scaler {
        Scaler {
            readings,
            poll,
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
        }
    }

    /// At most `n` `StreamIsActive` streams open at once (default [`MAX_STREAMS`]).
    pub fn with_max_streams(mut self, n: usize) -> Scaler {
        self.streams = Arc::new(Semaphore::new(n));
        self
    }

    fn lookup(&self, metadata: &HashMap<String, String>) -> Result<(Query, Reading), Status> {
        let query = Query::from_metadata(metadata, &self.readings.services())
            .map_err(Status::invalid_argument)?;
        let reading = read(self.readings.as_ref(), &query.service)?;
        Ok((query, reading))
    }
}

fn read(readings: &dyn Readings, service: &str) -> Result<Reading, Status> {
    readings.reading(service).map_err(|e| match e {
        Unavailable::Unknown => Status::not_found(format!("service {service:?} is not controlled")),
        Unavailable::Pending(why) => Status::unavailable(format!("service {service:?}: {why}")),
    })
}

type ActiveStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::IsActiveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalScaler for Scaler {
    async fn is_active(
        &self,
        request: Request<pb::ScaledObjectRef>,
    ) -> Result<Response<pb::IsActiveResponse>, Status> {
        let (_, r) = self.lookup(&request.get_ref().scaler_metadata)?;
        Ok(Response::new(pb::IsActiveResponse { result: r.active() }))
    }

    type StreamIsActiveStream = ActiveStream;

    async fn stream_is_active(
        &self,
        request: Request<pb::ScaledObjectRef>,
    ) -> Result<Response<ActiveStream>, Status> {
        let (query, first) = self.lookup(&request.get_ref().scaler_metadata)?;
        let permit = self.streams.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted("too many StreamIsActive streams are open; try later")
        })?;
        let (tx, rx) = mpsc::channel(1);
        let readings = self.readings.clone();
        let poll = self.poll;
        tokio::spawn(async move {
            let _permit = permit;
            let mut last = first.active();
            if tx
                .send(Ok(pb::IsActiveResponse { result: last }))
                .await
                .is_err()
            {
                return;
            }
            let mut tick = tokio::time::interval(poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tick.tick() => {}
                }
                let now = match read(readings.as_ref(), &query.service) {
                    Ok(r) => r.active(),
                    // A loop that cannot be read keeps the last answer.
                    Err(_) => continue,
                };
                if now != last {
                    last = now;
                    if tx
                        .send(Ok(pb::IsActiveResponse { result: now }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn get_metric_spec(
        &self,
        request: Request<pb::ScaledObjectRef>,
    ) -> Result<Response<pb::GetMetricSpecResponse>, Status> {
        let (query, r) = self.lookup(&request.get_ref().scaler_metadata)?;
        let target = query.target(&r);
        Ok(Response::new(pb::GetMetricSpecResponse {
            metric_specs: vec![pb::MetricSpec {
                metric_name: query.metric_name(),
                target_size: target.round().max(1.0) as i64,
                target_size_float: target,
            }],
        }))
    }

    async fn get_metrics(
        &self,
        request: Request<pb::GetMetricsRequest>,
    ) -> Result<Response<pb::GetMetricsResponse>, Status> {
        let metadata = request
            .get_ref()
            .scaled_object_ref
            .as_ref()
            .map(|o| &o.scaler_metadata);
        let (query, r) = self.lookup(metadata.unwrap_or(&HashMap::new()))?;
        let value = query.value(&r);
        Ok(Response::new(pb::GetMetricsResponse {
            metric_values: vec![pb::MetricValue {
                metric_name: query.metric_name(),
                metric_value: value.round() as i64,
                metric_value_float: value,
            }],
        }))
    }
}

/// TLS for the scaler, as KEDA's trigger can ask for it (`caCert`, and for mutual TLS
/// `tlsClientCert` and `tlsClientKey`): the server's certificate chain and key, and the CA
/// that client certificates must chain to (then a client without one is refused).
#[derive(Clone, Debug)]
pub struct Tls {
    /// PEM certificate chain.
    pub cert: Vec<u8>,
    /// PEM private key.
    pub key: Vec<u8>,
    /// PEM CA bundle for client certificates (mutual TLS).
    pub client_ca: Option<Vec<u8>>,
}

/// Serves the scaler on `listener` until `shutdown` completes, over TLS when `tls` is given.
pub async fn serve(
    listener: tokio::net::TcpListener,
    scaler: Scaler,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let mut server = tonic::transport::Server::builder();
    if let Some(t) = tls {
        let mut config = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(t.cert, t.key));
        if let Some(ca) = t.client_ca {
            config = config.client_ca_root(tonic::transport::Certificate::from_pem(ca));
        }
        server = server.tls_config(config)?;
    }
    server
        .concurrency_limit_per_connection(32)
        .max_concurrent_streams(Some(64))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(service(scaler))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await
}

/// The tonic service, for callers that build their own server.
pub fn service(scaler: Scaler) -> ExternalScalerServer<Scaler> {
    ExternalScalerServer::new(scaler)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(planned: Option<f64>, trusted: bool, observed: f64, desired: usize) -> Reading {
        Reading {
            planned,
            trusted,
            observed,
            desired,
            per_replica: 70.0,
        }
    }

    fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_load_is_the_trusted_forecast_else_the_observed_rate() {
        assert_eq!(reading(Some(300.0), true, 100.0, 3).load(), 300.0);
        assert_eq!(reading(Some(300.0), false, 100.0, 3).load(), 100.0);
        assert_eq!(reading(None, true, 100.0, 3).load(), 100.0);
        assert_eq!(reading(Some(f64::NAN), true, 100.0, 3).load(), 100.0);
        assert_eq!(reading(None, false, f64::NAN, 3).load(), 0.0);
        assert_eq!(reading(Some(-4.0), true, 1.0, 3).load(), 0.0);
    }

    #[test]
    fn active_while_load_is_planned_or_instances_wanted() {
        assert!(reading(Some(1.0), true, 0.0, 0).active());
        assert!(reading(None, false, 0.0, 1).active());
        assert!(!reading(Some(0.0), true, 0.0, 0).active());
    }

    #[test]
    fn the_hpa_arithmetic_is_the_predictive_sizing() {
        let services = vec!["web".to_string()];
        let q = Query::from_metadata(&meta(&[]), &services).unwrap();
        assert_eq!(q.metric, Metric::PlannedLoad);
        // 70 req/s per replica: 700 → 10, 701 → 11, 0 → 0.
        for (load, want) in [(700.0, 10), (701.0, 11), (69.0, 1), (0.0, 0)] {
            assert_eq!(q.hpa_replicas(&reading(Some(load), true, 5.0, 2)), want);
        }
        let q = Query::from_metadata(&meta(&[("metric", "replicas")]), &services).unwrap();
        assert_eq!(q.hpa_replicas(&reading(Some(700.0), true, 5.0, 7)), 7);
        assert_eq!(q.target(&reading(None, true, 5.0, 7)), 1.0);
    }

    #[test]
    fn metadata_names_the_service_and_metric_or_says_what_is_wrong() {
        let two = vec!["web".to_string(), "api".to_string()];
        let q = Query::from_metadata(&meta(&[("service", "api"), ("scalerAddress", "x")]), &two)
            .unwrap();
        assert_eq!(q.service, "api");
        let e = Query::from_metadata(&meta(&[]), &two).unwrap_err();
        assert!(e.contains("missing") && e.contains("web, api"), "{e}");
        let e = Query::from_metadata(&meta(&[("service", "db")]), &two).unwrap_err();
        assert!(e.contains("\"db\"") && e.contains("web, api"), "{e}");
        let e = Query::from_metadata(&meta(&[("service", "web"), ("metric", "cpu")]), &two)
            .unwrap_err();
        assert!(e.contains("\"cpu\"") && e.contains("planned-load"), "{e}");
    }

    #[test]
    fn metric_names_are_valid_for_kubernetes() {
        let q = Query {
            service: "Web_API.v2".into(),
            metric: Metric::PlannedLoad,
        };
        assert_eq!(q.metric_name(), "foresight-web-api-v2-planned-rps");
    }
}
