//! Compliance: suppression and erasure, consent records, the audit log, recording retention.

use std::path::PathBuf;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::campaigns::{parse_enum, parse_json};
use crate::contacts::check_e164;
use crate::hmac::phone_hmac;
use crate::{
    AuditAction, AuditEntry, AuditFilter, CampaignId, Consent, ContactId, EraseTarget,
    ErasureReport, NewConsent, Recording, Result, ResultId, Store, StoreError, wall_ms,
};

const IDS_PER_STATEMENT: usize = 1000;

/// Appends an audit entry inside an open transaction.
pub(crate) async fn audit_in(
    tx: &mut Transaction<'static, Any>,
    at_ms: i64,
    actor: &str,
    action: &AuditAction,
    subject: &str,
    details: &serde_json::Value,
) -> Result<i64> {
    let details = serde_json::to_string(details)
        .map_err(|e| StoreError::Invalid(format!("audit details: {e}")))?;
    Ok(sqlx::query_scalar(
        "INSERT INTO audit_log (at, actor, action, subject, details) VALUES ($1, $2, $3, $4, $5) \
         RETURNING id",
    )
    .bind(at_ms)
    .bind(actor)
    .bind(action.as_str())
    .bind(subject)
    .bind(details)
    .fetch_one(&mut **tx)
    .await?)
}

fn consent_from_row(row: &AnyRow) -> Result<Consent> {
    Ok(Consent {
        id: row.try_get("id")?,
        contact_id: row.try_get::<Option<i64>, _>("contact_id")?.map(ContactId),
        phone_hmac: row.try_get("phone_hmac")?,
        source: parse_enum(&row.try_get::<String, _>("source")?, "consent source")?,
        given_at_ms: row.try_get("given_at")?,
        text_version: row.try_get("text_version")?,
        evidence: row.try_get("evidence")?,
        withdrawn_at_ms: row.try_get("withdrawn_at")?,
    })
}

fn audit_from_row(row: &AnyRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at_ms: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: AuditAction::parse(&row.try_get::<String, _>("action")?),
        subject: row.try_get("subject")?,
        details: parse_json(&row.try_get::<String, _>("details")?, "audit details")?,
    })
}

