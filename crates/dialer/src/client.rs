//! The `dialer` CLI as a client of the gRPC control API (`dialer serve`): `campaign
//! create|import|start|pause|resume|stop|status|watch`, `results stream|export`, `report`,
//! `optout`.
//!
//! Every command takes `--server URL` (env `DIALER_SERVER`, default `http://127.0.0.1:50051`),
//! `--token` (env `DIALER_TOKEN`) and `--json` (one JSON object per line on stdout instead of
//! text). Exit codes: 0 ok; 2 usage or validation error (the message names the field: a bad
//! argument, a settings file, or the server's INVALID_ARGUMENT / NOT_FOUND /
//! FAILED_PRECONDITION); 1 runtime failure (server unreachable, auth refused, I/O).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use control::client::Api;
use control::pb;
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tonic::Code;

/// Connection flags shared by every client command.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Conn {
    /// The control API of a `dialer serve`.
    #[arg(
        long,
        value_name = "URL",
        env = "DIALER_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    /// Bearer token (one of the server's [grpc] tokens).
    #[arg(long, env = "DIALER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Machine output: JSON on stdout (one object per line for streams), no progress bars.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct CampaignArgs {
    #[command(subcommand)]
    cmd: CampaignCmd,
}

#[derive(Debug, clap::Subcommand)]
enum CampaignCmd {
    /// Create a campaign (state draft) from a settings file.
    Create(CreateArgs),
    /// Import contacts from a CSV file (header row with a `phone` column; see README).
    Import(ImportArgs),
    /// Start dialling (draft or paused → running).
    Start(IdArgs),
    /// Pause: no new calls; calls in progress finish.
    Pause(IdArgs),
    /// Resume a paused campaign.
    Resume(IdArgs),
    /// Stop for good.
    Stop(IdArgs),
    /// One campaign's state and progress, or every campaign without an id.
    Status(StatusArgs),
    /// Follow a campaign's progress until it stops or finishes (Ctrl-C leaves).
    Watch(IdArgs),
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// Operator-facing name.
    #[arg(long)]
    name: String,
    /// A script name in the server's scripts directory (e.g. actualization), or an absolute
    /// path on the server.
    #[arg(long)]
    script: String,
    /// Campaign settings (TOML: policy with default_tz, window, retry, caps; trunks, cps,
    /// channels, language, default_region, manager_uri, ring_timeout_secs).
    #[arg(long, value_name = "FILE.toml")]
    settings: PathBuf,
    /// `required`: only contacts with a consent on record are called; `collect`: the script
    /// collects consent itself.
    #[arg(long, value_name = "MODE", default_value = "required")]
    consent_mode: String,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Debug, clap::Args)]
struct ImportArgs {
    /// Campaign id.
    campaign: i64,
    /// The CSV file.
    file: PathBuf,
    /// Region of numbers written without a country code (default: the campaign's).
    #[arg(long, value_name = "CC")]
    region: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Debug, clap::Args)]
struct IdArgs {
    /// Campaign id.
    campaign: i64,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    /// Campaign id (none: list every campaign).
    campaign: Option<i64>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ResultsArgs {
    #[command(subcommand)]
    cmd: ResultsCmd,
}

#[derive(Debug, clap::Subcommand)]
enum ResultsCmd {
    /// Results as JSON lines, from a cursor; --follow keeps going as calls end (and
    /// reconnects from the last seq if the server restarts).
    Stream(StreamArgs),
    /// The campaign's results as CSV.
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
struct StreamArgs {
    /// Only this campaign (default: all).
    #[arg(long)]
    campaign: Option<i64>,
    /// Start after this sequence number (the last one you processed).
    #[arg(long, value_name = "SEQ", default_value_t = 0)]
    after: i64,
    /// Keep streaming new results until interrupted.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// Campaign id.
    campaign: i64,
    /// Write here instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    /// Campaign id.
    campaign: i64,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Debug, clap::Args)]
pub(crate) struct OptoutArgs {
    /// The number, in any common format.
    number: String,
    /// Region of a number without a country code (default: the server's).
    #[arg(long, value_name = "CC")]
    region: Option<String>,
    /// Why (audited).
    #[arg(long, default_value = "operator request (CLI)")]
    reason: String,
    #[command(flatten)]
    conn: Conn,
}

/// A failure and its exit code.
#[derive(Debug)]
struct Fail {
    code: u8,
    msg: String,
}

impl Fail {
    fn usage(msg: impl Into<String>) -> Fail {
        Fail {
            code: 2,
            msg: msg.into(),
        }
    }

