//! What `[control]` must also satisfy where its loop runs: inside `foresight serve` (beside the
//! proxy and its discovery) or in `foresight controller` (apart from any proxy). One check per
//! file, the same messages at start and on reload.

use std::time::Duration;

use foresight_proxy::config::{Discovery, ServiceConfig};

use super::{ActuatorKind, ControlConfig, MetricsSource};

/// Where the loops run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// In `foresight serve`, beside the pool it scales.
    Serve,
    /// In `foresight controller`: it proxies nothing and sees no traffic itself.
    Controller,
}

impl ControlConfig {
    /// Each service's `[control]` validated for `mode`, in the services' order (`None`: no
    /// loop). `single`: the file is the single-pool form, whose errors name no service;
    /// otherwise they begin `services[i] (name): `. `drain_timeout` is the proxy's.
    pub fn for_services(
        services: &[ServiceConfig],
        single: bool,
        mode: Mode,
        drain_timeout: Duration,
    ) -> Result<Vec<Option<ControlConfig>>, String> {
        services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let at = if single {
                    String::new()
                } else {
                    format!("services[{i}] ({}): ", s.name)
                };
                let c =
                    ControlConfig::from_raw(s.control.as_ref()).map_err(|e| format!("{at}{e}"))?;
                c.map(|c| c.checked_for(s, mode, drain_timeout))
                    .transpose()
                    .map_err(|e| format!("{at}{e}"))
            })
            .collect()
    }

    /// This service's loop, checked for where it runs.
    fn checked_for(
        self,
        s: &ServiceConfig,
        mode: Mode,
        drain_timeout: Duration,
    ) -> Result<ControlConfig, String> {
        match mode {
            Mode::Serve => {
                if s.discovery.is_some() && matches!(self.actuator, ActuatorKind::Process { .. }) {
                    return Err(
                        "control.actuator = \"process\" together with discovery: both \
                         would manage the instances; with discovery, scale what the name \
                         resolves to (actuator = \"kubernetes\" or \"exec\")"
                            .into(),
                    );
                }
                if let (Some(Discovery::AwsAsg(d)), ActuatorKind::AwsAsg { drain, .. }) =
                    (&s.discovery, &self.actuator)
                {
                    if *drain < drain_timeout + d.interval {
                        tracing::warn!(
                            service = %s.name,
                            "control.drain ({}) is shorter than drain_timeout + discovery.interval \
                             ({}): an instance may be terminated before the proxy has drained it",
                            humantime::format_duration(*drain),
                            humantime::format_duration(drain_timeout + d.interval)
                        );
                    }
                }
                Ok(self)
            }
            Mode::Controller => {
                if matches!(self.actuator, ActuatorKind::Process { .. }) {
                    return Err("control.actuator = \"process\": the controller starts no \
                         instances and proxies nothing; use \"kubernetes\", \"aws-asg\" or \"exec\""
                        .into());
                }
                let consumes = self.kafka.as_ref().is_some_and(|k| k.consume.is_some());
                if matches!(self.metrics, MetricsSource::Builtin) && !consumes {
                    return Err("control.metrics = \"builtin\" without kafka_consume: the \
                         controller sees no traffic itself; read every proxy's rate from \
                         Prometheus (metrics = \"prometheus\") or from the Kafka topic they \
                         publish to (kafka_consume)"
                        .into());
                }
                if self.policy.reads_utilisation() {
                    return Err(format!(
                        "control.policy = \"{}\": it reacts to the instances' utilisation and \
                         queues (the HPA rule, the floor of `hybrid` and `reactive`), which the \
                         controller cannot see (it proxies nothing); use a rate-driven policy \
                         (\"predictive\", \"cost-optimal\") or run the loop in `foresight serve`",
                        self.policy.as_str()
                    ));
                }
                // A rate that cannot be read there is no rate: the loop holds.
                Ok(ControlConfig {
                    sees_traffic: false,
                    ..self
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use foresight_proxy::config::RawConfig;

    use super::*;

    fn check(file: &str, mode: Mode) -> Result<Vec<Option<ControlConfig>>, String> {
        let raw = RawConfig::from_toml(file, "test.toml").map_err(|e| e.to_string())?;
        let single = raw.services.is_empty();
        let config = raw.validate().map_err(|e| e.to_string())?;
        ControlConfig::for_services(&config.services, single, mode, config.drain_timeout)
    }

    #[test]
    fn each_mode_refuses_what_it_cannot_run_naming_the_service() {
        let process = "[[backends]]\naddress = \"127.0.0.1:1\"\n[control]\nmax = 3";
        let c = check(process, Mode::Serve).unwrap();
        assert!(c[0].as_ref().unwrap().sees_traffic);
        let e = check(process, Mode::Controller).unwrap_err();
        assert!(e.starts_with("control.actuator = \"process\""), "{e}");
        let exec = "[control]\nactuator = \"exec\"\ncommand = [\"true\"]\npolicy = \"predictive\"";
        let e = check(exec, Mode::Controller).unwrap_err();
        assert!(e.contains("control.metrics = \"builtin\""), "{e}");
        let prom = format!("{exec}\nmetrics = \"prometheus\"");
        let c = check(&prom, Mode::Controller).unwrap();
        assert!(!c[0].as_ref().unwrap().sees_traffic);
        let hybrid = prom.replace("predictive", "hybrid");
        let e = check(&hybrid, Mode::Controller).unwrap_err();
        assert!(e.contains("control.policy = \"hybrid\""), "{e}");
        let discovered = "[[services]]\nname = \"a\"\n[[services.backends]]\naddress = \"127.0.0.1:1\"\n\
             [[services]]\nname = \"b\"\n[services.discovery]\ntype = \"dns\"\nname = \"b.local\"\nport = 80\n\
             [services.control]\nmax = 2\n[[routes]]\nservice = \"a\"";
        let e = check(discovered, Mode::Serve).unwrap_err();
        assert!(
            e.starts_with(
                "services[1] (b): control.actuator = \"process\" together with discovery"
            ),
            "{e}"
        );
        let c = check(
            &discovered.replace("max = 2", "enabled = false"),
            Mode::Serve,
        )
        .unwrap();
        assert_eq!(c, vec![None, None]);
    }
}
