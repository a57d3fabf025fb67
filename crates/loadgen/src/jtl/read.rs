//! Reading JTL CSV, JMeter's own and ours, by the names in its header line: any column order,
//! extra columns ignored; the ones a summary needs must be there.

use std::io::Read;

use anyhow::Context;

/// One sample of a JTL file.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Start of the sample, milliseconds since the Unix epoch (`timeStamp`).
    pub epoch_ms: u64,
    /// From the start to the last byte of the response (`elapsed`).
    pub elapsed_ms: u64,
    /// The sampler's name (`label`); `loadgen` writes the path.
    pub label: String,
    /// The HTTP status (`responseCode`), or `None` when there was no response (JMeter writes
    /// `Non HTTP response code: …`).
    pub status: Option<u16>,
    /// JMeter's verdict (`success`), which assertions may override.
    pub success: bool,
    /// The thread group: `threadName` without its trailing `G-T` numbers (`low 1-3` → `low`).
    pub thread_group: String,
}

/// The longest line read; a longer one is an error, not an allocation.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Yields the records of a JTL CSV file, each error naming its line and column.
pub struct Reader<R: Read> {
    inner: csv::Reader<LineLimit<R>>,
    columns: Columns,
    row: csv::StringRecord,
}

struct Columns {
    time: usize,
    elapsed: usize,
    label: usize,
    code: usize,
    success: usize,
    thread: Option<usize>,
}

impl<R: Read> Reader<R> {
    /// Reads the header line and finds the columns.
    pub fn new(r: R) -> anyhow::Result<Self> {
        let mut inner = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(LineLimit::new(r));
        let header = inner.headers().context("line 1")?.clone();
        if header
            .get(0)
            .is_some_and(|h| h.trim_start().starts_with('<'))
        {
            anyhow::bail!(
                "line 1: this is XML; write CSV (JMeter: -Jjmeter.save.saveservice.output_format=csv)"
            );
        }
        let find = |name: &str| header.iter().position(|h| h.trim() == name);
        let need = |name: &str| {
            find(name).with_context(|| {
                format!(
                    "line 1: no `{name}` column (the header must name JMeter's columns, \
                     e.g. timeStamp,elapsed,label,responseCode,success)"
                )
            })
        };
        let columns = Columns {
            time: need("timeStamp")?,
            elapsed: need("elapsed")?,
            label: need("label")?,
            code: need("responseCode")?,
            success: need("success")?,
            thread: find("threadName"),
        };
        Ok(Reader {
            inner,
            columns,
            row: csv::StringRecord::new(),
        })
    }

    fn parse(&self) -> anyhow::Result<Record> {
        let c = &self.columns;
        let line = self.row.position().map_or(0, |p| p.line());
        let field = |i: usize, name: &str| {
            self.row
                .get(i)
                .with_context(|| format!("line {line}: no `{name}` field (column {})", i + 1))
        };
        let number = |i: usize, name: &str| -> anyhow::Result<u64> {
            let v = field(i, name)?;
            v.trim().parse().map_err(|_| {
                anyhow::anyhow!(
                    "line {line}, column `{name}`: `{v}` is not a whole number of milliseconds"
                )
            })
        };
        let success = match field(c.success, "success")?.trim() {
            s if s.eq_ignore_ascii_case("true") => true,
            s if s.eq_ignore_ascii_case("false") => false,
            s => anyhow::bail!("line {line}, column `success`: `{s}` is neither true nor false"),
        };
        let code = field(c.code, "responseCode")?.trim();
        Ok(Record {
            epoch_ms: number(c.time, "timeStamp")?,
            elapsed_ms: number(c.elapsed, "elapsed")?,
            label: field(c.label, "label")?.to_string(),
            status: code.parse().ok().filter(|s| (100..1000).contains(s)),
            success,
            thread_group: c
                .thread
                .and_then(|i| self.row.get(i))
                .map(thread_group)
                .unwrap_or_default(),
        })
    }
}

impl<R: Read> Iterator for Reader<R> {
    type Item = anyhow::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.inner.read_record(&mut self.row) {
            Ok(false) => None,
            Ok(true) => Some(self.parse()),
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                Some(Err(anyhow::anyhow!("line {line}: {e}")))
            }
        }
    }
}

