//! Contacts: bulk insert with merge and suppression refusal, lookups, counts.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::campaigns::parse_enum;
use crate::hmac::PhoneHasher;
use crate::{
    AuditAction, Backend, CampaignId, Contact, ContactCounts, ContactId, ContactState,
    InsertReport, NewConsent, NewContact, Result, Store, StoreError, wall_ms,
};

/// Contacts per multi-row INSERT (11 parameters each, under SQLite's 32,766 and
/// PostgreSQL's 65,535 parameter limits).
const ROWS_PER_STATEMENT: usize = 1000;
/// Consents per multi-row INSERT (8 parameters each).
const CONSENTS_PER_STATEMENT: usize = 1000;

pub(crate) const CONTACT_COLUMNS: &str = "id, campaign_id, phone_e164, phone_hmac, name, \
    timezone, language, attributes, state, attempts, next_attempt_at, last_attempt_at, priority, \
    last_outcome, consent_at, lease_owner, lease_until";

pub(crate) fn parse_attributes(text: &str) -> Result<BTreeMap<String, String>> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("contact attributes: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(StoreError::Corrupt(
            "contact attributes: not an object".into(),
        ));
    };
    Ok(map
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect())
}

pub(crate) fn contact_from_row(row: &AnyRow) -> Result<Contact> {
    Ok(Contact {
        id: ContactId(row.try_get("id")?),
        campaign_id: CampaignId(row.try_get("campaign_id")?),
        phone_e164: row.try_get("phone_e164")?,
        phone_hmac: row.try_get("phone_hmac")?,
        name: row.try_get("name")?,
        timezone: row.try_get("timezone")?,
        language: row.try_get("language")?,
        attributes: parse_attributes(&row.try_get::<String, _>("attributes")?)?,
        state: parse_enum(&row.try_get::<String, _>("state")?, "contact state")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at_ms: row.try_get("next_attempt_at")?,
        last_attempt_at_ms: row.try_get("last_attempt_at")?,
        priority: row.try_get("priority")?,
        last_outcome: row.try_get("last_outcome")?,
        consent_at_ms: row.try_get("consent_at")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until_ms: row.try_get("lease_until")?,
    })
}

/// `+` and 6..=15 digits (E.164 allows at most 15).
pub(crate) fn check_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (6..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// One contact after merging the rows of a call that share a number.
struct Pending<'a> {
    phone: &'a str,
    hmac: String,
    name: Option<&'a str>,
    timezone: Option<&'a str>,
    language: Option<&'a str>,
    attributes: BTreeMap<&'a str, &'a str>,
    consents: Vec<&'a NewConsent>,
}

