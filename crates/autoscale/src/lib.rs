//! # foresight-autoscale
//!
//! The one autoscaler that every part of the product steps: `foresight experiment` in the
//! simulator, the live control loop of `foresight serve`, and `foresight demo`. An
//! [`Autoscaler`] owns the forecast at the provisioning lead with its upper band (a quantile
//! of the realised errors), the anomaly detector's trust, the scaling policy and the
//! [`foresight_scale::Governor`]; it is pure and time-injected: a [`Sample`] of what the pool
//! showed in, a [`Step`] with the decision out. Policies and forecasters are named by typed
//! specs ([`PolicySpec`], [`ForecasterSpec`]) parsed in one place, so a name means the same
//! object in the experiment's flags and the live configuration.
//!
//! What it leaves to others: the policies themselves (`foresight-scale`), the forecasters
//! (`foresight-forecast`), measuring and actuating (the simulator, `foresight-control`).
//!
//! # Layout
//! - `assemble`: [`AutoscalerSpec`] and its one `build()`, [`ModelSource`]
//! - `fit`: [`Fitted`], forecasters fitted once on a trace and copied per run
//! - `select`: [`Planning`], [`score`]: a candidate forecaster scored as the autoscaler plans
//! - `learner`: [`Learner`], the live LSTM (loaded, trained in the background, retrained)
//! - `chooser`: [`Chooser`], `auto` live: the forecaster chosen on recent history, again at
//!   every retraining
//! - `spec`: [`PolicySpec`], [`ForecasterSpec`], [`PolicyParams`]
//! - `planner`: [`Planner`], per-step requests to planned rates with a band and trust
//! - `autoscaler`: [`Autoscaler`], [`Sample`], [`Step`]
//! - `interruption`: [`Interruption`], scale-in held while the load stops dead
//! - `timing`: [`Timing`], the plan widened for load that comes early or late
//! - `tail`: [`TailBand`], standing headroom for the load no forecast places
//! - `features`: [`FeatureSteps`], feature readings averaged per forecaster step
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod assemble;
mod autoscaler;
mod chooser;
mod features;
mod fit;
mod interruption;
mod learner;
mod planner;
mod select;
mod spec;
mod tail;
mod timing;

pub use assemble::{Assembled, AutoscalerSpec, ModelSource, AUTO_MIN_HISTORY_SECS};
pub use autoscaler::{Autoscaler, Sample, Step};
pub use chooser::Chooser;
pub use features::FeatureSteps;
pub use fit::Fitted;
pub use interruption::{Interruption, IMPLAUSIBLE_SILENCE};
pub use learner::Learner;
pub use planner::{Planner, StepClock, BAND_MIN_POINTS, RESIDUAL_WINDOW, UPPER_QUANTILE};
pub use select::{pinball, score, Planning, Score};
pub use spec::{
    ForecasterSpec, PolicyParams, PolicySpec, UnknownName, DAY_OF_MINUTES, FLOOR_TARGET,
    FORECAST_SCALE_IN_WINDOW,
};
pub use tail::{margin_for, TailBand, TAIL_SHARE, TAIL_WINDOW};
pub use timing::{widen, Timing, MAX_WIDEN};

use foresight_forecast::Forecaster;
use foresight_scale::{Governor, Limits};

/// How an autoscaler is set up, whatever drives it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// The policy.
    pub policy: PolicySpec,
    /// Its settings.
    pub params: PolicyParams,
    /// The governor's limits.
    pub limits: Limits,
    /// Log decisions, change nothing.
    pub dry_run: bool,
    /// The quantile of realised errors added to the expected rate (the band).
    pub quantile: f64,
    /// Widest widening of the plan for load that comes early or late, steps each side (0:
    /// off; at most [`MAX_WIDEN`]); see [`Timing`].
    pub widen: usize,
    /// The share of the load the plan may leave above itself, for the [`TailBand`]'s margin
    /// (0, the default: off; [`TAIL_SHARE`] suits heavy tails); forecast-driven policies only.
    pub tail_share: f64,
    /// Longest scale-in hold through an interruption of the load, seconds (0: off); forecast-
    /// driven policies only (see [`Interruption`]).
    pub interruption_hold: f64,
}

/// The default [`Settings::interruption_hold`]: an hour, longer than the outages and drops of
/// the development workloads (chosen on development seeds; docs/scaling.md).
pub const INTERRUPTION_HOLD: f64 = 3600.0;

/// Where the planned load comes from.
pub enum Foresight {
    /// No forecast: reactive policies only.
    None,
    /// A forecaster (warmed up to the clock's first step), forecasting `horizon` steps.
    Forecaster {
        /// The model.
        model: Box<dyn Forecaster + Send>,
        /// Steps forecast.
        horizon: usize,
        /// Units and times of its steps.
        clock: StepClock,
    },
    /// The true future: request rates per step from the first (simulator only).
    Oracle {
        /// Requests per second of each step.
        rates: Vec<f64>,
        /// Units and times of its steps.
        clock: StepClock,
    },
}

impl Autoscaler {
    /// Builds the autoscaler for these settings; `forecaster` names the model in tables.
    pub fn build(
        s: &Settings,
        foresight: Foresight,
        forecaster: &str,
    ) -> Result<Autoscaler, String> {
        let p = &s.params.predictive;
        let lead_steps = |step: f64| (p.lead / step).ceil().max(1.0) as usize;
        let forecasting = matches!(foresight, Foresight::Forecaster { .. });
        let (planner, step_secs) = match foresight {
            Foresight::None => (None, 60.0),
            Foresight::Forecaster {
                model,
                horizon,
                clock,
            } => (
                Some(Planner::new(
                    model,
                    horizon,
                    lead_steps(clock.step_secs),
                    clock,
                )),
                clock.step_secs,
            ),
            Foresight::Oracle { rates, clock } => {
                let steps = ((p.lead + p.margin) / clock.step_secs).ceil() as usize + 1;
                (
                    Some(Planner::oracle(
                        rates,
                        steps,
                        lead_steps(clock.step_secs),
                        clock,
                    )),
                    clock.step_secs,
                )
            }
        };
        let margin_steps = (p.margin / step_secs).round() as usize;
        let planner = planner.map(|pl| {
            pl.with_quantile(s.quantile)
                .with_margin_steps(margin_steps)
                .with_widening(s.widen)
                .with_tail_share(if forecasting { s.tail_share } else { 0.0 })
        });
        let governor = Governor::new(s.policy.build(&s.params, forecaster), s.limits, s.dry_run)?;
        let autoscaler = Autoscaler::new(planner, governor, step_secs, p.lead, p.margin);
        Ok(if forecasting && s.interruption_hold > 0.0 {
            autoscaler.with_interruption_hold(s.interruption_hold)
        } else {
            autoscaler
        })
    }
}
