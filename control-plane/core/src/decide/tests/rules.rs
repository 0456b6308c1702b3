//! One test (or a few) per decision rule, through the engine (checked against the reference).

use std::time::Duration;

use super::fixtures::*;
use crate::decide::{Engine, Outcome, ReasonCode, SharedEngine, VersionedFlow};
use crate::flow::{
    ApprovalMode, Approver, FlowKind, Justification, Principal, ResourceSelector, Timeframe,
    Weekday,
};

#[test]
fn no_flows_deny_naming_the_pair() {
    let decision = decide(vec![], &request());
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(codes(&decision), ["no_flow_covers"]);
    assert_eq!(
        decision.reasons[0].message,
        "no flow covers ReadOnlyAccess on aws.account \"acct-1\" (id acct-1, integration aws-prod)"
    );
    assert_eq!(decision.reasons[0].item, Some(0));
    assert_eq!(decision.duration, None);
    assert_eq!(decision.approval, None);
    assert_eq!(decision.items[0].flow, None);
}

#[test]
fn an_empty_request_is_denied() {
    let decision = decide(vec![flow("a")], &request_for(vec![]));
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(codes(&decision), ["empty_request"]);
}

#[test]
fn an_auto_flow_allows_with_its_default_duration() {
    let decision = decide(vec![flow("prod-readonly")], &request());
    assert_eq!(decision.outcome, Outcome::AllowAuto);
    assert_eq!(codes(&decision), ["flow_chosen", "auto_approved"]);
    assert_eq!(decision.duration, Some(hours(1)));
    let chosen = decision.items[0].flow.as_ref().expect("a flow is chosen");
    assert_eq!((chosen.name.as_str(), chosen.version), ("prod-readonly", 1));
    assert_eq!(
        decision.reasons[1].message,
        "approved automatically by flow \"prod-readonly\" (version 1)"
    );
}

#[test]
fn only_the_current_version_counts() {
    let old = VersionedFlow {
        spec: flow("prod-readonly"),
        version: 1,
    };
    let new = VersionedFlow {
        spec: with_approval(flow("prod-readonly"), manager_then_leads()),
        version: 2,
    };
    for flows in [vec![old.clone(), new.clone()], vec![new, old]] {
        let decision = decide_versioned(flows, &request());
        assert_eq!(decision.outcome, Outcome::NeedsApproval);
        let chosen = decision.items[0].flow.as_ref().expect("a flow is chosen");
        assert_eq!(chosen.version, 2);
    }
}

#[test]
fn requesters_must_match() {
    let mut engineers_only = flow("eng");
    engineers_only.requesters.any_of = vec![Principal::Group("engineering".to_owned())];
    assert_eq!(
        decide(vec![engineers_only.clone()], &request()).outcome,
        Outcome::AllowAuto
    );

    let mut finance_only = flow("finance");
    finance_only.requesters.any_of = vec![Principal::Group("finance".to_owned())];
    let decision = decide(vec![finance_only], &request());
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(
        codes(&decision),
        ["no_flow_covers", "requester_not_eligible"]
    );
    assert_eq!(
        decision.reasons[1].message,
        "alice@example.com is not among the requesters of flow \"finance\""
    );
    assert_eq!(decision.reasons[1].flow.as_deref(), Some("finance"));

    let mut except_alice = engineers_only;
    except_alice.requesters.except = vec![Principal::User("ALICE@example.com".to_owned())];
    let decision = decide(vec![except_alice], &request());
    assert_eq!(decision.outcome, Outcome::Deny);
    assert!(decision.reasons[1].message.contains("is excepted"));

    let mut by_user = flow("by-user");
    by_user.requesters.any_of = vec![Principal::User("Alice@Example.COM".to_owned())];
    assert_eq!(
        decide(vec![by_user], &request()).outcome,
        Outcome::AllowAuto
    );

    let mut on_call = flow("on-call");
    on_call.requesters.any_of = vec![Principal::OnCall("pagerduty/sre".to_owned())];
    assert_eq!(
        decide(vec![on_call.clone()], &request()).outcome,
        Outcome::Deny
    );
    let mut req = request();
    req.requester.on_call.insert("pagerduty/sre".to_owned());
    assert_eq!(decide(vec![on_call], &req).outcome, Outcome::AllowAuto);
}

