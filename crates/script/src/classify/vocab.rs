//! The stems of one language's phrases, with the indexes that find, for a stem heard in an
//! answer, the phrase stems it may stand for:
//!
//! - exact: the same stem (similarity [`SIM_EXACT`]);
//! - prefix: a phrase stem of at least [`MIN_PREFIX`] letters that begins the heard stem
//!   ("интерес" in "интересн"; [`SIM_PREFIX`]), or a heard stem of at least
//!   [`MIN_REV_PREFIX`] letters that begins a phrase stem ([`SIM_REV_PREFIX`], less for four
//!   letters);
//! - sound-alike, only when there is no exact match: the same [`sound_key`] (doubled letters
//!   collapsed, soft/hard signs dropped, Cyrillic vowels folded as unstressed ones sound:
//!   "манагер"/"менеджер" no, "удолите"/"удалите" yes, "mannager"/"manager" yes;
//!   [`SIM_SOUND`]);
//! - fuzzy, only when there is no exact match: an optimal-string-alignment distance of 1 for
//!   stems of 4–7 letters and of at most 2 from 8 letters ([`SIM_FUZZY1`]; [`SIM_FUZZY2`] for
//!   two edits or a stem under six letters),
//!   found through a symmetric-deletion index (every phrase stem with one or two letters
//!   deleted), so a lookup costs a few hash probes rather than a scan of the vocabulary.

use std::collections::HashMap;

/// Similarity of an exact stem match.
pub(crate) const SIM_EXACT: f32 = 1.0;
/// Similarity when a phrase stem begins the heard stem.
pub(crate) const SIM_PREFIX: f32 = 0.85;
/// Similarity of a sound-alike stem.
pub(crate) const SIM_SOUND: f32 = 0.85;
/// Similarity when the heard stem begins a phrase stem.
pub(crate) const SIM_REV_PREFIX: f32 = 0.8;
/// Similarity at edit distance 1.
pub(crate) const SIM_FUZZY1: f32 = 0.75;
/// Similarity at edit distance 2, at distance 1 for a stem under six letters (where one edit
/// often makes another word: "quit"/"quote", "погод"/"полгод"), and for a four-letter heard
/// stem that begins a phrase stem.
pub(crate) const SIM_FUZZY2: f32 = 0.6;
/// Shortest phrase stem that may match as a prefix.
pub(crate) const MIN_PREFIX: usize = 4;
/// Shortest heard stem that may match as the prefix of a phrase stem.
pub(crate) const MIN_REV_PREFIX: usize = 4;
/// Shortest heard stem that scores [`SIM_REV_PREFIX`] as a prefix (shorter: [`SIM_FUZZY2`]).
const MIN_REV_PREFIX_FULL: usize = 5;
/// Shortest stem matched fuzzily.
const MIN_FUZZY: usize = 4;
/// From this length one edit scores [`SIM_FUZZY1`].
const MIN_FUZZY_FULL: usize = 6;
/// From this length two edits are tolerated.
const MIN_FUZZY2: usize = 8;

fn max_edits(len: usize) -> usize {
    match len {
        0..MIN_FUZZY => 0,
        MIN_FUZZY..MIN_FUZZY2 => 1,
        _ => 2,
    }
}

/// Phrase stems of one language and their lookup indexes.
#[derive(Debug, Default)]
pub(crate) struct Vocab {
    exact: HashMap<Box<str>, u32>,
    stems: Vec<Box<str>>,
    /// Proper prefixes (≥ [`MIN_REV_PREFIX`] letters) of phrase stems.
    prefixes: HashMap<Box<str>, Vec<u32>>,
    /// Phrase stems with one (or two, for long stems) letters deleted.
    deletions: HashMap<Box<str>, Vec<u32>>,
    /// Phrase stems by [`sound_key`].
    sounds: HashMap<Box<str>, Vec<u32>>,
}

impl Vocab {
    /// The id of `stem`, adding it if new. Call [`Vocab::finish`] after the last insert.
    pub(crate) fn insert(&mut self, stem: &str) -> u32 {
        if let Some(id) = self.exact.get(stem) {
            return *id;
        }
        let id = self.stems.len() as u32;
        self.stems.push(stem.into());
        self.exact.insert(stem.into(), id);
        id
    }

    /// Number of distinct stems.
    pub(crate) fn len(&self) -> usize {
        self.stems.len()
    }

    /// Builds the prefix and deletion indexes.
    pub(crate) fn finish(&mut self) {
        self.prefixes.clear();
        self.deletions.clear();
        self.sounds.clear();
        let mut buf = String::new();
        for (id, stem) in self.stems.iter().enumerate() {
            let id = id as u32;
            if stem.starts_with('@') {
                // An entity name matches only the entity.
                continue;
            }
            push_unique(self.sounds.entry(sound_key(stem).into()).or_default(), id);
            let chars: Vec<char> = stem.chars().collect();
            for n in MIN_REV_PREFIX..chars.len() {
                let p: String = chars[..n].iter().collect();
                push_unique(self.prefixes.entry(p.into()).or_default(), id);
            }
            for_deletions(&chars, max_edits(chars.len()), &mut buf, |d| {
                push_unique(self.deletions.entry(d.into()).or_default(), id);
            });
        }
    }

