//! Call recording: a stereo 8 kHz 16-bit WAV, left = callee, right = bot.
//!
//! Two halves, so that no file IO happens on the media path:
//!
//! - [`Recorder`] (sans-IO, per call) is fed one frame per side on every media-clock tick and
//!   interleaves them into a block; each full block (default [`DEFAULT_BLOCK_FRAMES`] = 0.5 s)
//!   is handed back to the caller as an owned [`Block`].
//! - [`WavSink`] (blocking) writes blocks to a WAV file. The engine runs it on a writer thread
//!   and sends it blocks over a channel:
//!
//! ```text
//! media tick (every 20 ms, all calls):            writer thread:
//!   let bot = playback.next_frame_with_pcm();       let mut sink = WavSink::create(path)?;
//!   send(bot.0);                                    while let Ok(block) = rx.recv() {
//!   if let Some(b) = rec.push_frame(                    sink.write_block(&block)?;
//!       callee_pcm.as_ref(), bot.map(|b| b.1)) {    }
//!       tx.send(b);                                 sink.finalize()?;
//!   }
//! call ends:
//!   if let Some(b) = rec.finish() { tx.send(b) }  drop(tx);
//! ```
//!
//! A side with nothing this tick (packet lost, no prompt playing) is passed as `None` and
//! recorded as silence, so the two channels stay aligned with each other and with the call's
//! clock: a recording of `N` ticks is exactly `N·160` sample frames long.
//!
//! The file is a valid WAV however the sink ends: [`WavSink::finalize`] (errors reported),
//! dropped without it (the header is finalised in `Drop`, errors logged), after a write error
//! (the header is finalised right away to cover what was written), and even when the process
//! dies (the header is rewritten every [`HEADER_REFRESH_FRAMES`], so at most that much is lost).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE};

/// Frames per block handed to the writer: 0.5 s, 16,000 bytes per block.
///
/// Half a second keeps the per-call buffer well inside the 50 KiB per-call budget while the
/// writer thread sees only two blocks per call per second.
pub const DEFAULT_BLOCK_FRAMES: usize = 25;
/// Channels in a recording: left = callee, right = bot.
pub const CHANNELS: u16 = 2;
/// The WAV header is brought up to date at least this often (5 s of audio), so a recording cut
/// off by a crash is readable up to the last refresh.
pub const HEADER_REFRESH_FRAMES: u64 = 250;
/// Bytes of audio per frame in the file: 160 samples × 2 channels × 2 bytes.
const FRAME_BYTES: u64 = (FRAME_SAMPLES * CHANNELS as usize * 2) as u64;
/// Largest recording a WAV can hold (its sizes are 32-bit), with room for the header: ~37 h.
pub const MAX_FRAMES: u64 = (u32::MAX as u64 - 64) / FRAME_BYTES;

static SILENCE: [i16; FRAME_SAMPLES] = [0; FRAME_SAMPLES];

