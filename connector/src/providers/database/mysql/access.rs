//! Grants and revokes: the SQL behind each user mapping, the ledger and session killing. The
//! design is described in the parent module's documentation.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::mysql::MySqlConnection;

use super::sql::{
    account, check_account_name, classify, classify_redacted, code, error_number, grant_target,
    quote_ident, quote_literal,
};
use super::{Flavor, LEDGER_DATABASE, MODE_EXISTING, MODE_TEMPORARY, MysqlProvider};
use crate::provider::{GrantSpec, Granted, IssuedCredentials, ProviderError};
use crate::providers::database::settings::{self, UserMapping};

impl MysqlProvider {
    /// The hosts the account `user` exists with (roles excluded).
    async fn account_hosts(
        &self,
        conn: &mut MySqlConnection,
        user: &str,
    ) -> Result<Vec<String>, ProviderError> {
        let query = if self.flavor(conn).await?.mariadb {
            "SELECT Host FROM mysql.user WHERE User = ? AND is_role = 'N' ORDER BY Host"
        } else {
            "SELECT Host FROM mysql.user WHERE User = ? ORDER BY Host"
        };
        sqlx::query_scalar(query)
            .bind(user)
            .fetch_all(&mut *conn)
            .await
            .map_err(|err| classify(err, &format!("look up the accounts named {user:?}")))
    }

    /// Writes the ledger row of a grant; a redelivery finds it there already.
    async fn record(
        &self,
        conn: &mut MySqlConnection,
        grant: &GrantSpec,
        user: &str,
        db: &str,
        mode: &str,
    ) -> Result<(), ProviderError> {
        sqlx::query(
            "INSERT IGNORE INTO latch_connector.grants \
             (grant_id, account_user, db, permission, mode) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&grant.grant_id)
        .bind(user)
        .bind(db)
        .bind(&grant.permission)
        .bind(mode)
        .execute(&mut *conn)
        .await
        .map_err(|err| classify(err, "record the grant in latch_connector.grants"))?;
        Ok(())
    }

    /// The privileges of every `existing_role` grant still recorded for `user` on `db`.
    async fn recorded_privileges(
        &self,
        conn: &mut MySqlConnection,
        user: &str,
        db: &str,
    ) -> Result<Vec<String>, ProviderError> {
        let permissions: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT permission FROM latch_connector.grants \
             WHERE account_user = ? AND db = ? AND mode = ?",
        )
        .bind(user)
        .bind(db)
        .bind(MODE_EXISTING)
        .fetch_all(&mut *conn)
        .await
        .map_err(|err| classify(err, "read latch_connector.grants"))?;
        let mut union = BTreeSet::new();
        for permission in &permissions {
            match self.settings.privileges(permission) {
                Some(privileges) => union.extend(privileges.iter().cloned()),
                None => tracing::warn!(
                    permission = %permission,
                    user = %user,
                    db = %db,
                    "a recorded grant names a permission no longer configured; not granted back"
                ),
            }
        }
        if union.contains("ALL") {
            return Ok(vec!["ALL".to_string()]);
        }
        Ok(union.into_iter().collect())
    }

    /// Kills the sessions of account name `user`: those whose default database is `db`, or all
    /// of them with `None`.
    async fn kill_sessions(
        &self,
        conn: &mut MySqlConnection,
        user: &str,
        db: Option<&str>,
    ) -> Result<(), ProviderError> {
        let ids: Vec<u64> = match db {
            Some(db) => sqlx::query_scalar(
                "SELECT CAST(ID AS UNSIGNED) FROM information_schema.PROCESSLIST \
                 WHERE USER = ? AND DB = ?",
            )
            .bind(user)
            .bind(db),
            None => sqlx::query_scalar(
                "SELECT CAST(ID AS UNSIGNED) FROM information_schema.PROCESSLIST WHERE USER = ?",
            )
            .bind(user),
        }
        .fetch_all(&mut *conn)
        .await
        .map_err(|err| classify(err, &format!("list the sessions of {user:?}")))?;
        for id in ids {
            let killed = sqlx::raw_sql(AssertSqlSafe(format!("KILL CONNECTION {id}")))
                .execute(&mut *conn)
                .await;
            match killed {
                Ok(_) => tracing::info!(user = %user, session = id, "ended a session"),
                // It ended by itself since the list was read.
                Err(err) if error_number(&err) == Some(code::NO_SUCH_THREAD) => {}
                Err(err) => return Err(classify(err, &format!("end session {id} of {user:?}"))),
            }
        }
        Ok(())
    }

