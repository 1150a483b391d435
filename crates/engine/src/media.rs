//! The media side of the engine: one RTP socket per call from a port range, one clock for all
//! calls, and a writer thread for recordings.
//!
//! Every 20 ms [`MediaEngine::tick`] walks all calls once: it drains each call's socket with
//! one `recvmmsg` (see [`crate::udp`]; sockets the reactor has not marked readable cost no
//! system call), runs the call's sans-IO [`CallMedia`] tick and sends its frame. There is no
//! task and no timer per call. Recording blocks go to one writer thread over a channel, so file
//! IO never runs on the media path.
//!
//! With [`MediaConfig::measure_send`] the engine also times every RTP packet it sends: how late
//! after the tick's scheduled instant it left (the clock's own lateness plus its place in the
//! tick's walk over all calls), and how far each stream's packet spacing strays from 20 ms
//! ([`SendTiming`]). The load bench reports both.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

use hdrhistogram::Histogram;
use media::record::{Block, WavSink};
use media::session::{CallMedia, MediaEvent, MediaParams, MediaStats};

use crate::udp::{Headers, RecvBatch};

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

/// RTCP sockets are read once every this many ticks (500 ms): reports come every ~5 s.
const RTCP_POLL_TICKS: u64 = 25;

/// Identifies a call's media inside one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaHandle(pub u64);

/// Where RTP sockets are bound.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    pub bind_ip: IpAddr,
    /// Even ports from this range carry RTP (the odd one above is left for RTCP).
    pub port_min: u16,
    pub port_max: u16,
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
        }
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
}

/// How punctually RTP left, in microseconds (see the module docs).
#[derive(Debug, Clone)]
pub struct SendTiming {
    /// Send instant minus the tick's scheduled instant, per packet.
    pub lateness_us: Histogram<u64>,
    /// |gap between a stream's consecutive packets − 20 ms|, per packet after a stream's first.
    pub gap_error_us: Histogram<u64>,
}

impl SendTiming {
    fn new() -> SendTiming {
        // 1 µs .. 60 s at 3 significant digits: a few tens of KiB, fixed.
        let h = || Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
        SendTiming {
            lateness_us: h(),
            gap_error_us: h(),
        }
    }
}

#[derive(Debug)]
struct Slot {
    /// Non-blocking, not registered with the reactor (see [`crate::udp`]).
    socket: std::net::UdpSocket,
    /// RTCP on the next (odd) port; read every [`RTCP_POLL_TICKS`] ticks.
    rtcp: std::net::UdpSocket,
    local: SocketAddr,
    media: Option<CallMedia>,
    recording: bool,
    /// When the last RTP packet left (only with `measure_send`).
    last_send: Option<Instant>,
}

enum WriterMsg {
    Open(MediaHandle, PathBuf),
    Block(MediaHandle, Block),
    Close(MediaHandle),
}

/// All calls' media.
#[derive(Debug)]
pub struct MediaEngine {
    cfg: MediaConfig,
    next_port: u16,
    next_id: u64,
    slots: HashMap<MediaHandle, Slot>,
    events: VecDeque<(MediaHandle, MediaEvent)>,
    buf: Box<[u8; 2048]>,
    batch: RecvBatch,
    out: Box<[u8; 2048]>,
    timing: Option<SendTiming>,
    writer: Option<mpsc::Sender<WriterMsg>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    stats: MediaEngineStats,
    /// RTCP CNAME of every stream of this engine (RFC 7022 style: stable per run).
    cname: String,
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

impl MediaEngine {
    pub fn new(cfg: MediaConfig) -> MediaEngine {
        let cname = format!("dialer-{}@{}", std::process::id(), cfg.bind_ip);
        MediaEngine {
            next_port: cfg.port_min & !1,
            timing: cfg.measure_send.then(SendTiming::new),
            cfg,
            next_id: 1,
            slots: HashMap::new(),
            events: VecDeque::new(),
            buf: Box::new([0; 2048]),
            batch: RecvBatch::new(),
            out: Box::new([0; 2048]),
            writer: None,
            writer_thread: None,
            stats: MediaEngineStats::default(),
            cname,
        }
    }

    pub fn stats(&self) -> MediaEngineStats {
        MediaEngineStats {
            recv_syscalls: self.batch.syscalls,
            ..self.stats
        }
    }

    /// Send timing so far (with [`MediaConfig::measure_send`]).
    pub fn send_timing(&self) -> Option<&SendTiming> {
        self.timing.as_ref()
    }

