//! The `aws-asg` actuator against moto's server mode (an AWS emulator, PyPI `moto[server]`),
//! started on a loopback port: scale out and in, the state read back, the group's own range,
//! and clear errors for an unknown group, missing credentials and an unreachable endpoint.
//! Without `moto_server` on PATH the tests skip, unless `CI` is set (then they fail).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_autoscaling::config::Credentials;
use foresight_actuate::{Actuator, ActuatorError};
use foresight_aws::{sdk_config, AsgActuator};

struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto() -> Option<Moto> {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("moto_server").exists()));
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "moto_server is not installed (pip install 'moto[server]')"
        );
        eprintln!("skipped: moto_server not found (pip install 'moto[server]')");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

/// Dummy credentials and a region, as for any emulator.
async fn config(url: &str) -> SdkConfig {
    let base = sdk_config(Some(url)).await;
    base.into_builder()
        .credentials_provider(aws_sdk_autoscaling::config::SharedCredentialsProvider::new(
            Credentials::new("test", "test", None, None, "moto"),
        ))
        .region(Region::new("us-east-1"))
        .build()
}

/// Group `name` with min..=max and `desired`.
async fn group(config: &SdkConfig, name: &str, min: i32, max: i32, desired: i32) {
    let c = aws_sdk_autoscaling::Client::new(config);
    c.create_launch_configuration()
        .launch_configuration_name(format!("{name}-lc"))
        .image_id("ami-12c6146b")
        .instance_type("t2.micro")
        .send()
        .await
        .unwrap();
    c.create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_configuration_name(format!("{name}-lc"))
        .min_size(min)
        .max_size(max)
        .desired_capacity(desired)
        .availability_zones("us-east-1a")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn scales_within_the_groups_range_and_reads_it_back() {
    let Some(m) = moto() else { return };
    let cfg = config(&m.url).await;
    group(&cfg, "web", 1, 5, 2).await;
    let a = AsgActuator::new(&cfg, "web", 10);

    let s = a.state().await.unwrap();
    assert_eq!((s.desired, s.ready, s.starting), (2, Some(2), Some(0)));

    a.apply(4).await.unwrap();
    let g = a.describe().await.unwrap();
    assert_eq!(g.desired, 4);
    assert_eq!(
        a.state().await.unwrap().ready,
        Some(4),
        "moto starts them at once"
    );

    a.apply(1).await.unwrap();
    assert_eq!(a.describe().await.unwrap().desired, 1);

    // Below the group's minimum: its minimum. (Foresight's `min` is the loop's business.)
    a.apply(0).await.unwrap();
    assert_eq!(a.describe().await.unwrap().desired, 1);

    // Above the group's maximum: its maximum, and the caller is told which limit applied.
    // (moto itself would accept 9; AWS would refuse it: the actuator clamps either way.)
    let e = a.apply(9).await.unwrap_err();
    assert_eq!(e, ActuatorError::AboveMax { asked: 9, max: 5 });
    assert_eq!(a.describe().await.unwrap().desired, 5);

    // Foresight's own max below the group's.
    let small = AsgActuator::new(&cfg, "web", 3);
    let e = small.apply(4).await.unwrap_err();
    assert_eq!(e, ActuatorError::AboveMax { asked: 4, max: 3 });
    assert_eq!(small.describe().await.unwrap().desired, 3);
}

#[tokio::test]
async fn errors_name_the_group_and_the_cause() {
    let Some(m) = moto() else { return };
    let cfg = config(&m.url).await;
    let unknown = AsgActuator::new(&cfg, "nope", 5);
    let e = unknown.apply(2).await.unwrap_err().to_string();
    assert!(
        e.contains("auto scaling group nope") && e.contains("not found"),
        "{e}"
    );

    // No credentials anywhere: the SDK's message says so.
    let anonymous = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&m.url)
        .http_client(sdk_config(None).await.http_client().unwrap())
        .build();
    let e = AsgActuator::new(&anonymous, "web", 5)
        .describe()
        .await
        .unwrap_err()
        .to_string();
    eprintln!("no credentials: {e}");
    assert!(
        e.contains("auto scaling group web") && e.contains("credentials"),
        "{e}"
    );

    // Nothing listening at the endpoint: a dispatch failure, after the retries, in bounded
    // time.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = config(&format!("http://127.0.0.1:{port}")).await;
    let started = Instant::now();
    let e = AsgActuator::new(&closed, "web", 5)
        .describe()
        .await
        .unwrap_err()
        .to_string();
    eprintln!("unreachable: {e} ({:?})", started.elapsed());
    assert!(e.contains("auto scaling group web"), "{e}");
    assert!(
        e.contains("dispatch failure") || e.contains("connect"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(25));
}
