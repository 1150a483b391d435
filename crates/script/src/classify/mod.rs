//! The answer classifier: a transcript → one of the script's categories, with a score.
//!
//! Categories are data ([`CategorySpec`]: id, DTMF keys, phrases per language); a
//! [`Classifier`] is built from them at run time and precomputes everything a lookup needs.
//!
//! # Algorithm
//!
//! 1. **Analysis** (the same for a phrase and for an answer; `analyze.rs`): normalise
//!    (lowercase, `ё`→`е`, apostrophes, hyphens, punctuation → clause breaks; `normalize.rs`),
//!    sort each word with a per-language lexicon (`lexicon.rs`) of function words, negators,
//!    intensifiers, modal verbs, politeness words and spelled digits, stem content words
//!    (Snowball for ru/en, a light suffix stripper for uk; `stem.rs`) and mark which tokens are
//!    negated. A negator scopes over the next content word of its clause, through intensifiers,
//!    up to three function words and modal verbs, so "не интересно" yields `!интересн` and
//!    "интересно" yields `интересн`: different features. "Нет"/"no" negates the next word
//!    ("нет времени") and, standing alone ("нет, спасибо"), is a token of its own. Content
//!    words may also belong to a built-in entity, which a phrase names as `@time` (a day, date,
//!    season or period: "завтра", "осенью", "через месяц", "next week") or `@negative` (a word
//!    of negative evaluation: "плохо", "обманули", "rude"); an answer word matches its
//!    entity at 0.9.
//! 2. **Index**: every phrase becomes a sequence of (stem, negated, weight) tokens; function
//!    words are dropped unless the phrase has nothing else ("у нас уже есть", "not for us"),
//!    and then it must match whole, exactly and contiguously. Weights: content words 1, modal
//!    verbs 0.5, "no"/politeness words 0.4, function words 0.3, divided by √n where n is the
//!    number of categories whose phrases use the same (stem, negated) feature. The phrase stems
//!    of a language form a vocabulary (`vocab.rs`) with exact, prefix, sound-alike and fuzzy
//!    lookups, and an inverted index from stem to phrase tokens.
//! 3. **Matching**: each answer token is looked up in the vocabulary — exact 1.0; a phrase
//!    stem that begins it 0.85, it begins a phrase stem 0.8; sound-alike (doubled letters,
//!    soft sign, unstressed vowels: "удолите", "mannager") 0.85; edit distance 1 → 0.75 (0.6
//!    under six letters), 2 → 0.6 (from eight letters); a Russian/Ukrainian word fused with
//!    "не" ("неинтересно") is also tried as the negated rest — and, through the inverted index,
//!    sets the best similarity of every phrase token with the same polarity (a negated phrase
//!    word also matches an unnegated answer word in a clause with a negation, at 0.8 of the
//!    similarity). Only phrases with a touched token are scored.
//! 4. **Phrase score**: with W the matched weight (Σ weight × similarity) and c = W / (phrase
//!    weight), a phrase counts if c ≥ 0.5 and scores `(1 − 0.5^(1+W)) · c`, times 0.9 if the
//!    words came in another order and 0.85 if more than three other words stood between them.
//!    A full exact match of one content word scores 0.75, of two 0.875, of three 0.94; half of
//!    a two-word phrase 0.375, below the default threshold on its own.
//! 5. **Keys**: a single digit, written or spelled ("2", "два", "two", "второй"), that is not a
//!    quantity ("через два дня", "one moment") counts for the categories with that DTMF key:
//!    0.9 next to a choice word ("нажму", "вариант", "press", "option"), 0.85 when the answer
//!    has no other content word, 0.3 otherwise.
//! 6. **Category score**: phrase and key matches of a category that use disjoint answer tokens
//!    are combined, best first, by noisy-OR (1 − Π(1 − sᵢ)). The best category wins; ties go to
//!    the category listed first. Scores are in 0..=1; the script compares them with its
//!    threshold ([`DEFAULT_THRESHOLD`] by default).
//!
//! Everything is deterministic and allocation is per call only; nothing here panics on any
//! input (the number of words taken from one answer is capped at 512). Phrase text is never
//! logged; a phrase that can never match is reported by category and index
//! ([`Classifier::skipped_phrases`]).

