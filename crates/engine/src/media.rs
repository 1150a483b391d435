//! The media side of the engine: RTP sockets, one clock for all calls, and a writer thread for
//! recordings.
//!
//! Every 20 ms [`MediaEngine::tick`] walks all calls once: it receives what arrived, runs each
//! call's sans-IO [`CallMedia`] tick and sends its frame. There is no task and no timer per
//! call. Recording blocks go to one writer thread over a channel, so file IO never runs on the
//! media path.
//!
//! Two socket layouts ([`SocketMode`]):
//! - **per call** (the default): an RTP/RTCP port pair per call from a port range, drained with
//!   one `recvmmsg` per call per tick and sent with one `sendto` per packet. Works with any peer.
//! - **shared**: one RTP/RTCP pair for all calls of the engine. One `recvmmsg` reads up to
//!   [`crate::udp::SHARED_BATCH`] packets of different calls and one `sendmmsg` sends
//!   [`crate::udp::SEND_BATCH`], so the system calls per packet drop from about two to a few
//!   hundredths. Packets are told apart by their source address (each call's SDP address) and,
//!   where several calls share a source address (a far end that is itself one socket), by the
//!   SSRC its SDP announced (`a=ssrc`, RFC 5576); every offer and answer of this engine announces
//!   its own SSRC for the same reason. A packet that matches no call is counted
//!   ([`MediaEngineStats::unrouted`]) and dropped. Use it with peers whose RTP comes from the
//!   address their SDP names (PBXs and SBCs on the same network); behind NAT, use per call.
//!
//! With [`MediaConfig::measure_send`] the engine also times every RTP packet it sends: how late
//! after the tick's scheduled instant it left (the clock's own lateness plus its place in the
//! tick's walk over all calls), and how far each stream's packet spacing strays from 20 ms
//! ([`SendTiming`]). The load bench reports both.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

use hdrhistogram::Histogram;
use media::record::{Block, WavSink};
use media::session::{CallMedia, MediaEvent, MediaParams, MediaStats};

use crate::udp::{Headers, RecvBatch, SHARED_BATCH, SendBatch, SendHeaders};

/// The engine's maps are looked up for every packet (by handle, source address and SSRC):
/// foldhash instead of SipHash, seeded per process. Their keys come from our own handles and
/// from the SDP of the trunks we call, not from arbitrary senders (a packet of no call is a
/// failed lookup, never an insert), so a flood cannot grow them.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// The media codec an SDP negotiation chose.
pub fn codec_from_sdp(c: sip::sdp::Codec) -> media::Codec {
    match c {
        sip::sdp::Codec::Pcmu => media::Codec::Pcmu,
        sip::sdp::Codec::Pcma => media::Codec::Pcma,
    }
}

/// Which way media flows, from an SDP direction attribute.
pub fn direction_from_sdp(d: sip::sdp::Direction) -> media::session::Direction {
    media::session::Direction {
        send: d.sends(),
        receive: d.receives(),
    }
}

/// Most media threads of one engine.
pub const MAX_THREADS: usize = 64;

/// RTCP sockets are read once every this many ticks (500 ms): reports come every ~5 s.
const RTCP_POLL_TICKS: u64 = 25;

/// Identifies a call's media inside one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaHandle(pub u64);

/// How calls map onto RTP sockets (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketMode {
    /// An RTP/RTCP port pair per call.
    #[default]
    PerCall,
    /// One RTP/RTCP pair for all calls, batched system calls.
    Shared,
}

impl std::str::FromStr for SocketMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "per-call" | "per_call" => Ok(SocketMode::PerCall),
            "shared" => Ok(SocketMode::Shared),
            other => Err(format!(
                "unknown RTP socket mode {other:?} (expected per-call or shared)"
            )),
        }
    }
}

/// Where RTP sockets are bound.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    pub bind_ip: IpAddr,
    /// Even ports from this range carry RTP (the odd one above is left for RTCP). In shared
    /// mode the first free pair of the range is the engine's.
    pub port_min: u16,
    pub port_max: u16,
    pub sockets: SocketMode,
    /// Receive buffer asked for the shared RTP socket, bytes: it must hold every call's packets
    /// of a late tick (4,000 calls × ~1 KiB of kernel memory per small datagram per 20 ms).
    pub shared_recv_buffer: usize,
    /// Threads the media clock's work is spread over (calls are assigned round robin; each
    /// has its own shared socket pair in shared mode). 1 runs everything on the caller.
    pub threads: usize,
    /// Most datagrams read from one socket per tick (a flood cannot stall the clock).
    pub max_reads_per_tick: usize,
    /// Time every packet sent (one clock read per packet) into [`MediaEngine::send_timing`].
    pub measure_send: bool,
}

