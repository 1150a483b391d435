//! One-pass SIP message parser with bounded work and memory. Never panics on any input.

use super::header::{CSeq, NameAddr, Via, is_token, split_list};
use super::{Header, HeaderName, Headers, Message, Method, Request, Response};

/// Bounds on what the parser accepts from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message in bytes.
    pub max_message_bytes: usize,
    /// Most header lines (after unfolding).
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
/// still be answered with 400 (see [`crate::message::Request`] and
/// [`ParseError::is_request`]); anything else is dropped.
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
    let head_end = find(input, b"\r\n\r\n").ok_or(ParseError::NoHeaderEnd)?;
    let head = std::str::from_utf8(&input[..head_end]).map_err(|_| ParseError::NotUtf8)?;
    let body = &input[head_end + 4..];

    let (first, rest) = match head.find("\r\n") {
        Some(i) => (&head[..i], &head[i + 2..]),
        None => (head, ""),
    };
    let start_line = parse_start_line(first)?;
    let headers = parse_headers(rest, limits)?;
    let mut headers = headers;
    let body = check_headers(&headers, &start_line, body)?;
    // Content-Length is derived from the body on output; keeping it would let the two disagree.
    headers.remove(&HeaderName::ContentLength);
    Ok(match start_line {
        StartLine::Request { method, uri } => Message::Request(Request {
            method,
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

enum StartLine<'a> {
    Request { method: Method, uri: &'a str },
    Response { status: u16, reason: &'a str },
}

fn parse_start_line(line: &str) -> Result<StartLine<'_>, ParseError> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        let (version, rest) = rest
            .split_once(' ')
            .ok_or(ParseError::BadStartLine("status line needs a code"))?;
        if version != "2.0" {
            return Err(ParseError::UnsupportedVersion(format!("SIP/{version}")));
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
        if reason.bytes().any(|c| c == b'\r' || c == b'\n') {
            return Err(ParseError::BadStartLine("control character in reason"));
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
    if scheme.is_empty()
        || rest.is_empty()
        || !scheme
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
    {
        return Err(ParseError::BadStartLine("Request-URI scheme"));
    }
    if (scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips"))
        && uri.contains('?')
    {
        return Err(ParseError::BadStartLine(
            "SIP Request-URI must not carry headers",
        ));
    }
    if !version.starts_with("SIP/") {
        return Err(ParseError::BadStartLine("version must be SIP/x.y"));
    }
    if version != "SIP/2.0" {
        return Err(ParseError::UnsupportedVersion(version.to_owned()));
    }
    Ok(StartLine::Request {
        method: Method::from_token(method),
        uri,
    })
}

fn parse_headers(block: &str, limits: &Limits) -> Result<Headers, ParseError> {
    let mut headers = Headers::with_capacity(16);
    if block.is_empty() {
        return Ok(headers);
    }
    let mut current: Option<(usize, &str, String)> = None;
    for (idx, line) in block.split("\r\n").enumerate() {
        let lineno = idx + 2;
        if line.starts_with([' ', '\t']) {
            // Folded continuation (RFC 3261 §7.3.1): join with one space.
            match current.as_mut() {
                Some((_, _, value)) => {
                    let cont = line.trim();
                    if !cont.is_empty() {
                        if !value.is_empty() {
                            value.push(' ');
                        }
                        value.push_str(cont);
                    }
                    continue;
                }
                None => {
                    return Err(ParseError::BadHeaderLine {
                        line: lineno,
                        reason: "continuation line before any header",
                    });
                }
            }
        }
        if let Some((_, name, value)) = current.take() {
            push_header(&mut headers, name, value, limits)?;
        }
        let Some(colon) = line.find(':') else {
            return Err(ParseError::BadHeaderLine {
                line: lineno,
                reason: "no colon",
            });
        };
        let name = line[..colon].trim_end_matches([' ', '\t']);
        if !is_token(name) {
            return Err(ParseError::BadHeaderLine {
                line: lineno,
                reason: "header name is not a token",
            });
        }
        if line.bytes().any(|c| c == b'\r' || c == b'\n' || c == 0) {
            return Err(ParseError::BadHeaderLine {
                line: lineno,
                reason: "control character",
            });
        }
        current = Some((lineno, name, line[colon + 1..].trim().to_owned()));
    }
    if let Some((_, name, value)) = current {
        push_header(&mut headers, name, value, limits)?;
    }
    Ok(headers)
}

fn push_header(
    headers: &mut Headers,
    name: &str,
    value: String,
    limits: &Limits,
) -> Result<(), ParseError> {
    if headers.len() >= limits.max_headers {
        return Err(ParseError::TooManyHeaders {
            limit: limits.max_headers,
        });
    }
    headers.0.push(Header {
        name: HeaderName::from_wire(name),
        value,
    });
    Ok(())
}

/// Check the headers the transaction and dialog layers rely on; returns the body cut to
/// Content-Length.
fn check_headers<'b>(
    headers: &Headers,
    start: &StartLine<'_>,
    body: &'b [u8],
) -> Result<&'b [u8], ParseError> {
    let mut n_via = 0;
    for v in headers.list(&HeaderName::Via) {
        n_via += 1;
        Via::parse(v).ok_or(ParseError::BadHeader {
            name: "Via",
            reason: "malformed via-parm",
        })?;
    }
    if n_via == 0 {
        return Err(ParseError::MissingHeader("Via"));
    }
    single(headers, HeaderName::From, "From")?;
    single(headers, HeaderName::To, "To")?;
    single(headers, HeaderName::CallId, "Call-ID")?;
    single(headers, HeaderName::CSeq, "CSeq")?;
    for (name, label) in [(HeaderName::From, "From"), (HeaderName::To, "To")] {
        let v = headers.get(&name).ok_or(ParseError::MissingHeader(label))?;
        NameAddr::parse(v).ok_or(ParseError::BadHeader {
            name: label,
            reason: "malformed name-addr",
        })?;
    }
    let call_id = headers
        .call_id()
        .ok_or(ParseError::MissingHeader("Call-ID"))?;
    if call_id.is_empty() || call_id.bytes().any(|c| c.is_ascii_whitespace()) {
        return Err(ParseError::BadHeader {
            name: "Call-ID",
            reason: "empty or contains whitespace",
        });
    }
    let cseq = headers
        .get(&HeaderName::CSeq)
        .ok_or(ParseError::MissingHeader("CSeq"))?;
    let cseq = CSeq::parse(cseq).ok_or(ParseError::BadHeader {
        name: "CSeq",
        reason: "must be a 31-bit number and a method",
    })?;
    if let StartLine::Request { method, .. } = start
        && *method != cseq.method
    {
        return Err(ParseError::CSeqMismatch {
            cseq: cseq.method.to_string(),
            method: method.to_string(),
        });
    }
    for c in headers.list(&HeaderName::Contact) {
        NameAddr::parse(c).ok_or(ParseError::BadHeader {
            name: "Contact",
            reason: "malformed contact",
        })?;
    }
    if let Some(v) = headers.get(&HeaderName::MaxForwards) {
        match v.parse::<u32>() {
            Ok(n) if n <= 255 && v.bytes().all(|c| c.is_ascii_digit()) => {}
            _ => {
                return Err(ParseError::BadHeader {
                    name: "Max-Forwards",
                    reason: "must be 0..=255",
                });
            }
        }
    }
    if let Some(v) = headers.get(&HeaderName::Expires) {
        if !v.bytes().all(|c| c.is_ascii_digit()) || v.parse::<u32>().is_err() {
            return Err(ParseError::BadHeader {
                name: "Expires",
                reason: "must be a 32-bit number of seconds",
            });
        }
    }
    if let Some(v) = headers.get(&HeaderName::Date)
        && !v.trim_end().ends_with("GMT")
    {
        return Err(ParseError::BadHeader {
            name: "Date",
            reason: "time zone must be GMT",
        });
    }
    let mut declared: Option<usize> = None;
    for v in headers.get_all(&HeaderName::ContentLength) {
        let n = if !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()) {
            v.parse::<usize>().ok()
        } else {
            None
        }
        .ok_or(ParseError::BadHeader {
            name: "Content-Length",
            reason: "must be a non-negative number",
        })?;
        if declared.is_some_and(|d| d != n) {
            return Err(ParseError::BadHeader {
                name: "Content-Length",
                reason: "conflicting values",
            });
        }
        declared = Some(n);
    }
    match declared {
        Some(n) if n > body.len() => Err(ParseError::BodyTruncated {
            declared: n,
            available: body.len(),
        }),
        Some(n) => Ok(&body[..n]),
        None => Ok(body),
    }
}

fn single(headers: &Headers, name: HeaderName, label: &'static str) -> Result<(), ParseError> {
    let mut it = headers.get_all(&name);
    let first = it.next().ok_or(ParseError::MissingHeader(label))?;
    if it.any(|other| other != first) {
        return Err(ParseError::BadHeader {
            name: label,
            reason: "appears more than once",
        });
    }
    if matches!(name, HeaderName::From | HeaderName::To) && split_list(first).count() > 1 {
        return Err(ParseError::BadHeader {
            name: label,
            reason: "holds more than one address",
        });
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Best-effort view of a request that failed to parse, with enough headers (Via, From, To,
/// Call-ID, CSeq) to send a 400 back (RFC 3261 §8.2 / RFC 4475 expects 400 for most malformed
/// requests). `None` when the input is not recognisably a request.
pub fn salvage_request(input: &[u8]) -> Option<Request> {
    let head_end = find(input, b"\r\n\r\n").unwrap_or(input.len().min(8192));
    let head = std::str::from_utf8(input.get(..head_end)?).ok()?;
    let mut lines = head.split("\r\n");
    let first = lines.next()?;
    let mut parts = first.split_ascii_whitespace();
    let method = parts.next()?;
    let uri = parts.next()?;
    if !is_token(method) || method.starts_with("SIP/") || Method::from_token(method) == Method::Ack
    {
        return None;
    }
    let mut headers = Headers::with_capacity(8);
    for line in lines.take(128) {
        if let Some((n, v)) = line.split_once(':') {
            let name = HeaderName::from_wire(n.trim());
            if matches!(
                name,
                HeaderName::Via
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
                    | HeaderName::CSeq
            ) {
                headers.push(name, v.trim());
            }
        }
    }
    for required in [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        headers.get(&required)?;
    }
    headers.top_via()?;
    Some(Request {
        method: Method::from_token(method),
        uri: uri.to_owned(),
        headers,
        body: Vec::new(),
    })
}
