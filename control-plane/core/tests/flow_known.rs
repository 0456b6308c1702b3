//! Warnings about names Latch does not know yet.

mod common;

use common::{DESIGN_EXAMPLE, automatic_flow, design_example, example_with};
use latch_core::flow::{KnownNames, Severity, parse_yaml, unknown_reference_warnings};

fn set(names: &[&str]) -> std::collections::BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

#[test]
fn every_unknown_reference_is_one_warning() {
    let warnings = unknown_reference_warnings(&[design_example()], &KnownNames::default());
    let lines: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            r#"requesters.any_of[0].group: group "engineering" is not known yet"#,
            r#"requesters.any_of[1].on_call: on-call schedule "pagerduty/primary-sre" is not known yet"#,
            r#"requesters.except[0].user: user "contractor@example.com" is not known yet"#,
            r#"targets[0].integration: integration "aws-prod" is not known yet"#,
            r#"approval.groups[1].approvers[0].group: group "sre-leads" is not known yet"#,
            r#"approval.groups[1].approvers[1].on_call: on-call schedule "pagerduty/primary-sre" is not known yet"#,
        ]
    );
    assert!(
        warnings
            .iter()
            .all(|w| w.severity == Severity::Warning && !w.is_error())
    );
    assert!(
        warnings
            .iter()
            .all(|w| w.flow_index == 0 && w.flow_name.as_deref() == Some("prod-readonly"))
    );
}

#[test]
fn known_names_give_no_warning() {
    let known = KnownNames {
        integrations: set(&["aws-prod"]),
        // Email addresses compare without regard to case.
        users: set(&["Contractor@Example.com"]),
        groups: set(&["engineering", "sre-leads"]),
        schedules: set(&["pagerduty/primary-sre"]),
    };
    assert_eq!(unknown_reference_warnings(&[design_example()], &known), []);
}

#[test]
fn warnings_carry_the_flow_position() {
    let known = KnownNames {
        schedules: set(&["pagerduty/primary-sre"]),
        ..KnownNames::default()
    };
    let warnings = unknown_reference_warnings(&[automatic_flow("a"), automatic_flow("b")], &known);
    let lines: Vec<String> = warnings.iter().map(|w| w.with_flow().to_string()).collect();
    assert_eq!(
        lines,
        [
            r#"flow 0 (a): targets[0].integration: integration "gcp-prod" is not known yet"#,
            r#"flow 1 (b): targets[0].integration: integration "gcp-prod" is not known yet"#,
        ]
    );
}

#[test]
fn parsed_sources_number_warnings_by_source_position() {
    // Flow 0 has an error and is left out of `flows`; the warnings of flow 1 must still say flow 1.
    let text = format!(
        "{}---\n{}",
        example_with(&[("min: 1 }", "min: 0 }")]),
        automatic_flow("b").to_yaml()
    );
    let mut parsed = parse_yaml(&text);
    let known = KnownNames {
        schedules: set(&["pagerduty/primary-sre"]),
        ..KnownNames::default()
    };
    parsed.add_unknown_reference_warnings(&known);
    assert_eq!(
        parsed.problem_lines(),
        [
            "flow 0 (prod-readonly): approval.groups[0].min: must be at least 1",
            r#"flow 1 (b): targets[0].integration: integration "gcp-prod" is not known yet"#,
        ]
    );
    let valid = parse_yaml(DESIGN_EXAMPLE).into_result().expect("valid");
    assert_eq!(valid.warnings, []);
}
