//! Discovered instances: a source (DNS, `dns`; the shape fits a Kubernetes EndpointSlice
//! watch too) publishes the whole current set of endpoints on a `watch` channel each time it changes;
//! [`follow`] brings a pool to it: serving endpoints that are not members join, members that
//! are gone or no longer serving are drained (no new requests; in-flight ones finish), and an
//! endpoint that comes back while its drain runs joins again once the drain ends.
//!
//! The first set joins healthy, as configured instances do at start; later ones join after
//! `rise` passed health checks when health checks are on.

pub(crate) mod dns;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::config::{parse_backend, BackendSpec};
use crate::pool::Pool;

/// One discovered instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// Where it listens.
    pub address: SocketAddr,
    /// Whether it should receive new requests (Kubernetes: `ready` and not `terminating`).
    pub serving: bool,
}

impl Endpoint {
    /// A serving endpoint at `ip:port`.
    pub fn serving(ip: IpAddr, port: u16) -> Endpoint {
        Endpoint {
            address: SocketAddr::new(ip, port),
            serving: true,
        }
    }
}

/// How discovered endpoints become instances: `https://` or `http://`, and their weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// TLS to the instances.
    pub tls: bool,
    /// Every instance's weight.
    pub weight: u32,
}

impl Target {
    /// The instance `endpoint` is.
    fn spec(&self, endpoint: &Endpoint) -> Option<BackendSpec> {
        let scheme = if self.tls { "https" } else { "http" };
        parse_backend(
            "discovery",
            &format!("{scheme}://{}", endpoint.address),
            Some(i64::from(self.weight)),
        )
        .ok()
    }
}

/// What brings a pool to a discovered set.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    /// Instances to add.
    pub add: Vec<BackendSpec>,
    /// Members (as their addresses) to drain.
    pub drain: Vec<String>,
}

/// The changes that bring `members` (`(address, identity)`) to the serving part of
/// `endpoints`; members whose identity is in `draining` are left to their drain.
pub(crate) fn changes(
    members: &[(String, String)],
    draining: &HashSet<String>,
    endpoints: &[Endpoint],
    target: Target,
) -> Changes {
    let wanted: Vec<BackendSpec> = endpoints
        .iter()
        .filter(|e| e.serving)
        .filter_map(|e| target.spec(e))
        .collect();
    let mut out = Changes::default();
    for spec in &wanted {
        let member = members.iter().any(|(_, id)| *id == spec.key);
        let queued = out.add.iter().any(|a| a.key == spec.key);
        if !member && !queued && !draining.contains(&spec.key) {
            out.add.push(spec.clone());
        }
    }
    for (address, identity) in members {
        if !draining.contains(identity) && !wanted.iter().any(|w| w.key == *identity) {
            out.drain.push(address.clone());
        }
    }
    out
}

/// Starts keeping `pool` at the sets a discovery source publishes ([`follow`]), as
/// `supervisor`'s task; returns the sender the source publishes on. Every source (DNS,
/// Kubernetes EndpointSlices, an EC2 Auto Scaling group) starts this way.
pub fn follow_from(
    pool: &Arc<Pool>,
    target: Target,
    drain_timeout: Duration,
    supervisor: &crate::Supervisor,
) -> watch::Sender<Option<Vec<Endpoint>>> {
    let (tx, rx) = watch::channel(None);
    supervisor.spawn(
        format!("pool updates of {}", pool.service()),
        follow(pool.clone(), rx, target, drain_timeout),
    );
    tx
}

/// Keeps `pool` at what `updates` publishes (`None` until the source's first answer) until
/// the sender is dropped.
pub async fn follow(
    pool: Arc<Pool>,
    mut updates: watch::Receiver<Option<Vec<Endpoint>>>,
    target: Target,
    drain_timeout: Duration,
) {
    let mut first = true;
    let mut draining: HashSet<String> = HashSet::new();
    let (drained_tx, mut drained) = mpsc::unbounded_channel::<String>();
    loop {
        let set = updates.borrow_and_update().clone();
        if let Some(set) = set {
            let members: Vec<(String, String)> = pool
                .members_now()
                .into_iter()
                .map(|(a, id, _)| (a, id))
                .collect();
            let c = changes(&members, &draining, &set, target);
            for spec in c.add {
                if let Err(e) = pool.add(spec, first) {
                    tracing::warn!(service = %pool.service(), error = %e, "discovered instance not added");
                }
            }
            for address in c.drain {
                // No new request from now on; the wait for in-flight ones in the background.
                let Ok(b) = pool.stop_new_requests(&address) else {
                    continue;
                };
                draining.insert(b.identity.clone());
                let (pool, done) = (pool.clone(), drained_tx.clone());
                tokio::spawn(async move {
                    let identity = b.identity.clone();
                    pool.finish_drain(b, drain_timeout).await;
                    let _ = done.send(identity);
                });
            }
            first = false;
        }
        tokio::select! {
            changed = updates.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            Some(identity) = drained.recv() => {
                // The set is applied again: an endpoint that came back during the drain joins.
                draining.remove(&identity);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str, serving: bool) -> Endpoint {
        Endpoint {
            address: s.parse().unwrap(),
            serving,
        }
    }

    const PLAIN: Target = Target {
        tls: false,
        weight: 1,
    };

    fn member(a: &str) -> (String, String) {
        let spec = parse_backend("m", a, None).unwrap();
        (spec.address, spec.key)
    }

    #[test]
    fn serving_endpoints_join_and_others_are_drained() {
        let members = vec![
            member("http://10.0.0.1:80"),
            member("http://10.0.0.2:80"),
            member("http://10.0.0.3:80"),
        ];
        let set = [
            ep("10.0.0.1:80", true),
            ep("10.0.0.2:80", false), // terminating
            ep("10.0.0.4:80", true),
            ep("10.0.0.5:80", false), // not ready yet: not added
        ];
        let c = changes(&members, &HashSet::new(), &set, PLAIN);
        let added: Vec<&str> = c.add.iter().map(|s| s.address.as_str()).collect();
        assert_eq!(added, ["http://10.0.0.4:80"]);
        assert_eq!(c.drain, ["http://10.0.0.2:80", "http://10.0.0.3:80"]);
    }

    #[test]
    fn a_draining_member_is_left_alone_and_rejoins_after() {
        let members = vec![member("http://10.0.0.1:80")];
        let draining: HashSet<String> = [members[0].1.clone()].into();
        let set = [ep("10.0.0.1:80", true)];
        assert_eq!(
            changes(&members, &draining, &set, PLAIN),
            Changes::default()
        );
        // Once removed, the same endpoint is added again.
        let c = changes(&[], &HashSet::new(), &set, PLAIN);
        assert_eq!(c.add.len(), 1);
    }

    #[test]
    fn duplicates_ipv6_and_tls_are_handled() {
        let tls = Target {
            tls: true,
            weight: 3,
        };
        let set = [
            ep("[2001:db8::1]:8443", true),
            ep("[2001:db8::1]:8443", true),
        ];
        let c = changes(&[], &HashSet::new(), &set, tls);
        assert_eq!(c.add.len(), 1);
        assert_eq!(c.add[0].address, "https://[2001:db8::1]:8443");
        assert!(c.add[0].tls);
        assert_eq!(c.add[0].weight, 3);
    }

    #[test]
    fn an_empty_set_drains_everything() {
        let members = vec![member("http://10.0.0.1:80")];
        let c = changes(&members, &HashSet::new(), &[], PLAIN);
        assert_eq!(c.drain, ["http://10.0.0.1:80"]);
    }
}
