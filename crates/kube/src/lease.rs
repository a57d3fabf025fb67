//! Leader election with a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does
//! it: every `retry` each candidate reads the Lease; the holder renews it, a candidate takes it
//! over once it has seen it unchanged for the lease's duration, and every write carries the
//! `resourceVersion` it read, so of two candidates racing for it one gets 409 Conflict.
//!
//! Expiry is judged on the local monotonic clock from when a candidate *observed* a change,
//! never from the timestamps in the object (clocks across nodes differ). The holder counts
//! itself leader only until `renew_deadline` after it *sent* its last successful renewal,
//! which is shorter than the lease's duration: a leader that cannot renew (a partition, an API
//! server outage) stops acting before any other candidate can have seen the lease expire.
//!
//! [`Elector`] is the pure core (time passed in); [`run`] is its I/O shell.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::time::Instant;

/// The timing of an election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a lease stays valid without renewal (written as `leaseDurationSeconds`).
    pub duration: Duration,
    /// How long the holder counts itself leader after sending its last successful renewal;
    /// less than `duration`.
    pub renew_deadline: Duration,
    /// How often candidates read (and the holder renews) the lease.
    pub retry: Duration,
}

impl Timing {
    /// client-go's proportions for a lease of `duration`: renew deadline 2/3 of it, retry
    /// 2/15 of it (15 s → 10 s, 2 s).
    pub fn for_duration(duration: Duration) -> Timing {
        Timing {
            duration,
            renew_deadline: duration * 2 / 3,
            retry: duration * 2 / 15,
        }
    }
}

/// What a candidate read of the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// `spec.holderIdentity`.
    pub holder: Option<String>,
    /// `spec.leaseDurationSeconds`.
    pub duration_s: Option<i32>,
    /// `spec.leaseTransitions`.
    pub transitions: i32,
    /// `metadata.resourceVersion`.
    pub version: String,
}

/// What to do after reading the lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// There is no lease: create it, held by us.
    Create,
    /// We hold it: renew.
    Renew,
    /// It expired (or nobody holds it): take it over, writing over `version`.
    Acquire {
        /// The resourceVersion read.
        version: String,
        /// Transitions so far (the write adds one).
        transitions: i32,
    },
    /// Someone else holds a live lease: wait.
    Follow,
}

/// One candidate's view of the election.
#[derive(Debug)]
pub struct Elector {
    identity: String,
    timing: Timing,
    /// The last record read and when it was first seen in that version.
    seen: Option<(Record, Instant)>,
    /// Leader until then.
    leader_until: Option<Instant>,
    /// The holder as last read.
    holder: Option<String>,
}

impl Elector {
    /// A candidate named `identity` (unique among the candidates, e.g. the pod's name).
    pub fn new(identity: impl Into<String>, timing: Timing) -> Elector {
        Elector {
            identity: identity.into(),
            timing,
            seen: None,
            leader_until: None,
            holder: None,
        }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The election's timing.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// What to do at `now`, having read `record` (`None`: there is no lease).
    pub fn decide(&mut self, now: Instant, record: Option<&Record>) -> Action {
        let Some(r) = record else {
            self.seen = None;
            self.holder = None;
            return Action::Create;
        };
        self.holder = r.holder.clone();
        let changed = self
            .seen
            .as_ref()
            .is_none_or(|(s, _)| s.version != r.version);
        if changed {
            self.seen = Some((r.clone(), now));
        }
        let observed_at = self.seen.as_ref().map_or(now, |(_, t)| *t);
        match r.holder.as_deref() {
            Some(h) if h == self.identity => Action::Renew,
            None | Some("") => Action::Acquire {
                version: r.version.clone(),
                transitions: r.transitions,
            },
            Some(_) => {
                // Someone else's lease: it expires a lease duration after we saw it change.
                // Take the longer of theirs and ours, so a candidate configured shorter
                // never cuts a holder short.
                let theirs = r
                    .duration_s
                    .and_then(|s| u64::try_from(s).ok())
                    .map(Duration::from_secs);
                let duration = theirs.map_or(self.timing.duration, |d| d.max(self.timing.duration));
                self.leader_until = None;
                if now >= observed_at + duration {
                    Action::Acquire {
                        version: r.version.clone(),
                        transitions: r.transitions,
                    }
                } else {
                    Action::Follow
                }
            }
        }
    }

    /// The write for the last action succeeded; it was sent at `sent`.
    pub fn won(&mut self, sent: Instant) {
        self.leader_until = Some(sent + self.timing.renew_deadline);
        self.holder = Some(self.identity.clone());
    }

    /// The write lost a race (409 Conflict): someone else wrote first.
    pub fn lost(&mut self) {
        self.leader_until = None;
    }

    /// Whether this candidate may act as leader at `now`.
    pub fn is_leader(&self, now: Instant) -> bool {
        self.leader_until.is_some_and(|t| now < t)
    }

    /// The holder as last read or written.
    pub fn holder(&self) -> Option<&str> {
        self.holder.as_deref()
    }
}

/// A shared view of an election, for whoever must act only while leading.
#[derive(Clone, Debug)]
pub struct Leadership(Arc<Mutex<Elector>>);

impl Leadership {
    /// Whether this process may act as leader now.
    pub fn is_leader(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_leader(Instant::now())
    }

