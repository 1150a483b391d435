//! Sans-IO media for the dialer: everything that happens to audio in a call, without sockets,
//! clocks or threads.
//!
//! - [`g711`]: µ-law / A-law, table-driven.
//!
//! Audio inside the crate is 8 kHz, 16-bit, mono, in 20 ms frames of [`FRAME_SAMPLES`] samples.
#![forbid(unsafe_code)]

pub mod g711;

/// Sample rate of every signal in this crate.
pub const SAMPLE_RATE: u32 = 8000;
/// One packetisation interval.
pub const FRAME_MS: u32 = 20;
/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

pub use g711::Codec;
