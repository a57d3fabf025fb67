//! # foresight-actuate
//!
//! Actuators turn the replica count a scaling policy decided into instances. All of them sit
//! behind [`Actuator`], so the live control loop does not care which one it drives:
//!
//! - [`ProcessPool`]: local `foresight backend` processes (the default). A new instance joins the
//!   proxy only once its `/ready` answers 200; a removed one is drained through the proxy first
//!   (no new requests, in-flight ones finish) and only then stopped. Never more than `max`.
//! - [`ExecHook`]: runs a user command with the count (e.g. an AWS CLI call), with a timeout.
//! - Kubernetes lives in the `foresight-kube` crate (kube-rs is a large build, so it is optional).
//! - The simulator has its own: `foresight_sim::run_scaled`.
//!
//! How the proxy learns about instances is the [`Membership`] trait: in-process with the
//! proxy's [`foresight_proxy::Pool`], or over the proxy's admin API ([`AdminApi`]).
//!
//! # Layout
//! - `lib.rs`: the `Actuator` trait, `PoolState`, `ActuatorError`
//! - `process`: `ProcessPool`, `foresight backend` processes on loopback ports (spawn, ready
//!   check, drain, stop; no child left behind)
//! - `exec`: `ExecHook`, a command run with the desired count
//! - `membership`: `Membership`, how the proxy learns of instances: in-process
//!   (`PoolMembership`) or over its admin API (`AdminApi`)
#![deny(unsafe_code)]
#![deny(missing_docs)]

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

mod exec;
mod membership;
mod process;

pub use exec::ExecHook;
pub use membership::{AdminApi, Membership, PoolMembership};
pub use process::{Instance, Phase, ProcessPool, ProcessPoolConfig};

/// A boxed future, so that actuators can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why an actuator could not apply a count or report its state.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ActuatorError {
    /// A command or process could not be started.
    #[error("cannot start `{program}`: {message}")]
    Start {
        /// Program.
        program: String,
        /// Why.
        message: String,
    },
    /// A command ran past its timeout and was killed.
    #[error("`{program}` timed out after {timeout:?} and was killed")]
    Timeout {
        /// Program.
        program: String,
        /// The limit.
        timeout: Duration,
    },
    /// A command exited unsuccessfully.
    #[error("`{program}` exited with {status}: {stderr}")]
    Failed {
        /// Program.
        program: String,
        /// Exit status.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
    /// More replicas were asked for than the actuator may run.
    #[error("{asked} replicas asked for, but at most {max} are allowed; applying {max}")]
    AboveMax {
        /// Asked for.
        asked: usize,
        /// The limit (what is applied instead).
        max: usize,
    },
    /// A remote API (the proxy's admin API, Kubernetes) refused or failed.
    #[error("{target}: {message}")]
    Api {
        /// What was called.
        target: String,
        /// Why it failed.
        message: String,
    },
}

/// What an actuator knows about its instances.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PoolState {
    /// The count last applied.
    pub desired: usize,
    /// Instances serving, when the actuator can tell.
    pub ready: Option<usize>,
    /// Instances launched and not ready yet, when the actuator can tell.
    pub starting: Option<usize>,
}

/// Sets the replica count somewhere.
pub trait Actuator: Send + Sync {
    /// Name for logs.
    fn name(&self) -> String;
    /// Makes `replicas` instances the target. Returns once the target is recorded (and, for
    /// remote actuators, accepted); instances start and stop in the background.
    fn apply(&self, replicas: usize) -> BoxFuture<'_, Result<(), ActuatorError>>;
    /// The instances as the actuator sees them now.
    fn state(&self) -> BoxFuture<'_, Result<PoolState, ActuatorError>>;
    /// Called when the control loop stops: actuators that own their instances (the process
    /// pool) drain and stop them; remote ones leave the count as it is.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
