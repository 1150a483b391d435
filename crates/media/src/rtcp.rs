//! RTCP for one call (RFC 3550 §6): compound SR/RR + SDES CNAME reports, parsing of the peer's
//! reports, round-trip time, and the report schedule.
//!
//! Hand-written rather than webrtc-rs `rtcp`: that crate parses into `Vec<Box<dyn Packet>>`
//! (allocations per datagram) and we need four packet types, each a few fixed-layout words.
//! Writing goes into a caller buffer; parsing ([`packets`]) is an iterator of borrowed views that
//! stops at the first malformed packet and never panics. Unknown packet types come back as
//! [`RtcpPacket::Other`].
//!
//! # How the engine drives it
//! One [`RtcpSession`] per call, beside the call's [`RtpSender`] and [`RtpReceiver`]:
//! - when the media clock's tick reaches [`RtcpSession::poll_timeout`], call
//!   [`RtcpSession::write_report`] and send the datagram to the peer's RTCP address;
//! - every datagram from the RTCP socket goes to [`RtcpSession::handle_datagram`];
//! - when the call ends, [`RtcpSession::write_bye`].
//!
//! Time comes in twice: `now` (monotonic, for DLSR and the schedule) and `ntp`, the wall clock as
//! a 64-bit NTP timestamp (32.32 fixed point, see [`ntp_from_unix`]) that the engine reads once
//! per tick. The session never reads a clock.

use std::time::{Duration, Instant};

use bytes::BufMut;

use crate::stream::{RtpReceiver, RtpSender};

/// Sender report packet type.
pub const PT_SR: u8 = 200;
/// Receiver report packet type.
pub const PT_RR: u8 = 201;
/// Source description packet type.
pub const PT_SDES: u8 = 202;
/// Goodbye packet type.
pub const PT_BYE: u8 = 203;
/// The report interval the issue asks for.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);

const VERSION_BITS: u8 = 2 << 6;
const SDES_CNAME: u8 = 1;
const SENDER_INFO_LEN: usize = 20;
const BLOCK_LEN: usize = 24;
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Why an RTCP datagram was refused or a report could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtcpError {
    /// Fewer bytes than a packet header, or than the packet type's fixed part.
    #[error("RTCP packet truncated")]
    Truncated,
    /// Version field is not 2.
    #[error("RTCP version {0}, expected 2")]
    BadVersion(u8),
    /// The length field points past the end of the datagram.
    #[error("RTCP length field runs past the end of the datagram")]
    BadLength,
    /// Padding on a packet that is not the last, or a bad padding count.
    #[error("bad RTCP padding")]
    BadPadding,
    /// The caller's output buffer is too small (API misuse).
    #[error("output buffer of {have} bytes cannot hold a {need}-byte report")]
    BufferTooSmall {
        /// Bytes the report needs.
        need: usize,
        /// Bytes the buffer has.
        have: usize,
    },
    /// A CNAME longer than the 255 bytes an SDES item can carry.
    #[error("CNAME of {0} bytes is longer than 255")]
    CnameTooLong(usize),
}

/// The sender-info part of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// Wall clock when the report was sent, NTP 32.32.
    pub ntp: u64,
    /// The RTP timestamp corresponding to `ntp`.
    pub rtp_timestamp: u32,
    /// Packets sent since the stream started, mod 2^32.
    pub packet_count: u32,
    /// Payload octets sent since the stream started, mod 2^32.
    pub octet_count: u32,
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source this block is about.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed on the wire).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_sequence: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from the source, or 0.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s, or 0.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn put(&self, out: &mut &mut [u8]) {
        out.put_u32(self.ssrc);
        let lost = (self.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32) & 0x00FF_FFFF;
        out.put_u32(u32::from(self.fraction_lost) << 24 | lost);
        out.put_u32(self.highest_sequence);
        out.put_u32(self.jitter);
        out.put_u32(self.last_sr);
        out.put_u32(self.delay_since_last_sr);
    }

    fn read(raw: &[u8; BLOCK_LEN]) -> Self {
        let word = |i: usize| u32::from_be_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
        let lost = word(4);
        ReportBlock {
            ssrc: word(0),
            fraction_lost: (lost >> 24) as u8,
            // Sign-extend the low 24 bits.
            cumulative_lost: ((lost << 8) as i32) >> 8,
            highest_sequence: word(8),
            jitter: word(12),
            last_sr: word(16),
            delay_since_last_sr: word(20),
        }
    }
}

/// A compound report to write: SR (with sender info) or RR, then SDES CNAME, then BYE if asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report<'a> {
    /// Our SSRC.
    pub ssrc: u32,
    /// Present: an SR; absent: an RR.
    pub sender_info: Option<SenderInfo>,
    /// The block about the peer's stream, if we heard from it since the last report.
    pub block: Option<ReportBlock>,
    /// Our canonical name (RFC 3550 §6.5.1), at most 255 bytes.
    pub cname: &'a str,
    /// Append a BYE for our SSRC.
    pub bye: bool,
}

