//! [`Dialogue`]: one script running on one call, sans-IO.
//!
//! The engine owns the call's media and clock. It feeds the dialogue what happened
//! ([`Input`]: a prompt finished, a key, speech started or ended, a transcript, the recogniser
//! went away, the caller hung up) with the current `now`, then drains [`Output`]s (play this
//! prompt, stop playback, listen, transfer, hang up, finished) and sleeps until
//! [`Dialogue::poll_timeout`], when it calls [`Dialogue::handle_timeout`]. The dialogue never
//! reads the clock, never blocks and never panics, whatever order inputs arrive in.
//!
//! Contract with the engine:
//! - Report digits at all times (global keys act during any prompt). Speech events and
//!   transcripts matter only between `Listen { speech: true, .. }` and `StopListening`;
//!   outside that window they are ignored.
//! - Report `PromptFinished` once per `Play` that ran to its end, never for a prompt that was
//!   stopped (`StopPlayback`) or replaced by the next `Play`.
//! - `Transfer` and `Hangup` end the dialogue: `Finished` follows at once. A failed transfer is
//!   the engine's to handle (the result already says the caller asked for it).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, trace};

use crate::lang::{Classify, Lang};

use super::model::{CatId, Gather, NO_INPUT, NodeId, NodeKind, PromptId, Script, UNCLASSIFIED};

/// How many node ids [`DialogueResult::path`] keeps (the count goes on past it).
pub const PATH_LIMIT: usize = 64;
/// How many digits [`DialogueResult::dtmf`] keeps.
pub const DTMF_LIMIT: usize = 64;
/// How many characters of a transcript or follow-up answer are kept.
pub const TEXT_LIMIT: usize = 2000;

/// What happened on the call, as the engine reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The prompt of the last `Play` reached its end.
    PromptFinished,
    /// A DTMF key (`0`–`9`, `*`, `#`, `A`–`D`), RFC 4733 or in-band.
    Digit(char),
    /// Voice activity began (VAD).
    SpeechStarted,
    /// Voice activity ended; a transcript should follow.
    SpeechEnded,
    /// The recogniser's final text for the last utterance, with its confidence (0..=1).
    Transcript { text: String, confidence: f32 },
    /// The speech recogniser cannot be reached: the rest of the call is DTMF-only.
    AsrUnavailable,
    /// The caller hung up (BYE received).
    CallerHungUp,
}

/// What the engine should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Play a prompt (replacing any prompt still playing). With `barge_in`, the caller's speech
    /// or a key may cut it short; the dialogue then sends `StopPlayback`.
    Play {
        prompt: String,
        path: PathBuf,
        barge_in: bool,
    },
    /// Stop the prompt that is playing.
    StopPlayback,
    /// Capture answers: run VAD and recognition if `speech`, report digits as answers if
    /// `dtmf`. Sent again when the mode changes (e.g. speech off when the recogniser fails).
    Listen { speech: bool, dtmf: bool },
    /// Answers are no longer wanted (the recognition stream can close).
    StopListening,
    /// Transfer the call (SIP REFER). `"manager"` means the campaign's manager queue.
    Transfer { target: String },
    /// Hang up (BYE).
    Hangup,
    /// The dialogue is over; the same result stays available from [`Dialogue::result`].
    Finished(Box<DialogueResult>),
}

/// How the result's category was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerSource {
    /// A key in a gather, or a global key anywhere.
    Dtmf,
    /// A transcript the classifier scored at or above the threshold.
    Speech,
    /// A `set_category` node.
    Script,
    /// The gather's retries ran out (`no_input` or `unclassified`).
    NoAnswer,
}

/// Why the dialogue ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndReason {
    /// The script hung up (a `hangup` node, or a gather's retries ran out with nowhere to go).
    #[default]
    Completed,
    /// A `transfer` node handed the call on.
    Transferred,
    /// The caller hung up first.
    CallerHungUp,
    /// The script's `max_duration` passed.
    MaxDuration,
    /// The script went round without waiting for anything (cannot happen with a validated
    /// script; kept so that the runtime ends instead of spinning).
    ScriptError,
}

