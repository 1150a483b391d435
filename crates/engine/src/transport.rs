//! SIP transports of one engine: a UDP socket and a TCP listener on the same
//! port, plus outbound/accepted TCP connections.
//!
//! Everything received is funnelled into one bounded channel read by the
//! engine's single driver loop through [`SipTransport::recv`]. Tasks: one UDP
//! reader, one TCP acceptor, and per TCP connection one reader and one writer
//! (the writer is fed by a bounded queue, so writes are ordered per
//! connection). All tasks stop when the [`SipTransport`] is dropped.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use sip::framing::{FramingLimits, StreamFramer, datagram_message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// UDP receive buffer: large enough for any datagram, so oversize ones can be detected.
const UDP_RECV_BUF: usize = 65535;
/// Bytes read from a TCP socket per read call.
const TCP_READ_CHUNK: usize = 16 * 1024;
/// Messages queued per TCP connection before `send` reports `WouldBlock`.
const TCP_SEND_QUEUE: usize = 1024;
/// Attempts to find a port free for both UDP and TCP when binding port 0.
const BIND_ATTEMPTS: usize = 16;
/// Pause after a non-transient accept/recv error (e.g. EMFILE) to avoid spinning.
const ERROR_BACKOFF: Duration = Duration::from_millis(20);

/// Transport protocol of a SIP hop (the SIP layer's own type).
pub use sip::Transport;

/// One received, framed SIP message (not yet parsed).
#[derive(Debug)]
pub struct Inbound {
    /// Exactly one message: start line, headers, and Content-Length body bytes.
    pub data: Bytes,
    /// Remote address (IPv4-mapped IPv6 addresses are reported as IPv4).
    pub peer: SocketAddr,
    pub transport: Transport,
    /// Local address the message arrived on.
    pub local: SocketAddr,
}

/// Something that happened on one of the sockets.
#[derive(Debug)]
pub enum TransportEvent {
    Message(Inbound),
    /// A TCP connection failed or closed (so the SIP layer can fail its transactions).
    /// `error` is `None` for an orderly close by the peer.
    Closed {
        peer: SocketAddr,
        error: Option<String>,
    },
    /// Framing error or oversized datagram: counted and dropped. For TCP the
    /// connection is closed as well (a `Closed` event follows).
    Refused {
        peer: SocketAddr,
        reason: String,
    },
}

/// Configuration of a [`SipTransport`].
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// UDP and TCP listen on the same address and port. Port 0 picks a free one
    /// (UDP first, then TCP on the port UDP got, retrying if it is taken).
    pub bind: SocketAddr,
    /// Datagrams larger than this are refused.
    pub max_datagram: usize,
    /// Limits for TCP stream framing.
    pub framing: FramingLimits,
    /// Timeout for establishing an outbound TCP connection.
    pub tcp_connect_timeout: Duration,
    /// Capacity of the inbound event channel.
    pub channel_capacity: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5060),
            max_datagram: 8 * 1024,
            framing: FramingLimits::default(),
            tcp_connect_timeout: Duration::from_secs(5),
            channel_capacity: 4096,
        }
    }
}

/// The SIP sockets of one engine.
pub struct SipTransport {
    local: SocketAddr,
    udp: Arc<UdpSocket>,
    shared: Arc<Shared>,
    events: mpsc::Receiver<TransportEvent>,
    /// UDP reader and TCP acceptor, aborted on drop.
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for SipTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipTransport")
            .field("local", &self.local)
            .field("tcp_connections", &self.shared.conns().len())
            .finish_non_exhaustive()
    }
}

