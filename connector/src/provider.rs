//! The provider interface: what a cloud or database plugin implements so the runtime can sync its
//! inventory and apply grants in it, and the registry that builds providers from the config.
//!
//! Providers hold their own credentials. They read them from the usual chains (environment,
//! workload identity) or from keys ending in `_file` / `_env` in their integration's settings;
//! secrets are never written inline in the config file.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::config::IntegrationConfig;

/// What a provider can do for an integration; announced to the control plane in `Hello`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Reports resources and their permissions.
    Sync,
    /// Applies grants.
    Grant,
    /// Removes grants.
    Revoke,
    /// Reports identities (user accounts), and the groups they are in, during a sync.
    Identities,
}

impl Capability {
    /// The word used on the wire: `sync`, `grant`, `revoke`, `identities`.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Sync => "sync",
            Capability::Grant => "grant",
            Capability::Revoke => "revoke",
            Capability::Identities => "identities",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One grant (identity, resource, permission) to make sure of, or to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantSpec {
    /// The control plane's grant id; stable across every command about this grant.
    pub grant_id: String,
    /// Email of the person the access is for.
    pub identity: String,
    /// The resource's id, as synced.
    pub resource_id: String,
    /// The resource's type, as synced (`aws.account`, `postgres.database`, ...).
    pub resource_type: String,
    /// The permission, as synced for that resource type.
    pub permission: String,
    /// When the access ends; `None` for automatic grants. Providers that can, make the cloud
    /// enforce it too (`VALID UNTIL`, IAM conditions), so access ends even if Latch is down.
    pub expires_at: Option<DateTime<Utc>>,
    /// How long the access lasts; `None` for automatic grants.
    pub duration: Option<Duration>,
}

/// What a successful grant hands back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Granted {
    /// Login credentials made for this grant alone (a temporary database user, say). They travel
    /// to the control plane over the mutually authenticated stream, are stored there encrypted,
    /// are shown to the requester only and are wiped at revoke.
    pub credentials: Option<IssuedCredentials>,
}

impl Granted {
    /// A grant that made no credentials: access was given to an identity that already exists.
    pub fn access() -> Self {
        Self::default()
    }

    /// A grant that made `credentials` for the requester.
    pub fn with_credentials(credentials: IssuedCredentials) -> Self {
        Self {
            credentials: Some(credentials),
        }
    }
}

/// A login made for one grant. `Debug` does not print the password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IssuedCredentials {
    /// The login name.
    pub username: String,
    /// The password; random, made for this grant.
    pub password: String,
    /// Where to connect: host name or address.
    pub host: String,
    /// Where to connect: TCP port.
    pub port: u16,
    /// The database (or other scope) the login is for; empty when there is none.
    pub database: String,
}

impl fmt::Debug for IssuedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .finish()
    }
}

/// One resource as a provider reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncedResource {
    /// Stable id, unique across integrations (an ARN, `postgres://host/db`, ...).
    pub id: String,
    /// Resource type, for example `aws.account`.
    pub resource_type: String,
    /// Display name.
    pub name: String,
    /// Id of the parent resource; `None` for a root.
    pub parent: Option<String>,
    /// Tags (labels).
    pub tags: BTreeMap<String, String>,
    /// Owners, by email.
    pub owners: Vec<String>,
}

/// What can be granted on one resource type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceTypePermissions {
    /// Resource type.
    pub resource_type: String,
    /// Permission names.
    pub permissions: Vec<String>,
}

/// A user account in an integration, such as an IAM user or a database role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncedIdentity {
    /// The provider's id for it.
    pub external_id: String,
    /// Email, when the provider knows it; identities are linked to directory users by email.
    pub email: Option<String>,
    /// Display name.
    pub display_name: String,
}

/// A group of identities in an integration, such as an Identity Store group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncedGroup {
    /// The provider's id for it.
    pub external_id: String,
    /// Display name.
    pub display_name: String,
}

/// An identity's direct membership in a group, both named by the provider's ids. The control
/// plane keeps it only when the same sync reported the group and the identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncedMembership {
    /// The group's [`SyncedGroup::external_id`].
    pub group_external_id: String,
    /// The member's [`SyncedIdentity::external_id`].
    pub identity_external_id: String,
}

/// Why a provider call failed. The kind decides whether the control plane retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The cloud asked us to slow down.
    #[error("throttled: {message}")]
    Throttled {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The connector's credentials may not do this.
    #[error("denied: {message}")]
    Denied { message: String },
    /// The resource, identity or permission does not exist.
    #[error("not found: {message}")]
    NotFound { message: String },
    /// The request cannot succeed as given.
    #[error("invalid: {message}")]
    Invalid { message: String },
    /// A failure that may go away by itself (network, 5xx, timeout).
    #[error("transient: {message}")]
    Transient { message: String },
}

impl ProviderError {
    /// Whether the same call may succeed later: throttled and transient failures.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::Throttled { .. } | ProviderError::Transient { .. }
        )
    }

    /// A [`ProviderError::Throttled`].
    pub fn throttled(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        ProviderError::Throttled {
            message: message.into(),
            retry_after,
        }
    }

    /// A [`ProviderError::Denied`].
    pub fn denied(message: impl Into<String>) -> Self {
        ProviderError::Denied {
            message: message.into(),
        }
    }

    /// A [`ProviderError::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        ProviderError::NotFound {
            message: message.into(),
        }
    }

    /// A [`ProviderError::Invalid`].
    pub fn invalid(message: impl Into<String>) -> Self {
        ProviderError::Invalid {
            message: message.into(),
        }
    }

    /// A [`ProviderError::Transient`].
    pub fn transient(message: impl Into<String>) -> Self {
        ProviderError::Transient {
            message: message.into(),
        }
    }
}

