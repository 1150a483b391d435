//! Reading and validating a script file. Every problem found is reported, each with the file,
//! line, column and field path; a syntax error stops the reading at that error (TOML after it
//! cannot be trusted), everything else is collected.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::lang::{CategorySpec, Lang};

use super::diag::{DiagnosticKind as K, ScriptErrors, Sink, join, key_segment};
use super::format::{
    AskDef, CategoryDef, ConsentDef, DurationValue, GatherDef, HangupDef, NODE_TYPES, NodeDef,
    PlayDef, PromptDef, ScriptDef, SetCategoryDef, Str, TransferDef,
};
use super::model::{
    CatId, CategoryInfo, Gather, NO_INPUT, Node, NodeId, NodeKind, Prompt, PromptId, Retry, Script,
    UNCLASSIFIED,
};

/// How strictly [`Script::load_with`] checks.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Check that every prompt WAV exists (default `true`). Turn off only to validate a script
    /// on a machine without its prompts.
    pub check_prompt_files: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            check_prompt_files: true,
        }
    }
}

impl LoadOptions {
    /// The defaults, without the prompt-file check.
    pub fn without_prompt_files() -> LoadOptions {
        LoadOptions {
            check_prompt_files: false,
        }
    }
}

// Defaults and limits, in seconds.
const DEFAULT_MAX_DURATION: f64 = 300.0;
const LIMIT_MAX_DURATION: f64 = 3600.0;
const DEFAULT_NO_INPUT: f64 = 5.0;
const DEFAULT_MAX_SPEECH: f64 = 20.0;
const DEFAULT_TRANSCRIPT: f64 = 5.0;
const LIMIT_TIMEOUT: f64 = 120.0;
const DEFAULT_THRESHOLD: f64 = 0.5;
const MAX_RETRIES: i64 = 10;

impl Script {
    /// Load and validate the script at `path`, checking that its prompt files exist.
    pub fn load(path: impl AsRef<Path>) -> Result<Script, ScriptErrors> {
        Script::load_with(path, &LoadOptions::default())
    }

    /// Load and validate the script at `path`.
    pub fn load_with(
        path: impl AsRef<Path>,
        options: &LoadOptions,
    ) -> Result<Script, ScriptErrors> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| ScriptErrors::io(path, format!("cannot read the script: {e}")))?;
        Script::from_bytes(&bytes, path, options)
    }

    /// Validate script bytes as if read from `path` (which names the file in errors and is the
    /// base for relative prompt paths).
    pub fn from_bytes(
        bytes: &[u8],
        path: &Path,
        options: &LoadOptions,
    ) -> Result<Script, ScriptErrors> {
        let src = std::str::from_utf8(bytes).map_err(|e| {
            ScriptErrors::io(
                path,
                format!("not UTF-8 text (at byte {})", e.valid_up_to()),
            )
        })?;
        Script::parse(src, path, options)
    }

    /// Validate script text as if read from `path`.
    pub fn parse(src: &str, path: &Path, options: &LoadOptions) -> Result<Script, ScriptErrors> {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let loader = Loader {
            sink: Sink::new(path, src),
            src,
            path,
            dir,
            options,
        };
        loader.run()
    }
}

struct Loader<'a> {
    sink: Sink<'a>,
    src: &'a str,
    path: &'a Path,
    dir: PathBuf,
    options: &'a LoadOptions,
}

type Value<'i> = Spanned<DeValue<'i>>;

/// Names declared in the file and their indices.
#[derive(Default)]
struct Ids {
    prompts: BTreeMap<String, PromptId>,
    nodes: BTreeMap<String, NodeId>,
    cats: BTreeMap<String, CatId>,
    /// Placeholders for categories whose table failed to read.
    broken_cats: BTreeSet<CatId>,
    /// Categories declared with keys or phrases (valid or not), which a caller could select.
    selectable: BTreeSet<CatId>,
}

/// The `[script]` values, defaults applied.
struct Settings {
    languages: Vec<Lang>,
    default_language: Lang,
    barge_in: bool,
    no_input_timeout: Duration,
}

impl<'a> Loader<'a> {
    fn run(mut self) -> Result<Script, ScriptErrors> {
        let doc = match DeTable::parse(self.src) {
            Ok(doc) => doc,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let path = text_path(self.src, span.start);
                self.sink.error(K::Syntax, Some(span), &path, e.message());
                return Err(self.sink.finish());
            }
        };

