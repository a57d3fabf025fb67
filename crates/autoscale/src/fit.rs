//! Forecasters fitted on a trace's training part (and their settings chosen on its validation
//! part), once, then copied for every run that plans with them: what the experiment does
//! before it replays the test part.

use foresight_forecast::lstm::Progress;
use foresight_forecast::{Dataset, ForecastConfig, Forecaster, HoltWinters, Lstm};

use crate::ForecasterSpec;

/// A forecaster fitted on data, ready to be copied.
pub enum Fitted {
    /// The LSTM trained on the training part (best validation loss).
    Lstm(Box<Lstm>),
    /// Holt-Winters with a daily season.
    HoltWinters(HoltWinters),
    /// A forecaster that needs no training, with its settings chosen on the data (the
    /// moving average's window, the season of a day of this series' steps).
    Simple(ForecasterSpec),
}

impl Fitted {
    /// Fits `spec` on `ds`: the LSTM with `cfg.lstm` (`progress` after every batch), the
    /// others for `cfg.lstm.horizon` steps ahead.
    pub fn fit(
        spec: ForecasterSpec,
        ds: &Dataset,
        cfg: &ForecastConfig,
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
            ForecasterSpec::None => return Err("`none` is no forecaster to fit".into()),
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
        }
    }
}