impl MediaConfig {
    pub fn new(bind_ip: IpAddr) -> Self {
        MediaConfig {
            bind_ip,
            port_min: 20_000,
            port_max: 39_999,
            max_reads_per_tick: 16,
            measure_send: false,
            sockets: SocketMode::PerCall,
            shared_recv_buffer: 32 << 20,
            threads: 1,
        }
    }

    pub fn with_sockets(mut self, sockets: SocketMode) -> Self {
        self.sockets = sockets;
        self
    }
}

/// Counters of the whole engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaEngineStats {
    pub ticks: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
    /// Sends that failed (socket buffer full, unreachable peer).
    pub send_errors: u64,
    /// `recvmmsg` calls on RTP sockets (packets_received / recv_syscalls is the batching gain).
    pub recv_syscalls: u64,
    /// System calls that sent RTP (`sendto` per packet, or `sendmmsg` per batch).
    pub send_syscalls: u64,
    /// Shared mode: packets that matched no call (unknown source address or SSRC).
    pub unrouted: u64,
}

/// How punctually RTP left, in microseconds (see the module docs).
#[derive(Debug, Clone)]
pub struct SendTiming {
    /// Send instant minus the tick's scheduled instant, per packet.
    pub lateness_us: Histogram<u64>,
    /// |gap between a stream's consecutive packets − 20 ms|, per packet after a stream's first.
    pub gap_error_us: Histogram<u64>,
    /// When each call's last packet left.
    last_send: HashMap<MediaHandle, Instant>,
}

impl SendTiming {
    fn new() -> SendTiming {
        // 1 µs .. 60 s at 3 significant digits: a few tens of KiB, fixed.
        let h = || Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
        SendTiming {
            lateness_us: h(),
            gap_error_us: h(),
            last_send: HashMap::default(),
        }
    }

    /// A packet of call `h` due at `scheduled` left at `sent`.
    fn sent(&mut self, h: MediaHandle, scheduled: Instant, sent: Instant) {
        let late = sent.saturating_duration_since(scheduled);
        let _ = self.lateness_us.record(late.as_micros().max(1) as u64);
        if let Some(prev) = self.last_send.insert(h, sent) {
            let gap = sent.saturating_duration_since(prev).as_micros() as i64;
            let err = (gap - i64::from(media::FRAME_MS) * 1000).unsigned_abs();
            let _ = self.gap_error_us.record(err.max(1));
        }
    }
}

#[derive(Debug)]
struct Slot {
    /// The call's own sockets (per-call mode); `None` in shared mode.
    own: Option<OwnSockets>,
    local: SocketAddr,
    /// Shared mode: our SSRC, fixed at allocation so the offer can announce it.
    ssrc: Option<u32>,
    /// Shared mode: the remote address and announced SSRC this call is routed by.
    route: Option<(SocketAddr, Option<u32>)>,
    media: Option<CallMedia>,
    recording: bool,
}

#[derive(Debug)]
struct OwnSockets {
    /// Non-blocking, not registered with the reactor (see [`crate::udp`]).
    rtp: UdpSocket,
    /// RTCP on the next (odd) port; read every [`RTCP_POLL_TICKS`] ticks.
    rtcp: UdpSocket,
}

/// Shared mode: the engine's one socket pair and how its packets find their call.
#[derive(Debug)]
struct Shared {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    local: SocketAddr,
    /// Calls by the far end's RTP address.
    /// Calls by the far end's RTP address, with the SSRC each announced.
    by_addr: HashMap<SocketAddr, Vec<(MediaHandle, Option<u32>)>>,
    /// Calls by the far end's RTP address and announced SSRC (for addresses shared by calls).
    by_pair: HashMap<(SocketAddr, u32), MediaHandle>,
    /// Our SSRCs in use (each is unique in the engine: the far end may route by it).
    ssrcs: HashSet<u32>,
    recv: RecvBatch<SHARED_BATCH>,
    send: SendBatch,
    /// The calls whose packets are in `send`, in order (for send timing).
    sending: Vec<MediaHandle>,
    /// State of the SSRC generator (splitmix64).
    ssrc_state: u64,
}