impl Report<'_> {
    /// Bytes [`Report::write`] will produce.
    pub fn encoded_len(&self) -> usize {
        let blocks = usize::from(self.block.is_some()) * BLOCK_LEN;
        let report = match self.sender_info {
            Some(_) => 8 + SENDER_INFO_LEN + blocks,
            None => 8 + blocks,
        };
        report + sdes_len(self.cname.len()) + if self.bye { 8 } else { 0 }
    }

    /// Writes the compound packet into `out` and returns its length.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, RtcpError> {
        if self.cname.len() > 255 {
            return Err(RtcpError::CnameTooLong(self.cname.len()));
        }
        let need = self.encoded_len();
        let have = out.len();
        let Some(mut buf) = out.get_mut(..need) else {
            return Err(RtcpError::BufferTooSmall { need, have });
        };
        let count = u8::from(self.block.is_some());
        let report_len = need - sdes_len(self.cname.len()) - if self.bye { 8 } else { 0 };
        let pt = if self.sender_info.is_some() {
            PT_SR
        } else {
            PT_RR
        };
        put_header(&mut buf, count, pt, report_len);
        buf.put_u32(self.ssrc);
        if let Some(info) = &self.sender_info {
            buf.put_u64(info.ntp);
            buf.put_u32(info.rtp_timestamp);
            buf.put_u32(info.packet_count);
            buf.put_u32(info.octet_count);
        }
        if let Some(block) = &self.block {
            block.put(&mut buf);
        }

        let sdes = sdes_len(self.cname.len());
        put_header(&mut buf, 1, PT_SDES, sdes);
        buf.put_u32(self.ssrc);
        buf.put_u8(SDES_CNAME);
        buf.put_u8(self.cname.len() as u8);
        buf.put_slice(self.cname.as_bytes());
        // End-of-items null octet(s), padding the chunk to a 32-bit boundary.
        let nulls = sdes - 4 - 4 - 2 - self.cname.len();
        buf.put_bytes(0, nulls);

        if self.bye {
            put_header(&mut buf, 1, PT_BYE, 8);
            buf.put_u32(self.ssrc);
        }
        debug_assert!(buf.is_empty());
        Ok(need)
    }
}

/// An SDES packet with one CNAME chunk: header, SSRC, type, length, text, ≥ 1 null, 32-bit aligned.
fn sdes_len(cname: usize) -> usize {
    4 + 4 + (2 + cname + 1).div_ceil(4) * 4
}

fn put_header(buf: &mut &mut [u8], count: u8, packet_type: u8, len: usize) {
    buf.put_u8(VERSION_BITS | (count & 0x1F));
    buf.put_u8(packet_type);
    buf.put_u16((len / 4 - 1) as u16);
}

/// One packet of a compound RTCP datagram, borrowing it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RtcpPacket<'a> {
    /// Sender report.
    SenderReport {
        /// The sender's SSRC.
        ssrc: u32,
        /// Its sending statistics.
        info: SenderInfo,
        /// Its reception reports.
        blocks: ReportBlocks<'a>,
    },
    /// Receiver report.
    ReceiverReport {
        /// The reporter's SSRC.
        ssrc: u32,
        /// Its reception reports.
        blocks: ReportBlocks<'a>,
    },
    /// Source description.
    SourceDescription(SdesChunks<'a>),
    /// Goodbye.
    Bye {
        /// The sources leaving.
        sources: SsrcList<'a>,
        /// Reason text, if any.
        reason: Option<&'a [u8]>,
    },
    /// Any other type (APP, feedback, XR…), left to the caller.
    Other {
        /// Packet type.
        packet_type: u8,
        /// The 5-bit count/format field.
        count: u8,
        /// Body after the 4-byte header, padding removed.
        body: &'a [u8],
    },
}

/// Report blocks of an SR or RR.
#[derive(Debug, Clone)]
pub struct ReportBlocks<'a>(&'a [u8]);

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;

    fn next(&mut self) -> Option<ReportBlock> {
        let (block, rest) = self.0.split_first_chunk::<BLOCK_LEN>()?;
        self.0 = rest;
        Some(ReportBlock::read(block))
    }
}

/// SSRCs of a BYE.
#[derive(Debug, Clone)]
pub struct SsrcList<'a>(&'a [u8]);

impl Iterator for SsrcList<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let (ssrc, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*ssrc))
    }
}

/// One SDES chunk: a source and its CNAME if it gave one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesChunk<'a> {
    /// The described source.
    pub ssrc: u32,
    /// Its CNAME item.
    pub cname: Option<&'a [u8]>,
}

/// Chunks of an SDES packet; stops at the first malformed chunk.
#[derive(Debug, Clone)]
pub struct SdesChunks<'a> {
    rest: &'a [u8],
    remaining: u8,
}

impl<'a> Iterator for SdesChunks<'a> {
    type Item = SdesChunk<'a>;

    fn next(&mut self) -> Option<SdesChunk<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let chunk = self.rest;
        self.rest = &[];
        let (ssrc, _) = chunk.split_first_chunk::<4>()?;
        let mut cname = None;
        let mut at = 4;
        loop {
            match *chunk.get(at)? {
                0 => break,
                item => {
                    let len = usize::from(*chunk.get(at + 1)?);
                    let text = chunk.get(at + 2..at + 2 + len)?;
                    if item == SDES_CNAME && cname.is_none() {
                        cname = Some(text);
                    }
                    at += 2 + len;
                }
            }
        }
        // Past the null octet, to the next 32-bit boundary.
        self.rest = chunk.get((at + 1).div_ceil(4) * 4..).unwrap_or(&[]);
        Some(SdesChunk {
            ssrc: u32::from_be_bytes(*ssrc),
            cname,
        })
    }
}

/// The packets of a compound RTCP datagram, in order. Yields an error and stops at the first
/// malformed packet; what came before it stands.
pub fn packets(datagram: &[u8]) -> Packets<'_> {
    Packets {
        rest: datagram,
        failed: false,
    }
}

