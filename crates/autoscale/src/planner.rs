//! Forecasts for the scaling policy: requests per step in, the expected rate plus an upper band
//! out, with the anomaly detector's verdict on whether to trust it.

use std::collections::VecDeque;

use foresight_forecast::{plan_curve, AnomalyConfig, Detector, Forecaster};

use crate::tail::TailBand;
use crate::timing::{widen, Timing, MAX_WIDEN};

/// The forecast is the expected rate; sizing for it leaves every above-average step short. The
/// planner adds a quantile (by default this one) of the last [`RESIDUAL_WINDOW`] realised
/// errors at the planning lead (past errors only).
pub const UPPER_QUANTILE: f64 = 0.95;
/// Realised errors kept for the band.
pub const RESIDUAL_WINDOW: usize = 240;
/// Realised errors needed before the band is used (until then it is zero).
pub const BAND_MIN_POINTS: usize = 30;
/// Steps the oracle looks ahead when the horizon is shorter (it must cover lead + margin).
const ORACLE_MIN_STEPS: usize = 12;

/// Where forecasts come from.
enum Source {
    /// A forecaster fed the observed steps.
    Model(Box<dyn Forecaster + Send>),
    /// The true future (requests per second for every step from the first): the physical
    /// limit of any predictor, for the simulator only.
    Oracle(Vec<f64>),
}

/// Units and times of the planner's steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepClock {
    /// Live seconds per step.
    pub step_secs: f64,
    /// Model time (Unix seconds) of the first step to be observed.
    pub next_time: i64,
    /// Model seconds per step (equal to `step_secs` unless replaying compressed time).
    pub model_step: i64,
    /// Model units per live request (e.g. 1 / live requests per trace count).
    pub to_model: f64,
}

/// Turns per-step request counts into rate forecasts with an upper band.
pub struct Planner {
    source: Source,
    detector: Detector,
    horizon: usize,
    lead_steps: usize,
    clock: StepClock,
    quantile: f64,
    step: usize,
    /// (step, planned) in model units, awaiting the step's actual.
    pending: VecDeque<(usize, f64)>,
    /// Steps beyond the lead that a plan provisions for (the policies' margin).
    margin_steps: usize,
    /// (first step, last step, peak planned) of each plan's provisioning window, model units:
    /// what the capacity in place at a step was sized for.
    windows: VecDeque<(usize, usize, f64)>,
    residuals: VecDeque<f64>,
    current: Option<Vec<f64>>,
    expected: Option<Vec<f64>>,
    /// (seconds since the start, expected rate) of each forecast at the lead, when recording.
    recorded: Option<Vec<(f64, f64)>>,
    /// Steps given by a warm start ([`Planner::warm`]).
    warmed: usize,
    /// How early or late the load comes against the plan: the widening in use.
    timing: Timing,
    /// Steps each side the plan is widened by now (see [`Timing`]).
    widening: usize,
    /// The widest widening allowed (0: the plan is never widened).
    max_widen: usize,
    /// The plans of the last [`MAX_WIDEN`] steps (each step's plan made just before it),
    /// oldest first, rates: a widened plan also covers load that comes late.
    past: VecDeque<f64>,
    /// Standing headroom for the load the plan leaves above itself (off unless set).
    tail: TailBand,
}

impl Planner {
    /// `forecaster` already warmed on history up to `clock.next_time − model_step`; forecasts
    /// `horizon` steps; the band is measured at `lead_steps` ahead.
    pub fn new(
        forecaster: Box<dyn Forecaster + Send>,
        horizon: usize,
        lead_steps: usize,
        clock: StepClock,
    ) -> Planner {
        Planner::with_source(Source::Model(forecaster), horizon, lead_steps, clock)
    }

    /// A planner that knows the future: `rates[k]` is the true request rate of step `k`.
    pub fn oracle(rates: Vec<f64>, horizon: usize, lead_steps: usize, clock: StepClock) -> Planner {
        Planner::with_source(
            Source::Oracle(rates),
            horizon.max(ORACLE_MIN_STEPS),
            lead_steps,
            clock,
        )
    }

