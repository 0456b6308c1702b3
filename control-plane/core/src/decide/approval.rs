//! Approval plans: who must approve a request, and whether the approvals given so far are enough.
//!
//! A plan has one *part* per chosen flow that needs approval (split further per resource when the
//! flow asks for `resource_owner`, per integration when it asks for `integration_owner`, so that
//! each owner approves only what they own). Every part must be satisfied. Within a part, `any_of`
//! needs one group to reach its `min`; `all_of` needs every group to reach its `min` with
//! *distinct* people: approvers are assigned to the groups' slots by bipartite matching, so a
//! person who is both the manager and a lead fills one slot, not two.
//!
//! Membership is read at approval time through an [`ApproverDirectory`]; only the requester and
//! the requester's manager are taken from the request.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::flow::{ApprovalMode, Approver};

use super::compiled::CompiledFlow;
use super::directory::ApproverDirectory;
use super::identity::same_email;
use super::input::AccessItem;
use super::record::FlowRef;

/// Who must approve a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPlan {
    /// The requester, who may not approve unless a part allows it.
    pub requester: String,
    /// The requester's manager at request time, for `manager` approvers.
    pub manager: Option<String>,
    /// What must be satisfied, every part.
    pub parts: Vec<PlanPart>,
    /// Approver groups of all parts; [`PlanPart::groups`] and the answers of
    /// [`ApprovalPlan::eligibility`] index into this list.
    pub groups: Vec<PlanGroup>,
}

/// The approvals one flow needs for some of the request's items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanPart {
    /// The flow whose approval policy this is.
    pub flow: FlowRef,
    /// `all_of` or `any_of`.
    pub mode: ApprovalMode,
    /// Whether the requester may approve for this part.
    pub requester_can_approve: bool,
    /// Indices of the request items this part approves.
    pub items: Vec<usize>,
    /// Resources whose owners count as `resource_owner` here.
    pub resource_ids: Vec<String>,
    /// Integrations whose owners count as `integration_owner` here.
    pub integrations: Vec<String>,
    /// Indices into [`ApprovalPlan::groups`].
    pub groups: Vec<usize>,
}

/// One approver group of a part: at least `min` distinct approvers from `approvers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanGroup {
    /// Index of the part the group belongs to.
    pub part: usize,
    /// Who may approve for the group.
    pub approvers: Vec<Approver>,
    /// How many distinct approvals it needs.
    pub min: u32,
}

/// Why someone may not approve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotEligibleCode {
    /// They are the requester (or an alias of the requester), and the flow does not allow
    /// self-approval.
    Requester,
    /// They match no approver of any group.
    NotAnApprover,
}

impl NotEligibleCode {
    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            NotEligibleCode::Requester => "requester",
            NotEligibleCode::NotAnApprover => "not_an_approver",
        }
    }
}

/// Why someone may not approve, for machines and for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotEligible {
    /// Stable code.
    pub code: NotEligibleCode,
    /// Explanation.
    pub message: String,
}

/// Where a plan stands given some approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalStatus {
    /// Whether every part is satisfied: the request can be granted.
    pub satisfied: bool,
    /// Per part, whether it is satisfied.
    pub parts: Vec<bool>,
    /// Per plan group, the approvers counted for it. For `all_of` parts this is the assignment of
    /// distinct people to groups; for `any_of` parts, everyone eligible for the group.
    pub counted: Vec<Vec<String>>,
    /// Groups of unsatisfied parts that still need approvals, and from whom.
    pub open: Vec<OpenGroup>,
    /// Approvals that count for nothing, and why.
    pub ignored: Vec<IgnoredApproval>,
}

/// A group that still needs approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenGroup {
    /// Index into [`ApprovalPlan::groups`].
    pub group: usize,
    /// The flow the group belongs to.
    pub flow: FlowRef,
    /// Who may approve for it.
    pub approvers: Vec<Approver>,
    /// How many more distinct approvals it needs.
    pub missing: u32,
}

/// An approval that counts for nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgnoredApproval {
    /// The approver, as given.
    pub approver: String,
    /// Why it does not count.
    pub reason: NotEligible,
}

/// Whether two addresses are one person: equal up to case always, and whatever else the
/// directory knows (aliases). A directory cannot make case variants into different people.
fn same(dir: &dyn ApproverDirectory, a: &str, b: &str) -> bool {
    same_email(a, b) || dir.same_person(a, b)
}

