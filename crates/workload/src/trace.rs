//! Per-minute request counts from a CSV file, with gaps found and handled deliberately.
//!
//! Format: a header `minute,count`, then `YYYY-MM-DD HH:MM:SS,COUNT` rows in time order (the
//! shared NASA and WorldCup traces). A missing minute is a missing row, not a zero. Policy:
//! [`Trace::fill_gaps`] fills gaps of up to a given length by linear interpolation and reports
//! how many it filled; longer gaps stay, and [`Trace::longest_run`] or [`Trace::segments`] give
//! the parts between them. Nothing is ever shifted in time.

use std::path::Path;

use chrono::NaiveDateTime;

/// A problem with a trace file, naming the file and line.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TraceError {
    /// The file could not be read.
    #[error("cannot read trace {path}: {message}")]
    Read {
        /// File.
        path: String,
        /// Why.
        message: String,
    },
    /// A line that is not `YYYY-MM-DD HH:MM:SS,COUNT`.
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// File.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong, with the offending text.
        message: String,
    },
    /// The file has a header but no rows.
    #[error("{path}: no data rows")]
    Empty {
        /// File.
        path: String,
    },
}

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// Index (minute from the start) of the first missing minute.
    pub start: usize,
    /// How many minutes are missing.
    pub minutes: usize,
}

/// A per-minute count series from the first to the last minute of a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// The first minute.
    pub start: NaiveDateTime,
    /// One entry per minute since `start`; `None` where the file has no row.
    pub counts: Vec<Option<f64>>,
}

/// Minutes a trace may span at most (memory is one slot per minute, gaps included).
pub const MAX_MINUTES: usize = 5_000_000;

impl Trace {
    /// Reads a `minute,count` CSV.
    pub fn load(path: &Path) -> Result<Trace, TraceError> {
        let text = std::fs::read_to_string(path).map_err(|e| TraceError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Trace::parse(&text, &path.display().to_string())
    }

    /// Parses CSV text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Trace, TraceError> {
        let bad = |line: usize, message: String| TraceError::Malformed {
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
                return Err(TraceError::Empty {
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
            if idx >= MAX_MINUTES as i64 {
                return Err(bad(
                    n,
                    format!(
                        "minute `{}` is {idx} minutes after the first row; a trace spans at most {MAX_MINUTES} minutes (about 9.5 years)",
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
        let start = start.ok_or_else(|| TraceError::Empty {
            path: origin.to_string(),
        })?;
        Ok(Trace { start, counts })
    }

    /// Every run of missing minutes.
    pub fn gaps(&self) -> Vec<Gap> {
        missing_runs(&self.counts)
            .into_iter()
            .map(|(start, minutes)| Gap { start, minutes })
            .collect()
    }

    /// Fills gaps of at most `max_minutes` by linear interpolation between their neighbours;
    /// returns how many minutes were filled. Longer gaps are left as they are.
    pub fn fill_gaps(&mut self, max_minutes: usize) -> usize {
        let mut filled = 0;
        for g in self.gaps() {
            if g.minutes > max_minutes || g.start == 0 {
                continue;
            }
            let before = self.counts[g.start - 1].unwrap_or(0.0);
            let Some(Some(after)) = self.counts.get(g.start + g.minutes).copied() else {
                continue;
            };
            for k in 0..g.minutes {
                let f = (k + 1) as f64 / (g.minutes + 1) as f64;
                self.counts[g.start + k] = Some(before + (after - before) * f);
                filled += 1;
            }
        }
        filled
    }

    /// The stretches without gaps, as (first minute, counts).
    pub fn segments(&self) -> Vec<(usize, Vec<f64>)> {
        let mut out = Vec::new();
        let mut cur: Option<(usize, Vec<f64>)> = None;
        for (i, c) in self.counts.iter().enumerate() {
            match (c, &mut cur) {
                (Some(v), Some((_, vs))) => vs.push(*v),
                (Some(v), None) => cur = Some((i, vec![*v])),
                (None, _) => {
                    if let Some(seg) = cur.take() {
                        out.push(seg);
                    }
                }
            }
        }
        out.extend(cur);
        out
    }

    /// The longest stretch without gaps.
    pub fn longest_run(&self) -> (usize, Vec<f64>) {
        self.segments()
            .into_iter()
            .max_by_key(|(_, v)| v.len())
            .unwrap_or((0, Vec::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "minute,count\n1995-07-01 00:00:00,10\n1995-07-01 00:01:00,20\n1995-07-01 00:04:00,50\n1995-07-01 00:05:00,60\n1995-07-01 01:00:00,5\n1995-07-01 01:01:00,6\n";

    #[test]
    fn gaps_are_found_filled_when_short_and_kept_when_long() {
        let mut t = Trace::parse(CSV, "t.csv").unwrap();
        assert_eq!(t.counts.len(), 62);
        assert_eq!(
            t.gaps(),
            vec![
                Gap {
                    start: 2,
                    minutes: 2
                },
                Gap {
                    start: 6,
                    minutes: 54
                }
            ]
        );
        assert_eq!(t.fill_gaps(10), 2);
        assert_eq!(t.counts[2], Some(30.0));
        assert_eq!(t.counts[3], Some(40.0));
        assert_eq!(
            t.gaps(),
            vec![Gap {
                start: 6,
                minutes: 54
            }]
        );
        let segs = t.segments();
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[1], (60, vec![5.0, 6.0]));
        assert_eq!(t.longest_run().1.len(), 6);
    }

    #[test]
    fn bad_lines_name_file_line_and_text() {
        let cases = [
            ("min,count\n", 1, "header"),
            (
                "minute,count\n1995-07-01 00:00:00;5\n",
                2,
                "1995-07-01 00:00:00;5",
            ),
            ("minute,count\n1995-13-01 00:00:00,5\n", 2, "1995-13-01"),
            ("minute,count\n1995-07-01 00:00:00,-5\n", 2, "`-5`"),
            (
                "minute,count\n1995-07-01 00:00:00,5\n1995-07-01 00:00:30,5\n",
                3,
                "whole minute",
            ),
            (
                "minute,count\n1995-07-01 00:01:00,5\n1995-07-01 00:00:00,5\n",
                3,
                "not after",
            ),
        ];
        for (text, line, needle) in cases {
            match Trace::parse(text, "t.csv") {
                Err(e @ TraceError::Malformed { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.starts_with(&format!("t.csv:{line}:")), "{msg}");
                    assert!(msg.contains(needle), "{msg}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(matches!(
            Trace::parse("minute,count\n", "t.csv"),
            Err(TraceError::Empty { .. })
        ));
    }

    #[test]
    fn loads_the_shared_traces_when_present() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/datasets/nasa-http-1995-per-minute.csv");
        if !p.exists() {
            // CI has the shared datasets beside the clone: missing there is a failure.
            assert!(
                std::env::var_os("CI").is_none(),
                "{} not found, and CI is set",
                p.display()
            );
            eprintln!(
                "skipping: {} not found (outside the project's machines)",
                p.display()
            );
            return;
        }
        let t = Trace::load(&p).unwrap();
        // The dataset README: 81,396 rows, two long holes (July 28 - Aug 1, Aug 1 - Aug 3).
        assert_eq!(t.counts.iter().filter(|c| c.is_some()).count(), 81_396);
        let long: Vec<_> = t.gaps().into_iter().filter(|g| g.minutes > 60).collect();
        assert_eq!(long.len(), 2, "{long:?}");
    }
}
