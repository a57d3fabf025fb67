//! A fault-injecting front for the emulator: forwards every AWS Query call to the emulator
//! unchanged, except the one action it is told to fail, which it answers with an AWS error
//! (`400`, `ValidationError`, message `injected`). One request per connection.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running front; it stops with the test's runtime.
pub struct FailingFront {
    /// Its base URL, for the SDK's endpoint.
    pub url: String,
}

impl FailingFront {
    /// Forwards to `upstream` (`127.0.0.1:port`), failing every call of `action`.
    pub async fn start(upstream: &str, action: &str) -> FailingFront {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.to_string();
        let marker = format!("Action={action}&");
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, upstream.clone(), marker.clone()));
            }
        });
        FailingFront { url }
    }
}

async fn serve(mut conn: TcpStream, upstream: String, marker: String) {
    let Some(request) = read_request(&mut conn).await else {
        return;
    };
    let response = if contains(&request, marker.as_bytes()) {
        let body = "<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code>\
                    <Message>injected</Message></Error><RequestId>front</RequestId></ErrorResponse>";
        format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    } else {
        let mut up = TcpStream::connect(&upstream).await.unwrap();
        up.write_all(&with_close(&request)).await.unwrap();
        let mut response = Vec::new();
        up.read_to_end(&mut response).await.unwrap();
        with_close(&response)
    };
    let _ = conn.write_all(&response).await;
    let _ = conn.shutdown().await;
}

/// The head and `Content-Length` bytes of body of one HTTP/1.1 request.
async fn read_request(conn: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                buf.truncate(end + 4 + length);
                return Some(buf);
            }
        }
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The message with `Connection: close` in place of any `Connection` header, so that each
/// side closes after one exchange.
fn with_close(message: &[u8]) -> Vec<u8> {
    let end = find(message, b"\r\n\r\n").unwrap_or(message.len());
    let head = String::from_utf8_lossy(&message[..end]);
    let mut lines: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.insert(1, "Connection: close");
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(&message[end..]);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}
