//! The binary's surface: bad configuration exits 64 naming the problem, h2c, metrics, admin API.

mod common;

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};

/// Runs `foresight serve` with a config and flags and returns (exit code, stderr).
fn serve_fails(toml: Option<&str>, flags: &[&str]) -> (i32, String) {
    let dir = tempdir("badcfg");
    let mut args: Vec<String> = vec!["serve".into()];
    if let Some(t) = toml {
        let f = dir.join("bad.toml");
        std::fs::write(&f, t).unwrap();
        args.push("--config".into());
        args.push(f.to_str().unwrap().into());
    }
    args.extend(flags.iter().map(|s| s.to_string()));
    let out = Command::new(BIN).args(&args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_configuration_exits_64_and_names_the_problem() {
    let cases: [(Option<&str>, &[&str], &[&str]); 7] = [
        (
            Some("[balancer]\nalgorithm = \"fastest\"\n"),
            &[],
            &["balancer.algorithm", "`fastest`", "p2c-ewma"],
        ),
        (
            Some("listen = \"127.0.0.1:0\"\n\n[outlier]\nmax_ejection_pct = 5\n"),
            &[],
            &["bad.toml", "line 4", "max_ejection_pct"],
        ),
        (
            Some("[[backends]]\naddress = \"ftp://x:1\"\n"),
            &[],
            &["backends[0].address", "ftp://x:1"],
        ),
        (
            Some("[health_check]\nrise = 0\n"),
            &[],
            &["health_check.rise", "1..=100"],
        ),
        (
            Some("[timeouts]\nconnect = \"fast\"\n"),
            &[],
            &["timeouts.connect", "duration"],
        ),
        (None, &["--workers", "0"], &["workers", "1..=1024"]),
        (
            None,
            &["--config", "/nonexistent/foresight.toml"],
            &["cannot read config file", "/nonexistent/foresight.toml"],
        ),
    ];
    for (toml, flags, needles) in cases {
        let (code, stderr) = serve_fails(toml, flags);
        assert_eq!(code, 64, "{toml:?} {flags:?}: {stderr}");
        for n in needles {
            assert!(
                stderr.contains(n),
                "{toml:?} {flags:?}: missing {n:?} in {stderr}"
            );
        }
    }
    // The backend's own flags too.
    let out = Command::new(BIN)
        .args(["backend", "--distribution", "gauss"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("distribution"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_are_served() {
    let (_a, a) = backend("a", &[]);
    let dir = tempdir("h2c");
    let p = proxy(&dir, "", &["--backend", &a]);
    let h2: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    for _ in 0..3 {
        let resp = h2
            .get(
                format!("http://{}/auth?ms=1", p.get("proxy"))
                    .parse()
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-foresight-instance"], "a");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok /auth\n");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_admin_api() {
    let (_a, a) = backend("a", &[]);
    let (_b, b) = backend("b", &["--startup-delay", "600ms"]);
    let dir = tempdir("admin");
    let p = proxy(
        &dir,
        "[health_check]\ninterval = \"100ms\"\ntimeout = \"50ms\"\nrise = 2\n",
        &["--backend", &a, "--algorithm", "round-robin"],
    );
    let (proxy_addr, admin) = (p.get("proxy").to_string(), p.get("admin").to_string());
    let http = client();
    for _ in 0..5 {
        assert_eq!(
            get(&http, &format!("http://{proxy_addr}/auth?ms=1"))
                .await
                .status,
            200
        );
    }
    let m = get(&http, &format!("http://{admin}/metrics")).await.body;
    for needle in [
        format!("foresight_requests_total{{service=\"default\",backend=\"{a}\",code=\"200\"}} 5"),
        format!(
            "foresight_request_duration_seconds_count{{service=\"default\",backend=\"{a}\"}} 5"
        ),
        format!("foresight_in_flight{{service=\"default\",backend=\"{a}\"}} 0"),
        format!("foresight_backend_healthy{{service=\"default\",backend=\"{a}\"}} 1"),
    ] {
        assert!(m.contains(&needle), "missing {needle} in\n{m}");
    }

    // Add a starting instance: it joins only once /ready has passed `rise` checks.
    let add = format!("http://{admin}/backends");
    let r = send(
        &http,
        "POST",
        &add,
        &format!("{{\"address\":\"{b}\",\"weight\":2}}"),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let s = backend_status(&http, &admin, &b).await.unwrap();
    assert_eq!(
        (s["eligible"].clone(), s["weight"].clone()),
        (false.into(), 2.into())
    );
    let counts = count_sequential(&http, &format!("http://{proxy_addr}/auth?ms=0"), 10).await;
    assert_eq!(
        counts.get("b"),
        None,
        "a starting instance got traffic: {counts:?}"
    );
    eventually(Duration::from_secs(5), "b becomes eligible", || async {
        backend_status(&http, &admin, &b).await.unwrap()["eligible"] == true
    })
    .await;
    let counts = count_sequential(&http, &format!("http://{proxy_addr}/auth?ms=0"), 10).await;
    assert_eq!(counts.get("b"), Some(&5), "{counts:?}");

    // Errors: duplicate, bad address, unknown on removal and drain.
    let r = send(&http, "POST", &add, &format!("{{\"address\":\"{b}\"}}"))
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    let r = send(&http, "POST", &add, "{\"address\":\"ftp://x:1\"}")
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.body.contains("backend.address"), "{}", r.body);
    let r = send(&http, "DELETE", &format!("{add}?address=http://nope:1"), "")
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let r = send(
        &http,
        "POST",
        &format!("http://{admin}/backends/drain?address=http://nope:1"),
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 404);

    // Removal forgets the gauges.
    let r = send(&http, "DELETE", &format!("{add}?address={b}"), "")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let m = get(&http, &format!("http://{admin}/metrics")).await.body;
    assert!(
        !m.contains(&format!(
            "foresight_in_flight{{service=\"default\",backend=\"{b}\"}}"
        )),
        "{m}"
    );
}

#[test]
fn algorithms_lists_every_name() {
    let out = Command::new(BIN).arg("algorithms").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "round-robin",
        "weighted-round-robin",
        "least-connections",
        "wlc",
        "random",
        "p2c-ewma",
        "consistent-hash",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing:\n{text}"
        );
    }
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["serve", "backend", "algorithms", "demo"] {
        let out = Command::new(BIN).args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{sub}"
        );
    }
}
