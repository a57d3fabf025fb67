//! gRPC through `foresight serve` to `protocol = "h2c"` instances, with real gRPC on both
//! sides (tonic): the standard health service (`grpc.health.v1.Health`, tonic-health) on
//! three instances that each report a different status for the service `who`, so a reply
//! names the instance that gave it. From one client connection, calls are balanced per call
//! (within ±10% of even), their `grpc-status` trailers arrive (tonic fails a call without
//! them), an error status from an instance passes as it is, and with no instance left the
//! proxy answers as a gRPC server would: UNAVAILABLE.

mod common;

use std::collections::BTreeMap;

use common::*;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A gRPC instance on a free port whose service `who` reports `status`; `known` is served
/// too (SERVING), and anything else is NOT_FOUND.
async fn instance(status: tonic_health::ServingStatus) -> (String, tokio::task::JoinHandle<()>) {
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
    (format!("http://{addr}"), task)
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
    let config = format!(
        "[health_check]\nenabled = false\n\n[[services]]\nname = \"grpc\"\nprotocol = \"h2c\"\n\
         balancer = {{ algorithm = \"round-robin\" }}\nbackends = [{}]\n",
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
}
