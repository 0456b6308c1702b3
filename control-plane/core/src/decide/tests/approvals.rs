//! Approval plans: who may approve, distinct approvers for `all_of`, no self-approval.

use super::fixtures::*;
use crate::decide::{ApprovalPlan, ApproverDirectory, NotEligibleCode, Outcome, StaticDirectory};
use crate::flow::{ApprovalMode, ApprovalPolicy, Approver, FlowSpec};

/// The plan for alice's request under one flow with `approval`.
fn plan_for(approval: ApprovalPolicy) -> ApprovalPlan {
    plan_with(with_approval(flow("prod-readonly"), approval), request())
}

fn plan_with(spec: FlowSpec, req: crate::decide::DecisionRequest) -> ApprovalPlan {
    let decision = decide(vec![spec], &req);
    assert_eq!(
        decision.outcome,
        Outcome::NeedsApproval,
        "{:?}",
        decision.reasons
    );
    decision.approval.expect("needs approval comes with a plan")
}

fn people(list: &[&str]) -> Vec<String> {
    strings(list)
}

fn leads() -> StaticDirectory {
    StaticDirectory::new()
        .with_member("carol@example.com", "sre-leads")
        .with_member("dave@example.com", "sre-leads")
}

#[test]
fn all_of_needs_every_group() {
    let plan = plan_for(manager_then_leads());
    let dir = leads();
    let now = monday_noon();
    assert!(
        !plan
            .evaluate(&people(&["bob@example.com"]), &dir, now)
            .satisfied
    );
    assert!(
        !plan
            .evaluate(&people(&["carol@example.com"]), &dir, now)
            .satisfied
    );
    let both = plan.evaluate(
        &people(&["carol@example.com", "bob@example.com"]),
        &dir,
        now,
    );
    assert!(both.satisfied);
    assert_eq!(both.counted[0], ["bob@example.com"]);
    assert_eq!(both.counted[1], ["carol@example.com"]);
    assert!(both.open.is_empty());
}

#[test]
fn all_of_needs_distinct_people() {
    // Bob is the manager and a lead: alone he fills one group, not both.
    let plan = plan_for(manager_then_leads());
    let dir = leads().with_member("bob@example.com", "sre-leads");
    let now = monday_noon();
    let alone = plan.evaluate(&people(&["bob@example.com"]), &dir, now);
    assert!(!alone.satisfied);
    assert_eq!(alone.open.len(), 1);
    assert_eq!(alone.open[0].missing, 1);
    assert_eq!(
        plan.eligibility("bob@example.com", &dir, now),
        Ok(vec![0, 1])
    );
    // With a second lead, Bob is moved to the manager slot whichever order they approved in.
    for order in [
        ["bob@example.com", "carol@example.com"],
        ["carol@example.com", "bob@example.com"],
    ] {
        let status = plan.evaluate(&people(&order), &dir, now);
        assert!(status.satisfied, "{order:?}");
        assert_eq!(status.counted[0], ["bob@example.com"]);
        assert_eq!(status.counted[1], ["carol@example.com"]);
    }
}

#[test]
fn matching_reassigns_along_augmenting_paths() {
    // Group 0: leads (carol, dave) min 1; group 1: carol only, min 1. Carol approves first and is
    // taken by group 0 by a naive greedy; matching moves her to group 1 and gives group 0 to dave.
    let approval = policy(
        ApprovalMode::AllOf,
        vec![
            group(vec![Approver::Group("sre-leads".to_owned())], 1),
            group(vec![Approver::User("carol@example.com".to_owned())], 1),
        ],
    );
    let plan = plan_for(approval);
    let status = plan.evaluate(
        &people(&["carol@example.com", "dave@example.com"]),
        &leads(),
        monday_noon(),
    );
    assert!(status.satisfied);
}

#[test]
fn min_counts_distinct_people_and_duplicates_count_once() {
    let approval = policy(
        ApprovalMode::AllOf,
        vec![group(vec![Approver::Group("sre-leads".to_owned())], 2)],
    );
    let plan = plan_for(approval);
    let dir = leads().with_alias("carol.alias@example.com", "carol@example.com");
    let now = monday_noon();
    let same = plan.evaluate(
        &people(&[
            "carol@example.com",
            "CAROL@example.com",
            "carol.alias@example.com",
        ]),
        &dir,
        now,
    );
    assert!(!same.satisfied);
    assert_eq!(same.open[0].missing, 1);
    assert!(
        plan.evaluate(
            &people(&["carol@example.com", "dave@example.com"]),
            &dir,
            now
        )
        .satisfied
    );
}

