//! Tests against a real PostgreSQL: `LATCH_TEST_POSTGRES`, by default the local server with trust
//! authentication. Each test makes its own database and roles and drops them at the end. The
//! tests fail when the server cannot be reached.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection};

use super::sql::quote_ident;
use super::{DATABASE_TYPE, PostgresProvider, SCHEMA_TYPE, SERVER_TYPE};
use crate::config::IntegrationConfig;
use crate::provider::{GrantSpec, Provider, ProviderError, ProviderRegistry, SyncedResource};
use crate::providers::database::settings::{DatabaseSettings, Engine, temporary_login};
use crate::testing::CollectingSink;

const PASSWORD: &str = "user-password";

fn dsn() -> String {
    std::env::var("LATCH_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// The DSN with another database.
fn dsn_for(database: &str) -> String {
    let base = dsn();
    let (server, _) = base
        .rsplit_once('/')
        .expect("the test DSN names a database");
    format!("{server}/{database}")
}

/// A fresh database with two schemas and a table in each, and the roles a test makes.
struct Fixture {
    admin: PgPool,
    id: String,
    database: String,
    extra_databases: Vec<String>,
    roles: Vec<String>,
}

async fn run(pool: &PgPool, sql: String) {
    sqlx::raw_sql(AssertSqlSafe(sql.clone()))
        .execute(pool)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
}

impl Fixture {
    async fn new() -> Self {
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .connect(&dsn())
            .await
            .expect("PostgreSQL at LATCH_TEST_POSTGRES (default 127.0.0.1:5432) is reachable");
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let database = format!("latch_pgp_{id}");
        run(
            &admin,
            format!("CREATE DATABASE {}", quote_ident(&database)),
        )
        .await;
        let fixture = Fixture {
            admin,
            id,
            database,
            extra_databases: Vec::new(),
            roles: Vec::new(),
        };
        let db = fixture.database_pool().await;
        run(
            &db,
            "CREATE TABLE public.orders (id serial PRIMARY KEY, item text);
             INSERT INTO public.orders (item) VALUES ('tea');
             CREATE SCHEMA sales;
             CREATE TABLE sales.leads (id serial PRIMARY KEY, name text);
             INSERT INTO sales.leads (name) VALUES ('acme');"
                .to_string(),
        )
        .await;
        db.close().await;
        fixture
    }

    /// The admin login's pool on the test database.
    async fn database_pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(1)
            .connect(&dsn_for(&self.database))
            .await
            .expect("connect to the test database")
    }

    /// Makes a login role for a person; returns (role, email).
    async fn user(&mut self, name: &str) -> (String, String) {
        let role = format!("pgpu_{}_{name}", self.id);
        run(
            &self.admin,
            format!(
                "CREATE ROLE {} LOGIN PASSWORD '{PASSWORD}'",
                quote_ident(&role)
            ),
        )
        .await;
        self.roles.push(role.clone());
        (role.clone(), format!("{role}@example.com"))
    }

    fn settings(&self, dsn: &str, extra: &str) -> DatabaseSettings {
        let text = format!("dsn = {dsn:?}\n{extra}");
        let integration = IntegrationConfig {
            name: "pg-test".into(),
            kind: "postgres".into(),
            rate_limit_per_sec: None,
            settings: toml::from_str(&text).expect("test settings parse"),
        };
        DatabaseSettings::parse(&integration, Engine::Postgres).expect("valid settings")
    }

    /// A provider whose admin DSN is the test DSN (bookkeeping in its database).
    fn provider(&self, extra: &str) -> PostgresProvider {
        PostgresProvider::new(self.settings(&dsn(), extra)).expect("provider")
    }

    fn database_id(&self, provider: &PostgresProvider) -> String {
        format!("{}/{}", provider.server_id, self.database)
    }

    fn grant(
        &self,
        provider: &PostgresProvider,
        email: &str,
        schema: Option<&str>,
        permission: &str,
    ) -> GrantSpec {
        let (resource_type, resource_id) = match schema {
            None => (DATABASE_TYPE, self.database_id(provider)),
            Some(schema) => (
                SCHEMA_TYPE,
                format!("{}/{schema}", self.database_id(provider)),
            ),
        };
        GrantSpec {
            grant_id: uuid::Uuid::new_v4().to_string(),
            identity: email.to_string(),
            resource_id,
            resource_type: resource_type.to_string(),
            permission: permission.to_string(),
            expires_at: None,
            duration: None,
        }
    }

    async fn connect_as(&self, role: &str, password: &str) -> PgConnection {
        let options = PgConnectOptions::from_str(&dsn())
            .expect("test DSN")
            .username(role)
            .password(password)
            .database(&self.database);
        PgConnection::connect_with(&options)
            .await
            .unwrap_or_else(|err| panic!("{role} cannot log in: {err}"))
    }

    /// Drops what the test made; [`Drop`] does the work, so a failing test cleans up too.
    async fn cleanup(self) {
        self.admin.close().await;
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let mut databases = vec![self.database.clone()];
        databases.append(&mut self.extra_databases);
        let roles = std::mem::take(&mut self.roles);
        let id = self.id.clone();
        // Drop may run while a panic unwinds out of the test's runtime: use a runtime of its own.
        let cleaned = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime")
                .block_on(drop_test_objects(databases, roles, id))
        })
        .join();
        if cleaned.is_err() && !std::thread::panicking() {
            panic!("cleaning up the test database failed");
        }
    }
}

