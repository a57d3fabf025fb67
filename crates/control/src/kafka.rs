//! Metrics samples over Kafka (rskafka, a pure-Rust client: Debian's librdkafka is too old
//! for the Tansu broker used in tests). A proxy publishes one sample per control interval;
//! a control loop may consume a topic instead of its own counters, so one loop can size the
//! pool behind several proxies. Kafka being down never stops serving: samples wait in a
//! bounded buffer (oldest dropped first, counted) while the client reconnects with backoff (0.5 s doubling to 5 s).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use rskafka::record::Record;
use tokio::sync::Notify;

/// One control interval's measurements from one proxy.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Unix time (seconds) at the end of the interval.
    pub time: f64,
    /// Which proxy.
    pub source: String,
    /// Interval length, seconds.
    pub interval_s: f64,
    /// Client requests in the interval.
    pub requests: u64,
    /// Mean utilisation of its instances.
    pub utilisation: f64,
    /// Instances it saw ready.
    pub ready: usize,
}

/// Most samples kept while the broker is unreachable.
pub const BUFFER: usize = 10_000;

/// Publisher or consumer health, for `GET /control`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct KafkaStatus {
    /// The last operation succeeded.
    pub connected: bool,
    /// Samples waiting to be published.
    pub buffered: usize,
    /// Samples dropped because the buffer was full.
    pub dropped: u64,
    /// Samples published (or consumed).
    pub delivered: u64,
    /// The last error.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Shared {
    buffer: VecDeque<Sample>,
    status: KafkaStatus,
}

const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// A client for partition 0 of `topic`, creating the topic first if the brokers lack it
/// (brokers like Tansu do not create topics on first use).
async fn connect(brokers: &[String], topic: &str) -> Result<PartitionClient, String> {
    let client = tokio::time::timeout(OP_TIMEOUT, ClientBuilder::new(brokers.to_vec()).build())
        .await
        .map_err(|_| format!("{}: no answer within 5 s", brokers.join(",")))?
        .map_err(|e| format!("{}: {e}", brokers.join(",")))?;
    // Asking first keeps the broker from logging "topic already exists" on every reconnect.
    let exists = tokio::time::timeout(OP_TIMEOUT, client.list_topics())
        .await
        .ok()
        .and_then(Result::ok)
        .is_some_and(|topics| topics.iter().any(|t| t.name == topic));
    if !exists {
        if let Ok(c) = client.controller_client() {
            let _ = tokio::time::timeout(OP_TIMEOUT, c.create_topic(topic, 1, 1, 5_000)).await;
        }
    }
    tokio::time::timeout(
        OP_TIMEOUT,
        client.partition_client(topic.to_string(), 0, UnknownTopicHandling::Error),
    )
    .await
    .map_err(|_| "partition client: no answer within 5 s".to_string())?
    .map_err(|e| format!("topic {topic}: {e}"))
}

fn status_of(shared: &Mutex<Shared>) -> KafkaStatus {
    shared
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .status
        .clone()
}

fn backoff(failures: u32) -> Duration {
    Duration::from_secs_f64((0.25 * 2f64.powi(failures.min(6) as i32)).min(5.0))
}

