//! Micro-benchmarks of the scheduler's CPU work per call (issue 5), as the campaign runner
//! (`engine::campaign`) does it:
//!
//! - `schedule/tz_parse`: the contact's zone name → `chrono_tz::Tz` (the runner parses the
//!   stored name each time it builds a `ContactState`: for `decide`, the caps check and
//!   `plan_next`, so three times per call);
//! - `schedule/decide/*`: [`Policy::decide`] on a claimed contact: a fresh contact inside the
//!   window (the runner's common case), a busy retry that the window pushes across the US
//!   spring-forward weekend, a daily cap that pushes a Kyiv contact across the autumn
//!   fall-back Sunday;
//! - `schedule/caps_check`: what the store task computes around `Store::attempt_counts` when
//!   caps are set (local day bounds + `Caps::earliest_after_caps`);
//! - `schedule/plan_next/{busy,no_answer,interrupted}`: [`Policy::plan_next`] when an attempt
//!   ends (retry rule + next open window);
//! - `schedule/trunk_pick/*`: the campaign's pacer plus [`engine::campaign::pick_trunk`] over
//!   three trunks weighted 5:3:2 (smooth weighted round robin over per-trunk token buckets),
//!   then the releases at the call's end; once with every trunk free, once with the
//!   heaviest trunk out of channels (every pick it would win falls over to the next).
//!
//! The policy is a realistic one: weekdays 09:00–13:00 + 14:00–20:00, Saturday 10:00–16:00,
//! twelve holidays (one a shortened day), the default retry rules, caps 3 a day / 6 in 7 days
//! across campaigns / 30 min apart. Instants are fixed (2026), so every run does the same work.
//!
//! Run: `cargo bench -p benches --bench schedule`.
use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use criterion::{Criterion, criterion_group, criterion_main};
use engine::campaign::{TrunkLine, pick_trunk};
use engine::schedule::{ContactState, Decision, Next, Outcome, Policy, local_day_bounds};
use engine::trunk::{Pacer, SharedPacer, TrunkConfig};

const POLICY: &str = r#"
default_tz = "Europe/Kyiv"
[window]
mon = ["09:00-13:00", "14:00-20:00"]
tue = ["09:00-13:00", "14:00-20:00"]
wed = ["09:00-13:00", "14:00-20:00"]
thu = ["09:00-13:00", "14:00-20:00"]
fri = ["09:00-13:00", "14:00-20:00"]
sat = ["10:00-16:00"]
holidays = [
    "2026-01-01", "2026-01-07", "2026-03-08", "2026-04-12", "2026-05-01", "2026-05-09",
    "2026-05-31", "2026-06-28", "2026-08-24", "2026-10-14", "2026-12-25",
    { date = "2026-12-31", hours = ["10:00-14:00"] },
]
[caps]
max_per_day = 3
max_across_campaigns = 6
across_campaigns_days = 7
min_gap = "30m"
"#;

