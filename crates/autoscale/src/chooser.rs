//! `auto` in the live loop: the forecaster is chosen on the most recent history, as the
//! experiment chooses it on a trace's validation part ([`Fitted::choose`]), in a background
//! thread, and chosen again at every retraining. Until the first choice is made (too little
//! history yet, or the fit still running) it plans with an interim forecaster (the moving
//! average); a fit that fails keeps what plans now and is retried at the next retraining.

use std::collections::VecDeque;
use std::thread::JoinHandle;

use foresight_forecast::{
    Candidate, Dataset, ForecastConfig, Forecaster, Lstm, RetrainPolicy, Series,
};

use crate::{Fitted, Planning};

/// Steps of history kept to fit on when no retraining policy says (a week of minutes).
const DEFAULT_MAX_HISTORY: usize = 7 * 24 * 60;

/// What a fit produces: the choice, fitted, or why there is none.
type Job = JoinHandle<Result<Fitted, String>>;

/// `auto`, live.
pub struct Chooser {
    cfg: ForecastConfig,
    plan: Planning,
    retrain: Option<RetrainPolicy>,
    min_history: usize,
    step: i64,
    /// (time, value) of the recent steps, oldest first.
    history: VecDeque<(i64, f64)>,
    /// What plans now: the interim forecaster, then the latest choice.
    current: Box<dyn Forecaster + Send>,
    /// The latest choice's name and every candidate's score, best first.
    choice: Option<(String, Vec<Candidate>)>,
    /// A model from a file, the LSTM candidate of the first fit (later ones train their own).
    lstm: Option<Lstm>,
    job: Option<Job>,
    /// Data time of the last fit's start.
    last_start: Option<i64>,
    fits: u64,
    last_failure: Option<String>,
    /// Fed the history before the first live step: no fit until all of it is in.
    warming: bool,
}

impl Chooser {
    /// A chooser of forecasters for steps of `step` seconds that plans like `plan`, fits
    /// once `min_history` steps have been seen (at once, in the background, if the history
    /// fed before the first step already holds them), and fits again every
    /// `retrain.every_secs` of data time on the last `retrain.max_history` steps. `interim`
    /// plans until the first choice; `lstm`, when given, is the LSTM candidate of that
    /// first choice (else an LSTM is trained with `cfg.lstm`).
    pub fn new(
        cfg: ForecastConfig,
        plan: Planning,
        step: i64,
        interim: Box<dyn Forecaster + Send>,
        lstm: Option<Lstm>,
        retrain: Option<RetrainPolicy>,
        min_history: usize,
    ) -> Chooser {
        Chooser {
            cfg,
            plan,
            retrain,
            min_history: min_history.max(2),
            step,
            history: VecDeque::new(),
            current: interim,
            choice: None,
            lstm,
            job: None,
            last_start: None,
            fits: 0,
            last_failure: None,
            warming: false,
        }
    }

    /// Feeds the steps before the first live one (oldest first) and then, if they are
    /// enough, starts the first fit on all of them (not on the first `min_history`).
    pub fn warm(&mut self, history: &[(i64, f64)]) {
        let Some(last) = history.last() else { return };
        self.warming = true;
        for (t, v) in history {
            self.observe(*t, *v, &[]);
        }
        self.warming = false;
        self.maybe_start(last.0);
    }

    /// How many choices have been made (and swapped in).
    pub fn fits(&self) -> u64 {
        self.fits
    }

    /// Whether a fit is running.
    pub fn fitting(&self) -> bool {
        self.job.is_some()
    }

    /// Why the last fit produced nothing, if it did.
    pub fn last_failure(&self) -> Option<&str> {
        self.last_failure.as_deref()
    }

    /// Waits for a running fit and swaps its choice in (tests, and a driver that must not
    /// step before the choice, such as a replay).
    pub fn wait(&mut self) {
        if let Some(job) = self.job.take() {
            let result = job.join();
            self.finish(result);
        }
    }

    fn max_history(&self) -> usize {
        self.retrain
            .map_or(DEFAULT_MAX_HISTORY, |r| r.max_history)
            .max(self.min_history)
    }

