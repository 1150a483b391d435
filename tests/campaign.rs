//! Campaigns run by `dialer serve` nodes against `dialer simulate`, checked against the
//! simulator's own call log (`--call-log`): crash safety (kill -9 mid-run, restart: no result
//! lost, no attempt dialled twice, interrupted attempts retried) on SQLite and on the real
//! PostgreSQL, and two nodes on one PostgreSQL store where one is killed and the other
//! finishes the campaign, with the trunk's calls-per-second limit shared between them.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{
    PgDb, Proc, RunDir, TestTrunk, consenting_contacts, repo, runtime, start_logged_simulator,
    start_node, write_node_config,
};
use serde_json::Value;
use store::{AttemptState, CampaignId, CampaignState, ContactState, NewCampaign, Store};

/// Far more than any run here needs; a hung run fails instead of blocking CI.
const RUN_BOUND: Duration = Duration::from_secs(240);

/// The simulated callees of the demo (keyed answers, speakers, busy, no answer…), with a
/// call log `<dir>/calls.jsonl`.
fn start_simulator(dir: &RunDir) -> (Proc, u16) {
    start_logged_simulator(dir, "calls", &repo().join("config/personas-demo.toml"), 11)
}

fn write_config(dir: &RunDir, node: &str, store_url: &str, sim_port: u16, cps: f64) -> String {
    let trunk = TestTrunk {
        name: "sim",
        port: sim_port,
        cps,
        channels: 400,
    };
    write_node_config(dir, node, store_url, &[trunk])
}

const POLICY: &str = r#"{
  "default_tz": "Europe/Kyiv",
  "window": { "mon": ["00:00-24:00"], "tue": ["00:00-24:00"], "wed": ["00:00-24:00"],
              "thu": ["00:00-24:00"], "fri": ["00:00-24:00"], "sat": ["00:00-24:00"],
              "sun": ["00:00-24:00"] },
  "retry": { "busy": { "delay": "2s", "max_attempts": 2 },
             "no_answer": { "delay": "2s", "max_attempts": 2 },
             "failed": { "delay": "2s", "max_attempts": 3 },
             "interrupted": { "delay": "1s", "max_attempts": 4 },
             "voicemail": "done", "no_input": "done", "unclassified": "done",
             "rejected": "done" },
  "caps": { "max_per_day": 10, "min_gap": "1s" }
}"#;

/// A campaign of `n` consenting contacts, not yet running.
async fn create_campaign(store: &Store, n: u32) -> CampaignId {
    let settings = serde_json::json!({
        "policy": serde_json::from_str::<Value>(POLICY).expect("policy JSON"),
        "language": "ru",
        "ring_timeout_secs": 20,
    });
    // The node validates settings the same way; fail here first with the field's name.
    engine::settings::CampaignSettings::from_json(&settings).expect("valid settings");
    let script = repo().join("config/scripts/actualization.toml");
    let id = store
        .create_campaign(&NewCampaign {
            name: "crash test".into(),
            script_path: script.display().to_string(),
            script_version: "test".into(),
            settings,
            consent_required: true,
        })
        .await
        .expect("create campaign");
    let contacts = consenting_contacts(1_000_000, n);
    let r = store
        .insert_contacts(id, &contacts, b"integration-test-key")
        .await
        .expect("insert contacts");
    assert_eq!(r.inserted, u64::from(n));
    id
}

/// The simulator's INVITEs: attempt tag → count, and their arrival times.
fn call_log(dir: &RunDir) -> (HashMap<String, u32>, Vec<i64>) {
    let text = std::fs::read_to_string(dir.path("calls.jsonl")).unwrap_or_default();
    let mut tags = HashMap::new();
    let mut times = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("call log line is JSON");
        if v["ev"] == "invite" {
            let tag = v["attempt"]
                .as_str()
                .expect("every INVITE of the dialer carries X-Dialer-Attempt")
                .to_owned();
            *tags.entry(tag).or_insert(0) += 1;
            times.push(v["at_ms"].as_i64().expect("at_ms"));
        }
    }
    (tags, times)
}

async fn attempts_started(store: &Store, campaign: CampaignId) -> i64 {
    store
        .attempt_stats(campaign)
        .await
        .map(|s| s.started)
        .unwrap_or(0)
}

