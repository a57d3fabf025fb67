//! The `aws-asg` actuator and discovery against moto's server mode (an AWS emulator, PyPI
//! `moto[server]`), started on a loopback port: scale out and in, the state read back, the
//! group's own range, scale-in that drains in `Standby` before it terminates, the group's
//! instances and their private addresses as endpoints, and clear errors for an unknown group,
//! missing or expired credentials and an unreachable endpoint.
//! Without `moto_server` on PATH the tests skip, unless `CI` is set (then they fail).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_autoscaling::config::Credentials;
use foresight_actuate::{Actuator, ActuatorError};
use foresight_aws::discovery::Reader;
use foresight_aws::ec2::Ec2;
use foresight_aws::{sdk_config, AsgActuator, DRAINING_TAG};

#[path = "support/failing_front.rs"]
mod failing_front;
use failing_front::FailingFront;

/// A drain period long enough that no test waits on it by accident.
const DRAIN: Duration = Duration::from_secs(600);

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
    let a = AsgActuator::new(&cfg, "web", 10, DRAIN);

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
    let g = a.describe().await.unwrap();
    assert_eq!((g.desired, g.in_service()), (1, 1));
    // The three removed are draining in Standby, not gone.
    let standby = g.members.iter().filter(|m| m.ours_draining()).count();
    assert_eq!(standby, 3);

    // Below the group's minimum: its minimum. (Foresight's `min` is the loop's business.)
    a.apply(0).await.unwrap();
    assert_eq!(a.describe().await.unwrap().desired, 1);

    // Above the group's maximum: its maximum, and the caller is told which limit applied.
    // (moto itself would accept 9; AWS would refuse it: the actuator clamps either way.)
    let e = a.apply(9).await.unwrap_err();
    assert_eq!(e, ActuatorError::AboveMax { asked: 9, max: 5 });
    assert_eq!(a.describe().await.unwrap().desired, 5);

    // Foresight's own max below the group's.
    let small = AsgActuator::new(&cfg, "web", 3, DRAIN);
    let e = small.apply(4).await.unwrap_err();
    assert_eq!(e, ActuatorError::AboveMax { asked: 4, max: 3 });
    assert_eq!(small.describe().await.unwrap().desired, 3);
}

