//! Micro-benchmarks of the media crate, one group per hot path:
//!
//! - `g711`: µ-law / A-law encode and decode of one second of audio (samples/s);
//! - `rtp`: packetising one frame ([`RtpSender::write_frame`]) and receiving one packet into
//!   the playout ring then playing one frame ([`RtpReceiver::push`] + [`RtpReceiver::pop_frame`]);
//! - `rfc4733`: the telephone-event receiver, per packet;
//! - `goertzel_per_second`: the in-band DTMF detector over one second of speech-like audio, of
//!   audio with keyed digits and of a quiet line (−60 dBFS noise);
//! - `per_second_of_audio`: VAD, AMD (while analysing) and the beep detector;
//! - `media_clock`: [`CallMedia::receive`] + [`CallMedia::tick`] with everything on, i.e. the
//!   media clock's cost per call per tick, while AMD analyses and after its verdict.
//!
//! Run: `cargo bench -p benches --bench media`.
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use media::amd::{Amd, AmdConfig, BeepConfig, BeepDetector};
use media::dtmf::{Digit, DtmfReceiver, DtmfSender, SendTick};
use media::g711::{self, Codec};
use media::goertzel::{DetectorConfig, DtmfDetector, DtmfTone};
use media::session::{CallMedia, MediaParams};
use media::stream::{ReceiverConfig, SenderConfig};
use media::vad::{Vad, VadConfig};
use media::{FRAME_SAMPLES, Playout, Prompt, RtpReceiver, RtpSender};

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
    // One iteration: one second of audio (50 frames of 20 ms) through the detector.
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

/// [`second_of_audio`] as one slice of 8000 samples.
fn second_of_pcm() -> Vec<i16> {
    second_of_audio().concat()
}

