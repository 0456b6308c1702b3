//! The store's queries, written once for both backends.
//!
//! SQLite and PostgreSQL accept the same SQL here (`$N` placeholders, `ON CONFLICT`, `RETURNING`); they
//! differ only in how a writer takes its locks. PostgreSQL locks the rows it is about to change
//! (`FOR UPDATE`), so replicas on one database serialise per row; SQLite has a single writer and takes
//! the write lock up front (`BEGIN IMMEDIATE`), so a transaction never fails half-way on an upgrade.
//! `impl_store!` expands the one implementation for each backend with those two differences.

/// Implements [`super::Store`] for `$store`, whose `pool` field is a `sqlx::Pool<$db>`.
macro_rules! impl_store {
    ($store:ty, $db:ty, for_update = $for_update:literal) => {
        impl $store {
            /// Appends an audit event to the chain inside `tx`.
            async fn append_audit(
                tx: &mut sqlx::Transaction<'static, $db>,
                event: $crate::store::NewAuditEvent,
            ) -> Result<(), $crate::store::StoreError> {
                Self::append_audits(tx, vec![event]).await
            }

            /// Appends audit events to the chain inside `tx`, in order. The chain's head is read
            /// and locked once and written once, however many events there are.
            async fn append_audits(
                tx: &mut sqlx::Transaction<'static, $db>,
                events: Vec<$crate::store::NewAuditEvent>,
            ) -> Result<(), $crate::store::StoreError> {
                use sqlx::Row;
                if events.is_empty() {
                    return Ok(());
                }
                let head = sqlx::query(concat!(
                    "SELECT seq, hash FROM audit_head WHERE singleton = 1",
                    $for_update
                ))
                .fetch_one(&mut **tx)
                .await?;
                let mut seq: i64 = head.try_get("seq")?;
                let mut prev_hash: String = head.try_get("hash")?;
                let mut rows = Vec::with_capacity(events.len());
                for event in events {
                    seq += 1;
                    let hash = $crate::store::chain_hash(
                        &prev_hash,
                        seq,
                        event.at,
                        &event.actor,
                        event.action,
                        &event.subject,
                        &event.details,
                    );
                    rows.push((seq, event, std::mem::replace(&mut prev_hash, hash.clone()), hash));
                }
                // Several rows per statement: a request's few events, or a sweep's hundreds, cost
                // a handful of round trips to the database rather than one each.
                for chunk in rows.chunks(64) {
                    let values: Vec<String> = (0..chunk.len())
                        .map(|i| {
                            let b = i * 8;
                            format!("(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8)
                        })
                        .collect();
                    let sql = format!(
                        "INSERT INTO audit_events (seq, at, actor, action, subject, details, prev_hash, hash) VALUES {}",
                        values.join(", ")
                    );
                    // Only numbered placeholders are formatted in; every value is bound.
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for (seq, event, prev, hash) in chunk {
                        query = query
                            .bind(*seq)
                            .bind(event.at)
                            .bind(event.actor.as_str())
                            .bind(event.action)
                            .bind(event.subject.as_str())
                            .bind(event.details.to_string())
                            .bind(prev.as_str())
                            .bind(hash.as_str());
                    }
                    query.execute(&mut **tx).await?;
                }
                sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE singleton = 1")
                    .bind(seq)
                    .bind(&prev_hash)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// Counts a change to the flows or the resources (`epoch`: `"flows"` or
            /// `"resources"`), so caches built from them know they are stale.
            async fn bump_epoch(
                tx: &mut sqlx::Transaction<'static, $db>,
                epoch: &str,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query("UPDATE epochs SET value = value + 1 WHERE name = $1")
                    .bind(epoch)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            fn flow_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::store::StoredFlow, $crate::store::StoreError> {
                use sqlx::Row;
                let name: String = row.try_get("name")?;
                let spec: String = row.try_get("spec")?;
                $crate::store::StoredFlow::from_row(
                    &name,
                    &spec,
                    row.try_get("version")?,
                    row.try_get("digest")?,
                    row.try_get("applied_at")?,
                    row.try_get("applied_by")?,
                    row.try_get("deleted")?,
                )
            }

            fn token_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::store::TokenRecord, $crate::store::StoreError> {
                use sqlx::Row;
                Ok($crate::store::TokenRecord {
                    id: row.try_get("id")?,
                    user: row.try_get("user_email")?,
                    admin: row.try_get("is_admin")?,
                    description: row.try_get("description")?,
                    secret_hash: row.try_get("secret_hash")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                    created_by: row.try_get("created_by")?,
                })
            }

            async fn insert_token(
                tx: &mut sqlx::Transaction<'static, $db>,
                token: &$crate::store::NewToken,
                actor: &str,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO api_tokens (id, user_email, is_admin, description, secret_hash, created_at, \
                     expires_at, revoked_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8)",
                )
                .bind(&token.id)
                .bind(&token.user)
                .bind(token.admin)
                .bind(&token.description)
                .bind(&token.secret_hash)
                .bind(token.created_at)
                .bind(token.expires_at)
                .bind(&token.created_by)
                .execute(&mut **tx)
                .await
                .map_err(|err| $crate::store::StoreError::from_write(err, "token"))?;
                Self::append_audit(
                    tx,
                    $crate::store::NewAuditEvent {
                        at: token.created_at,
                        actor: actor.to_string(),
                        action: "token.created",
                        subject: token.id.clone(),
                        details: serde_json::json!({
                            "user": token.user,
                            "admin": token.admin,
                            "description": token.description,
                            "expires_at": token.expires_at,
                        }),
                    },
                )
                .await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn apply_flows(
                &self,
                flows: &[$crate::store::FlowVersion],
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<$crate::store::AppliedFlow>, $crate::store::StoreError> {
                let now = $crate::store::stored_time(now);
                use sqlx::Row;
                use $crate::store::ApplyOutcome;
                let (_writer, mut tx) = self.write_tx().await?;
                let mut applied = Vec::with_capacity(flows.len());
                for flow in flows {
                    let name = flow.spec.name.as_str();
                    // Make sure a head row exists so that it can be locked: two replicas applying the
                    // same new flow then queue on the lock instead of racing to version 1.
                    sqlx::query(
                        "INSERT INTO access_flow_heads (name, current_version, deleted_at, deleted_by) \
                         VALUES ($1, 0, NULL, NULL) ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                    let head = sqlx::query(concat!(
                        "SELECT current_version, deleted_at IS NOT NULL AS deleted \
                         FROM access_flow_heads WHERE name = $1",
                        $for_update
                    ))
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
                    let current: i64 = head.try_get("current_version")?;
                    let deleted: bool = head.try_get("deleted")?;
                    let digest: Option<String> =
                        sqlx::query_scalar("SELECT digest FROM access_flows WHERE name = $1 AND version = $2")
                            .bind(name)
                            .bind(current)
                            .fetch_optional(&mut *tx)
                            .await?;
                    let live = current > 0 && !deleted;
                    if live && digest.as_deref() == Some(flow.digest.as_str()) {
                        applied.push($crate::store::AppliedFlow {
                            name: name.to_string(),
                            version: u32::try_from(current)
                                .map_err(|err| $crate::store::StoreError::corrupt("flow version", err))?,
                            outcome: ApplyOutcome::Unchanged,
                        });
                        continue;
                    }
                    let version = current + 1;
                    sqlx::query(
                        "INSERT INTO access_flows (name, version, spec, digest, applied_at, applied_by) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(name)
                    .bind(version)
                    .bind(&flow.json)
                    .bind(&flow.digest)
                    .bind(now)
                    .bind(actor)
                    .execute(&mut *tx)
                    .await
                    .map_err(|err| $crate::store::StoreError::from_write(err, &format!("flow {name:?}")))?;
                    sqlx::query(
                        "UPDATE access_flow_heads SET current_version = $2, deleted_at = NULL, deleted_by = NULL \
                         WHERE name = $1",
                    )
                    .bind(name)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
                    let outcome = if live { ApplyOutcome::Updated } else { ApplyOutcome::Created };
                    Self::append_audit(
                        &mut tx,
                        $crate::store::NewAuditEvent {
                            at: now,
                            actor: actor.to_string(),
                            action: if live { "flow.updated" } else { "flow.created" },
                            subject: name.to_string(),
                            details: serde_json::json!({
                                "version": version,
                                "digest": flow.digest,
                                "previous_version": if current > 0 { Some(current) } else { None },
                            }),
                        },
                    )
                    .await?;
                    applied.push($crate::store::AppliedFlow {
                        name: name.to_string(),
                        version: u32::try_from(version)
                            .map_err(|err| $crate::store::StoreError::corrupt("flow version", err))?,
                        outcome,
                    });
                }
                if applied.iter().any(|flow| flow.outcome != ApplyOutcome::Unchanged) {
                    Self::bump_epoch(&mut tx, "flows").await?;
                }
                tx.commit().await?;
                Ok(applied)
            }

            async fn get_flow(
                &self,
                name: &str,
                version: Option<u32>,
            ) -> Result<Option<$crate::store::StoredFlow>, $crate::store::StoreError> {
                let row = match version {
                    Some(version) => {
                        sqlx::query(
                            "SELECT f.name, f.version, f.spec, f.digest, f.applied_at, f.applied_by, \
                             (h.deleted_at IS NOT NULL) AS deleted \
                             FROM access_flows f JOIN access_flow_heads h ON h.name = f.name \
                             WHERE f.name = $1 AND f.version = $2",
                        )
                        .bind(name)
                        .bind(i64::from(version))
                        .fetch_optional(&self.pool)
                        .await?
                    }
                    None => {
                        sqlx::query(
                            "SELECT f.name, f.version, f.spec, f.digest, f.applied_at, f.applied_by, \
                             (h.deleted_at IS NOT NULL) AS deleted \
                             FROM access_flow_heads h JOIN access_flows f \
                             ON f.name = h.name AND f.version = h.current_version \
                             WHERE h.name = $1 AND h.deleted_at IS NULL",
                        )
                        .bind(name)
                        .fetch_optional(&self.pool)
                        .await?
                    }
                };
                row.as_ref().map(Self::flow_from_row).transpose()
            }

            async fn list_flows(
                &self,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::store::StoredFlow>, $crate::store::StoreError> {
                let rows = sqlx::query(
                    "SELECT f.name, f.version, f.spec, f.digest, f.applied_at, f.applied_by, \
                     (h.deleted_at IS NOT NULL) AS deleted \
                     FROM access_flow_heads h JOIN access_flows f \
                     ON f.name = h.name AND f.version = h.current_version \
                     WHERE h.deleted_at IS NULL AND h.name > $1 \
                     ORDER BY h.name LIMIT $2",
                )
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::flow_from_row).collect()
            }

            async fn delete_flow(
                &self,
                name: &str,
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<$crate::store::StoredFlow>, $crate::store::StoreError> {
                let now = $crate::store::stored_time(now);
                let (_writer, mut tx) = self.write_tx().await?;
                let row = sqlx::query(concat!(
                    "SELECT f.name, f.version, f.spec, f.digest, f.applied_at, f.applied_by, \
                     (h.deleted_at IS NOT NULL) AS deleted \
                     FROM access_flow_heads h JOIN access_flows f \
                     ON f.name = h.name AND f.version = h.current_version \
                     WHERE h.name = $1 AND h.deleted_at IS NULL",
                    $for_update
                ))
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let mut flow = Self::flow_from_row(&row)?;
                sqlx::query("UPDATE access_flow_heads SET deleted_at = $2, deleted_by = $3 WHERE name = $1")
                    .bind(name)
                    .bind(now)
                    .bind(actor)
                    .execute(&mut *tx)
                    .await?;
                Self::append_audit(
                    &mut tx,
                    $crate::store::NewAuditEvent {
                        at: now,
                        actor: actor.to_string(),
                        action: "flow.deleted",
                        subject: name.to_string(),
                        details: serde_json::json!({ "version": flow.version, "digest": flow.digest }),
                    },
                )
                .await?;
                Self::bump_epoch(&mut tx, "flows").await?;
                tx.commit().await?;
                flow.deleted = true;
                Ok(Some(flow))
            }

            async fn create_token(
                &self,
                token: &$crate::store::NewToken,
                actor: &str,
            ) -> Result<(), $crate::store::StoreError> {
                let (_writer, mut tx) = self.write_tx().await?;
                Self::insert_token(&mut tx, token, actor).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn create_first_admin_token(
                &self,
                token: &$crate::store::NewToken,
            ) -> Result<bool, $crate::store::StoreError> {
                let (_writer, mut tx) = self.write_tx().await?;
                // Lock the audit head first: two replicas starting on an empty database at once then
                // take turns, and only the first creates a token.
                sqlx::query(concat!("SELECT seq FROM audit_head WHERE singleton = 1", $for_update))
                    .execute(&mut *tx)
                    .await?;
                let existing = sqlx::query("SELECT id FROM api_tokens LIMIT 1").fetch_optional(&mut *tx).await?;
                if existing.is_some() {
                    return Ok(false);
                }
                Self::insert_token(&mut tx, token, &token.created_by).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn token(&self, id: &str) -> Result<Option<$crate::store::TokenRecord>, $crate::store::StoreError> {
                let row = sqlx::query("SELECT * FROM api_tokens WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::token_from_row).transpose()
            }

            async fn list_tokens(
                &self,
                before: Option<&str>,
                limit: u32,
                include_inactive: bool,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<$crate::store::TokenRecord>, $crate::store::StoreError> {
                // Expiry is compared in Rust, not SQL: SQLite keeps timestamps as text, so a text
                // comparison there would be only as right as its formatting.
                let mut tokens = Vec::new();
                let mut cursor = before.map(str::to_string);
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                while tokens.len() < limit {
                    let rows = sqlx::query(
                        "SELECT * FROM api_tokens WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
                    )
                    .bind(cursor.as_deref())
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await?;
                    let exhausted = rows.len() < limit;
                    for row in &rows {
                        let token = Self::token_from_row(row)?;
                        cursor = Some(token.id.clone());
                        if (include_inactive || token.is_active(now)) && tokens.len() < limit {
                            tokens.push(token);
                        }
                    }
                    if exhausted {
                        break;
                    }
                }
                Ok(tokens)
            }

            async fn revoke_token(
                &self,
                id: &str,
                actor: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<$crate::store::TokenRecord>, $crate::store::StoreError> {
                let now = $crate::store::stored_time(now);
                let (_writer, mut tx) = self.write_tx().await?;
                let row = sqlx::query(concat!("SELECT * FROM api_tokens WHERE id = $1", $for_update))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let mut token = Self::token_from_row(&row)?;
                if token.revoked_at.is_some() {
                    return Ok(Some(token));
                }
                sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                Self::append_audit(
                    &mut tx,
                    $crate::store::NewAuditEvent {
                        at: now,
                        actor: actor.to_string(),
                        action: "token.revoked",
                        subject: id.to_string(),
                        details: serde_json::json!({ "user": token.user, "admin": token.admin }),
                    },
                )
                .await?;
                tx.commit().await?;
                token.revoked_at = Some(now);
                Ok(Some(token))
            }

            async fn audit_events(
                &self,
                after_seq: i64,
                limit: u32,
            ) -> Result<Vec<$crate::store::AuditEvent>, $crate::store::StoreError> {
                self.find_audit_events(&$crate::store::AuditFilter::default(), after_seq, limit).await
            }

            async fn directory(
                &self,
                source: &str,
            ) -> Result<Option<$crate::store::StoredDirectory>, $crate::store::StoreError> {
                use sqlx::Row;
                let row = sqlx::query("SELECT * FROM directory_sources WHERE source = $1")
                    .bind(source)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|row| {
                    Ok($crate::store::StoredDirectory {
                        json: row.try_get("spec")?,
                        digest: row.try_get("digest")?,
                        applied_at: row.try_get("applied_at")?,
                        applied_by: row.try_get("applied_by")?,
                    })
                })
                .transpose()
            }

            async fn replace_directory(
                &self,
                source: &str,
                expected_digest: Option<&str>,
                new: &$crate::store::StoredDirectory,
                change: serde_json::Value,
            ) -> Result<(), $crate::store::StoreError> {
                let applied_at = $crate::store::stored_time(new.applied_at);
                let (_writer, mut tx) = self.write_tx().await?;
                let current: Option<String> =
                    sqlx::query_scalar(concat!("SELECT digest FROM directory_sources WHERE source = $1", $for_update))
                        .bind(source)
                        .fetch_optional(&mut *tx)
                        .await?;
                if current.as_deref() != expected_digest {
                    return Err($crate::store::StoreError::Conflict(format!("directory source {source:?}")));
                }
                sqlx::query(
                    "INSERT INTO directory_sources (source, spec, digest, applied_at, applied_by) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (source) DO UPDATE SET spec = $2, digest = $3, applied_at = $4, applied_by = $5",
                )
                .bind(source)
                .bind(&new.json)
                .bind(&new.digest)
                .bind(applied_at)
                .bind(&new.applied_by)
                .execute(&mut *tx)
                .await
                .map_err(|err| $crate::store::StoreError::from_write(err, &format!("directory source {source:?}")))?;
                Self::append_audit(
                    &mut tx,
                    $crate::store::NewAuditEvent {
                        at: applied_at,
                        actor: new.applied_by.clone(),
                        action: "directory.applied",
                        subject: source.to_string(),
                        details: serde_json::json!({ "digest": new.digest, "changes": change }),
                    },
                )
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn audit_head(&self) -> Result<(i64, String), $crate::store::StoreError> {
                use sqlx::Row;
                let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE singleton = 1")
                    .fetch_one(&self.pool)
                    .await?;
                Ok((row.try_get("seq")?, row.try_get("hash")?))
            }

            async fn find_audit_events(
                &self,
                filter: &$crate::store::AuditFilter,
                after_seq: i64,
                limit: u32,
            ) -> Result<Vec<$crate::store::AuditEvent>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT * FROM audit_events WHERE seq > $1 \
                     AND ($2 IS NULL OR at >= $2) AND ($3 IS NULL OR subject = $3) \
                     ORDER BY seq LIMIT $4",
                )
                .bind(after_seq)
                .bind(filter.since)
                .bind(filter.subject.as_deref())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let details: String = row.try_get("details")?;
                        Ok($crate::store::AuditEvent {
                            seq: row.try_get("seq")?,
                            at: row.try_get("at")?,
                            actor: row.try_get("actor")?,
                            action: row.try_get("action")?,
                            subject: row.try_get("subject")?,
                            details: serde_json::from_str(&details)
                                .map_err(|err| $crate::store::StoreError::corrupt("audit event details", err))?,
                            prev_hash: row.try_get("prev_hash")?,
                            hash: row.try_get("hash")?,
                        })
                    })
                    .collect()
            }
        }
    };
}

pub(crate) use impl_store;
