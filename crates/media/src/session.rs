//! One call's media: everything the engine does with a call's audio, in one sans-IO object.
//!
//! A [`CallMedia`] owns the RTP sender and receiver, the RFC 4733 and in-band DTMF detectors
//! and the digit collector, the VAD, the answering-machine detector, prompt playback, DTMF
//! sending and the recorder. The engine's media clock drives every call the same way:
//!
//! ```text
//! on each datagram from the call's socket:  media.receive(now, src, &datagram)
//! every 20 ms (one clock for all calls):    if let Some(n) = media.tick(now, &mut buf) {
//!                                                send buf[..n] to media.remote() }
//! then:                                     while let Some(ev) = media.poll_event() { … }
//!                                           while let Some(b) = media.take_record_block() { … }
//! ```
//!
//! Memory: the receiver's jitter buffer dominates; the whole struct is a few KiB (asserted in
//! a test), prompts are shared `Arc`s.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::amd::{Amd, AmdConfig, AmdEvent, Beep, Decision};
use crate::dtmf::{Digit, DigitCollector, DigitSource, DtmfReceiver, DtmfSender, SendTick};
use crate::g711::{self, Codec};
use crate::goertzel::{DetectorConfig, DtmfDetector};
use crate::prompt::{Playback, Prompt};
use crate::record::{Block, Recorder};
use crate::rtcp::{RtcpScheduler, RtcpSession};
use crate::stream::{
    Playout, Received, ReceiverConfig, ReceiverStats, RtpReceiver, RtpSender, SenderConfig,
};
use crate::vad::{Vad, VadConfig, VadEvent};
use crate::{FRAME_SAMPLES, SAMPLE_RATE};

/// Which way media flows, from our side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Direction {
    pub send: bool,
    pub receive: bool,
}

impl Direction {
    pub const SEND_RECV: Direction = Direction {
        send: true,
        receive: true,
    };
}

/// What the offer/answer agreed plus the engine's settings for this call.
#[derive(Debug, Clone)]
pub struct MediaParams {
    pub codec: Codec,
    /// Negotiated RFC 4733 payload type (`None`: in-band DTMF only).
    pub telephone_event_pt: Option<u8>,
    /// Where the far end asked us to send (SDP `c=`/`m=`).
    pub remote: SocketAddr,
    /// The far end's SSRC when its SDP announced one (`a=ssrc`): a media engine that shares
    /// one socket among calls tells them apart by it.
    pub remote_ssrc: Option<u32>,
    pub direction: Direction,
    /// Random per call: SSRC, first sequence number and timestamp (RFC 3550 §5.1).
    pub ssrc: u32,
    pub initial_sequence: u16,
    pub initial_timestamp: u32,
    /// Detect DTMF in the audio too (many PBXs send in-band only).
    pub inband_dtmf: bool,
    /// Run answering-machine detection from the first frame.
    pub amd: Option<AmdConfig>,
    /// Speech start/end events (barge-in, endpointing); `None` saves its CPU on calls that
    /// never listen (e.g. the callee simulator). AMD runs its own detector regardless.
    pub vad: Option<VadConfig>,
    /// No RTP for this long (while we expect some) ends the call as a media failure.
    pub rtp_timeout: Duration,
    /// Latch onto the source of the first packet when it differs from an SDP address that is
    /// private or unspecified (symmetric RTP, RFC 4961 behind NAT). `always` latches on any
    /// mismatch (for peers known to be behind NAT).
    pub latch: Latch,
    /// Record the call (left callee, right bot).
    pub record: bool,
}

/// Symmetric-RTP policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latch {
    Never,
    /// When the SDP address is private, loopback-mismatched or unspecified.
    WhenPrivate,
    Always,
}

impl MediaParams {
    /// Defaults for a call: in-band DTMF on, no AMD, barge-in VAD, 30 s RTP timeout,
    /// latching when private, no recording.
    pub fn new(
        codec: Codec,
        telephone_event_pt: Option<u8>,
        remote: SocketAddr,
        seed: u64,
    ) -> Self {
        MediaParams {
            codec,
            telephone_event_pt,
            remote,
            remote_ssrc: None,
            direction: Direction::SEND_RECV,
            ssrc: (seed >> 32) as u32 | 1,
            initial_sequence: (seed >> 16) as u16 & 0x7FFF,
            initial_timestamp: seed as u32,
            inband_dtmf: true,
            amd: None,
            vad: Some(VadConfig::barge_in()),
            rtp_timeout: Duration::from_secs(30),
            latch: Latch::WhenPrivate,
            record: false,
        }
    }
}

