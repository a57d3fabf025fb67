//! Metrics through a Prometheus server: the request rate by PromQL over
//! `/api/v1/query_range`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// A Prometheus server and the query that gives the client request rate (req/s).
pub struct PromSource {
    base: String,
    query: String,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl PromSource {
    /// `base` like `http://127.0.0.1:9090`.
    pub fn new(base: &str, query: &str) -> PromSource {
        PromSource {
            base: base.trim_end_matches('/').to_string(),
            query: query.to_string(),
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    /// The query's latest value within the last `window`.
    pub async fn rate(&self, window: Duration) -> Result<f64, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs_f64();
        let step = (window.as_secs_f64() / 4.0).max(0.5);
        let url = format!(
            "{}/api/v1/query_range?query={}&start={:.3}&end={:.3}&step={:.3}",
            self.base,
            form_urlencoded::byte_serialize(self.query.as_bytes()).collect::<String>(),
            now - window.as_secs_f64(),
            now,
            step
        );
        let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let resp = tokio::time::timeout(Duration::from_secs(2), self.client.get(uri))
            .await
            .map_err(|_| format!("{}: no answer within 2 s", self.base))?
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
        let last = v["data"]["result"]
            .as_array()
            .and_then(|r| r.first())
            .and_then(|s| s["values"].as_array())
            .and_then(|vals| vals.last())
            .and_then(|p| p[1].as_str())
            .ok_or_else(|| format!("{}: no samples yet for `{}`", self.base, self.query))?;
        let x: f64 = last
            .parse()
            .map_err(|_| format!("{}: value `{last}` is not a number", self.base))?;
        if x.is_finite() && x >= 0.0 {
            Ok(x)
        } else {
            Err(format!("{}: value {x} for `{}`", self.base, self.query))
        }
    }
}
