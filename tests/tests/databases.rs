//! The database providers end to end: the real `latch-server`, the shipped `latch-connector` and
//! `latch`, against this machine's real PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306).
//! Each test makes its own database and logins, with a random suffix, and drops them at the end.
//!
//! People log in to the databases as themselves (`existing_role`: the role template maps
//! `al<sfx>@example.com` to the role `al<sfx>`), or with a login Latch made for them
//! (`temporary_user`, fetched with `latch grants credentials`).

use std::time::Duration;

use latch_e2e::{Connector, ConnectorOptions, Server, failure, psql, success};
use sqlx::Connection;

/// How long anything the connector does may take here.
const PATIENCE: Duration = Duration::from_secs(40);

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A random suffix of lowercase hex digits, so names are plain identifiers on both engines.
fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

/// A PostgreSQL database with a table of one row, and login roles; dropped (with the group roles
/// and bookkeeping rows the connector made for it) when this value is.
struct PgPlayground {
    database: String,
    roles: Vec<String>,
}

impl PgPlayground {
    fn create(sfx: &str, roles: &[String]) -> PgPlayground {
        let database = format!("lte{sfx}");
        psql(&format!("CREATE DATABASE {database}"));
        let playground = PgPlayground {
            database,
            roles: roles.to_vec(),
        };
        for role in roles {
            psql(&format!("CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'"));
        }
        playground.run("CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)");
        playground
    }

    /// Runs SQL as the admin in this database.
    fn run(&self, sql: &str) {
        let status = std::process::Command::new("psql")
            .arg(self.admin_url())
            .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .status()
            .expect("run psql");
        assert!(status.success(), "psql failed: {sql}");
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.database)
    }

    /// The resource id the connector syncs for this database.
    fn resource(&self) -> String {
        format!("postgres://127.0.0.1:5432/{}", self.database)
    }

    /// Connects as `user` (without a password: the test server trusts local connections).
    async fn connect_as(&self, user: &str) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&format!(
            "postgres://{user}@127.0.0.1:5432/{}",
            self.database
        ))
        .await
        .unwrap_or_else(|err| panic!("{user} cannot connect to {}: {err}", self.database))
    }

    /// The admin's answer to one query returning one text column.
    async fn admin_strings(&self, sql: &str) -> Vec<String> {
        let mut admin = sqlx::PgConnection::connect(&self.admin_url())
            .await
            .expect("admin connection");
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&mut admin)
            .await
            .expect("admin query")
    }
}

impl Drop for PgPlayground {
    fn drop(&mut self) {
        let database = &self.database;
        let roles: Vec<String> = self.roles.iter().map(|r| format!("'{r}'")).collect();
        // `psql -c` runs its statements in one transaction, where DROP DATABASE may not run.
        let drop_database = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
        let cleanup = format!(
            "DO $$ DECLARE r text; BEGIN
               IF to_regclass('latch_connector.grants') IS NOT NULL THEN
                 DELETE FROM latch_connector.grants WHERE database = '{database}';
               END IF;
               FOR r IN SELECT rolname FROM pg_roles
                        WHERE rolname LIKE 'latch\\_{database}\\_%' OR rolname IN ({}) LOOP
                 EXECUTE format('DROP ROLE %I', r);
               END LOOP;
             END $$;",
            if roles.is_empty() {
                "''".to_string()
            } else {
                roles.join(", ")
            }
        );
        for sql in [&drop_database, &cleanup] {
            let _ = std::process::Command::new("psql")
                .arg(latch_e2e::postgres_admin_url())
                .args(["-q", "-c", sql])
                .status();
        }
    }
}

/// The directory: the people given, in engineering, managed by `manager`.
fn people(users: &[String], manager: &str) -> String {
    let mut text = String::from("users:\n");
    for user in users {
        text.push_str(&format!(
            "  - {{ email: {user}@example.com, manager: {manager}@example.com, groups: [engineering] }}\n"
        ));
    }
    text.push_str(&format!("  - {{ email: {manager}@example.com }}\n"));
    text
}

