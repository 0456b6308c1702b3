//! The audit log: every change is recorded, `latch audit verify` passes on an untouched log and
//! finds a modified, deleted, inserted or reordered event when the database is changed directly.

use latch_e2e::{Backend, PgDatabase, Server, failure, repo_root, success};
use sqlx::Connection;

/// A raw connection to the server's database, behind its back.
enum Db {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Db {
    async fn open(server: &Server) -> Db {
        match &server.database_url {
            Some(url) => Db::Postgres(sqlx::PgConnection::connect(url).await.expect("connect")),
            None => {
                let url = format!("sqlite://{}", server.data_dir.join("latch.db").display());
                Db::Sqlite(
                    sqlx::SqliteConnection::connect(&url)
                        .await
                        .expect("connect"),
                )
            }
        }
    }

    async fn execute(&mut self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self {
            Db::Sqlite(conn) => sqlx::raw_sql(sql).execute(conn).await.map(|_| ()),
            Db::Postgres(conn) => sqlx::raw_sql(sql).execute(conn).await.map(|_| ()),
        }
        .expect("tamper");
    }
}

fn verify(server: &Server, token: &str) -> (bool, serde_json::Value) {
    let output = server.cli(Some(token), &["--output", "json", "audit", "verify"]);
    let json = serde_json::from_slice(&output.stdout).expect("verify json");
    (output.status.success(), json)
}

async fn tampering_is_detected(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = (backend == Backend::Postgres).then(PgDatabase::create);
    let server = Server::start(
        &dir.path().join("data"),
        database.as_ref().map(|db| db.url.as_str()),
    );
    let token = server.admin_token();
    let flows = repo_root().join("examples/flows");
    for file in ["prod-readonly.yaml", "oncall-db.yaml"] {
        success(&server.cli(
            Some(&token),
            &[
                "flows",
                "apply",
                "-f",
                &flows.join(file).display().to_string(),
            ],
        ));
    }
    success(&server.cli(Some(&token), &["flows", "delete", "reporting-read"]));

    let events = success(&server.cli(Some(&token), &["--output", "json", "audit", "list"]));
    let events: serde_json::Value = serde_json::from_str(&events).expect("json");
    let actions: Vec<&str> = events
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        [
            "token.created",
            "flow.created",
            "flow.created",
            "flow.created",
            "flow.deleted"
        ]
    );
    let only = success(&server.cli(
        Some(&token),
        &[
            "--output",
            "json",
            "audit",
            "list",
            "--request",
            "reporting-read",
        ],
    ));
    let only: serde_json::Value = serde_json::from_str(&only).expect("json");
    assert_eq!(only.as_array().expect("array").len(), 2, "{only}");

    let (ok, report) = verify(&server, &token);
    assert!(ok && report["intact"] == true, "{report}");
    assert_eq!(report["events_checked"], 5);

    let mut db = Db::open(&server).await;
    // Modified: an event's content changes.
    db.execute("UPDATE audit_events SET actor = 'mallory@example.com' WHERE seq = 2")
        .await;
    let (ok, report) = verify(&server, &token);
    assert!(!ok, "{report}");
    assert_eq!(report["broken_at_seq"], 2, "{report}");
    assert!(
        report["problem"]
            .as_str()
            .expect("problem")
            .contains("modified"),
        "{report}"
    );
    db.execute("UPDATE audit_events SET actor = 'admin@latch.local' WHERE seq = 2")
        .await;
    assert!(
        verify(&server, &token).0,
        "restoring the event restores the chain"
    );

    // Deleted: an event in the middle disappears.
    db.execute("CREATE TABLE saved AS SELECT * FROM audit_events WHERE seq = 3")
        .await;
    db.execute("DELETE FROM audit_events WHERE seq = 3").await;
    let (ok, report) = verify(&server, &token);
    assert!(!ok);
    assert_eq!(report["broken_at_seq"], 4, "{report}");
    assert!(
        report["problem"]
            .as_str()
            .expect("problem")
            .contains("missing"),
        "{report}"
    );
    db.execute("INSERT INTO audit_events SELECT * FROM saved")
        .await;
    assert!(verify(&server, &token).0);

    // Reordered: two events swap places.
    db.execute("UPDATE audit_events SET seq = -2 WHERE seq = 2")
        .await;
    db.execute("UPDATE audit_events SET seq = 2 WHERE seq = 3")
        .await;
    db.execute("UPDATE audit_events SET seq = 3 WHERE seq = -2")
        .await;
    let (ok, report) = verify(&server, &token);
    assert!(!ok);
    assert_eq!(report["broken_at_seq"], 2, "{report}");
    db.execute("UPDATE audit_events SET seq = -2 WHERE seq = 2")
        .await;
    db.execute("UPDATE audit_events SET seq = 2 WHERE seq = 3")
        .await;
    db.execute("UPDATE audit_events SET seq = 3 WHERE seq = -2")
        .await;
    assert!(verify(&server, &token).0);

    // Inserted: an event appended without going through the store.
    db.execute(
        "INSERT INTO audit_events (seq, at, actor, action, subject, details, prev_hash, hash) \
         SELECT 6, at, actor, 'flow.deleted', 'prod-readonly', details, hash, hash FROM audit_events WHERE seq = 5",
    )
    .await;
    let (ok, report) = verify(&server, &token);
    assert!(!ok);
    assert_eq!(report["broken_at_seq"], 6, "{report}");
    let stdout = String::from_utf8_lossy(&server.cli(Some(&token), &["audit", "verify"]).stdout)
        .into_owned();
    assert!(stdout.contains("BROKEN"), "{stdout}");
    db.execute("DELETE FROM audit_events WHERE seq = 6").await;

    // Deleted from the end.
    db.execute("DELETE FROM audit_events WHERE seq = 5").await;
    let (ok, report) = verify(&server, &token);
    assert!(!ok);
    assert!(
        report["problem"]
            .as_str()
            .expect("problem")
            .contains("deleted from the end"),
        "{report}"
    );

    // Only admins read the audit log.
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
    let stderr = failure(&server.cli(alice["token"].as_str(), &["audit", "list"]));
    assert!(stderr.contains("not an admin"), "{stderr}");
}

#[tokio::test]
async fn audit_tampering_is_detected_on_sqlite() {
    tampering_is_detected(Backend::Sqlite).await;
}

#[tokio::test]
async fn audit_tampering_is_detected_on_postgres() {
    tampering_is_detected(Backend::Postgres).await;
}
