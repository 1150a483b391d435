//! The store's behaviour, every test on SQLite (temp dir) and on the real PostgreSQL.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::{KEY, TestDb, attrs, consented, contact, now_ms, phone, running_campaign};
use sqlx::Row;
use store::{
    AttemptEnd, AttemptState, AuditAction, AuditFilter, Backend, CampaignState, ClaimScope,
    ConsentSource, ContactState, EraseTarget, NewCampaign, NewConsent, NewContact, NewResult, Next,
    Store, StoreError,
};

on_both_backends!(
    migrations_are_idempotent,
    campaigns_crud,
    insert_merges_and_refuses_suppressed,
    claim_leases_and_recovery,
    concurrent_claimers_never_share_a_contact,
    finish_attempt_is_atomic,
    erase_leaves_no_trace,
    results_cursor_resumes_without_gaps,
    consent_audit_and_retention,
    heartbeats_and_cap_counts,
    results_with_and_without_confidence_on_one_connection,
);

const LEASE: i64 = 30_000;

fn result(category: &str) -> NewResult {
    NewResult {
        category: Some(category.to_string()),
        outcome: "answered".into(),
        dtmf: Some("2".into()),
        confidence: Some(0.9),
        amd: Some("human".into()),
        sip_status: Some(200),
        setup_ms: Some(1200),
        duration_ms: Some(15_000),
        script_version: Some("v1".into()),
        ..NewResult::default()
    }
}

fn end(now: i64, result: Option<NewResult>, next: Next) -> AttemptEnd {
    AttemptEnd {
        now_ms: now,
        outcome: "answered".into(),
        sip_status: Some(200),
        result,
        next,
    }
}