#[tokio::test]
async fn errors_name_the_group_and_the_cause() {
    let Some(m) = moto() else { return };
    let cfg = config(&m.url).await;
    let unknown = AsgActuator::new(&cfg, "nope", 5, DRAIN);
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
    let e = AsgActuator::new(&anonymous, "web", 5, DRAIN)
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
    let e = AsgActuator::new(&closed, "web", 5, DRAIN)
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

/// The group's members as `(lifecycle, draining)`, sorted.
async fn lifecycles(a: &AsgActuator) -> Vec<(String, bool)> {
    let mut v: Vec<(String, bool)> = a
        .describe()
        .await
        .unwrap()
        .members
        .iter()
        .map(|m| (m.lifecycle.clone(), m.draining_since.is_some()))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn scale_in_drains_in_standby_then_terminates() {
    let Some(m) = moto() else { return };
    let cfg = config(&m.url).await;
    group(&cfg, "api", 0, 6, 4).await;
    let asg = aws_sdk_autoscaling::Client::new(&cfg);
    let ids: Vec<String> = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("api")
        .send()
        .await
        .unwrap()
        .auto_scaling_groups()[0]
        .instances()
        .iter()
        .map(|i| i.instance_id().unwrap().to_string())
        .collect();
    // An operator's instance in Standby, which Foresight must never touch.
    asg.enter_standby()
        .auto_scaling_group_name("api")
        .instance_ids(&ids[0])
        .should_decrement_desired_capacity(true)
        .send()
        .await
        .unwrap();

    let drain = Duration::from_secs(2);
    let a = AsgActuator::new(&cfg, "api", 6, drain);
    a.apply(1).await.unwrap();
    let in_standby = |serving: usize, n: usize| {
        let mut v = vec![("InService".to_string(), false); serving];
        v.extend(std::iter::repeat_n(("Standby".to_string(), true), n));
        v.push(("Standby".to_string(), false));
        v.sort();
        v
    };
    assert_eq!(
        lifecycles(&a).await,
        in_standby(1, 2),
        "drained, not terminated"
    );
    let s = a.state().await.unwrap();
    assert_eq!((s.desired, s.ready), (1, Some(1)));
    let tagged = Ec2::new(&cfg).describe_instances(&ids).await.unwrap();
    assert_eq!(
        tagged
            .iter()
            .filter(|i| i.tags.contains_key(DRAINING_TAG))
            .count(),
        2
    );

    // A surge while they drain brings one back at once, without a new instance.
    a.apply(2).await.unwrap();
    assert_eq!(lifecycles(&a).await, in_standby(2, 1));
    assert_eq!(a.describe().await.unwrap().desired, 2);

    // After the drain period, the next look at the group terminates what drained.
    tokio::time::sleep(drain + Duration::from_millis(200)).await;
    let s = a.state().await.unwrap();
    assert_eq!((s.desired, s.ready), (2, Some(2)));
    let left = lifecycles(&a).await;
    assert_eq!(
        left,
        [
            ("InService".to_string(), false),
            ("InService".to_string(), false),
            ("Standby".to_string(), false)
        ],
        "the operator's Standby instance is still there"
    );
    let states = Ec2::new(&cfg).describe_instances(&ids).await.unwrap();
    let gone = states
        .iter()
        .filter(|i| i.state == "terminated" || i.state == "shutting-down")
        .count();
    assert_eq!(gone, 1, "{states:?}");
}

#[tokio::test]
async fn a_failed_enter_standby_leaves_no_draining_tag_behind() {
    let Some(m) = moto() else { return };
    let cfg = config(&m.url).await;
    group(&cfg, "tags", 0, 6, 3).await;
    let ids: Vec<String> = AsgActuator::new(&cfg, "tags", 6, DRAIN)
        .describe()
        .await
        .unwrap()
        .members
        .into_iter()
        .map(|m| m.id)
        .collect();
    // Every call reaches moto but EnterStandby, which fails after the instances were tagged.
    let front = FailingFront::start(m.url.trim_start_matches("http://"), "EnterStandby").await;
    let a = AsgActuator::new(&config(&front.url).await, "tags", 6, DRAIN);
    let e = a.apply(1).await.unwrap_err().to_string();
    assert!(e.contains("injected") && e.contains("tags"), "{e}");
    let tagged: Vec<String> = Ec2::new(&cfg)
        .describe_instances(&ids)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.tags.contains_key(DRAINING_TAG))
        .map(|i| i.id)
        .collect();
    assert!(
        tagged.is_empty(),
        "instances still in service keep no draining tag: {tagged:?}"
    );
    let g = a.describe().await.unwrap();
    assert_eq!((g.desired, g.in_service()), (3, 3), "nothing changed");
}

#[tokio::test]
async fn discovery_reads_in_service_instances_and_their_private_addresses() {
    let Some(m) = moto() else { return };
    let cfg = config(&m.url).await;
    group(&cfg, "disc", 0, 5, 3).await;
    let mut reader = Reader::new(&cfg, "disc");
    let set = reader.read(8080).await.unwrap();
    assert_eq!(set.len(), 3, "{set:?}");
    assert!(set.iter().all(|e| e.serving && e.address.port() == 8080));
    assert!(set.iter().all(|e| e.address.ip().is_ipv4()));

    // Foresight's scale-in: the removed instance leaves InService and is no longer served.
    let a = AsgActuator::new(&cfg, "disc", 5, DRAIN);
    a.apply(2).await.unwrap();
    let set = reader.read(8080).await.unwrap();
    let serving = set.iter().filter(|e| e.serving).count();
    assert_eq!((set.len(), serving), (3, 2), "{set:?}");

    // Drained and terminated: out of the group, out of the set.
    a.apply(0).await.unwrap();
    let now = AsgActuator::new(&cfg, "disc", 5, Duration::ZERO);
    assert_eq!(now.state().await.unwrap().desired, 0);
    assert_eq!(reader.read(8080).await.unwrap(), []);

    let e = Reader::new(&cfg, "nope").read(80).await.unwrap_err();
    assert!(
        e.contains("auto scaling group nope") && e.contains("not found"),
        "{e}"
    );
}

#[tokio::test]
async fn expired_credentials_are_refused_with_a_clear_message() {
    let Some(m) = moto() else { return };
    // The standard way such credentials arrive: a profile's credential_process.
    let dir = std::env::temp_dir().join(format!("foresight-aws-expired-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let answer = dir.join("answer.json");
    std::fs::write(
        &answer,
        r#"{"Version": 1, "AccessKeyId": "ASIAEXPIRED", "SecretAccessKey": "s",
            "SessionToken": "t", "Expiration": "2020-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let config_file = dir.join("config");
    std::fs::write(
        &config_file,
        format!(
            "[profile old]\nregion = us-east-1\ncredential_process = cat {}\n",
            answer.display()
        ),
    )
    .unwrap();
    let files = aws_runtime::env_config::file::EnvConfigFiles::builder()
        .with_file(
            aws_runtime::env_config::file::EnvConfigFileKind::Config,
            &config_file,
        )
        .build();
    let provider = aws_config::profile::ProfileFileCredentialsProvider::builder()
        .profile_files(files)
        .profile_name("old")
        .configure(
            &aws_config::provider_config::ProviderConfig::default()
                .with_http_client(sdk_config(None).await.http_client().unwrap()),
        )
        .build();
    let cfg = config(&m.url)
        .await
        .into_builder()
        .credentials_provider(aws_sdk_autoscaling::config::SharedCredentialsProvider::new(
            provider,
        ))
        .build();
    let e = AsgActuator::new(&cfg, "web", 5, DRAIN)
        .apply(2)
        .await
        .unwrap_err()
        .to_string();
    eprintln!("expired: {e}");
    assert!(
        e.contains("auto scaling group web") && e.contains("expired at 2020-01-01T00:00:00Z"),
        "{e}"
    );
    let e = Reader::new(&cfg, "web").read(80).await.unwrap_err();
    assert!(e.contains("expired at 2020-01-01"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
