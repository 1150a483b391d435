//! In-band DTMF: a detector for the tones in received audio, and a tone generator.
//!
//! This module owns [`DtmfDetector`] (8 kHz linear audio in, [`ToneDigit`]s out, each key press
//! once) and [`DtmfTone`] (a key press as samples, for tests and for in-band sending).
//!
//! # How the engine drives it
//! After G.711 decoding, each received 20 ms frame goes to the call's detector; a digit comes
//! out at the end of the key press:
//! ```
//! # use media::goertzel::{DtmfDetector, DetectorConfig, DtmfTone};
//! # use media::dtmf::Digit;
//! # use std::time::Duration;
//! let mut det = DtmfDetector::new(DetectorConfig::default());
//! let mut tone = DtmfTone::new(Digit::from_char('7').unwrap(), -6.0, Duration::from_millis(100));
//! let mut digits = String::new();
//! for _ in 0..15 {
//!     let mut frame = [0i16; media::FRAME_SAMPLES];
//!     tone.fill(&mut frame); // the far end's audio; silence once the tone is over
//!     if let Some(d) = det.process_frame(&frame) {
//!         // pressed (det.position() - d.start_sample) / 8 ms ago, for the DigitCollector
//!         digits.push(d.digit.as_char());
//!     }
//! }
//! assert_eq!(digits, "7");
//! ```
//! [`DtmfDetector::process`] takes any length of audio (benches feed it seconds at once).
//!
//! # How it detects
//! - **Analysis.** The signal is cut into 34-sample sub-blocks (4.25 ms), whose samples and
//!   energy are kept. Every sub-block, the last three form a 102-sample (12.75 ms)
//!   Goertzel/DFT window that slides by 4.25 ms at the cost of a non-overlapping one: its DFT
//!   at the 8 DTMF frequencies is the sum of the three sub-blocks' DFTs, each computed once,
//!   from a table (8 multiply-adds per sample for each group of four tones, laid out to
//!   vectorise), when a window first needs it, and turned to the window's phase reference.
//!   102 samples is the classic block length: the bin spacing (78 Hz) puts the neighbouring
//!   low-group tones (73–89 Hz apart) near the first null and the high-group ones (127–156 Hz)
//!   near the second, so each tone leaks at least 15 dB down into its group's other bins, while
//!   a ±1.5 % frequency error costs under 1.5 dB. A 160-sample block separates the low group
//!   worse (the 73 Hz neighbour falls on the first side lobe, −13 dB) and measures time in 20 ms
//!   steps; the short hop is what lets the detector tell a 30 ms burst from a 40 ms key press.
//! - **A window is a hit for a key** when: each tone is at least
//!   [`DetectorConfig::min_level_dbm0`]; the two tones carry at least 80 % of the window's
//!   energy (speech and music spread theirs; white noise at 10 dB SNR leaves 91 %); in each
//!   group the strongest tone is 8 dB above each other tone of that group; the twist is within
//!   [`DetectorConfig::normal_twist_db`] (low group stronger) and
//!   [`DetectorConfig::reverse_twist_db`] (high group stronger); and the harmonics that voiced
//!   speech and instruments carry are absent: the high tone's 2nd harmonic (2418–3266 Hz) and
//!   the low tone's 3rd (2091–2823 Hz) must be 12 dB below their fundamentals. (The low tone's
//!   2nd harmonic, 1394–1882 Hz, lies within one bin width of the high-group tones and would
//!   measure their leakage, so it is not used.) The 80 % comes from a sweep over 20 minutes of
//!   synthetic speech: 75 % let one false digit through, 80 % none; with 80 % detection stays
//!   100 % down to 8 dB SNR and 98 % at 6 dB (82 % would give 84 % at 6 dB).
//! - **Shortcuts that change nothing.** Two tests, each a consequence of the hit conditions,
//!   end most windows early (see `DtmfDetector::classify`). The *energy gate*: a tone's
//!   measured power is at most twice the window's mean power, so a window quieter than half
//!   the minimum level, with 3 dB to spare (9 dB under the weakest key that can hit), is a miss
//!   without any DFT: silence, line noise, speech pauses. The *low group alone*: with the
//!   reverse twist and the 80 % share, the strongest low-group tone must hold 23 % of the
//!   window's power, which most speech does not; the high group is then not computed.
//!   [`DetectorStats`] counts both; the tests check that digits, starts and lengths are those
//!   of the full measurement.
//! - **Key presses.** Consecutive hits for one key form a run. A run ends when nothing (or a
//!   different key, twice) hits for long enough that a pause of half of
//!   [`DetectorConfig::min_gap`] is certain; a shorter dropout followed by the same key is
//!   bridged into the same press. The run's tone length is measured from the sub-block energies
//!   at its edges (each edge sub-block counts by the fraction of the tone's steady energy it
//!   holds, above the surrounding floor): within ±1 ms on a clean line, ±3 ms at 10 dB SNR.
//!   The press is reported **at its end**, once, with its start and length, when the length is
//!   at least 7/8 of [`DetectorConfig::min_duration`] (35 ms by default: a 40 ms press passes
//!   despite measurement error, a 30 ms burst does not). Reporting at the end costs latency
//!   (the press, then 37–42 ms to be sure it is over) but gives the duration, like RFC 4733,
//!   and lets the measured length decide rather than a count of blocks.
//!
//! # Cost
//! Per sample: a copy and one square (in integers). Per 4.25 ms window past the gate: the DFT
//! of its newest sub-block for the low group (and for the high group past the low-group
//! test), three complex rotations and four or eight magnitudes, plus a 102-sample DFT at two
//! harmonics only when a window already looks like a digit. State: 632 bytes per call, no
//! allocation. The `cost_per_second_of_audio` test
//! (`cargo test --release -p media cost_per -- --ignored --nocapture`) measures about 18 µs of
//! one core per second of audio (speech with 7 % keyed tones, release build, this project's
//! 2-core VM while other builds ran; 42 % of windows end at the gate, 43 % after the low
//! group), i.e. about 55,000 calls' audio per core; silence costs a fifth of that.

use std::time::Duration;

use crate::SAMPLE_RATE;
use crate::dtmf::{COL_HZ, Digit, ROW_HZ};

/// Samples per sub-block (4.25 ms).
const SUB: usize = 34;
/// Sub-blocks per analysis window.
const WIN_SUBS: usize = 3;
/// Samples per analysis window (12.75 ms).
const WIN: usize = SUB * WIN_SUBS;
/// Sub-block energies kept (edges of a run look 4 back).
const ENERGY_RING: usize = 8;
/// Power normalisation: a sine of amplitude `a` gives `a² / 2`, its mean power.
const NORM: f32 = 2.0 / (WIN * WIN) as f32;

/// The two tones must carry this share of the window energy.
const TONE_SHARE: f32 = 0.80;
/// How far below the provable bound the energy gate sits (3 dB; see [`DtmfDetector::classify`]).
const GATE_MARGIN: f32 = 2.0;
/// Slack on the low-group share test against rounding (the test is exact up to a few ulp).
const SHARE_SLACK: f32 = 0.99;
/// In each group the strongest tone is this far (8 dB) above every other.
const RELATIVE_PEAK: f32 = 6.309_573;
/// A checked harmonic must be this far (12 dB) below its fundamental.
const HARMONIC: f32 = 0.063_095_73;

/// Amplitude of a 0 dBm0 sine in 16-bit linear audio (3.14 dB below full scale, G.711).
const AMPLITUDE_0DBM0: f64 = 22_820.0;

