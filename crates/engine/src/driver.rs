//! Runs a sans-IO [`sip::Endpoint`] over real sockets.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip::{
    AgentEvent, AgentHandle, CallConfig, CallError, CallEvent, CallHandle, Dest, Endpoint,
    EndpointConfig, EndpointOutput, TimerConfig,
};

use crate::transport::{SipTransport, TransportConfig, TransportEvent};
use crate::trunk::Trunk;

/// Settings of a driver.
#[derive(Debug, Clone, Default)]
pub struct DriverConfig {
    pub transport: TransportConfig,
    pub endpoint: EndpointConfig,
}

/// What the driver reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverEvent {
    Call(CallHandle, CallEvent),
    /// Registration state changes and trunk up/down from OPTIONS keep-alive.
    Agent(AgentHandle, AgentEvent),
}

/// One endpoint, one transport, one loop.
#[derive(Debug)]
pub struct SipDriver {
    transport: SipTransport,
    endpoint: Endpoint,
    dns: HashMap<(String, u16), SocketAddr>,
    events: VecDeque<DriverEvent>,
    /// A transmission in progress (see `flush`).
    sending: Option<sip::Transmit>,
}

impl SipDriver {
    pub async fn bind(cfg: DriverConfig) -> io::Result<SipDriver> {
        let transport = SipTransport::bind(cfg.transport).await?;
        Ok(SipDriver {
            transport,
            endpoint: Endpoint::new(cfg.endpoint),
            dns: HashMap::new(),
            events: VecDeque::new(),
            sending: None,
        })
    }

