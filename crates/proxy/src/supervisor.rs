//! The one owner of a server's background work: discovery, the control loops, the pools'
//! clock, reloads on `SIGHUP`. Every such task is spawned through a [`Supervisor`], which at
//! shutdown cancels them all and waits for them within a deadline, so that a task with an
//! orderly end (a control loop stopping its actuator's instances) gets to run it, and the
//! ones that did not end are named in the log.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Spawns background tasks, cancels them together, waits for them.
#[derive(Clone, Default)]
pub struct Supervisor {
    token: CancellationToken,
    tracker: TaskTracker,
    /// The tasks still running, by a number of their own: their names, for the log.
    running: Arc<Mutex<(u64, BTreeMap<u64, String>)>>,
}

impl Supervisor {
    /// A supervisor with nothing running.
    pub fn new() -> Supervisor {
        Supervisor::default()
    }

    /// Runs `work` until it ends or shutdown begins; then it is dropped where it waits (for
    /// work that holds nothing needing an orderly end: a resolver, a ticker).
    pub fn spawn(&self, name: impl Into<String>, work: impl Future<Output = ()> + Send + 'static) {
        let token = self.token.clone();
        self.spawn_with(name, move |_| async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = work => {}
            }
        });
    }

    /// Runs `work(cancelled)`, which ends on its own once `cancelled` fires, doing what an
    /// orderly end needs first (a control loop stops, then its actuator drains and stops the
    /// instances it started).
    pub fn spawn_with<F>(&self, name: impl Into<String>, work: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let id = {
            let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
            r.0 += 1;
            let id = r.0;
            r.1.insert(id, name.into());
            id
        };
        let running = self.running.clone();
        let work = work(self.token.clone());
        self.tracker.spawn(async move {
            work.await;
            running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .1
                .remove(&id);
        });
    }

    /// Fires when shutdown begins.
    pub fn cancelled(&self) -> CancellationToken {
        self.token.clone()
    }

    /// The names of the tasks still running.
    pub fn running(&self) -> Vec<String> {
        let r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        r.1.values().cloned().collect()
    }

    /// Cancels every task and waits up to `grace` for them to end; returns the names of those
    /// that did not (they are left to the runtime's own end).
    pub async fn shutdown(&self, grace: Duration) -> Vec<String> {
        self.token.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
        {
            return Vec::new();
        }
        let left = self.running();
        tracing::warn!(tasks = ?left, ?grace, "background work still running after the grace period");
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn shutdown_cancels_waits_and_names_what_did_not_end() {
        let s = Supervisor::new();
        // Dropped where it waits.
        s.spawn("forever", std::future::pending());
        // An orderly end after the cancellation.
        let ended = Arc::new(AtomicBool::new(false));
        let flag = ended.clone();
        s.spawn_with("orderly", move |cancelled| async move {
            cancelled.cancelled().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            flag.store(true, Ordering::SeqCst);
        });
        // Ends on its own.
        s.spawn("short", async {});
        tokio::task::yield_now().await;
        assert_eq!(s.running(), ["forever", "orderly"]);
        assert!(s.shutdown(Duration::from_secs(5)).await.is_empty());
        assert!(ended.load(Ordering::SeqCst));
        assert!(s.running().is_empty());

        // One that ignores the cancellation outlives the grace and is named.
        let s = Supervisor::new();
        s.spawn_with("stubborn", |_| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        assert_eq!(s.shutdown(Duration::from_millis(100)).await, ["stubborn"]);
    }
}
