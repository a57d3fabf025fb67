//! One way to put an autoscaler together, whatever drives it: the experiment (a forecaster
//! fitted once on a trace's training part, copied per run; the oracle's true future), the
//! live loop, the standalone controller and the KEDA scaler (an LSTM from a file or trained
//! in the background on history), and the demo (the live loop on an embedded model).
//! [`AutoscalerSpec::build`] picks the forecaster, its horizon and its features, warms it on
//! the history and builds the [`Autoscaler`].

use std::path::PathBuf;

use foresight_forecast::{ForecastConfig, Forecaster, Lstm, RetrainPolicy, Series};

use crate::learner::Learner;
use crate::{Autoscaler, Chooser, ForecasterSpec, Foresight, Planning, Settings, StepClock};

/// Steps forecast when a model with no horizon of its own cannot be loaded: the loop then
/// scales reactively, and the planner still needs a size.
const FAILED_MODEL_HORIZON: usize = 15;

/// History `auto` needs before it chooses live: a day (its last 30%, some 7 hours, scores).
pub const AUTO_MIN_HISTORY_SECS: i64 = 86_400;

/// The window of the moving average `auto` plans with until it has chosen (the live loop's
/// moving average).
const AUTO_INTERIM_WINDOW: usize = 5;

struct Built {
    chooser: Chooser,
    horizon: usize,
}

/// `auto` live: chooses on the history it is fed (the warm history, then live steps), with a
/// model from a file as its LSTM candidate when one is given.
fn chooser(
    settings: &Settings,
    clock: &StepClock,
    source: ModelSource,
    mut training: ForecastConfig,
    retrain: Option<RetrainPolicy>,
) -> Result<Built, String> {
    let lstm = match source {
        ModelSource::File(dir) => match Lstm::load(&dir) {
            Ok(m) if !m.meta().features.is_empty() => {
                return Err(format!(
                    "{} was trained with features; `auto` chooses among forecasters of the load \
                     alone (use forecaster = \"lstm\" for a model with features)",
                    dir.display()
                ))
            }
            Ok(m) => Some(m),
            Err(e) => {
                tracing::error!(model = %dir.display(), error = %e, "cannot load the model; auto trains its own lstm candidate");
                None
            }
        },
        ModelSource::Spec | ModelSource::Train(_) => None,
        ModelSource::Fitted(_) | ModelSource::Oracle(_) => {
            return Err("auto is fitted already or needs no fitting here".into())
        }
    };
    if let Some(m) = &lstm {
        training.lstm = m.meta().config.clone();
    }
    let horizon = training.lstm.horizon;
    let per_step = clock.step_secs.max(f64::MIN_POSITIVE);
    let predictive = &settings.params.predictive;
    // Scored within the forecast: a lead past the horizon plans at its end.
    let lead_steps = ((predictive.lead / per_step).ceil().max(1.0) as usize).min(horizon.max(1));
    let plan = Planning {
        lead_steps,
        margin_steps: ((predictive.margin / per_step).round() as usize)
            .min(horizon.saturating_sub(lead_steps)),
        quantile: settings.quantile,
        horizon,
    };
    let step = clock.model_step.max(1);
    let interim = ForecasterSpec::MovingAverage {
        window: AUTO_INTERIM_WINDOW,
    }
    .build_simple(step)
    .expect("the moving average needs no fitting");
    let min_history = (AUTO_MIN_HISTORY_SECS / step) as usize;
    Ok(Built {
        chooser: Chooser::new(training, plan, step, interim, lstm, retrain, min_history),
        horizon,
    })
}

/// Where the forecaster's model comes from.
pub enum ModelSource {
    /// The forecaster needs no fitting: built from its [`ForecasterSpec`] (or none).
    Spec,
    /// An LSTM directory written by `foresight train`. One that cannot be loaded is logged,
    /// and the autoscaler scales reactively while its forecaster says why.
    File(PathBuf),
    /// An LSTM trained on this history in a background thread; the autoscaler scales
    /// reactively until the model is ready.
    Train(Series),
    /// A forecaster fitted already (the experiment fits once and gives every run a copy).
    Fitted(Box<dyn Forecaster + Send>),
    /// The true future, requests per second of every step from the first (simulator only).
    Oracle(Vec<f64>),
}

