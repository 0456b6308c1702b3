//! Flows prepared for deciding: the current version of each name, its requester rule turned into
//! hash sets, its time zone looked up, and its rank for the choice rule computed once.

use std::sync::Arc;

use crate::flow::{ApprovalMode, DurationPolicy, FlowKind, FlowSpec};

use super::choose::ChoiceRank;
use super::input::VersionedFlow;
use super::matching::RequesterRule;
use super::record::FlowRef;
use super::timeframe::CompiledTimeframe;

/// One flow version, ready for deciding.
#[derive(Debug, Clone)]
pub(crate) struct CompiledFlow {
    pub(crate) spec: Arc<FlowSpec>,
    pub(crate) version: u32,
    pub(crate) requesters: RequesterRule,
    pub(crate) timeframe: Option<CompiledTimeframe>,
    pub(crate) rank: ChoiceRank,
    /// The duration policy with `default` clamped to `max`; present when `requestable`.
    pub(crate) duration: DurationPolicy,
    /// Whether requests can be decided under this flow (see [`requestable`]).
    pub(crate) requestable: bool,
    /// Whether any target's selectors name tags or ancestors: only then does the record need
    /// resource facts from this flow.
    pub(crate) mentions_resource_facts: bool,
}

impl CompiledFlow {
    pub(crate) fn new(spec: Arc<FlowSpec>, version: u32) -> CompiledFlow {
        let duration = spec.duration.map_or(
            DurationPolicy {
                default: std::time::Duration::ZERO,
                max: std::time::Duration::ZERO,
            },
            |policy| DurationPolicy {
                default: policy.default.min(policy.max),
                max: policy.max,
            },
        );
        CompiledFlow {
            requesters: RequesterRule::new(&spec.requesters),
            timeframe: spec.settings.timeframe.as_ref().map(CompiledTimeframe::new),
            rank: ChoiceRank::of(&spec),
            duration,
            requestable: requestable(&spec),
            mentions_resource_facts: spec.targets.iter().any(|target| {
                [&target.include, &target.exclude].iter().any(|selector| {
                    !selector.tags.is_empty() || !selector.descendants_of.is_empty()
                })
            }),
            version,
            spec,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.spec.name
    }

    pub(crate) fn flow_ref(&self) -> FlowRef {
        FlowRef {
            name: self.spec.name.clone(),
            version: self.version,
        }
    }

    /// Whether the flow grants without approval.
    pub(crate) fn is_auto(&self) -> bool {
        self.rank.auto
    }
}

/// Whether a request can be decided under a flow. Automatic flows grant by themselves and are never
/// chosen for requests. A self-serve flow missing what validation requires (a duration, an approval
/// policy, approver groups for `all_of`/`any_of`) is skipped rather than guessed at: deny by default.
fn requestable(spec: &FlowSpec) -> bool {
    let duration_ok = spec.duration.is_some_and(|d| !d.max.is_zero());
    let approval_ok = spec
        .approval
        .as_ref()
        .is_some_and(|approval| match approval.mode {
            ApprovalMode::Auto => approval.groups.is_empty(),
            ApprovalMode::AllOf | ApprovalMode::AnyOf => {
                !approval.groups.is_empty()
                    && approval
                        .groups
                        .iter()
                        .all(|group| !group.approvers.is_empty())
            }
        });
    spec.kind == FlowKind::SelfServe && duration_ok && approval_ok
}

/// Positions of the current version of each flow name (the highest version; on a tie, the first
/// given), ordered by name. Both evaluators work on exactly this list, in this order, so "flow
/// index" order is name order everywhere.
pub(crate) fn current_versions(flows: &[VersionedFlow]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..flows.len()).collect();
    order.sort_by(|&a, &b| {
        let (fa, fb) = (&flows[a], &flows[b]);
        fa.spec
            .name
            .cmp(&fb.spec.name)
            .then(fb.version.cmp(&fa.version))
            .then(a.cmp(&b))
    });
    order.dedup_by(|later, earlier| flows[*later].spec.name == flows[*earlier].spec.name);
    order
}

/// Compiles the current versions of `flows`, cloning each spec once.
pub(crate) fn compile_borrowed(flows: &[VersionedFlow]) -> Vec<CompiledFlow> {
    current_versions(flows)
        .into_iter()
        .map(|i| CompiledFlow::new(Arc::new(flows[i].spec.clone()), flows[i].version))
        .collect()
}

/// Compiles the current versions of `flows`, moving the specs (no copy).
pub(crate) fn compile_owned(flows: Vec<VersionedFlow>) -> Vec<CompiledFlow> {
    let order = current_versions(&flows);
    let mut slots: Vec<Option<VersionedFlow>> = flows.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|i| slots[i].take())
        .map(|flow| CompiledFlow::new(Arc::new(flow.spec), flow.version))
        .collect()
}
