//! `dialer simulate`: a crowd of callees answering over real SIP (UDP and TCP on one port) and
//! real RTP, for the demo, the tests and the load benches.
//!
//! Each incoming INVITE draws a persona by weight (a personas file, or the built-in mix of
//! `sim::Crowd::builtin`, documented in `config/personas.toml`). The protocol and the personas'
//! behaviour are sans-IO in `sim`: the UAS ([`sim::Uas`] in driven mode) answers with the call's
//! own RTP address, and a [`sim::Callee`] per call says what to play, which digits to key and
//! when to hang up. This file only owns IO, in one task and one loop:
//!
//! ```text
//! loop {
//!     select! {
//!         msg  = transport.recv()          => uas.handle_message(now, ..)
//!         _    = sleep_until(uas timers)   => uas.handle_timeout(now)
//!         tick = media clock (20 ms)       => media.tick(now) for all calls; callees' due actions
//!         SIGINT / SIGTERM / --duration    => hang up every call, summary
//!     }
//!     uas events: Incoming → draw persona, allocate RTP, accept; Answered → start media;
//!                 Ended → release media
//!     send uas output
//! }
//! ```
//!
//! There is no task and no timer per call: one media clock ([`MediaEngine::tick`]) sends every
//! call's frame, the UAS keeps one timer heap, callees are polled on the clock. Nothing here
//! allocates per packet (prompts are rendered once per persona and shared).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use engine::media::{MediaConfig, MediaEngine, MediaHandle, SocketMode};
use engine::transport::{SipTransport, TransportConfig, TransportEvent};
use media::session::MediaParams;
use sim::callee::{Action, Callee, Crowd, DtmfMode};
use sim::{EndReason, Persona, Uas, UasCallId, UasConfig, UasEvent};
use sip::IdGen;
use sip::sdp::Negotiated;
use tokio::signal::unix::{SignalKind, signal};

/// Open files wanted: one RTP socket per call plus SIP connections, for 4,000+ calls.
const WANTED_NOFILE: u64 = 65_536;
/// After a stop, how long live calls get to take our BYE (and we to absorb retransmissions).
const STOP_GRACE: Duration = Duration::from_secs(2);
/// After the last call of `--max-calls` ended: answer stray retransmissions this long.
const LINGER: Duration = Duration::from_millis(300);

#[derive(Debug, clap::Args)]
pub(crate) struct SimulateArgs {
    /// Where to answer SIP, UDP and TCP on the same port.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:5070")]
    listen: SocketAddr,
    /// Personas file (TOML, see config/personas.toml); default: the built-in mix, synthetic
    /// voices, no WAV needed.
    #[arg(long, value_name = "FILE")]
    personas: Option<PathBuf>,
    /// Address of the RTP sockets, put in the SDP answers (default: the --listen IP, or
    /// 127.0.0.1 when that is a wildcard).
    #[arg(long, value_name = "IP")]
    rtp_ip: Option<IpAddr>,
    /// RTP port range (even ports carry RTP).
    #[arg(long, value_name = "MIN-MAX", default_value = "40000-59999")]
    rtp_ports: String,
    /// `per-call`: an RTP port pair per call; `shared`: one pair for all calls, batched
    /// system calls, calls told apart by address and announced SSRC (see `engine::media`).
    #[arg(long, value_name = "MODE", default_value = "per-call")]
    rtp_sockets: SocketMode,
    /// Threads of the media clock (calls spread round robin).
    #[arg(long, value_name = "N", default_value_t = 1)]
    media_threads: usize,
    /// Seed of persona draws, SIP tags and RTP SSRCs (random by default).
    #[arg(long)]
    seed: Option<u64>,
    /// Take this many calls (later ones get 503), then exit once they have all ended.
    #[arg(long, value_name = "N")]
    max_calls: Option<u64>,
    /// Run this long, then hang up the live calls and exit.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Hang up a call that receives no RTP for this long (the caller is gone).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    rtp_timeout: f64,
    /// Time every RTP packet sent and report the timing in the summary (`send_timing`).
    #[arg(long)]
    measure_send: bool,
    /// Append one JSON line per call to FILE, written as it happens: `{"ev":"invite",
    /// "call_id", "attempt" (the caller's X-Dialer-Attempt tag), "persona", "at_ms"}` when a
    /// new INVITE arrives, `{"ev":"refer", "call_id", "target" (the Refer-To URI), "at_ms"}`
    /// when the caller transfers the call (REFER accepted) and `{"ev":"end", "call_id",
    /// "reason", "at_ms"}` when it ends; the callee's own record, to check a dialer against
    /// (no call lost, none placed twice, transfers made).
    #[arg(long, value_name = "FILE")]
    call_log: Option<PathBuf>,
}

