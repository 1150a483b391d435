//! `dialer simulate` against `dialer call`, both over real sockets on loopback.
//!
//! Each test writes a personas file with one persona, starts `dialer simulate --max-calls 1`
//! on a free port, places one `dialer call` to it and checks what a user would: the caller's
//! JSON (outcome, digits, answering-machine verdict, who hung up) and the simulator's summary
//! line (calls by persona, digits sent, RTP both ways).
//!
//! - The dialer binary: `$DIALER_BIN`, else `target/<profile>/dialer` next to this test's own
//!   executable (`cargo build -p dialer` first).
//! - Tests run in parallel: SIP ports come from the kernel and are never handed out twice by
//!   one process; RTP ports are taken by bind (a port in use is skipped). Every child is killed
//!   by PID when its guard drops; each test is bounded to about 20 s.
//! - On a failure the message carries both processes' stderr (run with `DIALER_LOG=debug`).

mod common;
use common::{CALL_BOUND, EXIT_BOUND, Proc, READY_BOUND, RunDir, Sim, free_port};

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

fn check(call: &Value, field: &str, want: Value, sim: &Sim) {
    assert_eq!(
        call[field],
        want,
        "`{field}` in the caller's JSON {call}\n--- simulate stderr:\n{}",
        sim.proc.stderr()
    );
}

fn human_keys_42(transport: &str) {
    let sim = Sim::start(
        &format!("rfc4733-{transport}"),
        "kind = \"human_dtmf\"\nring_secs = 0.5\ndelay_secs = 1.2\ndigits = \"42\"\ndtmf = \"rfc4733\"",
        &["--max-calls", "1"],
    );
    let call = sim.call(transport, &["--dtmf-timeout", "3"]);
    check(&call, "outcome", "answered".into(), &sim);
    check(&call, "dtmf", "42".into(), &sim);
    check(&call, "hangup_by", "us".into(), &sim);
    assert_eq!(call["amd"]["verdict"], "human", "{call}");
    assert!(call["rtp"]["received"].as_u64() > Some(100), "{call}");
    let summary = sim.summary();
    assert_eq!(summary["calls"], 1, "{summary}");
    assert_eq!(summary["by_persona"]["p"], 1, "{summary}");
    assert_eq!(summary["answered"], 1, "{summary}");
    assert_eq!(summary["digits_sent"], 2, "{summary}");
    assert_eq!(summary["hangup_by_caller"], 1, "{summary}");
    assert!(
        summary["rtp"]["packets_in"].as_u64() > Some(100),
        "{summary}"
    );
    assert!(
        summary["rtp"]["packets_out"].as_u64() > Some(100),
        "{summary}"
    );
}

#[test]
fn human_keys_rfc4733_digits_over_udp() {
    human_keys_42("udp");
}

#[test]
fn human_keys_rfc4733_digits_over_tcp() {
    human_keys_42("tcp");
}

#[test]
fn human_keys_in_band_digit() {
    let sim = Sim::start(
        "inband",
        "kind = \"human_dtmf\"\ndelay_secs = 1.2\ndigits = \"7\"\ndtmf = \"inband\"",
        &["--max-calls", "1"],
    );
    let call = sim.call("udp", &["--dtmf-timeout", "3"]);
    check(&call, "outcome", "answered".into(), &sim);
    check(&call, "dtmf", "7".into(), &sim);
    assert_eq!(call["amd"]["verdict"], "human", "{call}");
    assert_eq!(sim.summary()["digits_sent"], 1);
}

#[test]
fn busy_callee() {
    let sim = Sim::start("busy", "kind = \"busy\"", &["--max-calls", "1"]);
    let call = sim.call("udp", &[]);
    check(&call, "outcome", "busy".into(), &sim);
    check(&call, "sip_status", 486.into(), &sim);
    let summary = sim.summary();
    assert_eq!(
        (summary["calls"].as_u64(), summary["answered"].as_u64()),
        (Some(1), Some(0))
    );
}

#[test]
fn unknown_number() {
    let sim = Sim::start("not-found", "kind = \"not_found\"", &["--max-calls", "1"]);
    let call = sim.call("tcp", &[]);
    check(&call, "outcome", "invalid_number".into(), &sim);
    check(&call, "sip_status", 404.into(), &sim);
}

#[test]
fn voicemail_is_a_machine() {
    let sim = Sim::start(
        "voicemail",
        "kind = \"voicemail\"\nring_secs = 0.5\nmax_secs = 4",
        &["--max-calls", "1"],
    );
    let call = sim.call("udp", &["--hangup-after", "10"]);
    check(&call, "outcome", "answered".into(), &sim);
    check(&call, "hangup_by", "them".into(), &sim);
    assert_eq!(call["amd"]["verdict"], "machine", "{call}");
    assert_eq!(sim.summary()["hangup_by_callee"], 1);
}

#[test]
fn callee_hangs_up_mid_prompt() {
    let sim = Sim::start(
        "mid-prompt",
        "kind = \"hangup_mid_prompt\"\nafter_secs = 2",
        &["--max-calls", "1"],
    );
    // A 6 s prompt the callee interrupts after 2 s.
    let prompt = sim.dir.path("prompt.wav");
    write_wav(&prompt, 8000, &tone_with_pauses(6.0));
    let call = sim.call("udp", &["--prompt", prompt.to_str().expect("utf-8 path")]);
    check(&call, "outcome", "answered".into(), &sim);
    check(&call, "hangup_by", "them".into(), &sim);
    let ms = call["duration_ms"].as_u64().unwrap_or_default();
    assert!((1500..4000).contains(&ms), "hung up after {ms} ms: {call}");
}

