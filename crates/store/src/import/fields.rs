//! Validation of the non-phone columns. Each function takes the raw (untrimmed) field and
//! returns the value or the reason text of a [`RowError`](super::RowError).

use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime};

use super::phone::shorten;
use super::{ConsentSource, MAX_NAME_CHARS, MAX_TEXT_VERSION_CHARS};

/// Trimmed; `None` when empty. Control characters (tabs and line breaks included) refused.
pub(crate) fn name(raw: &str) -> Result<Option<String>, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.chars().any(char::is_control) {
        return Err("contains control characters".into());
    }
    let n = s.chars().count();
    if n > MAX_NAME_CHARS {
        return Err(format!(
            "too long ({n} characters, at most {MAX_NAME_CHARS})"
        ));
    }
    Ok(Some(s.to_string()))
}

/// An IANA zone name known to chrono-tz, exactly as spelled there (`Europe/Kyiv`).
pub(crate) fn timezone(raw: &str) -> Result<Option<String>, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    match chrono_tz::Tz::from_str(s) {
        Ok(tz) => Ok(Some(tz.name().to_string())),
        Err(_) => {
            let hint = chrono_tz::TZ_VARIANTS
                .iter()
                .find(|tz| tz.name().eq_ignore_ascii_case(s))
                .map(|tz| format!(" (did you mean {:?}?)", tz.name()))
                .unwrap_or_default();
            Err(format!("unknown IANA time zone: {:?}{hint}", shorten(s)))
        }
    }
}

/// `ru`, `uk` or `en` (case-insensitive), stored lowercase.
pub(crate) fn language(raw: &str) -> Result<Option<String>, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    match s.to_ascii_lowercase().as_str() {
        l @ ("ru" | "uk" | "en") => Ok(Some(l.to_string())),
        _ => Err(format!("must be one of ru, uk, en: {:?}", shorten(s))),
    }
}

pub(crate) fn consent_source(s: &str) -> Result<ConsentSource, String> {
    let s = s.trim();
    ConsentSource::ALL
        .iter()
        .copied()
        .find(|c| c.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            format!(
                "must be one of web_form, paper_form, sms, phone_call: {:?}",
                shorten(s)
            )
        })
}

/// RFC 3339 (`2024-05-01T10:00:00+03:00`, `…Z`) or `YYYY-MM-DD HH:MM[:SS[.fff]]`
/// (also with `T`), the latter taken as UTC. Returns Unix milliseconds. Refused when later
/// than `latest_ms` (the import time plus the allowed clock skew) or before 1970.
pub(crate) fn consent_at(s: &str, latest_ms: i64) -> Result<i64, String> {
    let ms = parse_utc_ms(s).ok_or_else(|| {
        format!(
            "not RFC 3339 or \"YYYY-MM-DD HH:MM[:SS]\" (UTC): {:?}",
            shorten(s)
        )
    })?;
    if ms > latest_ms {
        return Err(format!("in the future: {:?}", shorten(s)));
    }
    if ms < 0 {
        return Err(format!("before 1970: {:?}", shorten(s)));
    }
    Ok(ms)
}

fn parse_utc_ms(s: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    const NAIVE: [&str; 4] = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ];
    NAIVE
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|t| t.and_utc().timestamp_millis())
}

/// Version label of the consent text the contact agreed to: non-empty, no control
/// characters, at most [`MAX_TEXT_VERSION_CHARS`].
pub(crate) fn text_version(s: &str) -> Result<String, String> {
    if s.chars().any(char::is_control) {
        return Err("contains control characters".into());
    }
    let n = s.chars().count();
    if n > MAX_TEXT_VERSION_CHARS {
        return Err(format!(
            "too long ({n} characters, at most {MAX_TEXT_VERSION_CHARS})"
        ));
    }
    Ok(s.to_string())
}

