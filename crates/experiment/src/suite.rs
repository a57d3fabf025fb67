//! A suite of workloads (`foresight generate suite`): its traces, each workload's outcome
//! read off its frontiers, and the aggregate over the suite (the share of workloads on which
//! each policy reaches the goal, the spread of its cost against the oracle, the HPA and a
//! static fleet).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use foresight_workload::suite::Workload;
use serde::Serialize;

use crate::prepare::Prepared;
use crate::run::RunResult;
use crate::summary::{choice_json, summarise};
use crate::tail_choice::TailChoice;
use crate::Error;

/// Most workloads one suite run takes.
const MAX_WORKLOADS: usize = 1000;

/// One workload's outcome, read off its frontiers.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadResult {
    /// The workload's name (its file stem).
    pub name: String,
    /// The generator's parameters in a line (`—` for a trace without them).
    pub shape: String,
    /// `auto`'s choice and the candidates' scores (null for a named forecaster).
    pub forecaster_choice: serde_json::Value,
    /// The tail band's share, and with `--tail-share auto` the trials it was chosen by.
    pub tail_share: f64,
    /// Minutes the plan may be widened by (`--widen`, or auto's choice).
    pub widen: usize,
    /// With `auto`, the validation runs the tail band and widening were chosen by.
    pub tail_share_choice: Option<TailChoice>,
    /// The HPA's instance-hours at its defaults.
    pub hpa_hours: f64,
    /// Instance-hours at which each family reaches the goal (none: never).
    pub instance_hours_at_goal: BTreeMap<String, Option<f64>>,
    /// Each family's SLO attainment at the HPA's cost.
    pub slo_attainment_at_hpa_cost: BTreeMap<String, Option<f64>>,
    /// Its p99 queueing delay at the HPA's cost.
    pub p99_queue_ms_at_hpa_cost: BTreeMap<String, Option<f64>>,
    /// Its mean response time at the HPA's cost.
    pub mean_ms_at_hpa_cost: BTreeMap<String, Option<f64>>,
}

/// One policy family over the suite.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Aggregate {
    /// The policy family.
    pub policy: String,
    /// Workloads in the suite.
    pub workloads: usize,
    /// Workloads on which it reaches the goal.
    pub reaches_goal: usize,
    /// Instance-hours at the goal over the oracle's, where both reach it.
    pub vs_oracle: Spread,
    /// ... over the HPA's, where both reach it.
    pub vs_hpa: Spread,
    /// ... over a static fleet's, where both reach it.
    pub vs_static: Spread,
    /// Workloads where it needs more than static at the goal, or misses a goal static meets.
    pub worse_than_static: Vec<String>,
    /// Median SLO attainment at the HPA's cost.
    pub median_attainment_at_hpa_cost: Option<f64>,
    /// Median of its p99 queueing delay over the HPA's, at the HPA's cost.
    pub median_p99_queue_vs_hpa: Option<f64>,
}

/// Median and worst of a ratio, and where the worst is.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Spread {
    /// Workloads with a ratio.
    pub n: usize,
    /// Their median.
    pub median: Option<f64>,
    /// The largest.
    pub worst: Option<f64>,
    /// Where the largest is.
    pub worst_workload: Option<String>,
}

fn spread(mut v: Vec<(f64, String)>) -> Spread {
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    Spread {
        n: v.len(),
        median: median(&v.iter().map(|x| x.0).collect::<Vec<_>>()),
        worst: v.last().map(|x| x.0),
        worst_workload: v.last().map(|x| x.1.clone()),
    }
}

/// The median of sorted-or-not values.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The workloads of suite `dir`: its `*.csv` files, sorted; an error names the directory
/// when there are none or too many.
pub fn workloads(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let usage = Error::Usage;
    let entries = std::fs::read_dir(dir).map_err(|e| {
        usage(format!(
            "invalid value for `--suite`: {}: {e}",
            dir.display()
        ))
    })?;
    let mut traces: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    traces.sort();
    if traces.is_empty() {
        return Err(usage(format!(
            "invalid value for `--suite`: {} has no *.csv workload (write one with `foresight generate suite`)",
            dir.display()
        )));
    }
    if traces.len() > MAX_WORKLOADS {
        return Err(usage(format!(
            "invalid value for `--suite`: {} has {} workloads (at most {MAX_WORKLOADS})",
            dir.display(),
            traces.len()
        )));
    }
    Ok(traces)
}