    /// A forecaster warm at the start forecasts at once, before the first step closes.
    fn with_source(source: Source, horizon: usize, lead_steps: usize, clock: StepClock) -> Planner {
        let mut p = Planner {
            source,
            detector: Detector::new(AnomalyConfig {
                upper_only: true,
                ..AnomalyConfig::default()
            }),
            horizon: horizon.max(1),
            lead_steps: lead_steps.clamp(1, horizon.max(1)),
            clock,
            quantile: UPPER_QUANTILE,
            step: 0,
            pending: VecDeque::new(),
            margin_steps: 0,
            windows: VecDeque::new(),
            residuals: VecDeque::new(),
            current: None,
            expected: None,
            recorded: None,
            warmed: 0,
            timing: Timing::default(),
            widening: 0,
            max_widen: 0,
            past: VecDeque::new(),
            tail: TailBand::new(0.0),
        };
        p.refresh();
        p
    }

    /// Plans for this quantile (0–1) of the realised errors above the expected rate instead
    /// of [`UPPER_QUANTILE`]; 0.5 is about the expected rate itself.
    pub fn with_quantile(mut self, q: f64) -> Planner {
        self.quantile = q.clamp(0.0, 1.0);
        if self.step == 0 {
            // The first plan was made for the default quantile.
            self.pending.clear();
            self.refresh();
        }
        self
    }

    /// Plans provision for `steps` steps beyond the lead (the policies' margin): the anomaly
    /// detector then judges each step's actual against the highest plan that provisioned
    /// for it, so a burst a minute earlier or later than foreseen, inside the window the
    /// capacity was sized for, is not a surprise.
    pub fn with_margin_steps(mut self, steps: usize) -> Planner {
        self.margin_steps = steps;
        if self.step == 0 {
            self.pending.clear();
            self.windows.clear();
            self.refresh();
        }
        self
    }

    /// Keeps every forecast made at the lead (for timelines).
    pub fn recording(mut self) -> Planner {
        // The forecast made at construction, if any, is the first at the lead.
        let first = self.expected.as_ref().filter(|_| self.step == 0).map(|fc| {
            let k = self.lead_steps.min(fc.len()).max(1);
            ((k - 1) as f64 * self.clock.step_secs, fc[k - 1])
        });
        self.recorded = Some(first.into_iter().collect());
        self
    }

    /// Widens the plan for load that comes early or late by up to `steps` each side (at most
    /// [`MAX_WIDEN`]), as far as the measured errors say it helps; 0 (the default) never.
    pub fn with_widening(mut self, steps: usize) -> Planner {
        self.max_widen = steps.min(MAX_WIDEN);
        self
    }

    /// Adds the [`TailBand`]: a relative margin that leaves at most `share` of the load above
    /// the plan over the last week (0 or 1: off, the default).
    pub fn with_tail_share(mut self, share: f64) -> Planner {
        self.tail = TailBand::new(share);
        self
    }

    /// The tail band's relative margin in use now (0 when off or not yet measured).
    pub fn tail_margin(&self) -> f64 {
        self.tail.margin()
    }

    /// Steps each side the plan is widened by now, for load that comes early or late.
    pub fn widening(&self) -> usize {
        self.widening
    }

    /// The band's quantile.
    pub fn quantile(&self) -> f64 {
        self.quantile
    }

    fn rate(&self, model_value: f64) -> f64 {
        model_value / self.clock.to_model / self.clock.step_secs
    }

    /// Closes a step in which `requests` arrived.
    pub fn observe(&mut self, requests: f64) {
        self.observe_with(requests, Some(&[]));
    }

    /// Closes a step in which `requests` arrived, with the step's feature row for a forecaster
    /// trained with features (in its order); `None` when the row is not known, and the
    /// forecaster is not fed this step (its input window starts again when rows return).
    pub fn observe_with(&mut self, requests: f64, features: Option<&[f64]>) {
        let t = self.clock.next_time;
        let value = requests * self.clock.to_model;
        while self.pending.front().is_some_and(|(at, _)| *at <= self.step) {
            let (at, planned) = self.pending.pop_front().expect("checked");
            while self.windows.front().is_some_and(|w| w.1 < self.step) {
                self.windows.pop_front();
            }
            let provisioned = self
                .windows
                .iter()
                .filter(|w| w.0 <= self.step)
                .map(|w| w.2)
                .fold(planned, f64::max);
            if at == self.step {
                // "Anomaly" means not explained by the model's own uncertainty: the actual is
                // judged against what was provisioned for this step (the highest plan whose
                // window covered it: a quantile forecaster's curve for the planned quantile,
                // the expected rate of a point forecaster), so a burst that the upper quantile
                // foresaw does not make the forecast distrusted, and only load above the plan
                // counts (an over-forecast costs money, not requests).
                self.detector.update(t, value, provisioned);
                if self.residuals.len() == RESIDUAL_WINDOW {
                    self.residuals.pop_front();
                }
                self.residuals.push_back(self.rate(value - planned));
                self.tail.record(self.rate(planned), self.rate(value));
                if self.max_widen > 0 {
                    self.timing
                        .record(self.step, self.rate(planned), self.rate(value));
                }
            }
        }
        self.step += 1;
        self.clock.next_time += self.clock.model_step;
        if let (Source::Model(forecaster), Some(row)) = (&mut self.source, features) {
            forecaster.observe(t, value, row);
        }
        self.refresh();
    }