impl Drop for SipTransport {
    fn drop(&mut self) {
        // Connection tasks notice the closed event channel and stop by themselves.
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl SipTransport {
    /// Bind the UDP socket and the TCP listener and start the reader tasks.
    pub async fn bind(cfg: TransportConfig) -> io::Result<SipTransport> {
        let (udp, listener) = bind_pair(cfg.bind).await?;
        let local = udp.local_addr()?;
        let (tx, events) = mpsc::channel(cfg.channel_capacity.max(1));
        let shared = Arc::new(Shared {
            events: tx,
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            in_flight: AtomicU64::new(0),
            framing: cfg.framing,
            connect_timeout: cfg.tcp_connect_timeout,
        });
        let udp = Arc::new(udp);
        let tasks = vec![
            tokio::spawn(udp_reader(
                Arc::clone(&udp),
                local,
                cfg.max_datagram,
                Arc::clone(&shared),
            )),
            tokio::spawn(acceptor(listener, Arc::clone(&shared))),
        ];
        debug!(%local, "SIP transport bound (UDP+TCP)");
        Ok(SipTransport {
            local,
            udp,
            shared,
            events,
            tasks,
        })
    }

    /// Local address; UDP and TCP use the same port.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Send one serialised SIP message.
    ///
    /// UDP: `send_to`. TCP: reuse the connection to `dest` (opened by us or
    /// accepted from that peer), else start connecting; messages sent while
    /// connecting are queued on that one connection. TCP sends only enqueue:
    /// a full queue yields `WouldBlock`, and connect failures or connection
    /// loss are reported later as [`TransportEvent::Closed`].
    pub async fn send(
        &self,
        transport: Transport,
        dest: SocketAddr,
        data: Bytes,
    ) -> io::Result<()> {
        match transport {
            Transport::Udp => {
                let dest = udp_dest(self.local, dest)?;
                let n = self.udp.send_to(&data, dest).await?;
                if n == data.len() {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("short UDP send ({n} of {} bytes)", data.len()),
                    ))
                }
            }
            Transport::Tcp => self.send_tcp(canonical(dest), data),
        }
    }

    fn send_tcp(&self, dest: SocketAddr, mut data: Bytes) -> io::Result<()> {
        // A closed queue means the connection just died: forget it and retry once.
        for _ in 0..2 {
            let (id, tx) = self.shared.get_or_connect(dest);
            self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
            let sent = tx.try_send(data);
            if sent.is_err() {
                self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            }
            match sent {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!("TCP send queue to {dest} is full"),
                    ));
                }
                Err(TrySendError::Closed(d)) => {
                    self.shared.remove(dest, id);
                    data = d;
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotConnected,
            format!("TCP connection to {dest} unusable"),
        ))
    }

    /// Wait until every queued TCP message has been written to its socket, or `limit` passed.
    /// Call before exiting so that the last ACK or 200 OK is not lost with the process.
    /// Returns true when everything was written.
    pub async fn flush(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.shared.in_flight.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Next inbound event from any socket. `None` only if all tasks are gone.
    pub async fn recv(&mut self) -> Option<TransportEvent> {
        self.events.recv().await
    }

    /// Local address of the TCP connection used towards `dest`, once connected
    /// (for Via/Contact).
    pub fn tcp_local_addr(&self, dest: SocketAddr) -> Option<SocketAddr> {
        self.shared
            .conns()
            .get(&canonical(dest))
            .and_then(|h| h.local)
    }
}

/// State shared between the transport handle and its tasks.
struct Shared {
    events: mpsc::Sender<TransportEvent>,
    conns: Mutex<HashMap<SocketAddr, ConnHandle>>,
    next_id: AtomicU64,
    /// TCP messages queued or being written (for [`SipTransport::flush`]).
    in_flight: AtomicU64,
    framing: FramingLimits,
    connect_timeout: Duration,
}

/// A TCP connection (possibly still connecting), keyed by remote address.
struct ConnHandle {
    /// Distinguishes successive connections to the same peer.
    id: u64,
    /// Queue of the connection's writer task.
    tx: mpsc::Sender<Bytes>,
    /// Local address, once connected.
    local: Option<SocketAddr>,
}

