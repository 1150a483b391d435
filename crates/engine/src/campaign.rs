//! The campaign runner: claims due contacts from the store, dials them at the trunk's pace,
//! runs the script on every answered call, and commits each result before it is published.
//!
//! One loop on one task, as everywhere in the engine; the store is another task, so a slow
//! commit never stalls the media clock:
//!
//! ```text
//! loop {
//!     select! {
//!         ev   = driver.next_event()  => answered: media + script; ended: result → store
//!         tick = media clock (20 ms)  => media for all calls; scripts' timeouts; place calls the
//!                                        pacer allows from the claimed contacts
//!         ev   = store task           => claimed contacts; attempt written → INVITE; committed
//!         asr  = recogniser answers   => the call's script
//!         ctl  = pause / resume / stop
//!     }
//! }
//! ```
//!
//! Crash safety follows from the order of writes: the attempt row is committed before the
//! INVITE leaves ([`store::Store::start_attempt`], which also checks the lease); the result,
//! the attempt's end and the contact's next state are one transaction
//! ([`store::Store::finish_attempt`]); a node that restarts first recovers its own leases
//! (attempts left `dialling` become `interrupted` and follow the retry policy), and every node
//! periodically recovers leases that expired (a dead node's contacts).
//!
//! Opt-out (the script's `opt_out` category) suppresses and erases the number on every
//! campaign in the same moment the result is committed, and deletes the call's recordings.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use media::amd::{AmdConfig, Verdict};
use media::session::{MediaEvent, MediaParams};
use sip::{CallEvent, CallHandle, EndpointConfig, Outcome as SipOutcome, TimerConfig};
use store::{
    AttemptEnd, AttemptId, CampaignId, ClaimScope, ClaimedContact, ConsentSource, ContactId,
    EraseTarget, InterruptedAttempt, NewConsent, NewResult, Store,
};
use tokio::sync::{mpsc, watch};

use crate::clock::MediaClock;
use crate::dialogue::{Actions, AsrDone, Conversation, ScriptPlan};
use crate::driver::{DriverConfig, DriverEvent, SipDriver};
use crate::media::{MediaConfig, MediaEngine, MediaHandle};
use crate::schedule::{self, Decision, Outcome, Policy};
use crate::transport::TransportConfig;
use crate::trunk::{CallRequest, Pacer, SharedPacer, Trunk};

/// One trunk a campaign dials through: its share of new calls and the node's pacer of the
/// trunk (shared with the node's other campaigns on it).
#[derive(Debug, Clone)]
pub struct TrunkLine {
    pub trunk: Trunk,
    pub weight: u32,
    pub pacer: SharedPacer,
}

impl TrunkLine {
    /// A trunk used by this campaign alone, at the trunk's own limits.
    pub fn alone(trunk: Trunk) -> TrunkLine {
        let pacer = Pacer::shared(trunk.cfg.cps, trunk.cfg.max_channels);
        TrunkLine {
            trunk,
            weight: 1,
            pacer,
        }
    }
}

/// How a campaign runs on this node.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub campaign: CampaignId,
    /// This node's name in leases and attempts (unique per process).
    pub node: String,
    /// Where calls go, by weight; a trunk whose pacer says no is skipped for that call.
    pub trunks: Vec<TrunkLine>,
    /// The campaign's own limits (new calls per second, calls in progress) on this node.
    pub pacer: SharedPacer,
    pub ring_timeout: Duration,
    pub policy: Policy,
    pub script: Arc<ScriptPlan>,
    /// Key of the HMAC that stands for an erased number.
    pub hmac_key: Vec<u8>,
    /// How long a claim holds a contact; renewed while the call lasts.
    pub lease: Duration,
    /// Recordings go here (`<dir>/<attempt>.wav`) when the script asks for them.
    pub record_dir: Option<PathBuf>,
    /// Finish when no contact is left to call (the demo); else run until stopped.
    pub stop_when_done: bool,
    /// Local SIP address.
    pub bind: SocketAddr,
    /// Seed of Call-IDs, tags and branches: different for every runner, node and restart (a
    /// restarted node must not reuse the Call-IDs of its previous life).
    pub seed: u64,
    /// RTP sockets: a port pair per call, or one pair for all (see [`crate::media`]).
    pub rtp_sockets: crate::media::SocketMode,
}

/// What the operator asks of a running campaign; takes effect within a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Run,
    /// No new calls; live calls finish.
    Pause,
    /// No new calls; claimed contacts are released; the runner returns once live calls end.
    Stop,
}

/// Counters of a run, for progress bars and the final report.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub placed: u64,
    pub answered: u64,
    pub finished: u64,
    pub live: usize,
    pub by_outcome: BTreeMap<String, u64>,
    pub by_category: BTreeMap<String, u64>,
    pub opt_outs: u64,
    pub consents: u64,
    pub interrupted_recovered: u64,
    pub store_errors: u64,
    /// Contacts still to call (from the store, refreshed every second).
    pub pending: i64,
    /// Contacts claimed and due, waiting for the pacer (the scheduler's queue).
    pub ready: usize,
    pub talk: Duration,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    #[error("cannot bind SIP sockets on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("media clock: {0}")]
    Clock(std::io::Error),
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("the SIP transport stopped")]
    Transport,
    #[error("the campaign has no trunk")]
    NoTrunk,
}

/// Requests to the store task.
enum StoreCmd {
    Claim(u32),
    /// Check the caps, write the attempt; the trunk chosen for it.
    Start(Box<ClaimedContact>, usize),
    Finish(Box<Finish>),
    Release(Vec<ContactId>, Option<i64>),
    Renew(Vec<ContactId>),
    Recover,
    Counts,
}

