//! Text normalisation: case, `ё`→`е`, apostrophes, hyphens, punctuation → words and clause
//! breaks.
//!
//! - Letters are lowercased; `ё` becomes `е`; Ukrainian `і ї є ґ` are kept.
//! - Apostrophe variants (`' ’ ʼ ‘ ` ´ ′`) inside a word are one apostrophe. In English the
//!   contractions are expanded (`don't` → `do not`, `I'm` → `I`); other apostrophes are dropped
//!   (`п'ять` → `пять`, `з'єднайте` → `зєднайте`), so ASR output with and without them agrees.
//! - A hyphen inside a word joins when one side is a single letter (`e-mail` → `email`, `не-а`
//!   → `неа`) and splits otherwise (`стоп-лист` → `стоп лист`).
//! - Clause punctuation (`, . ; : ! ? …`, dashes, brackets) becomes a [`Item::Break`], which
//!   ends the scope of a negation; every other non-alphanumeric character (spaces, quotes,
//!   emoji, symbols) only separates words.
//! - Digits stay as words; the analyser turns single digits into keys.
//! - `@` at the start of a word is kept: `@time` in a phrase names a built-in entity.

use crate::lang::Lang;

/// At most this many words are taken from one utterance; an answer to a survey question is a
/// sentence or two, and the cap bounds the work on pathological input.
pub(crate) const MAX_WORDS: usize = 512;

/// One element of a normalised utterance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// A lowercase word (letters and digits only, or `@` and letters).
    Word(String),
    /// A clause boundary.
    Break,
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '’' | 'ʼ' | '‘' | '`' | '´' | '′' | 'ʻ' | 'ʹ')
}

fn is_hyphen(c: char) -> bool {
    matches!(c, '-' | '‐' | '‑')
}

fn is_break(c: char) -> bool {
    matches!(
        c,
        ',' | '.'
            | ';'
            | ':'
            | '!'
            | '?'
            | '…'
            | '—'
            | '–'
            | '‒'
            | '('
            | ')'
            | '['
            | ']'
            | '\n'
            | '¿'
            | '¡'
    )
}

/// Normalises `text` into words and clause breaks (see the module doc).
pub(crate) fn normalize(lang: Lang, text: &str) -> Vec<Item> {
    let mut out = Vec::new();
    let mut raw = String::new();
    let mut words = 0usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if words >= MAX_WORDS {
            break;
        }
        if c.is_alphanumeric() {
            for l in c.to_lowercase() {
                raw.push(if l == 'ё' { 'е' } else { l });
            }
            continue;
        }
        let next_alnum = chars.peek().is_some_and(|n| n.is_alphanumeric());
        if c == '@' && raw.is_empty() && next_alnum {
            // "@time": a phrase naming a built-in entity.
            raw.push('@');
            continue;
        }
        if !raw.is_empty() && next_alnum && is_apostrophe(c) {
            raw.push('\'');
            continue;
        }
        if !raw.is_empty() && next_alnum && is_hyphen(c) {
            raw.push('-');
            continue;
        }
        flush(lang, &mut raw, &mut out, &mut words);
        if is_break(c) || is_hyphen(c) {
            push_break(&mut out);
        }
    }
    flush(lang, &mut raw, &mut out, &mut words);
    out
}

fn push_break(out: &mut Vec<Item>) {
    if matches!(out.last(), Some(Item::Word(_))) {
        out.push(Item::Break);
    }
}

/// Turns one raw word (letters, digits, `'` and `-` inside) into output words.
fn flush(lang: Lang, raw: &mut String, out: &mut Vec<Item>, words: &mut usize) {
    if raw.is_empty() {
        return;
    }
    let mut parts: Vec<String> = Vec::new();
    let mut current = String::new();
    let segments: Vec<&str> = raw.split('-').collect();
    for (i, seg) in segments.iter().enumerate() {
        current.push_str(seg);
        let next = segments.get(i + 1);
        let join = next.is_some_and(|n| letters(seg) == 1 || letters(n) == 1);
        if !join {
            parts.push(std::mem::take(&mut current));
        }
    }
    for part in parts {
        for w in apostrophes(lang, &part) {
            if !w.is_empty() && *words < MAX_WORDS {
                *words += 1;
                out.push(Item::Word(w));
            }
        }
    }
    raw.clear();
}

fn letters(s: &str) -> usize {
    s.chars().filter(|c| *c != '\'').count()
}

/// Resolves apostrophes in one word: English contractions expand, everything else drops them.
fn apostrophes(lang: Lang, word: &str) -> Vec<String> {
    if !word.contains('\'') {
        return vec![word.to_owned()];
    }
    if lang == Lang::En {
        if let Some(stem) = word.strip_suffix("n't") {
            let base = match stem {
                "wo" => "will",
                "ca" => "can",
                "sha" => "shall",
                "ai" => "am",
                other => other,
            };
            return vec![base.replace('\'', ""), "not".to_owned()];
        }
        for suffix in ["'s", "'re", "'m", "'ve", "'ll", "'d"] {
            if let Some(stem) = word.strip_suffix(suffix) {
                return vec![stem.replace('\'', "")];
            }
        }
    }
    vec![word.replace('\'', "")]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(lang: Lang, s: &str) -> Vec<String> {
        normalize(lang, s)
            .into_iter()
            .map(|i| match i {
                Item::Word(w) => w,
                Item::Break => "|".to_owned(),
            })
            .collect()
    }

    #[test]
    fn cases_yo_punctuation() {
        assert_eq!(
            words(Lang::Ru, "Ну, ЕЩЁ раз!  Нет…"),
            ["ну", "|", "еще", "раз", "|", "нет", "|"]
        );
    }

    #[test]
    fn apostrophes_and_hyphens() {
        assert_eq!(
            words(Lang::Uk, "П’ять, з'єднайте"),
            ["пять", "|", "зєднайте"]
        );
        assert_eq!(
            words(Lang::En, "I don't WANT e-mail"),
            ["i", "do", "not", "want", "email"]
        );
        assert_eq!(words(Lang::En, "won't, I'm"), ["will", "not", "|", "i"]);
        assert_eq!(
            words(Lang::Ru, "в стоп-лист, не-а"),
            ["в", "стоп", "лист", "|", "неа"]
        );
        assert_eq!(words(Lang::Ru, "нет - не надо"), ["нет", "|", "не", "надо"]);
    }

    #[test]
    fn odd_input() {
        assert!(words(Lang::Ru, "").is_empty());
        assert!(words(Lang::Ru, "🙂🙂 ,,, '' --").is_empty());
        assert_eq!(words(Lang::En, "🙂two🙂"), ["two"]);
        let long = "слово ".repeat(5000);
        assert_eq!(normalize(Lang::Ru, &long).len(), MAX_WORDS);
    }
}
