//! The control loop reading the request rate from a real Prometheus server (PromQL over
//! `/api/v1/query_range`), and falling back to the proxy's own counters when it goes away.
//! Needs the `prometheus` binary (Debian package `prometheus`; `.ci/run` installs it): with
//! `CI` set a missing binary fails the test, elsewhere the test says so and passes.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn prometheus_binary() -> Option<String> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("prometheus"))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => Some(p.display().to_string()),
        None if std::env::var_os("CI").is_some() => {
            panic!("prometheus is not installed; .ci/run installs the Debian package `prometheus`")
        }
        None => {
            eprintln!("SKIPPED: prometheus is not installed (apt-get install -y prometheus)");
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn control(c: &HttpClient, admin: &str) -> serde_json::Value {
    serde_json::from_str(&get(c, &format!("http://{admin}/control")).await.body).unwrap()
}

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
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: foresight\n    static_configs:\n      - targets: ['{admin}']\n"
        ),
    )
    .unwrap();
    let prom = Killed(
        Command::new(&bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let http = client();
    // Its first sample comes a few seconds after start: poll `up`, do not sleep.
    eventually(
        Duration::from_secs(30),
        "prometheus scrapes the proxy",
        || async {
            let r = send(
                &http,
                "GET",
                &format!("http://127.0.0.1:{port}/api/v1/query?query=up"),
                "",
            )
            .await;
            r.is_ok_and(|r| r.body.contains(r#""value":["#) && r.body.contains(r#","1"]"#))
        },
    )
    .await;

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
            let s = control(&http, &admin).await;
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
            let s = control(&http, &admin).await;
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