struct Finish {
    attempt: AttemptId,
    contact: ContactId,
    end: AttemptEnd,
    opt_out: bool,
    consent: Option<NewConsent>,
}

/// Answers of the store task.
enum StoreEvent {
    Claimed(Vec<ClaimedContact>),
    Started(Box<ClaimedContact>, AttemptId, usize),
    /// Not dialled (a cap holds the contact back, or the store refused); the trunk that was
    /// reserved for it.
    NotStarted(usize),
    Finished {
        erased: bool,
        consent: bool,
    },
    Lost(Vec<ContactId>),
    Recovered(u64),
    Counts(i64),
    Error(String),
}

/// One call in progress.
struct Live {
    /// The script version this call runs (a reload does not change it).
    plan: Arc<ScriptPlan>,
    contact: ClaimedContact,
    attempt: AttemptId,
    /// Index into [`RunnerConfig::trunks`].
    trunk: usize,
    media: MediaHandle,
    key: u64,
    answered: bool,
    /// Last NOTIFY status of a transfer (REFER) in progress.
    transfer_status: Option<u16>,
    amd: Option<Verdict>,
    conversation: Option<Conversation>,
    recording: Option<PathBuf>,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn to_store_next(n: schedule::Next) -> store::Next {
    match n {
        schedule::Next::RetryAt(t) => store::Next::RetryAt(ms(t)),
        schedule::Next::Done(_) => store::Next::Done,
    }
}

fn seed_of(id: ContactId) -> u64 {
    (id.0 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The store task: executes requests one after another (SQLite has one writer anyway) and
/// reports back; errors are reported, never fatal.
async fn store_task(
    store: Store,
    cfg: Arc<RunnerConfig>,
    mut rx: mpsc::UnboundedReceiver<StoreCmd>,
    tx: mpsc::UnboundedSender<StoreEvent>,
) {
    let now_ms = || Utc::now().timestamp_millis();
    let lease_ms = cfg.lease.as_millis() as i64;
    let policy = cfg.policy.clone();
    let retry = move |a: &InterruptedAttempt| {
        to_store_next(policy.plan_next(
            None,
            &Outcome::from_key("interrupted"),
            u32::try_from(a.attempts).unwrap_or(u32::MAX),
            Utc::now(),
            seed_of(a.contact_id),
        ))
    };
    while let Some(cmd) = rx.recv().await {
        let ev = match cmd {
            StoreCmd::Claim(n) => match store
                .claim_due(
                    ClaimScope::Campaign(cfg.campaign),
                    &cfg.node,
                    now_ms(),
                    n,
                    lease_ms,
                )
                .await
            {
                Ok(v) => StoreEvent::Claimed(v),
                Err(e) => {
                    let _ = tx.send(StoreEvent::Claimed(Vec::new()));
                    StoreEvent::Error(format!("claim: {e}"))
                }
            },
            StoreCmd::Start(c, trunk) => {
                match capped_until(&store, &cfg.policy, &c).await {
                    Ok(None) => {}
                    Ok(Some(at)) => {
                        if let Err(e) = store.release_contacts(&cfg.node, &[c.id], Some(at)).await {
                            let _ = tx.send(StoreEvent::Error(format!("release: {e}")));
                        }
                        let _ = tx.send(StoreEvent::NotStarted(trunk));
                        continue;
                    }
                    Err(e) => {
                        // Fail safe: no count, no call; the contact comes back in a minute.
                        let _ = tx.send(StoreEvent::Error(format!("caps: {e}")));
                        let _ = store
                            .release_contacts(&cfg.node, &[c.id], Some(now_ms() + 60_000))
                            .await;
                        let _ = tx.send(StoreEvent::NotStarted(trunk));
                        continue;
                    }
                }
                match store
                    .start_attempt(
                        c.id,
                        cfg.campaign,
                        &cfg.node,
                        Some(&cfg.trunks[trunk].trunk.cfg.name),
                        now_ms(),
                    )
                    .await
                {
                    Ok(a) => StoreEvent::Started(c, a, trunk),
                    Err(e) => {
                        tracing::warn!(error = %e, contact = c.id.0, "attempt not started");
                        StoreEvent::NotStarted(trunk)
                    }
                }
            }
            StoreCmd::Finish(f) => {
                let mut erased = false;
                let mut consent = false;
                match store.finish_attempt(f.attempt, f.end).await {
                    Ok(r) => {
                        if let Some(p) = r.erased_recording {
                            let _ = std::fs::remove_file(p);
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(StoreEvent::Error(format!("finish attempt: {e}")));
                    }
                }
                if let Some(c) = &f.consent
                    && !f.opt_out
                {
                    match store.record_consent(f.contact, c, "phone").await {
                        Ok(_) => consent = true,
                        Err(e) => {
                            let _ = tx.send(StoreEvent::Error(format!("consent: {e}")));
                        }
                    }
                }
                if f.opt_out {
                    match store
                        .suppress_and_erase(
                            &EraseTarget::Contact(f.contact),
                            &cfg.hmac_key,
                            "phone",
                            "opt-out during the call",
                        )
                        .await
                    {
                        Ok(r) => {
                            for p in r.recordings {
                                let _ = std::fs::remove_file(p);
                            }
                            erased = true;
                        }
                        Err(e) => {
                            let _ = tx.send(StoreEvent::Error(format!("erase: {e}")));
                        }
                    }
                }
                StoreEvent::Finished { erased, consent }
            }
            StoreCmd::Release(ids, at) => match store.release_contacts(&cfg.node, &ids, at).await {
                Ok(_) => continue,
                Err(e) => StoreEvent::Error(format!("release: {e}")),
            },
            StoreCmd::Renew(ids) => {
                let until = now_ms() + lease_ms;
                match store.renew_leases(&cfg.node, &ids, until).await {
                    Ok(held) if held.len() == ids.len() => continue,
                    Ok(held) => {
                        let held: std::collections::HashSet<ContactId> = held.into_iter().collect();
                        StoreEvent::Lost(ids.into_iter().filter(|i| !held.contains(i)).collect())
                    }
                    Err(e) => StoreEvent::Error(format!("renew leases: {e}")),
                }
            }
            StoreCmd::Recover => {
                match store.release_expired_leases(now_ms(), retry.clone()).await {
                    Ok(v) => StoreEvent::Recovered(v.len() as u64),
                    Err(e) => StoreEvent::Error(format!("recover leases: {e}")),
                }
            }
            StoreCmd::Counts => match store.contact_counts(cfg.campaign).await {
                Ok(c) => StoreEvent::Counts(c.pending + c.in_progress),
                Err(e) => StoreEvent::Error(format!("counts: {e}")),
            },
        };
        if tx.send(ev).is_err() {
            return;
        }
    }
}

/// Run the campaign until stopped (or, with `stop_when_done`, until nothing is left to call).
/// `on_progress` is called about four times a second.
pub async fn run(
    store: Store,
    cfg: RunnerConfig,
    mut control: watch::Receiver<Control>,
    mut on_progress: impl FnMut(&Progress),
) -> Result<Progress, RunnerError> {
    if cfg.trunks.is_empty() {
        return Err(RunnerError::NoTrunk);
    }
    let cfg = Arc::new(cfg);
    // Recover what this node held when it last stopped (kill -9, power loss) before claiming.
    {
        let policy = cfg.policy.clone();
        let recovered = store
            .recover_node(&cfg.node, Utc::now().timestamp_millis(), move |a| {
                to_store_next(policy.plan_next(
                    None,
                    &Outcome::from_key("interrupted"),
                    u32::try_from(a.attempts).unwrap_or(u32::MAX),
                    Utc::now(),
                    seed_of(a.contact_id),
                ))
            })
            .await?;
        if !recovered.is_empty() {
            tracing::info!(attempts = recovered.len(), "recovered interrupted attempts");
        }
    }
    let mut driver = SipDriver::bind(DriverConfig {
        transport: TransportConfig {
            bind: cfg.bind,
            channel_capacity: 16_384,
            ..TransportConfig::default()
        },
        endpoint: EndpointConfig {
            seed: cfg.seed,
            ..EndpointConfig::default()
        },
    })
    .await
    .map_err(|e| RunnerError::Bind(cfg.bind, e))?;
    // Our address as each trunk sees it (Via, Contact, SDP).
    let mut locals = Vec::with_capacity(cfg.trunks.len());
    for t in &cfg.trunks {
        locals.push(
            driver
                .local_addr_towards(&t.trunk.dest())
                .await
                .map_err(|e| RunnerError::Bind(cfg.bind, e))?,
        );
    }
    let local = locals[0];
    let mut engine = MediaEngine::new(MediaConfig::new(local.ip()).with_sockets(cfg.rtp_sockets));
    let mut clock = MediaClock::start(
        Instant::now(),
        Duration::from_millis(u64::from(media::FRAME_MS)),
    )
    .map_err(RunnerError::Clock)?;

    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let store_handle = tokio::spawn(store_task(store, Arc::clone(&cfg), cmd_rx, ev_tx));
    let (asr_tx, mut asr_rx) = mpsc::unbounded_channel::<AsrDone>();

    let started = Instant::now();
    let mut progress = Progress {
        pending: i64::MAX,
        ..Progress::default()
    };
    // Smooth weighted round robin over the trunks (nginx's): each pick adds every weight to
    // its trunk's credit and takes the best trunk whose pacer allows a call.
    let mut credit: Vec<i64> = vec![0; cfg.trunks.len()];
    // After a failure the trunk said may be retried elsewhere: the contact avoids that trunk.
    let mut avoid: HashMap<ContactId, usize> = HashMap::new();
    let mut ready: VecDeque<ClaimedContact> = VecDeque::new();
    let mut claiming = false;
    // After a claim that found nothing, wait a little before asking again.
    let mut next_claim = started;
    let mut last_claim_empty = false;
    let mut starting: usize = 0;
    let mut live: HashMap<CallHandle, Live> = HashMap::new();
    let mut by_media: HashMap<MediaHandle, CallHandle> = HashMap::new();
    let mut by_key: HashMap<u64, CallHandle> = HashMap::new();
    let mut next_key: u64 = 1;
    let mut finishing: u64 = 0;
    let mut state = *control.borrow();
    let mut last_progress = started;
    let mut last_renew = started;
    let mut last_recover = started;
    let mut last_counts = started - Duration::from_secs(10);
    let mut todo: Vec<(CallHandle, Actions)> = Vec::new();
    let timers = TimerConfig::default();
    // The script new calls get; checked for edits every few seconds.
    let mut plan: Arc<ScriptPlan> = Arc::clone(&cfg.script);
    let mut last_reload_check = started;
    let mut last_reload_error: Option<String> = None;
    let _ = cmd_tx.send(StoreCmd::Counts);

    loop {
        tokio::select! {
            ev = driver.next_event() => {
                let now = Instant::now();
                let (h, ev) = match ev {
                    Some(DriverEvent::Call(h, ev)) => (h, ev),
                    Some(DriverEvent::Agent(..)) => continue,
                    None => return Err(RunnerError::Transport),
                };
                match ev {
                    CallEvent::Answered { media: neg, .. } => {
                        let Some(l) = live.get_mut(&h) else { continue };
                        l.answered = true;
                        progress.answered += 1;
                        driver.hangup_at(h, now + l.plan.script.max_duration() + Duration::from_secs(30));
                        if let Some(neg) = neg {
                            let mut p = MediaParams::new(
                                crate::media::codec_from_sdp(neg.codec),
                                neg.telephone_event_pt,
                                neg.remote_rtp,
                                seed_of(l.contact.id) ^ l.key,
                            );
                            p.direction = crate::media::direction_from_sdp(neg.direction);
                            p.remote_ssrc = neg.remote_ssrc;
                            p.amd = Some(AmdConfig::default());
                            p.vad = Some(media::vad::VadConfig::endpointing());
                            p.record = l.recording.is_some();
                            engine.start(l.media, now, p, l.recording.clone());
                        }
                        let (c, a) = Conversation::start(
                            Arc::clone(&l.plan),
                            now,
                            asr_tx.clone(),
                            l.key,
                            format!("{}-{}", cfg.node, l.attempt.0),
                            engine.media_mut(l.media),
                        );
                        l.conversation = Some(c);
                        todo.push((h, a));
                    }
                    CallEvent::ReferProgress { status, done } => {
                        if let Some(l) = live.get_mut(&h) {
                            l.transfer_status = Some(status);
                        }
                        if done {
                            let _ = driver.hangup(h).await;
                        }
                    }
                    CallEvent::Ended(report) => {
                        let Some(mut l) = live.remove(&h) else { continue };
                        release(&cfg, l.trunk);
                        if report.failover && cfg.trunks.len() > 1 {
                            avoid.insert(l.contact.id, l.trunk);
                        } else {
                            avoid.remove(&l.contact.id);
                        }
                        by_media.remove(&l.media);
                        by_key.remove(&l.key);
                        if let Some(c) = l.conversation.as_mut()
                            && !c.is_finished()
                        {
                            c.on_hangup(now);
                        }
                        if let Some(m) = engine.release(l.media) {
                            metrics::counter!("dialer_rtp_lost_packets_total").increment(m.lost);
                        }
                        if let Some(c) = &l.conversation {
                            for d in &c.asr_latencies {
                                metrics::histogram!("dialer_asr_latency_seconds").record(d.as_secs_f64());
                            }
                        }
                        if let Some(d) = report.setup {
                            metrics::histogram!("dialer_setup_latency_seconds").record(d.as_secs_f64());
                        }
                        // A trunk is down while its calls fail in a way another trunk could fix.
                        metrics::gauge!("dialer_trunk_up", "trunk" => cfg.trunks[l.trunk].trunk.cfg.name.clone())
                            .set(if report.failover { 0.0 } else { 1.0 });
                        let f = finish(&cfg, &l, &report, &mut progress);
                        metrics::counter!("dialer_calls_total", "outcome" => f.end.outcome.clone()).increment(1);
                        if let Some(cat) = f.end.result.as_ref().and_then(|r| r.category.clone()) {
                            metrics::counter!("dialer_results_total", "category" => cat).increment(1);
                        }
                        finishing += 1;
                        let _ = cmd_tx.send(StoreCmd::Finish(Box::new(f)));
                    }
                    _ => {}
                }
            }
            tick = clock.tick() => {
                let now = Instant::now();
                engine.tick_scheduled(tick, now);
                while let Some((mh, ev)) = engine.poll_event() {
                    let Some(&h) = by_media.get(&mh) else { continue };
                    let Some(l) = live.get_mut(&h) else { continue };
                    if let MediaEvent::Amd(d) = &ev {
                        l.amd = Some(d.verdict);
                    }
                    if let Some(c) = l.conversation.as_mut() {
                        todo.push((h, c.on_media_event(now, &ev, engine.media_mut(mh))));
                    }
                }
                for (&h, l) in live.iter_mut() {
                    if let Some(c) = l.conversation.as_mut()
                        && c.poll_timeout().is_some_and(|t| t <= now)
                    {
                        todo.push((h, c.handle_timeout(now, engine.media_mut(l.media))));
                    }
                }
                for (h, a) in todo.drain(..) {
                    crate::dialogue::apply(&mut driver, h, a).await;
                }
                // New calls, as the pacer allows.
                if state == Control::Run {
                    // Two seconds of calls at the pace this node may dial now: the campaign's
                    // share or its trunks' shares, whichever is lower. Claiming more would
                    // keep contacts from other nodes.
                    let trunks_cps: f64 = cfg.trunks.iter().map(|t| lock(&t.pacer).limits().0).sum();
                    let rate = lock(&cfg.pacer).limits().0.min(trunks_cps);
                    let want = (rate * 2.0).ceil().min(1000.0) as usize + 4;
                    if ready.len() < want && !claiming && now >= next_claim {
                        claiming = true;
                        let _ = cmd_tx.send(StoreCmd::Claim((want * 2).min(500) as u32));
                    }
                    let nowc = Utc::now();
                    while let Some(c) = ready.front() {
                        match cfg.policy.decide(&contact_state(c), nowc) {
                            Decision::CallNow => {
                                if !lock(&cfg.pacer).try_acquire(now) {
                                    break;
                                }
                                let Some(t) = pick_trunk(&cfg.trunks, &mut credit, now, avoid.get(&c.id).copied()) else {
                                    lock(&cfg.pacer).refund();
                                    break;
                                };
                                let Some(c) = ready.pop_front() else { break };
                                starting += 1;
                                let _ = cmd_tx.send(StoreCmd::Start(Box::new(c), t));
                            }
                            Decision::NotBefore(t, _) => {
                                let id = c.id;
                                ready.pop_front();
                                let _ = cmd_tx.send(StoreCmd::Release(vec![id], Some(ms(t))));
                            }
                            Decision::Done(_) => {
                                let id = c.id;
                                ready.pop_front();
                                // Due again only far ahead; the operator sees it as pending.
                                let later = ms(nowc) + 86_400_000;
                                let _ = cmd_tx.send(StoreCmd::Release(vec![id], Some(later)));
                            }
                        }
                    }
                }
                if state == Control::Stop && !ready.is_empty() {
                    let ids = ready.drain(..).map(|c| c.id).collect();
                    let _ = cmd_tx.send(StoreCmd::Release(ids, None));
                }
                // Leases: renew what we hold; recover what dead nodes held.
                if now - last_renew >= cfg.lease / 3 {
                    last_renew = now;
                    let ids: Vec<ContactId> = live
                        .values()
                        .map(|l| l.contact.id)
                        .chain(ready.iter().map(|c| c.id))
                        .collect();
                    if !ids.is_empty() {
                        let _ = cmd_tx.send(StoreCmd::Renew(ids));
                    }
                }
                if now - last_recover >= Duration::from_secs(5) {
                    last_recover = now;
                    let _ = cmd_tx.send(StoreCmd::Recover);
                }
                if now - last_reload_check >= Duration::from_secs(2) {
                    last_reload_check = now;
                    match plan.reload() {
                        Ok(Some(p)) => {
                            tracing::info!(
                                from = %plan.script.version_id(),
                                to = %p.script.version_id(),
                                "script reloaded: new calls run the new version"
                            );
                            plan = Arc::new(p);
                            last_reload_error = None;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            if last_reload_error.as_deref() != Some(e.as_str()) {
                                tracing::warn!(error = %e, "edited script is invalid: keeping the running version");
                                last_reload_error = Some(e);
                            }
                        }
                    }
                }
                if now - last_counts >= Duration::from_secs(1) {
                    last_counts = now;
                    let _ = cmd_tx.send(StoreCmd::Counts);
                }
                progress.live = live.len();
                progress.ready = ready.len();
                progress.elapsed = started.elapsed();
                if now - last_progress >= Duration::from_millis(250) {
                    last_progress = now;
                    on_progress(&progress);
                }
                let idle = live.is_empty() && starting == 0 && finishing == 0;
                if idle && state == Control::Stop {
                    break;
                }
                if idle
                    && cfg.stop_when_done
                    && ready.is_empty()
                    && last_claim_empty
                    && progress.pending == 0
                {
                    break;
                }
            }
            Some(ev) = ev_rx.recv() => {
                match ev {
                    StoreEvent::Claimed(v) => {
                        claiming = false;
                        last_claim_empty = v.is_empty();
                        if v.is_empty() {
                            next_claim = Instant::now() + Duration::from_millis(500);
                        }
                        if state == Control::Stop {
                            let ids = v.iter().map(|c| c.id).collect();
                            let _ = cmd_tx.send(StoreCmd::Release(ids, None));
                        } else {
                            ready.extend(v);
                        }
                    }
                    StoreEvent::Started(c, attempt, trunk) => {
                        starting -= 1;
                        if state == Control::Stop {
                            // Written but not dialled: close it as failed at once.
                            release(&cfg, trunk);
                            let end = AttemptEnd {
                                now_ms: Utc::now().timestamp_millis(),
                                outcome: "failed".into(),
                                sip_status: None,
                                result: None,
                                next: store::Next::RetryAt(Utc::now().timestamp_millis()),
                            };
                            finishing += 1;
                            let _ = cmd_tx.send(StoreCmd::Finish(Box::new(Finish {
                                attempt, contact: c.id, end, opt_out: false, consent: None,
                            })));
                            continue;
                        }
                        match dial(&cfg, &plan, &mut driver, &mut engine, locals[trunk], timers, *c, attempt, trunk, next_key).await {
                            Ok((h, l)) => {
                                progress.placed += 1;
                                metrics::counter!("dialer_call_setups_total").increment(1);
                                by_media.insert(l.media, h);
                                by_key.insert(l.key, h);
                                live.insert(h, l);
                                next_key += 1;
                            }
                            Err((c, e)) => {
                                tracing::warn!(error = %e, "cannot place the call");
                                release(&cfg, trunk);
                                let end = AttemptEnd {
                                    now_ms: Utc::now().timestamp_millis(),
                                    outcome: "failed".into(),
                                    sip_status: None,
                                    result: None,
                                    next: store::Next::RetryAt(Utc::now().timestamp_millis() + 60_000),
                                };
                                finishing += 1;
                                let _ = cmd_tx.send(StoreCmd::Finish(Box::new(Finish {
                                    attempt, contact: c.id, end, opt_out: false, consent: None,
                                })));
                            }
                        }
                    }
                    StoreEvent::NotStarted(trunk) => {
                        starting -= 1;
                        release(&cfg, trunk);
                    }
                    StoreEvent::Finished { erased, consent } => {
                        finishing -= 1;
                        progress.finished += 1;
                        progress.opt_outs += u64::from(erased);
                        progress.consents += u64::from(consent);
                    }
                    StoreEvent::Lost(ids) => {
                        // Another node took them (our lease lapsed): do not dial those.
                        ready.retain(|c| !ids.contains(&c.id));
                    }
                    StoreEvent::Recovered(n) => progress.interrupted_recovered += n,
                    StoreEvent::Counts(n) => progress.pending = n,
                    StoreEvent::Error(e) => {
                        progress.store_errors += 1;
                        tracing::warn!(error = %e, "store");
                    }
                }
            }
            Some(done) = asr_rx.recv() => {
                let now = Instant::now();
                if let Some(&h) = by_key.get(&done.key)
                    && let Some(l) = live.get_mut(&h)
                    && let Some(c) = l.conversation.as_mut()
                {
                    let a = c.on_asr(now, done, engine.media_mut(l.media));
                    crate::dialogue::apply(&mut driver, h, a).await;
                }
            }
            changed = control.changed() => {
                if changed.is_err() {
                    state = Control::Stop;
                } else {
                    state = *control.borrow_and_update();
                }
                tracing::info!(?state, "campaign control");
            }
        }
    }
    driver.linger(Duration::from_millis(500)).await;
    engine.shutdown();
    drop(cmd_tx);
    let _ = store_handle.await;
    progress.live = 0;
    progress.elapsed = started.elapsed();
    on_progress(&progress);
    Ok(progress)
}

fn lock(p: &SharedPacer) -> std::sync::MutexGuard<'_, Pacer> {
    // A panic while holding a pacer cannot leave it inconsistent (plain counters).
    p.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A call on `trunk` is over (or never left): free its channels.
fn release(cfg: &RunnerConfig, trunk: usize) {
    lock(&cfg.pacer).release();
    if let Some(t) = cfg.trunks.get(trunk) {
        lock(&t.pacer).release();
    }
}

/// The next trunk by weight whose pacer allows a call now (and takes the token), skipping
/// `avoid` when another trunk exists.
#[doc(hidden)] // public for benches/schedule.rs only
pub fn pick_trunk(
    trunks: &[TrunkLine],
    credit: &mut [i64],
    now: Instant,
    avoid: Option<usize>,
) -> Option<usize> {
    // Only the trunks that can take a call now share this pick: a full trunk neither gets a
    // share nor builds up credit (which would make it take every call once it frees up).
    let n = trunks.len().min(64);
    let mut open = 0u64;
    let mut total = 0i64;
    for (i, t) in trunks.iter().enumerate().take(n) {
        if avoid == Some(i) && n > 1 {
            continue;
        }
        if lock(&t.pacer).next_token_at(now) == Some(now) {
            open |= 1 << i;
            total += i64::from(t.weight);
        }
    }
    let mut best: Option<usize> = None;
    for i in (0..n).filter(|i| open & (1 << i) != 0) {
        credit[i] += i64::from(trunks[i].weight);
        if best.is_none_or(|b| credit[i] > credit[b]) {
            best = Some(i);
        }
    }
    let i = best?;
    if lock(&trunks[i].pacer).try_acquire(now) {
        credit[i] -= total;
        Some(i)
    } else {
        // Another runner took the last token in between: nothing picked, credits restored.
        for k in (0..n).filter(|k| open & (1 << k) != 0) {
            credit[k] -= i64::from(trunks[k].weight);
        }
        None
    }
}

/// When the caps (counted in the store) hold this contact back: `Some(unix ms)` to come back
/// then; `None` to dial now.
async fn capped_until(
    store: &Store,
    policy: &Policy,
    c: &ClaimedContact,
) -> Result<Option<i64>, store::StoreError> {
    let caps = &policy.caps;
    if caps.max_per_day.is_none()
        && caps.max_across_campaigns.is_none()
        && caps.min_gap <= chrono::TimeDelta::zero()
    {
        return Ok(None);
    }
    let now = Utc::now();
    let mut st = contact_state(c);
    let tz = policy.tz_of(&st);
    let (day_start, _) = schedule::local_day_bounds(now, tz);
    let since = now - chrono::TimeDelta::days(i64::from(caps.across_campaigns_days));
    let n = store
        .attempt_counts(c.id, c.campaign_id, &c.phone_hmac, ms(day_start), ms(since))
        .await?;
    st.attempts_today = u32::try_from(n.today).unwrap_or(u32::MAX);
    st.cross_campaign_attempts = u32::try_from(n.across).unwrap_or(u32::MAX);
    st.cross_campaign_oldest = n.across_oldest_ms.and_then(DateTime::from_timestamp_millis);
    // The gap is measured from the last attempt's start (the store keeps no end per contact).
    st.last_attempt_at = c
        .last_attempt_at_ms
        .and_then(DateTime::from_timestamp_millis);
    Ok(match caps.earliest_after_caps(&st, now, tz) {
        Some((t, why)) if t > now => {
            tracing::debug!(contact = c.id.0, %why, "held back by a cap");
            Some(ms(t))
        }
        _ => None,
    })
}

fn contact_state(c: &ClaimedContact) -> schedule::ContactState {
    schedule::ContactState {
        tz: c.timezone.as_deref().and_then(|t| t.parse().ok()),
        attempts: u32::try_from(c.attempts).unwrap_or(u32::MAX),
        attempts_today: 0,
        cross_campaign_attempts: 0,
        cross_campaign_oldest: None,
        // The retry delay was applied when the last attempt ended (next_attempt_at).
        last_attempt_at: None,
        last_outcome: None,
        seed: seed_of(c.id),
    }
}

#[allow(clippy::too_many_arguments)]
async fn dial(
    cfg: &RunnerConfig,
    plan: &Arc<ScriptPlan>,
    driver: &mut SipDriver,
    engine: &mut MediaEngine,
    local: SocketAddr,
    timers: TimerConfig,
    c: ClaimedContact,
    attempt: AttemptId,
    trunk: usize,
    key: u64,
) -> Result<(CallHandle, Live), (ClaimedContact, std::io::Error)> {
    let mh = match engine.allocate() {
        Ok((mh, _)) => mh,
        Err(e) => return Err((c, e)),
    };
    let number = c.phone_e164.clone();
    let req = CallRequest {
        number,
        from: None,
        ring_timeout: cfg.ring_timeout,
        media: engine.local_media(mh, seed_of(c.id) ^ key),
        session_expires: None,
    };
    let mut call_cfg = cfg.trunks[trunk].trunk.call_config(&req, local, timers);
    call_cfg.extra_headers.push((
        sip::ATTEMPT_HEADER.to_owned(),
        format!("{}-{}", cfg.campaign.0, attempt.0),
    ));
    let h = driver.place_call(call_cfg).await;
    let recording = cfg
        .record_dir
        .as_ref()
        .filter(|_| plan.script.record())
        .map(|d| d.join(format!("{}.wav", attempt.0)));
    Ok((
        h,
        Live {
            plan: Arc::clone(plan),
            contact: c,
            attempt,
            trunk,
            media: mh,
            key,
            answered: false,
            transfer_status: None,
            amd: None,
            conversation: None,
            recording,
        },
    ))
}

/// The attempt's end and result from how the call went.
fn finish(
    cfg: &RunnerConfig,
    l: &Live,
    report: &sip::CallReport,
    progress: &mut Progress,
) -> Finish {
    let now = Utc::now();
    let dialogue = l.conversation.as_ref().and_then(|c| c.result());
    let category = dialogue.and_then(|d| d.category.clone());
    // The system outcome: what the SIP layer saw, refined by AMD for answered calls.
    let outcome = match report.outcome {
        SipOutcome::Answered if category.is_none() && l.amd == Some(Verdict::Machine) => {
            "voicemail".to_owned()
        }
        SipOutcome::Answered if category.is_none() => "no_input".to_owned(),
        o => o.as_str().to_owned(),
    };
    // The retry policy keys on the answer when there is one, else on the outcome.
    let key = category.clone().unwrap_or_else(|| outcome.clone());
    let next = cfg.policy.plan_next(
        l.contact.timezone.as_deref().and_then(|t| t.parse().ok()),
        &Outcome::from_key(&key),
        u32::try_from(l.contact.attempts + 1).unwrap_or(u32::MAX),
        now,
        seed_of(l.contact.id),
    );
    let opt_out = category.as_deref() == Some("opt_out");
    // A trunk failure another trunk may fix (503, 408, transport): try again at once, elsewhere.
    let next = match next {
        schedule::Next::RetryAt(_) if report.failover && cfg.trunks.len() > 1 => {
            schedule::Next::RetryAt(now)
        }
        n => n,
    };
    // What follows a manager_call: the transfer and how it went, or a callback to schedule.
    let transferred = l
        .conversation
        .as_ref()
        .and_then(|c| c.transferred_to.clone());
    let details = match (&transferred, category.as_deref()) {
        (Some(to), _) => Some(serde_json::json!({
            "transfer": { "to": to, "notify_status": l.transfer_status }
        })),
        (None, Some("manager_call")) => Some(serde_json::json!({ "callback": true })),
        _ => None,
    };
    *progress.by_outcome.entry(outcome.clone()).or_default() += 1;
    if let Some(c) = &category {
        *progress.by_category.entry(c.clone()).or_default() += 1;
    }
    if let Some(d) = report.duration {
        progress.talk += d;
    }
    let consent = dialogue
        .and_then(|d| d.consent)
        .filter(|&yes| yes)
        .map(|_| NewConsent {
            source: ConsentSource::PhoneCall,
            given_at_ms: ms(now),
            text_version: l.plan.script.version_id().to_owned(),
            evidence: l.recording.as_ref().map(|p| p.display().to_string()),
        });
    let result = NewResult {
        category,
        outcome: outcome.clone(),
        dtmf: dialogue.map(|d| d.dtmf.clone()).filter(|d| !d.is_empty()),
        transcript: dialogue.and_then(|d| d.transcript.clone()),
        follow_up: dialogue.and_then(|d| d.follow_up.clone()),
        confidence: dialogue.and_then(|d| d.confidence).map(f64::from),
        amd: l.amd.map(|v| v.to_string()),
        sip_status: report.sip_status.map(i64::from),
        setup_ms: report.setup.map(|d| d.as_millis() as i64),
        duration_ms: report.duration.map(|d| d.as_millis() as i64),
        script_version: dialogue.map(|d| d.script_version.clone()),
        recording_path: l
            .recording
            .as_ref()
            .filter(|_| l.answered)
            .map(|p| p.display().to_string()),
        details,
    };
    Finish {
        attempt: l.attempt,
        contact: l.contact.id,
        end: AttemptEnd {
            now_ms: ms(now),
            outcome,
            sip_status: report.sip_status.map(i64::from),
            result: Some(result),
            next: if opt_out {
                store::Next::Done
            } else {
                to_store_next(next)
            },
        },
        opt_out,
        consent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trunk::TrunkConfig;

    fn line(name: &str, weight: u32, cps: f64) -> TrunkLine {
        let mut c = TrunkConfig::from_uri("sip:127.0.0.1:5060");
        c.name = name.into();
        c.cps = cps;
        c.max_channels = 100_000;
        TrunkLine {
            pacer: Pacer::shared(cps, c.max_channels),
            trunk: c.validate().expect("valid trunk"),
            weight,
        }
    }

    #[test]
    fn trunks_share_calls_by_weight_smoothly() {
        let trunks = [line("a", 3, 1e9), line("b", 1, 1e9)];
        let mut credit = vec![0; 2];
        let now = Instant::now();
        let picks: Vec<usize> = (0..400)
            .map(|_| pick_trunk(&trunks, &mut credit, now, None).expect("a trunk"))
            .collect();
        assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 300);
        // Smooth: never more than three in a row on the heavy trunk.
        assert!(picks.windows(4).all(|w| w.contains(&1)), "{picks:?}");
    }

    #[test]
    fn a_full_trunk_leaves_the_others_their_weights_and_gains_no_credit() {
        let trunks = [line("a", 5, 1e9), line("b", 3, 1e9), line("c", 2, 1e9)];
        let mut credit = vec![0; 3];
        let now = Instant::now();
        // a has no channel left.
        {
            let mut p = lock(&trunks[0].pacer);
            *p = Pacer::new(1e9, 1);
            assert!(p.try_acquire(now));
        }
        let picks: Vec<usize> = (0..500)
            .map(|_| pick_trunk(&trunks, &mut credit, now, None).expect("b or c"))
            .collect();
        assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 0);
        assert_eq!(picks.iter().filter(|&&i| i == 1).count(), 300, "b:c = 3:2");
        // a frees up: the split is 5:3:2 again from the next pick, with no catch-up burst.
        lock(&trunks[0].pacer).release();
        *lock(&trunks[0].pacer) = Pacer::new(1e9, 100_000);
        let picks: Vec<usize> = (0..10)
            .map(|_| pick_trunk(&trunks, &mut credit, now, None).expect("a trunk"))
            .collect();
        assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 5, "{picks:?}");
    }

    #[test]
    fn a_trunk_without_tokens_or_to_avoid_is_skipped() {
        // Trunk a: one call per second (its one token goes at once); b: plenty.
        let trunks = [line("a", 5, 1.0), line("b", 1, 1e9)];
        let mut credit = vec![0; 2];
        let now = Instant::now();
        assert_eq!(pick_trunk(&trunks, &mut credit, now, None), Some(0));
        for _ in 0..10 {
            assert_eq!(pick_trunk(&trunks, &mut credit, now, None), Some(1));
        }
        // After a failure a may fix: b is avoided while a has tokens again.
        let later = now + Duration::from_secs(2);
        assert_eq!(pick_trunk(&trunks, &mut credit, later, Some(0)), Some(1));
        assert_eq!(pick_trunk(&trunks, &mut credit, later, Some(1)), Some(0));
        // One trunk only: avoiding it would stop the campaign, so it is used.
        let one = [line("c", 1, 1e9)];
        let mut credit = vec![0];
        assert_eq!(pick_trunk(&one, &mut credit, now, Some(0)), Some(0));
        // Nobody has a token: None, and the credits are as before.
        let dry = [line("d", 1, 1.0), line("e", 1, 1.0)];
        let mut credit = vec![0; 2];
        assert!(pick_trunk(&dry, &mut credit, now, None).is_some());
        assert!(pick_trunk(&dry, &mut credit, now, None).is_some());
        let before = credit.clone();
        assert_eq!(pick_trunk(&dry, &mut credit, now, None), None);
        assert_eq!(credit, before);
    }

    #[tokio::test]
    async fn caps_hold_a_contact_back_by_the_store_counts() {
        use crate::testutil::{attempt, campaign_with_contact, claim};
        let (store, camp) = campaign_with_contact(Some("Europe/Kyiv")).await;
        let mut policy: Policy = toml::from_str(
            r#"
            default_tz = "Europe/Kyiv"
            [window]
            mon = ["00:00-24:00"]
            tue = ["00:00-24:00"]
            wed = ["00:00-24:00"]
            thu = ["00:00-24:00"]
            fri = ["00:00-24:00"]
            sat = ["00:00-24:00"]
            sun = ["00:00-24:00"]
            [caps]
            max_per_day = 2
            min_gap = "1s"
            "#,
        )
        .expect("policy");
        for _ in 0..2 {
            // Past the 1 s minimum gap since the previous attempt.
            tokio::time::sleep(Duration::from_millis(1_100)).await;
            let c = claim(&store, camp).await;
            assert_eq!(capped_until(&store, &policy, &c).await.expect("caps"), None);
            attempt(&store, camp, &c, "busy", None).await;
        }
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let c = claim(&store, camp).await;
        // Two attempts today: the daily cap of 2 holds it until the next local midnight.
        let until = capped_until(&store, &policy, &c)
            .await
            .expect("caps")
            .expect("capped");
        let tz: chrono_tz::Tz = "Europe/Kyiv".parse().expect("zone");
        let (_, midnight) = schedule::local_day_bounds(Utc::now(), tz);
        assert_eq!(until, midnight.timestamp_millis());
        policy.caps.max_per_day = Some(3);
        assert_eq!(capped_until(&store, &policy, &c).await.expect("caps"), None);
    }
}
