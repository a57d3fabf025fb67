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

/// `[control.features]`: the live loop evaluates each PromQL query every interval on a real
/// Prometheus that scrapes a real instance, and feeds the values to an LSTM trained with those
/// features (given in another order than trained); a query without series is flagged in
/// `/control` and the forecaster waits for it; a model trained with other features than the
/// configuration names is refused at start, naming both lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_loop_feeds_prometheus_features_to_the_lstm() {
    let Some(bin) = prometheus_binary() else {
        return;
    };
    let dir = tempdir("prometheus-features");
    // A small model trained on the rate with `cpu` and `mem` columns.
    let mut csv = String::from("timestamp,value,cpu,mem\n");
    for i in 0..600i64 {
        let v = 20.0 + 10.0 * ((i as f64) / 30.0).sin();
        csv.push_str(&format!(
            "{},{v:.1},{:.4},{}\n",
            1_767_225_600 + 60 * i,
            0.001 * v,
            40_000_000 + 1000 * (i % 7)
        ));
    }
    std::fs::write(dir.join("train.csv"), csv).unwrap();
    std::fs::write(
        dir.join("lstm.toml"),
        "[lstm]\nhidden = 4\nseq_len = 4\nepochs = 1\nstride = 4\nquantiles = [0.5, 0.9]\n",
    )
    .unwrap();
    let model = dir.join("model");
    let o = run(&[
        "train",
        "--trace",
        dir.join("train.csv").to_str().unwrap(),
        "--config",
        dir.join("lstm.toml").to_str().unwrap(),
        "--horizon",
        "5",
        "--out",
        model.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));

    let (_b, backend_addr) = backend("feat", &["--route", "/f=5ms"]);
    let instance = backend_addr.trim_start_matches("http://").to_string();
    let (prom_port, admin_port) = (free_port(), free_port());
    let admin = format!("127.0.0.1:{admin_port}");
    let _prom = start_prometheus(&bin, &dir, prom_port, &[&admin, &instance]).await;
    let write = |name: &str, features: &str| {
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            format!(
                r#"
[control]
interval = "1s"
step = "1s"
model_step = "1m"
lead = "2s"
margin = "1s"
policy = "predictive"
forecaster = "lstm"
model = "{}"
actuator = "none"
metrics = "prometheus"
prometheus_url = "http://127.0.0.1:{prom_port}"
rate_query = "sum(rate(foresight_client_requests_total[3s]))"

[control.features]
{features}
"#,
                model.display()
            ),
        )
        .unwrap();
        cfg
    };
    let cpu = "cpu = \"sum(rate(process_cpu_seconds_total[3s]))\"";
    let http = client();

    // The model's features, listed in another order: read every interval, and a forecast
    // once the window is full.
    let p = serve_at(
        &write(
            "good",
            &format!("mem = \"sum(process_resident_memory_bytes)\"\n{cpu}"),
        ),
        &admin,
        &["--backend", &backend_addr],
    );
    let url = format!("http://{}", p.get("proxy"));
    let plan = foresight_loadgen::Plan::constant(&url, &["/f"], 20.0, Duration::from_secs(15));
    let load = tokio::spawn(async move { foresight_loadgen::run(&plan).await.unwrap() });
    eventually(
        Duration::from_secs(25),
        "both features read and a forecast",
        || async {
            let s = control_status(&http, &admin).await;
            let f = s["features"].as_array().cloned().unwrap_or_default();
            f.len() == 2 && f.iter().all(|x| x["value"].is_f64()) && s["forecast"].is_array()
        },
    )
    .await;
    let s = control_status(&http, &admin).await;
    let f = s["features"].as_array().unwrap();
    assert_eq!(
        (f[0]["name"].as_str(), f[1]["name"].as_str()),
        (Some("cpu"), Some("mem")),
        "in the model's order: {s}"
    );
    assert!(f[1]["value"].as_f64().unwrap() > 1e6, "bytes: {s}");
    assert!(s["forecaster"].as_str().unwrap().starts_with("lstm"), "{s}");
    assert_eq!(load.await.unwrap().failures(), 0);
    drop(p);

    // Restarted: the window is filled from Prometheus, features included.
    let good = dir.join("good.toml");
    let p = serve_at(&good, &admin, &["--backend", &backend_addr]);
    let started = std::time::Instant::now();
    let mut s = control_status(&http, &admin).await;
    while s["forecast"].is_null() && started.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        s = control_status(&http, &admin).await;
    }
    assert_eq!(s["warmup"], "window from prometheus (4 of 4 steps)", "{s}");
    assert!(s["forecast"].is_array(), "{s}");
    drop(p);

    // A query with no series: flagged, and without that feature the model is not fed.
    let p = serve_at(
        &write(
            "unknown",
            &format!("{cpu}\nmem = \"sum(no_such_metric_bytes)\""),
        ),
        &admin,
        &["--backend", &backend_addr],
    );
    eventually(
        Duration::from_secs(10),
        "the unknown query flagged",
        || async {
            let s = control_status(&http, &admin).await;
            s["features"][1]["error"]
                .as_str()
                .is_some_and(|e| e.contains("no samples yet for `sum(no_such_metric_bytes)`"))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = control_status(&http, &admin).await;
    assert!(s["forecast"].is_null(), "never fed a whole row: {s}");
    assert!(s["features"][0]["value"].is_f64(), "{s}");
    drop(p);

    // Other features than trained: refused at start.
    let o = run_for(
        &[
            "serve",
            "--config",
            write("other", cpu).to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--backend",
            &backend_addr,
        ],
        Duration::from_secs(30),
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("trained with the features [cpu, mem]")
            && t.contains("`control.features` has [cpu]"),
        "{t}"
    );
}

/// A broken rate from Prometheus (a jump of 1e15, NaN, a negative value from a counter
/// reset, a series that vanished) is not acted on: the loop says why and keeps to the
/// proxy's own counters, instead of scaling to `max` (or `min`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_rates_are_refused_and_the_loop_holds() {
    let Some(bin) = prometheus_binary() else {
        return;
    };
    let dir = tempdir("prometheus-broken");
    let (_b, backend_addr) = backend("prom-broken", &["--route", "/w=5ms"]);
    let port = free_port();
    let cases = [
        ("vector(1e15)", "implausible rate 1e15"),
        ("vector(NaN)", "value NaN"),
        ("vector(-5)", "value -5"),
        ("foresight_no_such_series", "no samples"),
    ];
    let mut proxies = Vec::new();
    for (i, (query, _)) in cases.iter().enumerate() {
        let d = dir.join(format!("p{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let config = format!(
            r#"
[control]
interval = "500ms"
policy = "hpa"
forecaster = "none"
actuator = "none"
min = 2
max = 5
capacity_rps = 40
metrics = "prometheus"
prometheus_url = "http://127.0.0.1:{port}"
rate_query = "{query}"
"#
        );
        proxies.push(proxy(&d, &config, &["--backend", &backend_addr]));
    }
    let admins: Vec<String> = proxies.iter().map(|p| p.get("admin").to_string()).collect();
    let _prom = start_prometheus(&bin, &dir, port, &[&admins[0]]).await;
    let http = client();
    for ((query, why), admin) in cases.iter().zip(&admins) {
        eventually(Duration::from_secs(15), query, || async {
            let s = control_status(&http, admin).await;
            s["metrics_source"]
                .as_str()
                .is_some_and(|m| m.starts_with("builtin (prometheus:") && m.contains(why))
        })
        .await;
    }
    // Several intervals later, still at min: nothing scaled on the broken rates.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for ((query, _), admin) in cases.iter().zip(&admins) {
        let s = control_status(&http, admin).await;
        assert_eq!(s["desired"], 2, "{query}: {s}");
        assert!(s["observed_rps"].as_f64().unwrap() < 1.0, "{query}: {s}");
    }
}
