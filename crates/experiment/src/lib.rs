//! # foresight-experiment
//!
//! The scaling experiment behind `foresight experiment`: a per-minute trace's test part
//! replayed in the simulator ([`foresight_sim`]) against every scaling policy — static fleets,
//! the HPA, the reactive floor, the predictive and hybrid policies with the fitted
//! forecaster, the cost-optimal sizing and the oracle — at its defaults and along its
//! cost–quality frontier (the knob sweep), each run stepping the same
//! [`foresight_autoscale::Autoscaler`] the live loop steps, assembled from one
//! [`foresight_autoscale::AutoscalerSpec`]. The frontiers are read at the SLO goal and at the
//! HPA's cost; over a suite of workloads, each workload's reading is aggregated.
//!
//! It owns the experiment's logic and results; the CLI keeps the flags, the progress bars,
//! the tables on stdout, the JSON files and the plots.
//!
//! # Layout
//! - `options`: [`Options`] (one field per flag) and their checks
//! - `prepare`: a trace loaded, sized, fitted and its runs listed ([`prepare()`]), told to an
//!   [`Observer`]
//! - `jobs`: the runs of a trace ([`Job`]); `run`: one run in the simulator ([`run_job`])
//! - `assemble`: each run's `AutoscalerSpec`; `parts`: the replayed stretch and its history
//! - `tail_choice`: `--tail-share auto` and `--widen auto` on the validation part
//! - `summary`: the frontiers read at the goal and at the HPA's cost
//! - `suite`: a suite's workloads, each one's outcome and the aggregate; `schedule`: the
//!   suite's work plan on a few threads
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod assemble;
mod jobs;
mod options;
mod parts;
mod prepare;
mod run;
pub mod schedule;
pub mod suite;
mod summary;
mod tail_choice;

pub use assemble::{planning, settings_for, spec_for};
pub use jobs::Job;
pub use options::{Options, Selected};
pub use prepare::{prepare, Observer, Prepared, Silent};
pub use run::{run_job, RunResult, Setup, MAX_INSTANCES, TICK, WORKERS};
pub use summary::{choice_json, summarise, FrontierPoint, Summary};
pub use tail_choice::{pick, TailChoice, TailShare, Trial, Widen, CANDIDATES, WIDEN_TRIED};

/// Why an experiment cannot be done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A setting or an input is wrong (the CLI exits with 64).
    #[error("{0}")]
    Usage(String),
    /// A run failed.
    #[error("{0}")]
    Run(String),
}
