//! Outbound registration (RFC 3261 §10) and OPTIONS keep-alive of trunks, as sans-IO agents.
//!
//! Two small state machines that live beside the calls of an [`Endpoint`](crate::Endpoint):
//!
//! - [`Registration`] keeps one binding of our Contact at a registrar: REGISTER, digest answer
//!   to 401/407, refresh before the granted expiry, 423 Interval Too Brief, exponential back-off
//!   after failures (Retry-After honoured) and REGISTER with `Expires: 0` on
//!   [`Registration::unregister`].
//! - [`KeepAlive`] pings a trunk with OPTIONS and reports it up or down.
//!
//! Both are driven like every state machine of this crate; neither reads the clock nor draws
//! from a global RNG (identifiers come from an [`IdGen`] seeded by the config):
//!
//! ```text
//! agent.handle_response(now, &resp)   // a response whose Call-ID is agent.call_id()
//! agent.handle_timeout(now)           // once now >= agent.poll_timeout()
//! agent.handle_transport_error(now)   // the transport towards agent.outbound() failed
//! while let Some(out) = agent.poll_output() {
//!     match out { AgentOutput::Transmit(t) => send(t), AgentOutput::Event(e) => report(e) }
//! }
//! next wake-up = agent.poll_timeout()
//! ```
//!
//! Each agent has one transaction in flight at most. Responses to an older transaction (a late
//! 200 after we gave up, a retransmitted final response) do not match its branch and are dropped.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::auth::DigestSession;
use crate::call::{Credentials, Transmit};
use crate::dialog::{Dest, Transport};
use crate::message::{HeaderName, Method, NameAddr, Request, Response};
use crate::rng::IdGen;
use crate::transaction::{ClientTransaction, ResponseAction, TimerAction, TimerConfig};
use crate::uri::Uri;

/// Identifies an agent (registration or keep-alive) inside one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentHandle(pub u64);

/// Requested registration lifetime when the config does not say otherwise (RFC 3261 §10.2.1.1
/// suggests one hour).
pub const DEFAULT_EXPIRES: u32 = 3600;

/// Digest rounds answered for one REGISTER before giving up (wrong password, or a registrar
/// that keeps sending fresh nonces).
const MAX_AUTH_ROUNDS: u8 = 2;
/// 423 answers followed for one REGISTER.
const MAX_INTERVAL_ROUNDS: u8 = 2;
/// A peer's Retry-After is honoured up to this long, so that a typo cannot park a trunk for days.
const MAX_RETRY_AFTER_SECS: u32 = 3600;

/// Something an agent wants the application to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    /// The registration entered this state (every state is reported, including the first).
    Registration(RegistrationState),
    /// The trunk answered an OPTIONS ping after being down (or for the first time).
    TrunkUp { at: Instant },
    /// The trunk stopped answering OPTIONS pings.
    TrunkDown { at: Instant },
}

/// Output of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentOutput {
    Transmit(Transmit),
    Event(AgentEvent),
}

/// Exponential back-off after failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure (default 30 s); it doubles with each further failure.
    pub initial: Duration,
    /// Largest delay (default 15 min).
    pub max: Duration,
    /// Up to this share (per cent, at most 100) of each delay is taken off at random, drawn from
    /// the agent's seeded [`IdGen`], so that many agents failing together do not retry in
    /// lockstep. Default 10; 0 disables jitter.
    pub jitter_percent: u8,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(30),
            max: Duration::from_secs(15 * 60),
            jitter_percent: 10,
        }
    }
}

impl Backoff {
    /// Delay after the `failures`-th consecutive failure (1-based).
    fn delay(&self, failures: u32, ids: &mut IdGen) -> Duration {
        let exp = failures.saturating_sub(1).min(20);
        let base = self.initial.saturating_mul(1 << exp).min(self.max);
        let percent = u128::from(self.jitter_percent.min(100));
        let span_ms = base.as_millis() * percent / 100;
        let span_ms = u64::try_from(span_ms).unwrap_or(u64::MAX);
        if span_ms == 0 {
            return base;
        }
        base.saturating_sub(Duration::from_millis(ids.below(span_ms.saturating_add(1))))
    }
}

// ===== Registration =============================================================================

/// Everything needed to keep one registration.
#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    /// The registrar, e.g. `sip:pbx.example.com:5060;transport=tcp`. The Request-URI is this URI
    /// without its user part (RFC 3261 §10.2).
    pub registrar: Uri,
    /// Address of record, used in To and From, e.g. `sip:1000@pbx.example.com`.
    pub aor: String,
    /// The Contact URI we bind, e.g. `sip:1000@192.0.2.10:5062;transport=tcp`.
    pub contact: String,
    /// Lifetime to ask for, in seconds (raised by a 423's Min-Expires).
    pub expires: u32,
    pub credentials: Option<Credentials>,
    pub transport: Transport,
    /// Where the REGISTER goes (the registrar, or an outbound proxy).
    pub outbound: Dest,
    /// Via sent-by host and port.
    pub via_host: String,
    pub via_port: u16,
    pub user_agent: Option<String>,
    pub timers: TimerConfig,
    pub backoff: Backoff,
    /// Seed of every identifier (Call-ID, tag, branches, cnonces).
    pub seed: u64,
}

impl RegistrationConfig {
    /// A config with defaults: expires 3600, no credentials, transport from the registrar's
    /// `transport` parameter (UDP when absent), REGISTER sent to the registrar's host and port,
    /// default timers and back-off, seed 0.
    pub fn new(
        registrar: Uri,
        aor: impl Into<String>,
        contact: impl Into<String>,
        via_host: impl Into<String>,
        via_port: u16,
    ) -> Self {
        let transport = Transport::of_uri(&registrar).unwrap_or(Transport::Udp);
        Self {
            outbound: Dest::from_uri(&registrar),
            registrar,
            aor: aor.into(),
            contact: contact.into(),
            expires: DEFAULT_EXPIRES,
            credentials: None,
            transport,
            via_host: via_host.into(),
            via_port,
            user_agent: None,
            timers: TimerConfig::default(),
            backoff: Backoff::default(),
            seed: 0,
        }
    }
}

/// Where a registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    /// A REGISTER is out and no binding is known to exist.
    Registering,
    /// The registrar holds our binding until `until` (a refresh is sent before that).
    Registered { until: Instant },
    /// The last attempt failed with `status` (`None`: timeout or transport error); the next
    /// attempt is at `retry_at`.
    Failed {
        status: Option<u16>,
        retry_at: Instant,
    },
    /// The binding was removed (or the attempt to remove it ended); nothing more happens.
    Unregistered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Register,
    Unregister,
}

#[derive(Debug)]
struct PendingRegister {
    tx: ClientTransaction,
    seq: u32,
    sent_at: Instant,
    /// The Expires value this REGISTER carries.
    expires: u32,
    purpose: Purpose,
}

/// One outbound registration (RFC 3261 §10.2).
///
/// Every REGISTER (first, digest retries, refreshes, unregister) uses the same Call-ID and From
/// tag, the next CSeq and a new branch. Digest state is kept between refreshes, so refreshes
/// carry credentials pre-emptively with the nonce count incremented; it is dropped after a
/// failure so that the next attempt starts clean.
#[derive(Debug)]
pub struct Registration {
    cfg: RegistrationConfig,
    ids: IdGen,
    call_id: String,
    local_tag: String,
    request_uri: String,
    cseq: u32,
    /// Lifetime we ask for (the config's, raised by 423).
    expires: u32,
    state: RegistrationState,
    pending: Option<PendingRegister>,
    auth: DigestSession,
    unregister_status: Option<u16>,
    auth_rounds: u8,
    interval_rounds: u8,
    /// Consecutive failures (drives the back-off); reset by a 2xx.
    failures: u32,
    refresh_at: Option<Instant>,
    retry_at: Option<Instant>,
    out: VecDeque<AgentOutput>,
}

impl Registration {
    /// Create the agent and queue its first REGISTER.
    pub fn new(now: Instant, cfg: RegistrationConfig) -> Registration {
        let mut ids = IdGen::new(cfg.seed);
        let call_id = format!("{}@{}", ids.call_id(), cfg.via_host);
        let local_tag = ids.tag();
        let request_uri = registrar_request_uri(&cfg.registrar);
        let mut reg = Registration {
            expires: cfg.expires,
            cfg,
            ids,
            call_id,
            local_tag,
            request_uri,
            cseq: 0,
            state: RegistrationState::Registering,
            pending: None,
            auth: DigestSession::default(),
            unregister_status: None,
            auth_rounds: 0,
            interval_rounds: 0,
            failures: 0,
            refresh_at: None,
            retry_at: None,
            out: VecDeque::new(),
        };
        reg.out
            .push_back(AgentOutput::Event(AgentEvent::Registration(
                RegistrationState::Registering,
            )));
        reg.start_attempt(now, Purpose::Register);
        reg
    }