impl Shared {
    fn bind(cfg: &MediaConfig) -> io::Result<Shared> {
        let mut port = cfg.port_min.max(2) & !1;
        loop {
            let rtp = UdpSocket::bind(SocketAddr::new(cfg.bind_ip, port));
            let rtcp = UdpSocket::bind(SocketAddr::new(cfg.bind_ip, port.wrapping_add(1)));
            match (rtp, rtcp) {
                (Ok(rtp), Ok(rtcp)) => {
                    rtp.set_nonblocking(true)?;
                    rtcp.set_nonblocking(true)?;
                    crate::udp::grow_recv_buffer(&rtp, cfg.shared_recv_buffer);
                    let local = rtp.local_addr()?;
                    return Ok(Shared {
                        rtp,
                        rtcp,
                        local,
                        by_addr: HashMap::default(),
                        by_pair: HashMap::default(),
                        ssrcs: HashSet::default(),
                        recv: RecvBatch::new(),
                        send: SendBatch::new(),
                        sending: Vec::with_capacity(crate::udp::SEND_BATCH),
                        ssrc_state: u64::from(std::process::id()) << 32
                            ^ u64::from(local.port())
                            ^ std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|d| d.as_nanos() as u64)
                                .unwrap_or(0),
                    });
                }
                (Err(e), _) | (_, Err(e)) if e.kind() != io::ErrorKind::AddrInUse => {
                    return Err(e);
                }
                _ if port.saturating_add(3) > cfg.port_max => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!(
                            "no free RTP port pair in {}..={} on {}",
                            cfg.port_min, cfg.port_max, cfg.bind_ip
                        ),
                    ));
                }
                _ => port += 2,
            }
        }
    }

    /// A fresh SSRC no other call of this engine uses.
    fn new_ssrc(&mut self) -> u32 {
        loop {
            self.ssrc_state = self.ssrc_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.ssrc_state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            let ssrc = (z ^ (z >> 31)) as u32;
            if ssrc != 0 && self.ssrcs.insert(ssrc) {
                return ssrc;
            }
        }
    }

    fn add_route(&mut self, h: MediaHandle, route: (SocketAddr, Option<u32>)) {
        self.by_addr.entry(route.0).or_default().push((h, route.1));
        if let Some(ssrc) = route.1 {
            self.by_pair.insert((route.0, ssrc), h);
        }
    }

    fn remove_route(&mut self, h: MediaHandle, route: (SocketAddr, Option<u32>)) {
        if let Some(v) = self.by_addr.get_mut(&route.0) {
            if let Some(i) = v.iter().position(|x| x.0 == h) {
                v.swap_remove(i);
            }
            if v.is_empty() {
                self.by_addr.remove(&route.0);
            }
        }
        if let Some(ssrc) = route.1
            && self.by_pair.get(&(route.0, ssrc)) == Some(&h)
        {
            self.by_pair.remove(&(route.0, ssrc));
        }
    }

    /// The call a packet from `src` with `ssrc` belongs to: the announced (address, SSRC) pair
    /// when several calls share the address; else the one call at that address, unless it
    /// announced another SSRC (a stray packet of an ended call must not reach the next one).
    /// One lookup for a peer with a port per call, two where calls share an address.
    fn route(&self, src: SocketAddr, ssrc: u32) -> Option<MediaHandle> {
        match self.by_addr.get(&src)?.as_slice() {
            [(h, None)] => Some(*h),
            [(h, Some(announced))] if *announced == ssrc => Some(*h),
            [_] => None,
            _ => self.by_pair.get(&(src, ssrc)).copied(),
        }
    }
}

