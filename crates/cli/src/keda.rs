//! `foresight controller --keda ADDR`: the control loops' statuses as the readings of KEDA's
//! external scaler (`foresight-keda`).

use std::sync::{Arc, Mutex};

use foresight_control::Status;
use foresight_keda::{Reading, Readings, Unavailable};

/// The controller's loops, by service.
pub struct Loops(pub Vec<Arc<Mutex<Status>>>);

impl Readings for Loops {
    fn services(&self) -> Vec<String> {
        self.0.iter().map(|s| read(s).service).collect()
    }

    fn reading(&self, service: &str) -> Result<Reading, Unavailable> {
        let s = self
            .0
            .iter()
            .map(read)
            .find(|s| s.service == service)
            .ok_or(Unavailable::Unknown)?;
        reading(&s)
    }
}

fn read(s: &Arc<Mutex<Status>>) -> Status {
    s.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// A loop's reading, once it has measured (its uptime is stamped by the first interval's end;
/// before that it wants nothing only because it knows nothing).
pub fn reading(s: &Status) -> Result<Reading, Unavailable> {
    if s.uptime_s <= 0.0 {
        return Err(Unavailable::Pending(
            "the control loop has not measured yet (one interval after start)".into(),
        ));
    }
    Ok(Reading {
        planned: s.planned_rps,
        trusted: s.trusted,
        observed: s.observed_rps,
        desired: s.desired,
        per_replica: s.per_instance_rps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_has_not_measured_has_no_reading() {
        let mut s = Status {
            service: "web".into(),
            per_instance_rps: 14.0,
            ..Status::default()
        };
        assert!(matches!(reading(&s), Err(Unavailable::Pending(_))));
        s.uptime_s = 1.0;
        s.planned_rps = Some(50.0);
        s.trusted = true;
        s.desired = 4;
        let r = reading(&s).unwrap();
        assert_eq!((r.load(), r.desired, r.per_replica), (50.0, 4, 14.0));
        let loops = Loops(vec![Arc::new(Mutex::new(s))]);
        assert_eq!(loops.services(), ["web"]);
        assert_eq!(loops.reading("api"), Err(Unavailable::Unknown));
    }
}
