//! Requests through the real CLI and server: ask, refuse, approve, deny, wait, revoke, list and
//! show; expiry after a restart; and two servers on one PostgreSQL database handling every expiry
//! exactly once.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use latch_e2e::{PgDatabase, Server, failure, success};

const FLOWS: &str = r#"
name: reporting-read
kind: self_serve
requesters: { any_of: [{ group: engineering }] }
targets:
  - integration: pg-main
    resource_types: [postgres.database]
    include: { names: [reporting] }
    permissions: [read]
duration: { default: 8h, max: 1d }
approval: { mode: auto }
---
name: prod-readonly
kind: self_serve
requesters:
  any_of: [{ group: engineering }]
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
    - { approvers: [{ group: sre-leads }, resource_owner], min: 1 }
settings:
  justification: required
"#;

const PEOPLE: &str = r#"
users:
  - { email: alice@example.com, manager: mallory@example.com, groups: [engineering] }
  - { email: bob@example.com, manager: mallory@example.com, groups: [sre-leads, engineering] }
  - { email: mallory@example.com, groups: [engineering] }
  - { email: contractor@example.com, manager: mallory@example.com, groups: [engineering] }
"#;

const RESOURCES: &str = r#"
resources:
  - { id: "111111111111", integration: aws-prod, type: aws.account, name: prod-web, tags: { env: prod } }
  - { id: "222222222222", integration: aws-prod, type: aws.account, name: prod-payments, tags: { env: prod, tier: payments } }
  - { id: "postgres://db/reporting", integration: pg-main, type: postgres.database, name: reporting }
"#;

/// Applies the flows, people and resources above, and returns a token per person.
fn set_up(server: &Server, dir: &Path) -> Tokens {
    let admin = server.admin_token();
    server.apply(
        dir,
        &[
            ("people.yaml", PEOPLE, "directory"),
            ("flows.yaml", FLOWS, "flows"),
            ("resources.yaml", RESOURCES, "resources"),
        ],
    );
    let token = |user: &str| server.user_token(user);
    Tokens {
        admin: admin.clone(),
        alice: token("alice@example.com"),
        bob: token("bob@example.com"),
        mallory: token("mallory@example.com"),
        contractor: token("contractor@example.com"),
    }
}

struct Tokens {
    admin: String,
    alice: String,
    bob: String,
    mallory: String,
    contractor: String,
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn ask_approve_and_inspect_through_the_cli() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"), None);
    let t = set_up(&server, dir.path());

    // Approved automatically: granting until a connector confirms.
    let auto = json(&success(&server.cli(
        Some(&t.alice),
        &[
            "-o",
            "json",
            "request",
            "--resource",
            "postgres://db/reporting",
            "--permission",
            "read",
        ],
    )));
    assert_eq!(auto["state"], "granting", "{auto}");
    let auto_id = auto["id"].as_str().expect("id").to_string();

    // Refused by the engine: non-zero exit, with the engine's reasons.
    let refused = server.cli(
        Some(&t.alice),
        &[
            "request",
            "--resource",
            "222222222222",
            "--permission",
            "ReadOnlyAccess",
            "--reason",
            "x",
        ],
    );
    let stderr = failure(&refused);
    assert!(stderr.contains("excludes"), "{stderr}");
    let contractor = failure(&server.cli(
        Some(&t.contractor),
        &[
            "request",
            "--resource",
            "111111111111",
            "--permission",
            "ReadOnlyAccess",
            "--reason",
            "x",
        ],
    ));
    assert!(contractor.contains("requester"), "{contractor}");
    // Bad input names the field and the value.
    let unknown = failure(&server.cli(
        Some(&t.alice),
        &["request", "--resource", "nope", "--permission", "read"],
    ));
    assert!(
        unknown.contains("items[0].resource_id") && unknown.contains("\"nope\""),
        "{unknown}"
    );

