//! The admin API (axum), on its own listener bound to loopback by default, since it can remove
//! instances. JSON in and out; see `docs/admin-api.md`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::config::parse_backend;
use crate::pool::{Pool, PoolError};

#[derive(Clone)]
struct Admin {
    pool: Arc<Pool>,
    drain_timeout: Duration,
}

#[derive(Deserialize)]
struct AddBackend {
    address: String,
    weight: Option<i64>,
    /// Serve at once instead of waiting for `rise` passing health checks.
    #[serde(default)]
    start_healthy: bool,
}

#[derive(Deserialize)]
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

pub(crate) fn router(pool: Arc<Pool>, drain_timeout: Duration) -> Router {
    Router::new()
        .route("/backends", get(list).post(add).delete(remove))
        .route("/backends/drain", post(drain))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(Admin {
            pool,
            drain_timeout,
        })
}

async fn list(State(a): State<Admin>) -> Response {
    Json(a.pool.status()).into_response()
}

async fn add(State(a): State<Admin>, Json(body): Json<AddBackend>) -> Response {
    let spec = match parse_backend("backend", &body.address, body.weight) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match a.pool.add(spec, body.start_healthy) {
        Ok(b) => {
            let status = a.pool.status().into_iter().find(|s| s.address == b.address);
            (StatusCode::CREATED, Json(status)).into_response()
        }
        Err(e @ PoolError::Exists(_)) => error(StatusCode::CONFLICT, e),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn remove(State(a): State<Admin>, Query(q): Query<AddressQuery>) -> Response {
    match a.pool.remove(&q.address) {
        Ok(()) => Json(serde_json::json!({ "removed": q.address })).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e),
    }
}

async fn drain(State(a): State<Admin>, Query(q): Query<AddressQuery>) -> Response {
    if !a.pool.status().iter().any(|s| s.address == q.address) {
        return error(StatusCode::NOT_FOUND, PoolError::NotFound(q.address));
    }
    if q.wait {
        match a.pool.drain(&q.address, a.drain_timeout).await {
            Ok(report) => Json(report).into_response(),
            Err(e) => error(StatusCode::NOT_FOUND, e),
        }
    } else {
        let pool = a.pool.clone();
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
        a.pool.metrics.render(),
    )
        .into_response()
}
