//! `foresight train` and `foresight forecast {eval,predict}`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use foresight_forecast::pipeline::Dataset;
use foresight_forecast::{
    evaluate, Aggregate, Evaluation, ForecastConfig, Forecaster, Lstm, Series,
};

use crate::{failure, usage_error};

/// Where the data come from and how they are read.
#[derive(Args, Clone)]
pub struct DataArgs {
    /// CSV: `minute,count` (the shared traces) or `timestamp,value[,feature...]`.
    #[arg(long)]
    trace: PathBuf,
    /// Resample to this step, e.g. 1m or 5m [default: the file's own step].
    #[arg(long, value_parser = humantime::parse_duration)]
    step: Option<Duration>,
    /// How values within one step are combined when resampling: sum or mean.
    #[arg(long, default_value = "sum")]
    aggregate: Aggregate,
    /// TOML with [data], [lstm] and [anomaly] sections (docs/forecasting.md).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Seed (overrides lstm.seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Maximum training epochs (overrides lstm.epochs).
    #[arg(long)]
    epochs: Option<usize>,
    /// Do not draw progress bars.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Directory for model.safetensors and model.json.
    #[arg(long)]
    out: PathBuf,
    /// Forecast horizon in minutes (5–30 in the paper's setting).
    #[arg(long, default_value_t = 15)]
    horizon: u64,
}

#[derive(Subcommand)]
pub enum ForecastCommand {
    /// Train every model on the training part and score them on the test part.
    Eval(EvalArgs),
    /// Forecast the steps after the end of a series with a saved model.
    Predict(PredictArgs),
}

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Horizon in minutes: models are scored on the point this far ahead.
    #[arg(long, default_value_t = 15)]
    horizon: u64,
    /// Use this saved model (from `foresight train`) instead of training one.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write forecast vs actual over the first test week as SVG here.
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Args)]
pub struct PredictArgs {
    /// Model directory written by `foresight train`.
    #[arg(long)]
    model: PathBuf,
    /// CSV whose last points are the history to forecast from.
    #[arg(long)]
    trace: PathBuf,
    /// How values within one step are combined when resampling: sum or mean.
    #[arg(long, default_value = "sum")]
    aggregate: Aggregate,
}

struct Loaded {
    cfg: ForecastConfig,
    dataset: Dataset,
    horizon_steps: usize,
}

fn horizon_steps(minutes: u64, step: i64) -> Result<usize, String> {
    let secs = minutes as i64 * 60;
    if minutes == 0 || secs % step != 0 {
        return Err(format!(
            "invalid value for `--horizon`: {minutes} minutes is not a whole, positive number of {step} s steps"
        ));
    }
    Ok((secs / step) as usize)
}

fn load(data: &DataArgs, horizon_minutes: u64) -> Result<Loaded, String> {
    let mut cfg = match &data.config {
        Some(p) => ForecastConfig::load(p)?,
        None => ForecastConfig::default(),
    };
    if let Some(s) = data.seed {
        cfg.lstm.seed = s;
    }
    if let Some(e) = data.epochs {
        cfg.lstm.epochs = e;
    }
    let step = match data.step {
        Some(d) if d.as_secs() == 0 || d.subsec_nanos() != 0 => {
            return Err("invalid value for `--step`: use whole seconds, e.g. 60s or 5m".into())
        }
        Some(d) => Some(d.as_secs() as i64),
        None => None,
    };
    let series = Series::load(&data.trace, step, data.aggregate).map_err(|e| e.to_string())?;
    let horizon = horizon_steps(horizon_minutes, series.step)?;
    cfg.lstm.horizon = horizon;
    cfg.validate()?;
    let dataset = Dataset::new(series, &cfg.data).map_err(|e| e.to_string())?;
    let r = &dataset.report;
    eprintln!(
        "{}: {} steps of {} s, {} with data; {} gaps, {} steps filled (≤ {} steps), {} long gaps kept as splits{}; Hampel filter replaced {} of {} training/validation points; split train/validation/test = {}/{}/{}",
        data.trace.display(),
        r.steps,
        dataset.series.step,
        r.present,
        r.gaps,
        r.filled,
        cfg.data.max_fill,
        r.long_gaps.len(),
        r.long_gaps
            .iter()
            .map(|(t, n)| format!(
                " [{} +{} steps]",
                chrono_time(*t),
                n
            ))
            .collect::<String>(),
        r.cleaned.replaced,
        r.cleaned.points,
        r.split.train_end,
        r.split.val_end - r.split.train_end,
        r.split.len - r.split.val_end,
    );
    Ok(Loaded {
        cfg,
        dataset,
        horizon_steps: horizon,
    })
}

