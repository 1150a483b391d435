//! Leases: claiming due contacts, renewing, releasing, and recovering a dead node's work.

use std::sync::atomic::Ordering;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::contacts::parse_attributes;
use crate::{
    AttemptId, Backend, CampaignId, ClaimScope, ClaimedContact, ContactId, InterruptedAttempt,
    Next, Result, Store, StoreError,
};

const IDS_PER_STATEMENT: usize = 1000;

fn claimed_from_row(row: &AnyRow) -> Result<ClaimedContact> {
    Ok(ClaimedContact {
        id: ContactId(row.try_get("id")?),
        campaign_id: CampaignId(row.try_get("campaign_id")?),
        phone_e164: row.try_get("phone_e164")?,
        phone_hmac: row.try_get("phone_hmac")?,
        name: row.try_get("name")?,
        timezone: row.try_get("timezone")?,
        language: row.try_get("language")?,
        attributes: parse_attributes(&row.try_get::<String, _>("attributes")?)?,
        attempts: row.try_get("attempts")?,
        priority: row.try_get("priority")?,
        last_outcome: row.try_get("last_outcome")?,
        next_attempt_at_ms: row.try_get("next_attempt_at")?,
        last_attempt_at_ms: row.try_get("last_attempt_at")?,
        consent_at_ms: row.try_get("consent_at")?,
        lease_until_ms: row.try_get("lease_until")?,
    })
}

/// Which leases a recovery pass takes.
enum Expired<'a> {
    /// Leases that ran out before `now`.
    Before,
    /// Every lease of this node (it restarted), expired or not.
    Node(&'a str),
}

