//! Row types, ids and the small enums stored as text.
//!
//! `Debug` of every type that carries personal data (phone number, name, attributes, transcript,
//! follow-up, digits, recording path) prints `<redacted>` in their place, so `{:?}` in a log
//! line at any level leaks nothing.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::StoreError;

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A campaign's id.
    CampaignId
);
id_type!(
    /// A contact's id (one row per number per campaign).
    ContactId
);
id_type!(
    /// An attempt's id (one dial of one contact).
    AttemptId
);
id_type!(
    /// A result row's id.
    ResultId
);

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vm])* $var),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The text stored in the database (snake_case).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$var => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = StoreError;

            fn from_str(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($text => Ok($name::$var),)+
                    other => Err(StoreError::Invalid(format!(
                        concat!("unknown ", stringify!($name), " {:?} (expected one of: {})"),
                        other,
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }
    };
}

text_enum!(
    /// A campaign's life cycle. Only `running` campaigns have contacts claimed.
    CampaignState {
        /// Created, not started.
        Draft = "draft",
        /// Contacts are claimed and dialled.
        Running = "running",
        /// Temporarily halted; resumes to `running`.
        Paused = "paused",
        /// Halted by the operator.
        Stopped = "stopped",
        /// Every contact is done.
        Finished = "finished",
    }
);

text_enum!(
    /// Where a contact stands.
    ContactState {
        /// Waiting for `next_attempt_at`; claimable when due.
        Pending = "pending",
        /// Claimed by a node (`lease_owner`) until `lease_until`.
        InProgress = "in_progress",
        /// No more calls in this campaign.
        Done = "done",
        /// Refused by the suppression list (kept for counts).
        Suppressed = "suppressed",
        /// Opted out: personal data erased, only the HMAC remains.
        Erased = "erased",
    }
);

text_enum!(
    /// An attempt's state.
    AttemptState {
        /// Written before the INVITE leaves; the call may be live.
        Dialling = "dialling",
        /// Ended normally (whatever the outcome).
        Finished = "finished",
        /// Its node died (lease expired) while it was dialling.
        Interrupted = "interrupted",
    }
);

text_enum!(
    /// How a consent was given.
    ConsentSource {
        /// A web form.
        WebForm = "web_form",
        /// A signed paper form.
        PaperForm = "paper_form",
        /// An SMS reply.
        Sms = "sms",
        /// Said on a phone call (kept as a recording).
        PhoneCall = "phone_call",
    }
);

/// Audit-log actions. `Other` carries any action the engine adds later.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditAction {
    /// A consent was recorded.
    Consent,
    /// A consent was withdrawn.
    ConsentWithdrawn,
    /// A number was put on the suppression list.
    OptOut,
    /// A contact's personal data was erased.
    Erase,
    /// A recording passed its retention period and was forgotten.
    RetentionDelete,
    /// Anything else (stored as given).
    Other(String),
}

impl AuditAction {
    /// The text stored in the database.
    pub fn as_str(&self) -> &str {
        match self {
            AuditAction::Consent => "consent",
            AuditAction::ConsentWithdrawn => "consent_withdrawn",
            AuditAction::OptOut => "opt_out",
            AuditAction::Erase => "erase",
            AuditAction::RetentionDelete => "retention_delete",
            AuditAction::Other(s) => s,
        }
    }

    /// Parses stored text; unknown text becomes `Other`.
    pub fn parse(s: &str) -> AuditAction {
        match s {
            "consent" => AuditAction::Consent,
            "consent_withdrawn" => AuditAction::ConsentWithdrawn,
            "opt_out" => AuditAction::OptOut,
            "erase" => AuditAction::Erase,
            "retention_delete" => AuditAction::RetentionDelete,
            other => AuditAction::Other(other.to_string()),
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Debug helper: `Some(<redacted>)` / `None`.
pub(crate) struct Redacted<'a, T>(pub &'a Option<T>);

impl<T> fmt::Debug for Redacted<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Some(<redacted>)"),
            None => f.write_str("None"),
        }
    }
}

/// Debug helper for a map: its keys, values redacted.
pub(crate) struct RedactedMap<'a>(pub &'a BTreeMap<String, String>);

impl fmt::Debug for RedactedMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

const REDACTED: &str = "<redacted>";

/// A campaign to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCampaign {
    /// Operator-facing name.
    pub name: String,
    /// The dialogue script's path.
    pub script_path: String,
    /// The script's version (e.g. its content hash) the campaign was started with.
    pub script_version: String,
    /// Settings as JSON (calling windows, retry policy, pacing, language, default region,
    /// consent mode, manager URI); the engine owns its shape.
    pub settings: serde_json::Value,
    /// The consent gate: when true (the default for real campaigns) a contact without a live
    /// consent record is never claimed. False only for a campaign whose script collects consent.
    pub consent_required: bool,
}

