//! Accuracy of the answer classifier on a labelled corpus of survey answers.
//!
//! The categories come from the shipped default script, `config/scripts/actualization.toml`
//! (so the figures are those of what runs); the answers from `tests/data/corpus_{ru,en,uk}.tsv`
//! (`category<TAB>answer`, written before the phrase lists, which were then improved against
//! it) and `tests/data/holdout_{ru,en,uk}.tsv` (written after the tuning and never tuned on).
//! Lines labelled `none` are off-topic and must stay below the threshold.
//!
//! Run with `cargo test -p script --test corpus -- --nocapture` to see the table.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use script::classify::{Classifier, DEFAULT_THRESHOLD, Source};
use script::{CategorySpec, Classify, Lang};

/// Minimum share of correctly classified category lines per language.
const MIN_ACCURACY: f64 = 0.95;
/// Minimum share of `none` lines left below the threshold per language.
const MIN_NONE_REJECTED: f64 = 0.9;
/// Minimum share of correctly classified holdout lines per language.
const MIN_HOLDOUT_ACCURACY: f64 = 0.8;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Parses the `[[category]]` array of a script fragment.
fn load_lines(name: &str) -> Vec<(String, String)> {
    let path = data(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut seen = std::collections::BTreeSet::new();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (cat, phrase) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("no tab in {l:?}"));
            assert!(
                seen.insert(phrase.to_owned()),
                "duplicate line {phrase:?} in {name}"
            );
            (cat.to_owned(), phrase.to_owned())
        })
        .collect()
}

fn classifier() -> (Vec<CategorySpec>, Classifier) {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/scripts/actualization.toml");
    let script = script::Script::load_with(&path, &script::LoadOptions::without_prompt_files())
        .unwrap_or_else(|e| panic!("{e}"));
    let categories = script.categories().to_vec();
    assert_eq!(categories.len(), 6);
    let classifier = Classifier::new(&categories);
    assert_eq!(
        classifier.skipped_phrases(),
        [],
        "phrases that can never match"
    );
    (categories, classifier)
}

/// `writeln!` into a `String`, which cannot fail.
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

#[derive(Default)]
struct Tally {
    total: usize,
    correct: usize,
}

/// Accuracy of one language's labelled lines.
struct Report {
    /// Correct / total over the category lines (not `none`).
    accuracy: f64,
    /// `none` lines rejected / total.
    none: (usize, usize),
}

/// Classifies every line, prints the per-category table, the misclassified lines and the
/// scores of the `none` lines.
fn evaluate(
    title: &str,
    classifier: &Classifier,
    lang: Lang,
    lines: &[(String, String)],
) -> Report {
    let mut per_cat: BTreeMap<String, Tally> = BTreeMap::new();
    let mut wrong = Vec::new();
    let mut none_scores = Vec::new();
    for (expected, text) in lines {
        let got = classifier.classify(lang, text);
        let accepted = got.as_ref().filter(|m| m.score >= DEFAULT_THRESHOLD);
        let ok = match accepted {
            Some(m) => m.category == *expected,
            None => expected == "none",
        };
        let tally = per_cat.entry(expected.clone()).or_default();
        tally.total += 1;
        tally.correct += usize::from(ok);
        if expected == "none" {
            none_scores.push((text.clone(), got.clone()));
        }
        if !ok {
            let d = classifier.classify_detailed(lang, text);
            wrong.push(format!(
                "  {expected:<16} {text:?} → {} | runner-up {} | tokens {:?}",
                show(&d.best),
                show(&d.runner_up),
                d.tokens
            ));
        }
    }
    let mut out = String::new();
    let (mut total, mut correct) = (0, 0);
    w!(
        out,
        "\n[{title} {lang}] {:<18} {:>5} {:>7} {:>8}",
        "category",
        "lines",
        "correct",
        "accuracy"
    );
    for (cat, t) in &per_cat {
        w!(
            out,
            "[{title} {lang}] {cat:<18} {:>5} {:>7} {:>7.1}%",
            t.total,
            t.correct,
            pct(t.correct, t.total)
        );
        if cat != "none" {
            total += t.total;
            correct += t.correct;
        }
    }
    let accuracy = correct as f64 / total.max(1) as f64;
    w!(
        out,
        "[{title} {lang}] {:<18} {total:>5} {correct:>7} {:>7.1}%  (category lines, threshold {DEFAULT_THRESHOLD})",
        "overall",
        accuracy * 100.0
    );
    if !wrong.is_empty() {
        w!(out, "[{title} {lang}] misclassified:");
        for w in &wrong {
            w!(out, "{w}");
        }
    }
    w!(
        out,
        "[{title} {lang}] none lines (best score; accepted only at ≥ {DEFAULT_THRESHOLD}):"
    );
    for (text, m) in &none_scores {
        w!(out, "  {text:?} → {}", show(m));
    }
    eprint!("{out}");
    let none = per_cat.get("none").map_or((0, 0), |t| (t.correct, t.total));
    Report { accuracy, none }
}

