//! Alerts that trigger scaling: an Alertmanager webhook receiver (`POST /alerts` on the admin
//! listener). A firing alert labelled `foresight_action="scale_up"` raises its service's floor
//! (the label `service`, as the proxy's own metrics carry it; with one loop, that loop's) until
//! Alertmanager reports it resolved. The floor is the label `foresight_replicas` when given,
//! else twice the instances wanted when the alert arrived (the HPA's +100% step), at least one
//! more; the governor applies it at the loop's next decision, past its step limit and
//! cooldown and capped at `max`, and names the alert in the decision's reason.
//!
//! The payload is Alertmanager's webhook JSON (version 4): `{"status", "alerts": [{"status",
//! "labels", "annotations", "startsAt", "endsAt", "fingerprint", …}], …}`; unknown fields are
//! ignored, as Alertmanager adds some between versions.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Deserialize;

/// The label that asks for capacity.
pub const ACTION_LABEL: &str = "foresight_action";
/// Its value.
pub const SCALE_UP: &str = "scale_up";
/// The label that sets the floor's size.
pub const REPLICAS_LABEL: &str = "foresight_replicas";
/// The label that names the service.
pub const SERVICE_LABEL: &str = "service";
/// Most scale-up alerts held firing per service: a storm of distinct alerts (each label set
/// is one) is refused past it rather than grow the proxy's memory without bound.
pub const MAX_FIRING: usize = 1000;

/// The webhook's body.
#[derive(Debug, Deserialize)]
pub struct Webhook {
    /// The alerts of one notification.
    pub alerts: Vec<Alert>,
}

/// One alert of a notification.
#[derive(Debug, Deserialize)]
pub struct Alert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Its labels (`alertname`, `service`, `foresight_action`, …).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Alertmanager's identity of the alert (its label set's hash).
    #[serde(default)]
    pub fingerprint: String,
}

impl Alert {
    /// Its name.
    pub fn name(&self) -> &str {
        self.labels
            .get("alertname")
            .map_or("(unnamed)", String::as_str)
    }

    /// A key that identifies it across notifications: the fingerprint, else its labels.
    fn key(&self) -> String {
        if self.fingerprint.is_empty() {
            format!("{:?}", self.labels)
        } else {
            self.fingerprint.clone()
        }
    }

    /// Whether it asks for capacity.
    pub fn scales_up(&self) -> bool {
        self.labels.get(ACTION_LABEL).map(String::as_str) == Some(SCALE_UP)
    }

    /// The floor it asks for, given the instances wanted now.
    pub fn floor(&self, desired: usize) -> Result<usize, String> {
        match self.labels.get(REPLICAS_LABEL) {
            None => Ok((desired * 2).max(desired + 1)),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=10_000).contains(&n) => Ok(n),
                _ => Err(format!(
                    "label {REPLICAS_LABEL}=\"{v}\" is not an instance count in 1..=10000"
                )),
            },
        }
    }
}

/// The scale-up alerts firing for one service.
#[derive(Debug, Default)]
pub struct Alerts {
    active: Mutex<BTreeMap<String, (String, usize)>>,
}

impl Alerts {
    /// Applies one alert (firing or resolved) at `desired` instances wanted now; what was done.
    pub fn apply(&self, alert: &Alert, desired: usize) -> Result<String, String> {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        match alert.status.as_str() {
            "firing" => {
                let key = alert.key();
                // A re-sent alert keeps the floor it got when it first fired.
                let floor = match active.get(&key) {
                    Some((_, f)) => *f,
                    None if active.len() >= MAX_FIRING => {
                        return Err(format!(
                            "{MAX_FIRING} scale-up alerts are firing for this service already; \
                             this one is not held"
                        ))
                    }
                    None => alert.floor(desired)?,
                };
                active.insert(key, (alert.name().to_string(), floor));
                Ok(format!("floor {floor}"))
            }
            "resolved" => {
                active.remove(&alert.key());
                Ok("floor lifted".into())
            }
            other => Err(format!("status `{other}` is neither firing nor resolved")),
        }
    }

