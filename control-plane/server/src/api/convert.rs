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
