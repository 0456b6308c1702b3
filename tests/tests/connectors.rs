//! Real connectors against the real server: `latch-connector-fake` (the connector runtime with the
//! test-only `fake` provider) enrolls, connects over mutual TLS, syncs its inventory, and applies
//! and revokes grants in its fake cloud, a JSON file the test reads.

use std::path::Path;
use std::time::Duration;

use latch_e2e::{Connector, ConnectorOptions, Server, success, wait_until};

const PEOPLE: &str = r#"
users:
  - { email: alice@example.com, groups: [engineering] }
"#;

const FLOWS: &str = r#"
name: fake-read
kind: self_serve
requesters: { any_of: [{ group: engineering }] }
targets:
  - integration: fake-1
    resource_types: [fake.thing]
    include: { tags: { env: prod } }
    permissions: [read]
duration: { default: 10m, max: 1h }
approval: { mode: auto }
"#;

/// How long anything the connector does may take here.
const PATIENCE: Duration = Duration::from_secs(30);

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

/// Applies the directory and the flow, and returns alice's token.
fn set_up(server: &Server, dir: &Path) -> String {
    server.apply(
        dir,
        &[
            ("people.yaml", PEOPLE, "directory"),
            ("flows.yaml", FLOWS, "flows"),
        ],
    );
    server.user_token("alice@example.com")
}

#[test]
fn connector_applies_and_revokes_a_grant_over_mtls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_with(
        &dir.path().join("data"),
        None,
        &["--connector-heartbeat", "1s"],
    );
    let admin = server.admin_token();
    let alice = set_up(&server, dir.path());

    let mut edge = Connector::start(&server, "edge-1", ConnectorOptions::default());
    edge.wait_connected(&server, PATIENCE);

    // The connector's first sync: the root and five things.
    let thing = latch_e2e::fake_provider::thing_id("fake-1", 0);
    wait_synced(&server, 5);
    let shown = json(&success(
        &server.cli(Some(&admin), &["-o", "json", "resources", "show", &thing]),
    ));
    assert_eq!(shown["type"], "fake.thing", "{shown}");
    assert_eq!(shown["tags"]["env"], "prod", "{shown}");
    assert_eq!(shown["parent"], "fake://fake-1/root", "{shown}");
    assert_eq!(shown["permissions"], serde_json::json!(["read", "write"]));

    // The integration is served by this connector.
    let integrations = json(&success(
        &server.cli(Some(&admin), &["-o", "json", "integrations", "list"]),
    ));
    let fake = integrations
        .as_array()
        .and_then(|list| list.iter().find(|i| i["name"] == "fake-1"))
        .unwrap_or_else(|| panic!("no fake-1 in {integrations}"));
    assert_eq!(fake["kind"], "fake", "{fake}");
    assert_eq!(fake["state"], "connected", "{fake}");
    assert_eq!(fake["connectors"], serde_json::json!(["edge-1"]), "{fake}");

    // Ask: approved at once, applied by the connector, then active.
    let id = server.request_access(&alice, &thing, "read", "10m");
    let granted = (
        "alice@example.com".to_string(),
        thing.clone(),
        "read".to_string(),
    );
    wait_until(PATIENCE, "the grant in the fake cloud", || {
        edge.record().contains(&granted)
    });
    wait_until(PATIENCE, "the request to be active", || {
        server.request_state(&alice, &id) == "active"
    });
    assert_eq!(edge.record().len(), 1);

    // Revoke: gone from the cloud, and the request ends.
    success(&server.cli(
        Some(&alice),
        &["-o", "json", "revoke", &id, "--reason", "done"],
    ));
    wait_until(PATIENCE, "the revoke in the fake cloud", || {
        edge.record().is_empty()
    });
    wait_until(PATIENCE, "the request to be revoked", || {
        server.request_state(&alice, &id) == "revoked"
    });
    assert_eq!(
        (edge.applied("grant"), edge.applied("revoke")),
        (1, 1),
        "{:#?}",
        edge.calls()
    );

    // A drained stop exits 0.
    assert_eq!(edge.stop(), Some(0), "{}", edge.log_text());
    success(&server.cli(Some(&admin), &["audit", "verify"]));
}

