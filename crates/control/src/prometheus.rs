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

    /// The query's latest value within the last `window`.
    pub async fn rate(&self, window: Duration) -> Result<f64, String> {
        let now = unix_now()?;
        let step = (window.as_secs_f64() / 4.0).max(0.5);
        let values = self.range(now - window.as_secs_f64(), now, step).await?;
        let (_, x) = values
            .last()
            .copied()
            .ok_or_else(|| format!("{}: no samples yet for `{}`", self.base, self.query))?;
        if x.is_finite() && x >= 0.0 {
            Ok(x)
        } else {
            Err(format!("{}: value {x} for `{}`", self.base, self.query))
        }
    }

    /// The rate at the end of each of the last `steps` steps of `step` (a warm start for the
    /// forecaster), oldest first: the contiguous run of finite, non-negative values that ends
    /// with the latest one Prometheus has, if that is at most [`RECENT`] steps old (a restart
    /// leaves a short hole); empty when it has none.
    pub async fn history(&self, steps: usize, step: Duration) -> Result<Vec<f64>, String> {
        let now = unix_now()?;
        let s = step.as_secs_f64().max(0.001);
        // Evaluation times aligned to the step, so that consecutive steps are `s` apart.
        let end = (now / s).floor() * s;
        let start = end - s * (steps.max(1) - 1) as f64;
        let points = self.range(start, end, s).await?;
        let mut out: Vec<f64> = Vec::with_capacity(steps);
        let mut expected = start;
        for (t, v) in points {
            if (t - expected).abs() > s / 2.0 || !(v.is_finite() && v >= 0.0) {
                // A gap: only what follows it is contiguous with the present.
                out.clear();
            }
            if v.is_finite() && v >= 0.0 {
                out.push(v);
            }
            expected = t + s;
        }
        if end - (expected - s) > s * RECENT as f64 + s / 2.0 {
            out.clear(); // too old to be the steps before this one
        }
        Ok(out)
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