mod analyze;
mod lexicon;
mod normalize;
mod stem;
mod vocab;

use std::collections::HashMap;
use std::fmt;

use crate::lang::{CategorySpec, Classify, Lang, Match};

use analyze::{Analyzer, TokKind, Token};
use vocab::Vocab;

/// The score at or above which a script accepts a classification, unless it sets its own.
pub const DEFAULT_THRESHOLD: f32 = 0.5;

/// A phrase counts only if at least this share of its weight matched.
const MIN_COVERAGE: f32 = 0.5;
/// Weight of a modal verb token.
const WEIGHT_MODAL: f32 = 0.5;
/// Weight of a politeness word or the "no" particle.
const WEIGHT_GENERIC: f32 = 0.4;
/// Weight of a function word in a phrase made of function words.
const WEIGHT_STOP: f32 = 0.3;
/// Factor when a phrase's words were heard in another order.
const ORDER_PENALTY: f32 = 0.9;
/// Factor when more than [`MAX_GAP`] other words stood between a phrase's words.
const GAP_PENALTY: f32 = 0.85;
const MAX_GAP: usize = 3;
/// Similarity factor for a negated phrase word heard unnegated in a clause that has a negation
/// elsewhere ("сейчас нет бюджета" for "не сейчас").
const CLAUSE_NEGATION: f32 = 0.8;
/// Similarity of an answer word to a built-in entity it belongs to ("завтра" for `@time`).
const ENTITY_SIM: f32 = 0.9;
/// Similarity factor for a word fused with "не" ("неинтересно" as negated "интересно").
const FUSED_NEGATION: f32 = 0.95;
/// Key score next to a choice word ("нажму два").
const KEY_CONTEXT: f32 = 0.9;
/// Key score when the answer is only the digit (and fillers).
const KEY_BARE: f32 = 0.85;
/// Key score for a digit amid other words.
const KEY_WEAK: f32 = 0.3;
/// How many tokens away a choice word may stand from its digit.
const KEY_CONTEXT_SPAN: usize = 2;

/// The classifier for a set of categories; see the module documentation for the algorithm.
pub struct Classifier {
    categories: Vec<Category>,
    langs: HashMap<Lang, LangIndex>,
    skipped: Vec<SkippedPhrase>,
}

/// A phrase that can never match because it has no word the classifier keeps (only function
/// words such as "у нас", "for the"); the script loader may report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedPhrase {
    /// The category's id.
    pub category: String,
    /// The phrase's language.
    pub lang: Lang,
    /// Its index in the category's phrase list for that language.
    pub index: usize,
}

#[derive(Debug)]
struct Category {
    id: String,
    keys: Vec<char>,
}

/// One language's analyser, vocabulary and phrase index.
#[derive(Debug)]
struct LangIndex {
    analyzer: Analyzer,
    vocab: Vocab,
    /// Phrase tokens using each vocabulary stem.
    postings: Vec<Vec<Posting>>,
    phrases: Vec<Phrase>,
    ptokens: Vec<PhraseToken>,
    /// Some phrase is made of function words, so the answer's function words are looked up.
    has_function: bool,
}

#[derive(Debug, Clone, Copy)]
struct Posting {
    ptoken: u32,
    phrase: u32,
    neg: bool,
}

#[derive(Debug)]
struct Phrase {
    category: usize,
    /// Index in the category's phrase list for this language.
    index: usize,
    start: usize,
    len: usize,
    weight: f32,
    /// Made of function words ("не для нас", "not for us"): must match exactly, whole and
    /// contiguous.
    function: bool,
}

