//! `foresight experiment` end to end on a short synthetic trace: every policy, the JSON shape
//! of issue #5, plots, and clear errors.

mod common;

use common::{run, tempdir, text};

/// Ten days of a daily pattern with a sharp evening surge, one row per minute.
fn trace() -> String {
    let mut s = String::from("minute,count\n");
    let start = chrono::NaiveDate::from_ymd_opt(2024, 5, 6)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    for i in 0..10 * 1440 {
        let m = i % 1440;
        let base = 100.0 + 60.0 * ((m as f64 / 1440.0 - 0.25) * std::f64::consts::TAU).sin();
        let surge = if (1080..1140).contains(&m) {
            120.0
        } else {
            0.0
        };
        let noise = ((i as u64).wrapping_mul(2654435761) % 17) as f64 - 8.0;
        let t = start + chrono::Duration::minutes(i as i64);
        s.push_str(&format!(
            "{},{}\n",
            t.format("%Y-%m-%d %H:%M:%S"),
            (base + surge + noise).round() as u64
        ));
    }
    s
}

#[test]
fn every_policy_runs_and_the_json_has_the_documented_shape() {
    let dir = tempdir("experiment");
    let t = dir.join("t.csv");
    std::fs::write(&t, trace()).unwrap();
    let json = dir.join("out.json");
    let plots = dir.join("plots");
    let o = run(&[
        "experiment",
        "--trace",
        t.to_str().unwrap(),
        "--forecaster",
        "moving-average",
        "--minutes",
        "360",
        "--peak-rps",
        "80",
        "--json",
        json.to_str().unwrap(),
        "--plots",
        plots.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("| hpa |") && stdout.contains("Matched comparisons"),
        "{stdout}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(v["trace"].as_str().unwrap().ends_with("t.csv"));
    assert_eq!(v["settings"]["provision_delay_secs"], 180.0);
    let names: Vec<&str> = v["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "static-peak",
            "static-mean",
            "hpa",
            "reactive",
            "predictive-moving-average",
            "hybrid-moving-average",
            "cost-optimal-moving-average",
            "oracle"
        ]
    );
    for p in v["policies"].as_array().unwrap() {
        for k in [
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "p999_ms",
            "mean_ms",
            "queue_p50_ms",
            "queue_p99_ms",
            "queue_mean_ms",
            "slo_attainment",
            "dropped",
            "instance_hours",
            "scale_actions",
        ] {
            assert!(p[k].is_number(), "{k} of {}", p["name"]);
        }
        let a = p["slo_attainment"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&a));
    }
    let static_peak = &v["policies"][0];
    assert_eq!(static_peak["scale_actions"], 0);
    // 360 minutes at a fixed count: instance-hours = count × 6 h.
    let n = static_peak["knob"].as_f64().unwrap();
    assert!((static_peak["instance_hours"].as_f64().unwrap() - n * 6.0).abs() < 1e-6);
    let hpa = &v["policies"][2];
    assert!(
        hpa["scale_actions"].as_u64().unwrap() > 0,
        "hpa never scaled"
    );
    // Frontiers: several knob values per family; matched comparisons keyed by family.
    let f = v["frontiers"].as_object().unwrap();
    assert!(f["hpa"].as_array().unwrap().len() >= 5);
    assert_eq!(
        f["reactive"].as_array().unwrap().len(),
        5,
        "the floor alone, swept"
    );
    assert!(f["hpa"][0]["instance_hours"].is_number() && f["hpa"][0]["slo_attainment"].is_number());
    assert!(v["matched"]["instance_hours_at_goal"]
        .as_object()
        .unwrap()
        .contains_key("oracle"));
    assert_eq!(v["matched"]["slo_goal"], 0.99);
    assert!(v["matched"]["p99_ms_at_hpa_cost"]["hpa"].is_number());
    assert!(v["matched"]["mean_ms_at_hpa_cost"]["hpa"].is_number());
    assert!(v["matched"]["p99_queue_ms_at_hpa_cost"]["hpa"].is_number());
    // Queueing delay is the response time less the service: never above it.
    for p in v["policies"].as_array().unwrap() {
        assert!(p["queue_p50_ms"].as_f64().unwrap() <= p["p50_ms"].as_f64().unwrap() + 1.0);
    }
    for p in ["frontiers.svg", "timeline.svg"] {
        assert!(
            std::fs::read_to_string(plots.join(p))
                .unwrap()
                .contains("<svg"),
            "{p}"
        );
    }
}

