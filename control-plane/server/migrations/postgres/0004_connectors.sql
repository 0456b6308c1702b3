-- Connectors: the agents in customers' networks, each enrolled once with a one-time token and
-- identified afterwards by its client certificate.
CREATE TABLE connectors (
    id              TEXT NOT NULL PRIMARY KEY, -- UUID, also in the certificate's URI SAN
    name            TEXT NOT NULL UNIQUE,
    state           TEXT NOT NULL,             -- pending | enrolled | revoked
    version         TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    created_by      TEXT NOT NULL,
    enrolled_at     TIMESTAMPTZ,
    revoked_at      TIMESTAMPTZ,
    last_seen       TIMESTAMPTZ,
    connected_until TIMESTAMPTZ,               -- connected while this is ahead of now
    cert_not_after  TIMESTAMPTZ
);

-- One-time enrollment tokens, by the SHA-256 of their secret: the secret itself is never stored.
CREATE TABLE enrollment_tokens (
    token_hash   TEXT NOT NULL PRIMARY KEY,
    connector_id TEXT NOT NULL REFERENCES connectors (id),
    expires_at   TIMESTAMPTZ NOT NULL,
    used_at      TIMESTAMPTZ
);
CREATE INDEX enrollment_tokens_by_connector ON enrollment_tokens (connector_id);

-- Integrations as connectors announce them, with their owners and the state of their syncs.
CREATE TABLE integrations (
    name              TEXT NOT NULL PRIMARY KEY,
    kind              TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    last_sync_at      TIMESTAMPTZ,
    last_error        TEXT,
    owner_users       TEXT NOT NULL DEFAULT '[]', -- JSON array of lowercase emails
    owner_groups      TEXT NOT NULL DEFAULT '[]', -- JSON array of group names
    sync_requested_at TIMESTAMPTZ,
    sync_command_id   TEXT                        -- a sync asked for and not yet taken
);

-- Which connector serves which integration, with what it can do there.
CREATE TABLE integration_connectors (
    integration  TEXT NOT NULL REFERENCES integrations (name),
    connector_id TEXT NOT NULL REFERENCES connectors (id),
    capabilities TEXT NOT NULL, -- JSON array, sorted
    PRIMARY KEY (integration, connector_id)
);
CREATE INDEX integration_connectors_by_connector ON integration_connectors (connector_id);

-- The identities an integration's last completed sync reported.
CREATE TABLE integration_identities (
    integration  TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    email        TEXT NOT NULL, -- lowercase; empty when unknown
    display_name TEXT NOT NULL,
    PRIMARY KEY (integration, external_id)
);

-- What can be granted on each resource type of an integration, as last synced.
CREATE TABLE resource_type_permissions (
    integration   TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    permissions   TEXT NOT NULL, -- JSON array
    PRIMARY KEY (integration, resource_type)
);

-- A hash of a synced resource's type, name, parent, tags and owners: a resync skips rows whose
-- digest did not change. NULL for rows written by `latch resources apply`.
ALTER TABLE resources ADD COLUMN digest TEXT;
-- Children by parent: when a resource's ancestors change, its descendants' change with them.
CREATE INDEX resources_by_parent ON resources (parent);
-- A source's rows: what a full sync did not see is deleted, and `latch resources apply` replaces
-- the static ones.
CREATE INDEX resources_by_source ON resources (source, id);

-- Delivery of commands to connectors: who holds a command and until when, how often it was
-- tried, and when it may be tried again.
ALTER TABLE commands ADD COLUMN claimed_by TEXT;
ALTER TABLE commands ADD COLUMN claim_until TIMESTAMPTZ;
ALTER TABLE commands ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE commands ADD COLUMN next_attempt_at TIMESTAMPTZ;
ALTER TABLE commands ADD COLUMN last_error TEXT;
-- Claiming: the open commands of a connector's integrations, revokes first, oldest first.
CREATE INDEX commands_claimable ON commands (integration, priority, seq) WHERE completed_at IS NULL;
-- A connector's claims, to extend or release them.
CREATE INDEX commands_by_claimer ON commands (claimed_by) WHERE claimed_by IS NOT NULL;
