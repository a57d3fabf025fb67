//! Routes: which service a request goes to. A pure matcher, compiled once per configuration
//! from the `[[routes]]` table; the request path compares bytes and allocates nothing (a
//! rewriting route allocates the new target).
//!
//! Semantics, documented in `docs/configuration.md`:
//! - routes are tried in order, the first whose every condition holds wins;
//! - `host` is exact (`api.example.com`) or a wildcard (`*.example.com`: one or more labels
//!   before `.example.com`, not `example.com` itself), compared case-insensitively without the
//!   port, against the request target's authority or else its `Host` field;
//! - `path_prefix` matches whole path segments (`/auth` matches `/auth`, `/auth/` and
//!   `/auth/login`, not `/authz`; a prefix ending in `/` matches everything under it), as
//!   Gateway API's `PathPrefix`; `path` is the exact path, query excluded;
//! - `methods` and `headers` (present, or with an exact value) narrow further.

use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// A host condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostMatch {
    /// Any host.
    Any,
    /// This host (lower case, no port, no trailing dot).
    Exact(String),
    /// Any host ending in this suffix, which starts with `.` (`.example.com` for
    /// `*.example.com`), with at least one character before it.
    Suffix(String),
}

/// A path condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// Any path.
    Any,
    /// Whole-segment prefix (see the module's documentation).
    Prefix(String),
    /// Exactly this path.
    Exact(String),
}

/// How a matched route changes the path before forwarding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// What replaces the matched `path_prefix` (`""` strips it).
    pub replace_prefix_with: String,
}

/// One compiled route.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// Where it was configured (`routes[2]`, or `default` for the implicit catch-all).
    pub key: String,
    /// Host condition.
    pub host: HostMatch,
    /// Path condition.
    pub path: PathMatch,
    /// Methods allowed (any when empty).
    pub methods: Vec<Method>,
    /// Header conditions: present, or equal to the value.
    pub headers: Vec<(HeaderName, Option<HeaderValue>)>,
    /// The path rewrite, for a `path_prefix` route.
    pub rewrite: Option<Rewrite>,
    /// Index of the target service in the configuration's services.
    pub service: usize,
}

/// The parts of a request a route looks at.
pub struct RequestView<'a> {
    /// The host, as sent (may have a port, any case).
    pub host: Option<&'a str>,
    /// The path, without the query.
    pub path: &'a str,
    /// The method.
    pub method: &'a Method,
    /// The header fields.
    pub headers: &'a HeaderMap,
}

impl Route {
    /// A route that matches every request.
    pub fn catch_all(key: &str, service: usize) -> Route {
        Route {
            key: key.to_string(),
            host: HostMatch::Any,
            path: PathMatch::Any,
            methods: Vec::new(),
            headers: Vec::new(),
            rewrite: None,
            service,
        }
    }

    /// Whether it matches every request.
    pub fn matches_everything(&self) -> bool {
        self.host == HostMatch::Any
            && matches!(&self.path, PathMatch::Any)
            && self.methods.is_empty()
            && self.headers.is_empty()
    }

    /// Whether the request meets every condition.
    pub fn matches(&self, r: &RequestView<'_>) -> bool {
        self.path_matches(r.path)
            && host_matches(&self.host, r.host)
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == r.method))
            && self.headers.iter().all(|(name, want)| match want {
                None => r.headers.contains_key(name),
                Some(v) => r.headers.get_all(name).iter().any(|got| got == v),
            })
    }

    fn path_matches(&self, path: &str) -> bool {
        match &self.path {
            PathMatch::Any => true,
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => prefix_matches(p, path),
        }
    }

    /// The path and query to forward, when this route rewrites (`None`: unchanged).
    pub fn rewritten(&self, path: &str, query: Option<&str>) -> Option<String> {
        let (Some(rw), PathMatch::Prefix(prefix)) = (&self.rewrite, &self.path) else {
            return None;
        };
        let rest = path.get(prefix.len()..).unwrap_or("");
        let mut out = String::with_capacity(rw.replace_prefix_with.len() + rest.len() + 2);
        out.push_str(&rw.replace_prefix_with);
        if !out.starts_with('/') {
            out.insert(0, '/');
        }
        if out.ends_with('/') && rest.starts_with('/') {
            out.pop();
        } else if !out.ends_with('/') && !rest.is_empty() && !rest.starts_with('/') {
            // A prefix that ended in `/` took the separator with it.
            out.push('/');
        }
        out.push_str(rest);
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        Some(out)
    }
}

/// `prefix` matches whole segments of `path`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if !path.starts_with(prefix) {
        return false;
    }
    prefix.ends_with('/') || path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/'
}

/// The host part of a `Host` value or authority: no port, no trailing dot, IPv6 brackets kept.
fn bare_host(host: &str) -> &str {
    let h = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    h.strip_suffix('.').unwrap_or(h)
}