async fn drop_test_objects(databases: Vec<String>, roles: Vec<String>, id: String) {
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&dsn())
        .await
        .expect("PostgreSQL reachable for cleanup");
    // The bookkeeping table is missing only if no grant ever ran.
    let _ = sqlx::query("DELETE FROM latch_connector.grants WHERE database = $1")
        .bind(&databases[0])
        .execute(&admin)
        .await;
    for database in &databases {
        // Template databases cannot be dropped; a separate statement each, because DROP
        // DATABASE refuses to run inside a (multi-statement) transaction.
        run(
            &admin,
            format!("ALTER DATABASE {} IS_TEMPLATE false", quote_ident(database)),
        )
        .await;
        run(
            &admin,
            format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(database)
            ),
        )
        .await;
    }
    // The group roles made for this database, and the test's users and temporary logins.
    let leftovers: Vec<String> = sqlx::query_scalar(
        "SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1 OR rolname = ANY($2)",
    )
    .bind(format!("latch\\_latch\\_pgp\\_{id}%"))
    .bind(&roles)
    .fetch_all(&admin)
    .await
    .expect("list leftover roles");
    for role in leftovers {
        run(
            &admin,
            format!("DROP ROLE IF EXISTS {}", quote_ident(&role)),
        )
        .await;
    }
    admin.close().await;
}

fn is_permission_denied(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("42501"))
}

async fn can_select(conn: &mut PgConnection, table: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(conn)
        .await
}

async fn members_of(admin: &PgPool, group: &str) -> BTreeSet<String> {
    sqlx::query_scalar(
        "SELECT m.rolname::text FROM pg_auth_members am
         JOIN pg_roles g ON g.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
         WHERE g.rolname = $1",
    )
    .bind(group)
    .fetch_all(admin)
    .await
    .expect("list members")
    .into_iter()
    .collect()
}

