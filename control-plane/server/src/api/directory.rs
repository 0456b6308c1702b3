//! `DirectoryService`: the static directory of users, groups and on-call schedules.

use std::sync::Arc;

use latch_core::directory::{Directory, DirectorySpec, diff, parse_directory_yaml};
use latch_proto::v1 as pb;
use latch_proto::v1::directory_service_server::DirectoryService;
use tonic::{Request, Response, Status};

use crate::lifecycle::{Lifecycle, STATIC_SOURCE};
use crate::store::{Store, StoreError, StoredDirectory};

use super::auth_layer::{admin, caller};
use super::page;
use super::status::{invalid_document, invalid_field};

/// The directory service over a store.
pub struct DirectoryApi {
    store: Arc<dyn Store>,
    lifecycle: Arc<Lifecycle>,
}

/// The static directory as stored: its document and its digest (`None` before the first apply).
async fn load(store: &dyn Store) -> Result<(DirectorySpec, Option<String>), Status> {
    match store.directory(STATIC_SOURCE).await? {
        None => Ok((DirectorySpec::default(), None)),
        Some(stored) => {
            let spec = serde_json::from_str(&stored.json).map_err(|err| {
                Status::from(StoreError::Corrupt {
                    what: "directory".into(),
                    reason: err.to_string(),
                })
            })?;
            Ok((spec, Some(stored.digest)))
        }
    }
}

impl DirectoryApi {
    pub fn new(store: Arc<dyn Store>, lifecycle: Arc<Lifecycle>) -> Self {
        DirectoryApi { store, lifecycle }
    }
}

fn user_message(
    directory: &Directory,
    email: &str,
    now: jiff::Timestamp,
) -> Option<pb::DirectoryUser> {
    let user = directory.user(email)?;
    Some(pb::DirectoryUser {
        email: user.email.clone(),
        name: user.name.clone().unwrap_or_default(),
        manager: user.manager.clone().unwrap_or_default(),
        groups: user.groups.clone(),
        all_groups: directory.groups_of(email).into_iter().collect(),
        time_zone: user.time_zone.clone().unwrap_or_default(),
        on_call_now: directory
            .schedules_on_shift(email, now)
            .into_iter()
            .collect(),
    })
}

#[tonic::async_trait]
impl DirectoryService for DirectoryApi {
    async fn apply_directory(
        &self,
        request: Request<pb::ApplyDirectoryRequest>,
    ) -> Result<Response<pb::ApplyDirectoryResponse>, Status> {
        let caller = admin(&request)?;
        let new = parse_directory_yaml(&request.into_inner().yaml)
            .map_err(|problems| invalid_document(&problems))?;
        let (old, old_digest) = load(self.store.as_ref()).await?;
        let changes = diff(&old, &new);
        let digest = new.digest();
        if old_digest.as_deref() == Some(digest.as_str()) {
            return Ok(Response::new(pb::ApplyDirectoryResponse {
                changed: false,
                changes: Some(pb::DirectoryChanges::default()),
                summary: changes.summary(),
            }));
        }
        let stored = StoredDirectory {
            json: serde_json::to_string(&new)
                .map_err(|err| Status::internal(format!("directory: {err}")))?,
            digest,
            applied_at: chrono::Utc::now(),
            applied_by: caller.user.clone(),
        };
        let change = serde_json::to_value(&changes).unwrap_or_default();
        // The diff was computed against `old_digest`; the store refuses if someone replaced it since.
        self.store
            .replace_directory(STATIC_SOURCE, old_digest.as_deref(), &stored, change)
            .await?;
        tracing::info!(summary = %changes.summary(), actor = %caller.user, "directory applied");
        // Group memberships and shifts drive automatic flows and who may keep access.
        self.lifecycle.after_change().await;
        Ok(Response::new(pb::ApplyDirectoryResponse {
            changed: true,
            summary: changes.summary(),
            changes: Some(pb::DirectoryChanges {
                users_added: changes.users_added,
                users_removed: changes.users_removed,
                users_changed: changes.users_changed,
                groups_added: changes.groups_added,
                groups_removed: changes.groups_removed,
                groups_changed: changes.groups_changed,
                schedules_added: changes.schedules_added,
                schedules_removed: changes.schedules_removed,
                schedules_changed: changes.schedules_changed,
            }),
        }))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        caller(&request)?;
        let email = request.into_inner().email;
        if email.trim().is_empty() {
            return Err(invalid_field("email", "is required"));
        }
        let directory = self.lifecycle.context().await?.directory;
        match user_message(&directory, &email, jiff::Timestamp::now()) {
            Some(user) => Ok(Response::new(pb::GetUserResponse { user: Some(user) })),
            None => Err(Status::not_found(format!(
                "user {email:?} is not in the directory"
            ))),
        }
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        caller(&request)?;
        let request = request.into_inner();
        let limit = page::size(request.page_size);
        let after = page::key(&request.page_token)?.unwrap_or_default();
        let directory = self.lifecycle.context().await?.directory;
        let now = jiff::Timestamp::now();
        let rows: Vec<pb::DirectoryUser> = directory
            .users()
            .filter(|user| user.email.as_str() > after.as_str())
            .take(usize::try_from(limit).unwrap_or(usize::MAX) + 1)
            .filter_map(|user| user_message(&directory, &user.email, now))
            .collect();
        let (users, next_page_token) = page::split(rows, limit, |user| user.email.clone());
        Ok(Response::new(pb::ListUsersResponse {
            users,
            next_page_token,
        }))
    }
}
