//! A fake Kubernetes API server for tests, with real watch streams. No cluster (apiserver,
//! kind, k3s, envtest) can run on these machines; this follows the API's conventions for what
//! Foresight touches and nothing more:
//!
//! - `discovery.k8s.io/v1` EndpointSlices: list (an `EndpointSliceList` carrying the current
//!   `resourceVersion`) and watch (`?watch=true`): newline-delimited `ADDED` / `MODIFIED` /
//!   `DELETED` events after the asked `resourceVersion`, `BOOKMARK`s when idle if
//!   `allowWatchBookmarks=true`, the stream ended after `timeoutSeconds`, and an `ERROR` event
//!   with a `410 Expired` `Status` when the asked version is older than the kept history
//!   (after [`ApiServer::compact`]); `labelSelector=key=value` filters both.
//! - `apps/v1` Deployments (get) and their `scale` subresource (get; replace, 409 Conflict
//!   unless the body carries the current `resourceVersion`); status follows spec at once.
//! - `coordination.k8s.io/v1` Leases: get (404 when missing), create (409 AlreadyExists),
//!   replace (409 Conflict unless the body carries the current `resourceVersion`).
//! - one cluster-wide `resourceVersion`, bumped by every write.
//!
//! It listens on two ports ("doors") onto the same state, so a test can cut one client off
//! from the Leases ([`ApiServer::cut_leases`]) while the other still reaches them.
//!
//! Tests drive it directly ([`ApiServer::apply_slice`], [`ApiServer::delete_slice`]) and can
//! end every open watch ([`ApiServer::break_watches`]) to prove a client resumes.
//! It is included by path (`#[path]`) wherever a test needs a cluster.
#![allow(dead_code)]

pub mod kubelet;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

/// How long an idle watch waits before it sends a bookmark.
const BOOKMARK_EVERY: Duration = Duration::from_millis(500);

/// One endpoint of a slice: `(ip, ready, terminating)`.
pub type SliceEndpoint<'a> = (&'a str, bool, bool);

struct Event {
    rv: u64,
    kind: &'static str,
    namespace: String,
    object: Value,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    /// (namespace, name) → object.
    slices: BTreeMap<(String, String), Value>,
    history: Vec<Event>,
    /// Watches from a resourceVersion below this get 410 Gone.
    oldest: u64,
    /// Bumped to end every open watch.
    breaks: u64,
    lists: usize,
    watches: usize,
    /// (namespace, name) → Lease.
    leases: BTreeMap<(String, String), Value>,
    /// Every accepted Lease write: (when, door, holder).
    lease_writes: Vec<(tokio::time::Instant, usize, String)>,
    /// Doors whose Lease requests are answered 503.
    cut: HashSet<usize>,
    lease_requests: HashSet<&'static str>,
    /// (namespace, name) → spec replicas.
    deployments: BTreeMap<(String, String), i64>,
    /// (namespace, name) → status (replicas, readyReplicas) as a kubelet reports it; without
    /// one, the status follows the spec at once.
    deployment_status: BTreeMap<(String, String), (i64, i64)>,
    /// Every accepted scale write: (when, door, replicas).
    scale_writes: Vec<(tokio::time::Instant, usize, i64)>,
    deployment_requests: HashSet<(&'static str, &'static str)>,
}

/// Which of the server's ports a request came through.
#[derive(Clone, Copy)]
struct Door(usize);