    fn runtime(msg: impl Into<String>) -> Fail {
        Fail {
            code: 1,
            msg: msg.into(),
        }
    }
}

impl From<tonic::Status> for Fail {
    fn from(s: tonic::Status) -> Fail {
        let code = match s.code() {
            Code::InvalidArgument
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::AlreadyExists => 2,
            _ => 1,
        };
        let what = match s.code() {
            Code::Unauthenticated => "not authenticated (--token / DIALER_TOKEN)",
            Code::Unavailable => "server unavailable",
            Code::DeadlineExceeded => "timed out",
            _ => "",
        };
        Fail {
            code,
            msg: if what.is_empty() {
                s.message().to_string()
            } else {
                format!("{what}: {}", s.message())
            },
        }
    }
}

type Out<T = ()> = Result<T, Fail>;

fn run(runtime: &tokio::runtime::Runtime, name: &str, fut: impl Future<Output = Out>) -> ExitCode {
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("dialer {name}: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}

async fn connect(conn: &Conn) -> Out<Api> {
    Api::connect(&conn.server, conn.token.as_deref())
        .await
        .map_err(|e| match e {
            control::client::ConnectError::Url { .. } | control::client::ConnectError::Token => {
                Fail::usage(format!("--server/--token: {e}"))
            }
            other => Fail::runtime(other.to_string()),
        })
}

/// `dialer campaign …`.
pub(crate) fn campaign(runtime: &tokio::runtime::Runtime, args: CampaignArgs) -> ExitCode {
    match args.cmd {
        CampaignCmd::Create(a) => run(runtime, "campaign create", create(a)),
        CampaignCmd::Import(a) => run(runtime, "campaign import", import(a)),
        CampaignCmd::Start(a) => run(runtime, "campaign start", change(a, Change::Start)),
        CampaignCmd::Pause(a) => run(runtime, "campaign pause", change(a, Change::Pause)),
        CampaignCmd::Resume(a) => run(runtime, "campaign resume", change(a, Change::Resume)),
        CampaignCmd::Stop(a) => run(runtime, "campaign stop", change(a, Change::Stop)),
        CampaignCmd::Status(a) => run(runtime, "campaign status", status(a)),
        CampaignCmd::Watch(a) => run(runtime, "campaign watch", watch(a)),
    }
}

/// `dialer results …`.
pub(crate) fn results(runtime: &tokio::runtime::Runtime, args: ResultsArgs) -> ExitCode {
    match args.cmd {
        ResultsCmd::Stream(a) => run(runtime, "results stream", stream(a)),
        ResultsCmd::Export(a) => run(runtime, "results export", export(a)),
    }
}

/// `dialer report CAMPAIGN`.
pub(crate) fn report(runtime: &tokio::runtime::Runtime, args: ReportArgs) -> ExitCode {
    run(runtime, "report", print_report(args))
}

/// `dialer optout NUMBER`.
pub(crate) fn optout(runtime: &tokio::runtime::Runtime, args: OptoutArgs) -> ExitCode {
    run(runtime, "optout", opt_out(args))
}

fn state_name(s: i32) -> &'static str {
    match pb::CampaignState::try_from(s) {
        Ok(pb::CampaignState::Draft) => "draft",
        Ok(pb::CampaignState::Running) => "running",
        Ok(pb::CampaignState::Paused) => "paused",
        Ok(pb::CampaignState::Stopped) => "stopped",
        Ok(pb::CampaignState::Finished) => "finished",
        _ => "unknown",
    }
}

fn campaign_json(c: &pb::Campaign) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "state": state_name(c.state),
        "script_path": c.script_path,
        "script_version": c.script_version,
        "consent_mode": if c.consent_mode == pb::ConsentMode::Collect as i32 { "collect" } else { "required" },
        "created_at_ms": c.created_at_ms,
        "updated_at_ms": c.updated_at_ms,
    })
}

fn print_json(v: &Value) {
    println!("{v}");
}

