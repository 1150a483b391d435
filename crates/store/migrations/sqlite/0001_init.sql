-- Dialer store schema, SQLite flavour. Keep it column-for-column equal to
-- ../postgres/0001_init.sql: the Rust code runs the same statements on both.
-- Timestamps are unix milliseconds UTC (INTEGER). JSON is stored as TEXT.

CREATE TABLE campaigns (
    id               INTEGER PRIMARY KEY,
    name             TEXT    NOT NULL,
    script_path      TEXT    NOT NULL,
    script_version   TEXT    NOT NULL,
    settings         TEXT    NOT NULL DEFAULT '{}',
    consent_required INTEGER NOT NULL DEFAULT 1 CHECK (consent_required IN (0, 1)),
    state            TEXT    NOT NULL DEFAULT 'draft'
                     CHECK (state IN ('draft', 'running', 'paused', 'stopped', 'finished')),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX campaigns_state ON campaigns (state);

CREATE TABLE contacts (
    id              INTEGER PRIMARY KEY,
    campaign_id     INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    phone_e164      TEXT,                       -- NULL once erased
    phone_hmac      TEXT    NOT NULL,           -- HMAC-SHA256(key, phone_e164), hex
    name            TEXT,
    timezone        TEXT,
    language        TEXT,
    attributes      TEXT    NOT NULL DEFAULT '{}',
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'in_progress', 'done', 'suppressed', 'erased')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_attempt_at INTEGER,
    priority        INTEGER NOT NULL DEFAULT 0,
    last_outcome    TEXT,
    consent_at      INTEGER,                    -- newest live consent; NULL: none on record
    lease_owner     TEXT,
    lease_until     INTEGER,
    erased_at       INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (campaign_id, phone_e164)
);
-- claim_due: due contacts of one campaign, best priority first.
CREATE INDEX contacts_due ON contacts (campaign_id, priority DESC, next_attempt_at, id) WHERE state = 'pending';
-- release_expired_leases / recover_node.
CREATE INDEX contacts_lease ON contacts (lease_until) WHERE state = 'in_progress';
-- erasure and cross-campaign caps by number.
CREATE INDEX contacts_hmac ON contacts (phone_hmac);
-- per-state counts for reports.
CREATE INDEX contacts_campaign_state ON contacts (campaign_id, state);

CREATE TABLE consents (
    id           INTEGER PRIMARY KEY,
    contact_id   INTEGER REFERENCES contacts (id) ON DELETE SET NULL,
    campaign_id  INTEGER REFERENCES campaigns (id) ON DELETE SET NULL,
    phone_hmac   TEXT    NOT NULL,
    source       TEXT    NOT NULL CHECK (source IN ('web_form', 'paper_form', 'sms', 'phone_call')),
    given_at     INTEGER NOT NULL,
    text_version TEXT    NOT NULL,
    evidence     TEXT,                          -- recording path / form reference; NULL once erased
    withdrawn_at INTEGER,
    created_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX consents_dedup ON consents (contact_id, source, given_at, text_version);
CREATE INDEX consents_hmac ON consents (phone_hmac);

CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY,
    contact_id  INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    node        TEXT    NOT NULL,
    trunk       TEXT,
    state       TEXT    NOT NULL DEFAULT 'dialling'
                CHECK (state IN ('dialling', 'finished', 'interrupted')),
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    outcome     TEXT,
    sip_status  INTEGER
);
CREATE INDEX attempts_contact ON attempts (contact_id, started_at);
CREATE INDEX attempts_campaign ON attempts (campaign_id, state);
CREATE INDEX attempts_dialling ON attempts (node) WHERE state = 'dialling';

-- Gap-free, commit-ordered sequence for the result stream: the row is updated as the last
-- statement of finish_attempt's transaction, so its lock serialises seq assignment with commit.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('results', 0);

CREATE TABLE results (
    id             INTEGER PRIMARY KEY,
    seq            INTEGER NOT NULL UNIQUE,
    attempt_id     INTEGER NOT NULL UNIQUE REFERENCES attempts (id) ON DELETE CASCADE,
    contact_id     INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    campaign_id    INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    category       TEXT,
    outcome        TEXT    NOT NULL,
    dtmf           TEXT,
    transcript     TEXT,
    follow_up      TEXT,
    confidence     REAL CHECK (confidence IS NULL OR (confidence >= 0 AND confidence <= 1)),
    amd            TEXT,
    sip_status     INTEGER,
    setup_ms       INTEGER,
    duration_ms    INTEGER,
    script_version TEXT,
    recording_path TEXT,
    details        TEXT,
    created_at     INTEGER NOT NULL
);
CREATE INDEX results_campaign_seq ON results (campaign_id, seq);
CREATE INDEX results_campaign_category ON results (campaign_id, category, outcome);
CREATE INDEX results_contact ON results (contact_id);
CREATE INDEX results_recordings ON results (created_at) WHERE recording_path IS NOT NULL;

CREATE TABLE suppression (
    phone_hmac TEXT PRIMARY KEY,
    reason     TEXT,
    created_at INTEGER NOT NULL
);

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    subject TEXT    NOT NULL,               -- hmac:… or ids; never a raw number
    details TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_subject ON audit_log (subject, id);
CREATE INDEX audit_log_at ON audit_log (at);
