//! The control API in process: `control::start` on 127.0.0.1:0 over a temporary SQLite store,
//! driven with the generated tonic clients. Results are produced through the store's own
//! attempt API (claim, start, finish), as a node would.

use std::path::PathBuf;
use std::time::Duration;

use control::client::Api;
use control::pb;
use control::{ControlContext, GrpcConfig};
use store::{AttemptEnd, ClaimScope, NewResult, Next, Store};
use tokio_stream::StreamExt;
use tonic::Code;

const TOKEN: &str = "test-token-0123456789";
const KEY: &[u8] = b"test-hmac-key";
/// Every RPC of these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(20);

struct Server {
    _dir: tempfile::TempDir,
    running: Option<control::Running>,
    url: String,
    store: Store,
    scripts: PathBuf,
}

impl Server {
    async fn start() -> Server {
        Server::start_with(vec![TOKEN.to_string()]).await
    }

    async fn start_with(tokens: Vec<String>) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("dialer.db");
        let store = Store::open(&format!("sqlite://{}", db.display()))
            .await
            .expect("store");
        let scripts = dir.path().join("scripts");
        std::fs::create_dir_all(&scripts).expect("scripts dir");
        // The built-in script with its prompts: copy the script next to a link to the prompts.
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = std::fs::read_to_string(repo.join("config/scripts/actualization.toml"))
            .expect("actualization.toml");
        let prompts = repo.join("config/prompts").canonicalize().expect("prompts");
        // Prompt paths are relative to the script file (`../prompts/...`).
        std::os::unix::fs::symlink(&prompts, dir.path().join("prompts")).expect("symlink");
        std::fs::write(scripts.join("actualization.toml"), text).expect("copy script");
        let cfg = GrpcConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            tokens,
            ..GrpcConfig::default()
        };
        let ctx = ControlContext {
            store: store.clone(),
            hmac_key: KEY.to_vec(),
            scripts_dir: scripts.clone(),
            trunk_names: vec!["sim".into(), "backup".into()],
            default_region: Some("UA".into()),
        };
        let running = control::start(cfg, ctx).await.expect("start");
        let url = format!("http://{}", running.addr);
        Server {
            _dir: dir,
            running: Some(running),
            url,
            store,
            scripts,
        }
    }

    async fn api(&self) -> Api {
        Api::connect(&self.url, Some(TOKEN)).await.expect("connect")
    }

    async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            tokio::time::timeout(BOUND, r.shutdown())
                .await
                .expect("shutdown in time")
                .expect("clean shutdown");
        }
    }
}

/// A change to a valid request that makes it invalid.
type Mutation = Box<dyn Fn(&mut pb::CreateCampaignRequest)>;

fn settings() -> pb::CampaignSettings {
    let all_day = vec!["00:00-24:00".to_string()];
    pb::CampaignSettings {
        policy: Some(pb::Policy {
            default_tz: "Europe/Kyiv".into(),
            window: Some(pb::CallingWindow {
                mon: all_day.clone(),
                tue: all_day.clone(),
                wed: all_day.clone(),
                thu: all_day.clone(),
                fri: all_day.clone(),
                sat: all_day.clone(),
                sun: all_day,
                holidays: vec![],
            }),
            retry: [(
                "busy".to_string(),
                pb::RetryRule {
                    delay: "5s".into(),
                    max_attempts: 2,
                    ..Default::default()
                },
            )]
            .into_iter()
            .collect(),
            caps: None,
        }),
        trunks: vec![pb::TrunkUse {
            name: "sim".into(),
            weight: 1,
        }],
        cps: Some(10.0),
        channels: Some(20),
        language: "ru".into(),
        default_region: "UA".into(),
        manager_uri: String::new(),
        ring_timeout_secs: 20,
    }
}

fn create_request(name: &str) -> pb::CreateCampaignRequest {
    pb::CreateCampaignRequest {
        name: name.into(),
        script: "actualization".into(),
        settings: Some(settings()),
        consent_mode: pb::ConsentMode::Collect as i32,
    }
}

async fn bounded<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, fut).await.expect("in time")
}

fn field_of(status: &tonic::Status) -> &str {
    status.message().split(':').next().unwrap_or_default()
}

async fn create(api: &Api, name: &str) -> pb::Campaign {
    bounded(api.campaigns().create_campaign(create_request(name)))
        .await
        .expect("create")
        .into_inner()
}

