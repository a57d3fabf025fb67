//! `h2_max_streams`: past that many streams in flight to an instance on one HTTP/2
//! connection (by default: past the instance's own `SETTINGS_MAX_CONCURRENT_STREAMS`), the
//! proxy opens another (up to 8), rather than leave requests waiting behind the instance's
//! stream limit. The instance here is h2's server allowing 2 streams per
//! connection and holding each for 300 ms; 6 requests at once reach it on more than one
//! connection, more than 2 at a time. When the load falls, the extra connections are let go
//! after `timeouts.upstream_idle` without a new stream.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// Counts of an instance: connections (made, open now), streams in flight now, the most at
/// once.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    open: AtomicUsize,
    now: AtomicUsize,
    most: AtomicUsize,
}

/// Counts a connection as closed when its task ends.
struct Closed(Arc<Seen>);

impl Drop for Closed {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn slow_instance(max_streams: u32) -> (String, Arc<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            s.connections.fetch_add(1, Ordering::SeqCst);
            s.open.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            tokio::spawn(async move {
                let _closed = Closed(s.clone());
                let Ok(mut conn) = h2::server::Builder::new()
                    .max_concurrent_streams(max_streams)
                    .handshake::<_, bytes::Bytes>(socket)
                    .await
                else {
                    return;
                };
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    let s = s.clone();
                    tokio::spawn(async move {
                        let now = s.now.fetch_add(1, Ordering::SeqCst) + 1;
                        s.most.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        s.now.fetch_sub(1, Ordering::SeqCst);
                        let _ = respond.send_response(http::Response::new(()), true);
                    });
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

/// `n` GET requests to `url` at once, each answered 200.
async fn all_at_once(http: &HttpClient, url: &str, n: usize) {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let (http, url) = (http.clone(), url.to_string());
            tokio::spawn(async move { get(&http, &url).await.status })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_the_limit_open_another_connection() {
    let (instance, seen) = slow_instance(2).await;
    let dir = tempdir("h2-streams");
    let config = format!(
        "[health_check]\nenabled = false\n\n[[services]]\nname = \"h2\"\nprotocol = \"h2c\"\n\
         h2_max_streams = 2\nbackends = [{{ address = \"{instance}\" }}]\n"
    );
    let p = proxy(&dir, &config, &[]);
    let url = format!("http://{}/", p.get("proxy"));
    all_at_once(&client(), &url, 6).await;
    let (connections, most) = (
        seen.connections.load(Ordering::SeqCst),
        seen.most.load(Ordering::SeqCst),
    );
    // 6 at once want 3 connections (2 if the sixth came after the first had ended).
    assert!((2..=3).contains(&connections), "{connections} connections");
    // On one connection the instance would take 2 at a time.
    assert!(most >= 3, "{most} streams at once");
}

/// Without `h2_max_streams` the instance's own `SETTINGS_MAX_CONCURRENT_STREAMS` decides:
/// an instance allowing 2 gets more connections for 6 streams at once, one allowing 50 keeps
/// them all on one (fewer connections carry more streams per write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_limit_of_its_own_the_instances_limit_decides() {
    for (allowed, want) in [(2, 2..=3), (50, 1..=1)] {
        let (instance, seen) = slow_instance(allowed).await;
        let dir = tempdir("h2-streams-peer");
        let config = format!(
            "[health_check]\nenabled = false\n\n[[services]]\nname = \"h2\"\n\
             protocol = \"h2c\"\nbackends = [{{ address = \"{instance}\" }}]\n"
        );
        let p = proxy(&dir, &config, &[]);
        let url = format!("http://{}/", p.get("proxy"));
        let http = client();
        // The first request connects; the instance's SETTINGS come with its answer.
        assert_eq!(get(&http, &url).await.status, 200);
        all_at_once(&http, &url, 6).await;
        let (connections, most) = (
            seen.connections.load(Ordering::SeqCst),
            seen.most.load(Ordering::SeqCst),
        );
        assert!(
            want.contains(&connections),
            "instance allowing {allowed}: {connections} connections"
        );
        assert!(
            most >= 3,
            "instance allowing {allowed}: {most} streams at once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_connections_are_let_go_when_the_load_falls() {
    let (instance, seen) = slow_instance(1).await;
    let dir = tempdir("h2-streams-fall");
    let config = format!(
        "[health_check]\nenabled = false\n\n[timeouts]\nupstream_idle = \"1s\"\n\n\
         [[services]]\nname = \"h2\"\nprotocol = \"h2c\"\n\
         h2_max_streams = 1\nbackends = [{{ address = \"{instance}\" }}]\n"
    );
    let p = proxy(&dir, &config, &[]);
    let url = format!("http://{}/", p.get("proxy"));
    let http = client();
    all_at_once(&http, &url, 4).await;
    let burst = seen.open.load(Ordering::SeqCst);
    assert!(
        burst >= 3,
        "{burst} connections open after 4 streams at once"
    );
    // One request at a time from now on: one connection is wanted; the others get no new
    // stream and go once they have had none for a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(get(&http, &url).await.status, 200);
        let open = seen.open.load(Ordering::SeqCst);
        if open == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{open} connections still open 10 s after the load fell"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The one kept still serves, on the same connection.
    let made = seen.connections.load(Ordering::SeqCst);
    assert_eq!(get(&http, &url).await.status, 200);
    assert_eq!(seen.connections.load(Ordering::SeqCst), made);
}

#[test]
fn a_bad_stream_limit_is_a_configuration_error() {
    let dir = tempdir("h2-streams-bad");
    let cfg = dir.join("foresight.toml");
    std::fs::write(&cfg, "protocol = \"h2c\"\nh2_max_streams = 0\n").unwrap();
    let o = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    assert!(text(&o).contains("h2_max_streams"), "{}", text(&o));
}
