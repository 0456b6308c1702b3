//! Property tests: every valid flow survives YAML, proto and JSON and comes back equal.

use std::collections::BTreeMap;
use std::time::Duration;

use latch_core::flow::{
    ApprovalMode, ApprovalPolicy, Approver, ApproverGroup, DurationPolicy, FlowKind, FlowSpec,
    Justification, MAX_DURATION, Principal, Requesters, ResourceSelector, Settings, Target,
    Timeframe, Weekday, from_proto, parse_yaml, render_yaml_stream,
};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

/// Non-empty text of several flavours: ordinary identifiers, words YAML would read as something else,
/// and arbitrary characters (controls, Unicode line breaks, quotes) to exercise the quoting.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9][a-zA-Z0-9._/@+-]{0,15}",
        select(vec![
            "true", "null", "~", "1e3", "0x1F", "08:00", "- x", "#c", "a: b", "[x]", " lead",
            "trail "
        ])
        .prop_map(str::to_owned),
        proptest::collection::vec(any::<char>(), 1..10).prop_map(String::from_iter),
    ]
}

fn email() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9.+]{0,8}@[a-z]{1,8}\\.(com|org)"
}

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?"
}

fn principal() -> impl Strategy<Value = Principal> {
    prop_oneof![
        email().prop_map(Principal::User),
        text().prop_map(Principal::Group),
        text().prop_map(Principal::OnCall),
        Just(Principal::Everyone),
    ]
}

fn approver() -> impl Strategy<Value = Approver> {
    prop_oneof![
        email().prop_map(Approver::User),
        text().prop_map(Approver::Group),
        text().prop_map(Approver::OnCall),
        Just(Approver::Manager),
        Just(Approver::ResourceOwner),
        Just(Approver::IntegrationOwner),
    ]
}

fn texts(max: usize) -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(text(), 0..=max)
}

fn selector() -> impl Strategy<Value = ResourceSelector> {
    // `<<` is refused as a tag key: YAML reads it as a merge key, quoted or not.
    let tag_key = text().prop_filter("the YAML merge key", |key| key != "<<");
    let tags =
        proptest::collection::btree_map(tag_key, prop_oneof![text(), Just(String::new())], 0..3);
    (texts(2), texts(2), tags, texts(2)).prop_map(|(ids, names, tags, descendants_of)| {
        ResourceSelector {
            ids,
            names,
            tags: tags.into_iter().collect::<BTreeMap<_, _>>(),
            descendants_of,
        }
    })
}

