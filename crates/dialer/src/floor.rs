//! The raw UDP floor (`dialer bench --floor`): what the kernel alone costs for the RTP packets
//! of N live G.711 calls on loopback, with no SIP, no media engine and no analysis, so the
//! bench can print our CPU against it.
//!
//! N socket pairs on 127.0.0.1 (the bench's live calls, at most [`MAX_CALLS`]). One sender
//! thread sends every "call" a 172-byte packet (12-byte RTP header + 160 bytes of G.711)
//! every 20 ms, on absolute deadlines; one receiver thread, 10 ms out of phase, drains every
//! receiving socket once per 20 ms with `recvmmsg` (the media clock's own code,
//! [`engine::udp::RecvBatch`]: one system call per socket per tick at steady state). Each
//! thread reads its own CPU time (`/proc/thread-self/stat`, user + system) before and after.
//!
//! Two sending modes, each for a fixed duration:
//! - [`SendMode::SendTo`]: one socket per call and one `sendto` per packet, as the engine
//!   sends today;
//! - [`SendMode::Sendmmsg`]: one socket for all calls, `sendmmsg` batches of [`SEND_BATCH`]
//!   packets to different peers, each received on its own socket;
//! - [`SendMode::Shared`]: one socket each side, `sendmmsg` batches of [`SEND_BATCH`] and
//!   `recvmmsg` batches of [`engine::udp::SHARED_BATCH`]: the shape of the media engine's
//!   shared sockets (`--rtp-sockets shared`), so the floor for that mode.
//!
//! On loopback the sender's system time includes delivery into the receiving socket (the
//! kernel runs it in the sender's context), as it does for the dialer. A call-minute is
//! 3,000 packets each way, so the floor per live call-minute is 3,000 × (send + receive CPU
//! per packet). Every loop is bounded in count (ticks, packets per socket per tick) and in
//! time (a tick behind schedule is sent at once; a run stops at 3× its duration).

use std::io::{self, IoSlice};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use engine::udp::{BATCH as RECV_BATCH, Headers, RecvBatch, SHARED_BATCH};
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrIn, sendmmsg};

/// Calls (socket pairs) at most: 2 file descriptors each.
pub(crate) const MAX_CALLS: usize = 2_000;
/// Packets per `sendmmsg` call.
pub(crate) const SEND_BATCH: usize = 32;
/// RTP header + 20 ms of G.711 at 8 kHz.
pub(crate) const PACKET: usize = 12 + 160;
/// One packet per call per tick.
const TICK: Duration = Duration::from_millis(20);
/// Packets one call sends (and receives) per minute.
const PACKETS_PER_CALL_MINUTE: f64 = 3_000.0;

/// How the sender thread hands packets to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendMode {
    /// One socket per call, one `sendto` per packet.
    SendTo,
    /// One socket, `sendmmsg` batches of [`SEND_BATCH`] to different peers.
    Sendmmsg,
    /// One socket each side: `sendmmsg` to one peer, `recvmmsg` of [`SHARED_BATCH`].
    Shared,
}

impl SendMode {
    pub fn name(self) -> &'static str {
        match self {
            SendMode::SendTo => "send_to",
            SendMode::Sendmmsg => "sendmmsg",
            SendMode::Shared => "shared",
        }
    }
}

/// CPU time of the calling thread, seconds.
#[derive(Debug, Clone, Copy, Default)]
struct ThreadCpu {
    /// User and system time (`/proc/thread-self/stat`, clock ticks: 10 ms steps).
    user_s: f64,
    system_s: f64,
    /// Time on a CPU, nanosecond resolution (`/proc/thread-self/schedstat`), when readable.
    on_cpu_s: Option<f64>,
}

impl ThreadCpu {
    fn read() -> Option<ThreadCpu> {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
        let rest = stat.get(stat.rfind(')')? + 2..)?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let tck = clock_ticks();
        let on_cpu_s = std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .map(|ns| ns as f64 / 1e9);
        Some(ThreadCpu {
            user_s: f.get(11)?.parse::<f64>().ok()? / tck,
            system_s: f.get(12)?.parse::<f64>().ok()? / tck,
            on_cpu_s,
        })
    }

