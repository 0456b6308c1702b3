//! The decision itself, shared by the indexed engine and the reference evaluator. They differ only
//! in the [`Candidates`] they hand in: the index's few targets for each pair and the flows the
//! requester may use, or every target of every flow. Everything after that (matching, the choice
//! rule, duration, the approval plan, the record) is this one code path.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

use crate::flow::{Approver, Justification};

use super::approval::ApprovalPlan;
use super::choose;
use super::compiled::CompiledFlow;
use super::identity::email_key;
use super::index::TargetRef;
use super::input::{AccessItem, DecisionRequest, Requester};
use super::matching::{FactKind, RequesterFit, TargetFit, target_fit};
use super::record::{
    Decision, FrozenInputs, FrozenItem, ItemDecision, Outcome, Reason, ReasonCode,
};
use super::text::{describe_item, describe_policy, flow_label};
use super::timeframe::Window;
use crate::text::format_duration;

/// How many near misses a refused pair reports. The explanation pass stops after one more (to know
/// whether there are more): with many flows related to a pair, explaining a refusal would otherwise
/// cost time in proportion to all of them.
const MAX_NEAR_MISSES: usize = 5;

/// How many other candidates a `flow_chosen` message names; `ItemDecision::candidates` has all.
const MAX_NAMED_CANDIDATES: usize = 5;

/// The flow-wide conditions, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Open,
    NotListed,
    Excepted,
    OutsideTimeframe,
    NoJustification,
}

/// Why a flow that relates to a pair does not cover it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Miss {
    /// Every target that includes the resource also excludes it.
    Excluded,
    /// A flow-wide condition failed.
    Gate(Gate),
}

/// Hashes flow positions for the per-decision memo. Keys are small distinct integers chosen by the
/// engine, not by users, so a multiplicative hash is enough and much cheaper than SipHash.
#[derive(Default)]
struct FlowPositionHasher(u64);

impl Hasher for FlowPositionHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type GateMemo = HashMap<u32, Gate, BuildHasherDefault<FlowPositionHasher>>;

/// Per-decision state: the request, the requester's canonical email, and the flow-wide checks
/// already done (each flow is checked at most once per decision however many pairs it relates to).
struct Ctx<'a> {
    flows: &'a [CompiledFlow],
    req: &'a DecisionRequest,
    email: String,
    justified: bool,
    gates: GateMemo,
    groups: BTreeSet<String>,
    on_call: BTreeSet<String>,
}

impl Ctx<'_> {
    fn gate(&mut self, f: u32) -> Gate {
        // A flow is met at most once per item, so the memo only pays with several items.
        let memo = self.req.items.len() > 1;
        if memo && let Some(gate) = self.gates.get(&f) {
            return *gate;
        }
        let flow = &self.flows[f as usize];
        let gate = match flow.requesters.fit(&self.email, &self.req.requester) {
            RequesterFit::NotListed => Gate::NotListed,
            RequesterFit::Excepted => Gate::Excepted,
            RequesterFit::Eligible => {
                let open = flow
                    .timeframe
                    .as_ref()
                    .is_none_or(|frame| frame.check(self.req.now) == Window::Open);
                if !open {
                    Gate::OutsideTimeframe
                } else if flow.spec.settings.justification == Justification::Required
                    && !self.justified
                {
                    Gate::NoJustification
                } else {
                    Gate::Open
                }
            }
        };
        if memo {
            self.gates.insert(f, gate);
        }
        gate
    }

    /// Copies the requester facts `flow` used into the record.
    fn record_requester_facts(&mut self, flow: &CompiledFlow) {
        let requester = &self.req.requester;
        flow.requesters
            .used_facts(&requester.groups, &requester.on_call, |kind, name| {
                let set = match kind {
                    FactKind::Group => &mut self.groups,
                    FactKind::Schedule => &mut self.on_call,
                };
                if !set.contains(name) {
                    set.insert(name.to_owned());
                }
            });
    }
}

