//! Scripts end to end in simulated time: the default scripts load, every validation error names
//! its file, line, column and field, every node type runs, and no input order makes a dialogue
//! panic or hang.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use script::script::{
    AnswerSource, DTMF_LIMIT, DiagnosticKind, Dialogue, DialogueResult, EndReason, Input,
    LoadOptions, Output, Script, ScriptCache, ScriptErrors,
};
use script::{Classify, Lang, Match};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// Helpers

/// A classifier for tests: the first entry whose needle the text contains wins, with its score.
#[derive(Debug)]
struct Keywords(Vec<(String, String, f32)>);

impl Keywords {
    /// Every phrase of every category, scored 0.9; `extra` entries are tried first.
    fn from_script(script: &Script, extra: &[(&str, &str, f32)]) -> Keywords {
        let mut v: Vec<(String, String, f32)> = extra
            .iter()
            .map(|(n, c, s)| (n.to_string(), c.to_string(), *s))
            .collect();
        for spec in script.categories() {
            for phrases in spec.phrases.values() {
                for p in phrases {
                    v.push((p.to_lowercase(), spec.id.clone(), 0.9));
                }
            }
        }
        Keywords(v)
    }
}

impl Classify for Keywords {
    fn classify(&self, _lang: Lang, text: &str) -> Option<Match> {
        let t = text.to_lowercase();
        self.0
            .iter()
            .find(|(needle, _, _)| t.contains(needle.as_str()))
            .map(|(_, category, score)| Match {
                category: category.clone(),
                score: *score,
            })
    }
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "script-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/scripts")
        .join(name)
}

/// Prompt files are checked when the generated WAVs are present (they are committed).
fn default_options() -> LoadOptions {
    let wav = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/prompts/ru/greeting.wav");
    if wav.is_file() {
        LoadOptions::default()
    } else {
        LoadOptions::without_prompt_files()
    }
}

fn parse(src: &str) -> Result<Script, ScriptErrors> {
    Script::parse(
        src,
        Path::new("test.toml"),
        &LoadOptions::without_prompt_files(),
    )
}

