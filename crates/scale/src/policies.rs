//! The policies.

use crate::{peak_between, InstanceModel, Observation, Policy, Recommendation};

/// A fixed count.
pub struct Static {
    /// Instances.
    pub replicas: usize,
}

impl Policy for Static {
    fn name(&self) -> String {
        "static".into()
    }
    fn recommend(&mut self, _obs: &Observation) -> Recommendation {
        Recommendation {
            replicas: self.replicas,
            reason: format!("static: {} instances", self.replicas),
        }
    }
}

/// Kubernetes HPA settings (its defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HpaConfig {
    /// Target mean utilisation (0–1).
    pub target: f64,
    /// No action while |metric / target − 1| is within this (0.1).
    pub tolerance: f64,
}

impl Default for HpaConfig {
    fn default() -> Self {
        HpaConfig {
            target: 0.6,
            tolerance: 0.1,
        }
    }
}

/// The Kubernetes Horizontal Pod Autoscaler's rule (autoscaling/v2, as documented at
/// kubernetes.io "Horizontal Pod Autoscaling", algorithm details):
/// `desired = ceil(ready × utilisation / target)`; nothing within the tolerance; pods that are
/// not ready yet are set aside, and on a scale-up the ratio is recomputed with them counted at
/// 0% utilisation — if that reverses the direction or falls within the tolerance, no change.
/// The 15 s period, the 300 s scale-in stabilisation (highest recommendation in the window) and
/// the max(+100%, +4 pods) scale-up limit are the [`crate::Governor`]'s defaults.
pub struct Hpa {
    cfg: HpaConfig,
    name: String,
}

impl Hpa {
    /// An HPA with this target.
    pub fn new(cfg: HpaConfig) -> Hpa {
        Hpa {
            cfg,
            name: "hpa".into(),
        }
    }

    /// The same rule under another name (hybrid's floor).
    pub fn named(cfg: HpaConfig, name: &str) -> Hpa {
        Hpa {
            cfg,
            name: name.into(),
        }
    }
}

impl Policy for Hpa {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn recommend(&mut self, obs: &Observation) -> Recommendation {
        let current = obs.ready + obs.starting;
        let t = self.cfg.target;
        let ratio = obs.utilisation / t;
        let hold = |why: String| Recommendation {
            replicas: current,
            reason: why,
        };
        if obs.ready == 0 {
            return hold("hpa: no ready instance reports a metric".into());
        }
        if (ratio - 1.0).abs() <= self.cfg.tolerance {
            return hold(format!(
                "hpa: utilisation {:.0}% within {:.0}% of target {:.0}%",
                100.0 * obs.utilisation,
                100.0 * self.cfg.tolerance,
                100.0 * t
            ));
        }
        if ratio > 1.0 && obs.starting > 0 {
            // Not-ready pods at 0%: recompute over all pods.
            let all = obs.ready + obs.starting;
            let r2 = obs.utilisation * obs.ready as f64 / all as f64 / t;
            if r2 <= 1.0 + self.cfg.tolerance {
                return hold(format!(
                    "hpa: utilisation {:.0}% over target, but with {} starting instances at 0% the ratio is {:.2}: wait",
                    100.0 * obs.utilisation,
                    obs.starting,
                    r2
                ));
            }
            let desired = (all as f64 * r2).ceil() as usize;
            return Recommendation {
                replicas: desired,
                reason: format!(
                    "hpa: ceil({all} × {:.2}) = {desired} (utilisation {:.0}% on {} ready, {} starting counted at 0%, target {:.0}%)",
                    r2,
                    100.0 * obs.utilisation,
                    obs.ready,
                    obs.starting,
                    100.0 * t
                ),
            };
        }
        let desired = ((obs.ready as f64 * ratio).ceil() as usize).max(1);
        Recommendation {
            replicas: desired,
            reason: format!(
                "hpa: ceil({} × {:.0}% / {:.0}%) = {desired}",
                obs.ready,
                100.0 * obs.utilisation,
                100.0 * t
            ),
        }
    }
}

