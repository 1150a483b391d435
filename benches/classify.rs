//! Micro-benchmarks of the answer classifier ([`script::classify::Classifier`]):
//!
//! - `classify/corpus_{ru,en,uk}`: classifying every line of the labelled corpus of that
//!   language (throughput in answers/s; the target is ≥ 50,000/s single-threaded);
//! - `classify/long_answer`: one rambling 10 kB answer (the worst case the cap allows);
//! - `classify/build`: building the classifier from the six categories of the actualization
//!   script (done once per loaded script version).
//!
//! The categories are the default script's (`config/scripts/actualization.toml`); the answers
//! the script crate's labelled corpus.
//!
//! Run: `cargo bench -p benches --bench classify`.
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use script::classify::Classifier;
use script::{CategorySpec, Classify, Lang};

const CORPUS_RU: &str = include_str!("../crates/script/tests/data/corpus_ru.tsv");
const CORPUS_EN: &str = include_str!("../crates/script/tests/data/corpus_en.tsv");
const CORPUS_UK: &str = include_str!("../crates/script/tests/data/corpus_uk.tsv");

/// The categories of the shipped default script.
fn categories() -> Vec<CategorySpec> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/scripts/actualization.toml"
    );
    script::Script::load_with(path, &script::LoadOptions::without_prompt_files())
        .unwrap_or_else(|e| panic!("{e}"))
        .categories()
        .to_vec()
}

fn answers(tsv: &str) -> Vec<&str> {
    tsv.lines()
        .filter_map(|l| l.split_once('\t').map(|(_, text)| text))
        .collect()
}

fn bench_classify(c: &mut Criterion) {
    let specs = categories();
    let classifier = Classifier::new(&specs);
    let mut g = c.benchmark_group("classify");
    for (name, lang, tsv) in [
        ("corpus_ru", Lang::Ru, CORPUS_RU),
        ("corpus_en", Lang::En, CORPUS_EN),
        ("corpus_uk", Lang::Uk, CORPUS_UK),
    ] {
        let lines = answers(tsv);
        g.throughput(Throughput::Elements(lines.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut matched = 0usize;
                for text in &lines {
                    matched += usize::from(classifier.classify(lang, black_box(text)).is_some());
                }
                matched
            })
        });
    }
    let long =
        "ну вы знаете, мы сейчас думаем, может быть позже, перезвоните через месяц, ".repeat(140);
    g.throughput(Throughput::Elements(1));
    g.bench_function("long_answer", |b| {
        b.iter(|| classifier.classify(Lang::Ru, black_box(&long)))
    });
    g.bench_function("build", |b| b.iter(|| Classifier::new(black_box(&specs))));
    g.finish();
}

criterion_group!(benches, bench_classify);
criterion_main!(benches);
