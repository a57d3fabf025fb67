//! `foresight report --jtl FILE`: a JTL file, written by JMeter or by `loadgen --jtl`, read
//! into the summary table `loadgen` prints (by label, overall, by thread group; the statuses),
//! with JSON and plots (a latency CDF per label, the samples and response times over time).

use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use foresight_loadgen::jtl::{Reader, Tally};

use crate::{failure, usage_error};

/// Labels drawn in the CDF, the busiest first; the table lists all.
const CDF_LABELS: usize = 8;

#[derive(Args)]
pub struct ReportArgs {
    /// The JTL file (CSV with a header line, as JMeter writes with
    /// `jmeter.save.saveservice.output_format=csv`, or `loadgen --jtl`).
    #[arg(long)]
    jtl: PathBuf,
    /// Write the summary as JSON here (the fields of `loadgen --json`).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write latency-cdf.svg and timeline.svg into this directory.
    #[arg(long)]
    plots: Option<PathBuf>,
    /// No progress.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(a: ReportArgs) -> ExitCode {
    let file = match std::fs::File::open(&a.jtl) {
        Ok(f) => f,
        Err(e) => return usage_error(format!("--jtl {}: {e}", a.jtl.display())),
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = crate::progress::bar(a.quiet, size, "[{bar:30}] {bytes}/{total_bytes} {msg}");
    let reader = match Reader::new(BufReader::new(bar.wrap_read(file))) {
        Ok(r) => r,
        Err(e) => return usage_error(format!("{}: {e:#}", a.jtl.display())),
    };
    let mut tally = Tally::default();
    for (i, record) in reader.enumerate() {
        match record {
            Ok(r) => tally.add(&r),
            Err(e) => return usage_error(format!("{}: {e:#}", a.jtl.display())),
        }
        if i % 100_000 == 0 {
            bar.set_message(format!("{i} samples"));
        }
    }
    bar.finish_and_clear();
    let r = tally.report();
    println!(
        "{}: {} samples over {:.1} s ({:.1} started per second), errors {}, non-2xx {}, \
         failed (JMeter's success=false) {}",
        a.jtl.display(),
        r.sent,
        tally.span_s(),
        r.send_rps,
        r.errors,
        r.failures() - r.errors,
        tally.failed()
    );
    crate::loadgen::print_table(&r);
    if let Some(path) = &a.json {
        let mut json = serde_json::json!({
            "jtl": a.jtl.display().to_string(),
            "samples": r.sent,
            "failed": tally.failed(),
            "span_s": tally.span_s(),
        });
        if let Some(m) = json.as_object_mut() {
            m.extend(crate::loadgen::summary_json(&r));
        }
        let text = serde_json::to_string_pretty(&json).unwrap_or_default() + "\n";
        if let Err(e) = std::fs::write(path, text) {
            return failure(format!("cannot write {}: {e}", path.display()));
        }
        println!("wrote {}", path.display());
    }
    if let Some(dir) = &a.plots {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return failure(format!("cannot create {}: {e}", dir.display()));
        }
        let name = a.jtl.file_name().map_or_else(
            || a.jtl.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut labels: Vec<_> = tally.label_histograms().collect();
        labels.sort_by_key(|(_, h)| std::cmp::Reverse(h.len()));
        let series: Vec<(String, &hdrhistogram::Histogram<u64>)> = labels
            .into_iter()
            .take(CDF_LABELS)
            .map(|(l, h)| (l.to_string(), h))
            .collect();
        let cdf = dir.join("latency-cdf.svg");
        let title = format!("{name}: response time by label");
        if let Err(e) = crate::plot::latency_cdf(&cdf, &title, &series, 1000.0) {
            return failure(format!("cannot write {}: {e:#}", cdf.display()));
        }
        let timeline = dir.join("timeline.svg");
        if let Err(e) = crate::plot::jtl_timeline(&timeline, &name, tally.timeline()) {
            return failure(format!("cannot write {}: {e:#}", timeline.display()));
        }
        println!("wrote {} and {}", cdf.display(), timeline.display());
    }
    ExitCode::SUCCESS
}