/// Whether the connector has begun applying a command of `kind` (`GRANT` or `REVOKE`).
fn started(connector: &Connector, kind: &str) -> bool {
    let wanted = format!("COMMAND_KIND_{kind}");
    connector
        .log_text()
        .lines()
        .any(|line| line.contains("applying a command") && line.contains(&wanted))
}

/// A server with fast heartbeats and retries, the directory and flow applied; alice's token.
fn start_server(dir: &Path, extra: &[&str]) -> (Server, String) {
    let mut args = vec!["--connector-heartbeat", "1s", "--command-retry-base", "1s"];
    args.extend_from_slice(extra);
    let server = Server::start_with(&dir.join("data"), None, &args);
    let alice = set_up(&server, dir);
    (server, alice)
}

fn alice_reads(resource: &str) -> (String, String, String) {
    (
        "alice@example.com".to_string(),
        resource.to_string(),
        "read".to_string(),
    )
}

/// Waits until the connector has synced `count` things of `fake-1` (and the root).
fn wait_synced(server: &Server, count: usize) {
    let admin = server.admin_token();
    wait_until(PATIENCE, "the synced resources", || {
        let out = server.cli(
            Some(&admin),
            &["-o", "json", "resources", "list", "--integration", "fake-1"],
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().map(Vec::len))
            == Some(count + 1)
    });
}

/// The grant states of a request.
fn grant_states(server: &Server, token: &str, id: &str) -> Vec<String> {
    let out = success(&server.cli(Some(token), &["-o", "json", "requests", "show", id]));
    json(&out)["grants"]
        .as_array()
        .map(|grants| {
            grants
                .iter()
                .map(|g| g["state"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// What dies in the middle of a grant and of a revoke.
#[derive(Clone, Copy, PartialEq)]
enum Crash {
    /// The connector, while its provider is applying: nothing reached the cloud yet, and the
    /// restarted connector gets the command again.
    Connector,
    /// The server, while the connector is applying: the connector finishes but cannot report;
    /// the restarted server delivers the command again, and the connector answers from its
    /// journal without applying it a second time.
    Server,
}

/// kill -9 of `crash` in the middle of a grant and then of a revoke: nothing lost, nothing
/// applied twice, and the fake cloud ends as Latch wants it.
fn crash_in_the_middle(crash: Crash) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, alice) = start_server(dir.path(), &[]);
    // Each apply takes 1.5 s, so the kill lands inside it.
    let options = ConnectorOptions {
        delay: Duration::from_millis(1500),
        ..ConnectorOptions::default()
    };
    let mut edge = Connector::start(&server, "edge-1", options);
    edge.wait_connected(&server, PATIENCE);
    wait_synced(&server, 5);
    let thing = latch_e2e::fake_provider::thing_id("fake-1", 0);
    let kill_and_restart =
        |server: &mut Server, edge: &mut Connector, applied: &dyn Fn(&Connector) -> bool| {
            match crash {
                Crash::Connector => {
                    std::thread::sleep(Duration::from_millis(300));
                    edge.kill();
                    assert!(!applied(edge), "killed before the cloud changed");
                    edge.spawn();
                }
                Crash::Server => {
                    server.kill();
                    wait_until(
                        PATIENCE,
                        "the connector to finish without the server",
                        || applied(edge),
                    );
                    server.spawn();
                }
            }
        };

    let id = server.request_access(&alice, &thing, "read", "10m");
    wait_until(PATIENCE, "the connector to start the grant", || {
        started(&edge, "GRANT")
    });
    kill_and_restart(&mut server, &mut edge, &|edge| {
        edge.record().contains(&alice_reads(&thing))
    });
    wait_until(PATIENCE, "the grant after the restart", || {
        edge.record().contains(&alice_reads(&thing))
    });
    wait_until(PATIENCE, "the request to be active", || {
        server.request_state(&alice, &id) == "active"
    });

    success(&server.cli(Some(&alice), &["revoke", &id, "--reason", "done"]));
    wait_until(PATIENCE, "the connector to start the revoke", || {
        started(&edge, "REVOKE")
    });
    kill_and_restart(&mut server, &mut edge, &|edge| edge.record().is_empty());
    wait_until(PATIENCE, "the revoke after the restart", || {
        edge.record().is_empty()
    });
    wait_until(PATIENCE, "the request to be revoked", || {
        server.request_state(&alice, &id) == "revoked"
    });
    assert_eq!(
        (edge.applied("grant"), edge.applied("revoke")),
        (1, 1),
        "{:#?}",
        edge.calls()
    );
    success(&server.cli(Some(&server.admin_token()), &["audit", "verify"]));
}

#[test]
fn killing_the_connector_mid_grant_and_mid_revoke_loses_nothing_and_applies_nothing_twice() {
    crash_in_the_middle(Crash::Connector);
}

#[test]
fn killing_the_server_mid_grant_and_mid_revoke_loses_nothing_and_applies_nothing_twice() {
    crash_in_the_middle(Crash::Server);
}

/// A TCP proxy the test can cut: every connection through it is dropped at once.
struct Proxy {
    address: String,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    runtime: tokio::runtime::Runtime,
}

impl Proxy {
    fn start(target: &str) -> Proxy {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let tracked = connections.clone();
        let target = target.to_string();
        runtime.spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let handle = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tracked.lock().expect("lock").push(handle);
            }
        });
        Proxy {
            address,
            connections,
            runtime,
        }
    }

    /// Drops every connection through the proxy (both sockets close).
    fn cut(&self) -> usize {
        let handles: Vec<_> = self.connections.lock().expect("lock").drain(..).collect();
        let live = handles.iter().filter(|h| !h.is_finished()).count();
        for handle in handles {
            handle.abort();
        }
        live
    }
}