#[tokio::test]
async fn the_kind_is_registered_and_checks_its_settings() {
    let registry = ProviderRegistry::shipped();
    assert!(registry.contains("postgres"));
    let integration = IntegrationConfig {
        name: "pg-main".into(),
        kind: "postgres".into(),
        rate_limit_per_sec: None,
        settings: toml::from_str(r#"dsn = "postgres://postgres@127.0.0.1:5432/postgres""#)
            .expect("toml"),
    };
    let provider = registry.build(&integration).expect("built");
    assert_eq!(provider.kind(), "postgres");
    let mut bad = integration.clone();
    bad.settings = toml::from_str(r#"user_mapping = "temp""#).expect("toml");
    let err = registry.build(&bad).err().expect("invalid settings");
    assert!(err.contains("integrations \"pg-main\": "), "{err}");
    assert!(err.contains("user_mapping \"temp\""), "{err}");
}

#[tokio::test]
async fn sync_reports_the_server_databases_and_schemas() {
    let mut fixture = Fixture::new().await;
    let db = fixture.database.clone();
    // Matched by the globs but a template / closed to connections: never reported.
    let template = format!("{db}_tpl");
    let closed = format!("{db}_off");
    // Not matched by the globs.
    let other = format!("{db}x");
    for (name, options) in [
        (&template, "IS_TEMPLATE true"),
        (&closed, "ALLOW_CONNECTIONS false"),
        (&other, ""),
    ] {
        run(
            &fixture.admin,
            format!("CREATE DATABASE {}", quote_ident(name)),
        )
        .await;
        if !options.is_empty() {
            run(
                &fixture.admin,
                format!("ALTER DATABASE {} {options}", quote_ident(name)),
            )
            .await;
        }
        fixture.extra_databases.push(name.clone());
    }
    let pool = fixture.database_pool().await;
    run(&pool, "CREATE SCHEMA latch_connector".into()).await;
    pool.close().await;
    let (user, _) = fixture.user("ann").await;
    let temporary = format!("latch_t_pgp{}", fixture.id);
    run(
        &fixture.admin,
        format!("CREATE ROLE {} LOGIN", quote_ident(&temporary)),
    )
    .await;
    fixture.roles.push(temporary.clone());

    let provider = fixture.provider(&format!(
        r#"
        databases = ["{db}", "{db}_*"]
        [[tag_rules]]
        databases = "latch_pgp_*"
        tags = {{ env = "test", team = "core" }}
        [[tag_rules]]
        databases = "{db}"
        tags = {{ env = "prod" }}
        "#
    ));
    let mut sink = CollectingSink::default();
    provider.sync(&mut sink).await.expect("sync");

    let server = "postgres://127.0.0.1:5432";
    let ours: Vec<&SyncedResource> = sink
        .resources
        .iter()
        .filter(|r| r.resource_type == SERVER_TYPE || r.id.contains(&fixture.id))
        .collect();
    let ids: Vec<&str> = ours.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            server.to_string(),
            format!("{server}/{db}"),
            format!("{server}/{db}/public"),
            format!("{server}/{db}/sales"),
        ],
        "{:#?}",
        sink.resources
    );
    let by_id: BTreeMap<&str, &SyncedResource> = ours.iter().map(|r| (r.id.as_str(), *r)).collect();
    let root = by_id[server];
    assert_eq!(root.resource_type, SERVER_TYPE);
    assert_eq!(root.name, "127.0.0.1:5432");
    assert_eq!(root.parent, None);
    let database = by_id[format!("{server}/{db}").as_str()];
    assert_eq!(database.resource_type, DATABASE_TYPE);
    assert_eq!(database.name, db);
    assert_eq!(database.parent.as_deref(), Some(server));
    let tags = BTreeMap::from([
        ("env".to_string(), "prod".to_string()),
        ("team".to_string(), "core".to_string()),
    ]);
    assert_eq!(database.tags, tags);
    let sales = by_id[format!("{server}/{db}/sales").as_str()];
    assert_eq!(sales.resource_type, SCHEMA_TYPE);
    assert_eq!(sales.name, format!("{db}.sales"));
    assert_eq!(sales.parent, Some(database.id.clone()));
    assert_eq!(sales.tags, tags);

    // Permissions travel with the first page only.
    let first = &sink.permission_pages[0];
    let permissions: BTreeMap<&str, Vec<String>> = first
        .iter()
        .map(|p| (p.resource_type.as_str(), p.permissions.clone()))
        .collect();
    let names = vec!["admin".to_string(), "read".into(), "write".into()];
    assert_eq!(permissions[SERVER_TYPE], Vec::<String>::new());
    assert_eq!(permissions[DATABASE_TYPE], names);
    assert_eq!(permissions[SCHEMA_TYPE], names);
    assert!(sink.permission_pages[1..].iter().all(Vec::is_empty));

    let logins: Vec<&str> = sink
        .identities
        .iter()
        .map(|i| i.external_id.as_str())
        .collect();
    assert!(logins.contains(&user.as_str()), "{logins:?}");
    assert!(!logins.contains(&temporary.as_str()), "{logins:?}");
    let ann = sink
        .identities
        .iter()
        .find(|i| i.external_id == user)
        .expect("user listed");
    assert_eq!(ann.email, None);
    assert_eq!(ann.display_name, user);

    // Configured permissions replace the defaults.
    let provider = fixture.provider(&format!(
        r#"
        databases = ["{db}"]
        permissions = {{ viewer = ["SELECT"] }}
        "#
    ));
    let mut sink = CollectingSink::default();
    provider.sync(&mut sink).await.expect("sync");
    assert!(
        sink.permission_pages[0]
            .iter()
            .filter(|p| p.resource_type != SERVER_TYPE)
            .all(|p| p.permissions == vec!["viewer".to_string()])
    );
    fixture.cleanup().await;
}

