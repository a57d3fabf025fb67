//! The admin API (axum), on its own listener bound to loopback by default, since it can remove
//! instances. JSON in and out, errors included; see `docs/admin-api.md`.
//!
//! [`guard`] stands in front of every route, the control loop's included: with a token
//! configured, everything but `/healthz`, `/metrics` and the dashboard's static assets
//! ([`crate::ui`]) needs `Authorization: Bearer TOKEN`;
//! token or not, a change (any method but GET and HEAD) must come with `Content-Type:
//! application/json` or an `X-Foresight-Admin` header and without a foreign `Origin`, which a
//! cross-site form or `fetch` cannot do without a CORS preflight this API never grants.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequestParts, Query, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::config::{parse_backend, AdminToken};
use crate::pool::{Pool, PoolError};
use crate::reload::Live;

#[derive(Clone)]
struct Admin {
    /// Every service's pool, in the configuration's order (a reload replaces the list).
    pools: Arc<ArcSwap<Vec<Arc<Pool>>>>,
    drain_timeout: Duration,
}

/// The pool a request addresses: `/services/{name}/…` names it; the short paths (`/backends`)
/// address the only service, and are refused with several.
struct Service(Arc<Pool>);

impl FromRequestParts<Admin> for Service {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, a: &Admin) -> Result<Service, Response> {
        let params = RawPathParams::from_request_parts(parts, a)
            .await
            .map_err(|e| error(StatusCode::BAD_REQUEST, e.body_text()))?;
        let named = params.iter().find(|(k, _)| *k == "name").map(|(_, v)| v);
        let all = a.pools.load();
        match (named, all.as_slice()) {
            (None, [only]) => Ok(Service(only.clone())),
            (None, _) => Err(error(
                StatusCode::NOT_FOUND,
                format!(
                    "there are several services ({}): use /services/NAME/backends",
                    names(&all)
                ),
            )),
            (Some(name), pools) => pools
                .iter()
                .find(|p| p.service() == name)
                .map(|p| Service(p.clone()))
                .ok_or_else(|| {
                    error(
                        StatusCode::NOT_FOUND,
                        format!("no service `{name}`; the services are {}", names(&all)),
                    )
                }),
        }
    }
}

fn names(pools: &[Arc<Pool>]) -> String {
    pools
        .iter()
        .map(|p| p.service())
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBackend {
    address: String,
    weight: Option<i64>,
    /// Serve at once instead of waiting for `rise` passing health checks.
    #[serde(default)]
    start_healthy: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressQuery {
    address: String,
    #[serde(default)]
    wait: bool,
}

fn error(status: StatusCode, message: impl ToString) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": message.to_string() })),
    )
        .into_response()
}

/// The header that marks a change as meant (instead of `Content-Type: application/json`).
const ADMIN_HEADER: &str = "x-foresight-admin";

/// Checks every admin request (see the module's documentation) before its route runs.
pub(crate) async fn guard(
    State(token): State<Option<Arc<AdminToken>>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    let open = matches!(path, "/healthz" | "/metrics") || crate::ui::PATHS.contains(&path);
    if let (Some(token), false) = (&token, open) {
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        if !bearer.is_some_and(|b| token.matches(b)) {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "this admin API needs `Authorization: Bearer TOKEN`",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        if let Some(why) = refuse_change(req.headers()) {
            return error(why.0, why.1);
        }
    }
    next.run(req).await
}

/// Why a change request is refused, if it is: a foreign `Origin`, or neither a JSON content
/// type nor the admin header.
fn refuse_change(headers: &HeaderMap) -> Option<(StatusCode, &'static str)> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).map(|h| h.as_bytes());
        let origin_host = origin
            .as_bytes()
            .strip_prefix(b"http://")
            .or_else(|| origin.as_bytes().strip_prefix(b"https://"));
        if origin_host.is_none() || origin_host != host {
            return Some((
                StatusCode::FORBIDDEN,
                "cross-origin change refused: the Origin is not this admin API",
            ));
        }
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json && !headers.contains_key(ADMIN_HEADER) {
        return Some((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a change needs `Content-Type: application/json` or an `X-Foresight-Admin: 1` header",
        ));
    }
    None
}

/// The admin router around `routes` (the pool's and any extra ones): unknown paths and methods
/// answered in JSON, every request through [`guard`].
pub(crate) fn finish(routes: Router, token: Option<AdminToken>) -> Router {
    routes
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such admin endpoint") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this admin endpoint",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            token.map(Arc::new),
            guard,
        ))
}

