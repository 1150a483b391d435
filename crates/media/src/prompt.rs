//! Prompts: audio files prepared once and played by every call.
//!
//! A [`Prompt`] is a WAV file decoded, mixed to mono, resampled to 8 kHz ([`crate::resample`]),
//! and encoded to both µ-law and A-law at load time, then shared read-only through
//! `Arc<Prompt>`. Per call, a [`Playback`] is an `Arc` and a frame cursor (16 bytes); each
//! media-clock tick it hands out a slice of the pre-encoded payload, so playing costs no
//! allocation, no encoding and no copying per frame.
//!
//! # Cadence
//! The engine's media clock decides *when* a frame goes out; a playback only decides *which*:
//! each `next_*` call returns the next 20 ms frame, so a prompt of `n` samples (at 8 kHz, after
//! resampling) gives exactly `⌈n / 160⌉` frames, the last one padded with silence. Frame `k`
//! carries samples `160·k ..` of the prompt, so its RTP timestamp is `start + 160·k` and a
//! 10-minute prompt ends exactly 30,000 frames after it started.
//!
//! # Loading
//! [`Prompt::load`] reads any PCM WAV that `hound` reads — 8/16/24/32-bit integer or 32-bit
//! float, any rate from 1 to 768 kHz, any number of channels (averaged to mono) — plus
//! µ-law/A-law WAVs (format tags 7 and 6, common for telephony prompts; `hound` does not read
//! them, so a small RIFF walker here does). Errors name the file and what is wrong with it.
//! A prompt is capped at [`MAX_DURATION`], checked from the header before any audio is decoded.
//! Loading is setup-time work (file IO; a 10-minute 44.1 kHz stereo WAV takes about 1.3 s in a
//! release build, mostly WAV decoding) and belongs outside the media path; [`PromptCache`]
//! makes sure each file is loaded once.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::g711::{self, Codec};
use crate::resample::Resampler;
use crate::{FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE};

/// Longest prompt accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 60);
/// [`MAX_DURATION`] in frames.
const MAX_FRAMES: usize = (MAX_DURATION.as_millis() / FRAME_MS as u128) as usize;
/// Input samples (per channel) handed to the resampler at a time while loading.
const CHUNK: usize = 8192;

/// How the source file stored its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SampleEncoding {
    /// Linear PCM, signed integers (unsigned for 8-bit, as WAV has it).
    Int,
    /// IEEE 754 single precision.
    Float,
    /// G.711 µ-law (WAV format tag 7).
    MuLaw,
    /// G.711 A-law (WAV format tag 6).
    ALaw,
}

/// The format of the file a prompt was loaded from (for logs and checks; the prompt itself is
/// always 8 kHz mono).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceFormat {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channels in the file (mixed to mono on load).
    pub channels: u16,
    /// Bits per sample.
    pub bits_per_sample: u16,
    /// Sample encoding.
    pub encoding: SampleEncoding,
}

impl SourceFormat {
    const PCM_8K: SourceFormat = SourceFormat {
        sample_rate: SAMPLE_RATE,
        channels: 1,
        bits_per_sample: 16,
        encoding: SampleEncoding::Int,
    };
}

/// Why a prompt could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// The file could not be opened or read.
    #[error("prompt {}: cannot read the file: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The file is not a WAV file, or its header is malformed.
    #[error("prompt {}: not a valid WAV file ({reason})", path.display())]
    InvalidWav {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A WAV file in an encoding or layout that is not supported.
    #[error(
        "prompt {}: unsupported WAV format: {detail}; convert it to PCM, e.g. `sox IN -r 8000 -c 1 -b 16 OUT.wav`",
        path.display()
    )]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Which format.
        detail: String,
    },
    /// The file holds no audio.
    #[error("prompt {}: the file holds no audio", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The audio is longer than allowed.
    #[error("prompt {}: {:.1} s long, more than the limit of {} s", path.display(), duration.as_secs_f64(), max.as_secs())]
    TooLong {
        /// The file.
        path: PathBuf,
        /// Its duration.
        duration: Duration,
        /// The limit.
        max: Duration,
    },
    /// The header was fine but the audio data could not be read completely.
    #[error("prompt {}: audio data is truncated or corrupt ({detail})", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

impl PromptError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            PromptError::Io { path, .. }
            | PromptError::InvalidWav { path, .. }
            | PromptError::Unsupported { path, .. }
            | PromptError::Empty { path }
            | PromptError::TooLong { path, .. }
            | PromptError::Corrupt { path, .. } => path,
        }
    }
}

/// One prompt, ready to play: 8 kHz mono PCM plus its µ-law and A-law encodings, each padded
/// with silence to whole 20 ms frames. Immutable; share it as `Arc<Prompt>`.
pub struct Prompt {
    name: PathBuf,
    source: SourceFormat,
    /// Samples before padding.
    samples: usize,
    /// `frames · 160` samples.
    pcm: Box<[i16]>,
    pcmu: Box<[u8]>,
    pcma: Box<[u8]>,
}

impl fmt::Debug for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prompt")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("samples", &self.samples)
            .field("frames", &self.frames())
            .finish_non_exhaustive()
    }
}

