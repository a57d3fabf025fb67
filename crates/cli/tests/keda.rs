//! `foresight controller --keda`: KEDA's external scaler, called as KEDA calls it (a tonic
//! client of `externalscaler.proto`) on a controller that reads a real proxy's rate from a
//! real Prometheus and forecasts it. The values it serves are the loop's own (`/control`), and
//! the HPA's `AverageValue` arithmetic on them gives the loop's count. Run with
//! `cargo test -p foresight --features keda --test keda`.
#![cfg(feature = "keda")]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use foresight_keda::pb::external_scaler_client::ExternalScalerClient;
use foresight_keda::pb::{GetMetricsRequest, ScaledObjectRef};
use tonic::transport::Channel;

fn object(metric: &str) -> ScaledObjectRef {
    ScaledObjectRef {
        name: "web".into(),
        namespace: "shop".into(),
        scaler_metadata: HashMap::from([
            ("service".to_string(), "default".to_string()),
            ("metric".to_string(), metric.to_string()),
            ("scalerAddress".to_string(), "foresight:9090".to_string()),
        ]),
    }
}

async fn value(c: &mut ExternalScalerClient<Channel>, metric: &str) -> f64 {
    let m = c
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(object(metric)),
            metric_name: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    m.metric_values[0].metric_value_float
}

fn controller(dir: &std::path::Path, name: &str, interval: &str, prom_port: u16) -> Proc {
    let toml = format!(
        r#"
[control]
interval = "{interval}"
step = "{interval}"
policy = "predictive"
forecaster = "moving-average"
workers = 2
capacity_rps = 20
target = 0.5
min = 1
max = 20
actuator = "none"
metrics = "prometheus"
prometheus_url = "http://127.0.0.1:{prom_port}"
rate_query = "sum(rate(foresight_client_requests_total[3s]))"
"#
    );
    controller_with(dir, name, &toml, &["--keda", "127.0.0.1:0"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_sees_the_planned_load_and_the_hpa_arithmetic_gives_the_loops_count() {
    let Some(bin) = prometheus_binary() else {
        return;
    };
    let dir = tempdir("keda");
    let (_b, backend_addr) = backend("keda", &["--route", "/w=5ms"]);
    let prom_port = free_port();
    let serve = spawn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--backend",
        &backend_addr,
    ]);
    let _prom = start_prometheus(&bin, &dir, prom_port, &[serve.get("admin")]).await;

    // A loop that has not measured yet is unavailable, not a count of 0 (KEDA then keeps the
    // current count).
    let slow = controller(&dir, "slow", "60s", prom_port);
    let mut c = ExternalScalerClient::connect(format!("http://{}", slow.get("keda")))
        .await
        .unwrap();
    let e = c
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(object("planned-load")),
            metric_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(e.message().contains("not measured yet"), "{e:?}");
    drop(slow);

    let ctl = controller(&dir, "ctl", "1s", prom_port);
    let admin = ctl.get("admin").to_string();
    let mut c = ExternalScalerClient::connect(format!("http://{}", ctl.get("keda")))
        .await
        .unwrap();
    let http = client();
    // ~30 req/s through the proxy, which Prometheus scrapes and the controller queries.
    let url = format!("http://{}", serve.get("proxy"));
    let plan = foresight_loadgen::Plan::constant(&url, &["/w"], 30.0, Duration::from_secs(40));
    let load = tokio::spawn(async move { foresight_loadgen::run(&plan).await.unwrap() });

    // Wait for a trusted forecast of the load, then read the scaler between two identical
    // statuses (no interval ended in between).
    let mut checked = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(35);
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = control_status(&http, &admin).await;
        let planned = before["planned_rps"].as_f64().unwrap_or(0.0);
        if before["trusted"] != true || planned < 10.0 {
            continue;
        }
        let load = value(&mut c, "planned-load").await;
        let replicas = value(&mut c, "replicas").await;
        let after = control_status(&http, &admin).await;
        if before["uptime_s"] != after["uptime_s"] {
            continue;
        }
        assert_eq!(load, planned, "{before}");
        assert_eq!(replicas, before["desired"].as_f64().unwrap(), "{before}");
        let spec = c
            .get_metric_spec(object("planned-load"))
            .await
            .unwrap()
            .into_inner();
        let target = spec.metric_specs[0].target_size_float;
        assert_eq!(target, 10.0, "capacity_rps × target = 20 × 0.5");
        assert_eq!(
            spec.metric_specs[0].metric_name,
            "foresight-default-planned-rps"
        );
        // An HPA with an AverageValue target of 10 wants ceil(load / 10) replicas: the
        // predictive policy's own count (below the governor's step limit of 4 from none).
        assert_eq!(
            (load / target).ceil(),
            before["desired"].as_f64().unwrap(),
            "{before}"
        );
        assert!(
            c.is_active(object("planned-load"))
                .await
                .unwrap()
                .into_inner()
                .result
        );
        checked = true;
        break;
    }
    assert!(
        checked,
        "no trusted forecast within 35 s: {}",
        control_status(&http, &admin).await
    );
    load.abort();
}
