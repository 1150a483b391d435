//! The RTP stream of one call: [`RtpSender`] writes our packets, [`RtpReceiver`] validates the
//! peer's packets, keeps the RFC 3550 reception statistics and a small fixed playout buffer.
//!
//! Both are plain structs with no IO, no clock reads and no allocation per packet: the sender
//! writes into a buffer the caller lends, the receiver copies audio into an inline ring of
//! [`BUFFER_FRAMES`] × 160 bytes and hands out borrowed slices.
//!
//! # How the engine drives a stream
//! The engine's single media clock ticks every 20 ms for all calls. On each tick, for each call:
//! - send: [`RtpSender::write_frame`] the next prompt frame into a scratch buffer and transmit it,
//!   or [`RtpSender::skip_frames`]`(1)` when there is nothing to send (paused prompt, hold), so that
//!   the timestamps keep following real time;
//! - receive: [`RtpReceiver::pop_frame`] once and feed the [`Playout`] to VAD/AMD/recording.
//!
//! Between ticks, every datagram from the call's RTP socket goes to [`RtpReceiver::push`] with the
//! `now` of its arrival; a [`Received::Event`] payload goes to the RFC 4733 decoder. Which source
//! address to accept (symmetric RTP latching) is the caller's business.
//!
//! # The playout buffer
//! Audio is placed by RTP *timestamp*, not by sequence number: a slot is due every 160 samples
//! whatever the peer's packetisation (10, 20 or 30 ms packets, e.g. SIPp's 30 ms `g711a.pcap`),
//! and a silence-suppression gap (timestamp jump without a sequence gap) stays as long as it was,
//! which answering-machine detection depends on. Sequence numbers drive the statistics (RFC 3550
//! A.1, A.3), duplicate detection and the in-order test.
//!
//! The first packet is played `depth` ticks after it arrives (default 2, i.e. 40 ms). A packet
//! whose slot has already been played is dropped and counted late, unless it is the newest packet
//! (highest sequence number), in which case the stream fell behind (delay spike, sender clock slower
//! than ours, timestamp jump) and the buffer re-anchors on it. A newest packet too far ahead for
//! the ring drops the oldest frames to make room. When the buffer holds more than `depth` frames
//! for [`TRIM_WINDOW`] ticks in a row, one frame is dropped, so latency returns to `depth` after
//! a burst and a sender clock faster than ours cannot grow it.
//!
//! # Why `rtp::header::Header` only sees the fixed 12 bytes
//! `rtp` 0.17's `Header::unmarshal` allocates for CSRC lists (`Vec`) and header extensions
//! (`Vec`, `Bytes::copy_to_bytes`), and its RFC 8285 element loop trusts element lengths, so a
//! malformed extension panics with an out-of-bounds read. We need neither list, so the receiver
//! checks CSRC count, extension length and padding itself and gives `Header::unmarshal` a copy of
//! the fixed header with CC and X cleared: no allocation, nothing the wire controls.

use std::time::{Duration, Instant};

use rtp::header::Header;
use webrtc_util::marshal::{Marshal, Unmarshal};

use crate::FRAME_SAMPLES;
use crate::g711::Codec;
use crate::rtcp::ReportBlock;

/// Length of the fixed RTP header we write (no CSRCs, no extension).
pub const HEADER_LEN: usize = 12;
/// Largest audio payload accepted: 60 ms of G.711.
pub const MAX_PAYLOAD: usize = 480;
/// Frames the playout ring holds (160 bytes each, inline).
pub const BUFFER_FRAMES: usize = 8;
/// Default playout delay in frames (40 ms).
pub const DEFAULT_DEPTH: u8 = 2;
/// Largest configurable playout delay in frames; leaves room for a [`MAX_PAYLOAD`] packet.
pub const MAX_DEPTH: u8 = 5;
/// Ticks over which the buffer must stay above `depth` before one frame is dropped.
pub const TRIM_WINDOW: u16 = 25;
/// Consecutive empty ticks after which a stream counts as stopped ([`Playout::Idle`]).
pub const IDLE_AFTER_TICKS: u16 = 25;

const FRAME: usize = FRAME_SAMPLES;
const CAPACITY: i64 = (BUFFER_FRAMES * FRAME) as i64;
/// RFC 3550 A.1: a forward jump up to this many sequence numbers is loss, not a restart.
const MAX_DROPOUT: i32 = 3000;
/// RFC 3550 A.1: a backward step up to this many sequence numbers is reordering.
const MAX_MISORDER: i32 = 100;
const RTP_VERSION: u8 = 2;

/// Why a datagram was refused, or a packet could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    #[error("datagram of {0} bytes is shorter than an RTP header")]
    TooShort(usize),
    /// Version field is not 2.
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    /// The CSRC list or header extension runs past the end of the datagram.
    #[error("CSRC list or header extension runs past the end of the datagram")]
    HeaderOverrun,
    /// Padding bit set with a padding count of 0 or longer than the payload.
    #[error("padding count is zero or longer than the payload")]
    BadPadding,
    /// A payload type that was not negotiated.
    #[error("payload type {0} was not negotiated")]
    UnexpectedPayloadType(u8),
    /// An audio payload larger than [`MAX_PAYLOAD`].
    #[error("audio payload of {0} bytes is larger than {MAX_PAYLOAD}")]
    PayloadTooLarge(usize),
    /// The caller's output buffer cannot hold the packet (API misuse, not the peer's fault).
    #[error("output buffer of {have} bytes cannot hold a {need}-byte packet")]
    BufferTooSmall {
        /// Bytes the packet needs.
        need: usize,
        /// Bytes the buffer has.
        have: usize,
    },
}

/// A parsed RTP packet; the payload borrows the datagram (padding, CSRCs and extension removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Payload without padding.
    pub payload: &'a [u8],
}

/// Parses and validates one RTP datagram without allocating (RFC 3550 §5.1, A.1 header checks).
pub fn parse_packet(datagram: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    let len = datagram.len();
    let Some(fixed) = datagram.first_chunk::<HEADER_LEN>() else {
        return Err(RtpError::TooShort(len));
    };
    let b0 = fixed[0];
    let version = b0 >> 6;
    if version != RTP_VERSION {
        return Err(RtpError::BadVersion(version));
    }
    let csrc_count = usize::from(b0 & 0x0F);
    let mut offset = HEADER_LEN + 4 * csrc_count;
    if offset > len {
        return Err(RtpError::HeaderOverrun);
    }
    if b0 & 0x10 != 0 {
        let Some(&[_, _, hi, lo]) = datagram.get(offset..offset + 4) else {
            return Err(RtpError::HeaderOverrun);
        };
        offset += 4 + 4 * usize::from(u16::from_be_bytes([hi, lo]));
        if offset > len {
            return Err(RtpError::HeaderOverrun);
        }
    }
    let mut end = len;
    if b0 & 0x20 != 0 {
        let count = usize::from(datagram[len - 1]);
        if count == 0 || count > len - offset {
            return Err(RtpError::BadPadding);
        }
        end -= count;
    }
    // See the module docs: the fixed header only, CC and X cleared, never the wire's lists.
    let mut header = *fixed;
    header[0] &= 0xE0;
    let header = Header::unmarshal(&mut &header[..]).map_err(|_| RtpError::TooShort(len))?;
    Ok(RtpPacket {
        marker: header.marker,
        payload_type: header.payload_type,
        sequence: header.sequence_number,
        timestamp: header.timestamp,
        ssrc: header.ssrc,
        payload: &datagram[offset..end],
    })
}

