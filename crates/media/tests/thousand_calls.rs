//! 1,000 concurrent calls exchanging audio in process, in simulated time.
//!
//! Each call is a pair of [`CallMedia`]: ours (a prompt playing, AMD, VAD and in-band DTMF on,
//! recording when the far side speaks) and the far side's, which does one of five things:
//!
//! | kind | far side | we expect |
//! |---|---|---|
//! | `Rfc4733` | keys 4 digits as RFC 4733 events after 0.5 s, silence otherwise | those digits, from RFC 4733 |
//! | `InBand` | plays 4 digits as 100 ms in-band tones over line noise (−18…−6 dBm0, twist −2…+4 dB) | those digits, in-band |
//! | `Speech` | 0.4 s of line noise, a 0.6 s "алло", then silence | AMD `HUMAN` in under 3 s |
//! | `Silent` | only silence | AMD `MACHINE` (initial silence) |
//! | `Machine` | a 2.5 s greeting in bursts, then a 0.5 s 980 Hz beep | AMD `MACHINE`, then the beep |
//!
//! The two sides are connected by an in-memory network, seeded: 1 % of datagrams are lost, the
//! rest arrive 1–20 ms after they were sent plus 0, 1 or 2 frames (so packets overtake each
//! other by up to two frames). The clock is simulated: 500 media-clock ticks (10 s) run as fast
//! as the code does, nothing sleeps.
//!
//! Checked per call: the digit stream (exact, each digit once, but see
//! [`ALLOW_SPLIT_IN_BAND_DIGIT_AFTER_LOSS`]); RTP accounting in both
//! directions against what the network did (sent = delivered + dropped, received = delivered,
//! lost = the drops the receiver could see); one playout frame per tick (a shadow
//! [`RtpReceiver`] fed the same datagrams is proven in lockstep with the call's own and shows
//! the stream never stalls after it starts, with every delivered audio packet either played,
//! late or trimmed; the recorder gets exactly one stereo frame per tick, the bot channel is the
//! prompt frame by frame and the callee channel the far side's audio in order, every delivered
//! frame once, at a latency of 3–5 ticks); AMD verdicts;
//! no RTP timeout; no false in-band digit on the far side, which hears our speech-like prompt.
//!
//! Run alone: `cargo test -p media --test thousand_calls -- --nocapture` (prints wall time).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::amd::{AmdConfig, Cause, Decision, Verdict};
use media::dtmf::{Digit, DigitSource};
use media::g711::{self, Codec};
use media::goertzel::DtmfTone;
use media::session::{CallMedia, MediaEvent, MediaParams};
use media::stream::ReceiverConfig;
use media::synth::Rng;
use media::{FRAME_SAMPLES, Playout, Prompt, RtpReceiver};

const CALLS: usize = 1000;
/// 10 s of call time.
const TICKS: u32 = 500;
const TICK: Duration = Duration::from_millis(20);
/// Datagrams lost, per mille.
const LOSS_PER_MILLE: u64 = 10;
/// Extra delay of a datagram, in whole frames: 0, 1 or 2.
const MAX_EXTRA_FRAMES: u64 = 2;
/// Delivery buckets: a datagram sent on tick t arrives before tick t + 1 + extra.
const BUCKETS: usize = MAX_EXTRA_FRAMES as usize + 2;
/// Our prompt is 8 s, so that it finishes (once) inside the call.
const PROMPT_SECONDS: usize = 8;
/// RFC 4733 digits start on this tick (0.5 s).
const RFC4733_AT_TICK: u32 = 25;
const TE_PT: u8 = 101;
/// The receivers' playout delay, frames.
const DEPTH: u32 = media::stream::DEFAULT_DEPTH as u32;
const RTP_TIMEOUT: Duration = Duration::from_secs(1);
const DIGITS_PER_CALL: usize = 4;
/// Every n-th far side runs the in-band detector on our prompt.
const FAR_LISTENERS_EVERY: usize = 5;
/// In the in-band prompt, digit k's tone is frames `20 + 10k .. 25 + 10k` (see [`in_band`]).
const FIRST_TONE_FRAME: u64 = 20;

