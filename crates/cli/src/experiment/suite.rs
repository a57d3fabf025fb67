//! `foresight experiment --suite DIR`: every workload of a suite run as one `--trace` run is,
//! on both cores (`schedule`: every workload fitted first, then all their runs), then the
//! share of workloads on which each policy reaches the goal and the spread of its cost
//! against the oracle, the HPA and a static fleet: a table per workload, an aggregate table,
//! JSON and a CDF plot.

use std::collections::BTreeMap;

use foresight_workload::suite::Workload;
use serde::Serialize;

use super::report::summarise;
use super::*;

/// Most workloads one suite run takes.
const MAX_WORKLOADS: usize = 1000;

/// One workload's outcome, read off its frontiers.
#[derive(Clone, Debug, Serialize)]
struct WorkloadResult {
    name: String,
    /// The generator's parameters in a line (`—` for a trace without them).
    shape: String,
    /// `auto`'s choice and the candidates' scores (null for a named forecaster).
    forecaster_choice: serde_json::Value,
    /// The tail band's share, and with `--tail-share auto` the trials it was chosen by.
    tail_share: f64,
    /// Minutes the plan may be widened by (`--widen`, or auto's choice).
    widen: usize,
    tail_share_choice: Option<TailChoice>,
    hpa_hours: f64,
    instance_hours_at_goal: BTreeMap<String, Option<f64>>,
    slo_attainment_at_hpa_cost: BTreeMap<String, Option<f64>>,
    p99_queue_ms_at_hpa_cost: BTreeMap<String, Option<f64>>,
    mean_ms_at_hpa_cost: BTreeMap<String, Option<f64>>,
}

/// One policy family over the suite.
#[derive(Clone, Debug, Default, Serialize)]
struct Aggregate {
    policy: String,
    workloads: usize,
    reaches_goal: usize,
    /// Instance-hours at the goal over the oracle's, where both reach it.
    vs_oracle: Spread,
    /// ... over the HPA's, where both reach it.
    vs_hpa: Spread,
    /// ... over a static fleet's, where both reach it.
    vs_static: Spread,
    /// Workloads where it needs more than static at the goal, or misses a goal static meets.
    worse_than_static: Vec<String>,
    /// Median SLO attainment at the HPA's cost.
    median_attainment_at_hpa_cost: Option<f64>,
    /// Median of its p99 queueing delay over the HPA's, at the HPA's cost.
    median_p99_queue_vs_hpa: Option<f64>,
}