/// What the sender needs to know about its stream; all values come from the caller (seeded RNG).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderConfig {
    /// Our SSRC.
    pub ssrc: u32,
    /// Audio payload type from the SDP answer.
    pub payload_type: u8,
    /// First sequence number (random, RFC 3550 §5.1).
    pub initial_sequence: u16,
    /// First timestamp (random, RFC 3550 §5.1).
    pub initial_timestamp: u32,
    /// Timestamp units per frame: 160 at 8 kHz and 20 ms.
    pub samples_per_frame: u32,
}

impl SenderConfig {
    /// A G.711 stream of 20 ms frames.
    pub fn new(ssrc: u32, codec: Codec, initial_sequence: u16, initial_timestamp: u32) -> Self {
        SenderConfig {
            ssrc,
            payload_type: codec.payload_type(),
            initial_sequence,
            initial_timestamp,
            samples_per_frame: FRAME_SAMPLES as u32,
        }
    }
}

/// Our outgoing RTP stream: sequence numbers, timestamps, marker bit, SR counters.
#[derive(Debug, Clone)]
pub struct RtpSender {
    config: SenderConfig,
    sequence: u16,
    timestamp: u32,
    marker_next: bool,
    packets: u64,
    octets: u64,
}

impl RtpSender {
    /// A stream whose first packet carries the marker bit (start of the first talkspurt).
    pub fn new(config: SenderConfig) -> Self {
        RtpSender {
            config,
            sequence: config.initial_sequence,
            timestamp: config.initial_timestamp,
            marker_next: true,
            packets: 0,
            octets: 0,
        }
    }

    /// Writes one audio frame as a complete RTP packet into `out` and returns its length; the
    /// timestamp then advances by one frame. `payload` is one frame of encoded audio.
    pub fn write_frame(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, RtpError> {
        let marker = self.marker_next;
        let n = self.write_packet(
            self.config.payload_type,
            marker,
            self.timestamp,
            payload,
            out,
        )?;
        self.marker_next = false;
        self.timestamp = self.timestamp.wrapping_add(self.config.samples_per_frame);
        Ok(n)
    }

    /// Writes any packet of this stream (same SSRC, next sequence number) with the caller's
    /// payload type, marker and timestamp; the audio timestamp does not move.
    ///
    /// For RFC 4733 events: take `event_ts = next_timestamp()` when the event starts, then on
    /// every tick `write_packet(te_pt, first, event_ts, &payload, out)` followed by
    /// `skip_frames(1)`, so audio resumes after the event at the real elapsed time. Call
    /// [`RtpSender::start_talkspurt`] before the first audio frame after the event.
    pub fn write_packet(
        &mut self,
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, RtpError> {
        let need = HEADER_LEN + payload.len();
        let have = out.len();
        let Some(out) = out.get_mut(..need) else {
            return Err(RtpError::BufferTooSmall { need, have });
        };
        // Empty CSRC and extension lists: `Vec::new` does not allocate.
        let header = Header {
            version: RTP_VERSION,
            marker,
            payload_type: payload_type & 0x7F,
            sequence_number: self.sequence,
            timestamp,
            ssrc: self.config.ssrc,
            ..Header::default()
        };
        let (head, body) = out.split_at_mut(HEADER_LEN);
        header
            .marshal_to(head)
            .map_err(|_| RtpError::BufferTooSmall { need, have })?;
        body.copy_from_slice(payload);
        self.sequence = self.sequence.wrapping_add(1);
        self.packets += 1;
        self.octets += payload.len() as u64;
        Ok(need)
    }

    /// Sets the marker bit on the next audio frame (a talkspurt starts after a silence gap).
    pub fn start_talkspurt(&mut self) {
        self.marker_next = true;
    }

    /// Advances the timestamp by `n` frames without sending, so the receiver sees the real time
    /// that passed (paused prompt, hold, an RFC 4733 event in progress).
    pub fn skip_frames(&mut self, n: u32) {
        let samples = n.wrapping_mul(self.config.samples_per_frame);
        self.timestamp = self.timestamp.wrapping_add(samples);
    }

    /// Timestamp the next audio frame will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.config.ssrc
    }

    /// Packets sent so far (RTCP SR sender's packet count, mod 2^32 on the wire).
    pub fn packets_sent(&self) -> u64 {
        self.packets
    }

    /// Payload octets sent so far (RTCP SR sender's octet count, mod 2^32 on the wire).
    pub fn octets_sent(&self) -> u64 {
        self.octets
    }
}

/// What the receiver accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// The negotiated G.711 codec; its silence byte fills gaps inside a frame.
    pub codec: Codec,
    /// Audio payload type (the codec's static type unless the SDP mapped another).
    pub audio_payload_type: u8,
    /// Negotiated `telephone-event/8000` payload type, if any.
    pub telephone_event_payload_type: Option<u8>,
    /// Playout delay in frames, clamped to `1..=MAX_DEPTH`.
    pub depth: u8,
    /// How long the current source must have been silent before another SSRC replaces it.
    pub source_switch_after: Duration,
}

impl ReceiverConfig {
    /// Defaults: the codec's static payload type, 40 ms of buffer, 100 ms before a source switch.
    pub fn new(codec: Codec, telephone_event_payload_type: Option<u8>) -> Self {
        ReceiverConfig {
            codec,
            audio_payload_type: codec.payload_type(),
            telephone_event_payload_type,
            depth: DEFAULT_DEPTH,
            source_switch_after: Duration::from_millis(100),
        }
    }
}

/// Header fields of an accepted packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpInfo {
    /// The packet's SSRC.
    pub ssrc: u32,
    /// Sequence number.
    pub sequence: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Marker bit.
    pub marker: bool,
    /// This packet started a new source (first packet, SSRC change or sequence restart): all
    /// per-source state, including any RFC 4733 event in progress, should be forgotten.
    pub new_source: bool,
}

/// What [`RtpReceiver::push`] did with a valid packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received<'a> {
    /// Audio stored for playout.
    Audio(RtpInfo),
    /// An RFC 4733 telephone-event packet: `payload` is for the DTMF decoder.
    Event {
        /// Header fields; `timestamp` is the event start.
        info: RtpInfo,
        /// The event payload (4 bytes per event block).
        payload: &'a [u8],
    },
    /// Already received: ignored.
    Duplicate,
    /// Out-of-order audio whose playout slot has passed (or, rarely, too far ahead to buffer):
    /// counted late and dropped.
    Late,
    /// A sequence number far from the expected one (RFC 3550 A.1); dropped unless the next
    /// packet follows it, which then restarts the sequence.
    SequenceJump,
    /// Another SSRC while the current source is still sending: dropped.
    ForeignSource {
        /// The stranger's SSRC.
        ssrc: u32,
    },
}

