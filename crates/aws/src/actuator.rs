//! `actuator = "aws-asg"`: brings an Auto Scaling group to the loop's count through the steps
//! of [`crate::plan`] — raising the desired capacity, and scaling in by draining instances
//! in `Standby` before terminating them — and reads the group back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use aws_sdk_autoscaling::error::DisplayErrorContext;
use aws_sdk_autoscaling::Client;
use foresight_actuate::{Actuator, ActuatorError, BoxFuture, PoolState};

use crate::ec2::Ec2;
use crate::group::{Group, DRAINING_TAG};
use crate::plan::{plan, Step};

/// Instances per `EnterStandby`/`ExitStandby` call (the API's limit).
const PER_CALL: usize = 20;

/// Brings an Auto Scaling group to a count.
pub struct AsgActuator {
    client: Client,
    ec2: Ec2,
    group: String,
    max: usize,
    drain: Duration,
    /// Whether the group's `MaxSize` below Foresight's `max` was logged.
    told_max: AtomicBool,
}

impl AsgActuator {
    /// For group `group`, with at most `max` instances (Foresight's own limit; the group's
    /// `MaxSize` also applies), on the SDK configuration `config`; an instance being removed
    /// is drained for `drain` before it is terminated.
    pub fn new(config: &SdkConfig, group: &str, max: usize, drain: Duration) -> AsgActuator {
        AsgActuator {
            client: Client::new(config),
            ec2: Ec2::new(config),
            group: group.to_string(),
            max,
            drain,
            told_max: AtomicBool::new(false),
        }
    }

    fn error(&self, message: impl Into<String>) -> ActuatorError {
        ActuatorError::Api {
            target: format!("auto scaling group {}", self.group),
            message: message.into(),
        }
    }

    fn sdk<E: std::error::Error>(&self, e: E) -> ActuatorError {
        self.error(DisplayErrorContext(&e).to_string())
    }

    /// The group as the APIs describe it now, with Foresight's draining tags on its
    /// `Standby` instances.
    pub async fn describe(&self) -> Result<Group, ActuatorError> {
        self.ec2.credentials().await.map_err(|e| self.error(e))?;
        let group = Group::read(&self.client, &self.group)
            .await
            .map_err(|e| self.error(e))?;
        let standby: Vec<String> = group
            .members
            .iter()
            .filter(|m| m.lifecycle == "Standby")
            .map(|m| m.id.clone())
            .collect();
        if standby.is_empty() {
            return Ok(group);
        }
        let tags = self
            .ec2
            .describe_instances(&standby)
            .await
            .map_err(|e| self.error(e))?;
        Ok(group.with_tags(&tags, SystemTime::now()))
    }

    async fn set(&self, replicas: usize) -> Result<(), ActuatorError> {
        let group = self.describe().await?;
        if group.max < self.max && !self.told_max.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                group = %self.group,
                group_max = group.max,
                max = self.max,
                "the group's MaxSize is below control.max; the group's applies"
            );
        }
        let want = group.clamp(replicas.min(self.max));
        self.run(plan(&group, Some(want), self.drain, SystemTime::now()))
            .await?;
        let limit = self.max.min(group.max);
        if replicas > limit {
            return Err(ActuatorError::AboveMax {
                asked: replicas,
                max: limit,
            });
        }
        Ok(())
    }

    /// Carries out `steps` in order.
    async fn run(&self, steps: Vec<Step>) -> Result<(), ActuatorError> {
        for step in steps {
            tracing::info!(group = %self.group, ?step, "auto scaling");
            match step {
                Step::Return(ids) => {
                    for batch in ids.chunks(PER_CALL) {
                        self.client
                            .exit_standby()
                            .auto_scaling_group_name(&self.group)
                            .set_instance_ids(Some(batch.to_vec()))
                            .send()
                            .await
                            .map_err(|e| self.sdk(e))?;
                    }
                    self.ec2
                        .delete_tags(&ids, DRAINING_TAG)
                        .await
                        .map_err(|e| self.error(e))?;
                }
                Step::SetDesired(n) => {
                    let capacity = i32::try_from(n).map_err(|_| self.error("count too large"))?;
                    self.client
                        .set_desired_capacity()
                        .auto_scaling_group_name(&self.group)
                        .desired_capacity(capacity)
                        .honor_cooldown(false)
                        .send()
                        .await
                        .map_err(|e| self.sdk(e))?;
                }
                Step::TerminateNow(ids) => self.terminate(&ids, true).await?,
                Step::Drain(ids) => {
                    let since = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs()
                        .to_string();
                    // Tagged first: an instance in Standby without the tag is never touched.
                    self.ec2
                        .create_tags(&ids, DRAINING_TAG, &since)
                        .await
                        .map_err(|e| self.error(e))?;
                    for (i, batch) in ids.chunks(PER_CALL).enumerate() {
                        let entered = self
                            .client
                            .enter_standby()
                            .auto_scaling_group_name(&self.group)
                            .set_instance_ids(Some(batch.to_vec()))
                            .should_decrement_desired_capacity(true)
                            .send()
                            .await;
                        if let Err(e) = entered {
                            self.untag_unless_standby(&ids[i * PER_CALL..]).await;
                            return Err(self.sdk(e));
                        }
                    }
                }
                Step::Finish(ids) => self.terminate(&ids, false).await?,
            }
        }
        Ok(())
    }

    /// After a failed `EnterStandby`: takes the draining tag off those of `ids` that are not in
    /// `Standby`, so that an instance an operator later puts in `Standby` is not taken for one
    /// Foresight drains (and terminated). Best effort: the call's own error is what the loop
    /// reports; a tag left behind is logged.
    async fn untag_unless_standby(&self, ids: &[String]) {
        let standby: Vec<String> = match Group::read(&self.client, &self.group).await {
            Ok(g) => g
                .members
                .into_iter()
                .filter(|m| m.lifecycle == "Standby")
                .map(|m| m.id)
                .collect(),
            Err(e) => {
                tracing::warn!(group = %self.group, ?ids, error = %e, "EnterStandby failed and the group cannot be read: the draining tag stays on these instances");
                return;
            }
        };
        let stray: Vec<String> = ids
            .iter()
            .filter(|id| !standby.contains(id))
            .cloned()
            .collect();
        if stray.is_empty() {
            return;
        }
        if let Err(e) = self.ec2.delete_tags(&stray, DRAINING_TAG).await {
            tracing::warn!(group = %self.group, ids = ?stray, error = %e, "EnterStandby failed and the draining tag could not be removed");
        }
    }

    async fn terminate(&self, ids: &[String], decrement: bool) -> Result<(), ActuatorError> {
        for id in ids {
            self.client
                .terminate_instance_in_auto_scaling_group()
                .instance_id(id)
                .should_decrement_desired_capacity(decrement)
                .send()
                .await
                .map_err(|e| self.sdk(e))?;
        }
        Ok(())
    }
}

impl Actuator for AsgActuator {
    fn name(&self) -> String {
        format!("aws auto scaling group {}", self.group)
    }

    fn apply(&self, replicas: usize) -> BoxFuture<'_, Result<(), ActuatorError>> {
        Box::pin(self.set(replicas))
    }

    /// The group's counts; drains that are due are finished on the way.
    fn state(&self) -> BoxFuture<'_, Result<PoolState, ActuatorError>> {
        Box::pin(async move {
            let g = self.describe().await?;
            self.run(plan(&g, None, self.drain, SystemTime::now()))
                .await?;
            Ok(PoolState {
                desired: g.desired,
                ready: Some(g.in_service()),
                starting: Some(g.pending()),
            })
        })
    }
}
