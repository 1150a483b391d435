//! Micro-benchmarks of the SIP crate.
//!
//! - `invite_sdp/*`, `ok_200_sdp/*`: the message codec: parse and serialise a realistic INVITE
//!   carrying an SDP offer, and the 200 OK carrying the answer.
//! - `transaction/client_invite`: one INVITE client transaction from send to final response
//!   (`ClientTransaction::new`, which serialises the request, then 100 Trying, 180 Ringing and
//!   200 OK fed as parsed responses). The transaction layer does not ACK a 2xx (the UAC core
//!   does, RFC 3261 §13.2.2.4), so:
//! - `transaction/call_invite_to_ack`: the same exchange one layer up, through [`sip::Call`]:
//!   the INVITE built and queued, the three parsed responses, every output drained, including
//!   the ACK for the 2xx and the `Answered` event with the negotiated media.
//! - `call/endpoint_uac`: a whole answered call's signalling through [`sip::Endpoint`] in
//!   simulated time, the way the engine drives it: `place_call` (INVITE), the trunk's 100, 180
//!   and 200 as raw datagrams (parsed by the endpoint), ACK, `hangup` (BYE), the 200 to the BYE,
//!   then the endpoint's timers until the call is forgotten (Timers M and K). One endpoint serves
//!   every call of a sample, as in the engine; the datagrams are built beforehand from the
//!   requests an identically seeded endpoint sends (not timed).
//!
//! Throughput is per message, transaction or call (`Throughput::Elements(1)`), so criterion
//! prints messages, transactions or calls per second on one core.
//!
//! Run: `cargo bench -p benches --bench sip`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sip::sdp::LocalMedia;
use sip::transaction::{ClientTransaction, ResponseAction};
use sip::{
    Call, CallConfig, CallEvent, Credentials, Dest, Endpoint, EndpointConfig, EndpointOutput,
    HeaderName, Message, Method, Output, Request, Response, TimerConfig, Transport, Uri,
};

/// An outbound-trunk INVITE as the dialer sends it: 14 header fields and an SDP offer with
/// PCMU, PCMA and telephone-event.
const INVITE_SDP: &str = "v=0\r\n\
o=- 3945012345 3945012345 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 40000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

/// The answer: PCMA plus telephone-event.
const ANSWER_SDP: &str = "v=0\r\n\
o=trunk 1702 1702 IN IP4 198.51.100.7\r\n\
s=session\r\n\
c=IN IP4 198.51.100.7\r\n\
t=0 0\r\n\
m=audio 31544 RTP/AVP 8 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

fn invite() -> Vec<u8> {
    let head = "INVITE sip:+380441234567@198.51.100.7:5060;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-5f1c2a7e3b9d4c60;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Campaign 42\" <sip:1000@192.0.2.10>;tag=a83f2c91\r\n\
To: <sip:+380441234567@198.51.100.7>\r\n\
Call-ID: 6c1d9e2b4f8a4e17a0b3c5d7e9f1a2b4@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:dialer@192.0.2.10:5062;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY, REFER, PRACK\r\n\
Supported: timer, 100rel, replaces\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Min-SE: 90\r\n\
User-Agent: dialer/0.1\r\n\
Content-Type: application/sdp\r\n";
    with_body(head, INVITE_SDP)
}

fn ok_200() -> Vec<u8> {
    let head = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-5f1c2a7e3b9d4c60;rport=5062;received=192.0.2.10\r\n\
Record-Route: <sip:198.51.100.2;lr;ftag=a83f2c91>\r\n\
Record-Route: <sip:198.51.100.1;lr>\r\n\
From: \"Campaign 42\" <sip:1000@192.0.2.10>;tag=a83f2c91\r\n\
To: <sip:+380441234567@198.51.100.7>;tag=as5e1f0c22\r\n\
Call-ID: 6c1d9e2b4f8a4e17a0b3c5d7e9f1a2b4@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:+380441234567@198.51.100.7:5060>\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, UPDATE, INFO\r\n\
Supported: replaces, timer\r\n\
Require: timer\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Server: trunk-gw\r\n\
Content-Type: application/sdp\r\n";
    with_body(head, ANSWER_SDP)
}

