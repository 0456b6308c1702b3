//! The rows and the interface of the request lifecycle: inventory, requests, approvals, grants and
//! the command outbox.
//!
//! Decisions that must see the latest rows (may this person approve? is the plan now satisfied?)
//! are made by the caller inside the store's transaction: the store locks the request, reads it,
//! hands a [`RequestView`] to a pure closure and applies the [`RequestChange`] it returns, so two
//! approvers arriving at once never both miss the moment the plan is satisfied.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use latch_core::decide::FlowRef;
use latch_core::request::RequestState;
use serde::{Deserialize, Serialize};

use super::StoreError;

/// A resource as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRecord {
    pub id: String,
    pub integration: String,
    pub resource_type: String,
    pub name: String,
    pub parent: Option<String>,
    /// Ancestor ids, parent first.
    pub ancestors: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub owners: Vec<String>,
    pub source: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

impl ResourceRecord {
    /// The resource as the decision engine sees it.
    pub fn to_engine(&self) -> latch_core::decide::Resource {
        latch_core::decide::Resource {
            integration: self.integration.clone(),
            resource_type: self.resource_type.clone(),
            id: self.id.clone(),
            name: self.name.clone(),
            tags: self.tags.clone(),
            ancestors: self.ancestors.clone(),
            owners: self.owners.clone(),
        }
    }

    /// Whether the facts flows can match on (or approvers come from) differ.
    pub fn differs_from(&self, other: &ResourceRecord) -> bool {
        self.integration != other.integration
            || self.resource_type != other.resource_type
            || self.name != other.name
            || self.parent != other.parent
            || self.ancestors != other.ancestors
            || self.tags != other.tags
            || self.owners != other.owners
    }
}

/// What replacing a resource source changed, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl ResourceChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Versions of what servers cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheVersions {
    /// Grows with every flow change (apply or delete).
    pub flows: i64,
    /// Grows with every inventory change.
    pub resources: i64,
    /// The digest of the directory source; `None` before the first apply.
    pub directory: Option<String>,
}

/// One (resource, permission) asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestItem {
    pub resource_id: String,
    pub permission: String,
}

/// An access request as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub id: String,
    /// Lowercased email.
    pub requester: String,
    pub state: RequestState,
    pub items: Vec<RequestItem>,
    pub requested_duration_secs: Option<i64>,
    /// The decided duration; `None` when denied.
    pub duration_secs: Option<i64>,
    pub justification: String,
    /// `allow_auto`, `needs_approval` or `deny`.
    pub outcome: String,
    /// JSON of [`latch_core::decide::Decision`].
    pub decision: String,
    pub digest: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub pending_expires_at: Option<DateTime<Utc>>,
    pub activated_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
}

/// A request to store, as decided.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub record: RequestRecord,
    /// The flow versions the decision used; the store refuses to write if any of them is no longer
    /// current, so a decision never outlives the flows it was made from.
    pub flows: Vec<FlowRef>,
    /// For an approved request: what to grant, one per item.
    pub grants: Vec<NewGrant>,
    /// Details for the audit event (decision inputs, flow versions).
    pub audit_details: serde_json::Value,
    /// For an approved request: when the requester already holds every item through one active
    /// request, extend that request instead of storing this one.
    pub extension: Option<Extension>,
}

/// How far asking again for held access may extend it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension {
    /// The duration asked for, from now.
    pub wanted_secs: i64,
    /// The flows' maximum, counted from when the held access became active.
    pub max_secs: Option<i64>,
}

/// A request as stored, or the held request it extended.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedRequest {
    pub view: RequestView,
    /// `view` is an existing request that was extended; nothing new was stored.
    pub extended: bool,
}

/// An approver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRecord {
    pub request_id: String,
    pub approver: String,
    /// `approve` or `deny`.
    pub verdict: String,
    pub reason: String,
    pub request_digest: String,
    pub at: DateTime<Utc>,
}

/// Where a grant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrantState {
    Granting,
    Active,
    Revoking,
    Expired,
    Revoked,
    Failed,
    /// A revoke that used up its attempts: the access may still be in place. Its revoke command
    /// stays open and is tried again from time to time; a `Done` for it ends the grant.
    RevokeFailed,
}

impl GrantState {
    pub const ALL: [GrantState; 7] = [
        GrantState::Granting,
        GrantState::Active,
        GrantState::Revoking,
        GrantState::Expired,
        GrantState::Revoked,
        GrantState::Failed,
        GrantState::RevokeFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantState::Granting => "granting",
            GrantState::Active => "active",
            GrantState::Revoking => "revoking",
            GrantState::Expired => "expired",
            GrantState::Revoked => "revoked",
            GrantState::Failed => "failed",
            GrantState::RevokeFailed => "revoke_failed",
        }
    }

    pub fn parse(text: &str) -> Result<GrantState, StoreError> {
        GrantState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| StoreError::corrupt("grant state", format!("{text:?}")))
    }

    /// Whether access is (or is about to be) in place.
    pub fn is_live(self) -> bool {
        matches!(self, GrantState::Granting | GrantState::Active)
    }
}

