//! Nodes: heartbeats, and the attempt counts the scheduler's caps need.

use crate::{CampaignId, ContactId, Result, Store};

/// How many attempts a number has had, for the scheduler's caps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptCounts {
    /// Attempts of this contact (this campaign) started at or after `day_start_ms`.
    pub today: i64,
    /// Attempts of the number (every campaign, by HMAC) started at or after `across_since_ms`.
    pub across: i64,
    /// The oldest of those, unix ms.
    pub across_oldest_ms: Option<i64>,
}

impl Store {
    /// Records that `node` is alive at `now_ms` and returns how many nodes sent a heartbeat
    /// within `alive_ms` (this one included): the divisor of trunk limits.
    pub async fn heartbeat(&self, node: &str, now_ms: i64, alive_ms: i64) -> Result<u32> {
        {
            let _guard = self.write_guard().await;
            sqlx::query(
                "INSERT INTO nodes (name, started_at, heartbeat_at) VALUES ($1, $2, $2) \
                 ON CONFLICT (name) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            )
            .bind(node)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        }
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM nodes WHERE heartbeat_at >= $1")
            .bind(now_ms - alive_ms)
            .fetch_one(&self.pool)
            .await?;
        Ok(u32::try_from(n.max(1)).unwrap_or(u32::MAX))
    }

    /// A node that stops cleanly leaves at once (its share goes to the others).
    pub async fn leave(&self, node: &str) -> Result<()> {
        let _guard = self.write_guard().await;
        sqlx::query("DELETE FROM nodes WHERE name = $1")
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Attempt counts of a contact for the caps: today's in its campaign, and the number's
    /// across every campaign since `across_since_ms`.
    pub async fn attempt_counts(
        &self,
        contact: ContactId,
        campaign: CampaignId,
        phone_hmac: &str,
        day_start_ms: i64,
        across_since_ms: i64,
    ) -> Result<AttemptCounts> {
        let today: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM attempts WHERE contact_id = $1 AND campaign_id = $2 \
             AND started_at >= $3",
        )
        .bind(contact.0)
        .bind(campaign.0)
        .bind(day_start_ms)
        .fetch_one(&self.pool)
        .await?;
        let (across, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(a.started_at) FROM attempts a \
             JOIN contacts c ON c.id = a.contact_id \
             WHERE c.phone_hmac = $1 AND a.started_at >= $2",
        )
        .bind(phone_hmac)
        .bind(across_since_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(AttemptCounts {
            today,
            across,
            across_oldest_ms: oldest,
        })
    }
}
