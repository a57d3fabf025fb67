//! Request rate as a function of time.

use std::time::Duration;

/// A traffic profile: requests per second at each moment from the start of a run.
#[derive(Clone, Debug, PartialEq)]
pub enum Profile {
    /// The same rate throughout.
    Constant {
        /// Requests per second.
        rate: f64,
    },
    /// `before` until `at`, then `after`.
    Step {
        /// Rate before the step.
        before: f64,
        /// Rate after it.
        after: f64,
        /// When it happens.
        at: Duration,
    },
    /// Linear from `from` to `to` over `over`, then `to`.
    Ramp {
        /// Starting rate.
        from: f64,
        /// Final rate.
        to: f64,
        /// Length of the ramp.
        over: Duration,
    },
    /// `mean × (1 + amplitude × sin(2πt / period))`, starting at the mean and rising.
    Diurnal {
        /// Mean rate.
        mean: f64,
        /// Relative swing, 0..=1.
        amplitude: f64,
        /// One cycle (a day, or a compressed day).
        period: Duration,
    },
    /// `base`, then a linear rise to `peak` over `rise` starting at `at`, then an exponential
    /// decay back toward `base` with time constant `decay`.
    FlashCrowd {
        /// Background rate.
        base: f64,
        /// Rate at the top.
        peak: f64,
        /// Start of the surge.
        at: Duration,
        /// Time to reach the peak.
        rise: Duration,
        /// Time constant of the decay after the peak.
        decay: Duration,
    },
    /// `base`, with square bursts at `peak` lasting `length` from `at`, repeated every `every`
    /// (one burst when `every` is `None`): the paper's "bursty" load.
    Burst {
        /// Rate between bursts.
        base: f64,
        /// Rate during a burst.
        peak: f64,
        /// Start of the first burst.
        at: Duration,
        /// Length of each burst.
        length: Duration,
        /// Time from one burst's start to the next's.
        every: Option<Duration>,
    },
    /// Replay of per-minute counts, scaled so the largest count becomes `peak_rate`, each
    /// trace minute lasting `minute` (60 s for real time; less to compress).
    Trace {
        /// Requests per second in each trace minute (see [`Profile::trace`]).
        rates: Vec<f64>,
        /// Length of one trace minute in the run.
        minute: Duration,
    },
}

impl Profile {
    /// Replay of per-minute `counts` (gaps already filled or cut away), scaled so that the
    /// largest count is `peak_rate` requests per second, each trace minute lasting `minute`.
    pub fn trace(counts: &[f64], peak_rate: f64, minute: Duration) -> Profile {
        let max = counts.iter().copied().fold(0.0, f64::max);
        let rates = counts
            .iter()
            .map(|c| if max > 0.0 { c / max * peak_rate } else { 0.0 })
            .collect();
        Profile::Trace { rates, minute }
    }

    /// Requests per second at `t` after the start (never negative).
    pub fn rate_at(&self, t: Duration) -> f64 {
        let s = t.as_secs_f64();
        let r = match self {
            Profile::Constant { rate } => *rate,
            Profile::Step { before, after, at } => {
                if t < *at {
                    *before
                } else {
                    *after
                }
            }
            Profile::Ramp { from, to, over } => {
                let f = if over.is_zero() {
                    1.0
                } else {
                    (s / over.as_secs_f64()).min(1.0)
                };
                from + (to - from) * f
            }
            Profile::Diurnal {
                mean,
                amplitude,
                period,
            } => {
                mean * (1.0
                    + amplitude * (2.0 * std::f64::consts::PI * s / period.as_secs_f64()).sin())
            }
            Profile::FlashCrowd {
                base,
                peak,
                at,
                rise,
                decay,
            } => {
                if t < *at {
                    *base
                } else if t < *at + *rise {
                    let f = (t - *at).as_secs_f64() / rise.as_secs_f64().max(1e-9);
                    base + (peak - base) * f
                } else {
                    let after = (t - *at - *rise).as_secs_f64();
                    base + (peak - base) * (-after / decay.as_secs_f64().max(1e-9)).exp()
                }
            }
            Profile::Burst {
                base,
                peak,
                at,
                length,
                every,
            } => {
                let into = if t < *at {
                    None
                } else {
                    let since = (t - *at).as_secs_f64();
                    Some(match every {
                        Some(e) if !e.is_zero() => since % e.as_secs_f64(),
                        _ => since,
                    })
                };
                match into {
                    Some(x) if x < length.as_secs_f64() => *peak,
                    _ => *base,
                }
            }
            Profile::Trace { rates, minute } => {
                let i = (s / minute.as_secs_f64()) as usize;
                rates.get(i).copied().unwrap_or(0.0)
            }
        };
        r.max(0.0)
    }

