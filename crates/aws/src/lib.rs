//! # foresight-aws
//!
//! EC2 Auto Scaling, for the `aws` feature of the `foresight` binary:
//!
//! - the `aws-asg` actuator ([`AsgActuator`]) brings an Auto Scaling group to the loop's count
//!   within the group's own minimum and maximum, and reads it back
//!   (`DescribeAutoScalingGroups`: `InService` instances are ready, `Pending*` ones starting).
//!   Scale-in drains before it terminates: [`plan`] says how.
//! - `aws-asg` discovery ([`discovery`]) makes the group's in-service instances a pool's.
//!
//! It uses the official AWS SDK for Rust for Auto Scaling; the three EC2 calls are signed
//! with AWS's `aws-sigv4` instead of `aws-sdk-ec2` ([`ec2`] says why). Credentials, region and endpoint are found the
//! standard way (environment, shared profile, IMDS on EC2; `AWS_ENDPOINT_URL` for an emulator),
//! and throttling and transient errors are retried by the SDK's standard retry mode (up to
//! 5 attempts, exponential backoff with jitter). Every call is bounded in time.
//!
//! The EC2 calls are not retried here: discovery reads again at its next interval, and the
//! control loop retries a failed step with backoff.
//!
//! It is its own crate because the SDK is a large build (measured in the notes of issue #20).
//! It is tested against moto's server mode (an AWS emulator), not against AWS.
//!
//! # Layout
//! - `group`: `Group`, `Member`, an Auto Scaling group as Foresight reads it
//! - `plan`: `plan`, the pure steps that bring a group to a count without cutting requests
//! - `actuator`: `AsgActuator`, `actuator = "aws-asg"`, carrying out those steps
//! - `discovery`: `discovery = { type = "aws-asg" }`, a group's in-service instances as a pool
//! - `ec2`: `Ec2`, the EC2 calls needed (addresses, tags)
//! - `credentials`: the SDK's credential chain, cached until shortly before expiry
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod actuator;
mod credentials;
pub mod discovery;
pub mod ec2;
mod group;
pub mod plan;

use std::time::Duration;

pub use actuator::AsgActuator;
pub use group::{Group, Member, DRAINING_TAG};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// The IAM actions `aws-asg` discovery calls.
pub const DISCOVERY_ACTIONS: &[&str] = &[
    "autoscaling:DescribeAutoScalingGroups",
    "ec2:DescribeInstances",
];

/// The IAM actions the `aws-asg` actuator calls (docs/live.md's policy lists exactly these).
pub const ACTUATOR_ACTIONS: &[&str] = &[
    "autoscaling:DescribeAutoScalingGroups",
    "ec2:DescribeInstances",
    "autoscaling:SetDesiredCapacity",
    "autoscaling:EnterStandby",
    "autoscaling:ExitStandby",
    "autoscaling:TerminateInstanceInAutoScalingGroup",
    "ec2:CreateTags",
    "ec2:DeleteTags",
];

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