/// What happened to a call's media.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// A key press (each press once, whatever mix of RFC 4733, in-band and SIP INFO carried it).
    Digit {
        digit: char,
        source: DigitSource,
    },
    SpeechStart,
    SpeechEnd {
        duration: Duration,
    },
    Amd(Decision),
    Beep(Beep),
    /// The prompt started with [`CallMedia::play`] played to its end.
    PromptFinished,
    /// The queued digits of [`CallMedia::send_digits`] are all sent.
    DigitsSent,
    /// No RTP for the configured timeout while media was expected.
    RtpTimeout,
    /// Symmetric RTP: we now send to where the far end sends from.
    Latched {
        remote: SocketAddr,
    },
    /// With [`CallMedia::start_capture`]: one utterance of the callee, from a little before the
    /// VAD's speech start to its speech end (8 kHz mono PCM), for speech recognition.
    /// `truncated` when it reached the capture's length limit before the speech ended.
    Utterance {
        pcm: Vec<i16>,
        truncated: bool,
    },
}

/// Frames kept before a speech start, so the utterance includes its onset (the VAD reports a
/// start a few frames after it began): 200 ms.
const PREROLL_FRAMES: usize = 10;

/// Capture of the callee's utterances (see [`CallMedia::start_capture`]).
#[derive(Debug)]
struct Capture {
    preroll: VecDeque<[i16; FRAME_SAMPLES]>,
    utterance: Option<Vec<i16>>,
    max_samples: usize,
}

/// Counters for reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MediaStats {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub late: u64,
    pub jitter_ms: f64,
}

const MAX_EVENTS: usize = 32;
/// RTCP report interval (RFC 3550 §6.2 minimum for a two-party session; randomised ±50 %).
const RTCP_INTERVAL: Duration = Duration::from_secs(5);
const MAX_QUEUED_DIGITS: usize = 32;

/// One call's media state.
#[derive(Debug)]
pub struct CallMedia {
    codec: Codec,
    te_pt: Option<u8>,
    direction: Direction,
    sender: RtpSender,
    receiver: RtpReceiver,
    rtcp: RtcpSession,
    dtmf_rx: DtmfReceiver,
    inband: Option<DtmfDetector>,
    collector: DigitCollector,
    vad: Option<Vad>,
    amd: Option<Amd>,
    playback: Option<Playback>,
    dtmf_queue: VecDeque<Digit>,
    dtmf_tx: Option<(DtmfSender, u32)>,
    recorder: Option<Recorder>,
    blocks: VecDeque<Block>,
    sdp_remote: SocketAddr,
    remote: SocketAddr,
    latch: Latch,
    latched: bool,
    started: Instant,
    last_rx: Option<Instant>,
    rtp_timeout: Duration,
    timed_out: bool,
    events: VecDeque<MediaEvent>,
    pcm: [i16; FRAME_SAMPLES],
    /// This tick's callee frame, waiting for the bot frame to be recorded beside it.
    pcm_pending: Option<[i16; FRAME_SAMPLES]>,
    silence: [u8; FRAME_SAMPLES],
    capture: Option<Box<Capture>>,
}

impl CallMedia {
    pub fn new(now: Instant, p: MediaParams) -> CallMedia {
        let sender = RtpSender::new(SenderConfig::new(
            p.ssrc,
            p.codec,
            p.initial_sequence,
            p.initial_timestamp,
        ));
        CallMedia {
            codec: p.codec,
            te_pt: p.telephone_event_pt,
            direction: p.direction,
            sender,
            receiver: RtpReceiver::new(ReceiverConfig::new(p.codec, p.telephone_event_pt)),
            rtcp: RtcpSession::new(
                p.ssrc,
                RtcpScheduler::randomized(now, RTCP_INTERVAL, u64::from(p.ssrc)),
            ),
            dtmf_rx: DtmfReceiver::new(Default::default()),
            inband: p
                .inband_dtmf
                .then(|| DtmfDetector::new(DetectorConfig::default())),
            collector: DigitCollector::new(DigitCollector::DEFAULT_WINDOW),
            vad: p.vad.map(Vad::new),
            amd: p.amd.map(Amd::new),
            playback: None,
            dtmf_queue: VecDeque::new(),
            dtmf_tx: None,
            recorder: p.record.then(Recorder::new),
            blocks: VecDeque::new(),
            sdp_remote: p.remote,
            remote: p.remote,
            latch: p.latch,
            latched: false,
            started: now,
            last_rx: None,
            rtp_timeout: p.rtp_timeout,
            timed_out: false,
            events: VecDeque::new(),
            pcm: [0; FRAME_SAMPLES],
            pcm_pending: None,
            silence: [p.codec.silence(); FRAME_SAMPLES],
            capture: None,
        }
    }