/// The 8 analysis frequencies: rows then columns.
const FREQS: [f64; 8] = [
    ROW_HZ[0] as f64,
    ROW_HZ[1] as f64,
    ROW_HZ[2] as f64,
    ROW_HZ[3] as f64,
    COL_HZ[0] as f64,
    COL_HZ[1] as f64,
    COL_HZ[2] as f64,
    COL_HZ[3] as f64,
];

const PI: f64 = std::f64::consts::PI;

/// `(sin x, cos x)` for `x ≥ 0`, at compile time (Taylor series after range reduction).
const fn sin_cos(x: f64) -> (f64, f64) {
    let two_pi = 2.0 * PI;
    let turns = (x / two_pi + 0.5) as i64;
    let r = x - turns as f64 * two_pi; // in [-π, π)
    let mut sin = 0.0;
    let mut cos = 0.0;
    let mut term = 1.0; // r^n / n!
    let mut n = 0;
    while n < 40 {
        match n % 4 {
            0 => cos += term,
            1 => sin += term,
            2 => cos -= term,
            _ => sin -= term,
        }
        n += 1;
        term = term * r / n as f64;
    }
    (sin, cos)
}

const fn omega(hz: f64) -> f64 {
    2.0 * PI * hz / SAMPLE_RATE as f64
}

/// DFT kernels: per position in a sub-block, per sub-block of a window, and for the harmonics.
struct Tables {
    /// `cos ωm`, `sin ωm` by group (rows, columns), position `m` in a sub-block, tone in the
    /// group.
    cos: [[[f32; 4]; SUB]; 2],
    sin: [[[f32; 4]; SUB]; 2],
    /// `e^{iωSb}` by group, sub-block `b` of a window, tone: brings a sub-block's DFT to the
    /// window's phase reference (its first sample).
    turn_cos: [[[f32; 4]; WIN_SUBS]; 2],
    turn_sin: [[[f32; 4]; WIN_SUBS]; 2],
    /// `(cos ωn, sin ωn)` over a window for the harmonics checked: the low tones' 3rd
    /// harmonics (rows), then the high tones' 2nd (columns).
    harmonic: [[[f32; 2]; WIN]; 8],
}

const fn build_tables() -> Tables {
    let mut t = Tables {
        cos: [[[0.0; 4]; SUB]; 2],
        sin: [[[0.0; 4]; SUB]; 2],
        turn_cos: [[[0.0; 4]; WIN_SUBS]; 2],
        turn_sin: [[[0.0; 4]; WIN_SUBS]; 2],
        harmonic: [[[0.0; 2]; WIN]; 8],
    };
    let mut k = 0;
    while k < 8 {
        let (g, i) = (k / 4, k % 4);
        let w = omega(FREQS[k]);
        let mut m = 0;
        while m < SUB {
            let (s, c) = sin_cos(w * m as f64);
            t.cos[g][m][i] = c as f32;
            t.sin[g][m][i] = s as f32;
            m += 1;
        }
        let mut b = 0;
        while b < WIN_SUBS {
            let (s, c) = sin_cos(w * (SUB * b) as f64);
            t.turn_cos[g][b][i] = c as f32;
            t.turn_sin[g][b][i] = s as f32;
            b += 1;
        }
        let w = omega(FREQS[k] * if g == 0 { 3.0 } else { 2.0 });
        let mut n = 0;
        while n < WIN {
            let (s, c) = sin_cos(w * n as f64);
            t.harmonic[k][n] = [c as f32, s as f32];
            n += 1;
        }
        k += 1;
    }
    t
}

static TABLES: Tables = build_tables();

/// Settings of a [`DtmfDetector`]; [`Default`] follows ITU-T Q.24.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    /// Weakest tone accepted, per frequency, in dBm0.
    pub min_level_dbm0: f32,
    /// Normal twist: how much stronger the low-group tone may be than the high-group one, dB.
    pub normal_twist_db: f32,
    /// Reverse twist: how much stronger the high-group tone may be than the low-group one, dB.
    pub reverse_twist_db: f32,
    /// Shortest key press accepted (tones are measured; 7/8 of this is the cut-off).
    pub min_duration: Duration,
    /// Pauses at least this long always separate two presses of the same key; pauses shorter
    /// than half of it are dropouts within one press.
    pub min_gap: Duration,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            min_level_dbm0: -36.0,
            normal_twist_db: 8.0,
            reverse_twist_db: 4.0,
            min_duration: Duration::from_millis(40),
            min_gap: Duration::from_millis(40),
        }
    }
}

/// One key press found in the audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToneDigit {
    /// The key.
    pub digit: Digit,
    /// Sample index (since the detector was created) where the tone started: the key was
    /// pressed `(position() − start_sample) / 8` ms before the end of the audio processed so
    /// far (see [`DtmfDetector::position`]).
    pub start_sample: u64,
    /// Measured length of the tone.
    pub duration_ms: u32,
}

/// Counters of a [`DtmfDetector`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetectorStats {
    /// Key presses reported.
    pub digits: u64,
    /// Runs of DTMF-like windows rejected as shorter than the minimum duration.
    pub too_short: u64,
    /// Analysis windows (one per 4.25 ms sub-block).
    pub blocks: u64,
    /// Windows too weak to hold a key: no DFT was computed for them (the energy gate, see
    /// the [module docs](crate::goertzel)).
    pub blocks_skipped: u64,
    /// Windows whose low-group tones alone ruled out a key: the high group was not computed.
    pub high_group_skipped: u64,
}

/// Thresholds in the units the detector computes with.
#[derive(Debug, Clone, Copy)]
struct Thresholds {
    level: f32,
    /// Window energy (sum of squares) below which no tone can reach `level`.
    gate: f32,
    /// A key needs its low-group power to be at least this share of the window energy.
    low_share: f32,
    normal_twist: f32,
    reverse_twist: f32,
    accept_samples: f64,
    bridge_samples: f64,
}

/// Consecutive windows that hit one key.
#[derive(Debug, Clone, Copy)]
struct Run {
    digit: Digit,
    /// First hit window (index of its last sub-block).
    first: u64,
    /// Last hit window.
    last: u64,
    /// Energies of sub-blocks `first-4 ..= first-2`, before the run's body.
    head: [f32; 3],
    /// Energies of sub-blocks `last ..= last+2`, after the run's body.
    tail: [f32; 3],
    tail_len: usize,
    /// Energy of the centre sub-blocks of hit windows: the tone's steady level.
    steady_sum: f64,
    steady_count: u32,
}

impl Run {
    /// Steady sub-block energy and the floor around the tone.
    fn levels(&self) -> (f64, f64) {
        let steady = self.steady_sum / f64::from(self.steady_count.max(1));
        let mut floor = steady * 0.5;
        for &e in self.head.iter().chain(&self.tail[..self.tail_len]) {
            floor = floor.min(f64::from(e));
        }
        (steady, floor)
    }

    /// Fraction of sub-blocks `energies` holding the tone.
    fn edge(&self, energies: &[f32]) -> f64 {
        let (steady, floor) = self.levels();
        if steady <= floor {
            return 0.0;
        }
        energies
            .iter()
            .map(|&e| ((f64::from(e) - floor) / (steady - floor)).clamp(0.0, 1.0))
            .sum()
    }

    /// Sample position where the tone ends.
    fn end(&self) -> f64 {
        (self.last as f64 + self.edge(&self.tail[..self.tail_len])) * SUB as f64
    }

    /// Sample position where the tone starts.
    fn start(&self) -> f64 {
        (self.first as f64 - 1.0 - self.edge(&self.head)) * SUB as f64
    }
}

