//! The lifecycle's queries, written once for both backends (see `sql_store.rs` for why one macro).
//!
//! Locks are always taken in the same order, request → grant → command, so that two servers on one
//! PostgreSQL database queue behind each other instead of deadlocking. Work that any server may pick
//! up (expiry) is claimed with `FOR UPDATE SKIP LOCKED`: a row one server is handling is skipped by
//! the others, and re-checked under the lock, so every expiry is handled exactly once.
//!
//! A grant is reference-counted by what it holds: granting (identity, resource, permission) that
//! another live grant already holds sends no command, and revoking one that another live grant still
//! needs sends no revoke. The connector sees one grant and one revoke per stretch of access.

/// Implements [`super::LifecycleStore`] for `$store`.
macro_rules! impl_lifecycle {
    ($store:ty, $db:ty, for_update = $for_update:literal,
     for_share = $for_share:literal, skip_locked = $skip_locked:literal) => {
        impl $store {
            fn lc_request_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::store::RequestRecord, $crate::store::StoreError> {
                use sqlx::Row;
                let id: String = row.try_get("id")?;
                let state: String = row.try_get("state")?;
                let items: String = row.try_get("items")?;
                Ok($crate::store::RequestRecord {
                    state: state
                        .parse()
                        .map_err(|err| $crate::store::StoreError::corrupt(format!("request {id} state"), err))?,
                    items: serde_json::from_str(&items)
                        .map_err(|err| $crate::store::StoreError::corrupt(format!("request {id} items"), err))?,
                    requester: row.try_get("requester")?,
                    requested_duration_secs: row.try_get("requested_duration_secs")?,
                    duration_secs: row.try_get("duration_secs")?,
                    justification: row.try_get("justification")?,
                    outcome: row.try_get("outcome")?,
                    decision: row.try_get("decision")?,
                    digest: row.try_get("digest")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                    pending_expires_at: row.try_get("pending_expires_at")?,
                    activated_at: row.try_get("activated_at")?,
                    expires_at: row.try_get("expires_at")?,
                    end_reason: row.try_get("end_reason")?,
                    id,
                })
            }

            fn lc_grant_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::store::GrantRecord, $crate::store::StoreError> {
                use sqlx::Row;
                let state: String = row.try_get("state")?;
                let version: i64 = row.try_get("flow_version")?;
                Ok($crate::store::GrantRecord {
                    id: row.try_get("id")?,
                    request_id: row.try_get("request_id")?,
                    identity: row.try_get("identity")?,
                    integration: row.try_get("integration")?,
                    resource_id: row.try_get("resource_id")?,
                    resource_type: row.try_get("resource_type")?,
                    permission: row.try_get("permission")?,
                    flow: latch_core::decide::FlowRef {
                        name: row.try_get("flow_name")?,
                        version: u32::try_from(version)
                            .map_err(|err| $crate::store::StoreError::corrupt("grant flow version", err))?,
                    },
                    state: $crate::store::GrantState::parse(&state)?,
                    desired: row.try_get("desired")?,
                    observed: row.try_get("observed")?,
                    generation: row.try_get("generation")?,
                    duration_secs: row.try_get("duration_secs")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                    started_at: row.try_get("started_at")?,
                    expires_at: row.try_get("expires_at")?,
                    end_reason: row.try_get("end_reason")?,
                })
            }

            fn lc_resource_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::store::ResourceRecord, $crate::store::StoreError> {
                use sqlx::Row;
                let id: String = row.try_get("id")?;
                let json = |column: &str| -> Result<String, $crate::store::StoreError> {
                    Ok(row.try_get::<String, _>(column)?)
                };
                let corrupt = |what: &str, err: serde_json::Error| {
                    $crate::store::StoreError::corrupt(format!("resource {id:?} {what}"), err)
                };
                Ok($crate::store::ResourceRecord {
                    ancestors: serde_json::from_str(&json("ancestors")?).map_err(|e| corrupt("ancestors", e))?,
                    tags: serde_json::from_str(&json("tags")?).map_err(|e| corrupt("tags", e))?,
                    owners: serde_json::from_str(&json("owners")?).map_err(|e| corrupt("owners", e))?,
                    integration: row.try_get("integration")?,
                    resource_type: row.try_get("resource_type")?,
                    name: row.try_get("name")?,
                    parent: row.try_get("parent")?,
                    source: row.try_get("source")?,
                    first_seen: row.try_get("first_seen")?,
                    last_seen: row.try_get("last_seen")?,
                    id,
                })
            }

            fn lc_command_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::store::CommandRecord, $crate::store::StoreError> {
                use sqlx::Row;
                let payload: String = row.try_get("payload")?;
                Ok($crate::store::CommandRecord {
                    seq: row.try_get("seq")?,
                    id: row.try_get("id")?,
                    grant_id: row.try_get("grant_id")?,
                    integration: row.try_get("integration")?,
                    kind: row.try_get("kind")?,
                    generation: row.try_get("generation")?,
                    payload: serde_json::from_str(&payload)
                        .map_err(|err| $crate::store::StoreError::corrupt("command payload", err))?,
                    created_at: row.try_get("created_at")?,
                    completed_at: row.try_get("completed_at")?,
                    result: row.try_get("result")?,
                })
            }

            /// Reads a request, locking it for the rest of the transaction.
            async fn lc_lock_request(
                tx: &mut sqlx::Transaction<'static, $db>,
                id: &str,
            ) -> Result<Option<$crate::store::RequestRecord>, $crate::store::StoreError> {
                Ok(Self::lc_requests_by_id(tx, &[id.to_string()]).await?.pop())
            }

            /// These requests (those that exist), locked for the rest of the transaction, in the
            /// order of `ids`.
            async fn lc_requests_by_id(
                tx: &mut sqlx::Transaction<'static, $db>,
                ids: &[String],
            ) -> Result<Vec<$crate::store::RequestRecord>, $crate::store::StoreError> {
                let rows = Self::lc_fetch_for_ids(
                    tx,
                    concat!("SELECT * FROM access_requests WHERE id IN ({ids})", $for_update),
                    ids,
                )
                .await?;
                let mut found = std::collections::HashMap::new();
                for row in &rows {
                    let request = Self::lc_request_from_row(row)?;
                    found.insert(request.id.clone(), request);
                }
                Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
            }

            /// A request's grants, locked for the rest of the transaction.
            async fn lc_request_grants(
                tx: &mut sqlx::Transaction<'static, $db>,
                request_id: &str,
            ) -> Result<Vec<$crate::store::GrantRecord>, $crate::store::StoreError> {
                Self::lc_grants_of_requests(tx, &[request_id.to_string()]).await
            }

            /// A request's grants, read without locking (for showing them).
            async fn lc_read_grants(
                tx: &mut sqlx::Transaction<'static, $db>,
                request_id: &str,
            ) -> Result<Vec<$crate::store::GrantRecord>, $crate::store::StoreError> {
                let rows = sqlx::query("SELECT * FROM grants WHERE request_id = $1 ORDER BY id")
                    .bind(request_id)
                    .fetch_all(&mut **tx)
                    .await?;
                rows.iter().map(Self::lc_grant_from_row).collect()
            }

            async fn lc_view(
                tx: &mut sqlx::Transaction<'static, $db>,
                request: $crate::store::RequestRecord,
            ) -> Result<$crate::store::RequestView, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT * FROM approvals WHERE request_id = $1 ORDER BY at, approver")
                    .bind(&request.id)
                    .fetch_all(&mut **tx)
                    .await?;
                let approvals = rows
                    .iter()
                    .map(|row| {
                        Ok($crate::store::ApprovalRecord {
                            request_id: row.try_get("request_id")?,
                            approver: row.try_get("approver")?,
                            verdict: row.try_get("verdict")?,
                            reason: row.try_get("reason")?,
                            request_digest: row.try_get("request_digest")?,
                            at: row.try_get("at")?,
                        })
                    })
                    .collect::<Result<Vec<_>, $crate::store::StoreError>>()?;
                let grants = Self::lc_read_grants(tx, &request.id).await?;
                Ok($crate::store::RequestView { request, approvals, grants })
            }

            /// Writes a request's state, times and end reason back.
            async fn lc_save_request(
                tx: &mut sqlx::Transaction<'static, $db>,
                request: &$crate::store::RequestRecord,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "UPDATE access_requests SET state = $2, updated_at = $3, activated_at = $4, \
                     expires_at = $5, end_reason = $6 WHERE id = $1",
                )
                .bind(&request.id)
                .bind(request.state.as_str())
                .bind(request.updated_at)
                .bind(request.activated_at)
                .bind(request.expires_at)
                .bind(&request.end_reason)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// Moves a request by `event` (or refuses, if the state machine does not allow it) and
            /// records the audit event.
            fn lc_transition(
                request: &mut $crate::store::RequestRecord,
                event: latch_core::request::Event,
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
                details: serde_json::Value,
                audit: &mut Vec<$crate::store::NewAuditEvent>,
            ) -> Result<(), $crate::store::StoreError> {
                let from = request.state;
                request.state = from
                    .apply(event)
                    .map_err(|err| $crate::store::StoreError::Refused($crate::store::Refusal::FailedPrecondition(
                        format!("request {}: {err}", request.id),
                    )))?;
                request.updated_at = now;
                let mut details = details;
                if let serde_json::Value::Object(map) = &mut details {
                    map.insert("from".into(), from.as_str().into());
                    map.insert("to".into(), request.state.as_str().into());
                }
                audit.push($crate::store::NewAuditEvent {
                    at: now,
                    actor: actor.to_string(),
                    action: $crate::store::lifecycle_action(request.state, event),
                    subject: request.id.clone(),
                    details,
                });
                Ok(())
            }

            async fn lc_insert_command(
                tx: &mut sqlx::Transaction<'static, $db>,
                grant_id: &str,
                grant: &$crate::store::NewGrant,
                kind: &str,
                generation: i64,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                let row = $crate::store::rows::command_row(grant_id, grant, kind, generation, now);
                Self::lc_insert_rows(tx, &$crate::store::rows::COMMANDS, vec![row]).await
            }

            /// Inserts rows into `table`, many per statement.
            async fn lc_insert_rows(
                tx: &mut sqlx::Transaction<'static, $db>,
                table: &$crate::store::rows::Table,
                rows: Vec<Vec<$crate::store::rows::SqlValue>>,
            ) -> Result<(), $crate::store::StoreError> {
                let per = $crate::store::rows::rows_per_statement(table);
                Self::lc_insert_rows_with(tx, table, rows, "", per, false).await.map(|_| ())
            }

            /// Inserts rows into `table`, `per_statement` at a time, each statement ending with
            /// `suffix` (an `ON CONFLICT` clause, say, without placeholders). With `anonymous`,
            /// placeholders are written as `?` (SQLite only; see `rows::anonymous_placeholders`).
            /// Returns how many rows were written.
            async fn lc_insert_rows_with(
                tx: &mut sqlx::Transaction<'static, $db>,
                table: &$crate::store::rows::Table,
                rows: Vec<Vec<$crate::store::rows::SqlValue>>,
                suffix: &str,
                per_statement: usize,
                anonymous: bool,
            ) -> Result<u64, $crate::store::StoreError> {
                use $crate::store::rows::SqlValue;
                let mut written = 0;
                for chunk in rows.chunks(per_statement.max(1)) {
                    let mut sql = $crate::store::rows::insert_sql(table, chunk.len()) + suffix;
                    if anonymous {
                        sql = $crate::store::rows::anonymous_placeholders(&sql);
                    }
                    // Only numbered placeholders are formatted in; every value is bound.
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for value in chunk.iter().flatten() {
                        query = match value {
                            SqlValue::Text(v) => query.bind(v.clone()),
                            SqlValue::OptText(v) => query.bind(v.clone()),
                            SqlValue::Int(v) => query.bind(*v),
                            SqlValue::OptInt(v) => query.bind(*v),
                            SqlValue::Time(v) => query.bind(*v),
                            SqlValue::OptTime(v) => query.bind(*v),
                        };
                    }
                    written += query
                        .execute(&mut **tx)
                        .await
                        .map_err(|err| $crate::store::StoreError::from_write(err, table.name))?
                        .rows_affected();
                }
                Ok(written)
            }

            /// The live grants (granting or active) that hold any of these (identity, resource,
            /// permission): their id, what they hold, and whether they are active.
            async fn lc_live_holdings(
                tx: &mut sqlx::Transaction<'static, $db>,
                wanted: &[(&str, &str, &str)],
            ) -> Result<Vec<(String, (String, String, String), bool)>, $crate::store::StoreError> {
                use sqlx::Row;
                let mut out = Vec::new();
                for chunk in wanted.chunks(300) {
                    let values: Vec<String> = (0..chunk.len())
                        .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
                        .collect();
                    // Driven from the list (VALUES columns are `column1..3` on both backends), so
                    // each entry is one lookup in the holdings index.
                    let sql = format!(
                        "SELECT g.id AS id, g.identity AS identity, g.resource_id AS resource_id, \
                         g.permission AS permission, g.state AS state FROM (VALUES {}) AS wanted \
                         JOIN grants g ON g.identity = wanted.column1 AND g.resource_id = wanted.column2 \
                         AND g.permission = wanted.column3 WHERE g.state IN ('granting', 'active')",
                        values.join(", ")
                    );
                    // Only numbered placeholders are formatted in; every value is bound.
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for (identity, resource_id, permission) in chunk {
                        query = query.bind(*identity).bind(*resource_id).bind(*permission);
                    }
                    for row in query.fetch_all(&mut **tx).await? {
                        let state: String = row.try_get("state")?;
                        out.push((
                            row.try_get("id")?,
                            (row.try_get("identity")?, row.try_get("resource_id")?, row.try_get("permission")?),
                            state == "active",
                        ));
                    }
                }
                Ok(out)
            }

            /// Which of these (identity, resource, permission) some active grant holds now.
            async fn lc_active_holdings(
                tx: &mut sqlx::Transaction<'static, $db>,
                wanted: &[(&str, &str, &str)],
            ) -> Result<std::collections::HashSet<(String, String, String)>, $crate::store::StoreError> {
                Ok(Self::lc_live_holdings(tx, wanted)
                    .await?
                    .into_iter()
                    .filter(|(_, _, active)| *active)
                    .map(|(_, held, _)| held)
                    .collect())
            }

            /// Creates one grant. When another active grant already holds the same access, the new
            /// grant is active at once and no command is sent. Returns its id and whether it is active.
            async fn lc_insert_grant(
                tx: &mut sqlx::Transaction<'static, $db>,
                request_id: Option<&str>,
                grant: &$crate::store::NewGrant,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<(String, bool), $crate::store::StoreError> {
                let id = uuid::Uuid::now_v7().to_string();
                let wanted = [(grant.identity.as_str(), grant.resource_id.as_str(), grant.permission.as_str())];
                let present = !Self::lc_active_holdings(tx, &wanted).await?.is_empty();
                Self::lc_write_grant(tx, &id, request_id, grant, present, None, now).await?;
                Ok((id, present))
            }

            /// Writes a grant row, and its grant command unless the access is already `present`.
            async fn lc_write_grant(
                tx: &mut sqlx::Transaction<'static, $db>,
                id: &str,
                request_id: Option<&str>,
                grant: &$crate::store::NewGrant,
                present: bool,
                expires_at: Option<chrono::DateTime<chrono::Utc>>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                let row = $crate::store::rows::grant_row(id, request_id, grant, present, expires_at, now);
                Self::lc_insert_rows(tx, &$crate::store::rows::GRANTS, vec![row]).await?;
                if !present {
                    Self::lc_insert_command(tx, id, grant, "grant", 1, now).await?;
                }
                Ok(())
            }

            /// The first of `flows` whose version is no longer current (changed or deleted), if any.
            /// A shared row lock keeps the others current until the transaction ends.
            async fn lc_stale_flow(
                tx: &mut sqlx::Transaction<'static, $db>,
                flows: &[latch_core::decide::FlowRef],
            ) -> Result<Option<String>, $crate::store::StoreError> {
                use sqlx::Row;
                for flow in flows {
                    let head = sqlx::query(concat!(
                        "SELECT current_version, deleted_at IS NOT NULL AS deleted \
                         FROM access_flow_heads WHERE name = $1",
                        $for_share
                    ))
                    .bind(&flow.name)
                    .fetch_optional(&mut **tx)
                    .await?;
                    let current = match &head {
                        Some(row) if !row.try_get::<bool, _>("deleted")? => {
                            row.try_get::<i64, _>("current_version")? == i64::from(flow.version)
                        }
                        _ => false,
                    };
                    if !current {
                        return Ok(Some(flow.name.clone()));
                    }
                }
                Ok(None)
            }

            /// The one active request through which the requester holds every one of `grants`,
            /// if there is one.
            async fn lc_holding_request(
                tx: &mut sqlx::Transaction<'static, $db>,
                grants: &[$crate::store::NewGrant],
            ) -> Result<Option<String>, $crate::store::StoreError> {
                let mut common: Option<std::collections::BTreeSet<String>> = None;
                for grant in grants {
                    let ids: Vec<String> = sqlx::query_scalar(
                        "SELECT g.request_id FROM grants g JOIN access_requests r ON r.id = g.request_id \
                         WHERE g.identity = $1 AND g.resource_id = $2 AND g.permission = $3 \
                         AND g.state = 'active' AND r.state = 'active'",
                    )
                    .bind(&grant.identity)
                    .bind(&grant.resource_id)
                    .bind(&grant.permission)
                    .fetch_all(&mut **tx)
                    .await?;
                    let ids: std::collections::BTreeSet<String> = ids.into_iter().collect();
                    common = Some(match common {
                        None => ids,
                        Some(before) => before.intersection(&ids).cloned().collect(),
                    });
                }
                Ok(common.and_then(|ids| ids.into_iter().next()))
            }

            /// Extends held access: to `wanted` from now, never past the flows' maximum counted from
            /// activation, never shorter than it already was.
            async fn lc_extend_held(
                tx: &mut sqlx::Transaction<'static, $db>,
                id: &str,
                extension: $crate::store::Extension,
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
                audit: &mut Vec<$crate::store::NewAuditEvent>,
            ) -> Result<$crate::store::RequestView, $crate::store::StoreError> {
                let Some(mut request) = Self::lc_lock_request(tx, id).await? else {
                    return Err($crate::store::StoreError::Conflict(format!("request {id}")));
                };
                let activated = request.activated_at.unwrap_or(now);
                let mut until = now + chrono::Duration::seconds(extension.wanted_secs);
                if let Some(max) = extension.max_secs {
                    until = until.min(activated + chrono::Duration::seconds(max));
                }
                let until = until.max(request.expires_at.unwrap_or(now));
                let change = $crate::store::RequestChange::Extend {
                    expires_at: until,
                    details: serde_json::json!({ "asked_again_secs": extension.wanted_secs }),
                };
                Self::lc_apply_change(tx, &mut request, change, actor, now, audit).await?;
                Self::lc_view(tx, request).await
            }

            /// Approved → granting: one grant per item, commands for those not already held, and
            /// straight on to active when every item was already held.
            async fn lc_send_grants(
                tx: &mut sqlx::Transaction<'static, $db>,
                request: &mut $crate::store::RequestRecord,
                grants: &[$crate::store::NewGrant],
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
                audit: &mut Vec<$crate::store::NewAuditEvent>,
            ) -> Result<(), $crate::store::StoreError> {
                if grants.is_empty() {
                    return Err($crate::store::StoreError::corrupt(
                        format!("request {}", request.id),
                        "approved without anything to grant",
                    ));
                }
                let mut created = Vec::with_capacity(grants.len());
                let mut all_present = true;
                for grant in grants {
                    let (id, present) = Self::lc_insert_grant(tx, Some(&request.id), grant, now).await?;
                    all_present &= present;
                    created.push(serde_json::json!({
                        "grant_id": id,
                        "resource_id": grant.resource_id,
                        "permission": grant.permission,
                        "flow": grant.flow,
                        "already_held": present,
                    }));
                }
                Self::lc_transition(
                    request,
                    latch_core::request::Event::SendGrants,
                    actor,
                    now,
                    serde_json::json!({ "grants": created }),
                    audit,
                )?;
                if all_present {
                    Self::lc_activate(tx, request, actor, now, audit).await?;
                }
                Ok(())
            }

            /// Granting → active: the clock starts now.
            async fn lc_activate(
                tx: &mut sqlx::Transaction<'static, $db>,
                request: &mut $crate::store::RequestRecord,
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
                audit: &mut Vec<$crate::store::NewAuditEvent>,
            ) -> Result<(), $crate::store::StoreError> {
                let secs = request.duration_secs.unwrap_or(0);
                let expires_at = now + chrono::Duration::seconds(secs);
                request.activated_at = Some(now);
                request.expires_at = Some(expires_at);
                Self::lc_transition(
                    request,
                    latch_core::request::Event::GrantsApplied,
                    actor,
                    now,
                    serde_json::json!({ "expires_at": expires_at }),
                    audit,
                )?;
                sqlx::query(
                    "UPDATE grants SET expires_at = $2, started_at = COALESCE(started_at, $3), updated_at = $3 \
                     WHERE request_id = $1 AND state = 'active'",
                )
                .bind(&request.id)
                .bind(expires_at)
                .bind(now)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// The rows `template` (with `{ids}` where the id list goes) selects for `ids`, many ids
            /// per statement.
            async fn lc_fetch_for_ids(
                tx: &mut sqlx::Transaction<'static, $db>,
                template: &str,
                ids: &[String],
            ) -> Result<Vec<<$db as sqlx::Database>::Row>, $crate::store::StoreError> {
                Self::lc_fetch_for_ids_with(tx, template, ids, 500, false).await
            }

            /// As `lc_fetch_for_ids`, `per_statement` ids at a time. With `anonymous`,
            /// placeholders are written as `?` (SQLite only; see `rows::anonymous_placeholders`).
            async fn lc_fetch_for_ids_with(
                tx: &mut sqlx::Transaction<'static, $db>,
                template: &str,
                ids: &[String],
                per_statement: usize,
                anonymous: bool,
            ) -> Result<Vec<<$db as sqlx::Database>::Row>, $crate::store::StoreError> {
                let mut out = Vec::new();
                for chunk in ids.chunks(per_statement.max(1)) {
                    let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
                    let mut sql = template.replace("{ids}", &placeholders.join(", "));
                    if anonymous {
                        sql = $crate::store::rows::anonymous_placeholders(&sql);
                    }
                    // Only placeholders are formatted in; every id is bound.
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for id in chunk {
                        query = query.bind(id.as_str());
                    }
                    out.extend(query.fetch_all(&mut **tx).await?);
                }
                Ok(out)
            }

            /// Runs `template` (with `{ids}` where the id list goes) for `ids`, many per statement.
            /// `params` are bound first, as `$1..$k`; the ids follow.
            async fn lc_execute_for_ids(
                tx: &mut sqlx::Transaction<'static, $db>,
                template: &str,
                params: &[$crate::store::rows::SqlValue],
                ids: &[String],
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::rows::SqlValue;
                for chunk in ids.chunks(500) {
                    let placeholders: Vec<String> =
                        (1..=chunk.len()).map(|n| format!("${}", params.len() + n)).collect();
                    let sql = template.replace("{ids}", &placeholders.join(", "));
                    // Only numbered placeholders are formatted in; every value is bound.
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for value in params {
                        query = match value {
                            SqlValue::Text(v) => query.bind(v.clone()),
                            SqlValue::OptText(v) => query.bind(v.clone()),
                            SqlValue::Int(v) => query.bind(*v),
                            SqlValue::OptInt(v) => query.bind(*v),
                            SqlValue::Time(v) => query.bind(*v),
                            SqlValue::OptTime(v) => query.bind(*v),
                        };
                    }
                    for id in chunk {
                        query = query.bind(id.clone());
                    }
                    query.execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Of these (identity, resource, permission), the ones some live grant other than
            /// `except` holds.
            async fn lc_held_elsewhere(
                tx: &mut sqlx::Transaction<'static, $db>,
                wanted: &[(&str, &str, &str)],
                except: &std::collections::HashSet<&str>,
            ) -> Result<std::collections::HashSet<(String, String, String)>, $crate::store::StoreError> {
                Ok(Self::lc_live_holdings(tx, wanted)
                    .await?
                    .into_iter()
                    .filter(|(id, _, _)| !except.contains(id.as_str()))
                    .map(|(_, held, _)| held)
                    .collect())
            }

            /// Takes grants away together, each with its reason (`None` means expiry). One revoke
            /// command goes out per (person, resource, permission) that no other live grant still
            /// holds; the other grants end at once. Returns the ids of the grants now revoking.
            async fn lc_revoke_grants(
                tx: &mut sqlx::Transaction<'static, $db>,
                grants: &[($crate::store::GrantRecord, Option<String>)],
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
                audit: &mut Vec<$crate::store::NewAuditEvent>,
            ) -> Result<std::collections::HashSet<String>, $crate::store::StoreError> {
                use $crate::store::rows::{self, SqlValue};
                let live: Vec<&($crate::store::GrantRecord, Option<String>)> =
                    grants.iter().filter(|(g, _)| g.state.is_live()).collect();
                let mut revoking = std::collections::HashSet::new();
                if live.is_empty() {
                    return Ok(revoking);
                }
                let ids: std::collections::HashSet<&str> = live.iter().map(|(g, _)| g.id.as_str()).collect();
                let wanted: Vec<(&str, &str, &str)> = live
                    .iter()
                    .map(|(g, _)| (g.identity.as_str(), g.resource_id.as_str(), g.permission.as_str()))
                    .collect();
                let elsewhere = Self::lc_held_elsewhere(tx, &wanted, &ids).await?;
                // (state, reason) → grant ids, so each group is one statement.
                let mut groups: std::collections::BTreeMap<(&'static str, Option<String>), Vec<String>> =
                    std::collections::BTreeMap::new();
                let mut commands = Vec::new();
                let mut seen = std::collections::HashSet::new();
                for (grant, reason) in &live {
                    let key = (grant.identity.clone(), grant.resource_id.clone(), grant.permission.clone());
                    // Held by a grant outside the set, or by one earlier in it: no revoke yet.
                    let still_held = elsewhere.contains(&key) || !seen.insert(key);
                    let state = match (still_held, reason) {
                        (false, _) => "revoking",
                        (true, None) => "expired",
                        (true, Some(_)) => "revoked",
                    };
                    groups.entry((state, reason.clone())).or_default().push(grant.id.clone());
                    if !still_held {
                        revoking.insert(grant.id.clone());
                        let new = $crate::store::NewGrant {
                            identity: grant.identity.clone(),
                            integration: grant.integration.clone(),
                            resource_id: grant.resource_id.clone(),
                            resource_type: grant.resource_type.clone(),
                            permission: grant.permission.clone(),
                            flow: grant.flow.clone(),
                            duration_secs: grant.duration_secs,
                        };
                        commands.push(rows::command_row(&grant.id, &new, "revoke", grant.generation + 1, now));
                    }
                    audit.push($crate::store::NewAuditEvent {
                        at: now,
                        actor: actor.to_string(),
                        action: if still_held { "grant.ended" } else { "grant.revoking" },
                        subject: grant.request_id.clone().unwrap_or_else(|| grant.id.clone()),
                        details: serde_json::json!({
                            "grant_id": grant.id,
                            "identity": grant.identity,
                            "resource_id": grant.resource_id,
                            "permission": grant.permission,
                            "flow": grant.flow,
                            "reason": reason.as_deref().unwrap_or("expired"),
                            "still_held_by_another_grant": still_held,
                        }),
                    });
                }
                for ((state, reason), group) in &groups {
                    Self::lc_execute_for_ids(
                        tx,
                        "UPDATE grants SET state = $1, desired = 'absent', generation = generation + 1, \
                         end_reason = $2, updated_at = $3 WHERE id IN ({ids})",
                        &[SqlValue::Text(state.to_string()), SqlValue::OptText(reason.clone()), SqlValue::Time(now)],
                        group,
                    )
                    .await?;
                }
                // Grant commands still waiting are stale now; the revokes supersede them. (Before
                // the revokes are written, which must not be superseded.)
                let all: Vec<String> = live.iter().map(|(g, _)| g.id.clone()).collect();
                Self::lc_execute_for_ids(
                    tx,
                    "UPDATE commands SET completed_at = $1, result = 'superseded' \
                     WHERE completed_at IS NULL AND grant_id IN ({ids})",
                    &[SqlValue::Time(now)],
                    &all,
                )
                .await?;
                Self::lc_insert_rows(tx, &rows::COMMANDS, commands).await?;
                Ok(revoking)
            }

            /// Ends requests' access together, each with its reason (`None`: expiry): revoking,
            /// their live grants revoked, and finished at once where no revoke command was needed.
            async fn lc_end_requests(
                tx: &mut sqlx::Transaction<'static, $db>,
                requests: &mut [($crate::store::RequestRecord, Option<String>)],
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
                audit: &mut Vec<$crate::store::NewAuditEvent>,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::GrantState;
                use latch_core::request::Event;
                if requests.is_empty() {
                    return Ok(());
                }
                for (request, reason) in requests.iter_mut() {
                    let event = if reason.is_none() { Event::ExpiryReached } else { Event::Revoke };
                    if reason.is_some() {
                        request.end_reason = reason.clone();
                    }
                    let details = serde_json::json!({ "reason": reason.as_deref().unwrap_or("expired") });
                    Self::lc_transition(request, event, actor, now, details, audit)?;
                }
                let ids: Vec<String> = requests.iter().map(|(r, _)| r.id.clone()).collect();
                let grants = Self::lc_grants_of_requests(tx, &ids).await?;
                let reason_of: std::collections::HashMap<&str, &Option<String>> =
                    requests.iter().map(|(r, reason)| (r.id.as_str(), reason)).collect();
                let items: Vec<($crate::store::GrantRecord, Option<String>)> = grants
                    .iter()
                    .map(|g| {
                        let reason = g.request_id.as_deref().and_then(|id| reason_of.get(id)).and_then(|r| (*r).clone());
                        (g.clone(), reason)
                    })
                    .collect();
                let revoking = Self::lc_revoke_grants(tx, &items, actor, now, audit).await?;
                for (request, _) in requests.iter_mut() {
                    // Done when none of its grants waits for a revoke.
                    let waiting = grants.iter().filter(|g| g.request_id.as_deref() == Some(request.id.as_str())).any(|g| {
                        if g.state.is_live() {
                            revoking.contains(&g.id)
                        } else {
                            matches!(g.state, GrantState::Revoking | GrantState::RevokeFailed)
                        }
                    });
                    if !waiting {
                        let event = if request.end_reason.is_none() { Event::RevokedOnExpiry } else { Event::RevokedEarly };
                        Self::lc_transition(request, event, actor, now, serde_json::json!({}), audit)?;
                    }
                }
                Self::lc_save_ended(tx, requests.iter().map(|(r, _)| r), now).await
            }

            /// Every grant of these requests, locked.
            async fn lc_grants_of_requests(
                tx: &mut sqlx::Transaction<'static, $db>,
                ids: &[String],
            ) -> Result<Vec<$crate::store::GrantRecord>, $crate::store::StoreError> {
                let rows = Self::lc_fetch_for_ids(
                    tx,
                    concat!("SELECT * FROM grants WHERE request_id IN ({ids}) ORDER BY id", $for_update),
                    ids,
                )
                .await?;
                rows.iter().map(Self::lc_grant_from_row).collect()
            }

            /// Writes back the state and end reason of requests whose access ended or is ending,
            /// one statement per (state, reason).
            async fn lc_save_ended<'r>(
                tx: &mut sqlx::Transaction<'static, $db>,
                requests: impl Iterator<Item = &'r $crate::store::RequestRecord>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::rows::SqlValue;
                let mut groups: std::collections::BTreeMap<(&'static str, Option<String>), Vec<String>> =
                    std::collections::BTreeMap::new();
                for request in requests {
                    groups
                        .entry((request.state.as_str(), request.end_reason.clone()))
                        .or_default()
                        .push(request.id.clone());
                }
                for ((state, reason), ids) in &groups {
                    Self::lc_execute_for_ids(
                        tx,
                        "UPDATE access_requests SET state = $1, end_reason = $2, updated_at = $3 WHERE id IN ({ids})",
                        &[SqlValue::Text(state.to_string()), SqlValue::OptText(reason.clone()), SqlValue::Time(now)],
                        ids,
                    )
                    .await?;
                }
                Ok(())
            }

            /// Ends one request's access (see `lc_end_requests`).
            async fn lc_end_request(
                tx: &mut sqlx::Transaction<'static, $db>,
                request: &mut $crate::store::RequestRecord,
                reason: Option<&str>,
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
                audit: &mut Vec<$crate::store::NewAuditEvent>,
            ) -> Result<(), $crate::store::StoreError> {
                let mut one = [(request.clone(), reason.map(str::to_string))];
                Self::lc_end_requests(tx, &mut one, actor, now, audit).await?;
                let [(ended, _)] = one;
                *request = ended;
                Ok(())
            }

            /// Moves a request on from what its grants say: granting → active when every grant is
            /// in place, granting → failed when one failed (revoking the rest), revoking → expired
            /// or revoked when every grant is gone.
            async fn lc_settle(
                tx: &mut sqlx::Transaction<'static, $db>,
                request: &mut $crate::store::RequestRecord,
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
                audit: &mut Vec<$crate::store::NewAuditEvent>,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::GrantState;
                use latch_core::request::{Event, RequestState};
                let grants = Self::lc_request_grants(tx, &request.id).await?;
                match request.state {
                    RequestState::Granting => {
                        if let Some(failed) = grants.iter().find(|g| g.state == GrantState::Failed) {
                            let why = failed.end_reason.clone().unwrap_or_else(|| "a grant failed".into());
                            request.end_reason = Some(why.clone());
                            Self::lc_transition(
                                request, Event::GrantFailed, actor, now,
                                serde_json::json!({ "reason": why, "grant_id": failed.id }), audit,
                            )?;
                            // Nothing may stay applied of a failed request.
                            let reason = Some(format!("request failed: {why}"));
                            let items: Vec<_> = grants.iter().map(|g| (g.clone(), reason.clone())).collect();
                            Self::lc_revoke_grants(tx, &items, actor, now, audit).await?;
                        } else if grants.iter().all(|g| g.state == GrantState::Active) {
                            Self::lc_activate(tx, request, actor, now, audit).await?;
                        }
                    }
                    RequestState::Revoking => {
                        let done = grants.iter().all(|g| {
                            matches!(g.state, GrantState::Expired | GrantState::Revoked | GrantState::Failed)
                        });
                        if done {
                            let event = if request.end_reason.is_none() {
                                Event::RevokedOnExpiry
                            } else {
                                Event::RevokedEarly
                            };
                            Self::lc_transition(request, event, actor, now, serde_json::json!({}), audit)?;
                        }
                    }
                    _ => {}
                }
                Self::lc_save_request(tx, request).await
            }

            /// Finds a command and locks its request (if any), its grant and the command itself, in
            /// the lifecycle's lock order. `Refusal::NotFound` if there is no such command.
            async fn lc_lock_command(
                tx: &mut sqlx::Transaction<'static, $db>,
                command_id: &str,
            ) -> Result<
                (Option<$crate::store::RequestRecord>, $crate::store::GrantRecord, $crate::store::CommandRecord),
                $crate::store::StoreError,
            > {
                use sqlx::Row;
                let found = sqlx::query(
                    "SELECT g.id AS grant_id, g.request_id AS request_id FROM commands c \
                     JOIN grants g ON g.id = c.grant_id WHERE c.id = $1",
                )
                .bind(command_id)
                .fetch_optional(&mut **tx)
                .await?;
                let Some(found) = found else {
                    return Err($crate::store::StoreError::Refused($crate::store::Refusal::NotFound(format!(
                        "no command with id {command_id:?}"
                    ))));
                };
                let grant_id: String = found.try_get("grant_id")?;
                let request_id: Option<String> = found.try_get("request_id")?;
                // Lock order: request, grant, command.
                let request = match &request_id {
                    Some(id) => Self::lc_lock_request(tx, id).await?,
                    None => None,
                };
                let grant_row = sqlx::query(concat!("SELECT * FROM grants WHERE id = $1", $for_update))
                    .bind(&grant_id)
                    .fetch_one(&mut **tx)
                    .await?;
                let grant = Self::lc_grant_from_row(&grant_row)?;
                let command_row = sqlx::query(concat!("SELECT * FROM commands WHERE id = $1", $for_update))
                    .bind(command_id)
                    .fetch_one(&mut **tx)
                    .await?;
                let command = Self::lc_command_from_row(&command_row)?;
                Ok((request, grant, command))
            }

            /// Whoever held this command holds it no longer.
            async fn lc_release_claim(
                tx: &mut sqlx::Transaction<'static, $db>,
                command_id: &str,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "UPDATE commands SET claimed_by = NULL, claim_until = NULL \
                     WHERE id = $1 AND claimed_by IS NOT NULL",
                )
                .bind(command_id)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// Records a connector's result for an open command locked with `lc_lock_command`:
            /// completes it (releasing its claim) and, unless its generation is stale, moves the
            /// grant and its request on.
            #[allow(clippy::too_many_arguments)]
            async fn lc_record_result(
                tx: &mut sqlx::Transaction<'static, $db>,
                request: Option<&mut $crate::store::RequestRecord>,
                grant: &$crate::store::GrantRecord,
                command: &$crate::store::CommandRecord,
                result: &$crate::store::CommandResult,
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
                audit: &mut Vec<$crate::store::NewAuditEvent>,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::{CommandResult, GrantState};
                let stale = command.generation != grant.generation;
                let outcome = match (result, stale) {
                    (_, true) => "stale".to_string(),
                    (CommandResult::Failed(why), false) => format!("failed: {why}"),
                    (_, false) => "done".to_string(),
                };
                sqlx::query(
                    "UPDATE commands SET completed_at = $2, result = $3, claimed_by = NULL, claim_until = NULL \
                     WHERE id = $1",
                )
                .bind(&command.id)
                .bind(now)
                .bind(&outcome)
                .execute(&mut **tx)
                .await?;
                if stale {
                    return Ok(());
                }
                let (state, observed, end_reason) = match (command.kind.as_str(), result, grant.state) {
                    ("grant", CommandResult::Failed(why), GrantState::Granting) => {
                        (GrantState::Failed, "unknown", Some(why.clone()))
                    }
                    ("grant", _, GrantState::Granting) => (GrantState::Active, "present", None),
                    // A revoke that had used up its attempts ends the same way when it finally
                    // goes through.
                    ("revoke", done, GrantState::Revoking | GrantState::RevokeFailed) if done.is_done() => {
                        let end = if grant.end_reason.is_none() { GrantState::Expired } else { GrantState::Revoked };
                        (end, "absent", grant.end_reason.clone())
                    }
                    // A failed revoke stays revoking; the connector retries it.
                    _ => (grant.state, grant.observed.as_str(), grant.end_reason.clone()),
                };
                let credentials_issued = match result {
                    CommandResult::DoneWithCredentials(sealed) if state == GrantState::Active => {
                        Self::lc_keep_credentials(tx, &grant.id, sealed, now).await?;
                        true
                    }
                    _ => false,
                };
                if command.kind == "revoke" && result.is_done() {
                    // The login is gone: so are its credentials.
                    sqlx::query("DELETE FROM grant_credentials WHERE grant_id = $1")
                        .bind(&grant.id)
                        .execute(&mut **tx)
                        .await?;
                }
                sqlx::query(
                    "UPDATE grants SET state = $2, observed = $3, end_reason = $4, updated_at = $5, \
                     started_at = CASE WHEN $2 = 'active' THEN $5 ELSE started_at END WHERE id = $1",
                )
                .bind(&grant.id)
                .bind(state.as_str())
                .bind(observed)
                .bind(&end_reason)
                .bind(now)
                .execute(&mut **tx)
                .await?;
                audit.push($crate::store::NewAuditEvent {
                    at: now,
                    actor: actor.to_string(),
                    action: "command.completed",
                    subject: grant.request_id.clone().unwrap_or_else(|| grant.id.clone()),
                    details: serde_json::json!({
                        "command_id": command.id,
                        "kind": command.kind,
                        "grant_id": grant.id,
                        "result": outcome,
                        "grant_state": state.as_str(),
                        "credentials_issued": credentials_issued,
                    }),
                });
                if let Some(request) = request {
                    Self::lc_settle(tx, request, actor, now, audit).await?;
                }
                Ok(())
            }

            /// Stores (or replaces: a redelivered grant made a new password) a grant's sealed
            /// credentials.
            async fn lc_keep_credentials(
                tx: &mut sqlx::Transaction<'static, $db>,
                grant_id: &str,
                sealed: &$crate::store::SealedCredentials,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO grant_credentials (grant_id, nonce, sealed, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (grant_id) DO UPDATE SET nonce = excluded.nonce, sealed = excluded.sealed, \
                     created_at = excluded.created_at",
                )
                .bind(grant_id)
                .bind(&sealed.nonce)
                .bind(&sealed.sealed)
                .bind(now)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            async fn lc_insert_approval(
                tx: &mut sqlx::Transaction<'static, $db>,
                approval: &$crate::store::ApprovalRecord,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO approvals (request_id, approver, verdict, reason, request_digest, at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&approval.request_id)
                .bind(&approval.approver)
                .bind(&approval.verdict)
                .bind(&approval.reason)
                .bind(&approval.request_digest)
                .bind(approval.at)
                .execute(&mut **tx)
                .await
                .map_err(|err| {
                    $crate::store::StoreError::from_write(
                        err,
                        &format!("{}'s answer to request {}", approval.approver, approval.request_id),
                    )
                })?;
                Ok(())
            }

            /// Applies a change the caller decided on.
            async fn lc_apply_change(
                tx: &mut sqlx::Transaction<'static, $db>,
                request: &mut $crate::store::RequestRecord,
                change: $crate::store::RequestChange,
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
                audit: &mut Vec<$crate::store::NewAuditEvent>,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::RequestChange;
                use latch_core::request::Event;
                match change {
                    RequestChange::Approve { approval, completes, grants } => {
                        if request.state != latch_core::request::RequestState::Pending {
                            return Err($crate::store::StoreError::Refused($crate::store::Refusal::FailedPrecondition(
                                format!("request {} is {}, not pending: it is already decided", request.id, request.state),
                            )));
                        }
                        // Approvals approve the request under the flows it was decided by; if one of
                        // them changed or was deleted since, the decision no longer holds.
                        let mut flows: Vec<latch_core::decide::FlowRef> = grants.iter().map(|g| g.flow.clone()).collect();
                        flows.sort();
                        flows.dedup();
                        if let Some(stale) = Self::lc_stale_flow(tx, &flows).await? {
                            return Err($crate::store::StoreError::Refused($crate::store::Refusal::FailedPrecondition(
                                format!(
                                    "flow {:?} changed after request {} was made, so it can no longer be approved; \
                                     ask again to have it decided under the current flow",
                                    stale, request.id
                                ),
                            )));
                        }
                        Self::lc_insert_approval(tx, &approval).await?;
                        audit.push($crate::store::NewAuditEvent {
                            at: now,
                            actor: actor.to_string(),
                            action: "approval.given",
                            subject: request.id.clone(),
                            details: serde_json::json!({
                                "approver": approval.approver,
                                "reason": approval.reason,
                                "request_digest": approval.request_digest,
                                "completes": completes,
                            }),
                        });
                        request.updated_at = now;
                        if completes {
                            Self::lc_transition(request, Event::Approve, actor, now, serde_json::json!({}), audit)?;
                            Self::lc_send_grants(tx, request, &grants, actor, now, audit).await?;
                        }
                    }
                    RequestChange::Deny { approval } => {
                        Self::lc_transition(
                            request, Event::Deny, actor, now,
                            serde_json::json!({ "approver": approval.approver, "reason": approval.reason }),
                            audit,
                        )?;
                        Self::lc_insert_approval(tx, &approval).await?;
                        request.end_reason = Some(format!("denied by {}: {}", approval.approver, approval.reason));
                    }
                    RequestChange::Cancel => {
                        request.end_reason = Some(format!("cancelled by {actor}"));
                        Self::lc_transition(request, Event::Cancel, actor, now, serde_json::json!({}), audit)?;
                    }
                    RequestChange::Revoke { reason } => {
                        Self::lc_end_request(tx, request, Some(&reason), actor, now, audit).await?;
                    }
                    RequestChange::Extend { expires_at, details } => {
                        let expires_at = $crate::store::stored_time(expires_at);
                        Self::lc_transition(request, Event::Extend, actor, now, details, audit)?;
                        request.expires_at = Some(expires_at);
                        sqlx::query(
                            "UPDATE grants SET expires_at = $2, updated_at = $3 WHERE request_id = $1 AND state = 'active'",
                        )
                        .bind(&request.id)
                        .bind(expires_at)
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                    }
                }
                Self::lc_save_request(tx, request).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::LifecycleStore for $store {
            async fn replace_resources(
                &self,
                source: &str,
                resources: &[$crate::store::ResourceRecord],
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<$crate::store::ResourceChanges, $crate::store::StoreError> {
                let now = $crate::store::stored_time(now);
                let (_writer, mut tx) = self.write_tx().await?;
                let rows = sqlx::query(concat!("SELECT * FROM resources WHERE source = $1", $for_update))
                    .bind(source)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut old: std::collections::BTreeMap<String, $crate::store::ResourceRecord> = rows
                    .iter()
                    .map(|row| Self::lc_resource_from_row(row).map(|r| (r.id.clone(), r)))
                    .collect::<Result<_, _>>()?;
                let mut changes = $crate::store::ResourceChanges::default();
                for resource in resources {
                    let first_seen = match old.remove(&resource.id) {
                        None => {
                            changes.added.push(resource.id.clone());
                            now
                        }
                        Some(previous) => {
                            if previous.differs_from(resource) {
                                changes.changed.push(resource.id.clone());
                            }
                            previous.first_seen
                        }
                    };
                    // An id another source keeps is not taken over: `source = $10` guards it.
                    let written = sqlx::query(
                        "INSERT INTO resources (id, integration, resource_type, name, parent, ancestors, tags, owners, \
                         source, first_seen, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                         ON CONFLICT (id) DO UPDATE SET integration = $2, resource_type = $3, name = $4, parent = $5, \
                         ancestors = $6, tags = $7, owners = $8, last_seen = $11 WHERE resources.source = $9",
                    )
                    .bind(&resource.id)
                    .bind(&resource.integration)
                    .bind(&resource.resource_type)
                    .bind(&resource.name)
                    .bind(&resource.parent)
                    .bind(serde_json::to_string(&resource.ancestors).unwrap_or_default())
                    .bind(serde_json::to_string(&resource.tags).unwrap_or_default())
                    .bind(serde_json::to_string(&resource.owners).unwrap_or_default())
                    .bind(source)
                    .bind(first_seen)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    if written.rows_affected() == 0 {
                        return Err($crate::store::StoreError::Refused($crate::store::Refusal::InvalidArgument(
                            format!("resource {:?} is already synced by another source; nothing was stored", resource.id),
                        )));
                    }
                }
                for id in old.keys() {
                    sqlx::query("DELETE FROM resources WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    changes.removed.push(id.clone());
                }
                if !changes.is_empty() {
                    Self::bump_epoch(&mut tx, "resources").await?;
                    Self::append_audit(
                        &mut tx,
                        $crate::store::NewAuditEvent {
                            at: now,
                            actor: actor.to_string(),
                            action: "resources.replaced",
                            subject: source.to_string(),
                            details: serde_json::json!({
                                "added": changes.added,
                                "removed": changes.removed,
                                "changed": changes.changed,
                            }),
                        },
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(changes)
            }

            async fn known_integrations(
                &self,
            ) -> Result<std::collections::BTreeSet<String>, $crate::store::StoreError> {
                let names: Vec<String> = sqlx::query_scalar("SELECT DISTINCT integration FROM resources")
                    .fetch_all(&self.pool)
                    .await?;
                Ok(names.into_iter().collect())
            }

            async fn resources_by_id(
                &self,
                ids: &[String],
            ) -> Result<Vec<$crate::store::ResourceRecord>, $crate::store::StoreError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
                let sql = format!("SELECT * FROM resources WHERE id IN ({})", placeholders.join(", "));
                // Only numbered placeholders are formatted in; the ids are bound.
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for id in ids {
                    query = query.bind(id);
                }
                let rows = query.fetch_all(&self.pool).await?;
                rows.iter().map(Self::lc_resource_from_row).collect()
            }

            async fn list_resources(
                &self,
                after: Option<&str>,
                limit: u32,
                integration: Option<&str>,
                resource_type: Option<&str>,
                tags: &std::collections::BTreeMap<String, String>,
                search: Option<&str>,
            ) -> Result<Vec<$crate::store::ResourceRecord>, $crate::store::StoreError> {
                let mut sql = String::from(
                    "SELECT * FROM resources WHERE ($1 IS NULL OR id > $1) AND ($2 IS NULL OR integration = $2) \
                     AND ($3 IS NULL OR resource_type = $3)",
                );
                let mut params: Vec<String> = Vec::new();
                // Tags are stored as serde_json writes a map: `{"key":"value",...}`, compact, keys in
                // order. Inside a JSON string every quote is escaped, so `{"k":"v"` or `,"k":"v"`
                // occurs in the text exactly when the map holds k = v. `replace(..) <> ..` is a
                // case-sensitive "contains" that both backends spell the same way.
                for (key, value) in tags {
                    let pair = format!(
                        "{}:{}",
                        serde_json::Value::from(key.as_str()),
                        serde_json::Value::from(value.as_str())
                    );
                    let n = params.len() + 5;
                    sql.push_str(&format!(
                        " AND (replace(tags, ${n}, '') <> tags OR replace(tags, ${}, '') <> tags)",
                        n + 1
                    ));
                    params.push(format!("{{{pair}"));
                    params.push(format!(",{pair}"));
                }
                if let Some(search) = search.map(str::to_lowercase).filter(|s| !s.is_empty()) {
                    let n = params.len() + 5;
                    sql.push_str(&format!(
                        " AND (replace(lower(id), ${n}, '') <> lower(id) OR replace(lower(name), ${n}, '') <> lower(name))"
                    ));
                    params.push(search);
                }
                sql.push_str(" ORDER BY id LIMIT $4");
                // Only numbered placeholders are formatted in; every value is bound.
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(after)
                    .bind(integration)
                    .bind(resource_type)
                    .bind(i64::from(limit));
                for param in params {
                    query = query.bind(param);
                }
                let rows = query.fetch_all(&self.pool).await?;
                rows.iter().map(Self::lc_resource_from_row).collect()
            }

            async fn cache_versions(
                &self,
                directory_source: &str,
            ) -> Result<$crate::store::CacheVersions, $crate::store::StoreError> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT (SELECT value FROM epochs WHERE name = 'flows') AS flows, \
                     (SELECT value FROM epochs WHERE name = 'resources') AS resources, \
                     (SELECT digest FROM directory_sources WHERE source = $1) AS directory",
                )
                .bind(directory_source)
                .fetch_one(&self.pool)
                .await?;
                Ok($crate::store::CacheVersions {
                    flows: row.try_get::<Option<i64>, _>("flows")?.unwrap_or_default(),
                    resources: row.try_get::<Option<i64>, _>("resources")?.unwrap_or_default(),
                    directory: row.try_get("directory")?,
                })
            }

            async fn create_requests(
                &self,
                batch: &[$crate::store::NewRequest],
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<Result<$crate::store::CreatedRequest, $crate::store::StoreError>>, $crate::store::StoreError> {
                use latch_core::request::{Event, RequestState};
                use $crate::store::rows;
                let now = $crate::store::stored_time(now);
                let (_writer, mut tx) = self.write_tx().await?;
                // The flows a decision used must still be current; a shared lock keeps them so
                // until this commits. Each flow is looked up once per batch.
                let mut current: std::collections::HashMap<(String, u32), bool> = std::collections::HashMap::new();
                for flow in batch.iter().flat_map(|new| new.flows.iter()) {
                    let key = (flow.name.clone(), flow.version);
                    if !current.contains_key(&key) {
                        let stale = Self::lc_stale_flow(&mut tx, std::slice::from_ref(flow)).await?;
                        current.insert(key, stale.is_none());
                    }
                }
                // Which of the access asked for is already held: one query for the whole batch.
                let wanted: Vec<(&str, &str, &str)> = batch
                    .iter()
                    .filter(|new| new.record.state == RequestState::Approved)
                    .flat_map(|new| new.grants.iter())
                    .map(|g| (g.identity.as_str(), g.resource_id.as_str(), g.permission.as_str()))
                    .collect();
                let held = Self::lc_active_holdings(&mut tx, &wanted).await?;

                let mut results = Vec::with_capacity(batch.len());
                let mut audit = Vec::new();
                let (mut request_rows, mut grant_rows, mut command_rows) = (Vec::new(), Vec::new(), Vec::new());
                for new in batch {
                    if let Some(stale) = new.flows.iter().find(|f| current.get(&(f.name.clone(), f.version)) != Some(&true)) {
                        results.push(Err($crate::store::StoreError::Conflict(format!(
                            "flow {:?} changed while the request was decided",
                            stale.name
                        ))));
                        continue;
                    }
                    let mut request = new.record.clone();
                    request.created_at = now;
                    request.updated_at = now;
                    request.pending_expires_at = request.pending_expires_at.map($crate::store::stored_time);
                    let created = $crate::store::NewAuditEvent {
                        at: now,
                        actor: request.requester.clone(),
                        action: "request.created",
                        subject: request.id.clone(),
                        details: new.audit_details.clone(),
                    };
                    let mut grants = Vec::new();
                    if request.state == RequestState::Approved {
                        if new.grants.is_empty() {
                            results.push(Err($crate::store::StoreError::corrupt(
                                format!("request {}", request.id),
                                "approved without anything to grant",
                            )));
                            continue;
                        }
                        for grant in &new.grants {
                            let key = (grant.identity.clone(), grant.resource_id.clone(), grant.permission.clone());
                            grants.push((uuid::Uuid::now_v7().to_string(), grant, held.contains(&key)));
                        }
                        // Asking again for what one active request already gives extends it.
                        if let Some(extension) = new.extension
                            && grants.iter().all(|(_, _, present)| *present)
                            && let Some(holder) = Self::lc_holding_request(&mut tx, &new.grants).await?
                        {
                            let view = Self::lc_extend_held(&mut tx, &holder, extension, &request.requester, now, &mut audit).await?;
                            results.push(Ok($crate::store::CreatedRequest { view, extended: true }));
                            continue;
                        }
                    }
                    audit.push(created);
                    // Approved: granting, and active at once if every item is already held.
                    if request.state == RequestState::Approved {
                        let details = serde_json::json!({
                            "grants": grants.iter().map(|(id, g, present)| serde_json::json!({
                                "grant_id": id,
                                "resource_id": g.resource_id,
                                "permission": g.permission,
                                "flow": g.flow,
                                "already_held": present,
                            })).collect::<Vec<_>>(),
                        });
                        Self::lc_transition(&mut request, Event::SendGrants, "latch", now, details, &mut audit)?;
                        if grants.iter().all(|(_, _, present)| *present) {
                            let expires_at = now + chrono::Duration::seconds(request.duration_secs.unwrap_or(0));
                            request.activated_at = Some(now);
                            request.expires_at = Some(expires_at);
                            Self::lc_transition(
                                &mut request, Event::GrantsApplied, "latch", now,
                                serde_json::json!({ "expires_at": expires_at }), &mut audit,
                            )?;
                        }
                    }
                    request_rows.push(rows::request_row(&request));
                    let mut records = Vec::with_capacity(grants.len());
                    for (id, grant, present) in &grants {
                        let expires_at = if *present { request.expires_at } else { None };
                        grant_rows.push(rows::grant_row(id, Some(&request.id), grant, *present, expires_at, now));
                        if !*present {
                            command_rows.push(rows::command_row(id, grant, "grant", 1, now));
                        }
                        records.push($crate::store::GrantRecord {
                            id: id.clone(),
                            request_id: Some(request.id.clone()),
                            identity: grant.identity.clone(),
                            integration: grant.integration.clone(),
                            resource_id: grant.resource_id.clone(),
                            resource_type: grant.resource_type.clone(),
                            permission: grant.permission.clone(),
                            flow: grant.flow.clone(),
                            state: if *present { $crate::store::GrantState::Active } else { $crate::store::GrantState::Granting },
                            desired: "present".into(),
                            observed: if *present { "present".into() } else { "unknown".into() },
                            generation: 1,
                            duration_secs: grant.duration_secs,
                            created_at: now,
                            updated_at: now,
                            started_at: present.then_some(now),
                            expires_at,
                            end_reason: None,
                        });
                    }
                    results.push(Ok($crate::store::CreatedRequest {
                        view: $crate::store::RequestView {
                            request,
                            approvals: Vec::new(),
                            grants: records,
                        },
                        extended: false,
                    }));
                }
                // Requests before their grants, grants before their commands: foreign keys.
                Self::lc_insert_rows(&mut tx, &rows::REQUESTS, request_rows).await?;
                Self::lc_insert_rows(&mut tx, &rows::GRANTS, grant_rows).await?;
                Self::lc_insert_rows(&mut tx, &rows::COMMANDS, command_rows).await?;
                Self::append_audits(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(results)
            }

            async fn get_request(
                &self,
                id: &str,
            ) -> Result<Option<$crate::store::RequestView>, $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
                let row = sqlx::query("SELECT * FROM access_requests WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let request = Self::lc_request_from_row(&row)?;
                let view = Self::lc_view(&mut tx, request).await?;
                tx.commit().await?;
                Ok(Some(view))
            }

            async fn list_requests(
                &self,
                filter: &$crate::store::RequestFilter,
                before: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::store::RequestRecord>, $crate::store::StoreError> {
                let rows = sqlx::query(
                    "SELECT * FROM access_requests WHERE ($1 IS NULL OR id < $1) AND ($2 IS NULL OR requester = $2) \
                     AND ($3 IS NULL OR state = $3) ORDER BY id DESC LIMIT $4",
                )
                .bind(before)
                .bind(filter.requester.as_deref())
                .bind(filter.state.map(|s| s.as_str()))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::lc_request_from_row).collect()
            }

            async fn change_request(
                &self,
                id: &str,
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
                decide: $crate::store::ChangeFn<'_>,
            ) -> Result<$crate::store::RequestView, $crate::store::StoreError> {
                let now = $crate::store::stored_time(now);
                let (_writer, mut tx) = self.write_tx().await?;
                let Some(request) = Self::lc_lock_request(&mut tx, id).await? else {
                    return Err($crate::store::StoreError::Refused($crate::store::Refusal::NotFound(format!(
                        "no request with id {id:?}"
                    ))));
                };
                let view = Self::lc_view(&mut tx, request).await?;
                let change = decide(&view).map_err($crate::store::StoreError::Refused)?;
                let mut request = view.request;
                let mut audit = Vec::new();
                Self::lc_apply_change(&mut tx, &mut request, change, actor, now, &mut audit).await?;
                Self::append_audits(&mut tx, audit).await?;
                let view = Self::lc_view(&mut tx, request).await?;
                tx.commit().await?;
                Ok(view)
            }

            async fn list_grants(
                &self,
                filter: &$crate::store::GrantFilter,
                before: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::store::GrantRecord>, $crate::store::StoreError> {
                let rows = sqlx::query(
                    "SELECT * FROM grants WHERE ($1 IS NULL OR id < $1) AND ($2 IS NULL OR identity = $2) \
                     AND ($3 IS NULL OR state = $3) AND ($5 IS NULL OR resource_id = $5) \
                     ORDER BY id DESC LIMIT $4",
                )
                .bind(before)
                .bind(filter.identity.as_deref())
                .bind(filter.state.map(|s| s.as_str()))
                .bind(i64::from(limit))
                .bind(filter.resource_id.as_deref())
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::lc_grant_from_row).collect()
            }

            async fn live_grant_resource_ids(&self) -> Result<Vec<String>, $crate::store::StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT DISTINCT resource_id FROM grants WHERE state IN ('granting', 'active')",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn open_commands(
                &self,
                limit: u32,
            ) -> Result<Vec<$crate::store::CommandRecord>, $crate::store::StoreError> {
                let rows = sqlx::query(
                    "SELECT * FROM commands WHERE completed_at IS NULL ORDER BY priority, seq LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::lc_command_from_row).collect()
            }

            async fn complete_command(
                &self,
                command_id: &str,
                result: &$crate::store::CommandResult,
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), $crate::store::StoreError> {
                let now = $crate::store::stored_time(now);
                let (_writer, mut tx) = self.write_tx().await?;
                let (mut request, grant, command) = Self::lc_lock_command(&mut tx, command_id).await?;
                let mut audit = Vec::new();
                if command.completed_at.is_some() {
                    // Delivery is at least once: a second report of the same command changes
                    // nothing, except that whoever held it no longer does (a superseded command
                    // in flight holds back its grant's next command until it is reported), and
                    // that a grant run again made a new password, which replaces the old one.
                    Self::lc_release_claim(&mut tx, command_id).await?;
                    if let $crate::store::CommandResult::DoneWithCredentials(sealed) = result {
                        let current = command.kind == "grant"
                            && command.generation == grant.generation
                            && grant.state == $crate::store::GrantState::Active;
                        if current {
                            Self::lc_keep_credentials(&mut tx, &grant.id, sealed, now).await?;
                        }
                    }
                } else {
                    Self::lc_record_result(&mut tx, request.as_mut(), &grant, &command, result, actor, now, &mut audit)
                        .await?;
                }
                Self::append_audits(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn access_credentials(
                &self,
                request_id: &str,
                viewer: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<($crate::store::GrantRecord, $crate::store::SealedCredentials)>, $crate::store::StoreError> {
                use sqlx::Row;
                let now = $crate::store::stored_time(now);
                let (_writer, mut tx) = self.write_tx().await?;
                let rows = sqlx::query(
                    "SELECT g.*, c.nonce AS credentials_nonce, c.sealed AS credentials_sealed \
                     FROM grants g JOIN grant_credentials c ON c.grant_id = g.id \
                     WHERE g.request_id = $1 AND g.state = 'active' ORDER BY g.id",
                )
                .bind(request_id)
                .fetch_all(&mut *tx)
                .await?;
                let mut found = Vec::with_capacity(rows.len());
                for row in &rows {
                    let sealed = $crate::store::SealedCredentials {
                        nonce: row.try_get("credentials_nonce")?,
                        sealed: row.try_get("credentials_sealed")?,
                    };
                    found.push((Self::lc_grant_from_row(row)?, sealed));
                }
                if !found.is_empty() {
                    let grant_ids: Vec<&str> = found.iter().map(|(grant, _)| grant.id.as_str()).collect();
                    Self::append_audits(
                        &mut tx,
                        vec![$crate::store::NewAuditEvent {
                            at: now,
                            actor: viewer.to_string(),
                            action: "credentials.viewed",
                            subject: request_id.to_string(),
                            details: serde_json::json!({ "grant_ids": grant_ids }),
                        }],
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(found)
            }

            async fn sweep_expired(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> Result<$crate::store::SweepReport, $crate::store::StoreError> {
                use sqlx::Row;
                let now = $crate::store::stored_time(now);
                let mut report = $crate::store::SweepReport::default();
                let (_writer, mut tx) = self.write_tx().await?;
                let due = sqlx::query(concat!(
                    "SELECT id FROM access_requests WHERE state = 'active' AND expires_at <= $1 \
                     ORDER BY expires_at LIMIT $2",
                    $skip_locked
                ))
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                let mut audit = Vec::new();
                // Re-read under the lock (taken by the query above on PostgreSQL): another server
                // may have just handled one.
                let ids: Vec<String> = due.iter().map(|row| row.try_get("id")).collect::<Result<_, _>>()?;
                let mut ending: Vec<($crate::store::RequestRecord, Option<String>)> = Self::lc_requests_by_id(&mut tx, &ids)
                    .await?
                    .into_iter()
                    .filter(|r| r.state == latch_core::request::RequestState::Active && r.expires_at.is_some_and(|at| at <= now))
                    .map(|r| (r, None))
                    .collect();
                report.expired_requests = ending.len();
                Self::lc_end_requests(&mut tx, &mut ending, "latch", now, &mut audit).await?;
                let pending = sqlx::query(concat!(
                    "SELECT id FROM access_requests WHERE state = 'pending' AND pending_expires_at <= $1 \
                     ORDER BY pending_expires_at LIMIT $2",
                    $skip_locked
                ))
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                let ids: Vec<String> = pending.iter().map(|row| row.try_get("id")).collect::<Result<_, _>>()?;
                let mut timed_out = Vec::new();
                for mut request in Self::lc_requests_by_id(&mut tx, &ids).await? {
                    if request.state != latch_core::request::RequestState::Pending {
                        continue;
                    }
                    request.end_reason = Some("not decided before the pending time-to-live ran out".into());
                    let details = serde_json::json!({ "pending_expires_at": request.pending_expires_at });
                    Self::lc_transition(
                        &mut request,
                        latch_core::request::Event::PendingTimedOut,
                        "latch",
                        now,
                        details,
                        &mut audit,
                    )?;
                    timed_out.push(request);
                }
                report.timed_out_requests = timed_out.len();
                Self::lc_save_ended(&mut tx, timed_out.iter(), now).await?;
                Self::append_audits(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(report)
            }

            async fn next_expiry(
                &self,
            ) -> Result<Option<chrono::DateTime<chrono::Utc>>, $crate::store::StoreError> {
                let active: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
                    "SELECT expires_at FROM access_requests WHERE state = 'active' AND expires_at IS NOT NULL \
                     ORDER BY expires_at LIMIT 1",
                )
                .fetch_optional(&self.pool)
                .await?;
                let pending: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
                    "SELECT pending_expires_at FROM access_requests WHERE state = 'pending' \
                     AND pending_expires_at IS NOT NULL ORDER BY pending_expires_at LIMIT 1",
                )
                .fetch_optional(&self.pool)
                .await?;
                Ok(match (active, pending) {
                    (Some(a), Some(p)) => Some(a.min(p)),
                    (a, p) => a.or(p),
                })
            }

            async fn reconcile(
                &self,
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
                only_automatic: bool,
                plan: $crate::store::PlanFn<'_>,
            ) -> Result<$crate::store::ReconcilePlan, $crate::store::StoreError> {
                let now = $crate::store::stored_time(now);
                let (_writer, mut tx) = self.write_tx().await?;
                // One reconciler at a time across servers; it takes no other lock first.
                sqlx::query(concat!("SELECT name FROM leases WHERE name = 'reconcile'", $for_update))
                    .fetch_optional(&mut *tx)
                    .await?;
                let rows = sqlx::query(if only_automatic {
                    "SELECT * FROM grants WHERE state IN ('granting', 'active') AND request_id IS NULL ORDER BY id"
                } else {
                    "SELECT * FROM grants WHERE state IN ('granting', 'active') ORDER BY id"
                })
                .fetch_all(&mut *tx)
                .await?;
                let live = rows
                    .iter()
                    .map(Self::lc_grant_from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                let wanted = plan(&live);
                let mut audit = Vec::new();
                let by_id: std::collections::HashMap<&str, &$crate::store::GrantRecord> =
                    live.iter().map(|g| (g.id.as_str(), g)).collect();
                // A request's access ends as a whole, with the first reason found for it.
                let mut request_reasons: Vec<(String, String)> = Vec::new();
                let mut automatic = Vec::new();
                for (grant_id, reason) in &wanted.revoke {
                    let Some(grant) = by_id.get(grant_id.as_str()) else { continue };
                    match &grant.request_id {
                        Some(request_id) => {
                            if !request_reasons.iter().any(|(id, _)| id == request_id) {
                                request_reasons.push((request_id.clone(), reason.clone()));
                            }
                        }
                        None => automatic.push(((*grant).clone(), Some(reason.clone()))),
                    }
                }
                let ids: Vec<String> = request_reasons.iter().map(|(id, _)| id.clone()).collect();
                let mut ending: Vec<($crate::store::RequestRecord, Option<String>)> = Self::lc_requests_by_id(&mut tx, &ids)
                    .await?
                    .into_iter()
                    .filter(|r| matches!(
                        r.state,
                        latch_core::request::RequestState::Granting | latch_core::request::RequestState::Active
                    ))
                    .map(|r| {
                        let reason = request_reasons.iter().find(|(id, _)| *id == r.id).map(|(_, why)| why.clone());
                        (r, reason)
                    })
                    .collect();
                Self::lc_end_requests(&mut tx, &mut ending, actor, now, &mut audit).await?;
                Self::lc_revoke_grants(&mut tx, &automatic, actor, now, &mut audit).await?;
                for grant in &wanted.grant {
                    let (id, present) = Self::lc_insert_grant(&mut tx, None, grant, now).await?;
                    audit.push($crate::store::NewAuditEvent {
                        at: now,
                        actor: actor.to_string(),
                        action: "grant.created",
                        subject: id.clone(),
                        details: serde_json::json!({
                            "identity": grant.identity,
                            "resource_id": grant.resource_id,
                            "permission": grant.permission,
                            "flow": grant.flow,
                            "automatic": true,
                            "already_held": present,
                        }),
                    });
                }
                Self::append_audits(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(wanted)
            }
        }
    };
}

pub(crate) use impl_lifecycle;
