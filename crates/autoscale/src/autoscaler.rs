//! The autoscaler: what the pool showed in, how many instances out.

use foresight_scale::{peak_between, Decision, Governor, Observation};

use crate::features::FeatureSteps;
use crate::interruption::Interruption;
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
    features: Option<FeatureSteps>,
    interruption: Option<Interruption>,
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
            features: None,
            interruption: None,
        }
    }

    /// Holds scale-in through an interruption of the load for at most `hold` seconds (see
    /// [`Interruption`]).
    pub fn with_interruption_hold(mut self, hold: f64) -> Autoscaler {
        self.interruption = Some(Interruption::new(hold));
        self
    }

    /// Feeds the forecaster `n` features besides the request count (a model trained with
    /// them): readings given to [`Autoscaler::observe_features`] are averaged per step.
    pub fn with_features(mut self, n: usize) -> Autoscaler {
        self.features = (n > 0).then(|| FeatureSteps::new(n));
        self
    }

    /// One reading of every feature (in the order the forecaster was built with), taken
    /// during the current step; `None` for a feature that could not be read.
    pub fn observe_features(&mut self, readings: &[Option<f64>]) {
        if let Some(f) = self.features.as_mut() {
            f.add(readings);
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
            let row = self.features.as_mut().map(FeatureSteps::close);
            if let Some(p) = self.planner.as_mut() {
                match &row {
                    None => p.observe(self.step_arrivals),
                    Some(r) => p.observe_with(self.step_arrivals, r.as_deref()),
                }
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
        if let Some(i) = self.interruption.as_mut() {
            self.governor
                .hold_scale_in(i.observe(s.now, s.period, s.arrivals));
        }
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
        if self.features.is_some() {
            return; // a forecaster trained with features needs their rows: warm_with
        }
        if let Some(p) = self.planner.as_mut() {
            p.warm(requests);
        }
    }

    /// A warm start with the features: `features[i]` is the row of step i (see
    /// [`Autoscaler::with_features`]); the newest row is the features' last known value.
    pub fn warm_with(&mut self, requests: &[f64], features: &[Vec<f64>]) {
        if let (Some(f), Some(last)) = (self.features.as_mut(), features.last()) {
            f.seed(last);
        }
        if let Some(p) = self.planner.as_mut() {
            p.warm_with(requests, features);
        }
    }

    /// Whether the forecaster is fed features.
    pub fn has_features(&self) -> bool {
        self.features.is_some()
    }

    /// While the forecaster cannot forecast for lack of history: (steps it has, steps it
    /// needs). See [`Planner::warming`].
    pub fn warming(&self) -> Option<(usize, usize)> {
        self.planner.as_ref().and_then(Planner::warming)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use foresight_forecast::Forecaster;
    use foresight_scale::{Limits, Static};

    use super::*;
    use crate::StepClock;

    /// Remembers the feature rows it was fed.
    struct Rows(Arc<Mutex<Vec<Vec<f64>>>>);

    impl Forecaster for Rows {
        fn name(&self) -> String {
            "rows".into()
        }
        fn observe(&mut self, _time: i64, _value: f64, features: &[f64]) {
            self.0.lock().unwrap().push(features.to_vec());
        }
        fn forecast(&mut self, _horizon: usize) -> Option<Vec<f64>> {
            None
        }
    }

    fn autoscaler(rows: &Arc<Mutex<Vec<Vec<f64>>>>) -> Autoscaler {
        let clock = StepClock {
            step_secs: 2.0,
            next_time: 0,
            model_step: 60,
            to_model: 1.0,
        };
        let planner = Planner::new(Box::new(Rows(rows.clone())), 4, 1, clock);
        let governor =
            Governor::new(Box::new(Static { replicas: 1 }), Limits::default(), false).unwrap();
        Autoscaler::new(Some(planner), governor, 2.0, 60.0, 0.0).with_features(1)
    }

    fn sample(now: f64) -> Sample {
        Sample {
            now,
            period: 1.0,
            ready: 1,
            ..Sample::default()
        }
    }

    #[test]
    fn features_are_averaged_per_step_and_a_step_without_them_is_not_fed() {
        let rows = Arc::new(Mutex::new(Vec::new()));
        let mut a = autoscaler(&rows);
        // Step 1 (t 0–2 s): no reading at all, so no row: the forecaster is not fed.
        a.step(&sample(1.0));
        a.step(&sample(2.0));
        assert!(rows.lock().unwrap().is_empty());
        // Step 2: two readings, fed their mean.
        a.observe_features(&[Some(1.0)]);
        a.step(&sample(3.0));
        a.observe_features(&[Some(3.0)]);
        a.step(&sample(4.0));
        assert_eq!(*rows.lock().unwrap(), vec![vec![2.0]]);
        // Step 3: the query failed throughout; the last value carries.
        a.observe_features(&[None]);
        a.step(&sample(6.0));
        assert_eq!(rows.lock().unwrap().last(), Some(&vec![2.0]));
    }

    #[test]
    fn a_warm_start_without_features_is_refused_and_with_them_seeds_the_last_row() {
        let rows = Arc::new(Mutex::new(Vec::new()));
        let mut a = autoscaler(&rows);
        a.warm(&[10.0, 20.0]);
        assert!(
            rows.lock().unwrap().is_empty(),
            "rows it was not trained on"
        );
        a.warm_with(&[10.0, 20.0], &[vec![0.5], vec![0.7]]);
        assert_eq!(*rows.lock().unwrap(), vec![vec![0.5], vec![0.7]]);
        a.step(&sample(2.0));
        assert_eq!(rows.lock().unwrap().last(), Some(&vec![0.7]));
    }
}
