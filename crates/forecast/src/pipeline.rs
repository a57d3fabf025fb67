//! From a loaded series to training data: gap policy, chronological split, noise removal on
//! the training side, scalers, and the inputs of every model.

use serde::Serialize;

use crate::baselines::{MovingAverage, Persistence, SeasonalNaive};
use crate::holt_winters::HoltWinters;
use crate::lstm::{Lstm, LstmConfig, ModelError, Prepared, Progress};
use crate::model::Forecaster;
use crate::prep::{hampel, CleanReport, MinMax, Split};
use crate::seasonal_quantile::SeasonalQuantile;
use crate::series::{Series, SeriesError};

/// Data-preparation settings.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrepConfig {
    /// Gaps of at most this many steps are filled by interpolation; longer ones split the series.
    pub max_fill: usize,
    /// Hampel filter half window (steps); 0 (the default) turns noise removal off. Off because
    /// a capacity forecast must keep the spikes that recur: on a bursty trace the filter
    /// replaced 4% of the training points, precisely the recurring bursts, so the model never
    /// saw them (and the quantile head learns its upper quantiles from exactly those points).
    pub hampel_half_window: usize,
    /// Hampel filter threshold in robust standard deviations.
    pub hampel_sigmas: f64,
    /// Training share of the steps.
    pub train: f64,
    /// Validation share of the steps (the rest is the test part).
    pub validation: f64,
    /// Scale `ln(1 + value)` to 0–1 rather than the value itself (traffic that spans orders
    /// of magnitude, like WorldCup's match days, otherwise squeezes quiet days near 0).
    pub log_scale: bool,
}

impl Default for PrepConfig {
    fn default() -> Self {
        PrepConfig {
            max_fill: 15,
            hampel_half_window: 0,
            hampel_sigmas: 3.0,
            train: 0.70,
            validation: 0.15,
            log_scale: true,
        }
    }
}

/// What happened to the data on the way in.
#[derive(Clone, Debug, Serialize)]
pub struct DataReport {
    /// Steps from first to last.
    pub steps: usize,
    /// Steps with a value in the file.
    pub present: usize,
    /// Runs of missing steps found.
    pub gaps: usize,
    /// Steps filled by interpolation.
    pub filled: usize,
    /// Gaps left (longer than `max_fill`), as (start time, steps).
    pub long_gaps: Vec<(i64, usize)>,
    /// Noise removal on the training and validation parts.
    pub cleaned: CleanReport,
    /// The split.
    pub split: Split,
}

/// A gap-free stretch inside one part of the split.
#[derive(Clone, Debug)]
pub struct Piece {
    /// Unix time of the first step.
    pub start: i64,
    /// Global index of the first step.
    pub offset: usize,
    /// Values (cleaned on the training side, raw on the test side).
    pub values: Vec<f64>,
    /// Feature rows.
    pub features: Vec<Vec<f64>>,
}

/// A series ready for training and evaluation.
pub struct Dataset {
    /// The series after the gap policy.
    pub series: Series,
    /// Report.
    pub report: DataReport,
    /// Training stretches (cleaned).
    pub train: Vec<Piece>,
    /// Validation stretches (cleaned).
    pub val: Vec<Piece>,
    /// Training stretches, raw (for the baselines' fits).
    pub train_raw: Vec<Piece>,
    /// Scaler of the value, fitted on the cleaned training part.
    pub value_scaler: MinMax,
    /// Feature names and scalers.
    pub feature_scalers: Vec<(String, MinMax)>,
}

fn pieces(series: &Series, from: usize, to: usize) -> Vec<Piece> {
    let mut out = Vec::new();
    for seg in series.segments() {
        let s = seg.offset.max(from);
        let e = (seg.offset + seg.values.len()).min(to);
        if s >= e {
            continue;
        }
        let a = s - seg.offset;
        let b = e - seg.offset;
        out.push(Piece {
            start: series.time(s),
            offset: s,
            values: seg.values[a..b].to_vec(),
            features: if seg.features.is_empty() {
                Vec::new()
            } else {
                seg.features[a..b].to_vec()
            },
        });
    }
    out
}

impl Dataset {
    /// Applies the gap policy, splits, cleans the training side and fits scalers.
    pub fn new(series: Series, cfg: &PrepConfig) -> Result<Dataset, SeriesError> {
        Self::build(series, cfg, true)
    }

