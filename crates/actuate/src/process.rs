//! The local process pool: `foresight backend` processes on loopback ports.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::{Actuator, ActuatorError, BoxFuture, Membership, PoolState};

/// How the pool starts and stops instances.
#[derive(Clone, Debug)]
pub struct ProcessPoolConfig {
    /// The `foresight` binary (the running one by default).
    pub program: PathBuf,
    /// Extra arguments after `backend --listen HOST:0 --name pool-N`, e.g.
    /// `["--startup-delay", "5s", "--workers", "4"]`.
    pub args: Vec<String>,
    /// Interface the instances listen on.
    pub host: String,
    /// Never more instances than this.
    pub max: usize,
    /// An instance whose `/ready` has not answered 200 by then is stopped and counted as failed.
    pub ready_timeout: Duration,
    /// After SIGTERM, how long an instance may take to exit before SIGKILL.
    pub stop_grace: Duration,
}

impl ProcessPoolConfig {
    /// Defaults: this executable, loopback, at most `max`, 60 s to become ready, 5 s to stop.
    pub fn new(max: usize) -> Self {
        ProcessPoolConfig {
            program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("foresight")),
            args: Vec::new(),
            host: "127.0.0.1".into(),
            max,
            ready_timeout: Duration::from_secs(60),
            stop_grace: Duration::from_secs(5),
        }
    }
}

/// Where an instance is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Launched; `/ready` has not answered 200 yet.
    Starting,
    /// In the proxy's rotation.
    Ready,
    /// Leaving: draining through the proxy, then stopped.
    Draining,
}

/// One instance, for status pages and tests.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Instance {
    /// `http://host:port`, once the process reported its port.
    pub address: Option<String>,
    /// Process id, once started.
    pub pid: Option<u32>,
    /// Phase.
    pub phase: Phase,
}

struct Slot {
    id: u64,
    info: Instance,
    stopping: bool,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Inner {
    target: usize,
    next_id: u64,
    slots: Vec<Slot>,
    failures: u32,
    last_error: Option<String>,
    retry_at: Option<Instant>,
}

struct Shared {
    config: ProcessPoolConfig,
    membership: Box<dyn Membership>,
    http: Client<HttpConnector, Full<Bytes>>,
    inner: Mutex<Inner>,
    wake: Notify,
}

/// Starts and stops local `foresight backend` processes to match the applied count. An
/// instance joins the proxy (through [`Membership`]) only once its `/ready` answers 200; a
/// removed instance is drained first (newest first; launches not yet ready go before serving
/// instances) and then stopped with SIGTERM. An instance that dies is removed from the proxy
/// and replaced; repeated start failures back off exponentially (0.5 s to 30 s). Dropping the
/// pool kills every instance; [`ProcessPool::shutdown`] drains them first.
pub struct ProcessPool {
    shared: Arc<Shared>,
    reconciler: JoinHandle<()>,
}

impl ProcessPool {
    /// Starts the pool with no instances (call [`Actuator::apply`]). Needs a tokio runtime.
    pub fn start(config: ProcessPoolConfig, membership: Box<dyn Membership>) -> Self {
        let shared = Arc::new(Shared {
            config,
            membership,
            http: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            inner: Mutex::new(Inner::default()),
            wake: Notify::new(),
        });
        let reconciler = tokio::spawn(reconcile(shared.clone()));
        ProcessPool { shared, reconciler }
    }

    /// Every instance, oldest first.
    pub fn instances(&self) -> Vec<Instance> {
        self.shared
            .lock()
            .slots
            .iter()
            .map(|s| s.info.clone())
            .collect()
    }

    /// The last start failure, if any.
    pub fn last_error(&self) -> Option<String> {
        self.shared.lock().last_error.clone()
    }

    /// Drains and stops every instance, waiting at most `timeout`; what is left is killed
    /// when the pool is dropped.
    pub async fn shutdown(self, timeout: Duration) {
        self.stop_all(timeout).await;
    }

    async fn stop_all(&self, timeout: Duration) {
        self.shared.lock().target = 0;
        self.shared.wake.notify_one();
        let started = Instant::now();
        while !self.shared.lock().slots.is_empty() && started.elapsed() < timeout {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        self.reconciler.abort();
        // Aborting a task drops its `Child`, and `kill_on_drop` kills the process.
        for s in self.shared.lock().slots.drain(..) {
            if let Some(t) = s.task {
                t.abort();
            }
        }
    }
}

impl Actuator for ProcessPool {
    fn name(&self) -> String {
        format!("process pool ({})", self.shared.config.program.display())
    }

    fn apply(&self, replicas: usize) -> BoxFuture<'_, Result<(), ActuatorError>> {
        let max = self.shared.config.max;
        self.shared.lock().target = replicas.min(max);
        self.shared.wake.notify_one();
        let r = if replicas > max {
            Err(ActuatorError::AboveMax {
                asked: replicas,
                max,
            })
        } else {
            Ok(())
        };
        Box::pin(async move { r })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.stop_all(Duration::from_secs(10)))
    }

