//! Callee simulator: the other end of the dialer's calls, in simulated time.
//!
//! What this crate owns:
//! - [`Uas`]: a sans-IO SIP user-agent server (the "callee crowd") that plays one [`Persona`]
//!   per call — answer, busy, no answer, reject, not found, server error, early media, digest
//!   challenges (verified with its own MD5), forking, session timers, the CANCEL/200 race and
//!   re-INVITE — and keeps a [`CallRecord`] of what it saw for assertions.
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

pub mod digest;
pub mod harness;
pub mod net;
pub mod persona;
pub mod uas;

pub use harness::{Pair, PairConfig, UAC_ADDR, UAS_ADDR};
pub use net::{Datagram, NetConfig, NetStats, Network};
pub use persona::{Expected, Persona, PersonaMix};
pub use uas::{BadAuth, CallRecord, DialogRecord, Uas, UasConfig, UasStats, UasTransmit};
