//! The seasonal quantile model: for each slot of the season (each minute of the day, at the
//! data's own resolution), a high quantile of the values seen in that slot over the last few
//! seasons. It is Crane's percentile predictor made seasonal: a burst that recurs at the same
//! minute most days stays in its slot's high quantile even when a median model (or a median
//! of the days) forgets it, which is what capacity must be planned for.

use std::collections::VecDeque;

use crate::model::{Forecaster, Season};

/// Per-slot quantiles over the last `seasons` seasons.
#[derive(Clone, Debug)]
pub struct SeasonalQuantile {
    season: Season,
    seasons: usize,
    quantile: f64,
    /// `slots[k]`: the last `seasons` values whose step index ≡ k (mod period), oldest first.
    slots: Vec<VecDeque<f64>>,
    scratch: Vec<f64>,
}

impl SeasonalQuantile {
    /// Seasons of `period` steps of `step` seconds; each slot keeps its last `seasons` values
    /// and forecasts their `quantile` (0–1, nearest rank).
    pub fn new(step: i64, period: usize, seasons: usize, quantile: f64) -> SeasonalQuantile {
        let season = Season::new(step, period);
        SeasonalQuantile {
            slots: vec![VecDeque::new(); season.period()],
            season,
            seasons: seasons.max(1),
            quantile: if quantile.is_nan() {
                0.5
            } else {
                quantile.clamp(0.0, 1.0)
            },
            scratch: Vec::new(),
        }
    }

    /// The quantile of one slot's values, `None` when it has none.
    fn slot_quantile(&mut self, k: usize) -> Option<f64> {
        let values = &self.slots[k];
        if values.is_empty() {
            return None;
        }
        self.scratch.clear();
        self.scratch.extend(values.iter().copied());
        self.scratch.sort_by(f64::total_cmp);
        let i = ((self.scratch.len() - 1) as f64 * self.quantile).round() as usize;
        Some(self.scratch[i])
    }
}

impl Forecaster for SeasonalQuantile {
    fn name(&self) -> String {
        "seasonal-quantile".into()
    }

    fn observe(&mut self, time: i64, value: f64, _features: &[f64]) {
        if !value.is_finite() {
            return;
        }
        let k = self.season.slot(time);
        let slot = &mut self.slots[k];
        if slot.len() == self.seasons {
            slot.pop_front();
        }
        slot.push_back(value);
        self.season.observe(time, value);
    }

    fn history_needed(&self) -> usize {
        self.season.period()
    }

    /// Ready once a whole season has been seen; a slot with no value yet (after a gap)
    /// repeats the last observed value.
    fn forecast(&mut self, horizon: usize) -> Option<Vec<f64>> {
        let (t, last) = self.season.ready()?;
        let step = self.season.step();
        Some(
            (1..=horizon as i64)
                .map(|k| {
                    let slot = self.season.slot(t + k * step);
                    self.slot_quantile(slot).unwrap_or(last)
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Days of 4 one-minute slots; a burst of 500 in slot 2 on most days.
    fn days(n: i64, burst_days: &[i64]) -> SeasonalQuantile {
        let mut s = SeasonalQuantile::new(60, 4, 7, 0.9);
        for d in 0..n {
            for k in 0..4 {
                let v = if k == 2 && burst_days.contains(&d) {
                    500.0
                } else {
                    100.0 + d as f64
                };
                s.observe((d * 4 + k) * 60, v, &[]);
            }
        }
        s
    }

    #[test]
    fn a_recurring_burst_stays_in_its_slot() {
        // Bursts on 5 of 7 days, skipped on the last two: the 0.9 quantile keeps it.
        let mut s = days(7, &[0, 1, 2, 3, 4]);
        // The next steps are slots 0, 1, 2, 3 of day 7.
        let f = s.forecast(4).unwrap();
        assert_eq!(f[2], 500.0, "{f:?}");
        assert_eq!(
            f[0], 105.0,
            "days 0–6 in slot 0 are 100..106; q = 0.9 is rank 5 of 0..6"
        );
    }

    #[test]
    fn old_seasons_are_forgotten() {
        // Bursts only in the first 2 of 10 days: with 7 seasons kept they are gone.
        let mut s = days(10, &[0, 1]);
        assert!(s.forecast(4).unwrap()[2] < 200.0);
    }

    #[test]
    fn not_ready_before_a_season_and_gaps_fall_back_to_the_last_value() {
        let mut s = SeasonalQuantile::new(60, 4, 3, 0.95);
        s.observe(0, 1.0, &[]);
        assert_eq!(s.forecast(2), None);
        s.observe(4 * 60, 8.0, &[]);
        // Slot 1 and 2 have never been seen: the last value stands in; slot 0 has 1 and 8.
        assert_eq!(s.forecast(4), Some(vec![8.0, 8.0, 8.0, 8.0]));
        let mut q = SeasonalQuantile::new(60, 2, 3, f64::NAN);
        q.observe(0, f64::NAN, &[]);
        assert_eq!(q.forecast(1), None, "a NaN value is not an observation");
    }

    #[test]
    fn the_quantile_is_monotone_in_q() {
        let mut lo = SeasonalQuantile::new(60, 1, 10, 0.1);
        let mut hi = SeasonalQuantile::new(60, 1, 10, 0.9);
        for (i, v) in [5.0, 1.0, 9.0, 3.0, 7.0].into_iter().enumerate() {
            lo.observe(i as i64 * 60, v, &[]);
            hi.observe(i as i64 * 60, v, &[]);
        }
        assert!(lo.forecast(1).unwrap()[0] <= hi.forecast(1).unwrap()[0]);
        assert_eq!(hi.forecast(1).unwrap()[0], 9.0);
    }
}
