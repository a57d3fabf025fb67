//! HTTP/2 from a hostile client (issue #36 item 4): the 2023–24 HTTP/2 attack classes sent as raw
//! frames to the real binary — a CONTINUATION flood, an HPACK bomb, rapid reset, SETTINGS and
//! PING floods, a thousand streams at once. Each must leave the proxy's memory bounded, its
//! in-flight accounting at zero afterwards, and other clients served.

mod common;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::*;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;

/// One frame: 24-bit length, type, flags, stream id, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK string literal (no Huffman coding) with a 7-bit length prefix.
fn literal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    integer(&mut out, 0, 7, s.len());
    out.extend_from_slice(s);
    out
}

/// An HPACK integer with an `n`-bit prefix after `first`'s high bits (RFC 7541 §5.1).
fn integer(out: &mut Vec<u8>, first: u8, n: u32, v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = v - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// The header block of `GET path` over http with authority `x`.
fn get_block(path: &str) -> Vec<u8> {
    // :method GET, :scheme http (static 2 and 6), :path and :authority literal with their
    // static names (4 and 1), without indexing.
    let mut b = vec![0x82, 0x86, 0x04];
    b.extend(literal(path.as_bytes()));
    b.push(0x01);
    b.extend(literal(b"x"));
    b
}

/// A connection that has sent the preface and empty SETTINGS.
async fn open(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(PREFACE).await.unwrap();
    s.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
    // The server's SETTINGS, acknowledged in advance.
    s.write_all(&frame(SETTINGS, 1, 0, &[])).await.unwrap();
    s
}

/// Frames the server sends until it closes the connection or `limit` passes: (type, flags,
/// stream, payload).
async fn frames_until_closed(s: &mut TcpStream, limit: Duration) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    parse(&buf)
}

fn parse(mut buf: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    while buf.len() >= 9 {
        let len = (buf[0] as usize) << 16 | (buf[1] as usize) << 8 | buf[2] as usize;
        if buf.len() < 9 + len {
            break;
        }
        let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
        out.push((buf[3], buf[4], stream, buf[9..9 + len].to_vec()));
        buf = &buf[9 + len..];
    }
    out
}

struct Probe {
    proxy: Proc,
    _instance: Proc,
    /// The proxy's configuration lives here for as long as the proxy runs.
    _dir: TestDir,
    addr: String,
    admin: String,
    http: HttpClient,
}

impl Probe {
    fn start(name: &str) -> Probe {
        let (instance, a) = backend("a", &[]);
        let dir = tempdir(name);
        let proxy = proxy(
            &dir,
            "[health_check]\nenabled = false\n",
            &["--backend", &a],
        );
        let addr = proxy.get("proxy").to_string();
        let admin = proxy.get("admin").to_string();
        Probe {
            proxy,
            _instance: instance,
            _dir: dir,
            addr,
            admin,
            http: client(),
        }
    }

    /// A plain HTTP/1.1 client is answered, and the admin API within a second.
    async fn still_serves(&self) {
        let started = Instant::now();
        let r = get(&self.http, &format!("http://{}/healthz", self.admin)).await;
        assert_eq!(r.status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "admin API took {:?}",
            started.elapsed()
        );
        let r = get(&self.http, &format!("http://{}/auth?ms=0", self.addr)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    /// Every request the proxy counted in flight has ended.
    async fn nothing_in_flight(&self) {
        eventually(Duration::from_secs(10), "in_flight back to 0", || async {
            backends(&self.http, &self.admin)
                .await
                .iter()
                .all(|b| b["in_flight"].as_u64() == Some(0))
        })
        .await;
    }

    fn rss(&self) -> f64 {
        rss_mb(self.proxy.pid())
    }

    /// The proxy's resident memory grew by less than `limit_mb` since `before` (MB).
    fn grew_less_than(&self, what: &str, before: f64, limit_mb: f64) {
        let grown = self.rss() - before;
        eprintln!("{what}: RSS {before:.1} MB, grew {grown:.1} MB");
        assert!(grown < limit_mb, "{what}: RSS grew {grown:.1} MB");
    }
}

/// A GOAWAY among the frames, with its error code.
fn goaway(frames: &[(u8, u8, u32, Vec<u8>)]) -> Option<u32> {
    frames
        .iter()
        .find(|f| f.0 == GOAWAY && f.3.len() >= 8)
        .map(|f| u32::from_be_bytes([f.3[4], f.3[5], f.3[6], f.3[7]]))
}

/// CVE-2024-27316 class: HEADERS without END_HEADERS, then CONTINUATION frames without end.
/// The connection is closed long before 16 MB of header block has been buffered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_flood_is_cut_off() {
    let p = Probe::start("h2-continuation");
    let before = p.rss();
    let mut s = open(&p.addr).await;
    let mut block = get_block("/auth");
    // A never-ending header: literal without indexing, a new name, then values forever.
    block.extend_from_slice(&[0x00]);
    block.extend(literal(b"x-flood"));
    s.write_all(&frame(HEADERS, END_STREAM, 1, &block))
        .await
        .unwrap();
    let junk = vec![b'a'; 16 * 1024];
    let mut sent = 0usize;
    while sent < 16 << 20 {
        match tokio::time::timeout(
            Duration::from_secs(2),
            s.write_all(&frame(CONTINUATION, 0, 1, &junk)),
        )
        .await
        {
            Ok(Ok(())) => sent += junk.len(),
            _ => break,
        }
    }
    let frames = frames_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(
        sent < 16 << 20 || goaway(&frames).is_some(),
        "16 MB of CONTINUATION accepted, no GOAWAY: {frames:?}"
    );
    p.grew_less_than("CONTINUATION flood", before, 32.0);
    p.still_serves().await;
    p.nothing_in_flight().await;
}

/// An HPACK bomb: a 4,000-byte header put in the dynamic table once, then referenced by its
/// one-byte index 2,000 times: 8 MB of headers from 6 KB on the wire. Refused, not expanded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpack_bomb_is_refused() {
    let p = Probe::start("h2-hpack");
    let before = p.rss();
    let mut s = open(&p.addr).await;
    for stream in (1..40).step_by(2) {
        let mut block = get_block("/auth");
        if stream == 1 {
            // Literal with incremental indexing, new name (index 62 from now on).
            block.push(0x40);
            block.extend(literal(b"x-bomb"));
            block.extend(literal(&[b'b'; 4000]));
        }
        block.extend(std::iter::repeat_n(0x80 | 62, 2000));
        // The proxy may close the connection before all are written (a broken pipe here).
        if s.write_all(&frame(HEADERS, END_STREAM | END_HEADERS, stream, &block))
            .await
            .is_err()
        {
            break;
        }
    }
    let frames = frames_until_closed(&mut s, Duration::from_secs(3)).await;
    // No request reached the instance: each stream was refused (431, a reset) or the
    // connection was closed.
    let answered_ok = frames.iter().any(|f| {
        f.0 == HEADERS && f.3.first() == Some(&0x88) // :status 200, static index 8
    });
    assert!(!answered_ok, "a bombed request was served: {frames:?}");
    p.grew_less_than("HPACK bomb", before, 32.0);
    p.still_serves().await;
    p.nothing_in_flight().await;
}