/// The errors of a script that must not load, one string each.
fn errors(src: &str) -> Vec<String> {
    match parse(src) {
        Ok(_) => panic!("script loaded but should not have"),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

fn assert_error(src: &str, expected: &str) {
    let errs = errors(src);
    assert!(
        errs.iter().any(|e| e == expected),
        "expected error\n  {expected}\namong\n  {}",
        errs.join("\n  ")
    );
}

/// 1-based line and column of the first `needle` in `src` (cross-checks hand-counted positions).
fn pos(src: &str, needle: &str) -> (usize, usize) {
    let at = src.find(needle).expect("needle in source");
    let line = src[..at].matches('\n').count() + 1;
    let col = src[..at].rsplit('\n').next().unwrap().chars().count() + 1;
    (line, col)
}

/// Drives a dialogue in simulated time and renders outputs compactly:
/// `play:id` (`play:id!` with barge-in), `stop`, `listen:sd` / `listen:s` / `listen:d`,
/// `unlisten`, `transfer:target`, `hangup`, `finished`.
struct Harness {
    d: Dialogue,
    now: Instant,
    start: Instant,
    finished: Option<DialogueResult>,
}

impl Harness {
    fn new(script: Arc<Script>, classifier: Arc<dyn Classify>) -> (Harness, Vec<String>) {
        Harness::with_lang(script, classifier, Lang::Ru)
    }

    fn with_lang(
        script: Arc<Script>,
        classifier: Arc<dyn Classify>,
        lang: Lang,
    ) -> (Harness, Vec<String>) {
        let now = Instant::now();
        let d = Dialogue::new(script, classifier, lang, now);
        let mut h = Harness {
            d,
            now,
            start: now,
            finished: None,
        };
        let first = h.drain();
        (h, first)
    }

    fn drain(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        while let Some(o) = self.d.poll_output() {
            v.push(match o {
                Output::Play {
                    prompt, barge_in, ..
                } => format!("play:{prompt}{}", if barge_in { "!" } else { "" }),
                Output::StopPlayback => "stop".into(),
                Output::Listen { speech, dtmf } => format!(
                    "listen:{}{}",
                    if speech { "s" } else { "" },
                    if dtmf { "d" } else { "" }
                ),
                Output::StopListening => "unlisten".into(),
                Output::Transfer { target } => format!("transfer:{target}"),
                Output::Hangup => "hangup".into(),
                Output::Finished(r) => {
                    assert!(self.finished.is_none(), "finished twice");
                    assert_eq!(Some(&*r), self.d.result());
                    self.finished = Some(*r);
                    "finished".into()
                }
            });
        }
        v
    }

    fn input(&mut self, input: Input) -> Vec<String> {
        self.d.handle_input(self.now, input);
        self.drain()
    }

    fn digit(&mut self, c: char) -> Vec<String> {
        self.input(Input::Digit(c))
    }

    fn say(&mut self, text: &str) -> Vec<String> {
        let mut v = self.input(Input::SpeechStarted);
        self.advance(Duration::from_millis(800));
        v.extend(self.input(Input::SpeechEnded));
        v.extend(self.input(Input::Transcript {
            text: text.into(),
            confidence: 0.8,
        }));
        v
    }

    fn done(&mut self) -> Vec<String> {
        self.input(Input::PromptFinished)
    }

    /// Move the clock on by `by`, firing every timer that falls due on the way.
    fn advance(&mut self, by: Duration) -> Vec<String> {
        let until = self.now + by;
        let mut v = Vec::new();
        while let Some(t) = self.d.poll_timeout() {
            if t > until {
                break;
            }
            self.now = t;
            self.d.handle_timeout(t);
            v.extend(self.drain());
        }
        self.now = until;
        v
    }

    fn result(&self) -> &DialogueResult {
        self.finished.as_ref().expect("dialogue finished")
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// The default scripts

/// The script's Russian prompt ids, sorted, checking each also has an English WAV.
fn russian_prompt_ids_with_english_too(script: &Script) -> Vec<&str> {
    let mut prompts: Vec<&str> = script
        .prompt_files()
        .filter(|(_, lang, _)| *lang == Lang::Ru)
        .map(|(id, _, _)| id)
        .collect();
    prompts.sort();
    assert_eq!(
        script
            .prompt_files()
            .filter(|(_, l, _)| *l == Lang::En)
            .count(),
        prompts.len()
    );
    prompts
}

#[test]
fn actualization_script_loads() {
    let path = config("actualization.toml");
    let script = Script::load_with(&path, &default_options()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(script.name(), "actualization");
    assert!(script.warnings().is_empty(), "{:?}", script.warnings());
    let ids: Vec<&str> = script.categories().iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "manager_call",
            "send_details",
            "business_not_now",
            "not_interested",
            "feedback",
            "opt_out"
        ]
    );
    let keys: Vec<Vec<char>> = script.categories().iter().map(|c| c.keys.clone()).collect();
    assert_eq!(
        keys,
        [
            vec!['1', '0'],
            vec!['2'],
            vec!['3'],
            vec!['4'],
            vec!['5'],
            vec!['9']
        ]
    );
    let mut globals: Vec<(char, &str)> = script.global_keys().collect();
    globals.sort();
    assert_eq!(globals, [('0', "manager_call"), ('9', "opt_out")]);
    for c in script.categories() {
        for lang in Lang::ALL {
            assert!(
                c.phrases.get(&lang).is_some_and(|p| p.len() >= 2),
                "{} {lang}",
                c.id
            );
        }
    }
    assert!(!script.record());
    assert_eq!(script.max_duration(), Duration::from_secs(180));
    assert_eq!(
        script.category_label("manager_call", Lang::Ru),
        Some("Звонок менеджера")
    );
    // Every prompt id the prompt generator writes is referenced, and resolves beside the file.
    let prompts = russian_prompt_ids_with_english_too(&script);
    assert_eq!(
        prompts,
        [
            "ask_why",
            "bye_details",
            "bye_feedback",
            "bye_later",
            "bye_manager",
            "bye_optout",
            "bye_thanks",
            "greeting",
            "no_input",
            "no_match",
            "notice",
            "question",
            "question_dtmf"
        ]
    );
    for (id, lang, file) in script.prompt_files() {
        assert!(
            file.ends_with(format!("prompts/{lang}/{id}.wav")),
            "{}",
            file.display()
        );
    }
    assert!(script.phrases(Lang::Ru).any(|p| p == "удалите мой номер"));
}

#[test]
fn consent_script_loads() {
    let script = Script::load_with(config("consent.toml"), &default_options())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(script.name(), "consent");
    assert!(script.record());
    assert!(script.warnings().is_empty(), "{:?}", script.warnings());
    let ids: Vec<&str> = script.categories().iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["consent_yes", "consent_no", "opt_out"]);
    let prompts = russian_prompt_ids_with_english_too(&script);
    assert_eq!(
        prompts,
        [
            "consent_greeting",
            "consent_no",
            "consent_question",
            "consent_terms",
            "consent_yes",
            "no_input",
            "no_match"
        ]
    );
}

#[test]
fn version_id_is_version_and_file_hash() {
    let path = config("actualization.toml");
    let bytes = std::fs::read(&path).unwrap();
    let script = Script::load_with(&path, &LoadOptions::without_prompt_files()).unwrap();
    let hash = hex::encode(Sha256::digest(&bytes));
    assert_eq!(script.version(), "2025.1");
    assert_eq!(script.version_id(), format!("2025.1-{}", &hash[..8]));
    // One changed byte, same operator version: a different id.
    let edited = String::from_utf8(bytes)
        .unwrap()
        .replacen("timeout = 6", "timeout = 7", 1);
    let other = Script::parse(&edited, &path, &LoadOptions::without_prompt_files()).unwrap();
    assert_eq!(other.version(), "2025.1");
    assert_ne!(other.version_id(), script.version_id());
}

// ---------------------------------------------------------------------------------------------
// Validation errors. BASE is a valid script; each test changes one line (line numbers stay).

const BASE: &str = r#"[script]
name = "t"
version = "1"
start = "ask"

[prompts.q]
ru = "q.wav"

[[category]]
id = "manager_call"
keys = ["1"]

[nodes.ask]
type = "gather"
prompt = "q"
on.manager_call = "bye"

[nodes.bye]
type = "hangup"
"#;

fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

#[test]
fn base_script_is_valid() {
    let script = parse(BASE).unwrap_or_else(|e| panic!("{e}"));
    assert!(script.warnings().is_empty(), "{:?}", script.warnings());
    assert_eq!(script.languages(), [Lang::Ru]);
    assert_eq!(script.threshold(), 0.5);
}

#[test]
fn error_unknown_category() {
    let src = edit("on.manager_call = \"bye\"", "on.manager_cal = \"bye\"");
    assert_eq!(pos(&src, "manager_cal ="), (16, 4));
    assert_error(
        &src,
        "test.toml:16:4: nodes.ask.on.manager_cal: unknown category \"manager_cal\" (did you mean \"manager_call\"?)",
    );
    let errs = parse(&src).unwrap_err();
    assert!(errs.has(DiagnosticKind::UnknownCategory));
}

#[test]
fn error_unknown_node_and_prompt() {
    assert_error(
        &edit("on.manager_call = \"bye\"", "on.manager_call = \"by\""),
        "test.toml:16:19: nodes.ask.on.manager_call: unknown node \"by\" (did you mean \"bye\"?)",
    );
    assert_error(
        &edit("prompt = \"q\"", "prompt = \"greeting\""),
        "test.toml:15:10: nodes.ask.prompt: unknown prompt \"greeting\"",
    );
    assert_error(
        &edit("start = \"ask\"", "start = \"asks\""),
        "test.toml:4:9: script.start: unknown node \"asks\" (did you mean \"ask\"?)",
    );
}

#[test]
fn error_unknown_language() {
    assert_error(
        &edit(
            "start = \"ask\"\n",
            "start = \"ask\"\nlanguages = [\"ru\", \"de\"]",
        ),
        "test.toml:5:20: script.languages[1]: unknown language \"de\" (expected ru, uk or en)",
    );
    let src = edit("keys = [\"1\"]", "keys = [\"1\"]\nphrases.xx = [\"a\"]");
    assert_error(
        &src,
        "test.toml:12:9: category[0].phrases.xx: unknown language \"xx\" (expected ru, uk or en)",
    );
}

#[test]
fn error_duplicate_category_and_key() {
    let src = format!("{BASE}\n[[category]]\nid = \"manager_call\"\n");
    assert_error(
        &src,
        "test.toml:22:6: category[1].id: duplicate category id \"manager_call\" (first declared at line 10)",
    );
    let src = format!("{BASE}\n[[category]]\nid = \"other\"\nkeys = [\"1\"]\nthen = \"bye\"\n");
    assert_error(
        &src,
        "test.toml:23:9: category[1].keys[0]: key \"1\" is already used by category \"manager_call\"",
    );
    assert!(parse(&src).unwrap_err().has(DiagnosticKind::DuplicateKey));
    assert_error(
        &edit("keys = [\"1\"]", "keys = [\"1\", \"1\"]"),
        "test.toml:11:14: category[0].keys[1]: key \"1\" is listed twice",
    );
    // A key written twice in one table is a TOML error.
    let src = edit("version = \"1\"", "version = \"1\"\nname = \"u\"");
    let errs = parse(&src).unwrap_err();
    assert!(errs.has(DiagnosticKind::Syntax));
    assert!(
        errs.errors[0].to_string().starts_with("test.toml:4:1: "),
        "{errs}"
    );
    assert!(errs.errors[0].message.contains("duplicate key"), "{errs}");
}

#[test]
fn warning_missing_phrases_for_a_language() {
    let src = edit(
        "start = \"ask\"\n",
        "start = \"ask\"\nlanguages = [\"ru\", \"en\"]",
    )
    .replace("ru = \"q.wav\"", "ru = \"q.wav\"\nen = \"q-en.wav\"")
    .replace(
        "keys = [\"1\"]",
        "keys = [\"1\"]\nphrases.ru = [\"менеджер\"]",
    );
    let script = parse(&src).unwrap_or_else(|e| panic!("{e}"));
    let w: Vec<String> = script.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        [
            "test.toml:11:6: category[0]: category \"manager_call\" has no en phrases: speech in en cannot select it"
        ]
    );
    assert_eq!(script.warnings()[0].kind, DiagnosticKind::MissingPhrases);
}

#[test]
fn error_bad_key() {
    assert_error(
        &edit("keys = [\"1\"]", "keys = [\"10\"]"),
        "test.toml:11:9: category[0].keys[0]: bad DTMF key \"10\": one of 0-9, *, #, A-D",
    );
}

#[test]
fn error_missing_prompt_file_is_checked_for_real() {
    let dir = TempDir::new();
    let path = dir.write("script.toml", BASE);
    let errs = Script::load(&path).unwrap_err();
    let expected = format!(
        "{}:7:6: prompts.q.ru: prompt file not found: {}",
        path.display(),
        dir.0.join("q.wav").display()
    );
    assert_eq!(errs.to_string(), expected);
    assert_eq!(errs.errors[0].kind, DiagnosticKind::MissingPromptFile);
    // Relative to the script file, not the working directory.
    dir.write("q.wav", "RIFF");
    assert!(Script::load(&path).is_ok());
    // The option skips the check.
    std::fs::remove_file(dir.0.join("q.wav")).unwrap();
    assert!(Script::load_with(&path, &LoadOptions::without_prompt_files()).is_ok());
}

#[test]
fn error_missing_prompt_language() {
    assert_error(
        &edit(
            "start = \"ask\"\n",
            "start = \"ask\"\nlanguages = [\"ru\", \"en\"]",
        ),
        "test.toml:6:1: prompts.q: no en file (the script speaks ru, en; add en = \"…wav\")",
    );
}

#[test]
fn error_bad_durations() {
    let with = |v: &str| {
        edit(
            "start = \"ask\"\n",
            &format!("start = \"ask\"\nmax_duration = {v}"),
        )
    };
    assert_error(
        &with("\"5 parsecs\""),
        "test.toml:5:16: script.max_duration: bad duration \"5 parsecs\": write seconds (6, 1.5) or a string with a unit (\"500ms\", \"6s\", \"3m\")",
    );
    assert_error(
        &with("-3"),
        "test.toml:5:16: script.max_duration: duration must be greater than zero, not -3",
    );
    assert_error(
        &with("7200"),
        "test.toml:5:16: script.max_duration: duration 7200 s is over the limit of 3600 s",
    );
    assert_error(
        &edit("prompt = \"q\"", "prompt = \"q\"\ntimeout = \"0s\""),
        "test.toml:16:11: nodes.ask.timeout: duration must be greater than zero, not 0",
    );
    let ok = parse(&with("\"90s\"")).unwrap();
    assert_eq!(ok.max_duration(), Duration::from_secs(90));
}

#[test]
fn error_bad_values() {
    assert_error(
        &edit("start = \"ask\"\n", "start = \"ask\"\nthreshold = 1.5"),
        "test.toml:5:13: script.threshold: must be greater than 0 and at most 1, not 1.5",
    );
    assert_error(
        &edit("prompt = \"q\"", "prompt = \"q\"\nno_match_retries = 11"),
        "test.toml:16:20: nodes.ask.no_match_retries: retries must be 0 to 10, not 11",
    );
    assert_error(
        &edit(
            "type = \"hangup\"",
            "type = \"transfer\"\ntarget = \"bogus\"",
        ),
        "test.toml:20:10: nodes.bye.target: transfer target \"bogus\" is neither \"manager\" nor a sip:, sips: or tel: URI",
    );
    assert_error(
        &edit("id = \"manager_call\"", "id = \"no_input\""),
        "test.toml:10:6: category[0].id: \"no_input\" is a reserved outcome, not a category id",
    );
}

#[test]
fn error_shapes() {
    let errs = errors(&edit("prompt = \"q\"", "promt = \"q\""));
    assert!(
        errs.iter().any(|e| e.starts_with(
            "test.toml:15:1: nodes.ask.promt: unknown field `promt`, expected one of `type`, `prompt`"
        )),
        "{errs:?}"
    );
    assert_error(
        &edit("prompt = \"q\"", ""),
        "test.toml:13:1: nodes.ask: missing field `prompt`",
    );
    assert_error(
        &edit("prompt = \"q\"", "prompt = 3"),
        "test.toml:15:10: nodes.ask.prompt: invalid type: integer `3`, expected a string",
    );
    assert_error(
        &edit("type = \"gather\"", "type = \"gahter\""),
        "test.toml:14:8: nodes.ask.type: unknown node type \"gahter\" (did you mean \"gather\"?) (expected one of play, gather, ask, transfer, set_category, consent, hangup)",
    );
    assert_error(
        &format!("{BASE}\n[node.x]\ntype = \"hangup\"\n"),
        "test.toml:21:2: node: unknown section \"node\" (expected script, prompts, category, nodes)",
    );
    let errs = errors(&edit("[[category]]", "[category]"));
    assert!(
        errs.iter()
            .any(|e| e.contains("write each as [[category]]")),
        "{errs:?}"
    );
}

#[test]
fn error_syntax_names_the_place() {
    let errs = parse(&edit("name = \"t\"", "name = t")).unwrap_err();
    assert_eq!(errs.errors.len(), 1);
    let e = &errs.errors[0];
    assert_eq!(e.kind, DiagnosticKind::Syntax);
    assert_eq!((e.line, e.column, e.path.as_str()), (2, 8, "script.name"));
    assert!(
        e.to_string().starts_with("test.toml:2:8: script.name: "),
        "{e}"
    );
}

#[test]
fn error_no_route() {
    let src = format!("{BASE}\n[[category]]\nid = \"other\"\nkeys = [\"2\"]\n");
    assert_error(
        &src,
        "test.toml:13:1: nodes.ask: category \"other\" has nowhere to go: add on.other, a `then` on the category, or `next`",
    );
    // A `then` on the category or a `next` on the gather is enough.
    assert!(parse(&format!("{src}then = \"bye\"\n")).is_ok());
    let src = format!("{BASE}\n[[category]]\nid = \"other\"\nkeys = [\"2\"]\nglobal = true\n");
    assert_error(
        &src,
        "test.toml:22:6: category[1]: category \"other\" has global keys but no `then`: the node a global key goes to",
    );
}

#[test]
fn error_loop_without_gather() {
    let src = format!(
        "{}\n[nodes.a]\ntype = \"play\"\nprompt = \"q\"\nnext = \"b\"\n\n[nodes.b]\ntype = \"set_category\"\ncategory = \"manager_call\"\nnext = \"a\"\n",
        edit("on.manager_call = \"bye\"", "on.manager_call = \"a\"")
    );
    assert_eq!(pos(&src, "[nodes.a]"), (21, 1));
    assert_error(
        &src,
        "test.toml:21:1: nodes.a: nodes a -> b loop forever without a gather (nothing in the loop waits for an answer)",
    );
    // The same loop through the gather is a re-ask, and fine.
    let ok = src.replace("next = \"a\"", "next = \"ask\"");
    let script = parse(&ok).unwrap_or_else(|e| panic!("{e}"));
    // `bye` is now unreachable: a warning, not an error.
    let w: Vec<String> = script.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        [
            "test.toml:18:1: nodes.bye: unreachable: no path from start \"ask\" or a global key leads here"
        ]
    );
    assert_eq!(script.warnings()[0].kind, DiagnosticKind::Unreachable);
}