    fn state(&self) -> BoxFuture<'_, Result<PoolState, ActuatorError>> {
        let inner = self.shared.lock();
        let count = |p: Phase| inner.slots.iter().filter(|s| s.info.phase == p).count();
        let state = PoolState {
            desired: inner.target,
            ready: Some(count(Phase::Ready)),
            starting: Some(count(Phase::Starting)),
        };
        Box::pin(async move { Ok(state) })
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, id: u64, f: impl FnOnce(&mut Instance)) {
        if let Some(s) = self.lock().slots.iter_mut().find(|s| s.id == id) {
            f(&mut s.info);
        }
    }

    /// The instance is gone (stopped or failed): forget it and let the reconciler look again.
    fn forget(&self, id: u64, failure: Option<String>) {
        {
            let mut inner = self.lock();
            inner.slots.retain(|s| s.id != id);
            if let Some(message) = failure {
                tracing::warn!(error = %message, "instance failed");
                inner.failures += 1;
                let backoff = 0.5 * 2f64.powi(inner.failures.min(6) as i32 - 1);
                inner.retry_at = Some(Instant::now() + Duration::from_secs_f64(backoff.min(30.0)));
                inner.last_error = Some(message);
            }
        }
        self.wake.notify_one();
    }
}

async fn reconcile(shared: Arc<Shared>) {
    loop {
        {
            let mut inner = shared.lock();
            let active = inner.slots.iter().filter(|s| !s.stopping).count();
            let may_launch = inner.retry_at.is_none_or(|t| Instant::now() >= t);
            if active < inner.target && may_launch {
                for _ in active..inner.target {
                    let id = inner.next_id;
                    inner.next_id += 1;
                    let (stop, stop_rx) = watch::channel(false);
                    let task = tokio::spawn(lifecycle(shared.clone(), id, stop_rx));
                    inner.slots.push(Slot {
                        id,
                        info: Instance {
                            address: None,
                            pid: None,
                            phase: Phase::Starting,
                        },
                        stopping: false,
                        stop,
                        task: Some(task),
                    });
                }
            } else if active > inner.target {
                let mut excess = active - inner.target;
                for phase in [Phase::Starting, Phase::Ready] {
                    for s in inner.slots.iter_mut().rev() {
                        if excess > 0 && !s.stopping && s.info.phase == phase {
                            s.stopping = true;
                            let _ = s.stop.send(true);
                            excess -= 1;
                        }
                    }
                }
            }
        }
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// One instance from launch to exit.
async fn lifecycle(shared: Arc<Shared>, id: u64, mut stop: watch::Receiver<bool>) {
    let c = &shared.config;
    let program = c.program.display().to_string();
    let mut command = tokio::process::Command::new(&c.program);
    command
        .arg("backend")
        .arg("--listen")
        .arg(format!("{}:0", c.host))
        .arg("--name")
        .arg(format!("pool-{id}"))
        .args(&c.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .kill_on_drop(true);
    // If this process dies without running destructors (SIGKILL, a crash), the kernel sends
    // the instance SIGTERM so that no orphan keeps serving. (Tied to the spawning thread: a
    // tokio worker, which lives as long as the runtime.)
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec here.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let e = ActuatorError::Start {
                program,
                message: e.to_string(),
            };
            return shared.forget(id, Some(e.to_string()));
        }
    };
    let pid = child.id();
    shared.set(id, |i| i.pid = pid);
    let started = Instant::now();

    // The backend prints `foresight backend: listen=ADDR` first.
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let first = tokio::time::timeout(c.ready_timeout, lines.next_line()).await;
    let listen = match first {
        Ok(Ok(Some(line))) => line
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("listen="))
            .map(str::to_string),
        _ => None,
    };
    let Some(listen) = listen else {
        let why = format!("`{program} backend` (pid {pid:?}) did not report its address");
        return shared.forget(id, Some(why));
    };
    // Keep reading so that the instance never writes to a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let address = format!("http://{listen}");
    shared.set(id, |i| i.address = Some(address.clone()));

    // Wait for /ready, unless told to stop first.
    let ready_url: hyper::Uri = match format!("{address}/ready").parse() {
        Ok(u) => u,
        Err(e) => return shared.forget(id, Some(format!("{address}: {e}"))),
    };
    loop {
        let stopping = *stop.borrow();
        if stopping {
            terminate(&mut child, c.stop_grace).await;
            return shared.forget(id, None);
        }
        if let Ok(Ok(r)) =
            tokio::time::timeout(Duration::from_secs(2), shared.http.get(ready_url.clone())).await
        {
            if r.status() == hyper::StatusCode::OK {
                break;
            }
        }
        if started.elapsed() > c.ready_timeout {
            terminate(&mut child, c.stop_grace).await;
            let why = format!("{address} not ready after {:?}", c.ready_timeout);
            return shared.forget(id, Some(why));
        }
        tokio::select! {
            status = child.wait() => {
                let why = format!("{address} exited before it was ready ({status:?})");
                return shared.forget(id, Some(why));
            }
            _ = stop.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }

    if let Err(e) = shared.membership.add(&address).await {
        terminate(&mut child, c.stop_grace).await;
        return shared.forget(id, Some(format!("adding {address} to the proxy: {e}")));
    }
    shared.set(id, |i| i.phase = Phase::Ready);
    {
        let mut inner = shared.lock();
        inner.failures = 0;
        inner.retry_at = None;
    }
    tracing::info!(%address, ready_after = ?started.elapsed(), "instance ready");

    tokio::select! {
        status = child.wait() => {
            let _ = shared.membership.remove(&address).await;
            let why = format!("{address} exited while serving ({status:?})");
            shared.forget(id, Some(why));
        }
        _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
            shared.set(id, |i| i.phase = Phase::Draining);
            if let Err(e) = shared.membership.drain(&address).await {
                tracing::warn!(%address, error = %e, "drain failed; stopping anyway");
            }
            terminate(&mut child, c.stop_grace).await;
            tracing::info!(%address, "instance stopped");
            shared.forget(id, None);
        }
    }
}

/// SIGTERM, then SIGKILL after `grace`.
async fn terminate(child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on a pid we own and have not reaped yet (it is still our child).
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}
