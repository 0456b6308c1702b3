//! The `mysql` provider: a MySQL or MariaDB server and its databases as resources, its accounts
//! as identities, and grants as database privileges.
//!
//! ```toml
//! [[integrations]]
//! name = "orders-db"
//! kind = "mysql"
//! dsn_file = "/etc/latch/orders-db.dsn"   # mysql://latch:...@db.internal:3306/mysql
//! databases = ["orders_*"]                 # default: every database but the system ones
//! user_mapping = "existing_role"           # or "temporary_user"
//! role_template = "{local}"
//! ```
//!
//! # Inventory
//!
//! The server is the root resource (`mysql.server`, id `mysql://HOST:PORT`), each database in
//! scope its child (`mysql.database`, id `mysql://HOST:PORT/DB`, tags from `tag_rules`). The
//! permissions of a database are the configured permission names (`read`, `write`, `admin` by
//! default). Identities are the account names of `mysql.user`, without the server's own accounts
//! and the connector's temporary logins.
//!
//! # Grants as direct privileges
//!
//! In `existing_role` mode the person's account (named by `role_template`) gets the
//! permission's privileges directly: `GRANT SELECT, SHOW VIEW ON db.* TO 'alice'@'host'`, for
//! every host the account exists with. Roles would be tidier, but a MariaDB role is active in a
//! session only after `SET ROLE` or when it is the account's single default role; access that
//! needs a client to run `SET ROLE` first is access that seems not to work.
//!
//! Direct privileges do not compose by themselves: `REVOKE SELECT` for an ended `write` grant
//! would also take the `SELECT` of a `read` grant the person still holds. So the connector keeps
//! a ledger, table `latch_connector.grants` (one row per grant id: account, database, permission,
//! mode), created when first needed. A grant writes its row, then grants. A revoke deletes its
//! row, then `REVOKE ALL PRIVILEGES ON db.*` from the account and grants back the union of the
//! privileges of the rows still recorded for that account and database. The account's privileges
//! on a managed database are therefore owned by the connector: privileges given there by hand are
//! removed at the next revoke. The `latch_connector` database is never offered as a resource.
//!
//! In `GRANT ... ON db.*`, `_` and `%` are wildcards; database names are escaped so a grant on
//! `app_db` does not also cover `appxdb`.
//!
//! # Locking
//!
//! Read-modify-write of one account's privileges must not interleave with another command on the
//! same database, even from another connector replica. Every grant and revoke takes the server's
//! advisory lock `GET_LOCK('latch:<db>', 30)` on one pooled connection, does all its work on that
//! connection and releases the lock at the end, also on failure. If the lock cannot be released
//! (or the command is cancelled), the connection is closed instead of going back to the pool,
//! which releases the lock with the session. Waiting 30 seconds in vain is a transient error.
//!
//! # Ending open sessions
//!
//! MySQL checks database-level privileges of a session when it selects its default database
//! (`USE`), not on every statement: a session already in `db` keeps the access a revoke took away.
//! So a revoke kills the account's sessions whose default database is `db`
//! (`information_schema.PROCESSLIST`, `KILL CONNECTION`); a session that went away meanwhile is
//! fine. Privileges added by a grant likewise reach open sessions only at their next `USE`.
//!
//! # Temporary users
//!
//! In `temporary_user` mode each grant gets its own account, `'latch_t_<hash of grant id>'@'%'`,
//! with a random password, handed back as credentials (host and port from `connect_host` /
//! `connect_port`, else from the DSN). A redelivered grant sets a new password and returns it,
//! since the earlier one may be lost. Revoke drops the account (and with it its privileges), then
//! kills its sessions.
//!
//! When the grant has an expiry the server ends the access by itself even if Latch is down:
//! neither MySQL nor MariaDB has PostgreSQL's `VALID UNTIL`, so the grant creates a one-time event
//! `latch_connector.expire_<login>` at the expiry (in UTC: every connection of the pool uses
//! `time_zone = '+00:00'`) that drops the account, and on MariaDB also kills its sessions
//! (`KILL CONNECTION USER`). **Events run only with `event_scheduler=ON`** on the server; when it
//! is off the connector logs a warning once and expiry relies on Latch's revoke alone.
//!
//! # The connector's login
//!
//! It needs `CREATE USER`, `GRANT OPTION` and the privileges it hands out (`health_check` checks
//! the first two), `SELECT` on `mysql.user`, `PROCESS` and `CONNECTION ADMIN` (or `SUPER`) to see
//! and kill sessions, and `CREATE`, `EVENT`, `INSERT`, `DELETE` on `latch_connector`.

