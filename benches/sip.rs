//! Micro-benchmarks of the SIP message codec: parse and serialise a realistic INVITE carrying an
//! SDP offer, and the 200 OK carrying the answer. Throughput is reported per message
//! (`Throughput::Elements(1)`), so criterion prints messages per second.
//!
//! Run: `cargo bench -p benches --bench sip`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sip::Message;

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

criterion_group!(benches, codec);
criterion_main!(benches);