/// Copies the resource facts `flow`'s related targets used into the record: tags their selectors
/// name and ancestors their `descendants_of` name. Walks all the flow's targets, not just the
/// candidates, so the record does not depend on how candidates were found.
fn record_resource_facts(flow: &CompiledFlow, item: &AccessItem, frozen: &mut FrozenItem) {
    if !flow.mentions_resource_facts {
        return;
    }
    let resource = &item.resource;
    for target in &flow.spec.targets {
        if target_fit(target, resource, &item.permission) == TargetFit::Unrelated {
            continue;
        }
        for selector in [&target.include, &target.exclude] {
            for key in selector.tags.keys() {
                if let Some(value) = resource.tags.get(key)
                    && !frozen.tags.contains_key(key)
                {
                    frozen.tags.insert(key.clone(), value.clone());
                }
            }
            for ancestor in &selector.descendants_of {
                if resource.ancestors.contains(ancestor) && !frozen.ancestors.contains(ancestor) {
                    frozen.ancestors.insert(ancestor.clone());
                }
            }
        }
    }
}

fn freeze_item(item: &AccessItem) -> FrozenItem {
    FrozenItem {
        integration: item.resource.integration.clone(),
        resource_type: item.resource.resource_type.clone(),
        resource_id: item.resource.id.clone(),
        resource_name: item.resource.name.clone(),
        permission: item.permission.clone(),
        tags: BTreeMap::new(),
        ancestors: BTreeSet::new(),
    }
}

fn reason(code: ReasonCode, message: String, item: Option<usize>, flow: Option<&str>) -> Reason {
    Reason {
        code,
        message,
        item,
        flow: flow.map(str::to_owned),
    }
}

/// Where the candidates for a pair come from: the index, or every flow.
pub(crate) trait Candidates {
    /// Appends targets that could cover `item`. May repeat targets and include unrelated ones,
    /// but must include every target whose integration, type, permission and include match.
    fn related(&mut self, item: &AccessItem, out: &mut Vec<TargetRef>);

    /// Whether the requester may be in flow `f`'s `any_of`. May answer `true` wrongly (the rule is
    /// checked again), never `false` wrongly. Lets the engine skip, with one bit test, flows the
    /// requester cannot use, which are most of them.
    fn may_request(&mut self, _f: u32, _email: &str, _requester: &Requester) -> bool {
        true
    }
}

/// What the flows that relate to a pair say about it.
#[derive(Debug, Default)]
struct Verdicts {
    covering: Vec<u32>,
    misses: Vec<(u32, Miss)>,
}

/// Why a pair's candidates are being judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Find every covering flow. Flows the requester cannot use are skipped unseen: a covering
    /// flow's `any_of` always matches the requester.
    Cover,
    /// Nothing covers the pair: find the near misses, in flow (name) order, stopping after one more
    /// than are reported.
    Explain,
}

/// Judges the candidate targets of one pair, grouped by flow (candidates come sorted by flow, so
/// "first in name order" is the same for the index and the reference evaluator).
fn judge(
    ctx: &mut Ctx<'_>,
    candidates: &mut dyn Candidates,
    item: &AccessItem,
    found: &[TargetRef],
    pass: Pass,
) -> Verdicts {
    let flows = ctx.flows;
    let mut out = Verdicts::default();
    let mut at = 0;
    while at < found.len() {
        let f = found[at].0;
        let group_end = found[at..]
            .iter()
            .position(|t| t.0 != f)
            .map_or(found.len(), |n| at + n);
        let targets = &found[at..group_end];
        at = group_end;
        let Some(flow) = flows.get(f as usize).filter(|flow| flow.requestable) else {
            continue;
        };
        if pass == Pass::Explain && out.misses.len() > MAX_NEAR_MISSES {
            break;
        }
        if pass == Pass::Cover && !candidates.may_request(f, &ctx.email, &ctx.req.requester) {
            continue;
        }
        let mut covers = false;
        let mut excluded = false;
        for &(_, t) in targets {
            if let Some(target) = flow.spec.targets.get(t as usize) {
                match target_fit(target, &item.resource, &item.permission) {
                    TargetFit::Covers => covers = true,
                    TargetFit::Excluded => excluded = true,
                    TargetFit::Unrelated => {}
                }
            }
        }
        if covers {
            match ctx.gate(f) {
                Gate::Open => out.covering.push(f),
                gate => out.misses.push((f, Miss::Gate(gate))),
            }
        } else if excluded {
            out.misses.push((f, Miss::Excluded));
        }
    }
    out
}

