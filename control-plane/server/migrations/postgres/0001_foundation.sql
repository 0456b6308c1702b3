-- Access flows: every version is kept; `access_flow_heads` points at the current one.
CREATE TABLE access_flows (
    name        TEXT        NOT NULL,
    version     BIGINT      NOT NULL,
    spec        TEXT        NOT NULL, -- canonical JSON of latch_core::flow::FlowSpec
    digest      TEXT        NOT NULL, -- SHA-256 of `spec`, hex
    applied_at  TIMESTAMPTZ NOT NULL,
    applied_by  TEXT        NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE access_flow_heads (
    name            TEXT        NOT NULL PRIMARY KEY,
    current_version BIGINT      NOT NULL,
    deleted_at      TIMESTAMPTZ,
    deleted_by      TEXT
);

-- API tokens: only a SHA-256 of the secret is stored.
CREATE TABLE api_tokens (
    id           TEXT        NOT NULL PRIMARY KEY, -- UUIDv7, so ids sort by creation time
    user_email   TEXT        NOT NULL,
    is_admin     BOOLEAN     NOT NULL,
    description  TEXT        NOT NULL,
    secret_hash  TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    created_by   TEXT        NOT NULL
);

-- Audit log: append-only, hash-chained. `audit_head` holds the chain's tip; locking it in the same
-- transaction as the event serialises writers across replicas, so the chain never forks.
CREATE TABLE audit_events (
    seq        BIGINT      NOT NULL PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL,
    actor      TEXT        NOT NULL,
    action     TEXT        NOT NULL,
    subject    TEXT        NOT NULL,
    details    TEXT        NOT NULL, -- JSON
    prev_hash  TEXT        NOT NULL,
    hash       TEXT        NOT NULL
);

CREATE TABLE audit_head (
    singleton INTEGER NOT NULL PRIMARY KEY CHECK (singleton = 1),
    seq       BIGINT  NOT NULL,
    hash      TEXT    NOT NULL
);

INSERT INTO audit_head (singleton, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
