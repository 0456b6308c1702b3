//! Taking in a connector's syncs: pages of resources go to the store as they arrive (so memory
//! does not grow with the inventory beyond the set of ids seen), identities, groups and
//! memberships are collected, and the end of a completed sync replaces them (and, for a full
//! sync, deletes the resources that were not seen).
//!
//! From protocol 2 a connector may send pages of digests instead of resources: each is answered
//! with `ResourcesWanted`, naming the resources not stored with that digest, and the connector
//! sends those in full. A resync where little changed then costs the store one probe per
//! resource and the stream one id and digest, not a whole resource decoded, converted and hashed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::Utc;
use latch_proto::v1::open_stream_response::Message as Down;
use latch_proto::v1::{IdentityPage, InventoryPage, ResourcesWanted, SyncDone};
use tokio::task::JoinHandle;

use super::hub::Hub;
use super::session::{Outbound, response};
use crate::lifecycle::SyncRunning;
use crate::store::{
    PageChanges, SeenIds, StoreError, SyncEnd, SyncedGroup, SyncedIdentity, SyncedMembership,
    SyncedResource,
};

/// One sync in progress.
#[derive(Default)]
struct Progress {
    integration: String,
    /// Said by the first inventory page (identity pages do not say); until then, and for a
    /// sync without resources, `SyncDone` decides.
    full: Option<bool>,
    seen: SeenIds,
    identities: Vec<SyncedIdentity>,
    groups: Vec<SyncedGroup>,
    memberships: Vec<SyncedMembership>,
    /// Whether a page changed the inventory (the reconciler must look again).
    changed: bool,
    /// Resources asked for in full (`ResourcesWanted`) and not yet received.
    asked: u64,
    /// The first refused page: the sync fails with it and deletes nothing.
    error: Option<String>,
    /// Holds back the periodic reconcile until the sync ends (it reconciles then).
    _running: Option<SyncRunning>,
}

/// The syncs of one stream.
pub(super) struct SyncIntake {
    hub: Arc<Hub>,
    integrations: Vec<String>,
    actor: String,
    syncs: HashMap<String, Progress>,
    /// Where `ResourcesWanted` answers go.
    outbound: Outbound,
    /// The batch of pages the store is writing. The next batch is read off the stream and
    /// converted meanwhile, so the two halves of the work run side by side; batches are still
    /// written one after another, in the order they came.
    writing: Option<JoinHandle<Written>>,
}

/// What the store made of one batch of pages.
struct Written {
    sync_id: String,
    outcome: Result<PageChanges, StoreError>,
    /// Resources the connector was asked to send in full.
    asked: u64,
}

/// Longest `SyncedResource.digest` taken: it is stored with every resource.
const MAX_DIGEST_LEN: usize = 128;

/// Most syncs one stream may have open at once; a connector that opens more is misbehaving.
const MAX_OPEN_SYNCS: usize = 16;

impl SyncIntake {
    pub(super) fn new(
        hub: Arc<Hub>,
        integrations: Vec<String>,
        actor: String,
        outbound: Outbound,
    ) -> SyncIntake {
        SyncIntake {
            hub,
            integrations,
            actor,
            syncs: HashMap::new(),
            outbound,
            writing: None,
        }
    }

    /// The sync's progress, started by its first page; `full` is what an inventory page says.
    fn progress(
        &mut self,
        sync_id: &str,
        integration: &str,
        full: Option<bool>,
    ) -> Option<&mut Progress> {
        if !self.integrations.iter().any(|name| name == integration) {
            tracing::warn!(%integration, "a sync page for an integration this stream does not serve; ignored");
            return None;
        }
        if !self.syncs.contains_key(sync_id) && self.syncs.len() >= MAX_OPEN_SYNCS {
            tracing::warn!(%sync_id, "too many open syncs on one stream; page ignored");
            return None;
        }
        let lifecycle = &self.hub.lifecycle;
        let progress = self
            .syncs
            .entry(sync_id.to_string())
            .or_insert_with(|| Progress {
                integration: integration.to_string(),
                _running: Some(lifecycle.sync_running()),
                ..Progress::default()
            });
        if progress.integration != integration {
            return None;
        }
        if progress.full.is_none() {
            progress.full = full;
        }
        Some(progress)
    }

