//! `dialer call`: one call, SIP and media, in one loop on one task.
//!
//! The loop waits on three things: the SIP driver's next event, the media clock (every 20 ms,
//! one tick for the call's audio), and Ctrl-C. Hang-up decisions (prompt played, digit
//! timeout, RTP timeout, `--hangup-after`) are taken here.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use engine::driver::{DriverConfig, DriverEvent, SipDriver};
use engine::media::{MediaConfig, MediaEngine, MediaHandle};
use engine::transport::TransportConfig;
use engine::trunk::CallRequest;
use media::amd::{AmdConfig, Decision};
use media::session::{MediaEvent, MediaParams, MediaStats};
use sip::sdp::{self, Negotiated};
use sip::{CallEvent, CallReport, EndpointConfig, Outcome, TimerConfig};

use crate::CallPlan;
use engine::dialogue::{AsrDone, Conversation};

/// Everything `dialer call` reports.
#[derive(Debug)]
pub(crate) struct CallResult {
    pub report: CallReport,
    pub dtmf: String,
    pub amd: Option<Decision>,
    pub rtp: Option<MediaStats>,
    pub media_timeout: bool,
    pub recording: Option<PathBuf>,
    /// The script's result (scripted calls).
    pub dialogue: Option<script::DialogueResult>,
    pub asr_latencies: Vec<Duration>,
    pub transferred_to: Option<String>,
}

impl CallResult {
    pub fn to_json(&self) -> String {
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
        let r = &self.report;
        let (outcome, reason) = if self.media_timeout {
            (Outcome::Failed.as_str(), Some("media timeout".to_owned()))
        } else {
            (r.outcome.as_str(), r.reason.clone())
        };
        let mut out = serde_json::json!({
            "outcome": outcome,
            "sip_status": r.sip_status,
            "reason": reason,
            "reason_header": r.reason_header,
            "setup_ms": ms(r.setup),
            "duration_ms": ms(r.duration).or(Some(0)),
            "hangup_by": r.hangup_by.map(|h| h.as_str()),
            "dtmf": self.dtmf,
            "amd": self.amd.as_ref().map(|d| serde_json::json!({
                "verdict": verdict_str(d),
                "cause": d.cause.as_str(),
                "after_ms": d.elapsed.as_millis() as u64,
            })),
            "rtp": self.rtp.map(|s| serde_json::json!({
                "sent": s.sent,
                "received": s.received,
                "lost": s.lost,
                "late": s.late,
                "jitter_ms": (s.jitter_ms * 10.0).round() / 10.0,
            })),
            "recording": self.recording.as_ref().map(|p| p.display().to_string()),
        });
        if let (Some(d), Some(obj)) = (&self.dialogue, out.as_object_mut()) {
            // Scripted calls: the answer. The digits are the ones the script took as answers.
            obj.insert("category".into(), d.category.clone().into());
            obj.insert("transcript".into(), d.transcript.clone().into());
            obj.insert("follow_up".into(), d.follow_up.clone().into());
            obj.insert(
                "confidence".into(),
                d.confidence
                    .map(|c| (f64::from(c) * 1000.0).round() / 1000.0)
                    .into(),
            );
            obj.insert("script_version".into(), d.script_version.clone().into());
            obj.insert("language".into(), d.language.map(|l| l.code()).into());
            obj.insert("consent".into(), d.consent.into());
            obj.insert("asr_unavailable".into(), d.asr_unavailable.into());
            obj.insert(
                "answered_by".into(),
                d.answered_by
                    .map(|a| format!("{a:?}").to_lowercase())
                    .into(),
            );
            obj.insert(
                "script_end".into(),
                format!("{:?}", d.end).to_lowercase().into(),
            );
            obj.insert("transfer".into(), self.transferred_to.clone().into());
            obj.insert(
                "asr_latency_ms".into(),
                self.asr_latencies
                    .iter()
                    .map(|l| l.as_millis() as u64)
                    .collect::<Vec<_>>()
                    .into(),
            );
        }
        out.to_string()
    }
}

fn verdict_str(d: &Decision) -> &'static str {
    match d.verdict {
        media::amd::Verdict::Human => "human",
        media::amd::Verdict::Machine => "machine",
        media::amd::Verdict::NotSure => "not_sure",
    }
}

/// State of the running call on the application side.
struct Flow {
    handle: MediaHandle,
    started_media: bool,
    dtmf: String,
    amd: Option<Decision>,
    dtmf_deadline: Option<Instant>,
    media_timeout: bool,
    hangup_requested: bool,
    conversation: Option<Conversation>,
}

