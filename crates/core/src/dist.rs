//! Service-time distributions, shared by the example instance (`foresight backend`) and the
//! simulator so that both draw service times from the same code.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;
use rand_distr::{Distribution as _, Exp, LogNormal};

/// How service times are drawn around a mean.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution {
    /// Memoryless: the M in M/M/c; coefficient of variation 1.
    Exponential,
    /// Log-normal with shape `sigma` (of the underlying normal), scaled to the mean;
    /// heavy-tailed like real service times.
    Lognormal {
        /// Shape parameter; 0.5 gives a coefficient of variation of about 0.53.
        sigma: f64,
    },
    /// Exactly the mean every time.
    Constant,
}

impl Distribution {
    /// One draw with the given mean, in seconds.
    pub fn sample_secs<R: Rng + ?Sized>(self, mean_secs: f64, rng: &mut R) -> f64 {
        self.sampler(mean_secs).sample_secs(rng)
    }

    /// This distribution around `mean_secs`, prepared once for many draws.
    pub fn sampler(self, mean_secs: f64) -> Sampler {
        if mean_secs.is_nan() || mean_secs <= 0.0 {
            return Sampler::Constant(0.0);
        }
        match self {
            Distribution::Constant => Sampler::Constant(mean_secs),
            Distribution::Exponential => match Exp::new(1.0 / mean_secs) {
                Ok(d) => Sampler::Exponential(d),
                Err(_) => Sampler::Constant(mean_secs),
            },
            Distribution::Lognormal { sigma } => {
                // E[X] = exp(mu + sigma^2 / 2) = mean.
                let mu = mean_secs.ln() - sigma * sigma / 2.0;
                match LogNormal::new(mu, sigma) {
                    Ok(d) => Sampler::Lognormal(d),
                    Err(_) => Sampler::Constant(mean_secs),
                }
            }
        }
    }

    /// One draw with the given mean, clamped to at most an hour.
    pub fn sample<R: Rng + ?Sized>(self, mean: Duration, rng: &mut R) -> Duration {
        Duration::from_secs_f64(self.sample_secs(mean.as_secs_f64(), rng).clamp(0.0, 3600.0))
    }
}

/// A [`Distribution`] with its mean fixed: the divisions and logarithm of setting it up are
/// done once, not per draw (the two divisions of `Exp::new` were about 6% of the simulator's
/// time per request). Draws
/// exactly what [`Distribution::sample_secs`] draws, which goes through it.
#[derive(Clone, Copy, Debug)]
pub enum Sampler {
    /// Always this many seconds.
    Constant(f64),
    /// Exponential with the prepared rate.
    Exponential(Exp<f64>),
    /// Log-normal with the prepared parameters.
    Lognormal(LogNormal<f64>),
}

impl Sampler {
    /// One draw, in seconds.
    pub fn sample_secs<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            Sampler::Constant(secs) => *secs,
            Sampler::Exponential(d) => d.sample(rng),
            Sampler::Lognormal(d) => d.sample(rng),
        }
    }
}

/// A distribution name that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadDistribution(pub String);

impl fmt::Display for BadDistribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a distribution; expected exponential, lognormal, lognormal:SIGMA (0 < SIGMA <= 5) or constant",
            self.0
        )
    }
}

impl std::error::Error for BadDistribution {}

impl FromStr for Distribution {
    type Err = BadDistribution;
    fn from_str(s: &str) -> Result<Self, BadDistribution> {
        match s {
            "exponential" => Ok(Distribution::Exponential),
            "constant" => Ok(Distribution::Constant),
            "lognormal" => Ok(Distribution::Lognormal { sigma: 0.5 }),
            _ => match s.strip_prefix("lognormal:").map(str::parse::<f64>) {
                Some(Ok(sigma)) if sigma.is_finite() && sigma > 0.0 && sigma <= 5.0 => {
                    Ok(Distribution::Lognormal { sigma })
                }
                _ => Err(BadDistribution(s.to_string())),
            },
        }
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distribution::Exponential => f.write_str("exponential"),
            Distribution::Lognormal { sigma } => write!(f, "lognormal:{sigma}"),
            Distribution::Constant => f.write_str("constant"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    #[test]
    fn every_distribution_has_the_requested_mean() {
        for d in [
            Distribution::Constant,
            Distribution::Exponential,
            Distribution::Lognormal { sigma: 0.5 },
        ] {
            let mut rng = SmallRng::seed_from_u64(3);
            let n = 40_000;
            let m = (0..n).map(|_| d.sample_secs(0.020, &mut rng)).sum::<f64>() / n as f64;
            assert!((m - 0.020).abs() < 0.0006, "{d}: {m}");
        }
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            "constant".parse::<Distribution>().unwrap(),
            Distribution::Constant
        );
        assert_eq!(
            "lognormal:1.5".parse::<Distribution>().unwrap(),
            Distribution::Lognormal { sigma: 1.5 }
        );
        assert!("lognormal:-1".parse::<Distribution>().is_err());
        assert!("gauss"
            .parse::<Distribution>()
            .unwrap_err()
            .to_string()
            .contains("`gauss`"));
    }
}