/// Fixed bug, kept as a switch for diagnosis: a lost packet inside an in-band tone used to
/// reach the Goertzel detector as 20 ms of zeros and split the key press in two. `CallMedia`
/// now conceals a missing frame by repeating the last one for the detectors. `false` requires
/// every digit exactly once.
const ALLOW_SPLIT_IN_BAND_DIGIT_AFTER_LOSS: bool = false;
/// Largest datagram: 12-byte header and 160 bytes of G.711.
const MAX_DATAGRAM: usize = 12 + FRAME_SAMPLES;

/// The whole run is a function of [`SEED`] (`media::synth::Rng` is xorshift64*, seeded).
const SEED: u64 = 0x00C0_FFEE_1000_CA11;

// ---------------------------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------------------------

const FS: f64 = 8000.0;

/// Line noise at about −60 dBFS.
fn noise(rng: &mut Rng, samples: usize) -> Vec<i16> {
    (0..samples)
        .map(|_| rng.range(-30.0, 30.0) as i16)
        .collect()
}

/// Speech-like audio: harmonics (1/k) of a fundamental gliding between 100 and 250 Hz, in
/// bursts of `on_ms` separated by `off_ms` of line noise (`off_ms` 0: one continuous burst).
fn speech(rng: &mut Rng, ms: usize, on_ms: usize, off_ms: usize, peak: f64) -> Vec<i16> {
    let mut phase = [0.0f64; 30];
    let period = (on_ms + off_ms) * 8;
    (0..ms * 8)
        .map(|n| {
            let t = n as f64 / FS;
            let f0 = 175.0 + 75.0 * (2.0 * std::f64::consts::PI * 1.3 * t).sin();
            let mut x = 0.0;
            for (k, ph) in phase.iter_mut().enumerate() {
                let h = (k + 1) as f64 * f0;
                *ph += 2.0 * std::f64::consts::PI * h / FS;
                if h < 3400.0 {
                    x += ph.sin() / (k + 1) as f64;
                }
            }
            let on = n % period < on_ms * 8;
            (if on { peak * x } else { 0.0 } + rng.range(-30.0, 30.0)) as i16
        })
        .collect()
}

/// A steady tone (the voicemail beep).
fn tone(hz: f64, amplitude: f64, samples: usize) -> Vec<i16> {
    (0..samples)
        .map(|n| (amplitude * (2.0 * std::f64::consts::PI * hz * n as f64 / FS).sin()) as i16)
        .collect()
}

/// `digits` as in-band DTMF: 0.4 s of noise, then per digit 100 ms of tone and 100 ms of
/// noise, each digit at its own level and twist.
fn in_band(rng: &mut Rng, digits: &str) -> Vec<i16> {
    let mut pcm = noise(rng, 3200);
    for c in digits.chars() {
        let level = rng.range(-18.0, -6.0) as f32;
        let twist = rng.range(-2.0, 4.0) as f32;
        let digit = Digit::from_char(c).expect("a key");
        let mut t = DtmfTone::new(digit, level, Duration::from_millis(100)).with_twist(twist);
        let mut buf = noise(rng, 800);
        let mut tone = [0i16; 800];
        t.fill(&mut tone);
        for (b, s) in buf.iter_mut().zip(tone) {
            *b = b.saturating_add(s);
        }
        pcm.extend_from_slice(&buf);
        pcm.extend(noise(rng, 800));
    }
    pcm
}

/// Whether `got` is `expected` where each digit flagged `true` may also appear twice.
fn matches_with_splits(expected: &[(char, bool)], got: &[char]) -> bool {
    match expected.split_first() {
        None => got.is_empty(),
        Some((&(c, may_split), rest)) => {
            (got.first() == Some(&c) && matches_with_splits(rest, &got[1..]))
                || (may_split
                    && got.len() >= 2
                    && got[..2] == [c, c]
                    && matches_with_splits(rest, &got[2..]))
        }
    }
}

fn random_digits(rng: &mut Rng) -> String {
    (0..DIGITS_PER_CALL)
        .map(|_| Digit::ALL[rng.below(16) as usize].as_char())
        .collect()
}

/// A frame as it comes out of the far side's encoder and our decoder.
fn through_g711(codec: Codec, pcm: &[i16; FRAME_SAMPLES]) -> [i16; FRAME_SAMPLES] {
    let mut codes = [0u8; FRAME_SAMPLES];
    let mut back = [0i16; FRAME_SAMPLES];
    g711::encode(codec, pcm, &mut codes);
    g711::decode(codec, &codes, &mut back);
    back
}

