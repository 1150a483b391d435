//! Typed views of the header values the user agent acts on: Via, CSeq, name-addr (From, To,
//! Contact, Route, Record-Route) and generic `;name=value` parameters.

use std::fmt;

use super::Method;

/// RFC 3261 `token` characters.
pub(crate) fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
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

/// `;name[=value]` parameters, in order. Names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, Option<String>)>);

impl Params {
    /// Parse `;a=b;c;d="x y"`. Leading `;` optional. `None` on bad syntax.
    pub fn parse(s: &str) -> Option<Params> {
        let mut out = Vec::new();
        let s = s.trim();
        if s.is_empty() {
            return Some(Params(out));
        }
        let s = s.strip_prefix(';').unwrap_or(s);
        for part in split_params(s)? {
            let part = part.trim();
            let (name, value) = match part.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (part, None),
            };
            if !is_token(name) {
                return None;
            }
            let value = match value {
                Some(v) if v.starts_with('"') => {
                    if v.len() < 2 || !v.ends_with('"') {
                        return None;
                    }
                    Some(v.to_owned())
                }
                Some(v) => {
                    if v.is_empty()
                        || !v
                            .bytes()
                            .all(|c| is_token_char(c) || matches!(c, b':' | b'[' | b']'))
                    {
                        return None;
                    }
                    Some(v.to_owned())
                }
                None => None,
            };
            out.push((name.to_owned(), value));
        }
        Some(Params(out))
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

/// Split on `;` outside quoted strings. `None` if a quote is unterminated.
fn split_params(s: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    let mut in_q = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_q => i += 1,
            b'"' => in_q = !in_q,
            b';' if !in_q => {
                out.push(s.get(start..i)?);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if in_q {
        return None;
    }
    out.push(s.get(start..)?);
    Some(out)
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
    /// quoted display names, non-token display names, whitespace inside an addr-spec, an addr-spec
    /// carrying `?headers` or `,` outside `<>`.
    pub fn parse(s: &str) -> Option<NameAddr> {
        let s = s.trim();
        if s == "*" {
            return Some(NameAddr::new("*"));
        }
        let (display, rest) = if let Some(after) = s.strip_prefix('"') {
            let bytes = after.as_bytes();
            let mut i = 0;
            let mut name = String::new();
            loop {
                match bytes.get(i) {
                    None => return None,
                    Some(b'\\') => {
                        let next = after.get(i + 1..)?.chars().next()?;
                        name.push(next);
                        i += 1 + next.len_utf8();
                    }
                    Some(b'"') => break,
                    Some(_) => {
                        let ch = after.get(i..)?.chars().next()?;
                        name.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            let rest = after.get(i + 1..)?.trim_start();
            if !rest.starts_with('<') {
                return None;
            }
            (Some(name), rest)
        } else if let Some(lt) = s.find('<') {
            let name = s.get(..lt)?.trim();
            if name.is_empty() {
                (None, s.get(lt..)?)
            } else {
                if !name.split_ascii_whitespace().all(is_token) {
                    return None;
                }
                (Some(name.to_owned()), s.get(lt..)?)
            }
        } else {
            (None, s)
        };
        if let Some(inner) = rest.strip_prefix('<') {
            let gt = inner.find('>')?;
            let uri = inner.get(..gt)?.trim();
            if !valid_uri_text(uri) {
                return None;
            }
            let params = Params::parse(inner.get(gt + 1..)?)?;
            Some(NameAddr {
                display,
                uri: uri.to_owned(),
                params,
            })
        } else {
            let (uri, params) = match rest.find(';') {
                Some(i) => (rest.get(..i)?, rest.get(i..)?),
                None => (rest, ""),
            };
            if !valid_uri_text(uri) || uri.contains(['?', ',']) {
                return None;
            }
            Some(NameAddr {
                display,
                uri: uri.to_owned(),
                params: Params::parse(params)?,
            })
        }
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.get("tag")
    }
}

fn valid_uri_text(uri: &str) -> bool {
    match uri.split_once(':') {
        Some((scheme, rest)) => {
            !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'-' || c == b'.')
                && !rest.is_empty()
                && !uri
                    .bytes()
                    .any(|c| c.is_ascii_whitespace() || c == b'<' || c == b'>' || c == b'"')
        }
        None => false,
    }
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
        let mut parts = s.splitn(3, '/');
        let proto = parts.next()?.trim();
        let version = parts.next()?.trim();
        let rest = parts.next()?.trim_start();
        if !proto.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return None;
        }
        let ws = rest.find(|c: char| c.is_ascii_whitespace())?;
        let transport = rest.get(..ws)?;
        if !is_token(transport) {
            return None;
        }
        let rest = rest.get(ws..)?.trim_start();
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (rest.get(..i)?.trim(), rest.get(i..)?),
            None => (rest.trim(), ""),
        };
        let (host, port) = split_host_port(sent_by)?;
        Some(Via {
            transport: transport.to_ascii_uppercase(),
            host: host.to_owned(),
            port,
            params: Params::parse(params)?,
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
        let end = s.find(']')?;
        let host = s.get(..=end)?;
        let rest = s.get(end + 1..)?.trim();
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p.trim()),
            None if rest.is_empty() => None,
            None => return None,
        };
        (host, port)
    } else {
        match s.split_once(':') {
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
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((host, port))
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