    /// Forecasts the steps from the next one to be observed on. The plan is the forecaster's
    /// own curve for the band's quantile when it forecasts quantiles (the lowest at or above
    /// it, else its highest), the expected rate otherwise; either way the band adds that
    /// quantile of the realised errors against the plan (zero when the curve is calibrated:
    /// conformalised quantile regression).
    fn refresh(&mut self) {
        let Source::Model(forecaster) = &mut self.source else {
            return;
        };
        let (to_model, step_secs) = (self.clock.to_model, self.clock.step_secs);
        let to_rate = |v: &[f64]| -> Vec<f64> {
            v.iter()
                .map(|x| x.max(0.0) / to_model / step_secs)
                .collect()
        };
        let expected: Option<Vec<f64>> = forecaster.forecast(self.horizon).map(|v| to_rate(&v));
        let plan: Option<Vec<f64>> = if forecaster.quantiles().is_empty() {
            expected.clone()
        } else {
            plan_curve(forecaster.as_mut(), self.horizon, self.quantile).map(|c| to_rate(&c))
        };
        if let (Some(fc), Some(pl)) = (&expected, &plan) {
            let k = self.lead_steps.min(fc.len()).min(pl.len()).max(1);
            let at = self.step + k - 1;
            let model = |r: f64| r * to_model * step_secs;
            self.pending.push_back((at, model(pl[k - 1])));
            let last = (k - 1 + self.margin_steps).min(pl.len() - 1);
            let peak = pl[k - 1..=last].iter().copied().fold(0.0, f64::max);
            self.windows.push_back((at, self.step + last, model(peak)));
            if let Some(r) = self.recorded.as_mut() {
                r.push((at as f64 * step_secs, fc[k - 1]));
            }
        }
        let chosen = (self.max_widen > 0)
            .then(|| self.timing.choose(self.quantile, self.max_widen))
            .flatten();
        let (w, band) = match chosen {
            Some((w, band)) if w > 0 => (w, band),
            _ => (0, upper_band(&self.residuals, self.quantile)),
        };
        self.widening = w;
        let margin = 1.0 + self.tail.margin();
        self.current = plan.as_ref().map(|v| {
            // The steps before the next one, then the plan: widened, then the plan's part.
            let n = self.past.len().min(w);
            let ext: Vec<f64> = self
                .past
                .iter()
                .skip(self.past.len() - n)
                .chain(v)
                .copied()
                .collect();
            widen(&ext, w)[n..]
                .iter()
                .map(|r| (r + band).max(r * margin).max(0.0))
                .collect()
        });
        if let Some(first) = plan.as_ref().and_then(|v| v.first()) {
            if self.past.len() == MAX_WIDEN {
                self.past.pop_front();
            }
            self.past.push_back(*first);
        }
        self.expected = expected;
    }

    /// The planned rates (forecast + band) as (seconds ahead, requests per second), given how
    /// far into the current step `now` is.
    pub fn forecast(&self, into_step: f64) -> Option<Vec<(f64, f64)>> {
        let at = |k: usize| (k as f64 + 1.0) * self.clock.step_secs - into_step;
        match &self.source {
            Source::Oracle(rates) => Some(
                (0..self.horizon)
                    .filter_map(|k| rates.get(self.step + k).map(|r| (at(k), *r)))
                    .collect(),
            ),
            Source::Model(_) => self
                .current
                .as_ref()
                .map(|fc| fc.iter().enumerate().map(|(k, r)| (at(k), *r)).collect()),
        }
    }

    /// The expected rates (the median curve of a quantile forecaster) without the band.
    pub fn expected(&self) -> Option<&[f64]> {
        self.expected.as_deref()
    }

