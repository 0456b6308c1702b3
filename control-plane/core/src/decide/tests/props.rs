//! Property tests over random flows, requesters, resources and directories, drawn from small
//! universes of names so that flows and requests actually meet.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;

use crate::decide::{
    AccessItem, ApprovalPlan, ApproverDirectory, Decision, DecisionRequest, Engine, Outcome,
    PlanGroup, PlanPart, ReasonCode, Requester, Resource, StaticDirectory, VersionedFlow,
    reference, same_email,
};
use crate::flow::{
    ApprovalMode, ApprovalPolicy, Approver, ApproverGroup, DurationPolicy, FlowKind, FlowSpec,
    Justification, Principal, Requesters, ResourceSelector, Settings, Target, Timeframe, Weekday,
};

const INTEGRATIONS: &[&str] = &["i1", "i2"];
const TYPES: &[&str] = &["t1", "t2"];
const IDS: &[&str] = &["r0", "r1", "r2", "r3", "r4"];
const NAMES: &[&str] = &["n0", "n1", "n2"];
const TAG_KEYS: &[&str] = &["env", "tier"];
const TAG_VALUES: &[&str] = &["a", "b"];
const ANCESTORS: &[&str] = &["o0", "o1", "o2"];
const GROUPS: &[&str] = &["g0", "g1", "g2"];
const USERS: &[&str] = &["u0@x.com", "u1@x.com", "u2@x.com", "u3@x.com"];
const SCHEDULES: &[&str] = &["s0", "s1"];
const PERMISSIONS: &[&str] = &["p0", "p1"];
const FLOW_NAMES: &[&str] = &["f0", "f1", "f2", "f3", "f4", "f5"];
const ZONES: &[&str] = &["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"];
/// A tag key no generated flow mentions.
const UNMENTIONED_KEY: &str = "zz-unmentioned";

fn one(list: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(list).prop_map(str::to_owned)
}

fn some_of(list: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(one(list), 1..=max)
}

/// Mostly the first entry of a list, sometimes another: flows and requests must meet often, and
/// still differ sometimes.
fn mostly_first(list: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![3 => Just(list[0].to_owned()), 1 => one(list)]
}

/// A list that is empty most of the time, so selectors with several criteria still match often.
fn maybe_some_of(list: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<String>> {
    prop::option::weighted(0.2, some_of(list, max)).prop_map(Option::unwrap_or_default)
}

/// An email from the universe, in random case: case must never matter.
fn email() -> impl Strategy<Value = String> {
    (mostly_first(USERS), any::<bool>()).prop_map(
        |(user, upper)| {
            if upper { user.to_uppercase() } else { user }
        },
    )
}

fn principal() -> impl Strategy<Value = Principal> {
    prop_oneof![
        2 => email().prop_map(Principal::User),
        3 => mostly_first(GROUPS).prop_map(Principal::Group),
        1 => one(SCHEDULES).prop_map(Principal::OnCall),
        2 => Just(Principal::Everyone),
    ]
}

fn requesters() -> impl Strategy<Value = Requesters> {
    (
        prop::collection::vec(principal(), 1..=3),
        prop::option::weighted(0.2, prop::collection::vec(principal(), 1..=2)),
    )
        .prop_map(|(any_of, except)| Requesters {
            any_of,
            except: except.unwrap_or_default(),
        })
}

fn tag_map(max: usize) -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(one(TAG_KEYS), one(TAG_VALUES), 0..=max)
}

fn selector() -> impl Strategy<Value = ResourceSelector> {
    (
        maybe_some_of(IDS, 2),
        maybe_some_of(NAMES, 2),
        prop::option::weighted(0.3, tag_map(2)).prop_map(Option::unwrap_or_default),
        maybe_some_of(ANCESTORS, 2),
    )
        .prop_map(|(ids, names, tags, descendants_of)| ResourceSelector {
            ids,
            names,
            tags,
            descendants_of,
        })
}

fn target() -> impl Strategy<Value = Target> {
    (
        mostly_first(INTEGRATIONS),
        maybe_some_of(TYPES, 2),
        selector(),
        prop::option::weighted(0.4, selector()).prop_map(Option::unwrap_or_default),
        some_of(PERMISSIONS, 2),
    )
        .prop_map(
            |(integration, resource_types, include, exclude, permissions)| Target {
                integration,
                resource_types,
                include,
                exclude,
                permissions,
            },
        )
}

