//! Property tests of the message parser: it never panics, whatever it is fed; what it accepts
//! survives a serialise/parse round trip; its memory is bounded by `Limits`; and it never looks
//! past `Content-Length`.

use proptest::prelude::*;
use sip::message::{Limits, salvage_request};
use sip::{Message, ParseError};

/// Valid messages to mutate: the RFC 4475 torture messages that must parse, and the shapes the
/// dialer exchanges every call.
const SEEDS: &[&[u8]] = &[
    include_bytes!("data/rfc4475/wsinv.dat"),
    include_bytes!("data/rfc4475/intmeth.dat"),
    include_bytes!("data/rfc4475/esc01.dat"),
    include_bytes!("data/rfc4475/longreq.dat"),
    include_bytes!("data/rfc4475/mpart01.dat"),
    include_bytes!("data/rfc4475/unreason.dat"),
    include_bytes!("data/rfc4475/inv2543.dat"),
    b"INVITE sip:+380441234567@198.51.100.7:5060;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-5f1c2a7e;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Campaign 42\" <sip:1000@192.0.2.10>;tag=a83f2c91\r\n\
To: <sip:+380441234567@198.51.100.7>\r\n\
Call-ID: 6c1d9e2b4f8a@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:dialer@192.0.2.10:5062>\r\n\
Expires: 60\r\n\
Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 37\r\n\
\r\n\
v=0\r\nm=audio 40000 RTP/AVP 0 8 101\r\n",
    b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-5f1c2a7e;rport=5062;received=192.0.2.10\r\n\
Record-Route: <sip:198.51.100.2;lr>, <sip:198.51.100.1;lr>\r\n\
From: \"Campaign 42\" <sip:1000@192.0.2.10>;tag=a83f2c91\r\n\
To: <sip:+380441234567@198.51.100.7>;tag=as5e1f\r\n\
Call-ID: 6c1d9e2b4f8a@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:+380441234567@198.51.100.7:5060>\r\n\
Session-Expires: 1800;refresher=uac\r\n\
l: 5\r\n\
\r\n\
v=0\r\n",
];

/// One edit of a message.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Truncate(usize),
    /// Repeat the header line containing this offset.
    DuplicateLine(usize, u8),
    /// Replace the digit run at this offset by a huge number.
    HugeNumber(usize, String),
    /// Insert CR, LF, CRLF, CRLF SP or NUL.
    Inject(usize, &'static [u8]),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Edit::Delete(i, n)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 1u8..40).prop_map(|(i, n)| Edit::DuplicateLine(i, n)),
        (any::<usize>(), "[1-9][0-9]{9,40}").prop_map(|(i, s)| Edit::HugeNumber(i, s)),
        (
            any::<usize>(),
            prop::sample::select(vec![
                &b"\r"[..],
                &b"\n"[..],
                &b"\r\n"[..],
                &b"\r\n "[..],
                &b"\r\n\r\n"[..],
                &b"\0"[..],
                &b"\""[..],
                &b"\\"[..],
            ])
        )
            .prop_map(|(i, s)| Edit::Inject(i, s)),
    ]
}

fn apply(msg: &mut Vec<u8>, e: &Edit) {
    let len = msg.len();
    let at = |i: usize| if len == 0 { 0 } else { i % (len + 1) };
    match e {
        Edit::Flip(i, b) if len > 0 => msg[i % len] ^= b | 1,
        Edit::Flip(..) => {}
        Edit::Insert(i, b) => msg.insert(at(*i), *b),
        Edit::Delete(i, n) => {
            let from = at(*i);
            msg.drain(from..(from + n).min(len));
        }
        Edit::Truncate(i) => msg.truncate(at(*i)),
        Edit::DuplicateLine(i, times) => {
            let i = at(*i);
            let start = msg[..i.min(len)]
                .windows(2)
                .rposition(|w| w == b"\r\n")
                .map_or(0, |p| p + 2);
            let end = msg[i.min(len)..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .map_or(len, |p| i + p + 2);
            let line = msg[start..end].to_vec();
            for _ in 0..*times {
                msg.splice(end..end, line.iter().copied());
            }
        }
        Edit::HugeNumber(i, digits) => {
            let mut i = at(*i).min(len.saturating_sub(1));
            while i < len && !msg[i].is_ascii_digit() {
                i += 1;
            }
            let end = (i..len).find(|&j| !msg[j].is_ascii_digit()).unwrap_or(len);
            msg.splice(i..end, digits.bytes());
        }
        Edit::Inject(i, s) => {
            let i = at(*i);
            msg.splice(i..i, s.iter().copied());
        }
    }
}

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(SEEDS),
        prop::collection::vec(edit(), 1..6),
    )
        .prop_map(|(seed, edits)| {
            let mut msg = seed.to_vec();
            for e in &edits {
                apply(&mut msg, e);
            }
            msg
        })
}

