//! Synthetic audio: seeded noise, tones, and a speech-like "voice", for tests, benches and the
//! callee simulator (whose built-in personas need no WAV file).
//!
//! "Speech" here ([`word`]) is a harmonic signal shaped like voiced speech: a fundamental
//! gliding within 100–250 Hz, two formant-like resonances, a 1/k spectral tilt, a syllabic
//! envelope, attack and release ramps and a little breath noise. No recogniser understands it,
//! but the voice-activity and answering-machine detectors treat it as a talker, which is what
//! the detectors' tests and the simulated callees need. Everything is 8 kHz mono, deterministic
//! ([`Rng`] is seeded; there is no global generator). Signals are `f64` sample values on the
//! 16-bit scale until [`pcm`] or [`to_i16`] rounds them.

use std::f64::consts::PI;

use crate::{FRAME_SAMPLES, SAMPLE_RATE, g711};

const FS: f64 = SAMPLE_RATE as f64;

/// xorshift64* — seeded, so every test sees the same "noise".
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Approximately standard normal (Irwin–Hall with 12 terms).
    pub fn gauss(&mut self) -> f64 {
        (0..12).map(|_| self.unit()).sum::<f64>() - 6.0
    }

    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// RMS on the 16-bit scale for a level in dBFS.
pub fn rms_for(dbfs: f64) -> f64 {
    32768.0 * 10f64.powf(dbfs / 20.0)
}

/// Samples in `ms` milliseconds at 8 kHz.
pub fn samples(ms: u32) -> usize {
    (ms as usize) * (SAMPLE_RATE as usize) / 1000
}

/// `sig` scaled to an RMS of `dbfs`.
pub fn scale_to(mut sig: Vec<f64>, dbfs: f64) -> Vec<f64> {
    let rms = (sig.iter().map(|x| x * x).sum::<f64>() / sig.len().max(1) as f64).sqrt();
    if rms > 0.0 {
        let k = rms_for(dbfs) / rms;
        sig.iter_mut().for_each(|x| *x *= k);
    }
    sig
}

pub fn silence(ms: u32) -> Vec<f64> {
    vec![0.0; samples(ms)]
}

/// White Gaussian noise at `dbfs` RMS.
pub fn noise(ms: u32, dbfs: f64, rng: &mut Rng) -> Vec<f64> {
    let k = rms_for(dbfs);
    (0..samples(ms)).map(|_| k * rng.gauss()).collect()
}

/// Low-passed ("brown-ish", like car or room rumble) noise at `dbfs` RMS.
pub fn rumble(ms: u32, dbfs: f64, rng: &mut Rng) -> Vec<f64> {
    let mut y = 0.0;
    let sig = (0..samples(ms))
        .map(|_| {
            y = 0.9 * y + rng.gauss();
            y
        })
        .collect();
    scale_to(sig, dbfs)
}

/// A sine at `hz` with RMS `dbfs`, 5 ms raised-cosine ramps.
pub fn tone(ms: u32, hz: f64, dbfs: f64) -> Vec<f64> {
    dual(ms, hz, None, dbfs)
}

/// One or two equal-level sines (each at `dbfs`), 5 ms ramps.
pub fn dual(ms: u32, f1: f64, f2: Option<f64>, dbfs: f64) -> Vec<f64> {
    let n = samples(ms);
    let amp = rms_for(dbfs) * 2f64.sqrt();
    let ramp = samples(5);
    (0..n)
        .map(|i| {
            let t = i as f64 / FS;
            let mut x = (2.0 * PI * f1 * t + 0.3).sin();
            if let Some(f2) = f2 {
                x += (2.0 * PI * f2 * t + 1.1).sin();
            }
            let edge = i.min(n - 1 - i);
            let g = if edge < ramp {
                0.5 - 0.5 * (PI * edge as f64 / ramp as f64).cos()
            } else {
                1.0
            };
            amp * g * x
        })
        .collect()
}

