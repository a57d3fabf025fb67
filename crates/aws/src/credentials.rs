//! Credentials from the SDK's chain, kept until five minutes before they expire, and refused
//! with a clear message when the chain hands out ones that have already expired (a stale
//! `credential_process` cache, a role session that ran out), before any call is made with them.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_autoscaling::error::DisplayErrorContext;
use tokio::sync::Mutex;

/// How long before their expiry credentials are loaded again.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// Cached credentials of one configuration.
pub(crate) struct Creds {
    provider: Option<SharedCredentialsProvider>,
    cached: Mutex<Option<Credentials>>,
}

impl Creds {
    pub fn new(provider: Option<SharedCredentialsProvider>) -> Creds {
        Creds {
            provider,
            cached: Mutex::new(None),
        }
    }

    /// Of `config`.
    pub fn of(config: &SdkConfig) -> Creds {
        Creds::new(config.credentials_provider())
    }

    /// Credentials valid at `now`, or why there are none.
    pub async fn get(&self, now: SystemTime) -> Result<Credentials, String> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if c.expiry().is_none_or(|e| e > now + REFRESH_BEFORE) {
                return Ok(c.clone());
            }
        }
        let provider = self.provider.as_ref().ok_or(
            "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, \
             or run on EC2 with an instance role",
        )?;
        let c = provider
            .provide_credentials()
            .await
            .map_err(|e| format!("no AWS credentials: {}", DisplayErrorContext(&e)))?;
        check(&c, now)?;
        *cached = Some(c.clone());
        Ok(c)
    }
}

/// Refuses credentials that expired before `now`.
fn check(c: &Credentials, now: SystemTime) -> Result<(), String> {
    match c.expiry() {
        Some(e) if e <= now => Err(format!(
            "the AWS credentials expired at {} (access key {}); refresh them (a new session, \
             `aws sso login`, a fresh credential_process answer)",
            humantime::format_rfc3339_seconds(e),
            c.access_key_id()
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn expired_credentials_are_refused_and_valid_ones_kept() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let old = Credentials::new(
            "ASIAOLD",
            "s",
            None,
            Some(now - Duration::from_secs(60)),
            "t",
        );
        let e = Creds::new(Some(SharedCredentialsProvider::new(old)))
            .get(now)
            .await
            .unwrap_err();
        assert!(e.contains("expired at 2027-01-15T07:59:00Z"), "{e}");
        assert!(e.contains("ASIAOLD"), "{e}");
        let fresh = Credentials::new("AKIA", "s", None, None, "t");
        let creds = Creds::new(Some(SharedCredentialsProvider::new(fresh)));
        assert_eq!(creds.get(now).await.unwrap().access_key_id(), "AKIA");
        let none = Creds::new(None).get(now).await.unwrap_err();
        assert!(none.contains("AWS_ACCESS_KEY_ID"), "{none}");
    }
}