/// A request as RBAC names it: (verb, API group, resource).
pub type Request = (&'static str, &'static str, &'static str);

struct Shared {
    inner: Mutex<Inner>,
    /// Signals every change (and every break) to open watches.
    changed: watch::Sender<u64>,
}

/// A running fake API server (clones share it).
#[derive(Clone)]
pub struct ApiServer {
    /// `http://127.0.0.1:PORT`: door 0.
    pub url: String,
    /// Every door's URL (`urls[0] == url`).
    pub urls: Vec<String>,
    shared: Arc<Shared>,
}

fn labels_match(object: &Value, selector: &[(String, String)]) -> bool {
    selector
        .iter()
        .all(|(k, v)| object["metadata"]["labels"][k].as_str() == Some(v.as_str()))
}

fn parse_selector(s: Option<&String>) -> Vec<(String, String)> {
    s.map(|s| {
        s.split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    })
    .unwrap_or_default()
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({ "type": kind, "object": object })).unwrap();
    v.push(b'\n');
    Bytes::from(v)
}

impl ApiServer {
    /// Starts the server on a loopback port.
    pub async fn start() -> ApiServer {
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                rv: 100,
                ..Default::default()
            }),
            changed,
        });
        let mut urls = Vec::new();
        for door in 0..2 {
            let app = Router::new()
                .route(
                    "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                    get(endpointslices),
                )
                .route(
                    "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
                    get(get_deployment),
                )
                .route(
                    "/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale",
                    get(get_scale).put(replace_scale),
                )
                .route(
                    "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
                    axum::routing::post(create_lease),
                )
                .route(
                    "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}",
                    get(get_lease).put(replace_lease),
                )
                .layer(Extension(Door(door)))
                .with_state(shared.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            urls.push(format!("http://{}", listener.local_addr().unwrap()));
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        }
        ApiServer {
            url: urls[0].clone(),
            urls,
            shared,
        }
    }

    fn write(&self, f: impl FnOnce(&mut Inner)) {
        let rv = {
            let mut inner = self.shared.inner.lock().unwrap();
            f(&mut inner);
            inner.rv
        };
        self.shared.changed.send_replace(rv);
    }

    /// Creates or replaces the EndpointSlice `name` of Service `service`, with one port.
    pub fn apply_slice(
        &self,
        namespace: &str,
        name: &str,
        service: &str,
        port: (&str, u16),
        endpoints: &[SliceEndpoint],
    ) {
        let endpoints: Vec<Value> = endpoints
            .iter()
            .enumerate()
            .map(|(i, (ip, ready, terminating))| {
                json!({
                    "addresses": [ip],
                    "conditions": { "ready": ready, "serving": ready, "terminating": terminating },
                    "targetRef": { "kind": "Pod", "namespace": namespace, "name": format!("{name}-{i}") },
                })
            })
            .collect();
        self.write(|inner| {
            inner.rv += 1;
            let key = (namespace.to_string(), name.to_string());
            let kind = if inner.slices.contains_key(&key) {
                "MODIFIED"
            } else {
                "ADDED"
            };
            let object = json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "uid": format!("00000000-0000-4000-8000-{:012}", inner.rv),
                    "resourceVersion": inner.rv.to_string(),
                    "labels": {
                        "kubernetes.io/service-name": service,
                        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                    },
                },
                "addressType": "IPv4",
                "ports": [{ "name": port.0, "port": port.1, "protocol": "TCP" }],
                "endpoints": endpoints,
            });
            inner.slices.insert(key, object.clone());
            inner.history.push(Event {
                rv: inner.rv,
                kind,
                namespace: namespace.to_string(),
                object,
            });
        });
    }

    /// Deletes the EndpointSlice `name`, if it exists.
    pub fn delete_slice(&self, namespace: &str, name: &str) {
        self.write(|inner| {
            let key = (namespace.to_string(), name.to_string());
            if let Some(mut object) = inner.slices.remove(&key) {
                inner.rv += 1;
                object["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
                inner.history.push(Event {
                    rv: inner.rv,
                    kind: "DELETED",
                    namespace: namespace.to_string(),
                    object,
                });
            }
        });
    }

    /// Ends every open watch stream (as an API server restart or a dropped connection would).
    pub fn break_watches(&self) {
        self.write(|inner| inner.breaks += 1);
    }

    /// Forgets all history: a watch from a resourceVersion before the current one gets
    /// 410 Gone.
    pub fn compact(&self) {
        self.write(|inner| {
            inner.history.clear();
            inner.oldest = inner.rv;
        });
    }

    /// Creates Deployment `namespace/name`, or sets its replicas (as `kubectl scale` would).
    pub fn set_replicas(&self, namespace: &str, name: &str, replicas: i64) {
        self.write(|inner| {
            inner.rv += 1;
            inner
                .deployments
                .insert((namespace.to_string(), name.to_string()), replicas);
        });
    }

    /// Sets Deployment `namespace/name`'s status: pods running (`replicas`) and ready.
    pub fn set_status(&self, namespace: &str, name: &str, replicas: i64, ready: i64) {
        let mut inner = self.shared.inner.lock().unwrap();
        inner
            .deployment_status
            .insert((namespace.to_string(), name.to_string()), (replicas, ready));
    }

    /// Deployment `namespace/name`'s replicas.
    pub fn replicas(&self, namespace: &str, name: &str) -> Option<i64> {
        let inner = self.shared.inner.lock().unwrap();
        inner
            .deployments
            .get(&(namespace.to_string(), name.to_string()))
            .copied()
    }

    /// Every accepted scale write so far: (when, door, replicas).
    pub fn scale_writes(&self) -> Vec<(tokio::time::Instant, usize, i64)> {
        self.shared.inner.lock().unwrap().scale_writes.clone()
    }

    /// Answers every Lease request through `door` with 503 (`false`: serves it again).
    pub fn cut_leases(&self, door: usize, cut: bool) {
        let mut inner = self.shared.inner.lock().unwrap();
        if cut {
            inner.cut.insert(door);
        } else {
            inner.cut.remove(&door);
        }
    }

    /// Every accepted Lease write so far: (when, door, holder).
    pub fn lease_writes(&self) -> Vec<(tokio::time::Instant, usize, String)> {
        self.shared.inner.lock().unwrap().lease_writes.clone()
    }

    /// The holder of Lease `namespace/name`, if any.
    pub fn lease_holder(&self, namespace: &str, name: &str) -> Option<String> {
        let inner = self.shared.inner.lock().unwrap();
        inner
            .leases
            .get(&(namespace.to_string(), name.to_string()))
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    }

    /// Every request served so far, as RBAC names it.
    pub fn rbac_requests(&self) -> Vec<Request> {
        let inner = self.shared.inner.lock().unwrap();
        let mut r: Vec<Request> = inner
            .lease_requests
            .iter()
            .map(|v| (*v, "coordination.k8s.io", "leases"))
            .chain(
                inner
                    .deployment_requests
                    .iter()
                    .map(|(v, res)| (*v, "apps", *res)),
            )
            .collect();
        if inner.lists > 0 {
            r.push(("list", "discovery.k8s.io", "endpointslices"));
        }
        if inner.watches > 0 {
            r.push(("watch", "discovery.k8s.io", "endpointslices"));
        }
        r
    }

    /// (lists, watches) served so far.
    pub fn requests(&self) -> (usize, usize) {
        let inner = self.shared.inner.lock().unwrap();
        (inner.lists, inner.watches)
    }
}

