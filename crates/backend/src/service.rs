//! The request handler and its capacity model.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use foresight_core::rng::mix64;
use foresight_http::{text, Body, ServerOptions};
use http::{header::HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use rand::{rngs::SmallRng, SeedableRng};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{BackendConfig, Route};
use crate::metrics::{Metrics, RouteCode, RouteLabel};

mod grpc;

pub use grpc::{CallReply, CallRequest, MAX_STREAM};

/// Response header naming the instance that served a request, so clients and tests can count.
pub const INSTANCE_HEADER: &str = "x-foresight-instance";

struct State {
    config: BackendConfig,
    name: HeaderValue,
    started: Instant,
    workers: Semaphore,
    waiting: AtomicUsize,
    draws: AtomicU64,
    metrics: Metrics,
}

/// Serves the instance on `listener` until `shutdown` completes, then lets in-flight requests
/// finish.
pub async fn run(
    config: BackendConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    config.validate()?;
    let name = if config.name.is_empty() {
        listener.local_addr()?.to_string()
    } else {
        config.name.clone()
    };
    let state = Arc::new(State {
        name: HeaderValue::from_str(&name)?,
        started: Instant::now(),
        workers: Semaphore::new(config.workers),
        waiting: AtomicUsize::new(0),
        draws: AtomicU64::new(0),
        metrics: Metrics::new(config.workers, config.queue),
        config,
    });
    foresight_http::serve(
        listener,
        ServerOptions::default(),
        move |req, _peer| {
            let state = state.clone();
            async move { state.handle(req).await }
        },
        shutdown,
    )
    .await;
    Ok(())
}

impl State {
    fn ready(&self) -> bool {
        self.started.elapsed() >= self.config.startup_delay
    }

    async fn handle(self: &Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        if grpc::is_call(&req) {
            return self.grpc(req).await;
        }
        let path = req.uri().path();
        match path {
            "/ws" => return self.websocket(req),
            "/ready" => {
                return if self.ready() {
                    text(StatusCode::OK, "ready\n")
                } else {
                    text(StatusCode::SERVICE_UNAVAILABLE, "starting\n")
                }
            }
            "/healthz" => return text(StatusCode::OK, "ok\n"),
            "/metrics" => {
                let mut r = text(StatusCode::OK, self.metrics.render());
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                return r;
            }
            _ => {}
        }
        let route = if path == "/" {
            &self.config.routes[0]
        } else {
            match self.config.routes.iter().find(|r| r.path == path) {
                Some(r) => r,
                None => return text(StatusCode::NOT_FOUND, "no such route\n"),
            }
        };
        let forced = req.uri().query().and_then(forced_ms);
        let arrived = Instant::now();
        let status = self.serve(route.mean, forced).await;
        self.record(&route.path, status, arrived);
        let body = match status {
            StatusCode::OK => format!("ok {}\n", route.path),
            StatusCode::SERVICE_UNAVAILABLE if !self.ready() => "starting\n".to_string(),
            _ => "queue full\n".to_string(),
        };
        let mut r = text(status, body);
        r.headers_mut().insert(INSTANCE_HEADER, self.name.clone());
        r
    }

    /// `/ws`: a WebSocket echo (RFC 6455). The handshake is answered 101 with this instance's
    /// name in [`INSTANCE_HEADER`]; every text and binary message is sent back, pings are
    /// answered, and a close is returned. Not a WebSocket handshake: 400; not ready: 503.
    fn websocket(&self, mut req: Request<Incoming>) -> Response<Body> {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::{handshake::derive_accept_key, protocol::Role};
        if !self.ready() {
            return text(StatusCode::SERVICE_UNAVAILABLE, "starting\n");
        }
        let h = req.headers();
        let is = |name: http::header::HeaderName, token: &str| {
            h.get_all(name)
                .iter()
                .flat_map(|v| v.as_bytes().split(|&b| b == b','))
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        };
        let key = h
            .get("sec-websocket-key")
            .map(|k| derive_accept_key(k.as_bytes()));
        let (Some(accept), true, true) = (
            key,
            is(http::header::UPGRADE, "websocket"),
            is(http::header::CONNECTION, "upgrade"),
        ) else {
            return text(
                StatusCode::BAD_REQUEST,
                "a WebSocket handshake is expected here\n",
            );
        };
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = on.await else { return };
            let io = hyper_util::rt::TokioIo::new(upgraded);
            let mut ws =
                tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Server, None).await;
            while let Some(Ok(msg)) = ws.next().await {
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    break;
                }
            }
        });
        let mut r = text(StatusCode::SWITCHING_PROTOCOLS, "");
        let headers = r.headers_mut();
        headers.remove(http::header::CONTENT_TYPE);
        headers.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("upgrade"),
        );
        if let Ok(v) = HeaderValue::from_str(&accept) {
            headers.insert("sec-websocket-accept", v);
        }
        headers.insert(INSTANCE_HEADER, self.name.clone());
        r
    }

    /// Counts a request of `route` answered `status`, and its time since `arrived`.
    fn record(&self, route: &str, status: StatusCode, arrived: Instant) {
        self.metrics
            .requests
            .get_or_create(&RouteCode {
                route: route.to_string(),
                code: status.as_u16(),
            })
            .inc();
        self.metrics
            .duration
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .observe(arrived.elapsed().as_secs_f64());
    }

    /// Waits for a worker (or refuses when the queue is full), then holds it for a service time.
    async fn serve(&self, mean: Duration, forced: Option<Duration>) -> StatusCode {
        if !self.ready() {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        let permit = match self.workers.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.config.queue {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                self.metrics.queue_length.inc();
                let p = self.workers.acquire().await;
                self.metrics.queue_length.dec();
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                match p {
                    Ok(p) => p,
                    Err(_) => return StatusCode::SERVICE_UNAVAILABLE,
                }
            }
        };
        self.metrics.in_flight.inc();
        let service = forced.unwrap_or_else(|| self.draw(mean));
        tokio::time::sleep(service.mul_f64(self.config.slowdown)).await;
        self.metrics.in_flight.dec();
        drop(permit);
        StatusCode::OK
    }

    /// One service time around `mean`; the n-th draw is the same for the same seed.
    fn draw(&self, mean: Duration) -> Duration {
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        let mut rng = SmallRng::seed_from_u64(mix64(self.config.seed ^ mix64(n)));
        self.config.distribution.sample(mean, &mut rng)
    }
}

/// `ms=N` in a query string: a forced constant service time.
fn forced_ms(query: &str) -> Option<Duration> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("ms="))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|ms| Duration::from_millis(ms.min(3_600_000)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_service_time_from_query() {
        assert_eq!(forced_ms("a=1&ms=250"), Some(Duration::from_millis(250)));
        assert_eq!(forced_ms("ms=x"), None);
        assert_eq!(forced_ms("a=1"), None);
    }
}
