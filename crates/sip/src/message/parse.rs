//! One-pass SIP message parser with bounded work and memory. Never panics on any input.
//!
//! The header section is walked once, line by line: each logical header line (folded
//! continuations joined) is classified, validated in place by the borrowing scanners of
//! [`super::header`] and stored with one allocation for its value (two for an extension header,
//! whose name is kept). The body is never scanned; it is cut to `Content-Length`.

use super::header::{
    cseq_ref, find_b, is_token, name_addr_ref, split_list, trim_wsp, trim_wsp_end, via_ref,
};
use super::{Header, HeaderName, Headers, Message, Method, Request, Response};

/// Bounds on what the parser accepts from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message in bytes.
    pub max_message_bytes: usize,
    /// Most header lines (after unfolding). A single `Content-Length` line is not counted, so
    /// that a parsed message always re-serialises within the limit.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 65_535,
            max_headers: 128,
        }
    }
}

/// Why a message was refused. A request whose start line parsed but whose headers did not may
/// still be answered with 400 (see [`salvage_request`]); anything else is dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    #[error("header section is not valid UTF-8")]
    NotUtf8,
    #[error("no empty line ends the header section")]
    NoHeaderEnd,
    #[error("bad start line: {0}")]
    BadStartLine(&'static str),
    #[error("unsupported SIP version {0:?}")]
    UnsupportedVersion(String),
    #[error("header line {line}: {reason}")]
    BadHeaderLine { line: usize, reason: &'static str },
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    #[error("bad {name} header: {reason}")]
    BadHeader {
        name: &'static str,
        reason: &'static str,
    },
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMismatch { cseq: String, method: String },
    #[error("Content-Length {declared} exceeds the {available} body bytes present")]
    BodyTruncated { declared: usize, available: usize },
}

/// Cursor over the CRLF-terminated lines of the header section.
struct Lines<'a> {
    input: &'a [u8],
    pos: usize,
}

enum Line<'a> {
    /// A line without its CRLF, and whether it holds control characters other than HTAB.
    Text(&'a [u8], bool),
    /// Input ended before a CRLF.
    Eof,
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Flags (high bit of each byte) for the bytes of `w` below 0x20 or equal to 0x7F. The lowest
/// flag is exact; flags above it may be spurious.
#[inline]
fn ctl_flags(w: u64) -> u64 {
    let del = w ^ (LO * 0x7f);
    ((w.wrapping_sub(LO * 0x20) & !w) | (del.wrapping_sub(LO) & !del)) & HI
}

impl<'a> Lines<'a> {
    /// The next line, found eight bytes at a time together with any control character. A bare
    /// CR or LF does not end a line; it is reported as a control character.
    fn next_line(&mut self) -> Line<'a> {
        let input = self.input;
        let start = self.pos;
        let mut i = start;
        let mut ctl = false;
        loop {
            while let Some(chunk) = input.get(i..i + 8) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                let m = ctl_flags(u64::from_le_bytes(word));
                if m != 0 {
                    i += (m.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            // `i` is at a control character, or within eight bytes of the end.
            let Some(&c) = input.get(i) else {
                return Line::Eof;
            };
            if c == b'\r' && input.get(i + 1) == Some(&b'\n') {
                self.pos = i + 2;
                return Line::Text(&input[start..i], ctl);
            }
            if is_ctl(c) {
                ctl = true;
            }
            i += 1;
        }
    }

    fn peek_byte(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn rest(&self) -> &'a [u8] {
        self.input.get(self.pos..).unwrap_or_default()
    }
}

/// Position of the first `b` in `hay`, eight bytes at a time.
fn find_byte(b: u8, hay: &[u8]) -> Option<usize> {
    let pattern = LO * u64::from(b);
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ pattern;
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == b)
        .map(|i| base + i)
}

/// A control character other than HTAB (CR and LF included).
fn is_ctl(c: u8) -> bool {
    (c < 0x20 && c != b'\t') || c == 0x7f
}

/// Control characters are only allowed as the escaped half of a quoted-pair inside a quoted
/// string (RFC 3261 §25.1), and never CR or LF.
fn controls_are_quoted_pairs(line: &[u8]) -> bool {
    let mut in_q = false;
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b'"' => in_q = !in_q,
            b'\\' if in_q => {
                match line.get(i + 1) {
                    Some(b'\r' | b'\n') | None => return false,
                    Some(_) => {}
                }
                i += 1;
            }
            c if is_ctl(c) => return false,
            _ => {}
        }
        i += 1;
    }
    true
}

