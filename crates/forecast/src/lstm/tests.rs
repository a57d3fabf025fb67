use super::*;
use crate::baselines::Persistence;
use crate::eval::evaluate;
use crate::pipeline::{Dataset, PrepConfig};
use crate::series::Series;
use crate::AnomalyConfig;

fn series() -> Series {
    // Hourly steps, daily pattern plus deterministic noise: 40 days.
    let values: Vec<f64> = (0..24 * 40)
        .map(|i| {
            let day = (i % 24) as f64 / 24.0;
            let noise = ((i as u64).wrapping_mul(2654435761) % 11) as f64 - 5.0;
            100.0 + 60.0 * (day * std::f64::consts::TAU).sin() + noise
        })
        .collect();
    Series::from_values(1_700_000_000 - 1_700_000_000 % 86_400, 3600, &values)
}

fn small() -> LstmConfig {
    LstmConfig {
        hidden: 8,
        seq_len: 12,
        horizon: 3,
        epochs: 15,
        batch_size: 32,
        stride: 1,
        learning_rate: 0.01,
        ..Default::default()
    }
}

fn train(cfg: &LstmConfig, ds: &Dataset) -> Lstm {
    let (tr, va) = ds.prepared(cfg);
    Lstm::train(
        cfg,
        ds.series.step,
        ds.value_scaler,
        Vec::new(),
        &tr,
        &va,
        |_| {},
    )
    .unwrap()
}

#[test]
fn learns_more_than_persistence_and_is_reproducible() {
    let ds = Dataset::new(series(), &PrepConfig::default()).unwrap();
    let cfg = small();
    let a = train(&cfg, &ds);
    let b = train(&cfg, &ds);
    for name in names(cfg.layers) {
        let (x, y) = (&a.tensors[&name], &b.tensors[&name]);
        let d = (x - y)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0, "{name} differs between two runs with one seed");
    }
    let mut models: Vec<Box<dyn Forecaster>> = vec![Box::new(a), Box::new(Persistence::new())];
    let e = evaluate(
        &ds.series,
        ds.report.split,
        &mut models,
        &[0.0, 0.0],
        3,
        AnomalyConfig::default(),
        |_, _| {},
    )
    .unwrap();
    assert!(e.scores[0].mase < 0.8, "lstm {:?}", e.scores[0]);
}

