//! Retry policy: after an attempt's outcome, when the next attempt is due, or whether the
//! contact is done.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{ConfigError, duration};

/// The category id that always ends the contact (compliance: opt-out is never retried).
pub const OPT_OUT: &str = "opt_out";

/// How one attempt ended: a system outcome, or the category the script sorted the callee into.
///
/// Keys (as written in configuration and stored): `answered`, `busy`, `no_answer`,
/// `invalid_number`, `rejected`, `voicemail`, `no_input`, `unclassified`, `failed`,
/// `interrupted`; any other key is a category id from the script (`manager_call`,
/// `not_interested`, `opt_out`, …).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Answered, and no category applies (no script, or the callee hung up at once).
    Answered,
    /// Answered and sorted into this script category (its id, e.g. `"send_details"`).
    Category(String),
    /// 486/600: the line was busy.
    Busy,
    /// Nobody picked up before the ring timeout (408/480/487).
    NoAnswer,
    /// The number does not exist (404/410/484/604).
    InvalidNumber,
    /// The callee or network declined (403/603/606).
    Rejected,
    /// Answering machine detected.
    Voicemail,
    /// Answered but the callee said and keyed nothing.
    NoInput,
    /// Answered but the answer matched no category.
    Unclassified,
    /// Trunk or media error, 5xx, timeouts.
    Failed,
    /// The node died mid-call (lease expired); the attempt's end is unknown.
    Interrupted,
}

/// System outcomes with their keys.
const SYSTEM: [(&str, Outcome); 10] = [
    ("answered", Outcome::Answered),
    ("busy", Outcome::Busy),
    ("no_answer", Outcome::NoAnswer),
    ("invalid_number", Outcome::InvalidNumber),
    ("rejected", Outcome::Rejected),
    ("voicemail", Outcome::Voicemail),
    ("no_input", Outcome::NoInput),
    ("unclassified", Outcome::Unclassified),
    ("failed", Outcome::Failed),
    ("interrupted", Outcome::Interrupted),
];

impl Outcome {
    /// The key of this outcome: a system name or the category id.
    pub fn key(&self) -> &str {
        match self {
            Outcome::Category(c) => c,
            other => SYSTEM
                .iter()
                .find(|(_, o)| o == other)
                .map_or("", |(k, _)| k),
        }
    }

    /// The outcome for a key: a system name, else a category id.
    pub fn from_key(key: &str) -> Outcome {
        SYSTEM
            .iter()
            .find(|(k, _)| *k == key)
            .map_or_else(|| Outcome::Category(key.to_owned()), |(_, o)| o.clone())
    }

    /// Whether this is the opt-out category ([`OPT_OUT`]).
    pub fn is_opt_out(&self) -> bool {
        matches!(self, Outcome::Category(c) if c == OPT_OUT)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl From<sip::Outcome> for Outcome {
    fn from(o: sip::Outcome) -> Outcome {
        match o {
            sip::Outcome::Answered => Outcome::Answered,
            sip::Outcome::Busy => Outcome::Busy,
            sip::Outcome::NoAnswer => Outcome::NoAnswer,
            sip::Outcome::InvalidNumber => Outcome::InvalidNumber,
            sip::Outcome::Rejected => Outcome::Rejected,
            sip::Outcome::Failed => Outcome::Failed,
        }
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.key())
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Outcome, D::Error> {
        let s = String::deserialize(d)?;
        check_key(&s).map_err(de::Error::custom)?;
        Ok(Outcome::from_key(&s))
    }
}

/// Keys are lower-case ids: `[a-z0-9_]+`.
fn check_key(k: &str) -> Result<(), String> {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(())
    } else {
        Err(format!(
            "{k:?} is not an outcome or category id (lower-case letters, digits, _)"
        ))
    }
}

/// When to retry after one outcome, and how many attempts a contact gets.
///
/// The `n`-th retry (after `n` attempts in all) waits
/// `min(delay × backoff^(n−1), max_delay) + jitter·u`, where `u ∈ [0, 1]` comes from the
/// caller's seed: jitter only ever lengthens the wait.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryRule {
    /// Wait after the first attempt.
    pub delay: TimeDelta,
    /// The contact gets no further attempt once it has had this many (all outcomes counted).
    pub max_attempts: u32,
    /// Each further attempt multiplies the wait by this (≥ 1; 1 = constant).
    pub backoff: f64,
    /// Upper bound of the wait before jitter (`None`: unbounded).
    pub max_delay: Option<TimeDelta>,
    /// Up to this much is added, drawn from the seed.
    pub jitter: TimeDelta,
}