fn line_str(line: &[u8]) -> Result<&str, ParseError> {
    std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)
}

pub(super) fn parse(input: &[u8], limits: &Limits) -> Result<Message, ParseError> {
    if input.len() > limits.max_message_bytes {
        return Err(ParseError::TooLarge {
            size: input.len(),
            limit: limits.max_message_bytes,
        });
    }
    // RFC 3261 §7.5: ignore CRLFs before the start line.
    let mut start = 0;
    while input.get(start..start + 2) == Some(b"\r\n") {
        start += 2;
    }
    let input = &input[start..];
    if input.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut lines = Lines { input, pos: 0 };
    let Line::Text(first, ctl) = lines.next_line() else {
        return Err(ParseError::NoHeaderEnd);
    };
    if ctl {
        return Err(ParseError::BadStartLine("control character"));
    }
    let start_line = parse_start_line(line_str(first)?)?;
    let mut state = State::new(&start_line);
    let mut headers = Headers::with_capacity(16);
    let mut lineno = 1;
    loop {
        lineno += 1;
        let Line::Text(line, ctl) = lines.next_line() else {
            return Err(ParseError::NoHeaderEnd);
        };
        if line.is_empty() {
            break;
        }
        if matches!(line[0], b' ' | b'\t') {
            return Err(ParseError::BadHeaderLine {
                line: lineno,
                reason: "continuation line before any header",
            });
        }
        let line = check_line(line, ctl, lineno)?;
        let Some(colon) = find_b(line, b':') else {
            return Err(ParseError::BadHeaderLine {
                line: lineno,
                reason: "no colon",
            });
        };
        let name = trim_wsp_end(&line[..colon]);
        if !is_token(name) {
            return Err(ParseError::BadHeaderLine {
                line: lineno,
                reason: "header name is not a token",
            });
        }
        let first_value = trim_wsp(&line[colon + 1..]);
        // Folded continuation lines (RFC 3261 §7.3.1) are joined with one space.
        let value = if matches!(lines.peek_byte(), Some(b' ' | b'\t')) {
            let mut joined = String::from(first_value);
            while matches!(lines.peek_byte(), Some(b' ' | b'\t')) {
                lineno += 1;
                let Line::Text(cont, ctl) = lines.next_line() else {
                    return Err(ParseError::NoHeaderEnd);
                };
                let cont = trim_wsp(check_line(cont, ctl, lineno)?);
                if !cont.is_empty() {
                    if !joined.is_empty() {
                        joined.push(' ');
                    }
                    joined.push_str(cont);
                }
            }
            joined
        } else {
            first_value.to_owned()
        };
        let name = classify(name);
        let store = state.accept(&name, &value, &headers)?;
        let counted = headers.len() + state.extra_content_length + usize::from(store);
        if counted > limits.max_headers {
            return Err(ParseError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        if store {
            headers.0.push(Header { name, value });
        }
    }
    let body = state.finish(lines.rest())?;
    Ok(match start_line {
        StartLine::Request { method, uri } => Message::Request(Request {
            method: Method::from_token(method),
            uri: uri.to_owned(),
            headers,
            body: body.to_vec(),
        }),
        StartLine::Response { status, reason } => Message::Response(Response {
            status,
            reason: reason.to_owned(),
            headers,
            body: body.to_vec(),
        }),
    })
}

/// UTF-8 and control-character checks of one physical header line.
fn check_line(line: &[u8], ctl: bool, lineno: usize) -> Result<&str, ParseError> {
    if ctl && !controls_are_quoted_pairs(line) {
        return Err(ParseError::BadHeaderLine {
            line: lineno,
            reason: "control character",
        });
    }
    line_str(line)
}

enum StartLine<'a> {
    Request { method: &'a str, uri: &'a str },
    Response { status: u16, reason: &'a str },
}

/// `SIP/2.0`, the only version spoken. The protocol name is case-insensitive (RFC 3261 §7.1).
fn is_sip_2_0(v: &str) -> bool {
    has_sip_prefix(v) && v.get(4..) == Some("2.0")
}

/// Starts with `SIP/`, case-insensitively.
fn has_sip_prefix(s: &str) -> bool {
    s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
}

fn parse_start_line(line: &str) -> Result<StartLine<'_>, ParseError> {
    if has_sip_prefix(line) {
        let (version, rest) = line
            .split_once(' ')
            .ok_or(ParseError::BadStartLine("status line needs a code"))?;
        if !is_sip_2_0(version) {
            return Err(ParseError::UnsupportedVersion(version.to_owned()));
        }
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|c| c.is_ascii_digit()) {
            return Err(ParseError::BadStartLine("status code is not three digits"));
        }
        let status: u16 = code
            .parse()
            .map_err(|_| ParseError::BadStartLine("status code"))?;
        if !(100..=699).contains(&status) {
            return Err(ParseError::BadStartLine("status code out of range"));
        }
        return Ok(StartLine::Response { status, reason });
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::BadStartLine(
            "request line must be METHOD SP URI SP VERSION with single spaces",
        ));
    };
    if !is_token(method) {
        return Err(ParseError::BadStartLine("method is not a token"));
    }
    if uri.is_empty() || uri.starts_with('<') {
        return Err(ParseError::BadStartLine("Request-URI must not be in <>"));
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(ParseError::BadStartLine("Request-URI has no scheme"));
    };
    if rest.is_empty()
        || !scheme
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphabetic)
        || !scheme
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
    {
        return Err(ParseError::BadStartLine("Request-URI scheme"));
    }
    if uri.bytes().any(|c| matches!(c, b'<' | b'>' | b'"')) {
        return Err(ParseError::BadStartLine("Request-URI has <, > or \""));
    }
    // The user part may hold `?` (RFC 3261 `user-unreserved`); headers start at a `?` after
    // the host, i.e. after the `@` when there is one.
    if (scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips"))
        && rest[rest.find('@').map_or(0, |at| at + 1)..].contains('?')
    {
        return Err(ParseError::BadStartLine(
            "SIP Request-URI must not carry headers",
        ));
    }
    if !has_sip_prefix(version) {
        return Err(ParseError::BadStartLine("version must be SIP/x.y"));
    }
    if !is_sip_2_0(version) {
        return Err(ParseError::UnsupportedVersion(version.to_owned()));
    }
    Ok(StartLine::Request { method, uri })
}

