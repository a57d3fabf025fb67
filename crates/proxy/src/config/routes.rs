//! `[[routes]]`: each entry checked and compiled into a [`Route`] (see `crate::route` for what
//! the conditions mean).

use http::{HeaderName, HeaderValue, Method};

use super::*;
use crate::route::{HostMatch, PathMatch, Rewrite, Route};

/// Compiles `routes[i]`.
pub(super) fn route(i: usize, r: &RawRoute, names: &[&str]) -> Result<Route, ConfigError> {
    let p = format!("routes[{i}].");
    let service = names.iter().position(|n| *n == r.service).ok_or_else(|| {
        invalid(
            format!("{p}service"),
            &r.service,
            format!("one of the services: {}", names.join(", ")),
        )
    })?;
    let host = match &r.host {
        None => HostMatch::Any,
        Some(h) => host(&format!("{p}host"), h)?,
    };
    let path_ok = |key: &str, v: &str| {
        if v.starts_with('/')
            && !v.contains(['?', '#'])
            && v.parse::<http::uri::PathAndQuery>().is_ok()
        {
            Ok(())
        } else {
            Err(invalid(
                format!("{p}{key}"),
                v,
                "a path starting with `/`, without `?` or `#`",
            ))
        }
    };
    let path = match (&r.path_prefix, &r.path) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                format!("{p}path"),
                r.path.as_deref().unwrap_or_default(),
                "either path_prefix or path, not both",
            ))
        }
        (Some(pre), None) => {
            path_ok("path_prefix", pre)?;
            PathMatch::Prefix(pre.clone())
        }
        (None, Some(exact)) => {
            path_ok("path", exact)?;
            PathMatch::Exact(exact.clone())
        }
        (None, None) => PathMatch::Any,
    };
    let rewrite = match (r.strip_prefix, &r.rewrite_prefix) {
        (Some(true), Some(_)) => {
            return Err(invalid(
                format!("{p}rewrite_prefix"),
                r.rewrite_prefix.as_deref().unwrap_or_default(),
                "either strip_prefix or rewrite_prefix, not both",
            ))
        }
        (Some(true), None) => Some(String::new()),
        (_, Some(with)) => {
            path_ok("rewrite_prefix", with)?;
            Some(with.clone())
        }
        _ => None,
    };
    if rewrite.is_some() && !matches!(path, PathMatch::Prefix(_)) {
        return Err(invalid(
            format!(
                "{p}{}",
                if r.rewrite_prefix.is_some() {
                    "rewrite_prefix"
                } else {
                    "strip_prefix"
                }
            ),
            "(set)",
            "a path_prefix to replace",
        ));
    }
    // `/` matches every origin-form path: the same as no condition, unless it is rewritten.
    let path = match path {
        PathMatch::Prefix(pre) if pre == "/" && rewrite.is_none() => PathMatch::Any,
        other => other,
    };
    let methods = match &r.methods {
        None => Vec::new(),
        Some(ms) if ms.is_empty() => {
            return Err(invalid(
                format!("{p}methods"),
                "[]",
                "at least one method, or no `methods` key for any method",
            ))
        }
        Some(ms) => ms
            .iter()
            .enumerate()
            .map(|(j, m)| {
                let ok = !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase());
                ok.then(|| Method::from_bytes(m.as_bytes()).ok())
                    .flatten()
                    .ok_or_else(|| {
                        invalid(
                            format!("{p}methods[{j}]"),
                            m,
                            "a method in upper case, e.g. GET or POST",
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let headers = r
        .headers
        .iter()
        .enumerate()
        .map(|(j, h)| {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| invalid(format!("{p}headers[{j}].name"), &h.name, "a header name"))?;
            let value = match &h.value {
                None => None,
                Some(v) => Some(HeaderValue::from_str(v).map_err(|_| {
                    invalid(
                        format!("{p}headers[{j}].value"),
                        v,
                        "a header value (visible ASCII and spaces)",
                    )
                })?),
            };
            Ok((name, value))
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    Ok(Route {
        key: format!("routes[{i}]"),
        host,
        path,
        methods,
        headers,
        rewrite: rewrite.map(|replace_prefix_with| Rewrite {
            replace_prefix_with,
        }),
        service,
    })
}

/// A `host` condition: `name`, or `*.name` for every name under it.
fn host(key: &str, h: &str) -> Result<HostMatch, ConfigError> {
    let expected = "a host name like api.example.com or *.example.com, without a port";
    let lower = h.trim_end_matches('.').to_ascii_lowercase();
    let (wildcard, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let ip = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok();
    let bare_v6 = name.contains(':') && !name.starts_with('[');
    if name.len() > 253 || bare_v6 || !(ip && !wildcard || name.split('.').all(label_ok)) {
        return Err(invalid(key, h, expected));
    }
    Ok(if wildcard {
        HostMatch::Suffix(format!(".{name}"))
    } else {
        HostMatch::Exact(name.to_string())
    })
}
