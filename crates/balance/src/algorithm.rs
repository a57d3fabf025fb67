//! The closed set of algorithm names used in configuration and on the command line.

use std::fmt;
use std::str::FromStr;

/// A balancing algorithm, by the name used in configuration files and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `round-robin`: each instance in turn, weights ignored.
    RoundRobin,
    /// `weighted-round-robin`: NGINX's smooth weighted round-robin.
    WeightedRoundRobin,
    /// `least-connections`: fewest requests in flight.
    LeastConnections,
    /// `wlc`: fewest requests in flight per unit of weight (LVS's weighted least-connection).
    WeightedLeastConnections,
    /// `random`: uniform, or proportional to weight when weights differ.
    Random,
    /// `p2c-ewma`: the cheaper of two random instances by peak-EWMA latency × (in-flight + 1).
    P2cEwma,
    /// `consistent-hash`: a hash ring over a header or the path.
    ConsistentHash,
    /// `least-request`: Envoy's least request (P2C over in-flight; weighted when weights differ).
    LeastRequest,
    /// `olb`: opportunistic load balancing (next instance with a free worker).
    Olb,
    /// `clb`: central load balancer (round-robin skipping overloaded instances).
    Clb,
    /// `eswlc`: exponential smooth weighted least-connection.
    Eswlc,
    /// `honey-bee`: honey bee foraging (roulette over profitability, with scouts).
    HoneyBee,
    /// `active-clustering`: instances grouped by speed, round-robin within the fast group.
    ActiveClustering,
    /// `prequal`: hot/cold rule over probed requests-in-flight and latency (NSDI'24).
    Prequal,
    /// `forecast-aware`: shares from each instance's predicted spare capacity.
    ForecastAware,
    /// `min-min`: batch heuristic, smallest earliest-completion first.
    MinMin,
    /// `max-min`: batch heuristic, largest earliest-completion first.
    MaxMin,
    /// `lbmm`: Min-Min plus a rebalancing phase.
    Lbmm,
    /// `pa-lbimm`: priority-aware LBIMM.
    PaLbimm,
}

impl Algorithm {
    /// Every algorithm, in the order `foresight algorithms` lists them.
    pub const ALL: [Algorithm; 19] = [
        Algorithm::RoundRobin,
        Algorithm::WeightedRoundRobin,
        Algorithm::LeastConnections,
        Algorithm::WeightedLeastConnections,
        Algorithm::Random,
        Algorithm::P2cEwma,
        Algorithm::ConsistentHash,
        Algorithm::LeastRequest,
        Algorithm::Olb,
        Algorithm::Clb,
        Algorithm::Eswlc,
        Algorithm::HoneyBee,
        Algorithm::ActiveClustering,
        Algorithm::Prequal,
        Algorithm::ForecastAware,
        Algorithm::MinMin,
        Algorithm::MaxMin,
        Algorithm::Lbmm,
        Algorithm::PaLbimm,
    ];

