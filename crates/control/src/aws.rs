//! `actuator = "aws-asg"`: an EC2 Auto Scaling group (`foresight-aws`, the `aws` feature).
//! The SDK's configuration (credentials, region) is found asynchronously, so the actuator is
//! built on first use; until then, and while that fails, calls return the error and the loop
//! retries with backoff.

use std::sync::Arc;
use std::time::Duration;

use foresight_actuate::Actuator;

/// The actuator for `group`, at most `max` instances, draining removed ones for `drain`.
#[cfg(feature = "aws")]
pub(crate) fn aws_asg(
    group: String,
    endpoint: Option<String>,
    max: usize,
    drain: Duration,
) -> Result<Arc<dyn Actuator>, String> {
    Ok(Arc::new(lazy::LazyAsg {
        group,
        endpoint,
        max,
        drain,
        cell: tokio::sync::OnceCell::new(),
    }))
}

#[cfg(not(feature = "aws"))]
pub(crate) fn aws_asg(
    _group: String,
    _endpoint: Option<String>,
    _max: usize,
    _drain: Duration,
) -> Result<Arc<dyn Actuator>, String> {
    Err(
        "actuator = \"aws-asg\" needs a build with `--features aws` \
         (cargo build --release --features aws)"
            .into(),
    )
}

#[cfg(feature = "aws")]
mod lazy {
    use std::time::Duration;

    use foresight_actuate::{Actuator, ActuatorError, BoxFuture, PoolState};
    use foresight_aws::AsgActuator;
    use tokio::sync::OnceCell;

    pub struct LazyAsg {
        pub group: String,
        pub endpoint: Option<String>,
        pub max: usize,
        pub drain: Duration,
        pub cell: OnceCell<AsgActuator>,
    }

    impl LazyAsg {
        async fn get(&self) -> &AsgActuator {
            self.cell
                .get_or_init(|| async {
                    let config = foresight_aws::sdk_config(self.endpoint.as_deref()).await;
                    AsgActuator::new(&config, &self.group, self.max, self.drain)
                })
                .await
        }
    }

    impl Actuator for LazyAsg {
        fn name(&self) -> String {
            format!("aws auto scaling group {}", self.group)
        }
        fn apply(&self, replicas: usize) -> BoxFuture<'_, Result<(), ActuatorError>> {
            Box::pin(async move { self.get().await.apply(replicas).await })
        }
        fn state(&self) -> BoxFuture<'_, Result<PoolState, ActuatorError>> {
            Box::pin(async move { self.get().await.state().await })
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(not(feature = "aws"))]
    use std::time::Duration;

    #[cfg(not(feature = "aws"))]
    #[test]
    fn without_the_feature_is_a_clear_error() {
        let e = super::aws_asg("web".into(), None, 3, Duration::from_secs(30))
            .err()
            .unwrap();
        assert!(e.contains("--features aws"), "{e}");
    }
}
