//! Test helpers shared by the unit tests: a provider that records calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::provider::{
    Capability, GrantSpec, Granted, Provider, ProviderError, ResourceTypePermissions, SyncSink,
    SyncedGroup, SyncedIdentity, SyncedMembership, SyncedResource,
};
use crate::rate_limit::RateLimiter;
use crate::runtime::Integration;

#[derive(Default)]
pub(crate) struct FakeProvider {
    calls: Mutex<Vec<String>>,
    failures: Mutex<Vec<ProviderError>>,
    delay: Mutex<Duration>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    pub resources: AtomicUsize,
}

impl FakeProvider {
    pub(crate) fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }

    pub(crate) fn fail_next(&self, err: ProviderError) {
        self.failures.lock().expect("lock").push(err);
    }

    pub(crate) fn set_delay(&self, delay: Duration) {
        *self.delay.lock().expect("lock") = delay;
    }

    pub(crate) fn max_concurrent(&self) -> usize {
        self.max_running.load(Ordering::SeqCst)
    }

    async fn apply(&self, verb: &str, grant: &GrantSpec) -> Result<(), ProviderError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let delay = *self.delay.lock().expect("lock");
        tokio::time::sleep(delay).await;
        self.calls
            .lock()
            .expect("lock")
            .push(format!("{verb} {} {}", grant.grant_id, grant.permission));
        self.running.fetch_sub(1, Ordering::SeqCst);
        match self.failures.lock().expect("lock").pop() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Provider for FakeProvider {
    fn kind(&self) -> &str {
        "fake"
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
        let count = self.resources.load(Ordering::SeqCst);
        let permissions = vec![ResourceTypePermissions {
            resource_type: "fake.thing".into(),
            permissions: vec!["readonly".into()],
        }];
        let page = (0..count)
            .map(|i| SyncedResource {
                id: format!("fake://thing/{i}"),
                resource_type: "fake.thing".into(),
                name: format!("thing {i}"),
                ..SyncedResource::default()
            })
            .collect();
        sink.resources(page, permissions).await?;
        sink.identities(vec![SyncedIdentity {
            external_id: "u1".into(),
            email: Some("ada@example.com".into()),
            display_name: "Ada".into(),
        }])
        .await
    }

    async fn grant(&self, grant: &GrantSpec) -> Result<Granted, ProviderError> {
        self.apply("grant", grant).await.map(|()| Granted::access())
    }

    async fn revoke(&self, grant: &GrantSpec) -> Result<(), ProviderError> {
        self.apply("revoke", grant).await
    }

    async fn health_check(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}

pub(crate) fn integration(name: &str, provider: Arc<FakeProvider>) -> Arc<Integration> {
    Arc::new(Integration {
        name: name.to_string(),
        kind: "fake".to_string(),
        capabilities: provider.capabilities(),
        provider,
        limiter: RateLimiter::new(1000),
        sync_lock: Arc::new(tokio::sync::Mutex::new(())),
    })
}

/// A [`SyncSink`] that keeps everything a provider pushed, page by page, for tests to inspect.
/// Only the shipped providers' tests use it.
#[cfg_attr(not(any(feature = "database", feature = "aws")), allow(dead_code))]
#[derive(Debug, Default)]
pub(crate) struct CollectingSink {
    /// How many resources each page had.
    pub pages: Vec<usize>,
    /// Every resource, in the order pushed.
    pub resources: Vec<SyncedResource>,
    /// The permissions pushed with each page of resources, one entry per page.
    pub permission_pages: Vec<Vec<ResourceTypePermissions>>,
    /// Every identity, in the order pushed.
    pub identities: Vec<SyncedIdentity>,
    /// Every group, in the order pushed.
    pub groups: Vec<SyncedGroup>,
    /// Every membership, in the order pushed.
    pub memberships: Vec<SyncedMembership>,
}

#[cfg_attr(not(any(feature = "database", feature = "aws")), allow(dead_code))]
impl CollectingSink {
    /// The resource with `id`; panics, listing what was synced, when there is none.
    pub(crate) fn resource(&self, id: &str) -> &SyncedResource {
        self.resources
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("{id} was not synced; got {:#?}", self.resources))
    }

    /// The resource of `resource_type` named `name`; panics when there is none.
    pub(crate) fn named(&self, resource_type: &str, name: &str) -> &SyncedResource {
        self.resources
            .iter()
            .find(|r| r.resource_type == resource_type && r.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "{resource_type} {name} was not synced: {:#?}",
                    self.resources
                )
            })
    }

    /// Every permission announcement, whatever page it came with.
    pub(crate) fn permissions(&self) -> impl Iterator<Item = &ResourceTypePermissions> {
        self.permission_pages.iter().flatten()
    }

    /// The permission names announced for `resource_type`, sorted; panics unless announced once.
    pub(crate) fn permissions_of(&self, resource_type: &str) -> Vec<String> {
        let found: Vec<&ResourceTypePermissions> = self
            .permissions()
            .filter(|p| p.resource_type == resource_type)
            .collect();
        assert_eq!(found.len(), 1, "{resource_type} announced once: {found:?}");
        let mut names = found[0].permissions.clone();
        names.sort();
        names
    }
}

#[async_trait]
impl SyncSink for CollectingSink {
    async fn resources(
        &mut self,
        page: Vec<SyncedResource>,
        permissions: Vec<ResourceTypePermissions>,
    ) -> Result<(), ProviderError> {
        self.pages.push(page.len());
        self.resources.extend(page);
        self.permission_pages.push(permissions);
        Ok(())
    }

    async fn identities(&mut self, page: Vec<SyncedIdentity>) -> Result<(), ProviderError> {
        self.identities.extend(page);
        Ok(())
    }

    async fn groups(&mut self, page: Vec<SyncedGroup>) -> Result<(), ProviderError> {
        self.groups.extend(page);
        Ok(())
    }

    async fn memberships(&mut self, page: Vec<SyncedMembership>) -> Result<(), ProviderError> {
        self.memberships.extend(page);
        Ok(())
    }
}
