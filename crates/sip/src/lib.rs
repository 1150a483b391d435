//! Sans-IO SIP for an outbound dialer: messages, transactions, dialogs, digest auth, SDP.
//!
//! This crate owns the SIP protocol logic and nothing else: no sockets, no clock reads, no
//! global RNG. Time is passed in as `now: Instant`; every random identifier comes from an
//! [`IdGen`] seeded by the caller.
//!
//! # Run loop
//! The driver (the `engine` crate, or a test harness in simulated time) owns the sockets and
//! the clock and drives a state machine like this:
//!
//! ```text
//! loop {
//!     // 1. feed whatever happened
//!     endpoint.handle_datagram(now, transport, peer, &bytes);   // or handle_timeout(now)
//!     // 2. drain everything it wants done
//!     while let Some(out) = endpoint.poll_output() {
//!         match out { Output::Transmit(t) => send(t), Output::Event(e) => react(e) }
//!     }
//!     // 3. sleep until the next deadline or the next packet
//!     sleep_until(endpoint.poll_timeout());
//! }
//! ```
#![forbid(unsafe_code)]

pub mod auth;
pub mod call;
pub mod dialog;
pub mod endpoint;
pub mod framing;
pub mod message;
pub mod outcome;
pub mod register;
pub mod rng;
pub mod sdp;
pub mod timers;
pub mod transaction;
pub mod uri;

pub use call::{Call, CallConfig, CallError, CallEvent, CallReport, Credentials, Output, Transmit};
pub use dialog::{Dest, Dialog, Transport};
pub use endpoint::{CallHandle, Endpoint, EndpointConfig, EndpointOutput, EndpointStats};
pub use message::{
    CSeq, Header, HeaderName, Headers, Message, Method, NameAddr, Params, ParseError, Request,
    Response, Via,
};
pub use outcome::{HangupBy, Outcome};
pub use register::{
    Agent, AgentEvent, AgentHandle, AgentOutput, Backoff, KeepAlive, KeepAliveConfig, Registration,
    RegistrationConfig, RegistrationState, TrunkState,
};
pub use rng::IdGen;
pub use transaction::TimerConfig;
pub use uri::{Uri, UriError};

/// The extension header a dialer tags each INVITE with (`<campaign>-<attempt>`), so the far
/// end's log can be matched against the store (no attempt dialled twice, none lost).
pub const ATTEMPT_HEADER: &str = "X-Dialer-Attempt";
