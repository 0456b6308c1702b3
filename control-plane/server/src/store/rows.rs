//! Rows the lifecycle writes, as lists of values, so that one statement can insert many of them
//! (see `lc_insert_rows` in `sql_lifecycle.rs`). Column lists and row builders live together here so
//! they cannot drift apart.

use chrono::{DateTime, Utc};

use super::{NewGrant, RequestRecord, SyncedResource};

/// One value to bind.
#[derive(Debug, Clone)]
pub enum SqlValue {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Time(DateTime<Utc>),
    OptTime(Option<DateTime<Utc>>),
}

/// A table and its columns, in the order its rows list values.
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [&'static str],
}

pub const REQUESTS: Table = Table {
    name: "access_requests",
    columns: &[
        "id",
        "requester",
        "state",
        "items",
        "requested_duration_secs",
        "duration_secs",
        "justification",
        "outcome",
        "decision",
        "digest",
        "created_at",
        "updated_at",
        "pending_expires_at",
        "activated_at",
        "expires_at",
        "end_reason",
    ],
};

pub const GRANTS: Table = Table {
    name: "grants",
    columns: &[
        "id",
        "request_id",
        "identity",
        "integration",
        "resource_id",
        "resource_type",
        "permission",
        "flow_name",
        "flow_version",
        "state",
        "desired",
        "observed",
        "generation",
        "duration_secs",
        "created_at",
        "updated_at",
        "started_at",
        "expires_at",
        "end_reason",
    ],
};

pub const COMMANDS: Table = Table {
    name: "commands",
    columns: &[
        "id",
        "grant_id",
        "integration",
        "kind",
        "generation",
        "priority",
        "payload",
        "created_at",
    ],
};

/// Resources as a sync writes them (the lifecycle's `replace_resources` writes one at a time).
pub const RESOURCES: Table = Table {
    name: "resources",
    columns: &[
        "id",
        "integration",
        "resource_type",
        "name",
        "parent",
        "ancestors",
        "tags",
        "owners",
        "source",
        "first_seen",
        "last_seen",
        "digest",
    ],
};

pub const IDENTITIES: Table = Table {
    name: "integration_identities",
    columns: &["integration", "external_id", "email", "display_name"],
};

pub const GROUPS: Table = Table {
    name: "integration_groups",
    columns: &["integration", "external_id", "display_name"],
};

pub const GROUP_MEMBERS: Table = Table {
    name: "integration_group_members",
    columns: &["integration", "group_id", "identity_id"],
};

/// A synced resource's row; its source is its integration.
pub fn synced_resource_row(
    integration: &str,
    resource: &SyncedResource,
    ancestors: &[String],
    digest: &str,
    first_seen: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<SqlValue> {
    use SqlValue::*;
    vec![
        Text(resource.id.clone()),
        Text(integration.to_owned()),
        Text(resource.resource_type.clone()),
        Text(resource.name.clone()),
        OptText(resource.parent.clone()),
        Text(serde_json::to_string(ancestors).unwrap_or_default()),
        Text(serde_json::to_string(&resource.tags).unwrap_or_default()),
        Text(serde_json::to_string(&resource.owners).unwrap_or_default()),
        Text(integration.to_owned()),
        Time(first_seen),
        Time(now),
        Text(digest.to_owned()),
    ]
}

/// The digest of what a sync says about a resource (type, name, parent, tags, owners): equal
/// digests mean there is nothing to write. Ancestors are left out: they follow from the parents
/// and are kept up to date when a parent moves.
///
/// The fields go into the hash as they are, each string after its length and each list after its
/// count, so no two different resources feed it the same bytes. (Serializing to JSON first cost
/// more than the hash itself, and a resync digests every resource.)
pub fn resource_digest(resource: &SyncedResource) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    let mut text = |value: &str| {
        hash.update((value.len() as u64).to_le_bytes());
        hash.update(value.as_bytes());
    };
    text(&resource.resource_type);
    text(&resource.name);
    match &resource.parent {
        Some(parent) => {
            text("1");
            text(parent);
        }
        None => text("0"),
    }
    text(&resource.tags.len().to_string());
    for (key, value) in &resource.tags {
        text(key);
        text(value);
    }
    text(&resource.owners.len().to_string());
    for owner in &resource.owners {
        text(owner);
    }
    hex::encode(hash.finalize())
}

