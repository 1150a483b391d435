//! Attempts and results: written before the INVITE, committed with the result in one
//! transaction, streamed by a gap-free sequence.

use std::path::PathBuf;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::campaigns::{parse_enum, parse_json};
use crate::{
    Attempt, AttemptEnd, AttemptId, AttemptStats, CampaignId, ContactId, FinishReport, Next,
    Result, ResultCount, ResultId, Store, StoreError, StoredResult,
};

fn result_from_row(row: &AnyRow) -> Result<StoredResult> {
    let details: Option<String> = row.try_get("details")?;
    Ok(StoredResult {
        id: ResultId(row.try_get("id")?),
        seq: row.try_get("seq")?,
        attempt_id: AttemptId(row.try_get("attempt_id")?),
        contact_id: ContactId(row.try_get("contact_id")?),
        campaign_id: CampaignId(row.try_get("campaign_id")?),
        phone_e164: row.try_get("phone_e164")?,
        category: row.try_get("category")?,
        outcome: row.try_get("outcome")?,
        dtmf: row.try_get("dtmf")?,
        transcript: row.try_get("transcript")?,
        follow_up: row.try_get("follow_up")?,
        confidence: row.try_get("confidence")?,
        amd: row.try_get("amd")?,
        sip_status: row.try_get("sip_status")?,
        setup_ms: row.try_get("setup_ms")?,
        duration_ms: row.try_get("duration_ms")?,
        script_version: row.try_get("script_version")?,
        recording_path: row.try_get("recording_path")?,
        details: details
            .as_deref()
            .map(|d| parse_json(d, "result details"))
            .transpose()?,
        created_at_ms: row.try_get("created_at")?,
    })
}

fn attempt_from_row(row: &AnyRow) -> Result<Attempt> {
    Ok(Attempt {
        id: AttemptId(row.try_get("id")?),
        contact_id: ContactId(row.try_get("contact_id")?),
        campaign_id: CampaignId(row.try_get("campaign_id")?),
        node: row.try_get("node")?,
        trunk: row.try_get("trunk")?,
        state: parse_enum(&row.try_get::<String, _>("state")?, "attempt state")?,
        started_at_ms: row.try_get("started_at")?,
        ended_at_ms: row.try_get("ended_at")?,
        outcome: row.try_get("outcome")?,
        sip_status: row.try_get("sip_status")?,
    })
}

impl Store {
    /// Writes the attempt (`dialling`) — call it BEFORE the INVITE is sent — and counts it on
    /// the contact. Fails with [`StoreError::LeaseLost`] unless `node` holds a live lease on
    /// the contact in `campaign`: then the contact must not be dialled.
    pub async fn start_attempt(
        &self,
        contact: ContactId,
        campaign: CampaignId,
        node: &str,
        trunk: Option<&str>,
        now_ms: i64,
    ) -> Result<AttemptId> {
        let mut w = self.write_tx().await?;
        let held = sqlx::query(
            "UPDATE contacts SET attempts = attempts + 1, last_attempt_at = $1, updated_at = $1 \
             WHERE id = $2 AND campaign_id = $3 AND state = 'in_progress' AND lease_owner = $4 \
               AND lease_until > $1",
        )
        .bind(now_ms)
        .bind(contact.0)
        .bind(campaign.0)
        .bind(node)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if held == 0 {
            return Err(StoreError::LeaseLost(contact.0));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO attempts (contact_id, campaign_id, node, trunk, state, started_at) \
             VALUES ($1, $2, $3, $4, 'dialling', $5) RETURNING id",
        )
        .bind(contact.0)
        .bind(campaign.0)
        .bind(node)
        .bind(trunk)
        .bind(now_ms)
        .fetch_one(&mut *w.tx)
        .await?;
        w.commit().await?;
        Ok(AttemptId(id))
    }

