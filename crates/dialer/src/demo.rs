//! `dialer demo`: the whole product on one machine with no configuration.
//!
//! It creates an embedded SQLite store under `data/demo/`, starts the callee simulator on
//! loopback with a realistic persona mix (`config/personas-demo.toml`: people who key or say
//! their answer, voicemail, busy, no answer, hang-ups), starts the reference speech recogniser
//! when `scripts/setup-asr.sh` has set it up (else the speaking callees go unheard and the
//! script asks for keys), imports a generated base of contacts with consent records, runs the
//! default survey (`config/scripts/actualization.toml`) through the campaign runner with a live
//! progress bar, and prints the segmented report from the store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use engine::campaign::{Control, Progress, RunnerConfig};
use engine::dialogue::ScriptPlan;
use engine::schedule::Policy;
use engine::trunk::TrunkConfig;
use store::{CampaignState, NewCampaign, NewContact, Store};

use crate::children::{AsrServer, Personas, Simulator};

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Contacts in the generated base.
    #[arg(long, default_value_t = 1000)]
    contacts: u32,
    /// New calls per second.
    #[arg(long, default_value_t = 50.0)]
    cps: f64,
    /// Calls in progress at most.
    #[arg(long, default_value_t = 600)]
    channels: u32,
    /// Where the demo's SQLite database goes (a new file per run) and its recordings.
    #[arg(long, value_name = "DIR", default_value = "data/demo")]
    data: PathBuf,
    /// Use this store instead of a new SQLite file, e.g. postgres://127.0.0.1/test (the demo
    /// adds a new campaign to it).
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// Do not start the speech recogniser even if it is set up (keys only).
    #[arg(long)]
    no_asr: bool,
    /// Seed of the simulated crowd and the generated base.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// RTP sockets of the campaign and the simulated crowd: `per-call` or `shared` (see
    /// `[sip] rtp_sockets` in config/dialer.toml).
    #[arg(long, value_name = "MODE", default_value = "per-call")]
    rtp_sockets: engine::media::SocketMode,
}

/// The campaign's schedule: calls allowed all day (a demo runs whenever it is started), short
/// retries so that they happen within the demo.
const DEMO_POLICY: &str = r#"
default_tz = "Europe/Kyiv"

[window]
mon = ["00:00-24:00"]
tue = ["00:00-24:00"]
wed = ["00:00-24:00"]
thu = ["00:00-24:00"]
fri = ["00:00-24:00"]
sat = ["00:00-24:00"]
sun = ["00:00-24:00"]

[retry]
busy = { delay = "5s", max_attempts = 2 }
no_answer = { delay = "5s", max_attempts = 2 }
failed = { delay = "5s", max_attempts = 2 }
interrupted = { delay = "5s", max_attempts = 3 }
voicemail = "done"
no_input = "done"
unclassified = "done"
rejected = "done"

[caps]
# The demo's retries come seconds apart; a real campaign keeps the default (5 minutes).
min_gap = "1s"
"#;

/// A CSV base as a CRM exports it: `rows` contacts with consent records, two rows in a
/// hundred broken the way real exports are (a bad number, an unknown time zone), one in a
/// hundred in national format.
fn generated_base(rows: u32, seed: u64) -> String {
    use std::fmt::Write as _;
    let mut csv = String::from(
        "phone,name,timezone,language,consent_source,consent_at,consent_text_version,crm_id\n",
    );
    let consent_at = (chrono::Utc::now() - chrono::TimeDelta::days(30)).format("%Y-%m-%d %H:%M");
    for i in 0..rows {
        let n = (u64::from(i) * 7919 + seed) % 10_000_000;
        let name = FIRST_NAMES[i as usize % FIRST_NAMES.len()];
        let (phone, tz) = match i % 100 {
            1 => (
                format!("044 {:03} {:02} {:02}", n / 10_000, n / 100 % 100, n % 100),
                "Europe/Kyiv",
            ),
            50 => ("12345".to_owned(), "Europe/Kyiv"),
            75 => (format!("+38044{n:07}"), "Europe/Kiev-City"),
            _ => (format!("+38044{n:07}"), "Europe/Kyiv"),
        };
        let _ = writeln!(
            csv,
            "{phone},{name},{tz},ru,web_form,{consent_at},v1,C{:06}",
            i + 1
        );
    }
    csv
}

const FIRST_NAMES: [&str; 12] = [
    "Олена",
    "Андрій",
    "Ірина",
    "Сергій",
    "Марія",
    "Олег",
    "Наталія",
    "Дмитро",
    "Тетяна",
    "Юрій",
    "Світлана",
    "Максим",
];

