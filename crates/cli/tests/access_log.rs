//! Access logs from a real proxy: one JSON line per request with the instance, the service and
//! the bytes sent, lines for the proxy's own answers too, and exact sampling.

mod common;

use std::time::Duration;

use common::*;

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_a_line_with_its_service_and_instance() {
    let dir = tempdir("access-log");
    let (_b, b) = backend("one", &["--route", "/auth=1ms"]);
    let log = dir.join("access.log");
    let p = proxy(
        &dir,
        &format!(
            r#"
[health_check]
enabled = false
[access_log]
path = "{}"
[[services]]
name = "auth"
backends = [{{ address = "{b}" }}]
[[routes]]
path_prefix = "/auth"
service = "auth"
"#,
            log.display()
        ),
        &[],
    );
    let (proxy_addr, admin) = (p.get("proxy").to_string(), p.get("admin").to_string());
    let c = client();
    let ok = get(&c, &format!("http://{proxy_addr}/auth?secret=1")).await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        get(&c, &format!("http://{proxy_addr}/none")).await.status,
        404
    );
    eventually(Duration::from_secs(5), "two lines", || async {
        lines(&log).len() == 2
    })
    .await;
    let l = lines(&log);
    assert_eq!(
        (&l[0]["method"], &l[0]["path"], &l[0]["status"]),
        (&"GET".into(), &"/auth".into(), &200.into()),
        "the query is not logged: {}",
        l[0]
    );
    assert_eq!(l[0]["service"], "auth");
    assert_eq!(l[0]["instance"], b.as_str());
    assert_eq!(
        l[0]["bytes"].as_u64(),
        Some(ok.body.len() as u64),
        "{}",
        l[0]
    );
    assert!(l[0]["duration_ms"].as_f64().unwrap() >= l[0]["head_ms"].as_f64().unwrap());
    assert!(l[0]["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(
        (&l[1]["status"], &l[1]["service"]),
        (&404.into(), &"-".into())
    );
    assert!(l[1]["instance"].is_null());
    let m = get(&c, &format!("http://{admin}/metrics")).await.body;
    assert!(m.contains("foresight_access_log_dropped_total 0"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_logs_the_configured_fraction() {
    let dir = tempdir("access-log-sample");
    let (_b, b) = backend("one", &["--route", "/s=1ms"]);
    let log = dir.join("access.log");
    let p = proxy(
        &dir,
        &format!(
            "backends = [{{ address = \"{b}\" }}]\n[access_log]\npath = \"{}\"\nsample = 0.25\nformat = \"json\"\n",
            log.display()
        ),
        &[],
    );
    let c = client();
    let url = format!("http://{}/s", p.get("proxy"));
    for _ in 0..40 {
        assert_eq!(get(&c, &url).await.status, 200);
    }
    eventually(Duration::from_secs(5), "ten lines", || async {
        lines(&log).len() == 10
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(lines(&log).len(), 10, "exactly a quarter of 40");
}

#[test]
fn a_bad_access_log_section_names_the_key() {
    let dir = tempdir("access-log-bad");
    for (section, key) in [
        ("[access_log]\nsample = 0.0", "access_log.sample"),
        ("[access_log]\nformat = \"xml\"", "access_log.format"),
        ("[access_log]\nbuffer = 0", "access_log.buffer"),
        ("[access_log]\nlevel = 1", "level"),
    ] {
        let cfg = dir.join("bad.toml");
        std::fs::write(&cfg, section).unwrap();
        let o = run(&["serve", "--config", cfg.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(64), "{section}");
        assert!(text(&o).contains(key), "{section}: {}", text(&o));
    }
    let cfg = dir.join("unwritable.toml");
    std::fs::write(
        &cfg,
        "[access_log]\npath = \"/nonexistent-dir/access.log\"\n",
    )
    .unwrap();
    let o = run(&[
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("cannot open the access log /nonexistent-dir/access.log"),
        "{}",
        text(&o)
    );
}

/// A full disk (`/dev/full` answers every write with ENOSPC): every request is still served,
/// and every line lost is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_lines_not_requests_and_counts_them() {
    let (_a, a) = backend("a", &[]);
    let dir = tempdir("access-log-full");
    let p = proxy(
        &dir,
        "[access_log]\npath = \"/dev/full\"\n[health_check]\nenabled = false\n",
        &["--backend", &a],
    );
    let (url, admin) = (p.get("proxy").to_string(), p.get("admin").to_string());
    let http = client();
    for _ in 0..200 {
        let r = get(&http, &format!("http://{url}/auth?ms=0")).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    eventually(
        Duration::from_secs(5),
        "200 lines counted as dropped",
        || async {
            get(&http, &format!("http://{admin}/metrics"))
                .await
                .body
                .contains("foresight_access_log_dropped_total 200")
        },
    )
    .await;
}