    /// The Call-ID of every REGISTER of this agent: route responses carrying it here.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn state(&self) -> RegistrationState {
        self.state
    }

    /// Where the REGISTER requests go.
    pub fn outbound(&self) -> &Dest {
        &self.cfg.outbound
    }

    /// The Request-URI of our REGISTER requests.
    pub fn request_uri(&self) -> &str {
        &self.request_uri
    }

    /// Final status of the un-REGISTER once it ended (`None`: timed out, or not ended yet).
    /// [`RegistrationState::Unregistered`] is reached however it ends; this says how.
    pub fn unregister_status(&self) -> Option<u16> {
        self.unregister_status
    }

    /// Unregistered and nothing in flight: the agent can be dropped.
    pub fn is_finished(&self) -> bool {
        self.state == RegistrationState::Unregistered && self.pending.is_none()
    }

    #[must_use]
    pub fn poll_output(&mut self) -> Option<AgentOutput> {
        self.out.pop_front()
    }

    /// Earliest deadline: retransmission/Timer F of the REGISTER in flight, else the refresh or
    /// the retry after a failure.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.pending {
            Some(p) => p.tx.poll_timeout(),
            None => [self.refresh_at, self.retry_at].into_iter().flatten().min(),
        }
    }

    /// Remove the binding: REGISTER with `Expires: 0`. The state becomes
    /// [`RegistrationState::Unregistered`] when that REGISTER ends, however it ends. A REGISTER in
    /// flight is abandoned. Calling it again, or after the end, does nothing.
    pub fn unregister(&mut self, now: Instant) {
        let unregistering = self
            .pending
            .as_ref()
            .is_some_and(|p| p.purpose == Purpose::Unregister);
        if self.state == RegistrationState::Unregistered || unregistering {
            return;
        }
        self.pending = None;
        self.refresh_at = None;
        self.retry_at = None;
        self.start_attempt(now, Purpose::Unregister);
    }

    /// Feed a response whose Call-ID is [`Self::call_id`].
    pub fn handle_response(&mut self, now: Instant, resp: &Response) {
        if resp.headers.call_id() != Some(self.call_id.as_str()) {
            return;
        }
        let Some(cseq) = resp.headers.cseq() else {
            return;
        };
        let branch = resp
            .headers
            .top_via()
            .and_then(|v| v.branch().map(str::to_owned));
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        if cseq.method != Method::Register
            || cseq.seq != p.seq
            || branch.as_deref() != Some(p.tx.branch())
        {
            return; // stray, or an answer to a REGISTER we abandoned
        }
        if p.tx.handle_response(now, resp) != ResponseAction::PassUp || resp.status < 200 {
            return;
        }
        if let Some(p) = self.pending.take() {
            self.on_final(now, &p, resp);
        }
    }

    /// Run due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(p) = self.pending.as_mut()
            && p.tx.poll_timeout().is_some_and(|t| t <= now)
        {
            match p.tx.handle_timeout(now) {
                Some(TimerAction::Retransmit) => {
                    let data = p.tx.bytes().to_vec();
                    self.transmit(data);
                }
                Some(TimerAction::Timeout) => {
                    if let Some(p) = self.pending.take() {
                        tracing::debug!(call_id = %self.call_id, "REGISTER timed out");
                        self.fail(now, p.purpose, None, None);
                    }
                }
                Some(TimerAction::Terminated) => self.pending = None,
                None => {}
            }
        }
        if self.pending.is_some() {
            return;
        }
        if self.refresh_at.is_some_and(|t| t <= now) {
            self.refresh_at = None;
            self.start_attempt(now, Purpose::Register);
        } else if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            self.set_state(RegistrationState::Registering);
            self.start_attempt(now, Purpose::Register);
        }
    }

    /// The transport towards [`Self::outbound`] failed: the REGISTER in flight failed.
    pub fn handle_transport_error(&mut self, now: Instant) {
        if let Some(mut p) = self.pending.take() {
            p.tx.handle_transport_error();
            self.fail(now, p.purpose, None, None);
        }
    }

    // ----- internals -----------------------------------------------------------------------

    /// A new REGISTER that is not a retry of a challenged/423 one: fresh round counters.
    fn start_attempt(&mut self, now: Instant, purpose: Purpose) {
        self.auth_rounds = 0;
        self.interval_rounds = 0;
        self.send(now, purpose);
    }

    fn send(&mut self, now: Instant, purpose: Purpose) {
        self.cseq = self.cseq.wrapping_add(1) & 0x7FFF_FFFF;
        let seq = self.cseq;
        let expires = match purpose {
            Purpose::Register => self.expires,
            Purpose::Unregister => 0,
        };
        let branch = self.ids.branch();
        let mut req = Request::new(Method::Register, self.request_uri.clone());
        req.headers.push(
            HeaderName::Via,
            self.cfg
                .transport
                .via(&self.cfg.via_host, self.cfg.via_port, &branch),
        );
        req.headers.push(HeaderName::MaxForwards, "70");
        req.headers.push(
            HeaderName::From,
            format!("<{}>;tag={}", self.cfg.aor, self.local_tag),
        );
        req.headers
            .push(HeaderName::To, format!("<{}>", self.cfg.aor));
        req.headers.push(HeaderName::CallId, self.call_id.clone());
        req.headers
            .push(HeaderName::CSeq, format!("{seq} REGISTER"));
        req.headers
            .push(HeaderName::Contact, format!("<{}>", self.cfg.contact));
        req.headers.push(HeaderName::Expires, expires.to_string());
        if let Some(ua) = &self.cfg.user_agent {
            req.headers.push(HeaderName::UserAgent, ua.clone());
        }
        self.auth.authorize(&mut req, &mut self.ids);
        tracing::trace!(call_id = %self.call_id, seq, expires, "REGISTER");
        let tx =
            ClientTransaction::new(req, self.cfg.transport.is_reliable(), self.cfg.timers, now);
        let data = tx.bytes().to_vec();
        self.pending = Some(PendingRegister {
            tx,
            seq,
            sent_at: now,
            expires,
            purpose,
        });
        self.transmit(data);
    }

    fn on_final(&mut self, now: Instant, p: &PendingRegister, resp: &Response) {
        let status = resp.status;
        match status {
            200..=299 => match p.purpose {
                Purpose::Unregister => {
                    self.unregister_status = Some(status);
                    self.finish_unregister();
                }
                Purpose::Register => self.on_registered(now, p, resp),
            },
            401 | 407 => {
                if self.auth_rounds < MAX_AUTH_ROUNDS && self.take_challenges(resp) {
                    self.auth_rounds += 1;
                    self.send(now, p.purpose);
                } else {
                    self.fail(now, p.purpose, Some(status), None);
                }
            }
            423 if p.purpose == Purpose::Register => match min_expires(resp) {
                Some(min) if min > p.expires && self.interval_rounds < MAX_INTERVAL_ROUNDS => {
                    self.interval_rounds += 1;
                    self.expires = min;
                    self.send(now, Purpose::Register);
                }
                _ => self.fail(now, p.purpose, Some(status), None),
            },
            _ => self.fail(now, p.purpose, Some(status), retry_after(resp)),
        }
    }

    fn on_registered(&mut self, now: Instant, p: &PendingRegister, resp: &Response) {
        // A registrar may shorten the lifetime, not lengthen it; capping at what we asked for
        // also keeps a peer's huge value from overflowing the clock arithmetic.
        let granted = granted_expires(resp, &self.cfg.contact)
            .unwrap_or(p.expires)
            .min(p.expires);
        if granted == 0 {
            // 2xx that does not keep our binding: no registration.
            self.fail(now, Purpose::Register, Some(resp.status), None);
            return;
        }
        let lifetime = Duration::from_secs(u64::from(granted));
        // Counted from when the REGISTER left: the binding cannot outlive that.
        let until = later(p.sent_at, lifetime);
        self.refresh_at = Some(later(p.sent_at, refresh_delay(lifetime)));
        self.retry_at = None;
        self.failures = 0;
        self.auth_rounds = 0;
        self.interval_rounds = 0;
        self.set_state(RegistrationState::Registered { until });
    }

    fn fail(&mut self, now: Instant, purpose: Purpose, status: Option<u16>, after: Option<u32>) {
        if purpose == Purpose::Unregister {
            // Nothing to retry: the binding expires by itself at the registrar.
            self.unregister_status = status;
            self.finish_unregister();
            return;
        }
        self.failures = self.failures.saturating_add(1);
        let delay = match after {
            Some(secs) => Duration::from_secs(u64::from(secs.clamp(1, MAX_RETRY_AFTER_SECS))),
            None => self.cfg.backoff.delay(self.failures, &mut self.ids),
        };
        let retry_at = now + delay;
        self.retry_at = Some(retry_at);
        self.refresh_at = None;
        self.auth.clear();
        self.auth_rounds = 0;
        self.interval_rounds = 0;
        self.set_state(RegistrationState::Failed { status, retry_at });
    }

    fn finish_unregister(&mut self) {
        self.pending = None;
        self.refresh_at = None;
        self.retry_at = None;
        self.set_state(RegistrationState::Unregistered);
    }

    fn set_state(&mut self, state: RegistrationState) {
        if state == self.state {
            return;
        }
        tracing::debug!(call_id = %self.call_id, ?state, "registration state");
        self.state = state;
        self.out
            .push_back(AgentOutput::Event(AgentEvent::Registration(state)));
    }

    /// Absorb the challenges of a 401/407. False when we cannot answer: no credentials, no
    /// usable challenge, or the nonce we already answered was refused again (wrong password).
    fn take_challenges(&mut self, resp: &Response) -> bool {
        match &self.cfg.credentials {
            Some(creds) => self.auth.take_challenges(creds, resp),
            None => false,
        }
    }

    fn transmit(&mut self, data: Vec<u8>) {
        self.out.push_back(AgentOutput::Transmit(Transmit {
            transport: self.cfg.transport,
            dest: self.cfg.outbound.clone(),
            data,
        }));
    }
}

