//! Configuration: a TOML file and/or flags, parsed once into typed values.
//!
//! Two phases, as in ripgrep: [`RawConfig`] mirrors the file (every field optional, unknown keys
//! rejected by serde with their line), command-line [`Overrides`] are laid over it, then
//! [`RawConfig::validate`] turns it into a [`ProxyConfig`] or the first [`ConfigError`], which
//! names the key, the value and what would be valid. Every key is documented in
//! `docs/configuration.md`; the defaults below are the ones written there.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use foresight_balance::{BalancerConfig, EwmaParams};
use http::uri::{Authority, Scheme};
use http::Uri;

use crate::access_log::{AccessLogConfig, Format};
use crate::route::RouteTable;

mod control;
pub mod discovery;
mod raw;
mod routes;
mod sections;
pub mod services;
pub mod upstream_tls;

pub use control::RawControl;
pub use discovery::{
    AwsAsgDiscovery, Discovery, DnsDiscovery, KubePort, KubernetesDiscovery, RawDiscovery,
};
pub use raw::{
    Overrides, RawAccessLog, RawBackend, RawBalancer, RawCertificate, RawCircuitBreaker, RawConfig,
    RawHealthCheck, RawLimits, RawOutlier, RawRateLimit, RawRetries, RawTimeouts, RawTls,
};
pub use services::{RawHeaderMatch, RawRoute, RawService, ServiceConfig, DEFAULT_SERVICE};
pub use upstream_tls::{RawUpstreamTls, UpstreamTls};

/// A configuration problem, with enough detail to fix it. The CLI exits with status 64
/// (`EX_USAGE`) on any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value that parsed but is not allowed.
    #[error("invalid value `{value}` for `{key}`: expected {expected}")]
    Invalid {
        /// Dotted key, e.g. `outlier.max_ejection_percent` or `backends[1].address`.
        key: String,
        /// The value as given.
        value: String,
        /// What would be valid.
        expected: String,
    },
    /// The file is not valid TOML or has an unknown key or a value of the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// The file could not be read.
    #[error("cannot read config file {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

fn invalid(
    key: impl Into<String>,
    value: impl fmt::Display,
    expected: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.to_string(),
        expected: expected.into(),
    }
}

/// The listener's TLS: the files, and the server configuration loaded from them.
#[derive(Clone)]
pub struct TlsSettings {
    /// (certificate chain, key) PEM files; the first is the default when no SNI matches.
    pub files: Vec<(std::path::PathBuf, std::path::PathBuf)>,
    /// Loaded.
    pub server: std::sync::Arc<foresight_http::tls::ServerConfig>,
    /// The server's certificates, which a reload replaces.
    pub certificates: std::sync::Arc<foresight_http::tls::Certificates>,
}

impl PartialEq for TlsSettings {
    fn eq(&self, other: &Self) -> bool {
        self.files == other.files
    }
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("files", &self.files)
            .finish()
    }
}

/// Retries of a service.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryConfig {
    /// Extra attempts on another instance, at most.
    pub attempts: u32,
    /// Response statuses that an idempotent request is retried on.
    pub on_status: Vec<u16>,
    /// gRPC statuses (codes 1–16) that a call to one of `grpc_methods` is retried on, when
    /// an instance answers with the status alone (trailers-only: it sent nothing yet).
    pub on_grpc_status: Vec<u8>,
    /// The gRPC methods the user marks safe to call twice: `/pkg.Service/Method`,
    /// `/pkg.Service/*`, or `*`.
    pub grpc_methods: Vec<String>,
    /// One try's longest wait for the response head, when shorter than the request timeout;
    /// an idempotent request that times out is retried.
    pub per_try_timeout: Option<Duration>,
    /// Retries may be this fraction of requests…
    pub budget_ratio: f64,
    /// …plus this many per second…
    pub budget_min_per_second: f64,
    /// …over this window.
    pub budget_window: Duration,
}

/// What to hash for `consistent-hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashOn {
    /// The request path (without the query).
    Path,
    /// The value of a request header; requests without it are placed at random.
    Header(http::HeaderName),
}