    /// Start capturing the callee's utterances (needs the VAD, see [`MediaParams::vad`]): each
    /// one comes as [`MediaEvent::Utterance`] at its speech end, at most `max` long. Speech
    /// already under way is captured from the next speech start. Memory is taken only while
    /// capturing.
    pub fn start_capture(&mut self, max: Duration) {
        let max_samples =
            (max.as_millis() as usize * SAMPLE_RATE as usize / 1000).max(FRAME_SAMPLES);
        match self.capture.as_mut() {
            Some(c) => c.max_samples = max_samples,
            None => {
                self.capture = Some(Box::new(Capture {
                    preroll: VecDeque::with_capacity(PREROLL_FRAMES),
                    utterance: None,
                    max_samples,
                }))
            }
        }
    }

    /// Stop capturing; an utterance in progress is dropped.
    pub fn stop_capture(&mut self) {
        self.capture = None;
    }

    /// Whether utterances are being captured.
    pub fn is_capturing(&self) -> bool {
        self.capture.is_some()
    }

    /// Where our RTP goes.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// A new offer/answer (re-INVITE, UPDATE, hold/resume): new remote, codec or direction.
    pub fn update(
        &mut self,
        codec: Codec,
        telephone_event_pt: Option<u8>,
        remote: SocketAddr,
        direction: Direction,
    ) {
        if codec != self.codec || telephone_event_pt != self.te_pt {
            self.codec = codec;
            self.te_pt = telephone_event_pt;
            self.silence = [codec.silence(); FRAME_SAMPLES];
            self.receiver = RtpReceiver::new(ReceiverConfig::new(codec, telephone_event_pt));
            if let Some(p) = self.playback.as_mut() {
                p.set_codec(codec);
            }
        }
        if remote != self.sdp_remote {
            self.sdp_remote = remote;
            self.remote = remote;
            self.latched = false;
        }
        if direction.receive && !self.direction.receive {
            self.last_rx = None; // restart the RTP timeout from the resume
        }
        self.direction = direction;
    }

    /// Start a prompt (replacing the current one).
    pub fn play(&mut self, prompt: Arc<Prompt>) {
        self.playback = Some(Playback::new(prompt, self.codec));
        self.sender.start_talkspurt();
    }

    /// Stop the prompt (barge-in); no PromptFinished event.
    pub fn stop_prompt(&mut self) {
        if let Some(p) = self.playback.as_mut() {
            p.stop();
        }
        self.playback = None;
    }

    /// Pause the prompt (barge-in while the callee speaks); silence is sent meanwhile.
    pub fn pause_prompt(&mut self) {
        if let Some(p) = self.playback.as_mut() {
            p.pause();
        }
    }

    /// Resume a paused prompt where it stopped.
    pub fn resume_prompt(&mut self) {
        if let Some(p) = self.playback.as_mut() {
            p.resume();
            self.sender.start_talkspurt();
        }
    }

    pub fn is_playing(&self) -> bool {
        self.playback.as_ref().is_some_and(|p| !p.is_finished())
    }

    /// Queue digits to send as RFC 4733 events (ignored when no telephone-event was agreed;
    /// characters that are not keys are skipped). Returns how many were queued.
    pub fn send_digits(&mut self, digits: &str) -> usize {
        if self.te_pt.is_none() {
            return 0;
        }
        let mut n = 0;
        for d in digits.chars().filter_map(Digit::from_char) {
            if self.dtmf_queue.len() < MAX_QUEUED_DIGITS {
                self.dtmf_queue.push_back(d);
                n += 1;
            }
        }
        n
    }

    /// A digit the SIP layer received in an INFO request.
    pub fn sip_info_digit(&mut self, now: Instant, digit: char) {
        if let Some(d) = Digit::from_char(digit)
            && let Some(d) = self.collector.push(DigitSource::SipInfo, d, now)
        {
            self.event(MediaEvent::Digit {
                digit: d.as_char(),
                source: DigitSource::SipInfo,
            });
        }
    }

