//! The control loop inside `foresight serve`: the HPA policy grows a local process pool under
//! load and shrinks it after, with no failed request; `/control` and `/metrics` show it.

mod common;

use std::time::Duration;

use common::*;

const CONFIG: &str = r#"
[control]
interval = "500ms"
step = "1s"
policy = "hpa"
forecaster = "moving-average"
min = 1
max = 3
workers = 2
hpa_target = 0.5
stabilisation = "3s"
actuator = "process"
backend_args = ["--workers", "2", "--route", "/w=50ms", "--distribution", "constant", "--startup-delay", "300ms"]
"#;

async fn control(c: &HttpClient, admin: &str) -> serde_json::Value {
    let r = get(c, &format!("http://{admin}/control")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpa_grows_and_shrinks_a_process_pool_without_failures() {
    let dir = tempdir("control-hpa");
    let p = proxy(&dir, CONFIG, &[]);
    let (admin, url) = (p.get("admin").to_string(), p.get("proxy").to_string());
    let http = client();
    eventually(
        Duration::from_secs(20),
        "the first instance ready",
        || async {
            control(&http, &admin).await["ready"] == 1 && backends(&http, &admin).await.len() == 1
        },
    )
    .await;
    let s = control(&http, &admin).await;
    assert_eq!(s["policy"], "hpa");
    assert!(
        s["actuator"].as_str().unwrap().starts_with("process pool"),
        "{s}"
    );

    // 60 req/s against 40 req/s of capacity: utilisation ~1 against a 0.5 target.
    let plan = foresight_loadgen::Plan::constant(
        &format!("http://{url}"),
        &["/w"],
        60.0,
        Duration::from_secs(12),
    );
    let load = tokio::spawn(async move { foresight_loadgen::run(&plan).await.unwrap() });
    eventually(Duration::from_secs(25), "three instances ready", || async {
        control(&http, &admin).await["ready"] == 3
    })
    .await;
    let report = load.await.unwrap();
    assert_eq!(report.failures(), 0, "{:?}", report.statuses);

    let m = get(&http, &format!("http://{admin}/metrics")).await.body;
    for needle in [
        "foresight_control_desired_instances",
        "foresight_control_ready_instances",
        "foresight_client_requests_total",
        "foresight_control_scale_actions_total",
    ] {
        assert!(m.contains(needle), "missing {needle}");
    }
    // Idle: back to the minimum after the 3 s stabilisation window.
    eventually(Duration::from_secs(20), "back to one instance", || async {
        control(&http, &admin).await["ready"] == 1 && backends(&http, &admin).await.len() == 1
    })
    .await;
    let s = control(&http, &admin).await;
    let decisions = s["decisions"].as_array().unwrap();
    assert!(decisions.len() >= 2, "{s}");
    assert!(
        decisions
            .iter()
            .any(|d| d["reason"].as_str().unwrap().starts_with("hpa: ceil(")),
        "{s}"
    );
}

#[test]
fn bad_control_config_is_a_usage_error() {
    let dir = tempdir("control-bad");
    let cfg = dir.join("f.toml");
    std::fs::write(&cfg, "[control]\npolicy = \"magic\"\n").unwrap();
    let o = serve_until_exit(&cfg, Duration::from_secs(30));
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("invalid value `magic` for `control.policy`"),
        "{}",
        text(&o)
    );
}
