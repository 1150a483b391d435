//! Streaming CSV record reader over any `Read`, built on `csv-core` so that memory stays
//! bounded: a record longer than [`MAX_RECORD_BYTES`](super::MAX_RECORD_BYTES) is reported
//! and skipped instead of being buffered whole.

use std::io::{self, Read};

use csv_core::{ReadRecordResult, ReaderBuilder};

use super::MAX_RECORD_BYTES;

/// Size of the input buffer refilled from the underlying reader.
const INPUT_BUFFER: usize = 256 * 1024;

/// One outcome of [`RecordReader::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rec {
    /// A record with this many fields is in [`RecordReader::record`].
    Fields(usize),
    /// The record was longer than `MAX_RECORD_BYTES`; the reader skipped to the next line.
    TooLong,
    /// The record had more fields than the reader's capacity; it holds the full count.
    TooManyFields(usize),
    /// End of input.
    End,
}

pub(crate) struct RecordReader<R> {
    inner: R,
    core: csv_core::Reader,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    out: Box<[u8]>,
    out_len: usize,
    ends: Vec<usize>,
    n_ends: usize,
}

impl<R> std::fmt::Debug for RecordReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordReader")
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl<R: Read> RecordReader<R> {
    /// Reads enough of `inner` to see the first line, strips a UTF-8 BOM and chooses the
    /// delimiter (`delimiter`, or auto-detected from the first line when `None`).
    pub(crate) fn new(
        mut inner: R,
        delimiter: Option<u8>,
        max_fields: usize,
    ) -> io::Result<(Self, u8)> {
        let mut buf = vec![0u8; INPUT_BUFFER].into_boxed_slice();
        let mut end = 0;
        let mut eof = false;
        // Fill until the first line is complete, the buffer is full or the input ends.
        while !eof && end < buf.len() && !buf[..end].contains(&b'\n') {
            match inner.read(&mut buf[end..]) {
                Ok(0) => eof = true,
                Ok(n) => end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let start = if buf[..end].starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
        let delimiter = delimiter.unwrap_or_else(|| detect_delimiter(&buf[start..end]));
        let core = ReaderBuilder::new().delimiter(delimiter).build();
        Ok((
            Self {
                inner,
                core,
                buf,
                start,
                end,
                eof,
                out: vec![0u8; MAX_RECORD_BYTES].into_boxed_slice(),
                out_len: 0,
                ends: vec![0; max_fields],
                n_ends: 0,
            },
            delimiter,
        ))
    }

    /// Changes how many fields a record may have before [`Rec::TooManyFields`].
    pub(crate) fn set_max_fields(&mut self, max_fields: usize) {
        self.ends.resize(max_fields.max(1), 0);
    }

    /// The bytes of the last record read (fields unescaped and concatenated) and the end
    /// offset of each field.
    pub(crate) fn record(&self) -> (&[u8], &[usize]) {
        (&self.out[..self.out_len], &self.ends[..self.n_ends])
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) fn read(&mut self) -> io::Result<Rec> {
        self.out_len = 0;
        self.n_ends = 0;
        loop {
            if self.start == self.end && !self.eof {
                self.fill()?;
            }
            let (res, nin, nout, nend) = self.core.read_record(
                &self.buf[self.start..self.end],
                &mut self.out[self.out_len..],
                &mut self.ends[self.n_ends..],
            );
            self.start += nin;
            self.out_len += nout;
            self.n_ends += nend;
            match res {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::Record => return Ok(Rec::Fields(self.n_ends)),
                ReadRecordResult::End => return Ok(Rec::End),
                ReadRecordResult::OutputFull => {
                    self.skip_line()?;
                    return Ok(Rec::TooLong);
                }
                ReadRecordResult::OutputEndsFull => return self.count_rest(),
            }
        }
    }

    /// After `OutputEndsFull`: parse the rest of the record (correctly, quotes included)
    /// only to count its fields.
    fn count_rest(&mut self) -> io::Result<Rec> {
        let mut fields = self.n_ends;
        let mut scratch = [0usize; 64];
        loop {
            if self.start == self.end && !self.eof {
                self.fill()?;
            }
            let (res, nin, nout, nend) = self.core.read_record(
                &self.buf[self.start..self.end],
                &mut self.out[self.out_len..],
                &mut scratch,
            );
            self.start += nin;
            self.out_len += nout;
            fields += nend;
            match res {
                ReadRecordResult::InputEmpty | ReadRecordResult::OutputEndsFull => {}
                ReadRecordResult::Record | ReadRecordResult::End => {
                    self.n_ends = 0;
                    return Ok(Rec::TooManyFields(fields));
                }
                ReadRecordResult::OutputFull => {
                    self.skip_line()?;
                    return Ok(Rec::TooLong);
                }
            }
        }
    }

    /// Resynchronise after an over-long record: drop input up to and including the next
    /// `\n` and restart the parser (an open quote is forgotten).
    fn skip_line(&mut self) -> io::Result<()> {
        self.out_len = 0;
        self.n_ends = 0;
        loop {
            if let Some(i) = memchr(b'\n', &self.buf[self.start..self.end]) {
                self.start += i + 1;
                break;
            }
            self.start = self.end;
            if self.eof {
                break;
            }
            self.fill()?;
            if self.eof && self.start == self.end {
                break;
            }
        }
        self.core.reset();
        Ok(())
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// Picks `,`, `;` or TAB: whichever occurs most often outside quotes in the first line
/// (`,` on a tie or when none occurs, e.g. a header with the single column `phone`).
pub(crate) fn detect_delimiter(head: &[u8]) -> u8 {
    let (mut comma, mut semi, mut tab) = (0usize, 0usize, 0usize);
    let mut quoted = false;
    for &b in head {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            b',' if !quoted => comma += 1,
            b';' if !quoted => semi += 1,
            b'\t' if !quoted => tab += 1,
            _ => {}
        }
    }
    if semi > comma && semi >= tab {
        b';'
    } else if tab > comma && tab > semi {
        b'\t'
    } else {
        b','
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], max_fields: usize) -> Vec<Result<Vec<String>, Rec>> {
        let (mut r, _) = RecordReader::new(input, None, max_fields).unwrap();
        let mut v = Vec::new();
        loop {
            match r.read().unwrap() {
                Rec::End => return v,
                Rec::Fields(_) => {
                    let (bytes, ends) = r.record();
                    let mut prev = 0;
                    v.push(Ok(ends
                        .iter()
                        .map(|&e| {
                            let s = String::from_utf8_lossy(&bytes[prev..e]).into_owned();
                            prev = e;
                            s
                        })
                        .collect()));
                }
                other => v.push(Err(other)),
            }
        }
    }

    #[test]
    fn delimiters() {
        assert_eq!(detect_delimiter(b"phone;name,x;y\n1,2,3"), b';');
        assert_eq!(detect_delimiter(b"phone,name\n"), b',');
        assert_eq!(detect_delimiter(b"phone\tname\n"), b'\t');
        assert_eq!(detect_delimiter(b"phone\n;;;;"), b',');
        assert_eq!(detect_delimiter(b"\"a;b;c\",d\n"), b',');
        assert_eq!(detect_delimiter(b""), b',');
    }

    #[test]
    fn quotes_crlf_bom_and_blank_lines() {
        let got = all(
            b"\xEF\xBB\xBFa;b\r\n\"x;\"\"y\"\"\";2\r\n\r\n\"multi\nline\";3",
            8,
        );
        assert_eq!(
            got,
            vec![
                Ok(vec!["a".to_string(), "b".into()]),
                Ok(vec!["x;\"y\"".to_string(), "2".into()]),
                Ok(vec!["multi\nline".to_string(), "3".into()]),
            ]
        );
    }

    #[test]
    fn too_many_fields_counted() {
        let got = all(b"a,b\n1,2,3,4,\"5,6\"\n7,8\n", 3);
        assert_eq!(got[1], Err(Rec::TooManyFields(5)));
        assert_eq!(got[2], Ok(vec!["7".to_string(), "8".into()]));
    }

    #[test]
    fn too_long_record_resyncs_at_next_line() {
        let mut input = b"a,b\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES + 10));
        input.extend(b",1\n2,3\n");
        let got = all(&input, 3);
        assert_eq!(got[1], Err(Rec::TooLong));
        assert_eq!(got[2], Ok(vec!["2".to_string(), "3".into()]));
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn small_reads() {
        // A reader that returns one byte at a time must give the same records.
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let input = b"\xEF\xBB\xBFa;b\r\n\"1;\";2\r\n3;4";
        let (mut r, d) = RecordReader::new(OneByte(input), None, 4).unwrap();
        assert_eq!(d, b';');
        let mut n = 0;
        while let Rec::Fields(k) = r.read().unwrap() {
            assert_eq!(k, 2);
            n += 1;
        }
        assert_eq!(n, 3);
    }
}