    /// One datagram from the call's RTP socket.
    pub fn receive(&mut self, now: Instant, src: SocketAddr, datagram: &[u8]) {
        let received = match self.receiver.push(now, datagram) {
            Ok(r) => r,
            Err(e) => {
                tracing::trace!(error = %e, "RTP dropped");
                return;
            }
        };
        self.last_rx = Some(now);
        self.maybe_latch(src);
        match received {
            Received::Audio(info) => {
                if info.new_source {
                    self.dtmf_rx.reset();
                }
                self.dtmf_rx.handle_timeout(info.timestamp);
                self.drain_rfc4733(now);
            }
            Received::Event { info, payload } => {
                if info.new_source {
                    self.dtmf_rx.reset();
                }
                let _ =
                    self.dtmf_rx
                        .handle_packet(info.timestamp, info.marker, info.sequence, payload);
                self.drain_rfc4733(now);
            }
            _ => {}
        }
    }

    /// The media clock's 20 ms tick. Returns the length of an RTP packet written into `out`
    /// (at least 12 + 160 bytes) to send to [`Self::remote`], or `None` when nothing is sent.
    pub fn tick(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        self.tick_receive(now);
        if self.direction.receive
            && !self.timed_out
            && now.saturating_duration_since(self.last_rx.unwrap_or(self.started))
                >= self.rtp_timeout
        {
            self.timed_out = true;
            self.event(MediaEvent::RtpTimeout);
        }
        self.tick_send(out)
    }

    fn tick_receive(&mut self, now: Instant) {
        let mut callee: Option<[i16; FRAME_SAMPLES]> = None;
        let mut concealed = false;
        match self.receiver.pop_frame() {
            Playout::Frame(bytes) => {
                g711::decode(self.codec, bytes, &mut self.pcm);
                callee = Some(self.pcm);
            }
            Playout::Missing => {
                // Concealment: repeat the last frame (as G.711 Appendix I does, without its
                // fade). Zeros would cut a DTMF tone in two and double the digit. The
                // recording keeps the truth: silence.
                callee = Some(self.pcm);
                concealed = true;
            }
            Playout::Idle => {}
        }
        let Some(frame) = callee else {
            // No audio at all is silence to the answering-machine detector (a far end that
            // sends nothing must still get a verdict).
            if let Some(amd) = self.amd.as_mut()
                && !amd.is_finished()
            {
                amd.push(&[0; FRAME_SAMPLES]);
                self.drain_amd();
            }
            self.record(None);
            return;
        };
        if let Some(det) = self.inband.as_mut()
            && let Some(tone) = det.process_frame(&frame)
        {
            // Date the press from now: the detector counts only the frames it was fed, which
            // lags the wall clock after silence, hold or a late start.
            let ago = det.position().saturating_sub(tone.start_sample);
            let started = now
                .checked_sub(Duration::from_micros(
                    ago * 1_000_000 / u64::from(SAMPLE_RATE),
                ))
                .unwrap_or(now);
            if let Some(d) = self
                .collector
                .push(DigitSource::InBand, tone.digit, started)
            {
                self.event(MediaEvent::Digit {
                    digit: d.as_char(),
                    source: DigitSource::InBand,
                });
            }
        }
        let vad_event = self.vad.as_mut().and_then(|v| v.push(&frame));
        self.capture_frame(&frame, vad_event);
        match vad_event {
            Some(VadEvent::SpeechStart { .. }) => self.event(MediaEvent::SpeechStart),
            Some(VadEvent::SpeechEnd { duration, .. }) => {
                self.event(MediaEvent::SpeechEnd { duration })
            }
            None => {}
        }
        if let Some(amd) = self.amd.as_mut()
            && !amd.is_finished()
        {
            amd.push(&frame);
            self.drain_amd();
        }
        self.record((!concealed).then_some(frame));
    }

