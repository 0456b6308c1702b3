//! Requests from the caller's side: create, approve, deny, cancel, revoke, extend. Each gathers the
//! context, decides with the pure engine and approval plan, and lets the store write the result in
//! one transaction (see [`crate::store::LifecycleStore::change_request`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use latch_core::decide::{
    AccessItem, ApprovalPlan, Decision, DecisionRequest, FlowRef, Outcome, same_email,
};
use latch_core::request::RequestState;
use sha2::{Digest, Sha256};

use super::Lifecycle;
use super::context::{Approvers, Context};
use crate::store::{
    ApprovalRecord, Extension, NewGrant, NewRequest, Refusal, RequestChange, RequestItem,
    RequestRecord, RequestView, ResourceRecord, StoreError,
};

/// Who is acting.
#[derive(Debug, Clone)]
pub struct Actor {
    pub email: String,
    pub admin: bool,
}

/// A new request as the caller gave it.
#[derive(Debug, Clone)]
pub struct Ask {
    pub items: Vec<RequestItem>,
    pub duration: Option<Duration>,
    pub justification: String,
}

/// The outcome of asking.
#[derive(Debug, Clone)]
pub struct Asked {
    pub view: RequestView,
    /// The caller already held this access; `view` is the request that was extended.
    pub extended: bool,
}

fn invalid(message: String) -> StoreError {
    StoreError::Refused(Refusal::InvalidArgument(message))
}

fn precondition(message: String) -> StoreError {
    StoreError::Refused(Refusal::FailedPrecondition(message))
}

