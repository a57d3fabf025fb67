//! One service's sections validated, each by its own function: `balancer`, `timeouts`,
//! `health_check`, `outlier`, `retries`, `backends`, `rate_limit` and `circuit_breaker`.
//! Every error names its key with the service's prefix `p` (`services[1].`).

use foresight_balance::{Algorithm, BalancerConfig, EwmaParams};
use http::HeaderName;

use super::*;
use crate::admission::{LimitKey, RateLimitConfig};

/// `balancer`: the algorithm and its settings.
pub(super) fn balancer(p: &str, b: &RawBalancer) -> Result<BalancerSettings, ConfigError> {
    let k = |key: &str| format!("{p}{key}");
    let algorithm: Algorithm = b
        .algorithm
        .as_deref()
        .unwrap_or(defaults::ALGORITHM)
        .parse()
        .map_err(|e: foresight_balance::UnknownAlgorithm| {
            let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
            invalid(
                k("balancer.algorithm"),
                e.given,
                format!("one of: {}", names.join(", ")),
            )
        })?;
    let hash_on = match b.hash_on.as_deref().unwrap_or("path") {
        "path" => HashOn::Path,
        other => match other.strip_prefix("header:") {
            Some(name) => {
                HashOn::Header(http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    invalid(
                        k("balancer.hash_on"),
                        other,
                        "`path` or `header:NAME` with a valid header name",
                    )
                })?)
            }
            None => {
                return Err(invalid(
                    k("balancer.hash_on"),
                    other,
                    "`path` or `header:NAME`",
                ))
            }
        },
    };
    let ewma = EwmaParams {
        decay: positive(
            &k("balancer.ewma_decay"),
            &b.ewma_decay,
            foresight_balance::DEFAULT_DECAY,
        )?,
        default_rtt: positive(
            &k("balancer.default_rtt"),
            &b.default_rtt,
            foresight_balance::DEFAULT_RTT,
        )?,
    };
    let slow_start = match &b.slow_start_window {
        None => None,
        Some(w) => {
            let window = positive(
                &k("balancer.slow_start_window"),
                &Some(w.clone()),
                Duration::ZERO,
            )?;
            let aggression = b.slow_start_aggression.unwrap_or(1.0);
            if !(aggression.is_finite() && aggression > 0.0 && aggression <= 100.0) {
                return Err(invalid(
                    k("balancer.slow_start_aggression"),
                    aggression,
                    "a number in (0, 100]",
                ));
            }
            let min_weight_percent = b.slow_start_min_weight_percent.unwrap_or(10.0);
            if !(0.0..=100.0).contains(&min_weight_percent) {
                return Err(invalid(
                    k("balancer.slow_start_min_weight_percent"),
                    min_weight_percent,
                    "0..=100",
                ));
            }
            Some(foresight_balance::SlowStartConfig {
                window,
                aggression,
                min_weight_percent,
            })
        }
    };
    Ok(BalancerSettings {
        config: BalancerConfig {
            algorithm,
            seed: b.seed.unwrap_or(1),
            slow_start,
        },
        hash_on,
        ewma,
        batch_window: {
            let w = positive(
                &k("balancer.batch_window"),
                &b.batch_window,
                Duration::from_millis(5),
            )?;
            if w > Duration::from_secs(1) {
                return Err(invalid(
                    k("balancer.batch_window"),
                    humantime::format_duration(w),
                    "at most 1s",
                ));
            }
            w
        },
    })
}

/// `timeouts`.
pub(super) fn timeouts(p: &str, t: &RawTimeouts) -> Result<Timeouts, ConfigError> {
    let k = |key: &str| format!("{p}{key}");
    Ok(Timeouts {
        connect: positive(&k("timeouts.connect"), &t.connect, defaults::CONNECT)?,
        request: positive(&k("timeouts.request"), &t.request, defaults::REQUEST)?,
        client_idle: positive(
            &k("timeouts.client_idle"),
            &t.client_idle,
            defaults::CLIENT_IDLE,
        )?,
        client_header: positive(
            &k("timeouts.client_header"),
            &t.client_header,
            defaults::CLIENT_HEADER,
        )?,
        upstream_idle: positive(
            &k("timeouts.upstream_idle"),
            &t.upstream_idle,
            defaults::UPSTREAM_IDLE,
        )?,
        tunnel_idle: positive(
            &k("timeouts.tunnel_idle"),
            &t.tunnel_idle,
            defaults::TUNNEL_IDLE,
        )?,
    })
}