mod access;
mod lock;
mod sql;
#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions};
use tokio::sync::OnceCell;

use self::lock::DatabaseLock;
use self::sql::{check_database_name, classify};
use super::settings::{DatabaseSettings, Engine};
use crate::config::IntegrationConfig;
use crate::provider::{
    Capability, GrantSpec, Granted, Provider, ProviderError, ResourceTypePermissions, SyncSink,
    SyncedIdentity, SyncedResource,
};

const KIND: &str = "mysql";
const SERVER_TYPE: &str = "mysql.server";
const DATABASE_TYPE: &str = "mysql.database";

/// The connector's own database: the grant ledger and the expiry events.
const LEDGER_DATABASE: &str = "latch_connector";

/// Left out of the default scope (no `databases` globs): the server's own databases.
const SYSTEM_DATABASES: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

/// Accounts of the server itself, never reported as identities.
const SYSTEM_ACCOUNTS: &[&str] = &["mariadb.sys", "mysql", "root"];

/// The prefix of [`settings::temporary_login`] names, kept out of the identities.
const TEMPORARY_PREFIX: &str = "latch_t_";

/// Resources and identities per page pushed to the sink.
const PAGE_SIZE: usize = 500;

/// The ledger's `mode` for each user mapping.
const MODE_EXISTING: &str = "existing_role";
const MODE_TEMPORARY: &str = "temporary_user";

const CREATE_LEDGER_DATABASE: &str = "CREATE DATABASE IF NOT EXISTS `latch_connector`";
const CREATE_LEDGER_TABLE: &str = "CREATE TABLE IF NOT EXISTS `latch_connector`.`grants` (
    grant_id VARCHAR(64) PRIMARY KEY,
    account_user VARCHAR(80) NOT NULL,
    db VARCHAR(64) NOT NULL,
    permission VARCHAR(64) NOT NULL,
    mode VARCHAR(16) NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    KEY account_db (account_user, db)
)";

/// What differs between servers, found out once.
#[derive(Debug, Clone, Copy)]
struct Flavor {
    /// MariaDB: roles live in `mysql.user` (`is_role`), and `KILL CONNECTION USER` exists.
    mariadb: bool,
    /// Whether `_` and `%` in `GRANT ... ON db.*` are wildcards (always, except on MySQL with
    /// `partial_revokes`).
    wildcard_grants: bool,
}

/// A MySQL or MariaDB server, as one integration.
pub(crate) struct MysqlProvider {
    settings: DatabaseSettings,
    pool: MySqlPool,
    /// `mysql://HOST:PORT`: the server's resource id and the prefix of its databases' ids.
    server_id: String,
    /// `HOST:PORT`.
    server_name: String,
    /// Where holders of temporary credentials connect.
    credentials_host: String,
    credentials_port: u16,
    ledger_ready: OnceCell<()>,
    flavor: OnceCell<Flavor>,
    scheduler_warned: AtomicBool,
}

impl MysqlProvider {
    /// Builds the provider for a `kind = "mysql"` integration. Connects lazily: a server that is
    /// down at start-up shows in the health check, not here.
    pub(crate) fn from_config(
        integration: &IntegrationConfig,
    ) -> Result<Arc<dyn Provider>, String> {
        Ok(Arc::new(Self::new(integration)?))
    }

    fn new(integration: &IntegrationConfig) -> Result<Self, String> {
        let settings = DatabaseSettings::parse(integration, Engine::Mysql)?;
        // The parse error names the problem, never the DSN (which may hold a password).
        let options = MySqlConnectOptions::from_str(&settings.dsn)
            .map_err(|err| {
                format!(
                    "integrations {:?}: dsn: not a usable MySQL URL: {err}",
                    integration.name
                )
            })?
            // Expiry events are written in UTC; a `timezone` in the DSN must not change that.
            .timezone(Some("+00:00".to_string()));

        let host = options.get_host().to_string();
        let port = options.get_port();
        let server_name = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let credentials_host = settings.connect_host.clone().unwrap_or(host);
        let credentials_port = settings.connect_port.unwrap_or(port);

        let mut pool_options = MySqlPoolOptions::new().max_connections(8);
        if tokio::runtime::Handle::try_current().is_err() {
            // `latch-connector check` builds providers outside a runtime only to validate them;
            // the pool's idle reaper would need one to spawn on.
            pool_options = pool_options.idle_timeout(None).max_lifetime(None);
        }
        let pool = pool_options.connect_lazy_with(options);

        Ok(Self {
            settings,
            pool,
            server_id: format!("mysql://{server_name}"),
            server_name,
            credentials_host,
            credentials_port,
            ledger_ready: OnceCell::new(),
            flavor: OnceCell::new(),
            scheduler_warned: AtomicBool::new(false),
        })
    }

