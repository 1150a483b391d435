-- Nodes that run campaigns on this store, with their last heartbeat (unix ms UTC).
-- A trunk's calls-per-second and channel limits are split among the nodes alive now, so the
-- limits hold across nodes without a round trip per call.
CREATE TABLE nodes (
    name         TEXT    PRIMARY KEY,
    started_at   BIGINT  NOT NULL,
    heartbeat_at BIGINT  NOT NULL
);
-- Caps: attempts of one contact since a time (this campaign's daily cap).
CREATE INDEX attempts_started ON attempts (started_at);
