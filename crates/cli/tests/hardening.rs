//! What an adversarial probe of the proxy found (issue #23), each kept fixed by a test against the
//! real binary: early answers during uploads, slow uploads, request-head limits, connection
//! limits, admin API access, and HTTP/1.1's Host and request-target rules.

mod common;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::*;

/// Ejection after three failures, so that any failure wrongly held against an instance shows.
const STRICT_OUTLIER: &str = r#"
[health_check]
enabled = false
[outlier]
consecutive_errors = 3
base_ejection_time = "60s"
"#;

/// POSTs `len` bytes to `url`; the status and body.
async fn upload(c: &HttpClient, url: &str, len: usize) -> (u16, String) {
    let req = hyper::Request::post(url)
        .body(Full::new(Bytes::from(vec![b'x'; len])))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), c.request(req))
        .await
        .expect("no answer in 30 s")
        .expect("request failed");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map_or_else(
        |e| format!("<body error: {e}>"),
        |b| String::from_utf8_lossy(&b.to_bytes()).into_owned(),
    );
    (status, body)
}

/// An instance that reads each request's head only, answers `413` at once and closes, as an
/// instance with an upload limit does (closing with the body unread resets the connection,
/// as real servers do).
async fn refusing_instance() -> (String, tokio::task::JoinHandle<()>) {
    raw_instance(|mut s| async move {
        if read_head(&mut s).await.is_some() {
            let _ = s
                .write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 10\r\nconnection: close\r\n\r\ntoo large\n")
                .await;
        }
    })
    .await
}

/// An instance that reads each request's head and its `content-length` body before it answers
/// `200 read N`, one request per connection.
async fn reading_instance() -> (String, tokio::task::JoinHandle<()>) {
    raw_instance(|mut s| async move {
        let Some(mut got) = read_head(&mut s).await else {
            return;
        };
        let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |n| n.trim().parse().unwrap());
        let mut buf = [0u8; 8192];
        while got.len() < end + 4 + len {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let msg = format!("read {len}");
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{msg}",
            msg.len()
        );
        let _ = s.write_all(resp.as_bytes()).await;
    })
    .await
}

/// Before: an upload to an instance that answers without reading it (the example backend
/// ignores bodies) was a 502 three times out of three, and counted against the instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_comes_before_the_upload_ends_is_relayed() {
    let (_a, a) = backend("a", &[]);
    let (refusing, _task) = refusing_instance().await;
    let dir = tempdir("early-answer");
    let p = proxy(&dir, STRICT_OUTLIER, &["--backend", &a]);
    let (proxy_addr, admin) = (p.get("proxy").to_string(), p.get("admin").to_string());
    let http = client();
    for _ in 0..3 {
        let (status, body) = upload(
            &http,
            &format!("http://{proxy_addr}/process?ms=300"),
            10 << 20,
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    // Replace the instance with one that refuses uploads: its 413 reaches the client.
    let r = send(
        &http,
        "POST",
        &format!("http://{admin}/backends"),
        &format!(r#"{{"address":"{refusing}"}}"#),
    )
    .await
    .unwrap();
    assert!(r.status < 300, "{}", r.body);
    let r = send(
        &http,
        "DELETE",
        &format!("http://{admin}/backends?address={a}"),
        "",
    )
    .await
    .unwrap();
    assert!(r.status < 300, "{}", r.body);
    for _ in 0..5 {
        let (status, body) = upload(&http, &format!("http://{proxy_addr}/up"), 10 << 20).await;
        assert_eq!((status, body.as_str()), (413, "too large\n"));
    }
    let s = backend_status(&http, &admin, &refusing).await.unwrap();
    assert_eq!(s["ejected"], false, "{s}");
}

/// Before: a client that sent its body too slowly for the request timeout got a 504 and the
/// instance a failure; enough such clients ejected every healthy instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upload_is_the_clients_timeout_not_the_instances_failure() {
    let (a, _task) = reading_instance().await;
    let dir = tempdir("slow-upload");
    let toml = format!("{STRICT_OUTLIER}[timeouts]\nrequest = \"400ms\"\n");
    let p = proxy(&dir, &toml, &["--backend", &a]);
    let (proxy_addr, admin) = (p.get("proxy").to_string(), p.get("admin").to_string());
    let mut clients = Vec::new();
    for _ in 0..6 {
        let addr = proxy_addr.clone();
        clients.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            s.write_all(
                b"POST /auth HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n0123456789",
            )
            .await
            .unwrap();
            let mut got = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
            String::from_utf8_lossy(&got).into_owned()
        }));
    }
    for c in clients {
        let got = c.await.unwrap();
        assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    }
    let http = client();
    let s = backend_status(&http, &admin, &a).await.unwrap();
    assert_eq!(
        (s["ejected"].clone(), s["eligible"].clone()),
        (false.into(), true.into()),
        "{s}"
    );
    let (status, body) = upload(&http, &format!("http://{proxy_addr}/up"), 1000).await;
    assert_eq!((status, body.as_str()), (200, "read 1000"));
    let m = get(&http, &format!("http://{admin}/metrics")).await.body;
    assert!(!m.contains("kind=\"timeout\""), "{m}");
}

