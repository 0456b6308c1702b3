//! The connector half of the store: registered connectors and their enrollment tokens, the
//! integrations they announce, command delivery (claims, retries) and inventory sync.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{CommandRecord, StoreError};

/// A connector as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorRecord {
    /// UUID; also in the connector's certificate as `spiffe://<trust-domain>/connector/<id>`.
    pub id: String,
    pub name: String,
    pub state: ConnectorState,
    pub version: Option<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub enrolled_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last heartbeat or message from it, on any server.
    pub last_seen: Option<DateTime<Utc>>,
    /// A server holding its stream keeps pushing this forward; it is connected while it is ahead
    /// of now.
    pub connected_until: Option<DateTime<Utc>>,
    pub cert_not_after: Option<DateTime<Utc>>,
    /// Integrations it announced on its last stream, by name.
    pub integrations: Vec<String>,
}

/// Where a connector is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorState {
    /// Created; the enrollment token was not used yet.
    Pending,
    /// Holds a certificate.
    Enrolled,
    /// Refused from now on.
    Revoked,
}

impl ConnectorState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorState::Pending => "pending",
            ConnectorState::Enrolled => "enrolled",
            ConnectorState::Revoked => "revoked",
        }
    }

    pub fn parse(text: &str) -> Result<ConnectorState, StoreError> {
        match text {
            "pending" => Ok(ConnectorState::Pending),
            "enrolled" => Ok(ConnectorState::Enrolled),
            "revoked" => Ok(ConnectorState::Revoked),
            other => Err(StoreError::corrupt("connector state", format!("{other:?}"))),
        }
    }
}

/// A connector to register, with the hash of its one-time enrollment token.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConnector {
    pub id: String,
    pub name: String,
    /// SHA-256 of the token's secret, hex.
    pub token_hash: String,
    pub token_expires_at: DateTime<Utc>,
}

/// An integration as a connector announces it in Hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub name: String,
    pub kind: String,
    pub capabilities: Vec<String>,
}

/// An integration as stored, with what is known about it.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationRecord {
    pub name: String,
    pub kind: String,
    /// Names of the connectors that announced it, ordered by name.
    pub connectors: Vec<String>,
    /// Whether one of them is connected now.
    pub connected: bool,
    /// Union of what its connectors can do, sorted.
    pub capabilities: Vec<String>,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub resource_count: i64,
    /// Emails of the identities its last completed sync reported (lowercase).
    pub identity_emails: Vec<String>,
    pub identity_count: i64,
    /// How many groups its last completed sync reported.
    pub group_count: i64,
    pub owner_users: Vec<String>,
    pub owner_groups: Vec<String>,
    /// Grants on it that are granting, active, revoking or `revoke_failed`.
    pub active_grant_count: i64,
}

/// A command claimed for one connector: deliver it, then report its result.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedCommand {
    pub command: CommandRecord,
    /// 1 for the first delivery.
    pub attempt: i64,
    /// When the access the command is about ends, for grant commands of timed requests.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The longest wait a connector's `retry_after` can impose: a throttled system must not hold a
/// revoke back for long.
pub const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Whether a failed attempt is worth retrying, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Not worth it (denied, invalid): a grant fails at once; a revoke is still retried.
    Never,
    /// After the policy's backoff.
    Backoff,
    /// After the backoff or this wait, whichever is later, the wait cut to [`MAX_RETRY_AFTER`]:
    /// the connector's own wait, a throttled call's Retry-After.
    AtLeast(std::time::Duration),
}

/// How a failed attempt is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: i64,
    /// Delay after the first failure; it doubles after each next one.
    pub base_delay: std::time::Duration,
    /// How often a revoke that used up its attempts is tried again.
    pub revoke_failed_every: std::time::Duration,
}

impl Default for RetryPolicy {
    /// 6 attempts with 15 s, 30 s, 1 min, 2 min and 4 min between them: about 8 minutes.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: std::time::Duration::from_secs(15),
            revoke_failed_every: std::time::Duration::from_secs(3600),
        }
    }
}

/// What happened to a command after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// It will be delivered again at this time.
    Retrying { at: DateTime<Utc> },
    /// A grant that used up its attempts: the grant failed.
    GrantFailed,
    /// A revoke that used up its attempts: the grant is `revoke_failed` and the revoke is tried
    /// again every `revoke_failed_every`.
    RevokeFailed { next_at: DateTime<Utc> },
    /// The command was already completed, or superseded; nothing changed.
    Ignored,
}

