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

/// Latency CDFs (x: milliseconds, log scale; y: share of requests at or below) of several
/// runs in one SVG.
pub fn latency_cdf(
    path: &Path,
    title: &str,
    series: &[(String, &Histogram<u64>)],
) -> anyhow::Result<()> {
    register_font();
    let to_ms = |ns: u64| ns as f64 / 1e6;
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
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
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
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()?;
    root.present()?;
    Ok(())
}
