//! HTTP Digest authentication for the user-agent client side (RFC 3261 §22,
//! RFC 2617, RFC 7616, RFC 8760): parsing `WWW-Authenticate` /
//! `Proxy-Authenticate` challenges and building `Authorization` /
//! `Proxy-Authorization` answers, with per-nonce nonce-count state.
//!
//! Sans-IO and deterministic: the caller supplies the client nonce.

use std::fmt;

use crate::message::{HeaderName, Request, Response};
use crate::rng::IdGen;

use md5::Md5;
use sha2::{Digest, Sha256};

/// Upper bound on the length of a challenge header value we agree to parse.
pub const MAX_CHALLENGE_LEN: usize = 8 * 1024;

/// How many characters of peer-supplied text an error message may quote.
const ERROR_QUOTE_CHARS: usize = 64;

/// Which challenge header it came from; decides the header name of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// `WWW-Authenticate` (401), answered with `Authorization`.
    Www,
    /// `Proxy-Authenticate` (407), answered with `Proxy-Authorization`.
    Proxy,
}

impl ChallengeKind {
    /// Name of the header that carries the answer to this kind of challenge.
    #[must_use]
    pub fn answer_header_name(self) -> &'static str {
        match self {
            ChallengeKind::Www => "Authorization",
            ChallengeKind::Proxy => "Proxy-Authorization",
        }
    }
}

/// Digest algorithm offered by the challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `MD5` (also the default when `algorithm` is absent).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
}

impl Algorithm {
    /// The token as written in the `algorithm` parameter.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// Whether this is a `-sess` variant (HA1 mixes in nonce and cnonce).
    #[must_use]
    pub fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    fn from_token(token: &str) -> Option<Algorithm> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(token))
    }

    /// Lowercase hex digest of `parts` joined with `:`.
    fn hash(self, parts: &[&[u8]]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hash_joined::<Md5>(parts),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hash_joined::<Sha256>(parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn hash_joined<D: Digest>(parts: &[&[u8]]) -> String {
    let mut hasher = D::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b":");
        }
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// A parsed Digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Header the challenge came from.
    pub kind: ChallengeKind,
    /// `realm`, unescaped.
    pub realm: String,
    /// `nonce`, unescaped.
    pub nonce: String,
    /// `opaque`, echoed back verbatim when present.
    pub opaque: Option<String>,
    /// `algorithm`; MD5 when absent.
    pub algorithm: Algorithm,
    /// `qop` options as offered, e.g. `["auth", "auth-int"]`; empty when absent.
    pub qop: Vec<String>,
    /// `stale=true` (case-insensitive); anything else is false.
    pub stale: bool,
    /// `domain` (space-separated URI list), unparsed.
    pub domain: Option<String>,
}

/// Why a challenge could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The authentication scheme is not `Digest` (e.g. `Basic`).
    #[error("authentication scheme is not Digest")]
    NotDigest,
    /// A required parameter (`realm`, `nonce`) is absent.
    #[error("missing required parameter `{0}`")]
    MissingParam(&'static str),
    /// The `algorithm` parameter names something we cannot compute.
    #[error("unsupported digest algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// `qop` was offered but contains neither `auth` nor `auth-int`.
    #[error("no supported qop option in `{0}`")]
    UnsupportedQop(String),
    /// The header value does not follow the challenge grammar.
    #[error("malformed challenge: {0}")]
    Malformed(String),
    /// The header value exceeds [`MAX_CHALLENGE_LEN`] bytes.
    #[error("challenge is {len} bytes long, limit is {max}")]
    TooLong {
        /// Length of the rejected value in bytes.
        len: usize,
        /// The limit, [`MAX_CHALLENGE_LEN`].
        max: usize,
    },
}