/// One resource from a sync page, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedResource {
    pub id: String,
    pub resource_type: String,
    pub name: String,
    pub parent: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub owners: Vec<String>,
    /// The connector's digest of the resource (protocol 2), stored as it came; without one the
    /// store computes its own (`rows::resource_digest`). Either way, a later sync that reports
    /// the same digest finds the row unchanged.
    pub digest: Option<String>,
}

impl SyncedResource {
    /// The digest stored with the resource: the connector's, or the store's own.
    pub fn digest(&self) -> String {
        self.digest
            .clone()
            .unwrap_or_else(|| super::rows::resource_digest(self))
    }
}

/// What one sync page changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageChanges {
    pub added: u64,
    pub changed: u64,
    pub unchanged: u64,
}

/// One identity from a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedIdentity {
    pub external_id: String,
    /// Lowercase; empty when the provider does not know it.
    pub email: String,
    pub display_name: String,
}

/// One group from a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedGroup {
    pub external_id: String,
    pub display_name: String,
}

/// One identity's direct membership in one group, both by external id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SyncedMembership {
    pub group_id: String,
    pub identity_id: String,
}

/// A group of an integration as its last completed sync reported it, with its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationGroup {
    pub external_id: String,
    pub display_name: String,
    /// Ordered by email, then external id; members without an email last.
    pub members: Vec<SyncedIdentity>,
}

/// The ids a full sync reported: a million for a large inventory, so hashed with foldhash,
/// several times cheaper than the standard SipHash. The ids come from an authenticated
/// connector, and the hasher is seeded per process.
pub type SeenIds = HashSet<String, foldhash::fast::RandomState>;

/// The end of a sync.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncEnd<'a> {
    pub integration: &'a str,
    pub sync_id: &'a str,
    /// A completed full sync deletes the integration's resources it did not see.
    pub full: bool,
    /// Why it failed; a failed sync deletes nothing.
    pub error: Option<&'a str>,
    /// Ids of the resources the sync reported (full syncs only).
    pub seen: Option<&'a SeenIds>,
    /// Every identity the sync reported (replaces the integration's identities when completed).
    pub identities: &'a [SyncedIdentity],
    /// Every group the sync reported (replaces the integration's groups when completed).
    pub groups: &'a [SyncedGroup],
    /// Every membership the sync reported; those whose group or identity the sync did not
    /// report are left out.
    pub memberships: &'a [SyncedMembership],
}

