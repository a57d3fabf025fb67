//! DNS discovery: a real `foresight serve` resolves a name at a DNS server run here (UDP, the
//! wire format encoded with hickory-proto) whose records the test changes; the instances are
//! real `foresight backend` processes on 127.0.0.2, .3 and .4 sharing one port.

mod common;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{rdata::A, RData, Record, RecordType};
use tokio::net::UdpSocket;

/// What the DNS server answers for every A query: the addresses, or SERVFAIL when `None`.
type Zone = Arc<Mutex<Option<Vec<Ipv4Addr>>>>;

/// A DNS server on a loopback UDP port answering every name's A query from `zone` (TTL 1 s)
/// and AAAA queries with no records.
async fn dns_server(zone: Zone) -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut answer = Message::response(query.metadata.id, query.metadata.op_code);
            answer.metadata.message_type = MessageType::Response;
            answer.metadata.authoritative = true;
            answer.metadata.recursion_desired = query.metadata.recursion_desired;
            answer.metadata.recursion_available = true;
            answer.queries = query.queries.clone();
            let ips = zone.lock().unwrap().clone();
            match ips {
                None => answer.metadata.response_code = ResponseCode::ServFail,
                Some(ips) => {
                    for q in &query.queries {
                        if q.query_type() == RecordType::A {
                            for ip in &ips {
                                answer.answers.push(Record::from_rdata(
                                    q.name().clone(),
                                    1,
                                    RData::A(A(*ip)),
                                ));
                            }
                        }
                    }
                }
            }
            if let Ok(bytes) = answer.to_vec() {
                let _ = sock.send_to(&bytes, from).await;
            }
        }
    });
    port
}

/// A port free on 127.0.0.2, .3 and .4.
fn shared_port() -> u16 {
    loop {
        let port = free_port();
        if (2..=4).all(|i| std::net::TcpListener::bind((Ipv4Addr::new(127, 0, 0, i), port)).is_ok())
        {
            return port;
        }
    }
}

