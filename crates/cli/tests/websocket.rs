//! WebSocket through `foresight serve`, with real clients (tokio-tungstenite) and real
//! instances (`foresight backend`'s `/ws` echo): the handshake is relayed as a 101, messages
//! pass both ways, an open socket counts as in flight (least-connections spreads 1,000 open
//! sockets evenly) and in `foresight_upgraded_connections`; a refused handshake is relayed as
//! it is; a silent socket is closed after `timeouts.tunnel_idle`; a drained instance's sockets
//! live on until `drain_timeout`, then close.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a socket through the proxy; returns it and the instance that answered.
async fn open(url: &str) -> (Socket, String) {
    let (ws, resp) = tokio_tungstenite::connect_async(format!("ws://{url}/ws"))
        .await
        .unwrap();
    let instance = resp.headers()["x-foresight-instance"]
        .to_str()
        .unwrap()
        .to_string();
    (ws, instance)
}

/// Sends `text` and expects it back.
async fn echo(ws: &mut Socket, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
    let back = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("an echo within 10 s")
        .expect("the socket is open")
        .unwrap();
    assert_eq!(back, Message::text(text));
}

/// Whether the socket was closed (by the proxy) within `limit`.
async fn closed_within(ws: &mut Socket, limit: Duration) -> bool {
    let ended = tokio::time::timeout(limit, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    ended.is_ok()
}

fn in_flight(backends: &[serde_json::Value]) -> u64 {
    backends
        .iter()
        .map(|b| b["in_flight"].as_u64().unwrap())
        .sum()
}

fn config(addrs: &[String], extra: &str) -> String {
    let list: Vec<String> = addrs
        .iter()
        .map(|a| format!("{{ address = \"{a}\" }}"))
        .collect();
    format!(
        "{extra}\n[health_check]\nenabled = false\n\n[balancer]\nalgorithm = \"least-connections\"\n\n\
         [[services]]\nname = \"ws\"\nbackends = [{}]\n",
        list.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sockets_are_balanced_held_in_flight_and_counted() {
    let dir = tempdir("websocket");
    let instances: Vec<(Proc, String)> =
        (1..=3).map(|i| backend(&format!("ws-{i}"), &[])).collect();
    let addrs: Vec<String> = instances.iter().map(|(_, a)| a.clone()).collect();
    let p = proxy(&dir, &config(&addrs, ""), &[]);
    let (admin, url) = (p.get("admin").to_string(), p.get("proxy").to_string());
    let http = client();

    const N: usize = 1000;
    let mut sockets = Vec::with_capacity(N);
    let mut per_instance: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..N {
        let (ws, instance) = open(&url).await;
        *per_instance.entry(instance).or_default() += 1;
        sockets.push(ws);
    }
    // Every socket echoes, concurrently.
    let mut echoed = Vec::new();
    for (i, mut ws) in sockets.into_iter().enumerate() {
        echoed.push(tokio::spawn(async move {
            echo(&mut ws, &format!("hello {i}")).await;
            ws
        }));
    }
    let mut sockets = Vec::with_capacity(N);
    for e in echoed {
        sockets.push(e.await.unwrap());
    }
    // Least-connections sees open sockets: within ±10% of even.
    assert_eq!(per_instance.len(), 3, "{per_instance:?}");
    for (instance, n) in &per_instance {
        let even = N as f64 / 3.0;
        assert!(
            (*n as f64 - even).abs() <= 0.1 * even,
            "{instance}: {n} of {N} sockets ({per_instance:?})"
        );
    }
    assert_eq!(in_flight(&backends(&http, &admin).await), N as u64);
    let m = get(&http, &format!("http://{admin}/metrics")).await.body;
    let open_total: f64 = m
        .lines()
        .filter(|l| l.starts_with("foresight_upgraded_connections{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(open_total, N as f64, "{m}");
    assert!(m.contains("foresight_upgrades_total{"), "{m}");

    // Closed by the clients: nothing stays in flight.
    for mut ws in sockets {
        ws.close(None).await.unwrap();
    }
    eventually(Duration::from_secs(10), "no socket in flight", || async {
        in_flight(&backends(&http, &admin).await) == 0
    })
    .await;
    let m = get(&http, &format!("http://{admin}/metrics")).await.body;
    assert!(
        m.lines()
            .filter(|l| l.starts_with("foresight_upgraded_connections{"))
            .all(|l| l.ends_with(" 0")),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_idle_sockets_and_drains() {
    let dir = tempdir("websocket-edges");
    let (_a, a) = backend("ws-a", &[]);
    let (_b, b) = backend("ws-b", &[]);
    let p = proxy(
        &dir,
        &config(
            &[a.clone(), b.clone()],
            "drain_timeout = \"3s\"\n[timeouts]\ntunnel_idle = \"700ms\"",
        ),
        &[],
    );
    let (admin, url) = (p.get("admin").to_string(), p.get("proxy").to_string());
    let http = client();

    // A handshake the instance refuses is relayed as its answer.
    match tokio_tungstenite::connect_async(format!("ws://{url}/nope")).await {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 404),
        other => panic!("expected the instance's 404, got {other:?}"),
    }
    // An ordinary request on the same route still works.
    assert_eq!(get(&http, &format!("http://{url}/")).await.status, 200);

    // Silent for longer than tunnel_idle: closed; talking keeps it open.
    let (mut quiet, _) = open(&url).await;
    let (mut talking, _) = open(&url).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1400) {
        echo(&mut talking, "still here").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        closed_within(&mut quiet, Duration::from_secs(3)).await,
        "the silent socket was closed"
    );
    echo(&mut talking, "and still here").await;
    drop(talking);
    eventually(Duration::from_secs(5), "no socket in flight", || async {
        in_flight(&backends(&http, &admin).await) == 0
    })
    .await;

    // A drained instance's socket lives until drain_timeout, then closes.
    let (mut ws, instance) = open(&url).await;
    let address = if instance == "ws-a" { &a } else { &b };
    let drain = tokio::spawn({
        let (http, admin, address) = (http.clone(), admin.clone(), address.clone());
        async move {
            send(
                &http,
                "POST",
                &format!("http://{admin}/backends/drain?address={address}&wait=true"),
                "",
            )
            .await
            .unwrap()
        }
    });
    // Talking (so never idle) until the proxy closes it.
    let drained_at = Instant::now();
    let lived = loop {
        if ws.send(Message::text("draining")).await.is_err() {
            break drained_at.elapsed();
        }
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => {}
            _ => break drained_at.elapsed(),
        }
        assert!(
            drained_at.elapsed() < Duration::from_secs(10),
            "never closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        lived >= Duration::from_millis(2500) && lived < Duration::from_secs(6),
        "closed {lived:?} after the drain began (drain_timeout 3s)"
    );
    let r = drain.await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"abandoned_in_flight\":1"), "{}", r.body);
    // New sockets go to the instance that is left.
    let (mut ws, other) = open(&url).await;
    assert_ne!(other, instance);
    echo(&mut ws, "elsewhere").await;
}

/// `load = "connections"`: the control loop forecasts and sizes for the open sockets, not the
/// (few) requests: 40 idle sockets held open, 7 per instance at the default target
/// (`capacity_rps = 10` connections at full utilisation, 70%), call for ⌈40 / 7⌉ = 6, so the
/// pool scales out to its max, 4; `GET /control` reports the load in connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_with_load_connections_scales_on_open_sockets() {
    const CONFIG: &str = r#"
[health_check]
interval = "500ms"

[control]
interval = "500ms"
step = "1s"
lead = "2s"
load = "connections"
policy = "hybrid"
forecaster = "moving-average"
capacity_rps = 10
workers = 1000
min = 1
max = 4
actuator = "process"
"#;
    let dir = tempdir("websocket-load");
    let p = proxy(&dir, CONFIG, &[]);
    let (admin, url) = (p.get("admin").to_string(), p.get("proxy").to_string());
    let http = client();
    let control = || async {
        let r = get(&http, &format!("http://{admin}/control")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap()
    };
    eventually(Duration::from_secs(20), "one ready instance", || async {
        control().await["ready"].as_u64() == Some(1)
    })
    .await;
    assert_eq!(control().await["load_unit"], "connections");
    let mut sockets = Vec::new();
    for _ in 0..40 {
        sockets.push(open(&url).await.0);
    }
    eventually(Duration::from_secs(20), "40 connections seen", || async {
        // (The mean over the interval, carried as a whole count over its period.)
        control().await["observed_rps"]
            .as_f64()
            .is_some_and(|c| (c - 40.0).abs() < 2.0)
    })
    .await;
    eventually(
        Duration::from_secs(30),
        "a scale-out to the max",
        || async {
            let c = control().await;
            c["desired"].as_u64() == Some(4)
                && c["decisions"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|d| d["to"].as_u64() == Some(4)))
        },
    )
    .await;
    // Few requests were made (the handshakes): a request-rate loop would not have moved.
    for mut ws in sockets {
        let _ = ws.close(None).await;
    }
    eventually(Duration::from_secs(20), "no connection seen", || async {
        control().await["observed_rps"].as_f64() == Some(0.0)
    })
    .await;
}
