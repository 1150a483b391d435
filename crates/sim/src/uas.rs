//! The callee crowd: a sans-IO SIP user-agent server that plays one [`Persona`] per call.
//!
//! It implements the UAS side the dialer talks to: the INVITE server transaction (100 Trying,
//! provisional and final responses with a To-tag, response retransmission when the request is
//! retransmitted, Timer G/H/I for non-2xx finals, absorption of the ACK), 2xx retransmission
//! with T1 doubling up to T2 until the ACK arrives (RFC 3261 §13.3.1.4, BYE after 64·T1 without
//! one), CANCEL (200 + 487), in-dialog BYE/UPDATE/re-INVITE with a Timer J response cache, and
//! its own client transactions (BYE, re-INVITE, UPDATE, NOTIFY) built on [`sip::transaction`].
//!
//! A REFER in the dialog (blind transfer, RFC 3515) is accepted with 202 and its implicit
//! subscription reported by two NOTIFYs carrying `message/sipfrag`: `SIP/2.0 100 Trying`
//! ([`UasConfig::refer_notify_delay`] later), then `SIP/2.0 200 OK` with the subscription
//! terminated (the same delay after the first NOTIFY's 2xx), as if the transfer target had
//! answered. The transferor is then expected to BYE. A REFER without exactly one Refer-To gets
//! 400.
//!
//! Run loop, like every state machine of the project:
//!
//! ```text
//! uas.handle_datagram(now, src, &bytes)   // or uas.handle_timeout(now)
//! while let Some(t) = uas.poll_output() { send(t.dest, t.data) }
//! sleep_until(uas.poll_timeout())
//! ```
//!
//! What the UAS saw on each call is kept in a [`CallRecord`] (by Call-ID) for assertions, also
//! after the call's state is dropped (unless [`UasConfig::keep_records`] is off).
//!
//! # Driven mode
//! With [`UasConfig::driven`] a driver with real media (`dialer simulate`) decides each call:
//!
//! ```text
//! uas.handle_message(now, transport, src, &bytes)
//! while let Some(ev) = uas.poll_event() {
//!     Incoming { call, .. }  => uas.accept(now, call, persona, Some(local_media))  // SDP answer
//!     Answered { media, .. } => start RTP towards media.remote_rtp
//!     Ended { .. }           => stop RTP
//! }
//! uas.hangup(now, call)      // when the persona's script says so (BYE, or 480 before answer)
//! ```
//!
//! Each call answers over the transport its INVITE came on; over TCP its responses and its own
//! requests (BYE) reuse the INVITE's connection.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip::auth::ChallengeKind;
use sip::message::{Limits, reason_phrase};
use sip::sdp::{LocalMedia, Negotiated, SessionDescription};
use sip::timers::TimerHeap;
use sip::transaction::{ClientTransaction, ResponseAction, TimerAction};
use sip::{
    Dest, HeaderName, IdGen, Message, Method, Request, Response, TimerConfig, Transport, Uri,
};

use crate::digest;
use crate::persona::Persona;

/// How the UAS treats a wrong digest answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadAuth {
    /// 403 Forbidden.
    Forbidden,
    /// Challenge again with the same nonce (the client must give up).
    RechallengeSameNonce,
    /// Challenge again with a fresh nonce each time (the client must bound its retries).
    RechallengeFreshNonce,
}

/// UAS settings.
#[derive(Debug, Clone)]
pub struct UasConfig {
    /// Where the UAS listens (its Contact and Via).
    pub addr: SocketAddr,
    /// Seed of tags, branches and nonces.
    pub seed: u64,
    pub timers: TimerConfig,
    pub realm: String,
    pub username: String,
    pub password: String,
    pub bad_auth: BadAuth,
    /// Ring time of personas without their own (fork, session timer, re-INVITE).
    pub ring: Duration,
    /// Delay between the ACK and the re-INVITE of [`Persona::ReInvite`].
    pub reinvite_after: Duration,
    /// A ringing call nobody cancels gets 480 after this long.
    pub max_ring: Duration,
    /// Record-Route value to put on 2xx responses (as a proxy in front of the UAS would).
    pub record_route: Option<String>,
    /// Advertise UPDATE in Allow and refresh sessions with UPDATE (else re-INVITE).
    pub use_update: bool,
    /// Persona of calls that were not [`Uas::assign`]ed one (in driven mode: only a placeholder
    /// until [`Uas::accept`]).
    pub default_persona: Persona,
    pub limits: Limits,
    /// A driver picks each new call's persona and media: a new call waits (no response) until
    /// [`Uas::accept`], and [`Uas::poll_event`] reports calls arriving, answered and ended.
    pub driven: bool,
    /// Keep a [`CallRecord`] of every finished call (tests). Off for long runs, whose memory
    /// must not grow with the number of calls.
    pub keep_records: bool,
    /// After a REFER's 202: when the NOTIFY `100 Trying` goes out; after that NOTIFY's 2xx:
    /// when the final NOTIFY `200 OK` does.
    pub refer_notify_delay: Duration,
}

impl UasConfig {
    /// Defaults for a UAS listening on `addr`: credentials `alice`/`secret` in realm `sim`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            seed: 0xCA11EE,
            timers: TimerConfig::default(),
            realm: "sim".into(),
            username: "alice".into(),
            password: "secret".into(),
            bad_auth: BadAuth::Forbidden,
            ring: Duration::from_secs(1),
            reinvite_after: Duration::from_secs(1),
            max_ring: Duration::from_secs(180),
            record_route: None,
            use_update: true,
            default_persona: Persona::Answer {
                ring: Duration::from_secs(1),
                talk: None,
            },
            limits: Limits::default(),
            driven: false,
            keep_records: true,
            refer_notify_delay: Duration::from_millis(200),
        }
    }
}

/// One message the UAS wants sent: over UDP to `dest`, or over TCP on the connection with
/// `dest` (the one the call's INVITE came on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UasTransmit {
    pub transport: Transport,
    pub dest: SocketAddr,
    pub data: Vec<u8>,
}

/// Identifies a call inside one [`Uas`] (driven mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UasCallId(pub u64);

/// Why a call ended, from the callee's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Not answered: the final status sent (busy, reject, 487 after CANCEL, 480, 488...).
    Refused(u16),
    /// The caller sent BYE.
    CallerBye,
    /// We sent BYE (the persona hung up, or the 2xx was never ACKed).
    CalleeBye,
}

/// What happened to a call (driven mode only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UasEvent {
    /// A new INVITE: decide it with [`Uas::accept`] (nothing is sent until then).
    Incoming {
        call: UasCallId,
        transport: Transport,
        src: SocketAddr,
        /// The INVITE's Call-ID.
        call_id: String,
        /// The caller's attempt tag (`X-Dialer-Attempt`), when it sent one.
        attempt: Option<String>,
    },
    /// The 2xx went out: media may flow. `media` is what the offer/answer agreed (`None` when
    /// the call was accepted without local media or the INVITE had no offer).
    Answered {
        call: UasCallId,
        media: Option<Negotiated>,
    },
    /// A re-INVITE's offer was answered: new remote address, codec or direction.
    MediaUpdated { call: UasCallId, media: Negotiated },
    /// The call is over for the callee (sent once per call).
    Ended { call: UasCallId, reason: EndReason },
    /// A REFER was accepted (202): the caller transfers the call to `target` (the Refer-To
    /// URI, without angle brackets or header parameters).
    Referred { call: UasCallId, target: String },
}

/// Counters of the UAS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UasStats {
    pub received: u64,
    pub parse_errors: u64,
    pub calls: u64,
    pub calls_finished: u64,
    pub stray_responses: u64,
    /// Requests for no known call or dialog (answered 481, ACKs dropped).
    pub stray_requests: u64,
    /// INVITE retransmissions arriving after the call's state was dropped.
    pub late_invites: u64,
}

/// What the UAS saw of one dialog (one To-tag that got a 2xx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogRecord {
    pub tag: String,
    pub answered_at: Instant,
    /// ACKs received for this dialog's 2xx (retransmitted ACKs included).
    pub acks_for_2xx: u32,
    pub first_ack_at: Option<Instant>,
    /// The caller's BYE.
    pub got_bye: bool,
    pub bye_at: Option<Instant>,
    /// We sent BYE (talk over, session expired, or no ACK).
    pub bye_sent: bool,
    /// Final status of our BYE (408 on timeout).
    pub bye_status: Option<u16>,
    /// Our 2xx was never ACKed within 64·T1.
    pub no_ack: bool,
}

/// What the UAS saw of one call (one Call-ID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub persona: Persona,
    /// Initial INVITE transactions (a new one after each challenge).
    pub invites: u32,
    pub invite_retransmissions: u32,
    /// `Some(true)` once a digest answer verified, `Some(false)` after a wrong one.
    pub auth_ok: Option<bool>,
    pub auth_failures: u32,
    /// Last final status sent to an initial INVITE (the first 2xx for forks).
    pub final_status: Option<u16>,
    pub got_cancel: bool,
    /// CANCEL arrived after the final response (no effect).
    pub cancel_after_final: bool,
    pub acks_for_non2xx: u32,
    /// Non-2xx finals never ACKed (Timer H).
    pub non2xx_unacked: u32,
    pub dialogs: Vec<DialogRecord>,
    /// Session refreshes received (UPDATE or re-INVITE carrying Session-Expires).
    pub refreshes: u32,
    /// Refreshes we sent (UAS as refresher) and those answered 2xx.
    pub refreshes_sent: u32,
    pub refreshes_ok: u32,
    /// The caller's refresh was missing: we sent BYE.
    pub session_expired: bool,
    /// Final status of our re-INVITE ([`Persona::ReInvite`]) and whether the 2xx carried SDP.
    pub reinvite_status: Option<u16>,
    pub reinvite_answer_sdp: bool,
    /// Refer-To of the last REFER accepted (the URI without angle brackets).
    pub refer_to: Option<String>,
    /// REFERs answered 400 (no Refer-To, or more than one).
    pub bad_refers: u32,
    /// Final statuses of our NOTIFYs, in order (408 on timeout).
    pub notify_statuses: Vec<u16>,
    /// The call's state is gone (everything absorbed and timed out).
    pub finished: bool,
}

impl CallRecord {
    fn new(persona: Persona) -> Self {
        Self {
            persona,
            invites: 0,
            invite_retransmissions: 0,
            auth_ok: None,
            auth_failures: 0,
            final_status: None,
            got_cancel: false,
            cancel_after_final: false,
            acks_for_non2xx: 0,
            non2xx_unacked: 0,
            dialogs: Vec::new(),
            refreshes: 0,
            refreshes_sent: 0,
            refreshes_ok: 0,
            session_expired: false,
            reinvite_status: None,
            reinvite_answer_sdp: false,
            refer_to: None,
            bad_refers: 0,
            notify_statuses: Vec::new(),
            finished: false,
        }
    }

    /// Any ACK at all (for a 2xx or a non-2xx final).
    pub fn got_ack(&self) -> bool {
        self.acks_for_non2xx > 0 || self.acks_for_2xx() > 0
    }

    pub fn acks_for_2xx(&self) -> u32 {
        self.dialogs.iter().map(|d| d.acks_for_2xx).sum()
    }

    /// The caller sent BYE on some dialog.
    pub fn got_bye(&self) -> bool {
        self.dialogs.iter().any(|d| d.got_bye)
    }
}

// ----- internal state ----------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InvState {
    Proceeding,
    /// Non-2xx final sent, waiting for the ACK (Timer G/H).
    Completed,
    /// ACK received, absorbing retransmissions (Timer I).
    Confirmed,
    /// 2xx sent; absorbing INVITE retransmissions (Timer L).
    Accepted,
    Terminated,
}

