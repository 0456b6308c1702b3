//! Inventory sync: a provider pushes pages into a [`ChannelSink`], which sends each page into the
//! stream's bounded outbound channel before it returns. A provider paging through a million
//! resources therefore waits for the control plane to take each page and never holds more than
//! a few: memory stays bounded whatever the inventory's size. With protocol 2 the pages go as
//! digests first (`digest_pages`).

use std::sync::Arc;

use async_trait::async_trait;
use latch_proto::v1 as pb;
use latch_proto::v1::open_stream_request::Message as Up;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::digest_pages::{AnswerRoutes, DigestPages};
use crate::provider::{
    Capability, ProviderError, ResourceTypePermissions, SyncSink, SyncedGroup, SyncedIdentity,
    SyncedMembership, SyncedResource,
};
use crate::runtime::Integration;

/// The most resources (or identities, groups, memberships) in one page on the wire.
pub(crate) const PAGE_SIZE: usize = 1000;

/// Sends pages of one sync to the control plane.
pub(crate) struct ChannelSink {
    outbound: mpsc::Sender<pb::OpenStreamRequest>,
    sync_id: String,
    integration: String,
    with_identities: bool,
    /// Set when the stream speaks protocol 2: resources go as digest pages first.
    digest_pages: Option<DigestPages>,
    resource_count: u64,
    identity_count: u64,
    group_count: u64,
}

impl ChannelSink {
    pub(crate) fn new(
        outbound: mpsc::Sender<pb::OpenStreamRequest>,
        sync_id: String,
        integration: String,
        with_identities: bool,
    ) -> Self {
        Self {
            outbound,
            sync_id,
            integration,
            with_identities,
            digest_pages: None,
            resource_count: 0,
            identity_count: 0,
            group_count: 0,
        }
    }

    /// Sends `items` in identity pages of at most [`PAGE_SIZE`]; `fill` puts a converted chunk
    /// into its list of the page. Nothing is sent for an integration without identities.
    async fn identity_pages<T: Send, P: Send>(
        &mut self,
        items: Vec<T>,
        convert: impl Fn(T) -> P + Send,
        fill: impl Fn(&mut pb::IdentityPage, Vec<P>) + Send,
    ) -> Result<u64, ProviderError> {
        if !self.with_identities {
            return Ok(0);
        }
        let mut sent = 0;
        let mut items = items.into_iter().map(convert).peekable();
        while items.peek().is_some() {
            let chunk: Vec<P> = items.by_ref().take(PAGE_SIZE).collect();
            sent += chunk.len() as u64;
            let mut page = pb::IdentityPage {
                sync_id: self.sync_id.clone(),
                integration: self.integration.clone(),
                ..pb::IdentityPage::default()
            };
            fill(&mut page, chunk);
            self.send(Up::IdentityPage(page)).await?;
        }
        Ok(sent)
    }

    /// Sends resources as digest pages first (protocol 2), answers routed from `answers`.
    pub(crate) fn with_digest_pages(mut self, pages: DigestPages) -> Self {
        self.digest_pages = Some(pages);
        self
    }

    /// A page of resources, as they are (`digest_page` 0) or as a digest page.
    async fn send_page(
        &mut self,
        resources: Vec<pb::SyncedResource>,
        permissions: Vec<pb::ResourceTypePermissions>,
    ) -> Result<(), ProviderError> {
        let mut page = pb::InventoryPage {
            sync_id: self.sync_id.clone(),
            integration: self.integration.clone(),
            full: true,
            permissions,
            ..pb::InventoryPage::default()
        };
        // Taken out while answers are waited for: `send_wanted` needs the sink too.
        if let Some(mut pages) = self.digest_pages.take() {
            // Answers that came are acted on at once; a full window waits for one.
            loop {
                let wanted = match pages.ready_answer()? {
                    Some(wanted) => wanted,
                    None if pages.has_room() => break,
                    None => pages.next_answer().await?,
                };
                self.send_wanted(wanted).await?;
            }
            let mut resources = resources;
            if pages.next_in_full() {
                DigestPages::give_digests(&mut resources);
                page.resources = resources;
            } else {
                (page.digest_page, page.digests) = pages.hold(resources);
            }
            self.digest_pages = Some(pages);
        } else {
            page.resources = resources;
        }
        self.send(Up::InventoryPage(page)).await
    }

