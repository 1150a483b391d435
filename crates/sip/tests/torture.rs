//! RFC 4475 (SIP Torture Test Messages) against the message parser.
//!
//! The messages are byte-exact files under `tests/data/rfc4475/`; `INDEX.txt` there says for each
//! what the RFC expects and what this crate does (including the deliberate deviations). The
//! table below must agree with the index, and every file must be in it.

use sip::message::salvage_request;
use sip::{HeaderName, Message, Method, ParseError, Request, Response};

/// What the parser must do with a message.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// `Message::parse` returns `Ok`.
    Valid,
    /// `Message::parse` returns an error accepted by the predicate, and the endpoint answers
    /// with this status (built from `salvage_request`), or drops it (`None`).
    Invalid(fn(&ParseError) -> bool, Option<u16>),
}

struct Case {
    name: &'static str,
    section: &'static str,
    bytes: &'static [u8],
    expect: Expect,
}

macro_rules! case {
    ($name:literal, $section:literal, valid) => {
        Case {
            name: $name,
            section: $section,
            bytes: include_bytes!(concat!("data/rfc4475/", $name, ".dat")),
            expect: Expect::Valid,
        }
    };
    ($name:literal, $section:literal, $pat:pat if $guard:expr, $answer:expr) => {
        Case {
            name: $name,
            section: $section,
            bytes: include_bytes!(concat!("data/rfc4475/", $name, ".dat")),
            expect: Expect::Invalid(|e| matches!(e, $pat if $guard), $answer),
        }
    };
    ($name:literal, $section:literal, $pat:pat, $answer:expr) => {
        Case {
            name: $name,
            section: $section,
            bytes: include_bytes!(concat!("data/rfc4475/", $name, ".dat")),
            expect: Expect::Invalid(|e| matches!(e, $pat), $answer),
        }
    };
}