#[derive(Debug)]
struct InviteTx {
    branch: String,
    req: Request,
    src: SocketAddr,
    tag: String,
    persona: Option<Persona>,
    /// Extra To-tags of a forking persona (the first is `tag`).
    fork_tags: Vec<String>,
    state: InvState,
    last: Option<Vec<u8>>,
    /// Timer G: (next, interval).
    retransmit: Option<(Instant, Duration)>,
    /// Timer H / I / L.
    deadline: Option<Instant>,
    answer_at: Option<Instant>,
    ring_limit: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DlgState {
    WaitAck,
    Confirmed,
    /// Our BYE is out.
    Terminating,
    Terminated,
}

#[derive(Debug)]
struct Pending2xx {
    cseq: u32,
    bytes: Vec<u8>,
    next: Instant,
    interval: Duration,
    give_up: Instant,
    initial: bool,
}

#[derive(Debug, Clone, Copy)]
struct Session {
    se: u32,
    uas_refreshes: bool,
}

#[derive(Debug)]
struct UasDialog {
    tag: String,
    /// The caller's From (with its tag): our To.
    remote: String,
    /// The INVITE's To without tag: our From.
    local_uri: String,
    target_uri: String,
    target: SocketAddr,
    local_seq: u32,
    remote_seq: u32,
    /// CSeq of the INVITE that created the dialog (its ACK carries it).
    invite_seq: u32,
    peer_allows_update: bool,
    state: DlgState,
    pending_2xx: Option<Pending2xx>,
    session: Option<Session>,
    bye_at: Option<Instant>,
    reinvite_at: Option<Instant>,
    refresh_at: Option<Instant>,
    expire_at: Option<Instant>,
    reinvite_after_ack: bool,
    /// Our own re-INVITE/UPDATE is in flight (a crossing re-INVITE gets 491).
    offer_in_flight: bool,
    /// The implicit subscription of an accepted REFER.
    transfer: Option<Transfer>,
    /// When its next NOTIFY goes out.
    notify_at: Option<Instant>,
}

/// Where the implicit subscription of a REFER is (RFC 3515 §2.4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transfer {
    /// 202 sent; the NOTIFY `100 Trying` is due at `notify_at`.
    Accepted,
    /// `100 Trying` sent; the final NOTIFY is due `refer_notify_delay` after its 2xx.
    Trying,
    /// The final NOTIFY sent, or the subscription failed (a NOTIFY refused or timed out).
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Bye,
    ReInvite,
    Refresh,
    Notify,
}

#[derive(Debug)]
struct OutTx {
    tx: ClientTransaction,
    dialog: usize,
    purpose: Purpose,
    /// ACK of a 2xx to our re-INVITE (re-sent when the 2xx is retransmitted).
    ack: Option<Vec<u8>>,
    done: bool,
}

#[derive(Debug)]
struct Cached {
    branch: String,
    method: Method,
    bytes: Vec<u8>,
    dest: SocketAddr,
    until: Instant,
}

#[derive(Debug)]
struct UasCall {
    call_id: String,
    transport: Transport,
    stage: Persona,
    record: CallRecord,
    invites: Vec<InviteTx>,
    dialogs: Vec<UasDialog>,
    clients: Vec<OutTx>,
    cache: Vec<Cached>,
    nonce: Option<String>,
    opaque: String,
    /// Driven mode: waiting for [`Uas::accept`].
    awaiting_accept: bool,
    /// Our media (driven mode) and the SDP we answer with; `None`: the fixed legacy SDP.
    local: Option<LocalMedia>,
    local_sdp: Option<SessionDescription>,
    negotiated: Option<Negotiated>,
    /// [`UasEvent::Ended`] was reported.
    end_reported: bool,
}

struct Ctx<'a> {
    cfg: &'a UasConfig,
    ids: &'a mut IdGen,
    out: &'a mut VecDeque<UasTransmit>,
    events: &'a mut VecDeque<UasEvent>,
    /// The transport of the call being handled.
    transport: Transport,
    /// Its key.
    key: u64,
}

impl Ctx<'_> {
    fn send(&mut self, dest: SocketAddr, data: Vec<u8>) {
        self.out.push_back(UasTransmit {
            transport: self.transport,
            dest,
            data,
        });
    }

    fn event(&mut self, ev: UasEvent) {
        if self.cfg.driven {
            self.events.push_back(ev);
        }
    }

    fn reliable(&self) -> bool {
        self.transport == Transport::Tcp
    }

    fn t1(&self) -> Duration {
        self.cfg.timers.t1
    }

    fn contact(&self) -> String {
        match self.transport {
            Transport::Udp => format!("<sip:uas@{}>", self.cfg.addr),
            Transport::Tcp => format!("<sip:uas@{};transport=tcp>", self.cfg.addr),
        }
    }

    fn allow(&self) -> &'static str {
        if self.cfg.use_update {
            "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, REFER"
        } else {
            "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER"
        }
    }

    fn via(&mut self) -> String {
        format!(
            "SIP/2.0/{} {};branch={}",
            self.transport.via_token(),
            self.cfg.addr,
            self.ids.branch()
        )
    }
}

fn sdp(addr: SocketAddr, version: u32) -> Vec<u8> {
    let ip = addr.ip();
    format!(
        "v=0\r\no=uas 4242 {version} IN IP4 {ip}\r\ns=sim\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"
    )
    .into_bytes()
}

fn branch_of(req: &Request) -> String {
    req.headers
        .top_via()
        .and_then(|v| v.branch().map(str::to_owned))
        .unwrap_or_default()
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn due(t: Option<Instant>, now: Instant) -> bool {
    t.is_some_and(|t| t <= now)
}

/// RFC 4028 §10: the side that does not refresh gives up at expiry minus min(32 s, SE/3).
fn watch_interval(se: u32) -> Duration {
    let se = Duration::from_secs(u64::from(se));
    se - Duration::from_secs(32).min(se / 3)
}

/// The URI of a Refer-To value (`<sip:a@b;transport=tcp>;p` or `sip:a@b;p`), when it parses.
fn refer_target(value: &str) -> Option<String> {
    let v = value.trim();
    let uri = match v.find('<') {
        Some(open) => {
            let rest = &v[open + 1..];
            &rest[..rest.find('>')?]
        }
        None => v.split(';').next().unwrap_or_default(),
    }
    .trim();
    if uri.is_empty() || Uri::parse(uri).is_err() {
        return None;
    }
    Some(uri.to_owned())
}

/// Parse `1800;refresher=uac`.
fn session_expires(req: &Request) -> Option<u32> {
    req.headers
        .get(&HeaderName::SessionExpires)
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.trim().parse().ok())
}

impl UasCall {
    fn new(call_id: String, transport: Transport, persona: Persona, ids: &mut IdGen) -> Self {
        Self {
            call_id,
            transport,
            stage: persona.clone(),
            record: CallRecord::new(persona),
            invites: Vec::new(),
            dialogs: Vec::new(),
            clients: Vec::new(),
            cache: Vec::new(),
            nonce: None,
            opaque: ids.token(16),
            awaiting_accept: false,
            local: None,
            local_sdp: None,
            negotiated: None,
            end_reported: false,
        }
    }

    /// Our SDP for the initial answer (`bump` false) or a later offer/answer (`bump` true: a new
    /// session version).
    fn sdp_body(&mut self, ctx: &Ctx<'_>, legacy_version: u32, bump: bool) -> Vec<u8> {
        match self.local_sdp.as_mut() {
            Some(sdp) => {
                if bump {
                    sdp.session_version += 1;
                }
                sdp.to_string_crlf().into_bytes()
            }
            None => sdp(ctx.cfg.addr, legacy_version),
        }
    }

    /// Answer the offer of the INVITE on transaction `idx` with our local media. `Err` when the
    /// offer cannot be answered (no audio, no common codec): the call gets 488.
    fn answer_offer(&mut self, idx: usize) -> Result<(), ()> {
        let Some(local) = &self.local else {
            return Ok(());
        };
        let req = &self.invites[idx].req;
        if req.body.is_empty() {
            // Late offer: our offer goes in the 2xx; the answer (in the ACK) is not read.
            self.local_sdp = Some(local.offer());
            return Ok(());
        }
        let offer = SessionDescription::parse(&req.body).map_err(|_| ())?;
        let (sdp, negotiated) = local.answer(&offer).map_err(|_| ())?;
        self.local_sdp = Some(sdp);
        self.negotiated = Some(negotiated);
        Ok(())
    }

    /// Answer an in-dialog offer (re-INVITE) with our local media: the new answer (a new
    /// session version) and what it agreed. `None`: no local media or no usable offer.
    fn answer_reoffer(&mut self, req: &Request) -> Option<Negotiated> {
        let local = self.local.as_ref()?;
        let offer = SessionDescription::parse(&req.body).ok()?;
        let (mut sdp, negotiated) = local.answer(&offer).ok()?;
        let version = self.local_sdp.as_ref().map_or(0, |s| s.session_version);
        sdp.session_version = version + 1;
        self.local_sdp = Some(sdp);
        self.negotiated = Some(negotiated);
        Some(negotiated)
    }

    /// Why the call is over for the callee, once it is.
    fn end_reason(&self) -> Option<EndReason> {
        if self.awaiting_accept {
            return None;
        }
        if self.dialogs.is_empty() {
            let all_final = !self.invites.is_empty()
                && self.invites.iter().all(|t| t.state != InvState::Proceeding);
            return match self.record.final_status {
                // A challenge waits for the INVITE with credentials.
                Some(s) if all_final && s >= 300 && s != 401 && s != 407 => {
                    Some(EndReason::Refused(s))
                }
                Some(s) if self.is_finished() => Some(EndReason::Refused(s)),
                None if self.is_finished() => Some(EndReason::Refused(408)),
                _ => None,
            };
        }
        let over = self
            .dialogs
            .iter()
            .all(|d| matches!(d.state, DlgState::Terminating | DlgState::Terminated));
        if !over {
            return None;
        }
        Some(if self.record.got_bye() {
            EndReason::CallerBye
        } else {
            EndReason::CalleeBye
        })
    }

    fn is_finished(&self) -> bool {
        self.invites.iter().all(|t| t.state == InvState::Terminated)
            && self
                .dialogs
                .iter()
                .all(|d| d.state == DlgState::Terminated && d.pending_2xx.is_none())
            && self.clients.is_empty()
            && self.cache.is_empty()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let mut t = None;
        for tx in &self.invites {
            t = min_opt(t, tx.retransmit.map(|(at, _)| at));
            t = min_opt(t, tx.deadline);
            t = min_opt(t, tx.answer_at);
            t = min_opt(t, tx.ring_limit);
        }
        for d in &self.dialogs {
            if let Some(p) = &d.pending_2xx {
                t = min_opt(t, Some(p.next.min(p.give_up)));
            }
            if d.state == DlgState::Confirmed {
                t = min_opt(t, d.bye_at);
                t = min_opt(t, d.reinvite_at);
                t = min_opt(t, d.refresh_at);
                t = min_opt(t, d.expire_at);
                t = min_opt(t, d.notify_at);
            }
        }
        for c in &self.clients {
            t = min_opt(t, c.tx.poll_timeout());
        }
        for c in &self.cache {
            t = min_opt(t, Some(c.until));
        }
        t
    }

    // ----- requests --------------------------------------------------------------------

