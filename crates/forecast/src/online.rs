//! Online use: new points are appended as they arrive, the model is retrained in the
//! background on the recent history, and the new model is swapped in when it is ready. The
//! forecasting path never waits for training.

use std::collections::VecDeque;
use std::thread::JoinHandle;

use crate::config::ForecastConfig;
use crate::lstm::{Lstm, ModelError};
use crate::model::Forecaster;
use crate::pipeline::Dataset;
use crate::series::{Feature, Series};

/// Retraining settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetrainPolicy {
    /// Retrain this often (seconds of data time).
    pub every_secs: i64,
    /// Keep at most this many recent steps as training history.
    pub max_history: usize,
}

/// Why the last background retraining did not produce a model.
#[derive(Clone, Debug, PartialEq)]
pub struct RetrainFailure {
    /// Data time when it was started.
    pub started_at: i64,
    /// The error.
    pub message: String,
}

/// An LSTM that keeps learning from live data.
pub struct OnlineLstm {
    model: Lstm,
    cfg: ForecastConfig,
    policy: RetrainPolicy,
    step: i64,
    feature_names: Vec<String>,
    history: VecDeque<(i64, f64, Vec<f64>)>,
    job: Option<(i64, JoinHandle<Result<Lstm, ModelError>>)>,
    last_start: Option<i64>,
    swaps: u64,
    last_failure: Option<RetrainFailure>,
}

impl OnlineLstm {
    /// Starts from a trained model; `cfg` is used for retraining.
    pub fn new(model: Lstm, cfg: ForecastConfig, policy: RetrainPolicy) -> OnlineLstm {
        let step = model.meta().step_secs;
        let feature_names = model
            .meta()
            .features
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        let mut cfg = cfg;
        cfg.lstm = model.meta().config.clone();
        OnlineLstm {
            model,
            cfg,
            policy,
            step,
            feature_names,
            history: VecDeque::new(),
            job: None,
            last_start: None,
            swaps: 0,
            last_failure: None,
        }
    }

    /// The model in use.
    pub fn model(&self) -> &Lstm {
        &self.model
    }

    /// How many retrained models have been swapped in.
    pub fn swaps(&self) -> u64 {
        self.swaps
    }

    /// Whether a retraining is running.
    pub fn retraining(&self) -> bool {
        self.job.is_some()
    }

    /// The last retraining failure, if any.
    pub fn last_failure(&self) -> Option<&RetrainFailure> {
        self.last_failure.as_ref()
    }

    /// Swaps in a finished retraining, if any; with `wait`, blocks until the running one ends.
    pub fn collect(&mut self, wait: bool) {
        let done = self
            .job
            .as_ref()
            .is_some_and(|(_, h)| wait || h.is_finished());
        if !done {
            return;
        }
        let (started_at, handle) = self.job.take().expect("checked");
        match handle.join() {
            Ok(Ok(mut model)) => {
                // Bring the new model's window up to date with the latest points.
                let seq = model.meta().config.seq_len;
                let skip = self.history.len().saturating_sub(seq);
                for (t, v, f) in self.history.iter().skip(skip) {
                    model.observe(*t, *v, f);
                }
                self.model = model;
                self.swaps += 1;
                self.last_failure = None;
            }
            Ok(Err(e)) => {
                self.last_failure = Some(RetrainFailure {
                    started_at,
                    message: e.to_string(),
                })
            }
            Err(_) => {
                self.last_failure = Some(RetrainFailure {
                    started_at,
                    message: "retraining thread panicked".into(),
                })
            }
        }
    }

