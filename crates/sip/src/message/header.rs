//! Typed views of the header values the user agent acts on: Via, CSeq, name-addr (From, To,
//! Contact, Route, Record-Route) and generic `;name=value` parameters.
//!
//! Each grammar is implemented once, as a borrowing scanner (`*_ref` functions) that validates
//! without allocating; the parser uses those directly, and the owned types ([`Via`],
//! [`NameAddr`], [`Params`], [`CSeq`]) are built from the same scanners.

use std::fmt;

use super::Method;

/// RFC 3261 `token` characters, as a lookup table.
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        c += 1;
    }
    t
};

/// RFC 3261 `token` characters.
#[inline]
pub(crate) fn is_token_char(c: u8) -> bool {
    TOKEN[usize::from(c)]
}

#[inline]
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// Trim SP / HTAB, the only whitespace the SIP grammar knows once lines are unfolded.
#[inline]
pub(crate) fn trim_wsp(s: &str) -> &str {
    trim_wsp_end(trim_wsp_start(s))
}

#[inline]
pub(crate) fn trim_wsp_start(s: &str) -> &str {
    let n = s.bytes().take_while(|c| matches!(c, b' ' | b'\t')).count();
    s.get(n..).unwrap_or_default()
}

/// Byte position of an ASCII byte; header values are short, so a plain scan beats `memchr`.
#[inline]
pub(crate) fn find_b(s: &str, b: u8) -> Option<usize> {
    s.bytes().position(|c| c == b)
}

/// Split at the first occurrence of an ASCII byte.
#[inline]
pub(crate) fn split_b(s: &str, b: u8) -> Option<(&str, &str)> {
    let i = find_b(s, b)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

#[inline]
pub(crate) fn trim_wsp_end(s: &str) -> &str {
    let n = s
        .bytes()
        .rev()
        .take_while(|c| matches!(c, b' ' | b'\t'))
        .count();
    s.get(..s.len() - n).unwrap_or_default()
}

/// Split a header value on the commas that separate list elements, ignoring commas inside
/// quoted strings and `<...>`. Elements are trimmed; empty ones are skipped.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let bytes = value.as_bytes();
    let mut start = 0;
    let mut pos = 0;
    let mut in_quotes = false;
    let mut in_angle = false;
    std::iter::from_fn(move || {
        while pos <= bytes.len() {
            let c = bytes.get(pos).copied();
            pos += 1;
            match c {
                Some(b'\\') if in_quotes => pos += 1,
                Some(b'"') if !in_angle => in_quotes = !in_quotes,
                Some(b'<') if !in_quotes => in_angle = true,
                Some(b'>') if !in_quotes => in_angle = false,
                Some(b',') if !in_quotes && !in_angle => {
                    let item = value.get(start..pos - 1).unwrap_or_default().trim();
                    start = pos;
                    if !item.is_empty() {
                        return Some(item);
                    }
                }
                None => {
                    let item = value.get(start..).unwrap_or_default().trim();
                    start = bytes.len();
                    if !item.is_empty() {
                        return Some(item);
                    }
                }
                _ => {}
            }
        }
        None
    })
}

/// Length of the quoted string at the start of `s` (which must start with `"`), closing quote
/// included. `None` if it is not terminated.
fn quoted_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Validate one `name[=value]` parameter (SWS allowed around `=`); returns name and value.
fn param_ref(part: &str) -> Option<(&str, Option<&str>)> {
    let part = trim_wsp(part);
    let (name, value) = match split_b(part, b'=') {
        Some((n, v)) => (trim_wsp(n), Some(trim_wsp(v))),
        None => (part, None),
    };
    if !is_token(name) {
        return None;
    }
    if let Some(v) = value {
        let ok = if v.starts_with('"') {
            quoted_len(v.as_bytes()) == Some(v.len())
        } else {
            !v.is_empty()
                && v.bytes()
                    .all(|c| is_token_char(c) || matches!(c, b':' | b'[' | b']'))
        };
        if !ok {
            return None;
        }
    }
    Some((name, value))
}

