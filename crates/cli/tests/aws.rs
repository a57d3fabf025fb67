//! `actuator = "aws-asg"` and `discovery = { type = "aws-asg" }` end to end (built with
//! `--features aws`): a `foresight controller` holding a static count sets a moto-emulated Auto
//! Scaling group's desired capacity and reads its InService instances back as ready; a
//! `foresight serve` scales a group and follows it into its pool, draining an instance that
//! leaves InService. moto's instances cannot be reached over the network, so these tests look
//! at membership, and traffic tests keep using local processes. Needs `moto_server` (skips
//! without it unless `CI` is set).
#![cfg(feature = "aws")]

mod common;

use std::time::Duration;

use aws_config::{Region, SdkConfig};
use aws_sdk_autoscaling::config::{Credentials, SharedCredentialsProvider};
use common::*;

/// moto's server on a free loopback port, killed on drop, with its URL; `None` (skip) when it
/// is not installed outside CI.
async fn moto() -> Option<(Killed, String)> {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("moto_server").exists()));
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "moto_server is not installed"
        );
        eprintln!("skipped: moto_server not found (pip install 'moto[server]')");
        return None;
    }
    let port = free_port();
    let moto = Killed(
        std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let c = client();
    eventually(Duration::from_secs(30), "moto listens", || async {
        send(&c, "GET", &format!("{url}/moto-api/"), "")
            .await
            .is_ok()
    })
    .await;
    Some((moto, url))
}

/// An SDK client for moto at `url`, and group `name` made there with `desired` of 1..=4.
async fn group_at(url: &str, name: &str, desired: i32) -> aws_sdk_autoscaling::Client {
    let cfg: SdkConfig = foresight_aws::sdk_config(Some(url))
        .await
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "moto",
        )))
        .region(Region::new("us-east-1"))
        .build();
    let asg = aws_sdk_autoscaling::Client::new(&cfg);
    asg.create_launch_configuration()
        .launch_configuration_name(format!("{name}-lc"))
        .image_id("ami-12c6146b")
        .instance_type("t2.micro")
        .send()
        .await
        .unwrap();
    asg.create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_configuration_name(format!("{name}-lc"))
        .min_size(1)
        .max_size(4)
        .desired_capacity(desired)
        .availability_zones("us-east-1a")
        .send()
        .await
        .unwrap();
    asg
}

const AWS_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_scales_a_group_and_follows_it_into_the_pool() {
    let Some((_moto, url)) = moto().await else {
        return;
    };
    let asg = group_at(&url, "shop", 1).await;
    let dir = tempdir("aws-asg-discovery");
    let toml = format!(
        "drain_timeout = \"1s\"\n\
         [discovery]\ntype = \"aws-asg\"\ngroup = \"shop\"\nport = 8080\ninterval = \"1s\"\n\
         aws_endpoint = \"{url}\"\n\
         [control]\ninterval = \"200ms\"\nstep = \"1s\"\npolicy = \"static\"\n\
         forecaster = \"none\"\nmin = 3\nmax = 4\nactuator = \"aws-asg\"\ngroup = \"shop\"\n\
         aws_endpoint = \"{url}\"\n"
    );
    let cfg = dir.join("foresight.toml");
    std::fs::write(&cfg, toml).unwrap();
    let p = serve_env(&cfg, "127.0.0.1:0", &[], &AWS_ENV);
    let admin = p.get("admin").to_string();
    let c = client();
    // The loop sets the group to 3; discovery brings the 3 instances' private addresses in.
    eventually(
        Duration::from_secs(20),
        "3 instances in the pool",
        || async { members(&c, &admin).await.len() == 3 },
    )
    .await;
    let pool = members(&c, &admin).await;
    assert!(
        pool.iter()
            .all(|m| m.starts_with("http://") && m.ends_with(":8080")),
        "{pool:?}"
    );

    // One leaves InService (the call Foresight's own scale-in makes): it is drained, then
    // leaves the pool.
    let g = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("shop")
        .send()
        .await
        .unwrap();
    let id = g.auto_scaling_groups()[0].instances()[0]
        .instance_id()
        .unwrap()
        .to_string();
    asg.enter_standby()
        .auto_scaling_group_name("shop")
        .instance_ids(&id)
        .should_decrement_desired_capacity(true)
        .send()
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "2 instances left", || async {
        members(&c, &admin).await.len() == 2 && backends(&c, &admin).await.len() == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_scales_an_auto_scaling_group_and_reads_it_back() {
    let Some((_moto, url)) = moto().await else {
        return;
    };
    let asg = group_at(&url, "web", 1).await;
    let c = client();

    let dir = tempdir("aws-asg");
    let toml = format!(
        "[control]\ninterval = \"200ms\"\nstep = \"1s\"\nmetrics = \"prometheus\"\n\
         prometheus_url = \"http://127.0.0.1:1\"\npolicy = \"static\"\nforecaster = \"none\"\n\
         min = 3\nmax = 6\nactuator = \"aws-asg\"\ngroup = \"web\"\naws_endpoint = \"{url}\"\n"
    );
    let cfg_path = dir.join("c.toml");
    std::fs::write(&cfg_path, toml).unwrap();
    let ctl = spawn_env(
        &[
            "controller",
            "--config",
            cfg_path.to_str().unwrap(),
            "--admin",
            "127.0.0.1:0",
        ],
        &AWS_ENV,
    );
    let admin = ctl.get("admin").to_string();
    eventually(
        Duration::from_secs(20),
        "the group at 3, read back ready",
        || async {
            let s = control_status(&c, &admin).await;
            s["ready"] == 3 && s["actuator"] == "aws auto scaling group web"
        },
    )
    .await;
    let g = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("web")
        .send()
        .await
        .unwrap();
    assert_eq!(g.auto_scaling_groups()[0].desired_capacity(), Some(3));
}
