//! Read-only queries for the control plane: report KPIs, live calls, what is on record for a
//! number. Nothing here writes.

use sqlx::Row;

use crate::{CampaignId, Result, Store};

/// Outcomes of calls a person answered (not a machine): an answer (`answered`, with a
/// category) or an answered call where no answer came (`no_input`).
const HUMAN_OUTCOMES: &str = "('answered', 'no_input')";

/// Contact-level and call-level figures behind a campaign report's KPIs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportFigures {
    /// Contacts with at least one attempt.
    pub dialled_contacts: i64,
    /// Contacts with a result a person answered (outcome `answered` or `no_input`).
    pub reached_contacts: i64,
    /// Contacts whose answer was `manager_call`.
    pub manager_call_contacts: i64,
    /// Contacts whose answer was `opt_out`.
    pub opt_out_contacts: i64,
    /// Results a person answered.
    pub answered_calls: i64,
    /// Of those, results with a duration, and their summed duration (ms).
    pub answered_timed: i64,
    /// Summed talk time of answered calls, ms.
    pub answered_talk_ms: i64,
    /// Answered results with an answer (a category).
    pub answers: i64,
    /// Of those, results with a recognised transcript.
    pub answers_with_transcript: i64,
}

/// What is on record for one number (by HMAC), over every campaign.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberRecord {
    /// Consents not withdrawn.
    pub live_consents: i64,
    /// Contacts with the number that are not erased.
    pub contacts: i64,
}

impl Store {
    /// The figures behind a campaign report's KPIs (reach rate, conversion, opt-out rate,
    /// average handle time, ASR coverage).
    pub async fn report_figures(&self, campaign: CampaignId) -> Result<ReportFigures> {
        let dialled: i64 = sqlx::query_scalar(
            "SELECT COUNT(DISTINCT contact_id) FROM attempts WHERE campaign_id = $1",
        )
        .bind(campaign.0)
        .fetch_one(&self.pool)
        .await?;
        let row = sqlx::query(&format!(
            "SELECT \
               COUNT(DISTINCT CASE WHEN outcome IN {HUMAN_OUTCOMES} THEN contact_id END) AS reached, \
               COUNT(DISTINCT CASE WHEN category = 'manager_call' THEN contact_id END) AS manager, \
               COUNT(DISTINCT CASE WHEN category = 'opt_out' THEN contact_id END) AS opt_out, \
               COALESCE(CAST(SUM(CASE WHEN outcome IN {HUMAN_OUTCOMES} THEN 1 ELSE 0 END) AS BIGINT), 0) AS answered, \
               COALESCE(CAST(SUM(CASE WHEN outcome IN {HUMAN_OUTCOMES} AND duration_ms IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT), 0) AS timed, \
               COALESCE(CAST(SUM(CASE WHEN outcome IN {HUMAN_OUTCOMES} THEN duration_ms ELSE 0 END) AS BIGINT), 0) AS talk_ms, \
               COALESCE(CAST(SUM(CASE WHEN outcome = 'answered' AND category IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT), 0) AS answers, \
               COALESCE(CAST(SUM(CASE WHEN outcome = 'answered' AND category IS NOT NULL AND transcript IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT), 0) AS transcribed \
             FROM results WHERE campaign_id = $1"
        ))
        .bind(campaign.0)
        .fetch_one(&self.pool)
        .await?;
        Ok(ReportFigures {
            dialled_contacts: dialled,
            reached_contacts: row.try_get("reached")?,
            manager_call_contacts: row.try_get("manager")?,
            opt_out_contacts: row.try_get("opt_out")?,
            answered_calls: row.try_get("answered")?,
            answered_timed: row.try_get("timed")?,
            answered_talk_ms: row.try_get("talk_ms")?,
            answers: row.try_get("answers")?,
            answers_with_transcript: row.try_get("transcribed")?,
        })
    }

    /// Attempts dialling right now (calls in progress on every node); `campaign` None: all.
    pub async fn live_attempts(&self, campaign: Option<CampaignId>) -> Result<i64> {
        Ok(match campaign {
            Some(c) => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM attempts WHERE campaign_id = $1 AND state = 'dialling'",
                )
                .bind(c.0)
                .fetch_one(&self.pool)
                .await?
            }
            None => {
                sqlx::query_scalar("SELECT COUNT(*) FROM attempts WHERE state = 'dialling'")
                    .fetch_one(&self.pool)
                    .await?
            }
        })
    }

    /// Live consents and contacts (not erased) of a number, by its HMAC, over every campaign.
    pub async fn number_record(&self, phone_hmac: &str) -> Result<NumberRecord> {
        let live_consents: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM consents WHERE phone_hmac = $1 AND withdrawn_at IS NULL",
        )
        .bind(phone_hmac)
        .fetch_one(&self.pool)
        .await?;
        let contacts: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM contacts WHERE phone_hmac = $1 AND state <> 'erased'",
        )
        .bind(phone_hmac)
        .fetch_one(&self.pool)
        .await?;
        Ok(NumberRecord {
            live_consents,
            contacts,
        })
    }
}
