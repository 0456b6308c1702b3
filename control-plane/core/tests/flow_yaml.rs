//! Reading flows from YAML: the documented example, every required message, and many problems at once.

mod common;

use common::{DESIGN_EXAMPLE, automatic_flow, design_example, example_with, lines, plain_lines};
use latch_core::flow::{FlowError, Severity, parse_yaml, render_yaml_stream};

#[test]
fn the_design_example_parses_to_the_expected_flow() {
    let parsed = parse_yaml(DESIGN_EXAMPLE);
    assert_eq!(parsed.problems, []);
    assert_eq!(parsed.flows, [design_example()]);
    assert_eq!(parsed.source_indices, [0]);
    assert_eq!(parsed.source_len, 1);
    assert!(parsed.is_valid());
}

#[test]
fn to_yaml_writes_the_documented_format() {
    let expected = r#"name: prod-readonly
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
    assert_eq!(design_example().to_yaml(), expected);
}

#[test]
fn unquoted_times_and_a_description_are_read() {
    let text = example_with(&[
        ("from: \"08:00\"", "from: 08:00"),
        (
            "kind: self_serve",
            "kind: self_serve\ndescription: \"Read-only access: prod\"",
        ),
    ]);
    let parsed = parse_yaml(&text);
    assert_eq!(parsed.problems, []);
    let mut expected = design_example();
    expected.description = "Read-only access: prod".into();
    assert_eq!(parsed.flows, [expected.clone()]);
    // And the description survives the way back.
    assert_eq!(parse_yaml(&expected.to_yaml()).flows, [expected]);
}

#[test]
fn optional_blocks_take_their_defaults() {
    let text = "name: minimal\nkind: self_serve\nrequesters: { any_of: [everyone] }\n\
                targets: [{ integration: db, permissions: [reader] }]\n\
                duration: { default: 30m, max: 1h }\napproval: { mode: auto }\n";
    let parsed = parse_yaml(text);
    assert_eq!(parsed.problems, []);
    let flow = &parsed.flows[0];
    assert_eq!(flow.settings, latch_core::flow::Settings::default());
    assert!(flow.targets[0].include.is_empty() && flow.targets[0].exclude.is_empty());
    let approval = flow.approval.as_ref().expect("approval is set");
    assert!(approval.groups.is_empty());
    assert!(!approval.requester_can_approve);
    assert_eq!(parse_yaml(&flow.to_yaml()).flows, parsed.flows);
}

