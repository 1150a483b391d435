//! Campaigns: create, read, list, change state or settings.

use std::str::FromStr;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Campaign, CampaignId, CampaignState, NewCampaign, Result, Store, StoreError, wall_ms};

const COLUMNS: &str = "id, name, script_path, script_version, settings, consent_required, state, \
                       created_at, updated_at";

pub(crate) fn parse_enum<T: FromStr>(text: &str, what: &str) -> Result<T> {
    text.parse::<T>()
        .map_err(|_| StoreError::Corrupt(format!("unknown {what} {text:?}")))
}

pub(crate) fn parse_json(text: &str, what: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn campaign_from_row(row: &AnyRow) -> Result<Campaign> {
    Ok(Campaign {
        id: CampaignId(row.try_get("id")?),
        name: row.try_get("name")?,
        script_path: row.try_get("script_path")?,
        script_version: row.try_get("script_version")?,
        settings: parse_json(&row.try_get::<String, _>("settings")?, "campaign settings")?,
        consent_required: row.try_get::<i64, _>("consent_required")? != 0,
        state: parse_enum(&row.try_get::<String, _>("state")?, "campaign state")?,
        created_at_ms: row.try_get("created_at")?,
        updated_at_ms: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Creates a campaign in state `draft`.
    pub async fn create_campaign(&self, new: &NewCampaign) -> Result<CampaignId> {
        let now = wall_ms();
        let settings = serde_json::to_string(&new.settings)
            .map_err(|e| StoreError::Invalid(format!("campaign settings: {e}")))?;
        let _guard = self.write_guard().await;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO campaigns (name, script_path, script_version, settings, consent_required, \
             state, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'draft', $6, $6) RETURNING id",
        )
        .bind(&new.name)
        .bind(&new.script_path)
        .bind(&new.script_version)
        .bind(settings)
        .bind(i64::from(new.consent_required))
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        tracing::info!(campaign = id, name = %new.name, "campaign created");
        Ok(CampaignId(id))
    }

    /// One campaign, or None.
    pub async fn get_campaign(&self, id: CampaignId) -> Result<Option<Campaign>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM campaigns WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(campaign_from_row).transpose()
    }

    /// All campaigns, oldest first.
    pub async fn list_campaigns(&self) -> Result<Vec<Campaign>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM campaigns ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(campaign_from_row).collect()
    }

    /// Sets a campaign's state; returns the previous one. Takes effect for the next
    /// `claim_due` (contacts already claimed stay with their node until released or finished).
    pub async fn set_campaign_state(
        &self,
        id: CampaignId,
        state: CampaignState,
    ) -> Result<CampaignState> {
        let mut w = self.write_tx().await?;
        let prev: Option<String> = sqlx::query_scalar("SELECT state FROM campaigns WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&mut *w.tx)
            .await?;
        let prev = prev.ok_or(StoreError::NotFound {
            what: "campaign",
            id: id.0,
        })?;
        sqlx::query("UPDATE campaigns SET state = $1, updated_at = $2 WHERE id = $3")
            .bind(state.as_str())
            .bind(wall_ms())
            .bind(id.0)
            .execute(&mut *w.tx)
            .await?;
        w.commit().await?;
        let prev: CampaignState = parse_enum(&prev, "campaign state")?;
        tracing::info!(campaign = id.0, from = %prev, to = %state, "campaign state");
        Ok(prev)
    }

    /// Sets the state only if it is still `from` (compare-and-set, so two operators or nodes
    /// acting at once cannot both pass a transition check). True when it changed.
    pub async fn set_campaign_state_if(
        &self,
        id: CampaignId,
        from: CampaignState,
        to: CampaignState,
    ) -> Result<bool> {
        let _guard = self.write_guard().await;
        let done = sqlx::query(
            "UPDATE campaigns SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4",
        )
        .bind(to.as_str())
        .bind(wall_ms())
        .bind(id.0)
        .bind(from.as_str())
        .execute(&self.pool)
        .await?;
        let changed = done.rows_affected() == 1;
        if changed {
            tracing::info!(campaign = id.0, %from, %to, "campaign state");
        }
        Ok(changed)
    }

    /// Replaces a campaign's settings JSON.
    pub async fn update_campaign_settings(
        &self,
        id: CampaignId,
        settings: &serde_json::Value,
    ) -> Result<()> {
        let text = serde_json::to_string(settings)
            .map_err(|e| StoreError::Invalid(format!("campaign settings: {e}")))?;
        let _guard = self.write_guard().await;
        let done = sqlx::query("UPDATE campaigns SET settings = $1, updated_at = $2 WHERE id = $3")
            .bind(text)
            .bind(wall_ms())
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "campaign",
                id: id.0,
            });
        }
        Ok(())
    }
}