#[test]
fn a_cut_connection_reconnects_and_carries_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, alice) = start_server(dir.path(), &[]);
    let proxy = Proxy::start(&server.connector_listen);
    let mut edge = Connector::create(&server, "edge-1", ConnectorOptions::default());
    // Enrolled directly; from now on it reaches the server only through the proxy.
    edge.server_url = format!("https://{}", proxy.address);
    edge.write_config();
    edge.spawn();
    edge.wait_connected(&server, PATIENCE);
    wait_synced(&server, 5);
    let thing = latch_e2e::fake_provider::thing_id("fake-1", 0);
    let first = server.request_access(&alice, &thing, "read", "10m");
    wait_until(PATIENCE, "the first grant", || {
        server.request_state(&alice, &first) == "active"
    });

    assert!(proxy.cut() >= 1, "the stream went through the proxy");
    // The next request is carried out over the new connection.
    let other = latch_e2e::fake_provider::thing_id("fake-1", 2);
    let second = server.request_access(&alice, &other, "read", "10m");
    wait_until(PATIENCE, "the second grant after the cut", || {
        server.request_state(&alice, &second) == "active"
    });
    assert!(edge.record().contains(&alice_reads(&other)));
    assert!(
        edge.log_text().contains("reconnect")
            || edge.log_text().matches("stream open").count() >= 2,
        "{}",
        edge.log_text()
    );
    drop(proxy.runtime);
}

