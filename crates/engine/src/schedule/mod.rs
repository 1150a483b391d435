//! The scheduling policy: may this contact be called now, and if not, when?
//!
//! Pure logic (sans-IO): nothing here reads a clock, touches the store or draws from a global
//! RNG. Callers pass `now` as a UTC instant and the per-contact counts they know; every answer is
//! a deterministic function of its inputs. The campaign runner asks [`Policy::decide`] for each
//! contact it considers, keeps due contacts in a [`DueQueue`], and after each attempt asks
//! [`Policy::plan_next`] (or stores the outcome and asks `decide` again).
//!
//! # The parts
//! - [`CallingWindow`]: weekly local-time ranges plus holidays, evaluated in the contact's IANA
//!   time zone (the campaign's default when the contact has none).
//! - [`RetryPolicy`]: per outcome (busy, no_answer, …, or a script category), the delay before
//!   the next attempt (backoff, seeded jitter) and the attempts allowed; outcomes without a rule
//!   end the contact; `opt_out` always does.
//! - [`Caps`]: "do not pester": attempts per local day, attempts across campaigns in the last
//!   N days, minimum gap between attempts.
//! - [`Policy`]: all three and the default zone; [`Policy::decide`] gives a [`Decision`].
//! - [`DueQueue`]: due time + priority ordering for the runner's in-memory queue.
//!
//! # Calling-window rules
//! - A day's ranges are `"HH:MM-HH:MM"` in local wall-clock time, start inclusive, end
//!   exclusive, minute resolution; `24:00` may end a range. Ranges of one day must not overlap
//!   (an error names the day and both ranges); adjacent ranges (`09:00-12:00`, `12:00-14:00`)
//!   form one open period.
//! - **Midnight.** A range whose end is earlier than its start crosses midnight:
//!   `fri = ["22:00-02:00"]` is open from Friday 22:00 to Saturday 02:00. The tail belongs to
//!   the day the range starts on (Saturday's own list does not cancel it), except that a
//!   holiday governs its whole local date: a tail running into a holiday stops at its midnight.
//! - **Holidays.** `"2026-12-25"` closes that local date entirely;
//!   `{ date = "2026-12-31", hours = ["10:00-14:00"] }` replaces the weekday's ranges for that
//!   date.
//! - **Time zone.** Each range of local date D becomes the instants
//!   `[first(D start), first(D end))` where `first(t)` is *the earliest instant whose local
//!   time is at or after `t`*. So:
//!   - *Spring forward (gap):* a range starting at a wall time that does not exist (02:30 on a
//!     02:00→03:00 day) opens at the first valid instant, the transition (03:00 local); a range
//!     ending in the gap ends there; a range entirely inside the gap, or on a skipped day
//!     (Pacific/Apia 2011-12-30), does not open at all.
//!   - *Fall back (overlap):* a wall time that occurs twice means its first occurrence. A range
//!     is one contiguous interval: `00:00-01:30` on a 02:00→01:00 day closes at the first 01:30
//!     and does not reopen during the repeated hour; `01:30-03:00` opens at the first 01:30
//!     and stays open through the repeat (its length grows by the hour). Nothing is counted
//!     twice and nothing is skipped.
//!   - Away from transitions this is simply "the local time is inside a range".
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use engine::schedule::CallingWindow;
//!
//! let w: CallingWindow = toml::from_str(r#"
//!     mon = ["09:00-20:00"]
//!     tue = ["09:00-20:00"]
//!     sat = ["10:00-18:00"]
//!     holidays = ["2026-12-25", { date = "2026-12-31", hours = ["10:00-14:00"] }]
//! "#).unwrap();
//! let kyiv: chrono_tz::Tz = "Europe/Kyiv".parse().unwrap();
//! // Monday 2026-06-01 06:30 UTC is 09:30 in Kyiv (UTC+3).
//! let now = Utc.with_ymd_and_hms(2026, 6, 1, 6, 30, 0).unwrap();
//! assert!(w.allows(now, kyiv));
//! assert_eq!(w.closes_at(now, kyiv), Some(Utc.with_ymd_and_hms(2026, 6, 1, 17, 0, 0).unwrap()));
//! // 05:00 UTC is 08:00 local: closed until 09:00 local.
//! let early = Utc.with_ymd_and_hms(2026, 6, 1, 5, 0, 0).unwrap();
//! assert_eq!(w.next_open(early, kyiv), Some(Utc.with_ymd_and_hms(2026, 6, 1, 6, 0, 0).unwrap()));
//! ```
//!
//! # Retry and caps rules
//! - `attempts` counts every attempt on the contact in this campaign, the last one included; a
//!   rule's `max_attempts` is compared with it (so "busy: 5" means "retry busy while fewer than
//!   5 attempts were made in all").
//! - The retry delay runs from the end of the last attempt ([`ContactState::last_attempt_at`]).
//! - Caps only delay; a daily cap pushes to the next local midnight, where the caller's
//!   "attempts today" restarts.
//! - [`Policy::decide`] takes the latest of: now, the retry time, the caps' earliest time; then
//!   the first instant the window is open from there. The [`WaitReason`] names what set it.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use engine::schedule::{CallingWindow, ContactState, Decision, Outcome, Policy, WaitReason};
//!
//! let policy = Policy::new(CallingWindow::business_hours(), "Europe/Kyiv".parse().unwrap());
//! // Busy at Monday 2026-06-01 16:55 UTC (19:55 local): the retry (10–12 min later) falls
//! // after 20:00, so it moves to Tuesday 09:00 local = 06:00 UTC.
//! let ended = Utc.with_ymd_and_hms(2026, 6, 1, 16, 55, 0).unwrap();
//! let contact = ContactState {
//!     attempts: 1,
//!     attempts_today: 1,
//!     last_attempt_at: Some(ended),
//!     last_outcome: Some(Outcome::Busy),
//!     ..ContactState::default()
//! };
//! assert_eq!(
//!     policy.decide(&contact, ended),
//!     Decision::NotBefore(Utc.with_ymd_and_hms(2026, 6, 2, 6, 0, 0).unwrap(), WaitReason::Window),
//! );
//! ```
//!
//! # Serde
//! [`Policy`] reads from TOML or JSON as an operator writes it; unknown keys are errors, and
//! validation errors name the field, e.g. ``invalid calling window: `mon[1]`: ...``:
//! ```toml
//! default_tz = "Europe/Kyiv"
//! [window]
//! mon = ["09:00-20:00"]
//! [retry]
//! busy = { delay = "15m", max_attempts = 4 }
//! [caps]
//! max_per_day = 2
//! min_gap = "1h"
//! ```