    /// Starts a fit when none runs, the history is long enough, and none was made yet or
    /// the retraining period has passed since the last one started.
    fn maybe_start(&mut self, now: i64) {
        if self.warming || self.job.is_some() || self.history.len() < self.min_history {
            return;
        }
        let due = match (self.last_start, self.retrain) {
            (None, _) => true,
            (Some(last), Some(r)) => now - last >= r.every_secs,
            (Some(_), None) => false,
        };
        if !due {
            return;
        }
        self.last_start = Some(now);
        let series = self.series();
        let (cfg, plan, lstm) = (self.cfg.clone(), self.plan, self.lstm.take());
        let job = std::thread::Builder::new()
            .name("foresight-auto".into())
            .spawn(move || {
                let ds = Dataset::for_retraining(series, &cfg.data).map_err(|e| e.to_string())?;
                Fitted::choose(&ds, &cfg, &plan, lstm, |_| {})
            });
        match job {
            Ok(h) => self.job = Some(h),
            Err(e) => self.last_failure = Some(format!("cannot start the fitting thread: {e}")),
        }
    }

    /// The kept history as a series of `step` seconds, its missing steps as gaps.
    fn series(&self) -> Series {
        let start = self.history.front().map_or(0, |p| p.0);
        let last = self.history.back().map_or(start, |p| p.0);
        let len = ((last - start) / self.step + 1).max(0) as usize;
        let mut values = vec![None; len];
        for (t, v) in &self.history {
            let i = ((t - start) / self.step) as usize;
            if let Some(slot) = values.get_mut(i) {
                *slot = Some(*v);
            }
        }
        Series {
            start,
            step: self.step,
            values,
            features: Vec::new(),
        }
    }

    fn collect(&mut self) {
        if self.job.as_ref().is_some_and(|h| h.is_finished()) {
            let result = self.job.take().expect("checked").join();
            self.finish(result);
        }
    }

    fn finish(&mut self, result: std::thread::Result<Result<Fitted, String>>) {
        match result {
            Ok(Ok(fitted)) => {
                let mut model = fitted.instance(self.step);
                // Everything seen, including the steps that came during the fit.
                for (t, v) in &self.history {
                    model.observe(*t, *v, &[]);
                }
                let (name, scores) = fitted
                    .choice()
                    .map(|(n, s)| (n.to_string(), s.to_vec()))
                    .unwrap_or_else(|| (model.name(), Vec::new()));
                let candidates: Vec<Candidate> = scores
                    .iter()
                    .map(|s| Candidate {
                        name: s.name.clone(),
                        pinball: s.pinball,
                        coverage: s.coverage,
                        windows: s.windows,
                    })
                    .collect();
                tracing::info!(
                    choice = %name,
                    scores = %candidates
                        .iter()
                        .map(|c| format!("{}={:.3}", c.name, c.pinball))
                        .collect::<Vec<_>>()
                        .join(" "),
                    steps = self.history.len(),
                    "auto chose a forecaster on the recent history (pinball loss at the planned quantile, best first)"
                );
                self.current = model;
                self.choice = Some((name, candidates));
                self.fits += 1;
                self.last_failure = None;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "auto could not choose a forecaster; keeping the one that plans now");
                self.last_failure = Some(e);
            }
            Err(_) => self.last_failure = Some("the fitting thread panicked".into()),
        }
    }
}

impl Forecaster for Chooser {
    fn name(&self) -> String {
        let mut s = match &self.choice {
            Some((name, _)) if self.fits == 1 => format!("auto: {name} (chosen once"),
            Some((name, _)) => format!("auto: {name} (chosen {} times", self.fits),
            None => format!(
                "auto: {} until chosen ({} of {} steps of history",
                self.current.name(),
                self.history.len().min(self.min_history),
                self.min_history
            ),
        };
        if self.job.is_some() {
            s.push_str("; choosing");
        }
        if let Some(e) = &self.last_failure {
            s.push_str("; last choice failed: ");
            s.push_str(e);
        }
        s.push(')');
        s
    }

    fn observe(&mut self, time: i64, value: f64, features: &[f64]) {
        self.current.observe(time, value, features);
        if self.history.back().is_some_and(|p| time <= p.0) {
            // Time went back (a restarted source): the kept history no longer precedes it.
            self.history.clear();
        }
        if self.history.len() == self.max_history() {
            self.history.pop_front();
        }
        self.history.push_back((time, value));
        self.collect();
        self.maybe_start(time);
    }

    fn forecast(&mut self, horizon: usize) -> Option<Vec<f64>> {
        self.current.forecast(horizon)
    }

    fn history_needed(&self) -> usize {
        self.current.history_needed()
    }

    fn quantiles(&self) -> Vec<f64> {
        self.current.quantiles()
    }

