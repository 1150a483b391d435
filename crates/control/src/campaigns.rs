//! `dialer.v1.CampaignService`.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use engine::settings::CampaignSettings;
use store::import::{ImportError, ImportOptions, ImportReport, ImportedContact, Importer};
use store::{CampaignId, CampaignState, NewCampaign, NewContact};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::convert::{self, campaign_to_pb, counts_to_pb, state_to_pb};
use crate::pb::campaign_service_server::CampaignService;
use crate::pb::import_contacts_request::Item;
use crate::{Ctx, Shared, invalid, now_ms, pb, store_status, unary};

/// Contacts per store transaction during an import.
const INSERT_BATCH: usize = 1000;
/// Row errors returned in full (the total is counted beyond).
const MAX_ROW_ERRORS: usize = 1000;
/// Most rows in one `ContactBatch` message.
const MAX_ROWS_PER_BATCH: usize = 10_000;
/// Most attribute columns in one batch (the importer's header allows 256 columns).
const MAX_ATTRIBUTE_COLUMNS: usize = 240;

pub(crate) struct Campaigns(pub(crate) Ctx);

fn campaign_id(id: i64) -> Result<CampaignId, Status> {
    if id <= 0 {
        return Err(invalid("campaign_id", "required (a positive campaign id)"));
    }
    Ok(CampaignId(id))
}

pub(crate) async fn load_campaign(ctx: &Shared, id: i64) -> Result<store::Campaign, Status> {
    let id = campaign_id(id)?;
    ctx.ctx
        .store
        .get_campaign(id)
        .await
        .map_err(store_status)?
        .ok_or_else(|| Status::not_found(format!("campaign {id} not found")))
}

/// `[a-z0-9_-]+`, 1..=64 characters.
pub(crate) fn valid_script_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A script reference: a name in the scripts directory (with or without `.toml`) or an
/// absolute path of an existing file.
fn resolve_script(dir: &Path, reference: &str) -> Result<PathBuf, Status> {
    let reference = reference.trim();
    if reference.is_empty() {
        return Err(invalid(
            "script",
            "required: a script name in the scripts directory or an absolute path",
        ));
    }
    let as_path = Path::new(reference);
    if as_path.is_absolute() {
        if !as_path.is_file() {
            return Err(invalid("script", "no such script file on the server"));
        }
        return Ok(as_path.to_path_buf());
    }
    let name = reference.strip_suffix(".toml").unwrap_or(reference);
    if !valid_script_name(name) {
        return Err(invalid(
            "script",
            format!("{name:?} is not a script name ([a-z0-9_-]+) or an absolute path"),
        ));
    }
    let path = dir.join(format!("{name}.toml"));
    if !path.is_file() {
        return Err(invalid(
            "script",
            format!("no script named {name:?} in the scripts directory"),
        ));
    }
    Ok(std::fs::canonicalize(&path).unwrap_or(path))
}

/// Checks a state change; `Ok(None)` when the campaign is already there (idempotent).
fn transition(from: CampaignState, to: CampaignState) -> Result<Option<CampaignState>, Status> {
    use CampaignState as S;
    if from == to {
        return Ok(None);
    }
    let allowed = match to {
        S::Running => matches!(from, S::Draft | S::Paused),
        S::Paused => from == S::Running,
        S::Stopped => from != S::Finished,
        S::Draft | S::Finished => false,
    };
    if allowed {
        Ok(Some(to))
    } else {
        Err(Status::failed_precondition(format!(
            "the campaign is {from}: it cannot become {to}"
        )))
    }
}