/// `health_check` (`None`: disabled); gRPC checks need an HTTP/2 `protocol`.
pub(super) fn health_check(
    p: &str,
    h: &RawHealthCheck,
    protocol: Option<&str>,
) -> Result<Option<HealthCheckConfig>, ConfigError> {
    let k = |key: &str| format!("{p}{key}");
    Ok(if h.enabled.unwrap_or(true) {
        let path = h
            .path
            .clone()
            .unwrap_or_else(|| defaults::HEALTH_PATH.to_string());
        if !path.starts_with('/') || path.parse::<http::uri::PathAndQuery>().is_err() {
            return Err(invalid(
                k("health_check.path"),
                &path,
                "a path starting with `/`",
            ));
        }
        let interval = positive(
            &k("health_check.interval"),
            &h.interval,
            defaults::HEALTH_INTERVAL,
        )?;
        let timeout = positive(
            &k("health_check.timeout"),
            &h.timeout,
            defaults::HEALTH_TIMEOUT,
        )?;
        if timeout > interval {
            return Err(invalid(
                k("health_check.timeout"),
                humantime::format_duration(timeout),
                format!(
                    "at most health_check.interval ({})",
                    humantime::format_duration(interval)
                ),
            ));
        }
        let grpc = match h.kind.as_deref().unwrap_or("http") {
            "http" => None,
            "grpc" if matches!(protocol, Some("h2c" | "h2")) => {
                Some(h.grpc_service.clone().unwrap_or_default())
            }
            "grpc" => return Err(invalid(
                k("health_check.type"),
                "grpc",
                "`http` for this service: gRPC health checks need `protocol = \"h2c\"` or `\"h2\"`",
            )),
            other => return Err(invalid(k("health_check.type"), other, "`http` or `grpc`")),
        };
        if grpc.is_none() && h.grpc_service.is_some() {
            return Err(invalid(
                k("health_check.grpc_service"),
                h.grpc_service.as_deref().unwrap_or_default(),
                "only with `health_check.type = \"grpc\"`",
            ));
        }
        if grpc.as_ref().is_some_and(|g| g.len() > 1024) {
            return Err(invalid(
                k("health_check.grpc_service"),
                "(longer than 1024 bytes)",
                "a gRPC service name of at most 1024 bytes",
            ));
        }
        Some(HealthCheckConfig {
            grpc,
            path,
            interval,
            timeout,
            rise: count(&k("health_check.rise"), h.rise, defaults::RISE, 1, 100)?,
            fall: count(&k("health_check.fall"), h.fall, defaults::FALL, 1, 100)?,
        })
    } else {
        None
    })
}

/// `outlier` (`None`: disabled).
pub(super) fn outlier(p: &str, o: &RawOutlier) -> Result<Option<OutlierConfig>, ConfigError> {
    let k = |key: &str| format!("{p}{key}");
    Ok(if o.enabled.unwrap_or(true) {
        let base = positive(
            &k("outlier.base_ejection_time"),
            &o.base_ejection_time,
            defaults::BASE_EJECTION,
        )?;
        let max = positive(
            &k("outlier.max_ejection_time"),
            &o.max_ejection_time,
            defaults::MAX_EJECTION,
        )?;
        if max < base {
            return Err(invalid(
                k("outlier.max_ejection_time"),
                humantime::format_duration(max),
                "at least outlier.base_ejection_time",
            ));
        }
        Some(OutlierConfig {
            consecutive_errors: count(
                &k("outlier.consecutive_errors"),
                o.consecutive_errors,
                defaults::CONSECUTIVE_ERRORS,
                1,
                1000,
            )?,
            base_ejection_time: base,
            max_ejection_time: max,
            max_ejection_percent: count(
                &k("outlier.max_ejection_percent"),
                o.max_ejection_percent,
                defaults::MAX_EJECTION_PERCENT,
                0,
                100,
            )?,
        })
    } else {
        None
    })
}