/// What one dialogue gathered.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DialogueResult {
    /// A category id, or `no_input` / `unclassified`; `None` if the call ended before any.
    pub category: Option<String>,
    pub answered_by: Option<AnswerSource>,
    /// Every key pressed, in order.
    pub dtmf: String,
    /// The last transcript heard in a gather (matched or not).
    pub transcript: Option<String>,
    /// The free answer to an `ask` node ("why?").
    pub follow_up: Option<String>,
    /// The classifier's score for a speech answer.
    pub confidence: Option<f32>,
    /// The recogniser's confidence for the last transcript heard in a gather.
    pub asr_confidence: Option<f32>,
    /// What a `consent` node recorded.
    pub consent: Option<bool>,
    /// [`Script::version_id`] of the script that ran.
    pub script_version: String,
    /// The language the dialogue spoke.
    pub language: Option<Lang>,
    /// The recogniser failed during the call and the rest went DTMF-only.
    pub asr_unavailable: bool,
    /// The transfer target, when the dialogue ended in a transfer.
    pub transfer: Option<String>,
    pub end: EndReason,
    /// From the start to the end of the dialogue.
    pub duration: Duration,
    /// Node ids in the order entered (the first [`PATH_LIMIT`]).
    pub path: Vec<String>,
    /// How many nodes were entered in all.
    pub nodes_visited: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speech {
    Silent,
    Talking,
    Recognising,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// A prompt is playing; `rest` plays after it.
    Prompting {
        rest: Option<PromptId>,
        barge_in: bool,
    },
    /// A gather or ask waits for an answer until `deadline`.
    Listening {
        deadline: Instant,
        speech: Speech,
    },
    Done,
}

/// One script running on one call. See the module docs for the run loop.
#[derive(Debug)]
pub struct Dialogue {
    script: Arc<Script>,
    classifier: Arc<dyn Classify>,
    lang: Lang,
    started: Instant,
    end_at: Instant,
    node: NodeId,
    stage: Stage,
    no_input: u8,
    no_match: u8,
    playing: bool,
    listening: Option<(bool, bool)>,
    asr_down: bool,
    out: VecDeque<Output>,
    result: DialogueResult,
    finished: bool,
}

impl Dialogue {
    /// Start `script` at its start node. `lang` falls back to the script's default language if
    /// the script does not speak it. The first outputs are ready at once.
    pub fn new(
        script: Arc<Script>,
        classifier: Arc<dyn Classify>,
        lang: Lang,
        now: Instant,
    ) -> Dialogue {
        let lang = script.resolve_language(lang);
        let end_at = now.checked_add(script.max_duration).unwrap_or(now);
        let start = script.start;
        let result = DialogueResult {
            script_version: script.version_id.clone(),
            language: Some(lang),
            ..DialogueResult::default()
        };
        let mut d = Dialogue {
            script,
            classifier,
            lang,
            started: now,
            end_at,
            node: start,
            stage: Stage::Done,
            no_input: 0,
            no_match: 0,
            playing: false,
            listening: None,
            asr_down: false,
            out: VecDeque::new(),
            result,
            finished: false,
        };
        d.goto(now, start);
        d
    }

