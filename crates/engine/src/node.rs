//! The node: runs every campaign the store says is running, on this process, alongside the
//! other nodes on the same store.
//!
//! The store is the source of truth. Every half second the node
//! - sends its heartbeat and learns how many nodes are alive, and divides each trunk's (and
//!   each campaign's) calls per second and channels by that number, so the limits hold over
//!   all nodes together without a round trip per call;
//! - reads the campaigns: a `running` campaign gets a runner ([`crate::campaign::run`]), a
//!   `paused` one keeps its runner with no new calls, a `stopped`/`finished`/`draft` one has
//!   none (its runner is told to stop: live calls finish, claimed contacts are released);
//! - marks a running campaign `finished` once no contact is left pending or in progress.
//!
//! So `PauseCampaign` on any node (or an `UPDATE` by hand) reaches every node within a second.
//! Every minute the node also deletes recordings past their retention period (and audits it).

use crate::media::SocketMode;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use store::{Campaign, CampaignId, CampaignState, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::asr::AsrClient;
use crate::campaign::{self, Control, Progress, RunnerConfig, RunnerError, TrunkLine};
use crate::dialogue::ScriptPlan;
use crate::settings::CampaignSettings;
use crate::trunk::{Pacer, SharedPacer, Trunk};

/// How this node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Unique among the nodes on the store (leases and attempts carry it).
    pub name: String,
    /// The trunks of this node, by name (campaigns pick among them).
    pub trunks: Vec<Trunk>,
    /// Local SIP address of the first campaign's runner; later campaigns bind the same IP on
    /// a free port.
    pub bind: SocketAddr,
    pub hmac_key: Vec<u8>,
    /// How long a claim holds a contact without renewal (a dead node's contacts return after
    /// this long).
    pub lease: Duration,
    /// Recordings go to `<data_dir>/recordings`.
    pub data_dir: PathBuf,
    pub asr: Option<AsrClient>,
    /// Recordings older than this are deleted; `None` keeps them.
    pub recording_retention: Option<Duration>,
    /// How often the store is read (campaign states, heartbeat).
    pub poll: Duration,
    /// A node is alive while its heartbeat is younger than this.
    pub node_timeout: Duration,
    /// RTP sockets of every campaign's calls (see [`crate::media::SocketMode`]).
    pub rtp_sockets: SocketMode,
}

impl NodeConfig {
    /// Defaults for everything but the name, trunks, address and key.
    pub fn new(name: String, trunks: Vec<Trunk>, bind: SocketAddr, hmac_key: Vec<u8>) -> Self {
        NodeConfig {
            name,
            trunks,
            bind,
            hmac_key,
            lease: Duration::from_secs(30),
            data_dir: PathBuf::from("data"),
            asr: None,
            recording_retention: None,
            poll: Duration::from_millis(500),
            node_timeout: Duration::from_secs(5),
            rtp_sockets: SocketMode::PerCall,
        }
    }
}

/// What the node is doing, for `/metrics` and logs.
#[derive(Debug, Clone, Default)]
pub struct NodeStatus {
    /// Nodes alive (this one included) at the last heartbeat.
    pub nodes_alive: u32,
    /// Progress of each campaign running here.
    pub campaigns: HashMap<CampaignId, Progress>,
    /// Per trunk: (name, calls in progress on this node, this node's calls-per-second share).
    pub trunks: Vec<(String, u32, f64)>,
    /// Recordings deleted for retention since start.
    pub retention_deleted: u64,
}

/// Shared view of [`NodeStatus`].
pub type StatusHandle = Arc<Mutex<NodeStatus>>;

struct Runner {
    control: watch::Sender<Control>,
    task: JoinHandle<Result<Progress, RunnerError>>,
    pacer: SharedPacer,
}