    /// Whether database `name` is offered and may be granted on.
    fn in_scope(&self, name: &str) -> bool {
        if name == LEDGER_DATABASE {
            return false;
        }
        if self.settings.databases.is_empty() && SYSTEM_DATABASES.contains(&name) {
            return false;
        }
        self.settings.includes_database(name)
    }

    /// The database a grant is about, checked against the resource id and type.
    fn database_of<'g>(&self, grant: &'g GrantSpec) -> Result<&'g str, ProviderError> {
        if grant.resource_type != DATABASE_TYPE {
            return Err(ProviderError::invalid(format!(
                "grants apply to {DATABASE_TYPE} resources, not {:?}",
                grant.resource_type
            )));
        }
        let db = grant
            .resource_id
            .strip_prefix(self.server_id.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(|| {
                ProviderError::invalid(format!(
                    "resource {:?} is not a database of {}",
                    grant.resource_id, self.server_id
                ))
            })?;
        check_database_name(db)?;
        Ok(db)
    }

    async fn flavor(&self, conn: &mut MySqlConnection) -> Result<Flavor, ProviderError> {
        self.flavor
            .get_or_try_init(move || async move {
                let version: String = sqlx::query_scalar("SELECT VERSION()")
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(|err| classify(err, "read the server version"))?;
                let mariadb = version.to_ascii_lowercase().contains("mariadb");
                let partial_revokes = if mariadb {
                    false
                } else {
                    // Missing on servers before 8.0.16: then it is off.
                    sqlx::query_scalar::<_, i64>("SELECT CAST(@@global.partial_revokes AS SIGNED)")
                        .fetch_one(&mut *conn)
                        .await
                        .is_ok_and(|on| on != 0)
                };
                Ok(Flavor {
                    mariadb,
                    wildcard_grants: !partial_revokes,
                })
            })
            .await
            .copied()
    }

    async fn ensure_ledger(&self, conn: &mut MySqlConnection) -> Result<(), ProviderError> {
        self.ledger_ready
            .get_or_try_init(move || async move {
                for statement in [CREATE_LEDGER_DATABASE, CREATE_LEDGER_TABLE] {
                    sqlx::raw_sql(statement)
                        .execute(&mut *conn)
                        .await
                        .map_err(|err| classify(err, "create the latch_connector.grants table"))?;
                }
                Ok(())
            })
            .await
            .map(|_| ())
    }

    async fn check_grants(&self, conn: &mut MySqlConnection) -> Result<(), ProviderError> {
        // Plain text: not every server version can prepare SHOW GRANTS.
        let rows = sqlx::raw_sql("SHOW GRANTS")
            .fetch_all(&mut *conn)
            .await
            .map_err(|err| classify(err, "show the connector's grants"))?;
        let grants = rows
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| classify(err, "read the connector's grants"))?;
        let global = |grant: &&String| grant.contains(" ON *.* ");
        let can_create_users = grants
            .iter()
            .filter(global)
            .any(|grant| grant.contains("ALL PRIVILEGES") || grant.contains("CREATE USER"));
        let can_grant = grants
            .iter()
            .filter(global)
            .any(|grant| grant.contains("WITH GRANT OPTION"));
        if can_create_users && can_grant {
            Ok(())
        } else {
            // The grants are not quoted: MariaDB prints password hashes in them.
            Err(ProviderError::denied(format!(
                "the connector's login on {} lacks CREATE USER or GRANT OPTION on *.*; it needs \
                 both to grant and revoke",
                self.server_name
            )))
        }
    }
}

#[async_trait]
impl Provider for MysqlProvider {
    fn kind(&self) -> &str {
        KIND
    }

