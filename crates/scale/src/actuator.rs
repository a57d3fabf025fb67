//! Actuators: what turns a decided replica count into instances. The simulator has its own
//! (`foresight_sim::run_scaled`); this module holds the exec hook. The local process pool and
//! the Kubernetes actuator of issue #5 are not written yet.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why an actuator could not apply a count.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ActuatorError {
    /// The command could not be started.
    #[error("cannot start `{program}`: {message}")]
    Start {
        /// Program.
        program: String,
        /// Why.
        message: String,
    },
    /// It ran past its timeout and was killed.
    #[error("`{program}` timed out after {timeout:?} and was killed")]
    Timeout {
        /// Program.
        program: String,
        /// The limit.
        timeout: Duration,
    },
    /// It exited unsuccessfully.
    #[error("`{program}` exited with {status}: {stderr}")]
    Failed {
        /// Program.
        program: String,
        /// Exit status.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
}

/// Sets the replica count somewhere.
pub trait Actuator: Send {
    /// Name for logs.
    fn name(&self) -> String;
    /// Makes `replicas` instances the target.
    fn apply(&mut self, replicas: usize) -> Result<(), ActuatorError>;
}

/// Runs a user command with the desired count, e.g.
/// `aws autoscaling set-desired-capacity --auto-scaling-group-name web --desired-capacity {replicas}`.
/// `{replicas}` in any argument is replaced, and `FORESIGHT_REPLICAS` is set in its
/// environment. The command is killed after `timeout`.
pub struct ExecHook {
    /// Program.
    pub program: String,
    /// Arguments (with `{replicas}` placeholders).
    pub args: Vec<String>,
    /// Longest run allowed.
    pub timeout: Duration,
}

impl Actuator for ExecHook {
    fn name(&self) -> String {
        format!("exec {}", self.program)
    }

    fn apply(&mut self, replicas: usize) -> Result<(), ActuatorError> {
        let n = replicas.to_string();
        let mut child = Command::new(&self.program)
            .args(self.args.iter().map(|a| a.replace("{replicas}", &n)))
            .env("FORESIGHT_REPLICAS", &n)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ActuatorError::Start {
                program: self.program.clone(),
                message: e.to_string(),
            })?;
        // Read stderr on a thread so that a chatty command cannot block on a full pipe.
        let mut pipe = child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = pipe.as_mut() {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        });
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if started.elapsed() >= self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ActuatorError::Timeout {
                        program: self.program.clone(),
                        timeout: self.timeout,
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => {
                    return Err(ActuatorError::Start {
                        program: self.program.clone(),
                        message: e.to_string(),
                    })
                }
            }
        };
        let stderr = reader.join().unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&stderr);
        let tail: String = text
            .trim()
            .chars()
            .rev()
            .take(500)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Err(ActuatorError::Failed {
            program: self.program.clone(),
            status: status.to_string(),
            stderr: tail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(script: &str, timeout_ms: u64) -> ExecHook {
        ExecHook {
            program: "sh".into(),
            args: vec![
                "-c".into(),
                script.into(),
                "hook".into(),
                "{replicas}".into(),
            ],
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[test]
    fn passes_the_count_as_argument_and_environment() {
        let f = std::env::temp_dir().join(format!("foresight-hook-{}", std::process::id()));
        let script = format!("echo \"$1 $FORESIGHT_REPLICAS\" > {}", f.display());
        hook(&script, 5000).apply(7).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap().trim(), "7 7");
        let _ = std::fs::remove_file(f);
    }

    #[test]
    fn failures_and_timeouts_are_clear_errors() {
        let e = hook("echo 'no such group' >&2; exit 3", 5000)
            .apply(2)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "`sh` exited with exit status: 3: no such group"
        );
        let started = Instant::now();
        let e = hook("sleep 10", 200).apply(2).unwrap_err();
        assert!(matches!(e, ActuatorError::Timeout { .. }), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "killed, not waited for"
        );
        let mut missing = ExecHook {
            program: "/nonexistent/foresight-hook".into(),
            args: vec![],
            timeout: Duration::from_secs(1),
        };
        let e = missing.apply(1).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot start `/nonexistent/foresight-hook`"),
            "{e}"
        );
    }
}