/// Shortens peer-supplied text before it goes into an error.
fn clip(s: &str) -> String {
    let mut chars = s.chars();
    let mut out: String = chars.by_ref().take(ERROR_QUOTE_CHARS).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

fn malformed(msg: impl Into<String>) -> AuthError {
    AuthError::Malformed(msg.into())
}

/// RFC 3261 `token` characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// Characters accepted in an unquoted parameter value. Deliberately wider than
/// `token` so that sloppy servers sending e.g. an unquoted base64 nonce work.
fn is_unquoted_value_byte(b: u8) -> bool {
    b.is_ascii_graphic() && b != b',' && b != b'"'
}

fn is_lws_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Control characters that may not appear inside a quoted-string.
fn is_forbidden_ctl(c: char) -> bool {
    c.is_ascii_control() && c != '\t'
}

/// Byte cursor over the header value. All slicing goes through `str::get`.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn bump(&mut self) {
        if self.pos < self.s.len() {
            self.pos = self.pos.saturating_add(1);
        }
    }

    fn skip_lws(&mut self) {
        while self.peek().is_some_and(is_lws_byte) {
            self.bump();
        }
    }

    /// Consumes bytes matching `pred`, which must only accept ASCII bytes.
    fn take_while(&mut self, pred: fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(pred) {
            self.bump();
        }
        self.s.get(start..self.pos).unwrap_or("")
    }

    /// Parses a quoted-string starting at the opening `"`, unescaping quoted-pairs.
    fn quoted_string(&mut self) -> Result<String, AuthError> {
        self.bump(); // opening quote
        let rest = self.s.get(self.pos..).unwrap_or("");
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos = self.pos.saturating_add(i).saturating_add(1);
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, e)) if !is_forbidden_ctl(e) => out.push(e),
                    Some(_) => return Err(malformed("control character in quoted-pair")),
                    None => break,
                },
                c if is_forbidden_ctl(c) => {
                    return Err(malformed("control character in quoted string"));
                }
                c => out.push(c),
            }
        }
        Err(malformed("unterminated quoted string"))
    }
}

impl Challenge {
    /// Parse the VALUE of a WWW-Authenticate / Proxy-Authenticate header (e.g.
    /// `Digest realm="x", nonce="y", qop="auth,auth-int", algorithm=SHA-256, stale=TRUE, opaque="z"`).
    ///
    /// Scheme and parameter names are case-insensitive; values may be quoted
    /// strings (with quoted-pair escapes) or tokens; extra LWS, empty list
    /// elements and unknown parameters are tolerated. A known parameter given
    /// twice is rejected. `algorithm` absent means MD5.
    ///
    /// # Errors
    ///
    /// [`AuthError`] describing the first problem found: a non-Digest scheme,
    /// a missing `realm`/`nonce`, an algorithm or qop we cannot answer, a
    /// grammar violation, or a value longer than [`MAX_CHALLENGE_LEN`].
    pub fn parse(kind: ChallengeKind, value: &str) -> Result<Challenge, AuthError> {
        if value.len() > MAX_CHALLENGE_LEN {
            return Err(AuthError::TooLong {
                len: value.len(),
                max: MAX_CHALLENGE_LEN,
            });
        }
        let mut cur = Cursor { s: value, pos: 0 };
        cur.skip_lws();
        let scheme = cur.take_while(is_token_byte);
        if scheme.is_empty() && cur.peek().is_none() {
            return Err(malformed("empty header value"));
        }
        if !scheme.eq_ignore_ascii_case("digest") {
            return Err(AuthError::NotDigest);
        }
        if cur.peek().is_some_and(|b| !is_lws_byte(b)) {
            return Err(malformed("expected whitespace after scheme"));
        }

        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = None;
        let mut qop = None;
        let mut stale = None;
        let mut domain = None;

        loop {
            cur.skip_lws();
            match cur.peek() {
                None => break,
                Some(b',') => {
                    cur.bump();
                    continue;
                }
                Some(_) => {}
            }
            let name = cur.take_while(is_token_byte);
            if name.is_empty() {
                return Err(malformed("expected parameter name"));
            }
            cur.skip_lws();
            if cur.peek() != Some(b'=') {
                return Err(malformed(format!("expected '=' after `{}`", clip(name))));
            }
            cur.bump();
            cur.skip_lws();
            let val = if cur.peek() == Some(b'"') {
                cur.quoted_string()?
            } else {
                let v = cur.take_while(is_unquoted_value_byte);
                if v.is_empty() {
                    return Err(malformed(format!("missing value for `{}`", clip(name))));
                }
                v.to_owned()
            };
            cur.skip_lws();
            match cur.peek() {
                None => {}
                Some(b',') => cur.bump(),
                Some(_) => {
                    return Err(malformed(format!(
                        "expected ',' after value of `{}`",
                        clip(name)
                    )));
                }
            }

            let slot = match name.to_ascii_lowercase().as_str() {
                "realm" => &mut realm,
                "nonce" => &mut nonce,
                "opaque" => &mut opaque,
                "algorithm" => &mut algorithm,
                "qop" => &mut qop,
                "stale" => &mut stale,
                "domain" => &mut domain,
                _ => continue,
            };
            if slot.is_some() {
                return Err(malformed(format!("duplicate parameter `{}`", clip(name))));
            }
            *slot = Some(val);
        }

        let realm = realm.ok_or(AuthError::MissingParam("realm"))?;
        let nonce = nonce.ok_or(AuthError::MissingParam("nonce"))?;
        let algorithm = match algorithm {
            None => Algorithm::Md5,
            Some(a) => Algorithm::from_token(a.trim())
                .ok_or_else(|| AuthError::UnsupportedAlgorithm(clip(&a)))?,
        };
        let qop: Vec<String> = match qop {
            None => Vec::new(),
            Some(q) => {
                let offered: Vec<String> = q
                    .split(',')
                    .map(|o| o.trim_matches([' ', '\t', '\r', '\n']))
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned)
                    .collect();
                if !offered.is_empty() && select_qop(&offered).is_none() {
                    return Err(AuthError::UnsupportedQop(clip(&q)));
                }
                offered
            }
        };
        let stale = stale.is_some_and(|s| s.trim().eq_ignore_ascii_case("true"));

