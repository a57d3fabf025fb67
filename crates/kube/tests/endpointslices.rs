//! EndpointSlice discovery against the fake API server's real watch streams: slices created,
//! changed and deleted reach the published set; a broken watch resumes without a new list; a
//! 410 Gone lists again; and the published set never empties while the watch recovers.

#[path = "harness/mod.rs"]
mod harness;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foresight_kube::discovery::watch_endpoints;
use foresight_proxy::config::KubePort;
use foresight_proxy::discovery::Endpoint;
use harness::ApiServer;
use kube::api::Api;
use tokio::sync::watch;

type Seen = Arc<Mutex<Vec<Vec<Endpoint>>>>;

fn ep(port: u16, serving: bool) -> Endpoint {
    Endpoint {
        address: SocketAddr::from(([127, 0, 0, 1], port)),
        serving,
    }
}

/// Starts the watch of Service `web` in `shop`; every published set is recorded.
fn start(server: &ApiServer) -> (watch::Receiver<Option<Vec<Endpoint>>>, Seen) {
    let client = kube::Client::try_from(kube::Config::new(server.url.parse().unwrap())).unwrap();
    let api = Api::namespaced(client, "shop");
    let (tx, rx) = watch::channel(None);
    tokio::spawn(watch_endpoints(
        api,
        "web".into(),
        KubePort::Named("http".into()),
        tx,
    ));
    let seen: Seen = Arc::default();
    let (mut r, log) = (rx.clone(), seen.clone());
    tokio::spawn(async move {
        while r.changed().await.is_ok() {
            if let Some(set) = r.borrow_and_update().clone() {
                log.lock().unwrap().push(set);
            }
        }
    });
    (rx, seen)
}

/// Creates or replaces slice `name` of Service `service` in `shop`: one pod on 127.0.0.1.
fn slice(server: &ApiServer, name: &str, service: &str, port: u16, ready: bool, terminating: bool) {
    server.apply_slice(
        "shop",
        name,
        service,
        ("http", port),
        &[("127.0.0.1", ready, terminating)],
    );
}

/// Waits until the published set is `want`.
async fn until(rx: &mut watch::Receiver<Option<Vec<Endpoint>>>, want: &[Endpoint]) {
    let wait = rx.wait_for(|s| s.as_deref() == Some(want));
    if tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .is_err()
    {
        panic!("published {:?}, want {want:?}", *rx.borrow());
    }
}

#[tokio::test]
async fn slices_are_followed_through_breaks_and_410() {
    let server = ApiServer::start().await;
    slice(&server, "web-a", "web", 9001, true, false);
    slice(&server, "web-b", "web", 9002, false, false);
    // Another Service's slice, and the same Service name in another namespace: not ours.
    slice(&server, "api-a", "api", 9100, true, false);
    server.apply_slice(
        "other",
        "web-x",
        "web",
        ("http", 9200),
        &[("127.0.0.1", true, false)],
    );
    let (mut rx, seen) = start(&server);
    until(&mut rx, &[ep(9001, true), ep(9002, false)]).await;

    // Ready, terminating, deleted: each change arrives through the watch.
    slice(&server, "web-b", "web", 9002, true, false);
    until(&mut rx, &[ep(9001, true), ep(9002, true)]).await;
    slice(&server, "web-a", "web", 9001, false, true);
    until(&mut rx, &[ep(9001, false), ep(9002, true)]).await;
    server.delete_slice("shop", "web-a");
    until(&mut rx, &[ep(9002, true)]).await;
    let (lists, watches) = server.requests();
    assert_eq!(lists, 1, "one list at start");

    // A broken watch is resumed from where it was: a new watch, no new list.
    server.break_watches();
    tokio::time::sleep(Duration::from_millis(300)).await;
    slice(&server, "web-c", "web", 9003, true, false);
    until(&mut rx, &[ep(9002, true), ep(9003, true)]).await;
    let (l, w) = server.requests();
    assert_eq!(l, 1, "resumed without listing again");
    assert!(w > watches, "watched again");

    // Another Service changes (our watch's version falls behind), history is compacted, the
    // watch broken: the resumed watch gets 410 Gone, and the watcher lists again; a change
    // made meanwhile arrives through the new list.
    slice(&server, "api-a", "api", 9101, true, false);
    server.compact();
    server.break_watches();
    slice(&server, "web-d", "web", 9004, true, false);
    until(&mut rx, &[ep(9002, true), ep(9003, true), ep(9004, true)]).await;
    assert!(server.requests().0 >= 2, "listed again after 410");

    // Deleting every slice empties the set; nothing before did, not even while recovering.
    let before_empty = seen.lock().unwrap().len();
    for s in ["web-b", "web-c", "web-d"] {
        server.delete_slice("shop", s);
    }
    until(&mut rx, &[]).await;
    let seen = seen.lock().unwrap();
    assert!(
        seen[..before_empty].iter().all(|s| !s.is_empty()),
        "{seen:?}"
    );
    // Every request is one the RBAC Role grants (deploy/kubernetes).
    for (verb, group, resource) in server.rbac_requests() {
        assert!(
            foresight_kube::allowed(group, resource, verb),
            "{verb} {group}/{resource}"
        );
    }
}

#[tokio::test]
async fn bookmarks_keep_an_idle_watch_current() {
    // With only another Service changing, the watch sees bookmarks; after a break it resumes
    // from the bookmark's version without a 410 even when older history is gone.
    let server = ApiServer::start().await;
    slice(&server, "web-a", "web", 9001, true, false);
    let (mut rx, _) = start(&server);
    until(&mut rx, &[ep(9001, true)]).await;
    for i in 0..5 {
        slice(&server, "api-a", "api", 9100 + i, true, false);
    }
    tokio::time::sleep(Duration::from_millis(1200)).await; // a bookmark goes out
    server.compact(); // history before now is gone; the bookmark's version is current
    slice(&server, "api-a", "api", 9200, true, false);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    server.break_watches();
    tokio::time::sleep(Duration::from_millis(300)).await;
    slice(&server, "web-b", "web", 9002, true, false);
    until(&mut rx, &[ep(9001, true), ep(9002, true)]).await;
    assert_eq!(
        server.requests().0,
        1,
        "resumed from the bookmark, not listed again"
    );
}
