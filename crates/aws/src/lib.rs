//! # foresight-aws
//!
//! EC2 Auto Scaling, for the `aws` feature of the `foresight` binary: the `aws-asg` actuator
//! sets an Auto Scaling group's desired capacity (`SetDesiredCapacity`) within the group's own
//! minimum and maximum, and reads the group back (`DescribeAutoScalingGroups`: `InService`
//! instances are ready, `Pending*` ones starting).
//!
//! It uses the official AWS SDK for Rust. Credentials, region and endpoint are found the
//! standard way (environment, shared profile, IMDS on EC2; `AWS_ENDPOINT_URL` for an emulator),
//! and throttling and transient errors are retried by the SDK's standard retry mode (up to
//! 5 attempts, exponential backoff with jitter). Every call is bounded in time.
//!
//! It is its own crate because the SDK is a large build (measured in the notes of issue #20).
//! It is tested against moto's server mode (an AWS emulator), not against AWS.
#![deny(missing_docs)]

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_autoscaling::error::DisplayErrorContext;
use aws_sdk_autoscaling::types::AutoScalingGroup;
use aws_sdk_autoscaling::Client;
use foresight_actuate::{Actuator, ActuatorError, BoxFuture, PoolState};

/// The longest one call (with its retries) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// The SDK configuration found the standard way, with Foresight's retry and time limits;
/// `endpoint` overrides the endpoint (as `AWS_ENDPOINT_URL` does).
pub async fn sdk_config(endpoint: Option<&str>) -> SdkConfig {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(RetryConfig::standard().with_max_attempts(5))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(CALL_TIMEOUT)
                .build(),
        );
    if let Some(e) = endpoint {
        loader = loader.endpoint_url(e);
    }
    loader.load().await
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
    /// Instances `InService`.
    pub in_service: usize,
    /// Instances `Pending`, `Pending:Wait` or `Pending:Proceed`.
    pub pending: usize,
}

impl Group {
    fn from_sdk(g: &AutoScalingGroup) -> Group {
        let count = |n: Option<i32>| usize::try_from(n.unwrap_or(0).max(0)).unwrap_or(0);
        let state = |prefix: &str| {
            g.instances()
                .iter()
                .filter(|i| {
                    i.lifecycle_state()
                        .is_some_and(|s| s.as_str().starts_with(prefix))
                })
                .count()
        };
        Group {
            min: count(g.min_size()),
            max: count(g.max_size()),
            desired: count(g.desired_capacity()),
            in_service: state("InService"),
            pending: state("Pending"),
        }
    }

    /// `replicas` within the group's range.
    pub fn clamp(&self, replicas: usize) -> usize {
        replicas.clamp(self.min, self.max.max(self.min))
    }
}

/// Sets an Auto Scaling group's desired capacity.
pub struct AsgActuator {
    client: Client,
    group: String,
    max: usize,
}

impl AsgActuator {
    /// For group `group`, with at most `max` instances (Foresight's own limit; the group's
    /// `MaxSize` also applies), on the SDK configuration `config`.
    pub fn new(config: &SdkConfig, group: &str, max: usize) -> AsgActuator {
        AsgActuator {
            client: Client::new(config),
            group: group.to_string(),
            max,
        }
    }

    fn error(&self, message: impl Into<String>) -> ActuatorError {
        ActuatorError::Api {
            target: format!("auto scaling group {}", self.group),
            message: message.into(),
        }
    }

    /// The group as the API describes it now.
    pub async fn describe(&self) -> Result<Group, ActuatorError> {
        let out = self
            .client
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&self.group)
            .send()
            .await
            .map_err(|e| self.error(DisplayErrorContext(&e).to_string()))?;
        let g = out
            .auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(self.group.as_str()))
            .ok_or_else(|| {
                self.error("not found (DescribeAutoScalingGroups returned no such group)")
            })?;
        Ok(Group::from_sdk(g))
    }

    async fn set(&self, replicas: usize) -> Result<(), ActuatorError> {
        let group = self.describe().await?;
        let want = group.clamp(replicas.min(self.max));
        if want != group.desired {
            let capacity = i32::try_from(want).map_err(|_| self.error("count too large"))?;
            self.client
                .set_desired_capacity()
                .auto_scaling_group_name(&self.group)
                .desired_capacity(capacity)
                .honor_cooldown(false)
                .send()
                .await
                .map_err(|e| self.error(DisplayErrorContext(&e).to_string()))?;
            tracing::info!(group = %self.group, desired = want, "desired capacity set");
        }
        let limit = self.max.min(group.max);
        if replicas > limit {
            return Err(ActuatorError::AboveMax {
                asked: replicas,
                max: limit,
            });
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

    fn state(&self) -> BoxFuture<'_, Result<PoolState, ActuatorError>> {
        Box::pin(async move {
            let g = self.describe().await?;
            Ok(PoolState {
                desired: g.desired,
                ready: Some(g.in_service),
                starting: Some(g.pending),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_stay_in_the_groups_range() {
        let g = Group {
            min: 2,
            max: 5,
            desired: 3,
            in_service: 3,
            pending: 0,
        };
        assert_eq!(g.clamp(0), 2);
        assert_eq!(g.clamp(4), 4);
        assert_eq!(g.clamp(9), 5);
    }
}