#[test]
fn integration_type_and_permission_must_match_and_are_no_near_miss() {
    let mut buckets_only = flow("buckets");
    buckets_only.targets[0].resource_types = strings(&["aws.s3.bucket"]);
    let decision = decide(vec![buckets_only], &request());
    assert_eq!(codes(&decision), ["no_flow_covers"]);

    let mut accounts = flow("accounts");
    accounts.targets[0].resource_types = strings(&["aws.s3.bucket", "aws.account"]);
    assert_eq!(
        decide(vec![accounts], &request()).outcome,
        Outcome::AllowAuto
    );

    let admin = request_for(vec![item(resource("acct-1"), "AdministratorAccess")]);
    assert_eq!(codes(&decide(vec![flow("a")], &admin)), ["no_flow_covers"]);

    let mut other = request();
    other.items[0].resource.integration = "aws-dev".to_owned();
    assert_eq!(codes(&decide(vec![flow("a")], &other)), ["no_flow_covers"]);
}

#[test]
fn include_and_exclude_select_resources() {
    let mut prod = flow("prod");
    prod.targets[0].include.tags = tags(&[("env", "prod")]);
    prod.targets[0].exclude.tags = tags(&[("tier", "payments")]);
    assert_eq!(
        decide(vec![prod.clone()], &request()).outcome,
        Outcome::AllowAuto
    );

    let mut payments = request();
    payments.items[0]
        .resource
        .tags
        .insert("tier".to_owned(), "payments".to_owned());
    let decision = decide(vec![prod.clone()], &payments);
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(codes(&decision), ["no_flow_covers", "resource_excluded"]);
    assert_eq!(
        decision.reasons[1].message,
        "flow \"prod\" excludes ReadOnlyAccess on aws.account \"acct-1\" (id acct-1, integration aws-prod)"
    );

    let mut dev = request();
    dev.items[0]
        .resource
        .tags
        .insert("env".to_owned(), "dev".to_owned());
    assert_eq!(codes(&decide(vec![prod], &dev)), ["no_flow_covers"]);

    let mut by_ancestor = flow("by-ancestor");
    by_ancestor.targets[0].include.descendants_of = strings(&["ou-prod"]);
    assert_eq!(
        decide(vec![by_ancestor.clone()], &request()).outcome,
        Outcome::AllowAuto
    );
    by_ancestor.targets[0].exclude.ids = strings(&["acct-1"]);
    assert_eq!(decide(vec![by_ancestor], &request()).outcome, Outcome::Deny);

    let mut by_name = flow("by-name");
    by_name.targets[0].include = ResourceSelector {
        names: strings(&["acct-1", "acct-2"]),
        ..Default::default()
    };
    assert_eq!(
        decide(vec![by_name], &request()).outcome,
        Outcome::AllowAuto
    );
}

#[test]
fn a_flow_covers_through_any_of_its_targets() {
    // The first target excludes the resource, the second covers it: the flow covers it.
    let mut two = flow("two");
    let mut excluding = target();
    excluding.exclude.ids = strings(&["acct-1"]);
    two.targets = vec![excluding, target()];
    assert_eq!(decide(vec![two], &request()).outcome, Outcome::AllowAuto);
}

fn berlin_office_hours() -> Timeframe {
    Timeframe {
        days: vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ],
        from: jiff::civil::time(8, 0, 0, 0),
        to: jiff::civil::time(19, 0, 0, 0),
        time_zone: "Europe/Berlin".to_owned(),
    }
}

fn outcome_at(frame: &Timeframe, now: &str) -> Outcome {
    let mut office = flow("office");
    office.settings.timeframe = Some(frame.clone());
    let mut req = request();
    req.now = at(now);
    decide(vec![office], &req).outcome
}

