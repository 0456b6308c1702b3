//! What decisions are made from: the engine over the current flows and the resolved directory, each
//! cached until the store says it changed (the flows' epoch, the directory's digest), so a request
//! does not rebuild them, and a change made through another server is seen on the next request.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use latch_core::decide::{ApproverDirectory, Engine, Requester, VersionedFlow};
use latch_core::directory::{Directory, DirectorySpec};

use crate::store::{ResourceRecord, Store, StoreError};

/// The directory source decisions read. Identity-provider sources join it in a later release.
pub const STATIC_SOURCE: &str = "static";

/// The engine and the directory one decision uses.
#[derive(Clone)]
pub struct Context {
    pub engine: Arc<Engine>,
    pub directory: Arc<Directory>,
    /// The inventory version the context was read at.
    pub resources_version: i64,
    /// Every version the context was read at.
    pub versions: crate::store::CacheVersions,
}

impl Context {
    /// The person as the engine sees them at `now`: groups (nested ones included), manager,
    /// current shifts, time zone. Someone the directory does not know has no groups and no shifts.
    pub fn requester(&self, email: &str, now: Timestamp) -> Requester {
        let dir = &self.directory;
        Requester {
            email: email.to_owned(),
            groups: dir.groups_of(email),
            manager: dir.manager_of(email).map(str::to_owned),
            on_call: dir.schedules_on_shift(email, now),
            time_zone: dir.time_zone_of(email).map(str::to_owned),
        }
    }

    /// Everyone in the directory, as requesters at `now` (for automatic flows).
    pub fn people(&self, now: Timestamp) -> Vec<Requester> {
        self.directory
            .known_users()
            .iter()
            .map(|email| self.requester(email, now))
            .collect()
    }
}

/// Caches the [`Context`] pieces and the inventory by the versions the store reports, read once
/// per use.
pub struct ContextCache {
    store: Arc<dyn Store>,
    engine: Mutex<Option<(i64, Arc<Engine>)>>,
    directory: Mutex<Option<(String, Arc<Directory>)>>,
    /// Resources looked up so far, valid for one inventory version.
    resources: Mutex<(i64, HashMap<String, ResourceRecord>)>,
}

impl ContextCache {
    pub fn new(store: Arc<dyn Store>) -> Self {
        ContextCache {
            store,
            engine: Mutex::new(None),
            directory: Mutex::new(None),
            resources: Mutex::new((-1, HashMap::new())),
        }
    }

    /// The current context, rebuilding what changed.
    pub async fn current(&self) -> Result<Context, StoreError> {
        let versions = self.store.cache_versions(STATIC_SOURCE).await?;
        Ok(Context {
            engine: self.engine(versions.flows).await?,
            directory: self.directory(versions.directory.clone()).await?,
            resources_version: versions.resources,
            versions,
        })
    }

    /// The resources with these ids that exist, as of `context`'s inventory version.
    pub async fn resources(
        &self,
        context: &Context,
        ids: &[String],
    ) -> Result<Vec<ResourceRecord>, StoreError> {
        let version = context.resources_version;
        let missing: Vec<String> = {
            let mut cache = lock(&self.resources);
            if cache.0 != version {
                *cache = (version, HashMap::new());
            }
            ids.iter()
                .filter(|id| !cache.1.contains_key(*id))
                .cloned()
                .collect()
        };
        if !missing.is_empty() {
            let found = self.store.resources_by_id(&missing).await?;
            let mut cache = lock(&self.resources);
            if cache.0 == version {
                for resource in found {
                    cache.1.insert(resource.id.clone(), resource);
                }
            }
        }
        let cached: Option<Vec<ResourceRecord>> = {
            let cache = lock(&self.resources);
            (cache.0 == version).then(|| {
                ids.iter()
                    .filter_map(|id| cache.1.get(id).cloned())
                    .collect()
            })
        };
        match cached {
            Some(found) => Ok(found),
            // The inventory moved on meanwhile: read it from the store.
            None => self.store.resources_by_id(ids).await,
        }
    }

    async fn engine(&self, version: i64) -> Result<Arc<Engine>, StoreError> {
        if let Some((cached, engine)) = &*lock(&self.engine)
            && *cached == version
        {
            return Ok(engine.clone());
        }
        let mut flows = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.list_flows(after.as_deref(), 1000).await?;
            let done = page.len() < 1000;
            after = page.last().map(|flow| flow.spec.name.clone());
            flows.extend(page.into_iter().map(|flow| VersionedFlow {
                spec: flow.spec,
                version: flow.version,
            }));
            if done {
                break;
            }
        }
        let engine = Arc::new(Engine::new(flows));
        *lock(&self.engine) = Some((version, engine.clone()));
        Ok(engine)
    }

    async fn directory(&self, digest: Option<String>) -> Result<Arc<Directory>, StoreError> {
        let Some(digest) = digest else {
            return Ok(Arc::new(Directory::default()));
        };
        if let Some((cached, directory)) = &*lock(&self.directory)
            && *cached == digest
        {
            return Ok(directory.clone());
        }
        let Some(stored) = self.store.directory(STATIC_SOURCE).await? else {
            return Ok(Arc::new(Directory::default()));
        };
        let spec: DirectorySpec =
            serde_json::from_str(&stored.json).map_err(|err| StoreError::Corrupt {
                what: "directory".into(),
                reason: err.to_string(),
            })?;
        let directory = Arc::new(Directory::new(&spec));
        *lock(&self.directory) = Some((stored.digest, directory.clone()));
        Ok(directory)
    }
}

/// A poisoned cache lock only means another request panicked mid-update of a cache slot; the slot
/// holds either the old or the new value, both usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Approval-time facts: the directory for people, the inventory for resource owners.
pub struct Approvers<'a> {
    pub directory: &'a Directory,
    /// Resource id → owners.
    pub resource_owners: BTreeMap<String, Vec<String>>,
    /// Integration name → owners: its owner users and the members of its owner groups.
    pub integration_owners: BTreeMap<String, Vec<String>>,
}

impl<'a> Approvers<'a> {
    pub fn new(directory: &'a Directory, resources: &[crate::store::ResourceRecord]) -> Self {
        Approvers {
            directory,
            resource_owners: resources
                .iter()
                .map(|r| (r.id.clone(), r.owners.clone()))
                .collect(),
            integration_owners: BTreeMap::new(),
        }
    }

    /// Adds the owners of these integrations (as `latch integrations set-owners` set them).
    pub fn with_integrations(mut self, integrations: &[crate::store::IntegrationRecord]) -> Self {
        for integration in integrations {
            let mut owners: std::collections::BTreeSet<String> =
                integration.owner_users.iter().cloned().collect();
            for group in &integration.owner_groups {
                owners.extend(self.directory.members_of(group));
            }
            self.integration_owners
                .insert(integration.name.clone(), owners.into_iter().collect());
        }
        self
    }
}

impl ApproverDirectory for Approvers<'_> {
    fn groups_of(&self, user: &str) -> std::collections::BTreeSet<String> {
        self.directory.groups_of(user)
    }

    fn on_shift(&self, user: &str, schedule: &str, at: Timestamp) -> bool {
        self.directory
            .schedules_on_shift(user, at)
            .contains(schedule)
    }

    fn integration_owners(&self, integration: &str) -> Vec<String> {
        self.integration_owners
            .get(integration)
            .cloned()
            .unwrap_or_default()
    }

    fn resource_owners(&self, resource_id: &str) -> Vec<String> {
        self.resource_owners
            .get(resource_id)
            .cloned()
            .unwrap_or_default()
    }
}