    /// The name used in configuration.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round-robin",
            Algorithm::WeightedRoundRobin => "weighted-round-robin",
            Algorithm::LeastConnections => "least-connections",
            Algorithm::WeightedLeastConnections => "wlc",
            Algorithm::Random => "random",
            Algorithm::P2cEwma => "p2c-ewma",
            Algorithm::ConsistentHash => "consistent-hash",
            Algorithm::LeastRequest => "least-request",
            Algorithm::Olb => "olb",
            Algorithm::Clb => "clb",
            Algorithm::Eswlc => "eswlc",
            Algorithm::HoneyBee => "honey-bee",
            Algorithm::ActiveClustering => "active-clustering",
            Algorithm::Prequal => "prequal",
            Algorithm::ForecastAware => "forecast-aware",
            Algorithm::MinMin => "min-min",
            Algorithm::MaxMin => "max-min",
            Algorithm::Lbmm => "lbmm",
            Algorithm::PaLbimm => "pa-lbimm",
        }
    }

    /// One line on what it does.
    pub fn description(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "each instance in turn; weights ignored",
            Algorithm::WeightedRoundRobin => {
                "NGINX's smooth weighted round-robin: in proportion to weight, interleaved"
            }
            Algorithm::LeastConnections => {
                "fewest requests in flight; ties broken in rotation"
            }
            Algorithm::WeightedLeastConnections => {
                "LVS weighted least-connection: fewest (in-flight + 1) / weight"
            }
            Algorithm::Random => "uniform at random, or proportional to weight when weights differ",
            Algorithm::P2cEwma => {
                "power of two choices over peak-EWMA latency x (in-flight + 1) / weight (Finagle, Linkerd)"
            }
            Algorithm::ConsistentHash => {
                "hash ring over a header or the path; an instance keeps its keys when others change"
            }
            Algorithm::LeastRequest => {
                "Envoy's least request: P2C over in-flight; weight / (in-flight + 1) when weights differ"
            }
            Algorithm::Olb => {
                "opportunistic: next instance in rotation with a free worker, regardless of speed"
            }
            Algorithm::Clb => {
                "central balancer: round-robin that skips instances slower than 2x the pool's median"
            }
            Algorithm::Eswlc => {
                "WLC on an exponential-smoothing forecast of each instance's in-flight requests"
            }
            Algorithm::HoneyBee => {
                "honey bee foraging: follow instances in proportion to profitability; 5% scouts"
            }
            Algorithm::ActiveClustering => {
                "group instances by speed; round-robin in the fast group, spill when it is busy"
            }
            Algorithm::Prequal => {
                "Prequal: of 3 probed, the fastest not hot (RIF above the 84th percentile), else fewest RIF"
            }
            Algorithm::ForecastAware => {
                "shares from each instance's predicted spare capacity; P2C-EWMA until forecasts exist"
            }
            Algorithm::MinMin => {
                "batch window: smallest earliest-completion first, to the instance giving it"
            }
            Algorithm::MaxMin => {
                "batch window: largest earliest-completion first, small requests fill in"
            }
            Algorithm::Lbmm => {
                "batch window: Min-Min, then move work off the instance that finishes last"
            }
            Algorithm::PaLbimm => {
                "batch window: priority requests first (Min-Min), then the rest, then rebalance"
            }
        }
    }

    /// Whether the algorithm assigns requests held in a short batch window together (the
    /// Min-Min family) rather than one by one.
    pub fn is_batch(self) -> bool {
        matches!(
            self,
            Algorithm::MinMin | Algorithm::MaxMin | Algorithm::Lbmm | Algorithm::PaLbimm
        )
    }

    /// Whether the decision is taken with a view of the whole pool by one balancer
    /// (centralised) or emerges from local, partial information (distributed), the paper's
    /// second axis.
    pub fn is_centralised(self) -> bool {
        !matches!(
            self,
            Algorithm::HoneyBee
                | Algorithm::ActiveClustering
                | Algorithm::P2cEwma
                | Algorithm::LeastRequest
        )
    }

    /// The paper's first axis: dynamic algorithms adapt to the instances' run-time performance,
    /// static ones do not. OLB is static there (it ignores how fast an instance runs a task),
    /// although our online form counts free workers.
    pub fn is_dynamic(self) -> bool {
        matches!(
            self,
            Algorithm::LeastConnections
                | Algorithm::WeightedLeastConnections
                | Algorithm::P2cEwma
                | Algorithm::LeastRequest
                | Algorithm::Clb
                | Algorithm::Eswlc
                | Algorithm::HoneyBee
                | Algorithm::ActiveClustering
                | Algorithm::Prequal
                | Algorithm::ForecastAware
        )
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An algorithm name that is not one of [`Algorithm::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown algorithm `{given}`; expected one of: {}", Algorithm::ALL.iter().map(|a| a.name()).collect::<Vec<_>>().join(", "))]
pub struct UnknownAlgorithm {
    /// What was given.
    pub given: String,
}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownAlgorithm {
                given: s.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_lists_choices() {
        for a in Algorithm::ALL {
            assert_eq!(a.name().parse::<Algorithm>().unwrap(), a);
        }
        let err = "fastest".parse::<Algorithm>().unwrap_err().to_string();
        assert!(
            err.contains("`fastest`") && err.contains("p2c-ewma"),
            "{err}"
        );
    }
}