        Ok(Challenge {
            kind,
            realm,
            nonce,
            opaque,
            algorithm,
            qop,
            stale,
            domain,
        })
    }
}

/// The quality of protection we answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qop {
    Auth,
    AuthInt,
}

impl Qop {
    fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }
}

/// Prefers `auth`; `auth-int` only when `auth` is not offered.
fn select_qop(offered: &[String]) -> Option<Qop> {
    let has = |q: Qop| offered.iter().any(|o| o.eq_ignore_ascii_case(q.as_str()));
    if has(Qop::Auth) {
        Some(Qop::Auth)
    } else if has(Qop::AuthInt) {
        Some(Qop::AuthInt)
    } else {
        None
    }
}

/// Appends `value` as a quoted-string, escaping `"` and `\`. ASCII control
/// characters other than HTAB cannot be carried in a SIP header and are
/// dropped so that caller-supplied text can never split the header.
fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if is_forbidden_ctl(c) => {}
            c => out.push(c),
        }
    }
    out.push('"');
}

/// What the caller should do after [`DigestClient::on_challenge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// New nonce (stale=true, or a different nonce): retry with the same
    /// credentials, nc reset to 1.
    Retry,
    /// Same nonce and not stale after we already answered it: credentials are
    /// wrong, give up.
    GiveUp,
}

/// Client-side state for one realm: keeps the nonce and the nonce-count so
/// following requests can re-use the nonce (pre-emptive auth) with nc
/// incrementing.
///
/// `Debug` never prints the password.
#[derive(Clone)]
pub struct DigestClient {
    challenge: Challenge,
    username: String,
    password: String,
    /// Number of answers already produced for the current nonce.
    nc: u32,
}

impl fmt::Debug for DigestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestClient")
            .field("challenge", &self.challenge)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("nc", &self.nc)
            .finish()
    }
}

impl DigestClient {
    /// Starts answering `challenge` with the given credentials.
    #[must_use]
    pub fn new(challenge: Challenge, username: &str, password: &str) -> DigestClient {
        DigestClient {
            challenge,
            username: username.to_owned(),
            password: password.to_owned(),
            nc: 0,
        }
    }

    /// The challenge currently being answered.
    #[must_use]
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }

    /// Nonce-count of the most recent answer for the current nonce (0 before
    /// the first [`DigestClient::authorization`] call on that nonce).
    #[must_use]
    pub fn nonce_count(&self) -> u32 {
        self.nc
    }

    /// Build the header value answering the challenge for `method` and `uri`.
    ///
    /// `uri` is used byte-for-byte as given (the exact Request-URI). `cnonce`
    /// is supplied by the caller. `body` is hashed only for qop=auth-int. We
    /// prefer qop=auth, use auth-int only when `auth` is not offered, and with
    /// no (usable) qop produce the RFC 2069 form without nc/qop; cnonce is then
    /// sent only for the `-sess` algorithms, whose HA1 needs it. Each call
    /// increments nc (8 lowercase hex digits, starting at `00000001`).
    pub fn authorization(&mut self, method: &str, uri: &str, body: &[u8], cnonce: &str) -> String {
        self.nc = self.nc.checked_add(1).unwrap_or(1);
        let nc = format!("{:08x}", self.nc);
        let ch = &self.challenge;
        let alg = ch.algorithm;
        let qop = select_qop(&ch.qop);

        let mut ha1 = alg.hash(&[
            self.username.as_bytes(),
            ch.realm.as_bytes(),
            self.password.as_bytes(),
        ]);
        if alg.is_sess() {
            ha1 = alg.hash(&[ha1.as_bytes(), ch.nonce.as_bytes(), cnonce.as_bytes()]);
        }
        let ha2 = match qop {
            Some(Qop::AuthInt) => {
                let body_hash = alg.hash(&[body]);
                alg.hash(&[method.as_bytes(), uri.as_bytes(), body_hash.as_bytes()])
            }
            Some(Qop::Auth) | None => alg.hash(&[method.as_bytes(), uri.as_bytes()]),
        };
        let response = match qop {
            Some(q) => alg.hash(&[
                ha1.as_bytes(),
                ch.nonce.as_bytes(),
                nc.as_bytes(),
                cnonce.as_bytes(),
                q.as_str().as_bytes(),
                ha2.as_bytes(),
            ]),
            None => alg.hash(&[ha1.as_bytes(), ch.nonce.as_bytes(), ha2.as_bytes()]),
        };

        let mut out = String::with_capacity(256);
        out.push_str("Digest username=");
        push_quoted(&mut out, &self.username);
        out.push_str(", realm=");
        push_quoted(&mut out, &ch.realm);
        out.push_str(", nonce=");
        push_quoted(&mut out, &ch.nonce);
        out.push_str(", uri=");
        push_quoted(&mut out, uri);
        out.push_str(", response=\"");
        out.push_str(&response);
        out.push_str("\", algorithm=");
        out.push_str(alg.as_str());
        if qop.is_some() || alg.is_sess() {
            out.push_str(", cnonce=");
            push_quoted(&mut out, cnonce);
        }
        if let Some(opaque) = &ch.opaque {
            out.push_str(", opaque=");
            push_quoted(&mut out, opaque);
        }
        if let Some(q) = qop {
            out.push_str(", qop=");
            out.push_str(q.as_str());
            out.push_str(", nc=");
            out.push_str(&nc);
        }
        out
    }

    /// A new challenge arrived for the same realm. Returns what the caller
    /// should do.
    ///
    /// A stale or different nonce is adopted (nc restarts at 1) and yields
    /// [`Retry::Retry`]; the caller should still bound the number of retries.
    /// The same nonce without `stale` after we answered it yields
    /// [`Retry::GiveUp`] and leaves the state unchanged.
    pub fn on_challenge(&mut self, challenge: Challenge) -> Retry {
        let same_nonce = challenge.nonce == self.challenge.nonce;
        if same_nonce && !challenge.stale && self.nc > 0 {
            return Retry::GiveUp;
        }
        self.challenge = challenge;
        self.nc = 0;
        Retry::Retry
    }
}

