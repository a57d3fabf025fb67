//! Evaluation on the test part: every model is fed the same observations in time order and
//! scored on the same points, `horizon` steps ahead.
//!
//! MASE here is the model's MAE divided by persistence's MAE on the same test points at the same
//! horizon (so persistence scores 1.0, lower is better).

use std::time::Instant;

use serde::Serialize;

use crate::anomaly::{AnomalyConfig, Detector};
use crate::model::Forecaster;
use crate::prep::Split;
use crate::series::Series;

/// Error measures of one model.
#[derive(Clone, Debug, Serialize)]
pub struct Score {
    /// Model name.
    pub name: String,
    /// Mean absolute error.
    pub mae: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean squared error.
    pub mse: f64,
    /// Symmetric MAPE, percent (0–200).
    pub smape: f64,
    /// MAE / persistence's MAE on the same points.
    pub mase: f64,
    /// Seconds spent fitting or training.
    pub train_seconds: f64,
    /// Mean time of one forecast call, microseconds.
    pub infer_micros: f64,
    /// Share of scored points whose realised residual was flagged as an anomaly.
    pub anomaly_share: f64,
    /// MAE of forecasts issued while the detector trusted this model.
    pub mae_trusted: f64,
    /// MAE of forecasts issued while it did not (NaN when there were none).
    pub mae_untrusted: f64,
    /// Share of forecasts issued while untrusted.
    pub untrusted_share: f64,
    /// Pinball loss and coverage at each of [`EVAL_QUANTILES`]: from the model's own quantile
    /// curves when it has them, else the point forecast plus that quantile of its last
    /// [`BAND_WINDOW`] realised errors at the horizon (the planner's band).
    pub quantiles: Vec<QuantileScore>,
}

/// The quantiles every model is scored at.
pub const EVAL_QUANTILES: [f64; 4] = [0.5, 0.9, 0.95, 0.99];
/// Realised errors kept for a point forecaster's empirical quantiles.
pub const BAND_WINDOW: usize = 240;

/// How well one quantile forecast did.
#[derive(Clone, Debug, Serialize)]
pub struct QuantileScore {
    /// The quantile (0–1).
    pub q: f64,
    /// Mean pinball loss: max(q·e, (q − 1)·e) with e = actual − forecast (same units as MAE).
    pub pinball: f64,
    /// Share of actuals at or below the forecast (q when calibrated).
    pub coverage: f64,
    /// `model` (its own curve) or `residual band` (point forecast + empirical error quantile).
    pub source: &'static str,
}

/// The pinball loss of forecast `f` for quantile `q` when `actual` happened.
pub fn pinball_loss(q: f64, actual: f64, f: f64) -> f64 {
    let e = actual - f;
    (q * e).max((q - 1.0) * e)
}

/// The `q` quantile (nearest rank) of `errors`; 0 when there are none.
fn error_quantile(errors: &std::collections::VecDeque<f64>, q: f64, scratch: &mut Vec<f64>) -> f64 {
    if errors.is_empty() {
        return 0.0;
    }
    scratch.clear();
    scratch.extend(errors.iter().copied());
    scratch.sort_by(f64::total_cmp);
    scratch[((scratch.len() - 1) as f64 * q).round() as usize]
}

/// Forecast against actual at one test step, for plots.
#[derive(Clone, Debug, Serialize)]
pub struct PlotPoint {
    /// Unix time of the forecast step.
    pub time: i64,
    /// What happened.
    pub actual: f64,
    /// What each model forecast `horizon` steps earlier, in model order.
    pub forecasts: Vec<f64>,
}

/// The result of [`evaluate`].
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    /// Steps ahead.
    pub horizon: usize,
    /// Test points scored.
    pub points: usize,
    /// Test points skipped because some model had no forecast (not enough history).
    pub skipped: usize,
    /// One score per model, in the order given.
    pub scores: Vec<Score>,
    /// Forecast vs actual over the first week of the test part.
    pub plot: Vec<PlotPoint>,
}

#[derive(Default)]
struct Acc {
    abs: f64,
    sq: f64,
    smape: f64,
    n: usize,
    trusted_abs: f64,
    trusted_n: usize,
    untrusted_abs: f64,
    untrusted_n: usize,
    flagged: usize,
    infer_ns: u128,
    calls: usize,
    pinball: [f64; EVAL_QUANTILES.len()],
    covered: [usize; EVAL_QUANTILES.len()],
    /// Realised errors (actual − point forecast) at the horizon, most recent last.
    errors: std::collections::VecDeque<f64>,
}

