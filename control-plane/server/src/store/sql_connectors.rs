//! The connector half of the store's queries, written once for both backends (see `sql_store.rs`
//! for why one macro).
//!
//! Locks: a connector's row is locked before the commands it claims or releases; commands are
//! locked in the lifecycle's order, request → grant → command (see `sql_lifecycle.rs`). Claiming
//! takes no request or grant lock, and skips commands another server is claiming
//! (`FOR UPDATE SKIP LOCKED`), so a command goes to one connector.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};

use super::{Refusal, SyncedResource};

/// How many ids an audit event lists, at most.
pub(crate) const AUDIT_IDS: usize = 20;

/// `now + wait`, saturating far in the future rather than overflowing.
pub(crate) fn after(now: DateTime<Utc>, wait: std::time::Duration) -> DateTime<Utc> {
    let far = TimeDelta::days(365 * 100);
    let wait = TimeDelta::from_std(wait).unwrap_or(far).min(far);
    now.checked_add_signed(wait).unwrap_or(now)
}

/// When a command that failed its `attempts`-th attempt is tried again: `base`, doubled after each
/// failure before this one.
pub(crate) fn retry_at(
    now: DateTime<Utc>,
    base: std::time::Duration,
    attempts: i64,
) -> DateTime<Utc> {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let wait = base
        .checked_mul(1u32 << doublings)
        .unwrap_or(std::time::Duration::MAX);
    after(now, wait)
}

/// The refusal for a connector id that names no connector.
pub(crate) fn no_connector(id: &str) -> Refusal {
    Refusal::NotFound(format!("no connector with id {id:?}"))
}

/// The first few of `ids`, for an audit event.
pub(crate) fn some_ids<'a>(ids: impl IntoIterator<Item = &'a String>) -> Vec<&'a String> {
    ids.into_iter().take(AUDIT_IDS).collect()
}

/// The ancestors (parent first) of the page's resources marked in `write`. A parent is looked up
/// in the page first, in any order: a rewritten one by its own new ancestors, another by `known`,
/// which holds the stored ancestors of the page's other resources and of parents outside the page.
/// A parent found nowhere is the only ancestor. A cycle is an error naming a resource on it.
pub(crate) fn page_ancestors(
    page: &[SyncedResource],
    write: &[bool],
    known: &HashMap<String, Vec<String>>,
) -> Result<Vec<Option<Vec<String>>>, String> {
    let index: HashMap<&str, usize> = page
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let mut done: Vec<Option<Vec<String>>> = vec![None; page.len()];
    for start in 0..page.len() {
        if !write[start] || done[start].is_some() {
            continue;
        }
        // Walk up through rewritten rows of the page until a chain is known, then fill it in
        // on the way back down.
        let mut path = vec![start];
        let mut on_path = HashSet::from([start]);
        let mut node = start;
        let top = loop {
            let Some(parent) = page[node].parent.as_deref() else {
                break Vec::new();
            };
            let chain = |rest: &[String]| {
                let mut chain = Vec::with_capacity(rest.len() + 1);
                chain.push(parent.to_string());
                chain.extend_from_slice(rest);
                chain
            };
            match index.get(parent) {
                Some(&j) if write[j] => {
                    if let Some(rest) = &done[j] {
                        break chain(rest);
                    }
                    if !on_path.insert(j) {
                        return Err(format!("resource {:?} is its own ancestor", page[j].id));
                    }
                    path.push(j);
                    node = j;
                }
                _ => break chain(known.get(parent).map(Vec::as_slice).unwrap_or_default()),
            }
        };
        // `above`: the ancestors of the node being filled in; the next one down on the path is
        // its child.
        let mut above = top;
        for &i in path.iter().rev() {
            if above.contains(&page[i].id) {
                return Err(format!("resource {:?} is its own ancestor", page[i].id));
            }
            let mut below = Vec::with_capacity(above.len() + 1);
            below.push(page[i].id.clone());
            below.extend_from_slice(&above);
            done[i] = Some(std::mem::replace(&mut above, below));
        }
    }
    Ok(done)
}