#[test]
fn all_errors_are_reported_in_file_order() {
    let src = BASE
        .replace("start = \"ask\"", "start = \"nowhere\"")
        .replace("keys = [\"1\"]", "keys = [\"x\"]")
        .replace("prompt = \"q\"", "prompt = \"p\"")
        .replace("on.manager_call = \"bye\"", "on.manager_call = \"gone\"");
    let errs = parse(&src).unwrap_err();
    let lines: Vec<String> = errs.to_string().lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            "test.toml:4:9: script.start: unknown node \"nowhere\"",
            "test.toml:11:9: category[0].keys[0]: bad DTMF key \"x\": one of 0-9, *, #, A-D",
            "test.toml:15:10: nodes.ask.prompt: unknown prompt \"p\" (did you mean \"q\"?)",
            "test.toml:16:19: nodes.ask.on.manager_call: unknown node \"gone\"",
        ]
    );
    // An unused prompt is a warning once the script is otherwise fine.
    let src = format!("{BASE}\n[prompts.spare]\nru = \"spare.wav\"\n");
    let script = parse(&src).unwrap();
    assert_eq!(script.warnings()[0].kind, DiagnosticKind::UnusedPrompt);
}

// ---------------------------------------------------------------------------------------------
// The runtime, on a script with every node type.