/// What the media clock gets on one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout<'a> {
    /// One 20 ms frame of encoded audio (160 bytes; gaps inside it are codec silence).
    Frame(&'a [u8]),
    /// The stream is flowing but this frame is lost, has not arrived in time, or falls in the
    /// peer's silence (up to [`IDLE_AFTER_TICKS`] ticks, then [`Playout::Idle`]).
    Missing,
    /// Nothing is playing: no packet yet, the buffer is filling, or the peer stopped sending.
    Idle,
}

/// Reception counters for the whole call (summed over sources) plus the current source's jitter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Valid packets received, audio and events, late ones included, duplicates not.
    pub received: u64,
    /// Payload octets of those packets.
    pub octets: u64,
    /// Cumulative lost: expected − received (RFC 3550 A.3), summed over sources. A packet that
    /// never came is lost once; one that came late is received (and counted in `late`).
    pub lost: i64,
    /// Audio packets dropped because their slot had already been played.
    pub late: u64,
    /// Duplicate packets ignored.
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number (and were not duplicates).
    pub reordered: u64,
    /// Ticks that yielded [`Playout::Missing`].
    pub missing_frames: u64,
    /// Times the playout re-anchored on a packet (fell behind, or timestamp jump).
    pub resyncs: u64,
    /// Frames dropped unplayed to cut latency or make room.
    pub dropped_frames: u64,
    /// Times the SSRC changed after the first.
    pub source_changes: u32,
    /// Interarrival jitter of the current source in timestamp units (RFC 3550 A.8).
    pub jitter: u32,
    /// Arrival of the last valid packet from the current source (RTP timeout detection).
    pub last_arrival: Option<Instant>,
    /// Current source.
    pub ssrc: Option<u32>,
}

impl ReceiverStats {
    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        f64::from(self.jitter) * 1000.0 / f64::from(crate::SAMPLE_RATE)
    }
}

/// Per-source sequence state (RFC 3550 A.1 with an extended sequence number). There is no
/// probation period: the call has one peer and its first packet matters (AMD listens to it).
#[derive(Debug, Clone, Copy)]
struct Source {
    ssrc: u32,
    max_seq: u16,
    /// Extended highest sequence number (cycles × 65536 + max_seq); may go below zero when the
    /// first packets arrive reordered.
    max_ext: i64,
    base_ext: i64,
    /// Bit i set: `max_ext - i` received.
    recent: u128,
    bad_seq: Option<u16>,
    received: u64,
    expected_prior: i64,
    received_prior: u64,
    /// RFC 3550 A.8 transit of the previous audio packet.
    transit: Option<u32>,
    /// Jitter × 16.
    jitter_q4: u32,
}

impl Source {
    fn new(ssrc: u32, seq: u16) -> Self {
        Source {
            ssrc,
            max_seq: seq,
            max_ext: i64::from(seq),
            base_ext: i64::from(seq),
            recent: 1,
            bad_seq: None,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter_q4: 0,
        }
    }

    fn expected(&self) -> i64 {
        self.max_ext - self.base_ext + 1
    }

    fn lost(&self) -> i64 {
        self.expected() - self.received as i64
    }
}

enum SeqClass {
    /// Newest packet so far (or the first of a restarted sequence).
    Newest,
    Reordered,
    Duplicate,
    Jump,
}

/// The peer's incoming stream: validation, statistics and a fixed playout ring.
#[derive(Debug, Clone)]
pub struct RtpReceiver {
    config: ReceiverConfig,
    silence: u8,
    depth: u8,
    source: Option<Source>,
    /// Arrival clock origin for the jitter computation.
    epoch: Option<Instant>,
    /// Lost packets of sources that ended.
    lost_before: i64,
    stats: ReceiverStats,
    // Playout.
    playing: bool,
    /// Timestamp of the frame the next pop plays.
    play_ts: u32,
    /// Ring slot of `play_ts`.
    head: usize,
    /// Samples written per slot (0 = empty).
    fill: [u8; BUFFER_FRAMES],
    /// Pops left that say Idle rather than Missing while a new stream fills the buffer.
    quiet: u8,
    empty_ticks: u16,
    window_min: u8,
    window_len: u16,
    ring: [u8; BUFFER_FRAMES * FRAME],
}

impl RtpReceiver {
    /// A receiver waiting for its first packet.
    pub fn new(config: ReceiverConfig) -> Self {
        RtpReceiver {
            config,
            silence: config.codec.silence(),
            depth: config.depth.clamp(1, MAX_DEPTH),
            source: None,
            epoch: None,
            lost_before: 0,
            stats: ReceiverStats::default(),
            playing: false,
            play_ts: 0,
            head: 0,
            fill: [0; BUFFER_FRAMES],
            quiet: 0,
            empty_ticks: 0,
            window_min: u8::MAX,
            window_len: 0,
            ring: [0; BUFFER_FRAMES * FRAME],
        }
    }

