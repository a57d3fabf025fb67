//! gRPC through `foresight serve` to `protocol = "h2c"` instances, with real gRPC on both
//! sides (tonic): the standard health service (`grpc.health.v1.Health`, tonic-health) on
//! three instances that each report a different status for the service `who`, so a reply
//! names the instance that gave it. From one client connection, calls are balanced per call
//! (within ±10% of even), their `grpc-status` trailers arrive (tonic fails a call without
//! them), an error status from an instance passes as it is, and with no instance left the
//! proxy answers as a gRPC server would: UNAVAILABLE.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A gRPC instance on a free port whose service `who` reports `status`; `known` is served
/// too (SERVING), and anything else is NOT_FOUND.
async fn instance(status: tonic_health::ServingStatus) -> (String, tokio::task::JoinHandle<()>) {
    let (addr, task, _) = reporting_instance(status).await;
    (addr, task)
}

/// [`instance`] with the reporter that changes its statuses.
async fn reporting_instance(
    status: tonic_health::ServingStatus,
) -> (
    String,
    tokio::task::JoinHandle<()>,
    tonic_health::server::HealthReporter,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_service_status("who", status).await;
    reporter
        .set_service_status("known", tonic_health::ServingStatus::Serving)
        .await;
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    (format!("http://{addr}"), task, reporter)
}