/// Where a provider pushes what it finds during a sync. Each call may wait: the runtime sends the
/// page to the control plane before it returns, so a provider that pages through a million
/// resources never holds more than a page in memory.
#[async_trait]
pub trait SyncSink: Send {
    /// A page of resources, and the permissions of resource types (usually with the first page).
    /// Pages larger than the protocol's page size are split by the runtime.
    async fn resources(
        &mut self,
        page: Vec<SyncedResource>,
        permissions: Vec<ResourceTypePermissions>,
    ) -> Result<(), ProviderError>;

    /// A page of identities.
    async fn identities(&mut self, page: Vec<SyncedIdentity>) -> Result<(), ProviderError>;

    /// A page of groups. Like identities, they replace the integration's groups when the sync
    /// completes; a provider that reports none leaves the integration without groups.
    async fn groups(&mut self, page: Vec<SyncedGroup>) -> Result<(), ProviderError>;

    /// A page of group memberships; they may come before or after their groups and identities.
    async fn memberships(&mut self, page: Vec<SyncedMembership>) -> Result<(), ProviderError>;
}

/// A plugin for one kind of integration (`aws`, `postgres`, ...).
///
/// Grant and revoke must be idempotent: grant makes sure the access is there, revoke makes sure
/// it is gone, and both succeed when that is already so. The runtime calls them under a rate limit
/// per integration, one command at a time per grant; providers still respect the cloud's published
/// limits themselves for the many calls a sync makes.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The provider kind, as in the config's `kind` key.
    fn kind(&self) -> &str;

    /// What this provider can do.
    fn capabilities(&self) -> Vec<Capability>;

    /// A full sync: push every resource (and identity, group and membership, with
    /// [`Capability::Identities`]) into `sink`. Return an error if the sync is incomplete: the control plane deletes nothing then.
    async fn sync(&self, sink: &mut dyn SyncSink) -> Result<(), ProviderError>;

    /// Makes sure the grant is in place. A provider that makes a login per grant returns its
    /// credentials; called again for the same grant (a redelivery after a crash), it makes sure
    /// the login exists and returns fresh credentials, because the earlier ones may be lost.
    async fn grant(&self, grant: &GrantSpec) -> Result<Granted, ProviderError>;

    /// Makes sure the grant is gone.
    async fn revoke(&self, grant: &GrantSpec) -> Result<(), ProviderError>;

    /// Checks that the provider can reach its system with its credentials.
    async fn health_check(&self) -> Result<(), ProviderError>;
}

/// Builds a provider for one configured integration, or says why it cannot.
pub type ProviderFactory =
    Box<dyn Fn(&IntegrationConfig) -> Result<Arc<dyn Provider>, String> + Send + Sync>;

/// The provider kinds this build knows, by `kind`.
#[derive(Default)]
pub struct ProviderRegistry {
    factories: HashMap<String, ProviderFactory>,
}

impl fmt::Debug for ProviderRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderRegistry")
            .field("kinds", &self.kinds())
            .finish()
    }
}

impl ProviderRegistry {
    /// A registry with no kinds.
    pub fn new() -> Self {
        Self::default()
    }

    /// The kinds the shipped binary serves: each provider sits behind a cargo feature, so its
    /// client libraries compile only where needed.
    pub fn shipped() -> Self {
        let mut registry = Self::new();
        crate::providers::register_shipped(&mut registry);
        registry
    }

    /// Adds (or replaces) the factory for `kind`.
    pub fn register<F>(&mut self, kind: impl Into<String>, factory: F) -> &mut Self
    where
        F: Fn(&IntegrationConfig) -> Result<Arc<dyn Provider>, String> + Send + Sync + 'static,
    {
        self.factories.insert(kind.into(), Box::new(factory));
        self
    }

    /// Whether `kind` is known.
    pub fn contains(&self, kind: &str) -> bool {
        self.factories.contains_key(kind)
    }

    /// The known kinds, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        let mut kinds: Vec<&str> = self.factories.keys().map(String::as_str).collect();
        kinds.sort_unstable();
        kinds
    }

    /// Builds the provider for `integration`.
    pub(crate) fn build(
        &self,
        integration: &IntegrationConfig,
    ) -> Result<Arc<dyn Provider>, String> {
        match self.factories.get(&integration.kind) {
            Some(factory) => factory(integration),
            None => Err(format!("unknown provider kind {:?}", integration.kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_throttled_and_transient_errors_are_retried() {
        assert!(ProviderError::throttled("slow down", Some(Duration::from_secs(1))).is_retryable());
        assert!(ProviderError::transient("connection reset").is_retryable());
        assert!(!ProviderError::denied("no").is_retryable());
        assert!(!ProviderError::not_found("gone").is_retryable());
        assert!(!ProviderError::invalid("bad").is_retryable());
        assert_eq!(
            ProviderError::denied("iam:PassRole").to_string(),
            "denied: iam:PassRole"
        );
    }

    #[test]
    fn debug_output_hides_the_password() {
        let credentials = IssuedCredentials {
            username: "latch_tmp_1".into(),
            password: "s3cret-value".into(),
            host: "127.0.0.1".into(),
            port: 5432,
            database: "app".into(),
        };
        let printed = format!("{:?}", Granted::with_credentials(credentials));
        assert!(printed.contains("latch_tmp_1"), "{printed}");
        assert!(!printed.contains("s3cret-value"), "{printed}");
    }
}
