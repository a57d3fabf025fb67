//! Active health checking: a pure rise/fall state machine, and the task that feeds it.
//!
//! An instance changes state only after `rise` consecutive successes or `fall` consecutive
//! failures (HAProxy's `rise`/`fall`), so one lost probe does not flap the pool. A probe is an
//! HTTP GET (over HTTP/1.1, or HTTP/2 to an `h2c` or `h2` instance) or the standard gRPC health check,
//! `grpc.health.v1.Health/Check`, healthy when it answers SERVING.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE, TE, USER_AGENT};
use http::Method;
use http_body_util::BodyExt;

use crate::config::HealthCheckConfig;
use crate::h1::{self, Outgoing};
use crate::pool::{Backend, Pool};

/// Rise/fall bookkeeping for one instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthState {
    healthy: bool,
    streak: u32,
}

impl HealthState {
    /// Starts healthy or not.
    pub fn new(healthy: bool) -> Self {
        HealthState { healthy, streak: 0 }
    }

    /// Whether the instance is currently considered healthy.
    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// Records one probe; returns the new state when it changed.
    pub fn record(&mut self, ok: bool, rise: u32, fall: u32) -> Option<bool> {
        if ok == self.healthy {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if ok { rise } else { fall };
        if self.streak >= needed {
            self.healthy = ok;
            self.streak = 0;
            Some(ok)
        } else {
            None
        }
    }
}

/// Probes one instance every `interval` until it leaves the pool.
pub(crate) async fn check_loop(pool: Arc<Pool>, backend: Weak<Backend>, config: HealthCheckConfig) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(b) = backend.upgrade() else { return };
        if b.is_removed() {
            return;
        }
        let ok = probe(&b, &config).await;
        pool.record_health(&b, ok);
    }
}

/// The gRPC health check's method.
const GRPC_CHECK: &str = "/grpc.health.v1.Health/Check";
/// The most a probe's answer may hold (a health answer is a few bytes).
const PROBE_BODY_MAX: usize = 64 * 1024;

async fn probe(backend: &Backend, config: &HealthCheckConfig) -> bool {
    if let Some(service) = &config.grpc {
        return tokio::time::timeout(config.timeout, grpc_probe(backend, service, config.timeout))
            .await
            .unwrap_or(false);
    }
    if backend.upstream.speaks_h2() {
        let fut = async {
            let resp = backend
                .upstream
                .own_h2(
                    Method::GET,
                    &config.path,
                    agent(),
                    Bytes::new(),
                    config.timeout,
                )
                .await
                .ok()?;
            let status = resp.status();
            http_body_util::Limited::new(resp.into_body(), PROBE_BODY_MAX)
                .collect()
                .await
                .ok()?;
            Some(status)
        };
        return matches!(
            tokio::time::timeout(config.timeout, fut).await,
            Ok(Some(s)) if s.is_success()
        );
    }
    let fut = async {
        let now = std::time::Instant::now();
        let conn = backend.upstream.get(now).await.ok()?;
        let headers = agent();
        let req = Outgoing {
            method: &Method::GET,
            target: &config.path,
            headers: &headers,
            default_host: backend.authority.as_str(),
        };
        // Bounded by the probe's own timeout below.
        let resp = conn.send(req, None, crate::deadline::NONE).await.ok()?;
        let status = resp.status();
        // Read the (small) body so the connection can be reused.
        let mut body = resp.into_body();
        if h1::drain(&mut body).await {
            if let Some(conn) = body.into_reusable() {
                backend.upstream.put(conn, std::time::Instant::now());
            }
        }
        Some(status)
    };
    matches!(
        tokio::time::timeout(config.timeout, fut).await,
        Ok(Some(s)) if s.is_success()
    )
}

fn agent() -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(3);
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static("foresight-health-check"),
    );
    headers
}

/// `grpc.health.v1.Health/Check` for `service`: healthy when the call succeeds (grpc-status 0)
/// and answers SERVING.
async fn grpc_probe(backend: &Backend, service: &str, timeout: std::time::Duration) -> bool {
    let mut headers = agent();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    let sent = backend
        .upstream
        .own_h2(
            Method::POST,
            GRPC_CHECK,
            headers,
            check_request(service),
            timeout,
        )
        .await;
    let Ok(resp) = sent else { return false };
    if !resp.status().is_success() {
        return false;
    }
    let head_status = resp.headers().get("grpc-status").cloned();
    let Ok(collected) = http_body_util::Limited::new(resp.into_body(), PROBE_BODY_MAX)
        .collect()
        .await
    else {
        return false;
    };
    let status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status").cloned())
        .or(head_status);
    status.is_some_and(|s| s.as_bytes() == b"0") && serving(&collected.to_bytes())
}