impl Prompt {
    /// Load a WAV file: decode, mix to mono, resample to 8 kHz, encode.
    pub fn load(path: impl AsRef<Path>) -> Result<Prompt, PromptError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| PromptError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Prompt::from_reader(path, BufReader::with_capacity(64 * 1024, file))
    }

    /// Load a WAV from any seekable reader (a `Cursor` over bytes, for instance); `name` is used
    /// in errors and logs.
    pub fn from_reader<R: Read + Seek>(
        name: impl Into<PathBuf>,
        mut reader: R,
    ) -> Result<Prompt, PromptError> {
        let name = name.into();
        let start = reader.stream_position().map_err(|source| PromptError::Io {
            path: name.clone(),
            source,
        })?;
        let eof = Cell::new(false);
        let watched = EofWatch {
            inner: &mut reader,
            eof: &eof,
        };
        let (source, pcm) = match hound::WavReader::new(watched) {
            Ok(wav) => decode_pcm_wav(&name, wav, &eof)?,
            Err(hound::Error::Unsupported) => {
                // hound reads PCM and float only; G.711 WAVs are read here.
                reader
                    .seek(SeekFrom::Start(start))
                    .map_err(|source| PromptError::Io {
                        path: name.clone(),
                        source,
                    })?;
                decode_g711_wav(&name, &mut reader)?
            }
            Err(e) => return Err(header_error(&name, e, eof.get())),
        };
        let prompt = Prompt::build(name, source, pcm)?;
        tracing::debug!(
            prompt = %prompt.name.display(),
            rate = source.sample_rate,
            channels = source.channels,
            bits = source.bits_per_sample,
            encoding = ?source.encoding,
            frames = prompt.frames(),
            "prompt loaded"
        );
        Ok(prompt)
    }

    /// A prompt from 8 kHz mono PCM (generated audio, speech synthesis, tests).
    pub fn from_pcm(name: impl Into<PathBuf>, pcm: &[i16]) -> Result<Prompt, PromptError> {
        Prompt::build(name.into(), SourceFormat::PCM_8K, pcm.to_vec())
    }

    fn build(
        name: PathBuf,
        source: SourceFormat,
        mut pcm: Vec<i16>,
    ) -> Result<Prompt, PromptError> {
        let samples = pcm.len();
        if samples == 0 {
            return Err(PromptError::Empty { path: name });
        }
        let frames = samples.div_ceil(FRAME_SAMPLES);
        if frames > MAX_FRAMES {
            return Err(PromptError::TooLong {
                path: name,
                duration: frames_to_duration(frames),
                max: MAX_DURATION,
            });
        }
        // Silence pads the last frame; 0 encodes to each codec's silence code.
        pcm.resize(frames * FRAME_SAMPLES, 0);
        let mut pcmu = vec![0u8; pcm.len()].into_boxed_slice();
        let mut pcma = vec![0u8; pcm.len()].into_boxed_slice();
        g711::encode(Codec::Pcmu, &pcm, &mut pcmu);
        g711::encode(Codec::Pcma, &pcm, &mut pcma);
        Ok(Prompt {
            name,
            source,
            samples,
            pcm: pcm.into_boxed_slice(),
            pcmu,
            pcma,
        })
    }

    /// The file it was loaded from (or the name it was given).
    pub fn name(&self) -> &Path {
        &self.name
    }

    /// The format of the source file.
    pub fn source_format(&self) -> SourceFormat {
        self.source
    }

    /// Number of 20 ms frames: `⌈samples / 160⌉`.
    pub fn frames(&self) -> usize {
        self.pcm.len() / FRAME_SAMPLES
    }

    /// Number of 8 kHz samples, before padding to whole frames.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Playing time: [`frames`](Self::frames) × 20 ms (the audio itself is up to 20 ms shorter;
    /// the rest of the last frame is silence).
    pub fn duration(&self) -> Duration {
        frames_to_duration(self.frames())
    }

    /// 8 kHz PCM, padded with silence to whole frames.
    pub fn pcm(&self) -> &[i16] {
        &self.pcm
    }

    /// The encoded prompt in `codec`, padded with silence to whole frames.
    pub fn payload(&self, codec: Codec) -> &[u8] {
        match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
        }
    }

    /// Encoded frame `k` (160 bytes), if the prompt has that many frames.
    pub fn frame(&self, codec: Codec, k: usize) -> Option<&[u8; FRAME_SAMPLES]> {
        self.payload(codec).as_chunks::<FRAME_SAMPLES>().0.get(k)
    }

    /// PCM of frame `k`, if the prompt has that many frames.
    pub fn frame_pcm(&self, k: usize) -> Option<&[i16; FRAME_SAMPLES]> {
        self.pcm.as_chunks::<FRAME_SAMPLES>().0.get(k)
    }

    /// Heap bytes held by this prompt (PCM + both encodings), for memory accounting.
    pub fn memory_bytes(&self) -> usize {
        self.pcm.len() * size_of::<i16>() + self.pcmu.len() + self.pcma.len()
    }
}

fn frames_to_duration(frames: usize) -> Duration {
    Duration::from_millis(frames as u64 * u64::from(FRAME_MS))
}

/// Notes when the reader runs dry. hound 3.5 reports a short read as a plain
/// `ErrorKind::Other` error, so "the file ended early" is told apart from real IO errors here.
struct EofWatch<'a, R> {
    inner: R,
    eof: &'a Cell<bool>,
}

impl<R: Read> Read for EofWatch<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof.set(true);
        }
        Ok(n)
    }
}

fn header_error(path: &Path, e: hound::Error, eof: bool) -> PromptError {
    let path = path.to_path_buf();
    match e {
        hound::Error::IoError(e) if eof || e.kind() == io::ErrorKind::UnexpectedEof => {
            PromptError::InvalidWav {
                path,
                reason: "the file ends inside the header".into(),
            }
        }
        hound::Error::IoError(source) => PromptError::Io { path, source },
        hound::Error::FormatError(reason) => PromptError::InvalidWav {
            path,
            reason: reason.into(),
        },
        other => PromptError::Unsupported {
            path,
            detail: other.to_string(),
        },
    }
}

fn check_duration(path: &Path, frames_per_channel: u64, rate: u32) -> Result<(), PromptError> {
    if frames_per_channel == 0 {
        return Err(PromptError::Empty {
            path: path.to_path_buf(),
        });
    }
    let duration = Duration::from_secs_f64(frames_per_channel as f64 / f64::from(rate));
    if duration > MAX_DURATION {
        return Err(PromptError::TooLong {
            path: path.to_path_buf(),
            duration,
            max: MAX_DURATION,
        });
    }
    Ok(())
}

fn decode_pcm_wav<R: Read>(
    path: &Path,
    mut wav: hound::WavReader<R>,
    eof: &Cell<bool>,
) -> Result<(SourceFormat, Vec<i16>), PromptError> {
    let spec = wav.spec();
    let source = SourceFormat {
        sample_rate: spec.sample_rate,
        channels: spec.channels,
        bits_per_sample: spec.bits_per_sample,
        encoding: match spec.sample_format {
            hound::SampleFormat::Int => SampleEncoding::Int,
            hound::SampleFormat::Float => SampleEncoding::Float,
        },
    };
    let mut mixer = Mixer::new(path, source, u64::from(wav.duration()))?;
    let sample_error = |e: hound::Error| match e {
        hound::Error::IoError(e) if eof.get() || e.kind() == io::ErrorKind::UnexpectedEof => {
            PromptError::Corrupt {
                path: path.to_path_buf(),
                detail: "the data chunk is shorter than its header says".into(),
            }
        }
        hound::Error::IoError(source) => PromptError::Io {
            path: path.to_path_buf(),
            source,
        },
        hound::Error::Unsupported | hound::Error::TooWide => PromptError::Unsupported {
            path: path.to_path_buf(),
            detail: format!(
                "{}-bit samples in a {}-bit container",
                spec.bits_per_sample,
                8 * spec.bits_per_sample.div_ceil(8)
            ),
        },
        other => PromptError::Corrupt {
            path: path.to_path_buf(),
            detail: other.to_string(),
        },
    };
    match spec.sample_format {
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            for s in wav.samples::<i32>() {
                mixer.push(s.map_err(sample_error)? as f32 * scale);
            }
        }
        hound::SampleFormat::Float => {
            for s in wav.samples::<f32>() {
                mixer.push(s.map_err(sample_error)?);
            }
        }
    }
    Ok((source, mixer.finish()))
}