    fn tick_send(&mut self, out: &mut [u8]) -> Option<usize> {
        // DTMF replaces the audio while it is sent.
        if self.dtmf_tx.is_none()
            && let Some(d) = self.dtmf_queue.pop_front()
        {
            let sender =
                DtmfSender::new(d, DtmfSender::DEFAULT_DURATION, DtmfSender::DEFAULT_VOLUME);
            self.dtmf_tx = Some((sender, self.sender.next_timestamp()));
        }
        if let Some((sender, event_ts)) = self.dtmf_tx.as_mut() {
            let event_ts = *event_ts;
            match sender.next() {
                Some(SendTick::Packet(p)) => {
                    let pt = self.te_pt.unwrap_or(101);
                    let n = self
                        .sender
                        .write_packet(pt, p.marker, event_ts, &p.payload, out)
                        .ok();
                    self.sender.skip_frames(1);
                    self.record_bot(None);
                    return if self.direction.send { n } else { None };
                }
                Some(SendTick::Pause) => {}
                None => {
                    self.dtmf_tx = None;
                    // Audio resumes after the event: a new talkspurt (RFC 4733 §2.6).
                    self.sender.start_talkspurt();
                    if self.dtmf_queue.is_empty() {
                        self.event(MediaEvent::DigitsSent);
                    }
                }
            }
        }
        let mut finished = false;
        let mut bot: Option<[i16; FRAME_SAMPLES]> = None;
        let payload: &[u8] = match self.playback.as_mut() {
            Some(p) => match p.next_frame_with_pcm() {
                Some((bytes, pcm)) => {
                    bot = Some(*pcm);
                    bytes
                }
                None => {
                    finished = p.is_finished();
                    &self.silence
                }
            },
            None => &self.silence,
        };
        let n = if self.direction.send {
            self.sender.write_frame(payload, out).ok()
        } else {
            self.sender.skip_frames(1);
            None
        };
        if finished {
            self.playback = None;
            self.event(MediaEvent::PromptFinished);
        }
        self.record_bot(bot);
        n
    }

    /// Pending callee frame for the recorder, paired with the bot frame in `record_bot`.
    /// Feed the utterance capture one callee frame and what the VAD made of it.
    fn capture_frame(&mut self, frame: &[i16; FRAME_SAMPLES], vad: Option<VadEvent>) {
        let Some(c) = self.capture.as_mut() else {
            return;
        };
        if c.utterance.is_none() && matches!(vad, Some(VadEvent::SpeechStart { .. })) {
            let mut u = Vec::with_capacity((PREROLL_FRAMES + 50) * FRAME_SAMPLES);
            for f in c.preroll.drain(..) {
                u.extend_from_slice(&f);
            }
            c.utterance = Some(u);
        }
        let Some(u) = c.utterance.as_mut() else {
            if c.preroll.len() == PREROLL_FRAMES {
                c.preroll.pop_front();
            }
            c.preroll.push_back(*frame);
            return;
        };
        u.extend_from_slice(frame);
        let full = u.len() >= c.max_samples;
        if full || matches!(vad, Some(VadEvent::SpeechEnd { .. })) {
            let mut pcm = c.utterance.take().unwrap_or_default();
            pcm.truncate(c.max_samples);
            self.event(MediaEvent::Utterance {
                pcm,
                truncated: full,
            });
        }
    }

    fn record(&mut self, callee: Option<[i16; FRAME_SAMPLES]>) {
        if self.recorder.is_some() {
            self.pcm_pending = callee;
        }
    }

    fn record_bot(&mut self, bot: Option<[i16; FRAME_SAMPLES]>) {
        if let Some(r) = self.recorder.as_mut() {
            let callee = self.pcm_pending.take();
            if let Some(block) = r.push_frame(callee.as_ref(), bot.as_ref()) {
                self.blocks.push_back(block);
            }
        }
    }

    /// A full block of the recording, for the writer thread.
    pub fn take_record_block(&mut self) -> Option<Block> {
        self.blocks.pop_front()
    }

