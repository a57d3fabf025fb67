//! Kubernetes end to end (built with `--features kubernetes`), against the fake API server
//! (`crates/kube/tests/harness`: real watch streams, Deployments with their scale, Leases):
//!
//! - discovery: a real `foresight serve` watches a Service's EndpointSlices; the pods are
//!   real `foresight backend` processes. Ready pods receive traffic, a terminating pod is
//!   drained without a failed request, and a broken watch keeps the pool;
//! - election: two `foresight controller` processes, one leader that alone scales, handing
//!   over when cut off or killed;
//! - KEDA mode: a dry-run controller only reads the Deployment;
//! - the cluster in a box: the harness's fake kubelet runs the Deployment's pods as processes,
//!   two proxies, Prometheus and two controllers close the whole loop.
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
    // What must not happen (the pool emptied) is given a second to happen.
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

/// A `foresight controller` campaigning for Lease `ctl` (3 s) as `identity`, running `control`
/// (the `[control]` keys) with the Kubernetes actuator on Deployment `shop/web`, everything
/// through `door`.
fn elected(dir: &std::path::Path, identity: &str, door: &str, control: &str) -> Proc {
    let toml = format!(
        "[control]\n{control}\nactuator = \"kubernetes\"\nnamespace = \"shop\"\n\
         deployment = \"web\"\nkube_url = \"{door}\"\n"
    );
    controller_with(
        dir,
        identity,
        &toml,
        &[
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
        ],
    )
}