    /// For retraining on live data: everything is training and validation (the last
    /// `1 − cfg.train` share validates, for early stopping); there is no test part.
    pub fn for_retraining(series: Series, cfg: &PrepConfig) -> Result<Dataset, SeriesError> {
        Self::build(series, cfg, false)
    }

    fn build(
        mut series: Series,
        cfg: &PrepConfig,
        with_test: bool,
    ) -> Result<Dataset, SeriesError> {
        let steps = series.len();
        let present = series.present();
        let gaps = series.gaps().len();
        let filled = series.fill_gaps(cfg.max_fill);
        let long_gaps = series
            .gaps()
            .iter()
            .map(|g| (series.time(g.start), g.len))
            .collect();
        let split = if with_test {
            Split::new(steps, cfg.train, cfg.validation).map_err(SeriesError::TooShort)?
        } else {
            let train_end = (steps as f64 * cfg.train).round() as usize;
            Split {
                train_end,
                val_end: steps,
                len: steps,
            }
        };
        let mut cleaned = CleanReport::default();
        let mut clean = |mut ps: Vec<Piece>| {
            if cfg.hampel_half_window > 0 {
                for p in &mut ps {
                    let r = hampel(&mut p.values, cfg.hampel_half_window, cfg.hampel_sigmas);
                    cleaned.points += r.points;
                    cleaned.replaced += r.replaced;
                }
            }
            ps
        };
        let train_raw = pieces(&series, 0, split.train_end);
        let train = clean(train_raw.clone());
        let val = clean(pieces(&series, split.train_end, split.val_end));
        let test_points: usize = pieces(&series, split.val_end, steps)
            .iter()
            .map(|p| p.values.len())
            .sum();
        let train_points: usize = train.iter().map(|p| p.values.len()).sum();
        if train_points == 0 || (with_test && test_points == 0) || val.is_empty() {
            return Err(SeriesError::TooShort(format!(
                "series too short: {steps} steps give {train_points} training and {test_points} test points"
            )));
        }
        let value_scaler = MinMax::fit_with(
            train.iter().flat_map(|p| p.values.iter().copied()),
            cfg.log_scale,
        );
        let feature_scalers = series
            .features
            .iter()
            .enumerate()
            .map(|(k, f)| {
                (
                    f.name.clone(),
                    MinMax::fit(
                        train
                            .iter()
                            .flat_map(|p| p.features.iter().map(move |r| r[k])),
                    ),
                )
            })
            .collect();
        Ok(Dataset {
            report: DataReport {
                steps,
                present,
                gaps,
                filled,
                long_gaps,
                cleaned,
                split,
            },
            series,
            train,
            val,
            train_raw,
            value_scaler,
            feature_scalers,
        })
    }

