//! `--tail-share auto` and `--widen auto`: the tail band's share, and whether the plan is
//! widened for load that comes early or late, chosen on the validation part by running the
//! hybrid at its defaults over it with each candidate in the simulator. A workload whose
//! forecast already serves the goal keeps both off; one whose load lands in minutes no
//! forecast places gets the smallest share (for each share, unwidened before widened) that
//! reached the goal there.

use std::path::Path;

use foresight_autoscale::{Fitted, PolicySpec};
use foresight_forecast::pipeline::Dataset;
use foresight_scale::PredictiveConfig;
use serde::Serialize;

use crate::jobs::Job;
use crate::options::Options;
use crate::parts::{history_before, stretch};
use crate::prepare::Observer;
use crate::run::{run_job, Setup};
use crate::Error;

/// The shares tried, smallest first (0: off).
pub const CANDIDATES: [f64; 3] = [0.0, 0.002, 0.005];

/// Minutes `--widen auto` tries besides 0.
pub const WIDEN_TRIED: usize = foresight_autoscale::MAX_WIDEN;

/// How far the plan is widened: fixed minutes, or `auto`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Widen {
    /// This many minutes each side (0: off).
    Fixed(usize),
    /// 0 or [`WIDEN_TRIED`], chosen on the validation part.
    Auto,
}

impl std::str::FromStr for Widen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(Widen::Auto);
        }
        // The range is checked with the other flags.
        s.parse::<usize>().map(Widen::Fixed).map_err(|_| {
            format!("`{s}` is not a number of minutes: expected 0–5 (0: off) or `auto`")
        })
    }
}

/// The share the tail band plans with: a fixed one, or `auto`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TailShare {
    /// This share (0: off).
    Fixed(f64),
    /// One of [`CANDIDATES`], chosen on the validation part.
    Auto,
}

impl std::str::FromStr for TailShare {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(TailShare::Auto);
        }
        // The range is checked with the other flags (`TailShare::check`).
        s.parse::<f64>().map(TailShare::Fixed).map_err(|_| {
            format!("`{s}` is not a share: expected a number from 0 to 1 (0: off) or `auto`")
        })
    }
}

impl TailShare {
    /// Whether a fixed share is within 0..=1.
    pub fn check(self) -> Result<(), String> {
        match self {
            TailShare::Fixed(v) if !(0.0..=1.0).contains(&v) => Err(format!(
                "invalid value for `--tail-share`: {v} (expected between 0 and 1; 0: off; or auto)"
            )),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for TailShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TailShare::Fixed(v) => write!(f, "{v}"),
            TailShare::Auto => f.write_str("auto"),
        }
    }
}

/// One candidate's run on the validation part.
#[derive(Clone, Debug, Serialize)]
pub struct Trial {
    /// The tail band's share.
    pub share: f64,
    /// Minutes the plan was widened by.
    pub widen: usize,
    /// The hybrid's SLO attainment over the validation part.
    pub slo_attainment: f64,
    /// Its instance-hours.
    pub instance_hours: f64,
}

/// The choice and what it rested on.
#[derive(Clone, Debug, Serialize)]
pub struct TailChoice {
    /// The tail band's share.
    pub chosen: f64,
    /// The widening, in minutes.
    pub widen: usize,
    /// The runs it rested on, in the order tried.
    pub trials: Vec<Trial>,
}

/// The first trial (in the order tried: the cheaper first) whose run reached `goal`; if none
/// did, the one that came closest (the earlier on a tie). `None` without trials.
pub fn pick(trials: &[Trial], goal: f64) -> Option<&Trial> {
    trials
        .iter()
        .find(|t| t.slo_attainment >= goal)
        .or_else(|| {
            trials.iter().reduce(|best, t| {
                if t.slo_attainment > best.slo_attainment {
                    t
                } else {
                    best
                }
            })
        })
}

/// The (share, widening) pairs to try, the cheaper first: each share (every candidate with
/// `--tail-share auto`), unwidened before widened (with `--widen auto`).
pub(crate) fn candidates(share: TailShare, widen: Widen) -> Vec<(f64, usize)> {
    let shares = match share {
        TailShare::Fixed(v) => vec![v],
        TailShare::Auto => CANDIDATES.to_vec(),
    };
    let widens = match widen {
        Widen::Fixed(w) => vec![w],
        Widen::Auto => vec![0, WIDEN_TRIED],
    };
    shares
        .into_iter()
        .flat_map(|s| widens.iter().map(move |w| (s, *w)))
        .collect()
}