const RT: &str = r#"[script]
name = "rt"
version = "7"
start = "hello"
max_duration = 60
no_input_timeout = 5
transcript_timeout = 3
barge_in = true

[prompts.hello]
ru = "hello.wav"
[prompts.q]
ru = "q.wav"
dtmf_only = "q_dtmf"
[prompts.q_dtmf]
ru = "q_dtmf.wav"
[prompts.ni]
ru = "ni.wav"
[prompts.nm]
ru = "nm.wav"
[prompts.why]
ru = "why.wav"
[prompts.bye]
ru = "bye.wav"
[prompts.hold]
ru = "hold.wav"
[prompts.info]
ru = "info.wav"

[[category]]
id = "yes"
keys = ["1"]
phrases.ru = ["yes", "да"]

[[category]]
id = "no"
keys = ["2"]
phrases.ru = ["no", "нет"]

[[category]]
id = "later"
keys = ["3"]
phrases.ru = ["later"]

[[category]]
id = "callback_later"

[[category]]
id = "manager"
keys = ["0"]
global = true
then = "to_manager"
phrases.ru = ["manager"]

[[category]]
id = "opt_out"
keys = ["9"]
global = true
then = "optout"
phrases.ru = ["remove"]

[nodes.hello]
type = "play"
prompt = "hello"
barge_in = false
next = "info"

[nodes.info]
type = "play"
prompt = "info"
next = "q"

[nodes.q]
type = "gather"
prompt = "q"
categories = ["yes", "no", "later", "manager", "opt_out"]
no_input_prompt = "ni"
no_input_retries = 1
no_match_prompt = "nm"
no_match_retries = 1
on.yes = "consent"
on.no = "consent"
on.later = "mark"
on_no_input = "bye"
on_no_match = "bye"

[nodes.consent]
type = "consent"
yes = ["yes"]
no = ["no"]
on_yes = "why"
next = "bye"

[nodes.why]
type = "ask"
prompt = "why"
timeout = 4
next = "bye"

[nodes.mark]
type = "set_category"
category = "callback_later"
next = "bye"

[nodes.to_manager]
type = "transfer"
prompt = "hold"
target = "sip:queue@example.com"

[nodes.optout]
type = "hangup"
prompt = "bye"

[nodes.bye]
type = "hangup"
prompt = "bye"
"#;

fn rt_script(src: &str) -> Arc<Script> {
    Arc::new(parse(src).unwrap_or_else(|e| panic!("{e}")))
}

fn rt() -> (Harness, Vec<String>) {
    rt_with(RT)
}

fn rt_with(src: &str) -> (Harness, Vec<String>) {
    let script = rt_script(src);
    let kw = Keywords::from_script(&script, &[("maybe", "yes", 0.3)]);
    Harness::new(script, Arc::new(kw))
}

/// hello and info played through: the question is listening.
fn at_question() -> Harness {
    let (mut h, first) = rt();
    assert_eq!(first, s(&["play:hello"]));
    assert_eq!(h.done(), s(&["play:info!", "listen:sd"]));
    assert_eq!(h.done(), s(&["play:q!"]));
    assert_eq!(h.done(), s(&[]));
    h
}

#[test]
fn rt_script_is_clean_and_set_category_needs_a_declared_id() {
    assert!(rt_script(RT).warnings().is_empty());
    assert_error(
        &RT.replace("category = \"callback_later\"", "category = \"callback\""),
        "test.toml:102:12: nodes.mark.category: unknown category \"callback\"",
    );
}