fn approver() -> impl Strategy<Value = Approver> {
    prop_oneof![
        email().prop_map(Approver::User),
        one(GROUPS).prop_map(Approver::Group),
        one(SCHEDULES).prop_map(Approver::OnCall),
        Just(Approver::Manager),
        Just(Approver::ResourceOwner),
        Just(Approver::IntegrationOwner),
    ]
}

fn approver_group() -> impl Strategy<Value = ApproverGroup> {
    (prop::collection::vec(approver(), 1..=3), 1u32..=2)
        .prop_map(|(approvers, min)| ApproverGroup { approvers, min })
}

fn approval() -> impl Strategy<Value = ApprovalPolicy> {
    let groups = prop::collection::vec(approver_group(), 1..=3);
    prop_oneof![
        2 => any::<bool>().prop_map(|requester_can_approve| ApprovalPolicy {
            mode: ApprovalMode::Auto,
            groups: vec![],
            requester_can_approve,
        }),
        3 => (
            prop::sample::select(&[ApprovalMode::AllOf, ApprovalMode::AnyOf][..]),
            groups,
            prop::bool::weighted(0.3),
        )
            .prop_map(|(mode, groups, requester_can_approve)| ApprovalPolicy {
                mode,
                groups,
                requester_can_approve,
            }),
    ]
}

fn duration_policy() -> impl Strategy<Value = DurationPolicy> {
    (1u64..=4, 0u64..=4).prop_map(|(default, extra)| DurationPolicy {
        default: Duration::from_secs(default * 3600),
        max: Duration::from_secs((default + extra) * 3600),
    })
}

fn timeframe() -> impl Strategy<Value = Timeframe> {
    (
        prop::sample::subsequence(Weekday::ALL.to_vec(), 1..=7),
        0i8..12,
        12i8..24,
        one(ZONES),
    )
        .prop_map(|(days, from, to, time_zone)| Timeframe {
            days,
            from: jiff::civil::time(from, 0, 0, 0),
            to: jiff::civil::time(to, 0, 0, 0),
            time_zone,
        })
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        prop::bool::weighted(0.2),
        prop::option::weighted(0.2, timeframe()),
    )
        .prop_map(|(required, timeframe)| Settings {
            justification: if required {
                Justification::Required
            } else {
                Justification::Optional
            },
            timeframe,
        })
}

fn versioned_flow() -> impl Strategy<Value = VersionedFlow> {
    (
        one(FLOW_NAMES),
        prop::bool::weighted(0.1),
        requesters(),
        prop::collection::vec(target(), 1..=2),
        duration_policy(),
        approval(),
        settings(),
        1u32..=3,
    )
        .prop_map(
            |(name, automatic, requesters, targets, duration, approval, settings, version)| {
                let (kind, duration, approval) = if automatic {
                    (FlowKind::Automatic, None, None)
                } else {
                    (FlowKind::SelfServe, Some(duration), Some(approval))
                };
                VersionedFlow {
                    spec: FlowSpec {
                        name,
                        kind,
                        description: String::new(),
                        requesters,
                        targets,
                        duration,
                        approval,
                        settings,
                    },
                    version,
                }
            },
        )
}

fn flows() -> impl Strategy<Value = Vec<VersionedFlow>> {
    prop_oneof![
        1 => Just(Vec::new()),
        9 => prop::collection::vec(versioned_flow(), 1..=8),
    ]
}

fn requester() -> impl Strategy<Value = Requester> {
    (
        email(),
        prop::collection::btree_set(mostly_first(GROUPS), 0..=2),
        prop::option::of(email()),
        prop::collection::btree_set(one(SCHEDULES), 0..=1),
    )
        .prop_map(|(email, groups, manager, on_call)| Requester {
            email,
            groups,
            manager,
            on_call,
            time_zone: None,
        })
}

fn resource() -> impl Strategy<Value = Resource> {
    (
        mostly_first(INTEGRATIONS),
        one(TYPES),
        one(IDS),
        one(NAMES),
        tag_map(2),
        prop::collection::vec(one(ANCESTORS), 0..=2),
    )
        .prop_map(
            |(integration, resource_type, id, name, tags, ancestors)| Resource {
                integration,
                resource_type,
                id,
                name,
                tags,
                ancestors,
                owners: vec![],
            },
        )
}

fn access_item() -> impl Strategy<Value = AccessItem> {
    (resource(), mostly_first(PERMISSIONS)).prop_map(|(resource, permission)| AccessItem {
        resource,
        permission,
    })
}

