//! Tests across the directory module: the YAML format end to end, its problems, and properties of
//! resolved membership.

use std::collections::BTreeSet;

use jiff::Timestamp;
use proptest::prelude::*;

use super::*;

fn at(text: &str) -> Timestamp {
    text.parse().expect("valid timestamp")
}

fn problems(yaml: &str) -> Vec<String> {
    parse_directory_yaml(yaml).expect_err("the directory has problems")
}

const EXAMPLE: &str = r#"
users:
  - { email: alice@example.com, name: Alice, manager: mallory@example.com, groups: [engineering], time_zone: Europe/Berlin }
groups:
  - { name: sre-leads, members: [bob@example.com], groups: [] }
on_call:
  - schedule: static/primary-sre
    shifts:
      - { user: carol@example.com, from: "2026-11-26T00:00:00Z", to: "2026-11-27T00:00:00Z" }
"#;

#[test]
fn the_example_parses_to_the_expected_spec() {
    let spec = parse_directory_yaml(EXAMPLE).expect("the example is valid");
    let expected = DirectorySpec {
        users: vec![UserEntry {
            email: "alice@example.com".into(),
            name: Some("Alice".into()),
            manager: Some("mallory@example.com".into()),
            groups: vec!["engineering".into()],
            time_zone: Some("Europe/Berlin".into()),
        }],
        groups: vec![GroupEntry {
            name: "sre-leads".into(),
            members: vec!["bob@example.com".into()],
            groups: vec![],
        }],
        on_call: vec![ScheduleEntry {
            schedule: "static/primary-sre".into(),
            shifts: vec![Shift {
                user: "carol@example.com".into(),
                from: at("2026-11-26T00:00:00Z"),
                to: at("2026-11-27T00:00:00Z"),
            }],
        }],
    };
    assert_eq!(spec, expected);

    let dir = Directory::new(&spec);
    assert_eq!(dir.user_count(), 1);
    assert_eq!(
        dir.manager_of("alice@example.com"),
        Some("mallory@example.com")
    );
    assert_eq!(dir.time_zone_of("alice@example.com"), Some("Europe/Berlin"));
    let known: Vec<&str> = dir.known_groups().iter().map(String::as_str).collect();
    assert_eq!(known, ["engineering", "sre-leads"]);
    assert!(dir.known_schedules().contains("static/primary-sre"));
    assert_eq!(
        dir.on_shift("static/primary-sre", at("2026-11-26T12:00:00Z")),
        BTreeSet::from(["carol@example.com".to_owned()])
    );
}

#[test]
fn empty_sources_and_keys_are_empty_directories() {
    for yaml in [
        "",
        "# nobody yet\n",
        "{}",
        "users:\ngroups:\non_call:\n",
        "users: []",
    ] {
        assert_eq!(
            parse_directory_yaml(yaml),
            Ok(DirectorySpec::default()),
            "{yaml:?}"
        );
    }
}

#[test]
fn each_problem_is_reported_verbatim() {
    let cases: &[(&str, &str)] = &[
        (
            "users: [{ email: a@x.com }, { email: b@x.com }, { email: bob }]",
            r#"users[2].email: "bob" is not an email address"#,
        ),
        (
            "users: [{ email: a@x.com, time_zone: Mars/Olympus }]",
            r#"users[0].time_zone: unknown time zone "Mars/Olympus""#,
        ),
        (
            "users: [{ email: alice@example.com }, { email: alice@example.com }]",
            r#"users[1].email: "alice@example.com" is listed twice"#,
        ),
        (
            "groups: [{ name: sre, groups: [ops] }, { name: ops, groups: [sre] }]",
            "groups[0].groups: cycle sre -> ops -> sre",
        ),
        (
            "on_call: [{ schedule: s, shifts: [\
               { user: a@x.com, from: \"2026-11-25T00:00:00Z\", to: \"2026-11-26T00:00:00Z\" },\
               { user: a@x.com, from: \"2026-11-26T00:00:00Z\", to: \"2026-11-26T00:00:00Z\" }] }]",
            r#"on_call[0].shifts[1].to: "2026-11-26T00:00:00Z" is not after from"#,
        ),
        (
            "on_call: [{ schedule: s, shifts: [{ user: a@x.com, from: tomorrow, to: \"2026-11-26T00:00:00Z\" }] }]",
            r#"on_call[0].shifts[0].from: "tomorrow" is not an RFC 3339 time"#,
        ),
        (
            "users: [{ email: a@x.com, team: sre }]",
            r#"users[0].team: unknown field "team""#,
        ),
    ];
    for (yaml, expected) in cases {
        assert_eq!(problems(yaml), [*expected], "{yaml}");
    }
}

