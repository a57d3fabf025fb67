//! Typed names of policies and forecasters, parsed in one place (`FromStr`) for the
//! experiment's flags and the live loop's configuration alike, and the policies built from
//! them.

use std::fmt;
use std::str::FromStr;

use foresight_scale::{
    CostOptimal, FastFloor, Hpa, HpaConfig, Hybrid, InstanceModel, Policy, Predictive,
    PredictiveConfig, Reactive, Static,
};

/// Which scaling policy runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicySpec {
    /// A fixed count.
    Static,
    /// Kubernetes' HPA rule on utilisation.
    Hpa,
    /// The paper's thresholds on the forecast.
    Predictive,
    /// Smallest count meeting the response-time goal (M/M/c) on the forecast.
    CostOptimal,
    /// max(predictive, a fast reactive floor); the HPA rule until a forecast exists.
    Hybrid,
    /// The hybrid's fast floor alone (no forecast), scaling in by the HPA rule at its target.
    Reactive,
    /// Predictive on the true future (simulator only): the limit of any forecaster.
    Oracle,
}

/// The forecast-driven policies' scale-in stabilisation window, seconds.
pub const FORECAST_SCALE_IN_WINDOW: f64 = 60.0;

/// The fast reactive floor's default target utilisation (of `hybrid` and `reactive`).
pub const FLOOR_TARGET: f64 = 0.9;

impl PolicySpec {
    /// Every policy, in table order.
    pub const ALL: [PolicySpec; 7] = [
        PolicySpec::Static,
        PolicySpec::Hpa,
        PolicySpec::Reactive,
        PolicySpec::Predictive,
        PolicySpec::Hybrid,
        PolicySpec::CostOptimal,
        PolicySpec::Oracle,
    ];

    /// The name in configuration and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicySpec::Static => "static",
            PolicySpec::Hpa => "hpa",
            PolicySpec::Predictive => "predictive",
            PolicySpec::CostOptimal => "cost-optimal",
            PolicySpec::Hybrid => "hybrid",
            PolicySpec::Reactive => "reactive",
            PolicySpec::Oracle => "oracle",
        }
    }

    /// Its default scale-in stabilisation window, seconds. The HPA (and a static count and the
    /// reactive floor, which see no further ahead) keep Kubernetes' 300 s. The forecast-driven
    /// policies already hold what the forecast needs until the end of their planned window
    /// (see `foresight_scale::Predictive`), so theirs only damps a forecast that dips for a
    /// moment: 60 s, chosen on validation data
    /// (docs/results.md, "How the defaults were chosen").
    pub fn default_scale_in_window(self) -> f64 {
        match self {
            PolicySpec::Static | PolicySpec::Hpa | PolicySpec::Reactive => 300.0,
            _ => FORECAST_SCALE_IN_WINDOW,
        }
    }

    /// Whether it reads a forecaster's output (the oracle reads the true future instead).
    pub fn uses_forecaster(self) -> bool {
        matches!(
            self,
            PolicySpec::Predictive | PolicySpec::CostOptimal | PolicySpec::Hybrid
        )
    }

    /// Whether it reacts to the instances' utilisation and queues (the HPA rule, the floor), which
    /// only a loop that proxies the traffic itself can see.
    pub fn reads_utilisation(self) -> bool {
        matches!(
            self,
            PolicySpec::Hpa | PolicySpec::Hybrid | PolicySpec::Reactive
        )
    }

    /// The name in tables: `predictive-lstm`, `hpa`, ...
    pub fn display_name(self, forecaster: &str) -> String {
        if self.uses_forecaster() {
            format!("{}-{forecaster}", self.as_str())
        } else {
            self.as_str().to_string()
        }
    }

    /// The policy with these settings; `forecaster` names it (`hybrid-lstm`).
    pub fn build(self, p: &PolicyParams, forecaster: &str) -> Box<dyn Policy> {
        let name = self.display_name(forecaster);
        match self {
            PolicySpec::Static => Box::new(Static {
                replicas: p.static_replicas,
            }),
            PolicySpec::Hpa => Box::new(Hpa::new(p.hpa)),
            PolicySpec::Reactive => Box::new(Reactive::new(p.floor, p.model)),
            PolicySpec::Predictive | PolicySpec::Oracle => {
                Box::new(Predictive::new(&name, p.predictive, p.model))
            }
            PolicySpec::CostOptimal => Box::new(CostOptimal::new(
                &name,
                p.model,
                p.slo,
                p.goal,
                p.predictive.lead,
                p.predictive.margin,
            )),
            PolicySpec::Hybrid => Box::new(Hybrid::new(
                &name,
                Box::new(Predictive::new(
                    &PolicySpec::Predictive.display_name(forecaster),
                    p.predictive,
                    p.model,
                )),
                FastFloor::new(p.floor, p.model),
                p.hpa,
            )),
        }
    }
}

