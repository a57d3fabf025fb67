//! Leader election against the fake API server's Leases: two candidates, each through its own
//! door of the server. One leads; the other takes over within the lease's duration when the
//! leader stops; a leader cut off from the Lease stops leading before the other takes over.

#[path = "harness/mod.rs"]
mod harness;

use std::time::Duration;

use foresight_kube::lease::{self, Elector, Leadership, Timing};
use harness::ApiServer;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use tokio::time::Instant;

const TIMING: Timing = Timing {
    duration: Duration::from_millis(3000),
    renew_deadline: Duration::from_millis(2000),
    retry: Duration::from_millis(300),
};

fn candidate(url: &str, identity: &str) -> (Leadership, tokio::task::JoinHandle<()>) {
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let api: Api<Lease> = Api::namespaced(client, "shop");
    lease::start(api, "ctl".into(), Elector::new(identity, TIMING))
}

async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Instant {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Instant::now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leads_the_other_takes_over_and_a_cut_off_leader_stops_first() {
    let server = ApiServer::start().await;
    let (a, a_task) = candidate(&server.urls[0], "a");
    until("a leads", Duration::from_secs(5), || a.is_leader()).await;
    let (b, _b_task) = candidate(&server.urls[1], "b");
    // b follows a live lease for longer than its duration: a keeps renewing.
    tokio::time::sleep(TIMING.duration * 2).await;
    assert!(a.is_leader() && !b.is_leader());
    assert_eq!(server.lease_holder("shop", "ctl").as_deref(), Some("a"));
    assert_eq!(b.describe(), ("b".to_string(), Some("a".to_string())));

    // a is cut off from the Lease (its renewals fail): it stops leading before b can start.
    let cut = Instant::now();
    server.cut_leases(0, true);
    let a_stopped = until("a stops", Duration::from_secs(10), || !a.is_leader()).await;
    let b_leads = until("b leads", Duration::from_secs(10), || b.is_leader()).await;
    let (acquired, door, holder) = server
        .lease_writes()
        .into_iter()
        .find(|(t, _, h)| *t > cut && h == "b")
        .expect("b wrote the lease");
    assert_eq!((door, holder.as_str()), (1, "b"));
    assert!(a_stopped < acquired, "a stopped after b took over");
    assert!(
        acquired - a_stopped >= Duration::from_millis(500),
        "the margin is the lease duration less the renew deadline: {:?}",
        acquired - a_stopped
    );
    assert!(b_leads - cut <= TIMING.duration + TIMING.renew_deadline + TIMING.retry * 3);
    // Back in touch, a follows b's lease.
    server.cut_leases(0, false);
    until("a reads b's lease", TIMING.retry * 10, || {
        a.describe().1.as_deref() == Some("b")
    })
    .await;
    assert!(!a.is_leader() && b.is_leader());

    // a's process dies; nothing changes for b, which keeps leading.
    a_task.abort();
    tokio::time::sleep(TIMING.duration).await;
    assert!(b.is_leader());

    // Every request made is one the RBAC rules grant.
    for (verb, group, resource) in server.rbac_requests() {
        assert!(
            foresight_kube::allowed(group, resource, verb),
            "{verb} {group}/{resource}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leader_is_replaced_within_the_lease_duration() {
    let server = ApiServer::start().await;
    let (a, a_task) = candidate(&server.urls[0], "a");
    until("a leads", Duration::from_secs(5), || a.is_leader()).await;
    let (b, _b_task) = candidate(&server.urls[1], "b");
    tokio::time::sleep(TIMING.retry * 3).await;
    a_task.abort();
    let died = Instant::now();
    let b_leads = until("b leads", Duration::from_secs(10), || b.is_leader()).await;
    assert!(
        b_leads - died <= TIMING.duration + TIMING.retry * 3,
        "{:?}",
        b_leads - died
    );
    let transitions = server
        .lease_writes()
        .iter()
        .filter(|(_, _, h)| h == "b")
        .count();
    assert!(transitions >= 1);
}
