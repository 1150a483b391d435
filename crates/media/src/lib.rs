//! Sans-IO media for the dialer: everything that happens to audio in a call, without sockets,
//! clocks or threads.
//!
//! - [`g711`]: µ-law / A-law, table-driven.
//! - [`resample`]: polyphase Kaiser-windowed-sinc sample-rate conversion (any rate → 8 kHz),
//!   used once per prompt at load time.
//! - [`prompt`]: WAV prompts decoded, resampled and G.711-encoded once, shared as
//!   `Arc<Prompt>`; per-call [`Playback`] (16 bytes) gives one frame per media-clock tick;
//!   [`PromptCache`] loads each file once.
//! - [`stream`]: per-call RTP: [`RtpSender`] writes packets into caller buffers,
//!   [`RtpReceiver`] validates, keeps RFC 3550 statistics and a fixed 8-frame playout ring.
//! - [`rtcp`]: compound SR/RR + SDES CNAME reports every 5 s, parsing, RTT ([`RtcpSession`]).
//! - [`record`]: stereo call recording (left callee, right bot). [`Recorder`] interleaves
//!   frames into blocks on the media path; [`WavSink`] writes them with `hound` and is the
//!   crate's one piece of blocking file IO, meant for the engine's writer thread.
//! - [`vad`]: voice activity detection per 20 ms frame (energy over an adaptive noise floor,
//!   tone rejection), speech start/end events with a per-instance hang-over.
//! - [`amd`]: answering-machine detection after answer (Asterisk `AMD()` rules and defaults;
//!   human / machine / not sure with a cause) and the voicemail-beep detector.
//! - [`dtmf`]: RFC 4733 telephone-event receive ([`dtmf::DtmfReceiver`]: each key press once,
//!   with lost starts/ends, redundant ends, reordering, long segmented events) and send
//!   ([`dtmf::DtmfSender`]), and the per-call [`dtmf::DigitCollector`] that merges RFC 4733,
//!   in-band and SIP INFO digits into one stream.
//! - [`goertzel`]: in-band DTMF detector (sliding 102-sample Goertzel windows, Q.24 level, twist,
//!   duration and gap rules, speech/music rejection; ~22 µs per second of audio) and the DTMF
//!   tone generator.
//!
//! - [`session`]: [`session::CallMedia`], one call's media in one object (RTP both ways,
//!   DTMF from every source, VAD, AMD, playback, DTMF sending, recording, symmetric-RTP
//!   latching, RTP timeout, hold), driven by the engine's single media clock.
//!
//! Audio inside the crate is 8 kHz, 16-bit, mono, in 20 ms frames of [`FRAME_SAMPLES`] samples.
#![forbid(unsafe_code)]

pub mod amd;
pub mod dtmf;
pub mod g711;
pub mod goertzel;
pub mod prompt;
pub mod record;
pub mod resample;
pub mod rtcp;
pub mod session;
pub mod stream;
pub mod synth;
pub mod vad;

/// Sample rate of every signal in this crate.
pub const SAMPLE_RATE: u32 = 8000;
/// One packetisation interval.
pub const FRAME_MS: u32 = 20;
/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

pub use g711::Codec;
pub use prompt::{Playback, Prompt, PromptCache, PromptError};
pub use record::{Block, RecordError, Recorder, WavSink};
pub use rtcp::{RtcpError, RtcpScheduler, RtcpSession};
pub use stream::{Playout, Received, RtpError, RtpReceiver, RtpSender};
