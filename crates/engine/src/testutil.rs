//! Test fixtures shared by the engine's unit tests: a running campaign with one contact on an
//! in-memory SQLite store, and one attempt through it.

use chrono::Utc;
use store::{
    AttemptEnd, AttemptId, CampaignId, ClaimScope, ClaimedContact, NewResult, Next, Store,
};

/// An in-memory store with a running campaign (no consent gate) holding one contact.
pub(crate) async fn campaign_with_contact(tz: Option<&str>) -> (Store, CampaignId) {
    let store = Store::open("sqlite::memory:").await.expect("store");
    let camp = store
        .create_campaign(&store::NewCampaign {
            name: "test".into(),
            script_path: "x.toml".into(),
            script_version: "v".into(),
            settings: serde_json::json!({}),
            consent_required: false,
        })
        .await
        .expect("campaign");
    store
        .set_campaign_state(camp, store::CampaignState::Running)
        .await
        .expect("running");
    store
        .insert_contacts(
            camp,
            &[store::NewContact {
                phone_e164: "+380501234567".into(),
                timezone: tz.map(str::to_owned),
                ..store::NewContact::default()
            }],
            b"key",
        )
        .await
        .expect("contact");
    (store, camp)
}

/// Claim the (only) contact now.
pub(crate) async fn claim(store: &Store, camp: CampaignId) -> ClaimedContact {
    store
        .claim_due(
            ClaimScope::Campaign(camp),
            "n",
            Utc::now().timestamp_millis() + 1,
            1,
            30_000,
        )
        .await
        .expect("claim")
        .pop()
        .expect("due")
}

/// One attempt on a claimed contact, ended at once with `outcome` (and `result`); the contact
/// is due again at once.
pub(crate) async fn attempt(
    store: &Store,
    camp: CampaignId,
    c: &ClaimedContact,
    outcome: &str,
    result: Option<NewResult>,
) -> AttemptId {
    let now = Utc::now().timestamp_millis() + 1;
    let a = store
        .start_attempt(c.id, camp, "n", None, now)
        .await
        .expect("start");
    store
        .finish_attempt(
            a,
            AttemptEnd {
                now_ms: now,
                outcome: outcome.into(),
                sip_status: None,
                result,
                next: Next::RetryAt(0),
            },
        )
        .await
        .expect("finish");
    a
}
