//! The scheduling policy (`engine::schedule`): calling windows over every IANA zone and DST
//! change, retry schedules, caps, the due queue, and the operator-facing serde forms.
//!
//! The window properties compare against two oracles written independently of the library:
//! - *wall clock*: away from offset changes, "allowed" is exactly "the local time is inside a
//!   range of its date (or a midnight-crossing range of the day before), holidays honoured";
//! - *intervals*: everywhere, each range `[s, e)` of local date D is the instants
//!   `[first(D s), first(D e))`, `first(t)` being the earliest instant whose local time is
//!   ≥ t, computed from the zone's offset segments (found by sampling offsets, not by chrono's
//!   local-time lookup).

use chrono::{
    DateTime, Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta, TimeZone,
    Timelike, Utc, Weekday,
};
use chrono_tz::{TZ_VARIANTS, Tz};
use engine::schedule::{
    CallingWindow, CapReason, Caps, ContactState, Decision, DoneReason, DueEntry, DueQueue, Next,
    Outcome, Policy, RetryPolicy, RetryRule, TimeRange, WaitReason, local_day_bounds,
};
use proptest::prelude::*;

// ---- helpers ---------------------------------------------------------------------------------

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn tz(name: &str) -> Tz {
    name.parse().unwrap()
}

fn r(s: &str) -> TimeRange {
    s.parse().unwrap()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn window(toml_text: &str) -> CallingWindow {
    toml::from_str(toml_text).unwrap()
}

fn at_secs(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap()
}

fn offset_at(zone: Tz, t: i64) -> i64 {
    i64::from(
        zone.offset_from_utc_datetime(&at_secs(t).naive_utc())
            .fix()
            .local_minus_utc(),
    )
}

fn add_days(d: NaiveDate, n: i64) -> NaiveDate {
    if n >= 0 {
        d.checked_add_days(Days::new(n as u64)).unwrap()
    } else {
        d.checked_sub_days(Days::new((-n) as u64)).unwrap()
    }
}

/// A stretch of UTC seconds `[start, end)` with one UTC offset.
#[derive(Debug, Clone, Copy)]
struct Seg {
    start: i64,
    end: i64,
    off: i64,
}

/// The zone's offset segments covering `[lo, hi)`: offsets sampled every 3 hours (no zone changes
/// its offset twice within 3 hours), each change located to the second by bisection.
fn segments(zone: Tz, lo: i64, hi: i64) -> Vec<Seg> {
    let mut segs = Vec::new();
    let mut start = lo;
    let mut off = offset_at(zone, lo);
    let mut t = lo;
    while t < hi {
        let next = (t + 3 * 3600).min(hi);
        let o = offset_at(zone, next);
        if o != off {
            let (mut a, mut b) = (t, next); // offset(a) == off, offset(b) != off
            while b - a > 1 {
                let m = a + (b - a) / 2;
                if offset_at(zone, m) == off {
                    a = m
                } else {
                    b = m
                }
            }
            segs.push(Seg { start, end: b, off });
            start = b;
            off = offset_at(zone, b);
        }
        t = next;
    }
    segs.push(Seg {
        start,
        end: hi.max(start + 1),
        off,
    });
    segs
}

/// Oracle: the earliest instant (UTC seconds) whose local time is at or after `wall`.
fn first(segs: &[Seg], wall: NaiveDateTime) -> i64 {
    let w = wall.and_utc().timestamp();
    segs.iter()
        .filter_map(|s| {
            let u = s.start.max(w - s.off);
            (u < s.end).then_some(u)
        })
        .min()
        .expect("segments cover the answer")
}

/// Oracle: the ranges that govern local `d` (holiday list, else the weekday's).
fn ranges_of(w: &CallingWindow, d: NaiveDate) -> Vec<TimeRange> {
    match w.holidays().find(|(h, _)| *h == d) {
        Some((_, rs)) => rs.to_vec(),
        None => w.day(d.weekday()).to_vec(),
    }
}

fn is_holiday(w: &CallingWindow, d: NaiveDate) -> bool {
    w.holidays().any(|(h, _)| h == d)
}

fn wall(d: NaiveDate, minutes: u16) -> NaiveDateTime {
    d.and_time(NaiveTime::MIN) + TimeDelta::minutes(i64::from(minutes))
}

/// Oracle: every span (UTC seconds, `[a, b)`) of local dates `from..=to`, in date/range order.
fn oracle_spans(
    w: &CallingWindow,
    segs: &[Seg],
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut d = from;
    while d <= to {
        for rg in ranges_of(w, d) {
            let s = wall(d, rg.start_minutes());
            let e = if rg.crosses_midnight() {
                let next = add_days(d, 1);
                if is_holiday(w, next) {
                    wall(next, 0)
                } else {
                    wall(next, rg.end_minutes())
                }
            } else {
                wall(d, rg.end_minutes())
            };
            let (a, b) = (first(segs, s), first(segs, e));
            if a < b {
                out.push((a, b));
            }
        }
        d = add_days(d, 1);
    }
    out
}

/// Oracle by wall clock, valid where the offset does not change within days of `now`.
fn wall_clock_allows(w: &CallingWindow, local: NaiveDateTime) -> bool {
    let d = local.date();
    let secs = i64::from(local.time().num_seconds_from_midnight());
    let inside = |from_min: u16, to_min: u16| {
        i64::from(from_min) * 60 <= secs && secs < i64::from(to_min) * 60
    };
    let today = ranges_of(w, d).iter().any(|rg| {
        if rg.crosses_midnight() {
            inside(rg.start_minutes(), 1440)
        } else {
            inside(rg.start_minutes(), rg.end_minutes())
        }
    });
    let tail = !is_holiday(w, d)
        && ranges_of(w, add_days(d, -1))
            .iter()
            .any(|rg| rg.crosses_midnight() && inside(0, rg.end_minutes()));
    today || tail
}

/// A random window: per weekday up to three ranges (one may cross midnight), and up to three
/// holidays near the instant (closed, or with their own ranges).
#[derive(Debug, Clone)]
struct WindowSpec {
    days: Vec<Vec<(u16, u16)>>,
    holidays: Vec<(i64, Vec<(u16, u16)>)>,
}

fn day_ranges() -> impl Strategy<Value = Vec<(u16, u16)>> {
    (
        0usize..=3,
        proptest::collection::btree_set(0u16..=1440, 6),
        any::<bool>(),
        1u16..1440,
    )
        .prop_map(|(k, points, cross, cross_end)| {
            let p: Vec<u16> = points.into_iter().collect();
            let mut out: Vec<(u16, u16)> = (0..k.min(p.len() / 2))
                .map(|i| (p[2 * i], p[2 * i + 1]))
                .collect();
            if cross
                && let Some(last) = out.last_mut()
                && last.0 >= 2
            {
                // Replace the end by one before the start: crosses midnight.
                last.1 = 1 + cross_end % (last.0 - 1);
            }
            out
        })
}

fn window_spec() -> impl Strategy<Value = WindowSpec> {
    (
        proptest::collection::vec(day_ranges(), 7),
        proptest::collection::vec(
            (-3i64..10, prop_oneof![Just(Vec::new()), day_ranges()]),
            0..3,
        ),
    )
        .prop_map(|(days, holidays)| WindowSpec { days, holidays })
}

fn build(spec: &WindowSpec, around: NaiveDate) -> CallingWindow {
    let mut w = CallingWindow::closed();
    let weekdays = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];
    let to_ranges = |v: &[(u16, u16)]| {
        v.iter()
            .map(|&(a, b)| TimeRange::from_minutes(a, b).unwrap())
            .collect::<Vec<_>>()
    };
    for (i, day) in weekdays.into_iter().enumerate() {
        w.set_day(day, to_ranges(&spec.days[i])).unwrap();
    }
    for (off, rs) in &spec.holidays {
        // A repeated date is refused; skip it.
        let _ = w.add_holiday(add_days(around, *off), to_ranges(rs));
    }
    w
}

