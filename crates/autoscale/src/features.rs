//! Feature inputs per forecaster step: the readings taken during a step (one per control
//! interval, e.g. CPU seconds per second from Prometheus) are averaged when the step closes,
//! as `foresight history` and the training reader average a feature over a step.

/// Readings of a fixed list of features, accumulated per step.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureSteps {
    sums: Vec<f64>,
    counts: Vec<u32>,
    last: Vec<Option<f64>>,
}

impl FeatureSteps {
    /// For `n` features, none known yet.
    pub fn new(n: usize) -> FeatureSteps {
        FeatureSteps {
            sums: vec![0.0; n],
            counts: vec![0; n],
            last: vec![None; n],
        }
    }

    /// How many features.
    pub fn len(&self) -> usize {
        self.sums.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sums.is_empty()
    }

    /// One reading of every feature, in order; a missing or non-finite value is no reading
    /// (a failed query, a gap).
    pub fn add(&mut self, readings: &[Option<f64>]) {
        for (k, r) in readings.iter().enumerate().take(self.len()) {
            if let Some(x) = r.filter(|x| x.is_finite()) {
                self.sums[k] += x;
                self.counts[k] += 1;
            }
        }
    }

    /// Closes a step: each feature's mean over the step, or its last known value when the
    /// step had no reading of it; `None` while some feature has never had a value (the
    /// forecaster cannot be fed a row it was not trained on).
    pub fn close(&mut self) -> Option<Vec<f64>> {
        for k in 0..self.len() {
            if self.counts[k] > 0 {
                self.last[k] = Some(self.sums[k] / f64::from(self.counts[k]));
            }
            self.sums[k] = 0.0;
            self.counts[k] = 0;
        }
        self.last.iter().copied().collect()
    }

    /// Takes a row known from before (a warm start's newest) as the last known values.
    pub fn seed(&mut self, row: &[f64]) {
        for (l, x) in self.last.iter_mut().zip(row) {
            if x.is_finite() {
                *l = Some(*x);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_the_mean_of_its_readings_and_a_gap_carries_the_last() {
        let mut f = FeatureSteps::new(2);
        f.add(&[Some(1.0), None]);
        f.add(&[Some(3.0), Some(f64::NAN)]);
        assert_eq!(f.close(), None, "the second feature was never read");
        f.add(&[None, Some(10.0)]);
        assert_eq!(
            f.close(),
            Some(vec![2.0, 10.0]),
            "the first carries its last mean"
        );
        f.add(&[Some(4.0), Some(20.0)]);
        f.add(&[Some(6.0), None]);
        assert_eq!(f.close(), Some(vec![5.0, 20.0]));
        assert_eq!(f.close(), Some(vec![5.0, 20.0]), "a step without readings");
    }

    #[test]
    fn a_seeded_row_counts_as_known() {
        let mut f = FeatureSteps::new(2);
        f.seed(&[0.5, 7.0]);
        f.add(&[Some(1.5), None]);
        assert_eq!(f.close(), Some(vec![1.5, 7.0]));
    }
}