#[test]
fn commands_of_a_dead_connector_go_to_another_of_the_same_integration() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, alice) = start_server(dir.path(), &[]);
    let slow = ConnectorOptions {
        delay: Duration::from_millis(1500),
        ..ConnectorOptions::default()
    };
    let mut first = Connector::start(&server, "edge-1", slow.clone());
    first.wait_connected(&server, PATIENCE);
    wait_synced(&server, 5);
    let mut second = Connector::start(&server, "edge-2", slow);
    second.wait_connected(&server, PATIENCE);

    let thing = latch_e2e::fake_provider::thing_id("fake-1", 0);
    let id = server.request_access(&alice, &thing, "read", "10m");
    // Whichever got the command dies in the middle of it.
    let applying = |c: &Connector| started(c, "GRANT");
    wait_until(PATIENCE, "a connector to start the grant", || {
        applying(&first) || applying(&second)
    });
    let first_had_it = applying(&first);
    let (dead, survivor) = if first_had_it {
        (&mut first, &mut second)
    } else {
        (&mut second, &mut first)
    };
    dead.kill();
    wait_until(PATIENCE, "the other connector to apply the grant", || {
        survivor.record().contains(&alice_reads(&thing))
    });
    wait_until(PATIENCE, "the request to be active", || {
        server.request_state(&alice, &id) == "active"
    });
    assert_eq!(dead.applied("grant"), 0, "{:#?}", dead.calls());
    assert_eq!(survivor.applied("grant"), 1, "{:#?}", survivor.calls());
    let integrations = json(&success(&server.cli(
        Some(&server.admin_token()),
        &["-o", "json", "integrations", "show", "fake-1"],
    )));
    assert_eq!(
        integrations["connectors"],
        serde_json::json!(["edge-1", "edge-2"]),
        "{integrations}"
    );
}

#[test]
fn guardrails_refuse_a_grant_and_nothing_is_applied() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, alice) = start_server(dir.path(), &[]);
    let options = ConnectorOptions {
        guardrails: Some(r#"deny_permissions = ["re*"]"#.into()),
        ..ConnectorOptions::default()
    };
    let mut edge = Connector::start(&server, "edge-1", options);
    edge.wait_connected(&server, PATIENCE);
    wait_synced(&server, 5);
    let thing = latch_e2e::fake_provider::thing_id("fake-1", 0);
    let id = server.request_access(&alice, &thing, "read", "10m");
    wait_until(PATIENCE, "the grant to fail", || {
        grant_states(&server, &alice, &id) == ["failed"]
    });
    let shown = json(&success(
        &server.cli(Some(&alice), &["-o", "json", "requests", "show", &id]),
    ));
    let reason = shown["grants"][0]["end_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("refused by the connector") && reason.contains("re*"),
        "{shown}"
    );
    assert!(edge.record().is_empty());
    assert_eq!(edge.applied("grant"), 0);
}

#[test]
fn transient_failures_are_retried_and_a_revoke_that_keeps_failing_is_revoke_failed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, alice) = start_server(dir.path(), &["--command-retry-attempts", "3"]);
    let options = ConnectorOptions {
        fail_transient: 2,
        ..ConnectorOptions::default()
    };
    let mut edge = Connector::start(&server, "edge-1", options);
    edge.wait_connected(&server, PATIENCE);
    wait_synced(&server, 5);
    let thing = latch_e2e::fake_provider::thing_id("fake-1", 0);

    // Two transient failures, then success on the third attempt (1 s, then 2 s apart).
    let id = server.request_access(&alice, &thing, "read", "10m");
    wait_until(PATIENCE, "the grant after two retries", || {
        server.request_state(&alice, &id) == "active"
    });
    let transient = edge
        .calls()
        .iter()
        .filter(|c| c["op"] == "grant" && c["result"] == "transient")
        .count();
    assert_eq!(
        (transient, edge.applied("grant")),
        (2, 1),
        "{:#?}",
        edge.calls()
    );

    // Now every call fails: the revoke uses its three attempts and becomes revoke_failed.
    edge.kill();
    edge.options.fail_transient = 1000;
    edge.write_config();
    edge.spawn();
    edge.wait_connected(&server, PATIENCE);
    success(&server.cli(Some(&alice), &["revoke", &id, "--reason", "done"]));
    wait_until(PATIENCE, "the revoke to fail for good", || {
        grant_states(&server, &alice, &id) == ["revoke_failed"]
    });
    assert!(
        edge.record().contains(&alice_reads(&thing)),
        "still in the cloud"
    );
    let (_, metrics) = latch_e2e::http_get(&server.listen, "/metrics").expect("metrics");
    assert!(
        metrics.contains("latch_grants_revoke_failed_total 1"),
        "{metrics}"
    );
}