/// In-band DTMF detector for one call's received audio (8 kHz, linear).
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    th: Thresholds,
    /// Samples of the sub-block being filled so far, and their energy.
    fill: usize,
    acc_energy: u64,
    /// The last three sub-blocks' samples, by `j % 3`.
    raw: [[i16; SUB]; WIN_SUBS],
    /// Their DFTs (by slot, group, tone), each from the sub-block's own first sample. They
    /// are computed from the samples only when a window needs them, a group at a time.
    sub_re: [[[f32; 4]; 2]; WIN_SUBS],
    sub_im: [[[f32; 4]; 2]; WIN_SUBS],
    /// Bit `group × 3 + slot`: that group's DFT in `sub_re`/`sub_im[slot]` is up to date.
    dft_ready: u8,
    /// Sub-block energies by `j % 8`.
    energy: [f32; ENERGY_RING],
    /// Sub-blocks completed.
    subs: u64,
    run: Option<Run>,
    /// A different key hit once while a run was open: (key, window).
    other: Option<(Digit, u64)>,
    stats: DetectorStats,
}

impl DtmfDetector {
    /// A detector that has heard nothing.
    pub fn new(config: DetectorConfig) -> DtmfDetector {
        let db = |x: f32| 10f32.powf(x / 10.0);
        let samples = |d: Duration| d.as_secs_f64() * f64::from(SAMPLE_RATE);
        let zero_dbm0_power = (AMPLITUDE_0DBM0 * AMPLITUDE_0DBM0 / 2.0) as f32;
        // At least one LSB²: silence must never pass the relative tests.
        let level = (zero_dbm0_power * db(config.min_level_dbm0)).max(1.0);
        let reverse_twist = db(config.reverse_twist_db);
        DtmfDetector {
            th: Thresholds {
                level,
                gate: WIN as f32 * level / 2.0 / GATE_MARGIN,
                low_share: TONE_SHARE * SHARE_SLACK / ((1.0 + reverse_twist) * WIN as f32),
                normal_twist: db(config.normal_twist_db),
                reverse_twist,
                accept_samples: samples(config.min_duration) * 7.0 / 8.0,
                bridge_samples: samples(config.min_gap) / 2.0,
            },
            fill: 0,
            acc_energy: 0,
            raw: [[0; SUB]; WIN_SUBS],
            sub_re: [[[0.0; 4]; 2]; WIN_SUBS],
            sub_im: [[[0.0; 4]; 2]; WIN_SUBS],
            dft_ready: 0,
            energy: [0.0; ENERGY_RING],
            subs: 0,
            run: None,
            other: None,
            stats: DetectorStats::default(),
        }
    }

    /// The same detector without the shortcuts of [`Self::classify`] (energy gate, low group
    /// alone): every window is measured in full. The tests compare the two.
    #[cfg(test)]
    fn without_shortcuts(config: DetectorConfig) -> DtmfDetector {
        let mut det = DtmfDetector::new(config);
        det.th.gate = 0.0;
        det.th.low_share = 0.0;
        det
    }

    /// Samples processed since creation.
    pub fn position(&self) -> u64 {
        self.subs * SUB as u64 + self.fill as u64
    }

    /// Counters since creation.
    pub fn stats(&self) -> DetectorStats {
        self.stats
    }

    /// Process one frame (up to 20 ms); returns the key press that ended in it. At most one
    /// press can end per 20 ms, since a press lasts at least 35 ms.
    pub fn process_frame(&mut self, frame: &[i16]) -> Option<ToneDigit> {
        let mut found = None;
        self.process(frame, |d| found = Some(d));
        found
    }

    /// Process any amount of audio, calling `on_digit` for each key press that ends in it.
    pub fn process(&mut self, mut samples: &[i16], mut on_digit: impl FnMut(ToneDigit)) {
        while !samples.is_empty() {
            let from = self.fill;
            let take = (SUB - from).min(samples.len());
            let (chunk, rest) = samples.split_at(take);
            samples = rest;
            let slot = (self.subs % WIN_SUBS as u64) as usize;
            self.raw[slot][from..from + take].copy_from_slice(chunk);
            // From the input, not from `raw`: loads just behind the copy's stores can stall.
            self.acc_energy += energy(chunk);
            self.fill += take;
            if self.fill == SUB {
                self.end_sub_block(&mut on_digit);
            }
        }
    }

    fn end_sub_block(&mut self, on_digit: &mut impl FnMut(ToneDigit)) {
        let j = self.subs;
        let slot = (j % WIN_SUBS as u64) as usize;
        // The slot holds new samples: its DFTs are those of sub-block j − 3.
        self.dft_ready &= !(1 << slot | 1 << (WIN_SUBS + slot));
        // At most 34 × 2³⁰: one rounding to f32.
        self.energy[(j % ENERGY_RING as u64) as usize] = self.acc_energy as f32;
        self.acc_energy = 0;
        self.fill = 0;
        self.subs += 1;
        if j + 1 >= WIN_SUBS as u64 {
            let hit = self.classify(j);
            self.track(j, hit, on_digit);
        }
    }

    /// Powers of group `g`'s four tones (0: rows, 1: columns) in the window ending at
    /// sub-block `j`, computing the sub-blocks' DFTs that are not up to date.
    fn group_powers(&mut self, j: u64, g: usize) -> [f32; 4] {
        let (mut re, mut im) = ([0f32; 4], [0f32; 4]);
        for b in 0..WIN_SUBS {
            // Sub-block j − 2 + b.
            let slot = ((j + 1 + b as u64) % WIN_SUBS as u64) as usize;
            let bit = 1 << (g * WIN_SUBS + slot);
            if self.dft_ready & bit == 0 {
                self.dft_ready |= bit;
                (self.sub_re[slot][g], self.sub_im[slot][g]) =
                    dft(&self.raw[slot], &TABLES.cos[g], &TABLES.sin[g]);
            }
            let (c, s) = (&TABLES.turn_cos[g][b], &TABLES.turn_sin[g][b]);
            let (sr, si) = (&self.sub_re[slot][g], &self.sub_im[slot][g]);
            for i in 0..4 {
                re[i] += sr[i] * c[i] - si[i] * s[i];
                im[i] += sr[i] * s[i] + si[i] * c[i];
            }
        }
        std::array::from_fn(|i| (re[i] * re[i] + im[i] * im[i]) * NORM)
    }

    /// Energy of sub-block `i` (zero before the stream began).
    fn energy_at(&self, i: i64) -> f32 {
        if i < 0 {
            0.0
        } else {
            self.energy[(i as u64 % ENERGY_RING as u64) as usize]
        }
    }

