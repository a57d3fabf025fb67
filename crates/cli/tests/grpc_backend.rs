//! The example instance's gRPC service (`foresight backend`: `foresight.backend.v1.Backend`,
//! proto/backend.proto, and `grpc.health.v1.Health/Check`) through `foresight serve`, with a
//! real gRPC client (tonic, the instance's own message types): unary calls from one client
//! connection balanced per call across the serving instances, a starting instance kept out by
//! the gRPC health check, a server stream passed message by message, and the emulated
//! capacity's refusal as UNAVAILABLE.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use foresight_backend::{CallReply, CallRequest};
use tonic::client::Grpc;
use tonic::transport::Channel;
use tonic_prost::ProstCodec;

const CALL: &str = "/foresight.backend.v1.Backend/Call";
const STREAM: &str = "/foresight.backend.v1.Backend/Stream";

async fn channel(proxy: &str) -> Grpc<Channel> {
    let c = tonic::transport::Endpoint::from_shared(format!("http://{proxy}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Grpc::new(c)
}

async fn call(g: &mut Grpc<Channel>, req: CallRequest) -> Result<CallReply, tonic::Status> {
    g.ready().await.unwrap();
    let codec = ProstCodec::<CallRequest, CallReply>::default();
    let path = http::uri::PathAndQuery::from_static(CALL);
    g.unary(tonic::Request::new(req), path, codec)
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_instance_serves_grpc_through_the_proxy() {
    let dir = tempdir("grpc-backend");
    let ready: Vec<_> = (0..3)
        .map(|i| backend(&format!("g{i}"), &["--route", "/process=2ms"]))
        .collect();
    let (_starting, starting) = backend(
        "starting",
        &["--route", "/process=2ms", "--startup-delay", "10m"],
    );
    let list: Vec<String> = ready
        .iter()
        .map(|(_, a)| a.clone())
        .chain([starting.clone()])
        .map(|a| format!("{{ address = \"{a}\" }}"))
        .collect();
    let p = proxy(
        &dir,
        &format!(
            "[health_check]\ninterval = \"200ms\"\ntimeout = \"150ms\"\nrise = 1\nfall = 1\n\n\
             [[services]]\nname = \"work\"\nprotocol = \"h2c\"\n\
             health_check = {{ type = \"grpc\", grpc_service = \"foresight.backend.v1.Backend\" }}\n\
             balancer = {{ algorithm = \"round-robin\" }}\nbackends = [{}]\n",
            list.join(", ")
        ),
        &[],
    );
    let (admin, url) = (p.get("admin").to_string(), p.get("proxy").to_string());
    let http = client();
    eventually(
        Duration::from_secs(10),
        "the three ready instances healthy",
        || {
            let (http, admin) = (http.clone(), admin.clone());
            async move { healthy_members(&http, &admin, "work").await.len() == 3 }
        },
    )
    .await;

    // Unary calls from one client connection, balanced per call; none to the starting one.
    let mut g = channel(&url).await;
    const N: usize = 300;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..N {
        let r = call(&mut g, CallRequest::default()).await.expect("a call");
        assert_eq!(r.route, "/process");
        *seen.entry(r.instance).or_default() += 1;
    }
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        ["g0", "g1", "g2"],
        "{seen:?}"
    );
    for n in seen.values() {
        assert!(
            (*n as f64 - N as f64 / 3.0).abs() <= 0.1 * N as f64 / 3.0,
            "{seen:?}"
        );
    }
    let e = call(
        &mut g,
        CallRequest {
            route: "/nothing".into(),
            ..CallRequest::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");

    // A server stream: five replies, in order, from one instance, each after its service time.
    g.ready().await.unwrap();
    let started = std::time::Instant::now();
    let mut s = g
        .server_streaming(
            tonic::Request::new(CallRequest {
                ms: 40,
                count: 5,
                ..CallRequest::default()
            }),
            http::uri::PathAndQuery::from_static(STREAM),
            ProstCodec::<CallRequest, CallReply>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    let mut replies = Vec::new();
    while let Some(m) = s.message().await.unwrap() {
        replies.push(m);
    }
    assert_eq!(
        replies.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert!(replies.iter().all(|r| r.instance == replies[0].instance));
    assert!(started.elapsed() >= Duration::from_millis(200));
}

/// The emulated capacity refuses a call it has no room for as a gRPC server does:
/// UNAVAILABLE, which the proxy passes to the client as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_instance_answers_unavailable() {
    let dir = tempdir("grpc-backend-full");
    let (_b, addr) = backend("one", &["--workers", "1", "--queue", "0"]);
    let p = proxy(
        &dir,
        &format!(
            "[health_check]\nenabled = false\n\n[[services]]\nname = \"work\"\nprotocol = \"h2c\"\n\
             backends = [{{ address = \"{addr}\" }}]\n"
        ),
        &[],
    );
    let g = channel(p.get("proxy")).await;
    let slow = CallRequest {
        ms: 1000,
        ..CallRequest::default()
    };
    let (mut a, mut b) = (g.clone(), g);
    let first = tokio::spawn({
        let slow = slow.clone();
        async move { call(&mut a, slow).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let e = call(&mut b, slow).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert_eq!(e.message(), "queue full");
    assert_eq!(first.await.unwrap().unwrap().instance, "one");
}
