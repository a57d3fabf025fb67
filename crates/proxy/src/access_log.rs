//! Access logs: one line per (sampled) request, written off the request path.
//!
//! The request path fills an [`Entry`] and hands it to a bounded channel with `try_send`; a
//! writer thread wakes every [`TICK`], takes what is queued, formats and writes it. The writer
//! never sleeps on the channel, so a send never has a sleeping thread to wake (a futex call per
//! line cost a third of the proxy's throughput). When the writer falls behind, the channel
//! fills and further lines are dropped and counted (`foresight_access_log_dropped_total`): a
//! request never waits for its log line.
//! Sampling is exact and deterministic: of every `1 / sample` requests, one is logged.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::uri::PathAndQuery;
use http::Method;
use prometheus_client::metrics::counter::Counter;

/// Line formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// NCSA common log format with the duration, service and instance appended.
    Common,
}

/// The validated `[access_log]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessLogConfig {
    /// A file to append to; `None` is stdout.
    pub path: Option<std::path::PathBuf>,
    /// The line format.
    pub format: Format,
    /// Fraction of requests logged, in (0, 1].
    pub sample: f64,
    /// Lines that may wait for the writer before new ones are dropped.
    pub buffer: usize,
}

/// How often the writer takes the queued lines.
pub const TICK: Duration = Duration::from_millis(10);

/// Writes `s` as the inside of a JSON string.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f)
    {
        out.extend_from_slice(s.as_bytes());
    } else {
        let quoted = serde_json::to_string(s).unwrap_or_default();
        out.extend_from_slice(&quoted.as_bytes()[1..quoted.len() - 1]);
    }
}

/// Appends an integer (itoa: no formatting machinery on the writer's hot loop).
fn int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends a duration as milliseconds with three decimals (`1.520`).
fn millis(out: &mut Vec<u8>, d: Duration) {
    let us = d.as_micros() as u64;
    int(out, us / 1000);
    let frac = us % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

/// Appends `ip:port`.
fn address(out: &mut Vec<u8>, a: &SocketAddr) {
    match a {
        SocketAddr::V4(v4) => {
            for (i, o) in v4.ip().octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                int(out, *o);
            }
            out.push(b':');
            int(out, v4.port());
        }
        SocketAddr::V6(_) => {
            let _ = write!(out, "{a}");
        }
    }
}

/// The formatted time of the last whole second a line was written in, reused within it.
#[derive(Default)]
struct Clock {
    second: i64,
    json: String,
    common: String,
}

impl Clock {
    fn at(&mut self, t: SystemTime) -> (u32, &Clock) {
        let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let second = d.as_secs() as i64;
        if second != self.second || self.json.is_empty() {
            let dt = chrono::DateTime::from_timestamp(second, 0).unwrap_or_default();
            self.second = second;
            self.json = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
            self.common = dt.format("%d/%b/%Y:%H:%M:%S +0000").to_string();
        }
        (d.subsec_millis(), self)
    }
}

/// One request, as logged.
#[derive(Debug, Clone)]
pub struct Entry {
    /// When the request arrived (the writer turns it into wall-clock time, so the request
    /// path reads one clock, not two).
    pub arrived: Instant,
    /// The client's address.
    pub client: SocketAddr,
    /// Method.
    pub method: Method,
    /// The request target; its path is logged, not its query (queries often carry secrets).
    pub target: Option<PathAndQuery>,
    /// HTTP version of the client's request, e.g. `HTTP/1.1`.
    pub version: &'static str,
    /// The service it was routed to (`-` when none).
    pub service: Arc<str>,
    /// Response status.
    pub status: u16,
    /// Response body bytes sent to the client.
    pub bytes: u64,
    /// From arrival to the response head.
    pub head: Duration,
    /// From arrival to the end of the response body (or the client going away).
    pub duration: Duration,
    /// The instance that answered, if one did.
    pub instance: Option<Arc<str>>,
    /// A gRPC call's `grpc-status` (from the trailers, or the head of a trailers-only answer).
    pub grpc_status: Option<u16>,
    /// Its `grpc-message`, at most [`GRPC_MESSAGE_MAX`] bytes.
    pub grpc_message: Option<Box<str>>,
}

