//! Synthetic audio for simulated callees, so the built-in persona mix needs no WAV file: a
//! speech-like "алло", a voicemail greeting, a spoken phrase, the voicemail beep and in-band DTMF.
//!
//! "Speech" here is `media::synth`'s speech-like word (the same generator the detectors are
//! tested with). It is not intelligible, but a voice-activity detector and an
//! answering-machine detector treat it as a talker: a short word followed by silence is a
//! human's "алло?", several seconds of words are a greeting. Everything is 8 kHz mono PCM,
//! deterministic (fixed seeds, no global RNG).

use std::f64::consts::PI;
use std::time::Duration;

use media::SAMPLE_RATE;
use media::dtmf::Digit;
use media::goertzel::DtmfTone;
use media::synth;

const FS: f64 = SAMPLE_RATE as f64;

/// Samples in `d` at 8 kHz.
pub fn samples(d: Duration) -> usize {
    (d.as_secs_f64() * FS).round() as usize
}

/// Words of the given lengths separated by `gap_ms` of silence.
fn words(lengths: &[u32], gap_ms: u32, dbfs: f64, seed: u64) -> Vec<i16> {
    let mut rng = synth::Rng::new(seed);
    let gap = samples(Duration::from_millis(u64::from(gap_ms)));
    let mut out = Vec::new();
    for (i, &ms) in lengths.iter().enumerate() {
        if i > 0 {
            out.resize(out.len() + gap, 0);
        }
        out.extend(synth::to_i16(&synth::word(ms, dbfs, &mut rng)));
    }
    out
}

/// Silence before a callee's first sound once answered (the handset reaching the ear, a
/// machine starting its playback), as real callees have. The caller's detectors also cope with
/// audio from the very first frame (see `media::vad::Vad::opening_rejudged`).
pub const PICKUP: Duration = Duration::from_millis(300);

/// A live "алло?": one word of about half a second.
pub fn hello() -> Vec<i16> {
    words(&[480], 0, -20.0, 0xA110)
}

/// A voicemail greeting: about 3.4 s of words ("you have reached… leave a message").
pub fn greeting() -> Vec<i16> {
    words(&[420, 380, 520, 300, 460, 540], 110, -20.0, 0x6EE7)
}

/// A short spoken answer (about 1.3 s).
pub fn phrase() -> Vec<i16> {
    words(&[360, 420, 300], 90, -20.0, 0x5EEC)
}

/// The voicemail beep: a steady sine at `hz` for `duration`, 5 ms ramps, −12 dBFS.
pub fn beep(hz: f64, duration: Duration) -> Vec<i16> {
    let n = samples(duration);
    let amp = 32768.0 * 10f64.powf(-12.0 / 20.0) * 2f64.sqrt();
    let ramp = samples(Duration::from_millis(5)).max(1);
    (0..n)
        .map(|i| {
            let edge = i.min(n - 1 - i);
            let g = if edge < ramp {
                0.5 - 0.5 * (PI * edge as f64 / ramp as f64).cos()
            } else {
                1.0
            };
            (amp * g * (2.0 * PI * hz * i as f64 / FS).sin()).round() as i16
        })
        .collect()
}

/// Length of one in-band key press and of the pause after it.
pub const TONE: Duration = Duration::from_millis(100);
pub const TONE_GAP: Duration = Duration::from_millis(100);
/// Level of each of a key's two tones, dBm0.
pub const TONE_LEVEL_DBM0: f32 = -8.0;

/// In-band DTMF for `digits` (each [`TONE`] long, [`TONE_GAP`] apart); characters that are not
/// keys are skipped.
pub fn dtmf(digits: &str) -> Vec<i16> {
    let tone = samples(TONE);
    let gap = samples(TONE_GAP);
    let mut out = Vec::new();
    for d in digits.chars().filter_map(Digit::from_char) {
        let start = out.len();
        out.resize(start + tone + gap, 0);
        DtmfTone::new(d, TONE_LEVEL_DBM0, TONE).fill(&mut out[start..start + tone]);
    }
    out
}

/// Add `src` into `dst` starting at sample `at` (growing `dst` as needed), saturating.
pub fn mix_at(dst: &mut Vec<i16>, at: usize, src: &[i16]) {
    if dst.len() < at + src.len() {
        dst.resize(at + src.len(), 0);
    }
    for (d, s) in dst[at..].iter_mut().zip(src) {
        *d = d.saturating_add(*s);
    }
}

/// Duration of `n` samples.
pub fn duration_of(n: usize) -> Duration {
    Duration::from_secs_f64(n as f64 / FS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::FRAME_SAMPLES;
    use media::amd::{Amd, AmdConfig, AmdEvent, Verdict};
    use media::g711::{self, Codec};
    use media::goertzel::{DetectorConfig, DtmfDetector};

    /// The caller's AMD on `pcm` then silence, through G.711 like on the wire.
    fn amd_on(pcm: &[i16]) -> (Verdict, bool) {
        let mut amd = Amd::new(AmdConfig::default());
        let mut audio = vec![0i16; samples(PICKUP)];
        audio.extend_from_slice(pcm);
        audio.resize(audio.len() + samples(Duration::from_secs(6)), 0);
        let mut verdict = None;
        let mut beep = false;
        for chunk in audio.chunks_exact(FRAME_SAMPLES) {
            let mut enc = [0u8; FRAME_SAMPLES];
            let mut frame = [0i16; FRAME_SAMPLES];
            g711::encode(Codec::Pcma, chunk, &mut enc);
            g711::decode(Codec::Pcma, &enc, &mut frame);
            amd.push(&frame);
            while let Some(ev) = amd.poll_event() {
                match ev {
                    AmdEvent::Decided(d) => verdict = verdict.or(Some(d.verdict)),
                    AmdEvent::BeepDetected(_) => beep = true,
                }
            }
        }
        (verdict.expect("AMD decides within 5 s"), beep)
    }

    #[test]
    fn hello_is_a_human_and_a_greeting_with_beep_is_a_machine() {
        assert_eq!(amd_on(&hello()).0, Verdict::Human);
        let mut vm = greeting();
        vm.resize(vm.len() + 1600, 0);
        vm.extend(beep(1000.0, Duration::from_millis(400)));
        let (verdict, beep) = amd_on(&vm);
        assert_eq!(verdict, Verdict::Machine);
        assert!(beep, "the beep after the greeting is detected");
        // A phrase after a hello, as human_speech says it, keeps the human verdict.
        let mut speech = hello();
        speech.resize(speech.len() + 8000 * 2, 0);
        speech.extend(phrase());
        assert_eq!(amd_on(&speech).0, Verdict::Human);
    }

    #[test]
    fn in_band_digits_are_detected_and_speech_gives_none() {
        let mut det = DtmfDetector::new(DetectorConfig::default());
        let mut got = String::new();
        let mut audio = hello();
        audio.extend(dtmf("7#0"));
        audio.extend(phrase());
        audio.resize(audio.len().next_multiple_of(FRAME_SAMPLES), 0);
        for chunk in audio.chunks_exact(FRAME_SAMPLES) {
            if let Some(t) = det.process_frame(chunk) {
                got.push(t.digit.as_char());
            }
        }
        assert_eq!(got, "7#0");
    }

    #[test]
    fn mixing_saturates_and_grows() {
        let mut a = vec![30000i16, 1];
        mix_at(&mut a, 1, &[30000, 5]);
        assert_eq!(a, vec![30000, 30001, 5]);
        mix_at(&mut a, 0, &[10000]);
        assert_eq!(a[0], i16::MAX);
    }
}