/// Everything an autoscaler is made of.
pub struct AutoscalerSpec {
    /// Policy, its parameters, limits and the planned quantile.
    pub settings: Settings,
    /// Which forecaster ([`ForecasterSpec::None`]: reactive policies only).
    pub forecaster: ForecasterSpec,
    /// Where its model comes from.
    pub model: ModelSource,
    /// Training settings of an LSTM trained here or retrained live.
    pub training: ForecastConfig,
    /// Retraining of a live LSTM (`None`: never).
    pub retrain: Option<RetrainPolicy>,
    /// (model time, requests) of the steps before the first one stepped, oldest first: the
    /// forecaster forecasts from the first step.
    pub history: Vec<(i64, f64)>,
    /// Units and times of the forecaster's steps.
    pub clock: StepClock,
    /// Steps forecast by forecasters without a horizon of their own.
    pub horizon: usize,
    /// Names of the features the driver can read each step (`[control.features]`); a model
    /// trained with features must be given exactly these.
    pub features: Vec<String>,
}

/// A built autoscaler and the features its forecaster takes, in its order.
pub struct Assembled {
    /// The autoscaler.
    pub autoscaler: Autoscaler,
    /// Feature names in the order the forecaster takes them (the driver reads them so).
    pub features: Vec<String>,
}

impl AutoscalerSpec {
    /// Builds the forecaster from its source, warms it on the history and builds the
    /// autoscaler. Errors name the problem: a model trained with other features than the
    /// driver reads, a forecaster that needs fitting given none, an oracle without the future.
    pub fn build(self) -> Result<Assembled, String> {
        let AutoscalerSpec {
            settings,
            forecaster: spec,
            model,
            training,
            retrain,
            history,
            clock,
            horizon,
            features,
        } = self;
        let mut order = Vec::new();
        let (mut forecaster, horizon): (Box<dyn Forecaster + Send>, usize) = match model {
            ModelSource::Oracle(rates) => {
                let a = Autoscaler::build(
                    &settings,
                    Foresight::Oracle { rates, clock },
                    spec.as_str(),
                )?;
                return Ok(Assembled {
                    autoscaler: a,
                    features: order,
                });
            }
            _ if settings.policy == crate::PolicySpec::Oracle => {
                return Err("the oracle policy needs the true future (simulator only)".into())
            }
            _ if spec == ForecasterSpec::None => {
                let a = Autoscaler::build(&settings, Foresight::None, spec.as_str())?;
                return Ok(Assembled {
                    autoscaler: a,
                    features: order,
                });
            }
            ModelSource::Fitted(f) => (f, spec.horizon_within(horizon)),
            source if spec == ForecasterSpec::Auto => {
                let mut c = chooser(&settings, &clock, source, training, retrain)?;
                c.chooser.warm(&history);
                let autoscaler = Autoscaler::build(
                    &settings,
                    Foresight::Forecaster {
                        model: Box::new(c.chooser),
                        horizon: c.horizon,
                        clock,
                    },
                    spec.as_str(),
                )?;
                return Ok(Assembled {
                    autoscaler,
                    features: order,
                });
            }
            ModelSource::Spec => {
                let f = spec.build_simple(clock.model_step).ok_or_else(|| {
                    format!("forecaster {spec} must be fitted on data (not available here)")
                })?;
                (f, spec.horizon_within(horizon))
            }
            ModelSource::File(dir) => match Lstm::load(&dir) {
                Ok(m) => {
                    let trained: Vec<String> =
                        m.meta().features.iter().map(|(n, _)| n.clone()).collect();
                    let (mut a, mut b) = (trained.clone(), features.clone());
                    a.sort();
                    b.sort();
                    if a != b {
                        return Err(format!(
                            "{} was trained with the features [{}]; `control.features` has [{}] \
                             (give each of the model's features a PromQL query, or train the \
                             model on what you can query)",
                            dir.display(),
                            trained.join(", "),
                            features.join(", ")
                        ));
                    }
                    order = trained;
                    let l = Learner::loaded(m, training, retrain);
                    let h = l.horizon();
                    (Box::new(l), h)
                }
                Err(e) => {
                    tracing::error!(model = %dir.display(), error = %e, "cannot load the model; scaling reactively (hpa) until it is fixed");
                    let l = Learner::Failed(format!("cannot load {}: {e}", dir.display()));
                    (Box::new(l), FAILED_MODEL_HORIZON)
                }
            },
            ModelSource::Train(series) => {
                tracing::info!(points = series.values.len(), "training the lstm on the history in the background; scaling reactively until it is ready");
                let l = Learner::train(series, training, retrain);
                let h = l.horizon();
                (Box::new(l), h)
            }
        };
        for (t, v) in &history {
            forecaster.observe(*t, *v, &[]);
        }
        let foresight = Foresight::Forecaster {
            model: forecaster,
            horizon,
            clock,
        };
        let autoscaler =
            Autoscaler::build(&settings, foresight, spec.as_str())?.with_features(order.len());
        Ok(Assembled {
            autoscaler,
            features: order,
        })
    }
}
