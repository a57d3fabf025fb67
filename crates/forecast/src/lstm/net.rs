//! The network: stacked LSTM layers and a linear head, as candle tensors.

use std::collections::HashMap;

use candle_core::{DType, Tensor};

use super::LstmConfig;

pub(super) struct Layer {
    w_ih: Tensor,
    w_hh: Tensor,
    b: Tensor,
}

/// The network: stacked LSTM layers and a linear head.
pub(super) struct Net {
    layers: Vec<Layer>,
    head_w: Tensor,
    head_b: Tensor,
    hidden: usize,
    horizon: usize,
    /// Output curves (quantiles, or 1 for a point forecast).
    curves: usize,
}

pub(super) fn names(layers: usize) -> Vec<String> {
    let mut v = Vec::new();
    for l in 0..layers {
        for p in ["w_ih", "w_hh", "b"] {
            v.push(format!("lstm.{l}.{p}"));
        }
    }
    v.push("head.w".into());
    v.push("head.b".into());
    v
}

impl Net {
    pub(super) fn shapes(cfg: &LstmConfig, inputs: usize) -> Vec<(String, Vec<usize>)> {
        let h = cfg.hidden;
        let mut out = Vec::new();
        for l in 0..cfg.layers {
            let inp = if l == 0 { inputs } else { h };
            out.push((format!("lstm.{l}.w_ih"), vec![inp, 4 * h]));
            out.push((format!("lstm.{l}.w_hh"), vec![h, 4 * h]));
            out.push((format!("lstm.{l}.b"), vec![4 * h]));
        }
        let outputs = cfg.horizon * cfg.curves();
        out.push(("head.w".into(), vec![h, outputs]));
        out.push(("head.b".into(), vec![outputs]));
        out
    }

    pub(super) fn from_map(cfg: &LstmConfig, map: &HashMap<String, Tensor>) -> Result<Net, String> {
        let get = |k: &str| {
            map.get(k)
                .cloned()
                .ok_or_else(|| format!("missing tensor `{k}`"))
        };
        let mut layers = Vec::new();
        for l in 0..cfg.layers {
            layers.push(Layer {
                w_ih: get(&format!("lstm.{l}.w_ih"))?,
                w_hh: get(&format!("lstm.{l}.w_hh"))?,
                b: get(&format!("lstm.{l}.b"))?,
            });
        }
        Ok(Net {
            layers,
            head_w: get("head.w")?,
            head_b: get("head.b")?,
            hidden: cfg.hidden,
            horizon: cfg.horizon,
            curves: cfg.curves(),
        })
    }

    /// `x`: (batch, seq, inputs) → (batch, curves × horizon), as a correction to the last
    /// scaled value. With several curves (quantiles), the first is free and each next one is
    /// the previous plus a softplus, so the quantiles never cross.
    pub(super) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let hd = self.hidden;
        // Level-free view of the window: each value minus the last one (×10, as differences
        // of scaled values are small). It lets what is learnt on busy days carry to quiet ones.
        let last_value = x.narrow(1, t - 1, 1)?.narrow(2, 0, 1)?; // (b, 1, 1)
        let rel = (x.narrow(2, 0, 1)?.broadcast_sub(&last_value)? * 10.0)?;
        let mut input = Tensor::cat(&[x, &rel], 2)?;
        let mut h = Tensor::zeros((b, hd), DType::F32, x.device())?;
        let last = self.layers.len() - 1;
        for (li, l) in self.layers.iter().enumerate() {
            let f = input.dim(2)?;
            let proj = input
                .reshape((b * t, f))?
                .matmul(&l.w_ih)?
                .broadcast_add(&l.b)?
                .reshape((b, t, 4 * hd))?;
            h = Tensor::zeros((b, hd), DType::F32, x.device())?;
            let mut c = h.clone();
            let mut outs = Vec::with_capacity(if li < last { t } else { 0 });
            for s in 0..t {
                let g = (proj.narrow(1, s, 1)?.squeeze(1)? + h.matmul(&l.w_hh)?)?;
                let i = candle_nn::ops::sigmoid(&g.narrow(1, 0, hd)?)?;
                let fg = candle_nn::ops::sigmoid(&g.narrow(1, hd, hd)?)?;
                let cand = g.narrow(1, 2 * hd, hd)?.tanh()?;
                let o = candle_nn::ops::sigmoid(&g.narrow(1, 3 * hd, hd)?)?;
                c = ((fg * &c)? + (i * cand)?)?;
                h = (o * c.tanh()?)?;
                if li < last {
                    outs.push(h.clone());
                }
            }
            if li < last {
                input = Tensor::stack(&outs, 1)?;
            }
        }
        let y = h.matmul(&self.head_w)?.broadcast_add(&self.head_b)?;
        let y = if self.curves > 1 {
            let y = y.reshape((b, self.curves, self.horizon))?;
            let first = y.narrow(1, 0, 1)?;
            let steps = y.narrow(1, 1, self.curves - 1)?;
            // softplus(x) = ln(1 + e^x), computed as max(x, 0) + ln(1 + e^-|x|) (no overflow).
            let softplus = (steps.relu()? + ((steps.abs()?.neg()?.exp()? + 1.0)?.log()?))?;
            let ordered = Tensor::cat(&[&first, &softplus], 1)?.cumsum(1)?;
            ordered.reshape((b, self.curves * self.horizon))?
        } else {
            y
        };
        y.broadcast_add(&last_value.squeeze(1)?)
    }
}