#[test]
fn a_tag_change_synced_on_demand_revokes_access_the_flow_no_longer_allows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, alice) = start_server(dir.path(), &[]);
    let mut edge = Connector::start(
        &server,
        "edge-1",
        ConnectorOptions {
            identities: vec!["alice@example.com".into(), "nobody@example.com".into()],
            groups: vec![
                (
                    "admins".into(),
                    vec!["nobody@example.com".into(), "alice@example.com".into()],
                ),
                ("empty".into(), vec![]),
            ],
            ..ConnectorOptions::default()
        },
    );
    edge.wait_connected(&server, PATIENCE);
    wait_synced(&server, 5);
    let admin = server.admin_token();
    let thing = latch_e2e::fake_provider::thing_id("fake-1", 0);
    let id = server.request_access(&alice, &thing, "read", "10m");
    wait_until(PATIENCE, "the grant", || {
        server.request_state(&alice, &id) == "active"
    });

    // Identities are linked to directory users by email.
    let shown = json(&success(&server.cli(
        Some(&admin),
        &["-o", "json", "integrations", "show", "fake-1"],
    )));
    assert_eq!(
        (&shown["identity_count"], &shown["linked_identity_count"]),
        (&serde_json::json!(2), &serde_json::json!(1)),
        "{shown}"
    );
    // So are the members of the integration's groups.
    assert_eq!(shown["group_count"], 2, "{shown}");
    let groups = json(&success(&server.cli(
        Some(&alice),
        &["-o", "json", "integrations", "groups", "fake-1"],
    )));
    assert_eq!(
        groups,
        serde_json::json!([
            {
                "external_id": "admins",
                "display_name": "admins",
                "members": [
                    {
                        "external_id": "alice@example.com",
                        "email": "alice@example.com",
                        "display_name": "alice@example.com",
                        "linked": true
                    },
                    {
                        "external_id": "nobody@example.com",
                        "email": "nobody@example.com",
                        "display_name": "nobody@example.com",
                        "linked": false
                    }
                ]
            },
            { "external_id": "empty", "display_name": "empty", "members": [] }
        ])
    );

    // The thing moves out of prod; a sync asked for now brings the change in.
    edge.set_tags(&thing, &[("env", Some("dev"))]);
    success(&server.cli(Some(&admin), &["integrations", "sync", "fake-1"]));
    wait_until(PATIENCE, "the grant to be revoked", || {
        server.request_state(&alice, &id) == "revoked"
    });
    wait_until(PATIENCE, "the revoke in the fake cloud", || {
        edge.record().is_empty()
    });
    let tagged = json(&success(&server.cli(
        Some(&admin),
        &["-o", "json", "resources", "list", "--tag", "env=dev"],
    )));
    assert!(
        tagged
            .as_array()
            .is_some_and(|list| list.iter().any(|r| r["id"] == thing.as_str())),
        "{tagged}"
    );

    // Fewer things at the next full sync: the missing ones are deleted.
    edge.kill();
    edge.options.resources = 3;
    edge.write_config();
    edge.spawn();
    wait_synced(&server, 3);
}

/// This connector as `latch connectors list` shows it.
fn listed(server: &Server, name: &str) -> serde_json::Value {
    let out = success(&server.cli(
        Some(&server.admin_token()),
        &["-o", "json", "connectors", "list"],
    ));
    json(&out)
        .as_array()
        .and_then(|list| list.iter().find(|c| c["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no connector {name} in {out}"))
}

#[test]
fn the_certificate_is_renewed_at_half_life_over_the_stream() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, alice) = start_server(dir.path(), &["--connector-cert-ttl", "6s"]);
    let mut edge = Connector::start(&server, "edge-1", ConnectorOptions::default());
    edge.wait_connected(&server, PATIENCE);
    wait_synced(&server, 5);
    let first = listed(&server, "edge-1")["certificate_not_after"].clone();
    wait_until(PATIENCE, "a renewed certificate", || {
        listed(&server, "edge-1")["certificate_not_after"] != first
    });
    // Past the first certificate's end, a new connection works with the renewed one.
    std::thread::sleep(Duration::from_secs(4));
    edge.kill();
    edge.spawn();
    edge.wait_connected(&server, PATIENCE);
    let thing = latch_e2e::fake_provider::thing_id("fake-1", 0);
    let id = server.request_access(&alice, &thing, "read", "10m");
    wait_until(PATIENCE, "the grant over the renewed certificate", || {
        server.request_state(&alice, &id) == "active"
    });
}