async fn import_rows(
    api: &Api,
    campaign: i64,
    rows: Vec<pb::ContactRow>,
) -> pb::ImportContactsResponse {
    use pb::import_contacts_request::Item;
    let mut msgs = vec![pb::ImportContactsRequest {
        item: Some(Item::Header(pb::ImportHeader {
            campaign_id: campaign,
            default_region: String::new(),
        })),
    }];
    for chunk in rows.chunks(3) {
        msgs.push(pb::ImportContactsRequest {
            item: Some(Item::Batch(pb::ContactBatch {
                rows: chunk.to_vec(),
            })),
        });
    }
    bounded(api.campaigns().import_contacts(tokio_stream::iter(msgs)))
        .await
        .expect("import")
        .into_inner()
}

fn row(phone: &str) -> pb::ContactRow {
    pb::ContactRow {
        phone: phone.into(),
        ..Default::default()
    }
}

/// Plays a node: claims every due contact and finishes each with `outcome`.
async fn dial_all(store: &Store, campaign: i64, outcome: &str, category: Option<&str>) -> usize {
    let now = now_ms();
    let claimed = store
        .claim_due(
            ClaimScope::Campaign(store::CampaignId(campaign)),
            "node-t",
            now,
            1000,
            60_000,
        )
        .await
        .expect("claim");
    for c in &claimed {
        let a = store
            .start_attempt(c.id, c.campaign_id, "node-t", Some("sim"), now)
            .await
            .expect("attempt");
        store
            .finish_attempt(
                a,
                AttemptEnd {
                    now_ms: now + 1500,
                    outcome: outcome.into(),
                    sip_status: Some(200),
                    result: Some(NewResult {
                        category: category.map(str::to_string),
                        outcome: outcome.into(),
                        dtmf: Some("1".into()),
                        transcript: Some("перезвоните, пожалуйста".into()),
                        duration_ms: Some(12_000),
                        amd: Some("human".into()),
                        ..NewResult::default()
                    }),
                    next: Next::Done,
                },
            )
            .await
            .expect("finish");
    }
    claimed.len()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_required_and_nothing_runs_without_it() {
    let mut srv = Server::start().await;
    for token in [None, Some("wrong-token-xxxxxxxx")] {
        let api = Api::connect(&srv.url, token).await.expect("connect");
        let err = bounded(api.campaigns().create_campaign(create_request("nope")))
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Code::Unauthenticated, "{err}");
        let err = bounded(
            api.campaigns()
                .list_campaigns(pb::ListCampaignsRequest::default()),
        )
        .await
        .expect_err("refused");
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    assert!(srv.store.list_campaigns().await.expect("list").is_empty());
    // Health stays open.
    let channel = tonic::transport::Endpoint::from_shared(srv.url.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["", "dialer.v1.CampaignService", "dialer.v1.ResultService"] {
        let r = bounded(health.check(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        }))
        .await
        .expect("health")
        .into_inner();
        assert_eq!(
            r.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_validates_and_names_the_field() {
    let mut srv = Server::start().await;
    let api = srv.api().await;
    let cases: Vec<(Mutation, &str)> = vec![
        (Box::new(|r| r.name.clear()), "name"),
        (Box::new(|r| r.script = "missing".into()), "script"),
        (Box::new(|r| r.script = "../etc/passwd".into()), "script"),
        (Box::new(|r| r.settings = None), "settings"),
        (
            Box::new(|r| {
                r.settings.as_mut().expect("s").trunks[0].name = "pbx-x".into();
            }),
            "settings.trunks[0].name",
        ),
        (
            Box::new(|r| r.settings.as_mut().expect("s").cps = Some(-1.0)),
            "settings.cps",
        ),
        (
            Box::new(|r| r.settings.as_mut().expect("s").language = "de".into()),
            "settings.language",
        ),
        (
            Box::new(|r| {
                let p = r.settings.as_mut().expect("s").policy.as_mut().expect("p");
                p.window.as_mut().expect("w").mon = vec!["25:00-26:00".into()];
            }),
            "settings.policy.window",
        ),
        (
            Box::new(|r| {
                let p = r.settings.as_mut().expect("s").policy.as_mut().expect("p");
                p.default_tz = "Mars/Base".into();
            }),
            "settings.policy",
        ),
        (
            Box::new(|r| {
                let p = r.settings.as_mut().expect("s").policy.as_mut().expect("p");
                p.retry.get_mut("busy").expect("busy").delay = "soon".into();
            }),
            "settings.policy.retry",
        ),
    ];
    for (mutate, field) in cases {
        let mut req = create_request("bad");
        mutate(&mut req);
        let err = bounded(api.campaigns().create_campaign(req))
            .await
            .expect_err(field);
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err}");
        assert!(
            field_of(&err).starts_with(field),
            "want field {field}, got {:?}",
            err.message()
        );
    }
    assert!(srv.store.list_campaigns().await.expect("list").is_empty());

    let c = create(&api, "ok").await;
    assert_eq!(c.state, pb::CampaignState::Draft as i32);
    assert_eq!(c.consent_mode, pb::ConsentMode::Collect as i32);
    assert!(c.script_version.starts_with("2025"), "{}", c.script_version);
    assert!(c.script_path.ends_with("actualization.toml"));
    let s = c.settings.expect("settings");
    assert_eq!(s.trunks[0].name, "sim");
    assert_eq!(s.cps, Some(10.0));
    assert_eq!(
        s.policy.expect("policy").retry["busy"].delay,
        "5s",
        "settings come back as stored"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn life_cycle_transitions() {
    let mut srv = Server::start().await;
    let api = srv.api().await;
    let id = create(&api, "cycle").await.id;
    let mut cc = api.campaigns();
    let state = |c: pb::Campaign| pb::CampaignState::try_from(c.state).expect("state");
    let err = bounded(cc.resume_campaign(pb::ResumeCampaignRequest { campaign_id: id }))
        .await
        .expect_err("draft cannot resume");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let c = bounded(cc.start_campaign(pb::StartCampaignRequest { campaign_id: id }))
        .await
        .expect("start")
        .into_inner();
    assert_eq!(state(c), pb::CampaignState::Running);
    let c = bounded(cc.pause_campaign(pb::PauseCampaignRequest { campaign_id: id }))
        .await
        .expect("pause")
        .into_inner();
    assert_eq!(state(c), pb::CampaignState::Paused);
    let c = bounded(cc.resume_campaign(pb::ResumeCampaignRequest { campaign_id: id }))
        .await
        .expect("resume")
        .into_inner();
    assert_eq!(state(c), pb::CampaignState::Running);
    let c = bounded(cc.stop_campaign(pb::StopCampaignRequest { campaign_id: id }))
        .await
        .expect("stop")
        .into_inner();
    assert_eq!(state(c), pb::CampaignState::Stopped);
    let err = bounded(cc.resume_campaign(pb::ResumeCampaignRequest { campaign_id: id }))
        .await
        .expect_err("stopped cannot resume");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = bounded(cc.get_campaign(pb::GetCampaignRequest { campaign_id: 999 }))
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    let err = bounded(cc.get_campaign(pb::GetCampaignRequest { campaign_id: 0 }))
        .await
        .expect_err("zero");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(field_of(&err), "campaign_id");
    let list = bounded(cc.list_campaigns(pb::ListCampaignsRequest {
        state: pb::CampaignState::Stopped as i32,
    }))
    .await
    .expect("list")
    .into_inner();
    assert_eq!(list.campaigns.len(), 1);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_rows_and_csv_with_per_row_errors() {
    let mut srv = Server::start().await;
    let api = srv.api().await;
    let id = create(&api, "import").await.id;
    // An opted-out number is refused on import.
    bounded(api.compliance().opt_out(pb::OptOutRequest {
        target: Some(pb::opt_out_request::Target::Phone(
            "+380 44 000 0009".into(),
        )),
        region: String::new(),
        reason: "test".into(),
    }))
    .await
    .expect("opt out");
    let mut with_attr = row("044 123 4501");
    with_attr.name = "Олена".into();
    with_attr.attributes.insert("crm_id".into(), "A-1".into());
    let mut bad_tz = row("044 123 4502");
    bad_tz.timezone = "Europe/Nowhere".into();
    let mut consent = row("+380441234503");
    consent.consent_source = "web_form".into();
    consent.consent_at = "2025-01-02T03:04:05Z".into();
    consent.consent_text_version = "v1".into();
    let mut half_consent = row("+380441234504");
    half_consent.consent_source = "sms".into();
    let rows = vec![
        with_attr,
        row("12"),
        bad_tz,
        consent,
        row("+380 44 123 4501"),
        half_consent,
        row("0440000009"),
    ];
    let r = import_rows(&api, id, rows).await;
    assert_eq!(r.rows_read, 7);
    assert_eq!(r.imported, 2, "{r:?}");
    assert_eq!(r.duplicates_merged, 1, "{r:?}");
    assert_eq!(r.suppressed_refused, 1, "{r:?}");
    assert_eq!(r.errors_total, 3, "{r:?}");
    assert_eq!(r.consents_recorded, 1);
    let errs: Vec<(u64, &str)> = r.errors.iter().map(|e| (e.row, e.field.as_str())).collect();
    assert_eq!(
        errs,
        vec![(2, "phone"), (3, "timezone"), (6, "consent_at")],
        "{:?}",
        r.errors
    );

    // The same contacts again as a CSV file split in odd places: all merged.
    use pb::import_contacts_request::Item;
    let csv = "phone;name;segment\n\"044 123 4501\";\"Ivan; Jr\";vip\n+380441234503;;\n+380441234505;x;\nbad-number;;\n";
    let mut msgs = vec![pb::ImportContactsRequest {
        item: Some(Item::Header(pb::ImportHeader {
            campaign_id: id,
            default_region: "UA".into(),
        })),
    }];
    for piece in csv.as_bytes().chunks(7) {
        msgs.push(pb::ImportContactsRequest {
            item: Some(Item::CsvChunk(bytes::Bytes::copy_from_slice(piece))),
        });
    }
    let r = bounded(api.campaigns().import_contacts(tokio_stream::iter(msgs)))
        .await
        .expect("csv import")
        .into_inner();
    assert_eq!(r.rows_read, 4, "{r:?}");
    assert_eq!(r.imported, 1, "{r:?}");
    assert_eq!(r.duplicates_merged, 2, "{r:?}");
    assert_eq!(r.errors_total, 1);
    assert_eq!((r.errors[0].row, r.errors[0].field.as_str()), (4, "phone"));
    let counts = srv
        .store
        .contact_counts(store::CampaignId(id))
        .await
        .expect("counts");
    assert_eq!(counts.total(), 3);

    // Protocol misuse.
    let no_header = vec![pb::ImportContactsRequest {
        item: Some(Item::Batch(pb::ContactBatch {
            rows: vec![row("+380441234509")],
        })),
    }];
    let err = bounded(
        api.campaigns()
            .import_contacts(tokio_stream::iter(no_header)),
    )
    .await
    .expect_err("header first");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(field_of(&err), "header");
    let unknown = vec![pb::ImportContactsRequest {
        item: Some(Item::Header(pb::ImportHeader {
            campaign_id: 4242,
            default_region: String::new(),
        })),
    }];
    let err = bounded(api.campaigns().import_contacts(tokio_stream::iter(unknown)))
        .await
        .expect_err("unknown campaign");
    assert_eq!(err.code(), Code::NotFound);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_stream_resumes_from_the_cursor_and_follows() {
    let mut srv = Server::start().await;
    let api = srv.api().await;
    let id = create(&api, "results").await.id;
    let rows: Vec<_> = (0..5).map(|i| row(&format!("+38044123460{i}"))).collect();
    import_rows(&api, id, rows).await;
    bounded(
        api.campaigns()
            .start_campaign(pb::StartCampaignRequest { campaign_id: id }),
    )
    .await
    .expect("start");
    assert_eq!(
        dial_all(&srv.store, id, "answered", Some("manager_call")).await,
        5
    );

    // Everything from the start, then stop at the end.
    let all: Vec<pb::CallResult> = bounded(async {
        let s = api
            .results()
            .stream_results(pb::StreamResultsRequest {
                campaign_id: id,
                after_seq: 0,
                stop_at_end: true,
            })
            .await
            .expect("stream")
            .into_inner();
        s.map(|r| r.expect("result")).collect::<Vec<_>>().await
    })
    .await;
    assert_eq!(all.len(), 5);
    let seqs: Vec<i64> = all.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=5).collect::<Vec<_>>());
    assert!(all.iter().all(|r| r.phone.starts_with("+38044123460")));

    // Resume after seq 3, following: the two left, then new ones as they are committed.
    let mut live = api
        .results()
        .stream_results(pb::StreamResultsRequest {
            campaign_id: id,
            after_seq: 3,
            stop_at_end: false,
        })
        .await
        .expect("stream")
        .into_inner();
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(bounded(live.next()).await.expect("item").expect("ok").seq);
    }
    assert_eq!(got, vec![4, 5]);
    import_rows(&api, id, vec![row("+380441234610")]).await;
    dial_all(&srv.store, id, "busy", None).await;
    let next = bounded(live.next()).await.expect("item").expect("ok");
    assert_eq!(next.seq, 6);
    assert_eq!(next.outcome, "busy");
    assert!(next.id > 0);
    drop(live);

    // Report.
    let rep = bounded(
        api.results()
            .get_report(pb::GetReportRequest { campaign_id: id }),
    )
    .await
    .expect("report")
    .into_inner();
    assert_eq!(rep.results, 6);
    let k = rep.kpis.expect("kpis");
    assert_eq!(k.dialled_contacts, 6);
    assert_eq!(k.reached_contacts, 5);
    assert!((k.reach_rate - 5.0 / 6.0).abs() < 1e-9);
    assert!((k.manager_call_conversion - 1.0).abs() < 1e-9);
    assert!((k.average_handle_time_secs - 12.0).abs() < 1e-9);
    assert!((k.asr_coverage - 1.0).abs() < 1e-9);
    assert!(k.calls_per_hour > 0.0);
    let mc = rep
        .categories
        .iter()
        .find(|c| c.name == "manager_call")
        .expect("mc");
    assert_eq!((mc.count, mc.share), (5, 1.0));
    let busy = rep
        .outcomes
        .iter()
        .find(|c| c.name == "busy")
        .expect("busy");
    assert_eq!(busy.count, 1);

    // Opt-out of one reached number, then the export shows it without its number.
    let out = bounded(api.compliance().opt_out(pb::OptOutRequest {
        target: Some(pb::opt_out_request::Target::Phone("044 123 4600".into())),
        region: "UA".into(),
        reason: "asked by phone".into(),
    }))
    .await
    .expect("opt out")
    .into_inner();
    assert_eq!(out.contacts_erased, 1);
    let check = bounded(api.compliance().check_number(pb::CheckNumberRequest {
        phone: "+380441234600".into(),
        region: String::new(),
    }))
    .await
    .expect("check")
    .into_inner();
    assert!(check.suppressed);
    assert!(!check.consent_on_record);
    assert_eq!(check.contacts, 0);
    let csv: Vec<u8> = bounded(async {
        let s = api
            .results()
            .export_results(pb::ExportResultsRequest {
                campaign_id: id,
                after_seq: 0,
            })
            .await
            .expect("export")
            .into_inner();
        let chunks: Vec<pb::CsvChunk> = s.map(|c| c.expect("chunk")).collect().await;
        chunks.into_iter().flat_map(|c| c.data.to_vec()).collect()
    })
    .await;
    let text = String::from_utf8(csv).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    assert!(lines[0].starts_with("seq,result_id,"));
    assert!(!text.contains("+380441234600"), "erased number exported");
    assert_eq!(text.matches("+38044123460").count(), 4);

    // Watch ends once the campaign is stopped.
    let mut watch = api
        .campaigns()
        .watch_campaign(pb::WatchCampaignRequest {
            campaign_id: id,
            interval_ms: 200,
        })
        .await
        .expect("watch")
        .into_inner();
    let first = bounded(watch.next()).await.expect("item").expect("ok");
    assert_eq!(first.dialled, 6);
    assert_eq!(first.live_calls, 0);
    assert_eq!(first.contacts.expect("counts").erased, 1);
    bounded(
        api.campaigns()
            .stop_campaign(pb::StopCampaignRequest { campaign_id: id }),
    )
    .await
    .expect("stop");
    let last = bounded(async {
        let mut last = None;
        while let Some(p) = watch.next().await {
            last = Some(p.expect("ok"));
        }
        last
    })
    .await
    .expect("a final update");
    assert_eq!(last.state, pb::CampaignState::Stopped as i32);

    // The audit log has the opt-out, under the token's actor, without the number.
    let audit = bounded(api.compliance().query_audit(pb::QueryAuditRequest {
        action: "opt_out".into(),
        ..Default::default()
    }))
    .await
    .expect("audit")
    .into_inner();
    assert_eq!(audit.entries.len(), 1);
    assert_eq!(audit.entries[0].actor, "api:token0");
    assert!(audit.entries[0].subject.starts_with("hmac:"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_validate_put_and_list() {
    let mut srv = Server::start().await;
    let api = srv.api().await;
    let mut sc = api.scripts();
    let broken =
        "[script]\nname = \"x\"\nversion = \"1\"\nlanguages = [\"ru\"]\nstart = \"nowhere\"\n";
    let r = bounded(sc.validate_script(pb::ValidateScriptRequest {
        text: broken.into(),
        name: "x".into(),
        skip_prompt_files: true,
    }))
    .await
    .expect("validate")
    .into_inner();
    assert!(!r.valid);
    assert!(!r.errors.is_empty());
    // The same errors as the loader's.
    let loader = script::Script::parse(
        broken,
        &srv.scripts.join("x.toml"),
        &script::LoadOptions::without_prompt_files(),
    )
    .expect_err("invalid");
    assert_eq!(r.errors.len(), loader.errors.len());
    for (a, b) in r.errors.iter().zip(&loader.errors) {
        assert_eq!((a.line as usize, a.column as usize), (b.line, b.column));
        assert_eq!(a.field, b.path);
        assert_eq!(a.message, b.message);
    }
    let err = bounded(sc.put_script(pb::PutScriptRequest {
        name: "x".into(),
        text: broken.into(),
        skip_prompt_files: true,
    }))
    .await
    .expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(field_of(&err), "text");
    assert!(!srv.scripts.join("x.toml").exists());
    let err = bounded(sc.put_script(pb::PutScriptRequest {
        name: "../evil".into(),
        text: broken.into(),
        skip_prompt_files: true,
    }))
    .await
    .expect_err("bad name");
    assert_eq!(field_of(&err), "name");

    let good = std::fs::read_to_string(srv.scripts.join("actualization.toml")).expect("read");
    let put = bounded(sc.put_script(pb::PutScriptRequest {
        name: "survey-2".into(),
        text: good,
        skip_prompt_files: false,
    }))
    .await
    .expect("put")
    .into_inner();
    assert!(put.path.ends_with("survey-2.toml"));
    let list = bounded(sc.list_scripts(pb::ListScriptsRequest {}))
        .await
        .expect("list")
        .into_inner();
    let names: Vec<&str> = list.scripts.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["actualization", "survey-2"]);
    assert!(
        list.scripts
            .iter()
            .all(|s| s.error.is_empty() && !s.version_id.is_empty())
    );
    // A campaign can use the stored script by name.
    let mut req = create_request("with stored script");
    req.script = "survey-2".into();
    let c = bounded(api.campaigns().create_campaign(req))
        .await
        .expect("create")
        .into_inner();
    assert_eq!(c.script_version, put.version_id);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services_and_limits_hold() {
    let mut srv = Server::start_with(vec![]).await;
    let channel = tonic::transport::Endpoint::from_shared(srv.url.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut refl = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = bounded(refl.server_reflection_info(tokio_stream::iter(vec![req])))
        .await
        .expect("reflection")
        .into_inner();
    let msg = bounded(resp.next()).await.expect("one").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("unexpected reflection answer");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    for want in [
        "dialer.v1.CampaignService",
        "dialer.v1.ComplianceService",
        "dialer.v1.ResultService",
        "dialer.v1.ScriptService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    // Without tokens auth is off: calls go through.
    let api = Api::connect(&srv.url, None).await.expect("connect");
    bounded(
        api.campaigns()
            .list_campaigns(pb::ListCampaignsRequest::default()),
    )
    .await
    .expect("open");
    // A message over the limit is refused, not executed.
    let huge = "x".repeat(17 * 1024 * 1024);
    let err = bounded(api.scripts().validate_script(pb::ValidateScriptRequest {
        text: huge,
        name: String::new(),
        skip_prompt_files: true,
    }))
    .await
    .expect_err("too large");
    assert_eq!(err.code(), Code::OutOfRange, "{err}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_streams_with_unavailable() {
    let mut srv = Server::start().await;
    let api = srv.api().await;
    let id = create(&api, "shutdown").await.id;
    let mut results = api
        .results()
        .stream_results(pb::StreamResultsRequest {
            campaign_id: id,
            after_seq: 0,
            stop_at_end: false,
        })
        .await
        .expect("stream")
        .into_inner();
    let mut watch = api
        .campaigns()
        .watch_campaign(pb::WatchCampaignRequest {
            campaign_id: id,
            interval_ms: 200,
        })
        .await
        .expect("watch")
        .into_inner();
    bounded(watch.next()).await.expect("first").expect("ok");
    let started = std::time::Instant::now();
    srv.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown waited {:?} for open streams",
        started.elapsed()
    );
    let err = bounded(results.next())
        .await
        .expect("an end")
        .expect_err("unavailable");
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    let end = bounded(async {
        while let Some(item) = watch.next().await {
            if let Err(e) = item {
                return Some(e.code());
            }
        }
        None
    })
    .await;
    assert_eq!(end, Some(Code::Unavailable));
}
