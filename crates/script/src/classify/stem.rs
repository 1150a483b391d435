//! Stemming: Snowball (via `rust-stemmers`) for Russian and English, a light suffix stripper for
//! Ukrainian (Snowball has none).
//!
//! The Ukrainian stemmer removes a reflexive `-ся/-сь`, then the longest inflectional ending
//! from a fixed list that leaves at least three letters, then one trailing vowel, `й` or `ь` if
//! the stem is still longer than four letters. It over- and under-stems now and then; phrases
//! and answers go through the same function, and prefix/fuzzy matching covers the rest.

use std::fmt;

use rust_stemmers::{Algorithm, Stemmer as Snowball};

use crate::lang::Lang;

/// A stemmer for one language.
pub(crate) struct Stemmer {
    lang: Lang,
    snowball: Option<Snowball>,
}

impl fmt::Debug for Stemmer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stemmer").field("lang", &self.lang).finish()
    }
}

impl Stemmer {
    pub(crate) fn new(lang: Lang) -> Stemmer {
        let snowball = match lang {
            Lang::Ru => Some(Snowball::create(Algorithm::Russian)),
            Lang::En => Some(Snowball::create(Algorithm::English)),
            Lang::Uk => None,
        };
        Stemmer { lang, snowball }
    }

    /// The stem of a lowercase word.
    pub(crate) fn stem(&self, word: &str) -> String {
        match &self.snowball {
            Some(s) => s.stem(word).into_owned(),
            None => stem_uk(word),
        }
    }
}

/// Ukrainian inflectional endings, longest first within each length class.
const UK_ENDINGS: &[&str] = &[
    // verbs: infinitive, imperative, present, past
    "увати",
    "ювати",
    "ийте",
    "уйте",
    "юйте",
    "айте",
    "яйте",
    "ійте",
    "ити",
    "ати",
    "яти",
    "іти",
    "ути",
    "ємо",
    "емо",
    "имо",
    "імо",
    "ете",
    "єте",
    "ите",
    "іте",
    "ють",
    "ять",
    "уть",
    "ать",
    "ить",
    "іть",
    "ила",
    "ило",
    "или",
    "ала",
    "ало",
    "али",
    "іла",
    "іло",
    "іли",
    "йте",
    "ти",
    "ть",
    "ла",
    "ло",
    "ли",
    "ив",
    "ав",
    "ів",
    "еш",
    "єш",
    "иш",
    "іш",
    // adjectives and participles
    "ого",
    "ому",
    "ими",
    "іми",
    "ої",
    "ою",
    "ею",
    "єю",
    "ий",
    "ій",
    "их",
    "іх",
    "им",
    "ім",
    "ая",
    "яя",
    "ую",
    "юю", // nouns
    "ями",
    "ами",
    "ові",
    "еві",
    "єві",
    "ом",
    "ем",
    "єм",
    "ам",
    "ям",
    "ах",
    "ях",
    "ів",
    "їв",
    "ей",
    "ь",
    "а",
    "я",
    "о",
    "е",
    "є",
    "у",
    "ю",
    "і",
    "ї",
    "и",
    "й",
];

/// Light Ukrainian stemmer (see the module doc).
pub(crate) fn stem_uk(word: &str) -> String {
    let chars: Vec<char> = word.chars().collect();
    if chars.len() <= 3 || !chars.iter().all(|c| c.is_alphabetic()) {
        return word.to_owned();
    }
    let mut end = chars.len();
    for refl in ["ся", "сь"] {
        if word.ends_with(refl) && end - 2 >= 3 {
            end -= 2;
            break;
        }
    }
    let mut best = 0;
    for e in UK_ENDINGS {
        let n = e.chars().count();
        if n > best && end >= n + 3 && chars[end - n..end].iter().copied().eq(e.chars()) {
            best = n;
        }
    }
    end -= best;
    if end > 4
        && matches!(
            chars[end - 1],
            'а' | 'я' | 'о' | 'е' | 'є' | 'у' | 'ю' | 'і' | 'ї' | 'и' | 'й' | 'ь'
        )
    {
        end -= 1;
    }
    chars[..end].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ukrainian_forms_share_stems() {
        let same = [
            ("дзвоніть", "дзвонити"),
            ("пошту", "пошта"),
            ("менеджером", "менеджера"),
            ("видаліть", "видалити"),
            ("цікавить", "цікаво"),
            ("телефонуйте", "телефонувати"),
        ];
        for (a, b) in same {
            assert_eq!(stem_uk(a), stem_uk(b), "{a} / {b}");
        }
        assert_eq!(stem_uk("ні"), "ні");
    }

    #[test]
    fn snowball_is_used() {
        let ru = Stemmer::new(Lang::Ru);
        assert_eq!(ru.stem("звоните"), ru.stem("звонить"));
        let en = Stemmer::new(Lang::En);
        assert_eq!(en.stem("calling"), "call");
    }
}
