//! Unit tests of the HTTP/1.1 client: head parsing, framing, keep-alive, and exchanges over
//! real sockets.

use super::*;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

fn head(bytes: &[u8], head_only: bool) -> Result<Option<(Head, BytesMut)>, H1Error> {
    let mut buf = BytesMut::from(bytes);
    Ok(parse_head(&mut buf, head_only)?.map(|h| (h, buf)))
}

#[test]
fn framing_follows_rfc_9112() {
    let (h, rest) = head(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
        false,
    )
    .unwrap()
    .unwrap();
    assert!(matches!(h.framing, Framing::Length(5)) && h.keep_alive);
    assert_eq!(h.response.headers()["x-a"], "b");
    assert_eq!(&rest[..], b"hello", "the body stays in the buffer");

    let (h, _) = head(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert!(matches!(h.framing, Framing::Chunked(Chunked::Size)) && h.keep_alive);

    // Chunked with Content-Length: chunked wins, the connection is not reused.
    let (h, _) = head(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert!(matches!(h.framing, Framing::Chunked(_)) && !h.keep_alive);

    // Neither: until close. A coding other than chunked last: until close.
    for raw in [
        &b"HTTP/1.1 200 OK\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    ] {
        let (h, _) = head(raw, false).unwrap().unwrap();
        assert!(matches!(h.framing, Framing::UntilClose) && !h.keep_alive);
    }

    // No body for HEAD, 204 and 304, whatever the headers say.
    let (h, _) = head(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true)
        .unwrap()
        .unwrap();
    assert!(matches!(h.framing, Framing::Length(0)) && h.keep_alive);
    for status in ["204 No Content", "304 Not Modified"] {
        let raw = format!("HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n");
        let (h, _) = head(raw.as_bytes(), false).unwrap().unwrap();
        assert!(matches!(h.framing, Framing::Length(0)), "{status}");
    }
}

#[test]
fn keep_alive_by_version_and_connection() {
    let cases: [(&[u8], bool); 5] = [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true),
        (
            b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n",
            false,
        ),
        (
            b"HTTP/1.1 200 OK\r\nConnection: foo, close\r\nContent-Length: 0\r\n\r\n",
            false,
        ),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
        (
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            true,
        ),
    ];
    for (raw, keep) in cases {
        let (h, _) = head(raw, false).unwrap().unwrap();
        assert_eq!(h.keep_alive, keep, "{}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn interim_responses_are_skipped_and_partial_heads_wait() {
    let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
    let (h, rest) = head(raw, false).unwrap().unwrap();
    assert_eq!(h.response.status(), StatusCode::CREATED);
    assert!(!h.response.headers().contains_key("link"));
    assert!(rest.is_empty());
    for cut in [5, 30, raw.len() - 1] {
        assert!(head(&raw[..cut], false).unwrap().is_none(), "cut at {cut}");
    }
}

#[test]
fn invalid_heads_are_errors() {
    let bad: [&[u8]; 6] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"SMTP ready\r\n\r\n",
    ];
    for raw in bad {
        assert!(
            matches!(head(raw, false), Err(H1Error::Invalid(_))),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        many.extend_from_slice(format!("x-{i}: 1\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert!(matches!(head(&many, false), Err(H1Error::Invalid(_))));
    // Equal repeated lengths are accepted (RFC 9110 §8.6).
    assert!(head(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
        false
    )
    .is_ok());
}

/// A one-connection instance: reads one request head (and `body_len` more bytes), answers
/// `response`, and hands back what it read.
async fn instance(
    response: &'static [u8],
    body_len: usize,
    then_close: bool,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
            if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                if got.len() >= at + 4 + body_len || n == 0 {
                    break;
                }
            }
            assert!(n > 0, "request incomplete");
        }
        s.write_all(response).await.unwrap();
        if then_close {
            drop(s);
        } else {
            // Keep the connection open until the test ends.
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        got
    });
    (addr, task)
}

async fn connect(addr: std::net::SocketAddr) -> Connection {
    let d = crate::deadline::Deadlines::new();
    Connection::new(TcpStream::connect(addr).await.unwrap(), d.watch())
}

async fn collect(resp: Response<Body>) -> (Vec<u8>, Option<Connection>) {
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        out.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    (out, body.into_reusable())
}

/// `GET /a?b=1` with `headers` on a new connection to `addr`, without a deadline.
async fn send_get(
    addr: std::net::SocketAddr,
    headers: &HeaderMap,
) -> Result<Response<Body>, H1Error> {
    connect(addr)
        .await
        .send(get(headers), None, crate::deadline::NONE)
        .await
}

fn get<'a>(headers: &'a HeaderMap) -> Outgoing<'a> {
    Outgoing {
        method: &Method::GET,
        target: "/a?b=1",
        headers,
        default_host: "instance:1",
    }
}

#[tokio::test]
async fn a_request_and_its_chunked_response_over_a_socket() {
    let (addr, peer) = instance(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        0,
        false,
    )
    .await;
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("svc"));
    headers.append("x-many", HeaderValue::from_static("1"));
    headers.append("x-many", HeaderValue::from_static("2"));
    let resp = send_get(addr, &headers).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-up"], "1");
    let (body, reusable) = collect(resp).await;
    assert_eq!(body, b"abc");
    let conn = reusable.expect("kept alive and read to the end");
    assert!(conn.is_open());
    peer.abort();
}

