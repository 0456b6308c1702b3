-- Access flows: every version is kept; `access_flow_heads` points at the current one.
CREATE TABLE access_flows (
    name        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    spec        TEXT    NOT NULL, -- canonical JSON of latch_core::flow::FlowSpec
    digest      TEXT    NOT NULL, -- SHA-256 of `spec`, hex
    applied_at  TEXT    NOT NULL,
    applied_by  TEXT    NOT NULL,
    PRIMARY KEY (name, version)
) STRICT;

CREATE TABLE access_flow_heads (
    name            TEXT    NOT NULL PRIMARY KEY,
    current_version INTEGER NOT NULL,
    deleted_at      TEXT,
    deleted_by      TEXT
) STRICT;

-- API tokens: only a SHA-256 of the secret is stored.
CREATE TABLE api_tokens (
    id           TEXT    NOT NULL PRIMARY KEY, -- UUIDv7, so ids sort by creation time
    user_email   TEXT    NOT NULL,
    is_admin     INTEGER NOT NULL,
    description  TEXT    NOT NULL,
    secret_hash  TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    expires_at   TEXT,
    revoked_at   TEXT,
    created_by   TEXT    NOT NULL
) STRICT;

-- Audit log: append-only, hash-chained. `audit_head` holds the chain's tip; updating it in the same
-- transaction as the event serialises writers, so the chain never forks.
CREATE TABLE audit_events (
    seq        INTEGER NOT NULL PRIMARY KEY,
    at         TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    details    TEXT    NOT NULL, -- JSON
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
) STRICT;

CREATE TABLE audit_head (
    singleton INTEGER NOT NULL PRIMARY KEY CHECK (singleton = 1),
    seq       INTEGER NOT NULL,
    hash      TEXT    NOT NULL
) STRICT;

INSERT INTO audit_head (singleton, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
