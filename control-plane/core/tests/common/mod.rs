//! Flows shared by the integration tests.

#![allow(dead_code)] // each test file uses a different part of this module

use std::collections::BTreeMap;
use std::time::Duration;

use latch_core::flow::{
    ApprovalMode, ApprovalPolicy, Approver, ApproverGroup, DurationPolicy, FlowKind, FlowSpec,
    Justification, Parsed, Principal, Requesters, ResourceSelector, Settings, Target, Timeframe,
    Weekday,
};

/// The example flow of DESIGN.md, verbatim (comments included).
pub const DESIGN_EXAMPLE: &str = r#"name: prod-readonly
kind: self_serve                 # self_serve | automatic
requesters:
  any_of: [{ group: engineering }, { on_call: pagerduty/primary-sre }]
  except: [{ user: contractor@example.com }]
targets:
  - integration: aws-prod
    resource_types: [aws.account]
    include: { tags: { env: prod } }          # also: ids, names, descendants_of (hierarchy)
    exclude: { tags: { tier: payments } }
    permissions: [ReadOnlyAccess]
duration: { default: 1h, max: 4h }           # the clock starts when the grant is active
approval:
  mode: all_of                   # all_of | any_of over the groups below; `auto` needs no one
  groups:
    - { approvers: [manager], min: 1 }
    - { approvers: [{ group: sre-leads }, { on_call: pagerduty/primary-sre }, resource_owner], min: 1 }
  requester_can_approve: false
settings:
  justification: required
  timeframe: { days: [mon, tue, wed, thu, fri], from: "08:00", to: "19:00", time_zone: Europe/Berlin }
"#;

/// What [`DESIGN_EXAMPLE`] means.
pub fn design_example() -> FlowSpec {
    FlowSpec {
        name: "prod-readonly".into(),
        kind: FlowKind::SelfServe,
        description: String::new(),
        requesters: Requesters {
            any_of: vec![
                Principal::Group("engineering".into()),
                Principal::OnCall("pagerduty/primary-sre".into()),
            ],
            except: vec![Principal::User("contractor@example.com".into())],
        },
        targets: vec![Target {
            integration: "aws-prod".into(),
            resource_types: vec!["aws.account".into()],
            include: ResourceSelector {
                tags: tags(&[("env", "prod")]),
                ..ResourceSelector::default()
            },
            exclude: ResourceSelector {
                tags: tags(&[("tier", "payments")]),
                ..ResourceSelector::default()
            },
            permissions: vec!["ReadOnlyAccess".into()],
        }],
        duration: Some(DurationPolicy {
            default: Duration::from_secs(3600),
            max: Duration::from_secs(4 * 3600),
        }),
        approval: Some(ApprovalPolicy {
            mode: ApprovalMode::AllOf,
            groups: vec![
                ApproverGroup {
                    approvers: vec![Approver::Manager],
                    min: 1,
                },
                ApproverGroup {
                    approvers: vec![
                        Approver::Group("sre-leads".into()),
                        Approver::OnCall("pagerduty/primary-sre".into()),
                        Approver::ResourceOwner,
                    ],
                    min: 1,
                },
            ],
            requester_can_approve: false,
        }),
        settings: Settings {
            justification: Justification::Required,
            timeframe: Some(Timeframe {
                days: vec![
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                ],
                from: jiff::civil::time(8, 0, 0, 0),
                to: jiff::civil::time(19, 0, 0, 0),
                time_zone: "Europe/Berlin".into(),
            }),
        },
    }
}

/// A small valid automatic flow.
pub fn automatic_flow(name: &str) -> FlowSpec {
    FlowSpec {
        name: name.into(),
        kind: FlowKind::Automatic,
        description: "on-call engineers can read production".into(),
        requesters: Requesters {
            any_of: vec![Principal::OnCall("pagerduty/primary-sre".into())],
            except: vec![],
        },
        targets: vec![Target {
            integration: "gcp-prod".into(),
            resource_types: vec![],
            include: ResourceSelector {
                descendants_of: vec!["folders/123".into()],
                ..ResourceSelector::default()
            },
            exclude: ResourceSelector::default(),
            permissions: vec!["roles/viewer".into()],
        }],
        duration: None,
        approval: None,
        settings: Settings::default(),
    }
}

pub fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The problems of a parse as the lines a person would read, each prefixed by its flow.
pub fn lines(parsed: &Parsed) -> Vec<String> {
    parsed
        .problems
        .iter()
        .map(|p| p.with_flow().to_string())
        .collect()
}

/// The problems of a parse of one flow, as `path: message` lines.
pub fn plain_lines(parsed: &Parsed) -> Vec<String> {
    parsed.problems.iter().map(ToString::to_string).collect()
}

/// A valid flow in YAML with `replace` applied to the design example: each `(from, to)` pair
/// replaces the first occurrence of `from`. Panics when `from` is missing, so tests cannot rot.
pub fn example_with(replacements: &[(&str, &str)]) -> String {
    let mut text = DESIGN_EXAMPLE.to_owned();
    for (from, to) in replacements {
        assert!(text.contains(from), "the example has no {from:?}");
        text = text.replacen(from, to, 1);
    }
    text
}