    /// This candidate's identity and the holder as last seen.
    pub fn describe(&self) -> (String, Option<String>) {
        let e = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (e.identity.clone(), e.holder.clone())
    }
}

fn record(lease: &Lease) -> Record {
    let spec = lease.spec.clone().unwrap_or_default();
    Record {
        holder: spec.holder_identity,
        duration_s: spec.lease_duration_seconds,
        transitions: spec.lease_transitions.unwrap_or(0),
        version: lease.metadata.resource_version.clone().unwrap_or_default(),
    }
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// Starts the election for Lease `name` through `api`: returns the shared view at once and
/// the task that keeps campaigning (and renewing) until it is aborted or the runtime ends.
pub fn start(
    api: Api<Lease>,
    name: String,
    elector: Elector,
) -> (Leadership, tokio::task::JoinHandle<()>) {
    let shared = Leadership(Arc::new(Mutex::new(elector)));
    let task = tokio::spawn(run(api, name, shared.clone()));
    (shared, task)
}

/// [`start`] for Lease `name` in `namespace` (default: the client configuration's) at `url`
/// (default: in-cluster or `KUBECONFIG`, see [`crate::client`]).
pub async fn start_at(
    url: Option<&str>,
    namespace: Option<&str>,
    name: &str,
    elector: Elector,
) -> Result<(Leadership, tokio::task::JoinHandle<()>), String> {
    let (client, default_namespace) = crate::client(url).await?;
    let namespace = namespace.map_or(default_namespace, str::to_string);
    tracing::info!(lease = %name, %namespace, identity = %elector.identity(), "campaigning for the lease");
    Ok(start(
        Api::namespaced(client, &namespace),
        name.to_string(),
        elector,
    ))
}

/// The campaign: every `retry`, read, decide, write.
async fn run(api: Api<Lease>, name: String, shared: Leadership) {
    let (identity, timing) = {
        let e = shared.0.lock().unwrap_or_else(|p| p.into_inner());
        (e.identity.clone(), e.timing)
    };
    let seconds = i32::try_from(timing.duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let mut was_leader = false;
    // No request may hang past the next round.
    let bound = timing.retry.max(Duration::from_millis(200));
    loop {
        let sent = Instant::now();
        // A request that hangs must not outlive the renew deadline's usefulness.
        let read = tokio::time::timeout(bound, api.get_opt(&name)).await;
        let lease = match read {
            Ok(Ok(l)) => Some(l),
            Ok(Err(e)) => {
                tracing::warn!(lease = %name, error = %e, "cannot read the lease");
                None
            }
            Err(_) => {
                tracing::warn!(lease = %name, "reading the lease timed out");
                None
            }
        };
        if let Some(lease) = lease {
            let action = {
                let mut e = shared.0.lock().unwrap_or_else(|p| p.into_inner());
                e.decide(sent, lease.as_ref().map(record).as_ref())
            };
            let mine = |version: Option<String>,
                        transitions: i32,
                        acquired: bool,
                        old: Option<&Lease>| Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    resource_version: version,
                    ..old.map(|l| l.metadata.clone()).unwrap_or_default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    lease_transitions: Some(transitions),
                    acquire_time: if acquired {
                        Some(now_micro())
                    } else {
                        old.and_then(|l| l.spec.as_ref()?.acquire_time.clone())
                    },
                    renew_time: Some(now_micro()),
                    ..Default::default()
                }),
            };
            let write = match &action {
                Action::Follow => None,
                Action::Create => Some((true, mine(None, 0, true, None))),
                Action::Renew => {
                    let old = lease.as_ref();
                    let r = old.map(record).unwrap_or_else(|| unreachable!());
                    Some((false, mine(Some(r.version), r.transitions, false, old)))
                }
                Action::Acquire {
                    version,
                    transitions,
                } => Some((
                    false,
                    mine(Some(version.clone()), transitions + 1, true, lease.as_ref()),
                )),
            };
            if let Some((create, body)) = write {
                let pp = PostParams::default();
                let request = async {
                    if create {
                        api.create(&pp, &body).await
                    } else {
                        api.replace(&name, &pp, &body).await
                    }
                };
                let result = tokio::time::timeout(bound, request).await;
                let mut e = shared.0.lock().unwrap_or_else(|p| p.into_inner());
                match result {
                    Ok(Ok(_)) => e.won(sent),
                    Ok(Err(kube::Error::Api(s))) if s.code == 409 => e.lost(),
                    Ok(Err(err)) => {
                        tracing::warn!(lease = %name, error = %err, "cannot write the lease")
                    }
                    Err(_) => tracing::warn!(lease = %name, "writing the lease timed out"),
                }
            }
        }
        let leader = shared.is_leader();
        if leader != was_leader {
            if leader {
                tracing::info!(lease = %name, %identity, "became the leader");
            } else {
                tracing::warn!(lease = %name, %identity, "not the leader any more");
            }
            was_leader = leader;
        }
        tokio::time::sleep_until(sent + timing.retry).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing {
        duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry: Duration::from_secs(2),
    };

    fn rec(holder: &str, version: &str) -> Record {
        Record {
            holder: Some(holder.into()),
            duration_s: Some(15),
            transitions: 3,
            version: version.into(),
        }
    }

    #[test]
    fn no_lease_is_created_and_a_held_one_renewed() {
        let t0 = Instant::now();
        let mut a = Elector::new("a", T);
        assert_eq!(a.decide(t0, None), Action::Create);
        assert!(!a.is_leader(t0));
        a.won(t0);
        assert!(a.is_leader(t0 + Duration::from_secs(9)));
        assert_eq!(a.decide(t0, Some(&rec("a", "1"))), Action::Renew);
    }

    #[test]
    fn a_live_lease_is_followed_and_an_unchanged_one_taken_over_after_its_duration() {
        let t0 = Instant::now();
        let mut b = Elector::new("b", T);
        assert_eq!(b.decide(t0, Some(&rec("a", "1"))), Action::Follow);
        // Renewed (a new version): the clock starts again.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.decide(t1, Some(&rec("a", "2"))), Action::Follow);
        assert_eq!(
            b.decide(t1 + Duration::from_secs(14), Some(&rec("a", "2"))),
            Action::Follow
        );
        assert_eq!(
            b.decide(t1 + Duration::from_secs(15), Some(&rec("a", "2"))),
            Action::Acquire {
                version: "2".into(),
                transitions: 3
            }
        );
        // Nobody holds it: take it at once.
        let mut c = Elector::new("c", T);
        let mut free = rec("", "7");
        free.holder = None;
        assert!(matches!(c.decide(t0, Some(&free)), Action::Acquire { .. }));
    }

    #[test]
    fn a_leader_that_cannot_renew_stops_before_anyone_can_take_over() {
        // a renews at t0 (sent at t0); b sees that version no earlier than t0.
        let t0 = Instant::now();
        let mut a = Elector::new("a", T);
        a.won(t0);
        let mut b = Elector::new("b", T);
        b.decide(t0, Some(&rec("a", "5")));
        // From then on a's renewals fail. a stops at t0 + 10 s; b may take over at t0 + 15 s.
        let a_stops = (0..30)
            .map(|s| t0 + Duration::from_secs(s))
            .find(|t| !a.is_leader(*t))
            .unwrap();
        let b_takes = (0..30)
            .map(|s| t0 + Duration::from_secs(s))
            .find(|t| matches!(b.decide(*t, Some(&rec("a", "5"))), Action::Acquire { .. }))
            .unwrap();
        assert!(a_stops < b_takes, "{a_stops:?} {b_takes:?}");
        assert_eq!(b_takes - a_stops, Duration::from_secs(5));
    }

    #[test]
    fn a_longer_lease_written_by_the_holder_is_honoured() {
        let t0 = Instant::now();
        let mut b = Elector::new("b", T);
        let mut long = rec("a", "1");
        long.duration_s = Some(60);
        b.decide(t0, Some(&long));
        assert_eq!(
            b.decide(t0 + Duration::from_secs(30), Some(&long)),
            Action::Follow
        );
        assert!(matches!(
            b.decide(t0 + Duration::from_secs(60), Some(&long)),
            Action::Acquire { .. }
        ));
    }

    #[test]
    fn losing_a_race_is_not_leading() {
        let t0 = Instant::now();
        let mut a = Elector::new("a", T);
        a.won(t0);
        a.lost();
        assert!(!a.is_leader(t0));
        assert_eq!(Timing::for_duration(Duration::from_secs(15)), T);
    }
}