/// The SSRC of an RTP packet (bytes 8..12), or of an RTCP packet's sender (bytes 4..8).
fn ssrc_at(data: &[u8], at: usize) -> u32 {
    data.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

enum WriterMsg {
    Open(MediaHandle, PathBuf),
    Block(MediaHandle, Block),
    Close(MediaHandle),
}

/// All calls' media, in [`MediaConfig::threads`] shards: each shard has its own calls (and, in
/// shared mode, its own socket pair), and on each tick the shards run in parallel, one on the
/// calling thread and the others on scoped threads, so the clock's work spreads over the
/// cores. Between ticks the engine's owner has every call to itself.
#[derive(Debug)]
pub struct MediaEngine {
    cfg: MediaConfig,
    next_port: u16,
    next_id: u64,
    shards: Vec<Shard>,
    events: VecDeque<(MediaHandle, MediaEvent)>,
    writer: Option<mpsc::Sender<WriterMsg>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    ticks: u64,
    /// RTCP CNAME of every stream of this engine (RFC 7022 style: stable per run).
    cname: String,
}

/// One shard's calls and buffers.
#[derive(Debug)]
struct Shard {
    slots: HashMap<MediaHandle, Slot>,
    /// Shared mode: bound at the shard's first allocation.
    shared: Option<Shared>,
    buf: Box<[u8; 2048]>,
    batch: RecvBatch,
    out: Box<[u8; 2048]>,
    timing: Option<SendTiming>,
    stats: MediaEngineStats,
    /// What the last tick produced, for the engine to collect.
    events: Vec<(MediaHandle, MediaEvent)>,
    blocks: Vec<(MediaHandle, Block)>,
}

impl std::fmt::Debug for WriterMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriterMsg::Open(h, _) => write!(f, "Open({h:?})"),
            WriterMsg::Block(h, b) => write!(f, "Block({h:?}, {} frames)", b.frames()),
            WriterMsg::Close(h) => write!(f, "Close({h:?})"),
        }
    }
}

/// What every shard's tick reads.
#[derive(Clone, Copy)]
struct TickCtx<'a> {
    cfg: &'a MediaConfig,
    cname: &'a str,
    scheduled: Instant,
    now: Instant,
    ntp: u64,
    tick: u64,
}

impl MediaEngine {
    pub fn new(cfg: MediaConfig) -> MediaEngine {
        let cname = format!("dialer-{}@{}", std::process::id(), cfg.bind_ip);
        let shards = (0..cfg.threads.clamp(1, MAX_THREADS))
            .map(|_| Shard {
                slots: HashMap::default(),
                shared: None,
                buf: Box::new([0; 2048]),
                batch: RecvBatch::new(),
                out: Box::new([0; 2048]),
                timing: cfg.measure_send.then(SendTiming::new),
                stats: MediaEngineStats::default(),
                events: Vec::new(),
                blocks: Vec::new(),
            })
            .collect();
        MediaEngine {
            next_port: cfg.port_min & !1,
            cfg,
            next_id: 1,
            shards,
            events: VecDeque::new(),
            writer: None,
            writer_thread: None,
            ticks: 0,
            cname,
        }
    }

    fn shard(&self, h: MediaHandle) -> &Shard {
        &self.shards[(h.0 % self.shards.len() as u64) as usize]
    }

    fn shard_mut(&mut self, h: MediaHandle) -> &mut Shard {
        let n = self.shards.len() as u64;
        &mut self.shards[(h.0 % n) as usize]
    }

    fn slot(&self, h: MediaHandle) -> Option<&Slot> {
        self.shard(h).slots.get(&h)
    }

    pub fn stats(&self) -> MediaEngineStats {
        let mut t = MediaEngineStats {
            ticks: self.ticks,
            ..MediaEngineStats::default()
        };
        for sh in &self.shards {
            let (recv, send) = sh
                .shared
                .as_ref()
                .map(|s| (s.recv.syscalls, s.send.syscalls))
                .unwrap_or((0, 0));
            t.packets_sent += sh.stats.packets_sent;
            t.packets_received += sh.stats.packets_received;
            t.send_errors += sh.stats.send_errors;
            t.recv_syscalls += sh.batch.syscalls + recv;
            t.send_syscalls += sh.stats.send_syscalls + send;
            t.unrouted += sh.stats.unrouted;
        }
        t
    }

    /// Shards, i.e. threads the media clock's work is spread over.
    pub fn threads(&self) -> usize {
        self.shards.len()
    }

    /// The RTCP CNAME this engine announces (with the SSRC in shared mode's SDP).
    pub fn cname(&self) -> &str {
        &self.cname
    }

