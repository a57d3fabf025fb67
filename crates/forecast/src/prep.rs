//! Preprocessing as in the paper: noise removal, 0–1 normalisation, calendar features and a
//! chronological split.

use serde::{Deserialize, Serialize};

/// What the Hampel filter changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CleanReport {
    /// Points examined.
    pub points: usize,
    /// Points replaced by their window median.
    pub replaced: usize,
}

/// Hampel filter: a point further than `n_sigmas` robust standard deviations (1.4826 × MAD)
/// from the median of the centred window of `2 × half_window + 1` points is replaced by that
/// median. Returns what was changed.
pub fn hampel(values: &mut [f64], half_window: usize, n_sigmas: f64) -> CleanReport {
    let n = values.len();
    let original = values.to_vec();
    let mut window = Vec::with_capacity(2 * half_window + 1);
    let mut dev = Vec::with_capacity(2 * half_window + 1);
    let mut replaced = 0;
    for i in 0..n {
        let lo = i.saturating_sub(half_window);
        let hi = (i + half_window + 1).min(n);
        window.clear();
        window.extend_from_slice(&original[lo..hi]);
        let med = median(&mut window);
        dev.clear();
        dev.extend(window.iter().map(|v| (v - med).abs()));
        let mad = median(&mut dev);
        let sigma = 1.4826 * mad;
        if sigma > 0.0 && (original[i] - med).abs() > n_sigmas * sigma {
            values[i] = med;
            replaced += 1;
        }
    }
    CleanReport {
        points: n,
        replaced,
    }
}

/// Median of a non-empty slice (reorders it).
pub fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let mid = n / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    let m = *m;
    if n % 2 == 1 {
        m
    } else {
        let lower = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + m) / 2.0
    }
}

/// Min-max scaling to 0–1, fitted on the training split only and saved beside the model;
/// optionally of `ln(1 + v)` rather than `v`, for traffic that spans orders of magnitude.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MinMax {
    /// (Transformed) value mapped to 0.
    pub min: f64,
    /// (Transformed) value mapped to 1.
    pub max: f64,
    /// Scale `ln(1 + v)` instead of `v` (values must be > −1).
    #[serde(default)]
    pub log: bool,
}

impl MinMax {
    /// Fits to the values' range (a constant series maps to 0).
    pub fn fit(values: impl IntoIterator<Item = f64>) -> MinMax {
        Self::fit_with(values, false)
    }

    /// Fits to the range of `ln(1 + v)` when `log`, else of `v`.
    pub fn fit_with(values: impl IntoIterator<Item = f64>, log: bool) -> MinMax {
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values {
            let v = if log { v.max(0.0).ln_1p() } else { v };
            min = min.min(v);
            max = max.max(v);
        }
        if !min.is_finite() {
            return MinMax {
                min: 0.0,
                max: 1.0,
                log,
            };
        }
        MinMax { min, max, log }
    }

    fn span(&self) -> f64 {
        let s = self.max - self.min;
        if s > 0.0 {
            s
        } else {
            1.0
        }
    }

    /// Maps to 0–1 (values outside the fitted range go outside 0–1; nothing is clipped).
    pub fn scale(&self, v: f64) -> f64 {
        let v = if self.log { v.max(0.0).ln_1p() } else { v };
        (v - self.min) / self.span()
    }

    /// Maps back.
    pub fn unscale(&self, v: f64) -> f64 {
        let v = v * self.span() + self.min;
        if self.log {
            v.exp_m1()
        } else {
            v
        }
    }
}

/// Time of day as `harmonics` sin/cos pairs (harmonic k turns k times a day), then day of week
/// as one pair, for Unix time `t` (UTC): `2 × harmonics + 2` values.
pub fn calendar(t: i64, harmonics: usize) -> impl Iterator<Item = f64> {
    use std::f64::consts::TAU;
    let day = t.rem_euclid(86_400) as f64 / 86_400.0;
    // 1970-01-01 was a Thursday; day 0 of the week here is Monday.
    let week = (t + 3 * 86_400).rem_euclid(7 * 86_400) as f64 / (7.0 * 86_400.0);
    (1..=harmonics)
        .flat_map(move |k| {
            let a = TAU * day * k as f64;
            [a.sin(), a.cos()]
        })
        .chain([(TAU * week).sin(), (TAU * week).cos()])
}