/// One second of −60 dBFS noise (uniform in ±30): a quiet line.
fn second_of_low_noise() -> Vec<i16> {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    (0..8000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (((seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 60.0) as i16
        })
        .collect()
}

/// One second with four key presses ("1", "5", "9", "#"), 100 ms tones at −10 dBm0 per tone
/// with 100 ms pauses, over [`second_of_low_noise`]; the last 200 ms are noise only.
fn second_with_digits() -> Vec<i16> {
    let mut out = second_of_low_noise();
    for (k, key) in "159#".chars().enumerate() {
        let digit = Digit::from_char(key).expect("a key");
        let mut tone = DtmfTone::new(digit, -10.0, Duration::from_millis(100));
        let mut buf = [0i16; 800];
        tone.fill(&mut buf);
        for (o, t) in out[k * 1600..k * 1600 + 800].iter_mut().zip(buf) {
            *o = o.saturating_add(t);
        }
    }
    out
}

fn g711(c: &mut Criterion) {
    let pcm = second_of_pcm();
    let mut g = c.benchmark_group("g711");
    // One iteration: one second of audio (8000 samples); throughput in samples/s.
    g.throughput(Throughput::Elements(pcm.len() as u64));
    for (name, codec) in [("ulaw", Codec::Pcmu), ("alaw", Codec::Pcma)] {
        let mut codes = vec![0u8; pcm.len()];
        g711::encode(codec, &pcm, &mut codes);
        g.bench_function(format!("{name}_encode_1s"), |b| {
            let mut out = vec![0u8; pcm.len()];
            b.iter(|| g711::encode(codec, black_box(&pcm), black_box(&mut out)))
        });
        g.bench_function(format!("{name}_decode_1s"), |b| {
            let mut out = vec![0i16; codes.len()];
            b.iter(|| g711::decode(codec, black_box(&codes), black_box(&mut out)))
        });
    }
    g.finish();
}

/// Overwrites the sequence number and timestamp of an RTP packet in place (3 stores).
fn restamp(packet: &mut [u8], seq: u16, ts: u32) {
    packet[2..4].copy_from_slice(&seq.to_be_bytes());
    packet[4..8].copy_from_slice(&ts.to_be_bytes());
}

fn rtp(c: &mut Criterion) {
    let mut frame = [0u8; FRAME_SAMPLES];
    g711::encode(Codec::Pcma, &second_of_pcm()[..FRAME_SAMPLES], &mut frame);
    let mut g = c.benchmark_group("rtp");
    g.throughput(Throughput::Elements(1));
    // One iteration: one 20 ms G.711 frame written as a 172-byte RTP packet into a buffer.
    g.bench_function("packetise_write_frame", |b| {
        let mut tx = RtpSender::new(SenderConfig::new(0x1234_5678, Codec::Pcma, 1, 1000));
        let mut out = [0u8; 1500];
        b.iter(|| black_box(tx.write_frame(black_box(&frame), &mut out).unwrap()))
    });
    // One iteration: one in-order packet 20 ms after the previous one goes through validation,
    // statistics and the playout ring (`push`), then one frame is played out (`pop_frame`), as
    // on one media-clock tick. Includes restamping the packet's sequence number and timestamp.
    g.bench_function("receive_push_pop_frame", |b| {
        let mut tx = RtpSender::new(SenderConfig::new(0x1234_5678, Codec::Pcma, 1, 1000));
        let mut packet = [0u8; 1500];
        let n = tx.write_frame(&frame, &mut packet).unwrap();
        let packet = &mut packet[..n];
        let mut rx = RtpReceiver::new(ReceiverConfig::new(Codec::Pcma, Some(101)));
        let (mut seq, mut ts) = (1u16, 1000u32);
        let mut now = Instant::now();
        let mut frames = 0u64;
        b.iter(|| {
            restamp(packet, seq, ts);
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(FRAME_SAMPLES as u32);
            now += Duration::from_millis(20);
            black_box(rx.push(now, black_box(packet)).is_ok());
            if let Playout::Frame(f) = rx.pop_frame() {
                frames += u64::from(black_box(f[0]) != 0);
            }
        });
        let st = rx.stats();
        assert_eq!((st.lost, st.late, st.resyncs), (0, 0, 0), "{st:?}");
        black_box(frames);
    });
    g.finish();
}

fn rfc4733(c: &mut Criterion) {
    // One key press as DtmfSender sends it (100 ms: 4 updates, 3 redundant end packets).
    let digit = Digit::from_char('7').expect("a key");
    let press: Vec<(bool, [u8; 4])> = DtmfSender::new(
        digit,
        DtmfSender::DEFAULT_DURATION,
        DtmfSender::DEFAULT_VOLUME,
    )
    .filter_map(|t| match t {
        SendTick::Packet(p) => Some((p.marker, p.payload)),
        SendTick::Pause => None,
    })
    .collect();
    assert_eq!(press.len(), 7);
    let mut g = c.benchmark_group("rfc4733");
    g.throughput(Throughput::Elements(1));
    // One iteration: one telephone-event packet into `DtmfReceiver::handle_packet`, then
    // `poll_digit`. The packets cycle through whole key presses (start, updates, three ends),
    // each press at a timestamp 1600 units (200 ms) after the previous one.
    g.bench_function("receive_packet", |b| {
        let mut rx = DtmfReceiver::new(Default::default());
        let (mut k, mut ts, mut seq, mut digits) = (0usize, 0u32, 0u16, 0u64);
        b.iter(|| {
            let (marker, payload) = &press[k];
            black_box(
                rx.handle_packet(ts, *marker, seq, black_box(payload))
                    .is_ok(),
            );
            if let Some(d) = rx.poll_digit() {
                digits += u64::from(d.digit == digit);
            }
            seq = seq.wrapping_add(1);
            k += 1;
            if k == press.len() {
                k = 0;
                ts = ts.wrapping_add(1600);
            }
        });
        let st = rx.stats();
        assert_eq!(st.lost_ends, 0, "{st:?}");
        black_box(digits);
    });
    g.finish();
}

fn goertzel(c: &mut Criterion) {
    let speech = second_of_pcm();
    let keyed = second_with_digits();
    let quiet = second_of_low_noise();
    // The inputs are what they claim to be: no digit in speech, four in the keyed second.
    let count = |pcm: &[i16]| {
        let mut det = DtmfDetector::new(DetectorConfig::default());
        let mut n = 0;
        for _ in 0..5 {
            det.process(pcm, |_| n += 1);
        }
        n
    };
    assert_eq!(count(&speech), 0, "speech-like audio gives no digit");
    assert_eq!(count(&keyed), 20, "four digits per second");
    assert_eq!(count(&quiet), 0, "none in noise");
    let mut g = c.benchmark_group("goertzel_per_second");
    // One iteration: one second of audio (8000 samples) through `DtmfDetector::process`, the
    // detector's state carried over from the previous second; throughput in samples/s.
    g.throughput(Throughput::Elements(8000));
    for (name, pcm) in [
        ("speech", &speech),
        ("digits", &keyed),
        ("silence_low_noise", &quiet),
    ] {
        g.bench_function(name, |b| {
            let mut det = DtmfDetector::new(DetectorConfig::default());
            let mut digits = 0u64;
            b.iter(|| det.process(black_box(pcm), |d| digits += u64::from(d.duration_ms)));
            black_box(digits);
        });
    }
    g.finish();
}

/// CallMedia's cost per call per 20 ms tick, everything on.
fn media_clock(c: &mut Criterion) {
    let speech = second_of_pcm();
    // The prompt we play: 10 s of the speech-like signal (restarted when it ends).
    let prompt = Arc::new(Prompt::from_pcm("bench", &speech.repeat(10)).expect("prompt"));
    // The peer's audio: one second of speech-like audio as 50 A-law RTP packets.
    let peer: SocketAddr = "198.51.100.7:31544".parse().unwrap();
    let mut tx = RtpSender::new(SenderConfig::new(0xCAFE, Codec::Pcma, 0, 0));
    let packets: Vec<Vec<u8>> = speech
        .as_chunks::<FRAME_SAMPLES>()
        .0
        .iter()
        .map(|pcm| {
            let mut codes = [0u8; FRAME_SAMPLES];
            g711::encode(Codec::Pcma, pcm, &mut codes);
            let mut out = [0u8; 200];
            let n = tx.write_frame(&codes, &mut out).unwrap();
            out[..n].to_vec()
        })
        .collect();
    let mut g = c.benchmark_group("media_clock");
    g.throughput(Throughput::Elements(1));
    // One iteration = one call on one media-clock tick: the peer's next packet arrives
    // (`CallMedia::receive`), then `CallMedia::tick` plays one received frame into the in-band
    // DTMF detector, the VAD and the AMD (configured never to reach a verdict, so it analyses
    // on every tick) and writes the next prompt frame as an RTP packet, then the event queue
    // is drained. Throughput is calls × ticks per second.
    //
    // 4,000 calls × 50 ticks/s = 200,000 iterations per second, so the media clock costs
    // 200,000 × t per second of one core: each microsecond of t is 20 % of one core. Measured
    // on this 2-vCPU EPYC (release): t ≈ 1.6 µs with AMD analysing → 4,000 calls ≈ 32 % of one
    // core (16 % of the machine); t ≈ 0.95 µs after the verdict → ≈ 19 % of one core. That is
    // media processing only; sockets (one send and one receive per call per tick) come on top.

    // Limits that are never reached (u32::MAX frames), however many iterations criterion runs.
    let analysing = AmdConfig {
        initial_silence: Duration::MAX,
        greeting: Duration::MAX,
        total_analysis_time: Duration::MAX,
        max_word_length: Duration::MAX,
        max_words: u32::MAX,
        ..AmdConfig::default()
    };
    // The same without AMD: a call after its verdict (AMD stops within 5 s of answer, so this
    // is the cost for the rest of the call).
    for (name, amd) in [
        ("call_media_tick_all_on", Some(analysing)),
        ("call_media_tick_after_amd", None),
    ] {
        bench_call_media(&mut g, name, amd, &prompt, &packets, peer);
    }
    g.finish();
}

fn bench_call_media(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    amd: Option<AmdConfig>,
    prompt: &Arc<Prompt>,
    packets: &[Vec<u8>],
    peer: SocketAddr,
) {
    g.bench_function(name, |b| {
        let t0 = Instant::now();
        let mut params = MediaParams::new(Codec::Pcma, Some(101), peer, 0x5EED_0001_2345_6789);
        params.inband_dtmf = true;
        let analysing = amd.is_some();
        params.amd = amd.clone();
        let mut call = CallMedia::new(t0, params);
        call.play(prompt.clone());
        let mut out = [0u8; 1500];
        let mut incoming: Vec<Vec<u8>> = packets.to_vec();
        let (mut k, mut seq, mut ts, mut tick) = (0usize, 0u16, 0u32, 0u64);
        let mut sent = 0u64;
        b.iter(|| {
            let now = t0 + Duration::from_millis(20 * tick);
            tick += 1;
            let packet = &mut incoming[k];
            restamp(packet, seq, ts);
            k = (k + 1) % 50;
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(FRAME_SAMPLES as u32);
            call.receive(now, peer, black_box(packet));
            if let Some(n) = call.tick(now, &mut out) {
                sent += n as u64;
            }
            while let Some(ev) = call.poll_event() {
                black_box(ev);
            }
            if !call.is_playing() {
                call.play(prompt.clone());
            }
        });
        let st = call.stats();
        assert!(st.lost == 0 && st.late == 0, "{st:?}");
        if analysing {
            assert!(call.amd_decision().is_none(), "AMD kept analysing");
        }
        black_box(sent);
    });
}

criterion_group!(
    benches,
    g711,
    rtp,
    rfc4733,
    goertzel,
    detectors,
    media_clock
);
criterion_main!(benches);
