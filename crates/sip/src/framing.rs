//! Sans-IO framing of SIP messages on the wire (RFC 3261 §18.3).
//!
//! * Stream transports (TCP/TLS): [`StreamFramer`] accumulates received bytes and
//!   cuts them into whole messages using the mandatory `Content-Length` header.
//!   Leading CRLFs between messages are skipped; a double-CRLF keep-alive ping
//!   (RFC 5626 §4.4.1) is remembered so the caller can answer with a single CRLF.
//! * Datagram transports (UDP): [`datagram_message`] checks a whole datagram
//!   against its `Content-Length` (if any) and trims trailing bytes beyond it.
//!
//! Nothing here panics on peer input, and the stream framer's memory is bounded
//! by [`FramingLimits`] plus whatever the caller pushes between two calls to
//! [`StreamFramer::next_message`].

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

/// Size limits for stream framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramingLimits {
    /// Maximum size of the start line plus headers, including the final CRLFCRLF.
    pub max_header_bytes: usize,
    /// Maximum accepted `Content-Length`.
    pub max_body_bytes: usize,
}

impl Default for FramingLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// Framing failure. For streams every error is fatal for the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingError {
    /// The header block exceeds [`FramingLimits::max_header_bytes`] (or no CRLFCRLF within it).
    HeaderTooLarge,
    /// The announced `Content-Length` exceeds [`FramingLimits::max_body_bytes`].
    BodyTooLarge(usize),
    /// No `Content-Length` header on a stream transport.
    MissingContentLength,
    /// `Content-Length` is not a non-negative decimal number, or appears twice with different values.
    BadContentLength(String),
    /// A datagram's body is shorter than its `Content-Length`.
    BodyTruncated,
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeaderTooLarge => f.write_str("SIP header block too large"),
            Self::BodyTooLarge(n) => write!(f, "SIP body too large (Content-Length {n})"),
            Self::MissingContentLength => f.write_str("missing Content-Length on stream transport"),
            Self::BadContentLength(v) => write!(f, "bad Content-Length: {v}"),
            Self::BodyTruncated => f.write_str("datagram body shorter than Content-Length"),
        }
    }
}

impl std::error::Error for FramingError {}

/// Incremental framer for one stream connection.
#[derive(Debug, Default)]
pub struct StreamFramer {
    limits: FramingLimits,
    buf: BytesMut,
    /// Prefix of `buf` already searched for CRLFCRLF without success.
    scanned: usize,
    /// Header block length (incl. CRLFCRLF) and body length of the message at the front of `buf`.
    pending: Option<(usize, usize)>,
    /// Consecutive CRLFs skipped since the last message / ping.
    crlf_run: u8,
    pong_needed: bool,
    /// Sticky error: once framing failed the stream cannot be resynchronised.
    failed: Option<FramingError>,
}

