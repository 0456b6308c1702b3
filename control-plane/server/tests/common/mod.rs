//! A fresh database per test, on either backend, and the helpers the contract tests share.

// Each test file uses its own share of these helpers.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::Utc;
use latch_core::directory::parse_directory_yaml;
use latch_core::flow::parse_yaml;
use latch_server::lifecycle::STATIC_SOURCE;
use latch_server::store::{
    AuditFilter, ChainVerifier, FlowVersion, PostgresStore, Refusal, SqliteStore, Store,
    StoreError, StoredDirectory,
};
use sqlx::Connection;

/// The PostgreSQL server the tests use.
pub fn postgres_admin_url() -> String {
    std::env::var("LATCH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// One test's database. A PostgreSQL database is dropped when this is.
pub struct TestDb {
    store: Arc<dyn Store>,
    url: String,
    postgres_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("latch.db");
        let store = SqliteStore::open(&path).await.expect("open sqlite");
        TestDb {
            store: Arc::new(store),
            url: format!("sqlite://{}", path.display()),
            postgres_name: None,
            _dir: Some(dir),
        }
    }

    pub async fn postgres() -> TestDb {
        let admin = postgres_admin_url();
        let name = format!("latch_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to PostgreSQL at 127.0.0.1:5432");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create database");
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("LATCH_TEST_POSTGRES_URL must end in /DATABASE"),
        };
        let store = PostgresStore::connect(&url).await.expect("open postgres");
        TestDb {
            store: Arc::new(store),
            url,
            postgres_name: Some(name),
            _dir: None,
        }
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Runs raw SQL on the same database, behind the store's back.
    pub async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        if self.postgres_name.is_some() {
            let mut conn = sqlx::PgConnection::connect(&self.url)
                .await
                .expect("connect");
            sqlx::raw_sql(sql)
                .execute(&mut conn)
                .await
                .expect("execute");
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&self.url)
                .await
                .expect("connect");
            sqlx::raw_sql(sql)
                .execute(&mut conn)
                .await
                .expect("execute");
        }
    }

    /// The first column of every row of a query, as text.
    pub async fn fetch_strings(&self, sql: &str) -> Vec<String> {
        use sqlx::Row;
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        if self.postgres_name.is_some() {
            let mut conn = sqlx::PgConnection::connect(&self.url)
                .await
                .expect("connect");
            let rows = sqlx::query(sql).fetch_all(&mut conn).await.expect("query");
            rows.iter()
                .map(|row| row.try_get::<String, _>(0).expect("text column"))
                .collect()
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&self.url)
                .await
                .expect("connect");
            let rows = sqlx::query(sql).fetch_all(&mut conn).await.expect("query");
            rows.iter()
                .map(|row| row.try_get::<String, _>(0).expect("text column"))
                .collect()
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop runs outside async; a short-lived runtime on its own thread removes the database.
        let admin = postgres_admin_url();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// Replaces the static directory with `yaml`.
pub async fn set_directory(store: &dyn Store, yaml: &str) {
    let spec = parse_directory_yaml(yaml).expect("valid directory");
    let old = store
        .directory(STATIC_SOURCE)
        .await
        .expect("read directory");
    let stored = StoredDirectory {
        json: serde_json::to_string(&spec).expect("json"),
        digest: spec.digest(),
        applied_at: Utc::now(),
        applied_by: "admin@example.com".into(),
    };
    store
        .replace_directory(
            STATIC_SOURCE,
            old.as_ref().map(|d| d.digest.as_str()),
            &stored,
            serde_json::json!({}),
        )
        .await
        .expect("replace directory");
}

/// Applies the flows in `yaml`, which must have no errors.
pub async fn apply_flows(store: &dyn Store, yaml: &str) {
    let parsed = parse_yaml(yaml);
    assert!(
        parsed.problems.iter().all(|p| !p.is_error()),
        "{:?}",
        parsed.problems
    );
    let versions: Vec<FlowVersion> = parsed.flows.into_iter().map(FlowVersion::new).collect();
    store
        .apply_flows(&versions, "admin@example.com", Utc::now())
        .await
        .expect("apply flows");
}

/// The refusal `result` must be.
pub fn refusal(result: Result<impl std::fmt::Debug, StoreError>) -> Refusal {
    match result {
        Err(StoreError::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The actions of the audit events about `subject`, oldest first.
pub async fn audit_actions(store: &dyn Store, subject: &str) -> Vec<String> {
    let filter = AuditFilter {
        since: None,
        subject: Some(subject.into()),
    };
    store
        .find_audit_events(&filter, 0, 10_000)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect()
}

/// Checks the whole audit chain, which must not be empty.
pub async fn chain_is_intact(store: &dyn Store) {
    let mut verifier = ChainVerifier::default();
    for event in store.audit_events(0, 100_000).await.expect("events") {
        verifier.check(&event).expect("chain intact");
    }
    assert!(verifier.checked() > 0);
}

/// Runs each named `async fn(TestDb)` as two tests: on SQLite and on a fresh PostgreSQL database.
#[allow(unused_macros)]
macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $test() { super::$test(super::TestDb::sqlite().await).await; } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $test() { super::$test(super::TestDb::postgres().await).await; } )*
        }
    };
}