    async fn grant_existing(
        &self,
        conn: &mut MySqlConnection,
        grant: &GrantSpec,
        db: &str,
        privileges: &[String],
    ) -> Result<Granted, ProviderError> {
        let user = self.settings.login_for(&grant.identity)?;
        check_account_name(&user)?;
        let hosts = self.account_hosts(conn, &user).await?;
        if hosts.is_empty() {
            return Err(ProviderError::invalid(format!(
                "no MySQL account named {user:?} for {}",
                grant.identity
            )));
        }
        let target = grant_target(db, self.flavor(conn).await?.wildcard_grants);
        self.record(conn, grant, &user, db, MODE_EXISTING).await?;
        for host in &hosts {
            let statement = format!(
                "GRANT {} ON {target} TO {}",
                privilege_list(privileges),
                account(&user, host)
            );
            execute(
                conn,
                statement,
                &format!("grant {} on {db:?}", grant.permission),
            )
            .await?;
        }
        Ok(Granted::access())
    }

    async fn revoke_existing(
        &self,
        conn: &mut MySqlConnection,
        grant: &GrantSpec,
        user: &str,
        db: &str,
    ) -> Result<(), ProviderError> {
        check_account_name(user)?;
        sqlx::query("DELETE FROM latch_connector.grants WHERE grant_id = ?")
            .bind(&grant.grant_id)
            .execute(&mut *conn)
            .await
            .map_err(|err| classify(err, "delete the grant from latch_connector.grants"))?;
        let keep = self.recorded_privileges(conn, user, db).await?;
        let target = grant_target(db, self.flavor(conn).await?.wildcard_grants);
        for host in self.account_hosts(conn, user).await? {
            let account = account(user, &host);
            let revoked = sqlx::raw_sql(AssertSqlSafe(format!(
                "REVOKE ALL PRIVILEGES ON {target} FROM {account}"
            )))
            .execute(&mut *conn)
            .await;
            match revoked {
                Ok(_) => {}
                // Nothing was granted there: already revoked.
                Err(err) if error_number(&err) == Some(code::NONEXISTING_GRANT) => {}
                Err(err) => return Err(classify(err, &format!("revoke on {db:?} from {user:?}"))),
            }
            if !keep.is_empty() {
                let statement = format!("GRANT {} ON {target} TO {account}", privilege_list(&keep));
                execute(
                    conn,
                    statement,
                    &format!("grant back the other grants on {db:?}"),
                )
                .await?;
            }
        }
        self.kill_sessions(conn, user, Some(db)).await
    }

    async fn grant_temporary(
        &self,
        conn: &mut MySqlConnection,
        grant: &GrantSpec,
        db: &str,
        privileges: &[String],
    ) -> Result<Granted, ProviderError> {
        if let Some(expires_at) = grant.expires_at
            && expires_at <= Utc::now()
        {
            return Err(ProviderError::invalid(format!(
                "the grant expired at {expires_at}; no login made"
            )));
        }
        let user = settings::temporary_login(&grant.grant_id);
        let password = settings::random_password();
        let account = account(&user, "%");
        let flavor = self.flavor(conn).await?;
        self.record(conn, grant, &user, db, MODE_TEMPORARY).await?;
        // A redelivered grant finds the account: the password is set anew either way, because
        // the credentials returned the first time may be lost.
        for statement in [
            format!(
                "CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {}",
                quote_literal(&password)
            ),
            format!(
                "ALTER USER {account} IDENTIFIED BY {}",
                quote_literal(&password)
            ),
        ] {
            sqlx::raw_sql(AssertSqlSafe(statement))
                .execute(&mut *conn)
                .await
                .map_err(|err| classify_redacted(err, &format!("set up the login {user:?}")))?;
        }
        let statement = format!(
            "GRANT {} ON {} TO {account}",
            privilege_list(privileges),
            grant_target(db, flavor.wildcard_grants)
        );
        execute(
            conn,
            statement,
            &format!("grant {} on {db:?}", grant.permission),
        )
        .await?;
        if let Some(expires_at) = grant.expires_at {
            self.schedule_expiry(conn, &user, expires_at, flavor)
                .await?;
        }
        Ok(Granted::with_credentials(IssuedCredentials {
            username: user,
            password,
            host: self.credentials_host.clone(),
            port: self.credentials_port,
            database: db.to_string(),
        }))
    }

