//! The LSTM's hyper-parameters (`LstmConfig`, checked by `validate`), the input columns they
//! imply (the calendar's among them), and the training losses (MSE, MAE, pinball).

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// Hyper-parameters (the paper's: layers, hidden size, sequence length, learning rate, batch
/// size, epochs) plus early stopping and the seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LstmConfig {
    /// Stacked LSTM layers.
    pub layers: usize,
    /// Hidden units per layer.
    pub hidden: usize,
    /// Input window, in steps.
    pub seq_len: usize,
    /// Steps predicted at once.
    pub horizon: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// Windows per optimiser step.
    pub batch_size: usize,
    /// Maximum passes over the training windows.
    pub epochs: usize,
    /// Stop after this many epochs without a better validation loss (best weights are kept).
    pub patience: usize,
    /// Use every `stride`-th training window (1 = all).
    pub stride: usize,
    /// Add time of day and day of week (sin/cos) to the input.
    pub calendar: bool,
    /// With `calendar`: harmonics of the time of day (1–12). 1 is one sin/cos pair, a smooth
    /// daily cycle; more resolve the hours of the day (bursts at some hours and not others),
    /// 12 every hour. Default 4, chosen on validation losses (docs/forecasting.md). (Absent in
    /// models saved before it existed: 1.)
    pub day_harmonics: usize,
    /// Add the minute of the hour (sin/cos) to the input: bursts that recur at fixed minutes
    /// past the hour. (Absent in models saved before it existed: off.)
    pub hour_of_day_minute: bool,
    /// Forecast these quantiles (0–1, increasing) with a pinball-loss head instead of one
    /// value with `loss`; empty: a point forecast. The median (or the quantile nearest it) is
    /// the point forecast; the others give the planner its upper band. (Absent in models saved
    /// before it existed: empty.)
    pub quantiles: Vec<f64>,
    /// Training loss on scaled values: `mse` (the paper's) or `mae` (targets the median, which
    /// is what MAE rewards on spiky traffic).
    pub loss: Loss,
    /// Calibrate each quantile curve on the validation part after training (conformalised
    /// quantile regression, Romano et al. 2019): per curve and step ahead, the shift that
    /// makes the curve cover its quantile of the validation windows is stored with the model
    /// and added to every forecast. A quantile head trained by pinball loss stops early on the
    /// validation loss, not on coverage, and over- or under-covers by a few points. (Absent in
    /// models saved before it existed: off.)
    pub calibrate: bool,
    /// Seed for initial weights and shuffling.
    pub seed: u64,
}

impl Default for LstmConfig {
    fn default() -> Self {
        LstmConfig {
            layers: 1,
            hidden: 32,
            seq_len: 30,
            horizon: 15,
            learning_rate: 3e-3,
            batch_size: 128,
            epochs: 12,
            patience: 3,
            stride: 2,
            calendar: true,
            day_harmonics: 4,
            hour_of_day_minute: true,
            quantiles: vec![0.5, 0.9, 0.95, 0.99],
            loss: Loss::Mae,
            calibrate: true,
            seed: 42,
        }
    }
}

