//! Plots, as SVG, with plotters and an embedded font (so they render the same on a machine
//! without fonts).

use std::path::Path;
use std::sync::Once;

use hdrhistogram::Histogram;
use plotters::prelude::*;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The embedded file is a valid TrueType font; failure would only lose axis text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

type Linear =
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>;

/// A linear chart from 0 to `x_max` and 0 to `y_max` on `area`, titled, with a labelled mesh:
/// the set-up every time-series panel here shares.
fn panel<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    caption: &str,
    caption_size: u32,
    (x_max, x_desc): (f64, &str),
    (y_max, y_desc): (f64, &str),
) -> anyhow::Result<ChartContext<'a, SVGBackend<'b>, Linear>> {
    let mut c = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", caption_size))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    c.configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 13))
        .draw()?;
    Ok(c)
}

/// The series' legend at `position`, in a `size`-point font on a light box: every plot's.
fn legend<'a, 'b: 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
    position: SeriesLabelPosition,
    size: u32,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", size))
        .draw()?;
    Ok(())
}

/// Latency CDFs (x: milliseconds, log scale; y: share of requests at or below) of several
/// runs in one SVG, from histograms whose unit is `unit_ns` nanoseconds (1 for nanoseconds,
/// 1000 for microseconds).
pub fn latency_cdf(
    path: &Path,
    title: &str,
    series: &[(String, &Histogram<u64>)],
    unit_ns: f64,
) -> anyhow::Result<()> {
    register_font();
    let to_ms = |v: u64| v as f64 * unit_ns / 1e6;
    let nonempty: Vec<_> = series.iter().filter(|(_, h)| !h.is_empty()).collect();
    anyhow::ensure!(
        !nonempty.is_empty(),
        "nothing to plot: no run completed a request"
    );
    let lo = nonempty
        .iter()
        .map(|(_, h)| to_ms(h.value_at_quantile(0.001)))
        .fold(f64::INFINITY, f64::min)
        .max(1e-3);
    let hi = nonempty
        .iter()
        .map(|(_, h)| to_ms(h.value_at_quantile(0.9999)))
        .fold(0.0, f64::max)
        .max(lo * 10.0);
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, log scale)")
        .y_desc("share of requests at or below")
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, (name, h)) in nonempty.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mut points: Vec<(f64, f64)> = (0..=999)
            .map(|k| k as f64 / 1000.0)
            .chain([0.9995, 0.9999])
            .map(|q| (to_ms(h.value_at_quantile(q)).max(lo), q))
            .collect();
        points.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight, 14)?;
    root.present()?;
    Ok(())
}

/// Forecast against actual over time (x: hours from the first point; y: value per step), each
/// line averaged over 10-step bins so that the shape is readable.
pub fn forecast_vs_actual(
    path: &Path,
    title: &str,
    models: &[String],
    points: &[foresight_forecast::eval::PlotPoint],
    step_secs: i64,
) -> anyhow::Result<()> {
    register_font();
    anyhow::ensure!(
        !points.is_empty(),
        "nothing to plot: no test point was scored"
    );
    const BIN: usize = 10;
    let t0 = points[0].time;
    let hours = |t: i64| (t - t0) as f64 / 3600.0;
    let binned = |f: &dyn Fn(&foresight_forecast::eval::PlotPoint) -> f64| -> Vec<(f64, f64)> {
        points
            .chunks(BIN)
            .map(|c| {
                (
                    hours(c[0].time),
                    c.iter().map(f).sum::<f64>() / c.len() as f64,
                )
            })
            .collect()
    };
    let actual = binned(&|p| p.actual);
    let lines: Vec<Vec<(f64, f64)>> = (0..models.len())
        .map(|m| binned(&|p| p.forecasts[m]))
        .collect();
    let ymax = actual
        .iter()
        .chain(lines.iter().flatten())
        .map(|p| p.1)
        .fold(0.0, f64::max)
        * 1.05;
    let xmax = hours(points.last().map_or(t0, |p| p.time)).max(1.0);
    let root = SVGBackend::new(path, (1200, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax.max(1.0))?;
    chart
        .configure_mesh()
        .x_desc("hours from the start of the test part")
        .y_desc(format!("requests per {step_secs} s ({BIN}-step means)"))
        .label_style(("sans-serif", 14))
        .draw()?;
    chart
        .draw_series(LineSeries::new(actual, BLACK.stroke_width(2)))?
        .label("actual")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    for (i, (name, line)) in models.iter().zip(lines).enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let width = if i == 0 { 2 } else { 1 };
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(width)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight, 13)?;
    root.present()?;
    Ok(())
}

