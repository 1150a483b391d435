//! `dialer.v1.ComplianceService`: consent, opt-out and erasure, suppression checks, audit.

use store::import::{PhoneNormaliser, PhoneTypeFilter};
use store::{AuditAction, AuditFilter, ConsentSource, ContactId, EraseTarget, NewConsent};
use tonic::{Request, Response, Status};

use crate::auth::Caller;
use crate::pb::compliance_service_server::ComplianceService;
use crate::pb::opt_out_request::Target;
use crate::{Ctx, Shared, invalid, now_ms, pb, store_status, unary};

pub(crate) struct Compliance(pub(crate) Ctx);

/// The number in E.164, normalised with `region` (else the server's default, else UA).
fn normalise(ctx: &Shared, field: &str, raw: &str, region: &str) -> Result<String, Status> {
    let region = Some(region.trim())
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .or_else(|| ctx.ctx.default_region.clone())
        .unwrap_or_else(|| "UA".to_string());
    let mut n =
        PhoneNormaliser::new(&region, PhoneTypeFilter::Any).map_err(|e| invalid("region", e))?;
    if raw.trim().is_empty() {
        return Err(invalid(field, "required"));
    }
    n.normalise(raw)
        .map(|p| p.e164)
        .map_err(|e| invalid(field, e))
}

/// Deletes the recording files an erasure returned (those on this node's disk); returns how
/// many are gone.
async fn delete_recordings(paths: Vec<std::path::PathBuf>) -> u64 {
    let mut gone = 0;
    for p in paths {
        match tokio::fs::remove_file(&p).await {
            Ok(()) => gone += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => gone += 1,
            Err(e) => tracing::warn!(error = %e, "could not delete an erased recording"),
        }
    }
    gone
}

impl Compliance {
    async fn erase(
        &self,
        target: EraseTarget,
        actor: &str,
        reason: &str,
    ) -> Result<pb::OptOutResponse, Status> {
        let ctx = &self.0.ctx;
        let reason = if reason.trim().is_empty() {
            "api request"
        } else {
            reason.trim()
        };
        let r = ctx
            .store
            .suppress_and_erase(&target, &ctx.hmac_key, actor, reason)
            .await
            .map_err(store_status)?;
        let deleted = delete_recordings(r.recordings).await;
        tracing::info!(
            contacts = r.contacts_erased,
            recordings = deleted,
            actor,
            "opt-out: number suppressed and contacts erased"
        );
        Ok(pb::OptOutResponse {
            phone_hmac: r.phone_hmac,
            contacts_erased: r.contacts_erased,
            contact_ids: r.contact_ids.into_iter().map(|c| c.0).collect(),
            recordings_deleted: deleted,
        })
    }
}

#[tonic::async_trait]
impl ComplianceService for Compliance {
    async fn record_consent(
        &self,
        request: Request<pb::RecordConsentRequest>,
    ) -> Result<Response<pb::RecordConsentResponse>, Status> {
        let actor = Caller::of(&request);
        let req = request.into_inner();
        unary(&self.0, async {
            if req.contact_id <= 0 {
                return Err(invalid("contact_id", "required (a positive contact id)"));
            }
            let source: ConsentSource =
                req.source.trim().parse().map_err(|_| {
                    invalid("source", "one of web_form, paper_form, sms, phone_call")
                })?;
            if req.text_version.trim().is_empty() || req.text_version.chars().count() > 64 {
                return Err(invalid("text_version", "required, at most 64 characters"));
            }
            let now = now_ms();
            let given_at_ms = match req.given_at_ms {
                0 => now,
                t if t < 0 || t > now + 5 * 60 * 1000 => {
                    return Err(invalid("given_at_ms", "not a time up to now (unix ms)"));
                }
                t => t,
            };
            let consent = NewConsent {
                source,
                given_at_ms,
                text_version: req.text_version.trim().to_string(),
                evidence: Some(req.evidence.trim().to_string()).filter(|e| !e.is_empty()),
            };
            let id = self
                .0
                .ctx
                .store
                .record_consent(ContactId(req.contact_id), &consent, &actor)
                .await
                .map_err(store_status)?;
            Ok(pb::RecordConsentResponse { consent_id: id })
        })
        .await
    }

