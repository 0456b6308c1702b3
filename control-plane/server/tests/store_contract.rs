//! The store contract: every test here runs against SQLite and against PostgreSQL (a fresh database
//! per test on the server at 127.0.0.1:5432, or `LATCH_TEST_POSTGRES_URL`).

#[macro_use]
mod common;

use std::sync::Arc;

use chrono::{Duration, Utc};
use latch_core::flow::{FlowSpec, parse_yaml};
use latch_server::auth::{self, TokenRequest};
use latch_server::store::{
    ApplyOutcome, FlowVersion, GENESIS_HASH, Store, StoreError, StoredDirectory, chain_hash,
};

use common::TestDb;

fn flow(name: &str, max: &str) -> FlowSpec {
    let yaml = format!(
        r#"
name: {name}
kind: self_serve
requesters:
  any_of: [{{ group: engineering }}]
targets:
  - integration: aws-prod
    resource_types: [aws.account]
    permissions: [ReadOnlyAccess]
duration: {{ default: 1h, max: {max} }}
approval:
  mode: any_of
  groups:
    - {{ approvers: [manager], min: 1 }}
"#
    );
    let parsed = parse_yaml(&yaml);
    assert!(
        parsed.problems.iter().all(|p| !p.is_error()),
        "{:?}",
        parsed.problems
    );
    parsed.flows.into_iter().next().expect("one flow")
}

fn versions(flows: &[FlowSpec]) -> Vec<FlowVersion> {
    flows.iter().cloned().map(FlowVersion::new).collect()
}

async fn identical_content_makes_no_new_version(db: TestDb) {
    let store = db.store();
    let now = Utc::now();
    let applied = store
        .apply_flows(&versions(&[flow("a", "4h")]), "admin@x", now)
        .await
        .expect("apply");
    assert_eq!(
        (applied[0].version, applied[0].outcome),
        (1, ApplyOutcome::Created)
    );
    let again = store
        .apply_flows(&versions(&[flow("a", "4h")]), "admin@x", now)
        .await
        .expect("apply");
    assert_eq!(
        (again[0].version, again[0].outcome),
        (1, ApplyOutcome::Unchanged)
    );
    assert_eq!(store.get_flow("a", Some(2)).await.expect("get"), None);
}

async fn changed_content_makes_a_new_version_and_keeps_the_old(db: TestDb) {
    let store = db.store();
    let now = Utc::now();
    store
        .apply_flows(&versions(&[flow("a", "4h")]), "admin@x", now)
        .await
        .expect("apply");
    let applied = store
        .apply_flows(&versions(&[flow("a", "8h")]), "bob@x", now)
        .await
        .expect("apply");
    assert_eq!(
        (applied[0].version, applied[0].outcome),
        (2, ApplyOutcome::Updated)
    );
    let current = store
        .get_flow("a", None)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(current.version, 2);
    assert_eq!(current.spec, flow("a", "8h"));
    assert_eq!(current.applied_by, "bob@x");
    let first = store
        .get_flow("a", Some(1))
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(first.spec, flow("a", "4h"));
    assert_eq!(first.digest, flow("a", "4h").digest());
    assert_ne!(first.digest, current.digest);
}

async fn a_failed_apply_changes_nothing(db: TestDb) {
    let store = db.store();
    // A stray row at ("b", 1) makes the second flow's insert fail after the first one's succeeded.
    db.execute(
        "INSERT INTO access_flows (name, version, spec, digest, applied_at, applied_by) \
                VALUES ('b', 1, '{}', 'x', '2026-01-01T00:00:00Z', 'x')",
    )
    .await;
    let result = store
        .apply_flows(
            &versions(&[flow("a", "4h"), flow("b", "4h")]),
            "admin@x",
            Utc::now(),
        )
        .await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert_eq!(store.get_flow("a", None).await.expect("get"), None);
    assert!(store.list_flows(None, 10).await.expect("list").is_empty());
    assert!(store.audit_events(0, 10).await.expect("audit").is_empty());
}

async fn deleted_flows_leave_the_list_and_keep_their_history(db: TestDb) {
    let store = db.store();
    let now = Utc::now();
    store
        .apply_flows(
            &versions(&[flow("a", "4h"), flow("b", "4h")]),
            "admin@x",
            now,
        )
        .await
        .expect("apply");
    let deleted = store
        .delete_flow("a", "admin@x", now)
        .await
        .expect("delete")
        .expect("existed");
    assert!(deleted.deleted);
    assert_eq!(deleted.version, 1);
    assert_eq!(store.get_flow("a", None).await.expect("get"), None);
    assert!(
        store
            .get_flow("a", Some(1))
            .await
            .expect("get")
            .expect("history")
            .deleted
    );
    let names: Vec<String> = store
        .list_flows(None, 10)
        .await
        .expect("list")
        .into_iter()
        .map(|f| f.spec.name)
        .collect();
    assert_eq!(names, ["b"]);
    assert_eq!(
        store
            .delete_flow("a", "admin@x", now)
            .await
            .expect("delete"),
        None
    );
    // Applying the same content again brings it back as a new version.
    let applied = store
        .apply_flows(&versions(&[flow("a", "4h")]), "admin@x", now)
        .await
        .expect("apply");
    assert_eq!(
        (applied[0].version, applied[0].outcome),
        (2, ApplyOutcome::Created)
    );
    assert!(
        !store
            .get_flow("a", None)
            .await
            .expect("get")
            .expect("back")
            .deleted
    );
}