    /// Adds to `out` every phrase stem `stem` may stand for, as `(id, similarity)`, each id once
    /// with its best similarity.
    pub(crate) fn lookup(&self, stem: &str, out: &mut Vec<(u32, f32)>) {
        let start = out.len();
        let add = |id: u32, sim: f32, out: &mut Vec<(u32, f32)>| match out[start..]
            .iter_mut()
            .find(|(i, _)| *i == id)
        {
            Some(e) => e.1 = e.1.max(sim),
            None => out.push((id, sim)),
        };
        let exact = self.exact.get(stem).copied();
        if let Some(id) = exact {
            add(id, SIM_EXACT, out);
        }
        let chars: Vec<char> = stem.chars().collect();
        // A phrase stem that begins this one.
        let mut buf = String::with_capacity(stem.len());
        for (n, c) in chars.iter().enumerate().take(chars.len().saturating_sub(1)) {
            buf.push(*c);
            if n + 1 >= MIN_PREFIX
                && let Some(id) = self.exact.get(buf.as_str())
            {
                add(*id, SIM_PREFIX, out);
            }
        }
        // This stem begins a phrase stem.
        if chars.len() >= MIN_REV_PREFIX
            && let Some(ids) = self.prefixes.get(stem)
        {
            let sim = if chars.len() >= MIN_REV_PREFIX_FULL {
                SIM_REV_PREFIX
            } else {
                SIM_FUZZY2
            };
            for id in ids {
                add(*id, sim, out);
            }
        }
        if exact.is_some() {
            return;
        }
        if let Some(ids) = self.sounds.get(sound_key(stem).as_str()) {
            for id in ids {
                add(*id, SIM_SOUND, out);
            }
        }
        let edits = max_edits(chars.len());
        if edits == 0 {
            return;
        }
        let mut found: Vec<u32> = Vec::new();
        let mut probe = |key: &str| {
            if let Some(id) = self.exact.get(key) {
                push_unique(&mut found, *id);
            }
            if let Some(ids) = self.deletions.get(key) {
                for id in ids {
                    push_unique(&mut found, *id);
                }
            }
        };
        probe(stem);
        for_deletions(&chars, edits, &mut buf, |d| probe(d));
        for id in found {
            let other = &self.stems[id as usize];
            let allowed = max_edits(chars.len().min(other.chars().count()));
            let d = strsim::osa_distance(stem, other);
            if d == 0 || d > allowed {
                continue;
            }
            let short = chars.len().min(other.chars().count()) < MIN_FUZZY_FULL;
            add(
                id,
                if d == 1 && !short {
                    SIM_FUZZY1
                } else {
                    SIM_FUZZY2
                },
                out,
            );
        }
    }

    /// The id of exactly this stem.
    pub(crate) fn exact(&self, stem: &str) -> Option<u32> {
        self.exact.get(stem).copied()
    }

    /// The stem with this id.
    #[cfg(test)]
    pub(crate) fn stem(&self, id: u32) -> &str {
        &self.stems[id as usize]
    }
}

/// A key under which stems that sound alike meet: doubled letters collapsed, `ь`/`ъ` dropped,
/// Cyrillic vowels folded to `а`/`и`/`у` as they sound unstressed (`о`→`а`, `е э ё ы і ї є`→`и`,
/// `я`→`а`, `ю`→`у`). Latin stems only lose doubled letters.
pub(crate) fn sound_key(stem: &str) -> String {
    let mut out = String::with_capacity(stem.len());
    let mut last = None;
    for c in stem.chars() {
        let c = match c {
            'ь' | 'ъ' => continue,
            'о' | 'я' => 'а',
            'е' | 'э' | 'ё' | 'ы' | 'і' | 'ї' | 'є' => 'и',
            'ю' => 'у',
            other => other,
        };
        if last != Some(c) {
            out.push(c);
        }
        last = Some(c);
    }
    out
}

fn push_unique(v: &mut Vec<u32>, id: u32) {
    if !v.contains(&id) {
        v.push(id);
    }
}

/// Calls `f` with every string made by deleting one, and (if `edits` ≥ 2) two, letters.
fn for_deletions(chars: &[char], edits: usize, buf: &mut String, mut f: impl FnMut(&str)) {
    if edits == 0 {
        return;
    }
    for i in 0..chars.len() {
        buf.clear();
        buf.extend(
            chars
                .iter()
                .enumerate()
                .filter(|(k, _)| *k != i)
                .map(|(_, c)| c),
        );
        f(buf);
        if edits >= 2 {
            for j in i + 1..chars.len() {
                buf.clear();
                buf.extend(
                    chars
                        .iter()
                        .enumerate()
                        .filter(|(k, _)| *k != i && *k != j)
                        .map(|(_, c)| c),
                );
                f(buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(words: &[&str]) -> Vocab {
        let mut v = Vocab::default();
        for w in words {
            v.insert(w);
        }
        v.finish();
        v
    }

    fn sims(v: &Vocab, s: &str) -> Vec<(String, f32)> {
        let mut out = Vec::new();
        v.lookup(s, &mut out);
        out.into_iter()
            .map(|(id, sim)| (v.stem(id).to_owned(), sim))
            .collect()
    }

    #[test]
    fn exact_prefix_fuzzy() {
        let v = vocab(&["менеджер", "интерес", "почт", "звон"]);
        assert_eq!(sims(&v, "менеджер"), [("менеджер".to_owned(), SIM_EXACT)]);
        assert_eq!(sims(&v, "интересн"), [("интерес".to_owned(), SIM_PREFIX)]);
        assert_eq!(sims(&v, "менаджер"), [("менеджер".to_owned(), SIM_FUZZY1)]);
        assert_eq!(sims(&v, "манеджир"), [("менеджер".to_owned(), SIM_FUZZY2)]);
        assert_eq!(sims(&v, "интер"), [("интерес".to_owned(), SIM_REV_PREFIX)]);
        assert!(sims(&v, "дом").is_empty());
        assert_eq!(sims(&v, "миниджир"), [("менеджер".to_owned(), SIM_SOUND)]);
        assert!(sims(&v, "").is_empty());
    }
}
