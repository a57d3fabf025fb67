//! Header rewriting between client and instance (RFC 9110 §7.6.1): hop-by-hop headers are
//! connection-specific and must not be forwarded, and the instance is told who the client was.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION};

/// Headers that apply to one connection only (RFC 9110 §7.6.1, plus the non-standard
/// `keep-alive` and `proxy-connection` that clients still send).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// `X-Forwarded-For`
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Removes hop-by-hop headers, including any that `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|s| s.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for n in named {
            headers.remove(n);
        }
    }
    for n in HOP_BY_HOP {
        headers.remove(n);
    }
}

/// Appends the client's address to `X-Forwarded-For` and sets `X-Forwarded-Proto`.
pub fn add_forwarded(headers: &mut HeaderMap, client: IpAddr) {
    let ip = client.to_string();
    let prior: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let value = if prior.is_empty() {
        ip
    } else {
        format!("{}, {ip}", prior.join(", "))
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_standard_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn appends_to_an_existing_forwarded_for() {
        let mut h = HeaderMap::new();
        add_forwarded(&mut h, "10.0.0.1".parse().unwrap());
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1");
        add_forwarded(&mut h, "::1".parse().unwrap());
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1, ::1");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
    }
}
