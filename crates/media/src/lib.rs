//! Sans-IO media for the dialer: everything that happens to audio in a call, without sockets,
//! clocks or threads.
//!
//! - [`g711`]: µ-law / A-law, table-driven.
//! - [`resample`]: polyphase Kaiser-windowed-sinc sample-rate conversion (any rate → 8 kHz),
//!   used once per prompt at load time.
//! - [`prompt`]: WAV prompts decoded, resampled and G.711-encoded once, shared as
//!   `Arc<Prompt>`; per-call [`Playback`] (16 bytes) gives one frame per media-clock tick;
//!   [`PromptCache`] loads each file once.
//! - [`record`]: stereo call recording (left callee, right bot). [`Recorder`] interleaves
//!   frames into blocks on the media path; [`WavSink`] writes them with `hound` and is the
//!   crate's one piece of blocking file IO, meant for the engine's writer thread.
//!
//! Audio inside the crate is 8 kHz, 16-bit, mono, in 20 ms frames of [`FRAME_SAMPLES`] samples.
#![forbid(unsafe_code)]

pub mod g711;
pub mod prompt;
pub mod record;
pub mod resample;

/// Sample rate of every signal in this crate.
pub const SAMPLE_RATE: u32 = 8000;
/// One packetisation interval.
pub const FRAME_MS: u32 = 20;
/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

pub use g711::Codec;
pub use prompt::{Playback, Prompt, PromptCache, PromptError};
pub use record::{RecordError, Recorder, WavSink};