fn policy() -> Policy {
    toml::from_str(POLICY).unwrap_or_else(|e| panic!("{e}"))
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn kyiv() -> Tz {
    "Europe/Kyiv".parse().unwrap()
}

fn new_york() -> Tz {
    "America/New_York".parse().unwrap()
}

fn bench_policy(c: &mut Criterion) {
    let p = policy();
    let mut g = c.benchmark_group("schedule");

    g.bench_function("tz_parse", |b| {
        b.iter(|| black_box("America/New_York").parse::<Tz>().ok())
    });

    // Fresh contact, Tuesday 2026-03-31 10:00 Kyiv (two days after spring forward): call now.
    // As the runner builds it: attempts from the claim, nothing else (caps are counted later).
    let fresh = ContactState {
        tz: Some(kyiv()),
        attempts: 0,
        seed: 0x9E37_79B9_7F4A_7C15,
        ..ContactState::default()
    };
    let now = utc(2026, 3, 31, 7, 0);
    assert_eq!(p.decide(&fresh, now), Decision::CallNow);
    g.bench_function("decide/fresh_in_window_kyiv", |b| {
        b.iter(|| p.decide(black_box(&fresh), black_box(now)))
    });

    // Busy at Saturday 2026-03-07 17:55 New York (EST): the retry (≥ 10 min) is after 16:00,
    // Sunday is closed and the clocks go forward on it: Monday 09:00 EDT = 13:00 UTC.
    let ended = utc(2026, 3, 7, 22, 55);
    let busy = ContactState {
        tz: Some(new_york()),
        attempts: 2,
        attempts_today: 2,
        cross_campaign_attempts: 3,
        cross_campaign_oldest: Some(utc(2026, 3, 3, 15, 0)),
        last_attempt_at: Some(ended),
        last_outcome: Some(Outcome::Busy),
        seed: 42,
    };
    match p.decide(&busy, ended) {
        Decision::NotBefore(t, _) => assert_eq!(t, utc(2026, 3, 9, 13, 0)),
        other => panic!("{other:?}"),
    }
    g.bench_function("decide/busy_retry_over_dst_new_york", |b| {
        b.iter(|| p.decide(black_box(&busy), black_box(ended)))
    });

    // Third attempt today at Saturday 2026-10-24 13:00 Kyiv: the daily cap moves it to
    // Sunday (closed; clocks go back) and on to Monday 09:00 EET = 07:00 UTC.
    let now = utc(2026, 10, 24, 10, 0);
    let capped = ContactState {
        tz: Some(kyiv()),
        attempts: 3,
        attempts_today: 3,
        cross_campaign_attempts: 3,
        cross_campaign_oldest: Some(utc(2026, 10, 20, 9, 0)),
        last_attempt_at: Some(utc(2026, 10, 24, 9, 0)),
        last_outcome: None,
        seed: 7,
    };
    match p.decide(&capped, now) {
        Decision::NotBefore(t, _) => assert_eq!(t, utc(2026, 10, 26, 7, 0)),
        other => panic!("{other:?}"),
    }
    g.bench_function("decide/daily_cap_over_dst_kyiv", |b| {
        b.iter(|| p.decide(black_box(&capped), black_box(now)))
    });

    // The store task's caps check around `attempt_counts` (engine::campaign::capped_until).
    let now = utc(2026, 3, 31, 7, 0);
    let counted = ContactState {
        attempts_today: 1,
        cross_campaign_attempts: 2,
        cross_campaign_oldest: Some(utc(2026, 3, 27, 8, 0)),
        last_attempt_at: Some(utc(2026, 3, 31, 6, 0)),
        ..fresh.clone()
    };
    g.bench_function("caps_check", |b| {
        b.iter(|| {
            let tz = p.tz_of(black_box(&counted));
            let (day_start, _) = local_day_bounds(black_box(now), tz);
            let since = now - chrono::TimeDelta::days(i64::from(p.caps.across_campaigns_days));
            (
                day_start,
                since,
                p.caps.earliest_after_caps(&counted, now, tz),
            )
        })
    });

    // After the attempt: retry rule + next open window.
    for (name, tz, key, attempts, ended) in [
        // Tuesday 11:00 Kyiv, first attempt: 10 min (+ jitter) later, inside the window.
        ("busy", kyiv(), "busy", 1, utc(2026, 3, 31, 8, 0)),
        // Friday 19:30 Kyiv, second attempt: 2 h later is closed → Saturday 10:00.
        (
            "no_answer",
            kyiv(),
            "no_answer",
            2,
            utc(2026, 10, 23, 16, 30),
        ),
        // Saturday 15:59 New York before spring forward: → Monday 09:00 EDT.
        (
            "interrupted",
            new_york(),
            "interrupted",
            1,
            utc(2026, 3, 7, 20, 59),
        ),
    ] {
        let outcome = Outcome::from_key(key);
        assert!(matches!(
            p.plan_next(Some(tz), &outcome, attempts, ended, 42),
            Next::RetryAt(_)
        ));
        g.bench_function(format!("plan_next/{name}"), |b| {
            b.iter(|| {
                p.plan_next(
                    Some(tz),
                    black_box(&outcome),
                    black_box(attempts),
                    black_box(ended),
                    42,
                )
            })
        });
    }
    g.finish();
}

/// Three trunks weighted 5:3:2 with their own pacers; `full` leaves the heaviest no channel.
fn trunks(full: bool) -> Vec<TrunkLine> {
    [("a", 5, 50.0, 100), ("b", 3, 30.0, 60), ("c", 2, 20.0, 40)]
        .into_iter()
        .map(|(name, weight, cps, channels)| {
            let mut cfg = TrunkConfig::from_uri(&format!("sip:{name}.example.net:5060"));
            cfg.name = name.into();
            let channels = if full && name == "a" { 0 } else { channels };
            TrunkLine {
                trunk: cfg.validate().unwrap(),
                weight,
                pacer: Pacer::shared(cps, channels),
            }
        })
        .collect()
}

/// One call's trunk choice as the runner makes it (campaign pacer, then the weighted pick),
/// and the releases at the call's end.
fn pick_and_release(
    lines: &[TrunkLine],
    campaign: &SharedPacer,
    credit: &mut [i64],
    now: Instant,
) -> usize {
    assert!(campaign.lock().unwrap().try_acquire(now));
    let t = pick_trunk(black_box(lines), credit, now, None).expect("a trunk");
    campaign.lock().unwrap().release();
    lines[t].pacer.lock().unwrap().release();
    t
}

fn bench_trunks(c: &mut Criterion) {
    let mut g = c.benchmark_group("schedule/trunk_pick");
    for (name, full) in [("3_weighted", false), ("3_weighted_heaviest_full", true)] {
        let lines = trunks(full);
        let campaign = Pacer::shared(100.0, 200);
        let mut credit = vec![0i64; lines.len()];
        // Simulated time: one second per call, so every bucket has a token again.
        let mut now = Instant::now();
        // The picks follow the weights (5:3:2); with the heaviest full, the other two share.
        let mut picks = [0u64; 3];
        for _ in 0..1_000 {
            now += Duration::from_secs(1);
            picks[pick_and_release(&lines, &campaign, &mut credit, now)] += 1;
        }
        if full {
            assert!(picks[0] == 0 && picks[1] > picks[2], "{name}: {picks:?}");
        } else {
            assert_eq!(picks, [500, 300, 200], "{name}");
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                now += Duration::from_secs(1);
                pick_and_release(&lines, &campaign, &mut credit, now)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_policy, bench_trunks);
criterion_main!(benches);