    /// Takes pages of one sync that arrived together and has them stored in one write: a resync
    /// of a million resources is then about a hundred commits instead of a thousand. The write
    /// goes on after this returns (see `writing`). A page with an invalid resource fails the sync;
    /// the pages before it are stored, nothing after it is. Digest pages are probed in the same
    /// turn and always answered, also when the sync has already failed, so that the connector
    /// never waits for an answer that does not come.
    pub(super) async fn pages(&mut self, pages: Vec<InventoryPage>) {
        let Some(first) = pages.first() else {
            return;
        };
        let (sync_id, integration, full) =
            (first.sync_id.clone(), first.integration.clone(), first.full);
        let mut batch = Batch::read(&sync_id, &integration, pages);
        // The batch before must be settled first: if it failed, this one is not written.
        self.settle().await;
        let store = self.hub.lifecycle.store().clone();
        let actor = self.actor.clone();
        let outbound = self.outbound.clone();
        // A sync not taken, or already failed, stores nothing more.
        let Some(progress) = self
            .progress(&sync_id, &integration, Some(full))
            .filter(|progress| progress.error.is_none())
        else {
            answer(&outbound, &sync_id, batch.digest_pages, Vec::new()).await;
            return;
        };
        progress.asked = progress.asked.saturating_sub(batch.resources.len() as u64);
        if progress.full == Some(true) {
            // Copies, not the batch's own strings: kept for the whole sync, they are better
            // allocated together than left scattered among the freed rest of each resource.
            let ids = batch.resources.iter().map(|r| &r.id);
            progress
                .seen
                .extend(ids.chain(batch.digests.iter().map(|(id, _)| id)).cloned());
        }
        if let Some(problem) = batch.problem.take() {
            progress.error = Some(problem);
        }
        if batch.resources.is_empty() && batch.permissions.is_empty() && batch.digests.is_empty() {
            answer(&outbound, &sync_id, batch.digest_pages, Vec::new()).await;
            return;
        }
        self.writing = Some(tokio::spawn(async move {
            let mut changes = PageChanges::default();
            let mut asked = 0;
            let mut outcome = Ok(());
            if !batch.digest_pages.is_empty() {
                let wanted = match store
                    .resources_to_refresh(&integration, &batch.digests)
                    .await
                {
                    Ok(wanted) => wanted,
                    Err(err) => {
                        outcome = Err(err);
                        Vec::new()
                    }
                };
                asked = wanted.len() as u64;
                changes.unchanged = batch.digests.len() as u64 - asked;
                answer(&outbound, &sync_id, batch.digest_pages, wanted).await;
            }
            if outcome.is_ok() && !(batch.resources.is_empty() && batch.permissions.is_empty()) {
                outcome = store
                    .ingest_resources(
                        &integration,
                        &batch.resources,
                        &batch.permissions,
                        &actor,
                        Utc::now(),
                    )
                    .await
                    .map(|stored| {
                        changes.added += stored.added;
                        changes.changed += stored.changed;
                        changes.unchanged += stored.unchanged;
                    });
            }
            Written {
                sync_id,
                outcome: outcome.map(|()| changes),
                asked,
            }
        }));
    }

    /// Waits for the batch being written and records what came of it in its sync.
    async fn settle(&mut self) {
        let Some(writing) = self.writing.take() else {
            return;
        };
        let (sync_id, outcome, asked) = match writing.await {
            Ok(Written {
                sync_id,
                outcome,
                asked,
            }) => (
                sync_id,
                outcome.map_err(|err| match err {
                    StoreError::Refused(refusal) => refusal.to_string(),
                    err => format!("storing a page failed: {err}"),
                }),
                asked,
            ),
            Err(err) => return tracing::error!(error = %err, "writing a sync page panicked"),
        };
        let Some(progress) = self.syncs.get_mut(&sync_id) else {
            return;
        };
        progress.asked += asked;
        match outcome {
            Ok(changes) => {
                progress.changed |= changes.added + changes.changed > 0;
                metrics::counter!("latch_inventory_resources_total", "result" => "added")
                    .increment(changes.added);
                metrics::counter!("latch_inventory_resources_total", "result" => "changed")
                    .increment(changes.changed);
                metrics::counter!("latch_inventory_resources_total", "result" => "unchanged")
                    .increment(changes.unchanged);
            }
            Err(problem) => {
                progress.error.get_or_insert(problem);
            }
        }
    }

