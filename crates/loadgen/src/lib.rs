//! # foresight-loadgen
//!
//! Open-loop HTTP load: request `i` is due at its scheduled time and leaves then, whether or not
//! earlier requests have been answered, and its latency is measured from that *intended* time.
//! A closed-loop tool (one request after another per connection) sends less when the server
//! slows down and so hides the queueing it causes ("coordinated omission"); this one cannot.
//!
//! The rate follows a [`Profile`] (constant, step, ramp, burst, diurnal, flash crowd, trace
//! replay), with evenly spaced or Poisson (seeded) arrivals. A second mode, [`Mode::Max`], is
//! closed loop on purpose: `connections` workers send back to back, to find a server's
//! capacity (what `wrk` does). Per-request samples can be written as JMeter JTL CSV
//! ([`jtl::JtlWriter`]), and JTL files (JMeter's too) read back into the same summary ([`jtl::Tally`]).
//!
//! # Layout
//! - `lib.rs`: `Plan`, `Mode`, `Arrivals`, `Summary`, `Report`, the run and its summary
//! - `raw`: a lean HTTP/1.1 connection for the closed-loop capacity mode
//! - `jtl`: `JtlWriter`, JMeter's JTL CSV written; `jtl/read`: `Reader`, JTL read back by its
//!   header; `jtl/tally`: `Tally`, records tallied into the same `Report`
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use foresight_workload::Profile;
use hdrhistogram::Histogram;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rand::{Rng, SeedableRng};

pub mod jtl;
mod raw;

/// How request send times are spread.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arrivals {
    /// Evenly spaced at the current rate (JMeter's constant-throughput timer, wrk2).
    Uniform,
    /// A Poisson process at the current rate, from this seed.
    Poisson {
        /// Seed.
        seed: u64,
    },
}

/// Open or closed loop.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Requests leave on schedule at the profile's rate.
    Open {
        /// Rate over time.
        profile: Profile,
        /// Spacing.
        arrivals: Arrivals,
    },
    /// As fast as `connections` connections allow, each sending its next request when the
    /// previous is answered (a capacity test; latency is then per request, not from a schedule).
    Max {
        /// Connections (one worker each).
        connections: usize,
    },
}

/// What to send.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub target: String,
    /// Paths sent in rotation (at least one; repeat a path to weight it).
    pub paths: Vec<String>,
    /// Open or closed loop.
    pub mode: Mode,
    /// How long to send.
    pub duration: Duration,
    /// Per-request timeout; a request past it counts as an error.
    pub timeout: Duration,
    /// Response header whose value groups latencies (e.g. the instance that served it).
    pub group_by: Option<String>,
}

impl Plan {
    /// Open loop at a constant `rate`, 10 s timeout, no grouping.
    pub fn constant(target: &str, paths: &[&str], rate: f64, duration: Duration) -> Plan {
        Plan {
            target: target.to_string(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
            mode: Mode::Open {
                profile: Profile::Constant { rate },
                arrivals: Arrivals::Uniform,
            },
            duration,
            timeout: Duration::from_secs(10),
            group_by: None,
        }
    }
}

/// Latency summary of a group of requests.
#[derive(Clone, Debug, serde::Serialize)]
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
    /// Requests sent per second of the schedule (open loop: the rate actually offered).
    pub send_rps: f64,
    /// Responses per second from the first send to the last response.
    pub achieved_rps: f64,
    /// The latest any request left after its intended time (open loop; a large value means
    /// this machine could not keep up with the schedule).
    pub max_send_lag_ms: f64,
    /// All answered requests (any status).
    pub overall: Summary,
    /// By path.
    pub routes: BTreeMap<String, Summary>,
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

/// A live view, reported about once a second.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Since the start.
    pub elapsed: Duration,
    /// Planned length.
    pub duration: Duration,
    /// Requests sent so far.
    pub sent: u64,
    /// Responses so far.
    pub answered: u64,
    /// Failures (errors and non-2xx) so far.
    pub failed: u64,
    /// Responses per second over the last interval.
    pub rps: f64,
    /// 99th percentile latency over the last interval.
    pub p99_ms: f64,
}