    /// The key the window ending at sub-block `j` holds, if any.
    ///
    /// Cheap tests first, each one a consequence of the hit conditions, so the answer is the
    /// same as if every tone were measured:
    /// - the energy gate: a tone's power is at most `2 E / N` for a window of energy `E`
    ///   (Cauchy–Schwarz), so a window under `N × level / 2` cannot hold a tone at `level`. The
    ///   gate sits [`GATE_MARGIN`] lower still: 9 dB below the weakest key that can be hit (two
    ///   tones at `level`), far beyond any rounding. Silence and line noise stop here, before
    ///   any DFT.
    /// - the low group alone: a hit needs `pc ≤ pr × reverse_twist` and
    ///   `pr + pc ≥ TONE_SHARE × E / N`, hence `pr ≥ TONE_SHARE × E / ((1 + reverse_twist) N)`
    ///   (23 % of the window's power by default, less [`SHARE_SLACK`]); most speech fails it,
    ///   and the high group is then not computed.
    fn classify(&mut self, j: u64) -> Option<Digit> {
        self.stats.blocks += 1;
        let ji = j as i64;
        let window_energy = self.energy_at(ji) + self.energy_at(ji - 1) + self.energy_at(ji - 2);
        if window_energy < self.th.gate {
            self.stats.blocks_skipped += 1;
            return None;
        }
        let th = self.th;
        let rows = self.group_powers(j, 0);
        let r = strongest(&rows);
        let pr = rows[r];
        if pr < th.level || pr < th.low_share * window_energy {
            self.stats.high_group_skipped += 1;
            return None;
        }
        let cols = self.group_powers(j, 1);
        let c = strongest(&cols);
        let pc = cols[c];
        if pc < th.level {
            return None;
        }
        if pr + pc < TONE_SHARE * window_energy / WIN as f32 {
            return None;
        }
        if pr > pc * th.normal_twist || pc > pr * th.reverse_twist {
            return None;
        }
        let dominant = |g: &[f32], best: usize| {
            g.iter()
                .enumerate()
                .all(|(i, &x)| i == best || x * RELATIVE_PEAK <= g[best])
        };
        if !dominant(&rows, r) || !dominant(&cols, c) {
            return None;
        }
        let [hr, hc] = self.harmonic_powers(j, [r, 4 + c]);
        if hr > pr * HARMONIC || hc > pc * HARMONIC {
            return None;
        }
        Some(Digit::at(r, c))
    }

    /// Powers in the window ending at sub-block `j` of two harmonics (indexes into
    /// `TABLES.harmonic`), by direct DFT: independent sums rather than a Goertzel recurrence,
    /// whose every step waits on the one before.
    fn harmonic_powers(&self, j: u64, h: [usize; 2]) -> [f32; 2] {
        let (ta, tb) = (&TABLES.harmonic[h[0]], &TABLES.harmonic[h[1]]);
        // (re, im) of both, for even and odd samples.
        let mut acc = [[0f32; 4]; 2];
        for b in 0..WIN_SUBS {
            let slot = ((j + 1 + b as u64) % WIN_SUBS as u64) as usize;
            let at = b * SUB;
            let pairs = self.raw[slot].as_chunks::<2>().0;
            let ka = ta[at..at + SUB].as_chunks::<2>().0;
            let kb = tb[at..at + SUB].as_chunks::<2>().0;
            for ((xs, ka), kb) in pairs.iter().zip(ka).zip(kb) {
                for l in 0..2 {
                    let x = f32::from(xs[l]);
                    let k = [ka[l][0], ka[l][1], kb[l][0], kb[l][1]];
                    for (s, k) in acc[l].iter_mut().zip(k) {
                        *s += x * k;
                    }
                }
            }
        }
        let s: [f32; 4] = std::array::from_fn(|i| acc[0][i] + acc[1][i]);
        [
            (s[0] * s[0] + s[1] * s[1]) * NORM,
            (s[2] * s[2] + s[3] * s[3]) * NORM,
        ]
    }

    fn start_run(&self, digit: Digit, j: u64) -> Run {
        let ji = j as i64;
        Run {
            digit,
            first: j,
            last: j,
            head: [
                self.energy_at(ji - 4),
                self.energy_at(ji - 3),
                self.energy_at(ji - 2),
            ],
            tail: [self.energy_at(ji), 0.0, 0.0],
            tail_len: 1,
            steady_sum: f64::from(self.energy_at(ji - 1)),
            steady_count: 1,
        }
    }

    /// The run goes on to window `j`.
    fn extend(&self, run: &mut Run, j: u64) {
        let ji = j as i64;
        run.last = j;
        run.steady_sum += f64::from(self.energy_at(ji - 1));
        run.steady_count += 1;
        run.tail = [self.energy_at(ji), 0.0, 0.0];
        run.tail_len = 1;
    }

    fn track(&mut self, j: u64, hit: Option<Digit>, on_digit: &mut impl FnMut(ToneDigit)) {
        let other = self.other.take();
        let Some(mut run) = self.run.take() else {
            self.run = hit.map(|d| self.start_run(d, j));
            return;
        };
        let ji = j as i64;
        match hit {
            Some(d) if d == run.digit => {
                if j != run.last + 1 {
                    // The same key after a dropout or a pause: which one?
                    let head = [
                        self.energy_at(ji - 4),
                        self.energy_at(ji - 3),
                        self.energy_at(ji - 2),
                    ];
                    let start = (j as f64 - 1.0 - run.edge(&head)) * SUB as f64;
                    if start - run.end() >= self.th.bridge_samples {
                        self.finish(run, on_digit);
                        self.run = Some(self.start_run(d, j));
                        return;
                    }
                }
                self.extend(&mut run, j);
                self.run = Some(run);
            }
            Some(d) if other.is_some_and(|(o, at)| o == d && at + 1 == j) => {
                // A different key twice in a row: the previous press is over.
                self.finish(run, on_digit);
                let mut next = self.start_run(d, j - 1);
                self.extend(&mut next, j);
                self.run = Some(next);
            }
            _ => {
                if let Some(d) = hit {
                    self.other = Some((d, j));
                }
                if run.tail_len < run.tail.len() {
                    run.tail[run.tail_len] = self.energy_at(ji);
                    run.tail_len += 1;
                }
                // The earliest a later hit could put the start of a tone.
                let earliest = (j as f64 - 3.0) * SUB as f64;
                if run.tail_len == run.tail.len() && earliest - run.end() >= self.th.bridge_samples
                {
                    self.finish(run, on_digit);
                } else {
                    self.run = Some(run);
                }
            }
        }
    }

    fn finish(&mut self, run: Run, on_digit: &mut impl FnMut(ToneDigit)) {
        let start = run.start().max(0.0);
        let length = run.end() - start;
        if length < self.th.accept_samples {
            self.stats.too_short += 1;
            tracing::trace!(length, "DTMF-like tone too short");
            return;
        }
        self.stats.digits += 1;
        let digit = ToneDigit {
            digit: run.digit,
            start_sample: start.round() as u64,
            duration_ms: (length * 1000.0 / f64::from(SAMPLE_RATE)).round() as u32,
        };
        tracing::debug!(
            start_sample = digit.start_sample,
            duration_ms = digit.duration_ms,
            "in-band key press"
        );
        on_digit(digit);
    }
}

/// Index of the strongest of four tones (the first of equals).
fn strongest(g: &[f32; 4]) -> usize {
    let mut best = 0;
    for i in 1..g.len() {
        if g[i] > g[best] {
            best = i;
        }
    }
    best
}

/// Energy of samples `x`, exact: the sum of squares in integers.
fn energy(x: &[i16]) -> u64 {
    x.iter()
        .map(|&v| {
            let v = i32::from(v);
            // At most 2³⁰.
            u64::from((v * v).unsigned_abs())
        })
        .sum()
}

/// DFT of one sub-block at four tones, with the kernels of their positions (`Σ x e^{+iωm}`:
/// re, im). Four samples at a time go to separate accumulators: with one set the loop would
/// wait on the latency of its additions.
fn dft(x: &[i16; SUB], cos: &[[f32; 4]; SUB], sin: &[[f32; 4]; SUB]) -> ([f32; 4], [f32; 4]) {
    let (mut re, mut im) = ([[0f32; 4]; 4], [[0f32; 4]; 4]);
    let (xq, xr) = x.as_chunks::<4>();
    let (cq, cr) = cos.as_chunks::<4>();
    let (sq, sr) = sin.as_chunks::<4>();
    for ((xs, c), s) in xq.iter().zip(cq).zip(sq) {
        for l in 0..4 {
            let v = f32::from(xs[l]);
            for k in 0..4 {
                re[l][k] += v * c[l][k];
                im[l][k] += v * s[l][k];
            }
        }
    }
    for (l, ((&v, c), s)) in xr.iter().zip(cr).zip(sr).enumerate() {
        let v = f32::from(v);
        for k in 0..4 {
            re[l][k] += v * c[k];
            im[l][k] += v * s[k];
        }
    }
    let sum = |a: [[f32; 4]; 4]| std::array::from_fn(|k| (a[0][k] + a[1][k]) + (a[2][k] + a[3][k]));
    (sum(re), sum(im))
}