impl RetryRule {
    /// A constant `delay`, at most `max_attempts` attempts in all, no jitter.
    pub fn new(delay: TimeDelta, max_attempts: u32) -> RetryRule {
        RetryRule {
            delay,
            max_attempts,
            backoff: 1.0,
            max_delay: None,
            jitter: TimeDelta::zero(),
        }
    }

    /// Sets the backoff factor (and the cap of the grown wait).
    pub fn with_backoff(mut self, factor: f64, max_delay: Option<TimeDelta>) -> RetryRule {
        self.backoff = factor;
        self.max_delay = max_delay;
        self
    }

    /// Sets the jitter bound.
    pub fn with_jitter(mut self, jitter: TimeDelta) -> RetryRule {
        self.jitter = jitter;
        self
    }

    /// The wait after `attempts_so_far` attempts (≥ 1), jittered by `seed`.
    pub fn delay_for(&self, attempts_so_far: u32, seed: u64) -> TimeDelta {
        let n = attempts_so_far.max(1) - 1;
        let base_ms = self.delay.num_milliseconds() as f64 * self.backoff.powi(n.min(1000) as i32);
        let cap_ms = self
            .max_delay
            .map_or(MAX_WAIT_MS, |m| m.num_milliseconds())
            .min(MAX_WAIT_MS);
        let wait_ms = if base_ms.is_finite() {
            (base_ms as i64).min(cap_ms)
        } else {
            cap_ms
        };
        let jitter_ms = self.jitter.num_milliseconds().max(0);
        let extra = if jitter_ms == 0 {
            0
        } else {
            // Uniform in 0..=jitter_ms, different per attempt for the same contact seed.
            let r =
                splitmix64(seed ^ u64::from(attempts_so_far).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            (r % (jitter_ms as u64 + 1)) as i64
        };
        TimeDelta::milliseconds(wait_ms.max(0) + extra)
    }
}

/// No wait grows past a year.
const MAX_WAIT_MS: i64 = 366 * 86_400_000;

/// A well-mixed 64-bit hash (SplitMix64's finaliser): the same seed gives the same jitter.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// What follows an attempt, by the retry policy alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Try again, not before this instant (the calling window and caps may push it later).
    RetryAt(DateTime<Utc>),
    /// No more attempts.
    Done(DoneReason),
}

/// Why a contact gets no more attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DoneReason {
    /// The callee asked not to be called ([`OPT_OUT`]); never retried, whatever the policy says.
    OptOut,
    /// The outcome ends the contact: a category or system outcome with no retry rule
    /// (e.g. `not_interested`, `send_details`, `invalid_number`).
    Final(Outcome),
    /// The outcome would be retried, but the contact has had its attempts.
    MaxAttempts {
        /// The last outcome.
        outcome: Outcome,
        /// Attempts made.
        attempts: u32,
    },
    /// The calling window never opens (empty, or only past holidays).
    NoCallingWindow,
}

impl fmt::Display for DoneReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DoneReason::OptOut => f.write_str("opted out"),
            DoneReason::Final(o) => write!(f, "final outcome {o}"),
            DoneReason::MaxAttempts { outcome, attempts } => {
                write!(f, "{outcome} after {attempts} attempts, the maximum")
            }
            DoneReason::NoCallingWindow => f.write_str("the calling window never opens"),
        }
    }
}

/// Per outcome key, whether and when to retry.
///
/// Keys without a rule end the contact ([`DoneReason::Final`]). [`RetryPolicy::default`]:
///
/// | outcome | delay | backoff | max attempts |
/// |---|---|---|---|
/// | `busy` | 10m (+≤2m jitter) | ×1.5, ≤2h | 5 |
/// | `no_answer` | 1h (+≤10m) | ×2, ≤1d | 5 |
/// | `failed` | 5m (+≤1m) | ×2, ≤1h | 5 |
/// | `interrupted` | 2m (+≤1m) | — | 5 |
/// | `voicemail` | 4h (+≤30m) | — | 4 |
/// | `no_input` | 2h (+≤15m) | — | 3 |
/// | `unclassified` | 2h (+≤15m) | — | 3 |
/// | `rejected` | 1d (+≤1h) | — | 2 |
///
/// Everything else (`answered`, every category, `invalid_number`) ends the contact.
///
/// Serde form: a table of outcome key → rule, or → `"done"`; entries replace the defaults, so
/// an operator lists only what differs:
/// ```toml
/// busy = { delay = "15m", max_attempts = 4, backoff = 2.0, max_delay = "2h", jitter = "3m" }
/// no_answer = { delay = "2h", max_attempts = 3 }
/// business_not_now = { delay = "30d", max_attempts = 6 }
/// voicemail = "done"
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    rules: BTreeMap<String, RetryRule>,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        let m = TimeDelta::minutes;
        let h = TimeDelta::hours;
        let rules = [
            (
                "busy",
                RetryRule::new(m(10), 5)
                    .with_backoff(1.5, Some(h(2)))
                    .with_jitter(m(2)),
            ),
            (
                "no_answer",
                RetryRule::new(h(1), 5)
                    .with_backoff(2.0, Some(h(24)))
                    .with_jitter(m(10)),
            ),
            (
                "failed",
                RetryRule::new(m(5), 5)
                    .with_backoff(2.0, Some(h(1)))
                    .with_jitter(m(1)),
            ),
            ("interrupted", RetryRule::new(m(2), 5).with_jitter(m(1))),
            ("voicemail", RetryRule::new(h(4), 4).with_jitter(m(30))),
            ("no_input", RetryRule::new(h(2), 3).with_jitter(m(15))),
            ("unclassified", RetryRule::new(h(2), 3).with_jitter(m(15))),
            ("rejected", RetryRule::new(h(24), 2).with_jitter(h(1))),
        ];
        RetryPolicy {
            rules: rules.into_iter().map(|(k, r)| (k.to_owned(), r)).collect(),
        }
    }
}

