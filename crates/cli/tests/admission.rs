//! A service's rate limit (429 with Retry-After, per client or per header value) and its
//! concurrency limit (503 at once), against a real proxy and instance.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;

fn metric(m: &str, name: &str) -> u64 {
    m.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}{{service=\"default\"}} ")))
        .unwrap_or_else(|| panic!("{name} in\n{m}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_a_client_gets_429_with_retry_after() {
    let dir = tempdir("admission-rate");
    let (_b, b) = backend("one", &["--route", "/a=1ms"]);
    let p = proxy(
        &dir,
        &format!(
            "backends = [{{ address = \"{b}\" }}]\n[rate_limit]\nrate = 1.0\nburst = 3\nkey = \"header:x-api-key\"\n"
        ),
        &[],
    );
    let (proxy_addr, admin) = (p.get("proxy").to_string(), p.get("admin").to_string());
    let c = client();
    let call = |key: &'static str| {
        let c = c.clone();
        let url = format!("http://{proxy_addr}/a");
        async move {
            let req = hyper::Request::get(url)
                .header("x-api-key", key)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let r = c.request(req).await.unwrap();
            let retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), retry_after)
        }
    };
    let mut alice = Vec::new();
    for _ in 0..8 {
        alice.push(call("alice").await);
    }
    let ok = alice.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 3, "the burst: {alice:?}");
    let (status, retry_after) = &alice[7];
    assert_eq!(*status, 429);
    assert_eq!(
        retry_after.as_deref(),
        Some("1"),
        "a whole second at 1 req/s"
    );
    assert_eq!(call("bob").await.0, 200, "another key has its own burst");
    let m = get(&c, &format!("http://{admin}/metrics")).await.body;
    assert_eq!(metric(&m, "foresight_rate_limited_total"), 5);
    // A second on, alice may send one more.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(call("alice").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_concurrency_limit_requests_are_shed_at_once() {
    let dir = tempdir("admission-busy");
    let (_b, b) = backend(
        "one",
        &["--route", "/slow=600ms", "--distribution", "constant"],
    );
    let p = proxy(
        &dir,
        &format!("backends = [{{ address = \"{b}\" }}]\n[circuit_breaker]\nmax_requests = 2\n"),
        &[],
    );
    let (proxy_addr, admin) = (p.get("proxy").to_string(), p.get("admin").to_string());
    let c = client();
    let url = format!("http://{proxy_addr}/slow");
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move { get(&c, &url).await.status })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    for _ in 0..3 {
        let r = get(&c, &url).await;
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(r.body.contains("concurrency limit"), "{}", r.body);
    }
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "shed at once"
    );
    for s in slow {
        assert_eq!(s.await.unwrap(), 200);
    }
    assert_eq!(get(&c, &url).await.status, 200, "room again");
    let m = get(&c, &format!("http://{admin}/metrics")).await.body;
    assert_eq!(metric(&m, "foresight_shed_total"), 3);
    assert!(
        metric(&m, "foresight_refused_total") >= 3,
        "the loop's overload signal"
    );
}