    // Needs approval by the manager and a lead.
    let pending = json(&success(&server.cli(
        Some(&t.alice),
        &[
            "-o",
            "json",
            "request",
            "--resource",
            "111111111111",
            "--permission",
            "ReadOnlyAccess",
            "--duration",
            "30m",
            "--reason",
            "incident 42",
        ],
    )));
    assert_eq!(pending["state"], "pending", "{pending}");
    let id = pending["id"].as_str().expect("id").to_string();
    let own = failure(&server.cli(Some(&t.alice), &["approve", &id]));
    assert!(own.contains("requester"), "{own}");
    let waiting = json(&success(&server.cli(
        Some(&t.mallory),
        &["-o", "json", "requests", "list", "--pending-my-approval"],
    )));
    assert_eq!(waiting.as_array().map(Vec::len), Some(1), "{waiting}");
    assert_eq!(waiting[0]["id"], id.as_str());
    success(&server.cli(Some(&t.mallory), &["approve", &id, "--reason", "ok"]));
    let again = failure(&server.cli(Some(&t.mallory), &["approve", &id]));
    assert!(again.contains("already answered"), "{again}");
    let done = json(&success(
        &server.cli(Some(&t.bob), &["-o", "json", "approve", &id]),
    ));
    assert_eq!(done["state"], "granting", "{done}");

    // What the requester sees, and what others may not.
    let shown = json(&success(
        &server.cli(Some(&t.alice), &["-o", "json", "requests", "show", &id]),
    ));
    assert_eq!(
        shown["approvals"].as_array().map(Vec::len),
        Some(2),
        "{shown}"
    );
    assert_eq!(shown["grants"][0]["state"], "granting");
    assert_eq!(shown["decision"]["outcome"], "needs_approval");
    let nosy = failure(&server.cli(Some(&t.contractor), &["requests", "show", &auto_id]));
    assert!(nosy.contains("PERMISSION_DENIED"), "{nosy}");
    let mine = json(&success(&server.cli(
        Some(&t.alice),
        &["-o", "json", "requests", "list", "--mine"],
    )));
    // The refused one is stored as denied; the one with bad input is not stored at all.
    assert_eq!(mine.as_array().map(Vec::len), Some(3), "{mine}");
    let denied = json(&success(&server.cli(
        Some(&t.alice),
        &[
            "-o", "json", "requests", "list", "--mine", "--state", "denied",
        ],
    )));
    assert_eq!(denied.as_array().map(Vec::len), Some(1), "{denied}");

    // A denial needs a reason.
    let deny_me = json(&success(&server.cli(
        Some(&t.alice),
        &[
            "-o",
            "json",
            "request",
            "--resource",
            "111111111111",
            "--permission",
            "ReadOnlyAccess",
            "--reason",
            "again",
        ],
    )));
    let deny_id = deny_me["id"].as_str().expect("id").to_string();
    let denied = json(&success(&server.cli(
        Some(&t.mallory),
        &[
            "-o",
            "json",
            "deny",
            &deny_id,
            "--reason",
            "not during the freeze",
        ],
    )));
    assert_eq!(denied["state"], "denied");

    // A connector confirms: active, and the grants list shows it.
    let (grants, _) = runtime().block_on(server.confirm_commands());
    assert_eq!(grants, 2);
    let active = json(&success(&server.cli(
        Some(&t.alice),
        &["-o", "json", "grants", "list", "--active"],
    )));
    assert_eq!(active.as_array().map(Vec::len), Some(2), "{active}");

    // Revoke by the requester: a revoke command waits in the outbox.
    let revoked = json(&success(&server.cli(
        Some(&t.alice),
        &["-o", "json", "revoke", &id, "--reason", "done"],
    )));
    assert_eq!(revoked["state"], "revoking", "{revoked}");
    let (_, revokes) = runtime().block_on(server.confirm_commands());
    assert_eq!(revokes, 1);
    let ended = json(&success(
        &server.cli(Some(&t.alice), &["-o", "json", "requests", "show", &id]),
    ));
    assert_eq!(ended["state"], "revoked", "{ended}");

