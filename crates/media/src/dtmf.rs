//! DTMF digits over RTP (RFC 4733 `telephone-event`) and the per-call digit stream.
//!
//! This module owns:
//! - [`Digit`]: one key of the 16-key pad (RFC 4733 events 0–15);
//! - [`TelephoneEvent`]: the 4-byte RFC 4733 §2.3 payload, encoded and decoded;
//! - [`DtmfReceiver`]: turns the telephone-event packets of one call into key presses, each
//!   reported once with its duration and its starting RTP timestamp;
//! - [`DtmfSender`]: the packet sequence for sending one digit to an IVR on the far side;
//! - [`DigitCollector`]: merges the three sources of digits of one call (RFC 4733, in-band tones
//!   from [`crate::goertzel`], SIP INFO from the SIP layer) into one stream, each key press once.
//!
//! Nothing here reads a clock, allocates or logs a digit value (digits can be PINs); all state is
//! a few dozen bytes per call.
//!
//! # How the engine drives it
//! ```
//! # use std::time::{Duration, Instant};
//! # use media::dtmf::*;
//! let mut rx = DtmfReceiver::new(ReceiverConfig::default());
//! let mut collector = DigitCollector::new(DigitCollector::DEFAULT_WINDOW);
//! let now = Instant::now(); // the engine's media clock; never read here
//! // A packet with the negotiated telephone-event payload type arrived:
//! let payload = TelephoneEvent { event: 5, end: true, volume: 10, duration: 800 }.encode();
//! rx.handle_packet(1_000, true, 7, &payload).expect("4-byte payload");
//! // Each audio packet's RTP timestamp closes events whose end packets were all lost:
//! rx.handle_timeout(1_000 + 8_000);
//! while let Some(d) = rx.poll_digit() {
//!     let started = now - Duration::from_millis(u64::from(d.elapsed_ms));
//!     if let Some(digit) = collector.push(DigitSource::Rfc4733, d.digit, started) {
//!         assert_eq!(digit.as_char(), '5'); // hand it to the call's script
//!     }
//! }
//! ```
//! Sending: one [`DtmfSender`] per digit, advanced once per 20 ms media tick; every packet of one
//! digit carries the same RTP timestamp (the tick the digit started at), the RTP sender gives
//! each its own sequence number.

use std::fmt;
use std::time::{Duration, Instant};

use crate::{FRAME_SAMPLES, SAMPLE_RATE};

/// Key characters in RFC 4733 event-code order.
const DIGIT_CHARS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

/// One DTMF key: RFC 4733 §3.2 events 0–15 (`0`–`9`, `*`, `#`, `A`–`D`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digit(u8);

impl Digit {
    /// All sixteen keys in event-code order.
    pub const ALL: [Digit; 16] = {
        let mut all = [Digit(0); 16];
        let mut i = 0;
        while i < 16 {
            all[i] = Digit(i as u8);
            i += 1;
        }
        all
    };

    /// The key of an RFC 4733 event code; `None` for the non-DTMF events (16 and above).
    pub const fn from_event(code: u8) -> Option<Digit> {
        if code < 16 { Some(Digit(code)) } else { None }
    }

    /// The key of a character (`a`–`d` accepted in lower case).
    pub fn from_char(c: char) -> Option<Digit> {
        let c = c.to_ascii_uppercase();
        DIGIT_CHARS
            .iter()
            .position(|&k| k == c)
            .map(|i| Digit(i as u8))
    }

    /// The RFC 4733 event code.
    pub const fn event(self) -> u8 {
        self.0
    }

    /// The key as a character: `0`–`9`, `*`, `#`, `A`–`D`.
    pub const fn as_char(self) -> char {
        DIGIT_CHARS[self.0 as usize]
    }

    /// Row (low group) and column (high group) frequencies in Hz (ITU-T Q.23).
    pub const fn frequencies(self) -> (u16, u16) {
        let (row, col) = self.position();
        (ROW_HZ[row], COL_HZ[col])
    }

    /// Row and column on the keypad, each 0–3.
    pub(crate) const fn position(self) -> (usize, usize) {
        match self.0 {
            0 => (3, 1),
            1..=9 => (((self.0 - 1) / 3) as usize, ((self.0 - 1) % 3) as usize),
            10 => (3, 0),
            11 => (3, 2),
            _ => ((self.0 - 12) as usize, 3),
        }
    }

    /// The key at a keypad row and column (each 0–3).
    pub(crate) const fn at(row: usize, col: usize) -> Digit {
        Digit(KEYPAD[row & 3][col & 3])
    }
}

/// Low-group (row) frequencies, Hz.
pub(crate) const ROW_HZ: [u16; 4] = [697, 770, 852, 941];
/// High-group (column) frequencies, Hz.
pub(crate) const COL_HZ: [u16; 4] = [1209, 1336, 1477, 1633];
/// Event codes by keypad row and column.
const KEYPAD: [[u8; 4]; 4] = [[1, 2, 3, 12], [4, 5, 6, 13], [7, 8, 9, 14], [10, 0, 11, 15]];

impl fmt::Display for Digit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

/// A telephone-event payload that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// Fewer than the 4 bytes of one event.
    #[error("telephone-event payload of {0} bytes, need 4")]
    TooShort(usize),
}

/// The RFC 4733 §2.3 payload: event, E bit, volume, duration.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// |     event     |E|R| volume    |          duration             |
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0–15 are DTMF keys).
    pub event: u8,
    /// E bit: the final packet(s) of the event.
    pub end: bool,
    /// Power level, 0–63, in −dBm0 (only the low 6 bits are encoded).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units, from the packet's RTP timestamp.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Bytes of one event.
    pub const LEN: usize = 4;

    /// Decode the first event of a payload; bytes after it are ignored (the R bit too).
    pub fn decode(payload: &[u8]) -> Result<TelephoneEvent, PayloadError> {
        match *payload {
            [event, flags, d0, d1, ..] => Ok(TelephoneEvent {
                event,
                end: flags & 0x80 != 0,
                volume: flags & 0x3F,
                duration: u16::from_be_bytes([d0, d1]),
            }),
            _ => Err(PayloadError::TooShort(payload.len())),
        }
    }

    /// The 4-byte payload (R bit zero).
    pub fn encode(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// Receive
// ---------------------------------------------------------------------------------------------

/// Settings of a [`DtmfReceiver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// RTP clock rate of the negotiated `telephone-event` (8000 for `telephone-event/8000`).
    pub clock_rate: u32,
    /// An event whose end packets are all lost is closed when the RTP time passed to
    /// [`DtmfReceiver::handle_timeout`] is this far past the last duration heard.
    pub end_timeout: Duration,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            clock_rate: SAMPLE_RATE,
            // Senders update every 50 ms at most (RFC 4733 §2.5.1.2); five missed updates
            // is an end that was lost, not a late packet.
            end_timeout: Duration::from_millis(250),
        }
    }
}

