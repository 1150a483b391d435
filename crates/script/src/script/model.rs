//! A validated script: what the loader produces and the runtime walks. References between
//! nodes, prompts and categories are indices, checked once at load, so a running dialogue never
//! looks a name up or meets a dangling one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::lang::{CategorySpec, Lang};

use super::diag::Diagnostic;

pub(crate) type NodeId = usize;
pub(crate) type PromptId = usize;
pub(crate) type CatId = usize;

/// The category id a gather files a silent callee under once its no-input retries are spent.
pub const NO_INPUT: &str = "no_input";
/// The category id a gather files an answer under that matched nothing, after its retries.
pub const UNCLASSIFIED: &str = "unclassified";

/// One loaded, validated script version. Shared by the calls that run it as `Arc<Script>`.
#[derive(Debug)]
pub struct Script {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) version_id: String,
    pub(crate) description: Option<String>,
    pub(crate) path: PathBuf,
    pub(crate) languages: Vec<Lang>,
    pub(crate) default_language: Lang,
    pub(crate) threshold: f32,
    pub(crate) max_duration: Duration,
    pub(crate) max_speech: Duration,
    pub(crate) transcript_timeout: Duration,
    pub(crate) record: bool,
    pub(crate) start: NodeId,
    pub(crate) prompts: Vec<Prompt>,
    pub(crate) categories: Vec<CategorySpec>,
    pub(crate) category_info: Vec<CategoryInfo>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) warnings: Vec<Diagnostic>,
}

#[derive(Debug)]
pub(crate) struct Prompt {
    pub id: String,
    pub files: BTreeMap<Lang, PathBuf>,
    pub text: BTreeMap<Lang, String>,
    pub dtmf_only: Option<PromptId>,
}

#[derive(Debug)]
pub(crate) struct CategoryInfo {
    /// Keys that act at any node, not only in a gather that accepts the category.
    pub global_keys: Vec<char>,
    /// Where a global key (or a gather without its own route) goes.
    pub then: Option<NodeId>,
    pub label: BTreeMap<Lang, String>,
}

#[derive(Debug)]
pub(crate) struct Node {
    pub id: String,
    pub kind: NodeKind,
}

#[derive(Debug)]
pub(crate) enum NodeKind {
    Play {
        prompt: PromptId,
        barge_in: bool,
        next: NodeId,
    },
    Gather(Box<Gather>),
    Ask {
        prompt: PromptId,
        barge_in: bool,
        timeout: Duration,
        next: NodeId,
    },
    Transfer {
        prompt: Option<PromptId>,
        target: String,
    },
    SetCategory {
        category: String,
        next: NodeId,
    },
    Consent {
        yes: Vec<CatId>,
        no: Vec<CatId>,
        on_yes: NodeId,
        on_no: NodeId,
        next: NodeId,
    },
    Hangup {
        prompt: Option<PromptId>,
    },
}

#[derive(Debug)]
pub(crate) struct Gather {
    pub prompt: PromptId,
    pub barge_in: bool,
    pub speech: bool,
    pub dtmf: bool,
    pub timeout: Duration,
    pub repeat_prompt: bool,
    /// Each accepted category and the node it leads to (`on.<id>`, else the category's `then`,
    /// else the gather's `next`).
    pub routes: Vec<(CatId, NodeId)>,
    pub no_input: Retry,
    pub no_match: Retry,
}

impl Gather {
    pub fn route(&self, cat: CatId) -> Option<NodeId> {
        self.routes.iter().find(|(c, _)| *c == cat).map(|(_, n)| *n)
    }
}

#[derive(Debug)]
pub(crate) struct Retry {
    pub prompt: Option<PromptId>,
    pub retries: u8,
    /// Where to go once the retries are spent; `None` hangs up.
    pub then: Option<NodeId>,
}

impl Script {
    /// The script's name (`[script] name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operator's version string (`[script] version`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The operator's version, `-`, and the first 8 hex digits of the SHA-256 of the file's
    /// bytes (`2025.1-3f2a9c1d`): results record exactly which text ran, even if someone edited
    /// the file and forgot to bump `version`.
    pub fn version_id(&self) -> &str {
        &self.version_id
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The file the script was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The languages every prompt has a file for.
    pub fn languages(&self) -> &[Lang] {
        &self.languages
    }

    pub fn default_language(&self) -> Lang {
        self.default_language
    }

    /// `lang` if the script speaks it, else the default language.
    pub fn resolve_language(&self, lang: Lang) -> Lang {
        if self.languages.contains(&lang) {
            lang
        } else {
            self.default_language
        }
    }

    /// The classifier score an answer needs to count (`[script] threshold`, default 0.5).
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// The longest a dialogue may run before it hangs up.
    pub fn max_duration(&self) -> Duration {
        self.max_duration
    }

    /// The longest utterance captured for recognition (`[script] max_speech`).
    pub fn max_speech(&self) -> Duration {
        self.max_speech
    }

    /// Whether the engine records the whole call (`[script] record`, e.g. for consent evidence).
    pub fn record(&self) -> bool {
        self.record
    }

    /// The categories, in file order, as the classifier takes them (`Classifier::new`).
    pub fn categories(&self) -> &[CategorySpec] {
        &self.categories
    }

    /// The category's label in `lang` (falling back to the default language, then the id).
    pub fn category_label(&self, id: &str, lang: Lang) -> Option<&str> {
        let i = self.categories.iter().position(|c| c.id == id)?;
        let labels = &self.category_info[i].label;
        Some(
            labels
                .get(&lang)
                .or_else(|| labels.get(&self.default_language))
                .map_or(self.categories[i].id.as_str(), String::as_str),
        )
    }

    /// Keys that act at any node, and the category each selects.
    pub fn global_keys(&self) -> impl Iterator<Item = (char, &str)> + '_ {
        self.category_info
            .iter()
            .zip(&self.categories)
            .flat_map(|(info, spec)| info.global_keys.iter().map(|k| (*k, spec.id.as_str())))
    }

    /// Every phrase of every category in `lang`: hints for the speech recogniser.
    pub fn phrases(&self, lang: Lang) -> impl Iterator<Item = &str> + '_ {
        self.categories
            .iter()
            .filter_map(move |c| c.phrases.get(&lang))
            .flatten()
            .map(String::as_str)
    }

    /// Every prompt file (id, language, resolved path), for the engine to decode once.
    pub fn prompt_files(&self) -> impl Iterator<Item = (&str, Lang, &Path)> + '_ {
        self.prompts.iter().flat_map(|p| {
            p.files
                .iter()
                .map(move |(l, f)| (p.id.as_str(), *l, f.as_path()))
        })
    }

    /// What a prompt says in `lang`, if the script wrote it down (`text.<lang>`).
    pub fn prompt_text(&self, id: &str, lang: Lang) -> Option<&str> {
        let p = self.prompts.iter().find(|p| p.id == id)?;
        p.text.get(&lang).map(String::as_str)
    }

    /// Node ids in file-independent (sorted) order.
    pub fn node_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.nodes.iter().map(|n| n.id.as_str())
    }

    /// What the loader noticed but let pass (unreachable nodes, unused prompts, …).
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    pub(crate) fn category_index(&self, id: &str) -> Option<CatId> {
        self.categories.iter().position(|c| c.id == id)
    }

    pub(crate) fn category_for_key(&self, key: char) -> Option<CatId> {
        self.categories.iter().position(|c| c.keys.contains(&key))
    }

    pub(crate) fn is_global_key(&self, key: char) -> Option<CatId> {
        self.category_info
            .iter()
            .position(|c| c.global_keys.contains(&key))
    }
}
