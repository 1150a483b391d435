//! Durations as an operator writes them: `"90s"`, `"15m"`, `"1h30m"`, `"2d"`, `"1w"`.

use chrono::TimeDelta;

/// Units, largest first: (suffix, seconds).
const UNITS: [(char, i64); 5] = [
    ('w', 604_800),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

/// The longest duration accepted anywhere in the schedule: 10 years.
const MAX_SECS: i64 = 10 * 366 * 86_400;

/// Parses `"1h30m"`-style text: one or more `<integer><unit>` parts, units `w d h m s`, each at
/// most once and largest first. Whole seconds only; at most ten years.
pub(crate) fn parse(text: &str) -> Result<TimeDelta, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. \"30s\", \"15m\", \"1h30m\", \"2d\"".into());
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    let mut last_unit: Option<usize> = None;
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let Some(idx) = UNITS.iter().position(|(u, _)| *u == ch) else {
            return Err(format!(
                "invalid duration {text:?}: unexpected {ch:?}; units are w, d, h, m, s (e.g. \"1h30m\")"
            ));
        };
        if digits.is_empty() {
            return Err(format!(
                "invalid duration {text:?}: a number must come before {ch:?}"
            ));
        }
        if last_unit.is_some_and(|l| l >= idx) {
            return Err(format!(
                "invalid duration {text:?}: units must appear once each, largest first"
            ));
        }
        last_unit = Some(idx);
        let n: i64 = digits
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
        digits.clear();
        total = n
            .checked_mul(UNITS[idx].1)
            .and_then(|v| v.checked_add(total))
            .filter(|v| *v <= MAX_SECS)
            .ok_or_else(|| format!("invalid duration {text:?}: longer than ten years"))?;
    }
    if !digits.is_empty() {
        return Err(format!(
            "invalid duration {text:?}: the number {digits} has no unit (w, d, h, m or s)"
        ));
    }
    Ok(TimeDelta::seconds(total))
}

/// Formats a non-negative duration the way [`parse`] reads it (`"1h30m"`, `"0s"`); sub-second
/// parts are dropped.
pub(crate) fn format(d: TimeDelta) -> String {
    let mut secs = d.num_seconds().max(0);
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in UNITS {
        // Weeks only when the whole value is whole weeks, so "10d" stays "10d".
        if unit == 'w' && secs % len != 0 {
            continue;
        }
        if secs >= len {
            out.push_str(&(secs / len).to_string());
            out.push(unit);
            secs %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        for (text, secs, canon) in [
            ("90s", 90, "1m30s"),
            ("15m", 900, "15m"),
            ("1h30m", 5400, "1h30m"),
            ("2d", 172_800, "2d"),
            ("1w", 604_800, "1w"),
            ("1d2h3m4s", 93_784, "1d2h3m4s"),
            ("0s", 0, "0s"),
            (" 10d ", 864_000, "10d"),
        ] {
            let d = parse(text).unwrap();
            assert_eq!(d.num_seconds(), secs, "{text}");
            assert_eq!(format(d), canon);
            assert_eq!(parse(&format(d)).unwrap(), d);
        }
    }

    #[test]
    fn rejects_with_reasons() {
        for (text, want) in [
            ("", "empty duration"),
            ("10", "has no unit"),
            ("h", "a number must come before"),
            ("10x", "unexpected 'x'"),
            ("30m1h", "largest first"),
            ("1h1h", "largest first"),
            ("99999w", "ten years"),
            ("1.5h", "unexpected '.'"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
