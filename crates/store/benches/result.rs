//! Writing one call's result: [`Store::finish_attempt`] with a [`NewResult`] — one commit of
//! the attempt's end, the result row (with its stream sequence number) and the contact's next
//! state — on SQLite (temp file, WAL, as [`Store::open`] configures it) and PostgreSQL.
//!
//! Benchmarks `finish_attempt/sqlite` and `finish_attempt/postgres`, one result per iteration
//! (criterion prints results per second). Only the `finish_attempt` calls are timed: before
//! each sample the bench claims due contacts and starts as many attempts as the sample needs
//! (`iter_custom`), inserting more consenting contacts when the campaign runs out. Outcomes
//! follow `percall.rs`'s mix (answered with a category, no answer, busy, voicemail); every
//! finish writes a result, as the campaign runner's does.
//!
//! ```text
//! cargo bench -p store --bench result
//! cargo bench -p store --bench result -- sqlite      # one backend (PostgreSQL is still set up)
//! ```
//! PostgreSQL comes from `DIALER_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! a database `dialer_b_result_<pid>` is created and dropped. When the server cannot be reached
//! the PostgreSQL benchmark is skipped with a note (so `cargo test --benches`, which runs each
//! benchmark once, passes without a server).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sqlx::Connection;
use store::{
    AttemptEnd, AttemptId, CampaignId, CampaignState, ClaimScope, NewCampaign, NewContact, Store,
};

mod outcomes;
mod scratch;
use outcomes::{end_of, now_ms, row};
use scratch::ScratchPg;

const KEY: &[u8] = b"bench-hmac-key";
const NODE: &str = "bench-node";
/// The runner's default lease (`engine::node`): 30 s.
const LEASE_MS: i64 = 30_000;
/// Contacts loaded before the first sample (the results table grows from there).
const BASE_CONTACTS: usize = 20_000;
const BASE_CONTACTS_TEST: usize = 200;

/// One backend's store, its running campaign and the contacts loaded so far.
struct Bench {
    store: Store,
    camp: CampaignId,
    /// Contacts inserted so far (the next row's index).
    contacts: usize,
    /// Attempts started so far (picks the outcome).
    attempts: usize,
}

impl Bench {
    async fn open(url: &str, base: usize) -> store::Result<Bench> {
        let store = Store::open(url).await?;
        let camp = store
            .create_campaign(&NewCampaign {
                name: "result".into(),
                script_path: "config/scripts/actualization.toml".into(),
                script_version: "v1".into(),
                settings: serde_json::json!({}),
                consent_required: true,
            })
            .await?;
        store
            .set_campaign_state(camp, CampaignState::Running)
            .await?;
        let mut b = Bench {
            store,
            camp,
            contacts: 0,
            attempts: 0,
        };
        b.add_contacts(base).await?;
        b.store.analyze().await?;
        Ok(b)
    }

    async fn add_contacts(&mut self, n: usize) -> store::Result<()> {
        let end = self.contacts + n;
        while self.contacts < end {
            let batch: Vec<NewContact> = (self.contacts..(self.contacts + 1_000).min(end))
                .map(|i| row(i, true))
                .collect();
            self.contacts += batch.len();
            self.store.insert_contacts(self.camp, &batch, KEY).await?;
        }
        Ok(())
    }

    /// `n` attempts claimed and started as the runner does before the INVITE, each with the
    /// end to write for it. Not timed.
    async fn started(&mut self, n: usize) -> Vec<(AttemptId, AttemptEnd)> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let want = (n - out.len()).min(500) as u32;
            let claimed = self
                .store
                .claim_due(
                    ClaimScope::Campaign(self.camp),
                    NODE,
                    now_ms(),
                    want,
                    LEASE_MS,
                )
                .await
                .expect("claim_due");
            if claimed.is_empty() {
                // Every contact was called: load more (finished ones are not due again soon).
                let more = (n - out.len()).max(1_000);
                self.add_contacts(more).await.expect("insert contacts");
                continue;
            }
            for c in claimed {
                let att = self
                    .store
                    .start_attempt(c.id, self.camp, NODE, Some("trunk-a"), now_ms())
                    .await
                    .expect("start_attempt");
                out.push((att, end_of(self.attempts, now_ms())));
                self.attempts += 1;
            }
        }
        out
    }

    /// One sample: `iters` results written, only the writes timed.
    async fn finish(&mut self, iters: u64) -> Duration {
        let work = self.started(iters as usize).await;
        let t = Instant::now();
        for (att, end) in work {
            let report = self
                .store
                .finish_attempt(att, end)
                .await
                .expect("finish_attempt");
            debug_assert!(report.result.is_some() && report.contact_updated);
            black_box(report);
        }
        t.elapsed()
    }
}

/// The scratch database, or `None` (with a note) when PostgreSQL cannot be reached.
async fn scratch_pg() -> Option<ScratchPg> {
    sqlx::any::install_default_drivers();
    let admin_url = std::env::var("DIALER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let why = match tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::AnyConnection::connect(&admin_url),
    )
    .await
    {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            // `create` panics on a failed DROP/CREATE DATABASE; a task contains the panic.
            match tokio::spawn(ScratchPg::create("dialer_b_result")).await {
                Ok(pg) => return Some(pg),
                Err(e) => format!("creating the scratch database failed ({e})"),
            }
        }
        Ok(Err(e)) => format!("unreachable ({e})"),
        Err(_) => "no answer within 5 s".to_string(),
    };
    println!(
        "finish_attempt/postgres skipped: PostgreSQL (DIALER_TEST_PG_URL or the local default) {why}"
    );
    None
}

fn results(c: &mut Criterion) {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let base = if bench_mode {
        BASE_CONTACTS
    } else {
        BASE_CONTACTS_TEST
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut g = c.benchmark_group("finish_attempt");
    g.throughput(Throughput::Elements(1))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10));

    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/dialer.db", dir.path().display());
    let mut sqlite = rt
        .block_on(Bench::open(&url, base))
        .expect("open the SQLite store");
    g.bench_function("sqlite", |b| {
        b.iter_custom(|iters| rt.block_on(sqlite.finish(iters)))
    });
    rt.block_on(sqlite.store.close());

    if let Some(pg) = rt.block_on(scratch_pg()) {
        match rt.block_on(Bench::open(&pg.url, base)) {
            Ok(mut postgres) => {
                g.bench_function("postgres", |b| {
                    b.iter_custom(|iters| rt.block_on(postgres.finish(iters)))
                });
                rt.block_on(postgres.store.close());
            }
            Err(e) => println!("finish_attempt/postgres skipped: opening the store failed ({e})"),
        }
        rt.block_on(pg.drop_db());
    }
    g.finish();
}

criterion_group!(benches, results);
criterion_main!(benches);