#[derive(Debug)]
struct PhraseToken {
    vocab: u32,
    neg: bool,
    weight: f32,
}

/// The full result of classifying one answer, for debugging and tests.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Classification {
    /// The best category, if anything matched.
    pub best: Option<Match>,
    /// The second-best category, if another one matched.
    pub runner_up: Option<Match>,
    /// Every category that matched, best first.
    pub scores: Vec<Match>,
    /// The analysed answer: stems, `!` before a negated one, `#` before a number, `*` after a
    /// key.
    pub tokens: Vec<String>,
    /// Every phrase and key match found, per category in the order they were combined.
    pub evidence: Vec<Evidence>,
}

/// One phrase or key match behind a category's score.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// The category's id.
    pub category: String,
    /// What matched.
    pub source: Source,
    /// The match's own score.
    pub score: f32,
    /// Whether it counted: a match that reuses an answer word already used by a better match of
    /// the same category does not.
    pub counted: bool,
}

/// What a piece of [`Evidence`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The phrase at this index in the category's list for the answer's language.
    Phrase(usize),
    /// A spoken digit naming this DTMF key.
    Key(char),
}

impl fmt::Debug for Classifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Classifier");
        d.field(
            "categories",
            &self
                .categories
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>(),
        );
        for lang in Lang::ALL {
            if let Some(ix) = self.langs.get(&lang) {
                d.field(
                    lang.code(),
                    &format_args!("{} phrases, {} stems", ix.phrases.len(), ix.vocab.len()),
                );
            }
        }
        d.finish()
    }
}

impl Classifier {
    /// Builds a classifier for `categories`, precomputing the analysed phrases and indexes of
    /// every language. A phrase with no word the analyser keeps (empty, punctuation, only
    /// intensifiers) can never match and is skipped with a warning; see
    /// [`Classifier::skipped_phrases`].
    pub fn new(categories: &[CategorySpec]) -> Classifier {
        let mut langs = HashMap::new();
        let mut skipped = Vec::new();
        for lang in Lang::ALL {
            langs.insert(lang, LangIndex::build(lang, categories, &mut skipped));
        }
        Classifier {
            categories: categories
                .iter()
                .map(|c| Category {
                    id: c.id.clone(),
                    keys: c.keys.clone(),
                })
                .collect(),
            langs,
            skipped,
        }
    }

    /// The phrases that were skipped because they can never match.
    pub fn skipped_phrases(&self) -> &[SkippedPhrase] {
        &self.skipped
    }

    /// Classifies `text` spoken in `lang`, with the runner-up, all scores and the analysed
    /// tokens.
    pub fn classify_detailed(&self, lang: Lang, text: &str) -> Classification {
        self.run(lang, text, true)
    }

    /// Classifies; `detailed` adds the evidence and the analysed tokens.
    fn run(&self, lang: Lang, text: &str, detailed: bool) -> Classification {
        let Some(ix) = self.langs.get(&lang) else {
            return Classification::default();
        };
        let tokens = ix.analyzer.analyze(text);
        let mut hits: Vec<Vec<Hit>> = (0..self.categories.len()).map(|_| Vec::new()).collect();
        ix.phrase_hits(&tokens, &mut hits);
        self.key_hits(&tokens, &mut hits);

        let mut scores: Vec<(usize, f32)> = Vec::new();
        let mut evidence = Vec::new();
        let mut used = vec![false; tokens.len()];
        for (cat, cat_hits) in hits.iter_mut().enumerate() {
            if cat_hits.is_empty() {
                continue;
            }
            cat_hits.sort_by(|a, b| b.score.total_cmp(&a.score));
            used.iter_mut().for_each(|u| *u = false);
            let mut miss = 1.0f32;
            for hit in cat_hits.iter() {
                let counted = !hit.positions.iter().any(|p| used[*p]);
                if detailed {
                    evidence.push(Evidence {
                        category: self.categories[cat].id.clone(),
                        source: hit.source,
                        score: hit.score,
                        counted,
                    });
                }
                if counted {
                    hit.positions.iter().for_each(|p| used[*p] = true);
                    miss *= 1.0 - hit.score;
                }
            }
            let score = (1.0 - miss).clamp(0.0, 1.0);
            if score > 0.0 {
                scores.push((cat, score));
            }
        }
        scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let scores: Vec<Match> = scores
            .into_iter()
            .map(|(cat, score)| Match {
                category: self.categories[cat].id.clone(),
                score,
            })
            .collect();
        Classification {
            best: scores.first().cloned(),
            runner_up: scores.get(1).cloned(),
            scores,
            tokens: if detailed {
                tokens
                    .iter()
                    .filter(|t| t.kind != TokKind::Stop)
                    .map(show_token)
                    .collect()
            } else {
                Vec::new()
            },
            evidence,
        }
    }