/// A DTMF key press as 8 kHz samples: the sum of the key's two sines.
#[derive(Debug, Clone)]
pub struct DtmfTone {
    /// Oscillator states `e^{iφ}` (cos, sin), low then high.
    osc: [[f64; 2]; 2],
    step: [[f64; 2]; 2],
    amplitude: [f64; 2],
    remaining: usize,
}

impl DtmfTone {
    /// `digit` for `duration`, each of its two tones at `level_dbm0` (the usual sending level
    /// is about −6 dBm0 per tone).
    pub fn new(digit: Digit, level_dbm0: f32, duration: Duration) -> DtmfTone {
        let (low, high) = digit.frequencies();
        Self::from_parts([f64::from(low), f64::from(high)], level_dbm0, duration)
    }

    pub(crate) fn from_parts(hz: [f64; 2], level_dbm0: f32, duration: Duration) -> DtmfTone {
        let a = AMPLITUDE_0DBM0 * 10f64.powf(f64::from(level_dbm0) / 20.0);
        let step = hz.map(|f| {
            let w = 2.0 * PI * f / f64::from(SAMPLE_RATE);
            [w.cos(), w.sin()]
        });
        DtmfTone {
            osc: [[1.0, 0.0]; 2],
            step,
            amplitude: [a, a],
            remaining: (duration.as_secs_f64() * f64::from(SAMPLE_RATE)).round() as usize,
        }
    }

    /// Twist: the high-group tone `twist_db` weaker than the low-group one (negative: stronger).
    #[must_use]
    pub fn with_twist(mut self, twist_db: f32) -> DtmfTone {
        self.amplitude[1] = self.amplitude[0] * 10f64.powf(-f64::from(twist_db) / 20.0);
        self
    }