/// How a received event was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// By its E-bit packet.
    End,
    /// Its end was lost; a later event started.
    NextEvent,
    /// Its end was lost; the RTP time ran past [`ReceiverConfig::end_timeout`].
    Timeout,
}

/// One key press received as RFC 4733 events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedDigit {
    /// The key.
    pub digit: Digit,
    /// RTP timestamp of the event's start (of its first segment for long events).
    pub rtp_timestamp: u32,
    /// Duration of the key press, all segments, in milliseconds.
    pub duration_ms: u32,
    /// Estimated time from the event's start to the packet (or timeout) that closed it: the
    /// key was pressed `elapsed_ms` before the caller's `now`.
    pub elapsed_ms: u32,
    /// What closed it.
    pub closed: Closed,
}

/// Counters of a [`DtmfReceiver`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Packets handed to [`DtmfReceiver::handle_packet`].
    pub packets: u64,
    /// Payloads shorter than 4 bytes.
    pub malformed: u64,
    /// Events other than the 16 keys (flash, tones, …).
    pub non_dtmf: u64,
    /// Redundant end packets, repeats, and late packets of closed or superseded events.
    pub duplicates: u64,
    /// Events closed without an end packet ([`Closed::NextEvent`] or [`Closed::Timeout`]).
    pub lost_ends: u64,
}

/// Largest duration of one segment (RFC 4733 §2.5.1.3).
const SEGMENT_MAX: u32 = 0xFFFF;
/// A new segment starts at most this far (RTP units) before the previous one would reach
/// [`SEGMENT_MAX`]: senders cut segments at a multiple of their packet interval.
const SEGMENT_SLACK: u32 = 2_000;
/// A packet up to this far (seconds of RTP time) older than the newest event is late; further
/// back, the sender has restarted its timestamps and it is a new event.
const STALE_SECONDS: u32 = 10;
/// Closed events remembered to drop their late and redundant packets.
const CLOSED_MEMORY: usize = 4;

/// The event being received.
#[derive(Debug, Clone, Copy)]
struct Current {
    event: u8,
    /// Timestamp of the first segment (the key press).
    start_ts: u32,
    /// Timestamp of the current segment.
    seg_ts: u32,
    /// Duration of earlier segments and 16-bit wraps, RTP units.
    base: u32,
    /// Highest duration heard in the current segment.
    seg_dur: u16,
    /// An E packet at [`SEGMENT_MAX`] was seen: the report waits for a next segment or timeout.
    end_held: bool,
}

/// RFC 4733 receiver for one call: fed every packet of the negotiated telephone-event payload
/// type, it reports each key press once, at its end.
///
/// Handled: start (marker), updates, the redundant end packets, duplicates and reordering
/// (durations only grow; packets of closed events are dropped), a lost start (the first packet
/// heard, even an end packet, starts the event: its RTP timestamp is the key press), a lost end
/// (closed by the next event or by [`handle_timeout`](Self::handle_timeout)), and long presses:
/// segmented events (§2.5.1.3, a new timestamp at previous + previous duration) and senders that
/// let the 16-bit duration wrap.
#[derive(Debug, Clone)]
pub struct DtmfReceiver {
    config: ReceiverConfig,
    timeout_units: u32,
    current: Option<Current>,
    /// (segment timestamp, event) of recently closed events and segments.
    closed: [Option<(u32, u8)>; CLOSED_MEMORY],
    closed_next: usize,
    /// Start timestamp of the newest event heard.
    newest_ts: Option<u32>,
    out: [Option<ReceivedDigit>; 2],
    stats: ReceiverStats,
}

impl DtmfReceiver {
    /// A receiver with nothing heard yet.
    pub fn new(config: ReceiverConfig) -> DtmfReceiver {
        let timeout_units =
            u64::from(config.clock_rate) * config.end_timeout.as_millis() as u64 / 1000;
        DtmfReceiver {
            config,
            timeout_units: timeout_units.min(u64::from(u32::MAX / 4)) as u32,
            current: None,
            closed: [None; CLOSED_MEMORY],
            closed_next: 0,
            newest_ts: None,
            out: [None; 2],
            stats: ReceiverStats::default(),
        }
    }

    /// Forget every event (the sender's SSRC changed).
    pub fn reset(&mut self) {
        *self = DtmfReceiver {
            stats: self.stats,
            ..DtmfReceiver::new(self.config)
        };
    }

    /// Counters since creation.
    pub fn stats(&self) -> ReceiverStats {
        self.stats
    }

