//! The whole live loop, end to end, with real components: `foresight backend` instances with a
//! start-up delay, started and stopped by the proxy's control loop; the request rate read from
//! a real Prometheus server (scraping the proxy) and passed through a real Kafka-protocol
//! broker (Tansu) before the forecaster sees it; a load step sent by `foresight loadgen`.
//! The forecaster (seasonal naive over a history in which the surge happens every day at the
//! same time) sees the step coming: the pool grows before the step arrives, shrinks after, and
//! no request fails.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// One live step (500 ms) is one model minute; the surge starts at this minute of the day.
const SURGE_MINUTE: usize = 70;
const SURGE_MINUTES: usize = 24;
const STEP_S: f64 = 0.5;
/// Requests per step: 10 req/s quiet, 120 req/s during the surge.
const QUIET: f64 = 10.0 * STEP_S;
const BUSY: f64 = 120.0 * STEP_S;

fn history() -> String {
    let mut s = String::from("minute,count\n");
    let start = chrono::NaiveDate::from_ymd_opt(2024, 3, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    for m in 0..2 * 1440 {
        let of_day = m % 1440;
        let busy = (SURGE_MINUTE..SURGE_MINUTE + SURGE_MINUTES).contains(&of_day);
        let t = start + chrono::Duration::minutes(m as i64);
        s.push_str(&format!(
            "{},{}\n",
            t.format("%Y-%m-%d %H:%M:%S"),
            if busy { BUSY } else { QUIET }
        ));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_grows_before_a_forecast_surge_and_shrinks_after() {
    let (Some(prom_bin), Some(tansu_bin)) = (prometheus_binary(), tansu_binary()) else {
        return;
    };
    let dir = tempdir("live");
    std::fs::write(dir.join("history.csv"), history()).unwrap();
    let (prom_port, kafka_port) = (free_port(), free_port());
    let _tansu = start_tansu(&tansu_bin, kafka_port);
    let config = format!(
        r#"
[control]
interval = "500ms"
step = "500ms"
model_step = "1m"
policy = "hybrid"
forecaster = "seasonal-naive"
season = 1440
history = "{history}"
history_scale = 1.0
min = 1
max = 5
workers = 2
capacity_rps = 40
target = 0.7
lead = "1500ms"
margin = "1s"
stabilisation = "3s"
actuator = "process"
backend_args = ["--workers", "2", "--route", "/w=50ms", "--distribution", "constant", "--startup-delay", "1s"]
metrics = "prometheus"
prometheus_url = "http://127.0.0.1:{prom_port}"
rate_query = "sum(rate(foresight_client_requests_total[3s]))"
kafka_brokers = "127.0.0.1:{kafka_port}"
kafka_publish = "foresight-metrics"
kafka_consume = "foresight-metrics"
kafka_source = "proxy-1"
"#,
        history = dir.join("history.csv").display()
    );
    let p = proxy(&dir, &config, &[]);
    let started = Instant::now();
    let (admin, url) = (p.get("admin").to_string(), p.get("proxy").to_string());
    let _prom = start_prometheus(&prom_bin, &dir, prom_port, &[&admin]).await;
    let http = client();
    eventually(
        Duration::from_secs(20),
        "one instance ready, rate through kafka",
        || async {
            let s = control_status(&http, &admin).await;
            s["ready"] == 1 && s["kafka_consume"]["delivered"].as_u64().unwrap_or(0) > 0
        },
    )
    .await;
    let s = control_status(&http, &admin).await;
    assert_eq!(s["forecaster"], "seasonal-naive", "{s}");

    // Send the load step so that it arrives with the surge the history predicts.
    let steps_now = s["steps"].as_u64().unwrap() as f64;
    let surge_in =
        (SURGE_MINUTE as f64 - steps_now) * STEP_S - (started.elapsed().as_secs_f64() % STEP_S);
    assert!(
        surge_in > 4.0,
        "setup took too long: the surge is {surge_in:.1} s away"
    );
    let json = dir.join("load.json");
    let at = format!("{}ms", (surge_in * 1000.0) as u64);
    let length = format!("{}ms", (SURGE_MINUTES as f64 * STEP_S * 1000.0) as u64);
    let duration = format!(
        "{}ms",
        ((surge_in + SURGE_MINUTES as f64 * STEP_S + 8.0) * 1000.0) as u64
    );
    let args: Vec<String> = [
        "loadgen",
        "--target",
        &format!("http://{url}"),
        "--route",
        "/w",
        "--profile",
        "burst",
        "--rate",
        "10",
        "--to",
        "120",
        "--at",
        &at,
        "--burst-length",
        &length,
        "--duration",
        &duration,
        "--json",
        json.to_str().unwrap(),
        "--quiet",
    ]
    .map(String::from)
    .to_vec();
    let load = tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&a)
    });

    // Just before the step arrives: the pool is already larger, though the load is still quiet.
    tokio::time::sleep(Duration::from_secs_f64((surge_in - 0.4).max(0.0))).await;
    let before = control_status(&http, &admin).await;
    let instances = before["ready"].as_u64().unwrap() + before["starting"].as_u64().unwrap();
    assert!(
        before["desired"].as_u64().unwrap() >= 4 && instances >= 4,
        "the pool did not grow ahead of the surge: {before}"
    );
    assert!(
        before["observed_rps"].as_f64().unwrap() < 40.0,
        "the surge had already started: {before}"
    );
    assert!(
        before["utilisation_source"]
            .as_str()
            .unwrap_or("")
            .starts_with("instances ("),
        "utilisation is read from the instances' /metrics: {before}"
    );
    // Forecast-aware balancing gets each instance's share of the planned load.
    let with_forecast = backends(&http, &admin)
        .await
        .iter()
        .filter(|b| b["forecast_rps"].as_f64().is_some_and(|f| f > 0.0))
        .count();
    assert!(with_forecast >= 1, "no per-instance forecast was set");

    // After the surge: back to one instance.
    let o = load.await.unwrap();
    assert!(o.status.success(), "{}", text(&o));
    eventually(
        Duration::from_secs(20),
        "the pool shrinks after the surge",
        || async { control_status(&http, &admin).await["ready"] == 1 },
    )
    .await;
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["failures"], 0, "{v}");
    assert!(v["requests"].as_u64().unwrap() > 1000, "{v}");
    let s = control_status(&http, &admin).await;
    assert!(
        s["metrics_source"].as_str().unwrap().starts_with("kafka ("),
        "{s}"
    );
}