impl Campaigns {
    async fn change_state(
        &self,
        id: i64,
        to: CampaignState,
        resume_only: bool,
    ) -> Result<pb::Campaign, Status> {
        // Compare-and-set: a concurrent change (another operator, a node finishing the
        // campaign) makes the write miss; the transition is then checked again on the new
        // state (bounded: a few rounds).
        for _ in 0..5 {
            let c = load_campaign(&self.0, id).await?;
            if resume_only && c.state == CampaignState::Draft {
                return Err(Status::failed_precondition(
                    "the campaign was never started: use StartCampaign",
                ));
            }
            if transition(c.state, to)?.is_none() {
                return Ok(campaign_to_pb(&c));
            }
            let changed = self
                .0
                .ctx
                .store
                .set_campaign_state_if(c.id, c.state, to)
                .await
                .map_err(store_status)?;
            if changed {
                let c = load_campaign(&self.0, id).await?;
                return Ok(campaign_to_pb(&c));
            }
        }
        Err(Status::aborted(
            "the campaign's state kept changing under this request; try again",
        ))
    }

    async fn create(&self, req: pb::CreateCampaignRequest) -> Result<pb::Campaign, Status> {
        let ctx = &self.0.ctx;
        let name = req.name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(invalid(
                "name",
                "required: 1..200 characters, no control characters",
            ));
        }
        let settings = req
            .settings
            .as_ref()
            .ok_or_else(|| invalid("settings", "required"))?;
        let json = convert::settings_to_json(settings).map_err(|(f, r)| invalid(&f, r))?;
        let parsed = CampaignSettings::from_json(&json)
            .map_err(|e| invalid(&format!("settings.{}", e.field), e.reason))?;
        for (i, t) in parsed.trunks.iter().enumerate() {
            if !ctx.trunk_names.iter().any(|n| n == &t.name) {
                return Err(invalid(
                    &format!("settings.trunks[{i}].name"),
                    format!(
                        "no trunk {:?} in the node configuration (known: {})",
                        t.name,
                        ctx.trunk_names.join(", ")
                    ),
                ));
            }
        }
        let consent_required = match pb::ConsentMode::try_from(req.consent_mode) {
            Ok(pb::ConsentMode::Collect) => false,
            Ok(pb::ConsentMode::Required | pb::ConsentMode::Unspecified) => true,
            Err(_) => {
                return Err(invalid(
                    "consent_mode",
                    "unknown value (REQUIRED or COLLECT)",
                ));
            }
        };
        let path = resolve_script(&ctx.scripts_dir, &req.script)?;
        let load_path = path.clone();
        let script = tokio::task::spawn_blocking(move || script::Script::load(&load_path))
            .await
            .map_err(|e| Status::internal(format!("script loader: {e}")))?
            .map_err(|errors| invalid("script", errors))?;
        let new = NewCampaign {
            name: name.to_string(),
            script_path: path.display().to_string(),
            script_version: script.version_id().to_string(),
            settings: parsed.to_json(),
            consent_required,
        };
        let id = ctx
            .store
            .create_campaign(&new)
            .await
            .map_err(store_status)?;
        let c = load_campaign(&self.0, id.0).await?;
        Ok(campaign_to_pb(&c))
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::CampaignProgress, Status>> + Send>>;

#[tonic::async_trait]
impl CampaignService for Campaigns {
    async fn create_campaign(
        &self,
        request: Request<pb::CreateCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        unary(&self.0, self.create(request.into_inner())).await
    }

    async fn import_contacts(
        &self,
        request: Request<Streaming<pb::ImportContactsRequest>>,
    ) -> Result<Response<pb::ImportContactsResponse>, Status> {
        let stream = request.into_inner();
        import(&self.0, stream).await.map(Response::new)
    }

    async fn start_campaign(
        &self,
        request: Request<pb::StartCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        let id = request.into_inner().campaign_id;
        unary(
            &self.0,
            self.change_state(id, CampaignState::Running, false),
        )
        .await
    }

    async fn pause_campaign(
        &self,
        request: Request<pb::PauseCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        let id = request.into_inner().campaign_id;
        unary(&self.0, self.change_state(id, CampaignState::Paused, false)).await
    }

