//! The control loop reading the request rate from a real Prometheus server (PromQL over
//! `/api/v1/query_range`), and falling back to the proxy's own counters when it goes away.
//! Needs the `prometheus` binary (Debian package `prometheus`; `.ci/run` installs it): with
//! `CI` set a missing binary fails the test, elsewhere the test says so and passes.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_from_prometheus_then_builtin_when_it_goes_away() {
    let Some(bin) = prometheus_binary() else {
        return;
    };
    let dir = tempdir("prometheus");
    let (_b, backend_addr) = backend("prom", &["--route", "/w=5ms"]);
    let port = free_port();
    let config = format!(
        r#"
[control]
interval = "1s"
policy = "hpa"
forecaster = "none"
actuator = "none"
metrics = "prometheus"
prometheus_url = "http://127.0.0.1:{port}"
rate_query = "sum(rate(foresight_client_requests_total[5s]))"
"#
    );
    let p = proxy(&dir, &config, &["--backend", &backend_addr]);
    let (admin, url) = (p.get("admin").to_string(), p.get("proxy").to_string());
    let prom = start_prometheus(&bin, &dir, port, &[&admin]).await;
    let http = client();

    let plan = foresight_loadgen::Plan::constant(
        &format!("http://{url}"),
        &["/w"],
        50.0,
        Duration::from_secs(20),
    );
    let load = tokio::spawn(async move { foresight_loadgen::run(&plan).await.unwrap() });
    eventually(
        Duration::from_secs(15),
        "the rate through prometheus",
        || async {
            let s = control_status(&http, &admin).await;
            let rps = s["observed_rps"].as_f64().unwrap_or(0.0);
            s["metrics_source"] == "prometheus" && (35.0..=65.0).contains(&rps)
        },
    )
    .await;

    drop(prom);
    eventually(
        Duration::from_secs(10),
        "the fallback to built-in counters",
        || async {
            let s = control_status(&http, &admin).await;
            let rps = s["observed_rps"].as_f64().unwrap_or(0.0);
            s["metrics_source"]
                .as_str()
                .unwrap_or("")
                .starts_with("builtin (prometheus:")
                && (35.0..=65.0).contains(&rps)
        },
    )
    .await;
    let report = load.await.unwrap();
    assert_eq!(report.failures(), 0, "serving never depended on prometheus");
}