#[tokio::test]
async fn existing_role_can_read_during_the_grant_only() {
    let mut fixture = Fixture::new().await;
    let (user, email) = fixture.user("bob").await;
    let provider = fixture.provider("");
    let mut conn = fixture.connect_as(&user, PASSWORD).await;
    let err = can_select(&mut conn, "public.orders")
        .await
        .expect_err("no access before the grant");
    assert!(is_permission_denied(&err), "{err}");

    let read = fixture.grant(&provider, &email, None, "read");
    provider.grant(&read).await.expect("grant");
    provider
        .grant(&read)
        .await
        .expect("grant again (idempotent)");
    assert_eq!(
        can_select(&mut conn, "public.orders").await.expect("read"),
        1
    );
    assert_eq!(can_select(&mut conn, "sales.leads").await.expect("read"), 1);
    let err = sqlx::query("INSERT INTO public.orders (item) VALUES ('coffee')")
        .execute(&mut conn)
        .await
        .expect_err("read does not write");
    assert!(is_permission_denied(&err), "{err}");

    // Tables made after the grant are readable too (default privileges).
    let pool = fixture.database_pool().await;
    run(&pool, "CREATE TABLE sales.later (id int)".into()).await;
    pool.close().await;
    assert_eq!(can_select(&mut conn, "sales.later").await.expect("read"), 0);

    // Revoking ends the open session, and a new one cannot read.
    provider.revoke(&read).await.expect("revoke");
    let ended = sqlx::query("SELECT 1").execute(&mut conn).await;
    assert!(ended.is_err(), "the session survived the revoke");
    let mut conn = fixture.connect_as(&user, PASSWORD).await;
    let err = can_select(&mut conn, "public.orders")
        .await
        .expect_err("no access after the revoke");
    assert!(is_permission_denied(&err), "{err}");
    provider
        .revoke(&read)
        .await
        .expect("revoke again (idempotent)");
    // (That revoke ended this session too: a revoke makes sure no session keeps the access.)
    drop(conn);

    // Write grants write.
    let write = fixture.grant(&provider, &email, None, "write");
    provider.grant(&write).await.expect("grant write");
    let mut conn = fixture.connect_as(&user, PASSWORD).await;
    sqlx::query("INSERT INTO public.orders (item) VALUES ('coffee')")
        .execute(&mut conn)
        .await
        .expect("write may insert (and use the id sequence)");
    provider.revoke(&write).await.expect("revoke write");
    fixture.cleanup().await;
}

