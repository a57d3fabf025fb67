//! # foresight-loadgen
//!
//! Open-loop HTTP load: request `i` is due at `start + i / rate` and leaves then, whether or not
//! earlier requests have been answered, and its latency is measured from that *intended* time.
//! A closed-loop tool (one request after another per connection) sends less when the server
//! slows down and so hides the queueing it causes ("coordinated omission"); this one cannot.
//!
//! For now this is the engine the demo and tests use; `foresight loadgen` with profiles and
//! trace replay is built on it later.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// What to send.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub target: String,
    /// Paths sent in rotation (at least one).
    pub paths: Vec<String>,
    /// Requests per second.
    pub rate: f64,
    /// How long to send.
    pub duration: Duration,
    /// Per-request timeout; a request past it counts as an error.
    pub timeout: Duration,
    /// Response header whose value groups latencies (e.g. the instance that served it).
    pub group_by: Option<String>,
}

/// Latency summary of a group of requests.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Requests answered.
    pub requests: u64,
    /// Median latency.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Summary {
    fn of(h: &Histogram<u64>) -> Summary {
        let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
        Summary {
            requests: h.len(),
            p50_ms: q(0.50),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: h.max() as f64 / 1000.0,
        }
    }
}

/// What happened.
#[derive(Clone, Debug)]
pub struct Report {
    /// Requests sent.
    pub sent: u64,
    /// Responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests without a response (connect errors, resets, timeouts).
    pub errors: u64,
    /// Requests answered per second of the run.
    pub achieved_rps: f64,
    /// All answered requests (any status).
    pub overall: Summary,
    /// By the value of `Plan::group_by`.
    pub groups: BTreeMap<String, Summary>,
}

impl Report {
    /// Responses with a status other than 2xx, plus errors.
    pub fn failures(&self) -> u64 {
        self.errors
            + self
                .statuses
                .iter()
                .filter(|(c, _)| !(200..300).contains(*c))
                .map(|(_, n)| n)
                .sum::<u64>()
    }
}

enum Outcome {
    Answered {
        status: u16,
        group: Option<String>,
        micros: u64,
    },
    Failed,
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 1 h at 3 significant digits; cannot fail for these bounds.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Sends the plan open-loop and reports.
pub async fn run(plan: &Plan) -> anyhow::Result<Report> {
    anyhow::ensure!(!plan.paths.is_empty(), "a plan needs at least one path");
    anyhow::ensure!(
        plan.rate.is_finite() && plan.rate > 0.0,
        "rate must be positive, got {}",
        plan.rate
    );
    let uris: Vec<Uri> = plan
        .paths
        .iter()
        .map(|p| format!("{}{}", plan.target.trim_end_matches('/'), p).parse())
        .collect::<Result<_, _>>()?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .build(connector);
    let total = (plan.rate * plan.duration.as_secs_f64()).round() as u64;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let start = tokio::time::Instant::now() + Duration::from_millis(5);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / plan.rate);
        tokio::time::sleep_until(due).await;
        let uri = uris[(i as usize) % uris.len()].clone();
        let client = client.clone();
        let tx = tx.clone();
        let group_by = plan.group_by.clone();
        let timeout = plan.timeout;
        tokio::spawn(async move {
            let req = Request::get(uri).body(Empty::new());
            let fut = async {
                let resp = client.request(req.ok()?).await.ok()?;
                let status = resp.status().as_u16();
                let group = group_by.and_then(|h| {
                    resp.headers()
                        .get(h.as_str())
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                });
                resp.into_body().collect().await.ok()?;
                Some((status, group))
            };
            let outcome = match tokio::time::timeout(timeout, fut).await {
                Ok(Some((status, group))) => Outcome::Answered {
                    status,
                    group,
                    micros: due.elapsed().as_micros() as u64,
                },
                _ => Outcome::Failed,
            };
            let _ = tx.send(outcome);
        });
    }
    drop(tx);
    let mut overall = histogram();
    let mut groups: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut statuses = BTreeMap::new();
    let mut errors = 0;
    while let Some(o) = rx.recv().await {
        match o {
            Outcome::Answered {
                status,
                group,
                micros,
            } => {
                let v = micros.clamp(1, 3_600_000_000);
                let _ = overall.record(v);
                *statuses.entry(status).or_insert(0) += 1;
                if let Some(g) = group {
                    let _ = groups.entry(g).or_insert_with(histogram).record(v);
                }
            }
            Outcome::Failed => errors += 1,
        }
    }
    let elapsed = Instant::now()
        .saturating_duration_since(start.into_std())
        .as_secs_f64()
        .max(1e-9);
    Ok(Report {
        sent: total,
        achieved_rps: overall.len() as f64 / elapsed,
        statuses,
        errors,
        overall: Summary::of(&overall),
        groups: groups
            .iter()
            .map(|(k, h)| (k.clone(), Summary::of(h)))
            .collect(),
    })
}
