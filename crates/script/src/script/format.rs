//! The script file's shape as serde reads it: every field an operator may write, with the spans
//! that validation needs to point at the exact line and column. Nothing here is checked beyond
//! its TOML type; `load.rs` turns these into a validated [`Script`](super::Script).
//!
//! Each section is read on its own (the `[script]` table, each prompt, each category, each node),
//! so one typo does not hide the errors in the sections after it.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, Visitor};
use toml::Spanned;

/// A text value with the place it was written.
pub(crate) type Str = Spanned<String>;

/// `[script]`: what the script is, and the defaults its nodes inherit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScriptDef {
    pub name: Str,
    pub version: Str,
    pub start: Str,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub default_language: Option<Str>,
    #[serde(default)]
    pub languages: Option<Spanned<Vec<Str>>>,
    #[serde(default)]
    pub threshold: Option<Spanned<f64>>,
    #[serde(default)]
    pub max_duration: Option<Spanned<DurationValue>>,
    #[serde(default)]
    pub no_input_timeout: Option<Spanned<DurationValue>>,
    #[serde(default)]
    pub max_speech: Option<Spanned<DurationValue>>,
    #[serde(default)]
    pub transcript_timeout: Option<Spanned<DurationValue>>,
    #[serde(default)]
    pub barge_in: Option<bool>,
    #[serde(default)]
    pub record: Option<bool>,
}

/// `[prompts.<id>]`: one WAV per language, its text, and its DTMF-only variant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PromptDef {
    #[serde(default)]
    pub ru: Option<Str>,
    #[serde(default)]
    pub uk: Option<Str>,
    #[serde(default)]
    pub en: Option<Str>,
    #[serde(default)]
    pub text: BTreeMap<Str, String>,
    #[serde(default)]
    pub dtmf_only: Option<Str>,
}

/// `[[category]]`: an answer the script can file a callee under.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CategoryDef {
    pub id: Str,
    #[serde(default)]
    pub keys: Vec<Str>,
    #[serde(default)]
    pub global: bool,
    #[serde(default)]
    pub global_keys: Vec<Str>,
    #[serde(default)]
    pub then: Option<Str>,
    #[serde(default)]
    pub label: BTreeMap<Str, String>,
    #[serde(default)]
    pub phrases: BTreeMap<Str, Vec<String>>,
}

/// `type = "play"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlayDef {
    #[serde(rename = "type")]
    pub _kind: IgnoredAny,
    pub prompt: Str,
    #[serde(default)]
    pub barge_in: Option<bool>,
    pub next: Str,
}

/// `type = "gather"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GatherDef {
    #[serde(rename = "type")]
    pub _kind: IgnoredAny,
    pub prompt: Str,
    #[serde(default)]
    pub barge_in: Option<bool>,
    #[serde(default)]
    pub speech: Option<bool>,
    #[serde(default)]
    pub dtmf: Option<bool>,
    #[serde(default)]
    pub timeout: Option<Spanned<DurationValue>>,
    #[serde(default)]
    pub categories: Option<Vec<Str>>,
    #[serde(default)]
    pub repeat_prompt: Option<bool>,
    #[serde(default)]
    pub no_input_prompt: Option<Str>,
    #[serde(default)]
    pub no_input_retries: Option<Spanned<i64>>,
    #[serde(default)]
    pub no_match_prompt: Option<Str>,
    #[serde(default)]
    pub no_match_retries: Option<Spanned<i64>>,
    #[serde(default)]
    pub on: BTreeMap<Str, Str>,
    #[serde(default)]
    pub next: Option<Str>,
    #[serde(default)]
    pub on_no_input: Option<Str>,
    #[serde(default)]
    pub on_no_match: Option<Str>,
}

/// `type = "ask"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AskDef {
    #[serde(rename = "type")]
    pub _kind: IgnoredAny,
    pub prompt: Str,
    #[serde(default)]
    pub barge_in: Option<bool>,
    #[serde(default)]
    pub timeout: Option<Spanned<DurationValue>>,
    pub next: Str,
}

/// `type = "transfer"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransferDef {
    #[serde(rename = "type")]
    pub _kind: IgnoredAny,
    #[serde(default)]
    pub prompt: Option<Str>,
    pub target: Str,
}

/// `type = "set_category"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetCategoryDef {
    #[serde(rename = "type")]
    pub _kind: IgnoredAny,
    pub category: Str,
    pub next: Str,
}

/// `type = "consent"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsentDef {
    #[serde(rename = "type")]
    pub _kind: IgnoredAny,
    pub yes: Vec<Str>,
    pub no: Vec<Str>,
    pub next: Str,
    #[serde(default)]
    pub on_yes: Option<Str>,
    #[serde(default)]
    pub on_no: Option<Str>,
}

/// `type = "hangup"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HangupDef {
    #[serde(rename = "type")]
    pub _kind: IgnoredAny,
    #[serde(default)]
    pub prompt: Option<Str>,
}

/// A node of any type, read by its `type` field.
#[derive(Debug)]
pub(crate) enum NodeDef {
    Play(PlayDef),
    Gather(Box<GatherDef>),
    Ask(AskDef),
    Transfer(TransferDef),
    SetCategory(SetCategoryDef),
    Consent(ConsentDef),
    Hangup(HangupDef),
}

/// The node types, as `type = "…"` spells them.
pub(crate) const NODE_TYPES: [&str; 7] = [
    "play",
    "gather",
    "ask",
    "transfer",
    "set_category",
    "consent",
    "hangup",
];

/// A duration as written: seconds as a number (`6`, `1.5`) or a string with a unit
/// (`"500ms"`, `"6s"`, `"3m"`). Range checks happen in validation, where the span is known.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DurationValue {
    Seconds(f64),
    Text(String),
}

impl DurationValue {
    /// Seconds, if the value is a number or a well-formed string; `None` when it cannot be read.
    pub fn seconds(&self) -> Option<f64> {
        match self {
            DurationValue::Seconds(s) => Some(*s),
            DurationValue::Text(t) => parse_duration_text(t),
        }
    }
}

fn parse_duration_text(t: &str) -> Option<f64> {
    let t = t.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    Some(n * scale)
}

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a duration: seconds as a number, or a string like \"500ms\", \"6s\", \"3m\"",
                )
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationValue, E> {
                Ok(DurationValue::Seconds(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationValue, E> {
                Ok(DurationValue::Seconds(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DurationValue, E> {
                Ok(DurationValue::Seconds(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationValue, E> {
                Ok(DurationValue::Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_text_units() {
        let s = |t: &str| DurationValue::Text(t.into()).seconds();
        assert_eq!(s("6"), Some(6.0));
        assert_eq!(s("6s"), Some(6.0));
        assert_eq!(s("500ms"), Some(0.5));
        assert_eq!(s("3m"), Some(180.0));
        assert_eq!(s("1.5 s"), Some(1.5));
        assert_eq!(s("1h"), Some(3600.0));
        assert_eq!(s("soon"), None);
        assert_eq!(s("5 parsecs"), None);
        assert_eq!(s(""), None);
        assert_eq!(DurationValue::Seconds(-1.0).seconds(), Some(-1.0));
    }
}
