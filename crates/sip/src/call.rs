//! One outbound call, from INVITE to BYE, as a sans-IO state machine.
//!
//! The call owns its INVITE client transaction, the CANCEL/BYE/refresh transactions, digest
//! credentials, the early dialogs created by forked 18x responses, the confirmed dialog, the
//! RFC 4028 session timer and the small server-transaction cache for requests the far end sends
//! inside the dialog. It is driven like every state machine of this crate:
//!
//! ```text
//! call.handle_response(now, &resp) / call.handle_request(now, src, &req) / call.handle_timeout(now)
//! while let Some(out) = call.poll_output() { … }
//! next wake-up = call.poll_timeout()
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use crate::auth::Credentials;
use crate::auth::DigestSession;
use crate::dialog::{Dest, Dialog, Transport};
use crate::message::{HeaderName, Method, Request, Response, reason_phrase};
use crate::outcome::{HangupBy, Outcome, classify};
use crate::rng::IdGen;
use crate::sdp::{LocalMedia, Negotiated, SessionDescription, negotiate};
use crate::transaction::{ClientTransaction, ResponseAction, TimerAction, TimerConfig};
use crate::uri::Uri;

/// Everything needed to place one call.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// Request-URI, e.g. `sip:+380441234567@pbx.example.com:5060;transport=tcp`.
    pub request_uri: Uri,
    /// From URI (our caller id), e.g. `sip:1000@dialer.example`.
    pub from_uri: String,
    pub from_display: Option<String>,
    /// To URI; usually equal to the Request-URI without parameters.
    pub to_uri: String,
    /// Our Contact URI (where the far end sends in-dialog requests).
    pub contact: String,
    /// Via sent-by host and port.
    pub via_host: String,
    pub via_port: u16,
    pub transport: Transport,
    /// Where requests outside the dialog go (the trunk or outbound proxy).
    pub outbound: Dest,
    /// Preloaded Route headers (outbound proxy with `;lr`), sent on the INVITE.
    pub preloaded_route: Vec<String>,
    pub credentials: Option<Credentials>,
    /// Our media: the INVITE offers it, and offers from the far end (re-INVITE/UPDATE) are
    /// answered from it. `None`: no SDP at all.
    pub media: Option<LocalMedia>,
    /// CANCEL when no final answer arrives within this long after sending the INVITE.
    pub ring_timeout: Duration,
    /// Session-Expires to ask for (seconds); `None` disables session timers.
    pub session_expires: Option<u32>,
    /// Our Min-SE (RFC 4028 minimum is 90 s).
    pub min_se: u32,
    pub p_asserted_identity: Option<String>,
    pub user_agent: Option<String>,
    /// Extra headers for the INVITE, passed through untouched.
    pub extra_headers: Vec<(String, String)>,
    pub timers: TimerConfig,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallReport {
    pub outcome: Outcome,
    /// Final status of the INVITE (`None` on timeout/transport error).
    pub sip_status: Option<u16>,
    /// Reason phrase, or the Reason header text when present.
    pub reason: Option<String>,
    /// The raw Reason header (RFC 3326) of the final response or of the far end's BYE,
    /// e.g. `Q.850;cause=17;text="User busy"`.
    pub reason_header: Option<String>,
    /// For answered calls.
    pub hangup_by: Option<HangupBy>,
    /// Another trunk may be tried (5xx, timeout, transport failure).
    pub failover: bool,
    /// INVITE sent → final response.
    pub setup: Option<Duration>,
    /// Answer → end (answered calls).
    pub duration: Option<Duration>,
}

/// Something the call wants the driver or the application to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// 1xx (with SDP for early media).
    Progress {
        status: u16,
        early_sdp: Option<Vec<u8>>,
        /// What the early-media answer agreed (None without SDP or if it is unusable).
        early_media: Option<Negotiated>,
    },
    /// 2xx received and ACKed; `sdp` is the answer.
    Answered {
        sdp: Vec<u8>,
        /// Codec, remote RTP address, telephone-event PT, direction (None if the answer is
        /// missing or unusable; the call stays up and the application decides).
        media: Option<Negotiated>,
    },
    /// The far end changed the session (re-INVITE/UPDATE offer we answered, or the answer
    /// in the ACK of an offerless re-INVITE).
    RemoteSdp {
        sdp: Vec<u8>,
        media: Option<Negotiated>,
    },
    /// A digit signalled with SIP INFO (application/dtmf-relay or application/dtmf).
    Dtmf { digit: char, duration_ms: u32 },
    /// NOTIFY progress of a REFER we sent (status of the sipfrag).
    ReferProgress { status: u16, done: bool },
    /// The call is over; no further output follows except retransmission absorption.
    Ended(CallReport),
}

/// One datagram or stream message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub transport: Transport,
    pub dest: Dest,
    pub data: Vec<u8>,
}

/// Output of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Transmit(Transmit),
    Event(CallEvent),
}

/// Misuse of the call API (not peer misbehaviour).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    #[error("the call is already over")]
    Ended,
    #[error("the call is not answered")]
    NotAnswered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// INVITE out, waiting for a final response.
    Inviting,
    /// 2xx received, dialog confirmed.
    Confirmed,
    /// BYE sent.
    Terminating,
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Cancel,
    Bye,
    /// BYE for a forked 2xx we do not keep.
    ByeFork,
    Refresh,
    Refer,
}

#[derive(Debug)]
struct Pending {
    tx: ClientTransaction,
    purpose: Purpose,
    dest: Dest,
    transport: Transport,
    auth_rounds: u8,
}

/// Cached response of a server transaction (the far end's in-dialog request).
#[derive(Debug)]
struct ServerTx {
    branch: String,
    method: Method,
    response: Vec<u8>,
    src: SocketAddr,
    transport: Transport,
    /// Drop the entry at this time (Timer J / H).
    until: Instant,
    /// 2xx to a re-INVITE: retransmit until ACK (RFC 3261 §13.3.1.4).
    retransmit: Option<(Instant, Duration)>,
}