/// The longest `grpc-message` logged (bytes; longer ones are cut at a character boundary).
pub const GRPC_MESSAGE_MAX: usize = 256;

impl Entry {
    /// Notes a gRPC call's status and message from the headers or trailers that carry them.
    pub fn grpc(&mut self, fields: &http::HeaderMap) {
        let Some(status) = fields.get("grpc-status") else {
            return;
        };
        self.grpc_status = std::str::from_utf8(status.as_bytes())
            .ok()
            .and_then(|s| s.parse().ok());
        self.grpc_message = fields.get("grpc-message").map(|m| {
            // Percent-encoded ASCII by the protocol; anything else is shown, not trusted.
            let m = String::from_utf8_lossy(m.as_bytes());
            let mut end = m.len().min(GRPC_MESSAGE_MAX);
            while !m.is_char_boundary(end) {
                end -= 1;
            }
            m[..end].into()
        });
    }

    fn path(&self) -> &str {
        self.target.as_ref().map_or("*", PathAndQuery::path)
    }

    /// Appends the line; `time` is the wall-clock time of [`Entry::arrived`].
    fn write(&self, time: SystemTime, format: Format, clock: &mut Clock, out: &mut Vec<u8>) {
        let (millis_part, clock) = clock.at(time);
        match format {
            Format::Json => {
                out.extend_from_slice(b"{\"time\":\"");
                out.extend_from_slice(clock.json.as_bytes());
                out.push(b'.');
                out.extend_from_slice(&[
                    b'0' + (millis_part / 100) as u8,
                    b'0' + (millis_part / 10 % 10) as u8,
                    b'0' + (millis_part % 10) as u8,
                ]);
                out.extend_from_slice(b"Z\",\"client\":\"");
                address(out, &self.client);
                out.extend_from_slice(b"\",\"method\":\"");
                json_str(out, self.method.as_str());
                out.extend_from_slice(b"\",\"path\":\"");
                json_str(out, self.path());
                out.extend_from_slice(b"\",\"protocol\":\"");
                out.extend_from_slice(self.version.as_bytes());
                out.extend_from_slice(b"\",\"status\":");
                int(out, self.status);
                out.extend_from_slice(b",\"bytes\":");
                int(out, self.bytes);
                out.extend_from_slice(b",\"head_ms\":");
                millis(out, self.head);
                out.extend_from_slice(b",\"duration_ms\":");
                millis(out, self.duration);
                out.extend_from_slice(b",\"service\":\"");
                json_str(out, &self.service);
                match &self.instance {
                    Some(i) => {
                        out.extend_from_slice(b"\",\"instance\":\"");
                        json_str(out, i);
                        out.push(b'"');
                    }
                    None => out.extend_from_slice(b"\",\"instance\":null"),
                }
                if let Some(s) = self.grpc_status {
                    out.extend_from_slice(b",\"grpc_status\":");
                    int(out, s);
                    if let Some(m) = &self.grpc_message {
                        out.extend_from_slice(b",\"grpc_message\":\"");
                        json_str(out, m);
                        out.push(b'"');
                    }
                }
                out.extend_from_slice(b"}\n");
            }
            Format::Common => {
                let _ = write!(
                    out,
                    "{} - - [{}] \"{} {} {}\" {} {} ",
                    self.client.ip(),
                    clock.common,
                    self.method,
                    self.path(),
                    self.version,
                    self.status,
                    self.bytes,
                );
                millis(out, self.duration);
                let _ = write!(
                    out,
                    " {} {}",
                    self.service,
                    self.instance.as_deref().unwrap_or("-")
                );
                if let Some(s) = self.grpc_status {
                    let _ = write!(out, " grpc-status={s}");
                }
                out.push(b'\n');
            }
        }
    }
}