fn instance(i: u8, port: u16) -> Proc {
    spawn(&[
        "backend",
        "--listen",
        &format!("127.0.0.{i}:{port}"),
        "--name",
        &format!("b{i}"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_discovery_follows_the_records_and_keeps_the_set_when_the_server_fails() {
    let port = shared_port();
    let _b: Vec<Proc> = (2..=4).map(|i| instance(i, port)).collect();
    let zone: Zone = Arc::new(Mutex::new(Some(vec![
        Ipv4Addr::new(127, 0, 0, 2),
        Ipv4Addr::new(127, 0, 0, 3),
    ])));
    let ns = dns_server(zone.clone()).await;
    let dir = tempdir("dns-discovery");
    let p = proxy(
        &dir,
        &format!(
            r#"
drain_timeout = "5s"
[balancer]
algorithm = "round-robin"
[discovery]
type = "dns"
name = "api.test"
port = {port}
interval = "1s"
nameserver = "127.0.0.1:{ns}"
"#
        ),
        &[],
    );
    let (url, admin) = (
        format!("http://{}/", p.get("proxy")),
        p.get("admin").to_string(),
    );
    let c = client();
    let a = |i: u8| format!("http://127.0.0.{i}:{port}");

    eventually(Duration::from_secs(10), "the first set joins", || async {
        members(&c, &admin).await == [a(2), a(3)]
    })
    .await;
    let counts = count_sequential(&c, &url, 20).await;
    assert_eq!(counts.get("b2"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("b3"), Some(&10), "{counts:?}");

    // The records change: .2 leaves (drained), .4 joins; requests keep succeeding meanwhile.
    *zone.lock().unwrap() = Some(vec![
        Ipv4Addr::new(127, 0, 0, 3),
        Ipv4Addr::new(127, 0, 0, 4),
    ]);
    let load = background_load(&c, &url, 150, Duration::from_millis(20));
    eventually(
        Duration::from_secs(10),
        "the new set replaces the old",
        || async { members(&c, &admin).await == [a(3), a(4)] },
    )
    .await;
    assert_eq!(
        load.await.unwrap(),
        0,
        "requests failed while the set changed"
    );
    let counts = count_sequential(&c, &url, 20).await;
    assert_eq!(counts.get("b2"), None, "{counts:?}");
    assert_eq!(counts.get("b4"), Some(&10), "{counts:?}");

    // The server fails: the last good set stays and the failure is logged.
    *zone.lock().unwrap() = None;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(members(&c, &admin).await, [a(3), a(4)]);
    let counts = count_sequential(&c, &url, 10).await;
    assert_eq!(counts.values().sum::<usize>(), 10);

    // A reload keeps the discovered pool; a changed discovery is applied at the next start.
    *zone.lock().unwrap() = Some(vec![
        Ipv4Addr::new(127, 0, 0, 3),
        Ipv4Addr::new(127, 0, 0, 4),
    ]);
    let cfg = dir.join("foresight.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("interval = \"1s\"", "interval = \"2s\"")).unwrap();
    let r = send(&c, "POST", &format!("http://{admin}/reload"), "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let report: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(report["services"][0]["pool"], "kept", "{report}");
    let restart = report["restart_needed"].to_string();
    assert!(restart.contains("service default: discovery"), "{report}");
    assert_eq!(members(&c, &admin).await, [a(3), a(4)]);
}

#[cfg(not(feature = "kubernetes"))]
#[test]
fn kubernetes_discovery_without_the_feature_is_refused_at_start() {
    let dir = tempdir("kube-discovery-unbuilt");
    let cfg = dir.join("foresight.toml");
    std::fs::write(&cfg, "[discovery]\ntype = \"kubernetes\"\nname = \"web\"\n").unwrap();
    let o = serve_until_exit(&cfg, Duration::from_secs(20));
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(text(&o).contains("`kubernetes` feature"), "{}", text(&o));
}

#[cfg(not(feature = "aws"))]
#[test]
fn aws_discovery_without_the_feature_is_refused_at_start() {
    let dir = tempdir("aws-discovery-unbuilt");
    let cfg = dir.join("foresight.toml");
    std::fs::write(
        &cfg,
        "[discovery]\ntype = \"aws-asg\"\ngroup = \"web\"\nport = 80\n",
    )
    .unwrap();
    let o = serve_until_exit(&cfg, Duration::from_secs(20));
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(text(&o).contains("`aws` feature"), "{}", text(&o));
}

#[test]
fn discovery_with_a_process_actuator_is_refused_at_start() {
    let dir = tempdir("dns-discovery-process");
    let cfg = dir.join("foresight.toml");
    std::fs::write(
        &cfg,
        "[discovery]\ntype = \"dns\"\nname = \"api.test\"\nport = 9001\n[control]\nmax = 3\n",
    )
    .unwrap();
    let o = serve_until_exit(&cfg, Duration::from_secs(20));
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(
        text(&o).contains("actuator = \"process\" together with discovery"),
        "{}",
        text(&o)
    );
}

/// A hostile zone (issue #36 item 4): the metadata address, the unspecified address and the
/// proxy's own listener are refused, the answer is cut to `max_instances`, and an answer of
/// nothing but refused addresses keeps the last good set; requests are served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_zone_cannot_point_the_proxy_at_itself_or_the_metadata_service() {
    // One port free on 127.0.0.1 (the proxy), .2 and .3 (the instances).
    let port = loop {
        let port = free_port();
        if (1..=3).all(|i| std::net::TcpListener::bind((Ipv4Addr::new(127, 0, 0, i), port)).is_ok())
        {
            break port;
        }
    };
    let _b: Vec<Proc> = (2..=3).map(|i| instance(i, port)).collect();
    let mut hostile = vec![
        Ipv4Addr::new(0, 0, 0, 0),
        Ipv4Addr::new(127, 0, 0, 1),
        Ipv4Addr::new(169, 254, 169, 254),
        Ipv4Addr::new(224, 0, 0, 1),
    ];
    let mut records = hostile.clone();
    records.extend((2..=20).map(|i| Ipv4Addr::new(127, 0, 0, i)));
    let zone: Zone = Arc::new(Mutex::new(Some(records)));
    let ns = dns_server(zone.clone()).await;
    let dir = tempdir("dns-hostile");
    let cfg = dir.join("foresight.toml");
    std::fs::write(
        &cfg,
        format!(
            "[health_check]\nenabled = false\n[balancer]\nalgorithm = \"round-robin\"\n\
             [discovery]\ntype = \"dns\"\nname = \"api.test\"\nport = {port}\ninterval = \"1s\"\n\
             nameserver = \"127.0.0.1:{ns}\"\nmax_instances = 2\n"
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{port}");
    let p = spawn(&[
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--listen",
        &listen,
        "--admin",
        "127.0.0.1:0",
    ]);
    let admin = p.get("admin").to_string();
    let c = client();
    let a = |i: u8| format!("http://127.0.0.{i}:{port}");
    eventually(
        Duration::from_secs(10),
        "the two lowest good addresses",
        || async { members(&c, &admin).await == [a(2), a(3)] },
    )
    .await;
    let counts = count_sequential(&c, &format!("http://{listen}/"), 20).await;
    assert_eq!(
        (counts.get("b2"), counts.get("b3")),
        (Some(&10), Some(&10)),
        "{counts:?}"
    );
    // Nothing but refused addresses: the last good set stays.
    hostile.sort();
    *zone.lock().unwrap() = Some(hostile);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(members(&c, &admin).await, [a(2), a(3)]);
    let counts = count_sequential(&c, &format!("http://{listen}/"), 10).await;
    assert_eq!(counts.values().sum::<usize>(), 10, "{counts:?}");
}