#[test]
fn dtmf_answer_through_consent_ask_and_hangup() {
    let mut h = at_question();
    assert_eq!(h.digit('1'), s(&["unlisten", "play:why!", "listen:s"]));
    assert_eq!(h.done(), s(&[]));
    assert_eq!(
        h.say("Because it is expensive"),
        s(&["unlisten", "play:bye"])
    );
    assert_eq!(h.done(), s(&["hangup", "finished"]));
    let r = h.result();
    assert_eq!(r.category.as_deref(), Some("yes"));
    assert_eq!(r.answered_by, Some(AnswerSource::Dtmf));
    assert_eq!(r.consent, Some(true));
    assert_eq!(r.follow_up.as_deref(), Some("Because it is expensive"));
    assert_eq!(r.dtmf, "1");
    assert_eq!(r.transcript, None);
    assert_eq!(r.confidence, None);
    assert_eq!(r.end, EndReason::Completed);
    assert_eq!(r.path, ["hello", "info", "q", "consent", "why", "bye"]);
    assert_eq!(r.nodes_visited, 6);
    assert!(r.script_version.starts_with("7-") && r.script_version.len() == 10);
    assert_eq!(r.language, Some(Lang::Ru));
    assert!(h.d.poll_timeout().is_none());
}

#[test]
fn speech_answer_is_classified() {
    let mut h = at_question();
    let out = h.say("no, I do not think so");
    assert_eq!(out, s(&["unlisten", "play:bye"]));
    h.done();
    let r = h.result();
    assert_eq!(r.category.as_deref(), Some("no"));
    assert_eq!(r.answered_by, Some(AnswerSource::Speech));
    assert_eq!(r.confidence, Some(0.9));
    assert_eq!(r.asr_confidence, Some(0.8));
    assert_eq!(r.transcript.as_deref(), Some("no, I do not think so"));
    assert_eq!(r.consent, Some(false), "no is recorded, then on to `next`");
}

#[test]
fn consent_no_is_recorded() {
    let mut h = at_question();
    h.digit('2');
    h.done();
    assert_eq!(h.result().consent, Some(false));
}

#[test]
fn set_category_node() {
    let mut h = at_question();
    assert_eq!(h.digit('3'), s(&["unlisten", "play:bye"]));
    h.done();
    let r = h.result();
    assert_eq!(r.category.as_deref(), Some("callback_later"));
    assert_eq!(r.answered_by, Some(AnswerSource::Script));
    assert_eq!(r.path, ["hello", "info", "q", "mark", "bye"]);
}

#[test]
fn no_input_retries_then_no_input() {
    let mut h = at_question();
    // Silence for the timeout: the retry prompt, then the question again.
    assert_eq!(h.advance(Duration::from_millis(4999)), s(&[]));
    assert_eq!(h.advance(Duration::from_millis(1)), s(&["play:ni!"]));
    assert_eq!(h.done(), s(&["play:q!"]));
    assert_eq!(h.done(), s(&[]));
    // Silence again: the one retry is spent.
    assert_eq!(
        h.advance(Duration::from_secs(5)),
        s(&["unlisten", "play:bye"])
    );
    assert_eq!(h.done(), s(&["hangup", "finished"]));
    let r = h.result();
    assert_eq!(r.category.as_deref(), Some("no_input"));
    assert_eq!(r.answered_by, Some(AnswerSource::NoAnswer));
}

#[test]
fn no_input_without_retries_or_route_hangs_up() {
    let src = RT
        .replace("no_input_retries = 1", "no_input_retries = 0")
        .replace("on_no_input = \"bye\"\n", "");
    let (mut h, _) = rt_with(&src);
    h.done();
    h.done();
    h.done();
    assert_eq!(
        h.advance(Duration::from_secs(5)),
        s(&["unlisten", "hangup", "finished"])
    );
    assert_eq!(h.result().category.as_deref(), Some("no_input"));
}

#[test]
fn no_match_retries_then_unclassified() {
    let mut h = at_question();
    // Nothing matches: retry. Then a match below the threshold: retries spent.
    assert_eq!(h.say("purple elephants"), s(&["play:nm!"]));
    assert_eq!(h.done(), s(&["play:q!"]));
    assert_eq!(h.done(), s(&[]));
    assert_eq!(h.say("maybe"), s(&["unlisten", "play:bye"]));
    h.done();
    let r = h.result();
    assert_eq!(r.category.as_deref(), Some("unclassified"));
    assert_eq!(r.transcript.as_deref(), Some("maybe"));
    assert_eq!(r.confidence, None);
}

#[test]
fn wrong_key_is_a_no_match_and_repeat_prompt_can_be_off() {
    let src = RT.replace(
        "no_match_retries = 1",
        "no_match_retries = 1\nrepeat_prompt = false",
    );
    let (mut h, _) = rt_with(&src);
    h.done();
    h.done();
    h.done();
    assert_eq!(h.digit('7'), s(&["play:nm!"]));
    // Without repeat_prompt, the retry prompt alone, then listening again.
    assert_eq!(h.done(), s(&[]));
    assert_eq!(h.digit('1'), s(&["unlisten", "play:why!", "listen:s"]));
}

#[test]
fn speech_without_transcript_times_out_as_no_match() {
    let mut h = at_question();
    h.input(Input::SpeechStarted);
    // Talking: the no-input timer is off; max_speech (default 20 s) guards instead.
    assert_eq!(h.advance(Duration::from_secs(10)), s(&[]));
    h.input(Input::SpeechEnded);
    // No transcript within transcript_timeout (3 s): not understood.
    assert_eq!(h.advance(Duration::from_secs(3)), s(&["play:nm!"]));
}

#[test]
fn barge_in_on_stops_the_prompt() {
    let (mut h, _) = rt();
    h.done(); // hello
    assert_eq!(h.done(), s(&["play:q!"]));
    // Speech during a barge-in prompt stops it and is the answer.
    assert_eq!(h.input(Input::SpeechStarted), s(&["stop"]));
    h.input(Input::SpeechEnded);
    assert_eq!(
        h.input(Input::Transcript {
            text: "да".into(),
            confidence: 0.9
        }),
        s(&["unlisten", "play:why!", "listen:s"])
    );
    // A key during a barge-in prompt is the answer at once.
    let (mut h, _) = rt();
    h.done();
    h.done();
    assert_eq!(h.digit('2'), s(&["stop", "unlisten", "play:bye"]));
    // A barge-in play node is skipped by speech or a key.
    let (mut h, _) = rt();
    assert_eq!(h.done(), s(&["play:info!", "listen:sd"]));
    assert_eq!(h.input(Input::SpeechStarted), s(&["stop", "play:q!"]));
}

