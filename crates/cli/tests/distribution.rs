//! How each algorithm spreads requests over real backend processes.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;

fn backends_toml(addrs: &[(&str, u32)], algorithm: &str) -> String {
    let mut t = format!("[balancer]\nalgorithm = \"{algorithm}\"\n");
    for (a, w) in addrs {
        t.push_str(&format!("[[backends]]\naddress = \"{a}\"\nweight = {w}\n"));
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_is_even_and_weighted_round_robin_follows_weights() {
    let (_a, a) = backend("a", &[]);
    let (_b, b) = backend("b", &[]);
    let (_c, c) = backend("c", &[]);
    let dir = tempdir("rr");
    let http = client();

    let p = proxy(
        &dir,
        &backends_toml(&[(&a, 1), (&b, 1), (&c, 1)], "round-robin"),
        &[],
    );
    let counts =
        count_sequential(&http, &format!("http://{}/auth?ms=0", p.get("proxy")), 300).await;
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        vec![100, 100, 100],
        "{counts:?}"
    );
    drop(p);

    let p = proxy(
        &dir,
        &backends_toml(&[(&a, 3), (&b, 1), (&c, 2)], "weighted-round-robin"),
        &[],
    );
    let counts =
        count_sequential(&http, &format!("http://{}/auth?ms=0", p.get("proxy")), 600).await;
    assert_eq!(counts["a"], 300, "{counts:?}");
    assert_eq!(counts["b"], 100, "{counts:?}");
    assert_eq!(counts["c"], 200, "{counts:?}");
}

/// Places `n` concurrent long requests and returns where they went.
async fn concurrent_placement(url: &str, n: usize) -> BTreeMap<String, usize> {
    let http = client();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let http = http.clone();
            let url = url.to_string();
            tokio::spawn(async move { get(&http, &url).await })
        })
        .collect();
    let mut counts = BTreeMap::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        *counts.entry(r.instance.unwrap()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wlc_and_least_connections_fill_by_outstanding_requests() {
    let (_a, a) = backend("a", &["--workers", "100"]);
    let (_b, b) = backend("b", &["--workers", "100"]);
    let dir = tempdir("wlc");
    // Requests last 400 ms, so all 40 are outstanding together and placement reflects in-flight
    // counts: WLC keeps (in_flight + 1) / weight level, i.e. 30 : 10.
    let p = proxy(&dir, &backends_toml(&[(&a, 3), (&b, 1)], "wlc"), &[]);
    let counts =
        concurrent_placement(&format!("http://{}/process?ms=400", p.get("proxy")), 40).await;
    assert!((27..=33).contains(&counts["a"]), "{counts:?}");
    drop(p);

    let p = proxy(
        &dir,
        &backends_toml(&[(&a, 3), (&b, 1)], "least-connections"),
        &[],
    );
    let counts =
        concurrent_placement(&format!("http://{}/process?ms=400", p.get("proxy")), 40).await;
    assert!(
        (17..=23).contains(&counts["a"]),
        "least-connections ignores weights: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_ewma_sends_less_to_a_slowed_instance() {
    let (_a, a) = backend("fast-a", &[]);
    let (_b, b) = backend("fast-b", &[]);
    let (_c, c) = backend("slow", &["--slowdown", "5"]);
    let dir = tempdir("p2c");
    let p = proxy(
        &dir,
        &backends_toml(&[(&a, 1), (&b, 1), (&c, 1)], "p2c-ewma"),
        &[],
    );
    let plan = foresight_loadgen::Plan {
        target: format!("http://{}", p.get("proxy")),
        paths: vec!["/process".into()],
        mode: foresight_loadgen::Mode::Open {
            profile: foresight_workload::Profile::Constant { rate: 150.0 },
            arrivals: foresight_loadgen::Arrivals::Uniform,
        },
        duration: Duration::from_secs(4),
        timeout: Duration::from_secs(10),
        group_by: Some("x-foresight-instance".into()),
    };
    let report = foresight_loadgen::run(&plan).await.unwrap();
    assert_eq!(report.failures(), 0, "{report:?}");
    let slow = report.groups.get("slow").map_or(0, |s| s.requests);
    let total = report.overall.requests;
    // Round-robin would send a third (200 of 600); P2C-EWMA should send far less.
    assert!(slow * 100 < total * 15, "slow got {slow} of {total}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_keeps_a_key_on_one_instance() {
    let (_a, a) = backend("a", &[]);
    let (_b, b) = backend("b", &[]);
    let (_c, c) = backend("c", &[]);
    let dir = tempdir("hash");
    let mut toml = backends_toml(&[(&a, 1), (&b, 1), (&c, 1)], "consistent-hash");
    toml = toml.replacen("[balancer]\n", "[balancer]\nhash_on = \"path\"\n", 1);
    let p = proxy(&dir, &toml, &[]);
    let http = client();
    let mut owners = BTreeMap::new();
    // The backend serves unknown paths with 404 but still names itself; use its routes.
    for route in ["/auth", "/process", "/external"] {
        let url = format!("http://{}{route}?ms=0", p.get("proxy"));
        let counts = count_sequential(&http, &url, 20).await;
        assert_eq!(counts.len(), 1, "{route} spread over {counts:?}");
        owners.insert(route, counts.into_keys().next().unwrap());
    }
    // A query string is not part of the key.
    let r = get(&http, &format!("http://{}/auth?ms=0&x=1", p.get("proxy"))).await;
    assert_eq!(r.instance.as_deref(), Some(owners["/auth"].as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_algorithm_serves_through_the_proxy() {
    let (_a, a) = backend("a", &[]);
    let (_b, b) = backend("b", &[]);
    let dir = tempdir("every-algorithm");
    let http = client();
    for algorithm in foresight_balance::Algorithm::ALL {
        let p = proxy(
            &dir,
            "",
            &[
                "--backend",
                &a,
                "--backend",
                &b,
                "--algorithm",
                algorithm.name(),
            ],
        );
        let counts =
            count_sequential(&http, &format!("http://{}/auth?ms=1", p.get("proxy")), 20).await;
        assert_eq!(
            counts.values().sum::<usize>(),
            20,
            "{algorithm}: {counts:?}"
        );
    }
}