    /// Feed one event. Timers due at `now` fire first.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.handle_timeout(now);
        if self.finished {
            return;
        }
        match input {
            Input::PromptFinished => self.on_prompt_finished(now),
            Input::Digit(c) => self.on_digit(now, c),
            Input::SpeechStarted => self.on_speech_started(now),
            Input::SpeechEnded => self.on_speech_ended(now),
            Input::Transcript { text, confidence } => self.on_transcript(now, &text, confidence),
            Input::AsrUnavailable => self.on_asr_unavailable(now),
            Input::CallerHungUp => self.end(now, EndReason::CallerHungUp, false),
        }
    }

    /// Fire the timers due at `now` (no-input, end of speech, transcript wait, max duration).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        if now >= self.end_at {
            debug!(node = %self.node_id(), "dialogue: max duration reached");
            // However late the engine calls, the dialogue ended at the limit.
            self.end(self.end_at, EndReason::MaxDuration, true);
            return;
        }
        let Stage::Listening { deadline, speech } = self.stage else {
            return;
        };
        if now < deadline {
            return;
        }
        let script = Arc::clone(&self.script);
        match &script.nodes[self.node].kind {
            NodeKind::Gather(g) => match speech {
                Speech::Silent => self.no_input_event(now, g),
                // Speech that never turned into a transcript: not understood.
                Speech::Talking | Speech::Recognising => self.no_match_event(now, g),
            },
            NodeKind::Ask { next, .. } => {
                debug!(node = %self.node_id(), "dialogue: no follow-up answer");
                self.set_listen(None);
                self.goto(now, *next);
            }
            _ => self.stage = Stage::Done,
        }
    }

    /// The next thing for the engine to do, if any. Drain after every input and timeout.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Dialogue::handle_timeout`] must be called next; `None` once finished.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        Some(match self.stage {
            Stage::Listening { deadline, .. } => deadline.min(self.end_at),
            _ => self.end_at,
        })
    }

    /// The result, once the dialogue has finished.
    pub fn result(&self) -> Option<&DialogueResult> {
        self.finished.then_some(&self.result)
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The language the dialogue speaks.
    pub fn language(&self) -> Lang {
        self.lang
    }

    pub fn script(&self) -> &Arc<Script> {
        &self.script
    }

    /// The id of the node the dialogue is at.
    pub fn current_node(&self) -> &str {
        self.node_id()
    }

    fn node_id(&self) -> &str {
        &self.script.nodes[self.node].id
    }

    // ----- moving between nodes -----

    /// Enter `node`, running nodes that need no waiting (set_category, consent) straight through.
    fn goto(&mut self, now: Instant, mut node: NodeId) {
        let script = Arc::clone(&self.script);
        let mut hops = 0;
        loop {
            hops += 1;
            if hops > script.nodes.len() + 1 {
                // A validated script has no such loop; end rather than spin.
                debug!("dialogue: loop without waiting; ending");
                self.end(now, EndReason::ScriptError, true);
                return;
            }
            self.node = node;
            self.stage = Stage::Done;
            self.result.nodes_visited = self.result.nodes_visited.saturating_add(1);
            if self.result.path.len() < PATH_LIMIT {
                self.result.path.push(script.nodes[node].id.clone());
            }
            debug!(node = %script.nodes[node].id, "dialogue: enter node");
            match &script.nodes[node].kind {
                NodeKind::Play {
                    prompt, barge_in, ..
                } => {
                    self.play(*prompt, None, *barge_in);
                    return;
                }
                NodeKind::Gather(g) => {
                    self.no_input = 0;
                    self.no_match = 0;
                    self.gather_prompts(g, None);
                    return;
                }
                NodeKind::Ask {
                    prompt,
                    barge_in,
                    next,
                    ..
                } => {
                    if self.asr_down {
                        // A free answer needs speech: skip the question.
                        node = *next;
                        continue;
                    }
                    self.play(*prompt, None, *barge_in);
                    return;
                }
                NodeKind::Transfer { prompt, target } => {
                    self.set_listen(None);
                    match prompt {
                        Some(p) => self.play(*p, None, false),
                        None => self.transfer(now, target),
                    }
                    return;
                }
                NodeKind::SetCategory { category, next } => {
                    self.result.category = Some(category.clone());
                    self.result.answered_by = Some(AnswerSource::Script);
                    self.result.confidence = None;
                    node = *next;
                }
                NodeKind::Consent {
                    yes,
                    no,
                    on_yes,
                    on_no,
                    next,
                } => {
                    let cat = self
                        .result
                        .category
                        .as_deref()
                        .and_then(|c| script.category_index(c));
                    node = match cat {
                        Some(c) if yes.contains(&c) => {
                            self.result.consent = Some(true);
                            *on_yes
                        }
                        Some(c) if no.contains(&c) => {
                            self.result.consent = Some(false);
                            *on_no
                        }
                        _ => *next,
                    };
                    debug!(consent = ?self.result.consent, "dialogue: consent");
                }
                NodeKind::Hangup { prompt } => {
                    self.set_listen(None);
                    match prompt {
                        Some(p) => self.play(*p, None, false),
                        None => self.end(now, EndReason::Completed, true),
                    }
                    return;
                }
            }
        }
    }

    /// The gather's prompt, after a retry prompt if there is one.
    fn gather_prompts(&mut self, g: &Gather, retry: Option<PromptId>) {
        let (first, rest) = match retry {
            Some(r) if g.repeat_prompt => (r, Some(g.prompt)),
            Some(r) => (r, None),
            None => (g.prompt, None),
        };
        self.play(first, rest, g.barge_in);
    }

    fn play(&mut self, prompt: PromptId, rest: Option<PromptId>, barge_in: bool) {
        let script = Arc::clone(&self.script);
        let mut id = prompt;
        if self.asr_down
            && let Some(v) = script.prompts[prompt].dtmf_only
        {
            id = v;
        }
        let p = &script.prompts[id];
        let path = p
            .files
            .get(&self.lang)
            .or_else(|| p.files.get(&script.default_language))
            .or_else(|| p.files.values().next())
            .cloned()
            .unwrap_or_default();
        self.out.push_back(Output::Play {
            prompt: p.id.clone(),
            path,
            barge_in,
        });
        self.playing = true;
        self.stage = Stage::Prompting { rest, barge_in };
        let mode = if barge_in { self.listen_mode() } else { None };
        self.set_listen(mode);
    }

    /// What the current node listens to.
    fn listen_mode(&self) -> Option<(bool, bool)> {
        match &self.script.nodes[self.node].kind {
            NodeKind::Gather(g) => Some((g.speech && !self.asr_down, g.dtmf || self.asr_down)),
            NodeKind::Ask { .. } if !self.asr_down => Some((true, false)),
            NodeKind::Play { .. } => Some((!self.asr_down, true)),
            _ => None,
        }
    }

    fn set_listen(&mut self, mode: Option<(bool, bool)>) {
        if mode == self.listening {
            return;
        }
        self.listening = mode;
        self.out.push_back(match mode {
            Some((speech, dtmf)) => Output::Listen { speech, dtmf },
            None => Output::StopListening,
        });
    }

    fn stop_playback(&mut self) {
        if self.playing {
            self.playing = false;
            self.out.push_back(Output::StopPlayback);
        }
    }

    fn listen(&mut self, now: Instant, timeout: Duration) {
        let mode = self.listen_mode();
        self.set_listen(mode);
        self.stage = Stage::Listening {
            deadline: now + timeout,
            speech: Speech::Silent,
        };
    }

    fn transfer(&mut self, now: Instant, target: &str) {
        debug!(to = target, "dialogue: transfer");
        self.result.transfer = Some(target.to_owned());
        self.out.push_back(Output::Transfer {
            target: target.to_owned(),
        });
        self.end(now, EndReason::Transferred, false);
    }

    fn end(&mut self, now: Instant, reason: EndReason, hangup: bool) {
        if self.finished {
            return;
        }
        if hangup {
            self.stop_playback();
            self.set_listen(None);
            self.out.push_back(Output::Hangup);
        }
        self.finished = true;
        self.stage = Stage::Done;
        self.result.end = reason;
        self.result.duration = now.saturating_duration_since(self.started);
        debug!(
            end = ?reason,
            category = ?self.result.category,
            nodes = self.result.nodes_visited,
            "dialogue: finished"
        );
        self.out
            .push_back(Output::Finished(Box::new(self.result.clone())));
    }

    /// File the call under `cat` and go on to `to`.
    fn answer(
        &mut self,
        now: Instant,
        cat: CatId,
        by: AnswerSource,
        score: Option<f32>,
        to: NodeId,
    ) {
        self.stop_playback();
        self.set_listen(None);
        let id = self.script.categories[cat].id.clone();
        debug!(category = %id, by = ?by, score, "dialogue: answer");
        self.result.category = Some(id);
        self.result.answered_by = Some(by);
        self.result.confidence = score;
        self.goto(now, to);
    }

    fn no_input_event(&mut self, now: Instant, g: &Gather) {
        self.no_input = self.no_input.saturating_add(1);
        if self.no_input <= g.no_input.retries {
            debug!(node = %self.node_id(), attempt = self.no_input, "dialogue: no input, retry");
            self.gather_prompts(g, g.no_input.prompt);
        } else {
            self.give_up(now, NO_INPUT, g.no_input.then);
        }
    }

    fn no_match_event(&mut self, now: Instant, g: &Gather) {
        self.no_match = self.no_match.saturating_add(1);
        if self.no_match <= g.no_match.retries {
            debug!(node = %self.node_id(), attempt = self.no_match, "dialogue: no match, retry");
            self.gather_prompts(g, g.no_match.prompt);
        } else {
            self.give_up(now, UNCLASSIFIED, g.no_match.then);
        }
    }

    fn give_up(&mut self, now: Instant, outcome: &str, then: Option<NodeId>) {
        debug!(node = %self.node_id(), outcome, "dialogue: retries spent");
        self.stop_playback();
        self.set_listen(None);
        self.result.category = Some(outcome.to_owned());
        self.result.answered_by = Some(AnswerSource::NoAnswer);
        self.result.confidence = None;
        match then {
            Some(n) => self.goto(now, n),
            None => self.end(now, EndReason::Completed, true),
        }
    }

    // ----- inputs -----

    fn on_prompt_finished(&mut self, now: Instant) {
        let Stage::Prompting { rest, barge_in } = self.stage else {
            return; // stale or duplicate: nothing is playing
        };
        self.playing = false;
        if let Some(r) = rest {
            self.play(r, None, barge_in);
            return;
        }
        let script = Arc::clone(&self.script);
        match &script.nodes[self.node].kind {
            NodeKind::Play { next, .. } => self.goto(now, *next),
            NodeKind::Gather(g) => self.listen(now, g.timeout),
            NodeKind::Ask { timeout, next, .. } => {
                if self.asr_down {
                    self.goto(now, *next);
                } else {
                    self.listen(now, *timeout);
                }
            }
            NodeKind::Transfer { target, .. } => self.transfer(now, target),
            NodeKind::Hangup { .. } => self.end(now, EndReason::Completed, true),
            NodeKind::SetCategory { .. } | NodeKind::Consent { .. } => self.stage = Stage::Done,
        }
    }

    /// Whether the current stage takes answers: listening, or a barge-in prompt.
    fn taking_answers(&self) -> bool {
        match self.stage {
            Stage::Listening { .. } => true,
            Stage::Prompting { barge_in, .. } => barge_in,
            Stage::Done => false,
        }
    }

    fn on_digit(&mut self, now: Instant, c: char) {
        let c = c.to_ascii_uppercase();
        if !matches!(c, '0'..='9' | '*' | '#' | 'A'..='D') {
            debug!("dialogue: not a DTMF key; ignored");
            return;
        }
        if self.result.dtmf.len() < DTMF_LIMIT {
            self.result.dtmf.push(c);
        }
        let script = Arc::clone(&self.script);
        let global = script.is_global_key(c);
        let active = self.taking_answers();
        match &script.nodes[self.node].kind {
            NodeKind::Gather(g) => {
                let keyed = (g.dtmf || self.asr_down) && active;
                if keyed
                    && let Some(cat) = script.category_for_key(c)
                    && let Some(to) = g.route(cat)
                {
                    self.answer(now, cat, AnswerSource::Dtmf, None, to);
                } else if let Some(cat) = global {
                    self.global_key(now, cat);
                } else if keyed {
                    // A key no accepted category has: not understood. DTMF beats any speech
                    // in progress, so this ends the attempt too.
                    debug!(node = %self.node_id(), "dialogue: key matches no category");
                    self.stop_playback();
                    self.no_match_event(now, g);
                }
            }
            // The call is ending: keys change nothing.
            NodeKind::Transfer { .. } | NodeKind::Hangup { .. } => {}
            NodeKind::Play { next, .. } => {
                if let Some(cat) = global {
                    self.global_key(now, cat);
                } else if matches!(self.stage, Stage::Prompting { barge_in: true, .. }) {
                    self.stop_playback();
                    self.goto(now, *next);
                }
            }
            NodeKind::Ask { .. } | NodeKind::SetCategory { .. } | NodeKind::Consent { .. } => {
                if let Some(cat) = global {
                    self.global_key(now, cat);
                }
            }
        }
    }

    fn global_key(&mut self, now: Instant, cat: CatId) {
        if let Some(to) = self.script.category_info[cat].then {
            debug!(node = %self.node_id(), "dialogue: global key");
            self.answer(now, cat, AnswerSource::Dtmf, None, to);
        }
    }

    fn speech_allowed(&self) -> bool {
        if self.asr_down {
            return false;
        }
        match &self.script.nodes[self.node].kind {
            NodeKind::Gather(g) => g.speech,
            NodeKind::Ask { .. } => true,
            _ => false,
        }
    }

    fn on_speech_started(&mut self, now: Instant) {
        let script = Arc::clone(&self.script);
        if let NodeKind::Play { next, .. } = &script.nodes[self.node].kind {
            if !self.asr_down && matches!(self.stage, Stage::Prompting { barge_in: true, .. }) {
                self.stop_playback();
                self.goto(now, *next);
            }
            return;
        }
        if !self.speech_allowed() || !self.taking_answers() {
            return;
        }
        self.stop_playback();
        self.stage = Stage::Listening {
            deadline: now + script.max_speech,
            speech: Speech::Talking,
        };
    }

    fn on_speech_ended(&mut self, now: Instant) {
        if let Stage::Listening {
            speech: Speech::Talking,
            ..
        } = self.stage
            && self.speech_allowed()
        {
            self.stage = Stage::Listening {
                deadline: now + self.script.transcript_timeout,
                speech: Speech::Recognising,
            };
        }
    }

    fn on_transcript(&mut self, now: Instant, text: &str, confidence: f32) {
        if !self.speech_allowed() || !self.taking_answers() {
            trace!("dialogue: transcript ignored (not listening for speech)");
            return;
        }
        self.stop_playback();
        let text = truncate(text.trim());
        let script = Arc::clone(&self.script);
        match &script.nodes[self.node].kind {
            NodeKind::Ask { next, .. } => {
                debug!(chars = text.chars().count(), "dialogue: follow-up answer");
                trace!(text = %text, "dialogue: follow-up text");
                self.result.follow_up = (!text.is_empty()).then_some(text);
                self.set_listen(None);
                self.goto(now, *next);
            }
            NodeKind::Gather(g) => self.classify(now, g, text, confidence),
            _ => {}
        }
    }

    fn classify(&mut self, now: Instant, g: &Gather, text: String, confidence: f32) {
        self.result.asr_confidence = confidence.is_finite().then_some(confidence.clamp(0.0, 1.0));
        let found = if text.is_empty() {
            None
        } else {
            self.classifier.classify(self.lang, &text)
        };
        trace!(text = %text, "dialogue: transcript");
        self.result.transcript = Some(text);
        if let Some(m) = found {
            debug!(category = %m.category, score = m.score, "dialogue: classified");
            if m.score.is_finite()
                && m.score >= self.script.threshold
                && let Some(cat) = self.script.category_index(&m.category)
                && let Some(to) = g.route(cat)
            {
                self.answer(now, cat, AnswerSource::Speech, Some(m.score), to);
                return;
            }
        }
        self.no_match_event(now, g);
    }

    fn on_asr_unavailable(&mut self, now: Instant) {
        if self.asr_down {
            return;
        }
        debug!(node = %self.node_id(), "dialogue: speech recognition unavailable, DTMF only");
        self.asr_down = true;
        self.result.asr_unavailable = true;
        let script = Arc::clone(&self.script);
        match &script.nodes[self.node].kind {
            NodeKind::Gather(g) => match self.stage {
                // The utterance in flight is lost: ask again, in the DTMF-only words.
                Stage::Listening {
                    speech: Speech::Talking | Speech::Recognising,
                    ..
                } => self.gather_prompts(g, None),
                _ => {
                    if self.listening.is_some() {
                        let mode = self.listen_mode();
                        self.set_listen(mode);
                    }
                }
            },
            NodeKind::Ask { next, .. } => {
                self.stop_playback();
                self.set_listen(None);
                self.goto(now, *next);
            }
            _ => {
                if self.listening.is_some() {
                    let mode = self.listen_mode();
                    self.set_listen(mode);
                }
            }
        }
    }
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(TEXT_LIMIT) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}