/// Validated arguments.
#[derive(Debug)]
struct Plan {
    listen: SocketAddr,
    crowd: Crowd,
    rtp_ip: IpAddr,
    rtp_ports: (u16, u16),
    rtp_sockets: SocketMode,
    media_threads: usize,
    seed: u64,
    max_calls: Option<u64>,
    duration: Option<Duration>,
    rtp_timeout: Duration,
    measure_send: bool,
    call_log: Option<PathBuf>,
}

impl Plan {
    fn from_args(a: &SimulateArgs) -> Result<Plan, String> {
        let crowd = match &a.personas {
            Some(path) => sim::config::load(path).map_err(|e| e.to_string())?,
            None => Crowd::builtin(),
        };
        let rtp_ports = parse_range(&a.rtp_ports)
            .ok_or_else(|| format!("invalid --rtp-ports {:?}: expected MIN-MAX, e.g. 40000-59999 (1024..=65534, MIN < MAX)", a.rtp_ports))?;
        let secs = |name: &str, v: f64| -> Result<Duration, String> {
            if v.is_finite() && (0.0..=31_536_000.0).contains(&v) {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(format!("invalid {name} {v}: expected seconds >= 0"))
            }
        };
        let rtp_timeout = secs("--rtp-timeout", a.rtp_timeout)?;
        if rtp_timeout < Duration::from_secs(1) {
            return Err("invalid --rtp-timeout: at least 1 second".into());
        }
        if !(1..=engine::media::MAX_THREADS).contains(&a.media_threads) {
            return Err(format!(
                "invalid --media-threads {}: expected 1..={}",
                a.media_threads,
                engine::media::MAX_THREADS
            ));
        }
        if a.max_calls == Some(0) {
            return Err("invalid --max-calls 0: at least 1".into());
        }
        let rtp_ip = a.rtp_ip.unwrap_or(if a.listen.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            a.listen.ip()
        });
        if rtp_ip.is_unspecified() {
            return Err("invalid --rtp-ip: a wildcard cannot go in SDP".into());
        }
        Ok(Plan {
            listen: a.listen,
            crowd,
            rtp_ip,
            rtp_ports,
            rtp_sockets: a.rtp_sockets,
            media_threads: a.media_threads,
            seed: a.seed.unwrap_or_else(crate::random_seed),
            max_calls: a.max_calls,
            duration: a.duration.map(|d| secs("--duration", d)).transpose()?,
            rtp_timeout,
            measure_send: a.measure_send,
            call_log: a.call_log.clone(),
        })
    }
}

fn parse_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (1024 <= a && a < b && b <= 65534).then_some((a, b))
}

/// `dialer simulate`: exit 0 after a clean stop, 2 for bad arguments or personas, 1 when the
/// sockets cannot be bound.
pub(crate) fn main(runtime: &tokio::runtime::Runtime, args: SimulateArgs) -> ExitCode {
    let plan = match Plan::from_args(&args) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("dialer simulate: {msg}");
            return ExitCode::from(2);
        }
    };
    raise_nofile();
    match runtime.block_on(run(plan)) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dialer simulate: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// One RTP socket per call: raise the soft open-files limit towards the hard one.
