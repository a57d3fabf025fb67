//! Kubernetes discovery end to end (built with `--features kubernetes`): a real `foresight
//! serve` watches the EndpointSlices of a Service at the fake API server (real watch streams,
//! `crates/kube/tests/harness`); the pods are real `foresight backend` processes. Ready pods
//! receive traffic, a terminating pod is drained without a failed request, and a broken watch
//! keeps the pool.
#![cfg(feature = "kubernetes")]

mod common;
#[path = "../../kube/tests/harness/mod.rs"]
mod harness;

use std::time::Duration;

use common::*;
use harness::ApiServer;

/// The members that take new requests: healthy (a pod that joins later passes its health
/// checks first) and not draining.
async fn serving(c: &HttpClient, admin: &str) -> Vec<String> {
    let mut m: Vec<String> = backends(c, admin)
        .await
        .into_iter()
        .filter(|b| b["draining"] != true && b["healthy"] == true)
        .map(|b| b["address"].as_str().unwrap().to_string())
        .collect();
    m.sort();
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_join_from_endpointslices_and_terminating_ones_drain() {
    let server = ApiServer::start().await;
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let _pods: Vec<Proc> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            spawn(&[
                "backend",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--name",
                &format!("pod{i}"),
            ])
        })
        .collect();
    // One slice per pod: each listens on its own port (as pods whose named port resolves to
    // different numbers are sliced).
    let slice = |i: usize, ready: bool, terminating: bool| {
        server.apply_slice(
            "shop",
            &format!("web-{i}"),
            "web",
            ("http", ports[i]),
            &[("127.0.0.1", ready, terminating)],
        )
    };
    slice(0, true, false);
    slice(1, false, false);
    let dir = tempdir("kube-discovery");
    let p = proxy(
        &dir,
        &format!(
            r#"
drain_timeout = "5s"
[balancer]
algorithm = "round-robin"
[discovery]
type = "kubernetes"
name = "web"
namespace = "shop"
port = "http"
url = "{}"
"#,
            server.url
        ),
        &[],
    );
    let (url, admin) = (
        format!("http://{}/", p.get("proxy")),
        p.get("admin").to_string(),
    );
    let c = client();
    let a = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };

    eventually(Duration::from_secs(15), "the ready pod joins", || async {
        serving(&c, &admin).await == [a(0)]
    })
    .await;
    let counts = count_sequential(&c, &url, 10).await;
    assert_eq!(counts.get("pod0"), Some(&10), "{counts:?}");

    // The second pod becomes ready: it joins and takes its share.
    slice(1, true, false);
    eventually(Duration::from_secs(10), "the second pod joins", || async {
        serving(&c, &admin).await == sorted(vec![a(0), a(1)])
    })
    .await;
    let counts = count_sequential(&c, &url, 20).await;
    assert_eq!(counts.get("pod1"), Some(&10), "{counts:?}");

    // Under load: pod0 terminates (drained), pod2 appears; no request fails.
    let load = background_load(&c, &url, 150, Duration::from_millis(20));
    slice(0, false, true);
    slice(2, true, false);
    eventually(
        Duration::from_secs(10),
        "pod0 drained, pod2 joined",
        || async { serving(&c, &admin).await == sorted(vec![a(1), a(2)]) },
    )
    .await;
    assert_eq!(load.await.unwrap(), 0, "requests failed while pods changed");
    let counts = count_sequential(&c, &url, 20).await;
    assert_eq!(counts.get("pod0"), None, "{counts:?}");
    assert_eq!(counts.get("pod2"), Some(&10), "{counts:?}");

    // The watch breaks and history is compacted (the API server restarted): the pool stays,
    // and the next change still arrives.
    server.compact();
    server.break_watches();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(serving(&c, &admin).await, sorted(vec![a(1), a(2)]));
    server.delete_slice("shop", "web-1");
    eventually(
        Duration::from_secs(15),
        "the deleted pod leaves",
        || async { serving(&c, &admin).await == [a(2)] },
    )
    .await;
    let counts = count_sequential(&c, &url, 10).await;
    assert_eq!(counts.get("pod2"), Some(&10), "{counts:?}");
}