/// Decides `req` against `flows` (current versions, in name order), taking each pair's candidate
/// targets from `candidates`.
pub(crate) fn decide(
    flows: &[CompiledFlow],
    req: &DecisionRequest,
    candidates: &mut dyn Candidates,
) -> Decision {
    let mut ctx = Ctx {
        flows,
        req,
        email: email_key(&req.requester.email),
        justified: req
            .justification
            .as_deref()
            .is_some_and(|text| !text.trim().is_empty()),
        gates: GateMemo::default(),
        groups: BTreeSet::new(),
        on_call: BTreeSet::new(),
    };
    let mut reasons = Vec::new();
    let mut items = Vec::with_capacity(req.items.len());
    let mut frozen_items = Vec::with_capacity(req.items.len());
    // chosen[i] = flow chosen for item i.
    let mut chosen: Vec<Option<u32>> = Vec::with_capacity(req.items.len());
    let mut refused = false;

    if req.items.is_empty() {
        refused = true;
        reasons.push(reason(
            ReasonCode::EmptyRequest,
            "the request names no resource and permission".to_owned(),
            None,
            None,
        ));
    }

    let mut found: Vec<TargetRef> = Vec::new();
    for (i, item) in req.items.iter().enumerate() {
        found.clear();
        candidates.related(item, &mut found);
        found.sort_unstable();
        found.dedup();

        // Covering flows are found among the flows the requester may use; only a refused pair
        // needs the near misses, which takes a second look at every related flow.
        let mut verdicts = judge(&mut ctx, candidates, item, &found, Pass::Cover);
        if verdicts.covering.is_empty() {
            verdicts = judge(&mut ctx, candidates, item, &found, Pass::Explain);
        }
        let Verdicts {
            mut covering,
            misses,
        } = verdicts;

        let mut frozen = freeze_item(item);
        let pair = describe_item(item);
        if covering.is_empty() {
            refused = true;
            for &(f, miss) in misses.iter().take(MAX_NEAR_MISSES) {
                let flow = &flows[f as usize];
                record_resource_facts(flow, item, &mut frozen);
                if miss != Miss::Excluded {
                    ctx.record_requester_facts(flow);
                }
            }
            let close = match misses.len() {
                0 => String::new(),
                1 => " (1 flow comes close; see below)".to_owned(),
                n if n > MAX_NEAR_MISSES => {
                    format!(
                        " (more than {MAX_NEAR_MISSES} flows come close; the first {MAX_NEAR_MISSES} by name follow)"
                    )
                }
                n => format!(" ({n} flows come close; see below)"),
            };
            reasons.push(reason(
                ReasonCode::NoFlowCovers,
                format!("no flow covers {pair}{close}"),
                Some(i),
                None,
            ));
            for &(f, miss) in misses.iter().take(MAX_NEAR_MISSES) {
                reasons.push(near_miss(&ctx, &flows[f as usize], miss, i, &pair));
            }
            items.push(ItemDecision {
                integration: item.resource.integration.clone(),
                resource_id: item.resource.id.clone(),
                permission: item.permission.clone(),
                flow: None,
                candidates: Vec::new(),
            });
            chosen.push(None);
        } else {
            covering.sort_unstable_by_key(|&f| (choose::key(&flows[f as usize]), f));
            for &f in &covering {
                let flow = &flows[f as usize];
                record_resource_facts(flow, item, &mut frozen);
                ctx.record_requester_facts(flow);
            }
            // A flow whose maximum is shorter than the requested duration cannot grant the pair
            // as asked, so the choice is made among the flows that can.
            let usable: Vec<u32> = match req.duration {
                Some(requested) if !requested.is_zero() => covering
                    .iter()
                    .copied()
                    .filter(|f| flows[*f as usize].duration.max >= requested)
                    .collect(),
                _ => covering.clone(),
            };
            if let Some(&best) = usable.first() {
                reasons.push(reason(
                    ReasonCode::FlowChosen,
                    choice_message(flows, &usable, &pair),
                    Some(i),
                    Some(flows[best as usize].name()),
                ));
                items.push(ItemDecision {
                    integration: item.resource.integration.clone(),
                    resource_id: item.resource.id.clone(),
                    permission: item.permission.clone(),
                    flow: Some(flows[best as usize].flow_ref()),
                    candidates: usable
                        .iter()
                        .map(|f| flows[*f as usize].flow_ref())
                        .collect(),
                });
                chosen.push(Some(best));
            } else {
                refused = true;
                reasons.push(too_long(flows, &covering, req.duration, i));
                items.push(ItemDecision {
                    integration: item.resource.integration.clone(),
                    resource_id: item.resource.id.clone(),
                    permission: item.permission.clone(),
                    flow: None,
                    candidates: Vec::new(),
                });
                chosen.push(None);
            }
        }
        frozen_items.push(frozen);
    }

    // The distinct chosen flows, in name order (flow positions are in name order).
    let mut chosen_flows: Vec<u32> = chosen.iter().flatten().copied().collect();
    chosen_flows.sort_unstable();
    chosen_flows.dedup();

    let duration = settle_duration(flows, req, &chosen_flows, &mut reasons);
    if duration.is_none() && !chosen_flows.is_empty() {
        refused = true;
    }

    let mut manager = None;
    let (outcome, duration, approval) = if refused {
        (Outcome::Deny, None, None)
    } else if chosen_flows.iter().all(|f| flows[*f as usize].is_auto()) {
        let names: Vec<String> = chosen_flows
            .iter()
            .map(|f| flows[*f as usize].spec.name.clone())
            .collect();
        let labels: Vec<String> = chosen_flows
            .iter()
            .map(|f| {
                let flow = &flows[*f as usize];
                flow_label(flow.name(), flow.version)
            })
            .collect();
        reasons.push(reason(
            ReasonCode::AutoApproved,
            format!("approved automatically by flow {}", labels.join(", ")),
            None,
            (names.len() == 1).then(|| names[0].as_str()),
        ));
        (Outcome::AllowAuto, duration, None)
    } else {
        let needing: Vec<(&CompiledFlow, Vec<usize>)> = chosen_flows
            .iter()
            .filter(|f| !flows[**f as usize].is_auto())
            .map(|&f| {
                let its_items = chosen
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c == Some(f))
                    .map(|(i, _)| i)
                    .collect();
                (&flows[f as usize], its_items)
            })
            .collect();
        let uses_manager = needing.iter().any(|(flow, _)| {
            flow.spec.approval.as_ref().is_some_and(|policy| {
                policy
                    .groups
                    .iter()
                    .any(|group| group.approvers.contains(&Approver::Manager))
            })
        });
        if uses_manager {
            manager = req.requester.manager.clone();
        }
        let plan = ApprovalPlan::build(
            &req.requester.email,
            req.requester.manager.as_deref(),
            &needing,
            &req.items,
        );
        let summaries: Vec<String> = needing
            .iter()
            .map(|(flow, _)| describe_policy(flow))
            .collect();
        reasons.push(reason(
            ReasonCode::ApprovalRequired,
            format!("approval required: {}", summaries.join("; ")),
            None,
            (needing.len() == 1).then(|| needing[0].0.name()),
        ));
        (Outcome::NeedsApproval, duration, Some(plan))
    };

    Decision {
        outcome,
        reasons,
        items,
        duration,
        approval,
        inputs: FrozenInputs {
            requester: req.requester.email.clone(),
            groups: ctx.groups,
            on_call: ctx.on_call,
            manager,
            items: frozen_items,
            requested_duration: req.duration,
            justification: req.justification.clone(),
            now: req.now,
        },
    }
}