/// A header value: printable text, quoted strings, parameters, commas, tabs, UTF-8.
fn value() -> impl Strategy<Value = String> {
    "[ -~\t]{0,24}|[a-z0-9]{1,8}(;[a-z]{1,5}(=[a-z0-9.]{1,6})?){0,3}|\"[a-z \\\\]{0,8}\" <sip:[a-z]{1,6}@h>|día ñ [a-z]{0,5}"
}

/// Requests and responses assembled from parts, many of them valid, with optional folding and
/// compact or oddly cased names.
fn generated() -> impl Strategy<Value = (Vec<u8>, usize)> {
    let start = prop_oneof![
        "(INVITE|OPTIONS|BYE|NOTIFY|X-[A-Z]{1,6}) sip:[a-z0-9]{1,8}@[a-z]{1,8}(\\.[a-z]{2,3})?(;[a-z]{1,4})? SIP/2\\.0",
        "SIP/2\\.0 [1-6][0-9]{2}( [ -~]{0,12})?",
    ];
    let extra = prop::collection::vec(
        (
            "[A-Za-z][A-Za-z0-9!%*_+`'~.-]{0,12}",
            value(),
            prop::bool::weighted(0.1),
        ),
        0..12,
    );
    (
        start,
        prop::sample::select(vec!["Via", "via", "v", "VIA  "]),
        prop::sample::select(vec!["From", "f", "FROM"]),
        extra,
        prop::collection::vec(any::<u8>(), 0..64),
        prop::bool::ANY,
    )
        .prop_map(|(start, via, from, extra, body, with_cl)| {
            let method = start.split(' ').next().unwrap_or("INVITE");
            let method = if method.starts_with("SIP/") {
                "INVITE"
            } else {
                method
            };
            let mut m = format!(
                "{start}\r\n{via}: SIP/2.0/UDP h.example:5060;branch=z9hG4bK1\r\n\
{from}: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c1@h\r\nCSeq: 7 {method}\r\n"
            );
            for (name, value, fold) in extra {
                if fold {
                    let mid = (0..=value.len() / 2)
                        .rev()
                        .find(|&i| value.is_char_boundary(i))
                        .unwrap_or(0);
                    let (a, b) = value.split_at(mid);
                    m.push_str(&format!("{name}: {a}\r\n {b}\r\n"));
                } else {
                    m.push_str(&format!("{name}: {value}\r\n"));
                }
            }
            if with_cl {
                m.push_str(&format!("Content-Length: {}\r\n", body.len()));
            }
            m.push_str("\r\n");
            let mut bytes = m.into_bytes();
            let head = bytes.len();
            bytes.extend_from_slice(&body);
            (bytes, head)
        })
}