#[test]
fn timeframes_follow_berlin_across_the_march_change() {
    let frame = berlin_office_hours();
    // Monday 2026-03-30 is the first weekday of summer time (UTC+2).
    assert_eq!(outcome_at(&frame, "2026-03-30T05:59:00Z"), Outcome::Deny);
    assert_eq!(
        outcome_at(&frame, "2026-03-30T06:00:00Z"),
        Outcome::AllowAuto
    );
    assert_eq!(
        outcome_at(&frame, "2026-03-30T16:59:00Z"),
        Outcome::AllowAuto
    );
    assert_eq!(outcome_at(&frame, "2026-03-30T17:00:00Z"), Outcome::Deny);
    // Friday before, winter time (UTC+1).
    assert_eq!(outcome_at(&frame, "2026-03-27T06:30:00Z"), Outcome::Deny);
    assert_eq!(
        outcome_at(&frame, "2026-03-27T07:00:00Z"),
        Outcome::AllowAuto
    );
    // The Sunday of the change itself is not a listed day.
    assert_eq!(outcome_at(&frame, "2026-03-29T10:00:00Z"), Outcome::Deny);
    let mut sundays = frame;
    sundays.days = vec![Weekday::Sun];
    assert_eq!(outcome_at(&sundays, "2026-03-29T05:59:00Z"), Outcome::Deny);
    assert_eq!(
        outcome_at(&sundays, "2026-03-29T06:00:00Z"),
        Outcome::AllowAuto
    );
}

#[test]
fn timeframes_follow_berlin_across_the_october_change() {
    let frame = berlin_office_hours();
    // Monday 2026-10-26 is the first weekday of winter time (UTC+1).
    assert_eq!(outcome_at(&frame, "2026-10-26T06:30:00Z"), Outcome::Deny);
    assert_eq!(
        outcome_at(&frame, "2026-10-26T07:00:00Z"),
        Outcome::AllowAuto
    );
    assert_eq!(
        outcome_at(&frame, "2026-10-26T17:59:00Z"),
        Outcome::AllowAuto
    );
    assert_eq!(outcome_at(&frame, "2026-10-26T18:00:00Z"), Outcome::Deny);
    // Friday before, summer time (UTC+2).
    assert_eq!(
        outcome_at(&frame, "2026-10-23T06:00:00Z"),
        Outcome::AllowAuto
    );
    assert_eq!(outcome_at(&frame, "2026-10-23T17:00:00Z"), Outcome::Deny);
    let mut sundays = frame;
    sundays.days = vec![Weekday::Sun];
    assert_eq!(outcome_at(&sundays, "2026-10-25T06:59:00Z"), Outcome::Deny);
    assert_eq!(
        outcome_at(&sundays, "2026-10-25T07:00:00Z"),
        Outcome::AllowAuto
    );
}

#[test]
fn outside_the_timeframe_says_when_it_is_open() {
    let mut office = flow("office");
    office.settings.timeframe = Some(berlin_office_hours());
    let mut req = request();
    req.now = at("2026-03-29T10:00:00Z");
    let decision = decide(vec![office], &req);
    assert_eq!(codes(&decision), ["no_flow_covers", "outside_timeframe"]);
    assert_eq!(
        decision.reasons[1].message,
        "flow \"office\" takes requests only mon, tue, wed, thu, fri 08:00-19:00 Europe/Berlin; it is sun 12:00 there"
    );
}

#[test]
fn a_required_justification_must_not_be_blank() {
    let mut strict = flow("strict");
    strict.settings.justification = Justification::Required;
    let decision = decide(vec![strict.clone()], &request());
    assert_eq!(
        codes(&decision),
        ["no_flow_covers", "justification_required"]
    );
    let mut blank = request();
    blank.justification = Some("  \n".to_owned());
    assert_eq!(decide(vec![strict.clone()], &blank).outcome, Outcome::Deny);
    let mut given = request();
    given.justification = Some("INC-1234".to_owned());
    assert_eq!(decide(vec![strict], &given).outcome, Outcome::AllowAuto);
}

#[test]
fn every_pair_must_be_covered() {
    let req = request_for(vec![
        item(resource("acct-1"), "ReadOnlyAccess"),
        item(resource("acct-2"), "AdministratorAccess"),
    ]);
    let decision = decide(vec![flow("a")], &req);
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(codes(&decision), ["flow_chosen", "no_flow_covers"]);
    assert_eq!(decision.reasons[1].item, Some(1));
    assert!(decision.reasons[1].message.contains("AdministratorAccess"));
    assert!(decision.items[0].flow.is_some());
    assert!(decision.items[1].flow.is_none());
}