    /// Shared mode: the SSRC of the call's RTP, to announce in its SDP (`a=ssrc`).
    pub fn local_ssrc(&self, h: MediaHandle) -> Option<u32> {
        self.slot(h).and_then(|s| s.ssrc)
    }

    /// Our local media description for the call's SDP: its RTP address, plus its SSRC and the
    /// engine's CNAME in shared mode.
    pub fn local_media(&self, h: MediaHandle, session_id: u64) -> Option<sip::sdp::LocalMedia> {
        let slot = self.slot(h)?;
        let m = sip::sdp::LocalMedia::new(slot.local.ip(), slot.local.port(), session_id);
        Some(match slot.ssrc {
            Some(ssrc) => m.with_ssrc(ssrc, self.cname.clone()),
            None => m,
        })
    }

    /// Send timing so far, all shards together (with [`MediaConfig::measure_send`]).
    pub fn send_timing(&self) -> Option<SendTiming> {
        let mut all: Option<SendTiming> = None;
        for t in self.shards.iter().filter_map(|sh| sh.timing.as_ref()) {
            match all.as_mut() {
                None => all = Some(t.clone()),
                Some(a) => {
                    let _ = a.lateness_us.add(&t.lateness_us);
                    let _ = a.gap_error_us.add(&t.gap_error_us);
                }
            }
        }
        all
    }

