//! A campaign's settings: the JSON kept in the store's `campaigns.settings` column, written by
//! whoever creates the campaign (the gRPC API, the demo) and read by every node that runs it.
//!
//! ```json
//! {
//!   "policy": { "default_tz": "Europe/Kyiv", "window": { "mon": ["09:00-20:00"] },
//!               "retry": { "busy": { "delay": "10m", "max_attempts": 3 } } },
//!   "trunks": [ { "name": "pbx-a", "weight": 3 }, { "name": "pbx-b", "weight": 1 } ],
//!   "cps": 20.0,
//!   "channels": 200,
//!   "language": "ru",
//!   "default_region": "UA",
//!   "manager_uri": "sip:sales@pbx.example.com",
//!   "ring_timeout_secs": 30
//! }
//! ```
//!
//! Every field but `policy` has a default. Trunks are named here and defined in the node's
//! configuration (`dialer.toml`), so credentials never enter the store.

use serde::{Deserialize, Serialize};

use crate::schedule::Policy;

/// One trunk a campaign uses, and its share of new calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkUse {
    /// A trunk name from the node configuration.
    pub name: String,
    /// Relative share of new calls (weights 3 and 1: three calls of four go to the first).
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// The settings of one campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignSettings {
    /// Calling windows, retry policy, caps and default time zone.
    pub policy: Policy,
    /// Trunks and weights; empty: every trunk of the node, weight 1.
    #[serde(default)]
    pub trunks: Vec<TrunkUse>,
    /// The campaign's own limit on new calls per second, over all nodes (the trunks' limits
    /// hold as well); `None`: the trunks' limits only.
    #[serde(default)]
    pub cps: Option<f64>,
    /// The campaign's own limit on calls in progress, over all nodes.
    #[serde(default)]
    pub channels: Option<u32>,
    /// The campaign's language (`ru`, `en`, `uk`): prompts and the recogniser.
    #[serde(default = "default_language")]
    pub language: String,
    /// ISO 3166 region of numbers written without a country code (import).
    #[serde(default)]
    pub default_region: Option<String>,
    /// Where a `manager_call` answer is transferred (SIP REFER); `None`: a callback task is
    /// recorded instead.
    #[serde(default)]
    pub manager_uri: Option<String>,
    /// How long a call may ring before it is cancelled.
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_secs: u64,
}

fn default_language() -> String {
    "ru".into()
}

fn default_ring_timeout() -> u64 {
    30
}

/// A bad setting, naming the field by its JSON path (`policy.retry.busy.delay`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("campaign settings: `{field}`: {reason}")]
pub struct SettingsError {
    pub field: String,
    pub reason: String,
}

impl SettingsError {
    fn new(field: &str, reason: impl Into<String>) -> SettingsError {
        SettingsError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl CampaignSettings {
    /// Settings with this policy and every default.
    pub fn new(policy: Policy) -> CampaignSettings {
        CampaignSettings {
            policy,
            trunks: Vec::new(),
            cps: None,
            channels: None,
            language: default_language(),
            default_region: None,
            manager_uri: None,
            ring_timeout_secs: default_ring_timeout(),
        }
    }

    /// Parse and validate the stored JSON.
    pub fn from_json(v: &serde_json::Value) -> Result<CampaignSettings, SettingsError> {
        let s: CampaignSettings = serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            SettingsError::new(
                if path == "." { "settings" } else { &path },
                e.into_inner().to_string(),
            )
        })?;
        s.validate()?;
        Ok(s)
    }

    /// Parse and validate TOML (the same shape, for configuration files and the CLI).
    pub fn from_toml(text: &str) -> Result<CampaignSettings, SettingsError> {
        let v: toml::Value =
            toml::from_str(text).map_err(|e| SettingsError::new("settings", e.to_string()))?;
        let json =
            serde_json::to_value(v).map_err(|e| SettingsError::new("settings", e.to_string()))?;
        CampaignSettings::from_json(&json)
    }