impl StreamFramer {
    /// A framer enforcing `limits`.
    pub fn new(limits: FramingLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// The limits this framer enforces.
    pub fn limits(&self) -> FramingLimits {
        self.limits
    }

    /// Number of bytes currently buffered (received but not yet returned as a message).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Append received bytes. Ignored once the framer has failed.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Next complete message (start line + headers + CRLFCRLF + exactly
    /// Content-Length body bytes), or `Ok(None)` if more bytes are needed.
    ///
    /// Leading CRLFs between messages (keep-alives) are skipped. Errors are fatal:
    /// the framer drops its buffer and keeps returning the same error.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, FramingError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let (head, body) = match self.pending {
            Some(p) => p,
            None => {
                self.skip_keepalives();
                let Some(end) = find_header_end(&self.buf, self.scanned) else {
                    if self.buf.len() > self.limits.max_header_bytes {
                        return Err(self.fail(FramingError::HeaderTooLarge));
                    }
                    // A CRLFCRLF may straddle the boundary with the next push.
                    self.scanned = self.buf.len().saturating_sub(3);
                    return Ok(None);
                };
                if end > self.limits.max_header_bytes {
                    return Err(self.fail(FramingError::HeaderTooLarge));
                }
                let body = match scan_content_length(&self.buf[..end]) {
                    Ok(Some(n)) => n,
                    Ok(None) => return Err(self.fail(FramingError::MissingContentLength)),
                    Err(e) => return Err(self.fail(e)),
                };
                if body > self.limits.max_body_bytes {
                    return Err(self.fail(FramingError::BodyTooLarge(body)));
                }
                self.pending = Some((end, body));
                (end, body)
            }
        };
        let total = head.saturating_add(body);
        if self.buf.len() < total {
            return Ok(None);
        }
        self.pending = None;
        self.scanned = 0;
        self.crlf_run = 0;
        Ok(Some(self.buf.split_to(total).freeze()))
    }

    /// True if a double-CRLF ping was seen since the last call; the caller
    /// should answer with a single CRLF.
    pub fn take_pong_needed(&mut self) -> bool {
        std::mem::take(&mut self.pong_needed)
    }

    fn fail(&mut self, e: FramingError) -> FramingError {
        self.buf = BytesMut::new();
        self.pending = None;
        self.scanned = 0;
        self.failed = Some(e.clone());
        e
    }

    fn skip_keepalives(&mut self) {
        let mut skip = 0;
        while self.buf[skip..].starts_with(b"\r\n") {
            skip += 2;
            self.crlf_run += 1;
            if self.crlf_run >= 2 {
                self.pong_needed = true;
                self.crlf_run = 0;
            }
        }
        if skip > 0 {
            self.buf.advance(skip);
            self.scanned = 0;
        }
    }
}

/// For UDP datagrams (RFC 3261 §18.3): the part of `datagram` to parse.
///
/// Leading CRLFs are dropped (a datagram of only CRLFs yields an empty slice).
/// If a `Content-Length` is present and the body is longer, the body is
/// truncated to it; if shorter, [`FramingError::BodyTruncated`]. Without
/// `Content-Length` (or without a complete header block) the whole datagram is
/// returned.
pub fn datagram_message(datagram: &[u8]) -> Result<&[u8], FramingError> {
    let mut msg = datagram;
    while let Some(rest) = msg.strip_prefix(b"\r\n") {
        msg = rest;
    }
    let Some(end) = find_header_end(msg, 0) else {
        return Ok(msg);
    };
    match scan_content_length(&msg[..end])? {
        None => Ok(msg),
        Some(n) if n > msg.len() - end => Err(FramingError::BodyTruncated),
        Some(n) => Ok(&msg[..end + n]),
    }
}

/// Index just past the first CRLFCRLF at or after `from`.
fn find_header_end(buf: &[u8], from: usize) -> Option<usize> {
    let tail = buf.get(from..)?;
    let mut i = 0;
    while let Some(off) = tail.get(i..)?.iter().position(|&b| b == b'\n') {
        let lf = i + off;
        // `\r\n\r\n` ending at this LF?
        if lf >= 3 && &tail[lf - 3..=lf] == b"\r\n\r\n" {
            return Some(from + lf + 1);
        }
        i = lf + 1;
    }
    None
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ws(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s
        && is_ws(*first)
    {
        s = rest;
    }
    while let [rest @ .., last] = s
        && is_ws(*last)
    {
        s = rest;
    }
    s
}

/// Find the Content-Length in a header block (start line + headers + CRLFCRLF).
/// Handles the compact form `l`, whitespace around the colon and folded lines.
fn scan_content_length(head: &[u8]) -> Result<Option<usize>, FramingError> {
    let mut found: Option<usize> = None;
    // Value of a Content-Length header being collected (it may be folded).
    let mut current: Option<Vec<u8>> = None;
    let mut lines = head.split(|&b| b == b'\n');
    lines.next(); // start line
    for raw in lines {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if let Some(&first) = line.first()
            && is_ws(first)
        {
            if let Some(v) = current.as_mut() {
                v.push(b' ');
                v.extend_from_slice(line);
            }
            continue;
        }
        if let Some(v) = current.take() {
            found = merge_content_length(found, parse_content_length(&v)?)?;
        }
        if line.is_empty() {
            break;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = trim_ws(&line[..colon]);
            if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
                current = Some(line[colon + 1..].to_vec());
            }
        }
    }
    if let Some(v) = current.take() {
        found = merge_content_length(found, parse_content_length(&v)?)?;
    }
    Ok(found)
}

