//! Heads on the wire: a request head written for an instance (its body framed by
//! `Content-Length` or chunked) and a response head parsed off the front of the read buffer
//! (interim 1xx responses dropped, the body's framing and the connection's reuse decided).

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH};
use http::{Response, StatusCode, Version};
use smallvec::SmallVec;

use super::chunked::Chunked;
use super::{H1Error, Outgoing};

/// Response header lines accepted at most (hyper's default is 100 as well).
pub(super) const MAX_HEADERS: usize = 100;

/// How the end of a response body is known (RFC 9112 §6.3).
#[derive(Debug)]
pub(super) enum Framing {
    /// This many bytes are left.
    Length(u64),
    /// Chunked transfer coding.
    Chunked(Chunked),
    /// Until the instance closes the connection.
    UntilClose,
    /// Read to the end.
    Done,
}

/// What a response head says about the connection and the body.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) response: Response<()>,
    pub(super) framing: Framing,
    pub(super) keep_alive: bool,
}

/// How a request's body is framed towards the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyLength {
    /// No body: the client's header fields are sent as they are.
    None,
    /// This many bytes, sent with exactly one `Content-Length` of that value.
    Exact(u64),
    /// Unknown: chunked, without `Content-Length`.
    Chunked,
}

/// Writes the request line and header fields of `req` into `buf` (cleared first), framed as
/// `length` says.
pub(super) fn encode_head(buf: &mut Vec<u8>, req: &Outgoing<'_>, length: BodyLength) {
    buf.clear();
    buf.extend_from_slice(req.method.as_str().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(req.target.as_bytes());
    buf.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers {
        if length != BodyLength::None && name == CONTENT_LENGTH {
            continue;
        }
        buf.extend_from_slice(name.as_str().as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(value.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    if !req.headers.contains_key(http::header::HOST) {
        buf.extend_from_slice(b"host: ");
        buf.extend_from_slice(req.default_host.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    match length {
        BodyLength::None => {}
        BodyLength::Exact(n) => {
            buf.extend_from_slice(format!("content-length: {n}\r\n").as_bytes());
        }
        BodyLength::Chunked => buf.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    buf.extend_from_slice(b"\r\n");
}

/// Parses a final response head off the front of `buf`, dropping interim (1xx) responses;
/// `None` if more bytes are needed.
#[cfg(test)]
pub(super) fn parse_head(buf: &mut BytesMut, head_only: bool) -> Result<Option<Head>, H1Error> {
    parse_head_as(buf, head_only, false)
}

/// [`parse_head`] for a request that asked to switch protocols (`switching`): a 101 is then
/// its final answer, and what follows it on the connection is the new protocol's.
pub(super) fn parse_head_as(
    buf: &mut BytesMut,
    head_only: bool,
    switching: bool,
) -> Result<Option<Head>, H1Error> {
    loop {
        if buf.is_empty() {
            return Ok(None);
        }
        // Uninitialised: a zeroed array of a hundred headers was, with its copy below, a tenth
        // of the proxy's instructions per request.
        let mut lines = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut res, buf, &mut lines);
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(H1Error::Invalid("too many header fields"))
            }
            Err(_) => return Err(H1Error::Invalid("malformed response head")),
        };
        let code = res.code.unwrap_or(0);
        if (100..200).contains(&code) && !(code == 101 && switching) {
            if code == 101 {
                return Err(H1Error::Invalid("unexpected 101 Switching Protocols"));
            }
            let _ = buf.split_to(len);
            continue;
        }
        let status =
            StatusCode::from_u16(code).map_err(|_| H1Error::Invalid("invalid status code"))?;
        let http10 = res.version == Some(0);
        // Where each field's name and value are in `buf` (the head is at most MAX_HEAD bytes,
        // so u32 offsets do), so that values can share the head's bytes instead of being
        // copied.
        let base = buf.as_ptr() as usize;
        let at = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
        let spans: SmallVec<[[u32; 4]; 16]> = res
            .headers
            .iter()
            .map(|h| {
                let (name, value) = (at(h.name.as_bytes()), at(h.value));
                [
                    name,
                    name + h.name.len() as u32,
                    value,
                    value + h.value.len() as u32,
                ]
            })
            .collect();
        let head = buf.split_to(len).freeze();
        let mut headers = HeaderMap::with_capacity(spans.len());
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut other_coding = false;
        let mut close = http10;
        for &[name_start, name_end, start, end] in &spans {
            let name = HeaderName::from_bytes(&head[name_start as usize..name_end as usize])
                .map_err(|_| H1Error::Invalid("invalid header name"))?;
            let value = HeaderValue::from_maybe_shared(head.slice(start as usize..end as usize))
                .map_err(|_| H1Error::Invalid("invalid header value"))?;
            if name == CONTENT_LENGTH {
                let n = std::str::from_utf8(value.as_bytes())
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or(H1Error::Invalid("invalid Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(H1Error::Invalid("conflicting Content-Length fields"));
                }
                length = Some(n);
            } else if name == http::header::TRANSFER_ENCODING {
                // Only the last coding decides; anything but chunked last means the body
                // ends when the connection closes.
                let last = value
                    .as_bytes()
                    .rsplit(|&b| b == b',')
                    .next()
                    .unwrap_or(b"");
                chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
                other_coding |= !chunked;
            } else if name == CONNECTION {
                for token in value.as_bytes().split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if http10 && token.eq_ignore_ascii_case(b"keep-alive") {
                        close = false;
                    }
                }
            }
            headers.append(name, value);
        }
        let bodiless = head_only
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || status == StatusCode::SWITCHING_PROTOCOLS;
        let framing = if bodiless {
            Framing::Length(0)
        } else if chunked && !other_coding {
            // With Content-Length too, the transfer coding wins (RFC 9112 §6.3); such a
            // message could be a smuggling attempt, so the connection is not reused.
            close |= length.is_some();
            Framing::Chunked(Chunked::Size)
        } else if other_coding {
            Framing::UntilClose
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        };
        let keep_alive = !close && !matches!(framing, Framing::UntilClose);
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = if http10 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        *response.headers_mut() = headers;
        return Ok(Some(Head {
            response,
            framing,
            keep_alive,
        }));
    }
}
