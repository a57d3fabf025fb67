//! `discovery = { type = "aws-asg", group, port }`: an Auto Scaling group's instances as a
//! pool's instances.
//!
//! Every interval the group is read (`DescribeAutoScalingGroups`) and the private addresses
//! of instances not seen before are looked up (`DescribeInstances`; an instance keeps its
//! private address for life, so each is asked once). The pure [`endpoints`] turns both into
//! the set of endpoints that `foresight_proxy::discovery::follow` brings the pool to: healthy,
//! running `InService` instances serve; an instance leaving `InService` (Foresight's own
//! scale-in puts it in `Standby`; AWS's own moves it to `Terminating`) is drained, and one
//! that leaves the group is removed after its drain. A failed read keeps the pool as it was
//! and is logged; the next interval tries again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_autoscaling::Client;
use foresight_proxy::config::AwsAsgDiscovery;
use foresight_proxy::discovery::{follow_from, Endpoint, Target};
use foresight_proxy::{Pool, Supervisor};

use crate::ec2::{Ec2, Ec2Instance};
use crate::group::Group;

/// The endpoints of `group`'s members whose private address `addresses` knows, on `port`.
pub fn endpoints(
    group: &Group,
    instances: &HashMap<String, Ec2Instance>,
    port: u16,
) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = group
        .members
        .iter()
        .filter_map(|m| {
            let i = instances.get(&m.id)?;
            let ip = i.private_ip?;
            Some(Endpoint {
                address: SocketAddr::new(ip, port),
                serving: m.in_service() && m.healthy && i.state == "running",
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Reads a group and its instances' addresses.
pub struct Reader {
    client: Client,
    ec2: Ec2,
    group: String,
    known: HashMap<String, Ec2Instance>,
}

impl Reader {
    /// Group `group` on `config`.
    pub fn new(config: &aws_config::SdkConfig, group: &str) -> Reader {
        Reader {
            client: Client::new(config),
            ec2: Ec2::new(config),
            group: group.to_string(),
            known: HashMap::new(),
        }
    }

    /// The group's endpoints on `port` now.
    pub async fn read(&mut self, port: u16) -> Result<Vec<Endpoint>, String> {
        let fail = |m: String| format!("auto scaling group {}: {m}", self.group);
        self.ec2.credentials().await.map_err(fail)?;
        let group = Group::read(&self.client, &self.group).await.map_err(fail)?;
        self.known
            .retain(|id, _| group.members.iter().any(|m| m.id == *id));
        let unknown: Vec<String> = group
            .members
            .iter()
            .filter(|m| {
                self.known
                    .get(&m.id)
                    .is_none_or(|i| i.private_ip.is_none() || i.state != "running")
            })
            .map(|m| m.id.clone())
            .collect();
        if !unknown.is_empty() {
            for i in self.ec2.describe_instances(&unknown).await.map_err(fail)? {
                self.known.insert(i.id.clone(), i);
            }
        }
        Ok(endpoints(&group, &self.known, port))
    }
}

/// Follows `d`'s group into `pool` as `supervisor`'s tasks, until it shuts down; drained
/// instances get `drain_timeout` to finish their requests.
pub fn start(
    pool: Arc<Pool>,
    d: AwsAsgDiscovery,
    drain_timeout: Duration,
    supervisor: &Supervisor,
) {
    let target = Target {
        tls: d.tls,
        weight: d.weight,
    };
    let tx = follow_from(&pool, target, drain_timeout, supervisor);
    let service = pool.service().to_string();
    supervisor.spawn(format!("aws-asg discovery of {service}"), async move {
        let config = crate::sdk_config(d.endpoint.as_deref()).await;
        let mut reader = Reader::new(&config, &d.group);
        let mut last_error: Option<String> = None;
        loop {
            match reader.read(d.port).await {
                Ok(set) => {
                    if last_error.take().is_some() {
                        tracing::info!(%service, group = %d.group, "aws-asg discovery recovered");
                    }
                    tx.send_if_modified(|old| {
                        let changed = old.as_ref() != Some(&set);
                        if changed {
                            let serving = set.iter().filter(|e| e.serving).count();
                            tracing::info!(%service, group = %d.group, instances = set.len(), serving, "aws-asg discovery");
                            *old = Some(set);
                        }
                        changed
                    });
                }
                Err(e) => {
                    if last_error.as_ref() != Some(&e) {
                        tracing::warn!(%service, error = %e, "aws-asg discovery failed; the pool keeps its instances");
                    }
                    last_error = Some(e);
                }
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(d.interval).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::group::Member;

    fn member(id: &str, lifecycle: &str, healthy: bool) -> Member {
        Member {
            id: id.into(),
            zone: "a".into(),
            lifecycle: lifecycle.into(),
            healthy,
            draining_since: None,
        }
    }

    fn instance(id: &str, ip: Option<&str>, state: &str) -> (String, Ec2Instance) {
        (
            id.into(),
            Ec2Instance {
                id: id.into(),
                private_ip: ip.map(|s| s.parse::<IpAddr>().unwrap()),
                state: state.into(),
                ..Ec2Instance::default()
            },
        )
    }

    #[test]
    fn only_healthy_running_in_service_instances_serve() {
        let group = Group {
            min: 0,
            max: 9,
            desired: 5,
            members: vec![
                member("i-1", "InService", true),
                member("i-2", "Standby", true),
                member("i-3", "InService", false),
                member("i-4", "Pending", true),
                member("i-5", "InService", true),
                member("i-6", "Terminating:Wait", true),
            ],
        };
        let instances: HashMap<String, Ec2Instance> = [
            instance("i-1", Some("10.0.0.1"), "running"),
            instance("i-2", Some("10.0.0.2"), "running"),
            instance("i-3", Some("10.0.0.3"), "running"),
            instance("i-4", None, "pending"),
            instance("i-5", Some("10.0.0.5"), "stopping"),
            instance("i-6", Some("10.0.0.6"), "running"),
        ]
        .into();
        let got: Vec<(String, bool)> = endpoints(&group, &instances, 8080)
            .into_iter()
            .map(|e| (e.address.to_string(), e.serving))
            .collect();
        assert_eq!(
            got,
            [
                ("10.0.0.1:8080".to_string(), true),
                ("10.0.0.2:8080".to_string(), false),
                ("10.0.0.3:8080".to_string(), false),
                ("10.0.0.5:8080".to_string(), false),
                ("10.0.0.6:8080".to_string(), false),
            ]
        );
    }
}