/// Free attribute value: trimmed; `None` when empty. Line breaks and tabs are allowed,
/// other control characters are not.
pub(crate) fn attribute(raw: &str) -> Result<Option<String>, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err("contains control characters".into());
    }
    Ok(Some(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000_000; // 2025-06-15T15:06:40Z

    #[test]
    fn names() {
        assert_eq!(name("  Іван Петренко "), Ok(Some("Іван Петренко".into())));
        assert_eq!(name("   "), Ok(None));
        assert_eq!(name("a\u{7}b"), Err("contains control characters".into()));
        assert_eq!(name("a\nb"), Err("contains control characters".into()));
        assert_eq!(
            name(&"я".repeat(201)),
            Err("too long (201 characters, at most 200)".into())
        );
        assert!(name(&"я".repeat(200)).is_ok());
    }

    #[test]
    fn zones_and_languages() {
        assert_eq!(timezone(" Europe/Kyiv "), Ok(Some("Europe/Kyiv".into())));
        assert_eq!(timezone("UTC"), Ok(Some("UTC".into())));
        assert_eq!(timezone(""), Ok(None));
        assert_eq!(
            timezone("europe/kyiv"),
            Err("unknown IANA time zone: \"europe/kyiv\" (did you mean \"Europe/Kyiv\"?)".into())
        );
        assert_eq!(
            timezone("Mars/Olympus"),
            Err("unknown IANA time zone: \"Mars/Olympus\"".into())
        );
        assert_eq!(
            timezone("+03:00"),
            Err("unknown IANA time zone: \"+03:00\"".into())
        );
        assert_eq!(language("UK"), Ok(Some("uk".into())));
        assert_eq!(
            language("ua"),
            Err("must be one of ru, uk, en: \"ua\"".into())
        );
    }

    #[test]
    fn consent_times() {
        assert_eq!(
            consent_at("2024-05-01T10:00:00Z", NOW),
            Ok(1_714_557_600_000)
        );
        assert_eq!(
            consent_at("2024-05-01T13:00:00+03:00", NOW),
            Ok(1_714_557_600_000)
        );
        assert_eq!(consent_at("2024-05-01 10:00", NOW), Ok(1_714_557_600_000));
        assert_eq!(
            consent_at("2024-05-01 10:00:00", NOW),
            Ok(1_714_557_600_000)
        );
        assert_eq!(
            consent_at("2024-05-01T10:00:00.250", NOW),
            Ok(1_714_557_600_250)
        );
        assert_eq!(
            consent_at("01.05.2024", NOW),
            Err("not RFC 3339 or \"YYYY-MM-DD HH:MM[:SS]\" (UTC): \"01.05.2024\"".into())
        );
        assert_eq!(
            consent_at("2024-02-30 10:00", NOW),
            Err("not RFC 3339 or \"YYYY-MM-DD HH:MM[:SS]\" (UTC): \"2024-02-30 10:00\"".into())
        );
        assert_eq!(
            consent_at("2031-01-01 00:00", NOW),
            Err("in the future: \"2031-01-01 00:00\"".into())
        );
        assert_eq!(
            consent_at("1969-12-31 23:59", NOW),
            Err("before 1970: \"1969-12-31 23:59\"".into())
        );
        assert_eq!(consent_at("2025-06-15 15:06:40", NOW), Ok(NOW));
    }

    #[test]
    fn sources_versions_attributes() {
        assert_eq!(consent_source("web_form"), Ok(ConsentSource::WebForm));
        assert_eq!(consent_source("Phone_Call"), Ok(ConsentSource::PhoneCall));
        assert_eq!(
            consent_source("email"),
            Err("must be one of web_form, paper_form, sms, phone_call: \"email\"".into())
        );
        assert_eq!(text_version("v2"), Ok("v2".into()));
        assert_eq!(
            text_version(&"v".repeat(65)),
            Err("too long (65 characters, at most 64)".into())
        );
        assert_eq!(attribute(" a\nb "), Ok(Some("a\nb".into())));
        assert_eq!(
            attribute("a\u{0}"),
            Err("contains control characters".into())
        );
    }
}