/// Run the node until `shutdown` turns true; then stop every campaign (no new calls), let
/// live calls end for up to `grace`, and leave.
pub async fn run(
    store: Store,
    cfg: NodeConfig,
    status: StatusHandle,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) -> Result<(), store::StoreError> {
    let pacers: HashMap<String, SharedPacer> = cfg
        .trunks
        .iter()
        .map(|t| {
            (
                t.cfg.name.clone(),
                Pacer::shared(t.cfg.cps, t.cfg.max_channels),
            )
        })
        .collect();
    let mut runners: HashMap<CampaignId, Runner> = HashMap::new();
    // Campaigns that cannot run as configured: the error, until their row changes.
    let mut refused: HashMap<CampaignId, i64> = HashMap::new();
    // After a runner failed: not before.
    let mut backoff: HashMap<CampaignId, Instant> = HashMap::new();
    let mut nodes_alive = 0u32;
    let mut first_bind_used = false;
    let mut last_retention = Instant::now() - Duration::from_secs(3600);
    let mut last_done_check = Instant::now();
    let mut tick = tokio::time::interval(cfg.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(node = %cfg.name, trunks = cfg.trunks.len(), "node started");
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
        let now_ms = Utc::now().timestamp_millis();
        match store
            .heartbeat(&cfg.name, now_ms, cfg.node_timeout.as_millis() as i64)
            .await
        {
            Ok(n) if n != nodes_alive => {
                tracing::info!(nodes = n, "nodes alive changed: trunk limits shared by {n}");
                nodes_alive = n;
                for p in pacers.values() {
                    lock(p).set_share(n);
                }
                for r in runners.values() {
                    lock(&r.pacer).set_share(n);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "heartbeat"),
        }
        let campaigns = match store.list_campaigns().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read campaigns");
                continue;
            }
        };
        // Runners that ended (stopped, or failed).
        let ended: Vec<CampaignId> = runners
            .iter()
            .filter(|(_, r)| r.task.is_finished())
            .map(|(id, _)| *id)
            .collect();
        for id in ended {
            let Some(r) = runners.remove(&id) else {
                continue;
            };
            match r.task.await {
                Ok(Ok(p)) => tracing::info!(
                    campaign = id.0,
                    placed = p.placed,
                    finished = p.finished,
                    "campaign runner stopped"
                ),
                Ok(Err(e)) => {
                    tracing::warn!(campaign = id.0, error = %e, "campaign runner failed; retrying in 5 s");
                    backoff.insert(id, Instant::now() + Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::warn!(campaign = id.0, error = %e, "campaign runner panicked; retrying in 5 s");
                    backoff.insert(id, Instant::now() + Duration::from_secs(5));
                }
            }
            if let Ok(mut s) = status.lock() {
                s.campaigns.remove(&id);
            }
        }
        for c in &campaigns {
            let want = match c.state {
                CampaignState::Running => Some(Control::Run),
                CampaignState::Paused => Some(Control::Pause),
                _ => None,
            };
            if let Some(r) = runners.get(&c.id) {
                let target = want.unwrap_or(Control::Stop);
                if *r.control.borrow() != target {
                    let _ = r.control.send(target);
                }
                continue;
            }
            let Some(want) = want else { continue };
            if refused.get(&c.id) == Some(&c.updated_at_ms) {
                continue;
            }
            if backoff.get(&c.id).is_some_and(|t| Instant::now() < *t) {
                continue;
            }
            let bind = if first_bind_used {
                SocketAddr::new(cfg.bind.ip(), 0)
            } else {
                cfg.bind
            };
            match runner_config(&cfg, c, &pacers, bind, nodes_alive.max(1)) {
                Ok(rc) => {
                    first_bind_used = true;
                    let pacer = Arc::clone(&rc.pacer);
                    let (tx, rx) = watch::channel(want);
                    let st = Arc::clone(&status);
                    let id = c.id;
                    tracing::info!(campaign = id.0, name = %c.name, "campaign runner starting");
                    let task = tokio::spawn(campaign::run(store.clone(), rc, rx, move |p| {
                        if let Ok(mut s) = st.lock() {
                            s.campaigns.insert(id, p.clone());
                        }
                    }));
                    runners.insert(
                        c.id,
                        Runner {
                            control: tx,
                            task,
                            pacer,
                        },
                    );
                    refused.remove(&c.id);
                }
                Err(e) => {
                    tracing::warn!(campaign = c.id.0, error = %e, "campaign cannot run on this node");
                    refused.insert(c.id, c.updated_at_ms);
                }
            }
        }
        if last_done_check.elapsed() >= Duration::from_secs(2) {
            last_done_check = Instant::now();
            finish_done(&store, &campaigns).await;
        }
        if let Some(keep) = cfg.recording_retention
            && last_retention.elapsed() >= Duration::from_secs(60)
        {
            last_retention = Instant::now();
            let n = retention(&store, keep).await;
            if let Ok(mut s) = status.lock() {
                s.retention_deleted += n;
            }
        }
        if let Ok(mut s) = status.lock() {
            s.nodes_alive = nodes_alive;
            s.trunks = cfg
                .trunks
                .iter()
                .filter_map(|t| {
                    let p = lock(pacers.get(&t.cfg.name)?);
                    Some((t.cfg.name.clone(), p.in_use(), p.limits().0))
                })
                .collect();
        }
    }
    // Shutdown: no new calls anywhere; live calls end by themselves up to the grace period.
    tracing::info!(
        campaigns = runners.len(),
        "node stopping: live calls finish first"
    );
    for r in runners.values() {
        let _ = r.control.send(Control::Stop);
    }
    let deadline = tokio::time::Instant::now() + grace;
    for (id, r) in runners {
        let abort = r.task.abort_handle();
        match tokio::time::timeout_at(deadline, r.task).await {
            Ok(_) => {}
            Err(_) => {
                tracing::warn!(
                    campaign = id.0,
                    "live calls still up after the grace period: cut off (their attempts become interrupted)"
                );
                abort.abort();
            }
        }
    }
    if let Err(e) = store.leave(&cfg.name).await {
        tracing::warn!(error = %e, "cannot leave the node table");
    }
    Ok(())
}

