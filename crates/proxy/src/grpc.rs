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
