//! Voice activity detection (VAD) on 8 kHz, 20 ms frames.
//!
//! This module owns the per-call decision "is the far end talking?": it turns each
//! [`FRAME_SAMPLES`]-sample frame into a [`FrameClass`] (silence, speech, tone) and, with an
//! onset count and a hang-over, into [`VadEvent::SpeechStart`] / [`VadEvent::SpeechEnd`]. Barge-in
//! uses a short hang-over ([`VadConfig::barge_in`], 300 ms), endpointing a long one
//! ([`VadConfig::endpointing`], 700 ms); each [`Vad`] carries its own config.
//!
//! # How the engine drives it
//! Once per received 20 ms frame, after G.711 decoding (a lost frame is fed as silence so the
//! frame count stays the media clock):
//! ```
//! # use media::vad::{Vad, VadConfig, VadEvent};
//! let mut vad = Vad::new(VadConfig::barge_in());
//! let frame = [0i16; media::FRAME_SAMPLES];
//! if let Some(event) = vad.push(&frame) {
//!     match event {
//!         VadEvent::SpeechStart { at_frame } => { /* pause the prompt */ let _ = at_frame; }
//!         VadEvent::SpeechEnd { at_frame, duration } => { let _ = (at_frame, duration); }
//!     }
//! }
//! ```
//! Time is the number of frames pushed (frame `n` starts at `n × 20 ms`); nothing here reads a
//! clock or allocates, and a [`Vad`] is about half a kilobyte (most of it the first second's
//! measurements, kept to judge them again: see [`Vad::opening_rejudged`]).
//!
//! # How a frame is classified
//! - **Energy against an adaptive noise floor.** Frame energy in dBFS is compared with the floor
//!   plus [`VadConfig::margin_db`] and with an absolute [`VadConfig::min_level_dbfs`]. The floor
//!   is the minimum of the exponentially smoothed frame energy over the last 1.5–2 s (kept as the
//!   minima of three finished 0.5 s blocks and the current one): it follows a quieter line at
//!   once and rises only as quiet blocks age out, so steady background noise becomes the floor
//!   within about 2 s (at once when it is there from the first frame), while speech, which
//!   always has pauses, never does.
//! - **Tonality instead of zero-crossing rate.** A sum of one or two steady sinusoids (a beep, a
//!   DTMF digit, a dial tone) obeys an exact 4-tap palindromic recurrence
//!   `x[n] + x[n-4] = a·(x[n-1] + x[n-3]) + b·x[n-2]`. The residual of its least-squares fit,
//!   relative to the signal, is a spectral-flatness measure computed in one pass without an FFT:
//!   near 0 for tones (only G.711 quantisation noise remains: below 0.08 even for DTMF at
//!   −48 dBFS), above 0.2 for speech and noise. Zero-crossing rate was rejected: it is dominated
//!   by whatever noise is on the line, and it cannot tell a vowel from a 700 Hz tone, which is
//!   exactly the confusion that matters here; low-energy unvoiced consonants, which ZCR would
//!   rescue, are covered by the onset count and the hang-over. The fit runs on the first
//!   difference of the signal so that voiced speech, whose energy sits low in the band, does not
//!   look like a low tone. With [`VadConfig::reject_tones`] a tonal frame is
//!   [`FrameClass::Tone`] and does not count as speech.
//! - **Cost.** The fit is computed only where it can change the class: on frames loud enough
//!   to be speech (in the first second, loud enough against any floor, since those frames may
//!   be judged again). A quiet frame costs one integer pass for its energy and mean absolute
//!   value, about a sixth of a loud one.

use std::time::Duration;

use crate::{FRAME_MS, FRAME_SAMPLES};

/// Frames per noise-floor block (0.5 s).
const FLOOR_BLOCK_FRAMES: u32 = 25;
/// Completed blocks remembered by the noise floor (with the current one: 1.5–2 s of history).
const FLOOR_BLOCKS: usize = 3;
/// Weight of a new frame in the smoothed energy that the floor tracks.
const SMOOTHING: f32 = 0.3;
/// Frames at the start of a stream that are kept and judged again when the noise floor drops
/// below the level they were judged against (1 s): speech from the very first frame.
const OPENING_FRAMES: usize = 50;
/// How far (dB) the floor must have dropped since the opening was last judged to judge again.
const OPENING_REJUDGE_DB: f32 = 3.0;
/// Energy reported for digital silence.
const SILENT_DBFS: f32 = -100.0;
/// A frame whose tone-model residual is below this fraction of its energy is a tone (−10 dB).
/// Measured on G.711 round-tripped signals (see `tonality_separates_tones_from_speech`): tones
/// and DTMF pairs from −48 to −16 dBFS stay below 0.08, synthetic speech and noise above 0.2.
const TONE_RESIDUAL: f64 = 0.1;

