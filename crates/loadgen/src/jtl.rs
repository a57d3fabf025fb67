//! Per-request results in JMeter's JTL CSV layout (the default `jmeter.save.saveservice`
//! columns), so tools that read JMeter results (its HTML dashboard generator, Taurus,
//! JMeter plugins, spreadsheets) read ours; and the reading of JTL files, JMeter's and
//! ours, into the summary `loadgen` prints ([`Reader`], [`Tally`]).

use std::io::Write;

mod read;
mod tally;

pub use read::{Reader, Record, MAX_LINE_BYTES};
pub use tally::{Bin, Tally, Timeline, MAX_BINS, MAX_LABELS, OTHER};

use crate::{Plan, Sample};

/// The header line JMeter writes with its default settings.
pub const HEADER: &str = "timeStamp,elapsed,label,responseCode,responseMessage,threadName,\
dataType,success,failureMessage,bytes,sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect";

/// Writes samples as JTL CSV lines.
pub struct JtlWriter<W: Write> {
    out: W,
    error: Option<std::io::Error>,
}

fn quoted(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl<W: Write> JtlWriter<W> {
    /// Writes the header.
    pub fn new(mut out: W) -> std::io::Result<Self> {
        writeln!(out, "{HEADER}")?;
        Ok(JtlWriter { out, error: None })
    }

    /// Writes one sample; the first I/O error is kept for [`JtlWriter::finish`].
    pub fn write(&mut self, s: &Sample, plan: &Plan) {
        if self.error.is_some() {
            return;
        }
        let path = &plan.paths[s.path];
        let (code, message, success, failure) = match (s.status, &s.error) {
            (Some(c), _) => {
                let reason = http::StatusCode::from_u16(c)
                    .ok()
                    .and_then(|c| c.canonical_reason())
                    .unwrap_or("");
                let ok = (200..400).contains(&c);
                let failure = if ok {
                    String::new()
                } else {
                    format!("HTTP {c}")
                };
                (c.to_string(), reason.to_string(), ok, failure)
            }
            (None, e) => {
                let e = e.clone().unwrap_or_default();
                (
                    "Non HTTP response code: foresight.loadgen.Error".to_string(),
                    format!("Non HTTP response message: {e}"),
                    false,
                    e,
                )
            }
        };
        let url = format!("{}{}", plan.target.trim_end_matches('/'), path);
        let r = writeln!(
            self.out,
            "{},{},{},{},{},{},text,{},{},{},0,{},{},{},{},0,0",
            s.epoch_ms,
            s.elapsed_us / 1000,
            quoted(path),
            quoted(&code),
            quoted(&message),
            format_args!("foresight-loadgen 1-{}", s.worker + 1),
            success,
            quoted(&failure),
            s.bytes,
            s.in_flight,
            s.in_flight,
            quoted(&url),
            s.first_byte_us / 1000,
        );
        if let Err(e) = r {
            self.error = Some(e);
        }
    }

    /// Flushes and returns the first error, if any.
    pub fn finish(mut self) -> std::io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rows_follow_the_header_and_quote_commas() {
        let plan = Plan::constant(
            "http://h:1",
            &["/auth", "/a,b"],
            1.0,
            Duration::from_secs(1),
        );
        let mut buf = Vec::new();
        let mut w = JtlWriter::new(&mut buf).unwrap();
        let ok = Sample {
            epoch_ms: 1_700_000_000_123,
            elapsed_us: 12_500,
            first_byte_us: 11_900,
            path: 0,
            status: Some(200),
            error: None,
            bytes: 5,
            in_flight: 3,
            worker: 0,
            group: None,
        };
        w.write(&ok, &plan);
        let failed = Sample {
            path: 1,
            status: None,
            error: Some("connect h:1: refused, really".into()),
            ..ok.clone()
        };
        w.write(&failed, &plan);
        w.finish().unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], HEADER);
        assert_eq!(
            lines[1],
            "1700000000123,12,/auth,200,OK,foresight-loadgen 1-1,text,true,,5,0,3,3,http://h:1/auth,11,0,0"
        );
        assert!(
            lines[2].starts_with("1700000000123,12,\"/a,b\",Non HTTP response code"),
            "{}",
            lines[2]
        );
        assert!(
            lines[2].contains(",false,\"connect h:1: refused, really\","),
            "{}",
            lines[2]
        );
        assert_eq!(HEADER.split(',').count(), 17);
    }
}