        // Pass 1: each section on its own, so one bad node does not hide the next.
        let mut script_def: Option<ScriptDef> = None;
        // A section that fails to read still declares its id, so that references to it do not
        // pile up as a second, misleading error.
        let mut prompt_defs: Vec<(String, Range<usize>, Option<PromptDef>)> = Vec::new();
        let mut cat_defs: Vec<(usize, Range<usize>, CategoryDef)> = Vec::new();
        let mut broken_cats: Vec<String> = Vec::new();
        let mut node_defs: Vec<(String, Range<usize>, Option<NodeDef>)> = Vec::new();
        let mut saw_script = false;
        for (key, value) in doc.get_ref().iter() {
            let name: &str = key.get_ref();
            match name {
                "script" => {
                    saw_script = true;
                    script_def = self.de(value, "script");
                }
                "prompts" => {
                    if let Some(t) = self.table(value, "prompts") {
                        for (id, v) in t.iter() {
                            let path = join("prompts", id.get_ref());
                            let def = self.de::<PromptDef>(v, &path);
                            prompt_defs.push((id.get_ref().to_string(), v.span(), def));
                        }
                    }
                }
                "category" => match value.get_ref() {
                    DeValue::Array(items) => {
                        for (i, v) in items.iter().enumerate() {
                            let path = format!("category[{i}]");
                            match self.de::<CategoryDef>(v, &path) {
                                Some(def) => cat_defs.push((i, v.span(), def)),
                                None => broken_cats.extend(raw_id(v)),
                            }
                        }
                    }
                    _ => self.sink.error(
                        K::Shape,
                        Some(key.span()),
                        "category",
                        "categories are an array of tables: write each as [[category]]",
                    ),
                },
                "nodes" => {
                    if let Some(t) = self.table(value, "nodes") {
                        for (id, v) in t.iter() {
                            let path = join("nodes", id.get_ref());
                            let def = self.node_def(v, &path);
                            node_defs.push((id.get_ref().to_string(), v.span(), def));
                        }
                    }
                }
                other => self.sink.error(
                    K::Shape,
                    Some(key.span()),
                    &key_segment(other),
                    format!(
                        "unknown section \"{other}\" (expected script, prompts, category, nodes)"
                    ),
                ),
            }
        }
        if !saw_script {
            self.sink.error(
                K::Shape,
                Some(0..0),
                "script",
                "missing [script] table (with name, version and start)",
            );
        }
        if node_defs.is_empty() {
            self.sink.error(
                K::Shape,
                Some(0..0),
                "nodes",
                "the script has no nodes ([nodes.<id>] tables)",
            );
        }

        // Names first, so that references can point forwards.
        let mut ids = Ids::default();
        for (i, (id, _, _)) in prompt_defs.iter().enumerate() {
            ids.prompts.insert(id.clone(), i);
        }
        for (i, (id, _, _)) in node_defs.iter().enumerate() {
            ids.nodes.insert(id.clone(), i);
        }

        // Pass 2: [script].
        let settings = self.settings(script_def.as_ref());

        // Categories.
        let (mut specs, mut infos) = self.categories(&cat_defs, &mut ids, &settings);
        for id in broken_cats {
            // Placeholders: errors were reported; keep references to them quiet.
            ids.cats.entry(id.clone()).or_insert(specs.len());
            ids.broken_cats.insert(specs.len());
            specs.push(CategorySpec {
                id,
                ..CategorySpec::default()
            });
            infos.push(CategoryInfo {
                global_keys: Vec::new(),
                then: None,
                label: BTreeMap::new(),
            });
        }

        // Prompts.
        let prompts = self.prompts(&prompt_defs, &ids, &settings);

        // Nodes.
        let mut nodes = Vec::with_capacity(node_defs.len());
        let mut edges: Vec<Vec<NodeId>> = Vec::with_capacity(node_defs.len());
        let mut used_prompts = BTreeSet::new();
        for (id, span, def) in &node_defs {
            let path = join("nodes", id);
            let mut out = Vec::new();
            let kind = def.as_ref().and_then(|def| {
                self.node(
                    def,
                    &path,
                    span.clone(),
                    &ids,
                    &settings,
                    &specs,
                    &infos,
                    &mut out,
                    &mut used_prompts,
                )
            });
            edges.push(out);
            nodes.push(kind.map(|kind| Node {
                id: id.clone(),
                kind,
            }));
        }

        let start = script_def
            .as_ref()
            .and_then(|d| self.node_ref(&d.start, "script.start", &ids));

        // Global keys lead somewhere from anywhere: they are roots for reachability.
        let mut roots: Vec<NodeId> = start.into_iter().collect();
        roots.extend(
            infos
                .iter()
                .filter(|i| !i.global_keys.is_empty())
                .filter_map(|i| i.then),
        );
        let is_gather: Vec<bool> = node_defs
            .iter()
            .map(|(_, _, d)| matches!(d, Some(NodeDef::Gather(_))))
            .collect();
        self.loops(&node_defs, &edges, &is_gather);

        if self.sink.errors.is_empty() {
            self.unreachable(&node_defs, &edges, &roots, start);
            for (i, (id, span, _)) in prompt_defs.iter().enumerate() {
                let variant_of_used = prompts
                    .iter()
                    .enumerate()
                    .any(|(j, p)| used_prompts.contains(&j) && p.dtmf_only == Some(i));
                if !used_prompts.contains(&i) && !variant_of_used {
                    self.sink.warn(
                        K::UnusedPrompt,
                        Some(span.clone()),
                        &join("prompts", id),
                        "no node plays this prompt",
                    );
                }
            }
        }

