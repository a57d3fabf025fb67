//! `foresight experiment --suite DIR`: every workload of a suite run as one `--trace` run is,
//! on both cores (`foresight_experiment::schedule`: every workload fitted first, then all
//! their runs), with progress bars; then a table per workload, the aggregate table, JSON and
//! a CDF plot.

use std::path::Path;

use foresight_experiment::schedule;
use foresight_experiment::suite::{aggregate, finish_workload, workloads, WorkloadResult};

use super::*;

pub(super) fn run(args: &ExperimentArgs, a: &Options, dir: &Path) -> Result<(), Error> {
    let traces = workloads(dir)?;
    eprintln!(
        "experiment: suite {} — {} workloads on two threads (every one fitted, then all their runs); forecaster {}; seed {}",
        dir.display(),
        traces.len(),
        a.forecaster,
        a.seed
    );
    let multi = if args.quiet {
        MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    } else {
        MultiProgress::new()
    };
    let overall = multi.add(crate::progress::bar(
        args.quiet,
        traces.len() as u64,
        "workloads [{bar:30}] {pos}/{len} {elapsed} eta {eta}",
    ));
    let runs = multi.add(crate::progress::bar(
        args.quiet,
        0,
        "runs      [{bar:30}] {pos}/{len} (of the workloads fitted so far)",
    ));
    let bars: Vec<ProgressBar> = (0..2)
        .map(|_| {
            multi.add(crate::progress::bar(
                args.quiet,
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
            Ok::<_, Error>((p, jobs))
        },
        |w, p, j| {
            let r = run_on_bar(&p.jobs[j], a, p, &bars[w]);
            runs.inc(1);
            r
        },
        |i, p, results| {
            let r = finish_workload(a.slo_goal, &traces[i], &p, results);
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
        .map(|o| o.and_then(|r| r.map_err(Error::Run)))
        .collect::<Result<_, _>>()?;
    report_suite(args, a, dir, &results)
}

/// Loads one workload and fits its forecaster, shown on `bar`.
fn prepare_workload(a: &Options, trace: &Path, bar: &ProgressBar) -> Result<Prepared, Error> {
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

fn report_suite(
    args: &ExperimentArgs,
    a: &Options,
    dir: &Path,
    results: &[WorkloadResult],
) -> Result<(), Error> {
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
    if let Some(path) = &args.json {
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
        let text = serde_json::to_string_pretty(&json).map_err(|e| Error::Run(e.to_string()))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| Error::Run(format!("cannot write {}: {e}", path.display())))?;
    }
    if let Some(plots) = &args.plots {
        std::fs::create_dir_all(plots)
            .map_err(|e| Error::Run(format!("cannot create {}: {e}", plots.display())))?;
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
            .map_err(|e| Error::Run(e.to_string()))?;
    }
    Ok(())
}