async fn migrations_are_idempotent(db: &TestDb) {
    let store = db.open().await;
    let expected_backend = if db.is_postgres() {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    assert_eq!(store.backend(), expected_backend);
    let id = running_campaign(&store, "first", false).await;
    store.close().await;
    // Re-opening applies nothing twice and keeps the data.
    for _ in 0..2 {
        let again = db.open().await;
        assert_eq!(again.get_campaign(id).await.unwrap().unwrap().name, "first");
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(again.pool())
            .await
            .unwrap();
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
            .unwrap()
            .count() as i64;
        assert_eq!(applied, files, "every migration applied once");
        again.close().await;
    }
    if db.is_postgres() {
        // Several nodes starting at once: migrations are serialised by an advisory lock.
        let (a, b, c) = tokio::join!(
            Store::open(&db.url),
            Store::open(&db.url),
            Store::open(&db.url)
        );
        for s in [a, b, c] {
            s.unwrap().close().await;
        }
    }
}

async fn campaigns_crud(db: &TestDb) {
    let store = db.open().await;
    let id = store
        .create_campaign(&NewCampaign {
            name: "Актуализация базы".into(),
            script_path: "config/scripts/actualization.toml".into(),
            script_version: "sha256:abc".into(),
            settings: serde_json::json!({"windows": [{"from": "09:00", "to": "20:00"}]}),
            consent_required: true,
        })
        .await
        .unwrap();
    let c = store.get_campaign(id).await.unwrap().unwrap();
    assert_eq!(c.state, CampaignState::Draft);
    assert_eq!(c.name, "Актуализация базы");
    assert!(c.consent_required);
    assert_eq!(c.settings["windows"][0]["from"], "09:00");
    let prev = store
        .set_campaign_state(id, CampaignState::Running)
        .await
        .unwrap();
    assert_eq!(prev, CampaignState::Draft);
    store
        .update_campaign_settings(id, &serde_json::json!({"pacing": 10}))
        .await
        .unwrap();
    let c = store.get_campaign(id).await.unwrap().unwrap();
    assert_eq!(c.state, CampaignState::Running);
    assert_eq!(c.settings["pacing"], 10);
    assert_eq!(store.list_campaigns().await.unwrap().len(), 1);
    assert!(
        store
            .get_campaign(store::CampaignId(999))
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store
            .set_campaign_state(store::CampaignId(999), CampaignState::Paused)
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn insert_merges_and_refuses_suppressed(db: &TestDb) {
    let store = db.open().await;
    let camp = running_campaign(&store, "import", false).await;
    let a = NewContact {
        phone_e164: phone(1),
        name: Some("Ivan".into()),
        attributes: attrs(&[("crm", "1")]),
        ..NewContact::default()
    };
    let a_again = NewContact {
        phone_e164: phone(1),
        timezone: Some("Europe/Kyiv".into()),
        attributes: attrs(&[("segment", "b2b")]),
        ..NewContact::default()
    };
    let r = store
        .insert_contacts(camp, &[a, contact(&phone(2)), a_again], KEY)
        .await
        .unwrap();
    assert_eq!((r.inserted, r.merged), (2, 1));
    assert!(r.suppressed.is_empty());
    let ca = store.find_contact(camp, &phone(1)).await.unwrap().unwrap();
    assert_eq!(ca.name.as_deref(), Some("Ivan"));
    assert_eq!(ca.timezone.as_deref(), Some("Europe/Kyiv"));
    assert_eq!(ca.attributes, attrs(&[("crm", "1"), ("segment", "b2b")]));
    assert_eq!(ca.state, ContactState::Pending);
    assert_eq!(ca.phone_hmac, store::phone_hmac(KEY, &phone(1)));

    // A later import of the same number merges into the same contact.
    let r = store
        .insert_contacts(
            camp,
            &[NewContact {
                phone_e164: phone(1),
                name: Some("Ivan Petrenko".into()),
                attributes: attrs(&[("crm", "2")]),
                ..NewContact::default()
            }],
            KEY,
        )
        .await
        .unwrap();
    assert_eq!((r.inserted, r.merged), (0, 1));
    let merged = store.find_contact(camp, &phone(1)).await.unwrap().unwrap();
    assert_eq!(merged.id, ca.id);
    assert_eq!(merged.name.as_deref(), Some("Ivan Petrenko"));
    assert_eq!(
        merged.attributes,
        attrs(&[("crm", "2"), ("segment", "b2b")])
    );
    assert_eq!(merged.timezone.as_deref(), Some("Europe/Kyiv"));

    // A suppressed number is refused by index; the others still go in.
    store
        .suppress_and_erase(
            &EraseTarget::Phone(phone(3)),
            KEY,
            "api:test",
            "opt-out by phone",
        )
        .await
        .unwrap();
    assert!(
        store
            .is_suppressed(&store::phone_hmac(KEY, &phone(3)))
            .await
            .unwrap()
    );
    let r = store
        .insert_contacts(
            camp,
            &[contact(&phone(4)), contact(&phone(3)), contact(&phone(5))],
            KEY,
        )
        .await
        .unwrap();
    assert_eq!(r.inserted, 2);
    assert_eq!(r.suppressed, vec![1]);
    assert!(store.find_contact(camp, &phone(3)).await.unwrap().is_none());

    // Consents come with the rows and are deduplicated on re-import.
    let r = store
        .insert_contacts(camp, &[consented(&phone(6))], KEY)
        .await
        .unwrap();
    assert_eq!((r.inserted, r.consents), (1, 1));
    let r = store
        .insert_contacts(camp, &[consented(&phone(6))], KEY)
        .await
        .unwrap();
    assert_eq!((r.merged, r.consents), (1, 0));
    let c6 = store.find_contact(camp, &phone(6)).await.unwrap().unwrap();
    assert_eq!(c6.consent_at_ms, Some(1_700_000_000_000));
    assert_eq!(store.consents_of(c6.id).await.unwrap().len(), 1);
    let audit = store
        .audit_log(
            &AuditFilter {
                action: Some(AuditAction::Consent),
                ..AuditFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].subject, format!("campaign:{}", camp.0));

    // Bad input is refused before anything is written.
    assert!(matches!(
        store
            .insert_contacts(camp, &[contact("0501234567")], KEY)
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .insert_contacts(camp, &[contact(&phone(7))], b"")
            .await,
        Err(StoreError::Invalid(_))
    ));

    // Several statements per call (more rows than one multi-row INSERT holds).
    let big: Vec<NewContact> = (1000..3500).map(|i| contact(&phone(i))).collect();
    let r = store.insert_contacts(camp, &big, KEY).await.unwrap();
    assert_eq!((r.inserted, r.merged), (2500, 0));
    let counts = store.contact_counts(camp).await.unwrap();
    assert_eq!(counts.pending, 2505);
    assert_eq!(counts.total(), 2505);
}

async fn claim_leases_and_recovery(db: &TestDb) {
    let store = db.open().await;
    let camp = running_campaign(&store, "claims", true).await;
    let mut rows: Vec<NewContact> = (0..6).map(|i| consented(&phone(i))).collect();
    rows.push(contact(&phone(100))); // no consent: the gate keeps it back
    store.insert_contacts(camp, &rows, KEY).await.unwrap();
    let t0 = now_ms() + 1;

    let a = store
        .claim_due(ClaimScope::Campaign(camp), "node-a", t0, 3, LEASE)
        .await
        .unwrap();
    assert_eq!(a.len(), 3);
    assert!(a.iter().all(|c| c.lease_until_ms == t0 + LEASE));
    let b = store
        .claim_due(ClaimScope::Campaign(camp), "node-b", t0, 10, LEASE)
        .await
        .unwrap();
    assert_eq!(b.len(), 3, "the contact without consent is never claimed");
    let a_ids: HashSet<_> = a.iter().map(|c| c.id).collect();
    assert!(b.iter().all(|c| !a_ids.contains(&c.id)));
    assert!(
        store
            .claim_due(ClaimScope::Campaign(camp), "node-b", t0, 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );

    // Renewal only for the owner.
    let a_list: Vec<_> = a.iter().map(|c| c.id).collect();
    let held = store
        .renew_leases("node-a", &a_list, t0 + 2 * LEASE)
        .await
        .unwrap();
    assert_eq!(held.len(), 3);
    assert!(
        store
            .renew_leases("node-b", &a_list, t0 + 9 * LEASE)
            .await
            .unwrap()
            .is_empty()
    );

    // A node cannot dial a contact it does not hold.
    assert!(matches!(
        store
            .start_attempt(a[0].id, camp, "node-b", Some("trunk-1"), t0)
            .await,
        Err(StoreError::LeaseLost(_))
    ));
    // Released with a later due time: not claimable before it.
    let b0 = b[0].id;
    assert_eq!(
        store
            .release_contacts("node-b", &[b0], Some(t0 + 60_000))
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .claim_due(ClaimScope::Campaign(camp), "node-b", t0 + 59_999, 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );

    // node-a dials a[0] and dies. Its leases run out at t0 + 2*LEASE.
    let att = store
        .start_attempt(a[0].id, camp, "node-a", Some("trunk-1"), t0 + 10)
        .await
        .unwrap();
    assert_eq!(
        store.get_attempt(att).await.unwrap().unwrap().state,
        AttemptState::Dialling
    );
    let before = store
        .release_expired_leases(t0 + 2 * LEASE - 1, |_| Next::Done)
        .await
        .unwrap();
    assert!(before.is_empty(), "live leases are not touched");
    let t1 = t0 + 2 * LEASE;
    let interrupted = store
        .release_expired_leases(t1, |ia| {
            assert_eq!(ia.attempts, 1);
            Next::RetryAt(t1 + 5_000)
        })
        .await
        .unwrap();
    assert_eq!(interrupted.len(), 1);
    assert_eq!(interrupted[0].attempt_id, att);
    assert_eq!(interrupted[0].node, "node-a");
    assert_eq!(interrupted[0].next, Next::RetryAt(t1 + 5_000));
    let at = store.get_attempt(att).await.unwrap().unwrap();
    assert_eq!(at.state, AttemptState::Interrupted);
    assert_eq!(at.outcome.as_deref(), Some("interrupted"));
    assert_eq!(at.ended_at_ms, Some(t1));
    let c = store.get_contact(a[0].id).await.unwrap().unwrap();
    assert_eq!(c.state, ContactState::Pending);
    assert_eq!(c.next_attempt_at_ms, t1 + 5_000);
    assert_eq!(c.last_outcome.as_deref(), Some("interrupted"));
    assert_eq!(c.lease_owner, None);
    // node-b (b's own leases also expired at t0 + LEASE) takes everything over once due.
    let taken = store
        .claim_due(ClaimScope::Campaign(camp), "node-b", t1 + 60_000, 10, LEASE)
        .await
        .unwrap();
    assert_eq!(
        taken.len(),
        6,
        "all six consented contacts are claimable again"
    );
    assert!(taken.iter().any(|c| c.id == a[0].id && c.attempts == 1));

    // A restarting node recovers its own live leases at once.
    let t2 = t1 + 60_000;
    let att_b = store
        .start_attempt(taken[0].id, camp, "node-b", None, t2 + 1)
        .await
        .unwrap();
    let rec = store
        .recover_node("node-b", t2 + 2, |_| Next::RetryAt(t2 + 2))
        .await
        .unwrap();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].attempt_id, att_b);
    assert_eq!(store.contact_counts(camp).await.unwrap().in_progress, 0);

    // Paused campaigns are not claimed from; AllRunning shares the limit between campaigns.
    store
        .set_campaign_state(camp, CampaignState::Paused)
        .await
        .unwrap();
    assert!(
        store
            .claim_due(ClaimScope::Campaign(camp), "node-b", t2 + 10, 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .set_campaign_state(camp, CampaignState::Running)
        .await
        .unwrap();
    let other = running_campaign(&store, "other", false).await;
    let many: Vec<NewContact> = (200..220).map(|i| contact(&phone(i))).collect();
    store.insert_contacts(other, &many, KEY).await.unwrap();
    let mixed = store
        .claim_due(ClaimScope::AllRunning, "node-c", t2 + 10, 6, LEASE)
        .await
        .unwrap();
    assert_eq!(mixed.len(), 6);
    let from_camp = mixed.iter().filter(|c| c.campaign_id == camp).count();
    assert_eq!(from_camp, 3, "the limit is shared fairly");
}

async fn concurrent_claimers_never_share_a_contact(db: &TestDb) {
    const CONTACTS: usize = 600;
    let s1 = db.open().await;
    let s2 = db.open().await; // a second pool, as a second node would have
    let camp = running_campaign(&s1, "race", false).await;
    let rows: Vec<NewContact> = (0..CONTACTS).map(|i| contact(&phone(i))).collect();
    s1.insert_contacts(camp, &rows, KEY).await.unwrap();
    let now = now_ms() + 1;
    let mut tasks = Vec::new();
    for (n, store) in [s1.clone(), s2.clone()].into_iter().enumerate() {
        for t in 0..4 {
            let store = store.clone();
            let node = format!("node-{n}-{t}");
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                let mut empty = 0;
                while empty < 3 {
                    let c = store
                        .claim_due(ClaimScope::Campaign(camp), &node, now, 7, LEASE)
                        .await
                        .unwrap();
                    if c.is_empty() {
                        empty += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    got.extend(c.into_iter().map(|c| c.id));
                }
                got
            }));
        }
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a contact was claimed twice");
    assert_eq!(all.len(), CONTACTS);
    assert_eq!(
        s2.contact_counts(camp).await.unwrap().in_progress,
        CONTACTS as i64
    );
}

async fn finish_attempt_is_atomic(db: &TestDb) {
    let store = db.open().await;
    let camp = running_campaign(&store, "finish", false).await;
    store
        .insert_contacts(camp, &[contact(&phone(1)), contact(&phone(2))], KEY)
        .await
        .unwrap();
    let t0 = now_ms() + 1;
    let claimed = store
        .claim_due(ClaimScope::Campaign(camp), "node-a", t0, 2, LEASE)
        .await
        .unwrap();
    let (c1, c2) = (claimed[0].id, claimed[1].id);
    let att = store
        .start_attempt(c1, camp, "node-a", Some("trunk-1"), t0 + 1)
        .await
        .unwrap();

    // The result row fails a constraint after the contact and attempt were updated in the
    // same transaction: nothing of it may remain.
    let bad = NewResult {
        confidence: Some(2.0),
        ..result("send_details")
    };
    let err = store
        .finish_attempt(att, end(t0 + 100, Some(bad), Next::RetryAt(t0 + 900_000)))
        .await;
    assert!(matches!(err, Err(StoreError::Db(_))), "{err:?}");
    let at = store.get_attempt(att).await.unwrap().unwrap();
    assert_eq!(at.state, AttemptState::Dialling);
    assert_eq!(at.outcome, None);
    let c = store.get_contact(c1).await.unwrap().unwrap();
    assert_eq!(c.state, ContactState::InProgress);
    assert_eq!(c.lease_owner.as_deref(), Some("node-a"));
    assert!(
        store
            .results_after(Some(camp), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The good finish commits all three.
    let rep = store
        .finish_attempt(
            att,
            end(
                t0 + 100,
                Some(result("send_details")),
                Next::RetryAt(t0 + 900_000),
            ),
        )
        .await
        .unwrap();
    assert!(rep.contact_updated);
    let (rid, seq) = rep.result.unwrap();
    assert_eq!(seq, 1, "the failed finish consumed no sequence number");
    let at = store.get_attempt(att).await.unwrap().unwrap();
    assert_eq!(at.state, AttemptState::Finished);
    assert_eq!(at.ended_at_ms, Some(t0 + 100));
    let c = store.get_contact(c1).await.unwrap().unwrap();
    assert_eq!(c.state, ContactState::Pending);
    assert_eq!(c.next_attempt_at_ms, t0 + 900_000);
    assert_eq!(c.last_outcome.as_deref(), Some("send_details"));
    assert_eq!(c.lease_owner, None);
    assert_eq!(c.attempts, 1);
    let r = store.result_of(att).await.unwrap().unwrap();
    assert_eq!(r.id, rid);
    assert_eq!(r.phone_e164.as_deref(), Some(phone(1).as_str()));
    assert_eq!(r.category.as_deref(), Some("send_details"));

    // Finishing twice is refused and changes nothing.
    assert!(matches!(
        store
            .finish_attempt(att, end(t0 + 200, Some(result("opt_out")), Next::Done))
            .await,
        Err(StoreError::AttemptClosed(_))
    ));
    assert_eq!(
        store.results_after(Some(camp), 0, 10).await.unwrap().len(),
        1
    );
    assert_eq!(
        store.get_contact(c1).await.unwrap().unwrap().state,
        ContactState::Pending
    );

    // A call that outlived its lease: the contact went to another node, the real result is
    // still stored, the other node's lease is left alone.
    let att2 = store
        .start_attempt(c2, camp, "node-a", None, t0 + 1)
        .await
        .unwrap();
    let t1 = t0 + LEASE + 1;
    store
        .release_expired_leases(t1, |_| Next::RetryAt(t1))
        .await
        .unwrap();
    let again = store
        .claim_due(ClaimScope::Campaign(camp), "node-b", t1, 1, LEASE)
        .await
        .unwrap();
    assert_eq!(again[0].id, c2);
    let rep = store
        .finish_attempt(
            att2,
            end(t1 + 5, Some(result("not_interested")), Next::Done),
        )
        .await
        .unwrap();
    assert!(!rep.contact_updated);
    assert!(rep.result.is_some());
    let c = store.get_contact(c2).await.unwrap().unwrap();
    assert_eq!(c.state, ContactState::InProgress);
    assert_eq!(c.lease_owner.as_deref(), Some("node-b"));
    // node-b's own attempt ends the contact.
    let att3 = store
        .start_attempt(c2, camp, "node-b", None, t1 + 10)
        .await
        .unwrap();
    let rep = store
        .finish_attempt(
            att3,
            AttemptEnd {
                now_ms: t1 + 20,
                outcome: "busy".into(),
                sip_status: Some(486),
                result: None,
                next: Next::Done,
            },
        )
        .await
        .unwrap();
    assert!(rep.contact_updated && rep.result.is_none());
    let c = store.get_contact(c2).await.unwrap().unwrap();
    assert_eq!(c.state, ContactState::Done);
    assert_eq!(c.last_outcome.as_deref(), Some("busy"));
    assert_eq!(c.attempts, 2);
    assert_eq!(store.attempts_of(c2).await.unwrap().len(), 2);
    assert_eq!(store.attempts_since(&c.phone_hmac, t0).await.unwrap(), 2);
}

/// Every column of every table, as text, searched for each needle.
async fn traces(store: &Store, needles: &[&str]) -> Vec<String> {
    let pool = store.pool();
    let columns: Vec<(String, String)> = match store.backend() {
        Backend::Sqlite => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            let mut cols = Vec::new();
            for t in tables {
                let rows = sqlx::query(&format!("SELECT name FROM pragma_table_info('{t}')"))
                    .fetch_all(pool)
                    .await
                    .unwrap();
                for r in rows {
                    cols.push((t.clone(), r.try_get::<String, _>("name").unwrap()));
                }
            }
            cols
        }
        Backend::Postgres => sqlx::query_as(
            "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT) \
             FROM information_schema.columns WHERE table_schema = 'public'",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
    };
    assert!(columns.len() > 50, "found the schema's columns");
    let mut found = Vec::new();
    for (t, c) in &columns {
        for n in needles {
            let hits: i64 = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM \"{t}\" WHERE CAST(\"{c}\" AS TEXT) LIKE $1"
            ))
            .bind(format!("%{n}%"))
            .fetch_one(pool)
            .await
            .unwrap();
            if hits > 0 {
                found.push(format!("{t}.{c} contains {n:?}"));
            }
        }
    }
    found
}

async fn erase_leaves_no_trace(db: &TestDb) {
    let store = db.open().await;
    let number = "+380671112233";
    let digits = "671112233";
    let (first, last) = ("Tarasyk", "Shevchenkovych");
    let needles = [digits, first, last];
    let c1 = running_campaign(&store, "one", true).await;
    let c2 = running_campaign(&store, "two", false).await;
    let person = NewContact {
        phone_e164: number.into(),
        name: Some(format!("{first} {last}")),
        timezone: Some("Europe/Kyiv".into()),
        language: Some("uk".into()),
        attributes: attrs(&[("crm_note", &format!("{first} asked to call 0{digits}"))]),
        consent: Some(NewConsent {
            source: ConsentSource::PhoneCall,
            given_at_ms: 1_700_000_000_000,
            text_version: "v3".into(),
            evidence: Some(format!("/rec/consent-0{digits}.wav")),
        }),
    };
    store
        .insert_contacts(c1, &[person.clone(), consented(&phone(9))], KEY)
        .await
        .unwrap();
    store
        .insert_contacts(c2, std::slice::from_ref(&person), KEY)
        .await
        .unwrap();
    let t0 = now_ms() + 1;
    // A finished call with a transcript and a recording in campaign one.
    let claimed = store
        .claim_due(ClaimScope::Campaign(c1), "node-a", t0, 10, LEASE)
        .await
        .unwrap();
    let target = claimed
        .iter()
        .find(|c| c.phone_e164 == number)
        .expect("claimed the person")
        .id;
    let att = store
        .start_attempt(target, c1, "node-a", Some("trunk"), t0)
        .await
        .unwrap();
    store
        .finish_attempt(
            att,
            end(
                t0 + 10,
                Some(NewResult {
                    transcript: Some(format!("це {first}, мій номер 0{digits}")),
                    follow_up: Some(format!("{last} wants e-mail")),
                    recording_path: Some(format!("/rec/call-0{digits}.wav")),
                    details: Some(serde_json::json!({ "said": first })),
                    ..result("feedback")
                }),
                Next::RetryAt(t0 + 1000),
            ),
        )
        .await
        .unwrap();
    // A live call in campaign two when the opt-out arrives.
    let live = store
        .claim_due(ClaimScope::Campaign(c2), "node-b", t0, 10, LEASE)
        .await
        .unwrap();
    let live_att = store
        .start_attempt(live[0].id, c2, "node-b", None, t0 + 20)
        .await
        .unwrap();
    assert!(
        !traces(&store, &needles).await.is_empty(),
        "the data was there"
    );

    let rep = store
        .suppress_and_erase(
            &EraseTarget::Contact(target),
            KEY,
            "api:operator",
            "opt_out key 9",
        )
        .await
        .unwrap();
    assert_eq!(rep.contacts_erased, 2, "every campaign's copy");
    assert_eq!(rep.phone_hmac, store::phone_hmac(KEY, number));
    let mut recs: Vec<String> = rep
        .recordings
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    recs.sort();
    assert_eq!(
        recs,
        vec![
            format!("/rec/call-0{digits}.wav"),
            format!("/rec/consent-0{digits}.wav")
        ]
    );
    // The live call ends after the erasure: its result is stored without personal data.
    let late = store
        .finish_attempt(
            live_att,
            end(
                t0 + 30,
                Some(NewResult {
                    transcript: Some(format!("{first} says stop")),
                    recording_path: Some(format!("/rec/late-0{digits}.wav")),
                    ..result("opt_out")
                }),
                Next::Done,
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        late.erased_recording.map(|p| p.display().to_string()),
        Some(format!("/rec/late-0{digits}.wav"))
    );
    assert!(!late.contact_updated);

    let found = traces(&store, &needles).await;
    assert!(found.is_empty(), "personal data left behind: {found:?}");
    // What stays: the HMAC, ids, outcomes, categories, the consent's fact.
    assert!(store.is_suppressed(&rep.phone_hmac).await.unwrap());
    let erased = store.get_contact(target).await.unwrap().unwrap();
    assert_eq!(erased.state, ContactState::Erased);
    assert_eq!(erased.phone_e164, None);
    assert_eq!(erased.name, None);
    assert!(erased.attributes.is_empty());
    assert_eq!(erased.phone_hmac, rep.phone_hmac);
    let r = store.result_of(att).await.unwrap().unwrap();
    assert_eq!(r.category.as_deref(), Some("feedback"));
    assert_eq!(
        (r.transcript, r.follow_up, r.recording_path),
        (None, None, None)
    );
    let consents = store.consents_of(target).await.unwrap();
    assert_eq!(consents.len(), 1);
    assert!(consents[0].withdrawn_at_ms.is_some());
    assert_eq!(consents[0].evidence, None);
    let log = store
        .audit_log(
            &AuditFilter {
                subject: Some(format!("hmac:{}", rep.phone_hmac)),
                ..AuditFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    let actions: Vec<_> = log.iter().map(|e| e.action.clone()).collect();
    assert_eq!(actions, vec![AuditAction::OptOut, AuditAction::Erase]);
    // The neighbour is untouched; the number cannot come back.
    assert!(store.find_contact(c1, &phone(9)).await.unwrap().is_some());
    let again = store
        .insert_contacts(c1, std::slice::from_ref(&person), KEY)
        .await
        .unwrap();
    assert_eq!(again.suppressed, vec![0]);
    // Erasing again is harmless.
    let twice = store
        .suppress_and_erase(
            &EraseTarget::Phone(number.into()),
            KEY,
            "api:operator",
            "again",
        )
        .await
        .unwrap();
    assert_eq!(twice.contacts_erased, 0);
    assert!(twice.recordings.is_empty());

    // SQLite: not in the files either (secure_delete + WAL checkpoint).
    let files = db.sqlite_files();
    if !db.is_postgres() {
        assert!(!files.is_empty());
    }
    store.close().await;
    for f in files {
        let bytes = std::fs::read(&f).unwrap_or_default();
        for n in needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == n.as_bytes()),
                "{} still holds {n:?}",
                f.display()
            );
        }
    }
}

async fn results_cursor_resumes_without_gaps(db: &TestDb) {
    const CONTACTS: usize = 160;
    let s1 = db.open().await;
    let s2 = db.open().await;
    let camp = running_campaign(&s1, "stream", false).await;
    let rows: Vec<NewContact> = (0..CONTACTS).map(|i| contact(&phone(i))).collect();
    s1.insert_contacts(camp, &rows, KEY).await.unwrap();
    let now = now_ms() + 1;
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for (n, store) in [s1.clone(), s2.clone()].into_iter().enumerate() {
        for t in 0..3 {
            let store = store.clone();
            let done = done.clone();
            let node = format!("node-{n}-{t}");
            workers.push(tokio::spawn(async move {
                loop {
                    let c = store
                        .claim_due(ClaimScope::Campaign(camp), &node, now, 1, LEASE)
                        .await
                        .unwrap();
                    let Some(c) = c.into_iter().next() else { break };
                    let att = store
                        .start_attempt(c.id, camp, &node, None, now)
                        .await
                        .unwrap();
                    store
                        .finish_attempt(att, end(now + 1, Some(result("feedback")), Next::Done))
                        .await
                        .unwrap();
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }));
        }
    }
    // A reader streams while the writers commit, resuming from its cursor each time.
    let reader = {
        let store = s2.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut cursor = 0;
            let mut seen = Vec::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst) == 6;
                let batch = store.results_after(Some(camp), cursor, 7).await.unwrap();
                for r in &batch {
                    assert!(r.seq > cursor);
                    cursor = r.seq;
                    seen.push((r.seq, r.attempt_id));
                }
                if batch.is_empty() {
                    if finished {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            seen
        })
    };
    for w in workers {
        w.await.unwrap();
    }
    let seen = reader.await.unwrap();
    assert_eq!(seen.len(), CONTACTS, "every result streamed exactly once");
    let seqs: Vec<i64> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=CONTACTS as i64).collect::<Vec<_>>(),
        "gap-free, in order"
    );
    let attempts: BTreeSet<_> = seen.iter().map(|(_, a)| *a).collect();
    assert_eq!(attempts.len(), CONTACTS);
    // Resuming from the middle gives exactly the tail.
    let tail = s1.results_after(Some(camp), 100, 1000).await.unwrap();
    assert_eq!(tail.len(), CONTACTS - 100);
    assert_eq!(tail[0].seq, 101);
    assert_eq!(
        s1.results_after(None, 0, 1000).await.unwrap().len(),
        CONTACTS
    );
}

async fn consent_audit_and_retention(db: &TestDb) {
    let store = db.open().await;
    let camp = running_campaign(&store, "gate", true).await;
    store
        .insert_contacts(camp, &[contact(&phone(1))], KEY)
        .await
        .unwrap();
    assert_eq!(store.contacts_without_consent(camp).await.unwrap(), 1);
    let t0 = now_ms() + 1;
    let claim = |t| store.claim_due(ClaimScope::Campaign(camp), "node-a", t, 5, LEASE);
    assert!(claim(t0).await.unwrap().is_empty(), "no consent, no call");
    let id = store
        .find_contact(camp, &phone(1))
        .await
        .unwrap()
        .unwrap()
        .id;
    let cid = store
        .record_consent(
            id,
            &NewConsent {
                source: ConsentSource::Sms,
                given_at_ms: t0 - 1000,
                text_version: "sms-v1".into(),
                evidence: None,
            },
            "api:crm",
        )
        .await
        .unwrap();
    assert!(cid > 0);
    assert_eq!(store.contacts_without_consent(camp).await.unwrap(), 0);
    let got = claim(t0).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].consent_at_ms, Some(t0 - 1000));
    store.release_contacts("node-a", &[id], None).await.unwrap();
    assert_eq!(store.withdraw_consent(id, "api:crm").await.unwrap(), 1);
    assert!(
        claim(t0).await.unwrap().is_empty(),
        "withdrawn consent stops calls"
    );
    store
        .record_consent(
            id,
            &NewConsent {
                source: ConsentSource::PhoneCall,
                given_at_ms: t0,
                text_version: "call-v1".into(),
                evidence: Some("/rec/consent.wav".into()),
            },
            "node:a",
        )
        .await
        .unwrap();
    let consents = store.consents_of(id).await.unwrap();
    assert_eq!(consents.len(), 2);
    assert!(consents[0].withdrawn_at_ms.is_some());
    assert_eq!(consents[1].source, ConsentSource::PhoneCall);

    let log = store
        .audit_log(
            &AuditFilter {
                subject: Some(format!("contact:{}", id.0)),
                ..AuditFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    let actions: Vec<_> = log.iter().map(|e| e.action.clone()).collect();
    assert_eq!(
        actions,
        vec![
            AuditAction::Consent,
            AuditAction::ConsentWithdrawn,
            AuditAction::Consent
        ]
    );
    assert_eq!(log[0].actor, "api:crm");
    assert_eq!(log[0].details["source"], "sms");
    let custom = store
        .audit(
            "node:a",
            &AuditAction::Other("transfer".into()),
            &format!("contact:{}", id.0),
            &serde_json::json!({"queue": "sales"}),
        )
        .await
        .unwrap();
    let after = store
        .audit_log(
            &AuditFilter {
                after_id: Some(log[2].id),
                ..AuditFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, custom);
    assert_eq!(after[0].action, AuditAction::Other("transfer".into()));

    // Retention: a recording older than the cut is listed, forgotten, audited.
    let got = claim(t0).await.unwrap();
    let att = store
        .start_attempt(got[0].id, camp, "node-a", None, t0)
        .await
        .unwrap();
    store
        .finish_attempt(
            att,
            end(
                t0 + 5,
                Some(NewResult {
                    recording_path: Some("/rec/r1.wav".into()),
                    ..result("manager_call")
                }),
                Next::Done,
            ),
        )
        .await
        .unwrap();
    assert!(
        store
            .recordings_older_than(t0 + 5, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let old = store.recordings_older_than(t0 + 6, 10).await.unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].path.display().to_string(), "/rec/r1.wav");
    assert!(
        store
            .forget_recording(old[0].result_id, "retention")
            .await
            .unwrap()
    );
    assert!(
        !store
            .forget_recording(old[0].result_id, "retention")
            .await
            .unwrap()
    );
    assert!(
        store
            .recordings_older_than(t0 + 6, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let ret = store
        .audit_log(
            &AuditFilter {
                action: Some(AuditAction::RetentionDelete),
                ..AuditFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(ret.len(), 1);
    assert_eq!(ret[0].subject, format!("result:{}", old[0].result_id.0));

    // Report numbers.
    let counts = store.result_counts(camp).await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].category.as_deref(), Some("manager_call"));
    assert_eq!(counts[0].count, 1);
    let stats = store.attempt_stats(camp).await.unwrap();
    assert_eq!(
        (stats.started, stats.finished, stats.interrupted),
        (1, 1, 0)
    );
    assert_eq!(stats.talk_ms, 15_000);
    assert_eq!(stats.first_started_at_ms, Some(t0));
    assert_eq!(store.contact_counts(camp).await.unwrap().done, 1);
}

/// Nodes alive by heartbeat (the divisor of trunk limits), and the attempt counts the caps
/// need: today's in the campaign, and the number's across campaigns (by HMAC).
async fn heartbeats_and_cap_counts(db: &TestDb) {
    let store = db.open().await;
    let t0 = now_ms();
    assert_eq!(store.heartbeat("n1", t0, 5_000).await.unwrap(), 1);
    assert_eq!(store.heartbeat("n2", t0 + 100, 5_000).await.unwrap(), 2);
    // n1 goes quiet: after 5 s only n2 counts.
    assert_eq!(store.heartbeat("n2", t0 + 6_000, 5_000).await.unwrap(), 1);
    store.heartbeat("n1", t0 + 6_100, 5_000).await.unwrap();
    assert_eq!(store.heartbeat("n2", t0 + 6_200, 5_000).await.unwrap(), 2);
    store.leave("n1").await.unwrap();
    assert_eq!(store.heartbeat("n2", t0 + 6_300, 5_000).await.unwrap(), 1);

    // Compare-and-set of a campaign's state: only from the expected state.
    let cas = running_campaign(&store, "cas", true).await;
    assert!(
        !store
            .set_campaign_state_if(cas, CampaignState::Paused, CampaignState::Running)
            .await
            .unwrap()
    );
    assert!(
        store
            .set_campaign_state_if(cas, CampaignState::Running, CampaignState::Finished)
            .await
            .unwrap()
    );
    let c = store.get_campaign(cas).await.unwrap().unwrap();
    assert_eq!(c.state, CampaignState::Finished);

    // The same number in two campaigns; three attempts in one, one in the other.
    let a = running_campaign(&store, "caps-a", true).await;
    let b = running_campaign(&store, "caps-b", true).await;
    store
        .insert_contacts(a, &[consented(&phone(7))], KEY)
        .await
        .unwrap();
    store
        .insert_contacts(b, &[consented(&phone(7))], KEY)
        .await
        .unwrap();
    let mut started = Vec::new();
    for (camp, at) in [(a, t0 - 86_400_000 * 2), (a, t0 - 1_000), (a, t0), (b, t0)] {
        let c = store
            .claim_due(ClaimScope::Campaign(camp), "n2", now_ms() + 1, 1, LEASE)
            .await
            .unwrap()
            .pop()
            .unwrap_or_else(|| panic!("due: {camp:?} {}", at - t0));
        let id = store
            .start_attempt(c.id, camp, "n2", Some("sim"), at)
            .await
            .unwrap();
        store
            .finish_attempt(id, end(at + 500, None, Next::RetryAt(0)))
            .await
            .unwrap();
        started.push((c.id, c.phone_hmac.clone()));
    }
    let (contact_a, hmac) = started[0].clone();
    let n = store
        .attempt_counts(contact_a, a, &hmac, t0 - 3_600_000, t0 - 7 * 86_400_000)
        .await
        .unwrap();
    assert_eq!(
        n.today, 2,
        "two attempts of this contact in campaign a in the last hour"
    );
    assert_eq!(
        n.across, 4,
        "four attempts of the number in a week, both campaigns"
    );
    assert_eq!(n.across_oldest_ms, Some(t0 - 86_400_000 * 2));
    let n = store
        .attempt_counts(contact_a, a, &hmac, t0 + 1, t0 + 1)
        .await
        .unwrap();
    assert_eq!((n.today, n.across, n.across_oldest_ms), (0, 0, None));
}

/// A result without a confidence (busy, no answer) and then one with it, on the same pooled
/// connection: the statement prepared for the first must take the second (it did not on
/// PostgreSQL through sqlx's Any driver when the value was bound as a nullable f64).
async fn results_with_and_without_confidence_on_one_connection(db: &TestDb) {
    let store = Store::open_with(
        &db.url,
        store::StoreOptions {
            max_connections: 1,
            ..store::StoreOptions::default()
        },
    )
    .await
    .unwrap();
    let camp = running_campaign(&store, "confidence", true).await;
    let rows: Vec<NewContact> = (0..4).map(|i| consented(&phone(200 + i))).collect();
    store.insert_contacts(camp, &rows, KEY).await.unwrap();
    let claimed = store
        .claim_due(ClaimScope::Campaign(camp), "n", now_ms() + 1, 4, LEASE)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 4);
    for (i, c) in claimed.iter().enumerate() {
        let a = store
            .start_attempt(c.id, camp, "n", None, now_ms())
            .await
            .unwrap();
        let confidence = [None, Some(0.875), None, Some(1.0)][i];
        let r = NewResult {
            confidence,
            ..result("send_details")
        };
        store
            .finish_attempt(a, end(now_ms(), Some(r), Next::Done))
            .await
            .unwrap_or_else(|e| panic!("result {i} (confidence {confidence:?}): {e}"));
        let back = store.result_of(a).await.unwrap().unwrap();
        assert_eq!(back.confidence, confidence);
    }
}