/// The WAV format of every recording.
pub fn wav_spec() -> hound::WavSpec {
    hound::WavSpec {
        channels: CHANNELS,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

/// Interleaved stereo audio for whole frames, in call order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    first_frame: u64,
    samples: Vec<i16>,
}

impl Block {
    /// Index (from the start of the recording) of the first frame in this block.
    pub fn first_frame(&self) -> u64 {
        self.first_frame
    }

    /// Number of frames in the block.
    pub fn frames(&self) -> usize {
        self.samples.len() / (FRAME_SAMPLES * CHANNELS as usize)
    }

    /// Interleaved samples: callee, bot, callee, bot, …
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// The samples, to reuse the buffer.
    pub fn into_samples(self) -> Vec<i16> {
        self.samples
    }
}

/// Per-call, sans-IO: interleaves callee and bot frames into blocks for a writer.
#[derive(Debug, Clone)]
pub struct Recorder {
    block_frames: usize,
    /// The block being filled; unallocated until its first frame.
    block: Vec<i16>,
    block_first: u64,
    frames: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// A recorder handing out blocks of [`DEFAULT_BLOCK_FRAMES`].
    pub fn new() -> Recorder {
        Recorder::with_block_frames(DEFAULT_BLOCK_FRAMES)
    }

    /// A recorder handing out blocks of `frames` frames (at least 1).
    pub fn with_block_frames(frames: usize) -> Recorder {
        Recorder {
            block_frames: frames.max(1),
            block: Vec::new(),
            block_first: 0,
            frames: 0,
        }
    }

    /// Record one 20 ms tick: what the callee sent (left) and what the bot played (right).
    /// `None` records silence for that side. Returns a block when one is full.
    #[must_use = "a full block must be handed to the writer, or that audio is lost"]
    pub fn push_frame(
        &mut self,
        callee: Option<&[i16; FRAME_SAMPLES]>,
        bot: Option<&[i16; FRAME_SAMPLES]>,
    ) -> Option<Block> {
        if self.block.capacity() == 0 {
            self.block = Vec::with_capacity(self.block_frames * FRAME_SAMPLES * 2);
            self.block_first = self.frames;
        }
        let left = callee.unwrap_or(&SILENCE);
        let right = bot.unwrap_or(&SILENCE);
        let start = self.block.len();
        self.block.resize(start + FRAME_SAMPLES * 2, 0);
        let pairs = self.block[start..].as_chunks_mut::<2>().0;
        for ((pair, &l), &r) in pairs.iter_mut().zip(left).zip(right) {
            *pair = [l, r];
        }
        self.frames += 1;
        if self.block.len() == self.block_frames * FRAME_SAMPLES * 2 {
            self.take()
        } else {
            None
        }
    }

    /// The last, partial block (`None` if there is nothing pending). Call when the call ends;
    /// recording may continue afterwards (the next block continues the numbering).
    #[must_use = "the last block must be handed to the writer, or that audio is lost"]
    pub fn finish(&mut self) -> Option<Block> {
        if self.block.is_empty() {
            return None;
        }
        self.take()
    }

    fn take(&mut self) -> Option<Block> {
        Some(Block {
            first_frame: self.block_first,
            samples: std::mem::take(&mut self.block),
        })
    }

    /// Frames recorded so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Audio time recorded so far.
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.frames * u64::from(FRAME_MS))
    }

    /// Frames per block.
    pub fn block_frames(&self) -> usize {
        self.block_frames
    }
}

/// Why a recording could not be written. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The directory for the recording could not be created.
    #[error("recording {}: cannot create directory {}: {source}", path.display(), dir.display())]
    CreateDir {
        /// The recording.
        path: PathBuf,
        /// The directory.
        dir: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The file could not be created (exists, permission, is a directory…).
    #[error("recording {}: cannot create the file: {source}", path.display())]
    Create {
        /// The recording.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Writing failed; the file holds everything before the failed block, with a valid header.
    #[error("recording {}: write failed after {frames} frames: {source}", path.display())]
    Write {
        /// The recording.
        path: PathBuf,
        /// Frames safely in the file.
        frames: u64,
        /// What failed.
        source: hound::Error,
    },
    /// The sink already failed or was finalised.
    #[error("recording {}: already closed after {frames} frames", path.display())]
    Closed {
        /// The recording.
        path: PathBuf,
        /// Frames in the file.
        frames: u64,
    },
    /// A block arrived for frames already written (blocks sent out of order or twice).
    #[error("recording {}: block starts at frame {got}, but {expected} frames are written", path.display())]
    OutOfOrder {
        /// The recording.
        path: PathBuf,
        /// Frames written so far.
        expected: u64,
        /// First frame of the block.
        got: u64,
    },
    /// The recording reached the 4 GiB WAV size limit (~37 hours).
    #[error("recording {}: WAV size limit reached at {frames} frames", path.display())]
    TooLong {
        /// The recording.
        path: PathBuf,
        /// Frames in the file.
        frames: u64,
    },
}

/// What a finished recording holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// The file.
    pub path: PathBuf,
    /// Frames written (each 160 stereo sample frames).
    pub frames: u64,
}

impl Recording {
    /// Length of the recording.
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.frames * u64::from(FRAME_MS))
    }
}

/// Blocking WAV writer for one recording; run it off the media path.
///
/// Blocks are written unbuffered (each is one `write` of up to 16 KB), so the header's size
/// fields never claim data that a failed write did not put in the file.
pub struct WavSink<W: Write + Seek = File> {
    path: PathBuf,
    writer: Option<hound::WavWriter<W>>,
    frames: u64,
    refreshed_at: u64,
}

impl<W: Write + Seek> fmt::Debug for WavSink<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WavSink")
            .field("path", &self.path)
            .field("open", &self.writer.is_some())
            .field("frames", &self.frames)
            .finish()
    }
}

