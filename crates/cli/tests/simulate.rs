//! `foresight simulate` end to end: table, JSON of the documented shape, SVG plot, errors.

mod common;

use std::process::Command;

use common::{tempdir, BIN};

const SCENARIO: &str = r#"
name = "cli-test"
seed = 3
duration = "20s"
warmup = "2s"
algorithms = ["round-robin", "p2c-ewma"]
[arrivals]
profile = "constant"
rate = 900             # capacity 3 x 400 + 1 x 100 = 1300 req/s
[[classes]]
name = "/process"
mean = "20ms"
[[instances]]
count = 3
workers = 8
queue = 64
[[instances]]
workers = 8
queue = 64
speed = 0.25
"#;

#[test]
fn simulate_writes_table_json_and_plot() {
    let dir = tempdir("simulate");
    let scenario = dir.join("s.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let (json, svg) = (dir.join("out.json"), dir.join("cdf.svg"));
    let out = Command::new(BIN)
        .args(["simulate", "--scenario", scenario.to_str().unwrap()])
        .args([
            "--json",
            json.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("round-robin") && stdout.contains("p99.9 ms"),
        "{stdout}"
    );

    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let algos = v["algorithms"].as_array().unwrap();
    assert_eq!(algos.len(), 2);
    let total: u64 = algos.iter().map(|a| a["requests"].as_u64().unwrap()).sum();
    assert_eq!(v["simulated_requests"].as_u64().unwrap(), total);
    assert!(v["wall_seconds"].as_f64().unwrap() > 0.0);
    for a in algos {
        for key in [
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "p999_ms",
            "dropped",
            "imbalance",
        ] {
            assert!(a[key].is_number(), "{key} in {a}");
        }
        // ~900/s for 20 s.
        let n = a["requests"].as_u64().unwrap();
        assert!((17_000..19_000).contains(&n), "{n}");
    }
    // Same arrivals for both; the slow instance hurts round-robin far more.
    assert_eq!(algos[0]["requests"], algos[1]["requests"]);
    assert!(
        algos[0]["p99_ms"].as_f64().unwrap() > 3.0 * algos[1]["p99_ms"].as_f64().unwrap(),
        "{v}"
    );

    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("p2c-ewma") && svg.contains("latency"),
        "{}",
        &svg[..200.min(svg.len())]
    );
}

#[test]
fn a_bad_scenario_exits_64_naming_the_key() {
    let dir = tempdir("simulate-bad");
    let scenario = dir.join("bad.toml");
    std::fs::write(&scenario, SCENARIO.replace("speed = 0.25", "speed = -1")).unwrap();
    let out = Command::new(BIN)
        .args(["simulate", "--scenario", scenario.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("instances[1].speed") && err.contains("bad.toml"),
        "{err}"
    );

    let out = Command::new(BIN)
        .args([
            "simulate",
            "--scenario",
            scenario.to_str().unwrap(),
            "--algorithms",
            "fastest",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "the file is checked first");
}