const Y2020: i64 = 1_577_836_800; // 2020-01-01T00:00:00Z
const Y2036: i64 = 2_082_758_400; // 2036-01-01T00:00:00Z

/// Offset changes of `zone` in `year` (UTC seconds).
fn transitions(zone: Tz, year: i32) -> Vec<i64> {
    let lo = Utc
        .with_ymd_and_hms(year, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp();
    let hi = Utc
        .with_ymd_and_hms(year + 1, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp();
    segments(zone, lo, hi)
        .iter()
        .skip(1)
        .map(|s| s.start)
        .collect()
}

/// Checks `allows`, `next_open` and `closes_at` at `now` against the interval oracle, and
/// against the wall clock where the offset is steady.
fn check_window_at(w: &CallingWindow, zone: Tz, now: DateTime<Utc>) -> Result<(), TestCaseError> {
    let t = now.timestamp();
    let d = zone.from_utc_datetime(&now.naive_utc()).date_naive();
    let segs = segments(zone, t - 6 * 86_400, t + 30 * 86_400);
    let spans = oracle_spans(w, &segs, add_days(d, -3), add_days(d, 24));
    let open = spans.iter().any(|&(a, b)| a <= t && t < b);
    let allows = w.allows(now, zone);
    prop_assert_eq!(allows, open, "allows at {} in {}", now, zone.name());

    // Wall-clock oracle where no offset change lies within three days.
    let steady = segs.iter().all(|s| {
        s.end <= t - 3 * 86_400
            || s.start >= t + 3 * 86_400
            || (s.start <= t - 3 * 86_400 && s.end >= t + 3 * 86_400)
    });
    if steady {
        let local = zone.from_utc_datetime(&now.naive_utc()).naive_local();
        prop_assert_eq!(
            allows,
            wall_clock_allows(w, local),
            "wall clock at {} ({})",
            local,
            zone.name()
        );
    }

    let want_next = spans
        .iter()
        .filter(|&&(_, b)| b > t)
        .map(|&(a, _)| a.max(t))
        .min();
    let got_next = w.next_open(now, zone);
    prop_assert_eq!(
        got_next.map(|x| x.timestamp()),
        want_next,
        "next_open from {} in {}",
        now,
        zone.name()
    );
    if let Some(n) = got_next {
        prop_assert!(
            n >= now && w.allows(n, zone),
            "next_open {} is not allowed",
            n
        );
        if n > now {
            prop_assert!(!w.allows(n - TimeDelta::seconds(1), zone));
        }
    }

    let got_close = w.closes_at(now, zone);
    if open {
        // Merge the spans touching the one(s) holding `now`.
        let mut sorted = spans.clone();
        sorted.sort();
        let mut end = sorted
            .iter()
            .filter(|&&(a, b)| a <= t && t < b)
            .map(|&(_, b)| b)
            .max()
            .unwrap();
        for &(a, b) in &sorted {
            if a > t && a <= end {
                end = end.max(b);
            }
        }
        match got_close {
            Some(c) => {
                prop_assert_eq!(
                    c.timestamp(),
                    end,
                    "closes_at from {} in {}",
                    now,
                    zone.name()
                );
                prop_assert!(!w.allows(c, zone));
            }
            // Never closes: the oracle's merge runs to the end of what it looked at.
            None => prop_assert!(
                end >= t + 20 * 86_400,
                "closes_at None but closes at {}",
                end
            ),
        }
    } else {
        prop_assert_eq!(got_close, None);
    }
    Ok(())
}

// ---- window properties -------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, cases: 1000, ..ProptestConfig::default() })]

    /// Random zone, random instant across 2020–2035, random window.
    #[test]
    fn window_matches_oracles_anywhere(zi in 0..TZ_VARIANTS.len(), t in Y2020..Y2036, spec in window_spec()) {
        let zone = TZ_VARIANTS[zi];
        let now = at_secs(t);
        let w = build(&spec, zone.from_utc_datetime(&now.naive_utc()).date_naive());
        check_window_at(&w, zone, now)?;
    }

    /// Random zone and year, an instant within a day and a half of one of its offset changes.
    #[test]
    fn window_matches_oracle_near_dst(zi in 0..TZ_VARIANTS.len(), year in 2020i32..=2035, pick in any::<usize>(), delta in -129_600i64..129_600, spec in window_spec()) {
        let zone = TZ_VARIANTS[zi];
        let tr = transitions(zone, year);
        let t = if tr.is_empty() { Utc.with_ymd_and_hms(year, 6, 1, 0, 0, 0).unwrap().timestamp() + delta } else { tr[pick % tr.len()] + delta };
        let now = at_secs(t);
        let w = build(&spec, zone.from_utc_datetime(&now.naive_utc()).date_naive());
        check_window_at(&w, zone, now)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, cases: 64, ..ProptestConfig::default() })]

    /// `next_open` is allowed and nothing before it is: stepping minute by minute from `now`
    /// (bounded to a day) finds no allowed instant earlier.
    #[test]
    fn next_open_has_no_earlier_allowed_minute(zi in 0..TZ_VARIANTS.len(), year in 2020i32..=2035, pick in any::<usize>(), delta in -43_200i64..43_200, spec in window_spec()) {
        let zone = TZ_VARIANTS[zi];
        let tr = transitions(zone, year);
        let t = if tr.is_empty() { Utc.with_ymd_and_hms(year, 3, 1, 0, 0, 0).unwrap().timestamp() + delta } else { tr[pick % tr.len()] + delta };
        let now = at_secs(t);
        let w = build(&spec, zone.from_utc_datetime(&now.naive_utc()).date_naive());
        match w.next_open(now, zone) {
            None => prop_assert!(spec.days.iter().all(Vec::is_empty)),
            Some(n) => {
                prop_assert!(w.allows(n, zone));
                let mut step = now;
                let mut k = 0;
                while step < n && k < 1440 {
                    prop_assert!(!w.allows(step, zone), "allowed at {} before next_open {}", step, n);
                    step += TimeDelta::minutes(1);
                    k += 1;
                }
            }
        }
    }
}