/// The choice on `trace`'s validation part: its longest gap-free stretch (at most
/// `--minutes`), warmed and sized as the replayed part is (`setup`), shown on stderr.
pub(crate) fn on_validation(
    a: &Options,
    trace: &Path,
    ds: &Dataset,
    setup: &Setup,
    fitted: &Fitted,
    fname: &str,
    observer: &dyn Observer,
) -> Result<TailChoice, Error> {
    let split = ds.report.split;
    let (vstart, mut vcounts, voffset) =
        stretch(&ds.series, split.train_end, split.val_end)
            .filter(|(_, v, _)| v.len() >= 60)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{}: `--tail-share auto` and `--widen auto` need a gap-free hour in the validation part",
                    trace.display()
                ))
            })?;
    if let Some(m) = a.minutes {
        vcounts.truncate(m.max(60));
    }
    let val = Setup {
        peak_rps: vcounts.iter().copied().fold(0.0, f64::max) * setup.rps_per_count,
        start_time: vstart,
        counts: vcounts,
        warm: history_before(&ds.series, voffset),
        ..setup.clone()
    };
    let c = choose(a, &val, fitted, fname, &|m| observer.detail(m))?;
    // The widening is named only when it was chosen too (`--widen auto`).
    let auto_widen = a.widen == Widen::Auto;
    let candidate = |share: f64, widen: usize| match auto_widen {
        true => format!("{share} widen {widen}"),
        false => format!("{share}"),
    };
    observer.say(&format!(
        "tail share: {} on the validation part ({})",
        candidate(c.chosen, c.widen),
        c.trials
            .iter()
            .map(|t| format!(
                "{} → {:.2}%",
                candidate(t.share, t.widen),
                100.0 * t.slo_attainment
            ))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(c)
}

/// Runs the hybrid at its defaults over `val` with each candidate in turn, stopping at the
/// first that reaches the goal.
pub(crate) fn choose(
    a: &Options,
    val: &Setup,
    fitted: &Fitted,
    fname: &str,
    report: &dyn Fn(&str),
) -> Result<TailChoice, Error> {
    let job = Job {
        name: format!("hybrid-{fname}"),
        kind: PolicySpec::Hybrid,
        knob: PredictiveConfig::default().target,
        quantile: None,
        default: true,
    };
    let mut trials = Vec::new();
    for (share, widen) in candidates(a.tail_share, a.widen) {
        report(&format!(
            "tail share: validating {share}, widen {widen} ({} minutes)",
            val.counts.len()
        ));
        let setup = Setup {
            tail_share: share,
            widen,
            ..val.clone()
        };
        let r = run_job(&job, a, &setup, fitted, &mut |_| {}).map_err(Error::Run)?;
        trials.push(Trial {
            share,
            widen,
            slo_attainment: r.slo_attainment,
            instance_hours: r.instance_hours,
        });
        if r.slo_attainment >= a.slo_goal {
            break;
        }
    }
    let (chosen, widen) = pick(&trials, a.slo_goal).map_or((0.0, 0), |t| (t.share, t.widen));
    Ok(TailChoice {
        chosen,
        widen,
        trials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(share: f64, slo_attainment: f64) -> Trial {
        Trial {
            share,
            widen: 0,
            slo_attainment,
            instance_hours: 1.0,
        }
    }

    fn share(t: Option<&Trial>) -> Option<f64> {
        t.map(|t| t.share)
    }

    #[test]
    fn the_smallest_share_that_reaches_the_goal_is_chosen() {
        let trials = [t(0.0, 0.985), t(0.002, 0.991), t(0.005, 0.995)];
        assert_eq!(share(pick(&trials, 0.99)), Some(0.002));
        assert_eq!(share(pick(&trials[..1], 0.98)), Some(0.0));
    }

    #[test]
    fn without_one_that_reaches_it_the_closest_is_chosen() {
        let trials = [t(0.0, 0.95), t(0.002, 0.97), t(0.005, 0.97)];
        assert_eq!(share(pick(&trials, 0.99)), Some(0.002));
        assert!(pick(&[], 0.99).is_none());
    }

    #[test]
    fn widening_is_tried_before_a_larger_share() {
        use TailShare::{Auto as ShareAuto, Fixed as Share};
        assert_eq!(
            candidates(ShareAuto, Widen::Auto),
            vec![
                (0.0, 0),
                (0.0, WIDEN_TRIED),
                (0.002, 0),
                (0.002, WIDEN_TRIED),
                (0.005, 0),
                (0.005, WIDEN_TRIED)
            ]
        );
        assert_eq!(candidates(ShareAuto, Widen::Fixed(2)).len(), 3);
        assert_eq!(
            candidates(Share(0.0), Widen::Auto),
            vec![(0.0, 0), (0.0, WIDEN_TRIED)]
        );
        // The widened run that reaches the goal wins over the larger share after it.
        let mut widened = t(0.0, 0.992);
        widened.widen = WIDEN_TRIED;
        let trials = [t(0.0, 0.985), widened, t(0.002, 0.995)];
        let p = pick(&trials, 0.99).unwrap();
        assert_eq!((p.share, p.widen), (0.0, WIDEN_TRIED));
    }

    #[test]
    fn widen_parses_minutes_or_auto() {
        assert_eq!("auto".parse::<Widen>(), Ok(Widen::Auto));
        assert_eq!("5".parse::<Widen>(), Ok(Widen::Fixed(5)));
        let e = "wide".parse::<Widen>().unwrap_err();
        assert!(e.contains("`wide`") && e.contains("auto"), "{e}");
    }

    #[test]
    fn auto_and_numbers_parse_and_out_of_range_names_the_problem() {
        assert_eq!("auto".parse::<TailShare>(), Ok(TailShare::Auto));
        assert_eq!("0.002".parse::<TailShare>(), Ok(TailShare::Fixed(0.002)));
        let e = "lots".parse::<TailShare>().unwrap_err();
        assert!(e.contains("`lots`") && e.contains("auto"), "{e}");
        for bad in ["1.5", "-0.1", "NaN"] {
            let e = bad.parse::<TailShare>().unwrap().check().unwrap_err();
            assert!(e.contains("`--tail-share`"), "{e}");
        }
        assert!(TailShare::Auto.check().is_ok());
    }
}