/// Balancer settings.
#[derive(Clone, Debug, PartialEq)]
pub struct BalancerSettings {
    /// Algorithm and seed.
    pub config: BalancerConfig,
    /// Key source for consistent hashing.
    pub hash_on: HashOn,
    /// Peak-EWMA parameters for every instance.
    pub ewma: EwmaParams,
    /// How long batch heuristics (Min-Min family) hold requests to assign them together.
    pub batch_window: Duration,
}

/// Timeouts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timeouts {
    /// TCP connect to an instance; a connect failure is retried on another instance.
    pub connect: Duration,
    /// From sending the request upstream to receiving the response headers; beyond it, 504.
    pub request: Duration,
    /// How long a kept-alive client connection may sit before its next request's headers.
    pub client_idle: Duration,
    /// How long a request head may take to arrive (from its first byte; the first request of a
    /// connection from the connection's start); then 408.
    pub client_header: Duration,
    /// How long an idle pooled upstream connection is kept.
    pub upstream_idle: Duration,
    /// How long a switched connection (a WebSocket) may pass no byte either way; then both
    /// sides are closed.
    pub tunnel_idle: Duration,
}

/// The protocol a service speaks to its instances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1, plain or TLS (`https://` instances); a connection per request in flight.
    #[default]
    Http1,
    /// HTTP/2 over cleartext with prior knowledge: one multiplexed connection per instance
    /// (gRPC services).
    H2c,
    /// HTTP/2 over TLS, agreed by ALPN (`https://` instances, verified by `[upstream_tls]`):
    /// one multiplexed connection per instance.
    H2,
}

impl UpstreamProtocol {
    /// Whether the instances are spoken to over HTTP/2 (`h2c` or `h2`).
    pub fn is_h2(self) -> bool {
        matches!(self, UpstreamProtocol::H2c | UpstreamProtocol::H2)
    }
}

/// Limits on what clients may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Client connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Bytes of a request head (request line and header fields); a larger one gets 431.
    pub max_request_head: usize,
}

/// Active health checks.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthCheckConfig {
    /// `Some(service)`: the standard gRPC health check (`grpc.health.v1.Health/Check` for
    /// `service`, "" for the whole server), healthy when it answers SERVING; `None`: HTTP.
    pub grpc: Option<String>,
    /// Path requested with GET (HTTP checks); 2xx is healthy.
    pub path: String,
    /// Time between checks of one instance.
    pub interval: Duration,
    /// Time a check may take.
    pub timeout: Duration,
    /// Consecutive successes that make an unhealthy instance healthy.
    pub rise: u32,
    /// Consecutive failures that make a healthy instance unhealthy.
    pub fall: u32,
}

/// Passive outlier ejection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutlierConfig {
    /// Consecutive 5xx responses or connect errors that eject an instance.
    pub consecutive_errors: u32,
    /// Ejection time the first time; the n-th ejection in a row lasts n times as long.
    pub base_ejection_time: Duration,
    /// Cap on one ejection's length.
    pub max_ejection_time: Duration,
    /// At most this share of the pool is ejected at once.
    pub max_ejection_percent: u32,
}

/// One instance from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendSpec {
    /// As configured; the `backend` label in metrics and the key in the admin API.
    pub address: String,
    /// `host:port` to connect to.
    pub authority: Authority,
    /// Relative capacity.
    pub weight: u32,
    /// What makes two addresses one instance ([`instance_key`]).
    pub key: String,
    /// `https://`: TLS to the instance (see `[upstream_tls]`).
    pub tls: bool,
}

/// The admin API's bearer token; never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// Shortest token accepted.
    pub const MIN_LEN: usize = 16;

    /// Whether `given` is the token, compared in constant time.
    pub fn matches(&self, given: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(given).into()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Bytes of an admin token file read at most: a token is tens of characters, and a path like
/// `/dev/zero` must not be read to the end.
const MAX_TOKEN_FILE: u64 = 4096;

/// The text of `admin_token_file`, refused if longer than [`MAX_TOKEN_FILE`] or not UTF-8.
fn read_token_file(path: &str) -> Result<String, ConfigError> {
    use std::io::Read;
    let err = |message: String| ConfigError::Read {
        path: path.to_string(),
        message: format!("admin_token_file: {message}"),
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_TOKEN_FILE + 1).read_to_end(&mut bytes))
        .map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > MAX_TOKEN_FILE {
        return Err(err(format!(
            "longer than {MAX_TOKEN_FILE} bytes: not a token"
        )));
    }
    String::from_utf8(bytes).map_err(|_| err("not UTF-8 text".into()))
}

