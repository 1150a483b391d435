//! `dialer.v1.ResultService`: the resumable result stream, the report, CSV export.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use store::CampaignId;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::campaigns::{calls_per_hour, count_results, load_campaign};
use crate::convert::{counts_to_pb, result_to_pb, state_to_pb};
use crate::pb::result_service_server::ResultService;
use crate::{Ctx, Shared, invalid, now_ms, pb, store_status, unary};

/// Results read per store query.
const PAGE: u32 = 500;
/// How often a caught-up stream looks for new results.
const POLL: Duration = Duration::from_millis(200);
/// Export chunk size.
const CHUNK: usize = 64 * 1024;

pub(crate) struct Results(pub(crate) Ctx);

type ResultStream = Pin<Box<dyn Stream<Item = Result<pb::CallResult, Status>> + Send>>;
type CsvStream = Pin<Box<dyn Stream<Item = Result<pb::CsvChunk, Status>> + Send>>;

#[tonic::async_trait]
impl ResultService for Results {
    type StreamResultsStream = ResultStream;

    async fn stream_results(
        &self,
        request: Request<pb::StreamResultsRequest>,
    ) -> Result<Response<Self::StreamResultsStream>, Status> {
        let req = request.into_inner();
        if req.after_seq < 0 {
            return Err(invalid("after_seq", "must not be negative"));
        }
        let campaign = match req.campaign_id {
            0 => None,
            id => Some(load_campaign(&self.0, id).await?.id),
        };
        let ctx = self.0.clone();
        let (tx, rx) = mpsc::channel(PAGE as usize);
        tokio::spawn(async move {
            let mut cursor = req.after_seq;
            loop {
                let page = match ctx.ctx.store.results_after(campaign, cursor, PAGE).await {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(store_status(e))).await;
                        return;
                    }
                };
                let full = page.len() == PAGE as usize;
                for r in &page {
                    cursor = r.seq;
                    if tx.send(Ok(result_to_pb(r))).await.is_err() {
                        return;
                    }
                }
                if full {
                    continue;
                }
                if req.stop_at_end {
                    return;
                }
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        });
        Ok(Response::new(Box::pin(crate::UntilClosing::new(
            &self.0, rx,
        ))))
    }

    async fn get_report(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::Report>, Status> {
        let id = request.into_inner().campaign_id;
        unary(&self.0, report(&self.0, id)).await
    }

    type ExportResultsStream = CsvStream;

    async fn export_results(
        &self,
        request: Request<pb::ExportResultsRequest>,
    ) -> Result<Response<Self::ExportResultsStream>, Status> {
        let req = request.into_inner();
        if req.after_seq < 0 {
            return Err(invalid("after_seq", "must not be negative"));
        }
        let campaign = load_campaign(&self.0, req.campaign_id).await?.id;
        let ctx = self.0.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            if let Err(e) = export(&ctx, campaign, req.after_seq, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(Response::new(Box::pin(crate::UntilClosing::new(
            &self.0, rx,
        ))))
    }
}

fn ratio(n: i64, d: i64) -> f64 {
    if d <= 0 { 0.0 } else { n as f64 / d as f64 }
}

async fn report(ctx: &Shared, id: i64) -> Result<pb::Report, Status> {
    let c = load_campaign(ctx, id).await?;
    let store = &ctx.ctx.store;
    let counts = store.contact_counts(c.id).await.map_err(store_status)?;
    let stats = store.attempt_stats(c.id).await.map_err(store_status)?;
    let results = store.result_counts(c.id).await.map_err(store_status)?;
    let f = store.report_figures(c.id).await.map_err(store_status)?;
    let total: i64 = results.iter().map(|r| r.count).sum();
    let (outcomes, categories) = count_results(&results);
    let answered: i64 = categories.iter().map(|c| c.count).sum();
    let share = |v: Vec<pb::Count>, of: i64| -> Vec<pb::Share> {
        v.into_iter()
            .map(|c| pb::Share {
                share: ratio(c.count, of),
                name: c.name,
                count: c.count,
            })
            .collect()
    };
    let now = now_ms();
    Ok(pb::Report {
        campaign_id: c.id.0,
        name: c.name.clone(),
        state: state_to_pb(c.state) as i32,
        contacts: Some(counts_to_pb(&counts)),
        results: total,
        categories: share(categories, answered),
        outcomes: share(outcomes, total),
        kpis: Some(pb::Kpis {
            dialled_contacts: f.dialled_contacts,
            reached_contacts: f.reached_contacts,
            reach_rate: ratio(f.reached_contacts, f.dialled_contacts),
            manager_call_conversion: ratio(f.manager_call_contacts, f.reached_contacts),
            opt_out_rate: ratio(f.opt_out_contacts, f.reached_contacts),
            average_handle_time_secs: ratio(f.answered_talk_ms, f.answered_timed) / 1000.0,
            calls_per_hour: calls_per_hour(&stats, c.state, now),
            asr_coverage: ratio(f.answers_with_transcript, f.answers),
        }),
        attempts: stats.started,
        live_calls: stats.dialling,
        interrupted: stats.interrupted,
        at_ms: now,
    })
}

/// The CSV columns of an export.
pub(crate) const CSV_HEADER: &str = "seq,result_id,campaign_id,contact_id,attempt_id,phone,\
category,outcome,dtmf,transcript,follow_up,confidence,amd,sip_status,setup_ms,duration_ms,\
script_version,has_recording,created_at";

/// RFC 4180: quoted when it holds a delimiter, quote or line break.
fn csv_push(out: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

pub(crate) fn csv_line(out: &mut String, r: &store::StoredResult) {
    let opt = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    let created = chrono::DateTime::from_timestamp_millis(r.created_at_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    let fields: [String; 19] = [
        r.seq.to_string(),
        r.id.0.to_string(),
        r.campaign_id.0.to_string(),
        r.contact_id.0.to_string(),
        r.attempt_id.0.to_string(),
        r.phone_e164.clone().unwrap_or_default(),
        r.category.clone().unwrap_or_default(),
        r.outcome.clone(),
        r.dtmf.clone().unwrap_or_default(),
        r.transcript.clone().unwrap_or_default(),
        r.follow_up.clone().unwrap_or_default(),
        r.confidence.map(|c| format!("{c:.3}")).unwrap_or_default(),
        r.amd.clone().unwrap_or_default(),
        opt(r.sip_status),
        opt(r.setup_ms),
        opt(r.duration_ms),
        r.script_version.clone().unwrap_or_default(),
        r.recording_path.is_some().to_string(),
        created,
    ];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_push(out, f);
    }
    out.push('\n');
}

async fn export(
    ctx: &Shared,
    campaign: CampaignId,
    after_seq: i64,
    tx: &mpsc::Sender<Result<pb::CsvChunk, Status>>,
) -> Result<(), Status> {
    let mut buf = String::with_capacity(CHUNK + 4096);
    buf.push_str(CSV_HEADER);
    buf.push('\n');
    let mut cursor = after_seq;
    loop {
        let page = ctx
            .ctx
            .store
            .results_after(Some(campaign), cursor, PAGE)
            .await
            .map_err(store_status)?;
        for r in &page {
            cursor = r.seq;
            csv_line(&mut buf, r);
            if buf.len() >= CHUNK {
                let data = Bytes::from(std::mem::take(&mut buf).into_bytes());
                if tx.send(Ok(pb::CsvChunk { data })).await.is_err() {
                    return Ok(());
                }
            }
        }
        if page.len() < PAGE as usize {
            break;
        }
    }
    if !buf.is_empty() {
        let _ = tx
            .send(Ok(pb::CsvChunk {
                data: Bytes::from(buf.into_bytes()),
            }))
            .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_when_needed() {
        let mut s = String::new();
        csv_push(&mut s, "plain");
        s.push(',');
        csv_push(&mut s, "a \"b\", c");
        assert_eq!(s, "plain,\"a \"\"b\"\", c\"");
        assert_eq!(CSV_HEADER.split(',').count(), 19);
    }
}