/// Iterator returned by [`packets`].
#[derive(Debug, Clone)]
pub struct Packets<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Packets<'a> {
    fn parse_next(&mut self) -> Result<RtcpPacket<'a>, RtcpError> {
        let Some(&[b0, packet_type, hi, lo]) = self.rest.first_chunk::<4>() else {
            return Err(RtcpError::Truncated);
        };
        if b0 >> 6 != 2 {
            return Err(RtcpError::BadVersion(b0 >> 6));
        }
        let len = (usize::from(u16::from_be_bytes([hi, lo])) + 1) * 4;
        if len > self.rest.len() {
            return Err(RtcpError::BadLength);
        }
        let (packet, rest) = self.rest.split_at(len);
        self.rest = rest;
        let mut body = &packet[4..];
        if b0 & 0x20 != 0 {
            let count = usize::from(packet[len - 1]);
            if !rest.is_empty() || count == 0 || count > body.len() {
                return Err(RtcpError::BadPadding);
            }
            body = &body[..body.len() - count];
        }
        let count = b0 & 0x1F;
        let word = |b: &[u8], i: usize| -> Option<u32> {
            Some(u32::from_be_bytes(*b.get(i..i + 4)?.first_chunk::<4>()?))
        };
        let blocks = |from: usize| -> Result<ReportBlocks<'a>, RtcpError> {
            body.get(from..from + usize::from(count) * BLOCK_LEN)
                .map(ReportBlocks)
                .ok_or(RtcpError::Truncated)
        };
        Ok(match packet_type {
            PT_SR => {
                let ssrc = word(body, 0).ok_or(RtcpError::Truncated)?;
                let info = SenderInfo {
                    ntp: u64::from(word(body, 4).ok_or(RtcpError::Truncated)?) << 32
                        | u64::from(word(body, 8).ok_or(RtcpError::Truncated)?),
                    rtp_timestamp: word(body, 12).ok_or(RtcpError::Truncated)?,
                    packet_count: word(body, 16).ok_or(RtcpError::Truncated)?,
                    octet_count: word(body, 20).ok_or(RtcpError::Truncated)?,
                };
                RtcpPacket::SenderReport {
                    ssrc,
                    info,
                    blocks: blocks(4 + SENDER_INFO_LEN)?,
                }
            }
            PT_RR => RtcpPacket::ReceiverReport {
                ssrc: word(body, 0).ok_or(RtcpError::Truncated)?,
                blocks: blocks(4)?,
            },
            PT_SDES => RtcpPacket::SourceDescription(SdesChunks {
                rest: body,
                remaining: count,
            }),
            PT_BYE => {
                let list = usize::from(count) * 4;
                let sources = body.get(..list).ok_or(RtcpError::Truncated)?;
                let reason = body
                    .get(list)
                    .and_then(|&n| body.get(list + 1..list + 1 + usize::from(n)));
                RtcpPacket::Bye {
                    sources: SsrcList(sources),
                    reason,
                }
            }
            _ => RtcpPacket::Other {
                packet_type,
                count,
                body,
            },
        })
    }
}

impl<'a> Iterator for Packets<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let item = self.parse_next();
        self.failed = item.is_err();
        Some(item)
    }
}

/// RTCP multiplexed on the RTP port (RFC 5761 §4): packet types 192–223 sit where RTP's marker
/// bit and payload types 64–95 would.
pub fn looks_like_rtcp(datagram: &[u8]) -> bool {
    matches!(datagram, [b0, pt, ..] if b0 >> 6 == 2 && (192..=223).contains(pt))
}

/// A wall-clock time (time since the Unix epoch) as a 64-bit NTP timestamp.
pub fn ntp_from_unix(since_unix_epoch: Duration) -> u64 {
    let seconds = since_unix_epoch.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let fraction = (u64::from(since_unix_epoch.subsec_nanos()) << 32) / 1_000_000_000;
    seconds << 32 | fraction
}

/// The middle 32 bits of an NTP timestamp, as LSR and RTT arithmetic use them.
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// Round-trip time from a report block about our stream (RFC 3550 §6.4.1): arrival − LSR − DLSR.
/// `None` when the peer has not received an SR from us yet (LSR 0) or the result is negative.
pub fn round_trip_time(
    arrival_ntp: u64,
    last_sr: u32,
    delay_since_last_sr: u32,
) -> Option<Duration> {
    if last_sr == 0 {
        return None;
    }
    let rtt = ntp_middle(arrival_ntp)
        .wrapping_sub(last_sr)
        .wrapping_sub(delay_since_last_sr);
    if rtt > i32::MAX as u32 {
        return None;
    }
    Some(Duration::from_nanos((u64::from(rtt) * 1_000_000_000) >> 16))
}

/// A duration in 1/65536 s, saturating (DLSR units).
fn units_65536(d: Duration) -> u32 {
    let units = (d.as_nanos() << 16) / 1_000_000_000;
    u32::try_from(units).unwrap_or(u32::MAX)
}

/// When the next report is due.
///
/// Fixed: every `interval`. Randomized (RFC 3550 §6.3.1): each interval is drawn uniformly from
/// [0.5, 1.5) × `interval` with a seeded xorshift, the first one halved, which also spreads
/// thousands of calls' reports over the media clock's ticks.
#[derive(Debug, Clone)]
pub struct RtcpScheduler {
    interval: Duration,
    next: Instant,
    rng: Option<u64>,
}

impl RtcpScheduler {
    /// Reports exactly every `interval`, the first one `interval` after `now`.
    pub fn fixed(now: Instant, interval: Duration) -> Self {
        RtcpScheduler {
            interval,
            next: now + interval,
            rng: None,
        }
    }