fn target() -> impl Strategy<Value = Target> {
    (
        text(),
        texts(2),
        selector(),
        selector(),
        proptest::collection::vec(text(), 1..3),
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

fn duration() -> impl Strategy<Value = DurationPolicy> {
    (1..=MAX_DURATION.as_secs())
        .prop_flat_map(|max| (1..=max, Just(max)))
        .prop_map(|(default, max)| DurationPolicy {
            default: Duration::from_secs(default),
            max: Duration::from_secs(max),
        })
}

fn group() -> impl Strategy<Value = ApproverGroup> {
    proptest::collection::vec(approver(), 1..4).prop_flat_map(|approvers| {
        let users: std::collections::BTreeSet<&Approver> = approvers.iter().collect();
        let all_users = approvers.iter().all(|a| matches!(a, Approver::User(_)));
        let most = if all_users { users.len() as u32 } else { 5 };
        (Just(approvers), 1..=most).prop_map(|(approvers, min)| ApproverGroup { approvers, min })
    })
}

fn approval() -> impl Strategy<Value = ApprovalPolicy> {
    prop_oneof![
        any::<bool>().prop_map(|requester_can_approve| ApprovalPolicy {
            mode: ApprovalMode::Auto,
            groups: vec![],
            requester_can_approve,
        }),
        (
            select(vec![ApprovalMode::AllOf, ApprovalMode::AnyOf]),
            proptest::collection::vec(group(), 1..3),
            any::<bool>()
        )
            .prop_map(|(mode, groups, requester_can_approve)| ApprovalPolicy {
                mode,
                groups,
                requester_can_approve
            }),
    ]
}

fn timeframe() -> impl Strategy<Value = Timeframe> {
    let days = subsequence(Weekday::ALL.to_vec(), 1..=7);
    let window = (0..1439i32).prop_flat_map(|from| (Just(from), from + 1..1440));
    let zone = select(vec![
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Asia/Kolkata",
    ]);
    (days, any::<bool>(), window, zone).prop_map(|(mut days, reverse, (from, to), zone)| {
        if reverse {
            days.reverse();
        }
        let time =
            |minutes: i32| jiff::civil::time((minutes / 60) as i8, (minutes % 60) as i8, 0, 0);
        Timeframe {
            days,
            from: time(from),
            to: time(to),
            time_zone: zone.to_owned(),
        }
    })
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        select(Justification::ALL.to_vec()),
        proptest::option::of(timeframe()),
    )
        .prop_map(|(justification, timeframe)| Settings {
            justification,
            timeframe,
        })
}

/// A valid flow of either kind.
fn flow() -> impl Strategy<Value = FlowSpec> {
    let common = (
        name(),
        prop_oneof![
            Just(String::new()),
            proptest::collection::vec(any::<char>(), 0..20).prop_map(String::from_iter)
        ],
        proptest::collection::vec(principal(), 1..3),
        proptest::collection::vec(principal(), 0..2),
        proptest::collection::vec(target(), 1..3),
        settings(),
    );
    let kind = prop_oneof![
        (duration(), approval()).prop_map(|(d, a)| (FlowKind::SelfServe, Some(d), Some(a))),
        Just((FlowKind::Automatic, None, None)),
    ];
    (common, kind).prop_map(
        |((name, description, any_of, except, targets, settings), (kind, duration, approval))| {
            FlowSpec {
                name,
                kind,
                description,
                requesters: Requesters { any_of, except },
                targets,
                duration,
                approval,
                settings,
            }
        },
    )
}

proptest! {
    #[test]
    fn yaml_round_trips(flow in flow()) {
        let yaml = flow.to_yaml();
        let parsed = parse_yaml(&yaml);
        prop_assert_eq!(&parsed.problems, &vec![], "{}", yaml);
        prop_assert_eq!(&parsed.flows, &vec![flow.clone()], "{}", yaml);
        prop_assert_eq!(parsed.flows[0].to_yaml(), yaml);
    }

    #[test]
    fn proto_round_trips(flow in flow()) {
        let parsed = from_proto(&[flow.to_proto()]);
        prop_assert_eq!(&parsed.problems, &vec![]);
        prop_assert_eq!(parsed.flows, vec![flow]);
    }

    #[test]
    fn yaml_to_proto_to_yaml_is_exact(flow in flow()) {
        let from_yaml = parse_yaml(&flow.to_yaml());
        let from_wire = from_proto(&[from_yaml.flows[0].to_proto()]);
        prop_assert_eq!(from_wire.flows[0].to_yaml(), flow.to_yaml());
    }

    #[test]
    fn json_round_trips_and_keeps_the_digest(flow in flow()) {
        let json = flow.canonical_json();
        let back: FlowSpec = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.digest(), flow.digest());
        prop_assert_eq!(back, flow);
    }

    #[test]
    fn streams_round_trip(flows in proptest::collection::vec(flow(), 1..4)) {
        // Names must be unique within a source.
        let flows: Vec<FlowSpec> = flows
            .into_iter()
            .enumerate()
            .map(|(i, mut f)| { f.name = format!("flow-{i}"); f })
            .collect();
        let parsed = parse_yaml(&render_yaml_stream(&flows));
        prop_assert_eq!(&parsed.problems, &vec![]);
        prop_assert_eq!(parsed.flows, flows);
    }
}