/// Minute of the hour as sin/cos: recurring bursts at fixed minutes past the hour.
pub fn hour_phase(t: i64) -> [f64; 2] {
    let hour = t.rem_euclid(3_600) as f64 / 3_600.0;
    let a = std::f64::consts::TAU * hour;
    [a.sin(), a.cos()]
}

/// A chronological split of step indices `[0, n)`: train, validation, test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Split {
    /// End of the training part (exclusive).
    pub train_end: usize,
    /// End of the validation part (exclusive); the test part runs to the end.
    pub val_end: usize,
    /// Total length.
    pub len: usize,
}

impl Split {
    /// Splits `n` steps by the given fractions (train, validation; the rest is test).
    pub fn new(n: usize, train: f64, val: f64) -> Result<Split, String> {
        if !(train > 0.0 && val >= 0.0 && train + val < 1.0) {
            return Err(format!(
                "split fractions train={train} validation={val} must be positive and leave a test part"
            ));
        }
        let train_end = (n as f64 * train).round() as usize;
        let val_end = (n as f64 * (train + val)).round() as usize;
        Ok(Split {
            train_end,
            val_end,
            len: n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hampel_replaces_spikes_and_counts_them() {
        let mut v: Vec<f64> = (0..50).map(|i| 10.0 + (i % 3) as f64).collect();
        v[20] = 500.0;
        v[35] = -300.0;
        let r = hampel(&mut v, 5, 3.0);
        assert_eq!(r.replaced, 2);
        assert_eq!(r.points, 50);
        assert!(v[20] < 13.0 && v[35] > 9.0);
        // A smooth series is left alone.
        let mut s: Vec<f64> = (0..100)
            .map(|i| (i as f64 / 10.0).sin() * 50.0 + 100.0)
            .collect();
        let before = s.clone();
        assert_eq!(hampel(&mut s, 5, 3.0).replaced, 0);
        assert_eq!(s, before);
    }

    #[test]
    fn minmax_round_trips_and_maps_the_range_to_unit() {
        let m = MinMax::fit([5.0, 15.0, 10.0]);
        assert_eq!(m.scale(5.0), 0.0);
        assert_eq!(m.scale(15.0), 1.0);
        assert!((m.unscale(m.scale(12.3)) - 12.3).abs() < 1e-12);
        let c = MinMax::fit([7.0, 7.0]);
        assert_eq!(c.scale(7.0), 0.0);
        let l = MinMax::fit_with([0.0, 99.0, 9999.0], true);
        assert_eq!(l.scale(0.0), 0.0);
        assert!((l.scale(9999.0) - 1.0).abs() < 1e-12);
        assert!((l.scale(99.0) - 0.5).abs() < 1e-3);
        assert!((l.unscale(l.scale(123.0)) - 123.0).abs() < 1e-9);
    }

    #[test]
    fn calendar_features_are_periodic() {
        let at = |t: i64, h: usize| calendar(t, h).collect::<Vec<_>>();
        let (a, b) = (at(1_000_000, 1), at(1_000_000 + 7 * 86_400, 1));
        assert_eq!(a.len(), 4);
        for k in 0..4 {
            assert!((a[k] - b[k]).abs() < 1e-9);
        }
        // Midnight: time-of-day angle zero.
        let m = at(86_400 * 3, 1);
        assert!(m[0].abs() < 1e-12 && (m[1] - 1.0).abs() < 1e-12);
        // The first pair is the same with more harmonics; the week pair comes last.
        let twelve = at(1_000_000, 12);
        assert_eq!(twelve.len(), 26);
        assert!((twelve[0] - a[0]).abs() < 1e-12 && (twelve[25] - a[3]).abs() < 1e-12);
    }

    #[test]
    fn twelve_day_harmonics_tell_every_hour_apart() {
        // At the same minute of the hour, the 24 hours of a day are 24 distinct points; with
        // one harmonic, the hours either side of noon are far closer than with twelve.
        let hour = |h: i64| calendar(h * 3_600 + 17 * 60, 12).collect::<Vec<_>>();
        let dist = |a: &[f64], b: &[f64]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        for i in 0..24 {
            for j in i + 1..24 {
                let d = dist(&hour(i), &hour(j));
                assert!(d > 1.0, "hours {i} and {j} are {d} apart");
            }
        }
    }

    #[test]
    fn split_is_chronological_and_validated() {
        let s = Split::new(1000, 0.7, 0.15).unwrap();
        assert_eq!((s.train_end, s.val_end), (700, 850));
        assert!(Split::new(10, 0.9, 0.2).is_err());
    }
}