mod caps;
mod duration;
mod queue;
mod retry;
mod window;

use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

pub use caps::{CapReason, Caps};
pub use queue::{DueEntry, DueQueue};
pub use retry::{DoneReason, Next, OPT_OUT, Outcome, RetryPolicy, RetryRule};
pub use window::{CallingWindow, TimeRange, local_day_bounds, resolve_local};

/// A configuration value that does not validate: which field, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {reason}")]
#[non_exhaustive]
pub struct ConfigError {
    field: String,
    reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field path, e.g. `mon[1]`, `holidays[0].date`, `busy.delay`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// What the caller knows about one contact when asking [`Policy::decide`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactState {
    /// The contact's IANA time zone; `None`: the policy's default.
    pub tz: Option<Tz>,
    /// Attempts made on this contact in this campaign (finished ones; 0 for a fresh contact).
    pub attempts: u32,
    /// Of those, attempts since the start of the contact's local day (see
    /// [`local_day_bounds`]).
    pub attempts_today: u32,
    /// Attempts in every campaign over the caps' period ([`Caps::across_campaigns_days`]).
    pub cross_campaign_attempts: u32,
    /// The oldest of those attempts, if known (tells when the count drops).
    pub cross_campaign_oldest: Option<DateTime<Utc>>,
    /// When the last attempt ended (for an interrupted one: when it was found dead).
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// How the last attempt ended; `None` for a fresh contact.
    pub last_outcome: Option<Outcome>,
    /// Per-contact seed of the retry jitter (e.g. a hash of the contact id).
    pub seed: u64,
}

/// The answer of [`Policy::decide`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Dial now.
    CallNow,
    /// Not before this instant; ask again then.
    NotBefore(DateTime<Utc>, WaitReason),
    /// Never again in this campaign.
    Done(DoneReason),
}

/// What makes a contact wait: the last constraint that pushed the time out.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitReason {
    /// The calling window is closed (in the contact's local time).
    Window,
    /// The retry delay of the last outcome.
    Retry(Outcome),
    /// A frequency cap.
    Cap(CapReason),
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::Window => f.write_str("calling window closed"),
            WaitReason::Retry(o) => write!(f, "retry delay after {o}"),
            WaitReason::Cap(c) => write!(f, "cap: {c}"),
        }
    }
}

