//! Cost per second of 8 kHz audio of the VAD, the AMD (while analysing) and the beep detector.
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use media::FRAME_SAMPLES;
use media::amd::{Amd, AmdConfig, BeepConfig, BeepDetector};
use media::vad::{Vad, VadConfig};

/// One second of speech-like audio: harmonics of a gliding 100–250 Hz fundamental in 300 ms
/// bursts with 200 ms gaps, over −60 dBFS noise, as 50 frames.
fn second_of_audio() -> Vec<[i16; FRAME_SAMPLES]> {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut phase = [0.0f64; 30];
    let mut out = Vec::with_capacity(8000);
    for n in 0..8000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let noise = ((seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 60.0;
        let t = n as f64 / 8000.0;
        let f0 = 175.0 + 75.0 * (2.0 * std::f64::consts::PI * 1.3 * t).sin();
        let on = (n % 4000) < 2400;
        let mut x = 0.0;
        for (k, ph) in phase.iter_mut().enumerate() {
            let h = (k + 1) as f64 * f0;
            *ph += 2.0 * std::f64::consts::PI * h / 8000.0;
            if h < 3400.0 {
                x += ph.sin() / (k + 1) as f64;
            }
        }
        out.push((if on { 3000.0 * x } else { 0.0 } + noise) as i16);
    }
    out.as_chunks::<FRAME_SAMPLES>().0.to_vec()
}

fn detectors(c: &mut Criterion) {
    let audio = second_of_audio();
    let mut g = c.benchmark_group("per_second_of_audio");
    g.bench_function("vad", |b| {
        let mut vad = Vad::new(VadConfig::barge_in());
        b.iter(|| {
            for f in &audio {
                black_box(vad.push(black_box(f)));
            }
        })
    });
    g.bench_function("amd_analysing", |b| {
        // A fresh detector each second so that it never reaches a verdict and stops.
        b.iter(|| {
            let mut amd = Amd::new(AmdConfig {
                initial_silence: std::time::Duration::from_secs(60),
                greeting: std::time::Duration::from_secs(60),
                max_words: 1000,
                ..AmdConfig::default()
            });
            for f in &audio {
                amd.push(black_box(f));
                black_box(amd.poll_event());
            }
        })
    });
    g.bench_function("beep_detector", |b| {
        let mut det = BeepDetector::new(BeepConfig::default());
        b.iter(|| {
            for f in &audio {
                black_box(det.push(black_box(f)));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, detectors);
criterion_main!(benches);
