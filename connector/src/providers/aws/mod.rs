//! The `aws` provider: an AWS organization (or a single account) through Organizations, IAM
//! Identity Center, the Identity Store, IAM and the Resource Groups Tagging API.
//!
//! **Credentials.** The standard chain (environment, profile, web identity, ECS and instance
//! roles), optionally exchanged for `assume_role_arn` with `external_id`; see [`clients`]. The
//! SDK config is built on first use, because building it is asynchronous and the factory is not;
//! nothing touches the network when the provider is made.
//!
//! **Inventory** ([`inventory`]): `aws.organization` → `aws.ou` → `aws.account` with tags,
//! tagged resources of every type the tagging API returns (`aws.s3.bucket`, `aws.ec2.instance`,
//! ...) below their account, IAM roles, and the Identity Store's users as identities with its
//! groups and their memberships ([`identity_store`]). Permission set
//! names are the permissions of `aws.account`; policy template names those of the other types.
//!
//! **Grants.** Two mechanisms, chosen by resource type:
//! - `aws.account`: an Identity Center account assignment of the permission set to the user's
//!   Identity Store user, found by email ([`assignments`], behind the [`identity_center`] seam).
//!   Identity Center has no expiry of its own; the control plane's revoke removes it.
//! - anything else: an inline policy `latch-<grant id>` on the user's IAM user (named by
//!   `iam_user_template`), allowing the template's actions on the resource's ARN until the
//!   grant's expiry through an `aws:CurrentTime` condition, so AWS ends the access even if Latch
//!   is down ([`policies`]). Revoking a grant that allowed assuming an IAM role also denies the
//!   role's sessions issued before the revoke (`aws:TokenIssueTime`), because those sessions
//!   would otherwise outlive it.
//!
//! **Limits** ([`pacing`]). Identity Center calls are paced at 20 per second with at most 10
//! assignment operations in flight; the inventory's Organizations calls at 5 per second, its
//! tagging API calls at 15 and its IAM reads at 10. All of them are retried by the same code,
//! with backoff on throttling (and, for Identity Center, on conflicts); each sync logs the
//! calls made per service during it and how many were throttled.
//!
//! **Testing.** `tests.rs` runs against the moto emulator (`scripts/moto.sh`); each test works
//! in its own random account by assuming a role there, so tests run in parallel. One test turns
//! on moto's IAM enforcement and checks with the user's own keys that access is denied before
//! the grant, allowed during it and denied after; it holds a lock the others share, because
//! enforcement is global. What moto does not model (asynchronous status, conflicts, throttling)
//! is unit-tested in [`assignments`] and [`pacing`]; throttling in the middle of a sync is
//! injected into moto's answers by an SDK interceptor. The benchmark is an ignored
//! test (`tests::bench`).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sts::config::{Credentials, SharedInterceptor};
use tokio::sync::OnceCell;

use crate::config::IntegrationConfig;
use crate::provider::{
    Capability, GrantSpec, Granted, Provider, ProviderError, ProviderRegistry, SyncSink,
};

pub(crate) mod assignments;
pub(crate) mod clients;
pub(crate) mod errors;
pub(crate) mod identity_center;
pub(crate) mod identity_store;
pub(crate) mod inventory;
pub(crate) mod pacing;
pub(crate) mod policies;
pub(crate) mod settings;
#[cfg(test)]
mod tests;

use assignments::{IdentityCenter, Timing};
use clients::Clients;
use identity_center::SdkIdentityCenter;
use pacing::{Counts, Pacing};
use settings::{ACCOUNT_TYPE, AwsSettings};

/// Registers the `aws` kind.
pub(crate) fn register(registry: &mut ProviderRegistry) {
    registry.register(
        "aws",
        |integration: &IntegrationConfig| -> Result<Arc<dyn Provider>, String> {
            Ok(Arc::new(AwsProvider::new(AwsSettings::parse(integration)?)))
        },
    );
}

/// What the provider builds on first use.
struct Connected {
    clients: Clients,
    identity_center: IdentityCenter,
}