pub(crate) async fn run(plan: CallPlan) -> anyhow::Result<CallResult> {
    let mut driver = SipDriver::bind(DriverConfig {
        transport: TransportConfig {
            bind: plan.bind,
            ..TransportConfig::default()
        },
        endpoint: EndpointConfig {
            seed: plan.seed,
            ..EndpointConfig::default()
        },
    })
    .await
    .with_context(|| format!("cannot bind SIP sockets on {}", plan.bind))?;
    let local = driver
        .local_addr_towards(&plan.trunk.dest())
        .await
        .context("cannot find our address towards the trunk")?;
    let mut media_engine = MediaEngine::new(MediaConfig::new(local.ip()));
    let (handle, rtp_addr) = media_engine.allocate().context("cannot bind an RTP port")?;
    let local_media = sdp::LocalMedia::new(rtp_addr.ip(), rtp_addr.port(), plan.seed & 0xFFFF_FFFF);
    let req = CallRequest {
        number: plan.number.clone(),
        from: plan.from.clone(),
        ring_timeout: plan.ring_timeout,
        media: Some(local_media),
        session_expires: plan.session_expires,
    };
    let cfg = plan.trunk.call_config(&req, local, TimerConfig::default());
    let started = Instant::now();
    let call = driver.place_call(cfg).await;
    tracing::info!(trunk = %plan.trunk.cfg.name, "call placed");

    let mut flow = Flow {
        handle,
        started_media: false,
        dtmf: String::new(),
        amd: None,
        dtmf_deadline: None,
        media_timeout: false,
        hangup_requested: false,
        conversation: None,
    };
    let (asr_tx, mut asr_rx) = tokio::sync::mpsc::unbounded_channel::<AsrDone>();
    let mut transfer_requested = false;
    // One media clock for all calls: absolute 20 ms deadlines on a timer thread (no drift,
    // no 1 ms timer-wheel rounding; see engine::clock).
    let mut clock = engine::clock::MediaClock::start(
        Instant::now(),
        Duration::from_millis(u64::from(media::FRAME_MS)),
    )
    .context("cannot start the media clock")?;
    let mut interrupted = false;
    loop {
        let next = tokio::select! {
            ev = driver.next_event() => ev,
            _ = clock.tick() => {
                let now = Instant::now();
                media_engine.tick(now);
                while let Some((_, ev)) = media_engine.poll_event() {
                    if let Some(c) = flow.conversation.as_mut() {
                        let a = c.on_media_event(now, &ev, media_engine.media_mut(flow.handle));
                        act(&mut driver, call, &mut flow, &mut transfer_requested, a).await;
                    }
                    on_media_event(&plan, &mut flow, &mut media_engine, now, ev);
                }
                let due = flow.dtmf_deadline.is_some_and(|d| now >= d);
                if (due || flow.media_timeout) && !flow.hangup_requested {
                    flow.hangup_requested = true;
                    let _ = driver.hangup(call).await;
                }
                continue;
            }
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                let _ = driver.hangup(call).await;
                continue;
            }
            Some(done) = asr_rx.recv() => {
                let now = Instant::now();
                if let Some(c) = flow.conversation.as_mut() {
                    let a = c.on_asr(now, done, media_engine.media_mut(flow.handle));
                    act(&mut driver, call, &mut flow, &mut transfer_requested, a).await;
                }
                continue;
            }
            _ = sleep_until(flow.conversation.as_ref().and_then(Conversation::poll_timeout)) => {
                let now = Instant::now();
                if let Some(c) = flow.conversation.as_mut() {
                    let a = c.handle_timeout(now, media_engine.media_mut(flow.handle));
                    act(&mut driver, call, &mut flow, &mut transfer_requested, a).await;
                }
                continue;
            }
        };
        let (h, ev) = match next {
            Some(DriverEvent::Call(h, ev)) => (h, ev),
            Some(DriverEvent::Agent(..)) => continue,
            None => anyhow::bail!("the SIP transport stopped"),
        };
        if h != call {
            continue;
        }
        let now = Instant::now();
        match ev {
            CallEvent::Answered { media, .. } => {
                let limit = plan.hangup_after.unwrap_or(Duration::from_secs(3600));
                driver.hangup_at(call, now + limit);
                tracing::info!(setup_ms = started.elapsed().as_millis() as u64, "answered");
                match media {
                    Some(neg) => start_media(&plan, &mut flow, &mut media_engine, now, &neg),
                    None => tracing::warn!("the answer carries no usable SDP: no media"),
                }
                if let Some(sp) = &plan.script {
                    let tag = format!("{:x}", plan.seed & 0xFFFF_FFFF);
                    let (c, a) = Conversation::start(
                        std::sync::Arc::clone(sp),
                        now,
                        asr_tx.clone(),
                        0,
                        tag,
                        media_engine.media_mut(flow.handle),
                    );
                    flow.conversation = Some(c);
                    act(&mut driver, call, &mut flow, &mut transfer_requested, a).await;
                }
                if plan.prompt.is_none()
                    && let Some(t) = plan.dtmf_timeout
                {
                    flow.dtmf_deadline = Some(now + t);
                }
            }
            CallEvent::RemoteSdp {
                media: Some(neg), ..
            } => {
                if let Some(m) = media_engine.media_mut(flow.handle) {
                    m.update(
                        engine::media::codec_from_sdp(neg.codec),
                        neg.telephone_event_pt,
                        neg.remote_rtp,
                        engine::media::direction_from_sdp(neg.direction),
                    );
                }
            }
            CallEvent::Dtmf { digit, .. } => {
                if let Some(m) = media_engine.media_mut(flow.handle) {
                    m.sip_info_digit(now, digit);
                }
            }
            CallEvent::Progress { status, .. } => tracing::debug!(status, "progress"),
            CallEvent::ReferProgress { status, done } => {
                tracing::info!(status, done, "transfer progress");
                // The transfer went through (or failed for good): our leg is done.
                if done && !flow.hangup_requested {
                    flow.hangup_requested = true;
                    let _ = driver.hangup(call).await;
                }
            }
            CallEvent::Ended(report) => {
                tracing::info!(outcome = %report.outcome, status = ?report.sip_status, "call ended");
                // Digits still queued in the media layer belong to this call.
                media_engine.tick(Instant::now());
                while let Some((_, ev)) = media_engine.poll_event() {
                    on_media_event(&plan, &mut flow, &mut media_engine, now, ev);
                }
                if let Some(c) = flow.conversation.as_mut()
                    && !c.is_finished()
                {
                    c.on_hangup(now);
                }
                let rtp = media_engine.release(flow.handle);
                media_engine.shutdown();
                // Answer retransmissions for a moment (a lost ACK or 200 OK on UDP would
                // otherwise leave the far end retrying) and let queued TCP writes out.
                driver.linger(Duration::from_secs(1)).await;
                return Ok(CallResult {
                    report,
                    dtmf: flow.dtmf,
                    amd: flow.amd,
                    rtp: rtp.filter(|_| flow.started_media),
                    media_timeout: flow.media_timeout,
                    recording: plan.record.clone().filter(|_| flow.started_media),
                    dialogue: flow.conversation.as_ref().and_then(|c| c.result().cloned()),
                    asr_latencies: flow
                        .conversation
                        .as_ref()
                        .map(|c| c.asr_latencies.clone())
                        .unwrap_or_default(),
                    transferred_to: flow
                        .conversation
                        .as_ref()
                        .and_then(|c| c.transferred_to.clone()),
                });
            }
            other => tracing::debug!(event = ?other, "call event"),
        }
    }
}

