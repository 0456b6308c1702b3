//! Conversions between store records and proto messages.

use chrono::{DateTime, Utc};
use latch_proto::v1 as pb;

use crate::store::{self, AuditEvent, StoredFlow, TokenRecord};

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos().try_into().unwrap_or(0),
    }
}

pub fn flow(flow: &StoredFlow) -> pb::AccessFlow {
    pb::AccessFlow {
        spec: Some(flow.spec.to_proto()),
        version: flow.version,
        digest: flow.digest.clone(),
        applied_at: Some(timestamp(flow.applied_at)),
        applied_by: flow.applied_by.clone(),
        deleted: flow.deleted,
    }
}

pub fn applied(applied: &store::AppliedFlow) -> pb::AppliedFlow {
    let outcome = match applied.outcome {
        store::ApplyOutcome::Created => pb::ApplyOutcome::Created,
        store::ApplyOutcome::Updated => pb::ApplyOutcome::Updated,
        store::ApplyOutcome::Unchanged => pb::ApplyOutcome::Unchanged,
    };
    pb::AppliedFlow {
        name: applied.name.clone(),
        version: applied.version,
        outcome: outcome.into(),
    }
}

pub fn token(token: &TokenRecord) -> pb::ApiToken {
    pb::ApiToken {
        id: token.id.clone(),
        user: token.user.clone(),
        admin: token.admin,
        description: token.description.clone(),
        created_at: Some(timestamp(token.created_at)),
        expires_at: token.expires_at.map(timestamp),
        revoked_at: token.revoked_at.map(timestamp),
        created_by: token.created_by.clone(),
    }
}

pub fn from_timestamp(ts: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

pub fn audit_event(event: &AuditEvent) -> pb::AuditEvent {
    pb::AuditEvent {
        seq: event.seq,
        at: Some(timestamp(event.at)),
        actor: event.actor.clone(),
        action: event.action.clone(),
        subject: event.subject.clone(),
        details_json: event.details.to_string(),
        prev_hash: event.prev_hash.clone(),
        hash: event.hash.clone(),
    }
}

fn duration_secs(secs: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: secs,
        nanos: 0,
    }
}

pub fn resource(resource: &store::ResourceRecord) -> pb::Resource {
    pb::Resource {
        id: resource.id.clone(),
        integration: resource.integration.clone(),
        r#type: resource.resource_type.clone(),
        name: resource.name.clone(),
        parent: resource.parent.clone().unwrap_or_default(),
        ancestors: resource.ancestors.clone(),
        tags: resource.tags.clone().into_iter().collect(),
        owners: resource.owners.clone(),
        source: resource.source.clone(),
        first_seen: Some(timestamp(resource.first_seen)),
        last_seen: Some(timestamp(resource.last_seen)),
    }
}

pub fn grant(grant: &store::GrantRecord) -> pb::Grant {
    pb::Grant {
        id: grant.id.clone(),
        request_id: grant.request_id.clone().unwrap_or_default(),
        identity: grant.identity.clone(),
        integration: grant.integration.clone(),
        resource_id: grant.resource_id.clone(),
        permission: grant.permission.clone(),
        flow: Some(pb::FlowVersionRef {
            name: grant.flow.name.clone(),
            version: grant.flow.version,
        }),
        state: grant.state.as_str().to_owned(),
        desired: grant.desired.clone(),
        observed: grant.observed.clone(),
        generation: u64::try_from(grant.generation).unwrap_or_default(),
        started_at: grant.started_at.map(timestamp),
        expires_at: grant.expires_at.map(timestamp),
        end_reason: grant.end_reason.clone().unwrap_or_default(),
    }
}

/// A request as the API shows it; `waiting_for` is computed by the caller (it needs the directory).
pub fn request(
    request: &store::RequestRecord,
    approvals: &[store::ApprovalRecord],
    grants: &[store::GrantRecord],
    waiting_for: Vec<String>,
) -> pb::AccessRequest {
    let decision = crate::lifecycle::stored_decision(request).ok();
    pb::AccessRequest {
        id: request.id.clone(),
        requester: request.requester.clone(),
        state: request.state.as_str().to_owned(),
        items: request
            .items
            .iter()
            .map(|item| pb::AccessItem {
                resource_id: item.resource_id.clone(),
                permission: item.permission.clone(),
            })
            .collect(),
        requested_duration: request.requested_duration_secs.map(duration_secs),
        duration: request.duration_secs.map(duration_secs),
        justification: request.justification.clone(),
        outcome: request.outcome.clone(),
        reasons: decision
            .as_ref()
            .map(|d| {
                d.reasons
                    .iter()
                    .map(|reason| pb::DecisionReason {
                        code: reason.code.as_str().to_owned(),
                        message: reason.message.clone(),
                        flow: reason.flow.clone().unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        flows: decision
            .as_ref()
            .map(|d| {
                let mut flows: Vec<pb::FlowVersionRef> = Vec::new();
                for flow in d.items.iter().filter_map(|i| i.flow.as_ref()) {
                    if !flows.iter().any(|f| f.name == flow.name) {
                        flows.push(pb::FlowVersionRef {
                            name: flow.name.clone(),
                            version: flow.version,
                        });
                    }
                }
                flows
            })
            .unwrap_or_default(),
        decision_json: request.decision.clone(),
        digest: request.digest.clone(),
        approvals: approvals
            .iter()
            .map(|a| pb::Approval {
                approver: a.approver.clone(),
                verdict: a.verdict.clone(),
                reason: a.reason.clone(),
                at: Some(timestamp(a.at)),
                request_digest: a.request_digest.clone(),
            })
            .collect(),
        waiting_for,
        grants: grants.iter().map(grant).collect(),
        created_at: Some(timestamp(request.created_at)),
        pending_expires_at: request.pending_expires_at.map(timestamp),
        activated_at: request.activated_at.map(timestamp),
        expires_at: request.expires_at.map(timestamp),
        end_reason: request.end_reason.clone().unwrap_or_default(),
        updated_at: Some(timestamp(request.updated_at)),
    }
}