    fn read_or_err() -> anyhow::Result<ThreadCpu> {
        ThreadCpu::read().context("cannot read /proc/thread-self/stat")
    }

    /// Fill `side`'s CPU with what was used since `self`.
    fn since(self, side: &mut Side) -> anyhow::Result<()> {
        let now = ThreadCpu::read_or_err()?;
        side.user_s = (now.user_s - self.user_s).max(0.0);
        side.system_s = (now.system_s - self.system_s).max(0.0);
        side.on_cpu_s = match (self.on_cpu_s, now.on_cpu_s) {
            (Some(a), Some(b)) => Some((b - a).max(0.0)),
            _ => None,
        };
        Ok(())
    }
}

fn clock_ticks() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(n)) if n > 0 => n as f64,
        _ => 100.0,
    }
}

/// One thread's work over a run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Side {
    pub packets: u64,
    pub syscalls: u64,
    pub user_s: f64,
    pub system_s: f64,
    /// Time on a CPU at nanosecond resolution (user + system), when the kernel reports it.
    pub on_cpu_s: Option<f64>,
    pub wall: Duration,
}

impl Side {
    /// CPU seconds: the nanosecond figure when there is one, else user + system.
    pub fn cpu_s(&self) -> f64 {
        self.on_cpu_s.unwrap_or(self.user_s + self.system_s)
    }
    /// Packets per wall second.
    pub fn rate(&self) -> f64 {
        self.packets as f64 / self.wall.as_secs_f64().max(1e-9)
    }
    /// CPU milliseconds per 1,000 packets (= µs per packet).
    pub fn cpu_ms_per_1000(&self) -> f64 {
        self.cpu_s() * 1e6 / self.packets.max(1) as f64
    }
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "packets": self.packets,
            "packets_per_s": round3(self.rate()),
            "syscalls": self.syscalls,
            "cpu_s": round6(self.cpu_s()),
            "user_s": round3(self.user_s),
            "system_s": round3(self.system_s),
            "cpu_ms_per_1000_packets": round6(self.cpu_ms_per_1000()),
        })
    }
}

/// One sending mode's run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ModeRun {
    pub mode: SendMode,
    pub send: Side,
    pub recv: Side,
}

impl ModeRun {
    /// CPU milliseconds of one live call-minute on the floor: 3,000 packets sent and 3,000
    /// received.
    pub fn cpu_ms_per_live_call_minute(&self) -> f64 {
        PACKETS_PER_CALL_MINUTE * (self.send.cpu_ms_per_1000() + self.recv.cpu_ms_per_1000())
            / 1000.0
    }
    pub fn lost(&self) -> u64 {
        self.send.packets.saturating_sub(self.recv.packets)
    }
}

/// The floor microbench's report.
#[derive(Debug, Clone)]
pub(crate) struct FloorReport {
    pub calls: usize,
    pub secs: f64,
    pub modes: Vec<ModeRun>,
}

impl FloorReport {
    #[cfg(test)]
    pub fn mode(&self, m: SendMode) -> Option<&ModeRun> {
        self.modes.iter().find(|r| r.mode == m)
    }

    /// `dialer_ms` (the dialer's CPU per live call-minute) over each mode's floor; modes whose
    /// CPU was too small to measure are left out.
    pub fn ratios(&self, dialer_ms: f64) -> Vec<(SendMode, f64)> {
        self.modes
            .iter()
            .filter(|r| r.cpu_ms_per_live_call_minute() > 0.0)
            .map(|r| (r.mode, dialer_ms / r.cpu_ms_per_live_call_minute()))
            .collect()
    }