/// A stored campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    /// Id.
    pub id: CampaignId,
    /// Operator-facing name.
    pub name: String,
    /// The dialogue script's path.
    pub script_path: String,
    /// The script's version.
    pub script_version: String,
    /// Settings JSON.
    pub settings: serde_json::Value,
    /// The consent gate (see [`NewCampaign::consent_required`]).
    pub consent_required: bool,
    /// Life-cycle state.
    pub state: CampaignState,
    /// Creation time, unix ms UTC.
    pub created_at_ms: i64,
    /// Last change, unix ms UTC.
    pub updated_at_ms: i64,
}

/// A consent to record with a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsent {
    /// How it was given.
    pub source: ConsentSource,
    /// When, unix ms UTC.
    pub given_at_ms: i64,
    /// The version of the consent text the person agreed to.
    pub text_version: String,
    /// Evidence: for `phone_call` the recording's path (erased with the contact); for forms a
    /// reference to the form.
    pub evidence: Option<String>,
}

/// A stored consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// Row id.
    pub id: i64,
    /// The contact (None when it was deleted).
    pub contact_id: Option<ContactId>,
    /// HMAC of the number (kept after erasure).
    pub phone_hmac: String,
    /// How it was given.
    pub source: ConsentSource,
    /// When, unix ms UTC.
    pub given_at_ms: i64,
    /// Consent text version.
    pub text_version: String,
    /// Evidence (None after erasure).
    pub evidence: Option<String>,
    /// When withdrawn (opt-out or explicit withdrawal).
    pub withdrawn_at_ms: Option<i64>,
}

/// A contact to import.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NewContact {
    /// E.164 number (`+` and 8..=15 digits), already normalised.
    pub phone_e164: String,
    /// Name, if known.
    pub name: Option<String>,
    /// IANA time zone (None: the campaign's default).
    pub timezone: Option<String>,
    /// Language code (None: the campaign's default).
    pub language: Option<String>,
    /// Free attributes (CRM id, segment…); merged into an existing contact's.
    pub attributes: BTreeMap<String, String>,
    /// A consent that came with the import row.
    pub consent: Option<NewConsent>,
}

impl fmt::Debug for NewContact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewContact")
            .field("phone_e164", &REDACTED)
            .field("name", &Redacted(&self.name))
            .field("timezone", &self.timezone)
            .field("language", &self.language)
            .field("attributes", &RedactedMap(&self.attributes))
            .field("consent", &self.consent)
            .finish()
    }
}

/// What one `insert_contacts` call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertReport {
    /// New contacts created.
    pub inserted: u64,
    /// Rows that matched an existing contact of this campaign (or an earlier row of the same
    /// call): name/time zone/language filled in, attributes merged, id kept.
    pub merged: u64,
    /// Indexes (into the slice passed) refused because the number is on the suppression list.
    pub suppressed: Vec<usize>,
    /// Consent records written.
    pub consents: u64,
}

/// A stored contact.
#[derive(Clone, PartialEq, Eq)]
pub struct Contact {
    /// Id.
    pub id: ContactId,
    /// Campaign.
    pub campaign_id: CampaignId,
    /// E.164 number (None after erasure).
    pub phone_e164: Option<String>,
    /// HMAC-SHA256 of the number (hex).
    pub phone_hmac: String,
    /// Name (None after erasure).
    pub name: Option<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
    /// Language code.
    pub language: Option<String>,
    /// Attributes (empty after erasure).
    pub attributes: BTreeMap<String, String>,
    /// State.
    pub state: ContactState,
    /// Attempts started so far.
    pub attempts: i64,
    /// When it is next due, unix ms.
    pub next_attempt_at_ms: i64,
    /// When the last attempt started.
    pub last_attempt_at_ms: Option<i64>,
    /// Higher is dialled first.
    pub priority: i64,
    /// Category or system outcome of the last finished attempt.
    pub last_outcome: Option<String>,
    /// Time of the newest live consent (None: no consent on record).
    pub consent_at_ms: Option<i64>,
    /// Node holding the lease.
    pub lease_owner: Option<String>,
    /// Lease expiry, unix ms.
    pub lease_until_ms: Option<i64>,
}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contact")
            .field("id", &self.id)
            .field("campaign_id", &self.campaign_id)
            .field("phone_e164", &Redacted(&self.phone_e164))
            .field("phone_hmac", &self.phone_hmac)
            .field("name", &Redacted(&self.name))
            .field("timezone", &self.timezone)
            .field("language", &self.language)
            .field("attributes", &RedactedMap(&self.attributes))
            .field("state", &self.state)
            .field("attempts", &self.attempts)
            .field("next_attempt_at_ms", &self.next_attempt_at_ms)
            .field("last_attempt_at_ms", &self.last_attempt_at_ms)
            .field("priority", &self.priority)
            .field("last_outcome", &self.last_outcome)
            .field("consent_at_ms", &self.consent_at_ms)
            .field("lease_owner", &self.lease_owner)
            .field("lease_until_ms", &self.lease_until_ms)
            .finish()
    }
}

