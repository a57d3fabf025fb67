//! Recurring bursts: a diurnal base with short bursts of k× at fixed minutes past chosen hours,
//! with jitter and some bursts skipped — the shape on which a median forecaster and a 15-s
//! reactive loop both fail (a 3-minute burst is over before a new instance is ready), and a
//! per-slot seasonal quantile does not.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Settings of a recurring-bursts series.
#[derive(Clone, Debug, PartialEq)]
pub struct RecurringBursts {
    /// Mean of the diurnal base, requests per minute.
    pub base: f64,
    /// Relative daily swing of the base (0–1); the low is at 04:00, the high at 16:00.
    pub amplitude: f64,
    /// Burst height as a multiple of the base at that moment.
    pub factor: f64,
    /// Minutes past the hour at which bursts start.
    pub minutes_past: Vec<u32>,
    /// Hours of the day (0–23) that have bursts.
    pub hours: Vec<u32>,
    /// Length of a burst, minutes.
    pub length: u32,
    /// A burst starts up to this many minutes early or late (uniform).
    pub jitter: u32,
    /// Share of bursts skipped (0–1).
    pub skip: f64,
    /// Relative noise of each minute (uniform ±).
    pub noise: f64,
    /// Seed of jitter, skips and noise.
    pub seed: u64,
}

impl Default for RecurringBursts {
    /// Bursts of 4.5× for 3 minutes at :00 and :30 of every hour from 08:00 to 20:00, ±1
    /// minute, one in ten skipped, on a base of 600 requests per minute swinging ±50%.
    fn default() -> Self {
        RecurringBursts {
            base: 600.0,
            amplitude: 0.5,
            factor: 4.5,
            minutes_past: vec![0, 30],
            hours: (8..=20).collect(),
            length: 3,
            jitter: 1,
            skip: 0.1,
            noise: 0.05,
            seed: 1,
        }
    }
}

impl RecurringBursts {
    /// Checks the values, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        let finite_positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{name} must be finite and positive, got {v}"))
            }
        };
        finite_positive("base", self.base)?;
        finite_positive("factor", self.factor)?;
        for (name, v) in [
            ("amplitude", self.amplitude),
            ("skip", self.skip),
            ("noise", self.noise),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be between 0 and 1, got {v}"));
            }
        }
        if let Some(m) = self.minutes_past.iter().find(|m| **m >= 60) {
            return Err(format!("minutes past the hour must be below 60, got {m}"));
        }
        if let Some(h) = self.hours.iter().find(|h| **h >= 24) {
            return Err(format!("hours must be below 24, got {h}"));
        }
        if self.length == 0 || self.length > 60 {
            return Err(format!(
                "burst length must be 1–60 minutes, got {}",
                self.length
            ));
        }
        if self.jitter > 30 {
            return Err(format!(
                "jitter must be at most 30 minutes, got {}",
                self.jitter
            ));
        }
        Ok(())
    }

    /// Requests per minute for `minutes` minutes from midnight.
    pub fn per_minute(&self, minutes: usize) -> Vec<f64> {
        let mut rng = SmallRng::seed_from_u64(self.seed);
        let base = |m: usize| {
            let day = (m % 1440) as f64 / 1440.0;
            // Lowest at 04:00, highest at 16:00.
            let phase = std::f64::consts::TAU * (day - 10.0 / 24.0);
            self.base * (1.0 + self.amplitude * phase.sin())
        };
        let mut burst = vec![false; minutes];
        let mut hour_start = 0usize;
        while hour_start < minutes {
            let hour = ((hour_start / 60) % 24) as u32;
            for &past in &self.minutes_past {
                // Draw for every slot, burst hour or not, so the series of one hour does not
                // depend on which hours burst.
                let skipped = rng.random::<f64>() < self.skip;
                let shift = rng.random_range(0..=2 * self.jitter) as i64 - i64::from(self.jitter);
                if skipped || !self.hours.contains(&hour) {
                    continue;
                }
                let start = hour_start as i64 + i64::from(past) + shift;
                for m in start.max(0)..(start + i64::from(self.length)) {
                    if let Some(b) = burst.get_mut(m as usize) {
                        *b = true;
                    }
                }
            }
            hour_start += 60;
        }
        (0..minutes)
            .map(|m| {
                let level = base(m) * if burst[m] { self.factor } else { 1.0 };
                let noise = 1.0 + self.noise * (2.0 * rng.random::<f64>() - 1.0);
                (level * noise).max(0.0)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_recur_at_their_minutes_and_only_in_their_hours() {
        let cfg = RecurringBursts {
            jitter: 0,
            skip: 0.0,
            noise: 0.0,
            ..RecurringBursts::default()
        };
        let v = cfg.per_minute(2 * 1440);
        for day in 0..2 {
            let at = |h: usize, m: usize| v[day * 1440 + h * 60 + m];
            assert!(at(9, 0) > 3.0 * at(9, 10), "09:00 bursts");
            assert!(at(9, 32) > 3.0 * at(9, 40), "09:30 bursts for 3 minutes");
            assert!(at(9, 33) < 1.5 * at(9, 40), "and stops after 3");
            assert!(at(3, 0) < 1.5 * at(3, 10), "no bursts at night");
        }
        // The base: low at 04:00, high at 16:00.
        assert!(v[16 * 60 + 10] > 2.5 * v[4 * 60 + 10]);
    }

    #[test]
    fn seeded_and_skips_and_jitter_apply() {
        let cfg = RecurringBursts::default();
        assert_eq!(cfg.per_minute(1440), cfg.per_minute(1440));
        let other = RecurringBursts {
            seed: 2,
            ..cfg.clone()
        };
        assert_ne!(cfg.per_minute(1440), other.per_minute(1440));
        let all = RecurringBursts {
            skip: 1.0,
            noise: 0.0,
            ..cfg.clone()
        };
        let v = all.per_minute(1440);
        assert!(
            v.iter()
                .zip(v.iter().skip(1))
                .all(|(a, b)| (b / a - 1.0).abs() < 0.01),
            "every burst skipped: smooth"
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let bad = RecurringBursts {
            factor: f64::NAN,
            ..RecurringBursts::default()
        };
        assert!(bad.validate().unwrap_err().contains("factor"));
        let bad = RecurringBursts {
            minutes_past: vec![75],
            ..RecurringBursts::default()
        };
        assert!(bad.validate().unwrap_err().contains("below 60"));
        assert!(RecurringBursts::default().validate().is_ok());
    }
}
