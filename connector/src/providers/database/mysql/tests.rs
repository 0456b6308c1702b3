//! Tests against a real MariaDB (or MySQL): `LATCH_TEST_MYSQL`, by default
//! `mysql://root@127.0.0.1:3306/mysql`. They fail, not skip, when the server is unreachable.
//! Each test makes its own databases (`latch_myp_<hex>`) and accounts (`u_<hex>`) and removes
//! them at the end.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{Duration as ChronoDuration, Utc};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, Connection};

use super::access::privilege_list;
use super::lock::{MAX_LOCK_NAME, lock_name};
use super::sql::{code, error_number};
use super::*;
use crate::testing::CollectingSink;

fn admin_dsn() -> String {
    std::env::var("LATCH_TEST_MYSQL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".to_string())
}

fn admin_options() -> MySqlConnectOptions {
    MySqlConnectOptions::from_str(&admin_dsn()).expect("LATCH_TEST_MYSQL is a MySQL URL")
}

fn hex12() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// The test server, and what a test made in it.
struct Server {
    admin: MySqlPool,
    databases: Vec<String>,
    users: Vec<String>,
}

impl Server {
    async fn start() -> Self {
        let admin = MySqlPoolOptions::new()
            .max_connections(4)
            .connect_with(admin_options())
            .await
            .expect(
                "MariaDB reachable at LATCH_TEST_MYSQL (default mysql://root@127.0.0.1:3306/mysql)",
            );
        Self {
            admin,
            databases: Vec::new(),
            users: Vec::new(),
        }
    }

    async fn exec(&self, sql: String) {
        sqlx::raw_sql(AssertSqlSafe(sql.clone()))
            .execute(&self.admin)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    /// A fresh database with table `t` holding one row.
    async fn database(&mut self) -> String {
        let db = format!("latch_myp_{}", hex12());
        self.create_database(&db).await;
        db
    }

    async fn create_database(&mut self, db: &str) {
        self.exec(format!("CREATE DATABASE `{db}`")).await;
        self.databases.push(db.to_string());
        self.exec(format!("CREATE TABLE `{db}`.t (id INT)")).await;
        self.exec(format!("INSERT INTO `{db}`.t VALUES (1)")).await;
    }

    /// A fresh account `'u_<hex>'@'%'` with password `pw` and no privileges.
    async fn user(&mut self) -> String {
        let user = format!("u_{}", hex12());
        self.exec(format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'"))
            .await;
        self.users.push(user.clone());
        user
    }

    async fn scalar_i64(&self, sql: &str, binds: &[&str]) -> i64 {
        let mut query = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.to_string()));
        for bind in binds {
            query = query.bind(*bind);
        }
        query
            .fetch_one(&self.admin)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"))
    }

    async fn accounts_named(&self, user: &str) -> i64 {
        self.scalar_i64("SELECT COUNT(*) FROM mysql.user WHERE User = ?", &[user])
            .await
    }

    async fn ledger_rows(&self, db: &str) -> i64 {
        self.scalar_i64(
            "SELECT COUNT(*) FROM latch_connector.grants WHERE db = ?",
            &[db],
        )
        .await
    }

    async fn cleanup(self) {
        for db in &self.databases {
            self.exec(format!("DROP DATABASE IF EXISTS `{db}`")).await;
            // The ledger may not exist yet when no test has granted.
            let _ = sqlx::query("DELETE FROM latch_connector.grants WHERE db = ?")
                .bind(db)
                .execute(&self.admin)
                .await;
        }
        for user in &self.users {
            self.exec(format!("DROP USER IF EXISTS '{user}'@'%'")).await;
        }
        self.admin.close().await;
    }
}

/// A provider for the test server; `extra` is more TOML settings. The DSN goes through a file, as
/// it would in production (the settings refuse an inline password).
fn provider(extra: &str) -> MysqlProvider {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    writeln!(file, "{}", admin_dsn()).expect("write dsn");
    let text = format!(
        "dsn_file = {:?}\n{extra}",
        file.path().to_str().expect("utf-8 path")
    );
    let settings: toml::Table = toml::from_str(&text).expect("test TOML parses");
    let integration = IntegrationConfig {
        name: "mysql-test".into(),
        kind: "mysql".into(),
        rate_limit_per_sec: None,
        settings,
    };
    MysqlProvider::new(&integration).expect("provider builds")
}