    fn on_request(&mut self, ctx: &mut Ctx<'_>, now: Instant, src: SocketAddr, req: &Request) {
        let branch = branch_of(req);
        let to_tag = req.headers.to_tag();
        match req.method {
            Method::Invite if to_tag.is_none() => self.on_initial_invite(ctx, now, src, req),
            Method::Ack => self.on_ack(ctx, now, &branch, to_tag.as_deref(), req),
            Method::Cancel => self.on_cancel(ctx, now, src, &branch, req),
            _ => {
                if let Some(c) = self
                    .cache
                    .iter()
                    .find(|c| c.branch == branch && c.method == req.method)
                {
                    let (dest, bytes) = (c.dest, c.bytes.clone());
                    ctx.send(dest, bytes);
                    return;
                }
                let idx = to_tag
                    .as_deref()
                    .and_then(|tag| self.dialogs.iter().position(|d| d.tag == tag));
                match idx {
                    Some(i) => self.on_in_dialog(ctx, now, src, &branch, i, req),
                    None => {
                        let resp = req.make_response(481, reason_phrase(481), None);
                        self.respond_cached(ctx, now, src, &branch, req, resp);
                    }
                }
            }
        }
    }

    fn on_initial_invite(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Instant,
        src: SocketAddr,
        req: &Request,
    ) {
        let branch = branch_of(req);
        if let Some(tx) = self.invites.iter().find(|t| t.branch == branch) {
            // Retransmission: repeat the last response (RFC 3261 §17.2.1).
            self.record.invite_retransmissions += 1;
            if let Some(last) = tx.last.clone() {
                ctx.send(tx.src, last);
            }
            return;
        }
        self.record.invites += 1;
        let tag = ctx.ids.tag();
        self.invites.push(InviteTx {
            branch,
            req: req.clone(),
            src,
            tag,
            persona: None,
            fork_tags: Vec::new(),
            state: InvState::Proceeding,
            last: None,
            retransmit: None,
            deadline: None,
            answer_at: None,
            ring_limit: None,
        });
        let idx = self.invites.len() - 1;
        if !self.awaiting_accept {
            self.play(ctx, now, idx);
        }
    }

    /// Resolve challenges, then start the persona on INVITE transaction `idx`.
    fn play(&mut self, ctx: &mut Ctx<'_>, now: Instant, idx: usize) {
        loop {
            let Persona::Challenge { kind, then } = self.stage.clone() else {
                let persona = self.stage.clone();
                self.start(ctx, now, idx, persona);
                return;
            };
            let header = match kind {
                ChallengeKind::Www => HeaderName::Authorization,
                ChallengeKind::Proxy => HeaderName::ProxyAuthorization,
            };
            let Some(nonce) = self.nonce.clone() else {
                self.challenge(ctx, now, idx, kind, true);
                return;
            };
            let req = &self.invites[idx].req;
            let exp = digest::Expectation {
                username: &ctx.cfg.username,
                password: &ctx.cfg.password,
                realm: &ctx.cfg.realm,
                nonce: &nonce,
                opaque: &self.opaque,
                method: req.method.as_str(),
                request_uri: &req.uri,
            };
            let answers: Vec<&str> = req.headers.get_all(&header).collect();
            if answers.is_empty() {
                self.challenge(ctx, now, idx, kind, true);
                return;
            }
            if answers.iter().any(|v| digest::verify(v, &exp).is_ok()) {
                self.record.auth_ok = Some(true);
                self.nonce = None;
                self.stage = *then;
                continue;
            }
            self.record.auth_ok = Some(false);
            self.record.auth_failures += 1;
            match ctx.cfg.bad_auth {
                BadAuth::Forbidden => self.final_non2xx(ctx, now, idx, 403, None),
                BadAuth::RechallengeSameNonce => self.challenge(ctx, now, idx, kind, false),
                BadAuth::RechallengeFreshNonce => self.challenge(ctx, now, idx, kind, true),
            }
            return;
        }
    }

    fn challenge(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Instant,
        idx: usize,
        kind: ChallengeKind,
        fresh: bool,
    ) {
        if fresh || self.nonce.is_none() {
            self.nonce = Some(ctx.ids.token(24));
        }
        let value = format!(
            "Digest realm=\"{}\", nonce=\"{}\", opaque=\"{}\", algorithm=MD5, qop=\"auth\"",
            ctx.cfg.realm,
            self.nonce.as_deref().unwrap_or_default(),
            self.opaque
        );
        let (status, header) = match kind {
            ChallengeKind::Www => (401, HeaderName::WwwAuthenticate),
            ChallengeKind::Proxy => (407, HeaderName::ProxyAuthenticate),
        };
        self.final_non2xx(ctx, now, idx, status, Some((header, value)));
    }

    fn start(&mut self, ctx: &mut Ctx<'_>, now: Instant, idx: usize, persona: Persona) {
        let trying = self.invites[idx]
            .req
            .make_response(100, "Trying", None)
            .to_bytes();
        ctx.send(self.invites[idx].src, trying.clone());
        self.invites[idx].last = Some(trying);
        self.invites[idx].persona = Some(persona.clone());
        let ring = ctx.cfg.ring;
        match persona {
            Persona::Answer { ring, .. } => {
                self.provisional(ctx, idx, 180, None);
                self.invites[idx].answer_at = Some(now + ring);
            }
            Persona::EarlyMediaAnswer { ring } => {
                self.provisional(ctx, idx, 183, None);
                self.invites[idx].answer_at = Some(now + ring);
            }
            Persona::Busy => self.final_non2xx(ctx, now, idx, 486, None),
            Persona::Reject => self.final_non2xx(ctx, now, idx, 603, None),
            Persona::NotFound => self.final_non2xx(ctx, now, idx, 404, None),
            Persona::ServerError => self.final_non2xx(
                ctx,
                now,
                idx,
                503,
                Some((HeaderName::RetryAfter, "30".into())),
            ),
            Persona::NoAnswer | Persona::CancelRace => {
                self.provisional(ctx, idx, 180, None);
                self.invites[idx].ring_limit = Some(now + ctx.cfg.max_ring);
            }
            Persona::Fork { tags } => {
                let extra: Vec<String> = (1..tags.max(1)).map(|_| ctx.ids.tag()).collect();
                self.invites[idx].fork_tags = extra.clone();
                self.provisional(ctx, idx, 180, None);
                for tag in &extra {
                    self.provisional(ctx, idx, 180, Some(tag));
                }
                self.invites[idx].answer_at = Some(now + ring);
            }
            Persona::AnswerWithSessionTimer { .. }
            | Persona::SilentSessionTimer { .. }
            | Persona::ReInvite => {
                self.provisional(ctx, idx, 180, None);
                self.invites[idx].answer_at = Some(now + ring);
            }
            Persona::Challenge { .. } => {
                // `play` resolves challenges before starting; a nested one is a config error.
                self.final_non2xx(ctx, now, idx, 500, None);
            }
        }
    }

    fn provisional(&mut self, ctx: &mut Ctx<'_>, idx: usize, status: u16, tag: Option<&str>) {
        let body = (status == 183).then(|| self.sdp_body(ctx, 1, false));
        let tx = &mut self.invites[idx];
        let tag = tag.unwrap_or(&tx.tag);
        let mut resp = tx
            .req
            .make_response(status, reason_phrase(status), Some(tag));
        resp.headers.push(HeaderName::Contact, ctx.contact());
        if let Some(body) = body {
            resp.headers
                .push(HeaderName::ContentType, "application/sdp");
            resp.body = body;
        }
        let bytes = resp.to_bytes();
        tx.last = Some(bytes.clone());
        ctx.send(tx.src, bytes);
    }

    fn final_non2xx(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Instant,
        idx: usize,
        status: u16,
        extra: Option<(HeaderName, String)>,
    ) {
        let t1 = ctx.t1();
        let reliable = ctx.reliable();
        let tx = &mut self.invites[idx];
        let mut resp = tx
            .req
            .make_response(status, reason_phrase(status), Some(&tx.tag));
        if let Some((n, v)) = extra {
            resp.headers.push(n, v);
        }
        let bytes = resp.to_bytes();
        tx.last = Some(bytes.clone());
        tx.state = InvState::Completed;
        // Timer G only over UDP (RFC 3261 §17.2.1).
        tx.retransmit = (!reliable).then_some((now + t1, t1));
        tx.deadline = Some(now + t1 * 64);
        tx.answer_at = None;
        tx.ring_limit = None;
        ctx.send(tx.src, bytes);
        self.record.final_status = Some(status);
    }

    /// Send the 2xx (two of them for a fork) and create the dialogs.
    fn answer(&mut self, ctx: &mut Ctx<'_>, now: Instant, idx: usize) {
        let t1 = ctx.t1();
        let persona = self.invites[idx].persona.clone();
        let mut tags = vec![self.invites[idx].tag.clone()];
        if let Some(second) = self.invites[idx].fork_tags.first() {
            tags.push(second.clone());
        }
        let tx = &mut self.invites[idx];
        tx.state = InvState::Accepted;
        tx.deadline = Some(now + t1 * 64); // Timer L
        tx.answer_at = None;
        tx.ring_limit = None;
        let req = tx.req.clone();
        let src = tx.src;
        let invite_seq = req.headers.cseq().map_or(0, |c| c.seq);
        let peer_allows_update = req
            .headers
            .list(&HeaderName::Allow)
            .any(|m| m.trim().eq_ignore_ascii_case("UPDATE"));
        let (target_uri, target) = req
            .headers
            .contact()
            .and_then(|c| {
                let uri = Uri::parse(&c.uri).ok()?;
                match Dest::from_uri(&uri) {
                    Dest::Addr(a) => Some((c.uri, a)),
                    Dest::Host(..) => None,
                }
            })
            .unwrap_or_else(|| (req.uri.clone(), src));
        // Over TCP our requests reuse the INVITE's connection.
        let target = if ctx.reliable() { src } else { target };
        let body = self.sdp_body(ctx, 1, false);
        let session = match persona {
            Some(Persona::AnswerWithSessionTimer { se, refresher_uac }) => Some(Session {
                se,
                uas_refreshes: !refresher_uac,
            }),
            Some(Persona::SilentSessionTimer { se }) => Some(Session {
                se,
                uas_refreshes: true,
            }),
            _ => None,
        };
        for tag in tags {
            let mut resp = req.make_response(200, "OK", Some(&tag));
            if let Some(rr) = &ctx.cfg.record_route {
                resp.headers.push(HeaderName::RecordRoute, rr.clone());
            }
            resp.headers.push(HeaderName::Contact, ctx.contact());
            resp.headers.push(HeaderName::Allow, ctx.allow());
            if let Some(s) = session {
                let who = if s.uas_refreshes { "uas" } else { "uac" };
                resp.headers.push(HeaderName::Require, "timer");
                resp.headers.push(
                    HeaderName::SessionExpires,
                    format!("{};refresher={who}", s.se),
                );
            }
            resp.headers
                .push(HeaderName::ContentType, "application/sdp");
            resp.body = body.clone();
            let bytes = resp.to_bytes();
            self.invites[idx].last = Some(bytes.clone());
            ctx.send(src, bytes.clone());
            let mut d = UasDialog {
                tag: tag.clone(),
                remote: req
                    .headers
                    .get(&HeaderName::From)
                    .unwrap_or_default()
                    .into(),
                local_uri: req.headers.get(&HeaderName::To).unwrap_or_default().into(),
                target_uri: target_uri.clone(),
                target,
                local_seq: 0,
                remote_seq: invite_seq,
                invite_seq,
                peer_allows_update,
                state: DlgState::WaitAck,
                pending_2xx: Some(Pending2xx {
                    cseq: invite_seq,
                    bytes,
                    next: now + t1,
                    interval: t1,
                    give_up: now + t1 * 64,
                    initial: true,
                }),
                session,
                bye_at: None,
                reinvite_at: None,
                refresh_at: None,
                expire_at: None,
                reinvite_after_ack: false,
                offer_in_flight: false,
                transfer: None,
                notify_at: None,
            };
            match &persona {
                Some(Persona::Answer {
                    talk: Some(talk), ..
                }) => d.bye_at = Some(now + *talk),
                Some(Persona::AnswerWithSessionTimer { se, refresher_uac }) => {
                    let se_d = Duration::from_secs(u64::from(*se));
                    if *refresher_uac {
                        d.expire_at = Some(now + watch_interval(*se));
                    } else {
                        d.refresh_at = Some(now + se_d / 2);
                    }
                }
                Some(Persona::ReInvite) => d.reinvite_after_ack = true,
                _ => {}
            }
            self.dialogs.push(d);
            self.record.dialogs.push(DialogRecord {
                tag,
                answered_at: now,
                acks_for_2xx: 0,
                first_ack_at: None,
                got_bye: false,
                bye_at: None,
                bye_sent: false,
                bye_status: None,
                no_ack: false,
            });
        }
        self.record.final_status = Some(200);
        ctx.event(UasEvent::Answered {
            call: UasCallId(ctx.key),
            media: self.negotiated,
        });
    }

