use super::*;

pub(crate) const INVITE: &str = "INVITE sip:+380441234567@10.0.0.1:5060;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-1a2b3c4d5e;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Dialer\" <sip:1000@127.0.0.1>;tag=8f3a2c\r\n\
To: <sip:+380441234567@10.0.0.1>\r\n\
Call-ID: 3c26700b4a@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:dialer@127.0.0.1:5062>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY, REFER\r\n\
Supported: timer\r\n\
Session-Expires: 1800\r\n\
X-Campaign: spring \r\n\
Content-Type: application/sdp\r\n\
Content-Length: 12\r\n\
\r\n\
v=0\r\no=- 1\r\n";

fn req(s: &str) -> Request {
    match Message::parse(s.as_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => panic!("expected a request"),
    }
}

#[test]
fn parses_an_invite_and_its_headers() {
    let r = req(INVITE);
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.uri, "sip:+380441234567@10.0.0.1:5060;transport=udp");
    assert_eq!(r.headers.call_id(), Some("3c26700b4a@127.0.0.1"));
    let via = r.headers.top_via().unwrap();
    assert_eq!(via.transport, "UDP");
    assert_eq!((via.host.as_str(), via.port), ("127.0.0.1", Some(5062)));
    assert_eq!(via.branch(), Some("z9hG4bK-1a2b3c4d5e"));
    assert!(via.params.contains("rport"));
    assert_eq!(
        r.headers.cseq(),
        Some(CSeq {
            seq: 1,
            method: Method::Invite
        })
    );
    let from = r.headers.from().unwrap();
    assert_eq!(from.display.as_deref(), Some("Dialer"));
    assert_eq!(from.uri, "sip:1000@127.0.0.1");
    assert_eq!(r.headers.from_tag().as_deref(), Some("8f3a2c"));
    assert_eq!(r.headers.to_tag(), None);
    assert_eq!(
        r.headers.contact().unwrap().uri,
        "sip:dialer@127.0.0.1:5062"
    );
    assert!(r.headers.has_option_tag(&HeaderName::Supported, "timer"));
    assert_eq!(r.headers.get_other("x-campaign"), Some("spring"));
    assert_eq!(r.body, b"v=0\r\no=- 1\r\n");
}

#[test]
fn serialise_then_parse_is_identity_and_unknown_headers_pass_through() {
    let r = req(INVITE);
    let bytes = r.to_bytes();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains("X-Campaign: spring\r\n"), "{text}");
    assert!(text.ends_with("Content-Length: 12\r\n\r\nv=0\r\no=- 1\r\n"));
    assert_eq!(req(&text), r);
}

#[test]
fn compact_forms_and_folding_are_understood() {
    let m = "BYE sip:a@b SIP/2.0\r\n\
v: SIP/2.0/TCP h:5060;branch=z9hG4bKx\r\n\
f: <sip:x@y>;tag=1\r\n\
t: <sip:a@b>\r\n  ;tag=2\r\n\
i: abc\r\n\
CSeq: 2\r\n BYE\r\n\
l: 0\r\n\r\n";
    let r = req(m);
    assert_eq!(r.headers.top_via().unwrap().transport, "TCP");
    assert_eq!(r.headers.to_tag().as_deref(), Some("2"));
    assert_eq!(r.headers.call_id(), Some("abc"));
    assert_eq!(r.headers.cseq().unwrap().seq, 2);
    let out = String::from_utf8(r.to_bytes()).unwrap();
    assert!(out.contains("Call-ID: abc\r\n") && out.contains("Via: SIP/2.0/TCP"));
}

