//! Simulated requests per second of wall time, per algorithm of a scenario file.
//! `cargo run --release -p foresight-sim --example speed -- bench/sim-speed.toml [runs]`
use std::path::Path;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("scenario file");
    let runs: usize = args.next().map_or(5, |r| r.parse().expect("runs"));
    let file = foresight_sim::file::ScenarioFile::load(Path::new(&path)).expect("scenario");
    for alg in &file.algorithms {
        let mut s = file.scenario.clone();
        s.algorithm = *alg;
        let mut rates: Vec<f64> = (0..runs)
            .map(|_| {
                let out = foresight_sim::run(&s).expect("run");
                out.arrived as f64 / out.wall.as_secs_f64() / 1e6
            })
            .collect();
        let each = format!("{rates:.2?}");
        rates.sort_by(f64::total_cmp);
        println!(
            "{alg}: median {:.2} M/s, best {:.2} {each}",
            rates[runs / 2],
            rates[runs - 1]
        );
    }
}
