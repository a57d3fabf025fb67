//! What a trace's runs say, read off each policy family's frontier: the instance-hours at
//! which it reaches the goal, and its latency, queueing and attainment at the HPA's cost.

use std::collections::BTreeMap;

use foresight_autoscale::Fitted;
use serde::Serialize;

use crate::run::RunResult;

/// Family name of a run for frontiers: static-peak and static-mean belong to `static`.
fn family(name: &str) -> String {
    if name.starts_with("static") {
        "static".into()
    } else {
        name.to_string()
    }
}

/// One run on its family's frontier.
#[derive(Clone, Debug, Serialize)]
pub struct FrontierPoint {
    /// The run's knob.
    pub knob: f64,
    /// The planned quantile (predictive policies).
    pub quantile: f64,
    /// Instance-hours paid for.
    pub instance_hours: f64,
    /// SLO attainment.
    pub slo_attainment: f64,
    /// p99 response time.
    pub p99_ms: f64,
    /// Mean response time.
    pub mean_ms: f64,
    /// p99 queueing delay.
    pub p99_queue_ms: f64,
}

/// Smallest instance-hours at which the frontier reaches `goal` (linear between points).
fn hours_at_goal(f: &[FrontierPoint], goal: f64) -> Option<f64> {
    let mut pts: Vec<&FrontierPoint> = f.iter().collect();
    pts.sort_by(|a, b| a.instance_hours.total_cmp(&b.instance_hours));
    let first = pts.iter().position(|p| p.slo_attainment >= goal)?;
    if first == 0 {
        return Some(pts[0].instance_hours);
    }
    let (lo, hi) = (pts[first - 1], pts[first]);
    let d = hi.slo_attainment - lo.slo_attainment;
    if d <= 0.0 {
        return Some(hi.instance_hours);
    }
    let f = ((goal - lo.slo_attainment) / d).clamp(0.0, 1.0);
    Some(lo.instance_hours + f * (hi.instance_hours - lo.instance_hours))
}

/// A measure of the frontier at `hours` (linear between the points around it; None outside
/// the frontier's range).
fn at_hours(f: &[FrontierPoint], hours: f64, value: impl Fn(&FrontierPoint) -> f64) -> Option<f64> {
    let mut pts: Vec<&FrontierPoint> = f.iter().collect();
    pts.sort_by(|a, b| a.instance_hours.total_cmp(&b.instance_hours));
    for w in pts.windows(2) {
        let (a, b) = (w[0], w[1]);
        if hours >= a.instance_hours && hours <= b.instance_hours {
            let d = b.instance_hours - a.instance_hours;
            let f = if d > 0.0 {
                (hours - a.instance_hours) / d
            } else {
                0.0
            };
            return Some(value(a) + f * (value(b) - value(a)));
        }
    }
    pts.iter()
        .find(|p| (p.instance_hours - hours).abs() < 1e-9)
        .map(|p| value(p))
}

/// What a run's frontiers say, read at the goal and at the HPA's cost.
pub struct Summary {
    /// Every run of each policy family, by instance-hours.
    pub frontiers: BTreeMap<String, Vec<FrontierPoint>>,
    /// The HPA's instance-hours at its default (0 without an HPA run).
    pub hpa_hours: f64,
    /// Instance-hours at which each family reaches the goal (none: never).
    pub at_goal: BTreeMap<String, Option<f64>>,
    /// p99 response time at the HPA's cost.
    pub p99_at_hpa: BTreeMap<String, Option<f64>>,
    /// Mean response time at the HPA's cost.
    pub mean_at_hpa: BTreeMap<String, Option<f64>>,
    /// p99 queueing delay at the HPA's cost.
    pub queue_at_hpa: BTreeMap<String, Option<f64>>,
    /// SLO attainment at the HPA's cost.
    pub attainment_at_hpa: BTreeMap<String, Option<f64>>,
}

/// Reads the runs' frontiers.
pub fn summarise(runs: &[RunResult], goal: f64) -> Summary {
    let mut frontiers: BTreeMap<String, Vec<FrontierPoint>> = Default::default();
    for r in runs {
        frontiers
            .entry(family(&r.name))
            .or_default()
            .push(FrontierPoint {
                knob: r.knob,
                quantile: r.quantile,
                instance_hours: r.instance_hours,
                slo_attainment: r.slo_attainment,
                p99_ms: r.p99_ms,
                mean_ms: r.mean_ms,
                p99_queue_ms: r.queue_p99_ms,
            });
    }
    for f in frontiers.values_mut() {
        f.sort_by(|a, b| a.instance_hours.total_cmp(&b.instance_hours));
    }
    let hpa_hours = runs
        .iter()
        .find(|r| r.default && r.name == "hpa")
        .map(|r| r.instance_hours)
        .unwrap_or(0.0);
    let read = |value: fn(&FrontierPoint) -> f64| {
        frontiers
            .iter()
            .map(|(n, f)| (n.clone(), at_hours(f, hpa_hours, value)))
            .collect()
    };
    Summary {
        at_goal: frontiers
            .iter()
            .map(|(n, f)| (n.clone(), hours_at_goal(f, goal)))
            .collect(),
        p99_at_hpa: read(|p| p.p99_ms),
        mean_at_hpa: read(|p| p.mean_ms),
        queue_at_hpa: read(|p| p.p99_queue_ms),
        attainment_at_hpa: read(|p| p.slo_attainment),
        hpa_hours,
        frontiers,
    }
}

/// `auto`'s choice and every candidate's score on the validation part (null for a named
/// forecaster).
pub fn choice_json(fitted: &Fitted) -> serde_json::Value {
    match fitted.choice() {
        None => serde_json::Value::Null,
        Some((chosen, scores)) => serde_json::json!({
            "chosen": chosen,
            "scores": scores.iter().map(|s| serde_json::json!({
                "forecaster": s.name,
                "pinball": s.pinball,
                "coverage": s.coverage,
                "windows": s.windows,
            })).collect::<Vec<_>>(),
        }),
    }
}