/// Publishes samples to a topic (partition 0) in the background, until dropped.
pub struct Publisher {
    shared: Arc<Mutex<Shared>>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Publisher {
    /// The background task ends with its owner (the control loop's meter).
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Publisher {
    /// Starts the background task.
    pub fn start(brokers: Vec<String>, topic: String) -> Publisher {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(publish_loop(brokers, topic, shared.clone(), wake.clone()));
        Publisher { shared, wake, task }
    }

    /// Queues a sample (never blocks; drops the oldest when the buffer is full).
    pub fn publish(&self, s: Sample) {
        let mut sh = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        if sh.buffer.len() == BUFFER {
            sh.buffer.pop_front();
            sh.status.dropped += 1;
        }
        sh.buffer.push_back(s);
        sh.status.buffered = sh.buffer.len();
        drop(sh);
        self.wake.notify_one();
    }

    /// Health.
    pub fn status(&self) -> KafkaStatus {
        status_of(&self.shared)
    }
}

async fn publish_loop(
    brokers: Vec<String>,
    topic: String,
    shared: Arc<Mutex<Shared>>,
    wake: Arc<Notify>,
) {
    let mut client: Option<PartitionClient> = None;
    let mut failures = 0u32;
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        loop {
            let batch: Vec<Sample> = {
                let sh = shared.lock().unwrap_or_else(|p| p.into_inner());
                sh.buffer.iter().take(500).cloned().collect()
            };
            if batch.is_empty() {
                break;
            }
            let result = async {
                if client.is_none() {
                    client = Some(connect(&brokers, &topic).await?);
                }
                let records: Vec<Record> = batch
                    .iter()
                    .map(|s| Record {
                        key: Some(s.source.clone().into_bytes()),
                        value: serde_json::to_vec(s).ok(),
                        headers: Default::default(),
                        timestamp: chrono::DateTime::from_timestamp_millis(
                            (s.time * 1000.0) as i64,
                        )
                        .unwrap_or_default(),
                    })
                    .collect();
                let pc = client.as_ref().expect("connected above");
                tokio::time::timeout(OP_TIMEOUT, pc.produce(records, Compression::NoCompression))
                    .await
                    .map_err(|_| "produce: no answer within 5 s".to_string())?
                    .map_err(|e| format!("produce to {topic}: {e}"))?;
                Ok::<(), String>(())
            }
            .await;
            let failed = {
                let mut sh = shared.lock().unwrap_or_else(|p| p.into_inner());
                match result {
                    Ok(()) => {
                        // Only the published ones: the buffer may have dropped from the front.
                        for s in &batch {
                            if sh.buffer.front() == Some(s) {
                                sh.buffer.pop_front();
                            }
                        }
                        sh.status.delivered += batch.len() as u64;
                        sh.status.connected = true;
                        sh.status.buffered = sh.buffer.len();
                        failures = 0;
                        false
                    }
                    Err(e) => {
                        if sh.status.connected || sh.status.last_error.is_none() {
                            tracing::warn!(error = %e, buffered = sh.buffer.len(), "kafka publish failed; buffering and reconnecting");
                        }
                        sh.status.connected = false;
                        sh.status.last_error = Some(e);
                        true
                    }
                }
            };
            if failed {
                client = None;
                failures += 1;
                tokio::time::sleep(backoff(failures)).await;
                break;
            }
        }
    }
}

/// The last `records` samples on `topic` (partition 0), oldest first: what a consuming loop
/// warms its forecaster with at start.
pub async fn recent(
    brokers: &[String],
    topic: &str,
    records: usize,
) -> Result<Vec<Sample>, String> {
    let pc = connect(brokers, topic).await?;
    let pc = &pc;
    let offset = |at| async move {
        tokio::time::timeout(OP_TIMEOUT, pc.get_offset(at))
            .await
            .map_err(|_| "offset: no answer within 5 s".to_string())?
            .map_err(|e| format!("offset of {topic}: {e}"))
    };
    let earliest = offset(OffsetAt::Earliest).await?;
    let latest = offset(OffsetAt::Latest).await?;
    let mut from = latest.saturating_sub(records as i64).max(earliest);
    let mut out = Vec::new();
    while from < latest {
        let (batch, _) =
            tokio::time::timeout(OP_TIMEOUT, pc.fetch_records(from, 1..1_000_000, 500))
                .await
                .map_err(|_| "fetch: no answer within 5 s".to_string())?
                .map_err(|e| format!("fetch from {topic}: {e}"))?;
        let Some(last) = batch.last().map(|r| r.offset) else {
            break;
        };
        out.extend(
            batch
                .into_iter()
                .filter_map(|r| r.record.value)
                .filter_map(|v| serde_json::from_slice::<Sample>(&v).ok()),
        );
        from = last + 1;
    }
    Ok(out)
}

/// Requests per step of `step_s` seconds from samples (several proxies' summed), oldest
/// first: the contiguous run of steps that ends with the newest, if that ended at most
/// `recent` steps before `now`; empty otherwise.
pub fn per_step(samples: &[Sample], step_s: f64, now: f64, recent: usize) -> Vec<f64> {
    let mut steps: std::collections::BTreeMap<i64, f64> = std::collections::BTreeMap::new();
    for s in samples.iter().filter(|s| s.time.is_finite()) {
        // A sample covers the interval ending at its time: its step is the one that time ends.
        let k = ((s.time - 1e-6) / step_s).floor() as i64;
        *steps.entry(k).or_default() += s.requests as f64;
    }
    let Some((&newest, _)) = steps.last_key_value() else {
        return Vec::new();
    };
    let now_k = (now / step_s).floor() as i64;
    if now_k - newest > recent as i64 + 1 {
        return Vec::new();
    }
    let mut run = Vec::new();
    let mut k = newest;
    while let Some(v) = steps.get(&k) {
        run.push(*v);
        k -= 1;
    }
    run.reverse();
    run
}

/// Consumes samples from a topic (partition 0, from the latest offset at start), until
/// dropped.
pub struct Consumer {
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Consumer {
    /// The background task ends with its owner (the control loop's meter).
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Consumer {
    /// Starts the background task.
    pub fn start(brokers: Vec<String>, topic: String) -> Consumer {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let task = tokio::spawn(consume_loop(brokers, topic, shared.clone()));
        Consumer { shared, task }
    }

    /// Samples received since the last call.
    pub fn drain(&self) -> Vec<Sample> {
        let mut sh = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let v: Vec<Sample> = sh.buffer.drain(..).collect();
        sh.status.buffered = 0;
        v
    }

    /// Health.
    pub fn status(&self) -> KafkaStatus {
        status_of(&self.shared)
    }
}

async fn consume_loop(brokers: Vec<String>, topic: String, shared: Arc<Mutex<Shared>>) {
    let mut failures = 0u32;
    let mut offset: Option<i64> = None;
    loop {
        let result = async {
            let pc = connect(&brokers, &topic).await?;
            if offset.is_none() {
                let latest = tokio::time::timeout(OP_TIMEOUT, pc.get_offset(OffsetAt::Latest))
                    .await
                    .map_err(|_| "offset: no answer within 5 s".to_string())?
                    .map_err(|e| format!("offset of {topic}: {e}"))?;
                offset = Some(latest);
            }
            loop {
                let from = offset.unwrap_or(0);
                let (records, _high) =
                    tokio::time::timeout(OP_TIMEOUT, pc.fetch_records(from, 1..1_000_000, 500))
                        .await
                        .map_err(|_| "fetch: no answer within 5 s".to_string())?
                        .map_err(|e| format!("fetch from {topic}: {e}"))?;
                let mut sh = shared.lock().unwrap_or_else(|p| p.into_inner());
                sh.status.connected = true;
                for r in records {
                    offset = Some(r.offset + 1);
                    let Some(v) = r.record.value else { continue };
                    match serde_json::from_slice::<Sample>(&v) {
                        Ok(s) => {
                            if sh.buffer.len() == BUFFER {
                                sh.buffer.pop_front();
                                sh.status.dropped += 1;
                            }
                            sh.buffer.push_back(s);
                            sh.status.delivered += 1;
                        }
                        Err(e) => {
                            sh.status.last_error =
                                Some(format!("record {} of {topic}: {e}", r.offset));
                        }
                    }
                }
                sh.status.buffered = sh.buffer.len();
            }
            #[allow(unreachable_code)]
            Ok::<(), String>(())
        }
        .await;
        if let Err(e) = result {
            {
                let mut sh = shared.lock().unwrap_or_else(|p| p.into_inner());
                if sh.status.connected || sh.status.last_error.is_none() {
                    tracing::warn!(error = %e, "kafka consume failed; reconnecting");
                }
                sh.status.connected = false;
                sh.status.last_error = Some(e);
            }
            // Resume from the latest offset: the broker may have lost the topic (memory
            // storage) and an old offset would be out of range. Samples published while
            // this consumer was cut off are skipped.
            offset = None;
            failures += 1;
            tokio::time::sleep(backoff(failures)).await;
        }
    }
}

#[cfg(test)]
mod warm_tests {
    use super::*;

    fn sample(time: f64, source: &str, requests: u64) -> Sample {
        Sample {
            time,
            source: source.into(),
            interval_s: 0.5,
            requests,
            utilisation: 0.0,
            ready: 1,
        }
    }

    #[test]
    fn samples_of_several_proxies_sum_into_contiguous_steps() {
        // Two proxies, 0.5-s intervals, 1-s steps from t = 100 to 104; a hole before 100.
        let mut samples = vec![sample(97.5, "a", 99)];
        for i in 0..10 {
            let t = 100.5 + 0.5 * i as f64;
            samples.push(sample(t, "a", 10));
            samples.push(sample(t, "b", 5));
        }
        let steps = per_step(&samples, 1.0, 105.2, 5);
        assert_eq!(steps, vec![30.0; 5], "the hole cuts the run");
        assert!(per_step(&samples, 1.0, 200.0, 5).is_empty(), "too old");
        assert!(per_step(&[], 1.0, 105.0, 5).is_empty());
    }
}