    /// Sends in full what an answer asked for.
    async fn send_wanted(&self, wanted: Vec<pb::SyncedResource>) -> Result<(), ProviderError> {
        let mut wanted = wanted.into_iter().peekable();
        while wanted.peek().is_some() {
            self.send(Up::InventoryPage(pb::InventoryPage {
                sync_id: self.sync_id.clone(),
                integration: self.integration.clone(),
                full: true,
                resources: wanted.by_ref().take(PAGE_SIZE).collect(),
                ..pb::InventoryPage::default()
            }))
            .await?;
        }
        Ok(())
    }

    /// Waits for the answers to every digest page and sends what they ask for: after this the
    /// control plane has all it asked for, and `SyncDone` may follow.
    pub(crate) async fn finish(&mut self) -> Result<(), ProviderError> {
        let Some(mut pages) = self.digest_pages.take() else {
            return Ok(());
        };
        while pages.waiting() {
            let wanted = pages.next_answer().await?;
            self.send_wanted(wanted).await?;
        }
        self.digest_pages = Some(pages);
        Ok(())
    }

    async fn send(&self, message: Up) -> Result<(), ProviderError> {
        self.outbound
            .send(pb::OpenStreamRequest {
                message: Some(message),
            })
            .await
            .map_err(|_| ProviderError::transient("the stream to the control plane closed"))
    }
}

#[async_trait]
impl SyncSink for ChannelSink {
    async fn resources(
        &mut self,
        page: Vec<SyncedResource>,
        permissions: Vec<ResourceTypePermissions>,
    ) -> Result<(), ProviderError> {
        let mut permissions: Vec<pb::ResourceTypePermissions> =
            permissions.into_iter().map(permissions_to_proto).collect();
        let mut resources = page.into_iter().map(resource_to_proto).peekable();
        // An empty page still carries its permissions.
        while resources.peek().is_some() || !permissions.is_empty() {
            let chunk: Vec<pb::SyncedResource> = resources.by_ref().take(PAGE_SIZE).collect();
            self.resource_count += chunk.len() as u64;
            self.send_page(chunk, std::mem::take(&mut permissions))
                .await?;
        }
        Ok(())
    }

    async fn identities(&mut self, page: Vec<SyncedIdentity>) -> Result<(), ProviderError> {
        let sent = self
            .identity_pages(page, identity_to_proto, |page, chunk| {
                page.identities = chunk
            })
            .await?;
        self.identity_count += sent;
        Ok(())
    }

    async fn groups(&mut self, page: Vec<SyncedGroup>) -> Result<(), ProviderError> {
        let sent = self
            .identity_pages(page, group_to_proto, |page, chunk| page.groups = chunk)
            .await?;
        self.group_count += sent;
        Ok(())
    }

    async fn memberships(&mut self, page: Vec<SyncedMembership>) -> Result<(), ProviderError> {
        self.identity_pages(page, membership_to_proto, |page, chunk| {
            page.memberships = chunk
        })
        .await?;
        Ok(())
    }
}

/// Runs one full sync of `integration` and ends it with `SyncDone` (with `error` set if the
/// provider failed). Returns whether it completed.
pub(crate) async fn full_sync(
    integration: Arc<Integration>,
    outbound: mpsc::Sender<pb::OpenStreamRequest>,
    command_id: Option<String>,
    answers: Option<AnswerRoutes>,
) -> bool {
    let sync_id = uuid::Uuid::now_v7().to_string();
    let span = tracing::info_span!("sync", integration = %integration.name, %sync_id);
    async move {
        let started = std::time::Instant::now();
        tracing::info!("sync started");
        let mut sink = ChannelSink::new(
            outbound.clone(),
            sync_id.clone(),
            integration.name.clone(),
            integration.capabilities.contains(&Capability::Identities),
        );
        if let Some(routes) = &answers {
            sink = sink.with_digest_pages(DigestPages::new(routes.open(&sync_id)));
        }
        integration.limiter.acquire().await;
        let mut result = integration.provider.sync(&mut sink).await;
        if result.is_ok() {
            result = sink.finish().await;
        }
        let resource_count = sink.resource_count;
        let error = match &result {
            Ok(()) => {
                tracing::info!(
                    resource_count,
                    identity_count = sink.identity_count,
                    group_count = sink.group_count,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "sync finished"
                );
                String::new()
            }
            Err(err) => {
                tracing::warn!(resource_count, error = %err, "sync failed");
                err.to_string()
            }
        };
        let done = pb::OpenStreamRequest {
            message: Some(Up::SyncDone(pb::SyncDone {
                sync_id,
                integration: integration.name.clone(),
                full: true,
                resource_count,
                error,
                command_id: command_id.unwrap_or_default(),
            })),
        };
        outbound.send(done).await.is_ok() && result.is_ok()
    }
    .instrument(span)
    .await
}