async fn wait_state(store: &Store, campaign: CampaignId, want: CampaignState, bound: Duration) {
    let deadline = Instant::now() + bound;
    loop {
        let c = store
            .get_campaign(campaign)
            .await
            .expect("read campaign")
            .expect("campaign exists");
        if c.state == want {
            return;
        }
        let counts = store.contact_counts(campaign).await.expect("counts");
        assert!(
            Instant::now() < deadline,
            "campaign still {:?} after {bound:?}: {counts:?}",
            c.state
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What every run must satisfy once the campaign finished.
async fn check_consistency(store: &Store, campaign: CampaignId, dir: &RunDir, n: u32) -> Summary {
    let (tags, _) = call_log(dir);
    let twice: Vec<_> = tags.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "attempts dialled twice: {twice:?}");
    let mut s = Summary {
        invites: tags.len(),
        ..Summary::default()
    };
    let mut ids_in_store = HashSet::new();
    let contacts = store
        .list_contacts(campaign, None, 10_000)
        .await
        .expect("contacts");
    assert_eq!(contacts.len() as u32, n);
    for c in &contacts {
        assert!(
            matches!(c.state, ContactState::Done | ContactState::Erased),
            "contact {} left {:?}",
            c.id.0,
            c.state
        );
        let attempts = store.attempts_of(c.id).await.expect("attempts");
        let mut interrupted = 0;
        for a in &attempts {
            ids_in_store.insert(format!("{}-{}", campaign.0, a.id.0));
            match a.state {
                AttemptState::Finished => {
                    let r = store.result_of(a.id).await.expect("result");
                    assert!(
                        r.is_some(),
                        "attempt {} finished without a result (lost)",
                        a.id.0
                    );
                    s.finished += 1;
                }
                AttemptState::Interrupted => {
                    interrupted += 1;
                    s.interrupted += 1;
                }
                AttemptState::Dialling => panic!("attempt {} still dialling", a.id.0),
            }
        }
        // An interrupted attempt is followed by another (retry policy: 4 attempts).
        if interrupted > 0 && c.state == ContactState::Done {
            assert!(
                attempts.len() > interrupted || attempts.len() >= 4,
                "contact {}: interrupted and never retried: {attempts:?}",
                c.id.0
            );
        }
        for a in &attempts {
            *s.by_node.entry(a.node.clone()).or_default() += 1;
            s.starts.push((a.node.clone(), a.started_at_ms));
        }
    }
    // Written before the INVITE left: every INVITE the callee saw has its attempt row.
    for tag in tags.keys() {
        assert!(
            ids_in_store.contains(tag),
            "INVITE {tag} has no attempt in the store"
        );
    }
    s
}

#[derive(Debug, Default)]
struct Summary {
    invites: usize,
    finished: usize,
    interrupted: usize,
    by_node: BTreeMap<String, usize>,
    /// (node, attempt start, unix ms).
    starts: Vec<(String, i64)>,
}

impl Summary {
    /// Attempts per second of each node between `from` and `to` (unix ms).
    fn node_rates(&self, from: i64, to: i64) -> BTreeMap<String, f64> {
        let mut m: BTreeMap<String, f64> = BTreeMap::new();
        for (node, t) in &self.starts {
            if (from..to).contains(t) {
                *m.entry(node.clone()).or_default() += 1.0;
            }
        }
        let secs = ((to - from) as f64 / 1000.0).max(1e-3);
        m.values_mut().for_each(|v| *v /= secs);
        m
    }
}

/// kill -9 a node mid-run, start it again: it recovers its own attempts as `interrupted`,
/// retries them, finishes the campaign; the call log and the store agree.
fn crash_and_restart(dir: &RunDir, url: &str) {
    let rt = runtime();
    let (_sim, sim_port) = start_simulator(dir);
    let store = rt.block_on(Store::open(url)).expect("open store");
    let n = 120;
    let campaign = rt.block_on(create_campaign(&store, n));
    let config = write_config(dir, "n1", url, sim_port, 40.0);
    rt.block_on(store.set_campaign_state(campaign, CampaignState::Running))
        .expect("start campaign");
    let mut node = start_node(dir, "n1", &config, 1);
    // Mid-run: 60 attempts started, most calls live (they last ~20 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    while rt.block_on(attempts_started(&store, campaign)) < 60 {
        assert!(Instant::now() < deadline, "no progress:\n{}", node.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    node.signal("-KILL");
    assert!(node.wait_for(Duration::from_secs(5)).is_some());
    let dialling_at_kill = rt
        .block_on(store.attempt_stats(campaign))
        .expect("stats")
        .dialling;
    assert!(
        dialling_at_kill > 0,
        "the kill should catch calls in progress"
    );
    let mut node = start_node(dir, "n1", &config, 2);
    rt.block_on(wait_state(
        &store,
        campaign,
        CampaignState::Finished,
        RUN_BOUND,
    ));
    node.signal("-TERM");
    let st = node.wait_for(Duration::from_secs(15));
    assert!(
        st.is_some_and(|s| s.success()),
        "serve did not stop cleanly on SIGTERM ({st:?}):\n{}",
        node.stderr()
    );
    let s = rt.block_on(check_consistency(&store, campaign, dir, n));
    eprintln!(
        "crash test: {} INVITEs, {} attempts finished, {} interrupted (dialling at the kill: {dialling_at_kill})",
        s.invites, s.finished, s.interrupted
    );
    assert_eq!(
        s.interrupted as i64, dialling_at_kill,
        "every attempt dialling at the kill becomes interrupted, no other"
    );
    rt.block_on(store.close());
}

#[test]
fn kill_9_and_restart_loses_nothing_on_sqlite() {
    let dir = RunDir::new("crash-sqlite");
    let url = format!("sqlite://{}", dir.path("dialer.db").display());
    crash_and_restart(&dir, &url);
}

#[test]
fn kill_9_and_restart_loses_nothing_on_postgresql() {
    let db = PgDb::create("crash");
    let dir = RunDir::new("crash-pg");
    crash_and_restart(&dir, &db.url);
}

/// Two nodes on one PostgreSQL: both dial (the trunk's 20 calls/s shared: 10 each); one is
/// killed; the other takes over its contacts when the lease expires and finishes. (How close
/// the nodes come to the limit depends on the machine's load — debug builds of two nodes and
/// the simulator share 2 cores here — so only the limit itself is asserted.)
#[test]
fn two_nodes_share_the_trunk_and_survive_one_death() {
    let db = PgDb::create("two_nodes");
    let dir = RunDir::new("two-nodes");
    let rt = runtime();
    let (_sim, sim_port) = start_simulator(&dir);
    let store = rt.block_on(Store::open(&db.url)).expect("open store");
    let n = 240;
    let cps = 20.0;
    let campaign = rt.block_on(create_campaign(&store, n));
    let c1 = write_config(&dir, "n1", &db.url, sim_port, cps);
    let c2 = write_config(&dir, "n2", &db.url, sim_port, cps);
    let mut n1 = start_node(&dir, "n1", &c1, 1);
    let mut n2 = start_node(&dir, "n2", &c2, 1);
    // Both heartbeats in: each node's share is half the trunk.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let e1 = n1.stderr();
        let e2 = n2.stderr();
        if e1.contains("shared by 2") && e2.contains("shared by 2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nodes never saw each other:\n{e1}\n{e2}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    rt.block_on(store.set_campaign_state(campaign, CampaignState::Running))
        .expect("start campaign");
    let deadline = Instant::now() + Duration::from_secs(60);
    while rt.block_on(attempts_started(&store, campaign)) < 120 {
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The shared limit: INVITEs so far over the time they took.
    let (_, times) = call_log(&dir);
    let first = *times.iter().min().expect("INVITEs");
    let last = *times.iter().max().expect("INVITEs");
    let rate = (times.len() as f64 - 1.0) / ((last - first) as f64 / 1000.0);
    let killed_at = chrono::Utc::now().timestamp_millis();
    n1.signal("-KILL");
    assert!(n1.wait_for(Duration::from_secs(5)).is_some());
    rt.block_on(wait_state(
        &store,
        campaign,
        CampaignState::Finished,
        RUN_BOUND,
    ));
    n2.signal("-TERM");
    assert!(n2.wait_for(Duration::from_secs(15)).is_some());
    let s = rt.block_on(check_consistency(&store, campaign, &dir, n));
    eprintln!(
        "two nodes: {rate:.1} INVITEs/s with both up (trunk limit {cps}), attempts by node {:?}, {} interrupted; \
         per-node attempts/s while both were up {:?}, then {:?}",
        s.by_node,
        s.interrupted,
        s.node_rates(first, killed_at),
        s.node_rates(killed_at + 6_000, killed_at + 16_000),
    );
    // Both took part; the limit held across nodes (each alone could go to 20/s).
    assert!(
        s.by_node.get("n1").copied().unwrap_or(0) > 0,
        "{:?}",
        s.by_node
    );
    assert!(
        s.by_node.get("n2").copied().unwrap_or(0) > 0,
        "{:?}",
        s.by_node
    );
    // Each node's bucket starts full (its share, cps/2), so over T seconds the two may place
    // at most cps·T + cps calls: what the callee saw, and what the store says was started.
    let t_sim = (last - first) as f64 / 1000.0;
    assert!(
        rate <= cps + cps / t_sim + 1.0,
        "{rate:.1} calls/s over two nodes in {t_sim:.1} s against a trunk limit of {cps}"
    );
    let both = s.node_rates(first, killed_at);
    let combined: f64 = both.values().sum();
    let t = (killed_at - first) as f64 / 1000.0;
    assert!(
        combined <= cps + cps / t + 1.0,
        "{combined:.1} attempts/s over two nodes in {t:.1} s against a trunk limit of {cps}: {both:?}"
    );
    assert!(
        n2.stderr().contains("shared by 1"),
        "n2 should take the whole trunk once n1 is gone:\n{}",
        n2.stderr()
    );
    rt.block_on(store.close());
}
