//! A fake kubelet (with the ReplicaSet and EndpointSlice controllers' part of the job) for the
//! fake API server: it runs a Deployment's pods as real local processes.
//!
//! Every tick it reads the Deployment's replica count and starts pods (the given command; the
//! process prints `listen=ADDR` on its first line) or terminates the surplus, not-ready and
//! newest first, as a ReplicaSet does. Each pod gets its own EndpointSlice (its own port on
//! 127.0.0.1): not ready while starting, ready once its `/ready` answers 200, terminating (not
//! ready) for a grace period before its process is killed and its slice deleted, as with a
//! `preStop` sleep. The Deployment's status (replicas, readyReplicas) follows.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ApiServer;

const TICK: Duration = Duration::from_millis(100);

/// Where a pod is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Running, `/ready` not yet 200.
    Starting,
    /// Ready: in its slice as ready.
    Ready,
    /// Terminating since then: in its slice as terminating until killed.
    Terminating(Instant),
}

/// A pod as a test sees it.
#[derive(Clone, Debug)]
pub struct PodView {
    /// `<deployment>-<n>`.
    pub name: String,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its phase.
    pub phase: Phase,
}

struct Pod {
    view: PodView,
    port: u16,
    child: Child,
    /// The (ready, terminating) last published in its slice.
    published: Option<(bool, bool)>,
}

/// What the kubelet runs and where it reports.
pub struct Spec {
    /// The namespace of the Deployment and Service.
    pub namespace: String,
    /// The Deployment whose replicas it runs.
    pub deployment: String,
    /// The Service whose slices it publishes (label `kubernetes.io/service-name`).
    pub service: String,
    /// The slices' port name.
    pub port_name: String,
    /// The program and its arguments; `{name}` in an argument becomes the pod's name. It must
    /// print `listen=ADDR` on its first stdout line.
    pub command: Vec<String>,
    /// How long a terminating pod keeps serving before it is killed.
    pub grace: Duration,
}

struct State {
    pods: Vec<Pod>,
    started: usize,
    /// Every pod ever started: (name, url).
    ever: Vec<(String, String)>,
}

/// A running kubelet; dropping it kills its pods.
pub struct Kubelet {
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Kubelet {
    /// Starts it on `server`.
    pub fn start(server: &ApiServer, spec: Spec) -> Kubelet {
        let state = Arc::new(Mutex::new(State {
            pods: Vec::new(),
            started: 0,
            ever: Vec::new(),
        }));
        let task = tokio::spawn(run(server.clone(), spec, state.clone()));
        Kubelet { state, task }
    }

    /// The pods now.
    pub fn pods(&self) -> Vec<PodView> {
        let s = self.state.lock().unwrap();
        s.pods.iter().map(|p| p.view.clone()).collect()
    }

    /// The URLs of the ready pods, sorted.
    pub fn ready(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .pods()
            .into_iter()
            .filter(|p| p.phase == Phase::Ready)
            .map(|p| p.url)
            .collect();
        v.sort();
        v
    }

    /// Every pod ever started: (name, url).
    pub fn ever(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().ever.clone()
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for p in &mut s.pods {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

/// Starts one pod's process and reads its address.
fn launch(spec: &Spec, name: &str) -> (Child, u16) {
    let args: Vec<String> = spec.command[1..]
        .iter()
        .map(|a| a.replace("{name}", name))
        .collect();
    let mut child = Command::new(&spec.command[0])
        .args(&args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a pod");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("listen="))
        .unwrap_or_else(|| panic!("pod {name} printed no listen=ADDR: {line:?}"));
    let port = addr.rsplit_once(':').unwrap().1.parse().unwrap();
    (child, port)
}

/// Whether `GET /ready` answers 200 (HTTP/1.0 over a plain socket).
async fn ready(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(b"GET /ready HTTP/1.0\r\nHost: pod\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.ok()?;
        Some(head.ends_with(b"200"))
    };
    tokio::time::timeout(Duration::from_secs(1), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

async fn run(server: ApiServer, spec: Spec, state: Arc<Mutex<State>>) {
    let spec = Arc::new(spec);
    loop {
        tokio::time::sleep(TICK).await;
        let desired = server
            .replicas(&spec.namespace, &spec.deployment)
            .unwrap_or(0)
            .max(0) as usize;
        // Scale: start the missing pods, terminate the surplus (not ready first, then newest).
        let (live, to_start) = {
            let s = state.lock().unwrap();
            let live = s
                .pods
                .iter()
                .filter(|p| !matches!(p.view.phase, Phase::Terminating(_)))
                .count();
            (live, desired.saturating_sub(live))
        };
        for _ in 0..to_start {
            let name = {
                let mut s = state.lock().unwrap();
                s.started += 1;
                format!("{}-{}", spec.deployment, s.started)
            };
            let sp = spec.clone();
            let n = name.clone();
            let (child, port) = tokio::task::spawn_blocking(move || launch(&sp, &n))
                .await
                .unwrap();
            let url = format!("http://127.0.0.1:{port}");
            let mut s = state.lock().unwrap();
            s.ever.push((name.clone(), url.clone()));
            s.pods.push(Pod {
                view: PodView {
                    name,
                    url,
                    phase: Phase::Starting,
                },
                port,
                child,
                published: None,
            });
        }
        if live > desired {
            let mut s = state.lock().unwrap();
            let mut candidates: Vec<usize> = (0..s.pods.len())
                .filter(|&i| !matches!(s.pods[i].view.phase, Phase::Terminating(_)))
                .collect();
            // Not ready first, then newest (higher index = started later).
            candidates.sort_by_key(|&i| (s.pods[i].view.phase == Phase::Ready, usize::MAX - i));
            for &i in candidates.iter().take(live - desired) {
                s.pods[i].view.phase = Phase::Terminating(Instant::now());
            }
        }
        // Readiness probes.
        let starting: Vec<u16> = {
            let s = state.lock().unwrap();
            s.pods
                .iter()
                .filter(|p| p.view.phase == Phase::Starting)
                .map(|p| p.port)
                .collect()
        };
        for port in starting {
            if ready(port).await {
                let mut s = state.lock().unwrap();
                if let Some(p) = s
                    .pods
                    .iter_mut()
                    .find(|p| p.port == port && p.view.phase == Phase::Starting)
                {
                    p.view.phase = Phase::Ready;
                }
            }
        }
        // Kill what has had its grace; publish what changed; report the status.
        let mut s = state.lock().unwrap();
        let mut kept = Vec::new();
        for mut p in s.pods.drain(..) {
            let slice = format!("{}-{}", spec.service, p.view.name);
            if let Phase::Terminating(since) = p.view.phase {
                if since.elapsed() >= spec.grace {
                    let _ = p.child.kill();
                    let _ = p.child.wait();
                    server.delete_slice(&spec.namespace, &slice);
                    continue;
                }
            }
            let now = (
                p.view.phase == Phase::Ready,
                matches!(p.view.phase, Phase::Terminating(_)),
            );
            if p.published != Some(now) {
                server.apply_slice(
                    &spec.namespace,
                    &slice,
                    &spec.service,
                    (&spec.port_name, p.port),
                    &[("127.0.0.1", now.0, now.1)],
                );
                p.published = Some(now);
            }
            kept.push(p);
        }
        s.pods = kept;
        let running = s
            .pods
            .iter()
            .filter(|p| !matches!(p.view.phase, Phase::Terminating(_)))
            .count() as i64;
        let ready = s
            .pods
            .iter()
            .filter(|p| p.view.phase == Phase::Ready)
            .count() as i64;
        server.set_status(&spec.namespace, &spec.deployment, running, ready);
    }
}
