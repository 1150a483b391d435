//! Conversions between the protobuf types and the store's and engine's types. Protobuf stays at
//! this edge: nothing below `control` sees a `pb` type.
//!
//! Campaign settings travel as [`pb::CampaignSettings`], whose field names are the keys of the
//! settings JSON ([`engine::settings::CampaignSettings`]). [`settings_to_json`] builds that JSON
//! from the message (unset fields are left out, so the engine's defaults apply) and
//! [`settings_from_json`] goes back; the engine's validator then names a bad field by its JSON
//! path, which is also the protobuf path under `settings.`.

use serde_json::{Map, Value, json};

use crate::pb;

/// The settings JSON for a [`pb::CampaignSettings`] (not yet validated: pass it to
/// `CampaignSettings::from_json`). `Err((field, reason))` for what JSON cannot say (a missing
/// policy, a window without any hours).
pub fn settings_to_json(s: &pb::CampaignSettings) -> Result<Value, (String, String)> {
    let mut out = Map::new();
    let policy = s.policy.as_ref().ok_or_else(|| {
        (
            "settings.policy".to_string(),
            "required: default_tz and the calling window".to_string(),
        )
    })?;
    out.insert("policy".into(), policy_to_json(policy)?);
    if !s.trunks.is_empty() {
        out.insert(
            "trunks".into(),
            Value::Array(
                s.trunks
                    .iter()
                    .map(|t| json!({ "name": t.name, "weight": t.weight.max(1) }))
                    .collect(),
            ),
        );
    }
    if let Some(cps) = s.cps {
        out.insert("cps".into(), json!(cps));
    }
    if let Some(ch) = s.channels {
        out.insert("channels".into(), json!(ch));
    }
    put_str(&mut out, "language", &s.language);
    put_str(&mut out, "default_region", &s.default_region);
    put_str(&mut out, "manager_uri", &s.manager_uri);
    if s.ring_timeout_secs != 0 {
        out.insert("ring_timeout_secs".into(), json!(s.ring_timeout_secs));
    }
    Ok(Value::Object(out))
}

fn put_str(out: &mut Map<String, Value>, key: &str, v: &str) {
    if !v.trim().is_empty() {
        out.insert(key.into(), Value::String(v.trim().to_string()));
    }
}

