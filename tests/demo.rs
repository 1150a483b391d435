//! `dialer demo` end to end: the store (embedded SQLite, and the real PostgreSQL), the
//! simulated crowd on loopback, a generated CSV base imported with its broken rows refused,
//! the default survey through the campaign runner, the report. Keys only (`--no-asr`), a small
//! base, so each run takes about a minute. The SQLite run gives every call its own RTP ports,
//! the PostgreSQL run puts all calls of each side on one shared RTP socket.

mod common;
use common::{PgDb, Proc, RunDir};

use std::time::Duration;

/// Run the demo with 80 CSV rows (rows 50 and 75 are broken: 78 contacts); its report.
fn run_demo(dir: &RunDir, store: Option<&str>, rtp_sockets: &str) -> String {
    let data = dir.path("data");
    let mut args = vec![
        "demo",
        "--contacts",
        "80",
        "--cps",
        "20",
        "--no-asr",
        "--rtp-sockets",
        rtp_sockets,
        "--data",
        data.to_str().expect("utf-8"),
    ];
    if let Some(url) = store {
        args.extend(["--store", url]);
    }
    let mut p = Proc::spawn(dir, "demo", &args);
    let status = p.wait_for(Duration::from_secs(300));
    let out = p.stdout();
    assert!(
        status.is_some_and(|s| s.success()),
        "dialer demo ended with {status:?}\n{out}\n--- stderr:\n{}",
        p.stderr()
    );
    assert!(
        p.stderr().contains("80 CSV rows, 78 contacts"),
        "{}",
        p.stderr()
    );
    assert!(out.contains("Campaign report (78 contacts"), "{out}");
    // Every contact was worked to the end: nothing pending, nothing lost.
    assert!(
        out.contains(", 0 still pending; 0 attempts interrupted; 0 store errors"),
        "{out}"
    );
    // Keyed answers came back as the script's categories, and the system outcomes the crowd
    // produces (busy, no answer, voicemail...) are there too.
    for needle in [
        "not_interested",
        "send_details",
        "answered",
        "busy",
        "no_answer",
    ] {
        assert!(out.contains(needle), "no {needle} in the report:\n{out}");
    }
    // Opt-outs were honoured: the count of erased contacts is reported and matches the
    // opt_out answers.
    let opt_out_answers = out
        .lines()
        .find(|l| l.trim_start().starts_with("opt_out"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    let erased = out
        .lines()
        .find(|l| l.contains("opt-outs honoured"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("opt-outs line");
    assert_eq!(erased, opt_out_answers, "{out}");
    out
}

#[test]
fn demo_runs_a_whole_campaign_on_sqlite() {
    let dir = RunDir::new("demo-sqlite");
    run_demo(&dir, None, "per-call");
    // One database file under --data.
    let dbs = std::fs::read_dir(dir.path("data"))
        .expect("data dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "db"))
        .count();
    assert_eq!(dbs, 1);
}

#[test]
fn demo_runs_a_whole_campaign_on_postgresql() {
    let db = PgDb::create("demo");
    let dir = RunDir::new("demo-pg");
    // Both ends on shared RTP sockets: every call's keys must reach its own call, told
    // apart by the SSRCs the two sides announce.
    run_demo(&dir, Some(&db.url), "shared");
}
