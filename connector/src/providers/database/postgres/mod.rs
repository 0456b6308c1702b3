//! The `postgres` provider.
//!
//! **Inventory.** The server is the root resource (`postgres.server`, `postgres://HOST:PORT`), its
//! databases hang below it (`postgres.database`, `postgres://HOST:PORT/DB`) and each database's
//! schemas below those (`postgres.schema`, `postgres://HOST:PORT/DB/SCHEMA`). Login roles are the
//! identities. Listing schemas needs a connection to each database, so the provider keeps a small
//! lazily made pool per database.
//!
//! **Grants.** For each (database[, schema], permission) the connector owns one `NOLOGIN` group
//! role (see [`sql::group_role`]) that holds the permission's privileges: `CONNECT` on the
//! database, `USAGE` on the schemas, the privileges on every table and sequence, and default
//! privileges so tables made later are covered too. They are applied again on every grant, which
//! is idempotent and catches tables made since. A grant then makes the person a member of the
//! group: their own role under `existing_role`, or a login made for the grant alone under
//! `temporary_user`, with a random password and `VALID UNTIL` the grant's expiry, so the server
//! ends the access by itself even if the connector is down.
//!
//! **Bookkeeping.** Table `latch_connector.grants` in the DSN's own database records which grant
//! made which membership. Two grants may give one person the same access; revoking one must not
//! take away the other, so a revoke removes the membership only when no other row holds it.
//!
//! **Locking.** PostgreSQL fails concurrent `GRANT`s and `CREATE ROLE`s on the same objects
//! ("tuple concurrently updated", duplicate_object). Every grant and revoke therefore runs in a
//! transaction on the admin database that first takes `pg_advisory_xact_lock(hashtext('latch:' ||
//! db))`, so changes to one database happen one at a time, across connector processes too.
//! Privileges on tables are given through a second transaction on the target database, committed
//! while the lock is still held; membership and bookkeeping commit together in the first.
//!
//! **What ends access.** Revoking removes the membership (or drops the temporary login, after
//! `DROP OWNED BY` in the target database) and then terminates the person's open sessions on that
//! database, because privileges checked at connect time or cached in a session would otherwise
//! outlive the grant.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::OnceCell;

use super::settings::{DatabaseSettings, Engine};
use crate::config::IntegrationConfig;
use crate::provider::{Capability, GrantSpec, Granted, Provider, ProviderError, SyncSink};

mod access;
mod inventory;
pub(crate) mod sql;
#[cfg(test)]
mod tests;

use sql::classify;

/// Resource types this provider reports.
pub(crate) const SERVER_TYPE: &str = "postgres.server";
pub(crate) const DATABASE_TYPE: &str = "postgres.database";
pub(crate) const SCHEMA_TYPE: &str = "postgres.schema";

/// Connections per database pool: a sync uses one, grants to one database run one at a time.
const POOL_SIZE: u32 = 4;
/// How long a call waits for a pooled connection (connecting included) before it fails as
/// transient; below the runtime's 30 second health check limit, so that check reports why.
const ACQUIRE: Duration = Duration::from_secs(20);
/// Pools for databases nobody touched for this long close their connections.
const IDLE: Duration = Duration::from_secs(60);

/// The `postgres` provider for one integration.
pub(crate) struct PostgresProvider {
    settings: DatabaseSettings,
    /// The admin login's options; pools for other databases change only the database.
    options: PgConnectOptions,
    /// The DSN's own database: bookkeeping and cluster-wide statements run there.
    admin_database: String,
    /// `postgres://HOST:PORT`, the root resource's id and the prefix of every other id.
    server_id: String,
    host: String,
    port: u16,
    /// One small pool per database, made on first use.
    pools: Mutex<HashMap<String, PgPool>>,
    /// Set once the bookkeeping table is known to exist.
    bookkeeping: OnceCell<()>,
}

impl std::fmt::Debug for PostgresProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresProvider")
            .field("server_id", &self.server_id)
            .field("admin_database", &self.admin_database)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What a grant is for: a database, or one schema in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub database: String,
    pub schema: Option<String>,
}

impl PostgresProvider {
    /// The factory registered for kind `postgres`.
    pub(crate) fn from_config(
        integration: &IntegrationConfig,
    ) -> Result<Arc<dyn Provider>, String> {
        let settings = DatabaseSettings::parse(integration, Engine::Postgres)?;
        let provider = Self::new(settings)
            .map_err(|err| format!("integrations {:?}: {err}", integration.name))?;
        Ok(Arc::new(provider))
    }