/// One policy family's frontier: (instance-hours, SLO attainment, p99 ms) per knob value.
pub type Frontier = (String, Vec<(f64, f64, f64)>);

/// One run over time: name, controller ticks, and (seconds, forecast rate) points.
pub type Timeline = (String, Vec<foresight_sim::Tick>, Vec<(f64, f64)>);

/// Cost–quality frontiers: SLO attainment (left) and p99 (right) against instance-hours, one
/// line per policy family.
pub fn frontiers(path: &Path, lines: &[Frontier], goal: f64) -> anyhow::Result<()> {
    register_font();
    let all: Vec<&(f64, f64, f64)> = lines.iter().flat_map(|(_, v)| v).collect();
    anyhow::ensure!(!all.is_empty(), "nothing to plot");
    let xmin = all.iter().map(|p| p.0).fold(f64::INFINITY, f64::min) * 0.95;
    let xmax = all.iter().map(|p| p.0).fold(0.0, f64::max) * 1.05;
    let ymin = all
        .iter()
        .map(|p| p.1)
        .fold(1.0, f64::min)
        .min(goal)
        .max(0.5)
        - 0.005;
    let pmax = all.iter().map(|p| p.2).fold(1.0, f64::max) * 1.2;
    let pmin = all
        .iter()
        .map(|p| p.2)
        .fold(f64::INFINITY, f64::min)
        .max(1.0)
        * 0.8;
    let root = SVGBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(700);
    let mut a = ChartBuilder::on(&left)
        .caption("SLO attainment vs cost", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(xmin..xmax, ymin..1.0005)?;
    a.configure_mesh()
        .x_desc("instance-hours")
        .y_desc("share of requests within the SLO")
        .label_style(("sans-serif", 13))
        .draw()?;
    a.draw_series(LineSeries::new(
        vec![(xmin, goal), (xmax, goal)],
        BLACK.mix(0.4).stroke_width(1),
    ))?;
    let mut b = ChartBuilder::on(&right)
        .caption("p99 latency vs cost", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(xmin..xmax, (pmin..pmax).log_scale())?;
    b.configure_mesh()
        .x_desc("instance-hours")
        .y_desc("p99 (ms, log scale)")
        .label_style(("sans-serif", 13))
        .draw()?;
    for (i, (name, pts)) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mut pts = pts.clone();
        pts.sort_by(|x, y| x.0.total_cmp(&y.0));
        a.draw_series(LineSeries::new(
            pts.iter().map(|p| (p.0, p.1)),
            color.stroke_width(2),
        ))?
        .label(name.as_str())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        a.draw_series(
            pts.iter()
                .map(|p| Circle::new((p.0, p.1), 3, color.filled())),
        )?;
        b.draw_series(LineSeries::new(
            pts.iter().map(|p| (p.0, p.2.max(pmin))),
            color.stroke_width(2),
        ))?;
        b.draw_series(
            pts.iter()
                .map(|p| Circle::new((p.0, p.2.max(pmin)), 3, color.filled())),
        )?;
    }
    legend(&mut a, SeriesLabelPosition::LowerRight, 13)?;
    root.present()?;
    Ok(())
}

/// Load, forecast and ready capacity over time (top), and mean latency (bottom), per policy.
pub fn timeline(
    path: &Path,
    runs: &[Timeline],
    capacity_rps: f64,
    slo_ms: f64,
) -> anyhow::Result<()> {
    register_font();
    anyhow::ensure!(!runs.is_empty() && !runs[0].1.is_empty(), "nothing to plot");
    let hours = |t: f64| t / 3600.0;
    let xmax = hours(runs[0].1.last().map_or(1.0, |t| t.t)).max(0.1);
    let ymax = runs
        .iter()
        .flat_map(|(_, t, _)| t.iter().map(|x| x.rate.max(x.ready as f64 * capacity_rps)))
        .fold(1.0, f64::max)
        * 1.05;
    let lat_max = runs
        .iter()
        .flat_map(|(_, t, _)| t.iter().map(|x| x.mean_response_ms))
        .fold(slo_ms, f64::max)
        .max(1.0)
        * 1.1;
    let root = SVGBackend::new(path, (1400, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(520);
    let mut a = panel(
        &top,
        "load, forecast and ready capacity",
        20,
        (xmax, "hours"),
        (ymax, "requests per second"),
    )?;
    // Load, smoothed over a minute (4 ticks).
    let load: Vec<(f64, f64)> = runs[0]
        .1
        .chunks(20)
        .map(|c| {
            (
                hours(c[0].t),
                c.iter().map(|x| x.rate).sum::<f64>() / c.len() as f64,
            )
        })
        .collect();
    a.draw_series(LineSeries::new(load, BLACK.stroke_width(1)))?
        .label("load")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    let mut b = panel(
        &bottom,
        "mean response time per 5 minutes",
        18,
        (xmax, "hours"),
        (lat_max, "ms"),
    )?;
    for (i, (name, ticks, forecasts)) in runs.iter().enumerate() {
        let color = Palette99::pick(i + 1).to_rgba();
        // Ticks binned by 20 (5 minutes) so that a week-long run stays a small file: the
        // highest ready count and the mean latency of each bin.
        a.draw_series(LineSeries::new(
            ticks.chunks(20).map(|c| {
                let ready = c.iter().map(|t| t.ready).max().unwrap_or(0);
                (hours(c[0].t), ready as f64 * capacity_rps)
            }),
            color.stroke_width(2),
        ))?
        .label(format!("{name}: ready × capacity"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        if !forecasts.is_empty() {
            a.draw_series(LineSeries::new(
                forecasts.chunks(5).map(|c| {
                    let mean = c.iter().map(|p| p.1).sum::<f64>() / c.len() as f64;
                    (hours(c[0].0), mean)
                }),
                color.mix(0.5).stroke_width(1),
            ))?
            .label(format!("{name}: forecast"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.mix(0.5).stroke_width(1))
            });
        }
        b.draw_series(LineSeries::new(
            ticks.chunks(20).map(|c| {
                let mean = c.iter().map(|t| t.mean_response_ms).sum::<f64>() / c.len() as f64;
                (hours(c[0].t), mean)
            }),
            color.stroke_width(1),
        ))?;
    }
    legend(&mut a, SeriesLabelPosition::UpperRight, 12)?;
    root.present()?;
    Ok(())
}

/// `foresight demo`: load, forecast and instance capacity over trace minutes per policy (top),
/// and instances (bottom).
pub fn live_demo(
    path: &Path,
    runs: &[(String, Vec<crate::demo::Point>)],
    capacity_rps: f64,
) -> anyhow::Result<()> {
    register_font();
    anyhow::ensure!(runs.iter().any(|r| !r.1.is_empty()), "nothing to plot");
    let xmax = runs
        .iter()
        .flat_map(|r| r.1.last().map(|p| p.minute))
        .fold(1.0, f64::max);
    let ymax = runs
        .iter()
        .flat_map(|r| {
            r.1.iter()
                .map(|p| p.rps.max(p.instances as f64 * capacity_rps))
        })
        .fold(1.0, f64::max)
        * 1.05;
    let nmax = runs
        .iter()
        .flat_map(|r| r.1.iter().map(|p| p.instances))
        .max()
        .unwrap_or(1) as f64
        + 1.0;
    let root = SVGBackend::new(path, (1200, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(480);
    let mut a = panel(
        &top,
        "load, forecast and ready capacity",
        20,
        (xmax, "trace minutes since 06:00"),
        (ymax, "requests per second"),
    )?;
    let mut b = panel(
        &bottom,
        "instances (ready + starting)",
        18,
        (xmax, "trace minutes since 06:00"),
        (nmax, "instances"),
    )?;
    for (i, (name, points)) in runs.iter().enumerate() {
        let color = Palette99::pick(i + 1).to_rgba();
        if i == 0 {
            a.draw_series(LineSeries::new(
                points.iter().map(|p| (p.minute, p.rps)),
                BLACK.stroke_width(1),
            ))?
            .label("load (observed)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
        }
        a.draw_series(LineSeries::new(
            points
                .iter()
                .map(|p| (p.minute, p.ready as f64 * capacity_rps)),
            color.stroke_width(2),
        ))?
        .label(format!("{name}: ready × capacity"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        if points.iter().any(|p| p.forecast_rps > 0.0) {
            a.draw_series(LineSeries::new(
                points
                    .iter()
                    .filter(|p| p.forecast_rps > 0.0)
                    .map(|p| (p.minute, p.forecast_rps)),
                color.mix(0.5).stroke_width(1),
            ))?
            .label(format!(
                "{name}: planned load (forecast + band, at the lead)"
            ))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.mix(0.5).stroke_width(1))
            });
        }
        b.draw_series(LineSeries::new(
            points.iter().map(|p| (p.minute, p.instances as f64)),
            color.stroke_width(2),
        ))?;
    }
    legend(&mut a, SeriesLabelPosition::UpperLeft, 12)?;
    root.present()?;
    Ok(())
}

/// Over the workloads of a suite, the share (y) whose instance-hours at the goal are at most
/// x times the oracle's, one step line per policy; a workload where the policy (or the oracle)
/// never reaches the goal never counts, so such a line stays below 1.
pub fn ratio_cdf(
    path: &Path,
    lines: &[(String, Vec<Option<f64>>)],
    workloads: usize,
) -> anyhow::Result<()> {
    register_font();
    anyhow::ensure!(workloads > 0 && !lines.is_empty(), "nothing to plot");
    let finite: Vec<f64> = lines
        .iter()
        .flat_map(|(_, v)| v.iter().flatten().copied())
        .collect();
    let xmax = finite.iter().copied().fold(1.5, f64::max).min(4.0) * 1.05;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut c = ChartBuilder::on(&root)
        .caption(
            "Cost at the SLO goal over the oracle's, across workloads",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(1.0..xmax, 0.0..1.02)?;
    c.configure_mesh()
        .x_desc("instance-hours at the goal ÷ oracle's (capped at 4)")
        .y_desc("share of workloads at or below")
        .label_style(("sans-serif", 13))
        .draw()?;
    for (i, (name, ratios)) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mut v: Vec<f64> = ratios.iter().flatten().map(|r| r.min(xmax)).collect();
        v.sort_by(f64::total_cmp);
        let mut pts = vec![(1.0, 0.0)];
        for (k, r) in v.iter().enumerate() {
            pts.push((*r, k as f64 / workloads as f64));
            pts.push((*r, (k + 1) as f64 / workloads as f64));
        }
        if let Some(last) = pts.last().copied() {
            pts.push((xmax, last.1));
        }
        c.draw_series(LineSeries::new(pts, color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    legend(&mut c, SeriesLabelPosition::LowerRight, 13)?;
    root.present()?;
    Ok(())
}

/// A JTL file over time: samples and failures per second (top), mean and longest response
/// time per bin (bottom); x in seconds from the first bin.
pub fn jtl_timeline(
    path: &Path,
    title: &str,
    t: &foresight_loadgen::jtl::Timeline,
) -> anyhow::Result<()> {
    register_font();
    anyhow::ensure!(
        !t.bins.is_empty(),
        "nothing to plot: the file has no sample"
    );
    let width_s = t.width_ms as f64 / 1000.0;
    let xs = |i: usize| i as f64 * width_s;
    let x_max = xs(t.bins.len()).max(width_s);
    let rate: Vec<(f64, f64)> = (t.bins.iter().enumerate())
        .map(|(i, b)| (xs(i), b.count as f64 / width_s))
        .collect();
    let failed: Vec<(f64, f64)> = (t.bins.iter().enumerate())
        .map(|(i, b)| (xs(i), b.failed as f64 / width_s))
        .collect();
    let mean: Vec<(f64, f64)> = (t.bins.iter().enumerate())
        .filter(|(_, b)| b.count > 0)
        .map(|(i, b)| (xs(i), b.sum_ms as f64 / b.count as f64))
        .collect();
    let max: Vec<(f64, f64)> = (t.bins.iter().enumerate())
        .filter(|(_, b)| b.count > 0)
        .map(|(i, b)| (xs(i), b.max_ms as f64))
        .collect();
    let root = SVGBackend::new(path, (1100, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let (upper, lower) = root.split_vertically(350);
    let x_desc = format!("seconds from the first sample ({width_s} s bins)");
    let panels = [
        (
            &upper,
            title,
            20,
            "samples per second",
            [("samples", rate, BLUE), ("failed", failed, RED)],
        ),
        (
            &lower,
            "response time",
            16,
            "ms",
            [("mean", mean, BLACK), ("longest", max, RED)],
        ),
    ];
    for (area, caption, size, y_desc, lines) in panels {
        let y_max = (lines.iter().flat_map(|l| l.1.iter()))
            .map(|p| p.1)
            .fold(1.0, f64::max)
            * 1.05;
        let mut c = panel(area, caption, size, (x_max, &x_desc), (y_max, y_desc))?;
        for (name, line, color) in lines {
            c.draw_series(LineSeries::new(line, color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        legend(&mut c, SeriesLabelPosition::UpperRight, 13)?;
    }
    root.present()?;
    Ok(())
}
