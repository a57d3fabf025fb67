//! The paper's LSTM forecaster, trained and run with candle (no Python at run time).
//!
//! Input at each of the last `seq_len` steps: the cleaned, 0–1 scaled value, optionally the
//! calendar (time of day and day of week as sin/cos) and any extra feature columns, each scaled
//! with its own min-max scaler. Output: the next `horizon` scaled values at once (multi-step),
//! predicted as a correction to the last input value (a residual head), which starts training
//! at persistence and learns what persistence misses.
//!
//! Saved as a directory: `model.safetensors` (weights) and `model.json` (format version,
//! configuration, scalers, feature names, step and horizon), checked on load.
//!
//! Inside: `config` (the hyper-parameters and the losses), `net` (the layers and the head as
//! candle tensors), `cell` (one step of the cell, fused, with its gradients written out).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::model::Forecaster;
use crate::prep::{calendar, hour_phase, MinMax};

mod cell;
mod config;
mod net;
pub use config::{pinball, Loss, LstmConfig};
use net::{names, Net};

/// Bumped when the saved layout changes.
pub const FORMAT_VERSION: u32 = 1;

/// Errors from training, saving and loading models.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Bad configuration or data.
    #[error("{0}")]
    Invalid(String),
    /// A model directory that cannot be used.
    #[error("model {path}: {message}")]
    File {
        /// Directory or file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The ML library failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

/// What is saved beside the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// [`FORMAT_VERSION`] at save time.
    pub format_version: u32,
    /// Hyper-parameters.
    pub config: LstmConfig,
    /// Step of the series trained on, in seconds.
    pub step_secs: i64,
    /// Scaler of the value.
    pub value_scaler: MinMax,
    /// Names and scalers of the extra feature columns, in input order.
    pub features: Vec<(String, MinMax)>,
    /// Best validation loss (the configured loss, on scaled values).
    pub val_loss: f64,
    /// Epochs run.
    pub epochs_run: usize,
    /// With `config.calibrate`: the shift (scaled units) added to each quantile curve at each
    /// step ahead, curve after curve (`quantiles × horizon`); empty: none. See
    /// [`conformal_shifts`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calibration: Vec<f32>,
}

/// One gap-free stretch of training input: per-step input rows and scaled targets.
pub struct Prepared {
    rows: Vec<f32>,
    targets: Vec<f32>,
    inputs: usize,
}

impl Prepared {
    /// Builds input rows for a stretch starting at Unix time `start`: `values` already cleaned
    /// (targets and inputs), `features[i]` the feature row at step i.
    pub fn new(
        cfg: &LstmConfig,
        meta_value: &MinMax,
        meta_features: &[MinMax],
        start: i64,
        step: i64,
        values: &[f64],
        features: &[Vec<f64>],
    ) -> Prepared {
        let inputs = cfg.inputs(meta_features.len());
        let mut rows = Vec::with_capacity(values.len() * inputs);
        let mut targets = Vec::with_capacity(values.len());
        let mut row = Vec::with_capacity(inputs);
        for (i, v) in values.iter().enumerate() {
            input_row(
                cfg,
                meta_value,
                meta_features,
                start + i as i64 * step,
                *v,
                features.get(i).map(Vec::as_slice).unwrap_or(&[]),
                &mut row,
            );
            rows.extend(row.iter().map(|x| *x as f32));
            targets.push(meta_value.scale(*v) as f32);
        }
        Prepared {
            rows,
            targets,
            inputs,
        }
    }

    fn len(&self) -> usize {
        self.targets.len()
    }
}

fn input_row(
    cfg: &LstmConfig,
    value: &MinMax,
    features: &[MinMax],
    time: i64,
    v: f64,
    feats: &[f64],
    out: &mut Vec<f64>,
) {
    out.clear();
    out.push(value.scale(v));
    if cfg.calendar {
        out.extend(calendar(time, cfg.day_harmonics));
    }
    if cfg.hour_of_day_minute {
        out.extend(hour_phase(time));
    }
    for (s, f) in features.iter().zip(feats) {
        out.push(s.scale(*f));
    }
}

