//! Forecasters fitted on a trace's training part (and their settings chosen on its validation
//! part), once, then copied for every run that plans with them: what the experiment does
//! before it replays the test part. `auto` fits every candidate and keeps the one (or the
//! upper envelope of the best two) that plans best on the validation part.

use foresight_forecast::lstm::Progress;
use foresight_forecast::{Dataset, Envelope, ForecastConfig, Forecaster, HoltWinters, Lstm, Memo};
use std::sync::Arc;

use crate::select::{score, Planning, Score};
use crate::ForecasterSpec;

/// A forecaster fitted on data, ready to be copied.
#[derive(Clone)]
pub enum Fitted {
    /// The LSTM trained on the training part (best validation loss).
    Lstm(Box<Lstm>),
    /// Holt-Winters with a daily season.
    HoltWinters(HoltWinters),
    /// A forecaster that needs no training, with its settings chosen on the data (the
    /// moving average's window, the season of a day of this series' steps).
    Simple(ForecasterSpec),
    /// The step-wise highest plan of several, at the planning quantile.
    Envelope(Vec<Fitted>, f64),
    /// `auto`'s choice, with every candidate's score on the validation part (best first).
    Chosen {
        /// What plans.
        choice: Box<Fitted>,
        /// Its name (`seasonal-quantile-hour`, `max(lstm, holt-winters)`, ...).
        name: String,
        /// Every candidate's score, best first.
        scores: Vec<Score>,
    },
    /// Copies that share one forecaster's answers while fed the same steps ([`Memo`]).
    Memo {
        /// What forecasts.
        inner: Box<Fitted>,
        /// The answers so far, for copies of steps of `step` seconds.
        memo: Arc<Memo>,
        /// The step the memo's forecasters were made for.
        step: i64,
    },
}

/// Seasons of `auto`'s seasonal-quantile candidates: (name, steps per season at one-minute
/// steps, seasons remembered). The hour sees bursts at fixed minutes past the hour over the
/// last day; the day, a daily slot over the last week; the week, a weekly slot over 3 weeks.
const SEASONAL_CANDIDATES: [(&str, usize, usize); 3] = [
    ("seasonal-quantile-hour", 60, 24),
    ("seasonal-quantile-day", 1440, 7),
    ("seasonal-quantile-week", 10_080, 3),
];

/// The quantile the seasonal-quantile candidates keep per slot (its default).
const SLOT_QUANTILE: f64 = 0.95;

/// Steps of history before the scored stretch fed to each candidate (8 days: a week-long
/// season's first repeat, Holt-Winters' two daily seasons).
const WARM_DAYS: usize = 8;

impl Fitted {
    /// Fits `spec` on `ds`: the LSTM with `cfg.lstm` (`progress` after every batch), the
    /// others for `cfg.lstm.horizon` steps ahead; `auto` scores the candidates planning as
    /// `plan` says on the validation part.
    pub fn fit(
        spec: ForecasterSpec,
        ds: &Dataset,
        cfg: &ForecastConfig,
        plan: &Planning,
        progress: impl FnMut(Progress),
    ) -> Result<Fitted, String> {
        let horizon = cfg.lstm.horizon;
        Ok(match spec {
            ForecasterSpec::Lstm => Fitted::Lstm(Box::new(
                ds.train_lstm(&cfg.lstm, progress)
                    .map_err(|e| e.to_string())?,
            )),
            ForecasterSpec::HoltWinters => Fitted::HoltWinters(ds.holt_winters(horizon)),
            ForecasterSpec::MovingAverage { .. } => Fitted::Simple(ForecasterSpec::MovingAverage {
                window: ds.moving_average(horizon).0,
            }),
            ForecasterSpec::SeasonalNaive { .. } => {
                Fitted::Simple(ForecasterSpec::SeasonalNaive { season: ds.day() })
            }
            ForecasterSpec::SeasonalQuantile {
                seasons, quantile, ..
            } => Fitted::Simple(ForecasterSpec::SeasonalQuantile {
                season: ds.day(),
                seasons,
                quantile,
            }),
            ForecasterSpec::Persistence => Fitted::Simple(spec),
            ForecasterSpec::Auto => Fitted::choose(ds, cfg, plan, None, progress)?,
            ForecasterSpec::None => return Err("`none` is no forecaster to fit".into()),
        })
    }