impl fmt::Display for PolicySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown name, with what would be valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownName {
    /// What was given.
    pub given: String,
    /// The valid names, comma-separated.
    pub expected: String,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown name `{}` (expected one of {})",
            self.given, self.expected
        )
    }
}

impl std::error::Error for UnknownName {}

impl FromStr for PolicySpec {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PolicySpec::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownName {
                given: s.to_string(),
                expected: PolicySpec::ALL.map(PolicySpec::as_str).join(", "),
            })
    }
}

/// Everything a policy may be built with; each policy reads its own part.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PolicyParams {
    /// Capacity of one instance.
    pub model: InstanceModel,
    /// The predictive policies' sizing target, thresholds, lead and margin.
    pub predictive: PredictiveConfig,
    /// The HPA's rule (also the hybrid's until its forecaster has a forecast).
    pub hpa: HpaConfig,
    /// The hybrid's fast reactive floor (utilisation and observed demand at this target).
    pub floor: HpaConfig,
    /// Instances of `static`.
    pub static_replicas: usize,
    /// Response-time bound of `cost-optimal`, seconds.
    pub slo: f64,
    /// Share of requests that must meet it.
    pub goal: f64,
}

impl PolicyParams {
    /// The defaults for instances of this model.
    pub fn new(model: InstanceModel) -> PolicyParams {
        PolicyParams {
            model,
            predictive: PredictiveConfig::default(),
            hpa: HpaConfig::default(),
            floor: HpaConfig {
                target: FLOOR_TARGET,
                ..HpaConfig::default()
            },
            static_replicas: 1,
            slo: 1.0,
            goal: 0.99,
        }
    }
}

/// Which forecaster feeds the predictive policies, with its own settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ForecasterSpec {
    /// The paper's LSTM (from a model file, or trained on history).
    Lstm,
    /// Additive Holt-Winters, fitted on history.
    HoltWinters,
    /// Mean of the last `window` steps.
    MovingAverage {
        /// Steps averaged.
        window: usize,
    },
    /// The last step repeated.
    Persistence,
    /// The value one season (this many steps) earlier: sees a daily surge coming.
    SeasonalNaive {
        /// Steps per season.
        season: usize,
    },
    /// For each slot of the season, a high quantile of the last `seasons` values in that slot
    /// (Crane's percentile predictor at the data's own resolution): sees recurring bursts.
    SeasonalQuantile {
        /// Steps per season.
        season: usize,
        /// Seasons remembered per slot.
        seasons: usize,
        /// The quantile (0–1).
        quantile: f64,
    },
    /// The candidates fitted on the training part and the one that plans best on the
    /// validation part chosen (see `foresight_autoscale::Fitted::fit`).
    Auto,
    /// No forecaster (reactive policies only).
    None,
}

impl ForecasterSpec {
    /// The names, as parsed.
    pub const NAMES: [&'static str; 8] = [
        "auto",
        "lstm",
        "holt-winters",
        "moving-average",
        "persistence",
        "seasonal-naive",
        "seasonal-quantile",
        "none",
    ];

    /// The name in configuration and tables.
    pub fn as_str(&self) -> &'static str {
        match self {
            ForecasterSpec::Lstm => "lstm",
            ForecasterSpec::HoltWinters => "holt-winters",
            ForecasterSpec::MovingAverage { .. } => "moving-average",
            ForecasterSpec::Persistence => "persistence",
            ForecasterSpec::SeasonalNaive { .. } => "seasonal-naive",
            ForecasterSpec::SeasonalQuantile { .. } => "seasonal-quantile",
            ForecasterSpec::Auto => "auto",
            ForecasterSpec::None => "none",
        }
    }

    /// The steps it forecasts when `horizon` are wanted: seasonal naive repeats at most one
    /// season.
    pub fn horizon_within(&self, horizon: usize) -> usize {
        match *self {
            ForecasterSpec::SeasonalNaive { season } => horizon.min(season),
            _ => horizon,
        }
    }

    /// The seasonal forecasters with another season (steps) and, for the seasonal quantile,
    /// another number of seasons remembered; the others as they are.
    pub fn with_season(self, season: Option<usize>, seasons: Option<usize>) -> ForecasterSpec {
        match self {
            ForecasterSpec::SeasonalNaive { season: s } => ForecasterSpec::SeasonalNaive {
                season: season.unwrap_or(s),
            },
            ForecasterSpec::SeasonalQuantile {
                season: s,
                seasons: n,
                quantile,
            } => ForecasterSpec::SeasonalQuantile {
                season: season.unwrap_or(s),
                seasons: seasons.unwrap_or(n),
                quantile,
            },
            other => other,
        }
    }

    /// The forecasters that need no training: built here for steps of `step` seconds.
    /// `None` for the LSTM and Holt-Winters (fitted on data by the caller) and for `none`.
    pub fn build_simple(
        &self,
        step: i64,
    ) -> Option<Box<dyn foresight_forecast::Forecaster + Send>> {
        use foresight_forecast::{MovingAverage, Persistence, SeasonalNaive, SeasonalQuantile};
        Some(match *self {
            ForecasterSpec::MovingAverage { window } => Box::new(MovingAverage::new(step, window)),
            ForecasterSpec::Persistence => Box::new(Persistence::new()),
            ForecasterSpec::SeasonalNaive { season } => {
                Box::new(SeasonalNaive::new("seasonal-naive", step, season))
            }
            ForecasterSpec::SeasonalQuantile {
                season,
                seasons,
                quantile,
            } => Box::new(SeasonalQuantile::new(step, season, seasons, quantile)),
            ForecasterSpec::Lstm
            | ForecasterSpec::HoltWinters
            | ForecasterSpec::Auto
            | ForecasterSpec::None => return None,
        })
    }
}