/// Header-name classification, fast for the names a SIP dialog carries on every message; the
/// rest goes through [`HeaderName::from_wire`].
pub(super) fn classify(name: &str) -> HeaderName {
    let eq = |canon: &str| name.eq_ignore_ascii_case(canon);
    let known = match name.len() {
        2 if eq("To") => Some(HeaderName::To),
        3 if eq("Via") => Some(HeaderName::Via),
        4 if eq("From") => Some(HeaderName::From),
        4 if eq("CSeq") => Some(HeaderName::CSeq),
        5 if eq("Route") => Some(HeaderName::Route),
        5 if eq("Allow") => Some(HeaderName::Allow),
        7 if eq("Call-ID") => Some(HeaderName::CallId),
        7 if eq("Contact") => Some(HeaderName::Contact),
        7 if eq("Require") => Some(HeaderName::Require),
        9 if eq("Supported") => Some(HeaderName::Supported),
        12 if eq("Max-Forwards") => Some(HeaderName::MaxForwards),
        12 if eq("Content-Type") => Some(HeaderName::ContentType),
        12 if eq("Record-Route") => Some(HeaderName::RecordRoute),
        14 if eq("Content-Length") => Some(HeaderName::ContentLength),
        15 if eq("Session-Expires") => Some(HeaderName::SessionExpires),
        _ => None,
    };
    known.unwrap_or_else(|| HeaderName::from_wire(name))
}

/// What the header checks have seen so far.
struct State<'s> {
    /// The request method, to compare with the CSeq method.
    method: Option<&'s str>,
    vias: usize,
    from: Option<usize>,
    to: Option<usize>,
    call_id: Option<usize>,
    cseq: Option<usize>,
    content_length: Option<usize>,
    /// Content-Length lines beyond the first (not stored, but bounded by the header limit).
    extra_content_length: usize,
}

fn bad(name: &'static str, reason: &'static str) -> ParseError {
    ParseError::BadHeader { name, reason }
}

fn all_digits(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit())
}

impl<'s> State<'s> {
    fn new(start: &StartLine<'s>) -> Self {
        Self {
            method: match start {
                StartLine::Request { method, .. } => Some(method),
                StartLine::Response { .. } => None,
            },
            vias: 0,
            from: None,
            to: None,
            call_id: None,
            cseq: None,
            content_length: None,
            extra_content_length: 0,
        }
    }