fn resource_to_proto(resource: SyncedResource) -> pb::SyncedResource {
    pb::SyncedResource {
        id: resource.id,
        r#type: resource.resource_type,
        name: resource.name,
        parent: resource.parent.unwrap_or_default(),
        tags: resource.tags,
        owners: resource.owners,
        digest: String::new(),
    }
}

fn permissions_to_proto(permissions: ResourceTypePermissions) -> pb::ResourceTypePermissions {
    pb::ResourceTypePermissions {
        r#type: permissions.resource_type,
        permissions: permissions.permissions,
    }
}

fn identity_to_proto(identity: SyncedIdentity) -> pb::SyncedIdentity {
    pb::SyncedIdentity {
        external_id: identity.external_id,
        email: identity.email.unwrap_or_default(),
        display_name: identity.display_name,
    }
}

fn group_to_proto(group: SyncedGroup) -> pb::SyncedGroup {
    pb::SyncedGroup {
        external_id: group.external_id,
        display_name: group.display_name,
    }
}

fn membership_to_proto(membership: SyncedMembership) -> pb::SyncedMembership {
    pb::SyncedMembership {
        group_external_id: membership.group_external_id,
        identity_external_id: membership.identity_external_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(i: usize) -> SyncedResource {
        SyncedResource {
            id: format!("r{i}"),
            resource_type: "fake.thing".into(),
            name: format!("thing {i}"),
            ..SyncedResource::default()
        }
    }

    #[tokio::test]
    async fn big_pages_are_split_and_the_sink_waits_for_room() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut sink = ChannelSink::new(tx, "s1".into(), "fake".into(), true);
        let pushing = tokio::spawn(async move {
            let page: Vec<SyncedResource> = (0..2500).map(resource).collect();
            let permissions = vec![ResourceTypePermissions {
                resource_type: "fake.thing".into(),
                permissions: vec!["read".into()],
            }];
            sink.resources(page, permissions).await.expect("send");
            sink.resource_count
        });
        // With room for one message, the provider cannot run ahead of the reader.
        tokio::task::yield_now().await;
        let mut sizes = Vec::new();
        let mut permissions_seen = Vec::new();
        for _ in 0..3 {
            match rx.recv().await.and_then(|m| m.message) {
                Some(Up::InventoryPage(page)) => {
                    sizes.push(page.resources.len());
                    permissions_seen.push(page.permissions.len());
                    assert!(page.full);
                    assert_eq!(page.sync_id, "s1");
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(sizes, [1000, 1000, 500]);
        assert_eq!(permissions_seen, [1, 0, 0]);
        assert_eq!(pushing.await.expect("join"), 2500);
    }

    /// A sink of sync `s1` that sends digest pages, and where answers to it are delivered.
    fn digest_sink(tx: mpsc::Sender<pb::OpenStreamRequest>) -> (ChannelSink, AnswerRoutes) {
        let routes = AnswerRoutes::default();
        let sink = ChannelSink::new(tx, "s1".into(), "fake".into(), true)
            .with_digest_pages(DigestPages::new(routes.open("s1")));
        (sink, routes)
    }

    #[tokio::test]
    async fn digest_pages_are_held_until_answered_and_only_wanted_resources_follow_in_full() {
        let (tx, mut rx) = mpsc::channel(4);
        let (mut sink, routes) = digest_sink(tx);
        let pushing = tokio::spawn(async move {
            let page: Vec<SyncedResource> = (0..2500).map(resource).collect();
            sink.resources(page, Vec::new()).await.expect("send");
            sink.finish().await.expect("finish");
            sink.resource_count
        });
        // The control plane's part: answer each digest page wanting its first resource.
        let mut digest_pages = Vec::new();
        let mut sent_in_full = Vec::new();
        while let Some(message) = rx.recv().await.and_then(|m| m.message) {
            let Up::InventoryPage(page) = message else {
                panic!("{message:?}")
            };
            if page.digest_page == 0 {
                assert!(page.digests.is_empty());
                sent_in_full.extend(page.resources);
                continue;
            }
            assert!(
                page.resources.is_empty(),
                "a digest page carries no resources"
            );
            digest_pages.push((page.digest_page, page.digests.len()));
            routes.deliver(pb::ResourcesWanted {
                sync_id: "s1".into(),
                digest_pages: vec![page.digest_page],
                ids: vec![page.digests[0].id.clone(), "not-in-the-page".into()],
            });
        }
        assert_eq!(digest_pages, [(1, 1000), (2, 1000), (3, 500)]);
        let ids: Vec<&str> = sent_in_full.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["r0", "r1000", "r2000"]);
        assert!(sent_in_full.iter().all(|r| r.digest.len() == 64));
        assert_eq!(pushing.await.expect("join"), 2500);
    }

    #[tokio::test]
    async fn a_sync_waits_when_its_window_of_digest_pages_is_full() {
        let (tx, mut rx) = mpsc::channel(64);
        let (mut sink, routes) = digest_sink(tx);
        let pages = crate::digest_pages::WINDOW + 1;
        let pushing = tokio::spawn(async move {
            let page: Vec<SyncedResource> = (0..pages * PAGE_SIZE).map(resource).collect();
            sink.resources(page, Vec::new()).await
        });
        let mut received = 0;
        while received < crate::digest_pages::WINDOW {
            rx.recv().await.expect("a page");
            received += 1;
        }
        // No answer yet: the page beyond the window is not sent.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(rx.try_recv().is_err(), "a page beyond the window was sent");
        routes.deliver(pb::ResourcesWanted {
            sync_id: "s1".into(),
            digest_pages: vec![1],
            ids: Vec::new(),
        });
        match rx.recv().await.and_then(|m| m.message) {
            Some(Up::InventoryPage(page)) => assert_eq!(page.digest_page, pages as u64),
            other => panic!("{other:?}"),
        }
        pushing.await.expect("join").expect("sent");
    }

    #[tokio::test]
    async fn groups_and_memberships_go_in_identity_pages_split_like_identities() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut sink = ChannelSink::new(tx, "s1".into(), "fake".into(), true);
        let groups: Vec<SyncedGroup> = (0..1001)
            .map(|i| SyncedGroup {
                external_id: format!("g{i}"),
                display_name: format!("group {i}"),
            })
            .collect();
        sink.groups(groups).await.expect("send");
        sink.memberships(vec![SyncedMembership {
            group_external_id: "g0".into(),
            identity_external_id: "u1".into(),
        }])
        .await
        .expect("send");
        drop(sink);
        let mut pages = Vec::new();
        while let Some(Some(Up::IdentityPage(page))) = rx.recv().await.map(|m| m.message) {
            assert_eq!(
                (page.sync_id.as_str(), page.integration.as_str()),
                ("s1", "fake")
            );
            pages.push((
                page.identities.len(),
                page.groups.len(),
                page.memberships.len(),
            ));
        }
        assert_eq!(pages, [(0, 1000, 0), (0, 1, 0), (0, 0, 1)]);
    }

    #[tokio::test]
    async fn without_identities_no_groups_are_sent() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut sink = ChannelSink::new(tx, "s1".into(), "fake".into(), false);
        sink.groups(vec![SyncedGroup::default()])
            .await
            .expect("nothing to send");
        sink.memberships(vec![SyncedMembership::default()])
            .await
            .expect("nothing to send");
        drop(sink);
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_closed_stream_stops_the_provider_with_a_retryable_error() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut sink = ChannelSink::new(tx, "s1".into(), "fake".into(), true);
        let err = sink
            .resources(vec![resource(1)], Vec::new())
            .await
            .expect_err("closed");
        assert!(err.is_retryable());
    }
}