    /// An upper bound of the rate over the whole profile (for thinning).
    pub fn max_rate(&self) -> f64 {
        match self {
            Profile::Constant { rate } => *rate,
            Profile::Step { before, after, .. } => before.max(*after),
            Profile::Ramp { from, to, .. } => from.max(*to),
            Profile::Diurnal {
                mean, amplitude, ..
            } => mean * (1.0 + amplitude),
            Profile::FlashCrowd { base, peak, .. } | Profile::Burst { base, peak, .. } => {
                base.max(*peak)
            }
            Profile::Trace { rates, .. } => rates.iter().copied().fold(0.0, f64::max),
        }
        .max(0.0)
    }

    /// The natural length of the profile, where it has one (a trace's span).
    pub fn natural_length(&self) -> Option<Duration> {
        match self {
            Profile::Trace { rates, minute } => Some(*minute * rates.len() as u32),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn shapes() {
        let step = Profile::Step {
            before: 10.0,
            after: 50.0,
            at: S(60),
        };
        assert_eq!(step.rate_at(S(59)), 10.0);
        assert_eq!(step.rate_at(S(60)), 50.0);
        let ramp = Profile::Ramp {
            from: 0.0,
            to: 100.0,
            over: S(100),
        };
        assert_eq!(ramp.rate_at(S(25)), 25.0);
        assert_eq!(ramp.rate_at(S(1000)), 100.0);
        let d = Profile::Diurnal {
            mean: 100.0,
            amplitude: 0.5,
            period: S(400),
        };
        assert!((d.rate_at(S(100)) - 150.0).abs() < 1e-9);
        assert!((d.rate_at(S(300)) - 50.0).abs() < 1e-9);
        assert_eq!(d.max_rate(), 150.0);
        let f = Profile::FlashCrowd {
            base: 10.0,
            peak: 110.0,
            at: S(10),
            rise: S(10),
            decay: S(10),
        };
        assert_eq!(f.rate_at(S(5)), 10.0);
        assert_eq!(f.rate_at(S(15)), 60.0);
        assert!((f.rate_at(S(30)) - (10.0 + 100.0 * (-1f64).exp())).abs() < 1e-9);
        let b = Profile::Burst {
            base: 10.0,
            peak: 100.0,
            at: S(10),
            length: S(5),
            every: Some(S(30)),
        };
        let at: Vec<f64> = [0, 10, 14, 15, 39, 40, 44, 45]
            .map(|s| b.rate_at(S(s)))
            .to_vec();
        assert_eq!(at, [10.0, 100.0, 100.0, 10.0, 10.0, 100.0, 100.0, 10.0]);
        assert_eq!(b.max_rate(), 100.0);
    }

    #[test]
    fn trace_scales_to_peak_and_compresses_time() {
        let t = Profile::trace(&[10.0, 40.0, 20.0], 400.0, S(1));
        assert_eq!(t.rate_at(Duration::from_millis(500)), 100.0);
        assert_eq!(t.rate_at(Duration::from_millis(1500)), 400.0);
        assert_eq!(t.rate_at(S(5)), 0.0);
        assert_eq!(t.natural_length(), Some(S(3)));
    }
}