#[tokio::test]
async fn request_lines_and_header_fields_are_sent_as_given() {
    let (addr, peer) = instance(b"HTTP/1.1 204 No Content\r\n\r\n", 0, true).await;
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("svc"));
    headers.append("x-many", HeaderValue::from_static("1"));
    headers.append("x-many", HeaderValue::from_static("2"));
    let resp = send_get(addr, &headers).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(http_body::Body::is_end_stream(resp.body()));
    let sent = String::from_utf8(peer.await.unwrap()).unwrap();
    assert_eq!(
        sent,
        "GET /a?b=1 HTTP/1.1\r\nhost: svc\r\nx-many: 1\r\nx-many: 2\r\n\r\n"
    );
}

#[tokio::test]
async fn close_delimited_bodies_end_at_close_and_are_not_reused() {
    let (addr, _peer) = instance(b"HTTP/1.0 200 OK\r\n\r\nall of it", 0, true).await;
    let headers = HeaderMap::new();
    let resp = send_get(addr, &headers).await.unwrap();
    let (body, reusable) = collect(resp).await;
    assert_eq!(body, b"all of it");
    assert!(reusable.is_none());
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_and_the_connection_is_dropped() {
    let (addr, _peer) =
        instance(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0, true).await;
    let headers = HeaderMap::new();
    let resp = send_get(addr, &headers).await.unwrap();
    let mut body = resp.into_body();
    assert_eq!(
        &body.frame().await.unwrap().unwrap().into_data().unwrap()[..],
        b"abc"
    );
    assert!(matches!(
        body.frame().await,
        Some(Err(H1Error::Closed { partial: true, .. }))
    ));
    assert!(body.into_reusable().is_none());
}

#[tokio::test]
async fn a_silent_close_is_reported_as_closed_without_a_response() {
    let (addr, _peer) = instance(b"", 0, true).await;
    let headers = HeaderMap::new();
    let err = send_get(addr, &headers).await.unwrap_err();
    assert!(
        matches!(err, H1Error::Closed { partial: false, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_closed_idle_connection_is_not_open() {
    let (addr, peer) = instance(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, true).await;
    let headers = HeaderMap::new();
    let resp = send_get(addr, &headers).await.unwrap();
    let (_, conn) = collect(resp).await;
    let conn = conn.expect("the response allowed keep-alive");
    peer.await.unwrap();
    // The reactor learns of the close asynchronously.
    let mut open = true;
    for _ in 0..200 {
        open = conn.is_open();
        if !open {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!open, "the instance's close is seen");
}

#[tokio::test]
async fn the_deadline_cuts_off_a_response_that_does_not_come() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _peer = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    });
    let d = crate::deadline::Deadlines::new();
    let conn = Connection::new(TcpStream::connect(addr).await.unwrap(), d.watch());
    let deadline = d.deadline(std::time::Instant::now(), Duration::from_millis(50));
    let owner = Arc::new(());
    let sweeper = tokio::spawn(crate::deadline::Deadlines::run(
        Arc::downgrade(&d),
        Arc::downgrade(&owner),
        Duration::from_millis(5),
    ));
    let headers = HeaderMap::new();
    let started = std::time::Instant::now();
    let err = conn.send(get(&headers), None, deadline).await.unwrap_err();
    assert!(matches!(err, H1Error::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    sweeper.abort();
}