    pub fn json(&self, dialer_ms_per_live_call_minute: Option<f64>) -> serde_json::Value {
        let modes: serde_json::Map<String, serde_json::Value> = self
            .modes
            .iter()
            .map(|r| {
                (
                    r.mode.name().to_owned(),
                    serde_json::json!({
                        "send": r.send.json(),
                        "recv": r.recv.json(),
                        "lost": r.lost(),
                        "cpu_ms_per_live_call_minute": round6(r.cpu_ms_per_live_call_minute()),
                    }),
                )
            })
            .collect();
        let ratios: serde_json::Map<String, serde_json::Value> = dialer_ms_per_live_call_minute
            .map(|d| {
                self.ratios(d)
                    .into_iter()
                    .map(|(m, r)| (m.name().to_owned(), serde_json::Value::from(round3(r))))
                    .collect()
            })
            .unwrap_or_default();
        serde_json::json!({
            "calls": self.calls,
            "secs_per_mode": self.secs,
            "packet_bytes": PACKET,
            "send_batch": SEND_BATCH,
            "recv_batch": RECV_BATCH,
            "shared_recv_batch": SHARED_BATCH,
            "modes": modes,
            "dialer_over_floor": ratios,
        })
    }

    /// Table lines (two-space indent, 16-column label, as the bench's).
    pub fn table(&self, dialer_ms_per_live_call_minute: Option<f64>) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "  floor           raw UDP on loopback, {} calls × 50 packets/s of {PACKET} bytes each way, {:.0} s per mode, receive by recvmmsg every 20 ms (per socket; shared: one socket)",
            self.calls, self.secs
        );
        for r in &self.modes {
            let _ = writeln!(
                s,
                "    {:<13} sent {:.0}/s ({:.3} ms CPU per 1000, {} syscalls), received {:.0}/s ({:.3} ms per 1000, {} syscalls), lost {}; {:.3} ms per live-call-minute",
                r.mode.name(),
                r.send.rate(),
                r.send.cpu_ms_per_1000(),
                r.send.syscalls,
                r.recv.rate(),
                r.recv.cpu_ms_per_1000(),
                r.recv.syscalls,
                r.lost(),
                r.cpu_ms_per_live_call_minute()
            );
        }
        if let Some(d) = dialer_ms_per_live_call_minute {
            let ratios: Vec<String> = self
                .ratios(d)
                .into_iter()
                .map(|(m, r)| format!("{r:.2}× the {} floor", m.name()))
                .collect();
            let _ = writeln!(
                s,
                "  dialer / floor  {d:.2} ms per live-call-minute = {}",
                ratios.join(", ")
            );
        }
        s
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// Run both modes, `secs` each, with `calls` socket pairs (capped to [`MAX_CALLS`], at least 1).
pub(crate) fn run(calls: usize, secs: Duration) -> anyhow::Result<FloorReport> {
    let calls = calls.clamp(1, MAX_CALLS);
    let mut modes = Vec::new();
    for mode in [SendMode::SendTo, SendMode::Sendmmsg, SendMode::Shared] {
        modes.push(run_mode(mode, calls, secs).with_context(|| format!("floor, {}", mode.name()))?);
    }
    Ok(FloorReport {
        calls,
        secs: secs.as_secs_f64(),
        modes,
    })
}

fn loopback_socket() -> io::Result<UdpSocket> {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
}

fn v4(s: &UdpSocket) -> io::Result<SocketAddrV4> {
    match s.local_addr()? {
        std::net::SocketAddr::V4(a) => Ok(a),
        std::net::SocketAddr::V6(_) => Err(io::Error::other("expected an IPv4 socket")),
    }
}

