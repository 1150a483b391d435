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
        let pt = if self.sender_info.is_some() { PT_SR } else { PT_RR };
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
                let reason = body.get(list).and_then(|&n| body.get(list + 1..list + 1 + usize::from(n)));
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
pub fn round_trip_time(arrival_ntp: u64, last_sr: u32, delay_since_last_sr: u32) -> Option<Duration> {
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
        let mut scheduler = RtcpScheduler {
            interval,
            next: now,
            rng: Some(seed | 1),
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
        let span = u64::try_from(self.interval.as_nanos()).unwrap_or(u64::MAX).max(1);
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
    pub fn handle_datagram(&mut self, now: Instant, ntp: u64, datagram: &[u8]) -> Result<(), RtcpError> {
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
