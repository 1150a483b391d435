//! Dialogue scripts, answer classification and the speech-recognition client types.
//!
//! Sans-IO like `sip` and `media`: nothing here reads the clock, opens a socket or spawns a task.
//! The engine feeds a running script its inputs (prompt finished, digit, speech, transcript,
//! timeouts) with `now` and drains its outputs (play, listen, hang up, transfer, result).

pub mod classify;
pub mod lang;
pub mod script;

pub use lang::{CategorySpec, Classify, Lang, Match};
pub use script::{Dialogue, DialogueResult, LoadOptions, Script, ScriptCache, ScriptErrors};
