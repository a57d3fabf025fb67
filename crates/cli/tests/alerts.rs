//! Alerts trigger scaling, end to end: a real Prometheus evaluates a rule on the proxy's own
//! metrics, a real Alertmanager delivers the webhook to `POST /alerts`, and the service's loop
//! raises its floor until the alert resolves. Also the receiver's answers to payloads that
//! do not apply.

mod common;

use std::time::Duration;

use common::*;

fn status(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_alert_raises_its_services_floor_until_it_resolves() {
    let (Some(prom_bin), Some(am_bin)) = (prometheus_binary(), alertmanager_binary()) else {
        return;
    };
    let dir = tempdir("alerts");
    let (_w, web) = backend("web-1", &["--route", "/w=1ms"]);
    let (_d, data) = backend("data-1", &["--route", "/d=1ms"]);
    let admin_port = free_port();
    let admin = format!("127.0.0.1:{admin_port}");
    let control = "interval = \"500ms\"\nstep = \"1s\"\npolicy = \"static\"\n\
                   forecaster = \"none\"\nactuator = \"none\"\nmin = 1\nmax = 5";
    let cfg = dir.join("foresight.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[health_check]
enabled = false
[[services]]
name = "web"
backends = [{{ address = "{web}" }}]
[services.control]
{control}
[[services]]
name = "data"
backends = [{{ address = "{data}" }}]
[services.control]
{control}
[[routes]]
path_prefix = "/d"
service = "data"
[[routes]]
service = "web"
"#
        ),
    )
    .unwrap();
    let p = serve_at(&cfg, &admin, &[]);
    let proxy = p.get("proxy").to_string();
    let (prom_port, am_port) = (free_port(), free_port());
    let _am = start_alertmanager(&am_bin, &dir, am_port, &format!("http://{admin}/alerts")).await;
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n  - name: foresight\n    rules:\n      - alert: DataBusy\n        \
         expr: sum by (service) (rate(foresight_client_requests_total{service=\"data\"}[3s])) > 5\n        \
         labels:\n          foresight_action: scale_up\n          foresight_replicas: \"3\"\n",
    )
    .unwrap();
    let extra = format!(
        "rule_files: ['{}']\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n",
        dir.join("rules.yml").display()
    );
    let _prom = start_prometheus_with(&prom_bin, &dir, prom_port, &[&admin], &extra).await;
    let c = client();
    let loop_of = |name: &str| format!("http://{admin}/services/{name}/control");

    // Load on data only: the rule fires, Alertmanager posts, data's floor rises to 3.
    let plan = foresight_loadgen::Plan::constant(
        &format!("http://{proxy}"),
        &["/d"],
        30.0,
        Duration::from_secs(15),
    );
    let load = tokio::spawn(async move { foresight_loadgen::run(&plan).await });
    eventually(
        Duration::from_secs(45),
        "data's loop wants 3 instances for the alert",
        || async {
            let s = status(&get(&c, &loop_of("data")).await.body);
            s["desired"] == 3 && s["alerts"][0] == "DataBusy: floor 3"
        },
    )
    .await;
    let s = status(&get(&c, &loop_of("data")).await.body);
    let reason = s["decisions"].as_array().unwrap().last().unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("raised to 3 by alert DataBusy"),
        "the decision names the alert: {reason}"
    );
    let web_status = status(&get(&c, &loop_of("web")).await.body);
    assert_eq!(web_status["desired"], 1, "web's floor is untouched");
    assert!(web_status["alerts"].as_array().unwrap().is_empty());

    // The load ends: the rule resolves, Alertmanager says so, the floor is lifted.
    let report = load.await.unwrap().unwrap();
    assert_eq!(report.failures(), 0);
    let started = std::time::Instant::now();
    loop {
        let s = status(&get(&c, &loop_of("data")).await.body);
        if s["desired"] == 1 && s["alerts"].as_array().is_some_and(|a| a.is_empty()) {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let alerts = get(
                &c,
                &format!("http://127.0.0.1:{prom_port}/api/v1/query?query=ALERTS"),
            )
            .await
            .body;
            let am = get(&c, &format!("http://127.0.0.1:{am_port}/api/v2/alerts"))
                .await
                .body;
            panic!("the floor was not lifted: {s}\nprometheus: {alerts}\nalertmanager: {am}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn alerts_that_do_not_apply_are_answered_with_the_reason() {
    let dir = tempdir("alerts-bad");
    let (_b, b) = backend("one", &[]);
    let p = proxy(
        &dir,
        &format!(
            "backends = [{{ address = \"{b}\" }}]\n[control]\ninterval = \"500ms\"\nstep = \"1s\"\n\
             policy = \"static\"\nforecaster = \"none\"\nactuator = \"none\"\nmax = 4\n"
        ),
        &[],
    );
    let admin = p.get("admin").to_string();
    let c = client();
    let post = |body: &'static str| {
        let c = c.clone();
        let url = format!("http://{admin}/alerts");
        async move { send(&c, "POST", &url, body).await.unwrap() }
    };
    let r = post(r#"{"alerts": [{"status": "firing", "labels": {"alertname": "Noise"}}]}"#).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("no label foresight_action"), "{}", r.body);
    let r = post(
        r#"{"alerts": [{"status": "firing", "labels": {"alertname": "X", "service": "nope",
            "foresight_action": "scale_up"}}]}"#,
    )
    .await;
    assert!(
        r.body.contains("no control loop for service `nope`"),
        "{}",
        r.body
    );
    let r = post(
        r#"{"alerts": [{"status": "firing", "labels": {"alertname": "X",
            "foresight_action": "scale_up", "foresight_replicas": "many"}}]}"#,
    )
    .await;
    assert!(r.body.contains("not an instance count"), "{}", r.body);
    let r = post(r#"{"alerts": "nope"}"#).await;
    assert_eq!(r.status, 400, "{}", r.body);
    // A 10 MB body is refused before it is parsed: 413, or the connection closed while the
    // client still sends (the answer came first); the admin listener goes on serving.
    let huge = format!(
        r#"{{"alerts": [{{"status": "firing", "labels": {{"alertname": "{}"}}}}]}}"#,
        "x".repeat(10 << 20)
    );
    if let Ok(r) = send(&c, "POST", &format!("http://{admin}/alerts"), &huge).await {
        assert_eq!(r.status, 413, "{}", r.body);
    }
    // The 413 says the connection closes (the rest of the body is never read): a client that
    // kept it in its pool sent its next request into the closing socket (CI saw it).
    let mut s = tokio::net::TcpStream::connect(&admin).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(
        b"POST /alerts HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\n\
          content-length: 20000000\r\n\r\n{\"alerts\": [",
    )
    .await
    .unwrap();
    // The server may stop reading (and close) before all of this is written.
    let _ = s.write_all(&vec![b' '; 4 << 20]).await;
    let mut head = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut head)).await;
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    let r = post(r#"{"alerts": []}"#).await;
    assert_eq!(r.status, 200, "still serving: {}", r.body);
    // The one loop takes an alert without a service label; the floor is capped at max.
    let r = post(
        r#"{"alerts": [{"status": "firing", "labels": {"alertname": "Big",
            "foresight_action": "scale_up", "foresight_replicas": "9"}}]}"#,
    )
    .await;
    assert!(r.body.contains("floor 9"), "{}", r.body);
    eventually(Duration::from_secs(10), "capped at max 4", || async {
        status(&get(&c, &format!("http://{admin}/control")).await.body)["desired"] == 4
    })
    .await;
}