const CASES: &[Case] = &[
    // 3.1.1 Valid messages
    case!("wsinv", "3.1.1.1", valid),
    case!("intmeth", "3.1.1.2", valid),
    case!("esc01", "3.1.1.3", valid),
    case!("escnull", "3.1.1.4", valid),
    case!("esc02", "3.1.1.5", valid),
    case!("lwsdisp", "3.1.1.6", valid),
    case!("longreq", "3.1.1.7", valid),
    case!("dblreq", "3.1.1.8", valid),
    case!("semiuri", "3.1.1.9", valid),
    case!("transports", "3.1.1.10", valid),
    case!("mpart01", "3.1.1.11", valid),
    case!("unreason", "3.1.1.12", valid),
    case!("noreason", "3.1.1.13", valid),
    // 3.1.2 Invalid messages
    case!(
        "badinv01",
        "3.1.2.1",
        ParseError::BadHeader { name: "Via", .. },
        Some(400)
    ),
    case!(
        "clerr",
        "3.1.2.2",
        ParseError::BodyTruncated {
            declared: 9999,
            available: 154
        },
        Some(400)
    ),
    case!(
        "ncl",
        "3.1.2.3",
        ParseError::BadHeader {
            name: "Content-Length",
            ..
        },
        Some(400)
    ),
    case!(
        "scalar02",
        "3.1.2.4",
        ParseError::BadHeader { name: "CSeq", .. },
        Some(400)
    ),
    case!(
        "scalarlg",
        "3.1.2.5",
        ParseError::BadHeader { name: "CSeq", .. },
        None
    ),
    case!(
        "quotbal",
        "3.1.2.6",
        ParseError::BadHeader { name: "To", .. },
        Some(400)
    ),
    case!(
        "ltgtruri",
        "3.1.2.7",
        ParseError::BadStartLine(_),
        Some(400)
    ),
    case!("lwsruri", "3.1.2.8", ParseError::BadStartLine(_), Some(400)),
    case!(
        "lwsstart",
        "3.1.2.9",
        ParseError::BadStartLine(_),
        Some(400)
    ),
    case!("trws", "3.1.2.10", ParseError::BadStartLine(_), Some(400)),
    case!(
        "escruri",
        "3.1.2.11",
        ParseError::BadStartLine("SIP Request-URI must not carry headers"),
        Some(400)
    ),
    case!(
        "baddate",
        "3.1.2.12",
        ParseError::BadHeader { name: "Date", .. },
        Some(400)
    ),
    case!(
        "regbadct",
        "3.1.2.13",
        ParseError::BadHeader {
            name: "Contact",
            ..
        },
        Some(400)
    ),
    case!(
        "badaspec",
        "3.1.2.14",
        ParseError::BadHeader { name: "To", .. },
        Some(400)
    ),
    case!(
        "baddn",
        "3.1.2.15",
        ParseError::BadHeader { name: "From", .. },
        Some(400)
    ),
    case!(
        "badvers",
        "3.1.2.16",
        ParseError::UnsupportedVersion(v) if v == "SIP/7.0",
        Some(505)
    ),
    case!(
        "mismatch01",
        "3.1.2.17",
        ParseError::CSeqMismatch { cseq, method } if cseq == "INVITE" && method == "OPTIONS",
        Some(400)
    ),
    case!(
        "mismatch02",
        "3.1.2.18",
        ParseError::CSeqMismatch { cseq, method } if cseq == "INVITE" && method == "NEWMETHOD",
        Some(400)
    ),
    case!("bigcode", "3.1.2.19", ParseError::BadStartLine(_), None),
    // 3.2 Transaction layer semantics
    case!("badbranch", "3.2.1", valid),
    // 3.3 Application layer semantics
    case!(
        "insuf",
        "3.3.1",
        ParseError::MissingHeader("From"),
        Some(400)
    ),
    case!("unkscm", "3.3.2", valid),
    case!("novelsc", "3.3.3", valid),
    case!("unksm2", "3.3.4", valid),
    case!("bext01", "3.3.5", valid),
    case!("invut", "3.3.6", valid),
    case!("regaut01", "3.3.7", valid),
    case!(
        "multi01",
        "3.3.8",
        ParseError::BadHeader {
            name: "CSeq",
            reason: "appears more than once"
        },
        Some(400)
    ),
    case!(
        "mcl01",
        "3.3.9",
        ParseError::BadHeader {
            name: "Content-Length",
            reason: "conflicting values"
        },
        Some(400)
    ),
    case!("bcast", "3.3.10", valid),
    case!("zeromf", "3.3.11", valid),
    case!("cparam01", "3.3.12", valid),
    case!("cparam02", "3.3.13", valid),
    case!("regescrt", "3.3.14", valid),
    case!("sdp01", "3.3.15", valid),
    // 3.4 Backward compatibility
    case!("inv2543", "3.4.1", valid),
];

const INDEX: &str = include_str!("data/rfc4475/INDEX.txt");

fn case(name: &str) -> &'static Case {
    CASES.iter().find(|c| c.name == name).expect("known case")
}

fn request(name: &str) -> Request {
    match Message::parse(case(name).bytes) {
        Ok(Message::Request(r)) => r,
        other => panic!("{name}: expected a request, got {other:?}"),
    }
}

fn response(name: &str) -> Response {
    match Message::parse(case(name).bytes) {
        Ok(Message::Response(r)) => r,
        other => panic!("{name}: expected a response, got {other:?}"),
    }
}

#[test]
fn table_index_and_files_agree() {
    let mut indexed = Vec::new();
    for line in INDEX
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 5, "INDEX.txt line {line:?}");
        let c = case(cols[0]);
        assert_eq!(c.section, cols[1], "{}", c.name);
        let verdict = match c.expect {
            Expect::Valid => "valid",
            Expect::Invalid(..) => "invalid",
        };
        assert_eq!(verdict, cols[2], "{}", c.name);
        if let Expect::Invalid(_, answer) = c.expect {
            let said = match answer {
                Some(code) => format!("answer {code}"),
                None => "drop".to_owned(),
            };
            assert!(
                cols[4].contains(&said),
                "{}: index says {:?}",
                c.name,
                cols[4]
            );
        }
        indexed.push(cols[0]);
    }
    let mut names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    assert_eq!(
        indexed, names,
        "INDEX.txt and the table list the same messages in order"
    );
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rfc4475");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".dat").map(str::to_owned)
        })
        .collect();
    files.sort();
    names.sort();
    assert_eq!(files, names, "every .dat file is a case");
    let valid = CASES
        .iter()
        .filter(|c| matches!(c.expect, Expect::Valid))
        .count();
    assert_eq!((valid, CASES.len() - valid), (27, 22));
}