/// Reads from `s` until the peer closes or `limit` passes; what was read.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> String {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(limit, s.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

/// Sends raw `request` bytes to `addr` and reads the answer until the proxy closes (the
/// requests here end with `Connection: close` or are refused).
async fn raw(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    read_until_closed(&mut s, Duration::from_secs(5)).await
}

/// Before: header values of ~420 KB were accepted (500 such connections held 296 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_over_the_limit_gets_431() {
    let (_a, a) = backend("a", &[]);
    let dir = tempdir("head-limit");
    let p = proxy(&dir, "", &["--backend", &a]);
    let addr = p.get("proxy");
    let ok = raw(
        addr,
        format!(
            "GET /auth?ms=0 HTTP/1.1\r\nhost: x\r\nx-big: {}\r\nconnection: close\r\n\r\n",
            "v".repeat(60_000)
        )
        .as_bytes(),
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let big = raw(
        addr,
        format!(
            "GET /auth?ms=0 HTTP/1.1\r\nhost: x\r\nx-big: {}\r\nconnection: close\r\n\r\n",
            "v".repeat(100_000)
        )
        .as_bytes(),
    )
    .await;
    assert!(big.starts_with("HTTP/1.1 431"), "{big}");

    // A smaller limit from the file.
    let dir = tempdir("head-limit-small");
    let p = proxy(
        &dir,
        "[limits]\nmax_request_head = 16384\n",
        &["--backend", &a],
    );
    let big = raw(
        p.get("proxy"),
        format!(
            "GET /auth HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
            "v".repeat(20_000)
        )
        .as_bytes(),
    )
    .await;
    assert!(big.starts_with("HTTP/1.1 431"), "{big}");
}