/// Username and password for digest challenges. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The digest state of one user agent towards its peer: one [`DigestClient`] per challenge
/// kind and realm. It answers new challenges and pre-authorises later requests with the same
/// nonce and a growing nonce count (RFC 7616 §3.4.5).
#[derive(Debug, Clone, Default)]
pub struct DigestSession {
    clients: Vec<DigestClient>,
}

impl DigestSession {
    /// Absorb the challenges of a 401/407. False when we cannot answer: no usable challenge,
    /// or a nonce we already answered was refused again without `stale` (wrong password).
    pub fn take_challenges(&mut self, creds: &Credentials, resp: &Response) -> bool {
        let mut any = false;
        for (name, kind) in [
            (HeaderName::WwwAuthenticate, ChallengeKind::Www),
            (HeaderName::ProxyAuthenticate, ChallengeKind::Proxy),
        ] {
            for value in resp.headers.get_all(&name) {
                let Ok(ch) = Challenge::parse(kind, value) else {
                    continue;
                };
                match self
                    .clients
                    .iter_mut()
                    .find(|c| c.challenge().realm == ch.realm && c.challenge().kind == kind)
                {
                    Some(existing) => match existing.on_challenge(ch) {
                        Retry::Retry => any = true,
                        Retry::GiveUp => return false,
                    },
                    None => {
                        self.clients
                            .push(DigestClient::new(ch, &creds.username, &creds.password));
                        any = true;
                    }
                }
            }
        }
        any
    }

    /// Add an Authorization / Proxy-Authorization line per known realm to `req` (its
    /// Request-URI, method and body are what is signed). Returns the lines added.
    pub fn authorize(&mut self, req: &mut Request, ids: &mut IdGen) -> Vec<(HeaderName, String)> {
        let mut added = Vec::with_capacity(self.clients.len());
        for client in &mut self.clients {
            let cnonce = ids.token(16);
            let value = client.authorization(req.method.as_str(), &req.uri, &req.body, &cnonce);
            let name = match client.challenge().kind {
                ChallengeKind::Www => HeaderName::Authorization,
                ChallengeKind::Proxy => HeaderName::ProxyAuthorization,
            };
            req.headers.push(name.clone(), value.clone());
            added.push((name, value));
        }
        added
    }

    /// Forget every realm (after a failure, start clean).
    pub fn clear(&mut self) {
        self.clients.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC2617_NONCE: &str = "dcd98b7102dd2f0e8b11d0f600bfb0c093";
    const RFC2617_OPAQUE: &str = "5ccc069c403ebaf9f0171e9517f40e41";
    const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    const RFC7616_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
    const SIP_URI: &str = "sip:+380441234567@127.0.0.1:5060;transport=tcp";

    fn www(value: &str) -> Challenge {
        match Challenge::parse(ChallengeKind::Www, value) {
            Ok(c) => c,
            Err(e) => panic!("parse failed for {value:?}: {e}"),
        }
    }

    fn err(value: &str) -> AuthError {
        match Challenge::parse(ChallengeKind::Www, value) {
            Ok(c) => panic!("expected error for {value:?}, got {c:?}"),
            Err(e) => e,
        }
    }

    /// Extracts the raw text of `name=` in an answer (quotes included).
    fn param<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
        let rest = answer.strip_prefix("Digest ")?;
        rest.split(", ").find_map(|p| {
            let (n, v) = p.split_once('=')?;
            (n == name).then_some(v)
        })
    }