    /// Randomized intervals from `seed` (see the type docs).
    pub fn randomized(now: Instant, interval: Duration, seed: u64) -> Self {
        // splitmix64 of the seed: nearby seeds give unrelated schedules; xorshift needs non-zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let mut scheduler = RtcpScheduler {
            interval,
            next: now,
            rng: Some(if z == 0 { 0x9E37_79B9_7F4A_7C15 } else { z }),
        };
        scheduler.next = now + scheduler.draw() / 2;
        scheduler
    }

    /// When the next report is due.
    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// A report is due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// A report was sent at `now`: schedule the next.
    pub fn reschedule(&mut self, now: Instant) {
        self.next = now + self.draw();
    }

    fn draw(&mut self) -> Duration {
        let Some(state) = self.rng.as_mut() else {
            return self.interval;
        };
        // xorshift64*
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        let random = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let span = u64::try_from(self.interval.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        Duration::from_nanos(span / 2 + random % span)
    }
}

#[derive(Debug, Clone, Copy)]
struct LastSr {
    ssrc: u32,
    middle: u32,
    at: Instant,
}

/// The RTCP side of one call: schedule, SR/RR decision, LSR/DLSR bookkeeping, RTT.
#[derive(Debug, Clone)]
pub struct RtcpSession {
    local_ssrc: u32,
    scheduler: RtcpScheduler,
    /// Our packet count at the last report and the one before (RFC 3550 §6.4: send an SR if we
    /// sent since either).
    packets_at_reports: [u64; 2],
    last_sr: Option<LastSr>,
    rtt: Option<Duration>,
    remote_report: Option<ReportBlock>,
    remote_sender: Option<SenderInfo>,
    bye_received: bool,
}

impl RtcpSession {
    /// A session for our stream `local_ssrc`.
    pub fn new(local_ssrc: u32, scheduler: RtcpScheduler) -> Self {
        RtcpSession {
            local_ssrc,
            scheduler,
            packets_at_reports: [0; 2],
            last_sr: None,
            rtt: None,
            remote_report: None,
            remote_sender: None,
            bye_received: false,
        }
    }