/// Before: a head sent a byte at a time held its connection until the 60-s idle timeout and
/// was then cut off without an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_that_crawls_gets_408() {
    let (_a, a) = backend("a", &[]);
    let dir = tempdir("header-timeout");
    let p = proxy(
        &dir,
        "[timeouts]\nclient_header = \"600ms\"\n",
        &["--backend", &a],
    );
    let mut s = TcpStream::connect(p.get("proxy")).await.unwrap();
    let started = std::time::Instant::now();
    s.write_all(b"GET /auth HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // A header line every 100 ms, for longer than the timeout: the connection is never idle.
    let mut closed = false;
    for i in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if s.write_all(format!("x-{i}: y\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(1), s.peek(&mut probe)).await
        {
            break;
        }
    }
    let got = if closed {
        String::new()
    } else {
        read_until_closed(&mut s, Duration::from_secs(5)).await
    };
    assert!(
        got.starts_with("HTTP/1.1 408"),
        "{got:?} after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // A complete request on a fresh connection is unaffected; so is a kept-alive one that
    // waits longer than the header timeout between requests (that is the idle timeout's job).
    let mut s = TcpStream::connect(p.get("proxy")).await.unwrap();
    s.write_all(b"GET /auth?ms=0 HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
}

/// Before: the proxy kept the soft limit of 1024 open files, and 1100 idle connections made
/// every client and the admin API wait ~58 s while it logged 50 accept errors a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_get_503_and_the_admin_api_stays_reachable() {
    let (_a, a) = backend("a", &[]);
    let dir = tempdir("max-connections");
    let p = proxy(&dir, "[limits]\nmax_connections = 20\n", &["--backend", &a]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", p.pid())).unwrap();
    let files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .skip(3)
        .take(2)
        .collect::<Vec<_>>();
    assert_eq!(
        files[0], files[1],
        "soft limit raised to the hard one: {limits}"
    );

    let addr = p.get("proxy").to_string();
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let extra = raw(&addr, b"").await;
    assert!(extra.starts_with("HTTP/1.1 503"), "{extra}");
    assert!(started.elapsed() < Duration::from_secs(1));
    let http = client();
    let r = get(&http, &format!("http://{}/healthz", p.get("admin"))).await;
    assert_eq!(r.status, 200);
    drop(idle);
    eventually(
        Duration::from_secs(5),
        "room for a client again",
        || async {
            raw(
                &addr,
                b"GET /auth?ms=0 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            )
            .await
            .starts_with("HTTP/1.1 200")
        },
    )
    .await;
}

/// A request with exactly these header fields; the status, `WWW-Authenticate` and body.
async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Option<String>, String) {
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let resp = client().request(req).await.unwrap();
    let status = resp.status().as_u16();
    let auth = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, auth, String::from_utf8_lossy(&body).into_owned())
}

/// The `error` of a JSON error body; panics if the body is not one.
fn json_error(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field: {body}"))
        .to_string()
}

/// Before: a form POST from a foreign page drained an instance (202).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_cross_site_changes() {
    let (_a, a) = backend("a", &[]);
    let dir = tempdir("admin-origin");
    let p = proxy(&dir, "", &["--backend", &a]);
    let admin = p.get("admin");
    let drain = format!("http://{admin}/backends/drain?address={a}");
    let form = ("content-type", "application/x-www-form-urlencoded");
    let (status, _, body) = request(
        "POST",
        &drain,
        &[form, ("origin", "http://evil.example")],
        "",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(json_error(&body).contains("Origin"), "{body}");
    let (status, _, body) = request("POST", &drain, &[form], "").await;
    assert_eq!(status, 415, "{body}");
    // A JSON change with a foreign Origin: refused all the same.
    let (status, _, _) = request(
        "POST",
        &drain,
        &[
            ("content-type", "application/json"),
            ("origin", "http://evil.example"),
        ],
        "",
    )
    .await;
    assert_eq!(status, 403);
    let s = backend_status(&client(), admin, &a).await.unwrap();
    assert_eq!(s["draining"], false, "{s}");
    // The admin's own page (same origin) and curl with the admin header may.
    let (status, _, body) = request(
        "POST",
        &format!("{drain}&wait=true"),
        &[
            ("x-foresight-admin", "1"),
            ("origin", &format!("http://{admin}")),
        ],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// A token, when configured, is needed everywhere but `/healthz` and `/metrics`; without one
/// the admin API may listen on loopback only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_the_admin_api_and_is_needed_off_loopback() {
    let (_a, a) = backend("a", &[]);
    let dir = tempdir("admin-token");
    let token = "3f9c2a7d41e8b6c05d2e9f7a1b3c4d5e";
    std::fs::write(dir.join("token"), format!("{token}\n")).unwrap();
    let p = proxy(
        &dir,
        &format!("admin_token_file = {:?}\n", dir.join("token")),
        &["--backend", &a],
    );
    let admin = p.get("admin");
    let list = format!("http://{admin}/backends");
    let (status, auth, body) = request("GET", &list, &[], "").await;
    assert_eq!((status, auth.as_deref()), (401, Some("Bearer")), "{body}");
    json_error(&body);
    let wrong = format!("Bearer {}", token.replace('3', "4"));
    assert_eq!(
        request("GET", &list, &[("authorization", &wrong)], "")
            .await
            .0,
        401
    );
    let right = format!("Bearer {token}");
    assert_eq!(
        request("GET", &list, &[("authorization", &right)], "")
            .await
            .0,
        200
    );
    for open in ["healthz", "metrics"] {
        let (status, _, _) = request("GET", &format!("http://{admin}/{open}"), &[], "").await;
        assert_eq!(status, 200, "/{open}");
    }
    let drain = format!("http://{admin}/backends/drain?address={a}");
    let (status, _, _) = request("POST", &drain, &[("x-foresight-admin", "1")], "").await;
    assert_eq!(status, 401);

    // Off loopback without a token: refused at start, naming the key.
    let out = run(&["serve", "--admin", "0.0.0.0:0", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(
        text(&out).contains("`admin`") && text(&out).contains("token"),
        "{}",
        text(&out)
    );
    // A token too short to be one: refused, and not printed.
    std::fs::write(dir.join("short"), "abc").unwrap();
    let cfg = dir.join("short.toml");
    std::fs::write(
        &cfg,
        format!("admin_token_file = {:?}\n", dir.join("short")),
    )
    .unwrap();
    let out = run(&["serve", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(
        text(&out).contains("admin_token_file") && !text(&out).contains("abc"),
        "{}",
        text(&out)
    );
    // With one, off loopback is fine.
    let cfg = dir.join("token.toml");
    std::fs::write(
        &cfg,
        format!("admin_token_file = {:?}\n", dir.join("token")),
    )
    .unwrap();
    let p = spawn(&[
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "0.0.0.0:0",
        "--backend",
        &a,
    ]);
    assert!(p.get("admin").starts_with("0.0.0.0:"));
}

/// Before: malformed bodies got plain-text 400/415/422s, unknown fields were ignored, and
/// `localhost:P`, `http://[::1]:P` and `http://127.0.0.1:P` were three instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_errors_are_json_and_one_instance_has_one_address() {
    let (_a, a) = backend("a", &[]);
    let dir = tempdir("admin-json");
    let p = proxy(&dir, "", &["--backend", &a]);
    let admin = p.get("admin");
    let add = format!("http://{admin}/backends");
    let json = ("content-type", "application/json");
    for (body, needle) in [
        ("{\"address\": ", "EOF"),
        ("[1, 2]", "invalid type"),
        (
            "{\"address\":\"http://127.0.0.1:1\",\"wieght\":2}",
            "wieght",
        ),
    ] {
        let (status, _, resp) = request("POST", &add, &[json], body).await;
        assert_eq!(status, 400, "{body}: {resp}");
        assert!(json_error(&resp).contains(needle), "{body}: {resp}");
    }
    let (status, _, resp) = request("POST", &add, &[("content-type", "text/plain")], "{}").await;
    assert_eq!(status, 415, "{resp}");
    json_error(&resp);
    let (status, _, resp) = request("DELETE", &add, &[json], "").await;
    assert_eq!(status, 400, "{resp}");
    json_error(&resp);
    let (status, _, resp) =
        request("DELETE", &format!("{add}?address={a}&force=1"), &[json], "").await;
    assert_eq!(status, 400, "{resp}");
    assert!(json_error(&resp).contains("force"), "{resp}");
    let (status, _, resp) = request("GET", &format!("http://{admin}/nope"), &[], "").await;
    assert_eq!(status, 404, "{resp}");
    json_error(&resp);
    let (status, _, resp) = request("PUT", &format!("http://{admin}/healthz"), &[json], "").await;
    assert_eq!(status, 405, "{resp}");
    json_error(&resp);

    // One instance, however its address is written.
    let port = a.rsplit(':').next().unwrap();
    for alias in [
        format!("localhost:{port}"),
        format!("http://[::1]:{port}"),
        format!("http://LOCALHOST:{port}/"),
    ] {
        let (status, _, resp) = request(
            "POST",
            &add,
            &[json],
            &format!("{{\"address\":\"{alias}\"}}"),
        )
        .await;
        assert_eq!(status, 409, "{alias}: {resp}");
        assert!(json_error(&resp).contains(&a), "{alias}: {resp}");
    }
    assert_eq!(backends(&client(), admin).await.len(), 1);
    let (status, _, resp) = request(
        "DELETE",
        &format!("{add}?address=localhost:{port}"),
        &[json],
        "",
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert!(backends(&client(), admin).await.is_empty());
}

/// An instance that answers every request with the request head it received as its body.
async fn echo_instance() -> (String, tokio::task::JoinHandle<()>) {
    raw_instance(|mut s| async move {
        let Some(got) = read_head(&mut s).await else {
            return;
        };
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            got.len()
        );
        let _ = s.write_all(resp.as_bytes()).await;
        let _ = s.write_all(&got).await;
    })
    .await
}

/// Before: HTTP/1.1 without Host or with two was forwarded, an absolute-form target's authority
/// was ignored, `Connection: host` stripped Host, and CONNECT became `CONNECT /` upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_request_targets_follow_rfc_9112() {
    let (echo, _task) = echo_instance().await;
    let dir = tempdir("rfc9112");
    let p = proxy(
        &dir,
        "[health_check]\nenabled = false\n",
        &["--backend", &echo],
    );
    let addr = p.get("proxy");
    for bad in [
        &b"GET /a HTTP/1.1\r\nconnection: close\r\n\r\n"[..],
        b"GET /a HTTP/1.1\r\nhost: a\r\nhost: b\r\nconnection: close\r\n\r\n",
        b"GET /a HTTP/1.1\r\nhost: a b\r\nconnection: close\r\n\r\n",
        b"GET /a HTTP/1.1\r\nhost: user@a\r\nconnection: close\r\n\r\n",
    ] {
        let got = raw(addr, bad).await;
        assert!(
            got.starts_with("HTTP/1.1 400"),
            "{}: {got}",
            String::from_utf8_lossy(bad)
        );
    }
    let got = raw(
        addr,
        b"GET http://svc.example:81/x?y=1 HTTP/1.1\r\nhost: other\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        got.contains("GET /x?y=1 HTTP/1.1\r\n"),
        "origin-form upstream: {got}"
    );
    assert!(
        got.contains("host: svc.example:81\r\n") && !got.contains("host: other"),
        "{got}"
    );

    let got = raw(
        addr,
        b"GET /c HTTP/1.1\r\nhost: keep.example\r\nconnection: host, close\r\n\r\n",
    )
    .await;
    assert!(got.contains("host: keep.example\r\n"), "{got}");

    let got = raw(addr, b"GET /old HTTP/1.0\r\n\r\n").await;
    assert!(
        got.starts_with("HTTP/1.0 200") || got.starts_with("HTTP/1.1 200"),
        "{got}"
    );
    let instance = echo.trim_start_matches("http://");
    assert!(got.contains(&format!("host: {instance}\r\n")), "{got}");

    let got = raw(
        addr,
        b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 405"), "{got}");
    let lower = got.to_ascii_lowercase();
    assert!(
        lower.contains("content-length:") && lower.contains("allow: get"),
        "{got}"
    );
    assert!(
        !got.contains("CONNECT example.com"),
        "never forwarded: {got}"
    );
}

/// Found by the property tests of the chunked decoder: when several chunks arrived in one read,
/// every chunk after the first in that read was dropped on its way to the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_response_arrives_whole_however_its_chunks_are_packed() {
    let (instance, _task) = raw_instance(|mut s| async move {
        if read_head(&mut s).await.is_none() {
            return;
        }
        let mut resp = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for word in ["alpha ", "beta ", "gamma ", "delta"] {
            resp.extend_from_slice(format!("{:x}\r\n{word}\r\n", word.len()).as_bytes());
        }
        resp.extend_from_slice(b"0\r\n\r\n");
        let _ = s.write_all(&resp).await; // one write: one read on the proxy's side
    })
    .await;
    let dir = tempdir("chunks");
    let p = proxy(
        &dir,
        "[health_check]\nenabled = false\n",
        &["--backend", &instance],
    );
    for _ in 0..5 {
        let r = get(&client(), &format!("http://{}/", p.get("proxy"))).await;
        assert_eq!((r.status, r.body.as_str()), (200, "alpha beta gamma delta"));
    }
}