fn with_body(head: &str, body: &str) -> Vec<u8> {
    format!("{head}Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

fn bench_codec(c: &mut Criterion, name: &str, wire: &[u8]) {
    let msg = Message::parse(wire).expect("benchmark message parses");
    assert_eq!(
        Message::parse(&msg.to_bytes()).as_ref(),
        Ok(&msg),
        "round trip"
    );
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse", |b| {
        b.iter(|| Message::parse(black_box(wire)).unwrap())
    });
    g.bench_function("serialise", |b| b.iter(|| black_box(&msg).to_bytes()));
    g.finish();
}

fn codec(c: &mut Criterion) {
    bench_codec(c, "invite_sdp", &invite());
    bench_codec(c, "ok_200_sdp", &ok_200());
}

/// The trunk (where the dialer's requests go and its responses come from).
const TRUNK: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(198, 51, 100, 7),
    5060,
));
/// The dialer's SIP address.
const LOCAL: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(192, 0, 2, 10),
    5062,
));
/// The trunk's To tag on 180/200.
const TRUNK_TAG: &str = "as5e1f0c22";
/// Seed of the call / endpoint identifiers (branch, tag, Call-ID): fixed, so the responses
/// built for one run match the requests of the next.
const SEED: u64 = 0x5EED;

/// A call as the campaign runner places one (`engine::trunk::call_config` plus the attempt
/// header the runner adds): SDP offer, credentials ready for a challenge, no session timer.
fn call_config() -> CallConfig {
    let number = "+380441234567";
    let host_port = TRUNK.to_string();
    CallConfig {
        request_uri: Uri::parse(&format!("sip:{number}@{host_port}")).expect("request URI"),
        from_uri: format!("sip:1000@{host_port}"),
        from_display: Some("Campaign 42".into()),
        to_uri: format!("sip:{number}@{host_port}"),
        contact: format!("sip:dialer@{LOCAL}"),
        via_host: LOCAL.ip().to_string(),
        via_port: LOCAL.port(),
        transport: Transport::Udp,
        outbound: Dest::Addr(TRUNK),
        preloaded_route: Vec::new(),
        credentials: Some(Credentials {
            username: "dialer".into(),
            password: "secret".into(),
        }),
        media: Some(LocalMedia::new(LOCAL.ip(), 40000, 3_945_012_345)),
        ring_timeout: Duration::from_secs(30),
        session_expires: None,
        min_se: 90,
        p_asserted_identity: None,
        user_agent: Some("dialer/0.1".into()),
        extra_headers: vec![(sip::ATTEMPT_HEADER.to_owned(), "42-1234567".to_owned())],
        timers: TimerConfig::default(),
    }
}

/// The trunk's answer to `invite` as a gateway sends it: 100 Trying (no To tag); 180 Ringing
/// and 200 OK with To tag, two Record-Route, Contact, Allow, Supported; the 200 with the SDP
/// answer (and `Require: timer` when the INVITE asked for a session timer).
fn trunk_response(invite: &Request, status: u16) -> Vec<u8> {
    let reason = match status {
        100 => "Trying",
        180 => "Ringing",
        _ => "OK",
    };
    let mut r = invite.make_response(status, reason, (status > 100).then_some(TRUNK_TAG));
    if status > 100 {
        let ftag = invite.headers.from_tag().unwrap_or_default();
        r.headers.push(
            HeaderName::RecordRoute,
            format!("<sip:198.51.100.2;lr;ftag={ftag}>"),
        );
        r.headers
            .push(HeaderName::RecordRoute, "<sip:198.51.100.1;lr>");
        r.headers
            .push(HeaderName::Contact, format!("<sip:+380441234567@{TRUNK}>"));
        r.headers.push(
            HeaderName::Allow,
            "INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, UPDATE, INFO",
        );
        r.headers.push(HeaderName::Supported, "replaces, timer");
    }
    if status == 200 {
        if let Some(se) = invite.headers.get(&HeaderName::SessionExpires) {
            let secs = se.split(';').next().unwrap_or(se).trim();
            r.headers.push(HeaderName::Require, "timer");
            r.headers
                .push(HeaderName::SessionExpires, format!("{secs};refresher=uac"));
        }
        r.headers.push(HeaderName::ContentType, "application/sdp");
        r.body = ANSWER_SDP.as_bytes().to_vec();
    }
    r.headers.push(HeaderName::Server, "trunk-gw");
    r.to_bytes()
}