/// The validated configuration of `foresight serve`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyConfig {
    /// Client-facing listener.
    pub listen: SocketAddr,
    /// Admin listener (admin API and `/metrics`).
    pub admin: SocketAddr,
    /// The token every admin request but `/healthz` and `/metrics` must bear; without one the
    /// admin listener must be on loopback.
    pub admin_token: Option<AdminToken>,
    /// Runtime worker threads.
    pub workers: usize,
    /// Longest wait for a draining instance's requests to finish before it is removed anyway.
    pub drain_timeout: Duration,
    /// The listener's timeouts (`client_*`) and the top level's upstream ones.
    pub timeouts: Timeouts,
    /// Limits on clients.
    pub limits: Limits,
    /// The services, in the file's order (one, `default`, in the single-pool form).
    pub services: Vec<ServiceConfig>,
    /// `allow_empty`: a reload may leave a service that has instances with none (off: such a
    /// reload is refused, as an empty or half-written file would do it by accident).
    pub allow_empty: bool,
    /// Which service each request goes to.
    pub routes: RouteTable,
    /// How paths are normalised before routing (`[paths]`).
    pub paths: crate::path::PathPolicy,
    /// What is valid but likely a mistake (a route that is never used), for the log.
    pub warnings: Vec<String>,
    /// Access logs, when configured.
    pub access_log: Option<AccessLogConfig>,
    /// TLS on the listener, when configured.
    pub tls: Option<TlsSettings>,
}