fn host_matches(m: &HostMatch, host: Option<&str>) -> bool {
    match m {
        HostMatch::Any => true,
        HostMatch::Exact(want) => host.is_some_and(|h| bare_host(h).eq_ignore_ascii_case(want)),
        HostMatch::Suffix(suffix) => host.is_some_and(|h| {
            let h = bare_host(h);
            h.len() > suffix.len()
                && h.is_char_boundary(h.len() - suffix.len())
                && h[h.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        }),
    }
}

/// The ordered routes.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// A table of `routes`, tried in order.
    pub fn new(routes: Vec<Route>) -> RouteTable {
        RouteTable { routes }
    }

    /// The first route the request matches.
    pub fn find(&self, r: &RequestView<'_>) -> Option<&Route> {
        self.routes.iter().find(|route| route.matches(r))
    }

    /// The routes, in order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Routes that can never match because an earlier one matches every request, or the same
    /// requests: (the shadowed route's key, the earlier route's key).
    pub fn shadowed(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, later) in self.routes.iter().enumerate() {
            let earlier = self.routes[..i].iter().find(|e| {
                e.matches_everything()
                    || (e.host == later.host
                        && e.path == later.path
                        && e.methods == later.methods
                        && e.headers == later.headers)
            });
            if let Some(e) = earlier {
                out.push((later.key.clone(), e.key.clone()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(host: Option<&'a str>, path: &'a str, headers: &'a HeaderMap) -> RequestView<'a> {
        RequestView {
            host,
            path,
            method: &Method::GET,
            headers,
        }
    }

    fn route(host: HostMatch, path: PathMatch) -> Route {
        Route {
            host,
            path,
            ..Route::catch_all("r", 0)
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let h = HeaderMap::new();
        let r = route(HostMatch::Any, PathMatch::Prefix("/auth".into()));
        for p in ["/auth", "/auth/", "/auth/login"] {
            assert!(r.matches(&view(None, p, &h)), "{p}");
        }
        for p in ["/authz", "/", "/au", "/other/auth"] {
            assert!(!r.matches(&view(None, p, &h)), "{p}");
        }
        let slash = route(HostMatch::Any, PathMatch::Prefix("/api/".into()));
        assert!(slash.matches(&view(None, "/api/x", &h)));
        assert!(!slash.matches(&view(None, "/api", &h)));
        let root = route(HostMatch::Any, PathMatch::Prefix("/".into()));
        assert!(root.matches(&view(None, "/anything", &h)));
        let exact = route(HostMatch::Any, PathMatch::Exact("/login".into()));
        assert!(exact.matches(&view(None, "/login", &h)));
        assert!(!exact.matches(&view(None, "/login/", &h)));
    }

    #[test]
    fn hosts_ignore_case_port_and_trailing_dot() {
        let h = HeaderMap::new();
        let r = route(HostMatch::Exact("api.example.com".into()), PathMatch::Any);
        for host in [
            "api.example.com",
            "API.Example.com:8080",
            "api.example.com.",
        ] {
            assert!(r.matches(&view(Some(host), "/", &h)), "{host}");
        }
        assert!(!r.matches(&view(Some("www.example.com"), "/", &h)));
        assert!(!r.matches(&view(None, "/", &h)), "no host, no match");
        let w = route(HostMatch::Suffix(".example.com".into()), PathMatch::Any);
        assert!(w.matches(&view(Some("a.b.example.com:80"), "/", &h)));
        assert!(!w.matches(&view(Some("example.com"), "/", &h)));
        assert!(!w.matches(&view(Some("badexample.com"), "/", &h)));
        let v6 = route(HostMatch::Exact("[::1]".into()), PathMatch::Any);
        assert!(v6.matches(&view(Some("[::1]:8080"), "/", &h)));
    }

    #[test]
    fn methods_and_headers_narrow() {
        let mut h = HeaderMap::new();
        h.insert("x-canary", HeaderValue::from_static("1"));
        let mut r = Route::catch_all("r", 0);
        r.headers = vec![(HeaderName::from_static("x-canary"), None)];
        assert!(r.matches(&view(None, "/", &h)));
        r.headers = vec![(
            HeaderName::from_static("x-canary"),
            Some(HeaderValue::from_static("2")),
        )];
        assert!(!r.matches(&view(None, "/", &h)));
        r.headers.clear();
        r.methods = vec![Method::POST];
        assert!(!r.matches(&view(None, "/", &h)));
    }

    #[test]
    fn prefix_rewrites() {
        let rw = |prefix: &str, with: &str, path: &str, q: Option<&str>| {
            Route {
                path: PathMatch::Prefix(prefix.into()),
                rewrite: Some(Rewrite {
                    replace_prefix_with: with.into(),
                }),
                ..Route::catch_all("r", 0)
            }
            .rewritten(path, q)
            .unwrap()
        };
        assert_eq!(rw("/auth", "", "/auth/login", Some("a=1")), "/login?a=1");
        assert_eq!(rw("/auth", "", "/auth", None), "/");
        assert_eq!(rw("/auth", "/v2", "/auth/login", None), "/v2/login");
        assert_eq!(rw("/auth", "/v2/", "/auth/login", None), "/v2/login");
        assert_eq!(rw("/api/", "/", "/api/x", None), "/x");
        assert_eq!(rw("/api/", "/v1", "/api/x", None), "/v1/x");
    }

    #[test]
    fn first_match_wins_and_shadowing_is_found() {
        let h = HeaderMap::new();
        let mut auth = route(HostMatch::Any, PathMatch::Prefix("/auth".into()));
        auth.key = "routes[0]".into();
        let mut all = Route::catch_all("routes[1]", 1);
        all.service = 1;
        let mut late = route(HostMatch::Any, PathMatch::Prefix("/x".into()));
        late.key = "routes[2]".into();
        let t = RouteTable::new(vec![auth, all, late]);
        assert_eq!(t.find(&view(None, "/auth/a", &h)).unwrap().service, 0);
        assert_eq!(t.find(&view(None, "/x", &h)).unwrap().service, 1);
        assert_eq!(
            t.shadowed(),
            vec![("routes[2]".to_string(), "routes[1]".to_string())]
        );
    }
}