impl Store {
    /// Opt-out: in ONE transaction, puts the number's HMAC on the suppression list (every
    /// campaign, every node), erases the personal data of every contact with that number in
    /// every campaign (number, name, attributes → NULL/`{}`; state `erased`, lease dropped),
    /// erases transcripts, follow-ups, digits, details and recording paths of their results,
    /// withdraws their consents and drops the consent evidence, and writes `opt_out` and
    /// `erase` audit entries (subject `hmac:…`, never the number). Ids, HMAC, outcomes and
    /// categories stay for the reports.
    ///
    /// Returns the recording files (results, and phone-consent recordings) for the caller to
    /// delete. Idempotent: erasing again finds nothing more to erase. A number with no
    /// contact yet is still suppressed, so a later import refuses it. On SQLite the WAL is
    /// checkpointed afterwards so erased values do not linger in the WAL file.
    pub async fn suppress_and_erase(
        &self,
        target: &EraseTarget,
        hmac_key: &[u8],
        actor: &str,
        reason: &str,
    ) -> Result<ErasureReport> {
        let now = wall_ms();
        let mut w = self.write_tx().await?;
        let hmac = match target {
            EraseTarget::Phone(e164) => {
                if hmac_key.is_empty() {
                    return Err(StoreError::Invalid("empty HMAC key".into()));
                }
                if !check_e164(e164) {
                    return Err(StoreError::Invalid(
                        "phone number is not in E.164 form (+ and 6..15 digits)".into(),
                    ));
                }
                phone_hmac(hmac_key, e164)
            }
            EraseTarget::Contact(id) => {
                sqlx::query_scalar("SELECT phone_hmac FROM contacts WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(&mut *w.tx)
                    .await?
                    .ok_or(StoreError::NotFound {
                        what: "contact",
                        id: id.0,
                    })?
            }
        };
        let subject = format!("hmac:{hmac}");

        let newly_suppressed = sqlx::query(
            "INSERT INTO suppression (phone_hmac, reason, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (phone_hmac) DO NOTHING",
        )
        .bind(hmac.as_str())
        .bind(reason)
        .bind(now)
        .execute(&mut *w.tx)
        .await?
        .rows_affected()
            > 0;
        if newly_suppressed {
            audit_in(
                &mut w.tx,
                now,
                actor,
                &AuditAction::OptOut,
                &subject,
                &serde_json::json!({ "reason": reason }),
            )
            .await?;
        }

        // Contacts first (lock order: contacts, then attempts/results).
        let ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE contacts SET phone_e164 = NULL, name = NULL, attributes = '{}', \
             state = 'erased', lease_owner = NULL, lease_until = NULL, consent_at = NULL, \
             erased_at = COALESCE(erased_at, $1), updated_at = $1 \
             WHERE phone_hmac = $2 AND (state <> 'erased' OR phone_e164 IS NOT NULL \
                OR name IS NOT NULL OR attributes <> '{}') \
             RETURNING id",
        )
        .bind(now)
        .bind(hmac.as_str())
        .fetch_all(&mut *w.tx)
        .await?;
        // Every contact ever seen with this number (also erased ones: a late result of a call
        // that was live during an earlier erasure is caught here).
        let all_ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM contacts WHERE phone_hmac = $1 ORDER BY id")
                .bind(hmac.as_str())
                .fetch_all(&mut *w.tx)
                .await?;

        let mut recordings: Vec<PathBuf> = Vec::new();
        let mut results_erased = 0u64;
        for chunk in all_ids.chunks(IDS_PER_STATEMENT) {
            let mut sql = self.sql();
            sql.push(
                "SELECT recording_path FROM results WHERE recording_path IS NOT NULL \
                 AND contact_id IN (",
            )
            .params(chunk.len())
            .push(")");
            let mut q = sqlx::query_scalar::<_, String>(sql.as_str());
            for id in chunk {
                q = q.bind(*id);
            }
            recordings.extend(
                q.fetch_all(&mut *w.tx)
                    .await?
                    .into_iter()
                    .map(PathBuf::from),
            );
            let mut sql = self.sql();
            sql.push(
                "UPDATE results SET dtmf = NULL, transcript = NULL, follow_up = NULL, \
                 details = NULL, recording_path = NULL WHERE contact_id IN (",
            )
            .params(chunk.len())
            .push(
                ") AND (dtmf IS NOT NULL OR transcript IS NOT NULL OR follow_up IS NOT NULL \
                 OR details IS NOT NULL OR recording_path IS NOT NULL)",
            );
            let mut q = sqlx::query(sql.as_str());
            for id in chunk {
                q = q.bind(*id);
            }
            results_erased += q.execute(&mut *w.tx).await?.rows_affected();
        }

        let consent_recordings: Vec<String> = sqlx::query_scalar(
            "SELECT evidence FROM consents WHERE phone_hmac = $1 AND source = 'phone_call' \
             AND evidence IS NOT NULL",
        )
        .bind(hmac.as_str())
        .fetch_all(&mut *w.tx)
        .await?;
        recordings.extend(consent_recordings.into_iter().map(PathBuf::from));
        recordings.sort();
        recordings.dedup();
        let consents_withdrawn = sqlx::query(
            "UPDATE consents SET withdrawn_at = COALESCE(withdrawn_at, $1), evidence = NULL \
             WHERE phone_hmac = $2 AND (withdrawn_at IS NULL OR evidence IS NOT NULL)",
        )
        .bind(now)
        .bind(hmac.as_str())
        .execute(&mut *w.tx)
        .await?
        .rows_affected();

        if !ids.is_empty() || results_erased > 0 || consents_withdrawn > 0 {
            audit_in(
                &mut w.tx,
                now,
                actor,
                &AuditAction::Erase,
                &subject,
                &serde_json::json!({
                    "reason": reason,
                    "contacts": ids,
                    "results": results_erased,
                    "consents_withdrawn": consents_withdrawn,
                    "recordings": recordings.len(),
                }),
            )
            .await?;
        }
        w.commit().await?;
        self.sqlite_checkpoint().await;
        tracing::info!(
            subject = %subject,
            contacts = ids.len(),
            results = results_erased,
            recordings = recordings.len(),
            "number suppressed and erased"
        );
        Ok(ErasureReport {
            phone_hmac: hmac,
            contacts_erased: ids.len() as u64,
            contact_ids: ids.into_iter().map(ContactId).collect(),
            recordings,
        })
    }