fn scoped(db: &str, extra: &str) -> MysqlProvider {
    provider(&format!("databases = [{db:?}]\n{extra}"))
}

fn spec(provider: &MysqlProvider, user: &str, db: &str, permission: &str) -> GrantSpec {
    GrantSpec {
        grant_id: format!("g-{}", hex12()),
        identity: format!("{user}@example.com"),
        resource_id: format!("{}/{db}", provider.server_id),
        resource_type: DATABASE_TYPE.into(),
        permission: permission.into(),
        expires_at: None,
        duration: None,
    }
}

async fn connect_as(
    user: &str,
    password: &str,
    db: Option<&str>,
) -> Result<MySqlConnection, sqlx::Error> {
    let admin = admin_options();
    // By address, not `localhost`: MariaDB's anonymous ''@'localhost' would shadow '%'.
    let host = if admin.get_host() == "localhost" {
        "127.0.0.1"
    } else {
        admin.get_host()
    };
    let mut options = MySqlConnectOptions::new()
        .host(host)
        .port(admin.get_port())
        .username(user)
        .password(password);
    if let Some(db) = db {
        options = options.database(db);
    }
    MySqlConnection::connect_with(&options).await
}

/// Runs `sql` on `conn`: `true` if it ran, `false` if access was denied; anything else panics.
async fn allowed(conn: &mut MySqlConnection, sql: &str) -> bool {
    match sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(&mut *conn)
        .await
    {
        Ok(_) => true,
        Err(err) => match error_number(&err) {
            Some(code::TABLE_ACCESS_DENIED | code::DB_ACCESS_DENIED) => false,
            _ => panic!("{sql}: {err}"),
        },
    }
}

/// Whether `user` (password `pw`), in a new session, may read table `t` of `db`.
async fn can_select(user: &str, db: &str) -> bool {
    let mut conn = connect_as(user, "pw", None).await.expect("user connects");
    allowed(&mut conn, &format!("SELECT id FROM `{db}`.t")).await
}

async fn can_insert(user: &str, db: &str) -> bool {
    let mut conn = connect_as(user, "pw", None).await.expect("user connects");
    allowed(&mut conn, &format!("INSERT INTO `{db}`.t VALUES (2)")).await
}

#[tokio::test]
async fn sync_reports_the_server_and_the_databases_in_scope() {
    let mut server = Server::start().await;
    let inside = server.database().await;
    let outside = server.database().await;
    let user = server.user().await;
    let p = scoped(
        &inside,
        "[[tag_rules]]\ndatabases = \"latch_myp_*\"\ntags = { env = \"test\" }\n",
    );
    assert_eq!(p.kind(), "mysql");
    assert_eq!(p.capabilities().len(), 4);

    let mut sink = CollectingSink::default();
    p.sync(&mut sink).await.expect("sync");
    let options = admin_options();
    let server_id = format!("mysql://{}:{}", options.get_host(), options.get_port());
    let root = &sink.resources[0];
    assert_eq!(root.id, server_id);
    assert_eq!(root.resource_type, "mysql.server");
    assert_eq!(root.parent, None);
    assert_eq!(sink.resources.len(), 2, "{:?}", sink.resources);
    let db = &sink.resources[1];
    assert_eq!(db.id, format!("{server_id}/{inside}"));
    assert_eq!(db.name, inside);
    assert_eq!(db.resource_type, "mysql.database");
    assert_eq!(db.parent.as_deref(), Some(server_id.as_str()));
    assert_eq!(
        db.tags,
        BTreeMap::from([("env".to_string(), "test".to_string())])
    );
    assert_eq!(
        sink.permissions_of("mysql.database"),
        ["admin", "read", "write"]
    );
    assert!(sink.permissions_of("mysql.server").is_empty());

    let names: Vec<&str> = sink
        .identities
        .iter()
        .map(|i| i.external_id.as_str())
        .collect();
    assert!(names.contains(&user.as_str()), "{names:?}");
    for hidden in ["root", "mysql", "mariadb.sys", ""] {
        assert!(!names.contains(&hidden), "{hidden:?} in {names:?}");
    }
    assert!(names.iter().all(|n| !n.starts_with("latch_t_")));
    assert!(sink.identities.iter().all(|i| i.email.is_none()));

    // Without globs: every database but the system ones and the ledger.
    let mut sink = CollectingSink::default();
    provider("").sync(&mut sink).await.expect("sync");
    let names: Vec<&str> = sink.resources.iter().map(|r| r.name.as_str()).collect();
    assert!(names.contains(&inside.as_str()) && names.contains(&outside.as_str()));
    for system in [
        "mysql",
        "information_schema",
        "performance_schema",
        "sys",
        "latch_connector",
    ] {
        assert!(!names.contains(&system), "{system} in {names:?}");
    }
    server.cleanup().await;
}

