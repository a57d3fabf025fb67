//! Load series: one value per fixed step (the request rate or count to forecast) and optional
//! named feature columns (CPU, memory, latency...), with missing steps kept as missing.
//!
//! Two CSV layouts are read:
//! - `minute,count` (the shared NASA and WorldCup traces, the generated workloads): a header
//!   `minute,count`, then `YYYY-MM-DD HH:MM:SS,COUNT` rows in time order; a missing minute is
//!   a missing row, not a zero;
//! - `timestamp,value[,feature...]`, where `timestamp` is RFC 3339, `YYYY-MM-DD HH:MM:SS` or
//!   Unix seconds, at any spacing; rows are resampled onto a fixed step (`value` summed or
//!   averaged per step as chosen, features averaged).
//!
//! Gap policy ([`Series::fill_gaps`]): gaps of at most `max_fill` steps are filled by linear
//! interpolation and counted; longer gaps split the series into segments
//! ([`Series::segments`]). Nothing is ever shifted in time.

use std::path::Path;

use chrono::{DateTime, NaiveDateTime};

/// A problem with a series file, naming the file and line.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SeriesError {
    /// The file could not be read.
    #[error("cannot read {path}: {message}")]
    Read {
        /// File.
        path: String,
        /// Why.
        message: String,
    },
    /// A malformed line.
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// File.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// No data rows.
    #[error("{path}: no data rows")]
    Empty {
        /// File.
        path: String,
    },
    /// Too little data for what was asked.
    #[error("{0}")]
    TooShort(String),
    /// The rows span more steps than a series holds.
    #[error("{0}")]
    TooLong(String),
}

/// Steps a series read from a file may span at most (memory is one slot per step, gaps
/// included): about 9.5 years of minutes.
pub const MAX_STEPS: i64 = 5_000_000;

/// Every run of `None` in `values`, as (first index, length).
pub fn missing_runs<T>(values: &[Option<T>]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < values.len() {
        if values[i].is_none() {
            let s = i;
            while i < values.len() && values[i].is_none() {
                i += 1;
            }
            runs.push((s, i - s));
        } else {
            i += 1;
        }
    }
    runs
}

/// A run of missing minutes.
/// How values falling into one step are combined when resampling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Aggregate {
    /// Sum (counts: requests per step).
    #[default]
    Sum,
    /// Mean (rates and gauges).
    Mean,
}

impl std::str::FromStr for Aggregate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sum" => Ok(Aggregate::Sum),
            "mean" => Ok(Aggregate::Mean),
            _ => Err(format!("unknown aggregate `{s}` (expected sum or mean)")),
        }
    }
}

/// A run of missing steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// Index of the first missing step.
    pub start: usize,
    /// Number of missing steps.
    pub len: usize,
}

/// A fixed-step series with optional feature columns.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Unix time (seconds, the file's clock read as UTC) of step 0.
    pub start: i64,
    /// Step in seconds.
    pub step: i64,
    /// The value to forecast, one per step; `None` where nothing was recorded.
    pub values: Vec<Option<f64>>,
    /// Extra input columns, each as long as `values`.
    pub features: Vec<Feature>,
}

/// A named extra input column.
#[derive(Clone, Debug, PartialEq)]
pub struct Feature {
    /// Column name from the file header.
    pub name: String,
    /// One entry per step.
    pub values: Vec<Option<f64>>,
}

/// A stretch without gaps.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Index of its first step in the series.
    pub offset: usize,
    /// Unix time of its first step.
    pub start: i64,
    /// Values.
    pub values: Vec<f64>,
    /// Feature rows: `features[i]` holds every feature at step i (empty without features).
    pub features: Vec<Vec<f64>>,
}

impl Series {
    /// A gap-free series from plain values (tests, synthetic profiles, live samples).
    pub fn from_values(start: i64, step: i64, values: &[f64]) -> Series {
        Series {
            start,
            step,
            values: values.iter().map(|v| Some(*v)).collect(),
            features: Vec::new(),
        }
    }