    async fn opt_out(
        &self,
        request: Request<pb::OptOutRequest>,
    ) -> Result<Response<pb::OptOutResponse>, Status> {
        let actor = Caller::of(&request);
        let req = request.into_inner();
        unary(&self.0, async {
            let target = match req.target {
                Some(Target::Phone(p)) => {
                    EraseTarget::Phone(normalise(&self.0, "phone", &p, &req.region)?)
                }
                Some(Target::ContactId(id)) if id > 0 => EraseTarget::Contact(ContactId(id)),
                Some(Target::ContactId(_)) => {
                    return Err(invalid("contact_id", "must be a positive contact id"));
                }
                None => return Err(invalid("target", "required: phone or contact_id")),
            };
            self.erase(target, &actor, &req.reason).await
        })
        .await
    }

    async fn erase_contact(
        &self,
        request: Request<pb::EraseContactRequest>,
    ) -> Result<Response<pb::OptOutResponse>, Status> {
        let actor = Caller::of(&request);
        let req = request.into_inner();
        unary(&self.0, async {
            if req.contact_id <= 0 {
                return Err(invalid("contact_id", "required (a positive contact id)"));
            }
            self.erase(
                EraseTarget::Contact(ContactId(req.contact_id)),
                &actor,
                &req.reason,
            )
            .await
        })
        .await
    }

    async fn check_number(
        &self,
        request: Request<pb::CheckNumberRequest>,
    ) -> Result<Response<pb::CheckNumberResponse>, Status> {
        let req = request.into_inner();
        unary(&self.0, async {
            let e164 = normalise(&self.0, "phone", &req.phone, &req.region)?;
            let ctx = &self.0.ctx;
            let hmac = store::phone_hmac(&ctx.hmac_key, &e164);
            let suppressed = ctx.store.is_suppressed(&hmac).await.map_err(store_status)?;
            let record = ctx.store.number_record(&hmac).await.map_err(store_status)?;
            Ok(pb::CheckNumberResponse {
                e164,
                phone_hmac: hmac,
                suppressed,
                consent_on_record: record.live_consents > 0,
                contacts: record.contacts,
            })
        })
        .await
    }

    async fn query_audit(
        &self,
        request: Request<pb::QueryAuditRequest>,
    ) -> Result<Response<pb::QueryAuditResponse>, Status> {
        let req = request.into_inner();
        unary(&self.0, async {
            let limit = match req.limit {
                0 => 100,
                n if n > 10_000 => return Err(invalid("limit", "at most 10000")),
                n => n,
            };
            if req.after_id < 0 {
                return Err(invalid("after_id", "must not be negative"));
            }
            let filter = AuditFilter {
                action: Some(req.action.trim())
                    .filter(|a| !a.is_empty())
                    .map(AuditAction::parse),
                subject: Some(req.subject.trim().to_string()).filter(|s| !s.is_empty()),
                after_id: (req.after_id > 0).then_some(req.after_id),
                since_ms: (req.since_ms > 0).then_some(req.since_ms),
            };
            let entries = self
                .0
                .ctx
                .store
                .audit_log(&filter, limit)
                .await
                .map_err(store_status)?;
            Ok(pb::QueryAuditResponse {
                entries: entries
                    .into_iter()
                    .map(|e| pb::AuditEntry {
                        id: e.id,
                        at_ms: e.at_ms,
                        actor: e.actor,
                        action: e.action.as_str().to_string(),
                        subject: e.subject,
                        details_json: e.details.to_string(),
                    })
                    .collect(),
            })
        })
        .await
    }
}