/// Training progress, reported after every batch.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Maximum epochs.
    pub epochs: usize,
    /// Batch within the epoch (1-based).
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Mean training loss so far in this epoch.
    pub train_loss: f64,
    /// Best validation loss so far.
    pub best_val_loss: f64,
}

/// A trained LSTM and everything needed to use it.
pub struct Lstm {
    net: Net,
    meta: ModelMeta,
    tensors: HashMap<String, Tensor>,
    // Forecasting state.
    window: std::collections::VecDeque<f32>,
    last_time: Option<i64>,
    row: Vec<f64>,
    /// Every curve over the whole horizon for the window as it is, once worked out: the
    /// planner asks for the median and for the planning quantile of the same step.
    curves: Option<Vec<Vec<f64>>>,
}

impl Clone for Lstm {
    fn clone(&self) -> Self {
        Lstm::from_parts(self.meta.clone(), self.tensors.clone()).expect("already checked")
    }
}

fn windows(data: &[Prepared], seq: usize, horizon: usize, stride: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (k, p) in data.iter().enumerate() {
        if p.len() < seq + horizon {
            continue;
        }
        let mut s = 0;
        while s + seq + horizon <= p.len() {
            out.push((k, s));
            s += stride;
        }
    }
    out
}

fn batch(
    data: &[Prepared],
    idx: &[(usize, usize)],
    seq: usize,
    horizon: usize,
    dev: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let inputs = data[0].inputs;
    let mut x = Vec::with_capacity(idx.len() * seq * inputs);
    let mut y = Vec::with_capacity(idx.len() * horizon);
    for &(k, s) in idx {
        let p = &data[k];
        x.extend_from_slice(&p.rows[s * inputs..(s + seq) * inputs]);
        y.extend_from_slice(&p.targets[s + seq..s + seq + horizon]);
    }
    Ok((
        Tensor::from_vec(x, (idx.len(), seq, inputs), dev)?,
        Tensor::from_vec(y, (idx.len(), horizon), dev)?,
    ))
}

