//! `ResourceService`: the inventory, and the static source `latch resources apply` replaces.

use std::sync::Arc;

use latch_core::inventory::parse_inventory_yaml;
use latch_proto::v1 as pb;
use latch_proto::v1::resource_service_server::ResourceService;
use tonic::{Request, Response, Status};

use crate::lifecycle::{Lifecycle, STATIC_SOURCE};
use crate::store::{GrantFilter, GrantState, ResourceRecord};

use super::auth_layer::{admin, caller};
use super::status::{invalid_document, invalid_field};
use super::{convert, page};

/// The resource service over the lifecycle (a change of the inventory re-checks live grants).
pub struct ResourceApi {
    lifecycle: Arc<Lifecycle>,
}

impl ResourceApi {
    pub fn new(lifecycle: Arc<Lifecycle>) -> Self {
        ResourceApi { lifecycle }
    }
}

#[tonic::async_trait]
impl ResourceService for ResourceApi {
    async fn apply_resources(
        &self,
        request: Request<pb::ApplyResourcesRequest>,
    ) -> Result<Response<pb::ApplyResourcesResponse>, Status> {
        let caller = admin(&request)?;
        let parsed = parse_inventory_yaml(&request.into_inner().yaml)
            .map_err(|problems| invalid_document(&problems))?;
        let now = chrono::Utc::now();
        let records: Vec<ResourceRecord> = parsed
            .into_iter()
            .map(|r| ResourceRecord {
                name: r.entry.name.clone().unwrap_or_else(|| r.entry.id.clone()),
                id: r.entry.id,
                integration: r.entry.integration,
                resource_type: r.entry.resource_type,
                parent: r.entry.parent,
                ancestors: r.ancestors,
                tags: r.entry.tags,
                owners: r.entry.owners.iter().map(|o| o.to_lowercase()).collect(),
                source: STATIC_SOURCE.to_owned(),
                first_seen: now,
                last_seen: now,
            })
            .collect();
        let store = self.lifecycle.store();
        let changes = store
            .replace_resources(STATIC_SOURCE, &records, &caller.user, now)
            .await?;
        let mut revoked_requests = Vec::new();
        if !changes.is_empty() {
            // Tags or hierarchy may have moved resources out of a flow's scope.
            revoked_requests = self.lifecycle.after_change().await.revoked_requests;
        }
        tracing::info!(added = changes.added.len(), removed = changes.removed.len(), changed = changes.changed.len(), actor = %caller.user, "resources applied");
        Ok(Response::new(pb::ApplyResourcesResponse {
            added: changes.added,
            removed: changes.removed,
            changed: changes.changed,
            revoked_requests,
        }))
    }

    async fn get_resource(
        &self,
        request: Request<pb::GetResourceRequest>,
    ) -> Result<Response<pb::GetResourceResponse>, Status> {
        caller(&request)?;
        let id = request.into_inner().id;
        if id.trim().is_empty() {
            return Err(invalid_field("id", "is required"));
        }
        let store = self.lifecycle.store();
        let found = store.resources_by_id(std::slice::from_ref(&id)).await?;
        let Some(resource) = found.into_iter().next() else {
            return Err(Status::not_found(format!("no resource with id {id:?}")));
        };
        let ancestors = store.resources_by_id(&resource.ancestors).await?;
        // resources_by_id answers in id order; the chain reads parent first.
        let ancestors = resource
            .ancestors
            .iter()
            .filter_map(|id| ancestors.iter().find(|a| &a.id == id))
            .map(convert::resource)
            .collect();
        let permissions = store
            .type_permissions(&resource.integration, &resource.resource_type)
            .await?;
        let mut active_grants = Vec::new();
        for state in [
            GrantState::Granting,
            GrantState::Active,
            GrantState::Revoking,
            GrantState::RevokeFailed,
        ] {
            let filter = GrantFilter {
                resource_id: Some(resource.id.clone()),
                state: Some(state),
                ..GrantFilter::default()
            };
            let grants = store
                .list_grants(&filter, None, page::MAX_PAGE_SIZE)
                .await?;
            active_grants.extend(grants.iter().map(convert::grant));
        }
        Ok(Response::new(pb::GetResourceResponse {
            resource: Some(convert::resource(&resource)),
            ancestors,
            permissions,
            active_grants,
        }))
    }

    async fn list_resources(
        &self,
        request: Request<pb::ListResourcesRequest>,
    ) -> Result<Response<pb::ListResourcesResponse>, Status> {
        caller(&request)?;
        let request = request.into_inner();
        let limit = page::size(request.page_size);
        let after = page::key(&request.page_token)?;
        let tags: std::collections::BTreeMap<String, String> = request.tags.into_iter().collect();
        let rows = self
            .lifecycle
            .store()
            .list_resources(
                after.as_deref(),
                limit + 1,
                Some(request.integration.as_str()).filter(|s| !s.is_empty()),
                Some(request.r#type.as_str()).filter(|s| !s.is_empty()),
                &tags,
                Some(request.search.as_str()).filter(|s| !s.is_empty()),
            )
            .await?;
        let (rows, next_page_token) = page::split(rows, limit, |r| r.id.clone());
        Ok(Response::new(pb::ListResourcesResponse {
            resources: rows.iter().map(convert::resource).collect(),
            next_page_token,
        }))
    }
}