async fn check(
    c: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
) -> Result<ServingStatus, tonic::Status> {
    let r = c
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?;
    Ok(r.into_inner().status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_one_connection_are_balanced_per_call_with_their_trailers() {
    let dir = tempdir("grpc");
    let statuses = [
        tonic_health::ServingStatus::Serving,
        tonic_health::ServingStatus::NotServing,
        tonic_health::ServingStatus::Unknown,
    ];
    let mut instances = Vec::new();
    for s in statuses {
        instances.push(instance(s).await);
    }
    let list: Vec<String> = instances
        .iter()
        .map(|(a, _)| format!("{{ address = \"{a}\" }}"))
        .collect();
    let log = dir.join("access.log");
    let config = format!(
        "[access_log]\npath = \"{}\"\n\n[health_check]\nenabled = false\n\n[[services]]\nname = \"grpc\"\nprotocol = \"h2c\"\n\
         balancer = {{ algorithm = \"round-robin\" }}\nbackends = [{}]\n",
        log.display(),
        list.join(", ")
    );
    let p = proxy(&dir, &config, &[]);
    let (admin, url) = (p.get("admin").to_string(), p.get("proxy").to_string());
    // One client connection (a tonic Channel to one address is one HTTP/2 connection).
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{url}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = HealthClient::new(channel);

    const N: usize = 300;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..N {
        let s = check(&mut c, "who")
            .await
            .expect("a call through the proxy");
        *seen.entry(format!("{s:?}")).or_default() += 1;
    }
    assert_eq!(seen.len(), 3, "every instance answered: {seen:?}");
    for (status, n) in &seen {
        let even = N as f64 / 3.0;
        assert!(
            (*n as f64 - even).abs() <= 0.1 * even,
            "{status}: {n} of {N} calls ({seen:?})"
        );
    }
    // An instance's error status passes through as it is (grpc-status 5 in its trailers).
    let e = check(&mut c, "nobody").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    // Concurrent calls on the one connection: all answered.
    let mut calls = Vec::new();
    for _ in 0..60 {
        let mut c = c.clone();
        calls.push(tokio::spawn(async move { check(&mut c, "known").await }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), ServingStatus::Serving);
    }
    let http = client();
    let m = get(&http, &format!("http://{admin}/metrics")).await.body;
    let answered: f64 = m
        .lines()
        .filter(|l| l.starts_with("foresight_requests_total{") && l.contains("code=\"200\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(answered, (N + 1 + 60) as f64, "{m}");

    // No instance left: the proxy's own answer is a gRPC error, UNAVAILABLE.
    for (addr, task) in &instances {
        task.abort();
        let r = send(
            &http,
            "POST",
            &format!("http://{admin}/services/grpc/backends/drain?address={addr}&wait=true"),
            "",
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let e = check(&mut c, "who").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(e.message().contains("no healthy instance"), "{e:?}");

    // Each call's gRPC status is in its access log line: from the instances' trailers and
    // from the proxy's own trailers-only answer.
    let lines = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    eventually(Duration::from_secs(5), "every call logged", || async {
        lines().len() == N + 1 + 60 + 1
    })
    .await;
    let lines = lines();
    let status = |s: u64| lines.iter().filter(|l| l["grpc_status"] == s).count();
    assert_eq!(
        (status(0), status(5), status(14)),
        (N + 60, 1, 1),
        "{lines:?}"
    );
    let unavailable = lines.iter().find(|l| l["grpc_status"] == 14).unwrap();
    assert!(
        unavailable["grpc_message"]
            .as_str()
            .is_some_and(|m| m.contains("no healthy instance")),
        "{unavailable}"
    );
    assert!(lines
        .iter()
        .all(|l| l["status"] == 200 && l["protocol"] == "HTTP/2.0"));
}

/// A gRPC client's `grpc-timeout` bounds its call at the proxy: an instance slower than it
/// gets the call cut, and the client gets DEADLINE_EXCEEDED (grpc-status 4), in time. The
/// call's status from an instance is counted in `foresight_grpc_responses_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_timeout_bounds_the_call() {
    use http_body_util::{BodyExt, Full};
    // An h2c instance that answers after 2 s.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    let mut r = http::Response::new(Full::new(bytes::Bytes::new()));
                    r.headers_mut().insert(
                        "content-type",
                        http::HeaderValue::from_static("application/grpc"),
                    );
                    r.headers_mut()
                        .insert("grpc-status", http::HeaderValue::from_static("0"));
                    Ok::<_, std::convert::Infallible>(r)
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                        .await;
            });
        }
    });
    let (fast, _task) = instance(tonic_health::ServingStatus::Serving).await;
    let dir = tempdir("grpc-timeout");
    let p = proxy(
        &dir,
        &format!(
            "[health_check]\nenabled = false\n\n[[services]]\nname = \"slow\"\nprotocol = \"h2c\"\n\
             backends = [{{ address = \"http://{addr}\" }}]\n\n[[services]]\nname = \"fast\"\n\
             protocol = \"h2c\"\nbackends = [{{ address = \"{fast}\" }}]\n\n\
             [[routes]]\npath_prefix = \"/grpc.health.v1.Health\"\nservice = \"fast\"\n\n\
             [[routes]]\nservice = \"slow\"\n"
        ),
        &[],
    );
    let (admin, url) = (p.get("admin").to_string(), p.get("proxy").to_string());
    let h2: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let call = |timeout: Option<&'static str>| {
        let mut b = http::Request::post(format!("http://{url}/slow.Service/Call"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(t) = timeout {
            b = b.header("grpc-timeout", t);
        }
        h2.request(
            b.body(Full::new(bytes::Bytes::from_static(&[0, 0, 0, 0, 0])))
                .unwrap(),
        )
    };
    let started = std::time::Instant::now();
    let r = call(Some("200m")).await.unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["grpc-status"], "4", "{r:?}");
    assert!(
        took < std::time::Duration::from_millis(1500),
        "cut at the stated deadline, not the instance's 2 s: {took:?}"
    );
    // Without a stated deadline the slow answer comes, with its status in the head.
    let r = call(None).await.unwrap();
    assert_eq!(r.headers()["grpc-status"], "0");
    let _ = r.into_body().collect().await;

    // The instance's statuses are counted: NOT_FOUND (5) from the fast one, 0 from the slow.
    let mut c = HealthClient::new(
        tonic::transport::Endpoint::from_shared(format!("http://{url}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    assert_eq!(
        check(&mut c, "nobody").await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    check(&mut c, "known").await.unwrap();
    let m = get(&client(), &format!("http://{admin}/metrics"))
        .await
        .body;
    for needle in [
        "foresight_grpc_responses_total{service=\"fast\"",
        "grpc_status=\"5\"} 1",
        "grpc_status=\"0\"} 1",
    ] {
        assert!(m.contains(needle), "{needle}: {m}");
    }
}

/// `health_check.type = "grpc"` asks each instance `grpc.health.v1.Health/Check` for
/// `grpc_service`: only the instance that answers SERVING stays in the pool, and every call
/// goes to it. An `h2c` service's plain HTTP check goes over HTTP/2 (before: HTTP/1.1, which
/// an HTTP/2-only instance never answers, so it was never healthy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_checks_keep_only_serving_instances() {
    let dir = tempdir("grpc-health");
    let mut instances = Vec::new();
    for s in [
        tonic_health::ServingStatus::Serving,
        tonic_health::ServingStatus::NotServing,
        tonic_health::ServingStatus::Unknown,
    ] {
        instances.push(reporting_instance(s).await);
    }
    let list: Vec<String> = instances
        .iter()
        .map(|(a, _, _)| format!("{{ address = \"{a}\" }}"))
        .collect();
    let config = format!(
        "[health_check]\ninterval = \"200ms\"\ntimeout = \"150ms\"\nrise = 1\nfall = 1\n\n\
         [[services]]\nname = \"grpc\"\nprotocol = \"h2c\"\n\
         health_check = {{ type = \"grpc\", grpc_service = \"who\" }}\n\
         balancer = {{ algorithm = \"round-robin\" }}\nbackends = [{}]\n\n\
         [[services]]\nname = \"plain\"\nprotocol = \"h2c\"\nbackends = [{}]\n\n\
         [[routes]]\nservice = \"plain\"\npath_prefix = \"/plain\"\n\n\
         [[routes]]\nservice = \"grpc\"\npath_prefix = \"/\"\n",
        list.join(", "),
        list[0],
    );
    let p = proxy(&dir, &config, &[]);
    let (admin, url) = (p.get("admin").to_string(), p.get("proxy").to_string());
    let http = client();
    let healthy = |service: &'static str| {
        let (http, admin) = (http.clone(), admin.clone());
        async move { healthy_members(&http, &admin, service).await }
    };
    let serving = instances[0].0.clone();
    eventually(
        Duration::from_secs(10),
        "only the SERVING instance healthy",
        || {
            let (healthy, serving) = (healthy("grpc"), serving.clone());
            async move { healthy.await == vec![serving] }
        },
    )
    .await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{url}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = HealthClient::new(channel);
    for _ in 0..30 {
        assert_eq!(check(&mut c, "who").await.unwrap(), ServingStatus::Serving);
    }
    // The plain HTTP check over HTTP/2 reaches the instance.
    assert_eq!(healthy("plain").await, vec![serving.clone()]);
    // The SERVING instance stops serving `who`: no instance healthy, and the client gets
    // UNAVAILABLE.
    instances[0]
        .2
        .set_service_status("who", tonic_health::ServingStatus::NotServing)
        .await;
    eventually(Duration::from_secs(10), "no instance healthy", || {
        let healthy = healthy("grpc");
        async move { healthy.await.is_empty() }
    })
    .await;
    let e = check(&mut c, "who").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
}

/// An h2c instance that answers every call UNAVAILABLE, trailers-only, and counts them.
async fn unavailable_instance() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use http_body_util::Full;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counted = calls.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let counted = counted.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let mut r = http::Response::new(Full::new(bytes::Bytes::new()));
                    let h = r.headers_mut();
                    h.insert(
                        "content-type",
                        http::HeaderValue::from_static("application/grpc"),
                    );
                    h.insert("grpc-status", http::HeaderValue::from_static("14"));
                    h.insert("grpc-message", http::HeaderValue::from_static("overloaded"));
                    async move { Ok::<_, std::convert::Infallible>(r) }
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                        .await;
            });
        }
    });
    (format!("http://{addr}"), calls)
}