        let (Some(def), Some(start), true) = (script_def, start, self.sink.errors.is_empty())
        else {
            return Err(self.sink.finish());
        };
        let nodes: Vec<Node> = nodes.into_iter().flatten().collect();
        if nodes.len() != node_defs.len() {
            // Unreachable: every node that failed to build reported an error.
            return Err(self.sink.finish());
        }
        let digest = Sha256::digest(self.src.as_bytes());
        let version = def.version.get_ref().clone();
        let version_id = format!("{version}-{}", &hex::encode(digest)[..8]);
        let threshold = def
            .threshold
            .as_ref()
            .map_or(DEFAULT_THRESHOLD, |t| *t.get_ref()) as f32;
        let max_duration = checked_or(def.max_duration.as_ref(), DEFAULT_MAX_DURATION);
        let max_speech = checked_or(def.max_speech.as_ref(), DEFAULT_MAX_SPEECH);
        let transcript_timeout = checked_or(def.transcript_timeout.as_ref(), DEFAULT_TRANSCRIPT);
        let warnings = self.sink.finish().warnings;
        Ok(Script {
            name: def.name.get_ref().clone(),
            version,
            version_id,
            description: def.description,
            path: self.path.to_path_buf(),
            languages: settings.languages,
            default_language: settings.default_language,
            threshold,
            max_duration,
            max_speech,
            transcript_timeout,
            record: def.record.unwrap_or(false),
            start,
            prompts,
            categories: specs,
            category_info: infos,
            nodes,
            warnings,
        })
    }

    /// Deserialize one section, reporting a shape error at its exact place.
    fn de<T: DeserializeOwned>(&mut self, v: &Value<'_>, base: &str) -> Option<T> {
        match T::deserialize(ValueDeserializer::from(v.clone())) {
            Ok(t) => Some(t),
            Err(e) => {
                let span = e.span().unwrap_or_else(|| v.span());
                let mut segs = Vec::new();
                find_path(v, span.start, &mut segs);
                let mut path = base.to_owned();
                for s in segs {
                    if !s.starts_with('[') {
                        path.push('.');
                    }
                    path.push_str(&s);
                }
                self.sink.error(K::Shape, Some(span), &path, e.message());
                None
            }
        }
    }

    fn table<'v, 'i>(&mut self, v: &'v Value<'i>, path: &str) -> Option<&'v DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.sink.error(
                    K::Shape,
                    Some(v.span()),
                    path,
                    format!("expected a table, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn node_def(&mut self, v: &Value<'_>, path: &str) -> Option<NodeDef> {
        let t = self.table(v, path)?;
        let Some((_, ty)) = t.iter().find(|(k, _)| {
            let k: &str = k.get_ref();
            k == "type"
        }) else {
            self.sink.error(
                K::Shape,
                Some(v.span()),
                path,
                format!("missing field `type` (one of {})", NODE_TYPES.join(", ")),
            );
            return None;
        };
        let type_path = format!("{path}.type");
        let Some(kind) = ty.get_ref().as_str() else {
            self.sink.error(
                K::Shape,
                Some(ty.span()),
                &type_path,
                format!("expected a string, found {}", ty.get_ref().type_str()),
            );
            return None;
        };
        Some(match kind {
            "play" => NodeDef::Play(self.de::<PlayDef>(v, path)?),
            "gather" => NodeDef::Gather(Box::new(self.de::<GatherDef>(v, path)?)),
            "ask" => NodeDef::Ask(self.de::<AskDef>(v, path)?),
            "transfer" => NodeDef::Transfer(self.de::<TransferDef>(v, path)?),
            "set_category" => NodeDef::SetCategory(self.de::<SetCategoryDef>(v, path)?),
            "consent" => NodeDef::Consent(self.de::<ConsentDef>(v, path)?),
            "hangup" => NodeDef::Hangup(self.de::<HangupDef>(v, path)?),
            other => {
                let hint = suggest(other, NODE_TYPES.iter().copied());
                self.sink.error(
                    K::Shape,
                    Some(ty.span()),
                    &type_path,
                    format!(
                        "unknown node type \"{other}\"{hint} (expected one of {})",
                        NODE_TYPES.join(", ")
                    ),
                );
                return None;
            }
        })
    }

    fn settings(&mut self, def: Option<&ScriptDef>) -> Settings {
        let mut settings = Settings {
            languages: vec![Lang::Ru],
            default_language: Lang::Ru,
            barge_in: true,
            no_input_timeout: Duration::from_secs_f64(DEFAULT_NO_INPUT),
        };
        let Some(def) = def else {
            return settings;
        };
        for (field, v) in [
            ("name", &def.name),
            ("version", &def.version),
            ("start", &def.start),
        ] {
            if v.get_ref().trim().is_empty() {
                self.sink.error(
                    K::BadValue,
                    Some(v.span()),
                    &format!("script.{field}"),
                    "must not be empty",
                );
            }
        }
        let mut languages = Vec::new();
        if let Some(list) = &def.languages {
            for (i, l) in list.get_ref().iter().enumerate() {
                match self.lang(l, &format!("script.languages[{i}]")) {
                    Some(lang) if !languages.contains(&lang) => languages.push(lang),
                    _ => {}
                }
            }
            if list.get_ref().is_empty() {
                self.sink.error(
                    K::BadValue,
                    Some(list.span()),
                    "script.languages",
                    "must name at least one language",
                );
            }
        }
        let default = def.default_language.as_ref().and_then(|l| {
            self.lang(l, "script.default_language")
                .map(|x| (x, l.span()))
        });
        match (default, languages.is_empty()) {
            (Some((d, span)), false) => {
                if !languages.contains(&d) {
                    self.sink.error(
                        K::BadValue,
                        Some(span),
                        "script.default_language",
                        format!("\"{d}\" is not one of the script's languages"),
                    );
                }
                settings.default_language = d;
            }
            (Some((d, _)), true) => {
                settings.default_language = d;
                languages.push(d);
            }
            (None, false) => settings.default_language = languages[0],
            (None, true) => languages.push(Lang::Ru),
        }
        settings.languages = languages;
        if let Some(t) = &def.threshold {
            let v = *t.get_ref();
            if !(v > 0.0 && v <= 1.0) {
                self.sink.error(
                    K::BadValue,
                    Some(t.span()),
                    "script.threshold",
                    format!("must be greater than 0 and at most 1, not {v}"),
                );
            }
        }
        settings.barge_in = def.barge_in.unwrap_or(true);
        if let Some(d) = &def.max_duration {
            self.duration(d, LIMIT_MAX_DURATION, "script.max_duration");
        }
        if let Some(d) = &def.max_speech {
            self.duration(d, LIMIT_TIMEOUT, "script.max_speech");
        }
        if let Some(d) = &def.transcript_timeout {
            self.duration(d, LIMIT_TIMEOUT, "script.transcript_timeout");
        }
        if let Some(d) = &def.no_input_timeout
            && let Some(t) = self.duration(d, LIMIT_TIMEOUT, "script.no_input_timeout")
        {
            settings.no_input_timeout = t;
        }
        settings
    }

    fn lang(&mut self, l: &Str, path: &str) -> Option<Lang> {
        let lang = Lang::parse(l.get_ref());
        if lang.is_none() {
            self.sink.error(
                K::UnknownLanguage,
                Some(l.span()),
                path,
                format!(
                    "unknown language \"{}\" (expected ru, uk or en)",
                    l.get_ref()
                ),
            );
        }
        lang
    }

    /// A checked duration: readable, positive, at most `limit` seconds.
    fn duration(&mut self, d: &Spanned<DurationValue>, limit: f64, path: &str) -> Option<Duration> {
        let Some(secs) = d.get_ref().seconds() else {
            let shown = match d.get_ref() {
                DurationValue::Text(t) => format!("{t:?}"),
                DurationValue::Seconds(s) => s.to_string(),
            };
            self.sink.error(
                K::BadDuration,
                Some(d.span()),
                path,
                format!(
                    "bad duration {shown}: write seconds (6, 1.5) or a string with a unit (\"500ms\", \"6s\", \"3m\")"
                ),
            );
            return None;
        };
        if !secs.is_finite() || secs <= 0.0 {
            self.sink.error(
                K::BadDuration,
                Some(d.span()),
                path,
                format!("duration must be greater than zero, not {secs}"),
            );
            return None;
        }
        if secs > limit {
            self.sink.error(
                K::BadDuration,
                Some(d.span()),
                path,
                format!("duration {secs} s is over the limit of {limit} s"),
            );
            return None;
        }
        Some(Duration::from_secs_f64(secs))
    }

    fn categories(
        &mut self,
        defs: &[(usize, Range<usize>, CategoryDef)],
        ids: &mut Ids,
        settings: &Settings,
    ) -> (Vec<CategorySpec>, Vec<CategoryInfo>) {
        let mut specs = Vec::with_capacity(defs.len());
        let mut infos = Vec::with_capacity(defs.len());
        let mut key_owner: BTreeMap<char, String> = BTreeMap::new();
        let mut first_line: BTreeMap<String, usize> = BTreeMap::new();
        for (i, span, def) in defs {
            let base = format!("category[{i}]");
            let id = def.id.get_ref().trim().to_owned();
            let id_path = format!("{base}.id");
            if id.is_empty() || id.chars().any(char::is_whitespace) {
                self.sink.error(
                    K::BadValue,
                    Some(def.id.span()),
                    &id_path,
                    "a category id is one word, like \"manager_call\"",
                );
            } else if id == NO_INPUT || id == UNCLASSIFIED {
                self.sink.error(
                    K::BadValue,
                    Some(def.id.span()),
                    &id_path,
                    format!("\"{id}\" is a reserved outcome, not a category id"),
                );
            } else if let Some(line) = first_line.get(&id) {
                self.sink.error(
                    K::DuplicateCategory,
                    Some(def.id.span()),
                    &id_path,
                    format!("duplicate category id \"{id}\" (first declared at line {line})"),
                );
            } else {
                let (line, _) = super::diag::line_col(self.src, def.id.span().start);
                first_line.insert(id.clone(), line);
                ids.cats.insert(id.clone(), specs.len());
            }
            if !def.keys.is_empty() || !def.global_keys.is_empty() || !def.phrases.is_empty() {
                ids.selectable.insert(specs.len());
            }

            let mut keys = Vec::new();
            let all_keys = def
                .keys
                .iter()
                .enumerate()
                .map(|(j, k)| (k, format!("{base}.keys[{j}]"), false))
                .chain(
                    def.global_keys
                        .iter()
                        .enumerate()
                        .map(|(j, k)| (k, format!("{base}.global_keys[{j}]"), true)),
                );
            let mut global_keys = Vec::new();
            for (k, path, is_global) in all_keys {
                let Some(key) = dtmf_key(k.get_ref()) else {
                    self.sink.error(
                        K::BadKey,
                        Some(k.span()),
                        &path,
                        format!("bad DTMF key \"{}\": one of 0-9, *, #, A-D", k.get_ref()),
                    );
                    continue;
                };
                if is_global {
                    if !global_keys.contains(&key) {
                        global_keys.push(key);
                    }
                    if keys.contains(&key) {
                        continue; // listed in keys too: fine
                    }
                } else if keys.contains(&key) {
                    self.sink.error(
                        K::DuplicateKey,
                        Some(k.span()),
                        &path,
                        format!("key \"{key}\" is listed twice"),
                    );
                    continue;
                }
                if let Some(owner) = key_owner.get(&key)
                    && *owner != id
                {
                    self.sink.error(
                        K::DuplicateKey,
                        Some(k.span()),
                        &path,
                        format!("key \"{key}\" is already used by category \"{owner}\""),
                    );
                    continue;
                }
                key_owner.insert(key, id.clone());
                keys.push(key);
            }
            if def.global {
                if keys.is_empty() {
                    self.sink.error(
                        K::BadValue,
                        Some(span.clone()),
                        &format!("{base}.global"),
                        "global = true needs keys to act on",
                    );
                }
                for k in &keys {
                    if !global_keys.contains(k) {
                        global_keys.push(*k);
                    }
                }
            }
            if !global_keys.is_empty() && def.then.is_none() {
                self.sink.error(
                    K::NoRoute,
                    Some(def.id.span()),
                    &base,
                    format!(
                        "category \"{id}\" has global keys but no `then`: the node a global key goes to"
                    ),
                );
            }
            let then = def
                .then
                .as_ref()
                .and_then(|t| self.node_ref(t, &format!("{base}.then"), ids));

            let mut phrases: BTreeMap<Lang, Vec<String>> = BTreeMap::new();
            for (l, list) in &def.phrases {
                let path = format!("{base}.phrases.{}", key_segment(l.get_ref()));
                if let Some(lang) = self.lang(l, &path) {
                    let list: Vec<String> = list
                        .iter()
                        .map(|p| p.trim().to_owned())
                        .filter(|p| !p.is_empty())
                        .collect();
                    phrases.insert(lang, list);
                }
            }
            if !phrases.is_empty() {
                for lang in &settings.languages {
                    if phrases.get(lang).is_none_or(Vec::is_empty) {
                        self.sink.warn(
                            K::MissingPhrases,
                            Some(def.id.span()),
                            &base,
                            format!(
                                "category \"{id}\" has no {lang} phrases: speech in {lang} cannot select it"
                            ),
                        );
                    }
                }
            }
            let mut label = BTreeMap::new();
            for (l, text) in &def.label {
                let path = format!("{base}.label.{}", key_segment(l.get_ref()));
                if let Some(lang) = self.lang(l, &path) {
                    label.insert(lang, text.clone());
                }
            }
            specs.push(CategorySpec { id, keys, phrases });
            infos.push(CategoryInfo {
                global_keys,
                then,
                label,
            });
        }
        (specs, infos)
    }

    fn prompts(
        &mut self,
        defs: &[(String, Range<usize>, Option<PromptDef>)],
        ids: &Ids,
        settings: &Settings,
    ) -> Vec<Prompt> {
        let mut prompts = Vec::with_capacity(defs.len());
        for (id, span, def) in defs {
            let base = join("prompts", id);
            let Some(def) = def else {
                prompts.push(Prompt {
                    id: id.clone(),
                    files: BTreeMap::new(),
                    text: BTreeMap::new(),
                    dtmf_only: None,
                });
                continue;
            };
            let mut files = BTreeMap::new();
            for (lang, file) in [
                (Lang::Ru, &def.ru),
                (Lang::Uk, &def.uk),
                (Lang::En, &def.en),
            ] {
                let Some(file) = file else { continue };
                let path = format!("{base}.{lang}");
                if file.get_ref().trim().is_empty() {
                    self.sink
                        .error(K::BadValue, Some(file.span()), &path, "empty file path");
                    continue;
                }
                let resolved = self.dir.join(file.get_ref());
                if self.options.check_prompt_files && !resolved.is_file() {
                    self.sink.error(
                        K::MissingPromptFile,
                        Some(file.span()),
                        &path,
                        format!("prompt file not found: {}", resolved.display()),
                    );
                }
                files.insert(lang, resolved);
            }
            for lang in &settings.languages {
                if !files.contains_key(lang) {
                    let spoken: Vec<&str> = settings.languages.iter().map(|l| l.code()).collect();
                    self.sink.error(
                        K::MissingPromptLanguage,
                        Some(span.clone()),
                        &base,
                        format!(
                            "no {lang} file (the script speaks {}; add {lang} = \"…wav\")",
                            spoken.join(", ")
                        ),
                    );
                }
            }
            let mut text = BTreeMap::new();
            for (l, t) in &def.text {
                let path = format!("{base}.text.{}", key_segment(l.get_ref()));
                if let Some(lang) = self.lang(l, &path) {
                    text.insert(lang, t.clone());
                }
            }
            let dtmf_only = def.dtmf_only.as_ref().and_then(|v| {
                let path = format!("{base}.dtmf_only");
                let p = self.prompt_ref(v, &path, ids)?;
                if v.get_ref() == id {
                    self.sink.error(
                        K::BadValue,
                        Some(v.span()),
                        &path,
                        "a prompt cannot be its own DTMF-only variant",
                    );
                    return None;
                }
                Some(p)
            });
            prompts.push(Prompt {
                id: id.clone(),
                files,
                text,
                dtmf_only,
            });
        }
        prompts
    }

    fn node_ref(&mut self, v: &Str, path: &str, ids: &Ids) -> Option<NodeId> {
        let r = ids.nodes.get(v.get_ref()).copied();
        if r.is_none() {
            let hint = suggest(v.get_ref(), ids.nodes.keys().map(String::as_str));
            self.sink.error(
                K::UnknownNode,
                Some(v.span()),
                path,
                format!("unknown node \"{}\"{hint}", v.get_ref()),
            );
        }
        r
    }

    fn prompt_ref(&mut self, v: &Str, path: &str, ids: &Ids) -> Option<PromptId> {
        let r = ids.prompts.get(v.get_ref()).copied();
        if r.is_none() {
            let hint = suggest(v.get_ref(), ids.prompts.keys().map(String::as_str));
            self.sink.error(
                K::UnknownPrompt,
                Some(v.span()),
                path,
                format!("unknown prompt \"{}\"{hint}", v.get_ref()),
            );
        }
        r
    }

    fn category_ref(&mut self, v: &Str, path: &str, ids: &Ids) -> Option<CatId> {
        let r = ids.cats.get(v.get_ref()).copied();
        if r.is_none() {
            let hint = suggest(v.get_ref(), ids.cats.keys().map(String::as_str));
            self.sink.error(
                K::UnknownCategory,
                Some(v.span()),
                path,
                format!("unknown category \"{}\"{hint}", v.get_ref()),
            );
        }
        r
    }

    fn timeout(
        &mut self,
        d: Option<&Spanned<DurationValue>>,
        path: &str,
        default: Duration,
    ) -> Duration {
        d.and_then(|d| self.duration(d, LIMIT_TIMEOUT, path))
            .unwrap_or(default)
    }

    fn retries(&mut self, r: Option<&Spanned<i64>>, path: &str) -> u8 {
        let Some(r) = r else { return 1 };
        let v = *r.get_ref();
        if !(0..=MAX_RETRIES).contains(&v) {
            self.sink.error(
                K::BadValue,
                Some(r.span()),
                path,
                format!("retries must be 0 to {MAX_RETRIES}, not {v}"),
            );
            return 1;
        }
        v as u8
    }

    #[allow(clippy::too_many_arguments)]
    fn node(
        &mut self,
        def: &NodeDef,
        base: &str,
        span: Range<usize>,
        ids: &Ids,
        settings: &Settings,
        specs: &[CategorySpec],
        infos: &[CategoryInfo],
        edges: &mut Vec<NodeId>,
        used: &mut BTreeSet<PromptId>,
    ) -> Option<NodeKind> {
        let p = |s: &str| format!("{base}.{s}");
        let mut prompt = |this: &mut Self, v: &Str, field: &str| {
            let r = this.prompt_ref(v, &p(field), ids);
            used.extend(r);
            r
        };
        let mut next = |this: &mut Self, v: &Str, field: &str| {
            let r = this.node_ref(v, &p(field), ids);
            edges.extend(r);
            r
        };
        Some(match def {
            NodeDef::Play(d) => {
                let pr = prompt(self, &d.prompt, "prompt");
                let n = next(self, &d.next, "next");
                NodeKind::Play {
                    prompt: pr?,
                    barge_in: d.barge_in.unwrap_or(settings.barge_in),
                    next: n?,
                }
            }
            NodeDef::Ask(d) => {
                let pr = prompt(self, &d.prompt, "prompt");
                let timeout =
                    self.timeout(d.timeout.as_ref(), &p("timeout"), settings.no_input_timeout);
                let n = next(self, &d.next, "next");
                NodeKind::Ask {
                    prompt: pr?,
                    barge_in: d.barge_in.unwrap_or(settings.barge_in),
                    timeout,
                    next: n?,
                }
            }
            NodeDef::Transfer(d) => {
                let pr = match &d.prompt {
                    Some(v) => Some(prompt(self, v, "prompt")?),
                    None => None,
                };
                let t = d.target.get_ref().trim();
                let ok = t == "manager"
                    || ["sip:", "sips:", "tel:"]
                        .iter()
                        .any(|s| t.len() > s.len() && t.to_ascii_lowercase().starts_with(s));
                if !ok {
                    self.sink.error(
                        K::BadValue,
                        Some(d.target.span()),
                        &p("target"),
                        format!(
                            "transfer target \"{t}\" is neither \"manager\" nor a sip:, sips: or tel: URI"
                        ),
                    );
                    return None;
                }
                NodeKind::Transfer {
                    prompt: pr,
                    target: t.to_owned(),
                }
            }
            NodeDef::SetCategory(d) => {
                let c = d.category.get_ref().trim();
                let ok = c == NO_INPUT || c == UNCLASSIFIED || {
                    self.category_ref(&d.category, &p("category"), ids)
                        .is_some()
                };
                let n = next(self, &d.next, "next");
                if !ok {
                    return None;
                }
                NodeKind::SetCategory {
                    category: c.to_owned(),
                    next: n?,
                }
            }
            NodeDef::Consent(d) => {
                let mut yes = Vec::new();
                let mut no = Vec::new();
                let mut ok = true;
                for (list, out, field) in [(&d.yes, &mut yes, "yes"), (&d.no, &mut no, "no")] {
                    if list.is_empty() {
                        self.sink.error(
                            K::BadValue,
                            Some(span.clone()),
                            &p(field),
                            format!("`{field}` needs at least one category"),
                        );
                        ok = false;
                    }
                    for (i, c) in list.iter().enumerate() {
                        match self.category_ref(c, &format!("{base}.{field}[{i}]"), ids) {
                            Some(c) => out.push(c),
                            None => ok = false,
                        }
                    }
                }
                for (i, c) in d.no.iter().enumerate() {
                    if let Some(ci) = ids.cats.get(c.get_ref())
                        && yes.contains(ci)
                    {
                        self.sink.error(
                            K::BadValue,
                            Some(c.span()),
                            &format!("{base}.no[{i}]"),
                            format!("category \"{}\" is in both yes and no", c.get_ref()),
                        );
                        ok = false;
                    }
                }
                let n = next(self, &d.next, "next");
                let on_yes = match &d.on_yes {
                    Some(v) => next(self, v, "on_yes"),
                    None => n,
                };
                let on_no = match &d.on_no {
                    Some(v) => next(self, v, "on_no"),
                    None => n,
                };
                if !ok {
                    return None;
                }
                NodeKind::Consent {
                    yes,
                    no,
                    on_yes: on_yes?,
                    on_no: on_no?,
                    next: n?,
                }
            }
            NodeDef::Hangup(d) => {
                let pr = match &d.prompt {
                    Some(v) => Some(prompt(self, v, "prompt")?),
                    None => None,
                };
                NodeKind::Hangup { prompt: pr }
            }
            NodeDef::Gather(d) => {
                let mut ok = true;
                let pr = prompt(self, &d.prompt, "prompt");
                let speech = d.speech.unwrap_or(true);
                let dtmf = d.dtmf.unwrap_or(true);
                if !speech && !dtmf {
                    self.sink.error(
                        K::BadValue,
                        Some(span.clone()),
                        base,
                        "a gather must listen to speech or DTMF (speech and dtmf are both false)",
                    );
                    ok = false;
                }
                let timeout =
                    self.timeout(d.timeout.as_ref(), &p("timeout"), settings.no_input_timeout);
                let accepted: Vec<CatId> = match &d.categories {
                    // By default every category a caller can select (one declared with keys or
                    // phrases), and any this gather routes with `on.<id>`.
                    None => (0..specs.len())
                        .filter(|c| {
                            ids.selectable.contains(c)
                                || d.on.keys().any(|k| ids.cats.get(k.get_ref()) == Some(c))
                        })
                        .collect(),
                    Some(list) => {
                        if list.is_empty() {
                            self.sink.error(
                                K::BadValue,
                                Some(span.clone()),
                                &p("categories"),
                                "a gather must accept at least one category",
                            );
                            ok = false;
                        }
                        let mut v = Vec::new();
                        for (i, c) in list.iter().enumerate() {
                            match self.category_ref(c, &format!("{base}.categories[{i}]"), ids) {
                                Some(c) if !v.contains(&c) => v.push(c),
                                Some(_) => {}
                                None => ok = false,
                            }
                        }
                        v
                    }
                };
                let mut on: BTreeMap<CatId, NodeId> = BTreeMap::new();
                // Categories whose `on.<id>` names a node that does not exist: already reported.
                let mut on_failed: BTreeSet<CatId> = BTreeSet::new();
                for (k, v) in &d.on {
                    let path = format!("{base}.on.{}", key_segment(k.get_ref()));
                    let Some(c) = self.category_ref(k, &path, ids) else {
                        ok = false;
                        continue;
                    };
                    if !accepted.contains(&c) {
                        self.sink.error(
                            K::BadValue,
                            Some(k.span()),
                            &path,
                            format!(
                                "category \"{}\" is not in this gather's categories",
                                k.get_ref()
                            ),
                        );
                        ok = false;
                        continue;
                    }
                    match self.node_ref(v, &path, ids) {
                        Some(n) => {
                            on.insert(c, n);
                        }
                        None => {
                            on_failed.insert(c);
                            ok = false;
                        }
                    }
                }
                let fallback = match &d.next {
                    Some(v) => {
                        let r = self.node_ref(v, &p("next"), ids);
                        ok &= r.is_some();
                        r
                    }
                    None => None,
                };
                let mut routes = Vec::new();
                for c in &accepted {
                    if ids.broken_cats.contains(c) || on_failed.contains(c) {
                        ok = false;
                        continue;
                    }
                    let to = on.get(c).copied().or(infos[*c].then).or(fallback);
                    match to {
                        Some(n) => routes.push((*c, n)),
                        None if d.next.is_some() => ok = false, // `next` itself failed
                        None => {
                            let id = &specs[*c].id;
                            self.sink.error(
                                K::NoRoute,
                                Some(span.clone()),
                                base,
                                format!(
                                    "category \"{id}\" has nowhere to go: add on.{id}, a `then` on the category, or `next`"
                                ),
                            );
                            ok = false;
                        }
                    }
                }
                edges.extend(routes.iter().map(|(_, n)| *n));
                let mut retry = |this: &mut Self,
                                 pr: &Option<Str>,
                                 pr_field: &str,
                                 n: Option<&Spanned<i64>>,
                                 n_field: &str,
                                 then: &Option<Str>,
                                 then_field: &str| {
                    let prompt = match pr {
                        Some(v) => {
                            let r = this.prompt_ref(v, &p(pr_field), ids);
                            used.extend(r);
                            ok &= r.is_some();
                            r
                        }
                        None => None,
                    };
                    let retries = this.retries(n, &p(n_field));
                    let then = match then {
                        Some(v) => {
                            let r = this.node_ref(v, &p(then_field), ids);
                            edges.extend(r);
                            ok &= r.is_some();
                            r
                        }
                        None => None,
                    };
                    Retry {
                        prompt,
                        retries,
                        then,
                    }
                };
                let no_input = retry(
                    self,
                    &d.no_input_prompt,
                    "no_input_prompt",
                    d.no_input_retries.as_ref(),
                    "no_input_retries",
                    &d.on_no_input,
                    "on_no_input",
                );
                let no_match = retry(
                    self,
                    &d.no_match_prompt,
                    "no_match_prompt",
                    d.no_match_retries.as_ref(),
                    "no_match_retries",
                    &d.on_no_match,
                    "on_no_match",
                );
                if !ok {
                    return None;
                }
                NodeKind::Gather(Box::new(Gather {
                    prompt: pr?,
                    barge_in: d.barge_in.unwrap_or(settings.barge_in),
                    speech,
                    dtmf,
                    timeout,
                    repeat_prompt: d.repeat_prompt.unwrap_or(true),
                    routes,
                    no_input,
                    no_match,
                }))
            }
        })
    }

    /// Loops that never pass through a gather would run (or replay prompts) forever without
    /// asking anything: each strongly connected group of non-gather nodes is an error.
    fn loops(
        &mut self,
        defs: &[(String, Range<usize>, Option<NodeDef>)],
        edges: &[Vec<NodeId>],
        is_gather: &[bool],
    ) {
        let n = defs.len();
        let adj: Vec<Vec<NodeId>> = (0..n)
            .map(|i| {
                if is_gather[i] {
                    Vec::new()
                } else {
                    edges[i]
                        .iter()
                        .copied()
                        .filter(|j| !is_gather[*j])
                        .collect()
                }
            })
            .collect();
        for group in strongly_connected(&adj) {
            let looped = group.len() > 1 || adj[group[0]].contains(&group[0]);
            if !looped {
                continue;
            }
            let mut members = group.clone();
            members.sort_by_key(|i| defs[*i].1.start);
            let first = members[0];
            let names: Vec<&str> = members.iter().map(|i| defs[*i].0.as_str()).collect();
            self.sink.error(
                K::Cycle,
                Some(defs[first].1.clone()),
                &join("nodes", &defs[first].0),
                format!(
                    "nodes {} loop forever without a gather (nothing in the loop waits for an answer)",
                    names.join(" -> ")
                ),
            );
        }
    }

    fn unreachable(
        &mut self,
        defs: &[(String, Range<usize>, Option<NodeDef>)],
        edges: &[Vec<NodeId>],
        roots: &[NodeId],
        start: Option<NodeId>,
    ) {
        let mut seen = vec![false; defs.len()];
        let mut stack: Vec<NodeId> = roots.to_vec();
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            stack.extend(edges[i].iter().copied().filter(|j| !seen[*j]));
        }
        let start_name = start.map_or("", |s| defs[s].0.as_str());
        for (i, (id, span, _)) in defs.iter().enumerate() {
            if !seen[i] {
                self.sink.warn(
                    K::Unreachable,
                    Some(span.clone()),
                    &join("nodes", id),
                    format!("unreachable: no path from start \"{start_name}\" or a global key leads here"),
                );
            }
        }
    }
}