// ---------------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Rfc4733,
    InBand,
    Speech,
    Silent,
    Machine,
}

const KINDS: [Kind; 5] = [
    Kind::Rfc4733,
    Kind::InBand,
    Kind::Speech,
    Kind::Silent,
    Kind::Machine,
];

/// What the network did to one direction of one call.
#[derive(Debug, Default)]
struct Path {
    sent: u64,
    dropped: Vec<u64>,
    delivered: u64,
    /// Lowest and highest send index delivered.
    first: Option<u64>,
    last: Option<u64>,
    /// Audio (not telephone-event) datagrams delivered.
    audio_delivered: u64,
}

impl Path {
    /// Losses the receiver can know about: drops between the first and last delivered packet.
    fn visible_losses(&self) -> u64 {
        match (self.first, self.last) {
            (Some(a), Some(b)) => self.dropped.iter().filter(|&&i| a < i && i < b).count() as u64,
            _ => 0,
        }
    }

    fn deliver(&mut self, index: u64, audio: bool) {
        self.delivered += 1;
        self.audio_delivered += u64::from(audio);
        self.first = Some(self.first.map_or(index, |f| f.min(index)));
        self.last = Some(self.last.map_or(index, |l| l.max(index)));
    }
}

/// Playout of the shadow receiver.
#[derive(Debug, Default)]
struct PlayoutCount {
    frames: u64,
    missing: u64,
    idle: u64,
    /// Idle after the buffer's initial fill: the stream stalled.
    idle_after_fill: u64,
    /// The tick before which our side's first datagram arrived.
    first_arrival_tick: Option<u32>,
}

#[derive(Debug)]
struct Call {
    kind: Kind,
    codec: Codec,
    ours: CallMedia,
    far: CallMedia,
    /// Fed exactly what `ours` is fed, popped once per tick: shows what playout gave.
    shadow: RtpReceiver,
    expected_digits: String,
    /// The far side's audio, when it plays a prompt (for the callee-channel check).
    far_prompt: Option<Arc<Prompt>>,
    digits: String,
    digit_sources: Vec<DigitSource>,
    far_digits: String,
    amd: Vec<Decision>,
    beeps: u32,
    prompt_finished: u32,
    timeouts: u32,
    digits_sent: u32,
    to_far: Path,
    to_ours: Path,
    playout: PlayoutCount,
    /// Recording (our side): stereo frames, and the callee/bot checks.
    recorded_frames: u64,
    bot_mismatches: u64,
    /// Indices of far prompt frames found in the callee channel, in recorded order.
    callee_frames_heard: Vec<usize>,
    callee_unknown_frames: u64,
    /// Smallest and largest (recording tick − far prompt frame): the playout latency in ticks.
    callee_latency: Option<(usize, usize)>,
}

impl Call {
    fn record(&mut self, block: &media::record::Block, ours_prompt: &Prompt) {
        let first = block.first_frame() as usize;
        for (k, frame) in block.samples().chunks_exact(2 * FRAME_SAMPLES).enumerate() {
            let at = first + k;
            let mut callee = [0i16; FRAME_SAMPLES];
            let mut bot = [0i16; FRAME_SAMPLES];
            for (i, pair) in frame.chunks_exact(2).enumerate() {
                callee[i] = pair[0];
                bot[i] = pair[1];
            }
            // The bot channel is our prompt, frame for frame, then silence.
            let want_bot = ours_prompt
                .frame_pcm(at)
                .copied()
                .unwrap_or([0; FRAME_SAMPLES]);
            if bot != want_bot {
                self.bot_mismatches += 1;
            }
            // The callee channel is the far side's audio through G.711, in order, or silence.
            if let Some(p) = &self.far_prompt {
                let silence = through_g711(self.codec, &[0; FRAME_SAMPLES]);
                if callee == [0; FRAME_SAMPLES] || callee == silence {
                    continue;
                }
                let from = self.callee_frames_heard.last().map_or(0, |&j| j + 1);
                match (from..p.frames())
                    .find(|&j| callee == through_g711(self.codec, p.frame_pcm(j).expect("frame")))
                {
                    Some(j) => {
                        self.callee_frames_heard.push(j);
                        let lat = at.wrapping_sub(j);
                        self.callee_latency = Some(
                            self.callee_latency
                                .map_or((lat, lat), |(lo, hi)| (lo.min(lat), hi.max(lat))),
                        );
                    }
                    None => self.callee_unknown_frames += 1,
                }
            }
        }
        self.recorded_frames += block.frames() as u64;
    }
}