#[test]
fn barge_in_off_plays_to_the_end() {
    let (mut h, first) = rt();
    assert_eq!(first, s(&["play:hello"]));
    assert_eq!(h.input(Input::SpeechStarted), s(&[]));
    assert_eq!(h.input(Input::SpeechEnded), s(&[]));
    assert_eq!(
        h.input(Input::Transcript {
            text: "yes".into(),
            confidence: 1.0
        }),
        s(&[])
    );
    assert_eq!(
        h.digit('1'),
        s(&[]),
        "a non-global key does not cut a prompt without barge-in"
    );
    assert_eq!(h.done(), s(&["play:info!", "listen:sd"]));
    // Barge-in off on a gather: nothing is taken until the prompt ends.
    let src = RT.replace("prompt = \"q\"\n", "prompt = \"q\"\nbarge_in = false\n");
    let (mut h, _) = rt_with(&src);
    h.done();
    assert_eq!(h.done(), s(&["play:q", "unlisten"]));
    assert_eq!(h.digit('1'), s(&[]));
    assert_eq!(h.done(), s(&["listen:sd"]));
    assert_eq!(h.digit('1'), s(&["unlisten", "play:why!", "listen:s"]));
}

#[test]
fn dtmf_beats_speech() {
    let mut h = at_question();
    h.input(Input::SpeechStarted);
    h.input(Input::SpeechEnded);
    // The key arrives while the recogniser is still working on the utterance.
    assert_eq!(h.digit('2'), s(&["unlisten", "play:bye"]));
    // The late transcript changes nothing.
    assert_eq!(
        h.input(Input::Transcript {
            text: "yes".into(),
            confidence: 0.9
        }),
        s(&[])
    );
    h.done();
    let r = h.result();
    assert_eq!(r.category.as_deref(), Some("no"));
    assert_eq!(r.answered_by, Some(AnswerSource::Dtmf));
    assert_eq!(r.transcript, None);
}

#[test]
fn global_keys_act_during_any_prompt() {
    // 9 during a prompt without barge-in: opt-out.
    let (mut h, _) = rt();
    assert_eq!(h.digit('9'), s(&["stop", "play:bye"]));
    // Keys during the goodbye change nothing.
    assert_eq!(h.digit('0'), s(&[]));
    assert_eq!(h.done(), s(&["hangup", "finished"]));
    let r = h.result();
    assert_eq!(r.category.as_deref(), Some("opt_out"));
    assert_eq!(r.dtmf, "90");
    assert_eq!(r.path, ["hello", "optout"]);

    // 0 during the follow-up question: transfer.
    let mut h = at_question();
    h.digit('1');
    assert_eq!(h.digit('0'), s(&["stop", "unlisten", "play:hold"]));
    assert_eq!(h.done(), s(&["transfer:sip:queue@example.com", "finished"]));
    let r = h.result();
    assert_eq!(r.category.as_deref(), Some("manager"));
    assert_eq!(r.transfer.as_deref(), Some("sip:queue@example.com"));
    assert_eq!(r.end, EndReason::Transferred);
    assert_eq!(r.consent, Some(true), "what was gathered before stays");
}

#[test]
fn asr_unavailable_switches_to_dtmf_only() {
    let (mut h, _) = rt();
    assert_eq!(h.input(Input::AsrUnavailable), s(&[]));
    // The barge-in play node listens for keys only.
    assert_eq!(h.done(), s(&["play:info!", "listen:d"]));
    // The question plays its DTMF-only variant.
    assert_eq!(h.done(), s(&["play:q_dtmf!"]));
    assert_eq!(h.done(), s(&[]));
    assert_eq!(h.input(Input::SpeechStarted), s(&[]));
    assert_eq!(
        h.input(Input::Transcript {
            text: "yes".into(),
            confidence: 1.0
        }),
        s(&[])
    );
    // The follow-up question needs speech: skipped.
    assert_eq!(h.digit('1'), s(&["unlisten", "play:bye"]));
    h.done();
    let r = h.result();
    assert!(r.asr_unavailable);
    assert_eq!(r.category.as_deref(), Some("yes"));
    assert_eq!(r.follow_up, None);
    assert_eq!(r.path, ["hello", "info", "q", "consent", "why", "bye"]);
}

#[test]
fn asr_failure_mid_utterance_asks_again_by_keys() {
    let mut h = at_question();
    h.input(Input::SpeechStarted);
    assert_eq!(
        h.input(Input::AsrUnavailable),
        s(&["play:q_dtmf!", "listen:d"])
    );
    // Not a retry: the no-match budget is untouched.
    h.done();
    assert_eq!(h.digit('7'), s(&["play:nm!"]));
    // During the ask, the recogniser going away moves on.
    let mut h = at_question();
    h.digit('1');
    h.done();
    assert_eq!(h.input(Input::AsrUnavailable), s(&["unlisten", "play:bye"]));
    assert!(h.d.poll_timeout().is_some());
}

#[test]
fn ask_is_optional() {
    let mut h = at_question();
    h.digit('1');
    h.done();
    assert_eq!(
        h.advance(Duration::from_secs(4)),
        s(&["unlisten", "play:bye"])
    );
    h.done();
    let r = h.result();
    assert_eq!(r.follow_up, None);
    assert_eq!(r.category.as_deref(), Some("yes"));
    // An empty transcript is no answer either.
    let mut h = at_question();
    h.digit('1');
    h.done();
    h.say("  ");
    h.done();
    assert_eq!(h.result().follow_up, None);
}

#[test]
fn max_duration_ends_the_call() {
    let (mut h, _) = rt();
    assert_eq!(h.d.poll_timeout(), Some(h.start + Duration::from_secs(60)));
    // The greeting never finishes (a stuck media stream): the limit still ends the call.
    assert_eq!(h.advance(Duration::from_secs(59)), s(&[]));
    assert_eq!(
        h.advance(Duration::from_secs(1)),
        s(&["stop", "hangup", "finished"])
    );
    let r = h.result();
    assert_eq!(r.end, EndReason::MaxDuration);
    assert_eq!(r.duration, Duration::from_secs(60));
    assert_eq!(r.category, None);
    // And while listening: listening stops too.
    let mut h = at_question();
    h.input(Input::SpeechStarted);
    h.now = h.start + Duration::from_secs(60);
    h.d.handle_timeout(h.now);
    assert_eq!(h.drain(), s(&["unlisten", "hangup", "finished"]));
    // An input that arrives after the limit is too late.
    let (mut h, _) = rt();
    h.now += Duration::from_secs(61);
    assert_eq!(h.digit('9'), s(&["stop", "hangup", "finished"]));
    assert_eq!(h.result().category, None);
    assert_eq!(h.result().duration, Duration::from_secs(60));
}