/// WAV format tag, as in `mmreg.h`.
const TAG_PCM: u16 = 0x0001;
const TAG_ALAW: u16 = 0x0006;
const TAG_MULAW: u16 = 0x0007;
const TAG_EXTENSIBLE: u16 = 0xFFFE;

struct RawFmt {
    tag: u16,
    channels: u16,
    rate: u32,
    block_align: u16,
    bits: u16,
}

/// Walk the RIFF chunks up to `data`: the `fmt ` fields and the data length, with `r`
/// positioned at the first data byte. `None` if the structure is not what WAV requires.
fn read_riff_to_data<R: Read>(r: &mut R) -> io::Result<Option<(RawFmt, u32)>> {
    let mut header = [0u8; 12];
    r.read_exact(&mut header)?;
    if &header[0..4] != b"RIFF" || &header[8..12] != b"WAVE" {
        return Ok(None);
    }
    let mut fmt = None;
    loop {
        let mut chunk = [0u8; 8];
        r.read_exact(&mut chunk)?;
        let len = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        match &chunk[0..4] {
            b"fmt " => {
                if len < 16 {
                    return Ok(None);
                }
                let mut b = [0u8; 40];
                let take = (len as usize).min(40);
                r.read_exact(&mut b[..take])?;
                let le16 = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
                let mut tag = le16(0);
                if tag == TAG_EXTENSIBLE && take >= 26 {
                    // The sub-format GUID starts with the real format tag.
                    tag = le16(24);
                }
                fmt = Some(RawFmt {
                    tag,
                    channels: le16(2),
                    rate: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
                    block_align: le16(12),
                    bits: le16(14),
                });
                skip(r, u64::from(len) - take as u64 + u64::from(len & 1))?;
            }
            b"data" => return Ok(fmt.map(|f| (f, len))),
            _ => skip(r, u64::from(len) + u64::from(len & 1))?,
        }
    }
}

fn skip<R: Read>(r: &mut R, n: u64) -> io::Result<()> {
    let skipped = io::copy(&mut r.take(n), &mut io::sink())?;
    if skipped < n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

fn format_name(tag: u16) -> String {
    let name = match tag {
        TAG_PCM => "PCM",
        0x0002 => "Microsoft ADPCM",
        0x0003 => "IEEE float",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0040 => "G.721 ADPCM",
        0x0050 => "MPEG",
        0x0055 => "MP3",
        0x0064 => "G.726 ADPCM",
        _ => return format!("format tag {tag:#06x}"),
    };
    format!("{name} (format tag {tag:#06x})")
}

fn decode_g711_wav<R: Read>(
    path: &Path,
    reader: &mut R,
) -> Result<(SourceFormat, Vec<i16>), PromptError> {
    let unsupported = |detail: String| PromptError::Unsupported {
        path: path.to_path_buf(),
        detail,
    };
    let (fmt, data_len) = match read_riff_to_data(reader) {
        Ok(Some(found)) => found,
        // hound already parsed this header; if the walk fails now, say what hound said.
        Ok(None) | Err(_) => return Err(unsupported("unknown encoding".into())),
    };
    let (codec, encoding) = match fmt.tag {
        TAG_MULAW => (Codec::Pcmu, SampleEncoding::MuLaw),
        TAG_ALAW => (Codec::Pcma, SampleEncoding::ALaw),
        tag => return Err(unsupported(format_name(tag))),
    };
    if fmt.bits != 8 || fmt.channels == 0 || fmt.block_align != fmt.channels {
        return Err(unsupported(format!(
            "{} with {} bits per sample and {} channels",
            format_name(fmt.tag),
            fmt.bits,
            fmt.channels
        )));
    }
    let source = SourceFormat {
        sample_rate: fmt.rate,
        channels: fmt.channels,
        bits_per_sample: 8,
        encoding,
    };
    let mut mixer = Mixer::new(path, source, u64::from(data_len) / u64::from(fmt.channels))?;
    let mut data = reader.take(u64::from(data_len));
    let mut buf = vec![0u8; CHUNK];
    let mut pcm = vec![0i16; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(PromptError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        total += n as u64;
        g711::decode(codec, &buf[..n], &mut pcm[..n]);
        for &s in &pcm[..n] {
            mixer.push(f32::from(s) / 32768.0);
        }
    }
    if total < u64::from(data_len) {
        return Err(PromptError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("the data chunk says {data_len} bytes, the file has {total}"),
        });
    }
    Ok((source, mixer.finish()))
}

/// Mixes interleaved samples to mono and resamples them to 8 kHz PCM, chunk by chunk, so a long
/// high-rate file never sits in memory as floats.
struct Mixer<'p> {
    path: &'p Path,
    channels: usize,
    in_frame: usize,
    acc: f32,
    chunk: Vec<f32>,
    resampler: Resampler,
    resampled: Vec<f32>,
    pcm: Vec<i16>,
    clipped: u64,
}

impl<'p> Mixer<'p> {
    fn new(
        path: &'p Path,
        source: SourceFormat,
        frames_per_channel: u64,
    ) -> Result<Mixer<'p>, PromptError> {
        if source.channels == 0 {
            return Err(PromptError::InvalidWav {
                path: path.to_path_buf(),
                reason: "zero channels".into(),
            });
        }
        let resampler = Resampler::new(source.sample_rate, SAMPLE_RATE).map_err(|e| {
            PromptError::Unsupported {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        })?;
        check_duration(path, frames_per_channel, source.sample_rate)?;
        let expected = resampler.output_len(frames_per_channel) as usize;
        Ok(Mixer {
            path,
            channels: usize::from(source.channels),
            in_frame: 0,
            acc: 0.0,
            chunk: Vec::with_capacity(CHUNK),
            resampler,
            resampled: Vec::with_capacity(CHUNK),
            pcm: Vec::with_capacity(expected.next_multiple_of(FRAME_SAMPLES)),
            clipped: 0,
        })
    }