    /// End the recording: the last partial block (after any full ones still queued).
    pub fn finish_recording(&mut self) -> Option<Block> {
        let last = self.recorder.as_mut().and_then(Recorder::finish);
        self.recorder = None;
        if let Some(b) = last {
            self.blocks.push_back(b);
        }
        self.blocks.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    pub fn stats(&self) -> MediaStats {
        let r: ReceiverStats = self.receiver.stats();
        MediaStats {
            sent: self.sender.packets_sent(),
            received: r.received,
            lost: r.lost.max(0) as u64,
            late: r.late,
            jitter_ms: r.jitter_ms(),
        }
    }

    /// Where our RTCP goes: the far end's RTP port + 1 (RFC 3550 §11; no `a=rtcp` handling).
    pub fn rtcp_remote(&self) -> SocketAddr {
        SocketAddr::new(self.remote.ip(), self.remote.port().wrapping_add(1))
    }

    /// A compound RTCP report (SR or RR + SDES CNAME) when one is due, written into `out`.
    /// `ntp` is the wall clock as a 64-bit NTP timestamp (the caller reads the clock).
    pub fn poll_rtcp(
        &mut self,
        now: Instant,
        ntp: u64,
        cname: &str,
        out: &mut [u8],
    ) -> Option<usize> {
        if now < self.rtcp.poll_timeout() {
            return None;
        }
        self.rtcp
            .write_report(now, ntp, &self.sender, &mut self.receiver, cname, out)
            .ok()
    }

    /// An RTCP datagram from the far end (malformed ones are ignored).
    pub fn receive_rtcp(&mut self, now: Instant, ntp: u64, datagram: &[u8]) {
        let _ = self.rtcp.handle_datagram(now, ntp, datagram);
    }

    /// Round-trip time from the far end's reports (RFC 3550 §6.4.1), once known.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtcp.rtt()
    }

    /// The AMD verdict so far.
    pub fn amd_decision(&self) -> Option<&Decision> {
        self.amd.as_ref().and_then(|a| a.decision())
    }

    fn drain_amd(&mut self) {
        let Some(amd) = self.amd.as_mut() else {
            return;
        };
        let mut got = [None, None];
        for slot in &mut got {
            *slot = amd.poll_event();
        }
        for ev in got.into_iter().flatten() {
            self.event(match ev {
                AmdEvent::Decided(d) => MediaEvent::Amd(d),
                AmdEvent::BeepDetected(b) => MediaEvent::Beep(b),
            });
        }
    }

    fn drain_rfc4733(&mut self, now: Instant) {
        while let Some(d) = self.dtmf_rx.poll_digit() {
            let started = now
                .checked_sub(Duration::from_millis(u64::from(d.elapsed_ms)))
                .unwrap_or(now);
            if let Some(k) = self.collector.push(DigitSource::Rfc4733, d.digit, started) {
                self.event(MediaEvent::Digit {
                    digit: k.as_char(),
                    source: DigitSource::Rfc4733,
                });
            }
        }
    }

    fn maybe_latch(&mut self, src: SocketAddr) {
        if self.latched || src == self.remote {
            self.latched = true;
            return;
        }
        let sdp_ip = self.sdp_remote.ip();
        let latch = match self.latch {
            Latch::Never => false,
            Latch::Always => true,
            Latch::WhenPrivate => is_private(sdp_ip) || sdp_ip.is_unspecified(),
        };
        if latch {
            self.remote = src;
            self.latched = true;
            self.event(MediaEvent::Latched { remote: src });
        }
    }

    fn event(&mut self, ev: MediaEvent) {
        if self.events.len() < MAX_EVENTS {
            self.events.push_back(ev);
        }
    }
}

