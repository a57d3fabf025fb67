//! A lean HTTP/1.1 connection for the closed-loop capacity mode: pre-serialised GETs written
//! straight to the socket and responses parsed with `httparse` in the worker's own task (no
//! connection task, no channels), which is what lets one thread keep up with `wrk`.
//! Bodies framed by Content-Length, chunked encoding, or connection close.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) struct Response {
    pub status: u16,
    pub first_byte: Instant,
    pub bytes: u64,
    pub group: Option<String>,
    pub keep_alive: bool,
}

pub(crate) struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes in `buf` that are valid.
    len: usize,
}

enum Framing {
    Length(usize),
    Chunked,
    Close,
}

impl RawConn {
    pub async fn connect(authority: &str) -> Result<RawConn, String> {
        let stream = TcpStream::connect(authority)
            .await
            .map_err(|e| format!("connect {authority}: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok(RawConn {
            stream,
            buf: vec![0; 16 * 1024],
            len: 0,
        })
    }

    async fn fill(&mut self) -> Result<usize, String> {
        if self.len == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self
            .stream
            .read(&mut self.buf[self.len..])
            .await
            .map_err(|e| format!("read: {e}"))?;
        self.len += n;
        Ok(n)
    }

    fn consume(&mut self, n: usize) {
        self.buf.copy_within(n..self.len, 0);
        self.len -= n;
    }

    pub async fn roundtrip(
        &mut self,
        request: &[u8],
        group_by: Option<&str>,
    ) -> Result<Response, String> {
        self.stream
            .write_all(request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut first_byte = None;
        let (status, header_len, framing, group, keep_alive) = loop {
            if self.len > 0 {
                first_byte.get_or_insert_with(Instant::now);
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&self.buf[..self.len]) {
                    Ok(httparse::Status::Complete(n)) => {
                        let status = resp.code.unwrap_or(0);
                        let mut framing = Framing::Close;
                        let mut keep_alive = resp.version == Some(1);
                        let mut group = None;
                        for h in resp.headers.iter() {
                            if h.name.eq_ignore_ascii_case("content-length") {
                                let v = std::str::from_utf8(h.value).unwrap_or("").trim();
                                framing = Framing::Length(
                                    v.parse().map_err(|_| format!("bad content-length `{v}`"))?,
                                );
                            } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                                && h.value.eq_ignore_ascii_case(b"chunked")
                            {
                                framing = Framing::Chunked;
                            } else if h.name.eq_ignore_ascii_case("connection") {
                                keep_alive = !h.value.eq_ignore_ascii_case(b"close");
                            }
                            if group_by.is_some_and(|g| h.name.eq_ignore_ascii_case(g)) {
                                group = std::str::from_utf8(h.value).ok().map(str::to_string);
                            }
                        }
                        if (100..200).contains(&status) || status == 204 || status == 304 {
                            framing = Framing::Length(0);
                        }
                        break (status, n, framing, group, keep_alive);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(e) => return Err(format!("malformed response: {e}")),
                }
            }
            if self.fill().await? == 0 {
                return Err("connection closed before a response".into());
            }
        };
        self.consume(header_len);
        let bytes = match framing {
            Framing::Length(n) => {
                while self.len < n {
                    if self.fill().await? == 0 {
                        return Err("connection closed in the body".into());
                    }
                }
                self.consume(n);
                n
            }
            Framing::Chunked => self.chunked().await?,
            Framing::Close => {
                while self.fill().await? > 0 {}
                let n = self.len;
                self.len = 0;
                return Ok(Response {
                    status,
                    first_byte: first_byte.unwrap_or_else(Instant::now),
                    bytes: n as u64,
                    group,
                    keep_alive: false,
                });
            }
        };
        Ok(Response {
            status,
            first_byte: first_byte.unwrap_or_else(Instant::now),
            bytes: bytes as u64,
            group,
            keep_alive,
        })
    }

    /// Reads a line ending in CRLF from the buffer (filling as needed) and consumes it.
    async fn line(&mut self) -> Result<String, String> {
        loop {
            if let Some(i) = self.buf[..self.len].windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.consume(i + 2);
                return Ok(line);
            }
            if self.fill().await? == 0 {
                return Err("connection closed in a chunked body".into());
            }
        }
    }

    async fn chunked(&mut self) -> Result<usize, String> {
        let mut total = 0;
        loop {
            let line = self.line().await?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| format!("bad chunk size `{size_text}`"))?;
            if size == 0 {
                // Trailers, then an empty line.
                while !self.line().await?.is_empty() {}
                return Ok(total);
            }
            while self.len < size + 2 {
                if self.fill().await? == 0 {
                    return Err("connection closed in a chunk".into());
                }
            }
            self.consume(size + 2);
            total += size;
        }
    }
}
