//! `[[services]]` and `[[routes]]`: several pools behind one listener.
//!
//! A service's sections (`balancer`, `timeouts`, `health_check`, `outlier`, `retries`) are the
//! top level's, key by key, with the service's own keys over them (HAProxy's `defaults`). The
//! single-pool form (top-level `backends` and `[control]`, no `[[services]]`) is one service
//! named `default` with a catch-all route. Each section is validated in `sections`, each route
//! entry compiled in `routes`; this file resolves the whole (inheritance, names, references).

use std::collections::HashSet;

use serde::Deserialize;

use super::*;
use crate::admission::RateLimitConfig;
use crate::route::{Route, RouteTable};

use super::routes::route;

/// The name of the single-pool form's service.
pub const DEFAULT_SERVICE: &str = "default";

/// The most services and routes one file may have.
const MAX_SERVICES: usize = 256;
const MAX_ROUTES: usize = 4096;

/// One `[[services]]` entry, as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// Its name: the `service` label, the admin API's path segment, the routes' target.
    pub name: String,
    #[allow(missing_docs)]
    pub balancer: Option<RawBalancer>,
    #[allow(missing_docs)]
    pub timeouts: Option<RawTimeouts>,
    #[allow(missing_docs)]
    pub health_check: Option<RawHealthCheck>,
    #[allow(missing_docs)]
    pub outlier: Option<RawOutlier>,
    #[allow(missing_docs)]
    pub retries: Option<RawRetries>,
    #[allow(missing_docs)]
    pub rate_limit: Option<RawRateLimit>,
    #[allow(missing_docs)]
    pub circuit_breaker: Option<RawCircuitBreaker>,
    #[allow(missing_docs)]
    pub upstream_tls: Option<RawUpstreamTls>,
    /// How it talks to its instances: `http1` (the default), `h2c` or `h2` (over TLS).
    pub protocol: Option<String>,
    /// Streams on one HTTP/2 connection to an instance before another is opened.
    pub h2_max_streams: Option<i64>,
    #[allow(missing_docs)]
    #[serde(default)]
    pub backends: Vec<RawBackend>,
    /// Where its instances come from instead of `backends`.
    pub discovery: Option<RawDiscovery>,
    /// Its control loop's section, validated by `foresight-control`.
    pub control: Option<RawControl>,
}

/// One `[[routes]]` entry, as written.
#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub path: Option<String>,
    pub methods: Option<Vec<String>>,
    #[serde(default)]
    pub headers: Vec<RawHeaderMatch>,
    pub strip_prefix: Option<bool>,
    pub rewrite_prefix: Option<String>,
    pub service: String,
}

/// A header condition of a route: present, or with exactly this value.
#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderMatch {
    pub name: String,
    pub value: Option<String>,
}

/// One validated service: a pool's settings, its instances and its control section.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceConfig {
    /// Its name.
    pub name: String,
    /// Balancing.
    pub balancer: BalancerSettings,
    /// Timeouts towards its instances (the `client_*` ones are the listener's).
    pub timeouts: Timeouts,
    /// Active health checks, if enabled.
    pub health_check: Option<HealthCheckConfig>,
    /// Outlier ejection, if enabled.
    pub outlier: Option<OutlierConfig>,
    /// Retries: when, how many, within what budget.
    pub retries: RetryConfig,
    /// Requests per second per client, if limited.
    pub rate_limit: Option<RateLimitConfig>,
    /// Requests at the service's instances at once, if limited.
    pub max_requests: Option<u32>,
    /// TLS to its `https://` instances, when `[upstream_tls]` sets anything (else the
    /// system's roots and each address's host).
    pub upstream_tls: Option<UpstreamTls>,
    /// How it talks to its instances.
    pub protocol: UpstreamProtocol,
    /// Over HTTP/2: the streams one connection to an instance carries before another is
    /// opened (at most [`crate::config::defaults::H2_MAX_CONNECTIONS`] per instance).
    pub h2_max_streams: u32,
    /// The initial instances.
    pub backends: Vec<BackendSpec>,
    /// Where the instances come from instead, if discovered.
    pub discovery: Option<Discovery>,
    /// The `[control]` (or `[services.control]`) table, for `foresight-control` to validate.
    pub control: Option<RawControl>,
}