#[test]
fn builtin_mix_runs_without_a_personas_file() {
    let dir = RunDir::new("builtin");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut proc = Proc::spawn(
        &dir,
        "simulate",
        &[
            "simulate",
            "--listen",
            &listen,
            "--seed",
            "11",
            "--max-calls",
            "4",
        ],
    );
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + READY_BOUND;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "not ready:\n{}", proc.stderr());
        thread::sleep(Duration::from_millis(50));
    }
    let trunk = format!("sip:127.0.0.1:{port}");
    let mut calls: Vec<Proc> = (0..4)
        .map(|i| {
            Proc::spawn(
                &dir,
                ["c0", "c1", "c2", "c3"][i],
                &[
                    "call",
                    "--trunk",
                    &trunk,
                    "--to",
                    "100",
                    "--ring-timeout",
                    "4",
                    "--hangup-after",
                    "2",
                ],
            )
        })
        .collect();
    let mut outcomes = Vec::new();
    for c in &mut calls {
        let st = c.wait_for(CALL_BOUND);
        assert!(st.is_some_and(|s| s.success()), "{}", c.stderr());
        let json: Value = serde_json::from_str(c.stdout().trim()).expect("call JSON");
        outcomes.push(json["outcome"].as_str().unwrap_or_default().to_owned());
    }
    let st = proc.wait_for(EXIT_BOUND);
    assert!(st.is_some_and(|s| s.success()), "{}", proc.stderr());
    let summary: Value = serde_json::from_str(proc.stdout().trim()).expect("summary");
    assert_eq!(summary["calls"], 4, "{summary}");
    let drawn: u64 = summary["by_persona"]
        .as_object()
        .expect("by_persona")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(drawn, 4, "{summary}");
    let answered = outcomes.iter().filter(|o| *o == "answered").count() as u64;
    assert_eq!(
        summary["answered"].as_u64(),
        Some(answered),
        "{summary} {outcomes:?}"
    );
}

#[test]
fn sigterm_hangs_up_live_calls_and_prints_the_summary() {
    let mut sim = Sim::start("sigterm", "kind = \"answer\"", &[]);
    let trunk = format!("sip:127.0.0.1:{}", sim.port);
    let mut call = Proc::spawn(
        &sim.dir,
        "call",
        &[
            "call",
            "--trunk",
            &trunk,
            "--to",
            "100",
            "--hangup-after",
            "30",
        ],
    );
    thread::sleep(Duration::from_millis(1500));
    sim.proc.signal("-TERM");
    let status = call.wait_for(CALL_BOUND);
    assert!(status.is_some_and(|s| s.success()), "{}", call.stderr());
    let json: Value = serde_json::from_str(call.stdout().trim()).expect("call JSON");
    assert_eq!(json["hangup_by"], "them", "{json}");
    let st = sim.proc.wait_for(EXIT_BOUND);
    assert!(st.is_some_and(|s| s.success()), "{}", sim.proc.stderr());
    let summary: Value = serde_json::from_str(sim.proc.stdout().trim()).expect("summary");
    assert_eq!(summary["calls"], 1, "{summary}");
    assert_eq!(summary["hangup_by_callee"], 1, "{summary}");
    assert_eq!(summary["live"], 0, "{summary}");
    assert!(
        !sim.proc.stderr().contains("100@") && !sim.proc.stderr().contains("+380"),
        "no phone number in the logs"
    );
}

#[test]
fn bad_personas_file_exits_2_naming_file_persona_and_field() {
    let dir = RunDir::new("bad");
    let file = dir.path("bad.toml");
    fs::write(
        &file,
        "[[persona]]\nname = \"ok\"\nweight = 1\nkind = \"busy\"\n\n\
         [[persona]]\nname = \"vm\"\nweight = 2\nkind = \"voicemail\"\ngreeting = \"missing.wav\"\n",
    )
    .expect("write");
    let mut p = Proc::spawn(
        &dir,
        "simulate",
        &[
            "simulate",
            "--listen",
            "127.0.0.1:0",
            "--personas",
            file.to_str().expect("utf-8"),
        ],
    );
    let status = p.wait_for(EXIT_BOUND);
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{}", p.stderr());
    let err = p.stderr();
    assert!(
        err.contains(&format!(
            "{}:6: persona #2 (vm): field `greeting`",
            file.display()
        )),
        "{err}"
    );
    fs::write(
        &file,
        "[[persona]]\nname = \"x\"\nweight = -1\nkind = \"busy\"\n",
    )
    .expect("write");
    let mut p = Proc::spawn(
        &dir,
        "simulate",
        &["simulate", "--personas", file.to_str().expect("utf-8")],
    );
    assert_eq!(p.wait_for(EXIT_BOUND).and_then(|s| s.code()), Some(2));
    assert!(
        p.stderr().contains("field `weight`: -1 is negative"),
        "{}",
        p.stderr()
    );
}

/// A 440 Hz tone in 0.4 s bursts with 0.2 s pauses, `secs` long, at 8 kHz.
fn tone_with_pauses(secs: f64) -> Vec<i16> {
    let n = (secs * 8000.0) as usize;
    (0..n)
        .map(|i| {
            if (i % 4800) < 3200 {
                ((i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin() * 6000.0) as i16
            } else {
                0
            }
        })
        .collect()
}

/// A 16-bit mono PCM WAV.
fn write_wav(path: &Path, rate: u32, samples: &[i16]) {
    let data_len = (samples.len() * 2) as u32;
    let mut wav = Vec::with_capacity(44 + samples.len() * 2);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        wav.extend_from_slice(&s.to_le_bytes());
    }
    fs::write(path, wav).expect("write WAV");
}