/// The trunk's 200 to a BYE.
fn bye_ok(bye: &Request) -> Vec<u8> {
    let mut r = bye.make_response(200, "OK", None);
    r.headers.push(HeaderName::Server, "trunk-gw");
    r.to_bytes()
}

fn parse_request(wire: &[u8]) -> Request {
    match Message::parse(wire) {
        Ok(Message::Request(r)) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn parse_response(wire: &[u8]) -> Response {
    match Message::parse(wire) {
        Ok(Message::Response(r)) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

/// When each response of the INVITE arrives, after the INVITE left.
const AT_TRYING: Duration = Duration::from_millis(20);
const AT_RINGING: Duration = Duration::from_millis(1_500);
const AT_ANSWER: Duration = Duration::from_secs(6);

/// What one pass through a [`Call`] produced: transmits, their bytes, and whether `Answered`
/// came out with negotiated media.
#[derive(Debug, Default, PartialEq, Eq)]
struct CallOut {
    transmits: usize,
    bytes: usize,
    answered: bool,
}

fn drain_call(call: &mut Call, out: &mut CallOut) {
    while let Some(o) = call.poll_output() {
        match o {
            Output::Transmit(t) => {
                out.transmits += 1;
                out.bytes += black_box(t).data.len();
            }
            Output::Event(CallEvent::Answered { media, .. }) => {
                out.answered = media.is_some();
            }
            Output::Event(e) => {
                black_box(e);
            }
        }
    }
}

/// `Call::new` (INVITE queued) and the three responses, every output drained.
fn call_invite_to_ack(
    cfg: CallConfig,
    t0: Instant,
    responses: &[(Duration, Response); 3],
) -> (Call, CallOut) {
    let mut out = CallOut::default();
    let mut call = Call::new(t0, cfg, SEED);
    drain_call(&mut call, &mut out);
    for (at, r) in responses {
        call.handle_response(t0 + *at, r);
        drain_call(&mut call, &mut out);
    }
    (call, out)
}

fn transaction(c: &mut Criterion) {
    let t0 = Instant::now();

    // The transaction alone, on the codec bench's INVITE.
    let invite_req = parse_request(&invite());
    let responses = [
        (AT_TRYING, parse_response(&trunk_response(&invite_req, 100))),
        (
            AT_RINGING,
            parse_response(&trunk_response(&invite_req, 180)),
        ),
        (AT_ANSWER, parse_response(&trunk_response(&invite_req, 200))),
    ];
    let client_invite = |req: Request| {
        let mut tx = ClientTransaction::new(req, false, TimerConfig::default(), t0);
        let mut sent = black_box(tx.bytes()).len();
        let mut passed_up = 0;
        for (at, r) in &responses {
            match tx.handle_response(t0 + *at, r) {
                ResponseAction::PassUp => passed_up += 1,
                ResponseAction::PassUpAndAck(ack) | ResponseAction::Ack(ack) => {
                    sent += ack.to_bytes().len()
                }
                ResponseAction::Absorb => {}
            }
        }
        (tx, sent, passed_up)
    };
    let (tx, _, passed_up) = client_invite(invite_req.clone());
    assert_eq!(
        passed_up, 3,
        "100, 180 and 200 go up to the transaction user"
    );
    assert!(tx.is_final() && tx.last_status() == 200);
    assert_eq!(
        tx.poll_timeout(),
        Some(t0 + AT_ANSWER + TimerConfig::default().t1 * 64),
        "Timer M armed"
    );

    // The call layer: its own INVITE (fixed seed: same branch and Call-ID every time).
    let cfg = call_config();
    let call_invite = {
        let mut call = Call::new(t0, cfg.clone(), SEED);
        let Some(Output::Transmit(t)) = call.poll_output() else {
            panic!("the call queues its INVITE at once");
        };
        parse_request(&t.data)
    };
    assert_eq!(call_invite.method, Method::Invite);
    let call_responses = [
        (
            AT_TRYING,
            parse_response(&trunk_response(&call_invite, 100)),
        ),
        (
            AT_RINGING,
            parse_response(&trunk_response(&call_invite, 180)),
        ),
        (
            AT_ANSWER,
            parse_response(&trunk_response(&call_invite, 200)),
        ),
    ];
    let (call, out) = call_invite_to_ack(cfg.clone(), t0, &call_responses);
    assert!(call.is_answered() && out.answered, "answered with media");
    assert_eq!(out.transmits, 2, "INVITE and the ACK of the 2xx");

    let mut g = c.benchmark_group("transaction");
    g.throughput(Throughput::Elements(1));
    g.bench_function("client_invite", |b| {
        b.iter_batched(|| invite_req.clone(), &client_invite, BatchSize::SmallInput)
    });
    // `iter`, so cloning the config (the runner builds one per call) and dropping the call are
    // timed too, as both happen once per call in the engine; `iter_batched` would hold
    // thousands of calls alive at once.
    g.bench_function("call_invite_to_ack", |b| {
        b.iter(|| call_invite_to_ack(cfg.clone(), t0, &call_responses).1)
    });
    g.finish();
}

/// One call's inbound datagrams, in arrival order: the trunk's 100, 180 and 200 to the INVITE,
/// and its 200 to our BYE.
struct Inbound {
    trying: Vec<u8>,
    ringing: Vec<u8>,
    ok: Vec<u8>,
    bye_ok: Vec<u8>,
}

/// Call `i` starts this long after the first (every call is over, timers included, well
/// before the next).
const CALL_SPACING: Duration = Duration::from_secs(60);
/// When we hang up, after the INVITE.
const AT_HANGUP: Duration = Duration::from_secs(36);
/// When the 200 to the BYE arrives.
const AT_BYE_OK: Duration = Duration::from_millis(36_030);

/// What the endpoint produced over a run.
#[derive(Debug, Default, PartialEq, Eq)]
struct EndpointTally {
    transmits: usize,
    answered: usize,
    ended: usize,
}

fn drain_endpoint(ep: &mut Endpoint, tally: &mut EndpointTally) {
    while let Some(o) = ep.poll_output() {
        match o {
            EndpointOutput::Transmit(t) => {
                tally.transmits += 1;
                black_box(t);
            }
            EndpointOutput::Event {
                event: CallEvent::Answered { .. },
                ..
            } => tally.answered += 1,
            EndpointOutput::Event {
                event: CallEvent::Ended(r),
                ..
            } => {
                tally.ended += 1;
                black_box(r);
            }
            other => {
                black_box(other);
            }
        }
    }
}

/// The requests (INVITE, ACK, BYE) the endpoint queued, parsed, in order.
fn sent_requests(ep: &mut Endpoint) -> Vec<Request> {
    let mut out = Vec::new();
    while let Some(o) = ep.poll_output() {
        if let EndpointOutput::Transmit(t) = o
            && let Ok(Message::Request(r)) = Message::parse(&t.data)
        {
            out.push(r);
        }
    }
    out
}

/// Runs `n` calls against a scripted trunk on an endpoint seeded with [`SEED`] and returns what
/// the trunk sent in each; a fresh endpoint with the same seed driven at the same instants sends
/// the same requests, so these datagrams answer its calls.
fn script_calls(n: usize, t0: Instant, cfg: &CallConfig) -> Vec<Inbound> {
    let mut ep = Endpoint::new(EndpointConfig {
        seed: SEED,
        ..EndpointConfig::default()
    });
    let mut script = Vec::with_capacity(n);
    for i in 0..n {
        let t = t0 + CALL_SPACING * i as u32;
        let h = ep.place_call(t, cfg.clone());
        let invite = sent_requests(&mut ep).remove(0);
        let inbound = Inbound {
            trying: trunk_response(&invite, 100),
            ringing: trunk_response(&invite, 180),
            ok: trunk_response(&invite, 200),
            bye_ok: Vec::new(),
        };
        for (at, d) in [
            (AT_TRYING, &inbound.trying),
            (AT_RINGING, &inbound.ringing),
            (AT_ANSWER, &inbound.ok),
        ] {
            ep.handle_datagram(t + at, Transport::Udp, TRUNK, d);
        }
        let ack = sent_requests(&mut ep);
        assert_eq!(ack.len(), 1);
        assert_eq!(ack[0].method, Method::Ack, "the 2xx is ACKed");
        ep.hangup(t + AT_HANGUP, h).expect("answered call hangs up");
        let bye = sent_requests(&mut ep).remove(0);
        assert_eq!(bye.method, Method::Bye);
        let inbound = Inbound {
            bye_ok: bye_ok(&bye),
            ..inbound
        };
        ep.handle_datagram(t + AT_BYE_OK, Transport::Udp, TRUNK, &inbound.bye_ok);
        while let Some(at) = ep.poll_timeout() {
            ep.handle_timeout(at);
        }
        let _ = sent_requests(&mut ep);
        script.push(inbound);
    }
    assert_eq!(ep.held_calls(), 0);
    script
}

/// The timed part: the calls of `script` through `ep`, one after another, in simulated time.
/// Includes cloning the `CallConfig` (the runner builds one per call; a few hundred ns).
fn run_calls(
    ep: &mut Endpoint,
    t0: Instant,
    cfg: &CallConfig,
    script: &[Inbound],
) -> EndpointTally {
    let mut tally = EndpointTally::default();
    for (i, inbound) in script.iter().enumerate() {
        let t = t0 + CALL_SPACING * i as u32;
        let h = ep.place_call(t, cfg.clone());
        drain_endpoint(ep, &mut tally);
        for (at, d) in [
            (AT_TRYING, &inbound.trying),
            (AT_RINGING, &inbound.ringing),
            (AT_ANSWER, &inbound.ok),
        ] {
            ep.handle_datagram(t + at, Transport::Udp, TRUNK, d);
            drain_endpoint(ep, &mut tally);
        }
        let _ = ep.hangup(t + AT_HANGUP, h);
        drain_endpoint(ep, &mut tally);
        ep.handle_datagram(t + AT_BYE_OK, Transport::Udp, TRUNK, &inbound.bye_ok);
        drain_endpoint(ep, &mut tally);
        while let Some(at) = ep.poll_timeout() {
            ep.handle_timeout(at);
            drain_endpoint(ep, &mut tally);
        }
    }
    tally
}

fn endpoint_call(c: &mut Criterion) {
    let cfg = call_config();
    // The script is as long as the longest sample asks for (built once, grown when needed).
    let mut script: Vec<Inbound> = Vec::new();
    let t0 = Instant::now();

    // The replay follows the script (3 transmits per call: INVITE, ACK, BYE).
    script.extend(script_calls(3, t0, &cfg));
    let mut ep = Endpoint::new(EndpointConfig {
        seed: SEED,
        ..EndpointConfig::default()
    });
    let tally = run_calls(&mut ep, t0, &cfg, &script);
    assert_eq!(
        tally,
        EndpointTally {
            transmits: 9,
            answered: 3,
            ended: 3
        }
    );
    assert_eq!(ep.stats().stray_responses, 0);
    assert_eq!(ep.held_calls(), 0);

    let mut g = c.benchmark_group("call");
    g.throughput(Throughput::Elements(1));
    // Deterministic CPU work: a short warm-up suffices, and keeps the script (about 1.6 KB
    // of datagrams per call) small.
    g.warm_up_time(Duration::from_secs(1));
    g.bench_function("endpoint_uac", |b| {
        b.iter_custom(|iters| {
            let n = usize::try_from(iters).expect("iteration count fits usize");
            if script.len() < n {
                script = script_calls(n.max(2 * script.len()), t0, &cfg);
            }
            let mut ep = Endpoint::new(EndpointConfig {
                seed: SEED,
                ..EndpointConfig::default()
            });
            let start = Instant::now();
            let tally = run_calls(&mut ep, t0, &cfg, &script[..n]);
            let elapsed = start.elapsed();
            assert_eq!(
                (tally.answered, tally.ended, tally.transmits),
                (n, n, 3 * n),
                "every call answered, ACKed, BYEd and ended"
            );
            assert_eq!(ep.held_calls(), 0, "every call forgotten after its timers");
            elapsed
        })
    });
    g.finish();
}

criterion_group!(benches, codec, transaction, endpoint_call);
criterion_main!(benches);
