//! The simple predictors every model is shown next to: persistence, seasonal naive, moving
//! average. Holt-Winters is in [`crate::holt_winters`].

use crate::model::{Forecaster, Season, Window};

/// Persistence: every future step equals the last observed value.
#[derive(Clone, Debug)]
pub struct Persistence {
    last: Option<f64>,
}

impl Persistence {
    /// A persistence forecaster.
    pub fn new() -> Persistence {
        Persistence { last: None }
    }
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence::new()
    }
}

impl Forecaster for Persistence {
    fn name(&self) -> String {
        "persistence".into()
    }
    fn observe(&mut self, _time: i64, value: f64, _features: &[f64]) {
        self.last = Some(value);
    }
    fn forecast(&mut self, horizon: usize) -> Option<Vec<f64>> {
        self.last.map(|v| vec![v; horizon])
    }
}

/// Seasonal naive: the value one season (a day, a week) before each future step. Where that
/// value is missing (a gap in the history) it falls back to the last observed value.
#[derive(Clone, Debug)]
pub struct SeasonalNaive {
    name: String,
    season: Season,
    /// `slots[k]` holds (time, value) of the last observation whose step index ≡ k (mod period).
    slots: Vec<Option<(i64, f64)>>,
}

impl SeasonalNaive {
    /// Seasonal naive with a season of `period` steps of `step` seconds, called `name`.
    pub fn new(name: &str, step: i64, period: usize) -> SeasonalNaive {
        SeasonalNaive {
            name: name.into(),
            season: Season::new(step, period),
            slots: vec![None; period.max(1)],
        }
    }
}

impl Forecaster for SeasonalNaive {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn observe(&mut self, time: i64, value: f64, _features: &[f64]) {
        let k = self.season.slot(time);
        self.slots[k] = Some((time, value));
        self.season.observe(time, value);
    }
    fn history_needed(&self) -> usize {
        self.season.period()
    }

    /// Ready once a whole season has been seen.
    fn forecast(&mut self, horizon: usize) -> Option<Vec<f64>> {
        let (t, last) = self.season.ready()?;
        let step = self.season.step();
        let season_secs = self.season.period() as i64 * step;
        Some(
            (1..=horizon as i64)
                .map(|k| {
                    let source = t + k * step - season_secs;
                    match self.slots[self.season.slot(source)] {
                        Some((st, v)) if st == source => v,
                        _ => last,
                    }
                })
                .collect(),
        )
    }
}

/// Moving average of the last `window` steps.
#[derive(Clone, Debug)]
pub struct MovingAverage {
    window: Window,
}

impl MovingAverage {
    /// The mean of the last `window` steps of `step` seconds.
    pub fn new(step: i64, window: usize) -> MovingAverage {
        MovingAverage {
            window: Window::new(step, window),
        }
    }
}

impl Forecaster for MovingAverage {
    fn name(&self) -> String {
        "moving-average".into()
    }
    fn observe(&mut self, time: i64, value: f64, _features: &[f64]) {
        self.window.push(time, value);
    }

    fn history_needed(&self) -> usize {
        self.window.capacity()
    }
    fn forecast(&mut self, horizon: usize) -> Option<Vec<f64>> {
        if !self.window.full() {
            return None;
        }
        let v = self.window.values();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        Some(vec![mean; horizon])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persistence_repeats_the_last_value() {
        let mut p = Persistence::new();
        assert_eq!(p.forecast(3), None);
        p.observe(0, 4.0, &[]);
        p.observe(60, 7.0, &[]);
        assert_eq!(p.forecast(3), Some(vec![7.0; 3]));
    }

    #[test]
    fn seasonal_naive_reads_one_season_back_and_falls_back_over_gaps() {
        let mut s = SeasonalNaive::new("seasonal-naive", 60, 4);
        for i in 0..4 {
            s.observe(i * 60, i as f64 * 10.0, &[]);
        }
        assert_eq!(s.forecast(2), None, "not a whole season yet");
        s.observe(4 * 60, 99.0, &[]);
        // Next steps are times 5,6 → one season back: times 1,2.
        assert_eq!(s.forecast(2), Some(vec![10.0, 20.0]));
        // After a gap of more than a season, the source minutes are missing: fall back.
        s.observe(100 * 60, 5.0, &[]);
        assert_eq!(s.forecast(2), Some(vec![5.0, 5.0]));
    }

    #[test]
    fn moving_average_restarts_after_a_gap() {
        let mut m = MovingAverage::new(60, 3);
        for (i, v) in [1.0, 2.0, 3.0, 4.0].iter().enumerate() {
            m.observe(i as i64 * 60, *v, &[]);
        }
        assert_eq!(m.forecast(2), Some(vec![3.0, 3.0]));
        m.observe(3600, 10.0, &[]);
        assert_eq!(m.forecast(1), None);
    }
}
