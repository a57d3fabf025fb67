//! One step of an LSTM cell as two fused operations, with their gradients written out.
//!
//! Composed of candle's own operations, a step was eleven tensor operations forward (four
//! gate slices, three sigmoids, two tanh, the products and the sum) and some forty backward
//! (each slice's gradient padded with zeros to the whole gate width and added, each
//! activation's derivative built from three or four more), each allocating and filling a
//! tensor of a few thousand numbers. Here a step is two operations — the new cell state from
//! the gates and the old state, then the output from the gates and the new state — each one
//! pass over its rows, which keeps the activations it computed for its backward pass. The gain
//! is modest (about 4% of training, docs/benchmarks.md): most of a step's time is the `tanh`
//! and `exp` themselves, which are the same here.
//!
//! The numbers are candle's to the bit, forward and backward: every expression is the one
//! candle evaluates for the same step (`1 / (exp(−x) + 1)` for the sigmoid, `tanh`, the
//! derivatives `(1 − s)·s` and `−(t² − 1)`), and every gradient is accumulated as candle
//! accumulates it, starting from zero (`0 + x`, which turns a −0 into +0). A test checks forward
//! values and every gradient bit for bit against the composed operations, saturated gates
//! included. So a model trains to the same weights as before.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// Which half of a step an operation is. Both take the gate pre-activations
/// `(batch, 4·hidden)`, in the order input, forget, candidate, output, and a cell state
/// `(batch, hidden)`.
#[derive(Clone, Copy)]
enum Part {
    /// `(gates, c) → c'`: the new cell state `f·c + i·g̃`.
    State,
    /// `(gates, c') → h`: the output `o·tanh(c')`.
    Out,
}

/// One half of a step, applied once, keeping the activations its forward pass computed for
/// its backward pass: per row, `i`, `f` and `g̃` for [`Part::State`]; `o` and `tanh(c')` for
/// [`Part::Out`].
struct Cell {
    part: Part,
    acts: OnceLock<Vec<f32>>,
}

/// The sigmoid as `candle_nn::ops::sigmoid` computes it.
#[inline]
fn sigmoid(v: f32) -> f32 {
    ((-v).exp() + 1.0).recip()
}

/// A tensor's values as a slice, with its two dimensions; the tensors here are contiguous.
fn rows<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<(&'a [f32], usize, usize)> {
    let (b, w) = l.shape().dims2()?;
    let (Some((from, to)), CpuStorage::F32(v)) = (l.contiguous_offsets(), s) else {
        candle_core::bail!("lstm cell: {what} must be a contiguous f32 matrix");
    };
    Ok((&v[from..to], b, w))
}

