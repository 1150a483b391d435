//! A script on a live call: the glue between the sans-IO [`Dialogue`], the call's media
//! (prompts, digits, VAD, utterance capture) and the speech-recognition service.
//!
//! The call loop (`dialer call`, `dialer bench`, the campaign runner) feeds it media events and
//! its own timeouts, and carries out what it returns (hang up, transfer). Recognition runs in a task per utterance so the loop never waits on
//! the network; its answer comes back through a channel as [`AsrDone`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::asr::{AsrClient, AsrError, Transcript};
use media::Prompt;
use media::session::{CallMedia, MediaEvent};
use script::classify::Classifier;
use script::script::{Input, Output};
use script::{Classify, Dialogue, DialogueResult, Lang, Script};
use tokio::sync::mpsc;

/// Everything a scripted call needs, loaded and checked before dialling.
#[derive(Debug)]
pub struct ScriptPlan {
    pub script: Arc<Script>,
    pub classifier: Arc<dyn Classify>,
    pub lang: Lang,
    /// Every prompt of the script's language, decoded and encoded once.
    pub prompts: HashMap<PathBuf, Arc<Prompt>>,
    pub asr: Option<AsrClient>,
    /// What the script's `transfer target = "manager"` dials.
    pub manager_uri: Option<String>,
    /// The language asked for (None: the script's default), for reloads.
    requested_lang: Option<Lang>,
    /// The script file's modification time and length when loaded (see [`ScriptPlan::reload`]).
    stamp: Option<(std::time::SystemTime, u64)>,
}

fn file_stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl ScriptPlan {
    /// Load the script, its prompts (for `lang`, or the script's default) and the classifier.
    pub fn load(
        path: &Path,
        lang: Option<Lang>,
        asr: Option<AsrClient>,
        manager_uri: Option<String>,
    ) -> Result<ScriptPlan, String> {
        let stamp = file_stamp(path);
        let script = Script::load(path).map_err(|e| format!("invalid --script:\n{e}"))?;
        let resolved = script.resolve_language(lang.unwrap_or(script.default_language()));
        let mut prompts = HashMap::new();
        for (id, l, file) in script.prompt_files() {
            if l != resolved || prompts.contains_key(file) {
                continue;
            }
            let p = Prompt::load(file)
                .map_err(|e| format!("invalid --script: prompt {id} ({}): {e}", file.display()))?;
            prompts.insert(file.to_path_buf(), Arc::new(p));
        }
        let classifier: Arc<dyn Classify> = Arc::new(Classifier::new(script.categories()));
        Ok(ScriptPlan {
            script: Arc::new(script),
            classifier,
            lang: resolved,
            prompts,
            asr,
            manager_uri,
            requested_lang: lang,
            stamp,
        })
    }

    /// The script file changed on disk (an operator edited it): the new version, loaded and
    /// checked, for new calls — calls in progress keep the version they started with, and
    /// their results record it. `Ok(None)` when the file is unchanged (same modification time
    /// and length, or same content hash); `Err` when the new file is invalid (the caller keeps
    /// the old version).
    pub fn reload(&self) -> Result<Option<ScriptPlan>, String> {
        let path = self.script.path().to_path_buf();
        let stamp = file_stamp(&path);
        if stamp.is_some() && stamp == self.stamp {
            return Ok(None);
        }
        let new = ScriptPlan::load(
            &path,
            self.requested_lang,
            self.asr.clone(),
            self.manager_uri.clone(),
        )?;
        if new.script.version_id() == self.script.version_id() {
            return Ok(None);
        }
        Ok(Some(new))
    }

    /// Phrase hints for the recogniser: the script's phrases in the call's language.
    fn hints(&self) -> Vec<String> {
        let mut hints: Vec<String> = Vec::new();
        let mut chars = 0;
        for p in self.script.phrases(self.lang) {
            // The service takes at most 200 hints and 4,000 characters.
            if hints.len() == 200 || chars + p.len() > 4000 {
                break;
            }
            chars += p.len();
            hints.push(p.to_owned());
        }
        hints
    }
}

/// A recognition finished (or failed) for utterance `turn`.
#[derive(Debug)]
pub struct AsrDone {
    /// The conversation's key (given at its start): which call this is for.
    pub key: u64,
    pub turn: u32,
    pub result: Result<Transcript, AsrError>,
}

/// What the call loop must do after feeding the conversation.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Actions {
    pub hangup: bool,
    pub transfer: Option<String>,
}

