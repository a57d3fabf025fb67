//! `h2_max_streams`: past that many streams in flight to an instance on one HTTP/2
//! connection, the proxy opens another (up to 8), rather than leave requests waiting behind
//! the instance's own stream limit. The instance here is h2's server allowing 2 streams per
//! connection and holding each for 300 ms; 6 requests at once reach it on more than one
//! connection, more than 2 at a time.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// Counts of an instance: connections, streams in flight now, the most at once.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    now: AtomicUsize,
    most: AtomicUsize,
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
            let s = s.clone();
            tokio::spawn(async move {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_the_limit_open_another_connection() {
    let (instance, seen) = slow_instance(2).await;
    let dir = tempdir("h2-streams");
    let config = format!(
        "[health_check]\nenabled = false\n\n[[services]]\nname = \"h2\"\nprotocol = \"h2c\"\n\
         h2_max_streams = 2\nbackends = [{{ address = \"{instance}\" }}]\n"
    );
    let p = proxy(&dir, &config, &[]);
    let url = p.get("proxy").to_string();
    let http = client();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move { get(&http, &format!("http://{url}/")).await.status })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), 200);
    }
    let (connections, most) = (
        seen.connections.load(Ordering::SeqCst),
        seen.most.load(Ordering::SeqCst),
    );
    // 6 at once want 3 connections (2 if the sixth came after the first had ended).
    assert!((2..=3).contains(&connections), "{connections} connections");
    // On one connection the instance would take 2 at a time.
    assert!(most >= 3, "{most} streams at once");
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