/// Per-instance VAD settings.
#[derive(Debug, Clone, PartialEq)]
pub struct VadConfig {
    /// Consecutive speech frames that start speech (20 ms each). 0 is treated as 1.
    pub onset_frames: u32,
    /// Non-speech time after the last speech frame before speech ends (rounded up to frames).
    pub hangover: Duration,
    /// How far above the noise floor a frame must be to be speech, in dB.
    pub margin_db: f32,
    /// Frames quieter than this (dBFS, RMS relative to a full-scale square wave) are never speech.
    pub min_level_dbfs: f32,
    /// Classify steady single and dual tones as [`FrameClass::Tone`] rather than speech.
    pub reject_tones: bool,
}

impl VadConfig {
    /// Barge-in: react within 60 ms, end after 300 ms of quiet.
    pub fn barge_in() -> Self {
        VadConfig {
            onset_frames: 3,
            hangover: Duration::from_millis(300),
            margin_db: 9.0,
            min_level_dbfs: -50.0,
            reject_tones: true,
        }
    }

    /// Endpointing: as barge-in, but an utterance ends only after 700 ms of quiet.
    pub fn endpointing() -> Self {
        VadConfig {
            hangover: Duration::from_millis(700),
            ..VadConfig::barge_in()
        }
    }
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig::barge_in()
    }
}

/// A change of the speech state, reported on the frame where it was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech began at frame `at_frame` (its first speech frame). Reported `onset_frames - 1`
    /// frames later.
    SpeechStart {
        /// Index of the first speech frame.
        at_frame: u64,
    },
    /// Speech ended: `at_frame` is the first frame after the last speech frame. Reported once
    /// the hang-over has passed, i.e. on frame `at_frame + hangover_frames - 1`.
    SpeechEnd {
        /// Index of the first non-speech frame after the utterance.
        at_frame: u64,
        /// From the first to the last speech frame, inclusive.
        duration: Duration,
    },
}

/// What one frame looked like, before onset and hang-over smoothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameClass {
    /// At or near the noise floor, or below the absolute minimum level.
    Silence,
    /// Loud enough above the noise floor, not a steady tone.
    Speech,
    /// Loud enough, but one or two steady sinusoids (only when tones are rejected).
    Tone,
}

/// The measurements and class of the last frame pushed; what AMD builds on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameInfo {
    /// The class after the noise-floor and tone tests.
    pub class: FrameClass,
    /// RMS level of the frame in dBFS (−100 for digital silence).
    pub energy_dbfs: f32,
    /// The noise floor the frame was compared with, in dBFS.
    pub noise_floor_dbfs: f32,
    /// Average absolute sample value on the 16-bit scale (the measure Asterisk's AMD uses).
    pub mean_abs: u16,
}

/// What is kept of an opening frame to judge it again.
#[derive(Debug, Clone, Copy, Default)]
struct Opening {
    energy_dbfs: f32,
    mean_abs: u16,
    tonal: bool,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Not in speech; `run` consecutive speech frames so far.
    Quiet { run: u32 },
    /// In speech since frame `start`; `quiet` non-speech frames since the last speech frame.
    Talking { start: u64, quiet: u32 },
}

/// Frame-based voice activity detector; one per call direction.
#[derive(Debug, Clone)]
pub struct Vad {
    config: VadConfig,
    onset_frames: u32,
    hangover_frames: u32,
    /// Frames pushed so far; the index of the next frame.
    frames: u64,
    /// The last sample of the previous frame (for the first difference across the boundary).
    prev_sample: i16,
    smoothed_dbfs: f32,
    block_min: [f32; FLOOR_BLOCKS],
    current_block_min: f32,
    current_block_len: u32,
    state: State,
    last: FrameInfo,
    /// The first [`OPENING_FRAMES`] frames' measurements.
    opening: [Opening; OPENING_FRAMES],
    opening_len: u8,
    /// The floor the opening frames were last judged against.
    opening_floor: f32,
    /// The opening was judged again on the last push (see [`Vad::opening_rejudged`]).
    rejudged: bool,
    /// A speech start has been reported.
    spoke: bool,
    /// The last frame fits the two-tone model.
    last_tonal: bool,
    /// Fit every frame (the tests' reference for skipping the fit).
    #[cfg(test)]
    fit_always: bool,
}

