//! The tokio driver of the dialer: it owns sockets, the clock and tasks; the protocol logic
//! lives in the sans-IO `sip` crate.
//!
//! - [`transport`]: UDP and TCP SIP sockets on one port, TCP framed by Content-Length, one
//!   connection per peer reused, everything funnelled into one channel.
//! - [`driver`]: [`driver::SipDriver`] runs one `sip::Endpoint` (all calls) over a
//!   [`transport::SipTransport`]: one loop, no task per message or per call, one timer (the
//!   endpoint's earliest deadline).
//! - [`trunk`]: trunk configuration (host, port, transport, credentials, registration, caller
//!   id, channel cap, calls per second) and the pacing that enforces it.
//!
//! # Run loop
//! ```text
//! loop {
//!     select! { msg = transport.recv() => endpoint.handle_datagram(now, ..),
//!               _ = sleep_until(endpoint.poll_timeout()) => endpoint.handle_timeout(now) }
//!     while let Some(out) = endpoint.poll_output() { transmit or hand the event up }
//! }
//! ```

pub mod asr;
pub mod campaign;
pub mod clock;
pub mod dialogue;
pub mod driver;
pub mod media;
pub mod node;
pub mod schedule;
pub mod settings;
#[cfg(test)]
mod testutil;
pub mod transport;
pub mod trunk;
pub mod udp;