    /// Validate one header field against what the transaction and dialog layers rely on.
    /// Returns whether to store it (Content-Length is derived from the body on output, so
    /// keeping it would let the two disagree).
    fn accept(
        &mut self,
        name: &HeaderName,
        value: &str,
        headers: &Headers,
    ) -> Result<bool, ParseError> {
        let index = headers.len();
        match name {
            HeaderName::Via => for_each_element(value, |v| {
                via_ref(v).ok_or(bad("Via", "malformed via-parm"))?;
                self.vias += 1;
                Ok(())
            })?,
            HeaderName::From => single_name_addr(&mut self.from, "From", value, headers, index)?,
            HeaderName::To => single_name_addr(&mut self.to, "To", value, headers, index)?,
            HeaderName::CallId => {
                if value.is_empty() || value.bytes().any(|c| c.is_ascii_whitespace()) {
                    return Err(bad("Call-ID", "empty or contains whitespace"));
                }
                single(&mut self.call_id, "Call-ID", value, headers, index)?;
            }
            HeaderName::CSeq => {
                let (_, method) =
                    cseq_ref(value).ok_or(bad("CSeq", "must be a 31-bit number and a method"))?;
                if let Some(req) = self.method
                    && req != method
                {
                    return Err(ParseError::CSeqMismatch {
                        cseq: method.to_owned(),
                        method: req.to_owned(),
                    });
                }
                single(&mut self.cseq, "CSeq", value, headers, index)?;
            }
            HeaderName::Contact => for_each_element(value, |c| {
                name_addr_ref(c).ok_or(bad("Contact", "malformed contact"))?;
                Ok(())
            })?,
            HeaderName::MaxForwards => match value.parse::<u32>() {
                Ok(n) if n <= 255 && all_digits(value) => {}
                _ => return Err(bad("Max-Forwards", "must be 0..=255")),
            },
            HeaderName::Expires if !all_digits(value) || value.parse::<u32>().is_err() => {
                return Err(bad("Expires", "must be a 32-bit number of seconds"));
            }
            HeaderName::Date if !value.ends_with("GMT") => {
                return Err(bad("Date", "time zone must be GMT"));
            }
            HeaderName::ContentLength => {
                let n = if all_digits(value) {
                    value.parse::<usize>().ok()
                } else {
                    None
                }
                .ok_or(bad("Content-Length", "must be a non-negative number"))?;
                match self.content_length {
                    Some(d) if d != n => return Err(bad("Content-Length", "conflicting values")),
                    Some(_) => self.extra_content_length += 1,
                    None => self.content_length = Some(n),
                }
                return Ok(false);
            }
            _ => {}
        }
        Ok(true)
    }

    /// Mandatory headers present; the body cut to Content-Length.
    fn finish<'b>(&self, body: &'b [u8]) -> Result<&'b [u8], ParseError> {
        if self.vias == 0 {
            return Err(ParseError::MissingHeader("Via"));
        }
        for (seen, label) in [
            (self.from, "From"),
            (self.to, "To"),
            (self.call_id, "Call-ID"),
            (self.cseq, "CSeq"),
        ] {
            if seen.is_none() {
                return Err(ParseError::MissingHeader(label));
            }
        }
        match self.content_length {
            Some(n) if n > body.len() => Err(ParseError::BodyTruncated {
                declared: n,
                available: body.len(),
            }),
            Some(n) => Ok(&body[..n]),
            None => Ok(body),
        }
    }
}

/// Every element of a comma-separated header value ([`split_list`], with a fast path for the
/// usual single element).
fn for_each_element(
    value: &str,
    mut f: impl FnMut(&str) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    if find_b(value, b',').is_none() {
        let v = value.trim();
        return if v.is_empty() { Ok(()) } else { f(v) };
    }
    split_list(value).try_for_each(f)
}

/// A header that must appear once; a repeated line is tolerated only if identical.
fn single(
    seen: &mut Option<usize>,
    label: &'static str,
    value: &str,
    headers: &Headers,
    index: usize,
) -> Result<(), ParseError> {
    match *seen {
        Some(first) if headers.0.get(first).is_some_and(|h| h.value != value) => {
            Err(bad(label, "appears more than once"))
        }
        Some(_) => Ok(()),
        None => {
            *seen = Some(index);
            Ok(())
        }
    }
}

