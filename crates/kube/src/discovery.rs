//! EndpointSlice discovery: a Service's pods as a pool's instances.
//!
//! A kube-rs `watcher` on the EndpointSlices labelled `kubernetes.io/service-name=NAME` feeds
//! a reflector store; after each change the pure [`endpoints`] turns the store into the set of
//! endpoints, published on a `watch` channel that `foresight_proxy::discovery::follow` brings
//! the pool to: ready endpoints join, terminating or not-ready ones are drained (no new
//! requests; in-flight ones finish), deleted ones leave.
//!
//! A watch that breaks (the API server restarts, the connection drops, `410 Gone` for a
//! resourceVersion too old) is resumed by the watcher with backoff, listing again when it must;
//! the store swaps in a new list only when it is complete, so the pool keeps its instances
//! meanwhile.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use foresight_proxy::config::{KubePort, KubernetesDiscovery};
use foresight_proxy::discovery::{follow_from, Endpoint, Target};
use foresight_proxy::{Pool, Supervisor};
use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use tokio::sync::watch;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// How long to wait before trying again to build a client that could not be built.
const CLIENT_RETRY: Duration = Duration::from_secs(10);

/// The endpoints that `slices` list on `port`, each address once (serving if any slice says
/// so). An endpoint serves when it is ready (an absent condition counts as ready, as the API
/// says) and not terminating. Slices of FQDN addresses, slices without the port, and
/// addresses that are not IPs are skipped.
pub fn endpoints<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    port: &KubePort,
) -> Vec<Endpoint> {
    let mut seen: BTreeMap<SocketAddr, bool> = BTreeMap::new();
    for slice in slices {
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue;
        }
        let ports = slice.ports.as_deref().unwrap_or_default();
        let number = match port {
            KubePort::Number(n) => Some(i32::from(*n)),
            KubePort::Named(name) => ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| p.port),
            KubePort::Only => match ports {
                [only] => only.port,
                _ => None,
            },
        };
        let Some(number) = number
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)
        else {
            continue;
        };
        for e in &slice.endpoints {
            // The EndpointSlice controller writes one address per endpoint; consumers use the
            // first.
            let Some(ip) = e.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) else {
                continue;
            };
            let c = e.conditions.as_ref();
            let ready = c.and_then(|c| c.ready).unwrap_or(true);
            let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
            *seen.entry(SocketAddr::new(ip, number)).or_default() |= ready && !terminating;
        }
    }
    seen.into_iter()
        .map(|(address, serving)| Endpoint { address, serving })
        .collect()
}

/// Watches the EndpointSlices of `service` through `api` and publishes their endpoints on
/// `tx` whenever they change, until every receiver is gone. Errors are logged and the watch
/// resumed; the last published set stays meanwhile.
pub async fn watch_endpoints(
    api: Api<EndpointSlice>,
    service: String,
    port: KubePort,
    tx: watch::Sender<Option<Vec<Endpoint>>>,
) {
    let (reader, mut writer) = reflector::store::<EndpointSlice>();
    let selector = format!("{SERVICE_NAME_LABEL}={service}");
    let mut events = watcher(api, watcher::Config::default().labels(&selector))
        .default_backoff()
        .boxed();
    let mut broken = false;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                if !broken {
                    tracing::warn!(%service, error = %e, "EndpointSlice watch failed; keeping the last instances and resuming");
                }
                broken = true;
                continue;
            }
        };
        if broken {
            tracing::info!(%service, "EndpointSlice watch resumed");
            broken = false;
        }
        writer.apply_watcher_event(&event);
        if matches!(event, watcher::Event::Init | watcher::Event::InitApply(_)) {
            continue; // a (re)list in progress: the store swaps it in at InitDone
        }
        let state = reader.state();
        let set = endpoints(state.iter().map(Arc::as_ref), &port);
        tx.send_if_modified(|current| {
            if current.as_ref() == Some(&set) {
                return false;
            }
            tracing::info!(
                %service,
                serving = set.iter().filter(|e| e.serving).count(),
                others = set.iter().filter(|e| !e.serving).count(),
                "endpoints"
            );
            *current = Some(set);
            true
        });
        if tx.is_closed() {
            return;
        }
    }
}