/// The request path's handle on the access log.
pub struct AccessLog {
    tx: SyncSender<Entry>,
    /// Every `every`-th request is logged (sampling as a whole number of requests per line,
    /// scaled by 2^32 for fractions).
    step: u64,
    seen: AtomicU64,
    dropped: Counter,
}

impl AccessLog {
    /// Opens the log (appending to the file, which is created if needed) and starts its
    /// writer thread.
    pub fn start(cfg: &AccessLogConfig, dropped: Counter) -> std::io::Result<Arc<AccessLog>> {
        let sink: Box<dyn Write + Send> = match &cfg.path {
            None => Box::new(std::io::stdout()),
            Some(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
        };
        Ok(AccessLog::with_sink(cfg, sink, dropped))
    }

    /// [`AccessLog::start`] writing to `sink`.
    pub fn with_sink(
        cfg: &AccessLogConfig,
        sink: Box<dyn Write + Send>,
        dropped: Counter,
    ) -> Arc<AccessLog> {
        let (tx, rx) = sync_channel(cfg.buffer);
        let format = cfg.format;
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn({
                let dropped = dropped.clone();
                move || writer(rx, sink, format, dropped)
            })
            .expect("spawn the access log writer");
        Arc::new(AccessLog {
            tx,
            step: (4_294_967_296.0 / cfg.sample).round() as u64,
            seen: AtomicU64::new(0),
            dropped,
        })
    }

    /// Whether this request is one of the sampled ones.
    pub fn sampled(&self) -> bool {
        const ONE: u64 = 1 << 32;
        if self.step == ONE {
            return true;
        }
        // Request n is logged when n × sample crosses a whole number.
        let n = u128::from(self.seen.fetch_add(1, Ordering::Relaxed));
        let (one, step) = (u128::from(ONE), u128::from(self.step));
        (n * one) / step != ((n + 1) * one) / step
    }

    /// Queues a line, or drops and counts it when the writer is behind.
    pub fn send(&self, e: Entry) {
        match self.tx.try_send(e) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }
}

/// Every [`TICK`], formats what is queued and writes it; ends when every sender is gone. Lines
/// that cannot be written (a full disk, a closed pipe) are counted as dropped, and the log says
/// when writing fails and when it works again.
fn writer(rx: Receiver<Entry>, mut sink: Box<dyn Write + Send>, format: Format, dropped: Counter) {
    let mut buf: Vec<u8> = Vec::with_capacity(256 * 1024);
    let mut clock = Clock::default();
    let mut failing = false;
    loop {
        let mut lines = 0u64;
        // One reading of both clocks per batch maps every arrival to wall-clock time.
        let (wall, mono) = (SystemTime::now(), Instant::now());
        let gone = loop {
            match rx.try_recv() {
                Ok(e) => {
                    let time = wall - mono.saturating_duration_since(e.arrived);
                    e.write(time, format, &mut clock, &mut buf);
                    lines += 1;
                    if buf.len() >= 240 * 1024 {
                        break false;
                    }
                }
                Err(TryRecvError::Empty) => break false,
                Err(TryRecvError::Disconnected) => break true,
            }
        };
        if !buf.is_empty() {
            match sink.write_all(&buf).and_then(|()| sink.flush()) {
                Err(e) => {
                    dropped.inc_by(lines);
                    if !failing {
                        tracing::error!(error = %e, "cannot write the access log; lines are dropped and counted (foresight_access_log_dropped_total)");
                        failing = true;
                    }
                }
                Ok(()) if failing => {
                    tracing::info!("the access log is written again");
                    failing = false;
                }
                Ok(()) => {}
            }
            let full = buf.len() >= 240 * 1024;
            buf.clear();
            if full {
                continue; // more may be queued: no pause
            }
        }
        if gone {
            return;
        }
        std::thread::sleep(TICK);
    }
}

/// What the request path keeps of an entry until the response ends.
pub(crate) struct Pending {
    pub log: Arc<AccessLog>,
    pub entry: Entry,
}

impl Pending {
    /// Completes the entry at the end of the response and queues it.
    pub fn finish(mut self, bytes: u64) {
        self.entry.bytes = bytes;
        self.entry.duration = self.entry.arrived.elapsed();
        self.log.send(self.entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Condvar, Mutex};

    fn cfg(sample: f64, buffer: usize) -> AccessLogConfig {
        AccessLogConfig {
            path: None,
            format: Format::Json,
            sample,
            buffer,
        }
    }

    const TIME: Duration = Duration::from_millis(1_700_000_000_123);

    fn entry(path: &str) -> Entry {
        Entry {
            arrived: Instant::now(),
            client: "127.0.0.1:5000".parse().unwrap(),
            method: Method::GET,
            target: Some(path.parse().unwrap()),
            version: "HTTP/1.1",
            service: "auth".into(),
            status: 200,
            bytes: 3,
            head: Duration::from_micros(1500),
            duration: Duration::from_micros(2250),
            instance: Some("http://127.0.0.1:9001".into()),
            grpc_status: None,
            grpc_message: None,
        }
    }

    #[test]
    fn grpc_calls_log_their_status_and_message() {
        let mut e = entry("/grpc.health.v1.Health/Check");
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "14".parse().unwrap());
        let long = "é".repeat(GRPC_MESSAGE_MAX);
        trailers.insert(
            "grpc-message",
            http::HeaderValue::from_bytes(long.as_bytes()).unwrap(),
        );
        e.grpc(&trailers);
        assert_eq!(e.grpc_status, Some(14));
        let m = e.grpc_message.clone().unwrap();
        assert!(m.len() <= GRPC_MESSAGE_MAX && long.starts_with(&*m), "{m}");
        let mut out = Vec::new();
        let mut clock = Clock::default();
        e.write(
            SystemTime::UNIX_EPOCH + TIME,
            Format::Json,
            &mut clock,
            &mut out,
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (v["grpc_status"].as_u64(), v["grpc_message"].as_str()),
            (Some(14), Some(&*m))
        );
        out.clear();
        e.write(
            SystemTime::UNIX_EPOCH + TIME,
            Format::Common,
            &mut clock,
            &mut out,
        );
        assert!(String::from_utf8(out)
            .unwrap()
            .ends_with(" grpc-status=14\n"));
        // Not a gRPC answer: no fields.
        let mut plain = entry("/a");
        plain.grpc(&http::HeaderMap::new());
        out = Vec::new();
        plain.write(
            SystemTime::UNIX_EPOCH + TIME,
            Format::Json,
            &mut clock,
            &mut out,
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v.get("grpc_status").is_none(), "{v}");
    }