#[test]
fn caller_hang_up_mid_gather_keeps_what_was_gathered() {
    let mut h = at_question();
    // A key no category has (a no-match retry), then the caller starts talking over it.
    assert_eq!(h.digit('5'), s(&["play:nm!"]));
    assert_eq!(h.input(Input::SpeechStarted), s(&["stop"]));
    assert_eq!(h.input(Input::CallerHungUp), s(&["finished"]));
    let r = h.result().clone();
    assert_eq!(r.end, EndReason::CallerHungUp);
    assert_eq!(r.dtmf, "5");
    assert_eq!(r.category, None);
    assert_eq!(r.path, ["hello", "info", "q"]);
    // Nothing after the end does anything.
    for i in [
        Input::PromptFinished,
        Input::Digit('9'),
        Input::CallerHungUp,
        Input::AsrUnavailable,
    ] {
        assert_eq!(h.input(i), s(&[]));
    }
    assert_eq!(h.advance(Duration::from_secs(600)), s(&[]));
    assert_eq!(h.d.result(), Some(&r));
}

#[test]
fn language_falls_back_to_the_default() {
    let script = rt_script(RT);
    let kw = Keywords::from_script(&script, &[]);
    let (mut h, _) = Harness::with_lang(script, Arc::new(kw), Lang::En);
    assert_eq!(h.d.language(), Lang::Ru);
    h.input(Input::CallerHungUp);
    assert_eq!(h.result().language, Some(Lang::Ru));
}

#[test]
fn stale_and_duplicate_inputs_are_harmless() {
    let mut h = at_question();
    // PromptFinished while listening, SpeechEnded without a start, a second AsrUnavailable.
    assert_eq!(h.done(), s(&[]));
    assert_eq!(h.input(Input::SpeechEnded), s(&[]));
    assert_eq!(h.input(Input::AsrUnavailable), s(&["listen:d"]));
    assert_eq!(h.input(Input::AsrUnavailable), s(&[]));
    assert_eq!(h.digit('1'), s(&["unlisten", "play:bye"]));
}

// ---------------------------------------------------------------------------------------------
// The default scripts at run time.

fn default_script(name: &str) -> Arc<Script> {
    Arc::new(Script::load_with(config(name), &default_options()).unwrap_or_else(|e| panic!("{e}")))
}

fn run_default(name: &str) -> Harness {
    let script = default_script(name);
    let kw = Keywords::from_script(&script, &[]);
    Harness::new(script, Arc::new(kw)).0
}

#[test]
fn actualization_flows() {
    // Feedback by speech: ask why, keep the answer, thank.
    let mut h = run_default("actualization.toml");
    h.done();
    assert_eq!(h.done(), s(&["play:question!", "listen:sd"]));
    h.done();
    assert_eq!(
        h.say("Хочу оставить отзыв о вашем сервисе"),
        s(&["unlisten", "play:ask_why!", "listen:s"])
    );
    h.done();
    h.say("Слишком дорого");
    assert_eq!(h.done(), s(&["hangup", "finished"]));
    let r = h.result();
    assert_eq!(r.category.as_deref(), Some("feedback"));
    assert_eq!(r.follow_up.as_deref(), Some("Слишком дорого"));
    assert_eq!(
        r.path,
        [
            "greeting",
            "notice",
            "question",
            "why_feedback",
            "feedback_bye"
        ]
    );

    // Manager by key 1: goodbye prompt, then transfer to the campaign's manager.
    let mut h = run_default("actualization.toml");
    h.done();
    h.done();
    assert_eq!(h.digit('1'), s(&["stop", "unlisten", "play:bye_manager"]));
    assert_eq!(h.done(), s(&["transfer:manager", "finished"]));

    // 9 during the recording notice (no barge-in): opt-out at once.
    let mut h = run_default("actualization.toml");
    h.done();
    assert_eq!(h.digit('9'), s(&["stop", "play:bye_optout"]));
    h.done();
    assert_eq!(h.result().category.as_deref(), Some("opt_out"));

    // Not interested, no reason given: the follow-up is optional.
    let mut h = run_default("actualization.toml");
    h.done();
    h.done();
    h.done();
    h.digit('4');
    h.done();
    assert_eq!(
        h.advance(Duration::from_secs(6)),
        s(&["unlisten", "play:bye_thanks"])
    );
    h.done();
    assert_eq!(h.result().category.as_deref(), Some("not_interested"));
    assert_eq!(h.result().follow_up, None);

    // ASR down: the DTMF-only question.
    let mut h = run_default("actualization.toml");
    h.input(Input::AsrUnavailable);
    h.done();
    assert_eq!(h.done(), s(&["play:question_dtmf!", "listen:d"]));
    h.digit('2');
    h.done();
    assert_eq!(h.result().category.as_deref(), Some("send_details"));
    assert!(h.result().asr_unavailable);
}

#[test]
fn consent_flows() {
    let answer = |inputs: &[Input]| {
        let mut h = run_default("consent.toml");
        h.done();
        h.done();
        h.done();
        for i in inputs {
            h.input(i.clone());
        }
        h.advance(Duration::from_secs(60));
        h.done();
        h.advance(Duration::from_secs(200));
        h.result().clone()
    };
    let yes = answer(&[Input::Digit('1')]);
    assert_eq!(
        (yes.category.as_deref(), yes.consent),
        (Some("consent_yes"), Some(true))
    );
    assert_eq!(yes.path.last().map(String::as_str), Some("thanks"));
    let no = answer(&[Input::Transcript {
        text: "нет".into(),
        confidence: 0.9,
    }]);
    assert_eq!(
        (no.category.as_deref(), no.consent),
        (Some("consent_no"), Some(false))
    );
    let optout = answer(&[Input::Digit('9')]);
    assert_eq!(
        (optout.category.as_deref(), optout.consent),
        (Some("opt_out"), Some(false))
    );
    // Silence through every retry: no consent recorded either way.
    let mut h = run_default("consent.toml");
    let mut guard = 0;
    while !h.d.is_finished() && guard < 100 {
        guard += 1;
        h.done();
        h.advance(Duration::from_secs(6));
    }
    let r = h.result();
    assert_eq!((r.category.as_deref(), r.consent), (Some("no_input"), None));
    assert_eq!(r.path.last().map(String::as_str), Some("no_answer"));
}

// ---------------------------------------------------------------------------------------------
// Reloading.

const V1: &str = r#"[script]
name = "c"
version = "1"
start = "bye"
[prompts.bye]
ru = "bye.wav"
[nodes.bye]
type = "hangup"
prompt = "bye"
"#;