    async fn resume_campaign(
        &self,
        request: Request<pb::ResumeCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        let id = request.into_inner().campaign_id;
        unary(&self.0, self.change_state(id, CampaignState::Running, true)).await
    }

    async fn stop_campaign(
        &self,
        request: Request<pb::StopCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        let id = request.into_inner().campaign_id;
        unary(
            &self.0,
            self.change_state(id, CampaignState::Stopped, false),
        )
        .await
    }

    async fn get_campaign(
        &self,
        request: Request<pb::GetCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        let id = request.into_inner().campaign_id;
        unary(&self.0, async {
            Ok(campaign_to_pb(&load_campaign(&self.0, id).await?))
        })
        .await
    }

    async fn list_campaigns(
        &self,
        request: Request<pb::ListCampaignsRequest>,
    ) -> Result<Response<pb::ListCampaignsResponse>, Status> {
        let req = request.into_inner();
        unary(&self.0, async {
            let want = pb::CampaignState::try_from(req.state)
                .map_err(|_| invalid("state", "unknown value"))
                .map(convert::state_from_pb)?;
            let all = self
                .0
                .ctx
                .store
                .list_campaigns()
                .await
                .map_err(store_status)?;
            Ok(pb::ListCampaignsResponse {
                campaigns: all
                    .iter()
                    .filter(|c| want.is_none_or(|w| c.state == w))
                    .map(campaign_to_pb)
                    .collect(),
            })
        })
        .await
    }

    type WatchCampaignStream = WatchStream;

    async fn watch_campaign(
        &self,
        request: Request<pb::WatchCampaignRequest>,
    ) -> Result<Response<Self::WatchCampaignStream>, Status> {
        let req = request.into_inner();
        let c = load_campaign(&self.0, req.campaign_id).await?;
        let interval = Duration::from_millis(match req.interval_ms {
            0 => 1000,
            n => u64::from(n.max(200)),
        });
        let ctx = self.0.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let p = progress(&ctx, c.id).await;
                let end = match &p {
                    Ok(p) => matches!(
                        pb::CampaignState::try_from(p.state),
                        Ok(pb::CampaignState::Stopped | pb::CampaignState::Finished)
                    ),
                    Err(_) => true,
                };
                if tx.send(p).await.is_err() || end {
                    break;
                }
                tokio::select! {
                    _ = tx.closed() => break,
                    _ = tokio::time::sleep(interval) => {}
                }
            }
        });
        Ok(Response::new(Box::pin(crate::UntilClosing::new(
            &self.0, rx,
        ))))
    }
}

/// One progress snapshot.
pub(crate) async fn progress(ctx: &Shared, id: CampaignId) -> Result<pb::CampaignProgress, Status> {
    let store = &ctx.ctx.store;
    let c = store
        .get_campaign(id)
        .await
        .map_err(store_status)?
        .ok_or_else(|| Status::not_found(format!("campaign {id} not found")))?;
    let counts = store.contact_counts(id).await.map_err(store_status)?;
    let stats = store.attempt_stats(id).await.map_err(store_status)?;
    let results = store.result_counts(id).await.map_err(store_status)?;
    let now = now_ms();
    let (outcomes, categories) = count_results(&results);
    Ok(pb::CampaignProgress {
        campaign_id: id.0,
        state: state_to_pb(c.state) as i32,
        contacts: Some(counts_to_pb(&counts)),
        live_calls: stats.dialling,
        dialled: stats.started,
        finished: stats.finished,
        outcomes,
        categories,
        calls_per_hour: calls_per_hour(&stats, c.state, now),
        at_ms: now,
    })
}