    /// Bind an RTP socket for a new call (before the offer is sent: its address goes in SDP);
    /// in shared mode, give it its shard's shared socket address and an SSRC of its own.
    pub fn allocate(&mut self) -> io::Result<(MediaHandle, SocketAddr)> {
        let h = MediaHandle(self.next_id);
        if self.cfg.sockets == SocketMode::Shared {
            let cfg = self.cfg.clone();
            let shard = self.shard_mut(h);
            if shard.shared.is_none() {
                shard.shared = Some(Shared::bind(&cfg)?);
            }
            let shared = shard.shared.as_mut().expect("bound above");
            let local = shared.local;
            let ssrc = shared.new_ssrc();
            shard.slots.insert(
                h,
                Slot {
                    own: None,
                    local,
                    ssrc: Some(ssrc),
                    route: None,
                    media: None,
                    recording: false,
                },
            );
            self.next_id += 1;
            return Ok((h, local));
        }
        let span = u32::from(self.cfg.port_max.saturating_sub(self.cfg.port_min)) / 2 + 1;
        for _ in 0..span {
            let port = self.next_port;
            self.next_port = if port.saturating_add(2) > self.cfg.port_max {
                self.cfg.port_min & !1
            } else {
                port + 2
            };
            if port < self.cfg.port_min {
                continue;
            }
            let addr = SocketAddr::new(self.cfg.bind_ip, port);
            let std_socket = match UdpSocket::bind(addr) {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            };
            let rtcp_addr = SocketAddr::new(self.cfg.bind_ip, port + 1);
            let std_rtcp = match UdpSocket::bind(rtcp_addr) {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            };
            std_socket.set_nonblocking(true)?;
            std_rtcp.set_nonblocking(true)?;
            let local = std_socket.local_addr()?;
            self.next_id += 1;
            self.shard_mut(h).slots.insert(
                h,
                Slot {
                    own: Some(OwnSockets {
                        rtp: std_socket,
                        rtcp: std_rtcp,
                    }),
                    local,
                    ssrc: None,
                    route: None,
                    media: None,
                    recording: false,
                },
            );
            return Ok((h, local));
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "no free RTP port in {}..={} on {}",
                self.cfg.port_min, self.cfg.port_max, self.cfg.bind_ip
            ),
        ))
    }

    pub fn local_addr(&self, h: MediaHandle) -> Option<SocketAddr> {
        self.slot(h).map(|s| s.local)
    }

    /// The call was answered: start sending and analysing. `record` names the WAV file.
    pub fn start(
        &mut self,
        h: MediaHandle,
        now: Instant,
        params: MediaParams,
        record: Option<PathBuf>,
    ) {
        let recording = record.is_some() && params.record;
        if let Some(path) = record.filter(|_| recording) {
            self.writer_send(WriterMsg::Open(h, path));
        }
        let shard = self.shard_mut(h);
        if let Some(slot) = shard.slots.get_mut(&h) {
            let mut params = params;
            if let Some(ssrc) = slot.ssrc {
                params.ssrc = ssrc;
            }
            if let Some(shared) = shard.shared.as_mut() {
                if let Some(old) = slot.route.take() {
                    shared.remove_route(h, old);
                }
                let route = (params.remote, params.remote_ssrc);
                shared.add_route(h, route);
                slot.route = Some(route);
            }
            slot.media = Some(CallMedia::new(now, params));
            slot.recording = recording;
        }
    }

    /// The call's media, to play prompts, send digits, update after a re-INVITE.
    pub fn media_mut(&mut self, h: MediaHandle) -> Option<&mut CallMedia> {
        self.shard_mut(h)
            .slots
            .get_mut(&h)
            .and_then(|s| s.media.as_mut())
    }

    pub fn media(&self, h: MediaHandle) -> Option<&CallMedia> {
        self.slot(h).and_then(|s| s.media.as_ref())
    }

    /// The call is over: close its socket and recording; its final counters.
    pub fn release(&mut self, h: MediaHandle) -> Option<MediaStats> {
        let shard = self.shard_mut(h);
        let mut slot = shard.slots.remove(&h)?;
        if let Some(t) = shard.timing.as_mut() {
            t.last_send.remove(&h);
        }
        if let Some(shared) = shard.shared.as_mut() {
            if let Some(route) = slot.route.take() {
                shared.remove_route(h, route);
            }
            if let Some(ssrc) = slot.ssrc {
                shared.ssrcs.remove(&ssrc);
            }
        }
        let stats = slot.media.as_ref().map(CallMedia::stats);
        if slot.recording {
            if let Some(m) = slot.media.as_mut() {
                while let Some(b) = m.take_record_block() {
                    self.writer_send(WriterMsg::Block(h, b));
                }
                while let Some(b) = m.finish_recording() {
                    self.writer_send(WriterMsg::Block(h, b));
                }
            }
            self.writer_send(WriterMsg::Close(h));
        }
        stats
    }

    /// The media clock: receive, analyse and send for every call.
    pub fn tick(&mut self, now: Instant) {
        self.tick_scheduled(now, now);
    }

    /// [`MediaEngine::tick`] for the tick that was due at `scheduled` (the clock's deadline;
    /// `now` may be later): send timing is measured against `scheduled`.
    pub fn tick_scheduled(&mut self, scheduled: Instant, now: Instant) {
        self.ticks += 1;
        // One wall-clock read per tick for every call's RTCP.
        let ntp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(media::rtcp::ntp_from_unix)
            .unwrap_or(0);
        let ctx = TickCtx {
            cfg: &self.cfg,
            cname: &self.cname,
            scheduled,
            now,
            ntp,
            tick: self.ticks,
        };
        match self.shards.split_first_mut() {
            Some((first, [])) => first.tick(ctx),
            Some((first, rest)) => std::thread::scope(|s| {
                for shard in rest.iter_mut().filter(|sh| !sh.slots.is_empty()) {
                    s.spawn(move || shard.tick(ctx));
                }
                first.tick(ctx);
            }),
            None => {}
        }
        let mut blocks = Vec::new();
        for shard in &mut self.shards {
            self.events.extend(shard.events.drain(..));
            blocks.append(&mut shard.blocks);
        }
        for (h, b) in blocks {
            self.writer_send(WriterMsg::Block(h, b));
        }
    }

    pub fn poll_event(&mut self) -> Option<(MediaHandle, MediaEvent)> {
        self.events.pop_front()
    }

    /// Calls with a socket.
    pub fn calls(&self) -> usize {
        self.shards.iter().map(|sh| sh.slots.len()).sum()
    }

    /// Wait for the recording writer to finish everything queued (at exit).
    pub fn shutdown(&mut self) {
        self.writer = None;
        if let Some(t) = self.writer_thread.take() {
            let _ = t.join();
        }
    }

    fn writer_send(&mut self, msg: WriterMsg) {
        if self.writer.is_none() {
            let (tx, rx) = mpsc::channel::<WriterMsg>();
            let spawned = std::thread::Builder::new()
                .name("recordings".into())
                .spawn(move || write_recordings(rx));
            match spawned {
                Ok(t) => {
                    self.writer = Some(tx);
                    self.writer_thread = Some(t);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the recording writer");
                    return;
                }
            }
        }
        if let Some(w) = &self.writer {
            let _ = w.send(msg);
        }
    }
}