impl fmt::Display for ForecasterSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Steps in a day of one-minute steps: the default season.
pub const DAY_OF_MINUTES: usize = 1440;

impl FromStr for ForecasterSpec {
    type Err = UnknownName;
    /// A name, with each forecaster's default settings (a day of minutes for seasons, the
    /// 0.95 quantile over the last 7 days, a 5-step moving average).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" => ForecasterSpec::Auto,
            "lstm" => ForecasterSpec::Lstm,
            "holt-winters" => ForecasterSpec::HoltWinters,
            "moving-average" => ForecasterSpec::MovingAverage { window: 5 },
            "persistence" => ForecasterSpec::Persistence,
            "seasonal-naive" => ForecasterSpec::SeasonalNaive {
                season: DAY_OF_MINUTES,
            },
            "seasonal-quantile" => ForecasterSpec::SeasonalQuantile {
                season: DAY_OF_MINUTES,
                seasons: 7,
                quantile: 0.95,
            },
            "none" => ForecasterSpec::None,
            other => {
                return Err(UnknownName {
                    given: other.to_string(),
                    expected: ForecasterSpec::NAMES.join(", "),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in PolicySpec::ALL {
            assert_eq!(p.to_string().parse::<PolicySpec>(), Ok(p));
        }
        for n in ForecasterSpec::NAMES {
            assert_eq!(n.parse::<ForecasterSpec>().unwrap().to_string(), n);
        }
    }

    #[test]
    fn seasons_are_settings_of_the_seasonal_forecasters_only() {
        let q: ForecasterSpec = "seasonal-quantile".parse().unwrap();
        assert_eq!(
            q.with_season(Some(60), Some(24)),
            ForecasterSpec::SeasonalQuantile {
                season: 60,
                seasons: 24,
                quantile: 0.95
            }
        );
        let n: ForecasterSpec = "seasonal-naive".parse().unwrap();
        assert_eq!(
            n.with_season(Some(10_080), Some(3)),
            ForecasterSpec::SeasonalNaive { season: 10_080 }
        );
        assert_eq!(
            ForecasterSpec::Lstm.with_season(Some(60), None),
            ForecasterSpec::Lstm
        );
        assert_eq!(q.with_season(None, None), q, "unset: as parsed");
    }

    #[test]
    fn unknown_names_say_what_is_valid() {
        let e = "magic".parse::<PolicySpec>().unwrap_err().to_string();
        assert!(
            e.contains("`magic`") && e.contains("hybrid, cost-optimal, oracle"),
            "{e}"
        );
        let e = "prophet".parse::<ForecasterSpec>().unwrap_err().to_string();
        assert!(e.contains("seasonal-quantile"), "{e}");
    }

    #[test]
    fn built_policies_carry_the_forecaster_in_their_name() {
        let p = PolicyParams::new(InstanceModel {
            workers: 4,
            mean_service: 0.2,
        });
        assert_eq!(PolicySpec::Hybrid.build(&p, "lstm").name(), "hybrid-lstm");
        assert_eq!(PolicySpec::Hpa.build(&p, "lstm").name(), "hpa");
        assert_eq!(PolicySpec::Reactive.build(&p, "lstm").name(), "reactive");
        assert_eq!(PolicySpec::Oracle.build(&p, "lstm").name(), "oracle");
    }
}