    /// Handle one telephone-event packet: its RTP timestamp, marker bit, sequence number and
    /// payload. A payload that cannot be decoded is counted and returned as an error; nothing
    /// else changes. Drain [`poll_digit`](Self::poll_digit) afterwards (one packet can close
    /// two events: the previous one whose end was lost, and itself).
    ///
    /// Events are told apart by RTP timestamp and ordered by duration, which is what RFC 4733
    /// guarantees; `seq` only goes to the trace log (the RTP layer owns loss accounting).
    pub fn handle_packet(
        &mut self,
        rtp_timestamp: u32,
        marker: bool,
        seq: u16,
        payload: &[u8],
    ) -> Result<(), PayloadError> {
        self.stats.packets += 1;
        let ev = match TelephoneEvent::decode(payload) {
            Ok(ev) => ev,
            Err(e) => {
                self.stats.malformed += 1;
                return Err(e);
            }
        };
        tracing::trace!(
            rtp_timestamp,
            marker,
            seq,
            end = ev.end,
            duration = ev.duration,
            "telephone-event"
        );
        if Digit::from_event(ev.event).is_none() {
            self.stats.non_dtmf += 1;
            return Ok(());
        }
        if self.was_closed(rtp_timestamp, ev.event) {
            self.stats.duplicates += 1;
            return Ok(());
        }
        // The RTP time at which the sender sent this packet.
        let sent_at = rtp_timestamp.wrapping_add(u32::from(ev.duration));
        let Some(mut cur) = self.current else {
            if self.is_stale(rtp_timestamp) {
                self.stats.duplicates += 1;
                return Ok(());
            }
            self.start(rtp_timestamp, ev, sent_at);
            return Ok(());
        };
        if cur.seg_ts == rtp_timestamp && cur.event == ev.event {
            self.update(cur, ev, sent_at, false);
        } else if cur.event == ev.event && !marker && Self::next_segment(&cur, rtp_timestamp) {
            // A long press continues in a new segment (RFC 4733 §2.5.1.3).
            let seg_len = rtp_timestamp.wrapping_sub(cur.seg_ts);
            self.remember_closed(cur.seg_ts, cur.event);
            cur.base = cur.base.saturating_add(seg_len);
            cur.seg_ts = rtp_timestamp;
            cur.seg_dur = 0;
            cur.end_held = false;
            self.update(cur, ev, sent_at, true);
        } else if self.is_stale(rtp_timestamp) {
            // A late packet of an event older than the current one that was never heard.
            self.stats.duplicates += 1;
        } else {
            // A new event while the current one has not ended: its end was lost.
            let reason = if cur.end_held {
                Closed::End
            } else {
                Closed::NextEvent
            };
            self.close(cur, reason, sent_at);
            self.start(rtp_timestamp, ev, sent_at);
        }
        Ok(())
    }

    /// Advance RTP time (call with each received audio packet's timestamp, which shares the
    /// telephone-event clock and base): closes an event whose end packets were all lost.
    pub fn handle_timeout(&mut self, rtp_now: u32) {
        let Some(cur) = self.current else { return };
        let reached = cur.seg_ts.wrapping_add(u32::from(cur.seg_dur));
        let past = rtp_now.wrapping_sub(reached) as i32;
        if past > self.timeout_units as i32 {
            let reason = if cur.end_held {
                Closed::End
            } else {
                Closed::Timeout
            };
            self.close(cur, reason, rtp_now);
        }
    }

    /// The next key press, oldest first.
    #[must_use]
    pub fn poll_digit(&mut self) -> Option<ReceivedDigit> {
        let first = self.out[0].take();
        self.out[0] = self.out[1].take();
        first
    }

    fn start(&mut self, ts: u32, ev: TelephoneEvent, sent_at: u32) {
        self.newest_ts = Some(ts);
        let cur = Current {
            event: ev.event,
            start_ts: ts,
            seg_ts: ts,
            base: 0,
            seg_dur: 0,
            end_held: false,
        };
        self.update(cur, ev, sent_at, true);
    }

    /// Apply a packet of the current segment; `first` for the first packet heard of it.
    fn update(&mut self, mut cur: Current, ev: TelephoneEvent, sent_at: u32, first: bool) {
        // Durations grow; compare them as 16-bit serial numbers so that a sender that lets the
        // field wrap (instead of segmenting) still counts up, and a late packet from before a
        // wrap is recognised as late.
        let forward = ev.duration.wrapping_sub(cur.seg_dur) as i16;
        if first {
            cur.seg_dur = ev.duration;
        } else if forward > 0 {
            if ev.duration < cur.seg_dur {
                cur.base = cur.base.saturating_add(0x1_0000);
            }
            cur.seg_dur = ev.duration;
        } else if !ev.end {
            // A repeat or a reordered older update.
            self.stats.duplicates += 1;
            self.current = Some(cur);
            return;
        }
        if ev.end {
            if u32::from(cur.seg_dur) >= SEGMENT_MAX {
                // The end of a full segment may be followed by the next segment of the same
                // press: hold the report until that, another event, or the timeout.
                cur.end_held = true;
                self.current = Some(cur);
            } else {
                self.close(cur, Closed::End, sent_at);
            }
            return;
        }
        self.current = Some(cur);
    }

    /// Whether a packet at `ts` starts the next segment of `cur`.
    fn next_segment(cur: &Current, ts: u32) -> bool {
        let gap = ts.wrapping_sub(cur.seg_ts);
        (SEGMENT_MAX - SEGMENT_SLACK..=SEGMENT_MAX).contains(&gap) && gap >= u32::from(cur.seg_dur)
    }

    fn close(&mut self, cur: Current, closed: Closed, now_rtp: u32) {
        if closed != Closed::End {
            self.stats.lost_ends += 1;
        }
        self.remember_closed(cur.seg_ts, cur.event);
        self.current = None;
        let total = cur.base.saturating_add(u32::from(cur.seg_dur));
        let elapsed = now_rtp.wrapping_sub(cur.start_ts).max(total);
        let digit = ReceivedDigit {
            digit: Digit(cur.event),
            rtp_timestamp: cur.start_ts,
            duration_ms: self.units_to_ms(total),
            elapsed_ms: self.units_to_ms(elapsed),
            closed,
        };
        tracing::debug!(
            rtp_timestamp = cur.start_ts,
            duration_ms = digit.duration_ms,
            ?closed,
            "telephone-event key press"
        );
        if self.out[0].is_none() {
            self.out[0] = Some(digit);
        } else {
            // Undrained output: keep the newest two.
            if self.out[1].is_some() {
                self.out[0] = self.out[1];
            }
            self.out[1] = Some(digit);
        }
    }

    fn units_to_ms(&self, units: u32) -> u32 {
        let rate = u64::from(self.config.clock_rate.max(1));
        (u64::from(units) * 1000 / rate).min(u64::from(u32::MAX)) as u32
    }