#[tokio::test]
async fn existing_role_grant_gives_access_until_revoke() {
    let mut server = Server::start().await;
    let db = server.database().await;
    // Matches `db` if `_` were a wildcard in the grant: it must stay out of reach.
    let lookalike = db.replacen("myp_", "mypx", 1);
    server.create_database(&lookalike).await;
    let user = server.user().await;
    let p = scoped(&db, "");

    assert!(!can_select(&user, &db).await);
    let read = spec(&p, &user, &db, "read");
    assert_eq!(p.grant(&read).await.expect("grant"), Granted::access());
    assert!(can_select(&user, &db).await);
    assert!(!can_insert(&user, &db).await, "read must not allow writes");
    assert!(
        !can_select(&user, &lookalike).await,
        "{lookalike} reachable"
    );

    p.revoke(&read).await.expect("revoke");
    assert!(!can_select(&user, &db).await);
    assert_eq!(server.ledger_rows(&db).await, 0);
    server.cleanup().await;
}

#[tokio::test]
async fn revoke_ends_open_sessions() {
    let mut server = Server::start().await;
    let db = server.database().await;
    let user = server.user().await;
    let p = scoped(&db, "");
    let read = spec(&p, &user, &db, "read");
    p.grant(&read).await.expect("grant");

    let mut session = connect_as(&user, "pw", Some(&db))
        .await
        .expect("connects to the database");
    assert!(allowed(&mut session, "SELECT id FROM t").await);
    p.revoke(&read).await.expect("revoke");
    let after = sqlx::raw_sql("SELECT id FROM t")
        .execute(&mut session)
        .await;
    assert!(after.is_err(), "the open session still works: {after:?}");
    server.cleanup().await;
}

#[tokio::test]
async fn revoking_write_keeps_a_separate_read_grant() {
    let mut server = Server::start().await;
    let db = server.database().await;
    let user = server.user().await;
    let p = scoped(&db, "");
    let read = spec(&p, &user, &db, "read");
    let write = spec(&p, &user, &db, "write");
    p.grant(&read).await.expect("grant read");
    p.grant(&write).await.expect("grant write");
    assert!(can_insert(&user, &db).await);

    p.revoke(&write).await.expect("revoke write");
    assert!(can_select(&user, &db).await, "read went with write");
    assert!(!can_insert(&user, &db).await);
    assert_eq!(server.ledger_rows(&db).await, 1);

    p.revoke(&read).await.expect("revoke read");
    assert!(!can_select(&user, &db).await);
    server.cleanup().await;
}

#[tokio::test]
async fn grant_and_revoke_are_idempotent() {
    let mut server = Server::start().await;
    let db = server.database().await;
    let user = server.user().await;
    let p = scoped(&db, "");
    let read = spec(&p, &user, &db, "read");

    p.grant(&read).await.expect("grant");
    p.grant(&read).await.expect("grant again");
    assert!(can_select(&user, &db).await);
    assert_eq!(server.ledger_rows(&db).await, 1);

    p.revoke(&read).await.expect("revoke");
    p.revoke(&read).await.expect("revoke again");
    assert!(!can_select(&user, &db).await);
    // A grant that was never made.
    p.revoke(&spec(&p, &user, &db, "write"))
        .await
        .expect("revoke of nothing");
    server.cleanup().await;
}