    fn rfc7616_challenge(alg: &str) -> Challenge {
        www(&format!(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
             algorithm={alg}, nonce=\"{RFC7616_NONCE}\", opaque=\"{RFC7616_OPAQUE}\""
        ))
    }

    #[test]
    fn answer_header_names() {
        assert_eq!(ChallengeKind::Www.answer_header_name(), "Authorization");
        assert_eq!(
            ChallengeKind::Proxy.answer_header_name(),
            "Proxy-Authorization"
        );
    }

    #[test]
    fn rfc2617_example() {
        let ch = www(&format!(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"{RFC2617_NONCE}\", opaque=\"{RFC2617_OPAQUE}\""
        ));
        let mut client = DigestClient::new(ch, "Mufasa", "Circle Of Life");
        let answer = client.authorization("GET", "/dir/index.html", b"", "0a4f113b");
        assert_eq!(
            answer,
            format!(
                "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
                 nonce=\"{RFC2617_NONCE}\", uri=\"/dir/index.html\", \
                 response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, \
                 cnonce=\"0a4f113b\", opaque=\"{RFC2617_OPAQUE}\", qop=auth, nc=00000001"
            )
        );
    }

    #[test]
    fn rfc7616_md5_example() {
        let mut client = DigestClient::new(rfc7616_challenge("MD5"), "Mufasa", "Circle of Life");
        let answer = client.authorization("GET", "/dir/index.html", b"", RFC7616_CNONCE);
        assert_eq!(
            param(&answer, "response"),
            Some("\"8ca523f5e9506fed4657c9700eebdbec\"")
        );
        assert_eq!(param(&answer, "algorithm"), Some("MD5"));
        assert_eq!(
            param(&answer, "opaque"),
            Some(format!("\"{RFC7616_OPAQUE}\"").as_str())
        );
        assert_eq!(param(&answer, "qop"), Some("auth"));
        assert_eq!(param(&answer, "nc"), Some("00000001"));
    }

    #[test]
    fn rfc7616_sha256_example() {
        let mut client =
            DigestClient::new(rfc7616_challenge("SHA-256"), "Mufasa", "Circle of Life");
        let answer = client.authorization("GET", "/dir/index.html", b"", RFC7616_CNONCE);
        assert_eq!(
            param(&answer, "response"),
            Some("\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\"")
        );
        assert_eq!(param(&answer, "algorithm"), Some("SHA-256"));
        assert_eq!(
            param(&answer, "cnonce"),
            Some(format!("\"{RFC7616_CNONCE}\"").as_str())
        );
    }

    #[test]
    fn sip_uri_used_verbatim() {
        let ch = www("Digest realm=\"asterisk\", nonce=\"abc123\", qop=\"auth\"");
        let mut client = DigestClient::new(ch, "1001", "secret");
        let answer = client.authorization("INVITE", SIP_URI, b"v=0\r\n", "deadbeef");
        assert_eq!(
            answer,
            format!(
                "Digest username=\"1001\", realm=\"asterisk\", nonce=\"abc123\", \
                 uri=\"{SIP_URI}\", response=\"e511c70c2151473a5df2d707aaf28006\", \
                 algorithm=MD5, cnonce=\"deadbeef\", qop=auth, nc=00000001"
            )
        );
        let again = client.authorization("INVITE", SIP_URI, b"", "deadbeef");
        assert_eq!(
            param(&again, "response"),
            Some("\"7e1051ade7149ff3d97bd05b9602abf6\"")
        );
        assert_eq!(param(&again, "nc"), Some("00000002"));
    }

    #[test]
    fn rfc2069_form_without_qop() {
        let ch = www(&format!(
            "Digest realm=\"testrealm@host.com\", nonce=\"{RFC2617_NONCE}\""
        ));
        let mut client = DigestClient::new(ch, "Mufasa", "Circle Of Life");
        let answer = client.authorization("REGISTER", "sip:example.com", b"", "ignored");
        assert_eq!(
            answer,
            format!(
                "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
                 nonce=\"{RFC2617_NONCE}\", uri=\"sip:example.com\", \
                 response=\"b3d89c8a04faf47cea816f4db31abd88\", algorithm=MD5"
            )
        );
    }