    fn key_hits(&self, tokens: &[Token], hits: &mut [Vec<Hit>]) {
        if !tokens.iter().any(|t| t.key.is_some()) {
            return;
        }
        let bare = tokens.iter().all(|t| {
            t.kind != TokKind::Content || t.key.is_some() || t.key_ctx || t.stem.starts_with('#')
        });
        // Positions of the tokens that are not function words.
        let words: Vec<usize> = (0..tokens.len())
            .filter(|i| tokens[*i].kind != TokKind::Stop)
            .collect();
        for (n, &pos) in words.iter().enumerate() {
            let tok = &tokens[pos];
            let Some(key) = tok.key else { continue };
            let lo = n.saturating_sub(KEY_CONTEXT_SPAN);
            let hi = (n + KEY_CONTEXT_SPAN + 1).min(words.len());
            let score = if words[lo..hi].iter().any(|i| tokens[*i].key_ctx) {
                KEY_CONTEXT
            } else if bare {
                KEY_BARE
            } else {
                KEY_WEAK
            };
            for (cat, c) in self.categories.iter().enumerate() {
                if c.keys.contains(&key) {
                    hits[cat].push(Hit {
                        score,
                        positions: vec![pos],
                        source: Source::Key(key),
                    });
                }
            }
        }
    }
}

impl Classify for Classifier {
    fn classify(&self, lang: Lang, text: &str) -> Option<Match> {
        self.run(lang, text, false).best
    }
}

/// One piece of evidence for a category: a phrase or key match and the answer tokens it used.
#[derive(Debug)]
struct Hit {
    score: f32,
    positions: Vec<usize>,
    source: Source,
}

fn show_token(t: &Token) -> String {
    let mut s = String::with_capacity(t.stem.len() + 2);
    if t.neg {
        s.push('!');
    }
    s.push_str(&t.stem);
    if t.key.is_some() {
        s.push('*');
    }
    s
}