/// Walk `;name[=value]` parameters (leading `;` optional, SWS around `;` and `=`), calling `f`
/// for each. `false` on bad syntax (empty parameter, non-token name, bad value, open quote).
pub(crate) fn params_ref<'a>(s: &'a str, mut f: impl FnMut(&'a str, Option<&'a str>)) -> bool {
    let s = trim_wsp(s);
    if s.is_empty() {
        return true;
    }
    let s = s.strip_prefix(';').unwrap_or(s);
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    let mut in_q = false;
    loop {
        if i >= bytes.len() {
            if in_q {
                return false;
            }
            let Some((n, v)) = s.get(start..).and_then(param_ref) else {
                return false;
            };
            f(n, v);
            return true;
        }
        match bytes[i] {
            b'\\' if in_q => i += 1,
            b'"' => in_q = !in_q,
            b';' if !in_q => {
                let Some((n, v)) = s.get(start..i).and_then(param_ref) else {
                    return false;
                };
                f(n, v);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
}

/// `;name[=value]` parameters, in order. Names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, Option<String>)>);

impl Params {
    /// Parse `;a=b;c;d="x y"`. Leading `;` optional. `None` on bad syntax.
    pub fn parse(s: &str) -> Option<Params> {
        let mut out = Vec::new();
        params_ref(s, |n, v| out.push((n.to_owned(), v.map(str::to_owned)))).then_some(Params(out))
    }

    /// The value of a parameter (`Some("")` for a flag parameter without value).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Set or replace a parameter.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_owned);
        if let Some(slot) = self
            .0
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            slot.1 = value;
        } else {
            self.0.push((name.to_owned(), value));
        }
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, v) in &self.0 {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}

/// The display name of a name-addr, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DisplayRef<'a> {
    /// Between the quotes, escapes not yet resolved.
    Quoted(&'a str),
    /// One or more tokens separated by LWS.
    Tokens(&'a str),
}

/// A validated name-addr / addr-spec, borrowing the header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NameAddrRef<'a> {
    pub display: Option<DisplayRef<'a>>,
    pub uri: &'a str,
    /// The header parameters, validated (empty or starting with `;`).
    pub params: &'a str,
}

/// Parse one name-addr or addr-spec (not a list) without allocating. `None` on the syntax
/// errors RFC 4475 calls out: unterminated quoted display names, non-token display names, LWS
/// inside `<...>` or inside an addr-spec, an addr-spec carrying `?headers` or `,`, anything but
/// parameters after `>`.
pub(crate) fn name_addr_ref(s: &str) -> Option<NameAddrRef<'_>> {
    let s = trim_wsp(s);
    if s == "*" {
        return Some(NameAddrRef {
            display: None,
            uri: "*",
            params: "",
        });
    }
    let (display, rest) = if s.starts_with('"') {
        let end = quoted_len(s.as_bytes())?;
        let rest = trim_wsp_start(s.get(end..)?);
        if !rest.starts_with('<') {
            return None;
        }
        (Some(DisplayRef::Quoted(s.get(1..end - 1)?)), rest)
    } else if let Some(lt) = find_b(s, b'<') {
        let name = trim_wsp(s.get(..lt)?);
        let display = if name.is_empty() {
            None
        } else {
            if !name.split([' ', '\t']).all(|t| t.is_empty() || is_token(t)) {
                return None;
            }
            Some(DisplayRef::Tokens(name))
        };
        (display, s.get(lt..)?)
    } else {
        (None, s)
    };
    if let Some(inner) = rest.strip_prefix('<') {
        let gt = find_b(inner, b'>')?;
        let uri = inner.get(..gt)?;
        let params = trim_wsp(inner.get(gt + 1..)?);
        if !valid_uri_text(uri) || !(params.is_empty() || params.starts_with(';')) {
            return None;
        }
        if !params_ref(params, |_, _| {}) {
            return None;
        }
        Some(NameAddrRef {
            display,
            uri,
            params,
        })
    } else {
        let (uri, params) = match find_b(rest, b';') {
            Some(i) => (trim_wsp_end(rest.get(..i)?), rest.get(i..)?),
            None => (rest, ""),
        };
        if !valid_uri_text(uri) || uri.contains(['?', ',']) || !params_ref(params, |_, _| {}) {
            return None;
        }
        Some(NameAddrRef {
            display,
            uri,
            params,
        })
    }
}

/// `name-addr` or `addr-spec` with header parameters: From, To, Contact, Route, Record-Route,
/// Refer-To, P-Asserted-Identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name without quotes (unescaped).
    pub display: Option<String>,
    /// The URI exactly as written between `<` and `>` (or the bare addr-spec).
    pub uri: String,
    /// Header parameters (after `>`, or after the addr-spec).
    pub params: Params,
}

impl NameAddr {
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            display: None,
            uri: uri.into(),
            params: Params::default(),
        }
    }

    /// Parse one element (not a list). `None` on syntax errors RFC 4475 calls out: unterminated
    /// quoted display names, non-token display names, whitespace inside `<>` or an addr-spec, an
    /// addr-spec carrying `?headers` or `,` outside `<>`.
    pub fn parse(s: &str) -> Option<NameAddr> {
        let r = name_addr_ref(s)?;
        let display = r.display.map(|d| match d {
            DisplayRef::Quoted(q) => unescape_quoted(q),
            DisplayRef::Tokens(t) => t.to_owned(),
        });
        Some(NameAddr {
            display,
            uri: r.uri.to_owned(),
            params: Params::parse(r.params)?,
        })
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.get("tag")
    }
}

