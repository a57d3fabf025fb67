//! `--tail-share auto`: the tail band's share chosen on the validation part, by running the
//! hybrid at its defaults over it with each candidate share in the simulator. A workload whose
//! forecast already serves the goal keeps the band off; one whose load lands in minutes no
//! forecast places gets the smallest share that reached the goal there.

use super::*;

/// The shares tried, smallest first (0: off).
pub(super) const CANDIDATES: [f64; 3] = [0.0, 0.002, 0.005];

/// The share the tail band plans with: a fixed one, or `auto`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TailShare {
    Fixed(f64),
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
    pub share: f64,
    pub slo_attainment: f64,
    pub instance_hours: f64,
}

/// The choice and what it rested on.
#[derive(Clone, Debug, Serialize)]
pub struct TailChoice {
    pub chosen: f64,
    pub trials: Vec<Trial>,
}

/// The smallest share whose run reached `goal` (trials in increasing share); if none did, the
/// one that came closest (the smaller on a tie). `None` without trials.
pub fn pick(trials: &[Trial], goal: f64) -> Option<f64> {
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
        .map(|t| t.share)
}

/// The choice on `trace`'s validation part: its longest gap-free stretch (at most
/// `--minutes`), warmed and sized as the replayed part is (`setup`), shown on stderr.
pub(super) fn on_validation(
    a: &ExperimentArgs,
    trace: &Path,
    ds: &Dataset,
    setup: &Setup,
    fitted: &Fitted,
    fname: &str,
    quiet: bool,
) -> Result<TailChoice, Failure> {
    let split = ds.report.split;
    let (vstart, mut vcounts, voffset) =
        super::parts::stretch(&ds.series, split.train_end, split.val_end)
            .filter(|(_, v, _)| v.len() >= 60)
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "{}: `--tail-share auto` needs a gap-free hour in the validation part",
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
        warm: super::parts::history_before(&ds.series, voffset),
        ..setup.clone()
    };
    let shown = |m: &str| {
        if !quiet {
            eprintln!("{m}")
        }
    };
    let c = choose(a, &val, fitted, fname, &shown)?;
    eprintln!(
        "tail share: {} on the validation part ({})",
        c.chosen,
        c.trials
            .iter()
            .map(|t| format!("{} → {:.2}%", t.share, 100.0 * t.slo_attainment))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(c)
}

/// Runs the hybrid at its defaults over `val` with each candidate in turn, stopping at the
/// first that reaches the goal.
pub(super) fn choose(
    a: &ExperimentArgs,
    val: &Setup,
    fitted: &Fitted,
    fname: &str,
    report: &dyn Fn(&str),
) -> Result<TailChoice, Failure> {
    let job = Job {
        name: format!("hybrid-{fname}"),
        kind: PolicySpec::Hybrid,
        knob: PredictiveConfig::default().target,
        quantile: None,
        default: true,
    };
    let mut trials = Vec::new();
    for share in CANDIDATES {
        report(&format!(
            "tail share: validating {share} ({} minutes)",
            val.counts.len()
        ));
        let setup = Setup {
            tail_share: share,
            ..val.clone()
        };
        let r = run_job(&job, a, &setup, fitted, &ProgressBar::hidden()).map_err(Failure::Other)?;
        trials.push(Trial {
            share,
            slo_attainment: r.slo_attainment,
            instance_hours: r.instance_hours,
        });
        if r.slo_attainment >= a.slo_goal {
            break;
        }
    }
    let chosen = pick(&trials, a.slo_goal).unwrap_or(0.0);
    Ok(TailChoice { chosen, trials })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(share: f64, slo_attainment: f64) -> Trial {
        Trial {
            share,
            slo_attainment,
            instance_hours: 1.0,
        }
    }

    #[test]
    fn the_smallest_share_that_reaches_the_goal_is_chosen() {
        let trials = [t(0.0, 0.985), t(0.002, 0.991), t(0.005, 0.995)];
        assert_eq!(pick(&trials, 0.99), Some(0.002));
        assert_eq!(pick(&trials[..1], 0.98), Some(0.0));
    }

    #[test]
    fn without_one_that_reaches_it_the_closest_is_chosen() {
        let trials = [t(0.0, 0.95), t(0.002, 0.97), t(0.005, 0.97)];
        assert_eq!(pick(&trials, 0.99), Some(0.002));
        assert_eq!(pick(&[], 0.99), None);
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