impl RetryPolicy {
    /// A policy that retries nothing.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            rules: BTreeMap::new(),
        }
    }

    /// Sets the rule for an outcome key, or removes it (`None`: the outcome ends the contact).
    /// Errors on an invalid rule, a malformed key, or a rule for [`OPT_OUT`].
    pub fn set(&mut self, key: &str, rule: Option<RetryRule>) -> Result<(), ConfigError> {
        check_key(key).map_err(|e| ConfigError::new(key, e))?;
        match rule {
            Some(r) => {
                if key == OPT_OUT {
                    return Err(ConfigError::new(
                        key,
                        "opt_out always ends the contact and cannot be retried",
                    ));
                }
                validate(key, &r)?;
                self.rules.insert(key.to_owned(), r);
            }
            None => {
                self.rules.remove(key);
            }
        }
        Ok(())
    }

    /// The rule for an outcome, if it is retried.
    pub fn rule(&self, outcome: &Outcome) -> Option<&RetryRule> {
        self.rules.get(outcome.key())
    }

    /// The outcome keys that have rules, sorted (to check against a script's categories).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.rules.keys().map(String::as_str)
    }

    /// After an attempt that ended with `outcome` at `at`, `attempts_so_far` attempts having
    /// been made on the contact in all (this one included): when to retry, or why not.
    /// `seed` draws the jitter (e.g. a hash of the contact id): the same inputs give the same
    /// answer.
    pub fn next_after(
        &self,
        outcome: &Outcome,
        attempts_so_far: u32,
        at: DateTime<Utc>,
        seed: u64,
    ) -> Next {
        if outcome.is_opt_out() {
            return Next::Done(DoneReason::OptOut);
        }
        let Some(rule) = self.rule(outcome) else {
            return Next::Done(DoneReason::Final(outcome.clone()));
        };
        if attempts_so_far >= rule.max_attempts {
            return Next::Done(DoneReason::MaxAttempts {
                outcome: outcome.clone(),
                attempts: attempts_so_far,
            });
        }
        Next::RetryAt(at + rule.delay_for(attempts_so_far, seed))
    }
}

fn validate(key: &str, r: &RetryRule) -> Result<(), ConfigError> {
    if r.max_attempts == 0 {
        return Err(ConfigError::new(
            format!("{key}.max_attempts"),
            "must be at least 1; to never retry write `\"done\"`",
        ));
    }
    if !(r.backoff.is_finite() && (1.0..=100.0).contains(&r.backoff)) {
        return Err(ConfigError::new(
            format!("{key}.backoff"),
            format!("{} is not a factor between 1.0 and 100.0", r.backoff),
        ));
    }
    for (name, d) in [
        ("delay", Some(r.delay)),
        ("max_delay", r.max_delay),
        ("jitter", Some(r.jitter)),
    ] {
        if d.is_some_and(|d| d < TimeDelta::zero()) {
            return Err(ConfigError::new(
                format!("{key}.{name}"),
                "must not be negative",
            ));
        }
    }
    if r.max_delay.is_some_and(|m| m < r.delay) {
        return Err(ConfigError::new(
            format!("{key}.max_delay"),
            format!(
                "{} is shorter than delay {}",
                duration::format(r.max_delay.unwrap_or_default()),
                duration::format(r.delay)
            ),
        ));
    }
    Ok(())
}

// ---- serde -------------------------------------------------------------------------------

/// `"done"` or a rule table.
enum RawEntry {
    Done,
    Rule(RawRule),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    delay: String,
    max_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backoff: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_delay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jitter: Option<String>,
}