/// Resolve `\x` quoted-pairs.
fn unescape_quoted(q: &str) -> String {
    let mut out = String::with_capacity(q.len());
    let mut escaped = false;
    for c in q.chars() {
        if c == '\\' && !escaped {
            escaped = true;
        } else {
            out.push(c);
            escaped = false;
        }
    }
    out
}

/// `scheme:rest` with no LWS, controls, `<`, `>` or `"` (one pass).
fn valid_uri_text(uri: &str) -> bool {
    let b = uri.as_bytes();
    let Some(colon) = b.iter().position(|&c| c == b':') else {
        return false;
    };
    colon > 0
        && colon + 1 < b.len()
        && b[0].is_ascii_alphabetic()
        && b[..colon]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        && b[colon + 1..]
            .iter()
            .all(|&c| c > b' ' && c != 0x7f && !matches!(c, b'<' | b'>' | b'"'))
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            f.write_str("\"")?;
            for c in d.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\" ")?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// A validated Via element, borrowing the header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ViaRef<'a> {
    pub transport: &'a str,
    pub host: &'a str,
    pub port: Option<u16>,
    /// Validated parameters (empty or starting with `;`).
    pub params: &'a str,
}

/// Parse one `SIP/2.0/transport sent-by *(;via-params)` element (LWS allowed around `/` and
/// `:`) without allocating.
pub(crate) fn via_ref(s: &str) -> Option<ViaRef<'_>> {
    let (proto, s) = split_b(s, b'/')?;
    let (version, rest) = split_b(s, b'/')?;
    let (proto, version, rest) = (trim_wsp(proto), trim_wsp(version), trim_wsp_start(rest));
    if !proto.eq_ignore_ascii_case("SIP") || version != "2.0" {
        return None;
    }
    let ws = rest.bytes().position(|c| c == b' ' || c == b'\t')?;
    let transport = rest.get(..ws)?;
    if !is_token(transport) {
        return None;
    }
    let rest = trim_wsp_start(rest.get(ws..)?);
    let (sent_by, params) = match find_b(rest, b';') {
        Some(i) => (rest.get(..i)?, rest.get(i..)?),
        None => (rest, ""),
    };
    let (host, port) = split_host_port(sent_by)?;
    if !params_ref(params, |_, _| {}) {
        return None;
    }
    Some(ViaRef {
        transport,
        host,
        port,
        params,
    })
}

/// One Via element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Upper-cased transport (`UDP`, `TCP`, `TLS`, ...).
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    /// Parse `SIP/2.0/UDP host[:port];params` (LWS allowed around `/` and `:`).
    pub fn parse(s: &str) -> Option<Via> {
        let r = via_ref(s)?;
        Some(Via {
            transport: r.transport.to_ascii_uppercase(),
            host: r.host.to_owned(),
            port: r.port,
            params: Params::parse(r.params)?,
        })
    }

    pub fn branch(&self) -> Option<&str> {
        self.params.get("branch")
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// Split `host[:port]`, `[v6]:port`; whitespace around `:` tolerated.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let (host, port) = if s.starts_with('[') {
        let end = find_b(s, b']')?;
        let host = s.get(..=end)?;
        let rest = s.get(end + 1..)?.trim();
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p.trim()),
            None if rest.is_empty() => None,
            None => return None,
        };
        (host, port)
    } else {
        match split_b(s, b':') {
            Some((h, p)) => (h.trim(), Some(p.trim())),
            None => (s, None),
        }
    };
    if host.is_empty()
        || !host.bytes().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'[' | b']' | b':')
        })
    {
        return None;
    }
    let port = match port {
        Some(p) if !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok()?)
        }
        Some(_) => return None,
        None => None,
    };
    Some((host, port))
}

/// Parse `seq method` without allocating: `seq` must fit in 31 bits (RFC 3261 §8.1.1.5) and
/// the method must be a token.
pub(crate) fn cseq_ref(s: &str) -> Option<(u32, &str)> {
    let mut it = s.split_ascii_whitespace();
    let seq = it.next()?;
    let method = it.next()?;
    if it.next().is_some() || !seq.bytes().all(|c| c.is_ascii_digit()) || !is_token(method) {
        return None;
    }
    let seq: u32 = seq.parse().ok()?;
    if seq > 0x7FFF_FFFF {
        return None;
    }
    Some((seq, method))
}

/// The CSeq header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    /// `seq` must fit in 31 bits (RFC 3261 §8.1.1.5).
    pub fn parse(s: &str) -> Option<CSeq> {
        let (seq, method) = cseq_ref(s)?;
        Some(CSeq {
            seq,
            method: Method::from_token(method),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}