/// The `id` of a category table that failed to read as a whole.
fn raw_id(v: &Value<'_>) -> Option<String> {
    let DeValue::Table(t) = v.get_ref() else {
        return None;
    };
    t.iter()
        .find(|(k, _)| {
            let k: &str = k.get_ref();
            k == "id"
        })
        .and_then(|(_, v)| v.get_ref().as_str().map(str::to_owned))
}

/// A duration that `Loader::duration` already checked (its errors reported once), or the default.
fn checked_or(d: Option<&Spanned<DurationValue>>, default: f64) -> Duration {
    d.and_then(|d| d.get_ref().seconds())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs_f64(default), Duration::from_secs_f64)
}

/// `"1"` → `'1'`; lowercase a–d are taken as A–D.
fn dtmf_key(s: &str) -> Option<char> {
    let mut chars = s.trim().chars();
    let c = chars.next()?.to_ascii_uppercase();
    if chars.next().is_some() {
        return None;
    }
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
}

/// ` (did you mean "x"?)` when a declared name is within two edits of `name`.
fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    candidates
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!(" (did you mean \"{c}\"?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Path segments (`on`, `manager_call`, `[2]`) to the deepest key or value at `offset`.
fn find_path(v: &Value<'_>, offset: usize, segs: &mut Vec<String>) -> bool {
    match v.get_ref() {
        DeValue::Table(t) => {
            for (k, child) in t.iter() {
                segs.push(key_segment(k.get_ref()));
                if covers(&k.span(), offset) || find_path(child, offset, segs) {
                    return true;
                }
                segs.pop();
            }
        }
        DeValue::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                segs.push(format!("[{i}]"));
                if find_path(child, offset, segs) {
                    return true;
                }
                segs.pop();
            }
        }
        _ => {}
    }
    covers(&v.span(), offset)
}