/// One running script on one call.
#[derive(Debug)]
pub struct Conversation {
    plan: Arc<ScriptPlan>,
    dialogue: Dialogue,
    listening_speech: bool,
    turn: u32,
    asr_tx: mpsc::UnboundedSender<AsrDone>,
    pub asr_latencies: Vec<Duration>,
    pub asr_failures: u32,
    /// Where the last transfer went (for the result).
    pub transferred_to: Option<String>,
    call_tag: String,
    key: u64,
}

impl Conversation {
    /// Start the script at the answer. Without a recogniser the dialogue is told at once, so
    /// it asks for keys only.
    pub fn start(
        plan: Arc<ScriptPlan>,
        now: Instant,
        asr_tx: mpsc::UnboundedSender<AsrDone>,
        key: u64,
        call_tag: String,
        media: Option<&mut CallMedia>,
    ) -> (Conversation, Actions) {
        let mut dialogue = Dialogue::new(
            Arc::clone(&plan.script),
            Arc::clone(&plan.classifier),
            plan.lang,
            now,
        );
        if plan.asr.is_none() {
            dialogue.handle_input(now, Input::AsrUnavailable);
        }
        let mut c = Conversation {
            plan,
            dialogue,
            listening_speech: false,
            turn: 0,
            asr_tx,
            asr_latencies: Vec::new(),
            asr_failures: 0,
            transferred_to: None,
            call_tag,
            key,
        };
        let actions = c.drain(now, media);
        (c, actions)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.dialogue.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Instant, media: Option<&mut CallMedia>) -> Actions {
        self.dialogue.handle_timeout(now);
        self.drain(now, media)
    }

    pub fn result(&self) -> Option<&DialogueResult> {
        self.dialogue.result()
    }

    pub fn is_finished(&self) -> bool {
        self.dialogue.is_finished()
    }

    /// A media event of the call.
    pub fn on_media_event(
        &mut self,
        now: Instant,
        ev: &MediaEvent,
        media: Option<&mut CallMedia>,
    ) -> Actions {
        let input = match ev {
            MediaEvent::Digit { digit, .. } => Input::Digit(*digit),
            MediaEvent::PromptFinished => Input::PromptFinished,
            MediaEvent::SpeechStart if self.listening_speech => Input::SpeechStarted,
            MediaEvent::SpeechEnd { .. } if self.listening_speech => Input::SpeechEnded,
            MediaEvent::Utterance { pcm, .. } if self.listening_speech => {
                self.recognize(pcm);
                return Actions::default();
            }
            _ => return Actions::default(),
        };
        self.dialogue.handle_input(now, input);
        self.drain(now, media)
    }

    /// The recogniser answered.
    pub fn on_asr(
        &mut self,
        now: Instant,
        done: AsrDone,
        media: Option<&mut CallMedia>,
    ) -> Actions {
        if done.turn != self.turn {
            // An answer to an utterance the dialogue no longer waits for.
            return Actions::default();
        }
        let input = match done.result {
            Ok(t) => {
                self.asr_latencies.push(t.latency);
                tracing::debug!(
                    latency_ms = t.latency.as_millis() as u64,
                    confidence = t.confidence,
                    "transcript"
                );
                Input::Transcript {
                    text: t.text,
                    confidence: t.confidence,
                }
            }
            Err(e) => {
                self.asr_failures += 1;
                tracing::warn!(error = %e, "speech recognition failed");
                if e.is_unavailable() || self.asr_failures >= 2 {
                    Input::AsrUnavailable
                } else {
                    // A one-off failure (busy, no result): an empty transcript is a no-match.
                    Input::Transcript {
                        text: String::new(),
                        confidence: 0.0,
                    }
                }
            }
        };
        self.dialogue.handle_input(now, input);
        self.drain(now, media)
    }

    /// The caller hung up.
    pub fn on_hangup(&mut self, now: Instant) {
        self.dialogue.handle_input(now, Input::CallerHungUp);
        let _ = self.drain(now, None);
    }

    fn recognize(&mut self, pcm: &[i16]) {
        let Some(asr) = self.plan.asr.clone() else {
            return;
        };
        self.turn += 1;
        let turn = self.turn;
        let key = self.key;
        let tx = self.asr_tx.clone();
        let hints = self.plan.hints();
        let lang = self.plan.lang;
        let id = format!("{}/{turn}", self.call_tag);
        let pcm = pcm.to_vec();
        tokio::spawn(async move {
            let result = asr.recognize(&pcm, lang, hints, id).await;
            let _ = tx.send(AsrDone { key, turn, result });
        });
    }

