//! The decision engine: decides access requests from access flows. Pure: no I/O, no clock (the
//! caller passes the time), no lookups (the caller passes the requester's groups, shifts and the
//! resources; approval-time membership comes through [`ApproverDirectory`]).
//!
//! - [`Engine::decide`] decides a [`DecisionRequest`] into a [`Decision`]: allow automatically,
//!   needs approval (with an [`ApprovalPlan`]), or deny, with reasons and the inputs it used.
//! - [`SharedEngine`] swaps in a new engine atomically when flows change.
//! - [`reference::decide`] is the same rules without the index, for tests.
//! - [`ApprovalPlan::evaluate`] and [`ApprovalPlan::eligibility`] judge approvals later on.
//! - [`entitlements`] and [`diff`] serve automatic flows.
//!
//! The rules are written up in `docs/decision-engine.md`.

mod approval;
mod automatic;
mod choose;
mod compiled;
mod directory;
mod engine;
mod evaluate;
mod identity;
mod index;
mod input;
mod matching;
mod recheck;
mod record;
pub mod reference;
mod requester_keys;
mod serde_time;
mod text;
mod timeframe;

#[cfg(test)]
mod tests;

pub use approval::{
    ApprovalPlan, ApprovalStatus, IgnoredApproval, NotEligible, NotEligibleCode, OpenGroup,
    PlanGroup, PlanPart,
};
pub use automatic::{Entitlement, EntitlementDiff, diff, entitlements};
pub use directory::{ApproverDirectory, StaticDirectory};
pub use engine::{Engine, SharedEngine};
pub use identity::same_email;
pub use input::{AccessItem, DecisionRequest, Requester, Resource, VersionedFlow};
pub use recheck::still_allowed;
pub use record::{
    Decision, FlowRef, FrozenInputs, FrozenItem, ItemDecision, Outcome, Reason, ReasonCode,
};