#[derive(Debug)]
struct EarlyDialog {
    tag: String,
    /// The early-media SDP of this fork (latest 18x with a body).
    sdp: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refresher {
    Us,
    Them,
}

/// One outbound call.
#[derive(Debug)]
pub struct Call {
    cfg: CallConfig,
    ids: IdGen,
    call_id: String,
    local_tag: String,
    phase: Phase,
    cseq: u32,
    invite: Option<ClientTransaction>,
    /// INVITE transactions replaced by a new INVITE after a 401/407/422: kept until Timer D so
    /// that a retransmission of their final response is ACKed again (RFC 3261 §17.1.1.2).
    old_invites: Vec<ClientTransaction>,
    invite_seq: u32,
    invite_sent_at: Instant,
    /// Authorization/Proxy-Authorization lines of the current INVITE (copied onto its ACK).
    invite_auth: Vec<(HeaderName, String)>,
    pending: Vec<Pending>,
    server: Vec<ServerTx>,
    auth: DigestSession,
    invite_auth_rounds: u8,
    session_rounds: u8,
    session_expires: Option<u32>,
    min_se: u32,
    early: Vec<EarlyDialog>,
    dialog: Option<Dialog>,
    ack_bytes: Option<Vec<u8>>,
    ring_deadline: Option<Instant>,
    /// To tags of forked 2xx we ACKed and BYEd, with that ACK (re-sent on retransmission).
    killed_forks: Vec<(String, Vec<u8>)>,
    cancel_requested: bool,
    cancel_sent_at: Option<Instant>,
    answered_at: Option<Instant>,
    setup: Option<Duration>,
    /// The SDP we last sent (offer or answer) and its bytes.
    local_desc: Option<SessionDescription>,
    local_sdp: Vec<u8>,
    peer_allows_update: bool,
    refresher: Option<Refresher>,
    refresh_at: Option<Instant>,
    expire_at: Option<Instant>,
    refresh_in_flight: bool,
    hangup_at: Option<Instant>,
    report: Option<CallReport>,
    reason_header: Option<String>,
    end_reason: Option<String>,
    out: VecDeque<Output>,
}

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY, REFER";
const MAX_AUTH_ROUNDS: u8 = 2;

impl Call {
    /// Create the call and queue its INVITE.
    pub fn new(now: Instant, cfg: CallConfig, seed: u64) -> Call {
        let mut ids = IdGen::new(seed);
        let call_id = format!("{}@{}", ids.call_id(), cfg.via_host);
        let local_tag = ids.tag();
        let mut call = Call {
            session_expires: cfg.session_expires,
            min_se: cfg.min_se,
            local_desc: cfg.media.as_ref().map(LocalMedia::offer),
            local_sdp: cfg
                .media
                .as_ref()
                .map(|m| m.offer().to_string_crlf().into_bytes())
                .unwrap_or_default(),
            ring_deadline: None,
            killed_forks: Vec::new(),
            cfg,
            ids,
            call_id,
            local_tag,
            phase: Phase::Inviting,
            cseq: 0,
            invite: None,
            old_invites: Vec::new(),
            invite_seq: 0,
            invite_sent_at: now,
            invite_auth: Vec::new(),
            pending: Vec::new(),
            server: Vec::new(),
            auth: DigestSession::default(),
            invite_auth_rounds: 0,
            session_rounds: 0,
            early: Vec::new(),
            dialog: None,
            ack_bytes: None,
            cancel_requested: false,
            cancel_sent_at: None,
            answered_at: None,
            setup: None,
            peer_allows_update: false,
            refresher: None,
            refresh_at: None,
            expire_at: None,
            refresh_in_flight: false,
            hangup_at: None,
            report: None,
            reason_header: None,
            end_reason: None,
            out: VecDeque::new(),
        };
        call.send_invite(now);
        call
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn local_tag(&self) -> &str {
        &self.local_tag
    }

    /// The report once the call has ended.
    pub fn report(&self) -> Option<&CallReport> {
        self.report.as_ref()
    }

    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    pub fn is_answered(&self) -> bool {
        self.answered_at.is_some()
    }

    /// Early-media SDP received in 18x, per To tag (forks), in arrival order.
    pub fn early_dialogs(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.early
            .iter()
            .map(|e| (e.tag.as_str(), e.sdp.as_deref()))
    }

    /// The confirmed dialog, if any.
    pub fn dialog(&self) -> Option<&Dialog> {
        self.dialog.as_ref()
    }

    /// Nothing left to do: ended, and no transaction still absorbing retransmissions.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Ended
            && self.pending.is_empty()
            && self.server.is_empty()
            && self.invite.as_ref().is_none_or(|t| t.is_terminated())
            && self.old_invites.is_empty()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Earliest deadline of any timer of this call.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        consider(self.invite.as_ref().and_then(|tx| tx.poll_timeout()));
        for tx in &self.old_invites {
            consider(tx.poll_timeout());
        }
        for p in &self.pending {
            consider(p.tx.poll_timeout());
        }
        for s in &self.server {
            consider(Some(s.until));
            consider(s.retransmit.map(|(at, _)| at));
        }
        if self.phase == Phase::Inviting {
            consider(self.ring_deadline);
            consider(self.cancel_sent_at.map(|t| t + self.cfg.timers.t1 * 64));
        }
        if self.phase == Phase::Confirmed {
            consider(self.refresh_at);
            consider(self.expire_at);
            consider(self.hangup_at);
        }
        t
    }

    /// Hang up: CANCEL before the answer, BYE after it.
    pub fn hangup(&mut self, now: Instant) -> Result<(), CallError> {
        match self.phase {
            Phase::Inviting => {
                self.request_cancel(now);
                Ok(())
            }
            Phase::Confirmed => {
                self.send_bye(now, HangupBy::Us, None);
                Ok(())
            }
            Phase::Terminating | Phase::Ended => Err(CallError::Ended),
        }
    }

    /// Hang up automatically at `at` once answered (the application's call length limit).
    pub fn hangup_at(&mut self, at: Instant) {
        self.hangup_at = Some(at);
    }

    /// Send a REFER (blind transfer) to `target` inside the confirmed dialog.
    pub fn refer(&mut self, now: Instant, target: &str) -> Result<(), CallError> {
        if self.phase != Phase::Confirmed {
            return Err(CallError::NotAnswered);
        }
        let mut req = self.in_dialog_request(Method::Refer);
        req.headers.push(HeaderName::ReferTo, format!("<{target}>"));
        req.headers
            .push(HeaderName::ReferredBy, format!("<{}>", self.cfg.from_uri));
        self.start_in_dialog(now, req, Purpose::Refer);
        Ok(())
    }

    /// Feed a response whose Call-ID is this call's.
    pub fn handle_response(&mut self, now: Instant, resp: &Response) {
        let Some(cseq) = resp.headers.cseq() else {
            return;
        };
        let Some(branch) = resp
            .headers
            .top_via()
            .and_then(|v| v.branch().map(str::to_owned))
        else {
            return;
        };
        if cseq.method == Method::Invite
            && let Some(tx) = self.invite.as_mut()
            && tx.branch() == branch
        {
            let action = tx.handle_response(now, resp);
            match action {
                ResponseAction::Absorb => {}
                ResponseAction::Ack(ack) => self.transmit_out(ack.to_bytes()),
                ResponseAction::PassUpAndAck(ack) => {
                    self.transmit_out(ack.to_bytes());
                    self.on_invite_final_error(now, resp);
                }
                ResponseAction::PassUp => self.on_invite_response(now, resp),
            }
            return;
        }
        if cseq.method == Method::Invite
            && let Some(tx) = self.old_invites.iter_mut().find(|t| t.branch() == branch)
        {
            // The final response of a replaced INVITE again: our ACK was lost, repeat it.
            if let ResponseAction::Ack(ack) = tx.handle_response(now, resp) {
                self.transmit_out(ack.to_bytes());
            }
            return;
        }
        let Some(idx) = self
            .pending
            .iter()
            .position(|p| p.tx.branch() == branch && *p.tx.method() == cseq.method)
        else {
            return; // stray: no such transaction
        };
        let action = self.pending[idx].tx.handle_response(now, resp);
        if action != ResponseAction::PassUp {
            return;
        }
        if resp.status >= 200 {
            self.on_pending_final(now, idx, resp);
        }
    }