#[test]
fn wrong_types_and_missing_fields_are_named() {
    let cases: &[(&str, &str)] = &[
        (
            "[1, 2]",
            "expected a mapping of users, groups and on_call, got [1, 2]",
        ),
        ("users: {}", "users: expected a list of users, got {}"),
        (
            "groups: sre",
            r#"groups: expected a list of groups, got "sre""#,
        ),
        (
            "users: [alice@example.com]",
            r#"users[0]: expected a mapping, got "alice@example.com""#,
        ),
        (
            "users: [{ email: a@x.com, groups: engineering }]",
            r#"users[0].groups: expected a list of group names, got "engineering""#,
        ),
        (
            "users: [{ email: a@x.com, name: 3 }]",
            "users[0].name: expected a string, got 3",
        ),
        (
            "users: [{ email: [a@x.com] }]",
            r#"users[0].email: expected an email address, got ["a@x.com"]"#,
        ),
        ("users: [{ name: Alice }]", "users[0].email: is required"),
        (
            "groups: [{ members: [a@x.com] }]",
            "groups[0].name: is required",
        ),
        (
            "on_call: [{ shifts: [] }]",
            "on_call[0].schedule: is required",
        ),
        (
            "on_call: [{ schedule: s, shifts: [{ user: a@x.com, from: 2026, to: \"2026-11-26T00:00:00Z\" }] }]",
            "on_call[0].shifts[0].from: expected an RFC 3339 time, got 2026",
        ),
        (
            "on_call: [{ schedule: s, shifts: [{ user: a@x.com, from: \"2026-11-26T00:00:00Z\" }] }]",
            "on_call[0].shifts[0].to: is required",
        ),
        (
            "groups: [{ name: \"\" }]",
            r#"groups[0].name: "" must not be empty"#,
        ),
        (
            "users: [{ email: a@x.com, groups: [\" sre\"] }]",
            r#"users[0].groups[0]: " sre" has blanks around it"#,
        ),
        (
            "groups: [{ name: g, members: [a@x.com, A@X.com] }]",
            r#"groups[0].members[1]: "A@X.com" is listed twice"#,
        ),
        (
            "users: [{ email: a@x.com, groups: [g, g] }]",
            r#"users[0].groups[1]: "g" is listed twice"#,
        ),
        (
            "groups: [{ name: g }, { name: g }]",
            r#"groups[1].name: "g" is listed twice"#,
        ),
        (
            "on_call: [{ schedule: s }, { schedule: s }]",
            r#"on_call[1].schedule: "s" is listed twice"#,
        ),
        (
            "groups: [{ name: sre, groups: [sre] }]",
            "groups[0].groups: cycle sre -> sre",
        ),
        ("team: x", r#"team: unknown field "team""#),
        (
            "users: [{ email: a@x.com, 7: x }]",
            "users[0]: unknown field 7",
        ),
        (
            "users: [{ email: a@x.com, manager: A@x.com }]",
            r#"users[0].manager: "a@x.com" is the user's own address"#,
        ),
    ];
    for (yaml, expected) in cases {
        assert_eq!(problems(yaml), [*expected], "{yaml}");
    }
}

#[test]
fn every_problem_is_reported_at_once_in_source_order() {
    let yaml = r#"
users:
  - { email: alice@example.com, time_zone: Mars/Olympus, team: sre }
  - { email: Alice@Example.com, manager: nobody }
  - { email: bob, groups: engineering }
groups:
  - { name: sre, groups: [ops], members: [carol] }
  - { name: ops, groups: [sre] }
on_call:
  - schedule: static/primary-sre
    shifts:
      - { user: carol@example.com, from: tomorrow, to: "2026-11-26T00:00:00Z" }
      - { user: carol@example.com, from: "2026-11-26T00:00:00Z", to: "2026-11-26T00:00:00Z" }
colour: blue
"#;
    assert_eq!(
        problems(yaml),
        [
            r#"colour: unknown field "colour""#,
            r#"users[0].team: unknown field "team""#,
            r#"users[0].time_zone: unknown time zone "Mars/Olympus""#,
            r#"users[1].email: "Alice@Example.com" is listed twice"#,
            r#"users[1].manager: "nobody" is not an email address"#,
            r#"users[2].email: "bob" is not an email address"#,
            r#"users[2].groups: expected a list of group names, got "engineering""#,
            r#"groups[0].members[0]: "carol" is not an email address"#,
            "groups[0].groups: cycle sre -> ops -> sre",
            r#"on_call[0].shifts[0].from: "tomorrow" is not an RFC 3339 time"#,
            r#"on_call[0].shifts[1].to: "2026-11-26T00:00:00Z" is not after from"#,
        ]
    );
}

#[test]
fn invalid_yaml_is_one_problem() {
    let found = problems("users: [{ email: a@x.com\n");
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("invalid YAML: "), "{found:?}");
}

