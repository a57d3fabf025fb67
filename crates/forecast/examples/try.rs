use std::time::Instant;
use foresight_forecast::*;
fn main() {
    init_threads();
    let args: Vec<String> = std::env::args().collect();
    let path = &args[1];
    let horizon: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(15);
    let mut cfg = LstmConfig { horizon, ..Default::default() };
    if let Some(e) = args.get(3) { cfg.epochs = e.parse().unwrap(); }
    if let Some(e) = args.get(4) { cfg.stride = e.parse().unwrap(); }
    if let Some(e) = args.get(5) { cfg.batch_size = e.parse().unwrap(); }
    if let Some(e) = args.get(6) { cfg.hidden = e.parse().unwrap(); }
    if let Some(e) = args.get(7) { cfg.seq_len = e.parse().unwrap(); }
    let series = Series::load(std::path::Path::new(path), None, Aggregate::Sum).unwrap();
    let ds = Dataset::new(series, &PrepConfig::default()).unwrap();
    eprintln!("{:?}", ds.report.cleaned);
    let (tr, va) = ds.prepared(&cfg);
    let t0 = Instant::now();
    let mut last = 0;
    let lstm = Lstm::train(&cfg, ds.series.step, ds.value_scaler, ds.feature_scalers.clone(), &tr, &va, |p| {
        if p.batch == p.batches && p.epoch != last { last = p.epoch; eprintln!("epoch {} loss {:.5} best val {:.5} t={:.1}s", p.epoch, p.train_loss, p.best_val_loss, t0.elapsed().as_secs_f64()); }
    }).unwrap();
    let train_s = t0.elapsed().as_secs_f64();
    eprintln!("trained in {train_s:.1}s, val {}", lstm.meta().val_loss);
    let t1 = Instant::now();
    let hw = ds.holt_winters(horizon);
    let hw_s = t1.elapsed().as_secs_f64();
    eprintln!("hw {:?} in {hw_s:.2}s", hw.params());
    let (w, ma) = ds.moving_average(horizon);
    eprintln!("ma window {w}");
    let day = ds.day();
    let mut models: Vec<Box<dyn Forecaster>> = vec![Box::new(lstm), Box::new(Persistence::new()), Box::new(SeasonalNaive::new("seasonal-naive", 60, day)), Box::new(SeasonalNaive::new("seasonal-naive-weekly", 60, day*7)), Box::new(ma), Box::new(hw)];
    let e = evaluate(&ds.series, ds.report.split, &mut models, &[train_s, 0.0, 0.0, 0.0, 0.0, hw_s], horizon, AnomalyConfig::default(), |_, _| {}).unwrap();
    for s in &e.scores { println!("{:24} mae {:9.3} rmse {:9.3} smape {:6.2} mase {:.3} infer {:.1}us anom {:.3} trusted {:.2} untrusted {:.2}", s.name, s.mae, s.rmse, s.smape, s.mase, s.infer_micros, s.anomaly_share, s.mae_trusted, s.mae_untrusted); }
}