    /// The expected rate (the median curve) at the lead, and the lead in seconds: what the
    /// forecast says the load will be when an instance started now is ready.
    pub fn expected_at_lead(&self) -> Option<(f64, f64)> {
        let k = self.lead_steps;
        let rate = match &self.source {
            Source::Oracle(rates) => rates.get(self.step + k - 1).copied(),
            Source::Model(_) => self.expected.as_ref()?.get(k - 1).copied(),
        }?;
        Some((rate, k as f64 * self.clock.step_secs))
    }

    /// Whether the anomaly detector trusts the forecast now (the oracle always is).
    pub fn trusted(&self) -> bool {
        matches!(self.source, Source::Oracle(_)) || self.detector.trustworthy(self.clock.next_time)
    }

    /// The forecaster's name and state.
    pub fn forecaster_name(&self) -> String {
        match &self.source {
            Source::Model(f) => f.name(),
            Source::Oracle(_) => "oracle".into(),
        }
    }

    /// The candidates the forecaster chose among (`auto`), best (the one in use) first.
    pub fn forecaster_candidates(&self) -> Vec<foresight_forecast::Candidate> {
        match &self.source {
            Source::Model(f) => f.candidates(),
            Source::Oracle(_) => Vec::new(),
        }
    }

    /// Steps observed.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// A warm start: `requests` (per live step, oldest first) are the steps just before the
    /// first one to be observed; the forecaster observes them at the model times before the
    /// clock's next step (where a history already fed it, they replace its last steps: the
    /// models restart their windows at the jump back) and forecasts again. Before the first
    /// step only; later calls are ignored.
    pub fn warm(&mut self, requests: &[f64]) {
        self.warm_with(requests, &vec![Vec::new(); requests.len()]);
    }

    /// [`Planner::warm`] for a forecaster trained with features: `features[i]` is step i's row.
    pub fn warm_with(&mut self, requests: &[f64], features: &[Vec<f64>]) {
        if self.step > 0 || requests.is_empty() || features.len() != requests.len() {
            return;
        }
        let Source::Model(forecaster) = &mut self.source else {
            return;
        };
        let n = requests.len() as i64;
        for (i, r) in requests.iter().enumerate() {
            let t = self.clock.next_time - (n - i as i64) * self.clock.model_step;
            forecaster.observe(t, r.max(0.0) * self.clock.to_model, &features[i]);
        }
        self.warmed = requests.len();
        self.pending.clear();
        self.windows.clear();
        self.refresh();
    }

    /// While the forecaster has no forecast for lack of history: (contiguous steps it has
    /// from the warm start and live steps, steps it needs). `None` once it forecasts, for the
    /// oracle, and when history is not what it lacks (an LSTM still training).
    pub fn warming(&self) -> Option<(usize, usize)> {
        let Source::Model(forecaster) = &self.source else {
            return None;
        };
        let needed = forecaster.history_needed();
        let have = self.warmed + self.step;
        (self.current.is_none() && have < needed).then_some((have, needed))
    }

    /// The forecasts made at the lead, when recording.
    pub fn recorded(&self) -> &[(f64, f64)] {
        self.recorded.as_deref().unwrap_or(&[])
    }
}