#[test]
fn emails_are_stored_lowercased_and_compared_without_case() {
    let spec = parse_directory_yaml(
        r#"
users:
  - { email: Alice@Example.COM, manager: Mallory@Example.com, groups: [eng] }
groups:
  - { name: eng, members: [BOB@example.com] }
on_call:
  - schedule: s
    shifts: [{ user: Carol@Example.com, from: "2026-11-26T00:00:00Z", to: "2026-11-27T00:00:00Z" }]
"#,
    )
    .expect("valid directory");
    assert_eq!(spec.users[0].email, "alice@example.com");
    assert_eq!(
        spec.users[0].manager.as_deref(),
        Some("mallory@example.com")
    );
    assert_eq!(spec.groups[0].members, ["bob@example.com"]);
    assert_eq!(spec.on_call[0].shifts[0].user, "carol@example.com");

    let dir = Directory::new(&spec);
    assert!(dir.user("ALICE@example.com").is_some());
    assert!(dir.groups_of("Bob@Example.Com").contains("eng"));
    assert_eq!(
        dir.schedules_on_shift("CAROL@EXAMPLE.COM", at("2026-11-26T00:00:00Z")),
        BTreeSet::from(["s".to_owned()])
    );
}

#[test]
fn cycles_are_refused_wherever_they_start() {
    let found = problems(
        "groups:\n\
         \x20 - { name: staff, groups: [eng] }\n\
         \x20 - { name: eng, groups: [sre] }\n\
         \x20 - { name: sre, groups: [staff] }\n\
         \x20 - { name: solo, groups: [solo] }\n",
    );
    assert_eq!(
        found,
        [
            "groups[0].groups: cycle staff -> eng -> sre -> staff",
            "groups[3].groups: cycle solo -> solo",
        ]
    );
    // Nesting without a cycle, three levels deep, is fine.
    let spec = parse_directory_yaml(
        "users: [{ email: a@x.com, groups: [sre] }]\n\
         groups: [{ name: staff, groups: [eng] }, { name: eng, groups: [sre] }]\n",
    )
    .expect("valid directory");
    let dir = Directory::new(&spec);
    let groups: Vec<String> = dir.groups_of("a@x.com").into_iter().collect();
    assert_eq!(groups, ["eng", "sre", "staff"]);
}

