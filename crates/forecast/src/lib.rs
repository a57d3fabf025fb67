//! Traffic forecasting: series loading and cleaning, the paper's LSTM (trained with candle),
//! honest baselines behind the same [`Forecaster`] trait, evaluation (MAE, RMSE, MSE, sMAPE,
//! MASE) and residual-based anomaly detection.
//!
//! Everything is time-injected and seeded, so the evaluation, the simulator and the live control
//! loop drive the same objects.
//!
//! # Layout
//! - [`series`], [`prep`], [`pipeline`]: loading, cleaning, splitting and scaling a series into
//!   a [`Dataset`] (which trains the LSTM: [`Dataset::train_lstm`])
//! - [`model`]: the [`Forecaster`] trait; [`lstm`]: the LSTM (candle); [`online`]: retraining
//! - [`baselines`], [`holt_winters`], [`seasonal_quantile`]: the other forecasters;
//!   [`envelope`]: the highest plan of several; [`memo`]: one forecaster's answers shared by
//!   copies fed the same steps
//! - [`eval`]: scores (MAE … pinball, coverage); [`anomaly`]: the residual-based detector
//! - [`config`]: the settings file of `foresight train`/`forecast`
#![forbid(unsafe_code)]

pub mod anomaly;
pub mod baselines;
pub mod config;
pub mod envelope;
pub mod eval;
pub mod holt_winters;
pub mod lstm;
pub mod memo;
pub mod model;
pub mod online;
pub mod pipeline;
pub mod prep;
pub mod seasonal_quantile;
/// The series type, shared with the simulator and the load generator.
pub use foresight_workload::series;

pub use anomaly::{AnomalyConfig, Detector};
pub use baselines::{MovingAverage, Persistence, SeasonalNaive};
pub use config::ForecastConfig;
pub use envelope::{plan_curve, Envelope};
pub use eval::{evaluate, Evaluation, Score};
pub use holt_winters::HoltWinters;
pub use lstm::{Lstm, LstmConfig, ModelError};
pub use memo::{Memo, Memoised};
pub use model::{Candidate, Forecaster};
pub use online::{OnlineLstm, RetrainPolicy};
pub use pipeline::{Dataset, PrepConfig};
pub use seasonal_quantile::SeasonalQuantile;
pub use series::{Aggregate, Series, SeriesError};

/// candle's CPU matmul asks for its thread count on every call and, without `RAYON_NUM_THREADS`,
/// re-reads `/proc/cpuinfo` each time (12× slower inference, measured). Call this at program
/// start, before any other thread exists: it pins the ML work to one thread (the small LSTM
/// gains nothing from a second one, and the proxy keeps the other core).
#[allow(clippy::disallowed_methods)]
pub fn init_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY of intent: called first thing in main, while the process is single-threaded.
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
}