#[test]
fn a_silent_connector_is_noticed_and_comes_back_when_it_wakes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _alice) = start_server(dir.path(), &[]);
    let mut edge = Connector::start(&server, "edge-1", ConnectorOptions::default());
    edge.wait_connected(&server, PATIENCE);
    // Frozen, its TCP connection stays open but it says nothing: three missed heartbeats (1 s
    // each here) end its stream on the server.
    edge.signal("-STOP");
    let frozen = std::time::Instant::now();
    wait_until(PATIENCE, "the server to notice", || {
        listed(&server, "edge-1")["connected"] == false
    });
    assert!(
        frozen.elapsed() < Duration::from_secs(10),
        "noticed after {:?}",
        frozen.elapsed()
    );
    // Whichever notices first: HTTP/2 keepalive pings or the stream's own heartbeats.
    let log = server.log_text();
    assert!(
        log.contains("went silent") || log.contains("the connector stream ended"),
        "{log}"
    );
    edge.signal("-CONT");
    edge.wait_connected(&server, PATIENCE);
}

#[test]
fn integration_owners_set_by_an_admin_approve_for_integration_owner() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, alice) = start_server(dir.path(), &[]);
    let admin = server.admin_token();
    // olga joins the directory; a second flow lets write through with one integration owner.
    server.apply(
        dir.path(),
        &[
            (
                "people-2.yaml",
                "users:\n  - { email: alice@example.com, groups: [engineering] }\n  - { email: olga@example.com, groups: [dba] }\n",
                "directory",
            ),
            (
                "owner-flow.yaml",
                "name: fake-write\nkind: self_serve\nrequesters: { any_of: [{ group: engineering }] }\n\
                 targets:\n  - integration: fake-1\n    resource_types: [fake.thing]\n    permissions: [write]\n\
                 duration: { default: 10m, max: 1h }\n\
                 approval:\n  mode: all_of\n  groups:\n    - { approvers: [integration_owner], min: 1 }\n",
                "flows",
            ),
        ],
    );
    let mut edge = Connector::start(&server, "edge-1", ConnectorOptions::default());
    edge.wait_connected(&server, PATIENCE);
    wait_synced(&server, 5);
    let olga = server.user_token("olga@example.com");

    let thing = latch_e2e::fake_provider::thing_id("fake-1", 1);
    let asked = json(&success(&server.cli(
        Some(&alice),
        &[
            "-o",
            "json",
            "request",
            "--resource",
            &thing,
            "--permission",
            "write",
        ],
    )));
    let id = asked["id"].as_str().expect("id").to_string();
    assert_eq!(asked["state"], "pending", "{asked}");
    // Before the owners are set, olga may not approve.
    let refused = server.cli(Some(&olga), &["approve", &id]);
    assert!(!refused.status.success());

    success(&server.cli(
        Some(&admin),
        &["integrations", "set-owners", "fake-1", "--group", "dba"],
    ));
    let shown = json(&success(&server.cli(
        Some(&admin),
        &["-o", "json", "integrations", "show", "fake-1"],
    )));
    assert_eq!(shown["owner_groups"], serde_json::json!(["dba"]), "{shown}");
    success(&server.cli(Some(&olga), &["approve", &id]));
    wait_until(PATIENCE, "the owner-approved grant", || {
        server.request_state(&alice, &id) == "active"
    });
    assert!(edge.record().contains(&(
        "alice@example.com".to_string(),
        thing.clone(),
        "write".to_string()
    )));
}