impl ApprovalPlan {
    /// Builds the plan for the chosen flows that need approval. `chosen` holds each such flow with
    /// the indices of the items it was chosen for, in flow-name order.
    pub(crate) fn build(
        requester: &str,
        manager: Option<&str>,
        chosen: &[(&CompiledFlow, Vec<usize>)],
        items: &[AccessItem],
    ) -> ApprovalPlan {
        let mut plan = ApprovalPlan {
            requester: requester.to_owned(),
            manager: manager.map(str::to_owned),
            parts: Vec::new(),
            groups: Vec::new(),
        };
        for (flow, flow_items) in chosen {
            let Some(policy) = &flow.spec.approval else {
                continue;
            };
            let mentions = |wanted: &Approver| {
                policy
                    .groups
                    .iter()
                    .any(|group| group.approvers.contains(wanted))
            };
            // Split so that owners approve only what they own.
            let split_key: Option<fn(&AccessItem) -> &str> = if mentions(&Approver::ResourceOwner) {
                Some(|item| item.resource.id.as_str())
            } else if mentions(&Approver::IntegrationOwner) {
                Some(|item| item.resource.integration.as_str())
            } else {
                None
            };
            let mut scopes: Vec<Vec<usize>> = Vec::new();
            match split_key {
                None => scopes.push(flow_items.clone()),
                Some(key) => {
                    let mut keys: Vec<&str> = Vec::new();
                    for &i in flow_items {
                        let k = key(&items[i]);
                        match keys.iter().position(|seen| *seen == k) {
                            Some(at) => scopes[at].push(i),
                            None => {
                                keys.push(k);
                                scopes.push(vec![i]);
                            }
                        }
                    }
                }
            }
            for scope in scopes {
                let part_index = plan.parts.len();
                let mut resource_ids: Vec<String> = Vec::new();
                let mut integrations: Vec<String> = Vec::new();
                for &i in &scope {
                    let resource = &items[i].resource;
                    if !resource_ids.contains(&resource.id) {
                        resource_ids.push(resource.id.clone());
                    }
                    if !integrations.contains(&resource.integration) {
                        integrations.push(resource.integration.clone());
                    }
                }
                let first_group = plan.groups.len();
                for group in &policy.groups {
                    plan.groups.push(PlanGroup {
                        part: part_index,
                        approvers: group.approvers.clone(),
                        // Validation refuses 0; counting it as 1 keeps a bad flow from
                        // approving itself.
                        min: group.min.max(1),
                    });
                }
                plan.parts.push(PlanPart {
                    flow: flow.flow_ref(),
                    mode: policy.mode,
                    requester_can_approve: policy.requester_can_approve,
                    items: scope,
                    resource_ids,
                    integrations,
                    groups: (first_group..plan.groups.len()).collect(),
                });
            }
        }
        plan
    }