    /// `auto`: every candidate fitted and scored on the longest gap-free stretch of the
    /// validation part; the upper envelope of the best two is scored too; the best plans.
    /// The LSTM candidate is `lstm` when given (a model from a file), else trained on the
    /// training part.
    pub fn choose(
        ds: &Dataset,
        cfg: &ForecastConfig,
        plan: &Planning,
        lstm: Option<Lstm>,
        progress: impl FnMut(Progress),
    ) -> Result<Fitted, String> {
        let step = ds.series.step;
        let per_minute = (60 / step).max(1) as usize;
        let lstm = match lstm {
            Some(m) => m,
            None => ds
                .train_lstm(&cfg.lstm, progress)
                .map_err(|e| e.to_string())?,
        };
        let mut candidates: Vec<(String, Fitted)> =
            vec![("lstm".into(), Fitted::Lstm(Box::new(lstm)))];
        for (name, season, seasons) in SEASONAL_CANDIDATES {
            candidates.push((
                name.into(),
                Fitted::Simple(ForecasterSpec::SeasonalQuantile {
                    season: season * per_minute,
                    seasons,
                    quantile: SLOT_QUANTILE,
                }),
            ));
        }
        let horizon = cfg.lstm.horizon;
        candidates.push((
            "holt-winters".into(),
            Fitted::HoltWinters(ds.holt_winters(horizon)),
        ));
        candidates.push((
            "moving-average".into(),
            Fitted::Simple(ForecasterSpec::MovingAverage {
                window: ds.moving_average(horizon).0,
            }),
        ));
        let (warm, values, start) = validation_stretch(ds).ok_or(
            "auto: the validation part has no gap-free stretch to score the candidates on",
        )?;
        let run = |name: &str, f: &Fitted| {
            let mut inst = f.instance(step);
            for (t, v) in &warm {
                inst.observe(*t, *v, &[]);
            }
            score(name, inst, &values, start, step, plan)
        };
        let mut scored: Vec<(Score, Fitted)> = candidates
            .into_iter()
            .map(|(name, f)| (run(&name, &f), f))
            .collect();
        scored.sort_by(|a, b| a.0.pinball.total_cmp(&b.0.pinball));
        let envelope = Fitted::Envelope(
            vec![scored[0].1.clone(), scored[1].1.clone()],
            plan.quantile,
        );
        let name = format!("max({}, {})", scored[0].0.name, scored[1].0.name);
        let s = run(&name, &envelope);
        scored.push((s, envelope));
        scored.sort_by(|a, b| a.0.pinball.total_cmp(&b.0.pinball));
        let scores = scored.iter().map(|(s, _)| s.clone()).collect();
        let (best, choice) = scored.swap_remove(0);
        Ok(Fitted::Chosen {
            choice: Box::new(choice),
            name: best.name,
            scores,
        })
    }

    /// A fresh copy, for steps of `step` seconds, that has observed nothing since fitting.
    pub fn instance(&self, step: i64) -> Box<dyn Forecaster + Send> {
        match self {
            Fitted::Lstm(m) => Box::new((**m).clone()),
            Fitted::HoltWinters(m) => Box::new(m.clone()),
            Fitted::Simple(spec) => spec
                .build_simple(step)
                .expect("fit keeps only forecasters that need no training in Simple"),
            Fitted::Envelope(members, q) => Box::new(Envelope::new(
                members.iter().map(|m| m.instance(step)).collect(),
                *q,
            )),
            Fitted::Chosen { choice, .. } => choice.instance(step),
            Fitted::Memo {
                inner,
                memo,
                step: s,
            } if *s == step => Box::new(memo.handle(inner.instance(step))),
            Fitted::Memo { inner, .. } => inner.instance(step),
        }
    }

    /// The same forecaster, its copies for steps of `step` seconds sharing their answers while
    /// they are fed the same steps: for the runs that replay one stretch of a trace under
    /// different policies, which would otherwise each compute the same forecasts (see
    /// [`Memo`]). Its copies answer exactly as [`Fitted::instance`]'s would.
    pub fn memoised(&self, step: i64) -> Fitted {
        let inner = match self {
            Fitted::Memo { inner, .. } => inner.clone(),
            other => Box::new(other.clone()),
        };
        Fitted::Memo {
            inner,
            memo: Memo::new(),
            step,
        }
    }

    /// What `auto` chose and every candidate's score; `None` for a named forecaster.
    pub fn choice(&self) -> Option<(&str, &[Score])> {
        match self {
            Fitted::Chosen { name, scores, .. } => Some((name, scores)),
            Fitted::Memo { inner, .. } => inner.choice(),
            _ => None,
        }
    }
}

