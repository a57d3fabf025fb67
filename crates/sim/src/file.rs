//! Scenario files (TOML), validated once into [`crate::Scenario`] values.
//!
//! The format is documented in `docs/simulation.md`. As with the proxy's configuration, the
//! file is parsed into a raw mirror (unknown keys are errors with their line), then validated
//! into typed values; the first bad value is reported with its key, the value and what would
//! be valid.

use std::path::{Path, PathBuf};
use std::time::Duration;

use foresight_balance::Algorithm;
use foresight_core::dist::Distribution;
use foresight_workload::{Profile, Series};
use serde::Deserialize;

use crate::{Change, InstanceSpec, RequestClass, Scenario};

/// A scenario file that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FileError {
    /// A value that parsed but is not allowed.
    #[error("{path}: invalid value `{value}` for `{key}`: expected {expected}")]
    Invalid {
        /// The scenario file.
        path: String,
        /// Dotted key, e.g. `instances[1].workers`.
        key: String,
        /// The value as given.
        value: String,
        /// What would be valid.
        expected: String,
    },
    /// Not valid TOML, an unknown key or a wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message with line and column.
        message: String,
    },
    /// The file (or a trace it names) could not be read or used.
    #[error("{0}")]
    Other(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<String>,
    seed: Option<u64>,
    duration: String,
    warmup: Option<String>,
    algorithms: Option<Vec<String>>,
    slow_start: Option<RawSlowStart>,
    arrivals: RawArrivals,
    #[serde(default)]
    classes: Vec<RawClass>,
    instances: Vec<RawInstances>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlowStart {
    window: String,
    aggression: Option<f64>,
    min_weight_percent: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArrivals {
    profile: String,
    rate: Option<f64>,
    before: Option<f64>,
    after: Option<f64>,
    at: Option<String>,
    from: Option<f64>,
    to: Option<f64>,
    over: Option<String>,
    mean: Option<f64>,
    amplitude: Option<f64>,
    period: Option<String>,
    base: Option<f64>,
    peak: Option<f64>,
    rise: Option<String>,
    decay: Option<String>,
    file: Option<String>,
    peak_rate: Option<f64>,
    minute: Option<String>,
    start_minute: Option<usize>,
    minutes: Option<usize>,
    fill_gaps: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClass {
    name: String,
    priority: Option<u8>,
    share: Option<f64>,
    mean: Option<String>,
    distribution: Option<String>,
    empirical: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstances {
    count: Option<u32>,
    workers: u32,
    queue: Option<u32>,
    speed: Option<f64>,
    weight: Option<u32>,
    join_at: Option<String>,
    warmup: Option<String>,
    warmup_speed: Option<f64>,
    #[serde(default)]
    changes: Vec<RawChange>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChange {
    at: String,
    slowdown: Option<f64>,
    crash: Option<bool>,
}

/// A loaded scenario file: the scenario (with the first algorithm) and every algorithm to run.
#[derive(Debug, Clone)]
pub struct ScenarioFile {
    /// Name (the file stem if not given).
    pub name: String,
    /// The scenario; `algorithm` is set per run.
    pub scenario: Scenario,
    /// Algorithms to compare (all of them when the file names none).
    pub algorithms: Vec<Algorithm>,
}

struct Ctx<'a> {
    path: &'a str,
    dir: PathBuf,
}

impl Ctx<'_> {
    fn invalid(
        &self,
        key: impl Into<String>,
        value: impl std::fmt::Display,
        expected: &str,
    ) -> FileError {
        FileError::Invalid {
            path: self.path.to_string(),
            key: key.into(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }

    fn duration(&self, key: &str, v: &str) -> Result<Duration, FileError> {
        humantime::parse_duration(v)
            .map_err(|_| self.invalid(key, v, "a duration such as 500ms, 30s or 10m"))
    }

    fn opt_duration(
        &self,
        key: &str,
        v: &Option<String>,
        default: Duration,
    ) -> Result<Duration, FileError> {
        v.as_deref().map_or(Ok(default), |v| self.duration(key, v))
    }

    fn rate(&self, key: &str, v: Option<f64>) -> Result<f64, FileError> {
        match v {
            Some(r) if (0.0..=1e9).contains(&r) => Ok(r),
            Some(r) => Err(self.invalid(key, r, "a rate in requests/s, 0..=1e9")),
            None => Err(self.invalid(key, "(missing)", "a rate in requests/s")),
        }
    }

    fn need_duration(&self, key: &str, v: &Option<String>) -> Result<Duration, FileError> {
        match v {
            Some(v) => self.duration(key, v),
            None => Err(self.invalid(key, "(missing)", "a duration")),
        }
    }
}

impl ScenarioFile {
    /// Reads and validates a scenario file. Trace paths are relative to the file's folder.
    pub fn load(path: &Path) -> Result<ScenarioFile, FileError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            FileError::Other(format!("cannot read scenario {}: {e}", path.display()))
        })?;
        let stem = path
            .file_stem()
            .map_or("scenario".into(), |s| s.to_string_lossy().into_owned());
        let dir = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        ScenarioFile::parse(&text, &path.display().to_string(), &stem, dir)
    }

    /// Parses scenario text; `origin` names it in errors, `dir` anchors relative trace paths.
    pub fn parse(
        text: &str,
        origin: &str,
        default_name: &str,
        dir: PathBuf,
    ) -> Result<ScenarioFile, FileError> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| FileError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let cx = Ctx { path: origin, dir };
        let duration = cx.duration("duration", &raw.duration)?;
        if duration.is_zero() {
            return Err(cx.invalid("duration", &raw.duration, "a duration greater than zero"));
        }
        let warmup = cx.opt_duration("warmup", &raw.warmup, Duration::ZERO)?;
        let algorithms = match &raw.algorithms {
            None => Algorithm::ALL.to_vec(),
            Some(list) if list.is_empty() => Algorithm::ALL.to_vec(),
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    a.parse::<Algorithm>().map_err(|e| {
                        let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
                        let _ = e;
                        cx.invalid(
                            format!("algorithms[{i}]"),
                            a,
                            &format!("one of: {}", names.join(", ")),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let profile = profile(&cx, &raw.arrivals)?;
        let slow_start = match &raw.slow_start {
            None => None,
            Some(ss) => Some(slow_start(
                &cx,
                "slow_start",
                ss.window.as_str(),
                ss.aggression,
                ss.min_weight_percent,
            )?),
        };
        let mut classes = Vec::new();
        for (i, c) in raw.classes.iter().enumerate() {
            let key = |f: &str| format!("classes[{i}].{f}");
            let empirical = match &c.empirical {
                None => None,
                Some(f) => Some(load_samples(&cx.dir.join(f), &key("empirical"), cx.path)?),
            };
            let mean = match (&c.mean, &empirical) {
                (Some(m), _) => cx.duration(&key("mean"), m)?,
                (None, Some(samples)) => {
                    Duration::from_secs_f64(samples.iter().sum::<f64>() / samples.len() as f64)
                }
                (None, None) => {
                    return Err(cx.invalid(
                        key("mean"),
                        "(missing)",
                        "a mean service time, or an `empirical` file",
                    ))
                }
            };
            // Recorded sizes are rescaled to `mean` when both are given.
            let empirical = empirical.map(|samples| {
                let m = samples.iter().sum::<f64>() / samples.len() as f64;
                let scale = if m > 0.0 { mean.as_secs_f64() / m } else { 1.0 };
                samples
                    .iter()
                    .map(|x| x * scale)
                    .collect::<std::sync::Arc<[f64]>>()
            });
            let share = c.share.unwrap_or(1.0);
            if !(share.is_finite() && share > 0.0) {
                return Err(cx.invalid(key("share"), share, "a positive number"));
            }
            let distribution = match &c.distribution {
                None => Distribution::Exponential,
                Some(d) => d.parse().map_err(|_| {
                    cx.invalid(
                        key("distribution"),
                        d,
                        "exponential, lognormal, lognormal:SIGMA or constant",
                    )
                })?,
            };
            classes.push(RequestClass {
                name: c.name.clone(),
                share,
                mean,
                distribution,
                priority: c.priority.unwrap_or(0),
                empirical,
            });
        }
        if classes.is_empty() {
            return Err(cx.invalid("classes", "(none)", "at least one [[classes]] entry"));
        }
        let mut instances = Vec::new();
        if raw.instances.is_empty() {
            return Err(cx.invalid("instances", "(none)", "at least one [[instances]] entry"));
        }
        for (i, g) in raw.instances.iter().enumerate() {
            let key = |f: &str| format!("instances[{i}].{f}");
            let count = g.count.unwrap_or(1);
            if !(1..=100_000).contains(&count) {
                return Err(cx.invalid(key("count"), count, "1..=100000"));
            }
            if !(1..=1_000_000).contains(&g.workers) {
                return Err(cx.invalid(key("workers"), g.workers, "1..=1000000"));
            }
            let speed = g.speed.unwrap_or(1.0);
            if !(speed.is_finite() && speed > 0.0 && speed <= 1000.0) {
                return Err(cx.invalid(key("speed"), speed, "a factor in (0, 1000]"));
            }
            let weight = g.weight.unwrap_or(1);
            if !(1..=10_000).contains(&weight) {
                return Err(cx.invalid(key("weight"), weight, "1..=10000"));
            }
            let warmup_speed = g.warmup_speed.unwrap_or(0.3);
            if !(warmup_speed.is_finite() && warmup_speed > 0.0 && warmup_speed <= 1.0) {
                return Err(cx.invalid(key("warmup_speed"), warmup_speed, "a factor in (0, 1]"));
            }
            let mut changes = Vec::new();
            for (k, c) in g.changes.iter().enumerate() {
                let ckey = |f: &str| format!("instances[{i}].changes[{k}].{f}");
                let at = cx.duration(&ckey("at"), &c.at)?;
                let change = match (c.slowdown, c.crash) {
                    (Some(f), None) if f.is_finite() && f > 0.0 && f <= 1000.0 => {
                        Change::Slowdown(f)
                    }
                    (Some(f), None) => {
                        return Err(cx.invalid(ckey("slowdown"), f, "a factor in (0, 1000]"))
                    }
                    (None, Some(true)) => Change::Crash,
                    _ => {
                        return Err(cx.invalid(
                            format!("instances[{i}].changes[{k}]"),
                            "(neither or both)",
                            "exactly one of `slowdown = FACTOR` or `crash = true`",
                        ))
                    }
                };
                changes.push((at, change));
            }
            let spec = InstanceSpec {
                workers: g.workers,
                queue_limit: g.queue,
                speed,
                weight,
                join_at: cx.opt_duration(&key("join_at"), &g.join_at, Duration::ZERO)?,
                warmup: cx.opt_duration(&key("warmup"), &g.warmup, Duration::ZERO)?,
                warmup_speed,
                changes,
            };
            instances.extend(std::iter::repeat_n(spec, count as usize));
        }
        Ok(ScenarioFile {
            name: raw.name.unwrap_or_else(|| default_name.to_string()),
            scenario: Scenario {
                instances,
                profile,
                duration,
                warmup,
                classes,
                algorithm: algorithms[0],
                slow_start,
                seed: raw.seed.unwrap_or(1),
            },
            algorithms,
        })
    }
}

/// Reads recorded service times: one number of milliseconds per line (blank lines and `#`
/// comments skipped). Returns seconds.
fn load_samples(path: &Path, key: &str, origin: &str) -> Result<Vec<f64>, FileError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        FileError::Other(format!(
            "{origin}: {key}: cannot read {}: {e}",
            path.display()
        ))
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.parse::<f64>() {
            Ok(ms) if ms.is_finite() && ms >= 0.0 => out.push(ms / 1e3),
            _ => {
                return Err(FileError::Other(format!(
                    "{}:{}: `{line}` is not a service time in milliseconds (for {key} in {origin})",
                    path.display(),
                    n + 1
                )))
            }
        }
    }
    if out.is_empty() {
        return Err(FileError::Other(format!(
            "{}: no service times (for {key} in {origin})",
            path.display()
        )));
    }
    Ok(out)
}

fn slow_start(
    cx: &Ctx<'_>,
    key: &str,
    window: &str,
    aggression: Option<f64>,
    min_weight_percent: Option<f64>,
) -> Result<foresight_balance::SlowStartConfig, FileError> {
    let window = cx.duration(&format!("{key}.window"), window)?;
    let aggression = aggression.unwrap_or(1.0);
    if !(aggression.is_finite() && aggression > 0.0 && aggression <= 100.0) {
        return Err(cx.invalid(
            format!("{key}.aggression"),
            aggression,
            "a number in (0, 100]",
        ));
    }
    let min_weight_percent = min_weight_percent.unwrap_or(10.0);
    if !(0.0..=100.0).contains(&min_weight_percent) {
        return Err(cx.invalid(
            format!("{key}.min_weight_percent"),
            min_weight_percent,
            "0..=100",
        ));
    }
    Ok(foresight_balance::SlowStartConfig {
        window,
        aggression,
        min_weight_percent,
    })
}

fn profile(cx: &Ctx<'_>, a: &RawArrivals) -> Result<Profile, FileError> {
    let p = match a.profile.as_str() {
        "constant" => Profile::Constant {
            rate: cx.rate("arrivals.rate", a.rate)?,
        },
        "step" => Profile::Step {
            before: cx.rate("arrivals.before", a.before)?,
            after: cx.rate("arrivals.after", a.after)?,
            at: cx.need_duration("arrivals.at", &a.at)?,
        },
        "ramp" => Profile::Ramp {
            from: cx.rate("arrivals.from", a.from)?,
            to: cx.rate("arrivals.to", a.to)?,
            over: cx.need_duration("arrivals.over", &a.over)?,
        },
        "diurnal" => {
            let amplitude = a.amplitude.unwrap_or(0.5);
            if !(0.0..=1.0).contains(&amplitude) {
                return Err(cx.invalid("arrivals.amplitude", amplitude, "0..=1"));
            }
            Profile::Diurnal {
                mean: cx.rate("arrivals.mean", a.mean)?,
                amplitude,
                period: cx.need_duration("arrivals.period", &a.period)?,
            }
        }
        "flash-crowd" => Profile::FlashCrowd {
            base: cx.rate("arrivals.base", a.base)?,
            peak: cx.rate("arrivals.peak", a.peak)?,
            at: cx.need_duration("arrivals.at", &a.at)?,
            rise: cx.need_duration("arrivals.rise", &a.rise)?,
            decay: cx.need_duration("arrivals.decay", &a.decay)?,
        },
        "trace" => {
            let file = a.file.as_deref().ok_or_else(|| {
                cx.invalid("arrivals.file", "(missing)", "a minute,count CSV file")
            })?;
            let path = cx.dir.join(file);
            let mut trace = Series::load_minute_counts(&path)
                .map_err(|e| FileError::Other(format!("{}: arrivals.file: {e}", cx.path)))?;
            trace.fill_gaps(a.fill_gaps.unwrap_or(10));
            let counts: Vec<f64> = match a.start_minute {
                None => trace.longest_run().1,
                Some(start) => {
                    let len = a
                        .minutes
                        .unwrap_or(trace.values.len().saturating_sub(start));
                    let window = trace.values.get(start..start + len).ok_or_else(|| {
                        cx.invalid(
                            "arrivals.start_minute",
                            start,
                            &format!("a window inside the trace's {} minutes", trace.values.len()),
                        )
                    })?;
                    window
                        .iter()
                        .enumerate()
                        .map(|(k, c)| {
                            c.ok_or_else(|| {
                                cx.invalid(
                                    "arrivals.start_minute",
                                    start,
                                    &format!(
                                        "a window without long gaps (minute {} is missing)",
                                        start + k
                                    ),
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?
                }
            };
            let counts = match (a.start_minute, a.minutes) {
                (None, Some(m)) => counts.into_iter().take(m).collect(),
                _ => counts,
            };
            Profile::trace(
                &counts,
                cx.rate("arrivals.peak_rate", a.peak_rate)?,
                cx.opt_duration("arrivals.minute", &a.minute, Duration::from_secs(60))?,
            )
        }
        other => {
            return Err(cx.invalid(
                "arrivals.profile",
                other,
                "constant, step, ramp, diurnal, flash-crowd or trace",
            ))
        }
    };
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        name = "t"
        duration = "10s"
        algorithms = ["round-robin", "p2c-ewma"]
        [arrivals]
        profile = "constant"
        rate = 100
        [[classes]]
        name = "/process"
        mean = "20ms"
        [[instances]]
        count = 3
        workers = 4
        [[instances]]
        workers = 4
        speed = 0.5
        [[instances.changes]]
        at = "5s"
        crash = true
    "#;

    fn parse(text: &str) -> Result<ScenarioFile, FileError> {
        ScenarioFile::parse(text, "s.toml", "s", PathBuf::from("."))
    }

    #[test]
    fn empirical_service_times_from_a_file() {
        let dir = std::env::temp_dir().join(format!("foresight-empirical-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("times.txt"), "# ms\n10\n30\n\n20\n").unwrap();
        let text = GOOD.replace("mean = \"20ms\"", "empirical = \"times.txt\"");
        let f = ScenarioFile::parse(&text, "s.toml", "s", dir.clone()).unwrap();
        let c = &f.scenario.classes[0];
        assert_eq!(c.mean, Duration::from_millis(20));
        assert_eq!(c.empirical.as_deref().map(|s| s.len()), Some(3));
        // With a mean given, the samples are rescaled to it.
        let text = GOOD.replace(
            "mean = \"20ms\"",
            "mean = \"40ms\"\nempirical = \"times.txt\"",
        );
        let f = ScenarioFile::parse(&text, "s.toml", "s", dir.clone()).unwrap();
        let samples = f.scenario.classes[0].empirical.clone().unwrap();
        assert!((samples.iter().sum::<f64>() / 3.0 - 0.040).abs() < 1e-12);
        // A bad line names the file and line.
        std::fs::write(dir.join("bad.txt"), "10\nfast\n").unwrap();
        let text = GOOD.replace("mean = \"20ms\"", "empirical = \"bad.txt\"");
        let e = ScenarioFile::parse(&text, "s.toml", "s", dir.clone())
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.txt:2") && e.contains("`fast`"), "{e}");
        // The engine draws from them.
        let f = ScenarioFile::parse(
            &GOOD.replace(
                "mean = \"20ms\"",
                "empirical = \"times.txt\"\ndistribution = \"constant\"",
            ),
            "s.toml",
            "s",
            dir.clone(),
        )
        .unwrap();
        let mut s = f.scenario;
        s.instances.iter_mut().for_each(|i| i.changes.clear());
        let o = crate::run(&s).unwrap();
        assert!(
            o.quantile_ms(0.0) >= 9.9 && o.quantile_ms(1.0) < 2_000.0,
            "{}",
            o.quantile_ms(0.0)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_good_file() {
        let f = parse(GOOD).unwrap();
        assert_eq!(f.scenario.instances.len(), 4);
        assert_eq!(
            f.scenario.instances[3].changes,
            vec![(Duration::from_secs(5), Change::Crash)]
        );
        assert_eq!(
            f.algorithms,
            vec![Algorithm::RoundRobin, Algorithm::P2cEwma]
        );
        let all = parse(&GOOD.replace("algorithms = [\"round-robin\", \"p2c-ewma\"]", "")).unwrap();
        assert_eq!(all.algorithms.len(), Algorithm::ALL.len());
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (GOOD.replace("rate = 100", "rate = -1"), "arrivals.rate"),
            (
                GOOD.replace("\"constant\"", "\"sawtooth\""),
                "arrivals.profile",
            ),
            (GOOD.replace("\"p2c-ewma\"", "\"fastest\""), "algorithms[1]"),
            (GOOD.replace("count = 3", "count = 0"), "instances[0].count"),
            (
                GOOD.replace("speed = 0.5", "speed = 0"),
                "instances[1].speed",
            ),
            (
                GOOD.replace("crash = true", "crash = true\nslowdown = 2.0"),
                "instances[1].changes[0]",
            ),
            (
                GOOD.replace("mean = \"20ms\"", "mean = \"soon\""),
                "classes[0].mean",
            ),
            (
                GOOD.replace("duration = \"10s\"", "duration = \"0s\""),
                "duration",
            ),
        ];
        for (text, key) in cases {
            match parse(&text) {
                Err(FileError::Invalid { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        }
        match parse(&GOOD.replace("mean = \"20ms\"", "")) {
            Err(FileError::Invalid { key, .. }) => assert_eq!(key, "classes[0].mean"),
            other => panic!("{other:?}"),
        }
        match parse(&GOOD.replace("workers = 4\n        speed", "workers = 4\n        sped")) {
            Err(e @ FileError::Parse { .. }) => assert!(e.to_string().contains("line"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}