/// The paper's threshold policy settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PredictiveConfig {
    /// Scale up when the predicted utilisation of the current pool exceeds this.
    pub theta_up: f64,
    /// Scale down when it falls below this.
    pub theta_down: f64,
    /// Size to this utilisation: R_t = ceil(L_t / (capacity × target)) (the headroom knob).
    pub target: f64,
    /// Plan for the load this many seconds ahead (the provisioning delay).
    pub lead: f64,
    /// ... and up to this many seconds beyond it (a margin).
    pub margin: f64,
}

impl Default for PredictiveConfig {
    fn default() -> Self {
        PredictiveConfig {
            theta_up: 0.8,
            theta_down: 0.5,
            target: 0.7,
            lead: 180.0,
            margin: 120.0,
        }
    }
}

/// The paper's predictive policy: with L_t the highest predicted rate in
/// `[now + lead, now + lead + margin]`, scale up when L_t exceeds θ_up of the pool's capacity,
/// to R_t = ceil(L_t / (capacity per instance × target)). Scale-in looks at the whole window
/// an instance removed now would be missing — `[now, now + lead + margin]`, as it takes
/// `lead` to come back — and goes down when the highest rate there is below θ_down, to the
/// count that rate needs. (The paper's rule uses L_t for both; an instance it removes may be
/// missed before `now + lead`, which only a scale-in stabilisation window covered.)
/// Named `oracle` when fed the true future.
pub struct Predictive {
    cfg: PredictiveConfig,
    model: InstanceModel,
    name: String,
}

impl Predictive {
    /// A predictive policy called `name` (`predictive-lstm`, `oracle`, ...).
    pub fn new(name: &str, cfg: PredictiveConfig, model: InstanceModel) -> Predictive {
        Predictive {
            cfg,
            model,
            name: name.into(),
        }
    }

    fn planned_load(&self, obs: &Observation) -> Option<f64> {
        peak_between(
            obs.forecast.as_deref()?,
            self.cfg.lead,
            self.cfg.lead + self.cfg.margin,
        )
    }

    /// The highest predicted rate from now to the end of the planned window: what scale-in
    /// must still serve.
    fn held_load(&self, obs: &Observation) -> Option<f64> {
        peak_between(
            obs.forecast.as_deref()?,
            0.0,
            self.cfg.lead + self.cfg.margin,
        )
    }
}

impl Policy for Predictive {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn recommend(&mut self, obs: &Observation) -> Recommendation {
        let current = obs.ready + obs.starting;
        let Some(load) = self.planned_load(obs) else {
            return Recommendation {
                replicas: current,
                reason: format!("{}: no forecast yet", self.name),
            };
        };
        let cap = self.model.capacity();
        let held = self.held_load(obs).unwrap_or(load).max(load);
        let predicted_util = load / (current.max(1) as f64 * cap);
        let held_util = held / (current.max(1) as f64 * cap);
        let size = |l: f64| crate::instances_for(l, cap, self.cfg.target);
        let (r, r_held) = (size(load), size(held));
        let c = &self.cfg;
        let (replicas, verdict) = if predicted_util > c.theta_up && r > current {
            (r, format!("above θ_up {:.0}%", 100.0 * c.theta_up))
        } else if held_util < c.theta_down && r_held < current {
            (
                r_held,
                format!(
                    "below θ_down {:.0}% until {:.0} s ({held:.1} req/s at most): {r_held}",
                    100.0 * c.theta_down,
                    c.lead + c.margin
                ),
            )
        } else {
            (current, "between thresholds: hold".to_string())
        };
        Recommendation {
            replicas,
            reason: format!(
                "{}: predicted {:.1} req/s in {:.0}–{:.0} s = {:.0}% of {} instances, {verdict}; R = ceil({:.1} / ({:.1} × {:.2})) = {r}",
                self.name,
                load,
                c.lead,
                c.lead + c.margin,
                100.0 * predicted_util,
                current,
                load,
                cap,
                c.target
            ),
        }
    }
}

