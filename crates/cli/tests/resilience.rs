//! Failures and pool changes under traffic: a killed instance, a drain, a slow instance.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const FAST_CHECKS: &str = r#"
[health_check]
interval = "200ms"
timeout = "100ms"
rise = 2
fall = 2
[outlier]
consecutive_errors = 3
base_ejection_time = "30s"
max_ejection_time = "60s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_is_ejected_and_returns_when_healthy() {
    let (_a, a) = backend("a", &[]);
    let (_b, b) = backend("b", &[]);
    let (mut victim, v) = backend("victim", &[]);
    let port = victim.get("listen").to_string();
    let dir = tempdir("eject");
    // Ejections short enough to end within the test: a passing health check does not end one.
    let checks = FAST_CHECKS
        .replace(
            "base_ejection_time = \"30s\"",
            "base_ejection_time = \"2s\"",
        )
        .replace("max_ejection_time = \"60s\"", "max_ejection_time = \"4s\"");
    let p = proxy(
        &dir,
        &checks,
        &[
            "--backend",
            &a,
            "--backend",
            &b,
            "--backend",
            &v,
            "--algorithm",
            "round-robin",
        ],
    );
    let (url, admin) = (
        format!("http://{}/auth?ms=0", p.get("proxy")),
        p.get("admin").to_string(),
    );
    let http = client();
    assert_eq!(count_sequential(&http, &url, 30).await.len(), 3);

    victim.kill();
    // Requests keep succeeding: a refused connection is retried on another instance.
    let counts = count_sequential(&http, &url, 60).await;
    assert!(!counts.contains_key("victim"), "{counts:?}");
    eventually(Duration::from_secs(5), "victim out of rotation", || async {
        let s = backend_status(&http, &admin, &v).await.unwrap();
        s["eligible"] == false && (s["ejected"] == true || s["healthy"] == false)
    })
    .await;

    // Same port again: back once it passes its checks and any ejection has run out.
    let _back = spawn(&["backend", "--listen", &port, "--name", "victim"]);
    eventually(
        Duration::from_secs(10),
        "victim back in rotation",
        || async { backend_status(&http, &admin, &v).await.unwrap()["eligible"] == true },
    )
    .await;
    let counts = count_sequential(&http, &url, 30).await;
    assert_eq!(counts.get("victim"), Some(&10), "{counts:?}");
    let m = get(&http, &format!("http://{admin}/metrics")).await.body;
    assert!(
        m.contains(&format!(
            "foresight_upstream_errors_total{{service=\"default\",backend=\"{v}\",kind=\"connect\"}}"
        )),
        "{m}"
    );
    assert!(m.contains("foresight_retries_total"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_under_continuous_traffic_loses_no_request() {
    let (_a, a) = backend("a", &[]);
    let (_b, b) = backend("b", &[]);
    let (mut d, dr) = backend("drained", &[]);
    let dir = tempdir("drain");
    let p = proxy(
        &dir,
        "",
        &[
            "--backend",
            &a,
            "--backend",
            &b,
            "--backend",
            &dr,
            "--algorithm",
            "least-connections",
        ],
    );
    let url = format!("http://{}/process?ms=40", p.get("proxy"));
    let admin = p.get("admin").to_string();

    // (send time, instance) of every response; every failure as text.
    let served: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..12 {
        let (url, served, failures, stop) =
            (url.clone(), served.clone(), failures.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let http = client();
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                match send(&http, "GET", &url, "").await {
                    Ok(r) if r.status == 200 => {
                        served.lock().unwrap().push((sent, r.instance.unwrap()))
                    }
                    Ok(r) => failures
                        .lock()
                        .unwrap()
                        .push(format!("{}: {}", r.status, r.body)),
                    Err(e) => failures.lock().unwrap().push(e),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let http = client();
    let r = send(
        &http,
        "POST",
        &format!("http://{admin}/backends/drain?address={dr}&wait=true"),
        "",
    )
    .await
    .unwrap();
    let drained_at = Instant::now();
    assert_eq!(r.status, 200, "{}", r.body);
    let report: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(report["abandoned_in_flight"], 0, "{report}");
    assert!(
        backend_status(&http, &admin, &dr).await.is_none(),
        "removed after drain"
    );
    // The drained instance can now go away without anyone noticing.
    d.kill();
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let served = served.lock().unwrap();
    let before = served.iter().filter(|(_, i)| i == "drained").count();
    assert!(
        before > 10,
        "the drained instance served {before} before its drain"
    );
    let late: Vec<_> = served
        .iter()
        .filter(|(t, i)| i == "drained" && *t > drained_at)
        .collect();
    assert!(
        late.is_empty(),
        "{} requests sent after the drain reached it",
        late.len()
    );
    assert!(served.len() > 200, "{}", served.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_gets_504_and_no_instance_gets_503() {
    let (_a, a) = backend("a", &[]);
    let dir = tempdir("timeouts");
    let p = proxy(
        &dir,
        "[timeouts]\nrequest = \"300ms\"\n[outlier]\nenabled = false\n",
        &["--backend", &a],
    );
    let http = client();
    let r = get(&http, &format!("http://{}/process?ms=2000", p.get("proxy"))).await;
    assert_eq!((r.status, r.body.as_str()), (504, "upstream timeout\n"));
    let r = get(&http, &format!("http://{}/process?ms=1", p.get("proxy"))).await;
    assert_eq!(r.status, 200);

    let admin = p.get("admin");
    let r = send(
        &http,
        "DELETE",
        &format!("http://{admin}/backends?address={a}"),
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let r = get(&http, &format!("http://{}/process", p.get("proxy"))).await;
    assert_eq!((r.status, r.body.as_str()), (503, "no healthy instance\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_instance_without_alternatives_gets_502() {
    // Bind and drop to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempdir("502");
    let p = proxy(
        &dir,
        "[health_check]\nenabled = false\n",
        &["--backend", &format!("127.0.0.1:{port}")],
    );
    let r = get(&client(), &format!("http://{}/", p.get("proxy"))).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (502, "upstream connect error\n")
    );
}

/// The client idle timeout closes a kept-alive connection that sends nothing more and one that
/// never finishes its headers, and leaves a connection alone while its request is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_client_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_a, a) = backend("a", &[]);
    let dir = tempdir("client-idle");
    let p = proxy(
        &dir,
        "[timeouts]\nclient_idle = \"400ms\"\n",
        &["--backend", &a],
    );
    let addr = p.get("proxy").to_string();
    // Reads until the server closes; returns what was read and how long it took.
    async fn until_closed(s: &mut tokio::net::TcpStream) -> (String, Duration) {
        let t = Instant::now();
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
                Err(_) => panic!("connection still open after 10 s"),
            }
        }
        (String::from_utf8_lossy(&all).into_owned(), t.elapsed())
    }

    // A request that takes longer than the idle timeout is answered, then the kept-alive
    // connection is closed about one idle period after the response.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /process?ms=900 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (got, took) = until_closed(&mut s).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        took >= Duration::from_millis(1200) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // Half a request line, then silence.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /auth HTTP/1.1\r\nHo").await.unwrap();
    let (got, took) = until_closed(&mut s).await;
    assert!(!got.contains("200"), "{got}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    // A connection that never sends a byte.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (got, took) = until_closed(&mut s).await;
    assert!(
        got.is_empty() && took < Duration::from_secs(2),
        "{got} {took:?}"
    );
}

/// A retry after a refused connect never lands on an instance this request already failed
/// on: with a latency-aware balancer the refusing instance looks fastest, and before the fix
/// "retrying elsewhere" picked it again (4–6 502s a run of 100 requests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_never_returns_to_the_instance_that_refused() {
    let (_a, a) = backend("a", &[]);
    // A port that refuses: bound, then closed.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let dir = tempdir("retry-elsewhere");
    // No health checks and no ejection: every request that picks the dead one must retry.
    let p = proxy(
        &dir,
        "[health_check]\nenabled = false\n[outlier]\nenabled = false\n",
        &[
            "--backend",
            &a,
            "--backend",
            &dead,
            "--algorithm",
            "p2c-ewma",
        ],
    );
    let url = format!("http://{}/auth?ms=0", p.get("proxy"));
    let http = client();
    let mut failed = Vec::new();
    for _ in 0..100 {
        let r = send(&http, "GET", &url, "").await.unwrap();
        if r.status != 200 {
            failed.push((r.status, r.body));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of 100 failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    let m = get(&http, &format!("http://{}/metrics", p.get("admin")))
        .await
        .body;
    assert!(
        m.contains("foresight_retries_total"),
        "the dead instance was tried: {m}"
    );
}
