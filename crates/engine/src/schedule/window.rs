//! Calling windows: when, in the callee's local time, a contact may be called.
//!
//! See the [module docs](super) for the rules (midnight-crossing ranges, holidays, DST).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone};
use chrono::{LocalResult, Utc, Weekday};
use chrono_tz::Tz;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ConfigError;

const MINUTES_PER_DAY: u16 = 24 * 60;

/// Field names of the weekdays, Monday first (as [`Weekday::num_days_from_monday`]).
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One local-time range of a day, minute resolution: `"09:00-20:00"`.
///
/// `start` is in `00:00..=23:59`; `end` in `00:01..=24:00`. When `end` is earlier than `start`
/// (`"22:00-02:00"`) the range crosses midnight and ends on the next local day; `"22:00-00:00"`
/// means `"22:00-24:00"`. A range of zero length is rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeRange {
    /// Minutes after local midnight, `0..1440`.
    start: u16,
    /// Minutes after local midnight, `1..=1440`; `< start` means "on the next day".
    end: u16,
}

impl TimeRange {
    /// A range from `start` to `end` minutes after local midnight (`end` up to 1440 = 24:00;
    /// `end < start` crosses midnight; `end == 0` means 24:00).
    pub fn from_minutes(start: u16, end: u16) -> Result<TimeRange, String> {
        if start >= MINUTES_PER_DAY {
            return Err(format!("start {} is not a time of day", fmt_minutes(start)));
        }
        if end > MINUTES_PER_DAY {
            return Err(format!("end {} is after 24:00", fmt_minutes(end)));
        }
        let end = if end == 0 { MINUTES_PER_DAY } else { end };
        if start == end {
            return Err(
                "the range is empty (start equals end); for the whole day write \"00:00-24:00\""
                    .into(),
            );
        }
        Ok(TimeRange { start, end })
    }

    /// Start, in minutes after local midnight.
    pub fn start_minutes(&self) -> u16 {
        self.start
    }

    /// End, in minutes after local midnight (1440 = 24:00); less than the start when the range
    /// crosses midnight.
    pub fn end_minutes(&self) -> u16 {
        self.end
    }

    /// Whether the range ends on the next local day (`"22:00-02:00"`).
    pub fn crosses_midnight(&self) -> bool {
        self.end < self.start
    }

    /// The local wall-clock bounds of this range on `date`: `[start, end)`.
    fn local_bounds(&self, date: NaiveDate) -> (NaiveDateTime, NaiveDateTime) {
        let start = at_minutes(date, self.start);
        let end = if self.crosses_midnight() {
            at_minutes(next_day(date), self.end)
        } else {
            at_minutes(date, self.end)
        };
        (start, end)
    }
}

impl FromStr for TimeRange {
    type Err = String;

    /// Parses `"HH:MM-HH:MM"` (hour one or two digits; spaces around `-` allowed; `24:00` only
    /// as an end).
    fn from_str(s: &str) -> Result<TimeRange, String> {
        let Some((a, b)) = s.split_once('-') else {
            return Err("expected \"HH:MM-HH:MM\", e.g. \"09:00-20:00\"".into());
        };
        let start = parse_hhmm(a.trim(), false)?;
        let end = parse_hhmm(b.trim(), true)?;
        TimeRange::from_minutes(start, end)
    }
}

impl fmt::Display for TimeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", fmt_minutes(self.start), fmt_minutes(self.end))
    }
}

impl Serialize for TimeRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TimeRange, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e| de::Error::custom(format!("{s:?}: {e}")))
    }
}