#[test]
fn automatic_flows_are_never_chosen_for_requests() {
    let mut automatic = flow("automatic");
    automatic.kind = FlowKind::Automatic;
    automatic.approval = None;
    let decision = decide(vec![automatic], &request());
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(codes(&decision), ["no_flow_covers"]);
}

#[test]
fn self_serve_flows_missing_required_parts_are_skipped() {
    let mut no_approval = flow("no-approval");
    no_approval.approval = None;
    let mut no_duration = flow("no-duration");
    no_duration.duration = None;
    let no_groups = with_approval(flow("no-groups"), policy(ApprovalMode::AllOf, vec![]));
    let decision = decide(vec![no_approval, no_duration, no_groups], &request());
    assert_eq!(decision.outcome, Outcome::Deny);
}

fn needing(name: &str, approvals: u32, max_hours: u64) -> crate::flow::FlowSpec {
    let mut spec = with_approval(
        flow(name),
        policy(
            ApprovalMode::AllOf,
            vec![group(
                vec![Approver::Group("sre-leads".to_owned())],
                approvals,
            )],
        ),
    );
    spec.duration = Some(crate::flow::DurationPolicy {
        default: hours(1),
        max: hours(max_hours),
    });
    spec
}

fn chosen_name(flows: Vec<crate::flow::FlowSpec>) -> (String, String) {
    let decision = decide(flows, &request());
    let chosen = decision.items[0].flow.clone().expect("a flow is chosen");
    let reason = decision
        .reasons_with(ReasonCode::FlowChosen)
        .next()
        .expect("flow_chosen reason")
        .message
        .clone();
    (chosen.name, reason)
}

#[test]
fn choice_prefers_auto_approval() {
    let mut fast = flow("z-auto");
    fast.duration = Some(crate::flow::DurationPolicy {
        default: hours(1),
        max: hours(1),
    });
    let (name, why) = chosen_name(vec![needing("a-approval", 1, 8), fast]);
    assert_eq!(name, "z-auto");
    assert_eq!(
        why,
        "flow \"z-auto\" (version 1) chosen for ReadOnlyAccess on aws.account \"acct-1\" (id acct-1, integration aws-prod): \
         it approves automatically and \"a-approval\" needs approval; other candidates: \"a-approval\" (version 1)"
    );
}

#[test]
fn choice_prefers_fewer_approvals() {
    let (name, why) = chosen_name(vec![needing("a-two", 2, 8), needing("b-one", 1, 1)]);
    assert_eq!(name, "b-one");
    assert!(
        why.contains("it needs 1 approval and \"a-two\" needs 2"),
        "{why}"
    );

    // any_of counts its smallest group; all_of the sum of its groups.
    let any_of = with_approval(
        flow("a-any"),
        policy(
            ApprovalMode::AnyOf,
            vec![
                group(vec![Approver::Manager], 1),
                group(vec![Approver::Group("x".to_owned())], 3),
            ],
        ),
    );
    let all_of = with_approval(flow("b-all"), manager_then_leads());
    let (name, why) = chosen_name(vec![all_of, any_of]);
    assert_eq!(name, "a-any");
    assert!(
        why.contains("it needs 1 approval and \"b-all\" needs 2"),
        "{why}"
    );
}

#[test]
fn choice_prefers_the_longest_maximum_then_the_name() {
    let (name, why) = chosen_name(vec![needing("a-short", 1, 2), needing("b-long", 1, 8)]);
    assert_eq!(name, "b-long");
    assert!(
        why.contains("its maximum duration (8h) is longer than that of \"a-short\" (2h)"),
        "{why}"
    );
    let (name, why) = chosen_name(vec![
        needing("c-same", 1, 4),
        needing("b-same", 1, 4),
        needing("d-same", 1, 4),
    ]);
    assert_eq!(name, "b-same");
    assert!(
        why.ends_with("other candidates: \"c-same\" (version 1), \"d-same\" (version 1)"),
        "{why}"
    );
    assert!(why.contains("comes first by name"), "{why}");
    let decision = decide(
        vec![needing("c-same", 1, 4), needing("b-same", 1, 4)],
        &request(),
    );
    let candidates: Vec<&str> = decision.items[0]
        .candidates
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(candidates, ["b-same", "c-same"]);
}