/// A flow on `integration`'s databases: read or write, at most 1 h, approved by the manager
/// (`manager = true`) or automatically.
fn flow(integration: &str, resource_type: &str, manager: bool) -> String {
    let approval = if manager {
        "approval:\n  mode: all_of\n  groups:\n    - { approvers: [manager], min: 1 }\n  requester_can_approve: false\n"
    } else {
        "approval: { mode: auto }\n"
    };
    format!(
        "name: {integration}-access\nkind: self_serve\nrequesters: {{ any_of: [{{ group: engineering }}] }}\n\
         targets:\n  - integration: {integration}\n    resource_types: [{resource_type}]\n    permissions: [read, write]\n\
         duration: {{ default: 10m, max: 1h }}\n{approval}"
    )
}

/// The shipped connector serving `integrations` (raw TOML), connected.
fn start_connector(server: &Server, integrations: String) -> Connector {
    let options = ConnectorOptions {
        shipped_integrations: Some(integrations),
        ..ConnectorOptions::default()
    };
    let mut edge = Connector::start(server, "edge-db", options);
    edge.wait_connected(server, PATIENCE);
    edge
}

fn is_permission_error<T: std::fmt::Debug>(result: &Result<T, sqlx::Error>) -> bool {
    matches!(result, Err(err) if err.to_string().contains("permission denied"))
}

#[test]
fn postgres_access_is_given_used_and_ends_at_expiry() {
    let sfx = suffix();
    let alice = format!("al{sfx}");
    let pg = PgPlayground::create(&sfx, std::slice::from_ref(&alice));
    let dir = tempfile::tempdir().expect("temp dir");
    let manager = format!("mg{sfx}");
    let server = Server::start_applied(
        dir.path(),
        &people(std::slice::from_ref(&alice), &manager),
        &flow("pg-e2e", "postgres.database", true),
    );
    let edge = start_connector(
        &server,
        format!(
            "[[integrations]]\nname = \"pg-e2e\"\nkind = \"postgres\"\n\
             dsn = \"postgres://postgres@127.0.0.1:5432/postgres\"\ndatabases = [\"{}\"]\n\
             user_mapping = \"existing_role\"\nrole_template = \"{{local}}\"\n\
             [[integrations.tag_rules]]\ndatabases = \"lte*\"\ntags = {{ env = \"test\" }}\n",
            pg.database
        ),
    );
    server.wait_resource(&pg.resource(), PATIENCE);
    let admin = server.admin_token();
    let shown = json(&success(&server.cli(
        Some(&admin),
        &["-o", "json", "resources", "show", &pg.resource()],
    )));
    assert_eq!(shown["type"], "postgres.database", "{shown}");
    assert_eq!(shown["tags"]["env"], "test", "{shown}");
    assert_eq!(
        shown["permissions"],
        serde_json::json!(["admin", "read", "write"]),
        "{shown}"
    );

    let rt = runtime();
    let mut session = rt.block_on(pg.connect_as(&alice));
    let before = rt.block_on(sqlx::query("SELECT id FROM orders").fetch_all(&mut session));
    assert!(
        is_permission_error(&before),
        "read before the grant: {before:?}"
    );

    // Alice asks; her manager approves; the connector grants.
    let alice_token = server.user_token(&format!("{alice}@example.com"));
    let manager_token = server.user_token(&format!("{manager}@example.com"));
    let id = server.request_access(&alice_token, &pg.resource(), "read", "20s");
    assert_eq!(server.request_state(&alice_token, &id), "pending");
    let approve = failure(&server.cli(Some(&alice_token), &["approve", &id]));
    assert!(
        approve.contains("approve"),
        "self-approval refused: {approve}"
    );
    success(&server.cli(Some(&manager_token), &["approve", &id]));
    server.wait_request_state(&alice_token, &id, "active", PATIENCE);

    // During: she reads (on the session she already had open, too), and may not write.
    let rows: Vec<i32> = rt
        .block_on(sqlx::query_scalar("SELECT id FROM orders").fetch_all(&mut session))
        .expect("read during the grant");
    assert_eq!(rows, vec![1]);
    let write = rt.block_on(sqlx::query("INSERT INTO orders VALUES (2)").execute(&mut session));
    assert!(
        is_permission_error(&write),
        "write with read only: {write:?}"
    );

    // At expiry the connector revokes, and her open session is ended.
    server.wait_request_state(&alice_token, &id, "expired", PATIENCE);
    let after_on_old_session =
        rt.block_on(sqlx::query("SELECT id FROM orders").fetch_all(&mut session));
    assert!(
        after_on_old_session.is_err(),
        "the session open at revoke must be ended: {after_on_old_session:?}"
    );
    let mut fresh = rt.block_on(pg.connect_as(&alice));
    let after = rt.block_on(sqlx::query("SELECT id FROM orders").fetch_all(&mut fresh));
    assert!(is_permission_error(&after), "read after expiry: {after:?}");
    drop(edge);
    success(&server.cli(Some(&admin), &["audit", "verify"]));
}

