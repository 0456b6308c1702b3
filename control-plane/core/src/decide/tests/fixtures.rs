//! Builders for test flows, requesters, resources and requests.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::decide::{
    AccessItem, Decision, DecisionRequest, Engine, Requester, Resource, VersionedFlow, reference,
};
use crate::flow::{
    ApprovalMode, ApprovalPolicy, Approver, ApproverGroup, DurationPolicy, FlowKind, FlowSpec,
    Principal, Requesters, ResourceSelector, Settings, Target,
};

pub(crate) const HOUR: u64 = 3600;

pub(crate) fn hours(n: u64) -> Duration {
    Duration::from_secs(n * HOUR)
}

pub(crate) fn at(text: &str) -> jiff::Timestamp {
    text.parse().expect("test timestamps are valid")
}

/// Monday 2026-03-30, 12:00 in Berlin.
pub(crate) fn monday_noon() -> jiff::Timestamp {
    at("2026-03-30T10:00:00Z")
}

/// A self-serve flow anyone may use for `ReadOnlyAccess` on anything in `aws-prod`, 1h by
/// default, 4h at most, approved automatically.
pub(crate) fn flow(name: &str) -> FlowSpec {
    FlowSpec {
        name: name.to_owned(),
        kind: FlowKind::SelfServe,
        description: String::new(),
        requesters: Requesters {
            any_of: vec![Principal::Everyone],
            except: vec![],
        },
        targets: vec![target()],
        duration: Some(DurationPolicy {
            default: hours(1),
            max: hours(4),
        }),
        approval: Some(auto()),
        settings: Settings::default(),
    }
}

pub(crate) fn target() -> Target {
    Target {
        integration: "aws-prod".to_owned(),
        resource_types: vec![],
        include: ResourceSelector::default(),
        exclude: ResourceSelector::default(),
        permissions: vec!["ReadOnlyAccess".to_owned()],
    }
}

pub(crate) fn auto() -> ApprovalPolicy {
    ApprovalPolicy {
        mode: ApprovalMode::Auto,
        groups: vec![],
        requester_can_approve: false,
    }
}

pub(crate) fn group(approvers: Vec<Approver>, min: u32) -> ApproverGroup {
    ApproverGroup { approvers, min }
}

pub(crate) fn policy(mode: ApprovalMode, groups: Vec<ApproverGroup>) -> ApprovalPolicy {
    ApprovalPolicy {
        mode,
        groups,
        requester_can_approve: false,
    }
}

pub(crate) fn manager_then_leads() -> ApprovalPolicy {
    policy(
        ApprovalMode::AllOf,
        vec![
            group(vec![Approver::Manager], 1),
            group(vec![Approver::Group("sre-leads".to_owned())], 1),
        ],
    )
}

pub(crate) fn with_approval(mut spec: FlowSpec, approval: ApprovalPolicy) -> FlowSpec {
    spec.approval = Some(approval);
    spec
}

pub(crate) fn v(spec: FlowSpec) -> VersionedFlow {
    VersionedFlow { spec, version: 1 }
}

pub(crate) fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(crate) fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

/// An `aws.account` in `aws-prod` named like its id, tagged `env: prod`, under `ou-prod`.
pub(crate) fn resource(id: &str) -> Resource {
    Resource {
        integration: "aws-prod".to_owned(),
        resource_type: "aws.account".to_owned(),
        id: id.to_owned(),
        name: id.to_owned(),
        tags: tags(&[("env", "prod")]),
        ancestors: strings(&["ou-prod", "root"]),
        owners: vec![],
    }
}

pub(crate) fn item(resource: Resource, permission: &str) -> AccessItem {
    AccessItem {
        resource,
        permission: permission.to_owned(),
    }
}

pub(crate) fn alice() -> Requester {
    Requester {
        email: "alice@example.com".to_owned(),
        groups: ["engineering".to_owned()].into(),
        manager: Some("bob@example.com".to_owned()),
        on_call: Default::default(),
        time_zone: Some("Europe/Berlin".to_owned()),
    }
}

/// Alice asks for `ReadOnlyAccess` on `acct-1`, no duration, no justification, Monday noon.
pub(crate) fn request() -> DecisionRequest {
    request_for(vec![item(resource("acct-1"), "ReadOnlyAccess")])
}

pub(crate) fn request_for(items: Vec<AccessItem>) -> DecisionRequest {
    DecisionRequest {
        requester: alice(),
        items,
        duration: None,
        justification: None,
        now: monday_noon(),
    }
}

/// Decides with the engine, checks the reference agrees, and returns the decision.
pub(crate) fn decide(flows: Vec<FlowSpec>, req: &DecisionRequest) -> Decision {
    decide_versioned(flows.into_iter().map(v).collect(), req)
}

pub(crate) fn decide_versioned(flows: Vec<VersionedFlow>, req: &DecisionRequest) -> Decision {
    let expected = reference::decide(&flows, req);
    let decision = Engine::new(flows).decide(req);
    assert_eq!(decision, expected, "engine and reference disagree");
    decision
}

/// The reason codes of a decision, in order, as their stable words.
pub(crate) fn codes(decision: &Decision) -> Vec<&'static str> {
    decision
        .reasons
        .iter()
        .map(|reason| reason.code.as_str())
        .collect()
}
