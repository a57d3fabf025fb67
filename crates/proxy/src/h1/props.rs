//! Property tests of the response-head parser and the chunked decoder: arbitrary bytes never
//! panic, and a valid message parses to the same result however its bytes are split across
//! reads. `PROPTEST_CASES` sets the number of cases (256 by default; see docs/benchmarks.md for
//! the longer run).

use bytes::BytesMut;
use proptest::prelude::*;

use super::chunked::{Chunked, Step};
use super::{parse_head, Framing, H1Error};

/// Cuts `len` bytes into pieces at `cuts` (positions taken modulo `len + 1`, sorted).
fn pieces(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect()
}

/// What a parsed head says, in a comparable form.
#[derive(Debug, PartialEq)]
struct Parsed {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    framing: String,
    keep_alive: bool,
    rest: Vec<u8>,
}

/// Parses `wire` fed in `pieces`: the first complete head and what follows it.
fn parse_in_pieces(pieces: &[Vec<u8>]) -> Result<Option<Parsed>, H1Error> {
    let mut buf = BytesMut::new();
    let mut parsed = None;
    for piece in pieces {
        buf.extend_from_slice(piece);
        if parsed.is_none() {
            parsed = parse_head(&mut buf, false)?;
        }
    }
    Ok(parsed.map(|h| Parsed {
        status: h.response.status().as_u16(),
        headers: h
            .response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
            .collect(),
        framing: format!("{:?}", h.framing),
        keep_alive: h.keep_alive,
        rest: buf.to_vec(),
    }))
}

/// Decodes a chunked body fed in `pieces`; the data and whether the body ended.
fn dechunk_in_pieces(pieces: &[Vec<u8>]) -> Result<(Vec<u8>, bool), H1Error> {
    let mut state = Chunked::Size;
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match state.step(&mut buf)? {
                Step::Data(d) => {
                    out.extend_from_slice(&d);
                    state.settle(&mut buf)?;
                }
                Step::NeedMore => break,
                Step::Done => return Ok((out, true)),
            }
        }
    }
    Ok((out, state == Chunked::Done))
}

/// A header field name that is a valid token and not one that changes framing.
fn field_name() -> impl Strategy<Value = String> {
    "x-[a-z0-9-]{1,12}"
}

/// A visible field value (no leading or trailing space, which the parser trims).
fn field_value() -> impl Strategy<Value = String> {
    "[!-~]([ -~]{0,30}[!-~])?"
}

/// A valid response with a body: its bytes, its status and the body.
fn response() -> impl Strategy<Value = (Vec<u8>, u16, Vec<u8>)> {
    (
        prop::sample::select(vec![200u16, 201, 202, 206, 400, 404, 500, 503]),
        prop::collection::vec((field_name(), field_value()), 0..8),
        prop::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
        prop::collection::vec(1usize..64, 0..6),
    )
        .prop_map(|(status, fields, body, chunked, sizes)| {
            let mut wire = format!("HTTP/1.1 {status} X\r\n").into_bytes();
            for (k, v) in &fields {
                wire.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
            }
            if chunked {
                wire.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
                wire.extend_from_slice(&encode_chunked(&body, &sizes, true));
            } else {
                wire.extend_from_slice(
                    format!("content-length: {}\r\n\r\n", body.len()).as_bytes(),
                );
                wire.extend_from_slice(&body);
            }
            (wire, status, body)
        })
}

/// `data` in chunks of the sizes given (cycled; the rest in one chunk), with an extension on
/// the first chunk and a trailer if `trailers`.
fn encode_chunked(data: &[u8], sizes: &[usize], trailers: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut k = 0;
    while at < data.len() {
        let n = sizes
            .get(k % sizes.len().max(1))
            .copied()
            .unwrap_or(data.len())
            .min(data.len() - at);
        let ext = if k == 0 { ";name=value" } else { "" };
        out.extend_from_slice(format!("{n:X}{ext}\r\n").as_bytes());
        out.extend_from_slice(&data[at..at + n]);
        out.extend_from_slice(b"\r\n");
        at += n;
        k += 1;
    }
    out.extend_from_slice(b"0\r\n");
    if trailers {
        out.extend_from_slice(b"x-checksum: 1\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_head_parser(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_head(&mut BytesMut::from(&bytes[..]), false);
        let _ = parse_head(&mut BytesMut::from(&bytes[..]), true);
    }

    #[test]
    fn arbitrary_bytes_after_a_status_line_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..1024),
    ) {
        let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
        wire.extend_from_slice(&bytes);
        let _ = parse_head(&mut BytesMut::from(&wire[..]), false);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_chunked_decoder(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let _ = dechunk_in_pieces(&pieces(&bytes, &cuts));
    }

    #[test]
    fn a_valid_response_parses_the_same_however_it_is_split(
        (wire, status, body) in response(),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let whole = parse_in_pieces(std::slice::from_ref(&wire)).unwrap().unwrap();
        prop_assert_eq!(whole.status, status);
        let split = parse_in_pieces(&pieces(&wire, &cuts)).unwrap().unwrap();
        prop_assert_eq!(&split, &whole);
        if whole.framing.starts_with("Chunked") {
            let (data, done) = dechunk_in_pieces(&pieces(&whole.rest, &cuts)).unwrap();
            prop_assert!(done);
            prop_assert_eq!(data, body);
        } else {
            prop_assert_eq!(whole.framing, format!("{:?}", Framing::Length(body.len() as u64)));
            prop_assert_eq!(whole.rest, body);
        }
    }

    #[test]
    fn a_chunked_body_decodes_the_same_however_it_is_split(
        data in prop::collection::vec(any::<u8>(), 0..2000),
        sizes in prop::collection::vec(1usize..700, 1..6),
        trailers in any::<bool>(),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let wire = encode_chunked(&data, &sizes, trailers);
        let (out, done) = dechunk_in_pieces(&pieces(&wire, &cuts)).unwrap();
        prop_assert!(done);
        prop_assert_eq!(out, data);
    }
}