/// Every IANA zone, around each of its 2026 offset changes and at one steady instant: the
/// oracles agree for a window with a midnight-crossing range and both kinds of holiday.
#[test]
fn every_zone_around_its_2026_changes() {
    let w = window(
        r#"
        mon = ["00:00-01:00", "01:30-02:30", "09:00-20:00"]
        tue = ["09:00-13:00", "14:00-20:00"]
        wed = ["09:00-20:00"]
        thu = ["09:00-20:00"]
        fri = ["09:00-20:00", "22:00-02:00"]
        sat = ["00:30-03:30", "10:00-18:00"]
        sun = ["01:45-02:15", "03:00-04:00", "23:30-00:30"]
        holidays = ["2026-12-25", { date = "2026-12-31", hours = ["10:00-14:00"] }]
        "#,
    );
    let mut checked = 0;
    for zone in TZ_VARIANTS {
        let mut instants = vec![utc("2026-12-30T23:10:00Z").timestamp()];
        for tr in transitions(zone, 2026) {
            for d in [-5400, -1800, -1, 0, 1, 900, 1800, 3600, 5400] {
                instants.push(tr + d);
            }
        }
        for t in instants {
            check_window_at(&w, zone, at_secs(t))
                .unwrap_or_else(|e| panic!("{}: {e}", zone.name()));
            checked += 1;
        }
    }
    assert!(checked > TZ_VARIANTS.len() * 2, "{checked}");
}

// ---- window: specific DST cases ----------------------------------------------------------------