impl Lstm {
    /// Trains on `train`, stops early on `val`; `progress` is called after every batch.
    #[allow(clippy::too_many_arguments)]
    pub fn train(
        cfg: &LstmConfig,
        step_secs: i64,
        value_scaler: MinMax,
        features: Vec<(String, MinMax)>,
        train: &[Prepared],
        val: &[Prepared],
        mut progress: impl FnMut(Progress),
    ) -> Result<Lstm, ModelError> {
        cfg.validate().map_err(ModelError::Invalid)?;
        let dev = Device::Cpu;
        let inputs = cfg.inputs(features.len());
        if train.iter().chain(val).any(|p| p.inputs != inputs) {
            return Err(ModelError::Invalid(
                "prepared data do not match the configuration's inputs".into(),
            ));
        }
        let mut train_idx = windows(train, cfg.seq_len, cfg.horizon, cfg.stride);
        let val_idx = windows(val, cfg.seq_len, cfg.horizon, 1);
        if train_idx.len() < cfg.batch_size.min(32) {
            return Err(ModelError::Invalid(format!(
                "too little training data: {} windows of {} + {} steps (need at least {})",
                train_idx.len(),
                cfg.seq_len,
                cfg.horizon,
                cfg.batch_size.min(32)
            )));
        }
        if val_idx.is_empty() {
            return Err(ModelError::Invalid(format!(
                "too little validation data: no window of {} + {} steps",
                cfg.seq_len, cfg.horizon
            )));
        }
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let mut vars: Vec<(String, Var)> = Vec::new();
        for (name, shape) in Net::shapes(cfg, cfg.net_inputs(features.len())) {
            let n: usize = shape.iter().product();
            let k = 1.0 / (cfg.hidden as f32).sqrt();
            let mut data: Vec<f32> = (0..n).map(|_| rng.random_range(-k..k)).collect();
            if name.starts_with("lstm.") && name.ends_with(".b") {
                // Forget-gate bias 1 (Jozefowicz et al., 2015).
                for v in &mut data[cfg.hidden..2 * cfg.hidden] {
                    *v = 1.0;
                }
            }
            if name.starts_with("head") {
                data.iter_mut().for_each(|v| *v *= 0.1);
            }
            if name == "head.b" && cfg.curves() > 1 {
                // The quantiles above the first start close together: softplus(−4) ≈ 0.02.
                data[cfg.horizon..].iter_mut().for_each(|v| *v = -4.0);
            }
            vars.push((
                name,
                Var::from_tensor(&Tensor::from_vec(data, shape, &dev)?)?,
            ));
        }
        let mut opt = AdamW::new(
            vars.iter().map(|(_, v)| v.clone()).collect(),
            ParamsAdamW {
                lr: cfg.learning_rate,
                weight_decay: 0.0,
                ..Default::default()
            },
        )?;
        let snapshot = |vars: &[(String, Var)]| -> candle_core::Result<HashMap<String, Tensor>> {
            vars.iter()
                .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?.detach())))
                .collect()
        };
        let net_of =
            |map: &HashMap<String, Tensor>| Net::from_map(cfg, map).map_err(ModelError::Invalid);
        let mut best: Option<(f64, HashMap<String, Tensor>)> = None;
        let mut since_best = 0;
        let mut epochs_run = 0;
        let batches = train_idx.len().div_ceil(cfg.batch_size);
        for epoch in 1..=cfg.epochs {
            epochs_run = epoch;
            train_idx.shuffle(&mut rng);
            let live: HashMap<String, Tensor> = vars
                .iter()
                .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
                .collect();
            let net = net_of(&live)?;
            let (mut sum, mut n) = (0.0, 0usize);
            for (bi, chunk) in train_idx.chunks(cfg.batch_size).enumerate() {
                let (x, y) = batch(train, chunk, cfg.seq_len, cfg.horizon, &dev)?;
                let (pred, cut) = net.forward_for_training(&x)?;
                let loss = cfg.objective(&pred, &y)?;
                opt.step(&cut.gradients(&loss)?)?;
                sum += loss.to_scalar::<f32>()? as f64 * chunk.len() as f64;
                n += chunk.len();
                progress(Progress {
                    epoch,
                    epochs: cfg.epochs,
                    batch: bi + 1,
                    batches,
                    train_loss: sum / n as f64,
                    best_val_loss: best.as_ref().map_or(f64::NAN, |b| b.0),
                });
            }
            let frozen = snapshot(&vars)?;
            let val_loss = loss_on(&net_of(&frozen)?, val, &val_idx, cfg, &dev)?;
            if !val_loss.is_finite() {
                return Err(ModelError::Invalid(format!(
                    "training diverged at epoch {epoch} (validation loss {val_loss}); lower lstm.learning_rate"
                )));
            }
            if best.as_ref().is_none_or(|b| val_loss < b.0) {
                best = Some((val_loss, frozen));
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= cfg.patience {
                    break;
                }
                // Reduce on plateau: halve the rate after an epoch without improvement.
                opt.set_learning_rate(opt.learning_rate() * 0.5);
            }
        }
        let (val_loss, tensors) = best.expect("at least one epoch");
        let calibration = if cfg.calibrate && !cfg.quantiles.is_empty() {
            let (pred, actual) = predict_on(&net_of(&tensors)?, val, &val_idx, cfg, &dev)?;
            conformal_shifts(&pred, &actual, &cfg.quantiles, cfg.horizon)
        } else {
            Vec::new()
        };
        let meta = ModelMeta {
            format_version: FORMAT_VERSION,
            config: cfg.clone(),
            step_secs,
            value_scaler,
            features,
            val_loss,
            epochs_run,
            calibration,
        };
        Lstm::from_parts(meta, tensors)
    }

    fn from_parts(meta: ModelMeta, tensors: HashMap<String, Tensor>) -> Result<Lstm, ModelError> {
        let inputs = meta.config.inputs(meta.features.len());
        for (name, shape) in Net::shapes(&meta.config, meta.config.net_inputs(meta.features.len()))
        {
            let t = tensors.get(&name).ok_or_else(|| ModelError::File {
                path: "model.safetensors".into(),
                message: format!("missing tensor `{name}`"),
            })?;
            if t.dims() != shape.as_slice() {
                return Err(ModelError::File {
                    path: "model.safetensors".into(),
                    message: format!(
                        "tensor `{name}` has shape {:?}, the configuration needs {shape:?}",
                        t.dims()
                    ),
                });
            }
            if t.dtype() != DType::F32 {
                return Err(ModelError::File {
                    path: "model.safetensors".into(),
                    message: format!("tensor `{name}` is {:?}, expected f32", t.dtype()),
                });
            }
        }
        let net = Net::from_map(&meta.config, &tensors).map_err(ModelError::Invalid)?;
        Ok(Lstm {
            net,
            window: std::collections::VecDeque::with_capacity(meta.config.seq_len * inputs),
            row: Vec::with_capacity(inputs),
            curves: None,
            meta,
            tensors,
            last_time: None,
        })
    }

    /// The saved description.
    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// Writes `model.safetensors` and `model.json` into `dir` (created if needed).
    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        let err = |message: String| ModelError::File {
            path: dir.display().to_string(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        let mut ordered: Vec<(String, Tensor)> = names(self.meta.config.layers)
            .into_iter()
            .map(|k| {
                let t = self.tensors[&k].clone();
                (k, t)
            })
            .collect();
        ordered.sort_by(|a, b| a.0.cmp(&b.0));
        let map: HashMap<String, Tensor> = ordered.into_iter().collect();
        candle_core::safetensors::save(&map, dir.join("model.safetensors"))?;
        let json = serde_json::to_string_pretty(&self.meta).map_err(|e| err(e.to_string()))?;
        std::fs::write(dir.join("model.json"), json + "\n").map_err(|e| err(e.to_string()))?;
        Ok(())
    }

    /// Reads a model directory written by [`Lstm::save`].
    pub fn load(dir: &Path) -> Result<Lstm, ModelError> {
        let meta_path = dir.join("model.json");
        let file_err = |p: &Path, message: String| ModelError::File {
            path: p.display().to_string(),
            message,
        };
        let text =
            std::fs::read_to_string(&meta_path).map_err(|e| file_err(&meta_path, e.to_string()))?;
        let mut probe: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| file_err(&meta_path, format!("not JSON: {e}")))?;
        // Models saved before these keys existed were point forecasters on the daily calendar.
        if let Some(c) = probe.get_mut("config").and_then(|c| c.as_object_mut()) {
            c.entry("quantiles").or_insert(serde_json::json!([]));
            c.entry("hour_of_day_minute")
                .or_insert(serde_json::json!(false));
            c.entry("day_harmonics").or_insert(serde_json::json!(1));
            c.entry("calibrate").or_insert(serde_json::json!(false));
        }
        match probe.get("format_version").and_then(|v| v.as_u64()) {
            Some(v) if v == FORMAT_VERSION as u64 => {}
            Some(v) => {
                return Err(file_err(
                    &meta_path,
                    format!(
                        "format_version {v} is not supported (this build reads {FORMAT_VERSION})"
                    ),
                ))
            }
            None => {
                return Err(file_err(
                    &meta_path,
                    "no format_version: not a Foresight model".into(),
                ))
            }
        }
        let meta: ModelMeta =
            serde_json::from_value(probe).map_err(|e| file_err(&meta_path, e.to_string()))?;
        meta.config
            .validate()
            .map_err(|e| file_err(&meta_path, e))?;
        let (c, want) = (
            &meta.calibration,
            meta.config.curves() * meta.config.horizon,
        );
        if !c.is_empty() && (c.len() != want || c.iter().any(|v| !v.is_finite())) {
            return Err(file_err(
                &meta_path,
                format!(
                    "calibration must be {want} finite values (quantiles × horizon), got {} ({} not finite)",
                    c.len(),
                    c.iter().filter(|v| !v.is_finite()).count()
                ),
            ));
        }
        let w = dir.join("model.safetensors");
        let bytes = std::fs::read(&w).map_err(|e| file_err(&w, e.to_string()))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| file_err(&w, format!("not a safetensors file: {e}")))?;
        Lstm::from_parts(meta, tensors).map_err(|e| match e {
            ModelError::File { message, .. } => file_err(&w, message),
            other => other,
        })
    }

    /// Checks that this model fits a series with these feature columns, step and horizon.
    pub fn check_compatible(
        &self,
        step_secs: i64,
        features: &[String],
        horizon: usize,
    ) -> Result<(), ModelError> {
        let mine: Vec<&str> = self.meta.features.iter().map(|(n, _)| n.as_str()).collect();
        let theirs: Vec<&str> = features.iter().map(String::as_str).collect();
        let incompatible = |message: String| {
            ModelError::Invalid(format!("model does not fit this data: {message}"))
        };
        if mine != theirs {
            return Err(incompatible(format!(
                "it was trained with features {mine:?}, the data has {theirs:?}"
            )));
        }
        if step_secs != self.meta.step_secs {
            return Err(incompatible(format!(
                "it was trained on {} s steps, the data has {step_secs} s steps",
                self.meta.step_secs
            )));
        }
        if horizon > self.meta.config.horizon {
            return Err(incompatible(format!(
                "it forecasts {} steps ahead, {horizon} were asked for",
                self.meta.config.horizon
            )));
        }
        Ok(())
    }

    /// Forecasts every curve (quantile-major, `horizon` of the model each) from a full input
    /// window (oldest first, scaled rows).
    fn run(&self, rows: &[f32]) -> candle_core::Result<Vec<f32>> {
        let inputs = self.meta.config.inputs(self.meta.features.len());
        let x = Tensor::from_slice(rows, (1, self.meta.config.seq_len, inputs), &Device::Cpu)?;
        self.net.forward(&x)?.squeeze(0)?.to_vec1::<f32>()
    }
}