    /// Bind an RTP socket for a new call (before the offer is sent: its address goes in SDP).
    pub fn allocate(&mut self) -> io::Result<(MediaHandle, SocketAddr)> {
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
            let std_socket = match std::net::UdpSocket::bind(addr) {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            };
            let rtcp_addr = SocketAddr::new(self.cfg.bind_ip, port + 1);
            let std_rtcp = match std::net::UdpSocket::bind(rtcp_addr) {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            };
            std_socket.set_nonblocking(true)?;
            std_rtcp.set_nonblocking(true)?;
            let (socket, rtcp) = (std_socket, std_rtcp);
            let local = socket.local_addr()?;
            let h = MediaHandle(self.next_id);
            self.next_id += 1;
            self.slots.insert(
                h,
                Slot {
                    socket,
                    rtcp,
                    local,
                    media: None,
                    recording: false,
                    last_send: None,
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
        self.slots.get(&h).map(|s| s.local)
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
        if let Some(slot) = self.slots.get_mut(&h) {
            slot.media = Some(CallMedia::new(now, params));
            slot.recording = recording;
        }
    }

    /// The call's media, to play prompts, send digits, update after a re-INVITE.
    pub fn media_mut(&mut self, h: MediaHandle) -> Option<&mut CallMedia> {
        self.slots.get_mut(&h).and_then(|s| s.media.as_mut())
    }

    pub fn media(&self, h: MediaHandle) -> Option<&CallMedia> {
        self.slots.get(&h).and_then(|s| s.media.as_ref())
    }

    /// The call is over: close its socket and recording; its final counters.
    pub fn release(&mut self, h: MediaHandle) -> Option<MediaStats> {
        let mut slot = self.slots.remove(&h)?;
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
        self.stats.ticks += 1;
        // One wall-clock read per tick for every call's RTCP.
        let ntp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(media::rtcp::ntp_from_unix)
            .unwrap_or(0);
        let rounds = self
            .cfg
            .max_reads_per_tick
            .div_ceil(crate::udp::BATCH)
            .max(1);
        let mut headers = Headers::new();
        let mut blocks: Vec<(MediaHandle, Block)> = Vec::new();
        let tick = self.stats.ticks;
        for (&h, slot) in &mut self.slots {
            // Everything waiting, in as few system calls as batches: stop after a short read
            // (the socket is most likely empty; the next tick finds out).
            for _ in 0..rounds {
                let Ok(n) = self.batch.recv(&mut headers, &slot.socket) else {
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
                match slot.socket.send_to(&self.out[..n], media.remote()) {
                    Ok(_) => {
                        self.stats.packets_sent += 1;
                        if let Some(t) = self.timing.as_mut() {
                            let sent = Instant::now();
                            let late = sent.saturating_duration_since(scheduled);
                            let _ = t.lateness_us.record(late.as_micros().max(1) as u64);
                            if let Some(prev) = slot.last_send {
                                let gap = sent.saturating_duration_since(prev).as_micros() as i64;
                                let err = (gap - i64::from(media::FRAME_MS) * 1000).unsigned_abs();
                                let _ = t.gap_error_us.record(err.max(1));
                            }
                            slot.last_send = Some(sent);
                        }
                    }
                    Err(_) => self.stats.send_errors += 1,
                }
            }
            // RTCP comes every few seconds: each call's RTCP socket is read on one tick in
            // RTCP_POLL_TICKS (spread over calls by port), not on every tick.
            if (tick + u64::from(slot.local.port() / 2)).is_multiple_of(RTCP_POLL_TICKS) {
                for _ in 0..self.cfg.max_reads_per_tick {
                    match slot.rtcp.recv_from(&mut self.buf[..]) {
                        Ok((n, _)) => media.receive_rtcp(now, ntp, &self.buf[..n]),
                        Err(_) => break,
                    }
                }
            }
            if let Some(n) = media.poll_rtcp(now, ntp, &self.cname, &mut self.out[..]) {
                let _ = slot.rtcp.send_to(&self.out[..n], media.rtcp_remote());
            }
            while let Some(ev) = media.poll_event() {
                self.events.push_back((h, ev));
            }
            if slot.recording {
                while let Some(b) = media.take_record_block() {
                    blocks.push((h, b));
                }
            }
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
        self.slots.len()
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

impl Drop for MediaEngine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The writer thread: one `WavSink` per open recording.
fn write_recordings(rx: mpsc::Receiver<WriterMsg>) {
    let mut sinks: HashMap<MediaHandle, WavSink> = HashMap::new();
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