/// P(response > t) for one M/M/c FCFS instance: c workers of rate μ, arrivals λ.
pub fn mmc_response_tail(c: u32, lambda: f64, mu: f64, t: f64) -> f64 {
    let a = lambda / mu;
    if a >= f64::from(c) {
        return 1.0;
    }
    // Erlang C through the stable Erlang B recursion.
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (f64::from(k) + a * b);
    }
    let rho = a / f64::from(c);
    let wait = b / (1.0 - rho * (1.0 - b));
    let theta = f64::from(c) * mu - lambda;
    let service_only = (-mu * t).exp();
    let both = if (theta - mu).abs() < 1e-9 {
        (1.0 + mu * t) * (-mu * t).exp()
    } else {
        (theta * (-mu * t).exp() - mu * (-theta * t).exp()) / (theta - mu)
    };
    (1.0 - wait) * service_only + wait * both
}

/// The paper's cost model: minimise C_VM · R_t subject to the response time constraint. With
/// each instance an M/M/c queue (c = workers, exponential service) receiving L_t / R_t, the
/// smallest R_t whose predicted share of responses within `slo` seconds is at least `goal`.
pub struct CostOptimal {
    name: String,
    model: InstanceModel,
    /// Response-time bound θ_T, seconds.
    pub slo: f64,
    /// Share of requests that must meet it.
    pub goal: f64,
    lead: f64,
    margin: f64,
}

impl CostOptimal {
    /// A cost-optimal policy planning `lead` (+ `margin`) seconds ahead.
    pub fn new(
        name: &str,
        model: InstanceModel,
        slo: f64,
        goal: f64,
        lead: f64,
        margin: f64,
    ) -> CostOptimal {
        CostOptimal {
            name: name.into(),
            model,
            slo,
            goal,
            lead,
            margin,
        }
    }

    /// The smallest count meeting the goal for `load` requests per second.
    pub fn size(&self, load: f64) -> usize {
        let mu = 1.0 / self.model.mean_service;
        (1..=10_000)
            .find(|r| {
                mmc_response_tail(self.model.workers, load / *r as f64, mu, self.slo)
                    <= 1.0 - self.goal
            })
            .unwrap_or(10_000)
    }
}

impl Policy for CostOptimal {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn recommend(&mut self, obs: &Observation) -> Recommendation {
        let current = obs.ready + obs.starting;
        let Some((load, held)) = obs.forecast.as_deref().and_then(|f| {
            Some((
                peak_between(f, self.lead, self.lead + self.margin)?,
                peak_between(f, 0.0, self.lead + self.margin)?,
            ))
        }) else {
            return Recommendation {
                replicas: current,
                reason: format!("{}: no forecast yet", self.name),
            };
        };
        // Out for what is planned; in only as far as the load until then allows (an instance
        // removed now takes `lead` to come back).
        let up = self.size(load);
        let r = if up >= current {
            up
        } else {
            self.size(held.max(load)).clamp(up, current)
        };
        Recommendation {
            replicas: r,
            reason: format!(
                "{}: predicted {:.1} req/s; {r} is the fewest instances with ≥ {:.1}% of responses within {:.0} ms (M/M/{})",
                self.name,
                load,
                100.0 * self.goal,
                1000.0 * self.slo,
                self.model.workers
            ),
        }
    }
}

/// Seconds in which the fast floor plans to work off the requests waiting now (its only
/// constant: a backlog is worked off within two control periods).
pub const BACKLOG_DRAIN_SECS: f64 = 30.0;

/// The hybrid's reactive floor, fast: what the balancer sees now, within one decision and with
/// no scale-up stabilisation. It is the HPA rule at its own (high) target, and, while the pool
/// shows overload (utilisation at or above the target, a queue, or refused requests), the
/// observed demand sized directly: `ceil((rate + queue / 30 s) / (capacity × target))`.
/// Utilisation saturates at 100% in a surge, so the HPA rule alone adds at most
/// `1 / target` − 1 of the pool per step; the arrival rate (refused requests included) says
/// how far past capacity the demand really is.
pub struct FastFloor {
    hpa: Hpa,
    model: InstanceModel,
    target: f64,
}