    /// The UDP/TCP port we listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    /// Our SIP address as seen from `dest` (for Via and Contact): the bound address, with a
    /// wildcard IP replaced by the local IP of the route to `dest`.
    pub async fn local_addr_towards(&mut self, dest: &Dest) -> io::Result<SocketAddr> {
        let mut local = self.transport.local_addr();
        if local.ip().is_unspecified() {
            let remote = self.resolve(dest).await.ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("cannot resolve {dest:?}"))
            })?;
            local.set_ip(local_ip_for(remote)?);
        }
        Ok(local)
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Place a call; the INVITE leaves before this returns.
    pub async fn place_call(&mut self, cfg: CallConfig) -> CallHandle {
        let h = self.endpoint.place_call(Instant::now(), cfg);
        self.flush().await;
        h
    }

    /// CANCEL before answer, BYE after.
    pub async fn hangup(&mut self, h: CallHandle) -> Result<(), CallError> {
        let r = self.endpoint.hangup(Instant::now(), h);
        self.flush().await;
        r
    }

    /// Transfer an answered call (REFER); progress comes as `CallEvent::ReferProgress`.
    pub async fn refer(&mut self, h: CallHandle, target: &str) -> Result<(), CallError> {
        let r = self.endpoint.refer(Instant::now(), h, target);
        self.flush().await;
        r
    }

    /// BYE automatically at `at` once answered.
    pub fn hangup_at(&mut self, h: CallHandle, at: Instant) {
        self.endpoint.hangup_at(h, at);
    }

    /// Start REGISTER and OPTIONS keep-alive for a trunk, as its configuration asks.
    pub async fn start_trunk_agents(
        &mut self,
        trunk: &Trunk,
        local: SocketAddr,
    ) -> Vec<AgentHandle> {
        let now = Instant::now();
        let timers = TimerConfig::default();
        let mut out = Vec::new();
        if let Some(cfg) = trunk.registration_config(local, timers) {
            out.push(self.endpoint.add_registration(now, cfg));
        }
        if let Some(cfg) = trunk.keepalive_config(local, timers) {
            out.push(self.endpoint.add_keepalive(now, cfg));
        }
        self.flush().await;
        out
    }

    /// Send REGISTER with Expires: 0 for a registration agent.
    pub async fn unregister(&mut self, agent: AgentHandle) {
        self.endpoint.unregister(Instant::now(), agent);
        self.flush().await;
    }

    /// Drive sockets and timers until the next event.
    pub async fn next_event(&mut self) -> Option<DriverEvent> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Some(e);
            }
            let deadline = self.endpoint.poll_timeout();
            tokio::select! {
                ev = self.transport.recv() => {
                    let now = Instant::now();
                    match ev {
                        Some(TransportEvent::Message(m)) => {
                            self.endpoint.handle_datagram(now, m.transport, m.peer, &m.data);
                        }
                        Some(TransportEvent::Closed { peer, error }) => {
                            tracing::debug!(%peer, ?error, "connection closed");
                            self.endpoint.handle_transport_error(now, &Dest::Addr(peer));
                        }
                        Some(TransportEvent::Refused { peer, reason }) => {
                            tracing::debug!(%peer, %reason, "refused inbound data");
                        }
                        None => return None,
                    }
                }
                _ = sleep_until(deadline) => {
                    self.endpoint.handle_timeout(Instant::now());
                }
            }
            self.flush().await;
        }
    }

    /// Before exiting: keep answering retransmissions while ended calls still absorb them
    /// (our ACK or 200 OK may have been lost on UDP), then make sure queued TCP writes reach
    /// the wire. Bounded by `limit`.
    pub async fn linger(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.endpoint.held_calls() > 0 && Instant::now() < deadline {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, self.next_event()).await {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if !self
            .transport
            .flush(remaining.max(Duration::from_millis(500)))
            .await
        {
            tracing::warn!("some TCP messages were not written before exit");
        }
    }

    /// Send everything the endpoint queued. Cancel-safe: the transmission being awaited is
    /// parked in `sending` first, so a `select!` that drops this future loses nothing (the next
    /// flush sends it).
    async fn flush(&mut self) {
        loop {
            let t = match self.sending.take() {
                Some(t) => t,
                None => match self.endpoint.poll_output() {
                    Some(EndpointOutput::Transmit(t)) => t,
                    Some(EndpointOutput::Event { call, event }) => {
                        self.events.push_back(DriverEvent::Call(call, event));
                        continue;
                    }
                    Some(EndpointOutput::Agent { agent, event }) => {
                        tracing::info!(?agent, ?event, "trunk agent");
                        self.events.push_back(DriverEvent::Agent(agent, event));
                        continue;
                    }
                    None => return,
                },
            };
            self.sending = Some(t.clone());
            let result = match self.resolve(&t.dest).await {
                Some(addr) => self
                    .transport
                    .send(t.transport, addr, Bytes::from(t.data))
                    .await
                    .map_err(|e| {
                        tracing::debug!(%addr, error = %e, "send failed");
                    }),
                None => {
                    tracing::debug!(dest = ?t.dest, "cannot resolve next hop");
                    Err(())
                }
            };
            self.sending = None;
            if result.is_err() {
                self.endpoint
                    .handle_transport_error(Instant::now(), &t.dest);
            }
        }
    }

    async fn resolve(&mut self, dest: &Dest) -> Option<SocketAddr> {
        match dest {
            Dest::Addr(a) => Some(*a),
            Dest::Host(host, port) => {
                let key = (host.clone(), *port);
                if let Some(a) = self.dns.get(&key) {
                    return Some(*a);
                }
                let a = tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .ok()?
                    .next()?;
                self.dns.insert(key, a);
                Some(a)
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// The local address the kernel would use to reach `dest` (for Via/Contact when bound to a
/// wildcard address). Sends nothing: a connected UDP socket only selects a route.
pub fn local_ip_for(dest: SocketAddr) -> io::Result<IpAddr> {
    let bind: SocketAddr = if dest.is_ipv6() {
        "[::]:0".parse().map_err(io::Error::other)?
    } else {
        "0.0.0.0:0".parse().map_err(io::Error::other)?
    };
    let s = std::net::UdpSocket::bind(bind)?;
    s.connect(dest)?;
    Ok(s.local_addr()?.ip())
}