    fn on_ack(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Instant,
        branch: &str,
        to_tag: Option<&str>,
        req: &Request,
    ) {
        if let Some(tx) = self.invites.iter_mut().find(|t| {
            t.branch == branch && matches!(t.state, InvState::Completed | InvState::Confirmed)
        }) {
            self.record.acks_for_non2xx += 1;
            if tx.state == InvState::Completed {
                tx.state = InvState::Confirmed;
                tx.retransmit = None;
                tx.deadline = Some(now + ctx.cfg.timers.t4); // Timer I
            }
            return;
        }
        let Some(i) = to_tag.and_then(|tag| self.dialogs.iter().position(|d| d.tag == tag)) else {
            return; // an ACK for nothing we know: dropped
        };
        let seq = req.headers.cseq().map_or(0, |c| c.seq);
        let d = &mut self.dialogs[i];
        if seq == d.invite_seq {
            let rec = &mut self.record.dialogs[i];
            rec.acks_for_2xx += 1;
            rec.first_ack_at.get_or_insert(now);
        }
        if d.pending_2xx.as_ref().is_some_and(|p| p.cseq == seq) {
            let initial = d.pending_2xx.take().is_some_and(|p| p.initial);
            if initial && d.state == DlgState::WaitAck {
                d.state = DlgState::Confirmed;
                if d.reinvite_after_ack {
                    d.reinvite_after_ack = false;
                    d.reinvite_at = Some(now + ctx.cfg.reinvite_after);
                }
            }
        }
    }

    fn on_cancel(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Instant,
        src: SocketAddr,
        branch: &str,
        req: &Request,
    ) {
        if let Some(c) = self
            .cache
            .iter()
            .find(|c| c.branch == branch && c.method == Method::Cancel)
        {
            let (dest, bytes) = (c.dest, c.bytes.clone());
            ctx.send(dest, bytes);
            return;
        }
        let Some(idx) = self.invites.iter().position(|t| t.branch == branch) else {
            let resp = req.make_response(481, reason_phrase(481), None);
            self.respond_cached(ctx, now, src, branch, req, resp);
            return;
        };
        self.record.got_cancel = true;
        let tag = self.invites[idx].tag.clone();
        let ok = req.make_response(200, "OK", Some(&tag));
        if self.invites[idx].state != InvState::Proceeding {
            self.record.cancel_after_final = true;
            self.respond_cached(ctx, now, src, branch, req, ok);
            return;
        }
        if self.invites[idx].persona == Some(Persona::CancelRace) {
            // The answer was already on its way: 200 to the INVITE first, then to the CANCEL.
            self.answer(ctx, now, idx);
            self.respond_cached(ctx, now, src, branch, req, ok);
        } else {
            self.respond_cached(ctx, now, src, branch, req, ok);
            self.final_non2xx(ctx, now, idx, 487, None);
        }
    }

    fn on_in_dialog(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Instant,
        src: SocketAddr,
        branch: &str,
        i: usize,
        req: &Request,
    ) {
        let seq = req.headers.cseq().map_or(0, |c| c.seq);
        let state = self.dialogs[i].state;
        if state == DlgState::Terminated
            || (state == DlgState::Terminating && req.method != Method::Bye)
        {
            let resp = req.make_response(481, reason_phrase(481), None);
            self.respond_cached(ctx, now, src, branch, req, resp);
            return;
        }
        if seq < self.dialogs[i].remote_seq {
            let resp = req.make_response(500, "Out of Order CSeq", None);
            self.respond_cached(ctx, now, src, branch, req, resp);
            return;
        }
        self.dialogs[i].remote_seq = seq;
        match req.method {
            Method::Bye => {
                let resp = req.make_response(200, "OK", None);
                self.respond_cached(ctx, now, src, branch, req, resp);
                let d = &mut self.dialogs[i];
                d.state = DlgState::Terminated;
                d.pending_2xx = None;
                let rec = &mut self.record.dialogs[i];
                rec.got_bye = true;
                rec.bye_at = Some(now);
            }
            Method::Update | Method::Invite => {
                if req.method == Method::Invite && self.dialogs[i].offer_in_flight {
                    let resp = req.make_response(491, reason_phrase(491), None);
                    self.respond_cached(ctx, now, src, branch, req, resp);
                    return;
                }
                let mut resp = req.make_response(200, "OK", None);
                resp.headers.push(HeaderName::Contact, ctx.contact());
                resp.headers.push(HeaderName::Allow, ctx.allow());
                if let Some(se) = session_expires(req) {
                    self.record.refreshes += 1;
                    resp.headers.push(HeaderName::Require, "timer");
                    resp.headers
                        .push(HeaderName::SessionExpires, format!("{se};refresher=uac"));
                    let d = &mut self.dialogs[i];
                    if d.session.is_some_and(|s| !s.uas_refreshes) {
                        d.session = Some(Session {
                            se,
                            uas_refreshes: false,
                        });
                        d.expire_at = Some(now + watch_interval(se));
                    }
                }
                if req.method == Method::Invite {
                    let body = match self.answer_reoffer(req) {
                        Some(media) => {
                            ctx.event(UasEvent::MediaUpdated {
                                call: UasCallId(ctx.key),
                                media,
                            });
                            self.sdp_body(ctx, 2, false)
                        }
                        None => self.sdp_body(ctx, 2, true),
                    };
                    resp.headers
                        .push(HeaderName::ContentType, "application/sdp");
                    resp.body = body;
                    let bytes = resp.to_bytes();
                    let t1 = ctx.t1();
                    self.dialogs[i].pending_2xx = Some(Pending2xx {
                        cseq: seq,
                        bytes: bytes.clone(),
                        next: now + t1,
                        interval: t1,
                        give_up: now + t1 * 64,
                        initial: false,
                    });
                    self.cache.push(Cached {
                        branch: branch.to_owned(),
                        method: Method::Invite,
                        bytes: bytes.clone(),
                        dest: src,
                        until: now + t1 * 64,
                    });
                    ctx.send(src, bytes);
                } else {
                    self.respond_cached(ctx, now, src, branch, req, resp);
                }
            }
            Method::Refer => self.on_refer(ctx, now, src, branch, i, req),
            Method::Options | Method::Info | Method::Notify => {
                let resp = req.make_response(200, "OK", None);
                self.respond_cached(ctx, now, src, branch, req, resp);
            }
            _ => {
                let mut resp = req.make_response(405, reason_phrase(405), None);
                resp.headers.push(HeaderName::Allow, ctx.allow());
                self.respond_cached(ctx, now, src, branch, req, resp);
            }
        }
    }

    /// REFER (RFC 3515): 202 and an implicit subscription reported by NOTIFYs; 400 without
    /// exactly one usable Refer-To; 500 with Retry-After while an earlier transfer of the
    /// dialog is still being notified.
    fn on_refer(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Instant,
        src: SocketAddr,
        branch: &str,
        i: usize,
        req: &Request,
    ) {
        let values: Vec<&str> = req.headers.get_all(&HeaderName::ReferTo).collect();
        let target = match values.as_slice() {
            [one] => refer_target(one),
            _ => None,
        };
        let Some(target) = target else {
            self.record.bad_refers += 1;
            let reason = if values.is_empty() {
                "Missing Refer-To"
            } else {
                "Bad Refer-To"
            };
            let resp = req.make_response(400, reason, None);
            self.respond_cached(ctx, now, src, branch, req, resp);
            return;
        };
        if matches!(
            self.dialogs[i].transfer,
            Some(Transfer::Accepted | Transfer::Trying)
        ) {
            let mut resp = req.make_response(500, "Transfer In Progress", None);
            resp.headers.push(HeaderName::RetryAfter, "1");
            self.respond_cached(ctx, now, src, branch, req, resp);
            return;
        }
        let mut resp = req.make_response(202, "Accepted", None);
        resp.headers.push(HeaderName::Contact, ctx.contact());
        self.respond_cached(ctx, now, src, branch, req, resp);
        tracing::debug!(call_id = %self.call_id, %target, "uas: REFER accepted");
        self.record.refer_to = Some(target.clone());
        let d = &mut self.dialogs[i];
        d.transfer = Some(Transfer::Accepted);
        d.notify_at = Some(now + ctx.cfg.refer_notify_delay);
        ctx.event(UasEvent::Referred {
            call: UasCallId(ctx.key),
            target,
        });
    }

    /// Send a response to a non-INVITE (or stray) request and keep it for Timer J.
    fn respond_cached(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Instant,
        src: SocketAddr,
        branch: &str,
        req: &Request,
        resp: Response,
    ) {
        let bytes = resp.to_bytes();
        self.cache.push(Cached {
            branch: branch.to_owned(),
            method: req.method.clone(),
            bytes: bytes.clone(),
            dest: src,
            until: now + ctx.t1() * 64,
        });
        ctx.send(src, bytes);
    }
}

impl UasCall {
    // ----- our own requests --------------------------------------------------------------

    fn send_in_dialog(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Instant,
        i: usize,
        method: Method,
        purpose: Purpose,
        with_sdp: bool,
    ) {
        let body = with_sdp.then(|| self.sdp_body(ctx, self.dialogs[i].local_seq + 2, true));
        let mut r = self.in_dialog_request(ctx, i, method);
        let d = &mut self.dialogs[i];
        if purpose == Purpose::Refresh
            && let Some(s) = d.session
        {
            r.headers.push(HeaderName::Supported, "timer");
            r.headers.push(
                HeaderName::SessionExpires,
                format!("{};refresher=uac", s.se),
            );
        }
        if let Some(body) = body {
            r.headers.push(HeaderName::ContentType, "application/sdp");
            r.body = body;
        }
        if matches!(purpose, Purpose::ReInvite | Purpose::Refresh) {
            d.offer_in_flight = true;
        }
        self.start_client(ctx, now, i, r, purpose);
    }

    /// A request of ours in dialog `i`, with the dialog's next CSeq and a Contact (not on BYE).
    fn in_dialog_request(&mut self, ctx: &mut Ctx<'_>, i: usize, method: Method) -> Request {
        let via = ctx.via();
        let contact = ctx.contact();
        let d = &mut self.dialogs[i];
        d.local_seq += 1;
        let mut r = Request::new(method.clone(), d.target_uri.clone());
        r.headers.push(HeaderName::Via, via);
        r.headers.push(HeaderName::MaxForwards, "70");
        r.headers
            .push(HeaderName::From, format!("{};tag={}", d.local_uri, d.tag));
        r.headers.push(HeaderName::To, d.remote.clone());
        r.headers.push(HeaderName::CallId, self.call_id.clone());
        r.headers
            .push(HeaderName::CSeq, format!("{} {method}", d.local_seq));
        if method != Method::Bye {
            r.headers.push(HeaderName::Contact, contact);
        }
        r
    }

