//! The media engine's shared RTP socket ([`SocketMode::Shared`]) over real loopback UDP: many
//! calls on one socket pair each way, every packet delivered to its own call — by the SSRC the
//! SDP announced where both ends are one socket, by source address where the far end has a
//! port per call — and packets of no call counted, never delivered.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use engine::media::{MediaConfig, MediaEngine, MediaHandle, SocketMode};
use media::session::MediaParams;
use sip::sdp::{Negotiated, negotiate};

const CALLS: usize = 60;
const TICKS: u32 = 100;

fn engine(mode: SocketMode, ports: (u16, u16)) -> MediaEngine {
    engine_on(mode, ports, 1)
}

fn engine_on(mode: SocketMode, ports: (u16, u16), threads: usize) -> MediaEngine {
    let mut cfg = MediaConfig::new("127.0.0.1".parse().unwrap()).with_sockets(mode);
    (cfg.port_min, cfg.port_max) = ports;
    cfg.threads = threads;
    cfg.measure_send = true;
    MediaEngine::new(cfg)
}

/// Allocate, offer/answer and start one call between `a` (the caller) and `b`.
fn call(
    a: &mut MediaEngine,
    b: &mut MediaEngine,
    i: u64,
    now: Instant,
) -> (MediaHandle, MediaHandle) {
    let (ha, _) = a.allocate().unwrap();
    let (hb, _) = b.allocate().unwrap();
    let offer = a.local_media(ha, 1000 + i).unwrap().offer();
    let (answer, at_b) = b.local_media(hb, 2000 + i).unwrap().answer(&offer).unwrap();
    let at_a = negotiate(&offer, &answer).unwrap();
    start(a, ha, &at_a, i, now);
    start(b, hb, &at_b, i + 7919, now);
    (ha, hb)
}