    fn remember_closed(&mut self, ts: u32, event: u8) {
        self.closed[self.closed_next] = Some((ts, event));
        self.closed_next = (self.closed_next + 1) % CLOSED_MEMORY;
    }

    fn was_closed(&self, ts: u32, event: u8) -> bool {
        self.closed.contains(&Some((ts, event)))
    }

    /// Older than the newest event heard, by less than [`STALE_SECONDS`].
    fn is_stale(&self, ts: u32) -> bool {
        let Some(newest) = self.newest_ts else {
            return false;
        };
        let behind = newest.wrapping_sub(ts);
        behind != 0
            && (behind as i32) > 0
            && behind <= STALE_SECONDS.saturating_mul(self.config.clock_rate)
    }
}

// ---------------------------------------------------------------------------------------------
// Send
// ---------------------------------------------------------------------------------------------

/// One telephone-event packet to send: the RTP marker bit and the payload. The RTP timestamp
/// is the same for every packet of one digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// Set on the first packet of the digit only.
    pub marker: bool,
    /// The encoded [`TelephoneEvent`].
    pub payload: [u8; 4],
}

/// What to do on one 20 ms media tick while sending a digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendTick {
    /// Send this telephone-event packet (instead of an audio frame).
    Packet(EventPacket),
    /// The inter-digit pause: no event packet (send silence or nothing).
    Pause,
}

/// RFC 4733 sender of one digit: iterate once per 20 ms tick.
///
/// Yields, for a digit of `n` packet intervals: `n − 1` updates (the first with the marker bit;
/// packet `k` reports `(k + 1) × 20 ms`, the audio it replaces), then the final duration three
/// times with the E bit (RFC 4733 §2.5.1.4), then [`SendTick::Pause`] until the next digit may
/// start; `None` afterwards. The pause is counted from the end of the tone, so the three end
/// packets are part of it: the next digit's timestamp is at least `gap` after this one's end.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    event: u8,
    volume: u8,
    /// Total duration, RTP units.
    total: u16,
    gap_units: u32,
    tick: u32,
}

impl DtmfSender {
    /// Default key-press length.
    pub const DEFAULT_DURATION: Duration = Duration::from_millis(100);
    /// Default pause between digits (Q.23 asks at least 40 ms; IVRs like more).
    pub const DEFAULT_GAP: Duration = Duration::from_millis(100);
    /// Default level, −10 dBm0.
    pub const DEFAULT_VOLUME: u8 = 10;
    /// Shortest digit sent (Q.24 receivers need 40 ms).
    pub const MIN_DURATION: Duration = Duration::from_millis(40);

    /// A sender for `digit` lasting `duration` (clamped to 40 ms – 8.19 s, one segment) at
    /// `volume` −dBm0 (0–63), followed by [`DEFAULT_GAP`](Self::DEFAULT_GAP).
    pub fn new(digit: Digit, duration: Duration, volume: u8) -> DtmfSender {
        let units = duration
            .max(Self::MIN_DURATION)
            .as_millis()
            .saturating_mul(u128::from(SAMPLE_RATE))
            / 1000;
        DtmfSender {
            event: digit.event(),
            volume: volume.min(63),
            total: units.min(u128::from(SEGMENT_MAX)) as u16,
            gap_units: Self::units(Self::DEFAULT_GAP),
            tick: 0,
        }
    }

    /// Set the pause after the digit.
    #[must_use]
    pub fn with_gap(mut self, gap: Duration) -> DtmfSender {
        self.gap_units = Self::units(gap);
        self
    }

    /// The pause the caller leaves after the tone before the next digit starts.
    pub fn gap(&self) -> Duration {
        Duration::from_millis(u64::from(self.gap_units) * 1000 / u64::from(SAMPLE_RATE))
    }

    /// Ticks this digit occupies: packets and pause.
    pub fn ticks(&self) -> u32 {
        self.next_start_tick()
    }

    fn units(d: Duration) -> u32 {
        (d.as_millis().saturating_mul(u128::from(SAMPLE_RATE)) / 1000).min(u128::from(u32::MAX / 2))
            as u32
    }

    /// Tick of the first end packet.
    fn end_tick(&self) -> u32 {
        u32::from(self.total).div_ceil(FRAME_SAMPLES as u32) - 1
    }

    /// Tick at which the next digit may start.
    fn next_start_tick(&self) -> u32 {
        let by_gap = (u32::from(self.total) + self.gap_units).div_ceil(FRAME_SAMPLES as u32);
        by_gap.max(self.end_tick() + 3)
    }

    fn packet(&self, marker: bool, end: bool, duration: u16) -> SendTick {
        SendTick::Packet(EventPacket {
            marker,
            payload: TelephoneEvent {
                event: self.event,
                end,
                volume: self.volume,
                duration,
            }
            .encode(),
        })
    }
}

impl Iterator for DtmfSender {
    type Item = SendTick;

