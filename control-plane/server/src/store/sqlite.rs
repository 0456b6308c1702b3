//! The SQLite store: the default. One file, WAL, created on first start, nothing to install.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::StoreError;
use super::sql_connectors::impl_connectors;
use super::sql_lifecycle::impl_lifecycle;
use super::sql_store::impl_store;

/// Latch's state in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// SQLite has one writer at a time. Writers queue here, in order, instead of colliding on the
    /// database lock and backing off in SQLite's busy handler (which sleeps, and wastes the
    /// moments the lock is free).
    writer: Arc<tokio::sync::Mutex<()>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs the SQLite migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable in WAL mode except against power loss of the last transactions;
            // FULL makes every commit survive power loss, which an access log must.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        Self::connect_with(options).await
    }

    /// Opens a database from a `sqlite:` URL (used by tests for in-memory databases).
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?.create_if_missing(true);
        Self::connect_with(options).await
    }

    async fn connect_with(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore {
            pool,
            writer: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Starts a write transaction, after the writers before it. `BEGIN IMMEDIATE` takes the
    /// write lock up front, so a transaction never fails half-way upgrading a read lock.
    async fn write_tx(
        &self,
    ) -> Result<(super::WriteTurn, sqlx::Transaction<'static, sqlx::Sqlite>), StoreError> {
        let turn = self.writer.clone().lock_owned().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok((Some(turn), tx))
    }
}

impl_store!(SqliteStore, sqlx::Sqlite, for_update = "");

impl_lifecycle!(
    SqliteStore,
    sqlx::Sqlite,
    for_update = "",
    for_share = "",
    skip_locked = ""
);

impl_connectors!(
    SqliteStore,
    sqlx::Sqlite,
    for_update = "",
    for_share = "",
    skip_locked = "",
    anonymous_binds = true,
    postgres_planner = false
);