#[test]
fn the_balancer_inside_the_pool_is_a_flag_and_cold_instances_are_recorded() {
    let dir = tempdir("experiment-balancer");
    let t = dir.join("t.csv");
    std::fs::write(&t, trace()).unwrap();
    let json = dir.join("out.json");
    let o = run(&[
        "experiment",
        "--trace",
        t.to_str().unwrap(),
        "--forecaster",
        "moving-average",
        "--minutes",
        "120",
        "--policies",
        "hybrid",
        "--no-sweep",
        "--algorithm",
        "forecast-aware",
        "--cold-start",
        "2m",
        "--slow-start",
        "90s",
        "--json",
        json.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["settings"]["balancer"], "forecast-aware");
    assert_eq!(v["settings"]["cold_start_secs"], 120.0);
    assert_eq!(v["settings"]["slow_start_secs"], 90.0);
    assert_eq!(v["policies"][0]["name"], "hybrid-moving-average");
    let o = run(&[
        "experiment",
        "--trace",
        t.to_str().unwrap(),
        "--algorithm",
        "telepathy",
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--algorithm"),
        "{}",
        text(&o)
    );
}

#[test]
fn bad_inputs_are_usage_errors() {
    let dir = tempdir("experiment-bad");
    let t = dir.join("t.csv");
    std::fs::write(&t, trace()).unwrap();
    let t = t.to_str().unwrap();
    let o = run(&[
        "experiment",
        "--trace",
        t,
        "--policies",
        "hpa,magic",
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown policy `magic`"),
        "{}",
        text(&o)
    );
    let o = run(&[
        "experiment",
        "--trace",
        t,
        "--forecaster",
        "crystal-ball",
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--forecaster"),
        "{}",
        text(&o)
    );
    let o = run(&["experiment", "--trace", t, "--slo-goal", "1.5", "--quiet"]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    // Numbers that would exhaust the machine or mean nothing: refused, naming the flag (a
    // peak of 1e12 req/s once grew the process to 24 GB before the OOM killer stopped it).
    for (flag, value) in [
        ("--peak-rps", "1e12"),
        ("--peak-rps", "NaN"),
        ("--peak-rps", "0"),
        ("--capacity-rps", "inf"),
        ("--slo-ms", "-5"),
        ("--cost-per-hour", "NaN"),
        ("--scale-in-window", "2h"),
        ("--cold-start", "2h"),
        ("--slow-start", "100years"),
        ("--widen", "6"),
        ("--tail-share", "1.5"),
        ("--tail-share", "NaN"),
        ("--interruption-hold", "2d"),
        ("--season", "90s"),
        ("--season", "3w"),
        ("--seasons", "0"),
        ("--seasons", "53"),
    ] {
        let o = run(&[
            "experiment",
            "--trace",
            t,
            &format!("{flag}={value}"),
            "--quiet",
        ]);
        assert_eq!(o.status.code(), Some(64), "{flag} {value}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(&format!("for `{flag}`")),
            "{flag} {value}: {}",
            text(&o)
        );
    }
    let short = dir.join("short.csv");
    std::fs::write(
        &short,
        "minute,count\n2024-01-01 00:00:00,5\n2024-01-01 00:01:00,6\n",
    )
    .unwrap();
    let o = run(&["experiment", "--trace", short.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("short"),
        "{}",
        text(&o)
    );
}

/// `generate suite`: each workload's trace and parameters, the index, the same files for the
/// same seed, and bounded flags.
#[test]
fn a_generated_suite_is_written_whole_and_reproducibly() {
    let dir = tempdir("suite");
    let gen = |out: &std::path::Path| {
        run(&[
            "generate",
            "suite",
            "--seed",
            "5",
            "--count",
            "3",
            "--days",
            "21",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let (a, b) = (dir.join("a"), dir.join("b"));
    for d in [&a, &b] {
        let o = gen(d);
        assert!(o.status.success(), "{}", text(&o));
    }
    for name in ["w000", "w001", "w002"] {
        let csv = std::fs::read_to_string(a.join(format!("{name}.csv"))).unwrap();
        let rows = csv.lines().count() - 1;
        // Collection gaps remove a few rows, never more than a few hundred.
        assert!(
            (21 * 1440 - 500..=21 * 1440).contains(&rows),
            "{name}: {rows}"
        );
        assert_eq!(
            csv,
            std::fs::read_to_string(b.join(format!("{name}.csv"))).unwrap()
        );
        let params: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(a.join(format!("{name}.json"))).unwrap())
                .unwrap();
        assert_eq!(params["name"], name);
        assert!(params["base"].as_f64().unwrap() > 0.0);
    }
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("suite.json")).unwrap()).unwrap();
    assert_eq!(index["seed"], 5);
    assert_eq!(index["workloads"].as_array().unwrap().len(), 3);
    for (flag, value) in [
        ("--count", "0"),
        ("--count", "5000"),
        ("--days", "7"),
        ("--start", "2026-01-06"),
    ] {
        let o = run(&[
            "generate",
            "suite",
            "--seed",
            "1",
            "--out",
            dir.join("bad").to_str().unwrap(),
            flag,
            value,
        ]);
        assert_eq!(o.status.code(), Some(64), "{flag} {value}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(&format!("for `{flag}`")),
            "{flag} {value}: {}",
            text(&o)
        );
    }
}

/// `experiment --suite`: every workload run, a row each and an aggregate per policy, in the
/// table and the JSON, and the CDF plot; a directory without workloads is a usage error.
#[test]
fn a_suite_runs_every_workload_and_aggregates() {
    let dir = tempdir("suite-run");
    let suite = dir.join("suite");
    let o = run(&[
        "generate",
        "suite",
        "--seed",
        "3",
        "--count",
        "2",
        "--days",
        "21",
        "--out",
        suite.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let json = dir.join("suite.json");
    let plots = dir.join("plots");
    let o = run(&[
        "experiment",
        "--suite",
        suite.to_str().unwrap(),
        "--forecaster",
        "moving-average",
        "--minutes",
        "120",
        "--no-sweep",
        "--json",
        json.to_str().unwrap(),
        "--plots",
        plots.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("| w000 |") && stdout.contains("| w001 |"),
        "{stdout}"
    );
    assert!(stdout.contains("aggregate over 2 workloads"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["workloads"].as_array().unwrap().len(), 2);
    let agg = v["aggregate"].as_array().unwrap();
    let oracle = agg.iter().find(|g| g["policy"] == "oracle").unwrap();
    assert_eq!(oracle["workloads"], 2);
    assert!(agg.iter().any(|g| g["policy"] == "hybrid-moving-average"));
    assert!(v["workloads"][0]["shape"]
        .as_str()
        .unwrap()
        .contains("diurnal"));
    assert!(std::fs::metadata(plots.join("suite.svg")).unwrap().len() > 1000);
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = run(&["experiment", "--suite", empty.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no *.csv workload"));
}

/// `--tail-share auto`: the hybrid run over the validation part with each candidate share,
/// smallest first until one reaches the goal; the choice and its trials in the JSON, and the
/// chosen share is the one the runs plan with.
#[test]
fn the_tail_share_is_chosen_on_the_validation_part() {
    let dir = tempdir("experiment-tail");
    let t = dir.join("t.csv");
    std::fs::write(&t, trace()).unwrap();
    let json = dir.join("out.json");
    let (o, v) = hybrid(
        &t,
        &json,
        "120",
        &["--peak-rps", "80", "--tail-share", "auto"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("on the validation part (0 → "), "{stderr}");
    let c = &v["tail_share_choice"];
    let trials = c["trials"].as_array().unwrap();
    assert_eq!(trials[0]["share"], 0.0);
    let goal = v["settings"]["slo_goal"].as_f64().unwrap();
    // Trials stop at the first that reaches the goal; every one before it missed it.
    for t in &trials[..trials.len() - 1] {
        assert!(t["slo_attainment"].as_f64().unwrap() < goal, "{c}");
    }
    let chosen = c["chosen"].as_f64().unwrap();
    assert!(trials.iter().any(|t| t["share"] == chosen), "{c}");
    assert_eq!(v["tail_share"], chosen);
    assert_eq!(v["widen"], 0, "--widen 0 by default");
    // With `--widen auto` the widening is chosen too, unwidened tried first at each share.
    let (o, v) = hybrid(
        &t,
        &json,
        "120",
        &[
            "--peak-rps",
            "80",
            "--tail-share",
            "auto",
            "--widen",
            "auto",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("on the validation part (0 widen 0 → "),
        "{stderr}"
    );
    let c = &v["tail_share_choice"];
    let trials = c["trials"].as_array().unwrap();
    assert_eq!(
        (&trials[0]["share"], &trials[0]["widen"]),
        (&0.0.into(), &0.into())
    );
    if let Some(second) = trials.get(1) {
        assert_eq!(
            (&second["share"], &second["widen"]),
            (&0.0.into(), &5.into()),
            "{c}"
        );
    }
    assert_eq!(v["widen"], c["widen"]);
    assert_eq!(v["tail_share"], c["chosen"]);
    // A named share skips the trials.
    let (o, v) = hybrid(&t, &json, "60", &["--tail-share", "0.002"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(v["tail_share_choice"].is_null());
    assert_eq!(v["tail_share"], 0.002);
    // Out of range: a usage error naming the flag and the range.
    let (o, _) = hybrid(&t, &json, "60", &["--widen", "6"]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("--widen") && stderr.contains("0–5"),
        "{stderr}"
    );
}

/// `experiment` of the hybrid alone over the first `minutes` of `trace`, with `extra` flags:
/// its output and its JSON (`Null` when it wrote none).
fn hybrid(
    trace: &std::path::Path,
    json: &std::path::Path,
    minutes: &str,
    extra: &[&str],
) -> (std::process::Output, serde_json::Value) {
    let _ = std::fs::remove_file(json);
    let mut args = vec![
        "experiment",
        "--trace",
        trace.to_str().unwrap(),
        "--forecaster",
        "moving-average",
        "--minutes",
        minutes,
        "--policies",
        "hybrid",
        "--no-sweep",
        "--json",
        json.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    let v = std::fs::read_to_string(json)
        .ok()
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default();
    (o, v)
}
