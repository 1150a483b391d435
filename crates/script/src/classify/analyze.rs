//! Utterance → tokens: normalise, classify each word with the [`Lexicon`], stem content words,
//! mark negation scope, digit keys and built-in entities.
//!
//! Negation: a negator ("не", "not", "never") negates the next content word in the same clause;
//! intensifiers ("очень", "really", "больше", "again") and up to three function words may stand
//! between ("не в этом месяце"). Modal verbs ("хочу", "надо", "want") are negated and pass the
//! negation on ("не надо мне звонить" negates both). A "no" particle ("нет", "ні", "no")
//! negates the next word of its clause ("нет времени"); when nothing but function, politeness
//! or negation words follow it in the clause ("нет, спасибо", "no, I don't…") it is also an
//! answer token of its own. A negator directly before the end of its clause ("Не.", "I think
//! not") becomes a "no" particle. A clause break (comma, "но", "but") ends any pending
//! negation. Every token of a clause with a negation is marked as such, so that a negated
//! phrase word may still match, more weakly, where the negation stands elsewhere in the clause
//! ("сейчас нет бюджета" for "не сейчас").
//!
//! Function words are kept as tokens of kind [`TokKind::Stop`] (negated when a negation skips
//! over them) for phrases made only of function words ("не для нас").

use crate::lang::Lang;

use super::lexicon::{self, Entity, Lexicon, WordKind};
use super::normalize::{Item, normalize};
use super::stem::Stemmer;

/// How many function words a pending negation may skip before it lapses.
const NEGATION_SKIP: u8 = 3;

/// What a token is, which sets its weight in a phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokKind {
    /// A content word or a number.
    Content,
    /// A modal verb lemma.
    Modal,
    /// A politeness/agreement word.
    Generic,
    /// The "no" particle.
    Particle,
    /// A function word, kept only for phrases made of function words ("не для нас"); negated
    /// when a negation skips over it.
    Stop,
}

/// One analysed token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    /// Stem (content), lemma (modal, particle), or `#<digits>` for a number.
    pub stem: String,
    /// In the scope of a negation.
    pub neg: bool,
    pub kind: TokKind,
    /// The DTMF key this token names, when it is a single digit (written or spelled) that is
    /// not a quantity ("через два дня" is not a key).
    pub key: Option<char>,
    /// The word introduces a keyed choice ("нажму", "option").
    pub key_ctx: bool,
    /// Its clause has a negation somewhere, even if not over this word ("сейчас нет
    /// бюджета": `сейчас`).
    pub clause_neg: bool,
    /// The built-in entity (`@time`, …) the word belongs to.
    pub entity: Option<&'static str>,
}

/// Analyser for one language.
#[derive(Debug)]
pub(crate) struct Analyzer {
    lang: Lang,
    lexicon: Lexicon,
    stemmer: Stemmer,
}

struct Scope {
    pending: bool,
    from_negator: bool,
    skipped: u8,
}

impl Analyzer {
    pub(crate) fn new(lang: Lang) -> Analyzer {
        Analyzer {
            lang,
            lexicon: Lexicon::new(lang),
            stemmer: Stemmer::new(lang),
        }
    }

    /// The language analysed.
    pub(crate) fn lang(&self) -> Lang {
        self.lang
    }