fn chrono_time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| t.to_string())
}

fn train_lstm(l: &Loaded, quiet: bool) -> Result<(Lstm, f64), String> {
    let started = Instant::now();
    let model = crate::progress::train_lstm(&l.dataset, &l.cfg.lstm, quiet)?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "lstm: {} epochs in {:.1} s, best validation loss {:.6} ({} on 0–1 scaled values)",
        model.meta().epochs_run,
        secs,
        model.meta().val_loss,
        format!("{:?}", model.meta().config.loss).to_lowercase()
    );
    Ok((model, secs))
}

pub fn train(args: TrainArgs) -> ExitCode {
    let l = match load(&args.data, args.horizon) {
        Ok(l) => l,
        Err(e) => return usage_error(e),
    };
    let (model, _) = match train_lstm(&l, args.data.quiet) {
        Ok(m) => m,
        Err(e) => return failure(e),
    };
    if let Err(e) = model.save(&args.out) {
        return failure(e);
    }
    println!("foresight train: model={}", args.out.display());
    ExitCode::SUCCESS
}

pub fn forecast(cmd: ForecastCommand) -> ExitCode {
    match cmd {
        ForecastCommand::Eval(a) => eval(a),
        ForecastCommand::Predict(a) => predict(a),
    }
}

fn eval(args: EvalArgs) -> ExitCode {
    let l = match load(&args.data, args.horizon) {
        Ok(l) => l,
        Err(e) => return usage_error(e),
    };
    let (lstm, lstm_secs) = match &args.model {
        Some(dir) => {
            let m = match Lstm::load(dir) {
                Ok(m) => m,
                Err(e) => return usage_error(e),
            };
            if let Err(e) = m.check_compatible(
                l.dataset.series.step,
                &l.dataset.feature_names(),
                l.horizon_steps,
            ) {
                return usage_error(format!("{}: {e}", dir.display()));
            }
            (m, 0.0)
        }
        None => match train_lstm(&l, args.data.quiet) {
            Ok(m) => m,
            Err(e) => return failure(e),
        },
    };
    let mut models: Vec<Box<dyn Forecaster>> = vec![Box::new(lstm)];
    let mut secs = vec![lstm_secs];
    if !l.dataset.has_history_for(7 * l.dataset.day()) {
        eprintln!("seasonal-naive-weekly left out: less than a week of gap-free history before the test part");
    }
    for (m, s) in l.dataset.baselines(l.horizon_steps) {
        models.push(m);
        secs.push(s);
    }
    let bar = crate::progress::bar(
        args.data.quiet,
        1,
        "evaluating [{bar:30}] {percent:>3}% {elapsed}",
    );
    let result = evaluate(
        &l.dataset.series,
        l.dataset.report.split,
        &mut models,
        &secs,
        l.horizon_steps,
        l.cfg.anomaly,
        |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    );
    bar.finish_and_clear();
    let e = match result {
        Ok(e) => e,
        Err(e) => return usage_error(e),
    };
    print_table(&args, &l, &e);
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "trace": args.data.trace.display().to_string(),
            "horizon_minutes": args.horizon,
            "horizon_steps": l.horizon_steps,
            "step_secs": l.dataset.series.step,
            "test_points": e.points,
            "skipped_points": e.skipped,
            "data": l.dataset.report,
            "config": l.cfg,
            "models": e.scores,
        });
        if let Err(err) = write_json(path, &json) {
            return failure(err);
        }
    }
    if let Some(path) = &args.plot {
        let names: Vec<String> = e.scores.iter().map(|s| s.name.clone()).collect();
        let title = format!(
            "{}: forecast {} min ahead vs actual, first test week",
            args.data
                .trace
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default(),
            args.horizon
        );
        if let Err(err) =
            crate::plot::forecast_vs_actual(path, &title, &names, &e.plot, l.dataset.series.step)
        {
            return failure(err);
        }
    }
    ExitCode::SUCCESS
}