    /// When [`RtcpSession::write_report`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        self.scheduler.next_due()
    }

    /// Writes the periodic compound report and schedules the next. An SR when we sent media
    /// since one of the last two reports, else an RR; one block about the peer if we heard from
    /// it. The SR's RTP timestamp is the sender's next frame timestamp, which the media clock
    /// sends within one tick of `ntp`.
    pub fn write_report(
        &mut self,
        now: Instant,
        ntp: u64,
        sender: &RtpSender,
        receiver: &mut RtpReceiver,
        cname: &str,
        out: &mut [u8],
    ) -> Result<usize, RtcpError> {
        let n = self.write(now, ntp, sender, receiver, cname, false, out)?;
        self.scheduler.reschedule(now);
        Ok(n)
    }

    /// Writes the final compound report with a BYE for our SSRC (the call is ending).
    pub fn write_bye(
        &mut self,
        now: Instant,
        ntp: u64,
        sender: &RtpSender,
        receiver: &mut RtpReceiver,
        cname: &str,
        out: &mut [u8],
    ) -> Result<usize, RtcpError> {
        self.write(now, ntp, sender, receiver, cname, true, out)
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        now: Instant,
        ntp: u64,
        sender: &RtpSender,
        receiver: &mut RtpReceiver,
        cname: &str,
        bye: bool,
        out: &mut [u8],
    ) -> Result<usize, RtcpError> {
        // Check the worst case before touching the receiver's interval counters.
        let worst = Report {
            ssrc: self.local_ssrc,
            sender_info: Some(SenderInfo {
                ntp,
                rtp_timestamp: 0,
                packet_count: 0,
                octet_count: 0,
            }),
            block: Some(ReportBlock::read(&[0; BLOCK_LEN])),
            cname,
            bye,
        };
        if cname.len() > 255 {
            return Err(RtcpError::CnameTooLong(cname.len()));
        }
        if out.len() < worst.encoded_len() {
            return Err(RtcpError::BufferTooSmall {
                need: worst.encoded_len(),
                have: out.len(),
            });
        }

        let packets = sender.packets_sent();
        let sent_recently = packets != self.packets_at_reports[1];
        self.packets_at_reports = [packets, self.packets_at_reports[0]];
        let sender_info = sent_recently.then(|| SenderInfo {
            ntp,
            rtp_timestamp: sender.next_timestamp(),
            packet_count: packets as u32,
            octet_count: sender.octets_sent() as u32,
        });
        let block = receiver.take_report_block().map(|mut block| {
            if let Some(sr) = self.last_sr.filter(|sr| sr.ssrc == block.ssrc) {
                block.last_sr = sr.middle;
                block.delay_since_last_sr = units_65536(now.saturating_duration_since(sr.at));
            }
            block
        });
        Report {
            ssrc: self.local_ssrc,
            sender_info,
            block,
            cname,
            bye,
        }
        .write(out)
    }

    /// Takes an RTCP datagram from the peer that arrived at `now` (wall clock `ntp`). Packets
    /// before a malformed one are still used.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        ntp: u64,
        datagram: &[u8],
    ) -> Result<(), RtcpError> {
        for packet in packets(datagram) {
            match packet? {
                RtcpPacket::SenderReport { ssrc, info, blocks } => {
                    self.last_sr = Some(LastSr {
                        ssrc,
                        middle: ntp_middle(info.ntp),
                        at: now,
                    });
                    self.remote_sender = Some(info);
                    self.take_blocks(ntp, blocks);
                }
                RtcpPacket::ReceiverReport { blocks, .. } => self.take_blocks(ntp, blocks),
                RtcpPacket::Bye { .. } => self.bye_received = true,
                _ => {}
            }
        }
        Ok(())
    }

    fn take_blocks(&mut self, ntp: u64, blocks: ReportBlocks<'_>) {
        for block in blocks.filter(|b| b.ssrc == self.local_ssrc) {
            self.remote_report = Some(block);
            if let Some(rtt) = round_trip_time(ntp, block.last_sr, block.delay_since_last_sr) {
                tracing::trace!(rtt_ms = rtt.as_millis() as u64, "rtcp round trip");
                self.rtt = Some(rtt);
            }
        }
    }

    /// The latest round-trip time measured from the peer's reports.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// The peer's latest report block about our stream (their view of our loss and jitter).
    pub fn remote_report(&self) -> Option<ReportBlock> {
        self.remote_report
    }

    /// The peer's latest sender info.
    pub fn remote_sender(&self) -> Option<SenderInfo> {
        self.remote_sender
    }

    /// The peer sent an RTCP BYE.
    pub fn bye_received(&self) -> bool {
        self.bye_received
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Codec;
    use crate::stream::{ReceiverConfig, SenderConfig};

    fn sample_report(bye: bool) -> Report<'static> {
        Report {
            ssrc: 0x1122_3344,
            sender_info: Some(SenderInfo {
                ntp: 0xE1A2_B3C4_8000_0000,
                rtp_timestamp: 0xDEAD_BEEF,
                packet_count: 5,
                octet_count: 800,
            }),
            block: Some(ReportBlock {
                ssrc: 0xAABB_CCDD,
                fraction_lost: 0x40,
                cumulative_lost: -2,
                highest_sequence: 0x0001_0005,
                jitter: 17,
                last_sr: 0x1234_5678,
                delay_since_last_sr: 0x0001_0000,
            }),
            cname: "ab",
            bye,
        }
    }

    /// The RFC 3550 §6.4.1 and §6.5 layouts, filled in by hand.
    #[test]
    fn sender_report_bytes_match_rfc_layout() {
        #[rustfmt::skip]
        let expect: [u8; 76] = [
            // SR: V=2 P=0 RC=1, PT=200, length 12 words (13 − 1).
            0x81, 0xC8, 0x00, 0x0C,
            0x11, 0x22, 0x33, 0x44, // SSRC of sender
            0xE1, 0xA2, 0xB3, 0xC4, 0x80, 0x00, 0x00, 0x00, // NTP timestamp
            0xDE, 0xAD, 0xBE, 0xEF, // RTP timestamp
            0x00, 0x00, 0x00, 0x05, // sender's packet count
            0x00, 0x00, 0x03, 0x20, // sender's octet count (800)
            0xAA, 0xBB, 0xCC, 0xDD, // SSRC_1
            0x40, 0xFF, 0xFF, 0xFE, // fraction lost 64/256, cumulative lost −2 (24-bit)
            0x00, 0x01, 0x00, 0x05, // extended highest sequence number: 1 cycle, seq 5
            0x00, 0x00, 0x00, 0x11, // interarrival jitter 17
            0x12, 0x34, 0x56, 0x78, // LSR
            0x00, 0x01, 0x00, 0x00, // DLSR: 1 s
            // SDES: SC=1, PT=202, length 3 words.
            0x81, 0xCA, 0x00, 0x03,
            0x11, 0x22, 0x33, 0x44, // SSRC
            0x01, 0x02, b'a', b'b', // CNAME, length 2, "ab"
            0x00, 0x00, 0x00, 0x00, // end of list, padded to 32 bits
            // BYE: SC=1, PT=203, length 1 word.
            0x81, 0xCB, 0x00, 0x01,
            0x11, 0x22, 0x33, 0x44,
        ];
        let mut out = [0u8; 128];
        let report = sample_report(false);
        assert_eq!(report.encoded_len(), 68);
        assert_eq!(report.write(&mut out), Ok(68));
        assert_eq!(out[..68], expect[..68]);
        assert_eq!(sample_report(true).write(&mut out), Ok(76));
        assert_eq!(out[..76], expect);
    }

    #[test]
    fn reports_round_trip() {
        let mut out = [0u8; 512];
        let n = sample_report(true).write(&mut out).unwrap();
        let parsed: Vec<_> = packets(&out[..n]).collect::<Result<_, _>>().unwrap();
        assert_eq!(parsed.len(), 3);
        let RtcpPacket::SenderReport { ssrc, info, blocks } = parsed[0].clone() else {
            panic!("{:?}", parsed[0])
        };
        assert_eq!(
            (ssrc, info),
            (0x1122_3344, sample_report(false).sender_info.unwrap())
        );
        assert_eq!(
            blocks.collect::<Vec<_>>(),
            [sample_report(false).block.unwrap()]
        );
        let RtcpPacket::SourceDescription(chunks) = parsed[1].clone() else {
            panic!()
        };
        assert_eq!(
            chunks.collect::<Vec<_>>(),
            [SdesChunk {
                ssrc: 0x1122_3344,
                cname: Some(&b"ab"[..])
            }]
        );
        let RtcpPacket::Bye { sources, reason } = parsed[2].clone() else {
            panic!()
        };
        assert_eq!(
            (sources.collect::<Vec<_>>(), reason),
            (vec![0x1122_3344], None)
        );

        // RR, empty RR, CNAMEs of every length's padding case, the extreme lost values.
        for cname_len in [0usize, 1, 2, 3, 4, 5, 255] {
            let cname = "x".repeat(cname_len);
            for block in [
                None,
                Some(ReportBlock {
                    cumulative_lost: 0x7F_FFFF,
                    ..sample_report(false).block.unwrap()
                }),
            ] {
                let report = Report {
                    ssrc: 9,
                    sender_info: None,
                    block,
                    cname: &cname,
                    bye: false,
                };
                let n = report.write(&mut out).unwrap();
                assert_eq!(n % 4, 0);
                assert_eq!(n, report.encoded_len());
                let mut it = packets(&out[..n]);
                let Some(Ok(RtcpPacket::ReceiverReport { ssrc: 9, blocks })) = it.next() else {
                    panic!()
                };
                assert_eq!(
                    blocks.collect::<Vec<_>>(),
                    block.into_iter().collect::<Vec<_>>()
                );
                let Some(Ok(RtcpPacket::SourceDescription(mut chunks))) = it.next() else {
                    panic!()
                };
                assert_eq!(chunks.next().unwrap().cname, Some(cname.as_bytes()));
                assert!(it.next().is_none());
            }
        }
        let min = ReportBlock {
            cumulative_lost: -0x80_0000,
            ..sample_report(false).block.unwrap()
        };
        let report = Report {
            block: Some(min),
            ..sample_report(false)
        };
        let n = report.write(&mut out).unwrap();
        let Some(Ok(RtcpPacket::SenderReport { mut blocks, .. })) = packets(&out[..n]).next()
        else {
            panic!()
        };
        assert_eq!(blocks.next().unwrap().cumulative_lost, -0x80_0000);
    }

    #[test]
    fn write_refuses_small_buffer_and_long_cname() {
        let mut out = [0u8; 67];
        assert_eq!(
            sample_report(false).write(&mut out),
            Err(RtcpError::BufferTooSmall { need: 68, have: 67 })
        );
        let long = "x".repeat(256);
        let report = Report {
            cname: &long,
            ..sample_report(false)
        };
        assert_eq!(
            report.write(&mut [0u8; 1024]),
            Err(RtcpError::CnameTooLong(256))
        );
    }

    #[test]
    fn parser_tolerates_unknown_types_and_stops_at_garbage() {
        let mut d = Vec::new();
        // RR with no blocks.
        d.extend_from_slice(&[0x80, 201, 0, 1, 0, 0, 0, 7]);
        // APP (204), subtype 3, name "TEST", 4 bytes of data.
        d.extend_from_slice(&[
            0x83, 204, 0, 3, 0, 0, 0, 7, b'T', b'E', b'S', b'T', 1, 2, 3, 4,
        ]);
        // SDES with two chunks; the first has NAME before CNAME.
        d.extend_from_slice(&[0x82, 202, 0, 5]);
        d.extend_from_slice(&[0, 0, 0, 7, 2, 1, b'n', 1, 2, b'c', b'd', 0]);
        d.extend_from_slice(&[0, 0, 0, 8, 1, 1, b'e', 0]);
        // BYE with a reason, padded: 4 bytes of padding including the count.
        d.extend_from_slice(&[0xA1, 203, 0, 3, 0, 0, 0, 7, 3, b'b', b'y', b'e', 0, 0, 0, 4]);
        let parsed: Vec<_> = packets(&d).collect::<Result<_, _>>().unwrap();
        assert_eq!(parsed.len(), 4);
        assert!(
            matches!(parsed[1], RtcpPacket::Other { packet_type: 204, count: 3, body } if body.len() == 12)
        );
        let RtcpPacket::SourceDescription(chunks) = parsed[2].clone() else {
            panic!()
        };
        let chunks: Vec<_> = chunks.collect();
        assert_eq!(
            chunks,
            [
                SdesChunk {
                    ssrc: 7,
                    cname: Some(&b"cd"[..])
                },
                SdesChunk {
                    ssrc: 8,
                    cname: Some(&b"e"[..])
                }
            ]
        );
        let RtcpPacket::Bye { reason, .. } = parsed[3].clone() else {
            panic!()
        };
        assert_eq!(reason, Some(&b"bye"[..]));

        // Padding on a packet that is not the last.
        let mut bad = d.clone();
        bad[0] |= 0x20;
        assert!(matches!(
            packets(&bad).next(),
            Some(Err(RtcpError::BadPadding))
        ));
        // A length running past the end: what came before still stands.
        let mut bad = d[..8].to_vec();
        bad.extend_from_slice(&[0x80, 201, 0, 9, 0, 0]);
        let got: Vec<_> = packets(&bad).collect();
        assert!(matches!(
            got[..],
            [
                Ok(RtcpPacket::ReceiverReport { ssrc: 7, .. }),
                Err(RtcpError::BadLength)
            ]
        ));
        assert!(matches!(
            packets(&[0x40, 201, 0, 0]).next(),
            Some(Err(RtcpError::BadVersion(1)))
        ));
        // An SR whose length is too short for the sender info, an RR claiming a block it lacks.
        assert!(matches!(
            packets(&[0x80, 200, 0, 1, 0, 0, 0, 1]).next(),
            Some(Err(RtcpError::Truncated))
        ));
        assert!(matches!(
            packets(&[0x81, 201, 0, 1, 0, 0, 0, 1]).next(),
            Some(Err(RtcpError::Truncated))
        ));
        assert!(matches!(
            packets(&[0x80, 201]).next(),
            Some(Err(RtcpError::Truncated))
        ));
    }

    #[test]
    fn fuzzed_rtcp_never_panics() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut valid = [0u8; 128];
        let n = sample_report(true).write(&mut valid).unwrap();
        let mut session = RtcpSession::new(
            0xAABB_CCDD,
            RtcpScheduler::fixed(Instant::now(), REPORT_INTERVAL),
        );
        let now = Instant::now();
        let mut seen = 0usize;
        for round in 0..20_000 {
            let mut d = valid;
            let mut len = n;
            match rand() % 4 {
                0 => {
                    len = (rand() % 128) as usize;
                    for b in &mut d[..len] {
                        *b = rand() as u8;
                    }
                }
                1 => len = (rand() % n as u64) as usize,
                _ => {
                    for _ in 0..1 + rand() % 4 {
                        d[(rand() % n as u64) as usize] = rand() as u8;
                    }
                }
            }
            for packet in packets(&d[..len]).flatten() {
                seen += 1;
                match packet {
                    RtcpPacket::SenderReport { blocks, .. }
                    | RtcpPacket::ReceiverReport { blocks, .. } => blocks.for_each(drop),
                    RtcpPacket::SourceDescription(chunks) => chunks.for_each(drop),
                    RtcpPacket::Bye { sources, .. } => sources.for_each(drop),
                    _ => {}
                }
            }
            let _ = session.handle_datagram(now, round, &d[..len]);
        }
        assert!(seen > 10_000, "{seen}");
    }

    /// RFC 3550 §6.4.1's example: A = 0xb710:8000, LSR = 0xb705:2000, DLSR = 0x0005:4000,
    /// RTT = 0x0006:2000 = 6.125 s.
    #[test]
    fn round_trip_time_from_rfc_example() {
        let arrival = 0xB710_8000u64 << 16;
        assert_eq!(
            round_trip_time(arrival, 0xB705_2000, 0x0005_4000),
            Some(Duration::from_millis(6125))
        );
        assert_eq!(
            round_trip_time(arrival, 0, 0x0005_4000),
            None,
            "no SR received yet"
        );
        assert_eq!(
            round_trip_time(arrival, 0xB710_8000, 0x0001_0000),
            None,
            "negative"
        );
    }

    #[test]
    fn ntp_conversions() {
        assert_eq!(ntp_from_unix(Duration::ZERO), 2_208_988_800u64 << 32);
        assert_eq!(
            ntp_from_unix(Duration::from_millis(1500)),
            (2_208_988_801u64 << 32) | 0x8000_0000
        );
        assert_eq!(ntp_middle(0x1234_5678_9ABC_DEF0), 0x5678_9ABC);
    }

    #[test]
    fn rtcp_mux_detection() {
        let mut out = [0u8; 128];
        let n = sample_report(false).write(&mut out).unwrap();
        assert!(looks_like_rtcp(&out[..n]));
        let rtp = [0x80, 0x80 | 8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        assert!(!looks_like_rtcp(&rtp));
        assert!(!looks_like_rtcp(&[0x80]));
    }

    #[test]
    fn scheduler_fixed_and_randomized() {
        let t0 = Instant::now();
        let mut fixed = RtcpScheduler::fixed(t0, REPORT_INTERVAL);
        assert_eq!(fixed.next_due(), t0 + REPORT_INTERVAL);
        assert!(
            !fixed.is_due(t0 + Duration::from_millis(4999)) && fixed.is_due(t0 + REPORT_INTERVAL)
        );
        fixed.reschedule(t0 + Duration::from_millis(5020));
        assert_eq!(fixed.next_due(), t0 + Duration::from_millis(10_020));

        let draws = |seed| {
            let mut s = RtcpScheduler::randomized(t0, REPORT_INTERVAL, seed);
            let first = s.next_due() - t0;
            let rest: Vec<Duration> = (0..2000)
                .map(|_| {
                    s.reschedule(t0);
                    s.next_due() - t0
                })
                .collect();
            (first, rest)
        };
        let (first, rest) = draws(42);
        assert!(
            first >= Duration::from_millis(1250) && first < Duration::from_millis(3750),
            "{first:?}"
        );
        assert!(
            rest.iter()
                .all(|d| *d >= Duration::from_millis(2500) && *d < Duration::from_millis(7500))
        );
        let mean = rest.iter().sum::<Duration>() / rest.len() as u32;
        assert!(
            mean > Duration::from_millis(4850) && mean < Duration::from_millis(5150),
            "{mean:?}"
        );
        assert!(
            draws(42) == (first, rest.clone()),
            "same seed, same schedule"
        );
        assert!(draws(43).1 != rest, "another seed, another schedule");
    }

    #[test]
    fn fraction_lost_per_interval() {
        let mut rx = RtpReceiver::new(ReceiverConfig::new(Codec::Pcmu, None));
        let t0 = Instant::now();
        let push = |rx: &mut RtpReceiver, i: u16| {
            let mut out = [0u8; 200];
            let mut s = RtpSender::new(SenderConfig::new(5, Codec::Pcmu, i, u32::from(i) * 160));
            let n = s.write_frame(&[0xFF; 160], &mut out).unwrap();
            rx.push(t0 + Duration::from_millis(20) * u32::from(i), &out[..n])
                .unwrap();
            let _ = rx.pop_frame();
        };
        (0..100)
            .filter(|i| i % 10 != 3)
            .for_each(|i| push(&mut rx, i));
        let block = rx.take_report_block().unwrap();
        // 100 expected (0..=99), 90 received: 10 lost, 10 × 256 / 100 = 25.
        assert_eq!(
            (
                block.fraction_lost,
                block.cumulative_lost,
                block.highest_sequence
            ),
            (25, 10, 99)
        );
        // Next interval: 50 of 50, half of 20 lost.
        (100..150).for_each(|i| push(&mut rx, i));
        let block = rx.take_report_block().unwrap();
        assert_eq!(
            (
                block.fraction_lost,
                block.cumulative_lost,
                block.highest_sequence
            ),
            (0, 10, 149)
        );
        (150..170)
            .filter(|i| i % 2 == 0)
            .for_each(|i| push(&mut rx, i));
        let block = rx.take_report_block().unwrap();
        // Expected 150..=168 = 19, received 10: 9 × 256 / 19 = 121.
        assert_eq!((block.fraction_lost, block.cumulative_lost), (121, 19));
    }

    /// Two parties in simulated time, 30 ms each way: B's SR reaches A, A answers 1 s later
    /// with LSR/DLSR, and B measures a 60 ms round trip.
    #[test]
    fn two_sessions_measure_round_trip() {
        struct Party {
            tx: RtpSender,
            rx: RtpReceiver,
            rtcp: RtcpSession,
        }
        let t0 = Instant::now();
        let unix0 = Duration::from_secs(1_700_000_000);
        let ntp_at = |t: Instant| ntp_from_unix(unix0 + (t - t0));
        let party = |ssrc: u32, seed: u64| Party {
            tx: RtpSender::new(SenderConfig::new(
                ssrc,
                Codec::Pcma,
                seed as u16,
                seed as u32,
            )),
            rx: RtpReceiver::new(ReceiverConfig::new(Codec::Pcma, None)),
            rtcp: RtcpSession::new(ssrc, RtcpScheduler::randomized(t0, REPORT_INTERVAL, seed)),
        };
        let (mut a, mut b) = (party(0xA, 1), party(0xB, 2));
        let delay = Duration::from_millis(30);
        let mut out = [0u8; 256];
        // A listens only (sends nothing); B talks for 3 s.
        for tick in 0..150u32 {
            let now = t0 + Duration::from_millis(20) * tick;
            let n = b.tx.write_frame(&[0xD5; 160], &mut out).unwrap();
            a.rx.push(now + delay, &out[..n]).unwrap();
            let _ = a.rx.pop_frame();
            a.tx.skip_frames(1);
        }
        let t_sr = t0 + Duration::from_secs(3);
        let n = b
            .rtcp
            .write_report(t_sr, ntp_at(t_sr), &b.tx, &mut b.rx, "b@sim", &mut out)
            .unwrap();
        assert!(b.rtcp.poll_timeout() > t_sr + Duration::from_millis(2499));
        assert!(matches!(
            packets(&out[..n]).next(),
            Some(Ok(RtcpPacket::SenderReport { ssrc: 0xB, .. }))
        ));
        let arrive = t_sr + delay;
        a.rtcp
            .handle_datagram(arrive, ntp_at(arrive), &out[..n])
            .unwrap();
        assert_eq!(a.rtcp.remote_sender().map(|s| s.packet_count), Some(150));

        let t_rr = arrive + Duration::from_secs(1);
        let n = a
            .rtcp
            .write_report(t_rr, ntp_at(t_rr), &a.tx, &mut a.rx, "a@sim", &mut out)
            .unwrap();
        let mut it = packets(&out[..n]);
        // A sent no media: an RR, with one block about B.
        let Some(Ok(RtcpPacket::ReceiverReport {
            ssrc: 0xA,
            mut blocks,
        })) = it.next()
        else {
            panic!()
        };
        let block = blocks.next().unwrap();
        assert_eq!(block.ssrc, 0xB);
        assert_eq!(block.highest_sequence, 2 + 149);
        assert_eq!(
            (block.fraction_lost, block.cumulative_lost, block.jitter),
            (0, 0, 0)
        );
        assert_eq!(block.last_sr, ntp_middle(ntp_at(t_sr)));
        assert_eq!(block.delay_since_last_sr, 0x0001_0000);
        let Some(Ok(RtcpPacket::SourceDescription(mut chunks))) = it.next() else {
            panic!()
        };
        assert_eq!(chunks.next().unwrap().cname, Some(&b"a@sim"[..]));

        let back = t_rr + delay;
        b.rtcp
            .handle_datagram(back, ntp_at(back), &out[..n])
            .unwrap();
        let rtt = b.rtcp.rtt().unwrap();
        let err = rtt.abs_diff(Duration::from_millis(60));
        assert!(err < Duration::from_micros(50), "{rtt:?}");
        assert_eq!(b.rtcp.remote_report().unwrap().ssrc, 0xB);

        // B stops sending: its next report is still an SR (sent during the previous interval),
        // the one after is an RR.
        let mut sr_or_rr = |b: &mut Party, t: Instant| {
            let n = b
                .rtcp
                .write_report(t, ntp_at(t), &b.tx, &mut b.rx, "b@sim", &mut out)
                .unwrap();
            match packets(&out[..n]).next() {
                Some(Ok(RtcpPacket::SenderReport { .. })) => "SR",
                Some(Ok(RtcpPacket::ReceiverReport { .. })) => "RR",
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(sr_or_rr(&mut b, t_sr + Duration::from_secs(5)), "SR");
        assert_eq!(sr_or_rr(&mut b, t_sr + Duration::from_secs(10)), "RR");

        // Goodbye.
        let n = a
            .rtcp
            .write_bye(t_rr, ntp_at(t_rr), &a.tx, &mut a.rx, "a@sim", &mut out)
            .unwrap();
        b.rtcp
            .handle_datagram(back, ntp_at(back), &out[..n])
            .unwrap();
        assert!(b.rtcp.bye_received());
    }
}
