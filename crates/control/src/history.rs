//! The loop's recent past for the dashboard (`GET /control/history`, drawn by `/ui`): one
//! point per interval — the observed rate, what the forecast expected at the lead and the
//! capacity planned for it, the instances — bounded, oldest dropped first.

use std::collections::VecDeque;

/// Points kept: 12 hours at a 10 s interval.
pub const MAX_POINTS: usize = 4320;

/// One interval of the loop.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Point {
    /// Wall-clock time of the interval's end, seconds since the Unix epoch.
    pub t: f64,
    /// Client requests per second over the interval.
    pub observed_rps: f64,
    /// The forecast's expected (median) rate at `t + lead_s`; none without a forecast.
    pub expected_rps: Option<f64>,
    /// The planned rate (the planned quantile, band included) the policy sized for, at the
    /// lead; none without a forecast.
    pub planned_rps: Option<f64>,
    /// How far ahead `expected_rps` looks, seconds.
    pub lead_s: f64,
    /// Instances serving, starting, and wanted.
    pub ready: usize,
    /// Instances starting.
    pub starting: usize,
    /// Instances wanted.
    pub desired: usize,
}

/// The last [`MAX_POINTS`] points.
#[derive(Debug, Default)]
pub struct History {
    points: VecDeque<Point>,
}

impl History {
    /// Adds a point, dropping the oldest when full.
    pub fn push(&mut self, p: Point) {
        if self.points.len() == MAX_POINTS {
            self.points.pop_front();
        }
        self.points.push_back(p);
    }

    /// The points after time `since` (all with `None`), oldest first.
    pub fn since(&self, since: Option<f64>) -> Vec<Point> {
        let from = since.map_or(0, |s| self.points.partition_point(|p| p.t <= s));
        self.points.range(from..).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: f64) -> Point {
        Point {
            t,
            observed_rps: t,
            expected_rps: None,
            planned_rps: None,
            lead_s: 60.0,
            ready: 1,
            starting: 0,
            desired: 1,
        }
    }

    #[test]
    fn bounded_and_read_since_a_time() {
        let mut h = History::default();
        for i in 0..MAX_POINTS + 10 {
            h.push(at(i as f64));
        }
        let all = h.since(None);
        assert_eq!(all.len(), MAX_POINTS);
        assert_eq!(all[0].t, 10.0);
        let new = h.since(Some(MAX_POINTS as f64 + 7.0));
        assert_eq!(
            new.iter().map(|p| p.t).collect::<Vec<_>>(),
            [MAX_POINTS as f64 + 8.0, MAX_POINTS as f64 + 9.0]
        );
        assert!(h.since(Some(1e12)).is_empty());
    }
}