    /// Collects a page of identities, groups and memberships for the end of the sync. A page
    /// with an empty id fails the sync.
    pub(super) fn identity_page(&mut self, page: IdentityPage) {
        let Some(progress) = self.progress(&page.sync_id, &page.integration, None) else {
            return;
        };
        if progress.error.is_some() {
            return;
        }
        if let Some(problem) = invalid_identity_page(&page) {
            progress.error = Some(problem);
            return;
        }
        progress
            .identities
            .extend(page.identities.into_iter().map(|i| SyncedIdentity {
                external_id: i.external_id,
                email: i.email.trim().to_lowercase(),
                display_name: i.display_name,
            }));
        progress
            .groups
            .extend(page.groups.into_iter().map(|g| SyncedGroup {
                external_id: g.external_id,
                display_name: g.display_name,
            }));
        progress
            .memberships
            .extend(page.memberships.into_iter().map(|m| SyncedMembership {
                group_id: m.group_external_id,
                identity_id: m.identity_external_id,
            }));
    }

    pub(super) async fn done(&mut self, done: SyncDone) {
        // Every page of the sync is stored before its end is recorded.
        self.settle().await;
        // A sync with no pages has no progress yet: an empty inventory is still an answer.
        if !self.syncs.contains_key(&done.sync_id)
            && self
                .progress(&done.sync_id, &done.integration, Some(done.full))
                .is_none()
        {
            return;
        }
        let Some(mut progress) = self.syncs.remove(&done.sync_id) else {
            return;
        };
        if progress.integration != done.integration {
            return;
        }
        let error = Some(done.error.clone())
            .filter(|e| !e.is_empty())
            .or(progress.error.take())
            .or_else(|| {
                (progress.asked > 0).then(|| {
                    format!(
                        "resources asked for in full and not sent before the sync ended: {}",
                        progress.asked
                    )
                })
            });
        let full = progress.full.unwrap_or(done.full);
        let end = SyncEnd {
            integration: &done.integration,
            sync_id: &done.sync_id,
            full: done.full && full,
            error: error.as_deref(),
            seen: full.then_some(&progress.seen),
            identities: &progress.identities,
            groups: &progress.groups,
            memberships: &progress.memberships,
        };
        let store = self.hub.lifecycle.store().clone();
        match store.finish_sync(&end, &self.actor, Utc::now()).await {
            Ok(deleted) => {
                if let Some(error) = &error {
                    tracing::warn!(integration = %done.integration, %error, "a sync failed");
                } else {
                    tracing::info!(
                        integration = %done.integration,
                        resources = progress.seen.len(),
                        deleted,
                        identities = progress.identities.len(),
                        groups = progress.groups.len(),
                        "a sync completed"
                    );
                }
                if progress.changed || deleted > 0 {
                    // Tags or hierarchy may have moved grants out of their flows' scope.
                    let lifecycle = self.hub.lifecycle.clone();
                    tokio::spawn(async move {
                        lifecycle.after_change().await;
                    });
                }
            }
            Err(err) => tracing::error!(error = %err, "recording the end of a sync failed"),
        }
    }
}

/// Pages of one sync, read into what the store takes.
struct Batch {
    resources: Vec<SyncedResource>,
    permissions: Vec<(String, Vec<String>)>,
    /// `(id, digest)` of the digest pages.
    digests: Vec<(String, String)>,
    /// The digest pages' numbers: each is answered, whatever else happens to the batch.
    digest_pages: Vec<u64>,
    /// The first invalid resource; the pages before its page are in `resources`.
    problem: Option<String>,
}

