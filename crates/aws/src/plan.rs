//! What to ask of Auto Scaling to bring a group to a count without cutting requests: a pure
//! function of the group, the count, the drain period and `now`.
//!
//! Scale-in never lowers the desired capacity and lets AWS pick: Foresight picks the
//! instances itself (those not serving yet first, then in service ones from the zone with
//! the most), tags them ([`crate::DRAINING_TAG`]) and moves them to `Standby`, lowering the
//! desired capacity. Out of `InService`, every proxy's `aws-asg` discovery drains them (no new
//! requests; in-flight ones finish). After the drain period they are terminated. Scale-out
//! first brings back instances still draining (warm, at once), then raises the capacity.
//! Instances in `Standby` without Foresight's tag (an operator's) are never touched.

use std::time::{Duration, SystemTime};

use crate::group::{Group, Member};

/// One request to Auto Scaling (and EC2's tags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `ExitStandby` (AWS raises the desired capacity by one each) and drop the tag.
    Return(Vec<String>),
    /// `SetDesiredCapacity`.
    SetDesired(usize),
    /// `TerminateInstanceInAutoScalingGroup`, lowering the desired capacity: instances that
    /// never served.
    TerminateNow(Vec<String>),
    /// Tag, then `EnterStandby` lowering the desired capacity: drain these.
    Drain(Vec<String>),
    /// `TerminateInstanceInAutoScalingGroup` without lowering the desired capacity: drained.
    Finish(Vec<String>),
}

/// The steps that bring `group` to `target` instances (already within the group's range and
/// Foresight's `max`); `None` only finishes the drains that are due at `now`.
pub fn plan(group: &Group, target: Option<usize>, drain: Duration, now: SystemTime) -> Vec<Step> {
    let mut ours: Vec<&Member> = group.members.iter().filter(|m| m.ours_draining()).collect();
    // Most recently drained first: the likeliest to be brought back.
    ours.sort_by(|a, b| {
        b.draining_since
            .cmp(&a.draining_since)
            .then(a.id.cmp(&b.id))
    });
    let mut steps = Vec::new();
    let mut returned: Vec<String> = Vec::new();
    match target {
        Some(t) if t > group.desired => {
            returned = ours
                .iter()
                .take(t - group.desired)
                .map(|m| m.id.clone())
                .collect();
            if !returned.is_empty() {
                steps.push(Step::Return(returned.clone()));
            }
            if group.desired + returned.len() < t {
                steps.push(Step::SetDesired(t));
            }
        }
        Some(t) if t < group.desired => {
            let mut k = group.desired - t;
            let mut pending: Vec<&Member> = group.members.iter().filter(|m| m.pending()).collect();
            pending.sort_by(|a, b| b.id.cmp(&a.id));
            let now_ids: Vec<String> = pending.iter().take(k).map(|m| m.id.clone()).collect();
            k -= now_ids.len();
            if !now_ids.is_empty() {
                steps.push(Step::TerminateNow(now_ids));
            }
            let victims = victims(group, k);
            if !victims.is_empty() {
                steps.push(Step::Drain(victims));
            }
        }
        _ => {}
    }
    let due: Vec<String> = ours
        .iter()
        .filter(|m| !returned.contains(&m.id))
        .filter(|m| m.draining_since.is_some_and(|s| s + drain <= now))
        .map(|m| m.id.clone())
        .collect();
    if !due.is_empty() {
        steps.push(Step::Finish(due));
    }
    steps
}

/// `k` in-service instances to drain, each from the zone with the most left (ties: the
/// zone, then the id, latest first), so the zones stay balanced as AWS keeps them.
fn victims(group: &Group, k: usize) -> Vec<String> {
    let mut left: Vec<&Member> = group.members.iter().filter(|m| m.in_service()).collect();
    let mut out = Vec::new();
    while out.len() < k && !left.is_empty() {
        let per_zone = |z: &str| left.iter().filter(|m| m.zone == z).count();
        let pick = (0..left.len())
            .max_by(|&a, &b| {
                let (ma, mb) = (left[a], left[b]);
                per_zone(&ma.zone)
                    .cmp(&per_zone(&mb.zone))
                    .then(ma.zone.cmp(&mb.zone))
                    .then(ma.id.cmp(&mb.id))
            })
            .expect("not empty");
        out.push(left.remove(pick).id.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DRAIN: Duration = Duration::from_secs(30);

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    fn m(id: &str, zone: &str, lifecycle: &str, since: Option<u64>) -> Member {
        Member {
            id: id.into(),
            zone: zone.into(),
            lifecycle: lifecycle.into(),
            healthy: true,
            draining_since: since.map(at),
        }
    }

    fn group(desired: usize, members: Vec<Member>) -> Group {
        Group {
            min: 0,
            max: 10,
            desired,
            members,
        }
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scale_in_drains_pending_first_then_the_fullest_zone() {
        let g = group(
            5,
            vec![
                m("i-1", "a", "InService", None),
                m("i-2", "a", "InService", None),
                m("i-3", "a", "InService", None),
                m("i-4", "b", "InService", None),
                m("i-5", "b", "Pending", None),
            ],
        );
        assert_eq!(
            plan(&g, Some(2), DRAIN, at(0)),
            [
                Step::TerminateNow(ids(&["i-5"])),
                Step::Drain(ids(&["i-3", "i-2"]))
            ]
        );
        // Zones even: the later zone, the later id.
        assert_eq!(
            plan(&g, Some(3), DRAIN, at(0))[1],
            Step::Drain(ids(&["i-3"]))
        );
    }

    #[test]
    fn drained_instances_are_terminated_once_the_period_is_over() {
        let g = group(
            1,
            vec![
                m("i-1", "a", "InService", None),
                m("i-2", "a", "Standby", Some(100)),
                m("i-3", "a", "Standby", Some(120)),
                m("i-9", "a", "Standby", None), // an operator's: never touched
            ],
        );
        assert_eq!(
            plan(&g, None, DRAIN, at(130)),
            [Step::Finish(ids(&["i-2"]))]
        );
        assert_eq!(
            plan(&g, Some(1), DRAIN, at(150)),
            [Step::Finish(ids(&["i-3", "i-2"]))]
        );
        assert!(plan(&g, None, DRAIN, at(100)).is_empty());
    }

    #[test]
    fn scale_out_brings_draining_instances_back_first() {
        let g = group(
            1,
            vec![
                m("i-1", "a", "InService", None),
                m("i-2", "a", "Standby", Some(100)),
                m("i-3", "a", "Standby", Some(120)),
            ],
        );
        // One more: the most recent drain comes back; the other finishes when due.
        assert_eq!(
            plan(&g, Some(2), DRAIN, at(140)),
            [Step::Return(ids(&["i-3"])), Step::Finish(ids(&["i-2"]))]
        );
        // Four: both back, and one new.
        assert_eq!(
            plan(&g, Some(4), DRAIN, at(140)),
            [Step::Return(ids(&["i-3", "i-2"])), Step::SetDesired(4)]
        );
        assert!(plan(&g, Some(1), DRAIN, at(101)).is_empty());
    }
}