    fn push(&mut self, v: f32) {
        self.acc += if v.is_finite() { v } else { 0.0 };
        self.in_frame += 1;
        if self.in_frame == self.channels {
            self.chunk.push(self.acc / self.channels as f32);
            self.acc = 0.0;
            self.in_frame = 0;
            if self.chunk.len() == CHUNK {
                self.resampler.process(&self.chunk, &mut self.resampled);
                self.chunk.clear();
                to_pcm(&mut self.resampled, &mut self.pcm, &mut self.clipped);
            }
        }
    }

    fn finish(self) -> Vec<i16> {
        let Mixer {
            path,
            chunk,
            mut resampler,
            mut resampled,
            mut pcm,
            mut clipped,
            ..
        } = self;
        resampler.process(&chunk, &mut resampled);
        resampler.finish(&mut resampled);
        to_pcm(&mut resampled, &mut pcm, &mut clipped);
        if clipped > 0 {
            tracing::warn!(
                prompt = %path.display(),
                samples = clipped,
                "prompt clips after resampling; lower its level"
            );
        }
        pcm
    }
}

/// Drain `resampled` (full scale ±1.0) into 16-bit `pcm`, counting clipped samples.
fn to_pcm(resampled: &mut Vec<f32>, pcm: &mut Vec<i16>, clipped: &mut u64) {
    for &v in resampled.iter() {
        let s = (v * 32768.0).round();
        if !(-32768.0..=32767.0).contains(&s) {
            *clipped += 1;
        }
        pcm.push(s.clamp(-32768.0, 32767.0) as i16);
    }
    resampled.clear();
}

/// What a [`Playback`] is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlaybackState {
    /// Gives a frame on every tick.
    Playing,
    /// Holds its position and gives nothing until resumed.
    Paused,
    /// Every frame has been given.
    Finished,
    /// Stopped before the end (barge-in, hang-up).
    Stopped,
}

/// One call playing one prompt: an `Arc` to the shared prompt plus a frame cursor.
///
/// Call exactly one of [`next_frame`](Self::next_frame),
/// [`next_pcm_frame`](Self::next_pcm_frame) or [`next_frame_with_pcm`](Self::next_frame_with_pcm)
/// per media-clock tick: each advances by one frame. `None` means "nothing to send this tick"
/// (paused, finished or stopped; [`state`](Self::state) tells which).
#[derive(Debug, Clone)]
pub struct Playback {
    prompt: Arc<Prompt>,
    /// Next frame to give.
    cursor: u32,
    codec: Codec,
    state: PlaybackState,
}

impl Playback {
    /// Start playing `prompt` from its first frame, encoded as `codec`.
    pub fn new(prompt: Arc<Prompt>, codec: Codec) -> Playback {
        Playback {
            prompt,
            cursor: 0,
            codec,
            state: PlaybackState::Playing,
        }
    }

    /// Advance one frame; the index of the frame to give now.
    fn advance(&mut self) -> Option<usize> {
        if self.state != PlaybackState::Playing {
            return None;
        }
        let k = self.cursor as usize;
        let frames = self.prompt.frames();
        if k >= frames {
            self.state = PlaybackState::Finished;
            return None;
        }
        self.cursor += 1;
        if k + 1 == frames {
            self.state = PlaybackState::Finished;
        }
        Some(k)
    }

    /// The next 160-byte encoded frame.
    pub fn next_frame(&mut self) -> Option<&[u8]> {
        let k = self.advance()?;
        Some(&self.prompt.payload(self.codec)[k * FRAME_SAMPLES..(k + 1) * FRAME_SAMPLES])
    }

    /// The next frame as 8 kHz PCM.
    pub fn next_pcm_frame(&mut self) -> Option<&[i16; FRAME_SAMPLES]> {
        let k = self.advance()?;
        self.prompt.frame_pcm(k)
    }

    /// The next frame both encoded (to send) and as PCM (for the recorder's bot channel).
    pub fn next_frame_with_pcm(&mut self) -> Option<(&[u8], &[i16; FRAME_SAMPLES])> {
        let k = self.advance()?;
        let payload = &self.prompt.payload(self.codec)[k * FRAME_SAMPLES..(k + 1) * FRAME_SAMPLES];
        Some((payload, self.prompt.frame_pcm(k)?))
    }

    /// Hold the position (barge-in while deciding whether to stop).
    pub fn pause(&mut self) {
        if self.state == PlaybackState::Playing {
            self.state = PlaybackState::Paused;
        }
    }

    /// Continue a paused playback from where it was.
    pub fn resume(&mut self) {
        if self.state == PlaybackState::Paused {
            self.state = PlaybackState::Playing;
        }
    }

    /// End the playback now; it gives no more frames.
    pub fn stop(&mut self) {
        if self.state != PlaybackState::Finished {
            self.state = PlaybackState::Stopped;
        }
    }

    /// Current state.
    pub fn state(&self) -> PlaybackState {
        self.state
    }

    /// Finished or stopped: no frame will come any more.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, PlaybackState::Finished | PlaybackState::Stopped)
    }

    /// Paused.
    pub fn is_paused(&self) -> bool {
        self.state == PlaybackState::Paused
    }

    /// Frames given so far.
    pub fn frames_played(&self) -> u32 {
        self.cursor
    }

    /// Frames not yet given (0 once stopped).
    pub fn remaining_frames(&self) -> u32 {
        if self.state == PlaybackState::Stopped {
            0
        } else {
            self.prompt.frames() as u32 - self.cursor
        }
    }

    /// Audio time played: frames given × 20 ms.
    pub fn position(&self) -> Duration {
        frames_to_duration(self.cursor as usize)
    }

    /// The prompt being played.
    pub fn prompt(&self) -> &Arc<Prompt> {
        &self.prompt
    }

    /// The codec frames are given in.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Switch codec (a re-INVITE changed it); takes effect on the next frame.
    pub fn set_codec(&mut self, codec: Codec) {
        self.codec = codec;
    }
}

/// Several prompts played back to back with no gap, e.g. a greeting then a question.
///
/// Same per-tick contract as [`Playback`]; the frame after the last frame of one prompt is the
/// first frame of the next.
#[derive(Debug, Clone)]
pub struct Playlist {
    codec: Codec,
    current: Option<Playback>,
    queue: VecDeque<Arc<Prompt>>,
    paused: bool,
}