/// One mode: sockets, the two threads, their counts.
pub(crate) fn run_mode(mode: SendMode, calls: usize, secs: Duration) -> anyhow::Result<ModeRun> {
    let mut receivers = Vec::with_capacity(calls);
    let receiving_sockets = if mode == SendMode::Shared { 1 } else { calls };
    for _ in 0..receiving_sockets {
        let s = loopback_socket().context("cannot bind a receiving socket")?;
        s.set_nonblocking(true)?;
        if mode == SendMode::Shared {
            // Every call's packet of a tick waits in this one socket (as in the engine).
            engine::udp::grow_recv_buffer(&s, 32 << 20);
        }
        receivers.push(s);
    }
    let mut peers: Vec<SocketAddrV4> = receivers.iter().map(v4).collect::<io::Result<_>>()?;
    if mode == SendMode::Shared {
        peers = vec![peers[0]; calls];
    }
    let senders: Vec<UdpSocket> = match mode {
        SendMode::SendTo => (0..calls)
            .map(|_| loopback_socket())
            .collect::<io::Result<_>>()
            .context("cannot bind a sending socket")?,
        SendMode::Sendmmsg | SendMode::Shared => {
            vec![loopback_socket().context("cannot bind the sending socket")?]
        }
    };
    let ticks = (secs.as_secs_f64() / TICK.as_secs_f64()).ceil().max(1.0) as u64;
    let bound = secs * 3 + Duration::from_secs(1);
    let done = Arc::new(AtomicBool::new(false));
    let start = Instant::now() + Duration::from_millis(50);

    let rx_done = Arc::clone(&done);
    let receiver = std::thread::Builder::new()
        .name("floor-recv".into())
        .spawn(move || {
            let at = start + TICK / 2;
            if mode == SendMode::Shared {
                // Every call's packet of a tick, and some ticks' backlog, in full batches.
                let rounds = (calls.div_ceil(SHARED_BATCH) * 4).max(4);
                receive::<SHARED_BATCH>(&receivers, at, &rx_done, bound, rounds)
            } else {
                // A socket holds about one packet per tick; a few full batches at most.
                receive::<RECV_BATCH>(&receivers, at, &rx_done, bound, 64)
            }
        })
        .context("cannot start the receiving thread")?;
    let sent = std::thread::Builder::new()
        .name("floor-send".into())
        .spawn(move || send(mode, &senders, &peers, start, ticks, bound))
        .context("cannot start the sending thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the sending thread panicked"));
    done.store(true, Ordering::Release);
    let recv = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("the receiving thread panicked"))?;
    Ok(ModeRun {
        mode,
        send: sent??,
        recv: recv?,
    })
}

