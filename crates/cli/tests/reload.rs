//! Live reload: `POST /reload` and `SIGHUP` swap a new configuration in while serving. Real
//! `foresight serve` and `foresight backend` processes; an open-loop load runs through 20
//! reloads that move instances, rebuild a pool and change routes, without one failed request.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

/// Two configurations to alternate between: `a` serves /w from instances 1 and 2 with
/// round robin; `b` from 2 and 3 with least-connections (a new pool), and adds a route.
fn configs(b: &[String]) -> (String, String) {
    let a = format!(
        r#"
[balancer]
algorithm = "round-robin"

[[services]]
name = "web"
backends = [{{ address = "{}" }}, {{ address = "{}" }}]

[[routes]]
path_prefix = "/w"
service = "web"
"#,
        b[0], b[1]
    );
    let bb = format!(
        r#"
[balancer]
algorithm = "least-connections"

[[services]]
name = "web"
backends = [{{ address = "{}" }}, {{ address = "{}" }}]

[[services]]
name = "extra"
backends = [{{ address = "{}" }}]

[[routes]]
path_prefix = "/w"
service = "web"

[[routes]]
path_prefix = "/x"
rewrite_prefix = "/w"
service = "extra"
"#,
        b[1], b[2], b[0]
    );
    (a, bb)
}

async fn reload(c: &HttpClient, admin: &str) -> Resp {
    send(c, "POST", &format!("http://{admin}/reload"), "")
        .await
        .unwrap()
}