async fn endpointslices(
    State(shared): State<Arc<Shared>>,
    Path(ns): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let selector = parse_selector(q.get("labelSelector"));
    if q.get("watch").map(String::as_str) != Some("true") {
        let mut inner = shared.inner.lock().unwrap();
        inner.lists += 1;
        let items: Vec<&Value> = inner
            .slices
            .iter()
            .filter(|((n, _), o)| *n == ns && labels_match(o, &selector))
            .map(|(_, o)| o)
            .collect();
        return Json(json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSliceList",
            "metadata": { "resourceVersion": inner.rv.to_string() },
            "items": items,
        }))
        .into_response();
    }
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let bookmarks = q.get("allowWatchBookmarks").map(String::as_str) == Some("true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(300), Duration::from_secs);
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    let (breaks, oldest) = {
        let mut inner = shared.inner.lock().unwrap();
        inner.watches += 1;
        (inner.breaks, inner.oldest)
    };
    if from < oldest {
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("too old resource version: {from} ({oldest})"),
            "reason": "Expired", "code": 410,
        });
        let _ = tx.try_send(Ok(line("ERROR", &status)));
    } else {
        tokio::spawn(stream_events(
            shared, ns, selector, from, breaks, bookmarks, timeout, tx,
        ));
    }
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    Response::builder()
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

