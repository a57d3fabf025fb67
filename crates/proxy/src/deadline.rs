//! The request timeout without a timer per request.
//!
//! `tokio::time::timeout` around every exchange arms a timer (a clock read, a lock, a wheel
//! insert) and removes it again when the response comes first, as it nearly always does:
//! 2.4% of the proxy's user-space instructions per request (`bench/instructions-per-request.sh`
//! with and without it). Here an exchange only stores its deadline in its upstream
//! connection's [`Watch`] and clears it when the response head arrives; one sweeper task per
//! proxy looks at every connection a few times per timeout, marks an exchange past its deadline
//! expired and wakes the request's task, where [`Cut`] ends the exchange; the request path
//! reports a timeout (504) and drops the connection.
//!
//! Precision: a request times out between its deadline and one tick later, a tenth of the
//! timeout (between 5 ms and 250 ms).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;

/// No exchange in progress (and the deadline of one that has none).
pub(crate) const NONE: u64 = u64::MAX;

/// The deadlines of every upstream connection of one proxy.
pub(crate) struct Deadlines {
    origin: Instant,
    watches: Mutex<Vec<Weak<Watch>>>,
}

/// One upstream connection's exchange in progress, as the sweeper sees it.
pub(crate) struct Watch {
    /// Milliseconds after the origin at which the exchange is cut off; [`NONE`] when idle.
    deadline_ms: AtomicU64,
    expired: AtomicBool,
    /// The task of the request waiting on the connection, woken when it expires.
    waker: AtomicWaker,
}

impl Deadlines {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Deadlines {
            origin: Instant::now(),
            watches: Mutex::new(Vec::new()),
        })
    }

    /// How often the sweeper looks for a request `timeout`.
    pub(crate) fn tick(timeout: Duration) -> Duration {
        (timeout / 10).clamp(Duration::from_millis(5), Duration::from_millis(250))
    }

    /// A watch for a new connection.
    pub(crate) fn watch(&self) -> Arc<Watch> {
        let w = Arc::new(Watch {
            deadline_ms: AtomicU64::new(NONE),
            expired: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        if let Ok(mut all) = self.watches.lock() {
            all.push(Arc::downgrade(&w));
        }
        w
    }

    /// The deadline of an exchange for a request that started at `started`.
    pub(crate) fn deadline(&self, started: Instant, timeout: Duration) -> u64 {
        let at = started.saturating_duration_since(self.origin) + timeout;
        u64::try_from(at.as_millis()).unwrap_or(NONE - 1)
    }

    /// Expires every exchange past its deadline and forgets closed connections.
    pub(crate) fn sweep(&self) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(NONE - 1);
        let Ok(mut all) = self.watches.lock() else {
            return;
        };
        all.retain(|w| match w.upgrade() {
            Some(w) => {
                if w.deadline_ms.load(Ordering::Acquire) <= now {
                    w.expired.store(true, Ordering::Release);
                    w.waker.wake();
                }
                true
            }
            None => false,
        });
    }

    /// Sweeps every `tick` while anyone holds the deadlines and `owner` lives.
    pub(crate) async fn run(me: Weak<Deadlines>, owner: Weak<()>, tick: Duration) {
        let mut every = tokio::time::interval(tick);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if owner.strong_count() == 0 {
                return; // its forwarder is gone (a reload replaced it)
            }
            match me.upgrade() {
                Some(d) => d.sweep(),
                None => return,
            }
        }
    }
}

impl Watch {
    /// An exchange starts: cut it off at `deadline_ms` (from [`Deadlines::deadline`]).
    pub(crate) fn arm(&self, deadline_ms: u64) {
        self.deadline_ms.store(deadline_ms, Ordering::Release);
    }

    /// The response head arrived.
    pub(crate) fn disarm(&self) {
        self.deadline_ms.store(NONE, Ordering::Release);
    }

    /// Whether the sweeper cut the connection off.
    pub(crate) fn expired(&self) -> bool {
        self.expired.load(Ordering::Acquire)
    }
}

pin_project_lite::pin_project! {
    /// An exchange that ends with `None` when its connection's watch expires.
    pub(crate) struct Cut<'w, F> {
        #[pin]
        exchange: F,
        watch: &'w Watch,
        // The waker last registered with the watch: a task's waker does not change between
        // polls, so registering again (two atomic read-modify-writes) is skipped.
        registered: Option<Waker>,
    }
}

impl<'w, F> Cut<'w, F> {
    pub(crate) fn new(exchange: F, watch: &'w Watch) -> Self {
        Cut {
            exchange,
            watch,
            registered: None,
        }
    }
}

impl<F: Future> Future for Cut<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.watch.expired() {
            return Poll::Ready(None);
        }
        if let Poll::Ready(out) = this.exchange.poll(cx) {
            return Poll::Ready(Some(out));
        }
        // Registered only when the exchange waits: most exchanges on a kept-alive connection
        // wait once, for the response head.
        if !this
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            this.watch.waker.register(cx.waker());
            *this.registered = Some(cx.waker().clone());
        }
        // The sweeper may have expired the watch before the waker was registered.
        if this.watch.expired() {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_only_armed_watches_past_their_deadline() {
        let d = Deadlines::new();
        let idle = d.watch();
        let late = d.watch();
        let early = d.watch();
        let start = Instant::now();
        late.arm(d.deadline(start, Duration::from_millis(20)));
        early.arm(d.deadline(start, Duration::from_secs(60)));
        d.sweep();
        assert!(!late.expired() && !early.expired() && !idle.expired());
        std::thread::sleep(Duration::from_millis(30));
        d.sweep();
        assert!(late.expired(), "past its deadline");
        assert!(!early.expired() && !idle.expired());
        // A response in time disarms: no later sweep cuts the connection.
        early.disarm();
        d.sweep();
        assert!(!early.expired());
        drop(idle);
        d.sweep();
        assert_eq!(
            d.watches.lock().unwrap().len(),
            2,
            "closed connections forgotten"
        );
    }

    #[tokio::test]
    async fn an_expired_watch_ends_its_exchange() {
        let d = Deadlines::new();
        let w = d.watch();
        let watch = w.clone();
        let task =
            tokio::spawn(async move { Cut::new(std::future::pending::<()>(), &watch).await });
        tokio::task::yield_now().await;
        assert!(!task.is_finished());
        w.arm(0);
        d.sweep();
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await;
        assert!(matches!(ended, Ok(Ok(None))), "woken and ended");
        // An exchange that completes is not cut.
        let w = d.watch();
        assert_eq!(Cut::new(std::future::ready(7), &w).await, Some(7));
    }

    /// Counts its wakes.
    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_new_waker_is_registered_again() {
        let d = Deadlines::new();
        let w = d.watch();
        let mut cut = std::pin::pin!(Cut::new(std::future::pending::<()>(), &w));
        let first = Arc::new(Count(Default::default()));
        let second = Arc::new(Count(Default::default()));
        let (wf, ws) = (Waker::from(first.clone()), Waker::from(second.clone()));
        for waker in [&wf, &wf, &ws] {
            assert!(cut
                .as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending());
        }
        w.arm(0);
        d.sweep();
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(
            second.0.load(Ordering::SeqCst),
            1,
            "the latest waker is woken"
        );
        assert!(cut.as_mut().poll(&mut Context::from_waker(&ws)).is_ready());
    }
}