fn parse_hhmm(s: &str, is_end: bool) -> Result<u16, String> {
    let Some((h, m)) = s.split_once(':') else {
        return Err(format!("{s:?} is not a time; expected HH:MM"));
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || h.len() > 2 || !digits(m) || m.len() != 2 {
        return Err(format!("{s:?} is not a time; expected HH:MM"));
    }
    let (h, m): (u16, u16) = (h.parse().unwrap_or(99), m.parse().unwrap_or(99));
    if m > 59 {
        return Err(format!("{s:?}: minute {m} is out of range (00-59)"));
    }
    if h == 24 && m == 0 {
        if is_end {
            return Ok(MINUTES_PER_DAY);
        }
        return Err(format!("{s:?}: a range cannot start at 24:00"));
    }
    if h > 23 {
        return Err(format!(
            "{s:?}: hour {h} is out of range (00-23, or 24:00 as an end)"
        ));
    }
    Ok(h * 60 + m)
}

fn fmt_minutes(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

fn at_minutes(date: NaiveDate, minutes: u16) -> NaiveDateTime {
    date.and_time(NaiveTime::MIN) + TimeDelta::minutes(i64::from(minutes))
}

fn next_day(d: NaiveDate) -> NaiveDate {
    d.succ_opt().unwrap_or(d)
}

fn add_days(d: NaiveDate, n: i64) -> NaiveDate {
    let r = if n >= 0 {
        d.checked_add_days(Days::new(n.unsigned_abs()))
    } else {
        d.checked_sub_days(Days::new(n.unsigned_abs()))
    };
    r.unwrap_or(d)
}

/// The local date-time of instant `t` in `tz`.
fn local(tz: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    tz.from_utc_datetime(&t.naive_utc()).naive_local()
}

/// The earliest instant whose local wall-clock time in `tz` is at or after `wall`.
///
/// - A time that occurs once maps to that instant.
/// - A time that occurs twice (fall-back overlap) maps to its first occurrence.
/// - A time that does not occur (spring-forward gap, or a skipped day) maps to the first instant
///   after the gap: the transition itself.
///
/// The map never decreases as `wall` grows, which is what keeps ranges ordered and contiguous.
pub fn resolve_local(tz: Tz, wall: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
        LocalResult::None => gap_end(tz, wall),
    }
}

/// The transition instant that ends the gap `wall` falls in: the smallest instant whose local
/// time is at or after `wall`. Offsets stay within ±26 h of UTC, so the search brackets it.
fn gap_end(tz: Tz, wall: NaiveDateTime) -> DateTime<Utc> {
    let at = |secs: i64| DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let as_utc = wall.and_utc().timestamp();
    // local(lo) < wall <= local(hi); transitions fall on whole seconds.
    let (mut lo, mut hi) = (as_utc - 27 * 3600, as_utc + 27 * 3600);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if local(tz, at(mid)) >= wall {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    at(hi)
}

/// The local calendar day containing `now` in `tz`, as instants: `[start, end)` where `start`
/// is the first instant of the day (usually local midnight; after a gap at midnight, the
/// transition) and `end` the first instant of the next day.
///
/// Use it to count "attempts today" for [`Caps`](super::Caps).
pub fn local_day_bounds(now: DateTime<Utc>, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let d = local(tz, now).date();
    let start = resolve_local(tz, d.and_time(NaiveTime::MIN));
    let end = resolve_local(tz, next_day(d).and_time(NaiveTime::MIN));
    (start, end)
}

/// When calls are allowed, in the callee's local time: per weekday a list of [`TimeRange`]s,
/// and holidays (local dates with no calling, or with their own ranges).
///
/// Evaluated in the time zone passed to each query (the contact's, or the campaign's default).
/// Every query is a pure function of its arguments. Rules and examples: [module docs](super).
///
/// Serde form (what an operator writes; unknown keys are errors):
/// ```toml
/// mon = ["09:00-20:00"]
/// tue = ["09:00-13:00", "14:00-20:00"]
/// sat = ["10:00-18:00"]
/// holidays = ["2026-12-25", { date = "2026-12-31", hours = ["10:00-14:00"] }]
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallingWindow {
    /// Ranges per weekday, Monday first; each list sorted and non-overlapping.
    days: [Vec<TimeRange>; 7],
    /// Dates whose local day follows its own list (empty: no calling that day).
    holidays: BTreeMap<NaiveDate, Vec<TimeRange>>,
}

/// One interval of a window as instants: `[start, end)`.
type Span = (DateTime<Utc>, DateTime<Utc>);

impl CallingWindow {
    /// A window that never opens.
    pub fn closed() -> CallingWindow {
        CallingWindow {
            days: Default::default(),
            holidays: BTreeMap::new(),
        }
    }

    /// Monday to Friday 09:00–20:00, Saturday 10:00–18:00, Sunday closed, no holidays.
    pub fn business_hours() -> CallingWindow {
        let mut w = CallingWindow::closed();
        let weekday = TimeRange {
            start: 9 * 60,
            end: 20 * 60,
        };
        for d in [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ] {
            w.days[d.num_days_from_monday() as usize] = vec![weekday];
        }
        w.days[Weekday::Sat.num_days_from_monday() as usize] = vec![TimeRange {
            start: 10 * 60,
            end: 18 * 60,
        }];
        w
    }

    /// Replaces the ranges of one weekday. Errors if two ranges overlap.
    pub fn set_day(&mut self, day: Weekday, ranges: Vec<TimeRange>) -> Result<(), ConfigError> {
        let field = DAY_NAMES[day.num_days_from_monday() as usize];
        self.days[day.num_days_from_monday() as usize] = normalise(field, ranges)?;
        Ok(())
    }

    /// Adds a holiday: on local `date` calls follow `ranges` only (empty: no calls all day).
    /// Errors if the date is already a holiday or two ranges overlap.
    pub fn add_holiday(
        &mut self,
        date: NaiveDate,
        ranges: Vec<TimeRange>,
    ) -> Result<(), ConfigError> {
        let field = format!("holidays.{date}");
        if self.holidays.contains_key(&date) {
            return Err(ConfigError::new(field, "the date is listed twice"));
        }
        let ranges = normalise(&field, ranges)?;
        self.holidays.insert(date, ranges);
        Ok(())
    }

    /// The ranges of a weekday (sorted).
    pub fn day(&self, day: Weekday) -> &[TimeRange] {
        &self.days[day.num_days_from_monday() as usize]
    }

    /// The holidays: date and its own ranges (empty: closed all day).
    pub fn holidays(&self) -> impl Iterator<Item = (NaiveDate, &[TimeRange])> {
        self.holidays.iter().map(|(d, r)| (*d, r.as_slice()))
    }

    /// Whether the window never opens on an ordinary week (every weekday empty). Holidays with
    /// their own ranges may still open it on those dates.
    pub fn is_weekly_empty(&self) -> bool {
        self.days.iter().all(Vec::is_empty)
    }

    /// The ranges that govern local `date`.
    fn ranges_for(&self, date: NaiveDate) -> &[TimeRange] {
        match self.holidays.get(&date) {
            Some(r) => r,
            None => &self.days[date.weekday().num_days_from_monday() as usize],
        }
    }

    /// The instants of `range` of local `date` in `tz`, or `None` if DST swallows it whole.
    /// A range crossing into a holiday stops at that holiday's midnight.
    fn span(&self, tz: Tz, date: NaiveDate, range: TimeRange) -> Option<Span> {
        let (start, mut end) = range.local_bounds(date);
        if range.crosses_midnight() && self.holidays.contains_key(&next_day(date)) {
            end = next_day(date).and_time(NaiveTime::MIN);
        }
        let (a, b) = (resolve_local(tz, start), resolve_local(tz, end));
        (a < b).then_some((a, b))
    }

    /// All spans of local dates `from..=to`, in start order.
    fn spans(&self, tz: Tz, from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = Span> + '_ {
        from.iter_days()
            .take_while(move |d| *d <= to)
            .flat_map(move |d| {
                self.ranges_for(d)
                    .iter()
                    .filter_map(move |r| self.span(tz, d, *r))
            })
    }

    /// The last local date after which the window repeats weekly (a week after the last
    /// holiday, or a week after `from`).
    fn horizon(&self, from: NaiveDate) -> NaiveDate {
        let last = self.holidays.keys().next_back().copied().unwrap_or(from);
        add_days(from.max(last), 9)
    }

    /// Whether a call may be placed at `now` in time zone `tz`.
    pub fn allows(&self, now: DateTime<Utc>, tz: Tz) -> bool {
        let d = local(tz, now).date();
        // A span of date D lies within local dates D-1..=D+2 (DST can pull it back an hour or
        // skip a day), so D in d-2..=d+1 covers every span that can hold `now`.
        self.spans(tz, add_days(d, -2), add_days(d, 1))
            .any(|(a, b)| a <= now && now < b)
    }

    /// The first instant at or after `now` when calls are allowed: `now` itself if
    /// [`allows`](Self::allows) is true, `None` if the window never opens again.
    pub fn next_open(&self, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        if self.is_weekly_empty() && self.holidays.values().all(Vec::is_empty) {
            return None;
        }
        let d = local(tz, now).date();
        // Span starts never decrease with the local (date, time) they come from, so the first
        // span ending after `now` is where the window is open, or opens next.
        self.spans(tz, add_days(d, -2), self.horizon(d))
            .find(|&(_, b)| b > now)
            .map(|(a, _)| a.max(now))
    }

    /// When the window, open at `now`, next closes: the end of the contiguous open period
    /// (ranges that touch or overlap, also across midnight, count as one).
    ///
    /// `None` if it is closed at `now`, or if it never closes (open around the clock past the
    /// last holiday): tell the two apart with [`allows`](Self::allows).
    pub fn closes_at(&self, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let d = local(tz, now).date();
        let mut end: Option<DateTime<Utc>> = None;
        for (a, b) in self.spans(tz, add_days(d, -2), self.horizon(d)) {
            match end {
                None if a <= now && now < b => end = Some(b),
                None if a > now => return None,
                None => {}
                Some(e) if a <= e => end = Some(e.max(b)),
                Some(e) => return Some(e),
            }
        }
        None
    }
}

/// Sorts ranges by start and rejects overlaps, naming the field and both ranges.
fn normalise(field: &str, mut ranges: Vec<TimeRange>) -> Result<Vec<TimeRange>, ConfigError> {
    ranges.sort();
    for pair in ranges.windows(2) {
        let (x, y) = (pair[0], pair[1]);
        // Within one day the later-starting range overlaps if the earlier one reaches past its
        // start; a midnight-crossing range reaches to the end of the day.
        let x_end = if x.crosses_midnight() {
            MINUTES_PER_DAY
        } else {
            x.end
        };
        if y.start < x_end {
            return Err(ConfigError::new(
                field,
                format!("ranges \"{x}\" and \"{y}\" overlap; merge them into one"),
            ));
        }
    }
    // A crossing range may run into the next day's ranges: the window is their union.
    Ok(ranges)
}

// ---- serde -------------------------------------------------------------------------------

/// What an operator writes; validated into [`CallingWindow`].
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mon: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tue: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    wed: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    thu: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fri: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sat: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sun: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    holidays: Vec<RawHoliday>,
}

/// `"2026-12-25"` (closed all day) or `{ date = "2026-12-31", hours = ["10:00-14:00"] }`.
enum RawHoliday {
    Closed(String),
    Special(RawSpecial),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpecial {
    date: String,
    hours: Vec<String>,
}

impl Serialize for RawHoliday {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RawHoliday::Closed(d) => s.serialize_str(d),
            RawHoliday::Special(sp) => sp.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RawHoliday {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawHoliday, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawHoliday;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a date \"YYYY-MM-DD\" or a table { date = \"YYYY-MM-DD\", hours = [\"HH:MM-HH:MM\", ...] }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawHoliday, E> {
                Ok(RawHoliday::Closed(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawHoliday, A::Error> {
                RawSpecial::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawHoliday::Special)
            }
        }
        d.deserialize_any(V)
    }
}

fn parse_ranges(field: &str, items: &[String]) -> Result<Vec<TimeRange>, ConfigError> {
    let ranges = items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<TimeRange>()
                .map_err(|e| ConfigError::new(format!("{field}[{i}]"), format!("{s:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    normalise(field, ranges)
}

fn parse_date(field: &str, s: &str) -> Result<NaiveDate, ConfigError> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|e| ConfigError::new(field, format!("{s:?} is not a date YYYY-MM-DD ({e})")))
}

impl TryFrom<RawWindow> for CallingWindow {
    type Error = ConfigError;

    fn try_from(raw: RawWindow) -> Result<CallingWindow, ConfigError> {
        let mut w = CallingWindow::closed();
        let lists = [
            &raw.mon, &raw.tue, &raw.wed, &raw.thu, &raw.fri, &raw.sat, &raw.sun,
        ];
        for (i, items) in lists.into_iter().enumerate() {
            w.days[i] = parse_ranges(DAY_NAMES[i], items)?;
        }
        for (i, h) in raw.holidays.iter().enumerate() {
            let (date, ranges) = match h {
                RawHoliday::Closed(s) => (parse_date(&format!("holidays[{i}]"), s)?, Vec::new()),
                RawHoliday::Special(sp) => (
                    parse_date(&format!("holidays[{i}].date"), &sp.date)?,
                    parse_ranges(&format!("holidays[{i}].hours"), &sp.hours)?,
                ),
            };
            if w.holidays.insert(date, ranges).is_some() {
                return Err(ConfigError::new(
                    format!("holidays[{i}]"),
                    format!("{date} is listed twice"),
                ));
            }
        }
        Ok(w)
    }
}

impl From<&CallingWindow> for RawWindow {
    fn from(w: &CallingWindow) -> RawWindow {
        let strs = |r: &[TimeRange]| r.iter().map(ToString::to_string).collect::<Vec<_>>();
        let [mon, tue, wed, thu, fri, sat, sun] = w.days.each_ref().map(|d| strs(d));
        let holidays = w
            .holidays
            .iter()
            .map(|(d, r)| {
                if r.is_empty() {
                    RawHoliday::Closed(d.to_string())
                } else {
                    RawHoliday::Special(RawSpecial {
                        date: d.to_string(),
                        hours: strs(r),
                    })
                }
            })
            .collect();
        RawWindow {
            mon,
            tue,
            wed,
            thu,
            fri,
            sat,
            sun,
            holidays,
        }
    }
}

impl Serialize for CallingWindow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RawWindow::from(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for CallingWindow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CallingWindow, D::Error> {
        let raw = RawWindow::deserialize(d)?;
        CallingWindow::try_from(raw)
            .map_err(|e| de::Error::custom(format!("invalid calling window: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> TimeRange {
        s.parse().unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn time_range_parse_and_display() {
        assert_eq!(
            r("09:00-20:00"),
            TimeRange {
                start: 540,
                end: 1200
            }
        );
        assert_eq!(r("9:00 - 20:30").to_string(), "09:00-20:30");
        assert_eq!(r("22:00-02:00").to_string(), "22:00-02:00");
        assert!(r("22:00-02:00").crosses_midnight());
        assert_eq!(r("22:00-00:00"), r("22:00-24:00"));
        assert!(!r("22:00-24:00").crosses_midnight());
        assert_eq!(r("00:00-24:00").to_string(), "00:00-24:00");
        for (bad, why) in [
            ("09:00", "expected \"HH:MM-HH:MM\""),
            ("9-10", "not a time"),
            ("09:00-09:00", "empty"),
            ("24:00-10:00", "cannot start at 24:00"),
            ("25:00-26:00", "hour 25"),
            ("09:60-10:00", "minute 60"),
            ("09:0-10:00", "not a time"),
            ("24:30-10:00", "hour 24"),
        ] {
            let e = bad.parse::<TimeRange>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn resolve_gap_and_overlap() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // 2026-03-08 02:00 EST -> 03:00 EDT: 02:30 does not exist.
        let wall = NaiveDate::from_ymd_opt(2026, 3, 8)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert_eq!(resolve_local(ny, wall), utc("2026-03-08T07:00:00Z"));
        // 2026-11-01 01:30 occurs twice; the first is 05:30Z (EDT).
        let wall = NaiveDate::from_ymd_opt(2026, 11, 1)
            .unwrap()
            .and_hms_opt(1, 30, 0)
            .unwrap();
        assert_eq!(resolve_local(ny, wall), utc("2026-11-01T05:30:00Z"));
    }

    #[test]
    fn overlapping_ranges_are_rejected() {
        let mut w = CallingWindow::closed();
        let e = w
            .set_day(Weekday::Mon, vec![r("09:00-12:00"), r("11:00-13:00")])
            .unwrap_err();
        assert_eq!(e.field(), "mon");
        assert!(
            e.to_string()
                .contains("\"09:00-12:00\" and \"11:00-13:00\" overlap"),
            "{e}"
        );
        let e = w
            .set_day(Weekday::Tue, vec![r("22:00-02:00"), r("23:00-23:30")])
            .unwrap_err();
        assert_eq!(e.field(), "tue");
        w.set_day(Weekday::Wed, vec![r("12:00-20:00"), r("09:00-12:00")])
            .unwrap();
        assert_eq!(w.day(Weekday::Wed), &[r("09:00-12:00"), r("12:00-20:00")]);
    }

    #[test]
    fn adjacent_ranges_close_once() {
        let tz: Tz = "Europe/Kyiv".parse().unwrap();
        let mut w = CallingWindow::closed();
        // Monday 2026-06-01.
        w.set_day(
            Weekday::Mon,
            vec![r("09:00-12:00"), r("12:00-13:00"), r("22:00-02:00")],
        )
        .unwrap();
        w.set_day(Weekday::Tue, vec![r("00:00-03:00")]).unwrap();
        let now = utc("2026-06-01T07:00:00Z"); // 10:00 local (UTC+3)
        assert_eq!(w.closes_at(now, tz), Some(utc("2026-06-01T10:00:00Z")));
        let now = utc("2026-06-01T20:00:00Z"); // 23:00 local
        assert_eq!(w.closes_at(now, tz), Some(utc("2026-06-02T00:00:00Z"))); // Tue 03:00
        assert_eq!(w.closes_at(utc("2026-06-01T11:00:00Z"), tz), None);
    }
}
