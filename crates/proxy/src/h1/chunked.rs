//! The chunked transfer coding of response bodies (RFC 9112 §7.1), decoded in place from the
//! connection's read buffer whatever the read boundaries.

use bytes::{Bytes, BytesMut};

use super::H1Error;

/// Bytes of a chunk-size line or a trailer line accepted at most.
const MAX_LINE: usize = 4 * 1024;
/// Bytes of trailers accepted at most.
const MAX_TRAILERS: usize = 16 * 1024;

/// Where a chunked body's decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunked {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one; bytes of them so far.
    Trailers(usize),
    /// The body is complete.
    Done,
}

/// One step of the chunked decoder.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    Data(Bytes),
    NeedMore,
    Done,
}

/// A line ending in LF at the front of `buf`, without its line ending, consumed; `None` if the
/// line is not complete yet.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, H1Error> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(at) if at <= MAX_LINE => {
            let mut line = buf.split_to(at + 1);
            line.truncate(at);
            if line.last() == Some(&b'\r') {
                line.truncate(at - 1);
            }
            Ok(Some(line))
        }
        Some(_) => Err(H1Error::Invalid("chunk line too long")),
        None if buf.len() > MAX_LINE => Err(H1Error::Invalid("chunk line too long")),
        None => Ok(None),
    }
}

impl Chunked {
    /// Decodes from the front of `buf`: the next piece of data, or that more bytes are needed,
    /// or that the body is complete.
    pub(super) fn step(&mut self, buf: &mut BytesMut) -> Result<Step, H1Error> {
        loop {
            match *self {
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(n).freeze();
                    *self = match left - n as u64 {
                        0 => Chunked::DataEnd,
                        l => Chunked::Data(l),
                    };
                    return Ok(Step::Data(data));
                }
                Chunked::Done => return Ok(Step::Done),
                _ => {
                    if !self.advance(buf)? {
                        return Ok(Step::NeedMore);
                    }
                }
            }
        }
    }

    /// Consumes what follows a chunk's data when it is already in `buf` (its CRLF, further
    /// size lines, the last chunk and trailers), so that the end of a body is known as soon as
    /// its last byte is buffered. Stops before data: the next chunk's data is `step`'s to
    /// return.
    pub(super) fn settle(&mut self, buf: &mut BytesMut) -> Result<(), H1Error> {
        while !matches!(self, Chunked::Data(_) | Chunked::Done) {
            if !self.advance(buf)? {
                break;
            }
        }
        Ok(())
    }

    /// One move outside a chunk's data (a size line, a data's CRLF, a trailer line); false if
    /// `buf` does not hold enough for it yet.
    fn advance(&mut self, buf: &mut BytesMut) -> Result<bool, H1Error> {
        match *self {
            Chunked::Size => {
                let Some(line) = take_line(buf)? else {
                    return Ok(false);
                };
                let digits = line
                    .iter()
                    .position(|b| !b.is_ascii_hexdigit())
                    .unwrap_or(line.len());
                let rest = line[digits..].trim_ascii_start();
                if digits == 0 || digits > 15 || !(rest.is_empty() || rest[0] == b';') {
                    return Err(H1Error::Invalid("invalid chunk size"));
                }
                let hex = std::str::from_utf8(&line[..digits]).unwrap_or("0");
                let size = u64::from_str_radix(hex, 16)
                    .map_err(|_| H1Error::Invalid("invalid chunk size"))?;
                *self = if size == 0 {
                    Chunked::Trailers(0)
                } else {
                    Chunked::Data(size)
                };
            }
            Chunked::DataEnd => {
                if buf.len() < 2 {
                    return Ok(false);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(H1Error::Invalid("missing CRLF after chunk data"));
                }
                let _ = buf.split_to(2);
                *self = Chunked::Size;
            }
            Chunked::Trailers(seen) => {
                let before = buf.len();
                let Some(line) = take_line(buf)? else {
                    return Ok(false);
                };
                let seen = seen + (before - buf.len());
                if seen > MAX_TRAILERS {
                    return Err(H1Error::Invalid("trailers too large"));
                }
                *self = if line.is_empty() {
                    Chunked::Done
                } else {
                    Chunked::Trailers(seen)
                };
            }
            Chunked::Data(_) | Chunked::Done => {}
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `wire` fed to the decoder `step` bytes at a time.
    fn dechunk(wire: &[u8], step: usize) -> Result<(Vec<u8>, bool), H1Error> {
        let mut state = Chunked::Size;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in wire.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                match state.step(&mut buf)? {
                    Step::Data(d) => out.extend_from_slice(&d),
                    Step::NeedMore => break,
                    Step::Done => return Ok((out, buf.is_empty())),
                }
            }
        }
        Err(H1Error::Invalid("incomplete"))
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_boundaries() {
        let wire =
            b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n";
        for step in [1, 2, 3, 7, wire.len()] {
            let (data, clean) = dechunk(wire, step).unwrap();
            assert_eq!(data, b"helloabcdefghijklmnopqrstuvwxyz", "step {step}");
            assert!(clean, "nothing left over");
        }
        for bad in [
            &b"g\r\n"[..],
            b"\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"1000000000000000\r\n",
        ] {
            assert!(
                matches!(dechunk(bad, 1), Err(H1Error::Invalid(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Several chunks in one read: settling after a chunk's data must leave the next chunk's
        // data to `step` (it once consumed and dropped it; found by the property tests).
        let wire = b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n";
        let mut state = Chunked::Size;
        let mut buf = BytesMut::from(&wire[..]);
        let mut out = Vec::new();
        while let Step::Data(d) = state.step(&mut buf).unwrap() {
            out.extend_from_slice(&d);
            state.settle(&mut buf).unwrap();
        }
        assert_eq!((out.as_slice(), state), (&b"abcdefg"[..], Chunked::Done));

        let long = vec![b'1'; MAX_LINE + 2];
        assert!(matches!(dechunk(&long, 64), Err(H1Error::Invalid(_))));
    }
}
