//! "Do not pester": caps on how often one person is called, whatever the retry policy says.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::de;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::window::local_day_bounds;
use super::{ConfigError, ContactState, duration};

/// Frequency caps per contact. Counts come from the caller (the store knows them):
/// [`ContactState::attempts_today`] (this campaign, since the contact's local midnight, see
/// [`local_day_bounds`]) and [`ContactState::cross_campaign_attempts`] (every campaign, the last
/// [`across_campaigns_days`](Caps::across_campaigns_days) days).
///
/// Serde form (all keys optional; a missing limit is no limit):
/// ```toml
/// max_per_day = 3
/// max_across_campaigns = 6
/// across_campaigns_days = 7
/// min_gap = "30m"
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caps {
    /// At most this many attempts per contact per local calendar day.
    pub max_per_day: Option<u32>,
    /// At most this many attempts per contact over all campaigns in the last
    /// `across_campaigns_days` days.
    pub max_across_campaigns: Option<u32>,
    /// The period of `max_across_campaigns`, in days (≥ 1).
    pub across_campaigns_days: u32,
    /// At least this long between the end of one attempt and the next.
    pub min_gap: TimeDelta,
}

impl Default for Caps {
    /// 3 a day, 6 in 7 days across campaigns, 5 minutes apart.
    fn default() -> Caps {
        Caps {
            max_per_day: Some(3),
            max_across_campaigns: Some(6),
            across_campaigns_days: 7,
            min_gap: TimeDelta::minutes(5),
        }
    }
}

/// Which cap holds a contact back.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CapReason {
    /// `max_per_day` attempts made today (local day).
    DailyLimit {
        /// The cap.
        limit: u32,
    },
    /// `max_across_campaigns` attempts in the last `days` days over all campaigns.
    CrossCampaignLimit {
        /// The cap.
        limit: u32,
        /// The period.
        days: u32,
    },
    /// The last attempt was less than `gap` ago.
    MinGap {
        /// The configured gap.
        gap: TimeDelta,
    },
}

impl fmt::Display for CapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapReason::DailyLimit { limit } => write!(f, "{limit} attempts today, the daily cap"),
            CapReason::CrossCampaignLimit { limit, days } => {
                write!(
                    f,
                    "{limit} attempts in {days} days across campaigns, the cap"
                )
            }
            CapReason::MinGap { gap } => {
                write!(
                    f,
                    "less than {} since the last attempt",
                    duration::format(*gap)
                )
            }
        }
    }
}

impl Caps {
    /// No caps at all.
    pub fn none() -> Caps {
        Caps {
            max_per_day: None,
            max_across_campaigns: None,
            across_campaigns_days: 1,
            min_gap: TimeDelta::zero(),
        }
    }

    /// Whether a call at `now` respects every cap; the first cap broken otherwise (daily,
    /// cross-campaign, gap, in that order).
    pub fn check(&self, c: &ContactState, now: DateTime<Utc>) -> Result<(), CapReason> {
        if let Some(limit) = self.max_per_day
            && c.attempts_today >= limit
        {
            return Err(CapReason::DailyLimit { limit });
        }
        if let Some(limit) = self.max_across_campaigns
            && c.cross_campaign_attempts >= limit
        {
            return Err(CapReason::CrossCampaignLimit {
                limit,
                days: self.across_campaigns_days,
            });
        }
        if let Some(last) = c.last_attempt_at
            && now < last + self.min_gap
        {
            return Err(CapReason::MinGap { gap: self.min_gap });
        }
        Ok(())
    }

    /// The earliest instant at or after `now` when every cap allows a call, and the cap that
    /// sets it; `None` if no cap holds the contact back at `now`.
    ///
    /// - Daily cap: the start of the next local day in `tz` (today's count no longer applies).
    /// - Cross-campaign cap: when the oldest counted attempt leaves the period
    ///   ([`ContactState::cross_campaign_oldest`] + period); without that instant, the next
    ///   local day, when the caller recounts.
    /// - Minimum gap: the last attempt + the gap.
    pub fn earliest_after_caps(
        &self,
        c: &ContactState,
        now: DateTime<Utc>,
        tz: Tz,
    ) -> Option<(DateTime<Utc>, CapReason)> {
        let next_day = || local_day_bounds(now, tz).1;
        let mut best: Option<(DateTime<Utc>, CapReason)> = None;
        let mut consider = |t: DateTime<Utc>, why: CapReason| {
            if t > now && best.as_ref().is_none_or(|(b, _)| t > *b) {
                best = Some((t, why));
            }
        };
        if let Some(limit) = self.max_per_day
            && c.attempts_today >= limit
        {
            consider(next_day(), CapReason::DailyLimit { limit });
        }
        if let Some(limit) = self.max_across_campaigns
            && c.cross_campaign_attempts >= limit
        {
            let days = self.across_campaigns_days;
            let t = match c.cross_campaign_oldest {
                Some(oldest) => (oldest + TimeDelta::days(i64::from(days))).max(now),
                None => next_day(),
            };
            // Counted attempts that already left the period mean the count is stale: recount
            // tomorrow rather than call now.
            let t = if t <= now { next_day() } else { t };
            consider(t, CapReason::CrossCampaignLimit { limit, days });
        }
        if let Some(last) = c.last_attempt_at {
            consider(last + self.min_gap, CapReason::MinGap { gap: self.min_gap });
        }
        best
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCaps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_per_day: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_across_campaigns: Option<u32>,
    #[serde(default = "default_days")]
    across_campaigns_days: u32,
    #[serde(default = "default_gap")]
    min_gap: String,
}

fn default_days() -> u32 {
    7
}

fn default_gap() -> String {
    "0s".into()
}

impl TryFrom<RawCaps> for Caps {
    type Error = ConfigError;

    fn try_from(raw: RawCaps) -> Result<Caps, ConfigError> {
        for (name, v) in [
            ("max_per_day", raw.max_per_day),
            ("max_across_campaigns", raw.max_across_campaigns),
        ] {
            if v == Some(0) {
                return Err(ConfigError::new(
                    name,
                    "0 would never allow a call; leave the key out for no limit",
                ));
            }
        }
        if !(1..=366).contains(&raw.across_campaigns_days) {
            return Err(ConfigError::new(
                "across_campaigns_days",
                format!(
                    "{} is not a number of days between 1 and 366",
                    raw.across_campaigns_days
                ),
            ));
        }
        let min_gap = duration::parse(&raw.min_gap).map_err(|e| ConfigError::new("min_gap", e))?;
        Ok(Caps {
            max_per_day: raw.max_per_day,
            max_across_campaigns: raw.max_across_campaigns,
            across_campaigns_days: raw.across_campaigns_days,
            min_gap,
        })
    }
}

impl Serialize for Caps {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RawCaps {
            max_per_day: self.max_per_day,
            max_across_campaigns: self.max_across_campaigns,
            across_campaigns_days: self.across_campaigns_days,
            min_gap: duration::format(self.min_gap),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Caps {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Caps, D::Error> {
        let raw = RawCaps::deserialize(d)?;
        Caps::try_from(raw).map_err(|e| de::Error::custom(format!("invalid caps: {e}")))
    }
}