/// The `flow_chosen` message for a pair; `usable` holds the flows that can grant it, best first.
fn choice_message(flows: &[CompiledFlow], usable: &[u32], pair: &str) -> String {
    let ranked: Vec<&CompiledFlow> = usable
        .iter()
        .take(MAX_NAMED_CANDIDATES + 1)
        .map(|f| &flows[*f as usize])
        .collect();
    let mut message = choose::explain(&ranked, pair);
    if usable.len() > ranked.len() {
        message.push_str(&format!(" and {} more", usable.len() - ranked.len()));
    }
    message
}

/// The refusal for a pair that flows cover, none for as long as requested. Names the flow that
/// allows the longest (the first by the choice rule among equals): the most the requester could
/// ask for.
fn too_long(
    flows: &[CompiledFlow],
    covering: &[u32],
    requested: Option<Duration>,
    item: usize,
) -> Reason {
    let most = covering
        .iter()
        .map(|f| &flows[*f as usize])
        .reduce(|best, flow| {
            if flow.duration.max > best.duration.max {
                flow
            } else {
                best
            }
        });
    let (Some(requested), Some(most)) = (requested, most) else {
        // Only reachable with a requested duration and covering flows; fail closed regardless.
        return reason(
            ReasonCode::DurationAboveMax,
            "the requested duration is longer than the flows allow".to_owned(),
            Some(item),
            None,
        );
    };
    reason(
        ReasonCode::DurationAboveMax,
        format!(
            "requested {} is longer than the maximum of {} allowed by flow {:?}",
            format_duration(requested),
            format_duration(most.duration.max),
            most.name()
        ),
        Some(item),
        Some(most.name()),
    )
}

