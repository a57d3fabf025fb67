//! What an experiment is asked to do: the settings of every run (one field per flag of
//! `foresight experiment`, which the CLI maps one to one), checked once.

use std::time::Duration;

use foresight_autoscale::{ForecasterSpec, PolicySpec, MAX_WIDEN};
use foresight_balance::Algorithm;
use foresight_scale::STATIC_TARGET;

use crate::run::MAX_INSTANCES;
use crate::tail_choice::{TailShare, Widen};
use crate::Error;

/// An experiment's settings. The defaults live with the CLI's flags (`foresight experiment
/// --help`); [`Options::check`] names a bad value by its flag.
#[derive(Clone, Debug)]
pub struct Options {
    /// Request rate of the trace's busiest test minute (`None`: what about 20 instances serve
    /// at 70% utilisation).
    pub peak_rps: Option<f64>,
    /// Launch-to-ready time of a new instance.
    pub provision_delay: Duration,
    /// Response-time objective, in milliseconds.
    pub slo_ms: f64,
    /// Share of requests that must meet the objective.
    pub slo_goal: f64,
    /// Requests per second one instance serves at 100% utilisation.
    pub capacity_rps: f64,
    /// Forecaster of the predictive policies (`auto`: chosen on the validation part).
    pub forecaster: ForecasterSpec,
    /// The seasonal forecasters' season and the seasons they remember.
    pub season: Duration,
    /// Seasons `seasonal-quantile` remembers per slot.
    pub seasons: usize,
    /// The quantile of the forecast's realised errors the predictive policies plan for.
    pub quantile: f64,
    /// Cost of one instance-hour.
    pub cost_per_hour: f64,
    /// Replay only the first N minutes of the test (and validation) part.
    pub minutes: Option<usize>,
    /// Seed of arrivals, sizes and training.
    pub seed: u64,
    /// Only these policies (empty: all).
    pub policies: Vec<Selected>,
    /// The defaults only, no knob sweep.
    pub no_sweep: bool,
    /// Balancing algorithm inside the simulated pool.
    pub algorithm: Algorithm,
    /// New instances serve at half speed this long after they join.
    pub cold_start: Duration,
    /// New instances get a growing share of requests this long after they join.
    pub slow_start: Duration,
    /// Scale-in stabilisation window of the forecast-driven policies.
    pub scale_in_window: Duration,
    /// Minutes the plan is widened by, or `auto`.
    pub widen: Widen,
    /// The tail band's share, or `auto`.
    pub tail_share: TailShare,
    /// How long the forecast-driven policies hold their instances through an interruption.
    pub interruption_hold: Duration,
}

/// A policy named on the command line: any [`PolicySpec`], or one of the two static sizes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Selected {
    /// A policy family.
    Spec(PolicySpec),
    /// The static fleet sized for the peak.
    StaticPeak,
    /// The static fleet sized for the mean.
    StaticMean,
}

impl std::str::FromStr for Selected {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "static-peak" => Ok(Selected::StaticPeak),
            "static-mean" => Ok(Selected::StaticMean),
            other => other.parse().map(Selected::Spec).map_err(|e| {
                format!(
                    "unknown policy `{other}` (expected static-peak, static-mean, {})",
                    e.expected
                )
            }),
        }
    }
}

impl Options {
    /// Checks every setting, naming the first bad one by its flag, and gives the seasonal
    /// forecasters their season and window.
    pub fn check(mut self) -> Result<Options, Error> {
        self.validate()?;
        let season = (self.season.as_secs() / 60) as usize;
        self.forecaster = self
            .forecaster
            .with_season(Some(season), Some(self.seasons));
        Ok(self)
    }

    fn validate(&self) -> Result<(), Error> {
        let a = self;
        let usage = Error::Usage;
        if !(a.slo_goal > 0.0 && a.slo_goal < 1.0) {
            return Err(usage(format!(
                "invalid value for `--slo-goal`: {} (expected between 0 and 1)",
                a.slo_goal
            )));
        }
        let bounded = |flag: &str, v: f64, lo_exclusive: f64, hi: f64, what: &str| {
            if v.is_finite() && v > lo_exclusive && v <= hi {
                Ok(())
            } else {
                Err(usage(format!(
                    "invalid value `{v}` for `{flag}`: expected {what}"
                )))
            }
        };
        bounded(
            "--slo-ms",
            a.slo_ms,
            0.0,
            3.6e6,
            "a positive number of milliseconds, at most an hour",
        )?;
        bounded(
            "--capacity-rps",
            a.capacity_rps,
            0.0,
            1e6,
            "a positive rate up to 1e6 requests per second",
        )?;
        if !(a.cost_per_hour.is_finite() && (0.0..=1e9).contains(&a.cost_per_hour)) {
            return Err(usage(format!(
                "invalid value `{}` for `--cost-per-hour`: expected a cost from 0 to 1e9",
                a.cost_per_hour
            )));
        }
        if let Some(p) = a.peak_rps {
            // The peak decides the static sizes (and so the simulator's instance table):
            // bounded by what MAX_INSTANCES serve at 70% utilisation.
            let most = a.capacity_rps * STATIC_TARGET * MAX_INSTANCES as f64;
            bounded(
                "--peak-rps",
                p,
                0.0,
                most,
                &format!(
                    "a positive rate up to {most} (what {MAX_INSTANCES} instances of --capacity-rps {} serve at 70%)",
                    a.capacity_rps
                ),
            )?;
        }
        if a.provision_delay < Duration::from_secs(1) {
            return Err(usage("`--provision-delay` must be at least 1s".into()));
        }
        for (flag, d) in [
            ("--cold-start", a.cold_start),
            ("--slow-start", a.slow_start),
            ("--scale-in-window", a.scale_in_window),
        ] {
            if d > Duration::from_secs(3600) {
                return Err(usage(format!(
                    "invalid value `{}` for `{flag}`: expected at most 1h",
                    humantime::format_duration(d)
                )));
            }
        }
        if !a.season.as_secs().is_multiple_of(60)
            || a.season.subsec_nanos() != 0
            || a.season < Duration::from_secs(60)
            || a.season > Duration::from_secs(14 * 86_400)
        {
            return Err(usage(format!(
                "invalid value `{}` for `--season`: expected whole minutes from 1m to 2w",
                humantime::format_duration(a.season)
            )));
        }
        if !(1..=52).contains(&a.seasons) {
            return Err(usage(format!(
                "invalid value `{}` for `--seasons`: expected 1–52",
                a.seasons
            )));
        }
        if a.interruption_hold > Duration::from_secs(86_400) {
            return Err(usage(format!(
                "invalid value `{}` for `--interruption-hold`: expected at most 1d",
                humantime::format_duration(a.interruption_hold)
            )));
        }
        if let Widen::Fixed(w) = a.widen {
            if w > MAX_WIDEN {
                return Err(usage(format!(
                    "invalid value `{w}` for `--widen`: expected 0–{MAX_WIDEN} minutes or auto"
                )));
            }
        }
        a.tail_share.check().map_err(usage)?;
        if !(0.0..=1.0).contains(&a.quantile) {
            return Err(usage(format!(
                "invalid value for `--quantile`: {} (expected between 0 and 1)",
                a.quantile
            )));
        }
        if a.forecaster == ForecasterSpec::None {
            return Err(usage(
                "invalid value for `--forecaster`: `none` (the predictive policies need one)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Whether any selected policy plans with a forecaster.
    pub(crate) fn forecasting(&self) -> bool {
        self.policies.is_empty()
            || self
                .policies
                .iter()
                .any(|p| matches!(p, Selected::Spec(s) if s.uses_forecaster()))
    }
}