/// Parse; if accepted, the serialised form parses back to the same message.
fn check_round_trip(input: &[u8]) -> Result<(), TestCaseError> {
    let _ = salvage_request(input);
    if let Ok(msg) = Message::parse(input) {
        prop_assert!(msg.headers().len() <= Limits::default().max_headers);
        let wire = msg.to_bytes();
        let again = Message::parse(&wire);
        prop_assert_eq!(
            again.as_ref(),
            Ok(&msg),
            "re-serialised: {}",
            String::from_utf8_lossy(&wire)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// (a) Arbitrary bytes never panic the parser or the salvager.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = Message::parse(&bytes);
        let _ = salvage_request(&bytes);
    }

    /// (a) Bytes that look like a header section (text, CRLFs, colons) never panic either.
    #[test]
    fn random_header_text_never_panics(text in "([ -~]{0,30}\r\n){0,12}(\r\n)?[ -~]{0,20}") {
        let _ = Message::parse(text.as_bytes());
        let _ = salvage_request(text.as_bytes());
    }

    /// (b), (c) Mutated valid messages never panic; whatever still parses round-trips.
    #[test]
    fn mutations_never_panic_and_round_trip(msg in mutated()) {
        check_round_trip(&msg)?;
    }
}

proptest! {
    // Generating structured messages costs more than parsing them; fewer cases keep the file
    // within a few seconds in debug builds.
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// (c) Generated messages parse (when their parts are valid) and round-trip.
    #[test]
    fn generated_messages_round_trip((msg, _head) in generated()) {
        check_round_trip(&msg)?;
    }

    /// (e) With a Content-Length, nothing after the declared body changes the result.
    #[test]
    fn bytes_after_content_length_are_never_read(
        (msg, head) in generated(),
        junk in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let first = Message::parse(&msg);
        let has_cl = String::from_utf8_lossy(&msg[..head]).contains("\r\nContent-Length: ");
        if has_cl {
            let mut longer = msg.clone();
            longer.extend_from_slice(&junk);
            prop_assert_eq!(Message::parse(&longer), first.clone());
        }
        if let Ok(m) = &first {
            prop_assert_eq!(m.body(), &msg[head..]);
        }
    }
}

proptest! {
    // Each case parses up to 64 KiB; the inputs differ little, so fewer cases do.
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// (d) Thousands of tiny header lines, up to the size limit, are refused with
    /// TooManyHeaders -- whatever the lines are (extension headers, repeated Content-Length,
    /// folded values) -- and the count of stored lines never passes the limit.
    #[test]
    fn header_floods_are_refused(
        line in prop::sample::select(vec!["a:b", "X:", "l:0", "Content-Length: 0", "v:SIP/2.0/UDP h", "k:x\r\n y"]),
        fill in 0.5f64..1.0,
        max_headers in prop::sample::select(vec![4usize, 32, 128]),
    ) {
        let limits = Limits { max_headers, ..Limits::default() };
        let mut m = String::from(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n",
        );
        let budget = (limits.max_message_bytes as f64 * fill) as usize;
        while m.len() + line.len() + 4 < budget {
            m.push_str(line);
            m.push_str("\r\n");
        }
        m.push_str("\r\n");
        prop_assert!(m.len() <= limits.max_message_bytes);
        prop_assert_eq!(
            Message::parse_with(m.as_bytes(), &limits),
            Err(ParseError::TooManyHeaders { limit: max_headers })
        );
    }
}

#[test]
fn the_header_limit_is_exact() {
    let limits = Limits {
        max_headers: 8,
        ..Limits::default()
    };
    let base = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n";
    let with = |n: usize, cl: usize| {
        let mut m = base.to_owned();
        for i in 0..n {
            m.push_str(&format!("X-{i}: v\r\n"));
        }
        for _ in 0..cl {
            m.push_str("Content-Length: 0\r\n");
        }
        m.push_str("\r\n");
        Message::parse_with(m.as_bytes(), &limits)
    };
    // Five mandatory lines plus three extension lines fill the limit; one Content-Length is
    // free (it is re-derived from the body on output), a second one counts.
    assert!(with(3, 0).is_ok());
    assert!(with(3, 1).is_ok());
    assert_eq!(with(3, 2), Err(ParseError::TooManyHeaders { limit: 8 }));
    assert_eq!(with(4, 0), Err(ParseError::TooManyHeaders { limit: 8 }));
}

#[test]
fn oversized_input_is_refused_before_any_work() {
    let big = vec![b'a'; Limits::default().max_message_bytes + 1];
    assert!(matches!(
        Message::parse(&big),
        Err(ParseError::TooLarge { .. })
    ));
}
