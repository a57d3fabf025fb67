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
    let load = {
        let (c, url) = (c.clone(), url.clone());
        tokio::spawn(async move {
            let mut failed = 0;
            for _ in 0..150 {
                match send(&c, "GET", &url, "").await {
                    Ok(r) if r.status == 200 => {}
                    _ => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            failed
        })
    };
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
