//! gRPC over the proxy's HTTP/2 path (`protocol = "h2c"` or `"h2"`): which requests are
//! calls, the answers the proxy makes itself to a gRPC client (gRPC errors, not HTTP error
//! pages), and the deadline a client states in `grpc-timeout`.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::body::ResponseBody;

/// Whether a request is a gRPC call (`content-type: application/grpc` or `application/grpc+…`).
pub(crate) fn is_call(headers: &http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// An answer the proxy makes itself to a gRPC client: HTTP 200 with the gRPC status in a
/// trailers-only response (gRPC over HTTP/2, "Responses"), the status mapped from HTTP's by
/// gRPC's own table (`doc/http-grpc-status-mapping.md`: 502, 503, 504 and 429 are
/// UNAVAILABLE, 14), and `msg` as `grpc-message`.
pub(crate) fn error(status: StatusCode, msg: &'static str) -> Response<ResponseBody> {
    // https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md
    let code = match status.as_u16() {
        400 => "13",
        401 => "16",
        403 => "7",
        404 => "12",
        429 | 502 | 503 | 504 => "14",
        _ => "2",
    };
    let mut r = Response::new(ResponseBody::Full(Full::new(Bytes::new())));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", HeaderValue::from_static(code));
    if let Ok(m) = HeaderValue::from_str(msg.trim_end()) {
        h.insert("grpc-message", m);
    }
    r
}

/// DEADLINE_EXCEEDED: the answer when the client's own `grpc-timeout` ran out.
pub(crate) fn deadline_exceeded() -> Response<ResponseBody> {
    let mut r = error(
        StatusCode::GATEWAY_TIMEOUT,
        "deadline exceeded at the proxy",
    );
    r.headers_mut()
        .insert("grpc-status", HeaderValue::from_static("4"));
    r
}

/// The deadline a gRPC client states (`grpc-timeout`: at most 8 digits and a unit, `H`,
/// `M`, `S`, `m`, `u` or `n`); `None` when absent or malformed.
pub(crate) fn timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let v = headers.get("grpc-timeout")?.as_bytes();
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b"H" => Duration::from_secs(n * 3600),
        b"M" => Duration::from_secs(n * 60),
        b"S" => Duration::from_secs(n),
        b"m" => Duration::from_millis(n),
        b"u" => Duration::from_micros(n),
        b"n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// gRPC's status codes by name (`doc/statuscodes.md`), OK (0) left out: it is never retried.
const CODES: [(&str, u8); 16] = [
    ("cancelled", 1),
    ("unknown", 2),
    ("invalid-argument", 3),
    ("deadline-exceeded", 4),
    ("not-found", 5),
    ("already-exists", 6),
    ("permission-denied", 7),
    ("resource-exhausted", 8),
    ("failed-precondition", 9),
    ("aborted", 10),
    ("out-of-range", 11),
    ("unimplemented", 12),
    ("internal", 13),
    ("unavailable", 14),
    ("data-loss", 15),
    ("unauthenticated", 16),
];

/// A status code by its name, in any case, with `-` or `_` between words
/// (`unavailable`, `RESOURCE_EXHAUSTED`, `resource-exhausted`).
pub(crate) fn code_of(name: &str) -> Option<u8> {
    let name = name.to_ascii_lowercase().replace('_', "-");
    CODES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

/// Whether `m` names methods: `*`, `/pkg.Service/*` or `/pkg.Service/Method`.
pub(crate) fn is_method_pattern(m: &str) -> bool {
    if m == "*" {
        return true;
    }
    let Some((service, method)) = m.strip_prefix('/').and_then(|r| r.split_once('/')) else {
        return false;
    };
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    };
    word(service) && (method == "*" || word(method))
}

/// Whether the call to `path` is one of `patterns` ([`is_method_pattern`]).
pub(crate) fn method_matches(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|p| {
        p == "*"
            || p == path
            || p.strip_suffix('*').is_some_and(|prefix| {
                path.starts_with(prefix) && !path[prefix.len()..].contains('/')
            })
    })
}

/// The status of a trailers-only answer (`grpc-status` in the head), if it is one.
pub(crate) fn trailers_only_status(headers: &http::HeaderMap) -> Option<u8> {
    std::str::from_utf8(headers.get("grpc-status")?.as_bytes())
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &'static str, value: &'static str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn timeouts_parse_as_the_grpc_spec_writes_them() {
        let t = |v| timeout(&with("grpc-timeout", v));
        assert_eq!(t("100m"), Some(Duration::from_millis(100)));
        assert_eq!(t("2S"), Some(Duration::from_secs(2)));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for bad in ["", "m", "100", "123456789m", "1.5S", "10x", "-1S"] {
            assert_eq!(t(bad), None, "{bad:?}");
        }
        assert_eq!(timeout(&http::HeaderMap::new()), None);
    }

    #[test]
    fn status_names_and_method_patterns() {
        assert_eq!(code_of("unavailable"), Some(14));
        assert_eq!(code_of("RESOURCE_EXHAUSTED"), Some(8));
        assert_eq!(code_of("resource-exhausted"), Some(8));
        assert_eq!(code_of("ok"), None);
        assert_eq!(code_of("14"), None);
        for good in ["*", "/a.B/C", "/grpc.health.v1.Health/*"] {
            assert!(is_method_pattern(good), "{good}");
        }
        for bad in ["", "a.B/C", "/a.B", "/a.B/", "//C", "/a B/C", "/a.B/C/D"] {
            assert!(!is_method_pattern(bad), "{bad}");
        }
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let health = p(&["/grpc.health.v1.Health/Check"]);
        assert!(method_matches(&health, "/grpc.health.v1.Health/Check"));
        assert!(!method_matches(&health, "/grpc.health.v1.Health/Watch"));
        let all = p(&["/grpc.health.v1.Health/*"]);
        assert!(method_matches(&all, "/grpc.health.v1.Health/Watch"));
        assert!(!method_matches(&all, "/grpc.health.v1.HealthX/Watch"));
        assert!(!method_matches(&all, "/grpc.health.v1.Health/a/b"));
        assert!(method_matches(&p(&["*"]), "/x.Y/Z"));
        assert_eq!(trailers_only_status(&with("grpc-status", "14")), Some(14));
        assert_eq!(trailers_only_status(&http::HeaderMap::new()), None);
    }

    #[test]
    fn calls_and_their_errors() {
        assert!(is_call(&with("content-type", "application/grpc")));
        assert!(is_call(&with("content-type", "application/grpc+proto")));
        assert!(!is_call(&with("content-type", "application/json")));
        let r = error(StatusCode::SERVICE_UNAVAILABLE, "no healthy instance\n");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["grpc-status"], "14");
        assert_eq!(r.headers()["grpc-message"], "no healthy instance");
        assert_eq!(deadline_exceeded().headers()["grpc-status"], "4");
    }
}
