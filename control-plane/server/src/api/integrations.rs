//! `IntegrationService`: the integrations connectors announce, their owners, syncs on demand, and
//! the groups their syncs report.

use std::sync::Arc;

use chrono::Utc;
use latch_proto::v1 as pb;
use latch_proto::v1::integration_service_server::IntegrationService;
use tonic::{Request, Response, Status};

use crate::lifecycle::Lifecycle;
use crate::store::{IntegrationGroup, IntegrationRecord};

use super::auth_layer::{admin, caller};
use super::convert::timestamp;
use super::page;
use super::status::invalid_field;

pub struct IntegrationApi {
    lifecycle: Arc<Lifecycle>,
}

impl IntegrationApi {
    pub fn new(lifecycle: Arc<Lifecycle>) -> Self {
        IntegrationApi { lifecycle }
    }

    /// The integration as the API shows it; identities are linked to directory users by email.
    async fn view(&self, record: &IntegrationRecord) -> Result<pb::Integration, Status> {
        let context = self.lifecycle.context().await?;
        let linked = record
            .identity_emails
            .iter()
            .filter(|email| context.directory.user(email).is_some())
            .count();
        Ok(pb::Integration {
            name: record.name.clone(),
            kind: record.kind.clone(),
            state: if record.connected {
                "connected"
            } else {
                "disconnected"
            }
            .to_string(),
            connectors: record.connectors.clone(),
            capabilities: record.capabilities.clone(),
            last_sync_at: record.last_sync_at.map(timestamp),
            resource_count: record.resource_count.max(0) as u64,
            identity_count: record.identity_count.max(0) as u64,
            linked_identity_count: linked as u64,
            last_error: record.last_error.clone().unwrap_or_default(),
            owner_users: record.owner_users.clone(),
            owner_groups: record.owner_groups.clone(),
            active_grant_count: record.active_grant_count.max(0) as u64,
            group_count: record.group_count.max(0) as u64,
        })
    }

    /// Groups as the API shows them; members are linked to directory users by email.
    async fn group_views(
        &self,
        groups: Vec<IntegrationGroup>,
    ) -> Result<Vec<pb::IntegrationGroup>, Status> {
        let context = self.lifecycle.context().await?;
        Ok(groups
            .into_iter()
            .map(|group| pb::IntegrationGroup {
                external_id: group.external_id,
                display_name: group.display_name,
                members: group
                    .members
                    .into_iter()
                    .map(|member| pb::IntegrationIdentity {
                        linked: !member.email.is_empty()
                            && context.directory.user(&member.email).is_some(),
                        external_id: member.external_id,
                        email: member.email,
                        display_name: member.display_name,
                    })
                    .collect(),
            })
            .collect())
    }

    async fn find(&self, name: &str) -> Result<IntegrationRecord, Status> {
        if name.trim().is_empty() {
            return Err(invalid_field("name", "is required"));
        }
        self.lifecycle
            .store()
            .integration(name, Utc::now())
            .await?
            .ok_or_else(|| Status::not_found(format!("no integration named {name:?}")))
    }
}

#[tonic::async_trait]
impl IntegrationService for IntegrationApi {
    async fn list_integrations(
        &self,
        request: Request<pb::ListIntegrationsRequest>,
    ) -> Result<Response<pb::ListIntegrationsResponse>, Status> {
        caller(&request)?;
        let records = self.lifecycle.store().list_integrations(Utc::now()).await?;
        let mut integrations = Vec::with_capacity(records.len());
        for record in &records {
            integrations.push(self.view(record).await?);
        }
        Ok(Response::new(pb::ListIntegrationsResponse { integrations }))
    }

    async fn get_integration(
        &self,
        request: Request<pb::GetIntegrationRequest>,
    ) -> Result<Response<pb::GetIntegrationResponse>, Status> {
        caller(&request)?;
        let record = self.find(&request.into_inner().name).await?;
        Ok(Response::new(pb::GetIntegrationResponse {
            integration: Some(self.view(&record).await?),
        }))
    }

    async fn set_integration_owners(
        &self,
        request: Request<pb::SetIntegrationOwnersRequest>,
    ) -> Result<Response<pb::SetIntegrationOwnersResponse>, Status> {
        let caller = admin(&request)?;
        let request = request.into_inner();
        let mut users = Vec::new();
        for (i, user) in request.users.iter().enumerate() {
            let user = user.trim().to_lowercase();
            if !user.contains('@') {
                return Err(invalid_field(
                    &format!("users[{i}]"),
                    format!("{user:?} is not an email address"),
                ));
            }
            users.push(user);
        }
        for (i, group) in request.groups.iter().enumerate() {
            if group.trim().is_empty() {
                return Err(invalid_field(&format!("groups[{i}]"), "must not be empty"));
            }
        }
        self.find(&request.name).await?;
        let record = self
            .lifecycle
            .store()
            .set_integration_owners(
                &request.name,
                &users,
                &request.groups,
                &caller.user,
                Utc::now(),
            )
            .await?;
        Ok(Response::new(pb::SetIntegrationOwnersResponse {
            integration: Some(self.view(&record).await?),
        }))
    }

    async fn sync_integration(
        &self,
        request: Request<pb::SyncIntegrationRequest>,
    ) -> Result<Response<pb::SyncIntegrationResponse>, Status> {
        let caller = admin(&request)?;
        let name = request.into_inner().name;
        self.find(&name).await?;
        let command_id = uuid::Uuid::now_v7().to_string();
        self.lifecycle
            .store()
            .request_sync(&name, &command_id, &caller.user, Utc::now())
            .await?;
        // Sessions on this server look at once; others at their next heartbeat.
        self.lifecycle.commands_written();
        Ok(Response::new(pb::SyncIntegrationResponse { command_id }))
    }

    async fn list_integration_groups(
        &self,
        request: Request<pb::ListIntegrationGroupsRequest>,
    ) -> Result<Response<pb::ListIntegrationGroupsResponse>, Status> {
        caller(&request)?;
        let request = request.into_inner();
        if request.name.trim().is_empty() {
            return Err(invalid_field("name", "is required"));
        }
        let limit = page::size(request.page_size);
        let after = page::key(&request.page_token)?;
        let groups = self
            .lifecycle
            .store()
            .list_integration_groups(&request.name, after.as_deref(), limit + 1)
            .await?;
        let (groups, next_page_token) = page::split(groups, limit, |g| g.external_id.clone());
        Ok(Response::new(pb::ListIntegrationGroupsResponse {
            groups: self.group_views(groups).await?,
            next_page_token,
        }))
    }
}
