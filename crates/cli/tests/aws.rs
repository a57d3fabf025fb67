//! `actuator = "aws-asg"` end to end (built with `--features aws`): a `foresight controller`
//! holding a static count sets a moto-emulated Auto Scaling group's desired capacity and reads
//! its InService instances back as ready. moto's instances cannot be reached over the network,
//! so traffic tests keep using local processes. Needs `moto_server` (skips without it unless
//! `CI` is set).
#![cfg(feature = "aws")]

mod common;

use std::time::Duration;

use aws_config::{Region, SdkConfig};
use aws_sdk_autoscaling::config::{Credentials, SharedCredentialsProvider};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_scales_an_auto_scaling_group_and_reads_it_back() {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("moto_server").exists()));
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "moto_server is not installed"
        );
        eprintln!("skipped: moto_server not found (pip install 'moto[server]')");
        return;
    }
    let port = free_port();
    let _moto = Killed(
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
    let cfg: SdkConfig = foresight_aws::sdk_config(Some(&url))
        .await
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "moto",
        )))
        .region(Region::new("us-east-1"))
        .build();
    let asg = aws_sdk_autoscaling::Client::new(&cfg);
    asg.create_launch_configuration()
        .launch_configuration_name("lc")
        .image_id("ami-12c6146b")
        .instance_type("t2.micro")
        .send()
        .await
        .unwrap();
    asg.create_auto_scaling_group()
        .auto_scaling_group_name("web")
        .launch_configuration_name("lc")
        .min_size(1)
        .max_size(4)
        .desired_capacity(1)
        .availability_zones("us-east-1a")
        .send()
        .await
        .unwrap();

    let dir = tempdir("aws-asg");
    let toml = format!(
        "[control]\ninterval = \"200ms\"\nstep = \"1s\"\nmetrics = \"prometheus\"\n\
         prometheus_url = \"http://127.0.0.1:1\"\npolicy = \"static\"\nforecaster = \"none\"\n\
         min = 3\nmax = 6\nactuator = \"aws-asg\"\ngroup = \"web\"\naws_endpoint = \"{url}\"\n"
    );
    let cfg_path = dir.join("c.toml");
    std::fs::write(&cfg_path, toml).unwrap();
    let mut ctl = std::process::Command::new(BIN)
        .args([
            "controller",
            "--config",
            cfg_path.to_str().unwrap(),
            "--admin",
            "127.0.0.1:0",
        ])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(ctl.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ctl = Killed(ctl);
    let admin = line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("admin="))
        .unwrap()
        .to_string();
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