impl Batch {
    fn read(sync_id: &str, integration: &str, pages: Vec<InventoryPage>) -> Batch {
        let mut resources: Vec<SyncedResource> = Vec::new();
        // Where each id sits in `resources`: a later page's copy of an id replaces the earlier.
        let mut position: HashMap<String, usize> = HashMap::new();
        let mut permissions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut digests = Vec::new();
        let mut digest_pages = Vec::new();
        let mut problem = None;
        for page in pages {
            if page.digest_page != 0 {
                digest_pages.push(page.digest_page);
            }
            if problem.is_some() {
                continue;
            }
            if page.integration != integration {
                tracing::warn!(%sync_id, "a sync page names another integration; ignored");
                continue;
            }
            if let Some(found) = page.digests.iter().enumerate().find_map(invalid_digest) {
                problem = Some(found);
                continue;
            }
            digests.extend(page.digests.into_iter().map(|d| (d.id, d.digest)));
            let converted: Vec<SyncedResource> =
                page.resources.into_iter().map(synced_resource).collect();
            if let Some(found) = converted
                .iter()
                .enumerate()
                .find_map(|(i, r)| invalid(i, r))
            {
                problem = Some(found);
                continue;
            }
            for resource in converted {
                match position.get(&resource.id) {
                    Some(&at) => resources[at] = resource,
                    None => {
                        position.insert(resource.id.clone(), resources.len());
                        resources.push(resource);
                    }
                }
            }
            permissions.extend(
                page.permissions
                    .into_iter()
                    .map(|p| (p.r#type, p.permissions)),
            );
        }
        Batch {
            resources,
            permissions: permissions.into_iter().collect(),
            digests,
            digest_pages,
            problem,
        }
    }
}

/// A resource as the store takes it.
fn synced_resource(r: latch_proto::v1::SyncedResource) -> SyncedResource {
    SyncedResource {
        id: r.id,
        resource_type: r.r#type,
        name: r.name,
        parent: Some(r.parent).filter(|p| !p.is_empty()),
        tags: r.tags,
        owners: r.owners.into_iter().map(|o| o.to_lowercase()).collect(),
        digest: Some(r.digest).filter(|d| !d.is_empty()),
    }
}

/// Answers digest pages (none: nothing to answer).
async fn answer(outbound: &Outbound, sync_id: &str, digest_pages: Vec<u64>, ids: Vec<String>) {
    if digest_pages.is_empty() {
        return;
    }
    let wanted = ResourcesWanted {
        sync_id: sync_id.to_string(),
        digest_pages,
        ids,
    };
    // A closed stream ends the session anyway.
    let _ = outbound
        .send(Ok(response(Down::ResourcesWanted(wanted))))
        .await;
}

/// The problem with one entry of a digest page, naming the field and the value.
fn invalid_digest((index, entry): (usize, &latch_proto::v1::ResourceDigest)) -> Option<String> {
    if entry.id.trim().is_empty() {
        return Some(format!("digests[{index}].id: must not be empty"));
    }
    if entry.digest.is_empty() || entry.digest.len() > MAX_DIGEST_LEN {
        return Some(format!(
            "digests[{index}].digest: must be 1 to {MAX_DIGEST_LEN} characters, got {} (resource {:?})",
            entry.digest.len(),
            entry.id
        ));
    }
    None
}

/// The first empty id in an identity page, naming the field and the value beside it.
fn invalid_identity_page(page: &IdentityPage) -> Option<String> {
    let empty = |id: &str| id.trim().is_empty();
    if let Some((i, identity)) = page
        .identities
        .iter()
        .enumerate()
        .find(|(_, identity)| empty(&identity.external_id))
    {
        return Some(format!(
            "identities[{i}].external_id: must not be empty (identity {:?})",
            identity.display_name
        ));
    }
    if let Some((i, group)) = page
        .groups
        .iter()
        .enumerate()
        .find(|(_, group)| empty(&group.external_id))
    {
        return Some(format!(
            "groups[{i}].external_id: must not be empty (group {:?})",
            group.display_name
        ));
    }
    page.memberships.iter().enumerate().find_map(|(i, m)| {
        if empty(&m.group_external_id) {
            Some(format!(
                "memberships[{i}].group_external_id: must not be empty (identity {:?})",
                m.identity_external_id
            ))
        } else if empty(&m.identity_external_id) {
            Some(format!(
                "memberships[{i}].identity_external_id: must not be empty (group {:?})",
                m.group_external_id
            ))
        } else {
            None
        }
    })
}

/// The first problem with a synced resource, naming the field and the value.
fn invalid(index: usize, resource: &SyncedResource) -> Option<String> {
    if resource.id.trim().is_empty() {
        return Some(format!("resources[{index}].id: must not be empty"));
    }
    if resource.resource_type.trim().is_empty() {
        return Some(format!(
            "resources[{index}].type: must not be empty (resource {:?})",
            resource.id
        ));
    }
    if resource
        .digest
        .as_ref()
        .is_some_and(|d| d.len() > MAX_DIGEST_LEN)
    {
        return Some(format!(
            "resources[{index}].digest: longer than {MAX_DIGEST_LEN} characters (resource {:?})",
            resource.id
        ));
    }
    if resource.parent.as_deref() == Some(resource.id.as_str()) {
        return Some(format!(
            "resources[{index}].parent: {:?} is its own parent",
            resource.id
        ));
    }
    None
}
