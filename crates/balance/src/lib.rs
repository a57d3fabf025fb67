//! # foresight-balance
//!
//! Every balancing algorithm Foresight offers, behind one small trait, [`Balancer`].
//!
//! The design decisions, so a reader need not rediscover them:
//! - **Pure and time-injected.** An algorithm never reads a clock, never does I/O and never
//!   sleeps: `pick` receives `now`. The proxy passes its monotonic clock, the simulator its
//!   virtual one, and both run the same objects, so a result measured in the simulator is a
//!   result about the product.
//! - **Built per backend set, shared by every thread.** [`build`] is called once for each
//!   snapshot of eligible backends (a place for precomputation: the smooth weighted
//!   round-robin cycle, the hash ring); `pick(&self, …)` is then called concurrently without a
//!   lock. Mutable selection state is atomics only.
//! - **Seeded.** Random choices come from [`foresight_core::rng::AtomicSplitMix`] seeded by the
//!   configuration, so a single-threaded run replays exactly.
//! - **Load is observed, not owned.** Each [`Endpoint`] carries an `Arc<`[`Load`]`>` (in-flight
//!   requests, peak-EWMA latency) that outlives snapshots: rebuilding the balancer after a health
//!   change does not forget what was learnt about an instance.
//!
//! # Layout
//! - `lib.rs`: the `Balancer` trait, `Endpoint`, `build` (an algorithm over a set of instances)
//! - `algorithm`: `Algorithm`, the closed set of names (configuration, command line)
//! - `load`: `Load`, per-instance requests in flight and peak-EWMA latency
//! - one file per algorithm: `round_robin`, `weighted_round_robin`, `random`,
//!   `least_connections`, `weighted_least_connections`, `least_request`, `p2c_ewma`,
//!   `consistent_hash`, `prequal`, `forecast_aware`, and the paper's table: `min_min`,
//!   `max_min`, `clb`, `lbmm`, `active_clustering`, `olb`, `pa_lbimm`, `eswlc`, `honey_bee`
//! - `batch`: the machinery the Min-Min family shares
//! - `slow_start`: slow start for new instances, around any algorithm
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod active_clustering;
mod algorithm;
mod batch;
mod clb;
mod consistent_hash;
mod eswlc;
mod forecast_aware;
mod honey_bee;
mod lbmm;
mod least_connections;
mod least_request;
mod load;
mod max_min;
mod min_min;
mod olb;
mod p2c_ewma;
mod pa_lbimm;
mod prequal;
mod random;
mod round_robin;
mod slow_start;
mod weighted_least_connections;
mod weighted_round_robin;

use std::fmt;
use std::sync::Arc;

use foresight_core::Time;

pub use algorithm::{Algorithm, UnknownAlgorithm};
pub use forecast_aware::split_planned_load;
pub use load::{peak_ewma_decay, peak_ewma_update, EwmaParams, Load, DEFAULT_DECAY, DEFAULT_RTT};
pub use slow_start::SlowStartConfig;

/// One instance as the balancer sees it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// A stable identity (hash of the configured address), used by consistent hashing so that an
    /// instance keeps its keys when others come and go.
    pub key: u64,
    /// Relative capacity, at least 1.
    pub weight: u32,
    /// Requests it serves at once, when known (0 = unknown). Algorithms that need "has a free
    /// worker" (OLB) use it; the simulator knows it, the proxy only if configured.
    pub capacity: u32,
    /// Live load counters, shared with whoever forwards the requests.
    pub load: Arc<Load>,
}

impl Endpoint {
    /// An endpoint of unknown capacity with a fresh load tracker created at `now`.
    pub fn new(key: u64, weight: u32, params: EwmaParams, now: Time) -> Self {
        Endpoint {
            key,
            weight: weight.max(1),
            capacity: 0,
            load: Arc::new(Load::new(params, now)),
        }
    }
}

/// What an algorithm may know about the request being placed.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestInfo {
    /// The request's hash key (from a header or the path), for consistent hashing.
    pub hash_key: Option<u64>,
    /// Expected size relative to an average request (its route's mean service time over the
    /// overall mean); 0 means unknown and counts as 1. Used by the batch heuristics.
    pub cost: f64,
    /// Priority class: 0 ordinary, higher is more important (PA-LBIMM's VIP requests).
    pub priority: u8,
}

impl RequestInfo {
    /// The expected relative size, 1 when unknown.
    pub fn cost_or_one(&self) -> f64 {
        if self.cost > 0.0 && self.cost.is_finite() {
            self.cost
        } else {
            1.0
        }
    }
}

/// Chooses an instance for each request.
///
/// Contract (tested for every algorithm in `tests/contract.rs`): `pick` is called with the same
/// endpoint slice the balancer was built for; it returns an index into it, or `None` only when the
/// slice is empty.
pub trait Balancer: Send + Sync + fmt::Debug {
    /// Which algorithm this is.
    fn algorithm(&self) -> Algorithm;
    /// The index of the endpoint that should serve `request`.
    fn pick(&self, endpoints: &[Endpoint], request: &RequestInfo, now: Time) -> Option<usize>;

    /// [`pick`](Balancer::pick) for a caller that also keeps every endpoint's in-flight count
    /// in one array, `in_flight[k] == endpoints[k].load.in_flight()`: the simulator, the only
    /// writer of its counts. Algorithms that read nothing but the counts override it to scan
    /// the array (contiguous, vectorisable) instead of one [`Load`] per endpoint behind its own
    /// pointer; they pick exactly what `pick` would. The rest use `pick`.
    fn pick_with_counts(
        &self,
        endpoints: &[Endpoint],
        in_flight: &[u32],
        request: &RequestInfo,
        now: Time,
    ) -> Option<usize> {
        let _ = in_flight;
        self.pick(endpoints, request, now)
    }