pub fn request_row(request: &RequestRecord) -> Vec<SqlValue> {
    use SqlValue::*;
    vec![
        Text(request.id.clone()),
        Text(request.requester.clone()),
        Text(request.state.as_str().to_owned()),
        Text(serde_json::to_string(&request.items).unwrap_or_default()),
        OptInt(request.requested_duration_secs),
        OptInt(request.duration_secs),
        Text(request.justification.clone()),
        Text(request.outcome.clone()),
        Text(request.decision.clone()),
        Text(request.digest.clone()),
        Time(request.created_at),
        Time(request.updated_at),
        OptTime(request.pending_expires_at),
        OptTime(request.activated_at),
        OptTime(request.expires_at),
        OptText(request.end_reason.clone()),
    ]
}

/// A new grant: active at once when the access is already `present`, otherwise granting.
pub fn grant_row(
    id: &str,
    request_id: Option<&str>,
    grant: &NewGrant,
    present: bool,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<SqlValue> {
    use SqlValue::*;
    vec![
        Text(id.to_owned()),
        OptText(request_id.map(str::to_owned)),
        Text(grant.identity.clone()),
        Text(grant.integration.clone()),
        Text(grant.resource_id.clone()),
        Text(grant.resource_type.clone()),
        Text(grant.permission.clone()),
        Text(grant.flow.name.clone()),
        Int(i64::from(grant.flow.version)),
        Text(if present { "active" } else { "granting" }.to_owned()),
        Text("present".to_owned()),
        Text(if present { "present" } else { "unknown" }.to_owned()),
        Int(1),
        OptInt(grant.duration_secs),
        Time(now),
        Time(now),
        OptTime(present.then_some(now)),
        OptTime(expires_at),
        OptText(None),
    ]
}

/// A command for `grant`; the payload is what the connector acts on.
pub fn command_row(
    grant_id: &str,
    grant: &NewGrant,
    kind: &str,
    generation: i64,
    now: DateTime<Utc>,
) -> Vec<SqlValue> {
    use SqlValue::*;
    let id = uuid::Uuid::now_v7().to_string();
    let payload = serde_json::json!({
        "command_id": id,
        "kind": kind,
        "grant_id": grant_id,
        "generation": generation,
        "identity": grant.identity,
        "integration": grant.integration,
        "resource_id": grant.resource_id,
        "resource_type": grant.resource_type,
        "permission": grant.permission,
        "duration_secs": grant.duration_secs,
    });
    // Revokes go ahead of grants in every queue.
    let priority = if kind == "revoke" { 0 } else { 1 };
    vec![
        Text(id),
        Text(grant_id.to_owned()),
        Text(grant.integration.clone()),
        Text(kind.to_owned()),
        Int(generation),
        Int(priority),
        Text(payload.to_string()),
        Time(now),
    ]
}

/// `INSERT INTO table (columns) VALUES (...), (...)` for `rows` rows, with numbered placeholders.
pub fn insert_sql(table: &Table, rows: usize) -> String {
    let width = table.columns.len();
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let cells: Vec<String> = (1..=width)
                .map(|col| format!("${}", row * width + col))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO {} ({}) VALUES {}",
        table.name,
        table.columns.join(", "),
        values.join(", ")
    )
}

/// How many rows of `table` fit in one statement, under both backends' limits on bound values.
pub fn rows_per_statement(table: &Table) -> usize {
    rows_within(table, 4000)
}