    /// Samples still to produce.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Write the next samples into `out`; after the tone, the rest of `out` is left untouched.
    /// Returns how many were written.
    pub fn fill(&mut self, out: &mut [i16]) -> usize {
        let n = out.len().min(self.remaining);
        for o in &mut out[..n] {
            let mut v = 0.0;
            for t in 0..2 {
                let [c, s] = self.osc[t];
                v += self.amplitude[t] * s;
                let [sc, ss] = self.step[t];
                self.osc[t] = [c * sc - s * ss, c * ss + s * sc];
            }
            *o = v.round().clamp(-32768.0, 32767.0) as i16;
        }
        for osc in &mut self.osc {
            let norm = (osc[0] * osc[0] + osc[1] * osc[1]).sqrt().recip();
            *osc = osc.map(|x| x * norm);
        }
        self.remaining -= n;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711::{self, Codec};

    /// xorshift64* with Box–Muller normals: seeded, reproducible noise.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn uniform(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }
        fn range(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * self.uniform()
        }
        fn normal(&mut self) -> f64 {
            let u = self.uniform().max(1e-300);
            let v = self.uniform();
            (-2.0 * u.ln()).sqrt() * (2.0 * PI * v).cos()
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn digit(c: char) -> Digit {
        Digit::from_char(c).unwrap()
    }

    fn tone(d: Digit, level: f32, len_ms: u64) -> Vec<i16> {
        let mut t = DtmfTone::new(d, level, ms(len_ms));
        let mut v = vec![0i16; t.remaining()];
        t.fill(&mut v);
        v
    }

    fn silence(len_ms: u64) -> Vec<i16> {
        vec![0; len_ms as usize * 8]
    }

    /// Digits found in `audio`, fed in 20 ms frames, with trailing silence to end the last one.
    fn detect(audio: &[i16]) -> Vec<ToneDigit> {
        let mut det = DtmfDetector::new(DetectorConfig::default());
        detect_with(&mut det, audio)
    }

    fn detect_with(det: &mut DtmfDetector, audio: &[i16]) -> Vec<ToneDigit> {
        let mut out = Vec::new();
        let tail = silence(200);
        for frame in audio.chunks(160).chain(tail.chunks(160)) {
            if let Some(d) = det.process_frame(frame) {
                out.push(d);
            }
        }
        out
    }

    fn keys(found: &[ToneDigit]) -> String {
        found.iter().map(|d| d.digit.as_char()).collect()
    }

    fn g711_round_trip(audio: &[i16], codec: Codec) -> Vec<i16> {
        let mut codes = vec![0u8; audio.len()];
        let mut back = vec![0i16; audio.len()];
        g711::encode(codec, audio, &mut codes);
        g711::decode(codec, &codes, &mut back);
        back
    }

    fn power(audio: &[i16]) -> f64 {
        audio.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / audio.len().max(1) as f64
    }

    fn add_noise(audio: &mut [i16], rms: f64, rng: &mut Rng) {
        for x in audio {
            *x = (f64::from(*x) + rms * rng.normal())
                .round()
                .clamp(-32768.0, 32767.0) as i16;
        }
    }

    #[test]
    fn const_trig_is_accurate() {
        for i in 0..2000 {
            let x = f64::from(i) * 0.0137;
            let (s, c) = sin_cos(x);
            assert!(
                (s - x.sin()).abs() < 1e-12 && (c - x.cos()).abs() < 1e-12,
                "{x}"
            );
        }
    }

    #[test]
    fn tone_level_and_twist() {
        let v = tone(digit('5'), -6.0, 1000);
        assert_eq!(v.len(), 8000);
        // Two tones at −6 dBm0: total −3 dBm0.
        let expected = AMPLITUDE_0DBM0.powi(2) / 2.0 * 2.0 * 10f64.powf(-0.6);
        assert!(
            (power(&v) / expected - 1.0).abs() < 0.01,
            "{}",
            power(&v) / expected
        );
        // Across fill calls, the phase is continuous: same samples as one call.
        let mut t = DtmfTone::new(digit('5'), -6.0, ms(1000));
        let mut parts = vec![0i16; 8000];
        for c in parts.chunks_mut(77) {
            t.fill(c);
        }
        assert_eq!(parts, v);
        assert_eq!(t.remaining(), 0);
        assert_eq!(t.fill(&mut [0; 10]), 0);
    }

    #[test]
    fn all_sixteen_keys_at_typical_levels() {
        for d in Digit::ALL {
            for level in [-3.0, -6.0, -12.0, -20.0, -30.0] {
                let mut audio = silence(30);
                audio.extend(tone(d, level, 60));
                let found = detect(&audio);
                assert_eq!(keys(&found), d.as_char().to_string(), "{d} at {level} dBm0");
                let f = found[0];
                assert!((f.duration_ms as i32 - 60).abs() <= 2, "{d}: {f:?}");
                assert!((f.start_sample as i64 - 240).abs() <= 16, "{d}: {f:?}");
            }
        }
    }

    #[test]
    fn below_level_threshold_is_ignored() {
        assert_eq!(keys(&detect(&tone(digit('1'), -45.0, 200))), "");
    }

    #[test]
    fn sequence_fifty_ms_tones_fifty_ms_gaps() {
        let keys_in = "0123456789*#ABCD5599";
        let mut audio = silence(50);
        for c in keys_in.chars() {
            audio.extend(tone(digit(c), -7.0, 50));
            audio.extend(silence(50));
        }
        for codec in [None, Some(Codec::Pcmu), Some(Codec::Pcma)] {
            let a = codec.map_or(audio.clone(), |c| g711_round_trip(&audio, c));
            let found = detect(&a);
            assert_eq!(keys(&found), keys_in, "{codec:?}");
            for (i, f) in found.iter().enumerate() {
                assert!((f.duration_ms as i32 - 50).abs() <= 2, "{f:?}");
                let start = 400 + i as i64 * 800;
                assert!((f.start_sample as i64 - start).abs() <= 16, "{f:?}");
            }
        }
    }

    #[test]
    fn forty_ms_accepted_thirty_ms_rejected() {
        for d in Digit::ALL {
            // Every alignment of the tone against the 4.25 ms sub-blocks.
            for offset in 0..SUB as u64 {
                let mut audio = vec![0i16; 200 + offset as usize];
                audio.extend(tone(d, -8.0, 40));
                assert_eq!(
                    keys(&detect(&audio)),
                    d.as_char().to_string(),
                    "{d} +{offset}"
                );
                let mut audio = vec![0i16; 200 + offset as usize];
                audio.extend(tone(d, -8.0, 30));
                let mut det = DtmfDetector::new(DetectorConfig::default());
                assert_eq!(keys(&detect_with(&mut det, &audio)), "", "{d} +{offset}");
                assert_eq!(det.stats().too_short, 1, "seen, then rejected as short");
            }
        }
    }

    #[test]
    fn pauses_split_and_dropouts_bridge() {
        let five = digit('5');
        // 40 ms pause: two presses.
        let mut audio = tone(five, -6.0, 80);
        audio.extend(silence(40));
        audio.extend(tone(five, -6.0, 80));
        assert_eq!(keys(&detect(&audio)), "55");
        // 10 ms dropout: one press, 170 ms long.
        let mut audio = tone(five, -6.0, 80);
        audio.extend(silence(10));
        audio.extend(tone(five, -6.0, 80));
        let found = detect(&audio);
        assert_eq!(keys(&found), "5");
        assert!(
            (found[0].duration_ms as i32 - 170).abs() <= 3,
            "{:?}",
            found[0]
        );
        // Different keys back to back without a pause: both.
        let mut audio = tone(digit('1'), -6.0, 80);
        audio.extend(tone(digit('9'), -6.0, 80));
        assert_eq!(keys(&detect(&audio)), "19");
        // A long press is one digit.
        let found = detect(&tone(digit('#'), -6.0, 3000));
        assert_eq!(keys(&found), "#");
        assert!((found[0].duration_ms as i32 - 3000).abs() <= 2);
    }

    #[test]
    fn twist_limits() {
        let detect_twist = |d: Digit, twist: f32| {
            let mut t = DtmfTone::new(d, -4.0, ms(80)).with_twist(twist);
            let mut v = vec![0i16; t.remaining()];
            t.fill(&mut v);
            keys(&detect(&v))
        };
        for d in Digit::ALL {
            let k = d.as_char().to_string();
            assert_eq!(detect_twist(d, 6.0), k, "{d} +6 dB");
            assert_eq!(detect_twist(d, -3.0), k, "{d} -3 dB");
            assert_eq!(detect_twist(d, 0.0), k, "{d} 0 dB");
            assert_eq!(detect_twist(d, 12.0), "", "{d} +12 dB");
            assert_eq!(detect_twist(d, -7.0), "", "{d} -7 dB");
        }
    }

    #[test]
    fn frequency_error_within_q24() {
        // ±1.5 % must operate (Q.24); ±3.5 % must not.
        for d in Digit::ALL {
            let (lo, hi) = d.frequencies();
            for (dev, want) in [(1.015, true), (0.985, true), (1.035, false), (0.965, false)] {
                let mut t =
                    DtmfTone::from_parts([f64::from(lo) * dev, f64::from(hi) * dev], -6.0, ms(80));
                let mut v = vec![0i16; t.remaining()];
                t.fill(&mut v);
                let expect = if want {
                    d.as_char().to_string()
                } else {
                    String::new()
                };
                assert_eq!(keys(&detect(&v)), expect, "{d} × {dev}");
            }
        }
    }

    /// Many random key presses at 10 dB SNR in white noise.
    #[test]
    fn white_noise_at_10_db_snr() {
        let mut rng = Rng(0x00C0_FFEE_1234_5678);
        let trials = 1000;
        let mut detected = 0;
        let mut wrong = 0;
        for _ in 0..trials {
            let d = Digit::ALL[(rng.next_u64() % 16) as usize];
            let level = rng.range(-20.0, -4.0) as f32;
            let len = 50 + rng.next_u64() % 60;
            let mut audio = silence(60);
            audio.extend(tone(d, level, len));
            let tone_power = power(&audio[480..]);
            audio.extend(silence(60));
            add_noise(&mut audio, (tone_power / 10.0).sqrt(), &mut rng);
            // A third clean, a third through µ-law, a third through A-law.
            let codec = [None, Some(Codec::Pcmu), Some(Codec::Pcma)][(rng.next_u64() % 3) as usize];
            let audio = codec.map_or(audio.clone(), |c| g711_round_trip(&audio, c));
            let found = detect(&audio);
            if keys(&found) == d.as_char().to_string() {
                detected += 1;
            } else if !found.is_empty() {
                wrong += 1;
            }
        }
        let rate = f64::from(detected) / f64::from(trials);
        println!(
            "10 dB SNR: {detected}/{trials} detected ({:.1} %), {wrong} wrong",
            rate * 100.0
        );
        assert!(rate >= 0.99, "{rate}");
        assert_eq!(wrong, 0);
    }

    /// Noise alone, loud and quiet, through G.711: nothing.
    #[test]
    fn white_noise_alone_is_not_a_digit() {
        let mut rng = Rng(7);
        for rms in [30.0, 300.0, 3000.0, 12000.0] {
            let mut audio = silence(20_000);
            add_noise(&mut audio, rms, &mut rng);
            let a = g711_round_trip(&audio, Codec::Pcmu);
            assert_eq!(keys(&detect(&a)), "", "rms {rms}");
        }
    }

    /// Speech-like audio: a harmonic series on a moving 100–250 Hz fundamental, shaped by
    /// three moving formants, in syllables with pauses and some fricative noise.
    fn speech_like(rng: &mut Rng, seconds: f64) -> Vec<i16> {
        let n = (seconds * 8000.0) as usize;
        let mut out = vec![0i16; n];
        let f0_base = rng.range(100.0, 220.0);
        let mut phase = 0.0f64;
        let mut formants = [500.0, 1500.0, 2500.0];
        let mut target = formants;
        let bandwidths = [80.0, 110.0, 160.0];
        let mut syllable_left = 0usize;
        let mut syllable_len = 1usize;
        let mut voiced = true;
        let mut loudness = 8000.0;
        let mut amps = [0.0f64; 40];
        for (i, o) in out.iter_mut().enumerate() {
            if syllable_left == 0 {
                syllable_len = (rng.range(0.08, 0.35) * 8000.0) as usize;
                syllable_left = syllable_len;
                voiced = rng.uniform() < 0.8;
                loudness = rng.range(2000.0, 14000.0);
                target = [
                    rng.range(250.0, 850.0),
                    rng.range(850.0, 2400.0),
                    rng.range(2300.0, 3300.0),
                ];
            }
            syllable_left -= 1;
            let t = i as f64 / 8000.0;
            let f0 = (f0_base
                * (1.0 + 0.18 * (2.0 * PI * 0.6 * t).sin() + 0.06 * (2.0 * PI * 3.3 * t).sin()))
            .clamp(100.0, 250.0);
            phase += 2.0 * PI * f0 / 8000.0;
            if i % 40 == 0 {
                for (f, tg) in formants.iter_mut().zip(target) {
                    *f += (tg - *f) * 0.08;
                }
                for (h, a) in amps.iter_mut().enumerate() {
                    let fh = (h + 1) as f64 * f0;
                    *a = if fh < 3800.0 {
                        formants
                            .iter()
                            .zip(bandwidths)
                            .map(|(&f, b)| 1.0 / (1.0 + ((fh - f) / b).powi(2)))
                            .sum::<f64>()
                            / ((h + 1) as f64).sqrt()
                    } else {
                        0.0
                    };
                }
            }
            let pos = 1.0 - syllable_left as f64 / syllable_len as f64;
            let env = (PI * pos).sin().powi(2) * loudness;
            let v = if voiced {
                amps.iter()
                    .enumerate()
                    .map(|(h, a)| a * ((h + 1) as f64 * phase).sin())
                    .sum::<f64>()
                    * env
                    * 0.5
            } else {
                rng.normal() * env * 0.3
            };
            *o = v.round().clamp(-32768.0, 32767.0) as i16;
        }
        out
    }

    /// Music-like audio: chords of 3–4 notes (equal temperament, 4 harmonics each) and two-note
    /// intervals with a soft attack and decay.
    fn music_like(rng: &mut Rng, seconds: f64) -> Vec<i16> {
        let n = (seconds * 8000.0) as usize;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let len = (rng.range(0.15, 0.6) * 8000.0) as usize;
            let notes = 2 + (rng.next_u64() % 3) as usize;
            let freqs: Vec<f64> = (0..notes)
                .map(|_| 440.0 * 2f64.powf((rng.next_u64() % 36) as f64 / 12.0 - 1.5))
                .collect();
            let amp = rng.range(1500.0, 6000.0);
            for i in 0..len {
                let t = i as f64 / 8000.0;
                let env = (1.0 - (-t * 60.0).exp()) * (-t * 2.5).exp();
                let v: f64 = freqs
                    .iter()
                    .map(|f| {
                        (1..=4)
                            .map(|h| (2.0 * PI * f * h as f64 * t).sin() / h as f64)
                            .sum::<f64>()
                    })
                    .sum();
                out.push((v * amp * env).round().clamp(-32768.0, 32767.0) as i16);
            }
        }
        out
    }

    #[test]
    fn speech_like_audio_gives_no_digits() {
        let mut rng = Rng(0x5EED_0001);
        let mut false_digits = 0;
        let mut seconds = 0.0;
        for _ in 0..30 {
            let audio = speech_like(&mut rng, 4.0);
            seconds += 4.0;
            for a in [
                audio.clone(),
                g711_round_trip(&audio, Codec::Pcmu),
                g711_round_trip(&audio, Codec::Pcma),
            ] {
                false_digits += detect(&a).len();
            }
        }
        println!("speech-like: {false_digits} false digits in 3 × {seconds} s");
        assert_eq!(false_digits, 0);
    }

    #[test]
    fn music_like_audio_gives_no_digits() {
        let mut rng = Rng(0x5EED_0002);
        let mut false_digits = 0;
        for _ in 0..20 {
            let audio = music_like(&mut rng, 4.0);
            for a in [
                audio.clone(),
                g711_round_trip(&audio, Codec::Pcmu),
                g711_round_trip(&audio, Codec::Pcma),
            ] {
                false_digits += detect(&a).len();
            }
        }
        println!("music-like: {false_digits} false digits in 3 × 80 s");
        assert_eq!(false_digits, 0);
    }

    #[test]
    fn single_tones_and_same_group_pairs_give_no_digits() {
        let mut all = Vec::new();
        for f in FREQS {
            let mut t = DtmfTone::from_parts([f, f], -6.0, ms(300));
            let mut v = vec![0i16; t.remaining()];
            t.fill(&mut v);
            all.extend(v);
            all.extend(silence(50));
        }
        for (a, b) in [
            (0, 1),
            (1, 2),
            (2, 3),
            (0, 3),
            (4, 5),
            (5, 6),
            (6, 7),
            (4, 7),
        ] {
            let mut t = DtmfTone::from_parts([FREQS[a], FREQS[b]], -6.0, ms(300));
            let mut v = vec![0i16; t.remaining()];
            t.fill(&mut v);
            all.extend(v);
            all.extend(silence(50));
        }
        assert_eq!(keys(&detect(&all)), "");
        assert_eq!(keys(&detect(&g711_round_trip(&all, Codec::Pcmu))), "");
    }

    #[test]
    fn digits_over_speech_are_still_found() {
        // A key pressed while the far end talks, 10 dB above the speech.
        let mut rng = Rng(0x5EED_0003);
        let speech = speech_like(&mut rng, 2.0);
        let mut hits = 0;
        for (i, d) in Digit::ALL.iter().enumerate() {
            let mut audio = speech.clone();
            let at = 2000 + i * 500;
            let t = tone(*d, -6.0, 80);
            let sp = power(&speech[at..at + t.len()]);
            let scale = (power(&t) / 10.0 / sp.max(1.0)).sqrt().min(1.0);
            for (k, x) in audio.iter_mut().enumerate() {
                let s = f64::from(*x) * scale;
                let v = if (at..at + t.len()).contains(&k) {
                    s + f64::from(t[k - at])
                } else {
                    s
                };
                *x = v.round().clamp(-32768.0, 32767.0) as i16;
            }
            if keys(&detect(&audio)) == d.as_char().to_string() {
                hits += 1;
            }
        }
        println!("keys over speech 10 dB down: {hits}/16");
        assert_eq!(hits, 16);
    }

    #[test]
    fn frame_size_does_not_matter() {
        let mut audio = silence(37);
        for c in "147*0#".chars() {
            audio.extend(tone(digit(c), -9.0, 70));
            audio.extend(silence(45));
        }
        audio.extend(silence(200));
        let reference = detect(&audio);
        for size in [1, 7, 33, 34, 35, 160, 1000, audio.len()] {
            let mut det = DtmfDetector::new(DetectorConfig::default());
            let mut got = Vec::new();
            for c in audio.chunks(size) {
                det.process(c, |d| got.push(d));
            }
            assert_eq!(got, reference, "chunks of {size}");
            assert_eq!(det.position(), audio.len() as u64);
        }
        assert_eq!(keys(&reference), "147*0#");
    }

    /// Digits found by `det`, fed in 20 ms frames, and its counters.
    fn run_frames(mut det: DtmfDetector, audio: &[i16]) -> (Vec<ToneDigit>, DetectorStats) {
        let found = detect_with(&mut det, audio);
        (found, det.stats())
    }

    /// The detector with its shortcuts and without them: the same digits, starts, lengths and
    /// rejections.
    fn same_with_and_without_shortcuts(config: DetectorConfig, audio: &[i16]) -> DetectorStats {
        let (found, stats) = run_frames(DtmfDetector::new(config), audio);
        let (reference, full) = run_frames(DtmfDetector::without_shortcuts(config), audio);
        assert_eq!(found, reference);
        assert_eq!(
            (stats.digits, stats.too_short),
            (full.digits, full.too_short)
        );
        assert_eq!(full.blocks_skipped, 0);
        assert_eq!(stats.blocks, full.blocks);
        stats
    }

    #[test]
    fn keys_at_the_minimum_level_pass_the_energy_gate() {
        let config = DetectorConfig::default();
        let min = config.min_level_dbm0;
        for d in Digit::ALL {
            for offset in [0, 11, 23] {
                // Half a dB above the minimum: each tone measures within ±0.5 dB of its level.
                let mut audio = silence(100);
                audio.extend(vec![0; offset]);
                audio.extend(tone(d, min + 0.5, 60));
                audio.extend(silence(300));
                let stats = same_with_and_without_shortcuts(config, &audio);
                let found = detect(&audio);
                assert_eq!(keys(&found), d.as_char().to_string(), "{d} +{offset}");
                let f = found[0];
                assert!((f.duration_ms as i32 - 60).abs() <= 2, "{f:?}");
                assert!(
                    (f.start_sample as i64 - 800 - offset as i64).abs() <= 16,
                    "{f:?}"
                );
                // The silence around the key skipped the bank; the key did not.
                assert!(stats.blocks_skipped > 0 && stats.blocks_skipped < stats.blocks);
                // Exactly at the minimum, and just below it: whatever the full measurement
                // finds, the gate finds too.
                for level in [min, min - 0.5, min - 1.0] {
                    let mut audio = silence(100);
                    audio.extend(vec![0; offset]);
                    audio.extend(tone(d, level, 60));
                    audio.extend(silence(300));
                    same_with_and_without_shortcuts(config, &audio);
                }
            }
        }
    }

    #[test]
    fn shortcuts_change_nothing_on_keys_noise_speech_and_music() {
        let config = DetectorConfig::default();
        let mut rng = Rng(0x5EED_0004);
        // Keys at every level from the minimum up, with dropouts, pauses and noise.
        let mut audio = silence(50);
        for (i, c) in "0123456789*#ABCD".chars().enumerate() {
            let level = config.min_level_dbm0 + i as f32 * 2.0;
            audio.extend(tone(digit(c), level, 40 + 5 * i as u64));
            audio.extend(silence(if i % 3 == 0 { 10 } else { 45 }));
            audio.extend(tone(digit(c), level, 50));
            audio.extend(silence(60));
        }
        let mut noisy = audio.clone();
        add_noise(&mut noisy, 60.0, &mut rng);
        // Two presses of each key, the six 10 ms dropouts bridged.
        let stats = same_with_and_without_shortcuts(config, &audio);
        assert_eq!(stats.digits, 32 - 6, "{stats:?}");
        let stats = same_with_and_without_shortcuts(config, &noisy);
        assert_eq!(stats.digits, 32 - 6, "{stats:?}");
        // The high tone 3.5 dB stronger (the limit is 4) in noise that leaves the two tones
        // 80–90 % of the power: the low-group test close to its bound.
        let mut audio = silence(50);
        for (i, c) in "0123456789*#ABCD".chars().cycle().take(64).enumerate() {
            let mut t = DtmfTone::new(digit(c), -10.0, ms(60)).with_twist(-3.5);
            let mut v = vec![0i16; t.remaining()];
            t.fill(&mut v);
            let share = 0.8 + 0.1 * (i % 8) as f64 / 8.0;
            let rms = (power(&v) * (1.0 / share - 1.0)).sqrt();
            add_noise(&mut v, rms, &mut rng);
            audio.extend(v);
            audio.extend(silence(60));
        }
        let stats = same_with_and_without_shortcuts(config, &audio);
        assert!(stats.digits >= 32, "{stats:?}");
        for a in [speech_like(&mut rng, 8.0), music_like(&mut rng, 8.0)] {
            let stats = same_with_and_without_shortcuts(config, &a);
            assert!(
                stats.blocks_skipped > 0 && stats.high_group_skipped > 0,
                "{stats:?}"
            );
            let stats = same_with_and_without_shortcuts(config, &g711_round_trip(&a, Codec::Pcmu));
            assert!(stats.blocks_skipped > 0, "{stats:?}");
        }
    }

    #[test]
    fn silence_and_low_noise_skip_the_bank() {
        let config = DetectorConfig::default();
        // Digital silence, and white noise 13 dB below a tone at the minimum level (RMS 50:
        // −50 dBm0), through G.711.
        let mut rng = Rng(11);
        let mut noise = silence(2000);
        add_noise(&mut noise, 50.0, &mut rng);
        for audio in [silence(2000), g711_round_trip(&noise, Codec::Pcma)] {
            let (found, stats) = run_frames(DtmfDetector::new(config), &audio);
            assert_eq!(found, []);
            assert!(stats.blocks > 400, "{stats:?}");
            assert_eq!(stats.blocks_skipped, stats.blocks, "{stats:?}");
        }
        // The gate follows the configured level: Q.24's −26 dBm0 minimum lets louder noise
        // skip (RMS 200: −38 dBm0), which the default −36 dBm0 must measure.
        let mut noise = silence(2000);
        add_noise(&mut noise, 200.0, &mut rng);
        let q24 = DetectorConfig {
            min_level_dbm0: -26.0,
            ..config
        };
        for (config, skipped) in [(q24, true), (config, false)] {
            let mut det = DtmfDetector::new(config);
            det.process(&noise, |_| ());
            let stats = det.stats();
            let want = if skipped { stats.blocks } else { 0 };
            assert_eq!(stats.blocks_skipped, want, "{config:?}: {stats:?}");
        }
        // … and a key at Q.24's minimum is still found behind that gate.
        let mut audio = silence(100);
        audio.extend(tone(digit('8'), -25.5, 50));
        audio.extend(silence(100));
        assert_eq!(
            keys(&same_with_and_without_shortcuts_found(q24, &audio)),
            "8"
        );
    }

    fn same_with_and_without_shortcuts_found(
        config: DetectorConfig,
        audio: &[i16],
    ) -> Vec<ToneDigit> {
        same_with_and_without_shortcuts(config, audio);
        run_frames(DtmfDetector::new(config), audio).0
    }

    #[test]
    fn per_call_state_is_small() {
        let size = std::mem::size_of::<DtmfDetector>();
        println!("DtmfDetector: {size} bytes");
        assert!(size <= 1024, "{size}");
    }

    /// Cost of the detector per second of audio: speech-like audio with digits in it.
    /// `cargo test --release -p media cost_per -- --ignored --nocapture`
    #[test]
    #[ignore = "timing; run in release"]
    fn cost_per_second_of_audio() {
        let mut rng = Rng(0xC057);
        let mut audio = speech_like(&mut rng, 10.0);
        for (i, d) in Digit::ALL.iter().enumerate() {
            audio.extend(tone(*d, -6.0, 80));
            audio.extend(silence(if i % 2 == 0 { 100 } else { 600 }));
        }
        let seconds = audio.len() as f64 / 8000.0;
        let mut n = 0;
        let rounds: u32 = 10;
        // Best of several repetitions: the machine may be busy with other work.
        let mut best = f64::MAX;
        let mut stats = DetectorStats::default();
        for _ in 0..7 {
            let mut det = DtmfDetector::new(DetectorConfig::default());
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                for frame in audio.chunks(160) {
                    n += usize::from(det.process_frame(std::hint::black_box(frame)).is_some());
                }
            }
            best = best.min(start.elapsed().as_secs_f64() / (seconds * f64::from(rounds)));
            stats = det.stats();
        }
        let per_second = best;
        println!(
            "DTMF detector: {:.1} µs per second of audio ({n} digits); {} calls per core; \
             windows: {:.0} % skipped by the energy gate, {:.0} % after the low group",
            per_second * 1e6,
            (1.0 / per_second) as u64,
            100.0 * stats.blocks_skipped as f64 / stats.blocks as f64,
            100.0 * stats.high_group_skipped as f64 / stats.blocks as f64,
        );
        assert_eq!(n, 16 * 7 * rounds as usize);
    }
}