/// Defaults, as documented in `docs/configuration.md`.
pub mod defaults {
    use std::time::Duration;
    /// `listen`
    pub const LISTEN: &str = "127.0.0.1:8080";
    /// `admin`: loopback only, since the admin API can remove instances.
    pub const ADMIN: &str = "127.0.0.1:9900";
    /// `drain_timeout`
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
    /// `balancer.algorithm`
    pub const ALGORITHM: &str = "p2c-ewma";
    /// `timeouts.connect`
    pub const CONNECT: Duration = Duration::from_secs(1);
    /// `timeouts.request`
    pub const REQUEST: Duration = Duration::from_secs(30);
    /// `timeouts.client_idle`
    pub const CLIENT_IDLE: Duration = Duration::from_secs(60);
    /// `timeouts.client_header`
    pub const CLIENT_HEADER: Duration = Duration::from_secs(10);
    /// `limits.max_connections`
    pub const MAX_CONNECTIONS: usize = 10_000;
    /// `limits.max_request_head`: 64 KiB.
    pub const MAX_REQUEST_HEAD: usize = 64 * 1024;
    /// `timeouts.upstream_idle`
    pub const UPSTREAM_IDLE: Duration = Duration::from_secs(90);
    /// `timeouts.tunnel_idle` (HAProxy's `timeout tunnel` is commonly set to 1h).
    pub const TUNNEL_IDLE: Duration = Duration::from_secs(3600);
    /// `health_check.path`
    pub const HEALTH_PATH: &str = "/ready";
    /// `health_check.interval`
    pub const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
    /// `health_check.timeout`
    pub const HEALTH_TIMEOUT: Duration = Duration::from_millis(500);
    /// `health_check.rise`
    pub const RISE: u32 = 2;
    /// `health_check.fall`
    pub const FALL: u32 = 3;
    /// `outlier.consecutive_errors`
    pub const CONSECUTIVE_ERRORS: u32 = 5;
    /// `outlier.base_ejection_time`
    pub const BASE_EJECTION: Duration = Duration::from_secs(5);
    /// `outlier.max_ejection_time`
    pub const MAX_EJECTION: Duration = Duration::from_secs(60);
    /// `outlier.max_ejection_percent`
    pub const MAX_EJECTION_PERCENT: u32 = 50;
    /// `retries.attempts`
    pub const RETRIES: u32 = 1;
    /// `h2_max_streams`: no limit of the proxy's own, so the instance's
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` decides when another connection is opened (as the
    /// issue asked, and as HAProxy does); the most the key accepts.
    pub const H2_MAX_STREAMS: u32 = 100_000;
    /// HTTP/2 connections to one instance at most, however many streams are in flight.
    pub const H2_MAX_CONNECTIONS: usize = 8;
    /// `retries.budget_ratio` (Linkerd's)
    pub const BUDGET_RATIO: f64 = 0.2;
    /// `retries.budget_min_per_second` (Linkerd's)
    pub const BUDGET_MIN_PER_SECOND: f64 = 10.0;
    /// `retries.budget_window` (Linkerd's)
    pub const BUDGET_WINDOW: Duration = Duration::from_secs(10);
    /// `access_log.buffer`
    pub const ACCESS_LOG_BUFFER: usize = 10_000;
}

impl RawConfig {
    /// Reads and parses a TOML file (unknown keys and wrong types are errors with line numbers).
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        RawConfig::from_toml(&text, &path.display().to_string())
    }

    /// Parses TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// Lays flags over the file.
    pub fn apply(&mut self, o: Overrides) {
        if o.listen.is_some() {
            self.listen = o.listen;
        }
        if o.admin.is_some() {
            self.admin = o.admin;
        }
        if o.workers.is_some() {
            self.workers = o.workers;
        }
        if let Some(t) = o.admin_token {
            self.admin_token = Some(AdminToken(t));
        }
        if o.algorithm.is_some() {
            self.balancer.algorithm = o.algorithm;
        }
        if o.seed.is_some() {
            self.balancer.seed = o.seed;
        }
        if !o.backends.is_empty() {
            self.backends = o
                .backends
                .into_iter()
                .map(|address| RawBackend {
                    address,
                    weight: None,
                })
                .collect();
        }
    }

    /// The admin token: from the environment (set by [`RawConfig::apply`]) or the file that
    /// `admin_token_file` names, trimmed, at least [`AdminToken::MIN_LEN`] characters.
    fn admin_token(&self) -> Result<Option<AdminToken>, ConfigError> {
        let (token, key) = match (&self.admin_token, &self.admin_token_file) {
            (Some(t), _) => (t.0.clone(), "FORESIGHT_ADMIN_TOKEN"),
            (None, Some(path)) => (read_token_file(path)?, "admin_token_file"),
            (None, None) => return Ok(None),
        };
        let token = token.trim();
        if token.len() < AdminToken::MIN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                key,
                "<redacted>",
                format!(
                    "a token of at least {} visible ASCII characters, e.g. from `openssl rand -hex 32`",
                    AdminToken::MIN_LEN
                ),
            ));
        }
        Ok(Some(AdminToken(token.to_string())))
    }

    /// Checks every value once and builds the typed configuration.
    pub fn validate(&self) -> Result<ProxyConfig, ConfigError> {
        let listen = addr("listen", self.listen.as_deref().unwrap_or(defaults::LISTEN))?;
        let admin = addr("admin", self.admin.as_deref().unwrap_or(defaults::ADMIN))?;
        let admin_token = self.admin_token()?;
        if admin_token.is_none() && !admin.ip().is_loopback() {
            return Err(invalid(
                "admin",
                admin,
                "a loopback address, unless an admin token is set (admin_token_file or \
                 FORESIGHT_ADMIN_TOKEN): the admin API can drain and remove instances",
            ));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = match self.workers {
            None => cores,
            Some(w) if (1..=1024).contains(&w) => w as usize,
            Some(w) => return Err(invalid("workers", w, "a thread count in 1..=1024")),
        };
        let drain_timeout = duration(
            "drain_timeout",
            &self.drain_timeout,
            defaults::DRAIN_TIMEOUT,
        )?;

        let services::Resolved {
            services,
            routes,
            warnings,
        } = services::resolve(self)?;
        let paths = paths(&self.paths)?;
        let t = &self.timeouts;
        let timeouts = Timeouts {
            client_idle: positive(
                "timeouts.client_idle",
                &t.client_idle,
                defaults::CLIENT_IDLE,
            )?,
            client_header: positive(
                "timeouts.client_header",
                &t.client_header,
                defaults::CLIENT_HEADER,
            )?,
            ..services[0].timeouts
        };
        let l = &self.limits;
        let limits = Limits {
            max_connections: match l.max_connections {
                None => defaults::MAX_CONNECTIONS,
                Some(n) if (1..=1_000_000).contains(&n) => n as usize,
                Some(n) => {
                    return Err(invalid(
                        "limits.max_connections",
                        n,
                        "a count in 1..=1000000",
                    ))
                }
            },
            max_request_head: match l.max_request_head {
                None => defaults::MAX_REQUEST_HEAD,
                Some(n) if (8192..=1 << 20).contains(&n) => n as usize,
                Some(n) => {
                    return Err(invalid(
                        "limits.max_request_head",
                        n,
                        "bytes in 8192..=1048576",
                    ))
                }
            },
        };

        let access_log = self.access_log.as_ref().map(access_log).transpose()?;
        let mut warnings = warnings;
        let tls = match self.tls.as_ref().map(tls).transpose()? {
            Some((t, w)) => {
                warnings.extend(w);
                Some(t)
            }
            None => None,
        };
        Ok(ProxyConfig {
            tls,
            access_log,
            listen,
            admin,
            admin_token,
            workers,
            drain_timeout,
            timeouts,
            limits,
            services,
            allow_empty: self.allow_empty.unwrap_or(false),
            routes,
            paths,
            warnings,
        })
    }
}

/// `[paths]`: every key optional (see [`crate::path::PathPolicy`]'s defaults).
fn paths(p: &raw::RawPaths) -> Result<crate::path::PathPolicy, ConfigError> {
    use crate::path::{EscapedSlashes, PathPolicy};
    let d = PathPolicy::default();
    let escaped_slashes = match p.escaped_slashes.as_deref() {
        None => d.escaped_slashes,
        Some("reject") => EscapedSlashes::Reject,
        Some("keep") => EscapedSlashes::Keep,
        Some(other) => {
            return Err(invalid(
                "paths.escaped_slashes",
                other,
                "`reject` (answer 400) or `keep`",
            ))
        }
    };
    Ok(PathPolicy {
        normalize: p.normalize.unwrap_or(d.normalize),
        merge_slashes: p.merge_slashes.unwrap_or(d.merge_slashes),
        escaped_slashes,
    })
}

/// Loads `[tls]`'s certificates (a file that cannot be used is named with its entry).
fn tls(t: &RawTls) -> Result<(TlsSettings, Vec<String>), ConfigError> {
    if t.certificates.is_empty() {
        return Err(invalid(
            "tls.certificates",
            "[]",
            "at least one { cert = \"chain.pem\", key = \"key.pem\" }",
        ));
    }
    let files: Vec<(std::path::PathBuf, std::path::PathBuf)> = t
        .certificates
        .iter()
        .map(|c| (c.cert.clone().into(), c.key.clone().into()))
        .collect();
    let loaded = foresight_http::tls::server_config(&files).map_err(|e| {
        let which = if e.file == t.certificates[e.index].key {
            "key"
        } else {
            "cert"
        };
        invalid(
            format!("tls.certificates[{}].{which}", e.index),
            &e.file,
            format!("a usable PEM file ({})", e.message),
        )
    })?;
    Ok((
        TlsSettings {
            files,
            server: loaded.config,
            certificates: loaded.certificates,
        },
        loaded.warnings,
    ))
}

/// Validates `[access_log]`.
fn access_log(a: &RawAccessLog) -> Result<AccessLogConfig, ConfigError> {
    let path = match a.path.as_deref() {
        None | Some("-") => None,
        Some("") => return Err(invalid("access_log.path", "", "`-` (stdout) or a file")),
        Some(p) => Some(std::path::PathBuf::from(p)),
    };
    let format = match a.format.as_deref().unwrap_or("json") {
        "json" => Format::Json,
        "common" => Format::Common,
        other => return Err(invalid("access_log.format", other, "json or common")),
    };
    let sample = a.sample.unwrap_or(1.0);
    if !(sample > 1e-6 && sample <= 1.0) {
        return Err(invalid(
            "access_log.sample",
            sample,
            "a fraction of requests in (0.000001, 1]",
        ));
    }
    let buffer = match a.buffer {
        None => defaults::ACCESS_LOG_BUFFER,
        Some(n) if (1..=1_000_000).contains(&n) => n as usize,
        Some(n) => return Err(invalid("access_log.buffer", n, "lines in 1..=1000000")),
    };
    Ok(AccessLogConfig {
        path,
        format,
        sample,
        buffer,
    })
}

/// Parses one instance address (`http://host:port` or `host:port`) and weight; `key` names it in
/// errors. Used for the file, the flags and the admin API alike.
pub fn parse_backend(
    key: &str,
    address: &str,
    weight: Option<i64>,
) -> Result<BackendSpec, ConfigError> {
    let expected =
        "an address like http://127.0.0.1:9001, https://api.internal:8443 or 127.0.0.1:9001";
    let bad = || invalid(format!("{key}.address"), address, expected);
    let uri: Uri = if address.contains("://") {
        address.parse().map_err(|_| bad())?
    } else {
        format!("http://{address}").parse().map_err(|_| bad())?
    };
    let tls = uri.scheme() == Some(&Scheme::HTTPS);
    if uri.scheme() != Some(&Scheme::HTTP) && !tls {
        return Err(invalid(
            format!("{key}.address"),
            address,
            "an http:// or https:// address",
        ));
    }
    let authority = uri.authority().cloned().ok_or_else(bad)?;
    if authority.port_u16().is_none()
        || authority.host().is_empty()
        || authority.as_str().contains('@')
    {
        return Err(bad());
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid(
            format!("{key}.address"),
            address,
            "an address without a path",
        ));
    }
    let weight = match weight {
        None => 1,
        Some(w) if (1..=10_000).contains(&w) => w as u32,
        Some(w) => {
            return Err(invalid(
                format!("{key}.weight"),
                w,
                "an integer in 1..=10000",
            ))
        }
    };
    Ok(BackendSpec {
        address: address.to_string(),
        key: instance_key(&authority),
        authority,
        weight,
        tls,
    })
}

