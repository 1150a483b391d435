//! `dialer demo` end to end: the embedded SQLite store, the simulated crowd on loopback, a
//! generated base, the default survey through the campaign runner, the report. Keys only
//! (`--no-asr`), a small base, so it runs in about a minute.

mod common;
use common::{Proc, RunDir};

use std::time::Duration;

#[test]
fn demo_runs_a_whole_campaign_and_prints_the_segmented_report() {
    let dir = RunDir::new("demo");
    let data = dir.path("data");
    let mut p = Proc::spawn(
        &dir,
        "demo",
        &[
            "demo",
            "--contacts",
            "80",
            "--cps",
            "20",
            "--no-asr",
            "--data",
            data.to_str().expect("utf-8"),
        ],
    );
    let status = p.wait_for(Duration::from_secs(240));
    let out = p.stdout();
    assert!(
        status.is_some_and(|s| s.success()),
        "dialer demo ended with {status:?}\n{out}\n--- stderr:\n{}",
        p.stderr()
    );
    assert!(out.contains("Campaign report (80 contacts"), "{out}");
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
    // One database file under --data.
    let dbs = std::fs::read_dir(&data)
        .expect("data dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "db"))
        .count();
    assert_eq!(dbs, 1);
}