/// From / To: one name-addr or addr-spec, once.
fn single_name_addr(
    seen: &mut Option<usize>,
    label: &'static str,
    value: &str,
    headers: &Headers,
    index: usize,
) -> Result<(), ParseError> {
    if name_addr_ref(value).is_none() {
        return Err(if split_list(value).nth(1).is_some() {
            bad(label, "holds more than one address")
        } else {
            bad(label, "malformed name-addr")
        });
    }
    single(seen, label, value, headers, index)
}

/// Loose check of a top Via for [`salvage_request`]: `SIP/<any version>/<transport> <host>`,
/// parameters ignored, so that 400 and 505 can still be answered.
fn via_is_answerable(v: &str) -> bool {
    let mut parts = v.splitn(3, '/');
    let (Some(proto), Some(version), Some(rest)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let rest = rest.trim_start_matches([' ', '\t']);
    let Some(ws) = rest.find([' ', '\t']) else {
        return false;
    };
    let host = rest[ws..]
        .trim_start_matches([' ', '\t'])
        .split([';', ' ', '\t', ':'])
        .next()
        .unwrap_or_default();
    proto.trim().eq_ignore_ascii_case("SIP")
        && !version.trim().is_empty()
        && is_token(&rest[..ws])
        && !host.is_empty()
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'[' | b']'))
}

/// Best-effort view of a request that failed to parse, with what a 400 (or 505) needs: every
/// Via (the top one must name a protocol, transport and host) and CSeq, plus From, To and
/// Call-ID when present (RFC 3261 §8.2, RFC 4475 §3.1.2 and §3.3.1 expect 400 for malformed
/// requests, 505 for an unknown version). `None` when the input is not recognisably a request,
/// is an ACK (never answered), or lacks Via or CSeq.
pub fn salvage_request(input: &[u8]) -> Option<Request> {
    const MAX_LINES: usize = 256;
    let mut start = 0;
    while input.get(start..start + 2) == Some(b"\r\n") {
        start += 2;
    }
    let input = input.get(start..)?;
    // Only the header section (or the first 64 KiB without one) is looked at.
    let mut end = input.len().min(65_536);
    let mut i = 0;
    while let Some(off) = find_byte(b'\n', input.get(i..end).unwrap_or_default()) {
        let lf = i + off;
        if input.get(lf + 1..lf + 3) == Some(b"\r\n") && lf > 0 && input[lf - 1] == b'\r' {
            end = lf - 1;
            break;
        }
        i = lf + 1;
    }
    let head = input.get(..end)?;
    let mut lines = head
        .split(|&c| c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = std::str::from_utf8(lines.next()?).ok()?;
    // Tolerant of the start-line faults RFC 4475 exercises (extra SP, LWS in the URI).
    let mut parts = first.split_ascii_whitespace();
    let (method, uri) = (parts.next()?, parts.next()?);
    let version = parts.next_back()?;
    if !is_token(method) || method == "ACK" || !has_sip_prefix(version) {
        return None;
    }
    let mut headers = Headers::with_capacity(8);
    let mut current: Option<(HeaderName, String)> = None;
    let mut flush = |current: &mut Option<(HeaderName, String)>| {
        if let Some((name, value)) = current.take()
            && !value.bytes().any(is_ctl)
        {
            headers.push(name, value);
        }
    };
    for line in lines.take(MAX_LINES) {
        let Ok(line) = std::str::from_utf8(line) else {
            flush(&mut current);
            continue;
        };
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.as_mut() {
                let cont = line.trim();
                if !cont.is_empty() && value.len() < 8192 {
                    value.push(' ');
                    value.push_str(cont);
                }
            }
            continue;
        }
        flush(&mut current);
        if let Some((n, v)) = line.split_once(':') {
            let name = classify(n.trim());
            if matches!(
                name,
                HeaderName::Via
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
                    | HeaderName::CSeq
            ) {
                current = Some((name, v.trim().to_owned()));
            }
        }
    }
    flush(&mut current);
    let top_via = headers.list(&HeaderName::Via).next()?;
    if !via_is_answerable(top_via) || headers.get(&HeaderName::CSeq).is_none() {
        return None;
    }
    Some(Request {
        method: Method::from_token(method),
        uri: uri.to_owned(),
        headers,
        body: Vec::new(),
    })
}
