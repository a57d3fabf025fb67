//! One forecaster's answers, computed once and replayed to every copy fed the same steps.
//!
//! The experiment replays one trace under many policies and sweep points, and every
//! forecast-driven run feeds its forecaster the same observations (the simulator's arrivals do
//! not depend on the policy) and asks it the same questions: all but the first would recompute
//! what the first already knows, and for the LSTM that was a third of a suite's time. A
//! [`Memo`] is the log of every call made on such a forecaster with its answer. Each copy
//! ([`Memoised`]) keeps a forecaster of its own, which observes every step (cheap), walks the
//! log with a cursor, and takes a forecast from the log while its calls match it; the first
//! copy to get that far works the forecast out on its own forecaster and logs it. A copy whose
//! calls differ from the log (another trace, another horizon) goes on alone, its forecaster
//! already fed its own steps. Nothing waits for another copy: two copies abreast both compute.
//!
//! So a copy's answers are always exactly what its own forecaster would have given, for
//! forecasters whose answers depend only on what they observed, not on what they were asked
//! before (every forecaster here: none draws random numbers, reads a clock or learns while
//! forecasting; the online learner, which retrains, is not memoised).

use std::sync::{Arc, Mutex, MutexGuard};

use crate::model::{Candidate, Forecaster};

/// One call on a forecaster, as the log compares them (values by their bits).
#[derive(Clone, Debug)]
enum Call {
    Observe(i64, f64, Vec<f64>),
    Forecast(usize),
    Quantiles(usize),
}

impl Call {
    fn same(&self, other: &Call) -> bool {
        let same_bits = |a: &f64, b: &f64| a.to_bits() == b.to_bits();
        match (self, other) {
            (Call::Observe(t, v, f), Call::Observe(u, w, g)) => {
                t == u
                    && same_bits(v, w)
                    && f.len() == g.len()
                    && f.iter().zip(g).all(|(a, b)| same_bits(a, b))
            }
            (Call::Forecast(a), Call::Forecast(b)) | (Call::Quantiles(a), Call::Quantiles(b)) => {
                a == b
            }
            _ => false,
        }
    }

    fn apply(&self, f: &mut dyn Forecaster) -> Answer {
        match self {
            Call::Observe(t, v, feats) => {
                f.observe(*t, *v, feats);
                Answer::None
            }
            Call::Forecast(h) => Answer::Curve(f.forecast(*h)),
            Call::Quantiles(h) => Answer::Curves(f.forecast_quantiles(*h)),
        }
    }
}

/// What a call returned.
#[derive(Clone, Debug)]
enum Answer {
    None,
    Curve(Option<Vec<f64>>),
    Curves(Option<Vec<Vec<f64>>>),
}

/// The log of calls and answers, shared by the copies.
#[derive(Debug, Default)]
pub struct Memo {
    log: Mutex<Vec<(Call, Answer)>>,
}

impl Memo {
    /// An empty log.
    pub fn new() -> Arc<Memo> {
        Arc::new(Memo::default())
    }

    /// `forecaster` (fresh: it has observed nothing), answering from the log.
    pub fn handle(self: &Arc<Memo>, forecaster: Box<dyn Forecaster + Send>) -> Memoised {
        Memoised {
            own: forecaster,
            memo: Arc::clone(self),
            cursor: 0,
            alone: false,
        }
    }

    /// Calls logged so far.
    pub fn len(&self) -> usize {
        self.log().len()
    }

    /// Whether nothing has been logged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn log(&self) -> MutexGuard<'_, Vec<(Call, Answer)>> {
        // Entries are pushed whole: a panic elsewhere cannot leave one half-written.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A forecaster answering from a [`Memo`] (see the module's documentation).
pub struct Memoised {
    own: Box<dyn Forecaster + Send>,
    memo: Arc<Memo>,
    /// How many of the log's calls this copy has made.
    cursor: usize,
    /// Its calls left the log's: it answers on its own from now on.
    alone: bool,
}

impl Memoised {
    /// Whether this copy has left the log and forecasts on its own.
    pub fn is_alone(&self) -> bool {
        self.alone
    }

    fn call(&mut self, call: Call) -> Answer {
        if self.alone {
            return call.apply(self.own.as_mut());
        }
        let logged = match self.memo.log().get(self.cursor) {
            Some((c, a)) if c.same(&call) => Some(a.clone()),
            Some(_) => {
                self.alone = true;
                None
            }
            None => None,
        };
        if let Some(answer) = logged {
            self.cursor += 1;
            if let Call::Observe(..) = call {
                call.apply(self.own.as_mut());
            }
            return answer;
        }
        let answer = call.apply(self.own.as_mut());
        if !self.alone {
            let mut log = self.memo.log();
            match log.get(self.cursor) {
                None => log.push((call, answer.clone())),
                // Another copy abreast logged the same call meanwhile (the same answer).
                Some((c, _)) if c.same(&call) => {}
                Some(_) => self.alone = true,
            }
            self.cursor += 1;
        }
        answer
    }
}

impl Forecaster for Memoised {
    fn name(&self) -> String {
        self.own.name()
    }

    fn observe(&mut self, time: i64, value: f64, features: &[f64]) {
        self.call(Call::Observe(time, value, features.to_vec()));
    }