#[test]
fn response_round_trip_and_helpers() {
    let r = req(INVITE);
    let mut resp = r.make_response(180, "Ringing", Some("uas1"));
    assert_eq!(resp.headers.to_tag().as_deref(), Some("uas1"));
    resp.headers
        .push(HeaderName::Contact, "<sip:uas@127.0.0.1:5070>");
    let text = String::from_utf8(resp.to_bytes()).unwrap();
    assert!(text.starts_with("SIP/2.0 180 Ringing\r\n"));
    let Message::Response(back) = Message::parse(text.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(back, resp);
    assert!(back.is_provisional());
}

#[test]
fn body_is_cut_to_content_length_and_short_bodies_refused() {
    let mut long = INVITE.to_owned();
    long.push_str("trailing garbage");
    assert_eq!(req(&long).body.len(), 12);
    let short = INVITE.replace("Content-Length: 12", "Content-Length: 99");
    assert_eq!(
        Message::parse(short.as_bytes()),
        Err(ParseError::BodyTruncated {
            declared: 99,
            available: 12
        })
    );
}

#[test]
fn precise_errors_for_bad_input() {
    type Check = fn(&ParseError) -> bool;
    let cases: &[(&str, Check)] = &[
        ("", |e| *e == ParseError::Empty),
        ("INVITE sip:a@b SIP/2.0\r\n", |e| {
            *e == ParseError::NoHeaderEnd
        }),
        (
            "INVITE  sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n\r\n",
            |e| matches!(e, ParseError::BadStartLine(_)),
        ),
        (
            "INVITE sip:a@b SIP/7.0\r\nVia: SIP/2.0/UDP h\r\n\r\n",
            |e| matches!(e, ParseError::UnsupportedVersion(_)),
        ),
        (
            "SIP/2.0 4294967301 Big\r\nVia: SIP/2.0/UDP h\r\n\r\n",
            |e| matches!(e, ParseError::BadStartLine(_)),
        ),
        (
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
            |e| matches!(e, ParseError::CSeqMismatch { .. }),
        ),
        (
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCSeq: 1 OPTIONS\r\n\r\n",
            |e| *e == ParseError::MissingHeader("Call-ID"),
        ),
        (
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: \"unterminated <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
            |e| matches!(e, ParseError::BadHeader { name: "From", .. }),
        ),
        (
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 300\r\n\r\n",
            |e| {
                matches!(
                    e,
                    ParseError::BadHeader {
                        name: "Max-Forwards",
                        ..
                    }
                )
            },
        ),
        (
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: -3\r\n\r\n",
            |e| {
                matches!(
                    e,
                    ParseError::BadHeader {
                        name: "Content-Length",
                        ..
                    }
                )
            },
        ),
    ];
    for (input, check) in cases {
        let err = Message::parse(input.as_bytes()).unwrap_err();
        assert!(check(&err), "{input:?} gave {err:?}");
    }
}

#[test]
fn header_floods_and_oversized_messages_are_refused() {
    let mut flood = String::from(
        "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n",
    );
    for i in 0..200 {
        flood.push_str(&format!("X-H{i}: v\r\n"));
    }
    flood.push_str("\r\n");
    assert_eq!(
        Message::parse(flood.as_bytes()),
        Err(ParseError::TooManyHeaders { limit: 128 })
    );
    let big = vec![b'a'; 70_000];
    assert!(matches!(
        Message::parse(&big),
        Err(ParseError::TooLarge { .. })
    ));
}

#[test]
fn salvage_gives_enough_for_a_400() {
    let bad = "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKq\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nMax-Forwards: 9999\r\n\r\n";
    assert!(Message::parse(bad.as_bytes()).is_err());
    let r = salvage_request(bad.as_bytes()).unwrap();
    let resp = r.make_response(400, "Bad Request", Some("x"));
    let text = String::from_utf8(resp.to_bytes()).unwrap();
    assert!(text.contains("branch=z9hG4bKq") && text.contains("Call-ID: c"));
    assert!(salvage_request(b"\x00\x01garbage").is_none());
}

#[test]
fn list_splitting_respects_quotes_and_brackets() {
    let v = r#""a, b" <sip:x@y;p=1,2>, <sip:z@w>;q=1 , sip:k@l"#;
    let parts: Vec<_> = split_list(v).collect();
    assert_eq!(
        parts,
        vec![r#""a, b" <sip:x@y;p=1,2>"#, "<sip:z@w>;q=1", "sip:k@l"]
    );
}

#[test]
fn name_addr_print_parse() {
    for s in [
        "<sip:a@b>",
        "\"A \\\"B\\\"\" <sip:a@b:5060;transport=tcp>;tag=x",
        "<sip:a@b>;expires=60;q=0.5",
    ] {
        let n = NameAddr::parse(s).unwrap();
        assert_eq!(NameAddr::parse(&n.to_string()).unwrap(), n, "{s}");
    }
    let n = NameAddr::parse("sip:a@b;tag=1").unwrap();
    assert_eq!((n.uri.as_str(), n.tag()), ("sip:a@b", Some("1")));
    let n = NameAddr::parse("Bob Smith <sip:a@b>").unwrap();
    assert_eq!(n.display.as_deref(), Some("Bob Smith"));
    for bad in [
        "\"x <sip:a@b>",
        "sip:a b@c",
        "<sip:a@b",
        "Bob@x <sip:a@b>",
        "sip:a@b?x=y",
    ] {
        assert!(NameAddr::parse(bad).is_none(), "{bad}");
    }
}

#[test]
fn via_print_parse() {
    for s in [
        "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1;rport",
        "SIP/2.0/TCP [::1]:5061;branch=z9hG4bK2;received=::1",
        "SIP/2.0/UDP host.example",
    ] {
        let v = Via::parse(s).unwrap();
        assert_eq!(v.to_string(), s);
    }
    let v = Via::parse("SIP / 2.0 / UDP  h : 5060 ;branch=z9hG4bKx").unwrap();
    assert_eq!(
        (v.host.as_str(), v.port, v.branch()),
        ("h", Some(5060), Some("z9hG4bKx"))
    );
    assert!(Via::parse("SIP/3.0/UDP h").is_none());
    assert!(Via::parse("SIP/2.0/UDP h:99999").is_none());
}

#[test]
fn cseq_print_parse() {
    let c = CSeq::parse("4711 INVITE").unwrap();
    assert_eq!(c.to_string(), "4711 INVITE");
    assert!(CSeq::parse("2147483648 INVITE").is_none());
    assert!(CSeq::parse("-1 INVITE").is_none());
    assert!(CSeq::parse("1").is_none());
}

#[test]
fn headers_set_replaces_all_lines() {
    let mut h = Headers::new();
    h.push(HeaderName::Route, "<sip:a>");
    h.push(HeaderName::Via, "SIP/2.0/UDP x");
    h.push(HeaderName::Route, "<sip:b>");
    h.set(HeaderName::Route, "<sip:c>");
    assert_eq!(
        h.get_all(&HeaderName::Route).collect::<Vec<_>>(),
        vec!["<sip:c>"]
    );
    assert_eq!(h.len(), 2);
    h.remove(&HeaderName::Route);
    assert_eq!(h.len(), 1);
}

const MINIMAL: &str = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n";

fn with_header(extra: &str) -> Result<Message, ParseError> {
    Message::parse(format!("{MINIMAL}{extra}\r\n\r\n").as_bytes())
}

#[test]
fn control_characters_only_as_quoted_pairs() {
    // A quoted-pair may escape any control but CR and LF (RFC 3261 §25.1).
    let r = with_header("To: \"a\\\u{0}b\\\u{7f}\" <sip:a@b>").unwrap_err();
    assert!(matches!(
        r,
        ParseError::BadHeader {
            name: "To",
            reason: "appears more than once"
        }
    ));
    let m = Message::parse(
        MINIMAL
            .replace("To: <sip:a@b>", "To: \"a\\\u{0}b\\\u{7}\" <sip:a@b>")
            .replace("CSeq: 1 OPTIONS\r\n", "CSeq: 1 OPTIONS\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        m.headers().to().unwrap().display.as_deref(),
        Some("a\u{0}b\u{7}")
    );
    // Anywhere else a control is refused, wherever it sits in the line (the line scanner
    // works eight bytes at a time).
    for pos in 0..12 {
        for ctl in [0u8, 7, 0x0b, 0x1f, 0x7f, b'\r', b'\n'] {
            let mut value = b"abcdefghijkl".to_vec();
            value[pos] = ctl;
            let mut m = MINIMAL.as_bytes().to_vec();
            m.extend_from_slice(b"X-Test: ");
            m.extend_from_slice(&value);
            m.extend_from_slice(b"\r\n\r\n");
            assert!(
                matches!(
                    Message::parse(&m),
                    Err(ParseError::BadHeaderLine {
                        reason: "control character",
                        ..
                    })
                ),
                "control {ctl:#x} at {pos}"
            );
        }
    }
    // Tabs are whitespace, not controls.
    let m = with_header("X-Tab:\tone\ttwo\t").unwrap();
    assert_eq!(m.headers().get_other("x-tab"), Some("one\ttwo"));
    assert!(matches!(
        Message::parse(b"OPTIONS sip:a@b\x01 SIP/2.0\r\n\r\n"),
        Err(ParseError::BadStartLine("control character"))
    ));
}

#[test]
fn request_uri_headers_versus_user_part() {
    let ok = MINIMAL.replace("OPTIONS sip:a@b ", "OPTIONS sip:a?b@h ") + "\r\n";
    assert_eq!(
        match Message::parse(ok.as_bytes()).unwrap() {
            Message::Request(r) => r.uri,
            Message::Response(_) => unreachable!(),
        },
        "sip:a?b@h"
    );
    for bad in ["sip:a@h?x=y", "sip:h?x=y", "sips:a@h;p?x"] {
        let m = MINIMAL.replace("sip:a@b SIP/2.0", &format!("{bad} SIP/2.0")) + "\r\n";
        assert_eq!(
            Message::parse(m.as_bytes()),
            Err(ParseError::BadStartLine(
                "SIP Request-URI must not carry headers"
            )),
            "{bad}"
        );
    }
    // Other schemes may carry '?'.
    let m = MINIMAL.replace("sip:a@b SIP/2.0", "http:x?y SIP/2.0") + "\r\n";
    assert!(Message::parse(m.as_bytes()).is_ok());
}

#[test]
fn version_is_case_insensitive_and_exact() {
    let m = MINIMAL.replace("SIP/2.0\r\n", "sip/2.0\r\n") + "\r\n";
    assert!(Message::parse(m.as_bytes()).is_ok());
    for v in ["SIP/2.00", "SIP/20", "SIP/2.1"] {
        let m = MINIMAL.replace("SIP/2.0\r\n", &format!("{v}\r\n")) + "\r\n";
        assert!(
            matches!(
                Message::parse(m.as_bytes()),
                Err(ParseError::UnsupportedVersion(_))
            ),
            "{v}"
        );
    }
    // Multi-byte characters where the version is expected must not trip slicing.
    let m = MINIMAL.replace("SIP/2.0\r\n", "aéé\u{e9}\r\n") + "\r\n";
    assert!(Message::parse(m.as_bytes()).is_err());
    assert!(Message::parse("SIé/2.0 200 OK\r\n\r\n".as_bytes()).is_err());
}

#[test]
fn name_addr_strictness() {
    for bad in [
        "< sip:a@b >",
        "<sip:a@b>junk",
        "<sip:a@b>;",
        "<sip:a@b>;tag=",
        "\"x\" sip:a@b",
        "sip:a@b ; tag = \"open",
    ] {
        assert!(NameAddr::parse(bad).is_none(), "{bad}");
    }
    let n = NameAddr::parse("sip:a@b ;  tag  =  7").unwrap();
    assert_eq!((n.uri.as_str(), n.tag()), ("sip:a@b", Some("7")));
    let n = NameAddr::parse("A  B\t<sip:a@b>").unwrap();
    assert_eq!(n.display.as_deref(), Some("A  B"));
}

#[test]
fn known_header_names_classify_like_from_wire() {
    for name in [
        "Via",
        "v",
        "From",
        "f",
        "To",
        "t",
        "Call-ID",
        "i",
        "CSeq",
        "Contact",
        "m",
        "Max-Forwards",
        "Content-Length",
        "l",
        "Content-Type",
        "c",
        "Record-Route",
        "Route",
        "Allow",
        "Supported",
        "k",
        "Require",
        "Session-Expires",
        "x",
        "Min-SE",
        "User-Agent",
        "X-Custom",
        "Via-X",
        "T0",
        "Tos",
        "Routes",
        "Call-IDs",
        "Contacts",
    ] {
        for spelling in [
            name.to_owned(),
            name.to_ascii_lowercase(),
            name.to_ascii_uppercase(),
        ] {
            assert_eq!(
                super::parse::classify(&spelling),
                HeaderName::from_wire(&spelling),
                "{spelling}"
            );
        }
    }
}

#[test]
fn salvage_is_lenient_about_what_it_copies() {
    // Broken Via parameters and an unknown version still leave enough to answer.
    let bad = "OPTIONS sip:a@b SIP/7.0\r\nVia: SIP/7.0/UDP h:5060;;\r\nCSeq: 1 OPTIONS\r\n\r\n";
    let r = salvage_request(bad.as_bytes()).unwrap();
    assert_eq!(
        r.headers.get(&HeaderName::Via),
        Some("SIP/7.0/UDP h:5060;;")
    );
    // No Via, no CSeq, ACK, responses, header injection: nothing to answer.
    for none in [
        "OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n\r\n",
        "ACK sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCSeq: 1 ACK\r\n\r\n",
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\rInjected: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "OPTIONS sip:a@b HTTP/1.1\r\nVia: SIP/2.0/UDP h\r\nCSeq: 1 OPTIONS\r\n\r\n",
    ] {
        assert!(salvage_request(none.as_bytes()).is_none(), "{none:?}");
    }
}