    /// Analyses an utterance (or a phrase: both go through the same steps).
    pub(crate) fn analyze(&self, text: &str) -> Vec<Token> {
        let items = self.expand(normalize(self.lang, text));
        let mut out = Vec::with_capacity(items.len());
        let mut scope = Scope {
            pending: false,
            from_negator: false,
            skipped: 0,
        };
        // Where the current clause's tokens start, and whether it has a negation.
        let mut clause = (0usize, false);
        for (i, item) in items.iter().enumerate() {
            let word = match item {
                Item::Break => {
                    self.close(&mut scope, &mut out);
                    end_clause(&mut out, &mut clause);
                    continue;
                }
                Item::Word(w) => w.as_str(),
            };
            let prev = match i.checked_sub(1).map(|p| &items[p]) {
                Some(Item::Word(p)) => p.as_str(),
                _ => "",
            };
            let next = match items.get(i + 1) {
                Some(Item::Word(n)) => n.as_str(),
                _ => "",
            };
            let kind = if word.starts_with('@') {
                None
            } else if word.bytes().all(|b| b.is_ascii_digit()) {
                (word.len() == 1).then(|| WordKind::Digit(word.chars().next().unwrap_or('0')))
            } else {
                self.lexicon.kind(word)
            };
            match kind {
                Some(WordKind::Stop) => {
                    out.push(Token {
                        stem: word.to_owned(),
                        neg: scope.pending,
                        kind: TokKind::Stop,
                        key: None,
                        key_ctx: false,
                        clause_neg: false,
                        entity: None,
                    });
                    if scope.pending {
                        scope.skipped += 1;
                        if scope.skipped > NEGATION_SKIP {
                            scope.pending = false;
                        }
                    }
                }
                Some(WordKind::Break) => {
                    self.close(&mut scope, &mut out);
                    end_clause(&mut out, &mut clause);
                }
                Some(WordKind::Negator) => {
                    clause.1 = true;
                    scope = Scope {
                        pending: true,
                        from_negator: true,
                        skipped: 0,
                    };
                }
                Some(WordKind::Particle) => {
                    clause.1 = true;
                    // "нет, …"/"no thanks" answer; "нет времени"/"no time" negate a word.
                    if self.answers_no(&items[i + 1..]) {
                        out.push(self.particle());
                    }
                    scope = Scope {
                        pending: true,
                        from_negator: false,
                        skipped: 0,
                    };
                }
                Some(WordKind::Intensifier) => {}
                Some(WordKind::Modal(lemma)) => {
                    out.push(Token {
                        stem: lemma.to_owned(),
                        neg: scope.pending,
                        kind: TokKind::Modal,
                        key: None,
                        key_ctx: false,
                        clause_neg: false,
                        entity: None,
                    });
                    scope.from_negator = false;
                    scope.skipped = 0;
                }
                Some(WordKind::Generic) => out.push(Token {
                    stem: self.stemmer.stem(word),
                    neg: false,
                    kind: TokKind::Generic,
                    key: None,
                    key_ctx: false,
                    clause_neg: false,
                    entity: None,
                }),
                Some(WordKind::Digit(d)) => {
                    if self.lang == Lang::En && lexicon::en_not_number_after(prev, word) {
                        continue;
                    }
                    let quantity = !next.is_empty() && self.lexicon.is_time_unit(next);
                    out.push(Token {
                        stem: format!("#{d}"),
                        neg: scope.pending,
                        kind: TokKind::Content,
                        key: (!quantity).then_some(d),
                        key_ctx: false,
                        clause_neg: false,
                        entity: None,
                    });
                    scope = Scope {
                        pending: false,
                        from_negator: false,
                        skipped: 0,
                    };
                }
                None => {
                    let (stem, entity) = if word.starts_with('@') {
                        (word.to_owned(), None)
                    } else if word.bytes().all(|b| b.is_ascii_digit()) {
                        (format!("#{word}"), None)
                    } else {
                        (
                            self.stemmer.stem(word),
                            self.lexicon.entity(word).map(Entity::name),
                        )
                    };
                    out.push(Token {
                        stem,
                        neg: scope.pending,
                        kind: TokKind::Content,
                        key: None,
                        key_ctx: self.lexicon.is_key_context(word),
                        clause_neg: false,
                        entity,
                    });
                    scope = Scope {
                        pending: false,
                        from_negator: false,
                        skipped: 0,
                    };
                }
            }
        }
        self.close(&mut scope, &mut out);
        end_clause(&mut out, &mut clause);
        out
    }