    /// Feed a request the endpoint matched to this call (Call-ID and our tag). `src` is where it
    /// came from; responses go back there.
    pub fn handle_request(
        &mut self,
        now: Instant,
        src: SocketAddr,
        transport: Transport,
        req: &Request,
    ) {
        let branch = req
            .headers
            .top_via()
            .and_then(|v| v.branch().map(str::to_owned))
            .unwrap_or_default();
        if req.method == Method::Ack {
            // Ends the 2xx retransmission of a re-INVITE we answered.
            self.server
                .retain(|s| !(s.method == Method::Invite && s.retransmit.is_some()));
            if !req.body.is_empty() {
                let media = self.negotiate_answer(&req.body);
                self.out.push_back(Output::Event(CallEvent::RemoteSdp {
                    sdp: req.body.clone(),
                    media,
                }));
            }
            return;
        }
        // Retransmission of a request we already answered: send the same answer again.
        if let Some(s) = self
            .server
            .iter()
            .find(|s| s.branch == branch && s.method == req.method)
        {
            let (data, transport, src) = (s.response.clone(), s.transport, s.src);
            self.out.push_back(Output::Transmit(Transmit {
                transport,
                dest: Dest::Addr(src),
                data,
            }));
            return;
        }
        let Some(dialog) = self.dialog.as_mut() else {
            // Early: only BYE/CANCEL could come here; the INVITE is ours, so no dialog to end yet.
            let resp = req.make_response(481, reason_phrase(481), None);
            self.respond(now, src, transport, &branch, req, resp);
            return;
        };
        let seq = req.headers.cseq().map(|c| c.seq).unwrap_or(0);
        if let Some(remote) = dialog.remote_seq
            && seq < remote
        {
            let resp = req.make_response(500, "Out of Order CSeq", None);
            self.respond(now, src, transport, &branch, req, resp);
            return;
        }
        dialog.remote_seq = Some(seq);
        match req.method {
            Method::Bye => {
                self.reason_header = req.headers.get(&HeaderName::Reason).map(str::to_owned);
                let resp = req.make_response(200, "OK", None);
                self.respond(now, src, transport, &branch, req, resp);
                if matches!(self.phase, Phase::Confirmed | Phase::Terminating) {
                    self.finish_answered(now, HangupBy::Them, None);
                }
            }
            Method::Invite | Method::Update => {
                self.on_session_request(now, src, transport, &branch, req)
            }
            Method::Options => {
                let mut resp = req.make_response(200, "OK", None);
                resp.headers.push(HeaderName::Allow, ALLOW);
                resp.headers.push(HeaderName::Accept, "application/sdp");
                self.respond(now, src, transport, &branch, req, resp);
            }
            Method::Info => {
                if let Some((digit, duration_ms)) = parse_dtmf_info(req) {
                    self.out
                        .push_back(Output::Event(CallEvent::Dtmf { digit, duration_ms }));
                }
                let resp = req.make_response(200, "OK", None);
                self.respond(now, src, transport, &branch, req, resp);
            }
            Method::Notify => {
                let refer = req
                    .headers
                    .get(&HeaderName::Event)
                    .is_some_and(|e| e.trim().to_ascii_lowercase().starts_with("refer"));
                if refer {
                    if let Some(status) = parse_sipfrag_status(&req.body) {
                        let done =
                            req.headers
                                .get(&HeaderName::SubscriptionState)
                                .is_some_and(|s| {
                                    s.trim().to_ascii_lowercase().starts_with("terminated")
                                });
                        self.out
                            .push_back(Output::Event(CallEvent::ReferProgress { status, done }));
                    }
                    let resp = req.make_response(200, "OK", None);
                    self.respond(now, src, transport, &branch, req, resp);
                } else {
                    let resp = req.make_response(489, "Bad Event", None);
                    self.respond(now, src, transport, &branch, req, resp);
                }
            }
            Method::Cancel => {
                // We never have a pending server INVITE long enough to cancel (we answer at once).
                let resp = req.make_response(481, reason_phrase(481), None);
                self.respond(now, src, transport, &branch, req, resp);
            }
            _ => {
                let mut resp = req.make_response(405, reason_phrase(405), None);
                resp.headers.push(HeaderName::Allow, ALLOW);
                self.respond(now, src, transport, &branch, req, resp);
            }
        }
    }

    /// The transport could not deliver to `dest` (TCP connection refused/closed, ICMP error).
    pub fn handle_transport_error(&mut self, now: Instant, dest: &Dest) {
        if self.phase == Phase::Inviting && *dest == self.cfg.outbound {
            if let Some(tx) = self.invite.as_mut() {
                tx.handle_transport_error();
            }
            self.end(
                now,
                Outcome::Failed,
                None,
                Some("transport error".into()),
                true,
            );
        }
    }

