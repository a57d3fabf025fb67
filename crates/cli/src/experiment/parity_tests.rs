//! The experiment's autoscaler against the live loop's: one object, the same decisions.
use super::*;
use clap::Parser;
use foresight_autoscale::{Fitted, PolicySpec, Sample};
use foresight_control::ControlConfig;
use foresight_experiment::{spec_for, Job, Setup};
use foresight_scale::InstanceModel;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    a: ExperimentArgs,
}

/// A daily shape with a burst at minute 600 of each day, `days` days from `start`.
fn history(start: i64, days: usize) -> Vec<(i64, f64)> {
    (0..days * 1440)
        .map(|i| {
            let m = (i % 1440) as f64;
            let base = 60.0 + 40.0 * (m / 1440.0 * std::f64::consts::TAU).sin();
            let burst = if (600..604).contains(&(i % 1440)) {
                200.0
            } else {
                0.0
            };
            (start + i as i64 * 60, (base + burst).round())
        })
        .collect()
}

/// The experiment (simulator) and the live loop build their autoscalers from their own
/// settings (flags and a `[control]` section); fed the same samples, they decide alike.
#[test]
fn the_simulator_and_the_live_loop_step_the_same_autoscaler() {
    let start = 804_556_800; // 1995-07-01 00:00 UTC
                             // History up to 09:00 of the fourth day, then two hours replayed.
    let all = history(start, 4);
    let warm: Vec<(i64, f64)> = all[..3 * 1440 + 540].to_vec();
    let dir = std::env::temp_dir().join(format!("foresight-parity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("history.csv");
    let mut csv = String::from("minute,count\n");
    for (t, v) in &warm {
        let d = chrono::DateTime::from_timestamp(*t, 0).unwrap();
        csv.push_str(&format!("{},{v}\n", d.format("%Y-%m-%d %H:%M:%S")));
    }
    std::fs::write(&file, csv).unwrap();
    let rps_per_count = 0.5;
    let replay: Vec<f64> = all[3 * 1440 + 540..][..120]
        .iter()
        .map(|(_, v)| *v)
        .collect();
    let model = InstanceModel {
        workers: 4,
        mean_service: 0.2,
    };
    let setup = Setup {
        counts: replay.clone(),
        start_time: start + 3 * 86_400 + 540 * 60,
        rps_per_count,
        peak_rps: 130.0,
        model,
        // The live loop is warmed on the whole history file: so is the simulator here.
        warm: warm.clone(),
        horizon: 30,
        tail_share: 0.0,
        widen: 0,
    };
    let a = Cli::parse_from([
        "t",
        "--trace",
        "unused.csv",
        "--forecaster",
        "seasonal-quantile",
    ])
    .a
    .options();
    let job = Job {
        name: "hybrid-seasonal-quantile".into(),
        kind: PolicySpec::Hybrid,
        knob: 0.7,
        quantile: None,
        default: true,
    };
    let spec = ForecasterSpec::SeasonalQuantile {
        season: 1440,
        seasons: 7,
        quantile: 0.95,
    };
    let mut sim = spec_for(&job, &a, &setup, &Fitted::Simple(spec))
        .build()
        .unwrap()
        .autoscaler;
    // The same deployment, as a `[control]` section.
    let section = format!(
        "policy = \"hybrid\"\nforecaster = \"seasonal-quantile\"\nhistory = \"{}\"\nhistory_scale = {}\ninterval = \"15s\"\nstep = \"1m\"\nworkers = 4\ncapacity_rps = 20.0\nmin = 1\nmax = 200\nlead = \"3m\"\nmargin = \"2m\"\nactuator = \"none\"",
        file.display(),
        60.0 * rps_per_count
    );
    let raw: foresight_proxy::config::RawControl = toml::from_str(&section).unwrap();
    let c = ControlConfig::from_raw(Some(&raw)).unwrap().unwrap();
    let mut live = foresight_control::autoscaler(&c).unwrap();
    let (mut ready, mut changes, mut forecasts) = (4usize, 0, 0);
    for k in 1..=(replay.len() * 4) {
        let rate = replay[(k - 1) / 4] * rps_per_count;
        let s = Sample {
            now: k as f64 * 15.0,
            period: 15.0,
            arrivals: (rate * 15.0).round() as u64,
            utilisation: (rate / (ready as f64 * model.capacity())).min(1.0),
            queue: 0.0,
            dropped: 0,
            ready,
            starting: 0,
        };
        let (x, y) = (sim.step(&s), live.step(&s));
        assert_eq!(x.decision, y.decision, "at {} s", s.now);
        assert_eq!(x.forecast, y.forecast, "at {} s", s.now);
        changes += usize::from(x.decision.entry.is_some());
        forecasts += usize::from(x.forecast.is_some());
        ready = x.decision.replicas;
    }
    assert!(changes >= 2, "a test that scales: {changes} changes");
    assert_eq!(forecasts, replay.len() * 4, "warm from the first step");
    let _ = std::fs::remove_dir_all(&dir);
}
