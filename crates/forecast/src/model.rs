//! The [`Forecaster`] trait, shared by the LSTM and every baseline, and the history buffer they
//! keep.

use std::collections::VecDeque;

/// A model that is fed one step at a time and forecasts the next steps.
///
/// Pure and time-injected: the caller passes each observation's time, so the simulator, the
/// evaluation and the live control loop drive the same objects.
pub trait Forecaster: Send {
    /// Name used in tables and JSON (`lstm`, `persistence`, ...).
    fn name(&self) -> String;
    /// Feeds one observed step: its Unix time, the value, and the features in the series' order.
    /// A time that is not one step after the previous one is a gap: models restart their windows.
    fn observe(&mut self, time: i64, value: f64, features: &[f64]);
    /// The forecast for the `horizon` steps after the last observed one, or `None` while the
    /// model has not seen enough history.
    fn forecast(&mut self, horizon: usize) -> Option<Vec<f64>>;
    /// Contiguous steps this model must observe before its first forecast (its input window,
    /// or a season): what a warm start has to fill.
    fn history_needed(&self) -> usize {
        1
    }
    /// The quantiles (0–1, increasing) that [`Forecaster::forecast_quantiles`] gives; empty
    /// for a point forecaster.
    fn quantiles(&self) -> Vec<f64> {
        Vec::new()
    }
    /// One forecast per quantile of [`Forecaster::quantiles`] (each `horizon` steps, never
    /// crossing), or `None` for a point forecaster or while not ready.
    fn forecast_quantiles(&mut self, _horizon: usize) -> Option<Vec<Vec<f64>>> {
        None
    }
    /// For a forecaster that chooses among candidates (`auto`): every candidate it scored
    /// when it last chose, best (the one in use) first; empty for the others.
    fn candidates(&self) -> Vec<Candidate> {
        Vec::new()
    }
}

/// A candidate forecaster as a choosing forecaster scored it on held-out data.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Candidate {
    /// Its name (`lstm`, `seasonal-quantile-hour`, `max(lstm, holt-winters)`, ...).
    pub name: String,
    /// Mean pinball loss of the capacity it planned, in the data's units per step.
    pub pinball: f64,
    /// Share of the planned windows whose peak it covered.
    pub coverage: f64,
    /// Windows scored.
    pub windows: usize,
}

/// The last `capacity` contiguous observations; cleared on a gap.
#[derive(Clone, Debug)]
pub struct Window {
    step: i64,
    capacity: usize,
    last_time: Option<i64>,
    values: VecDeque<f64>,
}

impl Window {
    /// A window of `capacity` steps of `step` seconds.
    pub fn new(step: i64, capacity: usize) -> Window {
        Window {
            step,
            capacity: capacity.max(1),
            last_time: None,
            values: VecDeque::with_capacity(capacity.max(1)),
        }
    }

    /// Adds a point; returns true when it followed a gap (and the window was restarted).
    pub fn push(&mut self, time: i64, value: f64) -> bool {
        let gap = matches!(self.last_time, Some(t) if time != t + self.step);
        if gap {
            self.values.clear();
        }
        if self.values.len() == self.capacity {
            self.values.pop_front();
        }
        self.values.push_back(value);
        self.last_time = Some(time);
        gap
    }

    /// Points held at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the window holds `capacity` contiguous points.
    pub fn full(&self) -> bool {
        self.values.len() == self.capacity
    }

    /// Time of the last point.
    pub fn last_time(&self) -> Option<i64> {
        self.last_time
    }

    /// The points, oldest first.
    pub fn values(&self) -> &VecDeque<f64> {
        &self.values
    }

    /// Step in seconds.
    pub fn step(&self) -> i64 {
        self.step
    }
}

/// The bookkeeping the seasonal models share: which slot of the season a time falls in, the
/// last observation, and whether a whole season has been seen.
#[derive(Clone, Debug)]
pub struct Season {
    step: i64,
    period: usize,
    first: Option<i64>,
    last: Option<(i64, f64)>,
}

impl Season {
    /// A season of `period` steps (at least 1) of `step` seconds (at least 1).
    pub fn new(step: i64, period: usize) -> Season {
        Season {
            step: step.max(1),
            period: period.max(1),
            first: None,
            last: None,
        }
    }

    /// The slot (0..period) of the step at `time`.
    pub fn slot(&self, time: i64) -> usize {
        time.div_euclid(self.step).rem_euclid(self.period as i64) as usize
    }

    /// Steps per season.
    pub fn period(&self) -> usize {
        self.period
    }

    /// Seconds per step.
    pub fn step(&self) -> i64 {
        self.step
    }

    /// Notes an observation.
    pub fn observe(&mut self, time: i64, value: f64) {
        self.last = Some((time, value));
        self.first.get_or_insert(time);
    }

    /// The last observation (time, value), once a whole season has been seen.
    pub fn ready(&self) -> Option<(i64, f64)> {
        let (t, v) = self.last?;
        (t - self.first? >= self.period as i64 * self.step).then_some((t, v))
    }
}