/// The `q` quantile of the realised errors, never below zero; zero until
/// [`BAND_MIN_POINTS`] errors are known.
pub(crate) fn upper_band(residuals: &VecDeque<f64>, q: f64) -> f64 {
    if residuals.len() < BAND_MIN_POINTS {
        return 0.0;
    }
    let mut v: Vec<f64> = residuals.iter().copied().collect();
    v.sort_by(f64::total_cmp);
    let k = ((v.len() - 1) as f64 * q).round() as usize;
    v[k].max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TAIL_SHARE;
    use foresight_forecast::Persistence;

    fn clock(step_secs: f64, model_step: i64, to_model: f64) -> StepClock {
        StepClock {
            step_secs,
            next_time: 0,
            model_step,
            to_model,
        }
    }

    #[test]
    fn a_warm_start_fills_the_window_and_says_how_far_it_is() {
        let ma = || Box::new(foresight_forecast::MovingAverage::new(60, 5));
        // Compressed time: 1-s live steps are 60-s model steps, 2 model units per request.
        let mut p = Planner::new(ma(), 3, 1, clock(1.0, 60, 2.0));
        assert_eq!(p.warming(), Some((0, 5)));
        assert!(p.forecast(0.0).is_none());
        p.warm(&[10.0, 10.0, 10.0]);
        assert_eq!(
            p.warming(),
            Some((3, 5)),
            "three of five steps from the warm start"
        );
        p.observe(10.0);
        p.observe(10.0);
        assert_eq!(p.warming(), None);
        let fc = p.forecast(0.0).unwrap();
        assert!(
            (fc[0].1 - 10.0).abs() < 1e-9,
            "{fc:?}: 10 requests a 1-s step"
        );

        let mut p = Planner::new(ma(), 3, 1, clock(1.0, 60, 2.0));
        p.warm(&[4.0, 6.0, 8.0, 10.0, 12.0]);
        assert_eq!(p.warming(), None);
        let fc = p.forecast(0.0).unwrap();
        assert!(
            (fc[0].1 - 8.0).abs() < 1e-9,
            "forecast before any live step: {fc:?}"
        );
        // Only before the first step.
        p.observe(0.0);
        p.warm(&[100.0; 5]);
        assert!(p.forecast(0.0).unwrap()[0].1 < 10.0);
    }

    #[test]
    fn converts_units_and_times() {
        // One live second = one model minute; a live request = 2 model units.
        let mut p = Planner::new(Box::new(Persistence::new()), 3, 2, clock(1.0, 60, 2.0));
        assert!(p.forecast(0.0).is_none());
        p.observe(50.0);
        let f = p.forecast(0.25).unwrap();
        assert_eq!(f.len(), 3);
        assert!(
            (f[0].0 - 0.75).abs() < 1e-9 && (f[0].1 - 50.0).abs() < 1e-9,
            "{f:?}"
        );
        assert!((f[2].0 - 2.75).abs() < 1e-9);
        assert_eq!(p.steps(), 1);
        assert!(p.trusted());
    }

    #[test]
    fn band_grows_with_underforecasts() {
        let mut p = Planner::new(Box::new(Persistence::new()), 1, 1, clock(1.0, 60, 1.0));
        // A rising series: persistence is always 10 short.
        for i in 0..60 {
            p.observe(100.0 + 10.0 * i as f64);
        }
        let last = 100.0 + 10.0 * 59.0;
        let f = p.forecast(0.0).unwrap();
        assert!((f[0].1 - (last + 10.0)).abs() < 1e-6, "{f:?}");
    }

    #[test]
    fn the_quantile_sets_the_band() {
        // A two-step mean of 100, 140, 100, …: 120, errors alternate −20 and +20: the 0.95
        // band 20, q=0 → 0 (never below zero). The plan is flat, so no widening helps.
        let run = |q: f64| {
            let ma = foresight_forecast::MovingAverage::new(60, 2);
            let mut p = Planner::new(Box::new(ma), 1, 1, clock(1.0, 60, 1.0)).with_quantile(q);
            for i in 0..100 {
                p.observe(if i % 2 == 0 { 100.0 } else { 140.0 });
            }
            assert_eq!(p.widening(), 0);
            p.forecast(0.0).unwrap()[0].1 - p.expected().unwrap()[0]
        };
        assert!((run(0.95) - 20.0).abs() < 1e-9);
        assert!(run(0.0).abs() < 1e-9);
        assert!(run(0.95) >= run(0.6));
    }

    #[test]
    fn the_tail_share_holds_headroom_for_spikes_the_band_leaves_out() {
        // A moving average of 100-request steps in which every 25th is 600: the 0.95 band of
        // the step errors is small, yet the spikes are 17% of the load: the margin is the
        // largest allowed, the plan twice the mean of 120.
        let run = |share: f64| {
            let ma = foresight_forecast::MovingAverage::new(60, 50);
            let mut p =
                Planner::new(Box::new(ma), 1, 1, clock(1.0, 60, 1.0)).with_tail_share(share);
            for i in 0..2000 {
                p.observe(if i % 25 == 0 { 600.0 } else { 100.0 });
            }
            (p.forecast(0.0).unwrap()[0].1, p.tail_margin())
        };
        let (off, none) = run(0.0);
        let (on, margin) = run(TAIL_SHARE);
        assert_eq!(none, 0.0);
        assert!(off < 150.0, "the quantile band alone: {off}");
        assert!(
            margin == crate::tail::MAX_MARGIN && on > 200.0,
            "tail band: {margin}, plan {on}"
        );
    }

    /// A quantile forecaster: the median is the last value, the 0.9 curve 20% above it.
    struct Quantiles(Option<f64>);

    impl Forecaster for Quantiles {
        fn name(&self) -> String {
            "q".into()
        }
        fn observe(&mut self, _time: i64, value: f64, _features: &[f64]) {
            self.0 = Some(value);
        }
        fn forecast(&mut self, horizon: usize) -> Option<Vec<f64>> {
            self.0.map(|v| vec![v; horizon])
        }
        fn quantiles(&self) -> Vec<f64> {
            vec![0.5, 0.9]
        }
        fn forecast_quantiles(&mut self, horizon: usize) -> Option<Vec<Vec<f64>>> {
            self.0
                .map(|v| vec![vec![v; horizon], vec![1.2 * v; horizon]])
        }
    }

    #[test]
    fn a_quantile_forecaster_plans_on_its_own_curve() {
        let plan = |q: f64| {
            let mut p =
                Planner::new(Box::new(Quantiles(None)), 2, 1, clock(1.0, 60, 1.0)).with_quantile(q);
            p.observe(100.0);
            (p.forecast(0.0).unwrap()[0].1, p.expected().unwrap()[0])
        };
        assert_eq!(
            plan(0.9),
            (120.0, 100.0),
            "the 0.9 curve, the median as expected"
        );
        assert_eq!(plan(0.5), (100.0, 100.0));
        assert_eq!(plan(0.95), (120.0, 100.0), "above its highest: the highest");
        // A calibrated curve gets no band: steady load never exceeds the 0.9 curve.
        let mut p =
            Planner::new(Box::new(Quantiles(None)), 1, 1, clock(1.0, 60, 1.0)).with_quantile(0.9);
        for _ in 0..100 {
            p.observe(100.0);
        }
        assert_eq!(p.forecast(0.0).unwrap()[0].1, 120.0);
    }

    /// Foresees a burst of 200 at every tenth minute, 100 otherwise.
    struct Bursts(Option<i64>);

    impl Forecaster for Bursts {
        fn name(&self) -> String {
            "bursts".into()
        }
        fn observe(&mut self, time: i64, _value: f64, _features: &[f64]) {
            self.0 = Some(time);
        }
        fn forecast(&mut self, horizon: usize) -> Option<Vec<f64>> {
            let next = self.0? / 60 + 1;
            Some(
                (0..horizon as i64)
                    .map(|i| if (next + i) % 10 == 0 { 200.0 } else { 100.0 })
                    .collect(),
            )
        }
    }

    #[test]
    fn a_burst_inside_the_provisioned_window_is_no_anomaly() {
        // Every burst comes one minute earlier than foreseen.
        let run = |margin: usize| {
            let mut p = Planner::new(Box::new(Bursts(None)), 5, 2, clock(60.0, 60, 1.0))
                .with_margin_steps(margin);
            let mut distrusted = 0;
            for i in 0..200i64 {
                let noise = ((i * 7919) % 7) as f64 - 3.0;
                p.observe(if i % 10 == 9 { 200.0 } else { 100.0 + noise });
                distrusted += usize::from(!p.trusted());
            }
            distrusted
        };
        assert_eq!(run(1), 0, "the plan for the minute before covered it");
        assert!(
            run(0) > 50,
            "judged minute by minute, every burst is a surprise"
        );
    }

    #[test]
    fn a_warm_forecaster_plans_before_the_first_step() {
        let mut f = Persistence::new();
        f.observe(0, 30.0, &[]);
        let p = Planner::new(Box::new(f), 2, 1, clock(60.0, 60, 1.0));
        let fc = p.forecast(15.0).expect("a forecast at once");
        assert_eq!(
            fc[0],
            (45.0, 0.5),
            "30 per minute = 0.5 req/s, 45 s from now"
        );
    }

    #[test]
    fn the_oracle_reads_the_future_and_is_trusted() {
        let rates: Vec<f64> = (0..20).map(|k| k as f64).collect();
        let mut p = Planner::oracle(rates, 3, 3, clock(60.0, 60, 1.0));
        let f = p.forecast(15.0).unwrap();
        assert_eq!(f.len(), ORACLE_MIN_STEPS);
        assert_eq!(f[0], (45.0, 0.0));
        p.observe(123.0);
        let f = p.forecast(0.0).unwrap();
        assert_eq!(f[0], (60.0, 1.0));
        assert_eq!(f[2], (180.0, 3.0));
        assert!(p.trusted());
        assert_eq!(p.forecaster_name(), "oracle");
    }
}