/// A grant as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantRecord {
    pub id: String,
    /// `None` for grants of automatic flows.
    pub request_id: Option<String>,
    pub identity: String,
    pub integration: String,
    pub resource_id: String,
    pub resource_type: String,
    pub permission: String,
    pub flow: FlowRef,
    pub state: GrantState,
    pub desired: String,
    pub observed: String,
    pub generation: i64,
    pub duration_secs: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
}

/// A grant to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrant {
    pub identity: String,
    pub integration: String,
    pub resource_id: String,
    pub resource_type: String,
    pub permission: String,
    pub flow: FlowRef,
    /// `None` for automatic grants, which last while the flow matches.
    pub duration_secs: Option<i64>,
}

/// A command in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRecord {
    pub seq: i64,
    pub id: String,
    pub grant_id: String,
    pub integration: String,
    /// `grant` or `revoke`.
    pub kind: String,
    pub generation: i64,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub result: Option<String>,
}

/// What a connector reported for a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandResult {
    /// Applied: the grant is in place, or the revoke removed it.
    Done,
    /// Applied, and the grant made a login for the requester alone (a temporary database user).
    /// Kept, sealed, while the grant is active; deleted when its revoke completes.
    DoneWithCredentials(SealedCredentials),
    /// Could not be applied, and will not be retried.
    Failed(String),
}

impl CommandResult {
    /// Whether the command was applied.
    pub fn is_done(&self) -> bool {
        !matches!(self, CommandResult::Failed(_))
    }
}

/// Credentials as stored: sealed with the server's credentials key and bound to their grant
/// (`connectors::vault`). The store never sees them in the clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedCredentials {
    pub nonce: Vec<u8>,
    pub sealed: Vec<u8>,
}

/// A request with what belongs to it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestView {
    pub request: RequestRecord,
    pub approvals: Vec<ApprovalRecord>,
    pub grants: Vec<GrantRecord>,
}

/// What to do to a request, decided by the caller from a fresh [`RequestView`].
#[derive(Debug, Clone, PartialEq)]
pub enum RequestChange {
    /// Record an approval; when `completes` the plan, approve and send the grants.
    Approve {
        approval: ApprovalRecord,
        completes: bool,
        /// What to grant when the approval completes the plan, one per item.
        grants: Vec<NewGrant>,
    },
    /// Record a denial and deny the request.
    Deny { approval: ApprovalRecord },
    /// The requester withdraws it.
    Cancel,
    /// End granted access early.
    Revoke { reason: String },
    /// Move the expiry of active access (and of its grants) to `expires_at`.
    Extend {
        expires_at: DateTime<Utc>,
        details: serde_json::Value,
    },
}

/// Why a change was refused; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Unauthenticated(String),
}

/// What the reconciler wants changed, decided from the live grants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReconcilePlan {
    /// Automatic grants to create.
    pub grant: Vec<NewGrant>,
    /// Grants to revoke, with the reason.
    pub revoke: Vec<(String, String)>,
    /// The requests whose access the revokes end (each once).
    pub revoked_requests: Vec<String>,
}

impl ReconcilePlan {
    pub fn is_empty(&self) -> bool {
        self.grant.is_empty() && self.revoke.is_empty()
    }
}

/// What one expiry sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Active requests whose expiry passed, now revoking (or already ended).
    pub expired_requests: usize,
    /// Pending requests that outlived their TTL.
    pub timed_out_requests: usize,
}

/// Filters for listing requests.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub requester: Option<String>,
    pub state: Option<RequestState>,
}

/// Filters for listing grants.
#[derive(Debug, Clone, Default)]
pub struct GrantFilter {
    pub identity: Option<String>,
    pub state: Option<GrantState>,
    pub resource_id: Option<String>,
}

/// A closure deciding a request change from a fresh view.
pub type ChangeFn<'a> = &'a (dyn Fn(&RequestView) -> Result<RequestChange, Refusal> + Send + Sync);

/// A closure planning reconciliation from the live grants.
pub type PlanFn<'a> = &'a (dyn Fn(&[GrantRecord]) -> ReconcilePlan + Send + Sync);

