//! The control loops' admin routes: `GET /control`, `GET /services/{name}/control`, their
//! recent past (`GET /control/history?since=T`, per service too) for the dashboard, and
//! Alertmanager's webhook, `POST /alerts`.

use std::sync::{Arc, Mutex};

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::alerts::{self, Alerts};
use crate::{Handle, History, Status};

/// A loop's status and history, for `/control/history`.
type Recorded = (Arc<Mutex<Status>>, Arc<Mutex<History>>);

/// A loop's status and alerts, for the webhook.
type Receiver = (Arc<Mutex<Status>>, Arc<Alerts>);

/// The admin routes of running loops: `GET /services/{name}/control` for each,
/// `GET /control` (the one loop's status, or with several `{"services": [status, …]}`), and
/// `POST /alerts`, Alertmanager's webhook (see [`alerts`]).
pub fn routes(handles: &[&Handle]) -> Router {
    let all: Vec<Arc<Mutex<Status>>> = handles.iter().map(|h| h.status.clone()).collect();
    let receivers: Arc<Vec<Receiver>> = Arc::new(
        handles
            .iter()
            .map(|h| (h.status.clone(), h.alerts.clone()))
            .collect(),
    );
    let read = |s: &Arc<Mutex<Status>>| s.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut router = Router::new().route(
        "/control",
        get(move || {
            let body = match all.as_slice() {
                [one] => serde_json::to_value(read(one)),
                several => serde_json::to_value(serde_json::json!({
                    "services": several.iter().map(read).collect::<Vec<_>>()
                })),
            }
            .unwrap_or_default();
            async move { Json(body) }
        }),
    );
    router = router.route(
        "/alerts",
        axum::routing::post(
            move |body: Result<Json<alerts::Webhook>, axum::extract::rejection::JsonRejection>| {
                let receivers = receivers.clone();
                async move {
                    match body {
                        Ok(Json(w)) => Ok(Json(receive(&receivers, &w))),
                        // A body past the limit is 413 with `Connection: close` (the rest of
                        // the body is not read, so the connection cannot carry another request:
                        // a client that pooled it would send its next request into a closing
                        // socket); anything else that is not the webhook's JSON, 400.
                        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err((
                            e.status(),
                            [(header::CONNECTION, "close")],
                            Json(serde_json::json!({ "error": e.body_text() })),
                        )
                            .into_response()),
                        Err(e) => Err((
                            StatusCode::BAD_REQUEST,
                            Json(serde_json::json!({ "error": e.body_text() })),
                        )
                            .into_response()),
                    }
                }
            },
        ),
    );
    let histories: Vec<Recorded> = handles
        .iter()
        .map(|h| (h.status.clone(), h.history.clone()))
        .collect();
    let all_histories = histories.clone();
    router = router.route(
        "/control/history",
        get(move |q: Result<Query<Since>, QueryRejection>| {
            let body = match q {
                Ok(Query(q)) => Ok(Json(match all_histories.as_slice() {
                    [one] => history_json(one, q.since),
                    several => serde_json::json!({
                        "services": several.iter().map(|h| history_json(h, q.since)).collect::<Vec<_>>()
                    }),
                })),
                Err(e) => Err(bad_query(e)),
            };
            async move { body }
        }),
    );
    for (h, one) in handles.iter().zip(histories) {
        let name = read(&h.status).service;
        router = router.route(
            &format!("/services/{name}/control/history"),
            get(move |q: Result<Query<Since>, QueryRejection>| {
                let body = match q {
                    Ok(Query(q)) => Ok(Json(history_json(&one, q.since))),
                    Err(e) => Err(bad_query(e)),
                };
                async move { body }
            }),
        );
    }
    for h in handles {
        let s = h.status.clone();
        let name = read(&s).service;
        router = router.route(
            &format!("/services/{name}/control"),
            get(move || {
                let body = read(&s);
                async move { Json(body) }
            }),
        );
    }
    router
}

/// `?since=T`: only the points after T (seconds since the Unix epoch).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Since {
    since: Option<f64>,
}

/// A loop's history: its service, what it plans for, and its points after `since`.
fn history_json((status, history): &Recorded, since: Option<f64>) -> serde_json::Value {
    let (service, quantile, per_instance_rps) = {
        let s = status.lock().unwrap_or_else(|p| p.into_inner());
        (s.service.clone(), s.planned_quantile, s.per_instance_rps)
    };
    let points = history
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .since(since.filter(|s| s.is_finite()));
    serde_json::json!({
        "service": service,
        "planned_quantile": quantile,
        "per_instance_rps": per_instance_rps,
        "points": points,
    })
}

fn bad_query(e: QueryRejection) -> (axum::http::StatusCode, Json<serde_json::Value>) {
    (
        axum::http::StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": e.body_text() })),
    )
}

/// Hands each alert of a webhook to its service's loop; what was applied and what ignored.
fn receive(
    receivers: &[(Arc<Mutex<Status>>, Arc<Alerts>)],
    w: &alerts::Webhook,
) -> serde_json::Value {
    let (mut applied, mut ignored) = (Vec::new(), Vec::new());
    for a in &w.alerts {
        let mut skip = |reason: String| {
            tracing::warn!(alert = a.name(), %reason, "alert ignored");
            ignored.push(serde_json::json!({ "alert": a.name(), "reason": reason }));
        };
        if !a.scales_up() {
            skip(format!(
                "no label {}=\"{}\"",
                alerts::ACTION_LABEL,
                alerts::SCALE_UP
            ));
            continue;
        }
        let named = a.labels.get(alerts::SERVICE_LABEL);
        let target = match (named, receivers) {
            (Some(n), _) => receivers
                .iter()
                .find(|(s, _)| *n == s.lock().unwrap_or_else(|p| p.into_inner()).service),
            (None, [one]) => Some(one),
            (None, _) => None,
        };
        let Some((status, alerts)) = target else {
            skip(match named {
                Some(n) => format!("no control loop for service `{n}`"),
                None => "no `service` label, and there are several control loops".into(),
            });
            continue;
        };
        let (service, desired) = {
            let s = status.lock().unwrap_or_else(|p| p.into_inner());
            (s.service.clone(), s.desired)
        };
        match alerts.apply(a, desired) {
            Ok(done) => {
                tracing::info!(alert = a.name(), %service, status = %a.status, %done, "alert");
                applied.push(serde_json::json!({
                    "alert": a.name(), "service": service, "status": a.status, "result": done
                }));
            }
            Err(reason) => skip(reason),
        }
    }
    serde_json::json!({ "applied": applied, "ignored": ignored })
}
