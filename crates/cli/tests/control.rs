//! The control loop inside `foresight serve`: the HPA policy grows a local process pool under
//! load and shrinks it after, with no failed request; `/control` and `/metrics` show it.

mod common;

use std::time::Duration;

use common::*;

const CONFIG: &str = r#"
[control]
interval = "500ms"
step = "1s"
policy = "hpa"
forecaster = "moving-average"
min = 1
max = 3
workers = 2
hpa_target = 0.5
stabilisation = "3s"
actuator = "process"
backend_args = ["--workers", "2", "--route", "/w=50ms", "--distribution", "constant", "--startup-delay", "300ms"]
"#;

async fn control(c: &HttpClient, admin: &str) -> serde_json::Value {
    let r = get(c, &format!("http://{admin}/control")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpa_grows_and_shrinks_a_process_pool_without_failures() {
    let dir = tempdir("control-hpa");
    let p = proxy(&dir, CONFIG, &[]);
    let (admin, url) = (p.get("admin").to_string(), p.get("proxy").to_string());
    let http = client();
    eventually(
        Duration::from_secs(20),
        "the first instance ready",
        || async {
            control(&http, &admin).await["ready"] == 1 && backends(&http, &admin).await.len() == 1
        },
    )
    .await;
    let s = control(&http, &admin).await;
    assert_eq!(s["policy"], "hpa");
    assert!(
        s["actuator"].as_str().unwrap().starts_with("process pool"),
        "{s}"
    );

    // 60 req/s against 40 req/s of capacity: utilisation ~1 against a 0.5 target.
    let plan = foresight_loadgen::Plan::constant(
        &format!("http://{url}"),
        &["/w"],
        60.0,
        Duration::from_secs(12),
    );
    let load = tokio::spawn(async move { foresight_loadgen::run(&plan).await.unwrap() });
    eventually(Duration::from_secs(25), "three instances ready", || async {
        control(&http, &admin).await["ready"] == 3
    })
    .await;
    let report = load.await.unwrap();
    assert_eq!(report.failures(), 0, "{:?}", report.statuses);

    let m = get(&http, &format!("http://{admin}/metrics")).await.body;
    for needle in [
        "foresight_control_desired_instances",
        "foresight_control_ready_instances",
        "foresight_client_requests_total",
        "foresight_control_scale_actions_total",
    ] {
        assert!(m.contains(needle), "missing {needle}");
    }
    // Idle: back to the minimum after the 3 s stabilisation window.
    eventually(Duration::from_secs(20), "back to one instance", || async {
        control(&http, &admin).await["ready"] == 1 && backends(&http, &admin).await.len() == 1
    })
    .await;
    let s = control(&http, &admin).await;
    let decisions = s["decisions"].as_array().unwrap();
    assert!(decisions.len() >= 2, "{s}");
    assert!(
        decisions
            .iter()
            .any(|d| d["reason"].as_str().unwrap().starts_with("hpa: ceil(")),
        "{s}"
    );
}

#[test]
fn bad_control_config_is_a_usage_error() {
    let dir = tempdir("control-bad");
    let cfg = dir.join("f.toml");
    std::fs::write(&cfg, "[control]\npolicy = \"magic\"\n").unwrap();
    let o = serve_until_exit(&cfg, Duration::from_secs(30));
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("invalid value `magic` for `control.policy`"),
        "{}",
        text(&o)
    );
}

/// Three days of a flat 10 per minute with a burst of 60 at minute 10 of every hour.
fn bursty_history() -> String {
    let start = chrono::NaiveDate::from_ymd_opt(2024, 3, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let mut s = String::from("minute,count\n");
    for m in 0..3 * 1440 {
        let t = start + chrono::Duration::minutes(m);
        let v = if m % 60 == 10 { 60 } else { 10 + m % 3 };
        s.push_str(&format!("{},{v}\n", t.format("%Y-%m-%d %H:%M:%S")));
    }
    s
}

/// With no `forecaster` key the live loop runs `auto`: it chooses on the history it was
/// warmed with, in the background, shows the choice and every candidate's score in
/// `/control`, and chooses again at every retraining.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_is_the_default_chooses_on_the_history_and_again_at_each_retraining() {
    let dir = tempdir("control-auto");
    std::fs::write(dir.join("history.csv"), bursty_history()).unwrap();
    let config = format!(
        r#"
[control]
interval = "500ms"
step = "500ms"
model_step = "1m"
policy = "hybrid"
lead = "1500ms"
margin = "1s"
history = "{}"
train_epochs = 1
retrain_every = "30m"
min = 1
max = 3
actuator = "none"
"#,
        dir.join("history.csv").display()
    );
    let p = proxy(&dir, &config, &[]);
    let admin = p.get("admin").to_string();
    let http = client();
    eventually(Duration::from_secs(120), "auto's first choice", || async {
        control(&http, &admin).await["forecaster_candidates"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    })
    .await;
    let s = control(&http, &admin).await;
    let name = s["forecaster"].as_str().unwrap();
    let candidates = s["forecaster_candidates"].as_array().unwrap();
    // The LSTM, three seasonal quantiles, Holt-Winters, the moving average, the envelope.
    assert_eq!(candidates.len(), 7, "{s}");
    let best = candidates[0]["name"].as_str().unwrap();
    assert!(name.starts_with(&format!("auto: {best} (chosen ")), "{s}");
    let losses: Vec<f64> = candidates
        .iter()
        .map(|c| c["pinball"].as_f64().unwrap())
        .collect();
    assert!(losses.windows(2).all(|w| w[0] <= w[1]), "{s}");
    // The moving average cannot see an hourly burst coming; the choice can.
    let ma = candidates
        .iter()
        .find(|c| c["name"] == "moving-average")
        .unwrap();
    assert!(ma["pinball"].as_f64().unwrap() > 2.0 * losses[0], "{s}");
    assert!(candidates[0]["coverage"].as_f64().unwrap() > 0.8, "{s}");
    // The tail band's margin is shown (no load yet: none).
    assert_eq!(s["tail_margin"].as_f64(), Some(0.0), "{s}");
    // 30 model minutes are 15 s here: it chooses again.
    eventually(Duration::from_secs(120), "auto's second choice", || async {
        control(&http, &admin).await["forecaster"]
            .as_str()
            .is_some_and(|f| f.contains("(chosen 2 times"))
    })
    .await;
}

/// `serve` owns its control loop: on SIGTERM it stops accepting, the loop stops, and its
/// actuator drains and stops the instances it started (each logs `instance stopped`, which a
/// process killed with its parent never does), before the process exits; no instance is
/// left running.
#[test]
fn sigterm_stops_the_loop_and_its_instances_in_order() {
    let dir = tempdir("control-sigterm");
    let cfg = dir.join("foresight.toml");
    // A seed no other test uses marks this test's instances among the machine's processes.
    let marker = "--seed=7340291";
    std::fs::write(
        &cfg,
        format!(
            "[control]\ninterval = \"500ms\"\npolicy = \"hpa\"\nforecaster = \"none\"\nmin = 2\n\
             max = 3\nactuator = \"process\"\nbackend_args = [\"{marker}\"]\n"
        ),
    )
    .unwrap();
    let log = dir.join("serve.log");
    let child = std::process::Command::new(BIN)
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Killed if the test fails half-way.
    let mut serve = Proc {
        child,
        info: Default::default(),
    };
    let instances = || {
        let o = std::process::Command::new("pgrep")
            .args(["-f", "--", marker])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).lines().count()
    };
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("instance ready")
        .count()
        < 2
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "two instances ready: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(instances(), 2);
    let pid = serve.pid().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = serve.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status}: {text}");
    assert_eq!(text.matches("instance stopped").count(), 2, "{text}");
    let order = [
        "shutting down",
        "control loop stopped",
        "background work stopped",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|m| text.find(m).unwrap_or_else(|| panic!("no `{m}`: {text}")))
        .collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "{order:?} out of order: {text}"
    );
    assert_eq!(instances(), 0, "{text}");
}