    /// Whether a "no" particle followed by `rest` is an answer of its own: the clause ends, or
    /// only function, politeness or negation words follow it before the next content word.
    fn answers_no(&self, rest: &[Item]) -> bool {
        for item in rest {
            let Item::Word(w) = item else { return true };
            match self.lexicon.kind(w) {
                Some(WordKind::Stop | WordKind::Intensifier) => continue,
                Some(
                    WordKind::Break | WordKind::Negator | WordKind::Particle | WordKind::Generic,
                ) => {
                    return true;
                }
                Some(WordKind::Modal(_) | WordKind::Digit(_)) | None => return false,
            }
        }
        true
    }

    fn particle(&self) -> Token {
        Token {
            stem: lexicon::particle_lemma(self.lang).to_owned(),
            neg: false,
            kind: TokKind::Particle,
            key: None,
            key_ctx: false,
            clause_neg: false,
            entity: None,
        }
    }

    /// Ends a clause: a negator directly before the end of its clause ("Не.", "I think not")
    /// becomes a "no"; one that only skipped function words ("пока не до этого") is dropped.
    fn close(&self, scope: &mut Scope, out: &mut Vec<Token>) {
        if scope.pending && scope.from_negator && scope.skipped == 0 {
            out.push(self.particle());
        }
        *scope = Scope {
            pending: false,
            from_negator: false,
            skipped: 0,
        };
    }

    /// Expands English contractions written without an apostrophe ("dont" → "do not").
    fn expand(&self, items: Vec<Item>) -> Vec<Item> {
        if self.lang != Lang::En {
            return items;
        }
        let mut out = Vec::with_capacity(items.len() + 2);
        for item in items {
            match &item {
                Item::Word(w) => match lexicon::en_contraction(w) {
                    Some(parts) => out.extend(parts.iter().map(|p| Item::Word((*p).to_owned()))),
                    None => out.push(item),
                },
                Item::Break => out.push(item),
            }
        }
        out
    }
}

/// Marks the tokens of a clause that had a negation and starts the next clause.
fn end_clause(out: &mut [Token], clause: &mut (usize, bool)) {
    if clause.1 {
        for t in &mut out[clause.0..] {
            t.clause_neg = true;
        }
    }
    *clause = (out.len(), false);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(lang: Lang, text: &str) -> Vec<String> {
        Analyzer::new(lang)
            .analyze(text)
            .into_iter()
            .filter(|t| t.kind != TokKind::Stop)
            .map(|t| {
                format!(
                    "{}{}{}",
                    if t.neg { "!" } else { "" },
                    t.stem,
                    if t.key.is_some() { "*" } else { "" }
                )
            })
            .collect()
    }

    #[test]
    fn negation_scope() {
        assert_eq!(show(Lang::Ru, "не очень интересно"), ["!интересн"]);
        assert_eq!(
            show(Lang::Ru, "интересно, но не сейчас"),
            ["интересн", "!сейчас"]
        );
        assert_eq!(show(Lang::Ru, "не надо мне звонить"), ["!надо", "!звон"]);
        assert_eq!(show(Lang::Ru, "нет, спасибо"), ["нет", "спасиб"]);
        assert_eq!(show(Lang::Ru, "нет времени"), ["!времен"]);
        assert_eq!(show(Lang::Ru, "нет, не надо"), ["нет", "!надо"]);
        assert_eq!(show(Lang::En, "no thanks"), ["no", "thank"]);
        assert_eq!(show(Lang::Ru, "Не."), ["нет"]);
        assert_eq!(
            show(Lang::En, "I don't want any more calls"),
            ["!want", "!call"]
        );
        assert_eq!(
            show(Lang::Ru, "не надо мне больше звонить"),
            ["!надо", "!звон"]
        );
        assert_eq!(show(Lang::En, "not right now"), ["!now"]);
    }

    #[test]
    fn keys_and_quantities() {
        assert_eq!(show(Lang::Ru, "нажму два"), ["нажм", "#2*"]);
        assert_eq!(show(Lang::Ru, "через два дня"), ["#2", "дня"]);
        assert_eq!(show(Lang::En, "no one, the second one"), ["#2*"]);
        assert_eq!(show(Lang::Uk, "п'ять"), ["#5*"]);
        assert_eq!(show(Lang::En, "press 9"), ["press", "#9*"]);
    }
}