/// One datagram in flight.
#[derive(Debug, Clone, Copy)]
struct Datagram {
    /// Arrival, ms since the start.
    arrival_ms: u64,
    call: u32,
    /// To our side (else to the far side).
    to_ours: bool,
    /// Send index on its path (= its RTP sequence order).
    index: u64,
    len: u8,
    data: [u8; MAX_DATAGRAM],
}

struct Network {
    rng: Rng,
    buckets: Vec<Vec<Datagram>>,
    dropped: u64,
    delivered: u64,
    reordered_pairs: u64,
}

impl Network {
    /// A datagram sent on `tick`: dropped, or queued for the tick it arrives before.
    fn send(&mut self, tick: u32, call: u32, to_ours: bool, path: &mut Path, bytes: &[u8]) {
        let index = path.sent;
        path.sent += 1;
        if self.rng.below(1000) < LOSS_PER_MILLE {
            path.dropped.push(index);
            self.dropped += 1;
            return;
        }
        let extra = self.rng.below(MAX_EXTRA_FRAMES + 1);
        let within = 1 + self.rng.below(20);
        let arrival_ms = u64::from(tick) * 20 + extra * 20 + within;
        let arrive_tick = arrival_ms.div_ceil(20) as usize;
        let mut data = [0u8; MAX_DATAGRAM];
        data[..bytes.len()].copy_from_slice(bytes);
        self.buckets[arrive_tick % BUCKETS].push(Datagram {
            arrival_ms,
            call,
            to_ours,
            index,
            len: bytes.len() as u8,
            data,
        });
    }
}

fn addr(call: usize, ours: bool) -> SocketAddr {
    let c = call as u32;
    let ip = Ipv4Addr::new(10, if ours { 1 } else { 2 }, (c >> 8) as u8, c as u8);
    SocketAddr::new(IpAddr::V4(ip), 40_000)
}

fn is_audio(datagram: &[u8]) -> bool {
    datagram[1] & 0x7F != TE_PT
}

/// Deliver every datagram of `bucket`, in arrival order.
fn deliver(
    tick: u32,
    bucket: &mut Vec<Datagram>,
    calls: &mut [Call],
    t0: Instant,
    net_stats: &mut (u64, u64),
) {
    bucket.sort_by_key(|d| d.arrival_ms);
    for d in bucket.drain(..) {
        let call = &mut calls[d.call as usize];
        let bytes = &d.data[..usize::from(d.len)];
        let now = t0 + Duration::from_millis(d.arrival_ms);
        net_stats.0 += 1;
        if d.to_ours {
            let last = call.to_ours.last;
            if last.is_some_and(|l| l > d.index) {
                net_stats.1 += 1;
            }
            call.to_ours.deliver(d.index, is_audio(bytes));
            call.playout.first_arrival_tick.get_or_insert(tick);
            call.ours.receive(now, addr(d.call as usize, false), bytes);
            let _ = call.shadow.push(now, bytes);
        } else {
            let last = call.to_far.last;
            if last.is_some_and(|l| l > d.index) {
                net_stats.1 += 1;
            }
            call.to_far.deliver(d.index, is_audio(bytes));
            call.far.receive(now, addr(d.call as usize, true), bytes);
        }
    }
}

