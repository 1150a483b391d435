//! Server side of HTTP Digest (RFC 2617 / RFC 3261 §22), MD5 only: parse an `Authorization`
//! or `Proxy-Authorization` value and check its `response` against the one computed here from
//! the server's own copy of the password. Written independently of `sip::auth` on purpose: the
//! simulator is the referee of the client's digest code.

use md5::{Digest, Md5};

/// The parameters of a Digest answer, unquoted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestAnswer {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub cnonce: Option<String>,
    pub nc: Option<String>,
    pub qop: Option<String>,
    pub opaque: Option<String>,
}

/// What the server knows and expects.
#[derive(Debug, Clone, Copy)]
pub struct Expectation<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub realm: &'a str,
    pub nonce: &'a str,
    pub opaque: &'a str,
    pub method: &'a str,
    /// The Request-URI of the request carrying the answer.
    pub request_uri: &'a str,
}

/// Why an answer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    UnknownUser,
    WrongRealm,
    StaleNonce,
    UriMismatch,
    BadQop,
    WrongResponse,
}

fn md5_hex(parts: &[&[u8]]) -> String {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p);
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(32);
    for b in digest {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// The expected `response` (RFC 2617 §3.2.2.1), MD5, qop `auth` or absent.
pub fn expected_response(
    username: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str, &str)>, // (nc, cnonce, qop)
) -> String {
    let ha1 = md5_hex(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()]);
    let ha2 = md5_hex(&[method.as_bytes(), uri.as_bytes()]);
    match qop {
        Some((nc, cnonce, qop)) => md5_hex(&[
            ha1.as_bytes(),
            nonce.as_bytes(),
            nc.as_bytes(),
            cnonce.as_bytes(),
            qop.as_bytes(),
            ha2.as_bytes(),
        ]),
        None => md5_hex(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// Parse `Digest name="value", name=token, ...`. `None` when it is not a Digest answer or a
/// required parameter is missing.
pub fn parse(value: &str) -> Option<DigestAnswer> {
    let v = value.trim();
    let scheme_end = v.find(|c: char| c.is_ascii_whitespace())?;
    if !v.get(..scheme_end)?.eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut rest = v.get(scheme_end..)?;
    let mut a = DigestAnswer::default();
    let (mut has_user, mut has_realm, mut has_nonce, mut has_uri, mut has_resp) =
        (false, false, false, false, false);
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ',');
        if rest.is_empty() {
            break;
        }
        let eq = rest.find('=')?;
        let name = rest.get(..eq)?.trim().to_ascii_lowercase();
        rest = rest.get(eq + 1..)?.trim_start();
        let val: String;
        if let Some(q) = rest.strip_prefix('"') {
            let mut s = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        let (_, n) = chars.next()?;
                        s.push(n);
                    }
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => s.push(c),
                }
            }
            let end = end?;
            val = s;
            rest = q.get(end + 1..)?;
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            val = rest.get(..end)?.trim().to_owned();
            rest = rest.get(end..)?;
        }
        match name.as_str() {
            "username" => (a.username, has_user) = (val, true),
            "realm" => (a.realm, has_realm) = (val, true),
            "nonce" => (a.nonce, has_nonce) = (val, true),
            "uri" => (a.uri, has_uri) = (val, true),
            "response" => (a.response, has_resp) = (val, true),
            "algorithm" => a.algorithm = Some(val),
            "cnonce" => a.cnonce = Some(val),
            "nc" => a.nc = Some(val),
            "qop" => a.qop = Some(val),
            "opaque" => a.opaque = Some(val),
            _ => {}
        }
    }
    (has_user && has_realm && has_nonce && has_uri && has_resp).then_some(a)
}