pub(super) fn to_jiff(at: DateTime<Utc>) -> jiff::Timestamp {
    jiff::Timestamp::from_microsecond(at.timestamp_micros()).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// SHA-256 over what an approval approves: requester, items (sorted) and duration. Changing any of
/// them makes a different digest, which voids approvals given for the old one.
pub fn request_digest(
    requester: &str,
    items: &[RequestItem],
    duration_secs: Option<i64>,
) -> String {
    let mut sorted: Vec<&RequestItem> = items.iter().collect();
    sorted.sort_by(|a, b| (&a.resource_id, &a.permission).cmp(&(&b.resource_id, &b.permission)));
    let canonical = serde_json::json!({
        "requester": requester.to_lowercase(),
        "items": sorted,
        "duration_secs": duration_secs,
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Checks the items and finds their resources; every problem is named with its field.
fn check_items(ask: &Ask, found: &[ResourceRecord]) -> Result<Vec<RequestItem>, StoreError> {
    if ask.items.is_empty() {
        return Err(invalid(
            "items: at least one (resource, permission) is required".into(),
        ));
    }
    if ask.duration.is_some_and(|d| d.is_zero()) {
        return Err(invalid("duration: must be longer than zero".into()));
    }
    let mut problems = Vec::new();
    let mut items: Vec<RequestItem> = Vec::new();
    for (i, item) in ask.items.iter().enumerate() {
        if item.resource_id.trim().is_empty() {
            problems.push(format!("items[{i}].resource_id: must not be empty"));
        } else if !found.iter().any(|r| r.id == item.resource_id) {
            problems.push(format!(
                "items[{i}].resource_id: no resource with id {:?} (see `latch resources list`)",
                item.resource_id
            ));
        }
        if item.permission.trim().is_empty() {
            problems.push(format!("items[{i}].permission: must not be empty"));
        }
        if !items.contains(item) {
            items.push(item.clone());
        }
    }
    if problems.is_empty() {
        Ok(items)
    } else {
        Err(invalid(crate::problems::summary(&problems)))
    }
}

/// The items as the engine sees them, with their resources.
fn access_items(items: &[RequestItem], resources: &[ResourceRecord]) -> Vec<AccessItem> {
    items
        .iter()
        .filter_map(|item| {
            let resource = resources.iter().find(|r| r.id == item.resource_id)?;
            Some(AccessItem {
                resource: resource.to_engine(),
                permission: item.permission.clone(),
            })
        })
        .collect()
}

/// One grant per decided item.
fn grants_for(requester: &str, decision: &Decision, resources: &[ResourceRecord]) -> Vec<NewGrant> {
    decision
        .items
        .iter()
        .filter_map(|item| {
            let flow = item.flow.clone()?;
            let resource_type = resources
                .iter()
                .find(|r| r.id == item.resource_id)
                .map(|r| r.resource_type.clone())
                .unwrap_or_default();
            Some(NewGrant {
                identity: requester.to_lowercase(),
                integration: item.integration.clone(),
                resource_id: item.resource_id.clone(),
                resource_type,
                permission: item.permission.clone(),
                flow,
                duration_secs: decision.duration.map(secs),
            })
        })
        .collect()
}

/// The chosen flows' shortest maximum duration: no extension may go past it.
fn max_duration(context: &Context, flows: &[FlowRef]) -> Option<Duration> {
    let engine = &context.engine;
    flows
        .iter()
        .filter_map(|wanted| {
            engine
                .flows()
                .find(|(spec, _)| spec.name == wanted.name)
                .and_then(|(spec, _)| spec.duration.map(|d| d.max))
        })
        .min()
}

fn chosen_flows(decision: &Decision) -> Vec<FlowRef> {
    let mut flows: Vec<FlowRef> = decision
        .items
        .iter()
        .filter_map(|item| item.flow.clone())
        .collect();
    flows.sort();
    flows.dedup();
    flows
}

/// The decision stored with a request.
pub fn stored_decision(request: &RequestRecord) -> Result<Decision, StoreError> {
    serde_json::from_str(&request.decision)
        .map_err(|err| StoreError::corrupt(format!("request {} decision", request.id), err))
}

impl Lifecycle {
    async fn resources_of(&self, items: &[RequestItem]) -> Result<Vec<ResourceRecord>, StoreError> {
        let mut ids: Vec<String> = items.iter().map(|i| i.resource_id.clone()).collect();
        ids.sort();
        ids.dedup();
        self.store.resources_by_id(&ids).await
    }

    /// The resources `items` name, through the inventory cache of `context`.
    async fn cached_resources(
        &self,
        context: &Context,
        items: &[RequestItem],
    ) -> Result<Vec<ResourceRecord>, StoreError> {
        let mut ids: Vec<String> = items.iter().map(|i| i.resource_id.clone()).collect();
        ids.sort();
        ids.dedup();
        self.context.resources(context, &ids).await
    }

    /// Decides and stores a new request; extends held access instead where the flow allows it.
    pub async fn create(
        &self,
        actor: &Actor,
        ask: Ask,
        now: DateTime<Utc>,
    ) -> Result<Asked, StoreError> {
        // A flow may change between deciding and writing; the store notices, and a retry on
        // fresh flows settles it.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.create_once(actor, &ask, now).await {
                Err(StoreError::Conflict(_)) if attempts < 3 => continue,
                other => return other,
            }
        }
    }

    async fn create_once(
        &self,
        actor: &Actor,
        ask: &Ask,
        now: DateTime<Utc>,
    ) -> Result<Asked, StoreError> {
        let context = self.context.current().await?;
        let resources = &self.cached_resources(&context, &ask.items).await?;
        let items = &check_items(ask, resources)?;
        let at = to_jiff(now);
        let justification = ask.justification.trim();
        let decision = context.engine.decide(&DecisionRequest {
            requester: context.requester(&actor.email, at),
            items: access_items(items, resources),
            duration: ask.duration,
            justification: (!justification.is_empty()).then(|| justification.to_owned()),
            now: at,
        });
        let flows = chosen_flows(&decision);
        let requester = actor.email.to_lowercase();
        let duration_secs = decision.duration.map(secs);
        let state = match decision.outcome {
            Outcome::Deny => RequestState::Denied,
            Outcome::NeedsApproval => RequestState::Pending,
            Outcome::AllowAuto => RequestState::Approved,
        };
        let digest = request_digest(&requester, items, duration_secs);
        let end_reason = (state == RequestState::Denied).then(|| {
            decision
                .reasons
                .iter()
                .map(|r| r.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        });
        let audit_details = serde_json::json!({
            "requester": requester,
            "items": items,
            "outcome": decision.outcome.as_str(),
            "state": state.as_str(),
            "reasons": decision.reasons.iter().map(|r| r.code.as_str()).collect::<Vec<_>>(),
            "flows": flows,
            "digest": digest,
            "inputs": decision.inputs,
        });
        let new = NewRequest {
            grants: if state == RequestState::Approved {
                grants_for(&requester, &decision, resources)
            } else {
                Vec::new()
            },
            record: RequestRecord {
                id: uuid::Uuid::now_v7().to_string(),
                requester,
                state,
                items: items.to_vec(),
                requested_duration_secs: ask.duration.map(secs),
                duration_secs,
                justification: justification.to_owned(),
                outcome: decision.outcome.as_str().to_owned(),
                decision: serde_json::to_string(&decision)
                    .map_err(|err| StoreError::corrupt("decision", err))?,
                digest,
                created_at: now,
                updated_at: now,
                pending_expires_at: (state == RequestState::Pending).then(|| {
                    now + chrono::Duration::from_std(self.settings.pending_ttl)
                        .unwrap_or(chrono::Duration::days(1))
                }),
                activated_at: None,
                expires_at: None,
                end_reason,
            },
            // Approved automatically: asking again for held access extends it, within the max.
            extension: (decision.outcome == Outcome::AllowAuto).then(|| Extension {
                wanted_secs: duration_secs.unwrap_or_default(),
                max_secs: max_duration(&context, &flows).map(secs),
            }),
            flows,
            audit_details,
        };
        let created = self.writer.write(new).await?;
        metrics::counter!("latch_requests_created_total", "outcome" => decision.outcome.as_str())
            .increment(1);
        self.wake_sweeper();
        Ok(Asked {
            view: created.view,
            extended: created.extended,
        })
    }

    /// Loads what approval-time checks need: the request's resources and the directory.
    async fn approval_facts(&self, id: &str) -> Result<(Vec<ResourceRecord>, Context), StoreError> {
        let view = self.get(id).await?;
        let resources = self.resources_of(&view.request.items).await?;
        Ok((resources, self.context.current().await?))
    }

    /// Records `actor`'s approval; when it completes the plan, the grants are sent at once.
    pub async fn approve(
        &self,
        actor: &Actor,
        id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<RequestView, StoreError> {
        let (resources, context) = self.approval_facts(id).await?;
        let approvers = self.approvers(&context, &resources).await?;
        let at = to_jiff(now);
        let view = self
            .store
            .change_request(id, &actor.email, now, &|view| {
                let plan = pending_plan(view, &actor.email)?;
                plan.eligibility(&actor.email, &approvers, at)
                    .map_err(|not| Refusal::PermissionDenied(not.message))?;
                // Only approvals given for the request as it is now count.
                let mut given: Vec<String> = view
                    .approvals
                    .iter()
                    .filter(|a| a.verdict == "approve" && a.request_digest == view.request.digest)
                    .map(|a| a.approver.clone())
                    .collect();
                given.push(actor.email.clone());
                let status = plan.evaluate(&given, &approvers, at);
                let decision = stored_decision(&view.request)
                    .map_err(|e| Refusal::FailedPrecondition(e.to_string()))?;
                Ok(RequestChange::Approve {
                    approval: answer(view, actor, "approve", reason, now),
                    completes: status.satisfied,
                    grants: grants_for(&view.request.requester, &decision, &resources),
                })
            })
            .await?;
        self.wake_sweeper();
        Ok(view)
    }

    /// Denies a pending request; any eligible approver may.
    pub async fn deny(
        &self,
        actor: &Actor,
        id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<RequestView, StoreError> {
        if reason.trim().is_empty() {
            return Err(invalid(
                "reason: a reason is required to deny a request".into(),
            ));
        }
        let (resources, context) = self.approval_facts(id).await?;
        let approvers = self.approvers(&context, &resources).await?;
        let at = to_jiff(now);
        self.store
            .change_request(id, &actor.email, now, &|view| {
                let plan = pending_plan(view, &actor.email)?;
                plan.eligibility(&actor.email, &approvers, at)
                    .map_err(|not| Refusal::PermissionDenied(not.message))?;
                Ok(RequestChange::Deny {
                    approval: answer(view, actor, "deny", reason, now),
                })
            })
            .await
    }

    /// Withdraws a pending or approved request; only its requester may.
    pub async fn cancel(
        &self,
        actor: &Actor,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<RequestView, StoreError> {
        self.store
            .change_request(id, &actor.email, now, &|view| {
                let request = &view.request;
                if !same_email(&request.requester, &actor.email) {
                    return Err(Refusal::PermissionDenied(format!(
                        "only the requester ({}) may cancel request {}",
                        request.requester, request.id
                    )));
                }
                if !matches!(
                    request.state,
                    RequestState::Pending | RequestState::Approved
                ) {
                    return Err(Refusal::FailedPrecondition(format!(
                        "request {} is {}; only pending or approved requests can be cancelled{}",
                        request.id,
                        request.state,
                        if request.state.is_terminal() {
                            ""
                        } else {
                            " (use `latch revoke` to end granted access)"
                        }
                    )));
                }
                Ok(RequestChange::Cancel)
            })
            .await
    }

    /// Ends granted access early: the requester, an admin, or an approver of the request may.
    pub async fn revoke(
        &self,
        actor: &Actor,
        id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<RequestView, StoreError> {
        let (resources, context) = self.approval_facts(id).await?;
        let approvers = self.approvers(&context, &resources).await?;
        let at = to_jiff(now);
        let reason = if reason.trim().is_empty() {
            format!("revoked by {}", actor.email)
        } else {
            format!("revoked by {}: {}", actor.email, reason.trim())
        };
        let view = self
            .store
            .change_request(id, &actor.email, now, &|view| {
                let request = &view.request;
                let is_requester = same_email(&request.requester, &actor.email);
                let is_approver = || {
                    stored_decision(request)
                        .ok()
                        .and_then(|d| d.approval)
                        .is_some_and(|plan| plan.eligibility(&actor.email, &approvers, at).is_ok())
                };
                if !(is_requester || actor.admin || is_approver()) {
                    return Err(Refusal::PermissionDenied(format!(
                        "{} may not revoke request {}: only its requester, an admin or one of its approvers may",
                        actor.email, request.id
                    )));
                }
                if !matches!(request.state, RequestState::Granting | RequestState::Active) {
                    return Err(Refusal::FailedPrecondition(format!(
                        "request {} is {}; only granting or active access can be revoked",
                        request.id, request.state
                    )));
                }
                Ok(RequestChange::Revoke { reason: reason.clone() })
            })
            .await?;
        self.commands_written();
        Ok(view)
    }

    /// Asks for `more` time on active access, through the same flows: decided again for the
    /// longer total, and never past the flows' maximum.
    pub async fn extend(
        &self,
        actor: &Actor,
        id: &str,
        more: Duration,
        justification: &str,
        now: DateTime<Utc>,
    ) -> Result<RequestView, StoreError> {
        if more.is_zero() {
            return Err(invalid("duration: must be longer than zero".into()));
        }
        let view = self.get(id).await?;
        let request = &view.request;
        if !same_email(&request.requester, &actor.email) {
            return Err(StoreError::Refused(Refusal::PermissionDenied(format!(
                "only the requester ({}) may extend request {}",
                request.requester, request.id
            ))));
        }
        let (Some(activated), Some(expires)) = (request.activated_at, request.expires_at) else {
            return Err(precondition(format!(
                "request {} is {}; only active access can be extended",
                request.id, request.state
            )));
        };
        let total = (expires - activated).to_std().unwrap_or_default() + more;
        let resources = self.resources_of(&request.items).await?;
        let context = self.context.current().await?;
        let at = to_jiff(now);
        let decision = context.engine.decide(&DecisionRequest {
            requester: context.requester(&actor.email, at),
            items: access_items(&request.items, &resources),
            duration: Some(total),
            justification: Some(justification.trim())
                .filter(|j| !j.is_empty())
                .map(str::to_owned)
                .or_else(|| {
                    (!request.justification.is_empty()).then(|| request.justification.clone())
                }),
            now: at,
        });
        match decision.outcome {
            Outcome::Deny => {
                let reasons: Vec<String> =
                    decision.reasons.iter().map(|r| r.message.clone()).collect();
                return Err(precondition(format!(
                    "the flows do not allow extending request {} to {} in total: {}",
                    request.id,
                    humantime::format_duration(total),
                    reasons.join("; ")
                )));
            }
            Outcome::NeedsApproval => {
                return Err(precondition(format!(
                    "the flows need approval for more time on request {}: ask with `latch request` for the \
                     same access; once approved, the new request continues it",
                    request.id
                )));
            }
            Outcome::AllowAuto => {}
        }
        let until = activated + chrono::Duration::seconds(secs(total));
        let details = serde_json::json!({ "more_secs": secs(more), "total_secs": secs(total) });
        let view = self
            .store
            .change_request(id, &actor.email, now, &|view| {
                if view.request.state != RequestState::Active {
                    return Err(Refusal::FailedPrecondition(format!(
                        "request {} is {}; only active access can be extended",
                        view.request.id, view.request.state
                    )));
                }
                Ok(RequestChange::Extend {
                    expires_at: until,
                    details: details.clone(),
                })
            })
            .await?;
        self.wake_sweeper();
        Ok(view)
    }

    /// Who may approve, for these resources: the directory, resource owners and the owners of
    /// their integrations.
    pub async fn approvers<'c>(
        &self,
        context: &'c Context,
        resources: &[ResourceRecord],
    ) -> Result<Approvers<'c>, StoreError> {
        let names: std::collections::BTreeSet<&str> =
            resources.iter().map(|r| r.integration.as_str()).collect();
        let mut integrations = Vec::new();
        for name in names {
            if let Some(record) = self.store.integration(name, Utc::now()).await? {
                integrations.push(record);
            }
        }
        Ok(Approvers::new(&context.directory, resources).with_integrations(&integrations))
    }

    /// One request with its approvals and grants.
    pub async fn get(&self, id: &str) -> Result<RequestView, StoreError> {
        self.store.get_request(id).await?.ok_or_else(|| {
            StoreError::Refused(Refusal::NotFound(format!("no request with id {id:?}")))
        })
    }

    /// Whether `user` may approve the pending request `view` now.
    pub async fn may_approve(
        &self,
        view: &RequestView,
        context: &Context,
        user: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if view.request.state != RequestState::Pending {
            return Ok(false);
        }
        let already = view.approvals.iter().any(|a| same_email(&a.approver, user));
        let resources = self.resources_of(&view.request.items).await?;
        let approvers = self.approvers(context, &resources).await?;
        Ok(!already
            && stored_decision(&view.request)
                .ok()
                .and_then(|d| d.approval)
                .is_some_and(|plan| plan.eligibility(user, &approvers, to_jiff(now)).is_ok()))
    }

    /// The current context, for callers that judge several requests at once.
    pub async fn context(&self) -> Result<Context, StoreError> {
        self.context.current().await
    }
}

/// The approval plan of a request that is waiting for approvals, or why there is none to act on.
fn pending_plan(view: &RequestView, actor: &str) -> Result<ApprovalPlan, Refusal> {
    let request = &view.request;
    if request.state != RequestState::Pending {
        return Err(Refusal::FailedPrecondition(format!(
            "request {} is {}, not pending: it is already decided",
            request.id, request.state
        )));
    }
    if view
        .approvals
        .iter()
        .any(|a| same_email(&a.approver, actor))
    {
        return Err(Refusal::FailedPrecondition(format!(
            "{actor} has already answered request {}",
            request.id
        )));
    }
    stored_decision(request)
        .map_err(|err| Refusal::FailedPrecondition(err.to_string()))?
        .approval
        .ok_or_else(|| {
            Refusal::FailedPrecondition(format!("request {} needs no approval", request.id))
        })
}

fn answer(
    view: &RequestView,
    actor: &Actor,
    verdict: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> ApprovalRecord {
    ApprovalRecord {
        request_id: view.request.id.clone(),
        approver: actor.email.to_lowercase(),
        verdict: verdict.to_owned(),
        reason: reason.trim().to_owned(),
        request_digest: view.request.digest.clone(),
        at: crate::store::stored_time(now),
    }
}