impl Vad {
    /// A detector at frame 0 with no noise estimate yet.
    pub fn new(config: VadConfig) -> Self {
        let onset_frames = config.onset_frames.max(1);
        let hangover_frames = frames_for(config.hangover).max(1);
        Vad {
            config,
            onset_frames,
            hangover_frames,
            frames: 0,
            prev_sample: 0,
            smoothed_dbfs: f32::NAN,
            block_min: [f32::INFINITY; FLOOR_BLOCKS],
            current_block_min: f32::INFINITY,
            current_block_len: 0,
            state: State::Quiet { run: 0 },
            last: FrameInfo {
                class: FrameClass::Silence,
                energy_dbfs: SILENT_DBFS,
                noise_floor_dbfs: SILENT_DBFS,
                mean_abs: 0,
            },
            opening: [Opening::default(); OPENING_FRAMES],
            opening_len: 0,
            opening_floor: f32::INFINITY,
            rejudged: false,
            spoke: false,
            last_tonal: false,
            #[cfg(test)]
            fit_always: false,
        }
    }

    /// The settings this detector runs with.
    pub fn config(&self) -> &VadConfig {
        &self.config
    }

    /// Feed the next 20 ms frame; returns the speech-state change it caused, if any (at most one
    /// per frame).
    pub fn push(&mut self, frame: &[i16; FRAME_SAMPLES]) -> Option<VadEvent> {
        let index = self.frames;
        self.frames += 1;
        let info = self.classify(frame);
        self.last = info;
        self.rejudged = false;
        if let Some(ev) = self.rejudge_opening(index) {
            return Some(ev);
        }
        let speech = info.class == FrameClass::Speech;
        match &mut self.state {
            State::Quiet { run } => {
                if !speech {
                    *run = 0;
                    return None;
                }
                *run += 1;
                if *run < self.onset_frames {
                    return None;
                }
                let start = index + 1 - u64::from(*run);
                self.state = State::Talking { start, quiet: 0 };
                self.spoke = true;
                tracing::debug!(at_frame = start, "speech start");
                Some(VadEvent::SpeechStart { at_frame: start })
            }
            State::Talking { start, quiet } => {
                if speech {
                    *quiet = 0;
                    return None;
                }
                *quiet += 1;
                if *quiet < self.hangover_frames {
                    return None;
                }
                let end = index + 1 - u64::from(*quiet);
                let duration = frames_to_duration(end - *start);
                self.state = State::Quiet { run: 0 };
                tracing::debug!(at_frame = end, ?duration, "speech end");
                Some(VadEvent::SpeechEnd {
                    at_frame: end,
                    duration,
                })
            }
        }
    }

    /// The measurements and class of the last frame pushed.
    pub fn last_frame(&self) -> &FrameInfo {
        &self.last
    }

    /// Whether the last push judged the opening frames again (see [`Vad::opening_class`]).
    ///
    /// The floor is learnt from the signal itself, so speech that starts on the very first
    /// frame ("алло?" the instant the line opens) sets the floor at its own level and reads as
    /// silence. Speech has pauses: when the floor then drops by [`OPENING_REJUDGE_DB`] or more
    /// within the first second, the opening frames are judged again against the new floor.
    /// When that finds speech and none was reported yet, [`Vad::push`] reports its start late
    /// (with the true `at_frame`); AMD replays its count from the re-judged classes.
    pub fn opening_rejudged(&self) -> bool {
        self.rejudged
    }

    /// Frame `i` of the opening (the first second) judged against the current floor, with its
    /// mean absolute value; `None` past the frames kept.
    pub fn opening_class(&self, i: usize) -> Option<(FrameClass, u16)> {
        let o = self
            .opening
            .get(i)
            .filter(|_| i < usize::from(self.opening_len))?;
        Some((
            self.judge(o.energy_dbfs, o.tonal, self.last.noise_floor_dbfs),
            o.mean_abs,
        ))
    }

    /// Number of opening frames kept (at most one second's worth).
    pub fn opening_len(&self) -> usize {
        usize::from(self.opening_len)
    }