/// Results per outcome and per category, largest first.
pub(crate) fn count_results(results: &[store::ResultCount]) -> (Vec<pb::Count>, Vec<pb::Count>) {
    let mut outcomes: BTreeMap<&str, i64> = BTreeMap::new();
    let mut categories: BTreeMap<&str, i64> = BTreeMap::new();
    for r in results {
        *outcomes.entry(r.outcome.as_str()).or_default() += r.count;
        if let Some(c) = &r.category {
            *categories.entry(c.as_str()).or_default() += r.count;
        }
    }
    let to_vec = |m: BTreeMap<&str, i64>| {
        let mut v: Vec<pb::Count> = m
            .into_iter()
            .map(|(name, count)| pb::Count {
                name: name.to_string(),
                count,
            })
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        v
    };
    (to_vec(outcomes), to_vec(categories))
}

/// Attempts started per hour, from the first start to the last end (or now while running).
pub(crate) fn calls_per_hour(stats: &store::AttemptStats, state: CampaignState, now: i64) -> f64 {
    let Some(first) = stats.first_started_at_ms else {
        return 0.0;
    };
    let end = if state == CampaignState::Running {
        now
    } else {
        stats.last_ended_at_ms.unwrap_or(now).max(first)
    };
    // At least a second, so that the first call does not read as millions per hour.
    let span_ms = (end - first).max(1000) as f64;
    stats.started as f64 * 3_600_000.0 / span_ms
}

// ---- import -------------------------------------------------------------------------------

/// Counts of one import.
#[derive(Debug, Default)]
struct Tally {
    rows_read: u64,
    invalid: u64,
    inserted: u64,
    suppressed: u64,
    consents: u64,
    errors: Vec<pb::RowError>,
}

impl Tally {
    fn error(&mut self, row: u64, field: &str, reason: String) {
        self.invalid += 1;
        if self.errors.len() < MAX_ROW_ERRORS {
            self.errors.push(pb::RowError {
                row,
                field: field.to_string(),
                reason,
            });
        }
    }

    fn response(mut self) -> pb::ImportContactsResponse {
        self.errors.sort_by_key(|e| e.row);
        let valid = self.rows_read.saturating_sub(self.invalid);
        pb::ImportContactsResponse {
            rows_read: self.rows_read,
            imported: self.inserted,
            duplicates_merged: valid
                .saturating_sub(self.inserted)
                .saturating_sub(self.suppressed),
            suppressed_refused: self.suppressed,
            errors_total: self.invalid,
            errors: self.errors,
            consents_recorded: self.consents,
        }
    }
}

struct ImportTarget<'a> {
    ctx: &'a Shared,
    campaign: CampaignId,
    region: String,
}

impl ImportTarget<'_> {
    fn options(&self) -> ImportOptions {
        ImportOptions {
            default_region: self.region.clone(),
            delimiter: None,
            max_reported: MAX_ROW_ERRORS,
            ..ImportOptions::default()
        }
    }

    async fn insert(
        &self,
        contacts: Vec<ImportedContact>,
        tally: &mut Tally,
    ) -> Result<(), Status> {
        for chunk in contacts.chunks(INSERT_BATCH) {
            let new: Vec<NewContact> = chunk.iter().cloned().map(NewContact::from).collect();
            let r = self
                .ctx
                .ctx
                .store
                .insert_contacts(self.campaign, &new, &self.ctx.ctx.hmac_key)
                .await
                .map_err(store_status)?;
            tally.inserted += r.inserted;
            tally.suppressed += r.suppressed.len() as u64;
            tally.consents += r.consents;
        }
        Ok(())
    }
}