/// Sends the events after `last` that match, as they happen, until the timeout, a break, or
/// the client going away.
#[allow(clippy::too_many_arguments)]
async fn stream_events(
    shared: Arc<Shared>,
    ns: String,
    selector: Vec<(String, String)>,
    mut last: u64,
    breaks: u64,
    bookmarks: bool,
    timeout: Duration,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut changed = shared.changed.subscribe();
    let mut idle = false;
    loop {
        let lines = {
            let inner = shared.inner.lock().unwrap();
            if inner.breaks != breaks {
                return;
            }
            let mut lines: Vec<Bytes> = inner
                .history
                .iter()
                .filter(|e| e.rv > last && e.namespace == ns && labels_match(&e.object, &selector))
                .map(|e| line(e.kind, &e.object))
                .collect();
            if lines.is_empty() && idle && bookmarks {
                let object = json!({
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": { "resourceVersion": inner.rv.to_string() },
                });
                lines.push(line("BOOKMARK", &object));
            }
            last = inner.rv;
            lines
        };
        for l in lines {
            if tx.send(Ok(l)).await.is_err() {
                return;
            }
        }
        tokio::select! {
            _ = changed.changed() => idle = false,
            _ = tokio::time::sleep(BOOKMARK_EVERY) => idle = true,
            _ = tokio::time::sleep_until(deadline) => return,
        }
    }
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, Json(body)).into_response()
}

/// The Lease request's verdict before it is served: 503 through a cut door.
fn lease_door(inner: &mut Inner, door: Door, verb: &'static str) -> Option<Response> {
    inner.lease_requests.insert(verb);
    inner.cut.contains(&door.0).then(|| {
        status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the server is currently unable to handle the request".into(),
        )
    })
}

async fn get_lease(
    State(shared): State<Arc<Shared>>,
    Extension(door): Extension<Door>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let mut inner = shared.inner.lock().unwrap();
    if let Some(r) = lease_door(&mut inner, door, "get") {
        return r;
    }
    match inner.leases.get(&(ns, name.clone())) {
        Some(l) => Json(l.clone()).into_response(),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("leases.coordination.k8s.io \"{name}\" not found"),
        ),
    }
}

/// Stores `lease` as the new version of `ns/name` and records who wrote it.
fn store_lease(inner: &mut Inner, door: Door, ns: String, name: String, mut lease: Value) -> Value {
    inner.rv += 1;
    lease["apiVersion"] = json!("coordination.k8s.io/v1");
    lease["kind"] = json!("Lease");
    lease["metadata"]["name"] = json!(name);
    lease["metadata"]["namespace"] = json!(ns);
    lease["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
    let holder = lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap_or("")
        .to_string();
    inner
        .lease_writes
        .push((tokio::time::Instant::now(), door.0, holder));
    inner.leases.insert((ns, name), lease.clone());
    lease
}

async fn create_lease(
    State(shared): State<Arc<Shared>>,
    Extension(door): Extension<Door>,
    Path(ns): Path<String>,
    Json(lease): Json<Value>,
) -> Response {
    let mut inner = shared.inner.lock().unwrap();
    if let Some(r) = lease_door(&mut inner, door, "create") {
        return r;
    }
    let name = lease["metadata"]["name"].as_str().unwrap_or("").to_string();
    if inner.leases.contains_key(&(ns.clone(), name.clone())) {
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("leases.coordination.k8s.io \"{name}\" already exists"),
        );
    }
    let stored = store_lease(&mut inner, door, ns, name, lease);
    (StatusCode::CREATED, Json(stored)).into_response()
}