#[test]
fn the_required_message_for_a_bad_duration() {
    let parsed = parse_yaml(&example_with(&[("default: 1h", "default: 5x")]));
    assert_eq!(
        plain_lines(&parsed),
        [r#"duration.default: "5x" is not a duration"#]
    );
    assert!(parsed.flows.is_empty());
}

#[test]
fn the_required_message_for_a_zero_min() {
    let parsed = parse_yaml(&example_with(&[("[manager], min: 1", "[manager], min: 0")]));
    assert_eq!(
        plain_lines(&parsed),
        ["approval.groups[0].min: must be at least 1"]
    );
}

#[test]
fn a_negative_min_gets_the_same_message() {
    let parsed = parse_yaml(&example_with(&[(
        "[manager], min: 1",
        "[manager], min: -3",
    )]));
    assert_eq!(
        plain_lines(&parsed),
        ["approval.groups[0].min: must be at least 1"]
    );
}

#[test]
fn the_required_message_for_an_unknown_time_zone() {
    let parsed = parse_yaml(&example_with(&[("Europe/Berlin", "Mars/Olympus")]));
    assert_eq!(
        plain_lines(&parsed),
        [r#"settings.timeframe.time_zone: unknown time zone "Mars/Olympus""#]
    );
}

#[test]
fn the_required_message_for_no_requesters() {
    let empty = example_with(&[(
        "any_of: [{ group: engineering }, { on_call: pagerduty/primary-sre }]",
        "any_of: []",
    )]);
    assert_eq!(
        plain_lines(&parse_yaml(&empty)),
        ["requesters: at least one requester is needed"]
    );

    // A missing `requesters` block says the same.
    let missing = example_with(&[(
        "requesters:\n  any_of: [{ group: engineering }, { on_call: pagerduty/primary-sre }]\n  except: [{ user: contractor@example.com }]\n",
        "",
    )]);
    assert_eq!(
        plain_lines(&parse_yaml(&missing)),
        ["requesters: at least one requester is needed"]
    );
}

#[test]
fn the_required_message_for_a_default_longer_than_max() {
    let parsed = parse_yaml(&example_with(&[(
        "default: 1h, max: 4h",
        "default: 3h, max: 1h",
    )]));
    assert_eq!(
        plain_lines(&parsed),
        ["duration.default (3h) is longer than duration.max (1h)"]
    );
    assert_eq!(parsed.problems[0].path, "duration.default");
    assert_eq!(
        parsed.problems[0].flow_name.as_deref(),
        Some("prod-readonly")
    );
}

#[test]
fn a_file_with_many_problems_reports_all_of_them_at_once() {
    let text = r#"# a comment before the first marker
---
name: Prod_RO
kind: selfserve
colour: blue
requesters:
  any_of: []
  except: [{ user: bob }, { usr: x }, nobody, { user: a@b, group: g }, {}]
targets:
  - integration: ""
    permissions: 42
    include: { tags: { "": x, k: 5 }, ids: [1, ""] }
  - 7
  - integration: gcp
    permissions: [a]
    exlude: {}
duration: { default: 5x, max: 1h }
approval:
  mode_x: all_of
  mode: any_of
  groups:
    - { approvers: [manager, boss, { user: a@x.com }], min: 0 }
    - { approvers: [{ user: a@x.com }, { user: b@x.com }], min: 3 }
    - { approvers: [], min: -2 }
    - { approvers: [manager] }
  requester_can_approve: "yes"
settings:
  justification: always
  timeframe: { days: [funday, mon, tue, mon], from: "25:00", to: 800, time_zone: Mars/Olympus }
"#;
    let parsed = parse_yaml(text);
    let expected = [
        r#"name: "Prod_RO" is not a valid name (lowercase letters, digits and dashes, 1 to 63 characters, starting and ending with a letter or digit)"#,
        r#"kind: unknown kind "selfserve" (expected one of: self_serve, automatic)"#,
        "requesters: at least one requester is needed",
        r#"requesters.except[0].user: "bob" is not an email address"#,
        r#"requesters.except[1].usr: unknown field "usr" (expected one of: user, group, on_call)"#,
        r#"requesters.except[2]: unknown requester "nobody" (expected {user: ...}, {group: ...}, {on_call: ...} or everyone)"#,
        r#"requesters.except[3]: expected exactly one of: user, group, on_call, got {user: "a@b", group: "g"}"#,
        "requesters.except[4]: expected exactly one of: user, group, on_call, got {}",
        "targets[0].integration: is required",
        "targets[0].include.ids[0]: expected a string, got 1",
        "targets[0].include.ids[1]: must not be empty",
        "targets[0].include.tags: tag keys must not be empty",
        "targets[0].include.tags.k: expected a string, got 5",
        "targets[0].permissions: expected a list of strings, got 42",
        "targets[1]: expected a mapping, got 7",
        r#"targets[2].exlude: unknown field "exlude" (expected one of: integration, resource_types, include, exclude, permissions)"#,
        r#"duration.default: "5x" is not a duration"#,
        r#"approval.groups[0].approvers[1]: unknown approver "boss" (expected {user: ...}, {group: ...}, {on_call: ...}, manager, resource_owner or integration_owner)"#,
        "approval.groups[0].min: must be at least 1",
        "approval.groups[1].min: needs 3 approvals but only 2 users are listed",
        "approval.groups[2].approvers: at least one approver is needed",
        "approval.groups[2].min: must be at least 1",
        "approval.groups[3].min: is required",
        r#"approval.requester_can_approve: expected true or false, got "yes""#,
        r#"approval.mode_x: unknown field "mode_x" (expected one of: mode, groups, requester_can_approve)"#,
        r#"settings.justification: unknown justification "always" (expected one of: optional, required)"#,
        r#"settings.timeframe.days[0]: unknown day "funday" (expected one of: mon, tue, wed, thu, fri, sat, sun)"#,
        "settings.timeframe.days[3]: mon is listed twice",
        r#"settings.timeframe.from: "25:00" is not a time (HH:MM)"#,
        "settings.timeframe.to: expected a time (HH:MM), got 800",
        r#"settings.timeframe.time_zone: unknown time zone "Mars/Olympus""#,
        r#"colour: unknown field "colour" (expected one of: name, kind, description, requesters, targets, duration, approval, settings)"#,
    ];
    assert_eq!(plain_lines(&parsed), expected);
    assert!(
        parsed
            .problems
            .iter()
            .all(|p| p.is_error() && p.flow_index == 0)
    );
    assert!(
        parsed
            .problems
            .iter()
            .all(|p| p.flow_name.as_deref() == Some("Prod_RO"))
    );
    assert_eq!(parsed.flows, []);
    assert_eq!(parsed.source_len, 1);
}

#[test]
fn unknown_fields_are_named_at_the_top_and_nested() {
    let parsed = parse_yaml(&example_with(&[
        ("kind: self_serve", "kind: self_serve\nowner: me"),
        ("mode: all_of", "mode: all_of\n  mode_x: any_of"),
        ("{ tags: { env: prod } }", "{ tag: { env: prod } }"),
        (
            "justification: required",
            "justification: required\n  reason: x",
        ),
    ]));
    assert_eq!(
        plain_lines(&parsed),
        [
            r#"targets[0].include.tag: unknown field "tag" (expected one of: ids, names, tags, descendants_of)"#,
            r#"approval.mode_x: unknown field "mode_x" (expected one of: mode, groups, requester_can_approve)"#,
            r#"settings.reason: unknown field "reason" (expected one of: justification, timeframe)"#,
            r#"owner: unknown field "owner" (expected one of: name, kind, description, requesters, targets, duration, approval, settings)"#,
        ]
    );
}

#[test]
fn wrong_types_name_the_offending_value() {
    let parsed = parse_yaml(&example_with(&[
        ("name: prod-readonly", "name: 12"),
        ("permissions: [ReadOnlyAccess]", "permissions: 42"),
        (
            "resource_types: [aws.account]",
            "resource_types: [aws.account, [nested]]",
        ),
        (
            "duration: { default: 1h, max: 4h }",
            "duration: { default: 3600, max: 4h }",
        ),
        (
            "requester_can_approve: false",
            "requester_can_approve: no way",
        ),
        (
            "{ approvers: [manager], min: 1 }",
            "{ approvers: manager, min: one }",
        ),
        (
            "any_of: [{ group: engineering }",
            "any_of: [{ group: [engineering] }",
        ),
    ]));
    assert_eq!(
        plain_lines(&parsed),
        [
            "name: expected a string, got 12",
            "requesters.any_of[0].group: expected a string, got [\"engineering\"]",
            "targets[0].resource_types[1]: expected a string, got [\"nested\"]",
            "targets[0].permissions: expected a list of strings, got 42",
            "duration.default: expected a duration such as 1h or 30m, got 3600",
            "approval.groups[0].approvers: expected a list of approvers, got \"manager\"",
            "approval.groups[0].min: expected a whole number, got \"one\"",
            "approval.requester_can_approve: expected true or false, got \"no way\"",
        ]
    );
    // The name could not be read, so the problems carry none.
    assert!(parsed.problems.iter().all(|p| p.flow_name.is_none()));
}

#[test]
fn a_document_that_is_not_a_mapping_is_one_problem() {
    let parsed = parse_yaml("- a\n- b\n");
    assert_eq!(
        plain_lines(&parsed),
        [
            "a flow must be a mapping of name, kind, description, requesters, targets, duration, approval, settings, got [\"a\", \"b\"]"
        ]
    );
    assert_eq!(parsed.problems[0].path, "");
}

#[test]
fn a_syntax_error_gives_the_parsers_line_and_column() {
    let parsed = parse_yaml("name: [broken\nkind: self_serve\n");
    assert_eq!(parsed.problems.len(), 1);
    let problem = &parsed.problems[0];
    assert_eq!(problem.path, "");
    assert_eq!(problem.flow_index, 0);
    assert_eq!(problem.flow_name, None);
    assert!(
        problem.message.starts_with("invalid YAML: "),
        "{}",
        problem.message
    );
    assert!(
        problem.message.contains("line 1 column 7"),
        "{}",
        problem.message
    );
    assert!(parsed.flows.is_empty());
}

#[test]
fn a_syntax_error_in_one_document_does_not_hide_the_others() {
    let text = format!("{DESIGN_EXAMPLE}---\nname: [broken\n---\nname: second\nkind: nope\n");
    let parsed = parse_yaml(&text);
    let lines = lines(&parsed);
    assert_eq!(lines.len(), 4, "{lines:?}");
    // Line numbers count from the start of the stream, not of the document.
    assert!(
        lines[0].starts_with("flow 1: invalid YAML: "),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("line 24 column 1"), "{}", lines[0]);
    assert_eq!(
        lines[1..],
        [
            r#"flow 2 (second): kind: unknown kind "nope" (expected one of: self_serve, automatic)"#,
            "flow 2 (second): requesters: at least one requester is needed",
            "flow 2 (second): targets: at least one target is needed",
        ]
    );
    assert_eq!(parsed.flows, [design_example()]);
    assert_eq!(parsed.source_indices, [0]);
}

#[test]
fn duplicate_yaml_keys_are_a_syntax_problem() {
    let parsed = parse_yaml(&example_with(&[(
        "kind: self_serve",
        "kind: self_serve\nkind: automatic",
    )]));
    assert_eq!(parsed.problems.len(), 1, "{:?}", parsed.problems);
    assert!(
        parsed.problems[0].message.contains("duplicate"),
        "{}",
        parsed.problems[0].message
    );
}

#[test]
fn duplicate_names_are_an_error_on_the_later_flow() {
    let text = render_yaml_stream(&[
        automatic_flow("x"),
        automatic_flow("y"),
        automatic_flow("x"),
    ]);
    let parsed = parse_yaml(&text);
    assert_eq!(
        lines(&parsed),
        [r#"flow 2 (x): name: "x" is used by flow 0 as well"#]
    );
    assert_eq!(parsed.flows, [automatic_flow("x"), automatic_flow("y")]);
    assert_eq!(parsed.source_indices, [0, 1]);
}

#[test]
fn automatic_flows_take_no_approval_and_need_no_duration() {
    let valid = automatic_flow("auto");
    let parsed = parse_yaml(&valid.to_yaml());
    assert_eq!(parsed.problems, []);
    assert_eq!(parsed.flows, [valid]);

    let with_approval = example_with(&[("kind: self_serve", "kind: automatic")]);
    let parsed = parse_yaml(&with_approval);
    assert_eq!(
        plain_lines(&parsed),
        [
            "duration: automatic flows ignore the duration: access lasts while the requester matches",
            "approval: automatic flows take no approval",
        ]
    );
    assert_eq!(parsed.problems[0].severity, Severity::Warning);
    assert_eq!(parsed.problems[1].severity, Severity::Error);
}

#[test]
fn self_serve_flows_need_a_duration_and_an_approval() {
    let text = "name: bare\nkind: self_serve\nrequesters: { any_of: [everyone] }\n\
                targets: [{ integration: db, permissions: [reader] }]\n";
    assert_eq!(
        plain_lines(&parse_yaml(text)),
        [
            "duration: self-serve flows need a duration, for example { default: 1h, max: 4h }",
            "approval: self-serve flows need an approval policy (mode: auto grants without approvers)",
        ]
    );
}

#[test]
fn a_missing_kind_is_reported_without_guessing_the_rules_of_either_kind() {
    let text = "name: nokind\nrequesters: { any_of: [everyone] }\ntargets: [{ integration: db, permissions: [r] }]\n";
    assert_eq!(
        plain_lines(&parse_yaml(text)),
        ["kind: is required (one of: self_serve, automatic)"]
    );
}

#[test]
fn approval_modes_and_groups_must_agree() {
    let auto_with_groups = example_with(&[("mode: all_of", "mode: auto")]);
    assert_eq!(
        plain_lines(&parse_yaml(&auto_with_groups)),
        ["approval.groups: mode auto takes no approver groups"]
    );

    let groups_without_mode = example_with(&[("  mode: all_of ", "  # no mode ")]);
    assert_eq!(
        plain_lines(&parse_yaml(&groups_without_mode)),
        ["approval.mode: is required (one of: auto, all_of, any_of)"]
    );
}

#[test]
fn min_is_bounded_only_by_a_list_of_single_users() {
    let users = example_with(&[(
        "{ approvers: [manager], min: 1 }",
        "{ approvers: [{ user: a@x.com }, { user: a@x.com }], min: 2 }",
    )]);
    assert_eq!(
        plain_lines(&parse_yaml(&users)),
        ["approval.groups[0].min: needs 2 approvals but only 1 user is listed"]
    );
    // A group or a manager may be many people.
    let group = example_with(&[(
        "{ approvers: [manager], min: 1 }",
        "{ approvers: [{ group: a }, manager], min: 5 }",
    )]);
    assert_eq!(plain_lines(&parse_yaml(&group)), Vec::<String>::new());
}

#[test]
fn durations_are_bounded() {
    let parsed = parse_yaml(&example_with(&[(
        "default: 1h, max: 4h",
        "default: 0s, max: 366d",
    )]));
    assert_eq!(
        plain_lines(&parsed),
        [
            "duration.default: must be longer than zero",
            "duration.max: 366d is longer than the limit of 365d"
        ]
    );
    let parsed = parse_yaml(&example_with(&[(
        "default: 1h, max: 4h",
        "default: 1h 500ms, max: 365d",
    )]));
    assert_eq!(
        plain_lines(&parsed),
        ["duration.default: 1h 500ms is not a whole number of seconds"]
    );
    let parsed = parse_yaml(&example_with(&[("default: 1h, max: 4h", "max: 4h")]));
    assert_eq!(
        plain_lines(&parsed),
        ["duration.default: is required, for example 1h"]
    );
}

#[test]
fn timeframes_need_days_in_order_and_a_window() {
    let parsed = parse_yaml(&example_with(&[(
        r#"{ days: [mon, tue, wed, thu, fri], from: "08:00", to: "19:00", time_zone: Europe/Berlin }"#,
        r#"{ days: [], from: "19:00", to: "08:00" }"#,
    )]));
    assert_eq!(
        plain_lines(&parsed),
        [
            "settings.timeframe.days: at least one day is needed",
            "settings.timeframe.from (19:00) is not earlier than settings.timeframe.to (08:00)",
            "settings.timeframe.time_zone: is required",
        ]
    );
}

#[test]
fn names_and_identities_are_checked() {
    let parsed = parse_yaml(&example_with(&[
        ("name: prod-readonly", "name: -prod"),
        ("{ user: contractor@example.com }", "{ user: contractor }"),
        ("{ group: sre-leads }", "{ group: \"\" }"),
        (
            "permissions: [ReadOnlyAccess]",
            "permissions: [ReadOnlyAccess, \"\"]",
        ),
    ]));
    assert_eq!(
        plain_lines(&parsed),
        [
            r#"name: "-prod" is not a valid name (lowercase letters, digits and dashes, 1 to 63 characters, starting and ending with a letter or digit)"#,
            r#"requesters.except[0].user: "contractor" is not an email address"#,
            "targets[0].permissions[1]: must not be empty",
            "approval.groups[1].approvers[0].group: must not be empty",
        ]
    );
}

#[test]
fn a_stream_holds_several_flows_and_skips_empty_documents() {
    let second = automatic_flow("second");
    let text = format!(
        "---\n# only a comment\n---\n{DESIGN_EXAMPLE}---\n---\n{}---\n",
        second.to_yaml()
    );
    let parsed = parse_yaml(&text);
    assert_eq!(parsed.problems, []);
    assert_eq!(parsed.flows, [design_example(), second.clone()]);
    assert_eq!(parsed.source_indices, [0, 1]);
    assert_eq!(parsed.source_len, 2);

    // Problems carry the flow's position among the non-empty documents, and lines show it.
    let broken = format!(
        "---\n---\n{}---\n{}",
        second.to_yaml(),
        example_with(&[("min: 1 }", "min: 0 }")])
    );
    let parsed = parse_yaml(&broken);
    assert_eq!(
        parsed.problem_lines(),
        ["flow 1 (prod-readonly): approval.groups[0].min: must be at least 1"]
    );
    assert_eq!(parsed.flows, [second]);
}

#[test]
fn a_document_end_marker_ends_a_flow() {
    let first = automatic_flow("first");
    let second = automatic_flow("second");
    let text = format!("{}...\n{}...\n", first.to_yaml(), second.to_yaml());
    let parsed = parse_yaml(&text);
    assert_eq!(parsed.problems, []);
    assert_eq!(parsed.flows, [first, second]);
}

#[test]
fn an_empty_source_has_no_flows_and_no_problems() {
    for text in ["", "\n", "# nothing\n", "---\n---\n", "~\n"] {
        let parsed = parse_yaml(text);
        assert_eq!(parsed.flows, [], "{text:?}");
        assert_eq!(parsed.problems, [], "{text:?}");
        assert_eq!(parsed.source_len, 0, "{text:?}");
    }
}

#[test]
fn yaml_merge_keys_are_applied() {
    let text = "name: merged\nkind: self_serve\nrequesters: { any_of: [everyone] }\n\
                targets: [{ integration: db, permissions: [reader] }]\n\
                duration: &d { default: 30m, max: 1h }\napproval: { mode: auto }\n\
                settings: { <<: { justification: required } }\n";
    let parsed = parse_yaml(text);
    assert_eq!(parsed.problems, []);
    assert_eq!(
        parsed.flows[0].settings.justification,
        latch_core::flow::Justification::Required
    );
}

#[test]
fn into_result_refuses_sources_with_errors() {
    let Err(FlowError::Invalid { problems }) = parse_yaml("name: x\n").into_result() else {
        panic!("a flow without kind, requesters or targets is invalid");
    };
    assert!(problems.iter().any(|p| p.path == "kind"));

    let valid = parse_yaml(&example_with(&[("kind: self_serve", "kind: automatic")])).into_result();
    assert!(
        valid.is_err(),
        "an automatic flow with approval is an error"
    );

    let ok = parse_yaml(&automatic_flow("a").to_yaml())
        .into_result()
        .expect("valid");
    assert_eq!(ok.flows, [automatic_flow("a")]);
    assert_eq!(ok.warnings, []);
}

#[test]
fn a_single_flow_source_prints_lines_without_the_flow() {
    let parsed = parse_yaml(&example_with(&[("default: 1h", "default: 5x")]));
    assert_eq!(
        parsed.problem_lines(),
        [r#"duration.default: "5x" is not a duration"#]
    );
}