    #[test]
    fn md5_sess() {
        let ch = www(&format!(
            "Digest realm=\"testrealm@host.com\", nonce=\"{RFC2617_NONCE}\", \
             qop=auth, algorithm=md5-SESS"
        ));
        assert_eq!(ch.algorithm, Algorithm::Md5Sess);
        let mut client = DigestClient::new(ch, "Mufasa", "Circle Of Life");
        let answer = client.authorization("GET", "/dir/index.html", b"", "0a4f113b");
        assert_eq!(
            param(&answer, "response"),
            Some("\"8e3825c57e897f5a0dec6c2d4e5059d0\"")
        );
        assert_eq!(param(&answer, "algorithm"), Some("MD5-sess"));
    }

    #[test]
    fn sha256_sess_auth_int_only_with_escapes() {
        let ch = www(
            "Digest realm=\"atlanta.com\", nonce=\"n0nce\", qop=\"auth-int\", \
             algorithm=SHA-256-sess",
        );
        assert_eq!(ch.algorithm, Algorithm::Sha256Sess);
        let mut client = DigestClient::new(ch, "alice", "pa\"ss\\w");
        let answer = client.authorization("INVITE", "sip:bob@biloxi.com", b"v=0\r\n", "c0ffee");
        assert_eq!(
            param(&answer, "response"),
            Some("\"9b5008176161815d66162a81fb6053e41bcc951bfb1cee50c5c3a3f7f721cbc9\"")
        );
        assert_eq!(param(&answer, "qop"), Some("auth-int"));
        assert_eq!(param(&answer, "algorithm"), Some("SHA-256-sess"));
        assert!(!answer.contains("pa\"ss"), "password must never be sent");
    }

    #[test]
    fn auth_int_empty_body() {
        let ch = www("Digest realm=\"asterisk\", nonce=\"abc123\", qop=\"auth-int\"");
        let mut client = DigestClient::new(ch, "1001", "secret");
        let answer = client.authorization("BYE", "sip:bob@10.0.0.1", b"", "cafe");
        assert_eq!(
            param(&answer, "response"),
            Some("\"5e27e92f13db1509a7207fe14c8095a3\"")
        );
    }

    #[test]
    fn prefers_auth_over_auth_int() {
        let ch = www("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int, AUTH\"");
        let mut client = DigestClient::new(ch, "u", "p");
        let answer = client.authorization("INVITE", "sip:x@y", b"body", "c");
        assert_eq!(param(&answer, "qop"), Some("auth"));
    }

