//! SIP URIs. The grammar is parsed by `rsip` (kept private to this module); the crate exposes
//! its own [`Uri`] which remembers the exact text so that a URI is re-sent byte for byte (digest
//! `uri=` must equal the Request-URI).

use std::fmt;

use crate::message::Params;

/// Why a URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    #[error("not a sip: or sips: URI: {0:?}")]
    Scheme(String),
    #[error("malformed SIP URI {uri:?}: {reason}")]
    Syntax { uri: String, reason: String },
}

/// A `sip:`/`sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    raw: String,
    /// True for `sips:`.
    pub secure: bool,
    pub user: Option<String>,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
}

impl Uri {
    /// Parse a SIP URI (no surrounding `<>`).
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        let s = s.trim();
        let syntax = |reason: &str| UriError::Syntax {
            uri: s.to_owned(),
            reason: reason.to_owned(),
        };
        let lower = s.get(..5).map(str::to_ascii_lowercase).unwrap_or_default();
        let secure = if lower.starts_with("sips:") {
            true
        } else if lower.starts_with("sip:") {
            false
        } else {
            return Err(UriError::Scheme(s.to_owned()));
        };
        if s.bytes()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control() || c == b'<' || c == b'>')
        {
            return Err(syntax("whitespace or control characters"));
        }
        let (main, _headers) = s.split_once('?').unwrap_or((s, ""));
        let (addr, params) = match main.find(';') {
            Some(i) => main.split_at(i),
            None => (main, ""),
        };
        let params = Params::parse(params).ok_or_else(|| syntax("bad parameters"))?;
        let after_scheme = &addr[if secure { 5 } else { 4 }..];
        let (user_part, host_part) = match after_scheme.rfind('@') {
            Some(i) => (Some(&after_scheme[..i]), &after_scheme[i + 1..]),
            None => (None, after_scheme),
        };
        if host_part.starts_with('[') {
            // rsip 0.4 cannot parse IPv6 references; the host/port grammar is simple enough here.
            let (host, port) = crate::message::split_host_port(host_part)
                .ok_or_else(|| syntax("bad IPv6 reference"))?;
            let ip = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| syntax("bad IPv6 address"))?;
            let user = match user_part {
                Some(u) if u.is_empty() || u.contains(['@', '[', ']']) => {
                    return Err(syntax("bad user part"));
                }
                Some(u) => Some(u.split(':').next().unwrap_or(u).to_owned()),
                None => None,
            };
            return Ok(Uri {
                raw: s.to_owned(),
                secure,
                user,
                host: ip.to_string(),
                port,
                params,
            });
        }
        let (rest, parsed) = rsip::common::uri::Tokenizer::tokenize(addr.as_bytes())
            .map_err(|_| syntax("unparsable"))?;
        if !rest.is_empty() {
            return Err(syntax("trailing characters"));
        }
        let parsed: rsip::Uri = parsed
            .try_into()
            .map_err(|e: rsip::Error| syntax(&e.to_string()))?;
        let host = match &parsed.host_with_port.host {
            rsip::Host::Domain(d) => d.to_string(),
            rsip::Host::IpAddr(ip) => ip.to_string(),
        };
        if host.is_empty() {
            return Err(syntax("empty host"));
        }
        let port = match parsed.host_with_port.port {
            Some(p) => {
                let v: u16 = *p.value();
                Some(v)
            }
            None => None,
        };
        Ok(Uri {
            raw: s.to_owned(),
            secure,
            user: parsed.auth.map(|a| a.user),
            host,
            port,
            params,
        })
    }

    /// Build `sip:[user@]host[:port]` (IPv6 hosts are bracketed).
    pub fn sip(user: Option<&str>, host: &str, port: Option<u16>) -> Uri {
        let mut raw = String::from("sip:");
        if let Some(u) = user {
            raw.push_str(u);
            raw.push('@');
        }
        if host.contains(':') {
            raw.push('[');
            raw.push_str(host);
            raw.push(']');
        } else {
            raw.push_str(host);
        }
        if let Some(p) = port {
            raw.push(':');
            raw.push_str(&p.to_string());
        }
        Uri {
            raw,
            secure: false,
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
            params: Params::default(),
        }
    }

    /// Append a URI parameter.
    pub fn with_param(mut self, name: &str, value: Option<&str>) -> Uri {
        self.raw.push(';');
        self.raw.push_str(name);
        if let Some(v) = value {
            self.raw.push('=');
            self.raw.push_str(v);
        }
        self.params
            .0
            .push((name.to_owned(), value.map(str::to_owned)));
        self
    }

    /// The exact text.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The `transport` parameter, lower-cased.
    pub fn transport(&self) -> Option<String> {
        self.params.get("transport").map(str::to_ascii_lowercase)
    }

    /// Loose routing flag (`;lr`).
    pub fn is_loose_route(&self) -> bool {
        self.params.contains("lr")
    }

    /// Port, defaulting to 5060 (5061 for sips).
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(if self.secure { 5061 } else { 5060 })
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trunk_uris_and_keeps_text() {
        let u = Uri::parse("sip:+380441234567@127.0.0.1:5060;transport=tcp").unwrap();
        assert_eq!(u.user.as_deref(), Some("+380441234567"));
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, Some(5060));
        assert_eq!(u.transport().as_deref(), Some("tcp"));
        assert_eq!(
            u.to_string(),
            "sip:+380441234567@127.0.0.1:5060;transport=tcp"
        );

        let u = Uri::parse("sip:pbx.example.com").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("pbx.example.com", None));
        assert_eq!(u.port_or_default(), 5060);

        let u = Uri::parse("sip:alice@[::1]:5070;lr").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, Some(5070));
        assert!(u.is_loose_route());
    }

    #[test]
    fn refuses_garbage_without_panicking() {
        for bad in [
            "",
            "sip:",
            "http://x",
            "sip:a b",
            "sip:host:99999",
            "sip:host;=x",
            "sip:<x>",
            "sip:@",
            "sip:\u{0}",
            "sips:[::1",
            "sip:a@b:c",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn builds_uris() {
        let u = Uri::sip(Some("100"), "::1", Some(5060)).with_param("transport", Some("tcp"));
        assert_eq!(u.as_str(), "sip:100@[::1]:5060;transport=tcp");
        assert_eq!(Uri::parse(u.as_str()).unwrap().host, "::1");
    }
}
