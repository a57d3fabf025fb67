//! The listener's entry: refuses what no service may see, finds the request's route, rewrites
//! its path if the route says so, and hands it to that service's forwarder.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use foresight_http::Peer;
use http::header::HOST;
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use tokio_util::either::Either;

use crate::access_log::{AccessLog, Entry, Pending};
use crate::body::{Logged, ResponseBody};
use crate::config::ProxyConfig;
use crate::forward::{refuse_target, reply, Forwarder};
use crate::metrics::ProxyMetrics;
use crate::path::{PathError, PathPolicy};
use crate::route::{RequestView, RouteTable};

/// Routes and the forwarder of each service (same order as the configuration's services).
pub(crate) struct Dispatch {
    pub routes: RouteTable,
    /// How paths are normalised before the routes see them.
    pub paths: PathPolicy,
    pub forwarders: Vec<Arc<Forwarder>>,
    /// The services' names, for the access log.
    pub names: Vec<Arc<str>>,
    /// `-`, the service of a request that no route took (shared: no allocation per line).
    unrouted: Arc<str>,
    pub metrics: Arc<ProxyMetrics>,
    pub log: Option<Arc<AccessLog>>,
    /// `limits.max_request_head`: hyper refuses a head that outgrows its read buffer before
    /// it ends, but accepts one that arrived whole in a read; this bound holds either way.
    max_head: usize,
}

/// The response future of a request, logged or not.
type Handled<F> = Either<Either<Ready<Response<ResponseBody>>, Switching>, Either<F, LogOnHead<F>>>;

/// A request to switch protocols on its way (boxed: rare, and the per-request future keeps
/// its size).
type Switching = Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>>;

impl Dispatch {
    /// Routes for `config` onto `forwarders` (one per service, in its order).
    pub fn new(
        config: &ProxyConfig,
        forwarders: Vec<Arc<Forwarder>>,
        metrics: Arc<ProxyMetrics>,
        log: Option<Arc<AccessLog>>,
    ) -> Dispatch {
        Dispatch {
            forwarders,
            names: config
                .services
                .iter()
                .map(|s| Arc::from(s.name.as_str()))
                .collect(),
            unrouted: Arc::from("-"),
            routes: config.routes.clone(),
            paths: config.paths,
            metrics,
            log,
            max_head: config.limits.max_request_head,
        }
    }

    /// The response future for `req`: at once for a refused or unrouted request, else the
    /// service forwarder's (not wrapped, so that the per-request future stays its size).
    pub fn handle(
        &self,
        req: Request<Incoming>,
        peer: Peer,
    ) -> Handled<impl Future<Output = Response<ResponseBody>>> {
        let (mut parts, body) = req.into_parts();
        let mut pending = self
            .log
            .as_ref()
            .filter(|l| l.sampled())
            .map(|log| Pending {
                log: log.clone(),
                entry: Entry {
                    arrived: Instant::now(),
                    client: peer.addr,
                    method: parts.method.clone(),
                    target: parts.uri.path_and_query().cloned(),
                    version: version(parts.version),
                    service: self.unrouted.clone(),
                    status: 0,
                    bytes: 0,
                    head: Default::default(),
                    duration: Default::default(),
                    instance: None,
                    grpc_status: None,
                    grpc_message: None,
                },
            });
        let answer = |r: Response<ResponseBody>, p: Option<Pending>| {
            Either::Left(Either::Left(ready(match p {
                Some(p) => logged(r, p),
                None => r,
            })))
        };
        if let Some(refused) = refuse_target(&parts) {
            return answer(refused, pending);
        }
        if head_size(&parts) > self.max_head {
            let mut r = reply(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request head too large\n",
            );
            if parts.version < http::Version::HTTP_2 {
                r.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            return answer(r, pending);
        }
        match self.paths.apply(parts.uri.path()) {
            Ok(None) => {}
            Ok(Some(path)) => match with_path(&parts.uri, &path) {
                Some(u) => parts.uri = u,
                None => return answer(bad_path(PathError::BadEscape), pending),
            },
            Err(e) => return answer(bad_path(e), pending),
        }
        let host = parts
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| parts.headers.get(HOST).and_then(|v| v.to_str().ok()));
        let view = RequestView {
            host,
            path: parts.uri.path(),
            method: &parts.method,
            headers: &parts.headers,
        };
        let Some(route) = self.routes.find(&view) else {
            self.metrics.no_route.inc();
            let r = reply(StatusCode::NOT_FOUND, "no route matches this request\n");
            return answer(r, pending);
        };
        if let Some(p) = pending.as_mut() {
            p.entry.service = self.names[route.service].clone();
        }
        if let Some(target) = route.rewritten(parts.uri.path(), parts.uri.query()) {
            let mut uri = std::mem::take(&mut parts.uri).into_parts();
            match target.parse::<PathAndQuery>() {
                Ok(pq) => uri.path_and_query = Some(pq),
                Err(_) => return answer(bad_rewrite(), pending),
            }
            match Uri::from_parts(uri) {
                Ok(u) => parts.uri = u,
                Err(_) => return answer(bad_rewrite(), pending),
            }
        }
        let forwarder = self.forwarders[route.service].clone();
        let mut req = Request::from_parts(parts, body);
        // Handshakes and HTTP/2 services take their own (boxed) paths.
        let up = crate::tunnel::wanted(&mut req);
        if up.is_some() || forwarder.h2 {
            let fut: Switching = match up {
                Some(up) => Box::pin(forwarder.handle_switch(req, up, peer)),
                None => Box::pin(forwarder.handle_h2(req, peer)),
            };
            return Either::Left(Either::Right(Box::pin(async move {
                let r = fut.await;
                match pending {
                    Some(p) => logged(r, p),
                    None => r,
                }
            })));
        }
        let fut = forwarder.handle(req, peer);
        Either::Right(match pending {
            None => Either::Left(fut),
            Some(p) => Either::Right(LogOnHead {
                fut,
                pending: Some(p),
            }),
        })
    }
}

