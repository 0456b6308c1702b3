//! Inventory sync: a provider pushes pages into a [`ChannelSink`], which sends each page into the
//! stream's bounded outbound channel before it returns. A provider paging through a million
//! resources therefore waits for the control plane to take each page and never holds more than
//! one: memory stays bounded whatever the inventory's size.

use std::sync::Arc;

use async_trait::async_trait;
use latch_proto::v1 as pb;
use latch_proto::v1::open_stream_request::Message as Up;
use tokio::sync::mpsc;
use tracing::Instrument;

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
            self.send(Up::InventoryPage(pb::InventoryPage {
                sync_id: self.sync_id.clone(),
                integration: self.integration.clone(),
                full: true,
                resources: chunk,
                permissions: std::mem::take(&mut permissions),
            }))
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
        integration.limiter.acquire().await;
        let result = integration.provider.sync(&mut sink).await;
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
