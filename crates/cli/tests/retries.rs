//! Retries with a budget, against a real proxy: an idempotent request that gets a configured
//! status or times out on one instance is sent to another; a request with a body is not; and
//! when the budget is spent, retries stop and are counted.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::AsyncWriteExt;

/// An instance that answers every request `503` (a failing replica).
async fn failing_instance() -> (String, tokio::task::JoinHandle<()>) {
    raw_instance(|mut s| async move {
        while read_head(&mut s).await.is_some() {
            if s.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 5\r\n\r\nbusy\n")
                .await
                .is_err()
            {
                return;
            }
        }
    })
    .await
}

/// An instance that reads requests and never answers (a hung replica).
async fn hung_instance() -> (String, tokio::task::JoinHandle<()>) {
    raw_instance(|mut s| async move { while read_head(&mut s).await.is_some() {} }).await
}

fn config(bad: &str, good: &str, retries: &str) -> String {
    format!(
        "[health_check]\nenabled = false\n[outlier]\nenabled = false\n[balancer]\nalgorithm = \"round-robin\"\n\
         [retries]\n{retries}\n[[backends]]\naddress = \"{bad}\"\n[[backends]]\naddress = \"{good}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_requests_are_retried_on_status_within_the_budget() {
    let dir = tempdir("retries-status");
    let (bad, _t) = failing_instance().await;
    let (_g, good) = backend("good", &["--route", "/r=1ms"]);
    let p = proxy(
        &dir,
        &config(&bad, &good, "on_status = [503]\nbudget_ratio = 0.0\nbudget_min_per_second = 1.0\nbudget_window = \"10s\""),
        &[],
    );
    let (proxy_addr, admin) = (p.get("proxy").to_string(), p.get("admin").to_string());
    let c = client();
    let url = format!("http://{proxy_addr}/r");
    // The budget (1 per second over 10 s, no ratio) covers 10 retries: the first ten requests
    // that meet the failing instance are retried, later ones get its 503.
    let mut codes = Vec::new();
    for _ in 0..40 {
        codes.push(get(&c, &url).await.status);
    }
    assert!(codes[..10].iter().all(|c| *c == 200), "{codes:?}");
    let failed = codes.iter().filter(|c| **c == 503).count() as u64;
    assert!(failed > 0, "the budget ran out: {codes:?}");
    let m = get(&c, &format!("http://{admin}/metrics")).await.body;
    let value = |name: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}{{service=\"default\"}} ")))
            .unwrap_or_else(|| panic!("{name} in\n{m}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("foresight_retries_total"), 10, "the budget's floor");
    assert_eq!(
        value("foresight_retry_budget_exhausted_total"),
        failed,
        "every 503 a client saw is a retry the budget refused"
    );
    // A request with a body is not idempotent-safe to resend: its 503 comes back.
    let mut posts = Vec::new();
    for _ in 0..2 {
        posts.push(send(&c, "POST", &url, "x").await.unwrap().status);
    }
    assert!(posts.contains(&503), "{posts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_try_that_times_out_is_retried_elsewhere() {
    let dir = tempdir("retries-timeout");
    let (hung, _t) = hung_instance().await;
    let (_g, good) = backend("good", &["--route", "/r=1ms"]);
    let p = proxy(
        &dir,
        &config(&hung, &good, "per_try_timeout = \"300ms\""),
        &[],
    );
    let c = client();
    let url = format!("http://{}/r", p.get("proxy"));
    for _ in 0..4 {
        let started = Instant::now();
        let r = get(&c, &url).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "at most one per-try timeout: {:?}",
            started.elapsed()
        );
    }
}