async fn create(a: CreateArgs) -> Out {
    let text = std::fs::read_to_string(&a.settings)
        .map_err(|e| Fail::usage(format!("--settings {}: {e}", a.settings.display())))?;
    let settings = engine::settings::CampaignSettings::from_toml(&text)
        .map_err(|e| Fail::usage(format!("--settings {}: {e}", a.settings.display())))?;
    let consent_mode = match a.consent_mode.as_str() {
        "required" => pb::ConsentMode::Required,
        "collect" => pb::ConsentMode::Collect,
        other => {
            return Err(Fail::usage(format!(
                "--consent-mode: {other:?} is neither required nor collect"
            )));
        }
    };
    let api = connect(&a.conn).await?;
    let c = api
        .campaigns()
        .create_campaign(pb::CreateCampaignRequest {
            name: a.name,
            script: a.script,
            settings: Some(control::convert::settings_from_json(&settings.to_json())),
            consent_mode: consent_mode as i32,
        })
        .await?
        .into_inner();
    if a.conn.json {
        print_json(&campaign_json(&c));
    } else {
        println!(
            "campaign {} created ({}), script {} {}",
            c.id,
            state_name(c.state),
            c.script_path,
            c.script_version
        );
    }
    Ok(())
}

/// CSV chunk size sent per message.
const CHUNK: usize = 64 * 1024;