    fn forecast(&mut self, horizon: usize) -> Option<Vec<f64>> {
        match self.call(Call::Forecast(horizon)) {
            Answer::Curve(c) => c,
            _ => unreachable!("a forecast call is answered with a curve"),
        }
    }

    fn history_needed(&self) -> usize {
        self.own.history_needed()
    }

    fn quantiles(&self) -> Vec<f64> {
        self.own.quantiles()
    }

    fn forecast_quantiles(&mut self, horizon: usize) -> Option<Vec<Vec<f64>>> {
        match self.call(Call::Quantiles(horizon)) {
            Answer::Curves(c) => c,
            _ => unreachable!("a quantiles call is answered with curves"),
        }
    }

    fn candidates(&self) -> Vec<Candidate> {
        self.own.candidates()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Forecasts the sum of what it observed, for `horizon` steps, and counts its forecasts.
    struct Sum {
        total: f64,
        calls: Arc<AtomicUsize>,
    }

    impl Forecaster for Sum {
        fn name(&self) -> String {
            "sum".into()
        }
        fn observe(&mut self, _time: i64, value: f64, _features: &[f64]) {
            self.total += value;
        }
        fn forecast(&mut self, horizon: usize) -> Option<Vec<f64>> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            Some(vec![self.total; horizon])
        }
        fn quantiles(&self) -> Vec<f64> {
            vec![0.5, 0.9]
        }
        fn forecast_quantiles(&mut self, horizon: usize) -> Option<Vec<Vec<f64>>> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            Some(vec![
                vec![self.total; horizon],
                vec![2.0 * self.total; horizon],
            ])
        }
    }

    /// A memo and a maker of fresh forecasters counting into one counter.
    fn memo() -> (
        Arc<Memo>,
        impl Fn() -> Box<dyn Forecaster + Send>,
        Arc<AtomicUsize>,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let make = move || -> Box<dyn Forecaster + Send> {
            Box::new(Sum {
                total: 0.0,
                calls: Arc::clone(&c),
            })
        };
        (Memo::new(), make, calls)
    }

    fn drive(f: &mut dyn Forecaster, values: &[f64]) -> Vec<(Vec<f64>, Vec<Vec<f64>>)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                f.observe(i as i64 * 60, *v, &[]);
                (f.forecast(3).unwrap(), f.forecast_quantiles(2).unwrap())
            })
            .collect()
    }

    #[test]
    fn copies_fed_the_same_steps_share_one_forecasters_work() {
        let (memo, make, calls) = memo();
        let values = [1.0, 2.0, 3.0, 4.0];
        let first = drive(&mut memo.handle(make()), &values);
        assert_eq!(calls.load(Ordering::Relaxed), 8);
        for _ in 0..3 {
            let mut h = memo.handle(make());
            assert_eq!(drive(&mut h, &values), first);
            assert!(!h.is_alone());
        }
        let computed = calls.load(Ordering::Relaxed);
        assert_eq!(computed, 8, "the copies computed nothing");
        assert_eq!(memo.len(), 12);
        assert_eq!(first[3].1[1], vec![20.0, 20.0]);
    }

    #[test]
    fn a_copy_whose_steps_differ_goes_on_alone_with_exact_answers() {
        let (memo, make, _) = memo();
        drive(&mut memo.handle(make()), &[1.0, 2.0, 3.0, 4.0]);
        let mut h = memo.handle(make());
        // The same first two steps, then another value.
        let got = drive(&mut h, &[1.0, 2.0, 30.0, 4.0]);
        assert!(h.is_alone());
        assert_eq!(got, drive(make().as_mut(), &[1.0, 2.0, 30.0, 4.0]));
        assert_eq!(got[3].0, vec![37.0; 3]);
        // A horizon the log never saw.
        let mut other = memo.handle(make());
        other.observe(0, 1.0, &[]);
        assert_eq!(other.forecast(5), Some(vec![1.0; 5]));
        assert!(other.is_alone());
        assert_eq!(memo.len(), 12, "the log is the first copy's alone");
        // The same value with another feature row (or NaN, compared by its bits).
        for feats in [&[1.0][..], &[f64::NAN][..]] {
            let mut h = memo.handle(make());
            h.observe(0, 1.0, feats);
            assert!(h.is_alone(), "{feats:?}");
        }
    }

    #[test]
    fn copies_on_four_threads_answer_as_their_own_forecasters_would() {
        let (memo, make, calls) = memo();
        let values: Vec<f64> = (0..500).map(|i| (i % 7) as f64).collect();
        let want = drive(make().as_mut(), &values);
        calls.store(0, Ordering::Relaxed);
        std::thread::scope(|s| {
            for _ in 0..4 {
                let h = memo.handle(make());
                let (values, want) = (&values, &want);
                s.spawn(move || {
                    let mut h = h;
                    assert_eq!(&drive(&mut h, values), want);
                    assert!(!h.is_alone());
                });
            }
        });
        // Copies abreast both compute; none waits, and the log holds each call once.
        let computed = calls.load(Ordering::Relaxed);
        assert!((1000..=4000).contains(&computed), "{computed}");
        assert_eq!(memo.len(), 1500);
    }
}