/// Per field: the service's value, else the top level's.
macro_rules! inherit {
    ($t:ident { $($f:ident),* $(,)? }) => {
        impl $t {
            fn over(&self, base: &$t) -> $t {
                $t { $($f: self.$f.clone().or_else(|| base.$f.clone())),* }
            }
        }
    };
}
inherit!(RawBalancer {
    algorithm,
    slow_start_window,
    slow_start_aggression,
    slow_start_min_weight_percent,
    batch_window,
    seed,
    hash_on,
    ewma_decay,
    default_rtt,
});
inherit!(RawTimeouts {
    connect,
    request,
    client_idle,
    client_header,
    upstream_idle,
    tunnel_idle,
});
inherit!(RawHealthCheck {
    enabled,
    kind,
    grpc_service,
    path,
    interval,
    timeout,
    rise,
    fall,
});
inherit!(RawOutlier {
    enabled,
    consecutive_errors,
    base_ejection_time,
    max_ejection_time,
    max_ejection_percent,
});
inherit!(RawRateLimit { rate, burst, key });
inherit!(RawCircuitBreaker { max_requests });
inherit!(RawRetries {
    attempts,
    on_status,
    on_grpc_status,
    grpc_methods,
    per_try_timeout,
    budget_ratio,
    budget_min_per_second,
    budget_window,
});

/// The raw sections one service is validated from.
struct Sections<'a> {
    balancer: &'a RawBalancer,
    timeouts: &'a RawTimeouts,
    health_check: &'a RawHealthCheck,
    outlier: &'a RawOutlier,
    retries: &'a RawRetries,
    rate_limit: &'a RawRateLimit,
    circuit_breaker: &'a RawCircuitBreaker,
    upstream_tls: &'a RawUpstreamTls,
    protocol: Option<&'a str>,
    h2_max_streams: Option<i64>,
    backends: &'a [RawBackend],
    discovery: Option<&'a RawDiscovery>,
}

/// Validates one service's sections; `p` prefixes every key in errors (`services[1].`).
fn service(
    p: &str,
    name: &str,
    s: Sections<'_>,
    control: Option<RawControl>,
) -> Result<ServiceConfig, ConfigError> {
    let balancer = sections::balancer(p, s.balancer)?;
    let timeouts = sections::timeouts(p, s.timeouts)?;
    let health_check = sections::health_check(p, s.health_check, s.protocol)?;
    let outlier = sections::outlier(p, s.outlier)?;
    let retries = sections::retries(p, s.retries, s.protocol)?;
    let backends = sections::backends(p, s.backends)?;
    let rate_limit = sections::rate_limit(p, s.rate_limit)?;
    let max_requests = sections::max_requests(p, s.circuit_breaker)?;
    let k = |key: &str| format!("{p}{key}");

    let discovery = match s.discovery {
        None => None,
        Some(raw) => {
            if let Some(b) = backends.first() {
                return Err(invalid(
                    k("backends"),
                    &b.address,
                    "no backends together with discovery: the instances are discovered",
                ));
            }
            Some(super::discovery::discovery(p, raw)?)
        }
    };
    // TLS to instances found by DNS checks their certificates against the resolved name.
    let dns_name = match &discovery {
        Some(Discovery::Dns(d)) if d.tls && s.upstream_tls.server_name.is_none() => {
            Some(RawUpstreamTls {
                server_name: Some(d.name.clone()),
                ..s.upstream_tls.clone()
            })
        }
        _ => None,
    };
    let upstream_tls =
        super::upstream_tls::upstream_tls(p, dns_name.as_ref().unwrap_or(s.upstream_tls))?;
    for (i, b) in backends.iter().enumerate().filter(|(_, b)| b.tls) {
        if let Some(t) = &upstream_tls {
            t.target(&b.authority, false)
                .map_err(|e| invalid(k(&format!("backends[{i}].address")), &b.address, e))?;
        }
    }
    let protocol = match s.protocol.unwrap_or("http1") {
        "http1" => UpstreamProtocol::Http1,
        "h2c" => UpstreamProtocol::H2c,
        "h2" => UpstreamProtocol::H2,
        other => return Err(invalid(k("protocol"), other, "`http1`, `h2c` or `h2`")),
    };
    // h2 is agreed inside TLS, h2c spoken in the clear: each instance's scheme must match.
    for (i, b) in backends.iter().enumerate() {
        match protocol {
            UpstreamProtocol::H2 if !b.tls => {
                return Err(invalid(
                    k(&format!("backends[{i}].address")),
                    &b.address,
                    "an `https://` address: `protocol = \"h2\"` is HTTP/2 over TLS",
                ))
            }
            UpstreamProtocol::H2c if b.tls => return Err(invalid(
                k(&format!("backends[{i}].address")),
                &b.address,
                "a plain address: `protocol = \"h2c\"` is HTTP/2 in the clear (`h2` is over TLS)",
            )),
            _ => {}
        }
    }
    let h2_max_streams = count(
        &k("h2_max_streams"),
        s.h2_max_streams,
        defaults::H2_MAX_STREAMS,
        1,
        100_000,
    )?;
    Ok(ServiceConfig {
        protocol,
        h2_max_streams,
        upstream_tls,
        rate_limit,
        max_requests,
        name: name.to_string(),
        balancer,
        timeouts,
        health_check,
        outlier,
        retries,
        backends,
        discovery,
        control,
    })
}