async fn import(
    ctx: &Shared,
    mut stream: Streaming<pb::ImportContactsRequest>,
) -> Result<pb::ImportContactsResponse, Status> {
    let first = stream
        .message()
        .await?
        .ok_or_else(|| invalid("header", "the stream is empty: send an ImportHeader first"))?;
    let Some(Item::Header(header)) = first.item else {
        return Err(invalid(
            "header",
            "the first message must be an ImportHeader",
        ));
    };
    let campaign = load_campaign(ctx, header.campaign_id)
        .await
        .map_err(|s| match s.code() {
            tonic::Code::InvalidArgument => invalid("header.campaign_id", s.message()),
            _ => s,
        })?;
    if matches!(
        campaign.state,
        CampaignState::Stopped | CampaignState::Finished
    ) {
        return Err(Status::failed_precondition(format!(
            "campaign {} is {}: no more contacts can be imported",
            campaign.id, campaign.state
        )));
    }
    let region = [
        Some(header.default_region.trim().to_string()).filter(|r| !r.is_empty()),
        campaign
            .settings
            .get("default_region")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        ctx.ctx.default_region.clone(),
    ]
    .into_iter()
    .flatten()
    .next()
    .unwrap_or_else(|| "UA".to_string());
    store::import::PhoneNormaliser::new(&region, store::import::PhoneTypeFilter::Any)
        .map_err(|e| invalid("header.default_region", e))?;
    let target = ImportTarget {
        ctx,
        campaign: campaign.id,
        region,
    };
    let mut tally = Tally::default();
    let started = std::time::Instant::now();
    // The first data message decides: structured batches or one CSV file.
    let mut pending = None;
    loop {
        let Some(msg) = stream.message().await? else {
            break;
        };
        match msg.item {
            None => continue,
            Some(Item::Header(_)) => {
                return Err(invalid(
                    "header",
                    "sent twice: only the first message is a header",
                ));
            }
            Some(Item::CsvChunk(chunk)) => {
                pending = Some(chunk);
                break;
            }
            Some(Item::Batch(batch)) => {
                import_batch(&target, batch, &mut tally).await?;
            }
        }
    }
    if let Some(first_chunk) = pending {
        if tally.rows_read > 0 {
            return Err(invalid(
                "csv_chunk",
                "a stream carries either contact batches or CSV chunks, not both",
            ));
        }
        import_csv(&target, first_chunk, stream, &mut tally).await?;
    }
    let response = tally.response();
    tracing::info!(
        campaign = campaign.id.0,
        rows = response.rows_read,
        imported = response.imported,
        merged = response.duplicates_merged,
        suppressed = response.suppressed_refused,
        errors = response.errors_total,
        ms = started.elapsed().as_millis() as u64,
        "contacts imported"
    );
    Ok(response)
}

const KNOWN_COLUMNS: [&str; 7] = [
    "phone",
    "name",
    "timezone",
    "language",
    "consent_source",
    "consent_at",
    "consent_text_version",
];

fn csv_field(out: &mut String, v: &str) {
    out.push('"');
    for ch in v.chars() {
        if ch == '"' {
            out.push('"');
        }
        out.push(ch);
    }
    out.push('"');
}

