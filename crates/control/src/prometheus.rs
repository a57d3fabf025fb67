//! Metrics through a Prometheus server: the request rate by PromQL over
//! `/api/v1/query_range`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// Steps the newest point of a warm start may lie in the past (the proxy's restart).
pub const RECENT: usize = 5;

/// A Prometheus server and the query that gives the client request rate (req/s).
pub struct PromSource {
    base: String,
    query: String,
    timeout: Duration,
    client: Client<HttpConnector, Empty<Bytes>>,
}

/// Most points Prometheus returns for one range query (its limit is 11,000).
pub const MAX_POINTS: usize = 10_000;

impl PromSource {
    /// `base` like `http://127.0.0.1:9090`.
    pub fn new(base: &str, query: &str) -> PromSource {
        PromSource {
            base: base.trim_end_matches('/').to_string(),
            query: query.to_string(),
            timeout: Duration::from_secs(2),
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    /// Waits up to `timeout` for each answer (2 s by default: the live loop cannot wait).
    pub fn with_timeout(mut self, timeout: Duration) -> PromSource {
        self.timeout = timeout;
        self
    }

    /// `(unix time, value)` every `step` seconds over `[start, end]`, in requests of at most
    /// [`MAX_POINTS`] points, calling `progress(points so far, points in all)` after each; a
    /// query must give one series (aggregate it, e.g. with `sum(...)`), points it lacks are
    /// absent and NaN values are kept as NaN.
    pub async fn export(
        &self,
        start: f64,
        end: f64,
        step: f64,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<(f64, f64)>, String> {
        let total = ((end - start) / step).floor() as usize + 1;
        let mut out = Vec::with_capacity(total.min(1 << 20));
        let mut from = start;
        let mut done = 0;
        while from <= end {
            let to = (from + step * (MAX_POINTS - 1) as f64).min(end);
            out.extend(self.range(from, to, step).await?);
            done += ((to - from) / step).round() as usize + 1;
            progress(done.min(total), total);
            from = to + step;
        }
        Ok(out)
    }

    /// The query's latest value within the last `window`, which must be a rate: finite and
    /// not negative.
    pub async fn rate(&self, window: Duration) -> Result<f64, String> {
        let x = self.latest(window).await?;
        if x >= 0.0 {
            Ok(x)
        } else {
            Err(format!("{}: value {x} for `{}`", self.base, self.query))
        }
    }

    /// The query's latest value within the last `window`; an error when it has none or it
    /// is not finite.
    pub async fn latest(&self, window: Duration) -> Result<f64, String> {
        let now = unix_now()?;
        let step = (window.as_secs_f64() / 4.0).max(0.5);
        let values = self.range(now - window.as_secs_f64(), now, step).await?;
        let (_, x) = values
            .last()
            .copied()
            .ok_or_else(|| format!("{}: no samples yet for `{}`", self.base, self.query))?;
        if x.is_finite() {
            Ok(x)
        } else {
            Err(format!("{}: value {x} for `{}`", self.base, self.query))
        }
    }

    /// The rate at the end of each of the last `steps` steps of `step` (a warm start for the
    /// forecaster), oldest first. See [`PromSource::history_with`].
    pub async fn history(&self, steps: usize, step: Duration) -> Result<Vec<f64>, String> {
        Ok(self.history_with(&[], steps, step).await?.0)
    }

    /// The rate, and each of `features` (other queries on the same server), at the end of
    /// each of the last `steps` steps of `step`, oldest first: the contiguous run of steps
    /// where every query has a finite value (the rate also not negative) that ends with the
    /// latest such step, if that is at most [`RECENT`] steps old (a restart leaves a short
    /// hole); empty when there is none. `.1[i]` is step i's feature row.
    pub async fn history_with(
        &self,
        features: &[&PromSource],
        steps: usize,
        step: Duration,
    ) -> Result<(Vec<f64>, Vec<Vec<f64>>), String> {
        let now = unix_now()?;
        let s = step.as_secs_f64().max(0.001);
        // Evaluation times aligned to the step, so that consecutive steps are `s` apart.
        let end = (now / s).floor() * s;
        let start = end - s * (steps.max(1) - 1) as f64;
        let rate = self.range(start, end, s).await?;
        let mut columns = Vec::with_capacity(features.len());
        for f in features {
            columns.push(f.range(start, end, s).await?);
        }
        Ok(contiguous(start, s, steps.max(1), &rate, &columns))
    }

    /// `(time, value)` of the query's series over `[start, end]` every `step` seconds; an
    /// error when the query gives several series.
    async fn range(&self, start: f64, end: f64, step: f64) -> Result<Vec<(f64, f64)>, String> {
        let url = format!(
            "{}/api/v1/query_range?query={}&start={:.3}&end={:.3}&step={:.3}",
            self.base,
            form_urlencoded::byte_serialize(self.query.as_bytes()).collect::<String>(),
            start,
            end,
            step
        );
        let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let resp = tokio::time::timeout(self.timeout, self.client.get(uri))
            .await
            .map_err(|_| format!("{}: no answer within {:?}", self.base, self.timeout))?
            .map_err(|e| format!("{}: {e}", self.base))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| format!("{}: not JSON ({status}): {e}", self.base))?;
        if v["status"] != "success" {
            return Err(format!(
                "{}: {} ({status})",
                self.base,
                v["error"].as_str().unwrap_or("query failed")
            ));
        }
        let series = v["data"]["result"].as_array().map_or(0, Vec::len);
        if series > 1 {
            return Err(format!(
                "{}: `{}` gives {series} series, not one: aggregate it, e.g. with sum(...)",
                self.base, self.query
            ));
        }
        let Some(values) = v["data"]["result"]
            .as_array()
            .and_then(|r| r.first())
            .and_then(|s| s["values"].as_array())
        else {
            return Ok(Vec::new());
        };
        values
            .iter()
            .map(|p| {
                let t = p[0].as_f64().unwrap_or(f64::NAN);
                let raw = p[1].as_str().unwrap_or("");
                raw.parse::<f64>()
                    .map(|x| (t, x))
                    .map_err(|_| format!("{}: value `{raw}` is not a number", self.base))
            })
            .collect()
    }
}

fn unix_now() -> Result<f64, String> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs_f64())
}