/// The whole scheduling policy of a campaign.
///
/// Serde form: `{ window = {..}, retry = {..}, caps = {..}, default_tz = "Europe/Kyiv" }`;
/// `retry` and `caps` default to [`RetryPolicy::default`] and [`Caps::default`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// When calls are allowed.
    pub window: CallingWindow,
    /// What follows each outcome.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Frequency caps.
    #[serde(default)]
    pub caps: Caps,
    /// The zone of contacts that have none.
    #[serde(serialize_with = "ser_tz", deserialize_with = "de_tz")]
    pub default_tz: Tz,
}

fn ser_tz<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

fn de_tz<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<Tz>().map_err(|_| {
        de::Error::custom(format!(
            "`default_tz`: {s:?} is not an IANA time zone name (e.g. \"Europe/Kyiv\")"
        ))
    })
}

impl Policy {
    /// `window` in `default_tz` with the default retry policy and caps.
    pub fn new(window: CallingWindow, default_tz: Tz) -> Policy {
        Policy {
            window,
            retry: RetryPolicy::default(),
            caps: Caps::default(),
            default_tz,
        }
    }

    /// The zone a contact is evaluated in.
    pub fn tz_of(&self, c: &ContactState) -> Tz {
        c.tz.unwrap_or(self.default_tz)
    }

    /// May this contact be called at `now`, and if not, when next, or never?
    ///
    /// Order: the retry policy (on the last outcome) may end the contact or set a time; caps
    /// may push it later; then the first instant at or after that when the window is open.
    /// A window that never opens ends the contact ([`DoneReason::NoCallingWindow`]).
    pub fn decide(&self, c: &ContactState, now: DateTime<Utc>) -> Decision {
        let tz = self.tz_of(c);
        let mut at = now;
        let mut why = WaitReason::Window;
        if let Some(outcome) = &c.last_outcome {
            let ended = c.last_attempt_at.unwrap_or(now);
            match self.retry.next_after(outcome, c.attempts, ended, c.seed) {
                Next::Done(reason) => return Decision::Done(reason),
                Next::RetryAt(t) if t > at => {
                    at = t;
                    why = WaitReason::Retry(outcome.clone());
                }
                Next::RetryAt(_) => {}
            }
        }
        if let Some((t, cap)) = self.caps.earliest_after_caps(c, now, tz)
            && t > at
        {
            at = t;
            why = WaitReason::Cap(cap);
        }
        match self.window.next_open(at, tz) {
            None => Decision::Done(DoneReason::NoCallingWindow),
            Some(open) if open == now => Decision::CallNow,
            Some(open) if open > at => Decision::NotBefore(open, WaitReason::Window),
            Some(open) => Decision::NotBefore(open, why),
        }
    }

    /// After an attempt ended with `outcome` at `ended` (`attempts_so_far` made in all, this
    /// one included): the retry time moved into the calling window, or why the contact is done.
    ///
    /// Caps are not applied here (they need counts only the store has); [`decide`](Self::decide)
    /// applies them when the contact comes up.
    pub fn plan_next(
        &self,
        tz: Option<Tz>,
        outcome: &Outcome,
        attempts_so_far: u32,
        ended: DateTime<Utc>,
        seed: u64,
    ) -> Next {
        plan_next(
            &self.window,
            &self.retry,
            tz.unwrap_or(self.default_tz),
            outcome,
            attempts_so_far,
            ended,
            seed,
        )
    }
}

/// The retry policy's next time for `outcome`, moved to the first instant `window` is open in
/// `tz` ([`DoneReason::NoCallingWindow`] if it never opens again).
pub fn plan_next(
    window: &CallingWindow,
    retry: &RetryPolicy,
    tz: Tz,
    outcome: &Outcome,
    attempts_so_far: u32,
    ended: DateTime<Utc>,
    seed: u64,
) -> Next {
    match retry.next_after(outcome, attempts_so_far, ended, seed) {
        Next::RetryAt(t) => match window.next_open(t, tz) {
            Some(open) => Next::RetryAt(open),
            None => Next::Done(DoneReason::NoCallingWindow),
        },
        done => done,
    }
}