/// Whether `name` can name a service: a DNS label (lower case), so that it reads the same in
/// a URL, a metric label and a Kubernetes object.
fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// The validated services and routes, and warnings about what is legal but likely a mistake.
pub(super) struct Resolved {
    pub services: Vec<ServiceConfig>,
    pub routes: RouteTable,
    pub warnings: Vec<String>,
}

/// The services and routes of `raw`: its `[[services]]` and `[[routes]]`, or the single-pool
/// form as one service `default` with a catch-all route.
pub(super) fn resolve(raw: &RawConfig) -> Result<Resolved, ConfigError> {
    let base = Sections {
        balancer: &raw.balancer,
        timeouts: &raw.timeouts,
        health_check: &raw.health_check,
        outlier: &raw.outlier,
        retries: &raw.retries,
        rate_limit: &raw.rate_limit,
        circuit_breaker: &raw.circuit_breaker,
        upstream_tls: &raw.upstream_tls,
        protocol: raw.protocol.as_deref(),
        h2_max_streams: raw.h2_max_streams,
        backends: &raw.backends,
        discovery: raw.discovery.as_ref(),
    };
    // The top level on its own first: its mistakes are named by its own keys.
    let default = service("", DEFAULT_SERVICE, base, raw.control.clone())?;
    if raw.services.is_empty() {
        if !raw.routes.is_empty() {
            return Err(invalid(
                "routes",
                format!("{} routes", raw.routes.len()),
                "routes only together with [[services]] to route to",
            ));
        }
        return Ok(Resolved {
            services: vec![default],
            routes: RouteTable::new(vec![Route::catch_all(DEFAULT_SERVICE, 0)]),
            warnings: Vec::new(),
        });
    }
    if let Some(b) = raw.backends.first() {
        return Err(invalid(
            "backends",
            &b.address,
            "no top-level backends (or --backend) together with [[services]]: list each \
             service's instances in its own backends",
        ));
    }
    if raw.discovery.is_some() {
        return Err(invalid(
            "discovery",
            "(a table)",
            "no top-level [discovery] together with [[services]]: give each service its own \
             discovery",
        ));
    }
    if raw.control.is_some() {
        return Err(invalid(
            "control",
            "(a table)",
            "no top-level [control] together with [[services]]: give each service that \
             should scale its own [services.control]",
        ));
    }
    if raw.services.len() > MAX_SERVICES {
        return Err(invalid(
            "services",
            format!("{} services", raw.services.len()),
            format!("at most {MAX_SERVICES}"),
        ));
    }
    let mut services: Vec<ServiceConfig> = Vec::with_capacity(raw.services.len());
    for (i, rs) in raw.services.iter().enumerate() {
        let p = format!("services[{i}].");
        if !valid_name(&rs.name) {
            return Err(invalid(
                format!("{p}name"),
                &rs.name,
                "1 to 63 lower-case letters, digits and `-`, not starting or ending with `-`",
            ));
        }
        if let Some(j) = services.iter().position(|s| s.name == rs.name) {
            return Err(invalid(
                format!("{p}name"),
                &rs.name,
                format!("a name that services[{j}] does not already have"),
            ));
        }
        if let Some(t) = &rs.timeouts {
            for (key, v) in [
                ("client_idle", &t.client_idle),
                ("client_header", &t.client_header),
            ] {
                if let Some(v) = v {
                    return Err(invalid(
                        format!("{p}timeouts.{key}"),
                        v,
                        "no client timeout in a service: it is the listener's, set in the \
                         top-level [timeouts]",
                    ));
                }
            }
        }
        let balancer = rs
            .balancer
            .as_ref()
            .map_or_else(|| raw.balancer.clone(), |x| x.over(&raw.balancer));
        let timeouts = rs
            .timeouts
            .as_ref()
            .map_or_else(|| raw.timeouts.clone(), |x| x.over(&raw.timeouts));
        let health_check = rs
            .health_check
            .as_ref()
            .map_or_else(|| raw.health_check.clone(), |x| x.over(&raw.health_check));
        let outlier = rs
            .outlier
            .as_ref()
            .map_or_else(|| raw.outlier.clone(), |x| x.over(&raw.outlier));
        let retries = rs
            .retries
            .as_ref()
            .map_or_else(|| raw.retries.clone(), |x| x.over(&raw.retries));
        let rate_limit = rs
            .rate_limit
            .as_ref()
            .map_or_else(|| raw.rate_limit.clone(), |x| x.over(&raw.rate_limit));
        let circuit_breaker = rs.circuit_breaker.as_ref().map_or_else(
            || raw.circuit_breaker.clone(),
            |x| x.over(&raw.circuit_breaker),
        );
        let upstream_tls = rs
            .upstream_tls
            .as_ref()
            .map_or_else(|| raw.upstream_tls.clone(), |x| x.over(&raw.upstream_tls));
        let sections = Sections {
            upstream_tls: &upstream_tls,
            rate_limit: &rate_limit,
            circuit_breaker: &circuit_breaker,
            balancer: &balancer,
            timeouts: &timeouts,
            health_check: &health_check,
            outlier: &outlier,
            retries: &retries,
            protocol: rs.protocol.as_deref().or(raw.protocol.as_deref()),
            h2_max_streams: rs.h2_max_streams.or(raw.h2_max_streams),
            backends: &rs.backends,
            discovery: rs.discovery.as_ref(),
        };
        services.push(service(&p, &rs.name, sections, rs.control.clone())?);
    }
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    let routes = if raw.routes.is_empty() {
        if services.len() > 1 {
            return Err(invalid(
                "routes",
                "(none)",
                format!(
                    "[[routes]] that say which requests go to which of the services {}",
                    names.join(", ")
                ),
            ));
        }
        vec![Route::catch_all("routes (none: every request)", 0)]
    } else {
        if raw.routes.len() > MAX_ROUTES {
            return Err(invalid(
                "routes",
                format!("{} routes", raw.routes.len()),
                format!("at most {MAX_ROUTES}"),
            ));
        }
        raw.routes
            .iter()
            .enumerate()
            .map(|(i, r)| route(i, r, &names))
            .collect::<Result<Vec<_>, _>>()?
    };
    let routes = RouteTable::new(routes);
    let mut warnings: Vec<String> = routes
        .shadowed()
        .into_iter()
        .map(|(later, earlier)| {
            format!("{later} is never used: {earlier} before it matches every request it would")
        })
        .collect();
    let targeted: HashSet<usize> = routes.routes().iter().map(|r| r.service).collect();
    for (i, s) in services.iter().enumerate() {
        if !targeted.contains(&i) {
            warnings.push(format!(
                "services[{i}] ({}) gets no requests: no route targets it",
                s.name
            ));
        }
    }
    Ok(Resolved {
        services,
        routes,
        warnings,
    })
}
