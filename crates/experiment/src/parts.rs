//! The parts of a trace an experiment replays: the longest gap-free stretch of a split's
//! steps, and the history before it that warms the forecasters.

use foresight_forecast::Series;

/// The longest gap-free stretch of `series` within steps `from..to`: its first time, its
/// values and its first step.
pub(crate) fn stretch(series: &Series, from: usize, to: usize) -> Option<(i64, Vec<f64>, usize)> {
    series
        .segments()
        .into_iter()
        .filter(|s| s.offset < to && s.offset + s.values.len() > from)
        .map(|s| {
            let skip = from.saturating_sub(s.offset);
            let end = (to - s.offset).min(s.values.len());
            (
                s.start + skip as i64 * 60,
                s.values[skip..end].to_vec(),
                s.offset + skip,
            )
        })
        .max_by_key(|(_, v, _)| v.len())
}

/// The history before step `offset` (8 days: Holt-Winters initialises from two daily seasons,
/// seasonal naive needs one), so every forecaster is warm at the first replayed minute.
pub(crate) fn history_before(series: &Series, offset: usize) -> Vec<(i64, f64)> {
    (offset.saturating_sub(8 * 1440)..offset)
        .filter_map(|i| series.values[i].map(|v| (series.time(i), v)))
        .collect()
}