#[test]
fn the_only_candidate_is_explained_too() {
    let (_, why) = chosen_name(vec![flow("only")]);
    assert!(why.ends_with("it is the only flow that covers it"), "{why}");
}

#[test]
fn no_duration_means_the_default_and_more_than_the_max_is_refused() {
    let mut req = request();
    req.duration = Some(hours(4));
    assert_eq!(
        decide(vec![flow("prod-readonly")], &req).duration,
        Some(hours(4))
    );

    req.duration = Some(hours(6));
    let decision = decide(vec![flow("prod-readonly")], &req);
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(codes(&decision), ["duration_above_max"]);
    assert_eq!(
        decision.reasons[0].message,
        "requested 6h is longer than the maximum of 4h allowed by flow \"prod-readonly\""
    );
    assert_eq!(decision.reasons[0].item, Some(0));
    assert_eq!(decision.items[0].flow, None);
    assert_eq!(decision.duration, None);

    req.duration = Some(Duration::ZERO);
    let decision = decide(vec![flow("prod-readonly")], &req);
    assert_eq!(codes(&decision), ["flow_chosen", "invalid_duration"]);
}

#[test]
fn several_flows_take_the_smallest_max_and_default() {
    let mut wide = flow("wide");
    wide.targets[0].include.ids = strings(&["acct-1"]);
    wide.duration = Some(crate::flow::DurationPolicy {
        default: hours(2),
        max: hours(8),
    });
    let mut narrow = flow("narrow");
    narrow.targets[0].include.ids = strings(&["acct-2"]);
    narrow.duration = Some(crate::flow::DurationPolicy {
        default: Duration::from_secs(1800),
        max: hours(3),
    });
    let mut req = request_for(vec![
        item(resource("acct-1"), "ReadOnlyAccess"),
        item(resource("acct-2"), "ReadOnlyAccess"),
    ]);
    let decision = decide(vec![wide.clone(), narrow.clone()], &req);
    assert_eq!(decision.outcome, Outcome::AllowAuto);
    assert_eq!(decision.duration, Some(Duration::from_secs(1800)));
    req.duration = Some(hours(5));
    let decision = decide(vec![wide, narrow], &req);
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(
        decision
            .reasons_with(ReasonCode::DurationAboveMax)
            .next()
            .expect("duration reason")
            .message,
        "requested 5h is longer than the maximum of 3h allowed by flow \"narrow\""
    );
}

#[test]
fn approval_flows_produce_a_plan_and_freeze_the_manager() {
    let decision = decide(
        vec![with_approval(flow("prod-readonly"), manager_then_leads())],
        &request(),
    );
    assert_eq!(decision.outcome, Outcome::NeedsApproval);
    assert_eq!(codes(&decision), ["flow_chosen", "approval_required"]);
    assert_eq!(
        decision.reasons[1].message,
        "approval required: \"prod-readonly\" (version 1) needs all of: 1 of manager; 1 of group sre-leads"
    );
    let plan = decision.approval.as_ref().expect("a plan");
    assert_eq!(plan.parts.len(), 1);
    assert_eq!(plan.groups.len(), 2);
    assert_eq!(plan.manager.as_deref(), Some("bob@example.com"));
    assert_eq!(decision.inputs.manager.as_deref(), Some("bob@example.com"));
    assert_eq!(decision.duration, Some(hours(1)));
}

#[test]
fn mixed_auto_and_approval_flows_need_approval_for_the_approval_ones() {
    let mut auto_flow = flow("a-auto");
    auto_flow.targets[0].include.ids = strings(&["acct-1"]);
    let mut approval_flow = with_approval(flow("b-approval"), manager_then_leads());
    approval_flow.targets[0].include.ids = strings(&["acct-2"]);
    let req = request_for(vec![
        item(resource("acct-1"), "ReadOnlyAccess"),
        item(resource("acct-2"), "ReadOnlyAccess"),
    ]);
    let decision = decide(vec![auto_flow, approval_flow], &req);
    assert_eq!(decision.outcome, Outcome::NeedsApproval);
    let plan = decision.approval.expect("a plan");
    assert_eq!(plan.parts.len(), 1);
    assert_eq!(plan.parts[0].flow.name, "b-approval");
    assert_eq!(plan.parts[0].items, [1]);
}

