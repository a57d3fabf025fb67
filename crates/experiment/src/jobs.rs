//! The runs an experiment does: every policy at its default, and along its frontier (the
//! knob sweep).

use foresight_autoscale::{PolicySpec, FLOOR_TARGET};
use foresight_scale::{HpaConfig, PredictiveConfig};

use crate::options::{Options, Selected};

/// One run to do: a policy at one knob value.
#[derive(Clone, Debug)]
pub struct Job {
    /// The policy's name in the results (`hybrid-lstm`, `static-peak`, …).
    pub name: String,
    /// Its family.
    pub kind: PolicySpec,
    /// The swept setting: the static size, a utilisation target, or the cost-optimal goal.
    pub knob: f64,
    /// The planned quantile (`--quantile` unless the sweep sets it).
    pub quantile: Option<f64>,
    /// A policy at its defaults (in the defaults table), not a sweep point.
    pub default: bool,
}

impl Job {
    /// The knob as shown beside the policy's name (`n=12`, `target=0.7 q=0.9`).
    pub fn knob_label(&self) -> String {
        match self.kind {
            PolicySpec::Static => format!("n={}", self.knob),
            PolicySpec::CostOptimal => format!("goal={}", self.knob),
            PolicySpec::Predictive | PolicySpec::Hybrid if self.quantile.is_some() => {
                format!(
                    "target={} q={}",
                    self.knob,
                    self.quantile.unwrap_or_default()
                )
            }
            PolicySpec::Hybrid => format!(
                "target={} floor={:.2}",
                self.knob,
                crate::assemble::hybrid_floor_target(self.knob)
            ),
            _ => format!("target={}", self.knob),
        }
    }
}

/// Every run for a trace whose static fleets are `static_mean` and `static_peak` instances,
/// with `fname` the forecaster's name, in the order they are reported.
pub(crate) fn jobs(a: &Options, fname: &str, static_mean: usize, static_peak: usize) -> Vec<Job> {
    let job = |name: &str, kind, knob: f64, default| Job {
        name: name.to_string(),
        kind,
        knob,
        quantile: None,
        default,
    };
    let (hpa, target) = (
        HpaConfig::default().target,
        PredictiveConfig::default().target,
    );
    let p = format!("predictive-{fname}");
    let h = format!("hybrid-{fname}");
    let c = format!("cost-optimal-{fname}");
    let mut v = vec![
        job("static-peak", PolicySpec::Static, static_peak as f64, true),
        job("static-mean", PolicySpec::Static, static_mean as f64, true),
        job("hpa", PolicySpec::Hpa, hpa, true),
        job("reactive", PolicySpec::Reactive, FLOOR_TARGET, true),
        job(&p, PolicySpec::Predictive, target, true),
        job(&h, PolicySpec::Hybrid, target, true),
        job(&c, PolicySpec::CostOptimal, a.slo_goal, true),
        job("oracle", PolicySpec::Oracle, target, true),
    ];
    if !a.no_sweep {
        let span = static_peak.saturating_sub(static_mean).max(4);
        for k in 1..=4 {
            let n = static_mean + span * k / 5;
            if n != static_peak {
                v.push(job("static", PolicySpec::Static, n as f64, false));
            }
        }
        for t in [0.3, 0.45, 0.75, 0.9] {
            v.push(job("hpa", PolicySpec::Hpa, t, false));
        }
        for t in [0.45, 0.6, 0.75, 0.95] {
            v.push(job("reactive", PolicySpec::Reactive, t, false));
        }
        for t in [0.4, 0.55, 0.85, 0.95] {
            v.push(job(&p, PolicySpec::Predictive, t, false));
            v.push(job(&h, PolicySpec::Hybrid, t, false));
            v.push(job("oracle", PolicySpec::Oracle, t, false));
        }
        // The planned quantile at the default target.
        for q in [0.5, 0.8, 0.9, 0.99] {
            if (q - a.quantile).abs() > 1e-9 {
                for (name, kind) in [(&p, PolicySpec::Predictive), (&h, PolicySpec::Hybrid)] {
                    v.push(Job {
                        quantile: Some(q),
                        ..job(name, kind, target, false)
                    });
                }
            }
        }
        // With exponential service of mean 1/μ, P(S > SLO) bounds what any size can reach.
        for g in [0.9, 0.95, 0.98] {
            if (g - a.slo_goal).abs() > 1e-9 {
                v.push(job(&c, PolicySpec::CostOptimal, g, false));
            }
        }
    }
    v.into_iter()
        .filter(|j| {
            a.policies.is_empty()
                || a.policies.iter().any(|p| match p {
                    Selected::Spec(spec) => *spec == j.kind,
                    // Either static size brings the static sweep (its frontier) along.
                    Selected::StaticPeak | Selected::StaticMean => j.kind == PolicySpec::Static,
                })
        })
        .collect()
}