fn request() -> impl Strategy<Value = DecisionRequest> {
    (
        requester(),
        prop_oneof![
            1 => Just(Vec::new()),
            6 => prop::collection::vec(access_item(), 1..=1),
            3 => prop::collection::vec(access_item(), 2..=3),
        ],
        prop::option::weighted(
            0.5,
            prop::sample::select(&[0u64, 1800, 3600, 7200, 5 * 3600, 9 * 3600][..]),
        ),
        prop::sample::select(
            &[
                None,
                Some(""),
                Some("  "),
                Some("INC-1"),
                Some("INC-2"),
                Some("INC-3"),
            ][..],
        ),
        // Any second of 2026, so timeframes open and close, across DST changes too.
        0i64..365 * 86_400,
    )
        .prop_map(
            |(requester, items, duration, justification, offset)| DecisionRequest {
                requester,
                items,
                duration: duration.map(Duration::from_secs),
                justification: justification.map(str::to_owned),
                now: jiff::Timestamp::from_second(1_767_225_600 + offset)
                    .expect("2026 is a valid time"),
            },
        )
}

/// A directory where anyone in the universe may be anything.
fn directory() -> impl Strategy<Value = StaticDirectory> {
    (
        prop::collection::vec((one(USERS), one(GROUPS)), 0..=6),
        prop::collection::vec((one(USERS), one(SCHEDULES)), 0..=3),
        prop::collection::vec((one(IDS), one(USERS)), 0..=3),
        prop::collection::vec((one(INTEGRATIONS), one(USERS)), 0..=2),
    )
        .prop_map(|(members, shifts, resource_owners, integration_owners)| {
            let mut dir = StaticDirectory::new();
            for (user, group) in members {
                dir = dir.with_member(&user, &group);
            }
            for (user, schedule) in shifts {
                dir = dir.with_always_on_shift(&user, &schedule);
            }
            for (id, user) in resource_owners {
                dir = dir.with_resource_owner(&id, &user);
            }
            for (integration, user) in integration_owners {
                dir = dir.with_integration_owner(&integration, &user);
            }
            dir
        })
}

fn both(flows: &[VersionedFlow], req: &DecisionRequest) -> (Decision, Decision) {
    (
        Engine::new(flows.to_vec()).decide(req),
        reference::decide(flows, req),
    )
}

/// The current version of `name` among `flows`, as the engine picks it.
fn current<'f>(flows: &'f [VersionedFlow], name: &str, version: u32) -> &'f FlowSpec {
    &flows
        .iter()
        .find(|f| f.spec.name == name && f.version == version)
        .expect("a chosen flow is one of the flows")
        .spec
}