#[tokio::test]
async fn two_grants_of_the_same_access_need_two_revokes() {
    let mut fixture = Fixture::new().await;
    let (user, email) = fixture.user("cid").await;
    // The admin DSN names the test database itself: bookkeeping and privileges share one
    // transaction.
    let provider =
        PostgresProvider::new(fixture.settings(&dsn_for(&fixture.database), "")).expect("provider");
    let first = fixture.grant(&provider, &email, Some("sales"), "read");
    let second = fixture.grant(&provider, &email, Some("sales"), "read");
    provider.grant(&first).await.expect("first grant");
    provider.grant(&second).await.expect("second grant");

    let mut conn = fixture.connect_as(&user, PASSWORD).await;
    assert_eq!(can_select(&mut conn, "sales.leads").await.expect("read"), 1);
    let err = can_select(&mut conn, "public.orders")
        .await
        .expect_err("a schema grant covers that schema only");
    assert!(is_permission_denied(&err), "{err}");

    provider.revoke(&first).await.expect("revoke the first");
    assert_eq!(
        can_select(&mut conn, "sales.leads")
            .await
            .expect("the second grant still gives access"),
        1
    );
    provider.revoke(&second).await.expect("revoke the second");
    let mut conn = fixture.connect_as(&user, PASSWORD).await;
    let err = can_select(&mut conn, "sales.leads")
        .await
        .expect_err("no access after both revokes");
    assert!(is_permission_denied(&err), "{err}");

    let missing = fixture.grant(&provider, &email, Some("nope"), "read");
    let err = provider.grant(&missing).await.expect_err("no such schema");
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err:?}");
    conn.close().await.expect("close");
    drop(provider);
    fixture.cleanup().await;
}

#[tokio::test]
async fn temporary_users_log_in_until_revoked() {
    let mut fixture = Fixture::new().await;
    let provider = fixture.provider(
        r#"
        user_mapping = "temporary_user"
        connect_host = "db.example.com"
        "#,
    );
    let expires_at: DateTime<Utc> =
        DateTime::from_timestamp(Utc::now().timestamp() + 3600, 0).expect("time");
    let mut grant = fixture.grant(&provider, "dee@example.com", None, "read");
    grant.expires_at = Some(expires_at);
    let login = temporary_login(&grant.grant_id);
    fixture.roles.push(login.clone());

    let granted = provider.grant(&grant).await.expect("grant");
    let credentials = granted.credentials.expect("credentials");
    assert_eq!(credentials.username, login);
    assert_eq!(credentials.host, "db.example.com");
    assert_eq!(credentials.port, 5432);
    assert_eq!(credentials.database, fixture.database);
    assert_eq!(credentials.password.len(), 32);
    let (valid_until, first_hash): (Option<DateTime<Utc>>, Option<String>) =
        sqlx::query_as("SELECT rolvaliduntil, rolpassword FROM pg_authid WHERE rolname = $1")
            .bind(&login)
            .fetch_one(&fixture.admin)
            .await
            .expect("temporary login exists");
    assert_eq!(valid_until, Some(expires_at));
    assert!(first_hash.is_some());

    let mut conn = fixture
        .connect_as(&credentials.username, &credentials.password)
        .await;
    assert_eq!(
        can_select(&mut conn, "public.orders").await.expect("read"),
        1
    );

    // A redelivered grant sets a new password on the same login.
    let again = provider.grant(&grant).await.expect("grant again");
    let new = again.credentials.expect("fresh credentials");
    assert_eq!(new.username, login);
    assert_ne!(new.password, credentials.password);
    let second_hash: Option<String> =
        sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
            .bind(&login)
            .fetch_one(&fixture.admin)
            .await
            .expect("temporary login exists");
    assert_ne!(first_hash, second_hash);
    let mut fresh = fixture.connect_as(&new.username, &new.password).await;
    assert_eq!(
        can_select(&mut fresh, "sales.leads").await.expect("read"),
        1
    );

    provider.revoke(&grant).await.expect("revoke");
    assert!(sqlx::query("SELECT 1").execute(&mut conn).await.is_err());
    assert!(sqlx::query("SELECT 1").execute(&mut fresh).await.is_err());
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(&login)
            .fetch_one(&fixture.admin)
            .await
            .expect("query");
    assert!(!exists, "the temporary login was not dropped");
    provider
        .revoke(&grant)
        .await
        .expect("revoke again (idempotent)");

    // Without an expiry there is no VALID UNTIL.
    let forever = fixture.grant(&provider, "dee@example.com", None, "read");
    fixture.roles.push(temporary_login(&forever.grant_id));
    provider.grant(&forever).await.expect("grant");
    let valid_until: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1")
            .bind(temporary_login(&forever.grant_id))
            .fetch_one(&fixture.admin)
            .await
            .expect("temporary login exists");
    assert_eq!(valid_until, None);
    provider.revoke(&forever).await.expect("revoke");
    fixture.cleanup().await;
}