    /// Ends an attempt: the attempt row, the result row (if any) and the contact's next state
    /// are committed in ONE transaction — all or nothing.
    ///
    /// - The attempt must be `dialling` or `interrupted` (a call that outlived its lease still
    ///   gets its real outcome); a finished attempt is refused with
    ///   [`StoreError::AttemptClosed`] and nothing changes.
    /// - The result gets the next stream sequence number, assigned as the last statement of
    ///   the transaction so sequence order is commit order (see [`Store::results_after`]).
    /// - The contact gets `end.next` only if this attempt's node still holds it (or it is
    ///   pending and unleased after a recovery); otherwise it is left alone.
    /// - If the contact was erased meanwhile (opt-out during the call), the result is stored
    ///   without its personal fields and the recording path is handed back for deletion.
    pub async fn finish_attempt(
        &self,
        attempt: AttemptId,
        end: AttemptEnd,
    ) -> Result<FinishReport> {
        let mut w = self.write_tx().await?;
        let row = sqlx::query("SELECT contact_id, campaign_id, node FROM attempts WHERE id = $1")
            .bind(attempt.0)
            .fetch_optional(&mut *w.tx)
            .await?
            .ok_or(StoreError::NotFound {
                what: "attempt",
                id: attempt.0,
            })?;
        let contact_id: i64 = row.try_get("contact_id")?;
        let campaign_id: i64 = row.try_get("campaign_id")?;
        let node: String = row.try_get("node")?;
        // Lock order everywhere: contact, then attempts, then the result counter.
        let contact_state: String = sqlx::query_scalar(&format!(
            "SELECT state FROM contacts WHERE id = $1{}",
            self.lock_suffix()
        ))
        .bind(contact_id)
        .fetch_one(&mut *w.tx)
        .await?;
        let erased = contact_state == "erased";

        let last_outcome = end
            .result
            .as_ref()
            .and_then(|r| r.category.clone())
            .unwrap_or_else(|| end.outcome.clone());
        let (next_state, next_at) = match end.next {
            Next::RetryAt(t) => ("pending", Some(t)),
            Next::Done => ("done", None),
        };
        let contact_updated = sqlx::query(
            "UPDATE contacts SET state = $1, next_attempt_at = COALESCE($2, next_attempt_at), \
             lease_owner = NULL, lease_until = NULL, last_outcome = $3, updated_at = $4 \
             WHERE id = $5 AND ((state = 'in_progress' AND lease_owner = $6) \
                             OR (state = 'pending' AND lease_owner IS NULL))",
        )
        .bind(next_state)
        .bind(next_at)
        .bind(last_outcome)
        .bind(end.now_ms)
        .bind(contact_id)
        .bind(node.as_str())
        .execute(&mut *w.tx)
        .await?
        .rows_affected()
            > 0;

        let closed = sqlx::query(
            "UPDATE attempts SET state = 'finished', ended_at = $1, outcome = $2, sip_status = $3 \
             WHERE id = $4 AND state <> 'finished'",
        )
        .bind(end.now_ms)
        .bind(end.outcome.as_str())
        .bind(end.sip_status)
        .bind(attempt.0)
        .execute(&mut *w.tx)
        .await?
        .rows_affected()
            == 0;
        if closed {
            // Dropping the transaction rolls the contact update back.
            return Err(StoreError::AttemptClosed(attempt.0));
        }

        let mut report = FinishReport {
            result: None,
            contact_updated,
            erased_recording: None,
        };
        if let Some(r) = &end.result {
            let keep = |v: &Option<String>| if erased { None } else { v.clone() };
            let details = match (&r.details, erased) {
                (Some(d), false) => Some(
                    serde_json::to_string(d)
                        .map_err(|e| StoreError::Invalid(format!("result details: {e}")))?,
                ),
                _ => None,
            };
            if erased {
                report.erased_recording = r.recording_path.as_ref().map(PathBuf::from);
            }
            // Last statement before commit: the counter row's lock orders seq by commit.
            let seq: i64 = sqlx::query_scalar(
                "UPDATE counters SET value = value + 1 WHERE name = 'results' RETURNING value",
            )
            .fetch_one(&mut *w.tx)
            .await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO results (seq, attempt_id, contact_id, campaign_id, category, outcome, \
                 dtmf, transcript, follow_up, confidence, amd, sip_status, setup_ms, duration_ms, \
                 script_version, recording_path, details, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CAST($10 AS DOUBLE PRECISION), $11, \
                 $12, $13, $14, $15, $16, $17, $18) RETURNING id",
            )
            .bind(seq)
            .bind(attempt.0)
            .bind(contact_id)
            .bind(campaign_id)
            .bind(r.category.as_deref())
            .bind(r.outcome.as_str())
            .bind(keep(&r.dtmf))
            .bind(keep(&r.transcript))
            .bind(keep(&r.follow_up))
            // As text: sqlx 0.8's Any driver sends a NULL f64 as FLOAT4, and a PostgreSQL
            // connection that prepared this statement with a NULL then refuses a FLOAT8
            // ("incorrect binary data format"). The cast makes it a double on both backends.
            .bind(r.confidence.map(|c| c.to_string()))
            .bind(r.amd.as_deref())
            .bind(r.sip_status.or(end.sip_status))
            .bind(r.setup_ms)
            .bind(r.duration_ms)
            .bind(r.script_version.as_deref())
            .bind(keep(&r.recording_path))
            .bind(details)
            .bind(end.now_ms)
            .fetch_one(&mut *w.tx)
            .await?;
            report.result = Some((ResultId(id), seq));
        }
        w.commit().await?;
        Ok(report)
    }

    /// One attempt, or None.
    pub async fn get_attempt(&self, id: AttemptId) -> Result<Option<Attempt>> {
        let row = sqlx::query(
            "SELECT id, contact_id, campaign_id, node, trunk, state, started_at, ended_at, \
             outcome, sip_status FROM attempts WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(attempt_from_row).transpose()
    }

    /// A contact's attempts, oldest first.
    pub async fn attempts_of(&self, contact: ContactId) -> Result<Vec<Attempt>> {
        let rows = sqlx::query(
            "SELECT id, contact_id, campaign_id, node, trunk, state, started_at, ended_at, \
             outcome, sip_status FROM attempts WHERE contact_id = $1 ORDER BY started_at, id",
        )
        .bind(contact.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(attempt_from_row).collect()
    }

    /// Results with `seq > after_seq`, in sequence order, at most `limit` — the resumable
    /// result stream: pass the last `seq` seen to continue. Sequence numbers are assigned in
    /// commit order, so a reader that resumes from its cursor never misses a result committed
    /// later with a smaller number. `campaign` None streams all campaigns.
    pub async fn results_after(
        &self,
        campaign: Option<CampaignId>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredResult>> {
        let cols = "r.id, r.seq, r.attempt_id, r.contact_id, r.campaign_id, c.phone_e164, \
                    r.category, r.outcome, r.dtmf, r.transcript, r.follow_up, r.confidence, r.amd, \
                    r.sip_status, r.setup_ms, r.duration_ms, r.script_version, r.recording_path, \
                    r.details, r.created_at";
        let rows = match campaign {
            Some(c) => {
                sqlx::query(&format!(
                    "SELECT {cols} FROM results r JOIN contacts c ON c.id = r.contact_id \
                     WHERE r.campaign_id = $1 AND r.seq > $2 ORDER BY r.seq LIMIT $3"
                ))
                .bind(c.0)
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {cols} FROM results r JOIN contacts c ON c.id = r.contact_id \
                     WHERE r.seq > $1 ORDER BY r.seq LIMIT $2"
                ))
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(result_from_row).collect()
    }

    /// The result of an attempt, if one was stored.
    pub async fn result_of(&self, attempt: AttemptId) -> Result<Option<StoredResult>> {
        let row = sqlx::query(
            "SELECT r.id, r.seq, r.attempt_id, r.contact_id, r.campaign_id, c.phone_e164, \
             r.category, r.outcome, r.dtmf, r.transcript, r.follow_up, r.confidence, r.amd, \
             r.sip_status, r.setup_ms, r.duration_ms, r.script_version, r.recording_path, \
             r.details, r.created_at \
             FROM results r JOIN contacts c ON c.id = r.contact_id WHERE r.attempt_id = $1",
        )
        .bind(attempt.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(result_from_row).transpose()
    }

    /// Results per (category, outcome) of a campaign, for the segmented report.
    pub async fn result_counts(&self, campaign: CampaignId) -> Result<Vec<ResultCount>> {
        let rows = sqlx::query(
            "SELECT category, outcome, COUNT(*) AS n FROM results WHERE campaign_id = $1 \
             GROUP BY category, outcome ORDER BY category, outcome",
        )
        .bind(campaign.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ResultCount {
                    category: row.try_get("category")?,
                    outcome: row.try_get("outcome")?,
                    count: row.try_get("n")?,
                })
            })
            .collect()
    }

    /// Attempt totals of a campaign (calls per hour, average call length, interruptions).
    pub async fn attempt_stats(&self, campaign: CampaignId) -> Result<AttemptStats> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS started, \
               COALESCE(CAST(SUM(CASE WHEN state = 'finished' THEN 1 ELSE 0 END) AS BIGINT), 0) AS finished, \
               COALESCE(CAST(SUM(CASE WHEN state = 'interrupted' THEN 1 ELSE 0 END) AS BIGINT), 0) AS interrupted, \
               COALESCE(CAST(SUM(CASE WHEN state = 'dialling' THEN 1 ELSE 0 END) AS BIGINT), 0) AS dialling, \
               MIN(started_at) AS first_started, MAX(ended_at) AS last_ended \
             FROM attempts WHERE campaign_id = $1",
        )
        .bind(campaign.0)
        .fetch_one(&self.pool)
        .await?;
        let talk = sqlx::query(
            "SELECT COALESCE(CAST(SUM(duration_ms) AS BIGINT), 0) AS talk_ms, COUNT(duration_ms) AS talked \
             FROM results WHERE campaign_id = $1",
        )
        .bind(campaign.0)
        .fetch_one(&self.pool)
        .await?;
        Ok(AttemptStats {
            started: row.try_get("started")?,
            finished: row.try_get("finished")?,
            interrupted: row.try_get("interrupted")?,
            dialling: row.try_get("dialling")?,
            talk_ms: talk.try_get("talk_ms")?,
            talked: talk.try_get("talked")?,
            first_started_at_ms: row.try_get("first_started")?,
            last_ended_at_ms: row.try_get("last_ended")?,
        })
    }
}