#[test]
fn kyiv_spring_forward_window_in_the_gap_opens_at_the_first_valid_instant() {
    let kyiv = tz("Europe/Kyiv");
    // 2026-03-29 (Sunday) 03:00 EET -> 04:00 EEST at 01:00Z.
    let w = window(r#"sun = ["03:30-05:00"]"#);
    let from = utc("2026-03-28T22:00:00Z"); // Sunday 00:00 local
    assert_eq!(w.next_open(from, kyiv), Some(utc("2026-03-29T01:00:00Z"))); // 04:00 EEST
    assert!(!w.allows(utc("2026-03-29T00:59:59Z"), kyiv));
    assert!(w.allows(utc("2026-03-29T01:00:00Z"), kyiv));
    assert_eq!(
        w.closes_at(utc("2026-03-29T01:00:00Z"), kyiv),
        Some(utc("2026-03-29T02:00:00Z"))
    );
    // A range wholly in the gap never opens that day; next week it does.
    let w = window(r#"sun = ["03:10-03:50"]"#);
    assert_eq!(w.next_open(from, kyiv), Some(utc("2026-04-05T00:10:00Z")));
}

#[test]
fn kyiv_fall_back_neither_double_counts_nor_skips() {
    let kyiv = tz("Europe/Kyiv");
    // 2026-10-25 (Sunday) 04:00 EEST -> 03:00 EET at 01:00Z: 03:00-04:00 occurs twice.
    let w = window(r#"sun = ["00:00-03:30"]"#);
    let first_0315 = utc("2026-10-25T00:15:00Z");
    let second_0315 = utc("2026-10-25T01:15:00Z");
    assert!(w.allows(first_0315, kyiv));
    assert_eq!(
        w.closes_at(first_0315, kyiv),
        Some(utc("2026-10-25T00:30:00Z"))
    );
    assert!(
        !w.allows(second_0315, kyiv),
        "the repeated 03:15 must not reopen the range"
    );
    let w = window(r#"sun = ["03:30-05:00"]"#);
    // Opens at the first 03:30 and stays open through the repeat until 05:00 EET.
    assert_eq!(
        w.next_open(utc("2026-10-24T21:00:00Z"), kyiv),
        Some(utc("2026-10-25T00:30:00Z"))
    );
    for t in [
        "2026-10-25T00:45:00Z",
        "2026-10-25T01:10:00Z",
        "2026-10-25T02:59:59Z",
    ] {
        assert!(w.allows(utc(t), kyiv), "{t}");
    }
    assert_eq!(
        w.closes_at(utc("2026-10-25T00:30:00Z"), kyiv),
        Some(utc("2026-10-25T03:00:00Z"))
    );
}

#[test]
fn new_york_gap_and_overlap() {
    let ny = tz("America/New_York");
    // 2026-03-08 02:00 EST -> 03:00 EDT at 07:00Z; the range lies in the gap.
    let w = window(r#"sun = ["02:15-02:45"]"#);
    assert_eq!(
        w.next_open(utc("2026-03-08T05:00:00Z"), ny),
        Some(utc("2026-03-15T06:15:00Z"))
    );
    // A range straddling the gap: 01:30 EST .. 03:00 EDT (the transition) .. 03:30 EDT.
    let w = window(r#"sun = ["01:30-03:30"]"#);
    assert_eq!(
        w.next_open(utc("2026-03-08T05:00:00Z"), ny),
        Some(utc("2026-03-08T06:30:00Z"))
    );
    assert_eq!(
        w.closes_at(utc("2026-03-08T06:30:00Z"), ny),
        Some(utc("2026-03-08T07:30:00Z"))
    );
    // 2026-11-01 02:00 EDT -> 01:00 EST at 06:00Z.
    let w = window(r#"sun = ["01:00-01:30"]"#);
    assert!(w.allows(utc("2026-11-01T05:10:00Z"), ny));
    assert!(
        !w.allows(utc("2026-11-01T06:10:00Z"), ny),
        "second 01:10 is not a second window"
    );
    assert_eq!(
        w.closes_at(utc("2026-11-01T05:10:00Z"), ny),
        Some(utc("2026-11-01T05:30:00Z"))
    );
    // Business hours shift by the offset across the change.
    let w = CallingWindow::business_hours();
    assert_eq!(
        w.next_open(utc("2026-03-07T01:30:00Z"), ny),
        Some(utc("2026-03-07T15:00:00Z"))
    ); // Fri 20:30 -> Sat 10:00 EST
    assert_eq!(
        w.next_open(utc("2026-03-07T23:30:00Z"), ny),
        Some(utc("2026-03-09T13:00:00Z"))
    ); // Mon 09:00 EDT
}

#[test]
fn lord_howe_half_hour_dst() {
    let lh = tz("Australia/Lord_Howe");
    // 2026-10-04 (Sunday) 02:00 +10:30 -> 02:30 +11 at 2026-10-03T15:30Z.
    let w = window(r#"sun = ["02:10-03:00"]"#);
    assert_eq!(
        w.next_open(utc("2026-10-03T12:00:00Z"), lh),
        Some(utc("2026-10-03T15:30:00Z"))
    );
    assert_eq!(
        w.closes_at(utc("2026-10-03T15:30:00Z"), lh),
        Some(utc("2026-10-03T16:00:00Z"))
    );
    // 2026-04-05 (Sunday) 02:00 +11 -> 01:30 +10:30 at 2026-04-04T15:00Z: 01:30-02:00 twice.
    let w = window(r#"sun = ["01:45-02:15"]"#);
    assert_eq!(
        w.next_open(utc("2026-04-04T12:00:00Z"), lh),
        Some(utc("2026-04-04T14:45:00Z"))
    );
    assert!(w.allows(utc("2026-04-04T15:10:00Z"), lh)); // second 01:40, inside the interval
    assert_eq!(
        w.closes_at(utc("2026-04-04T14:45:00Z"), lh),
        Some(utc("2026-04-04T15:45:00Z"))
    );
    let w = window(r#"sun = ["00:00-01:45"]"#);
    assert!(!w.allows(utc("2026-04-04T15:05:00Z"), lh)); // second 01:35: already closed
}

#[test]
fn apia_skipped_day_never_opens() {
    let apia = tz("Pacific/Apia");
    // Thursday 2011-12-29 24:00 (-10) became Saturday 2011-12-31 00:00 (+14) at 10:00Z.
    let w = window(
        r#"
        thu = ["09:00-17:00", "22:00-02:00"]
        fri = ["09:00-17:00"]
        sat = ["09:00-17:00"]
        "#,
    );
    let thu_evening = utc("2011-12-30T04:00:00Z"); // Thu 18:00 -10
    assert_eq!(
        w.next_open(thu_evening, apia),
        Some(utc("2011-12-30T08:00:00Z"))
    ); // Thu 22:00
    // The crossing range ends at the first instant of Friday, which is Saturday 00:00 +14.
    assert_eq!(
        w.closes_at(utc("2011-12-30T08:00:00Z"), apia),
        Some(utc("2011-12-30T10:00:00Z"))
    );
    // Friday's range never happens; Saturday 09:00 +14 = Friday 19:00Z.
    assert_eq!(
        w.next_open(utc("2011-12-30T10:00:00Z"), apia),
        Some(utc("2011-12-30T19:00:00Z"))
    );
    // A holiday on the skipped Friday changes nothing, but it does stop Thursday's tail.
    let mut w2 = w.clone();
    w2.add_holiday(date(2011, 12, 30), vec![]).unwrap();
    assert_eq!(
        w2.closes_at(utc("2011-12-30T08:00:00Z"), apia),
        Some(utc("2011-12-30T10:00:00Z"))
    );
    let (start, end) = local_day_bounds(utc("2011-12-30T09:00:00Z"), apia);
    assert_eq!(
        (start, end),
        (utc("2011-12-29T10:00:00Z"), utc("2011-12-30T10:00:00Z"))
    );
}

#[test]
fn kathmandu_quarter_hour_offset_and_its_1986_gap() {
    let ktm = tz("Asia/Kathmandu");
    let w = CallingWindow::business_hours();
    // Monday 2026-06-01 09:00 +05:45 = 03:15Z.
    assert_eq!(
        w.next_open(utc("2026-06-01T00:00:00Z"), ktm),
        Some(utc("2026-06-01T03:15:00Z"))
    );
    assert_eq!(
        w.closes_at(utc("2026-06-01T03:15:00Z"), ktm),
        Some(utc("2026-06-01T14:15:00Z"))
    );
    // 1986-01-01 (Wednesday) 00:00 +05:30 became 00:15 +05:45: a gap at midnight.
    let w = window(r#"wed = ["00:00-08:00"]"#);
    assert_eq!(
        w.next_open(utc("1985-12-31T12:00:00Z"), ktm),
        Some(utc("1985-12-31T18:30:00Z"))
    );
    let (start, _) = local_day_bounds(utc("1986-01-01T00:00:00Z"), ktm);
    assert_eq!(start, utc("1985-12-31T18:30:00Z"));
}

#[test]
fn midnight_crossing_ranges_and_holidays() {
    let kyiv = tz("Europe/Kyiv");
    // 2026-12-24 is a Thursday, 12-25 Friday, 12-26 Saturday; UTC+2.
    let w = window(
        r#"
        thu = ["22:00-02:00"]
        fri = ["22:00-02:00"]
        holidays = ["2026-12-25"]
        "#,
    );
    // Thursday's tail into the holiday stops at midnight.
    assert_eq!(
        w.closes_at(utc("2026-12-24T20:30:00Z"), kyiv),
        Some(utc("2026-12-24T22:00:00Z"))
    );
    assert!(!w.allows(utc("2026-12-24T23:00:00Z"), kyiv)); // 01:00 on the holiday
    // Friday's own range is cancelled by the holiday, with its tail into Saturday.
    assert!(!w.allows(utc("2026-12-25T21:00:00Z"), kyiv)); // Fri 23:00
    assert!(!w.allows(utc("2026-12-25T23:00:00Z"), kyiv)); // Sat 01:00
    // A week later both run, and the tail belongs to the day it starts on.
    assert!(w.allows(utc("2027-01-01T23:00:00Z"), kyiv)); // Sat 01:00 (2027-01-02)
    assert_eq!(
        w.closes_at(utc("2027-01-01T20:00:00Z"), kyiv),
        Some(utc("2027-01-02T00:00:00Z"))
    );
    // Special hours replace the weekday's.
    let w = window(
        r#"
        thu = ["09:00-20:00"]
        holidays = [{ date = "2026-12-31", hours = ["10:00-14:00"] }]
        "#,
    );
    assert!(!w.allows(utc("2026-12-31T07:30:00Z"), kyiv)); // 09:30
    assert!(w.allows(utc("2026-12-31T08:30:00Z"), kyiv)); // 10:30
    assert_eq!(
        w.closes_at(utc("2026-12-31T08:30:00Z"), kyiv),
        Some(utc("2026-12-31T12:00:00Z"))
    );
}

#[test]
fn empty_and_always_open_windows() {
    let kyiv = tz("Europe/Kyiv");
    let now = utc("2026-06-01T12:00:00Z");
    let w = CallingWindow::closed();
    assert!(!w.allows(now, kyiv));
    assert_eq!(w.next_open(now, kyiv), None);
    // Only a past special day: never opens again.
    let w = window(r#"holidays = [{ date = "2020-01-01", hours = ["10:00-11:00"] }]"#);
    assert_eq!(w.next_open(now, kyiv), None);
    let all = r#"["00:00-24:00"]"#;
    let w = window(&format!(
        "mon={all}\ntue={all}\nwed={all}\nthu={all}\nfri={all}\nsat={all}\nsun={all}"
    ));
    assert!(w.allows(now, kyiv));
    assert_eq!(w.closes_at(now, kyiv), None, "never closes");
    let mut w2 = w.clone();
    w2.add_holiday(date(2026, 6, 10), vec![]).unwrap();
    assert_eq!(w2.closes_at(now, kyiv), Some(utc("2026-06-09T21:00:00Z")));
}

// ---- retry --------------------------------------------------------------------------------------

#[test]
fn default_retry_schedule() {
    let p = RetryPolicy::default();
    let t0 = utc("2026-06-01T10:00:00Z");
    // Busy: 10m ×1.5 per attempt (≤2h), up to 2m jitter, 5 attempts in all.
    let mut waits = Vec::new();
    for n in 1..=4 {
        match p.next_after(&Outcome::Busy, n, t0, 42) {
            Next::RetryAt(t) => waits.push((t - t0).num_seconds()),
            other => panic!("{other:?}"),
        }
    }
    for (got, base) in waits.iter().zip([600, 900, 1350, 2025]) {
        assert!((base..=base + 120).contains(got), "{waits:?}");
    }
    assert_eq!(
        p.next_after(&Outcome::Busy, 5, t0, 42),
        Next::Done(DoneReason::MaxAttempts {
            outcome: Outcome::Busy,
            attempts: 5
        })
    );
    // Same seed, same answer; other seeds spread.
    assert_eq!(
        p.next_after(&Outcome::NoAnswer, 2, t0, 7),
        p.next_after(&Outcome::NoAnswer, 2, t0, 7)
    );
    let spread: std::collections::BTreeSet<_> = (0..50)
        .map(|s| format!("{:?}", p.next_after(&Outcome::NoAnswer, 2, t0, s)))
        .collect();
    assert!(spread.len() > 40);
    // Final outcomes.
    for o in [
        Outcome::InvalidNumber,
        Outcome::Answered,
        Outcome::Category("not_interested".into()),
    ] {
        assert_eq!(
            p.next_after(&o, 1, t0, 0),
            Next::Done(DoneReason::Final(o.clone()))
        );
    }
    assert_eq!(
        p.next_after(&Outcome::Category("opt_out".into()), 1, t0, 0),
        Next::Done(DoneReason::OptOut)
    );
    // Interrupted (node died): soon.
    let Next::RetryAt(t) = p.next_after(&Outcome::Interrupted, 1, t0, 3) else {
        panic!()
    };
    assert!(t - t0 <= TimeDelta::minutes(3));
}

#[test]
fn configured_retry_rules() {
    let p: RetryPolicy = toml::from_str(
        r#"
        busy = { delay = "15m", max_attempts = 3, backoff = 2.0, max_delay = "20m" }
        business_not_now = { delay = "30d", max_attempts = 6 }
        voicemail = "done"
        "#,
    )
    .unwrap();
    let t0 = utc("2026-06-01T10:00:00Z");
    assert_eq!(
        p.next_after(&Outcome::Busy, 1, t0, 0),
        Next::RetryAt(t0 + TimeDelta::minutes(15))
    );
    assert_eq!(
        p.next_after(&Outcome::Busy, 2, t0, 0),
        Next::RetryAt(t0 + TimeDelta::minutes(20))
    );
    assert!(matches!(
        p.next_after(&Outcome::Busy, 3, t0, 0),
        Next::Done(DoneReason::MaxAttempts { .. })
    ));
    let bnn = Outcome::Category("business_not_now".into());
    assert_eq!(
        p.next_after(&bnn, 2, t0, 0),
        Next::RetryAt(t0 + TimeDelta::days(30))
    );
    assert_eq!(
        p.next_after(&Outcome::Voicemail, 1, t0, 0),
        Next::Done(DoneReason::Final(Outcome::Voicemail))
    );
    // Defaults not mentioned stay.
    assert!(p.rule(&Outcome::NoAnswer).is_some());
    // opt_out cannot be given a retry rule.
    let mut p2 = RetryPolicy::none();
    assert_eq!(
        p2.set("opt_out", Some(RetryRule::new(TimeDelta::hours(1), 3)))
            .unwrap_err()
            .field(),
        "opt_out"
    );
}

#[test]
fn plan_next_moves_the_retry_into_the_window() {
    let kyiv = tz("Europe/Kyiv");
    let policy = Policy::new(CallingWindow::business_hours(), kyiv);
    // Saturday 2026-06-06 17:55 local (14:55Z), voicemail: +4h..4h30 is after 18:00; Sunday is
    // closed; Monday 09:00 local = 06:00Z.
    let ended = utc("2026-06-06T14:55:00Z");
    assert_eq!(
        policy.plan_next(None, &Outcome::Voicemail, 1, ended, 9),
        Next::RetryAt(utc("2026-06-08T06:00:00Z"))
    );
    // In the contact's own zone instead: New York, Saturday 10:55 EDT -> +4h.. is still open.
    let ny = tz("America/New_York");
    let Next::RetryAt(t) = policy.plan_next(Some(ny), &Outcome::Voicemail, 1, ended, 9) else {
        panic!()
    };
    assert!(t >= ended + TimeDelta::hours(4) && t <= ended + TimeDelta::minutes(270));
    let closed = Policy::new(CallingWindow::closed(), kyiv);
    assert_eq!(
        closed.plan_next(None, &Outcome::Busy, 1, ended, 0),
        Next::Done(DoneReason::NoCallingWindow)
    );
}

// ---- caps and decide ------------------------------------------------------------------------------

fn contact() -> ContactState {
    ContactState::default()
}

#[test]
fn caps_check_and_earliest() {
    let kyiv = tz("Europe/Kyiv");
    let caps = Caps {
        max_per_day: Some(2),
        max_across_campaigns: Some(5),
        across_campaigns_days: 7,
        min_gap: TimeDelta::hours(1),
    };
    let now = utc("2026-06-01T10:00:00Z"); // 13:00 local
    assert_eq!(caps.check(&contact(), now), Ok(()));
    assert_eq!(caps.earliest_after_caps(&contact(), now, kyiv), None);

    let c = ContactState {
        attempts_today: 2,
        ..contact()
    };
    assert_eq!(caps.check(&c, now), Err(CapReason::DailyLimit { limit: 2 }));
    // Next local midnight: 2026-06-02 00:00 +03 = 06-01 21:00Z.
    assert_eq!(
        caps.earliest_after_caps(&c, now, kyiv),
        Some((
            utc("2026-06-01T21:00:00Z"),
            CapReason::DailyLimit { limit: 2 }
        ))
    );

    let c = ContactState {
        cross_campaign_attempts: 5,
        cross_campaign_oldest: Some(utc("2026-05-28T08:00:00Z")),
        ..contact()
    };
    assert_eq!(
        caps.check(&c, now),
        Err(CapReason::CrossCampaignLimit { limit: 5, days: 7 })
    );
    assert_eq!(
        caps.earliest_after_caps(&c, now, kyiv).unwrap().0,
        utc("2026-06-04T08:00:00Z")
    );
    let c = ContactState {
        cross_campaign_oldest: None,
        ..c
    };
    assert_eq!(
        caps.earliest_after_caps(&c, now, kyiv).unwrap().0,
        utc("2026-06-01T21:00:00Z")
    );

    let last = utc("2026-06-01T09:30:00Z");
    let c = ContactState {
        last_attempt_at: Some(last),
        ..contact()
    };
    assert_eq!(
        caps.check(&c, now),
        Err(CapReason::MinGap {
            gap: TimeDelta::hours(1)
        })
    );
    assert_eq!(
        caps.earliest_after_caps(&c, now, kyiv).unwrap().0,
        utc("2026-06-01T10:30:00Z")
    );
    assert_eq!(caps.check(&c, utc("2026-06-01T10:30:00Z")), Ok(()));

    // The latest cap wins.
    let c = ContactState {
        attempts_today: 2,
        last_attempt_at: Some(last),
        ..contact()
    };
    assert_eq!(
        caps.earliest_after_caps(&c, now, kyiv).unwrap().1,
        CapReason::DailyLimit { limit: 2 }
    );
}

#[test]
fn decide_combines_window_retry_and_caps() {
    let kyiv = tz("Europe/Kyiv");
    let mut policy = Policy::new(CallingWindow::business_hours(), kyiv);
    policy.caps = Caps {
        max_per_day: Some(2),
        max_across_campaigns: None,
        across_campaigns_days: 7,
        min_gap: TimeDelta::minutes(30),
    };
    let mon_noon = utc("2026-06-01T09:00:00Z"); // 12:00 local

    assert_eq!(policy.decide(&contact(), mon_noon), Decision::CallNow);
    // Sunday: closed until Monday 09:00.
    let sun = utc("2026-05-31T09:00:00Z");
    assert_eq!(
        policy.decide(&contact(), sun),
        Decision::NotBefore(utc("2026-06-01T06:00:00Z"), WaitReason::Window)
    );
    // The contact's zone decides: 12:00 in Kyiv is 05:00 in New York (closed until 09:00 EDT).
    let ny = ContactState {
        tz: Some(tz("America/New_York")),
        ..contact()
    };
    assert_eq!(
        policy.decide(&ny, mon_noon),
        Decision::NotBefore(utc("2026-06-01T13:00:00Z"), WaitReason::Window)
    );

    // Retry delay beats the gap: no_answer after 1 attempt waits ≥ 1h.
    let c = ContactState {
        attempts: 1,
        attempts_today: 1,
        last_attempt_at: Some(mon_noon),
        last_outcome: Some(Outcome::NoAnswer),
        seed: 1,
        ..contact()
    };
    let Decision::NotBefore(t, WaitReason::Retry(Outcome::NoAnswer)) = policy.decide(&c, mon_noon)
    else {
        panic!("{:?}", policy.decide(&c, mon_noon))
    };
    assert!(t >= mon_noon + TimeDelta::hours(1) && t <= mon_noon + TimeDelta::minutes(70));
    assert_eq!(policy.decide(&c, t), Decision::CallNow);

    // Gap beats a short retry: interrupted retries after ≤3m but the gap is 30m.
    let c = ContactState {
        last_outcome: Some(Outcome::Interrupted),
        ..c
    };
    assert_eq!(
        policy.decide(&c, mon_noon),
        Decision::NotBefore(
            mon_noon + TimeDelta::minutes(30),
            WaitReason::Cap(CapReason::MinGap {
                gap: TimeDelta::minutes(30)
            })
        )
    );

    // Daily cap: next local day, and the window then opens at 09:00.
    let c = ContactState {
        attempts: 2,
        attempts_today: 2,
        last_outcome: Some(Outcome::Busy),
        ..c
    };
    assert_eq!(
        policy.decide(&c, mon_noon),
        Decision::NotBefore(utc("2026-06-02T06:00:00Z"), WaitReason::Window)
    );

    // Done: final outcome, opt-out, max attempts, never-open window.
    let c2 = ContactState {
        last_outcome: Some(Outcome::Category("send_details".into())),
        ..c.clone()
    };
    assert_eq!(
        policy.decide(&c2, mon_noon),
        Decision::Done(DoneReason::Final(Outcome::Category("send_details".into())))
    );
    let c2 = ContactState {
        last_outcome: Some(Outcome::Category("opt_out".into())),
        ..c.clone()
    };
    assert_eq!(
        policy.decide(&c2, mon_noon),
        Decision::Done(DoneReason::OptOut)
    );
    let c2 = ContactState {
        attempts: 5,
        ..c.clone()
    };
    assert!(matches!(
        policy.decide(&c2, mon_noon),
        Decision::Done(DoneReason::MaxAttempts { attempts: 5, .. })
    ));
    let closed = Policy {
        window: CallingWindow::closed(),
        ..policy.clone()
    };
    assert_eq!(
        closed.decide(&contact(), mon_noon),
        Decision::Done(DoneReason::NoCallingWindow)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, cases: 256, ..ProptestConfig::default() })]

    /// Whatever the state, `decide` never says "call" outside the window or against a cap, and
    /// a `NotBefore` time is itself a time when `decide` says call (with the same counts).
    #[test]
    fn decide_is_consistent(zi in 0..TZ_VARIANTS.len(), t in Y2020..Y2036, attempts in 0u32..6, today in 0u32..4, cross in 0u32..8, gap_ago in 0i64..20_000, outcome in 0usize..12, seed in any::<u64>()) {
        let zone = TZ_VARIANTS[zi];
        let mut policy = Policy::new(CallingWindow::business_hours(), zone);
        policy.caps.max_across_campaigns = Some(6);
        let now = at_secs(t);
        let outcomes = ["busy", "no_answer", "failed", "voicemail", "interrupted", "no_input", "unclassified", "rejected", "answered", "invalid_number", "opt_out", "not_interested"];
        let last = (attempts > 0).then(|| Outcome::from_key(outcomes[outcome]));
        let c = ContactState {
            tz: None,
            attempts,
            attempts_today: today.min(attempts),
            cross_campaign_attempts: cross,
            cross_campaign_oldest: Some(now - TimeDelta::days(3)),
            last_attempt_at: (attempts > 0).then(|| now - TimeDelta::seconds(gap_ago)),
            last_outcome: last,
            seed,
        };
        match policy.decide(&c, now) {
            Decision::CallNow => {
                prop_assert!(policy.window.allows(now, zone));
                prop_assert_eq!(policy.caps.check(&c, now), Ok(()));
            }
            Decision::NotBefore(at, _) => {
                prop_assert!(at > now);
                prop_assert!(policy.window.allows(at, zone));
                // At that time the day may have turned: counts of "today" restart.
                let (day_start, _) = local_day_bounds(now, zone);
                let (at_day_start, _) = local_day_bounds(at, zone);
                let later = ContactState {
                    attempts_today: if at_day_start > day_start { 0 } else { c.attempts_today },
                    cross_campaign_attempts: if at >= now + TimeDelta::days(4) { 0 } else { c.cross_campaign_attempts },
                    ..c.clone()
                };
                prop_assert_eq!(policy.decide(&later, at), Decision::CallNow);
            }
            Decision::Done(_) => prop_assert!(c.last_outcome.is_some()),
        }
    }
}

// ---- due queue ------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Push(u8, i64, i8),
    Remove(u8),
    Pop(i64, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), 0i64..100, -2i8..3).prop_map(|(id, due, p)| Op::Push(id % 32, due, p)),
        1 => any::<u8>().prop_map(|id| Op::Remove(id % 32)),
        2 => (0i64..20, 0usize..6).prop_map(|(adv, n)| Op::Pop(adv, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, cases: 256, ..ProptestConfig::default() })]

    /// The queue agrees with a sorted list: among due entries, priority, then due, then id.
    #[test]
    fn due_queue_matches_a_model(ops in proptest::collection::vec(op(), 1..120)) {
        let base = utc("2026-01-01T00:00:00Z");
        let mut q = DueQueue::new();
        let mut model: Vec<(u8, i64, i8)> = Vec::new();
        let mut now = 0i64;
        for op in ops {
            match op {
                Op::Push(id, due, p) => {
                    let had = model.iter().any(|e| e.0 == id);
                    model.retain(|e| e.0 != id);
                    model.push((id, due, p));
                    prop_assert_eq!(q.push(id, base + TimeDelta::minutes(due), i32::from(p)), had);
                }
                Op::Remove(id) => {
                    let had = model.iter().any(|e| e.0 == id);
                    model.retain(|e| e.0 != id);
                    prop_assert_eq!(q.remove(&id), had);
                }
                Op::Pop(adv, n) => {
                    now += adv;
                    let mut due: Vec<_> = model.iter().copied().filter(|e| e.1 <= now).collect();
                    due.sort_by_key(|&(id, d, p)| (std::cmp::Reverse(p), d, id));
                    due.truncate(n);
                    model.retain(|e| !due.iter().any(|d| d.0 == e.0));
                    let got: Vec<DueEntry<u8>> = q.pop_due(base + TimeDelta::minutes(now), n);
                    let got: Vec<_> = got.into_iter().map(|e| (e.id, (e.due - base).num_minutes(), e.priority as i8)).collect();
                    prop_assert_eq!(got, due);
                }
            }
            prop_assert_eq!(q.len(), model.len());
            let earliest = model.iter().map(|e| e.1).min();
            prop_assert_eq!(q.next_due().map(|t| (t - base).num_minutes()), earliest);
        }
    }
}

// ---- serde ------------------------------------------------------------------------------------------

#[test]
fn policy_round_trips_through_toml_and_json() {
    let text = r#"
        default_tz = "Europe/Kyiv"
        [window]
        mon = ["09:00-13:00", "14:00-20:00"]
        fri = ["22:00-02:00"]
        sat = ["10:00-18:00"]
        holidays = ["2026-12-25", { date = "2026-12-31", hours = ["10:00-14:00"] }]
        [retry]
        busy = { delay = "15m", max_attempts = 4, backoff = 1.5, max_delay = "1h", jitter = "2m" }
        voicemail = "done"
        business_not_now = { delay = "30d", max_attempts = 6 }
        [caps]
        max_per_day = 2
        max_across_campaigns = 4
        across_campaigns_days = 14
        min_gap = "1h30m"
    "#;
    let p: Policy = toml::from_str(text).unwrap();
    assert_eq!(p.default_tz, tz("Europe/Kyiv"));
    assert_eq!(p.window.day(Weekday::Fri), &[r("22:00-02:00")]);
    assert_eq!(p.caps.min_gap, TimeDelta::minutes(90));
    assert!(p.retry.rule(&Outcome::Voicemail).is_none());
    let again: Policy = toml::from_str(&toml::to_string(&p).unwrap()).unwrap();
    assert_eq!(again, p);
    let json = serde_json::to_string(&p).unwrap();
    let from_json: Policy = serde_json::from_str(&json).unwrap();
    assert_eq!(from_json, p);
    assert!(json.contains(r#""fri":["22:00-02:00"]"#), "{json}");
    assert!(json.contains(r#""voicemail":"done""#), "{json}");
    // Defaults: retry and caps may be left out.
    let p: Policy =
        toml::from_str("default_tz = \"UTC\"\n[window]\nmon = [\"09:00-17:00\"]\n").unwrap();
    assert_eq!(p.retry, RetryPolicy::default());
    assert_eq!(p.caps, Caps::default());
    // Outcomes serialise as their keys.
    assert_eq!(
        serde_json::to_string(&Outcome::NoAnswer).unwrap(),
        "\"no_answer\""
    );
    assert_eq!(
        serde_json::from_str::<Outcome>("\"manager_call\"").unwrap(),
        Outcome::Category("manager_call".into())
    );
}

fn err_of<T: serde::de::DeserializeOwned + std::fmt::Debug>(text: &str) -> String {
    toml::from_str::<T>(text).unwrap_err().to_string()
}

#[test]
fn validation_errors_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (
            r#"mon = ["09:00-20:00", "25:00-26:00"]"#,
            "`mon[1]`: \"25:00-26:00\": \"25:00\": hour 25 is out of range",
        ),
        (
            r#"tue = ["09:00-12:00", "11:00-13:00"]"#,
            "`tue`: ranges \"09:00-12:00\" and \"11:00-13:00\" overlap",
        ),
        (
            r#"wed = ["09:00"]"#,
            "`wed[0]`: \"09:00\": expected \"HH:MM-HH:MM\"",
        ),
        (
            r#"thu = ["10:00-10:00"]"#,
            "`thu[0]`: \"10:00-10:00\": the range is empty",
        ),
        (
            r#"holidays = ["2026-13-01"]"#,
            "`holidays[0]`: \"2026-13-01\" is not a date YYYY-MM-DD",
        ),
        (
            r#"holidays = ["2026-12-25", "2026-12-25"]"#,
            "`holidays[1]`: 2026-12-25 is listed twice",
        ),
        (
            r#"holidays = [{ date = "2026-12-31", hours = ["9-10"] }]"#,
            "`holidays[0].hours[0]`: \"9-10\"",
        ),
        (
            r#"holidays = [{ date = "2026-12-31", hour = ["09:00-10:00"] }]"#,
            "unknown field `hour`",
        ),
        (r#"monday = ["09:00-20:00"]"#, "unknown field `monday`"),
    ];
    for (text, want) in cases {
        let e = err_of::<CallingWindow>(text);
        assert!(e.contains(want), "{text}\n  got: {e}\n  want: {want}");
    }
    let cases: &[(&str, &str)] = &[
        (
            r#"busy = { delay = "10", max_attempts = 3 }"#,
            "`busy.delay`: invalid duration \"10\": the number 10 has no unit",
        ),
        (
            r#"busy = { delay = "10m", max_attempts = 0 }"#,
            "`busy.max_attempts`: must be at least 1",
        ),
        (
            r#"busy = { delay = "10m", max_attempts = 3, backoff = 0.5 }"#,
            "`busy.backoff`: 0.5 is not a factor",
        ),
        (
            r#"busy = { delay = "1h", max_attempts = 3, max_delay = "10m" }"#,
            "`busy.max_delay`: 10m is shorter than delay 1h",
        ),
        (
            r#"busy = { dealy = "10m", max_attempts = 3 }"#,
            "unknown field `dealy`",
        ),
        (r#"busy = "never""#, "expected \"done\" or a table"),
        (
            r#"opt_out = { delay = "1d", max_attempts = 2 }"#,
            "`opt_out`: opt_out always ends the contact",
        ),
        (r#""No Answer" = "done""#, "not an outcome or category id"),
    ];
    for (text, want) in cases {
        let e = err_of::<RetryPolicy>(text);
        assert!(e.contains(want), "{text}\n  got: {e}\n  want: {want}");
    }
    let cases: &[(&str, &str)] = &[
        (
            "max_per_day = 0",
            "`max_per_day`: 0 would never allow a call",
        ),
        (
            "across_campaigns_days = 0",
            "`across_campaigns_days`: 0 is not a number of days",
        ),
        ("min_gap = \"5 minutes\"", "`min_gap`: invalid duration"),
        ("max_per_dya = 2", "unknown field `max_per_dya`"),
    ];
    for (text, want) in cases {
        let e = err_of::<Caps>(text);
        assert!(e.contains(want), "{text}\n  got: {e}\n  want: {want}");
    }
    let e = err_of::<Policy>("default_tz = \"Europe/Kiev2\"\n[window]\n");
    assert!(
        e.contains("`default_tz`: \"Europe/Kiev2\" is not an IANA time zone"),
        "{e}"
    );
    // TOML errors point at the line.
    let e = err_of::<Policy>(
        "default_tz = \"UTC\"\n[window]\nmon = [\"09:00-20:00\"]\nsat = [\"18:00-10:00\", \"19:00-20:00\"]\n",
    );
    assert!(e.contains("`sat`") && e.contains("overlap"), "{e}");
}