impl LangIndex {
    fn build(
        lang: Lang,
        categories: &[CategorySpec],
        skipped: &mut Vec<SkippedPhrase>,
    ) -> LangIndex {
        let analyzer = Analyzer::new(lang);
        let mut vocab = Vocab::default();
        let mut phrases = Vec::new();
        let mut ptokens: Vec<PhraseToken> = Vec::new();
        for (cat, spec) in categories.iter().enumerate() {
            let Some(list) = spec.phrases.get(&lang) else {
                continue;
            };
            for (i, text) in list.iter().enumerate() {
                let mut toks = analyzer.analyze(text);
                let core = toks
                    .iter()
                    .any(|t| matches!(t.kind, TokKind::Content | TokKind::Modal));
                if core {
                    toks.retain(|t| t.kind != TokKind::Stop);
                }
                let function = toks.iter().any(|t| t.kind == TokKind::Stop);
                if toks.is_empty() {
                    tracing::warn!(category = %spec.id, %lang, phrase = i, "phrase has no content word; skipped");
                    skipped.push(SkippedPhrase {
                        category: spec.id.clone(),
                        lang,
                        index: i,
                    });
                    continue;
                }
                let start = ptokens.len();
                for t in &toks {
                    let weight = match t.kind {
                        TokKind::Content => 1.0,
                        TokKind::Modal => WEIGHT_MODAL,
                        TokKind::Generic | TokKind::Particle => WEIGHT_GENERIC,
                        TokKind::Stop => WEIGHT_STOP,
                    };
                    ptokens.push(PhraseToken {
                        vocab: vocab.insert(&t.stem),
                        neg: t.neg,
                        weight,
                    });
                }
                phrases.push(Phrase {
                    category: cat,
                    start,
                    len: toks.len(),
                    weight: 0.0,
                    function,
                    index: i,
                });
            }
        }
        vocab.finish();
        // Features shared by several categories weigh less.
        let mut cats_of: HashMap<(u32, bool), Vec<usize>> = HashMap::new();
        for p in &phrases {
            for t in &ptokens[p.start..p.start + p.len] {
                let v = cats_of.entry((t.vocab, t.neg)).or_default();
                if !v.contains(&p.category) {
                    v.push(p.category);
                }
            }
        }
        for p in &mut phrases {
            for t in &mut ptokens[p.start..p.start + p.len] {
                let n = cats_of.get(&(t.vocab, t.neg)).map_or(1, Vec::len).max(1);
                t.weight /= (n as f32).sqrt();
            }
            p.weight = ptokens[p.start..p.start + p.len]
                .iter()
                .map(|t| t.weight)
                .sum();
        }
        let mut postings = vec![Vec::new(); vocab.len()];
        for (pi, p) in phrases.iter().enumerate() {
            for (k, t) in ptokens[p.start..p.start + p.len].iter().enumerate() {
                postings[t.vocab as usize].push(Posting {
                    ptoken: (p.start + k) as u32,
                    phrase: pi as u32,
                    neg: t.neg,
                });
            }
        }
        tracing::debug!(%lang, phrases = phrases.len(), stems = vocab.len(), "classifier index built");
        let has_function = phrases.iter().any(|p| p.function);
        LangIndex {
            analyzer,
            vocab,
            postings,
            phrases,
            ptokens,
            has_function,
        }
    }

    /// Scores every phrase the answer touches and adds the matches to `hits` per category.
    fn phrase_hits(&self, tokens: &[Token], hits: &mut [Vec<Hit>]) {
        if self.phrases.is_empty() || tokens.is_empty() {
            return;
        }
        let mut best_sim = vec![0.0f32; self.ptokens.len()];
        let mut best_pos = vec![0usize; self.ptokens.len()];
        let mut seen = vec![false; self.phrases.len()];
        let mut touched: Vec<u32> = Vec::new();
        let mut cands: Vec<(u32, f32)> = Vec::new();
        // ord[i]: how many non-function words precede token i (for gaps between phrase words).
        let mut ord = Vec::with_capacity(tokens.len());
        let mut n = 0usize;
        for (pos, tok) in tokens.iter().enumerate() {
            ord.push(n);
            cands.clear();
            if tok.kind == TokKind::Stop {
                if let Some(id) = self
                    .has_function
                    .then(|| self.vocab.exact(&tok.stem))
                    .flatten()
                {
                    cands.push((id, vocab::SIM_EXACT));
                }
            } else {
                n += 1;
                self.vocab.lookup(&tok.stem, &mut cands);
                if let Some(id) = tok.entity.and_then(|e| self.vocab.exact(e)) {
                    cands.push((id, ENTITY_SIM));
                }
            }
            let direct = cands.len();
            if tok.kind == TokKind::Content
                && !tok.neg
                && !cands.iter().any(|c| c.1 >= vocab::SIM_EXACT)
                && let Some(rest) = self.fused_negation(&tok.stem)
            {
                self.vocab.lookup(rest, &mut cands);
            }
            for (i, &(id, sim)) in cands.iter().enumerate() {
                let (neg, sim) = if i < direct {
                    (tok.neg, sim)
                } else {
                    (true, sim * FUSED_NEGATION)
                };
                for p in &self.postings[id as usize] {
                    let sim = if p.neg == neg {
                        sim
                    } else if p.neg && tok.clause_neg {
                        sim * CLAUSE_NEGATION
                    } else {
                        continue;
                    };
                    let k = p.ptoken as usize;
                    if sim > best_sim[k] {
                        if !seen[p.phrase as usize] {
                            seen[p.phrase as usize] = true;
                            touched.push(p.phrase);
                        }
                        best_sim[k] = sim;
                        best_pos[k] = pos;
                    }
                }
            }
        }
        touched.sort_unstable();
        for pi in touched {
            let p = &self.phrases[pi as usize];
            if let Some(hit) = self.score_phrase(p, &best_sim, &best_pos, &ord) {
                hits[p.category].push(hit);
            }
        }
    }