    fn start_retraining(&mut self, now: i64) {
        let (start, _, _) = self.history[0];
        let mut series = Series {
            start,
            step: self.step,
            values: Vec::new(),
            features: self
                .feature_names
                .iter()
                .map(|n| Feature {
                    name: n.clone(),
                    values: Vec::new(),
                })
                .collect(),
        };
        for (t, v, f) in &self.history {
            let idx = ((t - start) / self.step) as usize;
            series.values.resize(idx, None);
            series.values.push(Some(*v));
            for (col, x) in series.features.iter_mut().zip(f) {
                col.values.resize(idx, None);
                col.values.push(Some(*x));
            }
        }
        let cfg = self.cfg.clone();
        let handle = std::thread::Builder::new()
            .name("foresight-retrain".into())
            .spawn(move || train_on(series, &cfg));
        match handle {
            Ok(h) => self.job = Some((now, h)),
            Err(e) => {
                self.last_failure = Some(RetrainFailure {
                    started_at: now,
                    message: format!("cannot start the retraining thread: {e}"),
                })
            }
        }
        self.last_start = Some(now);
    }
}

/// Trains a model with `cfg` on all of `series` (prepared as for retraining), without
/// progress output: what background training and retraining run.
pub fn train_on(series: Series, cfg: &ForecastConfig) -> Result<Lstm, ModelError> {
    Dataset::for_retraining(series, &cfg.data)?.train_lstm(&cfg.lstm, |_| {})
}

impl Forecaster for OnlineLstm {
    fn name(&self) -> String {
        "lstm-online".into()
    }

    fn observe(&mut self, time: i64, value: f64, features: &[f64]) {
        self.model.observe(time, value, features);
        if self.history.len() == self.policy.max_history.max(1) {
            self.history.pop_front();
        }
        self.history.push_back((time, value, features.to_vec()));
        self.collect(false);
        let due = self
            .last_start
            .is_none_or(|s| time - s >= self.policy.every_secs);
        if self.job.is_none() && due {
            if self.last_start.is_none() {
                // The first model is fresh: count the interval from the first point.
                self.last_start = Some(time);
            } else {
                self.start_retraining(time);
            }
        }
    }

    fn forecast(&mut self, horizon: usize) -> Option<Vec<f64>> {
        self.model.forecast(horizon)
    }

    fn history_needed(&self) -> usize {
        self.model.history_needed()
    }

    fn quantiles(&self) -> Vec<f64> {
        self.model.quantiles()
    }

    fn forecast_quantiles(&mut self, horizon: usize) -> Option<Vec<Vec<f64>>> {
        self.model.forecast_quantiles(horizon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lstm::LstmConfig;
    use crate::pipeline::PrepConfig;

    fn value(i: i64) -> f64 {
        100.0 + 50.0 * ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).sin()
    }

    #[test]
    fn retrains_in_the_background_and_swaps_without_stopping_forecasts() {
        let cfg = ForecastConfig {
            lstm: LstmConfig {
                hidden: 8,
                seq_len: 12,
                horizon: 3,
                epochs: 2,
                batch_size: 32,
                stride: 1,
                ..Default::default()
            },
            data: PrepConfig::default(),
            ..Default::default()
        };
        let t0 = 1_700_000_000 - 1_700_000_000 % 86_400;
        let first: Vec<f64> = (0..24 * 20).map(value).collect();
        let ds = Dataset::new(Series::from_values(t0, 3600, &first), &cfg.data).unwrap();
        let (tr, va) = ds.prepared(&cfg.lstm);
        let model = Lstm::train(
            &cfg.lstm,
            3600,
            ds.value_scaler,
            Vec::new(),
            &tr,
            &va,
            |_| {},
        )
        .unwrap();
        let mut online = OnlineLstm::new(
            model,
            cfg,
            RetrainPolicy {
                every_secs: 24 * 3600,
                max_history: 24 * 15,
            },
        );
        // Live points, at three times the level the model was trained on.
        let mut forecasts = 0;
        for i in 0..24 * 16 {
            let t = t0 + (24 * 20 + i) * 3600;
            online.observe(t, 3.0 * value(i), &[]);
            if online.forecast(3).is_some() {
                forecasts += 1;
            }
        }
        online.collect(true);
        assert!(online.swaps() >= 1, "failure: {:?}", online.last_failure());
        assert!(forecasts > 24 * 15, "forecasts stopped during retraining");
        // The swapped-in model was fitted to the new level.
        assert!(online.model().meta().value_scaler.unscale(1.0) > 400.0);
        assert!(online.forecast(3).is_some());
    }
}
