//! The LSTM in the live loop: loaded from a file or trained at start from history (in a
//! background thread: the loop scales reactively until the model is ready), then optionally
//! retrained periodically on live data and swapped in ([`OnlineLstm`]).

use std::collections::VecDeque;
use std::thread::JoinHandle;

use foresight_forecast::{
    ForecastConfig, Forecaster, Lstm, ModelError, OnlineLstm, RetrainPolicy, Series,
};

/// Where the model is in its life.
pub enum Learner {
    /// Training on the history; live points wait here.
    Training {
        /// The training thread.
        job: Option<JoinHandle<Result<Lstm, ModelError>>>,
        /// Live points seen meanwhile.
        pending: VecDeque<(i64, f64)>,
        /// Settings for the model once trained.
        cfg: Box<ForecastConfig>,
        /// Retraining (`None`: never).
        policy: Option<RetrainPolicy>,
    },
    /// A model from a file, not retrained.
    Fixed(Box<Lstm>),
    /// Retrained periodically.
    Online(Box<OnlineLstm>),
    /// Training failed; no forecasts (the policies fall back to reactive rules).
    Failed(String),
}

impl Learner {
    /// Starts training on `history` in a background thread.
    pub fn train(history: Series, cfg: ForecastConfig, policy: Option<RetrainPolicy>) -> Learner {
        let c = cfg.clone();
        let job = std::thread::Builder::new()
            .name("foresight-train".into())
            .spawn(move || foresight_forecast::online::train_on(history, &c));
        match job {
            Ok(h) => Learner::Training {
                job: Some(h),
                pending: VecDeque::new(),
                cfg: Box::new(cfg),
                policy,
            },
            Err(e) => Learner::Failed(format!("cannot start the training thread: {e}")),
        }
    }

    /// A loaded model, retrained per `policy` when given.
    pub fn loaded(model: Lstm, cfg: ForecastConfig, policy: Option<RetrainPolicy>) -> Learner {
        match policy {
            Some(p) => Learner::Online(Box::new(OnlineLstm::new(model, cfg, p))),
            None => Learner::Fixed(Box::new(model)),
        }
    }

    /// The longest forecast the model gives (0 while training).
    pub fn horizon(&self) -> usize {
        match self {
            Learner::Training { cfg, .. } => cfg.lstm.horizon,
            Learner::Fixed(m) => m.meta().config.horizon,
            Learner::Online(m) => m.model().meta().config.horizon,
            Learner::Failed(_) => 0,
        }
    }

    fn finish_training(&mut self) {
        let Learner::Training {
            job,
            pending,
            cfg,
            policy,
        } = self
        else {
            return;
        };
        if !job.as_ref().is_some_and(|h| h.is_finished()) {
            return;
        }
        let result = job.take().expect("checked").join();
        *self = match result {
            Ok(Ok(mut model)) => {
                for (t, v) in pending.iter() {
                    model.observe(*t, *v, &[]);
                }
                tracing::info!(points = pending.len(), "model trained at start is ready");
                Learner::loaded(model, (**cfg).clone(), *policy)
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "training at start failed; scaling reactively");
                Learner::Failed(e.to_string())
            }
            Err(_) => Learner::Failed("the training thread panicked".into()),
        };
    }
}

impl Forecaster for Learner {
    fn name(&self) -> String {
        match self {
            Learner::Training { pending, .. } => {
                format!(
                    "lstm (training at start; {} live points waiting)",
                    pending.len()
                )
            }
            Learner::Fixed(_) => "lstm".into(),
            Learner::Online(m) => match m.last_failure() {
                None => format!("lstm (retrained {} times)", m.swaps()),
                Some(f) => format!(
                    "lstm (retrained {} times; last retraining failed: {})",
                    m.swaps(),
                    f.message
                ),
            },
            Learner::Failed(e) => format!("unavailable: {e}"),
        }
    }

