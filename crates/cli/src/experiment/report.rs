//! The report of `foresight experiment`: the defaults and the matched comparisons as
//! tables on stdout, the results as JSON, the frontiers and timelines as plots.

use std::collections::BTreeMap;
use std::path::Path;

use foresight_experiment::{choice_json, summarise, FrontierPoint, TICK, WORKERS};

use super::*;

pub(super) fn report(
    args: &ExperimentArgs,
    a: &Options,
    trace: &Path,
    prepared: &Prepared,
    runs: &[RunResult],
) -> Result<(), Error> {
    let (setup, fname) = (&prepared.setup, &prepared.fname);
    let defaults: Vec<&RunResult> = runs.iter().filter(|r| r.default).collect();
    println!(
        "## {} — defaults (SLO {} ms, goal {:.1}%)\n",
        trace.display(),
        a.slo_ms,
        100.0 * a.slo_goal
    );
    println!("| policy | knob | p50 ms | p95 ms | p99 ms | p99.9 ms | mean ms | queue p50 ms | queue p99 ms | SLO attainment | dropped | instance-hours | cost | scale actions |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &defaults {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.3}% | {} | {:.1} | {:.1} | {} |",
            r.name,
            r.knob,
            r.p50_ms,
            r.p95_ms,
            r.p99_ms,
            r.p999_ms,
            r.mean_ms,
            r.queue_p50_ms,
            r.queue_p99_ms,
            100.0 * r.slo_attainment,
            r.dropped,
            r.instance_hours,
            r.cost,
            r.scale_actions
        );
    }
    let sum = summarise(runs, a.slo_goal);
    let hpa_hours = sum.hpa_hours;
    let json_map = |m: &BTreeMap<String, Option<f64>>| {
        m.iter()
            .map(|(k, v)| (k.clone(), serde_json::json!(v)))
            .collect::<serde_json::Map<_, _>>()
    };
    let at_goal = json_map(&sum.at_goal);
    let at_hpa = json_map(&sum.p99_at_hpa);
    let mean_at_hpa = json_map(&sum.mean_at_hpa);
    let queue_at_hpa = json_map(&sum.queue_at_hpa);
    let frontiers = &sum.frontiers;
    println!("\n## Matched comparisons (read off the frontiers)\n");
    println!("| policy | instance-hours to reach {:.1}% within {} ms | vs hpa | p99 ms at hpa's {:.1} instance-hours | vs hpa | mean ms at hpa's cost | p99 queueing ms at hpa's cost | vs hpa |", 100.0 * a.slo_goal, a.slo_ms, hpa_hours);
    println!("|---|---|---|---|---|---|---|---|");
    let hpa_goal = sum.at_goal.get("hpa").copied().flatten();
    let hpa_p99 = sum.p99_at_hpa.get("hpa").copied().flatten();
    let hpa_queue = sum.queue_at_hpa.get("hpa").copied().flatten();
    for name in frontiers.keys() {
        let g = sum.at_goal[name];
        let p = sum.p99_at_hpa[name];
        let mean = sum.mean_at_hpa[name];
        let queue = sum.queue_at_hpa[name];
        let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) if y > 0.0 => format!("{:.0}%", 100.0 * x / y),
            _ => "—".into(),
        };
        let ms = |x: Option<f64>| x.map_or("out of range".into(), |x| format!("{x:.0}"));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            name,
            g.map_or("not reached".into(), |g| format!("{g:.1}")),
            ratio(g, hpa_goal),
            ms(p),
            ratio(p, hpa_p99),
            ms(mean),
            ms(queue),
            ratio(queue, hpa_queue)
        );
    }
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "trace": trace.display().to_string(),
            "settings": {
                "peak_rps": setup.peak_rps,
                "provision_delay_secs": a.provision_delay.as_secs_f64(),
                "slo_ms": a.slo_ms,
                "slo_goal": a.slo_goal,
                "capacity_rps": a.capacity_rps,
                "workers_per_instance": WORKERS,
                "forecaster": fname,
                "seed": a.seed,
                "minutes": setup.counts.len(),
                "cost_per_hour": a.cost_per_hour,
                "controller_interval_secs": TICK.as_secs(),
                "balancer": a.algorithm.to_string(),
                "cold_start_secs": a.cold_start.as_secs_f64(),
                "slow_start_secs": a.slow_start.as_secs_f64(),
            },
            "forecaster_choice": choice_json(&prepared.fitted),
            "tail_share": setup.tail_share,
            "widen": setup.widen,
            "tail_share_choice": prepared.tail_choice,
            "policies": defaults,
            "frontiers": frontiers,
            "matched": {
                "slo_goal": a.slo_goal,
                "instance_hours_at_goal": at_goal,
                "p99_ms_at_hpa_cost": at_hpa,
                "mean_ms_at_hpa_cost": mean_at_hpa,
                "p99_queue_ms_at_hpa_cost": queue_at_hpa,
            },
        });
        let text = serde_json::to_string_pretty(&json).map_err(|e| Error::Run(e.to_string()))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| Error::Run(format!("cannot write {}: {e}", path.display())))?;
    }
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Run(format!("cannot create {}: {e}", dir.display())))?;
        crate::plot::frontiers(
            &dir.join("frontiers.svg"),
            &frontiers_for_plot(frontiers),
            a.slo_goal,
        )
        .map_err(|e| Error::Run(e.to_string()))?;
        let shown: Vec<&RunResult> = defaults
            .iter()
            .copied()
            .filter(|r| {
                r.name == "hpa"
                    || r.name.starts_with("hybrid")
                    || r.name == "oracle"
                    || r.name.starts_with("predictive")
            })
            .collect();
        let lines: Vec<crate::plot::Timeline> = shown
            .iter()
            .map(|r| (r.name.clone(), r.ticks.clone(), r.forecasts.clone()))
            .collect();
        crate::plot::timeline(
            &dir.join("timeline.svg"),
            &lines,
            setup.model.capacity(),
            a.slo_ms,
        )
        .map_err(|e| Error::Run(e.to_string()))?;
        for r in &defaults {
            let path = dir.join(format!("decisions-{}.log", r.name));
            std::fs::write(&path, r.decisions.join("\n") + "\n")
                .map_err(|e| Error::Run(format!("cannot write {}: {e}", path.display())))?;
        }
    }
    Ok(())
}

fn frontiers_for_plot(f: &BTreeMap<String, Vec<FrontierPoint>>) -> Vec<crate::plot::Frontier> {
    f.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.iter()
                    .map(|p| (p.instance_hours, p.slo_attainment, p.p99_ms))
                    .collect(),
            )
        })
        .collect()
}
