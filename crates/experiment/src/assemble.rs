//! The experiment's side of assembling an autoscaler: each job's settings (the policies'
//! defaults with the job's knob) and its `AutoscalerSpec` (the fitted forecaster, the oracle's
//! true future, or none), and how the runs plan, for `auto`'s scoring.

use foresight_autoscale::{
    AutoscalerSpec, Fitted, ForecasterSpec, ModelSource, Planning, PolicyParams, PolicySpec,
    Settings, StepClock, FLOOR_TARGET,
};
use foresight_forecast::ForecastConfig;
use foresight_scale::{Limits, PredictiveConfig};

use crate::jobs::Job;
use crate::options::Options;
use crate::run::Setup;

/// The autoscaler's settings for one job: the policy's defaults with the job's knob.
pub fn settings_for(job: &Job, a: &Options, setup: &Setup) -> Settings {
    let mut params = PolicyParams::new(setup.model);
    params.predictive = PredictiveConfig {
        target: if matches!(
            job.kind,
            PolicySpec::Predictive | PolicySpec::Hybrid | PolicySpec::Oracle
        ) {
            job.knob
        } else {
            PredictiveConfig::default().target
        },
        lead: a.provision_delay.as_secs_f64(),
        ..PredictiveConfig::default()
    };
    if job.kind == PolicySpec::Hpa {
        params.hpa.target = job.knob;
    }
    if job.kind == PolicySpec::Reactive {
        params.floor.target = job.knob;
    }
    if job.kind == PolicySpec::Hybrid {
        params.floor.target = hybrid_floor_target(job.knob);
    }
    params.static_replicas = job.knob as usize;
    params.slo = a.slo_ms / 1000.0;
    params.goal = if job.kind == PolicySpec::CostOptimal {
        job.knob
    } else {
        a.slo_goal
    };
    Settings {
        policy: job.kind,
        params,
        limits: Limits {
            min: 1,
            max: 200,
            stabilisation: match job.kind {
                PolicySpec::Static | PolicySpec::Hpa | PolicySpec::Reactive => {
                    job.kind.default_scale_in_window()
                }
                _ => a.scale_in_window.as_secs_f64(),
            },
            ..Limits::default()
        },
        dry_run: false,
        quantile: job.quantile.unwrap_or(a.quantile),
        widen: setup.widen,
        tail_share: setup.tail_share,
        interruption_hold: a.interruption_hold.as_secs_f64(),
    }
}

/// The hybrid's floor at a point of its sweep: its headroom knob moves both of its parts. At
/// the default target the floor keeps its own default ([`FLOOR_TARGET`]); below it, the floor's
/// target falls in proportion (0.4 → 0.51, 0.55 → 0.71), so that the dear end of the hybrid's
/// frontier holds standing headroom against load no forecast places (unannounced crowds,
/// heavy tails), as the HPA's and `reactive`'s own sweeps do; above it, the floor stays at its
/// default. (With only the forecast's target swept, the hybrid missed the goal on workloads
/// where the HPA and `reactive` reached it: docs/results.md.)
pub fn hybrid_floor_target(knob: f64) -> f64 {
    FLOOR_TARGET * (knob / PredictiveConfig::default().target).min(1.0)
}

/// The job's autoscaler: the forecaster fitted on the training part (a fresh copy) warmed on
/// the history before the replay, the true future for the oracle, nothing for the reactive
/// policies.
pub fn spec_for(job: &Job, a: &Options, setup: &Setup, fitted: &Fitted) -> AutoscalerSpec {
    let clock = StepClock {
        step_secs: 60.0,
        next_time: setup.start_time,
        model_step: 60,
        to_model: 1.0 / (60.0 * setup.rps_per_count),
    };
    let (forecaster, model) = if job.kind == PolicySpec::Oracle {
        let rates = setup
            .counts
            .iter()
            .map(|c| c * setup.rps_per_count)
            .collect();
        (a.forecaster, ModelSource::Oracle(rates))
    } else if job.kind.uses_forecaster() {
        (a.forecaster, ModelSource::Fitted(fitted.instance(60)))
    } else {
        (ForecasterSpec::None, ModelSource::Spec)
    };
    AutoscalerSpec {
        settings: settings_for(job, a, setup),
        forecaster,
        model,
        training: ForecastConfig::default(),
        retrain: None,
        history: setup.warm.clone(),
        clock,
        horizon: setup.horizon,
        features: Vec::new(),
    }
}

/// How the experiment's autoscalers plan, for `auto`'s scoring: the provisioning delay in
/// minutes, the policies' margin, the planned quantile.
pub fn planning(a: &Options, cfg: &ForecastConfig) -> Planning {
    Planning {
        lead_steps: (a.provision_delay.as_secs_f64() / 60.0).ceil().max(1.0) as usize,
        margin_steps: (PredictiveConfig::default().margin / 60.0).round() as usize,
        quantile: a.quantile,
        horizon: cfg.lstm.horizon,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hybrids_floor_moves_with_its_knob_below_the_default_only() {
        let d = PredictiveConfig::default().target;
        assert_eq!(hybrid_floor_target(d), FLOOR_TARGET);
        assert_eq!(hybrid_floor_target(0.95), FLOOR_TARGET);
        assert!((hybrid_floor_target(0.4) - FLOOR_TARGET * 0.4 / d).abs() < 1e-12);
        // Monotone over the sweep: a lower knob never gives a higher floor.
        let knobs = [0.4, 0.55, 0.7, 0.85, 0.95];
        for w in knobs.windows(2) {
            assert!(hybrid_floor_target(w[0]) <= hybrid_floor_target(w[1]));
        }
    }
}