    fn observe(&mut self, time: i64, value: f64, features: &[f64]) {
        match self {
            Learner::Training { pending, .. } => {
                if pending.len() == 100_000 {
                    pending.pop_front();
                }
                pending.push_back((time, value));
            }
            Learner::Fixed(m) => m.observe(time, value, features),
            Learner::Online(m) => m.observe(time, value, features),
            Learner::Failed(_) => {}
        }
        self.finish_training();
    }

    fn forecast(&mut self, horizon: usize) -> Option<Vec<f64>> {
        match self {
            Learner::Fixed(m) => m.forecast(horizon),
            Learner::Online(m) => m.forecast(horizon),
            _ => None,
        }
    }

    fn history_needed(&self) -> usize {
        match self {
            Learner::Training { cfg, .. } => cfg.lstm.seq_len,
            Learner::Fixed(m) => m.history_needed(),
            Learner::Online(m) => m.history_needed(),
            Learner::Failed(_) => 1,
        }
    }

    fn quantiles(&self) -> Vec<f64> {
        match self {
            Learner::Fixed(m) => m.quantiles(),
            Learner::Online(m) => m.quantiles(),
            _ => Vec::new(),
        }
    }

    fn forecast_quantiles(&mut self, horizon: usize) -> Option<Vec<Vec<f64>>> {
        match self {
            Learner::Fixed(m) => m.forecast_quantiles(horizon),
            Learner::Online(m) => m.forecast_quantiles(horizon),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> ForecastConfig {
        let mut cfg = ForecastConfig::default();
        cfg.lstm.hidden = 8;
        cfg.lstm.seq_len = 12;
        cfg.lstm.horizon = 4;
        cfg.lstm.epochs = 1;
        cfg
    }

    fn series(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| 100.0 + 50.0 * (i as f64 * std::f64::consts::TAU / 120.0).sin())
            .collect()
    }

    #[test]
    fn trains_at_start_then_forecasts_and_retrains() {
        let values = series(1500);
        let history = Series::from_values(1_700_000_000, 60, &values);
        let policy = RetrainPolicy {
            every_secs: 60 * 200,
            max_history: 2000,
        };
        let mut l = Learner::train(history, small(), Some(policy));
        assert!(
            l.name().starts_with("lstm (training at start"),
            "{}",
            l.name()
        );
        assert_eq!(l.forecast(4), None, "no forecast while training");
        let mut t = 1_700_000_000 + 1500 * 60;
        let mut i = 1500;
        let started = std::time::Instant::now();
        while matches!(l, Learner::Training { .. }) {
            assert!(started.elapsed().as_secs() < 120, "training never finished");
            l.observe(
                t,
                100.0 + 50.0 * (i as f64 * std::f64::consts::TAU / 120.0).sin(),
                &[],
            );
            t += 60;
            i += 1;
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(matches!(l, Learner::Online(_)), "{}", l.name());
        // The model needs a full input window of live points (history seen during training
        // is replayed too, when the loop warmed it).
        for _ in 0..12 {
            l.observe(
                t,
                100.0 + 50.0 * (i as f64 * std::f64::consts::TAU / 120.0).sin(),
                &[],
            );
            t += 60;
            i += 1;
        }
        let f = l.forecast(4).expect("a forecast once trained");
        assert_eq!(f.len(), 4);
        assert!(f.iter().all(|v| v.is_finite() && *v > 0.0), "{f:?}");
        // Feed 200+ more steps: a retraining starts, finishes and is swapped in.
        let started = std::time::Instant::now();
        while !l.name().starts_with("lstm (retrained 1") {
            assert!(
                started.elapsed().as_secs() < 120,
                "never retrained: {}",
                l.name()
            );
            l.observe(
                t,
                100.0 + 50.0 * (i as f64 * std::f64::consts::TAU / 120.0).sin(),
                &[],
            );
            t += 60;
            i += 1;
            if i % 50 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }

    #[test]
    fn a_failed_model_gives_no_forecast_and_says_why() {
        let mut l = Learner::Failed("cannot load /x: no such file".into());
        l.observe(0, 1.0, &[]);
        assert_eq!(l.forecast(3), None);
        assert_eq!(l.name(), "unavailable: cannot load /x: no such file");
    }
}