    // Every step is in the audit log under the request's id.
    let audit = json(&success(&server.cli(
        Some(&t.admin),
        &["-o", "json", "audit", "list", "--request", &id],
    )));
    let actions: Vec<&str> = audit
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for expected in [
        "request.created",
        "approval.given",
        "request.approved",
        "request.granting",
        "request.active",
        "request.revoking",
        "request.revoked",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    success(&server.cli(Some(&t.admin), &["audit", "verify"]));
}

#[test]
fn wait_returns_once_the_grant_is_active() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"), None);
    let t = set_up(&server, dir.path());
    let mut waiting = server
        .cli_command(
            Some(&t.alice),
            &[
                "-o",
                "json",
                "request",
                "--resource",
                "postgres://db/reporting",
                "--permission",
                "read",
                "--wait",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start latch request --wait");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        waiting.try_wait().expect("poll").is_none(),
        "--wait returned before the grant was active"
    );
    let (grants, _) = runtime().block_on(server.confirm_commands());
    assert_eq!(grants, 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = waiting.try_wait().expect("poll") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "--wait did not return after the grant became active"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    waiting
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    assert!(status.success(), "{out}");
    assert_eq!(json(&out)["state"], "active", "{out}");
}

/// Waits until `check` holds, for at most `limit`.
fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn overdue_access_is_revoked_right_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(&dir.path().join("data"), None);
    let t = set_up(&server, dir.path());
    let asked = json(&success(&server.cli(
        Some(&t.alice),
        &[
            "-o",
            "json",
            "request",
            "--resource",
            "postgres://db/reporting",
            "--permission",
            "read",
            "--duration",
            "2s",
        ],
    )));
    let id = asked["id"].as_str().expect("id").to_string();
    let rt = runtime();
    rt.block_on(server.confirm_commands());
    server.stop();
    // The access falls due while the server is down.
    std::thread::sleep(Duration::from_secs(3));
    let store = rt.block_on(server.store());
    let due = rt
        .block_on(store.get_request(&id))
        .expect("read")
        .expect("request");
    assert_eq!(due.request.state.as_str(), "active");
    assert!(due.request.expires_at.expect("expiry") < chrono::Utc::now());
    let started = Instant::now();
    server.spawn();
    eventually(Duration::from_secs(3), "the revoke after restart", || {
        let open = rt.block_on(store.open_commands(10)).expect("commands");
        open.iter().any(|c| c.kind == "revoke")
    });
    assert!(started.elapsed() < Duration::from_secs(5));
    let view = rt
        .block_on(store.get_request(&id))
        .expect("read")
        .expect("request");
    assert_eq!(view.request.state.as_str(), "revoking");
}

#[test]
fn two_servers_on_postgres_expire_each_request_once() {
    let db = PgDatabase::create();
    let dir = tempfile::tempdir().expect("temp dir");
    let first = Server::start(&dir.path().join("a"), Some(&db.url));
    let second = Server::start(&dir.path().join("b"), Some(&db.url));
    let admin = first.admin_token();
    // Twenty people, each with access due at about the same moment.
    let mut people = String::from("users:\n");
    for n in 0..20 {
        people.push_str(&format!(
            "  - {{ email: p{n}@example.com, groups: [engineering] }}\n"
        ));
    }
    let people_file = dir.path().join("people.yaml");
    std::fs::write(&people_file, people).expect("write");
    let flows_file = dir.path().join("flows.yaml");
    std::fs::write(&flows_file, FLOWS).expect("write");
    let resources_file = dir.path().join("resources.yaml");
    std::fs::write(&resources_file, RESOURCES).expect("write");
    for (command, file) in [
        ("directory", &people_file),
        ("flows", &flows_file),
        ("resources", &resources_file),
    ] {
        success(&first.cli(
            Some(&admin),
            &[command, "apply", "-f", &file.display().to_string()],
        ));
    }
    let mut ids = Vec::new();
    for n in 0..20 {
        let token = json(&success(&first.cli(
            Some(&admin),
            &[
                "-o",
                "json",
                "tokens",
                "create",
                "--user",
                &format!("p{n}@example.com"),
            ],
        )))["token"]
            .as_str()
            .expect("token")
            .to_string();
        // Half through each server: both write to the same database.
        let via = if n % 2 == 0 { &first } else { &second };
        let asked = json(&success(&via.cli(
            Some(&token),
            &[
                "-o",
                "json",
                "request",
                "--resource",
                "postgres://db/reporting",
                "--permission",
                "read",
                "--duration",
                "3s",
            ],
        )));
        ids.push(asked["id"].as_str().expect("id").to_string());
    }
    let rt = runtime();
    assert_eq!(rt.block_on(first.confirm_commands()).0, 20);
    let store = rt.block_on(first.store());
    eventually(Duration::from_secs(15), "all twenty revokes", || {
        let open = rt.block_on(store.open_commands(100)).expect("commands");
        open.iter().filter(|c| c.kind == "revoke").count() >= 20
    });
    // Give both sweepers time to (wrongly) handle something twice.
    std::thread::sleep(Duration::from_secs(1));
    let open = rt.block_on(store.open_commands(100)).expect("commands");
    assert_eq!(
        open.iter().filter(|c| c.kind == "revoke").count(),
        20,
        "one revoke per request"
    );
    for id in &ids {
        let filter = latch_server::store::AuditFilter {
            since: None,
            subject: Some(id.clone()),
        };
        let events = rt
            .block_on(store.find_audit_events(&filter, 0, 100))
            .expect("audit");
        let expiring = events
            .iter()
            .filter(|e| e.action == "request.expiring")
            .count();
        assert_eq!(expiring, 1, "request {id} expired {expiring} times");
        let view = rt
            .block_on(store.get_request(id))
            .expect("read")
            .expect("request");
        let lag = view.grants[0].updated_at - view.request.expires_at.expect("expiry");
        assert!(
            lag < chrono::Duration::seconds(3),
            "revoked {lag} after expiry"
        );
    }
    // Both servers were sweeping (each logs what it swept); together exactly once each.
    success(&first.cli(Some(&admin), &["audit", "verify"]));
}

#[test]
fn automatic_flows_follow_directory_applies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"), None);
    let admin = server.admin_token();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let flows = write(
        "auto.yaml",
        r#"
name: oncall-db-write
kind: automatic
requesters: { any_of: [{ on_call: pagerduty/primary-sre }] }
targets:
  - integration: pg-main
    resource_types: [postgres.database]
    permissions: [write]
"#,
    );
    let on_shift = |who: &str| {
        format!(
            "users:\n  - {{ email: {who}, groups: [sre] }}\non_call:\n  - schedule: pagerduty/primary-sre\n    shifts:\n      - {{ user: {who}, from: \"2020-01-01T00:00:00Z\", to: \"2040-01-01T00:00:00Z\" }}\n"
        )
    };
    success(&server.cli(
        Some(&admin),
        &["resources", "apply", "-f", &write("r.yaml", RESOURCES)],
    ));
    success(&server.cli(
        Some(&admin),
        &[
            "directory",
            "apply",
            "-f",
            &write("carol.yaml", &on_shift("carol@example.com")),
        ],
    ));
    success(&server.cli(Some(&admin), &["flows", "apply", "-f", &flows]));
    let grants = |server: &Server| {
        json(&success(
            &server.cli(Some(&admin), &["-o", "json", "grants", "list"]),
        ))
    };
    // Applying the flow granted carol write on the database, waiting for a connector.
    let first = grants(&server);
    assert_eq!(first.as_array().map(Vec::len), Some(1), "{first}");
    assert_eq!(first[0]["identity"], "carol@example.com");
    assert_eq!(first[0]["state"], "granting");

    // The shift passes to dave: dave gains it, carol's grant is revoked.
    success(&server.cli(
        Some(&admin),
        &[
            "directory",
            "apply",
            "-f",
            &write("dave.yaml", &on_shift("dave@example.com")),
        ],
    ));
    let after = grants(&server);
    let states: Vec<(String, String)> = after
        .as_array()
        .expect("grants")
        .iter()
        .map(|g| {
            (
                g["identity"].as_str().unwrap_or_default().to_string(),
                g["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        states.contains(&("dave@example.com".into(), "granting".into())),
        "{after}"
    );
    assert!(
        states.contains(&("carol@example.com".into(), "revoking".into())),
        "{after}"
    );
}
