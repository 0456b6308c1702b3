use thiserror::Error;

/// What can go wrong in the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database refused or failed; nothing was changed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed at start.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be read back (for example a flow written by a newer Latch).
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt { what: String, reason: String },
    /// Another writer changed the same rows at the same moment; retrying is safe.
    #[error("conflicting concurrent change to {0}; retry")]
    Conflict(String),
    /// The database could not be used for this change; nothing was written. Retrying later is safe.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The change is not allowed; nothing was written.
    #[error(transparent)]
    Refused(#[from] super::Refusal),
}

impl StoreError {
    pub(crate) fn corrupt(what: impl Into<String>, reason: impl ToString) -> Self {
        StoreError::Corrupt {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// Turns a unique-key violation into [`StoreError::Conflict`]: two writers raced on the same row.
    pub(crate) fn from_write(err: sqlx::Error, what: &str) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(what.to_string())
            }
            _ => StoreError::Database(err),
        }
    }
}