/// The duration the grant gets, or `None` (with a reason) when the request asks for something no
/// flow grants. With several chosen flows the tightest wins: the smallest maximum and the smallest
/// default. Flows are chosen among those whose maximum allows the requested duration, so the
/// maximum check here is a guard that should never fire.
fn settle_duration(
    flows: &[CompiledFlow],
    req: &DecisionRequest,
    chosen: &[u32],
    reasons: &mut Vec<Reason>,
) -> Option<Duration> {
    // In name order, so on a tie the flow named is the first by name.
    let tightest = chosen
        .iter()
        .map(|f| &flows[*f as usize])
        .min_by_key(|flow| flow.duration.max)?;
    let max = tightest.duration.max;
    let default = chosen
        .iter()
        .map(|f| flows[*f as usize].duration.default)
        .min()
        .unwrap_or(max)
        .min(max);
    match req.duration {
        None => Some(default),
        Some(requested) if requested.is_zero() => {
            reasons.push(reason(
                ReasonCode::InvalidDuration,
                "the requested duration must be longer than zero".to_owned(),
                None,
                None,
            ));
            None
        }
        Some(requested) if requested > max => {
            reasons.push(reason(
                ReasonCode::DurationAboveMax,
                format!(
                    "requested {} is longer than the maximum of {} allowed by flow {:?}",
                    format_duration(requested),
                    format_duration(max),
                    tightest.name()
                ),
                None,
                Some(tightest.name()),
            ));
            None
        }
        Some(requested) => Some(requested),
    }
}

/// The reason for a flow that relates to a pair but does not cover it.
fn near_miss(ctx: &Ctx<'_>, flow: &CompiledFlow, miss: Miss, item: usize, pair: &str) -> Reason {
    let name = flow.name();
    let who = &ctx.req.requester.email;
    let (code, message) = match miss {
        Miss::Excluded => (
            ReasonCode::ResourceExcluded,
            format!("flow {name:?} excludes {pair}"),
        ),
        Miss::Gate(Gate::NotListed) => (
            ReasonCode::RequesterNotEligible,
            format!("{who} is not among the requesters of flow {name:?}"),
        ),
        Miss::Gate(Gate::Excepted) => (
            ReasonCode::RequesterNotEligible,
            format!("{who} is excepted from the requesters of flow {name:?}"),
        ),
        Miss::Gate(Gate::OutsideTimeframe) => {
            let text = match &flow.timeframe {
                Some(frame) => match frame.check(ctx.req.now) {
                    Window::Closed { local } => format!(
                        "flow {name:?} takes requests only {}; it is {local} there",
                        frame.describe()
                    ),
                    Window::UnknownZone => format!(
                        "flow {name:?} takes requests only {}, a time zone Latch does not know, so never",
                        frame.describe()
                    ),
                    Window::Open => {
                        format!("flow {name:?} takes requests only {}", frame.describe())
                    }
                },
                None => format!("flow {name:?} is outside its timeframe"),
            };
            (ReasonCode::OutsideTimeframe, text)
        }
        Miss::Gate(Gate::NoJustification) => (
            ReasonCode::JustificationRequired,
            format!("flow {name:?} requires a justification"),
        ),
        // Open gates are covers, never misses; say so rather than panic.
        Miss::Gate(Gate::Open) => (
            ReasonCode::NoFlowCovers,
            format!("flow {name:?} does not cover {pair}"),
        ),
    };
    reason(code, message, Some(item), Some(name))
}
