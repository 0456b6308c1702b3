//! The decision record: what was decided, why (in words and in stable codes), under which flow
//! versions, and a frozen copy of the inputs the decision used. It is stored as JSON next to the
//! request, so its serde form is part of the storage format: add fields, never rename them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::approval::ApprovalPlan;
use super::serde_time;

/// What the request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Granted without approval: every chosen flow approves automatically.
    AllowAuto,
    /// Granted once the [`ApprovalPlan`] is satisfied.
    NeedsApproval,
    /// Refused. Nothing is granted.
    Deny,
}

impl Outcome {
    /// The word stored and shown for this outcome.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::AllowAuto => "allow_auto",
            Outcome::NeedsApproval => "needs_approval",
            Outcome::Deny => "deny",
        }
    }
}

/// Stable machine codes for reasons. Clients branch on these, never on the message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// The request names no (resource, permission) pair.
    EmptyRequest,
    /// No flow covers a pair; the request is refused. Near misses follow as their own reasons.
    NoFlowCovers,
    /// A flow covers the pair, but the requester is not among its requesters (or is excepted).
    RequesterNotEligible,
    /// A flow's target would cover the pair, but its `exclude` names the resource.
    ResourceExcluded,
    /// A flow covers the pair, but not at this time of the week.
    OutsideTimeframe,
    /// A flow covers the pair, but requires a justification and none (or a blank one) was given.
    JustificationRequired,
    /// The requested duration is zero.
    InvalidDuration,
    /// No flow that covers a pair allows the requested duration.
    DurationAboveMax,
    /// Which flow was chosen for a pair, and why.
    FlowChosen,
    /// Every chosen flow approves automatically.
    AutoApproved,
    /// Approval is needed; the plan says by whom.
    ApprovalRequired,
}

impl ReasonCode {
    /// Every code, in the order they are documented.
    pub const ALL: [ReasonCode; 11] = [
        ReasonCode::EmptyRequest,
        ReasonCode::NoFlowCovers,
        ReasonCode::RequesterNotEligible,
        ReasonCode::ResourceExcluded,
        ReasonCode::OutsideTimeframe,
        ReasonCode::JustificationRequired,
        ReasonCode::InvalidDuration,
        ReasonCode::DurationAboveMax,
        ReasonCode::FlowChosen,
        ReasonCode::AutoApproved,
        ReasonCode::ApprovalRequired,
    ];

    /// The stable code, as stored and sent to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::EmptyRequest => "empty_request",
            ReasonCode::NoFlowCovers => "no_flow_covers",
            ReasonCode::RequesterNotEligible => "requester_not_eligible",
            ReasonCode::ResourceExcluded => "resource_excluded",
            ReasonCode::OutsideTimeframe => "outside_timeframe",
            ReasonCode::JustificationRequired => "justification_required",
            ReasonCode::InvalidDuration => "invalid_duration",
            ReasonCode::DurationAboveMax => "duration_above_max",
            ReasonCode::FlowChosen => "flow_chosen",
            ReasonCode::AutoApproved => "auto_approved",
            ReasonCode::ApprovalRequired => "approval_required",
        }
    }
}

/// One reason: a code for machines and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Stable code.
    pub code: ReasonCode,
    /// Human-readable explanation.
    pub message: String,
    /// Index of the request item the reason is about, if it is about one.
    pub item: Option<usize>,
    /// Name of the flow the reason is about, if it is about one.
    pub flow: Option<String>,
}

/// A flow version, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FlowRef {
    /// Flow name.
    pub name: String,
    /// Flow version used.
    pub version: u32,
}

/// The outcome for one (resource, permission) pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemDecision {
    /// Integration of the resource.
    pub integration: String,
    /// Resource id.
    pub resource_id: String,
    /// Permission asked for.
    pub permission: String,
    /// The flow chosen for this pair; `None` when no flow covers it.
    pub flow: Option<FlowRef>,
    /// Every flow that covers the pair and allows the requested duration, best first (the chosen
    /// one is the first).
    pub candidates: Vec<FlowRef>,
}

/// What one request item was, as far as the decision used it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrozenItem {
    /// Integration of the resource.
    pub integration: String,
    /// Resource type.
    pub resource_type: String,
    /// Resource id.
    pub resource_id: String,
    /// Resource name.
    pub resource_name: String,
    /// Permission asked for.
    pub permission: String,
    /// The resource's tags that a considered flow mentions (other tags played no part).
    pub tags: BTreeMap<String, String>,
    /// The resource's ancestors that a considered flow mentions in `descendants_of`.
    pub ancestors: BTreeSet<String>,
}

/// The inputs a decision used, frozen so the decision can be explained later even after groups,
/// shifts or tags have changed.
///
/// "Considered flows" are the flows that cover a pair, and, for a pair no flow covers, the flows
/// that came close (a target matched the resource and permission). Facts no considered flow
/// mentions played no part and are not copied, so an unrelated change (say, a new tag no flow
/// mentions) leaves the record identical.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrozenInputs {
    /// The requester's email, as given.
    pub requester: String,
    /// The requester's groups that a considered flow's requesters mention.
    pub groups: BTreeSet<String>,
    /// The on-call schedules the requester was on shift in that a considered flow mentions.
    pub on_call: BTreeSet<String>,
    /// The requester's manager, when the approval plan asks for the manager.
    pub manager: Option<String>,
    /// The request items.
    pub items: Vec<FrozenItem>,
    /// The duration asked for, if any.
    pub requested_duration: Option<Duration>,
    /// The justification given, if any.
    pub justification: Option<String>,
    /// The time of the decision.
    #[serde(with = "serde_time")]
    pub now: jiff::Timestamp,
}

/// The result of deciding a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// What the request gets.
    pub outcome: Outcome,
    /// Why, in order: per item (deny reasons or the chosen flow), then an invalid duration, then
    /// the outcome.
    pub reasons: Vec<Reason>,
    /// One entry per request item, in request order.
    pub items: Vec<ItemDecision>,
    /// How long the grant lasts; `None` when denied.
    pub duration: Option<Duration>,
    /// Who must approve; `Some` only when the outcome is [`Outcome::NeedsApproval`].
    pub approval: Option<ApprovalPlan>,
    /// The inputs used.
    pub inputs: FrozenInputs,
}

impl Decision {
    /// Whether any reason carries `code`.
    pub fn has_reason(&self, code: ReasonCode) -> bool {
        self.reasons.iter().any(|reason| reason.code == code)
    }

    /// The reasons that carry `code`.
    pub fn reasons_with(&self, code: ReasonCode) -> impl Iterator<Item = &Reason> {
        self.reasons
            .iter()
            .filter(move |reason| reason.code == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_stable_words() {
        for code in ReasonCode::ALL {
            let json = serde_json::to_string(&code).expect("codes serialize");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        for outcome in [Outcome::AllowAuto, Outcome::NeedsApproval, Outcome::Deny] {
            let json = serde_json::to_string(&outcome).expect("outcomes serialize");
            assert_eq!(json, format!("\"{}\"", outcome.as_str()));
        }
    }
}