async fn import(a: ImportArgs) -> Out {
    use pb::import_contacts_request::Item;
    let file = std::fs::File::open(&a.file)
        .map_err(|e| Fail::usage(format!("{}: {e}", a.file.display())))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let api = connect(&a.conn).await?;
    let bar = if a.conn.json {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(len);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} · {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_message("importing");
        b
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::ImportContactsRequest>(4);
    let header = pb::ImportContactsRequest {
        item: Some(Item::Header(pb::ImportHeader {
            campaign_id: a.campaign,
            default_region: a.region.unwrap_or_default(),
        })),
    };
    let reader_bar = bar.clone();
    // The file is read on a blocking thread and sent as it is read.
    let reader = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Read as _;
        let mut file = file;
        if tx.blocking_send(header).is_err() {
            return Ok(());
        }
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            reader_bar.inc(n as u64);
            let msg = pb::ImportContactsRequest {
                item: Some(Item::CsvChunk(bytes::Bytes::copy_from_slice(&buf[..n]))),
            };
            if tx.blocking_send(msg).is_err() {
                return Ok(());
            }
        }
    });
    let result = api
        .campaigns()
        .import_contacts(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    bar.finish_and_clear();
    let read = reader
        .await
        .map_err(|e| Fail::runtime(format!("reader: {e}")))?;
    read.map_err(|e| Fail::runtime(format!("{}: {e}", a.file.display())))?;
    let r = result?.into_inner();
    if a.conn.json {
        print_json(&json!({
            "rows_read": r.rows_read,
            "imported": r.imported,
            "duplicates_merged": r.duplicates_merged,
            "suppressed_refused": r.suppressed_refused,
            "errors_total": r.errors_total,
            "consents_recorded": r.consents_recorded,
            "errors": r.errors.iter().map(|e| json!({"row": e.row, "field": e.field, "reason": e.reason})).collect::<Vec<_>>(),
        }));
    } else {
        println!(
            "{} rows read: {} imported, {} duplicates merged, {} refused (opted out), {} invalid, {} consents recorded",
            r.rows_read,
            r.imported,
            r.duplicates_merged,
            r.suppressed_refused,
            r.errors_total,
            r.consents_recorded
        );
        for e in r.errors.iter().take(50) {
            if e.field.is_empty() {
                println!("  row {}: {}", e.row, e.reason);
            } else {
                println!("  row {}, field {}: {}", e.row, e.field, e.reason);
            }
        }
        if r.errors_total > 50 {
            println!(
                "  … {} more (--json lists the first 1000)",
                r.errors_total - 50
            );
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Start,
    Pause,
    Resume,
    Stop,
}

async fn change(a: IdArgs, what: Change) -> Out {
    let api = connect(&a.conn).await?;
    let mut c = api.campaigns();
    let id = a.campaign;
    let campaign = match what {
        Change::Start => {
            c.start_campaign(pb::StartCampaignRequest { campaign_id: id })
                .await
        }
        Change::Pause => {
            c.pause_campaign(pb::PauseCampaignRequest { campaign_id: id })
                .await
        }
        Change::Resume => {
            c.resume_campaign(pb::ResumeCampaignRequest { campaign_id: id })
                .await
        }
        Change::Stop => {
            c.stop_campaign(pb::StopCampaignRequest { campaign_id: id })
                .await
        }
    }?
    .into_inner();
    if a.conn.json {
        print_json(&campaign_json(&campaign));
    } else {
        println!("campaign {} is {}", campaign.id, state_name(campaign.state));
    }
    Ok(())
}

fn progress_json(p: &pb::CampaignProgress) -> Value {
    let counts = p.contacts.unwrap_or_default();
    let map = |v: &[pb::Count]| -> Value {
        v.iter()
            .map(|c| (c.name.clone(), json!(c.count)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    json!({
        "campaign_id": p.campaign_id,
        "state": state_name(p.state),
        "contacts": {
            "pending": counts.pending, "in_progress": counts.in_progress, "done": counts.done,
            "suppressed": counts.suppressed, "erased": counts.erased, "total": counts.total,
        },
        "live_calls": p.live_calls,
        "dialled": p.dialled,
        "finished": p.finished,
        "outcomes": map(&p.outcomes),
        "categories": map(&p.categories),
        "calls_per_hour": p.calls_per_hour,
        "at_ms": p.at_ms,
    })
}

fn progress_line(p: &pb::CampaignProgress) -> String {
    let c = p.contacts.unwrap_or_default();
    format!(
        "{}: {}/{} contacts done, {} pending · {} live, {} dialled, {:.0} calls/h",
        state_name(p.state),
        c.done + c.erased + c.suppressed,
        c.total,
        c.pending + c.in_progress,
        p.live_calls,
        p.dialled,
        p.calls_per_hour
    )
}

async fn status(a: StatusArgs) -> Out {
    let api = connect(&a.conn).await?;
    let Some(id) = a.campaign else {
        let list = api
            .campaigns()
            .list_campaigns(pb::ListCampaignsRequest::default())
            .await?
            .into_inner();
        if a.conn.json {
            for c in &list.campaigns {
                print_json(&campaign_json(c));
            }
        } else {
            println!("{:>6}  {:<9}  {:<40}  script", "id", "state", "name");
            for c in &list.campaigns {
                println!(
                    "{:>6}  {:<9}  {:<40}  {}",
                    c.id,
                    state_name(c.state),
                    c.name,
                    c.script_version
                );
            }
        }
        return Ok(());
    };
    let c = api
        .campaigns()
        .get_campaign(pb::GetCampaignRequest { campaign_id: id })
        .await?
        .into_inner();
    // One snapshot of the watch stream.
    let mut w = api
        .campaigns()
        .watch_campaign(pb::WatchCampaignRequest {
            campaign_id: id,
            interval_ms: 0,
        })
        .await?
        .into_inner();
    let p = tokio::time::timeout(Duration::from_secs(30), w.next())
        .await
        .map_err(|_| Fail::runtime("no progress within 30 s"))?
        .ok_or_else(|| Fail::runtime("the server sent no progress"))??;
    if a.conn.json {
        let mut v = campaign_json(&c);
        v["progress"] = progress_json(&p);
        print_json(&v);
    } else {
        println!("campaign {} {:?} ({})", c.id, c.name, c.script_version);
        println!("  {}", progress_line(&p));
    }
    Ok(())
}

async fn watch(a: IdArgs) -> Out {
    let api = connect(&a.conn).await?;
    let mut w = api
        .campaigns()
        .watch_campaign(pb::WatchCampaignRequest {
            campaign_id: a.campaign,
            interval_ms: 0,
        })
        .await?
        .into_inner();
    let bar = if a.conn.json {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} contacts done · {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    };
    let mut last = None;
    loop {
        let next = tokio::select! {
            n = w.next() => n,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(p) = next else { break };
        let p = p?;
        if a.conn.json {
            print_json(&progress_json(&p));
        } else {
            let c = p.contacts.unwrap_or_default();
            bar.set_length(u64::try_from(c.total).unwrap_or(0));
            bar.set_position(u64::try_from(c.done + c.erased + c.suppressed).unwrap_or(0));
            bar.set_message(format!(
                "{} · {} live, {} dialled, {:.0} calls/h",
                state_name(p.state),
                p.live_calls,
                p.dialled,
                p.calls_per_hour
            ));
        }
        last = Some(p);
    }
    bar.finish_and_clear();
    if !a.conn.json
        && let Some(p) = last
    {
        println!("{}", progress_line(&p));
    }
    Ok(())
}

fn result_json(r: &pb::CallResult) -> Value {
    json!({
        "seq": r.seq,
        "id": r.id,
        "campaign_id": r.campaign_id,
        "contact_id": r.contact_id,
        "attempt_id": r.attempt_id,
        "phone": (!r.phone.is_empty()).then_some(&r.phone),
        "category": (!r.category.is_empty()).then_some(&r.category),
        "outcome": r.outcome,
        "dtmf": (!r.dtmf.is_empty()).then_some(&r.dtmf),
        "transcript": (!r.transcript.is_empty()).then_some(&r.transcript),
        "follow_up": (!r.follow_up.is_empty()).then_some(&r.follow_up),
        "confidence": r.confidence,
        "amd": (!r.amd.is_empty()).then_some(&r.amd),
        "sip_status": r.sip_status,
        "setup_ms": r.setup_ms,
        "duration_ms": r.duration_ms,
        "script_version": r.script_version,
        "has_recording": r.has_recording,
        "created_at_ms": r.created_at_ms,
    })
}

/// How long `results stream --follow` keeps trying to reconnect.
const RECONNECT_FOR: Duration = Duration::from_secs(120);

async fn stream(a: StreamArgs) -> Out {
    let mut cursor = a.after;
    let mut stdout = std::io::stdout().lock();
    let mut down_since: Option<std::time::Instant> = None;
    loop {
        let attempt = async {
            let api = connect(&a.conn).await?;
            let mut s = api
                .results()
                .stream_results(pb::StreamResultsRequest {
                    campaign_id: a.campaign.unwrap_or(0),
                    after_seq: cursor,
                    stop_at_end: !a.follow,
                })
                .await?
                .into_inner();
            loop {
                let next = tokio::select! {
                    n = s.next() => n,
                    _ = tokio::signal::ctrl_c() => return Ok::<bool, Fail>(true),
                };
                let Some(r) = next else { return Ok(!a.follow) };
                let r = r?;
                cursor = r.seq;
                down_since = None;
                let line = if a.conn.json {
                    result_json(&r).to_string()
                } else {
                    format!(
                        "seq {} · campaign {} · contact {} · {} {}{}",
                        r.seq,
                        r.campaign_id,
                        r.contact_id,
                        r.outcome,
                        r.category,
                        if r.dtmf.is_empty() {
                            String::new()
                        } else {
                            format!(" (keys {})", r.dtmf)
                        }
                    )
                };
                writeln!(stdout, "{line}").map_err(|e| Fail::runtime(format!("stdout: {e}")))?;
                stdout
                    .flush()
                    .map_err(|e| Fail::runtime(format!("stdout: {e}")))?;
            }
        };
        match attempt.await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(f) if a.follow && f.code == 1 => {
                let since = *down_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > RECONNECT_FOR {
                    return Err(f);
                }
                eprintln!(
                    "dialer results stream: {} (reconnecting after seq {cursor})",
                    f.msg
                );
            }
            Err(f) => return Err(f),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn export(a: ExportArgs) -> Out {
    let api = connect(&a.conn).await?;
    let mut s = api
        .results()
        .export_results(pb::ExportResultsRequest {
            campaign_id: a.campaign,
            after_seq: 0,
        })
        .await?
        .into_inner();
    let mut out: Box<dyn std::io::Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p)
                .map_err(|e| Fail::usage(format!("--output {}: {e}", p.display())))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut bytes = 0usize;
    while let Some(chunk) = s.next().await {
        let chunk = chunk?;
        bytes += chunk.data.len();
        out.write_all(&chunk.data)
            .map_err(|e| Fail::runtime(format!("writing the CSV: {e}")))?;
    }
    out.flush()
        .map_err(|e| Fail::runtime(format!("writing the CSV: {e}")))?;
    if let Some(p) = &a.output {
        eprintln!("{bytes} bytes written to {}", p.display());
    }
    Ok(())
}

async fn print_report(a: ReportArgs) -> Out {
    let api = connect(&a.conn).await?;
    let r = api
        .results()
        .get_report(pb::GetReportRequest {
            campaign_id: a.campaign,
        })
        .await?
        .into_inner();
    let k = r.kpis.unwrap_or_default();
    let c = r.contacts.unwrap_or_default();
    let shares = |v: &[pb::Share]| -> Value {
        v.iter()
            .map(|s| (s.name.clone(), json!({"count": s.count, "share": s.share})))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    if a.conn.json {
        print_json(&json!({
            "campaign_id": r.campaign_id,
            "name": r.name,
            "state": state_name(r.state),
            "contacts": {"pending": c.pending, "in_progress": c.in_progress, "done": c.done,
                         "suppressed": c.suppressed, "erased": c.erased, "total": c.total},
            "results": r.results,
            "attempts": r.attempts,
            "live_calls": r.live_calls,
            "interrupted": r.interrupted,
            "categories": shares(&r.categories),
            "outcomes": shares(&r.outcomes),
            "kpis": {
                "dialled_contacts": k.dialled_contacts,
                "reached_contacts": k.reached_contacts,
                "reach_rate": k.reach_rate,
                "manager_call_conversion": k.manager_call_conversion,
                "opt_out_rate": k.opt_out_rate,
                "average_handle_time_secs": k.average_handle_time_secs,
                "calls_per_hour": k.calls_per_hour,
                "asr_coverage": k.asr_coverage,
            },
        }));
        return Ok(());
    }
    // Written at once, and a closed pipe (`dialer report 1 | head`) is not an error.
    let mut text = String::new();
    macro_rules! out {
        ($($t:tt)*) => {{
            use std::fmt::Write as _;
            let _ = writeln!(text, $($t)*);
        }};
    }
    let pct = |x: f64| format!("{:5.1} %", 100.0 * x);
    out!(
        "Campaign {} {:?} — {} ({} contacts: {} done, {} pending, {} opted out/erased, {} refused)",
        r.campaign_id,
        r.name,
        state_name(r.state),
        c.total,
        c.done,
        c.pending + c.in_progress,
        c.erased,
        c.suppressed
    );
    out!("\n  answers (per answered call)            count     share");
    for s in &r.categories {
        out!("    {:<34} {:>6}   {}", s.name, s.count, pct(s.share));
    }
    out!("\n  call outcomes (per call)               count     share");
    for s in &r.outcomes {
        out!("    {:<34} {:>6}   {}", s.name, s.count, pct(s.share));
    }
    out!("\n  KPIs");
    out!(
        "    reach rate                         {}   ({} of {} dialled contacts answered by a person)",
        pct(k.reach_rate),
        k.reached_contacts,
        k.dialled_contacts
    );
    out!(
        "    conversion to manager_call         {}",
        pct(k.manager_call_conversion)
    );
    out!(
        "    opt-out rate                       {}",
        pct(k.opt_out_rate)
    );
    out!(
        "    average handle time                {:6.1} s",
        k.average_handle_time_secs
    );
    out!(
        "    calls per hour                     {:8.0}",
        k.calls_per_hour
    );
    out!(
        "    ASR coverage                       {}",
        pct(k.asr_coverage)
    );
    out!(
        "\n  {} attempts, {} live now, {} interrupted",
        r.attempts,
        r.live_calls,
        r.interrupted
    );
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(())
}

async fn opt_out(a: OptoutArgs) -> Out {
    let api = connect(&a.conn).await?;
    let r = api
        .compliance()
        .opt_out(pb::OptOutRequest {
            target: Some(pb::opt_out_request::Target::Phone(a.number)),
            region: a.region.unwrap_or_default(),
            reason: a.reason,
        })
        .await?
        .into_inner();
    if a.conn.json {
        print_json(&json!({
            "phone_hmac": r.phone_hmac,
            "contacts_erased": r.contacts_erased,
            "contact_ids": r.contact_ids,
            "recordings_deleted": r.recordings_deleted,
        }));
    } else {
        println!(
            "suppressed on every campaign; {} contact(s) erased, {} recording(s) deleted",
            r.contacts_erased, r.recordings_deleted
        );
    }
    Ok(())
}