fn rtp_header(buf: &mut [u8], seq: u16, ts: u32, ssrc: u32) {
    buf[0] = 0x80; // V=2
    buf[1] = 0; // PCMU
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

fn send(
    mode: SendMode,
    sockets: &[UdpSocket],
    peers: &[SocketAddrV4],
    start: Instant,
    ticks: u64,
    bound: Duration,
) -> anyhow::Result<Side> {
    // One packet buffer per call: G.711 silence after the call's own RTP header.
    let mut packets = vec![[0xFFu8; PACKET]; peers.len()];
    let addrs: Vec<Option<SockaddrIn>> = peers.iter().map(|p| Some(SockaddrIn::from(*p))).collect();
    let mut headers: MultiHeaders<SockaddrIn> = MultiHeaders::preallocate(SEND_BATCH, None);
    let mut side = Side::default();
    if let Some(d) = start.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
    let cpu0 = ThreadCpu::read_or_err()?;
    let t0 = Instant::now();
    for tick in 0..ticks {
        let due = start + TICK * u32::try_from(tick).unwrap_or(u32::MAX);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        if t0.elapsed() > bound {
            break;
        }
        let seq = tick as u16;
        let ts = (tick as u32).wrapping_mul(160);
        for (i, p) in packets.iter_mut().enumerate() {
            rtp_header(p, seq, ts, i as u32);
        }
        match mode {
            SendMode::SendTo => {
                for ((p, s), to) in packets.iter().zip(sockets).zip(peers) {
                    side.syscalls += 1;
                    if s.send_to(p, to).is_ok() {
                        side.packets += 1;
                    }
                }
            }
            SendMode::Sendmmsg | SendMode::Shared => {
                let socket = sockets.first().context("no sending socket")?;
                for (chunk, to) in packets.chunks(SEND_BATCH).zip(addrs.chunks(SEND_BATCH)) {
                    side.packets += send_batch(socket, &mut headers, chunk, to, &mut side.syscalls);
                }
            }
        }
    }
    side.wall = t0.elapsed();
    cpu0.since(&mut side)?;
    Ok(side)
}

/// Send one batch with `sendmmsg`, the rest again after a partial send (a few attempts at
/// most); packets sent.
fn send_batch(
    socket: &UdpSocket,
    headers: &mut MultiHeaders<SockaddrIn>,
    packets: &[[u8; PACKET]],
    to: &[Option<SockaddrIn>],
    syscalls: &mut u64,
) -> u64 {
    let mut done = 0;
    for _attempt in 0..4 {
        if done >= packets.len() {
            break;
        }
        let rest = &packets[done..];
        let n = rest.len().min(SEND_BATCH);
        // No allocation per batch: slices on the stack (unused ones repeat the first packet).
        let iovs: [[IoSlice<'_>; 1]; SEND_BATCH] =
            std::array::from_fn(|i| [IoSlice::new(&rest[i.min(n - 1)][..])]);
        *syscalls += 1;
        match sendmmsg(
            socket.as_raw_fd(),
            headers,
            iovs[..n].iter(),
            &to[done..done + n],
            [],
            MsgFlags::empty(),
        ) {
            Ok(r) => {
                let n = r.count();
                if n == 0 {
                    break;
                }
                done += n;
            }
            Err(_) => break,
        }
    }
    done as u64
}

fn receive<const N: usize>(
    sockets: &[UdpSocket],
    start: Instant,
    done: &AtomicBool,
    bound: Duration,
    rounds: usize,
) -> anyhow::Result<Side> {
    let mut headers: Headers<N> = Headers::new();
    let mut batch: RecvBatch<N> = RecvBatch::new();
    let mut side = Side::default();
    if let Some(d) = start.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
    let cpu0 = ThreadCpu::read_or_err()?;
    let t0 = Instant::now();
    let mut tick: u32 = 0;
    // After the sender stops: one more pass for what is still queued.
    let mut last_pass = false;
    loop {
        let due = start + TICK * tick;
        tick = tick.saturating_add(1);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let finishing = done.load(Ordering::Acquire);
        for s in sockets {
            for _ in 0..rounds {
                match batch.recv(&mut headers, s) {
                    Ok(n) => {
                        side.packets += n as u64;
                        if n < N {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        if last_pass || t0.elapsed() > bound {
            break;
        }
        last_pass = finishing;
    }
    side.syscalls = batch.syscalls;
    side.wall = t0.elapsed();
    cpu0.since(&mut side)?;
    Ok(side)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_modes_deliver_every_packet_of_a_few_calls() {
        let r = run(8, Duration::from_millis(300)).unwrap();
        assert_eq!(r.modes.len(), 3);
        for m in &r.modes {
            // 15 ticks × 8 calls.
            assert_eq!(m.send.packets, 15 * 8, "{m:?}");
            assert_eq!(m.recv.packets, m.send.packets, "{m:?}");
            assert!(m.cpu_ms_per_live_call_minute().is_finite());
        }
        let sm = r.mode(SendMode::Sendmmsg).unwrap();
        // 8 packets per tick fit one batch.
        assert_eq!(sm.send.syscalls, 15);
        let st = r.mode(SendMode::SendTo).unwrap();
        assert_eq!(st.send.syscalls, 15 * 8);
        // One socket each side: a tick's 8 packets in one send and (at most) two reads.
        let sh = r.mode(SendMode::Shared).unwrap();
        assert_eq!(sh.send.syscalls, 15);
        assert!(sh.recv.syscalls <= 2 * 16, "{sh:?}");
        let j = r.json(Some(10.0));
        assert!(
            j.pointer("/dialer_over_floor/send_to")
                .unwrap()
                .as_f64()
                .unwrap()
                > 0.0
        );
        assert!(r.table(Some(10.0)).contains("dialer / floor"));
    }

    #[test]
    fn thread_cpu_reads() {
        let c = ThreadCpu::read().unwrap();
        assert!(c.user_s >= 0.0 && c.system_s >= 0.0);
        // Busy for a while: the nanosecond figure moves.
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(30) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let mut side = Side::default();
        c.since(&mut side).unwrap();
        assert!(x > 0);
        assert!(side.on_cpu_s.is_none_or(|s| s > 0.0), "{side:?}");
    }
}