    /// Feature column names.
    pub fn feature_names(&self) -> Vec<String> {
        self.feature_scalers
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Steps in a day at this series' step.
    pub fn day(&self) -> usize {
        (86_400 / self.series.step).max(1) as usize
    }

    /// The LSTM's inputs for the training and validation parts.
    pub fn prepared(&self, cfg: &LstmConfig) -> (Vec<Prepared>, Vec<Prepared>) {
        let scalers: Vec<MinMax> = self.feature_scalers.iter().map(|(_, s)| *s).collect();
        let prep = |ps: &[Piece]| {
            ps.iter()
                .map(|p| {
                    Prepared::new(
                        cfg,
                        &self.value_scaler,
                        &scalers,
                        p.start,
                        self.series.step,
                        &p.values,
                        &p.features,
                    )
                })
                .collect::<Vec<_>>()
        };
        // Validation windows may start in the training part: join a validation piece that
        // continues a training piece so its first windows have their history.
        let mut val_joined: Vec<Piece> = Vec::new();
        for v in &self.val {
            let prev = self
                .train
                .iter()
                .find(|t| t.offset + t.values.len() == v.offset);
            match prev {
                Some(t) => {
                    let keep = cfg.seq_len.min(t.values.len());
                    let cut = t.values.len() - keep;
                    let mut values = t.values[cut..].to_vec();
                    values.extend_from_slice(&v.values);
                    let mut features = if t.features.is_empty() {
                        Vec::new()
                    } else {
                        t.features[cut..].to_vec()
                    };
                    features.extend_from_slice(&v.features);
                    val_joined.push(Piece {
                        start: t.start + cut as i64 * self.series.step,
                        offset: t.offset + cut,
                        values,
                        features,
                    });
                }
                None => val_joined.push(v.clone()),
            }
        }
        (prep(&self.train), prep(&val_joined))
    }

    /// Trains the LSTM on the training part, keeping the weights of the best validation
    /// loss, with `progress` called after every batch: the one way every caller (`foresight
    /// train`, the experiment, background training in the live loop) trains a model.
    pub fn train_lstm(
        &self,
        cfg: &LstmConfig,
        progress: impl FnMut(Progress),
    ) -> Result<Lstm, ModelError> {
        let (train, val) = self.prepared(cfg);
        Lstm::train(
            cfg,
            self.series.step,
            self.value_scaler,
            self.feature_scalers.clone(),
            &train,
            &val,
            progress,
        )
    }

    /// Holt-Winters with a daily season, fitted on the raw training part for `horizon`.
    pub fn holt_winters(&self, horizon: usize) -> HoltWinters {
        let parts: Vec<(i64, &[f64])> = self
            .train_raw
            .iter()
            .map(|p| (p.start, p.values.as_slice()))
            .collect();
        HoltWinters::fit(self.series.step, self.day(), horizon, &parts)
    }

    /// The moving-average window (among 5, 10, 15, 30, 60 steps) with the lowest error
    /// `horizon` steps ahead on the validation part.
    pub fn moving_average(&self, horizon: usize) -> (usize, MovingAverage) {
        let mut best = (f64::INFINITY, 15);
        for w in [5, 10, 15, 30, 60] {
            let mut m = MovingAverage::new(self.series.step, w);
            let (mut sum, mut n) = (0.0, 0usize);
            for p in &pieces(
                &self.series,
                self.report.split.train_end,
                self.report.split.val_end,
            ) {
                for (i, v) in p.values.iter().enumerate() {
                    m.observe(p.start + i as i64 * self.series.step, *v, &[]);
                    if let (Some(f), Some(a)) = (m.forecast(horizon), p.values.get(i + horizon)) {
                        sum += (f[horizon - 1] - a).abs();
                        n += 1;
                    }
                }
            }
            let e = sum / n.max(1) as f64;
            if e < best.0 {
                best = (e, w);
            }
        }
        (best.1, MovingAverage::new(self.series.step, best.1))
    }
}

impl Dataset {
    /// Every baseline, fitted on the training part (moving average tuned on validation), each
    /// with the seconds its fit took: persistence, seasonal naive (daily and, when a week of
    /// history precedes the test part, weekly), moving average, Holt-Winters.
    pub fn baselines(&self, horizon: usize) -> Vec<(Box<dyn Forecaster>, f64)> {
        let step = self.series.step;
        let day = self.day();
        let timed = |f: &dyn Fn() -> Box<dyn Forecaster>| {
            let t = std::time::Instant::now();
            let m = f();
            (m, t.elapsed().as_secs_f64())
        };
        let mut out = vec![
            timed(&|| Box::new(Persistence::new())),
            timed(&|| Box::new(SeasonalNaive::new("seasonal-naive", step, day))),
            // A week of days per slot at the 0.95 quantile: the defaults of the live loop.
            timed(&|| Box::new(SeasonalQuantile::new(step, day, 7, 0.95))),
        ];
        if self.has_history_for(7 * day) {
            out.push(timed(&|| {
                Box::new(SeasonalNaive::new("seasonal-naive-weekly", step, 7 * day))
            }));
        }
        out.push(timed(&|| Box::new(self.moving_average(horizon).1)));
        out.push(timed(&|| Box::new(self.holt_winters(horizon))));
        out
    }

    /// Whether the gap-free stretch that reaches the test part has at least `steps` steps of
    /// history before it (a season-`steps` baseline can forecast from the first test point).
    pub fn has_history_for(&self, steps: usize) -> bool {
        let start = self.report.split.val_end;
        self.series
            .segments()
            .iter()
            .any(|s| s.offset + steps <= start && s.offset + s.values.len() > start)
    }
}

impl From<SeriesError> for ModelError {
    fn from(e: SeriesError) -> Self {
        ModelError::Invalid(e.to_string())
    }
}
