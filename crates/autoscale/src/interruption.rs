//! Interruptions: load that stops dead (an outage upstream, a deploy, a collection gap) comes
//! back as it left, at once. Scaling in while it is away meets the return with the floor and a
//! provisioning delay to wait out, so a forecast-driven autoscaler holds its instances through
//! an interruption, up to a bound.
//!
//! An interruption is a control period with no arrivals after one in which so few would have
//! been a chance under Poisson arrivals (at least [`IMPLAUSIBLE_SILENCE`] expected, so the
//! chance of none is below e⁻²⁰); it ends with the first arrival. Quiet hours that fade to zero
//! are not one: their last busy period expects few requests.

/// Requests the last busy period's rate expects in one period for silence to be an
/// interruption rather than chance.
pub const IMPLAUSIBLE_SILENCE: f64 = 20.0;

/// Tracks interruptions of the load over time (`now` in seconds).
#[derive(Clone, Debug, PartialEq)]
pub struct Interruption {
    hold: f64,
    rate: f64,
    since: Option<f64>,
}

impl Interruption {
    /// Holds scale-in for at most `hold` seconds of an interruption (0: never).
    pub fn new(hold: f64) -> Interruption {
        Interruption {
            hold,
            rate: 0.0,
            since: None,
        }
    }

    /// A period of `period` seconds that ended at `now` with `arrivals`; returns why scale-in
    /// is held, or `None`.
    pub fn observe(&mut self, now: f64, period: f64, arrivals: u64) -> Option<String> {
        if arrivals > 0 {
            self.since = None;
            self.rate = arrivals as f64 / period.max(1e-9);
            return None;
        }
        if self.since.is_none() && self.rate * period >= IMPLAUSIBLE_SILENCE {
            self.since = Some(now - period);
        }
        let since = self.since?;
        if self.hold <= 0.0 || now - since > self.hold {
            return None;
        }
        Some(format!(
            "load interrupted {:.0} s ago after {:.1} req/s (held up to {:.0} s)",
            now - since,
            self.rate,
            self.hold
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_after_busy_periods_holds_until_the_bound_or_the_return() {
        let mut i = Interruption::new(120.0);
        assert_eq!(i.observe(15.0, 15.0, 300), None, "busy");
        assert!(i.observe(30.0, 15.0, 0).is_some(), "20 req/s, then nothing");
        let why = i.observe(120.0, 15.0, 0).unwrap();
        assert!(why.contains("105 s ago"), "{why}");
        assert!(i.observe(135.0, 15.0, 0).is_some(), "120 s: the bound");
        assert_eq!(i.observe(150.0, 15.0, 0), None, "past the bound");
        assert_eq!(i.observe(165.0, 15.0, 10), None, "back");
        assert!(
            i.observe(180.0, 15.0, 0).is_none(),
            "10 per 15 s: silence can be chance"
        );
    }

    #[test]
    fn quiet_traffic_that_fades_to_zero_is_not_an_interruption() {
        let mut i = Interruption::new(3600.0);
        for (t, n) in [(60.0, 40), (120.0, 12), (180.0, 3), (240.0, 0), (300.0, 0)] {
            assert_eq!(i.observe(t, 60.0, n), None, "at {t}");
        }
        let mut off = Interruption::new(0.0);
        off.observe(60.0, 60.0, 600);
        assert_eq!(off.observe(120.0, 60.0, 0), None, "hold 0: off");
    }
}

#[cfg(test)]
mod held {
    use foresight_forecast::Persistence;
    use foresight_scale::{InstanceModel, Limits};

    use crate::{Autoscaler, Foresight, PolicyParams, PolicySpec, Sample, Settings, StepClock};

    /// A hybrid on persistence at 100 req/s (5 instances of 20 req/s at 70% ≈ 8), then 40
    /// minutes of nothing: instances at the end of the silence.
    fn through_a_drop(hold: f64) -> usize {
        let settings = Settings {
            policy: PolicySpec::Hybrid,
            params: PolicyParams::new(InstanceModel {
                workers: 4,
                mean_service: 0.2,
            }),
            limits: Limits {
                stabilisation: 60.0,
                ..Limits::default()
            },
            dry_run: false,
            quantile: 0.95,
            widen: 0,
            tail_share: 0.0,
            interruption_hold: hold,
        };
        let clock = StepClock {
            step_secs: 60.0,
            next_time: 0,
            model_step: 60,
            to_model: 1.0,
        };
        let foresight = Foresight::Forecaster {
            model: Box::new(Persistence::new()),
            horizon: 10,
            clock,
        };
        let mut a = Autoscaler::build(&settings, foresight, "persistence").unwrap();
        let mut ready = 1;
        for tick in 1..=(30 + 40) * 4 {
            let busy = tick <= 30 * 4;
            let s = Sample {
                now: tick as f64 * 15.0,
                period: 15.0,
                arrivals: if busy { 1500 } else { 0 },
                utilisation: if busy { 0.7 } else { 0.0 },
                ready,
                ..Sample::default()
            };
            ready = a.step(&s).decision.replicas;
        }
        ready
    }

    #[test]
    fn a_forecast_policy_keeps_its_instances_through_a_drop_to_zero() {
        let (held, off, short) = (
            through_a_drop(3600.0),
            through_a_drop(0.0),
            through_a_drop(600.0),
        );
        assert!(held >= 7, "held through 40 minutes: {held}");
        assert_eq!(off, 1, "without the hold: the floor");
        assert_eq!(
            short, 1,
            "a 10-minute hold lets go before the 40 minutes end"
        );
    }
}