#[test]
fn postgres_temporary_users_are_the_requesters_alone_and_dropped_at_revoke() {
    let sfx = suffix();
    let alice = format!("al{sfx}");
    let bob = format!("bo{sfx}");
    let pg = PgPlayground::create(&sfx, &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_applied(
        dir.path(),
        &people(&[alice.clone(), bob.clone()], &format!("mg{sfx}")),
        &flow("pg-tmp", "postgres.database", false),
    );
    let _edge = start_connector(
        &server,
        format!(
            "[[integrations]]\nname = \"pg-tmp\"\nkind = \"postgres\"\n\
             dsn = \"postgres://postgres@127.0.0.1:5432/postgres\"\ndatabases = [\"{}\"]\n\
             user_mapping = \"temporary_user\"\n",
            pg.database
        ),
    );
    server.wait_resource(&pg.resource(), PATIENCE);
    let alice_token = server.user_token(&format!("{alice}@example.com"));
    let bob_token = server.user_token(&format!("{bob}@example.com"));
    let id = server.request_access(&alice_token, &pg.resource(), "read", "30m");
    server.wait_request_state(&alice_token, &id, "active", PATIENCE);

    // Only alice may see the login made for her.
    let credentials = json(&success(
        &server.cli(Some(&alice_token), &["grants", "credentials", &id]),
    ));
    let username = credentials["username"]
        .as_str()
        .expect("username")
        .to_string();
    assert!(username.starts_with("latch_t_"), "{credentials}");
    assert_eq!(credentials["host"], "127.0.0.1", "{credentials}");
    assert_eq!(credentials["port"], 5432, "{credentials}");
    assert_eq!(
        credentials["database"],
        pg.database.as_str(),
        "{credentials}"
    );
    assert_eq!(
        credentials["password"].as_str().map(str::len),
        Some(32),
        "{credentials}"
    );
    let refused = failure(&server.cli(Some(&bob_token), &["grants", "credentials", &id]));
    assert!(refused.contains("only its requester"), "{refused}");
    let admin = server.admin_token();
    let refused = failure(&server.cli(Some(&admin), &["grants", "credentials", &id]));
    assert!(refused.contains("only its requester"), "{refused}");

    // The database itself ends the login at the expiry, and the login reads.
    let rt = runtime();
    let valid_until = rt.block_on(pg.admin_strings(&format!(
        "SELECT to_char(rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI') \
         FROM pg_roles WHERE rolname = '{username}'"
    )));
    let shown = json(&success(
        &server.cli(Some(&alice_token), &["-o", "json", "requests", "show", &id]),
    ));
    let expires = shown["expires_at"]
        .as_str()
        .expect("expires_at")
        .to_string();
    assert_eq!(valid_until.len(), 1, "the login exists");
    assert!(
        expires.starts_with(&valid_until[0]),
        "VALID UNTIL {valid_until:?} is the expiry {expires}"
    );
    let mut session = rt.block_on(pg.connect_as(&username));
    let rows: Vec<i32> = rt
        .block_on(sqlx::query_scalar("SELECT id FROM orders").fetch_all(&mut session))
        .expect("the temporary login reads");
    assert_eq!(rows, vec![1]);

    // Revoke: the session ends, the login is dropped and the credentials are gone.
    success(&server.cli(Some(&alice_token), &["revoke", &id, "--reason", "done"]));
    server.wait_request_state(&alice_token, &id, "revoked", PATIENCE);
    assert!(
        rt.block_on(sqlx::query("SELECT 1").fetch_all(&mut session))
            .is_err(),
        "the temporary login's session is ended"
    );
    let left = rt.block_on(pg.admin_strings(&format!(
        "SELECT rolname::text FROM pg_roles WHERE rolname = '{username}'"
    )));
    assert!(left.is_empty(), "the login is dropped: {left:?}");
    let gone = failure(&server.cli(Some(&alice_token), &["grants", "credentials", &id]));
    assert!(gone.contains("has no credentials"), "{gone}");
    let audit = success(&server.cli(Some(&admin), &["-o", "json", "audit", "list"]));
    assert!(audit.contains("credentials.viewed"), "viewing is audited");
    assert!(
        !audit.contains(credentials["password"].as_str().unwrap_or("-")),
        "the password is never in the audit log"
    );
}

#[test]
fn postgres_fifty_grants_and_revokes_at_once_stay_consistent() {
    let sfx = suffix();
    let users: Vec<String> = (0..50).map(|i| format!("u{i}x{sfx}")).collect();
    let pg = PgPlayground::create(&sfx, &users);
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_applied(
        dir.path(),
        &people(&users, &format!("mg{sfx}")),
        &flow("pg-many", "postgres.database", false),
    );
    let _edge = start_connector(
        &server,
        format!(
            "[[integrations]]\nname = \"pg-many\"\nkind = \"postgres\"\n\
             dsn = \"postgres://postgres@127.0.0.1:5432/postgres\"\ndatabases = [\"{}\"]\n\
             rate_limit_per_sec = 1000\n",
            pg.database
        ),
    );
    server.wait_resource(&pg.resource(), PATIENCE);
    let tokens: Vec<String> = users
        .iter()
        .map(|u| server.user_token(&format!("{u}@example.com")))
        .collect();
    let resource = pg.resource();
    // The first 25 are granted; then, at once, they are revoked while the other 25 are granted.
    let first: Vec<String> = std::thread::scope(|s| {
        let asks: Vec<_> = tokens[..25]
            .iter()
            .map(|t| s.spawn(|| server.request_access(t, &resource, "read", "30m")))
            .collect();
        asks.into_iter().map(|a| a.join().expect("ask")).collect()
    });
    for (token, id) in tokens.iter().zip(&first) {
        server.wait_request_state(token, id, "active", PATIENCE);
    }
    let second: Vec<String> = std::thread::scope(|s| {
        for (token, id) in tokens.iter().zip(&first) {
            s.spawn(|| success(&server.cli(Some(token), &["revoke", id, "--reason", "swap"])));
        }
        let asks: Vec<_> = tokens[25..]
            .iter()
            .map(|t| s.spawn(|| server.request_access(t, &resource, "read", "30m")))
            .collect();
        asks.into_iter().map(|a| a.join().expect("ask")).collect()
    });
    for (token, id) in tokens.iter().zip(&first) {
        server.wait_request_state(token, id, "revoked", PATIENCE);
    }
    for (token, id) in tokens[25..].iter().zip(&second) {
        server.wait_request_state(token, id, "active", PATIENCE);
    }
    let rt = runtime();
    let mut members = rt.block_on(pg.admin_strings(&format!(
        "SELECT m.rolname::text FROM pg_auth_members a \
         JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member \
         WHERE g.rolname = 'latch_{}_read'",
        pg.database
    )));
    members.sort();
    let mut expected: Vec<String> = users[25..].to_vec();
    expected.sort();
    assert_eq!(members, expected, "exactly the second 25 hold read");
}

/// A MariaDB database with a table of one row and an account; dropped with this value.
struct MariaPlayground {
    database: String,
    account: String,
}

const MARIADB_ADMIN: &str = "mysql://root@127.0.0.1:3306/mysql";

impl MariaPlayground {
    async fn create(sfx: &str, account: &str) -> MariaPlayground {
        let playground = MariaPlayground {
            database: format!("lte{sfx}"),
            account: account.to_string(),
        };
        let mut admin = sqlx::MySqlConnection::connect(MARIADB_ADMIN)
            .await
            .expect("MariaDB at 127.0.0.1:3306 (scripts/ensure-mariadb.sh starts it)");
        let db = &playground.database;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {db}; CREATE TABLE {db}.orders (id int); \
             INSERT INTO {db}.orders VALUES (1); \
             CREATE USER '{account}'@'%' IDENTIFIED BY 'pw-{account}';"
        )))
        .execute(&mut admin)
        .await
        .expect("create the MariaDB playground");
        playground
    }

    fn resource(&self) -> String {
        format!("mysql://127.0.0.1:3306/{}", self.database)
    }

    async fn connect(&self) -> sqlx::MySqlConnection {
        sqlx::MySqlConnection::connect(&format!("mysql://{0}:pw-{0}@127.0.0.1:3306", self.account))
            .await
            .expect("the account connects")
    }

    fn select(&self) -> String {
        format!("SELECT id FROM {}.orders", self.database)
    }
}