fn lock(p: &SharedPacer) -> std::sync::MutexGuard<'_, Pacer> {
    p.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The runner of campaign `c` on this node, from its stored settings.
fn runner_config(
    cfg: &NodeConfig,
    c: &Campaign,
    pacers: &HashMap<String, SharedPacer>,
    bind: SocketAddr,
    nodes: u32,
) -> Result<RunnerConfig, String> {
    let settings = CampaignSettings::from_json(&c.settings).map_err(|e| e.to_string())?;
    let uses: Vec<(String, u32)> = if settings.trunks.is_empty() {
        cfg.trunks.iter().map(|t| (t.cfg.name.clone(), 1)).collect()
    } else {
        settings
            .trunks
            .iter()
            .map(|u| (u.name.clone(), u.weight))
            .collect()
    };
    let mut trunks = Vec::with_capacity(uses.len());
    for (name, weight) in uses {
        let trunk = cfg
            .trunks
            .iter()
            .find(|t| t.cfg.name == name)
            .ok_or_else(|| format!("settings: `trunks`: no trunk {name:?} on this node"))?;
        let pacer = pacers
            .get(&name)
            .cloned()
            .ok_or_else(|| format!("trunk {name:?} has no pacer"))?;
        trunks.push(TrunkLine {
            trunk: trunk.clone(),
            weight,
            pacer,
        });
    }
    if trunks.is_empty() {
        return Err("no trunk configured on this node".into());
    }
    let lang = script::Lang::parse(&settings.language);
    let plan = ScriptPlan::load(
        std::path::Path::new(&c.script_path),
        lang,
        cfg.asr.clone(),
        settings.manager_uri.clone(),
    )?;
    let mut pacer = Pacer::new(
        settings.cps.unwrap_or(1.0e9),
        settings.channels.unwrap_or(u32::MAX),
    );
    pacer.set_share(nodes);
    let record_dir = cfg.data_dir.join("recordings");
    if let Err(e) = std::fs::create_dir_all(&record_dir) {
        return Err(format!("cannot create {}: {e}", record_dir.display()));
    }
    Ok(RunnerConfig {
        campaign: c.id,
        node: cfg.name.clone(),
        trunks,
        pacer: Arc::new(Mutex::new(pacer)),
        ring_timeout: Duration::from_secs(settings.ring_timeout_secs),
        policy: settings.policy,
        script: Arc::new(plan),
        hmac_key: cfg.hmac_key.clone(),
        lease: cfg.lease,
        record_dir: Some(record_dir),
        stop_when_done: false,
        bind,
        seed: fresh_seed(&cfg.name, c.id),
        rtp_sockets: cfg.rtp_sockets,
    })
}

