//! What an instance is asked to emulate.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use foresight_core::dist::Distribution;

/// One service route and its mean service time.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// The path, starting with `/`.
    pub path: String,
    /// Mean service time before the slow-down factor.
    pub mean: Duration,
}

impl FromStr for Route {
    type Err = ConfigError;
    /// `PATH=DURATION`, e.g. `/auth=5ms`.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::new("route", s, "PATH=DURATION, e.g. /auth=5ms");
        let (path, mean) = s.split_once('=').ok_or_else(bad)?;
        if !path.starts_with('/') || path.len() < 2 {
            return Err(bad());
        }
        let mean = humantime::parse_duration(mean).map_err(|_| bad())?;
        if mean > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "route",
                s,
                "a mean service time of at most 1h",
            ));
        }
        Ok(Route {
            path: path.to_string(),
            mean,
        })
    }
}

/// The routes of the paper's example application: a quick authentication call, the main
/// processing step, and a slower call out to an external dependency.
pub fn default_routes() -> Vec<Route> {
    [("/auth", 5), ("/process", 20), ("/external", 50)]
        .into_iter()
        .map(|(p, ms)| Route {
            path: p.to_string(),
            mean: Duration::from_millis(ms),
        })
        .collect()
}

/// Everything an instance emulates.
#[derive(Clone, Debug)]
pub struct BackendConfig {
    /// Requests served at once.
    pub workers: usize,
    /// Requests allowed to wait for a worker; one more gets 503.
    pub queue: usize,
    /// Service-time distribution.
    pub distribution: Distribution,
    /// Service routes; `/` is served with the first route's profile.
    pub routes: Vec<Route>,
    /// Multiplies every service time (2.0 = half as fast).
    pub slowdown: f64,
    /// Time after start before `/ready` answers 200 and routes serve.
    pub startup_delay: Duration,
    /// Seed of the service-time draws.
    pub seed: u64,
    /// Name in the `x-foresight-instance` header and metrics; the listen address if empty.
    pub name: String,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            workers: 8,
            queue: 128,
            distribution: Distribution::Exponential,
            routes: default_routes(),
            slowdown: 1.0,
            startup_delay: Duration::ZERO,
            seed: 1,
            name: String::new(),
        }
    }
}

impl BackendConfig {
    /// Checks every value once, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.workers == 0 || self.workers > 100_000 {
            return Err(ConfigError::new("workers", self.workers, "1..=100000"));
        }
        if self.queue > 1_000_000 {
            return Err(ConfigError::new("queue", self.queue, "0..=1000000"));
        }
        if !(self.slowdown.is_finite() && self.slowdown > 0.0 && self.slowdown <= 1000.0) {
            return Err(ConfigError::new(
                "slowdown",
                self.slowdown,
                "a factor in (0, 1000]",
            ));
        }
        if self.routes.is_empty() {
            return Err(ConfigError::new("route", "(none)", "at least one route"));
        }
        Ok(())
    }
}

/// A configuration value that is not valid, with what would be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value `{value}` for `{key}`: expected {expected}")]
pub struct ConfigError {
    /// The key or flag.
    pub key: String,
    /// The value given.
    pub value: String,
    /// What would be valid.
    pub expected: String,
}

impl ConfigError {
    fn new(key: &str, value: impl fmt::Display, expected: &str) -> Self {
        ConfigError {
            key: key.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_routes() {
        let r: Route = "/pay=12ms".parse().unwrap();
        assert_eq!(r.mean, Duration::from_millis(12));
        assert!("pay=12ms".parse::<Route>().is_err());
        assert!("/pay=soon".parse::<Route>().is_err());
    }

    #[test]
    fn validation_names_the_key() {
        let c = BackendConfig {
            slowdown: 0.0,
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "slowdown");
        let c = BackendConfig {
            workers: 0,
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "workers");
    }
}