impl FastFloor {
    /// A floor at `cfg.target` utilisation for instances of `model`.
    pub fn new(cfg: HpaConfig, model: InstanceModel) -> FastFloor {
        FastFloor {
            hpa: Hpa::named(cfg, "floor"),
            model,
            target: cfg.target,
        }
    }

    /// Instances that serve `rate` requests per second at the floor's target.
    fn size(&self, rate: f64) -> usize {
        (rate / (self.model.capacity() * self.target)).ceil() as usize
    }

    /// While the pool shows overload (utilisation at or above the target, a queue, or refused
    /// requests, with an instance ready to measure it): the demand it observes (requests per
    /// second, the backlog worked off in [`BACKLOG_DRAIN_SECS`]) and the instances that serve
    /// it at the target.
    fn overload(&self, obs: &Observation) -> Option<(f64, usize)> {
        let overloaded = obs.utilisation >= self.target || obs.queue >= 1.0 || obs.dropped > 0;
        if !overloaded || obs.ready == 0 {
            return None;
        }
        let demand = obs.rate + obs.queue.max(0.0) / BACKLOG_DRAIN_SECS;
        Some((demand, self.size(demand)))
    }

    /// The instances the observed request rate needs at the floor's target: what a forecast
    /// the anomaly detector distrusts may not scale in below (a surge it did not see is
    /// still under way).
    pub fn observed(&self, obs: &Observation) -> Recommendation {
        let replicas = self.size(obs.rate.max(0.0));
        Recommendation {
            replicas,
            reason: format!(
                "floor: {:.1} req/s observed needs ceil({:.1} / ({:.1} × {:.2})) = {replicas}",
                obs.rate,
                obs.rate,
                self.model.capacity(),
                self.target
            ),
        }
    }

    /// The floor as a lower bound beside a forecast: what [`Policy::recommend`] says, but
    /// while the pool is overloaded never less than the instances its observed demand needs,
    /// also when as many are already launched (then `recommend` is silent). Without it, a
    /// forecast that has not seen a surge coming scales in while the instances launched for
    /// the surge are still starting, and they start again from the beginning.
    pub fn bound(&mut self, obs: &Observation) -> Recommendation {
        let r = self.recommend(obs);
        match self.overload(obs) {
            Some((demand, by_demand)) if by_demand > r.replicas => Recommendation {
                replicas: by_demand,
                reason: format!(
                    "floor: overload (utilisation {:.0}%, {:.0} queued, {} refused): demand {:.1} req/s holds ceil({:.1} / ({:.1} × {:.2})) = {by_demand} (ready and starting)",
                    100.0 * obs.utilisation,
                    obs.queue,
                    obs.dropped,
                    demand,
                    demand,
                    self.model.capacity(),
                    self.target
                ),
            },
            _ => r,
        }
    }
}

impl Policy for FastFloor {
    fn name(&self) -> String {
        "floor".into()
    }
    /// Asks for more instances only: when the pool does not need more, it recommends none (0),
    /// so that a floor which held no opinion does not hold scale-in back through the
    /// governor's stabilisation window.
    fn recommend(&mut self, obs: &Observation) -> Recommendation {
        let current = obs.ready + obs.starting;
        let silent = || Recommendation {
            replicas: 0,
            reason: "floor: no overload".into(),
        };
        let hpa = self.hpa.recommend(obs);
        let Some((demand, by_demand)) = self.overload(obs) else {
            return if hpa.replicas > current {
                hpa
            } else {
                silent()
            };
        };
        if by_demand <= hpa.replicas {
            return if hpa.replicas > current {
                hpa
            } else {
                silent()
            };
        }
        Recommendation {
            replicas: by_demand,
            reason: format!(
                "floor: overload (utilisation {:.0}%, {:.0} queued, {} refused): demand {:.1} req/s + backlog {:.0} / {:.0} s needs ceil({:.1} / ({:.1} × {:.2})) = {by_demand}",
                100.0 * obs.utilisation,
                obs.queue,
                obs.dropped,
                obs.rate,
                obs.queue,
                BACKLOG_DRAIN_SECS,
                demand,
                self.model.capacity(),
                self.target
            ),
        }
    }
}