impl Shard {
    fn tick(&mut self, ctx: TickCtx<'_>) {
        if self.shared.is_some() {
            self.tick_shared(ctx);
        } else {
            self.tick_per_call(ctx);
        }
    }

    fn tick_per_call(&mut self, ctx: TickCtx<'_>) {
        let TickCtx {
            cfg,
            cname,
            scheduled,
            now,
            ntp,
            tick,
        } = ctx;
        let rounds = cfg.max_reads_per_tick.div_ceil(crate::udp::BATCH).max(1);
        let mut headers: Headers = Headers::new();
        for (&h, slot) in &mut self.slots {
            let Some(own) = slot.own.as_ref() else {
                continue;
            };
            // Everything waiting, in as few system calls as batches: stop after a short read
            // (the socket is most likely empty; the next tick finds out).
            for _ in 0..rounds {
                let Ok(n) = self.batch.recv(&mut headers, &own.rtp) else {
                    break;
                };
                if let Some(media) = slot.media.as_mut() {
                    for (data, src) in self.batch.datagrams() {
                        self.stats.packets_received += 1;
                        media.receive(now, src, data);
                    }
                }
                // Not answered yet: early packets are read and dropped so the buffer does
                // not fill.
                if n < crate::udp::BATCH {
                    break;
                }
            }
            let Some(media) = slot.media.as_mut() else {
                continue;
            };
            if let Some(n) = media.tick(now, &mut self.out[..]) {
                self.stats.send_syscalls += 1;
                match own.rtp.send_to(&self.out[..n], media.remote()) {
                    Ok(_) => {
                        self.stats.packets_sent += 1;
                        if let Some(t) = self.timing.as_mut() {
                            t.sent(h, scheduled, Instant::now());
                        }
                    }
                    Err(_) => self.stats.send_errors += 1,
                }
            }
            // RTCP comes every few seconds: each call's RTCP socket is read on one tick in
            // RTCP_POLL_TICKS (spread over calls by port), not on every tick.
            if (tick + u64::from(slot.local.port() / 2)).is_multiple_of(RTCP_POLL_TICKS) {
                for _ in 0..cfg.max_reads_per_tick {
                    match own.rtcp.recv_from(&mut self.buf[..]) {
                        Ok((n, _)) => media.receive_rtcp(now, ntp, &self.buf[..n]),
                        Err(_) => break,
                    }
                }
            }
            if let Some(n) = media.poll_rtcp(now, ntp, cname, &mut self.out[..]) {
                let _ = own.rtcp.send_to(&self.out[..n], media.rtcp_remote());
            }
            collect(h, media, slot.recording, &mut self.events, &mut self.blocks);
        }
    }