/// One request, as recorded.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Intended send time, milliseconds since the Unix epoch.
    pub epoch_ms: u64,
    /// Latency from the intended send time to the last body byte.
    pub elapsed_us: u64,
    /// Latency to the response headers.
    pub first_byte_us: u64,
    /// Path index in `Plan::paths`.
    pub path: usize,
    /// Status, or `None` when there was no response.
    pub status: Option<u16>,
    /// Why there was no response.
    pub error: Option<String>,
    /// Body bytes received.
    pub bytes: u64,
    /// Requests in flight when it was sent.
    pub in_flight: u64,
    /// Worker (closed loop) or 0 (open loop).
    pub worker: usize,
    /// The value of the `Plan::group_by` header.
    pub group: Option<String>,
}

/// Called with a live view about once a second.
pub type ProgressHook = Box<dyn FnMut(&Progress) + Send>;
/// Called with every finished request.
pub type SampleHook = Box<dyn FnMut(&Sample, &Plan) + Send>;

/// Optional outputs.
#[derive(Default)]
pub struct Hooks {
    /// Called about once a second.
    pub progress: Option<ProgressHook>,
    /// Receives every request.
    pub samples: Option<SampleHook>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 1 h at 3 significant digits; cannot fail for these bounds.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn epoch_ms(at: Instant, origin: (Instant, SystemTime)) -> u64 {
    let wall = if at >= origin.0 {
        origin.1 + (at - origin.0)
    } else {
        origin.1 - (origin.0 - at)
    };
    wall.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Sends the plan and reports.
pub async fn run(plan: &Plan) -> anyhow::Result<Report> {
    run_with(plan, Hooks::default()).await
}

/// Checks a plan before anything is sent.
pub fn validate(plan: &Plan) -> anyhow::Result<Vec<Uri>> {
    anyhow::ensure!(!plan.paths.is_empty(), "a plan needs at least one path");
    anyhow::ensure!(!plan.duration.is_zero(), "duration must be positive");
    match &plan.mode {
        Mode::Open { profile, .. } => {
            let m = profile.max_rate();
            anyhow::ensure!(
                m.is_finite() && m > 0.0,
                "the rate must be positive somewhere, got a maximum of {m}"
            );
        }
        Mode::Max { connections } => {
            anyhow::ensure!(*connections > 0, "connections must be at least 1")
        }
    }
    let uris: Vec<Uri> = plan
        .paths
        .iter()
        .map(|p| {
            let url = format!("{}{}", plan.target.trim_end_matches('/'), p);
            url.parse::<Uri>()
                .map_err(|e| anyhow::anyhow!("`{url}` is not a valid URL: {e}"))
        })
        .collect::<Result<_, _>>()?;
    for u in &uris {
        anyhow::ensure!(
            u.scheme_str() == Some("http") && u.authority().is_some(),
            "`{u}`: the target must be an http://host:port URL"
        );
    }
    Ok(uris)
}

/// Counts and histograms, shared by the request tasks (recorded where the request ends, so
/// the capacity mode pays no channel hop per request).
struct Stats {
    overall: Histogram<u64>,
    interval: Histogram<u64>,
    routes: Vec<Histogram<u64>>,
    route_of: Vec<usize>,
    groups: BTreeMap<String, Histogram<u64>>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    failed: u64,
    last_answer: Instant,
}

impl Stats {
    fn record(&mut self, s: &Sample) {
        match s.status {
            Some(code) => {
                let v = s.elapsed_us.clamp(1, 3_600_000_000);
                let _ = self.overall.record(v);
                let _ = self.interval.record(v);
                let _ = self.routes[self.route_of[s.path]].record(v);
                *self.statuses.entry(code).or_insert(0) += 1;
                if !(200..300).contains(&code) {
                    self.failed += 1;
                }
                if let Some(g) = &s.group {
                    let h = self.groups.entry(g.clone()).or_insert_with(histogram);
                    let _ = h.record(v);
                }
                self.last_answer = Instant::now();
            }
            None => {
                self.errors += 1;
                self.failed += 1;
            }
        }
    }
}

/// Where request tasks put their results. Every task holds a clone of `tx`, so the channel
/// closing means every request has ended; samples travel on it only when a hook wants them.
#[derive(Clone)]
struct Sink {
    stats: Arc<std::sync::Mutex<Stats>>,
    tx: tokio::sync::mpsc::UnboundedSender<Sample>,
    forward: bool,
}

impl Sink {
    fn record(&self, s: Sample) {
        self.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(&s);
        if self.forward {
            let _ = self.tx.send(s);
        }
    }
}

/// Sends the plan with progress and per-request hooks, and reports.
pub async fn run_with(plan: &Plan, mut hooks: Hooks) -> anyhow::Result<Report> {
    let uris = validate(plan)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Sample>();
    // A path may repeat in the rotation (weights): one histogram per distinct path.
    let mut names: Vec<String> = plan.paths.clone();
    names.sort();
    names.dedup();
    let route_of: Vec<usize> = plan
        .paths
        .iter()
        .map(|p| names.binary_search(p).unwrap_or(0))
        .collect();
    let origin = (Instant::now(), SystemTime::now());
    let stats = Arc::new(std::sync::Mutex::new(Stats {
        overall: histogram(),
        interval: histogram(),
        routes: names.iter().map(|_| histogram()).collect(),
        route_of,
        groups: BTreeMap::new(),
        statuses: BTreeMap::new(),
        errors: 0,
        failed: 0,
        last_answer: origin.0,
    }));
    let sink = Sink {
        stats: stats.clone(),
        tx,
        forward: hooks.samples.is_some(),
    };
    let sent = Arc::new(AtomicU64::new(0));
    let lag_us = Arc::new(AtomicU64::new(0));
    let start = tokio::time::Instant::now() + Duration::from_millis(5);
    let generator = match &plan.mode {
        Mode::Open { profile, arrivals } => tokio::spawn(open_loop(
            plan.clone(),
            uris,
            profile.clone(),
            *arrivals,
            start,
            origin,
            sink,
            sent.clone(),
            lag_us.clone(),
        )),
        Mode::Max { connections } => tokio::spawn(closed_loop(
            plan.clone(),
            uris,
            *connections,
            start,
            origin,
            sink,
            sent.clone(),
        )),
    };

    let mut last_tick = tokio::time::Instant::now();
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    loop {
        tokio::select! {
            s = rx.recv() => {
                let Some(s) = s else { break };
                if let Some(f) = hooks.samples.as_mut() {
                    f(&s, plan);
                }
            }
            _ = tick.tick() => {
                if let Some(f) = hooks.progress.as_mut() {
                    let now = tokio::time::Instant::now();
                    let secs = (now - last_tick).as_secs_f64().max(1e-9);
                    let p = {
                        let mut st = stats.lock().unwrap_or_else(|p| p.into_inner());
                        let p = Progress {
                            elapsed: now.saturating_duration_since(start),
                            duration: plan.duration,
                            sent: sent.load(Ordering::Relaxed),
                            answered: st.overall.len(),
                            failed: st.failed,
                            rps: st.interval.len() as f64 / secs,
                            p99_ms: st.interval.value_at_quantile(0.99) as f64 / 1000.0,
                        };
                        st.interval.reset();
                        p
                    };
                    f(&p);
                    last_tick = now;
                }
            }
        }
    }
    generator.await?;
    let total = sent.load(Ordering::Relaxed);
    let st = stats.lock().unwrap_or_else(|p| p.into_inner());
    let elapsed = st
        .last_answer
        .saturating_duration_since(start.into_std())
        .as_secs_f64()
        .max(plan.duration.as_secs_f64());
    Ok(Report {
        sent: total,
        statuses: st.statuses.clone(),
        errors: st.errors,
        send_rps: total as f64 / plan.duration.as_secs_f64(),
        achieved_rps: st.overall.len() as f64 / elapsed,
        max_send_lag_ms: lag_us.load(Ordering::Relaxed) as f64 / 1000.0,
        overall: Summary::of(&st.overall),
        routes: names
            .iter()
            .zip(&st.routes)
            .filter(|(_, h)| !h.is_empty())
            .map(|(p, h)| (p.clone(), Summary::of(h)))
            .collect(),
        groups: st
            .groups
            .iter()
            .map(|(k, h)| (k.clone(), Summary::of(h)))
            .collect(),
    })
}

/// What one request came back with.
struct Answer {
    status: Option<u16>,
    error: Option<String>,
    first_byte: Instant,
    bytes: u64,
    group: Option<String>,
}

impl Answer {
    /// No response: `error` says why.
    fn failed(error: String) -> Answer {
        Answer {
            status: None,
            error: Some(error),
            first_byte: Instant::now(),
            bytes: 0,
            group: None,
        }
    }

    fn timed_out(timeout: Duration) -> Answer {
        Answer::failed(format!("timed out after {timeout:?}"))
    }
}

async fn exchange<F, B>(send: F, group_by: Option<&str>) -> Answer
where
    F: std::future::Future<Output = Result<http::Response<B>, String>>,
    B: hyper::body::Body,
    B::Error: std::fmt::Display,
{
    let resp = match send.await {
        Ok(r) => r,
        Err(e) => return Answer::failed(e),
    };
    let first_byte = Instant::now();
    let status = resp.status().as_u16();
    let group = group_by.and_then(|h| {
        resp.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    });
    match resp.into_body().collect().await {
        Ok(b) => Answer {
            status: Some(status),
            error: None,
            first_byte,
            bytes: b.to_bytes().len() as u64,
            group,
        },
        Err(e) => Answer::failed(format!("reading the body: {e}")),
    }
}

#[allow(clippy::too_many_arguments)]
async fn open_loop(
    plan: Plan,
    uris: Vec<Uri>,
    profile: Profile,
    arrivals: Arrivals,
    start: tokio::time::Instant,
    origin: (Instant, SystemTime),
    sink: Sink,
    sent: Arc<AtomicU64>,
    lag_us: Arc<AtomicU64>,
) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .build(connector);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(match arrivals {
        Arrivals::Poisson { seed } => seed,
        Arrivals::Uniform => 0,
    });
    let in_flight = Arc::new(AtomicU64::new(0));
    let group_by: Option<Arc<str>> = plan.group_by.as_deref().map(Arc::from);
    let end = plan.duration.as_secs_f64();
    // Offsets from `start` in seconds. The next send is one interval at the current rate
    // after the previous (exponentially distributed for Poisson arrivals); where the rate is
    // zero, look again 10 ms later.
    let mut at = 0.0f64;
    let mut i: usize = 0;
    loop {
        let rate = profile.rate_at(Duration::from_secs_f64(at));
        if rate <= 0.0 {
            at += 0.01;
            if at >= end {
                break;
            }
            continue;
        }
        let gap = match arrivals {
            Arrivals::Uniform => 1.0 / rate,
            Arrivals::Poisson { .. } => -(1.0 - rng.random::<f64>()).ln() / rate,
        };
        if i > 0 || matches!(arrivals, Arrivals::Poisson { .. }) {
            at += gap;
        }
        if at >= end - 1e-9 {
            break;
        }
        let due = start + Duration::from_secs_f64(at);
        if due > tokio::time::Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        let lag = tokio::time::Instant::now().saturating_duration_since(due);
        lag_us.fetch_max(lag.as_micros() as u64, Ordering::Relaxed);
        let path = i % uris.len();
        i += 1;
        sent.fetch_add(1, Ordering::Relaxed);
        let uri = uris[path].clone();
        let (client, sink, in_flight) = (client.clone(), sink.clone(), in_flight.clone());
        let group_by = group_by.clone();
        let timeout = plan.timeout;
        let due = due.into_std();
        tokio::spawn(async move {
            let now_in_flight = in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            let send = async {
                let req = Request::get(uri)
                    .body(Empty::new())
                    .map_err(|e| e.to_string())?;
                client.request(req).await.map_err(|e| e.to_string())
            };
            let answer =
                match tokio::time::timeout(timeout, exchange(send, group_by.as_deref())).await {
                    Ok(a) => a,
                    Err(_) => Answer::timed_out(timeout),
                };
            in_flight.fetch_sub(1, Ordering::Relaxed);
            sink.record(Sample {
                epoch_ms: epoch_ms(due, origin),
                elapsed_us: due.elapsed().as_micros() as u64,
                first_byte_us: answer.first_byte.saturating_duration_since(due).as_micros() as u64,
                path,
                status: answer.status,
                error: answer.error,
                bytes: answer.bytes,
                in_flight: now_in_flight,
                worker: 0,
                group: answer.group,
            });
        });
    }
}

async fn closed_loop(
    plan: Plan,
    uris: Vec<Uri>,
    connections: usize,
    start: tokio::time::Instant,
    origin: (Instant, SystemTime),
    sink: Sink,
    sent: Arc<AtomicU64>,
) {
    let end = start + plan.duration;
    let in_flight = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..connections {
        let (uris, sink, sent, in_flight) =
            (uris.clone(), sink.clone(), sent.clone(), in_flight.clone());
        let (group_by, timeout) = (plan.group_by.clone(), plan.timeout);
        workers.push(tokio::spawn(async move {
            tokio::time::sleep_until(start).await;
            let authority = uris[0].authority().expect("validated").clone();
            let requests: Vec<Vec<u8>> = uris
                .iter()
                .map(|u| {
                    format!(
                        "GET {} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: foresight-loadgen\r\n\r\n",
                        u.path_and_query().map_or("/", |p| p.as_str())
                    )
                    .into_bytes()
                })
                .collect();
            let mut conn: Option<raw::RawConn> = None;
            let mut i = worker;
            while tokio::time::Instant::now() < end {
                let path = i % uris.len();
                i += 1;
                let began = Instant::now();
                let now_in_flight = in_flight.fetch_add(1, Ordering::Relaxed) + 1;
                sent.fetch_add(1, Ordering::Relaxed);
                let send = async {
                    if conn.is_none() {
                        conn = Some(raw::RawConn::connect(authority.as_str()).await?);
                    }
                    let c = conn.as_mut().expect("just connected");
                    c.roundtrip(&requests[path], group_by.as_deref()).await
                };
                let answer = match tokio::time::timeout(timeout, send).await {
                    Ok(Ok(r)) => {
                        if !r.keep_alive {
                            conn = None;
                        }
                        Answer {
                            status: Some(r.status),
                            error: None,
                            first_byte: r.first_byte,
                            bytes: r.bytes,
                            group: r.group,
                        }
                    }
                    Ok(Err(e)) => Answer::failed(e),
                    Err(_) => Answer::timed_out(timeout),
                };
                in_flight.fetch_sub(1, Ordering::Relaxed);
                if answer.error.is_some() {
                    conn = None;
                }
                sink.record(Sample {
                    epoch_ms: epoch_ms(began, origin),
                    elapsed_us: began.elapsed().as_micros() as u64,
                    first_byte_us: answer.first_byte.saturating_duration_since(began).as_micros() as u64,
                    path,
                    status: answer.status,
                    error: answer.error,
                    bytes: answer.bytes,
                    in_flight: now_in_flight,
                    worker,
                    group: answer.group,
                });
            }
        }));
    }
    drop(sink);
    for w in workers {
        let _ = w.await;
    }
}