#[test]
fn any_of_needs_one_group() {
    let approval = policy(
        ApprovalMode::AnyOf,
        vec![
            group(vec![Approver::Manager], 1),
            group(vec![Approver::Group("sre-leads".to_owned())], 2),
        ],
    );
    let plan = plan_for(approval);
    let dir = leads();
    let now = monday_noon();
    assert!(
        plan.evaluate(&people(&["bob@example.com"]), &dir, now)
            .satisfied
    );
    let one_lead = plan.evaluate(&people(&["carol@example.com"]), &dir, now);
    assert!(!one_lead.satisfied);
    assert_eq!(one_lead.open.len(), 2);
    assert_eq!(one_lead.open[1].missing, 1);
    assert!(
        plan.evaluate(
            &people(&["carol@example.com", "dave@example.com"]),
            &dir,
            now
        )
        .satisfied
    );
}

#[test]
fn the_requester_never_approves_their_own_request() {
    let approval = policy(
        ApprovalMode::AnyOf,
        vec![group(vec![Approver::Group("engineering".to_owned())], 1)],
    );
    let plan = plan_for(approval.clone());
    let dir = StaticDirectory::new()
        .with_alias("a.smith@example.com", "alice@example.com")
        .with_member("alice@example.com", "engineering");
    let now = monday_noon();
    for me in [
        "alice@example.com",
        "ALICE@Example.com",
        " alice@example.com",
        "a.smith@example.com",
    ] {
        let status = plan.evaluate(&people(&[me]), &dir, now);
        assert!(!status.satisfied, "{me}");
        assert_eq!(status.ignored.len(), 1);
        let err = plan.eligibility(me, &dir, now).expect_err("not eligible");
        assert_eq!(err.code, NotEligibleCode::Requester);
        assert_eq!(
            err.message,
            format!(
                "{me} is the requester, and flow \"prod-readonly\" does not let requesters approve their own requests"
            )
        );
    }
}

#[test]
fn case_differences_are_the_same_person_whatever_the_directory_says() {
    struct ExactDirectory;
    impl ApproverDirectory for ExactDirectory {
        fn groups_of(&self, _: &str) -> std::collections::BTreeSet<String> {
            ["engineering".to_owned()].into()
        }
        fn on_shift(&self, _: &str, _: &str, _: jiff::Timestamp) -> bool {
            false
        }
        fn integration_owners(&self, _: &str) -> Vec<String> {
            vec![]
        }
        fn resource_owners(&self, _: &str) -> Vec<String> {
            vec![]
        }
        fn same_person(&self, a: &str, b: &str) -> bool {
            a == b
        }
    }
    let plan = plan_for(policy(
        ApprovalMode::AnyOf,
        vec![group(vec![Approver::Group("engineering".to_owned())], 1)],
    ));
    let status = plan.evaluate(
        &people(&["Alice@Example.com"]),
        &ExactDirectory,
        monday_noon(),
    );
    assert!(!status.satisfied);
}

#[test]
fn requester_can_approve_when_the_flow_says_so() {
    let mut approval = policy(
        ApprovalMode::AnyOf,
        vec![group(vec![Approver::Group("engineering".to_owned())], 1)],
    );
    approval.requester_can_approve = true;
    let plan = plan_for(approval);
    let dir = StaticDirectory::new().with_member("alice@example.com", "engineering");
    assert!(
        plan.evaluate(&people(&["alice@example.com"]), &dir, monday_noon())
            .satisfied
    );
}

#[test]
fn on_call_is_read_at_approval_time() {
    let approval = policy(
        ApprovalMode::AnyOf,
        vec![group(vec![Approver::OnCall("pagerduty/sre".to_owned())], 1)],
    );
    let plan = plan_for(approval);
    let dir = StaticDirectory::new().with_shift(
        "erin@example.com",
        "pagerduty/sre",
        at("2026-03-30T08:00:00Z"),
        at("2026-03-30T16:00:00Z"),
    );
    let erin = people(&["erin@example.com"]);
    assert!(
        plan.evaluate(&erin, &dir, at("2026-03-30T09:00:00Z"))
            .satisfied
    );
    assert!(
        !plan
            .evaluate(&erin, &dir, at("2026-03-30T16:00:00Z"))
            .satisfied
    );
}

#[test]
fn nested_groups_count() {
    let approval = policy(
        ApprovalMode::AnyOf,
        vec![group(vec![Approver::Group("engineering".to_owned())], 1)],
    );
    let plan = plan_for(approval);
    let dir = StaticDirectory::new()
        .with_member("frank@example.com", "sre")
        .with_subgroup("sre", "engineering");
    assert!(
        plan.evaluate(&people(&["frank@example.com"]), &dir, monday_noon())
            .satisfied
    );
}