/// Which campaigns `claim_due` draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimScope {
    /// One campaign (nothing is claimed unless it is `running`).
    Campaign(CampaignId),
    /// Every `running` campaign, the limit shared fairly between them.
    AllRunning,
}

/// A contact claimed by a node: everything the scheduler and the call need.
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimedContact {
    /// Id.
    pub id: ContactId,
    /// Campaign.
    pub campaign_id: CampaignId,
    /// E.164 number to dial.
    pub phone_e164: String,
    /// HMAC of the number (for cross-campaign caps).
    pub phone_hmac: String,
    /// Name.
    pub name: Option<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
    /// Language code.
    pub language: Option<String>,
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
    /// Attempts started before this claim.
    pub attempts: i64,
    /// Priority.
    pub priority: i64,
    /// Last outcome.
    pub last_outcome: Option<String>,
    /// When it was due.
    pub next_attempt_at_ms: i64,
    /// When its last attempt started.
    pub last_attempt_at_ms: Option<i64>,
    /// Newest live consent.
    pub consent_at_ms: Option<i64>,
    /// The lease this node now holds.
    pub lease_until_ms: i64,
}

impl fmt::Debug for ClaimedContact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimedContact")
            .field("id", &self.id)
            .field("campaign_id", &self.campaign_id)
            .field("phone_e164", &REDACTED)
            .field("phone_hmac", &self.phone_hmac)
            .field("name", &Redacted(&self.name))
            .field("timezone", &self.timezone)
            .field("language", &self.language)
            .field("attributes", &RedactedMap(&self.attributes))
            .field("attempts", &self.attempts)
            .field("priority", &self.priority)
            .field("last_outcome", &self.last_outcome)
            .field("next_attempt_at_ms", &self.next_attempt_at_ms)
            .field("last_attempt_at_ms", &self.last_attempt_at_ms)
            .field("consent_at_ms", &self.consent_at_ms)
            .field("lease_until_ms", &self.lease_until_ms)
            .finish()
    }
}

/// What happens to a contact after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Back to `pending`, due at this time (unix ms).
    RetryAt(i64),
    /// No more calls in this campaign.
    Done,
}

/// An attempt found dialling on a node whose lease expired (or on a node being recovered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterruptedAttempt {
    /// The attempt, now `interrupted`.
    pub attempt_id: AttemptId,
    /// Its contact.
    pub contact_id: ContactId,
    /// Its campaign.
    pub campaign_id: CampaignId,
    /// The node that was dialling.
    pub node: String,
    /// The trunk it went out on.
    pub trunk: Option<String>,
    /// When it started.
    pub started_at_ms: i64,
    /// The contact's attempt count (this one included).
    pub attempts: i64,
    /// What the retry policy decided (applied in the same transaction).
    pub next: Next,
}

/// A result to store with a finished attempt.
#[derive(Clone, Default, PartialEq)]
pub struct NewResult {
    /// Script category (`manager_call`, `opt_out`…), None for system outcomes.
    pub category: Option<String>,
    /// Outcome (`answered`, `busy`, `no_answer`, …).
    pub outcome: String,
    /// Digits keyed.
    pub dtmf: Option<String>,
    /// What the callee said (recognised text).
    pub transcript: Option<String>,
    /// Follow-up for the CRM (e.g. feedback text, e-mail request).
    pub follow_up: Option<String>,
    /// Classifier confidence, 0..=1.
    pub confidence: Option<f64>,
    /// AMD verdict (`human`, `machine`, `not_sure`).
    pub amd: Option<String>,
    /// Final SIP status.
    pub sip_status: Option<i64>,
    /// INVITE to answer (or final response), ms.
    pub setup_ms: Option<i64>,
    /// Answer to hang-up, ms.
    pub duration_ms: Option<i64>,
    /// The script version that ran.
    pub script_version: Option<String>,
    /// Recording file, if any.
    pub recording_path: Option<String>,
    /// Anything else, as JSON (erased with the contact).
    pub details: Option<serde_json::Value>,
}