/// A speech-like word: harmonics of a fundamental gliding within 100–250 Hz, shaped by two
/// formant-like resonances and a 1/k tilt, with a syllabic amplitude envelope, attack and
/// release ramps and a little breath noise; RMS `dbfs` over the word.
pub fn word(ms: u32, dbfs: f64, rng: &mut Rng) -> Vec<f64> {
    let n = samples(ms);
    let f_start = rng.range(110.0, 220.0);
    let f_end = rng.range(100.0, 250.0);
    let f1 = rng.range(450.0, 800.0);
    let f2 = rng.range(1000.0, 1900.0);
    let syllable_hz = rng.range(3.5, 5.5);
    let mut phases = [0.0f64; 40];
    let attack = samples(25) as f64;
    let release = samples(40) as f64;
    let mut sig = Vec::with_capacity(n);
    for i in 0..n {
        let t = i as f64 / n as f64;
        let f0 = (f_start + (f_end - f_start) * t + 30.0 * (PI * t).sin()).clamp(100.0, 250.0);
        let mut x = 0.0;
        for (k, ph) in phases.iter_mut().enumerate() {
            let h = (k + 1) as f64 * f0;
            if h >= 3400.0 {
                break;
            }
            *ph += 2.0 * PI * h / FS;
            let formants = 1.0
                + 4.0 * (-((h - f1) / 150.0).powi(2)).exp()
                + 2.5 * (-((h - f2) / 200.0).powi(2)).exp();
            x += formants / (k + 1) as f64 * ph.sin();
        }
        x += 0.05 * rng.gauss();
        let i_f = i as f64;
        let ramp = (i_f / attack)
            .min(1.0)
            .min((n as f64 - i_f) / release)
            .max(0.0);
        let syllables = 0.7 + 0.3 * (2.0 * PI * syllable_hz * i_f / FS).cos();
        sig.push(x * ramp * syllables);
    }
    scale_to(sig, dbfs)
}

/// Words of the given lengths separated by the given gaps: `[(word_ms, gap_after_ms)]`.
pub fn utterance(parts: &[(u32, u32)], dbfs: f64, rng: &mut Rng) -> Vec<f64> {
    let mut sig = Vec::new();
    for &(w, gap) in parts {
        sig.extend(word(w, dbfs, rng));
        sig.extend(silence(gap));
    }
    sig
}

/// Add `b` onto `a` (extending `a` if needed).
pub fn mix(mut a: Vec<f64>, b: &[f64]) -> Vec<f64> {
    if a.len() < b.len() {
        a.resize(b.len(), 0.0);
    }
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
    a
}

/// Round and clip to 16 bits.
pub fn to_i16(sig: &[f64]) -> Vec<i16> {
    sig.iter()
        .map(|x| x.round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// Round and clip to 16 bits, padded with zeros to whole frames.
pub fn pcm(sig: &[f64]) -> Vec<i16> {
    let mut out = to_i16(sig);
    out.resize(out.len().div_ceil(FRAME_SAMPLES) * FRAME_SAMPLES, 0);
    out
}

/// `pcm(sig)` after a round trip through the codec, as the engine would hand it over.
pub fn via_g711(sig: &[f64], codec: g711::Codec) -> Vec<i16> {
    let lin = pcm(sig);
    let mut codes = vec![0u8; lin.len()];
    let mut back = vec![0i16; lin.len()];
    g711::encode(codec, &lin, &mut codes);
    g711::decode(codec, &codes, &mut back);
    back
}

/// The whole frames of `pcm`.
pub fn frames(pcm: &[i16]) -> &[[i16; FRAME_SAMPLES]] {
    pcm.as_chunks::<FRAME_SAMPLES>().0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_lengths() {
        let mut rng = Rng::new(1);
        let w = word(500, -20.0, &mut rng);
        assert_eq!(w.len(), 4000);
        let rms = (w.iter().map(|x| x * x).sum::<f64>() / w.len() as f64).sqrt();
        assert!((rms - rms_for(-20.0)).abs() < 1.0, "{rms}");
        assert_eq!(pcm(&w[..100]).len(), FRAME_SAMPLES);
        assert_eq!(to_i16(&[40000.0, -40000.0, 1.4]), vec![32767, -32768, 1]);
        // Seeded: the same seed gives the same signal.
        assert_eq!(
            noise(20, -30.0, &mut Rng::new(7)),
            noise(20, -30.0, &mut Rng::new(7))
        );
    }
}