    /// "неинтересно" → "интересн": the stem without a fused "не", if long enough.
    fn fused_negation<'a>(&self, stem: &'a str) -> Option<&'a str> {
        if !matches!(self.analyzer.lang(), Lang::Ru | Lang::Uk) {
            return None;
        }
        let rest = stem.strip_prefix("не")?;
        (rest.chars().count() >= 4).then_some(rest)
    }

    fn score_phrase(
        &self,
        p: &Phrase,
        best_sim: &[f32],
        best_pos: &[usize],
        ord: &[usize],
    ) -> Option<Hit> {
        let range = p.start..p.start + p.len;
        if p.function {
            // Whole, exact and contiguous, or nothing.
            let first = best_pos[p.start];
            let whole = range
                .clone()
                .enumerate()
                .all(|(i, k)| best_sim[k] >= vocab::SIM_EXACT && best_pos[k] == first + i);
            if !whole {
                return None;
            }
            let w = p.weight;
            return Some(Hit {
                score: 1.0 - 0.5f32.powf(1.0 + w),
                positions: (first..first + p.len).collect(),
                source: Source::Phrase(p.index),
            });
        }
        // (position, weighted similarity) per matched phrase token, one phrase token per
        // answer token.
        let mut matched: Vec<(usize, f32)> = Vec::with_capacity(p.len);
        for k in range {
            if best_sim[k] <= 0.0 {
                continue;
            }
            let w = self.ptokens[k].weight * best_sim[k];
            match matched.iter_mut().find(|m| m.0 == best_pos[k]) {
                Some(m) => m.1 = m.1.max(w),
                None => matched.push((best_pos[k], w)),
            }
        }
        let w: f32 = matched.iter().map(|m| m.1).sum();
        let coverage = if p.weight > 0.0 { w / p.weight } else { 0.0 };
        if matched.is_empty() || coverage + 1e-6 < MIN_COVERAGE {
            return None;
        }
        let mut score = (1.0 - 0.5f32.powf(1.0 + w)) * coverage.min(1.0);
        if matched.windows(2).any(|m| m[1].0 < m[0].0) {
            score *= ORDER_PENALTY;
        }
        let lo = matched.iter().map(|m| ord[m.0]).min().unwrap_or(0);
        let hi = matched.iter().map(|m| ord[m.0]).max().unwrap_or(0);
        if (hi - lo + 1).saturating_sub(matched.len()) > MAX_GAP {
            score *= GAP_PENALTY;
        }
        Some(Hit {
            score: score.clamp(0.0, 1.0),
            positions: matched.iter().map(|m| m.0).collect(),
            source: Source::Phrase(p.index),
        })
    }
}

#[cfg(test)]
mod tests;
