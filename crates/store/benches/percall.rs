//! The store's share of the scheduler's overhead per call (issue 5): exactly the store calls the
//! campaign runner's store task makes for each call (`engine::campaign::store_task`), from one
//! caller, on SQLite (temp file, WAL) and PostgreSQL:
//!
//! - `claim_due` in batches of `--batch` (50), amortised over the batch;
//! - `attempt_counts` (the caps: two queries), once per call;
//! - `start_attempt` (one commit, before the INVITE);
//! - `finish_attempt` with a result (one commit: result + attempt end + the contact's next
//!   state), `--live` (20) calls after the call's start, as if that many calls were in progress;
//! - `renew_leases` of every held contact (claimed and live) every `--renew-every` (50) calls
//!   (the runner renews every lease/3 = 10 s, i.e. every 200 calls at 20 calls/s: this is
//!   more often than that).
//!
//! A *step* is one call's worth of that work: its counts, its start, the finish of the call
//! started `--live` calls before, plus the claim or renewal when one falls due. Printed per
//! backend: step wall time p50 / p99 / max, calls/s over the timed run, and each operation's
//! p50 / p99. Outcomes follow a realistic mix (answered with a category, no answer, busy,
//! voicemail); every finish writes a result, as the runner's does.
//!
//! ```text
//! cargo bench -p store --bench percall                        # both backends, 2,000 calls
//! cargo bench -p store --bench percall -- --backend sqlite --calls 5000
//! ```
//! Options: `--calls N`, `--contacts N` (base size, default 100,000), `--warmup N` (untimed
//! calls first, default 200), `--batch N`, `--live N`, `--renew-every N`, `--no-caps`.
//! PostgreSQL comes from `DIALER_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! a database `dialer_b_percall_<pid>` is created and dropped. Without `--bench` (as under
//! `cargo test --benches`) it runs a 100-call smoke pass on SQLite.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

mod outcomes;
mod scratch;
use outcomes::{end_of, now_ms, row};
use scratch::ScratchPg;
use store::{AttemptId, CampaignState, ClaimScope, ClaimedContact, ContactId, NewCampaign, Store};

const KEY: &[u8] = b"bench-hmac-key";
const NODE: &str = "bench-node";
/// The runner's default lease (`engine::node`): 30 s.
const LEASE_MS: i64 = 30_000;

struct Args {
    calls: usize,
    contacts: usize,
    warmup: usize,
    batch: u32,
    live: usize,
    renew_every: usize,
    caps: bool,
    sqlite: bool,
    postgres: bool,
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let bench = argv.iter().any(|a| a == "--bench");
    let mut a = Args {
        calls: if bench { 2_000 } else { 100 },
        contacts: if bench { 100_000 } else { 2_000 },
        warmup: if bench { 200 } else { 20 },
        batch: 50,
        live: 20,
        renew_every: 50,
        caps: true,
        sqlite: true,
        postgres: bench,
    };
    let mut it = argv.iter();
    while let Some(k) = it.next() {
        let mut num = |what: &str| -> usize {
            it.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| panic!("{what} needs a number"))
        };
        match k.as_str() {
            "--calls" => a.calls = num("--calls"),
            "--contacts" => a.contacts = num("--contacts"),
            "--warmup" => a.warmup = num("--warmup"),
            "--batch" => a.batch = u32::try_from(num("--batch").max(1)).unwrap_or(u32::MAX),
            "--live" => a.live = num("--live"),
            "--renew-every" => a.renew_every = num("--renew-every").max(1),
            "--no-caps" => a.caps = false,
            "--backend" => match it.next().map(String::as_str) {
                Some("sqlite") => (a.sqlite, a.postgres) = (true, false),
                Some("postgres") => (a.sqlite, a.postgres) = (false, true),
                Some("both") => (a.sqlite, a.postgres) = (true, true),
                other => panic!("--backend sqlite|postgres|both, not {other:?}"),
            },
            _ => {}
        }
    }
    // Every call needs a fresh due contact (retries are due later), with room to spare.
    a.contacts = a
        .contacts
        .max(2 * (a.calls + a.warmup) + a.live + a.batch as usize);
    a
}

/// Durations of one operation, in µs.
#[derive(Default)]
struct Samples(Vec<u64>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_micros() as u64);
    }

    fn pct(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        self.0.sort_unstable();
        let i = ((self.0.len() as f64 * p).ceil() as usize).clamp(1, self.0.len()) - 1;
        self.0[i] as f64 / 1000.0
    }

    fn line(&mut self) -> String {
        format!(
            "n {:>5}  p50 {:>7.3} ms  p99 {:>7.3} ms",
            self.0.len(),
            self.pct(0.50),
            self.pct(0.99)
        )
    }
}

#[derive(Default)]
struct Stats {
    step: Samples,
    claim: Samples,
    counts: Samples,
    start: Samples,
    finish: Samples,
    renew: Samples,
}

/// The runner's store task for one caller: a queue of claimed contacts, calls in flight.
struct Runner<'a> {
    store: &'a Store,
    camp: store::CampaignId,
    a: &'a Args,
    ready: VecDeque<ClaimedContact>,
    live: VecDeque<(ContactId, AttemptId)>,
    calls: usize,
}

