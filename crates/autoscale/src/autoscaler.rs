//! The autoscaler: what the pool showed in, how many instances out.

use foresight_scale::{peak_between, Decision, Governor, Observation};

use crate::planner::Planner;

/// What the pool showed over the last control period.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// Seconds since the start (any fixed origin; the simulator's clock or the loop's uptime).
    pub now: f64,
    /// Length of the period, seconds.
    pub period: f64,
    /// Client requests that arrived in the period (served, queued or refused).
    pub arrivals: u64,
    /// Mean utilisation of the ready instances over the period (0–1).
    pub utilisation: f64,
    /// Requests waiting for a worker across the pool now.
    pub queue: f64,
    /// Requests refused or dropped for lack of capacity in the period (503s, full queues).
    pub dropped: u64,
    /// Instances serving.
    pub ready: usize,
    /// Instances launched and not ready yet.
    pub starting: usize,
}

/// One step's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Instances wanted, and the log entry when that changed something.
    pub decision: Decision,
    /// The planned rates (forecast + band) as (seconds ahead, requests per second).
    pub forecast: Option<Vec<(f64, f64)>>,
    /// Whether the forecast is trusted.
    pub trusted: bool,
    /// The planned load: the highest planned rate in [lead, lead + margin].
    pub planned: Option<f64>,
    /// The rate observed over the period.
    pub rate: f64,
}

/// Forecast at the lead with its band, anomaly trust, policy and governor in one pure object.
/// Step it once per control period with what the pool showed; it closes forecaster steps as
/// time passes them and decides.
pub struct Autoscaler {
    planner: Option<Planner>,
    governor: Governor,
    step_secs: f64,
    next_step: f64,
    step_arrivals: f64,
    lead: f64,
    margin: f64,
}

impl Autoscaler {
    /// `planner` (none: reactive only) has steps of `step_secs` live seconds starting at time
    /// 0 of the samples; `lead` and `margin` (seconds) say which part of the forecast is the
    /// planned load.
    pub fn new(
        planner: Option<Planner>,
        governor: Governor,
        step_secs: f64,
        lead: f64,
        margin: f64,
    ) -> Autoscaler {
        Autoscaler {
            planner,
            governor,
            step_secs,
            next_step: step_secs,
            step_arrivals: 0.0,
            lead,
            margin,
        }
    }

    /// Keeps every forecast made at the lead (for the experiment's timelines; the live loop
    /// does not, as the list grows with every step).
    pub fn recording(mut self) -> Autoscaler {
        self.planner = self.planner.map(Planner::recording);
        self
    }

    /// Decides for what the pool showed.
    pub fn step(&mut self, s: &Sample) -> Step {
        self.step_arrivals += s.arrivals as f64;
        while s.now + 1e-6 >= self.next_step {
            if let Some(p) = self.planner.as_mut() {
                p.observe(self.step_arrivals);
            }
            self.step_arrivals = 0.0;
            self.next_step += self.step_secs;
        }
        let into_step = (self.step_secs - (self.next_step - s.now)).max(0.0);
        let forecast = self.planner.as_ref().and_then(|p| p.forecast(into_step));
        let trusted = self.planner.as_ref().is_some_and(|p| p.trusted());
        let planned = forecast
            .as_deref()
            .and_then(|f| peak_between(f, self.lead, self.lead + self.margin));
        let rate = s.arrivals as f64 / s.period.max(1e-9);
        let obs = Observation {
            now: s.now,
            ready: s.ready,
            starting: s.starting,
            utilisation: s.utilisation,
            rate,
            queue: s.queue,
            dropped: s.dropped,
            forecast: forecast.clone(),
            trusted,
        };
        Step {
            decision: self.governor.decide(&obs),
            forecast,
            trusted,
            planned,
            rate,
        }
    }

    /// The policy's name.
    pub fn name(&self) -> String {
        self.governor.name()
    }

    /// The governor (its decision log).
    pub fn governor(&self) -> &Governor {
        &self.governor
    }

    /// Sets or lifts a floor from outside the policy (a firing alert); see
    /// [`Governor::set_floor`].
    pub fn set_floor(&mut self, floor: Option<(usize, String)>) {
        self.governor.set_floor(floor);
    }

    /// The planner, when forecasting.
    pub fn planner(&self) -> Option<&Planner> {
        self.planner.as_ref()
    }

    /// A warm start: steps that happened before the first one this autoscaler steps (requests
    /// per step, oldest first), given to the forecaster so that it forecasts at once. See
    /// [`Planner::warm`].
    pub fn warm(&mut self, requests: &[f64]) {
        if let Some(p) = self.planner.as_mut() {
            p.warm(requests);
        }
    }

    /// While the forecaster cannot forecast for lack of history: (steps it has, steps it
    /// needs). See [`Planner::warming`].
    pub fn warming(&self) -> Option<(usize, usize)> {
        self.planner.as_ref().and_then(Planner::warming)
    }
}