async fn replace_lease(
    State(shared): State<Arc<Shared>>,
    Extension(door): Extension<Door>,
    Path((ns, name)): Path<(String, String)>,
    Json(lease): Json<Value>,
) -> Response {
    let mut inner = shared.inner.lock().unwrap();
    if let Some(r) = lease_door(&mut inner, door, "update") {
        return r;
    }
    let Some(current) = inner.leases.get(&(ns.clone(), name.clone())) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("leases.coordination.k8s.io \"{name}\" not found"),
        );
    };
    if lease["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
        return status(
            StatusCode::CONFLICT,
            "Conflict",
            format!("Operation cannot be fulfilled on leases.coordination.k8s.io \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
        );
    }
    Json(store_lease(&mut inner, door, ns, name, lease)).into_response()
}

fn deployment_meta(inner: &Inner, ns: &str, name: &str) -> Value {
    json!({
        "name": name, "namespace": ns,
        "uid": "7d3c1c2e-0000-4000-8000-000000000002",
        "resourceVersion": inner.rv.to_string(),
    })
}

fn no_deployment(name: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("deployments.apps \"{name}\" not found"),
    )
}

async fn get_deployment(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let mut inner = shared.inner.lock().unwrap();
    inner.deployment_requests.insert(("get", "deployments"));
    let Some(&replicas) = inner.deployments.get(&(ns.clone(), name.clone())) else {
        return no_deployment(&name);
    };
    let (running, ready) = inner
        .deployment_status
        .get(&(ns.clone(), name.clone()))
        .copied()
        .unwrap_or((replicas, replicas));
    Json(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": deployment_meta(&inner, &ns, &name),
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "web", "image": "foresight:latest" }] },
            },
        },
        "status": { "replicas": running, "readyReplicas": ready, "availableReplicas": ready },
    }))
    .into_response()
}

fn scale(inner: &Inner, ns: &str, name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": deployment_meta(inner, ns, name),
        "spec": { "replicas": replicas },
        "status": { "replicas": replicas, "selector": format!("app={name}") },
    })
}

async fn get_scale(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let mut inner = shared.inner.lock().unwrap();
    inner
        .deployment_requests
        .insert(("get", "deployments/scale"));
    match inner.deployments.get(&(ns.clone(), name.clone())) {
        Some(&r) => Json(scale(&inner, &ns, &name, r)).into_response(),
        None => no_deployment(&name),
    }
}

async fn replace_scale(
    State(shared): State<Arc<Shared>>,
    Extension(door): Extension<Door>,
    Path((ns, name)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let rv = {
        let mut inner = shared.inner.lock().unwrap();
        inner
            .deployment_requests
            .insert(("update", "deployments/scale"));
        let key = (ns.clone(), name.clone());
        if !inner.deployments.contains_key(&key) {
            return no_deployment(&name);
        }
        if body["metadata"]["resourceVersion"].as_str() != Some(inner.rv.to_string().as_str()) {
            return status(
                StatusCode::CONFLICT,
                "Conflict",
                format!("Operation cannot be fulfilled on deployments.apps \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
            );
        }
        let Some(replicas) = body["spec"]["replicas"].as_i64().filter(|r| *r >= 0) else {
            return status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "spec.replicas: Invalid value".into(),
            );
        };
        inner.rv += 1;
        inner.deployments.insert(key, replicas);
        inner
            .scale_writes
            .push((tokio::time::Instant::now(), door.0, replicas));
        let s = scale(&inner, &ns, &name, replicas);
        (inner.rv, s)
    };
    shared.changed.send_replace(rv.0);
    Json(rv.1).into_response()
}