/// A length-prefixed gRPC message holding `HealthCheckRequest { service = 1 }` (protobuf:
/// field 1, wire type 2, a varint length, the UTF-8 bytes; nothing for "").
fn check_request(service: &str) -> Bytes {
    let mut msg = Vec::with_capacity(service.len() + 3);
    if !service.is_empty() {
        msg.push(0x0a);
        let mut n = service.len();
        while n >= 0x80 {
            msg.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        msg.push(n as u8);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut framed = Vec::with_capacity(5 + msg.len());
    framed.push(0); // not compressed
    framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    framed.extend_from_slice(&msg);
    Bytes::from(framed)
}

/// Whether a gRPC answer body is one uncompressed `HealthCheckResponse` whose `status`
/// (field 1, a varint) is SERVING (1). Unknown fields are skipped.
fn serving(body: &[u8]) -> bool {
    let Some((&[0], rest)) = body.split_first_chunk::<1>() else {
        return false;
    };
    let Some((len, msg)) = rest.split_first_chunk::<4>() else {
        return false;
    };
    let len = u32::from_be_bytes(*len) as usize;
    if msg.len() != len {
        return false;
    }
    let mut status = 0u64;
    let mut i = 0;
    while i < msg.len() {
        let Some((key, n)) = varint(&msg[i..]) else {
            return false;
        };
        i += n;
        match (key >> 3, key & 7) {
            (1, 0) => {
                let Some((v, n)) = varint(&msg[i..]) else {
                    return false;
                };
                status = v;
                i += n;
            }
            (_, 0) => match varint(&msg[i..]) {
                Some((_, n)) => i += n,
                None => return false,
            },
            (_, 2) => match varint(&msg[i..]) {
                Some((l, n)) if (l as usize) <= msg.len() - i - n => i += n + l as usize,
                _ => return false,
            },
            (_, 1) => i += 8,
            (_, 5) => i += 4,
            _ => return false,
        }
    }
    i == msg.len() && status == 1
}

/// A protobuf varint at the start of `b`: (value, bytes read).
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().take(10).enumerate() {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_health_messages() {
        assert_eq!(&check_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(&check_request("auth")[..], b"\0\0\0\0\x06\x0a\x04auth");
        let long = "s".repeat(200);
        let r = check_request(&long);
        assert_eq!(&r[5..8], &[0x0a, 0xc8, 0x01], "a two-byte varint length");
        // SERVING = 1, NOT_SERVING = 2, UNKNOWN = 0 (or no field).
        assert!(serving(&[0, 0, 0, 0, 2, 0x08, 1]));
        assert!(!serving(&[0, 0, 0, 0, 2, 0x08, 2]));
        assert!(!serving(&[0, 0, 0, 0, 0]));
        // An unknown string field before the status is skipped.
        assert!(serving(&[0, 0, 0, 0, 5, 0x12, 1, b'x', 0x08, 1]));
        // Compressed, truncated, trailing bytes, bad varints: not healthy.
        for bad in [
            &[1, 0, 0, 0, 2, 0x08, 1][..],
            &[0, 0, 0, 0, 3, 0x08, 1],
            &[0, 0, 0, 0, 2, 0x08, 1, 0],
            &[0, 0, 0, 0, 2, 0x08, 0x81],
            &[0, 0, 0],
            &[0, 0, 0, 0, 3, 0x12, 9, 1],
        ] {
            assert!(!serving(bad), "{bad:?}");
        }
    }

    #[test]
    fn needs_rise_successes_and_fall_failures() {
        let mut h = HealthState::new(true);
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(false, 2, 3), Some(false));
        assert!(!h.healthy());
        assert_eq!(h.record(true, 2, 3), None);
        assert_eq!(
            h.record(false, 2, 3),
            None,
            "a failure resets the rise streak"
        );
        assert_eq!(h.record(true, 2, 3), None);
        assert_eq!(h.record(true, 2, 3), Some(true));
    }

    #[test]
    fn a_single_blip_does_not_flap() {
        let mut h = HealthState::new(true);
        for _ in 0..10 {
            assert_eq!(h.record(false, 2, 3), None);
            assert_eq!(h.record(true, 2, 3), None);
        }
        assert!(h.healthy());
    }
}