impl fmt::Debug for NewResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewResult")
            .field("category", &self.category)
            .field("outcome", &self.outcome)
            .field("dtmf", &Redacted(&self.dtmf))
            .field("transcript", &Redacted(&self.transcript))
            .field("follow_up", &Redacted(&self.follow_up))
            .field("confidence", &self.confidence)
            .field("amd", &self.amd)
            .field("sip_status", &self.sip_status)
            .field("setup_ms", &self.setup_ms)
            .field("duration_ms", &self.duration_ms)
            .field("script_version", &self.script_version)
            .field("recording_path", &Redacted(&self.recording_path))
            .field("details", &Redacted(&self.details))
            .finish()
    }
}

/// How an attempt ended (see [`crate::Store::finish_attempt`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptEnd {
    /// When it ended, unix ms.
    pub now_ms: i64,
    /// System outcome (`answered`, `busy`, `no_answer`, `failed`, …).
    pub outcome: String,
    /// Final SIP status, if a response came.
    pub sip_status: Option<i64>,
    /// The result row, when there is one to publish.
    pub result: Option<NewResult>,
    /// What happens to the contact.
    pub next: Next,
}

/// What `finish_attempt` did.
#[derive(Clone, PartialEq, Eq)]
pub struct FinishReport {
    /// The result's id and stream sequence, when a result was stored.
    pub result: Option<(ResultId, i64)>,
    /// False when the contact was no longer this node's (taken over after an expired lease,
    /// erased, or already done): the attempt and result are stored, the contact is left alone.
    pub contact_updated: bool,
    /// The contact was erased meanwhile: personal fields of the result were not stored, and the
    /// recording (if one was given) must be deleted by the caller.
    pub erased_recording: Option<PathBuf>,
}

impl fmt::Debug for FinishReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FinishReport")
            .field("result", &self.result)
            .field("contact_updated", &self.contact_updated)
            .field("erased_recording", &Redacted(&self.erased_recording))
            .finish()
    }
}

/// A stored result, as streamed to clients.
#[derive(Clone, PartialEq)]
pub struct StoredResult {
    /// Row id.
    pub id: ResultId,
    /// Stream sequence: strictly increasing in commit order, resumable cursor.
    pub seq: i64,
    /// Attempt.
    pub attempt_id: AttemptId,
    /// Contact.
    pub contact_id: ContactId,
    /// Campaign.
    pub campaign_id: CampaignId,
    /// The contact's number, None once erased.
    pub phone_e164: Option<String>,
    /// Category.
    pub category: Option<String>,
    /// Outcome.
    pub outcome: String,
    /// Digits.
    pub dtmf: Option<String>,
    /// Transcript.
    pub transcript: Option<String>,
    /// Follow-up.
    pub follow_up: Option<String>,
    /// Confidence.
    pub confidence: Option<f64>,
    /// AMD verdict.
    pub amd: Option<String>,
    /// SIP status.
    pub sip_status: Option<i64>,
    /// Setup time, ms.
    pub setup_ms: Option<i64>,
    /// Talk time, ms.
    pub duration_ms: Option<i64>,
    /// Script version.
    pub script_version: Option<String>,
    /// Recording file.
    pub recording_path: Option<String>,
    /// Extra JSON.
    pub details: Option<serde_json::Value>,
    /// When stored, unix ms.
    pub created_at_ms: i64,
}

impl fmt::Debug for StoredResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredResult")
            .field("id", &self.id)
            .field("seq", &self.seq)
            .field("attempt_id", &self.attempt_id)
            .field("contact_id", &self.contact_id)
            .field("campaign_id", &self.campaign_id)
            .field("phone_e164", &Redacted(&self.phone_e164))
            .field("category", &self.category)
            .field("outcome", &self.outcome)
            .field("dtmf", &Redacted(&self.dtmf))
            .field("transcript", &Redacted(&self.transcript))
            .field("follow_up", &Redacted(&self.follow_up))
            .field("confidence", &self.confidence)
            .field("amd", &self.amd)
            .field("sip_status", &self.sip_status)
            .field("setup_ms", &self.setup_ms)
            .field("duration_ms", &self.duration_ms)
            .field("script_version", &self.script_version)
            .field("recording_path", &Redacted(&self.recording_path))
            .field("details", &Redacted(&self.details))
            .field("created_at_ms", &self.created_at_ms)
            .finish()
    }
}