/// The hybrid's fast floor alone: the hybrid without its forecast, to measure what the forecast
/// adds. Out as the floor says (the HPA rule at the floor's target, or the observed demand
/// under overload, within one decision); in as the HPA rule at that target says, so that it
/// also gives instances back (the floor by itself only ever asks for more).
pub struct Reactive {
    floor: FastFloor,
    hpa: Hpa,
}

impl Reactive {
    /// The floor at `cfg.target` for instances of `model`, scaling in by the HPA rule there.
    pub fn new(cfg: HpaConfig, model: InstanceModel) -> Reactive {
        Reactive {
            floor: FastFloor::new(cfg, model),
            hpa: Hpa::named(cfg, "reactive"),
        }
    }
}

impl Policy for Reactive {
    fn name(&self) -> String {
        "reactive".into()
    }
    fn recommend(&mut self, obs: &Observation) -> Recommendation {
        let up = self.floor.recommend(obs);
        let r = if up.replicas > 0 {
            up
        } else {
            self.hpa.recommend(obs)
        };
        Recommendation {
            replicas: r.replicas,
            reason: format!("reactive: {}", r.reason),
        }
    }
}

/// max(predictive, fast reactive floor), the floor as a lower bound ([`FastFloor::bound`]:
/// under overload it holds the instances launched for the demand it observes). While the
/// forecast is missing, only the floor and the HPA rule (`fallback`) act. While the anomaly
/// detector distrusts the forecast, the reason says so and the forecast may not scale in
/// below what the observed rate needs at the floor's target ([`FastFloor::observed`]); the
/// HPA rule on top bought no attainment for its instance-hours on the validation traces
/// (docs/results.md, "How the defaults were chosen"). The hybrid is never below either of its
/// parts.
pub struct Hybrid {
    name: String,
    predictive: Box<dyn Policy>,
    floor: FastFloor,
    fallback: Hpa,
}

impl Hybrid {
    /// `floor` is the fast reactive safety net beside the forecast; `fallback` the HPA rule
    /// added while there is no forecast yet.
    pub fn new(
        name: &str,
        predictive: Box<dyn Policy>,
        floor: FastFloor,
        fallback: HpaConfig,
    ) -> Hybrid {
        Hybrid {
            name: name.into(),
            predictive,
            floor,
            fallback: Hpa::named(fallback, "fallback hpa"),
        }
    }
}

impl Policy for Hybrid {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn recommend(&mut self, obs: &Observation) -> Recommendation {
        let f = self.floor.bound(obs);
        let mut parts: Vec<(&str, Recommendation)> = vec![("reactive floor wins", f)];
        let mut state = "";
        if obs.forecast.is_none() {
            state = "no forecast, reactive only; ";
            parts.push(("", self.fallback.recommend(obs)));
        } else {
            if !obs.trusted {
                state = "forecast not trustworthy (anomaly), the floor is the safety net; ";
                parts.push(("observed load holds", self.floor.observed(obs)));
            }
            parts.insert(0, ("", self.predictive.recommend(obs)));
        }
        // The first of the largest: the forecast's reason when it ties.
        let best = parts
            .iter()
            .enumerate()
            .max_by(|(i, a), (j, b)| a.1.replicas.cmp(&b.1.replicas).then(j.cmp(i)))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let (label, r) = parts.swap_remove(best);
        let label = if label.is_empty() {
            String::new()
        } else {
            format!("{label}; ")
        };
        Recommendation {
            replicas: r.replicas,
            reason: format!("{}: {state}{label}{}", self.name, r.reason),
        }
    }
}