#[test]
fn save_load_round_trip_and_bad_files() {
    let ds = Dataset::new(series(), &PrepConfig::default()).unwrap();
    let cfg = LstmConfig {
        epochs: 1,
        ..small()
    };
    let mut model = train(&cfg, &ds);
    let dir = std::env::temp_dir().join(format!("foresight-lstm-{}", std::process::id()));
    model.save(&dir).unwrap();
    let mut loaded = Lstm::load(&dir).unwrap();
    assert_eq!(loaded.meta(), model.meta());
    for i in 0..20 {
        let t = 1_700_000_000 + i * 3600;
        model.observe(t, 100.0 + i as f64, &[]);
        loaded.observe(t, 100.0 + i as f64, &[]);
    }
    assert_eq!(model.forecast(3), loaded.forecast(3));
    assert!(model.forecast(3).is_some());
    assert!(model.forecast(4).is_none(), "beyond the trained horizon");
    assert!(loaded.check_compatible(3600, &[], 3).is_ok());
    assert!(loaded
        .check_compatible(60, &[], 3)
        .unwrap_err()
        .to_string()
        .contains("3600 s steps"));
    assert!(loaded
        .check_compatible(3600, &["cpu".into()], 3)
        .unwrap_err()
        .to_string()
        .contains("features"));

    // A configuration that does not match the weights.
    let json = std::fs::read_to_string(dir.join("model.json")).unwrap();
    std::fs::write(
        dir.join("model.json"),
        json.replace("\"hidden\": 8", "\"hidden\": 16"),
    )
    .unwrap();
    let e = Lstm::load(&dir).err().unwrap().to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("shape"),
        "{e}"
    );
    // Another format version.
    std::fs::write(
        dir.join("model.json"),
        json.replace("\"format_version\": 1", "\"format_version\": 9"),
    )
    .unwrap();
    let e = Lstm::load(&dir).err().unwrap().to_string();
    assert!(e.contains("format_version 9"), "{e}");
    // Truncated weights.
    std::fs::write(dir.join("model.json"), &json).unwrap();
    std::fs::write(dir.join("model.safetensors"), b"\x08\x00\x00\x00").unwrap();
    let e = Lstm::load(&dir).err().unwrap().to_string();
    assert!(e.contains("not a safetensors file"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn too_little_data_is_an_error_not_a_panic() {
    let cfg = small();
    let s = Series::from_values(0, 3600, &[1.0; 20]);
    let p = Prepared::new(
        &cfg,
        &MinMax::fit([0.0, 1.0]),
        &[],
        0,
        3600,
        &s.values.iter().map(|v| v.unwrap()).collect::<Vec<_>>(),
        &[],
    );
    let e = Lstm::train(
        &cfg,
        3600,
        MinMax::fit([0.0, 1.0]),
        Vec::new(),
        &[p],
        &[],
        |_| {},
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("too little training data"), "{e}");
}

#[test]
fn pinball_loss_is_the_quantile_weighted_absolute_error() {
    let dev = Device::Cpu;
    // One window, one step; quantiles 0.1 and 0.9 both predicting 10, the target 14:
    // under-forecast by 4 → 0.1·4 = 0.4 and 0.9·4 = 3.6, mean 2.0.
    let pred = Tensor::from_vec(vec![10f32, 10.0], (1, 2), &dev).unwrap();
    let target = Tensor::from_vec(vec![14f32], (1, 1), &dev).unwrap();
    let l = pinball(&pred, &target, &[0.1, 0.9])
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!((l - 2.0).abs() < 1e-6, "{l}");
    // Over-forecast by 4 → 0.9·4 and 0.1·4: the same mean, the weights swapped.
    let target = Tensor::from_vec(vec![6f32], (1, 1), &dev).unwrap();
    let l = pinball(&pred, &target, &[0.1, 0.9])
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!((l - 2.0).abs() < 1e-6, "{l}");
    let exact = Tensor::from_vec(vec![10f32], (1, 1), &dev).unwrap();
    let l = pinball(&pred, &exact, &[0.5, 0.99])
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(l, 0.0);
}

#[test]
fn quantile_forecasts_are_ordered_and_cover_more_the_higher_they_are() {
    let ds = Dataset::new(series(), &PrepConfig::default()).unwrap();
    let cfg = LstmConfig {
        quantiles: vec![0.1, 0.5, 0.9],
        ..small()
    };
    let mut m = train(&cfg, &ds);
    assert_eq!(m.quantiles(), vec![0.1, 0.5, 0.9]);
    // Walk the test part: each quantile's coverage (actual ≤ forecast one step ahead).
    let split = ds.report.split;
    let mut covered = [0usize; 3];
    let mut n = 0;
    for i in split.val_end - 20..ds.series.values.len() {
        let v = ds.series.values[i].unwrap();
        if i >= split.val_end {
            let curves = m.forecast_quantiles(1).expect("warm");
            assert_eq!(curves.len(), 3);
            assert!(
                curves[0][0] <= curves[1][0] && curves[1][0] <= curves[2][0],
                "quantiles cross: {curves:?}"
            );
            assert_eq!(
                m.forecast(1).unwrap()[0],
                curves[1][0],
                "the point forecast is the median"
            );
            for (k, c) in curves.iter().enumerate() {
                covered[k] += usize::from(v <= c[0]);
            }
            n += 1;
        }
        m.observe(ds.series.time(i), v, &[]);
    }
    assert!(
        covered[0] < covered[1] && covered[1] < covered[2],
        "{covered:?} of {n}"
    );
    assert!(
        covered[2] as f64 / n as f64 >= 0.7,
        "the 0.9 curve covers {covered:?} of {n}"
    );
}

#[test]
fn models_saved_before_quantiles_load_as_point_forecasters() {
    let ds = Dataset::new(series(), &PrepConfig::default()).unwrap();
    // As models were then: a point forecast on one daily harmonic, no minute of the hour.
    let cfg = LstmConfig {
        quantiles: Vec::new(),
        hour_of_day_minute: false,
        day_harmonics: 1,
        epochs: 1,
        ..small()
    };
    let m = train(&cfg, &ds);
    let dir = std::env::temp_dir().join(format!("foresight-old-model-{}", std::process::id()));
    m.save(&dir).unwrap();
    // Remove the keys that older versions did not write.
    let path = dir.join("model.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let c = v["config"].as_object_mut().unwrap();
    c.remove("quantiles");
    c.remove("hour_of_day_minute");
    c.remove("day_harmonics");
    c.remove("calibrate");
    std::fs::write(&path, v.to_string()).unwrap();
    let mut old = Lstm::load(&dir).unwrap();
    assert!(!old.meta().config.calibrate && old.meta().calibration.is_empty());
    assert_eq!(
        old.meta().config.day_harmonics,
        1,
        "one daily harmonic, as then"
    );
    assert!(old.quantiles().is_empty());
    assert!(old.forecast_quantiles(1).is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn calendar_inputs_round_trip_through_a_model_file() {
    let ds = Dataset::new(series(), &PrepConfig::default()).unwrap();
    let cfg = LstmConfig {
        day_harmonics: 12,
        epochs: 1,
        ..small()
    };
    assert_eq!(cfg.calendar_inputs().len(), 2 * 12 + 2 + 2);
    assert_eq!(cfg.calendar_inputs()[22], "day_sin12");
    let mut model = train(&cfg, &ds);
    let dir = std::env::temp_dir().join(format!("foresight-calendar-{}", std::process::id()));
    model.save(&dir).unwrap();
    let path = dir.join("model.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"day_harmonics\": 12"), "{text}");
    let mut loaded = Lstm::load(&dir).unwrap();
    assert_eq!(
        loaded.meta().config.calendar_inputs(),
        cfg.calendar_inputs()
    );
    for i in 0..20 {
        let t = 1_700_000_000 + i * 3600;
        model.observe(t, 100.0 + i as f64, &[]);
        loaded.observe(t, 100.0 + i as f64, &[]);
    }
    assert_eq!(model.forecast(3), loaded.forecast(3));
    // A file that claims other calendar inputs than its weights take is refused, by name.
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["config"]["day_harmonics"] = serde_json::json!(2);
    std::fs::write(&path, v.to_string()).unwrap();
    let e = Lstm::load(&dir)
        .err()
        .expect("a mismatched calendar")
        .to_string();
    assert!(
        e.contains("model.safetensors") || e.contains("shape"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn conformal_shifts_cover_their_quantile_of_the_held_out_windows() {
    // 200 windows, 2 steps ahead, two curves (0.5 and 0.9) that forecast 0 where 0..200 came
    // at step 0 and twice that at step 1.
    let (n, horizon, q) = (200usize, 2usize, [0.5, 0.9]);
    let actual: Vec<f32> = (0..n).flat_map(|w| [w as f32, 2.0 * w as f32]).collect();
    let pred = vec![0f32; n * q.len() * horizon];
    let s = conformal_shifts(&pred, &actual, &q, horizon);
    assert_eq!(s.len(), q.len() * horizon);
    for (j, q) in q.iter().enumerate() {
        for h in 0..horizon {
            let shift = s[j * horizon + h];
            let covered =
                (0..n).filter(|w| actual[w * horizon + h] <= shift).count() as f64 / n as f64;
            // At least q, and by no more than one window beyond ⌈(n + 1)q⌉.
            assert!(
                covered >= *q && covered <= q + 2.0 / n as f64,
                "{q} step {h}: {covered}"
            );
        }
    }
    // A curve that is too high is shifted down: the errors are negative.
    let high = vec![1000f32; n * q.len() * horizon];
    assert!(conformal_shifts(&high, &actual, &q, horizon)
        .iter()
        .all(|s| *s < 0.0));
    assert!(conformal_shifts(&[], &[], &q, horizon).is_empty());
}

/// Share of the test part's actuals `ahead` steps ahead at or below the `curve`-th quantile.
fn test_coverage(m: &mut Lstm, ds: &Dataset, curve: usize, ahead: usize) -> f64 {
    let split = ds.report.split;
    let values: Vec<f64> = ds.series.values.iter().map(|v| v.unwrap()).collect();
    let (mut covered, mut n) = (0usize, 0usize);
    for i in split.val_end - 20..values.len() {
        if i >= split.val_end && i + ahead <= values.len() {
            let curves = m.forecast_quantiles(ahead).expect("warm");
            covered += usize::from(values[i + ahead - 1] <= curves[curve][ahead - 1]);
            n += 1;
        }
        m.observe(ds.series.time(i), values[i], &[]);
    }
    covered as f64 / n as f64
}

#[test]
fn a_calibrated_model_covers_its_quantiles_and_keeps_its_shifts_in_the_file() {
    let ds = Dataset::new(series(), &PrepConfig::default()).unwrap();
    // Two epochs: a quantile head far from its quantiles three steps ahead (0.74 covered).
    let raw = LstmConfig {
        quantiles: vec![0.5, 0.9],
        epochs: 2,
        calibrate: false,
        ..small()
    };
    let cal = LstmConfig {
        calibrate: true,
        ..raw.clone()
    };
    let mut before = train(&raw, &ds);
    let mut after = train(&cal, &ds);
    assert!(before.meta().calibration.is_empty());
    assert_eq!(after.meta().calibration.len(), 2 * cal.horizon);
    let (b, a) = (
        test_coverage(&mut before, &ds, 1, 3),
        test_coverage(&mut after, &ds, 1, 3),
    );
    assert!(
        (a - 0.9).abs() < (b - 0.9).abs() && (a - 0.9).abs() <= 0.05,
        "0.9 curve: {b} uncalibrated, {a} calibrated"
    );
    let dir = std::env::temp_dir().join(format!("foresight-calibrated-{}", std::process::id()));
    after.save(&dir).unwrap();
    let loaded = Lstm::load(&dir).unwrap();
    assert_eq!(loaded.meta().calibration, after.meta().calibration);
    // Shifts that do not fit the curves are refused, naming the file.
    let path = dir.join("model.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["calibration"] = serde_json::json!([0.1, 0.2]);
    std::fs::write(&path, v.to_string()).unwrap();
    let e = Lstm::load(&dir)
        .err()
        .expect("3 shifts for 2 × 3")
        .to_string();
    assert!(e.contains("model.json") && e.contains("calibration"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
