//! The SIP endpoint: many calls behind one pair of sockets.
//!
//! It parses every inbound datagram once, routes it to its call by Call-ID (responses, then
//! the call matches the transaction by branch; requests, after checking our tag), answers what
//! belongs to no call (481, 400 for garbage, 200 to OPTIONS pings, 603 to unsolicited
//! INVITEs), and keeps one timer heap for all calls, so the driver needs no task or timer per
//! call.
//!
//! It also hosts the registration and keep-alive agents of [`crate::register`]: responses whose
//! Call-ID is an agent's go to that agent, agent timers sit in the same heap (under keys with
//! the top bit set) and agent events come out as [`EndpointOutput::Agent`].
//!
//! Run loop: `handle_datagram` / `handle_timeout` / `place_call` / `hangup`, then drain
//! `poll_output`, then sleep until `poll_timeout`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use crate::call::{Call, CallConfig, CallError, CallEvent, Output, Transmit};
use crate::dialog::{Dest, Transport};
use crate::message::{
    HeaderName, Limits, Message, Method, ParseError, Request, reason_phrase, salvage_request,
};
use crate::register::{
    Agent, AgentEvent, AgentHandle, AgentOutput, KeepAlive, KeepAliveConfig, Registration,
    RegistrationConfig,
};
use crate::rng::IdGen;
use crate::timers::TimerHeap;

/// Identifies a call inside one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallHandle(pub u64);

/// Agents share the timer heap with calls: an agent's entries are keyed by its handle with this
/// bit set (call handles count up from 1 and never reach it).
const AGENT_TIMER_KEY: u64 = 1 << 63;

/// Endpoint settings.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub limits: Limits,
    /// Seed of every identifier this endpoint draws.
    pub seed: u64,
    /// Allow header value for our answers to OPTIONS.
    pub allow: String,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            seed: 0x5EED,
            allow: "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY, REFER".into(),
        }
    }
}

/// Counters of what the endpoint saw (for metrics and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    pub received: u64,
    pub parse_errors: u64,
    /// Malformed requests answered with 400, 505 or 513.
    pub rejected_malformed: u64,
    pub stray_responses: u64,
    pub stray_requests: u64,
    pub calls_placed: u64,
    pub calls_ended: u64,
}

/// What the endpoint asks the driver to do or tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointOutput {
    Transmit(Transmit),
    Event {
        call: CallHandle,
        event: CallEvent,
    },
    /// A registration or keep-alive agent changed state.
    Agent {
        agent: AgentHandle,
        event: AgentEvent,
    },
}

/// Many outbound calls multiplexed on one transport.
#[derive(Debug)]
pub struct Endpoint {
    cfg: EndpointConfig,
    ids: IdGen,
    next_handle: u64,
    calls: HashMap<CallHandle, Call>,
    by_call_id: HashMap<String, CallHandle>,
    timers: TimerHeap<CallHandle>,
    out: VecDeque<EndpointOutput>,
    stats: EndpointStats,
    agents: HashMap<AgentHandle, Agent>,
    agents_by_call_id: HashMap<String, AgentHandle>,
    next_agent: u64,
}

impl Endpoint {
    pub fn new(cfg: EndpointConfig) -> Self {
        Self {
            ids: IdGen::new(cfg.seed),
            cfg,
            next_handle: 1,
            calls: HashMap::new(),
            by_call_id: HashMap::new(),
            timers: TimerHeap::default(),
            out: VecDeque::new(),
            stats: EndpointStats::default(),
            agents: HashMap::new(),
            agents_by_call_id: HashMap::new(),
            next_agent: 1,
        }
    }

    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// Calls not yet ended.
    pub fn live_calls(&self) -> usize {
        self.calls.values().filter(|c| !c.is_ended()).count()
    }

    /// Calls still held (including ended ones absorbing retransmissions).
    pub fn held_calls(&self) -> usize {
        self.calls.len()
    }

    pub fn call(&self, h: CallHandle) -> Option<&Call> {
        self.calls.get(&h)
    }

    /// Start a call; its INVITE is queued at once.
    pub fn place_call(&mut self, now: Instant, cfg: CallConfig) -> CallHandle {
        let h = CallHandle(self.next_handle);
        self.next_handle += 1;
        let call = Call::new(now, cfg, self.ids.next_u64());
        self.by_call_id.insert(call.call_id().to_owned(), h);
        self.calls.insert(h, call);
        self.stats.calls_placed += 1;
        self.after(h);
        h
    }

