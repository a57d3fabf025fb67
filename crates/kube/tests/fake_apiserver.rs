//! The Kubernetes actuator against a fake API server. No cluster (apiserver, kind, k3s, envtest)
//! can run on these machines, so the fake follows the API's conventions for what the actuator
//! touches: `apps/v1` Deployments, their `scale` subresource as an `autoscaling/v1` Scale,
//! `resourceVersion` bumped on every write (spec or status) and checked on update (409 Conflict
//! with a `Status` body), 404 `Status` for unknown objects, 422 for negative replicas, and a
//! "controller" that brings ready replicas toward the spec one pod per 50 ms.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use foresight_actuate::{Actuator, ActuatorError};
use foresight_kube::KubeActuator;
use serde_json::{json, Value};

#[derive(Default)]
struct Cluster {
    namespace: String,
    name: String,
    resource_version: u64,
    spec_replicas: i64,
    replicas: i64,
    ready: i64,
    /// The next N updates find that another writer got there first.
    conflicts: u32,
    /// (method, path, resourceVersion sent) of every write.
    writes: Vec<(String, String, Option<String>)>,
    /// (verb, resource) of every request, as RBAC names them.
    requests: Vec<(&'static str, &'static str)>,
}

type Shared = Arc<Mutex<Cluster>>;

fn status(code: StatusCode, reason: &str, message: String, name: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason,
        "details": { "name": name, "group": "apps", "kind": "deployments" },
        "code": code.as_u16(),
    });
    (code, Json(body)).into_response()
}

fn not_found(name: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("deployments.apps \"{name}\" not found"),
        name,
    )
}

impl Cluster {
    fn meta(&self) -> Value {
        json!({
            "name": self.name, "namespace": self.namespace,
            "uid": "7d3c1c2e-0000-4000-8000-000000000001",
            "resourceVersion": self.resource_version.to_string(),
            "generation": 1,
        })
    }

    fn deployment(&self) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": self.meta(),
            "spec": {
                "replicas": self.spec_replicas,
                "selector": { "matchLabels": { "app": self.name } },
                "template": {
                    "metadata": { "labels": { "app": self.name } },
                    "spec": { "containers": [{ "name": "web", "image": "foresight:latest" }] },
                },
            },
            "status": {
                "replicas": self.replicas, "readyReplicas": self.ready,
                "availableReplicas": self.ready, "updatedReplicas": self.replicas,
                "observedGeneration": 1,
            },
        })
    }

    fn scale(&self) -> Value {
        json!({
            "apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": self.meta(),
            "spec": { "replicas": self.spec_replicas },
            "status": { "replicas": self.replicas, "selector": format!("app={}", self.name) },
        })
    }

    fn known(&self, ns: &str, name: &str) -> bool {
        ns == self.namespace && name == self.name
    }
}

async fn get_deployment(
    State(c): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let mut c = c.lock().unwrap();
    c.requests.push(("get", "deployments"));
    if !c.known(&ns, &name) {
        return not_found(&name);
    }
    Json(c.deployment()).into_response()
}

async fn get_scale(State(c): State<Shared>, Path((ns, name)): Path<(String, String)>) -> Response {
    let mut c = c.lock().unwrap();
    c.requests.push(("get", "deployments/scale"));
    if !c.known(&ns, &name) {
        return not_found(&name);
    }
    Json(c.scale()).into_response()
}

async fn put_scale(
    State(c): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut c = c.lock().unwrap();
    c.requests.push(("update", "deployments/scale"));
    let rv = body["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_string);
    c.writes.push((
        "PUT".into(),
        format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale"),
        rv.clone(),
    ));
    if !c.known(&ns, &name) {
        return not_found(&name);
    }
    if body["kind"] != "Scale" || body["apiVersion"] != "autoscaling/v1" {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "expected an autoscaling/v1 Scale".into(),
            &name,
        );
    }
    if c.conflicts > 0 {
        // Another writer (kubectl scale, an HPA) changes the Deployment first.
        c.conflicts -= 1;
        c.resource_version += 1;
    }
    if let Some(rv) = rv {
        if rv != c.resource_version.to_string() {
            return status(
                StatusCode::CONFLICT,
                "Conflict",
                format!("Operation cannot be fulfilled on deployments.apps \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
                &name,
            );
        }
    }
    let Some(replicas) = body["spec"]["replicas"].as_i64() else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "spec.replicas: Required value".into(),
            &name,
        );
    };
    if replicas < 0 {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"),
            &name,
        );
    }
    c.spec_replicas = replicas;
    c.resource_version += 1;
    Json(c.scale()).into_response()
}

