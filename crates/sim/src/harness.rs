//! Two parties in simulated time: our UAC ([`sip::Endpoint`]) and the callee crowd ([`Uas`]),
//! joined by a seeded [`Network`]. The clock is an `Instant` base plus an offset that jumps to the
//! next thing that happens (a delivery or either side's timer); nothing ever sleeps.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip::{
    CallConfig, CallEvent, CallHandle, CallReport, Credentials, Dest, Endpoint, EndpointConfig,
    EndpointOutput, TimerConfig, Transport, Uri,
};

use crate::net::{Datagram, NetConfig, Network};
use crate::persona::Persona;
use crate::uas::{CallRecord, Uas, UasConfig};

/// Where the UAC listens.
pub const UAC_ADDR: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(127, 0, 0, 1),
    5062,
));
/// Where the UAS listens.
pub const UAS_ADDR: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(127, 0, 0, 1),
    5070,
));

/// Settings of a [`Pair`].
#[derive(Debug, Clone)]
pub struct PairConfig {
    pub endpoint: EndpointConfig,
    pub uas: UasConfig,
    pub net: NetConfig,
    /// Keep every event of every call (tests); off for big runs.
    pub keep_events: bool,
    /// Further addresses delivered to the UAS, as through a transparent proxy (e.g. the one a
    /// Record-Route names); see [`Pair::alias_deliveries`].
    pub uas_aliases: Vec<SocketAddr>,
}

impl Default for PairConfig {
    fn default() -> Self {
        Self {
            endpoint: EndpointConfig::default(),
            uas: UasConfig::new(UAS_ADDR),
            net: NetConfig::default(),
            keep_events: true,
            uas_aliases: Vec::new(),
        }
    }
}

/// The UAC, the UAS, the network and the simulated clock.
#[derive(Debug)]
pub struct Pair {
    pub endpoint: Endpoint,
    pub uas: Uas,
    pub net: Network,
    start: Instant,
    now: Instant,
    keep_events: bool,
    reports: HashMap<CallHandle, CallReport>,
    events: HashMap<CallHandle, Vec<(Instant, CallEvent)>>,
    call_ids: HashMap<CallHandle, String>,
    ended: usize,
    /// Datagrams addressed to neither party (answers to injected traffic).
    unrouted: Vec<Datagram>,
    /// Transmits to a host name (no resolver in the simulation).
    pub unresolved: u64,
    steps: u64,
    same_instant: u64,
    uas_aliases: Vec<SocketAddr>,
    alias_deliveries: u64,
}

/// A step taken at one instant with nothing advancing more than this many times means a state
/// machine keeps asking to be woken in the past without making progress.
const LIVELOCK_STEPS: u64 = 1_000_000;

