//! An Auto Scaling group as Foresight reads it: its range, its desired capacity and its
//! instances with their lifecycle state, health, zone and (from EC2's tags) whether Foresight
//! is draining them.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_sdk_autoscaling::error::DisplayErrorContext;
use aws_sdk_autoscaling::types::AutoScalingGroup;
use aws_sdk_autoscaling::Client;

use crate::ec2::Ec2Instance;

/// The EC2 tag that marks an instance Foresight put in `Standby` to drain it; its value is
/// when, in seconds since the Unix epoch.
pub const DRAINING_TAG: &str = "foresight:draining-since";

/// One instance of the group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// `i-…`.
    pub id: String,
    /// Its Availability Zone.
    pub zone: String,
    /// `InService`, `Pending`, `Standby`, `Terminating`, …
    pub lifecycle: String,
    /// Auto Scaling's health status is `Healthy`.
    pub healthy: bool,
    /// When Foresight began draining it (its [`DRAINING_TAG`]), if it did.
    pub draining_since: Option<SystemTime>,
}

impl Member {
    /// In service: counted as ready.
    pub fn in_service(&self) -> bool {
        self.lifecycle == "InService"
    }
    /// `Pending`, `Pending:Wait`, `Pending:Proceed`: counted as starting.
    pub fn pending(&self) -> bool {
        self.lifecycle.starts_with("Pending")
    }
    /// In `Standby` because Foresight is draining it.
    pub fn ours_draining(&self) -> bool {
        self.lifecycle == "Standby" && self.draining_since.is_some()
    }
}

/// The range an Auto Scaling group allows, and the instances it has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// `MinSize`.
    pub min: usize,
    /// `MaxSize`.
    pub max: usize,
    /// `DesiredCapacity`.
    pub desired: usize,
    /// Its instances.
    pub members: Vec<Member>,
}

impl Group {
    pub(crate) fn from_sdk(g: &AutoScalingGroup) -> Group {
        let count = |n: Option<i32>| usize::try_from(n.unwrap_or(0).max(0)).unwrap_or(0);
        Group {
            min: count(g.min_size()),
            max: count(g.max_size()),
            desired: count(g.desired_capacity()),
            members: g
                .instances()
                .iter()
                .map(|i| Member {
                    id: i.instance_id().unwrap_or_default().to_string(),
                    zone: i.availability_zone().unwrap_or_default().to_string(),
                    lifecycle: i
                        .lifecycle_state()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    healthy: i.health_status() == Some("Healthy"),
                    draining_since: None,
                })
                .collect(),
        }
    }

    /// Group `name` as `DescribeAutoScalingGroups` tells it now (tags not read).
    pub(crate) async fn read(client: &Client, name: &str) -> Result<Group, String> {
        let out = client
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .map_err(|e| DisplayErrorContext(&e).to_string())?;
        out.auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(name))
            .map(Group::from_sdk)
            .ok_or_else(|| "not found (DescribeAutoScalingGroups returned no such group)".into())
    }

    /// Instances `InService`.
    pub fn in_service(&self) -> usize {
        self.members.iter().filter(|m| m.in_service()).count()
    }

    /// Instances `Pending*`.
    pub fn pending(&self) -> usize {
        self.members.iter().filter(|m| m.pending()).count()
    }

    /// `replicas` within the group's range.
    pub fn clamp(&self, replicas: usize) -> usize {
        replicas.clamp(self.min, self.max.max(self.min))
    }

    /// Reads the members' [`DRAINING_TAG`] from `instances` (a tag that is not a number of
    /// seconds counts as set now: it was written by someone, and waiting once more is safe).
    pub fn with_tags(mut self, instances: &[Ec2Instance], now: SystemTime) -> Group {
        let tags: HashMap<&str, &Ec2Instance> =
            instances.iter().map(|i| (i.id.as_str(), i)).collect();
        for m in &mut self.members {
            m.draining_since = tags
                .get(m.id.as_str())
                .and_then(|i| i.tags.get(DRAINING_TAG))
                .map(|v| {
                    v.parse::<u64>()
                        .map_or(now, |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
                });
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, lifecycle: &str) -> Member {
        Member {
            id: id.into(),
            zone: "a".into(),
            lifecycle: lifecycle.into(),
            healthy: true,
            draining_since: None,
        }
    }

    #[test]
    fn counts_and_range() {
        let g = Group {
            min: 2,
            max: 5,
            desired: 3,
            members: vec![
                member("i-1", "InService"),
                member("i-2", "Pending:Wait"),
                member("i-3", "Standby"),
            ],
        };
        assert_eq!((g.in_service(), g.pending()), (1, 1));
        assert_eq!(g.clamp(0), 2);
        assert_eq!(g.clamp(4), 4);
        assert_eq!(g.clamp(9), 5);
    }

    #[test]
    fn the_draining_tag_is_read() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let g = Group {
            min: 0,
            max: 5,
            desired: 1,
            members: vec![
                member("i-1", "Standby"),
                member("i-2", "Standby"),
                member("i-3", "Standby"),
            ],
        };
        let tagged = |id: &str, v: &str| Ec2Instance {
            id: id.into(),
            tags: [(DRAINING_TAG.to_string(), v.to_string())].into(),
            ..Ec2Instance::default()
        };
        let g = g.with_tags(&[tagged("i-1", "400"), tagged("i-2", "soon")], now);
        let since: Vec<Option<u64>> = g
            .members
            .iter()
            .map(|m| {
                m.draining_since
                    .map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs())
            })
            .collect();
        assert_eq!(since, [Some(400), Some(1000), None]);
        assert!(g.members[0].ours_draining() && !g.members[2].ours_draining());
    }
}