/// Starts the fake with Deployment `default/web` at `replicas`; returns its URL and state.
async fn fake(replicas: i64) -> (String, Shared) {
    let cluster: Shared = Arc::new(Mutex::new(Cluster {
        namespace: "default".into(),
        name: "web".into(),
        resource_version: 1000,
        spec_replicas: replicas,
        replicas,
        ready: replicas,
        ..Default::default()
    }));
    let app = Router::new()
        .route(
            "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
            get(get_deployment),
        )
        .route(
            "/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale",
            get(get_scale).put(put_scale),
        )
        .with_state(cluster.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // The Deployment controller: pods are created at once and turn ready one per tick;
    // scale-in removes them one per tick. Every status change is a write.
    let c = cluster.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut c = c.lock().unwrap();
            let before = (c.replicas, c.ready);
            if c.spec_replicas > c.replicas {
                c.replicas = c.spec_replicas;
            }
            if c.ready < c.replicas.min(c.spec_replicas) {
                c.ready += 1;
            } else if c.replicas > c.spec_replicas {
                c.replicas -= 1;
                c.ready = c.ready.min(c.replicas);
            }
            if (c.replicas, c.ready) != before {
                c.resource_version += 1;
            }
        }
    });
    (url, cluster)
}

async fn until_ready(a: &KubeActuator, n: usize) {
    let start = Instant::now();
    loop {
        let s = a.state().await.unwrap();
        if s.ready == Some(n) && s.starting == Some(0) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never {n} ready: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn scales_through_the_subresource_and_reads_back_ready_replicas() {
    let (url, cluster) = fake(2).await;
    let a = KubeActuator::for_url(&url, "default", "web", 10).unwrap();
    assert_eq!(a.name(), "kubernetes deployment default/web");

    a.apply(6).await.unwrap();
    let s = a.state().await.unwrap();
    assert_eq!(s.desired, 6);
    assert!(s.ready.unwrap() < 6, "pods are not ready at once: {s:?}");
    until_ready(&a, 6).await;

    a.apply(3).await.unwrap();
    until_ready(&a, 3).await;
    {
        let c = cluster.lock().unwrap();
        assert_eq!(c.spec_replicas, 3);
        assert_eq!(c.writes.len(), 2);
        for (method, path, rv) in &c.writes {
            assert_eq!(method, "PUT");
            assert!(path.ends_with("/deployments/web/scale"), "{path}");
            assert!(
                rv.is_some(),
                "every write carries the resourceVersion it read"
            );
        }
    }
    // Applying the current count writes nothing.
    a.apply(3).await.unwrap();
    assert_eq!(cluster.lock().unwrap().writes.len(), 2);

    // Above the maximum: the maximum is applied and the caller is told.
    let e = a.apply(40).await.unwrap_err();
    assert_eq!(e, ActuatorError::AboveMax { asked: 40, max: 10 });
    assert_eq!(cluster.lock().unwrap().spec_replicas, 10);

    // Every request is one the RBAC Role grants (deploy/kubernetes), and each granted verb
    // was used.
    let requests = cluster.lock().unwrap().requests.clone();
    for (verb, resource) in &requests {
        assert!(
            foresight_kube::allowed("apps", resource, verb),
            "{verb} {resource}"
        );
    }
    for rule in foresight_kube::API_ACCESS
        .iter()
        .filter(|a| a.group == "apps")
    {
        for verb in rule.verbs {
            assert!(
                requests.contains(&(verb, rule.resource)),
                "{verb} {} never used",
                rule.resource
            );
        }
    }
}

#[tokio::test]
async fn conflicts_are_retried_then_reported() {
    let (url, cluster) = fake(2).await;
    let a = KubeActuator::for_url(&url, "default", "web", 10)
        .unwrap()
        .conflict_retries(3);
    cluster.lock().unwrap().conflicts = 2;
    a.apply(4).await.unwrap();
    {
        let c = cluster.lock().unwrap();
        assert_eq!(c.spec_replicas, 4);
        assert_eq!(c.writes.len(), 3, "two conflicts, then success");
    }

    cluster.lock().unwrap().conflicts = 100;
    let e = a.apply(5).await.unwrap_err().to_string();
    assert!(
        e.starts_with("deployment default/web: gave up after 4 conflicts"),
        "{e}"
    );
    assert_eq!(cluster.lock().unwrap().spec_replicas, 4, "nothing written");
}

#[tokio::test]
async fn api_errors_name_the_deployment_and_the_reason() {
    let (url, _cluster) = fake(2).await;
    let a = KubeActuator::for_url(&url, "default", "nope", 10).unwrap();
    let e = a.apply(3).await.unwrap_err().to_string();
    assert!(e.starts_with("deployment default/nope: "), "{e}");
    assert!(e.contains("deployments.apps \"nope\" not found"), "{e}");
    let e = a.state().await.unwrap_err().to_string();
    assert!(e.contains("not found"), "{e}");

    let e = KubeActuator::for_url("not a url", "default", "web", 3)
        .err()
        .unwrap()
        .to_string();
    assert!(e.starts_with("not a url: not a URL"), "{e}");

    // Nothing listening: a connection error, not a hang.
    let a = KubeActuator::for_url("http://127.0.0.1:1", "default", "web", 3).unwrap();
    let e = tokio::time::timeout(Duration::from_secs(30), a.apply(1))
        .await
        .expect("fails fast")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("deployment default/web: "), "{e}");
}