impl Serialize for RawEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RawEntry::Done => s.serialize_str("done"),
            RawEntry::Rule(r) => r.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RawEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawEntry, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"done\" or a table { delay = \"10m\", max_attempts = 5, ... }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawEntry, E> {
                if v == "done" {
                    Ok(RawEntry::Done)
                } else {
                    Err(E::custom(format!(
                        "{v:?}: expected \"done\" or a table {{ delay = \"10m\", max_attempts = 5 }}"
                    )))
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawEntry, A::Error> {
                RawRule::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawEntry::Rule)
            }
        }
        d.deserialize_any(V)
    }
}

fn rule_from_raw(key: &str, raw: &RawRule) -> Result<RetryRule, ConfigError> {
    let dur = |name: &str, text: &str| {
        duration::parse(text).map_err(|e| ConfigError::new(format!("{key}.{name}"), e))
    };
    let rule = RetryRule {
        delay: dur("delay", &raw.delay)?,
        max_attempts: raw.max_attempts,
        backoff: raw.backoff.unwrap_or(1.0),
        max_delay: raw
            .max_delay
            .as_deref()
            .map(|t| dur("max_delay", t))
            .transpose()?,
        jitter: raw
            .jitter
            .as_deref()
            .map(|t| dur("jitter", t))
            .transpose()?
            .unwrap_or_default(),
    };
    Ok(rule)
}

impl TryFrom<BTreeMap<String, RawEntry>> for RetryPolicy {
    type Error = ConfigError;

    fn try_from(raw: BTreeMap<String, RawEntry>) -> Result<RetryPolicy, ConfigError> {
        let mut p = RetryPolicy::default();
        for (key, entry) in &raw {
            check_key(key).map_err(|e| ConfigError::new(key.as_str(), e))?;
            match entry {
                RawEntry::Done => p.set(key, None)?,
                RawEntry::Rule(r) => p.set(key, Some(rule_from_raw(key, r)?))?,
            }
        }
        Ok(p)
    }
}

impl Serialize for RetryPolicy {
    /// Every rule, and `"done"` for each default rule this policy removed, so that reading it
    /// back (over the defaults) gives the same policy.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let defaults = RetryPolicy::default();
        let mut out: BTreeMap<&str, RawEntry> = BTreeMap::new();
        for k in defaults.rules.keys() {
            out.insert(k, RawEntry::Done);
        }
        for (k, r) in &self.rules {
            let raw = RawRule {
                delay: duration::format(r.delay),
                max_attempts: r.max_attempts,
                backoff: (r.backoff != 1.0).then_some(r.backoff),
                max_delay: r.max_delay.map(duration::format),
                jitter: (r.jitter > TimeDelta::zero()).then(|| duration::format(r.jitter)),
            };
            out.insert(k, RawEntry::Rule(raw));
        }
        out.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RetryPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RetryPolicy, D::Error> {
        let raw = BTreeMap::<String, RawEntry>::deserialize(d)?;
        RetryPolicy::try_from(raw)
            .map_err(|e| de::Error::custom(format!("invalid retry policy: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_keys_round_trip() {
        for (k, o) in SYSTEM {
            assert_eq!(o.key(), k);
            assert_eq!(Outcome::from_key(k), o);
        }
        assert_eq!(
            Outcome::from_key("send_details"),
            Outcome::Category("send_details".into())
        );
        assert!(Outcome::from_key("opt_out").is_opt_out());
        assert_eq!(Outcome::from(sip::Outcome::Busy), Outcome::Busy);
    }

    #[test]
    fn jitter_is_bounded_and_seeded() {
        let r = RetryRule::new(TimeDelta::minutes(10), 5).with_jitter(TimeDelta::minutes(2));
        let mut seen = std::collections::HashSet::new();
        for seed in 0..200u64 {
            let d = r.delay_for(1, seed);
            assert!(
                d >= TimeDelta::minutes(10) && d <= TimeDelta::minutes(12),
                "{d}"
            );
            assert_eq!(d, r.delay_for(1, seed));
            seen.insert(d);
        }
        assert!(seen.len() > 150, "jitter barely varies: {}", seen.len());
    }

    #[test]
    fn backoff_grows_and_caps() {
        let r = RetryRule::new(TimeDelta::minutes(10), 9)
            .with_backoff(2.0, Some(TimeDelta::minutes(60)));
        let got: Vec<i64> = (1..=6).map(|n| r.delay_for(n, 0).num_minutes()).collect();
        assert_eq!(got, [10, 20, 40, 60, 60, 60]);
        assert_eq!(r.delay_for(0, 0).num_minutes(), 10);
        let huge = RetryRule::new(TimeDelta::days(30), 9).with_backoff(100.0, None);
        assert_eq!(huge.delay_for(u32::MAX, 0).num_milliseconds(), MAX_WAIT_MS);
    }
}