fn policy_to_json(p: &pb::Policy) -> Result<Value, (String, String)> {
    let mut out = Map::new();
    if p.default_tz.trim().is_empty() {
        return Err((
            "settings.policy.default_tz".into(),
            "required: the IANA time zone of contacts that have none, e.g. \"Europe/Kyiv\"".into(),
        ));
    }
    out.insert("default_tz".into(), json!(p.default_tz.trim()));
    let w = p.window.clone().unwrap_or_default();
    let days = [
        ("mon", &w.mon),
        ("tue", &w.tue),
        ("wed", &w.wed),
        ("thu", &w.thu),
        ("fri", &w.fri),
        ("sat", &w.sat),
        ("sun", &w.sun),
    ];
    if days.iter().all(|(_, d)| d.is_empty()) && w.holidays.iter().all(|h| h.hours.is_empty()) {
        return Err((
            "settings.policy.window".into(),
            "no calling hours: give at least one weekday range such as mon = [\"09:00-20:00\"]"
                .into(),
        ));
    }
    let mut window = Map::new();
    for (name, ranges) in days {
        if !ranges.is_empty() {
            window.insert(name.into(), json!(ranges));
        }
    }
    if !w.holidays.is_empty() {
        let hs = w
            .holidays
            .iter()
            .map(|h| {
                if h.hours.is_empty() {
                    json!(h.date)
                } else {
                    json!({ "date": h.date, "hours": h.hours })
                }
            })
            .collect();
        window.insert("holidays".into(), Value::Array(hs));
    }
    out.insert("window".into(), Value::Object(window));
    if !p.retry.is_empty() {
        let mut retry = Map::new();
        for (key, rule) in &p.retry {
            let v = if rule.done {
                json!("done")
            } else {
                let mut r = Map::new();
                r.insert("delay".into(), json!(rule.delay));
                r.insert("max_attempts".into(), json!(rule.max_attempts));
                if let Some(b) = rule.backoff {
                    r.insert("backoff".into(), json!(b));
                }
                put_str(&mut r, "max_delay", &rule.max_delay);
                put_str(&mut r, "jitter", &rule.jitter);
                Value::Object(r)
            };
            retry.insert(key.clone(), v);
        }
        out.insert("retry".into(), Value::Object(retry));
    }
    if let Some(c) = &p.caps {
        let mut caps = Map::new();
        if let Some(v) = c.max_per_day {
            caps.insert("max_per_day".into(), json!(v));
        }
        if let Some(v) = c.max_across_campaigns {
            caps.insert("max_across_campaigns".into(), json!(v));
        }
        if let Some(v) = c.across_campaigns_days {
            caps.insert("across_campaigns_days".into(), json!(v));
        }
        put_str(&mut caps, "min_gap", &c.min_gap);
        out.insert("caps".into(), Value::Object(caps));
    }
    Ok(Value::Object(out))
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn u32_of(v: Option<&Value>) -> Option<u32> {
    v.and_then(Value::as_u64)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// The message for a settings JSON (as stored, or as `CampaignSettings::to_json` writes it).
/// Lenient: what it does not recognise is left out.
pub fn settings_from_json(v: &Value) -> pb::CampaignSettings {
    let policy = v.get("policy").map(|p| {
        let w = p.get("window");
        let day = |d: &str| strings(w.and_then(|w| w.get(d)));
        let holidays = w
            .and_then(|w| w.get("holidays"))
            .and_then(Value::as_array)
            .map(|hs| {
                hs.iter()
                    .map(|h| match h {
                        Value::String(d) => pb::Holiday {
                            date: d.clone(),
                            hours: Vec::new(),
                        },
                        other => pb::Holiday {
                            date: str_of(other, "date"),
                            hours: strings(other.get("hours")),
                        },
                    })
                    .collect()
            })
            .unwrap_or_default();
        let retry = p
            .get("retry")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, r)| {
                        let rule = match r {
                            Value::String(_) => pb::RetryRule {
                                done: true,
                                ..Default::default()
                            },
                            other => pb::RetryRule {
                                done: false,
                                delay: str_of(other, "delay"),
                                max_attempts: u32_of(other.get("max_attempts")).unwrap_or(0),
                                backoff: other.get("backoff").and_then(Value::as_f64),
                                max_delay: str_of(other, "max_delay"),
                                jitter: str_of(other, "jitter"),
                            },
                        };
                        (k.clone(), rule)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let caps = p.get("caps").map(|c| pb::Caps {
            max_per_day: u32_of(c.get("max_per_day")),
            max_across_campaigns: u32_of(c.get("max_across_campaigns")),
            across_campaigns_days: u32_of(c.get("across_campaigns_days")),
            min_gap: str_of(c, "min_gap"),
        });
        pb::Policy {
            default_tz: str_of(p, "default_tz"),
            window: Some(pb::CallingWindow {
                mon: day("mon"),
                tue: day("tue"),
                wed: day("wed"),
                thu: day("thu"),
                fri: day("fri"),
                sat: day("sat"),
                sun: day("sun"),
                holidays,
            }),
            retry,
            caps,
        }
    });
    let trunks = v
        .get("trunks")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .map(|t| pb::TrunkUse {
                    name: str_of(t, "name"),
                    weight: u32_of(t.get("weight")).unwrap_or(1),
                })
                .collect()
        })
        .unwrap_or_default();
    pb::CampaignSettings {
        policy,
        trunks,
        cps: v.get("cps").and_then(Value::as_f64),
        channels: u32_of(v.get("channels")),
        language: str_of(v, "language"),
        default_region: str_of(v, "default_region"),
        manager_uri: str_of(v, "manager_uri"),
        ring_timeout_secs: u32_of(v.get("ring_timeout_secs")).unwrap_or(0),
    }
}

/// Store state → protobuf enum.
pub fn state_to_pb(s: store::CampaignState) -> pb::CampaignState {
    match s {
        store::CampaignState::Draft => pb::CampaignState::Draft,
        store::CampaignState::Running => pb::CampaignState::Running,
        store::CampaignState::Paused => pb::CampaignState::Paused,
        store::CampaignState::Stopped => pb::CampaignState::Stopped,
        store::CampaignState::Finished => pb::CampaignState::Finished,
    }
}

/// Protobuf enum → store state (`None` for UNSPECIFIED).
pub fn state_from_pb(s: pb::CampaignState) -> Option<store::CampaignState> {
    match s {
        pb::CampaignState::Unspecified => None,
        pb::CampaignState::Draft => Some(store::CampaignState::Draft),
        pb::CampaignState::Running => Some(store::CampaignState::Running),
        pb::CampaignState::Paused => Some(store::CampaignState::Paused),
        pb::CampaignState::Stopped => Some(store::CampaignState::Stopped),
        pb::CampaignState::Finished => Some(store::CampaignState::Finished),
    }
}

/// A stored campaign as the API shows it.
pub fn campaign_to_pb(c: &store::Campaign) -> pb::Campaign {
    pb::Campaign {
        id: c.id.0,
        name: c.name.clone(),
        script_path: c.script_path.clone(),
        script_version: c.script_version.clone(),
        settings: Some(settings_from_json(&c.settings)),
        consent_mode: if c.consent_required {
            pb::ConsentMode::Required
        } else {
            pb::ConsentMode::Collect
        } as i32,
        state: state_to_pb(c.state) as i32,
        created_at_ms: c.created_at_ms,
        updated_at_ms: c.updated_at_ms,
    }
}

