//! The live dashboard, `GET /ui`, against a real `foresight serve` whose control loop scales a
//! pool of real `foresight backend` processes under `loadgen` load: the assets are served with
//! a strict content-security policy and without the admin token (the data is not), the loop's
//! recent past is at `/control/history` (`?since=` reads only what is new), and headless
//! Chromium (Debian's `chromium`) renders the page: a chart per service, the decision row of
//! the scale-out, the pool, and no console error. A screenshot is kept at
//! `target/ui-dashboard.png` (the picture in docs/live.md is one).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const CONFIG: &str = r#"
[control]
interval = "500ms"
step = "1s"
lead = "3s"
policy = "hybrid"
forecaster = "moving-average"
min = 1
max = 3
workers = 2
stabilisation = "30s"
actuator = "process"
backend_args = ["--workers", "2", "--route", "/w=50ms", "--distribution", "constant", "--startup-delay", "300ms"]
"#;

/// Debian's Chromium, if installed; with `CI` set its absence is a failure.
fn chromium() -> Option<&'static str> {
    let bin = "/usr/bin/chromium";
    if Path::new(bin).exists() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{bin} not found, and CI is set (.ci/run installs Debian's chromium)"
    );
    eprintln!("skipping the browser part: {bin} not found");
    None
}

/// Runs headless Chromium on `url` with `what` (`--dump-dom` or `--screenshot=F`) after the
/// page has had `budget_ms` of virtual time; (stdout, stderr).
fn headless(bin: &str, profile: &Path, url: &str, what: &str, budget_ms: u32) -> (String, String) {
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1400,900",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--virtual-time-budget={budget_ms}"),
            what,
            url,
        ])
        .output()
        .expect("chromium runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_loop_live_in_a_real_browser() {
    let dir = tempdir("dashboard");
    let p = proxy(&dir, CONFIG, &[]);
    let (admin, url) = (p.get("admin").to_string(), p.get("proxy").to_string());
    let http = client();

    // The assets: embedded, small, and locked to themselves.
    let page = get(&http, &format!("http://{admin}/ui")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/ui/app.js"), "{}", page.body);
    let mut size = page.body.len();
    for asset in ["/ui/app.js", "/ui/app.css"] {
        let r = get(&http, &format!("http://{admin}{asset}")).await;
        assert_eq!(r.status, 200, "{asset}");
        size += r.body.len();
    }
    assert!(size < 100_000, "{size} bytes of assets");
    let head = reqwest_head(&admin).await;
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{head}"
    );

    // Load: 60 req/s against 2 × 2 workers × 20 req/s (40 req/s of capacity) scales out.
    let plan = foresight_loadgen::Plan::constant(
        &format!("http://{url}"),
        &["/w"],
        60.0,
        Duration::from_secs(10),
    );
    let load = tokio::spawn(async move { foresight_loadgen::run(&plan).await.unwrap() });
    eventually(Duration::from_secs(25), "a scale-out decision", || async {
        let r = get(&http, &format!("http://{admin}/control")).await;
        let s: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        s["decisions"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["to"].as_u64() > d["from"].as_u64()))
    })
    .await;
    // (Some requests meet the overload before the new instances are ready; the page is the
    // point here, not the policy.)
    load.await.unwrap();

    // The history: one point per interval, the forecast at the lead among them.
    let r = get(&http, &format!("http://{admin}/control/history")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let h: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(h["service"], "default");
    assert_eq!(h["planned_quantile"], 0.95);
    let points = h["points"].as_array().unwrap();
    assert!(points.len() >= 20, "{} points", points.len());
    assert!(points
        .iter()
        .any(|p| p["observed_rps"].as_f64() > Some(30.0)));
    assert!(points.iter().any(|p| p["expected_rps"].is_number()));
    assert_eq!(points.last().unwrap()["lead_s"], 3.0);
    // Between two points: serde_json reads a float to within an ulp of what was written (it
    // is built without `float_roundtrip`), so a point's own time may read as just below it.
    let t = (points[points.len() - 3]["t"].as_f64().unwrap()
        + points[points.len() - 2]["t"].as_f64().unwrap())
        / 2.0;
    let r = get(&http, &format!("http://{admin}/control/history?since={t}")).await;
    let newer: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let newer = newer["points"].as_array().unwrap();
    assert!(!newer.is_empty() && newer.iter().all(|p| p["t"].as_f64() > Some(t)));
    let r = get(
        &http,
        &format!("http://{admin}/services/default/control/history?since=x"),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);

    // The terminal view of the same JSON: a row with the load, the plan and the scale-out.
    let o = run_for(
        &["top", "--once", "--admin", &admin],
        Duration::from_secs(20),
    );
    assert!(o.status.success(), "{}", text(&o));
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows[0].starts_with("SERVICE") && rows[0].contains("LAST DECISION"),
        "{table}"
    );
    assert!(
        rows[1].starts_with("default") && rows[1].contains("hybrid"),
        "{table}"
    );
    assert!(
        rows[1].contains(" ago ") && rows[1].contains('→'),
        "{table}"
    );

    // The page in a real browser.
    let Some(bin) = chromium() else { return };
    let ui = format!("http://{admin}/ui");
    let (dom, log) = headless(bin, &dir.join("profile-dom"), &ui, "--dump-dom", 5000);
    assert!(dom.contains("data-service=\"default\""), "{dom}");
    assert!(dom.contains("class=\"chart load\""), "{dom}");
    assert!(dom.contains("class=\"chart instances\""), "{dom}");
    assert!(dom.contains("class=\"decision-row\""), "{dom}");
    assert_eq!(dom.matches("class=\"backend-row\"").count(), 3, "{dom}");
    assert!(dom.contains("<path d=\"M"), "lines drawn: {dom}");
    assert!(
        dom.contains("<span id=\"error\" role=\"alert\"></span>"),
        "the page shows no error: {dom}"
    );
    for bad in ["Uncaught", "Refused to", "Failed to load"] {
        assert!(!log.contains(bad), "console: {log}");
    }
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-dashboard.png");
    headless(
        bin,
        &dir.join("profile-shot"),
        &ui,
        &format!("--screenshot={}", shot.display()),
        5000,
    );
    assert!(std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0) > 10_000);
}

