-- Inventory: resources access can be granted on. `source` says who keeps the row: `static` (the
-- document `latch resources apply` replaces) or a connector's integration sync.
CREATE TABLE resources (
    id            TEXT NOT NULL PRIMARY KEY,
    integration   TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    name          TEXT NOT NULL,
    parent        TEXT,
    ancestors     TEXT NOT NULL, -- JSON array of ids, parent first
    tags          TEXT NOT NULL, -- JSON object
    owners        TEXT NOT NULL, -- JSON array of emails
    source        TEXT NOT NULL,
    first_seen    TEXT NOT NULL,
    last_seen     TEXT NOT NULL
) STRICT;
CREATE INDEX resources_by_integration ON resources (integration, id);

-- Access requests, with the decision record and the digest approvals are bound to.
CREATE TABLE access_requests (
    id                      TEXT    NOT NULL PRIMARY KEY, -- UUIDv7: ids sort by creation time
    requester               TEXT    NOT NULL,             -- lowercased email
    state                   TEXT    NOT NULL,
    items                   TEXT    NOT NULL,             -- JSON array of {resource_id, permission}
    requested_duration_secs INTEGER,
    duration_secs           INTEGER,
    justification           TEXT    NOT NULL,
    outcome                 TEXT    NOT NULL,
    decision                TEXT    NOT NULL,             -- JSON of latch_core::decide::Decision
    digest                  TEXT    NOT NULL,
    created_at              TEXT    NOT NULL,
    updated_at              TEXT    NOT NULL,
    pending_expires_at      TEXT,
    activated_at            TEXT,
    expires_at              TEXT,
    end_reason              TEXT
) STRICT;
CREATE INDEX access_requests_by_requester ON access_requests (requester, id);
CREATE INDEX access_requests_by_state ON access_requests (state, id);
-- The expiry sweeper's indexes: what is due is found by time in the database, never by a timer
-- that exists only in memory.
CREATE INDEX access_requests_expiry ON access_requests (state, expires_at);
CREATE INDEX access_requests_pending_expiry ON access_requests (state, pending_expires_at);

-- Approvals and denials, one per approver per request, bound to the digest they were given for.
CREATE TABLE approvals (
    request_id     TEXT NOT NULL REFERENCES access_requests (id),
    approver       TEXT NOT NULL,
    verdict        TEXT NOT NULL, -- approve | deny
    reason         TEXT NOT NULL,
    request_digest TEXT NOT NULL,
    at             TEXT NOT NULL,
    PRIMARY KEY (request_id, approver)
) STRICT;

-- Grants: one (identity, resource, permission) each, from a request or from an automatic flow.
CREATE TABLE grants (
    id            TEXT    NOT NULL PRIMARY KEY,
    request_id    TEXT    REFERENCES access_requests (id), -- NULL for automatic flows
    identity      TEXT    NOT NULL,
    integration   TEXT    NOT NULL,
    resource_id   TEXT    NOT NULL,
    resource_type TEXT    NOT NULL,
    permission    TEXT    NOT NULL,
    flow_name     TEXT    NOT NULL,
    flow_version  INTEGER NOT NULL,
    state         TEXT    NOT NULL, -- granting | active | revoking | expired | revoked | failed
    desired       TEXT    NOT NULL, -- present | absent
    observed      TEXT    NOT NULL, -- unknown | present | absent
    generation    INTEGER NOT NULL,
    duration_secs INTEGER,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    started_at    TEXT,
    expires_at    TEXT,
    end_reason    TEXT
) STRICT;
CREATE INDEX grants_by_holding ON grants (identity, resource_id, permission);
CREATE INDEX grants_by_request ON grants (request_id, state);

-- The outbox: commands for connectors, written in the transaction that caused them. Revokes have
-- priority 0 and go ahead of grants (priority 1).
CREATE TABLE commands (
    seq          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    grant_id     TEXT    NOT NULL REFERENCES grants (id),
    integration  TEXT    NOT NULL,
    kind         TEXT    NOT NULL, -- grant | revoke
    generation   INTEGER NOT NULL,
    priority     INTEGER NOT NULL,
    payload      TEXT    NOT NULL, -- JSON
    created_at   TEXT    NOT NULL,
    completed_at TEXT,
    result       TEXT
) STRICT;
CREATE INDEX commands_open ON commands (priority, seq) WHERE completed_at IS NULL;
CREATE INDEX commands_by_grant ON commands (grant_id);

-- Named locks for work one server at a time does (the reconciler), taken with a row lock.
CREATE TABLE leases (
    name TEXT NOT NULL PRIMARY KEY
) STRICT;
INSERT INTO leases (name) VALUES ('reconcile');

-- Counters that grow with every change of something servers cache (flows, inventory), so a server knows
-- its copy is stale with one cheap read.
CREATE TABLE epochs (
    name  TEXT   NOT NULL PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO epochs (name, value) VALUES ('flows', 0), ('resources', 0);