impl Connected {
    /// The calls made so far, per paced service.
    fn counts(&self) -> Vec<(&'static str, Counts)> {
        let mut counts: Vec<_> = self
            .clients
            .pacing
            .pacers()
            .iter()
            .map(|pacer| (pacer.service(), pacer.counts()))
            .collect();
        counts.push(self.identity_center.counts());
        counts
    }
}

/// The `aws` provider for one integration.
pub(crate) struct AwsProvider {
    settings: AwsSettings,
    /// Replaces the standard credential chain; tests only.
    base_credentials: Option<Credentials>,
    /// On every client; tests only (they count requests and inject throttling).
    interceptors: Vec<SharedInterceptor>,
    /// No pacing at all; the benchmark's baseline only.
    unpaced: bool,
    connected: OnceCell<Connected>,
}

impl std::fmt::Debug for AwsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsProvider")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl AwsProvider {
    /// A provider for checked settings, with credentials from the standard chain.
    pub(crate) fn new(settings: AwsSettings) -> Self {
        Self {
            settings,
            base_credentials: None,
            interceptors: Vec::new(),
            unpaced: false,
            connected: OnceCell::new(),
        }
    }

    /// A provider whose base credentials are `credentials` instead of the standard chain.
    #[cfg(test)]
    pub(crate) fn with_credentials(settings: AwsSettings, credentials: Credentials) -> Self {
        Self {
            base_credentials: Some(credentials),
            ..Self::new(settings)
        }
    }

    /// The same provider with `interceptor` on every client.
    #[cfg(test)]
    pub(crate) fn intercepted(mut self, interceptor: SharedInterceptor) -> Self {
        self.interceptors.push(interceptor);
        self
    }

    /// The same provider without pacing, to measure what the pacing costs.
    #[cfg(test)]
    pub(crate) fn unpaced(mut self) -> Self {
        self.unpaced = true;
        self
    }

    async fn connected(&self) -> &Connected {
        self.connected
            .get_or_init(|| async {
                let config =
                    clients::load_config(&self.settings, self.base_credentials.clone()).await;
                let mut timing = Timing::default();
                let pacing = if self.unpaced {
                    timing.quota = pacing::Quota::UNLIMITED;
                    Pacing::unlimited()
                } else {
                    Pacing::published()
                };
                let clients = Clients::build(&config, pacing, &self.interceptors);
                let api = SdkIdentityCenter {
                    sso_admin: clients.sso_admin.clone(),
                    identity_store: clients.identity_store.clone(),
                };
                Connected {
                    identity_center: IdentityCenter::new(Arc::new(api), timing),
                    clients,
                }
            })
            .await
    }
}

#[async_trait]
impl Provider for AwsProvider {
    fn kind(&self) -> &str {
        "aws"
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
        let connected = self.connected().await;
        let before = connected.counts();
        let synced = inventory::sync(
            &connected.clients,
            &connected.identity_center,
            &self.settings,
            sink,
        )
        .await;
        for ((service, after), (_, before)) in connected.counts().into_iter().zip(before) {
            let made = after.since(before);
            tracing::info!(
                service,
                calls = made.attempts,
                throttled = made.throttled,
                "aws calls during the sync"
            );
        }
        synced
    }

    async fn grant(&self, grant: &GrantSpec) -> Result<Granted, ProviderError> {
        let connected = self.connected().await;
        if grant.resource_type == ACCOUNT_TYPE {
            connected.identity_center.grant(grant).await?;
        } else {
            policies::put(&connected.clients.iam, &self.settings, grant).await?;
        }
        Ok(Granted::access())
    }

    async fn revoke(&self, grant: &GrantSpec) -> Result<(), ProviderError> {
        let connected = self.connected().await;
        if grant.resource_type == ACCOUNT_TYPE {
            connected.identity_center.revoke(grant).await
        } else {
            policies::delete(&connected.clients.iam, &self.settings, grant).await
        }
    }

    async fn health_check(&self) -> Result<(), ProviderError> {
        let connected = self.connected().await;
        connected
            .clients
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|err| {
                errors::classify(err, "checking the credentials (sts:GetCallerIdentity)")
            })?;
        Ok(())
    }
}
