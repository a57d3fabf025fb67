//! Header rewriting between client and instance (RFC 9110 §7.6.1): hop-by-hop headers are
//! connection-specific and must not be forwarded, and the instance is told who the client was.

use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE,
    TRAILER, TRANSFER_ENCODING, UPGRADE,
};

/// Headers that apply to one connection only (RFC 9110 §7.6.1, plus the non-standard
/// `keep-alive` and `proxy-connection` that clients still send). Typed names, not strings:
/// removing by `&str` parses the name on every call, which profiles showed as a tenth of the
/// proxy's user-space instructions. A `static`, not a `const`: a const array is built and
/// dropped again at every use.
static HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// The position of `name` in [`HOP_BY_HOP`]: a match on the name's text (a length switch and
/// one compare), cheaper than comparing against each of the nine in turn.
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    Some(match name.as_str() {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-authenticate" => 2,
        "proxy-authorization" => 3,
        "proxy-connection" => 4,
        "te" => 5,
        "trailer" => 6,
        "transfer-encoding" => 7,
        "upgrade" => 8,
        _ => return None,
    })
}

/// `X-Forwarded-For`
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Removes hop-by-hop headers, including any that `Connection` names.
///
/// Requests usually carry a handful of headers and none or one of these nine, so one pass over
/// the present names is cheaper than nine removals that each hash a name.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the present names marks which of the nine occur (comparing standard
    // names is an integer compare); only those are removed, each removal hashing its name.
    let mut present = 0u16;
    for k in headers.keys() {
        if let Some(i) = hop_by_hop_index(k) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 && !connection_names_only_itself(headers) {
        // `Connection` (index 0) may name more headers to drop. Its usual values,
        // `keep-alive` and `close`, name none beyond the nine.
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|t| !t.eq_ignore_ascii_case("keep-alive") && !t.eq_ignore_ascii_case("close"))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            // Host is end-to-end whatever a client says (RFC 9112 §3.2): the instance needs it.
            .filter(|n| *n != http::header::HOST)
            .collect();
        for n in named {
            headers.remove(n);
        }
    }
    for (i, n) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(n);
        }
    }
}

/// Whether `Connection` is one value, `keep-alive` or `close` (nearly every response of a
/// kept-alive instance): then it names no other header, and its list need not be parsed.
fn connection_names_only_itself(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(CONNECTION).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => {
            let v = v.as_bytes();
            v.eq_ignore_ascii_case(b"keep-alive") || v.eq_ignore_ascii_case(b"close")
        }
        _ => false,
    }
}

/// Appends the client's address (`client_ip`, already a header value) to `X-Forwarded-For` and
/// sets `X-Forwarded-Proto`.
pub fn add_forwarded(headers: &mut HeaderMap, client_ip: &HeaderValue) {
    let value = if headers.contains_key(&X_FORWARDED_FOR) {
        let prior: Vec<&str> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let ip = client_ip.to_str().unwrap_or("unknown");
        HeaderValue::from_str(&format!("{}, {ip}", prior.join(", ")))
            .unwrap_or_else(|_| client_ip.clone())
    } else {
        client_ip.clone()
    };
    headers.insert(X_FORWARDED_FOR, value);
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
        // Only a header named by Connection, without any standard hop-by-hop header beside it,
        // is impossible (Connection itself is one), so the fast path cannot miss it.
        let mut h = HeaderMap::new();
        h.insert("te", HeaderValue::from_static("trailers"));
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn connection_lists_are_parsed_unless_a_lone_keep_alive_or_close() {
        let strip = |values: &[&'static str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(CONNECTION, HeaderValue::from_static(v));
            }
            h.insert("x-secret", HeaderValue::from_static("1"));
            h.insert("x-kept", HeaderValue::from_static("1"));
            strip_hop_by_hop(&mut h);
            h
        };
        for lone in ["keep-alive", "Keep-Alive", "close"] {
            let h = strip(&[lone]);
            assert!(!h.contains_key(CONNECTION), "{lone}");
            assert_eq!(h.len(), 2, "{lone}: nothing else named");
        }
        // Two Connection lines, or a list: every name in them goes.
        for values in [
            &["keep-alive", "x-secret"][..],
            &["close,x-secret"],
            &["X-Secret"],
        ] {
            let h = strip(values);
            assert!(!h.contains_key("x-secret"), "{values:?}");
            assert!(h.contains_key("x-kept") && h.len() == 1, "{values:?}");
        }
    }

    #[test]
    fn index_matches_the_table() {
        for (i, n) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(n), Some(i), "{n}");
        }
        assert_eq!(hop_by_hop_index(&http::header::HOST), None);
    }

    #[test]
    fn appends_to_an_existing_forwarded_for() {
        let mut h = HeaderMap::new();
        add_forwarded(&mut h, &HeaderValue::from_static("10.0.0.1"));
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1");
        add_forwarded(&mut h, &HeaderValue::from_static("::1"));
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1, ::1");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
    }
}