/// A tensor's values, flattened.
fn values(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// [`Part::State`] forward: `(activations, c')`.
fn state(g: &[f32], c: &[f32], b: usize, h: usize) -> (Vec<f32>, Vec<f32>) {
    let mut acts = Vec::with_capacity(b * 3 * h);
    let mut out = Vec::with_capacity(b * h);
    for (g, c) in g.chunks_exact(4 * h).zip(c.chunks_exact(h)) {
        let at = acts.len();
        acts.extend(g[..2 * h].iter().map(|&v| sigmoid(v)));
        acts.extend(g[2 * h..3 * h].iter().map(|v| v.tanh()));
        let a = &acts[at..];
        out.extend((0..h).map(|k| a[h + k] * c[k] + a[k] * a[2 * h + k]));
    }
    (acts, out)
}

/// [`Part::Out`] forward: `(activations, h)`.
fn out(g: &[f32], c: &[f32], b: usize, h: usize) -> (Vec<f32>, Vec<f32>) {
    let mut acts = Vec::with_capacity(b * 2 * h);
    let mut out = Vec::with_capacity(b * h);
    for (g, c) in g.chunks_exact(4 * h).zip(c.chunks_exact(h)) {
        let at = acts.len();
        acts.extend(g[3 * h..].iter().map(|&v| sigmoid(v)));
        acts.extend(c.iter().map(|v| v.tanh()));
        let a = &acts[at..];
        out.extend((0..h).map(|k| a[k] * a[h + k]));
    }
    (acts, out)
}

/// [`Part::State`] backward, from the gradient of `c'`: those of the gates and of `c`.
fn state_grad(acts: &[f32], c: &[f32], grad: &[f32], h: usize) -> (Vec<f32>, Vec<f32>) {
    let mut d_gates = vec![0f32; grad.len() * 4];
    let mut d_c = Vec::with_capacity(grad.len());
    for (r, d) in d_gates.chunks_exact_mut(4 * h).enumerate() {
        let a = &acts[r * 3 * h..(r + 1) * 3 * h];
        for k in 0..h {
            let (i, f, cand) = (a[k], a[h + k], a[2 * h + k]);
            // c' = f·c + i·g̃: each product's gradient is the sum's, accumulated from zero.
            let g_sum = 0.0 + grad[r * h + k];
            let g_i = 0.0 + g_sum * cand;
            let g_cand = 0.0 + g_sum * i;
            let g_f = 0.0 + g_sum * c[r * h + k];
            d_c.push(g_sum * f);
            // Through the activations (candle's sigmoid and tanh derivatives).
            d[k] = 0.0 + g_i * ((1.0 - i) * i);
            d[h + k] = 0.0 + g_f * ((1.0 - f) * f);
            d[2 * h + k] = 0.0 - g_cand * (cand * cand - 1.0);
        }
    }
    (d_gates, d_c)
}

/// [`Part::Out`] backward, from the gradient of `h`: those of the gates and of `c'`.
fn out_grad(acts: &[f32], grad: &[f32], h: usize) -> (Vec<f32>, Vec<f32>) {
    let mut d_gates = vec![0f32; grad.len() * 4];
    let mut d_c = Vec::with_capacity(grad.len());
    for (r, d) in d_gates.chunks_exact_mut(4 * h).enumerate() {
        let a = &acts[r * 2 * h..(r + 1) * 2 * h];
        for k in 0..h {
            let (o, t) = (a[k], a[h + k]);
            let g = grad[r * h + k];
            // h = o·tanh(c').
            let g_o = 0.0 + g * t;
            let g_t = 0.0 + g * o;
            d[3 * h + k] = 0.0 + g_o * ((1.0 - o) * o);
            d_c.push(0.0 - g_t * (t * t - 1.0));
        }
    }
    (d_gates, d_c)
}

impl CustomOp2 for Cell {
    fn name(&self) -> &'static str {
        match self.part {
            Part::State => "lstm-cell-state",
            Part::Out => "lstm-cell-out",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, b, w) = rows(s1, l1, "the gates")?;
        let (c, cb, h) = rows(s2, l2, "the cell state")?;
        if cb != b || w != 4 * h || h == 0 {
            candle_core::bail!("lstm cell: gates {b}×{w} do not fit a cell state {cb}×{h}");
        }
        let (acts, out) = match self.part {
            Part::State => state(g, c, b, h),
            Part::Out => out(g, c, b, h),
        };
        // An operation's forward pass runs once.
        let _ = self.acts.set(acts);
        Ok((CpuStorage::F32(out), Shape::from((b, h))))
    }

    fn bwd(
        &self,
        gates: &Tensor,
        c: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let acts = self.acts.get().expect("the forward pass ran");
        let (b, h) = grad.dims2()?;
        let grad = values(grad)?;
        let (d_gates, d_c) = match self.part {
            Part::State => state_grad(acts, &values(c)?, &grad, h),
            Part::Out => out_grad(acts, &grad, h),
        };
        let dev = gates.device();
        Ok((
            Some(Tensor::from_vec(d_gates, (b, 4 * h), dev)?),
            Some(Tensor::from_vec(d_c, (b, h), dev)?),
        ))
    }
}

