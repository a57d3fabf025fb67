//! The file format as serde reads it: [`RawConfig`] and its sections, every field optional and
//! unknown keys rejected with their line, and the command-line [`Overrides`] laid over it.
//! [`RawConfig::validate`](super::RawConfig::validate) turns them into typed values.

use serde::Deserialize;

use super::{AdminToken, RawControl, RawDiscovery, RawRoute, RawService, RawUpstreamTls};

/// The file, as written. Every field is optional; see the typed config for defaults.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Client-facing listen address.
    pub listen: Option<String>,
    /// Admin API and `/metrics` listen address.
    pub admin: Option<String>,
    /// A file holding the admin API's bearer token.
    pub admin_token_file: Option<String>,
    /// The token from the environment, set by [`RawConfig::apply`]; never in the file.
    #[serde(skip)]
    pub admin_token: Option<AdminToken>,
    /// Runtime worker threads.
    pub workers: Option<i64>,
    /// Longest wait for a draining instance's requests to finish.
    pub drain_timeout: Option<String>,
    /// A reload may leave a service that has instances with none (see `crate::reload`).
    pub allow_empty: Option<bool>,
    #[allow(missing_docs)]
    #[serde(default)]
    pub balancer: RawBalancer,
    #[allow(missing_docs)]
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[allow(missing_docs)]
    #[serde(default)]
    pub limits: RawLimits,
    #[allow(missing_docs)]
    #[serde(default)]
    pub health_check: RawHealthCheck,
    #[allow(missing_docs)]
    #[serde(default)]
    pub outlier: RawOutlier,
    #[allow(missing_docs)]
    #[serde(default)]
    pub retries: RawRetries,
    #[allow(missing_docs)]
    #[serde(default)]
    pub backends: Vec<RawBackend>,
    /// Where the instances come from instead of `backends` (see [`super::discovery`]).
    #[serde(default)]
    pub discovery: Option<RawDiscovery>,
    /// The control loop's section, validated by `foresight-control`.
    #[serde(default)]
    pub control: Option<RawControl>,
    /// Several pools behind the listener (see [`super::services`]).
    #[serde(default)]
    pub services: Vec<RawService>,
    /// Which requests go to which service, first match first.
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// Access logs (off unless the section is present).
    pub access_log: Option<RawAccessLog>,
    #[allow(missing_docs)]
    #[serde(default)]
    pub rate_limit: RawRateLimit,
    /// How request paths are normalised before routing.
    #[serde(default)]
    pub paths: RawPaths,
    #[allow(missing_docs)]
    #[serde(default)]
    pub circuit_breaker: RawCircuitBreaker,
    /// TLS on the listener (off unless the section is present).
    pub tls: Option<RawTls>,
    /// TLS to `https://` instances.
    #[serde(default)]
    pub upstream_tls: RawUpstreamTls,
    /// How the (top-level) service talks to its instances; services inherit it.
    pub protocol: Option<String>,
    /// Streams on one HTTP/2 connection to an instance before another is opened; services
    /// inherit it.
    pub h2_max_streams: Option<i64>,
}

/// `[tls]`, as written.
#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    #[serde(default)]
    pub certificates: Vec<RawCertificate>,
}

/// One `[tls].certificates` entry: PEM files.
#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    pub cert: String,
    pub key: String,
}

/// `[rate_limit]`, as written.
#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub rate: Option<f64>,
    pub burst: Option<i64>,
    pub key: Option<String>,
}

/// `[paths]`, as written.
#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPaths {
    pub normalize: Option<bool>,
    pub merge_slashes: Option<bool>,
    pub escaped_slashes: Option<String>,
}

/// `[circuit_breaker]`, as written.
#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCircuitBreaker {
    pub max_requests: Option<i64>,
}

/// `[access_log]`, as written.
#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccessLog {
    pub path: Option<String>,
    pub format: Option<String>,
    pub sample: Option<f64>,
    pub buffer: Option<i64>,
}

#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBalancer {
    pub algorithm: Option<String>,
    pub slow_start_window: Option<String>,
    pub slow_start_aggression: Option<f64>,
    pub slow_start_min_weight_percent: Option<f64>,
    pub batch_window: Option<String>,
    pub seed: Option<u64>,
    pub hash_on: Option<String>,
    pub ewma_decay: Option<String>,
    pub default_rtt: Option<String>,
}

#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect: Option<String>,
    pub request: Option<String>,
    pub client_idle: Option<String>,
    pub client_header: Option<String>,
    pub upstream_idle: Option<String>,
    pub tunnel_idle: Option<String>,
}

#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_connections: Option<i64>,
    pub max_request_head: Option<i64>,
}

#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    pub enabled: Option<bool>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub grpc_service: Option<String>,
    pub path: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
}

#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutlier {
    pub enabled: Option<bool>,
    pub consecutive_errors: Option<i64>,
    pub base_ejection_time: Option<String>,
    pub max_ejection_time: Option<String>,
    pub max_ejection_percent: Option<i64>,
}

#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetries {
    pub attempts: Option<i64>,
    pub on_status: Option<Vec<i64>>,
    pub on_grpc_status: Option<Vec<String>>,
    pub grpc_methods: Option<Vec<String>>,
    pub per_try_timeout: Option<String>,
    pub budget_ratio: Option<f64>,
    pub budget_min_per_second: Option<f64>,
    pub budget_window: Option<String>,
}

#[allow(missing_docs)]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub address: String,
    pub weight: Option<i64>,
}

/// Command-line flags that override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<String>,
    /// `--admin`
    pub admin: Option<String>,
    /// `--workers`
    pub workers: Option<i64>,
    /// `--algorithm`
    pub algorithm: Option<String>,
    /// `--seed`
    pub seed: Option<u64>,
    /// `--backend`, repeated; when any is given they replace the file's list.
    pub backends: Vec<String>,
    /// The admin token from the environment (`FORESIGHT_ADMIN_TOKEN`); wins over
    /// `admin_token_file`.
    pub admin_token: Option<String>,
}