/// Independent re-statement of "this target covers the resource", for checking allowed decisions.
fn naive_covers(target: &Target, item: &AccessItem) -> bool {
    let r = &item.resource;
    let selects = |s: &ResourceSelector| {
        (s.ids.is_empty() || s.ids.contains(&r.id))
            && (s.names.is_empty() || s.names.contains(&r.name))
            && s.tags.iter().all(|(k, v)| r.tags.get(k) == Some(v))
            && (s.descendants_of.is_empty()
                || s.descendants_of.iter().any(|a| r.ancestors.contains(a)))
    };
    let empty_exclude = target.exclude == ResourceSelector::default();
    target.integration == r.integration
        && (target.resource_types.is_empty() || target.resource_types.contains(&r.resource_type))
        && target.permissions.contains(&item.permission)
        && selects(&target.include)
        && (empty_exclude || !selects(&target.exclude))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_flows_means_deny(req in request()) {
        let (engine, reference) = both(&[], &req);
        prop_assert_eq!(engine.outcome, Outcome::Deny);
        prop_assert_eq!(reference.outcome, Outcome::Deny);
        prop_assert!(engine.approval.is_none() && engine.duration.is_none());
    }

    #[test]
    fn the_engine_agrees_with_the_reference(flows in flows(), req in request()) {
        let (engine, reference) = both(&flows, &req);
        prop_assert_eq!(engine, reference);
    }

    #[test]
    fn allowed_items_are_covered_by_their_chosen_flow(flows in flows(), req in request()) {
        let (decision, _) = both(&flows, &req);
        if decision.outcome != Outcome::Deny {
            for (item, decided) in req.items.iter().zip(&decision.items) {
                let chosen = decided.flow.as_ref().expect("allowed items have a flow");
                let spec = current(&flows, &chosen.name, chosen.version);
                prop_assert_eq!(spec.kind, FlowKind::SelfServe);
                prop_assert!(spec.targets.iter().any(|t| naive_covers(t, item)));
                let eligible = spec.requesters.any_of.iter().any(|p| naive_member(p, &req.requester))
                    && !spec.requesters.except.iter().any(|p| naive_member(p, &req.requester));
                prop_assert!(eligible);
                if spec.settings.justification == Justification::Required {
                    prop_assert!(req.justification.as_deref().is_some_and(|j| !j.trim().is_empty()));
                }
            }
        }
    }

    #[test]
    fn an_excluded_resource_is_never_allowed(mut flows in flows(), req in request()) {
        prop_assume!(!req.items.is_empty());
        let excluded = req.items[0].resource.id.clone();
        for flow in &mut flows {
            for target in &mut flow.spec.targets {
                target.exclude = ResourceSelector { ids: vec![excluded.clone()], ..Default::default() };
            }
        }
        let (decision, _) = both(&flows, &req);
        prop_assert_eq!(decision.outcome, Outcome::Deny);
        prop_assert!(decision.items[0].flow.is_none());
        for reason in decision.reasons.iter().filter(|r| r.item == Some(0)) {
            prop_assert!(
                matches!(reason.code, ReasonCode::NoFlowCovers | ReasonCode::ResourceExcluded),
                "{:?}", reason
            );
        }
    }

    #[test]
    fn no_duration_above_the_max(flows in flows(), req in request()) {
        let (decision, _) = both(&flows, &req);
        match decision.duration {
            None => prop_assert_eq!(decision.outcome, Outcome::Deny),
            Some(granted) => {
                prop_assert!(!granted.is_zero());
                if let Some(requested) = req.duration {
                    prop_assert_eq!(granted, requested);
                }
                for decided in &decision.items {
                    let chosen = decided.flow.as_ref().expect("allowed items have a flow");
                    let policy = current(&flows, &chosen.name, chosen.version)
                        .duration
                        .expect("self-serve flows have a duration");
                    prop_assert!(granted <= policy.max);
                }
            }
        }
        if decision.has_reason(ReasonCode::DurationAboveMax) {
            prop_assert_eq!(decision.outcome, Outcome::Deny);
            prop_assert!(req.duration.is_some_and(|requested| requested > Duration::ZERO));
        }
    }

    #[test]
    fn unmentioned_tags_change_nothing(flows in flows(), req in request(), value in one(TAG_VALUES)) {
        let (before, _) = both(&flows, &req);
        let mut tagged = req.clone();
        for item in &mut tagged.items {
            item.resource.tags.insert(UNMENTIONED_KEY.to_owned(), value.clone());
        }
        let (after, _) = both(&flows, &tagged);
        prop_assert_eq!(before, after);
    }

    #[test]
    fn the_requester_never_approves_unless_allowed(
        flows in flows(),
        req in request(),
        dir in directory(),
        as_manager in any::<bool>(),
    ) {
        let mut req = req;
        if as_manager {
            req.requester.manager = Some(req.requester.email.to_uppercase());
        }
        let (decision, _) = both(&flows, &req);
        let Some(plan) = decision.approval else { return Ok(()); };
        // Make the requester everything an approver can be, under a second address too.
        let me = req.requester.email.clone();
        let mut dir = dir.with_alias("second@alias.example", &me);
        for group in GROUPS {
            dir = dir.with_member(&me, group);
        }
        for schedule in SCHEDULES {
            dir = dir.with_always_on_shift(&me, schedule);
        }
        for id in IDS {
            dir = dir.with_resource_owner(id, &me);
        }
        for integration in INTEGRATIONS {
            dir = dir.with_integration_owner(integration, &me.to_lowercase());
        }
        let selves = vec![me.clone(), me.to_uppercase(), format!(" {me} "), "second@alias.example".to_owned()];
        let status = plan.evaluate(&selves, &dir, req.now);
        let self_approvable = plan.parts.iter().all(|part| part.requester_can_approve);
        if !self_approvable {
            prop_assert!(!status.satisfied);
        }
        for (part, ok) in plan.parts.iter().zip(&status.parts) {
            if !part.requester_can_approve {
                prop_assert!(!ok);
            }
        }
        for address in &selves {
            let groups = plan.eligibility(address, &dir, req.now).unwrap_or_default();
            for g in groups {
                prop_assert!(plan.parts[plan.groups[g].part].requester_can_approve);
            }
        }
    }

    #[test]
    fn all_of_needs_distinct_approvers(
        groups in prop::collection::vec((prop::collection::vec(approver(), 1..=2), 1u32..=3), 1..=3),
        approvers in prop::collection::vec(email(), 0..=5),
        dir in directory(),
        manager in prop::option::of(email()),
    ) {
        let plan = ApprovalPlan {
            requester: "requester@elsewhere.example".to_owned(),
            manager: manager.clone(),
            parts: vec![PlanPart {
                flow: crate::decide::FlowRef { name: "f".to_owned(), version: 1 },
                mode: ApprovalMode::AllOf,
                requester_can_approve: false,
                items: vec![0],
                resource_ids: vec!["r0".to_owned()],
                integrations: vec!["i1".to_owned()],
                groups: (0..groups.len()).collect(),
            }],
            groups: groups
                .iter()
                .map(|(approvers, min)| PlanGroup { part: 0, approvers: approvers.clone(), min: *min })
                .collect(),
        };
        let at = jiff::Timestamp::from_second(1_767_225_600).expect("valid");
        let status = plan.evaluate(&approvers, &dir, at);
        // Distinct people, by canonical email.
        let mut people: Vec<String> = Vec::new();
        for a in &approvers {
            if !people.iter().any(|p| same_email(p, a)) {
                people.push(a.clone());
            }
        }
        let eligible: Vec<Vec<bool>> = people
            .iter()
            .map(|p| {
                plan.groups
                    .iter()
                    .map(|g| g.approvers.iter().any(|a| naive_approver(a, p, manager.as_deref(), &dir)))
                    .collect()
            })
            .collect();
        let slots: Vec<usize> = plan
            .groups
            .iter()
            .enumerate()
            .flat_map(|(g, group)| std::iter::repeat_n(g, group.min as usize))
            .collect();
        let possible = assignable(&slots, &eligible, &mut vec![false; people.len()]);
        prop_assert_eq!(status.satisfied, possible);
        if status.satisfied {
            let needed: u32 = plan.groups.iter().map(|g| g.min).sum();
            prop_assert!(people.len() as u32 >= needed);
            // Everyone counted is counted once.
            let counted: Vec<&String> = status.counted.iter().flatten().collect();
            let distinct: BTreeSet<String> = counted.iter().map(|c| c.to_lowercase()).collect();
            prop_assert_eq!(distinct.len(), counted.len());
        }
    }
}