/// The corpus the phrase lists were tuned against: ≥ 95% per language, ≥ 90% of `none` lines
/// rejected.
#[test]
fn corpus_accuracy() {
    let (_, classifier) = classifier();
    let mut failures = Vec::new();
    for lang in [Lang::Ru, Lang::En, Lang::Uk] {
        let lines = load_lines(&format!("corpus_{}.tsv", lang.code()));
        let r = evaluate("corpus", &classifier, lang, &lines);
        if r.accuracy < MIN_ACCURACY {
            failures.push(format!(
                "{lang}: accuracy {:.1}% < {:.0}%",
                r.accuracy * 100.0,
                MIN_ACCURACY * 100.0
            ));
        }
        if r.none.1 > 0 && (r.none.0 as f64) < MIN_NONE_REJECTED * r.none.1 as f64 {
            failures.push(format!(
                "{lang}: only {}/{} off-topic lines rejected",
                r.none.0, r.none.1
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Lines written after the phrase lists were tuned and never used to tune them: an estimate of
/// accuracy on unseen answers. Guards against regressions with a lower bar.
#[test]
fn holdout_accuracy() {
    let (_, classifier) = classifier();
    let mut failures = Vec::new();
    for lang in [Lang::Ru, Lang::En, Lang::Uk] {
        let lines = load_lines(&format!("holdout_{}.tsv", lang.code()));
        let corpus: std::collections::BTreeSet<String> =
            load_lines(&format!("corpus_{}.tsv", lang.code()))
                .into_iter()
                .map(|l| l.1)
                .collect();
        for (_, text) in &lines {
            assert!(
                !corpus.contains(text),
                "holdout line {text:?} is also in the corpus"
            );
        }
        let r = evaluate("holdout", &classifier, lang, &lines);
        if r.accuracy < MIN_HOLDOUT_ACCURACY {
            failures.push(format!(
                "{lang}: holdout accuracy {:.1}%",
                r.accuracy * 100.0
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Explains answers given as `CLASSIFY_EXPLAIN="ru:текст|en:text"`: tokens, every phrase or
/// key match and the scores. Does nothing without the variable.
#[test]
fn explain() {
    let Ok(lines) = std::env::var("CLASSIFY_EXPLAIN") else {
        return;
    };
    let (categories, classifier) = classifier();
    for line in lines.split('|') {
        let (code, text) = line.split_once(':').unwrap_or(("ru", line));
        let lang = Lang::parse(code).expect("language code");
        let d = classifier.classify_detailed(lang, text);
        eprintln!("[{lang}] {text:?} tokens {:?}", d.tokens);
        for e in &d.evidence {
            let what = match e.source {
                Source::Phrase(i) => {
                    let spec = categories.iter().find(|c| c.id == e.category).unwrap();
                    format!("phrase {:?}", spec.phrases[&lang][i])
                }
                Source::Key(k) => format!("key {k}"),
            };
            eprintln!(
                "    {:<16} {:.3} {} {what}",
                e.category,
                e.score,
                if e.counted { " " } else { "x" }
            );
        }
        for m in &d.scores {
            eprintln!("  = {:<16} {:.3}", m.category, m.score);
        }
    }
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 * 100.0 / b as f64
    }
}

fn show(m: &Option<script::Match>) -> String {
    match m {
        Some(m) => format!("{} {:.2}", m.category, m.score),
        None => "-".to_owned(),
    }
}