/// The lifecycle half of the store. Every state change writes its audit events and its commands in
/// the same transaction.
#[async_trait]
pub trait LifecycleStore: Send + Sync + 'static {
    /// Replaces every resource of `source` with `resources`; returns what changed.
    async fn replace_resources(
        &self,
        source: &str,
        resources: &[ResourceRecord],
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<ResourceChanges, StoreError>;

    /// The integrations the inventory has resources of.
    async fn known_integrations(&self) -> Result<std::collections::BTreeSet<String>, StoreError>;

    /// The resources with these ids (those that exist), in no particular order.
    async fn resources_by_id(&self, ids: &[String]) -> Result<Vec<ResourceRecord>, StoreError>;

    /// Resources with ids after `after`, ordered by id, optionally of one integration and type,
    /// carrying every one of `tags` (same key, same value), and containing `search` in their id
    /// or name (case-insensitive; on SQLite only ASCII letters fold).
    async fn list_resources(
        &self,
        after: Option<&str>,
        limit: u32,
        integration: Option<&str>,
        resource_type: Option<&str>,
        tags: &BTreeMap<String, String>,
        search: Option<&str>,
    ) -> Result<Vec<ResourceRecord>, StoreError>;

    /// What servers cache, by version, in one read: a copy is current while its version is.
    async fn cache_versions(&self, directory_source: &str) -> Result<CacheVersions, StoreError>;

    /// Stores decided requests in one transaction: denied, pending, or approved (then their grants
    /// and grant commands are written too). A request whose flows changed meanwhile gets
    /// [`StoreError::Conflict`] and is not stored; the others are. The outer error means nothing
    /// was stored.
    async fn create_requests(
        &self,
        batch: &[NewRequest],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<CreatedRequest, StoreError>>, StoreError>;

    /// Stores one decided request (see [`LifecycleStore::create_requests`]).
    async fn create_request(
        &self,
        new: &NewRequest,
        now: DateTime<Utc>,
    ) -> Result<CreatedRequest, StoreError> {
        self.create_requests(std::slice::from_ref(new), now)
            .await?
            .pop()
            .unwrap_or_else(|| Err(StoreError::corrupt("request batch", "no result")))
    }

    /// A request with its approvals and grants.
    async fn get_request(&self, id: &str) -> Result<Option<RequestView>, StoreError>;

    /// Requests with ids before `before` (newest first), filtered.
    async fn list_requests(
        &self,
        filter: &RequestFilter,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RequestRecord>, StoreError>;

    /// Changes a request: locks it, asks `decide` what to do given its current rows, applies that.
    async fn change_request(
        &self,
        id: &str,
        actor: &str,
        now: DateTime<Utc>,
        decide: ChangeFn<'_>,
    ) -> Result<RequestView, StoreError>;

    /// Grants with ids before `before` (newest first), filtered.
    async fn list_grants(
        &self,
        filter: &GrantFilter,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<GrantRecord>, StoreError>;

    /// The resources that `granting` or `active` grants are on, each once.
    async fn live_grant_resource_ids(&self) -> Result<Vec<String>, StoreError>;

    /// Commands not completed yet, revokes first, then in the order they were written.
    async fn open_commands(&self, limit: u32) -> Result<Vec<CommandRecord>, StoreError>;

    /// Records a connector's result for a command and moves the grant and its request on.
    /// A result for a stale generation or an already completed command changes nothing.
    async fn complete_command(
        &self,
        command_id: &str,
        result: &CommandResult,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The sealed credentials of the request's active grants, with their grants, and an audit
    /// event that `viewer` was shown them, in one transaction. The caller checks first that
    /// `viewer` is the requester.
    async fn access_credentials(
        &self,
        request_id: &str,
        viewer: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<(GrantRecord, SealedCredentials)>, StoreError>;

    /// Revokes grants whose expiry passed and times out pending requests past their TTL, at most
    /// `limit` of each. Safe to run on several servers at once: each row is handled once.
    async fn sweep_expired(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<SweepReport, StoreError>;

    /// When the next grant or pending request is due, if any.
    async fn next_expiry(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Reads every live grant (only automatic ones with `only_automatic`) under the reconciler's
    /// lock, asks `plan` what to change, and applies it.
    async fn reconcile(
        &self,
        actor: &str,
        now: DateTime<Utc>,
        only_automatic: bool,
        plan: PlanFn<'_>,
    ) -> Result<ReconcilePlan, StoreError>;
}

/// The audit action for a request entering `state` by `event`.
pub fn lifecycle_action(state: RequestState, event: latch_core::request::Event) -> &'static str {
    use latch_core::request::Event;
    match (state, event) {
        (_, Event::Extend) => "request.extended",
        (_, Event::PendingTimedOut) => "request.timed_out",
        (RequestState::Approved, _) => "request.approved",
        (RequestState::Granting, _) => "request.granting",
        (RequestState::Active, _) => "request.active",
        (RequestState::Revoking, Event::ExpiryReached) => "request.expiring",
        (RequestState::Revoking, _) => "request.revoking",
        (RequestState::Expired, _) => "request.expired",
        (RequestState::Revoked, _) => "request.revoked",
        (RequestState::Denied, _) => "request.denied",
        (RequestState::Cancelled, _) => "request.cancelled",
        (RequestState::Failed, _) => "request.failed",
        (RequestState::Pending, _) => "request.pending",
    }
}