#[test]
fn valid_messages_parse_and_round_trip() {
    for c in CASES.iter().filter(|c| matches!(c.expect, Expect::Valid)) {
        let msg = Message::parse(c.bytes)
            .unwrap_or_else(|e| panic!("{} ({}) must parse: {e:?}", c.name, c.section));
        let again = Message::parse(&msg.to_bytes())
            .unwrap_or_else(|e| panic!("{}: re-serialised form must parse: {e:?}", c.name));
        assert_eq!(again, msg, "{}: round trip", c.name);
    }
}

#[test]
fn invalid_messages_are_refused_with_a_precise_error() {
    for c in CASES {
        if let Expect::Invalid(check, _) = c.expect {
            match Message::parse(c.bytes) {
                Err(e) => assert!(
                    check(&e),
                    "{} ({}): unexpected error {e:?}",
                    c.name,
                    c.section
                ),
                Ok(m) => panic!(
                    "{} ({}) must be refused, parsed as {m:?}",
                    c.name, c.section
                ),
            }
        }
    }
}

#[test]
fn refused_requests_are_answered_where_the_rfc_asks() {
    for c in CASES {
        let Expect::Invalid(_, answer) = c.expect else {
            continue;
        };
        let salvaged = salvage_request(c.bytes);
        let Some(status) = answer else {
            assert!(salvaged.is_none(), "{}: must be dropped", c.name);
            continue;
        };
        let req = salvaged.unwrap_or_else(|| panic!("{}: nothing to answer {status} from", c.name));
        assert_ne!(req.method, Method::Ack);
        let resp = req.make_response(status, sip::message::reason_phrase(status), Some("t0"));
        let text = String::from_utf8(resp.to_bytes()).unwrap();
        let wire = String::from_utf8_lossy(c.bytes);
        assert!(
            text.starts_with(&format!("SIP/2.0 {status} ")),
            "{}: {text}",
            c.name
        );
        // The response goes back along the request's Vias and is matched by its CSeq.
        let top_via = req.headers.get(&HeaderName::Via).unwrap();
        let cseq = req.headers.get(&HeaderName::CSeq).unwrap();
        assert!(
            text.contains(&format!("Via: {top_via}\r\n")),
            "{}: {text}",
            c.name
        );
        assert!(
            text.contains(&format!("CSeq: {cseq}\r\n")),
            "{}: {text}",
            c.name
        );
        assert!(
            wire.contains(cseq.split_whitespace().next().unwrap()),
            "{}",
            c.name
        );
    }
    // A 505 copies every Via, so it reaches the client through the same path.
    let req = salvage_request(case("badvers").bytes).unwrap();
    assert_eq!(
        req.headers.get(&HeaderName::Via),
        Some("SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw")
    );
}

#[test]
fn no_prefix_or_corruption_of_any_message_panics() {
    for c in CASES {
        for end in 0..=c.bytes.len() {
            let _ = Message::parse(&c.bytes[..end]);
            let _ = salvage_request(&c.bytes[..end]);
        }
        let mut flipped = c.bytes.to_vec();
        for i in (0..flipped.len()).step_by(7) {
            flipped[i] ^= 0x20;
            let _ = Message::parse(&flipped);
            let _ = salvage_request(&flipped);
        }
    }
}

