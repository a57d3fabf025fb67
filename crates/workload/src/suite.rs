//! A suite of generated per-minute workloads, drawn from broad distributions of the shapes
//! real services show, so that a scaling method is judged on many workloads it was not
//! developed on (as forecasting competitions do) rather than on three traces.
//!
//! Each [`Workload`] is a plain, serialisable set of parameters (written beside its trace as
//! JSON); [`Workload::generate`] turns it into counts, deterministically from its seed.
//! [`Workload::draw`] draws one from the suite's distributions:
//!
//! | part | distribution |
//! |---|---|
//! | base | log-uniform 50–5,000 requests per minute |
//! | diurnal cycle | amplitude uniform 0–0.9 of the base, peak hour uniform 0–24 |
//! | weekly cycle | weekend level uniform 0.3–1.2 of weekdays |
//! | trend | uniform −10% to +20% per week |
//! | recurring bursts (70% of workloads) | 1–3 minutes past the hour; hours: every hour, every 2nd or 3rd, business hours (9–17) or a random half; days: every day, weekdays or a random subset; jitter 0–5 minutes; 0–40% skipped; 0–30% echoed by a second burst 8–12 minutes later; height 2–6× the base; length 1–10 minutes |
//! | flash crowds | 0–1.5 per week at random times, 3–8× rising in 1–5 minutes, decaying with a time constant of 10–120 minutes |
//! | outages | 30% of workloads: a daily drop to zero of 10–40 minutes at a fixed time; otherwise 0–1 per week at random times, 5–45 minutes; traffic returns at once |
//! | collection gaps | 0–2 per week of 1–10 missing rows (filled by the data pipeline) |
//! | noise | Poisson counts (40%); log-normal, σ 0.03–0.25 (40%); heavy-tailed spikes, Pareto α 1.5–3 on 0.5–3% of minutes (20%) |

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Pareto, Poisson};
use serde::{Deserialize, Serialize};

/// Minutes per day and week.
const DAY: usize = 1440;
const WEEK: usize = 7 * DAY;

/// One generated workload's parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Name (`w001`), also the file stem.
    pub name: String,
    /// Seed of every random choice inside the workload (jitter, skips, noise, events).
    pub seed: u64,
    /// Days of minutes.
    pub days: u32,
    /// Mean level of the base, requests per minute.
    pub base: f64,
    /// Daily swing of the base, relative (0–0.9).
    pub daily_amplitude: f64,
    /// Hour of the daily high (0–24).
    pub daily_peak_hour: f64,
    /// Level on Saturdays and Sundays relative to weekdays (the first day is a Monday).
    pub weekend_factor: f64,
    /// Growth of the base per week, relative (−0.1 = 10% fewer requests a week later).
    pub trend_per_week: f64,
    /// Recurring bursts, if any.
    pub bursts: Option<Bursts>,
    /// Unannounced flash crowds.
    pub flash_crowds: FlashCrowds,
    /// Drops to zero that end at once.
    pub outages: Outages,
    /// Runs of missing rows per week (collection gaps, 1–10 rows each).
    pub gaps_per_week: f64,
    /// Noise around the level.
    pub noise: Noise,
}

/// Bursts at fixed minutes past some hours, on some days.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bursts {
    /// Minutes past the hour at which bursts are due (each below 60).
    pub minutes_past: Vec<u32>,
    /// Hours of the day (0–23) with bursts.
    pub hours: Vec<u32>,
    /// How the hours were chosen (`every hour`, `every 2nd hour`, `business hours`, ...).
    pub hour_rule: String,
    /// Days of the week (0 = Monday) with bursts.
    pub weekdays: Vec<u32>,
    /// A burst starts up to this many minutes early or late (uniform, 0–5).
    pub jitter: u32,
    /// Share of due bursts that do not come.
    pub skip: f64,
    /// Share of bursts followed by a second one `echo_delay` minutes later.
    pub echo: f64,
    /// Minutes from a burst to its echo.
    pub echo_delay: u32,
    /// Height as a multiple of the level at that moment.
    pub factor: f64,
    /// Minutes a burst lasts.
    pub length: u32,
}