    /// Takes one datagram that arrived at `now`. Errors are packets to ignore (and perhaps
    /// count); the receiver's state is unchanged by them.
    pub fn push<'d>(&mut self, now: Instant, datagram: &'d [u8]) -> Result<Received<'d>, RtpError> {
        let packet = parse_packet(datagram)?;
        let is_event = self.config.telephone_event_payload_type == Some(packet.payload_type);
        if !is_event {
            if packet.payload_type != self.config.audio_payload_type {
                return Err(RtpError::UnexpectedPayloadType(packet.payload_type));
            }
            if packet.payload.len() > MAX_PAYLOAD {
                return Err(RtpError::PayloadTooLarge(packet.payload.len()));
            }
        }

        let mut new_source = match &self.source {
            None => true,
            Some(source) if source.ssrc == packet.ssrc => false,
            Some(source) => {
                let silent = self.stats.last_arrival.is_none_or(|last| {
                    now.saturating_duration_since(last) >= self.config.source_switch_after
                });
                if !silent {
                    tracing::trace!(
                        ssrc = packet.ssrc,
                        current = source.ssrc,
                        "rtp from foreign ssrc dropped"
                    );
                    return Ok(Received::ForeignSource { ssrc: packet.ssrc });
                }
                true
            }
        };
        if new_source {
            self.start_source(packet.ssrc, packet.sequence);
        }
        self.stats.last_arrival = Some(now);

        let class = self.classify(packet.sequence);
        let newest = match class {
            SeqClass::Duplicate => {
                self.stats.duplicates += 1;
                return Ok(Received::Duplicate);
            }
            SeqClass::Jump => {
                let Some(source) = self.source.as_mut() else {
                    return Ok(Received::SequenceJump);
                };
                if source.bad_seq == Some(packet.sequence) {
                    // Two packets in a row after the jump: the sender restarted its sequence.
                    tracing::debug!(ssrc = packet.ssrc, "rtp sequence restarted");
                    self.start_source(packet.ssrc, packet.sequence);
                    new_source = true;
                    true
                } else {
                    source.bad_seq = Some(packet.sequence.wrapping_add(1));
                    return Ok(Received::SequenceJump);
                }
            }
            SeqClass::Newest => true,
            SeqClass::Reordered => {
                self.stats.reordered += 1;
                false
            }
        };
        let Some(source) = self.source.as_mut() else {
            return Ok(Received::SequenceJump);
        };
        source.received += 1;
        self.stats.received += 1;
        self.stats.octets += packet.payload.len() as u64;
        let info = RtpInfo {
            ssrc: packet.ssrc,
            sequence: packet.sequence,
            timestamp: packet.timestamp,
            marker: packet.marker,
            new_source,
        };
        if is_event {
            // Event timestamps stay at the event start: no jitter sample, no playout.
            return Ok(Received::Event {
                info,
                payload: packet.payload,
            });
        }

        let epoch = *self.epoch.get_or_insert(now);
        let arrival = rtp_units(now.saturating_duration_since(epoch));
        let transit = arrival.wrapping_sub(packet.timestamp);
        if let Some(previous) = source.transit {
            let d = (transit.wrapping_sub(previous) as i32).unsigned_abs();
            // RFC 3550 A.8, integer form: J += (|D| - J) / 16, kept ×16.
            let j = source.jitter_q4;
            source.jitter_q4 = (j - (j.saturating_add(8) >> 4)).saturating_add(d);
        }
        source.transit = Some(transit);
        self.stats.jitter = source.jitter_q4 >> 4;

        if self.place(packet.timestamp, packet.payload, newest) {
            Ok(Received::Audio(info))
        } else {
            self.stats.late += 1;
            tracing::trace!(seq = packet.sequence, "late rtp packet dropped");
            Ok(Received::Late)
        }
    }

    /// The next 20 ms of audio; call exactly once per media clock tick.
    pub fn pop_frame(&mut self) -> Playout<'_> {
        if !self.playing {
            return Playout::Idle;
        }
        let slot = self.head;
        let had = self.fill[slot] > 0;
        self.advance(1);
        let quiet = self.quiet > 0;
        self.quiet = self.quiet.saturating_sub(1);

        let level = self.level();
        if had || level > 0 {
            self.empty_ticks = 0;
        } else {
            self.empty_ticks += 1;
            if self.empty_ticks >= IDLE_AFTER_TICKS {
                tracing::trace!("rtp playout idle");
                self.playing = false;
            }
        }
        if !quiet && self.playing {
            self.window_min = self.window_min.min(level);
            self.window_len += 1;
            if self.window_len >= TRIM_WINDOW {
                if self.window_min > self.depth {
                    self.drop_frames(1);
                }
                self.window_min = u8::MAX;
                self.window_len = 0;
            }
        }

        if had {
            Playout::Frame(&self.ring[slot * FRAME..(slot + 1) * FRAME])
        } else if quiet {
            Playout::Idle
        } else {
            self.stats.missing_frames += 1;
            Playout::Missing
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> ReceiverStats {
        let mut stats = self.stats;
        stats.lost = self.lost_before + self.source.as_ref().map_or(0, Source::lost);
        stats
    }

    /// The current source's SSRC.
    pub fn remote_ssrc(&self) -> Option<u32> {
        self.source.as_ref().map(|s| s.ssrc)
    }

    /// The RTCP report block about the current source (RFC 3550 §6.4.1, A.3), with LSR/DLSR
    /// zero for the caller to fill; `None` when nothing arrived since the last report. Starts a
    /// new reporting interval.
    pub fn take_report_block(&mut self) -> Option<ReportBlock> {
        let source = self.source.as_mut()?;
        let expected = source.expected();
        let expected_interval = expected - source.expected_prior;
        let received_interval = source.received - source.received_prior;
        source.expected_prior = expected;
        source.received_prior = source.received;
        if received_interval == 0 {
            return None;
        }
        let lost_interval = expected_interval - received_interval as i64;
        let fraction_lost = if expected_interval <= 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval).min(255) as u8
        };
        Some(ReportBlock {
            ssrc: source.ssrc,
            fraction_lost,
            cumulative_lost: source.lost().clamp(-0x80_0000, 0x7F_FFFF) as i32,
            highest_sequence: source.max_ext as u32,
            jitter: source.jitter_q4 >> 4,
            last_sr: 0,
            delay_since_last_sr: 0,
        })
    }

    /// Forgets the source and the buffer (e.g. after a re-INVITE); call-wide counters stay.
    pub fn reset(&mut self) {
        if let Some(source) = self.source.take() {
            self.lost_before += source.lost();
        }
        self.stats.ssrc = None;
        self.stats.jitter = 0;
        self.stop_playout();
    }

    fn start_source(&mut self, ssrc: u32, seq: u16) {
        let previous = self.source.map(|s| s.ssrc);
        self.reset();
        if previous.is_some_and(|p| p != ssrc) {
            self.stats.source_changes += 1;
            tracing::debug!(ssrc, previous = previous.unwrap_or(0), "rtp source changed");
        }
        self.source = Some(Source::new(ssrc, seq));
        self.stats.ssrc = Some(ssrc);
    }

    fn classify(&mut self, seq: u16) -> SeqClass {
        let Some(source) = self.source.as_mut() else {
            return SeqClass::Jump;
        };
        if source.received == 0 && source.max_seq == seq {
            return SeqClass::Newest;
        }
        let delta = i32::from(seq.wrapping_sub(source.max_seq) as i16);
        if delta == 0 {
            SeqClass::Duplicate
        } else if delta > 0 && delta < MAX_DROPOUT {
            source.recent = source.recent.checked_shl(delta as u32).unwrap_or(0) | 1;
            source.max_seq = seq;
            source.max_ext += i64::from(delta);
            source.bad_seq = None;
            SeqClass::Newest
        } else if delta < 0 && -delta <= MAX_MISORDER {
            let bit = 1u128 << (-delta);
            if source.recent & bit != 0 {
                return SeqClass::Duplicate;
            }
            source.recent |= bit;
            source.base_ext = source.base_ext.min(source.max_ext + i64::from(delta));
            SeqClass::Reordered
        } else {
            SeqClass::Jump
        }
    }

    /// Writes audio at its timestamp; false when it is late and dropped.
    fn place(&mut self, ts: u32, payload: &[u8], newest: bool) -> bool {
        let depth_samples = u32::from(self.depth) * FRAME as u32;
        if !self.playing {
            self.anchor(ts.wrapping_sub(depth_samples));
            self.playing = true;
            self.quiet = self.depth;
        }
        let len = payload.len() as i64;
        let mut offset = i64::from(ts.wrapping_sub(self.play_ts) as i32);
        if offset < 0 || offset + len > CAPACITY {
            if !newest {
                return false;
            }
            let excess = offset + len - CAPACITY;
            if offset >= 0 && excess <= CAPACITY - FRAME as i64 {
                // Ahead of the ring by less than its size: make room by dropping the oldest.
                let frames = (excess as usize).div_ceil(FRAME);
                self.drop_frames(frames);
                offset -= (frames * FRAME) as i64;
            } else {
                // Behind the playout point, or far ahead: start again `depth` frames out.
                self.stats.resyncs += 1;
                tracing::trace!(offset, "rtp playout re-anchored");
                self.anchor(ts.wrapping_sub(depth_samples));
                offset = i64::from(depth_samples);
            }
        }
        let mut at = offset as usize;
        let mut rest = payload;
        while !rest.is_empty() {
            let slot = (self.head + at / FRAME) % BUFFER_FRAMES;
            let within = at % FRAME;
            let n = (FRAME - within).min(rest.len());
            let frame = &mut self.ring[slot * FRAME..(slot + 1) * FRAME];
            if self.fill[slot] == 0 {
                frame.fill(self.silence);
            }
            frame[within..within + n].copy_from_slice(&rest[..n]);
            self.fill[slot] = self.fill[slot].saturating_add(n as u8);
            rest = &rest[n..];
            at += n;
        }
        true
    }

    /// Empties the ring and sets the playout point.
    fn anchor(&mut self, play_ts: u32) {
        self.fill = [0; BUFFER_FRAMES];
        self.head = 0;
        self.play_ts = play_ts;
        self.quiet = 0;
        self.empty_ticks = 0;
        self.window_min = u8::MAX;
        self.window_len = 0;
    }

    fn stop_playout(&mut self) {
        self.anchor(0);
        self.playing = false;
    }

    /// Moves the playout point `frames` frames on, discarding what they held.
    fn advance(&mut self, frames: usize) {
        for _ in 0..frames.min(BUFFER_FRAMES) {
            self.fill[self.head] = 0;
            self.head = (self.head + 1) % BUFFER_FRAMES;
        }
        self.play_ts = self
            .play_ts
            .wrapping_add((frames as u32).wrapping_mul(FRAME as u32));
    }

    fn drop_frames(&mut self, frames: usize) {
        let dropped = (0..frames.min(BUFFER_FRAMES))
            .filter(|i| self.fill[(self.head + i) % BUFFER_FRAMES] > 0)
            .count();
        self.stats.dropped_frames += dropped as u64;
        self.advance(frames);
    }

    /// Frames from the playout point to the last filled slot.
    fn level(&self) -> u8 {
        (0..BUFFER_FRAMES)
            .rev()
            .find(|i| self.fill[(self.head + i) % BUFFER_FRAMES] > 0)
            .map_or(0, |i| i as u8 + 1)
    }
}