impl Playlist {
    /// An empty playlist giving frames in `codec`.
    pub fn new(codec: Codec) -> Playlist {
        Playlist {
            codec,
            current: None,
            queue: VecDeque::new(),
            paused: false,
        }
    }

    /// Queue a prompt after the ones already queued.
    pub fn push(&mut self, prompt: Arc<Prompt>) {
        self.queue.push_back(prompt);
    }

    /// The playback that gives the next frame, moving on to the next prompt when one is done.
    fn ready(&mut self) -> Option<&mut Playback> {
        if self.paused {
            return None;
        }
        while self.current.as_ref().is_none_or(Playback::is_finished) {
            let next = self.queue.pop_front()?;
            self.current = Some(Playback::new(next, self.codec));
        }
        self.current.as_mut()
    }

    /// The next encoded frame.
    pub fn next_frame(&mut self) -> Option<&[u8]> {
        self.ready()?.next_frame()
    }

    /// The next frame as PCM.
    pub fn next_pcm_frame(&mut self) -> Option<&[i16; FRAME_SAMPLES]> {
        self.ready()?.next_pcm_frame()
    }

    /// The next frame encoded and as PCM.
    pub fn next_frame_with_pcm(&mut self) -> Option<(&[u8], &[i16; FRAME_SAMPLES])> {
        self.ready()?.next_frame_with_pcm()
    }

    /// Hold the position.
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Continue where it was.
    pub fn resume(&mut self) {
        self.paused = false;
    }

    /// Stop the current prompt and drop the queued ones.
    pub fn stop(&mut self) {
        if let Some(p) = &mut self.current {
            p.stop();
        }
        self.queue.clear();
        self.paused = false;
    }

    /// Stop the current prompt and go on with the next one.
    pub fn skip(&mut self) {
        if let Some(p) = &mut self.current {
            p.stop();
        }
    }

    /// Nothing left to play.
    pub fn is_finished(&self) -> bool {
        self.queue.is_empty() && self.current.as_ref().is_none_or(Playback::is_finished)
    }

    /// Paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The playback in progress (or the last one), if any.
    pub fn current(&self) -> Option<&Playback> {
        self.current.as_ref()
    }

    /// Prompts waiting after the current one.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

/// Loaded prompts by file, so each file is decoded once and every call shares it.
///
/// Owned by the caller (the engine keeps one); no global state. Files are keyed by their
/// canonical path, so `./a.wav` and `a.wav` are one prompt. Removing an entry does not affect
/// calls already playing it: they hold their own `Arc`.
#[derive(Debug, Default)]
pub struct PromptCache {
    prompts: HashMap<PathBuf, Arc<Prompt>>,
}

impl PromptCache {
    /// An empty cache.
    pub fn new() -> PromptCache {
        PromptCache::default()
    }

    /// The prompt for `path`, loading it on first use.
    pub fn get_or_load(&mut self, path: impl AsRef<Path>) -> Result<Arc<Prompt>, PromptError> {
        let path = path.as_ref();
        let key = canonical(path)?;
        if let Some(p) = self.prompts.get(&key) {
            return Ok(Arc::clone(p));
        }
        let prompt = Arc::new(Prompt::load(path)?);
        self.prompts.insert(key, Arc::clone(&prompt));
        Ok(prompt)
    }

    /// The prompt for `path` if it is already loaded.
    pub fn get(&self, path: impl AsRef<Path>) -> Option<Arc<Prompt>> {
        let key = canonical(path.as_ref()).ok()?;
        self.prompts.get(&key).cloned()
    }

    /// Forget `path` (to reload a changed file on next use). Returns the prompt it held.
    pub fn remove(&mut self, path: impl AsRef<Path>) -> Option<Arc<Prompt>> {
        let key = canonical(path.as_ref()).ok()?;
        self.prompts.remove(&key)
    }

    /// Number of prompts held.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// No prompts held.
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }

    /// Heap bytes of all prompts held.
    pub fn memory_bytes(&self) -> usize {
        self.prompts.values().map(|p| p.memory_bytes()).sum()
    }
}

