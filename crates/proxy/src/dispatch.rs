//! The listener's entry: refuses what no service may see, finds the request's route, rewrites
//! its path if the route says so, and hands it to that service's forwarder.

use std::future::{ready, Future, Ready};
use std::sync::Arc;

use foresight_http::Peer;
use http::header::HOST;
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use tokio_util::either::Either;

use crate::body::ResponseBody;
use crate::forward::{refuse_target, reply, Forwarder};
use crate::metrics::ProxyMetrics;
use crate::route::{RequestView, RouteTable};

/// Routes and the forwarder of each service (same order as the configuration's services).
pub(crate) struct Dispatch {
    pub routes: RouteTable,
    pub forwarders: Vec<Arc<Forwarder>>,
    pub metrics: Arc<ProxyMetrics>,
}

impl Dispatch {
    /// The response future for `req`: at once for a refused or unrouted request, else the
    /// service forwarder's (not wrapped, so that the per-request future stays its size).
    pub fn handle(
        &self,
        req: Request<Incoming>,
        peer: Peer,
    ) -> Either<Ready<Response<ResponseBody>>, impl Future<Output = Response<ResponseBody>>> {
        let (mut parts, body) = req.into_parts();
        if let Some(refused) = refuse_target(&parts) {
            return Either::Left(ready(refused));
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
            return Either::Left(ready(reply(
                StatusCode::NOT_FOUND,
                "no route matches this request\n",
            )));
        };
        if let Some(target) = route.rewritten(parts.uri.path(), parts.uri.query()) {
            let mut uri = std::mem::take(&mut parts.uri).into_parts();
            match target.parse::<PathAndQuery>() {
                Ok(pq) => uri.path_and_query = Some(pq),
                Err(_) => return Either::Left(ready(bad_rewrite())),
            }
            match Uri::from_parts(uri) {
                Ok(u) => parts.uri = u,
                Err(_) => return Either::Left(ready(bad_rewrite())),
            }
        }
        let forwarder = self.forwarders[route.service].clone();
        Either::Right(forwarder.handle(Request::from_parts(parts, body), peer))
    }
}

fn bad_rewrite() -> Response<ResponseBody> {
    reply(
        StatusCode::BAD_REQUEST,
        "the route's rewrite of this path is not a valid target\n",
    )
}
