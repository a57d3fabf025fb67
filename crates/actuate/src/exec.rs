//! The command hook.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::{Actuator, ActuatorError, BoxFuture, PoolState};

/// Runs a user command with the desired count, e.g.
/// `aws autoscaling set-desired-capacity --auto-scaling-group-name web --desired-capacity {replicas}`.
/// `{replicas}` in any argument is replaced, and `FORESIGHT_REPLICAS` is set in its
/// environment. The command is killed after `timeout`. It cannot tell how many instances are
/// ready: [`Actuator::state`] reports only the count last applied.
pub struct ExecHook {
    program: String,
    args: Vec<String>,
    timeout: Duration,
    last: AtomicUsize,
}

impl ExecHook {
    /// A hook running `program args…` (with `{replicas}` placeholders), killed after `timeout`.
    pub fn new(program: impl Into<String>, args: Vec<String>, timeout: Duration) -> Self {
        ExecHook {
            program: program.into(),
            args,
            timeout,
            last: AtomicUsize::new(0),
        }
    }

    async fn run(&self, replicas: usize) -> Result<(), ActuatorError> {
        let n = replicas.to_string();
        let child = tokio::process::Command::new(&self.program)
            .args(self.args.iter().map(|a| a.replace("{replicas}", &n)))
            .env("FORESIGHT_REPLICAS", &n)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ActuatorError::Start {
                program: self.program.clone(),
                message: e.to_string(),
            })?;
        // On timeout the future (and the child with it) is dropped: kill_on_drop kills it.
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Err(_) => {
                return Err(ActuatorError::Timeout {
                    program: self.program.clone(),
                    timeout: self.timeout,
                })
            }
            Ok(Err(e)) => {
                return Err(ActuatorError::Start {
                    program: self.program.clone(),
                    message: e.to_string(),
                })
            }
            Ok(Ok(out)) => out,
        };
        if out.status.success() {
            self.last.store(replicas, Ordering::Relaxed);
            return Ok(());
        }
        let text = String::from_utf8_lossy(&out.stderr);
        let text = text.trim();
        let start = text
            .char_indices()
            .rev()
            .nth(499)
            .map(|(i, _)| i)
            .unwrap_or(0);
        Err(ActuatorError::Failed {
            program: self.program.clone(),
            status: out.status.to_string(),
            stderr: text[start..].to_string(),
        })
    }
}

impl Actuator for ExecHook {
    fn name(&self) -> String {
        format!("exec {}", self.program)
    }

    fn apply(&self, replicas: usize) -> BoxFuture<'_, Result<(), ActuatorError>> {
        Box::pin(self.run(replicas))
    }

    fn state(&self) -> BoxFuture<'_, Result<PoolState, ActuatorError>> {
        let desired = self.last.load(Ordering::Relaxed);
        Box::pin(async move {
            Ok(PoolState {
                desired,
                ready: None,
                starting: None,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn hook(script: &str, timeout_ms: u64) -> ExecHook {
        ExecHook::new(
            "sh",
            vec![
                "-c".into(),
                script.into(),
                "hook".into(),
                "{replicas}".into(),
            ],
            Duration::from_millis(timeout_ms),
        )
    }

    #[tokio::test]
    async fn passes_the_count_as_argument_and_environment() {
        let f = std::env::temp_dir().join(format!("foresight-hook-{}", std::process::id()));
        let script = format!("echo \"$1 $FORESIGHT_REPLICAS\" > {}", f.display());
        let h = hook(&script, 5000);
        h.apply(7).await.unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap().trim(), "7 7");
        assert_eq!(h.state().await.unwrap().desired, 7);
        let _ = std::fs::remove_file(f);
    }

    #[tokio::test]
    async fn failures_and_timeouts_are_clear_errors() {
        let h = hook("echo 'no such group' >&2; exit 3", 5000);
        let e = h.apply(2).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "`sh` exited with exit status: 3: no such group"
        );
        assert_eq!(
            h.state().await.unwrap().desired,
            0,
            "a failed apply is not recorded"
        );
        let started = Instant::now();
        let e = hook("sleep 10", 200).apply(2).await.unwrap_err();
        assert!(matches!(e, ActuatorError::Timeout { .. }), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "killed, not waited for"
        );
        let missing = ExecHook::new(
            "/nonexistent/foresight-hook",
            vec![],
            Duration::from_secs(1),
        );
        let e = missing.apply(1).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot start `/nonexistent/foresight-hook`"),
            "{e}"
        );
    }
}