/// How many rows of `table` fit in `binds` bound values (at least one).
pub fn rows_within(table: &Table, binds: usize) -> usize {
    (binds / table.columns.len()).max(1)
}

/// Bound values per statement for bulk statements. On SQLite these are written with anonymous
/// placeholders (see [`anonymous_placeholders`]), so their size costs nothing extra there.
pub const BULK_BINDS: usize = 4000;

/// `sql` with each numbered placeholder (`$1`, `$2`, ...) turned into an anonymous one (`?`), for
/// SQLite. Only for statements whose placeholders appear once each, in order.
///
/// Binding a statement's `$N` parameters costs sqlx quadratic time on SQLite: it asks SQLite for
/// each parameter's name, and SQLite finds a name by scanning the list of all of them. A
/// 4000-value insert spent most of its time there (1000 resources: 107 ms in 333-row statements,
/// 45 ms in 20-row ones). Anonymous parameters have no names to scan.
pub fn anonymous_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn placeholders_number_across_rows() {
        let sql = insert_sql(&COMMANDS, 2);
        assert!(sql.starts_with("INSERT INTO commands (id, grant_id, integration, kind, generation, priority, payload, created_at) VALUES ($1, $2"));
        assert!(
            sql.ends_with("($9, $10, $11, $12, $13, $14, $15, $16)"),
            "{sql}"
        );
    }

    #[test]
    fn numbered_placeholders_become_anonymous() {
        assert_eq!(
            anonymous_placeholders("INSERT INTO t (a, b) VALUES ($1, $2), ($3, $10) -- $x"),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) -- $x"
        );
    }

    #[test]
    fn rows_match_their_columns() {
        let grant = NewGrant {
            identity: "a@x".into(),
            integration: "i".into(),
            resource_id: "r".into(),
            resource_type: "t".into(),
            permission: "p".into(),
            flow: latch_core::decide::FlowRef {
                name: "f".into(),
                version: 1,
            },
            duration_secs: Some(60),
        };
        let now = Utc::now();
        assert_eq!(
            grant_row("g", None, &grant, false, None, now).len(),
            GRANTS.columns.len()
        );
        assert_eq!(
            command_row("g", &grant, "grant", 1, now).len(),
            COMMANDS.columns.len()
        );
    }

    #[test]
    fn resource_digests_tell_apart_what_a_sync_says_and_ignore_the_id() {
        let base = SyncedResource {
            id: "r1".into(),
            resource_type: "t".into(),
            name: "ab".into(),
            parent: None,
            tags: BTreeMap::from([("env".into(), "prod".into())]),
            owners: vec!["a@example.com".into()],
            digest: None,
        };
        let digest = resource_digest(&base);
        // A connector's digest is taken as it is, without the store's.
        let reported = SyncedResource {
            digest: Some("abc".into()),
            ..base.clone()
        };
        assert_eq!(reported.digest(), "abc");
        assert_eq!(base.digest(), digest);
        assert_eq!(digest.len(), 64);
        let same_but_id = SyncedResource {
            id: "r2".into(),
            ..base.clone()
        };
        assert_eq!(resource_digest(&same_but_id), digest);
        let variants = [
            // The same bytes split differently between fields.
            SyncedResource {
                resource_type: "ta".into(),
                name: "b".into(),
                ..base.clone()
            },
            SyncedResource {
                parent: Some(String::new()),
                ..base.clone()
            },
            SyncedResource {
                tags: BTreeMap::from([("env".into(), "prod".into()), ("x".into(), String::new())]),
                ..base.clone()
            },
            SyncedResource {
                tags: BTreeMap::from([("envp".into(), "rod".into())]),
                ..base.clone()
            },
            SyncedResource {
                owners: vec![],
                ..base.clone()
            },
        ];
        for variant in variants {
            assert_ne!(resource_digest(&variant), digest, "{variant:?}");
        }
    }
}
