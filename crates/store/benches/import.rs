//! Contact import throughput (rows/s): the whole CSV path (parse, validate, normalise,
//! merge, batches of 10,000) on typical generated rows, the phone normaliser alone, and the
//! `phonenumber` crate's own parse + is_valid for comparison.
//!
//! `cargo bench -p store --bench import` (register with `[[bench]] name = "import"
//! harness = false`).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use store::import::{ImportOptions, Importer, PhoneNormaliser, PhoneTypeFilter};

const OPERATORS: [&str; 10] = ["50", "63", "66", "67", "68", "73", "93", "95", "97", "99"];

fn phone(i: usize) -> String {
    let op = OPERATORS[i % OPERATORS.len()];
    let d = format!("{:07}", i / OPERATORS.len() % 10_000_000);
    match i % 4 {
        0 => format!("+380 {op} {} {} {}", &d[..3], &d[3..5], &d[5..]),
        1 => format!("0{op}{d}"),
        2 => format!("(0{op}) {}-{}-{}", &d[..3], &d[3..5], &d[5..]),
        _ => format!("380{op}{d}"),
    }
}

/// Typical rows: every known column, two attributes, consent on every other row.
fn generate(n: usize) -> String {
    let mut s = String::with_capacity(n * 120);
    s.push_str("phone,name,timezone,language,consent_source,consent_at,consent_text_version,crm_id,segment\n");
    for i in 0..n {
        let consent = if i % 2 == 0 {
            "web_form,2024-03-01 12:30,v2"
        } else {
            ",,"
        };
        let lang = ["uk", "ru", "en"][i % 3];
        s.push_str(&format!(
            "{},Контакт {i},Europe/Kyiv,{lang},{consent},CRM-{i:08},seg{}\n",
            phone(i),
            i % 5
        ));
    }
    s
}

fn bench(c: &mut Criterion) {
    const ROWS: usize = 100_000;
    let csv = generate(ROWS);
    let mut g = c.benchmark_group("import");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("csv_rows", |b| {
        b.iter(|| {
            let mut imp = Importer::new(csv.as_bytes(), ImportOptions::default()).unwrap();
            while let Some(batch) = imp.next_batch(10_000).unwrap() {
                black_box(batch);
            }
            let report = imp.finish();
            assert_eq!(report.accepted, ROWS as u64);
        })
    });

    let phones: Vec<String> = (0..ROWS).map(phone).collect();
    g.bench_function("normalise_phone", |b| {
        let mut n = PhoneNormaliser::new("UA", PhoneTypeFilter::Any).unwrap();
        b.iter(|| {
            for p in &phones {
                black_box(n.normalise(p).unwrap());
            }
        })
    });
    g.bench_function("phonenumber_crate_parse_is_valid", |b| {
        b.iter(|| {
            for p in &phones {
                let n = phonenumber::parse(Some(phonenumber::country::UA), p).unwrap();
                black_box(phonenumber::is_valid(&n));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