#[test]
fn frozen_inputs_keep_what_was_used_and_nothing_else() {
    let mut prod = flow("prod");
    prod.requesters.any_of = vec![Principal::Group("engineering".to_owned())];
    prod.targets[0].include.tags = tags(&[("env", "prod")]);
    prod.targets[0].exclude.tags = tags(&[("tier", "payments")]);
    prod.targets[0].include.descendants_of = strings(&["ou-prod"]);
    let mut req = request();
    req.requester.groups.insert("unrelated".to_owned());
    req.items[0]
        .resource
        .tags
        .insert("cost-center".to_owned(), "42".to_owned());
    let decision = decide(vec![prod], &req);
    let inputs = &decision.inputs;
    assert_eq!(inputs.groups, ["engineering".to_owned()].into());
    assert_eq!(inputs.items[0].tags, tags(&[("env", "prod")]));
    assert_eq!(inputs.items[0].ancestors, ["ou-prod".to_owned()].into());
    assert_eq!(inputs.now, monday_noon());
    assert_eq!(inputs.manager, None);
}

#[test]
fn the_record_round_trips_through_json() {
    let mut req = request();
    req.justification = Some("INC-1".to_owned());
    let decision = decide(
        vec![with_approval(flow("prod-readonly"), manager_then_leads())],
        &req,
    );
    let json = serde_json::to_string(&decision).expect("decisions serialize");
    assert!(json.contains("\"outcome\":\"needs_approval\""), "{json}");
    assert!(json.contains("\"now\":\"2026-03-30T10:00:00Z\""), "{json}");
    let back: crate::decide::Decision = serde_json::from_str(&json).expect("and read back");
    assert_eq!(back, decision);
}

#[test]
fn near_misses_are_capped() {
    let flows: Vec<_> = (0..8)
        .map(|i| {
            let mut spec = flow(&format!("f{i}"));
            spec.requesters.any_of = vec![Principal::Group("finance".to_owned())];
            spec
        })
        .collect();
    let decision = decide(flows, &request());
    assert_eq!(decision.reasons.len(), 6);
    assert!(
        decision.reasons[0]
            .message
            .ends_with("(more than 5 flows come close; the first 5 by name follow)")
    );
}

#[test]
fn the_design_example_flow_decides_as_documented() {
    let yaml = r#"
name: prod-readonly
kind: self_serve
requesters:
  any_of: [{ group: engineering }, { on_call: pagerduty/primary-sre }]
  except: [{ user: contractor@example.com }]
targets:
  - integration: aws-prod
    resource_types: [aws.account]
    include: { tags: { env: prod } }
    exclude: { tags: { tier: payments } }
    permissions: [ReadOnlyAccess]
duration: { default: 1h, max: 4h }
approval:
  mode: all_of
  groups:
    - { approvers: [manager], min: 1 }
    - { approvers: [{ group: sre-leads }, { on_call: pagerduty/primary-sre }, resource_owner], min: 1 }
  requester_can_approve: false
settings:
  justification: required
  timeframe: { days: [mon, tue, wed, thu, fri], from: "08:00", to: "19:00", time_zone: Europe/Berlin }
"#;
    let parsed = crate::flow::parse_yaml(yaml);
    assert!(parsed.is_valid(), "{:?}", parsed.problems);
    let flows = parsed.flows;
    let mut req = request();
    req.justification = Some("INC-42: checking the payments dashboards".to_owned());
    let decision = decide(flows.clone(), &req);
    assert_eq!(decision.outcome, Outcome::NeedsApproval);
    let plan = decision.approval.expect("a plan");
    assert_eq!(plan.parts[0].resource_ids, ["acct-1"]);

    req.duration = Some(hours(6));
    let decision = decide(flows.clone(), &req);
    assert_eq!(
        decision
            .reasons_with(ReasonCode::DurationAboveMax)
            .next()
            .expect("duration reason")
            .message,
        "requested 6h is longer than the maximum of 4h allowed by flow \"prod-readonly\""
    );

    let mut contractor = request();
    contractor.requester.email = "Contractor@Example.com".to_owned();
    contractor.justification = Some("x".to_owned());
    let decision = decide(flows, &contractor);
    assert_eq!(
        codes(&decision),
        ["no_flow_covers", "requester_not_eligible"]
    );
}

