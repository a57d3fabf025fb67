//! The network: stacked LSTM layers and a linear head, as candle tensors.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

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
        Ok(self.run(x, false)?.0)
    }

    /// [`Net::forward`] for a training step, with its gradients taken by [`Cut::gradients`].
    pub(super) fn forward_for_training(&self, x: &Tensor) -> candle_core::Result<(Tensor, Cut)> {
        let (y, cut) = self.run(x, true)?;
        Ok((y, cut.expect("asked for")))
    }

    /// With `cut`, the first layer reads each step's input projection from its own leaf
    /// variable (see [`Cut`]).
    fn run(&self, x: &Tensor, cut: bool) -> candle_core::Result<(Tensor, Option<Cut>)> {
        let (b, t, _) = x.dims3()?;
        let hd = self.hidden;
        // Level-free view of the window: each value minus the last one (×10, as differences
        // of scaled values are small). It lets what is learnt on busy days carry to quiet ones.
        let last_value = x.narrow(1, t - 1, 1)?.narrow(2, 0, 1)?; // (b, 1, 1)
        let rel = (x.narrow(2, 0, 1)?.broadcast_sub(&last_value)? * 10.0)?;
        let mut input = Tensor::cat(&[x, &rel], 2)?;
        let mut h = Tensor::zeros((b, hd), DType::F32, x.device())?;
        let mut leaves = None;
        let last = self.layers.len() - 1;
        for (li, l) in self.layers.iter().enumerate() {
            let f = input.dim(2)?;
            let rows = input.reshape((b * t, f))?;
            let cut_here = cut && li == 0;
            // Cut: the weights' gradient is taken in a fixed order by `Cut::gradients`, so
            // the product here leaves them out of the graph (the same numbers).
            let w_ih = if cut_here {
                l.w_ih.detach()
            } else {
                l.w_ih.clone()
            };
            let proj = rows
                .matmul(&w_ih)?
                .broadcast_add(&l.b)?
                .reshape((b, t, 4 * hd))?;
            h = Tensor::zeros((b, hd), DType::F32, x.device())?;
            let mut c = h.clone();
            let mut outs = Vec::with_capacity(if li < last { t } else { 0 });
            let steps: Option<Vec<Var>> = cut_here
                .then(|| {
                    (0..t)
                        .map(|s| Var::from_tensor(&proj.narrow(1, s, 1)?.squeeze(1)?))
                        .collect()
                })
                .transpose()?;
            for s in 0..t {
                let step = match &steps {
                    Some(steps) => steps[s].as_tensor().clone(),
                    None => proj.narrow(1, s, 1)?.squeeze(1)?,
                };
                let g = (step + h.matmul(&l.w_hh)?)?;
                (h, c) = super::cell::step(&g, &c)?;
                if li < last {
                    outs.push(h.clone());
                }
            }
            if li < last {
                input = Tensor::stack(&outs, 1)?;
            }
            if let Some(steps) = steps {
                leaves = Some(Cut {
                    rows,
                    w_ih: l.w_ih.clone(),
                    proj,
                    steps,
                });
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
        Ok((y.broadcast_add(&last_value.squeeze(1)?)?, leaves))
    }
}

/// The first layer's input projection cut off the recurrence at each step. Read through
/// `narrow` at every step, the projection of the whole window took a gradient the size of the
/// whole window per step in the backward pass (candle pads each slice's gradient with zeros
/// to full size, then adds it): a cost quadratic in the window and a third of training. With
/// a leaf variable per step, the recurrence's backward pass stops at the leaves; their
/// gradients, stacked, are the projection's gradient, which a second backward pass takes to
/// the first layer's bias; the first layer's input weights take theirs from
/// [`t_matmul_fixed`]. Every gradient is the same number as without the cut (each element of
/// the projection's gradient came from one step, the rest of each sum were zeros), except
/// that the input weights' sum over the batch's rows is taken in an order of its own rather
/// than the one gemm chooses from this CPU's caches.
pub(super) struct Cut {
    /// The first layer's input, one row per window and step: (batch · steps, inputs).
    rows: Tensor,
    /// The first layer's input weights (the variable's tensor, for its gradient's id).
    w_ih: Tensor,
    proj: Tensor,
    steps: Vec<Var>,
}

impl Cut {
    /// The gradients of `loss` for every variable of the net.
    pub(super) fn gradients(self, loss: &Tensor) -> candle_core::Result<GradStore> {
        let mut grads = loss.backward()?;
        let per_step = (self.steps.iter())
            .map(|v| match grads.remove(v.as_tensor()) {
                Some(g) => Ok(g),
                None => v.as_tensor().zeros_like(),
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        // Detached: a gradient computed from a variable records its operations too.
        let of_proj = Tensor::stack(&per_step, 1)?.detach();
        let rest = (self.proj * &of_proj)?.sum_all()?.backward()?;
        for id in rest.get_ids().copied().collect::<Vec<_>>() {
            if let Some(g) = rest.get_id(id) {
                grads.insert_id(id, g.clone());
            }
        }
        let of_proj = of_proj.reshape((self.rows.dim(0)?, ()))?;
        grads.insert(&self.w_ih, t_matmul_fixed(&self.rows, &of_proj)?);
        Ok(grads)
    }
}

/// The longest run of rows [`t_matmul_fixed`] sums in one product: gemm's shortest block
/// along the summed dimension (it takes longer ones where the CPU's L1 cache allows, 1,024
/// rows with a 48 KiB 12-way L1, 512 with a 32 KiB 8-way one).
const FIXED_BLOCK: usize = 512;

/// `lhsᵀ · rhs` for `lhs` (k, m) and `rhs` (k, n), summed over the k rows in a fixed order:
/// `ceil(k / 512)` blocks of equal length (the last shorter), each block's product from zero
/// and the blocks added first to last. gemm sums a long k in blocks whose length it derives
/// from the L1 cache's size and associativity, so the same product rounded differently on
/// another CPU, and the first layer's gradient (k = batch × steps, 3,840 rows by default)
/// trained another network from the first epoch on (docs/results.md, "The same code on
/// another machine"). The blocks are those gemm itself takes on a 32 KiB 8-way L1, so on
/// such a CPU the numbers are unchanged.
pub(super) fn t_matmul_fixed(lhs: &Tensor, rhs: &Tensor) -> candle_core::Result<Tensor> {
    let k = lhs.dim(0)?;
    if k == 0 {
        return Tensor::zeros((lhs.dim(1)?, rhs.dim(1)?), lhs.dtype(), lhs.device());
    }
    let len = k.div_ceil(k.div_ceil(FIXED_BLOCK));
    let mut sum: Option<Tensor> = None;
    for start in (0..k).step_by(len) {
        let n = len.min(k - start);
        let part = lhs
            .narrow(0, start, n)?
            .t()?
            .matmul(&rhs.narrow(0, start, n)?)?;
        sum = Some(match sum {
            None => part,
            Some(s) => (s + part)?,
        });
    }
    Ok(sum.expect("k > 0"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lstm::LstmConfig;
    use candle_core::Device;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// `t_matmul_fixed` is, bit for bit, one fixed order of sums: per block of at most 512
    /// rows a fused multiply-add from zero row after row, the blocks added first to last. A
    /// product whose blocks followed the CPU's L1 cache (gemm takes 1,024 rows with a 48 KiB
    /// 12-way L1) fails this for 1,200 rows on such a CPU, whichever CPU the test runs on.
    #[test]
    fn the_weights_gradient_is_summed_in_the_same_order_on_every_cpu() {
        let dev = Device::Cpu;
        let mut rng = SmallRng::seed_from_u64(7);
        for (k, blocks) in [(1200, 3), (513, 2), (512, 1), (100, 1)] {
            let (m, n) = (5, 24);
            let mut rand = |len: usize| -> Vec<f32> {
                (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
            };
            let (a, g) = (rand(k * m), rand(k * n));
            let lhs = Tensor::from_vec(a.clone(), (k, m), &dev).unwrap();
            let rhs = Tensor::from_vec(g.clone(), (k, n), &dev).unwrap();
            let got = t_matmul_fixed(&lhs, &rhs).unwrap();
            let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let len = k.div_ceil(blocks);
            for i in 0..m {
                for j in 0..n {
                    let mut want = 0f32;
                    for start in (0..k).step_by(len) {
                        let mut block = 0f32;
                        for r in start..(start + len).min(k) {
                            block = a[r * m + i].mul_add(g[r * n + j], block);
                        }
                        want = if start == 0 { block } else { want + block };
                    }
                    assert_eq!(
                        got[i * n + j].to_bits(),
                        want.to_bits(),
                        "k {k}: ({i}, {j})"
                    );
                }
            }
        }
    }

    /// Every variable's gradient is bit for bit what candle's own backward pass gives
    /// without the cut, for one and two layers and a quantile head.
    #[test]
    fn the_cut_changes_no_gradient() {
        for layers in [1, 2] {
            let cfg = LstmConfig {
                layers,
                hidden: 8,
                seq_len: 12,
                horizon: 3,
                quantiles: vec![0.5, 0.9],
                ..LstmConfig::default()
            };
            let inputs = 3;
            let mut rng = SmallRng::seed_from_u64(layers as u64);
            let dev = Device::Cpu;
            let mut rand = |shape: &[usize]| {
                let n: usize = shape.iter().product();
                let v: Vec<f32> = (0..n).map(|_| rng.random_range(-0.5..0.5)).collect();
                Tensor::from_vec(v, shape, &dev).unwrap()
            };
            let vars: Vec<(String, Var)> = Net::shapes(&cfg, cfg.net_inputs(inputs))
                .into_iter()
                .map(|(name, shape)| (name, Var::from_tensor(&rand(&shape)).unwrap()))
                .collect();
            let map: HashMap<String, Tensor> = (vars.iter())
                .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
                .collect();
            let net = Net::from_map(&cfg, &map).unwrap();
            // The net adds one input of its own (the window relative to its last value).
            let x = rand(&[16, cfg.seq_len, cfg.net_inputs(inputs) - 1]);
            let y = rand(&[16, cfg.horizon]);

            let whole = cfg.objective(&net.forward(&x).unwrap(), &y).unwrap();
            let want = whole.backward().unwrap();
            let (pred, cut) = net.forward_for_training(&x).unwrap();
            let loss = cfg.objective(&pred, &y).unwrap();
            assert_eq!(
                loss.to_scalar::<f32>().unwrap().to_bits(),
                whole.to_scalar::<f32>().unwrap().to_bits()
            );
            let got = cut.gradients(&loss).unwrap();
            for (name, v) in &vars {
                let bits = |g: &GradStore| -> Vec<u32> {
                    let g = g.get(v.as_tensor()).expect("a gradient for every variable");
                    let g = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                    g.iter().map(|f| f.to_bits()).collect()
                };
                assert_eq!(bits(&got), bits(&want), "{layers} layers: {name}");
            }
        }
    }
}
