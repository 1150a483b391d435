//! Languages and the category definitions that the script loader and the classifier share.

use std::collections::BTreeMap;
use std::fmt;

/// A language a script speaks and the classifier understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    Ru,
    Uk,
    En,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::Ru, Lang::Uk, Lang::En];

    /// ISO 639-1 code, as scripts, the ASR protocol and results spell it.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ru => "ru",
            Lang::Uk => "uk",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ru" => Some(Lang::Ru),
            "uk" | "ua" => Some(Lang::Uk),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One answer category as a script declares it: its id (`manager_call`, …), the DTMF keys that
/// select it, and the phrases per language that the classifier matches speech against.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CategorySpec {
    pub id: String,
    pub keys: Vec<char>,
    pub phrases: BTreeMap<Lang, Vec<String>>,
}

/// What a classifier found in one utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// The winning category's id.
    pub category: String,
    /// 0.0 ..= 1.0; the script's threshold decides whether it is enough.
    pub score: f32,
}

/// Text → category. The script runtime holds one per loaded script version.
pub trait Classify: Send + Sync + fmt::Debug {
    /// The best category for `text` spoken in `lang`, if any phrase matched at all.
    fn classify(&self, lang: Lang, text: &str) -> Option<Match>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for l in Lang::ALL {
            assert_eq!(Lang::parse(l.code()), Some(l));
        }
        assert_eq!(Lang::parse("UA"), Some(Lang::Uk));
        assert_eq!(Lang::parse("de"), None);
    }
}