#[tokio::test]
async fn temporary_users_get_working_credentials_that_end_at_revoke() {
    let mut server = Server::start().await;
    let db = server.database().await;
    let p = scoped(&db, "user_mapping = \"temporary_user\"\n");
    let mut grant = spec(&p, "nobody", &db, "read");
    let expires_at = Utc::now() + ChronoDuration::hours(1);
    grant.expires_at = Some(expires_at);

    let first = p
        .grant(&grant)
        .await
        .expect("grant")
        .credentials
        .expect("credentials");
    let options = admin_options();
    assert!(first.username.starts_with("latch_t_"), "{first:?}");
    assert_eq!(first.host, options.get_host());
    assert_eq!(first.port, options.get_port());
    assert_eq!(first.database, db);
    let mut conn = connect_as(&first.username, &first.password, Some(&db))
        .await
        .expect("the temporary login connects");
    assert!(allowed(&mut conn, "SELECT id FROM t").await);
    assert!(!allowed(&mut conn, "INSERT INTO t VALUES (3)").await);
    conn.close().await.expect("close");

    // The server drops the login by itself at the expiry, in UTC.
    let event = format!("expire_{}", first.username);
    let row: (String, String, String) = sqlx::query_as(
        "SELECT DATE_FORMAT(EXECUTE_AT, '%Y-%m-%d %H:%i:%s'), TIME_ZONE, EVENT_DEFINITION \
         FROM information_schema.EVENTS WHERE EVENT_SCHEMA = 'latch_connector' AND EVENT_NAME = ?",
    )
    .bind(&event)
    .fetch_one(&server.admin)
    .await
    .expect("the expiry event exists");
    assert_eq!(row.0, expires_at.format("%Y-%m-%d %H:%M:%S").to_string());
    assert_eq!(row.1, "+00:00");
    assert!(row.2.contains("DROP USER IF EXISTS"), "{}", row.2);
    assert!(row.2.contains(&first.username), "{}", row.2);

    // A redelivery hands out a new password that works; the old one no longer does.
    let second = p
        .grant(&grant)
        .await
        .expect("grant again")
        .credentials
        .expect("credentials");
    assert_eq!(second.username, first.username);
    assert_ne!(second.password, first.password);
    assert!(
        connect_as(&first.username, &first.password, None)
            .await
            .is_err()
    );
    let mut open = connect_as(&second.username, &second.password, Some(&db))
        .await
        .expect("the new password works");
    assert!(allowed(&mut open, "SELECT id FROM t").await);
    assert_eq!(server.ledger_rows(&db).await, 1);

    p.revoke(&grant).await.expect("revoke");
    assert_eq!(server.accounts_named(&second.username).await, 0);
    assert!(
        sqlx::raw_sql("SELECT id FROM t")
            .execute(&mut open)
            .await
            .is_err(),
        "the open session survived the revoke"
    );
    let events = server
        .scalar_i64(
            "SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_NAME = ?",
            &[&event],
        )
        .await;
    assert_eq!(events, 0);
    assert_eq!(server.ledger_rows(&db).await, 0);
    p.revoke(&grant).await.expect("revoke again");
    server.cleanup().await;
}

#[tokio::test]
async fn connect_host_and_port_override_the_dsn_in_credentials() {
    let mut server = Server::start().await;
    let db = server.database().await;
    let p = scoped(
        &db,
        "user_mapping = \"temporary_user\"\nconnect_host = \"db.example.com\"\nconnect_port = 6033\n",
    );
    let grant = spec(&p, "nobody", &db, "read");
    let credentials = p
        .grant(&grant)
        .await
        .expect("grant")
        .credentials
        .expect("credentials");
    assert_eq!(
        (credentials.host.as_str(), credentials.port),
        ("db.example.com", 6033)
    );
    p.revoke(&grant).await.expect("revoke");
    assert_eq!(server.accounts_named(&credentials.username).await, 0);
    server.cleanup().await;
}