    /// Reads a CSV in either layout (chosen by its header); `step` and `aggregate` apply to the
    /// generic layout (a `minute,count` file is already per minute unless `step` says otherwise).
    pub fn load(
        path: &Path,
        step: Option<i64>,
        aggregate: Aggregate,
    ) -> Result<Series, SeriesError> {
        let text = std::fs::read_to_string(path).map_err(|e| SeriesError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Series::parse(&text, &path.display().to_string(), step, aggregate)
    }

    /// Parses CSV text; `origin` names it in errors.
    pub fn parse(
        text: &str,
        origin: &str,
        step: Option<i64>,
        aggregate: Aggregate,
    ) -> Result<Series, SeriesError> {
        let header = text.lines().next().unwrap_or("").trim();
        if header == "minute,count" {
            let s = parse_minute_count(text, origin)?;
            return match step {
                Some(st) if st != 60 => s.resample(st, aggregate),
                _ => Ok(s),
            };
        }
        parse_generic(text, origin, step, aggregate)
    }

    /// Reads a `minute,count` file as it is (per minute, no other layout).
    pub fn load_minute_counts(path: &Path) -> Result<Series, SeriesError> {
        let text = std::fs::read_to_string(path).map_err(|e| SeriesError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        parse_minute_count(&text, &path.display().to_string())
    }

    /// Parses `minute,count` text as it is; `origin` names it in errors.
    pub fn parse_minute_counts(text: &str, origin: &str) -> Result<Series, SeriesError> {
        parse_minute_count(text, origin)
    }

    /// Number of steps (present or missing).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the series has no steps.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Unix time of step `i`.
    pub fn time(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    /// Number of steps with a value.
    pub fn present(&self) -> usize {
        self.values.iter().filter(|v| v.is_some()).count()
    }

    /// Every run of missing values.
    pub fn gaps(&self) -> Vec<Gap> {
        missing_runs(&self.values)
            .into_iter()
            .map(|(start, len)| Gap { start, len })
            .collect()
    }

    /// Fills gaps of at most `max_fill` steps (value and features) by linear interpolation;
    /// returns how many steps were filled. Longer gaps stay and split [`Series::segments`].
    pub fn fill_gaps(&mut self, max_fill: usize) -> usize {
        let mut filled = 0;
        for g in self.gaps() {
            if g.len > max_fill || g.start == 0 || g.start + g.len >= self.values.len() {
                continue;
            }
            interpolate(&mut self.values, &g);
            for f in &mut self.features {
                interpolate(&mut f.values, &g);
            }
            filled += g.len;
        }
        // A feature may miss a step that the value has; fill those short holes too.
        for f in &mut self.features {
            let mut i = 0;
            while i < f.values.len() {
                if f.values[i].is_none() && self.values[i].is_some() {
                    let s = i;
                    while i < f.values.len() && f.values[i].is_none() {
                        i += 1;
                    }
                    let g = Gap {
                        start: s,
                        len: i - s,
                    };
                    if s > 0 && i < f.values.len() && g.len <= max_fill {
                        interpolate(&mut f.values, &g);
                    }
                } else {
                    i += 1;
                }
            }
        }
        filled
    }

    /// The stretches where the value and every feature are present.
    pub fn segments(&self) -> Vec<Segment> {
        let mut out = Vec::new();
        let mut cur: Option<Segment> = None;
        for i in 0..self.values.len() {
            let row: Option<Vec<f64>> = self.features.iter().map(|f| f.values[i]).collect();
            match (self.values[i], row) {
                (Some(v), Some(row)) => {
                    let seg = cur.get_or_insert_with(|| Segment {
                        offset: i,
                        start: self.time(i),
                        values: Vec::new(),
                        features: Vec::new(),
                    });
                    seg.values.push(v);
                    if !self.features.is_empty() {
                        seg.features.push(row);
                    }
                }
                _ => out.extend(cur.take()),
            }
        }
        out.extend(cur);
        out
    }

    /// The longest stretch without gaps (in the value and every feature), as (first step,
    /// values); the last of equally long ones.
    pub fn longest_run(&self) -> (usize, Vec<f64>) {
        self.segments()
            .into_iter()
            .max_by_key(|s| s.values.len())
            .map(|s| (s.offset, s.values))
            .unwrap_or((0, Vec::new()))
    }

    /// The same series on a coarser (or finer, leaving missing steps) step.
    pub fn resample(&self, step: i64, aggregate: Aggregate) -> Result<Series, SeriesError> {
        if step <= 0 {
            return Err(SeriesError::TooShort(format!(
                "step must be positive, got {step} s"
            )));
        }
        let start = self.start - self.start.rem_euclid(step);
        let mut acc = Resampler::new(start, step, self.features.len(), aggregate);
        for i in 0..self.values.len() {
            if let Some(v) = self.values[i] {
                let row: Vec<Option<f64>> = self.features.iter().map(|f| f.values[i]).collect();
                acc.add(self.time(i), v, &row);
            }
        }
        let names = self.features.iter().map(|f| f.name.clone()).collect();
        Ok(acc.finish(names))
    }
}

fn interpolate(values: &mut [Option<f64>], g: &Gap) {
    let (Some(before), Some(after)) = (values[g.start - 1], values[g.start + g.len]) else {
        return;
    };
    for k in 0..g.len {
        let f = (k + 1) as f64 / (g.len + 1) as f64;
        values[g.start + k] = Some(before + (after - before) * f);
    }
}

/// Parses a `minute,count` file (see the module's doc) into a per-minute series.
fn parse_minute_count(text: &str, origin: &str) -> Result<Series, SeriesError> {
    let bad = |line: usize, message: String| SeriesError::Malformed {
        path: origin.to_string(),
        line,
        message,
    };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim() == "minute,count" => {}
        Some((_, h)) => {
            return Err(bad(
                1,
                format!("expected the header `minute,count`, found `{}`", h.trim()),
            ))
        }
        None => {
            return Err(SeriesError::Empty {
                path: origin.to_string(),
            })
        }
    }
    let mut start: Option<NaiveDateTime> = None;
    let mut counts: Vec<Option<f64>> = Vec::new();
    for (i, raw) in lines {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let (ts, count) = line
            .split_once(',')
            .ok_or_else(|| bad(n, format!("expected `minute,count`, found `{line}`")))?;
        let t = NaiveDateTime::parse_from_str(ts.trim(), "%Y-%m-%d %H:%M:%S").map_err(|e| {
            bad(
                n,
                format!("minute `{}` is not YYYY-MM-DD HH:MM:SS ({e})", ts.trim()),
            )
        })?;
        let c: f64 = count.trim().parse::<u64>().map_err(|_| {
            bad(
                n,
                format!("count `{}` is not a non-negative integer", count.trim()),
            )
        })? as f64;
        let s = *start.get_or_insert(t);
        let offset = (t - s).num_seconds();
        if offset % 60 != 0 {
            return Err(bad(
                n,
                format!(
                    "minute `{}` is not on a whole minute from the first row",
                    ts.trim()
                ),
            ));
        }
        let idx = offset / 60;
        if idx >= MAX_STEPS {
            return Err(bad(
                n,
                format!(
                    "minute `{}` is {idx} minutes after the first row; a trace spans at most {MAX_STEPS} minutes (about 9.5 years)",
                    ts.trim()
                ),
            ));
        }
        if idx < counts.len() as i64 {
            return Err(bad(
                n,
                format!("minute `{}` is not after the previous row", ts.trim()),
            ));
        }
        counts.resize(idx as usize, None);
        counts.push(Some(c));
    }
    let start = start.ok_or_else(|| SeriesError::Empty {
        path: origin.to_string(),
    })?;
    Ok(Series {
        start: start.and_utc().timestamp(),
        step: 60,
        values: counts,
        features: Vec::new(),
    })
}

struct Resampler {
    start: i64,
    step: i64,
    aggregate: Aggregate,
    sums: Vec<f64>,
    counts: Vec<u32>,
    feature_sums: Vec<Vec<f64>>,
    feature_counts: Vec<Vec<u32>>,
}

impl Resampler {
    fn new(start: i64, step: i64, features: usize, aggregate: Aggregate) -> Resampler {
        Resampler {
            start,
            step,
            aggregate,
            sums: Vec::new(),
            counts: Vec::new(),
            feature_sums: vec![Vec::new(); features],
            feature_counts: vec![Vec::new(); features],
        }
    }

    fn add(&mut self, t: i64, v: f64, features: &[Option<f64>]) {
        let idx = ((t - self.start) / self.step) as usize;
        if idx >= self.sums.len() {
            self.sums.resize(idx + 1, 0.0);
            self.counts.resize(idx + 1, 0);
            for (s, c) in self.feature_sums.iter_mut().zip(&mut self.feature_counts) {
                s.resize(idx + 1, 0.0);
                c.resize(idx + 1, 0);
            }
        }
        self.sums[idx] += v;
        self.counts[idx] += 1;
        for (k, f) in features.iter().enumerate() {
            if let Some(f) = f {
                self.feature_sums[k][idx] += f;
                self.feature_counts[k][idx] += 1;
            }
        }
    }

    fn finish(self, names: Vec<String>) -> Series {
        let values = self
            .sums
            .iter()
            .zip(&self.counts)
            .map(|(s, &c)| match (c, self.aggregate) {
                (0, _) => None,
                (_, Aggregate::Sum) => Some(*s),
                (c, Aggregate::Mean) => Some(s / c as f64),
            })
            .collect();
        let features = names
            .into_iter()
            .zip(self.feature_sums.iter().zip(&self.feature_counts))
            .map(|(name, (s, c))| Feature {
                name,
                values: s
                    .iter()
                    .zip(c)
                    .map(|(s, &c)| (c > 0).then(|| s / c as f64))
                    .collect(),
            })
            .collect();
        Series {
            start: self.start,
            step: self.step,
            values,
            features,
        }
    }
}

/// Unix seconds of 0000-01-01 and of the end of 9999: timestamps outside are refused, so that
/// arithmetic on them cannot overflow.
const TIMESTAMPS: std::ops::RangeInclusive<i64> = -62_167_219_200..=253_402_300_799;

fn parse_time(s: &str) -> Option<i64> {
    let t = if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        t.timestamp()
    } else if let Some(t) = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|fmt| NaiveDateTime::parse_from_str(s, fmt).ok())
    {
        t.and_utc().timestamp()
    } else {
        let secs: f64 = s.parse().ok()?;
        if !secs.is_finite() {
            return None;
        }
        secs.floor() as i64
    };
    TIMESTAMPS.contains(&t).then_some(t)
}