    fn next(&mut self) -> Option<SendTick> {
        let k = self.tick;
        let end = self.end_tick();
        let out = if k < end {
            let so_far = (k + 1) * FRAME_SAMPLES as u32;
            self.packet(k == 0, false, so_far as u16)
        } else if k <= end + 2 {
            self.packet(k == 0, true, self.total)
        } else if k < self.next_start_tick() {
            SendTick::Pause
        } else {
            return None;
        };
        self.tick += 1;
        Some(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Collector
// ---------------------------------------------------------------------------------------------

/// Where a digit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigitSource {
    /// RFC 4733 telephone-event ([`DtmfReceiver`]).
    Rfc4733,
    /// In-band tones ([`crate::goertzel::DtmfDetector`]).
    InBand,
    /// SIP INFO (`application/dtmf-relay` or `application/dtmf`), relayed by the SIP layer.
    SipInfo,
}

impl DigitSource {
    fn bit(self) -> u8 {
        match self {
            DigitSource::Rfc4733 => 1,
            DigitSource::InBand => 2,
            DigitSource::SipInfo => 4,
        }
    }
}

/// A key press already reported.
#[derive(Debug, Clone, Copy)]
struct Press {
    digit: Digit,
    started: Instant,
    /// [`DigitSource::bit`]s that have reported it.
    sources: u8,
}

/// Presses remembered for matching.
const PRESS_MEMORY: usize = 8;

/// The digit stream of one call, merged from RFC 4733, in-band and SIP INFO.
///
/// Far ends often signal one key press two ways (RFC 4733 and the tone left in the audio, or
/// RFC 4733 and SIP INFO). A report is the same press as an earlier one when it is the same
/// key, from a source that has not reported that press yet, starting within the overlap window
/// of it (the closest such press wins). A source never confirms its own earlier report, so
/// "55" keyed twice yields two digits however short the pause, as long as each source reports
/// each press once (which the receiver and the detector guarantee).
///
/// Time is the caller's [`Instant`] of the key press start: `now − elapsed` for RFC 4733
/// ([`ReceivedDigit::elapsed_ms`]) and in-band ([`crate::goertzel::ToneDigit`]), the arrival
/// time for SIP INFO (user agents send it at key-down).
#[derive(Debug, Clone)]
pub struct DigitCollector {
    window: Duration,
    recent: [Option<Press>; PRESS_MEMORY],
    next: usize,
    duplicates: u64,
}

impl DigitCollector {
    /// Default overlap window: in-band detection, RFC 4733 and SIP INFO of one press start
    /// within a few tens of milliseconds of each other; a person cannot press again this fast.
    pub const DEFAULT_WINDOW: Duration = Duration::from_millis(200);

    /// A collector matching reports whose starts are at most `window` apart.
    pub fn new(window: Duration) -> DigitCollector {
        DigitCollector {
            window,
            recent: [None; PRESS_MEMORY],
            next: 0,
            duplicates: 0,
        }
    }

    /// Report a digit from `source` whose key press started at `started`. Returns the digit
    /// when it is a new key press, `None` when another source already reported it.
    pub fn push(&mut self, source: DigitSource, digit: Digit, started: Instant) -> Option<Digit> {
        let bit = source.bit();
        let mut best: Option<(usize, Duration)> = None;
        for (i, press) in self.recent.iter().enumerate() {
            let Some(p) = press else { continue };
            if p.digit != digit || p.sources & bit != 0 {
                continue;
            }
            let apart = if started >= p.started {
                started - p.started
            } else {
                p.started - started
            };
            if apart <= self.window && best.is_none_or(|(_, b)| apart < b) {
                best = Some((i, apart));
            }
        }
        if let Some((i, _)) = best {
            if let Some(p) = &mut self.recent[i] {
                p.sources |= bit;
            }
            self.duplicates += 1;
            tracing::trace!(?source, "digit already reported by another source");
            return None;
        }
        self.recent[self.next] = Some(Press {
            digit,
            started,
            sources: bit,
        });
        self.next = (self.next + 1) % PRESS_MEMORY;
        tracing::debug!(?source, "key press");
        Some(digit)
    }

    /// Reports dropped as the same press from another source.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digit {
        Digit::from_char(c).unwrap()
    }

    fn payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
        .encode()
    }

    /// Feed packets `(ts, marker, end, duration)` of one event code; collect digits.
    fn feed(
        rx: &mut DtmfReceiver,
        event: u8,
        pkts: &[(u32, bool, bool, u16)],
    ) -> Vec<ReceivedDigit> {
        let mut out = Vec::new();
        for (i, &(ts, m, e, dur)) in pkts.iter().enumerate() {
            rx.handle_packet(ts, m, i as u16, &payload(event, e, dur))
                .unwrap();
            while let Some(x) = rx.poll_digit() {
                out.push(x);
            }
        }
        out
    }

    fn rx() -> DtmfReceiver {
        DtmfReceiver::new(ReceiverConfig::default())
    }

    #[test]
    fn digits_and_events() {
        let chars: String = Digit::ALL.iter().map(|d| d.as_char()).collect();
        assert_eq!(chars, "0123456789*#ABCD");
        for dg in Digit::ALL {
            assert_eq!(Digit::from_event(dg.event()), Some(dg));
            assert_eq!(Digit::from_char(dg.as_char()), Some(dg));
            let (r, c) = dg.position();
            assert_eq!(Digit::at(r, c), dg);
        }
        assert_eq!(Digit::from_event(16), None);
        assert_eq!(Digit::from_char('b'), Some(d('B')));
        assert_eq!(Digit::from_char('x'), None);
        assert_eq!(d('1').frequencies(), (697, 1209));
        assert_eq!(d('0').frequencies(), (941, 1336));
        assert_eq!(d('#').frequencies(), (941, 1477));
        assert_eq!(d('D').frequencies(), (941, 1633));
        assert_eq!(d('9').to_string(), "9");
    }

