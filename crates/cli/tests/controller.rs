//! `foresight controller`'s refusals: what cannot run apart from a proxy, and flags out of
//! bounds, each a usage error (exit 64) that names the problem. The election itself is tested
//! with two controller processes in `tests/kubernetes.rs` (`--features kubernetes`).

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;

fn refused(name: &str, toml: &str, extra: &[&str], expect: &str) {
    let dir = tempdir(name);
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, toml).unwrap();
    let mut args = vec!["controller", "--config", cfg.to_str().unwrap()];
    if !extra.contains(&"--admin") {
        args.extend(["--admin", "127.0.0.1:0"]);
    }
    args.extend_from_slice(extra);
    let o = run_for(&args, Duration::from_secs(20));
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(text(&o).contains(expect), "want {expect:?} in {}", text(&o));
}

const GOOD: &str = "[control]\nmetrics = \"prometheus\"\npolicy = \"predictive\"\n\
                    actuator = \"exec\"\ncommand = [\"true\"]\n";

#[test]
fn what_cannot_run_without_a_proxy_is_refused() {
    refused("ctl-none", "", &[], "no service has a [control] section");
    refused(
        "ctl-process",
        "[control]\nmetrics = \"prometheus\"\n",
        &[],
        "control.actuator = \"process\"",
    );
    refused(
        "ctl-builtin",
        "[control]\nactuator = \"exec\"\ncommand = [\"true\"]\n",
        &[],
        "control.metrics = \"builtin\" without kafka_consume",
    );
    refused(
        "ctl-services",
        "[[services]]\nname = \"a\"\n[services.control]\nactuator = \"none\"\n[[services]]\nname = \"b\"\n[[routes]]\npath_prefix = \"/\"\nservice = \"a\"\n",
        &[],
        "services[0] (a): control.metrics",
    );
    refused(
        "ctl-asg-group",
        "[control]\nmetrics = \"prometheus\"\npolicy = \"static\"\nactuator = \"aws-asg\"\n",
        &[],
        "control.group",
    );
    refused(
        "ctl-hpa",
        "[control]\nmetrics = \"prometheus\"\npolicy = \"hpa\"\nactuator = \"exec\"\ncommand = [\"true\"]\n",
        &[],
        "control.policy = \"hpa\": it reacts to the instances' utilisation",
    );
    refused(
        "ctl-hybrid",
        "[control]\nmetrics = \"prometheus\"\npolicy = \"hybrid\"\nactuator = \"exec\"\ncommand = [\"true\"]\n",
        &[],
        "control.policy = \"hybrid\"",
    );
    refused(
        "ctl-duration",
        GOOD,
        &["--lease-duration", "1s"],
        "`--lease-duration`: expected 2s..=10m",
    );
    refused(
        "ctl-duration2",
        GOOD,
        &["--lease-duration", "soon"],
        "`--lease-duration`",
    );
    refused(
        "ctl-keda-tls-alone",
        GOOD,
        &["--keda-tls-cert", "c.pem"],
        "--keda-tls-key",
    );
    refused(
        "ctl-keda-tls-no-keda",
        GOOD,
        &["--keda-tls-cert", "c.pem", "--keda-tls-key", "k.pem"],
        "`--keda-tls-cert` needs `--keda`",
    );
    if cfg!(feature = "keda") {
        refused(
            "ctl-keda-tls-missing",
            GOOD,
            &[
                "--keda",
                "127.0.0.1:0",
                "--keda-tls-cert",
                "/nonexistent/c.pem",
                "--keda-tls-key",
                "/nonexistent/k.pem",
            ],
            "`--keda-tls-cert`/`--keda-tls-key`: ",
        );
    }
    if !cfg!(feature = "keda") {
        refused(
            "ctl-keda",
            GOOD,
            &["--keda", "127.0.0.1:0"],
            "`--keda` needs foresight built with the `keda` feature",
        );
    }
    refused("ctl-identity", GOOD, &["--identity", "x"], "need `--lease`");
    refused(
        "ctl-lease-name",
        GOOD,
        &["--lease", "Bad_Name"],
        "for `--lease`: a Kubernetes name",
    );
    refused(
        "ctl-lease-ns",
        GOOD,
        &["--lease", "ctl", "--lease-namespace", &"n".repeat(64)],
        "for `--lease-namespace`",
    );
    refused(
        "ctl-identity-long",
        GOOD,
        &["--lease", "ctl", "--identity", &"i".repeat(300)],
        "for `--identity`",
    );
    refused(
        "ctl-admin",
        GOOD,
        &["--admin", "0.0.0.0:0"],
        "`--admin`: a loopback address",
    );
    #[cfg(not(feature = "kubernetes"))]
    refused(
        "ctl-lease",
        GOOD,
        &["--lease", "ctl"],
        "`kubernetes` feature",
    );
}

