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

    /// Whether the window holds `capacity` points.
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