    /// The highest floor among the firing alerts, with the alert that sets it.
    pub fn floor(&self) -> Option<(usize, String)> {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active
            .values()
            .max_by_key(|(_, f)| *f)
            .map(|(name, f)| (*f, format!("alert {name}")))
    }

    /// The firing alerts, as `NAME: floor N`.
    pub fn describe(&self) -> Vec<String> {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active
            .values()
            .map(|(name, f)| format!("{name}: floor {f}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(status: &str, labels: &[(&str, &str)]) -> Alert {
        Alert {
            status: status.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            fingerprint: String::new(),
        }
    }

    #[test]
    fn firing_raises_resolved_lifts_and_the_highest_wins() {
        let a = Alerts::default();
        let busy = alert("firing", &[("alertname", "Busy"), (REPLICAS_LABEL, "4")]);
        let slow = alert("firing", &[("alertname", "Slow")]);
        assert_eq!(a.apply(&busy, 2).unwrap(), "floor 4");
        assert_eq!(a.apply(&slow, 3).unwrap(), "floor 6", "twice the 3 wanted");
        assert_eq!(a.floor(), Some((6, "alert Slow".into())));
        assert_eq!(
            a.apply(&slow, 10).unwrap(),
            "floor 6",
            "a re-send keeps its floor"
        );
        a.apply(&alert("resolved", &[("alertname", "Slow")]), 6)
            .unwrap();
        assert_eq!(a.floor(), Some((4, "alert Busy".into())));
        a.apply(
            &alert("resolved", &[("alertname", "Busy"), (REPLICAS_LABEL, "4")]),
            6,
        )
        .unwrap();
        assert_eq!(a.floor(), None);
        assert_eq!(
            alert("firing", &[]).floor(0).unwrap(),
            1,
            "at least one more"
        );
        let bad = alert("firing", &[(REPLICAS_LABEL, "lots")]);
        assert!(a.apply(&bad, 1).unwrap_err().contains("foresight_replicas"));
    }

    #[test]
    fn a_storm_of_distinct_alerts_is_bounded_and_the_floor_still_lifts() {
        let a = Alerts::default();
        for i in 0..MAX_FIRING + 50 {
            let id = i.to_string();
            let firing = alert(
                "firing",
                &[
                    ("alertname", "Storm"),
                    ("id", &id),
                    (ACTION_LABEL, SCALE_UP),
                ],
            );
            let r = a.apply(&firing, 3);
            assert_eq!(r.is_ok(), i < MAX_FIRING, "alert {i}: {r:?}");
        }
        assert_eq!(a.describe().len(), MAX_FIRING);
        assert_eq!(a.floor().unwrap().0, 6);
        for i in 0..MAX_FIRING + 50 {
            let id = i.to_string();
            let resolved = alert(
                "resolved",
                &[
                    ("alertname", "Storm"),
                    ("id", &id),
                    (ACTION_LABEL, SCALE_UP),
                ],
            );
            a.apply(&resolved, 3).unwrap();
        }
        assert_eq!(a.floor(), None, "every one resolved: the floor is lifted");
    }

    #[test]
    fn alertmanagers_payload_parses() {
        let body = r#"{"version":"4","groupKey":"{}:{}","truncatedAlerts":0,"status":"firing",
            "receiver":"foresight","groupLabels":{},"commonLabels":{},"commonAnnotations":{},
            "externalURL":"http://am:9093","alerts":[{"status":"firing",
            "labels":{"alertname":"Busy","service":"data","foresight_action":"scale_up"},
            "annotations":{},"startsAt":"2026-12-03T10:00:00Z","endsAt":"0001-01-01T00:00:00Z",
            "generatorURL":"http://prom/graph","fingerprint":"c1a0b2"}]}"#;
        let w: Webhook = serde_json::from_str(body).unwrap();
        assert!(w.alerts[0].scales_up());
        assert_eq!(w.alerts[0].labels[SERVICE_LABEL], "data");
    }
}