impl Shared {
    fn conns(&self) -> MutexGuard<'_, HashMap<SocketAddr, ConnHandle>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The queue of the connection to `dest`, starting a connection if there is none.
    fn get_or_connect(self: &Arc<Self>, dest: SocketAddr) -> (u64, mpsc::Sender<Bytes>) {
        let mut conns = self.conns();
        if let Some(h) = conns.get(&dest) {
            return (h.id, h.tx.clone());
        }
        let id = self.new_id();
        let (tx, rx) = mpsc::channel(TCP_SEND_QUEUE);
        conns.insert(
            dest,
            ConnHandle {
                id,
                tx: tx.clone(),
                local: None,
            },
        );
        drop(conns);
        debug!(%dest, id, "opening TCP connection");
        tokio::spawn(outbound_connection(
            Arc::clone(self),
            dest,
            id,
            rx,
            tx.clone(),
        ));
        (id, tx)
    }

    /// Register an accepted connection unless a live one to that peer exists
    /// (then the new one is served but not used for sending).
    fn register_accepted(
        &self,
        peer: SocketAddr,
        local: Option<SocketAddr>,
    ) -> (u64, mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>) {
        let id = self.new_id();
        let (tx, rx) = mpsc::channel(TCP_SEND_QUEUE);
        let mut conns = self.conns();
        if conns.get(&peer).is_none_or(|h| h.tx.is_closed()) {
            conns.insert(
                peer,
                ConnHandle {
                    id,
                    tx: tx.clone(),
                    local,
                },
            );
        }
        (id, tx, rx)
    }

    fn set_local(&self, peer: SocketAddr, id: u64, local: SocketAddr) {
        if let Some(h) = self.conns().get_mut(&peer)
            && h.id == id
        {
            h.local = Some(local);
        }
    }

    /// Forget connection `id` to `peer`; true if it was the registered one.
    fn remove(&self, peer: SocketAddr, id: u64) -> bool {
        let mut conns = self.conns();
        if conns.get(&peer).is_some_and(|h| h.id == id) {
            conns.remove(&peer);
            true
        } else {
            false
        }
    }

    /// Forget connection `id` and report it closed (once, by whoever removes it).
    async fn close(&self, peer: SocketAddr, id: u64, error: Option<String>) {
        debug!(%peer, id, ?error, "TCP connection closed");
        if self.remove(peer, id) {
            let _ = self
                .events
                .send(TransportEvent::Closed { peer, error })
                .await;
        }
    }
}

/// Report IPv4-mapped IPv6 addresses as IPv4 so one peer has one key.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Adapt a UDP destination to the socket's address family.
fn udp_dest(local: SocketAddr, dest: SocketAddr) -> io::Result<SocketAddr> {
    match (local.ip(), dest.ip()) {
        (IpAddr::V6(_), IpAddr::V4(v4)) => Ok(SocketAddr::new(
            IpAddr::V6(v4.to_ipv6_mapped()),
            dest.port(),
        )),
        (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => Ok(SocketAddr::new(IpAddr::V4(v4), dest.port())),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("IPv6 destination {dest} on IPv4 socket {local}"),
            )),
        },
        _ => Ok(dest),
    }
}