/// One batch of structured rows: written as a CSV document (header = the known columns plus
/// the batch's attribute keys) and read by the same importer as a file, so rows are checked
/// exactly as CSV rows are. Rows are numbered over the whole stream.
async fn import_batch(
    target: &ImportTarget<'_>,
    batch: pb::ContactBatch,
    tally: &mut Tally,
) -> Result<(), Status> {
    if batch.rows.len() > MAX_ROWS_PER_BATCH {
        return Err(invalid(
            "batch.rows",
            format!(
                "{} rows in one message, at most {MAX_ROWS_PER_BATCH}",
                batch.rows.len()
            ),
        ));
    }
    if batch.rows.is_empty() {
        return Ok(());
    }
    let offset = tally.rows_read;
    tally.rows_read += batch.rows.len() as u64;
    // Attribute columns: exact keys, first spelling wins per case-insensitive name.
    let mut columns: Vec<String> = Vec::new();
    let mut by_lower: HashMap<String, usize> = HashMap::new();
    let mut accepted: Vec<(u64, &pb::ContactRow)> = Vec::with_capacity(batch.rows.len());
    'rows: for (i, row) in batch.rows.iter().enumerate() {
        let n = offset + i as u64 + 1;
        for key in row.attributes.keys() {
            let field = format!("attributes.{key}");
            let lower = key.trim().to_lowercase();
            if key.trim().is_empty() || key.len() > 128 || key.chars().any(char::is_control) {
                tally.error(
                    n,
                    "attributes",
                    format!("bad attribute name {key:?} (1..128 bytes, no control characters)"),
                );
                continue 'rows;
            }
            if key.trim() != key {
                tally.error(
                    n,
                    &field,
                    "attribute name has leading or trailing spaces".into(),
                );
                continue 'rows;
            }
            if KNOWN_COLUMNS.contains(&lower.as_str()) {
                tally.error(n, &field, "reserved name (a contact field)".into());
                continue 'rows;
            }
            match by_lower.get(&lower) {
                Some(&j) if columns[j] != *key => {
                    tally.error(
                        n,
                        &field,
                        format!("differs only in case from attribute {:?}", columns[j]),
                    );
                    continue 'rows;
                }
                Some(_) => {}
                None if columns.len() >= MAX_ATTRIBUTE_COLUMNS => {
                    tally.error(
                        n,
                        &field,
                        format!("more than {MAX_ATTRIBUTE_COLUMNS} attribute names in one batch"),
                    );
                    continue 'rows;
                }
                None => {}
            }
        }
        for key in row.attributes.keys() {
            let lower = key.to_lowercase();
            if let std::collections::hash_map::Entry::Vacant(v) = by_lower.entry(lower) {
                v.insert(columns.len());
                columns.push(key.clone());
            }
        }
        accepted.push((n, row));
    }
    if accepted.is_empty() {
        return Ok(());
    }
    let mut doc = String::with_capacity(accepted.len() * 96);
    for (i, name) in KNOWN_COLUMNS
        .iter()
        .map(|s| s.to_string())
        .chain(columns.iter().cloned())
        .enumerate()
    {
        if i > 0 {
            doc.push(',');
        }
        csv_field(&mut doc, &name);
    }
    doc.push('\n');
    for (_, row) in &accepted {
        for (i, v) in [
            &row.phone,
            &row.name,
            &row.timezone,
            &row.language,
            &row.consent_source,
            &row.consent_at,
            &row.consent_text_version,
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                doc.push(',');
            }
            csv_field(&mut doc, v);
        }
        for key in &columns {
            doc.push(',');
            csv_field(&mut doc, row.attributes.get(key).map_or("", String::as_str));
        }
        doc.push('\n');
    }
    let mut options = target.options();
    options.delimiter = Some(b',');
    let mut importer =
        Importer::new(doc.as_bytes(), options).map_err(|e| invalid("batch.rows", e))?;
    let contacts = importer
        .next_batch(usize::MAX)
        .map_err(|e| invalid("batch.rows", e))?
        .unwrap_or_default();
    let report = importer.finish();
    // Importer rows count the accepted rows 1..; map back to stream row numbers.
    let row_of = |r: u64| -> u64 {
        usize::try_from(r)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| accepted.get(i))
            .map_or(offset + r, |(n, _)| *n)
    };
    for e in &report.errors {
        tally.error(row_of(e.row), &e.field, e.reason.clone());
    }
    // Errors beyond the importer's list are counted too.
    tally.invalid += report
        .errors_total
        .saturating_sub(report.errors.len() as u64);
    target.insert(contacts, tally).await
}

/// Reads a `Read` from chunks sent by the async side; an `Err` item means the client's
/// stream broke (the importer then stops instead of taking a cut row as complete).
struct ChunkReader {
    rx: mpsc::Receiver<Result<Bytes, ()>>,
    buf: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.buf = b,
                Some(Err(())) => {
                    return Err(std::io::Error::other("the client's stream broke off"));
                }
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        let _ = self.buf.split_to(n);
        Ok(n)
    }
}