/// The longest gap-free stretch of the validation part, with the (time, value) steps of the
/// same stretch before it (at most [`WARM_DAYS`]) and its first step's time.
#[allow(clippy::type_complexity)]
fn validation_stretch(ds: &Dataset) -> Option<(Vec<(i64, f64)>, Vec<f64>, i64)> {
    let split = ds.report.split;
    let seg = ds
        .series
        .segments()
        .into_iter()
        .filter(|s| s.offset < split.val_end && s.offset + s.values.len() > split.train_end)
        .max_by_key(|s| {
            (s.offset + s.values.len()).min(split.val_end) - s.offset.max(split.train_end)
        })?;
    let from = split.train_end.max(seg.offset) - seg.offset;
    let to = split.val_end.min(seg.offset + seg.values.len()) - seg.offset;
    let warm_from = from.saturating_sub(WARM_DAYS * ds.day());
    let warm = (warm_from..from)
        .map(|i| (seg.start + i as i64 * ds.series.step, seg.values[i]))
        .collect();
    let start = seg.start + from as i64 * ds.series.step;
    (to > from).then(|| (warm, seg.values[from..to].to_vec(), start))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use foresight_forecast::{PrepConfig, Series};

    /// Ten days of a flat 100 per minute with a burst of 600 every hour: at minute 40 for the
    /// first week (the training part), at minute 10 from then on. Only the model that keeps
    /// the last day's minutes of the hour plans for the bursts of the validation part; the
    /// daily and weekly slots still remember minute 40.
    fn hourly_bursts() -> Dataset {
        let values: Vec<f64> = (0..10 * 1440)
            .map(|i| {
                let at = if i < 7 * 1440 { 40 } else { 10 };
                if i % 60 == at {
                    600.0
                } else {
                    100.0 + (i % 7) as f64
                }
            })
            .collect();
        let series = Series::from_values(1_700_000_000 / 3600 * 3600, 60, &values);
        Dataset::new(series, &PrepConfig::default()).unwrap()
    }

    /// A one-epoch LSTM of 4 units over 12 steps, planning 3 steps ahead at 0.95: the
    /// smallest `auto` that still trains (the chooser's tests use it too).
    pub(crate) fn tiny() -> (ForecastConfig, Planning) {
        let mut cfg = ForecastConfig::default();
        cfg.lstm.hidden = 4;
        cfg.lstm.epochs = 1;
        cfg.lstm.seq_len = 12;
        cfg.lstm.horizon = 6;
        let plan = Planning {
            lead_steps: 3,
            margin_steps: 2,
            quantile: 0.95,
            horizon: 6,
        };
        (cfg, plan)
    }

    #[test]
    fn auto_chooses_on_validation_what_sees_the_hourly_burst_and_says_why() {
        let ds = hourly_bursts();
        let (cfg, plan) = tiny();
        let f = Fitted::fit(ForecasterSpec::Auto, &ds, &cfg, &plan, |_| {}).unwrap();
        let (chosen, scores) = f.choice().expect("auto says what it chose");
        assert!(
            chosen.contains("seasonal-quantile-hour"),
            "{chosen}: {scores:?}"
        );
        // Every candidate and the envelope of the best two, best first.
        assert_eq!(scores.len(), 7, "{scores:?}");
        assert!(scores.windows(2).all(|w| w[0].pinball <= w[1].pinball));
        assert_eq!(scores[0].name, chosen);
        let ma = scores.iter().find(|s| s.name == "moving-average").unwrap();
        assert!(ma.pinball > 2.0 * scores[0].pinball, "{scores:?}");
        // The copy plans like the choice: fed a day with bursts at minute 10, it forecasts them.
        let mut inst = f.instance(60);
        let start = ds.series.start;
        for i in 8 * 1440..9 * 1440 {
            inst.observe(start + i * 60, ds.series.values[i as usize].unwrap(), &[]);
        }
        let fc = inst.forecast(60).unwrap();
        // The next step is minute 0 of an hour: the burst is 10 steps ahead.
        assert!(fc[10] > 500.0 && fc[20] < 200.0, "{fc:?}");
        assert!(Fitted::fit(ForecasterSpec::None, &ds, &cfg, &plan, |_| {}).is_err());
    }

    #[test]
    fn memoised_copies_answer_as_fresh_copies_do() {
        let ds = hourly_bursts();
        let (cfg, plan) = tiny();
        let f = Fitted::fit(ForecasterSpec::Lstm, &ds, &cfg, &plan, |_| {}).unwrap();
        let m = f.memoised(60);
        let start = ds.series.start;
        // A fresh copy, two memoised copies fed the same steps, one fed other steps from the
        // 30th on: all four answer as fresh copies fed their steps would.
        let drive = |inst: &mut Box<dyn Forecaster + Send>, bump: f64| {
            (0..60)
                .map(|i| {
                    let v = ds.series.values[i].unwrap() + if i >= 30 { bump } else { 0.0 };
                    inst.observe(start + i as i64 * 60, v, &[]);
                    (inst.forecast(6), inst.forecast_quantiles(4))
                })
                .collect::<Vec<_>>()
        };
        let want = drive(&mut f.instance(60), 0.0);
        assert!(want[59].0.is_some() && want[59].1.is_some());
        assert_eq!(drive(&mut m.instance(60), 0.0), want);
        assert_eq!(drive(&mut m.instance(60), 0.0), want);
        let other = drive(&mut f.instance(60), 50.0);
        assert_ne!(other, want);
        assert_eq!(drive(&mut m.instance(60), 50.0), other);
        assert_eq!(m.choice(), f.choice());
    }
}
