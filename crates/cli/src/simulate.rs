//! `foresight simulate`: one scenario, every algorithm it names, the same seed and arrivals.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use foresight_balance::Algorithm;
use foresight_sim::file::ScenarioFile;
use foresight_sim::Outcome;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct SimulateArgs {
    /// Scenario file (TOML; see docs/simulation.md and examples/scenarios/).
    #[arg(long)]
    scenario: PathBuf,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a latency CDF per algorithm here (SVG).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Run these algorithms instead of the file's list, comma-separated.
    #[arg(long, value_delimiter = ',')]
    algorithms: Vec<String>,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Print the results as a markdown section (for docs/balancing.md) instead of the table.
    #[arg(long)]
    markdown: bool,
}

pub fn run(args: SimulateArgs) -> ExitCode {
    let file = match ScenarioFile::load(&args.scenario) {
        Ok(f) => f,
        Err(e) => return crate::usage_error(e),
    };
    let algorithms: Vec<Algorithm> = if args.algorithms.is_empty() {
        file.algorithms.clone()
    } else {
        match args
            .algorithms
            .iter()
            .map(|a| a.parse())
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(a) => a,
            Err(e) => return crate::usage_error(format!("invalid value for `--algorithms`: {e}")),
        }
    };
    let mut scenario = file.scenario.clone();
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    println!(
        "scenario {}: {} instances, {} simulated (+{} warm-up), seed {}",
        file.name,
        scenario.instances.len(),
        humantime::format_duration(scenario.duration),
        humantime::format_duration(scenario.warmup),
        scenario.seed
    );
    let style = ProgressStyle::with_template("{prefix:>22} [{bar:30}] {percent:>3}% {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let mut results: Vec<(Algorithm, Outcome)> = Vec::new();
    for algorithm in algorithms {
        scenario.algorithm = algorithm;
        let bar = ProgressBar::new(1000)
            .with_style(style.clone())
            .with_prefix(algorithm.name());
        let outcome = foresight_sim::run_with_progress(&scenario, &mut |f| {
            bar.set_position((f * 1000.0) as u64)
        });
        bar.finish_and_clear();
        match outcome {
            Ok(o) => results.push((algorithm, o)),
            Err(e) => return crate::usage_error(format!("{}: {e}", args.scenario.display())),
        }
    }
    let simulated: u64 = results.iter().map(|(_, o)| o.arrived).sum();
    let wall: Duration = results.iter().map(|(_, o)| o.wall).sum();
    if args.markdown {
        print_markdown(&file.name, &results);
    } else {
        print_table(&results);
        println!(
            "\n{simulated} requests simulated in {:.2} s of wall time ({:.2} M requests/s)",
            wall.as_secs_f64(),
            simulated as f64 / wall.as_secs_f64().max(1e-9) / 1e6
        );
    }
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "scenario": file.name,
            "seed": scenario.seed,
            "simulated_requests": simulated,
            "wall_seconds": wall.as_secs_f64(),
            "algorithms": results.iter().map(|(a, o)| serde_json::json!({
                "name": a.name(),
                "p50_ms": o.quantile_ms(0.5),
                "p95_ms": o.quantile_ms(0.95),
                "p99_ms": o.quantile_ms(0.99),
                "p999_ms": o.quantile_ms(0.999),
                "dropped": dropped_share(o),
                "dropped_requests": o.dropped,
                "failed_requests": o.failed,
                "imbalance": o.imbalance(),
                "requests": o.arrived,
            })).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&json).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            return crate::failure(format!("cannot write {}: {e}", path.display()));
        }
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        let series: Vec<(String, &hdrhistogram::Histogram<u64>)> = results
            .iter()
            .map(|(a, o)| (a.name().to_string(), &o.response_ns))
            .collect();
        let title = format!("{}: latency CDF", file.name);
        if let Err(e) = crate::plot::latency_cdf(path, &title, &series, 1.0) {
            return crate::failure(format!("cannot write {}: {e:#}", path.display()));
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}

fn dropped_share(o: &Outcome) -> f64 {
    (o.dropped + o.failed) as f64 / o.arrived.max(1) as f64
}

fn print_markdown(name: &str, results: &[(Algorithm, Outcome)]) {
    println!("\n### {name}\n");
    println!("| algorithm | requests | p50 ms | p95 ms | p99 ms | p99.9 ms | dropped or failed | imbalance |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (a, o) in results {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2}% | {:.2} |",
            a.name(),
            o.arrived,
            o.quantile_ms(0.5),
            o.quantile_ms(0.95),
            o.quantile_ms(0.99),
            o.quantile_ms(0.999),
            dropped_share(o) * 100.0,
            o.imbalance()
        );
    }
}

fn print_table(results: &[(Algorithm, Outcome)]) {
    println!(
        "\n{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "algorithm", "requests", "p50 ms", "p95 ms", "p99 ms", "p99.9 ms", "dropped", "imbalance"
    );
    for (a, o) in results {
        println!(
            "{:<22} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8.3}% {:>9.2}",
            a.name(),
            o.arrived,
            o.quantile_ms(0.5),
            o.quantile_ms(0.95),
            o.quantile_ms(0.99),
            o.quantile_ms(0.999),
            dropped_share(o) * 100.0,
            o.imbalance()
        );
    }
}