/// What identifies an instance, whatever way its address is written: `host:port` with the host
/// lower-cased, an IP address in its canonical form (an IPv4-mapped IPv6 address as IPv4), and
/// the usual loopback host (`localhost`, `*.localhost`, `127.0.0.1`, `::1`) as one, `loopback`
/// (other `127.0.0.0/8` addresses are their own: a process can listen on each).
/// Names are not resolved: two names of one address are two instances.
pub fn instance_key(authority: &Authority) -> String {
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let port = authority.port_u16().unwrap_or(80);
    let host = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some() => {
            let v4 = v6
                .to_ipv4_mapped()
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
            if v4 == std::net::Ipv4Addr::LOCALHOST {
                "loopback".to_string()
            } else {
                v4.to_string()
            }
        }
        Ok(std::net::IpAddr::V4(v4)) if v4 == std::net::Ipv4Addr::LOCALHOST => {
            "loopback".to_string()
        }
        Ok(std::net::IpAddr::V6(v6)) if v6.is_loopback() => "loopback".to_string(),
        Ok(ip) => ip.to_string(),
        Err(_) if host == "localhost" || host.ends_with(".localhost") => "loopback".to_string(),
        Err(_) => host,
    };
    format!("{host}:{port}")
}

/// The [`instance_key`] of an address as the admin API or a flag names it, if it parses.
pub fn key_of(address: &str) -> Option<String> {
    parse_backend("address", address, None).ok().map(|s| s.key)
}

fn addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|_| invalid(key, value, "an IP address and port, e.g. 127.0.0.1:8080"))
}

fn duration(key: &str, value: &Option<String>, default: Duration) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => humantime::parse_duration(v)
            .map_err(|_| invalid(key, v, "a duration such as 500ms, 5s or 1m")),
    }
}

fn positive(key: &str, value: &Option<String>, default: Duration) -> Result<Duration, ConfigError> {
    let d = duration(key, value, default)?;
    if d.is_zero() {
        return Err(invalid(key, "0s", "a duration greater than zero"));
    }
    Ok(d)
}

fn count(
    key: &str,
    value: Option<i64>,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if v >= i64::from(min) && v <= i64::from(max) => Ok(v as u32),
        Some(v) => Err(invalid(key, v, format!("an integer in {min}..={max}"))),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