/// Check an answer header value against what the server expects.
pub fn verify(value: &str, exp: &Expectation<'_>) -> Result<(), Refusal> {
    let a = parse(value).ok_or(Refusal::Malformed)?;
    if a.username != exp.username {
        return Err(Refusal::UnknownUser);
    }
    if a.realm != exp.realm {
        return Err(Refusal::WrongRealm);
    }
    if a.nonce != exp.nonce || a.opaque.as_deref() != Some(exp.opaque) {
        return Err(Refusal::StaleNonce);
    }
    if a.uri != exp.request_uri {
        return Err(Refusal::UriMismatch);
    }
    if a.algorithm
        .as_deref()
        .is_some_and(|alg| !alg.eq_ignore_ascii_case("MD5"))
    {
        return Err(Refusal::Malformed);
    }
    // We offer qop="auth" only: the client must use it, with nc (8 hex digits) and cnonce.
    let (Some(qop), Some(nc), Some(cnonce)) = (&a.qop, &a.nc, &a.cnonce) else {
        return Err(Refusal::BadQop);
    };
    if qop != "auth" || nc.len() != 8 || !nc.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(Refusal::BadQop);
    }
    let want = expected_response(
        exp.username,
        exp.realm,
        exp.password,
        exp.method,
        &a.uri,
        exp.nonce,
        Some((nc, cnonce, qop)),
    );
    if want.eq_ignore_ascii_case(&a.response) {
        Ok(())
    } else {
        Err(Refusal::WrongResponse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example_response() {
        // RFC 2617 §3.5 (HTTP, but the computation is the same).
        let r = expected_response(
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(("00000001", "0a4f113b", "auth")),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    fn exp<'a>() -> Expectation<'a> {
        Expectation {
            username: "Mufasa",
            password: "Circle Of Life",
            realm: "testrealm@host.com",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            opaque: "5ccc069c403ebaf9f0171e9517f40e41",
            method: "GET",
            request_uri: "/dir/index.html",
        }
    }

    const GOOD: &str = "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
        nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", qop=auth, \
        nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", \
        opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";

    #[test]
    fn verifies_good_and_refuses_bad_answers() {
        assert_eq!(verify(GOOD, &exp()), Ok(()));
        let wrong = GOOD.replace("6629fae4", "6629fae5");
        assert_eq!(verify(&wrong, &exp()), Err(Refusal::WrongResponse));
        let other_uri = Expectation {
            request_uri: "/other",
            ..exp()
        };
        assert_eq!(verify(GOOD, &other_uri), Err(Refusal::UriMismatch));
        let other_nonce = Expectation {
            nonce: "x",
            ..exp()
        };
        assert_eq!(verify(GOOD, &other_nonce), Err(Refusal::StaleNonce));
        let no_qop = GOOD.replace("qop=auth, ", "");
        assert_eq!(verify(&no_qop, &exp()), Err(Refusal::BadQop));
        assert_eq!(verify("Basic abc", &exp()), Err(Refusal::Malformed));
        assert_eq!(
            verify("Digest username=\"x", &exp()),
            Err(Refusal::Malformed)
        );
        assert_eq!(verify("", &exp()), Err(Refusal::Malformed));
    }

    #[test]
    fn agrees_with_the_client_implementation() {
        use sip::auth::{Challenge, ChallengeKind, DigestClient};
        let ch = Challenge::parse(
            ChallengeKind::Www,
            "Digest realm=\"sim\", nonce=\"n0nce\", opaque=\"op\", qop=\"auth\", algorithm=MD5",
        )
        .unwrap();
        let mut c = DigestClient::new(ch, "alice", "secret");
        let uri = "sip:100@127.0.0.1:5070";
        let v = c.authorization("INVITE", uri, b"", "cn0nce");
        let e = Expectation {
            username: "alice",
            password: "secret",
            realm: "sim",
            nonce: "n0nce",
            opaque: "op",
            method: "INVITE",
            request_uri: uri,
        };
        assert_eq!(verify(&v, &e), Ok(()));
        let wrong_pw = Expectation {
            password: "guess",
            ..e
        };
        assert_eq!(verify(&v, &wrong_pw), Err(Refusal::WrongResponse));
    }
}