impl Runner<'_> {
    /// One call's worth of store work; `st` gets the timings.
    async fn step(&mut self, st: &mut Stats) {
        let t_step = Instant::now();
        if self.ready.is_empty() {
            let t = Instant::now();
            let got = self
                .store
                .claim_due(
                    ClaimScope::Campaign(self.camp),
                    NODE,
                    now_ms(),
                    self.a.batch,
                    LEASE_MS,
                )
                .await
                .unwrap();
            st.claim.push(t.elapsed());
            assert!(!got.is_empty(), "no due contact left");
            self.ready.extend(got);
        }
        let c = self.ready.pop_front().unwrap();
        if self.a.caps {
            // engine::campaign::capped_until: today's attempts (local day), 7 days across
            // campaigns by the number's HMAC.
            let now = now_ms();
            let t = Instant::now();
            let n = self
                .store
                .attempt_counts(
                    c.id,
                    c.campaign_id,
                    &c.phone_hmac,
                    now - 10 * 3_600_000,
                    now - 7 * 86_400_000,
                )
                .await
                .unwrap();
            st.counts.push(t.elapsed());
            assert_eq!(n.today, 0);
        }
        let t = Instant::now();
        let att = self
            .store
            .start_attempt(c.id, self.camp, NODE, Some("trunk-a"), now_ms())
            .await
            .unwrap();
        st.start.push(t.elapsed());
        self.live.push_back((c.id, att));
        if self.live.len() > self.a.live {
            let (_, att) = self.live.pop_front().unwrap();
            let t = Instant::now();
            self.store
                .finish_attempt(att, end_of(self.calls, now_ms()))
                .await
                .unwrap();
            st.finish.push(t.elapsed());
        }
        self.calls += 1;
        if self.calls.is_multiple_of(self.a.renew_every) {
            let ids: Vec<ContactId> = self
                .live
                .iter()
                .map(|(id, _)| *id)
                .chain(self.ready.iter().map(|c| c.id))
                .collect();
            let t = Instant::now();
            let held = self
                .store
                .renew_leases(NODE, &ids, now_ms() + LEASE_MS)
                .await
                .unwrap();
            st.renew.push(t.elapsed());
            assert_eq!(held.len(), ids.len(), "a lease was lost");
        }
        st.step.push(t_step.elapsed());
    }
}

async fn run(label: &str, url: &str, a: &Args) {
    let store = Store::open(url).await.expect("open store");
    let camp = store
        .create_campaign(&NewCampaign {
            name: "percall".into(),
            script_path: "config/scripts/actualization.toml".into(),
            script_version: "v1".into(),
            settings: serde_json::json!({}),
            consent_required: false,
        })
        .await
        .unwrap();
    let t = Instant::now();
    let mut batch = Vec::with_capacity(1_000);
    let mut i = 0;
    while i < a.contacts {
        batch.clear();
        batch.extend((i..(i + 1_000).min(a.contacts)).map(|i| row(i, false)));
        i += batch.len();
        store.insert_contacts(camp, &batch, KEY).await.unwrap();
    }
    store.analyze().await.unwrap();
    store
        .set_campaign_state(camp, CampaignState::Running)
        .await
        .unwrap();
    println!(
        "{label}: {} contacts loaded in {:.1} s (not timed); {} warm-up calls, then {} timed",
        a.contacts,
        t.elapsed().as_secs_f64(),
        a.warmup,
        a.calls
    );

    let mut r = Runner {
        store: &store,
        camp,
        a,
        ready: VecDeque::new(),
        live: VecDeque::new(),
        calls: 0,
    };
    let mut warm = Stats::default();
    for _ in 0..a.warmup {
        r.step(&mut warm).await;
    }
    let mut st = Stats::default();
    let t = Instant::now();
    for _ in 0..a.calls {
        r.step(&mut st).await;
    }
    let el = t.elapsed();
    // Close what is still in flight (not timed).
    for (_, att) in r.live.drain(..) {
        store
            .finish_attempt(att, end_of(0, now_ms()))
            .await
            .unwrap();
    }
    let ids: Vec<ContactId> = r.ready.iter().map(|c| c.id).collect();
    store.release_contacts(NODE, &ids, None).await.unwrap();

    println!(
        "{label}: {} calls in {:.2} s: {:.0} calls/s, {:.3} ms/call mean; per call (step) p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        a.calls,
        el.as_secs_f64(),
        a.calls as f64 / el.as_secs_f64(),
        el.as_secs_f64() * 1000.0 / a.calls as f64,
        st.step.pct(0.50),
        st.step.pct(0.99),
        st.step.pct(1.0),
    );
    for (name, s) in [
        (format!("claim_due({})", a.batch), &mut st.claim),
        ("attempt_counts".to_string(), &mut st.counts),
        ("start_attempt".to_string(), &mut st.start),
        ("finish_attempt".to_string(), &mut st.finish),
        ("renew_leases".to_string(), &mut st.renew),
    ] {
        println!("{label}:   {name:<16} {}", s.line());
    }
    store.close().await;
}

fn main() {
    let a = parse_args();
    println!(
        "per call: claim_due batch {}, caps {}, {} in flight, renew every {} calls",
        a.batch,
        if a.caps { "on" } else { "off" },
        a.live,
        a.renew_every
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if a.sqlite {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/dialer.db", dir.path().display());
            run("sqlite", &url, &a).await;
        }
        if a.postgres {
            let pg = ScratchPg::create("dialer_b_percall").await;
            run("postgres", &pg.url, &a).await;
            pg.drop_db().await;
        }
    });
}