    fn tick_shared(&mut self, ctx: TickCtx<'_>) {
        let TickCtx {
            cfg,
            cname,
            scheduled,
            now,
            ntp,
            ..
        } = ctx;
        let Some(shared) = self.shared.as_mut() else {
            return;
        };
        let slots = &mut self.slots;
        // 1. Everything that arrived, a batch per system call, each packet to its call.
        // Bounded: a flood cannot hold the clock beyond max_reads_per_tick packets per call.
        let most = (slots.len().max(1) * cfg.max_reads_per_tick).div_ceil(SHARED_BATCH);
        let mut headers: Headers<SHARED_BATCH> = Headers::new();
        for _ in 0..most {
            let Ok(n) = shared.recv.recv(&mut headers, &shared.rtp) else {
                break;
            };
            for (data, src) in shared.recv.datagrams() {
                let routed = shared
                    .route(src, ssrc_at(data, 8))
                    .and_then(|h| slots.get_mut(&h))
                    .and_then(|slot| slot.media.as_mut());
                match routed {
                    Some(media) => {
                        self.stats.packets_received += 1;
                        media.receive(now, src, data);
                    }
                    None => self.stats.unrouted += 1,
                }
            }
            if n < SHARED_BATCH {
                break;
            }
        }
        // RTCP: one read per tick finds the socket empty most of the time.
        for _ in 0..cfg.max_reads_per_tick {
            let Ok((n, src)) = shared.rtcp.recv_from(&mut self.buf[..]) else {
                break;
            };
            let rtp_src = SocketAddr::new(src.ip(), src.port().wrapping_sub(1));
            let data = &self.buf[..n];
            if let Some(media) = shared
                .route(rtp_src, ssrc_at(data, 4))
                .and_then(|h| slots.get_mut(&h))
                .and_then(|slot| slot.media.as_mut())
            {
                media.receive_rtcp(now, ntp, data);
            }
        }
        // 2. Every call's frame into the send batch, sent SEND_BATCH at a time.
        let mut send_headers = SendHeaders::new();
        for (&h, slot) in slots.iter_mut() {
            let Some(media) = slot.media.as_mut() else {
                continue;
            };
            // A re-INVITE moved the far end: route by its new address.
            let remote = media.remote();
            if let Some(route) = slot.route
                && route.0 != remote
            {
                shared.remove_route(h, route);
                let new = (remote, route.1);
                shared.add_route(h, new);
                slot.route = Some(new);
            }
            if let Some(n) = media.tick(now, shared.send.next_buf()) {
                shared.send.push(n, remote);
                shared.sending.push(h);
                if shared.send.is_full() {
                    flush(
                        shared,
                        &mut send_headers,
                        &mut self.stats,
                        &mut self.timing,
                        scheduled,
                    );
                }
            }
            if let Some(n) = media.poll_rtcp(now, ntp, cname, &mut self.out[..]) {
                let _ = shared.rtcp.send_to(&self.out[..n], media.rtcp_remote());
            }
            collect(h, media, slot.recording, &mut self.events, &mut self.blocks);
        }
        flush(
            shared,
            &mut send_headers,
            &mut self.stats,
            &mut self.timing,
            scheduled,
        );
    }
}

impl Drop for MediaEngine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// After a call's tick: its events to the engine's queue, its recording blocks to `blocks`.
fn collect(
    h: MediaHandle,
    media: &mut CallMedia,
    recording: bool,
    events: &mut Vec<(MediaHandle, MediaEvent)>,
    blocks: &mut Vec<(MediaHandle, Block)>,
) {
    while let Some(ev) = media.poll_event() {
        events.push((h, ev));
    }
    if recording {
        while let Some(b) = media.take_record_block() {
            blocks.push((h, b));
        }
    }
}

/// Send the shared socket's batch; time it when measuring.
fn flush(
    shared: &mut Shared,
    headers: &mut SendHeaders,
    stats: &mut MediaEngineStats,
    timing: &mut Option<SendTiming>,
    scheduled: Instant,
) {
    if shared.send.is_empty() {
        return;
    }
    let f = shared.send.flush(headers, &shared.rtp);
    stats.packets_sent += f.sent as u64;
    stats.send_errors += f.failed as u64;
    if let Some(t) = timing.as_mut() {
        let sent = Instant::now();
        for &h in &shared.sending {
            t.sent(h, scheduled, sent);
        }
    }
    shared.sending.clear();
}

/// The writer thread: one `WavSink` per open recording.
fn write_recordings(rx: mpsc::Receiver<WriterMsg>) {
    let mut sinks: HashMap<MediaHandle, WavSink> = HashMap::default();
    while let Ok(msg) = rx.recv() {
        match msg {
            WriterMsg::Open(h, path) => match WavSink::create_or_replace(&path) {
                Ok(s) => {
                    sinks.insert(h, s);
                }
                Err(e) => tracing::warn!(error = %e, "cannot create the recording"),
            },
            WriterMsg::Block(h, b) => {
                if let Some(s) = sinks.get_mut(&h)
                    && let Err(e) = s.write_block(&b)
                {
                    tracing::warn!(error = %e, "recording write failed");
                    sinks.remove(&h);
                }
            }
            WriterMsg::Close(h) => {
                if let Some(s) = sinks.remove(&h)
                    && let Err(e) = s.finalize()
                {
                    tracing::warn!(error = %e, "recording not closed cleanly");
                }
            }
        }
    }
    // Channel closed: finalize whatever is left (Drop of WavSink finalizes too).
    for (_, s) in sinks {
        let _ = s.finalize();
    }
}
