//! Answering-machine detection (AMD) after answer, and the voicemail beep that follows.
//!
//! This module owns two per-call detectors:
//! - [`Amd`], which listens to the first seconds after answer and decides [`Verdict::Human`],
//!   [`Verdict::Machine`] or [`Verdict::NotSure`], each with a [`Cause`]. It is the state machine
//!   described for Asterisk's `AMD()` application (initial silence, greeting length, silence
//!   after the greeting, word count and length, total time) with Asterisk's defaults in
//!   [`AmdConfig::default`]; the implementation here is written from that description.
//! - [`BeepDetector`], which finds the voicemail beep: one steady tone between 400 and 2000 Hz
//!   lasting at least 200 ms. [`Amd`] runs one from answer and keeps it running after a
//!   `Machine` verdict, so the dialer can start its message when the beep ends.
//!
//! # How the engine drives it
//! From the first received frame after the 200 OK, once per 20 ms frame (decoded G.711; a lost
//! frame is fed as silence so that the frame count stays the media clock):
//! ```
//! # use media::amd::{Amd, AmdConfig, AmdEvent, Verdict};
//! let mut amd = Amd::new(AmdConfig::default());
//! let frame = [0i16; media::FRAME_SAMPLES];
//! amd.push(&frame);
//! while let Some(event) = amd.poll_event() {
//!     match event {
//!         AmdEvent::Decided(d) if d.verdict == Verdict::Human => { /* start the prompt */ }
//!         AmdEvent::Decided(_) => { /* machine: wait for the beep; not sure: policy */ }
//!         AmdEvent::BeepDetected(_) => { /* the beep just ended: leave the message */ }
//!     }
//! }
//! if amd.is_finished() { /* drop it */ }
//! ```
//! Time is the count of frames pushed; nothing here reads a clock or allocates. A verdict always
//! comes within [`AmdConfig::total_analysis_time`] (5 s by default).
//!
//! # The decision, frame by frame
//! Each frame is *voice* when its average absolute sample value reaches
//! [`AmdConfig::silence_threshold`] (Asterisk's measure, 256 by default) **and** the embedded
//! [`Vad`] calls it speech (it is [`VadConfig::margin_db`] above the adaptive noise floor and not
//! a steady tone); a steady tone is neither (it interrupts the silence timers but adds no
//! voice); everything else is silence.
//! Requiring both keeps a noisy line from being counted as a long greeting once the noise floor
//! has been learned, while a quiet line behaves exactly like Asterisk.
//!
//! - A run of voice of at least [`AmdConfig::min_word_length`] after a silence of at least
//!   [`AmdConfig::between_words_silence`] is a new word; the first word starts the greeting.
//! - `Machine`: silence for [`AmdConfig::initial_silence`] before any word
//!   ([`Cause::InitialSilence`], as Asterisk does: people who answer speak within a second or
//!   two, so 2.5 s of silence is taken for a machine that is slow to start its greeting or
//!   waits silently for the message; a callee who answers and says nothing is misclassified,
//!   which is the known cost of this rule);
//!   voice in total reaching [`AmdConfig::greeting`] ([`Cause::LongGreeting`]); the word count
//!   reaching [`AmdConfig::max_words`] ([`Cause::MaxWords`]); one word reaching
//!   [`AmdConfig::max_word_length`] ([`Cause::MaxWordLength`]); a beep before any of these
//!   ([`Cause::Beep`], an addition to Asterisk's causes).
//! - `Human`: after the greeting started, silence for [`AmdConfig::after_greeting_silence`]
//!   ([`Cause::Human`]). A live "алло?" of about 0.5 s is decided 0.8 s after it ends.
//! - `NotSure`: nothing of the above within [`AmdConfig::total_analysis_time`]
//!   ([`Cause::TooLong`]).
//!
//! Word counting follows Asterisk's effective behaviour: with `max_words = 3` the third word
//! decides `Machine` (older Asterisk counted "reached 3"; since a 2015 fix it is "exceeded 2" by
//! default, which is the same thing).

use std::fmt;
use std::time::Duration;

use crate::vad::{FrameClass, Vad, VadConfig, frames_for, frames_to_duration};
use crate::{FRAME_SAMPLES, SAMPLE_RATE};

/// Settings of one [`Amd`]; the defaults are Asterisk's `amd.conf` defaults. Durations are
/// rounded up to whole 20 ms frames (zero counts as one frame).
#[derive(Debug, Clone, PartialEq)]
pub struct AmdConfig {
    /// Silence before any word that makes a machine. Default 2500 ms.
    pub initial_silence: Duration,
    /// Total voice, once the greeting started, that makes a machine. Default 1500 ms.
    pub greeting: Duration,
    /// Silence after the greeting started that makes a human. Default 800 ms.
    pub after_greeting_silence: Duration,
    /// The longest the analysis runs before `NotSure`. Default 5000 ms.
    pub total_analysis_time: Duration,
    /// Shortest run of voice that counts as a word. Default 100 ms.
    pub min_word_length: Duration,
    /// Silence that separates two words. Default 50 ms (three frames).
    pub between_words_silence: Duration,
    /// The word count that makes a machine. Default 3.
    pub max_words: u32,
    /// Average absolute sample value (16-bit scale) below which a frame is silence. Default 256.
    pub silence_threshold: u16,
    /// One word this long makes a machine. Default 5000 ms.
    pub max_word_length: Duration,
    /// The frame classifier (noise floor, tone rejection); onset and hang-over are not used.
    pub vad: VadConfig,
    /// The beep detector run alongside.
    pub beep: BeepConfig,
}

