//! The local process pool against the real proxy: instances join only once ready, leave
//! without losing a request, are replaced when they die, and never exceed the maximum.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use foresight_actuate::{Actuator, ActuatorError, AdminApi, Phase, ProcessPool, ProcessPoolConfig};

fn alive(pid: u32) -> bool {
    // A reaped process has no /proc entry; a zombie would show state Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

async fn ready(pool: &ProcessPool) -> usize {
    pool.state().await.unwrap().ready.unwrap()
}

async fn proxy_addresses(c: &HttpClient, admin: &str) -> BTreeSet<String> {
    backends(c, admin)
        .await
        .iter()
        .map(|b| b["address"].as_str().unwrap().to_string())
        .collect()
}

fn pool_addresses(pool: &ProcessPool, phase: Phase) -> BTreeSet<String> {
    pool.instances()
        .into_iter()
        .filter(|i| i.phase == phase)
        .filter_map(|i| i.address)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_pool_joins_when_ready_drains_without_loss_and_respects_max() {
    let dir = tempdir("process-pool");
    let proxy = proxy(&dir, "", &[]);
    let (admin, url) = (
        proxy.get("admin").to_string(),
        proxy.get("proxy").to_string(),
    );
    let http = client();

    let mut config = ProcessPoolConfig::new(3);
    config.program = BIN.into();
    config.args = ["--startup-delay", "700ms", "--route", "/work=20ms"]
        .map(String::from)
        .to_vec();
    let pool = ProcessPool::start(config, Box::new(AdminApi::new(format!("http://{admin}"))));

    // Two instances: launched at once, but the proxy hears of them only once /ready says so.
    pool.apply(2).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "two processes launched",
        || async {
            pool.instances()
                .iter()
                .filter(|i| i.address.is_some())
                .count()
                == 2
        },
    )
    .await;
    assert_eq!(ready(&pool).await, 0, "still in their start-up delay");
    assert!(proxy_addresses(&http, &admin).await.is_empty());
    eventually(Duration::from_secs(20), "two ready", || async {
        ready(&pool).await == 2
    })
    .await;
    assert_eq!(
        proxy_addresses(&http, &admin).await,
        pool_addresses(&pool, Phase::Ready)
    );

    // Scale in under open-loop load: the leaving instance drains, nothing fails.
    let plan = foresight_loadgen::Plan {
        target: format!("http://{url}"),
        paths: vec!["/work".into()],
        mode: foresight_loadgen::Mode::Open {
            profile: foresight_workload::Profile::Constant { rate: 150.0 },
            arrivals: foresight_loadgen::Arrivals::Uniform,
        },
        duration: Duration::from_secs(3),
        timeout: Duration::from_secs(5),
        group_by: Some("x-foresight-instance".into()),
    };
    let load = tokio::spawn(async move { foresight_loadgen::run(&plan).await.unwrap() });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leaving: Vec<u32> = pool.instances().iter().filter_map(|i| i.pid).collect();
    pool.apply(1).await.unwrap();
    let report = load.await.unwrap();
    assert_eq!(report.failures(), 0, "{:?}", report.statuses);
    assert!(report.sent >= 440, "sent {}", report.sent);
    assert_eq!(
        report.groups.len(),
        2,
        "both instances served before the drain"
    );
    eventually(Duration::from_secs(10), "one instance left", || async {
        pool.instances().len() == 1 && proxy_addresses(&http, &admin).await.len() == 1
    })
    .await;
    let stopped = leaving[1];
    assert!(
        !alive(stopped),
        "the newest instance (pid {stopped}) was stopped"
    );
    assert!(alive(leaving[0]));

    // Asking for more than the maximum applies the maximum and says so.
    let e = pool.apply(5).await.unwrap_err();
    assert_eq!(e, ActuatorError::AboveMax { asked: 5, max: 3 });
    eventually(Duration::from_secs(20), "three ready", || async {
        ready(&pool).await == 3
    })
    .await;
    assert_eq!(pool.instances().len(), 3);

    // An instance that dies is taken out of the proxy and replaced.
    let victim = pool.instances()[0].clone();
    std::process::Command::new("kill")
        .args(["-9", &victim.pid.unwrap().to_string()])
        .status()
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "the dead instance replaced",
        || async {
            let now = pool.instances();
            ready(&pool).await == 3 && now.iter().all(|i| i.pid != victim.pid)
        },
    )
    .await;
    assert!(!proxy_addresses(&http, &admin)
        .await
        .contains(victim.address.as_ref().unwrap()));
    assert!(pool.last_error().unwrap().contains("exited while serving"));

    // Shutdown drains and stops everything.
    let pids: Vec<u32> = pool.instances().iter().filter_map(|i| i.pid).collect();
    pool.shutdown(Duration::from_secs(10)).await;
    assert!(proxy_addresses(&http, &admin).await.is_empty());
    for pid in pids {
        assert!(!alive(pid), "pid {pid} still running");
    }
}
