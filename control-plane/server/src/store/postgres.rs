//! The PostgreSQL store: for production and for several replicas on one database.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use super::StoreError;
use super::sql_connectors::impl_connectors;
use super::sql_lifecycle::impl_lifecycle;
use super::sql_store::impl_store;

/// Latch's state in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects and runs the PostgreSQL migrations. sqlx's migrator takes an advisory lock, so
    /// replicas starting together migrate once.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(PostgresStore { pool })
    }

    /// Starts a write transaction. Writers on PostgreSQL serialise on the rows they lock, across
    /// replicas, so there is no turn to wait for here.
    async fn write_tx(
        &self,
    ) -> Result<(super::WriteTurn, sqlx::Transaction<'static, sqlx::Postgres>), StoreError> {
        Ok((None, self.pool.begin().await?))
    }
}

impl_store!(PostgresStore, sqlx::Postgres, for_update = " FOR UPDATE");

impl_lifecycle!(
    PostgresStore,
    sqlx::Postgres,
    for_update = " FOR UPDATE",
    for_share = " FOR SHARE",
    skip_locked = " FOR UPDATE SKIP LOCKED"
);

impl_connectors!(
    PostgresStore,
    sqlx::Postgres,
    for_update = " FOR UPDATE",
    for_share = " FOR SHARE",
    skip_locked = " FOR UPDATE SKIP LOCKED",
    anonymous_binds = false,
    postgres_planner = true
);