/// `t + d` without the overflow panic: the lifetime may come from a peer's Min-Expires, and
/// `u32::MAX` seconds does not fit every platform's `Instant`. Ten years is far enough.
fn later(t: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
    t.checked_add(d.min(FAR)).unwrap_or(t)
}

/// When to refresh a binding granted for `granted`: `granted − max(5 s, granted/10)`, and for
/// short lifetimes (under 60 s) never later than half of it.
fn refresh_delay(granted: Duration) -> Duration {
    let margin = Duration::from_secs(5).max(granted / 10);
    let early = granted.saturating_sub(margin);
    if granted >= Duration::from_secs(60) {
        early
    } else if early.is_zero() {
        granted / 2
    } else {
        early.min(granted / 2)
    }
}

/// The registrar's URI without user part, keeping host, port and parameters as written.
fn registrar_request_uri(registrar: &Uri) -> String {
    let raw = registrar.as_str();
    if registrar.user.is_none() {
        return raw.to_owned();
    }
    // Split as `Uri::parse` does: the user part ends at the last `@` before the parameters.
    let scheme_len = if registrar.secure { 5 } else { 4 };
    let main_end = raw.find('?').unwrap_or(raw.len());
    let addr_end = raw
        .get(..main_end)
        .and_then(|m| m.find(';'))
        .unwrap_or(main_end);
    match raw.get(..addr_end).and_then(|a| a.rfind('@')) {
        Some(at) => format!(
            "{}{}",
            raw.get(..scheme_len).unwrap_or("sip:"),
            raw.get(at + 1..).unwrap_or_default()
        ),
        None => raw.to_owned(),
    }
}

/// The lifetime the registrar granted us: the `expires` parameter of the Contact matching ours,
/// else the Expires header.
fn granted_expires(resp: &Response, ours: &str) -> Option<u32> {
    let ours_parsed = Uri::parse(ours).ok();
    let from_contact = resp
        .headers
        .list(&HeaderName::Contact)
        .filter_map(NameAddr::parse)
        .find(|c| same_contact(&c.uri, ours, ours_parsed.as_ref()))
        .and_then(|c| c.params.get("expires").and_then(parse_seconds));
    from_contact.or_else(|| {
        resp.headers
            .get(&HeaderName::Expires)
            .and_then(parse_seconds)
    })
}

/// Registrars may re-write a Contact (case, parameter order): compare user, host and port when
/// the text differs.
fn same_contact(theirs: &str, ours: &str, ours_parsed: Option<&Uri>) -> bool {
    if theirs.eq_ignore_ascii_case(ours) {
        return true;
    }
    let (Some(a), Ok(b)) = (ours_parsed, Uri::parse(theirs)) else {
        return false;
    };
    a.user == b.user
        && a.host.eq_ignore_ascii_case(&b.host)
        && a.port_or_default() == b.port_or_default()
}

fn min_expires(resp: &Response) -> Option<u32> {
    resp.headers
        .get(&HeaderName::MinExpires)
        .and_then(parse_seconds)
}

/// `Retry-After: 120 (maintenance);duration=60` → 120.
fn retry_after(resp: &Response) -> Option<u32> {
    let v = resp.headers.get(&HeaderName::RetryAfter)?.trim_start();
    let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    parse_seconds(v.get(..end)?)
}

/// delta-seconds; values beyond 32 bits are read as the largest (RFC 3261 §25.1 allows that).
fn parse_seconds(v: &str) -> Option<u32> {
    let v = v.trim().trim_matches('"');
    if v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(v.parse::<u32>().unwrap_or(u32::MAX))
}

// ===== Keep-alive ===============================================================================

/// OPTIONS pings towards one trunk.
#[derive(Debug, Clone)]
pub struct KeepAliveConfig {
    /// Request-URI and To of the pings, e.g. `sip:pbx.example.com:5060`.
    pub target: Uri,
    /// Our From URI, e.g. `sip:dialer@192.0.2.10`.
    pub from_uri: String,
    pub transport: Transport,
    /// Where the pings go.
    pub outbound: Dest,
    /// Via sent-by host and port.
    pub via_host: String,
    pub via_port: u16,
    /// Time between the end of one ping (answer or timeout) and the next (default 30 s).
    pub interval: Duration,
    /// The same while the trunk is down (default 5 s).
    pub down_interval: Duration,
    /// Consecutive unanswered pings (Timer F) before the trunk is reported down (default 1).
    pub down_after: u32,
    pub user_agent: Option<String>,
    pub timers: TimerConfig,
    /// Seed of every identifier (Call-ID, tag, branches).
    pub seed: u64,
}

impl KeepAliveConfig {
    /// A config with defaults: transport from the target's `transport` parameter, pings sent to
    /// the target's host and port, every 30 s (5 s while down), down after one timeout.
    pub fn new(
        target: Uri,
        from_uri: impl Into<String>,
        via_host: impl Into<String>,
        via_port: u16,
    ) -> Self {
        let transport = Transport::of_uri(&target).unwrap_or(Transport::Udp);
        Self {
            outbound: Dest::from_uri(&target),
            target,
            from_uri: from_uri.into(),
            transport,
            via_host: via_host.into(),
            via_port,
            interval: Duration::from_secs(30),
            down_interval: Duration::from_secs(5),
            down_after: 1,
            user_agent: None,
            timers: TimerConfig::default(),
            seed: 0,
        }
    }
}

/// What the pings say about the trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkState {
    /// No ping has ended yet.
    Unknown,
    Up,
    Down,
}

/// OPTIONS keep-alive of one trunk.
///
/// One Call-ID and From tag for the agent's whole life (so the endpoint routes all its answers by
/// one key), CSeq incremented and a new branch per ping, Max-Forwards 70. One ping is in flight at
/// a time; the next leaves `interval` (or `down_interval`) after the previous one ended. Any
/// final response, whatever its status (404, 405, 481, 501…), proves the peer alive; only a
/// transaction timeout (Timer F, 64·T1) or a transport error counts as a failure.
#[derive(Debug)]
pub struct KeepAlive {
    cfg: KeepAliveConfig,
    ids: IdGen,
    call_id: String,
    local_tag: String,
    cseq: u32,
    state: TrunkState,
    failures: u32,
    last_status: Option<u16>,
    pending: Option<(ClientTransaction, u32)>,
    next_ping: Option<Instant>,
    out: VecDeque<AgentOutput>,
}

impl KeepAlive {
    /// Create the agent and queue its first OPTIONS.
    pub fn new(now: Instant, cfg: KeepAliveConfig) -> KeepAlive {
        let mut ids = IdGen::new(cfg.seed);
        let call_id = format!("{}@{}", ids.call_id(), cfg.via_host);
        let local_tag = ids.tag();
        let mut ka = KeepAlive {
            cfg,
            ids,
            call_id,
            local_tag,
            cseq: 0,
            state: TrunkState::Unknown,
            failures: 0,
            last_status: None,
            pending: None,
            next_ping: None,
            out: VecDeque::new(),
        };
        ka.ping(now);
        ka
    }