async fn flows_are_listed_by_name_in_pages(db: TestDb) {
    let store = db.store();
    let names = ["delta", "alpha", "echo", "charlie", "bravo"];
    let flows: Vec<FlowSpec> = names.iter().map(|n| flow(n, "4h")).collect();
    store
        .apply_flows(&versions(&flows), "admin@x", Utc::now())
        .await
        .expect("apply");
    let first = store.list_flows(None, 2).await.expect("list");
    let second = store.list_flows(Some("bravo"), 2).await.expect("list");
    let third = store.list_flows(Some("delta"), 2).await.expect("list");
    let seen: Vec<&str> = first
        .iter()
        .chain(&second)
        .chain(&third)
        .map(|f| f.spec.name.as_str())
        .collect();
    assert_eq!(seen, ["alpha", "bravo", "charlie", "delta", "echo"]);
}

fn token_request(user: &str, ttl: Option<Duration>) -> TokenRequest {
    TokenRequest {
        user: user.into(),
        admin: false,
        description: "test".into(),
        ttl,
        created_by: "admin@x".into(),
    }
}

async fn tokens_are_stored_hashed_listed_and_revoked(db: TestDb) {
    let store = db.store();
    let now = Utc::now();
    let alice = auth::issue(token_request("alice@x", Some(Duration::hours(1))), now);
    let bob = auth::issue(token_request("bob@x", Some(Duration::minutes(1))), now);
    store
        .create_token(&alice.record, "admin@x")
        .await
        .expect("create");
    store
        .create_token(&bob.record, "admin@x")
        .await
        .expect("create");

    let stored = store
        .token(&alice.record.id)
        .await
        .expect("get")
        .expect("exists");
    assert!(auth::verify(&stored, &alice.secret, now));
    assert!(
        !stored.secret_hash.contains(&alice.secret),
        "the secret itself is never stored"
    );
    let raw = db.fetch_strings("SELECT secret_hash FROM api_tokens").await;
    assert!(
        raw.iter()
            .all(|hash| !hash.contains(alice.secret.rsplit('.').next().expect("secret part")))
    );

    let ids = |tokens: Vec<latch_server::store::TokenRecord>| {
        tokens.into_iter().map(|t| t.id).collect::<Vec<_>>()
    };
    // Newest first; bob's token has expired two minutes later.
    assert_eq!(
        ids(store.list_tokens(None, 10, false, now).await.expect("list")),
        [bob.record.id.as_str(), alice.record.id.as_str()]
    );
    let later = now + Duration::minutes(2);
    assert_eq!(
        ids(store
            .list_tokens(None, 10, false, later)
            .await
            .expect("list")),
        [alice.record.id.as_str()]
    );
    assert_eq!(
        ids(store
            .list_tokens(Some(&bob.record.id), 10, true, later)
            .await
            .expect("list")),
        [alice.record.id.as_str()]
    );

    let revoked = store
        .revoke_token(&alice.record.id, "admin@x", now)
        .await
        .expect("revoke")
        .expect("exists");
    assert!(revoked.revoked_at.is_some());
    assert!(!auth::verify(&revoked, &alice.secret, now));
    let again = store
        .revoke_token(&alice.record.id, "admin@x", later)
        .await
        .expect("revoke")
        .expect("exists");
    assert_eq!(
        again.revoked_at, revoked.revoked_at,
        "a second revoke changes nothing"
    );
    assert!(
        store
            .list_tokens(None, 10, false, now)
            .await
            .expect("list")
            .iter()
            .all(|t| t.id != alice.record.id)
    );
    assert_eq!(
        store
            .revoke_token("nope", "admin@x", now)
            .await
            .expect("revoke"),
        None
    );
}