/// The repository (for config/ and asr/): the current directory, or the one this binary was
/// built from.
fn repo_root() -> anyhow::Result<PathBuf> {
    let here = PathBuf::from(".");
    if here.join("config/scripts/actualization.toml").is_file() {
        return Ok(here);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if built.join("config/scripts/actualization.toml").is_file() {
        return Ok(built);
    }
    anyhow::bail!(
        "config/scripts/actualization.toml not found: run `dialer demo` from the repository"
    )
}

pub(crate) fn main(runtime: &tokio::runtime::Runtime, args: DemoArgs) -> ExitCode {
    if args.contacts == 0 || args.contacts > 1_000_000 {
        eprintln!(
            "dialer demo: invalid --contacts {}: expected 1..=1000000",
            args.contacts
        );
        return ExitCode::from(2);
    }
    if !(args.cps.is_finite() && (0.1..=1000.0).contains(&args.cps)) {
        eprintln!(
            "dialer demo: invalid --cps {}: expected 0.1..=1000",
            args.cps
        );
        return ExitCode::from(2);
    }
    if !(1..=10_000).contains(&args.channels) {
        eprintln!(
            "dialer demo: invalid --channels {}: expected 1..=10000",
            args.channels
        );
        return ExitCode::from(2);
    }
    crate::simulate::raise_nofile();
    let _guard = runtime.enter();
    match runtime.block_on(run(args)) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dialer demo: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: DemoArgs) -> anyhow::Result<String> {
    let repo = repo_root()?;
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create {}", args.data.display()))?;
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let recordings = args.data.join(format!("recordings-{stamp}"));
    let url = match &args.store {
        Some(u) => u.clone(),
        None => format!(
            "sqlite://{}",
            args.data.join(format!("demo-{stamp}.db")).display()
        ),
    };
    // A URL may carry a password: show what follows the `@` only.
    let shown = url.rsplit('@').next().unwrap_or_default().to_owned();
    eprintln!("dialer demo: store {shown}");
    let store = Store::open(&url)
        .await
        .with_context(|| format!("cannot open the store {shown}"))?;

    // The recogniser, if it is set up.
    let asr = if args.no_asr {
        eprintln!("dialer demo: speech recognition off (--no-asr): callees who speak go unheard");
        None
    } else {
        match AsrServer::start_if_set_up(&repo) {
            Ok(a) => {
                eprintln!("dialer demo: reference speech recogniser at {}", a.url);
                Some(a)
            }
            Err(why) => {
                eprintln!("dialer demo: {why}; running DTMF-only (speaking callees go unheard)");
                None
            }
        }
    };
    let asr_client = match &asr {
        Some(a) => Some(
            engine::asr::AsrClient::new(engine::asr::AsrConfig {
                timeout: Duration::from_secs(20),
                ..engine::asr::AsrConfig::new(a.url.clone())
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        None => None,
    };
    let script_path = repo.join("config/scripts/actualization.toml");
    let plan = ScriptPlan::load(&script_path, None, asr_client, None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    // The crowd.
    let personas = repo.join("config/personas-demo.toml");
    let sim = Simulator::start(
        &Personas::File(personas),
        args.seed,
        // A bound, should the demo be killed before it stops the simulator: the dialling time
        // three times over plus ten minutes of retries and calls.
        Duration::from_secs_f64((f64::from(args.contacts) / args.cps * 3.0 + 600.0).min(86_400.0)),
        false,
        &[
            "--rtp-sockets",
            match args.rtp_sockets {
                engine::media::SocketMode::Shared => "shared",
                engine::media::SocketMode::PerCall => "per-call",
            },
        ],
    )?;
    eprintln!("dialer demo: simulated callees at {}", sim.addr);

    // The campaign and its contacts.
    let policy: Policy = toml::from_str(DEMO_POLICY).context("the demo's calling policy")?;
    let campaign = store
        .create_campaign(&NewCampaign {
            name: "demo: customer-base update".into(),
            script_path: script_path.display().to_string(),
            script_version: plan.script.version_id().to_owned(),
            settings: serde_json::json!({
                "policy": toml::from_str::<toml::Value>(DEMO_POLICY).ok(),
                "cps": args.cps,
                "channels": args.channels,
                "language": "ru",
                "default_region": "UA",
            }),
            consent_required: true,
        })
        .await?;
    // A demo key; a real deployment keeps its own secret in the configuration.
    let hmac_key: Vec<u8> = format!("demo-hmac-key-{stamp}").into_bytes();
    // The base arrives as a CRM export would: CSV with consent columns and free attributes,
    // a few rows broken (they are reported, the rest imports).
    let csv = generated_base(args.contacts, args.seed);
    let mut importer = store::import::Importer::new(
        csv.as_bytes(),
        store::import::ImportOptions::with_region("UA"),
    )
    .map_err(|e| anyhow::anyhow!("the generated base: {e}"))?;
    let mut inserted = 0;
    while let Some(batch) = importer
        .next_batch(1000)
        .map_err(|e| anyhow::anyhow!("the generated base: {e}"))?
    {
        let contacts: Vec<NewContact> = batch.into_iter().map(NewContact::from).collect();
        inserted += store
            .insert_contacts(campaign, &contacts, &hmac_key)
            .await?
            .inserted;
    }
    let imported = importer.finish();
    eprintln!(
        "dialer demo: {} CSV rows, {inserted} contacts with consent records imported, {} rows refused",
        imported.rows_read, imported.errors_total
    );
    for e in imported.errors.iter().take(3) {
        eprintln!("  {e}");
    }
    store
        .set_campaign_state(campaign, CampaignState::Running)
        .await?;

    let mut trunk = TrunkConfig::from_uri(&format!("sip:{}", sim.addr));
    trunk.name = "simulator".into();
    trunk.cps = args.cps;
    trunk.max_channels = args.channels;
    let trunk = trunk.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let cfg = RunnerConfig {
        campaign,
        node: format!("demo-{}", std::process::id()),
        trunks: vec![engine::campaign::TrunkLine::alone(trunk)],
        pacer: engine::trunk::Pacer::shared(args.cps, args.channels),
        ring_timeout: Duration::from_secs(20),
        policy,
        script: Arc::new(plan),
        hmac_key: hmac_key.clone(),
        lease: Duration::from_secs(120),
        record_dir: Some(recordings),
        stop_when_done: true,
        bind: "127.0.0.1:0".parse().expect("literal address"),
        seed: engine::node::fresh_seed("demo", campaign),
        rtp_sockets: args.rtp_sockets,
    };
    let (control_tx, control_rx) = tokio::sync::watch::channel(Control::Run);
    // Ctrl-C: no new calls, live calls finish, then the report.
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ndialer demo: stopping (live calls finish first)");
            let _ = control_tx.send(Control::Stop);
        }
    });
    let bar = indicatif::ProgressBar::new(inserted);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} contacts done · {msg}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    let total = i64::try_from(inserted).unwrap_or(i64::MAX);
    let progress = engine::campaign::run(store.clone(), cfg, control_rx, |p: &Progress| {
        bar.set_position(u64::try_from((total - p.pending.min(total)).max(0)).unwrap_or(0));
        let per_hour = p.placed as f64 * 3600.0 / p.elapsed.as_secs_f64().max(1e-3);
        bar.set_message(format!(
            "{} live, {} calls placed, {} answered, {} opt-outs, {:.0} calls/h",
            p.live, p.placed, p.answered, p.opt_outs, per_hour
        ));
    })
    .await?;
    bar.finish();
    store
        .set_campaign_state(campaign, CampaignState::Finished)
        .await?;
    let _ = sim.stop();
    drop(asr);
    report(&store, campaign, &progress, inserted).await
}

async fn report(
    store: &Store,
    campaign: store::CampaignId,
    p: &Progress,
    contacts: u64,
) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let counts = store.result_counts(campaign).await?;
    let stats = store.attempt_stats(campaign).await?;
    let states = store.contact_counts(campaign).await?;
    let mut by_category: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_outcome: BTreeMap<String, i64> = BTreeMap::new();
    for c in &counts {
        *by_outcome.entry(c.outcome.clone()).or_default() += c.count;
        if let Some(cat) = &c.category {
            *by_category.entry(cat.clone()).or_default() += c.count;
        }
    }
    let attempts: i64 = by_outcome.values().sum();
    let answered_attempts = attempts
        - by_outcome
            .iter()
            .filter(|(o, _)| !matches!(o.as_str(), "answered" | "no_input" | "voicemail"))
            .map(|(_, n)| n)
            .sum::<i64>();
    let categorised: i64 = by_category
        .iter()
        .filter(|(c, _)| !matches!(c.as_str(), "no_input" | "unclassified"))
        .map(|(_, n)| n)
        .sum();
    let pct = |n: i64, of: i64| 100.0 * n as f64 / of.max(1) as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nCampaign report ({} contacts, {:.0} s)",
        contacts,
        p.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "\n  answers (per answered call)            count   share"
    );
    for (cat, n) in &by_category {
        let _ = writeln!(
            s,
            "    {cat:<36} {n:>6}  {:>5.1}%",
            pct(*n, answered_attempts)
        );
    }
    let _ = writeln!(
        s,
        "\n  call outcomes (all {attempts} attempts)        count   share"
    );
    for (o, n) in &by_outcome {
        let _ = writeln!(s, "    {o:<36} {n:>6}  {:>5.1}%", pct(*n, attempts));
    }
    let hours = p.elapsed.as_secs_f64() / 3600.0;
    let avg_call = if stats.talked > 0 {
        stats.talk_ms as f64 / stats.talked as f64 / 1000.0
    } else {
        0.0
    };
    let _ = writeln!(
        s,
        "\n  reach rate (contacts answered)         {:>5.1}%",
        pct(answered_attempts, contacts as i64)
    );
    let _ = writeln!(
        s,
        "  answered with a category               {:>5.1}%",
        pct(categorised, answered_attempts)
    );
    let _ = writeln!(
        s,
        "  calls per hour achieved                {:>8.0}",
        stats.started as f64 / hours.max(1e-9)
    );
    let _ = writeln!(
        s,
        "  average answered call                  {avg_call:>6.1} s"
    );
    let _ = writeln!(
        s,
        "  opt-outs honoured (erased, suppressed) {:>6}",
        states.erased
    );
    let _ = writeln!(
        s,
        "  contacts: {} done, {} erased, {} still pending; {} attempts interrupted; {} store errors",
        states.done,
        states.erased,
        states.pending + states.in_progress,
        stats.interrupted,
        p.store_errors
    );
    Ok(s)
}
