//! Prometheus and Grafana as users run them, checked with the real tools: the rules of
//! `deploy/prometheus/rules.yml` pass `promtool check rules` and their unit tests
//! (`promtool test rules`); a real Prometheus loads them while scraping a real proxy under
//! load, evaluates every one without error, and answers every query of the Grafana dashboard
//! `deploy/grafana/foresight.json` with data.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path)
}

/// `promtool` (Debian's `prometheus` package has it); with `CI` set its absence fails.
fn promtool() -> Option<String> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("promtool"))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => Some(p.display().to_string()),
        None if std::env::var_os("CI").is_some() => {
            panic!("promtool is not installed; .ci/run installs the Debian package `prometheus`")
        }
        None => {
            eprintln!("SKIPPED: promtool is not installed (apt-get install -y prometheus)");
            None
        }
    }
}

#[test]
fn promtool_checks_the_rules_and_runs_their_unit_tests() {
    let Some(bin) = promtool() else { return };
    for args in [
        ["check", "rules", "prometheus/rules.yml"],
        ["test", "rules", "prometheus/rules_test.yml"],
    ] {
        let o = Command::new(&bin)
            .args(args)
            .current_dir(deploy(""))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Every `expr` of the dashboard, with Grafana's variables as a user's first view has them:
/// all services, a 15 s rate interval (four of the test's 1 s scrapes and then some).
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("grafana/foresight.json")).unwrap();
    let d: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$service", ".*")
                .replace("$__rate_interval", "15s");
            out.push((p["title"].as_str().unwrap().to_string(), expr));
        }
    }
    out
}

async fn query(http: &HttpClient, port: u16, expr: &str) -> serde_json::Value {
    let url = format!(
        "http://127.0.0.1:{port}/api/v1/query?query={}",
        urlencode(expr)
    );
    let r = get(http, &url).await;
    assert_eq!(r.status, 200, "{expr}: {}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_prometheus_evaluates_every_rule_and_answers_every_dashboard_query() {
    let Some(bin) = prometheus_binary() else {
        return;
    };
    let dir = tempdir("observability");
    let (_b, live) = backend("obs", &["--route", "/w=2ms"]);
    // An address nothing listens on: connect errors and retries have series too.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let port = free_port();
    let config = format!(
        r#"
[health_check]
enabled = false

[[services]]
name = "web"
backends = [{{ address = "{live}" }}, {{ address = "{dead}" }}]
rate_limit = {{ rate = 30, burst = 30 }}
[services.control]
interval = "500ms"
policy = "hpa"
forecaster = "moving-average"
actuator = "none"
min = 1
max = 4
"#
    );
    let p = proxy(&dir, &config, &[]);
    let (admin, url) = (p.get("admin").to_string(), p.get("proxy").to_string());
    let rules = deploy("prometheus/rules.yml").canonicalize().unwrap();
    let _prom = start_prometheus_with(
        &bin,
        &dir,
        port,
        &[&admin],
        &format!("rule_files:\n  - '{}'\n", rules.display()),
    )
    .await;
    // 50 req/s against a limit of 30: some 429s, some connect errors retried elsewhere.
    let plan = foresight_loadgen::Plan::constant(
        &format!("http://{url}"),
        &["/w"],
        50.0,
        Duration::from_secs(40),
    );
    let load = tokio::spawn(async move { foresight_loadgen::run(&plan).await.unwrap() });
    let http = client();
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "{queries:?}");
    for (title, expr) in &queries {
        eventually(
            Duration::from_secs(30),
            &format!("{title}: {expr}"),
            || async {
                let v = query(&http, port, expr).await;
                v["status"] == "success"
                    && v["data"]["result"]
                        .as_array()
                        .is_some_and(|r| !r.is_empty())
            },
        )
        .await;
    }
    // Every rule evaluates without error; the recording rules that need no history have data.
    eventually(
        Duration::from_secs(15),
        "every rule evaluated, healthy",
        || async {
            let r = get(&http, &format!("http://127.0.0.1:{port}/api/v1/rules")).await;
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            let rules: Vec<&serde_json::Value> = v["data"]["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["rules"].as_array().unwrap())
                .collect();
            rules.len() == 13
                && rules
                    .iter()
                    .all(|r| r["health"] == "ok" && r["lastEvaluation"] != "0001-01-01T00:00:00Z")
        },
    )
    .await;
    for record in [
        "service:foresight_client_requests:rate1m",
        "service:foresight_requests:rate1m",
        "service:foresight_requests_5xx:ratio_rate5m",
        "service:foresight_request_duration_seconds:p99_5m",
        "service:foresight_rate_limited:rate1m",
        "service:foresight_retries:rate1m",
    ] {
        eventually(Duration::from_secs(15), record, || async {
            let v = query(&http, port, record).await;
            v["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        })
        .await;
    }
    load.abort();
}
