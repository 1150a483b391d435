//! Callee simulator: the other end of the dialer's calls, in simulated time (and, driven by
//! `dialer simulate`, over real sockets).
//!
//! What this crate owns:
//! - [`Uas`]: a sans-IO SIP user-agent server (the "callee crowd") that plays one [`Persona`]
//!   per call — answer, busy, no answer, reject, not found, server error, early media, digest
//!   challenges (verified with its own MD5), forking, session timers, the CANCEL/200 race and
//!   re-INVITE — and keeps a [`CallRecord`] of what it saw for assertions.
//!   In driven mode ([`UasConfig::driven`]) a driver with real sockets (`dialer simulate`)
//!   picks each call's persona and RTP address ([`UasEvent`], [`Uas::accept`], [`Uas::hangup`]),
//!   over UDP or TCP.
//! - [`callee`]: callees with a voice: a [`Profile`] (a SIP persona plus a media [`Script`]
//!   rendered once into a shared prompt), the weighted [`Crowd`] to draw them from (with a
//!   built-in mix), and the per-call [`Callee`] state machine that says when to play, key
//!   digits (RFC 4733 or in-band) and hang up.
//! - [`config`]: personas files (TOML, `config/personas.toml` is the commented reference),
//!   checked with errors that name file, line, persona and field.
//! - [`voice`]: synthetic "алло", voicemail greeting, phrase, beep and DTMF tones, so the
//!   built-in mix needs no WAV file.
//! - [`Network`]: a seeded datagram network with delay, jitter, loss and a bounded queue.
//! - [`Pair`]: our [`sip::Endpoint`] (the UAC) and a [`Uas`] joined by a [`Network`], driven in
//!   simulated time so thousands of minute-long calls run in seconds.
//!
//! Neither the UAS nor the network reads a clock or a global RNG: identifiers, nonces, losses and
//! jitter come from seeds, so a run replays exactly.
//!
//! # Run loop
//! [`Pair::step`] is the whole driver:
//!
//! ```text
//! loop {
//!     drain endpoint.poll_output() and uas.poll_output() onto the network
//!     now = min(network.next_delivery(), endpoint.poll_timeout(), uas.poll_timeout())
//!     deliver every datagram due at `now` (endpoint.handle_datagram / uas.handle_datagram)
//!     endpoint.handle_timeout(now); uas.handle_timeout(now)
//! }
//! ```
#![forbid(unsafe_code)]

pub mod callee;
pub mod config;
pub mod digest;
pub mod harness;
pub mod net;
pub mod persona;
pub mod uas;
pub mod voice;

pub use callee::{Action, Callee, Crowd, DtmfMode, Kind, Profile, Script};
pub use config::ConfigError;
pub use harness::{Pair, PairConfig, UAC_ADDR, UAS_ADDR};
pub use net::{Datagram, NetConfig, NetStats, Network};
pub use persona::{Expected, Persona, PersonaMix};
pub use uas::{
    BadAuth, CallRecord, DialogRecord, EndReason, Uas, UasCallId, UasConfig, UasEvent, UasStats,
    UasTransmit,
};