#[test]
fn cache_reloads_changed_files_and_keeps_the_last_good_version() {
    let dir = TempDir::new();
    dir.write("bye.wav", "RIFF");
    let path = dir.write("s.toml", V1);
    let cache = ScriptCache::new(LoadOptions::default());
    let a = cache.get(&path).unwrap();
    assert!(a.version_id().starts_with("1-"));
    assert!(
        Arc::ptr_eq(&a, &cache.get(&path).unwrap()),
        "unchanged file: same Arc"
    );

    // A call starts on version 1.
    let kw = Arc::new(Keywords(Vec::new()));
    let (mut call, _) = Harness::new(Arc::clone(&a), kw.clone());

    // The operator edits the file (different size, so even a coarse mtime sees it).
    std::fs::write(&path, V1.replace("version = \"1\"", "version = \"2.0\"")).unwrap();
    let b = cache.get(&path).unwrap();
    assert!(b.version_id().starts_with("2.0-"), "{}", b.version_id());
    assert!(
        a.version_id().starts_with("1-"),
        "the old Arc keeps its version"
    );
    call.done();
    assert!(call.result().script_version.starts_with("1-"));
    let (mut new_call, _) = Harness::new(cache.get(&path).unwrap(), kw);
    new_call.done();
    assert!(new_call.result().script_version.starts_with("2.0-"));

    // A broken edit: the last good version stays in service; the error is there to report.
    std::fs::write(&path, V1.replace("start = \"bye\"", "start = \"by\"\n")).unwrap();
    let still = cache.get(&path).unwrap();
    assert!(Arc::ptr_eq(&still, &b));
    let err = cache.last_error(&path).expect("error kept");
    assert!(err.has(DiagnosticKind::UnknownNode), "{err}");
    let forced = cache.reload(&path).unwrap_err();
    assert_eq!(forced, err);
    assert!(Arc::ptr_eq(&cache.current(&path).unwrap(), &b));

    // Fixed again: the new version comes into service.
    std::fs::write(&path, V1.replace("version = \"1\"", "version = \"3.00\"")).unwrap();
    let c = cache.get(&path).unwrap();
    assert!(c.version_id().starts_with("3.00-"));
    assert!(cache.last_error(&path).is_none());

    // The same bytes written again: same version, same Arc.
    std::fs::write(&path, V1.replace("version = \"1\"", "version = \"3.00\"")).unwrap();
    assert!(Arc::ptr_eq(&cache.reload(&path).unwrap(), &c));

    // A file that never loaded: the error.
    let bad = dir.write("bad.toml", "[script\n");
    assert!(cache.get(&bad).unwrap_err().has(DiagnosticKind::Syntax));
    assert!(
        cache
            .get(dir.0.join("missing.toml"))
            .unwrap_err()
            .has(DiagnosticKind::Io)
    );
}

// ---------------------------------------------------------------------------------------------
// Random input sequences in simulated time.

/// xorshift64*: small, seeded, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn thousand_random_dialogues_all_finish() {
    let scripts = [
        rt_script(RT),
        default_script("actualization.toml"),
        default_script("consent.toml"),
    ];
    let texts = [
        "yes",
        "no",
        "maybe",
        "manager",
        "remove",
        "later",
        "",
        "   ",
        "да",
        "нет",
        "хочу оставить отзыв",
        "не интересно",
        "удалите мой номер",
        "соедините с менеджером",
        "отправьте на почту",
        "сейчас не актуально",
        "purple",
        "ё!?",
    ];
    let digits = [
        '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'd', 'x',
    ];
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut ends = std::collections::BTreeMap::new();
    let mut categories = std::collections::BTreeSet::new();
    for n in 0..1000 {
        let script = Arc::clone(&scripts[n % scripts.len()]);
        let max = script.max_duration();
        let kw = Keywords::from_script(&script, &[("maybe", "yes", 0.3)]);
        let lang = Lang::ALL[rng.below(3) as usize];
        let start = Instant::now();
        let mut now = start;
        let mut d = Dialogue::new(script, Arc::new(kw), lang, now);
        let mut finished: Option<DialogueResult> = None;
        let mut playing = false;
        let mut steps = 0;
        // Callers differ: some key and talk all the time, some say nothing at all; on some
        // calls the media never reports a prompt's end.
        let profile = rng.below(5);
        loop {
            while let Some(out) = d.poll_output() {
                assert!(finished.is_none(), "output after Finished: {out:?}");
                match out {
                    Output::Play { path, .. } => {
                        assert!(!path.as_os_str().is_empty());
                        playing = true;
                    }
                    Output::StopPlayback => {
                        assert!(playing, "StopPlayback with nothing playing");
                        playing = false;
                    }
                    Output::Finished(r) => finished = Some(*r),
                    _ => {}
                }
            }
            if finished.is_some() {
                break;
            }
            steps += 1;
            assert!(steps < 10_000, "dialogue {n} did not finish");
            let deadline = d.poll_timeout().expect("a running dialogue has a timer");
            assert!(deadline <= start + max, "timer past max_duration");
            let action = match profile {
                0 => [0, 1, 2, 10][rng.below(4) as usize],
                1 => [1, 1, 4, 5, 6][rng.below(5) as usize],
                _ => rng.below(12),
            };
            match action {
                // Time passes: up to the next listening timer, or a little while prompts play.
                0 if deadline < start + max => now = deadline,
                0 | 1 => now += Duration::from_millis(rng.below(3000)),
                2 | 3 => {
                    playing = false;
                    d.handle_input(now, Input::PromptFinished);
                }
                4 => d.handle_input(now, Input::Digit(digits[rng.below(15) as usize])),
                5 => d.handle_input(now, Input::SpeechStarted),
                6 => d.handle_input(now, Input::SpeechEnded),
                7 | 8 => d.handle_input(
                    now,
                    Input::Transcript {
                        text: texts[rng.below(texts.len() as u64) as usize].into(),
                        confidence: [0.0, 0.5, 1.0, f32::NAN][rng.below(4) as usize],
                    },
                ),
                9 if rng.below(20) == 0 => d.handle_input(now, Input::AsrUnavailable),
                10 if rng.below(30) == 0 => d.handle_input(now, Input::CallerHungUp),
                _ => {}
            }
            if now >= deadline {
                d.handle_timeout(now);
            }
        }
        let r = finished.unwrap();
        assert_eq!(d.result(), Some(&r));
        assert!(d.poll_timeout().is_none());
        assert!(r.duration <= max);
        assert!(r.nodes_visited >= 1 && !r.path.is_empty());
        assert!(r.dtmf.len() <= DTMF_LIMIT);
        *ends.entry(format!("{:?}", r.end)).or_insert(0) += 1;
        categories.extend(r.category);
    }
    eprintln!("ends: {ends:?}\ncategories: {categories:?}");
    // The inputs reached the interesting corners, not only one path.
    for end in ["Completed", "Transferred", "CallerHungUp", "MaxDuration"] {
        assert!(ends.get(end).is_some_and(|n| *n > 10), "{ends:?}");
    }
    for c in ["no_input", "unclassified", "opt_out", "yes"] {
        assert!(categories.contains(c), "{categories:?}");
    }
}