/// Unannounced surges with decay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlashCrowds {
    /// Expected number per week (Poisson).
    pub per_week: f64,
    /// Lowest and highest height as a multiple of the level (each crowd draws its own).
    pub factor: (f64, f64),
    /// Minutes to reach the top.
    pub rise: u32,
    /// Time constant of the decay, minutes.
    pub decay: f64,
}

/// Traffic that drops to zero and returns at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outages {
    /// A daily drop: (minute of the day it starts, minutes it lasts).
    pub daily: Option<(u32, u32)>,
    /// Expected number of other drops per week (Poisson).
    pub per_week: f64,
    /// Lowest and highest length of those, minutes.
    pub length: (u32, u32),
}

/// Noise around the level of each minute.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Noise {
    /// Counts drawn from a Poisson distribution of the level.
    Poisson,
    /// The level times a log-normal factor of median 1.
    LogNormal {
        /// Standard deviation of the log.
        sigma: f64,
    },
    /// Poisson counts, and on a share of minutes a spike of a Pareto-distributed multiple.
    HeavyTailed {
        /// Share of minutes with a spike.
        share: f64,
        /// Tail index (smaller: heavier).
        alpha: f64,
    },
}

/// What [`Workload::generate`] produced, with the events it placed (for tests and plots).
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    /// Requests per minute; `None` for a missing row.
    pub counts: Vec<Option<f64>>,
    /// Burst slots due (on burst days and hours), before skips.
    pub due: usize,
    /// (due minute, actual start minute) of each burst that came, echoes not included.
    pub bursts: Vec<(usize, usize)>,
    /// Start minutes of echoes.
    pub echoes: Vec<usize>,
    /// Start minutes of flash crowds.
    pub flash_crowds: Vec<usize>,
    /// (start minute, minutes) of every drop to zero.
    pub outages: Vec<(usize, usize)>,
}

/// A drawn parameter kept to 4 decimals: readable in the JSON, and read back exactly.
fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// The seed of workload `index` of the suite drawn with `seed`.
fn member_seed(seed: u64, index: u32) -> u64 {
    // SplitMix64's increment keeps members of nearby suites apart.
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(u64::from(index).wrapping_mul(0xBF58_476D_1CE4_E5B9))
}

impl Workload {
    /// Workload `index` of the suite drawn with `seed`, `days` long, from the distributions
    /// in this module's table.
    pub fn draw(seed: u64, index: u32, days: u32) -> Workload {
        let mut rng = SmallRng::seed_from_u64(member_seed(seed, index));
        let r = &mut rng;
        let base = (50f64.ln() + r.random::<f64>() * (5000f64.ln() - 50f64.ln())).exp();
        let bursts = (r.random::<f64>() < 0.7).then(|| draw_bursts(r));
        let daily = (r.random::<f64>() < 0.3)
            .then(|| (r.random_range(0..DAY as u32), r.random_range(10..=40)));
        let noise = match r.random::<f64>() {
            x if x < 0.4 => Noise::Poisson,
            x if x < 0.8 => Noise::LogNormal {
                sigma: round4(r.random_range(0.03..0.25)),
            },
            _ => Noise::HeavyTailed {
                share: round4(r.random_range(0.005..0.03)),
                alpha: round4(r.random_range(1.5..3.0)),
            },
        };
        Workload {
            name: format!("w{index:03}"),
            seed: r.random(),
            days,
            base: (base * 10.0).round() / 10.0,
            daily_amplitude: round4(r.random_range(0.0..0.9)),
            daily_peak_hour: round4(r.random_range(0.0..24.0)),
            weekend_factor: round4(r.random_range(0.3..1.2)),
            trend_per_week: round4(r.random_range(-0.1..0.2)),
            bursts,
            flash_crowds: FlashCrowds {
                per_week: round4(r.random_range(0.0..1.5)),
                factor: (3.0, 8.0),
                rise: r.random_range(1..=5),
                decay: round4(r.random_range(10.0..120.0)),
            },
            outages: Outages {
                daily,
                per_week: if daily.is_some() {
                    0.0
                } else {
                    round4(r.random_range(0.0..1.0))
                },
                length: (5, 45),
            },
            gaps_per_week: round4(r.random_range(0.0..2.0)),
            noise,
        }
    }

