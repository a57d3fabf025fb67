//! The upper envelope of several forecasters: each step's highest plan among them (a quantile
//! forecaster's curve at the planning quantile, a point forecaster's forecast). Where one
//! model sees the daily cycle and another the hourly bursts, the envelope plans for both;
//! the planner's error band then corrects its bias like any point forecast's.

use crate::model::Forecaster;

/// Step-wise maximum of its members' plans.
pub struct Envelope {
    members: Vec<Box<dyn Forecaster + Send>>,
    quantile: f64,
}

impl Envelope {
    /// The envelope of `members`, reading quantile forecasters at `quantile` (the lowest of
    /// their quantiles at or above it, else their highest).
    pub fn new(members: Vec<Box<dyn Forecaster + Send>>, quantile: f64) -> Envelope {
        Envelope { members, quantile }
    }
}

/// A forecaster's plan for `horizon` steps: its curve at `quantile` if it forecasts
/// quantiles, its forecast otherwise.
pub fn plan_curve(f: &mut dyn Forecaster, horizon: usize, quantile: f64) -> Option<Vec<f64>> {
    let qs = f.quantiles();
    if qs.is_empty() {
        return f.forecast(horizon);
    }
    let k = qs
        .iter()
        .position(|q| *q >= quantile - 1e-9)
        .unwrap_or(qs.len() - 1);
    f.forecast_quantiles(horizon)
        .and_then(|mut curves| (k < curves.len()).then(|| curves.swap_remove(k)))
}

impl Forecaster for Envelope {
    fn name(&self) -> String {
        let names: Vec<String> = self.members.iter().map(|m| m.name()).collect();
        format!("max({})", names.join(", "))
    }

    fn observe(&mut self, time: i64, value: f64, features: &[f64]) {
        for m in &mut self.members {
            m.observe(time, value, features);
        }
    }

    /// The step-wise maximum over the members that forecast; `None` while none does.
    fn forecast(&mut self, horizon: usize) -> Option<Vec<f64>> {
        let q = self.quantile;
        self.members
            .iter_mut()
            .filter_map(|m| plan_curve(m.as_mut(), horizon, q))
            .reduce(|a, b| a.iter().zip(&b).map(|(x, y)| x.max(*y)).collect())
    }

    fn history_needed(&self) -> usize {
        self.members
            .iter()
            .map(|m| m.history_needed())
            .max()
            .unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MovingAverage, Persistence};

    #[test]
    fn the_envelope_is_the_highest_plan_of_each_step() {
        let mut e = Envelope::new(
            vec![
                Box::new(Persistence::new()),
                Box::new(MovingAverage::new(60, 3)),
            ],
            0.95,
        );
        assert_eq!(e.forecast(2), None);
        for (i, v) in [30.0, 60.0, 0.0].into_iter().enumerate() {
            e.observe(i as i64 * 60, v, &[]);
        }
        // Persistence says 0, the moving average 30.
        assert_eq!(e.forecast(2), Some(vec![30.0, 30.0]));
        assert_eq!(e.history_needed(), 3);
        assert_eq!(e.name(), "max(persistence, moving-average)");
    }
}
