//! Transfer to a manager, end to end: a `dialer serve` node runs the default survey
//! (config/scripts/actualization.toml) against `dialer simulate`, whose callees key "1" (a
//! call from a manager). With the campaign's `manager_uri` the dialer REFERs each call there,
//! follows the NOTIFYs (`message/sipfrag`: 100 Trying, then 200 OK with the subscription
//! terminated) and hangs up; the result records the transfer and the final NOTIFY status, and
//! the simulator's call log (`--call-log`) has the REFER with that target. Without a
//! `manager_uri` the answer becomes a callback and no REFER is sent.
//!
//! The two campaigns run at once on one node, each on its own trunk to its own simulator, so
//! each call log holds one campaign's calls. (Running them at once also guards the runners'
//! distinct SIP seeds: with one seed for all, the second runner's INVITEs carried the first's
//! Call-IDs and were taken for retransmissions.)

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{
    Proc, RunDir, TestTrunk, consenting_contacts, repo, runtime, start_logged_simulator,
    start_node, write_node_config,
};
use serde_json::Value;
use store::{CampaignId, CampaignState, NewCampaign, Store, StoredResult};

/// The calls last ~25 s (greeting, question, key, transfer); a hung run fails instead of
/// blocking CI.
const RUN_BOUND: Duration = Duration::from_secs(90);
/// Contacts per campaign.
const CONTACTS: u32 = 3;

/// One callee: answers after 1 s and keys "1" after the greeting and the question (as
/// "keys_manager" in config/personas-demo.toml), then waits for the caller's BYE.
const PERSONAS: &str = r#"
[[persona]]
name = "keys_manager"
weight = 1
kind = "human_dtmf"
ring_secs = 1.0
delay_secs = 17
digits = "1"
max_secs = 90
"#;

/// `dialer simulate` with the one persona above and a call log `<name>.jsonl`.
fn start_simulator(dir: &RunDir, name: &str) -> (Proc, u16) {
    let personas = dir.path("personas.toml");
    std::fs::write(&personas, PERSONAS).expect("write personas");
    start_logged_simulator(dir, name, &personas, 7)
}

/// A node with one trunk per simulator, named after it.
fn write_config(dir: &RunDir, store_url: &str, sims: &[(&str, u16)]) -> String {
    let trunks: Vec<TestTrunk<'_>> = sims
        .iter()
        .map(|&(name, port)| TestTrunk {
            name,
            port,
            cps: 20.0,
            channels: 50,
        })
        .collect();
    write_node_config(dir, "n1", store_url, &trunks)
}

/// Every contact is called once: no retry could hide a wrong first answer.
const POLICY: &str = r#"{
  "default_tz": "Europe/Kyiv",
  "window": { "mon": ["00:00-24:00"], "tue": ["00:00-24:00"], "wed": ["00:00-24:00"],
              "thu": ["00:00-24:00"], "fri": ["00:00-24:00"], "sat": ["00:00-24:00"],
              "sun": ["00:00-24:00"] },
  "retry": { "busy": "done", "no_answer": "done", "failed": "done", "interrupted": "done",
             "voicemail": "done", "no_input": "done", "unclassified": "done",
             "rejected": "done" }
}"#;

/// A running campaign of [`CONTACTS`] consenting contacts on `trunk`; `manager_uri` when
/// given.
async fn create_campaign(store: &Store, trunk: &str, manager_uri: Option<&str>) -> CampaignId {
    let mut settings = serde_json::json!({
        "policy": serde_json::from_str::<Value>(POLICY).expect("policy JSON"),
        "trunks": [{ "name": trunk }],
        "language": "ru",
        "ring_timeout_secs": 20,
    });
    if let Some(uri) = manager_uri {
        settings["manager_uri"] = uri.into();
    }
    // The node validates settings the same way; fail here first with the field's name.
    engine::settings::CampaignSettings::from_json(&settings).expect("valid settings");
    let script = repo().join("config/scripts/actualization.toml");
    let id = store
        .create_campaign(&NewCampaign {
            name: trunk.into(),
            script_path: script.display().to_string(),
            script_version: "test".into(),
            settings,
            consent_required: true,
        })
        .await
        .expect("create campaign");
    // Distinct numbers per campaign (the second campaign's start at 2,000,000).
    let base = if manager_uri.is_some() {
        1_000_000
    } else {
        2_000_000
    };
    let contacts = consenting_contacts(base, CONTACTS);
    let r = store
        .insert_contacts(id, &contacts, b"integration-test-key")
        .await
        .expect("insert contacts");
    assert_eq!(r.inserted, u64::from(CONTACTS));
    store
        .set_campaign_state(id, CampaignState::Running)
        .await
        .expect("start campaign");
    id
}

async fn finished(store: &Store, campaign: CampaignId) -> bool {
    let c = store
        .get_campaign(campaign)
        .await
        .expect("read campaign")
        .expect("campaign exists");
    c.state == CampaignState::Finished
}