    #[test]
    fn lines_in_both_formats() {
        let mut out = Vec::new();
        let mut clock = Clock::default();
        entry("/a%22b?q=1").write(
            SystemTime::UNIX_EPOCH + TIME,
            Format::Json,
            &mut clock,
            &mut out,
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["path"], "/a%22b");
        assert_eq!(v["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(
            (v["duration_ms"].as_f64(), v["head_ms"].as_f64()),
            (Some(2.25), Some(1.5))
        );
        assert_eq!(v["instance"], "http://127.0.0.1:9001");
        let mut e = entry("/b");
        e.instance = None;
        e.service = "we\"ird".into();
        out.clear();
        e.write(
            SystemTime::UNIX_EPOCH + TIME,
            Format::Json,
            &mut clock,
            &mut out,
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (v["service"].as_str(), v["instance"].is_null()),
            (Some("we\"ird"), true)
        );
        out.clear();
        entry("/a").write(
            SystemTime::UNIX_EPOCH + TIME,
            Format::Common,
            &mut clock,
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "127.0.0.1 - - [14/Nov/2023:22:13:20 +0000] \"GET /a HTTP/1.1\" 200 3 2.250 auth http://127.0.0.1:9001\n"
        );
    }

    #[test]
    fn sampling_is_exact() {
        for (sample, want) in [(1.0, 1000), (0.5, 500), (0.1, 100), (0.003, 3)] {
            let log = AccessLog::with_sink(
                &cfg(sample, 1),
                Box::new(std::io::sink()),
                Counter::default(),
            );
            let n = (0..1000).filter(|_| log.sampled()).count();
            assert_eq!(n, want, "sample {sample}");
        }
    }

    /// A sink that keeps what is written.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Vec<u8>>>);

    impl Write for Kept {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_writer_logs_the_wall_clock_time_of_arrival() {
        let kept = Kept::default();
        let log = AccessLog::with_sink(&cfg(1.0, 8), Box::new(kept.clone()), Counter::default());
        let mut e = entry("/late");
        e.arrived = Instant::now() - Duration::from_secs(90);
        let want = SystemTime::now() - Duration::from_secs(90);
        log.send(e);
        drop(log); // the writer writes what is queued and ends
        let deadline = Instant::now() + Duration::from_secs(5);
        while kept.0.lock().unwrap().is_empty() && Instant::now() < deadline {
            std::thread::sleep(TICK);
        }
        let line = kept.0.lock().unwrap().clone();
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        let logged = chrono::DateTime::parse_from_rfc3339(v["time"].as_str().unwrap()).unwrap();
        let want = chrono::DateTime::<chrono::Utc>::from(want);
        let off = (logged.timestamp_millis() - want.timestamp_millis()).abs();
        assert!(off < 1000, "logged {logged}, arrived {want}");
    }

    /// A sink that fails with ENOSPC while `full` is set, as a full disk does.
    #[derive(Clone, Default)]
    struct Full {
        full: Arc<std::sync::atomic::AtomicBool>,
        kept: Kept,
    }

    impl Write for Full {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.full.load(Ordering::SeqCst) {
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            self.kept.write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_lost_to_a_full_disk_are_counted_and_writing_resumes() {
        let sink = Full::default();
        sink.full.store(true, Ordering::SeqCst);
        let dropped = Counter::default();
        let log = AccessLog::with_sink(&cfg(1.0, 1000), Box::new(sink.clone()), dropped.clone());
        for i in 0..100 {
            log.send(entry(&format!("/lost/{i}")));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while dropped.get() < 100 && Instant::now() < deadline {
            std::thread::sleep(TICK);
        }
        assert_eq!(
            dropped.get(),
            100,
            "every line of the failed writes counted"
        );
        sink.full.store(false, Ordering::SeqCst);
        log.send(entry("/kept"));
        drop(log);
        let deadline = Instant::now() + Duration::from_secs(5);
        while sink.kept.0.lock().unwrap().is_empty() && Instant::now() < deadline {
            std::thread::sleep(TICK);
        }
        let text = String::from_utf8(sink.kept.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("/kept"));
        assert_eq!(dropped.get(), 100);
    }

    /// A sink that blocks until released, as a full disk or a stopped pipe reader would.
    struct Stuck(Arc<(Mutex<bool>, Condvar)>);

    impl Write for Stuck {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let (lock, cv) = &*self.0;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_writer_drops_and_counts_never_blocks() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let dropped = Counter::default();
        let log =
            AccessLog::with_sink(&cfg(1.0, 8), Box::new(Stuck(gate.clone())), dropped.clone());
        let started = Instant::now();
        for i in 0..20_000 {
            log.send(entry(&format!("/{i}")));
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "sending never waits"
        );
        // At most the queue (8) and what the writer took in one batch (240 KB, under 1000
        // lines) went through.
        assert!(
            dropped.get() >= 5000 - 8 - 1000,
            "{} dropped",
            dropped.get()
        );
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
    }
}