/// `retries.on_grpc_status`: a call to a method marked safe that an instance answers
/// UNAVAILABLE (trailers-only) is sent again, body and all, to another instance; a call to a
/// method not marked safe gets the instance's UNAVAILABLE as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_safe_methods_are_retried_on_unavailable() {
    use std::sync::atomic::Ordering;
    let (bad, bad_calls) = unavailable_instance().await;
    // NOT_SERVING for `who`: an answer that proves the retried call's body arrived whole (an
    // empty request asks for the server's overall status, SERVING).
    let (good, _task) = instance(tonic_health::ServingStatus::NotServing).await;
    let run = |methods: &'static str| {
        let (bad, good) = (bad.clone(), good.clone());
        async move {
            let dir = tempdir("grpc-retry");
            let p = proxy(
                &dir,
                &format!(
                    "[health_check]\nenabled = false\n\n[[services]]\nname = \"grpc\"\n\
                     protocol = \"h2c\"\nbalancer = {{ algorithm = \"round-robin\" }}\n\
                     retries = {{ attempts = 1, on_grpc_status = [\"unavailable\"], \
                     grpc_methods = [{methods}] }}\n\
                     backends = [{{ address = \"{bad}\" }}, {{ address = \"{good}\" }}]\n"
                ),
                &[],
            );
            let channel =
                tonic::transport::Endpoint::from_shared(format!("http://{}", p.get("proxy")))
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
            let mut c = HealthClient::new(channel);
            let mut answers: BTreeMap<String, usize> = BTreeMap::new();
            for _ in 0..40 {
                let a = match check(&mut c, "who").await {
                    Ok(s) => format!("{s:?}"),
                    Err(e) => format!("{:?}", e.code()),
                };
                *answers.entry(a).or_default() += 1;
            }
            // A call too large to read ahead (over 64 KiB) is never retried: UNAVAILABLE
            // from the bad instance, NOT_FOUND (an unknown service) from the good one —
            // never the answer to an empty request (SERVING).
            let big = "x".repeat(70_000);
            for _ in 0..6 {
                let a = match check(&mut c, &big).await {
                    Ok(s) => format!("big {s:?}"),
                    Err(e) => format!("big {:?}", e.code()),
                };
                *answers.entry(a).or_default() += 1;
            }
            let m = get(&client(), &format!("http://{}/metrics", p.get("admin")))
                .await
                .body;
            (answers, m)
        }
    };
    let (mut answers, m) = run("\"/grpc.health.v1.Health/Check\"").await;
    let big: BTreeMap<String, usize> = answers
        .iter()
        .filter(|(k, _)| k.starts_with("big"))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    answers.retain(|k, _| !k.starts_with("big"));
    assert_eq!(
        answers,
        BTreeMap::from([("NotServing".to_string(), 40)]),
        "every call answered by the good instance"
    );
    assert!(
        big.keys()
            .all(|k| k == "big Unavailable" || k == "big NotFound"),
        "{big:?}"
    );
    assert!(big.contains_key("big Unavailable"), "{big:?}");
    // Round-robin moves on at every try, retries included, so the bad instance meets most
    // first tries; each of them was retried, the large calls excepted.
    let first = bad_calls.load(Ordering::SeqCst);
    let retried = first - big["big Unavailable"];
    assert!((20..=40).contains(&retried), "{retried} retried calls");
    assert!(
        m.contains(&format!(
            "foresight_retries_total{{service=\"grpc\"}} {retried}"
        )),
        "{m}"
    );
    // Not a safe method: UNAVAILABLE passes to the client for the calls that met it.
    let (answers, _) = run("\"/other.Service/*\"").await;
    let unavailable = answers.get("Unavailable").copied().unwrap_or(0);
    let big_unavailable = answers.get("big Unavailable").copied().unwrap_or(0);
    assert_eq!(
        unavailable + big_unavailable,
        bad_calls.load(Ordering::SeqCst) - first,
        "{answers:?}"
    );
    assert!((15..=25).contains(&unavailable), "{answers:?}");
}