    /// Judge the opening again if the floor dropped enough; a late speech start if it finds
    /// speech nobody reported.
    fn rejudge_opening(&mut self, index: u64) -> Option<VadEvent> {
        if usize::from(self.opening_len) < OPENING_FRAMES
            && usize::try_from(index).is_ok_and(|i| i == usize::from(self.opening_len))
        {
            let (m_energy, m_abs, m_tonal) =
                (self.last.energy_dbfs, self.last.mean_abs, self.last_tonal);
            self.opening[usize::from(self.opening_len)] = Opening {
                energy_dbfs: m_energy,
                mean_abs: m_abs,
                tonal: m_tonal,
            };
            self.opening_len += 1;
        } else {
            return None;
        }
        let floor = self.last.noise_floor_dbfs;
        if self.opening_floor.is_infinite() {
            self.opening_floor = floor;
            return None;
        }
        if floor > self.opening_floor - OPENING_REJUDGE_DB {
            return None;
        }
        self.opening_floor = floor;
        self.rejudged = true;
        if self.spoke || self.in_speech() {
            return None;
        }
        // The first run of `onset_frames` speech frames among the frames before this one, and
        // the last speech frame after it.
        let kept = usize::from(self.opening_len) - 1;
        let mut run = 0u32;
        let mut start = None;
        let mut last_speech = 0usize;
        for i in 0..kept {
            let o = self.opening[i];
            if self.judge(o.energy_dbfs, o.tonal, floor) == FrameClass::Speech {
                run += 1;
                last_speech = i;
                if start.is_none() && run >= self.onset_frames {
                    start = Some(i + 1 - run as usize);
                }
            } else {
                run = 0;
            }
        }
        let start = start? as u64;
        // Frames after the last speech one up to this one are the quiet so far; the end comes
        // on the next quiet frame at the earliest, dated correctly.
        let quiet = u32::try_from(index - last_speech as u64).unwrap_or(u32::MAX);
        self.state = State::Talking { start, quiet };
        self.spoke = true;
        tracing::debug!(at_frame = start, "speech start (opening judged again)");
        Some(VadEvent::SpeechStart { at_frame: start })
    }

    fn judge(&self, energy_dbfs: f32, tonal: bool, floor: f32) -> FrameClass {
        let loud = energy_dbfs >= self.config.min_level_dbfs
            && energy_dbfs >= floor + self.config.margin_db;
        if !loud {
            FrameClass::Silence
        } else if self.config.reject_tones && tonal {
            FrameClass::Tone
        } else {
            FrameClass::Speech
        }
    }