    /// A provider for checked settings. Connects lazily: nothing touches the network here.
    pub(crate) fn new(settings: DatabaseSettings) -> Result<Self, String> {
        // The parser's messages never echo the DSN, which may hold a password.
        let options = PgConnectOptions::from_str(&settings.dsn)
            .map_err(|err| format!("dsn: cannot be parsed: {err}"))?
            .application_name("latch-connector")
            // Statements carry passwords (`CREATE ROLE ... PASSWORD`): keep them out of logs.
            .disable_statement_logging();
        let admin_database = options
            .get_database()
            .unwrap_or_else(|| options.get_username())
            .to_string();
        let host = options.get_host().to_string();
        let port = options.get_port();
        Ok(Self {
            server_id: format!("postgres://{host}:{port}"),
            settings,
            options,
            admin_database,
            host,
            port,
            pools: Mutex::new(HashMap::new()),
            bookkeeping: OnceCell::new(),
        })
    }

    /// The pool for `database`, made on first use.
    fn pool(&self, database: &str) -> PgPool {
        let mut pools = self
            .pools
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pools
            .entry(database.to_string())
            .or_insert_with(|| {
                PgPoolOptions::new()
                    .max_connections(POOL_SIZE)
                    .min_connections(0)
                    .acquire_timeout(ACQUIRE)
                    .idle_timeout(IDLE)
                    .connect_lazy_with(self.options.clone().database(database))
            })
            .clone()
    }

    /// Forgets the pool of a database that is gone.
    fn forget_pool(&self, database: &str) {
        let mut pools = self
            .pools
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pools.remove(database);
    }

    fn admin_pool(&self) -> PgPool {
        self.pool(&self.admin_database)
    }

    /// Makes sure `latch_connector.grants` exists; once per provider.
    async fn ensure_bookkeeping(&self) -> Result<(), ProviderError> {
        self.bookkeeping
            .get_or_try_init(|| async {
                let what = "creating the bookkeeping table latch_connector.grants";
                let mut tx = self
                    .admin_pool()
                    .begin()
                    .await
                    .map_err(|err| classify(err, what))?;
                // `IF NOT EXISTS` still races with itself (unique violation in the catalog).
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext('latch:bookkeeping'))")
                    .execute(&mut *tx)
                    .await
                    .map_err(|err| classify(err, what))?;
                sqlx::raw_sql(
                    "CREATE SCHEMA IF NOT EXISTS latch_connector;
                     CREATE TABLE IF NOT EXISTS latch_connector.grants (
                         grant_id text PRIMARY KEY,
                         login text NOT NULL,
                         group_role text NOT NULL,
                         database text NOT NULL,
                         mode text NOT NULL,
                         created_at timestamptz NOT NULL DEFAULT now()
                     );
                     CREATE INDEX IF NOT EXISTS grants_login_group
                         ON latch_connector.grants (login, group_role);",
                )
                .execute(&mut *tx)
                .await
                .map_err(|err| classify(err, what))?;
                tx.commit().await.map_err(|err| classify(err, what))
            })
            .await
            .map(|_| ())
    }

    /// The database (and schema) a grant's resource names.
    fn target(&self, grant: &GrantSpec) -> Result<Target, ProviderError> {
        let unknown = || {
            ProviderError::invalid(format!(
                "resource {:?} of type {:?} is not a database or schema of {}",
                grant.resource_id, grant.resource_type, self.server_id
            ))
        };
        let rest = grant
            .resource_id
            .strip_prefix(&self.server_id)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|rest| !rest.is_empty())
            .ok_or_else(unknown)?;
        match grant.resource_type.as_str() {
            DATABASE_TYPE => Ok(Target {
                database: rest.to_string(),
                schema: None,
            }),
            SCHEMA_TYPE => match rest.split_once('/') {
                Some((database, schema)) if !database.is_empty() && !schema.is_empty() => {
                    Ok(Target {
                        database: database.to_string(),
                        schema: Some(schema.to_string()),
                    })
                }
                _ => Err(unknown()),
            },
            _ => Err(unknown()),
        }
    }
}

#[async_trait]
impl Provider for PostgresProvider {
    fn kind(&self) -> &str {
        "postgres"
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
        self.sync_inventory(sink).await
    }

    async fn grant(&self, grant: &GrantSpec) -> Result<Granted, ProviderError> {
        self.apply_grant(grant).await
    }

    async fn revoke(&self, grant: &GrantSpec) -> Result<(), ProviderError> {
        self.apply_revoke(grant).await
    }

    async fn health_check(&self) -> Result<(), ProviderError> {
        let pool = self.admin_pool();
        let what = "checking the admin login";
        let (login, may_create_roles): (String, bool) = sqlx::query_as(
            "SELECT current_user::text, rolcreaterole OR rolsuper
             FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&pool)
        .await
        .map_err(|err| classify(err, what))?;
        if !may_create_roles {
            return Err(ProviderError::denied(format!(
                "the login {login:?} may not create roles; give it CREATEROLE \
                 (ALTER ROLE {} CREATEROLE)",
                sql::quote_ident(&login)
            )));
        }
        Ok(())
    }
}