/// A `foresight controller` campaigning for Lease `ctl` as `identity`, scaling Deployment
/// `shop/web` to a static 3, everything through `door`.
fn controller(dir: &std::path::Path, identity: &str, door: &str) -> Proc {
    let cfg = dir.join(format!("{identity}.toml"));
    std::fs::write(
        &cfg,
        format!(
            r#"
[control]
interval = "200ms"
step = "1s"
model_step = "1m"
policy = "static"
forecaster = "none"
min = 3
max = 5
metrics = "prometheus"
prometheus_url = "http://127.0.0.1:1"
actuator = "kubernetes"
namespace = "shop"
deployment = "web"
kube_url = "{door}"
"#
        ),
    )
    .unwrap();
    spawn(&[
        "controller",
        "--config",
        cfg.to_str().unwrap(),
        "--admin",
        "127.0.0.1:0",
        "--lease",
        "ctl",
        "--lease-namespace",
        "shop",
        "--lease-duration",
        "3s",
        "--identity",
        identity,
        "--kube-url",
        door,
    ])
}

async fn leads(c: &HttpClient, admin: &str) -> Option<bool> {
    let r = send(c, "GET", &format!("http://{admin}/leader"), "")
        .await
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
    v["leader"].as_bool()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_elect_one_leader_that_alone_scales_and_hands_over() {
    // Lease of 3 s: the leader stops 2 s after its last renewal, others may take over 3 s
    // after they saw it.
    let server = ApiServer::start().await;
    server.set_replicas("shop", "web", 1);
    let dir = tempdir("kube-controllers");
    let c = client();
    let mut a = controller(&dir, "a", &server.urls[0]);
    let a_admin = a.get("admin").to_string();
    eventually(
        Duration::from_secs(15),
        "a leads and scales to 3",
        || async {
            leads(&c, &a_admin).await == Some(true) && server.replicas("shop", "web") == Some(3)
        },
    )
    .await;
    let b = controller(&dir, "b", &server.urls[1]);
    let b_admin = b.get("admin").to_string();
    // b follows; an outside change to the replicas is not b's to undo.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(leads(&c, &b_admin).await, Some(false));
    assert!(
        server.scale_writes().iter().all(|(_, door, _)| *door == 0),
        "only a wrote"
    );
    let status: serde_json::Value =
        serde_json::from_str(&get(&c, &format!("http://{b_admin}/control")).await.body).unwrap();
    assert_eq!(status["leader"], false, "{status}");
    assert_eq!(status["leader_identity"], "a", "{status}");
    let metrics = |admin: String| {
        let c = c.clone();
        async move { get(&c, &format!("http://{admin}/metrics")).await.body }
    };
    assert!(metrics(b_admin.clone())
        .await
        .contains("foresight_control_leader 0"));
    assert!(metrics(a_admin.clone())
        .await
        .contains("foresight_control_leader 1"));

    // a is cut off from the Lease: it stops leading before b takes over. Meanwhile the
    // replicas are changed from outside (kubectl scale): the new leader applies its count.
    let cut = tokio::time::Instant::now();
    server.cut_leases(0, true);
    server.set_replicas("shop", "web", 1);
    let mut a_stopped = None;
    let deadline = cut + Duration::from_secs(15);
    while tokio::time::Instant::now() < deadline {
        if a_stopped.is_none() && leads(&c, &a_admin).await == Some(false) {
            a_stopped = Some(tokio::time::Instant::now());
        }
        if a_stopped.is_some() && leads(&c, &b_admin).await == Some(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a_stopped = a_stopped.expect("a stopped leading");
    let (b_acquired, _, _) = server
        .lease_writes()
        .into_iter()
        .find(|(t, door, _)| *t > cut && *door == 1)
        .expect("b took the lease");
    assert!(a_stopped < b_acquired, "a still led when b took over");

    eventually(Duration::from_secs(10), "b scales back to 3", || async {
        server.replicas("shop", "web") == Some(3)
    })
    .await;
    let writes = server.scale_writes();
    assert!(
        writes
            .iter()
            .filter(|(t, _, _)| *t > cut)
            .all(|(_, door, _)| *door == 1),
        "only b wrote after the cut: {writes:?}"
    );

    // b dies; a (back in touch) takes over within the lease duration and scales.
    server.cut_leases(0, false);
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(b);
    let died = tokio::time::Instant::now();
    server.set_replicas("shop", "web", 2);
    eventually(Duration::from_secs(10), "a leads again", || async {
        leads(&c, &a_admin).await == Some(true)
    })
    .await;
    assert!(died.elapsed() < Duration::from_secs(3) + Duration::from_secs(2));
    eventually(Duration::from_secs(10), "a scales back to 3", || async {
        server.replicas("shop", "web") == Some(3)
    })
    .await;
    assert_eq!(server.scale_writes().last().unwrap().1, 0);
    a.kill();
    for (verb, group, resource) in server.rbac_requests() {
        assert!(
            foresight_kube::allowed(group, resource, verb),
            "{verb} {group}/{resource}"
        );
    }
}

/// KEDA mode (`deploy/kubernetes/keda/`): a controller in dry run with `--keda` reads the
/// Deployment's ready replicas and answers KEDA, and never writes: every request it makes is
/// `get deployments` (`foresight_kube::READ_ACCESS`, all its Role grants).
#[cfg(feature = "keda")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keda_mode_controller_only_reads_the_deployment() {
    use foresight_keda::pb::external_scaler_client::ExternalScalerClient;
    use foresight_keda::pb::{GetMetricsRequest, ScaledObjectRef};

    let server = ApiServer::start().await;
    server.set_replicas("shop", "web", 2);
    let dir = tempdir("kube-keda");
    let cfg = dir.join("keda.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[control]
interval = "200ms"
step = "1s"
model_step = "1m"
policy = "static"
forecaster = "none"
min = 3
max = 5
metrics = "prometheus"
prometheus_url = "http://127.0.0.1:1"
actuator = "kubernetes"
namespace = "shop"
deployment = "web"
kube_url = "{}"
dry_run = true
"#,
            server.urls[0]
        ),
    )
    .unwrap();
    let ctl = spawn(&[
        "controller",
        "--config",
        cfg.to_str().unwrap(),
        "--admin",
        "127.0.0.1:0",
        "--keda",
        "127.0.0.1:0",
    ]);
    let c = client();
    let admin = ctl.get("admin").to_string();
    eventually(
        Duration::from_secs(10),
        "the ready replicas read",
        || async {
            let s = control_status(&c, &admin).await;
            s["ready"] == 2 && s["desired"] == 3
        },
    )
    .await;
    let mut keda = ExternalScalerClient::connect(format!("http://{}", ctl.get("keda")))
        .await
        .unwrap();
    let m = keda
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(ScaledObjectRef {
                name: "web".into(),
                namespace: "shop".into(),
                scaler_metadata: [("metric".to_string(), "replicas".to_string())].into(),
            }),
            metric_name: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.metric_values[0].metric_value_float, 3.0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(server.scale_writes().is_empty(), "a dry run wrote");
    assert_eq!(server.replicas("shop", "web"), Some(2));
    let requests = server.rbac_requests();
    assert!(!requests.is_empty());
    let read = foresight_kube::READ_ACCESS;
    for (verb, group, resource) in requests {
        assert!(
            group == read.group && resource == read.resource && read.verbs.contains(&verb),
            "{verb} {group}/{resource} is beyond READ_ACCESS"
        );
    }
}