/// A stored attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Id.
    pub id: AttemptId,
    /// Contact.
    pub contact_id: ContactId,
    /// Campaign.
    pub campaign_id: CampaignId,
    /// Node that dialled.
    pub node: String,
    /// Trunk used.
    pub trunk: Option<String>,
    /// State.
    pub state: AttemptState,
    /// Start (written before the INVITE), unix ms.
    pub started_at_ms: i64,
    /// End, unix ms.
    pub ended_at_ms: Option<i64>,
    /// Outcome.
    pub outcome: Option<String>,
    /// Final SIP status.
    pub sip_status: Option<i64>,
}

/// Count of results per (category, outcome).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultCount {
    /// Category (None for system outcomes).
    pub category: Option<String>,
    /// Outcome.
    pub outcome: String,
    /// How many.
    pub count: i64,
}

/// Contacts per state in one campaign.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactCounts {
    /// `pending`.
    pub pending: i64,
    /// `in_progress`.
    pub in_progress: i64,
    /// `done`.
    pub done: i64,
    /// `suppressed`.
    pub suppressed: i64,
    /// `erased`.
    pub erased: i64,
}

impl ContactCounts {
    /// All contacts.
    pub fn total(&self) -> i64 {
        self.pending + self.in_progress + self.done + self.suppressed + self.erased
    }
}

/// Attempt totals of one campaign (for calls/hour and average call length).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptStats {
    /// Attempts started.
    pub started: i64,
    /// Finished attempts.
    pub finished: i64,
    /// Interrupted attempts.
    pub interrupted: i64,
    /// Attempts still dialling.
    pub dialling: i64,
    /// Sum of talk time of results with a duration, ms.
    pub talk_ms: i64,
    /// Results with a duration.
    pub talked: i64,
    /// First attempt start.
    pub first_started_at_ms: Option<i64>,
    /// Last attempt end.
    pub last_ended_at_ms: Option<i64>,
}

/// What to erase: a number (suppressed even when no contact has it yet) or a contact (all
/// contacts with its number, in every campaign, are erased).
#[derive(Clone, PartialEq, Eq)]
pub enum EraseTarget {
    /// An E.164 number.
    Phone(String),
    /// A contact id.
    Contact(ContactId),
}

impl fmt::Debug for EraseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EraseTarget::Phone(_) => f.write_str("Phone(<redacted>)"),
            EraseTarget::Contact(id) => f.debug_tuple("Contact").field(id).finish(),
        }
    }
}

/// What `suppress_and_erase` did.
#[derive(Clone, PartialEq, Eq)]
pub struct ErasureReport {
    /// The HMAC now on the suppression list.
    pub phone_hmac: String,
    /// Contacts erased (all campaigns).
    pub contacts_erased: u64,
    /// Their ids.
    pub contact_ids: Vec<ContactId>,
    /// Recording files (results and phone-consent evidence) the caller must delete.
    pub recordings: Vec<PathBuf>,
}

impl fmt::Debug for ErasureReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErasureReport")
            .field("phone_hmac", &self.phone_hmac)
            .field("contacts_erased", &self.contacts_erased)
            .field("contact_ids", &self.contact_ids)
            .field("recordings", &self.recordings.len())
            .finish()
    }
}

/// A recording past its retention period.
#[derive(Clone, PartialEq, Eq)]
pub struct Recording {
    /// The result that references it.
    pub result_id: ResultId,
    /// Campaign.
    pub campaign_id: CampaignId,
    /// Contact.
    pub contact_id: ContactId,
    /// File path.
    pub path: PathBuf,
    /// When the result was stored, unix ms.
    pub created_at_ms: i64,
}

impl fmt::Debug for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recording")
            .field("result_id", &self.result_id)
            .field("campaign_id", &self.campaign_id)
            .field("contact_id", &self.contact_id)
            .field("path", &REDACTED)
            .field("created_at_ms", &self.created_at_ms)
            .finish()
    }
}

/// Filter for [`crate::Store::audit_log`]; all set fields must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this action.
    pub action: Option<AuditAction>,
    /// Only this subject (e.g. `hmac:…`, `contact:42`).
    pub subject: Option<String>,
    /// Only entries with id greater than this (paging).
    pub after_id: Option<i64>,
    /// Only entries at or after this time, unix ms.
    pub since_ms: Option<i64>,
}

/// One audit-log entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Id (increasing).
    pub id: i64,
    /// When, unix ms UTC.
    pub at_ms: i64,
    /// Who: `api:<user>`, `node:<id>`, `import`, `retention`…
    pub actor: String,
    /// What.
    pub action: AuditAction,
    /// About whom: an HMAC (`hmac:…`) or ids (`contact:42`, `result:7`) — never a raw number.
    pub subject: String,
    /// Details JSON.
    pub details: serde_json::Value,
}