fn canonical(path: &Path) -> Result<PathBuf, PromptError> {
    std::fs::canonicalize(path).map_err(|source| PromptError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;
    use std::io::Cursor;

    fn wav_bytes(spec: hound::WavSpec, frames: usize, f: impl Fn(usize, u16) -> f64) -> Vec<u8> {
        let mut cur = Cursor::new(Vec::new());
        {
            let mut w = hound::WavWriter::new(&mut cur, spec).unwrap();
            for i in 0..frames {
                for c in 0..spec.channels {
                    let v = f(i, c);
                    match spec.sample_format {
                        hound::SampleFormat::Float => w.write_sample(v as f32).unwrap(),
                        hound::SampleFormat::Int => {
                            let max = (1i64 << (spec.bits_per_sample - 1)) as f64;
                            let s = (v * max).round().clamp(-max, max - 1.0) as i32;
                            w.write_sample(s).unwrap();
                        }
                    }
                }
            }
            w.finalize().unwrap();
        }
        cur.into_inner()
    }

    fn spec(rate: u32, channels: u16, bits: u16, float: bool) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        }
    }

    fn sine(rate: u32, freq: f64, amp: f64) -> impl Fn(usize, u16) -> f64 {
        move |i, _| amp * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()
    }

    /// Amplitude of the `freq` component in the middle of an 8 kHz signal.
    fn amplitude(pcm: &[i16], freq: f64) -> f64 {
        let (start, len) = (pcm.len() / 4, pcm.len() / 2 / 8 * 8);
        let (mut re, mut im) = (0.0, 0.0);
        for (i, &v) in pcm[start..start + len].iter().enumerate() {
            let ph = 2.0 * PI * freq * (start + i) as f64 / 8000.0;
            re += f64::from(v) * ph.cos();
            im += f64::from(v) * ph.sin();
        }
        2.0 * (re * re + im * im).sqrt() / len as f64 / 32768.0
    }

    fn load(bytes: Vec<u8>) -> Result<Prompt, PromptError> {
        Prompt::from_reader("test.wav", Cursor::new(bytes))
    }

    #[test]
    fn every_common_format_loads_to_the_same_tone() {
        let cases = [
            (8000, 1, 16, false),
            (8000, 2, 8, false),
            (11_025, 1, 16, false),
            (16_000, 1, 24, false),
            (22_050, 2, 16, false),
            (32_000, 1, 32, false),
            (44_100, 2, 16, false),
            (48_000, 1, 32, true),
            (48_000, 6, 24, false),
        ];
        for (rate, ch, bits, float) in cases {
            let bytes = wav_bytes(
                spec(rate, ch, bits, float),
                rate as usize,
                sine(rate, 1000.0, 0.5),
            );
            let p = load(bytes).unwrap_or_else(|e| panic!("{rate}/{ch}/{bits}: {e}"));
            assert_eq!(
                p.samples(),
                8000,
                "{rate} Hz, {ch} ch, {bits} bit: one second"
            );
            assert_eq!(p.frames(), 50);
            assert_eq!(p.duration(), Duration::from_secs(1));
            let a = amplitude(p.pcm(), 1000.0);
            let db = 20.0 * (a / 0.5).log10();
            // 8-bit sources carry their own quantisation noise; the gain is what is checked.
            assert!(db.abs() < 0.1, "{rate}/{ch}/{bits}: {db:.3} dB");
            let s = p.source_format();
            assert_eq!(
                (s.sample_rate, s.channels, s.bits_per_sample),
                (rate, ch, bits)
            );
        }
    }

    #[test]
    fn pcm_8k_16bit_mono_loads_bit_exact_and_encodes_once_per_codec() {
        let samples: Vec<i16> = (0..1000)
            .map(|i| ((i * 7919) % 65_536 - 32_768) as i16)
            .collect();
        let bytes = wav_bytes(spec(8000, 1, 16, false), samples.len(), |i, _| {
            f64::from(samples[i]) / 32768.0
        });
        let p = load(bytes).unwrap();
        assert_eq!(&p.pcm()[..1000], &samples[..]);
        // Padding: 1000 samples → 7 frames, the last 120 samples silence.
        assert_eq!(p.frames(), 7);
        assert_eq!(p.pcm().len(), 1120);
        assert!(p.pcm()[1000..].iter().all(|&s| s == 0));
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut expect = vec![0u8; 1120];
            g711::encode(codec, p.pcm(), &mut expect);
            assert_eq!(p.payload(codec), &expect[..]);
            assert!(
                p.payload(codec)[1000..]
                    .iter()
                    .all(|&b| b == codec.silence())
            );
        }
        assert_eq!(p.memory_bytes(), 1120 * 4);
    }

    #[test]
    fn channels_are_averaged() {
        // Left +0.5, right −0.5 of the same tone → silence; left only → half amplitude.
        let bytes = wav_bytes(spec(8000, 2, 16, false), 800, |i, c| {
            let v = 0.5 * (2.0 * PI * 440.0 * i as f64 / 8000.0).sin();
            if c == 0 { v } else { -v }
        });
        let p = load(bytes).unwrap();
        assert!(p.pcm().iter().all(|&s| s.abs() <= 1), "cancels out");
        let bytes = wav_bytes(spec(8000, 2, 16, false), 8000, |i, c| {
            if c == 0 {
                0.5 * (2.0 * PI * 1000.0 * i as f64 / 8000.0).sin()
            } else {
                0.0
            }
        });
        let a = amplitude(load(bytes).unwrap().pcm(), 1000.0);
        assert!((a - 0.25).abs() < 0.001, "{a}");
    }

    /// A G.711 WAV as sox writes it (`-e u-law`): WAVEFORMATEX with cbSize 0 and a fact chunk.
    fn g711_wav(tag: u16, rate: u32, channels: u16, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(4 + 26 + 12 + 8 + data.len() as u32).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&18u32.to_le_bytes());
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * u32::from(channels)).to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&8u16.to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes());
        v.extend_from_slice(b"fact");
        v.extend_from_slice(&4u32.to_le_bytes());
        v.extend_from_slice(&(data.len() as u32 / u32::from(channels)).to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn g711_wavs_load_and_round_trip_exactly() {
        let pcm: Vec<i16> = (0..800)
            .map(|i| (8000.0 * (2.0 * PI * 700.0 * f64::from(i) / 8000.0).sin()) as i16)
            .collect();
        for (codec, tag, enc) in [
            (Codec::Pcmu, TAG_MULAW, SampleEncoding::MuLaw),
            (Codec::Pcma, TAG_ALAW, SampleEncoding::ALaw),
        ] {
            let mut codes = vec![0u8; pcm.len()];
            g711::encode(codec, &pcm, &mut codes);
            let p = load(g711_wav(tag, 8000, 1, &codes)).unwrap();
            assert_eq!(p.source_format().encoding, enc);
            assert_eq!(p.frames(), 5);
            // 8 kHz G.711 in → same G.711 out, byte for byte.
            assert_eq!(p.payload(codec), &codes[..]);
        }
        // Stereo µ-law at 16 kHz goes through the mixer and resampler like PCM.
        let tone: Vec<i16> = (0..16_000)
            .map(|i| (16_000.0 * (2.0 * PI * 1000.0 * f64::from(i) / 16_000.0).sin()) as i16)
            .collect();
        let mut codes = Vec::new();
        for &s in &tone {
            codes.push(g711::ulaw_encode(s));
            codes.push(g711::ulaw_encode(s));
        }
        let p = load(g711_wav(TAG_MULAW, 16_000, 2, &codes)).unwrap();
        assert_eq!(p.samples(), 8000);
        let a = amplitude(p.pcm(), 1000.0);
        assert!((a - 16_000.0 / 32768.0).abs() < 0.01, "{a}");
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let err = Prompt::load("/nonexistent/dir/hello.wav").unwrap_err();
        assert!(matches!(err, PromptError::Io { .. }), "{err:?}");
        assert!(
            err.to_string().contains("/nonexistent/dir/hello.wav"),
            "{err}"
        );

        let err = Prompt::from_reader("notes.txt", Cursor::new(b"hello, this is text".to_vec()))
            .unwrap_err();
        assert!(matches!(err, PromptError::InvalidWav { .. }), "{err:?}");
        assert!(
            err.to_string().contains("notes.txt") && err.to_string().contains("RIFF"),
            "{err}"
        );

        let err = load(Vec::new()).unwrap_err();
        assert!(matches!(err, PromptError::InvalidWav { .. }), "{err:?}");

        let err = load(wav_bytes(spec(8000, 1, 16, false), 0, |_, _| 0.0)).unwrap_err();
        assert!(matches!(err, PromptError::Empty { .. }), "{err:?}");
        assert!(err.to_string().contains("no audio"), "{err}");

        // ADPCM: hound refuses it; the error says which format it is.
        let adpcm = g711_wav(0x0002, 8000, 1, &[0; 100]);
        let err = load(adpcm).unwrap_err();
        assert!(matches!(err, PromptError::Unsupported { .. }), "{err:?}");
        assert!(
            err.to_string().contains("ADPCM") && err.to_string().contains("sox"),
            "{err}"
        );

        // Truncated data chunk.
        let mut bytes = wav_bytes(spec(8000, 1, 16, false), 1000, |_, _| 0.1);
        bytes.truncate(bytes.len() - 500);
        let err = load(bytes).unwrap_err();
        assert!(matches!(err, PromptError::Corrupt { .. }), "{err:?}");
        let mut bytes = g711_wav(TAG_MULAW, 8000, 1, &[0x55; 1000]);
        bytes.truncate(bytes.len() - 10);
        let err = load(bytes).unwrap_err();
        assert!(matches!(err, PromptError::Corrupt { .. }), "{err:?}");

        // Silly sample rate.
        let err = load(wav_bytes(spec(500, 1, 16, false), 100, |_, _| 0.0)).unwrap_err();
        assert!(matches!(err, PromptError::Unsupported { .. }), "{err:?}");

        assert!(matches!(
            Prompt::from_pcm("empty", &[]).unwrap_err(),
            PromptError::Empty { .. }
        ));
    }

    #[test]
    fn too_long_is_refused_from_the_header_alone() {
        // A header claiming 31 minutes at 48 kHz stereo, with (almost) no data behind it: the
        // limit is enforced before decoding, so nothing is read or allocated for the audio.
        let mut bytes = wav_bytes(spec(48_000, 2, 16, false), 10, |_, _| 0.0);
        let data_len: u32 = 31 * 60 * 48_000 * 4;
        let at = bytes.len() - 40 - 4;
        bytes[at..at + 4].copy_from_slice(&data_len.to_le_bytes());
        let err = load(bytes).unwrap_err();
        match &err {
            PromptError::TooLong { duration, max, .. } => {
                assert_eq!(duration.as_secs(), 31 * 60);
                assert_eq!(*max, MAX_DURATION);
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("1860.0 s"), "{err}");
        // The same limit for generated audio.
        let long = vec![0i16; MAX_FRAMES * FRAME_SAMPLES + 1];
        assert!(matches!(
            Prompt::from_pcm("long", &long).unwrap_err(),
            PromptError::TooLong { .. }
        ));
        assert!(Prompt::from_pcm("max", &long[1..]).is_ok());
    }

    fn prompt(samples: usize) -> Arc<Prompt> {
        let pcm: Vec<i16> = (0..samples).map(|i| (i % 1000) as i16 + 1).collect();
        Arc::new(Prompt::from_pcm("gen", &pcm).unwrap())
    }

    #[test]
    fn frame_count_is_ceil_of_samples() {
        for (samples, frames) in [(1, 1), (159, 1), (160, 1), (161, 2), (8000, 50), (8001, 51)] {
            let p = prompt(samples);
            assert_eq!(p.frames(), frames, "{samples} samples");
            let mut pb = Playback::new(p, Codec::Pcma);
            let mut n = 0;
            while let Some(f) = pb.next_frame() {
                assert_eq!(f.len(), FRAME_SAMPLES);
                n += 1;
            }
            assert_eq!(n, frames);
            assert!(pb.is_finished());
            assert_eq!(pb.state(), PlaybackState::Finished);
            assert!(pb.next_frame().is_none(), "stays finished");
        }
    }

    #[test]
    fn pause_resume_stop() {
        let p = prompt(160 * 10);
        let mut pb = Playback::new(Arc::clone(&p), Codec::Pcmu);
        assert_eq!(pb.next_frame(), p.frame(Codec::Pcmu, 0).map(|f| &f[..]));
        assert_eq!(pb.next_frame(), p.frame(Codec::Pcmu, 1).map(|f| &f[..]));
        pb.pause();
        assert!(pb.is_paused() && !pb.is_finished());
        for _ in 0..5 {
            assert!(pb.next_frame().is_none(), "paused gives nothing");
        }
        assert_eq!(pb.position(), Duration::from_millis(40));
        pb.resume();
        assert_eq!(
            pb.next_frame(),
            p.frame(Codec::Pcmu, 2).map(|f| &f[..]),
            "resumes in place"
        );
        let (payload, pcm) = pb.next_frame_with_pcm().unwrap();
        assert_eq!(payload, &p.frame(Codec::Pcmu, 3).unwrap()[..]);
        assert_eq!(pcm, p.frame_pcm(3).unwrap());
        assert_eq!(pb.next_pcm_frame(), p.frame_pcm(4));
        assert_eq!(pb.frames_played(), 5);
        assert_eq!(pb.remaining_frames(), 5);
        pb.set_codec(Codec::Pcma);
        assert_eq!(pb.next_frame(), p.frame(Codec::Pcma, 5).map(|f| &f[..]));
        pb.stop();
        assert!(pb.is_finished());
        assert_eq!(pb.state(), PlaybackState::Stopped);
        assert_eq!(pb.remaining_frames(), 0);
        assert!(pb.next_frame().is_none());
        pb.resume();
        assert!(
            pb.next_frame().is_none(),
            "a stopped playback stays stopped"
        );
        // Pausing a finished playback does not revive it.
        let mut pb = Playback::new(prompt(1), Codec::Pcmu);
        assert!(pb.next_frame().is_some());
        pb.pause();
        pb.resume();
        assert!(pb.is_finished() && pb.next_frame().is_none());
    }

    #[test]
    fn playback_is_small_and_shares_the_prompt() {
        assert_eq!(size_of::<Playback>(), 16);
        let p = prompt(8000);
        let calls: Vec<Playback> = (0..1000)
            .map(|_| Playback::new(Arc::clone(&p), Codec::Pcmu))
            .collect();
        assert_eq!(Arc::strong_count(&p), 1001);
        // Same bytes, not copies.
        let a = calls[0].prompt().payload(Codec::Pcmu).as_ptr();
        let b = calls[999].prompt().payload(Codec::Pcmu).as_ptr();
        assert_eq!(a, b);
    }

    #[test]
    fn playlist_plays_back_to_back() {
        let a = prompt(320);
        let b = prompt(161);
        let mut pl = Playlist::new(Codec::Pcmu);
        assert!(pl.is_finished() && pl.next_frame().is_none());
        pl.push(Arc::clone(&a));
        pl.push(Arc::clone(&b));
        pl.push(Arc::clone(&a));
        let mut got = Vec::new();
        for tick in 0.. {
            if tick == 3 {
                pl.pause();
                assert!(pl.next_frame().is_none());
                pl.resume();
            }
            match pl.next_frame() {
                Some(f) => got.extend_from_slice(f),
                None => break,
            }
        }
        let mut expect = Vec::new();
        for p in [&a, &b, &a] {
            expect.extend_from_slice(p.payload(Codec::Pcmu));
        }
        assert_eq!(got, expect, "2 + 2 + 2 frames, no gaps");
        assert!(pl.is_finished());

        pl.push(Arc::clone(&a));
        pl.push(Arc::clone(&b));
        assert!(pl.next_pcm_frame().is_some());
        pl.skip();
        assert_eq!(
            pl.next_frame_with_pcm().unwrap().1,
            b.frame_pcm(0).unwrap(),
            "skipped to b"
        );
        pl.push(Arc::clone(&a));
        pl.stop();
        assert!(pl.is_finished() && pl.next_frame().is_none() && pl.queued() == 0);
    }

    #[test]
    fn cache_loads_each_file_once() {
        let dir = std::env::temp_dir().join(format!("media-prompt-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hello.wav");
        std::fs::write(
            &path,
            wav_bytes(spec(16_000, 1, 16, false), 1600, sine(16_000, 500.0, 0.3)),
        )
        .unwrap();
        let mut cache = PromptCache::new();
        let a = cache.get_or_load(&path).unwrap();
        let b = cache.get_or_load(dir.join(".").join("hello.wav")).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "one prompt per file");
        assert_eq!(cache.len(), 1);
        assert_eq!(a.frames(), 5);
        assert!(Arc::ptr_eq(&cache.get(&path).unwrap(), &a));
        assert_eq!(cache.memory_bytes(), a.memory_bytes());
        let err = cache.get_or_load(dir.join("missing.wav")).unwrap_err();
        assert!(err.to_string().contains("missing.wav"), "{err}");
        assert!(cache.remove(&path).is_some());
        assert!(cache.is_empty());
        let c = cache.get_or_load(&path).unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "reloaded after remove");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The engine's media clock in simulated time: tick `k` happens at `t0 + 20 ms·k` and sends
    /// one frame stamped `start + 160·k`. A 10-minute prompt must give exactly 30,000 frames,
    /// and frame `k` must carry samples `160·k..160·k+160` of the audio — no skipped or repeated
    /// frame anywhere, so the audio never drifts from the RTP clock.
    #[test]
    fn ten_minute_prompt_gives_30000_frames_without_drift() {
        const N: usize = 10 * 60 * 8000;
        // A signal whose every frame differs from its neighbours: a slow chirp.
        let signal = |i: usize| {
            let t = i as f64 / 8000.0;
            0.4 * (2.0 * PI * (200.0 + 3.0 * t) * t).sin()
        };
        let path =
            std::env::temp_dir().join(format!("media-prompt-10min-{}.wav", std::process::id()));
        {
            let mut w = hound::WavWriter::create(&path, spec(8000, 1, 16, false)).unwrap();
            let mut w16 = w.get_i16_writer(N as u32);
            for i in 0..N {
                w16.write_sample((signal(i) * 32768.0).round() as i16);
            }
            w16.flush().unwrap();
            w.finalize().unwrap();
        }
        let p = Arc::new(Prompt::load(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
        assert_eq!(p.frames(), 30_000);
        assert_eq!(p.duration(), Duration::from_secs(600));

        let start_ts: u32 = 0xFFFF_0000; // wraps during the prompt
        let t0 = Duration::from_secs(1000);
        let mut pb = Playback::new(Arc::clone(&p), Codec::Pcmu);
        let mut k: u32 = 0;
        let mut last_ts = start_ts;
        let mut expected = [0u8; FRAME_SAMPLES];
        let mut pcm = [0i16; FRAME_SAMPLES];
        loop {
            let now = t0 + Duration::from_millis(20) * k;
            let ts = start_ts.wrapping_add(160 * k);
            let Some(frame) = pb.next_frame() else { break };
            for (j, s) in pcm.iter_mut().enumerate() {
                *s = (signal(k as usize * 160 + j) * 32768.0).round() as i16;
            }
            g711::encode(Codec::Pcmu, &pcm, &mut expected);
            assert_eq!(frame, &expected[..], "frame {k} at {now:?}");
            assert_eq!(pb.position(), Duration::from_millis(20) * (k + 1));
            last_ts = ts;
            k += 1;
        }
        assert_eq!(k, 30_000);
        assert_eq!(last_ts, start_ts.wrapping_add(160 * 29_999));
        assert_eq!(pb.position(), Duration::from_secs(600));
        assert!(pb.is_finished());
    }

    /// The same through the resampler: a 44.1 kHz prompt of exactly 3 s is 150 frames, and a
    /// 10-minute one 30,000 (slow in debug builds: run by name).
    #[test]
    fn resampled_prompt_length_is_exact() {
        let bytes = wav_bytes(
            spec(44_100, 1, 16, false),
            3 * 44_100,
            sine(44_100, 440.0, 0.3),
        );
        assert_eq!(load(bytes).unwrap().frames(), 150);
        let bytes = wav_bytes(spec(44_100, 1, 16, false), 44_101, sine(44_100, 440.0, 0.3));
        let p = load(bytes).unwrap();
        assert_eq!(p.samples(), 8001);
        assert_eq!(p.frames(), 51);
    }

    #[test]
    #[ignore = "soak: 10 minutes of 44.1 kHz stereo through the resampler; run in release"]
    fn ten_minute_44k1_stereo_prompt_is_30000_frames() {
        let bytes = wav_bytes(
            spec(44_100, 2, 16, false),
            600 * 44_100,
            sine(44_100, 1000.0, 0.5),
        );
        let started = std::time::Instant::now();
        let p = load(bytes).unwrap();
        println!("loaded in {:?}", started.elapsed());
        assert_eq!(p.frames(), 30_000);
        let a = amplitude(p.pcm(), 1000.0);
        assert!((20.0 * (a / 0.5).log10()).abs() < 0.05);
    }
}
