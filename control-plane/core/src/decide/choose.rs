//! The choice rule: when several flows cover a pair, which one is used.
//!
//! The rule picks among the flows that cover the pair and, when a duration is requested, whose
//! maximum allows it (a flow that cannot grant the pair as asked is no candidate). In order: a flow that approves automatically before one that needs approval; then the fewest
//! approvals needed (`all_of`: the sum of the groups' `min`; `any_of`: the smallest group `min`);
//! then the longest maximum duration; then the name. Names are unique among current flows, so the
//! rule always picks exactly one, the same one every time.

use std::cmp::Reverse;
use std::time::Duration;

use crate::flow::{ApprovalMode, FlowSpec};

use super::compiled::CompiledFlow;
use super::text::flow_label;
use crate::text::format_duration;

/// What the choice rule compares, computed once per flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChoiceRank {
    /// Approves without anyone.
    pub(crate) auto: bool,
    /// Approvals needed at least: 0 for auto.
    pub(crate) approvals: u64,
    /// Longest duration the flow allows.
    pub(crate) max: Duration,
}

impl ChoiceRank {
    pub(crate) fn of(spec: &FlowSpec) -> ChoiceRank {
        let (auto, approvals) = match &spec.approval {
            None => (false, u64::MAX),
            Some(approval) => {
                // A `min` of 0 is refused by validation; counting it as 1 keeps the rank honest.
                let mins = approval
                    .groups
                    .iter()
                    .map(|group| u64::from(group.min.max(1)));
                match approval.mode {
                    ApprovalMode::Auto => (true, 0),
                    ApprovalMode::AllOf => (false, mins.sum()),
                    ApprovalMode::AnyOf => (false, mins.min().unwrap_or(u64::MAX)),
                }
            }
        };
        ChoiceRank {
            auto,
            approvals,
            max: spec.duration.map_or(Duration::ZERO, |d| d.max),
        }
    }
}

/// The sort key of the choice rule, best first: auto approval, fewest approvals, longest maximum.
/// Ties are broken by name, which callers get for free from flow positions: flows are kept in
/// name order (see `compiled::current_versions`), so sorting by `(key, position)` is the rule.
pub(crate) fn key(flow: &CompiledFlow) -> (bool, u64, Reverse<Duration>) {
    (!flow.rank.auto, flow.rank.approvals, Reverse(flow.rank.max))
}

/// Why `chosen` comes before `runner_up`: the first criterion of the rule that tells them apart.
pub(crate) fn why_before(chosen: &CompiledFlow, runner_up: &CompiledFlow) -> String {
    let other = format!("{:?}", runner_up.name());
    let (a, b) = (chosen.rank, runner_up.rank);
    if a.auto != b.auto {
        format!("it approves automatically and {other} needs approval")
    } else if a.approvals != b.approvals {
        format!(
            "it needs {} and {other} needs {}",
            approvals(a.approvals),
            b.approvals
        )
    } else if a.max != b.max {
        format!(
            "its maximum duration ({}) is longer than that of {other} ({})",
            format_duration(a.max),
            format_duration(b.max)
        )
    } else {
        format!("it ties with {other} on approvals and maximum duration and comes first by name")
    }
}

fn approvals(count: u64) -> String {
    if count == 1 {
        "1 approval".to_owned()
    } else {
        format!("{count} approvals")
    }
}

/// The `flow_chosen` message for a pair: the chosen flow, why, and the other candidates.
/// `ranked` holds every covering flow, best first.
pub(crate) fn explain(ranked: &[&CompiledFlow], pair: &str) -> String {
    let Some((chosen, others)) = ranked.split_first() else {
        return String::new();
    };
    let label = flow_label(chosen.name(), chosen.version);
    match others.first() {
        None => format!("flow {label} chosen for {pair}: it is the only flow that covers it"),
        Some(runner_up) => {
            let rest: Vec<String> = others
                .iter()
                .map(|flow| flow_label(flow.name(), flow.version))
                .collect();
            format!(
                "flow {label} chosen for {pair}: {}; other candidates: {}",
                why_before(chosen, runner_up),
                rest.join(", ")
            )
        }
    }
}
