//! Streams an HTTP/2 instance did not process — refused with `REFUSED_STREAM`, or above a
//! graceful GOAWAY's last stream (RFC 9113 §8.7) — go to another instance whatever the method,
//! when the body can be sent again: a request without one, or a gRPC call to a method marked
//! safe (read ahead). A request whose body went out as it came gets the 502 (UNAVAILABLE for
//! gRPC) it gets today. The refusing instance is h2's own server, refusing every stream.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// An h2c instance that refuses every stream; counts them.
async fn refusing_instance() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let refused = Arc::new(AtomicUsize::new(0));
    let counted = refused.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(socket).await else {
                    return;
                };
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    counted.fetch_add(1, Ordering::SeqCst);
                    respond.send_reset(h2::Reason::REFUSED_STREAM);
                }
            });
        }
    });
    (format!("http://{addr}"), refused)
}

/// Round-robin over `backends`, with `retries` (TOML keys) and a budget that never runs out;
/// no ejection, so that the refusing instance keeps its turn.
fn config(backends: &[&str], retries: &str) -> String {
    let list: Vec<String> = backends
        .iter()
        .map(|a| format!("{{ address = \"{a}\" }}"))
        .collect();
    format!(
        "[health_check]\nenabled = false\n\n[outlier]\nenabled = false\n\n\
         [[services]]\nname = \"h2\"\nprotocol = \"h2c\"\n\
         balancer = {{ algorithm = \"round-robin\" }}\n\
         retries = {{ budget_ratio = 10{retries} }}\nbackends = [{}]\n",
        list.join(", ")
    )
}

fn retries_total(metrics: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with("foresight_retries_total{") && l.contains("service=\"h2\""))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_streams_go_to_another_instance() {
    let (refusing, refused) = refusing_instance().await;
    let (_b, good) = backend("h2-good", &["--route", "/auth=1ms"]);
    let dir = tempdir("h2-refused");
    let p = proxy(&dir, &config(&[&refusing, &good], ""), &[]);
    let (admin, url) = (p.get("admin").to_string(), p.get("proxy").to_string());
    let http = client();

    // Without a body: every request is answered, those sent to the refusing instance first
    // after a second try.
    for i in 0..40 {
        let r = send(&http, "DELETE", &format!("http://{url}/auth"), "")
            .await
            .unwrap();
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    let first = refused.load(Ordering::SeqCst);
    assert!(first >= 15, "{first} refused of 40");
    let m = get(&http, &format!("http://{admin}/metrics")).await.body;
    assert_eq!(retries_total(&m), first as f64, "{m}");

    // A body that went out as it came cannot be sent again: a 502 for each refusal.
    let mut bad_gateway = 0;
    for _ in 0..10 {
        let r = send(&http, "POST", &format!("http://{url}/auth"), "payload")
            .await
            .unwrap();
        assert!(r.status == 200 || r.status == 502, "{}", r.status);
        bad_gateway += usize::from(r.status == 502);
    }
    assert_eq!(bad_gateway, refused.load(Ordering::SeqCst) - first);
    assert!(bad_gateway >= 3, "{bad_gateway} of 10 refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_grpc_calls_to_safe_methods_are_sent_again() {
    let (refusing, refused) = refusing_instance().await;
    // A real gRPC instance: the standard health service, SERVING.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let good = format!("http://{}", listener.local_addr().unwrap());
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("who", tonic_health::ServingStatus::Serving)
        .await;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let dir = tempdir("h2-refused-grpc");
    let retries =
        ", on_grpc_status = [\"unavailable\"], grpc_methods = [\"/grpc.health.v1.Health/*\"]";
    let p = proxy(&dir, &config(&[&refusing, &good], retries), &[]);
    let url = p.get("proxy").to_string();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{url}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = HealthClient::new(channel);
    for i in 0..20 {
        let r = c
            .check(HealthCheckRequest {
                service: "who".into(),
            })
            .await
            .unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert_eq!(
            r.into_inner().status(),
            tonic_health::pb::health_check_response::ServingStatus::Serving
        );
    }
    assert!(refused.load(Ordering::SeqCst) >= 8);
}

/// An h2c instance that closes every connection gracefully after its first stream: it
/// answers that one, then sends GOAWAY; the streams the proxy opened meanwhile are not
/// processed. Counts connections.
async fn one_stream_per_connection_instance() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(socket).await else {
                    return;
                };
                let mut first = true;
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    if first {
                        let _ = respond.send_response(http::Response::new(()), true);
                        conn.graceful_shutdown();
                        first = false;
                    } else {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), connections)
}

/// An instance shutting down gracefully (GOAWAY after each answer, as a server being
/// replaced does): no request fails, each goes on a connection of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_goaway_loses_no_request() {
    let (instance, connections) = one_stream_per_connection_instance().await;
    let dir = tempdir("h2-goaway");
    // Every connection ends after one stream, so a request may meet several closing ones in
    // a row: attempts enough for that.
    let p = proxy(&dir, &config(&[&instance], ", attempts = 8"), &[]);
    let url = p.get("proxy").to_string();
    let http = client();
    // Several at once, so that some are sent on a connection the GOAWAY is closing.
    for round in 0..5 {
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let (http, url) = (http.clone(), url.clone());
                tokio::spawn(async move { get(&http, &format!("http://{url}/")).await.status })
            })
            .collect();
        for c in calls {
            assert_eq!(c.await.unwrap(), 200, "round {round}");
        }
    }
    assert!(connections.load(Ordering::SeqCst) >= 10);
}