/// The net's outputs (`curves × horizon` per window) and the scaled values that came
/// (`horizon` per window) on the windows `idx` of `data`.
fn predict_on(
    net: &Net,
    data: &[Prepared],
    idx: &[(usize, usize)],
    cfg: &LstmConfig,
    dev: &Device,
) -> Result<(Vec<f32>, Vec<f32>), ModelError> {
    let (mut pred, mut actual) = (Vec::new(), Vec::new());
    for chunk in idx.chunks(512) {
        let (x, y) = batch(data, chunk, cfg.seq_len, cfg.horizon, dev)?;
        pred.extend(net.forward(&x)?.flatten_all()?.to_vec1::<f32>()?);
        actual.extend(y.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok((pred, actual))
}

/// Split-conformal shifts for quantile curves (conformalised quantile regression, one-sided
/// per curve): for the curve of quantile q at step h ahead, the ⌈(n + 1)·q⌉-th smallest of
/// the n held-out errors `actual − curve`, so that the shifted curve covers at least q of
/// such windows (exactly, up to ties, when the held-out windows are exchangeable with those
/// forecast later). `pred` holds `quantiles.len() × horizon` values per window, curve after
/// curve; `actual` `horizon`. Empty when there is no window.
pub fn conformal_shifts(
    pred: &[f32],
    actual: &[f32],
    quantiles: &[f64],
    horizon: usize,
) -> Vec<f32> {
    let curves = quantiles.len();
    let n = actual.len() / horizon.max(1);
    if n == 0 || curves == 0 || pred.len() != n * curves * horizon {
        return Vec::new();
    }
    let mut shifts = Vec::with_capacity(curves * horizon);
    let mut errors = Vec::with_capacity(n);
    for (j, q) in quantiles.iter().enumerate() {
        let rank = (((n + 1) as f64 * q).ceil() as usize).clamp(1, n);
        for h in 0..horizon {
            errors.clear();
            errors.extend(
                (0..n).map(|w| actual[w * horizon + h] - pred[(w * curves + j) * horizon + h]),
            );
            let (_, kth, _) = errors.select_nth_unstable_by(rank - 1, f32::total_cmp);
            shifts.push(*kth);
        }
    }
    shifts
}

fn loss_on(
    net: &Net,
    data: &[Prepared],
    idx: &[(usize, usize)],
    cfg: &LstmConfig,
    dev: &Device,
) -> Result<f64, ModelError> {
    let (mut sum, mut n) = (0.0, 0usize);
    for chunk in idx.chunks(512) {
        let (x, y) = batch(data, chunk, cfg.seq_len, cfg.horizon, dev)?;
        let pred = net.forward(&x)?;
        let l = cfg.objective(&pred, &y)?.to_scalar::<f32>()? as f64;
        sum += l * chunk.len() as f64;
        n += chunk.len();
    }
    Ok(sum / n.max(1) as f64)
}

impl Forecaster for Lstm {
    fn name(&self) -> String {
        "lstm".into()
    }

    fn observe(&mut self, time: i64, value: f64, features: &[f64]) {
        self.curves = None;
        let cfg = &self.meta.config;
        let inputs = cfg.inputs(self.meta.features.len());
        let step = self.meta.step_secs;
        if features.len() != self.meta.features.len() {
            // A row it was not trained on: nothing to learn from, and the window would
            // misalign; it starts again with the next whole row.
            self.window.clear();
            self.last_time = None;
            return;
        }
        if matches!(self.last_time, Some(t) if time != t + step) {
            self.window.clear();
        }
        self.last_time = Some(time);
        let scalers: Vec<MinMax> = self.meta.features.iter().map(|(_, s)| *s).collect();
        input_row(
            cfg,
            &self.meta.value_scaler,
            &scalers,
            time,
            value,
            features,
            &mut self.row,
        );
        if self.window.len() == cfg.seq_len * inputs {
            self.window.drain(..inputs);
        }
        self.window.extend(self.row.iter().map(|v| *v as f32));
    }

    fn forecast(&mut self, horizon: usize) -> Option<Vec<f64>> {
        let median = self.meta.config.median_curve();
        self.curves(horizon).map(|mut c| c.swap_remove(median))
    }

    fn quantiles(&self) -> Vec<f64> {
        self.meta.config.quantiles.clone()
    }

    fn history_needed(&self) -> usize {
        self.meta.config.seq_len
    }

    fn forecast_quantiles(&mut self, horizon: usize) -> Option<Vec<Vec<f64>>> {
        if self.meta.config.quantiles.is_empty() {
            return None;
        }
        self.curves(horizon)
    }
}

impl Lstm {
    /// Every output curve for the next `horizon` steps, unscaled; `None` while the window is
    /// not full or beyond the model's horizon.
    fn curves(&mut self, horizon: usize) -> Option<Vec<Vec<f64>>> {
        let cfg = &self.meta.config;
        let inputs = cfg.inputs(self.meta.features.len());
        if self.window.len() < cfg.seq_len * inputs || horizon > cfg.horizon {
            return None;
        }
        if self.curves.is_none() {
            self.curves = Some(self.all_curves()?);
        }
        let all = self.curves.as_ref()?;
        Some(all.iter().map(|c| c[..horizon].to_vec()).collect())
    }

    /// Every curve over the whole horizon for the current window, unscaled.
    fn all_curves(&mut self) -> Option<Vec<Vec<f64>>> {
        let h = self.meta.config.horizon;
        self.window.make_contiguous();
        let mut out = self.run(self.window.as_slices().0).ok()?;
        let shifts = &self.meta.calibration;
        if shifts.len() == out.len() {
            for (v, s) in out.iter_mut().zip(shifts) {
                *v += s;
            }
            // Shifted curves may cross: each quantile is at least the one below it.
            for j in 1..out.len() / h {
                for i in 0..h {
                    out[j * h + i] = out[j * h + i].max(out[(j - 1) * h + i]);
                }
            }
        }
        Some(
            out.chunks(h)
                .map(|curve| {
                    curve
                        .iter()
                        .map(|v| self.meta.value_scaler.unscale(*v as f64).max(0.0))
                        .collect()
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests;