impl WavSink<File> {
    /// Create a new recording at `path`, creating missing parent directories. An existing file
    /// is an error: a recording (possibly consent evidence) is never overwritten silently.
    pub fn create(path: impl AsRef<Path>) -> Result<WavSink<File>, RecordError> {
        WavSink::open(path.as_ref(), false)
    }

    /// Like [`create`](Self::create), but replaces an existing file.
    pub fn create_or_replace(path: impl AsRef<Path>) -> Result<WavSink<File>, RecordError> {
        WavSink::open(path.as_ref(), true)
    }

    fn open(path: &Path, replace: bool) -> Result<WavSink<File>, RecordError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| RecordError::CreateDir {
                path: path.to_path_buf(),
                dir: dir.to_path_buf(),
                source,
            })?;
        }
        let mut options = OpenOptions::new();
        options.write(true);
        if replace {
            options.create(true).truncate(true);
        } else {
            options.create_new(true);
        }
        let file = options.open(path).map_err(|source| RecordError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        WavSink::from_writer(path, file)
    }
}

impl<W: Write + Seek> WavSink<W> {
    /// A sink over any seekable writer (positioned at its start); `name` is used in errors.
    pub fn from_writer(name: impl Into<PathBuf>, writer: W) -> Result<WavSink<W>, RecordError> {
        let path = name.into();
        let writer =
            hound::WavWriter::new(writer, wav_spec()).map_err(|source| RecordError::Write {
                path: path.clone(),
                frames: 0,
                source,
            })?;
        Ok(WavSink {
            path,
            writer: Some(writer),
            frames: 0,
            refreshed_at: 0,
        })
    }

    /// Append a block. A gap before it (a block the caller dropped) is filled with silence so
    /// the recording stays aligned with the call; a block for frames already written is refused.
    /// After a write error the file is finalised at once (valid up to the last whole block) and
    /// the sink is closed.
    pub fn write_block(&mut self, block: &Block) -> Result<(), RecordError> {
        if self.writer.is_none() {
            return Err(self.closed());
        }
        if block.first_frame < self.frames {
            return Err(RecordError::OutOfOrder {
                path: self.path.clone(),
                expected: self.frames,
                got: block.first_frame,
            });
        }
        let gap = block.first_frame - self.frames;
        if gap > 0 {
            tracing::warn!(
                recording = %self.path.display(),
                frames = gap,
                "recording block missing; filled with silence"
            );
            for _ in 0..gap {
                self.write_samples(&[0; FRAME_SAMPLES * 2])?;
            }
        }
        self.write_samples(&block.samples)?;
        if self.frames - self.refreshed_at >= HEADER_REFRESH_FRAMES {
            self.refreshed_at = self.frames;
            if let Some(w) = self.writer.as_mut()
                && let Err(source) = w.flush()
            {
                return Err(self.fail(source));
            }
        }
        Ok(())
    }

    /// Write whole interleaved frames.
    fn write_samples(&mut self, samples: &[i16]) -> Result<(), RecordError> {
        let frames = (samples.len() / (FRAME_SAMPLES * 2)) as u64;
        if self.frames + frames > MAX_FRAMES {
            let err = RecordError::TooLong {
                path: self.path.clone(),
                frames: self.frames,
            };
            self.close_after_error();
            return Err(err);
        }
        let Some(w) = self.writer.as_mut() else {
            return Err(self.closed());
        };
        let mut out = w.get_i16_writer(samples.len() as u32);
        for &s in samples {
            out.write_sample(s);
        }
        match out.flush() {
            Ok(()) => {
                self.frames += frames;
                Ok(())
            }
            Err(source) => Err(self.fail(source)),
        }
    }

    fn closed(&self) -> RecordError {
        RecordError::Closed {
            path: self.path.clone(),
            frames: self.frames,
        }
    }

    fn fail(&mut self, source: hound::Error) -> RecordError {
        self.close_after_error();
        RecordError::Write {
            path: self.path.clone(),
            frames: self.frames,
            source,
        }
    }

    /// Best effort: make the header cover what is in the file, then close.
    fn close_after_error(&mut self) {
        if let Some(w) = self.writer.take()
            && let Err(e) = w.finalize()
        {
            tracing::warn!(recording = %self.path.display(), error = %e, "cannot finalise recording after a write error");
        }
    }