    /// Whether an HMAC is on the suppression list.
    pub async fn is_suppressed(&self, phone_hmac: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM suppression WHERE phone_hmac = $1")
            .bind(phone_hmac)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// Records a consent for a contact (e.g. given on the phone: `evidence` is the recording),
    /// makes the contact dialable under the consent gate, and audits it. Refused for an erased
    /// contact. Returns the consent id (the existing one if the same consent was recorded).
    pub async fn record_consent(
        &self,
        contact: ContactId,
        consent: &NewConsent,
        actor: &str,
    ) -> Result<i64> {
        let now = wall_ms();
        let mut w = self.write_tx().await?;
        let row: Option<(String, i64, String)> = sqlx::query_as(&format!(
            "SELECT phone_hmac, campaign_id, state FROM contacts WHERE id = $1{}",
            self.lock_suffix()
        ))
        .bind(contact.0)
        .fetch_optional(&mut *w.tx)
        .await?;
        let (hmac, campaign, state) = row.ok_or(StoreError::NotFound {
            what: "contact",
            id: contact.0,
        })?;
        if state == "erased" {
            return Err(StoreError::Erased(contact.0));
        }
        sqlx::query(
            "INSERT INTO consents (contact_id, campaign_id, phone_hmac, source, given_at, \
             text_version, evidence, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (contact_id, source, given_at, text_version) DO NOTHING",
        )
        .bind(contact.0)
        .bind(campaign)
        .bind(hmac.as_str())
        .bind(consent.source.as_str())
        .bind(consent.given_at_ms)
        .bind(consent.text_version.as_str())
        .bind(consent.evidence.as_deref())
        .bind(now)
        .execute(&mut *w.tx)
        .await?;
        let id: i64 = sqlx::query_scalar(
            "SELECT id FROM consents WHERE contact_id = $1 AND source = $2 AND given_at = $3 \
             AND text_version = $4",
        )
        .bind(contact.0)
        .bind(consent.source.as_str())
        .bind(consent.given_at_ms)
        .bind(consent.text_version.as_str())
        .fetch_one(&mut *w.tx)
        .await?;
        sqlx::query(
            "UPDATE contacts SET consent_at = $1, updated_at = $2 WHERE id = $3 \
             AND (consent_at IS NULL OR consent_at < $1)",
        )
        .bind(consent.given_at_ms)
        .bind(now)
        .bind(contact.0)
        .execute(&mut *w.tx)
        .await?;
        audit_in(
            &mut w.tx,
            now,
            actor,
            &AuditAction::Consent,
            &format!("contact:{}", contact.0),
            &serde_json::json!({
                "consent_id": id,
                "source": consent.source.as_str(),
                "given_at": consent.given_at_ms,
                "text_version": consent.text_version,
                "evidence": consent.evidence.is_some(),
            }),
        )
        .await?;
        w.commit().await?;
        Ok(id)
    }

    /// Withdraws every live consent of a contact (it stops being dialable under the consent
    /// gate) and audits it; returns how many were withdrawn.
    pub async fn withdraw_consent(&self, contact: ContactId, actor: &str) -> Result<u64> {
        let now = wall_ms();
        let mut w = self.write_tx().await?;
        let n = sqlx::query(
            "UPDATE consents SET withdrawn_at = $1 WHERE contact_id = $2 AND withdrawn_at IS NULL",
        )
        .bind(now)
        .bind(contact.0)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE contacts SET consent_at = NULL, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(contact.0)
            .execute(&mut *w.tx)
            .await?;
        audit_in(
            &mut w.tx,
            now,
            actor,
            &AuditAction::ConsentWithdrawn,
            &format!("contact:{}", contact.0),
            &serde_json::json!({ "withdrawn": n }),
        )
        .await?;
        w.commit().await?;
        Ok(n)
    }

    /// A contact's consent records, oldest first.
    pub async fn consents_of(&self, contact: ContactId) -> Result<Vec<Consent>> {
        let rows = sqlx::query(
            "SELECT id, contact_id, phone_hmac, source, given_at, text_version, evidence, \
             withdrawn_at FROM consents WHERE contact_id = $1 ORDER BY given_at, id",
        )
        .bind(contact.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(consent_from_row).collect()
    }

    /// Writes an audit entry. `subject` must be an HMAC (`hmac:…`) or ids, never a raw
    /// number; `details` must not carry personal data either.
    pub async fn audit(
        &self,
        actor: &str,
        action: &AuditAction,
        subject: &str,
        details: &serde_json::Value,
    ) -> Result<i64> {
        let mut w = self.write_tx().await?;
        let id = audit_in(&mut w.tx, wall_ms(), actor, action, subject, details).await?;
        w.commit().await?;
        Ok(id)
    }

    /// Audit entries matching `filter`, oldest first, at most `limit`.
    pub async fn audit_log(&self, filter: &AuditFilter, limit: u32) -> Result<Vec<AuditEntry>> {
        let mut sql = String::from(
            "SELECT id, at, actor, action, subject, details FROM audit_log WHERE 1 = 1",
        );
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if filter.action.is_some() {
            sql.push_str(&format!(" AND action = ${}", next()));
        }
        if filter.subject.is_some() {
            sql.push_str(&format!(" AND subject = ${}", next()));
        }
        if filter.after_id.is_some() {
            sql.push_str(&format!(" AND id > ${}", next()));
        }
        if filter.since_ms.is_some() {
            sql.push_str(&format!(" AND at >= ${}", next()));
        }
        sql.push_str(&format!(" ORDER BY id LIMIT ${}", next()));
        let mut q = sqlx::query(&sql);
        if let Some(a) = &filter.action {
            q = q.bind(a.as_str().to_string());
        }
        if let Some(s) = &filter.subject {
            q = q.bind(s.as_str());
        }
        if let Some(id) = filter.after_id {
            q = q.bind(id);
        }
        if let Some(t) = filter.since_ms {
            q = q.bind(t);
        }
        let rows = q.bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.iter().map(audit_from_row).collect()
    }

    /// Result recordings stored before `before_ms` (past their retention period), oldest
    /// first, at most `limit`. Delete the file, then call [`Store::forget_recording`].
    /// (Phone-consent recordings are evidence and are kept until the contact is erased.)
    pub async fn recordings_older_than(
        &self,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<Recording>> {
        let rows = sqlx::query(
            "SELECT id, campaign_id, contact_id, recording_path, created_at FROM results \
             WHERE recording_path IS NOT NULL AND created_at < $1 ORDER BY created_at, id LIMIT $2",
        )
        .bind(before_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Recording {
                    result_id: ResultId(row.try_get("id")?),
                    campaign_id: CampaignId(row.try_get("campaign_id")?),
                    contact_id: ContactId(row.try_get("contact_id")?),
                    path: PathBuf::from(row.try_get::<String, _>("recording_path")?),
                    created_at_ms: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Clears a result's recording path after its file was deleted for retention, and audits
    /// it (`retention_delete`, subject `result:<id>`). Returns false if there was none.
    pub async fn forget_recording(&self, result: ResultId, actor: &str) -> Result<bool> {
        let now = wall_ms();
        let mut w = self.write_tx().await?;
        let row: Option<(i64, i64, i64)> = sqlx::query_as(
            "UPDATE results SET recording_path = NULL WHERE id = $1 AND recording_path IS NOT NULL \
             RETURNING campaign_id, contact_id, created_at",
        )
        .bind(result.0)
        .fetch_optional(&mut *w.tx)
        .await?;
        let Some((campaign, contact, created)) = row else {
            return Ok(false);
        };
        audit_in(
            &mut w.tx,
            now,
            actor,
            &AuditAction::RetentionDelete,
            &format!("result:{}", result.0),
            &serde_json::json!({
                "campaign_id": campaign,
                "contact_id": contact,
                "recorded_at": created,
            }),
        )
        .await?;
        w.commit().await?;
        Ok(true)
    }

    /// Contacts of `campaign` still to be called that have no consent on record (the consent
    /// gate will not dial them unless the campaign collects consent itself).
    pub async fn contacts_without_consent(&self, campaign: CampaignId) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM contacts WHERE campaign_id = $1 AND consent_at IS NULL \
             AND state IN ('pending', 'in_progress')",
        )
        .bind(campaign.0)
        .fetch_one(&self.pool)
        .await?)
    }
}