/// Evaluates `models` (persistence must be among them, for MASE) on the test part of `split`.
/// `train_seconds[i]` is reported for `models[i]`; `progress(done, total)` is called as it runs.
pub fn evaluate(
    series: &Series,
    split: Split,
    models: &mut [Box<dyn Forecaster>],
    train_seconds: &[f64],
    horizon: usize,
    anomaly: AnomalyConfig,
    mut progress: impl FnMut(usize, usize),
) -> Result<Evaluation, String> {
    let names: Vec<String> = models.iter().map(|m| m.name()).collect();
    let Some(persistence) = names.iter().position(|n| n == "persistence") else {
        return Err("evaluation needs the persistence model for MASE".into());
    };
    if horizon == 0 {
        return Err("horizon must be at least 1 step".into());
    }
    let k = models.len();
    let mut acc: Vec<Acc> = (0..k).map(|_| Acc::default()).collect();
    let mut detectors: Vec<Detector> = (0..k).map(|_| Detector::new(anomaly)).collect();
    // Forecasting starts before the test part so that the detectors are warm.
    let warm_from = split.val_end.saturating_sub(anomaly.window + horizon);
    let plot_steps = (7 * 86_400 / series.step.max(1)) as usize;
    let mut plot = Vec::new();
    let (mut points, mut skipped) = (0usize, 0usize);
    let total = split.len - split.val_end;
    let segments = series.segments();
    let mut fc: Vec<Option<Vec<f64>>> = vec![None; k];
    let own: Vec<Vec<f64>> = models.iter().map(|m| m.quantiles()).collect();
    let mut scratch = Vec::new();
    for seg in &segments {
        // (target index in segment, forecast per model, scored?, trusted per model, quantile
        // forecasts per model)
        #[allow(clippy::type_complexity)]
        let mut pending: std::collections::VecDeque<(
            usize,
            Vec<f64>,
            bool,
            Vec<bool>,
            Vec<[f64; EVAL_QUANTILES.len()]>,
        )> = Default::default();
        for (i, v) in seg.values.iter().enumerate() {
            let g = seg.offset + i;
            if g >= split.len {
                break;
            }
            let t = series.time(g);
            let feats: &[f64] = seg.features.get(i).map(Vec::as_slice).unwrap_or(&[]);
            // Realised residuals first: the detector learns about step g before forecasting from it.
            while pending.front().is_some_and(|p| p.0 == i) {
                let (_, f, scored, trusted, qf) = pending.pop_front().unwrap();
                for m in 0..k {
                    let verdict = detectors[m].update(t, *v, f[m]);
                    let a = &mut acc[m];
                    if a.errors.len() == BAND_WINDOW {
                        a.errors.pop_front();
                    }
                    a.errors.push_back(v - f[m]);
                    if scored {
                        for (j, q) in EVAL_QUANTILES.iter().enumerate() {
                            a.pinball[j] += pinball_loss(*q, *v, qf[m][j]);
                            a.covered[j] += usize::from(*v <= qf[m][j]);
                        }
                        let e = f[m] - v;
                        a.abs += e.abs();
                        a.sq += e * e;
                        let d = v.abs() + f[m].abs();
                        a.smape += if d > 0.0 { 2.0 * e.abs() / d } else { 0.0 };
                        a.n += 1;
                        if trusted[m] {
                            a.trusted_abs += e.abs();
                            a.trusted_n += 1;
                        } else {
                            a.untrusted_abs += e.abs();
                            a.untrusted_n += 1;
                        }
                        if verdict.anomalous {
                            a.flagged += 1;
                        }
                    }
                }
                if scored && plot.len() < plot_steps {
                    plot.push(PlotPoint {
                        time: t,
                        actual: *v,
                        forecasts: f,
                    });
                }
            }
            for m in models.iter_mut() {
                m.observe(t, *v, feats);
            }
            if g < warm_from || i + horizon >= seg.values.len() || g + horizon >= split.len {
                continue;
            }
            let scored = g >= split.val_end;
            let trusted: Vec<bool> = detectors.iter().map(|d| d.trustworthy(t)).collect();
            for (m, model) in models.iter_mut().enumerate() {
                let started = Instant::now();
                fc[m] = model.forecast(horizon);
                acc[m].infer_ns += started.elapsed().as_nanos();
                acc[m].calls += 1;
            }
            if fc.iter().any(|f| f.is_none()) {
                if scored {
                    skipped += 1;
                }
                continue;
            }
            let f: Vec<f64> = fc
                .iter()
                .map(|f| f.as_ref().unwrap()[horizon - 1])
                .collect();
            if scored {
                points += 1;
                if points % 256 == 0 {
                    progress(points + skipped, total);
                }
            }
            let qf: Vec<[f64; EVAL_QUANTILES.len()]> = (0..k)
                .map(|m| {
                    let curves = if own[m].is_empty() {
                        None
                    } else {
                        models[m].forecast_quantiles(horizon)
                    };
                    EVAL_QUANTILES.map(|q| match &curves {
                        Some(c) => {
                            let j = own[m]
                                .iter()
                                .position(|x| *x >= q - 1e-9)
                                .unwrap_or(own[m].len() - 1);
                            c[j.min(c.len() - 1)][horizon - 1]
                        }
                        None => (f[m] + error_quantile(&acc[m].errors, q, &mut scratch)).max(0.0),
                    })
                })
                .collect();
            pending.push_back((i + horizon, f, scored, trusted, qf));
        }
    }
    progress(total, total);
    if points == 0 {
        return Err(format!(
            "no test point could be scored at horizon {horizon} ({skipped} skipped: too little history before the test part)"
        ));
    }
    let base_mae = acc[persistence].abs / acc[persistence].n as f64;
    let scores = acc
        .iter()
        .zip(names)
        .enumerate()
        .map(|(m, (a, name))| {
            let n = a.n as f64;
            let mae = a.abs / n;
            Score {
                name,
                mae,
                rmse: (a.sq / n).sqrt(),
                mse: a.sq / n,
                smape: 100.0 * a.smape / n,
                mase: mae / base_mae,
                train_seconds: train_seconds.get(m).copied().unwrap_or(0.0),
                infer_micros: a.infer_ns as f64 / 1e3 / a.calls.max(1) as f64,
                anomaly_share: a.flagged as f64 / n,
                mae_trusted: a.trusted_abs / a.trusted_n.max(1) as f64,
                mae_untrusted: if a.untrusted_n == 0 {
                    f64::NAN
                } else {
                    a.untrusted_abs / a.untrusted_n as f64
                },
                untrusted_share: a.untrusted_n as f64 / n,
                quantiles: EVAL_QUANTILES
                    .iter()
                    .enumerate()
                    .map(|(j, q)| QuantileScore {
                        q: *q,
                        pinball: a.pinball[j] / n,
                        coverage: a.covered[j] as f64 / n,
                        source: if own[m].is_empty() {
                            "residual band"
                        } else {
                            "model"
                        },
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(Evaluation {
        horizon,
        points,
        skipped,
        scores,
        plot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baselines::{Persistence, SeasonalNaive};

    #[test]
    fn scores_are_on_the_same_points_and_mase_is_relative_to_persistence() {
        // A pure daily pattern (period 24 steps): seasonal naive is exact, persistence is not.
        let period = 24;
        let values: Vec<f64> = (0..period * 20)
            .map(|i| {
                50.0 + 40.0 * ((i % period) as f64 / period as f64 * std::f64::consts::TAU).sin()
            })
            .collect();
        let series = Series::from_values(0, 3600, &values);
        let split = Split::new(values.len(), 0.5, 0.2).unwrap();
        let mut models: Vec<Box<dyn Forecaster>> = vec![
            Box::new(Persistence::new()),
            Box::new(SeasonalNaive::new("seasonal-naive", 3600, period)),
        ];
        let e = evaluate(
            &series,
            split,
            &mut models,
            &[0.0, 0.0],
            3,
            AnomalyConfig::default(),
            |_, _| {},
        )
        .unwrap();
        assert_eq!(e.points, values.len() - split.val_end - 3);
        assert_eq!(e.scores[0].mase, 1.0);
        assert!(e.scores[1].mae < 1e-9, "{:?}", e.scores[1]);
        assert!(e.scores[0].mae > 10.0);
        assert!((e.scores[0].rmse.powi(2) - e.scores[0].mse).abs() < 1e-9);
        // Quantiles: the exact model covers everything with zero loss; persistence's residual
        // band covers more at higher quantiles, and its 0.5 pinball is half its MAE or less.
        let exact = &e.scores[1].quantiles;
        assert!(
            exact.iter().all(|q| q.pinball < 1e-9 && q.coverage == 1.0),
            "{exact:?}"
        );
        let p = &e.scores[0].quantiles;
        assert_eq!(p.len(), EVAL_QUANTILES.len());
        assert!(
            p.windows(2).all(|w| w[0].coverage <= w[1].coverage),
            "{p:?}"
        );
        assert!(p[3].coverage > 0.9, "{p:?}");
        assert_eq!(p[0].source, "residual band");
    }

    #[test]
    fn pinball_loss_weighs_under_and_over_forecasts_by_the_quantile() {
        assert!((pinball_loss(0.9, 14.0, 10.0) - 3.6).abs() < 1e-12);
        assert!((pinball_loss(0.9, 6.0, 10.0) - 0.4).abs() < 1e-12);
        assert_eq!(pinball_loss(0.5, 3.0, 3.0), 0.0);
        // At q = 0.5 it is half the absolute error.
        assert!((pinball_loss(0.5, 1.0, 5.0) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn evaluation_without_persistence_is_an_error() {
        let series = Series::from_values(0, 60, &[1.0; 100]);
        let split = Split::new(100, 0.5, 0.2).unwrap();
        let mut models: Vec<Box<dyn Forecaster>> = vec![Box::new(SeasonalNaive::new("s", 60, 5))];
        assert!(evaluate(
            &series,
            split,
            &mut models,
            &[],
            2,
            AnomalyConfig::default(),
            |_, _| {}
        )
        .is_err());
    }
}