impl LstmConfig {
    /// Checks the values; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        // Upper bounds too: a model file or a flag sizes buffers from these (a corrupted
        // seq_len of 2^32 once asked for 120 GB).
        let bounded = [
            ("layers", self.layers, 8),
            ("hidden", self.hidden, 1024),
            ("seq_len", self.seq_len, 4096),
            ("horizon", self.horizon, 4096),
            ("batch_size", self.batch_size, 65_536),
            ("epochs", self.epochs, 100_000),
            ("stride", self.stride, 4096),
        ];
        for (k, v, max) in bounded {
            if v == 0 {
                return Err(format!("lstm.{k} must be at least 1"));
            }
            if v > max {
                return Err(format!("lstm.{k} must be at most {max}, got {v}"));
            }
        }
        if !(1..=12).contains(&self.day_harmonics) {
            return Err(format!(
                "lstm.day_harmonics must be 1 to 12, got {}",
                self.day_harmonics
            ));
        }
        if self.quantiles.len() > 16 {
            return Err(format!(
                "lstm.quantiles has {} entries (at most 16)",
                self.quantiles.len()
            ));
        }
        for (i, q) in self.quantiles.iter().enumerate() {
            if !(*q > 0.0 && *q < 1.0) {
                return Err(format!("lstm.quantiles[{i}] must be in (0, 1), got {q}"));
            }
            if i > 0 && *q <= self.quantiles[i - 1] {
                return Err(format!(
                    "lstm.quantiles must increase: {} after {}",
                    q,
                    self.quantiles[i - 1]
                ));
            }
        }
        if !(self.learning_rate > 0.0 && self.learning_rate < 1.0) {
            return Err(format!(
                "lstm.learning_rate must be in (0, 1), got {}",
                self.learning_rate
            ));
        }
        Ok(())
    }

    /// Input columns per step as stored (value, calendar, features).
    pub(super) fn inputs(&self, features: usize) -> usize {
        1 + self.calendar_inputs().len() + features
    }

    /// The calendar's input columns, by name, in the order they are fed.
    pub fn calendar_inputs(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.calendar {
            for k in 1..=self.day_harmonics {
                names.push(format!("day_sin{k}"));
                names.push(format!("day_cos{k}"));
            }
            names.extend(["week_sin".into(), "week_cos".into()]);
        }
        if self.hour_of_day_minute {
            names.extend(["hour_sin".into(), "hour_cos".into()]);
        }
        names
    }

    /// Output curves: one per quantile, or the point forecast.
    pub(super) fn curves(&self) -> usize {
        self.quantiles.len().max(1)
    }

    /// The index of the quantile nearest the median (0 for a point model).
    pub(super) fn median_curve(&self) -> usize {
        self.quantiles
            .iter()
            .enumerate()
            .min_by(|a, b| (a.1 - 0.5).abs().total_cmp(&(b.1 - 0.5).abs()))
            .map_or(0, |(i, _)| i)
    }

    /// The loss the model is trained and selected on.
    pub(super) fn objective(&self, pred: &Tensor, target: &Tensor) -> candle_core::Result<Tensor> {
        if self.quantiles.is_empty() {
            self.loss.of(pred, target)
        } else {
            pinball(pred, target, &self.quantiles)
        }
    }

    /// Input columns the network sees: the stored ones plus the value relative to the last.
    pub(super) fn net_inputs(&self, features: usize) -> usize {
        self.inputs(features) + 1
    }
}

/// Training loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// Mean squared error.
    Mse,
    /// Mean absolute error.
    Mae,
}

impl Loss {
    pub(super) fn of(self, pred: &Tensor, target: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Loss::Mse => candle_nn::loss::mse(pred, target),
            Loss::Mae => (pred - target)?.abs()?.mean_all(),
        }
    }
}

/// The pinball (quantile) loss of `pred` (batch, Q·horizon; quantile-major) against `target`
/// (batch, horizon), averaged over quantiles, steps and windows: for quantile q and error
/// e = target − pred, max(q·e, (q − 1)·e). Its minimiser is the q-quantile.
pub fn pinball(pred: &Tensor, target: &Tensor, quantiles: &[f64]) -> candle_core::Result<Tensor> {
    let (b, h) = target.dims2()?;
    let q = quantiles.len();
    let pred = pred.reshape((b, q, h))?;
    let e = target.unsqueeze(1)?.broadcast_sub(&pred)?; // (b, q, h)
    let qs: Vec<f32> = quantiles.iter().map(|v| *v as f32).collect();
    let qt = Tensor::from_vec(qs, (1, q, 1), pred.device())?;
    let over = e.broadcast_mul(&qt)?;
    let under = e.broadcast_mul(&(qt - 1.0)?)?;
    over.maximum(&under)?.mean_all()
}