#[tokio::test]
async fn bad_grants_are_refused_with_a_reason() {
    let mut fixture = Fixture::new().await;
    let provider = fixture.provider("");
    let email = format!("ghost{}@example.com", fixture.id);
    let err = provider
        .grant(&fixture.grant(&provider, &email, None, "read"))
        .await
        .expect_err("no such role");
    assert_eq!(
        err,
        ProviderError::invalid(format!(
            "no PostgreSQL role \"ghost{}\" for {email}",
            fixture.id
        ))
    );
    let (_, email) = fixture.user("eve").await;
    let err = provider
        .grant(&fixture.grant(&provider, &email, None, "owner"))
        .await
        .expect_err("unknown permission");
    assert!(matches!(err, ProviderError::Invalid { .. }), "{err:?}");
    let mut gone = fixture.grant(&provider, &email, None, "read");
    gone.resource_id = format!("{}_gone", gone.resource_id);
    let err = provider.grant(&gone).await.expect_err("no such database");
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err:?}");
    let mut elsewhere = fixture.grant(&provider, &email, None, "read");
    elsewhere.resource_id = format!("postgres://10.0.0.1:5432/{}", fixture.database);
    let err = provider.grant(&elsewhere).await.expect_err("other server");
    assert!(matches!(err, ProviderError::Invalid { .. }), "{err:?}");
    // Revoking what was never granted succeeds.
    provider
        .revoke(&fixture.grant(&provider, &email, None, "read"))
        .await
        .expect("revoke of nothing");
    fixture.cleanup().await;
}

#[tokio::test]
async fn health_check_needs_a_login_that_may_create_roles() {
    let mut fixture = Fixture::new().await;
    fixture.provider("").health_check().await.expect("healthy");
    let (user, _) = fixture.user("fay").await;
    let dsn = dsn().replacen("postgres@", &format!("{user}@"), 1);
    let provider = PostgresProvider::new(fixture.settings(&dsn, "")).expect("provider");
    let err = provider.health_check().await.expect_err("no CREATEROLE");
    assert!(matches!(err, ProviderError::Denied { .. }), "{err:?}");
    drop(provider);
    fixture.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_grants_and_revokes_stay_consistent() {
    let mut fixture = Fixture::new().await;
    let mut emails = Vec::new();
    for i in 0..50 {
        emails.push(fixture.user(&format!("c{i:02}")).await);
    }
    let provider = Arc::new(fixture.provider(""));
    let grants: Vec<GrantSpec> = emails
        .iter()
        .map(|(_, email)| fixture.grant(&provider, email, None, "read"))
        .collect();

    // The first half gets access, all at once (the group role is made by one of them).
    let mut tasks = Vec::new();
    for grant in &grants[..25] {
        let (provider, grant) = (provider.clone(), grant.clone());
        tasks.push(tokio::spawn(async move {
            provider.grant(&grant).await.map(drop)
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("grant");
    }
    // Then the second half is granted while the first half is revoked: 50 at once.
    let mut tasks = Vec::new();
    for (i, grant) in grants.iter().cloned().enumerate() {
        let provider = provider.clone();
        tasks.push(tokio::spawn(async move {
            if i < 25 {
                provider.revoke(&grant).await
            } else {
                provider.grant(&grant).await.map(drop)
            }
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("grant or revoke");
    }

    let group = super::sql::group_role(&fixture.database, None, "read");
    let members = members_of(&fixture.admin, &group).await;
    let expected: BTreeSet<String> = emails[25..].iter().map(|(role, _)| role.clone()).collect();
    assert_eq!(members, expected);
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM latch_connector.grants WHERE database = $1")
            .bind(&fixture.database)
            .fetch_one(&fixture.admin)
            .await
            .expect("count rows");
    assert_eq!(rows, 25);
    drop(provider);
    fixture.cleanup().await;
}