impl Pair {
    pub fn new(cfg: PairConfig) -> Self {
        let start = Instant::now();
        Self {
            endpoint: Endpoint::new(cfg.endpoint),
            uas: Uas::new(cfg.uas),
            net: Network::new(cfg.net),
            start,
            now: start,
            keep_events: cfg.keep_events,
            reports: HashMap::new(),
            events: HashMap::new(),
            call_ids: HashMap::new(),
            ended: 0,
            unrouted: Vec::new(),
            unresolved: 0,
            steps: 0,
            same_instant: 0,
            uas_aliases: cfg.uas_aliases,
            alias_deliveries: 0,
        }
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Datagrams delivered to the UAS through one of its aliases.
    pub fn alias_deliveries(&self) -> u64 {
        self.alias_deliveries
    }

    /// A call as a trunk user configures one: `sip:NUMBER@<uas>`, credentials alice/secret,
    /// 20 s ring timeout, Session-Expires 1800, an SDP offer.
    pub fn call_config(&self, number: &str) -> CallConfig {
        let uas = self.uas.config().addr;
        CallConfig {
            request_uri: Uri::sip(Some(number), &uas.ip().to_string(), Some(uas.port())),
            from_uri: format!("sip:1000@{}", UAC_ADDR.ip()),
            from_display: Some("Dialer".into()),
            to_uri: format!("sip:{number}@{}", uas.ip()),
            contact: format!("sip:1000@{UAC_ADDR}"),
            via_host: UAC_ADDR.ip().to_string(),
            via_port: UAC_ADDR.port(),
            transport: Transport::Udp,
            outbound: Dest::Addr(uas),
            preloaded_route: Vec::new(),
            credentials: Some(Credentials {
                username: "alice".into(),
                password: "secret".into(),
            }),
            media: Some(sip::sdp::LocalMedia::new(
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                30000,
                1,
            )),
            ring_timeout: Duration::from_secs(20),
            session_expires: Some(1800),
            min_se: 90,
            p_asserted_identity: None,
            user_agent: Some("sim-dialer".into()),
            extra_headers: Vec::new(),
            timers: TimerConfig::default(),
        }
    }

    /// Place a call that the UAS will answer as `persona`.
    pub fn place(&mut self, cfg: CallConfig, persona: Persona) -> CallHandle {
        let h = self.endpoint.place_call(self.now, cfg);
        if let Some(call) = self.endpoint.call(h) {
            let id = call.call_id().to_owned();
            self.uas.assign(&id, persona);
            self.call_ids.insert(h, id);
        }
        self.flush();
        h
    }

    /// BYE the call `after` from now once answered.
    pub fn hangup_after(&mut self, h: CallHandle, after: Duration) {
        self.endpoint.hangup_at(h, self.now + after);
        self.flush();
    }

    pub fn call_id(&self, h: CallHandle) -> Option<&str> {
        self.call_ids.get(&h).map(String::as_str)
    }

    pub fn report(&self, h: CallHandle) -> Option<&CallReport> {
        self.reports.get(&h)
    }

    pub fn reports(&self) -> &HashMap<CallHandle, CallReport> {
        &self.reports
    }

    /// Events of a call with the time they were emitted (only with `keep_events`).
    pub fn events(&self, h: CallHandle) -> &[(Instant, CallEvent)] {
        self.events.get(&h).map_or(&[], Vec::as_slice)
    }

    /// What the UAS saw of a call.
    pub fn uas_record(&self, h: CallHandle) -> Option<&CallRecord> {
        self.uas.record(self.call_ids.get(&h)?)
    }

    /// Calls whose `Ended` event arrived.
    pub fn ended(&self) -> usize {
        self.ended
    }

    /// Placed calls not yet ended.
    pub fn in_flight(&self) -> usize {
        self.call_ids.len() - self.ended
    }

    /// Take the datagrams sent to addresses that are neither party.
    pub fn take_unrouted(&mut self) -> Vec<Datagram> {
        std::mem::take(&mut self.unrouted)
    }

    /// Hand a datagram from `src` straight to the UAC, as if it had just arrived.
    pub fn inject_to_uac(&mut self, src: SocketAddr, data: &[u8]) {
        self.endpoint
            .handle_datagram(self.now, Transport::Udp, src, data);
        self.flush();
    }

    /// Drain both parties' output onto the network; record call events.
    fn flush(&mut self) {
        let uac = UAC_ADDR;
        let uas = self.uas.config().addr;
        while let Some(o) = self.endpoint.poll_output() {
            match o {
                EndpointOutput::Transmit(t) => match t.dest {
                    Dest::Addr(a) => {
                        self.net.send(self.now, uac, a, t.data);
                    }
                    Dest::Host(..) => self.unresolved += 1,
                },
                EndpointOutput::Event { call, event } => {
                    if let CallEvent::Ended(r) = &event {
                        self.ended += 1;
                        self.reports.insert(call, r.clone());
                    }
                    if self.keep_events {
                        self.events.entry(call).or_default().push((self.now, event));
                    }
                }
                // Registration/keep-alive agents are not used by the simulation.
                _ => {}
            }
        }
        while let Some(t) = self.uas.poll_output() {
            self.net.send(self.now, uas, t.dest, t.data);
        }
    }

    /// When something happens next.
    pub fn next_event(&self) -> Option<Instant> {
        [
            self.net.next_delivery(),
            self.endpoint.poll_timeout(),
            self.uas.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Advance to the next event and process everything due then. False when nothing is left.
    ///
    /// # Panics
    /// When a million steps pass without the clock moving (a state machine livelock).
    pub fn step(&mut self) -> bool {
        self.flush();
        let Some(next) = self.next_event() else {
            return false;
        };
        if next > self.now {
            self.now = next;
            self.same_instant = 0;
        } else {
            self.same_instant += 1;
            assert!(
                self.same_instant < LIVELOCK_STEPS,
                "livelock: no progress at {:?}",
                self.elapsed()
            );
        }
        self.steps += 1;
        let now = self.now;
        let uac = UAC_ADDR;
        let uas = self.uas.config().addr;
        while let Some(d) = self.net.poll_delivery(now) {
            if d.dst == uac {
                self.endpoint
                    .handle_datagram(now, Transport::Udp, d.src, &d.data);
            } else if d.dst == uas {
                self.uas.handle_datagram(now, d.src, &d.data);
            } else if self.uas_aliases.contains(&d.dst) {
                self.alias_deliveries += 1;
                self.uas.handle_datagram(now, d.src, &d.data);
            } else {
                self.unrouted.push(d);
            }
            self.flush();
        }
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            self.endpoint.handle_timeout(now);
            self.flush();
        }
        if self.uas.poll_timeout().is_some_and(|t| t <= now) {
            self.uas.handle_timeout(now);
            self.flush();
        }
        true
    }

    /// Process everything up to `deadline`, then set the clock to it.
    pub fn run_until(&mut self, deadline: Instant) {
        loop {
            self.flush();
            match self.next_event() {
                Some(t) if t <= deadline => {
                    self.step();
                }
                _ => break,
            }
        }
        self.now = self.now.max(deadline);
    }

    /// [`Pair::run_until`] `now + d`.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Run until nothing is left to do or `limit` of simulated time passed. True when idle.
    pub fn run_until_idle(&mut self, limit: Duration) -> bool {
        let deadline = self.now + limit;
        while self.next_event().is_some_and(|t| t <= deadline) {
            self.step();
        }
        self.next_event().is_none()
    }
}