    #[test]
    fn payload_print_and_parse() {
        // RFC 4733 §3.3 figure: event 5? Use a hand-built vector.
        let ev = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 0x0320,
        };
        assert_eq!(ev.encode(), [11, 0x8A, 0x03, 0x20]);
        assert_eq!(TelephoneEvent::decode(&[11, 0x8A, 0x03, 0x20]), Ok(ev));
        // R bit ignored, trailing bytes ignored, volume masked.
        let parsed = TelephoneEvent::decode(&[3, 0x40 | 0x3F, 0xFF, 0xFF, 9, 9]).unwrap();
        assert_eq!(
            parsed,
            TelephoneEvent {
                event: 3,
                end: false,
                volume: 63,
                duration: 0xFFFF
            }
        );
        let big = TelephoneEvent {
            event: 1,
            end: false,
            volume: 200,
            duration: 1,
        };
        assert_eq!(big.encode()[1], 200 & 0x3F);
        assert_eq!(
            TelephoneEvent::decode(&[1, 2, 3]),
            Err(PayloadError::TooShort(3))
        );
        assert_eq!(TelephoneEvent::decode(&[]), Err(PayloadError::TooShort(0)));
    }

    #[test]
    fn malformed_payload_is_an_error_not_a_panic() {
        let mut r = rx();
        assert_eq!(
            r.handle_packet(0, true, 0, &[5]),
            Err(PayloadError::TooShort(1))
        );
        assert_eq!(r.stats().malformed, 1);
        assert_eq!(r.poll_digit(), None);
    }

    #[test]
    fn normal_event_with_three_end_packets_reported_once() {
        let mut r = rx();
        let got = feed(
            &mut r,
            5,
            &[
                (1000, true, false, 160),
                (1000, false, false, 320),
                (1000, false, false, 480),
                (1000, false, false, 640),
                (1000, false, true, 800),
                (1000, false, true, 800),
                (1000, false, true, 800),
            ],
        );
        assert_eq!(
            got,
            vec![ReceivedDigit {
                digit: d('5'),
                rtp_timestamp: 1000,
                duration_ms: 100,
                elapsed_ms: 100,
                closed: Closed::End
            }]
        );
        assert_eq!(r.stats().duplicates, 2);
        r.handle_timeout(1000 + 80_000);
        assert_eq!(r.poll_digit(), None);
    }

    #[test]
    fn duplicates_and_reordering() {
        let mut r = rx();
        let got = feed(
            &mut r,
            1,
            &[
                (500, true, false, 160),
                (500, true, false, 160), // duplicated start
                (500, false, false, 480),
                (500, false, false, 320), // reordered older update
                (500, false, true, 640),
                (500, false, false, 480), // late update after the end
                (500, true, false, 160),  // very late start
                (500, false, true, 640),
            ],
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].digit, d('1'));
        assert_eq!(got[0].duration_ms, 80);
        assert_eq!(r.stats().duplicates, 5);
    }

    #[test]
    fn end_before_updates_reordered() {
        let mut r = rx();
        let got = feed(
            &mut r,
            2,
            &[
                (0, true, false, 160),
                (0, false, true, 480), // end overtook the updates
                (0, false, false, 320),
                (0, false, true, 480),
            ],
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].duration_ms, 60);
    }

    #[test]
    fn lost_start_still_one_digit() {
        let mut r = rx();
        let got = feed(
            &mut r,
            9,
            &[
                (8000, false, false, 480),
                (8000, false, true, 960),
                (8000, false, true, 960),
            ],
        );
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].digit, got[0].rtp_timestamp, got[0].duration_ms),
            (d('9'), 8000, 120)
        );

        // Only an end packet heard.
        let got = feed(&mut r, 10, &[(16000, false, true, 800)]);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].digit, got[0].rtp_timestamp, got[0].duration_ms),
            (d('*'), 16000, 100)
        );
        assert_eq!(got[0].closed, Closed::End);
    }

    #[test]
    fn lost_end_closed_by_next_event_same_key_twice() {
        // "55": the first press's end packets are all lost.
        let mut r = rx();
        let mut got = feed(
            &mut r,
            5,
            &[
                (0, true, false, 160),
                (0, false, false, 320),
                (0, false, false, 480),
            ],
        );
        assert!(got.is_empty());
        got.extend(feed(
            &mut r,
            5,
            &[
                (2400, true, false, 160),
                (2400, false, true, 640),
                (2400, false, true, 640),
            ],
        ));
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].rtp_timestamp, got[0].duration_ms, got[0].closed),
            (0, 60, Closed::NextEvent)
        );
        assert_eq!(got[0].elapsed_ms, (2400 + 160) / 8);
        assert_eq!(
            (got[1].rtp_timestamp, got[1].duration_ms, got[1].closed),
            (2400, 80, Closed::End)
        );
        assert_eq!(r.stats().lost_ends, 1);
    }

    #[test]
    fn one_packet_closes_two_events() {
        let mut r = rx();
        r.handle_packet(0, true, 0, &payload(1, false, 160))
            .unwrap();
        // Everything of the next digit is lost except one end packet.
        r.handle_packet(4000, false, 9, &payload(2, true, 800))
            .unwrap();
        let a = r.poll_digit().unwrap();
        let b = r.poll_digit().unwrap();
        assert_eq!(r.poll_digit(), None);
        assert_eq!((a.digit, a.closed), (d('1'), Closed::NextEvent));
        assert_eq!((b.digit, b.closed), (d('2'), Closed::End));
    }

    #[test]
    fn lost_end_closed_by_rtp_timeout() {
        let mut r = rx();
        feed(
            &mut r,
            7,
            &[(100, true, false, 160), (100, false, false, 320)],
        );
        // Audio continues: 200 ms past the last update is not yet a timeout.
        r.handle_timeout(100 + 320 + 1600);
        assert_eq!(r.poll_digit(), None);
        r.handle_timeout(100 + 320 + 2001);
        let got = r.poll_digit().unwrap();
        assert_eq!(
            (got.digit, got.duration_ms, got.closed),
            (d('7'), 40, Closed::Timeout)
        );
        assert_eq!(got.elapsed_ms, (320 + 2001) / 8);
        // Its late end packets are not a second press.
        feed(&mut r, 7, &[(100, false, true, 800)]);
        assert_eq!(r.poll_digit(), None);
        // An audio timestamp from before the event does not close anything.
        let mut r = rx();
        feed(&mut r, 7, &[(100_000, true, false, 160)]);
        r.handle_timeout(50_000);
        assert_eq!(r.poll_digit(), None);
    }

    #[test]
    fn stale_packets_of_an_unheard_older_event_are_dropped() {
        let mut r = rx();
        feed(&mut r, 3, &[(10_000, true, false, 160)]);
        // A late packet of an event before it, never heard.
        let got = feed(&mut r, 4, &[(5_000, false, true, 800)]);
        assert!(got.is_empty());
        let got = feed(&mut r, 3, &[(10_000, false, true, 320)]);
        assert_eq!(got.len(), 1);
        // The sender restarted its timestamps far back: a new event, not a late packet.
        let got = feed(
            &mut r,
            4,
            &[(10_000u32.wrapping_sub(1_000_000), false, true, 800)],
        );
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn non_dtmf_events_are_ignored() {
        let mut r = rx();
        feed(&mut r, 16, &[(0, true, false, 160), (0, false, true, 800)]);
        assert_eq!(r.poll_digit(), None);
        assert_eq!(r.stats().non_dtmf, 2);
    }

    #[test]
    fn timestamp_wrap() {
        let mut r = rx();
        let ts = u32::MAX - 100;
        let got = feed(&mut r, 0, &[(ts, true, false, 160), (ts, false, true, 400)]);
        assert_eq!(got.len(), 1);
        let got = feed(
            &mut r,
            0,
            &[
                (ts.wrapping_add(2000), true, false, 160),
                (ts.wrapping_add(2000), false, true, 480),
            ],
        );
        assert_eq!((got.len(), got[0].rtp_timestamp), (1, 1899));
    }

    #[test]
    fn long_event_in_segments() {
        // A 20 s press: segments of 0xFFFF units (RFC 4733 §2.5.1.3), updates every 50 ms.
        let mut r = rx();
        let total: u32 = 20 * 8000;
        let start: u32 = 4_000_000_000;
        let mut seq = 0u16;
        let mut elapsed = 0u32;
        let mut seg_start = 0u32;
        let mut out = Vec::new();
        while elapsed < total {
            elapsed = (elapsed + 400).min(total);
            if elapsed - seg_start > SEGMENT_MAX {
                seg_start += SEGMENT_MAX;
            }
            let dur = (elapsed - seg_start) as u16;
            let ts = start.wrapping_add(seg_start);
            let end = elapsed == total;
            let copies = if end { 3 } else { 1 };
            for _ in 0..copies {
                r.handle_packet(ts, elapsed == 400, seq, &payload(8, end, dur))
                    .unwrap();
                seq = seq.wrapping_add(1);
                // Audio packets carry on meanwhile.
                r.handle_timeout(start.wrapping_add(elapsed));
                out.extend(std::iter::from_fn(|| r.poll_digit()));
            }
        }
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            (out[0].digit, out[0].rtp_timestamp, out[0].duration_ms),
            (d('8'), start, 20_000)
        );
        assert_eq!(out[0].closed, Closed::End);
    }

    #[test]
    fn segment_boundary_with_e_bit_is_held_not_split() {
        // Some senders mark the end of a full segment with E; the press continues.
        let mut r = rx();
        let mut out = feed(
            &mut r,
            4,
            &[
                (0, true, false, 60_000),
                (0, false, true, 0xFFFF),
                (0, false, true, 0xFFFF),
            ],
        );
        assert!(out.is_empty(), "held at the segment boundary");
        out.extend(feed(
            &mut r,
            4,
            &[(0xFFFF, false, false, 800), (0xFFFF, false, true, 1600)],
        ));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].duration_ms, (0xFFFF + 1600) / 8);

        // A press that really ended at exactly 0xFFFF is reported by the timeout.
        let mut r = rx();
        feed(&mut r, 4, &[(0, true, true, 0xFFFF)]);
        r.handle_timeout(0xFFFF + 2001);
        let got = r.poll_digit().unwrap();
        assert_eq!((got.duration_ms, got.closed), (0xFFFF / 8, Closed::End));
    }

    #[test]
    fn sixteen_bit_duration_wrap_keeps_counting() {
        // A sender that lets the duration wrap instead of segmenting; one packet from before
        // the wrap arrives late.
        let mut r = rx();
        let got = feed(
            &mut r,
            6,
            &[
                (0, true, false, 60_000),
                (0, false, false, 65_000),
                (0, false, false, 464),    // 65_536 + 464
                (0, false, false, 65_400), // late, from before the wrap
                (0, false, true, 1_000),
            ],
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].duration_ms, (65_536 + 1_000) / 8);
    }

    #[test]
    fn reset_forgets_events() {
        let mut r = rx();
        feed(&mut r, 1, &[(100, true, false, 160)]);
        r.reset();
        assert_eq!(r.stats().packets, 1);
        let got = feed(&mut r, 1, &[(50, true, true, 400)]);
        assert_eq!(got.len(), 1, "not stale after a reset");
    }

    /// Arbitrary bytes never panic and never report more digits than packets.
    #[test]
    fn fuzz_never_panics() {
        let mut r = rx();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut n = 0;
        for i in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            let ts = if b[7] & 1 == 0 {
                u32::from(b[6]) * 160
            } else {
                x as u32
            };
            let len = usize::from(b[5] % 6);
            let _ = r.handle_packet(
                ts,
                b[4] & 1 == 1,
                i as u16,
                &[b[0] % 20, b[1], b[2], b[3], b[4]][..len.min(5)],
            );
            if b[3] & 7 == 0 {
                r.handle_timeout(x as u32 >> 1);
            }
            n += std::iter::from_fn(|| r.poll_digit()).count();
        }
        assert!(n > 0 && n < 20_000);
    }

    #[test]
    fn sender_packet_sequence() {
        let s = DtmfSender::new(d('#'), Duration::from_millis(100), 10);
        assert_eq!(s.gap(), Duration::from_millis(100));
        let ticks: Vec<SendTick> = s.clone().collect();
        assert_eq!(ticks.len() as u32, s.ticks());
        let mut packets = Vec::new();
        let mut pauses = 0;
        for t in &ticks {
            match t {
                SendTick::Packet(p) => {
                    assert_eq!(pauses, 0, "no packet after the pause began");
                    packets.push((p.marker, TelephoneEvent::decode(&p.payload).unwrap()));
                }
                SendTick::Pause => pauses += 1,
            }
        }
        let durs: Vec<(bool, bool, u16)> = packets
            .iter()
            .map(|(m, e)| (*m, e.end, e.duration))
            .collect();
        assert_eq!(
            durs,
            vec![
                (true, false, 160),
                (false, false, 320),
                (false, false, 480),
                (false, false, 640),
                (false, true, 800),
                (false, true, 800),
                (false, true, 800),
            ]
        );
        assert!(packets.iter().all(|(_, e)| e.event == 11 && e.volume == 10));
        // Tone ends at tick 5 (100 ms); next digit at 100 ms + 100 ms gap = tick 10.
        assert_eq!(s.ticks(), 10);
        assert_eq!(pauses, 3);
    }

    #[test]
    fn sender_odd_durations_and_short_gap() {
        // 85 ms: the end packet carries 680 units; next digit at ceil((680 + 800) / 160) = 10.
        let s = DtmfSender::new(d('1'), Duration::from_millis(85), 0);
        let ends: Vec<u16> = s
            .clone()
            .filter_map(|t| match t {
                SendTick::Packet(p) => Some(TelephoneEvent::decode(&p.payload).unwrap()),
                SendTick::Pause => None,
            })
            .filter(|e| e.end)
            .map(|e| e.duration)
            .collect();
        assert_eq!(ends, vec![680, 680, 680]);
        assert_eq!(s.ticks(), 10);
        // A gap shorter than the three end packets: the end packets are the gap.
        let s = DtmfSender::new(d('1'), Duration::from_millis(40), 0).with_gap(Duration::ZERO);
        let v: Vec<SendTick> = s.collect();
        assert_eq!(v.len(), 4);
        assert!(v.iter().all(|t| matches!(t, SendTick::Packet(_))));
        // Clamped: shortest 40 ms, longest one segment.
        let s = DtmfSender::new(d('1'), Duration::from_millis(5), 99);
        let first = match s.clone().next() {
            Some(SendTick::Packet(p)) => TelephoneEvent::decode(&p.payload).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!((first.duration, first.volume), (160, 63));
        assert_eq!(
            DtmfSender::new(d('1'), Duration::from_secs(60), 0).total,
            0xFFFF
        );
    }

    #[test]
    fn sender_to_receiver_round_trip_with_loss() {
        // Send "159#", dropping some packets; the receiver gets every digit once.
        let mut r = rx();
        let mut ts = 0u32;
        let mut seq = 0u16;
        let mut got = String::new();
        let mut drop = 0u32;
        for c in "159#".chars() {
            let start = ts;
            for t in DtmfSender::new(d(c), Duration::from_millis(120), 10) {
                if let SendTick::Packet(p) = t {
                    drop += 1;
                    if !drop.is_multiple_of(3) {
                        r.handle_packet(start, p.marker, seq, &p.payload).unwrap();
                    }
                    seq = seq.wrapping_add(1);
                }
                ts += 160;
                r.handle_timeout(ts);
                got.extend(std::iter::from_fn(|| r.poll_digit()).map(|x| x.digit.as_char()));
            }
        }
        assert_eq!(got, "159#");
    }

    #[test]
    fn per_call_state_is_small() {
        use std::mem::size_of;
        let sizes = [
            size_of::<DtmfReceiver>(),
            size_of::<DtmfSender>(),
            size_of::<DigitCollector>(),
        ];
        println!("DtmfReceiver, DtmfSender, DigitCollector: {sizes:?} bytes");
        assert!(sizes.iter().all(|&s| s <= 512), "{sizes:?}");
    }

    fn t0() -> Instant {
        Instant::now()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn collect(c: &mut DigitCollector, t: Instant, reports: &[(DigitSource, char, u64)]) -> String {
        reports
            .iter()
            .filter_map(|&(s, ch, at)| c.push(s, d(ch), t + ms(at)))
            .map(|x| x.as_char())
            .collect()
    }

    #[test]
    fn collector_same_press_from_two_sources_once() {
        use DigitSource::*;
        let t = t0();
        let mut c = DigitCollector::new(DigitCollector::DEFAULT_WINDOW);
        // In-band confirms 40 ms after RFC 4733; then SIP INFO as well.
        let s = collect(
            &mut c,
            t,
            &[(Rfc4733, '5', 0), (InBand, '5', 40), (SipInfo, '5', 120)],
        );
        assert_eq!(s, "5");
        assert_eq!(c.duplicates(), 2);
        // Reported in the other order (in-band detected first): still once.
        let s = collect(&mut c, t, &[(InBand, '7', 1000), (Rfc4733, '7', 990)]);
        assert_eq!(s, "7");
    }

    #[test]
    fn collector_double_key_with_real_gap_is_two_digits() {
        use DigitSource::*;
        let t = t0();
        // "55" with 150 ms between starts (inside the window), both sources each time, and the
        // second RFC 4733 report arriving before the first in-band one.
        let mut c = DigitCollector::new(DigitCollector::DEFAULT_WINDOW);
        let s = collect(
            &mut c,
            t,
            &[
                (Rfc4733, '5', 0),
                (Rfc4733, '5', 150),
                (InBand, '5', 5),
                (InBand, '5', 160),
            ],
        );
        assert_eq!(s, "55");
        assert_eq!(c.duplicates(), 2);
        // One source only: every report is a press.
        let mut c = DigitCollector::new(DigitCollector::DEFAULT_WINDOW);
        let s = collect(
            &mut c,
            t,
            &[(InBand, '5', 0), (InBand, '5', 90), (InBand, '5', 180)],
        );
        assert_eq!(s, "555");
    }

    #[test]
    fn collector_window_and_different_keys() {
        use DigitSource::*;
        let t = t0();
        let mut c = DigitCollector::new(DigitCollector::DEFAULT_WINDOW);
        // Same key from another source, but too far apart: a second press.
        let s = collect(&mut c, t, &[(Rfc4733, '3', 0), (InBand, '3', 201)]);
        assert_eq!(s, "33");
        // Different keys are never merged.
        let s = collect(
            &mut c,
            t,
            &[
                (Rfc4733, '1', 1000),
                (InBand, '2', 1000),
                (SipInfo, '3', 1000),
            ],
        );
        assert_eq!(s, "123");
        // Exactly at the window: merged.
        let s = collect(&mut c, t, &[(SipInfo, '9', 2000), (Rfc4733, '9', 2200)]);
        assert_eq!(s, "9");
    }

    #[test]
    fn collector_dual_source_sequence() {
        use DigitSource::*;
        // "1234#" via RFC 4733 and in-band, in-band delayed by 60 ms, 180 ms per key.
        let t = t0();
        let mut c = DigitCollector::new(DigitCollector::DEFAULT_WINDOW);
        let mut reports = Vec::new();
        for (i, ch) in "12344#".chars().enumerate() {
            let at = i as u64 * 180;
            reports.push((Rfc4733, ch, at));
            reports.push((InBand, ch, at + 60));
        }
        assert_eq!(collect(&mut c, t, &reports), "12344#");
    }
}