/// CVE-2023-44487 class: requests opened and reset at once, 10,000 of them. The proxy may
/// close the connection (ENHANCE_YOUR_CALM); either way nothing stays in flight, memory stays
/// bounded and other clients are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_leaves_nothing_in_flight() {
    let p = Probe::start("h2-rapid-reset");
    let before = p.rss();
    let mut s = open(&p.addr).await;
    let block = get_block("/auth?ms=500");
    let mut batch = Vec::new();
    let mut written = 0;
    for i in 0..10_000u32 {
        let id = 2 * i + 1;
        batch.extend(frame(HEADERS, END_STREAM | END_HEADERS, id, &block));
        batch.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes())); // CANCEL
        if batch.len() > 64 * 1024 {
            if s.write_all(&batch).await.is_err() {
                break;
            }
            written = i + 1;
            batch.clear();
        }
    }
    let _ = s.write_all(&batch).await;
    let frames = frames_until_closed(&mut s, Duration::from_secs(3)).await;
    eprintln!(
        "rapid reset: {written}+ streams written, GOAWAY {:?}",
        goaway(&frames)
    );
    p.grew_less_than("rapid reset", before, 48.0);
    p.nothing_in_flight().await;
    p.still_serves().await;
}

/// SETTINGS and PING floods from a client that never reads: the acknowledgements back up into
/// the socket, not into the proxy's memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_ping_floods_from_a_client_that_never_reads() {
    let p = Probe::start("h2-floods");
    let before = p.rss();
    let mut s = open(&p.addr).await;
    let mut batch = Vec::new();
    for i in 0..2_000u64 {
        // SETTINGS_MAX_CONCURRENT_STREAMS = i, then a PING.
        let mut setting = vec![0, 3];
        setting.extend_from_slice(&(i as u32).to_be_bytes());
        batch.extend(frame(SETTINGS, 0, 0, &setting));
        batch.extend(frame(PING, 0, 0, &i.to_be_bytes()));
    }
    let started = Instant::now();
    let mut rounds = 0;
    while started.elapsed() < Duration::from_secs(3) {
        match tokio::time::timeout(Duration::from_millis(500), s.write_all(&batch)).await {
            Ok(Ok(())) => rounds += 1,
            // The proxy stopped reading (backpressure) or closed: both bound it.
            _ => break,
        }
    }
    eprintln!("floods: {rounds} rounds of 2,000 SETTINGS + 2,000 PINGs written");
    p.grew_less_than("SETTINGS/PING floods", before, 32.0);
    p.still_serves().await;
    drop(s);
    p.nothing_in_flight().await;
}

/// A thousand streams at once on one connection: the proxy serves up to its stream limit
/// and refuses the rest (REFUSED_STREAM or a GOAWAY), and every served one is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_streams_at_once_are_bounded() {
    let p = Probe::start("h2-streams");
    let before = p.rss();
    let mut s = open(&p.addr).await;
    let block = get_block("/auth?ms=300");
    let mut batch = Vec::new();
    for i in 0..1000u32 {
        batch.extend(frame(HEADERS, END_STREAM | END_HEADERS, 2 * i + 1, &block));
    }
    s.write_all(&batch).await.unwrap();
    // Keep the connection's window open for the answers.
    let frames = frames_until_closed(&mut s, Duration::from_secs(8)).await;
    let answered = frames.iter().filter(|f| f.0 == HEADERS).count();
    let reset = frames.iter().filter(|f| f.0 == RST_STREAM).count();
    let data_ends = frames
        .iter()
        .filter(|f| f.0 == DATA && f.1 & END_STREAM != 0)
        .count();
    eprintln!(
        "1,000 streams: {answered} answered, {reset} reset, GOAWAY {:?}",
        goaway(&frames)
    );
    assert!(answered > 0, "none answered: {frames:?}");
    assert!(
        answered + reset >= 1000 || goaway(&frames).is_some(),
        "{answered} answered + {reset} reset of 1,000 and no GOAWAY"
    );
    assert!(data_ends <= answered);
    p.grew_less_than("1,000 streams", before, 48.0);
    drop(s);
    p.nothing_in_flight().await;
    p.still_serves().await;
}
