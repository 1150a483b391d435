//! Store throughput on SQLite and PostgreSQL: bulk contact insert (1,000,000 rows in batches of
//! 1,000, as the CSV import calls it), claiming due contacts, and the per-call cycle
//! (claim → start_attempt → finish_attempt with a result).
//!
//! ```text
//! cargo bench -p store --bench insert                       # both backends, 1M rows
//! cargo bench -p store --bench insert -- --backend sqlite --rows 200000
//! ```
//! PostgreSQL comes from `DIALER_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! a database `dialer_t_bench_<pid>` is created and dropped. Without `--bench` (as under
//! `cargo test --benches`) it runs a 2,000-row smoke pass on SQLite. Diagnostics:
//! `BENCH_PG_LOG_MS=50` logs PostgreSQL statements slower than that (server log),
//! `BENCH_KEEP_DB=1` keeps the PostgreSQL database for EXPLAIN.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sqlx::Executor;

mod scratch;
use scratch::ScratchPg;
use store::{
    AttemptEnd, CampaignState, ClaimScope, ConsentSource, NewCampaign, NewConsent, NewContact,
    NewResult, Next, Store,
};

const KEY: &[u8] = b"bench-hmac-key";

struct Args {
    rows: usize,
    batch: usize,
    claims: usize,
    cycles: usize,
    sqlite: bool,
    postgres: bool,
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let bench = argv.iter().any(|a| a == "--bench");
    let mut a = if bench {
        Args {
            rows: 1_000_000,
            batch: 1_000,
            claims: 50_000,
            cycles: 5_000,
            sqlite: true,
            postgres: true,
        }
    } else {
        Args {
            rows: 2_000,
            batch: 1_000,
            claims: 500,
            cycles: 100,
            sqlite: true,
            postgres: false,
        }
    };
    let mut it = argv.iter();
    while let Some(k) = it.next() {
        let mut num = |what: &str| -> usize {
            it.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| panic!("{what} needs a number"))
        };
        match k.as_str() {
            "--rows" => a.rows = num("--rows"),
            "--batch" => a.batch = num("--batch"),
            "--claims" => a.claims = num("--claims"),
            "--cycles" => a.cycles = num("--cycles"),
            "--backend" => match it.next().map(String::as_str) {
                Some("sqlite") => (a.sqlite, a.postgres) = (true, false),
                Some("postgres") => (a.sqlite, a.postgres) = (false, true),
                Some("both") => (a.sqlite, a.postgres) = (true, true),
                other => panic!("--backend sqlite|postgres|both, not {other:?}"),
            },
            _ => {}
        }
    }
    a
}