    /// The workload's shape in a line, for tables (`bursts 3.2× 4 min at :15 every 2nd
    /// hour …; daily drop 25 min at 13:20; …`).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(b) = &self.bursts {
            let at: Vec<String> = b.minutes_past.iter().map(|m| format!(":{m:02}")).collect();
            let days = match b.weekdays.len() {
                7 => "every day".to_string(),
                5 if b.weekdays == [0, 1, 2, 3, 4] => "weekdays".to_string(),
                _ => format!("days {:?}", b.weekdays),
            };
            parts.push(format!(
                "bursts {:.1}× {} min at {} {}, {days}, jitter ±{}, skip {:.0}%, echo {:.0}%",
                b.factor,
                b.length,
                at.join(","),
                b.hour_rule,
                b.jitter,
                100.0 * b.skip,
                100.0 * b.echo
            ));
        }
        if let Some((at, len)) = self.outages.daily {
            parts.push(format!(
                "daily drop {len} min at {:02}:{:02}",
                at / 60,
                at % 60
            ));
        } else if self.outages.per_week > 0.0 {
            parts.push(format!("drops {:.1}/wk", self.outages.per_week));
        }
        if self.flash_crowds.per_week > 0.0 {
            parts.push(format!("flash crowds {:.1}/wk", self.flash_crowds.per_week));
        }
        parts.push(format!(
            "diurnal {:.2}, weekend {:.2}, trend {:+.0}%/wk",
            self.daily_amplitude,
            self.weekend_factor,
            100.0 * self.trend_per_week
        ));
        parts.push(match self.noise {
            Noise::Poisson => "poisson".into(),
            Noise::LogNormal { sigma } => format!("log-normal σ {sigma:.2}"),
            Noise::HeavyTailed { alpha, .. } => format!("heavy-tailed α {alpha:.1}"),
        });
        parts.join("; ")
    }

    /// Checks the values, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        let within = |name: &str, v: f64, lo: f64, hi: f64| {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "{}: `{name}` must be within {lo}–{hi}, got {v}",
                    self.name
                ))
            }
        };
        if self.days == 0 || self.days > 366 {
            return Err(format!(
                "{}: `days` must be 1–366, got {}",
                self.name, self.days
            ));
        }
        within("base", self.base, 1e-3, 1e9)?;
        within("daily_amplitude", self.daily_amplitude, 0.0, 1.0)?;
        within("daily_peak_hour", self.daily_peak_hour, 0.0, 24.0)?;
        within("weekend_factor", self.weekend_factor, 0.0, 10.0)?;
        within("trend_per_week", self.trend_per_week, -0.5, 1.0)?;
        within("gaps_per_week", self.gaps_per_week, 0.0, 100.0)?;
        within(
            "flash_crowds.per_week",
            self.flash_crowds.per_week,
            0.0,
            100.0,
        )?;
        within(
            "flash_crowds.factor.0",
            self.flash_crowds.factor.0,
            1.0,
            1000.0,
        )?;
        within(
            "flash_crowds.factor.1",
            self.flash_crowds.factor.1,
            self.flash_crowds.factor.0,
            1000.0,
        )?;
        within("flash_crowds.decay", self.flash_crowds.decay, 1.0, 10_000.0)?;
        within("outages.per_week", self.outages.per_week, 0.0, 100.0)?;
        if self.outages.length.0 == 0 || self.outages.length.0 > self.outages.length.1 {
            return Err(format!(
                "{}: `outages.length` must be (lo, hi) with 1 ≤ lo ≤ hi",
                self.name
            ));
        }
        if let Some((at, len)) = self.outages.daily {
            if at as usize >= DAY || len == 0 || len as usize >= DAY {
                return Err(format!(
                    "{}: `outages.daily` must be (minute of day < 1440, 1–1439 minutes)",
                    self.name
                ));
            }
        }
        match self.noise {
            Noise::Poisson => {}
            Noise::LogNormal { sigma } => within("noise.sigma", sigma, 0.0, 3.0)?,
            Noise::HeavyTailed { share, alpha } => {
                within("noise.share", share, 0.0, 1.0)?;
                within("noise.alpha", alpha, 0.5, 100.0)?;
            }
        }
        if let Some(b) = &self.bursts {
            if b.minutes_past.iter().any(|m| *m >= 60)
                || b.hours.iter().any(|h| *h >= 24)
                || b.weekdays.iter().any(|d| *d >= 7)
            {
                return Err(format!(
                    "{}: burst minutes must be < 60, hours < 24, weekdays < 7",
                    self.name
                ));
            }
            if b.length == 0 || b.length > 60 || b.jitter > 30 || b.echo_delay > 120 {
                return Err(format!(
                    "{}: burst `length` must be 1–60, `jitter` ≤ 30, `echo_delay` ≤ 120",
                    self.name
                ));
            }
            within("bursts.skip", b.skip, 0.0, 1.0)?;
            within("bursts.echo", b.echo, 0.0, 1.0)?;
            within("bursts.factor", b.factor, 0.0, 1000.0)?;
        }
        Ok(())
    }

    /// The level (before noise, bursts, crowds and outages) at minute `m` from the start.
    fn level(&self, m: usize) -> f64 {
        let hour = (m % DAY) as f64 / 60.0;
        let phase = std::f64::consts::TAU * (hour - self.daily_peak_hour + 6.0) / 24.0;
        let daily = 1.0 + self.daily_amplitude * phase.sin();
        let weekday = (m / DAY) % 7;
        let weekly = if weekday >= 5 {
            self.weekend_factor
        } else {
            1.0
        };
        let trend = (1.0 + self.trend_per_week * m as f64 / WEEK as f64).max(0.05);
        self.base * daily * weekly * trend
    }

    /// The workload's counts and the events it placed, deterministically from its seed.
    pub fn generate(&self) -> Generated {
        let minutes = self.days as usize * DAY;
        let mut rng = SmallRng::seed_from_u64(self.seed);
        let mut multiplier = vec![1.0f64; minutes];
        let mut out = Generated {
            counts: Vec::new(),
            due: 0,
            bursts: Vec::new(),
            echoes: Vec::new(),
            flash_crowds: Vec::new(),
            outages: Vec::new(),
        };
        if let Some(b) = &self.bursts {
            let raise = |start: i64, mult: &mut [f64]| {
                for m in start.max(0)..start + i64::from(b.length) {
                    if let Some(x) = mult.get_mut(m as usize) {
                        *x = x.max(b.factor);
                    }
                }
            };
            for hour_start in (0..minutes).step_by(60) {
                let hour = ((hour_start / 60) % 24) as u32;
                let weekday = ((hour_start / DAY) % 7) as u32;
                for &past in &b.minutes_past {
                    // Every slot draws alike, due or not, so one hour's series does not depend
                    // on which hours burst.
                    let (skip, shift, echo) = (
                        rng.random::<f64>(),
                        rng.random_range(0..=2 * b.jitter) as i64 - i64::from(b.jitter),
                        rng.random::<f64>(),
                    );
                    if !b.hours.contains(&hour) || !b.weekdays.contains(&weekday) {
                        continue;
                    }
                    out.due += 1;
                    if skip < b.skip {
                        continue;
                    }
                    let due = hour_start + past as usize;
                    let start = due as i64 + shift;
                    raise(start, &mut multiplier);
                    out.bursts.push((due, start.max(0) as usize));
                    if echo < b.echo {
                        let e = start + i64::from(b.echo_delay);
                        raise(e, &mut multiplier);
                        out.echoes.push(e.max(0) as usize);
                    }
                }
            }
        }
        let weeks = minutes as f64 / WEEK as f64;
        let count = |rng: &mut SmallRng, per_week: f64| -> u64 {
            let mean = per_week * weeks;
            if mean <= 0.0 {
                0
            } else {
                Poisson::new(mean).map_or(0, |p| p.sample(rng) as u64)
            }
        };
        let fc = &self.flash_crowds;
        for _ in 0..count(&mut rng, fc.per_week) {
            let start = rng.random_range(0..minutes);
            let height = rng.random_range(fc.factor.0..=fc.factor.1);
            out.flash_crowds.push(start);
            let rise = fc.rise.max(1) as usize;
            for (k, x) in multiplier[start..].iter_mut().enumerate() {
                let extra = if k < rise {
                    (height - 1.0) * (k + 1) as f64 / rise as f64
                } else {
                    (height - 1.0) * (-((k - rise) as f64) / fc.decay).exp()
                };
                if extra < 0.01 {
                    break;
                }
                *x += extra;
            }
        }
        let mut zero = vec![false; minutes];
        if let Some((at, len)) = self.outages.daily {
            for day in 0..self.days as usize {
                let s = day * DAY + at as usize;
                out.outages.push((s, len as usize));
            }
        }
        for _ in 0..count(&mut rng, self.outages.per_week) {
            let s = rng.random_range(0..minutes);
            let len = rng.random_range(self.outages.length.0..=self.outages.length.1);
            out.outages.push((s, len as usize));
        }
        out.outages.sort_unstable();
        for &(s, len) in &out.outages {
            for z in zero.iter_mut().skip(s).take(len) {
                *z = true;
            }
        }
        let mut counts: Vec<Option<f64>> = (0..minutes)
            .map(|m| {
                let level = self.level(m) * multiplier[m];
                let v = match self.noise {
                    Noise::Poisson => poisson(&mut rng, level),
                    Noise::LogNormal { sigma } => {
                        let f = LogNormal::new(0.0, sigma).map_or(1.0, |d| d.sample(&mut rng));
                        level * f
                    }
                    Noise::HeavyTailed { share, alpha } => {
                        let spike = rng.random::<f64>() < share;
                        let f = if spike {
                            Pareto::new(1.0, alpha)
                                .map_or(1.0, |d| d.sample(&mut rng))
                                .min(50.0)
                        } else {
                            1.0
                        };
                        poisson(&mut rng, level * f)
                    }
                };
                Some(if zero[m] { 0.0 } else { v.max(0.0).round() })
            })
            .collect();
        for _ in 0..count(&mut rng, self.gaps_per_week) {
            let s = rng.random_range(0..minutes);
            let len = rng.random_range(1..=10usize);
            for c in counts.iter_mut().skip(s).take(len) {
                *c = None;
            }
        }
        out.counts = counts;
        out
    }
}

