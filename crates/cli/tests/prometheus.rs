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

/// A restarted proxy forecasts at its first interval: the control loop fills its forecaster's
/// window from Prometheus (the rate over the steps just past) instead of waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_loop_forecasts_at_once_from_prometheus_history() {
    let Some(bin) = prometheus_binary() else {
        return;
    };
    let dir = tempdir("prometheus-warm");
    let (_b, backend_addr) = backend("warm", &["--route", "/w=5ms"]);
    let (prom_port, admin_port) = (free_port(), free_port());
    let admin = format!("127.0.0.1:{admin_port}");
    let section = |metrics: &str| {
        format!(
            r#"
[control]
interval = "1s"
step = "1s"
policy = "predictive"
forecaster = "moving-average"
actuator = "none"
{metrics}
"#
        )
    };
    let prom_metrics = format!(
        "metrics = \"prometheus\"\nprometheus_url = \"http://127.0.0.1:{prom_port}\"\n\
         rate_query = \"sum(rate(foresight_client_requests_total[3s]))\""
    );
    let serve = |name: &str, metrics: &str| {
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(&cfg, section(metrics)).unwrap();
        serve_at(&cfg, &admin, &["--backend", &backend_addr])
    };
    let http = client();

    // Without a warm start, a moving average of 5 steps waits 5 steps.
    let cold = serve("cold", "");
    let s = control_status(&http, &admin).await;
    assert_eq!(
        s["warmup"], "warming up: 0 of 5 steps (warm start: none)",
        "{s}"
    );
    assert!(s["forecast"].is_null(), "{s}");
    drop(cold);

    // The first life of the proxy, under load, scraped by Prometheus.
    let first = serve("first", &prom_metrics);
    let url = format!("http://{}", first.get("proxy"));
    let _prom = start_prometheus(&bin, &dir, prom_port, &[&admin]).await;
    let plan = foresight_loadgen::Plan::constant(&url, &["/w"], 40.0, Duration::from_secs(12));
    let report = foresight_loadgen::run(&plan).await.unwrap();
    assert_eq!(report.failures(), 0);
    drop(first);

    // Restarted: a forecast from the first interval on, and /control says where from. (The
    // window is warm once the range query returns; 3 s bounds a slow CI machine and stays
    // below the 5 steps a cold moving average needs.)
    let second = serve("second", &prom_metrics);
    let started = std::time::Instant::now();
    let mut s = control_status(&http, &admin).await;
    while s["forecast"].is_null() && started.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        s = control_status(&http, &admin).await;
    }
    assert_eq!(s["warmup"], "window from prometheus (5 of 5 steps)", "{s}");
    let fc = s["forecast"]
        .as_array()
        .expect("a forecast before the first step");
    let rate = fc[0][1].as_f64().unwrap();
    assert!(
        (20.0..=60.0).contains(&rate),
        "the last life's ~40 req/s: {s}"
    );
    drop(second);
}

/// `foresight history` exports a training CSV from what a real Prometheus scraped from a real
/// proxy and instance: the rate as requests per step and the instance's CPU and memory as
/// feature columns, which the training reader takes; a query with several series is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_exports_rate_and_features_from_prometheus() {
    let Some(bin) = prometheus_binary() else {
        return;
    };
    let dir = tempdir("prometheus-history");
    let (_b, backend_addr) = backend("hist", &["--route", "/h=5ms"]);
    let admin = format!("127.0.0.1:{}", free_port());
    let prom_port = free_port();
    let p = spawn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        &admin,
        "--backend",
        &backend_addr,
    ]);
    let instance = backend_addr.trim_start_matches("http://").to_string();
    let _prom = start_prometheus(&bin, &dir, prom_port, &[&admin, &instance]).await;
    let plan = foresight_loadgen::Plan::constant(
        &format!("http://{}", p.get("proxy")),
        &["/h"],
        20.0,
        Duration::from_secs(10),
    );
    assert_eq!(foresight_loadgen::run(&plan).await.unwrap().failures(), 0);

    let out = dir.join("history.csv");
    let url = format!("http://127.0.0.1:{prom_port}");
    let o = run(&[
        "history",
        "--prometheus",
        &url,
        "--query",
        "rate=sum(rate(foresight_client_requests_total[3s]))",
        "--query",
        "cpu=sum(rate(process_cpu_seconds_total[3s]))",
        "--query",
        "mem=sum(process_resident_memory_bytes)",
        "--from",
        "12s",
        "--step",
        "1s",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let csv = std::fs::read_to_string(&out).unwrap();
    assert!(csv.starts_with("timestamp,value,cpu,mem\n"), "{csv}");
    let series =
        foresight_forecast::Series::load(&out, Some(1), foresight_forecast::Aggregate::Sum)
            .expect("the training reader takes it");
    let names: Vec<&str> = series.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["cpu", "mem"]);
    let busiest = series
        .values
        .iter()
        .flatten()
        .fold(0.0f64, |a, b| a.max(*b));
    assert!(
        (10.0..=30.0).contains(&busiest),
        "about 20 requests per 1-s step: {csv}"
    );
    assert!(
        series.features[1].values.iter().flatten().all(|m| *m > 1e6),
        "resident memory in bytes: {csv}"
    );

    // Two targets scraped: `up` has two series.
    let o = run(&[
        "history",
        "--prometheus",
        &url,
        "--query",
        "rate=up",
        "--from",
        "5s",
        "--step",
        "1s",
        "--out",
        dir.join("bad.csv").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("gives 2 series"), "{}", text(&o));
    assert!(
        !dir.join("bad.csv").exists(),
        "no file from a failed export"
    );
}