/// A realistic row: number, name, zone, language, two attributes, a consent on every third.
fn row(i: usize) -> NewContact {
    let mut attributes = BTreeMap::new();
    attributes.insert("crm_id".to_string(), format!("C{i:08}"));
    attributes.insert(
        "segment".to_string(),
        ["smb", "b2b", "retail"][i % 3].to_string(),
    );
    NewContact {
        phone_e164: format!("+38050{:07}", i % 10_000_000),
        name: Some(format!("Контакт {i}")),
        timezone: Some("Europe/Kyiv".to_string()),
        language: Some("uk".to_string()),
        attributes,
        consent: i.is_multiple_of(3).then(|| NewConsent {
            source: ConsentSource::WebForm,
            given_at_ms: 1_700_000_000_000,
            text_version: "2024-01".to_string(),
            evidence: None,
        }),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Largest size the SQLite WAL reached (sampled every 100 ms), for `path` = the database file.
fn watch_wal(path: Option<std::path::PathBuf>) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
    let max = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    if let Some(path) = path {
        let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
        let m = max.clone();
        std::thread::spawn(move || {
            loop {
                let len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
                m.fetch_max(len, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    }
    max
}

async fn run(label: &str, url: &str, a: &Args) {
    let wal_max = watch_wal(url.strip_prefix("sqlite://").map(std::path::PathBuf::from));
    let store = Store::open(url).await.expect("open store");
    let camp = store
        .create_campaign(&NewCampaign {
            name: "bench".into(),
            script_path: "config/scripts/actualization.toml".into(),
            script_version: "v1".into(),
            settings: serde_json::json!({}),
            consent_required: false,
        })
        .await
        .unwrap();

    // 1. Bulk insert, batch by batch (generation is not timed).
    let mut spent = Duration::ZERO;
    let mut inserted = 0;
    let mut batch = Vec::with_capacity(a.batch);
    let mut i = 0;
    while i < a.rows {
        batch.clear();
        batch.extend((i..(i + a.batch).min(a.rows)).map(row));
        i += batch.len();
        let t = Instant::now();
        let r = store.insert_contacts(camp, &batch, KEY).await.unwrap();
        spent += t.elapsed();
        inserted += r.inserted;
    }
    assert_eq!(inserted as usize, a.rows);
    println!(
        "{label}: insert {} contacts in batches of {}: {:.1} s, {:.0} rows/s",
        a.rows,
        a.batch,
        spent.as_secs_f64(),
        a.rows as f64 / spent.as_secs_f64()
    );

    if label == "sqlite" {
        println!(
            "{label}: largest WAL during the insert: {:.0} MiB",
            wal_max.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1048576.0
        );
    }

    // 2. Claiming (100 per call, as a scheduler tick would).
    store
        .set_campaign_state(camp, CampaignState::Running)
        .await
        .unwrap();
    let now = now_ms() + 1;
    let claims = a.claims.min(a.rows / 2);
    let t = Instant::now();
    let mut claimed = 0;
    let mut calls = 0;
    while claimed < claims {
        let got = store
            .claim_due(ClaimScope::Campaign(camp), "bench", now, 100, 60_000)
            .await
            .unwrap();
        assert!(!got.is_empty());
        claimed += got.len();
        calls += 1;
    }
    let el = t.elapsed();
    println!(
        "{label}: claim_due(limit 100) x{calls}: {claimed} contacts, {:.0} contacts/s, {:.2} ms/call",
        claimed as f64 / el.as_secs_f64(),
        el.as_secs_f64() * 1000.0 / calls as f64
    );

    // 3. The store's work per call: claim 1, start_attempt, finish_attempt with a result.
    let t = Instant::now();
    for _ in 0..a.cycles {
        let c = store
            .claim_due(ClaimScope::Campaign(camp), "bench", now, 1, 60_000)
            .await
            .unwrap()
            .pop()
            .expect("a due contact");
        let att = store
            .start_attempt(c.id, camp, "bench", Some("trunk"), now)
            .await
            .unwrap();
        store
            .finish_attempt(
                att,
                AttemptEnd {
                    now_ms: now + 1,
                    outcome: "answered".into(),
                    sip_status: Some(200),
                    result: Some(NewResult {
                        category: Some("send_details".into()),
                        outcome: "answered".into(),
                        dtmf: Some("2".into()),
                        transcript: Some("відправте деталі на пошту".into()),
                        confidence: Some(0.93),
                        duration_ms: Some(14_000),
                        ..NewResult::default()
                    }),
                    next: Next::Done,
                },
            )
            .await
            .unwrap();
    }
    let el = t.elapsed();
    println!(
        "{label}: call cycle (claim 1 + start_attempt + finish_attempt): {} calls, {:.0} calls/s, {:.2} ms/call",
        a.cycles,
        a.cycles as f64 / el.as_secs_f64(),
        el.as_secs_f64() * 1000.0 / a.cycles as f64
    );
    store.close().await;
}

fn main() {
    let a = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if a.sqlite {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/dialer.db", dir.path().display());
            run("sqlite", &url, &a).await;
            let size = std::fs::metadata(dir.path().join("dialer.db"))
                .map(|m| m.len())
                .unwrap_or(0);
            println!("sqlite: database file {:.0} MiB", size as f64 / 1048576.0);
        }
        if a.postgres {
            let mut pg = ScratchPg::create("dialer_t_bench").await;
            let name = pg.name.clone();
            if let Ok(ms) = std::env::var("BENCH_PG_LOG_MS") {
                pg.admin
                    .execute(
                        format!("ALTER DATABASE {name} SET log_min_duration_statement = {ms}")
                            .as_str(),
                    )
                    .await
                    .unwrap();
            }
            run("postgres", &pg.url, &a).await;
            if std::env::var("BENCH_KEEP_DB").is_ok() {
                println!("kept database {name}");
                return;
            }
            pg.drop_db().await;
        }
    });
}