/// `low 1-3` → `low`; a name without the numbers is kept whole.
fn thread_group(name: &str) -> String {
    let name = name.trim();
    match name.rsplit_once(' ') {
        Some((group, nums))
            if nums
                .split_once('-')
                .is_some_and(|(g, t)| is_number(g) && is_number(t)) =>
        {
            group.trim_end().to_string()
        }
        _ => name.to_string(),
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Fails a read once more than [`MAX_LINE_BYTES`] pass without a newline.
struct LineLimit<R> {
    inner: R,
    since_newline: usize,
}

impl<R> LineLimit<R> {
    fn new(inner: R) -> Self {
        LineLimit {
            inner,
            since_newline: 0,
        }
    }
}

impl<R: Read> Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if b == b'\n' {
                self.since_newline = 0;
            } else {
                self.since_newline += 1;
                if self.since_newline > MAX_LINE_BYTES {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("a line longer than {MAX_LINE_BYTES} bytes"),
                    ));
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> anyhow::Result<Vec<Record>> {
        Reader::new(text.as_bytes())?.collect()
    }

    #[test]
    fn jmeter_rows_read_by_column_name() {
        // As JMeter 5.5 writes them, a non-HTTP failure with commas in its message included.
        let text = "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,bytes,sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect\n\
            1733470000123,12,/auth,200,OK,low 1-3,text,true,,120,115,3,9,http://127.0.0.1:8380/auth,11,0,1\n\
            1733470000200,2003,/process,Non HTTP response code: java.net.SocketTimeoutException,\"Non HTTP response message: Read timed out, really\",burst 4-12,text,false,,0,0,9,9,http://127.0.0.1:8380/process,0,0,0\n";
        let rs = read(text).unwrap();
        assert_eq!(rs.len(), 2);
        assert_eq!(
            rs[0],
            Record {
                epoch_ms: 1733470000123,
                elapsed_ms: 12,
                label: "/auth".into(),
                status: Some(200),
                success: true,
                thread_group: "low".into(),
            }
        );
        assert_eq!(rs[1].status, None);
        assert_eq!(rs[1].thread_group, "burst");
        // Another order, fewer columns.
        let rs = read("label,success,responseCode,elapsed,timeStamp\n/a,false,503,7,1\n").unwrap();
        assert_eq!(
            (rs[0].status, rs[0].elapsed_ms, rs[0].success),
            (Some(503), 7, false)
        );
        assert_eq!(rs[0].thread_group, "");
    }

    #[test]
    fn bad_files_name_the_line_and_column() {
        let err = |t: &str| format!("{:#}", read(t).unwrap_err());
        assert!(err("<?xml version=\"1.0\"?>\n<testResults>\n").contains("XML"));
        assert!(err("timeStamp,elapsed,label,success\n").contains("`responseCode`"));
        let e =
            err("timeStamp,elapsed,label,responseCode,success\n1,2,/a,200,true\n1,x,/a,200,true\n");
        assert!(e.contains("line 3, column `elapsed`: `x`"), "{e}");
        let e = err("timeStamp,elapsed,label,responseCode,success\n1,2,/a,200,yes\n");
        assert!(e.contains("line 2, column `success`"), "{e}");
        let e = err("timeStamp,elapsed,label,responseCode,success\n1,2,/a\n");
        assert!(e.contains("line 2"), "{e}");
        let long = format!(
            "timeStamp,elapsed,label,responseCode,success\n1,2,{},200,true\n",
            "a".repeat(MAX_LINE_BYTES + 1)
        );
        assert!(err(&long).contains("longer than"));
    }

    #[test]
    fn thread_groups_drop_the_numbers() {
        assert_eq!(thread_group("Thread Group 1-10"), "Thread Group");
        assert_eq!(thread_group("foresight-loadgen 1-4"), "foresight-loadgen");
        assert_eq!(thread_group("worker"), "worker");
        assert_eq!(thread_group("a 1-x"), "a 1-x");
    }
}