    /// Send `r` in dialog `i` through a client transaction (retransmitted over UDP).
    fn start_client(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Instant,
        i: usize,
        r: Request,
        purpose: Purpose,
    ) {
        let tx = ClientTransaction::new(r, ctx.reliable(), ctx.cfg.timers, now);
        ctx.send(self.dialogs[i].target, tx.bytes().to_vec());
        self.clients.push(OutTx {
            tx,
            dialog: i,
            purpose,
            ack: None,
            done: false,
        });
    }

    /// The next NOTIFY of dialog `i`'s REFER subscription: `100 Trying` (subscription active),
    /// then `200 OK` (terminated: the transfer target answered).
    fn send_notify(&mut self, ctx: &mut Ctx<'_>, now: Instant, i: usize) {
        let (state, frag, next) = match self.dialogs[i].transfer {
            Some(Transfer::Accepted) => (
                "active;expires=60",
                "SIP/2.0 100 Trying\r\n",
                Transfer::Trying,
            ),
            Some(Transfer::Trying) => (
                "terminated;reason=noresource",
                "SIP/2.0 200 OK\r\n",
                Transfer::Done,
            ),
            Some(Transfer::Done) | None => return,
        };
        self.dialogs[i].transfer = Some(next);
        let mut r = self.in_dialog_request(ctx, i, Method::Notify);
        r.headers.push(HeaderName::Event, "refer");
        r.headers.push(HeaderName::SubscriptionState, state);
        r.headers
            .push(HeaderName::ContentType, "message/sipfrag;version=2.0");
        r.body = frag.as_bytes().to_vec();
        self.start_client(ctx, now, i, r, Purpose::Notify);
    }

    fn send_bye(&mut self, ctx: &mut Ctx<'_>, now: Instant, i: usize) {
        if matches!(
            self.dialogs[i].state,
            DlgState::Terminating | DlgState::Terminated
        ) {
            return;
        }
        let d = &mut self.dialogs[i];
        d.state = DlgState::Terminating;
        d.pending_2xx = None;
        self.record.dialogs[i].bye_sent = true;
        self.send_in_dialog(ctx, now, i, Method::Bye, Purpose::Bye, false);
    }

    fn send_refresh(&mut self, ctx: &mut Ctx<'_>, now: Instant, i: usize) {
        self.record.refreshes_sent += 1;
        if ctx.cfg.use_update && self.dialogs[i].peer_allows_update {
            self.send_in_dialog(ctx, now, i, Method::Update, Purpose::Refresh, false);
        } else {
            self.send_in_dialog(ctx, now, i, Method::Invite, Purpose::Refresh, true);
        }
    }

    fn on_response(&mut self, ctx: &mut Ctx<'_>, now: Instant, resp: &Response) -> bool {
        let Some(cseq) = resp.headers.cseq() else {
            return false;
        };
        let Some(branch) = resp
            .headers
            .top_via()
            .and_then(|v| v.branch().map(str::to_owned))
        else {
            return false;
        };
        let Some(k) = self
            .clients
            .iter()
            .position(|c| c.tx.branch() == branch && *c.tx.method() == cseq.method)
        else {
            return false;
        };
        let dest = self.dialogs[self.clients[k].dialog].target;
        match self.clients[k].tx.handle_response(now, resp) {
            ResponseAction::Absorb => {}
            ResponseAction::Ack(ack) => ctx.send(dest, ack.to_bytes()),
            ResponseAction::PassUpAndAck(ack) => {
                ctx.send(dest, ack.to_bytes());
                self.on_client_final(ctx, now, k, resp);
            }
            ResponseAction::PassUp => {
                if resp.status >= 200 {
                    self.on_client_final(ctx, now, k, resp);
                }
            }
        }
        true
    }

    fn on_client_final(&mut self, ctx: &mut Ctx<'_>, now: Instant, k: usize, resp: &Response) {
        let status = resp.status;
        let i = self.clients[k].dialog;
        let purpose = self.clients[k].purpose;
        let is_invite = *self.clients[k].tx.method() == Method::Invite;
        if is_invite && resp.is_success() {
            // ACK the 2xx of our re-INVITE (again when it is retransmitted).
            if self.clients[k].ack.is_none() {
                let seq = resp.headers.cseq().map_or(0, |c| c.seq);
                let via = ctx.via();
                let d = &self.dialogs[i];
                let mut ack = Request::new(Method::Ack, d.target_uri.clone());
                ack.headers.push(HeaderName::Via, via);
                ack.headers.push(HeaderName::MaxForwards, "70");
                ack.headers
                    .push(HeaderName::From, format!("{};tag={}", d.local_uri, d.tag));
                ack.headers.push(HeaderName::To, d.remote.clone());
                ack.headers.push(HeaderName::CallId, self.call_id.clone());
                ack.headers.push(HeaderName::CSeq, format!("{seq} ACK"));
                self.clients[k].ack = Some(ack.to_bytes());
            }
            if let Some(ack) = self.clients[k].ack.clone() {
                ctx.send(self.dialogs[i].target, ack);
            }
        }
        if self.clients[k].done {
            return;
        }
        self.clients[k].done = true;
        let d = &mut self.dialogs[i];
        match purpose {
            Purpose::Bye => {
                self.record.dialogs[i].bye_status = Some(status);
                d.state = DlgState::Terminated;
            }
            Purpose::ReInvite => {
                d.offer_in_flight = false;
                self.record.reinvite_status = Some(status);
                self.record.reinvite_answer_sdp = resp.is_success()
                    && !resp.body.is_empty()
                    && resp.headers.content_type().as_deref() == Some("application/sdp");
            }
            Purpose::Refresh => {
                d.offer_in_flight = false;
                if resp.is_success() {
                    self.record.refreshes_ok += 1;
                    if let Some(s) = d.session {
                        d.refresh_at = Some(now + Duration::from_secs(u64::from(s.se)) / 2);
                    }
                } else if matches!(status, 408 | 481) {
                    self.send_bye(ctx, now, i);
                }
            }
            Purpose::Notify => {
                self.record.notify_statuses.push(status);
                if !resp.is_success() {
                    // RFC 6665 §4.1.3: a NOTIFY refused ends the subscription.
                    d.transfer = Some(Transfer::Done);
                    d.notify_at = None;
                } else if d.transfer == Some(Transfer::Trying) {
                    d.notify_at = Some(now + ctx.cfg.refer_notify_delay);
                }
            }
        }
    }

    fn on_client_timeout(&mut self, ctx: &mut Ctx<'_>, now: Instant, k: usize) {
        if self.clients[k].done {
            return;
        }
        self.clients[k].done = true;
        let i = self.clients[k].dialog;
        match self.clients[k].purpose {
            Purpose::Bye => {
                self.record.dialogs[i].bye_status = Some(408);
                self.dialogs[i].state = DlgState::Terminated;
            }
            Purpose::ReInvite => {
                self.dialogs[i].offer_in_flight = false;
                self.record.reinvite_status = Some(408);
            }
            Purpose::Refresh => {
                self.dialogs[i].offer_in_flight = false;
                self.send_bye(ctx, now, i);
            }
            Purpose::Notify => {
                self.record.notify_statuses.push(408);
                let d = &mut self.dialogs[i];
                d.transfer = Some(Transfer::Done);
                d.notify_at = None;
            }
        }
    }

    // ----- timers ------------------------------------------------------------------------

    fn handle_timeout(&mut self, ctx: &mut Ctx<'_>, now: Instant) {
        let t2 = ctx.cfg.timers.t2;
        for idx in 0..self.invites.len() {
            let tx = &mut self.invites[idx];
            if due(tx.answer_at, now) {
                tx.answer_at = None;
                if tx.state == InvState::Proceeding {
                    self.answer(ctx, now, idx);
                }
            }
            let tx = &mut self.invites[idx];
            if due(tx.ring_limit, now) {
                tx.ring_limit = None;
                if tx.state == InvState::Proceeding {
                    self.final_non2xx(ctx, now, idx, 480, None);
                }
            }
            let tx = &mut self.invites[idx];
            if let Some((at, interval)) = tx.retransmit
                && at <= now
            {
                // Timer G.
                let next = (interval * 2).min(t2);
                tx.retransmit = Some((now + next, next));
                if let Some(last) = tx.last.clone() {
                    ctx.send(tx.src, last);
                }
            }
            if due(tx.deadline, now) {
                if tx.state == InvState::Completed {
                    self.record.non2xx_unacked += 1; // Timer H
                }
                tx.state = InvState::Terminated;
                tx.deadline = None;
                tx.retransmit = None;
            }
        }
        for i in 0..self.dialogs.len() {
            let d = &mut self.dialogs[i];
            if let Some(p) = d.pending_2xx.as_mut() {
                if p.give_up <= now {
                    let initial = p.initial;
                    d.pending_2xx = None;
                    self.record.dialogs[i].no_ack |= initial;
                    // RFC 3261 §13.3.1.4: no ACK within 64·T1, end the dialog with BYE.
                    if d.state == DlgState::WaitAck {
                        d.state = DlgState::Confirmed;
                    }
                    self.send_bye(ctx, now, i);
                    continue;
                } else if p.next <= now {
                    p.interval = (p.interval * 2).min(t2);
                    p.next = now + p.interval;
                    let bytes = p.bytes.clone();
                    ctx.send(d.target, bytes);
                }
            }
            let d = &mut self.dialogs[i];
            if d.state != DlgState::Confirmed {
                continue;
            }
            if due(d.bye_at, now) {
                d.bye_at = None;
                self.send_bye(ctx, now, i);
                continue;
            }
            if due(d.expire_at, now) {
                d.expire_at = None;
                self.record.session_expired = true;
                self.send_bye(ctx, now, i);
                continue;
            }
            if due(d.reinvite_at, now) {
                d.reinvite_at = None;
                self.send_in_dialog(ctx, now, i, Method::Invite, Purpose::ReInvite, true);
            }
            let d = &mut self.dialogs[i];
            if due(d.refresh_at, now) {
                d.refresh_at = None;
                if d.offer_in_flight {
                    d.refresh_at = Some(now + ctx.t1() * 4);
                } else {
                    self.send_refresh(ctx, now, i);
                }
            }
            let d = &mut self.dialogs[i];
            if due(d.notify_at, now) {
                d.notify_at = None;
                self.send_notify(ctx, now, i);
            }
        }
        let mut k = 0;
        while k < self.clients.len() {
            if self.clients[k].tx.poll_timeout().is_some_and(|t| t <= now) {
                match self.clients[k].tx.handle_timeout(now) {
                    Some(TimerAction::Retransmit) => {
                        let dest = self.dialogs[self.clients[k].dialog].target;
                        ctx.send(dest, self.clients[k].tx.bytes().to_vec());
                    }
                    Some(TimerAction::Timeout) => {
                        self.on_client_timeout(ctx, now, k);
                        self.clients.remove(k);
                        continue;
                    }
                    Some(TimerAction::Terminated) => {
                        self.clients.remove(k);
                        continue;
                    }
                    None => {}
                }
            }
            k += 1;
        }
        self.cache.retain(|c| c.until > now);
    }
}

// ----- the crowd -------------------------------------------------------------------------

/// Many simulated callees behind one address.
#[derive(Debug)]
pub struct Uas {
    cfg: UasConfig,
    ids: IdGen,
    next_key: u64,
    calls: HashMap<u64, UasCall>,
    by_call_id: HashMap<String, u64>,
    assigned: HashMap<String, Persona>,
    done: HashMap<String, CallRecord>,
    timers: TimerHeap<u64>,
    out: VecDeque<UasTransmit>,
    events: VecDeque<UasEvent>,
    stats: UasStats,
}

/// Split borrows of a [`Uas`] for one call's handling.
macro_rules! ctx {
    ($self:ident, $transport:expr, $key:expr) => {
        Ctx {
            cfg: &$self.cfg,
            ids: &mut $self.ids,
            out: &mut $self.out,
            events: &mut $self.events,
            transport: $transport,
            key: $key,
        }
    };
}

