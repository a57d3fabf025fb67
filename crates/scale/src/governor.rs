//! Limits, cooldowns, scale-in stabilisation, dry-run and the decision log, around any policy.

use std::collections::VecDeque;

use crate::{Observation, Policy};

/// Bounds on what a policy may do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Fewest instances.
    pub min: usize,
    /// Most instances.
    pub max: usize,
    /// Most instances added in one decision (`None`: Kubernetes' max(+100%, +4)).
    pub max_step_up: Option<usize>,
    /// Most instances removed in one decision.
    pub max_step_down: usize,
    /// No scale-up within this many seconds of the previous one.
    pub cooldown_up: f64,
    /// No scale-in within this many seconds of the previous change.
    pub cooldown_down: f64,
    /// Scale-in follows the highest recommendation of this many past seconds (the HPA's
    /// stabilisation window; 300 s by default).
    pub stabilisation: f64,
}

impl Limits {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.min == 0 {
            return Err("min replicas must be at least 1".into());
        }
        if self.max < self.min {
            return Err(format!(
                "max replicas ({}) is below min replicas ({})",
                self.max, self.min
            ));
        }
        if self.max_step_up == Some(0) || self.max_step_down == 0 {
            return Err("the per-step change limits must be at least 1".into());
        }
        for (k, v) in [
            ("cooldown_up", self.cooldown_up),
            ("cooldown_down", self.cooldown_down),
            ("stabilisation", self.stabilisation),
        ] {
            if v.is_nan() || v < 0.0 {
                return Err(format!("{k} must be ≥ 0 seconds, got {v}"));
            }
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            min: 1,
            max: 100,
            max_step_up: None,
            max_step_down: usize::MAX,
            cooldown_up: 0.0,
            cooldown_down: 0.0,
            stabilisation: 300.0,
        }
    }
}

/// One logged decision.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    /// When.
    pub now: f64,
    /// Instances before (ready + starting).
    pub from: usize,
    /// Instances set (equal to `from` in dry-run).
    pub to: usize,
    /// What the policy recommended.
    pub recommended: usize,
    /// Why: the policy's reason and what the governor changed.
    pub reason: String,
    /// Nothing was done: dry-run.
    pub dry_run: bool,
}

/// The outcome of one decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Instances to have (ready + starting).
    pub replicas: usize,
    /// Instances the governor wants: `replicas`, except in dry run, where `replicas` stays
    /// the current count and this is what it would have set (what a scaler outside, such as
    /// KEDA's HPA, is told).
    pub wanted: usize,
    /// The log entry, when something changed or would have changed.
    pub entry: Option<LogEntry>,
}

/// A policy under limits.
pub struct Governor {
    policy: Box<dyn Policy>,
    limits: Limits,
    dry_run: bool,
    recent: VecDeque<(f64, usize)>,
    last_up: Option<f64>,
    last_change: Option<f64>,
    log: Vec<LogEntry>,
    /// A floor set from outside (a firing alert): (instances, why).
    floor: Option<(usize, String)>,
    hold: Option<String>,
}

impl Governor {
    /// Wraps `policy`; with `dry_run` it logs what it would do and never changes the pool.
    pub fn new(policy: Box<dyn Policy>, limits: Limits, dry_run: bool) -> Result<Governor, String> {
        limits.validate()?;
        Ok(Governor {
            policy,
            limits,
            dry_run,
            recent: VecDeque::new(),
            last_up: None,
            last_change: None,
            log: Vec::new(),
            floor: None,
            hold: None,
        })
    }

    /// Holds (or with `None` lets go) scale-in from outside the policy, such as while the load
    /// is interrupted: decisions do not go below the current instances; `why` goes into the
    /// reason of any decision taken meanwhile. Scale-out is not affected.
    pub fn hold_scale_in(&mut self, why: Option<String>) {
        self.hold = why;
    }

    /// Sets (or with `None` lifts) a floor from outside the policy, such as a firing alert:
    /// while it stands, decisions are at least `instances` (capped at `max`), at once, past
    /// the step limit and the cooldown; `why` goes into the decision's reason.
    pub fn set_floor(&mut self, floor: Option<(usize, String)>) {
        self.floor = floor;
    }

    /// The floor from outside, if one stands.
    pub fn floor(&self) -> Option<&(usize, String)> {
        self.floor.as_ref()
    }

    /// The policy's name.
    pub fn name(&self) -> String {
        self.policy.name()
    }

    /// Every decision that changed (or in dry-run would have changed) the pool.
    pub fn log(&self) -> &[LogEntry] {
        &self.log
    }

    /// Decides for this observation.
    pub fn decide(&mut self, obs: &Observation) -> Decision {
        let l = self.limits;
        let current = obs.ready + obs.starting;
        let rec = self.policy.recommend(obs);
        let mut notes: Vec<String> = Vec::new();
        let mut want = rec.replicas;
        if want > l.max {
            notes.push(format!("capped at max {}", l.max));
            want = l.max;
        }
        if want < l.min {
            notes.push(format!("raised to min {}", l.min));
            want = l.min;
        }
        // Stabilisation: scale in only to the highest recommendation of the window.
        self.recent.push_back((obs.now, want));
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| *t < obs.now - l.stabilisation)
        {
            self.recent.pop_front();
        }
        if want < current {
            let highest = self.recent.iter().map(|(_, r)| *r).max().unwrap_or(want);
            if highest > want {
                notes.push(format!(
                    "scale-in held to {} (highest in the last {:.0} s)",
                    highest.min(current),
                    l.stabilisation
                ));
                want = highest.min(current);
            }
        }
        if want > current {
            let step = l.max_step_up.unwrap_or_else(|| current.max(4));
            if want - current > step {
                notes.push(format!("step limited to +{step}"));
                want = current + step;
            }
            if let Some(t) = self.last_up {
                if obs.now - t < l.cooldown_up {
                    notes.push(format!("in scale-up cooldown ({:.0} s)", l.cooldown_up));
                    want = current;
                }
            }
        } else if want < current {
            if current - want > l.max_step_down {
                notes.push(format!("step limited to -{}", l.max_step_down));
                want = current - l.max_step_down;
            }
            if let Some(t) = self.last_change {
                if obs.now - t < l.cooldown_down {
                    notes.push(format!("in scale-in cooldown ({:.0} s)", l.cooldown_down));
                    want = current;
                }
            }
        }
        if let (Some(why), true) = (&self.hold, want < current) {
            notes.push(format!("scale-in held: {why}"));
            want = current;
        }
        if let Some((floor, why)) = &self.floor {
            let floor = (*floor).min(l.max);
            if want < floor {
                notes.push(format!("raised to {floor} by {why}"));
                want = floor;
            }
        }
        if want == current {
            return Decision {
                replicas: current,
                wanted: current,
                entry: None,
            };
        }
        let mut reason = rec.reason;
        if !notes.is_empty() {
            reason = format!("{reason}; {}", notes.join("; "));
        }
        let entry = LogEntry {
            now: obs.now,
            from: current,
            to: if self.dry_run { current } else { want },
            recommended: rec.replicas,
            reason,
            dry_run: self.dry_run,
        };
        self.log.push(entry.clone());
        if self.dry_run {
            return Decision {
                replicas: current,
                wanted: want,
                entry: Some(entry),
            };
        }
        if want > current {
            self.last_up = Some(obs.now);
        }
        self.last_change = Some(obs.now);
        Decision {
            replicas: want,
            wanted: want,
            entry: Some(entry),
        }
    }
}
