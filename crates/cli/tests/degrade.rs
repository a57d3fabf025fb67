//! Degrading, not failing: a missing or corrupt model leaves the loop scaling reactively and
//! saying why; a failing actuator is retried with backoff and never asked for more than max.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_model_means_reactive_scaling_with_a_reason() {
    let dir = tempdir("degrade-model");
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("model.json"), "{ not json").unwrap();
    let config = format!(
        "[control]\ninterval = \"200ms\"\npolicy = \"hybrid\"\nforecaster = \"lstm\"\nmodel = \"{}\"\nactuator = \"none\"\n",
        model.display()
    );
    let p = proxy(&dir, &config, &[]);
    let http = client();
    let admin = p.get("admin").to_string();
    eventually(
        Duration::from_secs(10),
        "the loop reports the unusable model",
        || async {
            let s = control_status(&http, &admin).await;
            s["forecaster"]
                .as_str()
                .unwrap_or("")
                .starts_with("unavailable: cannot load")
                && s["forecast"].is_null()
                && s["uptime_s"].as_f64().unwrap_or(0.0) > 0.5
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_actuator_is_retried_with_backoff_and_capped() {
    let dir = tempdir("degrade-actuator");
    let log = dir.join("calls.log");
    let count = dir.join("count");
    // Fails its first three calls, then succeeds; every call appends the count it got.
    let script = dir.join("scale.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$1\" >> {log}\nn=$(cat {count} 2>/dev/null || echo 0)\necho $((n+1)) > {count}\n[ \"$n\" -ge 3 ] || {{ echo 'quota exceeded' >&2; exit 1; }}\n",
            log = log.display(),
            count = count.display()
        ),
    )
    .unwrap();
    let config = format!(
        "[control]\ninterval = \"200ms\"\npolicy = \"static\"\nmin = 3\nmax = 3\nforecaster = \"none\"\nactuator = \"exec\"\ncommand = [\"sh\", \"{}\", \"{{replicas}}\"]\n",
        script.display()
    );
    let p = proxy(&dir, &config, &[]);
    let http = client();
    let admin = p.get("admin").to_string();
    eventually(Duration::from_secs(5), "the error is shown", || async {
        control_status(&http, &admin).await["actuator_error"]
            .as_str()
            .is_some_and(|e| e.contains("quota exceeded"))
    })
    .await;
    eventually(
        Duration::from_secs(20),
        "a later retry succeeds",
        || async { std::fs::read_to_string(&count).is_ok_and(|c| c.trim() == "4") },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let calls: Vec<u32> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert!(calls.iter().all(|&c| c <= 3), "never above max: {calls:?}");
    assert_eq!(
        calls.len(),
        4,
        "no call once applied; retries were spaced: {calls:?}"
    );
    let s = control_status(&http, &admin).await;
    assert!(s["actuator_error"].is_null(), "{s}");
}