#[tokio::test]
async fn bad_requests_are_refused_with_the_right_kind() {
    let mut server = Server::start().await;
    let db = server.database().await;
    let user = server.user().await;
    let p = scoped(&db, "");

    let missing = format!("nobody_{}", hex12());
    let err = p
        .grant(&spec(&p, &missing, &db, "read"))
        .await
        .expect_err("no such account");
    assert!(
        matches!(&err, ProviderError::Invalid { message } if message.contains(&format!("no MySQL account named \"{missing}\""))),
        "{err:?}"
    );
    assert_eq!(server.ledger_rows(&db).await, 0);

    let err = p
        .grant(&spec(&p, &user, &db, "superuser"))
        .await
        .expect_err("unknown permission");
    assert!(matches!(err, ProviderError::Invalid { .. }), "{err:?}");

    let mut elsewhere = spec(&p, &user, &db, "read");
    elsewhere.resource_id = format!("mysql://other.example.com:3306/{db}");
    let err = p.grant(&elsewhere).await.expect_err("another server");
    assert!(matches!(err, ProviderError::Invalid { .. }), "{err:?}");

    let err = p
        .grant(&spec(&p, &user, "mysql", "read"))
        .await
        .expect_err("out of scope");
    assert!(matches!(err, ProviderError::Invalid { .. }), "{err:?}");

    let wide = provider("databases = [\"latch_myp_*\"]\n");
    let gone = format!("latch_myp_{}", hex12());
    let err = wide
        .grant(&spec(&wide, &user, &gone, "read"))
        .await
        .expect_err("no such database");
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err:?}");
    server.cleanup().await;
}

#[tokio::test]
async fn health_check_needs_create_user_and_grant_option() {
    let mut server = Server::start().await;
    provider("").health_check().await.expect("root is healthy");

    let user = server.user().await;
    let options = admin_options();
    let dsn = format!("mysql://{user}:pw@127.0.0.1:{}/", options.get_port());
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    writeln!(file, "{dsn}").expect("write dsn");
    let settings: toml::Table = toml::from_str(&format!(
        "dsn_file = {:?}",
        file.path().to_str().expect("utf-8 path")
    ))
    .expect("TOML");
    let weak = MysqlProvider::new(&IntegrationConfig {
        name: "weak".into(),
        kind: "mysql".into(),
        rate_limit_per_sec: None,
        settings,
    })
    .expect("provider");
    let err = weak
        .health_check()
        .await
        .expect_err("a login without CREATE USER");
    assert!(matches!(err, ProviderError::Denied { .. }), "{err:?}");
    server.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_grants_and_revokes_on_one_database_stay_consistent() {
    let mut server = Server::start().await;
    let db = server.database().await;
    let mut users = Vec::new();
    for _ in 0..50 {
        users.push(server.user().await);
    }
    let p = Arc::new(scoped(&db, ""));

    // Every user gets read; the odd ones also get write, revoked again at once. Each user's
    // commands run in order, as the runtime runs one command at a time per grant; the users run
    // all at once.
    let mut tasks = tokio::task::JoinSet::new();
    for (i, user) in users.iter().enumerate() {
        let p = Arc::clone(&p);
        let read = spec(&p, user, &db, "read");
        let write = spec(&p, user, &db, "write");
        tasks.spawn(async move {
            p.grant(&read).await?;
            if i % 2 == 1 {
                p.grant(&write).await?;
                p.revoke(&write).await?;
            }
            if i % 4 == 3 {
                p.revoke(&read).await?;
            }
            Ok::<_, ProviderError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task").expect("grant or revoke");
    }

    let mut kept = 0;
    for (i, user) in users.iter().enumerate() {
        let keeps_read = i % 4 != 3;
        assert_eq!(can_select(user, &db).await, keeps_read, "user {i}");
        assert!(!can_insert(user, &db).await, "user {i} kept write");
        kept += i64::from(keeps_read);
    }
    assert_eq!(server.ledger_rows(&db).await, kept);
    server.cleanup().await;
}

#[test]
fn lock_names_fit_mysql() {
    assert_eq!(lock_name("app"), "latch:app");
    let long = lock_name(&"x".repeat(64));
    assert!(
        long.len() <= MAX_LOCK_NAME && long.starts_with("latch:"),
        "{long}"
    );
}

#[test]
fn privilege_lists_read_as_sql() {
    let list =
        |words: &[&str]| privilege_list(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>());
    assert_eq!(list(&["SELECT", "SHOW VIEW"]), "SELECT, SHOW VIEW");
    assert_eq!(list(&["ALL"]), "ALL PRIVILEGES");
}

#[test]
fn providers_build_outside_a_runtime() {
    // `latch-connector check` builds providers without a runtime; that must not panic.
    let p = provider("");
    assert_eq!(
        p.server_id,
        format!(
            "mysql://{}:{}",
            admin_options().get_host(),
            admin_options().get_port()
        )
    );
}