    /// CANCEL or BYE.
    pub fn hangup(&mut self, now: Instant, h: CallHandle) -> Result<(), CallError> {
        let call = self.calls.get_mut(&h).ok_or(CallError::Ended)?;
        let r = call.hangup(now);
        self.after(h);
        r
    }

    /// BYE automatically at `at` once answered.
    pub fn hangup_at(&mut self, h: CallHandle, at: Instant) {
        if let Some(call) = self.calls.get_mut(&h) {
            call.hangup_at(at);
            self.after(h);
        }
    }

    /// Blind transfer of an answered call.
    pub fn refer(&mut self, now: Instant, h: CallHandle, target: &str) -> Result<(), CallError> {
        let call = self.calls.get_mut(&h).ok_or(CallError::Ended)?;
        let r = call.refer(now, target);
        self.after(h);
        r
    }

    /// Feed one datagram (or one framed stream message) received from `src`.
    pub fn handle_datagram(
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
                self.on_garbage(transport, src, data, &e);
                return;
            }
        };
        match msg {
            Message::Response(resp) => {
                let agent = resp
                    .headers
                    .call_id()
                    .and_then(|id| self.agents_by_call_id.get(id))
                    .copied();
                if let Some(a) = agent {
                    if let Some(agent) = self.agents.get_mut(&a) {
                        agent.handle_response(now, &resp);
                    }
                    self.after_agent(a);
                    return;
                }
                let h = resp
                    .headers
                    .call_id()
                    .and_then(|id| self.by_call_id.get(id))
                    .copied();
                match h.and_then(|h| self.calls.get_mut(&h).map(|c| (h, c))) {
                    Some((h, call)) => {
                        call.handle_response(now, &resp);
                        self.after(h);
                    }
                    None => self.stats.stray_responses += 1,
                }
            }
            Message::Request(req) => {
                let h = req
                    .headers
                    .call_id()
                    .and_then(|id| self.by_call_id.get(id))
                    .copied();
                let to_tag = req.headers.to_tag();
                let owner = h.filter(|h| {
                    self.calls
                        .get(h)
                        .is_some_and(|c| to_tag.as_deref() == Some(c.local_tag()))
                });
                match owner {
                    Some(h) => {
                        if let Some(call) = self.calls.get_mut(&h) {
                            call.handle_request(now, src, transport, &req);
                        }
                        self.after(h);
                    }
                    None => self.on_stray_request(transport, src, &req, to_tag.is_some()),
                }
            }
        }
    }

    /// The transport failed towards `dest`.
    pub fn handle_transport_error(&mut self, now: Instant, dest: &Dest) {
        let handles: Vec<CallHandle> = self.calls.keys().copied().collect();
        for h in handles {
            if let Some(call) = self.calls.get_mut(&h) {
                call.handle_transport_error(now, dest);
            }
            self.after(h);
        }
        let agents: Vec<AgentHandle> = self
            .agents
            .iter()
            .filter(|(_, a)| a.outbound() == dest)
            .map(|(h, _)| *h)
            .collect();
        for a in agents {
            if let Some(agent) = self.agents.get_mut(&a) {
                agent.handle_transport_error(now);
            }
            self.after_agent(a);
        }
    }

    /// Run every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(h) = self.timers.pop_due(now) {
            if h.0 & AGENT_TIMER_KEY != 0 {
                let a = AgentHandle(h.0 & !AGENT_TIMER_KEY);
                if let Some(agent) = self.agents.get_mut(&a) {
                    agent.handle_timeout(now);
                }
                self.after_agent(a);
                continue;
            }
            if let Some(call) = self.calls.get_mut(&h) {
                call.handle_timeout(now);
            }
            self.after(h);
        }
    }

    pub fn poll_output(&mut self) -> Option<EndpointOutput> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Drain a call's output, re-arm its timer, forget it when finished.
    fn after(&mut self, h: CallHandle) {
        let Some(call) = self.calls.get_mut(&h) else {
            return;
        };
        while let Some(o) = call.poll_output() {
            match o {
                Output::Transmit(t) => self.out.push_back(EndpointOutput::Transmit(t)),
                Output::Event(e) => {
                    if matches!(e, CallEvent::Ended(_)) {
                        self.stats.calls_ended += 1;
                    }
                    self.out
                        .push_back(EndpointOutput::Event { call: h, event: e })
                }
            }
        }
        if call.is_finished() {
            self.by_call_id.remove(call.call_id());
            self.calls.remove(&h);
            self.timers.arm(h, None);
            return;
        }
        self.timers.arm(h, call.poll_timeout());
    }

    /// Start registering; the first REGISTER is queued at once. The agent's seed is drawn from
    /// the endpoint's generator (replacing `cfg.seed`) so that no two agents share a Call-ID.
    pub fn add_registration(&mut self, now: Instant, mut cfg: RegistrationConfig) -> AgentHandle {
        cfg.seed = self.ids.next_u64();
        self.add_agent(Agent::Registration(Registration::new(now, cfg)))
    }

    /// Start pinging a trunk with OPTIONS; the first ping is queued at once. Seeded like
    /// [`Self::add_registration`].
    pub fn add_keepalive(&mut self, now: Instant, mut cfg: KeepAliveConfig) -> AgentHandle {
        cfg.seed = self.ids.next_u64();
        self.add_agent(Agent::KeepAlive(KeepAlive::new(now, cfg)))
    }

    pub fn agent(&self, a: AgentHandle) -> Option<&Agent> {
        self.agents.get(&a)
    }

    /// Remove a registration's binding (REGISTER with `Expires: 0`); no-op for other agents.
    pub fn unregister(&mut self, now: Instant, a: AgentHandle) {
        if let Some(Agent::Registration(r)) = self.agents.get_mut(&a) {
            r.unregister(now);
            self.after_agent(a);
        }
    }

    /// Forget an agent at once (no unregister is sent); its responses become strays.
    pub fn remove_agent(&mut self, a: AgentHandle) -> Option<Agent> {
        let agent = self.agents.remove(&a)?;
        self.agents_by_call_id.remove(agent.call_id());
        self.timers.arm(CallHandle(AGENT_TIMER_KEY | a.0), None);
        Some(agent)
    }

    fn add_agent(&mut self, agent: Agent) -> AgentHandle {
        let a = AgentHandle(self.next_agent);
        self.next_agent += 1;
        self.agents_by_call_id.insert(agent.call_id().to_owned(), a);
        self.agents.insert(a, agent);
        self.after_agent(a);
        a
    }

    /// Drain an agent's output and re-arm its timer.
    fn after_agent(&mut self, a: AgentHandle) {
        let Some(agent) = self.agents.get_mut(&a) else {
            return;
        };
        while let Some(o) = agent.poll_output() {
            self.out.push_back(match o {
                AgentOutput::Transmit(t) => EndpointOutput::Transmit(t),
                AgentOutput::Event(event) => EndpointOutput::Agent { agent: a, event },
            });
        }
        let key = CallHandle(AGENT_TIMER_KEY | a.0);
        self.timers.arm(key, agent.poll_timeout());
    }

    fn on_garbage(&mut self, transport: Transport, src: SocketAddr, data: &[u8], err: &ParseError) {
        self.stats.parse_errors += 1;
        tracing::debug!(%src, error = %err, "unparsable SIP message");
        let Some(req) = salvage_request(data) else {
            return; // responses and unrecognisable input are dropped
        };
        let status = match err {
            ParseError::UnsupportedVersion(_) => 505,
            ParseError::TooLarge { .. } => 513,
            _ => 400,
        };
        let tag = self.ids.tag();
        let mut resp = req.make_response(status, reason_phrase(status), Some(&tag));
        let warning = err.to_string().replace('"', "'");
        resp.headers
            .push(HeaderName::Warning, format!("399 dialer \"{warning}\""));
        self.stats.rejected_malformed += 1;
        self.out.push_back(EndpointOutput::Transmit(Transmit {
            transport,
            dest: Dest::Addr(src),
            data: resp.to_bytes(),
        }));
    }

    fn on_stray_request(
        &mut self,
        transport: Transport,
        src: SocketAddr,
        req: &Request,
        in_dialog: bool,
    ) {
        self.stats.stray_requests += 1;
        let status = match (&req.method, in_dialog) {
            (Method::Ack, _) => return,
            (Method::Options, false) => 200,
            (Method::Invite, false) => 603,
            _ => 481,
        };
        let tag = self.ids.tag();
        let mut resp = req.make_response(status, reason_phrase(status), Some(&tag));
        if status == 200 {
            resp.headers.push(HeaderName::Allow, self.cfg.allow.clone());
            resp.headers.push(HeaderName::Accept, "application/sdp");
        }
        self.out.push_back(EndpointOutput::Transmit(Transmit {
            transport,
            dest: Dest::Addr(src),
            data: resp.to_bytes(),
        }));
    }
}
