//! Grant and revoke: group roles, their privileges, memberships and temporary logins.

use chrono::SecondsFormat;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Postgres, Transaction};

use crate::provider::{GrantSpec, Granted, IssuedCredentials, ProviderError};
use crate::providers::database::settings::{UserMapping, random_password, temporary_login};

use super::inventory::USER_SCHEMAS;
use super::sql::{
    classify, group_role, quote_ident, quote_literal, sequence_privileges, table_privileges,
};
use super::{PostgresProvider, Target};

/// A bookkeeping row: which membership a grant made.
struct Recorded {
    login: String,
    group_role: String,
    database: String,
    mode: UserMapping,
}

impl PostgresProvider {
    pub(super) async fn apply_grant(&self, grant: &GrantSpec) -> Result<Granted, ProviderError> {
        let target = self.target(grant)?;
        if !self.settings.includes_database(&target.database) {
            return Err(ProviderError::invalid(format!(
                "database {:?} is not among this integration's databases ({})",
                target.database,
                self.settings.databases.join(", ")
            )));
        }
        let privileges = self
            .settings
            .privileges(&grant.permission)
            .ok_or_else(|| {
                ProviderError::invalid(format!(
                    "permission {:?} is not one of {}",
                    grant.permission,
                    self.settings.permission_names().join(", ")
                ))
            })?
            .to_vec();
        let group = group_role(
            &target.database,
            target.schema.as_deref(),
            &grant.permission,
        );
        let mode = self.settings.user_mapping;
        let login = match mode {
            UserMapping::ExistingRole => self.settings.login_for(&grant.identity)?,
            UserMapping::TemporaryUser => temporary_login(&grant.grant_id),
        };
        self.ensure_bookkeeping().await?;

        let what = format!(
            "granting {} on {} to {}",
            grant.permission, grant.resource_id, grant.identity
        );
        let err = |e: sqlx::Error| classify(e, &what);
        let mut admin = self.locked(&target.database, &what).await?;

        let database_exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_database
                            WHERE datname = $1 AND datallowconn AND NOT datistemplate)",
        )
        .bind(&target.database)
        .fetch_one(&mut *admin)
        .await
        .map_err(err)?;
        if !database_exists {
            return Err(ProviderError::not_found(format!(
                "database {:?} does not exist on {}",
                target.database, self.server_id
            )));
        }
        if mode == UserMapping::ExistingRole && !role_exists(&mut admin, &login, &what).await? {
            return Err(ProviderError::invalid(format!(
                "no PostgreSQL role {login:?} for {}",
                grant.identity
            )));
        }

        // Table privileges are per database, so they are given over a connection to it. Its
        // transaction commits first, while the lock is held: the membership below needs the
        // group role to be visible from the admin database's transaction.
        if target.database == self.admin_database {
            give_privileges(&mut admin, &target, &group, &privileges, &what).await?;
        } else {
            let mut tx = self.pool(&target.database).begin().await.map_err(err)?;
            set_lock_timeout(&mut tx, &what).await?;
            give_privileges(&mut tx, &target, &group, &privileges, &what).await?;
            tx.commit().await.map_err(err)?;
        }

        let password = match mode {
            UserMapping::ExistingRole => None,
            UserMapping::TemporaryUser => {
                let password = random_password();
                let exists = role_exists(&mut admin, &login, &what).await?;
                // A redelivered grant finds its login and gets a new password: the earlier one
                // may be lost.
                let mut statement = format!(
                    "{} ROLE {} WITH LOGIN PASSWORD {}",
                    if exists { "ALTER" } else { "CREATE" },
                    quote_ident(&login),
                    quote_literal(&password)
                );
                match grant.expires_at {
                    Some(at) => {
                        statement.push_str(" VALID UNTIL ");
                        statement.push_str(&quote_literal(
                            &at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                        ));
                    }
                    None if exists => statement.push_str(" VALID UNTIL 'infinity'"),
                    None => {}
                }
                execute(&mut admin, statement, &what).await?;
                Some(password)
            }
        };
        execute(
            &mut admin,
            format!("GRANT {} TO {}", quote_ident(&group), quote_ident(&login)),
            &what,
        )
        .await?;
        sqlx::query(
            "INSERT INTO latch_connector.grants (grant_id, login, group_role, database, mode)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (grant_id) DO NOTHING",
        )
        .bind(&grant.grant_id)
        .bind(&login)
        .bind(&group)
        .bind(&target.database)
        .bind(mode.as_str())
        .execute(&mut *admin)
        .await
        .map_err(err)?;
        admin.commit().await.map_err(err)?;
        tracing::info!(
            grant_id = %grant.grant_id,
            login = %login,
            group_role = %group,
            database = %target.database,
            "granted"
        );

        Ok(match password {
            None => Granted::access(),
            Some(password) => Granted::with_credentials(IssuedCredentials {
                username: login,
                password,
                host: self
                    .settings
                    .connect_host
                    .clone()
                    .unwrap_or_else(|| self.host.clone()),
                port: self.settings.connect_port.unwrap_or(self.port),
                database: target.database,
            }),
        })
    }

    pub(super) async fn apply_revoke(&self, grant: &GrantSpec) -> Result<(), ProviderError> {
        let target = self.target(grant)?;
        self.ensure_bookkeeping().await?;
        let what = format!(
            "revoking {} on {} from {}",
            grant.permission, grant.resource_id, grant.identity
        );
        let err = |e: sqlx::Error| classify(e, &what);

        // What the grant made, from its row; without one (never granted, or already revoked),
        // what it would have made, so a revoke cut short after its commit finishes the job.
        let recorded: Option<(String, String, String, String)> = sqlx::query_as(
            "SELECT login, group_role, database, mode FROM latch_connector.grants
             WHERE grant_id = $1",
        )
        .bind(&grant.grant_id)
        .fetch_optional(&self.admin_pool())
        .await
        .map_err(err)?;
        let recorded = match recorded {
            Some((login, group_role, database, mode)) => Recorded {
                login,
                group_role,
                database,
                mode: UserMapping::from_word(&mode).unwrap_or(self.settings.user_mapping),
            },
            None => {
                let mode = self.settings.user_mapping;
                let login = match mode {
                    UserMapping::TemporaryUser => temporary_login(&grant.grant_id),
                    UserMapping::ExistingRole => match self.settings.login_for(&grant.identity) {
                        Ok(login) => login,
                        // No login could ever have been granted for this identity.
                        Err(_) => return Ok(()),
                    },
                };
                Recorded {
                    login,
                    group_role: group_role(
                        &target.database,
                        target.schema.as_deref(),
                        &grant.permission,
                    ),
                    database: target.database.clone(),
                    mode,
                }
            }
        };
        match recorded.mode {
            UserMapping::ExistingRole => self.revoke_membership(grant, &recorded, &what).await,
            UserMapping::TemporaryUser => self.drop_temporary_login(grant, &recorded, &what).await,
        }
    }

    /// `existing_role`: removes the membership unless another grant holds it, then ends the
    /// person's sessions on the database.
    async fn revoke_membership(
        &self,
        grant: &GrantSpec,
        recorded: &Recorded,
        what: &str,
    ) -> Result<(), ProviderError> {
        let err = |e: sqlx::Error| classify(e, what);
        let mut admin = self.locked(&recorded.database, what).await?;
        sqlx::query("DELETE FROM latch_connector.grants WHERE grant_id = $1")
            .bind(&grant.grant_id)
            .execute(&mut *admin)
            .await
            .map_err(err)?;
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM latch_connector.grants WHERE login = $1 AND group_role = $2",
        )
        .bind(&recorded.login)
        .bind(&recorded.group_role)
        .fetch_one(&mut *admin)
        .await
        .map_err(err)?;
        let ended = others == 0;
        if ended
            && role_exists(&mut admin, &recorded.login, what).await?
            && role_exists(&mut admin, &recorded.group_role, what).await?
        {
            execute(
                &mut admin,
                format!(
                    "REVOKE {} FROM {}",
                    quote_ident(&recorded.group_role),
                    quote_ident(&recorded.login)
                ),
                what,
            )
            .await?;
        }
        admin.commit().await.map_err(err)?;
        if ended {
            // After the commit: a session opened before it must not keep what it had.
            self.end_sessions(&recorded.login, Some(&recorded.database), what)
                .await?;
        }
        tracing::info!(
            grant_id = %grant.grant_id,
            login = %recorded.login,
            group_role = %recorded.group_role,
            membership_ended = ended,
            "revoked"
        );
        Ok(())
    }

    /// `temporary_user`: stops new logins, ends the sessions, drops what the login owns in the
    /// database and then the login itself.
    async fn drop_temporary_login(
        &self,
        grant: &GrantSpec,
        recorded: &Recorded,
        what: &str,
    ) -> Result<(), ProviderError> {
        let err = |e: sqlx::Error| classify(e, what);
        let login = &recorded.login;
        let admin_pool = self.admin_pool();
        let exists = {
            let mut conn = admin_pool.acquire().await.map_err(err)?;
            role_exists(&mut conn, login, what).await?
        };
        if exists {
            // Committed before the sessions end, so none can start in between.
            execute_on_pool(
                &admin_pool,
                format!("ALTER ROLE {} WITH NOLOGIN", quote_ident(login)),
                what,
            )
            .await?;
            self.end_sessions(login, None, what).await?;
        }

        let mut admin = self.locked(&recorded.database, what).await?;
        sqlx::query("DELETE FROM latch_connector.grants WHERE grant_id = $1")
            .bind(&grant.grant_id)
            .execute(&mut *admin)
            .await
            .map_err(err)?;
        if role_exists(&mut admin, login, what).await? {
            let drop_owned = format!("DROP OWNED BY {}", quote_ident(login));
            if recorded.database == self.admin_database {
                execute(&mut admin, drop_owned, what).await?;
            } else {
                match self.pool(&recorded.database).begin().await {
                    Ok(mut tx) => {
                        execute(&mut tx, drop_owned, what).await?;
                        tx.commit().await.map_err(err)?;
                    }
                    // The database is gone, and with it whatever the login had there.
                    Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("3D000") => {
                        self.forget_pool(&recorded.database);
                    }
                    Err(e) => return Err(err(e)),
                }
            }
            execute(
                &mut admin,
                format!("DROP ROLE IF EXISTS {}", quote_ident(login)),
                what,
            )
            .await?;
        }
        admin.commit().await.map_err(err)?;
        tracing::info!(grant_id = %grant.grant_id, login = %login, "temporary login dropped");
        Ok(())
    }

    /// A transaction on the admin database holding the lock for changes to `database`.
    async fn locked(
        &self,
        database: &str,
        what: &str,
    ) -> Result<Transaction<'static, Postgres>, ProviderError> {
        let mut tx = self
            .admin_pool()
            .begin()
            .await
            .map_err(|e| classify(e, what))?;
        set_lock_timeout(&mut tx, what).await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('latch:' || $1))")
            .bind(database)
            .execute(&mut *tx)
            .await
            .map_err(|e| classify(e, what))?;
        Ok(tx)
    }

    /// Terminates `login`'s sessions (on `database`, or everywhere), waiting for them to end
    /// where the server can (PostgreSQL 14 and later), so access is gone when this returns.
    async fn end_sessions(
        &self,
        login: &str,
        database: Option<&str>,
        what: &str,
    ) -> Result<(), ProviderError> {
        let err = |e: sqlx::Error| classify(e, what);
        let pool = self.admin_pool();
        let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
            .fetch_one(&pool)
            .await
            .map_err(err)?;
        let wait = if version >= 140_000 { ", 5000" } else { "" };
        let query = format!(
            "SELECT pg_terminate_backend(pid{wait}) FROM pg_stat_activity
             WHERE usename = $1 AND ($2::text IS NULL OR datname = $2)
               AND pid <> pg_backend_pid()"
        );
        sqlx::query(AssertSqlSafe(query))
            .bind(login)
            .bind(database)
            .execute(&pool)
            .await
            .map_err(err)?;
        Ok(())
    }
}