#[test]
fn a_controller_without_an_election_runs_its_loop_and_serves_its_status() {
    let p = controller_with(
        &tempdir("ctl-run"),
        "c",
        "[control]\ninterval = \"200ms\"\nstep = \"1s\"\nmodel_step = \"1m\"\nmetrics = \"prometheus\"\nprometheus_url = \"http://127.0.0.1:1\"\npolicy = \"static\"\nforecaster = \"none\"\nactuator = \"none\"\n",
        &[],
    );
    let admin = p.get("admin").to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = client();
        let leader: serde_json::Value =
            serde_json::from_str(&get(&c, &format!("http://{admin}/leader")).await.body).unwrap();
        assert_eq!(
            leader,
            serde_json::json!({ "election": false, "leader": true })
        );
        // The admin API's guard: a change from another site's page is refused.
        let mut s = std::net::TcpStream::connect(&admin).unwrap();
        s.write_all(
            b"POST /alerts HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\n\
              Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        let r = get(&c, &format!("http://{admin}/nowhere")).await;
        assert_eq!(r.status, 404, "{}", r.body);
        eventually(Duration::from_secs(10), "the loop steps", || async {
            let r = get(&c, &format!("http://{admin}/control")).await;
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            v["uptime_s"].as_f64().is_some_and(|u| u > 0.0) && v["leader"].is_null()
        })
        .await;
        // Its metrics: the loop's gauges (static: 1 instance wanted) and leadership, and none
        // of a proxy's families (it proxies nothing; summing them would mislead).
        eventually(
            Duration::from_secs(5),
            "the desired count exported",
            || async {
                get(&c, &format!("http://{admin}/metrics"))
                    .await
                    .body
                    .contains("foresight_control_desired_instances{service=\"default\"} 1")
            },
        )
        .await;
        let m = get(&c, &format!("http://{admin}/metrics")).await.body;
        assert!(m.contains("foresight_control_leader 1"), "{m}");
        assert!(
            m.contains("foresight_control_observed_rps{service=\"default\"}"),
            "{m}"
        );
        assert!(!m.contains("foresight_client_requests"), "{m}");
        assert!(!m.contains("foresight_requests"), "{m}");
        assert!(m.ends_with("# EOF\n"), "{m}");
    });
}

#[test]
fn with_a_token_the_admin_api_may_listen_beyond_loopback_and_asks_for_it() {
    let dir = tempdir("ctl-token");
    let cfg = dir.join("c.toml");
    let token = dir.join("token");
    std::fs::write(&token, "0123456789abcdef0123\n").unwrap();
    std::fs::write(
        &cfg,
        format!(
            "admin_token_file = \"{}\"\n[control]\nmetrics = \"prometheus\"\nprometheus_url = \"http://127.0.0.1:1\"\npolicy = \"static\"\nforecaster = \"none\"\nactuator = \"none\"\n",
            token.display()
        ),
    )
    .unwrap();
    let p = spawn(&[
        "controller",
        "--config",
        cfg.to_str().unwrap(),
        "--admin",
        "0.0.0.0:0",
    ]);
    let port = p.get("admin").rsplit(':').next().unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = client();
        let r = get(&c, &format!("http://127.0.0.1:{port}/control")).await;
        assert_eq!(r.status, 401, "{}", r.body);
        let r = get(&c, &format!("http://127.0.0.1:{port}/healthz")).await;
        assert_eq!(r.status, 200, "{}", r.body);
    });
}

/// A controller sees no traffic itself: when its rate source is down it holds (no decision,
/// no actuation) and says why, instead of reading the outage as zero load and scaling in.
#[test]
fn a_controller_without_a_rate_holds_instead_of_scaling_in() {
    let dir = tempdir("ctl-blind");
    let out = dir.join("replicas");
    let p = controller_with(
        &dir,
        "c",
        &format!(
            "[control]\ninterval = \"200ms\"\nstep = \"1s\"\nmetrics = \"prometheus\"\n\
             prometheus_url = \"http://127.0.0.1:1\"\npolicy = \"predictive\"\n\
             forecaster = \"moving-average\"\n\
             min = 2\nmax = 6\nactuator = \"exec\"\n\
             command = [\"sh\", \"-c\", \"echo $0 >> {}\", \"{{replicas}}\"]\n",
            out.display()
        ),
        &[],
    );
    let admin = p.get("admin").to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = client();
        eventually(Duration::from_secs(10), "the loop holds", || async {
            let v = control_status(&c, &admin).await;
            v["uptime_s"].as_f64().is_some_and(|u| u > 1.0)
                && v["metrics_source"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("none, holding") && s.contains("prometheus"))
        })
        .await;
        let v = control_status(&c, &admin).await;
        assert_eq!(v["decisions"], serde_json::json!([]), "{v}");
    });
    // Only the start-up apply of `min`.
    let written = std::fs::read_to_string(&out).unwrap_or_default();
    assert_eq!(written.trim(), "2", "{written}");
}