fn start(e: &mut MediaEngine, h: MediaHandle, n: &Negotiated, seed: u64, now: Instant) {
    let mut p = MediaParams::new(
        engine::media::codec_from_sdp(n.codec),
        n.telephone_event_pt,
        n.remote_rtp,
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    p.remote_ssrc = n.remote_ssrc;
    p.vad = None;
    p.inband_dtmf = false;
    e.start(h, now, p, None);
}

/// Tick both engines `TICKS` times on a 20 ms schedule (real sockets, simulated clock: a short
/// real pause lets loopback deliver between ticks).
fn run(a: &mut MediaEngine, b: &mut MediaEngine, t0: Instant) {
    for k in 1..=TICKS {
        let now = t0 + Duration::from_millis(20) * k;
        a.tick(now);
        b.tick(now);
        std::thread::sleep(Duration::from_micros(300));
    }
    // The last tick's packets.
    std::thread::sleep(Duration::from_millis(5));
    let end = t0 + Duration::from_millis(20) * (TICKS + 1);
    a.tick(end);
    b.tick(end);
}

/// Every call got about as many packets as its peer sent it: a misrouted packet would give one
/// call more and another fewer (and an SSRC change, which the receiver counts as a restart).
fn assert_each_call_got_its_own(
    a: &MediaEngine,
    b: &MediaEngine,
    pairs: &[(MediaHandle, MediaHandle)],
    unrouted_before: u64,
) {
    for &(ha, hb) in pairs {
        let (sa, sb) = (a.media(ha).unwrap().stats(), b.media(hb).unwrap().stats());
        assert!(sa.sent >= u64::from(TICKS), "{sa:?}");
        // The last tick's packets may still be in flight; nothing more, nothing less.
        assert!(
            sb.received <= sa.sent && sb.received + 2 >= sa.sent,
            "b got {} of a's {} ({sb:?})",
            sb.received,
            sa.sent
        );
        assert!(
            sa.received <= sb.sent && sa.received + 2 >= sb.sent,
            "a got {} of b's {} ({sa:?})",
            sa.received,
            sb.sent
        );
        assert_eq!((sa.lost, sb.lost), (0, 0));
    }
    assert_eq!(a.stats().unrouted, unrouted_before);
    assert_eq!(b.stats().unrouted, 0);
}

#[test]
fn two_shared_engines_tell_calls_apart_by_announced_ssrc() {
    let mut a = engine(SocketMode::Shared, (47_000, 47_099));
    let mut b = engine(SocketMode::Shared, (47_100, 47_199));
    let t0 = Instant::now();
    let pairs: Vec<_> = (0..CALLS as u64)
        .map(|i| call(&mut a, &mut b, i, t0))
        .collect();
    // One address each way for every call.
    let addr_a = a.local_media(pairs[0].0, 0).unwrap().rtp_port;
    assert!(
        pairs
            .iter()
            .all(|p| a.local_media(p.0, 0).unwrap().rtp_port == addr_a)
    );
    run(&mut a, &mut b, t0);
    assert_each_call_got_its_own(&a, &b, &pairs, 0);
    // Batched: dozens of packets per system call each way.
    let s = a.stats();
    assert!(s.packets_received >= (CALLS as u64) * u64::from(TICKS));
    assert!(
        s.packets_sent / s.send_syscalls.max(1) >= 30,
        "{} packets in {} sendmmsg calls",
        s.packets_sent,
        s.send_syscalls
    );
    assert!(
        s.packets_received / s.recv_syscalls.max(1) >= 10,
        "{} packets in {} recvmmsg calls",
        s.packets_received,
        s.recv_syscalls
    );
    // SSRCs are unique within an engine.
    let mut ssrcs: Vec<u32> = pairs.iter().map(|p| a.local_ssrc(p.0).unwrap()).collect();
    ssrcs.sort_unstable();
    ssrcs.dedup();
    assert_eq!(ssrcs.len(), CALLS);
}

#[test]
fn engines_on_several_threads_keep_every_call_apart() {
    // Three shards against two: each shard has its own shared socket, and each call's
    // packets still find it.
    let mut a = engine_on(SocketMode::Shared, (48_000, 48_099), 3);
    let mut b = engine_on(SocketMode::Shared, (48_100, 48_199), 2);
    assert_eq!((a.threads(), b.threads()), (3, 2));
    let t0 = Instant::now();
    let pairs: Vec<_> = (0..CALLS as u64)
        .map(|i| call(&mut a, &mut b, i, t0))
        .collect();
    let mut ports: Vec<u16> = pairs
        .iter()
        .map(|p| a.local_media(p.0, 0).unwrap().rtp_port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3, "{ports:?}");
    run(&mut a, &mut b, t0);
    assert_each_call_got_its_own(&a, &b, &pairs, 0);
    // Every packet was timed, whichever thread sent it.
    let t = a.send_timing().unwrap();
    assert_eq!(t.lateness_us.len(), a.stats().packets_sent);
    // A per-call engine on two threads against them.
    let mut c = engine_on(SocketMode::PerCall, (48_200, 48_599), 2);
    let t1 = t0 + Duration::from_secs(10);
    let more: Vec<_> = (0..20).map(|i| call(&mut c, &mut b, 100 + i, t1)).collect();
    run(&mut c, &mut b, t1);
    assert_each_call_got_its_own(&c, &b, &more, 0);
}

#[test]
fn a_shared_engine_routes_a_per_call_peer_by_address() {
    let mut a = engine(SocketMode::Shared, (47_200, 47_299));
    let mut b = engine(SocketMode::PerCall, (47_300, 47_699));
    let t0 = Instant::now();
    let pairs: Vec<_> = (0..CALLS as u64)
        .map(|i| call(&mut a, &mut b, i, t0))
        .collect();
    // The per-call side announces no SSRC: the shared side routes by its addresses.
    assert!(b.local_ssrc(pairs[0].1).is_none());
    run(&mut a, &mut b, t0);
    assert_each_call_got_its_own(&a, &b, &pairs, 0);
}

#[test]
fn packets_of_no_call_are_counted_not_delivered() {
    let mut a = engine(SocketMode::Shared, (47_700, 47_799));
    let mut b = engine(SocketMode::Shared, (47_800, 47_899));
    let t0 = Instant::now();
    let (ha, hb) = call(&mut a, &mut b, 1, t0);
    let shared_a: SocketAddr = format!("127.0.0.1:{}", a.local_media(ha, 0).unwrap().rtp_port)
        .parse()
        .unwrap();
    // A stranger, and b's socket address with an SSRC b never announced (a stray packet of
    // an ended call): neither may reach the call.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rtp = [0u8; 172];
    rtp[0] = 0x80;
    rtp[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    stranger.send_to(&rtp, shared_a).unwrap();
    stranger.send_to(&rtp[..5], shared_a).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    a.tick(t0 + Duration::from_millis(20));
    assert_eq!(a.stats().unrouted, 2);
    assert_eq!(a.media(ha).unwrap().stats().received, 0);
    // With b's packets flowing, only b's call's own SSRC gets through.
    run(&mut a, &mut b, t0 + Duration::from_millis(20));
    assert_eq!(a.stats().unrouted, 2);
    let got = a.media(ha).unwrap().stats().received;
    assert!(got + 2 >= b.media(hb).unwrap().stats().sent, "{got}");
    // Released calls free their routes and SSRCs: a new call on the same engines works.
    a.release(ha);
    b.release(hb);
    // b's last packet of the ended call was still in a's socket: it has no call now.
    let t1 = t0 + Duration::from_secs(10);
    a.tick(t1);
    assert_eq!(a.stats().unrouted, 3);
    let pair = call(&mut a, &mut b, 2, t1);
    run(&mut a, &mut b, t1);
    assert_each_call_got_its_own(&a, &b, &[pair], 3);
}