/// Makes sure the group role exists and holds `privileges` on the target: `CONNECT` on the
/// database, `USAGE` on the schemas, the privileges on their tables and sequences, now and (by
/// default privileges) for tables made later. Runs on a connection to the target database.
async fn give_privileges(
    conn: &mut PgConnection,
    target: &Target,
    group: &str,
    privileges: &[String],
    what: &str,
) -> Result<(), ProviderError> {
    if !role_exists(conn, group, what).await? {
        execute(
            conn,
            format!("CREATE ROLE {} NOLOGIN", quote_ident(group)),
            what,
        )
        .await?;
    }
    // Default privileges are per creating role: the schema's owner, the database's owner and the
    // admin login itself create tables here, as far as the admin login may speak for them.
    let query = format!(
        "SELECT n.nspname::text,
                ARRAY(SELECT r.rolname::text FROM pg_roles r
                      WHERE r.oid IN (n.nspowner, d.datdba,
                                      (SELECT oid FROM pg_roles WHERE rolname = current_user))
                        AND r.rolname <> 'pg_database_owner'
                        AND pg_has_role(r.oid, 'MEMBER')
                      ORDER BY r.rolname)
         FROM pg_namespace n
         JOIN pg_database d ON d.datname = current_database()
         WHERE {USER_SCHEMAS} AND ($1::text IS NULL OR n.nspname = $1)
         ORDER BY n.nspname"
    );
    let schemas: Vec<(String, Vec<String>)> = sqlx::query_as(AssertSqlSafe(query))
        .bind(target.schema.as_deref())
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| classify(e, what))?;
    if let Some(schema) = &target.schema
        && schemas.is_empty()
    {
        return Err(ProviderError::not_found(format!(
            "schema {schema:?} does not exist in database {:?}",
            target.database
        )));
    }

    let group = quote_ident(group);
    let tables = table_privileges(privileges);
    let sequences = sequence_privileges(privileges);
    let mut script = format!(
        "GRANT CONNECT ON DATABASE {} TO {group};\n",
        quote_ident(&target.database)
    );
    for (schema, creators) in &schemas {
        let schema = quote_ident(schema);
        script.push_str(&format!(
            "GRANT USAGE ON SCHEMA {schema} TO {group};\n\
             GRANT {tables} ON ALL TABLES IN SCHEMA {schema} TO {group};\n"
        ));
        if let Some(sequences) = &sequences {
            script.push_str(&format!(
                "GRANT {sequences} ON ALL SEQUENCES IN SCHEMA {schema} TO {group};\n"
            ));
        }
        for creator in creators {
            let creator = quote_ident(creator);
            script.push_str(&format!(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {creator} IN SCHEMA {schema} \
                 GRANT {tables} ON TABLES TO {group};\n"
            ));
            if let Some(sequences) = &sequences {
                script.push_str(&format!(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {creator} IN SCHEMA {schema} \
                     GRANT {sequences} ON SEQUENCES TO {group};\n"
                ));
            }
        }
    }
    execute(conn, script, what).await
}

async fn role_exists(
    conn: &mut PgConnection,
    role: &str,
    what: &str,
) -> Result<bool, ProviderError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(role)
        .fetch_one(conn)
        .await
        .map_err(|e| classify(e, what))
}

/// Waits at most this long for row and catalog locks (another session's, since grants to one
/// database already wait on each other through the advisory lock), then fails as transient.
async fn set_lock_timeout(conn: &mut PgConnection, what: &str) -> Result<(), ProviderError> {
    sqlx::raw_sql("SET LOCAL lock_timeout = '60s'")
        .execute(conn)
        .await
        .map(drop)
        .map_err(|e| classify(e, what))
}

/// Runs DDL built from quoted names and literals (it takes no bind parameters).
async fn execute(conn: &mut PgConnection, sql: String, what: &str) -> Result<(), ProviderError> {
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(drop)
        .map_err(|e| classify(e, what))
}

async fn execute_on_pool(
    pool: &sqlx::PgPool,
    sql: String,
    what: &str,
) -> Result<(), ProviderError> {
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(pool)
        .await
        .map(drop)
        .map_err(|e| classify(e, what))
}