    /// The groups `user` may approve for at `at` (indices into [`ApprovalPlan::groups`]), or why
    /// they may approve for none.
    pub fn eligibility(
        &self,
        user: &str,
        dir: &dyn ApproverDirectory,
        at: Timestamp,
    ) -> Result<Vec<usize>, NotEligible> {
        let mut facts = PersonFacts::new(user);
        let mut out = Vec::new();
        let mut blocked_as_requester: Vec<&str> = Vec::new();
        let is_requester = same(dir, user, &self.requester);
        for part in &self.parts {
            if is_requester && !part.requester_can_approve {
                if !blocked_as_requester.contains(&part.flow.name.as_str()) {
                    blocked_as_requester.push(&part.flow.name);
                }
                continue;
            }
            for &g in &part.groups {
                let Some(group) = self.groups.get(g) else {
                    continue;
                };
                let fits = group
                    .approvers
                    .iter()
                    .any(|approver| self.matches(approver, part, &mut facts, dir, at));
                if fits {
                    out.push(g);
                }
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
        if !blocked_as_requester.is_empty() {
            let flows: Vec<String> = blocked_as_requester
                .iter()
                .map(|name| format!("{name:?}"))
                .collect();
            return Err(NotEligible {
                code: NotEligibleCode::Requester,
                message: format!(
                    "{user} is the requester, and flow {} does not let requesters approve their own requests",
                    flows.join(", ")
                ),
            });
        }
        Err(NotEligible {
            code: NotEligibleCode::NotAnApprover,
            message: format!(
                "{user} is not an approver of this request (approvers: {})",
                self.describe_approvers()
            ),
        })
    }

    /// Whether `approvers` (emails; duplicates and aliases count once) satisfy the plan at `at`,
    /// which groups are still open, and which approvals count for nothing.
    pub fn evaluate(
        &self,
        approvers: &[String],
        dir: &dyn ApproverDirectory,
        at: Timestamp,
    ) -> ApprovalStatus {
        // One entry per person: the same person approving twice, or through an alias, counts once.
        let mut people: Vec<&str> = Vec::new();
        for approver in approvers {
            if !people.iter().any(|known| same(dir, known, approver)) {
                people.push(approver);
            }
        }
        let mut ignored = Vec::new();
        // eligible[p] = the groups person p may approve for.
        let mut eligible: Vec<BTreeSet<usize>> = Vec::with_capacity(people.len());
        for person in &people {
            match self.eligibility(person, dir, at) {
                Ok(groups) => eligible.push(groups.into_iter().collect()),
                Err(reason) => {
                    ignored.push(IgnoredApproval {
                        approver: (*person).to_owned(),
                        reason,
                    });
                    eligible.push(BTreeSet::new());
                }
            }
        }
        let mut counted: Vec<Vec<String>> = vec![Vec::new(); self.groups.len()];
        let mut parts = Vec::with_capacity(self.parts.len());
        let mut open = Vec::new();
        for part in &self.parts {
            // A stored plan is read back from the database; one whose part has no groups or names
            // a group that is not there is damaged, and a damaged part is never satisfied.
            let intact =
                !part.groups.is_empty() && part.groups.iter().all(|&g| g < self.groups.len());
            if !intact {
                parts.push(false);
                continue;
            }
            let (satisfied, missing) = match part.mode {
                ApprovalMode::AllOf => self.match_all_of(part, &people, &eligible, &mut counted),
                // `auto` never reaches a plan; treating it like `any_of` keeps it fail-closed.
                ApprovalMode::AnyOf | ApprovalMode::Auto => {
                    self.count_any_of(part, &people, &eligible, &mut counted)
                }
            };
            if !satisfied {
                for (&g, missing) in part.groups.iter().zip(missing) {
                    if missing > 0 {
                        open.push(OpenGroup {
                            group: g,
                            flow: part.flow.clone(),
                            approvers: self.groups[g].approvers.clone(),
                            missing,
                        });
                    }
                }
            }
            parts.push(satisfied);
        }
        ApprovalStatus {
            // A plan with no parts is never satisfied: there is nothing to approve, so something
            // is wrong, and failing closed is the safe answer.
            satisfied: !parts.is_empty() && parts.iter().all(|ok| *ok),
            parts,
            counted,
            open,
            ignored,
        }
    }

    /// Whether an approval by `user`, on top of `approvals`, would bring the plan closer to
    /// satisfied: fill a slot that is still open (for `all_of`, possibly by letting someone already
    /// counted move to another group). Use it to pick whom to ask among people the caller knows.
    pub fn would_help(
        &self,
        approvals: &[String],
        user: &str,
        dir: &dyn ApproverDirectory,
        at: Timestamp,
    ) -> bool {
        let missing = |status: &ApprovalStatus| -> u64 {
            status.open.iter().map(|open| u64::from(open.missing)).sum()
        };
        let before = self.evaluate(approvals, dir, at);
        if before.satisfied {
            return false;
        }
        let mut more = approvals.to_vec();
        more.push(user.to_owned());
        let after = self.evaluate(&more, dir, at);
        after.satisfied
            || after.parts.iter().filter(|ok| **ok).count()
                > before.parts.iter().filter(|ok| **ok).count()
            || missing(&after) < missing(&before)
    }

    /// `any_of`: one group with at least `min` eligible people. Returns whether it is satisfied and
    /// what each group still misses.
    fn count_any_of(
        &self,
        part: &PlanPart,
        people: &[&str],
        eligible: &[BTreeSet<usize>],
        counted: &mut [Vec<String>],
    ) -> (bool, Vec<u32>) {
        let mut missing = Vec::with_capacity(part.groups.len());
        let mut satisfied = false;
        for &g in &part.groups {
            let names: Vec<String> = people
                .iter()
                .zip(eligible)
                .filter(|(_, groups)| groups.contains(&g))
                .map(|(person, _)| (*person).to_owned())
                .collect();
            let have = u32::try_from(names.len()).unwrap_or(u32::MAX);
            let need = self.groups[g].min;
            satisfied |= have >= need;
            missing.push(need.saturating_sub(have));
            counted[g] = names;
        }
        (satisfied, missing)
    }

    /// `all_of`: every group's `min` filled by distinct people. Each group is expanded into `min`
    /// slots and people are assigned to slots by maximum bipartite matching (augmenting paths), so
    /// the answer does not depend on the order approvals arrived in.
    fn match_all_of(
        &self,
        part: &PlanPart,
        people: &[&str],
        eligible: &[BTreeSet<usize>],
        counted: &mut [Vec<String>],
    ) -> (bool, Vec<u32>) {
        // More slots than people can never be filled, so a group's slots are capped at the number
        // of people; what is left shows up as `missing`.
        let mut slots: Vec<usize> = Vec::new();
        for &g in &part.groups {
            let need = usize::try_from(self.groups[g].min).unwrap_or(usize::MAX);
            slots.extend(std::iter::repeat_n(g, need.min(people.len())));
        }
        let mut slot_of_person: Vec<Option<usize>> = vec![None; people.len()];
        for slot in 0..slots.len() {
            let mut visited = vec![false; people.len()];
            augment(slot, &slots, eligible, &mut slot_of_person, &mut visited);
        }
        let mut filled = vec![0u32; self.groups.len()];
        for (person, slot) in slot_of_person.iter().enumerate() {
            if let Some(slot) = slot {
                let g = slots[*slot];
                filled[g] += 1;
                counted[g].push(people[person].to_owned());
            }
        }
        let missing: Vec<u32> = part
            .groups
            .iter()
            .map(|&g| self.groups[g].min.saturating_sub(filled[g]))
            .collect();
        (missing.iter().all(|m| *m == 0), missing)
    }

    /// Whether `facts.user` is what `approver` stands for, in `part`.
    fn matches(
        &self,
        approver: &Approver,
        part: &PlanPart,
        facts: &mut PersonFacts<'_>,
        dir: &dyn ApproverDirectory,
        at: Timestamp,
    ) -> bool {
        let user = facts.user;
        match approver {
            Approver::User(listed) => same(dir, user, listed),
            Approver::Group(group) => facts.groups(dir).contains(group),
            Approver::OnCall(schedule) => dir.on_shift(user, schedule, at),
            Approver::Manager => self
                .manager
                .as_deref()
                .is_some_and(|manager| same(dir, user, manager)),
            Approver::ResourceOwner => part.resource_ids.iter().any(|id| {
                dir.resource_owners(id)
                    .iter()
                    .any(|owner| same(dir, user, owner))
            }),
            Approver::IntegrationOwner => part.integrations.iter().any(|integration| {
                dir.integration_owners(integration)
                    .iter()
                    .any(|owner| same(dir, user, owner))
            }),
        }
    }

    /// Every approver of the plan in words, for "may not approve" messages.
    fn describe_approvers(&self) -> String {
        let mut seen: Vec<String> = Vec::new();
        for group in &self.groups {
            for approver in &group.approvers {
                let text = self.describe_approver(approver);
                if !seen.contains(&text) {
                    seen.push(text);
                }
            }
        }
        seen.join(", ")
    }

    /// One approver in words (`members of group sre-leads`, `the requester's manager (m@x)`).
    pub fn describe_approver(&self, approver: &Approver) -> String {
        match approver {
            Approver::User(user) => format!("user {user}"),
            Approver::Group(group) => format!("members of group {group}"),
            Approver::OnCall(schedule) => format!("whoever is on call in {schedule}"),
            Approver::Manager => match &self.manager {
                Some(manager) => format!("the requester's manager ({manager})"),
                None => "the requester's manager (none known)".to_owned(),
            },
            Approver::ResourceOwner => "the resource's owners".to_owned(),
            Approver::IntegrationOwner => "the integration's owners".to_owned(),
        }
    }

    /// What the plan still waits for given `approvers`, one line per open group:
    /// `1 more from members of group sre-leads, user bob@example.com (flow "prod-readonly")`.
    pub fn waiting_for(
        &self,
        approvers: &[String],
        dir: &dyn ApproverDirectory,
        at: Timestamp,
    ) -> Vec<String> {
        self.evaluate(approvers, dir, at)
            .open
            .iter()
            .map(|open| {
                let who: Vec<String> = open
                    .approvers
                    .iter()
                    .map(|a| self.describe_approver(a))
                    .collect();
                format!(
                    "{} more from {} (flow {:?})",
                    open.missing,
                    who.join(" or "),
                    open.flow.name
                )
            })
            .collect()
    }
}

/// Tries to give `slot` a person, moving already-assigned people along an augmenting path.
/// The depth is bounded by the number of people, who are few (approvals on one request).
fn augment(
    slot: usize,
    slots: &[usize],
    eligible: &[BTreeSet<usize>],
    slot_of_person: &mut [Option<usize>],
    visited: &mut [bool],
) -> bool {
    let group = slots[slot];
    for person in 0..eligible.len() {
        if visited[person] || !eligible[person].contains(&group) {
            continue;
        }
        visited[person] = true;
        let free = match slot_of_person[person] {
            None => true,
            Some(other) => augment(other, slots, eligible, slot_of_person, visited),
        };
        if free {
            slot_of_person[person] = Some(slot);
            return true;
        }
    }
    false
}

/// A person's directory facts, fetched once per check.
struct PersonFacts<'u> {
    user: &'u str,
    groups: Option<BTreeSet<String>>,
}

impl<'u> PersonFacts<'u> {
    fn new(user: &'u str) -> PersonFacts<'u> {
        PersonFacts { user, groups: None }
    }

    fn groups(&mut self, dir: &dyn ApproverDirectory) -> &BTreeSet<String> {
        self.groups.get_or_insert_with(|| dir.groups_of(self.user))
    }
}
