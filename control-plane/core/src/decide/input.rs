//! What a decision is made from: the requester, the (resource, permission) pairs, the duration,
//! the justification and the time. The caller gathers these (from the store and the identity
//! sync); the engine never looks anything up itself.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::flow::FlowSpec;

use super::serde_time;

/// The person asking, as known at request time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    /// Email address; compared case-insensitively everywhere.
    pub email: String,
    /// Every group the requester belongs to, nested groups included (the caller resolves nesting).
    pub groups: BTreeSet<String>,
    /// The requester's manager, by email, when the identity provider knows one.
    pub manager: Option<String>,
    /// On-call schedules (`provider/schedule`) the requester is on shift in right now.
    pub on_call: BTreeSet<String>,
    /// The requester's IANA time zone, when known. Informational: timeframes carry their own zone.
    pub time_zone: Option<String>,
}

/// A resource access can be granted on, as synced from its integration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Name of the integration the resource comes from.
    pub integration: String,
    /// Resource type, for example `aws.account`.
    pub resource_type: String,
    /// Stable id (ARN, GCP full resource name, Azure resource id, `postgres://host/db`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Tags (labels) on the resource.
    pub tags: BTreeMap<String, String>,
    /// Ids of the resource's ancestors in its hierarchy (parent, grandparent, ...), not itself.
    pub ancestors: Vec<String>,
    /// Owners as synced. Approval-time ownership comes from the
    /// [`ApproverDirectory`](super::ApproverDirectory); this copy is informational.
    pub owners: Vec<String>,
}

/// One permission on one resource: the unit a flow covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessItem {
    /// The resource.
    pub resource: Resource,
    /// The permission asked for, as the flow's targets list it.
    pub permission: String,
}

/// A request to decide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRequest {
    /// Who asks.
    pub requester: Requester,
    /// What is asked for; every pair must be covered by a flow.
    pub items: Vec<AccessItem>,
    /// How long; `None` takes the flows' default.
    pub duration: Option<Duration>,
    /// Why; blank counts as none.
    pub justification: Option<String>,
    /// The time of the request, against which timeframes are checked.
    #[serde(with = "serde_time")]
    pub now: jiff::Timestamp,
}

/// One version of a flow. The engine only uses the highest version of each name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionedFlow {
    /// The flow's content.
    pub spec: FlowSpec,
    /// Its version number; higher is newer.
    pub version: u32,
}