/// A simulator's call log: attempt tag (`<campaign>-<attempt>`) → the REFER targets of
/// that call, and the attempt tags of the INVITEs it saw.
fn call_log(dir: &RunDir, name: &str) -> (HashMap<String, Vec<String>>, Vec<String>) {
    let text = std::fs::read_to_string(dir.path(&format!("{name}.jsonl"))).unwrap_or_default();
    let mut attempt_of: HashMap<String, String> = HashMap::new();
    let mut refers: HashMap<String, Vec<String>> = HashMap::new();
    let mut invites = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("call log line is JSON");
        let call_id = v["call_id"].as_str().expect("call_id").to_owned();
        match v["ev"].as_str() {
            Some("invite") => {
                let tag = v["attempt"]
                    .as_str()
                    .expect("every INVITE of the dialer carries X-Dialer-Attempt");
                invites.push(tag.to_owned());
                attempt_of.insert(call_id, tag.to_owned());
            }
            Some("refer") => {
                assert!(v["at_ms"].is_i64(), "refer line without at_ms: {line}");
                let tag = attempt_of
                    .get(&call_id)
                    .unwrap_or_else(|| panic!("REFER on a call never INVITEd: {line}"));
                let target = v["target"].as_str().expect("target").to_owned();
                refers.entry(tag.clone()).or_default().push(target);
            }
            _ => {}
        }
    }
    (refers, invites)
}

fn results(rt: &tokio::runtime::Runtime, store: &Store, campaign: CampaignId) -> Vec<StoredResult> {
    let r = rt
        .block_on(store.results_after(Some(campaign), 0, 100))
        .expect("results");
    assert_eq!(r.len(), CONTACTS as usize, "one result per contact: {r:?}");
    r
}

/// The INVITEs a simulator saw are this campaign's, one per result.
fn assert_invites(invites: &[String], campaign: CampaignId, results: &[StoredResult]) {
    let mut want: Vec<String> = results
        .iter()
        .map(|r| format!("{}-{}", campaign.0, r.attempt_id.0))
        .collect();
    let mut got = invites.to_vec();
    want.sort();
    got.sort();
    assert_eq!(
        got, want,
        "one INVITE per attempt of campaign {}",
        campaign.0
    );
}

#[test]
fn manager_call_is_transferred_by_refer_and_notify_or_becomes_a_callback() {
    let dir = RunDir::new("transfer");
    let rt = runtime();
    let (mut sim_a, port_a) = start_simulator(&dir, "sim-a");
    let (mut sim_b, port_b) = start_simulator(&dir, "sim-b");
    let manager = format!("sip:manager@127.0.0.1:{port_a}");
    let url = format!("sqlite://{}", dir.path("dialer.db").display());
    let store = rt.block_on(Store::open(&url)).expect("open store");
    let with_manager = rt.block_on(create_campaign(&store, "sim-a", Some(&manager)));
    let without = rt.block_on(create_campaign(&store, "sim-b", None));
    let config = write_config(&dir, &url, &[("sim-a", port_a), ("sim-b", port_b)]);
    let mut node = start_node(&dir, "n1", &config, 1);

    let deadline = Instant::now() + RUN_BOUND;
    while !(rt.block_on(finished(&store, with_manager)) && rt.block_on(finished(&store, without))) {
        assert!(
            Instant::now() < deadline,
            "campaigns not finished after {RUN_BOUND:?}: {:?} / {:?}\n{}",
            rt.block_on(store.contact_counts(with_manager)),
            rt.block_on(store.contact_counts(without)),
            node.stderr()
        );
        assert!(
            node.wait_for(Duration::ZERO).is_none(),
            "dialer serve exited:\n{}",
            node.stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    node.signal("-TERM");
    let st = node.wait_for(Duration::from_secs(15));
    assert!(
        st.is_some_and(|s| s.success()),
        "serve did not stop cleanly on SIGTERM ({st:?}):\n{}",
        node.stderr()
    );
    for sim in [&mut sim_a, &mut sim_b] {
        sim.signal("-TERM");
        assert!(sim.wait_for(Duration::from_secs(10)).is_some());
    }

    // With a manager: each answer is transferred there, the final NOTIFY said 200, and the
    // callee saw the REFER with that target.
    let (refers, invites) = call_log(&dir, "sim-a");
    let done = results(&rt, &store, with_manager);
    assert_invites(&invites, with_manager, &done);
    for r in &done {
        assert_eq!(r.category.as_deref(), Some("manager_call"), "{r:?}");
        assert_eq!(r.outcome, "answered", "{r:?}");
        let details = r.details.clone().unwrap_or(Value::Null);
        assert_eq!(
            details["transfer"]["to"].as_str(),
            Some(manager.as_str()),
            "{details}"
        );
        assert_eq!(
            details["transfer"]["notify_status"].as_u64(),
            Some(200),
            "{details}"
        );
        let tag = format!("{}-{}", with_manager.0, r.attempt_id.0);
        assert_eq!(
            refers.get(&tag),
            Some(&vec![manager.clone()]),
            "the callee saw one REFER to the manager on attempt {tag}: {refers:?}"
        );
    }
    assert_eq!(refers.len(), CONTACTS as usize, "{refers:?}");

    // Without one: a callback, and the callee saw no REFER.
    let (refers, invites) = call_log(&dir, "sim-b");
    let done = results(&rt, &store, without);
    assert_invites(&invites, without, &done);
    for r in &done {
        assert_eq!(r.category.as_deref(), Some("manager_call"), "{r:?}");
        assert_eq!(r.outcome, "answered", "{r:?}");
        let details = r.details.clone().unwrap_or(Value::Null);
        assert_eq!(details["callback"], Value::Bool(true), "{details}");
        assert!(details.get("transfer").is_none(), "{details}");
    }
    assert!(
        refers.is_empty(),
        "no REFER without a manager_uri: {refers:?}"
    );
    rt.block_on(store.close());
}