    /// Run due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(tx) = self.invite.as_mut()
            && tx.poll_timeout().is_some_and(|t| t <= now)
        {
            match tx.handle_timeout(now) {
                Some(TimerAction::Retransmit) => {
                    let data = tx.bytes().to_vec();
                    self.transmit_out(data);
                }
                Some(TimerAction::Timeout) => {
                    // Timer B runs only while nothing was heard: the trunk is unreachable.
                    if self.phase == Phase::Inviting {
                        self.end(now, Outcome::Failed, None, Some("timeout".into()), true);
                    }
                }
                Some(TimerAction::Terminated) | None => {}
            }
        }
        for tx in &mut self.old_invites {
            if tx.poll_timeout().is_some_and(|t| t <= now) {
                tx.handle_timeout(now); // only Timer D runs in Completed
            }
        }
        self.old_invites.retain(|t| !t.is_terminated());
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].tx.poll_timeout().is_some_and(|t| t <= now) {
                match self.pending[i].tx.handle_timeout(now) {
                    Some(TimerAction::Retransmit) => {
                        let p = &self.pending[i];
                        self.out.push_back(Output::Transmit(Transmit {
                            transport: p.transport,
                            dest: p.dest.clone(),
                            data: p.tx.bytes().to_vec(),
                        }));
                    }
                    Some(TimerAction::Timeout) => {
                        let p = self.pending.remove(i);
                        self.on_pending_timeout(now, p.purpose);
                        continue;
                    }
                    Some(TimerAction::Terminated) => {
                        self.pending.remove(i);
                        continue;
                    }
                    None => {}
                }
            }
            i += 1;
        }
        let mut give_up = false;
        for s in &mut self.server {
            if let Some((at, interval)) = s.retransmit
                && now >= at
            {
                let next = (interval * 2).min(self.cfg.timers.t2);
                s.retransmit = Some((now + next, next));
                self.out.push_back(Output::Transmit(Transmit {
                    transport: s.transport,
                    dest: Dest::Addr(s.src),
                    data: s.response.clone(),
                }));
            }
            if now >= s.until && s.retransmit.is_some() {
                give_up = true; // no ACK for our 2xx within 64·T1
            }
        }
        self.server.retain(|s| now < s.until);
        if give_up && self.phase == Phase::Confirmed {
            self.send_bye(now, HangupBy::Us, Some("no ACK".into()));
        }
        match self.phase {
            Phase::Inviting => {
                if self.ring_deadline.is_some_and(|t| now >= t) {
                    self.ring_deadline = None;
                    self.request_cancel(now);
                }
                if self
                    .cancel_sent_at
                    .is_some_and(|t| now >= t + self.cfg.timers.t1 * 64)
                {
                    // RFC 3261 §9.1: no final response 64·T1 after CANCEL.
                    self.end(
                        now,
                        Outcome::NoAnswer,
                        None,
                        Some("no response to CANCEL".into()),
                        false,
                    );
                }
            }
            Phase::Confirmed => {
                if self.hangup_at.is_some_and(|t| now >= t) {
                    self.hangup_at = None;
                    self.send_bye(now, HangupBy::Us, None);
                } else if self.expire_at.is_some_and(|t| now >= t) {
                    self.expire_at = None;
                    self.send_bye(now, HangupBy::Us, Some("session expired".into()));
                } else if self.refresh_at.is_some_and(|t| now >= t) {
                    self.refresh_at = None;
                    self.send_refresh(now);
                }
            }
            Phase::Terminating | Phase::Ended => {}
        }
    }

    // ----- INVITE side -------------------------------------------------------------------

    fn send_invite(&mut self, now: Instant) {
        // The ring timeout counts from the INVITE that can ring (restarted after a challenge).
        if !self.cancel_requested {
            self.ring_deadline = Some(now + self.cfg.ring_timeout);
        }
        self.cseq += 1;
        self.invite_seq = self.cseq;
        let mut req = Request::new(Method::Invite, self.cfg.request_uri.as_str());
        req.headers.push(HeaderName::Via, self.via());
        req.headers.push(HeaderName::MaxForwards, "70");
        for r in &self.cfg.preloaded_route {
            req.headers.push(HeaderName::Route, r.clone());
        }
        let from = match &self.cfg.from_display {
            Some(d) => format!(
                "\"{}\" <{}>;tag={}",
                d.replace(['"', '\\'], ""),
                self.cfg.from_uri,
                self.local_tag
            ),
            None => format!("<{}>;tag={}", self.cfg.from_uri, self.local_tag),
        };
        req.headers.push(HeaderName::From, from);
        req.headers
            .push(HeaderName::To, format!("<{}>", self.cfg.to_uri));
        req.headers.push(HeaderName::CallId, self.call_id.clone());
        req.headers
            .push(HeaderName::CSeq, format!("{} INVITE", self.invite_seq));
        req.headers
            .push(HeaderName::Contact, format!("<{}>", self.cfg.contact));
        if let Some(pai) = &self.cfg.p_asserted_identity {
            req.headers
                .push(HeaderName::PAssertedIdentity, format!("<{pai}>"));
        }
        req.headers.push(HeaderName::Allow, ALLOW);
        if let Some(se) = self.session_expires {
            req.headers.push(HeaderName::Supported, "timer");
            req.headers.push(HeaderName::SessionExpires, se.to_string());
            req.headers.push(HeaderName::MinSe, self.min_se.to_string());
        }
        if let Some(ua) = &self.cfg.user_agent {
            req.headers.push(HeaderName::UserAgent, ua.clone());
        }
        for (n, v) in &self.cfg.extra_headers {
            req.headers.push(HeaderName::from_wire(n), v.clone());
        }
        if !self.local_sdp.is_empty() {
            req.headers.push(HeaderName::ContentType, "application/sdp");
            req.body = self.local_sdp.clone();
        }
        self.invite_auth = self.authorize(&mut req);
        let tx =
            ClientTransaction::new(req, self.cfg.transport.is_reliable(), self.cfg.timers, now);
        let data = tx.bytes().to_vec();
        if let Some(old) = self.invite.replace(tx)
            && !old.is_terminated()
        {
            self.old_invites.push(old);
        }
        self.transmit_out(data);
    }

    fn on_invite_response(&mut self, now: Instant, resp: &Response) {
        let status = resp.status;
        if status < 200 {
            if self.phase != Phase::Inviting {
                return;
            }
            let early_sdp = (!resp.body.is_empty()
                && resp.headers.content_type().as_deref() == Some("application/sdp"))
            .then(|| resp.body.clone());
            if status > 100
                && let Some(tag) = resp.headers.to_tag()
            {
                match self.early.iter_mut().find(|e| e.tag == tag) {
                    Some(e) => {
                        if early_sdp.is_some() {
                            e.sdp.clone_from(&early_sdp);
                        }
                    }
                    None => self.early.push(EarlyDialog {
                        tag,
                        sdp: early_sdp.clone(),
                    }),
                }
            }
            if status > 100 {
                let early_media = early_sdp.as_deref().and_then(|b| self.negotiate_answer(b));
                self.out.push_back(Output::Event(CallEvent::Progress {
                    status,
                    early_sdp,
                    early_media,
                }));
            }
            if self.cancel_requested && self.cancel_sent_at.is_none() {
                self.send_cancel(now);
            }
            return;
        }
        // 2xx
        let Some(tag) = resp.headers.to_tag() else {
            return; // a 2xx without To tag cannot be ACKed into a dialog
        };
        if let Some(d) = &self.dialog {
            if d.remote_tag == tag {
                // Retransmitted 2xx: our ACK was lost.
                if let Some(ack) = self.ack_bytes.clone() {
                    self.transmit_dialog(ack);
                }
            } else {
                self.kill_fork(now, resp);
            }
            return;
        }
        if self.phase != Phase::Inviting {
            // Late 2xx after the call ended (e.g. after a timeout): ACK and BYE it.
            self.kill_fork(now, resp);
            return;
        }
        let Some(req) = self.invite.as_ref().map(|t| t.request().clone()) else {
            return;
        };
        let Some(dialog) = Dialog::from_response(&req, resp, &self.local_tag, self.cseq) else {
            return;
        };
        self.dialog = Some(dialog);
        self.setup = Some(now.saturating_duration_since(self.invite_sent_at));
        self.send_ack(resp);
        self.phase = Phase::Confirmed;
        self.answered_at = Some(now);
        self.peer_allows_update = resp
            .headers
            .list(&HeaderName::Allow)
            .any(|m| m.trim().eq_ignore_ascii_case("UPDATE"));
        if self.cancel_requested {
            // CANCEL/200 race: the answer won, but we no longer want the call.
            self.end_reason = Some("answered after CANCEL".into());
            self.send_bye(now, HangupBy::Us, Some("answered after CANCEL".into()));
            return;
        }
        let media = self.negotiate_answer(&resp.body);
        self.out.push_back(Output::Event(CallEvent::Answered {
            sdp: resp.body.clone(),
            media,
        }));
        self.start_session_timer(now, resp, true);
    }

    fn on_invite_final_error(&mut self, now: Instant, resp: &Response) {
        if self.phase != Phase::Inviting {
            return;
        }
        let status = resp.status;
        if (status == 401 || status == 407) && !self.cancel_requested {
            if self.invite_auth_rounds < MAX_AUTH_ROUNDS && self.take_challenges(resp) {
                self.invite_auth_rounds += 1;
                self.send_invite(now);
                return;
            }
        } else if status == 422
            && self.session_rounds < 2
            && let Some(min) = min_se_of(resp)
        {
            self.session_rounds += 1;
            self.raise_session_interval(min);
            self.send_invite(now);
            return;
        }
        let (outcome, failover) = classify(status, self.cancel_requested);
        let reason = reason_text(resp);
        self.reason_header = resp.headers.get(&HeaderName::Reason).map(str::to_owned);
        self.setup = Some(now.saturating_duration_since(self.invite_sent_at));
        self.end(now, outcome, Some(status), Some(reason), failover);
    }

    fn send_ack(&mut self, resp: &Response) {
        let Some(dialog) = self.dialog.as_ref() else {
            return;
        };
        let mut ack = dialog.ack(self.invite_seq);
        let via = self.via();
        ack.headers.push_front(HeaderName::Via, via);
        for (n, v) in &self.invite_auth {
            ack.headers.push(n.clone(), v.clone());
        }
        let _ = resp;
        let bytes = ack.to_bytes();
        self.ack_bytes = Some(bytes.clone());
        self.transmit_dialog(bytes);
    }

    /// ACK and BYE a 2xx whose dialog we do not keep (fork, or arrived after the end).
    fn kill_fork(&mut self, now: Instant, resp: &Response) {
        let Some(req) = self.invite.as_ref().map(|t| t.request().clone()) else {
            return;
        };
        let Some(mut d) = Dialog::from_response(&req, resp, &self.local_tag, self.invite_seq)
        else {
            return;
        };
        let (dest, transport) = self.hop_for(&d);
        if let Some((_, ack)) = self
            .killed_forks
            .iter()
            .find(|(tag, _)| *tag == d.remote_tag)
        {
            // Our ACK was lost and the 2xx came again: ACK again, the BYE is already out.
            let data = ack.clone();
            self.out.push_back(Output::Transmit(Transmit {
                transport,
                dest,
                data,
            }));
            return;
        }
        let mut ack = d.ack(self.invite_seq);
        ack.headers.push_front(HeaderName::Via, self.via());
        let ack = ack.to_bytes();
        self.killed_forks.push((d.remote_tag.clone(), ack.clone()));
        self.out.push_back(Output::Transmit(Transmit {
            transport,
            dest: dest.clone(),
            data: ack,
        }));
        let mut bye = d.request(Method::Bye);
        bye.headers.push_front(HeaderName::Via, self.via());
        let tx = ClientTransaction::new(bye, transport.is_reliable(), self.cfg.timers, now);
        self.out.push_back(Output::Transmit(Transmit {
            transport,
            dest: dest.clone(),
            data: tx.bytes().to_vec(),
        }));
        self.pending.push(Pending {
            tx,
            purpose: Purpose::ByeFork,
            dest,
            transport,
            auth_rounds: 0,
        });
    }

    fn request_cancel(&mut self, now: Instant) {
        if self.cancel_requested {
            return;
        }
        self.cancel_requested = true;
        // RFC 3261 §9.1: CANCEL only after a provisional response.
        if self.invite.as_ref().is_some_and(|t| t.heard_back()) {
            self.send_cancel(now);
        }
    }

    fn send_cancel(&mut self, now: Instant) {
        let Some(inv) = self.invite.as_ref().map(|t| t.request().clone()) else {
            return;
        };
        let mut c = Request::new(Method::Cancel, inv.uri.clone());
        if let Some(via) = inv.headers.list(&HeaderName::Via).next() {
            c.headers.push(HeaderName::Via, via);
        }
        for h in &inv.headers {
            if matches!(
                h.name,
                HeaderName::MaxForwards
                    | HeaderName::Route
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
            ) {
                c.headers.push(h.name.clone(), h.value.clone());
            }
        }
        c.headers
            .push(HeaderName::CSeq, format!("{} CANCEL", self.invite_seq));
        let tx = ClientTransaction::new(c, self.cfg.transport.is_reliable(), self.cfg.timers, now);
        self.cancel_sent_at = Some(now);
        self.out.push_back(Output::Transmit(Transmit {
            transport: self.cfg.transport,
            dest: self.cfg.outbound.clone(),
            data: tx.bytes().to_vec(),
        }));
        self.pending.push(Pending {
            tx,
            purpose: Purpose::Cancel,
            dest: self.cfg.outbound.clone(),
            transport: self.cfg.transport,
            auth_rounds: 0,
        });
    }

    // ----- in-dialog side ----------------------------------------------------------------

    fn in_dialog_request(&mut self, method: Method) -> Request {
        let via = self.via();
        let Some(dialog) = self.dialog.as_mut() else {
            return Request::new(method, "");
        };
        let mut req = dialog.request(method);
        req.headers.push_front(HeaderName::Via, via);
        self.cseq = dialog.local_seq;
        req
    }

    fn start_in_dialog(&mut self, now: Instant, mut req: Request, purpose: Purpose) {
        let Some(dialog) = self.dialog.as_ref() else {
            return;
        };
        let (dest, transport) = self.hop_for(dialog);
        self.authorize(&mut req);
        let tx = ClientTransaction::new(req, transport.is_reliable(), self.cfg.timers, now);
        self.out.push_back(Output::Transmit(Transmit {
            transport,
            dest: dest.clone(),
            data: tx.bytes().to_vec(),
        }));
        self.pending.push(Pending {
            tx,
            purpose,
            dest,
            transport,
            auth_rounds: 0,
        });
    }

    fn send_bye(&mut self, now: Instant, by: HangupBy, reason: Option<String>) {
        if self.phase != Phase::Confirmed {
            return;
        }
        self.phase = Phase::Terminating;
        if reason.is_some() {
            self.end_reason = reason;
        }
        let _ = by;
        let req = self.in_dialog_request(Method::Bye);
        self.start_in_dialog(now, req, Purpose::Bye);
    }

    fn send_refresh(&mut self, now: Instant) {
        if self.refresh_in_flight {
            return;
        }
        let Some(se) = self.session_expires else {
            return;
        };
        let use_update = self.peer_allows_update;
        let mut req = self.in_dialog_request(if use_update {
            Method::Update
        } else {
            Method::Invite
        });
        req.headers
            .push(HeaderName::Contact, format!("<{}>", self.cfg.contact));
        req.headers.push(HeaderName::Supported, "timer");
        req.headers
            .push(HeaderName::SessionExpires, format!("{se};refresher=uac"));
        req.headers.push(HeaderName::MinSe, self.min_se.to_string());
        if !use_update && !self.local_sdp.is_empty() {
            req.headers.push(HeaderName::ContentType, "application/sdp");
            req.body = self.local_sdp.clone();
        }
        self.refresh_in_flight = true;
        self.start_in_dialog(now, req, Purpose::Refresh);
    }

    fn on_pending_final(&mut self, now: Instant, idx: usize, resp: &Response) {
        let purpose = self.pending[idx].purpose;
        let status = resp.status;
        // Digest challenge on an in-dialog request: answer it once or twice.
        if (status == 401 || status == 407)
            && purpose != Purpose::Cancel
            && self.pending[idx].auth_rounds < MAX_AUTH_ROUNDS
            && self.take_challenges(resp)
        {
            let rounds = self.pending[idx].auth_rounds + 1;
            let old = self.pending[idx].tx.request().clone();
            let mut req = self.in_dialog_request(old.method.clone());
            for h in &old.headers {
                if !matches!(
                    h.name,
                    HeaderName::Via
                        | HeaderName::MaxForwards
                        | HeaderName::Route
                        | HeaderName::From
                        | HeaderName::To
                        | HeaderName::CallId
                        | HeaderName::CSeq
                        | HeaderName::Authorization
                        | HeaderName::ProxyAuthorization
                ) {
                    req.headers.push(h.name.clone(), h.value.clone());
                }
            }
            req.body = old.body.clone();
            self.start_in_dialog(now, req, purpose);
            if let Some(last) = self.pending.last_mut() {
                last.auth_rounds = rounds;
            }
            return;
        }
        match purpose {
            Purpose::Cancel | Purpose::ByeFork => {}
            Purpose::Bye => self.finish_after_bye(now),
            Purpose::Refer => {
                if status >= 300 {
                    self.out.push_back(Output::Event(CallEvent::ReferProgress {
                        status,
                        done: true,
                    }));
                }
            }
            Purpose::Refresh => {
                self.refresh_in_flight = false;
                let method = self.pending[idx].tx.method().clone();
                if (200..300).contains(&status) {
                    if method == Method::Invite {
                        // ACK the 2xx of our re-INVITE.
                        if let Some(d) = self.dialog.as_ref() {
                            let seq = resp.headers.cseq().map(|c| c.seq).unwrap_or(d.local_seq);
                            let mut ack = d.ack(seq);
                            ack.headers.push_front(HeaderName::Via, self.via());
                            self.transmit_dialog(ack.to_bytes());
                        }
                    }
                    self.start_session_timer(now, resp, true);
                } else if status == 422 {
                    if let Some(min) = min_se_of(resp)
                        && self.session_rounds < 2
                    {
                        self.session_rounds += 1;
                        self.raise_session_interval(min);
                        self.send_refresh(now);
                    }
                } else if status == 481 || status == 408 {
                    self.send_bye(now, HangupBy::Us, Some(format!("refresh failed: {status}")));
                }
            }
        }
    }

    fn on_pending_timeout(&mut self, now: Instant, purpose: Purpose) {
        match purpose {
            Purpose::Bye => self.finish_after_bye(now),
            Purpose::Refresh => {
                self.refresh_in_flight = false;
                self.send_bye(now, HangupBy::Us, Some("refresh timed out".into()));
            }
            Purpose::Cancel | Purpose::ByeFork | Purpose::Refer => {}
        }
    }

    fn finish_after_bye(&mut self, now: Instant) {
        if self.phase == Phase::Terminating {
            let reason = self.end_reason.take();
            self.finish_answered(now, HangupBy::Us, reason);
        }
    }

    fn on_session_request(
        &mut self,
        now: Instant,
        src: SocketAddr,
        transport: Transport,
        branch: &str,
        req: &Request,
    ) {
        if self.phase != Phase::Confirmed {
            let resp = req.make_response(481, reason_phrase(481), None);
            self.respond(now, src, transport, branch, req, resp);
            return;
        }
        if req.method == Method::Invite && self.refresh_in_flight {
            let resp = req.make_response(491, reason_phrase(491), None);
            self.respond(now, src, transport, branch, req, resp);
            return;
        }
        let mut answer_body = None;
        if !req.body.is_empty() {
            match self.answer_offer(&req.body) {
                Ok((body, media)) => {
                    answer_body = Some(body);
                    self.out.push_back(Output::Event(CallEvent::RemoteSdp {
                        sdp: req.body.clone(),
                        media,
                    }));
                }
                Err(reason) => {
                    // RFC 3264: an offer we cannot accept leaves the session as it was.
                    let mut resp = req.make_response(488, reason_phrase(488), None);
                    resp.headers.push(
                        HeaderName::Warning,
                        format!("399 dialer \"{}\"", reason.replace('"', "'")),
                    );
                    self.respond(now, src, transport, branch, req, resp);
                    return;
                }
            }
        }
        let mut resp = req.make_response(200, "OK", None);
        resp.headers
            .push(HeaderName::Contact, format!("<{}>", self.cfg.contact));
        resp.headers.push(HeaderName::Allow, ALLOW);
        // RFC 4028: a refresh from the far end; echo the interval and who refreshes.
        if let Some(se) = req.headers.get(&HeaderName::SessionExpires) {
            let (interval, refresher) = parse_session_expires(se);
            if let Some(interval) = interval {
                let refresher = refresher.unwrap_or_else(|| "uac".to_owned());
                resp.headers.push(HeaderName::Require, "timer");
                resp.headers.push(
                    HeaderName::SessionExpires,
                    format!("{interval};refresher={refresher}"),
                );
                self.session_expires = Some(interval);
                // In the far end's request, "uac" is the far end itself.
                let who = if refresher == "uas" {
                    Refresher::Us
                } else {
                    Refresher::Them
                };
                self.arm_session_timer(now, interval, who);
            }
        }
        // An offer gets our answer; an offerless re-INVITE gets our current SDP as the offer
        // (the answer comes in the ACK); an UPDATE without offer gets no body.
        let body = match answer_body {
            Some(b) => Some(b),
            None if req.method == Method::Invite && !self.local_sdp.is_empty() => {
                Some(self.local_sdp.clone())
            }
            None => None,
        };
        if let Some(body) = body {
            resp.headers
                .push(HeaderName::ContentType, "application/sdp");
            resp.body = body;
        }
        self.respond(now, src, transport, branch, req, resp);
    }

    /// What our offer and the far end's answer agreed, if the answer is usable.
    fn negotiate_answer(&self, body: &[u8]) -> Option<Negotiated> {
        let offer = self.local_desc.as_ref()?;
        let answer = SessionDescription::parse(body).ok()?;
        negotiate(offer, &answer).ok()
    }

    /// Answer a far-end offer from our media; the answer continues our SDP session (same
    /// origin, version bumped only when something changed).
    fn answer_offer(&mut self, body: &[u8]) -> Result<(Vec<u8>, Option<Negotiated>), String> {
        let Some(media) = self.cfg.media.as_ref() else {
            return Err("no media configured".into());
        };
        let offer = SessionDescription::parse(body).map_err(|e| e.to_string())?;
        let (mut answer, negotiated) = media.answer(&offer).map_err(|e| e.to_string())?;
        if let Some(prev) = &self.local_desc {
            answer.continue_from(prev);
        }
        self.local_sdp = answer.to_string_crlf().into_bytes();
        self.local_desc = Some(answer);
        Ok((self.local_sdp.clone(), Some(negotiated)))
    }

    fn start_session_timer(&mut self, now: Instant, resp: &Response, _ours: bool) {
        let Some(se) = resp.headers.get(&HeaderName::SessionExpires) else {
            // No Session-Expires in the answer: the far end does not run the timer.
            self.refresh_at = None;
            self.expire_at = None;
            return;
        };
        let (interval, refresher) = parse_session_expires(se);
        let Some(interval) = interval else {
            return;
        };
        self.session_expires = Some(interval);
        // In a response to our request, "uac" is us.
        let who = match refresher.as_deref() {
            Some("uas") => Refresher::Them,
            _ => Refresher::Us,
        };
        self.arm_session_timer(now, interval, who);
    }

    /// RFC 4028 §7.4: after a 422, ask for at least the peer's Min-SE.
    fn raise_session_interval(&mut self, min: u32) {
        self.min_se = self.min_se.max(min);
        self.session_expires = Some(self.session_expires.unwrap_or(min).max(min));
    }

    fn arm_session_timer(&mut self, now: Instant, interval: u32, who: Refresher) {
        let se = Duration::from_secs(u64::from(interval));
        self.refresher = Some(who);
        match who {
            Refresher::Us => {
                self.refresh_at = Some(now + se / 2);
                self.expire_at = Some(now + se);
            }
            Refresher::Them => {
                self.refresh_at = None;
                // RFC 4028 §10: BYE at expiry minus min(32 s, SE/3).
                let margin = Duration::from_secs(32).min(se / 3);
                self.expire_at = Some(now + se - margin);
            }
        }
    }

    // ----- helpers ------------------------------------------------------------------------

    fn via(&mut self) -> String {
        let branch = self.ids.branch();
        self.cfg
            .transport
            .via(&self.cfg.via_host, self.cfg.via_port, &branch)
    }

    /// Add Authorization lines for every realm we hold credentials for (pre-emptive re-use of
    /// the nonce with an incremented nonce count). Returns the lines added.
    fn authorize(&mut self, req: &mut Request) -> Vec<(HeaderName, String)> {
        self.auth.authorize(req, &mut self.ids)
    }

    /// Absorb the challenges of a 401/407. False when we cannot answer (no credentials,
    /// unparsable challenge, or the same nonce was refused again: wrong password).
    fn take_challenges(&mut self, resp: &Response) -> bool {
        match &self.cfg.credentials {
            Some(creds) => self.auth.take_challenges(creds, resp),
            None => false,
        }
    }

    fn hop_for(&self, dialog: &Dialog) -> (Dest, Transport) {
        match dialog.next_hop() {
            Some(uri) => {
                let transport = Transport::of_uri(&uri).unwrap_or(self.cfg.transport);
                (Dest::from_uri(&uri), transport)
            }
            None => (self.cfg.outbound.clone(), self.cfg.transport),
        }
    }

    fn transmit_out(&mut self, data: Vec<u8>) {
        self.out.push_back(Output::Transmit(Transmit {
            transport: self.cfg.transport,
            dest: self.cfg.outbound.clone(),
            data,
        }));
    }

    fn transmit_dialog(&mut self, data: Vec<u8>) {
        let (dest, transport) = match self.dialog.as_ref() {
            Some(d) => self.hop_for(d),
            None => (self.cfg.outbound.clone(), self.cfg.transport),
        };
        self.out.push_back(Output::Transmit(Transmit {
            transport,
            dest,
            data,
        }));
    }

    fn respond(
        &mut self,
        now: Instant,
        src: SocketAddr,
        transport: Transport,
        branch: &str,
        req: &Request,
        mut resp: Response,
    ) {
        // Our tag on To: the far end addresses us by it already; make sure it is present.
        if resp.headers.to_tag().is_none()
            && let Some(to) = resp.headers.get(&HeaderName::To).map(str::to_owned)
        {
            resp.headers
                .set(HeaderName::To, format!("{to};tag={}", self.local_tag));
        }
        let data = resp.to_bytes();
        let t1 = self.cfg.timers.t1;
        let retransmit =
            (req.method == Method::Invite && resp.is_success() && !transport.is_reliable())
                .then_some((now + t1, t1));
        let keep = req.method == Method::Invite && resp.is_success() || !transport.is_reliable();
        if keep {
            self.server.push(ServerTx {
                branch: branch.to_owned(),
                method: req.method.clone(),
                response: data.clone(),
                src,
                transport,
                until: now + t1 * 64,
                retransmit,
            });
        }
        self.out.push_back(Output::Transmit(Transmit {
            transport,
            dest: Dest::Addr(src),
            data,
        }));
    }

    fn finish_answered(&mut self, now: Instant, by: HangupBy, reason: Option<String>) {
        if self.phase == Phase::Ended {
            return;
        }
        let cancelled_race = self.cancel_requested;
        self.phase = Phase::Ended;
        let report = CallReport {
            outcome: if cancelled_race {
                Outcome::NoAnswer
            } else {
                Outcome::Answered
            },
            sip_status: Some(200),
            reason: reason.or_else(|| Some("OK".into())),
            reason_header: self.reason_header.clone(),
            hangup_by: Some(by),
            failover: false,
            setup: self.setup,
            duration: self.answered_at.map(|a| now.saturating_duration_since(a)),
        };
        self.report = Some(report.clone());
        self.out.push_back(Output::Event(CallEvent::Ended(report)));
    }

    fn end(
        &mut self,
        now: Instant,
        outcome: Outcome,
        sip_status: Option<u16>,
        reason: Option<String>,
        failover: bool,
    ) {
        if self.phase == Phase::Ended {
            return;
        }
        self.phase = Phase::Ended;
        let report = CallReport {
            outcome,
            sip_status,
            reason,
            reason_header: self.reason_header.clone(),
            hangup_by: None,
            failover,
            setup: self
                .setup
                .or_else(|| sip_status.map(|_| now.saturating_duration_since(self.invite_sent_at))),
            duration: None,
        };
        self.report = Some(report.clone());
        self.out.push_back(Output::Event(CallEvent::Ended(report)));
    }
}

