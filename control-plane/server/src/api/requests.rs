//! `AccessRequestService`: requests, approvals, revocation, extension and grants.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use latch_core::decide::same_email;
use latch_core::request::RequestState;
use latch_proto::v1 as pb;
use latch_proto::v1::access_request_service_server::AccessRequestService;
use tonic::{Request, Response, Status};

use crate::auth::Caller;
use crate::connectors::vault::CredentialsVault;
use crate::lifecycle::{Actor, Ask, Context, Lifecycle, stored_decision};
use crate::store::{GrantFilter, GrantState, RequestFilter, RequestItem, RequestView};

use super::auth_layer::caller;
use super::status::invalid_field;
use super::{convert, page};

/// The request service over the lifecycle.
pub struct RequestApi {
    lifecycle: Arc<Lifecycle>,
    vault: Arc<CredentialsVault>,
}

impl RequestApi {
    pub fn new(lifecycle: Arc<Lifecycle>, vault: Arc<CredentialsVault>) -> Self {
        RequestApi { lifecycle, vault }
    }

    /// The request as the API shows it, with who it still waits for.
    fn message(&self, view: &RequestView, context: Option<&Context>) -> pb::AccessRequest {
        let waiting_for = match (view.request.state, context) {
            (RequestState::Pending, Some(context)) => waiting_for(view, context),
            _ => Vec::new(),
        };
        convert::request(&view.request, &view.approvals, &view.grants, waiting_for)
    }
}

fn actor(caller: &Caller) -> Actor {
    Actor {
        email: caller.user.clone(),
        admin: caller.admin,
    }
}

fn duration(
    field: &str,
    value: Option<&prost_types::Duration>,
) -> Result<Option<Duration>, Status> {
    match value {
        None => Ok(None),
        Some(d) if d.seconds < 0 || d.nanos < 0 || (d.seconds == 0 && d.nanos == 0) => Err(
            invalid_field(field, format!("{}s is not a positive duration", d.seconds)),
        ),
        Some(d) => Ok(Some(Duration::new(
            u64::try_from(d.seconds).unwrap_or_default(),
            u32::try_from(d.nanos).unwrap_or_default(),
        ))),
    }
}

fn required_id(id: &str) -> Result<&str, Status> {
    if id.trim().is_empty() {
        Err(invalid_field("id", "a request id is required"))
    } else {
        Ok(id.trim())
    }
}

/// Who a pending request still waits for, in words: the open groups of its plan, counting only
/// approvals given for the request as it is now.
fn waiting_for(view: &RequestView, context: &Context) -> Vec<String> {
    let Some(plan) = stored_decision(&view.request).ok().and_then(|d| d.approval) else {
        return Vec::new();
    };
    let given: Vec<String> = view
        .approvals
        .iter()
        .filter(|a| a.verdict == "approve" && a.request_digest == view.request.digest)
        .map(|a| a.approver.clone())
        .collect();
    let approvers = crate::lifecycle::Approvers::new(&context.directory, &[]);
    plan.waiting_for(&given, &approvers, jiff::Timestamp::now())
}