    /// Whether the detector is inside an utterance (between start and end events).
    pub fn in_speech(&self) -> bool {
        matches!(self.state, State::Talking { .. })
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Measure one frame, update the noise floor, and classify the frame against it.
    ///
    /// The two-tone fit, most of the cost, is computed only where its answer can matter: on a
    /// frame loud enough to be speech now, or (in the first second, whose frames may be judged
    /// again against a lower floor) loud enough to be speech against any floor. Elsewhere
    /// `judge` says silence whatever the tonality.
    fn classify(&mut self, frame: &[i16; FRAME_SAMPLES]) -> FrameInfo {
        let m = level(frame);
        let prev_sample = std::mem::replace(&mut self.prev_sample, frame[FRAME_SAMPLES - 1]);
        let energy_dbfs = m.energy_dbfs();

        self.smoothed_dbfs = if self.smoothed_dbfs.is_nan() {
            energy_dbfs
        } else {
            self.smoothed_dbfs + SMOOTHING * (energy_dbfs - self.smoothed_dbfs)
        };
        self.current_block_min = self.current_block_min.min(self.smoothed_dbfs);
        let floor = self
            .block_min
            .iter()
            .fold(self.current_block_min, |a, &b| a.min(b));
        self.current_block_len += 1;
        if self.current_block_len == FLOOR_BLOCK_FRAMES {
            self.block_min.rotate_left(1);
            self.block_min[FLOOR_BLOCKS - 1] = self.current_block_min;
            self.current_block_min = f32::INFINITY;
            self.current_block_len = 0;
        }

        // `frames` already counts this frame.
        let opening = self.frames <= OPENING_FRAMES as u64;
        let needed = self.config.reject_tones
            && energy_dbfs >= self.config.min_level_dbfs
            && (opening || energy_dbfs >= floor + self.config.margin_db);
        #[cfg(test)]
        let needed = needed || self.fit_always;
        self.last_tonal = needed && tonality(frame, prev_sample) < TONE_RESIDUAL;
        let class = self.judge(energy_dbfs, self.last_tonal, floor);
        FrameInfo {
            class,
            energy_dbfs,
            noise_floor_dbfs: floor,
            mean_abs: m.mean_abs,
        }
    }
}

/// Level measurements of one frame.
#[derive(Debug, Clone, Copy)]
struct Level {
    sum_sq: u64,
    mean_abs: u16,
}

impl Level {
    fn energy_dbfs(&self) -> f32 {
        let mean_sq = self.sum_sq as f64 / FRAME_SAMPLES as f64;
        if mean_sq < 1.0 {
            return SILENT_DBFS;
        }
        // 0 dBFS is a full-scale square wave (RMS 32768).
        (10.0 * (mean_sq / (32768.0 * 32768.0)).log10()).max(f64::from(SILENT_DBFS)) as f32
    }
}

/// Energy and mean absolute value, in integers (exact: at most 160 × 2³⁰).
fn level(frame: &[i16; FRAME_SAMPLES]) -> Level {
    let mut sum_sq = 0u64;
    let mut sum_abs = 0u32;
    for &s in frame {
        let x = i32::from(s);
        sum_sq += u64::from((x * x).unsigned_abs());
        sum_abs += u32::from(s.unsigned_abs());
    }
    Level {
        sum_sq,
        mean_abs: (sum_abs / FRAME_SAMPLES as u32) as u16,
    }
}

/// Residual of the two-tone model over the energy it had to explain (0 = a perfect tone), on
/// the first difference of the frame with `prev_sample` (the previous frame's last) in front.
///
/// All products are of integers below 2^18 and all sums stay below 2^53, so the `f64`
/// accumulations are exact and the residual `Suu - a·Suv - b·Suw` does not suffer from
/// cancellation beyond the rounding of `a` and `b`. (Vectorising the sums, exact in any order,
/// measured no faster: the compiler shuffles lanes more than it saves.)
fn tonality(frame: &[i16; FRAME_SAMPLES], prev_sample: i16) -> f64 {
    // The last five first differences, d[n−4] … d[n], kept in registers.
    let mut prev = f64::from(prev_sample);
    let mut d = [0.0f64; 5];
    let (head, rest) = frame.split_at(4);
    for (di, &s) in d[1..].iter_mut().zip(head) {
        let x = f64::from(s);
        *di = x - prev;
        prev = x;
    }
    let (mut suu, mut suv, mut suw, mut svv, mut svw, mut sww) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for &s in rest {
        let x = f64::from(s);
        d = [d[1], d[2], d[3], d[4], x - prev];
        prev = x;
        let u = d[4] + d[0];
        let v = d[3] + d[1];
        let w = d[2];
        suu += u * u;
        suv += u * v;
        suw += u * w;
        svv += v * v;
        svw += v * w;
        sww += w * w;
    }
    two_tone_residual(suu, suv, suw, svv, svw, sww)
}

/// Raw measurements of one frame (what the tests look at).
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
struct Measure {
    level: Level,
    tonality: f64,
}

#[cfg(test)]
impl Measure {
    fn energy_dbfs(&self) -> f32 {
        self.level.energy_dbfs()
    }
}

#[cfg(test)]
fn measure(frame: &[i16; FRAME_SAMPLES], prev_sample: i16) -> Measure {
    Measure {
        level: level(frame),
        tonality: tonality(frame, prev_sample),
    }
}

/// Least-squares fit of `u ≈ a·v + b·w`; returns the residual over the variance it explains
/// against (`Suu + Sww`, which stays positive for a tone at fs/4, where `u` vanishes).
///
/// A single tone leaves the 2×2 system singular (a one-parameter family of fits is exact), so
/// a tiny ridge term keeps the solve finite without changing the residual materially.
fn two_tone_residual(suu: f64, suv: f64, suw: f64, svv: f64, svw: f64, sww: f64) -> f64 {
    let scale = suu + sww;
    if scale <= 0.0 {
        return 1.0;
    }
    let ridge = 1e-9 * (svv + sww) + 1e-9;
    let (p, q, r) = (svv + ridge, svw, sww + ridge);
    let det = p * r - q * q;
    if det <= 0.0 {
        return 1.0;
    }
    let a = (suv * r - suw * q) / det;
    let b = (suw * p - suv * q) / det;
    let residual = (suu - a * suv - b * suw).max(0.0);
    residual / scale
}

/// Whole frames covering `d`, rounded up.
pub(crate) fn frames_for(d: Duration) -> u32 {
    let ms = d.as_millis();
    let frame_ms = u128::from(FRAME_MS);
    u32::try_from(ms.div_ceil(frame_ms)).unwrap_or(u32::MAX)
}

/// The duration of `n` frames.
pub(crate) fn frames_to_duration(n: u64) -> Duration {
    Duration::from_millis(n.saturating_mul(u64::from(FRAME_MS)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711::Codec;
    use crate::synth::*;

    /// Events with the index of the frame that produced them.
    fn run(vad: &mut Vad, pcm: &[i16]) -> Vec<(u64, VadEvent)> {
        frames(pcm)
            .iter()
            .enumerate()
            .filter_map(|(i, f)| vad.push(f).map(|e| (i as u64, e)))
            .collect()
    }

    fn starts(events: &[(u64, VadEvent)]) -> Vec<u64> {
        events
            .iter()
            .filter_map(|(_, e)| match e {
                VadEvent::SpeechStart { at_frame } => Some(*at_frame),
                VadEvent::SpeechEnd { .. } => None,
            })
            .collect()
    }

    fn ends(events: &[(u64, VadEvent)]) -> Vec<(u64, u64, Duration)> {
        events
            .iter()
            .filter_map(|(i, e)| match e {
                VadEvent::SpeechEnd { at_frame, duration } => Some((*i, *at_frame, *duration)),
                VadEvent::SpeechStart { .. } => None,
            })
            .collect()
    }

    /// dBFS (RMS against a full-scale square wave) of a G.711 level: a full-scale sine is
    /// +3.17 dBm0 and −3.01 dBFS.
    fn dbm0(level: f64) -> f64 {
        level - 6.18
    }

    fn near(actual: u64, expected: u64, slack: u64) -> bool {
        actual.abs_diff(expected) <= slack
    }

    #[test]
    fn tonality_separates_tones_from_speech() {
        let mut rng = Rng::new(7);
        let mut speechlike = Vec::new();
        for level in [-45.0, -36.0, -26.0, -16.0] {
            speechlike.push(utterance(&[(600, 0), (800, 0), (500, 0)], level, &mut rng));
        }
        speechlike.push(noise(1000, -40.0, &mut rng));
        speechlike.push(rumble(1000, -40.0, &mut rng));
        let mut tones = Vec::new();
        for level in [-45.0, -30.0, -16.0] {
            for hz in [400.0, 440.0, 1000.0, 1400.0, 1800.0, 2000.0] {
                tones.push(tone(500, hz, level));
            }
            for (lo, hi) in [
                (697.0, 1209.0),
                (770.0, 1336.0),
                (852.0, 1477.0),
                (941.0, 1633.0),
            ] {
                tones.push(dual(500, lo, Some(hi), level - 3.0));
            }
        }
        for codec in [Codec::Pcmu, Codec::Pcma] {
            for sig in &speechlike {
                let p = via_g711(sig, codec);
                for f in frames(&p) {
                    let m = measure(f, 0);
                    if m.energy_dbfs() > -55.0 {
                        assert!(
                            m.tonality > 1.5 * TONE_RESIDUAL,
                            "speech frame looks tonal: {m:?}"
                        );
                    }
                }
            }
            for sig in &tones {
                let p = via_g711(sig, codec);
                let f = frames(&p);
                // Skip the ramps at either end.
                for f in &f[1..f.len() - 1] {
                    let m = measure(f, f[0]);
                    assert!(m.tonality < TONE_RESIDUAL, "tone frame not tonal: {m:?}");
                }
            }
        }
    }

    #[test]
    fn bursts_start_and_end_at_the_right_frames() {
        for level in [dbm0(-30.0), dbm0(-20.0), dbm0(-10.0)] {
            for codec in [Codec::Pcmu, Codec::Pcma] {
                let mut rng = Rng::new(11);
                let mut sig = silence(500);
                sig.extend(word(400, level, &mut rng));
                sig.extend(silence(1000));
                sig.extend(word(800, level, &mut rng));
                sig.extend(silence(1000));
                let sig = mix(sig, &noise(3700, -70.0, &mut rng));
                let mut vad = Vad::new(VadConfig::barge_in());
                let events = run(&mut vad, &via_g711(&sig, codec));
                let s = starts(&events);
                let e = ends(&events);
                assert_eq!(
                    (s.len(), e.len()),
                    (2, 2),
                    "{level} dBFS {codec:?}: {events:?}"
                );
                // Words start at 500 ms and 1900 ms, end at 900 ms and 2700 ms; the envelope
                // ramps cost at most a frame or two at either end.
                assert!(near(s[0], 25, 1) && near(s[1], 95, 1), "{s:?}");
                assert!(near(e[0].1, 45, 2) && near(e[1].1, 135, 2), "{e:?}");
                for &(emitted, end, _) in &e {
                    // Reported exactly when the 300 ms hang-over has run out.
                    assert_eq!(emitted, end + 15 - 1);
                }
                assert!(near(e[0].2.as_millis() as u64, 400, 60), "{e:?}");
                assert!(near(e[1].2.as_millis() as u64, 800, 60), "{e:?}");
                // Emission order: start before its end.
                assert!(events[0].0 < events[1].0 && events[1].0 < events[2].0);
                assert_eq!(
                    events[0].0,
                    s[0] + 2,
                    "onset reported on the third speech frame"
                );
            }
        }
    }

    #[test]
    fn hangover_bridges_gaps_shorter_than_itself() {
        let utterances = |gap: u32, config: VadConfig| {
            let mut rng = Rng::new(3);
            let mut sig = silence(300);
            sig.extend(utterance(&[(500, gap), (500, 1500)], -30.0, &mut rng));
            let mut vad = Vad::new(config);
            let events = run(&mut vad, &pcm(&sig));
            assert!(!vad.in_speech());
            ends(&events)
        };
        assert_eq!(utterances(200, VadConfig::barge_in()).len(), 1);
        assert_eq!(utterances(420, VadConfig::barge_in()).len(), 2);
        let long = utterances(500, VadConfig::endpointing());
        assert_eq!(long.len(), 1);
        // 700 ms hang-over: 35 frames after the end of speech.
        assert_eq!(long[0].0, long[0].1 + 35 - 1);
        assert!(near(long[0].2.as_millis() as u64, 1500, 60), "{long:?}");
        assert_eq!(utterances(800, VadConfig::endpointing()).len(), 2);
    }

    #[test]
    fn speech_from_the_very_first_frame_is_found_once_the_floor_drops() {
        for (seed, word_ms, level) in [(31, 400, -20.0), (32, 700, -32.0)] {
            let mut rng = Rng::new(seed);
            let mut sig = word(word_ms, level, &mut rng);
            sig.extend(silence(1500));
            let sig = mix(sig, &noise(word_ms + 1500, -68.0, &mut rng));
            let mut vad = Vad::new(VadConfig::barge_in());
            let events = run(&mut vad, &via_g711(&sig, Codec::Pcmu));
            let s = starts(&events);
            let e = ends(&events);
            assert_eq!((s.len(), e.len()), (1, 1), "{events:?}");
            assert!(s[0] <= 1, "starts on the first frames: {events:?}");
            let word_frames = u64::from(word_ms / 20);
            assert!(near(e[0].1, word_frames, 2), "{events:?}");
            // Reported within a few frames of the word's end (when the floor falls).
            assert!(events[0].0 <= word_frames + 6, "{events:?}");
        }
    }

    #[test]
    fn a_click_is_not_speech() {
        let mut rng = Rng::new(5);
        let mut sig = silence(400);
        sig.extend(noise(40, -20.0, &mut rng));
        sig.extend(silence(600));
        let mut vad = Vad::new(VadConfig::barge_in());
        assert_eq!(run(&mut vad, &pcm(&sig)), vec![]);
    }

    #[test]
    fn steady_noise_from_the_start_gives_no_events() {
        for (name, sig) in [
            ("white", noise(10_000, -35.0, &mut Rng::new(1))),
            ("rumble", rumble(10_000, -30.0, &mut Rng::new(2))),
        ] {
            for codec in [Codec::Pcmu, Codec::Pcma] {
                let mut vad = Vad::new(VadConfig::endpointing());
                assert_eq!(run(&mut vad, &via_g711(&sig, codec)), vec![], "{name}");
            }
        }
    }

    #[test]
    fn noise_that_appears_later_is_learned_and_speech_over_it_still_counts() {
        let mut rng = Rng::new(9);
        let mut sig = silence(1000);
        let noise_start = sig.len();
        sig.extend(rumble(12_000, -38.0, &mut rng));
        // A word 15 dB above the noise at 9 s.
        let mut speech = vec![0.0; 9 * 8000];
        speech.extend(word(600, -23.0, &mut rng));
        let sig = mix(sig, &speech);
        let mut vad = Vad::new(VadConfig::barge_in());
        let events = run(&mut vad, &via_g711(&sig, Codec::Pcmu));
        // Adaptation takes at most the floor's memory (2 s) plus the hang-over.
        let adapted = (noise_start / FRAME_SAMPLES) as u64 + 100 + 15;
        let late: Vec<_> = events.iter().filter(|(i, _)| *i > adapted).collect();
        assert_eq!(late.len(), 2, "only the word after adaptation: {late:?}");
        assert!(
            near(starts(&events).last().copied().unwrap_or(0), 450, 2),
            "{events:?}"
        );
    }

    #[test]
    fn steady_tones_are_not_speech_unless_asked() {
        let mut sig = silence(300);
        sig.extend(tone(1000, 1000.0, -16.0));
        sig.extend(silence(300));
        sig.extend(dual(200, 697.0, Some(1209.0), -20.0));
        sig.extend(silence(300));
        sig.extend(tone(600, 440.0, -30.0));
        sig.extend(silence(500));
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let p = via_g711(&sig, codec);
            let mut vad = Vad::new(VadConfig::barge_in());
            assert_eq!(run(&mut vad, &p), vec![], "{codec:?}");
            let mut vad = Vad::new(VadConfig {
                reject_tones: false,
                ..VadConfig::barge_in()
            });
            assert_eq!(starts(&run(&mut vad, &p)), vec![15, 80, 105], "{codec:?}");
        }
    }

    #[test]
    fn speech_below_the_minimum_level_is_ignored() {
        let mut rng = Rng::new(4);
        let mut sig = silence(300);
        sig.extend(utterance(&[(600, 300), (600, 600)], -56.0, &mut rng));
        let mut vad = Vad::new(VadConfig::barge_in());
        assert_eq!(run(&mut vad, &pcm(&sig)), vec![]);
        assert_eq!(vad.frames(), frames(&pcm(&sig)).len() as u64);
    }

    #[test]
    fn frame_info_reports_level_and_floor() {
        let mut rng = Rng::new(8);
        let mut sig = noise(1000, -50.0, &mut rng);
        sig.extend(tone(200, 1000.0, -20.0));
        let p = pcm(&sig);
        let mut vad = Vad::new(VadConfig::barge_in());
        let mut infos = Vec::new();
        for f in frames(&p) {
            let _ = vad.push(f);
            infos.push(*vad.last_frame());
        }
        // A frame inside the tone, clear of its ramps.
        let info = infos[55];
        assert_eq!(info.class, FrameClass::Tone);
        assert!((info.energy_dbfs + 20.0).abs() < 0.5, "{info:?}");
        assert!((info.noise_floor_dbfs + 50.0).abs() < 2.0, "{info:?}");
        // A −20 dBFS sine: RMS 3277, mean |x| ≈ RMS × 2√2/π ≈ 2950 (8 samples a period).
        assert!(info.mean_abs.abs_diff(2950) < 100, "{info:?}");
        assert!(infos[..50].iter().all(|i| i.class == FrameClass::Silence));
    }

    /// Everything a user of the VAD sees, frame by frame: event, frame info, the opening's
    /// re-judgement and classes.
    fn observe(vad: &mut Vad, pcm: &[i16]) -> Vec<String> {
        frames(pcm)
            .iter()
            .map(|f| {
                let event = vad.push(f);
                let opening: Vec<_> = (0..vad.opening_len())
                    .map(|i| vad.opening_class(i))
                    .collect();
                format!(
                    "{event:?} {:?} {} {opening:?}",
                    vad.last_frame(),
                    vad.opening_rejudged()
                )
            })
            .collect()
    }

    #[test]
    fn skipping_the_tone_fit_on_quiet_frames_changes_nothing() {
        let mut rng = Rng::new(21);
        // A tone from the first frame (judged again once the floor drops), speech, quiet
        // tones and noise, speech near the floor.
        let mut sig = tone(300, 1000.0, -30.0);
        sig.extend(word(500, -20.0, &mut rng));
        sig.extend(silence(700));
        sig.extend(tone(400, 1000.0, -30.0));
        sig.extend(noise(300, -52.0, &mut rng));
        sig.extend(dual(300, 770.0, Some(1336.0), -45.0));
        sig.extend(utterance(&[(600, 200), (400, 900)], -35.0, &mut rng));
        sig.extend(tone(300, 440.0, -49.0));
        let ms = (sig.len() / 8) as u32;
        let sig = mix(sig, &rumble(ms, -62.0, &mut rng));
        for config in [
            VadConfig::barge_in(),
            VadConfig::endpointing(),
            VadConfig {
                reject_tones: false,
                ..VadConfig::barge_in()
            },
        ] {
            for codec in [Codec::Pcmu, Codec::Pcma] {
                let p = via_g711(&sig, codec);
                let mut vad = Vad::new(config.clone());
                let mut reference = Vad::new(config.clone());
                reference.fit_always = true;
                assert_eq!(
                    observe(&mut vad, &p),
                    observe(&mut reference, &p),
                    "{config:?}"
                );
            }
        }
    }

    #[test]
    fn state_is_small_and_fixed() {
        // The opening (50 frames × 8 bytes) is most of it.
        assert!(size_of::<Vad>() <= 560, "{}", size_of::<Vad>());
    }

    #[test]
    fn frame_rounding() {
        assert_eq!(frames_for(Duration::from_millis(50)), 3);
        assert_eq!(frames_for(Duration::from_millis(2500)), 125);
        assert_eq!(frames_for(Duration::ZERO), 0);
        assert_eq!(frames_to_duration(40), Duration::from_millis(800));
    }
}
