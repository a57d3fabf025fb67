//! `foresight loadgen` against real backends: open loop (latency from the intended send time),
//! routes mix, trace replay, JSON and JTL outputs, the capacity mode, and bad input.

mod common;

use common::*;

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn open_loop_mix_with_json_and_jtl() {
    let (_b, addr) = backend("mix", &["--route", "/auth=2ms", "--route", "/process=5ms"]);
    let dir = tempdir("loadgen-mix");
    let (j, jtl) = (dir.join("out.json"), dir.join("out.jtl"));
    let o = run(&[
        "loadgen",
        "--target",
        &addr,
        "--rate",
        "200",
        "--duration",
        "2s",
        "--route",
        "/auth=3",
        "--route",
        "/process",
        "--json",
        j.to_str().unwrap(),
        "--jtl",
        jtl.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v = json(&j);
    assert_eq!(v["requests"], 400);
    assert_eq!(v["responses"], 400);
    assert_eq!(v["failures"], 0);
    assert_eq!(v["routes"]["/auth"]["requests"], 300);
    assert_eq!(v["routes"]["/process"]["requests"], 100);
    for k in ["achieved_rps", "p50_ms", "p95_ms", "p99_ms", "p999_ms"] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k}: {v}");
    }
    assert!((v["send_rps"].as_f64().unwrap() - 200.0).abs() < 2.0, "{v}");
    let jtl = std::fs::read_to_string(&jtl).unwrap();
    let lines: Vec<&str> = jtl.lines().collect();
    assert_eq!(lines.len(), 401, "header + one line per request");
    assert!(lines[0].starts_with("timeStamp,elapsed,label,responseCode"));
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains(",/process,200,OK,"))
            .count(),
        100
    );
    assert!(
        lines[1..].iter().all(|l| l.split(',').count() == 17),
        "{}",
        lines[1]
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("/process"));
}

/// One worker at 50 ms serves 20 req/s; offered 40 req/s for 2 s, the queue grows to about a
/// second and a half. A closed-loop tool would report ~50 ms; latency from the intended send
/// time shows the queueing.
#[test]
fn latency_counts_from_the_intended_send_time() {
    let (_b, addr) = backend(
        "one-worker",
        &[
            "--workers",
            "1",
            "--queue",
            "1000",
            "--distribution",
            "constant",
            "--route",
            "/w=50ms",
        ],
    );
    let dir = tempdir("loadgen-co");
    let j = dir.join("out.json");
    let o = run(&[
        "loadgen",
        "--target",
        &addr,
        "--rate",
        "40",
        "--duration",
        "2s",
        "--route",
        "/w",
        "--json",
        j.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v = json(&j);
    assert_eq!(v["requests"], 80, "sent on schedule, not when answers came");
    assert_eq!(v["failures"], 0);
    let p99 = v["p99_ms"].as_f64().unwrap();
    assert!(p99 > 1200.0, "p99 {p99} ms hides the queue");
    assert!(v["p50_ms"].as_f64().unwrap() > 400.0, "{v}");
}

#[test]
fn trace_replay_and_capacity_mode() {
    let (_b, addr) = backend("trace", &["--route", "/x=1ms"]);
    let dir = tempdir("loadgen-trace");
    let t = dir.join("t.csv");
    std::fs::write(
        &t,
        "minute,count\n2024-01-01 00:00:00,100\n2024-01-01 00:01:00,400\n2024-01-01 00:02:00,200\n",
    )
    .unwrap();
    let j = dir.join("out.json");
    let o = run(&[
        "loadgen",
        "--target",
        &addr,
        "--trace",
        t.to_str().unwrap(),
        "--peak-rps",
        "40",
        "--minute",
        "1s",
        "--route",
        "/x",
        "--json",
        j.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // 10 + 40 + 20 requests: one trace minute per second, scaled so 400/min is 40 req/s.
    let v = json(&j);
    assert_eq!(v["requests"], 70, "{v}");
    assert_eq!(v["duration_s"], 3.0);

    let o = run(&[
        "loadgen",
        "--target",
        &addr,
        "--max-rate",
        "--connections",
        "4",
        "--duration",
        "1s",
        "--route",
        "/x",
        "--json",
        j.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v = json(&j);
    assert_eq!(v["failures"], 0);
    assert!(v["responses"].as_u64().unwrap() > 100, "{v}");
}

#[test]
fn bad_input_is_a_usage_error_naming_the_flag() {
    let dir = tempdir("loadgen-bad");
    let missing = dir.join("missing.csv");
    let cases: [(&[&str], &str); 10] = [
        (&["--rate", "10", "--route", "auth"], "--route"),
        (&["--rate", "10", "--profile", "tsunami"], "--profile"),
        (&["--profile", "step", "--rate", "5"], "--to"),
        (&[], "--rate"),
        (&["--trace", missing.to_str().unwrap()], "missing.csv"),
        (&["--rate=-3"], "--rate"),
        // Bounded: a rate of 1e12 once aborted on a failed allocation.
        (&["--rate", "1e12"], "--rate"),
        (&["--rate", "NaN"], "--rate"),
        (
            &["--profile", "burst", "--rate", "10", "--to", "1e9"],
            "--to",
        ),
        (&["--max-rate", "--connections", "1000000"], "--connections"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["loadgen", "--target", "http://127.0.0.1:9", "--quiet"];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(64), "{extra:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(needle),
            "{extra:?}: {}",
            text(&o)
        );
    }
    let o = run(&["loadgen", "--target", "ftp://x", "--rate", "1", "--quiet"]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
}