    /// Carry out the dialogue's outputs on the media; return what the call loop must do.
    fn drain(&mut self, _now: Instant, mut media: Option<&mut CallMedia>) -> Actions {
        let mut actions = Actions::default();
        while let Some(out) = self.dialogue.poll_output() {
            match out {
                Output::Play { prompt, path, .. } => {
                    match (self.plan.prompts.get(&path), media.as_deref_mut()) {
                        (Some(p), Some(m)) => m.play(Arc::clone(p)),
                        (None, _) => tracing::warn!(prompt = %prompt, "prompt not loaded"),
                        (_, None) => {}
                    }
                }
                Output::StopPlayback => {
                    if let Some(m) = media.as_deref_mut() {
                        m.stop_prompt();
                    }
                }
                Output::Listen { speech, .. } => {
                    self.listening_speech = speech && self.plan.asr.is_some();
                    if let Some(m) = media.as_deref_mut() {
                        if self.listening_speech {
                            m.start_capture(self.plan.script.max_speech());
                        } else {
                            m.stop_capture();
                        }
                    }
                }
                Output::StopListening => {
                    self.listening_speech = false;
                    // Answers still on their way are for a question no longer asked.
                    self.turn += 1;
                    if let Some(m) = media.as_deref_mut() {
                        m.stop_capture();
                    }
                }
                Output::Transfer { target } => {
                    let uri = if target == "manager" {
                        self.plan.manager_uri.clone()
                    } else {
                        Some(target)
                    };
                    match uri {
                        Some(u) => {
                            self.transferred_to = Some(u.clone());
                            actions.transfer = Some(u);
                        }
                        None => {
                            tracing::warn!(
                                "transfer to the manager asked, but no --manager-uri: hanging up"
                            );
                            actions.hangup = true;
                        }
                    }
                }
                Output::Hangup => actions.hangup = true,
                Output::Finished(r) => {
                    tracing::info!(
                        category = r.category.as_deref().unwrap_or("-"),
                        script_version = %r.script_version,
                        "dialogue finished"
                    );
                    if actions.transfer.is_none() {
                        actions.hangup = true;
                    }
                }
            }
        }
        actions
    }
}

/// Carry out what a call's script asked of the call: REFER (BYE if refused) or BYE.
pub async fn apply(driver: &mut crate::driver::SipDriver, h: sip::CallHandle, a: Actions) {
    if let Some(target) = a.transfer {
        if driver.refer(h, &target).await.is_err() {
            let _ = driver.hangup(h).await;
        }
    } else if a.hangup {
        let _ = driver.hangup(h).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dest = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &dest);
            } else {
                std::fs::copy(e.path(), dest).unwrap();
            }
        }
    }

    #[test]
    fn an_edited_script_is_picked_up_and_a_broken_edit_is_refused() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let dir = std::env::temp_dir().join(format!("dialer-reload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(&repo.join("scripts"), &dir.join("scripts"));
        copy_dir(&repo.join("prompts"), &dir.join("prompts"));
        let path = dir.join("scripts/consent.toml");
        let plan = ScriptPlan::load(&path, Some(Lang::En), None, None).unwrap();
        assert_eq!(plan.lang, Lang::En);
        assert!(plan.reload().unwrap().is_none(), "unchanged file");

        let text = std::fs::read_to_string(&path).unwrap();
        let old_version = plan.script.version_id().to_owned();
        let edited = text.replacen("version = \"", "version = \"9", 1);
        assert_ne!(edited, text);
        std::fs::write(&path, &edited).unwrap();
        let new = plan.reload().unwrap().expect("the edit is seen");
        assert_ne!(new.script.version_id(), old_version);
        assert!(
            new.script.version_id().starts_with('9'),
            "{}",
            new.script.version_id()
        );
        assert_eq!(new.lang, Lang::En, "the language asked for is kept");
        // The running version is untouched.
        assert_eq!(plan.script.version_id(), old_version);

        std::fs::write(
            &path,
            format!("{edited}\n[nodes.broken]\ntype = \"nope\"\n"),
        )
        .unwrap();
        let err = new.reload().unwrap_err();
        assert!(err.contains("consent.toml"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