/// Implements [`super::ConnectorStore`] for `$store`. Expanded next to `impl_store!` and
/// `impl_lifecycle!`, whose helpers it uses.
macro_rules! impl_connectors {
    ($store:ty, $db:ty, for_update = $for_update:literal,
     for_share = $for_share:literal, skip_locked = $skip_locked:literal,
     anonymous_binds = $anonymous:literal, postgres_planner = $postgres_planner:literal) => {
        impl $store {
            /// Refreshes the planner's statistics of `resources` when much of it changed since
            /// they were taken (PostgreSQL). A first sync fills the table faster than autovacuum
            /// analyzes it; with statistics of an empty table the planner scans instead of using
            /// the indexes, and each page gets slower as the table grows.
            async fn cn_refresh_statistics(&self) {
                if !$postgres_planner {
                    return;
                }
                let stale: Result<Option<bool>, sqlx::Error> = sqlx::query_scalar(
                    "SELECT s.n_mod_since_analyze > GREATEST(1000, c.reltuples / 2) \
                     FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
                     WHERE s.relid = 'resources'::regclass",
                )
                .fetch_optional(&self.pool)
                .await;
                let refreshed = match stale {
                    Ok(Some(true)) => sqlx::query("ANALYZE resources").execute(&self.pool).await.map(|_| ()),
                    Ok(_) => Ok(()),
                    Err(err) => Err(err),
                };
                if let Err(err) = refreshed {
                    tracing::warn!(error = %err, "refreshing the resources table's statistics failed");
                }
            }

            /// Which rows of the page are new (their ids), or changed (their stored ancestors, by
            /// id): (id, digest) pairs go in and only those rows come back, so an unchanged row
            /// costs one primary-key probe. A row synced by another integration, or kept by the
            /// static inventory, refuses the page.
            async fn cn_probe_page(
                conn: &mut <$db as sqlx::Database>::Connection,
                integration: &str,
                pairs: &[(&str, &str)],
            ) -> Result<
                (std::collections::HashSet<String>, std::collections::HashMap<String, String>),
                $crate::store::StoreError,
            > {
                use sqlx::Row;
                use $crate::store::{Refusal, StoreError, rows};
                let invalid = |why: String| StoreError::Refused(Refusal::InvalidArgument(why));
                let mut stored: std::collections::HashMap<String, String> = std::collections::HashMap::new();
                let mut fresh: std::collections::HashSet<String> = std::collections::HashSet::new();
                for chunk in pairs.chunks(rows::BULK_BINDS / 2) {
                    let values: Vec<String> =
                        (0..chunk.len()).map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2)).collect();
                    let n = 2 * chunk.len();
                    let sql = Self::cn_bulk_sql(format!(
                        "SELECT page.column1 AS id, r.id AS stored_id, r.integration AS integration, \
                         r.source AS source, r.ancestors AS ancestors FROM (VALUES {}) AS page \
                         LEFT JOIN resources r ON r.id = page.column1 \
                         WHERE r.id IS NULL OR r.digest IS DISTINCT FROM page.column2 \
                         OR r.integration <> ${} OR r.source <> ${}",
                        values.join(", "),
                        n + 1,
                        n + 2
                    ));
                    // Only placeholders are formatted in; every value is bound. PostgreSQL plans
                    // it for each page's values (an unnamed statement): a plan cached while the
                    // table was nearly empty would scan it once it holds a million rows.
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(!$postgres_planner);
                    for (id, digest) in chunk {
                        query = query.bind(*id).bind(*digest);
                    }
                    query = query.bind(integration).bind(integration);
                    for row in query.fetch_all(&mut *conn).await? {
                        let id: String = row.try_get("id")?;
                        let stored_id: Option<String> = row.try_get("stored_id")?;
                        if stored_id.is_none() {
                            fresh.insert(id);
                            continue;
                        }
                        let owner: String = row.try_get("integration")?;
                        let source: String = row.try_get("source")?;
                        if source != integration || owner != integration {
                            return Err(invalid(if source == $crate::lifecycle::STATIC_SOURCE {
                                format!("resource {id:?} is kept by the static inventory; nothing was stored")
                            } else {
                                format!("resource {id:?} is synced by integration {owner:?}; nothing was stored")
                            }));
                        }
                        stored.insert(id, row.try_get("ancestors")?);
                    }
                }
                Ok((fresh, stored))
            }

            /// How often `resources` was written (`bump_epoch`), to tell whether a read is still
            /// current.
            async fn cn_resources_epoch(
                conn: &mut <$db as sqlx::Database>::Connection,
            ) -> Result<i64, $crate::store::StoreError> {
                Ok(sqlx::query_scalar("SELECT value FROM epochs WHERE name = 'resources'")
                    .fetch_one(&mut *conn)
                    .await?)
            }

            /// The permissions each type of the page offers, as stored (JSON lists).
            fn cn_offered_permissions(
                permissions: &[(String, Vec<String>)],
            ) -> std::collections::BTreeMap<String, String> {
                permissions
                    .iter()
                    .map(|(resource_type, list)| {
                        (resource_type.clone(), serde_json::to_string(list).unwrap_or_default())
                    })
                    .collect()
            }

            /// The types whose offered permissions differ from the stored ones.
            async fn cn_changed_permissions(
                conn: &mut <$db as sqlx::Database>::Connection,
                integration: &str,
                offered: &std::collections::BTreeMap<String, String>,
            ) -> Result<Vec<String>, $crate::store::StoreError> {
                use sqlx::Row;
                if offered.is_empty() {
                    return Ok(Vec::new());
                }
                let current: std::collections::HashMap<String, String> = sqlx::query(
                    "SELECT resource_type, permissions FROM resource_type_permissions WHERE integration = $1",
                )
                .bind(integration)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|row| Ok((row.try_get("resource_type")?, row.try_get("permissions")?)))
                .collect::<Result<_, $crate::store::StoreError>>()?;
                Ok(offered
                    .iter()
                    .filter(|(resource_type, list)| current.get(*resource_type) != Some(*list))
                    .map(|(resource_type, _)| resource_type.clone())
                    .collect())
            }

            /// `sql` as this backend best binds a long list of values: with anonymous placeholders
            /// on SQLite (see `rows::anonymous_placeholders`). Its placeholders must appear once
            /// each, in order.
            fn cn_bulk_sql(sql: String) -> String {
                if $anonymous {
                    $crate::store::rows::anonymous_placeholders(&sql)
                } else {
                    sql
                }
            }

            /// The rows `template` (with `{ids}` where the id list goes) selects for `ids`, in
            /// large statements.
            async fn cn_fetch_for_ids(
                tx: &mut sqlx::Transaction<'static, $db>,
                template: &str,
                ids: &[String],
            ) -> Result<Vec<<$db as sqlx::Database>::Row>, $crate::store::StoreError> {
                Self::lc_fetch_for_ids_with(tx, template, ids, $crate::store::rows::BULK_BINDS, $anonymous).await
            }

            fn cn_connector_from_row(
                row: &<$db as sqlx::Database>::Row,
                integrations: Vec<String>,
            ) -> Result<$crate::store::ConnectorRecord, $crate::store::StoreError> {
                use sqlx::Row;
                let state: String = row.try_get("state")?;
                Ok($crate::store::ConnectorRecord {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    state: $crate::store::ConnectorState::parse(&state)?,
                    version: row.try_get("version")?,
                    created_at: row.try_get("created_at")?,
                    created_by: row.try_get("created_by")?,
                    enrolled_at: row.try_get("enrolled_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                    last_seen: row.try_get("last_seen")?,
                    connected_until: row.try_get("connected_until")?,
                    cert_not_after: row.try_get("cert_not_after")?,
                    integrations,
                })
            }

            /// Connectors (one by id, or every one), ordered by name, with what they announced.
            async fn cn_read_connectors(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: Option<&str>,
            ) -> Result<Vec<$crate::store::ConnectorRecord>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT * FROM connectors WHERE ($1 IS NULL OR id = $1) ORDER BY name")
                    .bind(id)
                    .fetch_all(&mut *conn)
                    .await?;
                let links = sqlx::query(
                    "SELECT connector_id, integration FROM integration_connectors \
                     WHERE ($1 IS NULL OR connector_id = $1) ORDER BY integration",
                )
                .bind(id)
                .fetch_all(&mut *conn)
                .await?;
                let mut served: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
                for link in &links {
                    served
                        .entry(link.try_get("connector_id")?)
                        .or_default()
                        .push(link.try_get("integration")?);
                }
                rows.iter()
                    .map(|row| {
                        let id: String = row.try_get("id")?;
                        Self::cn_connector_from_row(row, served.remove(&id).unwrap_or_default())
                    })
                    .collect()
            }

            /// One connector, read inside `tx`.
            async fn cn_connector_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                id: &str,
            ) -> Result<$crate::store::ConnectorRecord, $crate::store::StoreError> {
                Self::cn_read_connectors(&mut **tx, Some(id))
                    .await?
                    .pop()
                    .ok_or_else(|| $crate::store::StoreError::corrupt("connector", format!("{id:?} vanished")))
            }

            /// An enrolled connector's name, its row locked until `tx` ends (`exclusive`: for
            /// update, else for share). `Refusal::Unauthenticated` unless it is enrolled;
            /// `missing(connector_id)` if there is no such connector.
            async fn cn_lock_enrolled(
                tx: &mut sqlx::Transaction<'static, $db>,
                connector_id: &str,
                exclusive: bool,
                missing: fn(&str) -> $crate::store::Refusal,
            ) -> Result<String, $crate::store::StoreError> {
                use sqlx::Row;
                use $crate::store::{ConnectorState, Refusal, StoreError};
                let sql = if exclusive {
                    concat!("SELECT name, state FROM connectors WHERE id = $1", $for_update)
                } else {
                    concat!("SELECT name, state FROM connectors WHERE id = $1", $for_share)
                };
                let row = sqlx::query(sql).bind(connector_id).fetch_optional(&mut **tx).await?;
                let Some(row) = row else {
                    return Err(StoreError::Refused(missing(connector_id)));
                };
                let name: String = row.try_get("name")?;
                let state = ConnectorState::parse(&row.try_get::<String, _>("state")?)?;
                if state != ConnectorState::Enrolled {
                    return Err(StoreError::Refused(Refusal::Unauthenticated(format!(
                        "connector {name:?} is {}, not enrolled",
                        state.as_str()
                    ))));
                }
                Ok(name)
            }

            /// Integrations (one by name, or every one), ordered by name, with what is known
            /// about them.
            async fn cn_read_integrations(
                conn: &mut <$db as sqlx::Database>::Connection,
                name: Option<&str>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<$crate::store::IntegrationRecord>, $crate::store::StoreError> {
                use sqlx::Row;
                use std::collections::{BTreeSet, HashMap};
                let rows = sqlx::query("SELECT * FROM integrations WHERE ($1 IS NULL OR name = $1) ORDER BY name")
                    .bind(name)
                    .fetch_all(&mut *conn)
                    .await?;
                if rows.is_empty() {
                    return Ok(Vec::new());
                }
                #[derive(Default)]
                struct Known {
                    connectors: BTreeSet<String>,
                    connected: bool,
                    capabilities: BTreeSet<String>,
                    resources: i64,
                    identities: i64,
                    emails: BTreeSet<String>,
                    groups: i64,
                    grants: i64,
                }
                let mut known: HashMap<String, Known> = HashMap::new();
                let links = sqlx::query(
                    "SELECT ic.integration AS integration, ic.capabilities AS capabilities, c.name AS name, \
                     c.state AS state, c.connected_until AS connected_until FROM integration_connectors ic \
                     JOIN connectors c ON c.id = ic.connector_id WHERE ($1 IS NULL OR ic.integration = $1)",
                )
                .bind(name)
                .fetch_all(&mut *conn)
                .await?;
                for link in &links {
                    let entry = known.entry(link.try_get("integration")?).or_default();
                    entry.connectors.insert(link.try_get("name")?);
                    let state: String = link.try_get("state")?;
                    let until: Option<chrono::DateTime<chrono::Utc>> = link.try_get("connected_until")?;
                    if state == $crate::store::ConnectorState::Enrolled.as_str() && until.is_some_and(|at| at > now) {
                        entry.connected = true;
                    }
                    let capabilities: String = link.try_get("capabilities")?;
                    let capabilities: Vec<String> = serde_json::from_str(&capabilities)
                        .map_err(|err| $crate::store::StoreError::corrupt("integration capabilities", err))?;
                    entry.capabilities.extend(capabilities);
                }
                let counts = sqlx::query(
                    "SELECT integration, COUNT(*) AS n FROM resources WHERE ($1 IS NULL OR integration = $1) \
                     GROUP BY integration",
                )
                .bind(name)
                .fetch_all(&mut *conn)
                .await?;
                for row in &counts {
                    known.entry(row.try_get("integration")?).or_default().resources = row.try_get("n")?;
                }
                let identities = sqlx::query(
                    "SELECT integration, email FROM integration_identities WHERE ($1 IS NULL OR integration = $1)",
                )
                .bind(name)
                .fetch_all(&mut *conn)
                .await?;
                for row in &identities {
                    let entry = known.entry(row.try_get("integration")?).or_default();
                    entry.identities += 1;
                    let email: String = row.try_get("email")?;
                    if !email.is_empty() {
                        entry.emails.insert(email);
                    }
                }
                let groups = sqlx::query(
                    "SELECT integration, COUNT(*) AS n FROM integration_groups \
                     WHERE ($1 IS NULL OR integration = $1) GROUP BY integration",
                )
                .bind(name)
                .fetch_all(&mut *conn)
                .await?;
                for row in &groups {
                    known.entry(row.try_get("integration")?).or_default().groups = row.try_get("n")?;
                }
                let grants = sqlx::query(
                    "SELECT integration, COUNT(*) AS n FROM grants \
                     WHERE state IN ('granting', 'active', 'revoking', 'revoke_failed') \
                     AND ($1 IS NULL OR integration = $1) GROUP BY integration",
                )
                .bind(name)
                .fetch_all(&mut *conn)
                .await?;
                for row in &grants {
                    known.entry(row.try_get("integration")?).or_default().grants = row.try_get("n")?;
                }
                rows.iter()
                    .map(|row| {
                        let name: String = row.try_get("name")?;
                        let facts = known.remove(&name).unwrap_or_default();
                        let json_list = |column: &str| -> Result<Vec<String>, $crate::store::StoreError> {
                            let text: String = row.try_get(column)?;
                            serde_json::from_str(&text).map_err(|err| {
                                $crate::store::StoreError::corrupt(format!("integration {name:?} {column}"), err)
                            })
                        };
                        Ok($crate::store::IntegrationRecord {
                            kind: row.try_get("kind")?,
                            connectors: facts.connectors.into_iter().collect(),
                            connected: facts.connected,
                            capabilities: facts.capabilities.into_iter().collect(),
                            last_sync_at: row.try_get("last_sync_at")?,
                            last_error: row.try_get("last_error")?,
                            resource_count: facts.resources,
                            identity_emails: facts.emails.into_iter().collect(),
                            identity_count: facts.identities,
                            group_count: facts.groups,
                            owner_users: json_list("owner_users")?,
                            owner_groups: json_list("owner_groups")?,
                            active_grant_count: facts.grants,
                            name,
                        })
                    })
                    .collect()
            }

            /// An integration's row, locked; `Refusal::NotFound` if there is none.
            async fn cn_lock_integration(
                tx: &mut sqlx::Transaction<'static, $db>,
                name: &str,
            ) -> Result<<$db as sqlx::Database>::Row, $crate::store::StoreError> {
                sqlx::query(concat!("SELECT * FROM integrations WHERE name = $1", $for_update))
                    .bind(name)
                    .fetch_optional(&mut **tx)
                    .await?
                    .ok_or_else(|| {
                        $crate::store::StoreError::Refused($crate::store::Refusal::NotFound(format!(
                            "no integration named {name:?}"
                        )))
                    })
            }

            /// A command's delivery state: how often it was claimed.
            async fn cn_attempts(
                tx: &mut sqlx::Transaction<'static, $db>,
                command_id: &str,
            ) -> Result<i64, $crate::store::StoreError> {
                Ok(sqlx::query_scalar("SELECT attempts FROM commands WHERE id = $1")
                    .bind(command_id)
                    .fetch_one(&mut **tx)
                    .await?)
            }

            /// After rows whose ancestors changed (`frontier`: id and new ancestors), brings the
            /// ancestors of their stored descendants of `source` up to date. Returns how many
            /// rows changed.
            async fn cn_propagate_ancestors(
                tx: &mut sqlx::Transaction<'static, $db>,
                source: &str,
                mut frontier: Vec<(String, Vec<String>)>,
            ) -> Result<u64, $crate::store::StoreError> {
                use sqlx::Row;
                use $crate::store::rows::SqlValue;
                let mut visited: std::collections::HashSet<String> = std::collections::HashSet::new();
                let mut updated = 0u64;
                while !frontier.is_empty() {
                    frontier.retain(|(id, _)| visited.insert(id.clone()));
                    let chains: std::collections::HashMap<String, Vec<String>> = frontier.drain(..).collect();
                    let ids: Vec<String> = chains.keys().cloned().collect();
                    let children = Self::cn_fetch_for_ids(
                        tx,
                        "SELECT id, parent, ancestors, source FROM resources WHERE parent IN ({ids})",
                        &ids,
                    )
                    .await?;
                    // New ancestors (as stored) → children getting them: siblings share a statement.
                    let mut writes: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
                    for child in &children {
                        let child_source: String = child.try_get("source")?;
                        if child_source != source {
                            continue;
                        }
                        let id: String = child.try_get("id")?;
                        let parent: Option<String> = child.try_get("parent")?;
                        let Some(above) = parent.as_ref().and_then(|p| chains.get(p)) else { continue };
                        let mut expected = Vec::with_capacity(above.len() + 1);
                        expected.extend(parent.clone());
                        expected.extend_from_slice(above);
                        if expected.contains(&id) {
                            // A cycle through stored rows: leave it as it is.
                            continue;
                        }
                        let text = serde_json::to_string(&expected).unwrap_or_default();
                        let stored: String = child.try_get("ancestors")?;
                        if stored != text {
                            writes.entry(text).or_default().push(id.clone());
                            frontier.push((id, expected));
                        }
                    }
                    for (ancestors, ids) in writes {
                        updated += ids.len() as u64;
                        Self::lc_execute_for_ids(
                            tx,
                            "UPDATE resources SET ancestors = $1 WHERE id IN ({ids})",
                            &[SqlValue::Text(ancestors)],
                            &ids,
                        )
                        .await?;
                    }
                }
                Ok(updated)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::ConnectorStore for $store {
            async fn create_connector(
                &self,
                new: &$crate::store::NewConnector,
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<$crate::store::ConnectorRecord, $crate::store::StoreError> {
                use $crate::store::{Refusal, StoreError};
                let now = $crate::store::stored_time(now);
                let expires_at = $crate::store::stored_time(new.token_expires_at);
                if new.name.trim().is_empty() {
                    return Err(StoreError::Refused(Refusal::InvalidArgument(
                        "connector name must not be empty".into(),
                    )));
                }
                let in_use = || {
                    StoreError::Refused(Refusal::AlreadyExists(format!(
                        "connector name {:?} is already in use",
                        new.name
                    )))
                };
                let (_writer, mut tx) = self.write_tx().await?;
                let taken: Option<String> = sqlx::query_scalar("SELECT id FROM connectors WHERE name = $1")
                    .bind(&new.name)
                    .fetch_optional(&mut *tx)
                    .await?;
                if taken.is_some() {
                    return Err(in_use());
                }
                sqlx::query(
                    "INSERT INTO connectors (id, name, state, version, created_at, created_by, enrolled_at, \
                     revoked_at, last_seen, connected_until, cert_not_after) \
                     VALUES ($1, $2, $3, NULL, $4, $5, NULL, NULL, NULL, NULL, NULL)",
                )
                .bind(&new.id)
                .bind(&new.name)
                .bind($crate::store::ConnectorState::Pending.as_str())
                .bind(now)
                .bind(actor)
                .execute(&mut *tx)
                .await
                .map_err(|err| match &err {
                    // Another admin took the name a moment ago.
                    sqlx::Error::Database(db) if db.is_unique_violation() => in_use(),
                    _ => StoreError::Database(err),
                })?;
                sqlx::query(
                    "INSERT INTO enrollment_tokens (token_hash, connector_id, expires_at, used_at) \
                     VALUES ($1, $2, $3, NULL)",
                )
                .bind(&new.token_hash)
                .bind(&new.id)
                .bind(expires_at)
                .execute(&mut *tx)
                .await
                .map_err(|err| StoreError::from_write(err, "enrollment token"))?;
                Self::append_audit(
                    &mut tx,
                    $crate::store::NewAuditEvent {
                        at: now,
                        actor: actor.to_string(),
                        action: "connector.created",
                        subject: new.id.clone(),
                        details: serde_json::json!({
                            "name": new.name,
                            "token_expires_at": expires_at,
                        }),
                    },
                )
                .await?;
                let record = Self::cn_connector_in(&mut tx, &new.id).await?;
                tx.commit().await?;
                Ok(record)
            }

            async fn enroll_connector(
                &self,
                token_hash: &str,
                cert_not_after: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<$crate::store::ConnectorRecord, $crate::store::StoreError> {
                use sqlx::Row;
                use $crate::store::{ConnectorState, Refusal, StoreError};
                let now = $crate::store::stored_time(now);
                let cert_not_after = $crate::store::stored_time(cert_not_after);
                let refuse = |why: String| Err(StoreError::Refused(Refusal::Unauthenticated(why)));
                let (_writer, mut tx) = self.write_tx().await?;
                // Locked: two enrollments with one token queue here, and the second finds it used.
                let token = sqlx::query(concat!(
                    "SELECT connector_id, expires_at, used_at FROM enrollment_tokens WHERE token_hash = $1",
                    $for_update
                ))
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(token) = token else {
                    return refuse("unknown enrollment token".into());
                };
                let used_at: Option<chrono::DateTime<chrono::Utc>> = token.try_get("used_at")?;
                if used_at.is_some() {
                    return refuse("enrollment token was already used".into());
                }
                let expires_at: chrono::DateTime<chrono::Utc> = token.try_get("expires_at")?;
                if expires_at <= now {
                    return refuse(format!("enrollment token expired at {}", expires_at.to_rfc3339()));
                }
                let connector_id: String = token.try_get("connector_id")?;
                let connector = sqlx::query(concat!("SELECT name, state FROM connectors WHERE id = $1", $for_update))
                    .bind(&connector_id)
                    .fetch_one(&mut *tx)
                    .await?;
                let name: String = connector.try_get("name")?;
                let state = ConnectorState::parse(&connector.try_get::<String, _>("state")?)?;
                if state == ConnectorState::Revoked {
                    return refuse(format!("connector {name:?} is revoked"));
                }
                sqlx::query("UPDATE enrollment_tokens SET used_at = $2 WHERE token_hash = $1")
                    .bind(token_hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE connectors SET state = $2, enrolled_at = $3, cert_not_after = $4 WHERE id = $1",
                )
                .bind(&connector_id)
                .bind(ConnectorState::Enrolled.as_str())
                .bind(now)
                .bind(cert_not_after)
                .execute(&mut *tx)
                .await?;
                Self::append_audit(
                    &mut tx,
                    $crate::store::NewAuditEvent {
                        at: now,
                        actor: format!("connector:{name}"),
                        action: "connector.enrolled",
                        subject: connector_id.clone(),
                        details: serde_json::json!({ "name": name, "cert_not_after": cert_not_after }),
                    },
                )
                .await?;
                let record = Self::cn_connector_in(&mut tx, &connector_id).await?;
                tx.commit().await?;
                Ok(record)
            }

            async fn record_certificate(
                &self,
                connector_id: &str,
                cert_not_after: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::sql_connectors::no_connector;
                let now = $crate::store::stored_time(now);
                let cert_not_after = $crate::store::stored_time(cert_not_after);
                let (_writer, mut tx) = self.write_tx().await?;
                let name = Self::cn_lock_enrolled(&mut tx, connector_id, true, no_connector).await?;
                sqlx::query("UPDATE connectors SET cert_not_after = $2 WHERE id = $1")
                    .bind(connector_id)
                    .bind(cert_not_after)
                    .execute(&mut *tx)
                    .await?;
                Self::append_audit(
                    &mut tx,
                    $crate::store::NewAuditEvent {
                        at: now,
                        actor: format!("connector:{name}"),
                        action: "connector.certificate_renewed",
                        subject: connector_id.to_string(),
                        details: serde_json::json!({ "name": name, "cert_not_after": cert_not_after }),
                    },
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn connector(
                &self,
                id: &str,
            ) -> Result<Option<$crate::store::ConnectorRecord>, $crate::store::StoreError> {
                let mut conn = self.pool.acquire().await?;
                Ok(Self::cn_read_connectors(&mut conn, Some(id)).await?.pop())
            }

            async fn list_connectors(
                &self,
            ) -> Result<Vec<$crate::store::ConnectorRecord>, $crate::store::StoreError> {
                let mut conn = self.pool.acquire().await?;
                Self::cn_read_connectors(&mut conn, None).await
            }

            async fn revoke_connector(
                &self,
                name: &str,
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<$crate::store::ConnectorRecord, $crate::store::StoreError> {
                use sqlx::Row;
                use $crate::store::{ConnectorState, Refusal, StoreError};
                let now = $crate::store::stored_time(now);
                let (_writer, mut tx) = self.write_tx().await?;
                let row = sqlx::query(concat!("SELECT id, state FROM connectors WHERE name = $1", $for_update))
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else {
                    return Err(StoreError::Refused(Refusal::NotFound(format!("no connector named {name:?}"))));
                };
                let id: String = row.try_get("id")?;
                let state = ConnectorState::parse(&row.try_get::<String, _>("state")?)?;
                if state != ConnectorState::Revoked {
                    let served = Self::cn_connector_in(&mut tx, &id).await?.integrations;
                    sqlx::query(
                        "UPDATE connectors SET state = $2, revoked_at = $3, connected_until = NULL WHERE id = $1",
                    )
                    .bind(&id)
                    .bind(ConnectorState::Revoked.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    // It serves nothing any more; what it held goes to the others at once.
                    sqlx::query("DELETE FROM integration_connectors WHERE connector_id = $1")
                        .bind(&id)
                        .execute(&mut *tx)
                        .await?;
                    let released = sqlx::query(
                        "UPDATE commands SET claimed_by = NULL, claim_until = NULL WHERE claimed_by = $1",
                    )
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    Self::append_audit(
                        &mut tx,
                        $crate::store::NewAuditEvent {
                            at: now,
                            actor: actor.to_string(),
                            action: "connector.revoked",
                            subject: id.clone(),
                            details: serde_json::json!({
                                "name": name,
                                "was": state.as_str(),
                                "integrations": served,
                                "released_claims": released,
                            }),
                        },
                    )
                    .await?;
                }
                let record = Self::cn_connector_in(&mut tx, &id).await?;
                tx.commit().await?;
                Ok(record)
            }

            async fn connector_seen(
                &self,
                connector_id: &str,
                version: Option<&str>,
                connected_until: Option<chrono::DateTime<chrono::Utc>>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                let now = $crate::store::stored_time(now);
                let connected_until = connected_until.map($crate::store::stored_time);
                let (_writer, mut tx) = self.write_tx().await?;
                let seen = sqlx::query(
                    "UPDATE connectors SET last_seen = $2, connected_until = $3, version = COALESCE($4, version) \
                     WHERE id = $1",
                )
                .bind(connector_id)
                .bind(now)
                .bind(connected_until)
                .bind(version)
                .execute(&mut *tx)
                .await?;
                if seen.rows_affected() == 0 {
                    return Err($crate::store::StoreError::Refused(
                        $crate::store::sql_connectors::no_connector(connector_id),
                    ));
                }
                tx.commit().await?;
                Ok(())
            }

            async fn announce_integrations(
                &self,
                connector_id: &str,
                integrations: &[$crate::store::Announcement],
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<(String, String)>, $crate::store::StoreError> {
                use $crate::store::StoreError;
                use $crate::store::sql_connectors::no_connector;
                let now = $crate::store::stored_time(now);
                let (_writer, mut tx) = self.write_tx().await?;
                let connector = Self::cn_lock_enrolled(&mut tx, connector_id, false, no_connector).await?;
                let before: Vec<String> = sqlx::query_scalar(
                    "SELECT integration FROM integration_connectors WHERE connector_id = $1 ORDER BY integration",
                )
                .bind(connector_id)
                .fetch_all(&mut *tx)
                .await?;
                let mut refused = Vec::new();
                let mut accepted: Vec<(&$crate::store::Announcement, Vec<String>, bool)> = Vec::new();
                let mut names = std::collections::HashSet::new();
                for announced in integrations {
                    let name = announced.name.as_str();
                    if name.trim().is_empty() {
                        refused.push((announced.name.clone(), "an integration needs a name".to_string()));
                        continue;
                    }
                    if name == $crate::lifecycle::STATIC_SOURCE {
                        refused.push((
                            announced.name.clone(),
                            format!("integration name {name:?} is reserved for the static inventory"),
                        ));
                        continue;
                    }
                    if !names.insert(name) {
                        refused.push((announced.name.clone(), format!("integration {name:?} was announced twice")));
                        continue;
                    }
                    let mut is_new = false;
                    let mut kind: Option<String> =
                        sqlx::query_scalar(concat!("SELECT kind FROM integrations WHERE name = $1", $for_share))
                            .bind(name)
                            .fetch_optional(&mut *tx)
                            .await?;
                    if kind.is_none() {
                        let inserted = sqlx::query(
                            "INSERT INTO integrations (name, kind, created_at, owner_users, owner_groups) \
                             VALUES ($1, $2, $3, '[]', '[]') ON CONFLICT (name) DO NOTHING",
                        )
                        .bind(name)
                        .bind(&announced.kind)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        is_new = inserted.rows_affected() == 1;
                        kind = sqlx::query_scalar(concat!("SELECT kind FROM integrations WHERE name = $1", $for_share))
                            .bind(name)
                            .fetch_optional(&mut *tx)
                            .await?;
                    }
                    match kind {
                        Some(kind) if kind == announced.kind => {
                            let mut capabilities = announced.capabilities.clone();
                            capabilities.sort();
                            capabilities.dedup();
                            accepted.push((announced, capabilities, is_new));
                        }
                        Some(kind) => refused.push((
                            announced.name.clone(),
                            format!(
                                "integration {name:?} is already known with kind {kind:?}, not {:?}",
                                announced.kind
                            ),
                        )),
                        None => {
                            return Err(StoreError::Conflict(format!("integration {name:?}")));
                        }
                    }
                }
                sqlx::query("DELETE FROM integration_connectors WHERE connector_id = $1")
                    .bind(connector_id)
                    .execute(&mut *tx)
                    .await?;
                let mut audit = Vec::new();
                for (announced, capabilities, is_new) in &accepted {
                    sqlx::query(
                        "INSERT INTO integration_connectors (integration, connector_id, capabilities) VALUES ($1, $2, $3)",
                    )
                    .bind(&announced.name)
                    .bind(connector_id)
                    .bind(serde_json::to_string(capabilities).unwrap_or_default())
                    .execute(&mut *tx)
                    .await?;
                    let joined = !before.contains(&announced.name);
                    if *is_new || joined {
                        audit.push($crate::store::NewAuditEvent {
                            at: now,
                            actor: format!("connector:{connector}"),
                            action: "integration.announced",
                            subject: announced.name.clone(),
                            details: serde_json::json!({
                                "kind": announced.kind,
                                "new": is_new,
                                "connector": connector,
                                "connector_id": connector_id,
                                "change": "served",
                                "capabilities": capabilities,
                            }),
                        });
                    }
                }
                for name in &before {
                    if !accepted.iter().any(|(a, _, _)| &a.name == name) {
                        audit.push($crate::store::NewAuditEvent {
                            at: now,
                            actor: format!("connector:{connector}"),
                            action: "integration.announced",
                            subject: name.clone(),
                            details: serde_json::json!({
                                "new": false,
                                "connector": connector,
                                "connector_id": connector_id,
                                "change": "no_longer_served",
                            }),
                        });
                    }
                }
                Self::append_audits(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(refused)
            }

            async fn list_integrations(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<$crate::store::IntegrationRecord>, $crate::store::StoreError> {
                let mut conn = self.pool.acquire().await?;
                Self::cn_read_integrations(&mut conn, None, now).await
            }

            async fn integration(
                &self,
                name: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<$crate::store::IntegrationRecord>, $crate::store::StoreError> {
                let mut conn = self.pool.acquire().await?;
                Ok(Self::cn_read_integrations(&mut conn, Some(name), now).await?.pop())
            }

            async fn set_integration_owners(
                &self,
                name: &str,
                users: &[String],
                groups: &[String],
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<$crate::store::IntegrationRecord, $crate::store::StoreError> {
                use sqlx::Row;
                let now = $crate::store::stored_time(now);
                let clean = |list: &[String], lower: bool| -> Vec<String> {
                    let set: std::collections::BTreeSet<String> = list
                        .iter()
                        .map(|s| if lower { s.trim().to_lowercase() } else { s.trim().to_string() })
                        .filter(|s| !s.is_empty())
                        .collect();
                    set.into_iter().collect()
                };
                let users = clean(users, true);
                let groups = clean(groups, false);
                let (_writer, mut tx) = self.write_tx().await?;
                let row = Self::cn_lock_integration(&mut tx, name).await?;
                let before_users: String = row.try_get("owner_users")?;
                let before_groups: String = row.try_get("owner_groups")?;
                let users_json = serde_json::to_string(&users).unwrap_or_default();
                let groups_json = serde_json::to_string(&groups).unwrap_or_default();
                sqlx::query("UPDATE integrations SET owner_users = $2, owner_groups = $3 WHERE name = $1")
                    .bind(name)
                    .bind(&users_json)
                    .bind(&groups_json)
                    .execute(&mut *tx)
                    .await?;
                let previous = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap_or_default();
                Self::append_audit(
                    &mut tx,
                    $crate::store::NewAuditEvent {
                        at: now,
                        actor: actor.to_string(),
                        action: "integration.owners_set",
                        subject: name.to_string(),
                        details: serde_json::json!({
                            "users": users,
                            "groups": groups,
                            "previous_users": previous(&before_users),
                            "previous_groups": previous(&before_groups),
                        }),
                    },
                )
                .await?;
                let record = Self::cn_read_integrations(&mut *tx, Some(name), now)
                    .await?
                    .pop()
                    .ok_or_else(|| $crate::store::StoreError::corrupt("integration", format!("{name:?} vanished")))?;
                tx.commit().await?;
                Ok(record)
            }

            async fn request_sync(
                &self,
                name: &str,
                command_id: &str,
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                let now = $crate::store::stored_time(now);
                let (_writer, mut tx) = self.write_tx().await?;
                Self::cn_lock_integration(&mut tx, name).await?;
                sqlx::query("UPDATE integrations SET sync_requested_at = $2, sync_command_id = $3 WHERE name = $1")
                    .bind(name)
                    .bind(now)
                    .bind(command_id)
                    .execute(&mut *tx)
                    .await?;
                Self::append_audit(
                    &mut tx,
                    $crate::store::NewAuditEvent {
                        at: now,
                        actor: actor.to_string(),
                        action: "integration.sync_requested",
                        subject: name.to_string(),
                        details: serde_json::json!({ "command_id": command_id }),
                    },
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn take_sync_request(
                &self,
                integrations: &[String],
            ) -> Result<Option<(String, String)>, $crate::store::StoreError> {
                use sqlx::Row;
                if integrations.is_empty() {
                    return Ok(None);
                }
                let (_writer, mut tx) = self.write_tx().await?;
                let rows = Self::lc_fetch_for_ids(
                    &mut tx,
                    concat!(
                        "SELECT name, sync_command_id FROM integrations WHERE sync_command_id IS NOT NULL \
                         AND name IN ({ids}) ORDER BY sync_requested_at LIMIT 1",
                        $skip_locked
                    ),
                    integrations,
                )
                .await?;
                let Some(row) = rows.first() else {
                    return Ok(None);
                };
                let name: String = row.try_get("name")?;
                let command_id: String = row.try_get("sync_command_id")?;
                sqlx::query("UPDATE integrations SET sync_command_id = NULL, sync_requested_at = NULL WHERE name = $1")
                    .bind(&name)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Some((name, command_id)))
            }

            async fn claim_commands(
                &self,
                connector_id: &str,
                integrations: &[String],
                claim_until: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> Result<Vec<$crate::store::ClaimedCommand>, $crate::store::StoreError> {
                use sqlx::Row;
                use $crate::store::Refusal;
                if integrations.is_empty() || limit == 0 {
                    return Ok(Vec::new());
                }
                let now = $crate::store::stored_time(now);
                let claim_until = $crate::store::stored_time(claim_until);
                let (_writer, mut tx) = self.write_tx().await?;
                // A revoked connector claims nothing: revoking takes this row's lock, so a claim
                // either finishes first (and the revoke releases it) or sees the revocation.
                Self::cn_lock_enrolled(&mut tx, connector_id, false, |id| {
                    Refusal::Unauthenticated(format!("unknown connector {id:?}"))
                })
                .await?;
                // Only integrations it announced and was accepted for.
                let served: std::collections::HashSet<String> = sqlx::query_scalar(
                    "SELECT integration FROM integration_connectors WHERE connector_id = $1",
                )
                .bind(connector_id)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
                let mut wanted: Vec<&String> = integrations.iter().filter(|i| served.contains(*i)).collect();
                wanted.sort();
                wanted.dedup();
                if wanted.is_empty() {
                    return Ok(Vec::new());
                }
                let placeholders: Vec<String> = (0..wanted.len()).map(|n| format!("${}", n + 3)).collect();
                // Open, not held by a live claim, due, and not behind an older command of the same
                // grant that is still open or still in someone's hands: commands for one grant go
                // out one at a time, in order.
                let sql = format!(
                    "SELECT c.id AS id FROM commands c WHERE c.completed_at IS NULL AND c.integration IN ({}) \
                     AND (c.claimed_by IS NULL OR c.claim_until <= $1) \
                     AND (c.next_attempt_at IS NULL OR c.next_attempt_at <= $1) \
                     AND NOT EXISTS (SELECT 1 FROM commands o WHERE o.grant_id = c.grant_id AND o.seq < c.seq \
                     AND (o.completed_at IS NULL OR o.claim_until > $1)) \
                     ORDER BY c.priority, c.seq LIMIT $2{}",
                    placeholders.join(", "),
                    $skip_locked
                );
                // Only numbered placeholders are formatted in; every value is bound.
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(i64::from(limit));
                for integration in &wanted {
                    query = query.bind(integration.as_str());
                }
                let ids: Vec<String> = query
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|row| row.try_get("id"))
                    .collect::<Result<_, _>>()?;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                Self::lc_execute_for_ids(
                    &mut tx,
                    "UPDATE commands SET claimed_by = $1, claim_until = $2, attempts = attempts + 1 WHERE id IN ({ids})",
                    &[
                        $crate::store::rows::SqlValue::Text(connector_id.to_string()),
                        $crate::store::rows::SqlValue::Time(claim_until),
                    ],
                    &ids,
                )
                .await?;
                let rows = Self::lc_fetch_for_ids(
                    &mut tx,
                    "SELECT c.*, g.expires_at AS grant_expires_at, g.duration_secs AS grant_duration_secs \
                     FROM commands c JOIN grants g ON g.id = c.grant_id WHERE c.id IN ({ids})",
                    &ids,
                )
                .await?;
                let mut claimed = std::collections::HashMap::new();
                for row in &rows {
                    let command = Self::lc_command_from_row(row)?;
                    // The clock of timed access starts when the grant is in place, so until then
                    // its end is as far from now as its duration.
                    let expires_at = if command.kind == "grant" {
                        let set: Option<chrono::DateTime<chrono::Utc>> = row.try_get("grant_expires_at")?;
                        let secs: Option<i64> = row.try_get("grant_duration_secs")?;
                        set.or_else(|| {
                            secs.and_then(chrono::TimeDelta::try_seconds).and_then(|d| now.checked_add_signed(d))
                        })
                    } else {
                        None
                    };
                    let attempt: i64 = row.try_get("attempts")?;
                    claimed.insert(
                        command.id.clone(),
                        $crate::store::ClaimedCommand { command, attempt, expires_at },
                    );
                }
                tx.commit().await?;
                Ok(ids.iter().filter_map(|id| claimed.remove(id)).collect())
            }

            async fn extend_claims(
                &self,
                connector_id: &str,
                claim_until: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                let claim_until = $crate::store::stored_time(claim_until);
                let (_writer, mut tx) = self.write_tx().await?;
                // Open commands only: a superseded command in flight holds back its grant's next
                // command until it is reported or its claim runs out, not for as long as the
                // stream lives.
                sqlx::query(
                    "UPDATE commands SET claim_until = $2 WHERE claimed_by = $1 AND completed_at IS NULL",
                )
                .bind(connector_id)
                .bind(claim_until)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn release_claims(&self, connector_id: &str) -> Result<(), $crate::store::StoreError> {
                let (_writer, mut tx) = self.write_tx().await?;
                sqlx::query("UPDATE commands SET claimed_by = NULL, claim_until = NULL WHERE claimed_by = $1")
                    .bind(connector_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn fail_attempt(
                &self,
                command_id: &str,
                message: &str,
                retry: $crate::store::Retry,
                policy: &$crate::store::RetryPolicy,
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<$crate::store::AttemptOutcome, $crate::store::StoreError> {
                use $crate::store::{AttemptOutcome, CommandResult, GrantState};
                use $crate::store::sql_connectors::{after, retry_at};
                let now = $crate::store::stored_time(now);
                let (_writer, mut tx) = self.write_tx().await?;
                let (mut request, grant, command) = Self::lc_lock_command(&mut tx, command_id).await?;
                if command.completed_at.is_some() || command.generation != grant.generation {
                    Self::lc_release_claim(&mut tx, command_id).await?;
                    tx.commit().await?;
                    return Ok(AttemptOutcome::Ignored);
                }
                let attempts = Self::cn_attempts(&mut tx, command_id).await?.max(1);
                let mut audit = Vec::new();
                let mut later = Vec::new();
                let give_up = attempts >= policy.max_attempts;
                let outcome = if command.kind == "grant" && (retry == $crate::store::Retry::Never || give_up) {
                    sqlx::query("UPDATE commands SET last_error = $2 WHERE id = $1")
                        .bind(command_id)
                        .bind(message)
                        .execute(&mut *tx)
                        .await?;
                    let result = CommandResult::Failed(message.to_string());
                    Self::lc_record_result(&mut tx, request.as_mut(), &grant, &command, &result, actor, now, &mut later)
                        .await?;
                    AttemptOutcome::GrantFailed
                } else {
                    let at = if give_up && command.kind != "grant" {
                        after(now, policy.revoke_failed_every)
                    } else {
                        let backoff = retry_at(now, policy.base_delay, attempts);
                        match retry {
                            $crate::store::Retry::AtLeast(wait) => {
                                backoff.max(after(now, wait.min($crate::store::MAX_RETRY_AFTER)))
                            }
                            _ => backoff,
                        }
                    };
                    sqlx::query(
                        "UPDATE commands SET claimed_by = NULL, claim_until = NULL, last_error = $2, \
                         next_attempt_at = $3 WHERE id = $1",
                    )
                    .bind(command_id)
                    .bind(message)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                    if give_up && command.kind != "grant" {
                        if grant.state == GrantState::Revoking {
                            sqlx::query("UPDATE grants SET state = $2, updated_at = $3 WHERE id = $1")
                                .bind(&grant.id)
                                .bind(GrantState::RevokeFailed.as_str())
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                            later.push($crate::store::NewAuditEvent {
                                at: now,
                                actor: actor.to_string(),
                                action: "grant.revoke_failed",
                                subject: grant.request_id.clone().unwrap_or_else(|| grant.id.clone()),
                                details: serde_json::json!({
                                    "grant_id": grant.id,
                                    "identity": grant.identity,
                                    "resource_id": grant.resource_id,
                                    "permission": grant.permission,
                                    "attempts": attempts,
                                    "error": message,
                                    "next_attempt_at": at,
                                }),
                            });
                        }
                        AttemptOutcome::RevokeFailed { next_at: at }
                    } else {
                        AttemptOutcome::Retrying { at }
                    }
                };
                let (label, next) = match &outcome {
                    AttemptOutcome::Retrying { at } => ("retrying", Some(*at)),
                    AttemptOutcome::RevokeFailed { next_at } => ("revoke_failed", Some(*next_at)),
                    AttemptOutcome::GrantFailed => ("grant_failed", None),
                    AttemptOutcome::Ignored => ("ignored", None),
                };
                audit.push($crate::store::NewAuditEvent {
                    at: now,
                    actor: actor.to_string(),
                    action: "command.attempt_failed",
                    subject: grant.request_id.clone().unwrap_or_else(|| grant.id.clone()),
                    details: serde_json::json!({
                        "command_id": command_id,
                        "kind": command.kind,
                        "grant_id": grant.id,
                        "attempt": attempts,
                        "error": message,
                        "retryable": retry != $crate::store::Retry::Never,
                        "retry_after_secs": match retry {
                            $crate::store::Retry::AtLeast(wait) => Some(wait.as_secs()),
                            _ => None,
                        },
                        "outcome": label,
                        "next_attempt_at": next,
                    }),
                });
                audit.extend(later);
                Self::append_audits(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(outcome)
            }

            async fn ingest_resources(
                &self,
                integration: &str,
                resources: &[$crate::store::SyncedResource],
                permissions: &[(String, Vec<String>)],
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<$crate::store::PageChanges, $crate::store::StoreError> {
                use sqlx::Row;
                use $crate::store::{Refusal, StoreError, rows};
                use $crate::store::sql_connectors::{page_ancestors, some_ids};
                let now = $crate::store::stored_time(now);
                let invalid = |why: String| StoreError::Refused(Refusal::InvalidArgument(why));
                let mut unique = std::collections::HashSet::with_capacity(resources.len());
                for resource in resources {
                    if resource.id.is_empty() {
                        return Err(invalid("a resource in the page has no id; nothing was stored".into()));
                    }
                    if !unique.insert(resource.id.as_str()) {
                        return Err(invalid(format!(
                            "resource {:?} appears twice in the page; nothing was stored",
                            resource.id
                        )));
                    }
                }
                let digests: Vec<String> = resources.iter().map(|r| r.digest()).collect();
                let pairs: Vec<(&str, &str)> = resources
                    .iter()
                    .zip(&digests)
                    .map(|(r, d)| (r.id.as_str(), d.as_str()))
                    .collect();
                let offered = Self::cn_offered_permissions(permissions);
                // Most pages of a resync change nothing: find that out with reads alone, and skip
                // the write transaction (and its turn at the single writer) entirely.
                let (read_epoch, read) = {
                    let mut conn = self.pool.acquire().await?;
                    // Read before the probe: if it is the same under the lock, nothing was
                    // written to `resources` since, and the probe still holds.
                    let epoch = Self::cn_resources_epoch(&mut conn).await?;
                    let (fresh, stored) = Self::cn_probe_page(&mut conn, integration, &pairs).await?;
                    let permissions_same = Self::cn_changed_permissions(&mut conn, integration, &offered).await?.is_empty();
                    if fresh.is_empty() && stored.is_empty() && permissions_same {
                        return Ok($crate::store::PageChanges {
                            unchanged: resources.len() as u64,
                            ..Default::default()
                        });
                    }
                    (epoch, (fresh, stored))
                };
                let (_writer, mut tx) = self.write_tx().await?;
                Self::cn_lock_integration(&mut tx, integration).await?;
                // Probed again only when another writer changed `resources` since the read: the
                // probe reads every row of the batch, and the writer's turn is the scarce part.
                let (fresh, stored) = if Self::cn_resources_epoch(&mut tx).await? == read_epoch {
                    read
                } else {
                    Self::cn_probe_page(&mut tx, integration, &pairs).await?
                };
                let write: Vec<bool> = resources
                    .iter()
                    .map(|r| fresh.contains(&r.id) || stored.contains_key(&r.id))
                    .collect();
                let mut changes = $crate::store::PageChanges::default();
                let (mut added, mut changed) = (Vec::new(), Vec::new());
                let mut ancestors_updated = 0u64;
                if write.iter().any(|w| *w) {
                    // Ancestors of what is written: from parents written with it, or as stored.
                    let rewritten: std::collections::HashSet<&str> = resources
                        .iter()
                        .zip(&write)
                        .filter(|(_, w)| **w)
                        .map(|(r, _)| r.id.as_str())
                        .collect();
                    let parents: std::collections::BTreeSet<String> = resources
                        .iter()
                        .zip(&write)
                        .filter(|(_, w)| **w)
                        .filter_map(|(r, _)| r.parent.clone())
                        .filter(|p| !rewritten.contains(p.as_str()))
                        .collect();
                    let parents: Vec<String> = parents.into_iter().collect();
                    let mut known: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
                    for row in Self::cn_fetch_for_ids(&mut tx, "SELECT id, ancestors FROM resources WHERE id IN ({ids})", &parents).await? {
                        let id: String = row.try_get("id")?;
                        let text: String = row.try_get("ancestors")?;
                        let chain = serde_json::from_str(&text)
                            .map_err(|err| StoreError::corrupt(format!("resource {id:?} ancestors"), err))?;
                        known.insert(id, chain);
                    }
                    let chains = page_ancestors(resources, &write, &known)
                        .map_err(|why| invalid(format!("{why}; nothing was stored")))?;
                    let mut upserts = Vec::new();
                    let mut frontier = Vec::new();
                    for (i, resource) in resources.iter().enumerate() {
                        let Some(chain) = &chains[i] else { continue };
                        let before = stored.get(&resource.id);
                        if before.is_none() {
                            added.push(resource.id.clone());
                        } else {
                            changed.push(resource.id.clone());
                        }
                        // `first_seen` is written for new rows only (the upsert keeps the old one).
                        let row = rows::synced_resource_row(integration, resource, chain, &digests[i], now, now);
                        // New rows too: a child may have come in an earlier page than its parent.
                        // (`row[5]` is the ancestors column of `rows::RESOURCES`.)
                        let moved = match (before, &row[5]) {
                            (Some(old), rows::SqlValue::Text(new)) => old != new,
                            _ => true,
                        };
                        if moved {
                            frontier.push((resource.id.clone(), chain.clone()));
                        }
                        upserts.push(row);
                    }
                    let expected = upserts.len() as u64;
                    // `WHERE resources.source = excluded.source`: an id another source took
                    // meanwhile is not taken over.
                    let written = Self::lc_insert_rows_with(
                        &mut tx,
                        &rows::RESOURCES,
                        upserts,
                        " ON CONFLICT (id) DO UPDATE SET integration = excluded.integration, \
                         resource_type = excluded.resource_type, name = excluded.name, parent = excluded.parent, \
                         ancestors = excluded.ancestors, tags = excluded.tags, owners = excluded.owners, \
                         last_seen = excluded.last_seen, digest = excluded.digest \
                         WHERE resources.source = excluded.source",
                        rows::rows_within(&rows::RESOURCES, rows::BULK_BINDS),
                        $anonymous,
                    )
                    .await?;
                    if written != expected {
                        return Err(invalid(
                            "a resource of the page is kept by another source; nothing was stored".into(),
                        ));
                    }
                    ancestors_updated = Self::cn_propagate_ancestors(&mut tx, integration, frontier).await?;
                }
                changes.added = added.len() as u64;
                changes.changed = changed.len() as u64;
                changes.unchanged = resources.len() as u64 - changes.added - changes.changed;

                // The permissions each type offers, written when they differ.
                let permissions_changed = Self::cn_changed_permissions(&mut tx, integration, &offered).await?;
                for resource_type in &permissions_changed {
                    sqlx::query(
                        "INSERT INTO resource_type_permissions (integration, resource_type, permissions) \
                         VALUES ($1, $2, $3) ON CONFLICT (integration, resource_type) \
                         DO UPDATE SET permissions = excluded.permissions",
                    )
                    .bind(integration)
                    .bind(resource_type)
                    .bind(&offered[resource_type])
                    .execute(&mut *tx)
                    .await?;
                }

                let inventory_changed = !added.is_empty() || !changed.is_empty() || ancestors_updated > 0;
                if inventory_changed {
                    Self::bump_epoch(&mut tx, "resources").await?;
                }
                if inventory_changed || !permissions_changed.is_empty() {
                    Self::append_audit(
                        &mut tx,
                        $crate::store::NewAuditEvent {
                            at: now,
                            actor: actor.to_string(),
                            action: "inventory.page_applied",
                            subject: integration.to_string(),
                            details: serde_json::json!({
                                "added": changes.added,
                                "changed": changes.changed,
                                "unchanged": changes.unchanged,
                                "descendants_moved": ancestors_updated,
                                "added_ids": some_ids(&added),
                                "changed_ids": some_ids(&changed),
                                "permissions_changed": permissions_changed,
                            }),
                        },
                    )
                    .await?;
                }
                tx.commit().await?;
                if changes.added > 0 {
                    self.cn_refresh_statistics().await;
                }
                Ok(changes)
            }

            async fn resources_to_refresh(
                &self,
                integration: &str,
                digests: &[(String, String)],
            ) -> Result<Vec<String>, $crate::store::StoreError> {
                let pairs: Vec<(&str, &str)> = digests.iter().map(|(id, d)| (id.as_str(), d.as_str())).collect();
                let mut conn = self.pool.acquire().await?;
                let (fresh, stored) = Self::cn_probe_page(&mut conn, integration, &pairs).await?;
                Ok(fresh.into_iter().chain(stored.into_keys()).collect())
            }

            async fn finish_sync(
                &self,
                end: &$crate::store::SyncEnd<'_>,
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, $crate::store::StoreError> {
                use $crate::store::rows::{self, SqlValue};
                use $crate::store::sql_connectors::some_ids;
                use $crate::store::{Refusal, StoreError};
                let now = $crate::store::stored_time(now);
                let integration = end.integration;
                if end.error.is_none() && end.full && end.seen.is_none() {
                    return Err(StoreError::Refused(Refusal::InvalidArgument(format!(
                        "full sync {:?} of {integration:?} did not say which resources it saw; nothing was deleted",
                        end.sync_id
                    ))));
                }
                // What a completed full sync did not see, found before taking the writer's turn:
                // reading a large inventory takes a while, and other writers need not wait for it.
                let mut unseen: Vec<String> = Vec::new();
                if let (None, true, Some(seen)) = (end.error, end.full, end.seen) {
                    // Every id the sync saw was stored under the integration (a page that could
                    // not be is refused, and fails the sync), so when the integration holds as
                    // many rows as were seen, it holds exactly those: nothing to delete, and no
                    // need to read a million ids back.
                    let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM resources WHERE source = $1")
                        .bind(integration)
                        .fetch_one(&self.pool)
                        .await?;
                    let all_seen = usize::try_from(held).is_ok_and(|held| held == seen.len());
                    if !all_seen {
                        self.cn_refresh_statistics().await;
                    }
                    // The integration's synced rows (their source is the integration), a batch at
                    // a time in id order. Synced ids are never empty, so all sort after "".
                    let mut after = String::new();
                    while !all_seen {
                        let batch: Vec<String> = sqlx::query_scalar(
                            "SELECT id FROM resources WHERE source = $1 AND id > $2 ORDER BY id LIMIT 10000",
                        )
                        .bind(integration)
                        .bind(&after)
                        .fetch_all(&self.pool)
                        .await?;
                        let Some(last) = batch.last().cloned() else { break };
                        unseen.extend(batch.into_iter().filter(|id| !seen.contains(id)));
                        after = last;
                    }
                }
                let finished = |details: serde_json::Value| $crate::store::NewAuditEvent {
                    at: now,
                    actor: actor.to_string(),
                    action: "inventory.sync_finished",
                    subject: integration.to_string(),
                    details,
                };
                let (_writer, mut tx) = self.write_tx().await?;
                Self::cn_lock_integration(&mut tx, integration).await?;
                if let Some(error) = end.error {
                    // A failed sync leaves the inventory and the identities as they were.
                    sqlx::query("UPDATE integrations SET last_error = $2 WHERE name = $1")
                        .bind(integration)
                        .bind(error)
                        .execute(&mut *tx)
                        .await?;
                    let details = serde_json::json!({ "sync_id": end.sync_id, "full": end.full, "error": error });
                    Self::append_audit(&mut tx, finished(details)).await?;
                    tx.commit().await?;
                    return Ok(0);
                }
                sqlx::query("UPDATE integrations SET last_sync_at = $2, last_error = NULL WHERE name = $1")
                    .bind(integration)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                // Members first: they refer to groups and identities.
                for table in ["integration_group_members", "integration_groups", "integration_identities"] {
                    sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE integration = $1")))
                        .bind(integration)
                        .execute(&mut *tx)
                        .await?;
                }
                // One row per external id; the last one reported wins.
                let mut identities: std::collections::BTreeMap<&str, &$crate::store::SyncedIdentity> =
                    std::collections::BTreeMap::new();
                for identity in end.identities {
                    identities.insert(identity.external_id.as_str(), identity);
                }
                let identity_rows: Vec<Vec<SqlValue>> = identities
                    .values()
                    .map(|identity| {
                        vec![
                            SqlValue::Text(integration.to_string()),
                            SqlValue::Text(identity.external_id.clone()),
                            SqlValue::Text(identity.email.trim().to_lowercase()),
                            SqlValue::Text(identity.display_name.clone()),
                        ]
                    })
                    .collect();
                let per = rows::rows_within(&rows::IDENTITIES, rows::BULK_BINDS);
                Self::lc_insert_rows_with(&mut tx, &rows::IDENTITIES, identity_rows, "", per, $anonymous).await?;
                let mut groups: std::collections::BTreeMap<&str, &$crate::store::SyncedGroup> =
                    std::collections::BTreeMap::new();
                for group in end.groups {
                    groups.insert(group.external_id.as_str(), group);
                }
                let group_rows: Vec<Vec<SqlValue>> = groups
                    .values()
                    .map(|group| {
                        vec![
                            SqlValue::Text(integration.to_string()),
                            SqlValue::Text(group.external_id.clone()),
                            SqlValue::Text(group.display_name.clone()),
                        ]
                    })
                    .collect();
                let per = rows::rows_within(&rows::GROUPS, rows::BULK_BINDS);
                Self::lc_insert_rows_with(&mut tx, &rows::GROUPS, group_rows, "", per, $anonymous).await?;
                // Only memberships between a group and an identity this sync reported, once each.
                let (kept, left_out): (Vec<&$crate::store::SyncedMembership>, Vec<_>) = end
                    .memberships
                    .iter()
                    .partition(|m| groups.contains_key(m.group_id.as_str()) && identities.contains_key(m.identity_id.as_str()));
                let memberships: std::collections::BTreeSet<&$crate::store::SyncedMembership> = kept.into_iter().collect();
                let member_rows: Vec<Vec<SqlValue>> = memberships
                    .iter()
                    .map(|m| {
                        vec![
                            SqlValue::Text(integration.to_string()),
                            SqlValue::Text(m.group_id.clone()),
                            SqlValue::Text(m.identity_id.clone()),
                        ]
                    })
                    .collect();
                let per = rows::rows_within(&rows::GROUP_MEMBERS, rows::BULK_BINDS);
                Self::lc_insert_rows_with(&mut tx, &rows::GROUP_MEMBERS, member_rows, "", per, $anonymous).await?;
                let mut deleted: Vec<String> = Vec::new();
                if !unseen.is_empty() {
                    // Deleted only if still the sync's own rows.
                    Self::lc_execute_for_ids(
                        &mut tx,
                        "DELETE FROM resources WHERE source = $1 AND id IN ({ids})",
                        &[SqlValue::Text(integration.to_string())],
                        &unseen,
                    )
                    .await?;
                    deleted = unseen;
                    Self::bump_epoch(&mut tx, "resources").await?;
                }
                let details = serde_json::json!({
                    "sync_id": end.sync_id,
                    "full": end.full,
                    "deleted": deleted.len(),
                    "deleted_ids": some_ids(&deleted),
                    "identities": identities.len(),
                    "groups": groups.len(),
                    "memberships": memberships.len(),
                    "memberships_left_out": left_out.len(),
                });
                Self::append_audit(&mut tx, finished(details)).await?;
                tx.commit().await?;
                Ok(deleted.len() as u64)
            }

            async fn list_integration_groups(
                &self,
                integration: &str,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::store::IntegrationGroup>, $crate::store::StoreError> {
                use sqlx::Row;
                use $crate::store::{IntegrationGroup, Refusal, StoreError, SyncedIdentity};
                let known: Option<String> = sqlx::query_scalar("SELECT name FROM integrations WHERE name = $1")
                    .bind(integration)
                    .fetch_optional(&self.pool)
                    .await?;
                if known.is_none() {
                    return Err(StoreError::Refused(Refusal::NotFound(format!(
                        "no integration named {integration:?}"
                    ))));
                }
                // One statement, so one snapshot: a sync completing meanwhile cannot mix its
                // members into the groups of the one before.
                let rows = sqlx::query(
                    "SELECT g.external_id AS group_id, g.display_name AS group_name, i.external_id AS external_id, \
                     i.email AS email, i.display_name AS display_name FROM \
                     (SELECT external_id, display_name FROM integration_groups \
                      WHERE integration = $1 AND ($2 IS NULL OR external_id > $2) ORDER BY external_id LIMIT $3) g \
                     LEFT JOIN integration_group_members m ON m.integration = $1 AND m.group_id = g.external_id \
                     LEFT JOIN integration_identities i ON i.integration = m.integration AND i.external_id = m.identity_id \
                     ORDER BY g.external_id",
                )
                .bind(integration)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                let mut groups: Vec<IntegrationGroup> = Vec::new();
                for row in &rows {
                    let group_id: String = row.try_get("group_id")?;
                    if groups.last().is_none_or(|g| g.external_id != group_id) {
                        groups.push(IntegrationGroup {
                            external_id: group_id,
                            display_name: row.try_get("group_name")?,
                            members: Vec::new(),
                        });
                    }
                    // A group without members has one row, with no identity.
                    let Some(external_id) = row.try_get::<Option<String>, _>("external_id")? else {
                        continue;
                    };
                    if let Some(group) = groups.last_mut() {
                        group.members.push(SyncedIdentity {
                            external_id,
                            email: row.try_get("email")?,
                            display_name: row.try_get("display_name")?,
                        });
                    }
                }
                for group in &mut groups {
                    group.members.sort_by(|a, b| {
                        (a.email.is_empty(), &a.email, &a.external_id).cmp(&(b.email.is_empty(), &b.email, &b.external_id))
                    });
                }
                Ok(groups)
            }

            async fn type_permissions(
                &self,
                integration: &str,
                resource_type: &str,
            ) -> Result<Vec<String>, $crate::store::StoreError> {
                let text: Option<String> = sqlx::query_scalar(
                    "SELECT permissions FROM resource_type_permissions WHERE integration = $1 AND resource_type = $2",
                )
                .bind(integration)
                .bind(resource_type)
                .fetch_optional(&self.pool)
                .await?;
                match text {
                    None => Ok(Vec::new()),
                    Some(text) => serde_json::from_str(&text)
                        .map_err(|err| $crate::store::StoreError::corrupt("resource type permissions", err)),
                }
            }
        }
    };
}

pub(crate) use impl_connectors;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn r(id: &str, parent: Option<&str>) -> SyncedResource {
        SyncedResource {
            id: id.into(),
            resource_type: "t".into(),
            name: id.into(),
            parent: parent.map(str::to_string),
            tags: BTreeMap::new(),
            owners: Vec::new(),
            digest: None,
        }
    }

    #[test]
    fn ancestors_come_from_the_page_in_any_order_and_from_the_store() {
        // grandchild, child, parent in the page (child first); root stored with its own parent.
        let page = [
            r("gc", Some("c")),
            r("c", Some("p")),
            r("p", Some("root")),
            r("u", Some("p")),
        ];
        let known = HashMap::from([("root".to_string(), vec!["top".to_string()])]);
        let got = page_ancestors(&page, &[true, true, true, false], &known).expect("no cycle");
        assert_eq!(
            got[0].as_deref(),
            Some(&["c", "p", "root", "top"].map(String::from)[..])
        );
        assert_eq!(
            got[1].as_deref(),
            Some(&["p", "root", "top"].map(String::from)[..])
        );
        assert_eq!(
            got[2].as_deref(),
            Some(&["root", "top"].map(String::from)[..])
        );
        assert_eq!(got[3], None, "not rewritten");
    }

    #[test]
    fn a_parent_known_nowhere_is_the_only_ancestor_and_cycles_are_refused() {
        let got = page_ancestors(&[r("a", Some("x"))], &[true], &HashMap::new()).expect("ok");
        assert_eq!(got[0].as_deref(), Some(&["x".to_string()][..]));
        let cycle = [r("a", Some("b")), r("b", Some("a"))];
        assert!(page_ancestors(&cycle, &[true, true], &HashMap::new()).is_err());
        // Through the store: b's stored ancestors hold a.
        let known = HashMap::from([("b".to_string(), vec!["a".to_string()])]);
        assert!(page_ancestors(&[r("a", Some("b"))], &[true], &known).is_err());
    }

    #[test]
    fn retries_double_from_the_base() {
        let now = Utc::now();
        let base = std::time::Duration::from_secs(15);
        let waits: Vec<i64> = (1..=5)
            .map(|n| (retry_at(now, base, n) - now).num_seconds())
            .collect();
        assert_eq!(waits, [15, 30, 60, 120, 240]);
        assert!(retry_at(now, base, i64::MAX) > now);
    }
}