/// With an admin token, the assets load without it and the data does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_the_page_loads_and_its_data_needs_the_token() {
    let dir = tempdir("dashboard-token");
    let cfg = dir.join("foresight.toml");
    std::fs::write(&cfg, "").unwrap();
    let p = serve_env(
        &cfg,
        "127.0.0.1:0",
        &[],
        &[("FORESIGHT_ADMIN_TOKEN", "s3cret-token-for-the-dashboard")],
    );
    let admin = p.get("admin").to_string();
    let http = client();
    assert_eq!(get(&http, &format!("http://{admin}/ui")).await.status, 200);
    assert_eq!(
        get(&http, &format!("http://{admin}/ui/app.js"))
            .await
            .status,
        200
    );
    assert_eq!(
        get(&http, &format!("http://{admin}/services")).await.status,
        401
    );
    // `top` says what is missing, and reads with the token.
    let o = run_for(
        &["top", "--once", "--admin", &admin],
        Duration::from_secs(20),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("FORESIGHT_ADMIN_TOKEN"), "{}", text(&o));
    let o = std::process::Command::new(BIN)
        .args(["top", "--once", "--admin", &format!("http://{admin}/")])
        .env("FORESIGHT_ADMIN_TOKEN", "s3cret-token-for-the-dashboard")
        .output()
        .unwrap();
    // No [control] here: a clear 404, past the guard.
    assert!(
        text(&o).contains("no control loop runs there"),
        "{}",
        text(&o)
    );
    let o = run(&["top", "--admin", &admin, "--interval", "10ms"]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
}

/// The head of `GET /ui`, as lines `name: value`.
async fn reqwest_head(admin: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(admin).await.unwrap();
    s.write_all(
        format!("GET /ui HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string()
}
