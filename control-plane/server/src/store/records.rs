//! The rows the store reads and writes, as plain Rust values shared by both backends.

use chrono::{DateTime, Utc};
use latch_core::flow::FlowSpec;
use serde_json::Value;

use super::StoreError;

/// A flow's content ready to be stored: the spec and its digest.
#[derive(Debug, Clone)]
pub struct FlowVersion {
    pub spec: FlowSpec,
    pub json: String,
    pub digest: String,
}

impl FlowVersion {
    /// Canonical JSON and digest of a validated spec.
    pub fn new(spec: FlowSpec) -> Self {
        let json = spec.canonical_json();
        let digest = spec.digest();
        FlowVersion { spec, json, digest }
    }
}

/// One stored version of a flow.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFlow {
    pub spec: FlowSpec,
    pub version: u32,
    pub digest: String,
    pub applied_at: DateTime<Utc>,
    pub applied_by: String,
    pub deleted: bool,
}

impl StoredFlow {
    pub(crate) fn from_row(
        name: &str,
        json: &str,
        version: i64,
        digest: String,
        applied_at: DateTime<Utc>,
        applied_by: String,
        deleted: bool,
    ) -> Result<Self, StoreError> {
        let spec: FlowSpec = serde_json::from_str(json)
            .map_err(|err| StoreError::corrupt(format!("flow {name:?}"), err))?;
        let version = u32::try_from(version)
            .map_err(|err| StoreError::corrupt(format!("flow {name:?} version {version}"), err))?;
        Ok(StoredFlow {
            spec,
            version,
            digest,
            applied_at,
            applied_by,
            deleted,
        })
    }
}

/// What applying did to one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    Created,
    Updated,
    Unchanged,
}

/// The result of applying one flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedFlow {
    pub name: String,
    pub version: u32,
    pub outcome: ApplyOutcome,
}

/// A token to store. The secret itself is never here, only its hash.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub user: String,
    pub admin: bool,
    pub description: String,
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: String,
}

/// A stored token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub user: String,
    pub admin: bool,
    pub description: String,
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_by: String,
}

impl TokenRecord {
    /// Whether the token works at `now`: not revoked and not expired.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expiry| now < expiry)
    }
}

/// An audit event before it is chained.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: &'static str,
    pub subject: String,
    pub details: Value,
}

/// A stored audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// Which audit events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events about this subject.
    pub subject: Option<String>,
}

/// One directory source as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDirectory {
    /// Canonical JSON of the directory document.
    pub json: String,
    pub digest: String,
    pub applied_at: DateTime<Utc>,
    pub applied_by: String,
}