#[test]
fn a_shared_engine_swaps_whole_engines() {
    let shared = SharedEngine::new(Engine::new(vec![]));
    assert_eq!(shared.decide(&request()).outcome, Outcome::Deny);
    let before = shared.load();
    shared.replace(Engine::new(vec![v(flow("a"))]));
    assert_eq!(shared.decide(&request()).outcome, Outcome::AllowAuto);
    // A decision that started on the old engine finishes on it.
    assert_eq!(before.decide(&request()).outcome, Outcome::Deny);
    assert_eq!(shared.load().flow_count(), 1);
}

#[test]
fn concurrent_decisions_see_one_engine_or_the_other() {
    // Flow "a" v1 covers with auto approval and max 4h; v2 needs approval and allows 8h. A decision
    // mixing them would show one version's outcome with the other's duration policy.
    let v1 = VersionedFlow {
        spec: flow("a"),
        version: 1,
    };
    let mut v2_spec = with_approval(flow("a"), manager_then_leads());
    v2_spec.duration = Some(crate::flow::DurationPolicy {
        default: hours(3),
        max: hours(8),
    });
    let v2 = VersionedFlow {
        spec: v2_spec,
        version: 2,
    };
    let shared = std::sync::Arc::new(SharedEngine::new(Engine::new(vec![v1.clone()])));
    let req = request();
    std::thread::scope(|scope| {
        let reader = {
            let shared = shared.clone();
            let req = req.clone();
            scope.spawn(move || {
                for _ in 0..2000 {
                    let decision = shared.decide(&req);
                    let version = decision.items[0].flow.as_ref().map(|f| f.version);
                    match version {
                        Some(1) => {
                            assert_eq!(decision.outcome, Outcome::AllowAuto);
                            assert_eq!(decision.duration, Some(hours(1)));
                        }
                        Some(2) => {
                            assert_eq!(decision.outcome, Outcome::NeedsApproval);
                            assert_eq!(decision.duration, Some(hours(3)));
                        }
                        other => panic!("unexpected version {other:?}"),
                    }
                }
            })
        };
        for i in 0..200 {
            let next = if i % 2 == 0 { v2.clone() } else { v1.clone() };
            shared.replace(Engine::new(vec![next]));
        }
        reader.join().expect("reader thread");
    });
}

#[test]
fn the_choice_is_made_among_flows_that_allow_the_requested_duration() {
    let mut short_auto = flow("a-short-auto");
    short_auto.duration = Some(crate::flow::DurationPolicy {
        default: hours(1),
        max: hours(2),
    });
    let long_approval = needing("b-long-approval", 1, 8);
    let flows = vec![short_auto, long_approval];

    let mut req = request();
    req.duration = Some(hours(1));
    let decision = decide(flows.clone(), &req);
    assert_eq!(decision.outcome, Outcome::AllowAuto);
    let chosen = decision.items[0].flow.as_ref().expect("a flow is chosen");
    assert_eq!(chosen.name, "a-short-auto");
    assert_eq!(decision.items[0].candidates.len(), 2);

    // Six hours: only the approval flow can grant that, so it is chosen rather than refusing.
    req.duration = Some(hours(6));
    let decision = decide(flows.clone(), &req);
    assert_eq!(decision.outcome, Outcome::NeedsApproval);
    let chosen = decision.items[0].flow.as_ref().expect("a flow is chosen");
    assert_eq!(chosen.name, "b-long-approval");
    assert_eq!(decision.items[0].candidates.len(), 1);
    assert_eq!(decision.duration, Some(hours(6)));

    // Nine hours: no flow allows it; the refusal names the most generous one.
    req.duration = Some(hours(9));
    let decision = decide(flows, &req);
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(codes(&decision), ["duration_above_max"]);
    assert_eq!(
        decision.reasons[0].message,
        "requested 9h is longer than the maximum of 8h allowed by flow \"b-long-approval\""
    );
}