/// A JSON body or query that did not parse, as the API's JSON error.
fn rejected(e: impl std::fmt::Display) -> Response {
    error(StatusCode::BAD_REQUEST, e)
}

pub(crate) fn router(pools: Arc<ArcSwap<Vec<Arc<Pool>>>>, drain_timeout: Duration) -> Router {
    Router::new()
        .route("/ui", get(crate::ui::index))
        .route("/ui/app.js", get(crate::ui::script))
        .route("/ui/app.css", get(crate::ui::style))
        .route("/backends", get(list).post(add).delete(remove))
        .route("/backends/drain", post(drain))
        .route("/services", get(services))
        .route(
            "/services/{name}/backends",
            get(list).post(add).delete(remove),
        )
        .route("/services/{name}/backends/drain", post(drain))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(Admin {
            pools,
            drain_timeout,
        })
}

/// `POST /reload`: the configuration read again and swapped in; 200 with what changed, or
/// 400 with the error that refused it (the running configuration stays).
pub(crate) fn reload_routes(live: Arc<Live>) -> Router {
    Router::new()
        .route(
            "/reload",
            post(|State(live): State<Arc<Live>>| async move {
                match live.reload().await {
                    Ok(report) => {
                        tracing::info!(services = report.services.len(), routes = report.routes, restart_needed = ?report.restart_needed, "configuration reloaded (POST /reload)");
                        Json(report).into_response()
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "configuration refused; the running one stays");
                        error(StatusCode::BAD_REQUEST, e)
                    }
                }
            }),
        )
        .with_state(live)
}

/// Every service with its instance counts.
async fn services(State(a): State<Admin>) -> Response {
    let list: Vec<serde_json::Value> = a
        .pools
        .load()
        .iter()
        .map(|p| {
            let st = p.status();
            serde_json::json!({
                "name": p.service(),
                "backends": st.len(),
                "eligible": p.snapshot().backends.len(),
            })
        })
        .collect();
    Json(list).into_response()
}

async fn list(Service(pool): Service) -> Response {
    Json(pool.status()).into_response()
}

async fn add(Service(pool): Service, body: Result<Json<AddBackend>, JsonRejection>) -> Response {
    let body = match body {
        Ok(Json(b)) => b,
        Err(e) => return rejected(e.body_text()),
    };
    let spec = match parse_backend("backend", &body.address, body.weight) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match pool.add(spec, body.start_healthy) {
        Ok(b) => {
            let status = pool.status().into_iter().find(|s| s.address == b.address);
            (StatusCode::CREATED, Json(status)).into_response()
        }
        Err(PoolError::Exists(member)) => error(
            StatusCode::CONFLICT,
            format!("{} is the same instance as member {member}", body.address),
        ),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn remove(
    Service(pool): Service,
    q: Result<Query<AddressQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return rejected(e.body_text()),
    };
    match pool.remove(&q.address) {
        Ok(()) => Json(serde_json::json!({ "removed": q.address })).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e),
    }
}

async fn drain(
    State(a): State<Admin>,
    Service(pool): Service,
    q: Result<Query<AddressQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return rejected(e.body_text()),
    };
    if pool.find(&q.address).is_none() {
        return error(StatusCode::NOT_FOUND, PoolError::NotFound(q.address));
    }
    if q.wait {
        match pool.drain(&q.address, a.drain_timeout).await {
            Ok(report) => Json(report).into_response(),
            Err(e) => error(StatusCode::NOT_FOUND, e),
        }
    } else {
        let address = q.address.clone();
        tokio::spawn(async move {
            let _ = pool.drain(&address, a.drain_timeout).await;
        });
        (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "draining": q.address })),
        )
            .into_response()
    }
}

async fn metrics(State(a): State<Admin>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        a.pools.load()[0].render_metrics(),
    )
        .into_response()
}