/// Median and worst of a ratio, and where the worst is.
#[derive(Clone, Debug, Default, Serialize)]
struct Spread {
    n: usize,
    median: Option<f64>,
    worst: Option<f64>,
    worst_workload: Option<String>,
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
fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

pub(super) fn run(a: &ExperimentArgs, dir: &Path) -> Result<(), Failure> {
    let usage = Failure::Usage;
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
    eprintln!(
        "experiment: suite {} — {} workloads on two threads (every one fitted, then all their runs); forecaster {}; seed {}",
        dir.display(),
        traces.len(),
        a.forecaster,
        a.seed
    );
    let multi = if a.quiet {
        MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    } else {
        MultiProgress::new()
    };
    let overall = multi.add(crate::progress::bar(
        a.quiet,
        traces.len() as u64,
        "workloads [{bar:30}] {pos}/{len} {elapsed} eta {eta}",
    ));
    let runs = multi.add(crate::progress::bar(
        a.quiet,
        0,
        "runs      [{bar:30}] {pos}/{len} (of the workloads fitted so far)",
    ));
    let bars: Vec<ProgressBar> = (0..2)
        .map(|_| {
            multi.add(crate::progress::bar(
                a.quiet,
                1000,
                "{prefix:>30} [{bar:30}] {percent:>3}%",
            ))
        })
        .collect();
    let outcomes = schedule::run(
        traces.len(),
        bars.len(),
        |w, i| {
            let p = prepare_workload(a, &traces[i], &bars[w])?;
            runs.inc_length(p.jobs.len() as u64);
            let jobs = p.jobs.len();
            Ok::<_, Failure>((p, jobs))
        },
        |w, p, j| {
            let r = run_job(&p.jobs[j], a, &p.setup, &p.fitted, &bars[w]);
            runs.inc(1);
            r
        },
        |i, p, results| {
            let r = finish_workload(a, &traces[i], &p, results);
            overall.inc(1);
            r
        },
    );
    for bar in bars {
        bar.finish_and_clear();
    }
    runs.finish_and_clear();
    overall.finish_and_clear();
    let results: Vec<WorkloadResult> = (outcomes.into_iter())
        .map(|o| o.and_then(|r| r.map_err(Failure::Other)))
        .collect::<Result<_, _>>()?;
    report_suite(a, dir, &results)
}

/// Loads one workload and fits its forecaster, shown on `bar`.
fn prepare_workload(
    a: &ExperimentArgs,
    trace: &Path,
    bar: &ProgressBar,
) -> Result<Prepared, Failure> {
    let name = trace
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    bar.set_prefix(format!("{name}: fitting {}", a.forecaster));
    bar.set_position(0);
    let mut prepared = prepare(a, trace, true)?;
    prepared.label = format!("{name} ");
    Ok(prepared)
}

/// One workload's outcome from its runs (in job order), read off its frontiers.
fn finish_workload(
    a: &ExperimentArgs,
    trace: &Path,
    prepared: &Prepared,
    runs: Vec<Result<RunResult, String>>,
) -> Result<WorkloadResult, String> {
    let runs: Vec<RunResult> = runs.into_iter().collect::<Result<_, _>>()?;
    let name = prepared.label.trim_end().to_string();
    let s = summarise(&runs, a.slo_goal);
    let shape = std::fs::read_to_string(trace.with_extension("json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Workload>(&t).ok())
        .map_or_else(|| "—".to_string(), |w| w.describe());
    Ok(WorkloadResult {
        forecaster_choice: super::report::choice_json(&prepared.fitted),
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

fn aggregate(results: &[WorkloadResult]) -> Vec<Aggregate> {
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

fn report_suite(a: &ExperimentArgs, dir: &Path, results: &[WorkloadResult]) -> Result<(), Failure> {
    let families: Vec<String> = results
        .first()
        .map(|r| r.instance_hours_at_goal.keys().cloned().collect())
        .unwrap_or_default();
    println!(
        "## Suite {} — instance-hours to reach {:.1}% within {} ms, per workload\n",
        dir.display(),
        100.0 * a.slo_goal,
        a.slo_ms
    );
    println!(
        "| workload | {} | forecaster | shape |",
        families.join(" | ")
    );
    println!("|---|{}---|---|", "---|".repeat(families.len()));
    for r in results {
        let cells: Vec<String> = families
            .iter()
            .map(|f| {
                r.instance_hours_at_goal
                    .get(f)
                    .copied()
                    .flatten()
                    .map_or("—".into(), |h| format!("{h:.1}"))
            })
            .collect();
        let chosen = r.forecaster_choice["chosen"]
            .as_str()
            .unwrap_or(a.forecaster.as_str());
        println!(
            "| {} | {} | {} | {} |",
            r.name,
            cells.join(" | "),
            chosen,
            r.shape
        );
    }
    let agg = aggregate(results);
    println!(
        "\n## Suite {} — aggregate over {} workloads\n",
        dir.display(),
        results.len()
    );
    println!("| policy | reaches the goal | × oracle median | × oracle worst | × hpa median | × hpa worst | × static median | × static worst | more than static on | SLO attainment at hpa's cost (median) | p99 queueing at hpa's cost, × hpa (median) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let x = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.2}"));
    for g in &agg {
        println!(
            "| {} | {}/{} ({:.0}%) | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            g.policy,
            g.reaches_goal,
            g.workloads,
            100.0 * g.reaches_goal as f64 / g.workloads.max(1) as f64,
            x(g.vs_oracle.median),
            x(g.vs_oracle.worst),
            x(g.vs_hpa.median),
            x(g.vs_hpa.worst),
            x(g.vs_static.median),
            x(g.vs_static.worst),
            g.worse_than_static.len(),
            g.median_attainment_at_hpa_cost
                .map_or("—".into(), |v| format!("{:.2}%", 100.0 * v)),
            x(g.median_p99_queue_vs_hpa),
        );
    }
    if let Some(path) = &a.json {
        let json = serde_json::json!({
            "suite": dir.display().to_string(),
            "settings": {
                "provision_delay_secs": a.provision_delay.as_secs_f64(),
                "slo_ms": a.slo_ms,
                "slo_goal": a.slo_goal,
                "capacity_rps": a.capacity_rps,
                "forecaster": a.forecaster.to_string(),
                "seed": a.seed,
            },
            "workloads": results,
            "aggregate": agg,
        });
        let text =
            serde_json::to_string_pretty(&json).map_err(|e| Failure::Other(e.to_string()))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| Failure::Other(format!("cannot write {}: {e}", path.display())))?;
    }
    if let Some(plots) = &a.plots {
        std::fs::create_dir_all(plots)
            .map_err(|e| Failure::Other(format!("cannot create {}: {e}", plots.display())))?;
        let lines: Vec<(String, Vec<Option<f64>>)> = families
            .iter()
            .filter(|f| *f != "oracle")
            .map(|f| {
                let ratios = results
                    .iter()
                    .map(|r| {
                        let g = |n: &str| r.instance_hours_at_goal.get(n).copied().flatten();
                        match (g(f), g("oracle")) {
                            (Some(x), Some(o)) if o > 0.0 => Some(x / o),
                            _ => None,
                        }
                    })
                    .collect();
                (f.clone(), ratios)
            })
            .collect();
        crate::plot::ratio_cdf(&plots.join("suite.svg"), &lines, results.len())
            .map_err(|e| Failure::Other(e.to_string()))?;
    }
    Ok(())
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