/// A stored result as streamed.
pub fn result_to_pb(r: &store::StoredResult) -> pb::CallResult {
    pb::CallResult {
        id: r.id.0,
        seq: r.seq,
        campaign_id: r.campaign_id.0,
        contact_id: r.contact_id.0,
        attempt_id: r.attempt_id.0,
        phone: r.phone_e164.clone().unwrap_or_default(),
        category: r.category.clone().unwrap_or_default(),
        outcome: r.outcome.clone(),
        dtmf: r.dtmf.clone().unwrap_or_default(),
        transcript: r.transcript.clone().unwrap_or_default(),
        follow_up: r.follow_up.clone().unwrap_or_default(),
        confidence: r.confidence,
        amd: r.amd.clone().unwrap_or_default(),
        sip_status: r.sip_status,
        setup_ms: r.setup_ms,
        duration_ms: r.duration_ms,
        script_version: r.script_version.clone().unwrap_or_default(),
        has_recording: r.recording_path.is_some(),
        created_at_ms: r.created_at_ms,
    }
}

/// Contact counts as the API shows them.
pub fn counts_to_pb(c: &store::ContactCounts) -> pb::ContactCounts {
    pb::ContactCounts {
        pending: c.pending,
        in_progress: c.in_progress,
        done: c.done,
        suppressed: c.suppressed,
        erased: c.erased,
        total: c.total(),
    }
}

/// `UnknownNode` → `unknown_node`.
pub fn snake_case(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// A loader diagnostic as the API shows it.
pub fn diagnostic_to_pb(d: &script::script::Diagnostic) -> pb::Diagnostic {
    pb::Diagnostic {
        line: u32::try_from(d.line).unwrap_or(u32::MAX),
        column: u32::try_from(d.column).unwrap_or(u32::MAX),
        field: d.path.clone(),
        kind: snake_case(&format!("{:?}", d.kind)),
        message: d.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::settings::CampaignSettings;

    fn sample() -> pb::CampaignSettings {
        pb::CampaignSettings {
            policy: Some(pb::Policy {
                default_tz: "Europe/Kyiv".into(),
                window: Some(pb::CallingWindow {
                    mon: vec!["09:00-20:00".into()],
                    sat: vec!["10:00-14:00".into()],
                    holidays: vec![
                        pb::Holiday {
                            date: "2026-12-25".into(),
                            hours: vec![],
                        },
                        pb::Holiday {
                            date: "2026-12-31".into(),
                            hours: vec!["10:00-12:00".into()],
                        },
                    ],
                    ..Default::default()
                }),
                retry: [
                    (
                        "busy".to_string(),
                        pb::RetryRule {
                            delay: "5m".into(),
                            max_attempts: 3,
                            backoff: Some(2.0),
                            ..Default::default()
                        },
                    ),
                    (
                        "voicemail".to_string(),
                        pb::RetryRule {
                            done: true,
                            ..Default::default()
                        },
                    ),
                ]
                .into_iter()
                .collect(),
                caps: Some(pb::Caps {
                    max_per_day: Some(2),
                    min_gap: "1h".into(),
                    ..Default::default()
                }),
            }),
            trunks: vec![pb::TrunkUse {
                name: "sim".into(),
                weight: 3,
            }],
            cps: Some(5.0),
            channels: Some(20),
            language: "uk".into(),
            default_region: "UA".into(),
            manager_uri: "sip:sales@127.0.0.1:5070".into(),
            ring_timeout_secs: 25,
        }
    }

    #[test]
    fn settings_round_trip_through_the_engine_validator() {
        let json = settings_to_json(&sample()).expect("complete");
        let s = CampaignSettings::from_json(&json).expect("valid settings");
        assert_eq!(s.cps, Some(5.0));
        assert_eq!(s.trunks[0].weight, 3);
        assert_eq!(s.ring_timeout_secs, 25);
        let back = settings_from_json(&s.to_json());
        let again = CampaignSettings::from_json(&settings_to_json(&back).expect("complete"))
            .expect("still valid");
        assert_eq!(again, s);
    }

    #[test]
    fn missing_parts_name_the_field() {
        let mut s = sample();
        s.policy.as_mut().expect("policy").window = None;
        assert_eq!(
            settings_to_json(&s).expect_err("no window").0,
            "settings.policy.window"
        );
        s.policy = None;
        assert_eq!(
            settings_to_json(&s).expect_err("no policy").0,
            "settings.policy"
        );
    }

    #[test]
    fn engine_errors_carry_the_json_path() {
        let mut s = sample();
        s.policy
            .as_mut()
            .expect("policy")
            .window
            .as_mut()
            .expect("w")
            .mon = vec!["9-5".into()];
        let e = CampaignSettings::from_json(&settings_to_json(&s).expect("json")).expect_err("bad");
        assert!(e.field.starts_with("policy.window"), "{e}");
    }

    #[test]
    fn kinds_in_snake_case() {
        assert_eq!(snake_case("UnknownNode"), "unknown_node");
        assert_eq!(snake_case("Io"), "io");
    }
}