/// `retries`; retries on gRPC statuses need an HTTP/2 `protocol` and the methods marked safe.
pub(super) fn retries(
    p: &str,
    r: &RawRetries,
    protocol: Option<&str>,
) -> Result<RetryConfig, ConfigError> {
    let k = |key: &str| format!("{p}{key}");
    let on_status = r
        .on_status
        .iter()
        .flatten()
        .map(|c| match u16::try_from(*c) {
            Ok(c) if (400..=599).contains(&c) => Ok(c),
            _ => Err(invalid(
                k("retries.on_status"),
                c,
                "status codes in 400..=599",
            )),
        })
        .collect::<Result<Vec<u16>, _>>()?;
    let on_grpc_status = r
        .on_grpc_status
        .iter()
        .flatten()
        .map(|name| {
            crate::grpc::code_of(name).ok_or_else(|| {
                invalid(
                    k("retries.on_grpc_status"),
                    name,
                    "gRPC status names, e.g. `unavailable`, `resource-exhausted`, `aborted`",
                )
            })
        })
        .collect::<Result<Vec<u8>, _>>()?;
    let grpc_methods = r.grpc_methods.clone().unwrap_or_default();
    for m in &grpc_methods {
        if !crate::grpc::is_method_pattern(m) {
            return Err(invalid(
                k("retries.grpc_methods"),
                m,
                "full method names, `/package.Service/Method`, `/package.Service/*`, or `*`",
            ));
        }
    }
    if !on_grpc_status.is_empty() && grpc_methods.is_empty() {
        return Err(invalid(
            k("retries.grpc_methods"),
            "(missing)",
            "the methods safe to call twice (`on_grpc_status` retries only those), or `[\"*\"]`",
        ));
    }
    if !on_grpc_status.is_empty() && !matches!(protocol, Some("h2c" | "h2")) {
        return Err(invalid(
            k("retries.on_grpc_status"),
            format!("{on_grpc_status:?}"),
            "none for this service: gRPC needs `protocol = \"h2c\"` or `\"h2\"`",
        ));
    }
    let per_try_timeout = match &r.per_try_timeout {
        None => None,
        Some(_) => Some(positive(
            &k("retries.per_try_timeout"),
            &r.per_try_timeout,
            Duration::ZERO,
        )?),
    };
    let budget_ratio = r.budget_ratio.unwrap_or(defaults::BUDGET_RATIO);
    if !(0.0..=10.0).contains(&budget_ratio) {
        return Err(invalid(k("retries.budget_ratio"), budget_ratio, "0..=10"));
    }
    let budget_min_per_second = r
        .budget_min_per_second
        .unwrap_or(defaults::BUDGET_MIN_PER_SECOND);
    if !(0.0..=100_000.0).contains(&budget_min_per_second) {
        return Err(invalid(
            k("retries.budget_min_per_second"),
            budget_min_per_second,
            "0..=100000",
        ));
    }
    let budget_window = positive(
        &k("retries.budget_window"),
        &r.budget_window,
        defaults::BUDGET_WINDOW,
    )?;
    if budget_window < Duration::from_secs(1) || budget_window > Duration::from_secs(600) {
        return Err(invalid(
            k("retries.budget_window"),
            humantime::format_duration(budget_window),
            "1s..=10m",
        ));
    }
    Ok(RetryConfig {
        attempts: count(&k("retries.attempts"), r.attempts, defaults::RETRIES, 0, 10)?,
        on_status,
        on_grpc_status,
        grpc_methods,
        per_try_timeout,
        budget_ratio,
        budget_min_per_second,
        budget_window,
    })
}

/// `backends`: each address parsed, none listed twice.
pub(super) fn backends(p: &str, raw: &[RawBackend]) -> Result<Vec<BackendSpec>, ConfigError> {
    let mut backends: Vec<BackendSpec> = Vec::with_capacity(raw.len());
    for (i, raw) in raw.iter().enumerate() {
        let key = format!("{p}backends[{i}]");
        let spec = parse_backend(&key, &raw.address, raw.weight)?;
        if let Some(same) = backends.iter().find(|b| b.key == spec.key) {
            return Err(invalid(
                format!("{key}.address"),
                &spec.address,
                format!(
                    "an address not already listed (it is the same instance as {})",
                    same.address
                ),
            ));
        }
        backends.push(spec);
    }
    Ok(backends)
}

/// `rate_limit` (`None`: no limit).
pub(super) fn rate_limit(
    p: &str,
    rl: &RawRateLimit,
) -> Result<Option<RateLimitConfig>, ConfigError> {
    let k = |key: &str| format!("{p}{key}");
    Ok(match rl.rate {
        None if rl.burst.is_some() || rl.key.is_some() => {
            return Err(invalid(
                k("rate_limit.rate"),
                "(none)",
                "a rate in requests per second, with burst or key set",
            ))
        }
        None => None,
        Some(rate) => {
            if !(0.001..=1_000_000.0).contains(&rate) {
                return Err(invalid(
                    k("rate_limit.rate"),
                    rate,
                    "requests per second in 0.001..=1000000",
                ));
            }
            let burst = match rl.burst {
                None => rate.ceil().max(1.0) as u32,
                Some(b) if (1..=1_000_000).contains(&b) => b as u32,
                Some(b) => return Err(invalid(k("rate_limit.burst"), b, "1..=1000000")),
            };
            let key = match rl.key.as_deref().unwrap_or("client_ip") {
                "client_ip" => LimitKey::ClientIp,
                other => match other
                    .strip_prefix("header:")
                    .and_then(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                {
                    Some(name) => LimitKey::Header(name),
                    None => {
                        return Err(invalid(
                            k("rate_limit.key"),
                            other,
                            "client_ip or header:NAME",
                        ))
                    }
                },
            };
            Some(RateLimitConfig { rate, burst, key })
        }
    })
}

/// `circuit_breaker.max_requests` (`None`: no limit).
pub(super) fn max_requests(p: &str, c: &RawCircuitBreaker) -> Result<Option<u32>, ConfigError> {
    let k = |key: &str| format!("{p}{key}");
    Ok(match c.max_requests {
        None => None,
        Some(n) if (1..=1_000_000).contains(&n) => Some(n as u32),
        Some(n) => return Err(invalid(k("circuit_breaker.max_requests"), n, "1..=1000000")),
    })
}