/// The Min-SE value of a 422 response.
fn min_se_of(resp: &Response) -> Option<u32> {
    resp.headers
        .get(&HeaderName::MinSe)
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.trim().parse::<u32>().ok())
}

/// Reason header text (`cause=…;text="…"`) when present, else the reason phrase.
fn reason_text(resp: &Response) -> String {
    if let Some(r) = resp.headers.get(&HeaderName::Reason)
        && let Some(i) = r.find("text=\"")
    {
        let rest = &r[i + 6..];
        if let Some(end) = rest.find('"') {
            return rest[..end].to_owned();
        }
    }
    resp.reason.clone()
}

/// `1800;refresher=uac` → (Some(1800), Some("uac")).
fn parse_session_expires(v: &str) -> (Option<u32>, Option<String>) {
    let mut parts = v.split(';');
    let interval = parts.next().and_then(|s| s.trim().parse::<u32>().ok());
    let refresher = parts.find_map(|p| {
        let (n, v) = p.split_once('=')?;
        n.trim()
            .eq_ignore_ascii_case("refresher")
            .then(|| v.trim().to_ascii_lowercase())
    });
    (interval, refresher)
}

/// DTMF carried in SIP INFO: `application/dtmf-relay` (`Signal=5\r\nDuration=160`) or
/// `application/dtmf` (body is the digit).
fn parse_dtmf_info(req: &Request) -> Option<(char, u32)> {
    let ct = req.headers.content_type()?;
    let body = std::str::from_utf8(&req.body).ok()?;
    let valid = |c: char| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D');
    match ct.as_str() {
        "application/dtmf-relay" => {
            let mut digit = None;
            let mut duration = 160;
            for line in body.lines() {
                let Some((k, v)) = line.split_once('=') else {
                    continue;
                };
                match k.trim().to_ascii_lowercase().as_str() {
                    "signal" => {
                        let v = v.trim();
                        digit = match v {
                            "10" => Some('*'),
                            "11" => Some('#'),
                            _ => v.chars().next().filter(|c| valid(c.to_ascii_uppercase())),
                        }
                        .map(|c| c.to_ascii_uppercase());
                    }
                    "duration" => duration = v.trim().parse().unwrap_or(160),
                    _ => {}
                }
            }
            digit.map(|d| (d, duration))
        }
        "application/dtmf" => body
            .trim()
            .chars()
            .next()
            .map(|c| c.to_ascii_uppercase())
            .filter(|c| valid(*c))
            .map(|d| (d, 160)),
        _ => None,
    }
}