/// A seed no other runner, node or earlier life of this node uses: the process's random
/// hasher keys, the time, the node and the campaign.
pub fn fresh_seed(node: &str, campaign: CampaignId) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(node.as_bytes());
    h.write_i64(campaign.0);
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

/// Running campaigns with nothing left to call become `finished`.
async fn finish_done(store: &Store, campaigns: &[Campaign]) {
    for c in campaigns
        .iter()
        .filter(|c| c.state == CampaignState::Running)
    {
        match store.contact_counts(c.id).await {
            Ok(n) if n.total() > 0 && n.pending == 0 && n.in_progress == 0 => {
                // Only from running (an operator's pause or stop meanwhile wins; another
                // node finishing it first is the same outcome).
                match store
                    .set_campaign_state_if(c.id, CampaignState::Running, CampaignState::Finished)
                    .await
                {
                    Ok(true) => {
                        tracing::info!(campaign = c.id.0, "campaign finished: every contact done");
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(campaign = c.id.0, error = %e, "cannot finish"),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(campaign = c.id.0, error = %e, "contact counts"),
        }
    }
}

/// Delete recordings past retention: the file, then the reference (audited).
async fn retention(store: &Store, keep: Duration) -> u64 {
    let before = Utc::now().timestamp_millis() - keep.as_millis() as i64;
    let mut deleted = 0;
    // Bounded: at most 100 batches per pass; the rest waits for the next minute.
    for _ in 0..100 {
        let batch = match store.recordings_older_than(before, 500).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "retention: cannot list recordings");
                return deleted;
            }
        };
        if batch.is_empty() {
            break;
        }
        for r in batch {
            match std::fs::remove_file(&r.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(error = %e, result = r.result_id.0, "retention: cannot delete a recording");
                    continue;
                }
            }
            match store.forget_recording(r.result_id, "retention").await {
                Ok(true) => deleted += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "retention: cannot record the deletion"),
            }
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, "retention: recordings deleted");
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{attempt, campaign_with_contact, claim};
    use store::{AuditAction, AuditFilter, NewResult};

    /// A recording past retention: the file goes, the result forgets it, the audit log says so.
    #[tokio::test]
    async fn retention_deletes_old_recordings_and_audits() {
        let dir = std::env::temp_dir().join(format!("dialer-retention-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let wav = dir.join("1.wav");
        std::fs::write(&wav, b"RIFF").expect("file");
        let (store, camp) = campaign_with_contact(None).await;
        let c = claim(&store, camp).await;
        let result = NewResult {
            outcome: "answered".into(),
            recording_path: Some(wav.display().to_string()),
            ..NewResult::default()
        };
        let a = attempt(&store, camp, &c, "answered", Some(result)).await;
        // Kept for a day: nothing to do yet.
        assert_eq!(retention(&store, Duration::from_secs(86_400)).await, 0);
        assert!(wav.exists());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(retention(&store, Duration::from_millis(1)).await, 1);
        assert!(!wav.exists(), "the recording file is deleted");
        let r = store.result_of(a).await.expect("result").expect("kept");
        assert_eq!(r.recording_path, None);
        let audit = store
            .audit_log(&AuditFilter::default(), 10)
            .await
            .expect("audit");
        assert!(
            audit
                .iter()
                .any(|e| e.action == AuditAction::RetentionDelete && e.actor == "retention"),
            "{audit:?}"
        );
        assert_eq!(retention(&store, Duration::from_millis(1)).await, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