fn write_json(path: &Path, v: &serde_json::Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(v)?;
    std::fs::write(path, text + "\n")
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

fn print_table(args: &EvalArgs, l: &Loaded, e: &Evaluation) {
    println!(
        "trace {} horizon {} min ({} steps), {} test points ({} skipped)",
        args.data.trace.display(),
        args.horizon,
        l.horizon_steps,
        e.points,
        e.skipped
    );
    println!(
        "{:<22} {:>10} {:>10} {:>8} {:>6} {:>9} {:>9} {:>9} {:>11} {:>13}",
        "model",
        "MAE",
        "RMSE",
        "sMAPE%",
        "MASE",
        "train s",
        "infer µs",
        "anomalies",
        "untrusted",
        "MAE trust/un"
    );
    for s in &e.scores {
        println!(
            "{:<22} {:>10.3} {:>10.3} {:>8.2} {:>6.3} {:>9.2} {:>9.1} {:>8.2}% {:>10.2}% {:>6.1}/{:<6.1}",
            s.name,
            s.mae,
            s.rmse,
            s.smape,
            s.mase,
            s.train_seconds,
            s.infer_micros,
            100.0 * s.anomaly_share,
            100.0 * s.untrusted_share,
            s.mae_trusted,
            s.mae_untrusted,
        );
    }
    println!("\nquantiles (pinball loss, coverage = share of actuals at or below; `band`: point forecast + the quantile of its last 240 errors)");
    let header: Vec<String> = foresight_forecast::eval::EVAL_QUANTILES
        .iter()
        .map(|q| format!("{:>18}", format!("q{q}")))
        .collect();
    println!("{:<22} {:>6} {}", "model", "from", header.join(""));
    for s in &e.scores {
        let cells: Vec<String> = s
            .quantiles
            .iter()
            .map(|q| {
                format!(
                    "{:>18}",
                    format!("{:.3} / {:.1}%", q.pinball, 100.0 * q.coverage)
                )
            })
            .collect();
        let from = if s.quantiles.first().is_some_and(|q| q.source == "model") {
            "model"
        } else {
            "band"
        };
        println!("{:<22} {:>6} {}", s.name, from, cells.join(""));
    }
}

fn predict(args: PredictArgs) -> ExitCode {
    let mut model = match Lstm::load(&args.model) {
        Ok(m) => m,
        Err(e) => return usage_error(e),
    };
    let step = model.meta().step_secs;
    let series = match Series::load(&args.trace, Some(step), args.aggregate) {
        Ok(s) => s,
        Err(e) => return usage_error(e),
    };
    let names: Vec<String> = series.features.iter().map(|f| f.name.clone()).collect();
    let horizon = model.meta().config.horizon;
    if let Err(e) = model.check_compatible(series.step, &names, horizon) {
        return usage_error(format!("{}: {e}", args.model.display()));
    }
    let Some(last) = series.segments().pop() else {
        return usage_error(format!("{}: no data", args.trace.display()));
    };
    for (i, v) in last.values.iter().enumerate() {
        let f = last.features.get(i).map(Vec::as_slice).unwrap_or(&[]);
        model.observe(last.start + i as i64 * step, *v, f);
    }
    let Some(fc) = model.forecast(horizon) else {
        return usage_error(format!(
            "{}: the last gap-free stretch has {} steps; the model needs {}",
            args.trace.display(),
            last.values.len(),
            model.meta().config.seq_len
        ));
    };
    let end = last.start + (last.values.len() as i64 - 1) * step;
    println!("time,forecast");
    for (k, v) in fc.iter().enumerate() {
        println!("{},{v:.3}", chrono_time(end + (k as i64 + 1) * step));
    }
    ExitCode::SUCCESS
}
