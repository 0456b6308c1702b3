//! The per-database advisory lock that serializes grants and revokes.

use sha2::{Digest, Sha256};
use sqlx::MySql;
use sqlx::mysql::{MySqlConnection, MySqlPool};
use sqlx::pool::PoolConnection;

use super::sql::classify;
use crate::provider::ProviderError;

/// How long a command waits for another one on the same database, in seconds.
const LOCK_TIMEOUT_SECS: i64 = 30;

/// MySQL 8 refuses lock names longer than this.
pub(super) const MAX_LOCK_NAME: usize = 64;

/// A pooled connection holding the advisory lock of one database.
pub(super) struct DatabaseLock {
    conn: PoolConnection<MySql>,
    name: String,
    released: bool,
}

impl DatabaseLock {
    pub(super) async fn acquire(pool: &MySqlPool, db: &str) -> Result<Self, ProviderError> {
        let mut conn = pool
            .acquire()
            .await
            .map_err(|err| classify(err, "connect"))?;
        let name = lock_name(db);
        let got: Option<i64> = sqlx::query_scalar("SELECT CAST(GET_LOCK(?, ?) AS SIGNED)")
            .bind(&name)
            .bind(LOCK_TIMEOUT_SECS)
            .fetch_one(&mut *conn)
            .await
            .map_err(|err| classify(err, &format!("lock database {db:?}")))?;
        match got {
            Some(1) => Ok(Self {
                conn,
                name,
                released: false,
            }),
            _ => Err(ProviderError::transient(format!(
                "another change to database {db:?} held its lock for {LOCK_TIMEOUT_SECS}s"
            ))),
        }
    }

    pub(super) fn conn(&mut self) -> &mut MySqlConnection {
        &mut self.conn
    }

    /// Releases the lock; if that fails the session is closed, which releases it too.
    pub(super) async fn release(mut self) {
        let released = sqlx::query("SELECT RELEASE_LOCK(?)")
            .bind(&self.name)
            .execute(&mut *self.conn)
            .await;
        match released {
            Ok(_) => self.released = true,
            Err(err) => tracing::warn!(
                lock = %self.name,
                error = %err,
                "could not release a database lock; closing its connection"
            ),
        }
    }
}

impl Drop for DatabaseLock {
    fn drop(&mut self) {
        // Not released (the command was cancelled, or RELEASE_LOCK failed): a pooled session
        // would keep the lock, so the connection is closed instead of returned.
        if !self.released {
            self.conn.close_on_drop();
        }
    }
}

/// `latch:<db>`, or a digest of the name when that is too long for MySQL 8.
pub(super) fn lock_name(db: &str) -> String {
    let name = format!("latch:{db}");
    if name.len() <= MAX_LOCK_NAME {
        name
    } else {
        let digest = hex::encode(Sha256::digest(db.as_bytes()));
        format!("latch:{}", &digest[..40])
    }
}