fn parse_generic(
    text: &str,
    origin: &str,
    step: Option<i64>,
    aggregate: Aggregate,
) -> Result<Series, SeriesError> {
    let bad = |line: usize, message: String| SeriesError::Malformed {
        path: origin.to_string(),
        line,
        message,
    };
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else {
        return Err(SeriesError::Empty {
            path: origin.to_string(),
        });
    };
    let cols: Vec<&str> = header.trim().split(',').map(str::trim).collect();
    if cols.len() < 2 || cols[0] != "timestamp" || cols[1] != "value" {
        return Err(bad(
            1,
            format!(
                "expected the header `minute,count` or `timestamp,value[,feature...]`, found `{}`",
                header.trim()
            ),
        ));
    }
    let names: Vec<String> = cols[2..].iter().map(|s| s.to_string()).collect();
    let mut rows: Vec<(i64, f64, Vec<Option<f64>>)> = Vec::new();
    for (i, raw) in lines {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != cols.len() {
            return Err(bad(
                n,
                format!(
                    "expected {} fields ({}), found {}",
                    cols.len(),
                    cols.join(","),
                    fields.len()
                ),
            ));
        }
        let t = parse_time(fields[0]).ok_or_else(|| {
            bad(
                n,
                format!(
                    "timestamp `{}` is not RFC 3339, YYYY-MM-DD HH:MM:SS or Unix seconds in the years 0 to 9999",
                    fields[0]
                ),
            )
        })?;
        let number = |k: usize| -> Result<Option<f64>, SeriesError> {
            let f = fields[k];
            if f.is_empty() || f.eq_ignore_ascii_case("nan") {
                return Ok(None);
            }
            match f.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(Some(v)),
                _ => Err(bad(
                    n,
                    format!("field `{}` = `{f}` is not a finite number", cols[k]),
                )),
            }
        };
        let Some(v) = number(1)? else {
            continue; // a missing value is a gap, found later
        };
        let feats = (2..cols.len()).map(number).collect::<Result<Vec<_>, _>>()?;
        if let Some((prev, _, _)) = rows.last() {
            if t < *prev {
                return Err(bad(
                    n,
                    format!("timestamp `{}` is before the previous row", fields[0]),
                ));
            }
        }
        rows.push((t, v, feats));
    }
    if rows.is_empty() {
        return Err(SeriesError::Empty {
            path: origin.to_string(),
        });
    }
    let step = match step {
        Some(s) => s,
        None => infer_step(&rows).ok_or_else(|| {
            SeriesError::TooShort(format!(
                "{origin}: cannot infer the step from one row; pass --step"
            ))
        })?,
    };
    if step <= 0 {
        return Err(SeriesError::TooShort(format!(
            "step must be positive, got {step} s"
        )));
    }
    let start = rows[0].0 - rows[0].0.rem_euclid(step);
    let last = rows[rows.len() - 1].0;
    let span = (i128::from(last) - i128::from(start)) / i128::from(step);
    if span >= i128::from(MAX_STEPS) {
        return Err(SeriesError::TooLong(format!(
            "{origin}: the rows span {span} steps of {step} s from the first timestamp to the last; at most {MAX_STEPS} are read (pass a larger --step, or split the file)"
        )));
    }
    let mut acc = Resampler::new(start, step, names.len(), aggregate);
    for (t, v, f) in &rows {
        acc.add(*t, *v, f);
    }
    Ok(acc.finish(names))
}

/// The most common positive spacing between rows.
fn infer_step(rows: &[(i64, f64, Vec<Option<f64>>)]) -> Option<i64> {
    let mut diffs: Vec<i64> = rows
        .windows(2)
        .map(|w| w[1].0.saturating_sub(w[0].0))
        .filter(|d| *d > 0)
        .collect();
    diffs.sort_unstable();
    let mut best = (0usize, None);
    let mut i = 0;
    while i < diffs.len() {
        let j = diffs[i..].iter().take_while(|d| **d == diffs[i]).count();
        if j > best.0 {
            best = (j, Some(diffs[i]));
        }
        i += j;
    }
    best.1
}

#[cfg(test)]
mod tests;