/// A client for `d`: at its `url`, or found the usual way; and the namespace to watch.
async fn client(d: &KubernetesDiscovery) -> Result<(kube::Client, String), String> {
    let (client, namespace) = crate::client(d.url.as_deref()).await?;
    Ok((client, d.namespace.clone().unwrap_or(namespace)))
}

/// Starts keeping `pool` at the endpoints of `d`'s Service: the client, the watch and the
/// pool's follower run as `supervisor`'s tasks until it shuts down. A client that cannot be
/// built (no configuration yet) is logged and tried again every 10 s.
pub fn start(
    pool: Arc<Pool>,
    d: KubernetesDiscovery,
    drain_timeout: Duration,
    supervisor: &Supervisor,
) {
    let target = Target {
        tls: d.tls,
        weight: d.weight,
    };
    let tx = follow_from(&pool, target, drain_timeout, supervisor);
    let service = pool.service().to_string();
    supervisor.spawn(format!("kubernetes discovery of {service}"), async move {
        let (client, namespace) = loop {
            match client(&d).await {
                Ok(c) => break c,
                Err(e) => {
                    tracing::error!(%service, error = %e, "cannot watch EndpointSlices; trying again in 10s");
                    tokio::time::sleep(CLIENT_RETRY).await;
                }
            }
        };
        tracing::info!(%service, kubernetes_service = %d.service, %namespace, "watching EndpointSlices");
        let api = Api::namespaced(client, &namespace);
        watch_endpoints(api, d.service, d.port, tx).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::{
        Endpoint as SliceEndpoint, EndpointConditions, EndpointPort,
    };

    fn slice(
        kind: &str,
        ports: &[(&str, i32)],
        eps: &[(&str, Option<bool>, Option<bool>)],
    ) -> EndpointSlice {
        EndpointSlice {
            address_type: kind.into(),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p)| EndpointPort {
                        name: Some(n.to_string()),
                        port: Some(*p),
                        ..Default::default()
                    })
                    .collect(),
            ),
            endpoints: eps
                .iter()
                .map(|(a, ready, terminating)| SliceEndpoint {
                    addresses: vec![a.to_string()],
                    conditions: Some(EndpointConditions {
                        ready: *ready,
                        terminating: *terminating,
                        serving: None,
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn ep(a: &str, serving: bool) -> Endpoint {
        Endpoint {
            address: a.parse().unwrap(),
            serving,
        }
    }

    #[test]
    fn ready_endpoints_serve_and_terminating_or_unready_ones_do_not() {
        let s = slice(
            "IPv4",
            &[("http", 8080), ("metrics", 9090)],
            &[
                ("10.0.0.1", Some(true), None),
                ("10.0.0.2", None, None), // unknown readiness counts as ready
                ("10.0.0.3", Some(false), Some(true)),
                ("10.0.0.4", Some(false), None),
                ("not-an-ip", Some(true), None),
            ],
        );
        let named = endpoints([&s], &KubePort::Named("http".into()));
        assert_eq!(
            named,
            [
                ep("10.0.0.1:8080", true),
                ep("10.0.0.2:8080", true),
                ep("10.0.0.3:8080", false),
                ep("10.0.0.4:8080", false),
            ]
        );
        assert_eq!(endpoints([&s], &KubePort::Named("grpc".into())), []);
        // Two ports: `Only` cannot choose.
        assert_eq!(endpoints([&s], &KubePort::Only), []);
        assert_eq!(
            endpoints([&s], &KubePort::Number(7000))[0],
            ep("10.0.0.1:7000", true)
        );
    }

    #[test]
    fn slices_merge_and_serving_wins_for_an_address_listed_twice() {
        let a = slice(
            "IPv4",
            &[("", 80)],
            &[("10.0.0.1", Some(false), Some(true))],
        );
        let b = slice(
            "IPv4",
            &[("", 80)],
            &[("10.0.0.1", Some(true), None), ("10.0.0.9", None, None)],
        );
        let v6 = slice("IPv6", &[("", 80)], &[("2001:db8::1", Some(true), None)]);
        let fqdn = slice("FQDN", &[("", 80)], &[("web.example", Some(true), None)]);
        assert_eq!(
            endpoints([&a, &b, &v6, &fqdn], &KubePort::Only),
            [
                ep("10.0.0.1:80", true),
                ep("10.0.0.9:80", true),
                ep("[2001:db8::1]:80", true),
            ]
        );
    }
}