impl Store {
    /// Claims up to `limit` due contacts for `node`, leasing them until `now_ms + lease_ms`.
    ///
    /// A contact is due when it is `pending`, its `next_attempt_at` has come, its number is
    /// not suppressed, its campaign is `running`, and it has a consent on record unless the
    /// campaign collects consent itself (`consent_required = false`). Best priority first,
    /// then earliest due. Contacts leased to a node are `in_progress` and are not claimed
    /// again until released, finished, or recovered after their lease expired (see
    /// [`Store::release_expired_leases`]).
    ///
    /// PostgreSQL: `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n) RETURNING`,
    /// so concurrent nodes never receive the same contact and never wait on each other.
    /// SQLite: the same statement, atomic under the single writer.
    pub async fn claim_due(
        &self,
        scope: ClaimScope,
        node: &str,
        now_ms: i64,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<ClaimedContact>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let campaigns: Vec<(i64, bool)> = match scope {
            ClaimScope::Campaign(id) => {
                let row: Option<(String, i64)> =
                    sqlx::query_as("SELECT state, consent_required FROM campaigns WHERE id = $1")
                        .bind(id.0)
                        .fetch_optional(&self.pool)
                        .await?;
                match row {
                    None => {
                        return Err(StoreError::NotFound {
                            what: "campaign",
                            id: id.0,
                        });
                    }
                    Some((state, required)) if state == "running" => vec![(id.0, required != 0)],
                    Some(_) => return Ok(Vec::new()),
                }
            }
            ClaimScope::AllRunning => {
                let rows: Vec<(i64, i64)> = sqlx::query_as(
                    "SELECT id, consent_required FROM campaigns WHERE state = 'running' ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await?;
                let mut v: Vec<(i64, bool)> =
                    rows.into_iter().map(|(id, r)| (id, r != 0)).collect();
                if !v.is_empty() {
                    let k = self.claim_rotation.fetch_add(1, Ordering::Relaxed) % v.len();
                    v.rotate_left(k);
                }
                v
            }
        };
        let until = now_ms.saturating_add(lease_ms);
        let mut out = Vec::new();
        let mut remaining = limit as usize;
        let mut left = campaigns.len();
        for (campaign, consent_required) in campaigns {
            if remaining == 0 {
                break;
            }
            // Share what is left fairly among the campaigns not yet served.
            let take = remaining.div_ceil(left);
            left -= 1;
            let got = self
                .claim_campaign(campaign, consent_required, node, now_ms, until, take)
                .await?;
            remaining = remaining.saturating_sub(got.len());
            out.extend(got);
        }
        out.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.next_attempt_at_ms.cmp(&b.next_attempt_at_ms))
                .then(a.id.cmp(&b.id))
        });
        if !out.is_empty() {
            tracing::debug!(node, claimed = out.len(), "contacts claimed");
        }
        Ok(out)
    }

    async fn claim_campaign(
        &self,
        campaign: i64,
        consent_required: bool,
        node: &str,
        now_ms: i64,
        until: i64,
        limit: usize,
    ) -> Result<Vec<ClaimedContact>> {
        let consent = if consent_required {
            "AND consent_at IS NOT NULL"
        } else {
            ""
        };
        let lock = match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        // A materialised CTE picks the rows once (on PostgreSQL an `IN (subquery … SKIP
        // LOCKED)` may be re-evaluated and return more than LIMIT rows).
        let sql = format!(
            "WITH picked AS MATERIALIZED ( \
                 SELECT id AS pick_id FROM contacts \
                 WHERE campaign_id = $4 AND state = 'pending' AND next_attempt_at <= $3 \
                   AND phone_e164 IS NOT NULL {consent} \
                   AND NOT EXISTS (SELECT 1 FROM suppression s WHERE s.phone_hmac = contacts.phone_hmac) \
                 ORDER BY priority DESC, next_attempt_at, id \
                 LIMIT $5 {lock}) \
             UPDATE contacts SET state = 'in_progress', lease_owner = $1, lease_until = $2, \
                 updated_at = $3 \
             FROM picked WHERE contacts.id = picked.pick_id AND contacts.state = 'pending' \
             RETURNING id, campaign_id, phone_e164, phone_hmac, name, timezone, language, \
                 attributes, attempts, priority, last_outcome, next_attempt_at, last_attempt_at, \
                 consent_at, lease_until"
        );
        let _guard = self.write_guard().await;
        let rows = sqlx::query(&sql)
            .bind(node)
            .bind(until)
            .bind(now_ms)
            .bind(campaign)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(claimed_from_row).collect()
    }

    /// Extends `node`'s leases on `ids` to `until_ms`; returns the ids still held (a missing
    /// id was lost: released, recovered by another node, or finished — do not dial it).
    pub async fn renew_leases(
        &self,
        node: &str,
        ids: &[ContactId],
        until_ms: i64,
    ) -> Result<Vec<ContactId>> {
        let mut held = Vec::with_capacity(ids.len());
        let _guard = self.write_guard().await;
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let mut sql = self.sql();
            sql.push("UPDATE contacts SET lease_until = ")
                .param()
                .push(" WHERE state = 'in_progress' AND lease_owner = ")
                .param()
                .push(" AND id IN (")
                .params(chunk.len())
                .push(") RETURNING id");
            let mut q = sqlx::query_scalar::<_, i64>(sql.as_str())
                .bind(until_ms)
                .bind(node);
            for id in chunk {
                q = q.bind(id.0);
            }
            held.extend(q.fetch_all(&self.pool).await?.into_iter().map(ContactId));
        }
        Ok(held)
    }

    /// Gives contacts back without an attempt (outside the calling window, campaign paused,
    /// node shutting down): `pending` again, lease cleared, due at `next_attempt_at_ms` if
    /// given (else unchanged). Only `node`'s own leases are touched; returns how many.
    pub async fn release_contacts(
        &self,
        node: &str,
        ids: &[ContactId],
        next_attempt_at_ms: Option<i64>,
    ) -> Result<u64> {
        let mut released = 0;
        let _guard = self.write_guard().await;
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let mut sql = self.sql();
            sql.push(
                "UPDATE contacts SET state = 'pending', lease_owner = NULL, lease_until = NULL, \
                 next_attempt_at = COALESCE(",
            )
            .param()
            .push(", next_attempt_at), updated_at = ")
            .param()
            .push(" WHERE state = 'in_progress' AND lease_owner = ")
            .param()
            .push(" AND id IN (")
            .params(chunk.len())
            .push(")");
            let mut q = sqlx::query(sql.as_str())
                .bind(next_attempt_at_ms)
                .bind(crate::wall_ms())
                .bind(node);
            for id in chunk {
                q = q.bind(id.0);
            }
            released += q.execute(&self.pool).await?.rows_affected();
        }
        Ok(released)
    }

    /// The crash-recovery path, run periodically by every node: for each `in_progress`
    /// contact whose lease expired before `now_ms`, its `dialling` attempts become
    /// `interrupted` (outcome `interrupted`, ended now), and the contact goes back to
    /// `pending` with its lease cleared. For contacts that had an attempt, `retry` (the
    /// campaign's retry policy) decides when it is due again or that it is done — applied in
    /// the same transaction, so no other node can claim it in between. Contacts that were
    /// claimed but never dialled are simply released (due as before).
    ///
    /// Returns the interrupted attempts with the decision taken. On PostgreSQL concurrent
    /// callers split the work (`SKIP LOCKED`).
    pub async fn release_expired_leases<F>(
        &self,
        now_ms: i64,
        retry: F,
    ) -> Result<Vec<InterruptedAttempt>>
    where
        F: FnMut(&InterruptedAttempt) -> Next + Send,
    {
        self.recover(Expired::Before, now_ms, retry).await
    }

    /// [`Store::release_expired_leases`] for every lease of `node`, expired or not: run by a
    /// node at start, before it claims anything, to recover what it held when it died.
    pub async fn recover_node<F>(
        &self,
        node: &str,
        now_ms: i64,
        retry: F,
    ) -> Result<Vec<InterruptedAttempt>>
    where
        F: FnMut(&InterruptedAttempt) -> Next + Send,
    {
        self.recover(Expired::Node(node), now_ms, retry).await
    }

    async fn recover<F>(
        &self,
        which: Expired<'_>,
        now_ms: i64,
        mut retry: F,
    ) -> Result<Vec<InterruptedAttempt>>
    where
        F: FnMut(&InterruptedAttempt) -> Next + Send,
    {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let mut w = self.write_tx().await?;
        let contacts: Vec<(i64, i64)> = match which {
            Expired::Before => {
                sqlx::query_as(&format!(
                    "SELECT id, attempts FROM contacts \
                     WHERE state = 'in_progress' AND lease_until <= $1 ORDER BY id{lock}"
                ))
                .bind(now_ms)
                .fetch_all(&mut *w.tx)
                .await?
            }
            Expired::Node(node) => {
                sqlx::query_as(&format!(
                    "SELECT id, attempts FROM contacts \
                     WHERE state = 'in_progress' AND lease_owner = $1 ORDER BY id{lock}"
                ))
                .bind(node)
                .fetch_all(&mut *w.tx)
                .await?
            }
        };
        if contacts.is_empty() {
            w.commit().await?;
            return Ok(Vec::new());
        }
        let mut interrupted = Vec::new();
        let mut with_attempt = std::collections::HashSet::new();
        let attempts_of: std::collections::HashMap<i64, i64> = contacts.iter().copied().collect();
        for chunk in contacts.chunks(IDS_PER_STATEMENT) {
            let mut sql = self.sql();
            sql.push(
                "UPDATE attempts SET state = 'interrupted', outcome = 'interrupted', ended_at = ",
            )
            .param()
            .push(" WHERE state = 'dialling' AND contact_id IN (")
            .params(chunk.len())
            .push(") RETURNING id, contact_id, campaign_id, node, trunk, started_at");
            let mut q = sqlx::query(sql.as_str()).bind(now_ms);
            for (id, _) in chunk {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&mut *w.tx).await? {
                let contact_id: i64 = row.try_get("contact_id")?;
                with_attempt.insert(contact_id);
                interrupted.push(InterruptedAttempt {
                    attempt_id: AttemptId(row.try_get("id")?),
                    contact_id: ContactId(contact_id),
                    campaign_id: CampaignId(row.try_get("campaign_id")?),
                    node: row.try_get("node")?,
                    trunk: row.try_get("trunk")?,
                    started_at_ms: row.try_get("started_at")?,
                    attempts: attempts_of.get(&contact_id).copied().unwrap_or(0),
                    next: Next::RetryAt(now_ms),
                });
            }
        }
        interrupted.sort_by_key(|a| a.attempt_id);
        // A contact has at most one dialling attempt; if there were several, the last decides.
        for a in &mut interrupted {
            a.next = retry(a);
            let (state, next_at) = match a.next {
                Next::RetryAt(t) => ("pending", Some(t)),
                Next::Done => ("done", None),
            };
            sqlx::query(
                "UPDATE contacts SET state = $1, next_attempt_at = COALESCE($2, next_attempt_at), \
                 lease_owner = NULL, lease_until = NULL, last_outcome = 'interrupted', \
                 updated_at = $3 WHERE id = $4 AND state = 'in_progress'",
            )
            .bind(state)
            .bind(next_at)
            .bind(now_ms)
            .bind(a.contact_id.0)
            .execute(&mut *w.tx)
            .await?;
        }
        let plain: Vec<i64> = contacts
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !with_attempt.contains(id))
            .collect();
        for chunk in plain.chunks(IDS_PER_STATEMENT) {
            let mut sql = self.sql();
            sql.push(
                "UPDATE contacts SET state = 'pending', lease_owner = NULL, lease_until = NULL, \
                 updated_at = ",
            )
            .param()
            .push(" WHERE state = 'in_progress' AND id IN (")
            .params(chunk.len())
            .push(")");
            let mut q = sqlx::query(sql.as_str()).bind(now_ms);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *w.tx).await?;
        }
        w.commit().await?;
        if !interrupted.is_empty() || !plain.is_empty() {
            tracing::info!(
                interrupted = interrupted.len(),
                released = plain.len(),
                "expired leases recovered"
            );
        }
        Ok(interrupted)
    }
}