/// The CSV path: a blocking thread runs the streaming importer over the chunks as they come
/// (forwarded by a task that reads the gRPC stream); this task inserts its batches.
async fn import_csv(
    target: &ImportTarget<'_>,
    first: Bytes,
    mut stream: Streaming<pb::ImportContactsRequest>,
    tally: &mut Tally,
) -> Result<(), Status> {
    let (chunk_tx, chunk_rx) = mpsc::channel::<Result<Bytes, ()>>(8);
    let (batch_tx, mut batch_rx) = mpsc::channel::<Vec<ImportedContact>>(2);
    let options = target.options();
    let importer = tokio::task::spawn_blocking(move || -> Result<ImportReport, ImportError> {
        let reader = ChunkReader {
            rx: chunk_rx,
            buf: Bytes::new(),
        };
        let mut imp = Importer::new(reader, options)?;
        while let Some(batch) = imp.next_batch(INSERT_BATCH)? {
            if batch_tx.blocking_send(batch).is_err() {
                break;
            }
        }
        Ok(imp.finish())
    });
    let forward = tokio::spawn(async move {
        if chunk_tx.send(Ok(first)).await.is_err() {
            return Ok(());
        }
        loop {
            match stream.message().await {
                Ok(None) => return Ok(()),
                Ok(Some(m)) => {
                    let chunk = match m.item {
                        Some(Item::CsvChunk(c)) => c,
                        None => continue,
                        Some(_) => {
                            let _ = chunk_tx.send(Err(())).await;
                            return Err(invalid(
                                "batch",
                                "a stream carries either contact batches or CSV chunks, not both",
                            ));
                        }
                    };
                    if chunk_tx.send(Ok(chunk)).await.is_err() {
                        return Ok(());
                    }
                }
                Err(status) => {
                    let _ = chunk_tx.send(Err(())).await;
                    return Err(status);
                }
            }
        }
    });
    let mut insert_error = None;
    while let Some(batch) = batch_rx.recv().await {
        if let Err(e) = target.insert(batch, tally).await {
            insert_error = Some(e);
            break;
        }
    }
    drop(batch_rx);
    let forwarded = forward
        .await
        .map_err(|e| Status::internal(format!("import task: {e}")))?;
    let report = importer
        .await
        .map_err(|e| Status::internal(format!("import task: {e}")))?;
    forwarded?;
    if let Some(e) = insert_error {
        return Err(e);
    }
    let report = report.map_err(|e| match e {
        ImportError::Io(io) => Status::cancelled(format!("import cut short: {io}")),
        other => invalid("csv_chunk", other),
    })?;
    tally.rows_read += report.rows_read;
    tally.invalid += report.errors_total;
    for e in report.errors {
        if tally.errors.len() < MAX_ROW_ERRORS {
            tally.errors.push(pb::RowError {
                row: e.row,
                field: e.field,
                reason: e.reason,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        use CampaignState as S;
        assert_eq!(
            transition(S::Draft, S::Running).expect("start"),
            Some(S::Running)
        );
        assert_eq!(transition(S::Running, S::Running).expect("again"), None);
        assert_eq!(
            transition(S::Paused, S::Running).expect("resume"),
            Some(S::Running)
        );
        assert!(transition(S::Stopped, S::Running).is_err());
        assert!(transition(S::Draft, S::Paused).is_err());
        assert!(transition(S::Finished, S::Stopped).is_err());
        assert_eq!(
            transition(S::Draft, S::Stopped).expect("stop"),
            Some(S::Stopped)
        );
    }

    #[test]
    fn script_names() {
        assert!(valid_script_name("actualization"));
        assert!(valid_script_name("a-b_9"));
        assert!(!valid_script_name("../etc"));
        assert!(!valid_script_name("Big"));
        assert!(!valid_script_name(""));
    }

    #[test]
    fn calls_per_hour_spans_first_start_to_last_end() {
        let stats = store::AttemptStats {
            started: 10,
            first_started_at_ms: Some(0),
            last_ended_at_ms: Some(60_000),
            ..Default::default()
        };
        assert!((calls_per_hour(&stats, CampaignState::Stopped, 1_000_000) - 600.0).abs() < 1e-9);
    }
}