/// The newest contiguous run of whole rows on the grid `start + k·step` (k < `steps`): see
/// [`PromSource::history_with`].
fn contiguous(
    start: f64,
    step: f64,
    steps: usize,
    rate: &[(f64, f64)],
    features: &[Vec<(f64, f64)>],
) -> (Vec<f64>, Vec<Vec<f64>>) {
    let grid = |points: &[(f64, f64)]| {
        let mut g: Vec<Option<f64>> = vec![None; steps];
        for (t, v) in points {
            let k = ((t - start) / step).round();
            if k >= 0.0 && (k as usize) < steps && (t - start - k * step).abs() <= step / 2.0 {
                g[k as usize] = Some(*v).filter(|v| v.is_finite());
            }
        }
        g
    };
    let rate = grid(rate);
    let columns: Vec<Vec<Option<f64>>> = features.iter().map(|f| grid(f)).collect();
    let row = |k: usize| -> Option<(f64, Vec<f64>)> {
        let r = rate[k].filter(|r| *r >= 0.0)?;
        let f: Option<Vec<f64>> = columns.iter().map(|c| c[k]).collect();
        Some((r, f?))
    };
    let Some(last) = (0..steps).rev().find(|k| row(*k).is_some()) else {
        return (Vec::new(), Vec::new());
    };
    if steps - 1 - last > RECENT {
        return (Vec::new(), Vec::new()); // too old to be the steps before this one
    }
    let mut first = last;
    while first > 0 && row(first - 1).is_some() {
        first -= 1;
    }
    (first..=last).filter_map(row).unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_whole_run_of_rows() {
        let pts = |v: &[f64]| -> Vec<(f64, f64)> {
            v.iter()
                .enumerate()
                .map(|(i, x)| (100.0 + 10.0 * i as f64, *x))
                .collect()
        };
        let rate = pts(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // No features: all six.
        let (r, f) = contiguous(100.0, 10.0, 6, &rate, &[]);
        assert_eq!(r, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(f, vec![Vec::<f64>::new(); 6]);
        // A feature missing at step 2 (NaN) cuts the run there.
        let cpu = pts(&[0.1, 0.2, f64::NAN, 0.4, 0.5, 0.6]);
        let (r, f) = contiguous(100.0, 10.0, 6, &rate, &[cpu]);
        assert_eq!(r, vec![4.0, 5.0, 6.0]);
        assert_eq!(f, vec![vec![0.4], vec![0.5], vec![0.6]]);
        // A point the feature lacks (absent, not NaN) cuts it too.
        let mem: Vec<(f64, f64)> = pts(&[1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
            .into_iter()
            .filter(|(t, _)| *t != 140.0)
            .collect();
        let (r, _) = contiguous(100.0, 10.0, 6, &rate, &[mem]);
        assert_eq!(r, vec![6.0]);
        // A negative rate is no rate.
        let (r, _) = contiguous(100.0, 10.0, 6, &pts(&[1.0, -1.0, 3.0, 4.0, 5.0, 6.0]), &[]);
        assert_eq!(r, vec![3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn nothing_recent_is_nothing() {
        // Only the first of 20 steps has a value: far older than RECENT steps.
        let (r, f) = contiguous(0.0, 1.0, 20, &[(0.0, 5.0)], &[]);
        assert!(r.is_empty() && f.is_empty());
        let (r, _) = contiguous(0.0, 1.0, 20, &[(14.0, 5.0)], &[]);
        assert_eq!(r, vec![5.0], "five steps old is recent");
    }
}