/// The bytes of a request head as HTTP/1.1 writes it: request line, fields, blank line.
fn head_size(parts: &http::request::Parts) -> usize {
    let u = &parts.uri;
    let target = u.scheme_str().map_or(0, |s| s.len() + 3)
        + u.authority().map_or(0, |a| a.as_str().len())
        + u.path_and_query().map_or(1, |pq| pq.as_str().len());
    let line = parts.method.as_str().len() + 1 + target + 1 + 8 + 2;
    let fields: usize = parts
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + 2 + v.len() + 2)
        .sum();
    line + fields + 2
}

/// `uri` with its path replaced (the query kept).
fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let target = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(target.parse::<PathAndQuery>().ok()?);
    Uri::from_parts(parts).ok()
}

fn bad_path(e: PathError) -> Response<ResponseBody> {
    reply(StatusCode::BAD_REQUEST, e.message())
}

fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// `r` with its head noted in the entry and its body counted to the end of the line.
fn logged(r: Response<ResponseBody>, mut p: Pending) -> Response<ResponseBody> {
    p.entry.status = r.status().as_u16();
    p.entry.head = p.entry.arrived.elapsed();
    // A trailers-only gRPC answer (the proxy's own errors among them) has its status here.
    p.entry.grpc(r.headers());
    let (parts, body) = r.into_parts();
    if let ResponseBody::Upstream(t) = &body {
        p.entry.instance = Some(t.upstream.log_name.clone());
    }
    Response::from_parts(
        parts,
        ResponseBody::Logged(Box::new(Logged {
            inner: body,
            pending: Some(p),
            bytes: 0,
        })),
    )
}

pin_project_lite::pin_project! {
    /// A forwarded request whose response is logged: notes the head when it comes, and logs
    /// status 499 (NGINX's "client closed request") if the client goes away before it.
    pub(crate) struct LogOnHead<F> {
        #[pin]
        fut: F,
        pending: Option<Pending>,
    }

    impl<F> PinnedDrop for LogOnHead<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(mut p) = this.project().pending.take() {
                p.entry.status = 499;
                p.entry.head = p.entry.arrived.elapsed();
                p.finish(0);
            }
        }
    }
}

impl<F: Future<Output = Response<ResponseBody>>> Future for LogOnHead<F> {
    type Output = Response<ResponseBody>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let r = std::task::ready!(this.fut.poll(cx));
        Poll::Ready(match this.pending.take() {
            Some(p) => logged(r, p),
            None => r,
        })
    }
}

fn bad_rewrite() -> Response<ResponseBody> {
    reply(
        StatusCode::BAD_REQUEST,
        "the route's rewrite of this path is not a valid target\n",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The measure is the head's bytes as written on the wire, in origin and absolute form.
    #[test]
    fn the_head_is_measured_as_written() {
        for (target, wire_target) in [
            ("/a/b?c=d", "/a/b?c=d"),
            ("http://x.test:8080/p", "http://x.test:8080/p"),
        ] {
            let (parts, ()) = Request::get(target)
                .header("host", "x.test")
                .header("x-big", "v".repeat(70_000))
                .body(())
                .unwrap()
                .into_parts();
            let wire = format!(
                "GET {wire_target} HTTP/1.1\r\nhost: x.test\r\nx-big: {}\r\n\r\n",
                "v".repeat(70_000)
            );
            assert_eq!(head_size(&parts), wire.len(), "{target}");
        }
    }
}
