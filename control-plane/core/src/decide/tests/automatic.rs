//! Automatic flows: what they entitle now, and what changes when context changes.

use std::collections::BTreeSet;

use super::fixtures::*;
use crate::decide::{Entitlement, Requester, VersionedFlow, diff, entitlements};
use crate::flow::{FlowKind, Principal, Timeframe, Weekday};

fn automatic(any_of: Vec<Principal>) -> VersionedFlow {
    let mut spec = flow("sre-readonly");
    spec.kind = FlowKind::Automatic;
    spec.approval = None;
    spec.duration = None;
    spec.requesters.any_of = any_of;
    spec.targets[0].include.tags = tags(&[("env", "prod")]);
    spec.targets[0].permissions = strings(&["ReadOnlyAccess", "ViewOnlyAccess"]);
    v(spec)
}

fn person(email: &str, groups: &[&str], on_call: &[&str]) -> Requester {
    Requester {
        email: email.to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        manager: None,
        on_call: on_call.iter().map(|s| (*s).to_owned()).collect(),
        time_zone: None,
    }
}

fn entitlement(identity: &str, resource_id: &str, permission: &str) -> Entitlement {
    Entitlement {
        identity: identity.to_owned(),
        integration: "aws-prod".to_owned(),
        resource_id: resource_id.to_owned(),
        permission: permission.to_owned(),
    }
}

#[test]
fn members_get_every_covered_resource_and_permission() {
    let flow = automatic(vec![Principal::Group("sre".to_owned())]);
    let mut dev = resource("acct-dev");
    dev.tags = tags(&[("env", "dev")]);
    let people = [
        person("Sam@Example.com", &["sre"], &[]),
        person("tom@example.com", &["finance"], &[]),
    ];
    let got = entitlements(&flow, &people, &[resource("acct-1"), dev], monday_noon());
    let expected: BTreeSet<Entitlement> = [
        entitlement("sam@example.com", "acct-1", "ReadOnlyAccess"),
        entitlement("sam@example.com", "acct-1", "ViewOnlyAccess"),
    ]
    .into();
    assert_eq!(got, expected);
}

#[test]
fn context_changes_become_grants_and_revokes() {
    let flow = automatic(vec![Principal::OnCall("pagerduty/sre".to_owned())]);
    let resources = [resource("acct-1")];
    let before = entitlements(
        &flow,
        &[
            person("sam@example.com", &[], &["pagerduty/sre"]),
            person("uma@example.com", &[], &[]),
        ],
        &resources,
        monday_noon(),
    );
    // The shift changes hands.
    let after = entitlements(
        &flow,
        &[
            person("sam@example.com", &[], &[]),
            person("uma@example.com", &[], &["pagerduty/sre"]),
        ],
        &resources,
        monday_noon(),
    );
    let change = diff(&before, &after);
    assert_eq!(change.grant.len(), 2);
    assert!(change.grant.iter().all(|e| e.identity == "uma@example.com"));
    assert_eq!(change.revoke.len(), 2);
    assert!(
        change
            .revoke
            .iter()
            .all(|e| e.identity == "sam@example.com")
    );
    assert!(diff(&after, &after).is_empty());
}

#[test]
fn except_and_exclude_apply() {
    let mut everyone = automatic(vec![Principal::Everyone]);
    everyone.spec.requesters.except = vec![Principal::User("tom@example.com".to_owned())];
    everyone.spec.targets[0].exclude.ids = strings(&["acct-2"]);
    let got = entitlements(
        &everyone,
        &[
            person("TOM@example.com", &[], &[]),
            person("sam@example.com", &[], &[]),
        ],
        &[resource("acct-1"), resource("acct-2")],
        monday_noon(),
    );
    assert!(got.iter().all(|e| e.identity == "sam@example.com"));
    assert!(got.iter().all(|e| e.resource_id == "acct-1"));
    assert_eq!(got.len(), 2);
}

#[test]
fn nothing_outside_the_timeframe_and_nothing_from_self_serve_flows() {
    let mut weekend = automatic(vec![Principal::Everyone]);
    weekend.spec.settings.timeframe = Some(Timeframe {
        days: vec![Weekday::Sat, Weekday::Sun],
        from: jiff::civil::time(0, 0, 0, 0),
        to: jiff::civil::time(23, 59, 0, 0),
        time_zone: "UTC".to_owned(),
    });
    let people = [person("sam@example.com", &[], &[])];
    let resources = [resource("acct-1")];
    assert!(entitlements(&weekend, &people, &resources, monday_noon()).is_empty());
    assert_eq!(
        entitlements(&weekend, &people, &resources, at("2026-03-28T12:00:00Z")).len(),
        2
    );
    let self_serve = v(flow("self-serve"));
    assert!(entitlements(&self_serve, &people, &resources, monday_noon()).is_empty());
}