fn merge_content_length(found: Option<usize>, new: usize) -> Result<Option<usize>, FramingError> {
    match found {
        Some(old) if old != new => Err(FramingError::BadContentLength(format!(
            "conflicting values {old} and {new}"
        ))),
        _ => Ok(Some(new)),
    }
}

/// Parse a decimal Content-Length; values beyond `usize` saturate (and are
/// then rejected as too large by the caller).
fn parse_content_length(value: &[u8]) -> Result<usize, FramingError> {
    let v = trim_ws(value);
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        let shown: String = String::from_utf8_lossy(&v[..v.len().min(32)]).into_owned();
        return Err(FramingError::BadContentLength(shown));
    }
    Ok(v.iter().fold(0usize, |acc, &d| {
        acc.saturating_mul(10).saturating_add(usize::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG1: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 5\r\n\r\nhello";
    const MSG2: &[u8] = b"SIP/2.0 200 OK\r\nl: 0\r\nCall-ID: x\r\n\r\n";

    fn msg_with_body(body: &[u8]) -> Vec<u8> {
        let mut m = format!(
            "MESSAGE sip:a@b SIP/2.0\r\nCall-ID: c\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        m.extend_from_slice(body);
        m
    }

    fn frame_all(framer: &mut StreamFramer) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(m) = framer.next_message().expect("framing") {
            out.push(m);
        }
        out
    }

    fn frame_one(input: &[u8]) -> Result<Option<Bytes>, FramingError> {
        let mut f = StreamFramer::default();
        f.push(input);
        f.next_message()
    }

    #[test]
    fn whole_message() {
        assert_eq!(frame_one(MSG1).unwrap().unwrap(), MSG1);
    }

    #[test]
    fn split_at_every_byte() {
        let mut input = Vec::new();
        input.extend_from_slice(MSG1);
        input.extend_from_slice(b"\r\n\r\n");
        input.extend_from_slice(MSG2);
        let mut f = StreamFramer::default();
        let mut out = Vec::new();
        for b in &input {
            f.push(std::slice::from_ref(b));
            out.extend(frame_all(&mut f));
        }
        assert_eq!(
            out,
            vec![Bytes::from_static(MSG1), Bytes::from_static(MSG2)]
        );
        assert!(f.take_pong_needed());
        assert!(!f.take_pong_needed());
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn split_at_every_position_in_two_pushes() {
        let mut input = MSG1.to_vec();
        input.extend_from_slice(MSG2);
        for cut in 0..=input.len() {
            let mut f = StreamFramer::default();
            f.push(&input[..cut]);
            let mut out = frame_all(&mut f);
            f.push(&input[cut..]);
            out.extend(frame_all(&mut f));
            assert_eq!(out.len(), 2, "cut {cut}");
            assert_eq!(out[0], MSG1);
            assert_eq!(out[1], MSG2);
        }
    }

    #[test]
    fn two_messages_in_one_push() {
        let mut f = StreamFramer::default();
        let mut input = MSG1.to_vec();
        input.extend_from_slice(MSG2);
        f.push(&input);
        assert_eq!(
            frame_all(&mut f),
            vec![Bytes::from_static(MSG1), Bytes::from_static(MSG2)]
        );
    }

    #[test]
    fn body_containing_double_crlf() {
        let body = b"v=0\r\n\r\n\r\nINVITE x SIP/2.0\r\n\r\n";
        let m = msg_with_body(body);
        let mut f = StreamFramer::default();
        f.push(&m);
        f.push(MSG2);
        let out = frame_all(&mut f);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], m.as_slice());
        assert!(out[0].ends_with(body));
        assert_eq!(out[1], MSG2);
    }

    #[test]
    fn keepalives() {
        let mut f = StreamFramer::default();
        // Single CRLF: skipped, no pong.
        f.push(b"\r\n");
        assert_eq!(f.next_message(), Ok(None));
        assert!(!f.take_pong_needed());
        assert_eq!(f.buffered(), 0);
        f.push(MSG2);
        assert_eq!(f.next_message().unwrap().unwrap(), MSG2);
        // Double-CRLF ping, split across pushes.
        f.push(b"\r\n\r");
        assert_eq!(f.next_message(), Ok(None));
        f.push(b"\n");
        assert_eq!(f.next_message(), Ok(None));
        assert!(f.take_pong_needed());
        assert!(!f.take_pong_needed());
        // Ping before a message in the same push.
        f.push(b"\r\n\r\n");
        f.push(MSG1);
        assert_eq!(f.next_message().unwrap().unwrap(), MSG1);
        assert!(f.take_pong_needed());
        // Many pings: bounded memory, pong flagged.
        for _ in 0..10_000 {
            f.push(b"\r\n\r\n");
            assert_eq!(f.next_message(), Ok(None));
        }
        assert_eq!(f.buffered(), 0);
        assert!(f.take_pong_needed());
    }

    #[test]
    fn compact_and_spaced_content_length() {
        let m = b"SIP/2.0 180 Ringing\r\nl:3\r\n\r\nabcXYZ";
        assert_eq!(frame_one(m).unwrap().unwrap(), &m[..m.len() - 3]);
        let m = b"SIP/2.0 180 Ringing\r\nL \t:  3 \r\n\r\nabc";
        assert_eq!(frame_one(m).unwrap().unwrap(), &m[..]);
        let m = b"SIP/2.0 180 Ringing\r\nContent-Length : 5\r\n\r\nhello";
        assert_eq!(frame_one(m).unwrap().unwrap(), &m[..]);
        let m = b"SIP/2.0 180 Ringing\r\ncOnTeNt-LeNgTh:5\r\n\r\nhello";
        assert_eq!(frame_one(m).unwrap().unwrap(), &m[..]);
        // Headers merely containing the name do not count.
        let m = b"SIP/2.0 180 Ringing\r\nX-Content-Length: 9\r\nLen: 9\r\nl: 1\r\n\r\nz";
        assert_eq!(frame_one(m).unwrap().unwrap(), &m[..]);
        // Duplicate identical values are tolerated.
        let m = b"SIP/2.0 180 Ringing\r\nl: 1\r\nContent-Length: 1\r\n\r\nz";
        assert_eq!(frame_one(m).unwrap().unwrap(), &m[..]);
    }

    #[test]
    fn folded_header() {
        let m = b"SIP/2.0 200 OK\r\nSubject: a\r\n  folded: l: 99\r\nContent-Length:\r\n   4\r\n\r\nbody";
        assert_eq!(frame_one(m).unwrap().unwrap(), &m[..]);
        let m = b"SIP/2.0 200 OK\r\nContent-Length: 1\r\n\t2\r\n\r\nbody";
        assert!(matches!(
            frame_one(m),
            Err(FramingError::BadContentLength(_))
        ));
    }

    #[test]
    fn bad_content_lengths() {
        let cases: &[(&[u8], FramingError)] = &[
            (
                b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n",
                FramingError::MissingContentLength,
            ),
            (
                b"SIP/2.0 200 OK\r\nContent-Length: -5\r\n\r\n",
                FramingError::BadContentLength("-5".into()),
            ),
            (
                b"SIP/2.0 200 OK\r\nContent-Length: abc\r\n\r\n",
                FramingError::BadContentLength("abc".into()),
            ),
            (
                b"SIP/2.0 200 OK\r\nContent-Length: \r\n\r\n",
                FramingError::BadContentLength(String::new()),
            ),
            (
                b"SIP/2.0 200 OK\r\nContent-Length: +5\r\n\r\n",
                FramingError::BadContentLength("+5".into()),
            ),
            (
                b"SIP/2.0 200 OK\r\nContent-Length: 5 5\r\n\r\n",
                FramingError::BadContentLength("5 5".into()),
            ),
            (
                b"SIP/2.0 200 OK\r\nContent-Length: 70000\r\n\r\n",
                FramingError::BodyTooLarge(70000),
            ),
            (
                b"SIP/2.0 200 OK\r\nContent-Length: 999999999999999999999999999999\r\n\r\n",
                FramingError::BodyTooLarge(usize::MAX),
            ),
            (
                b"SIP/2.0 200 OK\r\nContent-Length: 1\r\nl: 2\r\n\r\nab",
                FramingError::BadContentLength("conflicting values 1 and 2".into()),
            ),
        ];
        for (input, want) in cases {
            let mut f = StreamFramer::default();
            f.push(input);
            assert_eq!(
                f.next_message().as_ref(),
                Err(want),
                "{}",
                String::from_utf8_lossy(input)
            );
            // Sticky: the connection is unusable afterwards.
            f.push(MSG1);
            assert_eq!(f.next_message().as_ref(), Err(want));
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn header_flood_is_bounded() {
        let limits = FramingLimits {
            max_header_bytes: 1024,
            max_body_bytes: 1024,
        };
        let mut f = StreamFramer::new(limits);
        f.push(b"INVITE sip:x SIP/2.0\r\n");
        let mut err = None;
        for _ in 0..1000 {
            f.push(b"X-Flood: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
            assert!(f.buffered() <= limits.max_header_bytes + 64);
            match f.next_message() {
                Ok(None) => {}
                Ok(Some(_)) => panic!("unexpected message"),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        assert_eq!(err, Some(FramingError::HeaderTooLarge));
        assert_eq!(f.buffered(), 0);

        // Complete header block that is just over the limit.
        let mut f = StreamFramer::new(limits);
        let mut m = b"SIP/2.0 200 OK\r\nl: 0\r\nX: ".to_vec();
        m.resize(limits.max_header_bytes - 3, b'a');
        m.extend_from_slice(b"\r\n\r\n");
        f.push(&m);
        assert_eq!(f.next_message(), Err(FramingError::HeaderTooLarge));

        // Exactly at the limit is fine.
        let mut f = StreamFramer::new(limits);
        m.truncate(limits.max_header_bytes - 4);
        m.extend_from_slice(b"\r\n\r\n");
        assert_eq!(m.len(), limits.max_header_bytes);
        f.push(&m);
        assert_eq!(f.next_message().unwrap().unwrap(), m.as_slice());
    }

    #[test]
    fn body_limit_edge() {
        let limits = FramingLimits {
            max_header_bytes: 1024,
            max_body_bytes: 10,
        };
        let mut f = StreamFramer::new(limits);
        f.push(&msg_with_body(&[b'x'; 10]));
        assert!(f.next_message().unwrap().is_some());
        f.push(&msg_with_body(&[b'x'; 11]));
        assert_eq!(f.next_message(), Err(FramingError::BodyTooLarge(11)));
    }

    #[test]
    fn unlimited_body_limit_does_not_overflow() {
        let mut f = StreamFramer::new(FramingLimits {
            max_header_bytes: 1024,
            max_body_bytes: usize::MAX,
        });
        f.push(b"SIP/2.0 200 OK\r\nl: 999999999999999999999999\r\n\r\nabc");
        assert_eq!(f.next_message(), Ok(None));
    }

    #[test]
    fn datagram() {
        assert_eq!(datagram_message(MSG1), Ok(MSG1));
        let mut long = MSG1.to_vec();
        long.extend_from_slice(b"trailing garbage");
        assert_eq!(datagram_message(&long), Ok(MSG1));
        assert_eq!(
            datagram_message(&MSG1[..MSG1.len() - 1]),
            Err(FramingError::BodyTruncated)
        );
        let no_cl = b"OPTIONS sip:x SIP/2.0\r\nCall-ID: y\r\n\r\nbody";
        assert_eq!(datagram_message(no_cl), Ok(&no_cl[..]));
        let no_end = b"OPTIONS sip:x SIP/2.0\r\nCall-ID: y";
        assert_eq!(datagram_message(no_end), Ok(&no_end[..]));
        let mut lead = b"\r\n\r\n".to_vec();
        lead.extend_from_slice(MSG2);
        assert_eq!(datagram_message(&lead), Ok(MSG2));
        assert_eq!(datagram_message(b"\r\n\r\n"), Ok(&b""[..]));
        assert_eq!(datagram_message(b""), Ok(&b""[..]));
        assert!(matches!(
            datagram_message(b"SIP/2.0 200 OK\r\nl: x\r\n\r\n"),
            Err(FramingError::BadContentLength(_))
        ));
        assert_eq!(
            datagram_message(b"SIP/2.0 200 OK\r\nl: 99999999999999999999999999\r\n\r\n"),
            Err(FramingError::BodyTruncated)
        );
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const TOKENS: &[&[u8]] = &[
        b"\r\n",
        b"\r\n\r\n",
        b"\r",
        b"\n",
        b" ",
        b"\t",
        b":",
        b"Content-Length",
        b"content-length",
        b"l",
        b"L",
        b"0",
        b"7",
        b"42",
        b"-1",
        b"99999999999999999999",
        b"INVITE sip:a@b SIP/2.0\r\n",
        b"SIP/2.0 200 OK\r\n",
        b"Via: x",
        b"abc",
        b"\x00",
        b"\xff\xfe",
    ];

    fn random_input(rng: &mut XorShift, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 32);
        while v.len() < len {
            if rng.below(4) == 0 {
                v.push(rng.next() as u8);
            } else {
                v.extend_from_slice(TOKENS[rng.below(TOKENS.len())]);
            }
        }
        v
    }

    #[test]
    fn random_garbage_never_panics_and_stays_bounded() {
        const CHUNK: usize = 512;
        let limits = FramingLimits {
            max_header_bytes: 600,
            max_body_bytes: 300,
        };
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let (mut msgs, mut errs) = (0usize, 0usize);
        for _ in 0..3000 {
            let len = rng.below(4000);
            let input = random_input(&mut rng, len);
            let mut f = StreamFramer::new(limits);
            let mut pos = 0;
            while pos < input.len() {
                let n = (1 + rng.below(CHUNK)).min(input.len() - pos);
                f.push(&input[pos..pos + n]);
                pos += n;
                assert!(f.buffered() <= limits.max_header_bytes + limits.max_body_bytes + CHUNK);
                loop {
                    match f.next_message() {
                        Ok(Some(m)) => {
                            msgs += 1;
                            assert!(m.len() <= limits.max_header_bytes + limits.max_body_bytes);
                        }
                        Ok(None) => break,
                        Err(_) => {
                            errs += 1;
                            f = StreamFramer::new(limits);
                            break;
                        }
                    }
                }
                assert!(f.buffered() <= limits.max_header_bytes + limits.max_body_bytes);
                let _ = f.take_pong_needed();
            }
            let _ = datagram_message(&input);
            let cut = rng.below(input.len() + 1);
            let _ = datagram_message(&input[..cut]);
        }
        // The generator must actually exercise both paths.
        assert!(msgs > 0 && errs > 0, "msgs {msgs} errs {errs}");
    }

    #[test]
    fn random_valid_streams_roundtrip() {
        let mut rng = XorShift(0xDEAD_BEEF_1234_5678);
        for _ in 0..500 {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for _ in 0..1 + rng.below(5) {
                for _ in 0..rng.below(3) {
                    stream.extend_from_slice(b"\r\n");
                }
                let len = rng.below(200);
                let body = random_input(&mut rng, len);
                let m = msg_with_body(&body);
                stream.extend_from_slice(&m);
                expected.push(Bytes::from(m));
            }
            let mut f = StreamFramer::default();
            let mut out = Vec::new();
            let mut pos = 0;
            while pos < stream.len() {
                let n = (1 + rng.below(64)).min(stream.len() - pos);
                f.push(&stream[pos..pos + n]);
                pos += n;
                out.extend(frame_all(&mut f));
            }
            assert_eq!(out, expected);
            assert_eq!(f.buffered(), 0);
        }
    }
}
