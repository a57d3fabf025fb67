//! `foresight demo` end to end (compressed further than the default to keep CI short): both
//! policies replay the embedded trace through real processes with no failed request, and it
//! writes its plot and JSON.

mod common;

use common::*;

#[test]
fn demo_runs_the_live_loop_for_both_policies() {
    let dir = tempdir("demo");
    let (j, plot) = (dir.join("demo.json"), dir.join("demo.svg"));
    let o = run(&[
        "demo",
        "--minute",
        "100ms",
        "--json",
        j.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&j).unwrap()).unwrap();
    let policies = v["policies"].as_array().unwrap();
    let names: Vec<&str> = policies
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hpa", "hybrid-auto"]);
    for p in policies {
        assert_eq!(p["failures"], 0, "{p}");
        assert!(p["requests"].as_u64().unwrap() > 2000, "{p}");
        assert!(p["instance_hours"].as_f64().unwrap() > 4.0, "{p}");
        let peak = p["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["instances"].as_u64().unwrap())
            .max()
            .unwrap();
        assert!(peak >= 3, "the pool grew with the morning: {p}");
    }
    assert!(std::fs::read_to_string(&plot).unwrap().contains("<svg"));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("inst-hours"), "{out}");
}
