//! Dialogue scripts: the TOML format, its validating loader, and the sans-IO runtime that runs
//! one script on one call.
//!
//! - [`Script::load`] reads and validates a file (`config/scripts/*.toml`; the format is
//!   described in `config/scripts/README.md`). Every problem is reported at once, each naming
//!   file, line, column and field path ([`ScriptErrors`], one per line when displayed).
//! - [`ScriptCache`] hands out `Arc<Script>` and reloads a file when it changes: running calls
//!   keep their version, new calls get the new one, a broken edit keeps the old one in service.
//!   [`Script::version_id`] (operator's version + hash of the bytes) goes into every result.
//! - [`Dialogue`] runs one script on one call.
//!
//! # Run loop
//!
//! `Dialogue` is sans-IO, like the SIP and media state machines: it never reads the clock,
//! touches a socket or plays audio itself. The engine drives it:
//!
//! ```
//! # use std::sync::Arc;
//! # use std::time::{Duration, Instant};
//! # use script::{Classify, Lang, Match};
//! # use script::script::{Dialogue, Input, Output, Script, LoadOptions};
//! # #[derive(Debug)] struct NoSpeech;
//! # impl Classify for NoSpeech { fn classify(&self, _: Lang, _: &str) -> Option<Match> { None } }
//! # let src = r#"
//! # [script]
//! # name = "doc"
//! # version = "1"
//! # start = "hello"
//! # [prompts.hello]
//! # ru = "hello.wav"
//! # [nodes.hello]
//! # type = "hangup"
//! # prompt = "hello"
//! # "#;
//! # let script = Script::parse(src, "doc.toml".as_ref(), &LoadOptions::without_prompt_files()).unwrap();
//! let mut now = Instant::now(); // the engine's clock; tests advance it by hand
//! let mut d = Dialogue::new(Arc::new(script), Arc::new(NoSpeech), Lang::Ru, now);
//! loop {
//!     // 1. After every input or timeout, drain the outputs.
//!     while let Some(out) = d.poll_output() {
//!         match out {
//!             Output::Play { .. } => { /* start streaming the prompt */ }
//!             Output::Finished(result) => { /* store the result */ }
//!             _ => { /* stop playback, listen, transfer, hang up */ }
//!         }
//!     }
//!     // 2. Sleep until the next timer or the next event, whichever comes first.
//!     let Some(deadline) = d.poll_timeout() else { break }; // finished
//!     // ... wait for a media/ASR event or `deadline` ...
//! #   now += Duration::from_millis(500);
//!     if now >= deadline {
//!         d.handle_timeout(now);
//!     } else {
//!         d.handle_input(now, Input::PromptFinished); // whatever happened
//!     }
//! }
//! assert!(d.result().is_some());
//! ```

mod cache;
mod diag;
mod format;
mod load;
mod model;
mod runtime;

pub use cache::ScriptCache;
pub use diag::{Diagnostic, DiagnosticKind, ScriptErrors};
pub use load::LoadOptions;
pub use model::{NO_INPUT, Script, UNCLASSIFIED};
pub use runtime::{
    AnswerSource, DTMF_LIMIT, Dialogue, DialogueResult, EndReason, Input, Output, PATH_LIMIT,
    TEXT_LIMIT,
};