impl Drop for MariaPlayground {
    fn drop(&mut self) {
        let sql = format!(
            "DROP DATABASE IF EXISTS {0}; DROP USER IF EXISTS '{1}'@'%'; \
             DELETE FROM latch_connector.grants WHERE db = '{0}';",
            self.database, self.account
        );
        let _ = std::process::Command::new("mariadb")
            .args([
                "--protocol=tcp",
                "-h",
                "127.0.0.1",
                "-P",
                "3306",
                "-u",
                "root",
            ])
            .args(["-e", &sql])
            .status();
    }
}

#[test]
fn mariadb_access_is_given_used_and_ends_at_revoke() {
    let sfx = suffix();
    let alice = format!("al{sfx}");
    let rt = runtime();
    let maria = rt.block_on(MariaPlayground::create(&sfx, &alice));
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_applied(
        dir.path(),
        &people(std::slice::from_ref(&alice), &format!("mg{sfx}")),
        &flow("maria-e2e", "mysql.database", false),
    );
    let _edge = start_connector(
        &server,
        format!(
            "[[integrations]]\nname = \"maria-e2e\"\nkind = \"mysql\"\n\
             dsn = \"{MARIADB_ADMIN}\"\ndatabases = [\"{}\"]\n",
            maria.database
        ),
    );
    server.wait_resource(&maria.resource(), PATIENCE);

    let mut session = rt.block_on(maria.connect());
    let before =
        rt.block_on(sqlx::query(sqlx::AssertSqlSafe(maria.select())).fetch_all(&mut session));
    assert!(before.is_err(), "read before the grant: {before:?}");

    let token = server.user_token(&format!("{alice}@example.com"));
    let id = server.request_access(&token, &maria.resource(), "read", "30m");
    server.wait_request_state(&token, &id, "active", PATIENCE);
    let mut session = rt.block_on(maria.connect());
    let rows: Vec<i32> = rt
        .block_on(sqlx::query_scalar(sqlx::AssertSqlSafe(maria.select())).fetch_all(&mut session))
        .expect("read during the grant");
    assert_eq!(rows, vec![1]);
    let write = rt.block_on(
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {}.orders VALUES (2)",
            maria.database
        )))
        .execute(&mut session),
    );
    assert!(write.is_err(), "write with read only: {write:?}");

    success(&server.cli(Some(&token), &["revoke", &id, "--reason", "done"]));
    server.wait_request_state(&token, &id, "revoked", PATIENCE);
    let on_old_session =
        rt.block_on(sqlx::query(sqlx::AssertSqlSafe(maria.select())).fetch_all(&mut session));
    assert!(
        on_old_session.is_err(),
        "the session open at revoke must be ended: {on_old_session:?}"
    );
    let mut fresh = rt.block_on(maria.connect());
    let after = rt.block_on(sqlx::query(sqlx::AssertSqlSafe(maria.select())).fetch_all(&mut fresh));
    assert!(after.is_err(), "read after revoke: {after:?}");
}