    fn forecast_quantiles(&mut self, horizon: usize) -> Option<Vec<Vec<f64>>> {
        self.current.forecast_quantiles(horizon)
    }

    fn candidates(&self) -> Vec<Candidate> {
        self.choice.as_ref().map_or_else(Vec::new, |c| c.1.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foresight_forecast::MovingAverage;

    /// A flat 100 per minute with a burst of 600 at minute 10 of every hour.
    fn value(i: i64) -> f64 {
        if i % 60 == 10 {
            600.0
        } else {
            100.0 + (i % 7) as f64
        }
    }

    fn chooser(retrain: Option<RetrainPolicy>) -> Chooser {
        let (cfg, plan) = crate::fit::tests::tiny();
        Chooser::new(
            cfg,
            plan,
            60,
            Box::new(MovingAverage::new(60, 5)),
            None,
            retrain,
            2 * 1440,
        )
    }

    #[test]
    fn plans_with_the_interim_until_enough_history_then_chooses_what_sees_the_bursts() {
        let start = 1_700_000_000 / 3600 * 3600;
        let mut c = chooser(Some(RetrainPolicy {
            every_secs: 1440 * 60,
            max_history: 3 * 1440,
        }));
        for i in 0..100 {
            c.observe(start + i * 60, value(i), &[]);
        }
        assert!(
            c.name()
                .starts_with("auto: moving-average until chosen (100 of 2880"),
            "{}",
            c.name()
        );
        assert!(c.candidates().is_empty());
        for i in 100..2 * 1440 {
            c.observe(start + i * 60, value(i), &[]);
        }
        assert!(c.fitting(), "{}", c.name());
        c.wait();
        assert_eq!(c.fits(), 1, "{}", c.name());
        let best = c.candidates();
        assert!(best[0].name.contains("seasonal-quantile-hour"), "{best:?}");
        assert!(c.name().starts_with("auto: "), "{}", c.name());
        assert!(best.windows(2).all(|w| w[0].pinball <= w[1].pinball));
        // The choice was fed everything seen: the burst, 10 steps after minute 0, is planned.
        let mut i = 2 * 1440;
        while i % 60 != 0 {
            c.observe(start + i * 60, value(i), &[]);
            i += 1;
        }
        let fc = c.forecast(12).expect("the choice forecasts at once");
        assert!(fc[10] > 500.0 && fc[5] < 200.0, "{fc:?}");
        // A day of data time later it chooses again, on the last three days at most.
        let until = i + 1440;
        while i < until {
            c.observe(start + i * 60, value(i), &[]);
            i += 1;
        }
        assert!(c.fitting(), "{}", c.name());
        c.wait();
        assert_eq!(c.fits(), 2);
        assert!(c.history.len() <= 3 * 1440);
    }

    #[test]
    fn a_warm_history_is_chosen_on_whole() {
        let start = 1_700_000_000 / 3600 * 3600;
        let mut c = chooser(None);
        let history: Vec<(i64, f64)> = (0..3 * 1440).map(|i| (start + i * 60, value(i))).collect();
        c.warm(&history);
        assert!(c.fitting(), "{}", c.name());
        c.wait();
        assert_eq!(c.fits(), 1);
        // Scored on the last 30% of three days, not of the first two.
        let windows = c.candidates()[0].windows;
        assert!(windows > 1200, "{windows}");
    }

    #[test]
    fn without_retraining_it_chooses_once() {
        let start = 1_700_000_000 / 3600 * 3600;
        let mut c = chooser(None);
        for i in 0..2 * 1440 {
            c.observe(start + i * 60, value(i), &[]);
        }
        c.wait();
        assert_eq!(c.fits(), 1, "{}", c.name());
        for i in 2 * 1440..4 * 1440 {
            c.observe(start + i * 60, value(i), &[]);
        }
        assert!(!c.fitting(), "no retraining policy: one fit only");
        assert_eq!(c.fits(), 1);
    }

    #[test]
    fn a_fit_that_fails_keeps_the_interim_and_says_why() {
        let mut c = chooser(None);
        c.min_history = 10;
        for i in 0..10 {
            c.observe(1_700_000_000 + i * 60, value(i), &[]);
        }
        c.wait();
        assert_eq!(c.fits(), 0);
        let why = c
            .last_failure()
            .expect("ten steps are too few to choose on");
        assert!(c.name().contains(why), "{}", c.name());
        assert!(c.name().starts_with("auto: moving-average until chosen"));
        assert!(c.forecast(3).is_some(), "the interim still plans");
    }
}