impl Default for AmdConfig {
    fn default() -> Self {
        AmdConfig {
            initial_silence: Duration::from_millis(2500),
            greeting: Duration::from_millis(1500),
            after_greeting_silence: Duration::from_millis(800),
            total_analysis_time: Duration::from_millis(5000),
            min_word_length: Duration::from_millis(100),
            between_words_silence: Duration::from_millis(50),
            max_words: 3,
            silence_threshold: 256,
            max_word_length: Duration::from_millis(5000),
            vad: VadConfig {
                reject_tones: true,
                ..VadConfig::barge_in()
            },
            beep: BeepConfig::default(),
        }
    }
}

/// Who answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// A live person.
    Human,
    /// An answering machine or voicemail.
    Machine,
    /// No decision within the analysis time.
    NotSure,
}

impl Verdict {
    /// Asterisk's `AMDSTATUS` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Human => "HUMAN",
            Verdict::Machine => "MACHINE",
            Verdict::NotSure => "NOTSURE",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the verdict was reached. Each cause belongs to exactly one [`Verdict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// Machine: silence for the initial-silence time before any word.
    InitialSilence,
    /// Human: a short greeting, then the after-greeting silence.
    Human,
    /// Machine: total voice reached the greeting time.
    LongGreeting,
    /// Machine: the word count reached the maximum.
    MaxWords,
    /// Machine: a single word reached the maximum word length.
    MaxWordLength,
    /// Machine: a voicemail beep was heard before any other decision.
    Beep,
    /// Not sure: the analysis time ran out.
    TooLong,
}

impl Cause {
    /// The verdict this cause leads to.
    pub fn verdict(self) -> Verdict {
        match self {
            Cause::Human => Verdict::Human,
            Cause::TooLong => Verdict::NotSure,
            Cause::InitialSilence
            | Cause::LongGreeting
            | Cause::MaxWords
            | Cause::MaxWordLength
            | Cause::Beep => Verdict::Machine,
        }
    }

    /// Asterisk's `AMDCAUSE` spelling (`BEEP` is ours).
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::InitialSilence => "INITIALSILENCE",
            Cause::Human => "HUMAN",
            Cause::LongGreeting => "LONGGREETING",
            Cause::MaxWords => "MAXWORDS",
            Cause::MaxWordLength => "MAXWORDLENGTH",
            Cause::Beep => "BEEP",
            Cause::TooLong => "TOOLONG",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of the analysis, with what it was based on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Human, machine or not sure (always `cause.verdict()`).
    pub verdict: Verdict,
    /// Why.
    pub cause: Cause,
    /// Index of the frame that decided.
    pub at_frame: u64,
    /// Audio analysed up to and including that frame: the time from answer to verdict.
    pub elapsed: Duration,
    /// Words counted.
    pub words: u32,
    /// Total voice heard.
    pub voice: Duration,
}

/// A voicemail beep, reported on the first frame after it ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beep {
    /// Index of the first frame of the tone.
    pub at_frame: u64,
    /// Its frequency (energy-weighted mean over its frames).
    pub frequency_hz: f32,
    /// Its length, in whole frames.
    pub duration: Duration,
}

/// What [`Amd::poll_event`] hands out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AmdEvent {
    /// The verdict; exactly once per [`Amd`].
    Decided(Decision),
    /// The beep ended (at most once, only with or after a `Machine` verdict).
    BeepDetected(Beep),
}

/// The configured durations in frames.
#[derive(Debug, Clone, Copy)]
struct Limits {
    initial_silence: u32,
    greeting: u32,
    after_greeting_silence: u32,
    total: u32,
    min_word: u32,
    between_words: u32,
    max_words: u32,
    silence_threshold: u16,
    max_word: u32,
}

impl Limits {
    fn new(c: &AmdConfig) -> Self {
        Limits {
            initial_silence: frames_for(c.initial_silence).max(1),
            greeting: frames_for(c.greeting).max(1),
            after_greeting_silence: frames_for(c.after_greeting_silence).max(1),
            total: frames_for(c.total_analysis_time).max(1),
            min_word: frames_for(c.min_word_length).max(1),
            between_words: frames_for(c.between_words_silence).max(1),
            max_words: c.max_words.max(1),
            silence_threshold: c.silence_threshold,
            max_word: frames_for(c.max_word_length).max(1),
        }
    }
}

/// How AMD sees one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sound {
    Silence,
    Voice,
    Tone,
}

/// Answering-machine detector for one answered call.
#[derive(Debug, Clone)]
pub struct Amd {
    limits: Limits,
    vad: Vad,
    beep: BeepDetector,
    frames: u64,
    /// Consecutive silent frames.
    silence_run: u32,
    /// Voice frames in the current word (not reset by gaps shorter than between-words silence).
    word_run: u32,
    /// All voice frames so far.
    voice_total: u32,
    words: u32,
    in_word: bool,
    in_greeting: bool,
    decision: Option<Decision>,
    finished: bool,
    pending_decision: Option<Decision>,
    pending_beep: Option<Beep>,
}

impl Amd {
    /// A detector at the moment of answer.
    pub fn new(config: AmdConfig) -> Self {
        Amd {
            limits: Limits::new(&config),
            vad: Vad::new(config.vad),
            beep: BeepDetector::new(config.beep),
            frames: 0,
            silence_run: 0,
            word_run: 0,
            voice_total: 0,
            words: 0,
            in_word: false,
            in_greeting: false,
            decision: None,
            finished: false,
            pending_decision: None,
            pending_beep: None,
        }
    }

    /// Feed the next 20 ms frame; then drain [`Amd::poll_event`]. Does nothing once
    /// [`Amd::is_finished`].
    pub fn push(&mut self, frame: &[i16; FRAME_SAMPLES]) {
        if self.finished {
            return;
        }
        let index = self.frames;
        self.frames += 1;
        let beep = self.beep.push(frame);
        if self.decision.is_none() {
            let _ = self.vad.push(frame);
            let replayed = if self.vad.opening_rejudged() {
                self.replay_opening()
            } else {
                None
            };
            let info = self.vad.last_frame();
            let sound = self.sound(info.class, info.mean_abs);
            let cause = replayed
                .or_else(|| self.step(sound))
                .or(beep.map(|_| Cause::Beep))
                .or((self.frames >= u64::from(self.limits.total)).then_some(Cause::TooLong));
            if let Some(cause) = cause {
                self.decide(index, cause);
            }
        }
        if let Some(beep) = beep
            && self.decision.map(|d| d.verdict) == Some(Verdict::Machine)
        {
            tracing::debug!(
                at_frame = beep.at_frame,
                frequency_hz = beep.frequency_hz,
                ?beep.duration,
                "voicemail beep"
            );
            self.pending_beep = Some(beep);
            self.finished = true;
        }
    }

    /// The next event, if any: the decision first, then the beep.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<AmdEvent> {
        if let Some(d) = self.pending_decision.take() {
            return Some(AmdEvent::Decided(d));
        }
        self.pending_beep.take().map(AmdEvent::BeepDetected)
    }

    /// The verdict, once reached.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// No further events will come: a `Human` or `NotSure` verdict, or the beep after `Machine`.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Frames pushed so far (frames after [`Amd::is_finished`] are not counted).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    fn sound(&self, class: FrameClass, mean_abs: u16) -> Sound {
        match class {
            FrameClass::Tone => Sound::Tone,
            FrameClass::Speech if mean_abs >= self.limits.silence_threshold => Sound::Voice,
            FrameClass::Speech | FrameClass::Silence => Sound::Silence,
        }
    }

    /// The VAD judged the opening frames again (speech from the first frame, see
    /// [`Vad::opening_rejudged`]): count them again from the start with their new classes.
    /// Returns a cause if the recount already decides.
    fn replay_opening(&mut self) -> Option<Cause> {
        self.silence_run = 0;
        self.word_run = 0;
        self.voice_total = 0;
        self.words = 0;
        self.in_word = false;
        self.in_greeting = false;
        let mut cause = None;
        // Every kept frame but the one being pushed, which the caller steps as usual.
        for i in 0..self.vad.opening_len().saturating_sub(1) {
            if let Some((class, mean_abs)) = self.vad.opening_class(i) {
                let sound = self.sound(class, mean_abs);
                cause = cause.or(self.step(sound));
            }
        }
        cause
    }

    /// One frame of the word/silence state machine; a cause if it decided.
    fn step(&mut self, sound: Sound) -> Option<Cause> {
        let l = self.limits;
        match sound {
            Sound::Tone => {
                // A tone is not speech, but it is not the silence of a line nobody talks on.
                self.silence_run = 0;
                None
            }
            Sound::Silence => {
                self.silence_run += 1;
                if self.silence_run >= l.between_words {
                    self.in_word = false;
                    self.word_run = 0;
                }
                if !self.in_greeting && self.silence_run >= l.initial_silence {
                    Some(Cause::InitialSilence)
                } else if self.in_greeting && self.silence_run >= l.after_greeting_silence {
                    Some(Cause::Human)
                } else {
                    None
                }
            }
            Sound::Voice => {
                self.silence_run = 0;
                self.word_run += 1;
                self.voice_total += 1;
                if self.word_run >= l.min_word && !self.in_word {
                    self.in_word = true;
                    self.in_greeting = true;
                    self.words += 1;
                }
                if self.word_run >= l.max_word {
                    Some(Cause::MaxWordLength)
                } else if self.words >= l.max_words {
                    Some(Cause::MaxWords)
                } else if self.in_greeting && self.voice_total >= l.greeting {
                    Some(Cause::LongGreeting)
                } else {
                    None
                }
            }
        }
    }

    fn decide(&mut self, at_frame: u64, cause: Cause) {
        let verdict = cause.verdict();
        let d = Decision {
            verdict,
            cause,
            at_frame,
            elapsed: frames_to_duration(at_frame + 1),
            words: self.words,
            voice: frames_to_duration(u64::from(self.voice_total)),
        };
        tracing::debug!(%verdict, %cause, at_frame, words = d.words, ?d.voice, "amd decided");
        self.decision = Some(d);
        self.pending_decision = Some(d);
        // Only a machine has a beep to wait for.
        self.finished = verdict != Verdict::Machine;
    }
}

/// Settings of a [`BeepDetector`].
#[derive(Debug, Clone, PartialEq)]
pub struct BeepConfig {
    /// Shortest tone that is a beep. Default 200 ms.
    pub min_duration: Duration,
    /// Longer tones (dial tone, fax, a stuck line) are not beeps. Default 5 s.
    pub max_duration: Duration,
    /// Lowest beep frequency. Default 400 Hz.
    pub min_hz: f32,
    /// Highest beep frequency. Default 2000 Hz.
    pub max_hz: f32,
    /// Quieter frames (RMS dBFS) are not part of a beep. Default −45 dBFS.
    pub min_level_dbfs: f32,
}

impl Default for BeepConfig {
    fn default() -> Self {
        BeepConfig {
            min_duration: Duration::from_millis(200),
            max_duration: Duration::from_secs(5),
            min_hz: 400.0,
            max_hz: 2000.0,
            min_level_dbfs: -45.0,
        }
    }
}

/// A frame whose single-tone residual is below this fraction of its energy fits one sinusoid.
/// Measured through G.711: tones leave ≤ 0.01, noise ≥ 1.5, speech rarely < 0.05; a DTMF pair
/// with close tones (941 + 1209 Hz, `*`) leaves only 0.02–0.03, hence the second test.
const BEEP_RESIDUAL: f64 = 0.05;
/// Share of the frame's energy at the fitted frequency (one Goertzel pass) needed for a tone.
/// A tone that fills the frame gives ≈ 1, one that starts or stops inside it gives the share of
/// the frame it covers, DTMF pairs < 0.02 (the fit lands between their tones), speech frames
/// that pass the residual test < 0.1. Below ½, so that a tone of exactly `min_duration`
/// always covers enough counted frames.
const BEEP_CONCENTRATION: f64 = 0.4;
/// Relative slack on the configured frequency range for the estimate (±1 %).
const RANGE_SLACK: f64 = 0.01;

/// The tone currently being followed.
#[derive(Debug, Clone, Copy)]
struct ToneRun {
    start: u64,
    frames: u32,
    /// Σ weight·frequency and Σ weight, weight = frame energy.
    sum_wf: f64,
    sum_w: f64,
}

impl ToneRun {
    fn mean_hz(&self) -> f64 {
        self.sum_wf / self.sum_w
    }
}

/// Detector of one steady single tone (the voicemail beep), per 20 ms frame.
///
/// Each frame is fitted with the exact recurrence of one sinusoid,
/// `x[n] + x[n-2] = c·x[n-1]` with `c = 2·cos(2πf/8000)`, by least squares: the fit gives the
/// frequency directly (exact for a pure tone, no bin grid) and its residual says whether the
/// frame is one sinusoid. Speech and noise leave a large residual; a DTMF pair may not, but its
/// fitted frequency falls between its two tones, so a Goertzel filter at that frequency finds
/// almost none of the frame's energy there, while a beep puts all of it there. Consecutive
/// tonal frames within ±2 % of the run's frequency form a run; a run of
/// `min_duration..=max_duration` is a beep, reported on the first frame after it ends, because
/// that is when a message can start. Duration resolution is one frame.
/// Cost: two passes over the frame, five multiply-adds a sample, no tables, no FFT.
#[derive(Debug, Clone)]
pub struct BeepDetector {
    min_frames: u32,
    max_frames: u32,
    min_hz: f64,
    max_hz: f64,
    /// Minimum Σx² over a frame.
    min_energy: f64,
    frames: u64,
    run: Option<ToneRun>,
}

impl BeepDetector {
    /// A detector at frame 0.
    pub fn new(config: BeepConfig) -> Self {
        let rms = 32768.0 * 10f64.powf(f64::from(config.min_level_dbfs) / 20.0);
        BeepDetector {
            min_frames: frames_for(config.min_duration).max(1),
            max_frames: frames_for(config.max_duration).max(1),
            min_hz: f64::from(config.min_hz) * (1.0 - RANGE_SLACK),
            max_hz: f64::from(config.max_hz) * (1.0 + RANGE_SLACK),
            min_energy: rms * rms * FRAME_SAMPLES as f64,
            frames: 0,
            run: None,
        }
    }

    /// Feed the next 20 ms frame; returns a beep that ended just before this frame.
    pub fn push(&mut self, frame: &[i16; FRAME_SAMPLES]) -> Option<Beep> {
        let index = self.frames;
        self.frames += 1;
        let tone = self.tone_of(frame);
        if let (Some((hz, weight)), Some(run)) = (tone, self.run.as_mut()) {
            let mean = run.mean_hz();
            if (hz - mean).abs() <= 0.02 * mean {
                run.frames = run.frames.saturating_add(1);
                run.sum_wf += weight * hz;
                run.sum_w += weight;
                return None;
            }
        }
        let ended = self.run.take().and_then(|run| {
            (self.min_frames..=self.max_frames)
                .contains(&run.frames)
                .then(|| Beep {
                    at_frame: run.start,
                    frequency_hz: run.mean_hz() as f32,
                    duration: frames_to_duration(u64::from(run.frames)),
                })
        });
        self.run = tone.map(|(hz, weight)| ToneRun {
            start: index,
            frames: 1,
            sum_wf: weight * hz,
            sum_w: weight,
        });
        ended
    }

    /// Frequency and energy of the frame if it is one loud pure tone in range.
    fn tone_of(&self, frame: &[i16; FRAME_SAMPLES]) -> Option<(f64, f64)> {
        // Integer-valued operands below 2^17: every product and sum here is exact in f64.
        let mut energy = 0.0f64;
        for &s in frame {
            let x = f64::from(s);
            energy += x * x;
        }
        if energy < self.min_energy {
            return None;
        }
        let (mut spq, mut sqq, mut spp) = (0.0f64, 0.0f64, 0.0f64);
        for w in frame.windows(3) {
            let p = f64::from(w[0]) + f64::from(w[2]);
            let q = f64::from(w[1]);
            spq += p * q;
            sqq += q * q;
            spp += p * p;
        }
        if sqq <= 0.0 {
            return None;
        }
        let c = (spq / sqq).clamp(-2.0, 2.0);
        let residual = (spp - c * spq).max(0.0);
        if residual >= BEEP_RESIDUAL * sqq {
            return None;
        }
        let hz = (c / 2.0).acos() * f64::from(SAMPLE_RATE) / (2.0 * std::f64::consts::PI);
        if !(self.min_hz..=self.max_hz).contains(&hz) {
            return None;
        }
        // Goertzel at the fitted frequency: its coefficient is `c` itself.
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in frame {
            let s0 = f64::from(x) + c * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - c * s1 * s2;
        let concentration = 2.0 * power / (FRAME_SAMPLES as f64 * energy);
        (concentration >= BEEP_CONCENTRATION).then_some((hz, energy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711::Codec;
    use crate::synth::*;

    const CODECS: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

    /// All events with the index of the frame after which they were polled.
    fn run_amd(amd: &mut Amd, pcm: &[i16]) -> Vec<(u64, AmdEvent)> {
        let mut out = Vec::new();
        for (i, f) in frames(pcm).iter().enumerate() {
            amd.push(f);
            while let Some(e) = amd.poll_event() {
                out.push((i as u64, e));
            }
        }
        out
    }

    fn decision(events: &[(u64, AmdEvent)]) -> Decision {
        let decisions: Vec<Decision> = events
            .iter()
            .filter_map(|(_, e)| match e {
                AmdEvent::Decided(d) => Some(*d),
                AmdEvent::BeepDetected(_) => None,
            })
            .collect();
        assert_eq!(decisions.len(), 1, "exactly one decision: {events:?}");
        decisions[0]
    }

    fn beeps(events: &[(u64, AmdEvent)]) -> Vec<(u64, Beep)> {
        events
            .iter()
            .filter_map(|(i, e)| match e {
                AmdEvent::BeepDetected(b) => Some((*i, *b)),
                AmdEvent::Decided(_) => None,
            })
            .collect()
    }

    fn detect_beeps(pcm: &[i16]) -> Vec<(u64, Beep)> {
        let mut det = BeepDetector::new(BeepConfig::default());
        frames(pcm)
            .iter()
            .enumerate()
            .filter_map(|(i, f)| det.push(f).map(|b| (i as u64, b)))
            .collect()
    }

    fn ms(d: Duration) -> u64 {
        d.as_millis() as u64
    }

    /// Quiet line noise (−65 dBFS) under a signal, so nothing relies on digital zeros.
    fn on_line(sig: Vec<f64>, rng: &mut Rng) -> Vec<f64> {
        let n = noise((sig.len() / 8) as u32, -65.0, rng);
        mix(sig, &n)
    }

    #[test]
    fn a_live_allo_is_human_in_under_three_seconds() {
        let mut worst = Duration::ZERO;
        for (seed, lead_ms, word_ms, level) in [
            (1, 300, 400, -36.0),
            (2, 500, 500, -26.0),
            (3, 800, 600, -16.0),
            (4, 1200, 550, -22.0),
            (5, 1500, 500, -30.0),
        ] {
            for codec in CODECS {
                let mut rng = Rng::new(seed);
                let mut sig = silence(lead_ms);
                sig.extend(word(word_ms, level, &mut rng));
                sig.extend(silence(3000));
                let sig = on_line(sig, &mut rng);
                let mut amd = Amd::new(AmdConfig::default());
                let events = run_amd(&mut amd, &via_g711(&sig, codec));
                let d = decision(&events);
                assert_eq!(
                    (d.verdict, d.cause),
                    (Verdict::Human, Cause::Human),
                    "{d:?}"
                );
                assert_eq!(d.words, 1);
                // Decided 800 ms after the word ends (± a frame or two of envelope).
                let expected = u64::from(lead_ms + word_ms + 800);
                assert!(
                    ms(d.elapsed).abs_diff(expected) <= 60,
                    "{d:?} vs {expected} ms"
                );
                assert!(d.elapsed < Duration::from_secs(3), "{d:?}");
                assert!(amd.is_finished());
                assert_eq!(events.len(), 1);
                worst = worst.max(d.elapsed);
            }
        }
        assert!(worst < Duration::from_millis(2900), "{worst:?}");
    }

    #[test]
    fn an_allo_on_the_very_first_frame_is_human_too() {
        // The callee is already talking when the line opens: no silence to learn a floor from.
        for (seed, word_ms, level) in [(21, 400, -20.0), (22, 600, -30.0), (23, 500, -14.0)] {
            for codec in CODECS {
                let mut rng = Rng::new(seed);
                let mut sig = word(word_ms, level, &mut rng);
                sig.extend(silence(3000));
                let sig = on_line(sig, &mut rng);
                let mut amd = Amd::new(AmdConfig::default());
                let d = decision(&run_amd(&mut amd, &via_g711(&sig, codec)));
                assert_eq!(
                    (d.verdict, d.cause, d.words),
                    (Verdict::Human, Cause::Human, 1),
                    "{d:?}"
                );
                let expected = u64::from(word_ms + 800);
                assert!(
                    ms(d.elapsed).abs_diff(expected) <= 60,
                    "{d:?} vs {expected} ms"
                );
            }
        }
        // A greeting that starts on the first frame is still a machine.
        let mut rng = Rng::new(24);
        let sig = on_line(
            utterance(
                &[(500, 100), (600, 120), (700, 100), (500, 2000)],
                -22.0,
                &mut rng,
            ),
            &mut rng,
        );
        let mut amd = Amd::new(AmdConfig::default());
        let d = decision(&run_amd(&mut amd, &via_g711(&sig, Codec::Pcma)));
        assert_eq!(d.verdict, Verdict::Machine, "{d:?}");
    }

    #[test]
    fn allo_allo_is_still_human() {
        let mut rng = Rng::new(21);
        let mut sig = silence(400);
        sig.extend(utterance(&[(450, 350), (500, 3000)], -24.0, &mut rng));
        let mut amd = Amd::new(AmdConfig::default());
        let d = decision(&run_amd(&mut amd, &via_g711(&sig, Codec::Pcma)));
        assert_eq!(
            (d.verdict, d.cause, d.words),
            (Verdict::Human, Cause::Human, 2)
        );
        assert!(d.elapsed < Duration::from_secs(3), "{d:?}");
    }

    #[test]
    fn a_long_greeting_is_a_machine() {
        // "Здравствуйте, вы позвонили ..., оставьте сообщение после сигнала": 3–4 s of words.
        let greetings: [&[(u32, u32)]; 3] = [
            &[(500, 120), (700, 90), (400, 150), (800, 100), (600, 0)],
            &[
                (300, 80),
                (250, 100),
                (350, 90),
                (300, 120),
                (400, 80),
                (350, 100),
                (450, 0),
            ],
            &[(900, 150), (1200, 200), (1000, 0)],
        ];
        for (seed, parts) in greetings.iter().enumerate() {
            for codec in CODECS {
                let mut rng = Rng::new(seed as u64 + 30);
                let mut sig = silence(600);
                sig.extend(utterance(parts, -20.0, &mut rng));
                sig.extend(silence(1500));
                let sig = on_line(sig, &mut rng);
                let mut amd = Amd::new(AmdConfig::default());
                let d = decision(&run_amd(&mut amd, &via_g711(&sig, codec)));
                assert_eq!(d.verdict, Verdict::Machine, "{d:?}");
                assert!(
                    matches!(d.cause, Cause::MaxWords | Cause::LongGreeting),
                    "{d:?}"
                );
                // Decided while the greeting is still playing.
                assert!(d.elapsed < Duration::from_millis(600 + 2700), "{d:?}");
                assert!(!amd.is_finished(), "a machine keeps listening for the beep");
            }
        }
    }

    #[test]
    fn greeting_limits_decide_with_their_own_cause() {
        // One continuous 2 s word: 1.5 s of voice is a long greeting.
        let mut rng = Rng::new(40);
        let mut sig = silence(500);
        sig.extend(word(2000, -20.0, &mut rng));
        sig.extend(silence(1000));
        let p = pcm(&sig);
        let mut amd = Amd::new(AmdConfig::default());
        let d = decision(&run_amd(&mut amd, &p));
        assert_eq!((d.cause, d.words), (Cause::LongGreeting, 1), "{d:?}");
        assert!(ms(d.elapsed).abs_diff(500 + 1500) <= 60, "{d:?}");
        assert_eq!(d.voice, Duration::from_millis(1500));

        // With the greeting limit out of the way, the same word hits a 1 s word-length limit.
        let mut amd = Amd::new(AmdConfig {
            greeting: Duration::from_secs(4),
            max_word_length: Duration::from_secs(1),
            ..AmdConfig::default()
        });
        let d = decision(&run_amd(&mut amd, &p));
        assert_eq!(d.cause, Cause::MaxWordLength, "{d:?}");
        assert!(ms(d.elapsed).abs_diff(500 + 1000) <= 60, "{d:?}");

        // Three short words: the third decides.
        let mut sig = silence(500);
        sig.extend(utterance(
            &[(250, 200), (250, 200), (250, 1000)],
            -20.0,
            &mut rng,
        ));
        let mut amd = Amd::new(AmdConfig::default());
        let d = decision(&run_amd(&mut amd, &pcm(&sig)));
        assert_eq!((d.cause, d.words), (Cause::MaxWords, 3), "{d:?}");
        assert!(ms(d.elapsed).abs_diff(500 + 900 + 100) <= 60, "{d:?}");
    }

    #[test]
    fn silence_only_is_a_machine_at_two_and_a_half_seconds() {
        let mut rng = Rng::new(50);
        for sig in [silence(4000), noise(4000, -60.0, &mut rng)] {
            for codec in CODECS {
                let mut amd = Amd::new(AmdConfig::default());
                let d = decision(&run_amd(&mut amd, &via_g711(&sig, codec)));
                assert_eq!(
                    (d.verdict, d.cause),
                    (Verdict::Machine, Cause::InitialSilence)
                );
                assert_eq!(d.at_frame, 124);
                assert_eq!(d.elapsed, Duration::from_millis(2500));
                assert_eq!(d.words, 0);
            }
        }
    }

    #[test]
    fn background_noise_is_not_words() {
        let mut rng = Rng::new(60);
        // Below the silence threshold: white noise at −50 dBFS has mean |x| ≈ 83.
        // Above it: −33 dBFS white noise (mean |x| ≈ 600) and −30 dBFS rumble; the adaptive
        // floor learns them from the first frames.
        for (level, rumbly) in [(-50.0, false), (-33.0, false), (-30.0, true)] {
            let bed = if rumbly {
                rumble(6000, level, &mut rng)
            } else {
                noise(6000, level, &mut rng)
            };
            for codec in CODECS {
                let mut amd = Amd::new(AmdConfig::default());
                let d = decision(&run_amd(&mut amd, &via_g711(&bed, codec)));
                assert_eq!(
                    (d.cause, d.words, d.voice),
                    (Cause::InitialSilence, 0, Duration::ZERO)
                );

                // An "алло" 15 dB over the same noise is still a human.
                let mut speech = silence(700);
                speech.extend(word(500, level + 15.0, &mut rng));
                let sig = mix(bed.clone(), &speech);
                let mut amd = Amd::new(AmdConfig::default());
                let d = decision(&run_amd(&mut amd, &via_g711(&sig, codec)));
                assert_eq!(
                    (d.cause, d.words),
                    (Cause::Human, 1),
                    "{level} {codec:?} {d:?}"
                );
                assert!(d.elapsed < Duration::from_millis(2100), "{d:?}");
            }
        }
    }

    #[test]
    fn undecidable_audio_is_not_sure_at_five_seconds() {
        // 60 ms clicks every 400 ms: never a word, never 2.5 s of silence.
        let mut rng = Rng::new(70);
        let mut sig = Vec::new();
        for _ in 0..20 {
            sig.extend(noise(60, -20.0, &mut rng));
            sig.extend(silence(340));
        }
        let mut amd = Amd::new(AmdConfig::default());
        let events = run_amd(&mut amd, &pcm(&sig));
        let d = decision(&events);
        assert_eq!((d.verdict, d.cause), (Verdict::NotSure, Cause::TooLong));
        assert_eq!(d.elapsed, Duration::from_secs(5));
        assert!(amd.is_finished());
        assert_eq!(
            amd.frames(),
            250,
            "frames after the verdict are not analysed"
        );
    }

    #[test]
    fn greeting_then_beep_gives_machine_then_the_beep() {
        for codec in CODECS {
            let mut rng = Rng::new(80);
            let mut sig = silence(400);
            sig.extend(utterance(
                &[(600, 100), (700, 120), (500, 90), (800, 300)],
                -22.0,
                &mut rng,
            ));
            let beep_start = sig.len() / FRAME_SAMPLES;
            sig.extend(tone(400, 1000.0, -18.0));
            sig.extend(silence(1000));
            let sig = on_line(sig, &mut rng);
            let mut amd = Amd::new(AmdConfig::default());
            let events = run_amd(&mut amd, &via_g711(&sig, codec));
            let d = decision(&events);
            assert_eq!(d.verdict, Verdict::Machine, "{d:?}");
            let b = beeps(&events);
            assert_eq!(b.len(), 1, "{events:?}");
            let (polled_at, beep) = b[0];
            assert!((beep.frequency_hz - 1000.0).abs() <= 20.0, "{beep:?}");
            assert!(
                (beep.frequency_hz - 1000.0).abs() <= 2.0,
                "the estimate is exact: {beep:?}"
            );
            assert!(ms(beep.duration).abs_diff(400) <= 40, "{beep:?}");
            assert!(beep.at_frame.abs_diff(beep_start as u64) <= 1, "{beep:?}");
            // Reported on the first frame after the tone.
            assert_eq!(
                polled_at,
                beep.at_frame + beep.duration.as_millis() as u64 / 20
            );
            assert!(events[0].0 < polled_at, "verdict first");
            assert!(amd.is_finished());
        }
    }

    #[test]
    fn a_beep_before_any_verdict_decides_machine() {
        let mut sig = silence(1000);
        sig.extend(tone(500, 850.0, -20.0));
        sig.extend(silence(3000));
        let mut amd = Amd::new(AmdConfig::default());
        let events = run_amd(&mut amd, &via_g711(&sig, Codec::Pcmu));
        let d = decision(&events);
        assert_eq!(
            (d.verdict, d.cause),
            (Verdict::Machine, Cause::Beep),
            "{d:?}"
        );
        let b = beeps(&events);
        assert_eq!(b.len(), 1);
        assert_eq!(events[0].0, b[0].0, "both on the frame after the beep");
        assert!(
            matches!(events[0].1, AmdEvent::Decided(_)),
            "decision polled first"
        );
        assert!((b[0].1.frequency_hz - 850.0).abs() < 2.0);
    }

    #[test]
    fn a_human_never_reports_a_beep() {
        let mut rng = Rng::new(90);
        let mut sig = silence(500);
        sig.extend(word(500, -20.0, &mut rng));
        sig.extend(silence(1200));
        sig.extend(tone(500, 1000.0, -20.0));
        sig.extend(silence(500));
        let mut amd = Amd::new(AmdConfig::default());
        let events = run_amd(&mut amd, &pcm(&sig));
        assert_eq!(decision(&events).verdict, Verdict::Human);
        assert!(beeps(&events).is_empty());
    }

    #[test]
    fn beeps_across_the_band_are_found_with_their_frequency() {
        for hz in [400.0, 440.0, 1000.0, 1400.0, 1800.0, 2000.0] {
            for level in [-40.0, -25.0, -10.0] {
                for codec in CODECS {
                    let mut sig = silence(300);
                    sig.extend(tone(300, hz, level));
                    sig.extend(silence(300));
                    let b = detect_beeps(&via_g711(&sig, codec));
                    assert_eq!(b.len(), 1, "{hz} Hz {level} dBFS {codec:?}: {b:?}");
                    let beep = b[0].1;
                    assert!(
                        (f64::from(beep.frequency_hz) - hz).abs() <= 2.0,
                        "{hz} Hz: {beep:?}"
                    );
                    assert!(ms(beep.duration).abs_diff(300) <= 40, "{beep:?}");
                }
            }
        }
    }

    #[test]
    fn short_far_and_long_tones_are_not_beeps() {
        let mut rng = Rng::new(100);
        let mut cases = vec![
            ("150 ms", tone(150, 1000.0, -20.0)),
            ("300 Hz", tone(500, 300.0, -20.0)),
            ("2500 Hz", tone(500, 2500.0, -20.0)),
            ("too quiet", tone(500, 1000.0, -55.0)),
            ("dial tone", tone(8000, 425.0, -20.0)),
        ];
        cases.push((
            "150 ms in noise",
            mix(tone(150, 1000.0, -20.0), &noise(150, -50.0, &mut rng)),
        ));
        for (name, t) in cases {
            let mut sig = silence(300);
            sig.extend(t);
            sig.extend(silence(300));
            for codec in CODECS {
                assert_eq!(
                    detect_beeps(&via_g711(&sig, codec)),
                    vec![],
                    "{name} {codec:?}"
                );
            }
        }
        // 200 ms is the shortest beep.
        let mut sig = silence(310);
        sig.extend(tone(200, 1000.0, -20.0));
        sig.extend(silence(300));
        assert_eq!(detect_beeps(&pcm(&sig)).len(), 1);
    }

    #[test]
    fn dtmf_and_speech_are_not_beeps() {
        let mut sig = silence(200);
        // All sixteen digits, held from 100 ms to 850 ms; `*` (941 + 1209 Hz) is the pair that
        // one sinusoid fits best.
        let mut i = 0;
        for lo in [697.0, 770.0, 852.0, 941.0] {
            for hi in [1209.0, 1336.0, 1477.0, 1633.0] {
                sig.extend(dual(100 + 50 * i, lo, Some(hi), -22.0));
                sig.extend(silence(100));
                i += 1;
            }
        }
        sig.extend(dual(1000, 941.0, Some(1209.0), -30.0));
        for codec in CODECS {
            assert_eq!(
                detect_beeps(&via_g711(&sig, codec)),
                vec![],
                "DTMF {codec:?}"
            );
        }
        for seed in 0..8 {
            let mut rng = Rng::new(200 + seed);
            let parts: Vec<(u32, u32)> = (0..12)
                .map(|_| {
                    (
                        rng.range(150.0, 1200.0) as u32,
                        rng.range(40.0, 300.0) as u32,
                    )
                })
                .collect();
            let speech = utterance(&parts, rng.range(-36.0, -12.0), &mut rng);
            for codec in CODECS {
                assert_eq!(
                    detect_beeps(&via_g711(&speech, codec)),
                    vec![],
                    "speech {seed}"
                );
            }
        }
    }

    #[test]
    fn per_call_state_is_small_and_fixed() {
        // Thousands of calls: the whole detector, VAD and beep detector included, lives inline
        // (the VAD's kept first second is 400 bytes of it).
        assert!(size_of::<Amd>() <= 1024, "{}", size_of::<Amd>());
        assert!(
            size_of::<BeepDetector>() <= 128,
            "{}",
            size_of::<BeepDetector>()
        );
    }

    #[test]
    fn causes_map_to_verdicts_and_asterisk_names() {
        assert_eq!(Cause::Human.verdict(), Verdict::Human);
        assert_eq!(Cause::TooLong.verdict(), Verdict::NotSure);
        for c in [
            Cause::InitialSilence,
            Cause::LongGreeting,
            Cause::MaxWords,
            Cause::MaxWordLength,
            Cause::Beep,
        ] {
            assert_eq!(c.verdict(), Verdict::Machine);
        }
        assert_eq!(Cause::InitialSilence.to_string(), "INITIALSILENCE");
        assert_eq!(Verdict::NotSure.to_string(), "NOTSURE");
    }
}