/// One workload's outcome from its runs (in job order), read off its frontiers.
pub fn finish_workload(
    slo_goal: f64,
    trace: &Path,
    prepared: &Prepared,
    runs: Vec<Result<RunResult, String>>,
) -> Result<WorkloadResult, String> {
    let runs: Vec<RunResult> = runs.into_iter().collect::<Result<_, _>>()?;
    let name = prepared.label.trim_end().to_string();
    let s = summarise(&runs, slo_goal);
    let shape = std::fs::read_to_string(trace.with_extension("json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Workload>(&t).ok())
        .map_or_else(|| "—".to_string(), |w| w.describe());
    Ok(WorkloadResult {
        forecaster_choice: choice_json(&prepared.fitted),
        tail_share: prepared.setup.tail_share,
        widen: prepared.setup.widen,
        tail_share_choice: prepared.tail_choice.clone(),
        name,
        shape,
        hpa_hours: s.hpa_hours,
        instance_hours_at_goal: s.at_goal,
        slo_attainment_at_hpa_cost: s.attainment_at_hpa,
        p99_queue_ms_at_hpa_cost: s.queue_at_hpa,
        mean_ms_at_hpa_cost: s.mean_at_hpa,
    })
}

/// Every policy family over the workloads' results.
pub fn aggregate(results: &[WorkloadResult]) -> Vec<Aggregate> {
    let families: std::collections::BTreeSet<&String> = results
        .iter()
        .flat_map(|r| r.instance_hours_at_goal.keys())
        .collect();
    families
        .into_iter()
        .map(|fam| {
            let goal =
                |r: &WorkloadResult, f: &str| r.instance_hours_at_goal.get(f).copied().flatten();
            let ratio_to = |other: &str| {
                spread(
                    results
                        .iter()
                        .filter_map(|r| match (goal(r, fam), goal(r, other)) {
                            (Some(x), Some(y)) if y > 0.0 => Some((x / y, r.name.clone())),
                            _ => None,
                        })
                        .collect(),
                )
            };
            let worse_than_static = results
                .iter()
                .filter(|r| match (goal(r, fam), goal(r, "static")) {
                    (Some(x), Some(s)) => x > s * (1.0 + 1e-9),
                    (None, Some(_)) => true,
                    _ => false,
                })
                .map(|r| r.name.clone())
                .collect();
            let attainment: Vec<f64> = results
                .iter()
                .filter_map(|r| r.slo_attainment_at_hpa_cost.get(fam).copied().flatten())
                .collect();
            let queue: Vec<f64> = results
                .iter()
                .filter_map(|r| {
                    let q = r.p99_queue_ms_at_hpa_cost.get(fam).copied().flatten()?;
                    let h = r.p99_queue_ms_at_hpa_cost.get("hpa").copied().flatten()?;
                    (h > 0.0).then(|| q / h)
                })
                .collect();
            Aggregate {
                policy: fam.clone(),
                workloads: results.len(),
                reaches_goal: results.iter().filter(|r| goal(r, fam).is_some()).count(),
                vs_oracle: ratio_to("oracle"),
                vs_hpa: ratio_to("hpa"),
                vs_static: ratio_to("static"),
                worse_than_static,
                median_attainment_at_hpa_cost: median(&attainment),
                median_p99_queue_vs_hpa: median(&queue),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, goals: &[(&str, Option<f64>)]) -> WorkloadResult {
        WorkloadResult {
            name: name.into(),
            shape: "—".into(),
            forecaster_choice: serde_json::Value::Null,
            tail_share: 0.0,
            widen: 0,
            tail_share_choice: None,
            hpa_hours: 10.0,
            instance_hours_at_goal: goals.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            slo_attainment_at_hpa_cost: BTreeMap::new(),
            p99_queue_ms_at_hpa_cost: BTreeMap::new(),
            mean_ms_at_hpa_cost: BTreeMap::new(),
        }
    }

    #[test]
    fn the_aggregate_counts_goals_and_ratios_where_both_reach_it() {
        let r = vec![
            result(
                "w0",
                &[
                    ("oracle", Some(10.0)),
                    ("static", Some(20.0)),
                    ("hybrid", Some(12.0)),
                ],
            ),
            result(
                "w1",
                &[
                    ("oracle", Some(10.0)),
                    ("static", Some(15.0)),
                    ("hybrid", Some(18.0)),
                ],
            ),
            result(
                "w2",
                &[
                    ("oracle", Some(10.0)),
                    ("static", Some(30.0)),
                    ("hybrid", None),
                ],
            ),
        ];
        let agg = aggregate(&r);
        let h = agg.iter().find(|g| g.policy == "hybrid").unwrap();
        assert_eq!((h.reaches_goal, h.workloads), (2, 3));
        assert_eq!(h.vs_oracle.n, 2);
        assert!((h.vs_oracle.median.unwrap() - 1.5).abs() < 1e-12);
        assert_eq!(h.vs_oracle.worst, Some(1.8));
        assert_eq!(h.vs_oracle.worst_workload.as_deref(), Some("w1"));
        // More than static on w1, and misses the goal static meets on w2.
        assert_eq!(
            h.worse_than_static,
            vec!["w1".to_string(), "w2".to_string()]
        );
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), Some(2.5));
    }
}