/// An elected controller scaling to a static 3.
fn controller(dir: &std::path::Path, identity: &str, door: &str) -> Proc {
    elected(
        dir,
        identity,
        door,
        r#"
interval = "200ms"
step = "1s"
model_step = "1m"
policy = "static"
forecaster = "none"
min = 3
max = 5
metrics = "prometheus"
prometheus_url = "http://127.0.0.1:1"
"#,
    )
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
    // b follows; an outside change to the replicas is not b's to undo (given 4 s, longer
    // than the lease, to go wrong).
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
    let toml = format!(
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
    );
    let ctl = controller_with(&dir, "keda", &toml, &["--keda", "127.0.0.1:0"]);
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
    // A write that must not come is given a second (several loop periods) to come.
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

/// An elected controller for the cluster in a box: the proxies' summed rate from Prometheus,
/// a moving-average forecast, 10 req/s planned per pod.
fn box_controller(dir: &std::path::Path, identity: &str, door: &str, prom_port: u16) -> Proc {
    let control = format!(
        r#"
interval = "500ms"
step = "1s"
model_step = "1m"
policy = "predictive"
forecaster = "moving-average"
# The median of recent errors as the band: the default 0.95 of the last 240 steps would keep
# the burst's surprise in the plan for 4 minutes of 1-s steps.
quantile = 0.5
lead = "1s"
margin = "1s"
workers = 4
capacity_rps = 20
target = 0.5
min = 1
max = 4
stabilisation = "3s"
metrics = "prometheus"
prometheus_url = "http://127.0.0.1:{prom_port}"
rate_query = "sum(rate(foresight_client_requests_total[3s]))"
"#
    );
    elected(dir, identity, door, &control)
}

/// Requests a pod has answered (its own `/metrics`).
async fn answered(c: &HttpClient, pod: &str) -> u64 {
    let body = match send(c, "GET", &format!("{pod}/metrics"), "").await {
        Ok(r) => r.body,
        Err(_) => return 0,
    };
    body.lines()
        .filter(|l| l.starts_with("foresight_backend_requests_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The cluster in a box: a fake kubelet runs Deployment `web`'s pods as real `foresight
/// backend` processes and publishes them in EndpointSlices (ready after `/ready`); two `foresight
/// serve` replicas discover them; Prometheus scrapes both; two `foresight controller` replicas
/// elect a leader that scales the Deployment from the summed rate. Load from `foresight
/// loadgen` through both proxies steps up and back down: the leader scales out, every new pod
/// receives traffic; the leader is killed and the other takes over; it scales in, and the
/// terminating pods drain without a failed request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_in_a_box_scales_out_hands_over_and_scales_in_without_a_failed_request() {
    use harness::kubelet::{Kubelet, Spec};

    let Some(prom_bin) = prometheus_binary() else {
        return;
    };
    let server = ApiServer::start().await;
    server.set_replicas("shop", "web", 1);
    let kubelet = Kubelet::start(
        &server,
        Spec {
            namespace: "shop".into(),
            deployment: "web".into(),
            service: "web".into(),
            port_name: "http".into(),
            command: [
                BIN,
                "backend",
                "--listen",
                "127.0.0.1:0",
                "--name",
                "{name}",
                "--workers",
                "4",
                "--route",
                "/w=20ms",
                "--startup-delay",
                "1s",
            ]
            .map(String::from)
            .to_vec(),
            grace: Duration::from_secs(3),
        },
    );
    let dir = tempdir("kube-box");
    let proxies: Vec<Proc> = (0..2)
        .map(|i| {
            let cfg = dir.join(format!("proxy{i}.toml"));
            std::fs::write(
                &cfg,
                format!(
                    "drain_timeout = \"5s\"\n[discovery]\ntype = \"kubernetes\"\nname = \"web\"\n\
                     namespace = \"shop\"\nport = \"http\"\nurl = \"{}\"\n",
                    server.url
                ),
            )
            .unwrap();
            serve_at(&cfg, "127.0.0.1:0", &["--workers", "1"])
        })
        .collect();
    let admins: Vec<String> = proxies.iter().map(|p| p.get("admin").to_string()).collect();
    let prom_port = free_port();
    let _prom = start_prometheus(
        &prom_bin,
        &dir,
        prom_port,
        &admins.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    let c = client();
    // Both proxies serve exactly the ready pods.
    let in_step = || {
        let (c, kubelet, admins) = (&c, &kubelet, &admins);
        async move {
            let ready = kubelet.ready();
            let mut all = true;
            for a in admins {
                all &= serving(c, a).await == ready;
            }
            all && !ready.is_empty()
        }
    };
    eventually(
        Duration::from_secs(15),
        "both proxies serve the first pod",
        in_step,
    )
    .await;

    let mut ctl = [
        Some(box_controller(&dir, "a", &server.urls[0], prom_port)),
        Some(box_controller(&dir, "b", &server.urls[1], prom_port)),
    ];
    let ctl_admin: Vec<String> = ctl
        .iter()
        .map(|p| p.as_ref().unwrap().get("admin").to_string())
        .collect();
    eventually(Duration::from_secs(15), "a leader is elected", || async {
        server.lease_holder("shop", "ctl").is_some()
    })
    .await;

    // 4 req/s through the two proxies, 50 req/s from 8 s to 28 s, then 4 again.
    let loads: Vec<_> = proxies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let json = dir.join(format!("load{i}.json"));
            let args: Vec<String> = [
                "loadgen",
                "--target",
                &format!("http://{}", p.get("proxy")),
                "--route",
                "/w",
                "--profile",
                "burst",
                "--rate",
                "2",
                "--to",
                "25",
                "--at",
                "8s",
                "--burst-length",
                "20s",
                "--duration",
                "55s",
                "--json",
                json.to_str().unwrap(),
                "--quiet",
            ]
            .map(String::from)
            .to_vec();
            let run_it = tokio::task::spawn_blocking(move || {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                run(&a)
            });
            (json, run_it)
        })
        .collect();

    // Scale-out: the leader sizes for ~50 req/s at 10 per pod (at most 4); the new pods start,
    // turn ready and join both proxies.
    eventually(
        Duration::from_secs(25),
        "scaled out to 4 ready pods in both proxies",
        || async { kubelet.ready().len() == 4 && in_step().await },
    )
    .await;
    let leader = server.lease_holder("shop", "ctl").unwrap();
    let leader_door = usize::from(leader == "b");
    assert!(
        server
            .scale_writes()
            .iter()
            .all(|(_, door, _)| *door == leader_door),
        "only the leader wrote: {:?}",
        server.scale_writes()
    );
    // Every pod receives traffic.
    for pod in kubelet.ready() {
        eventually(
            Duration::from_secs(5),
            &format!("{pod} answers a request"),
            || async { answered(&c, &pod).await > 0 },
        )
        .await;
    }

    // The leader dies; the other takes over within the lease and runs the loop from here.
    let killed = tokio::time::Instant::now();
    ctl[leader_door] = None;
    let other = 1 - leader_door;
    eventually(
        Duration::from_secs(10),
        "the other controller leads",
        || async { leads(&c, &ctl_admin[other]).await == Some(true) },
    )
    .await;

    // The load falls back to 4 req/s: the new leader scales in; terminating pods drain.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        if server.replicas("shop", "web") == Some(1) && kubelet.pods().len() == 1 && in_step().await
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not scaled in to 1 pod within 40 s: {:?}, {}",
            kubelet.pods(),
            control_status(&c, &ctl_admin[other]).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after: Vec<usize> = server
        .scale_writes()
        .iter()
        .filter(|(t, _, _)| *t > killed)
        .map(|(_, door, _)| *door)
        .collect();
    assert!(
        !after.is_empty() && after.iter().all(|d| *d == other),
        "after the kill only the new leader wrote: {after:?}"
    );
    assert!(kubelet.ever().len() >= 4, "{:?}", kubelet.ever());

    for (json, run_it) in loads {
        let out = run_it.await.unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(report["failures"], 0, "{report}");
        assert!(report["responses"].as_u64().unwrap() > 300, "{report}");
    }
}