    #[test]
    fn quoted_values_are_escaped() {
        let ch = www(r#"Digest realm="a\"b\\c", nonce="n\x", opaque="o""#);
        assert_eq!(ch.realm, "a\"b\\c");
        assert_eq!(ch.nonce, "nx");
        let mut client = DigestClient::new(ch, "us\"er\r\n", "p");
        let answer = client.authorization("REGISTER", "sip:r", b"", "c\\n");
        assert!(answer.starts_with(r#"Digest username="us\"er", realm="a\"b\\c", nonce="nx""#));
        assert_eq!(param(&answer, "cnonce"), None, "no qop, not sess");
        assert!(!answer.contains('\r') && !answer.contains('\n'));
    }

    #[test]
    fn parse_full_challenge() {
        let ch = Challenge::parse(
            ChallengeKind::Proxy,
            "Digest realm=\"x\", nonce=\"y\", qop=\"auth,auth-int\", algorithm=SHA-256, \
             stale=TRUE, opaque=\"z\", domain=\"sip:a sip:b\"",
        );
        assert_eq!(
            ch,
            Ok(Challenge {
                kind: ChallengeKind::Proxy,
                realm: "x".into(),
                nonce: "y".into(),
                opaque: Some("z".into()),
                algorithm: Algorithm::Sha256,
                qop: vec!["auth".into(), "auth-int".into()],
                stale: true,
                domain: Some("sip:a sip:b".into()),
            })
        );
    }

    #[test]
    fn parse_tokens_case_and_lws() {
        let ch = www(
            "  dIgEsT\t REALM = sip.example.com ,,\r\n NONCE=abc/def==,\tQop = auth , \
             ALGORITHM=\"sha-256\", foo=bar, baz=\"q,u\\\"x\",",
        );
        assert_eq!(ch.realm, "sip.example.com");
        assert_eq!(ch.nonce, "abc/def==");
        assert_eq!(ch.qop, vec!["auth".to_owned()]);
        assert_eq!(ch.algorithm, Algorithm::Sha256);
        assert!(!ch.stale);
        assert_eq!(ch.opaque, None);
        assert_eq!(ch.domain, None);
    }

    #[test]
    fn parse_defaults_and_stale_values() {
        let ch = www("Digest realm=\"r\", nonce=\"n\"");
        assert_eq!(ch.algorithm, Algorithm::Md5);
        assert!(ch.qop.is_empty());
        assert!(!ch.stale);
        for (s, expected) in [
            ("true", true),
            ("TRUE", true),
            ("\"true\"", true),
            ("false", false),
            ("FALSE", false),
            ("yes", false),
        ] {
            let ch = www(&format!("Digest realm=\"r\", nonce=\"n\", stale={s}"));
            assert_eq!(ch.stale, expected, "stale={s}");
        }
    }

    #[test]
    fn parse_non_ascii_in_quoted_realm() {
        let ch = www("Digest realm=\"Ωmega café\", nonce=\"n\"");
        assert_eq!(ch.realm, "Ωmega café");
    }

    #[test]
    fn parse_errors() {
        assert_eq!(err(""), AuthError::Malformed("empty header value".into()));
        assert!(matches!(err("   \t "), AuthError::Malformed(_)));
        assert_eq!(err("Basic realm=x"), AuthError::NotDigest);
        assert_eq!(err("Basic"), AuthError::NotDigest);
        assert_eq!(err("\"Digest\" realm=x"), AuthError::NotDigest);
        assert_eq!(err("Digést realm=\"r\", nonce=\"n\""), AuthError::NotDigest);
        assert_eq!(err("Digest"), AuthError::MissingParam("realm"));
        assert_eq!(err("Digest ,,,"), AuthError::MissingParam("realm"));
        assert_eq!(err("Digest realm=\"r\""), AuthError::MissingParam("nonce"));
        assert_eq!(err("Digest nonce=\"n\""), AuthError::MissingParam("realm"));
        assert!(matches!(
            err("Digest realm=\"r, nonce=\"n\""),
            AuthError::Malformed(_)
        ));
        assert!(matches!(err("Digest realm=\"r\\"), AuthError::Malformed(_)));
        assert!(matches!(err("Digest realm"), AuthError::Malformed(_)));
        assert!(matches!(err("Digest realm="), AuthError::Malformed(_)));
        assert!(matches!(err("Digest =x"), AuthError::Malformed(_)));
        assert!(matches!(err("Digest realm=a b"), AuthError::Malformed(_)));
        assert!(matches!(
            err("Digest realm=\"a\"b"),
            AuthError::Malformed(_)
        ));
        assert!(matches!(err("Digest,realm=\"r\""), AuthError::Malformed(_)));
        assert!(matches!(err("Digest réalm=\"r\""), AuthError::Malformed(_)));
        assert!(matches!(
            err("Digest realm=é, nonce=n"),
            AuthError::Malformed(_)
        ));
        assert!(matches!(
            err("Digest realm=\"a\r\nX-Evil: 1\", nonce=n"),
            AuthError::Malformed(_)
        ));
        assert!(matches!(
            err("Digest realm=\"r\", realm=\"s\", nonce=n"),
            AuthError::Malformed(_)
        ));
        assert_eq!(
            err("Digest realm=r, nonce=n, algorithm=SHA-512-256"),
            AuthError::UnsupportedAlgorithm("SHA-512-256".into())
        );
        assert_eq!(
            err("Digest realm=r, nonce=n, algorithm=AKAv1-MD5"),
            AuthError::UnsupportedAlgorithm("AKAv1-MD5".into())
        );
        assert_eq!(
            err("Digest realm=r, nonce=n, qop=\"auth-conf\""),
            AuthError::UnsupportedQop("auth-conf".into())
        );
    }

    #[test]
    fn parse_very_long_input() {
        let long = format!(
            "Digest realm=\"{}\", nonce=\"n\"",
            "a".repeat(MAX_CHALLENGE_LEN)
        );
        assert_eq!(
            err(&long),
            AuthError::TooLong {
                len: long.len(),
                max: MAX_CHALLENGE_LEN
            }
        );
        let unterminated = format!("Digest realm=\"{}", "\\".repeat(MAX_CHALLENGE_LEN - 20));
        assert!(matches!(err(&unterminated), AuthError::Malformed(_)));
        let many_commas = format!("Digest {}", ",".repeat(MAX_CHALLENGE_LEN - 10));
        assert_eq!(err(&many_commas), AuthError::MissingParam("realm"));
        let long_alg = format!(
            "Digest realm=r, nonce=n, algorithm={}",
            "x".repeat(MAX_CHALLENGE_LEN - 100)
        );
        match err(&long_alg) {
            AuthError::UnsupportedAlgorithm(a) => assert!(a.chars().count() <= 65),
            e => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn nc_increments_and_stale_resets() {
        let ch = www("Digest realm=\"r\", nonce=\"n1\", qop=auth");
        let mut client = DigestClient::new(ch, "u", "p");
        assert_eq!(client.nonce_count(), 0);
        for expected in ["00000001", "00000002", "00000003"] {
            let answer = client.authorization("REGISTER", "sip:r", b"", "c");
            assert_eq!(param(&answer, "nc"), Some(expected));
        }
        assert_eq!(client.nonce_count(), 3);

        let stale = www("Digest realm=\"r\", nonce=\"n2\", qop=auth, stale=true");
        assert_eq!(client.on_challenge(stale), Retry::Retry);
        assert_eq!(client.challenge().nonce, "n2");
        assert_eq!(client.nonce_count(), 0);
        let answer = client.authorization("REGISTER", "sip:r", b"", "c");
        assert_eq!(param(&answer, "nonce"), Some("\"n2\""));
        assert_eq!(param(&answer, "nc"), Some("00000001"));

        // stale=true even with the same nonce means "retry".
        let stale_same = www("Digest realm=\"r\", nonce=\"n2\", qop=auth, stale=true");
        assert_eq!(client.on_challenge(stale_same), Retry::Retry);
        let answer = client.authorization("REGISTER", "sip:r", b"", "c");
        assert_eq!(param(&answer, "nc"), Some("00000001"));
    }

    #[test]
    fn different_nonce_retries_same_nonce_gives_up() {
        let ch = www("Digest realm=\"r\", nonce=\"n1\", qop=auth");
        let mut client = DigestClient::new(ch.clone(), "u", "wrong");
        // Not answered yet: the same challenge again is not a rejection.
        assert_eq!(client.on_challenge(ch.clone()), Retry::Retry);
        client.authorization("INVITE", SIP_URI, b"", "c");
        assert_eq!(client.on_challenge(ch.clone()), Retry::GiveUp);
        assert_eq!(client.nonce_count(), 1, "GiveUp leaves state alone");

        let fresh = www("Digest realm=\"r\", nonce=\"n9\", qop=auth");
        assert_eq!(client.on_challenge(fresh.clone()), Retry::Retry);
        let answer = client.authorization("INVITE", SIP_URI, b"", "c");
        assert_eq!(param(&answer, "nc"), Some("00000001"));
        assert_eq!(client.on_challenge(fresh), Retry::GiveUp);
    }

    #[test]
    fn debug_hides_password() {
        let client = DigestClient::new(www("Digest realm=r, nonce=n"), "u", "hunter2");
        let dbg = format!("{client:?}");
        assert!(!dbg.contains("hunter2"));
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn error_display() {
        assert_eq!(
            AuthError::MissingParam("nonce").to_string(),
            "missing required parameter `nonce`"
        );
        assert_eq!(
            AuthError::NotDigest.to_string(),
            "authentication scheme is not Digest"
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
            if n == 0 {
                0
            } else {
                usize::try_from(self.next() % n as u64).unwrap_or(0)
            }
        }
    }

    #[test]
    fn mutated_headers_never_panic() {
        const SEED: &str = "Digest realm=\"sip.example.com\", nonce=\"a\\\"b/c==\", \
                            qop=\"auth,auth-int\", algorithm=SHA-256-sess, stale=TRUE, \
                            opaque=\"xyz\", domain=\"sip:a\", x=y";
        const INTERESTING: &[u8] = b"\"\\,= \t\r\n\x00\x7f\xc3\xa9\xff";
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut parsed_ok = 0usize;
        for _ in 0..5000 {
            let mut bytes = SEED.as_bytes().to_vec();
            let edits = 1 + rng.below(4);
            for _ in 0..edits {
                let pos = rng.below(bytes.len() + 1);
                let byte = if rng.below(2) == 0 {
                    INTERESTING
                        .get(rng.below(INTERESTING.len()))
                        .copied()
                        .unwrap_or(b'x')
                } else {
                    u8::try_from(rng.next() & 0xff).unwrap_or(0)
                };
                match rng.below(4) {
                    0 => {
                        if let Some(b) = bytes.get_mut(pos) {
                            *b = byte;
                        }
                    }
                    1 => bytes.insert(pos, byte),
                    2 => {
                        if pos < bytes.len() {
                            bytes.remove(pos);
                        }
                    }
                    _ => bytes.truncate(pos),
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            for kind in [ChallengeKind::Www, ChallengeKind::Proxy] {
                if let Ok(ch) = Challenge::parse(kind, &text) {
                    parsed_ok += 1;
                    let mut client = DigestClient::new(ch, "u", "p");
                    let answer = client.authorization("INVITE", SIP_URI, &bytes, "c");
                    assert!(answer.starts_with("Digest username=\"u\""));
                    assert!(!answer.contains('\r') && !answer.contains('\n'));
                }
            }
        }
        assert!(parsed_ok > 0, "some mutations should still parse");
    }
}