    /// The Call-ID of every ping of this agent: route responses carrying it here.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn state(&self) -> TrunkState {
        self.state
    }

    /// Status of the last final response to a ping.
    pub fn last_status(&self) -> Option<u16> {
        self.last_status
    }

    /// Where the pings go.
    pub fn outbound(&self) -> &Dest {
        &self.cfg.outbound
    }

    #[must_use]
    pub fn poll_output(&mut self) -> Option<AgentOutput> {
        self.out.pop_front()
    }

    /// Retransmission/Timer F of the ping in flight, else the next ping.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.pending {
            Some((tx, _)) => tx.poll_timeout(),
            None => self.next_ping,
        }
    }

    /// Feed a response whose Call-ID is [`Self::call_id`].
    pub fn handle_response(&mut self, now: Instant, resp: &Response) {
        if resp.headers.call_id() != Some(self.call_id.as_str()) {
            return;
        }
        let Some(cseq) = resp.headers.cseq() else {
            return;
        };
        let branch = resp
            .headers
            .top_via()
            .and_then(|v| v.branch().map(str::to_owned));
        let Some((tx, seq)) = self.pending.as_mut() else {
            return;
        };
        if cseq.method != Method::Options
            || cseq.seq != *seq
            || branch.as_deref() != Some(tx.branch())
        {
            return;
        }
        if tx.handle_response(now, resp) != ResponseAction::PassUp || resp.status < 200 {
            return;
        }
        self.pending = None;
        self.last_status = Some(resp.status);
        self.failures = 0;
        if self.state != TrunkState::Up {
            tracing::debug!(call_id = %self.call_id, status = resp.status, "trunk up");
            self.state = TrunkState::Up;
            self.out
                .push_back(AgentOutput::Event(AgentEvent::TrunkUp { at: now }));
        }
        self.next_ping = Some(now + self.cfg.interval);
    }

    /// Run due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some((tx, _)) = self.pending.as_mut()
            && tx.poll_timeout().is_some_and(|t| t <= now)
        {
            match tx.handle_timeout(now) {
                Some(TimerAction::Retransmit) => {
                    let data = tx.bytes().to_vec();
                    self.transmit(data);
                }
                Some(TimerAction::Timeout) => {
                    self.pending = None;
                    self.on_failure(now);
                }
                Some(TimerAction::Terminated) => self.pending = None,
                None => {}
            }
        }
        if self.pending.is_none() && self.next_ping.is_some_and(|t| t <= now) {
            self.ping(now);
        }
    }

    /// The transport towards [`Self::outbound`] failed: the ping in flight failed.
    pub fn handle_transport_error(&mut self, now: Instant) {
        if let Some((mut tx, _)) = self.pending.take() {
            tx.handle_transport_error();
            self.on_failure(now);
        }
    }

    fn on_failure(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.cfg.down_after.max(1) && self.state != TrunkState::Down {
            tracing::debug!(call_id = %self.call_id, failures = self.failures, "trunk down");
            self.state = TrunkState::Down;
            self.out
                .push_back(AgentOutput::Event(AgentEvent::TrunkDown { at: now }));
        }
        let wait = if self.state == TrunkState::Down {
            self.cfg.down_interval
        } else {
            self.cfg.interval
        };
        self.next_ping = Some(now + wait);
    }

    fn ping(&mut self, now: Instant) {
        self.next_ping = None;
        self.cseq = self.cseq.wrapping_add(1) & 0x7FFF_FFFF;
        let seq = self.cseq;
        let branch = self.ids.branch();
        let mut req = Request::new(Method::Options, self.cfg.target.as_str());
        req.headers.push(
            HeaderName::Via,
            self.cfg
                .transport
                .via(&self.cfg.via_host, self.cfg.via_port, &branch),
        );
        req.headers.push(HeaderName::MaxForwards, "70");
        req.headers.push(
            HeaderName::From,
            format!("<{}>;tag={}", self.cfg.from_uri, self.local_tag),
        );
        req.headers
            .push(HeaderName::To, format!("<{}>", self.cfg.target));
        req.headers.push(HeaderName::CallId, self.call_id.clone());
        req.headers.push(HeaderName::CSeq, format!("{seq} OPTIONS"));
        req.headers.push(HeaderName::Accept, "application/sdp");
        if let Some(ua) = &self.cfg.user_agent {
            req.headers.push(HeaderName::UserAgent, ua.clone());
        }
        tracing::trace!(call_id = %self.call_id, seq, "OPTIONS ping");
        let tx =
            ClientTransaction::new(req, self.cfg.transport.is_reliable(), self.cfg.timers, now);
        let data = tx.bytes().to_vec();
        self.pending = Some((tx, seq));
        self.transmit(data);
    }

    fn transmit(&mut self, data: Vec<u8>) {
        self.out.push_back(AgentOutput::Transmit(Transmit {
            transport: self.cfg.transport,
            dest: self.cfg.outbound.clone(),
            data,
        }));
    }
}

// ===== Either agent =============================================================================

/// A registration or a keep-alive, as the endpoint holds them.
#[derive(Debug)]
pub enum Agent {
    Registration(Registration),
    KeepAlive(KeepAlive),
}

impl Agent {
    pub fn call_id(&self) -> &str {
        match self {
            Agent::Registration(a) => a.call_id(),
            Agent::KeepAlive(a) => a.call_id(),
        }
    }

    pub fn outbound(&self) -> &Dest {
        match self {
            Agent::Registration(a) => a.outbound(),
            Agent::KeepAlive(a) => a.outbound(),
        }
    }