fn start_media(
    plan: &CallPlan,
    flow: &mut Flow,
    engine: &mut MediaEngine,
    now: Instant,
    neg: &Negotiated,
) {
    let mut params = MediaParams::new(
        engine::media::codec_from_sdp(neg.codec),
        neg.telephone_event_pt,
        neg.remote_rtp,
        plan.seed.rotate_left(17),
    );
    params.direction = engine::media::direction_from_sdp(neg.direction);
    params.amd = Some(AmdConfig::default());
    if plan.script.is_some() {
        // Utterances end after 700 ms of quiet (barge-in still reacts within 60 ms).
        params.vad = Some(media::vad::VadConfig::endpointing());
    }
    params.rtp_timeout = plan.rtp_timeout;
    params.record = plan.record.is_some();
    engine.start(flow.handle, now, params, plan.record.clone());
    flow.started_media = true;
    if let Some(m) = engine.media_mut(flow.handle) {
        if let Some(p) = plan.prompt.as_ref().filter(|_| plan.script.is_none()) {
            m.play(p.clone());
        }
        if let Some(d) = &plan.send_dtmf {
            m.send_digits(d);
        }
    }
}

fn on_media_event(
    plan: &CallPlan,
    flow: &mut Flow,
    _engine: &mut MediaEngine,
    now: Instant,
    ev: MediaEvent,
) {
    match ev {
        MediaEvent::Digit { digit, source } => {
            tracing::debug!(?source, "digit");
            flow.dtmf.push(digit);
            if flow.dtmf_deadline.is_some()
                && let Some(t) = plan.dtmf_timeout
            {
                flow.dtmf_deadline = Some(now + t);
            }
        }
        MediaEvent::PromptFinished => {
            if let Some(t) = plan.dtmf_timeout {
                flow.dtmf_deadline = Some(now + t);
            }
        }
        MediaEvent::Amd(d) => {
            tracing::info!(verdict = verdict_str(&d), cause = %d.cause.as_str(), "answering-machine detection");
            flow.amd = Some(d);
        }
        MediaEvent::RtpTimeout => {
            tracing::info!("no RTP: hanging up");
            flow.media_timeout = true;
        }
        other => tracing::debug!(event = ?other, "media event"),
    }
}

/// Carry out what the script asked of the call.
async fn act(
    driver: &mut SipDriver,
    call: sip::CallHandle,
    flow: &mut Flow,
    transfer_requested: &mut bool,
    a: engine::dialogue::Actions,
) {
    if let Some(target) = a.transfer
        && !*transfer_requested
    {
        *transfer_requested = true;
        if let Err(e) = driver.refer(call, &target).await {
            tracing::warn!(error = %e, "transfer refused: hanging up");
            flow.hangup_requested = true;
            let _ = driver.hangup(call).await;
        }
        return;
    }
    if a.hangup && !flow.hangup_requested {
        flow.hangup_requested = true;
        let _ = driver.hangup(call).await;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