fn write(path: &Path, text: &str) {
    // Written aside and renamed, as editors and config management do: a reload never reads
    // half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_under_load_lose_no_request() {
    let dir = tempdir("reload");
    let procs: Vec<(Proc, String)> = (1..=3)
        .map(|i| backend(&format!("r{i}"), &["--route", "/w=2ms"]))
        .collect();
    let addrs: Vec<String> = procs.iter().map(|p| p.1.clone()).collect();
    let (a, b) = configs(&addrs);
    let cfg = dir.join("foresight.toml");
    write(&cfg, &a);
    let p = serve_at(&cfg, "127.0.0.1:0", &["--workers", "2"]);
    let (url, admin) = (
        format!("http://{}", p.get("proxy")),
        p.get("admin").to_string(),
    );
    let http = client();

    let plan = foresight_loadgen::Plan::constant(&url, &["/w"], 150.0, Duration::from_secs(12));
    let load = tokio::spawn(async move { foresight_loadgen::run(&plan).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut pools = Vec::new();
    for i in 0..20 {
        write(&cfg, if i % 2 == 0 { &b } else { &a });
        let r = reload(&http, &admin).await;
        assert_eq!(r.status, 200, "reload {i}: {}", r.body);
        let report: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        pools.push(report["services"][0]["pool"].as_str().unwrap().to_string());
        tokio::time::sleep(Duration::from_millis(450)).await;
    }
    let report = load.await.unwrap();
    assert!(report.overall.requests > 1000, "{report:?}");
    assert_eq!(
        report.failures(),
        0,
        "no request lost across 20 reloads: {:?} {:?}",
        report.statuses,
        report.errors
    );
    assert!(
        pools.iter().all(|p| p == "rebuilt"),
        "a balancer change builds a new pool: {pools:?}"
    );

    // The last reload applied `a`: instances 1 and 2, no /x route.
    let mut seen: Vec<String> = count_sequential(&http, &format!("{url}/w"), 20)
        .await
        .into_keys()
        .collect();
    seen.sort();
    assert_eq!(seen, vec!["r1".to_string(), "r2".to_string()]);
    assert_eq!(get(&http, &format!("{url}/x")).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_pool_gains_and_drains_instances_and_routes_change() {
    let dir = tempdir("reload-kept");
    let procs: Vec<(Proc, String)> = (1..=3)
        .map(|i| backend(&format!("k{i}"), &["--route", "/w=1ms"]))
        .collect();
    let addrs: Vec<String> = procs.iter().map(|p| p.1.clone()).collect();
    let one = |list: &[&String], extra: &str| {
        let backends: Vec<String> = list
            .iter()
            .map(|a| format!("{{ address = \"{a}\" }}"))
            .collect();
        format!(
            "[balancer]\nalgorithm = \"round-robin\"\n\n[[services]]\nname = \"web\"\n\
             backends = [{}]\n\n[[routes]]\npath_prefix = \"/w\"\nservice = \"web\"\n{extra}",
            backends.join(", ")
        )
    };
    let cfg = dir.join("foresight.toml");
    write(&cfg, &one(&[&addrs[0], &addrs[1]], ""));
    let p = serve_at(&cfg, "127.0.0.1:0", &[]);
    let (url, admin) = (
        format!("http://{}", p.get("proxy")),
        p.get("admin").to_string(),
    );
    let http = client();

    // Same balancer: the pool is kept; k3 joins, k1 is drained out.
    write(&cfg, &one(&[&addrs[1], &addrs[2]], ""));
    let r = reload(&http, &admin).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["services"][0]["pool"], "kept", "{v}");
    assert_eq!(v["services"][0]["added"][0], addrs[2].as_str(), "{v}");
    assert_eq!(v["services"][0]["removed"][0], addrs[0].as_str(), "{v}");
    assert_eq!(v["restart_needed"], serde_json::json!([]), "{v}");
    eventually(Duration::from_secs(5), "k1 drained out", || async {
        let r = get(&http, &format!("http://{admin}/services/web/backends")).await;
        let list: Vec<serde_json::Value> = serde_json::from_str(&r.body).unwrap();
        let mut names: Vec<&str> = list.iter().filter_map(|b| b["address"].as_str()).collect();
        names.sort();
        let mut want = vec![addrs[1].as_str(), addrs[2].as_str()];
        want.sort();
        names == want
    })
    .await;

    // A changed route and a setting that needs a restart.
    write(
        &cfg,
        &one(
            &[&addrs[1], &addrs[2]],
            "\n[limits]\nmax_connections = 100\n",
        )
        .replace(
            "path_prefix = \"/w\"",
            "path_prefix = \"/v2\"\nrewrite_prefix = \"/w\"",
        ),
    );
    let r = reload(&http, &admin).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["restart_needed"], serde_json::json!(["limits"]), "{v}");
    assert_eq!(get(&http, &format!("{url}/v2")).await.status, 200);
    assert_eq!(get(&http, &format!("{url}/w")).await.status, 404);

    // SIGHUP does the same: back to /w.
    write(&cfg, &one(&[&addrs[1], &addrs[2]], ""));
    let status = std::process::Command::new("kill")
        .args(["-HUP", &p.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    eventually(Duration::from_secs(5), "the SIGHUP reload", || async {
        get(&http, &format!("{url}/w")).await.status == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_is_refused_with_the_start_message_and_the_running_one_stays() {
    let dir = tempdir("reload-bad");
    let (_b, addr) = backend("bad1", &["--route", "/w=1ms"]);
    let good = format!("backends = [{{ address = \"{addr}\" }}]\n");
    let cfg = dir.join("foresight.toml");
    write(&cfg, &good);
    let p = serve_at(&cfg, "127.0.0.1:0", &[]);
    let (url, admin) = (
        format!("http://{}", p.get("proxy")),
        p.get("admin").to_string(),
    );
    let http = client();

    let bad = format!("{good}[balancer]\nalgorithm = \"magic\"\n");
    write(&cfg, &bad);
    let r = reload(&http, &admin).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let at_start = serve_until_exit(&cfg, Duration::from_secs(10));
    assert_eq!(at_start.status.code(), Some(64), "{}", text(&at_start));
    let message = String::from_utf8_lossy(&at_start.stderr)
        .trim()
        .trim_start_matches("error: ")
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["error"], message.as_str(), "the start's message");
    assert!(message.contains("balancer.algorithm"), "{message}");
    assert_eq!(
        get(&http, &format!("{url}/w")).await.status,
        200,
        "still serving"
    );

    // A broken control section is refused too (the same check as at start).
    write(&cfg, &format!("{good}[control]\npolicy = \"psychic\"\n"));
    let r = reload(&http, &admin).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("control.policy"), "{}", r.body);
    assert_eq!(get(&http, &format!("{url}/w")).await.status, 200);

    // An empty file (an editor between truncating and writing) would leave the service with
    // no instance: refused, counted, still serving.
    std::fs::write(&cfg, "").unwrap();
    let r = reload(&http, &admin).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("reload refused") && r.body.contains("allow_empty"),
        "{}",
        r.body
    );
    assert_eq!(get(&http, &format!("{url}/w")).await.status, 200);
    let metrics = get(&http, &format!("http://{admin}/metrics")).await.body;
    assert!(
        metrics.contains("foresight_config_reloads_total{result=\"refused\"} 3"),
        "{metrics}"
    );
    // Said on purpose, it is applied.
    write(&cfg, "allow_empty = true\n");
    let r = reload(&http, &admin).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get(&http, &format!("{url}/w")).await.status, 503);
}

/// A service scaled by a control loop keeps its pool and the instances the loop started; a
/// changed `[control]` is reported as needing a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controlled_service_keeps_the_instances_its_loop_started() {
    let dir = tempdir("reload-controlled");
    let section = |min: u32| {
        format!(
            "[control]\ninterval = \"500ms\"\nstep = \"1s\"\npolicy = \"hpa\"\nforecaster = \"none\"\n\
             min = {min}\nmax = 3\nactuator = \"process\"\n"
        )
    };
    let cfg = dir.join("foresight.toml");
    write(&cfg, &section(2));
    let p = serve_at(&cfg, "127.0.0.1:0", &[]);
    let admin = p.get("admin").to_string();
    let http = client();
    let started = || async {
        let mut v: Vec<String> = backends(&http, &admin)
            .await
            .iter()
            .filter_map(|b| b["address"].as_str().map(String::from))
            .collect();
        v.sort();
        v
    };
    eventually(Duration::from_secs(20), "two instances started", || async {
        started().await.len() == 2
    })
    .await;
    let before = started().await;

    let r = reload(&http, &admin).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["services"][0]["pool"], "kept", "{v}");
    assert_eq!(v["restart_needed"], serde_json::json!([]), "{v}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(started().await, before, "the loop's instances stay");

    write(&cfg, &section(3));
    let r = reload(&http, &admin).await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        v["restart_needed"],
        serde_json::json!(["service default: [control]"]),
        "{v}"
    );
    assert_eq!(started().await, before);
}

/// `foresight check`: the `nginx -t` before a reload. Exit 0 for a file `serve` would run and a
/// reload would take, 64 naming the problem otherwise.
#[test]
fn check_says_before_a_reload_whether_the_file_would_be_taken() {
    let dir = tempdir("check");
    let file = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let good = file(
        "good.toml",
        "[[services]]\nname = \"auth\"\nbackends = [{ address = \"http://127.0.0.1:1\" }]\n\
         [[routes]]\npath_prefix = \"/\"\nservice = \"auth\"\n",
    );
    let o = run(&["check", "--config", &good]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("is valid") && out.contains("auth (1 backend(s))") && out.contains("1 route"),
        "{out}"
    );
    for (name, body, needle) in [
        ("empty.toml", "", "allow_empty"),
        (
            "typo.toml",
            "[balancer]\nalgoritm = \"random\"\n",
            "algoritm",
        ),
        (
            "bad.toml",
            "[paths]\nescaped_slashes = \"x\"\n",
            "paths.escaped_slashes",
        ),
    ] {
        let o = run(&["check", "--config", &file(name, body)]);
        assert_eq!(o.status.code(), Some(64), "{name}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(needle),
            "{name}: {}",
            text(&o)
        );
    }
    let o = run(&[
        "check",
        "--config",
        &file("meant.toml", "allow_empty = true\n"),
    ]);
    assert_eq!(o.status.code(), Some(0), "said so: {}", text(&o));
    let o = run(&[
        "check",
        "--config",
        dir.join("missing.toml").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
}

/// Ten `SIGHUP`s in a burst are one reload, read after the burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_hangups_is_one_reload() {
    let dir = tempdir("reload-burst");
    let (_b, addr) = backend("h1", &["--route", "/w=1ms"]);
    let cfg = dir.join("foresight.toml");
    let text = format!("[[services]]\nname = \"web\"\nbackends = [{{ address = \"{addr}\" }}]\n");
    write(&cfg, &text);
    let admin = format!("127.0.0.1:{}", free_port());
    let p = serve_at(&cfg, &admin, &[]);
    let http = client();
    let reloads = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("foresight_config_reloads_total{result=\"applied\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0, |v| v.parse::<u64>().unwrap())
    };
    let before = reloads(&get(&http, &format!("http://{admin}/metrics")).await.body);
    for _ in 0..10 {
        let s = std::process::Command::new("kill")
            .args(["-HUP", &p.pid().to_string()])
            .status()
            .unwrap();
        assert!(s.success());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eventually(Duration::from_secs(5), "the burst's reload", || {
        let (http, admin) = (http.clone(), admin.clone());
        async move { reloads(&get(&http, &format!("http://{admin}/metrics")).await.body) > before }
    })
    .await;
    // Another settle period later, still one.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let now = reloads(&get(&http, &format!("http://{admin}/metrics")).await.body);
    assert_eq!(now - before, 1, "ten signals, {} reloads", now - before);
}