async fn bind_pair(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    if addr.port() != 0 {
        let udp = UdpSocket::bind(addr).await?;
        let tcp = TcpListener::bind(addr).await?;
        return Ok((udp, tcp));
    }
    let mut last = None;
    for _ in 0..BIND_ATTEMPTS {
        let udp = UdpSocket::bind(addr).await?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
}

async fn udp_reader(
    sock: Arc<UdpSocket>,
    local: SocketAddr,
    max_datagram: usize,
    shared: Arc<Shared>,
) {
    let mut buf = vec![0u8; UDP_RECV_BUF];
    loop {
        let res = tokio::select! {
            r = sock.recv_from(&mut buf) => r,
            () = shared.events.closed() => return,
        };
        let (n, peer) = match res {
            Ok(v) => v,
            Err(e) => {
                // ICMP errors from earlier sends surface here on some platforms.
                if !matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                ) {
                    warn!(%local, error = %e, "UDP receive failed");
                    tokio::time::sleep(ERROR_BACKOFF).await;
                }
                continue;
            }
        };
        let peer = canonical(peer);
        let event = if n > max_datagram {
            TransportEvent::Refused {
                peer,
                reason: format!("datagram of {n} bytes exceeds limit of {max_datagram}"),
            }
        } else {
            match datagram_message(&buf[..n]) {
                // CRLF keep-alive.
                Ok([]) => continue,
                Ok(msg) => TransportEvent::Message(Inbound {
                    data: Bytes::copy_from_slice(msg),
                    peer,
                    transport: Transport::Udp,
                    local,
                }),
                Err(e) => TransportEvent::Refused {
                    peer,
                    reason: e.to_string(),
                },
            }
        };
        if let TransportEvent::Refused { reason, .. } = &event {
            debug!(%peer, %reason, "UDP datagram refused");
        }
        if shared.events.send(event).await.is_err() {
            return;
        }
    }
}

async fn acceptor(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let res = tokio::select! {
            r = listener.accept() => r,
            () = shared.events.closed() => return,
        };
        match res {
            Ok((stream, peer)) => {
                let peer = canonical(peer);
                let local = stream.local_addr().ok();
                let (id, tx, rx) = shared.register_accepted(peer, local);
                debug!(%peer, id, "accepted TCP connection");
                tokio::spawn(run_connection(
                    Arc::clone(&shared),
                    peer,
                    id,
                    stream,
                    rx,
                    tx,
                ));
            }
            Err(e) => {
                warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
}

async fn outbound_connection(
    shared: Arc<Shared>,
    dest: SocketAddr,
    id: u64,
    mut rx: mpsc::Receiver<Bytes>,
    pong_tx: mpsc::Sender<Bytes>,
) {
    let connect = tokio::time::timeout(shared.connect_timeout, TcpStream::connect(dest));
    let res = tokio::select! {
        r = connect => r,
        () = shared.events.closed() => {
            discard_queue(&shared, &mut rx);
            return;
        }
    };
    let stream = match res {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            shared
                .close(dest, id, Some(format!("connect failed: {e}")))
                .await;
            discard_queue(&shared, &mut rx);
            return;
        }
        Err(_) => {
            shared
                .close(dest, id, Some("connect timed out".to_owned()))
                .await;
            discard_queue(&shared, &mut rx);
            return;
        }
    };
    if let Ok(local) = stream.local_addr() {
        shared.set_local(dest, id, local);
    }
    run_connection(shared, dest, id, stream, rx, pong_tx).await;
}

/// Serve an established connection: reader task plus writer loop (this task).
async fn run_connection(
    shared: Arc<Shared>,
    peer: SocketAddr,
    id: u64,
    stream: TcpStream,
    mut rx: mpsc::Receiver<Bytes>,
    pong_tx: mpsc::Sender<Bytes>,
) {
    // SIP messages are small and latency matters more than segment count.
    let _ = stream.set_nodelay(true);
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(e) => {
            shared.close(peer, id, Some(e.to_string())).await;
            discard_queue(&shared, &mut rx);
            return;
        }
    };
    let (rd, wr) = stream.into_split();
    let reader = tokio::spawn(read_loop(Arc::clone(&shared), peer, id, local, rd, pong_tx));
    // The writer ends when the queue closes (the reader ended and the connection
    // was unregistered), on a write error, or on shutdown; in every case the
    // reader has nothing left to do.
    write_loop(&shared, peer, id, wr, rx).await;
    reader.abort();
}