impl Uas {
    pub fn new(cfg: UasConfig) -> Self {
        Self {
            ids: IdGen::new(cfg.seed),
            cfg,
            next_key: 1,
            calls: HashMap::new(),
            by_call_id: HashMap::new(),
            assigned: HashMap::new(),
            done: HashMap::new(),
            timers: TimerHeap::default(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: UasStats::default(),
        }
    }

    pub fn config(&self) -> &UasConfig {
        &self.cfg
    }

    pub fn stats(&self) -> UasStats {
        self.stats
    }

    /// Play `persona` on the call with this Call-ID when its INVITE arrives.
    pub fn assign(&mut self, call_id: &str, persona: Persona) {
        self.assigned.insert(call_id.to_owned(), persona);
    }

    /// Calls whose state is still held.
    pub fn live_calls(&self) -> usize {
        self.calls.len()
    }

    /// What the UAS saw of the call with this Call-ID.
    pub fn record(&self, call_id: &str) -> Option<&CallRecord> {
        match self.by_call_id.get(call_id) {
            Some(k) => self.calls.get(k).map(|c| &c.record),
            None => self.done.get(call_id),
        }
    }

    /// What the UAS saw of a live call (driven mode).
    pub fn call_record(&self, call: UasCallId) -> Option<&CallRecord> {
        self.calls.get(&call.0).map(|c| &c.record)
    }

    /// Every call record, live and finished.
    pub fn records(&self) -> impl Iterator<Item = (&str, &CallRecord)> {
        self.calls
            .values()
            .map(|c| (c.call_id.as_str(), &c.record))
            .chain(self.done.iter().map(|(k, r)| (k.as_str(), r)))
    }

    /// Feed one datagram received over UDP from `src`.
    pub fn handle_datagram(&mut self, now: Instant, src: SocketAddr, data: &[u8]) {
        self.handle_message(now, Transport::Udp, src, data);
    }

    /// Feed one message received from `src` (over TCP: one framed message of the connection
    /// with `src`).
    pub fn handle_message(
        &mut self,
        now: Instant,
        transport: Transport,
        src: SocketAddr,
        data: &[u8],
    ) {
        self.stats.received += 1;
        let msg = match Message::parse_with(data, &self.cfg.limits) {
            Ok(m) => m,
            Err(e) => {
                self.stats.parse_errors += 1;
                tracing::debug!(%src, error = %e, "uas: unparsable message");
                return;
            }
        };
        let key = msg
            .headers()
            .call_id()
            .and_then(|id| self.by_call_id.get(id))
            .copied();
        match msg {
            Message::Response(resp) => {
                let matched = key.is_some_and(|k| {
                    let Some(c) = self.calls.get_mut(&k) else {
                        return false;
                    };
                    let mut ctx = ctx!(self, c.transport, k);
                    c.on_response(&mut ctx, now, &resp)
                });
                if !matched {
                    self.stats.stray_responses += 1;
                }
                if let Some(k) = key {
                    self.after(k);
                }
            }
            Message::Request(req) => {
                let key = match key {
                    Some(k) => k,
                    None => {
                        let call_id = req.headers.call_id().unwrap_or_default().to_owned();
                        let initial =
                            req.method == Method::Invite && req.headers.to_tag().is_none();
                        if !initial || self.done.contains_key(&call_id) {
                            if initial {
                                self.stats.late_invites += 1;
                            } else {
                                self.stats.stray_requests += 1;
                                self.reject_stray(transport, src, &req);
                            }
                            return;
                        }
                        let assigned = self.assigned.remove(&call_id);
                        let awaiting_accept = assigned.is_none() && self.cfg.driven;
                        let persona = assigned.unwrap_or_else(|| self.cfg.default_persona.clone());
                        let k = self.next_key;
                        self.next_key += 1;
                        self.stats.calls += 1;
                        tracing::debug!(call_id, persona = persona.name(), "uas: new call");
                        let mut call =
                            UasCall::new(call_id.clone(), transport, persona, &mut self.ids);
                        call.awaiting_accept = awaiting_accept;
                        self.by_call_id.insert(call_id.clone(), k);
                        self.calls.insert(k, call);
                        if awaiting_accept {
                            let attempt = req
                                .headers
                                .iter()
                                .find(|h| h.name.as_str().eq_ignore_ascii_case(sip::ATTEMPT_HEADER))
                                .map(|h| h.value.clone());
                            self.events.push_back(UasEvent::Incoming {
                                call: UasCallId(k),
                                transport,
                                src,
                                call_id: call_id.clone(),
                                attempt,
                            });
                        }
                        k
                    }
                };
                if let Some(call) = self.calls.get_mut(&key) {
                    let mut ctx = ctx!(self, call.transport, key);
                    call.on_request(&mut ctx, now, src, &req);
                }
                self.after(key);
            }
        }
    }

    /// Driven mode: play `persona` on a new call ([`UasEvent::Incoming`]). With `media`, the
    /// INVITE's SDP offer is answered from it (an offer we cannot answer gets 488) and the 2xx
    /// carries that answer. False when the call is unknown or was already accepted.
    pub fn accept(
        &mut self,
        now: Instant,
        call: UasCallId,
        persona: Persona,
        media: Option<LocalMedia>,
    ) -> bool {
        let k = call.0;
        let Some(c) = self.calls.get_mut(&k) else {
            return false;
        };
        if !c.awaiting_accept {
            return false;
        }
        c.awaiting_accept = false;
        c.stage = persona.clone();
        c.record.persona = persona;
        c.local = media;
        let mut ctx = ctx!(self, c.transport, k);
        if let Some(idx) = c
            .invites
            .iter()
            .position(|t| t.state == InvState::Proceeding)
        {
            if c.answer_offer(idx).is_ok() {
                c.play(&mut ctx, now, idx);
            } else {
                c.final_non2xx(&mut ctx, now, idx, 488, None);
            }
        }
        self.after(k);
        true
    }

    /// End a call now: an unanswered one gets 480, an answered one a BYE (sent once the 2xx is
    /// ACKed, RFC 3261 §15). False when the call is unknown.
    pub fn hangup(&mut self, now: Instant, call: UasCallId) -> bool {
        let k = call.0;
        let Some(c) = self.calls.get_mut(&k) else {
            return false;
        };
        c.awaiting_accept = false;
        let mut ctx = ctx!(self, c.transport, k);
        for idx in 0..c.invites.len() {
            if c.invites[idx].state == InvState::Proceeding {
                c.final_non2xx(&mut ctx, now, idx, 480, None);
            }
        }
        for i in 0..c.dialogs.len() {
            match c.dialogs[i].state {
                DlgState::WaitAck => c.dialogs[i].bye_at = Some(now),
                DlgState::Confirmed => c.send_bye(&mut ctx, now, i),
                DlgState::Terminating | DlgState::Terminated => {}
            }
        }
        self.after(k);
        true
    }

    /// Run every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(k) = self.timers.pop_due(now) {
            if let Some(call) = self.calls.get_mut(&k) {
                let mut ctx = ctx!(self, call.transport, k);
                call.handle_timeout(&mut ctx, now);
            }
            self.after(k);
        }
    }

    pub fn poll_output(&mut self) -> Option<UasTransmit> {
        self.out.pop_front()
    }

    /// The next call event (driven mode; never anything otherwise).
    pub fn poll_event(&mut self) -> Option<UasEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Re-arm a call's timer, or forget it when it is finished.
    fn after(&mut self, k: u64) {
        self.rearm(k);
    }

    fn rearm(&mut self, k: u64) {
        let Some(call) = self.calls.get_mut(&k) else {
            return;
        };
        if self.cfg.driven
            && !call.end_reported
            && let Some(reason) = call.end_reason()
        {
            call.end_reported = true;
            self.events.push_back(UasEvent::Ended {
                call: UasCallId(k),
                reason,
            });
        }
        if call.is_finished() {
            if let Some(mut call) = self.calls.remove(&k) {
                self.by_call_id.remove(&call.call_id);
                self.timers.arm(k, None);
                self.stats.calls_finished += 1;
                if self.cfg.keep_records {
                    call.record.finished = true;
                    self.done.insert(call.call_id, call.record);
                }
            }
            return;
        }
        self.timers.arm(k, call.poll_timeout());
    }

    /// 481 to a request for no call we know (ACKs are dropped).
    fn reject_stray(&mut self, transport: Transport, src: SocketAddr, req: &Request) {
        if req.method == Method::Ack {
            return;
        }
        let resp = req.make_response(481, reason_phrase(481), Some(&self.ids.tag()));
        self.out.push_back(UasTransmit {
            transport,
            dest: src,
            data: resp.to_bytes(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UAC: &str = "127.0.0.1:5062";

    fn uac() -> SocketAddr {
        UAC.parse().unwrap()
    }

    fn uas(persona: Persona) -> Uas {
        let mut cfg = UasConfig::new("127.0.0.1:5070".parse().unwrap());
        cfg.default_persona = persona;
        Uas::new(cfg)
    }

    fn invite(branch: &str, call_id: &str) -> String {
        format!(
            "INVITE sip:100@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP {UAC};branch={branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1000@127.0.0.1>;tag=caller\r\nTo: <sip:100@127.0.0.1>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:1000@{UAC}>\r\n\
             Allow: INVITE, ACK, BYE, CANCEL, UPDATE\r\nContent-Length: 0\r\n\r\n"
        )
    }

    fn ack(branch: &str, call_id: &str, to_tag: &str) -> String {
        format!(
            "ACK sip:100@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP {UAC};branch={branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1000@127.0.0.1>;tag=caller\r\n\
             To: <sip:100@127.0.0.1>;tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\n\
             Content-Length: 0\r\n\r\n"
        )
    }

    fn responses(u: &mut Uas) -> Vec<Response> {
        let mut out = vec![];
        while let Some(t) = u.poll_output() {
            assert_eq!(t.dest, uac());
            if let Ok(Message::Response(r)) = Message::parse(&t.data) {
                out.push(r);
            }
        }
        out
    }

    fn statuses(u: &mut Uas) -> Vec<u16> {
        responses(u).iter().map(|r| r.status).collect()
    }

    /// Fire timers up to `until`; the offsets from `t0` at which something was sent.
    fn sends_until(u: &mut Uas, t0: Instant, until: Instant) -> Vec<u128> {
        let mut at = vec![];
        while let Some(t) = u.poll_timeout().filter(|t| *t <= until) {
            u.handle_timeout(t);
            while u.poll_output().is_some() {
                at.push((t - t0).as_millis());
            }
        }
        at
    }

    #[test]
    fn busy_is_retransmitted_until_acked_then_absorbed() {
        let t0 = Instant::now();
        let mut u = uas(Persona::Busy);
        u.handle_datagram(t0, uac(), invite("z9hG4bK1", "c1").as_bytes());
        let first = responses(&mut u);
        assert_eq!(
            first.iter().map(|r| r.status).collect::<Vec<_>>(),
            vec![100, 486]
        );
        assert_eq!(first[0].headers.to_tag(), None, "100 carries no To-tag");
        let tag = first[1].headers.to_tag().unwrap();
        // A retransmitted INVITE gets the final again.
        u.handle_datagram(t0, uac(), invite("z9hG4bK1", "c1").as_bytes());
        assert_eq!(statuses(&mut u), vec![486]);
        // Timer G: T1, 2·T1, … capped at T2.
        let sent = sends_until(&mut u, t0, t0 + Duration::from_millis(8000));
        assert_eq!(sent, vec![500, 1500, 3500, 7500]);
        u.handle_datagram(
            t0 + Duration::from_secs(8),
            uac(),
            ack("z9hG4bK1", "c1", &tag).as_bytes(),
        );
        assert!(u.poll_output().is_none(), "the ACK is absorbed");
        // Timer I (T4) then the call is gone, its record kept.
        assert_eq!(
            u.poll_timeout(),
            Some(t0 + Duration::from_secs(13)),
            "Timer I replaces Timer G"
        );
        u.handle_timeout(t0 + Duration::from_secs(13));
        assert_eq!(u.live_calls(), 0);
        let r = u.record("c1").unwrap();
        assert!(r.finished);
        assert_eq!((r.final_status, r.acks_for_non2xx), (Some(486), 1));
        assert_eq!((r.invites, r.invite_retransmissions), (1, 1));
    }

    #[test]
    fn two_xx_is_retransmitted_with_t1_doubling_capped_at_t2_until_ack() {
        let t0 = Instant::now();
        let mut u = uas(Persona::Answer {
            ring: Duration::ZERO,
            talk: None,
        });
        u.handle_datagram(t0, uac(), invite("z9hG4bK2", "c2").as_bytes());
        assert_eq!(statuses(&mut u), vec![100, 180]);
        u.handle_timeout(t0);
        let ok = responses(&mut u);
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].status, 200);
        assert_eq!(
            ok[0].headers.content_type().as_deref(),
            Some("application/sdp")
        );
        assert!(ok[0].headers.contact().is_some());
        let tag = ok[0].headers.to_tag().unwrap();
        let sent = sends_until(&mut u, t0, t0 + Duration::from_millis(16_000));
        assert_eq!(sent, vec![500, 1500, 3500, 7500, 11500, 15500]);
        u.handle_datagram(
            t0 + Duration::from_secs(16),
            uac(),
            ack("z9hG4bKack", "c2", &tag).as_bytes(),
        );
        assert!(
            sends_until(&mut u, t0, t0 + Duration::from_secs(60)).is_empty(),
            "the ACK stops the 2xx retransmissions"
        );
        let r = u.record("c2").unwrap();
        assert_eq!(r.dialogs[0].acks_for_2xx, 1);
        assert!(!r.dialogs[0].no_ack);
        assert_eq!(u.live_calls(), 1, "waiting for the caller's BYE");
    }

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                         m=audio 30000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\n\
                         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

    fn invite_with_offer(branch: &str, call_id: &str, transport: &str) -> String {
        invite_with_sdp(branch, call_id, transport, OFFER)
    }

    fn invite_with_sdp(branch: &str, call_id: &str, transport: &str, sdp: &str) -> String {
        invite(branch, call_id)
            .replace("SIP/2.0/UDP", &format!("SIP/2.0/{transport}"))
            .replace(
                "Content-Length: 0\r\n\r\n",
                &format!(
                    "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                    sdp.len()
                ),
            )
    }

    fn driven() -> Uas {
        let mut cfg = UasConfig::new("127.0.0.1:5070".parse().unwrap());
        cfg.driven = true;
        cfg.keep_records = false;
        Uas::new(cfg)
    }

    #[test]
    fn driven_calls_answer_with_the_callers_media_and_report_their_life() {
        let t0 = Instant::now();
        let mut u = driven();
        u.handle_message(
            t0,
            Transport::Tcp,
            uac(),
            invite_with_offer("z9hG4bKd1", "d1", "TCP").as_bytes(),
        );
        assert!(u.poll_output().is_none(), "nothing is sent before accept");
        let Some(UasEvent::Incoming {
            call, transport, ..
        }) = u.poll_event()
        else {
            panic!("no Incoming event");
        };
        assert_eq!(transport, Transport::Tcp);
        let local = LocalMedia::new("127.0.0.1".parse().unwrap(), 40002, 77);
        assert!(u.accept(
            t0,
            call,
            Persona::Answer {
                ring: Duration::from_millis(500),
                talk: None,
            },
            Some(local),
        ));
        assert!(!u.accept(t0, call, Persona::Busy, None), "accepted once");
        let sent: Vec<UasTransmit> = std::iter::from_fn(|| u.poll_output()).collect();
        assert!(sent.iter().all(|t| t.transport == Transport::Tcp));
        assert_eq!(sent.len(), 2, "100 and 180");
        let ring_end = u.poll_timeout().unwrap();
        assert_eq!(ring_end, t0 + Duration::from_millis(500));
        u.handle_timeout(ring_end);
        let ok = responses(&mut u).pop().unwrap();
        assert_eq!(ok.status, 200);
        assert!(ok.headers.contact().unwrap().uri.contains("transport=tcp"));
        let answer = SessionDescription::parse(&ok.body).unwrap();
        assert_eq!(
            answer.media[0].port, 40002,
            "our RTP port from the allocation"
        );
        assert_eq!(answer.media[0].formats[0].pt, 8, "the caller's first codec");
        let Some(UasEvent::Answered { media: Some(m), .. }) = u.poll_event() else {
            panic!("no Answered event");
        };
        assert_eq!(m.remote_rtp, "127.0.0.1:30000".parse().unwrap());
        assert_eq!(m.telephone_event_pt, Some(101));
        // Hanging up before the ACK waits for it (RFC 3261 §15).
        assert!(u.hangup(ring_end, call));
        assert!(u.poll_output().is_none());
        let tag = ok.headers.to_tag().unwrap();
        u.handle_message(
            ring_end,
            Transport::Tcp,
            uac(),
            ack("z9hG4bKa1", "d1", &tag).as_bytes(),
        );
        u.handle_timeout(ring_end);
        let bye = u.poll_output().unwrap();
        let Ok(Message::Request(bye)) = Message::parse(&bye.data) else {
            panic!("not a request");
        };
        assert_eq!(bye.method, Method::Bye);
        assert!(
            bye.headers
                .top_via()
                .unwrap()
                .to_string()
                .contains("SIP/2.0/TCP")
        );
        let resp = bye.make_response(200, "OK", None);
        u.handle_message(ring_end, Transport::Tcp, uac(), &resp.to_bytes());
        assert_eq!(
            u.poll_event(),
            Some(UasEvent::Ended {
                call,
                reason: EndReason::CalleeBye
            })
        );
        while let Some(t) = u.poll_timeout() {
            u.handle_timeout(t);
        }
        assert_eq!(u.live_calls(), 0);
        assert!(u.record("d1").is_none(), "no records kept");
        assert_eq!(u.poll_event(), None, "Ended is reported once");
    }

    #[test]
    fn driven_refusals_and_unanswerable_offers_end_at_once() {
        let t0 = Instant::now();
        let mut u = driven();
        u.handle_datagram(t0, uac(), invite("z9hG4bKb1", "b1").as_bytes());
        let Some(UasEvent::Incoming { call, .. }) = u.poll_event() else {
            panic!("no Incoming event");
        };
        u.accept(t0, call, Persona::Busy, None);
        assert_eq!(statuses(&mut u), vec![100, 486]);
        assert_eq!(
            u.poll_event(),
            Some(UasEvent::Ended {
                call,
                reason: EndReason::Refused(486)
            })
        );
        // An offer without a codec we know gets 488.
        let g729 = OFFER
            .replace("RTP/AVP 8 0 101", "RTP/AVP 18")
            .replace("a=rtpmap:8 PCMA/8000", "a=rtpmap:18 G729/8000");
        let offer = invite_with_sdp("z9hG4bKb2", "b2", "UDP", &g729);
        u.handle_datagram(t0, uac(), offer.as_bytes());
        let Some(UasEvent::Incoming { call, .. }) = u.poll_event() else {
            panic!("no Incoming event");
        };
        let local = LocalMedia::new("127.0.0.1".parse().unwrap(), 40004, 1);
        u.accept(
            t0,
            call,
            Persona::Answer {
                ring: Duration::ZERO,
                talk: None,
            },
            Some(local),
        );
        assert_eq!(statuses(&mut u), vec![488]);
        assert!(matches!(
            u.poll_event(),
            Some(UasEvent::Ended {
                reason: EndReason::Refused(488),
                ..
            })
        ));
    }

    #[test]
    fn strays_get_481_and_garbage_is_counted() {
        let t0 = Instant::now();
        let mut u = uas(Persona::Busy);
        let bye = "BYE sip:100@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKb\r\n\
                   From: <sip:1000@127.0.0.1>;tag=caller\r\nTo: <sip:100@127.0.0.1>;tag=x\r\n\
                   Call-ID: nobody\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
        u.handle_datagram(t0, uac(), bye.as_bytes());
        let cancel = bye.replace("BYE", "CANCEL");
        u.handle_datagram(t0, uac(), cancel.as_bytes());
        u.handle_datagram(t0, uac(), ack("z9hG4bKa", "nobody", "x").as_bytes());
        assert_eq!(statuses(&mut u), vec![481, 481], "ACKs are never answered");
        u.handle_datagram(t0, uac(), b"\xff\x00 not sip");
        let s = u.stats();
        assert_eq!((s.parse_errors, s.stray_requests, s.calls), (1, 3, 0));
        assert_eq!(u.poll_timeout(), None);
    }

    #[test]
    fn mangled_peer_input_never_panics() {
        let t0 = Instant::now();
        let personas = [
            Persona::Answer {
                ring: Duration::from_millis(300),
                talk: Some(Duration::from_secs(2)),
            },
            Persona::CancelRace,
            Persona::Fork { tags: 2 },
            Persona::Challenge {
                kind: ChallengeKind::Proxy,
                then: Box::new(Persona::ReInvite),
            },
            Persona::AnswerWithSessionTimer {
                se: 90,
                refresher_uac: false,
            },
        ];
        let mut rng = IdGen::new(3);
        for persona in personas {
            let mut u = uas(persona);
            let mut now = t0;
            for i in 0..400 {
                let cid = format!("c{}", i % 7);
                let base = match rng.below(4) {
                    0 => invite(&format!("z9hG4bK{}", i % 5), &cid),
                    1 => ack(&format!("z9hG4bK{}", i % 5), &cid, "x"),
                    2 => invite("z9hG4bK1", &cid).replace("INVITE", "CANCEL"),
                    _ => invite("z9hG4bK9", &cid)
                        .replace("INVITE", "BYE")
                        .replace("<sip:100@127.0.0.1>\r\n", "<sip:100@127.0.0.1>;tag=t\r\n"),
                };
                let mut bytes = base.into_bytes();
                for _ in 0..rng.below(4) {
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] = rng.below(256) as u8;
                }
                if rng.below(5) == 0 {
                    bytes.truncate(rng.below(bytes.len() as u64) as usize);
                }
                u.handle_datagram(now, uac(), &bytes);
                now += Duration::from_millis(rng.below(700));
                u.handle_timeout(now);
                while u.poll_output().is_some() {}
            }
            // Whatever happened, every call ends once time runs on.
            while let Some(t) = u.poll_timeout() {
                if t > now + Duration::from_secs(3600) {
                    break;
                }
                u.handle_timeout(t);
                while u.poll_output().is_some() {}
            }
            assert!(u.stats().received == 400);
        }
    }

    // ----- REFER (blind transfer) ------------------------------------------------------------

    const MANAGER: &str = "sip:manager@127.0.0.1:5090";

    /// A request of the caller in the dialog `to_tag` of call `call_id`.
    fn in_dialog(
        method: &str,
        branch: &str,
        call_id: &str,
        to_tag: &str,
        seq: u32,
        extra: &str,
    ) -> String {
        format!(
            "{method} sip:uas@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP {UAC};branch={branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1000@127.0.0.1>;tag=caller\r\n\
             To: <sip:100@127.0.0.1>;tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {seq} {method}\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        )
    }

    fn refer(branch: &str, call_id: &str, to_tag: &str, seq: u32, refer_to: &str) -> String {
        in_dialog(
            "REFER",
            branch,
            call_id,
            to_tag,
            seq,
            &format!("{refer_to}Referred-By: <sip:1000@127.0.0.1>\r\n"),
        )
    }

    /// Everything the UAS sent, parsed.
    fn sent(u: &mut Uas) -> Vec<Message> {
        std::iter::from_fn(|| u.poll_output())
            .map(|t| {
                assert_eq!(t.dest, uac());
                Message::parse(&t.data).expect("the UAS sends valid SIP")
            })
            .collect()
    }

    fn header<'a>(r: &'a Request, name: &HeaderName) -> Option<&'a str> {
        r.headers.get(name)
    }

    /// A driven call answered at `t0` and ACKed: the UAS, the call, its To-tag.
    fn answered_call(t0: Instant, call_id: &str) -> (Uas, UasCallId, String) {
        let mut u = driven();
        u.handle_datagram(t0, uac(), invite("z9hG4bKi", call_id).as_bytes());
        let Some(UasEvent::Incoming { call, .. }) = u.poll_event() else {
            panic!("no Incoming event");
        };
        let answer = Persona::Answer {
            ring: Duration::ZERO,
            talk: None,
        };
        assert!(u.accept(t0, call, answer, None));
        u.handle_timeout(t0);
        let ok = responses(&mut u).pop().expect("a 2xx");
        assert_eq!(ok.status, 200);
        assert!(
            ok.headers
                .list(&HeaderName::Allow)
                .any(|m| m.trim() == "REFER"),
            "REFER is advertised"
        );
        let tag = ok.headers.to_tag().unwrap();
        u.handle_datagram(t0, uac(), ack("z9hG4bKa", call_id, &tag).as_bytes());
        assert!(matches!(u.poll_event(), Some(UasEvent::Answered { .. })));
        assert!(u.poll_output().is_none());
        (u, call, tag)
    }

    /// Run the timers up to `until`; the requests sent on the way with their times.
    fn requests_until(u: &mut Uas, until: Instant) -> Vec<(Instant, Request)> {
        let mut out = vec![];
        while let Some(t) = u.poll_timeout().filter(|t| *t <= until) {
            u.handle_timeout(t);
            for m in sent(u) {
                if let Message::Request(r) = m {
                    out.push((t, r));
                }
            }
        }
        out
    }

    #[test]
    fn refer_is_accepted_then_notified_with_sipfrag_until_terminated() {
        let t0 = Instant::now();
        let (mut u, call, tag) = answered_call(t0, "x1");
        let t1 = t0 + Duration::from_secs(5);
        let req = refer(
            "z9hG4bKr1",
            "x1",
            &tag,
            2,
            &format!("Refer-To: <{MANAGER}>\r\n"),
        );
        u.handle_datagram(t1, uac(), req.as_bytes());
        assert_eq!(statuses(&mut u), vec![202]);
        assert_eq!(
            u.poll_event(),
            Some(UasEvent::Referred {
                call,
                target: MANAGER.into()
            })
        );
        // A retransmitted REFER gets the same 202 and nothing else.
        u.handle_datagram(t1, uac(), req.as_bytes());
        assert_eq!(statuses(&mut u), vec![202]);
        assert_eq!(u.poll_event(), None, "one transfer, one event");
        assert_eq!(
            u.call_record(call).unwrap().refer_to.as_deref(),
            Some(MANAGER)
        );

        // 200 ms later: NOTIFY "100 Trying", subscription active, in the dialog; over UDP it is
        // retransmitted (Timer E) until answered.
        let delay = u.config().refer_notify_delay;
        assert_eq!(delay, Duration::from_millis(200));
        let sent1 = requests_until(&mut u, t1 + delay + Duration::from_millis(600));
        assert_eq!(
            sent1.len(),
            2,
            "the NOTIFY and one retransmission: {sent1:?}"
        );
        let (at, n1) = &sent1[0];
        assert_eq!(*at, t1 + delay);
        assert_eq!(sent1[1].1, *n1, "the retransmission is the same request");
        assert_eq!(n1.method, Method::Notify);
        assert_eq!(n1.uri, "sip:1000@127.0.0.1:5062", "to the caller's Contact");
        assert_eq!(header(n1, &HeaderName::Event), Some("refer"));
        assert_eq!(
            header(n1, &HeaderName::SubscriptionState),
            Some("active;expires=60")
        );
        assert_eq!(
            header(n1, &HeaderName::ContentType),
            Some("message/sipfrag;version=2.0")
        );
        assert_eq!(n1.body, b"SIP/2.0 100 Trying\r\n");
        assert_eq!(n1.headers.call_id(), Some("x1"));
        assert_eq!(n1.headers.to_tag().as_deref(), Some("caller"));
        assert!(
            header(n1, &HeaderName::From)
                .unwrap()
                .ends_with(&format!(";tag={tag}"))
        );
        assert!(n1.headers.contact().is_some());
        let seq1 = n1.headers.cseq().unwrap().seq;
        let t2 = t1 + delay + Duration::from_millis(600);
        u.handle_datagram(t2, uac(), &n1.make_response(200, "OK", None).to_bytes());
        assert!(u.poll_output().is_none());

        // Its 2xx in, 200 ms later: the final NOTIFY "200 OK", subscription terminated.
        let sent2 = requests_until(&mut u, t2 + delay);
        assert_eq!(sent2.len(), 1, "{sent2:?}");
        let (at, n2) = &sent2[0];
        assert_eq!(*at, t2 + delay);
        assert_eq!(n2.method, Method::Notify);
        assert_eq!(header(n2, &HeaderName::Event), Some("refer"));
        assert_eq!(
            header(n2, &HeaderName::SubscriptionState),
            Some("terminated;reason=noresource")
        );
        assert_eq!(
            header(n2, &HeaderName::ContentType),
            Some("message/sipfrag;version=2.0")
        );
        assert_eq!(n2.body, b"SIP/2.0 200 OK\r\n");
        assert_eq!(
            n2.headers.cseq().unwrap().seq,
            seq1 + 1,
            "the dialog's next CSeq"
        );
        let t3 = t2 + delay;
        u.handle_datagram(t3, uac(), &n2.make_response(200, "OK", None).to_bytes());
        assert!(
            requests_until(&mut u, t3 + Duration::from_secs(5)).is_empty(),
            "no third NOTIFY"
        );
        let r = u.call_record(call).unwrap();
        assert_eq!(r.notify_statuses, vec![200, 200]);
        assert_eq!(r.bad_refers, 0);

        // The transferor hangs up: an ordinary BYE.
        let t4 = t3 + Duration::from_secs(5);
        u.handle_datagram(
            t4,
            uac(),
            in_dialog("BYE", "z9hG4bKb", "x1", &tag, 3, "").as_bytes(),
        );
        assert_eq!(statuses(&mut u), vec![200]);
        assert_eq!(
            u.poll_event(),
            Some(UasEvent::Ended {
                call,
                reason: EndReason::CallerBye
            })
        );
    }

    #[test]
    fn refer_without_one_usable_refer_to_gets_400() {
        let t0 = Instant::now();
        let (mut u, call, tag) = answered_call(t0, "x2");
        let bad = [
            ("z9hG4bKn1", String::new()),
            (
                "z9hG4bKn2",
                format!("Refer-To: <{MANAGER}>\r\nRefer-To: <sip:b@127.0.0.1>\r\n"),
            ),
            ("z9hG4bKn3", "Refer-To: <>\r\n".to_owned()),
            ("z9hG4bKn4", "Refer-To: <sip:oops\r\n".to_owned()),
        ];
        for (seq, (branch, refer_to)) in (2..).zip(&bad) {
            u.handle_datagram(
                t0,
                uac(),
                refer(branch, "x2", &tag, seq, refer_to).as_bytes(),
            );
            let resp = responses(&mut u);
            assert_eq!(resp.len(), 1);
            assert_eq!(resp[0].status, 400, "{refer_to:?}");
        }
        assert_eq!(u.poll_event(), None, "no transfer reported");
        assert!(
            requests_until(&mut u, t0 + Duration::from_secs(10)).is_empty(),
            "no NOTIFY for a refused REFER"
        );
        let r = u.call_record(call).unwrap();
        assert_eq!((r.bad_refers, r.refer_to.as_ref()), (4, None));
        // The dialog goes on: a good REFER is accepted; a second one while it is notified waits.
        let t1 = t0 + Duration::from_secs(10);
        let good = refer(
            "z9hG4bKg1",
            "x2",
            &tag,
            10,
            &format!("Refer-To: {MANAGER};x=1\r\n"),
        );
        u.handle_datagram(t1, uac(), good.as_bytes());
        assert_eq!(statuses(&mut u), vec![202]);
        let again = refer(
            "z9hG4bKg2",
            "x2",
            &tag,
            11,
            &format!("Refer-To: <{MANAGER}>\r\n"),
        );
        u.handle_datagram(t1, uac(), again.as_bytes());
        let busy = responses(&mut u);
        assert_eq!(busy[0].status, 500);
        assert_eq!(busy[0].headers.get(&HeaderName::RetryAfter), Some("1"));
        assert_eq!(
            u.poll_event(),
            Some(UasEvent::Referred {
                call,
                target: MANAGER.into()
            }),
            "header parameters are not part of the target"
        );
    }

    /// Our UAC ([`sip::Call`]) against the UAS in simulated time: REFER, 202, NOTIFY 100 then
    /// 200 seen as `ReferProgress`, then the transferor's BYE; the same under 20 % loss.
    fn transfer_through_the_harness(net: crate::NetConfig) {
        use crate::harness::{Pair, PairConfig};
        use sip::CallEvent;
        let mut p = Pair::new(PairConfig {
            net,
            ..PairConfig::default()
        });
        let cfg = p.call_config("380441234567");
        let h = p.place(
            cfg,
            Persona::Answer {
                ring: Duration::from_secs(1),
                talk: None,
            },
        );
        p.run_for(Duration::from_secs(5));
        assert!(
            p.events(h)
                .iter()
                .any(|(_, e)| matches!(e, CallEvent::Answered { .. })),
            "answered"
        );
        let now = p.now();
        p.endpoint
            .refer(now, h, MANAGER)
            .expect("REFER in the dialog");
        let progress = |p: &Pair| -> Vec<(u16, bool)> {
            p.events(h)
                .iter()
                .filter_map(|(_, e)| match e {
                    CallEvent::ReferProgress { status, done } => Some((*status, *done)),
                    _ => None,
                })
                .collect()
        };
        let deadline = p.now() + Duration::from_secs(60);
        while !progress(&p).last().is_some_and(|(_, done)| *done) {
            assert!(
                p.now() < deadline && p.step(),
                "no final NOTIFY: {:?}",
                p.events(h)
            );
        }
        assert_eq!(progress(&p), vec![(100, false), (200, true)]);
        // The transferor hangs up once the NOTIFY says the transfer is done.
        let now = p.now();
        p.endpoint.hangup(now, h).expect("BYE");
        assert!(p.run_until_idle(Duration::from_secs(3600)));
        let report = p.report(h).expect("the call ended");
        assert_eq!(report.hangup_by, Some(sip::HangupBy::Us));
        assert_eq!(report.outcome, sip::Outcome::Answered);
        let u = p.uas_record(h).expect("UAS record");
        assert_eq!(u.refer_to.as_deref(), Some(MANAGER));
        assert_eq!(u.notify_statuses, vec![200, 200]);
        assert!(u.got_bye() && u.finished);
        assert_eq!(p.uas.live_calls(), 0);
    }

    #[test]
    fn uac_transfer_is_notified_100_then_200_done() {
        transfer_through_the_harness(crate::NetConfig::default());
    }

    #[test]
    fn uac_transfer_survives_20_percent_loss() {
        for seed in [1, 2, 3] {
            transfer_through_the_harness(crate::NetConfig {
                loss: 0.2,
                seed,
                ..crate::NetConfig::default()
            });
        }
    }
}
