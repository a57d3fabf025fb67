//! # foresight-backend
//!
//! An example service instance for demos, tests and experiments: the thing Foresight scales.
//!
//! It emulates *capacity*, not work: a fixed number of workers serve requests, a bounded queue
//! holds the rest, and a full queue answers 503 at once. Each route has its own mean service time,
//! drawn per request from a seeded distribution and multiplied by a slow-down factor, and served
//! by a timer rather than by burning CPU. So twenty instances cost almost nothing on a two-core
//! machine, yet each behaves like a server with a real throughput limit (workers / mean service
//! time) whose latency grows with queueing as load approaches it.
//!
//! Endpoints: the service routes (`/auth`, `/process`, `/external` by default; `?ms=N` forces a
//! constant service time), `/ready` (503 until the start-up delay has passed, the way a real
//! instance warms up), `/healthz` (liveness), `/metrics` (Prometheus text), `/ws` (a WebSocket
//! echo), and gRPC on the same port (`proto/backend.proto`: `Call` and `Stream` through the
//! same capacity model, and `grpc.health.v1.Health/Check`).
//!
//! # Layout
//! - `config`: `BackendConfig`, `Route`, what an instance is asked to emulate
//! - `service`: `run`, the HTTP handler and its capacity model (workers, queue, service
//!   times); `service/grpc`: the gRPC service beside it on the same port
//! - `metrics`: the instance's own Prometheus metrics; `procfs`: its CPU time and memory
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod metrics;
mod procfs;
mod service;

pub use config::{BackendConfig, ConfigError, Distribution, Route};
pub use service::{run, CallReply, CallRequest, MAX_STREAM};