fn covers(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

/// For a syntax error, where no parsed tree exists: the last `[table]` header before `offset`
/// and the key on the error's line.
fn text_path(src: &str, offset: usize) -> String {
    let offset = offset.min(src.len());
    let mut cut = offset;
    while !src.is_char_boundary(cut) {
        cut -= 1;
    }
    let line_start = src[..cut].rfind('\n').map_or(0, |i| i + 1);
    let header = src[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| {
            let l = l.split('#').next().unwrap_or("").trim();
            l.trim_start_matches('[')
                .trim_end_matches(']')
                .trim()
                .to_owned()
        })
        .unwrap_or_default();
    let line = src[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && !k.starts_with('[') && !k.starts_with('#'))
        .unwrap_or("");
    match (header.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (false, true) => header,
        (false, false) => format!("{header}.{key}"),
    }
}

/// Tarjan's strongly connected components, iterative (no recursion on operator input).
fn strongly_connected(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = adj.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut out = Vec::new();
    let mut next_index = 0;
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(&mut (v, ref mut child)) = work.last_mut() {
            if *child == 0 && index[v] == usize::MAX {
                index[v] = next_index;
                low[v] = next_index;
                next_index += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = adj[v].get(*child) {
                *child += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut group = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    group.push(w);
                    if w == v {
                        break;
                    }
                }
                out.push(group);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(dtmf_key("1"), Some('1'));
        assert_eq!(dtmf_key("#"), Some('#'));
        assert_eq!(dtmf_key("d"), Some('D'));
        assert_eq!(dtmf_key("10"), None);
        assert_eq!(dtmf_key("E"), None);
        assert_eq!(dtmf_key(""), None);
    }

    #[test]
    fn suggestions() {
        let names = ["manager_call", "send_details"];
        assert_eq!(
            suggest("manager_cal", names.iter().copied()),
            " (did you mean \"manager_call\"?)"
        );
        assert_eq!(suggest("zzz", names.iter().copied()), "");
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn scc_finds_loops_only() {
        // 0 -> 1 -> 2 -> 0, 3 -> 3, 4 -> 0
        let adj = vec![vec![1], vec![2], vec![0], vec![3], vec![0]];
        let mut groups: Vec<Vec<usize>> = strongly_connected(&adj)
            .into_iter()
            .map(|mut g| {
                g.sort();
                g
            })
            .collect();
        groups.sort();
        assert_eq!(groups, vec![vec![0, 1, 2], vec![3], vec![4]]);
    }

    #[test]
    fn text_path_finds_header_and_key() {
        let src = "[script]\nname = \"x\"\n[nodes.a]\nnext = \n";
        let off = src.find("next").unwrap() + 7;
        assert_eq!(text_path(src, off), "nodes.a.next");
        assert_eq!(text_path("a = \n", 4), "a");
    }
}