/// RFC 1918, RFC 6598 (CGNAT), link-local and unique-local addresses.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private() || v4.is_link_local() || (o[0] == 100 && (o[1] & 0xC0) == 64)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            (s[0] & 0xFE00) == 0xFC00 || (s[0] & 0xFFC0) == 0xFE80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::DtmfTone;

    const A: &str = "127.0.0.1:30000";
    const B: &str = "127.0.0.1:30002";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn pair(t0: Instant, te: Option<u8>) -> (CallMedia, CallMedia) {
        let a = CallMedia::new(t0, MediaParams::new(Codec::Pcma, te, addr(B), 1 << 40 | 7));
        let b = CallMedia::new(t0, MediaParams::new(Codec::Pcma, te, addr(A), 2 << 40 | 9));
        (a, b)
    }

    /// Run `ticks` media-clock ticks; each side's packet reaches the other at once.
    fn run(
        a: &mut CallMedia,
        b: &mut CallMedia,
        t0: Instant,
        from: u32,
        ticks: u32,
    ) -> Vec<MediaEvent> {
        let mut buf = [0u8; 1500];
        let mut events = Vec::new();
        for k in from..from + ticks {
            let now = t0 + Duration::from_millis(20 * u64::from(k));
            if let Some(n) = a.tick(now, &mut buf) {
                b.receive(now, addr(A), &buf[..n]);
            }
            if let Some(n) = b.tick(now, &mut buf) {
                a.receive(now, addr(B), &buf[..n]);
            }
            while let Some(e) = a.poll_event() {
                events.push(e);
            }
            while b.poll_event().is_some() {}
        }
        events
    }

    fn digits(events: &[MediaEvent]) -> String {
        events
            .iter()
            .filter_map(|e| match e {
                MediaEvent::Digit { digit, .. } => Some(*digit),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn rfc4733_digits_arrive_once_each() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0, Some(101));
        assert_eq!(b.send_digits("123#"), 4);
        let events = run(&mut a, &mut b, t0, 0, 100);
        assert_eq!(digits(&events), "123#");
        assert!(events.iter().all(|e| !matches!(e, MediaEvent::RtpTimeout)));
        let s = a.stats();
        assert_eq!((s.sent, s.lost), (100, 0));
        assert!(s.received >= 99, "{s:?}");
    }

    #[test]
    fn in_band_digits_are_detected_when_no_telephone_event_was_agreed() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0, None);
        assert_eq!(b.send_digits("5"), 0, "no RFC 4733 without telephone-event");
        let mut pcm = vec![0i16; 800];
        for d in "59".chars() {
            let mut tone = DtmfTone::new(
                Digit::from_char(d).unwrap(),
                -10.0,
                Duration::from_millis(100),
            );
            let mut buf = vec![0i16; 800];
            tone.fill(&mut buf);
            pcm.extend_from_slice(&buf);
            pcm.extend_from_slice(&[0; 800]);
        }
        b.play(Arc::new(Prompt::from_pcm("tones", &pcm).unwrap()));
        let events = run(&mut a, &mut b, t0, 0, 60);
        assert_eq!(digits(&events), "59");
    }

    #[test]
    fn prompt_plays_at_one_frame_per_tick_then_finishes() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0, Some(101));
        let prompt = Arc::new(Prompt::from_pcm("p", &vec![1000i16; 160 * 25]).unwrap());
        a.play(prompt);
        assert!(a.is_playing());
        let events = run(&mut a, &mut b, t0, 0, 30);
        let finished = events
            .iter()
            .filter(|e| matches!(e, MediaEvent::PromptFinished))
            .count();
        assert_eq!(finished, 1);
        assert!(!a.is_playing());
        // Silence keeps flowing after the prompt: 30 packets for 30 ticks.
        assert_eq!(a.stats().sent, 30);
    }

    #[test]
    fn rtp_timeout_fires_once_and_hold_suspends_sending() {
        let t0 = Instant::now();
        let mut p = MediaParams::new(Codec::Pcmu, Some(101), addr(B), 3);
        p.rtp_timeout = Duration::from_secs(2);
        let mut a = CallMedia::new(t0, p);
        let mut buf = [0u8; 512];
        let mut timeouts = 0;
        for k in 0..200u64 {
            assert!(
                a.tick(t0 + Duration::from_millis(20 * k), &mut buf)
                    .is_some()
            );
            while let Some(e) = a.poll_event() {
                timeouts += usize::from(e == MediaEvent::RtpTimeout);
            }
        }
        assert_eq!(timeouts, 1);
        // On hold (we may not send): nothing goes out, the timestamp still advances.
        a.update(
            Codec::Pcmu,
            Some(101),
            addr(B),
            Direction {
                send: false,
                receive: true,
            },
        );
        assert_eq!(a.tick(t0 + Duration::from_secs(5), &mut buf), None);
    }

    #[test]
    fn latches_onto_the_real_source_only_for_private_sdp_addresses() {
        let t0 = Instant::now();
        let (_, mut b) = pair(t0, Some(101));
        let mut buf = [0u8; 512];
        let n = b.tick(t0, &mut buf).unwrap();
        let packet = buf[..n].to_vec();
        let nat = addr("203.0.113.5:40000");
        // SDP says 10.0.0.5 (behind NAT): latch.
        let mut m = CallMedia::new(
            t0,
            MediaParams::new(Codec::Pcma, Some(101), addr("10.0.0.5:4000"), 5),
        );
        m.receive(t0, nat, &packet);
        assert_eq!(m.remote(), nat);
        assert_eq!(m.poll_event(), Some(MediaEvent::Latched { remote: nat }));
        // SDP says a public address: keep it.
        let mut m = CallMedia::new(
            t0,
            MediaParams::new(Codec::Pcma, Some(101), addr("198.51.100.1:4000"), 5),
        );
        m.receive(t0, nat, &packet);
        assert_eq!(m.remote(), addr("198.51.100.1:4000"));
    }

    #[test]
    fn recording_keeps_both_sides_aligned() {
        let t0 = Instant::now();
        let mut p = MediaParams::new(Codec::Pcma, Some(101), addr(B), 1 << 40 | 7);
        p.record = true;
        let mut a = CallMedia::new(t0, p);
        let mut b = CallMedia::new(t0, MediaParams::new(Codec::Pcma, Some(101), addr(A), 11));
        a.play(Arc::new(
            Prompt::from_pcm("p", &vec![4000i16; 160 * 10]).unwrap(),
        ));
        let _ = run(&mut a, &mut b, t0, 0, 60);
        let mut frames = 0;
        while let Some(block) = a.take_record_block() {
            frames += block.frames();
        }
        if let Some(last) = a.finish_recording() {
            frames += last.frames();
        }
        while let Some(block) = a.take_record_block() {
            frames += block.frames();
        }
        assert_eq!(frames, 60, "one stereo frame per tick");
    }

    #[test]
    fn rtcp_reports_flow_every_few_seconds_and_give_a_round_trip_time() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0, Some(101));
        let mut buf = [0u8; 1500];
        let mut rtcp = [0u8; 512];
        let mut reports = 0;
        for k in 0..1000u64 {
            let now = t0 + Duration::from_millis(20 * k);
            let ntp = crate::rtcp::ntp_from_unix(Duration::from_secs(1_700_000_000) + (now - t0));
            if let Some(n) = a.tick(now, &mut buf) {
                b.receive(now, addr(A), &buf[..n]);
            }
            if let Some(n) = b.tick(now, &mut buf) {
                a.receive(now, addr(B), &buf[..n]);
            }
            if let Some(n) = a.poll_rtcp(now, ntp, "a@test", &mut rtcp) {
                reports += 1;
                b.receive_rtcp(now, ntp, &rtcp[..n]);
            }
            if let Some(n) = b.poll_rtcp(now, ntp, "b@test", &mut rtcp) {
                a.receive_rtcp(now, ntp, &rtcp[..n]);
            }
        }
        // 20 s at a randomised 5 s interval (first at half of it): 3 to 6 reports.
        assert!((3..=6).contains(&reports), "{reports} reports");
        assert!(
            a.rtt().is_some(),
            "A learned the round trip from B's reports"
        );
        assert_eq!(a.rtcp_remote(), "127.0.0.1:30003".parse().unwrap());
    }

    /// Length and truncation of each captured utterance.
    fn utterances(events: &[MediaEvent]) -> Vec<(usize, bool)> {
        events
            .iter()
            .filter_map(|e| match e {
                MediaEvent::Utterance { pcm, truncated } => Some((pcm.len(), *truncated)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn utterances_are_captured_from_just_before_speech_start_to_its_end() {
        use crate::synth::{Rng, pcm, silence, word};
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0, None);
        a.start_capture(Duration::from_secs(5));
        let mut rng = Rng::new(4);
        // 1 s of quiet, a 0.6 s word, 1 s of quiet, then a 3 s word (longer than a 2 s cap).
        let mut sig = silence(1000);
        sig.extend(word(600, -20.0, &mut rng));
        sig.extend(silence(1000));
        sig.extend(word(3000, -20.0, &mut rng));
        sig.extend(silence(1000));
        b.play(Arc::new(Prompt::from_pcm("speech", &pcm(&sig)).unwrap()));
        let events = run(&mut a, &mut b, t0, 0, 100);
        let utt = utterances(&events);
        assert_eq!(utt.len(), 1, "{utt:?}");
        // 200 ms pre-roll + the word + the 300 ms hang-over (± a frame of envelope).
        let ms = utt[0].0 / 8;
        assert!((1060..=1160).contains(&ms), "{ms} ms");
        assert!(!utt[0].1);
        a.start_capture(Duration::from_secs(2));
        let events = run(&mut a, &mut b, t0, 100, 200);
        let utt = utterances(&events);
        assert_eq!(utt, vec![(16_000, true)], "cut at the 2 s cap");
        a.stop_capture();
        assert!(!a.is_capturing());
    }

    #[test]
    fn per_call_state_is_small() {
        let size = std::mem::size_of::<CallMedia>();
        assert!(size < 8 * 1024, "CallMedia is {size} bytes");
    }
}
