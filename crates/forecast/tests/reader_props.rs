//! Property tests of the forecaster's file readers: series CSVs and model directories. Arbitrary
//! or corrupted input is read or refused with an error, never a panic or an allocation beyond
//! the readers' bounds. `PROPTEST_CASES` sets the number of cases (256 by default; the model
//! cases are fewer, each reads files).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use foresight_forecast::series::MAX_STEPS;
use foresight_forecast::{Aggregate, Dataset, Forecaster, Lstm, LstmConfig, PrepConfig, Series};
use proptest::prelude::*;

/// A plausible timestamp: RFC 3339, a calendar time, or Unix seconds of any size.
fn timestamp() -> impl Strategy<Value = String> {
    prop_oneof![
        (-9999i32..=9999, 1u32..=12, 1u32..=28, 0u32..24)
            .prop_map(|(y, m, d, h)| format!("{y:04}-{m:02}-{d:02} {h:02}:00:00")),
        (1900i32..=2200, 1u32..=12, 1u32..=28)
            .prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}T00:00:00Z")),
        any::<i64>().prop_map(|s| s.to_string()),
        any::<f64>().prop_map(|s| s.to_string()),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|v| v.to_string()),
        Just(String::new()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        "[ -~]{0,5}",
    ]
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics_the_series_reader(text in "\\PC{0,400}") {
        for header in ["", "timestamp,value\n", "timestamp,value,cpu\n", "minute,count\n"] {
            let text = format!("{header}{text}");
            let _ = Series::parse(&text, "s.csv", None, Aggregate::Sum);
            let _ = Series::parse(&text, "s.csv", Some(60), Aggregate::Mean);
        }
    }

    #[test]
    fn rows_at_any_times_are_read_or_refused_within_the_bound(
        rows in prop::collection::vec((timestamp(), value(), value()), 1..6),
        step in prop::option::of(1i64..100_000),
    ) {
        let mut text = String::from("timestamp,value,cpu\n");
        for (t, v, f) in &rows {
            text.push_str(&format!("{t},{v},{f}\n"));
        }
        if let Ok(s) = Series::parse(&text, "s.csv", step, Aggregate::Sum) {
            prop_assert!(s.len() as i64 <= MAX_STEPS);
        }
    }
}

/// A small trained model saved once; its directory.
fn saved_model() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let values: Vec<f64> = (0..24 * 20)
            .map(|i| 100.0 + 50.0 * ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).sin())
            .collect();
        let series = Series::from_values(1_700_006_400, 3600, &values);
        let ds = Dataset::new(series, &PrepConfig::default()).unwrap();
        let cfg = LstmConfig {
            hidden: 4,
            seq_len: 6,
            horizon: 2,
            epochs: 1,
            ..Default::default()
        };
        let (tr, va) = ds.prepared(&cfg);
        let model = Lstm::train(
            &cfg,
            ds.series.step,
            ds.value_scaler,
            Vec::new(),
            &tr,
            &va,
            |_| {},
        )
        .unwrap();
        let dir =
            std::env::temp_dir().join(format!("foresight-model-props-{}", std::process::id()));
        model.save(&dir).unwrap();
        dir
    })
}

/// Values a corrupted number in model.json may take.
fn odd_number() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "0",
        "-1",
        "1",
        "3.5",
        "1e308",
        "-1e308",
        "4294967296",
        "18446744073709551615",
        "99999999999999999999999",
        "1e-300",
        "null",
        "\"x\"",
        "[]",
        "{}",
        "true",
    ])
    .prop_map(str::to_string)
}

/// Edits of one file's bytes.
#[derive(Debug, Clone)]
enum Edit {
    /// Replace the n-th number in the text (model.json).
    Number(usize, String),
    /// Set the byte at this position (modulo the length).
    Byte(usize, u8),
    /// Keep only this many bytes (modulo the length).
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<usize>(), odd_number()).prop_map(|(i, v)| Edit::Number(i, v)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Byte(i, b)),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ]
}

/// `bytes` with `edit` applied.
fn apply(bytes: &[u8], edit: &Edit) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match edit {
        Edit::Number(n, v) => {
            let text = String::from_utf8_lossy(bytes);
            let numbers: Vec<(usize, usize)> = number_spans(&text);
            if !numbers.is_empty() {
                let (a, b) = numbers[n % numbers.len()];
                out = format!("{}{v}{}", &text[..a], &text[b..]).into_bytes();
            }
        }
        Edit::Byte(i, b) if !out.is_empty() => {
            let at = i % out.len();
            out[at] = *b;
        }
        Edit::Truncate(n) => out.truncate(n % (bytes.len() + 1)),
        Edit::Byte(..) => {}
    }
    out
}

/// Where the JSON numbers are in `text`.
fn number_spans(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'-' || b[i].is_ascii_digit() {
            let start = i;
            i += 1;
            while i < b.len()
                && (b[i].is_ascii_digit() || matches!(b[i], b'.' | b'e' | b'E' | b'+' | b'-'))
            {
                i += 1;
            }
            spans.push((start, i));
        } else {
            i += 1;
        }
    }
    spans
}

proptest! {
    #![proptest_config(ProptestConfig { cases: (ProptestConfig::default().cases / 2).max(1), ..ProptestConfig::default() })]

    #[test]
    fn a_corrupted_model_is_refused_or_works_never_panics(
        json_edits in prop::collection::vec(edit(), 0..3),
        weight_edits in prop::collection::vec(edit(), 0..3),
        case in any::<u64>(),
    ) {
        let good = saved_model();
        let dir = std::env::temp_dir().join(format!("foresight-model-prop-{}-{case}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut json = std::fs::read(good.join("model.json")).unwrap();
        for e in &json_edits {
            json = apply(&json, e);
        }
        let mut weights = std::fs::read(good.join("model.safetensors")).unwrap();
        for e in &weight_edits {
            if !matches!(e, Edit::Number(..)) {
                weights = apply(&weights, e);
            }
        }
        std::fs::write(dir.join("model.json"), &json).unwrap();
        std::fs::write(dir.join("model.safetensors"), &weights).unwrap();
        if let Ok(mut model) = Lstm::load(&dir) {
            // What loads must also run.
            for i in 0..12 {
                model.observe(1_700_006_400 + i * 3600, 100.0 + i as f64, &[]);
            }
            let _ = model.forecast(1);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