    /// Write the final header and close the file. Returns what the file holds.
    pub fn finalize(mut self) -> Result<Recording, RecordError> {
        let Some(w) = self.writer.take() else {
            return Err(self.closed());
        };
        w.finalize().map_err(|source| RecordError::Write {
            path: self.path.clone(),
            frames: self.frames,
            source,
        })?;
        Ok(Recording {
            path: std::mem::take(&mut self.path),
            frames: self.frames,
        })
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The file (or name) written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Still accepting blocks.
    pub fn is_open(&self) -> bool {
        self.writer.is_some()
    }
}

impl<W: Write + Seek> Drop for WavSink<W> {
    /// A sink dropped without [`finalize`](WavSink::finalize) (an early return, a panic on the
    /// writer thread) still leaves a valid WAV: the header is written here; an error can only
    /// be logged.
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            match w.finalize() {
                Ok(()) => tracing::debug!(
                    recording = %self.path.display(),
                    frames = self.frames,
                    "recording closed on drop"
                ),
                Err(e) => tracing::warn!(
                    recording = %self.path.display(),
                    error = %e,
                    "cannot finalise recording on drop"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn frame(seed: i16) -> [i16; FRAME_SAMPLES] {
        std::array::from_fn(|i| seed.wrapping_mul(1000).wrapping_add(i as i16))
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("media-record-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Left/right sample pairs of a WAV file.
    fn read_back(path: &Path) -> (hound::WavSpec, Vec<(i16, i16)>) {
        let mut r = hound::WavReader::open(path).unwrap();
        let spec = r.spec();
        let s: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        (spec, s.chunks_exact(2).map(|c| (c[0], c[1])).collect())
    }

    #[test]
    fn interleaves_and_keeps_sides_aligned_through_loss() {
        let mut rec = Recorder::with_block_frames(4);
        let (c0, b0, c2, b1, b3) = (frame(1), frame(2), frame(3), frame(4), frame(5));
        assert!(rec.push_frame(Some(&c0), Some(&b0)).is_none());
        assert!(
            rec.push_frame(None, Some(&b1)).is_none(),
            "callee packet lost"
        );
        assert!(
            rec.push_frame(Some(&c2), None).is_none(),
            "no prompt playing"
        );
        let block = rec
            .push_frame(None, Some(&b3))
            .expect("4 frames make a block");
        assert_eq!(block.first_frame(), 0);
        assert_eq!(block.frames(), 4);
        let s = block.samples();
        assert_eq!(s.len(), 4 * 160 * 2);
        for i in 0..160 {
            assert_eq!(
                (s[2 * i], s[2 * i + 1]),
                (c0[i], b0[i]),
                "frame 0 sample {i}"
            );
            assert_eq!(
                (s[320 + 2 * i], s[321 + 2 * i]),
                (0, b1[i]),
                "frame 1 sample {i}"
            );
            assert_eq!(
                (s[640 + 2 * i], s[641 + 2 * i]),
                (c2[i], 0),
                "frame 2 sample {i}"
            );
            assert_eq!(
                (s[960 + 2 * i], s[961 + 2 * i]),
                (0, b3[i]),
                "frame 3 sample {i}"
            );
        }
        assert_eq!(rec.frames(), 4);
        assert_eq!(rec.duration(), Duration::from_millis(80));
    }

    #[test]
    fn block_boundaries() {
        let mut rec = Recorder::new();
        assert_eq!(rec.block_frames(), DEFAULT_BLOCK_FRAMES);
        assert!(rec.finish().is_none(), "nothing recorded, nothing to flush");
        let mut blocks = Vec::new();
        for k in 0..(2 * DEFAULT_BLOCK_FRAMES + 7) {
            let f = frame(k as i16);
            blocks.extend(rec.push_frame(Some(&f), Some(&f)));
            // A block comes out exactly on the 25th, 50th frame.
            assert_eq!(
                blocks.len(),
                (k + 1) / DEFAULT_BLOCK_FRAMES,
                "after frame {k}"
            );
        }
        let last = rec.finish().expect("partial block");
        assert!(rec.finish().is_none(), "finish is idempotent");
        assert_eq!(
            [
                blocks[0].first_frame(),
                blocks[1].first_frame(),
                last.first_frame()
            ],
            [0, 25, 50]
        );
        assert_eq!(
            [blocks[0].frames(), blocks[1].frames(), last.frames()],
            [25, 25, 7]
        );
        // Frame 30 is the 6th of block 1.
        assert_eq!(blocks[1].samples()[5 * 320], frame(30)[0]);
        // The pending buffer is released with the block: an idle recorder holds no heap.
        assert_eq!(rec.block.capacity(), 0);
        // Recording can go on after finish; numbering continues.
        let f = frame(0);
        assert!(rec.push_frame(Some(&f), None).is_none());
        assert_eq!(rec.finish().unwrap().first_frame(), 57);
    }

    #[test]
    fn write_and_read_back_exactly() {
        let dir = temp_dir("exact");
        let path = dir.join("nested/deeper/call.wav");
        let mut sink = WavSink::create(&path).unwrap();
        let mut rec = Recorder::with_block_frames(10);
        let mut expect = Vec::new();
        for k in 0..1234u32 {
            let callee = (k % 7 != 0).then(|| frame(k as i16));
            let bot = (k % 5 != 0).then(|| frame(-(k as i16)));
            for i in 0..160 {
                expect.push((callee.map_or(0, |c| c[i]), bot.map_or(0, |b| b[i])));
            }
            if let Some(b) = rec.push_frame(callee.as_ref(), bot.as_ref()) {
                sink.write_block(&b).unwrap();
            }
        }
        sink.write_block(&rec.finish().unwrap()).unwrap();
        assert_eq!(sink.frames(), 1234);
        let done = sink.finalize().unwrap();
        assert_eq!(
            done,
            Recording {
                path: path.clone(),
                frames: 1234
            }
        );
        assert_eq!(done.duration(), Duration::from_millis(24_680));

        let (spec, got) = read_back(&path);
        assert_eq!(spec, wav_spec());
        assert_eq!(got.len(), 1234 * 160, "N frames → N·160 sample frames");
        assert_eq!(got, expect);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dropped_sink_leaves_a_valid_wav() {
        let dir = temp_dir("drop");
        let path = dir.join("dropped.wav");
        {
            let mut sink = WavSink::create(&path).unwrap();
            let mut rec = Recorder::with_block_frames(3);
            for k in 0..10 {
                let f = frame(k);
                if let Some(b) = rec.push_frame(Some(&f), None) {
                    sink.write_block(&b).unwrap();
                }
            }
            sink.write_block(&rec.finish().unwrap()).unwrap();
            // No finalize: the sink goes out of scope (early return, panic unwinding…).
        }
        let (_, got) = read_back(&path);
        assert_eq!(got.len(), 10 * 160);
        assert_eq!(got[9 * 160 + 3], (frame(9)[3], 0));

        // Unwinding from a panic on the writer thread closes it too.
        let path2 = dir.join("panicked.wav");
        let p2 = path2.clone();
        let joined = std::thread::spawn(move || {
            let mut sink = WavSink::create(&p2).unwrap();
            let mut rec = Recorder::with_block_frames(2);
            let f = frame(1);
            let _ = rec.push_frame(Some(&f), Some(&f));
            sink.write_block(&rec.push_frame(Some(&f), Some(&f)).unwrap())
                .unwrap();
            panic!("writer thread dies (expected by this test)");
        })
        .join();
        assert!(joined.is_err());
        assert_eq!(read_back(&path2).1.len(), 2 * 160);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn header_is_refreshed_so_a_crash_loses_little() {
        let dir = temp_dir("crash");
        let path = dir.join("crashed.wav");
        let mut sink = WavSink::create(&path).unwrap();
        let mut rec = Recorder::new();
        for k in 0..(HEADER_REFRESH_FRAMES + 60) {
            let f = frame(k as i16);
            if let Some(b) = rec.push_frame(Some(&f), Some(&f)) {
                sink.write_block(&b).unwrap();
            }
        }
        // The process dies: no Drop, no finalize.
        std::mem::forget(sink);
        let (_, got) = read_back(&path);
        assert_eq!(got.len() as u64, HEADER_REFRESH_FRAMES * 160);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A "disk" that takes `limit` bytes and then fails, like a full file system; the header
    /// (below `limit`) can still be rewritten. The bytes stay inspectable after the sink is gone.
    #[derive(Clone)]
    struct FullDisk {
        bytes: std::rc::Rc<std::cell::RefCell<Cursor<Vec<u8>>>>,
        limit: u64,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut c = self.bytes.borrow_mut();
            let room = self.limit.saturating_sub(c.position()) as usize;
            if room == 0 {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            c.write(&buf[..buf.len().min(room)])
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Seek for FullDisk {
        fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
            self.bytes.borrow_mut().seek(pos)
        }
    }

    #[test]
    fn write_error_leaves_a_valid_wav_of_the_whole_blocks() {
        // Room for the 44-byte header and 2.5 blocks of 4 frames.
        let block_bytes = 4 * FRAME_BYTES;
        let disk = FullDisk {
            bytes: Default::default(),
            limit: 44 + 2 * block_bytes + block_bytes / 2,
        };
        let mut sink = WavSink::from_writer("full.wav", disk.clone()).unwrap();
        let mut rec = Recorder::with_block_frames(4);
        let mut result = Ok(());
        for k in 0..20 {
            let f = frame(k);
            if let Some(b) = rec.push_frame(Some(&f), Some(&f)) {
                result = sink.write_block(&b);
                if result.is_err() {
                    break;
                }
            }
        }
        let err = result.unwrap_err();
        assert!(
            matches!(err, RecordError::Write { frames: 8, .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("full.wav") && msg.contains("disk full"),
            "{msg}"
        );
        assert!(!sink.is_open());
        let next = rec.push_frame(None, None);
        assert!(next.is_none());
        assert!(matches!(
            sink.write_block(&rec.finish().unwrap()),
            Err(RecordError::Closed { frames: 8, .. })
        ));
        assert!(matches!(sink.finalize(), Err(RecordError::Closed { .. })));

        // The file was finalised when the write failed: a valid WAV of the two whole blocks,
        // the torn third one left outside the data chunk.
        let bytes = disk.bytes.borrow().get_ref().clone();
        let mut r = hound::WavReader::new(Cursor::new(bytes)).unwrap();
        assert_eq!(r.duration(), 8 * 160);
        let s: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(s[2 * (7 * 160 + 5)], frame(7)[5]);
    }

    #[test]
    fn gaps_are_filled_and_overlaps_refused() {
        let mut sink = WavSink::from_writer("gap.wav", Cursor::new(Vec::new())).unwrap();
        let mut rec = Recorder::with_block_frames(2);
        let f = frame(3);
        let mut blocks = Vec::new();
        for _ in 0..6 {
            blocks.extend(rec.push_frame(Some(&f), Some(&f)));
        }
        sink.write_block(&blocks[0]).unwrap();
        // blocks[1] lost between threads.
        sink.write_block(&blocks[2]).unwrap();
        assert_eq!(
            sink.frames(),
            6,
            "the lost block became 2 frames of silence"
        );
        let err = sink.write_block(&blocks[1]).unwrap_err();
        assert!(
            matches!(
                err,
                RecordError::OutOfOrder {
                    expected: 6,
                    got: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(sink.finalize().unwrap().frames, 6);
    }

    #[test]
    fn path_errors_are_clear() {
        let dir = temp_dir("paths");
        std::fs::create_dir_all(&dir).unwrap();
        // Parent is a regular file.
        let file = dir.join("plain");
        std::fs::write(&file, b"x").unwrap();
        let err = WavSink::create(file.join("sub/call.wav")).unwrap_err();
        assert!(matches!(err, RecordError::CreateDir { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("plain/sub/call.wav") && msg.contains("cannot create directory"),
            "{msg}"
        );
        // Path is a directory.
        let err = WavSink::create_or_replace(&dir).unwrap_err();
        assert!(matches!(err, RecordError::Create { .. }), "{err:?}");
        // An existing recording is not overwritten, unless asked.
        let path = dir.join("call.wav");
        WavSink::create(&path).unwrap().finalize().unwrap();
        let err = WavSink::create(&path).unwrap_err();
        match &err {
            RecordError::Create { source, .. } => {
                assert_eq!(source.kind(), io::ErrorKind::AlreadyExists)
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("call.wav"), "{err}");
        let mut sink = WavSink::create_or_replace(&path).unwrap();
        let mut rec = Recorder::with_block_frames(1);
        sink.write_block(&rec.push_frame(None, None).unwrap())
            .unwrap();
        assert_eq!(sink.finalize().unwrap().frames, 1);
        assert_eq!(read_back(&path).1, vec![(0, 0); 160]);
        // An empty recording is a valid, empty WAV.
        let empty = dir.join("empty.wav");
        WavSink::create(&empty).unwrap().finalize().unwrap();
        assert!(read_back(&empty).1.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn recorder_is_small_until_it_records() {
        assert!(size_of::<Recorder>() <= 48, "{}", size_of::<Recorder>());
        let mut rec = Recorder::new();
        let f = frame(1);
        let _ = rec.push_frame(Some(&f), Some(&f));
        // One pending block: 25 frames × 160 × 2 channels × 2 bytes.
        assert_eq!(rec.block.capacity() * 2, 16_000);
    }
}