/// `SIP/2.0 200 OK` in a message/sipfrag body.
fn parse_sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?;
    let mut parts = line.split_ascii_whitespace();
    if parts.next()? != "SIP/2.0" {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CallConfig {
        CallConfig {
            request_uri: Uri::parse("sip:100@127.0.0.1:5070").unwrap(),
            from_uri: "sip:1000@127.0.0.1".into(),
            from_display: None,
            to_uri: "sip:100@127.0.0.1".into(),
            contact: "sip:1000@127.0.0.1:5062".into(),
            via_host: "127.0.0.1".into(),
            via_port: 5062,
            transport: Transport::Udp,
            outbound: Dest::Addr(([127, 0, 0, 1], 5070).into()),
            preloaded_route: Vec::new(),
            credentials: None,
            media: None,
            ring_timeout: Duration::from_secs(20),
            session_expires: None,
            min_se: 90,
            p_asserted_identity: None,
            user_agent: None,
            extra_headers: Vec::new(),
            timers: TimerConfig::default(),
        }
    }

    /// Fire every timer until the call ends; returns its report.
    fn run_timers(call: &mut Call) -> CallReport {
        while let Some(at) = call.poll_timeout() {
            call.handle_timeout(at);
            while let Some(o) = call.poll_output() {
                if let Output::Event(CallEvent::Ended(r)) = o {
                    return r;
                }
            }
        }
        panic!("the call never ended");
    }

    #[test]
    fn invite_timeout_after_the_ring_timeout_is_a_failure_not_no_answer() {
        // Nothing ever answers: the ring timeout (20 s) fires before Timer B (32 s), so a CANCEL
        // is wanted but cannot be sent. The trunk never responded: that is a failed attempt
        // (failover allowed), not a callee that did not pick up.
        let t0 = Instant::now();
        let mut call = Call::new(t0, config(), 1);
        let r = run_timers(&mut call);
        assert_eq!(r.outcome, Outcome::Failed);
        assert_eq!(r.sip_status, None);
        assert_eq!(r.reason.as_deref(), Some("timeout"));
        assert!(r.failover);
    }

    /// Requests the call queued, parsed.
    fn sent_requests(call: &mut Call) -> Vec<Request> {
        let mut out = Vec::new();
        while let Some(o) = call.poll_output() {
            if let Output::Transmit(t) = o
                && let Ok(crate::message::Message::Request(r)) =
                    crate::message::Message::parse(&t.data)
            {
                out.push(r);
            }
        }
        out
    }

    #[test]
    fn retransmitted_challenge_of_a_replaced_invite_is_acked_again() {
        let t0 = Instant::now();
        let mut cfg = config();
        cfg.credentials = Some(Credentials {
            username: "alice".into(),
            password: "secret".into(),
        });
        let mut call = Call::new(t0, cfg, 1);
        let invite = sent_requests(&mut call).remove(0);
        let mut challenge = invite.make_response(401, "Unauthorized", Some("uas"));
        challenge.headers.push(
            HeaderName::WwwAuthenticate,
            "Digest realm=\"sim\", nonce=\"n1\", qop=\"auth\"",
        );
        call.handle_response(t0, &challenge);
        let methods: Vec<Method> = sent_requests(&mut call)
            .into_iter()
            .map(|r| r.method)
            .collect();
        assert_eq!(methods, vec![Method::Ack, Method::Invite]);
        // That ACK was lost: the UAS retransmits the 401 of the first INVITE.
        call.handle_response(t0 + Duration::from_millis(500), &challenge);
        let again = sent_requests(&mut call);
        assert_eq!(again.len(), 1, "exactly one ACK, no third INVITE");
        assert_eq!(again[0].method, Method::Ack);
        assert_eq!(
            again[0]
                .headers
                .top_via()
                .and_then(|v| v.branch().map(str::to_owned)),
            invite
                .headers
                .top_via()
                .and_then(|v| v.branch().map(str::to_owned)),
            "the ACK of a non-2xx shares the INVITE's branch"
        );
    }

    /// Responses the call queued, parsed, with where they go.
    fn sent_responses(call: &mut Call) -> Vec<Response> {
        let mut out = Vec::new();
        while let Some(o) = call.poll_output() {
            if let Output::Transmit(t) = o
                && let Ok(crate::message::Message::Response(r)) =
                    crate::message::Message::parse(&t.data)
            {
                out.push(r);
            }
        }
        out
    }

    const UAS_SDP: &str = "v=0\r\no=uas 7 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

    /// An answered call with media, and the INVITE it sent.
    fn answered_call(t0: Instant) -> (Call, Request) {
        let mut cfg = config();
        cfg.media = Some(LocalMedia::new([127, 0, 0, 1].into(), 30000, 55));
        let mut call = Call::new(t0, cfg, 9);
        let invite = sent_requests(&mut call).remove(0);
        let mut ok = invite.make_response(200, "OK", Some("uas"));
        ok.headers
            .push(HeaderName::Contact, "<sip:uas@127.0.0.1:5070>");
        ok.headers.push(HeaderName::ContentType, "application/sdp");
        ok.body = UAS_SDP.as_bytes().to_vec();
        call.handle_response(t0, &ok);
        let mut answered = None;
        while let Some(o) = call.poll_output() {
            if let Output::Event(CallEvent::Answered { media, .. }) = o {
                answered = media;
            }
        }
        let m = answered.expect("negotiated media on answer");
        assert_eq!(m.codec, crate::sdp::Codec::Pcmu);
        assert_eq!(m.remote_rtp, "127.0.0.1:40000".parse().unwrap());
        (call, invite)
    }

    fn reinvite(invite: &Request, cseq: u32, branch: &str, body: &str) -> Request {
        let mut r = Request::new(Method::Invite, "sip:1000@127.0.0.1:5062");
        r.headers.push(
            HeaderName::Via,
            format!("SIP/2.0/UDP 127.0.0.1:5070;branch={branch}"),
        );
        let from = invite.headers.get(&HeaderName::From).unwrap();
        let to = invite.headers.get(&HeaderName::To).unwrap();
        r.headers.push(HeaderName::From, format!("{to};tag=uas"));
        r.headers.push(HeaderName::To, from.to_owned());
        r.headers
            .push(HeaderName::CallId, invite.headers.call_id().unwrap());
        r.headers.push(HeaderName::CSeq, format!("{cseq} INVITE"));
        if !body.is_empty() {
            r.headers.push(HeaderName::ContentType, "application/sdp");
            r.body = body.as_bytes().to_vec();
        }
        r
    }

    #[test]
    fn re_invite_offer_is_answered_from_our_media_and_a_bad_offer_gets_488() {
        let t0 = Instant::now();
        let (mut call, invite) = answered_call(t0);
        let src: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        // The far end moves to PCMA only.
        let pcma = UAS_SDP
            .replace("RTP/AVP 0 101", "RTP/AVP 8 101")
            .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000")
            .replace("o=uas 7 1", "o=uas 7 2");
        call.handle_request(
            t0,
            src,
            Transport::Udp,
            &reinvite(&invite, 1, "z9hG4bKr1", &pcma),
        );
        let mut resps = Vec::new();
        let mut remote = None;
        while let Some(o) = call.poll_output() {
            match o {
                Output::Transmit(t) => {
                    if let Ok(crate::message::Message::Response(r)) =
                        crate::message::Message::parse(&t.data)
                    {
                        resps.push(r);
                    }
                }
                Output::Event(CallEvent::RemoteSdp { media, .. }) => remote = media,
                Output::Event(_) => {}
            }
        }
        assert_eq!(resps.len(), 1);
        assert_eq!(resps[0].status, 200);
        let answer = crate::sdp::SessionDescription::parse(&resps[0].body).unwrap();
        let formats: Vec<u8> = answer.media[0].formats.iter().map(|f| f.pt).collect();
        assert_eq!(
            formats,
            vec![8, 101],
            "the answer holds only what was agreed"
        );
        let offer = LocalMedia::new([127, 0, 0, 1].into(), 30000, 55).offer();
        assert_eq!(answer.session_id, offer.session_id, "same SDP session");
        assert_eq!(
            answer.session_version,
            offer.session_version + 1,
            "changed: version+1"
        );
        assert_eq!(remote.unwrap().codec, crate::sdp::Codec::Pcma);
        // ACK, then an offer with nothing we can do (G.729 only): 488, the call stays up.
        let mut ack = reinvite(&invite, 1, "z9hG4bKr1a", "");
        ack.method = Method::Ack;
        ack.headers.set(HeaderName::CSeq, "1 ACK");
        call.handle_request(t0, src, Transport::Udp, &ack);
        let g729 = UAS_SDP
            .replace("RTP/AVP 0 101", "RTP/AVP 18")
            .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:18 G729/8000");
        call.handle_request(
            t0,
            src,
            Transport::Udp,
            &reinvite(&invite, 2, "z9hG4bKr2", &g729),
        );
        let resps = sent_responses(&mut call);
        assert_eq!(resps.len(), 1);
        assert_eq!(resps[0].status, 488);
        assert!(resps[0].headers.get(&HeaderName::Warning).is_some());
        assert!(!call.is_ended() && call.is_answered());
    }

    #[test]
    fn a_retransmitted_fork_2xx_is_acked_again_without_a_second_bye() {
        let t0 = Instant::now();
        let (mut call, invite) = answered_call(t0);
        let mut fork = invite.make_response(200, "OK", Some("fork2"));
        fork.headers
            .push(HeaderName::Contact, "<sip:other@127.0.0.1:5071>");
        call.handle_response(t0, &fork);
        let first: Vec<Method> = sent_requests(&mut call)
            .into_iter()
            .map(|r| r.method)
            .collect();
        assert_eq!(first, vec![Method::Ack, Method::Bye]);
        call.handle_response(t0 + Duration::from_millis(500), &fork);
        let again: Vec<Method> = sent_requests(&mut call)
            .into_iter()
            .map(|r| r.method)
            .collect();
        assert_eq!(again, vec![Method::Ack]);
        assert!(
            call.is_answered() && !call.is_ended(),
            "the first dialog is untouched"
        );
    }

    #[test]
    fn header_helpers_parse_what_peers_send() {
        assert_eq!(
            parse_session_expires("1800;refresher=uac"),
            (Some(1800), Some("uac".into()))
        );
        assert_eq!(
            parse_session_expires(" 90 ; Refresher = UAS"),
            (Some(90), Some("uas".into()))
        );
        assert_eq!(parse_session_expires("abc"), (None, None));
        assert_eq!(parse_sipfrag_status(b"SIP/2.0 180 Ringing\r\n"), Some(180));
        assert_eq!(parse_sipfrag_status(b"garbage"), None);
        let mut r = Response::new(486, "Busy Here");
        assert_eq!(reason_text(&r), "Busy Here");
        r.headers
            .push(HeaderName::Reason, "Q.850;cause=17;text=\"User busy\"");
        assert_eq!(reason_text(&r), "User busy");
        let mut info = Request::new(Method::Info, "sip:a@b");
        info.headers
            .push(HeaderName::ContentType, "application/dtmf-relay");
        info.body = b"Signal=5\r\nDuration=250\r\n".to_vec();
        assert_eq!(parse_dtmf_info(&info), Some(('5', 250)));
        info.body = b"Signal=11\r\n".to_vec();
        assert_eq!(parse_dtmf_info(&info), Some(('#', 160)));
        info.body = b"Signal=x\r\n".to_vec();
        assert_eq!(parse_dtmf_info(&info), None);
        info.headers
            .set(HeaderName::ContentType, "application/dtmf");
        info.body = b"*".to_vec();
        assert_eq!(parse_dtmf_info(&info), Some(('*', 160)));
    }

    #[test]
    fn busy_keeps_the_raw_reason_header_and_early_media_per_fork() {
        let t0 = Instant::now();
        let mut cfg = config();
        cfg.media = Some(LocalMedia::new([127, 0, 0, 1].into(), 30000, 1));
        let mut call = Call::new(t0, cfg, 3);
        let invite = sent_requests(&mut call).remove(0);
        let mut p = invite.make_response(183, "Session Progress", Some("f1"));
        p.headers.push(HeaderName::ContentType, "application/sdp");
        p.body = UAS_SDP.as_bytes().to_vec();
        call.handle_response(t0, &p);
        let r2 = invite.make_response(180, "Ringing", Some("f2"));
        call.handle_response(t0, &r2);
        let early: Vec<(String, bool)> = call
            .early_dialogs()
            .map(|(t, sdp)| (t.to_owned(), sdp.is_some()))
            .collect();
        assert_eq!(early, vec![("f1".into(), true), ("f2".into(), false)]);
        let mut busy = invite.make_response(486, "Busy Here", Some("f1"));
        busy.headers
            .push(HeaderName::Reason, "Q.850;cause=17;text=\"User busy\"");
        call.handle_response(t0, &busy);
        let r = call.report().unwrap();
        assert_eq!(r.outcome, Outcome::Busy);
        assert_eq!(r.sip_status, Some(486));
        assert_eq!(r.reason.as_deref(), Some("User busy"));
        assert_eq!(
            r.reason_header.as_deref(),
            Some("Q.850;cause=17;text=\"User busy\"")
        );
    }
}
