//! Applying the loop's decisions through the actuator: once per change, only while this
//! replica may (a leader election's gate), with exponential backoff after a failure.

use std::sync::Arc;
use std::time::Duration;

use foresight_actuate::Actuator;
use tokio::time::Instant;

use crate::Gate;

/// Applies decisions through the actuator, at most once per change, with backoff on errors.
pub(crate) struct Act {
    pub actuator: Option<Arc<dyn Actuator>>,
    pub gate: Option<Arc<dyn Gate>>,
    pub applied: Option<usize>,
    pub backoff_until: Option<Instant>,
    pub failures: u32,
    pub max: usize,
}

impl Act {
    /// Applies `replicas` unless already applied or backing off; the error, if it failed.
    pub async fn apply(&mut self, replicas: usize) -> Option<String> {
        let a = self.actuator.as_ref()?;
        if self.gate.as_ref().is_some_and(|g| !g.open()) {
            // Not the leader: apply again once leading, whatever was applied before.
            self.applied = None;
            return None;
        }
        let due = self.backoff_until.is_none_or(|t| Instant::now() >= t);
        if self.applied == Some(replicas) || !due {
            return None;
        }
        match a.apply(replicas.min(self.max)).await {
            Ok(()) => {
                self.applied = Some(replicas);
                self.failures = 0;
                self.backoff_until = None;
                None
            }
            Err(e) => {
                self.failures += 1;
                let wait =
                    Duration::from_secs_f64((0.5 * 2f64.powi(self.failures as i32)).min(60.0));
                tracing::warn!(error = %e, retry_in = ?wait, "actuator failed");
                self.backoff_until = Some(Instant::now() + wait);
                Some(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    use foresight_actuate::{ActuatorError, BoxFuture, PoolState};

    use super::*;

    /// Records every apply; fails while `failing`.
    #[derive(Default)]
    struct Recorder {
        applied: Mutex<Vec<usize>>,
        failing: AtomicBool,
    }

    impl Actuator for Recorder {
        fn name(&self) -> String {
            "recorder".into()
        }
        fn apply(&self, replicas: usize) -> BoxFuture<'_, Result<(), ActuatorError>> {
            self.applied.lock().unwrap().push(replicas);
            let failing = self.failing.load(Ordering::SeqCst);
            Box::pin(async move {
                if failing {
                    Err(ActuatorError::Api {
                        target: "test".into(),
                        message: "down".into(),
                    })
                } else {
                    Ok(())
                }
            })
        }
        fn state(&self) -> BoxFuture<'_, Result<PoolState, ActuatorError>> {
            Box::pin(async { unreachable!() })
        }
    }

    struct Door(AtomicBool);
    impl Gate for Door {
        fn open(&self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
        fn leader(&self) -> Option<String> {
            None
        }
    }

    #[tokio::test(start_paused = true)]
    async fn applies_once_per_change_backs_off_and_waits_for_the_gate() {
        let r = Arc::new(Recorder::default());
        let gate = Arc::new(Door(AtomicBool::new(true)));
        let mut act = Act {
            actuator: Some(r.clone()),
            gate: Some(gate.clone()),
            applied: None,
            backoff_until: None,
            failures: 0,
            max: 5,
        };
        assert_eq!(act.apply(3).await, None);
        assert_eq!(act.apply(3).await, None, "once per change");
        assert_eq!(act.apply(9).await, None);
        assert_eq!(*r.applied.lock().unwrap(), [3, 5], "capped at max");

        // A failure backs off 1 s, then 2 s.
        r.failing.store(true, Ordering::SeqCst);
        assert!(act.apply(4).await.is_some_and(|e| e.contains("down")));
        assert_eq!(act.apply(4).await, None, "backing off");
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(act.apply(4).await.is_some());
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(act.apply(4).await, None, "the second wait is 2 s");
        r.failing.store(false, Ordering::SeqCst);
        tokio::time::advance(Duration::from_millis(600)).await;
        assert_eq!(act.apply(4).await, None);
        assert_eq!(*r.applied.lock().unwrap(), [3, 5, 4, 4, 4]);

        // The gate closed (not the leader): nothing applied; reopened, the count again.
        gate.0.store(false, Ordering::SeqCst);
        assert_eq!(act.apply(2).await, None);
        gate.0.store(true, Ordering::SeqCst);
        assert_eq!(act.apply(4).await, None);
        assert_eq!(*r.applied.lock().unwrap(), [3, 5, 4, 4, 4, 4]);
    }
}