#[tonic::async_trait]
impl AccessRequestService for RequestApi {
    async fn create_access_request(
        &self,
        request: Request<pb::CreateAccessRequestRequest>,
    ) -> Result<Response<pb::CreateAccessRequestResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let ask = Ask {
            items: body
                .items
                .into_iter()
                .map(|item| RequestItem {
                    resource_id: item.resource_id.trim().to_owned(),
                    permission: item.permission.trim().to_owned(),
                })
                .collect(),
            duration: duration("duration", body.duration.as_ref())?,
            justification: body.justification,
        };
        let asked = self
            .lifecycle
            .create(&actor(&caller), ask, Utc::now())
            .await?;
        let context = self.lifecycle.context().await.ok();
        Ok(Response::new(pb::CreateAccessRequestResponse {
            request: Some(self.message(&asked.view, context.as_ref())),
            extended: asked.extended,
        }))
    }

    async fn get_access_request(
        &self,
        request: Request<pb::GetAccessRequestRequest>,
    ) -> Result<Response<pb::GetAccessRequestResponse>, Status> {
        let caller = caller(&request)?;
        let id = request.into_inner().id;
        let view = self.lifecycle.get(required_id(&id)?).await?;
        let context = self.lifecycle.context().await?;
        // Requesters see their own requests, admins every request, approvers those they may act on.
        let allowed = caller.admin
            || same_email(&view.request.requester, &caller.user)
            || view
                .approvals
                .iter()
                .any(|a| same_email(&a.approver, &caller.user))
            || stored_decision(&view.request)
                .ok()
                .and_then(|d| d.approval)
                .is_some_and(|plan| self_may_see(&plan, &context, &caller.user));
        if !allowed {
            return Err(Status::permission_denied(format!(
                "{} may not see request {}: only its requester, its approvers and admins may",
                caller.user, view.request.id
            )));
        }
        Ok(Response::new(pb::GetAccessRequestResponse {
            request: Some(self.message(&view, Some(&context))),
        }))
    }

    async fn list_access_requests(
        &self,
        request: Request<pb::ListAccessRequestsRequest>,
    ) -> Result<Response<pb::ListAccessRequestsResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let limit = page::size(body.page_size);
        let before = page::key(&body.page_token)?;
        let state = match body.state.trim() {
            "" => None,
            text => Some(
                text.parse::<RequestState>()
                    .map_err(|err| invalid_field("state", err))?,
            ),
        };
        let requester = if body.mine {
            Some(caller.user.to_lowercase())
        } else if !body.requester.trim().is_empty() {
            Some(body.requester.trim().to_lowercase())
        } else {
            None
        };
        // Non-admins see their own requests and those waiting for their approval.
        if !caller.admin
            && !body.pending_my_approval
            && requester.as_deref() != Some(&caller.user.to_lowercase())
        {
            return Err(Status::permission_denied(format!(
                "{} is not an admin: list your own requests (--mine) or those pending your approval",
                caller.user
            )));
        }
        let filter = RequestFilter {
            requester,
            state: if body.pending_my_approval {
                Some(RequestState::Pending)
            } else {
                state
            },
        };
        let now = Utc::now();
        let context = self.lifecycle.context().await?;
        let store = self.lifecycle.store();
        let mut out = Vec::new();
        let mut cursor = before;
        // With --pending-my-approval, pages are filtered after reading; keep reading until full.
        let next = loop {
            let rows = store
                .list_requests(&filter, cursor.as_deref(), limit + 1)
                .await?;
            let exhausted = rows.len() <= usize::try_from(limit).unwrap_or(usize::MAX);
            for row in rows
                .into_iter()
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
            {
                cursor = Some(row.id.clone());
                let view = RequestView {
                    request: row,
                    approvals: Vec::new(),
                    grants: Vec::new(),
                };
                let keep = if body.pending_my_approval {
                    let full = self.lifecycle.get(&view.request.id).await?;
                    self.lifecycle
                        .may_approve(&full, &context, &caller.user, now)
                        .await?
                } else {
                    true
                };
                if keep {
                    out.push(self.message(&view, None));
                }
                if out.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
                    break;
                }
            }
            if exhausted {
                break String::new();
            }
            if out.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
                break cursor.as_deref().map(page::token).unwrap_or_default();
            }
        };
        Ok(Response::new(pb::ListAccessRequestsResponse {
            requests: out,
            next_page_token: next,
        }))
    }

    async fn approve_access_request(
        &self,
        request: Request<pb::ApproveAccessRequestRequest>,
    ) -> Result<Response<pb::ApproveAccessRequestResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let view = self
            .lifecycle
            .approve(
                &actor(&caller),
                required_id(&body.id)?,
                &body.reason,
                Utc::now(),
            )
            .await?;
        let context = self.lifecycle.context().await.ok();
        Ok(Response::new(pb::ApproveAccessRequestResponse {
            request: Some(self.message(&view, context.as_ref())),
        }))
    }

    async fn deny_access_request(
        &self,
        request: Request<pb::DenyAccessRequestRequest>,
    ) -> Result<Response<pb::DenyAccessRequestResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let view = self
            .lifecycle
            .deny(
                &actor(&caller),
                required_id(&body.id)?,
                &body.reason,
                Utc::now(),
            )
            .await?;
        Ok(Response::new(pb::DenyAccessRequestResponse {
            request: Some(self.message(&view, None)),
        }))
    }

    async fn cancel_access_request(
        &self,
        request: Request<pb::CancelAccessRequestRequest>,
    ) -> Result<Response<pb::CancelAccessRequestResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let view = self
            .lifecycle
            .cancel(&actor(&caller), required_id(&body.id)?, Utc::now())
            .await?;
        Ok(Response::new(pb::CancelAccessRequestResponse {
            request: Some(self.message(&view, None)),
        }))
    }

    async fn revoke_access_request(
        &self,
        request: Request<pb::RevokeAccessRequestRequest>,
    ) -> Result<Response<pb::RevokeAccessRequestResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let view = self
            .lifecycle
            .revoke(
                &actor(&caller),
                required_id(&body.id)?,
                &body.reason,
                Utc::now(),
            )
            .await?;
        Ok(Response::new(pb::RevokeAccessRequestResponse {
            request: Some(self.message(&view, None)),
        }))
    }

    async fn extend_access_request(
        &self,
        request: Request<pb::ExtendAccessRequestRequest>,
    ) -> Result<Response<pb::ExtendAccessRequestResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let more = duration("duration", body.duration.as_ref())?
            .ok_or_else(|| invalid_field("duration", "is required"))?;
        let view = self
            .lifecycle
            .extend(
                &actor(&caller),
                required_id(&body.id)?,
                more,
                &body.justification,
                Utc::now(),
            )
            .await?;
        Ok(Response::new(pb::ExtendAccessRequestResponse {
            request: Some(self.message(&view, None)),
        }))
    }

    async fn list_grants(
        &self,
        request: Request<pb::ListGrantsRequest>,
    ) -> Result<Response<pb::ListGrantsResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let limit = page::size(body.page_size);
        let before = page::key(&body.page_token)?;
        let identity = match body.user.trim() {
            "" if caller.admin => None,
            "" => Some(caller.user.to_lowercase()),
            user => Some(user.to_lowercase()),
        };
        if !caller.admin && identity.as_deref() != Some(&caller.user.to_lowercase()) {
            return Err(Status::permission_denied(format!(
                "{} is not an admin and may list only their own grants",
                caller.user
            )));
        }
        let filter = GrantFilter {
            identity,
            state: body.active.then_some(GrantState::Active),
            resource_id: None,
        };
        let rows = self
            .lifecycle
            .store()
            .list_grants(&filter, before.as_deref(), limit + 1)
            .await?;
        let (rows, next_page_token) = page::split(rows, limit, |g| g.id.clone());
        Ok(Response::new(pb::ListGrantsResponse {
            grants: rows.iter().map(convert::grant).collect(),
            next_page_token,
        }))
    }

    async fn get_access_credentials(
        &self,
        request: Request<pb::GetAccessCredentialsRequest>,
    ) -> Result<Response<pb::GetAccessCredentialsResponse>, Status> {
        let caller = caller(&request)?;
        let id = request.into_inner().id;
        let view = self.lifecycle.get(required_id(&id)?).await?;
        // A login made for one person is for that person alone: not for approvers, not for
        // admins (who can revoke it, and see in the audit log that it was viewed).
        if !same_email(&view.request.requester, &caller.user) {
            return Err(Status::permission_denied(format!(
                "{} may not fetch the credentials of request {}: only its requester may",
                caller.user, view.request.id
            )));
        }
        let found = self
            .lifecycle
            .store()
            .access_credentials(&view.request.id, &caller.user, Utc::now())
            .await?;
        let mut credentials = Vec::with_capacity(found.len());
        for (grant, sealed) in found {
            let opened = self.vault.open(&grant.id, &sealed).map_err(|err| {
                tracing::error!(grant_id = %grant.id, error = %err, "stored credentials do not open");
                Status::internal(format!(
                    "the credentials of grant {} cannot be opened with this server's credentials key",
                    grant.id
                ))
            })?;
            credentials.push(pb::AccessCredentials {
                grant_id: grant.id,
                resource_id: grant.resource_id,
                permission: grant.permission,
                username: opened.username,
                password: opened.password,
                host: opened.host,
                port: opened.port,
                database: opened.database,
                expires_at: grant.expires_at.map(convert::timestamp),
            });
        }
        Ok(Response::new(pb::GetAccessCredentialsResponse {
            credentials,
        }))
    }
}

/// Whether `user` fits any approver group of `plan` now (so may see the request).
fn self_may_see(plan: &latch_core::decide::ApprovalPlan, context: &Context, user: &str) -> bool {
    let approvers = crate::lifecycle::Approvers::new(&context.directory, &[]);
    plan.eligibility(user, &approvers, jiff::Timestamp::now())
        .is_ok()
}