async fn write_loop(
    shared: &Shared,
    peer: SocketAddr,
    id: u64,
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
) {
    loop {
        let msg = tokio::select! {
            m = rx.recv() => m,
            () = shared.events.closed() => break,
        };
        let Some(msg) = msg else {
            let _ = wr.shutdown().await;
            return;
        };
        let res = tokio::select! {
            r = wr.write_all(&msg) => r,
            () = shared.events.closed() => Err(io::Error::other("transport shut down")),
        };
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Err(e) = res {
            shared
                .close(peer, id, Some(format!("write failed: {e}")))
                .await;
            break;
        }
    }
    discard_queue(shared, &mut rx);
}

/// Forget messages that will never be written (connection lost), keeping the in-flight
/// count exact.
fn discard_queue(shared: &Shared, rx: &mut mpsc::Receiver<Bytes>) {
    rx.close();
    while rx.try_recv().is_ok() {
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn read_loop(
    shared: Arc<Shared>,
    peer: SocketAddr,
    id: u64,
    local: SocketAddr,
    mut rd: OwnedReadHalf,
    pong_tx: mpsc::Sender<Bytes>,
) {
    let mut framer = StreamFramer::new(shared.framing);
    let mut chunk = vec![0u8; TCP_READ_CHUNK];
    let error = loop {
        let res = tokio::select! {
            r = rd.read(&mut chunk) => r,
            () = shared.events.closed() => return,
        };
        match res {
            Ok(0) if framer.buffered() == 0 => break None,
            Ok(0) => {
                break Some(format!(
                    "connection closed mid-message ({} bytes pending)",
                    framer.buffered()
                ));
            }
            Ok(n) => framer.push(&chunk[..n]),
            Err(e) => break Some(e.to_string()),
        }
        loop {
            match framer.next_message() {
                Ok(Some(data)) => {
                    let ev = TransportEvent::Message(Inbound {
                        data,
                        peer,
                        transport: Transport::Tcp,
                        local,
                    });
                    if shared.events.send(ev).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(%peer, error = %e, "TCP framing error");
                    let reason = e.to_string();
                    let _ = shared
                        .events
                        .send(TransportEvent::Refused {
                            peer,
                            reason: reason.clone(),
                        })
                        .await;
                    shared
                        .close(peer, id, Some(format!("framing error: {reason}")))
                        .await;
                    return;
                }
            }
        }
        if framer.take_pong_needed() {
            // RFC 5626 §4.4.1: answer a double-CRLF ping with a single CRLF.
            shared.in_flight.fetch_add(1, Ordering::AcqRel);
            if pong_tx.try_send(Bytes::from_static(b"\r\n")).is_err() {
                shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            }
        }
    };
    shared.close(peer, id, error).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::timeout;

    const WAIT: Duration = Duration::from_secs(5);

    fn cfg() -> TransportConfig {
        TransportConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..TransportConfig::default()
        }
    }

    fn msg(tag: &str, body: &str) -> Bytes {
        Bytes::from(format!(
            "MESSAGE sip:b@x SIP/2.0\r\nCall-ID: {tag}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    async fn event(t: &mut SipTransport) -> TransportEvent {
        timeout(WAIT, t.recv())
            .await
            .expect("timed out waiting for event")
            .expect("channel closed")
    }

    async fn message(t: &mut SipTransport) -> Inbound {
        match event(t).await {
            TransportEvent::Message(m) => m,
            other => panic!("expected message, got {other:?}"),
        }
    }

    fn conn_count(t: &SipTransport) -> usize {
        t.shared.conns().len()
    }

    #[tokio::test]
    async fn udp_round_trip() {
        let mut a = SipTransport::bind(cfg()).await.unwrap();
        let mut b = SipTransport::bind(cfg()).await.unwrap();
        assert_ne!(a.local_addr().port(), 0);
        a.send(Transport::Udp, b.local_addr(), msg("1", "hi"))
            .await
            .unwrap();
        let m = message(&mut b).await;
        assert_eq!(m.data, msg("1", "hi"));
        assert_eq!(m.peer, a.local_addr());
        assert_eq!(m.transport, Transport::Udp);
        assert_eq!(m.local, b.local_addr());
        b.send(Transport::Udp, m.peer, msg("2", "")).await.unwrap();
        let r = message(&mut a).await;
        assert_eq!(r.data, msg("2", ""));
        assert_eq!(r.peer, b.local_addr());
    }

    #[tokio::test]
    async fn udp_truncates_to_content_length_and_refuses_short_body() {
        let mut b = SipTransport::bind(cfg()).await.unwrap();
        let raw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut d = msg("t", "body").to_vec();
        d.extend_from_slice(b"TRAILING GARBAGE");
        raw.send_to(&d, b.local_addr()).await.unwrap();
        let m = message(&mut b).await;
        assert_eq!(m.data, msg("t", "body"));
        assert_eq!(m.peer, raw.local_addr().unwrap());

        // Keep-alive datagrams are silently dropped.
        raw.send_to(b"\r\n\r\n", b.local_addr()).await.unwrap();
        let short = msg("s", "body");
        raw.send_to(&short[..short.len() - 1], b.local_addr())
            .await
            .unwrap();
        match event(&mut b).await {
            TransportEvent::Refused { peer, .. } => assert_eq!(peer, raw.local_addr().unwrap()),
            other => panic!("expected refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn udp_oversized_refused_then_next_arrives() {
        let mut b = SipTransport::bind(TransportConfig {
            max_datagram: 1024,
            ..cfg()
        })
        .await
        .unwrap();
        let raw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let big = msg("big", &"x".repeat(2000));
        raw.send_to(&big, b.local_addr()).await.unwrap();
        raw.send_to(&msg("ok", "fine"), b.local_addr())
            .await
            .unwrap();
        match event(&mut b).await {
            TransportEvent::Refused { peer, reason } => {
                assert_eq!(peer, raw.local_addr().unwrap());
                assert!(reason.contains("exceeds"), "{reason}");
            }
            other => panic!("expected refusal, got {other:?}"),
        }
        assert_eq!(message(&mut b).await.data, msg("ok", "fine"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tcp_one_connection_and_reply_over_it() {
        let mut a = SipTransport::bind(cfg()).await.unwrap();
        let mut b = SipTransport::bind(cfg()).await.unwrap();
        // Three sends back to back: the later ones queue while connecting.
        for i in 0..3 {
            a.send(Transport::Tcp, b.local_addr(), msg(&i.to_string(), "x"))
                .await
                .unwrap();
        }
        let mut peers = Vec::new();
        for i in 0..3 {
            let m = message(&mut b).await;
            assert_eq!(m.data, msg(&i.to_string(), "x"), "ordered");
            assert_eq!(m.transport, Transport::Tcp);
            assert_eq!(m.local, b.local_addr());
            peers.push(m.peer);
        }
        assert!(peers.iter().all(|p| *p == peers[0]), "{peers:?}");
        assert_eq!(conn_count(&b), 1);
        assert_eq!(conn_count(&a), 1);
        assert_eq!(a.tcp_local_addr(b.local_addr()), Some(peers[0]));
        assert_eq!(b.tcp_local_addr(peers[0]), Some(b.local_addr()));

        // B answers over the accepted connection.
        b.send(Transport::Tcp, peers[0], msg("reply", "ok"))
            .await
            .unwrap();
        let r = message(&mut a).await;
        assert_eq!(r.data, msg("reply", "ok"));
        assert_eq!(r.peer, b.local_addr());
        assert_eq!(r.transport, Transport::Tcp);
        assert_eq!(r.local, peers[0]);
        assert_eq!(conn_count(&a), 1);
        assert_eq!(conn_count(&b), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tcp_garbage_is_refused_and_others_continue() {
        let limits = FramingLimits {
            max_header_bytes: 1024,
            max_body_bytes: 4096,
        };
        let mut a = SipTransport::bind(cfg()).await.unwrap();
        let mut b = SipTransport::bind(TransportConfig {
            framing: limits,
            ..cfg()
        })
        .await
        .unwrap();
        a.send(Transport::Tcp, b.local_addr(), msg("before", ""))
            .await
            .unwrap();
        assert_eq!(message(&mut b).await.data, msg("before", ""));

        let mut bad = TcpStream::connect(b.local_addr()).await.unwrap();
        let bad_addr = bad.local_addr().unwrap();
        let garbage: Vec<u8> = (0..4096u32).map(|i| b'a' + (i % 26) as u8).collect();
        bad.write_all(&garbage).await.unwrap();

        let (mut refused, mut closed) = (false, false);
        while !(refused && closed) {
            match event(&mut b).await {
                TransportEvent::Refused { peer, .. } if peer == bad_addr => refused = true,
                TransportEvent::Closed { peer, error } if peer == bad_addr => {
                    assert!(error.is_some());
                    closed = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // The offending connection is closed by B.
        let mut sink = [0u8; 64];
        let n = timeout(WAIT, bad.read(&mut sink))
            .await
            .expect("bad connection not closed");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");

        // Other connections keep working, in both directions.
        a.send(Transport::Tcp, b.local_addr(), msg("after", "y"))
            .await
            .unwrap();
        let m = message(&mut b).await;
        assert_eq!(m.data, msg("after", "y"));
        b.send(Transport::Tcp, m.peer, msg("back", ""))
            .await
            .unwrap();
        assert_eq!(message(&mut a).await.data, msg("back", ""));
    }

    #[tokio::test]
    async fn tcp_missing_content_length_refused() {
        let mut b = SipTransport::bind(cfg()).await.unwrap();
        let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
        raw.write_all(b"OPTIONS sip:x SIP/2.0\r\nCall-ID: 1\r\n\r\n")
            .await
            .unwrap();
        match event(&mut b).await {
            TransportEvent::Refused { reason, .. } => {
                assert!(reason.contains("Content-Length"), "{reason}")
            }
            other => panic!("expected refusal, got {other:?}"),
        }
        assert!(matches!(event(&mut b).await, TransportEvent::Closed { .. }));
        assert_eq!(conn_count(&b), 0);
    }

    #[tokio::test]
    async fn tcp_ping_answered_with_pong() {
        let mut b = SipTransport::bind(cfg()).await.unwrap();
        let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
        raw.write_all(b"\r\n\r\n").await.unwrap();
        let mut pong = [0u8; 2];
        timeout(WAIT, raw.read_exact(&mut pong))
            .await
            .expect("no pong")
            .unwrap();
        assert_eq!(&pong, b"\r\n");
        // A message split over several writes, then a reply on the same socket.
        let m = msg("p", "body");
        raw.write_all(&m[..10]).await.unwrap();
        raw.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        raw.write_all(&m[10..]).await.unwrap();
        let got = message(&mut b).await;
        assert_eq!(got.data, m);
        let reply = msg("r", "");
        b.send(Transport::Tcp, got.peer, reply.clone())
            .await
            .unwrap();
        let mut buf = vec![0u8; reply.len()];
        timeout(WAIT, raw.read_exact(&mut buf))
            .await
            .expect("no reply")
            .unwrap();
        assert_eq!(buf, reply);
    }

    #[tokio::test]
    async fn tcp_peer_close_reported() {
        let mut b = SipTransport::bind(cfg()).await.unwrap();
        let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
        let raw_addr = raw.local_addr().unwrap();
        raw.write_all(&msg("c", "")).await.unwrap();
        assert_eq!(message(&mut b).await.peer, raw_addr);
        drop(raw);
        match event(&mut b).await {
            TransportEvent::Closed { peer, error } => {
                assert_eq!(peer, raw_addr);
                assert_eq!(error, None);
            }
            other => panic!("expected close, got {other:?}"),
        }
        assert_eq!(conn_count(&b), 0);
    }

    #[tokio::test]
    async fn tcp_connect_failure_reported_as_closed() {
        let mut a = SipTransport::bind(cfg()).await.unwrap();
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        a.send(Transport::Tcp, dead, msg("1", "")).await.unwrap();
        a.send(Transport::Tcp, dead, msg("2", "")).await.unwrap();
        match event(&mut a).await {
            TransportEvent::Closed { peer, error } => {
                assert_eq!(peer, dead);
                assert!(error.is_some_and(|e| e.contains("connect")));
            }
            other => panic!("expected close, got {other:?}"),
        }
        assert_eq!(conn_count(&a), 0);
        assert_eq!(a.tcp_local_addr(dead), None);
    }

    #[tokio::test]
    async fn ipv6_udp_round_trip() {
        let v6 = || TransportConfig {
            bind: "[::1]:0".parse().unwrap(),
            ..cfg()
        };
        let (Ok(mut a), Ok(mut b)) = (
            SipTransport::bind(v6()).await,
            SipTransport::bind(v6()).await,
        ) else {
            eprintln!("IPv6 loopback unavailable; skipping");
            return;
        };
        a.send(Transport::Udp, b.local_addr(), msg("v6", "z"))
            .await
            .unwrap();
        let m = message(&mut b).await;
        assert_eq!(m.peer, a.local_addr());
        assert!(m.peer.is_ipv6());
        b.send(Transport::Udp, m.peer, msg("v6r", ""))
            .await
            .unwrap();
        assert_eq!(message(&mut a).await.data, msg("v6r", ""));
    }

    #[tokio::test]
    async fn dual_stack_reports_ipv4_peers() {
        let Ok(mut b) = SipTransport::bind(TransportConfig {
            bind: "[::]:0".parse().unwrap(),
            ..cfg()
        })
        .await
        else {
            eprintln!("IPv6 unavailable; skipping");
            return;
        };
        let raw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let dest = SocketAddr::from(([127, 0, 0, 1], b.local_addr().port()));
        if raw.send_to(&msg("d", ""), dest).await.is_err() {
            return;
        }
        let Ok(Some(TransportEvent::Message(m))) =
            timeout(Duration::from_millis(500), b.recv()).await
        else {
            eprintln!("socket is IPv6-only; skipping");
            return;
        };
        assert_eq!(m.peer, raw.local_addr().unwrap());
        b.send(Transport::Udp, m.peer, msg("d2", "")).await.unwrap();
        let mut buf = [0u8; 256];
        let (n, from) = timeout(WAIT, raw.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], &msg("d2", "")[..]);
        assert_eq!(from.port(), b.local_addr().port());
    }

    #[tokio::test]
    async fn explicit_port_binds_udp_and_tcp() {
        // Re-binding a port just released by a dropped transport works (its tasks
        // are aborted on drop). Another process may grab the port meanwhile: retry.
        let mut bound = None;
        for _ in 0..20 {
            let port = SipTransport::bind(cfg()).await.unwrap().local_addr().port();
            tokio::time::sleep(Duration::from_millis(20)).await;
            match SipTransport::bind(TransportConfig {
                bind: SocketAddr::from(([127, 0, 0, 1], port)),
                ..cfg()
            })
            .await
            {
                Ok(b) => {
                    bound = Some((b, port));
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => panic!("bind failed: {e}"),
            }
        }
        let (b, port) = bound.expect("no free port found");
        assert_eq!(b.local_addr().port(), port);
        TcpStream::connect(b.local_addr()).await.unwrap();
        // A second transport on the same explicit port fails.
        assert!(
            SipTransport::bind(TransportConfig {
                bind: b.local_addr(),
                ..cfg()
            })
            .await
            .is_err()
        );
        assert!(format!("{b:?}").contains("SipTransport"));
    }
}
