//! `dialer bench --floor --sipp`: the load bench with its two comparisons in one invocation,
//! small enough for the test suite (20 calls of 2 s, 1 s per floor mode; about 15 s).
//!
//! - The dialer binary: `$DIALER_BIN`, else `target/<profile>/dialer` next to this test's own
//!   executable (`cargo build -p dialer` first).
//! - `sipp` must be installed (scripts/test.sh installs it) and the test run as root (SIPp plays
//!   the pcap from raw sockets); a missing one fails the test, it is never skipped.
//! - The bench starts its own simulators and SIPp on free loopback ports and stops them by PID;
//!   the bench itself is killed by PID if it overruns its bound.

mod common;
use common::{Proc, RunDir};

use std::time::Duration;

use serde_json::Value;

/// The bench's own bounds are tighter; this only catches a hang.
const BENCH_BOUND: Duration = Duration::from_secs(60);

fn num(v: &Value, path: &str) -> f64 {
    v.pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {path} in {v}"))
}

#[test]
fn bench_reports_sipp_and_the_udp_floor_beside_our_figures() {
    let dir = RunDir::new("bench-compare");
    let mut bench = Proc::spawn(
        &dir,
        "bench",
        &[
            "bench",
            "--rate",
            "20",
            "--concurrency",
            "20",
            "--call-secs",
            "2",
            "--duration",
            "2",
            "--seed",
            "7",
            "--floor",
            "--floor-secs",
            "1",
            "--sipp",
            "--json",
        ],
    );
    let status = bench.wait_for(BENCH_BOUND);
    assert!(
        status.is_some_and(|s| s.success()),
        "dialer bench ended with {status:?} within {BENCH_BOUND:?}\n--- stderr:\n{}",
        bench.stderr()
    );
    let out = bench.stdout();
    let r: Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {out:?}\n{}", bench.stderr()));

    // Our run: 20 calls/s for 2 s of 2 s calls, at most 20 at once; every call answered.
    let placed = r["placed"].as_u64().expect("placed");
    assert!((20..=40).contains(&placed), "{r}");
    assert_eq!(r["answered"], r["placed"], "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    // Both ends on shared RTP sockets (the bench's default): a tick's packets of all calls in
    // one sendmmsg, every packet to its own call.
    assert_eq!(r["rtp"]["sockets"], "shared", "{r}");
    assert_eq!(r["rtp"]["lost_inbound"], 0, "{r}");
    assert!(num(&r, "/rtp/packets_per_send_syscall") >= 3.0, "{r}");
    assert!(num(&r, "/rtp/packets_per_recv_syscall") >= 3.0, "{r}");

    // SIPp placed the same calls, all completed, and its pcap reached the simulator.
    let s = &r["sipp"];
    assert_eq!(s["params"]["calls"], r["placed"], "{s}");
    assert_eq!(s["calls_created"], r["placed"], "{s}");
    assert_eq!(s["calls_successful"], r["placed"], "{s}");
    assert_eq!(s["calls_failed"], 0, "{s}");
    assert_eq!(s["exit_code"], 0, "{s}");
    assert_eq!(s["simulator"]["calls_answered"], r["placed"], "{s}");
    // The callee understood every message of SIPp's (INVITE, ACK, BYE, and any
    // retransmission) and every call ended with SIPp's BYE.
    assert_eq!(s["summary"]["sip"]["parse_errors"], 0, "{s}");
    assert!(
        s["summary"]["sip"]["received"]
            .as_u64()
            .is_some_and(|n| n >= 3 * placed),
        "{s}"
    );
    assert_eq!(s["summary"]["hangup_by_caller"], r["placed"], "{s}");
    // 2 s calls: 100 packets of 20 ms each.
    assert_eq!(s["params"]["pcap_packets"], 100, "{s}");
    let rtp_in = num(s, "/simulator/rtp_packets_in");
    // The callee stops counting at SIPp's BYE, which can overtake the pcap's last packets
    // on a busy machine.
    let pcap_total = placed as f64 * 100.0;
    assert!(
        rtp_in >= 0.9 * pcap_total && rtp_in <= pcap_total,
        "the simulator received {rtp_in} RTP packets from SIPp's {placed} × 100: {s}"
    );
    assert_eq!(s["simulator"]["rtp_lost_in"], 0, "{s}");
    assert!(num(s, "/cpu_s") > 0.0, "{s}");
    let ratio = num(s, "/ours_over_sipp_cpu_per_call");
    assert!(ratio.is_finite() && ratio > 0.0, "{s}");

    // The floor: the run's peak live calls, every packet sent and received in both modes.
    let f = &r["floor"];
    let peak = r["live"]["peak"].as_u64().expect("live.peak");
    assert_eq!(f["calls"].as_u64(), Some(peak.max(1)), "{f}");
    for mode in ["send_to", "sendmmsg", "shared"] {
        let m = &f["modes"][mode];
        let sent = num(m, "/send/packets");
        // 1 s of 20 ms ticks for every call.
        assert_eq!(sent, 50.0 * peak as f64, "{mode}: {m}");
        assert_eq!(num(m, "/recv/packets"), sent, "{mode}: {m}");
        assert!(num(m, "/send/cpu_s") > 0.0, "{mode}: {m}");
        assert!(num(m, "/recv/cpu_s") > 0.0, "{mode}: {m}");
        let ratio = num(f, &format!("/dialer_over_floor/{mode}"));
        assert!(ratio.is_finite() && ratio > 0.0, "{mode}: {f}");
    }
    // One sendmmsg per 32 packets at most (20 calls: one per tick), one sendto per packet.
    assert_eq!(
        num(f, "/modes/send_to/send/syscalls"),
        num(f, "/modes/send_to/send/packets"),
        "{f}"
    );
    assert!(
        num(f, "/modes/sendmmsg/send/syscalls") <= 50.0 * (peak as f64 / 32.0).ceil(),
        "{f}"
    );
}