/// The connector half of the store.
#[async_trait]
pub trait ConnectorStore: Send + Sync + 'static {
    /// Registers a connector with its enrollment token's hash. A name in use is refused
    /// (`Refusal::AlreadyExists`).
    async fn create_connector(
        &self,
        new: &NewConnector,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<ConnectorRecord, StoreError>;

    /// Uses an enrollment token, once: the connector becomes `enrolled` with a certificate valid
    /// until `cert_not_after`. An unknown, used or expired token, or a revoked connector, is
    /// refused (`Refusal::Unauthenticated`) and changes nothing.
    async fn enroll_connector(
        &self,
        token_hash: &str,
        cert_not_after: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ConnectorRecord, StoreError>;

    /// Records a renewed certificate.
    async fn record_certificate(
        &self,
        connector_id: &str,
        cert_not_after: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    async fn connector(&self, id: &str) -> Result<Option<ConnectorRecord>, StoreError>;

    /// Every connector, ordered by name.
    async fn list_connectors(&self) -> Result<Vec<ConnectorRecord>, StoreError>;

    /// Revokes a connector by name and releases the commands it had claimed. Revoking a revoked
    /// connector changes nothing. `Refusal::NotFound` if there is none.
    async fn revoke_connector(
        &self,
        name: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<ConnectorRecord, StoreError>;

    /// A connector was heard from: moves `last_seen` and `connected_until` (`None`: it
    /// disconnected), and its version when given. Liveness, not a change: no audit event.
    async fn connector_seen(
        &self,
        connector_id: &str,
        version: Option<&str>,
        connected_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Records the integrations a connector serves (replacing what it announced before). An
    /// integration whose name is known with another kind is refused; the refused ones come back
    /// with the reason. New integrations are audited.
    async fn announce_integrations(
        &self,
        connector_id: &str,
        integrations: &[Announcement],
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// Every integration, ordered by name.
    async fn list_integrations(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<IntegrationRecord>, StoreError>;

    async fn integration(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IntegrationRecord>, StoreError>;

    /// Replaces an integration's owners (emails lowercased). `Refusal::NotFound` if there is none.
    async fn set_integration_owners(
        &self,
        name: &str,
        users: &[String],
        groups: &[String],
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<IntegrationRecord, StoreError>;

    /// Asks for a sync of an integration; one of its connectors picks it up with
    /// [`ConnectorStore::take_sync_request`]. `Refusal::NotFound` if there is no such integration.
    async fn request_sync(
        &self,
        name: &str,
        command_id: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Takes one asked-for sync of one of `integrations`, so that exactly one server delivers it:
    /// `(integration, command_id)`.
    async fn take_sync_request(
        &self,
        integrations: &[String],
    ) -> Result<Option<(String, String)>, StoreError>;

    /// Claims open commands of `integrations` for a connector, revokes first: commands nobody
    /// holds a live claim on and whose retry time has come. The claim lasts until
    /// `claim_until`; each claim counts as an attempt. Servers claim with `SKIP LOCKED`, so a
    /// command goes to one connector. Only integrations the connector announced count, and a
    /// connector that is not enrolled is refused (`Refusal::Unauthenticated`). A grant's commands
    /// go out in order: one waits while an older command of its grant is open, or is still held
    /// by a live claim (a grant command superseded by a revoke while a connector applies it).
    async fn claim_commands(
        &self,
        connector_id: &str,
        integrations: &[String],
        claim_until: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedCommand>, StoreError>;

    /// Keeps a live stream's claims on open commands alive.
    async fn extend_claims(
        &self,
        connector_id: &str,
        claim_until: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Gives back a connector's claims on open commands (its stream ended), so another connector
    /// of the same integration gets them at once.
    async fn release_claims(&self, connector_id: &str) -> Result<(), StoreError>;

    /// Records a failed attempt; see [`AttemptOutcome`]. `retry` says whether the failure is
    /// worth retrying, and when: a grant that failed for good fails at once; a revoke is never
    /// given up.
    async fn fail_attempt(
        &self,
        command_id: &str,
        message: &str,
        retry: Retry,
        policy: &RetryPolicy,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<AttemptOutcome, StoreError>;

    /// Applies one page of a sync: adds new resources, updates changed ones (and bumps the
    /// resources epoch if any), leaves unchanged ones alone, and stores the permissions each type
    /// offers. Ancestors come from the parents in the page and in the inventory; when a
    /// resource's ancestors change, its stored descendants' change with it. An id another
    /// integration or the static inventory keeps is refused (`Refusal::InvalidArgument`), as is a
    /// page naming an id twice or a cycle of parents; an integration nobody announced is
    /// `Refusal::NotFound`.
    async fn ingest_resources(
        &self,
        integration: &str,
        resources: &[SyncedResource],
        permissions: &[(String, Vec<String>)],
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<PageChanges, StoreError>;

    /// Of the `(id, digest)` pairs a sync of `integration` sent instead of resources, the ids
    /// whose full resource the connector must send: not stored, or stored with another digest.
    /// The others are unchanged. Reads only. An id another integration or the static inventory
    /// keeps is refused (`Refusal::InvalidArgument`), as in `ingest_resources`.
    async fn resources_to_refresh(
        &self,
        integration: &str,
        digests: &[(String, String)],
    ) -> Result<Vec<String>, StoreError>;

    /// Ends a sync: on success records the time and replaces the integration's identities,
    /// groups and memberships, and for a full sync deletes the integration's resources not in
    /// `seen`; on failure records the error. Returns how many resources were deleted.
    async fn finish_sync(
        &self,
        end: &SyncEnd<'_>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// A page of an integration's groups as its last completed sync reported them, ordered by
    /// external id, after `after`, at most `limit`, each with its members.
    /// `Refusal::NotFound` if there is no such integration.
    async fn list_integration_groups(
        &self,
        integration: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<IntegrationGroup>, StoreError>;

    /// The permissions a resource type of an integration offers, as last synced.
    async fn type_permissions(
        &self,
        integration: &str,
        resource_type: &str,
    ) -> Result<Vec<String>, StoreError>;
}