/// One step: from the gate pre-activations `(batch, 4·hidden)` and the cell state
/// `(batch, hidden)`, the output and the new cell state `(h, c')`.
pub(super) fn step(gates: &Tensor, c: &Tensor) -> Result<(Tensor, Tensor)> {
    let gates = gates.contiguous()?;
    let half = |part| Cell {
        part,
        acts: OnceLock::new(),
    };
    let c = gates.apply_op2(&c.contiguous()?, half(Part::State))?;
    let h = gates.apply_op2(&c, half(Part::Out))?;
    Ok((h, c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// The step as candle's own operations (what [`step`] replaced).
    fn composed(g: &Tensor, c: &Tensor, hd: usize) -> Result<(Tensor, Tensor)> {
        let i = candle_nn::ops::sigmoid(&g.narrow(1, 0, hd)?)?;
        let fg = candle_nn::ops::sigmoid(&g.narrow(1, hd, hd)?)?;
        let cand = g.narrow(1, 2 * hd, hd)?.tanh()?;
        let o = candle_nn::ops::sigmoid(&g.narrow(1, 3 * hd, hd)?)?;
        let c = ((fg * c)? + (i * cand)?)?;
        let h = (o * c.tanh()?)?;
        Ok((h, c))
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v.iter().map(|f| f.to_bits()).collect()
    }

    /// A recurrence of several steps, a weight matrix between them and a loss on the last
    /// output and state: the fused step gives the same outputs and the same gradient for every
    /// input and weight, bit for bit — with gates small and large (saturated sigmoids give
    /// exact zeros, where a −0 and a +0 part ways).
    #[test]
    fn fused_steps_are_candles_to_the_bit() {
        let (b, hd, steps) = (5, 6, 7);
        for (seed, scale) in [(1u64, 0.5f32), (2, 4.0), (3, 40.0)] {
            let mut rng = SmallRng::seed_from_u64(seed);
            let dev = Device::Cpu;
            let mut rand = |shape: (usize, usize)| {
                let n = shape.0 * shape.1;
                let v: Vec<f32> = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
                Var::from_tensor(&Tensor::from_vec(v, shape, &dev).unwrap()).unwrap()
            };
            let w = rand((hd, 4 * hd));
            let inputs: Vec<Var> = (0..steps).map(|_| rand((b, 4 * hd))).collect();
            let c0 = rand((b, hd));
            let run = |fused: bool| -> Result<(Tensor, Tensor, Tensor)> {
                let mut h = Tensor::zeros((b, hd), candle_core::DType::F32, &dev)?;
                let mut c = c0.as_tensor().clone();
                for x in &inputs {
                    let g = (x.as_tensor() + h.matmul(w.as_tensor())?)?;
                    (h, c) = if fused {
                        step(&g, &c)?
                    } else {
                        composed(&g, &c, hd)?
                    };
                }
                let loss = ((&h * 3.0)?.sum_all()? + c.sqr()?.sum_all()?)?;
                Ok((h, c, loss))
            };
            let (h1, c1, l1) = run(true).unwrap();
            let (h2, c2, l2) = run(false).unwrap();
            assert_eq!(bits(&h1), bits(&h2), "scale {scale}: h");
            assert_eq!(bits(&c1), bits(&c2), "scale {scale}: c");
            let (g1, g2) = (l1.backward().unwrap(), l2.backward().unwrap());
            let vars = inputs.iter().chain([&w, &c0]);
            for (n, v) in vars.enumerate() {
                let got = g1.get(v.as_tensor()).expect("a gradient");
                let want = g2.get(v.as_tensor()).expect("a gradient");
                assert_eq!(
                    bits(got),
                    bits(want),
                    "scale {scale}: gradient of variable {n}"
                );
            }
        }
    }

    /// Gates that do not fit the cell state are an error naming both shapes, not a panic.
    #[test]
    fn misfit_shapes_are_an_error() {
        let dev = Device::Cpu;
        let gates = Tensor::zeros((3, 8), candle_core::DType::F32, &dev).unwrap();
        for c in [(3, 3), (2, 2)] {
            let c = Tensor::zeros(c, candle_core::DType::F32, &dev).unwrap();
            let e = step(&gates, &c).unwrap_err().to_string();
            assert!(e.contains("do not fit a cell state"), "{e}");
        }
    }
}