pub(crate) fn raise_nofile() {
    match rlimit::increase_nofile_limit(WANTED_NOFILE) {
        Ok(n) if n < 8192 => tracing::warn!(
            limit = n,
            "open files limited to {n}: about {} concurrent calls",
            n.saturating_sub(64)
        ),
        Ok(n) => tracing::debug!(limit = n, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
}

/// One live call of the crowd.
#[derive(Debug)]
struct Live {
    call_id: String,
    profile: usize,
    callee: Callee,
    media: Option<MediaHandle>,
}

/// Totals for the summary line.
#[derive(Debug, Default)]
struct Counters {
    by_persona: Vec<u64>,
    calls: u64,
    answered: u64,
    refused: u64,
    ended: u64,
    caller_bye: u64,
    callee_bye: u64,
    digits_sent: u64,
    max_live: usize,
    /// RTP lost on the way in (sequence gaps), summed over ended calls.
    rtp_lost: u64,
}

/// The crowd: UAS, media, personas.
struct Sim {
    uas: Uas,
    media: MediaEngine,
    crowd: Crowd,
    rng: IdGen,
    calls: HashMap<UasCallId, Live>,
    by_media: HashMap<MediaHandle, UasCallId>,
    rtp_timeout: Duration,
    /// New calls are taken (else 503).
    accepting: bool,
    max_calls: Option<u64>,
    n: Counters,
    /// Hang-ups decided on this tick (kept to reuse its capacity).
    hangups: Vec<UasCallId>,
    /// `--call-log`: one line per event, unbuffered (it must survive our own kill).
    call_log: Option<std::fs::File>,
}

impl Sim {
    fn on_uas_event(&mut self, now: Instant, ev: UasEvent) {
        match ev {
            UasEvent::Incoming {
                call,
                call_id,
                attempt,
                ..
            } => self.incoming(now, call, call_id, attempt),
            UasEvent::Answered { call, media } => self.answered(now, call, media),
            UasEvent::MediaUpdated { call, media } => {
                if let Some(h) = self.calls.get(&call).and_then(|l| l.media)
                    && let Some(m) = self.media.media_mut(h)
                {
                    m.update(
                        engine::media::codec_from_sdp(media.codec),
                        media.telephone_event_pt,
                        media.remote_rtp,
                        engine::media::direction_from_sdp(media.direction),
                    );
                }
            }
            UasEvent::Ended { call, reason } => self.ended(call, reason),
            UasEvent::Referred { call, target } => self.referred(call, target),
        }
    }

    /// The caller transferred the call (REFER accepted; the UAS reports it by NOTIFY).
    fn referred(&mut self, call: UasCallId, target: String) {
        let Some(call_id) = self.calls.get(&call).map(|l| l.call_id.clone()) else {
            return;
        };
        tracing::info!(call = call.0, %target, "call transferred");
        self.log(
            serde_json::json!({"ev": "refer", "call_id": call_id, "target": target,
            "at_ms": chrono::Utc::now().timestamp_millis()}),
        );
    }

    fn log(&mut self, line: serde_json::Value) {
        use std::io::Write as _;
        if let Some(f) = self.call_log.as_mut()
            && let Err(e) = writeln!(f, "{line}")
        {
            tracing::warn!(error = %e, "call log: cannot write; logging stops");
            self.call_log = None;
        }
    }

    fn incoming(
        &mut self,
        now: Instant,
        call: UasCallId,
        call_id: String,
        attempt: Option<String>,
    ) {
        let at_ms = chrono::Utc::now().timestamp_millis();
        let full = self.max_calls.is_some_and(|m| self.n.calls >= m);
        let drawn = if self.accepting && !full {
            self.crowd.draw(&mut self.rng)
        } else {
            None
        };
        let Some(i) = drawn else {
            self.n.refused += 1;
            self.log(
                serde_json::json!({"ev": "invite", "call_id": call_id, "attempt": attempt,
                "persona": null, "at_ms": at_ms}),
            );
            self.uas.accept(now, call, Persona::ServerError, None);
            return;
        };
        let profile = std::sync::Arc::clone(&self.crowd.profiles()[i]);
        let mut local = None;
        let mut handle = None;
        if profile.answers() {
            match self.media.allocate() {
                Ok((h, _)) => {
                    handle = Some(h);
                    local = self.media.local_media(h, self.rng.next_u64() >> 1);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no RTP port: refusing the call");
                    self.log(serde_json::json!({"ev": "invite", "call_id": call_id,
                        "attempt": attempt, "persona": null, "at_ms": at_ms}));
                    self.n.refused += 1;
                    self.uas.accept(now, call, Persona::ServerError, None);
                    return;
                }
            }
        }
        self.n.calls += 1;
        self.n.by_persona[i] += 1;
        tracing::info!(call = call.0, persona = %profile.name, "incoming call");
        self.log(
            serde_json::json!({"ev": "invite", "call_id": call_id, "attempt": attempt,
            "persona": profile.name, "at_ms": at_ms}),
        );
        self.uas.accept(now, call, profile.persona.clone(), local);
        if let Some(h) = handle {
            self.by_media.insert(h, call);
        }
        self.calls.insert(
            call,
            Live {
                call_id,
                profile: i,
                callee: Callee::new(profile),
                media: handle,
            },
        );
        self.n.max_live = self.n.max_live.max(self.calls.len());
    }

    fn answered(&mut self, now: Instant, call: UasCallId, neg: Option<Negotiated>) {
        let Some(live) = self.calls.get_mut(&call) else {
            return;
        };
        self.n.answered += 1;
        if let (Some(h), Some(neg)) = (live.media, neg) {
            let mut p = MediaParams::new(
                engine::media::codec_from_sdp(neg.codec),
                neg.telephone_event_pt,
                neg.remote_rtp,
                self.rng.next_u64(),
            );
            p.direction = engine::media::direction_from_sdp(neg.direction);
            p.remote_ssrc = neg.remote_ssrc;
            p.inband_dtmf = false;
            p.vad = None; // the callee never listens for speech
            p.rtp_timeout = self.rtp_timeout;
            self.media.start(h, now, p, None);
        }
        live.callee.on_answered(now);
        if drive(&mut self.media, &mut self.n, live) {
            self.uas.hangup(now, call);
        }
    }

    fn ended(&mut self, call: UasCallId, reason: EndReason) {
        let Some(live) = self.calls.remove(&call) else {
            return;
        };
        self.n.ended += 1;
        let why = match reason {
            EndReason::CallerBye => "caller_bye".to_owned(),
            EndReason::CalleeBye => "callee_bye".to_owned(),
            EndReason::Refused(code) => format!("refused_{code}"),
        };
        self.log(
            serde_json::json!({"ev": "end", "call_id": live.call_id, "reason": why,
            "at_ms": chrono::Utc::now().timestamp_millis()}),
        );
        match reason {
            EndReason::CallerBye => self.n.caller_bye += 1,
            EndReason::CalleeBye => self.n.callee_bye += 1,
            EndReason::Refused(_) => {}
        }
        if let Some(h) = live.media {
            self.by_media.remove(&h);
            if let Some(st) = self.media.release(h) {
                self.n.rtp_lost += st.lost;
            }
        }
        tracing::info!(
            call = call.0,
            persona = %self.crowd.profiles()[live.profile].name,
            reason = ?reason,
            "call ended"
        );
    }

    /// The media clock: every call's RTP, then the callees whose script has something due.
    fn tick(&mut self, scheduled: Instant, now: Instant) {
        self.media.tick_scheduled(scheduled, now);
        while let Some((h, ev)) = self.media.poll_event() {
            if let Some(live) = self.by_media.get(&h).and_then(|id| self.calls.get_mut(id)) {
                live.callee.on_media_event(now, &ev);
            }
        }
        let mut hangups = std::mem::take(&mut self.hangups);
        for (&id, live) in &mut self.calls {
            if live.callee.poll_timeout().is_some_and(|t| t <= now) {
                live.callee.handle_timeout(now);
                if drive(&mut self.media, &mut self.n, live) {
                    hangups.push(id);
                }
            }
        }
        for id in hangups.drain(..) {
            self.uas.hangup(now, id);
        }
        self.hangups = hangups;
    }

    /// Stop taking calls and hang up every live one.
    fn stop(&mut self, now: Instant) {
        self.accepting = false;
        let ids: Vec<UasCallId> = self.calls.keys().copied().collect();
        for id in ids {
            self.uas.hangup(now, id);
        }
    }

    fn summary(&self, elapsed: Duration) -> String {
        let by_persona: serde_json::Map<String, serde_json::Value> = self
            .crowd
            .profiles()
            .iter()
            .zip(&self.n.by_persona)
            .map(|(p, n)| (p.name.clone(), serde_json::Value::from(*n)))
            .collect();
        let m = self.media.stats();
        let u = self.uas.stats();
        let ms = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let timing = self.media.send_timing().map(|t| {
            serde_json::json!({
                "lateness_ms": { "p50": ms(&t.lateness_us, 0.5), "p99": ms(&t.lateness_us, 0.99), "max": t.lateness_us.max() as f64 / 1000.0 },
                "gap_error_ms": { "p50": ms(&t.gap_error_us, 0.5), "p99": ms(&t.gap_error_us, 0.99), "max": t.gap_error_us.max() as f64 / 1000.0 },
            })
        });
        serde_json::json!({
            "calls": self.n.calls,
            "by_persona": by_persona,
            "answered": self.n.answered,
            "ended": self.n.ended,
            "hangup_by_caller": self.n.caller_bye,
            "hangup_by_callee": self.n.callee_bye,
            "refused": self.n.refused,
            "live": self.calls.len(),
            "max_live": self.n.max_live,
            "digits_sent": self.n.digits_sent,
            "rtp": {
                "packets_in": m.packets_received,
                "packets_out": m.packets_sent,
                "lost_in": self.n.rtp_lost,
                "send_errors": m.send_errors,
                "recv_syscalls": m.recv_syscalls,
                "send_syscalls": m.send_syscalls,
                "unrouted": m.unrouted,
                "send_timing": timing,
            },
            "sip": {
                "received": u.received,
                "parse_errors": u.parse_errors,
            },
            "elapsed_ms": elapsed.as_millis() as u64,
        })
        .to_string()
    }
}

/// Apply the callee's due actions to its media; true when it wants to hang up.
fn drive(media: &mut MediaEngine, n: &mut Counters, live: &mut Live) -> bool {
    let mut hangup = false;
    while let Some(action) = live.callee.poll_action() {
        let m = live.media.and_then(|h| media.media_mut(h));
        match action {
            Action::Play(prompt) => {
                if let Some(m) = m {
                    m.play(prompt);
                }
            }
            Action::SendDigits {
                digits,
                mode,
                tones,
            } => {
                n.digits_sent += digits.chars().count() as u64;
                if mode == DtmfMode::Rfc4733
                    && let Some(m) = m
                    && m.send_digits(&digits) == 0
                    && let Some(t) = tones
                {
                    // The caller agreed no telephone-event: key the digits as tones.
                    m.play(t);
                }
            }
            Action::Hangup => hangup = true,
        }
    }
    hangup
}

async fn run(plan: Plan) -> anyhow::Result<String> {
    let mut transport = SipTransport::bind(TransportConfig {
        bind: plan.listen,
        channel_capacity: 16_384,
        ..TransportConfig::default()
    })
    .await
    .with_context(|| format!("cannot bind SIP sockets on {}", plan.listen))?;
    let local = transport.local_addr();
    let mut uas_cfg = UasConfig::new(local);
    uas_cfg.seed = plan.seed;
    uas_cfg.driven = true;
    uas_cfg.keep_records = false;
    let mut media_cfg = MediaConfig::new(plan.rtp_ip);
    media_cfg.port_min = plan.rtp_ports.0;
    media_cfg.port_max = plan.rtp_ports.1;
    media_cfg.measure_send = plan.measure_send;
    media_cfg.sockets = plan.rtp_sockets;
    media_cfg.threads = plan.media_threads;
    let profiles = plan.crowd.profiles().len();
    let call_log = match &plan.call_log {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("--call-log {}", p.display()))?,
        ),
        None => None,
    };
    let mut sim = Sim {
        uas: Uas::new(uas_cfg),
        media: MediaEngine::new(media_cfg),
        rng: IdGen::new(plan.seed.rotate_left(29)),
        calls: HashMap::new(),
        by_media: HashMap::new(),
        rtp_timeout: plan.rtp_timeout,
        accepting: true,
        max_calls: plan.max_calls,
        n: Counters {
            by_persona: vec![0; profiles],
            ..Counters::default()
        },
        hangups: Vec::new(),
        crowd: plan.crowd,
        call_log,
    };
    let mut sigint = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    tracing::info!(
        %local,
        rtp_ip = %plan.rtp_ip,
        rtp_ports = %format!("{}-{}", plan.rtp_ports.0, plan.rtp_ports.1),
        personas = profiles,
        "simulate: answering calls"
    );
    let started = Instant::now();
    let stop_at = plan.duration.map(|d| started + d);
    // Set once stopping: the moment to give up on calls still ending.
    let mut stopping: Option<Instant> = None;
    // One media clock for all calls: absolute 20 ms deadlines on a timer thread (no drift,
    // no 1 ms timer-wheel rounding; see engine::clock).
    let mut clock = engine::clock::MediaClock::start(
        Instant::now(),
        Duration::from_millis(u64::from(media::FRAME_MS)),
    )
    .context("cannot start the media clock")?;
    loop {
        let sip_deadline = sim.uas.poll_timeout();
        let stop_deadline = if stopping.is_none() { stop_at } else { None };
        let mut stop_now = false;
        tokio::select! {
            ev = transport.recv() => {
                let now = Instant::now();
                match ev {
                    Some(TransportEvent::Message(m)) => {
                        sim.uas.handle_message(now, m.transport, m.peer, &m.data);
                    }
                    Some(TransportEvent::Closed { peer, error }) => {
                        tracing::debug!(%peer, ?error, "connection closed");
                    }
                    Some(TransportEvent::Refused { peer, reason }) => {
                        tracing::debug!(%peer, %reason, "refused inbound data");
                    }
                    None => anyhow::bail!("the SIP transport stopped"),
                }
            }
            tick = clock.tick() => sim.tick(tick, Instant::now()),
            _ = sleep_until(sip_deadline) => sim.uas.handle_timeout(Instant::now()),
            _ = sigint.recv() => stop_now = true,
            _ = sigterm.recv() => stop_now = true,
            _ = sleep_until(stop_deadline) => stop_now = true,
        }
        let now = Instant::now();
        if stop_now && stopping.is_none() {
            tracing::info!(
                live = sim.calls.len(),
                "simulate: stopping, hanging up live calls"
            );
            sim.stop(now);
            stopping = Some(now + STOP_GRACE);
        }
        while let Some(ev) = sim.uas.poll_event() {
            sim.on_uas_event(now, ev);
        }
        send_output(&mut sim.uas, &transport).await;
        if let Some(limit) = stopping
            && (sim.calls.is_empty() || now >= limit)
        {
            break;
        }
        let all_done = sim
            .max_calls
            .is_some_and(|m| sim.n.calls + sim.n.refused >= m && sim.calls.is_empty());
        if all_done && stopping.is_none() {
            tracing::info!(calls = sim.n.calls, "simulate: --max-calls reached");
            sim.accepting = false;
            // Answer retransmissions for a moment, then stop.
            let linger_until = now + LINGER;
            while Instant::now() < linger_until {
                let remaining = linger_until.saturating_duration_since(Instant::now());
                match tokio::time::timeout(remaining, transport.recv()).await {
                    Ok(Some(TransportEvent::Message(m))) => {
                        sim.uas
                            .handle_message(Instant::now(), m.transport, m.peer, &m.data);
                        while let Some(ev) = sim.uas.poll_event() {
                            sim.on_uas_event(Instant::now(), ev);
                        }
                        send_output(&mut sim.uas, &transport).await;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            break;
        }
    }
    let _ = transport.flush(Duration::from_millis(500)).await;
    sim.media.shutdown();
    let summary = sim.summary(started.elapsed());
    tracing::info!(
        calls = sim.n.calls,
        answered = sim.n.answered,
        "simulate: stopped"
    );
    Ok(summary)
}

async fn send_output(uas: &mut Uas, transport: &SipTransport) {
    while let Some(t) = uas.poll_output() {
        if let Err(e) = transport
            .send(t.transport, t.dest, Bytes::from(t.data))
            .await
        {
            tracing::debug!(dest = %t.dest, error = %e, "send failed");
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(parse_range("40000-59999"), Some((40000, 59999)));
        assert_eq!(parse_range(" 2000 - 3000 "), Some((2000, 3000)));
        assert_eq!(parse_range("3000-2000"), None);
        assert_eq!(parse_range("80-90"), None);
        assert_eq!(parse_range("40000"), None);
    }
}
