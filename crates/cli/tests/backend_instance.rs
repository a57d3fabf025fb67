//! The example service: capacity limits, start-up delay, its metrics, and its idle cost.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_and_startup_delay_gates_ready() {
    let (_p, addr) = backend(
        "tiny",
        &["--workers", "1", "--queue", "1", "--startup-delay", "500ms"],
    );
    let http = client();
    let r = get(&http, &format!("{addr}/ready")).await;
    assert_eq!((r.status, r.body.as_str()), (503, "starting\n"));
    assert_eq!(get(&http, &format!("{addr}/auth")).await.status, 503);
    assert_eq!(get(&http, &format!("{addr}/healthz")).await.status, 200);
    eventually(Duration::from_secs(3), "ready", || async {
        get(&http, &format!("{addr}/ready")).await.status == 200
    })
    .await;

    // One worker, one queue slot: of three simultaneous 300 ms requests, one is refused.
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let (http, url) = (http.clone(), format!("{addr}/process?ms=300"));
            tokio::spawn(async move { get(&http, &url).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, vec![200, 200, 503]);
    assert_eq!(get(&http, &format!("{addr}/nope")).await.status, 404);

    let m = get(&http, &format!("{addr}/metrics")).await.body;
    for needle in [
        "foresight_backend_requests_total{route=\"/process\",code=\"200\"} 2",
        "foresight_backend_requests_total{route=\"/process\",code=\"503\"} 1",
        "foresight_backend_request_duration_seconds_bucket",
        "foresight_backend_in_flight 0",
        "foresight_backend_queue_length 0",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(m.contains(needle), "missing {needle} in\n{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowdown_scales_service_time() {
    let (_p, addr) = backend(
        "slow",
        &[
            "--slowdown",
            "4",
            "--distribution",
            "constant",
            "--route",
            "/work=50ms",
        ],
    );
    let http = client();
    let start = std::time::Instant::now();
    let r = get(&http, &format!("{addr}/work")).await;
    assert_eq!(r.status, 200);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert_eq!(
        get(&http, &format!("{addr}/")).await.status,
        200,
        "/ serves the first route"
    );
}

/// CPU ticks (1/100 s) used by a process so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn twenty_idle_instances_cost_almost_nothing() {
    let procs: Vec<_> = (0..20).map(|i| backend(&format!("i{i}"), &[]).0).collect();
    std::thread::sleep(Duration::from_millis(300));
    let before: u64 = procs.iter().map(|p| cpu_ticks(p.pid())).sum();
    std::thread::sleep(Duration::from_secs(2));
    let after: u64 = procs.iter().map(|p| cpu_ticks(p.pid())).sum();
    // 20 instances over 2 s: under 0.1 CPU-second in total (a busy loop would be 40).
    assert!(
        after - before < 10,
        "idle instances used {} ticks",
        after - before
    );
    let rss: u64 = procs.iter().map(|p| rss_kb(p.pid())).max().unwrap();
    assert!(rss < 32 * 1024, "an idle instance uses {rss} kB");
}