    /// Whether this algorithm reads the latency estimate ([`Load::rtt_estimate_ns`]). The
    /// simulator skips [`Load::observe`] (an `exp` per response) for those that do not; the
    /// proxy always records it, for `GET /backends`.
    fn uses_latency(&self) -> bool {
        true
    }

    /// For batch heuristics (Min-Min and its family): assigns a whole batch of requests held
    /// for a short window, one endpoint index per request, in order. Other algorithms return
    /// `None` and are asked request by request.
    fn assign_batch(
        &self,
        endpoints: &[Endpoint],
        batch: &[RequestInfo],
        now: Time,
    ) -> Option<Vec<usize>> {
        let _ = (endpoints, batch, now);
        None
    }
}

/// Everything needed to build a balancer other than the endpoints.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BalancerConfig {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Seed for every random choice.
    pub seed: u64,
    /// Slow start for new instances, around any algorithm.
    pub slow_start: Option<SlowStartConfig>,
}

impl BalancerConfig {
    /// An algorithm with a seed and no slow start.
    pub fn new(algorithm: Algorithm, seed: u64) -> Self {
        BalancerConfig {
            algorithm,
            seed,
            slow_start: None,
        }
    }
}

/// Draws an index with probability proportional to `score` (non-negative), seeded: the
/// roulette wheel of least-request's weighted mode, honey bee foraging and forecast-aware
/// weighting. `endpoints` must not be empty.
pub(crate) fn roulette(
    rng: &foresight_core::rng::AtomicSplitMix,
    endpoints: &[Endpoint],
    score: impl Fn(&Endpoint) -> f64,
) -> usize {
    let total: f64 = endpoints.iter().map(&score).sum();
    let mut r = rng.unit_f64() * total;
    for (i, e) in endpoints.iter().enumerate() {
        r -= score(e);
        if r < 0.0 {
            return i;
        }
    }
    endpoints.len() - 1
}

/// Builds the balancer for one snapshot of eligible endpoints.
pub fn build(config: &BalancerConfig, endpoints: &[Endpoint]) -> Box<dyn Balancer> {
    match (config.slow_start, config.algorithm) {
        // Its forecasts carry the slow start (`split_planned_load`); wrapping it as well
        // would apply the factor twice.
        (Some(s), Algorithm::ForecastAware) => Box::new(
            forecast_aware::ForecastAware::with_slow_start(config.seed, s),
        ),
        (Some(s), _) => Box::new(slow_start::SlowStart::new(
            build_algorithm(config, endpoints),
            s,
            config.seed,
        )),
        (None, _) => build_algorithm(config, endpoints),
    }
}

fn build_algorithm(config: &BalancerConfig, endpoints: &[Endpoint]) -> Box<dyn Balancer> {
    let seed = config.seed;
    match config.algorithm {
        Algorithm::RoundRobin => Box::new(round_robin::RoundRobin::new(seed)),
        Algorithm::WeightedRoundRobin => Box::new(weighted_round_robin::WeightedRoundRobin::new(
            endpoints, seed,
        )),
        Algorithm::LeastConnections => Box::new(least_connections::LeastConnections::new(seed)),
        Algorithm::WeightedLeastConnections => Box::new(
            weighted_least_connections::WeightedLeastConnections::new(seed),
        ),
        Algorithm::Random => Box::new(random::Random::new(endpoints, seed)),
        Algorithm::P2cEwma => Box::new(p2c_ewma::P2cPeakEwma::new(seed)),
        Algorithm::ConsistentHash => {
            Box::new(consistent_hash::ConsistentHash::new(endpoints, seed))
        }
        Algorithm::LeastRequest => Box::new(least_request::LeastRequest::new(endpoints, seed)),
        Algorithm::Olb => Box::new(olb::Olb::new(seed)),
        Algorithm::Clb => Box::new(clb::Clb::new(seed)),
        Algorithm::Eswlc => Box::new(eswlc::Eswlc::new(endpoints, seed)),
        Algorithm::HoneyBee => Box::new(honey_bee::HoneyBee::new(seed)),
        Algorithm::ActiveClustering => {
            Box::new(active_clustering::ActiveClustering::new(endpoints, seed))
        }
        Algorithm::Prequal => Box::new(prequal::Prequal::new(seed)),
        Algorithm::MinMin => Box::new(min_min::new()),
        Algorithm::MaxMin => Box::new(max_min::new()),
        Algorithm::Lbmm => Box::new(lbmm::new()),
        Algorithm::PaLbimm => Box::new(pa_lbimm::new()),
        Algorithm::ForecastAware => Box::new(forecast_aware::ForecastAware::new(seed)),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// `n` endpoints with the given weights (1 when the slice is short), created at time zero.
    pub fn endpoints(weights: &[u32]) -> Vec<Endpoint> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                Endpoint::new(
                    foresight_core::rng::mix64(i as u64 + 1),
                    *w,
                    EwmaParams::default(),
                    Time::ZERO,
                )
            })
            .collect()
    }

    /// How many of `n` picks went to each endpoint, with no load changes in between.
    pub fn histogram(b: &dyn Balancer, eps: &[Endpoint], n: usize) -> Vec<usize> {
        let mut counts = vec![0; eps.len()];
        for _ in 0..n {
            counts[b.pick(eps, &RequestInfo::default(), Time::ZERO).unwrap()] += 1;
        }
        counts
    }
}
