//! `foresight train` and `foresight forecast eval/predict` end to end on small synthetic traces:
//! the documented JSON shape, the saved model, and clear errors for bad inputs.

mod common;

use std::path::Path;

use common::{run, tempdir, text};

/// A small, fast model for tests (the defaults are for real traces).
const SMALL: &str = "[lstm]\nhidden = 8\nseq_len = 12\nepochs = 2\nbatch_size = 64\n";

/// Four days of a daily pattern with deterministic noise, one row per minute, with a missing
/// 3-minute stretch (filled) and a missing 40-minute stretch (kept as a split).
fn minute_trace(days: usize) -> String {
    let mut s = String::from("minute,count\n");
    let start = chrono::NaiveDate::from_ymd_opt(2024, 3, 4)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    for i in 0..days * 1440 {
        if (1000..1003).contains(&i) || (3000..3040).contains(&i) {
            continue;
        }
        let day = (i % 1440) as f64 / 1440.0;
        let noise = ((i as u64).wrapping_mul(2654435761) % 21) as f64 - 10.0;
        let v = 200.0 + 150.0 * (day * std::f64::consts::TAU).sin() + noise;
        let t = start + chrono::Duration::minutes(i as i64);
        s.push_str(&format!(
            "{},{}\n",
            t.format("%Y-%m-%d %H:%M:%S"),
            v.round() as u64
        ));
    }
    s
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn train_then_eval_and_predict_with_the_saved_model() {
    let dir = tempdir("forecast-train");
    let trace = write(&dir, "t.csv", &minute_trace(4));
    let cfg = write(&dir, "small.toml", SMALL);
    let model = dir.join("model");
    let m = model.to_str().unwrap();
    let o = run(&[
        "train",
        "--trace",
        &trace,
        "--config",
        &cfg,
        "--out",
        m,
        "--horizon",
        "5",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("foresight train: model="));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("3 steps filled") && stderr.contains("1 long gaps"),
        "{stderr}"
    );
    assert!(model.join("model.safetensors").exists() && model.join("model.json").exists());
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("model.json")).unwrap()).unwrap();
    assert_eq!(meta["config"]["horizon"], 5);
    assert_eq!(meta["config"]["hidden"], 8);
    assert_eq!(meta["step_secs"], 60);
    assert!(meta["value_scaler"]["max"].as_f64().unwrap() > 0.0);

    // Evaluation with the saved model: every model, the documented JSON shape, a plot.
    let (json, svg) = (dir.join("eval.json"), dir.join("eval.svg"));
    let o = run(&[
        "forecast",
        "eval",
        "--trace",
        &trace,
        "--config",
        &cfg,
        "--model",
        m,
        "--horizon",
        "5",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["horizon_minutes"], 5);
    assert!(v["trace"].as_str().unwrap().ends_with("t.csv"));
    let models = v["models"].as_array().unwrap();
    let names: Vec<&str> = models.iter().map(|m| m["name"].as_str().unwrap()).collect();
    for n in [
        "lstm",
        "persistence",
        "seasonal-naive",
        "seasonal-quantile",
        "moving-average",
        "holt-winters",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    // Four days of data: the weekly baseline cannot forecast, and says so.
    assert!(!names.contains(&"seasonal-naive-weekly"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("seasonal-naive-weekly left out"));
    for m in models {
        for k in [
            "mae",
            "rmse",
            "mse",
            "smape",
            "mase",
            "train_seconds",
            "infer_micros",
            "anomaly_share",
        ] {
            assert!(m[k].is_number(), "{k} of {} is {:?}", m["name"], m[k]);
        }
        let (mae, rmse) = (m["mae"].as_f64().unwrap(), m["rmse"].as_f64().unwrap());
        assert!(mae > 0.0 && rmse >= mae, "{m}");
        // Every model is scored at four quantiles: pinball loss and coverage.
        let q = m["quantiles"].as_array().unwrap();
        let levels: Vec<f64> = q.iter().map(|x| x["q"].as_f64().unwrap()).collect();
        assert_eq!(levels, [0.5, 0.9, 0.95, 0.99], "{}", m["name"]);
        for x in q {
            assert!(x["pinball"].as_f64().unwrap() >= 0.0);
            assert!((0.0..=1.0).contains(&x["coverage"].as_f64().unwrap()));
        }
        let own = if m["name"] == "lstm" {
            "model"
        } else {
            "residual band"
        };
        assert_eq!(q[0]["source"], own, "{}", m["name"]);
    }
    let persistence = models.iter().find(|m| m["name"] == "persistence").unwrap();
    assert_eq!(persistence["mase"].as_f64().unwrap(), 1.0);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    assert!(String::from_utf8_lossy(&o.stdout).contains("MASE"));
    assert!(String::from_utf8_lossy(&o.stdout).contains("pinball loss"));

    // Predict from the end of the trace.
    let o = run(&["forecast", "predict", "--model", m, "--trace", &trace]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "time,forecast");
    assert_eq!(lines.len(), 6, "{out}");
    assert!(lines[1].starts_with("2024-03-08 00:00"), "{out}");

    // The same model asked for a longer horizon than it was trained for: a clear error.
    let o = run(&[
        "forecast",
        "eval",
        "--trace",
        &trace,
        "--model",
        m,
        "--horizon",
        "15",
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("forecasts 5 steps ahead, 15 were asked for"),
        "{}",
        text(&o)
    );

    // A series with a feature column the model was not trained with.
    let mut with_cpu = String::from("timestamp,value,cpu\n");
    for i in 0..200 {
        with_cpu.push_str(&format!("{},{},0.5\n", 1_700_000_000 + i * 60, 100 + i % 7));
    }
    let t2 = write(&dir, "cpu.csv", &with_cpu);
    let o = run(&["forecast", "predict", "--model", m, "--trace", &t2]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("features"),
        "{}",
        text(&o)
    );
}

#[test]
fn bad_inputs_give_clear_errors() {
    let dir = tempdir("forecast-bad");
    let cfg = write(&dir, "small.toml", SMALL);
    // Malformed line: file and line named.
    let bad = write(
        &dir,
        "bad.csv",
        "minute,count\n2024-01-01 00:00:00,5\n2024-01-01 00:01:00,five\n",
    );
    let o = run(&["forecast", "eval", "--trace", &bad, "--quiet"]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bad.csv:3: count `five`"),
        "{}",
        text(&o)
    );

    // Too short to train.
    let short: String = std::iter::once("minute,count\n".to_string())
        .chain((0..50).map(|i| format!("2024-01-01 00:{:02}:00,{}\n", i, 10 + i)))
        .collect();
    let short = write(&dir, "short.csv", &short);
    let o = run(&[
        "train",
        "--trace",
        &short,
        "--config",
        &cfg,
        "--out",
        dir.join("m").to_str().unwrap(),
        "--quiet",
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("too little"),
        "{}",
        text(&o)
    );

    // A model directory that is not a model.
    let fake = dir.join("fake");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::write(fake.join("model.json"), "{\"hello\": 1}").unwrap();
    let trace = write(&dir, "t.csv", &minute_trace(3));
    let o = run(&[
        "forecast",
        "predict",
        "--model",
        fake.to_str().unwrap(),
        "--trace",
        &trace,
    ]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a Foresight model"),
        "{}",
        text(&o)
    );
    std::fs::remove_file(fake.join("model.json")).unwrap();
    let o = run(&[
        "forecast",
        "predict",
        "--model",
        fake.to_str().unwrap(),
        "--trace",
        &trace,
    ]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("model.json"),
        "{}",
        text(&o)
    );

    // Bad configuration key and bad horizon.
    let badcfg = write(&dir, "bad.toml", "[lstm]\nhiden = 3\n");
    let o = run(&["forecast", "eval", "--trace", &trace, "--config", &badcfg]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("hiden"),
        "{}",
        text(&o)
    );
    let o = run(&["forecast", "eval", "--trace", &trace, "--horizon", "0"]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--horizon"),
        "{}",
        text(&o)
    );
}