    /// The JSON to store.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("settings serialise to JSON")
    }

    /// Check the fields serde cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (i, t) in self.trunks.iter().enumerate() {
            if t.name.trim().is_empty() {
                return Err(SettingsError::new(
                    &format!("trunks[{i}].name"),
                    "must not be empty",
                ));
            }
            if t.weight == 0 {
                return Err(SettingsError::new(
                    &format!("trunks[{i}].weight"),
                    "must be at least 1",
                ));
            }
            if self.trunks[..i].iter().any(|o| o.name == t.name) {
                return Err(SettingsError::new(
                    &format!("trunks[{i}].name"),
                    format!("trunk {:?} is listed twice", t.name),
                ));
            }
        }
        if let Some(c) = self.cps
            && !(c.is_finite() && c > 0.0)
        {
            return Err(SettingsError::new("cps", "must be a positive number"));
        }
        if self.channels == Some(0) {
            return Err(SettingsError::new("channels", "must be at least 1"));
        }
        if script::Lang::parse(&self.language).is_none() {
            return Err(SettingsError::new(
                "language",
                format!(
                    "{:?} is not a supported language (ru, en, uk)",
                    self.language
                ),
            ));
        }
        if let Some(r) = &self.default_region
            && !(r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(SettingsError::new(
                "default_region",
                format!("{r:?} is not an ISO 3166 region code such as \"UA\""),
            ));
        }
        if let Some(u) = &self.manager_uri {
            let uri =
                sip::Uri::parse(u).map_err(|e| SettingsError::new("manager_uri", e.to_string()))?;
            if uri.secure {
                return Err(SettingsError::new(
                    "manager_uri",
                    "sips: (TLS) is not supported yet",
                ));
            }
        }
        if !(1..=600).contains(&self.ring_timeout_secs) {
            return Err(SettingsError::new(
                "ring_timeout_secs",
                "must be between 1 and 600 seconds",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"{"default_tz":"Europe/Kyiv","window":{"mon":["09:00-20:00"]}}"#;

    fn with(extra: &str) -> serde_json::Value {
        let text = format!(r#"{{"policy":{POLICY}{extra}}}"#);
        serde_json::from_str(&text).expect("test JSON")
    }

    #[test]
    fn defaults_and_round_trip() {
        let s = CampaignSettings::from_json(&with("")).expect("valid");
        assert_eq!(s.language, "ru");
        assert_eq!(s.ring_timeout_secs, 30);
        assert!(s.trunks.is_empty());
        let again = CampaignSettings::from_json(&s.to_json()).expect("round trip");
        assert_eq!(again, s);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#","cps":-1"#, "cps"),
            (r#","channels":0"#, "channels"),
            (r#","language":"de""#, "language"),
            (r#","default_region":"ukraine""#, "default_region"),
            (r#","manager_uri":"not a uri""#, "manager_uri"),
            (r#","ring_timeout_secs":0"#, "ring_timeout_secs"),
            (r#","trunks":[{"name":"a","weight":0}]"#, "trunks[0].weight"),
            (r#","trunks":[{"name":"a"},{"name":"a"}]"#, "trunks[1].name"),
            (r#","trunks":[{"name":"a","wieght":2}]"#, "trunks[0]"),
            (r#","colour":"red""#, "colour"),
        ];
        for (extra, field) in cases {
            let e = CampaignSettings::from_json(&with(extra)).expect_err(extra);
            assert!(
                e.field.starts_with(field),
                "{extra}: field {:?}, want {field:?} ({})",
                e.field,
                e.reason
            );
        }
        let bad_policy: serde_json::Value =
            serde_json::from_str(r#"{"policy":{"default_tz":"Mars/Base","window":{}}}"#)
                .expect("test JSON");
        let e = CampaignSettings::from_json(&bad_policy).expect_err("bad zone");
        assert!(e.field.starts_with("policy"), "{e}");
        assert!(e.reason.contains("Mars/Base"), "{e}");
    }

    #[test]
    fn toml_form() {
        let s = CampaignSettings::from_toml(
            r#"
            cps = 5.0
            manager_uri = "sip:sales@127.0.0.1:5070"
            [[trunks]]
            name = "a"
            weight = 3
            [policy]
            default_tz = "Europe/Kyiv"
            [policy.window]
            mon = ["09:00-20:00"]
            "#,
        )
        .expect("valid TOML settings");
        assert_eq!(s.trunks[0].weight, 3);
        assert_eq!(s.cps, Some(5.0));
    }
}