/// Whether the requester is in a principal, restated without the engine's hash sets.
fn naive_member(principal: &Principal, requester: &Requester) -> bool {
    match principal {
        Principal::User(user) => user.to_lowercase() == requester.email.to_lowercase(),
        Principal::Group(group) => requester.groups.contains(group),
        Principal::OnCall(schedule) => requester.on_call.contains(schedule),
        Principal::Everyone => true,
    }
}

/// Whether `person` is `approver`, restated for the distinct-approver property.
fn naive_approver(
    approver: &Approver,
    person: &str,
    manager: Option<&str>,
    dir: &StaticDirectory,
) -> bool {
    let at = jiff::Timestamp::from_second(1_767_225_600).expect("valid");
    match approver {
        Approver::User(user) => user.to_lowercase() == person.to_lowercase(),
        Approver::Group(group) => dir.groups_of(person).contains(group),
        Approver::OnCall(schedule) => dir.on_shift(person, schedule, at),
        Approver::Manager => manager.is_some_and(|m| m.to_lowercase() == person.to_lowercase()),
        Approver::ResourceOwner => dir
            .resource_owners("r0")
            .iter()
            .any(|o| o.to_lowercase() == person.to_lowercase()),
        Approver::IntegrationOwner => dir
            .integration_owners("i1")
            .iter()
            .any(|o| o.to_lowercase() == person.to_lowercase()),
    }
}

/// Brute force: can every slot get its own eligible person?
fn assignable(slots: &[usize], eligible: &[Vec<bool>], used: &mut Vec<bool>) -> bool {
    let Some((&group, rest)) = slots.split_first() else {
        return true;
    };
    for person in 0..eligible.len() {
        if !used[person] && eligible[person][group] {
            used[person] = true;
            let ok = assignable(rest, eligible, used);
            used[person] = false;
            if ok {
                return true;
            }
        }
    }
    false
}