#[test]
fn resource_owners_approve_only_what_they_own() {
    let approval = policy(
        ApprovalMode::AllOf,
        vec![
            group(vec![Approver::Manager], 1),
            group(vec![Approver::ResourceOwner], 1),
        ],
    );
    let req = request_for(vec![
        item(resource("acct-1"), "ReadOnlyAccess"),
        item(resource("acct-2"), "ReadOnlyAccess"),
    ]);
    let plan = plan_with(with_approval(flow("prod-readonly"), approval), req);
    assert_eq!(plan.parts.len(), 2);
    assert_eq!(plan.parts[0].resource_ids, ["acct-1"]);
    assert_eq!(plan.parts[1].resource_ids, ["acct-2"]);
    let dir = StaticDirectory::new()
        .with_resource_owner("acct-1", "olga@example.com")
        .with_resource_owner("acct-2", "pete@example.com");
    let now = monday_noon();
    let partial = plan.evaluate(&people(&["bob@example.com", "olga@example.com"]), &dir, now);
    assert!(!partial.satisfied);
    assert_eq!(partial.parts, [true, false]);
    assert_eq!(partial.open.len(), 1);
    assert_eq!(partial.open[0].group, 3);
    assert_eq!(partial.open[0].approvers, [Approver::ResourceOwner]);
    assert!(
        plan.evaluate(
            &people(&["bob@example.com", "olga@example.com", "pete@example.com"]),
            &dir,
            now
        )
        .satisfied
    );
}

#[test]
fn integration_owners_approve_for_their_integration() {
    let approval = policy(
        ApprovalMode::AnyOf,
        vec![group(vec![Approver::IntegrationOwner], 1)],
    );
    let plan = plan_for(approval);
    let dir = StaticDirectory::new().with_integration_owner("aws-prod", "ivan@example.com");
    let now = monday_noon();
    assert!(
        plan.evaluate(&people(&["ivan@example.com"]), &dir, now)
            .satisfied
    );
    let other = StaticDirectory::new().with_integration_owner("aws-dev", "ivan@example.com");
    assert!(
        !plan
            .evaluate(&people(&["ivan@example.com"]), &other, now)
            .satisfied
    );
}

#[test]
fn strangers_are_told_who_may_approve() {
    let plan = plan_for(manager_then_leads());
    let err = plan
        .eligibility("mallory@example.com", &leads(), monday_noon())
        .expect_err("not eligible");
    assert_eq!(err.code, NotEligibleCode::NotAnApprover);
    assert_eq!(
        err.message,
        "mallory@example.com is not an approver of this request (approvers: the requester's manager (bob@example.com), members of group sre-leads)"
    );
    let status = plan.evaluate(&people(&["mallory@example.com"]), &leads(), monday_noon());
    assert_eq!(status.ignored[0].approver, "mallory@example.com");
    assert_eq!(status.open.len(), 2);
}

#[test]
fn an_empty_plan_is_never_satisfied() {
    let plan = ApprovalPlan {
        requester: "alice@example.com".to_owned(),
        manager: None,
        parts: vec![],
        groups: vec![],
    };
    assert!(
        !plan
            .evaluate(&people(&["bob@example.com"]), &leads(), monday_noon())
            .satisfied
    );
}

#[test]
fn status_round_trips_through_json() {
    let plan = plan_for(manager_then_leads());
    let status = plan.evaluate(&people(&["carol@example.com"]), &leads(), monday_noon());
    let json = serde_json::to_string(&status).expect("serializes");
    let back: crate::decide::ApprovalStatus = serde_json::from_str(&json).expect("reads back");
    assert_eq!(back, status);
}

#[test]
fn would_help_says_whom_to_ask() {
    let plan = plan_for(manager_then_leads());
    let dir = leads().with_member("bob@example.com", "sre-leads");
    let now = monday_noon();
    let so_far = people(&["carol@example.com"]);
    // Bob is the manager: he helps. Dave is another lead: the leads group is already filled.
    assert!(plan.would_help(&so_far, "bob@example.com", &dir, now));
    assert!(!plan.would_help(&so_far, "dave@example.com", &dir, now));
    assert!(!plan.would_help(&so_far, "alice@example.com", &dir, now));
    // Bob alone fills one slot; carol then helps by taking the leads slot.
    let bob = people(&["bob@example.com"]);
    assert!(plan.would_help(&bob, "carol@example.com", &dir, now));
    let done = people(&["bob@example.com", "carol@example.com"]);
    assert!(!plan.would_help(&done, "dave@example.com", &dir, now));
}

#[test]
fn a_damaged_plan_is_never_satisfied() {
    let mut plan = plan_for(manager_then_leads());
    let everyone = people(&["bob@example.com", "carol@example.com"]);
    assert!(plan.evaluate(&everyone, &leads(), monday_noon()).satisfied);
    plan.parts[0].groups = vec![];
    assert!(!plan.evaluate(&everyone, &leads(), monday_noon()).satisfied);
    plan.parts[0].groups = vec![0, 7];
    assert!(!plan.evaluate(&everyone, &leads(), monday_noon()).satisfied);
}