/// A Poisson count of mean `mean` (its normal approximation for large means).
fn poisson(rng: &mut SmallRng, mean: f64) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    if mean > 1e6 {
        let n: f64 = rand_distr::StandardNormal.sample(rng);
        return mean + n * mean.sqrt();
    }
    Poisson::new(mean).map_or(mean, |p| p.sample(rng))
}

fn draw_bursts(r: &mut SmallRng) -> Bursts {
    let n = r.random_range(1..=3usize);
    let mut minutes_past: Vec<u32> = Vec::new();
    while minutes_past.len() < n {
        let m = r.random_range(0..60);
        if minutes_past
            .iter()
            .all(|x| x.abs_diff(m) >= 10 && x.abs_diff(m) <= 50)
        {
            minutes_past.push(m);
        }
    }
    minutes_past.sort_unstable();
    let (hour_rule, hours): (String, Vec<u32>) = match r.random_range(0..5) {
        0 => ("every hour".into(), (0..24).collect()),
        1 => {
            let o = r.random_range(0..2);
            (
                "every 2nd hour".into(),
                (0..24).filter(|h| h % 2 == o).collect(),
            )
        }
        2 => {
            let o = r.random_range(0..3);
            (
                "every 3rd hour".into(),
                (0..24).filter(|h| h % 3 == o).collect(),
            )
        }
        3 => ("business hours".into(), (9..=17).collect()),
        _ => {
            let mut hs: Vec<u32> = (0..24).filter(|_| r.random::<f64>() < 0.5).collect();
            if hs.is_empty() {
                hs.push(r.random_range(0..24));
            }
            ("a random half of the hours".into(), hs)
        }
    };
    let weekdays = match r.random_range(0..10) {
        0..=4 => (0..7).collect(),
        5..=7 => (0..5).collect(),
        _ => {
            let mut ds: Vec<u32> = (0..7).filter(|_| r.random::<f64>() < 0.6).collect();
            if ds.is_empty() {
                ds.push(r.random_range(0..7));
            }
            ds
        }
    };
    Bursts {
        minutes_past,
        hours,
        hour_rule,
        weekdays,
        jitter: r.random_range(0..=5),
        skip: round4(r.random_range(0.0..0.4)),
        echo: round4(r.random_range(0.0..0.3)),
        echo_delay: r.random_range(8..=12),
        factor: round4(r.random_range(2.0..6.0)),
        length: r.random_range(1..=10),
    }
}

#[cfg(test)]
mod tests;