#[test]
fn thousand_calls_exchange_audio_in_simulated_time() {
    let wall = Instant::now();
    let mut rng = Rng::new(SEED);

    // Shared prompts: ours (8 s of speech-like audio), the "алло", the machine's greeting+beep.
    let ours_prompt = Arc::new(
        Prompt::from_pcm(
            "ours",
            &speech(&mut rng, PROMPT_SECONDS * 1000, 300, 200, 2500.0),
        )
        .expect("prompt"),
    );
    let hello = {
        let mut pcm = noise(&mut rng, 3200);
        pcm.extend(speech(&mut rng, 600, 600, 0, 3000.0));
        Arc::new(Prompt::from_pcm("hello", &pcm).expect("prompt"))
    };
    let greeting = {
        let mut pcm = noise(&mut rng, 2400);
        pcm.extend(speech(&mut rng, 2500, 300, 200, 3000.0));
        pcm.extend(noise(&mut rng, 4800));
        // Over line noise, so that no two frames of the beep are alike.
        let beep = tone(980.0, 6000.0, 4000);
        pcm.extend(beep.iter().zip(noise(&mut rng, 4000)).map(|(b, n)| b + n));
        Arc::new(Prompt::from_pcm("greeting", &pcm).expect("prompt"))
    };

    let t0 = Instant::now();
    let mut calls: Vec<Call> = (0..CALLS)
        .map(|i| {
            let kind = KINDS[i % KINDS.len()];
            let codec = if i % 2 == 0 { Codec::Pcma } else { Codec::Pcmu };
            let mut p = MediaParams::new(codec, Some(TE_PT), addr(i, false), rng.next_u64());
            p.amd = Some(AmdConfig::default());
            p.rtp_timeout = RTP_TIMEOUT;
            p.record = i % 10 == 2 || i % 10 == 4;
            let mut ours = CallMedia::new(t0, p);
            ours.play(ours_prompt.clone());
            let mut p = MediaParams::new(codec, Some(TE_PT), addr(i, true), rng.next_u64());
            p.rtp_timeout = RTP_TIMEOUT;
            // Some far sides listen for in-band digits in our speech-like prompt (there must
            // be none); not all, to keep the debug build fast.
            p.inband_dtmf = i % FAR_LISTENERS_EVERY == 0;
            let mut far = CallMedia::new(t0, p);
            let (expected_digits, far_prompt) = match kind {
                Kind::Rfc4733 => (random_digits(&mut rng), None),
                Kind::InBand => {
                    let d = random_digits(&mut rng);
                    let pcm = in_band(&mut rng, &d);
                    (d, Some(Arc::new(Prompt::from_pcm("dtmf", &pcm).unwrap())))
                }
                Kind::Speech => (String::new(), Some(hello.clone())),
                Kind::Silent => (String::new(), None),
                Kind::Machine => (String::new(), Some(greeting.clone())),
            };
            if let Some(p) = &far_prompt {
                far.play(p.clone());
            }
            Call {
                kind,
                codec,
                ours,
                far,
                shadow: RtpReceiver::new(ReceiverConfig::new(codec, Some(TE_PT))),
                expected_digits,
                far_prompt,
                digits: String::new(),
                digit_sources: Vec::new(),
                far_digits: String::new(),
                amd: Vec::new(),
                beeps: 0,
                prompt_finished: 0,
                timeouts: 0,
                digits_sent: 0,
                to_far: Path::default(),
                to_ours: Path::default(),
                playout: PlayoutCount::default(),
                recorded_frames: 0,
                bot_mismatches: 0,
                callee_frames_heard: Vec::new(),
                callee_unknown_frames: 0,
                callee_latency: None,
            }
        })
        .collect();
    let setup = wall.elapsed();

    let mut net = Network {
        rng: Rng::new(SEED ^ 0x5151),
        buckets: (0..BUCKETS)
            .map(|_| Vec::with_capacity(2 * CALLS))
            .collect(),
        dropped: 0,
        delivered: 0,
        reordered_pairs: 0,
    };
    let mut net_stats = (0u64, 0u64);
    let mut buf = [0u8; 1500];
    for tick in 0..TICKS {
        // Everything that arrived since the last tick, in arrival order. (Datagrams sent on
        // this tick go to the other buckets.)
        let slot = tick as usize % BUCKETS;
        let mut bucket = std::mem::take(&mut net.buckets[slot]);
        deliver(tick, &mut bucket, &mut calls, t0, &mut net_stats);
        net.buckets[slot] = bucket;
        let now = t0 + TICK * tick;
        for (i, call) in calls.iter_mut().enumerate() {
            if call.kind == Kind::Rfc4733 && tick == RFC4733_AT_TICK {
                let n = call.far.send_digits(&call.expected_digits);
                assert_eq!(n, DIGITS_PER_CALL);
            }
            if let Some(n) = call.ours.tick(now, &mut buf) {
                net.send(tick, i as u32, false, &mut call.to_far, &buf[..n]);
            }
            if let Some(n) = call.far.tick(now, &mut buf) {
                net.send(tick, i as u32, true, &mut call.to_ours, &buf[..n]);
            }
            match call.shadow.pop_frame() {
                Playout::Frame(_) => call.playout.frames += 1,
                Playout::Missing => call.playout.missing += 1,
                Playout::Idle => {
                    // The first `depth` pops after the first arrival may be Idle (filling),
                    // even when a reordered older packet already played.
                    call.playout.idle += 1;
                    let filled = call.playout.first_arrival_tick.map(|t| t + DEPTH);
                    if filled.is_some_and(|f| tick >= f) {
                        call.playout.idle_after_fill += 1;
                    }
                }
            }
            while let Some(ev) = call.ours.poll_event() {
                match ev {
                    MediaEvent::Digit { digit, source } => {
                        call.digits.push(digit);
                        call.digit_sources.push(source);
                    }
                    MediaEvent::Amd(d) => call.amd.push(d),
                    MediaEvent::Beep(_) => call.beeps += 1,
                    MediaEvent::PromptFinished => call.prompt_finished += 1,
                    MediaEvent::RtpTimeout => call.timeouts += 1,
                    _ => {}
                }
            }
            while let Some(ev) = call.far.poll_event() {
                match ev {
                    MediaEvent::Digit { digit, .. } => call.far_digits.push(digit),
                    MediaEvent::RtpTimeout => call.timeouts += 1,
                    MediaEvent::DigitsSent => call.digits_sent += 1,
                    _ => {}
                }
            }
            while let Some(block) = call.ours.take_record_block() {
                call.record(&block, &ours_prompt);
            }
        }
    }
    // The datagrams still in flight arrive; the shadow plays what it still holds.
    for k in 0..BUCKETS {
        let mut bucket = std::mem::take(&mut net.buckets[(TICKS as usize + k) % BUCKETS]);
        deliver(
            TICKS + k as u32,
            &mut bucket,
            &mut calls,
            t0,
            &mut net_stats,
        );
    }
    for call in &mut calls {
        if let Some(block) = call.ours.finish_recording() {
            call.record(&block, &ours_prompt);
        }
        while let Some(block) = call.ours.take_record_block() {
            call.record(&block, &ours_prompt);
        }
        for _ in 0..2 * media::stream::BUFFER_FRAMES {
            if let Playout::Frame(_) = call.shadow.pop_frame() {
                call.playout.frames += 1;
            }
        }
    }
    net.delivered = net_stats.0;
    net.reordered_pairs = net_stats.1;
    let elapsed = wall.elapsed();

    // ---- Checks ----
    let mut failures: Vec<String> = Vec::new();
    let mut failed = 0usize;
    let mut fail = |i: usize, call: &Call, what: String| {
        failed += 1;
        if failures.len() < 40 {
            failures.push(format!(
                "call {i} ({:?}, {:?}): {what}",
                call.kind, call.codec
            ));
        }
    };
    let (mut late_total, mut lost_total, mut trimmed_total, mut resync_total) = (0, 0, 0, 0);
    let mut verdicts = std::collections::BTreeMap::<(Kind, String), u32>::new();
    let mut human_elapsed_max = Duration::ZERO;
    let mut tones_hit = 0u32;
    let mut latency_range = (usize::MAX, 0usize);
    let mut tone_frames_lost = [0u32; 5];
    let mut split_digits: Vec<String> = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        // Digits: exactly the expected ones, each once, from the expected source.
        let tone_hit: Vec<(char, bool)> = call
            .expected_digits
            .chars()
            .enumerate()
            .map(|(k, c)| {
                let tone = FIRST_TONE_FRAME + 10 * k as u64..FIRST_TONE_FRAME + 10 * k as u64 + 5;
                let hit = call.kind == Kind::InBand
                    && call.to_ours.dropped.iter().any(|i| tone.contains(i));
                (c, hit)
            })
            .collect();
        if tone_hit.iter().any(|&(_, hit)| hit) {
            tones_hit += 1;
            for &f in &call.to_ours.dropped {
                if let Some(rel) = f.checked_sub(FIRST_TONE_FRAME)
                    && rel / 10 < DIGITS_PER_CALL as u64
                    && rel % 10 < 5
                {
                    tone_frames_lost[(rel % 10) as usize] += 1;
                }
            }
        }
        let got: Vec<char> = call.digits.chars().collect();
        let tolerated = ALLOW_SPLIT_IN_BAND_DIGIT_AFTER_LOSS
            && call.digits != call.expected_digits
            && matches_with_splits(&tone_hit, &got);
        if tolerated {
            // Which frame of which tone the network lost.
            let lost: Vec<String> = call
                .to_ours
                .dropped
                .iter()
                .filter_map(|&f| {
                    let (k, at) = (f.checked_sub(FIRST_TONE_FRAME)? / 10, f % 10);
                    (k < DIGITS_PER_CALL as u64 && at < 5)
                        .then(|| format!("frame {} of digit {}'s tone", at + 1, k + 1))
                })
                .collect();
            split_digits.push(format!(
                "call {i}: {:?} for {:?}; lost {}",
                call.digits,
                call.expected_digits,
                lost.join(", ")
            ));
        } else if call.digits != call.expected_digits {
            fail(
                i,
                call,
                format!(
                    "digits {:?} ({:?}), expected {:?}",
                    call.digits, call.digit_sources, call.expected_digits
                ),
            );
        }
        let want_source = match call.kind {
            Kind::Rfc4733 => DigitSource::Rfc4733,
            _ => DigitSource::InBand,
        };
        if call.digit_sources.iter().any(|&s| s != want_source) {
            fail(i, call, format!("digit sources {:?}", call.digit_sources));
        }
        if !call.far_digits.is_empty() {
            fail(
                i,
                call,
                format!("far side heard digits {:?} in our prompt", call.far_digits),
            );
        }
        if call.kind == Kind::Rfc4733 && call.digits_sent != 1 {
            fail(i, call, format!("DigitsSent {} times", call.digits_sent));
        }
        // RTP: every packet accounted for, both ways.
        for (dir, path, sender, receiver) in [
            ("to far", &call.to_far, call.ours.stats(), call.far.stats()),
            (
                "to ours",
                &call.to_ours,
                call.far.stats(),
                call.ours.stats(),
            ),
        ] {
            let dropped = path.dropped.len() as u64;
            if sender.sent != path.sent
                || path.sent != path.delivered + dropped
                || receiver.received != path.delivered
                || receiver.lost != path.visible_losses()
            {
                fail(
                    i,
                    call,
                    format!(
                        "{dir}: sender {sender:?}, receiver {receiver:?}, network sent {} \
                         delivered {} dropped {dropped} (visible {})",
                        path.sent,
                        path.delivered,
                        path.visible_losses()
                    ),
                );
            }
        }
        if call.ours.stats().sent != u64::from(TICKS) || call.far.stats().sent != u64::from(TICKS) {
            fail(i, call, "a side did not send one packet per tick".into());
        }
        // Playout: the shadow is in lockstep with the call's receiver ...
        let ours = call.ours.stats();
        let shadow = call.shadow.stats();
        if (shadow.received, shadow.lost.max(0) as u64, shadow.late)
            != (ours.received, ours.lost, ours.late)
        {
            fail(
                i,
                call,
                format!("shadow receiver {shadow:?} differs from {ours:?}"),
            );
        }
        // ... one result per tick, never idle once started, every audio packet accounted for.
        let p = &call.playout;
        let first = p.first_arrival_tick.map_or(u64::MAX, u64::from);
        if p.idle_after_fill != 0 || p.idle < first || p.idle > first + u64::from(DEPTH) {
            fail(i, call, format!("playout {p:?}, {shadow:?}"));
        }
        let unplayed = shadow.late + shadow.dropped_frames;
        if p.frames + unplayed != call.to_ours.audio_delivered {
            fail(
                i,
                call,
                format!(
                    "playout {p:?}: {} frames + {unplayed} late/trimmed != {} audio delivered \
                     ({shadow:?})",
                    p.frames, call.to_ours.audio_delivered
                ),
            );
        }
        late_total += shadow.late;
        lost_total += ours.lost;
        trimmed_total += shadow.dropped_frames;
        resync_total += shadow.resyncs;
        // Recording: one stereo frame per tick, both channels as played and heard.
        let recording = i % 10 == 2 || i % 10 == 4;
        if recording {
            if call.recorded_frames != u64::from(TICKS) || call.bot_mismatches != 0 {
                fail(
                    i,
                    call,
                    format!(
                        "recorded {} frames, {} bot frames differ from the prompt",
                        call.recorded_frames, call.bot_mismatches
                    ),
                );
            }
            if let Some(prompt) = &call.far_prompt {
                // The far side sends prompt frame j on tick j: every one that was delivered is
                // heard once, in order, unless it came late or was trimmed.
                let frames = prompt.frames() as u64;
                let delivered =
                    frames - call.to_ours.dropped.iter().filter(|&&j| j < frames).count() as u64;
                let heard = call.callee_frames_heard.len() as u64;
                // One tick in the network at least, two more at most, then `DEPTH` in the buffer.
                let (min_latency, max_latency) = (
                    1 + DEPTH as usize,
                    1 + DEPTH as usize + MAX_EXTRA_FRAMES as usize,
                );
                let latency_ok = call.callee_latency.is_some_and(|(lo, hi)| {
                    (min_latency..=max_latency).contains(&lo) && hi <= max_latency
                });
                if call.callee_unknown_frames != 0
                    || heard > delivered
                    || heard + shadow.late + shadow.dropped_frames < delivered
                    || !latency_ok
                {
                    fail(
                        i,
                        call,
                        format!(
                            "callee channel: {heard} of {delivered} delivered prompt frames \
                             heard in order, {} unknown, latency {:?} ticks",
                            call.callee_unknown_frames, call.callee_latency
                        ),
                    );
                }
                let (lo, hi) = call.callee_latency.unwrap_or((usize::MAX, 0));
                latency_range = (latency_range.0.min(lo), latency_range.1.max(hi));
            }
        }
        // Our prompt played once, to its end.
        if call.prompt_finished != 1 {
            fail(
                i,
                call,
                format!("PromptFinished {} times", call.prompt_finished),
            );
        }
        // No RTP timeout: both sides always send.
        if call.timeouts != 0 {
            fail(i, call, format!("{} RTP timeouts", call.timeouts));
        }
        // AMD: exactly one verdict, the right one where the far side's behaviour decides it.
        match call.amd.as_slice() {
            [d] => {
                *verdicts
                    .entry((call.kind, format!("{}/{}", d.verdict, d.cause)))
                    .or_default() += 1;
                let ok = match call.kind {
                    Kind::Speech => {
                        human_elapsed_max = human_elapsed_max.max(d.elapsed);
                        d.verdict == Verdict::Human && d.elapsed < Duration::from_secs(3)
                    }
                    Kind::Silent => d.cause == Cause::InitialSilence,
                    Kind::Machine => d.verdict == Verdict::Machine && call.beeps == 1,
                    Kind::Rfc4733 | Kind::InBand => true,
                };
                if !ok {
                    fail(i, call, format!("AMD {d:?}, {} beeps", call.beeps));
                }
            }
            other => fail(i, call, format!("AMD events {other:?}")),
        }
        if call.kind != Kind::Machine && call.beeps != 0 {
            fail(i, call, format!("{} beeps", call.beeps));
        }
    }

    println!(
        "{CALLS} calls × {TICKS} ticks: setup {setup:.2?}, run {:.2?} wall ({} build)",
        elapsed - setup,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!(
        "network: {} datagrams delivered, {} dropped, {} overtaken by a later one; receivers: \
         {lost_total} lost, {late_total} late, {trimmed_total} trimmed, {resync_total} resyncs",
        net.delivered, net.dropped, net.reordered_pairs
    );
    println!(
        "recorded callee channel: far audio heard {}–{} ticks after it was sent",
        latency_range.0, latency_range.1
    );
    println!("AMD verdicts by far-side kind: {verdicts:?}");
    println!(
        "in-band calls with a tone packet lost: {tones_hit} (lost tone packets by position in \
         the 5-frame tone: {tone_frames_lost:?}); of those, a digit reported twice (known bug, \
         tolerated while ALLOW_SPLIT_IN_BAND_DIGIT_AFTER_LOSS): {}",
        split_digits.len()
    );
    for s in &split_digits {
        println!("  {s}");
    }
    println!("slowest HUMAN verdict: {human_elapsed_max:?} of audio");
    assert!(
        failures.is_empty(),
        "{failed} failures, the first {}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        net.dropped > 0 && net.reordered_pairs > 0,
        "the network did its job"
    );
}