    /// Makes the server drop the temporary login `user` at `expires_at` by itself.
    async fn schedule_expiry(
        &self,
        conn: &mut MySqlConnection,
        user: &str,
        expires_at: DateTime<Utc>,
        flavor: Flavor,
    ) -> Result<(), ProviderError> {
        let event = expiry_event(user);
        let account = account(user, "%");
        let body = if flavor.mariadb {
            format!("BEGIN DROP USER IF EXISTS {account}; KILL CONNECTION USER {account}; END")
        } else {
            // MySQL has no `KILL ... USER`; its sessions end when they do (or at Latch's revoke).
            format!("DROP USER IF EXISTS {account}")
        };
        // Dropped and made again, so an extended expiry replaces the earlier one. Whole seconds,
        // rounded down: the access ends at most a second early, never late.
        let at = expires_at.format("%Y-%m-%d %H:%M:%S");
        for statement in [
            format!("DROP EVENT IF EXISTS {event}"),
            format!(
                "CREATE EVENT {event} ON SCHEDULE AT '{at}' ON COMPLETION NOT PRESERVE DO {body}"
            ),
        ] {
            execute(conn, statement, &format!("schedule the expiry of {user:?}")).await?;
        }
        let scheduler: String = sqlx::query_scalar("SELECT CAST(@@global.event_scheduler AS CHAR)")
            .fetch_one(&mut *conn)
            .await
            .map_err(|err| classify(err, "read event_scheduler"))?;
        if !scheduler.eq_ignore_ascii_case("ON")
            && !self.scheduler_warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                server = %self.server_name,
                event_scheduler = %scheduler,
                "event_scheduler is not ON: temporary logins end only when latch revokes them"
            );
        }
        Ok(())
    }

    async fn revoke_temporary(
        &self,
        conn: &mut MySqlConnection,
        grant: &GrantSpec,
        user: &str,
    ) -> Result<(), ProviderError> {
        check_account_name(user)?;
        // Dropped first so no new session starts while the open ones are killed.
        let statement = format!("DROP USER IF EXISTS {}", account(user, "%"));
        execute(conn, statement, &format!("drop the login {user:?}")).await?;
        self.kill_sessions(conn, user, None).await?;
        let statement = format!("DROP EVENT IF EXISTS {}", expiry_event(user));
        execute(
            conn,
            statement,
            &format!("drop the expiry event of {user:?}"),
        )
        .await?;
        sqlx::query("DELETE FROM latch_connector.grants WHERE grant_id = ?")
            .bind(&grant.grant_id)
            .execute(&mut *conn)
            .await
            .map_err(|err| classify(err, "delete the grant from latch_connector.grants"))?;
        Ok(())
    }

    pub(super) async fn grant_locked(
        &self,
        conn: &mut MySqlConnection,
        grant: &GrantSpec,
        db: &str,
        privileges: &[String],
    ) -> Result<Granted, ProviderError> {
        self.ensure_ledger(conn).await?;
        match self.settings.user_mapping {
            UserMapping::ExistingRole => self.grant_existing(conn, grant, db, privileges).await,
            UserMapping::TemporaryUser => self.grant_temporary(conn, grant, db, privileges).await,
        }
    }

    pub(super) async fn revoke_locked(
        &self,
        conn: &mut MySqlConnection,
        grant: &GrantSpec,
        db: &str,
    ) -> Result<(), ProviderError> {
        self.ensure_ledger(conn).await?;
        // The ledger says how the grant was made, even if `user_mapping` changed since; without
        // a row (revoked already, or never granted) the current settings decide.
        let recorded: Option<(String, String)> = sqlx::query_as(
            "SELECT account_user, mode FROM latch_connector.grants WHERE grant_id = ?",
        )
        .bind(&grant.grant_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|err| classify(err, "read latch_connector.grants"))?;
        let (user, temporary) = match recorded {
            Some((user, mode)) => (user, mode == MODE_TEMPORARY),
            None => match self.settings.user_mapping {
                UserMapping::ExistingRole => (self.settings.login_for(&grant.identity)?, false),
                UserMapping::TemporaryUser => (settings::temporary_login(&grant.grant_id), true),
            },
        };
        if temporary {
            self.revoke_temporary(conn, grant, &user).await
        } else {
            self.revoke_existing(conn, grant, &user, db).await
        }
    }
}

/// The expiry event of temporary login `user`, qualified.
fn expiry_event(user: &str) -> String {
    format!(
        "{}.{}",
        quote_ident(LEDGER_DATABASE),
        quote_ident(&format!("expire_{user}"))
    )
}

/// `SELECT, SHOW VIEW` for a `GRANT`. The keywords come from the settings, which accept only an
/// allow-list of them.
pub(super) fn privilege_list(privileges: &[String]) -> String {
    privileges
        .iter()
        .map(|privilege| {
            if privilege == "ALL" {
                "ALL PRIVILEGES"
            } else {
                privilege.as_str()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs DDL: `GRANT`, `CREATE USER`, `KILL` and friends cannot be prepared on every server
/// version, so it goes as plain text. `sql` is built only from quoted names and checked keywords.
async fn execute(conn: &mut MySqlConnection, sql: String, what: &str) -> Result<(), ProviderError> {
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|err| classify(err, what))
}