#[test]
fn wsinv_short_tortuous_invite() {
    let r = request("wsinv");
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.uri, "sip:vivekg@chair-dnrc.example.com;unknownparam");
    assert_eq!(r.headers.call_id(), Some("wsinv.ndaksdj@192.0.2.1"));
    assert_eq!(r.headers.to_tag().as_deref(), Some("1918181833n"));
    assert_eq!(
        r.headers.to().unwrap().uri,
        "sip:vivekg@chair-dnrc.example.com"
    );
    let from = r.headers.from().unwrap();
    assert_eq!(from.display.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(
        r.headers.cseq().map(|c| (c.seq, c.method)),
        Some((9, Method::Invite))
    );
    assert_eq!(r.headers.get(&HeaderName::MaxForwards), Some("0068"));
    // Three Via values over two header fields (one folded over three lines, one compact).
    let vias: Vec<_> = r.headers.list(&HeaderName::Via).collect();
    assert_eq!(vias.len(), 3);
    let top = r.headers.top_via().unwrap();
    assert_eq!(
        (top.transport.as_str(), top.host.as_str()),
        ("UDP", "192.0.2.2")
    );
    assert_eq!(top.branch(), Some("390skdjuw"));
    let second = sip::Via::parse(vias[1]).unwrap();
    assert_eq!(
        (second.transport.as_str(), second.branch()),
        ("TCP", Some("z9hG4bK9ikj8"))
    );
    let third = sip::Via::parse(vias[2]).unwrap();
    assert_eq!(
        (third.host.as_str(), third.branch()),
        ("192.168.255.111", Some("z9hG4bK30239"))
    );
    assert_eq!(r.headers.get(&HeaderName::Subject), Some(""));
    assert_eq!(
        r.headers.get_other("newfangledheader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        r.headers.get_other("UnknownHeaderWithUnusualValue"),
        Some(";;,,;;,;")
    );
    let contact = r.headers.contact().unwrap();
    assert_eq!(contact.display.as_deref(), Some("Quoted string \"\""));
    assert_eq!(contact.params.get("newparam"), Some("newvalue"));
    assert_eq!(contact.params.get("q"), Some("0.33"));
    assert_eq!(r.body.len(), 150);
}

#[test]
fn intmeth_wide_range_of_valid_characters() {
    let r = request("intmeth");
    assert_eq!(
        r.method,
        Method::Other("!interesting-Method0123456789_*+`.%indeed'~".into())
    );
    assert_eq!(
        r.uri,
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"
    );
    assert_eq!(r.headers.cseq().unwrap().method, r.method);
    assert_eq!(
        r.headers.call_id(),
        Some("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
    );
    let to = r.headers.to().unwrap();
    assert_eq!(
        to.display.as_deref(),
        Some("BEL:\u{7} NUL:\u{0} DEL:\u{7f}")
    );
    let from = r.headers.from().unwrap();
    assert_eq!(
        from.display.as_deref(),
        Some("token1~` token2'+_ token3*%!.-")
    );
    assert_eq!(
        from.params.get("fromParam''~+*_!.-%"),
        Some("\"работающий\"")
    );
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        r.headers.top_via().unwrap().branch(),
        Some("z9hG4bK-.!%66*_+`'~")
    );
    assert_eq!(
        r.headers.get_other("extensionHeader-!.%*+_`'~"),
        Some("\u{feff}大停電")
    );
}

#[test]
fn escapes_are_left_alone() {
    let r = request("esc01");
    assert_eq!(r.uri, "sip:sips%3Auser%40example.com@example.net");
    assert_eq!(r.headers.to().unwrap().uri, "sip:%75se%72@example.com");
    assert_eq!(
        r.headers.contact().unwrap().uri,
        "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31"
    );
    let r = request("escnull");
    let contacts: Vec<_> = r.headers.list(&HeaderName::Contact).collect();
    assert_eq!(
        contacts,
        [
            "<sip:%00@host5.example.com>",
            "<sip:%00%00@host5.example.com>"
        ]
    );
    let r = request("esc02");
    assert_eq!(r.method, Method::Other("RE%47IST%45R".into()));
    assert_eq!(r.headers.list(&HeaderName::Contact).count(), 2);
    assert_eq!(
        r.headers.get_other("C%6Fntact"),
        Some("<sip:alias2@host2.example.com>")
    );
    assert_eq!(r.headers.to().unwrap().display.as_deref(), Some("%Z%45"));
    let r = request("semiuri");
    assert_eq!(r.uri, "sip:user;par=u%40example.net@example.com");
}

#[test]
fn compact_and_mixed_case_names() {
    let r = request("esc01");
    assert_eq!(
        r.headers.call_id(),
        Some("esc01.239409asdfakjkn23onasd0-3234")
    );
    assert_eq!(r.headers.content_type().as_deref(), Some("application/sdp"));
    let r = request("longreq");
    assert_eq!(r.headers.list(&HeaderName::Via).count(), 34);
    assert_eq!(r.headers.top_via().unwrap().host, "sip33.example.com");
    assert!(
        r.headers
            .from()
            .unwrap()
            .uri
            .starts_with("sip:amazinglylongcallername")
    );
    assert_eq!(r.headers.from_tag().unwrap().len(), 155);
    assert_eq!(r.body.len(), 150);
    let r = request("dblreq");
    assert_eq!(r.method, Method::Register);
    assert_eq!(
        r.headers.call_id(),
        Some("dblreq.0ha0isndaksdj99sdfafnl3lk233412")
    );
    assert!(
        r.body.is_empty(),
        "the trailing INVITE is not part of the message"
    );
    let r = request("lwsdisp");
    assert_eq!(r.headers.from().unwrap().display.as_deref(), Some("caller"));
}

#[test]
fn transports_bodies_and_reason_phrases() {
    let r = request("transports");
    let transports: Vec<_> = r
        .headers
        .list(&HeaderName::Via)
        .map(|v| sip::Via::parse(v).unwrap().transport)
        .collect();
    assert_eq!(transports, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    let r = request("mpart01");
    assert_eq!(r.body.len(), 553);
    assert!(r.body.ends_with(b"\r\n--7a9cbec02ceef655--\r\n"));
    assert!(r.body.windows(4).any(|w| w == [0x30, 0x82, 0x01, 0x52]));
    assert_eq!(r.headers.content_type().as_deref(), Some("multipart/mixed"));
    let resp = response("unreason");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.reason,
        "= 2**3 * 5**2 но сто девяносто девять - простое"
    );
    let resp = response("noreason");
    assert_eq!((resp.status, resp.reason.as_str()), (100, ""));
    let resp = response("bcast");
    assert_eq!(
        resp.headers
            .list(&HeaderName::Via)
            .nth(1)
            .map(|v| sip::Via::parse(v).unwrap().host),
        Some("255.255.255.255".into())
    );
    let r = request("inv2543");
    assert_eq!(
        r.body.len(),
        105,
        "no Content-Length: the body is the rest of the datagram"
    );
    assert_eq!(r.headers.top_via().unwrap().branch(), None);
    let r = request("badbranch");
    assert_eq!(r.headers.top_via().unwrap().branch(), Some("z9hG4bK"));
    let r = request("zeromf");
    assert_eq!(r.headers.get(&HeaderName::MaxForwards), Some("0"));
}

#[test]
fn header_and_uri_parameters_are_told_apart() {
    let c = request("cparam01").headers.contact().unwrap();
    assert_eq!(c.uri, "sip:+19725552222@gw1.example.net");
    assert!(c.params.contains("unknownparam"));
    let c = request("cparam02").headers.contact().unwrap();
    assert_eq!(c.uri, "sip:+19725552222@gw1.example.net;unknownparam");
    assert!(c.params.0.is_empty());
    let c = request("regescrt").headers.contact().unwrap();
    assert_eq!(
        c.uri,
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    );
    let r = request("unksm2");
    assert_eq!(r.headers.to().unwrap().uri, "isbn:2983792873");
    assert_eq!(r.headers.contact().unwrap().uri, "name:John_Smith");
    assert_eq!(
        request("unkscm").uri,
        "nobodyKnowsThisScheme:totallyopaquecontent"
    );
    assert_eq!(request("novelsc").uri, "soap.beep://192.0.2.103:3002");
}