/// A duration in 8 kHz timestamp units, modulo 2^32.
fn rtp_units(d: Duration) -> u32 {
    let rate = u64::from(crate::SAMPLE_RATE);
    (d.as_secs()
        .wrapping_mul(rate)
        .wrapping_add(u64::from(d.subsec_nanos()) * rate / 1_000_000_000)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const TE: u8 = 101;
    const MS20: Duration = Duration::from_millis(20);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn tx(seq: u16, ts: u32) -> RtpSender {
        RtpSender::new(SenderConfig::new(0x1234_5678, Codec::Pcmu, seq, ts))
    }

    fn rx() -> RtpReceiver {
        RtpReceiver::new(ReceiverConfig::new(Codec::Pcmu, Some(TE)))
    }

    /// A recognisable frame: its index in the first 4 bytes, then a fill byte.
    fn frame(i: u32) -> [u8; FRAME] {
        let mut f = [(i % 200) as u8 + 1; FRAME];
        f[..4].copy_from_slice(&i.to_be_bytes());
        f
    }

    /// Packet `i` of a 20 ms stream that started at `seq0`/`ts0`.
    fn packet(ssrc: u32, seq0: u16, ts0: u32, i: u32, out: &mut [u8]) -> usize {
        let mut s = RtpSender::new(SenderConfig::new(
            ssrc,
            Codec::Pcmu,
            seq0.wrapping_add(i as u16),
            ts0.wrapping_add(i * 160),
        ));
        s.write_frame(&frame(i), out).unwrap()
    }

    fn frame_index(p: Playout<'_>) -> Option<u32> {
        match p {
            Playout::Frame(f) => {
                assert_eq!(f.len(), FRAME);
                Some(u32::from_be_bytes([f[0], f[1], f[2], f[3]]))
            }
            _ => None,
        }
    }

    #[test]
    fn sender_writes_rfc3550_header() {
        let mut s = tx(0xFFFF, 0xFFFF_FFC0);
        let mut out = [0u8; 200];
        let n = s.write_frame(&[0xAB; 160], &mut out).unwrap();
        assert_eq!(n, 172);
        // V=2, no P/X/CC; marker + PT 0; seq; ts; ssrc.
        assert_eq!(
            out[..12],
            [
                0x80, 0x80, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC0, 0x12, 0x34, 0x56, 0x78
            ]
        );
        assert_eq!(out[12..172], [0xAB; 160]);
        // Second packet: no marker, seq and ts wrap.
        s.write_frame(&[0xAB; 160], &mut out).unwrap();
        assert_eq!(out[..8], [0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x60]);
        s.skip_frames(3);
        assert_eq!(s.next_timestamp(), 0x60 + 4 * 160);
        s.start_talkspurt();
        s.write_frame(&[0; 160], &mut out).unwrap();
        assert_eq!(out[1], 0x80);
        assert_eq!(
            u32::from_be_bytes(out[4..8].try_into().unwrap()),
            0x60 + 4 * 160
        );
        assert_eq!((s.packets_sent(), s.octets_sent()), (3, 480));
    }

    #[test]
    fn sender_event_packets_share_seq_not_timestamp() {
        let mut s = tx(100, 8000);
        let mut out = [0u8; 200];
        let event_ts = s.next_timestamp();
        for k in 0..3 {
            let n = s
                .write_packet(TE, k == 0, event_ts, &[1, 0x0A, 0, 100 + k], &mut out)
                .unwrap();
            s.skip_frames(1);
            let p = parse_packet(&out[..n]).unwrap();
            assert_eq!(
                (p.payload_type, p.marker, p.timestamp),
                (TE, k == 0, event_ts)
            );
            assert_eq!(p.sequence, 100 + u16::from(k));
            assert_eq!(p.payload, [1, 0x0A, 0, 100 + k]);
        }
        // Audio resumes at the real elapsed time, with the next sequence number.
        s.write_frame(&[0; 160], &mut out).unwrap();
        let p = parse_packet(&out[..172]).unwrap();
        assert_eq!((p.sequence, p.timestamp), (103, 8000 + 3 * 160));
        assert_eq!(s.packets_sent(), 4);
    }

    #[test]
    fn sender_refuses_small_buffer() {
        let mut s = tx(1, 1);
        let mut out = [0u8; 100];
        assert_eq!(
            s.write_frame(&[0; 160], &mut out),
            Err(RtpError::BufferTooSmall {
                need: 172,
                have: 100
            })
        );
        assert_eq!(
            (s.next_sequence(), s.next_timestamp(), s.packets_sent()),
            (1, 1, 0)
        );
    }

    /// Thousands of frames across the sequence wrap at 65535 and the timestamp wrap at 2^32,
    /// one packet per tick with a little arrival jitter: every frame comes out once, in order.
    #[test]
    fn round_trip_across_sequence_and_timestamp_wrap() {
        let mut s = tx(65_000, u32::MAX - 160 * 700);
        let mut r = rx();
        let t0 = Instant::now();
        let mut out = [0u8; 1500];
        let frames = 5000u32;
        let mut next = 0u32;
        let mut idle = 0;
        for i in 0..frames + 2 {
            if i < frames {
                let n = s.write_frame(&frame(i), &mut out).unwrap();
                let wobble = ms(u64::from(i * 7 % 5)); // 0–4 ms, within one tick
                let got = r.push(t0 + MS20 * i + wobble, &out[..n]).unwrap();
                assert!(
                    matches!(got, Received::Audio(info) if info.new_source == (i == 0)),
                    "{got:?}"
                );
            }
            match frame_index(r.pop_frame()) {
                Some(k) => {
                    assert_eq!(k, next);
                    next += 1;
                }
                None => idle += 1,
            }
        }
        assert_eq!(next, frames);
        assert_eq!(idle, 2, "exactly `depth` ticks of initial delay");
        let st = r.stats();
        assert_eq!(
            (st.received, st.lost, st.late, st.duplicates, st.reordered),
            (5000, 0, 0, 0, 0)
        );
        assert_eq!(
            (st.missing_frames, st.resyncs, st.dropped_frames),
            (0, 0, 0)
        );
        assert!(st.jitter > 0 && st.jitter < 40, "jitter {}", st.jitter);
        let block = r.take_report_block().unwrap();
        // 65000 + 4999 = 69999 = one cycle + 4463.
        assert_eq!(block.highest_sequence, 0x0001_0000 + 4463);
        assert_eq!((block.cumulative_lost, block.fraction_lost), (0, 0));
        // The stream stops: Missing while it could still be a gap, then Idle.
        let tail: String = (0..40)
            .map(|_| match r.pop_frame() {
                Playout::Frame(_) => 'F',
                Playout::Missing => 'M',
                Playout::Idle => 'I',
            })
            .collect();
        assert_eq!(
            tail,
            "M".repeat(IDLE_AFTER_TICKS.into()) + &"I".repeat(40 - usize::from(IDLE_AFTER_TICKS))
        );
    }

    /// Feeds packets in `order` (one per tick) and returns what each tick played.
    fn run(r: &mut RtpReceiver, order: &[u32]) -> Vec<Option<u32>> {
        let t0 = Instant::now();
        let mut out = [0u8; 200];
        order
            .iter()
            .enumerate()
            .map(|(tick, &i)| {
                let n = packet(7, 1000, 50_000, i, &mut out);
                r.push(t0 + MS20 * tick as u32, &out[..n]).unwrap();
                frame_index(r.pop_frame())
            })
            .collect()
    }

    #[test]
    fn reorder_within_depth_is_delivered_in_order() {
        let mut r = rx();
        let played = run(&mut r, &[0, 1, 3, 2, 4, 6, 5, 7, 8, 9, 10, 11]);
        let expect: Vec<_> = [None, None].into_iter().chain((0..10).map(Some)).collect();
        assert_eq!(played, expect);
        let st = r.stats();
        assert_eq!(
            (st.reordered, st.lost, st.late, st.missing_frames),
            (2, 0, 0, 0)
        );
    }

    #[test]
    fn loss_is_counted_once() {
        let mut r = rx();
        let order: Vec<u32> = (0..30).filter(|&i| i != 10).collect();
        let played = run(&mut r, &order);
        assert_eq!(played[12], None, "frame 10's slot");
        assert_eq!(played[13], Some(11));
        let st = r.stats();
        assert_eq!((st.lost, st.missing_frames, st.late), (1, 1, 0));
        let block = r.take_report_block().unwrap();
        assert_eq!(block.cumulative_lost, 1);
        assert_eq!(block.fraction_lost, (256 / 30) as u8); // 1 of 30 expected
        // Nothing new: no block, and the loss is not reported again as new.
        assert!(r.take_report_block().is_none());
        assert_eq!(r.stats().lost, 1);
    }

    #[test]
    fn late_packet_is_counted_late_and_dropped() {
        let mut r = rx();
        let t0 = Instant::now();
        let mut out = [0u8; 200];
        let mut played = Vec::new();
        for tick in 0..20u32 {
            if tick != 10 {
                let n = packet(7, 1000, 50_000, tick, &mut out);
                r.push(t0 + MS20 * tick, &out[..n]).unwrap();
            }
            if tick == 15 {
                // Packet 10 shows up after its slot (tick 12) was played.
                let n = packet(7, 1000, 50_000, 10, &mut out);
                assert_eq!(r.push(t0 + MS20 * tick, &out[..n]), Ok(Received::Late));
            }
            played.push(frame_index(r.pop_frame()));
        }
        assert_eq!(played[12], None);
        assert_eq!(played[2..12], (0..10).map(Some).collect::<Vec<_>>());
        assert_eq!(played[13..], (11..18).map(Some).collect::<Vec<_>>());
        let st = r.stats();
        assert_eq!(
            (
                st.late,
                st.lost,
                st.reordered,
                st.missing_frames,
                st.resyncs
            ),
            (1, 0, 1, 1, 0)
        );
    }

    #[test]
    fn duplicates_are_ignored() {
        let mut r = rx();
        let t0 = Instant::now();
        let mut out = [0u8; 200];
        let mut played = Vec::new();
        for tick in 0..20u32 {
            let n = packet(7, 65_530, 50_000, tick, &mut out);
            assert!(matches!(
                r.push(t0 + MS20 * tick, &out[..n]),
                Ok(Received::Audio(_))
            ));
            assert_eq!(r.push(t0 + MS20 * tick, &out[..n]), Ok(Received::Duplicate));
            if tick >= 5 {
                // An old one again, across the sequence wrap.
                let n = packet(7, 65_530, 50_000, tick - 5, &mut out);
                assert_eq!(r.push(t0 + MS20 * tick, &out[..n]), Ok(Received::Duplicate));
            }
            played.push(frame_index(r.pop_frame()));
        }
        assert_eq!(played[2..], (0..18).map(Some).collect::<Vec<_>>());
        let st = r.stats();
        assert_eq!(
            (st.received, st.duplicates, st.lost, st.reordered),
            (20, 35, 0, 0)
        );
    }

    #[test]
    fn ssrc_change_after_silence_resets_the_stream() {
        let mut r = rx();
        let t0 = Instant::now();
        let mut out = [0u8; 200];
        for tick in 0..10u32 {
            let n = packet(0xA, 100, 0, tick, &mut out);
            r.push(t0 + MS20 * tick, &out[..n]).unwrap();
            let _ = r.pop_frame();
        }
        // B starts while A is still sending: dropped.
        let n = packet(0xB, 5000, 777_000, 0, &mut out);
        assert_eq!(
            r.push(t0 + MS20 * 10, &out[..n]),
            Ok(Received::ForeignSource { ssrc: 0xB })
        );
        // A goes quiet; 100 ms later B takes over.
        let later = t0 + MS20 * 9 + ms(100);
        let got = r.push(later, &out[..n]).unwrap();
        assert_eq!(
            got,
            Received::Audio(RtpInfo {
                ssrc: 0xB,
                sequence: 5000,
                timestamp: 777_000,
                marker: true,
                new_source: true
            })
        );
        // A's leftovers are gone; B plays after the initial delay.
        assert_eq!(r.pop_frame(), Playout::Idle);
        assert_eq!(r.pop_frame(), Playout::Idle);
        assert_eq!(frame_index(r.pop_frame()), Some(0));
        // A again, while B is sending: dropped.
        let n = packet(0xA, 100, 0, 10, &mut out);
        assert_eq!(
            r.push(later + ms(10), &out[..n]),
            Ok(Received::ForeignSource { ssrc: 0xA })
        );
        let st = r.stats();
        assert_eq!(
            (st.ssrc, st.source_changes, st.received, st.lost),
            (Some(0xB), 1, 11, 0)
        );
    }

    /// RFC 3550 A.8 by hand: arrivals 0, 20, 45, 60, 80 ms for timestamps 0, 160, 320, 480, 640.
    /// Transit (units): 0, 0, 40, 0, 0; |D|: 0, 40, 40, 0. Integer J×16: 0 → 0 → 40 →
    /// 40+40−3 = 77 → 77+0−5 = 72; reported J = 72 >> 4 = 4 units = 0.5 ms.
    /// (Floating point: 0, 2.5, 4.84, 4.54.)
    #[test]
    fn interarrival_jitter_matches_hand_computation() {
        let mut r = rx();
        let t0 = Instant::now();
        let mut out = [0u8; 200];
        for (i, arrival) in [0u64, 20, 45, 60, 80].into_iter().enumerate() {
            let n = packet(1, 0, 0, i as u32, &mut out);
            r.push(t0 + ms(arrival), &out[..n]).unwrap();
        }
        let st = r.stats();
        assert_eq!(st.jitter, 4);
        assert_eq!(st.jitter_ms(), 0.5);
        assert_eq!(r.take_report_block().unwrap().jitter, 4);
    }

    #[test]
    fn telephone_events_go_to_the_caller_not_the_buffer() {
        let mut r = rx();
        let t0 = Instant::now();
        let mut s = tx(10, 1000);
        let mut out = [0u8; 200];
        let n = s.write_frame(&frame(0), &mut out).unwrap();
        r.push(t0, &out[..n]).unwrap();
        let n = s
            .write_packet(TE, true, 1160, &[5, 0x8A, 0x03, 0x20], &mut out)
            .unwrap();
        let got = r.push(t0 + MS20, &out[..n]).unwrap();
        assert_eq!(
            got,
            Received::Event {
                info: RtpInfo {
                    ssrc: 0x1234_5678,
                    sequence: 11,
                    timestamp: 1160,
                    marker: true,
                    new_source: false
                },
                payload: &[5, 0x8A, 0x03, 0x20],
            }
        );
        assert_eq!(r.push(t0 + MS20, &out[..n]), Ok(Received::Duplicate));
        let st = r.stats();
        assert_eq!((st.received, st.lost, st.jitter), (2, 0, 0));
    }

    /// 30 ms packets (SIPp's g711a.pcap) come out as contiguous 20 ms frames.
    #[test]
    fn thirty_ms_packets_play_as_twenty_ms_frames() {
        let mut r = rx();
        let t0 = Instant::now();
        let mut out = [0u8; 400];
        let sample = |k: usize| (k % 253) as u8;
        let mut played = Vec::new();
        let mut sent = 0u32;
        for tick in 0..60u32 {
            let now = t0 + MS20 * tick;
            // Packet p is due at 30 ms × p.
            while Duration::from_millis(30) * sent <= now - t0 && sent < 30 {
                let payload: Vec<u8> = (0..240).map(|j| sample(sent as usize * 240 + j)).collect();
                let mut s =
                    RtpSender::new(SenderConfig::new(9, Codec::Pcmu, sent as u16, sent * 240));
                let n = s.write_frame(&payload, &mut out).unwrap();
                assert!(matches!(r.push(now, &out[..n]), Ok(Received::Audio(_))));
                sent += 1;
            }
            if let Playout::Frame(f) = r.pop_frame() {
                played.extend_from_slice(f);
            }
        }
        assert_eq!(played.len(), 30 * 240);
        assert!(played.iter().enumerate().all(|(k, &b)| b == sample(k)));
        // 60 ticks: 2 of initial delay, 45 frames, then 13 after the last packet.
        assert_eq!(r.stats().missing_frames, 13);
    }

    /// Silence suppression: the timestamp jumps, the sequence does not; the gap is kept as long
    /// as it was and nothing is lost.
    #[test]
    fn silence_gap_keeps_its_length() {
        let mut r = rx();
        let t0 = Instant::now();
        let mut s = tx(0, 0);
        let mut out = [0u8; 200];
        let mut played = Vec::new();
        for tick in 0..40u32 {
            let talking = !(10..20).contains(&tick);
            if talking {
                if tick == 20 {
                    s.start_talkspurt();
                }
                let n = s.write_frame(&frame(tick), &mut out).unwrap();
                r.push(t0 + MS20 * tick, &out[..n]).unwrap();
            } else {
                s.skip_frames(1);
            }
            played.push(frame_index(r.pop_frame()));
        }
        let expect: Vec<_> = (0..38)
            .map(|k| (!(10..20).contains(&k)).then_some(k))
            .collect();
        assert_eq!(played[2..], expect);
        let st = r.stats();
        assert_eq!((st.lost, st.missing_frames, st.resyncs), (0, 10, 0));
    }

    /// A sender whose clock runs 1% fast must not grow the delay without bound, and one 1% slow
    /// must not starve the stream: frames keep coming and the buffer stays near `depth`.
    #[test]
    fn clock_drift_is_absorbed() {
        for (period_us, label) in [(19_800u64, "fast"), (20_200, "slow")] {
            let mut r = rx();
            let t0 = Instant::now();
            let mut out = [0u8; 200];
            let (mut sent, mut frames, mut level_max) = (0u32, 0u32, 0u8);
            for tick in 0..3000u32 {
                let now = Duration::from_millis(20) * tick;
                while Duration::from_micros(period_us) * sent <= now {
                    let n = packet(3, 0, 0, sent, &mut out);
                    r.push(t0 + now, &out[..n]).unwrap();
                    sent += 1;
                }
                if tick > 100 {
                    level_max = level_max.max(r.level());
                }
                if frame_index(r.pop_frame()).is_some() {
                    frames += 1;
                }
            }
            let st = r.stats();
            println!("{label}: sent {sent} played {frames} level_max {level_max} {st:?}");
            assert!(level_max <= DEFAULT_DEPTH + 2, "{label}: level {level_max}");
            assert!(frames > sent - 60, "{label}: {frames} frames of {sent}");
            assert!(frames <= sent);
            assert_eq!(st.lost, 0, "{label}");
        }
    }

    #[test]
    fn parse_handles_csrc_extension_and_padding() {
        let mut d = vec![0xB2, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        d.extend_from_slice(&[0xC1; 8]); // 2 CSRCs
        d.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0xFF, 0, 0]); // one-byte extension, 1 word
        d.extend_from_slice(&[7; 160]);
        d.extend_from_slice(&[0, 0, 3]); // 3 bytes of padding
        let p = parse_packet(&d).unwrap();
        assert_eq!((p.sequence, p.timestamp, p.ssrc), (1, 2, 3));
        assert_eq!(p.payload, &[7; 160][..]);
        // Extension element lengths that lie (the case that panics inside rtp 0.17) are skipped.
        let mut e = vec![
            0x90, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xBE, 0xDE, 0, 1, 0x1F, 0, 0, 0,
        ];
        assert_eq!(parse_packet(&e).unwrap().payload, &[] as &[u8]);
        e[14] = 0xFF;
        assert_eq!(parse_packet(&e), Err(RtpError::HeaderOverrun));
    }

    #[test]
    fn bad_datagrams_are_errors() {
        let mut r = rx();
        let now = Instant::now();
        let mut good = [0u8; 200];
        let n = packet(1, 0, 0, 0, &mut good);
        let good = &good[..n];
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut d = good.to_vec();
            f(&mut d);
            d
        };
        assert_eq!(r.push(now, &[]), Err(RtpError::TooShort(0)));
        assert_eq!(r.push(now, &good[..11]), Err(RtpError::TooShort(11)));
        assert_eq!(
            r.push(now, &with(&|d| d[0] = 0x40)),
            Err(RtpError::BadVersion(1))
        );
        assert_eq!(
            r.push(
                now,
                &with(&|d| {
                    d[0] = 0x8F;
                    d.truncate(71)
                })
            ),
            Err(RtpError::HeaderOverrun)
        );
        assert_eq!(
            r.push(
                now,
                &with(&|d| {
                    d[0] = 0x90;
                    d.truncate(14)
                })
            ),
            Err(RtpError::HeaderOverrun)
        );
        assert_eq!(
            r.push(
                now,
                &with(&|d| {
                    d[0] = 0x90;
                    d[14] = 0xFF
                })
            ),
            Err(RtpError::HeaderOverrun)
        );
        assert_eq!(
            r.push(
                now,
                &with(&|d| {
                    d[0] = 0xA0;
                    d[n - 1] = 0
                })
            ),
            Err(RtpError::BadPadding)
        );
        assert_eq!(
            r.push(
                now,
                &with(&|d| {
                    d[0] = 0xA0;
                    d[n - 1] = 161
                })
            ),
            Err(RtpError::BadPadding)
        );
        assert_eq!(
            r.push(now, &with(&|d| d[1] = 8)),
            Err(RtpError::UnexpectedPayloadType(8))
        );
        assert_eq!(
            r.push(now, &with(&|d| d.resize(12 + 481, 0xFF))),
            Err(RtpError::PayloadTooLarge(481))
        );
        // None of them touched the stream.
        assert_eq!(r.stats(), ReceiverStats::default());
        assert_eq!(r.pop_frame(), Playout::Idle);
        // Padding that eats the whole payload is legal.
        assert!(matches!(
            r.push(
                now,
                &with(&|d| {
                    d[0] = 0xA0;
                    d[n - 1] = 160
                })
            ),
            Ok(Received::Audio(_))
        ));
    }

    /// Thousands of mutated and random datagrams: never a panic, counters stay consistent, and
    /// the receiver still plays a good stream afterwards.
    #[test]
    fn fuzzed_datagrams_never_panic() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut r = rx();
        let t0 = Instant::now();
        let mut out = [0u8; 600];
        let mut accepted = 0u64;
        for round in 0..20_000u32 {
            let mut d = [0u8; 600];
            let mut len = packet(1, 0, 0, round % 300, &mut d);
            match rand() % 8 {
                0 => {
                    // Pure noise.
                    len = (rand() % 600) as usize;
                    for b in &mut d[..len] {
                        *b = rand() as u8;
                    }
                }
                1 => len = (rand() % len as u64) as usize,
                2 => len = (rand() % 600) as usize,
                _ => {
                    for _ in 0..1 + rand() % 4 {
                        let at = (rand() % len as u64) as usize;
                        d[at] ^= 1 << (rand() % 8);
                    }
                    if rand() % 2 == 0 {
                        d[0] = 0x80 | (rand() as u8 & 0x3F);
                    }
                }
            }
            if r.push(t0 + ms(u64::from(round)), &d[..len]).is_ok() {
                accepted += 1;
            }
            if round % 3 == 0 {
                let _ = r.pop_frame();
            }
            let st = r.stats();
            assert!(st.received + st.duplicates <= accepted);
        }
        assert!(
            accepted > 1000,
            "mutations should leave many packets valid: {accepted}"
        );
        // A clean stream from a new source still plays.
        let later = t0 + Duration::from_secs(60);
        let played: Vec<_> = (0..10u32)
            .filter_map(|i| {
                let n = packet(0xC1EA, 0, 0, i, &mut out);
                r.push(later + MS20 * i, &out[..n]).unwrap();
                frame_index(r.pop_frame())
            })
            .collect();
        assert_eq!(played, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn sequence_restart_after_jump() {
        let mut r = rx();
        let t0 = Instant::now();
        let mut out = [0u8; 200];
        for i in 0..5u32 {
            let n = packet(1, 100, 0, i, &mut out);
            r.push(t0 + MS20 * i, &out[..n]).unwrap();
        }
        // Jump by 20000: dropped until the next one confirms it.
        let n = packet(1, 20_000, 0, 5, &mut out);
        assert_eq!(r.push(t0 + MS20 * 5, &out[..n]), Ok(Received::SequenceJump));
        let n = packet(1, 20_000, 0, 6, &mut out);
        assert!(
            matches!(r.push(t0 + MS20 * 6, &out[..n]), Ok(Received::Audio(info)) if info.new_source)
        );
        let st = r.stats();
        assert_eq!((st.received, st.lost, st.source_changes), (6, 0, 0));
    }

    #[test]
    fn per_call_state_is_small() {
        let rx = std::mem::size_of::<RtpReceiver>();
        let tx = std::mem::size_of::<RtpSender>();
        let rtcp = std::mem::size_of::<crate::rtcp::RtcpSession>();
        println!("size_of RtpReceiver {rx}, RtpSender {tx}, RtcpSession {rtcp}");
        assert!(rx + tx + rtcp <= 2048, "{rx} + {tx} + {rtcp}");
    }
}
