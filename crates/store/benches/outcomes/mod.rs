//! What the per-call store benches (`percall.rs`, `result.rs`) write: contacts as an import
//! row brings them, and attempt ends in the runner's shape by a realistic outcome mix.

use std::collections::BTreeMap;

use store::{AttemptEnd, ConsentSource, NewConsent, NewContact, NewResult, Next};

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Contact `i`: name, zone, language, CRM id, and a web-form consent when `consent`.
pub fn row(i: usize, consent: bool) -> NewContact {
    let mut attributes = BTreeMap::new();
    attributes.insert("crm_id".to_string(), format!("C{i:08}"));
    NewContact {
        phone_e164: format!("+38067{:07}", i % 10_000_000),
        name: Some(format!("Контакт {i}")),
        timezone: Some(["Europe/Kyiv", "Europe/Warsaw", "America/New_York"][i % 3].to_string()),
        language: Some("uk".to_string()),
        attributes,
        consent: consent.then(|| NewConsent {
            source: ConsentSource::WebForm,
            given_at_ms: 1_700_000_000_000,
            text_version: "2024-01".into(),
            evidence: Some(format!("form-{i}")),
        }),
    }
}

/// The attempt's end as the runner writes it, by a realistic outcome mix.
pub fn end_of(call: usize, now: i64) -> AttemptEnd {
    let (outcome, status, category, next) = match call % 10 {
        0..=3 => ("answered", Some(200), Some("send_details"), Next::Done),
        4..=6 => ("no_answer", Some(487), None, Next::RetryAt(now + 3_600_000)),
        7 | 8 => ("busy", Some(486), None, Next::RetryAt(now + 600_000)),
        _ => (
            "voicemail",
            Some(200),
            None,
            Next::RetryAt(now + 14_400_000),
        ),
    };
    let answered = status == Some(200);
    AttemptEnd {
        now_ms: now,
        outcome: outcome.into(),
        sip_status: status,
        result: Some(NewResult {
            category: category.map(Into::into),
            outcome: outcome.into(),
            dtmf: category.map(|_| "2".into()),
            transcript: category.map(|_| "відправте деталі на пошту".into()),
            // None for system outcomes, as the runner sends them.
            confidence: category.map(|_| 0.93),
            amd: answered.then(|| {
                if category.is_some() {
                    "human"
                } else {
                    "machine"
                }
                .into()
            }),
            sip_status: status,
            setup_ms: Some(1_800),
            duration_ms: answered.then_some(14_000),
            script_version: answered.then(|| "actualization@1".into()),
            ..NewResult::default()
        }),
        next,
    }
}
