-- The groups an integration's last completed sync reported (Identity Store groups, say), replaced
-- with its identities by every completed sync.
CREATE TABLE integration_groups (
    integration  TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    display_name TEXT NOT NULL,
    PRIMARY KEY (integration, external_id)
);

-- Which of those identities are direct members of which of those groups.
CREATE TABLE integration_group_members (
    integration TEXT NOT NULL,
    group_id    TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    PRIMARY KEY (integration, group_id, identity_id),
    FOREIGN KEY (integration, group_id) REFERENCES integration_groups (integration, external_id),
    FOREIGN KEY (integration, identity_id) REFERENCES integration_identities (integration, external_id)
);

-- The identities' side of the foreign key: deleting identities checks it.
CREATE INDEX integration_group_members_by_identity
    ON integration_group_members (integration, identity_id);