impl<'a> Pending<'a> {
    fn new(c: &'a NewContact, hmac: String) -> Pending<'a> {
        Pending {
            phone: &c.phone_e164,
            hmac,
            name: c.name.as_deref(),
            timezone: c.timezone.as_deref(),
            language: c.language.as_deref(),
            attributes: c
                .attributes
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            consents: c.consent.iter().collect(),
        }
    }

    /// A later row of the same number: its values win where given.
    fn merge(&mut self, c: &'a NewContact) {
        if c.name.is_some() {
            self.name = c.name.as_deref();
        }
        if c.timezone.is_some() {
            self.timezone = c.timezone.as_deref();
        }
        if c.language.is_some() {
            self.language = c.language.as_deref();
        }
        self.attributes
            .extend(c.attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        self.consents.extend(c.consent.iter());
    }

    fn consent_at(&self) -> Option<i64> {
        self.consents.iter().map(|c| c.given_at_ms).max()
    }
}

impl Store {
    /// Inserts a batch of contacts into a campaign in one transaction.
    ///
    /// - A number already in this campaign (or repeated within `contacts`) is merged into the
    ///   existing contact: id and state kept, name/time zone/language replaced where the new
    ///   row has them, attributes merged (new keys win), newest consent time kept.
    /// - A number whose HMAC is on the suppression list is refused; its index is reported.
    /// - Consents that come with the rows are recorded (deduplicated by contact, source, time
    ///   and text version) and one audit entry is written for the batch.
    ///
    /// New contacts are `pending`, due now, priority 0. Call it repeatedly with batches of
    /// about 1,000 for a large import; every call is one transaction.
    pub async fn insert_contacts(
        &self,
        campaign: CampaignId,
        contacts: &[NewContact],
        hmac_key: &[u8],
    ) -> Result<InsertReport> {
        if hmac_key.is_empty() {
            return Err(StoreError::Invalid("empty HMAC key".into()));
        }
        if let Some(i) = contacts.iter().position(|c| !check_e164(&c.phone_e164)) {
            return Err(StoreError::Invalid(format!(
                "contact #{i}: phone number is not in E.164 form (+ and 6..15 digits)"
            )));
        }
        let mut report = InsertReport::default();
        if contacts.is_empty() {
            return Ok(report);
        }
        let hasher = PhoneHasher::new(hmac_key);
        let hmacs: Vec<String> = contacts
            .iter()
            .map(|c| hasher.hash(&c.phone_e164))
            .collect();

        let mut w = self.write_tx().await?;
        let now = self.unique_now();
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM campaigns WHERE id = $1")
            .bind(campaign.0)
            .fetch_optional(&mut *w.tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound {
                what: "campaign",
                id: campaign.0,
            });
        }

        // Suppression list.
        let mut suppressed: HashSet<String> = HashSet::new();
        for chunk in hmacs.chunks(ROWS_PER_STATEMENT) {
            let mut sql = self.sql();
            sql.push("SELECT phone_hmac FROM suppression WHERE phone_hmac IN (")
                .params(chunk.len())
                .push(")");
            let mut q = sqlx::query_scalar::<_, String>(sql.as_str());
            for h in chunk {
                q = q.bind(h.as_str());
            }
            suppressed.extend(q.fetch_all(&mut *w.tx).await?);
        }

        // Merge rows of the same number within this call.
        let mut pending: Vec<Pending<'_>> = Vec::with_capacity(contacts.len());
        let mut by_phone: HashMap<&str, usize> = HashMap::with_capacity(contacts.len());
        for (i, (c, h)) in contacts.iter().zip(hmacs).enumerate() {
            if suppressed.contains(&h) {
                report.suppressed.push(i);
                continue;
            }
            match by_phone.get(c.phone_e164.as_str()) {
                Some(&j) => {
                    pending[j].merge(c);
                    report.merged += 1;
                }
                None => {
                    by_phone.insert(&c.phone_e164, pending.len());
                    pending.push(Pending::new(c, h));
                }
            }
        }

        let merge_attributes = match self.backend {
            Backend::Sqlite => "json_patch(contacts.attributes, excluded.attributes)",
            Backend::Postgres => "(contacts.attributes::jsonb || excluded.attributes::jsonb)::text",
        };
        // Whether the upsert inserted the row (1) or merged into an existing one (0).
        // PostgreSQL: a freshly inserted tuple has no xmax. SQLite: `now` is unique per call
        // (`Store::unique_now`, one writer), and a merge leaves `created_at` as it was.
        let inserted = match self.backend {
            Backend::Sqlite => "CASE WHEN created_at = updated_at THEN 1 ELSE 0 END",
            Backend::Postgres => "CASE WHEN xmax = 0 THEN 1 ELSE 0 END",
        };
        let mut consent_rows: Vec<(i64, &str, &NewConsent)> = Vec::new();
        for chunk in pending.chunks(ROWS_PER_STATEMENT) {
            let mut sql = self.sql();
            sql.push(
                "INSERT INTO contacts (campaign_id, next_attempt_at, created_at, updated_at, \
                 phone_e164, phone_hmac, name, timezone, language, attributes, consent_at, \
                 state, attempts, priority) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push("(").params(11).push(", 'pending', 0, 0)");
            }
            sql.push(&format!(
                " ON CONFLICT (campaign_id, phone_e164) DO UPDATE SET \
                 name = COALESCE(excluded.name, contacts.name), \
                 timezone = COALESCE(excluded.timezone, contacts.timezone), \
                 language = COALESCE(excluded.language, contacts.language), \
                 attributes = CASE WHEN excluded.attributes = '{{}}' THEN contacts.attributes \
                     ELSE {merge_attributes} END, \
                 consent_at = CASE WHEN excluded.consent_at IS NULL THEN contacts.consent_at \
                     WHEN contacts.consent_at IS NULL OR excluded.consent_at > contacts.consent_at \
                     THEN excluded.consent_at ELSE contacts.consent_at END, \
                 updated_at = excluded.updated_at \
                 RETURNING id, phone_e164, {inserted} AS inserted"
            ));
            let mut q = sqlx::query(sql.as_str());
            for p in chunk {
                let attributes = serde_json::to_string(&p.attributes)
                    .map_err(|e| StoreError::Invalid(format!("contact attributes: {e}")))?;
                q = q
                    .bind(campaign.0)
                    .bind(now)
                    .bind(now)
                    .bind(now)
                    .bind(p.phone)
                    .bind(p.hmac.as_str())
                    .bind(p.name)
                    .bind(p.timezone)
                    .bind(p.language)
                    .bind(attributes)
                    .bind(p.consent_at());
            }
            let rows = q.fetch_all(&mut *w.tx).await?;
            let mut fresh = 0u64;
            for row in &rows {
                fresh += row.try_get::<i64, _>("inserted")? as u64;
            }
            report.inserted += fresh;
            report.merged += rows.len() as u64 - fresh;
            if chunk.iter().any(|p| !p.consents.is_empty()) {
                let mut ids: HashMap<String, i64> = HashMap::with_capacity(rows.len());
                for row in &rows {
                    ids.insert(row.try_get("phone_e164")?, row.try_get("id")?);
                }
                for p in chunk {
                    let id = *ids.get(p.phone).ok_or_else(|| {
                        StoreError::Corrupt("upsert returned no id for a contact".into())
                    })?;
                    consent_rows.extend(p.consents.iter().map(|c| (id, p.hmac.as_str(), *c)));
                }
            }
        }

        for chunk in consent_rows.chunks(CONSENTS_PER_STATEMENT) {
            let mut sql = self.sql();
            sql.push(
                "INSERT INTO consents (campaign_id, created_at, contact_id, phone_hmac, source, \
                 given_at, text_version, evidence) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push("(").params(8).push(")");
            }
            sql.push(" ON CONFLICT (contact_id, source, given_at, text_version) DO NOTHING");
            let mut q = sqlx::query(sql.as_str());
            for (id, hmac, c) in chunk {
                q = q
                    .bind(campaign.0)
                    .bind(now)
                    .bind(*id)
                    .bind(*hmac)
                    .bind(c.source.as_str())
                    .bind(c.given_at_ms)
                    .bind(c.text_version.as_str())
                    .bind(c.evidence.as_deref());
            }
            report.consents += q.execute(&mut *w.tx).await?.rows_affected();
        }
        if report.consents > 0 {
            let details = serde_json::json!({
                "campaign_id": campaign.0,
                "consents": report.consents,
                "via": "import",
            });
            crate::compliance::audit_in(
                &mut w.tx,
                now,
                "import",
                &AuditAction::Consent,
                &format!("campaign:{}", campaign.0),
                &details,
            )
            .await?;
        }
        w.commit().await?;
        tracing::debug!(
            campaign = campaign.0,
            inserted = report.inserted,
            merged = report.merged,
            suppressed = report.suppressed.len(),
            "contacts inserted"
        );
        Ok(report)
    }

    /// One contact (personal fields included), or None.
    pub async fn get_contact(&self, id: ContactId) -> Result<Option<Contact>> {
        let row = sqlx::query(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(contact_from_row).transpose()
    }

    /// The contact with this number in this campaign, or None.
    pub async fn find_contact(&self, campaign: CampaignId, e164: &str) -> Result<Option<Contact>> {
        let row = sqlx::query(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE campaign_id = $1 AND phone_e164 = $2"
        ))
        .bind(campaign.0)
        .bind(e164)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(contact_from_row).transpose()
    }

    /// Contacts of a campaign, by id, after `after` (paging; personal fields included).
    pub async fn list_contacts(
        &self,
        campaign: CampaignId,
        after: Option<ContactId>,
        limit: u32,
    ) -> Result<Vec<Contact>> {
        let rows = sqlx::query(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE campaign_id = $1 AND id > $2 \
             ORDER BY id LIMIT $3"
        ))
        .bind(campaign.0)
        .bind(after.map_or(0, |c| c.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(contact_from_row).collect()
    }

    /// Sets the priority of contacts (higher is dialled first); returns how many changed.
    pub async fn set_contact_priority(&self, ids: &[ContactId], priority: i64) -> Result<u64> {
        let mut changed = 0;
        let _guard = self.write_guard().await;
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut sql = self.sql();
            sql.push("UPDATE contacts SET priority = ")
                .param()
                .push(", updated_at = ")
                .param()
                .push(" WHERE id IN (")
                .params(chunk.len())
                .push(")");
            let mut q = sqlx::query(sql.as_str()).bind(priority).bind(wall_ms());
            for id in chunk {
                q = q.bind(id.0);
            }
            changed += q.execute(&self.pool).await?.rows_affected();
        }
        Ok(changed)
    }

    /// Contacts per state in a campaign.
    pub async fn contact_counts(&self, campaign: CampaignId) -> Result<ContactCounts> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM contacts WHERE campaign_id = $1 GROUP BY state",
        )
        .bind(campaign.0)
        .fetch_all(&self.pool)
        .await?;
        let mut counts = ContactCounts::default();
        for row in rows {
            let n: i64 = row.try_get("n")?;
            match parse_enum::<ContactState>(&row.try_get::<String, _>("state")?, "contact state")?
            {
                ContactState::Pending => counts.pending = n,
                ContactState::InProgress => counts.in_progress = n,
                ContactState::Done => counts.done = n,
                ContactState::Suppressed => counts.suppressed = n,
                ContactState::Erased => counts.erased = n,
            }
        }
        Ok(counts)
    }

    /// Attempts started since `since_ms` for a number across all campaigns (the
    /// "do not pester" cap), by its HMAC.
    pub async fn attempts_since(&self, phone_hmac: &str, since_ms: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM attempts a JOIN contacts c ON c.id = a.contact_id \
             WHERE c.phone_hmac = $1 AND a.started_at >= $2",
        )
        .bind(phone_hmac)
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_shape() {
        assert!(check_e164("+380501234567"));
        assert!(check_e164("+12025550123"));
        assert!(!check_e164("380501234567"));
        assert!(!check_e164("+0501234567"));
        assert!(!check_e164("+38050123456789012"));
        assert!(!check_e164("+38050 1234567"));
    }

    #[test]
    fn attributes_round_trip_and_tolerate_non_strings() {
        let m = parse_attributes(r#"{"a":"1","b":2}"#).unwrap();
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "2");
        assert!(parse_attributes("[]").is_err());
    }
}
