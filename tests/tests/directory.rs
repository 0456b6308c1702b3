//! The static directory through the real CLI and server: apply, show with transitive groups and
//! on-call shifts, diffs, refusals, and flow warnings that know the directory's names.

use latch_e2e::{Server, failure, repo_root, success};

#[test]
fn directory_apply_show_and_diff() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"), None);
    let token = server.admin_token();
    let people = repo_root()
        .join("examples/directory/people.yaml")
        .display()
        .to_string();

    let applied = success(&server.cli(
        Some(&token),
        &["--output", "json", "directory", "apply", "-f", &people],
    ));
    let applied: serde_json::Value = serde_json::from_str(&applied).expect("json");
    assert_eq!(applied["changed"], true);
    assert_eq!(
        applied["users_added"].as_array().expect("users").len(),
        5,
        "{applied}"
    );

    let bob = success(&server.cli(
        Some(&token),
        &["--output", "json", "directory", "show", "BOB@example.com"],
    ));
    let bob: serde_json::Value = serde_json::from_str(&bob).expect("json");
    assert_eq!(bob[0]["email"], "bob@example.com");
    assert_eq!(bob[0]["manager"], "mallory@example.com");
    assert_eq!(
        bob[0]["all_groups"],
        serde_json::json!(["engineering", "sre", "sre-leads"]),
        "{bob}"
    );
    let carol = success(&server.cli(
        Some(&token),
        &["--output", "json", "directory", "show", "carol@example.com"],
    ));
    let carol: serde_json::Value = serde_json::from_str(&carol).expect("json");
    assert_eq!(
        carol[0]["on_call_now"],
        serde_json::json!(["pagerduty/primary-sre"]),
        "{carol}"
    );
    let everyone = success(&server.cli(Some(&token), &["--output", "json", "directory", "show"]));
    let everyone: serde_json::Value = serde_json::from_str(&everyone).expect("json");
    assert_eq!(everyone.as_array().expect("users").len(), 5);

    let again = success(&server.cli(Some(&token), &["directory", "apply", "-f", &people]));
    assert!(again.contains("unchanged"), "{again}");

    // Bob leaves the leads; Dave joins.
    let changed = dir.path().join("people.yaml");
    let text = std::fs::read_to_string(&people).expect("read");
    let text = text
        .replace("members: [bob@example.com]", "members: [dave@example.com]")
        .replace(
            "users:\n",
            "users:\n  - { email: dave@example.com, name: Dave, groups: [sre] }\n",
        );
    std::fs::write(&changed, text).expect("write");
    let diff = success(&server.cli(
        Some(&token),
        &["directory", "apply", "-f", &changed.display().to_string()],
    ));
    assert!(diff.contains("+ user dave@example.com"), "{diff}");
    assert!(diff.contains("~ group sre-leads"), "{diff}");

    // A broken file is refused with every problem, and nothing changes.
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "users:\n  - { email: bob, time_zone: Mars/Olympus }\n  - { email: a@x.com, team: blue }\n",
    )
    .expect("write");
    let stderr = failure(&server.cli(
        Some(&token),
        &["directory", "apply", "-f", &broken.display().to_string()],
    ));
    for expected in [
        r#"users[0].email: "bob" is not an email address"#,
        r#"users[0].time_zone: unknown time zone "Mars/Olympus""#,
        r#"users[1].team: unknown field "team""#,
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in {stderr}"
        );
    }
    let everyone = success(&server.cli(Some(&token), &["--output", "json", "directory", "show"]));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&everyone)
            .expect("json")
            .as_array()
            .expect("users")
            .len(),
        6
    );

    // Flows now warn only about names the directory does not have.
    let flow = repo_root()
        .join("examples/flows/prod-readonly.yaml")
        .display()
        .to_string();
    let output = server.cli(Some(&token), &["flows", "apply", "-f", &flow]);
    let warnings = String::from_utf8_lossy(&output.stderr).into_owned();
    success(&output);
    assert!(!warnings.contains(r#"group "engineering""#), "{warnings}");
    assert!(!warnings.contains("pagerduty/primary-sre"), "{warnings}");
    assert!(
        warnings.contains(r#"integration "aws-prod" is not known yet"#),
        "{warnings}"
    );

    // Reading needs any token; applying needs an admin.
    let alice = success(&server.cli(
        Some(&token),
        &[
            "--output",
            "json",
            "tokens",
            "create",
            "--user",
            "alice@example.com",
        ],
    ));
    let alice: serde_json::Value = serde_json::from_str(&alice).expect("json");
    let alice = alice["token"].as_str().expect("token");
    success(&server.cli(Some(alice), &["directory", "show", "bob@example.com"]));
    let stderr = failure(&server.cli(Some(alice), &["directory", "apply", "-f", &people]));
    assert!(stderr.contains("not an admin"), "{stderr}");
    let missing = failure(&server.cli(Some(alice), &["directory", "show", "nobody@example.com"]));
    assert!(missing.contains("not in the directory"), "{missing}");
}
