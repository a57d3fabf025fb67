//! # foresight-core
//!
//! The small values every other part of Foresight agrees on: [`Time`] (a point on a clock that
//! the caller owns) and seeded randomness ([`rng`]). Nothing here reads a clock or does I/O, so
//! the proxy (wall clock) and the simulator (virtual clock) can hand the same algorithms the same
//! kind of values. Anything with tokio, sockets or files lives in the parts that need it.
//!
//! # Layout
//! - `time`: `Time`, a point in time as nanoseconds since the caller's epoch
//! - `dist`: `Distribution`, `Sampler`, service-time distributions
//! - `rng`: `AtomicSplitMix`, `stable_hash`, seeded randomness shared by threads
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod dist;
pub mod rng;
mod time;

pub use time::Time;