#[test]
fn shifts_are_read_in_any_offset_and_cover_from_to_before_to() {
    let spec = parse_directory_yaml(
        r#"
on_call:
  - schedule: static/primary-sre
    shifts:
      - { user: carol@example.com, from: "2026-11-26T01:00:00+01:00", to: "2026-11-27T00:00:00Z" }
      - { user: dave@example.com, from: "2026-11-27T00:00:00Z", to: "2026-11-28T00:00:00Z" }
"#,
    )
    .expect("valid directory");
    assert_eq!(spec.on_call[0].shifts[0].from, at("2026-11-26T00:00:00Z"));
    let dir = Directory::new(&spec);
    let on = |time: &str| -> Vec<String> {
        dir.on_shift("static/primary-sre", at(time))
            .into_iter()
            .collect()
    };
    assert!(on("2026-11-25T23:59:59Z").is_empty());
    assert_eq!(on("2026-11-26T00:00:00Z"), ["carol@example.com"]);
    assert_eq!(on("2026-11-27T00:00:00Z"), ["dave@example.com"]);
    assert!(on("2026-11-28T00:00:00Z").is_empty());
}

#[test]
fn parsed_specs_round_trip_through_json() {
    let spec = parse_directory_yaml(EXAMPLE).expect("the example is valid");
    let json = serde_json::to_string(&spec).expect("serializes");
    let back: DirectorySpec = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back, spec);
    assert_eq!(serde_json::to_string(&back).expect("serializes"), json);
    assert_eq!(back.digest(), spec.digest());
}

/// A random directory whose nesting is acyclic: group `i` may nest only groups with a larger index.
fn acyclic_directory() -> impl Strategy<Value = DirectorySpec> {
    (1usize..8, 1usize..6).prop_flat_map(|(groups, users)| {
        (
            proptest::collection::vec(proptest::collection::vec(any::<bool>(), groups), groups),
            proptest::collection::vec(proptest::collection::vec(any::<bool>(), groups), users),
            proptest::collection::vec(proptest::collection::vec(any::<bool>(), users), groups),
            proptest::collection::vec(any::<bool>(), groups),
        )
            .prop_map(move |(nests, user_groups, members, declared)| {
                let group = |i: usize| format!("g{i}");
                let user = |u: usize| format!("u{u}@example.com");
                DirectorySpec {
                    users: (0..users)
                        .map(|u| UserEntry {
                            email: user(u),
                            groups: (0..groups)
                                .filter(|&g| user_groups[u][g])
                                .map(group)
                                .collect(),
                            ..UserEntry::default()
                        })
                        .collect(),
                    // Undeclared groups still take part through the references to them.
                    groups: (0..groups)
                        .filter(|&g| declared[g])
                        .map(|g| GroupEntry {
                            name: group(g),
                            members: (0..users).filter(|&u| members[g][u]).map(user).collect(),
                            groups: (g + 1..groups)
                                .filter(|&inner| nests[g][inner])
                                .map(group)
                                .collect(),
                        })
                        .collect(),
                    on_call: vec![],
                }
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn groups_of_and_members_of_agree(spec in acyclic_directory()) {
        let dir = Directory::new(&spec);
        let users: Vec<&str> = spec.users.iter().map(|u| u.email.as_str()).collect();
        for group in dir.known_groups() {
            let members = dir.members_of(group);
            for user in &users {
                prop_assert_eq!(
                    dir.groups_of(user).contains(group),
                    members.contains(*user),
                    "user {} group {}", user, group
                );
            }
        }
        // Every group a user is in is one the directory knows.
        for user in &users {
            prop_assert!(dir.groups_of(user).is_subset(dir.known_groups()));
        }
    }

    #[test]
    fn acyclic_specs_survive_yaml_and_json(spec in acyclic_directory()) {
        let yaml = serde_yaml_ng::to_string(&spec).expect("serializes");
        prop_assert_eq!(parse_directory_yaml(&yaml), Ok(spec.clone()));
        let json = serde_json::to_string(&spec).expect("serializes");
        let back: DirectorySpec = serde_json::from_str(&json).expect("deserializes");
        prop_assert_eq!(back, spec);
    }
}