async fn the_first_admin_token_is_created_once(db: TestDb) {
    let store = db.store();
    let now = Utc::now();
    let first = auth::issue(
        TokenRequest {
            admin: true,
            ..token_request("admin@latch.local", None)
        },
        now,
    );
    let second = auth::issue(
        TokenRequest {
            admin: true,
            ..token_request("admin@latch.local", None)
        },
        now,
    );
    assert!(
        store
            .create_first_admin_token(&first.record)
            .await
            .expect("first")
    );
    assert!(
        !store
            .create_first_admin_token(&second.record)
            .await
            .expect("second")
    );
    assert_eq!(
        store
            .list_tokens(None, 10, true, now)
            .await
            .expect("list")
            .len(),
        1
    );
}

async fn every_change_is_audited_in_a_chain(db: TestDb) {
    let store = db.store();
    let now = Utc::now();
    store
        .apply_flows(&versions(&[flow("a", "4h")]), "admin@x", now)
        .await
        .expect("apply");
    store
        .apply_flows(&versions(&[flow("a", "4h")]), "admin@x", now)
        .await
        .expect("unchanged");
    store
        .apply_flows(&versions(&[flow("a", "8h")]), "admin@x", now)
        .await
        .expect("apply");
    store
        .delete_flow("a", "admin@x", now)
        .await
        .expect("delete");
    let token = auth::issue(token_request("alice@x", None), now);
    store
        .create_token(&token.record, "admin@x")
        .await
        .expect("create");
    store
        .revoke_token(&token.record.id, "admin@x", now)
        .await
        .expect("revoke");

    let events = store.audit_events(0, 100).await.expect("audit");
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "flow.created",
            "flow.updated",
            "flow.deleted",
            "token.created",
            "token.revoked"
        ]
    );
    let mut prev = GENESIS_HASH.to_string();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.seq, i64::try_from(i).expect("small") + 1);
        assert_eq!(event.prev_hash, prev);
        let expected = chain_hash(
            &prev,
            event.seq,
            event.at,
            &event.actor,
            &event.action,
            &event.subject,
            &event.details,
        );
        assert_eq!(event.hash, expected, "event {} hash", event.seq);
        prev = event.hash.clone();
    }
    assert_eq!(events[1].details["previous_version"], 1);
    assert_eq!(events[3].details["user"], "alice@x");
    assert!(
        !events[3].details.to_string().contains(&token.secret),
        "no secret in the audit log"
    );
}

async fn concurrent_applies_of_a_new_flow_make_one_version(db: TestDb) {
    let store: Arc<dyn Store> = db.store();
    let now = Utc::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .apply_flows(&versions(&[flow("race", "4h")]), "admin@x", now)
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        let applied = task.await.expect("task").expect("apply");
        if applied[0].outcome == ApplyOutcome::Created {
            created += 1;
        }
        assert_eq!(applied[0].version, 1);
    }
    assert_eq!(created, 1);
}

async fn directory_sources_are_replaced_only_from_the_version_read(db: TestDb) {
    let store = db.store();
    let now = latch_server::store::stored_time(Utc::now());
    assert_eq!(store.directory("static").await.expect("get"), None);
    let version = |json: &str, digest: &str| StoredDirectory {
        json: json.to_string(),
        digest: digest.to_string(),
        applied_at: now,
        applied_by: "admin@x".to_string(),
    };
    let first = version(r#"{"users":[]}"#, "d1");
    store
        .replace_directory(
            "static",
            None,
            &first,
            serde_json::json!({"users_added": []}),
        )
        .await
        .expect("create");
    assert_eq!(
        store.directory("static").await.expect("get"),
        Some(first.clone())
    );

    // A writer that read nothing (or an old version) must not overwrite a newer one.
    let second = version(r#"{"users":[{"email":"a@x"}]}"#, "d2");
    let stale = store
        .replace_directory("static", None, &second, serde_json::json!({}))
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    let stale = store
        .replace_directory("static", Some("d0"), &second, serde_json::json!({}))
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    assert_eq!(store.directory("static").await.expect("get"), Some(first));

    store
        .replace_directory(
            "static",
            Some("d1"),
            &second,
            serde_json::json!({"users_added": ["a@x"]}),
        )
        .await
        .expect("replace");
    assert_eq!(store.directory("static").await.expect("get"), Some(second));
    let events = store.audit_events(0, 10).await.expect("audit");
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["directory.applied", "directory.applied"]);
    assert_eq!(events[1].details["changes"]["users_added"][0], "a@x");
}

contract!(
    identical_content_makes_no_new_version,
    changed_content_makes_a_new_version_and_keeps_the_old,
    a_failed_apply_changes_nothing,
    deleted_flows_leave_the_list_and_keep_their_history,
    flows_are_listed_by_name_in_pages,
    tokens_are_stored_hashed_listed_and_revoked,
    the_first_admin_token_is_created_once,
    every_change_is_audited_in_a_chain,
    concurrent_applies_of_a_new_flow_make_one_version,
    directory_sources_are_replaced_only_from_the_version_read,
);