    fn capabilities(&self) -> Vec<Capability> {
        vec![
            Capability::Sync,
            Capability::Grant,
            Capability::Revoke,
            Capability::Identities,
        ]
    }

    async fn sync(&self, sink: &mut dyn SyncSink) -> Result<(), ProviderError> {
        // Everything is read before the sink is called, so no connection is held while the
        // runtime sends pages.
        let (databases, accounts) = {
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(|err| classify(err, "connect"))?;
            let databases: Vec<String> = sqlx::query_scalar(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME",
            )
            .fetch_all(&mut *conn)
            .await
            .map_err(|err| classify(err, "list the databases"))?;
            let query = if self.flavor(&mut conn).await?.mariadb {
                "SELECT DISTINCT User FROM mysql.user WHERE is_role = 'N' ORDER BY User"
            } else {
                "SELECT DISTINCT User FROM mysql.user ORDER BY User"
            };
            let accounts: Vec<String> = sqlx::query_scalar(query)
                .fetch_all(&mut *conn)
                .await
                .map_err(|err| classify(err, "list the accounts"))?;
            (databases, accounts)
        };

        let permissions = vec![
            ResourceTypePermissions {
                resource_type: SERVER_TYPE.to_string(),
                permissions: Vec::new(),
            },
            ResourceTypePermissions {
                resource_type: DATABASE_TYPE.to_string(),
                permissions: self.settings.permission_names(),
            },
        ];
        let mut resources = vec![SyncedResource {
            id: self.server_id.clone(),
            resource_type: SERVER_TYPE.to_string(),
            name: self.server_name.clone(),
            ..SyncedResource::default()
        }];
        resources.extend(
            databases
                .into_iter()
                .filter(|db| self.in_scope(db))
                .map(|db| SyncedResource {
                    id: format!("{}/{db}", self.server_id),
                    resource_type: DATABASE_TYPE.to_string(),
                    tags: self.settings.tags_for(&db),
                    parent: Some(self.server_id.clone()),
                    name: db,
                    ..SyncedResource::default()
                }),
        );
        let mut permissions = Some(permissions);
        for page in resources.chunks(PAGE_SIZE) {
            sink.resources(page.to_vec(), permissions.take().unwrap_or_default())
                .await?;
        }

        let identities: Vec<SyncedIdentity> = accounts
            .into_iter()
            .filter(|user| {
                !user.is_empty()
                    && !SYSTEM_ACCOUNTS.contains(&user.as_str())
                    && !user.starts_with(TEMPORARY_PREFIX)
            })
            .map(|user| SyncedIdentity {
                display_name: user.clone(),
                external_id: user,
                email: None,
            })
            .collect();
        for page in identities.chunks(PAGE_SIZE) {
            sink.identities(page.to_vec()).await?;
        }
        Ok(())
    }

    async fn grant(&self, grant: &GrantSpec) -> Result<Granted, ProviderError> {
        let db = self.database_of(grant)?;
        if !self.in_scope(db) {
            return Err(ProviderError::invalid(format!(
                "database {db:?} is not in this integration's databases"
            )));
        }
        let privileges = self.settings.privileges(&grant.permission).ok_or_else(|| {
            ProviderError::invalid(format!(
                "unknown permission {:?} (configured: {})",
                grant.permission,
                self.settings.permission_names().join(", ")
            ))
        })?;
        let mut locked = DatabaseLock::acquire(&self.pool, db).await?;
        let exists: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        )
        .bind(db)
        .fetch_one(locked.conn())
        .await
        .map_err(|err| classify(err, "look up the database"))?;
        let result = if exists == 0 {
            Err(ProviderError::not_found(format!(
                "no database {db:?} on {}",
                self.server_name
            )))
        } else {
            self.grant_locked(locked.conn(), grant, db, privileges)
                .await
        };
        locked.release().await;
        result
    }

    async fn revoke(&self, grant: &GrantSpec) -> Result<(), ProviderError> {
        // No scope check: access to a database taken out of scope must still be removable.
        let db = self.database_of(grant)?;
        let mut locked = DatabaseLock::acquire(&self.pool, db).await?;
        let result = self.revoke_locked(locked.conn(), grant, db).await;
        locked.release().await;
        result
    }

    async fn health_check(&self) -> Result<(), ProviderError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|err| classify(err, "connect"))?;
        sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .map_err(|err| classify(err, "run SELECT 1"))?;
        self.check_grants(&mut conn).await
    }
}
