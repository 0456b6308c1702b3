//! The README quickstart, end to end with the real binaries, on SQLite and on PostgreSQL: first start
//! writes an admin token, flows are applied, listed and shown, invalid files are refused whole, and a
//! restart keeps everything.

use latch_e2e::{Backend, PgDatabase, Server, failure, repo_root, success};

fn example(name: &str) -> String {
    repo_root()
        .join("examples/flows")
        .join(name)
        .display()
        .to_string()
}

fn fixture(name: &str) -> String {
    repo_root()
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn flow_names(server: &Server, token: &str) -> Vec<String> {
    let out = success(&server.cli(Some(token), &["--output", "json", "flows", "list"]));
    let flows: serde_json::Value = serde_json::from_str(&out).expect("flows list json");
    flows
        .as_array()
        .expect("array")
        .iter()
        .map(|f| f["name"].as_str().expect("name").to_string())
        .collect()
}

fn quickstart(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let database = (backend == Backend::Postgres).then(PgDatabase::create);
    let mut server = Server::start(&data_dir, database.as_ref().map(|db| db.url.as_str()));

    // First start: an admin token, readable by its owner only, whose path (never its value) is logged.
    let token = server.admin_token();
    let token_file = data_dir.join("admin.token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file)
            .expect("token file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "admin.token must be 0600");
    }
    let log = server.log_text();
    assert!(
        log.contains("admin.token"),
        "the token's path is logged:\n{log}"
    );
    assert!(!log.contains(&token), "the token itself is never logged");

    let out = success(&server.cli(
        Some(&token),
        &["flows", "apply", "-f", &example("prod-readonly.yaml")],
    ));
    assert!(
        out.contains("prod-readonly") && out.contains("created"),
        "{out}"
    );
    let out = success(&server.cli(
        Some(&token),
        &[
            "--output",
            "json",
            "flows",
            "apply",
            "-f",
            &example("oncall-db.yaml"),
        ],
    ));
    assert!(
        out.contains("oncall-db-write") && out.contains("reporting-read"),
        "{out}"
    );
    let out = success(&server.cli(
        Some(&token),
        &["flows", "apply", "-f", &example("prod-readonly.yaml")],
    ));
    assert!(
        out.contains("unchanged"),
        "applying identical content makes no version: {out}"
    );

    assert_eq!(
        flow_names(&server, &token),
        ["oncall-db-write", "prod-readonly", "reporting-read"]
    );
    let shown = success(&server.cli(Some(&token), &["flows", "show", "prod-readonly"]));
    assert!(shown.contains("name: prod-readonly"), "{shown}");
    assert!(shown.contains("time_zone: Europe/Berlin"), "{shown}");

    // An invalid file is refused with every problem named, and nothing is stored.
    let invalid = fixture("invalid-flow.yaml");
    let validate = server.cli(Some(&token), &["flows", "validate", "-f", &invalid]);
    let apply = server.cli(Some(&token), &["flows", "apply", "-f", &invalid]);
    for output in [&validate, &apply] {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            failure(output)
        );
        for expected in [
            "requesters: at least one requester is needed",
            "targets[0].colour: unknown field \"colour\"",
            "duration.default (3h) is longer than duration.max (1h)",
            "approval.groups[0].min: must be at least 1",
            "settings.timeframe.time_zone: unknown time zone \"Mars/Olympus\"",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }
    assert_eq!(
        flow_names(&server, &token),
        ["oncall-db-write", "prod-readonly", "reporting-read"]
    );

    // A new version keeps the old one.
    let changed = dir.path().join("changed.yaml");
    let text = std::fs::read_to_string(example("prod-readonly.yaml")).expect("example");
    std::fs::write(&changed, text.replace("max: 4h", "max: 2h")).expect("write");
    let out = success(&server.cli(
        Some(&token),
        &["flows", "apply", "-f", &changed.display().to_string()],
    ));
    assert!(out.contains("updated"), "{out}");

    // A graceful restart keeps everything, and does not make a second admin token.
    assert_eq!(server.stop(), Some(0), "SIGTERM stops the server cleanly");
    server.spawn();
    assert_eq!(server.admin_token(), token);
    assert_eq!(
        flow_names(&server, &token),
        ["oncall-db-write", "prod-readonly", "reporting-read"]
    );
    let v1 = success(&server.cli(
        Some(&token),
        &[
            "--output",
            "json",
            "flows",
            "show",
            "prod-readonly",
            "--version",
            "1",
        ],
    ));
    let v1: serde_json::Value = serde_json::from_str(&v1).expect("json");
    assert_eq!(v1["version"], 1);
    let current = success(&server.cli(
        Some(&token),
        &["--output", "json", "flows", "show", "prod-readonly"],
    ));
    let current: serde_json::Value = serde_json::from_str(&current).expect("json");
    assert_eq!(current["version"], 2);
    assert_ne!(v1["digest"], current["digest"]);

    let out = success(&server.cli(Some(&token), &["flows", "delete", "reporting-read"]));
    assert!(out.contains("reporting-read"), "{out}");
    assert_eq!(
        flow_names(&server, &token),
        ["oncall-db-write", "prod-readonly"]
    );
}

#[test]
fn quickstart_on_sqlite() {
    quickstart(Backend::Sqlite);
}

#[test]
fn quickstart_on_postgres() {
    quickstart(Backend::Postgres);
}
