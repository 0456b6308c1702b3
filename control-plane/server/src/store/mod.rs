//! Durable state behind one interface, [`Store`], with one implementation per backend: SQLite (the
//! default, one file) and PostgreSQL (production, several replicas). Each backend runs its own
//! migrations at start. The contract tests in `tests/store_contract.rs` run against both.

mod audit_chain;
mod connectors;
mod error;
mod lifecycle;
mod postgres;
mod records;
pub(crate) mod rows;
mod sql_connectors;
mod sql_lifecycle;
mod sql_store;
mod sqlite;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use audit_chain::{ChainBreak, ChainVerifier, GENESIS_HASH, chain_hash};
pub use connectors::{
    Announcement, AttemptOutcome, ClaimedCommand, ConnectorRecord, ConnectorState, ConnectorStore,
    IntegrationGroup, IntegrationRecord, MAX_RETRY_AFTER, NewConnector, PageChanges, Retry,
    RetryPolicy, SeenIds, SyncEnd, SyncedGroup, SyncedIdentity, SyncedMembership, SyncedResource,
};
pub use error::StoreError;
pub use lifecycle::{
    ApprovalRecord, CacheVersions, ChangeFn, CommandRecord, CommandResult, CreatedRequest,
    Extension, GrantFilter, GrantRecord, GrantState, LifecycleStore, NewGrant, NewRequest, PlanFn,
    ReconcilePlan, Refusal, RequestChange, RequestFilter, RequestItem, RequestRecord, RequestView,
    ResourceChanges, ResourceRecord, SealedCredentials, SweepReport, lifecycle_action,
};
pub use postgres::PostgresStore;
pub use records::{
    AppliedFlow, ApplyOutcome, AuditEvent, AuditFilter, FlowVersion, NewAuditEvent, NewToken,
    StoredDirectory, StoredFlow, TokenRecord,
};
pub use sqlite::SqliteStore;

/// Everything Latch keeps. Every method that changes state writes its audit events in the same
/// transaction, so a change and its record land together or not at all.
#[async_trait]
pub trait Store: LifecycleStore + ConnectorStore {
    /// Creates or updates flows, all or nothing. Content equal to the current version (same digest)
    /// makes no new version; a deleted flow comes back with the version after its last one.
    async fn apply_flows(
        &self,
        flows: &[FlowVersion],
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<AppliedFlow>, StoreError>;

    /// The current version of a live flow, or a given version of any flow, deleted or not.
    async fn get_flow(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredFlow>, StoreError>;

    /// Current versions of live flows with names after `after`, ordered by name.
    async fn list_flows(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredFlow>, StoreError>;

    /// Deletes a live flow; returns its last version, or `None` if there was no such live flow.
    async fn delete_flow(
        &self,
        name: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredFlow>, StoreError>;

    /// Stores a new token (its hash only).
    async fn create_token(&self, token: &NewToken, actor: &str) -> Result<(), StoreError>;

    /// Stores `token` only if no token exists at all; returns whether it did. Used once, at first start.
    async fn create_first_admin_token(&self, token: &NewToken) -> Result<bool, StoreError>;

    /// The token with this id, whatever its state.
    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// Tokens with ids before `before` (ids grow with time, so this is newest first).
    /// Without `include_inactive`, revoked tokens and tokens expired at `now` are left out.
    async fn list_tokens(
        &self,
        before: Option<&str>,
        limit: u32,
        include_inactive: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<TokenRecord>, StoreError>;

    /// Revokes a token; revoking a revoked token changes nothing. `None` if there is no such token.
    async fn revoke_token(
        &self,
        id: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>, StoreError>;

    /// Audit events with sequence numbers after `after_seq`, oldest first.
    async fn audit_events(&self, after_seq: i64, limit: u32)
    -> Result<Vec<AuditEvent>, StoreError>;

    /// Audit events after `after_seq` that match `filter`, oldest first.
    async fn find_audit_events(
        &self,
        filter: &AuditFilter,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// The chain's tip as the log records it: the last sequence number and its hash.
    async fn audit_head(&self) -> Result<(i64, String), StoreError>;

    /// The stored document of a directory source and its digest.
    async fn directory(&self, source: &str) -> Result<Option<StoredDirectory>, StoreError>;

    /// Replaces a directory source, if its digest is still `expected_digest` (`None`: it must not
    /// exist yet); otherwise [`StoreError::Conflict`]. The caller computed `change` (the diff, for
    /// the audit log) against that version, so a concurrent replacement must not slip in between.
    async fn replace_directory(
        &self,
        source: &str,
        expected_digest: Option<&str>,
        new: &StoredDirectory,
        change: serde_json::Value,
    ) -> Result<(), StoreError>;
}

/// A writer's turn: held for as long as its transaction, where the backend takes turns.
type WriteTurn = Option<tokio::sync::OwnedMutexGuard<()>>;

/// `at` at the precision both backends keep (microseconds), so that a value handed back equals the
/// value read later.
pub fn stored_time(at: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    at.trunc_subsecs(6)
}

/// Opens the store a server is configured for: PostgreSQL for a `postgres://` URL, otherwise SQLite
/// in `data_dir/latch.db`. Migrations run before this returns.
pub async fn open(
    database_url: Option<&str>,
    data_dir: &Path,
) -> Result<Arc<dyn Store>, StoreError> {
    match database_url {
        Some(url) => Ok(Arc::new(PostgresStore::connect(url).await?)),
        None => Ok(Arc::new(
            SqliteStore::open(&data_dir.join("latch.db")).await?,
        )),
    }
}