    pub fn handle_response(&mut self, now: Instant, resp: &Response) {
        match self {
            Agent::Registration(a) => a.handle_response(now, resp),
            Agent::KeepAlive(a) => a.handle_response(now, resp),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self {
            Agent::Registration(a) => a.handle_timeout(now),
            Agent::KeepAlive(a) => a.handle_timeout(now),
        }
    }

    pub fn handle_transport_error(&mut self, now: Instant) {
        match self {
            Agent::Registration(a) => a.handle_transport_error(now),
            Agent::KeepAlive(a) => a.handle_transport_error(now),
        }
    }

    #[must_use]
    pub fn poll_output(&mut self) -> Option<AgentOutput> {
        match self {
            Agent::Registration(a) => a.poll_output(),
            Agent::KeepAlive(a) => a.poll_output(),
        }
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Agent::Registration(a) => a.poll_timeout(),
            Agent::KeepAlive(a) => a.poll_timeout(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use md5::{Digest, Md5};
    use std::collections::HashMap;

    const REGISTRAR: &str = "sip:pbx.example.com:5060;transport=tcp";
    const AOR: &str = "sip:1000@pbx.example.com";
    const CONTACT: &str = "sip:1000@192.0.2.10:5062;transport=tcp";

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn parse_request(data: &[u8]) -> Request {
        match Message::parse(data) {
            Ok(Message::Request(r)) => r,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn parse_response(data: &[u8]) -> Response {
        match Message::parse(data) {
            Ok(Message::Response(r)) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    /// `name=value` pairs of a Digest answer, quotes removed.
    fn digest_params(value: &str) -> HashMap<String, String> {
        value
            .strip_prefix("Digest ")
            .unwrap_or_default()
            .split(", ")
            .filter_map(|p| p.split_once('='))
            .map(|(n, v)| (n.to_owned(), v.trim_matches('"').to_owned()))
            .collect()
    }

    fn md5_hex(s: &str) -> String {
        hex::encode(Md5::digest(s.as_bytes()))
    }

    fn header(req: &Request, name: HeaderName) -> Option<String> {
        req.headers.get(&name).map(str::to_owned)
    }

    fn expires_of(req: &Request) -> u32 {
        header(req, HeaderName::Expires)
            .and_then(|v| v.parse().ok())
            .unwrap_or(u32::MAX)
    }

    fn branch_of(req: &Request) -> String {
        req.headers
            .top_via()
            .and_then(|v| v.branch().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Something on the other side of the wire.
    trait Peer {
        fn answer(&mut self, req: &Request) -> Option<Response>;
    }

    /// A registrar written from RFC 3261 §10.3 and RFC 2617, independent of `DigestClient`:
    /// challenges unauthenticated REGISTERs (qop=auth, MD5), verifies the answer itself,
    /// enforces Min-Expires and grants at most `max_expires`.
    struct FakeRegistrar {
        realm: String,
        user: String,
        password: String,
        require_auth: bool,
        nonce: String,
        nonces_issued: u32,
        /// Challenge every REGISTER with a fresh nonce, whatever its credentials.
        fresh_nonce_on_failure: bool,
        /// The next REGISTER with a valid answer is told its nonce went stale.
        stale_next: bool,
        min_expires: Option<u32>,
        max_expires: u32,
        silent: bool,
        /// Answer every REGISTER with this status and these extra headers.
        fixed: Option<(u16, Vec<(HeaderName, String)>)>,
        /// Digest answers that verified.
        verified: u32,
    }

    impl FakeRegistrar {
        fn new() -> Self {
            Self {
                realm: "pbx.example.com".into(),
                user: "1000".into(),
                password: "secret".into(),
                require_auth: true,
                nonce: "n1".into(),
                nonces_issued: 1,
                fresh_nonce_on_failure: false,
                stale_next: false,
                min_expires: None,
                max_expires: 3600,
                silent: false,
                fixed: None,
                verified: 0,
            }
        }

        fn rotate_nonce(&mut self) {
            self.nonces_issued += 1;
            self.nonce = format!("n{}", self.nonces_issued);
        }

        fn challenge(&self, req: &Request, stale: bool) -> Response {
            let mut r = req.make_response(401, "Unauthorized", Some("reg"));
            let stale = if stale { ", stale=true" } else { "" };
            r.headers.push(
                HeaderName::WwwAuthenticate,
                format!(
                    "Digest realm=\"{}\", nonce=\"{}\", qop=\"auth\", algorithm=MD5{stale}",
                    self.realm, self.nonce
                ),
            );
            r
        }

        fn verify(&self, req: &Request, p: &HashMap<String, String>) -> bool {
            let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
            let ha1 = md5_hex(&format!("{}:{}:{}", self.user, self.realm, self.password));
            let ha2 = md5_hex(&format!("REGISTER:{}", get("uri")));
            let expected = md5_hex(&format!(
                "{ha1}:{}:{}:{}:auth:{ha2}",
                self.nonce,
                get("nc"),
                get("cnonce")
            ));
            get("uri") == req.uri
                && get("username") == self.user
                && get("realm") == self.realm
                && get("qop") == "auth"
                && get("response") == expected
        }
    }

    impl Peer for FakeRegistrar {
        fn answer(&mut self, req: &Request) -> Option<Response> {
            assert_eq!(req.method, Method::Register);
            if self.silent {
                return None;
            }
            if let Some((status, extra)) = &self.fixed {
                let mut r = req.make_response(*status, "Nope", Some("reg"));
                for (n, v) in extra {
                    r.headers.push(n.clone(), v.clone());
                }
                return Some(r);
            }
            if self.require_auth {
                let Some(auth) = header(req, HeaderName::Authorization) else {
                    return Some(self.challenge(req, false));
                };
                let p = digest_params(&auth);
                if p.get("nonce") != Some(&self.nonce) {
                    return Some(self.challenge(req, true));
                }
                if !self.verify(req, &p) {
                    if self.fresh_nonce_on_failure {
                        self.rotate_nonce();
                    }
                    return Some(self.challenge(req, false));
                }
                if self.stale_next {
                    self.stale_next = false;
                    self.rotate_nonce();
                    return Some(self.challenge(req, true));
                }
                self.verified += 1;
            }
            let requested = expires_of(req);
            if let Some(min) = self.min_expires
                && requested != 0
                && requested < min
            {
                let mut r = req.make_response(423, "Interval Too Brief", Some("reg"));
                r.headers.push(HeaderName::MinExpires, min.to_string());
                return Some(r);
            }
            let contact = req.headers.contact().map(|c| c.uri).unwrap_or_default();
            let mut r = req.make_response(200, "OK", Some("reg"));
            if requested > 0 {
                let granted = requested.min(self.max_expires);
                // Another device's binding first, ours second: we must pick ours.
                r.headers.push(
                    HeaderName::Contact,
                    "<sip:1000@198.51.100.7:5060>;expires=17",
                );
                r.headers.push(
                    HeaderName::Contact,
                    format!("<{contact}>;expires={granted}"),
                );
            }
            Some(r)
        }
    }

    /// Answers OPTIONS with `status`, or stays silent.
    struct FakeTrunk {
        status: Option<u16>,
        pings: u32,
    }

    impl Peer for FakeTrunk {
        fn answer(&mut self, req: &Request) -> Option<Response> {
            assert_eq!(req.method, Method::Options);
            self.pings += 1;
            self.status
                .map(|s| req.make_response(s, "Whatever", Some("trunk")))
        }
    }

    /// One agent and its peer in simulated time; messages cross the wire as bytes, instantly.
    struct Sim<P> {
        agent: Agent,
        peer: P,
        t0: Instant,
        now: Instant,
        sent: Vec<(Duration, Request)>,
        events: Vec<(Duration, AgentEvent)>,
    }

    impl<P: Peer> Sim<P> {
        fn new(t0: Instant, agent: Agent, peer: P) -> Self {
            let mut sim = Sim {
                agent,
                peer,
                t0,
                now: t0,
                sent: Vec::new(),
                events: Vec::new(),
            };
            sim.pump();
            sim
        }

        fn pump(&mut self) {
            while let Some(out) = self.agent.poll_output() {
                let at = self.now - self.t0;
                match out {
                    AgentOutput::Transmit(t) => {
                        let req = parse_request(&t.data);
                        self.sent.push((at, req.clone()));
                        if let Some(resp) = self.peer.answer(&req) {
                            let resp = parse_response(&resp.to_bytes());
                            self.agent.handle_response(self.now, &resp);
                        }
                    }
                    AgentOutput::Event(e) => self.events.push((at, e)),
                }
            }
        }

        /// Advance to `t0 + at`, firing every timer due on the way.
        fn run_to(&mut self, at: f64) {
            let until = self.t0 + secs(at);
            while let Some(due) = self.agent.poll_timeout() {
                if due > until {
                    break;
                }
                assert!(due >= self.now, "timer in the past");
                self.now = due;
                self.agent.handle_timeout(due);
                self.pump();
            }
            self.now = until;
        }

        fn reg(&self) -> &Registration {
            match &self.agent {
                Agent::Registration(r) => r,
                Agent::KeepAlive(_) => panic!("not a registration"),
            }
        }

        fn at(&self, s: f64) -> Instant {
            self.t0 + secs(s)
        }

        fn sent_since(&self, from: f64) -> Vec<&Request> {
            self.sent
                .iter()
                .filter(|(at, _)| *at >= secs(from))
                .map(|(_, r)| r)
                .collect()
        }
    }

    fn reg_config() -> RegistrationConfig {
        let registrar = Uri::parse(REGISTRAR).unwrap();
        let mut cfg = RegistrationConfig::new(registrar, AOR, CONTACT, "192.0.2.10", 5062);
        cfg.credentials = Some(Credentials {
            username: "1000".into(),
            password: "secret".into(),
        });
        cfg.seed = 42;
        cfg
    }

    fn udp_reg_config() -> RegistrationConfig {
        let mut cfg = reg_config();
        cfg.registrar = Uri::parse("sip:192.0.2.1:5060").unwrap();
        cfg.outbound = Dest::Addr("192.0.2.1:5060".parse().unwrap());
        cfg.transport = Transport::Udp;
        cfg.contact = "sip:1000@192.0.2.10:5062".into();
        cfg.backoff.jitter_percent = 0;
        cfg
    }

    fn registration_sim(cfg: RegistrationConfig, registrar: FakeRegistrar) -> Sim<FakeRegistrar> {
        let t0 = Instant::now();
        Sim::new(
            t0,
            Agent::Registration(Registration::new(t0, cfg)),
            registrar,
        )
    }

    fn reg_events<P>(sim: &Sim<P>) -> Vec<(Duration, RegistrationState)> {
        sim.events
            .iter()
            .filter_map(|(at, e)| match e {
                AgentEvent::Registration(s) => Some((*at, *s)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn digest_register_then_refresh_reuses_nonce_and_survives_stale() {
        let mut registrar = FakeRegistrar::new();
        registrar.max_expires = 120;
        let mut sim = registration_sim(reg_config(), registrar);

        // 1. unauthenticated REGISTER, 401, REGISTER with credentials, 200.
        assert_eq!(sim.sent.len(), 2);
        let (first, second) = (sim.sent[0].1.clone(), sim.sent[1].1.clone());
        let (first, second) = (&first, &second);
        assert_eq!(first.uri, REGISTRAR, "Request-URI is the registrar URI");
        assert_eq!(header(first, HeaderName::Authorization), None);
        assert_eq!(expires_of(first), 3600);
        assert_eq!(first.headers.cseq().unwrap().seq, 1);
        assert_eq!(first.headers.to().unwrap().uri, AOR);
        assert_eq!(first.headers.from().unwrap().uri, AOR);
        assert_eq!(first.headers.contact().unwrap().uri, CONTACT);
        assert_eq!(
            header(first, HeaderName::MaxForwards).as_deref(),
            Some("70")
        );
        assert_eq!(first.headers.top_via().unwrap().transport, "TCP");
        let auth = digest_params(&header(second, HeaderName::Authorization).unwrap());
        assert_eq!(auth["uri"], second.uri);
        assert_eq!(auth["nonce"], "n1");
        assert_eq!(auth["nc"], "00000001");
        assert_eq!(second.headers.cseq().unwrap().seq, 2);
        assert_eq!(second.headers.call_id(), first.headers.call_id());
        assert_eq!(second.headers.from_tag(), first.headers.from_tag());
        assert_ne!(branch_of(second), branch_of(first));
        assert_eq!(sim.peer.verified, 1, "the registrar accepted our digest");
        assert_eq!(
            reg_events(&sim),
            vec![
                (Duration::ZERO, RegistrationState::Registering),
                (
                    Duration::ZERO,
                    RegistrationState::Registered {
                        until: sim.at(120.0)
                    }
                ),
            ]
        );
        assert_eq!(sim.reg().call_id(), first.headers.call_id().unwrap());

        // 2. refresh at 120 − max(5, 12) = 108 s, credentials sent pre-emptively.
        sim.run_to(107.9);
        assert_eq!(sim.sent.len(), 2, "nothing before the refresh time");
        sim.run_to(108.0);
        assert_eq!(sim.sent.len(), 3, "refresh answered at once, no challenge");
        let (at, refresh) = &sim.sent[2];
        assert_eq!(*at, secs(108.0));
        assert_eq!(refresh.headers.cseq().unwrap().seq, 3);
        assert_eq!(refresh.headers.call_id(), first.headers.call_id());
        assert_eq!(refresh.headers.from_tag(), first.headers.from_tag());
        let auth = digest_params(&header(refresh, HeaderName::Authorization).unwrap());
        assert_eq!(auth["nonce"], "n1");
        assert_eq!(auth["nc"], "00000002");
        assert_eq!(
            sim.reg().state(),
            RegistrationState::Registered {
                until: sim.at(228.0)
            }
        );

        // 3. next refresh at 216 s: the nonce went stale, we answer the new one.
        sim.peer.stale_next = true;
        sim.run_to(216.0);
        let round: Vec<&Request> = sim.sent_since(216.0);
        assert_eq!(round.len(), 2);
        let stale_try = digest_params(&header(round[0], HeaderName::Authorization).unwrap());
        assert_eq!(
            (stale_try["nonce"].as_str(), stale_try["nc"].as_str()),
            ("n1", "00000003")
        );
        let fresh = digest_params(&header(round[1], HeaderName::Authorization).unwrap());
        assert_eq!(
            (fresh["nonce"].as_str(), fresh["nc"].as_str()),
            ("n2", "00000001")
        );
        assert_eq!(round[1].headers.cseq().unwrap().seq, 5);
        assert_eq!(
            sim.reg().state(),
            RegistrationState::Registered {
                until: sim.at(336.0)
            }
        );
        assert_eq!(sim.reg().poll_timeout(), Some(sim.at(324.0)));
    }

    #[test]
    fn interval_too_brief_is_retried_with_min_expires() {
        let mut registrar = FakeRegistrar::new();
        registrar.require_auth = false;
        registrar.min_expires = Some(1800);
        let mut cfg = reg_config();
        cfg.expires = 600;
        let mut sim = registration_sim(cfg, registrar);
        assert_eq!(sim.sent.len(), 2);
        assert_eq!(expires_of(&sim.sent[0].1), 600);
        assert_eq!(expires_of(&sim.sent[1].1), 1800);
        assert_eq!(sim.sent[1].1.headers.cseq().unwrap().seq, 2);
        assert_eq!(
            sim.reg().state(),
            RegistrationState::Registered {
                until: sim.at(1800.0)
            }
        );
        // Refresh at 1800 − 180 s keeps the raised interval.
        sim.run_to(1620.0);
        assert_eq!(sim.sent.len(), 3);
        assert_eq!(sim.sent[2].0, secs(1620.0));
        assert_eq!(expires_of(&sim.sent[2].1), 1800);
    }

    #[test]
    fn absurd_min_expires_does_not_overflow_the_clock() {
        let mut registrar = FakeRegistrar::new();
        registrar.require_auth = false;
        registrar.min_expires = Some(u32::MAX);
        registrar.max_expires = u32::MAX;
        let sim = registration_sim(udp_reg_config(), registrar);
        assert_eq!(expires_of(&sim.sent[1].1), u32::MAX);
        assert!(matches!(
            sim.reg().state(),
            RegistrationState::Registered { until } if until > sim.at(365.0 * 24.0 * 3600.0)
        ));
    }

    #[test]
    fn useless_423_is_a_failure_not_a_loop() {
        let mut registrar = FakeRegistrar::new();
        registrar.fixed = Some((423, vec![(HeaderName::MinExpires, "60".into())]));
        let sim = registration_sim(udp_reg_config(), registrar);
        assert_eq!(
            sim.sent.len(),
            1,
            "Min-Expires below what we asked: no retry"
        );
        assert!(matches!(
            sim.reg().state(),
            RegistrationState::Failed {
                status: Some(423),
                ..
            }
        ));
    }

    #[test]
    fn silent_registrar_retransmits_backs_off_and_recovers() {
        let mut registrar = FakeRegistrar::new();
        registrar.silent = true;
        let mut sim = registration_sim(udp_reg_config(), registrar);

        // Timer E: 0.5 s doubling to T2 = 4 s; Timer F at 32 s.
        sim.run_to(40.0);
        let times: Vec<f64> = sim.sent.iter().map(|(t, _)| t.as_secs_f64()).collect();
        assert_eq!(
            times,
            vec![0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
        );
        assert!(
            sim.sent.iter().all(|(_, r)| *r == sim.sent[0].1),
            "retransmissions are the same request"
        );
        assert_eq!(
            reg_events(&sim).last(),
            Some(&(
                secs(32.0),
                RegistrationState::Failed {
                    status: None,
                    retry_at: sim.at(62.0)
                }
            ))
        );

        // Each attempt times out after 32 s; the wait before the next doubles up to 15 min.
        sim.run_to(6000.0);
        let gaps: Vec<u64> = reg_events(&sim)
            .iter()
            .filter_map(|(at, s)| match s {
                RegistrationState::Failed { retry_at, .. } => {
                    Some((*retry_at - (sim.t0 + *at)).as_secs())
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            gaps,
            vec![30, 60, 120, 240, 480, 900, 900, 900, 900, 900, 900]
        );
        let attempts: Vec<f64> = {
            let mut seen = Vec::new();
            for (at, r) in &sim.sent {
                let seq = r.headers.cseq().unwrap().seq;
                if seen.last().is_none_or(|(s, _)| *s != seq) {
                    seen.push((seq, at.as_secs_f64()));
                }
            }
            seen.into_iter().map(|(_, t)| t).collect()
        };
        assert_eq!(
            attempts,
            vec![
                0.0, 62.0, 154.0, 306.0, 578.0, 1090.0, 2022.0, 2954.0, 3886.0, 4818.0, 5750.0
            ]
        );

        // The registrar comes back: the next retry (at 5750 + 32 + 900 = 6682 s) registers.
        sim.peer.silent = false;
        sim.run_to(6682.0);
        assert_eq!(
            sim.reg().state(),
            RegistrationState::Registered {
                until: sim.at(6682.0 + 3600.0)
            }
        );
        // A later failure starts the back-off from the beginning again.
        sim.peer.silent = true;
        sim.run_to(6682.0 + 3240.0 + 32.0);
        assert_eq!(
            sim.reg().state(),
            RegistrationState::Failed {
                status: None,
                retry_at: sim.at(6682.0 + 3240.0 + 32.0 + 30.0)
            }
        );
    }

    #[test]
    fn back_off_jitter_is_deterministic_and_bounded() {
        let backoff = Backoff::default();
        let draw = |seed| {
            let mut ids = IdGen::new(seed);
            (1..=8)
                .map(|n| backoff.delay(n, &mut ids))
                .collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7), "same seed, same schedule");
        assert_ne!(a, draw(8));
        let nominal = [30u64, 60, 120, 240, 480, 900, 900, 900];
        for (d, n) in a.iter().zip(nominal) {
            let n = Duration::from_secs(n);
            assert!(
                *d <= n && *d >= n * 9 / 10,
                "{d:?} outside 90..100 % of {n:?}"
            );
        }
        assert!(a.iter().zip(nominal).any(|(d, n)| d.as_secs() != n));
    }

    #[test]
    fn forbidden_fails_with_status_and_backs_off() {
        let mut registrar = FakeRegistrar::new();
        registrar.fixed = Some((403, vec![]));
        let mut sim = registration_sim(udp_reg_config(), registrar);
        assert_eq!(
            sim.reg().state(),
            RegistrationState::Failed {
                status: Some(403),
                retry_at: sim.at(30.0)
            }
        );
        sim.run_to(30.0);
        assert_eq!(sim.sent.len(), 2);
        assert_eq!(
            reg_events(&sim),
            vec![
                (secs(0.0), RegistrationState::Registering),
                (
                    secs(0.0),
                    RegistrationState::Failed {
                        status: Some(403),
                        retry_at: sim.at(30.0)
                    }
                ),
                (secs(30.0), RegistrationState::Registering),
                (
                    secs(30.0),
                    RegistrationState::Failed {
                        status: Some(403),
                        retry_at: sim.at(90.0)
                    }
                ),
            ]
        );
    }

    #[test]
    fn service_unavailable_retry_after_is_honoured_and_capped() {
        let mut registrar = FakeRegistrar::new();
        registrar.fixed = Some((
            503,
            vec![(
                HeaderName::RetryAfter,
                "120 (maintenance);duration=60".into(),
            )],
        ));
        let mut sim = registration_sim(udp_reg_config(), registrar);
        assert_eq!(
            sim.reg().state(),
            RegistrationState::Failed {
                status: Some(503),
                retry_at: sim.at(120.0)
            }
        );
        sim.peer.fixed = Some((503, vec![(HeaderName::RetryAfter, "soon".into())]));
        sim.run_to(120.0);
        assert_eq!(
            sim.reg().state(),
            RegistrationState::Failed {
                status: Some(503),
                retry_at: sim.at(120.0 + 60.0)
            },
            "an unparsable Retry-After falls back to the back-off (second failure: 60 s)"
        );
        sim.peer.fixed = Some((503, vec![(HeaderName::RetryAfter, "99999999999".into())]));
        sim.run_to(180.0);
        assert_eq!(
            sim.reg().state(),
            RegistrationState::Failed {
                status: Some(503),
                retry_at: sim.at(180.0 + 3600.0)
            },
            "capped at one hour"
        );
    }

    #[test]
    fn wrong_password_fails_instead_of_looping() {
        // Same nonce challenged again after we answered it: the password is wrong.
        let mut registrar = FakeRegistrar::new();
        registrar.password = "other".into();
        let mut sim = registration_sim(udp_reg_config(), registrar);
        assert_eq!(sim.sent.len(), 2);
        assert_eq!(
            sim.reg().state(),
            RegistrationState::Failed {
                status: Some(401),
                retry_at: sim.at(30.0)
            }
        );
        // Each retry costs two REGISTERs, and the back-off keeps growing.
        sim.run_to(3600.0);
        let attempts: Vec<f64> = sim
            .sent
            .iter()
            .filter(|(_, r)| header(r, HeaderName::Authorization).is_none())
            .map(|(at, _)| at.as_secs_f64())
            .collect();
        assert_eq!(
            attempts,
            vec![0.0, 30.0, 90.0, 210.0, 450.0, 930.0, 1830.0, 2730.0]
        );
        assert_eq!(sim.sent.len(), 2 * attempts.len());
    }

    #[test]
    fn fresh_nonce_every_time_stops_after_two_rounds() {
        let mut registrar = FakeRegistrar::new();
        registrar.password = "other".into();
        registrar.fresh_nonce_on_failure = true;
        let sim = registration_sim(udp_reg_config(), registrar);
        assert_eq!(sim.sent.len(), 3, "no auth, round 1, round 2, then give up");
        assert!(matches!(
            sim.reg().state(),
            RegistrationState::Failed {
                status: Some(401),
                ..
            }
        ));
    }

    #[test]
    fn no_credentials_means_401_is_a_failure() {
        let mut cfg = udp_reg_config();
        cfg.credentials = None;
        let sim = registration_sim(cfg, FakeRegistrar::new());
        assert_eq!(sim.sent.len(), 1);
        assert!(matches!(
            sim.reg().state(),
            RegistrationState::Failed {
                status: Some(401),
                ..
            }
        ));
    }

    #[test]
    fn unregister_sends_expires_zero_and_ends() {
        let mut sim = registration_sim(reg_config(), FakeRegistrar::new());
        assert!(matches!(
            sim.reg().state(),
            RegistrationState::Registered { .. }
        ));
        sim.run_to(10.0);
        if let Agent::Registration(r) = &mut sim.agent {
            r.unregister(sim.now);
        }
        sim.pump();
        let last = &sim.sent.last().unwrap().1;
        assert_eq!(expires_of(last), 0);
        assert_eq!(last.headers.contact().unwrap().uri, CONTACT);
        assert_eq!(last.headers.cseq().unwrap().seq, 3);
        assert_eq!(last.headers.call_id(), sim.sent[0].1.headers.call_id());
        let auth = digest_params(&header(last, HeaderName::Authorization).unwrap());
        assert_eq!(auth["nc"], "00000002", "credentials sent pre-emptively");
        assert_eq!(sim.reg().state(), RegistrationState::Unregistered);
        assert!(sim.reg().is_finished());
        assert_eq!(sim.reg().poll_timeout(), None);
        assert_eq!(
            reg_events(&sim).last(),
            Some(&(secs(10.0), RegistrationState::Unregistered))
        );
        // Idempotent.
        if let Agent::Registration(r) = &mut sim.agent {
            r.unregister(sim.now);
        }
        sim.pump();
        assert_eq!(sim.sent.len(), 3);
    }

    #[test]
    fn transport_error_fails_the_attempt() {
        let mut registrar = FakeRegistrar::new();
        registrar.silent = true;
        let mut sim = registration_sim(udp_reg_config(), registrar);
        sim.agent.handle_transport_error(sim.now);
        sim.pump();
        assert_eq!(
            sim.reg().state(),
            RegistrationState::Failed {
                status: None,
                retry_at: sim.at(30.0)
            }
        );
    }

    #[test]
    fn stray_and_mismatched_responses_are_ignored() {
        let mut registrar = FakeRegistrar::new();
        registrar.silent = true;
        let mut sim = registration_sim(udp_reg_config(), registrar);
        let req = sim.sent[0].1.clone();
        let mut other_call = req.make_response(200, "OK", Some("x"));
        other_call.headers.set(HeaderName::CallId, "someone-else");
        let mut other_branch = req.make_response(200, "OK", Some("x"));
        other_branch.headers.set(
            HeaderName::Via,
            "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKnope",
        );
        let mut other_seq = req.make_response(200, "OK", Some("x"));
        other_seq.headers.set(HeaderName::CSeq, "99 REGISTER");
        let trying = req.make_response(100, "Trying", None);
        for r in [other_call, other_branch, other_seq, trying] {
            sim.agent.handle_response(sim.now, &r);
        }
        sim.pump();
        assert_eq!(sim.reg().state(), RegistrationState::Registering);
    }

    #[test]
    fn request_uri_drops_the_user_part() {
        let uri = |s: &str| registrar_request_uri(&Uri::parse(s).unwrap());
        assert_eq!(uri(REGISTRAR), REGISTRAR);
        assert_eq!(uri("sip:1000@pbx.example.com"), "sip:pbx.example.com");
        assert_eq!(
            uri("sip:1000:pw@10.0.0.1:5070;transport=tcp"),
            "sip:10.0.0.1:5070;transport=tcp"
        );
        assert_eq!(uri("sips:alice@[::1]:5061"), "sips:[::1]:5061");
    }

    #[test]
    fn granted_expiry_prefers_our_contact_then_expires_header() {
        let mut r = Response::new(200, "OK");
        assert_eq!(granted_expires(&r, CONTACT), None);
        r.headers.push(HeaderName::Expires, "300");
        assert_eq!(granted_expires(&r, CONTACT), Some(300));
        r.headers.push(
            HeaderName::Contact,
            "<sip:other@198.51.100.1>;expires=10, <SIP:1000@192.0.2.10:5062>;expires=90",
        );
        assert_eq!(granted_expires(&r, CONTACT), Some(90), "re-written contact");
        let mut r = Response::new(200, "OK");
        r.headers
            .push(HeaderName::Contact, format!("<{CONTACT}>;expires=abc"));
        r.headers.push(HeaderName::Expires, "45");
        assert_eq!(
            granted_expires(&r, CONTACT),
            Some(45),
            "garbage param ignored"
        );
    }

    #[test]
    fn refresh_time_rules() {
        let at = |g: u64| refresh_delay(Duration::from_secs(g)).as_secs_f64();
        assert_eq!(at(3600), 3240.0);
        assert_eq!(at(120), 108.0);
        assert_eq!(at(60), 54.0);
        assert_eq!(at(59), 29.5);
        assert_eq!(at(30), 15.0);
        assert_eq!(at(8), 3.0);
        assert_eq!(at(4), 2.0);
    }

    // ----- keep-alive -------------------------------------------------------------------

    fn keepalive_sim(status: Option<u16>, down_after: u32) -> Sim<FakeTrunk> {
        let mut cfg = KeepAliveConfig::new(
            Uri::parse("sip:192.0.2.1:5060").unwrap(),
            "sip:dialer@192.0.2.10",
            "192.0.2.10",
            5062,
        );
        cfg.down_after = down_after;
        cfg.seed = 9;
        let t0 = Instant::now();
        Sim::new(
            t0,
            Agent::KeepAlive(KeepAlive::new(t0, cfg)),
            FakeTrunk { status, pings: 0 },
        )
    }

    fn trunk_events<P>(sim: &Sim<P>) -> Vec<AgentEvent> {
        sim.events.iter().map(|(_, e)| e.clone()).collect()
    }

    #[test]
    fn keepalive_up_down_up() {
        let mut sim = keepalive_sim(Some(200), 1);
        let first = sim.sent[0].1.clone();
        assert_eq!(first.method, Method::Options);
        assert_eq!(first.uri, "sip:192.0.2.1:5060");
        assert_eq!(
            header(&first, HeaderName::MaxForwards).as_deref(),
            Some("70")
        );
        assert_eq!(first.headers.to_tag(), None, "out of dialog");
        assert_eq!(trunk_events(&sim), vec![AgentEvent::TrunkUp { at: sim.t0 }]);

        // Next ping 30 s after the answer; the trunk falls silent.
        sim.peer.status = None;
        sim.run_to(29.9);
        assert_eq!(sim.sent.len(), 1);
        sim.run_to(61.9);
        let second = &sim.sent[1].1;
        assert_eq!(sim.sent[1].0, secs(30.0));
        assert_eq!(second.headers.call_id(), first.headers.call_id());
        assert_eq!(second.headers.cseq().unwrap().seq, 2);
        assert_ne!(branch_of(second), branch_of(&first));
        assert!(sim.sent.len() > 5, "retransmitted over UDP");
        assert_eq!(trunk_events(&sim).len(), 1, "not down before Timer F");
        sim.run_to(62.0);
        assert_eq!(
            trunk_events(&sim).last(),
            Some(&AgentEvent::TrunkDown { at: sim.at(62.0) })
        );

        // Down: ping every 5 s after each failure; a 404 proves the trunk alive.
        sim.peer.status = Some(404);
        let before = sim.sent.len();
        sim.run_to(67.0);
        assert_eq!(sim.sent.len(), before + 1);
        assert_eq!(
            trunk_events(&sim).last(),
            Some(&AgentEvent::TrunkUp { at: sim.at(67.0) })
        );
        sim.run_to(97.0);
        assert_eq!(sim.sent.last().unwrap().0, secs(97.0), "back to 30 s");
        assert_eq!(trunk_events(&sim).len(), 3, "404 again: still up, no event");
    }

    #[test]
    fn keepalive_any_final_answer_is_alive() {
        for status in [405, 481, 501, 503, 486] {
            let sim = keepalive_sim(Some(status), 1);
            assert_eq!(trunk_events(&sim), vec![AgentEvent::TrunkUp { at: sim.t0 }]);
            let Agent::KeepAlive(ka) = &sim.agent else {
                unreachable!()
            };
            assert_eq!(ka.state(), TrunkState::Up);
            assert_eq!(ka.last_status(), Some(status));
        }
        // A provisional answer alone is not enough.
        let mut sim = keepalive_sim(None, 1);
        let trying = sim.sent[0].1.make_response(100, "Trying", None);
        sim.agent.handle_response(sim.now, &trying);
        sim.run_to(32.0);
        assert_eq!(
            trunk_events(&sim),
            vec![AgentEvent::TrunkDown { at: sim.at(32.0) }]
        );
    }

    #[test]
    fn keepalive_down_after_consecutive_failures() {
        let mut sim = keepalive_sim(None, 2);
        sim.run_to(32.0);
        assert!(trunk_events(&sim).is_empty(), "one failure is tolerated");
        // Not down yet: the next ping waits the normal interval.
        sim.run_to(62.0);
        assert_eq!(sim.sent.last().unwrap().0, secs(62.0));
        sim.run_to(94.0);
        assert_eq!(
            trunk_events(&sim),
            vec![AgentEvent::TrunkDown { at: sim.at(94.0) }]
        );
        sim.run_to(99.0);
        assert_eq!(sim.sent.last().unwrap().0, secs(99.0), "5 s while down");
    }

    // ----- endpoint wiring --------------------------------------------------------------

    #[test]
    fn endpoint_routes_responses_to_the_call_and_the_agents() {
        use crate::call::{CallConfig, CallEvent};
        use crate::endpoint::{Endpoint, EndpointConfig, EndpointOutput};

        let trunk: std::net::SocketAddr = "192.0.2.1:5060".parse().unwrap();
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let call = ep.place_call(
            t0,
            CallConfig {
                request_uri: Uri::parse("sip:+15551234@192.0.2.1:5060").unwrap(),
                from_uri: "sip:dialer@192.0.2.10".into(),
                from_display: None,
                to_uri: "sip:+15551234@192.0.2.1".into(),
                contact: "sip:dialer@192.0.2.10:5062".into(),
                via_host: "192.0.2.10".into(),
                via_port: 5062,
                transport: Transport::Udp,
                outbound: Dest::Addr(trunk),
                preloaded_route: vec![],
                credentials: None,
                media: None,
                ring_timeout: Duration::from_secs(120),
                session_expires: None,
                min_se: 90,
                p_asserted_identity: None,
                user_agent: None,
                extra_headers: vec![],
                timers: TimerConfig::default(),
            },
        );
        let ping = ep.add_keepalive(
            t0,
            KeepAliveConfig::new(
                Uri::parse("sip:192.0.2.1:5060").unwrap(),
                "sip:dialer@192.0.2.10",
                "192.0.2.10",
                5062,
            ),
        );
        let mut reg_cfg = udp_reg_config();
        reg_cfg.credentials = None;
        let reg = ep.add_registration(t0, reg_cfg);

        let drain = |ep: &mut Endpoint| {
            let (mut sent, mut events) = (vec![], vec![]);
            while let Some(o) = ep.poll_output() {
                match o {
                    EndpointOutput::Transmit(t) => sent.push(parse_request(&t.data)),
                    other => events.push(other),
                }
            }
            (sent, events)
        };
        let (sent, events) = drain(&mut ep);
        let methods: Vec<Method> = sent.iter().map(|r| r.method.clone()).collect();
        assert_eq!(
            methods,
            vec![Method::Invite, Method::Options, Method::Register]
        );
        assert_eq!(
            events,
            vec![EndpointOutput::Agent {
                agent: reg,
                event: AgentEvent::Registration(RegistrationState::Registering)
            }]
        );
        let call_ids: std::collections::HashSet<_> =
            sent.iter().map(|r| r.headers.call_id().unwrap()).collect();
        assert_eq!(call_ids.len(), 3, "every owner has its own Call-ID");

        // Answer all three; each answer reaches its owner only.
        let mut ok = sent[2].make_response(200, "OK", Some("reg"));
        ok.headers.push(HeaderName::Expires, "600");
        for resp in [
            sent[0].make_response(180, "Ringing", Some("uas")),
            sent[1].make_response(200, "OK", Some("trunk")),
            ok,
        ] {
            ep.handle_datagram(t0, Transport::Udp, trunk, &resp.to_bytes());
        }
        let (sent_after, events) = drain(&mut ep);
        assert!(sent_after.is_empty());
        assert_eq!(
            events,
            vec![
                EndpointOutput::Event {
                    call,
                    event: CallEvent::Progress {
                        status: 180,
                        early_sdp: None,
                        early_media: None,
                    }
                },
                EndpointOutput::Agent {
                    agent: ping,
                    event: AgentEvent::TrunkUp { at: t0 }
                },
                EndpointOutput::Agent {
                    agent: reg,
                    event: AgentEvent::Registration(RegistrationState::Registered {
                        until: t0 + Duration::from_secs(600)
                    })
                },
            ]
        );
        assert_eq!(ep.stats().stray_responses, 0);

        // Agent timers live in the endpoint's heap: driving only the endpoint's timers sends
        // the next ping 30 s later and reports the trunk down at Timer F.
        let mut now = t0;
        let mut pings = vec![];
        let mut trunk_events = vec![];
        while let Some(at) = ep.poll_timeout() {
            if at > t0 + Duration::from_secs(62) {
                break;
            }
            now = at;
            ep.handle_timeout(now);
            let (sent, events) = drain(&mut ep);
            let n = sent.iter().filter(|r| r.method == Method::Options).count();
            pings.extend(std::iter::repeat_n(now - t0, n));
            trunk_events.extend(
                events
                    .into_iter()
                    .filter(|e| matches!(e, EndpointOutput::Agent { agent, .. } if *agent == ping)),
            );
        }
        assert_eq!(now, t0 + Duration::from_secs(62));
        assert_eq!(pings.len(), 11, "ping at 30 s and its 10 retransmissions");
        assert_eq!(pings[0], Duration::from_secs(30));
        assert_eq!(
            trunk_events,
            vec![EndpointOutput::Agent {
                agent: ping,
                event: AgentEvent::TrunkDown {
                    at: t0 + Duration::from_secs(62)
                }
            }]
        );

        // Unregister through the endpoint; the 200 is routed back to the registration.
        ep.unregister(now, reg);
        let (sent, _) = drain(&mut ep);
        assert_eq!(sent.len(), 1);
        assert_eq!(expires_of(&sent[0]), 0);
        let ok = sent[0].make_response(200, "OK", Some("reg"));
        ep.handle_datagram(now, Transport::Udp, trunk, &ok.to_bytes());
        let (_, events) = drain(&mut ep);
        assert_eq!(
            events,
            vec![EndpointOutput::Agent {
                agent: reg,
                event: AgentEvent::Registration(RegistrationState::Unregistered)
            }]
        );
        assert!(matches!(
            ep.agent(reg),
            Some(Agent::Registration(r)) if r.is_finished()
        ));
        assert!(ep.remove_agent(reg).is_some());
        ep.handle_datagram(now, Transport::Udp, trunk, &ok.to_bytes());
        assert_eq!(ep.stats().stray_responses, 1, "removed agent: stray");
    }

    #[test]
    fn keepalive_transport_error_counts_as_failure() {
        let mut sim = keepalive_sim(None, 1);
        sim.agent.handle_transport_error(sim.now);
        sim.pump();
        assert_eq!(
            trunk_events(&sim),
            vec![AgentEvent::TrunkDown { at: sim.t0 }]
        );
        assert_eq!(sim.agent.poll_timeout(), Some(sim.at(5.0)));
    }
}
