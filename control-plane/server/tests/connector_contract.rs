//! The connector half of the store: enrollment, integrations, command delivery (claims, retries,
//! giving up) and inventory sync. Every test runs on SQLite and on a fresh PostgreSQL database.
//!
//! Grants and their commands come from the request lifecycle, as they do in the server; the tests
//! play the connectors through the same store calls the connector hub makes.

#[macro_use]
mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use latch_core::request::RequestState;
use latch_server::lifecycle::{Actor, Ask, Lifecycle, STATIC_SOURCE, Settings};
use latch_server::store::{
    Announcement, AttemptOutcome, CommandResult, ConnectorRecord, ConnectorState, GrantFilter,
    GrantState, IntegrationRecord, MAX_RETRY_AFTER, NewConnector, Refusal, RequestItem,
    ResourceRecord, Retry, RetryPolicy, SealedCredentials, SeenIds, Store, StoreError, SyncEnd,
    SyncedGroup, SyncedIdentity, SyncedMembership, SyncedResource, stored_time,
};

use common::{TestDb, apply_flows, audit_actions, chain_is_intact, refusal, set_directory};

const FLOWS: &str = r#"
name: aws-read
kind: self_serve
requesters: { any_of: [{ group: engineering }] }
targets:
  - integration: aws-prod
    resource_types: [aws.account]
    permissions: [ReadOnlyAccess]
duration: { default: 1h, max: 4h }
approval: { mode: auto }
"#;

const PEOPLE: &str = r#"
users:
  - { email: alice@example.com, groups: [engineering] }
  - { email: bob@example.com, groups: [engineering] }
"#;

const AWS: &str = "aws-prod";

fn account(n: usize) -> String {
    format!("acct-{n:03}")
}

fn static_account(n: usize) -> ResourceRecord {
    let now = Utc::now();
    ResourceRecord {
        id: account(n),
        integration: AWS.into(),
        resource_type: "aws.account".into(),
        name: format!("account {n}"),
        parent: None,
        ancestors: Vec::new(),
        tags: BTreeMap::new(),
        owners: Vec::new(),
        source: STATIC_SOURCE.into(),
        first_seen: now,
        last_seen: now,
    }
}

struct World {
    db: TestDb,
    store: Arc<dyn Store>,
    lifecycle: Lifecycle,
}

/// A store with people, a flow on `aws-prod` and `accounts` static accounts to ask for.
async fn world(db: TestDb, accounts: usize) -> World {
    let store = db.store();
    set_directory(store.as_ref(), PEOPLE).await;
    apply_flows(store.as_ref(), FLOWS).await;
    let inventory: Vec<ResourceRecord> = (0..accounts).map(static_account).collect();
    store
        .replace_resources(STATIC_SOURCE, &inventory, "admin@example.com", Utc::now())
        .await
        .expect("resources");
    let lifecycle = Lifecycle::new(store.clone(), Settings::default());
    World {
        db,
        store,
        lifecycle,
    }
}

fn new_connector(name: &str, expires_at: DateTime<Utc>) -> NewConnector {
    NewConnector {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.into(),
        token_hash: format!("hash-of-{name}"),
        token_expires_at: expires_at,
    }
}

fn aws() -> Announcement {
    Announcement {
        name: AWS.into(),
        kind: "aws".into(),
        capabilities: vec!["grant".into(), "sync".into()],
    }
}

/// A connector, enrolled, serving `aws-prod`; returns its id.
async fn enrolled(store: &dyn Store, name: &str, now: DateTime<Utc>) -> String {
    let new = new_connector(name, now + chrono::Duration::minutes(10));
    store
        .create_connector(&new, "admin@example.com", now)
        .await
        .expect("create connector");
    store
        .enroll_connector(&new.token_hash, now + chrono::Duration::hours(24), now)
        .await
        .expect("enroll");
    let refused = store
        .announce_integrations(&new.id, &[aws()], now)
        .await
        .expect("announce");
    assert!(refused.is_empty(), "{refused:?}");
    new.id
}

/// Asks for an account as `who`; returns the request's id.
async fn ask(world: &World, who: &str, n: usize, now: DateTime<Utc>) -> String {
    let actor = Actor {
        email: who.into(),
        admin: false,
    };
    let ask = Ask {
        items: vec![RequestItem {
            resource_id: account(n),
            permission: "ReadOnlyAccess".into(),
        }],
        duration: None,
        justification: "testing".into(),
    };
    world
        .lifecycle
        .create(&actor, ask, now)
        .await
        .expect("create request")
        .view
        .request
        .id
}

async fn revoke(world: &World, request_id: &str, now: DateTime<Utc>) {
    let admin = Actor {
        email: "admin@example.com".into(),
        admin: true,
    };
    world
        .lifecycle
        .revoke(&admin, request_id, "no longer needed", now)
        .await
        .expect("revoke");
}

async fn claim(
    store: &dyn Store,
    connector: &str,
    now: DateTime<Utc>,
    limit: u32,
) -> Vec<latch_server::store::ClaimedCommand> {
    store
        .claim_commands(
            connector,
            &[AWS.to_string()],
            now + chrono::Duration::seconds(60),
            now,
            limit,
        )
        .await
        .expect("claim")
}

fn ids(claimed: &[latch_server::store::ClaimedCommand]) -> Vec<String> {
    claimed.iter().map(|c| c.command.id.clone()).collect()
}

async fn audit_count(store: &dyn Store) -> i64 {
    store.audit_head().await.expect("head").0
}

async fn resources_epoch(store: &dyn Store) -> i64 {
    store
        .cache_versions(STATIC_SOURCE)
        .await
        .expect("versions")
        .resources
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_secs(10),
        revoke_failed_every: Duration::from_secs(3600),
    }
}

fn synced(id: &str, parent: Option<&str>, tags: &[(&str, &str)]) -> SyncedResource {
    SyncedResource {
        id: id.into(),
        resource_type: "aws.account".into(),
        name: format!("name of {id}"),
        parent: parent.map(str::to_string),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        owners: vec!["owner@example.com".into()],
        digest: None,
    }
}

async fn ingest(
    store: &dyn Store,
    integration: &str,
    page: &[SyncedResource],
) -> Result<latch_server::store::PageChanges, StoreError> {
    store
        .ingest_resources(
            integration,
            page,
            &[("aws.account".into(), vec!["ReadOnlyAccess".into()])],
            "connector:c1",
            Utc::now(),
        )
        .await
}

async fn ancestors(store: &dyn Store, id: &str) -> Vec<String> {
    store
        .resources_by_id(&[id.to_string()])
        .await
        .expect("read")
        .pop()
        .unwrap_or_else(|| panic!("resource {id} is stored"))
        .ancestors
}

async fn integration(store: &dyn Store, at: DateTime<Utc>) -> IntegrationRecord {
    store
        .integration(AWS, at)
        .await
        .expect("read")
        .expect("exists")
}

async fn connector(store: &dyn Store, id: &str) -> ConnectorRecord {
    store.connector(id).await.expect("read").expect("exists")
}

/// edge-a reports a command done.
async fn complete(store: &dyn Store, command_id: &str, at: DateTime<Utc>) {
    store
        .complete_command(command_id, &CommandResult::Done, "connector:edge-a", at)
        .await
        .expect("complete");
}

/// edge-a reports a failed attempt at a command, under `policy()`.
async fn fail(
    store: &dyn Store,
    command_id: &str,
    message: &str,
    retry: bool,
    at: DateTime<Utc>,
) -> AttemptOutcome {
    store
        .fail_attempt(
            command_id,
            message,
            if retry { Retry::Backoff } else { Retry::Never },
            &policy(),
            "connector:edge-a",
            at,
        )
        .await
        .expect("fail")
}

/// edge-a ends a sync; returns how many resources it deleted.
async fn finish(store: &dyn Store, end: &SyncEnd<'_>, at: DateTime<Utc>) -> u64 {
    store
        .finish_sync(end, "connector:edge-a", at)
        .await
        .expect("finish")
}

// ---------------------------------------------------------------------------------------------

async fn enrollment_tokens_work_once(db: TestDb) {
    let store = db.store();
    let now = stored_time(Utc::now());
    let new = new_connector("edge-1", now + chrono::Duration::minutes(10));
    let created = store
        .create_connector(&new, "admin@example.com", now)
        .await
        .expect("create");
    assert_eq!(created.state, ConnectorState::Pending);
    assert_eq!(created.name, "edge-1");
    assert_eq!(created.created_by, "admin@example.com");
    let cert_until = now + chrono::Duration::hours(24);

    // A name in use is refused.
    let twin = new_connector("edge-1", now + chrono::Duration::minutes(10));
    match refusal(
        store
            .create_connector(&twin, "admin@example.com", now)
            .await,
    ) {
        Refusal::AlreadyExists(message) => {
            assert!(message.contains("\"edge-1\""), "{message}")
        }
        other => panic!("{other:?}"),
    }

    let before = audit_count(store.as_ref()).await;
    match refusal(
        store
            .enroll_connector("no-such-hash", cert_until, now)
            .await,
    ) {
        Refusal::Unauthenticated(message) => assert_eq!(message, "unknown enrollment token"),
        other => panic!("{other:?}"),
    }
    let late = now + chrono::Duration::minutes(11);
    match refusal(
        store
            .enroll_connector(&new.token_hash, cert_until, late)
            .await,
    ) {
        Refusal::Unauthenticated(message) => {
            assert!(
                message.starts_with("enrollment token expired at"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Refusals changed nothing.
    assert_eq!(audit_count(store.as_ref()).await, before);
    let still = connector(store.as_ref(), &new.id).await;
    assert_eq!(still.state, ConnectorState::Pending);
    assert_eq!(still.enrolled_at, None);

    let enrolled = store
        .enroll_connector(&new.token_hash, cert_until, now)
        .await
        .expect("enroll");
    assert_eq!(enrolled.state, ConnectorState::Enrolled);
    assert_eq!(enrolled.enrolled_at, Some(now));
    assert_eq!(enrolled.cert_not_after, Some(cert_until));
    match refusal(
        store
            .enroll_connector(&new.token_hash, cert_until, now)
            .await,
    ) {
        Refusal::Unauthenticated(message) => {
            assert_eq!(message, "enrollment token was already used")
        }
        other => panic!("{other:?}"),
    }

    let renewed = now + chrono::Duration::hours(48);
    store
        .record_certificate(&new.id, renewed, now)
        .await
        .expect("renew");
    assert_eq!(
        connector(store.as_ref(), &new.id).await.cert_not_after,
        Some(renewed)
    );

    // A connector revoked before it enrolled cannot use its token.
    let other = new_connector("edge-2", now + chrono::Duration::minutes(10));
    store
        .create_connector(&other, "admin@example.com", now)
        .await
        .expect("create");
    let revoked = store
        .revoke_connector("edge-2", "admin@example.com", now)
        .await
        .expect("revoke");
    assert_eq!(revoked.state, ConnectorState::Revoked);
    match refusal(
        store
            .enroll_connector(&other.token_hash, cert_until, now)
            .await,
    ) {
        Refusal::Unauthenticated(message) => assert!(message.contains("revoked"), "{message}"),
        other => panic!("{other:?}"),
    }
    // Revoking again changes nothing; an unknown name is not found.
    let again = store
        .revoke_connector(
            "edge-2",
            "admin@example.com",
            now + chrono::Duration::minutes(1),
        )
        .await
        .expect("again");
    assert_eq!(again.revoked_at, Some(now));
    assert!(matches!(
        refusal(
            store
                .revoke_connector("nope", "admin@example.com", now)
                .await
        ),
        Refusal::NotFound(_)
    ));
    // A revoked connector renews nothing.
    assert!(matches!(
        refusal(store.record_certificate(&other.id, renewed, now).await),
        Refusal::Unauthenticated(_)
    ));

    assert_eq!(
        audit_actions(store.as_ref(), &new.id).await,
        [
            "connector.created",
            "connector.enrolled",
            "connector.certificate_renewed"
        ]
    );
    assert_eq!(
        audit_actions(store.as_ref(), &other.id).await,
        ["connector.created", "connector.revoked"]
    );
    let names: Vec<String> = store
        .list_connectors()
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["edge-1", "edge-2"]);
    // Tokens are kept only as hashes, and no secret reaches the audit log.
    let events = store.audit_events(0, 1000).await.expect("events");
    assert!(
        events
            .iter()
            .all(|e| !e.details.to_string().contains("hash-of-"))
    );
    chain_is_intact(store.as_ref()).await;
}

async fn integrations_are_announced_owned_and_synced_on_request(db: TestDb) {
    let store = db.store();
    let now = stored_time(Utc::now());
    let a = enrolled(store.as_ref(), "edge-a", now).await;
    let gcp = Announcement {
        name: "gcp-org".into(),
        kind: "gcp".into(),
        capabilities: vec!["sync".into()],
    };
    let refused = store
        .announce_integrations(&a, &[aws(), gcp.clone()], now)
        .await
        .expect("announce");
    assert!(refused.is_empty());
    assert_eq!(
        audit_actions(store.as_ref(), "gcp-org").await,
        ["integration.announced"]
    );
    // The same announcement again is no change.
    let before = audit_count(store.as_ref()).await;
    store
        .announce_integrations(&a, &[aws(), gcp.clone()], now)
        .await
        .expect("announce");
    assert_eq!(audit_count(store.as_ref()).await, before);

    // Another connector announces aws-prod under another kind: refused, the rest accepted.
    let b = enrolled(store.as_ref(), "edge-b", now).await;
    let wrong = Announcement {
        name: AWS.into(),
        kind: "gcp".into(),
        capabilities: vec!["revoke".into()],
    };
    let extra = Announcement {
        name: "pg-main".into(),
        kind: "postgres".into(),
        capabilities: vec!["grant".into()],
    };
    let refused = store
        .announce_integrations(&b, &[wrong, extra], now)
        .await
        .expect("announce");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, AWS);
    assert!(refused[0].1.contains("\"aws\""), "{}", refused[0].1);
    assert_eq!(
        connector(store.as_ref(), &b).await.integrations,
        ["pg-main"]
    );

    // Connected while a server keeps its stream; capabilities are the union.
    store
        .announce_integrations(&b, &[aws(), gcp.clone()], now)
        .await
        .expect("announce");
    let record = integration(store.as_ref(), now).await;
    assert_eq!(record.kind, "aws");
    assert_eq!(record.connectors, ["edge-a", "edge-b"]);
    assert!(!record.connected);
    assert_eq!(record.capabilities, ["grant", "sync"]);
    store
        .connector_seen(
            &b,
            Some("1.2.3"),
            Some(now + chrono::Duration::seconds(30)),
            now,
        )
        .await
        .expect("seen");
    let record = integration(store.as_ref(), now).await;
    assert!(record.connected);
    assert!(
        !integration(store.as_ref(), now + chrono::Duration::seconds(31))
            .await
            .connected
    );
    let seen = connector(store.as_ref(), &b).await;
    assert_eq!(seen.version.as_deref(), Some("1.2.3"));
    assert_eq!(seen.last_seen, Some(now));
    // pg-main is no longer served by b: that is a change of its connectors.
    assert_eq!(
        audit_actions(store.as_ref(), "pg-main").await,
        ["integration.announced", "integration.announced"]
    );

    // Owners, lowercased, read back.
    let owners = store
        .set_integration_owners(
            AWS,
            &["Alice@Example.com".into(), "bob@example.com".into()],
            &["sre".into()],
            "admin@example.com",
            now,
        )
        .await
        .expect("owners");
    assert_eq!(owners.owner_users, ["alice@example.com", "bob@example.com"]);
    assert_eq!(owners.owner_groups, ["sre"]);
    let listed = store.list_integrations(now).await.expect("list");
    let names: Vec<&str> = listed.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, [AWS, "gcp-org", "pg-main"]);
    assert_eq!(
        listed[0].owner_users,
        ["alice@example.com", "bob@example.com"]
    );
    assert!(matches!(
        refusal(
            store
                .set_integration_owners("nope", &[], &[], "admin@example.com", now)
                .await
        ),
        Refusal::NotFound(_)
    ));

    // A requested sync is taken once, by a server serving that integration.
    store
        .request_sync(AWS, "sync-1", "admin@example.com", now)
        .await
        .expect("request sync");
    assert_eq!(
        store
            .take_sync_request(&["gcp-org".into()])
            .await
            .expect("take"),
        None
    );
    assert_eq!(
        store
            .take_sync_request(&["gcp-org".into(), AWS.into()])
            .await
            .expect("take"),
        Some((AWS.to_string(), "sync-1".to_string()))
    );
    assert_eq!(
        store.take_sync_request(&[AWS.into()]).await.expect("take"),
        None
    );
    assert!(matches!(
        refusal(
            store
                .request_sync("nope", "sync-2", "admin@example.com", now)
                .await
        ),
        Refusal::NotFound(_)
    ));
    assert_eq!(
        audit_actions(store.as_ref(), AWS).await,
        [
            "integration.announced",
            "integration.announced",
            "integration.announced",
            "integration.announced",
            "integration.owners_set",
            "integration.sync_requested"
        ]
    );
    chain_is_intact(store.as_ref()).await;
}

async fn concurrent_claims_give_each_command_to_one_connector(db: TestDb) {
    let w = world(db, 20).await;
    let now = stored_time(Utc::now());
    for n in 0..20 {
        ask(&w, "alice@example.com", n, now).await;
    }
    let a = enrolled(w.store.as_ref(), "edge-a", now).await;
    let b = enrolled(w.store.as_ref(), "edge-b", now).await;
    let (sa, sb) = (w.store.clone(), w.store.clone());
    let (ca, cb) = (a.clone(), b.clone());
    let first = tokio::spawn(async move { claim(sa.as_ref(), &ca, now, 15).await });
    let second = tokio::spawn(async move { claim(sb.as_ref(), &cb, now, 15).await });
    let got_a = ids(&first.await.expect("join"));
    let got_b = ids(&second.await.expect("join"));
    let set_a: HashSet<&String> = got_a.iter().collect();
    assert!(
        got_b.iter().all(|id| !set_a.contains(id)),
        "a command went to both"
    );
    // Whatever is left goes to the next claim; nothing is handed out twice.
    let rest = ids(&claim(w.store.as_ref(), &a, now, 100).await);
    assert_eq!(got_a.len() + got_b.len() + rest.len(), 20);
    assert!(claim(w.store.as_ref(), &b, now, 100).await.is_empty());
    let all: HashSet<String> = got_a.into_iter().chain(got_b).chain(rest).collect();
    assert_eq!(all.len(), 20);
}

async fn claims_skip_live_claims_and_retries_and_release_gives_them_back(db: TestDb) {
    let w = world(db, 3).await;
    let t0 = stored_time(Utc::now());
    let first = ask(&w, "alice@example.com", 0, t0).await;
    ask(&w, "alice@example.com", 1, t0).await;
    let a = enrolled(w.store.as_ref(), "edge-a", t0).await;
    let b = enrolled(w.store.as_ref(), "edge-b", t0).await;

    // Nothing for an integration the connector does not serve, or none at all.
    assert!(
        w.store
            .claim_commands(&a, &["gcp-org".into()], t0, t0, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    assert!(
        w.store
            .claim_commands(&a, &[], t0, t0, 10)
            .await
            .expect("claim")
            .is_empty()
    );

    let held = claim(w.store.as_ref(), &a, t0, 10).await;
    assert_eq!(held.len(), 2);
    assert!(held.iter().all(|c| c.attempt == 1));
    assert!(held.iter().all(|c| c.command.kind == "grant"));
    // Timed access: the connector learns when it ends.
    assert_eq!(
        held[0].expires_at,
        Some(t0 + chrono::Duration::hours(1)),
        "the flow's default duration, from now"
    );
    // b finds nothing while a's claim is live; a keeps it alive.
    let t1 = t0 + chrono::Duration::seconds(30);
    assert!(claim(w.store.as_ref(), &b, t1, 10).await.is_empty());
    w.store
        .extend_claims(&a, t1 + chrono::Duration::seconds(60))
        .await
        .expect("extend");
    let t2 = t0 + chrono::Duration::seconds(75);
    assert!(
        claim(w.store.as_ref(), &b, t2, 10).await.is_empty(),
        "extended past t2"
    );
    // a's stream ends: b gets them at once, as a second attempt.
    w.store.release_claims(&a).await.expect("release");
    let taken = claim(w.store.as_ref(), &b, t2, 10).await;
    assert_eq!(taken.len(), 2);
    assert!(taken.iter().all(|c| c.attempt == 2));
    // b's claim runs out unextended: a gets them back.
    let t3 = t2 + chrono::Duration::seconds(61);
    let back = claim(w.store.as_ref(), &a, t3, 10).await;
    assert_eq!(back.len(), 2);

    // A failed attempt waits for its retry time; a live claim of another is skipped.
    let failed = &back[0].command.id;
    let patient = RetryPolicy {
        max_attempts: 6,
        ..policy()
    };
    // The connector's own wait (a Retry-After) counts when it is longer than the backoff, up to
    // MAX_RETRY_AFTER; a shorter one does not shorten the backoff. (Last, the attempt is recorded
    // without one, and its retry time is the backoff's again.)
    let waits = [
        (Duration::from_secs(1), 40),
        (Duration::from_secs(120), 120),
        (
            Duration::from_secs(86_400),
            MAX_RETRY_AFTER.as_secs() as i64,
        ),
    ];
    for (retry_after, expected) in waits {
        let outcome = w
            .store
            .fail_attempt(
                failed,
                "throttled",
                Retry::AtLeast(retry_after),
                &patient,
                "connector:edge-a",
                t3,
            )
            .await
            .expect("fail");
        let AttemptOutcome::Retrying { at: later } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(
            later,
            t3 + chrono::Duration::seconds(expected),
            "{retry_after:?}"
        );
    }
    let outcome = w
        .store
        .fail_attempt(
            failed,
            "throttled",
            Retry::Backoff,
            &patient,
            "connector:edge-a",
            t3,
        )
        .await
        .expect("fail");
    let AttemptOutcome::Retrying { at } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        at,
        t3 + chrono::Duration::seconds(40),
        "after the third attempt"
    );
    assert!(
        claim(w.store.as_ref(), &b, at - chrono::Duration::seconds(1), 10)
            .await
            .is_empty()
    );
    let retried = claim(w.store.as_ref(), &b, at, 10).await;
    assert_eq!(&ids(&retried), std::slice::from_ref(failed));

    // Revoking a connector releases its claims and refuses its next claim.
    let other = &back[1].command.id;
    w.store
        .revoke_connector("edge-a", "admin@example.com", at)
        .await
        .expect("revoke");
    assert_eq!(
        &ids(&claim(w.store.as_ref(), &b, at, 10).await),
        std::slice::from_ref(other)
    );
    assert!(matches!(
        refusal(w.store.claim_commands(&a, &[AWS.into()], at, at, 10).await),
        Refusal::Unauthenticated(_)
    ));

    // Revokes go ahead of grants.
    w.store.release_claims(&b).await.expect("release");
    revoke(&w, &first, at).await;
    ask(&w, "bob@example.com", 2, at).await;
    let c = enrolled(w.store.as_ref(), "edge-c", at).await;
    let next = claim(w.store.as_ref(), &c, at, 10).await;
    let kinds: Vec<&str> = next.iter().map(|c| c.command.kind.as_str()).collect();
    assert_eq!(kinds, ["revoke", "grant", "grant"], "{next:?}");
    chain_is_intact(w.store.as_ref()).await;
}

async fn a_superseded_command_in_flight_holds_back_the_revoke(db: TestDb) {
    let w = world(db, 1).await;
    let t0 = stored_time(Utc::now());
    let request = ask(&w, "alice@example.com", 0, t0).await;
    let a = enrolled(w.store.as_ref(), "edge-a", t0).await;
    let b = enrolled(w.store.as_ref(), "edge-b", t0).await;
    let grant = claim(w.store.as_ref(), &a, t0, 10).await;
    assert_eq!(grant.len(), 1);
    // Revoked while a applies the grant: the grant command is superseded, a revoke is written.
    revoke(&w, &request, t0).await;
    assert!(
        claim(w.store.as_ref(), &b, t0, 10).await.is_empty(),
        "the revoke must not overtake the grant still being applied"
    );
    // a reports the grant: the revoke may go.
    complete(w.store.as_ref(), &grant[0].command.id, t0).await;
    let next = claim(w.store.as_ref(), &b, t0, 10).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].command.kind, "revoke");
    assert_eq!(next[0].expires_at, None);
}

async fn credentials_are_kept_while_active_shown_audited_and_wiped_at_revoke(db: TestDb) {
    let w = world(db, 2).await;
    let t0 = stored_time(Utc::now());
    let a = enrolled(w.store.as_ref(), "edge-a", t0).await;
    let sealed = |n: u8| SealedCredentials {
        nonce: vec![n; 12],
        sealed: vec![n; 40],
    };
    let request = ask(&w, "alice@example.com", 0, t0).await;
    let grant = claim(w.store.as_ref(), &a, t0, 10).await;
    assert!(
        w.store
            .access_credentials(&request, "alice@example.com", t0)
            .await
            .expect("read")
            .is_empty(),
        "nothing before the grant is applied"
    );
    let done = CommandResult::DoneWithCredentials(sealed(1));
    w.store
        .complete_command(&grant[0].command.id, &done, "connector:edge-a", t0)
        .await
        .expect("complete");
    let shown = w
        .store
        .access_credentials(&request, "alice@example.com", t0)
        .await
        .expect("read");
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].0.state, GrantState::Active);
    assert_eq!(shown[0].1, sealed(1));
    assert!(
        audit_actions(w.store.as_ref(), &request)
            .await
            .contains(&"credentials.viewed".to_string())
    );
    // The connector ran the grant again (its result was lost): the new password replaces the old.
    let again = CommandResult::DoneWithCredentials(sealed(2));
    w.store
        .complete_command(&grant[0].command.id, &again, "connector:edge-a", t0)
        .await
        .expect("complete again");
    let shown = w
        .store
        .access_credentials(&request, "alice@example.com", t0)
        .await
        .expect("read");
    assert_eq!(shown[0].1, sealed(2));

    revoke(&w, &request, t0).await;
    assert!(
        w.store
            .access_credentials(&request, "alice@example.com", t0)
            .await
            .expect("read")
            .is_empty(),
        "not shown once the access is being revoked"
    );
    let revoking = claim(w.store.as_ref(), &a, t0, 10).await;
    complete(w.store.as_ref(), &revoking[0].command.id, t0).await;
    assert!(
        stored_credentials(&w).await.is_empty(),
        "wiped when the revoke completed"
    );

    // A stale grant result (revoked before it was reported) stores nothing.
    let request = ask(&w, "bob@example.com", 1, t0).await;
    let grant = claim(w.store.as_ref(), &a, t0, 10).await;
    revoke(&w, &request, t0).await;
    w.store
        .complete_command(&grant[0].command.id, &done, "connector:edge-a", t0)
        .await
        .expect("complete stale");
    assert!(stored_credentials(&w).await.is_empty());
}

/// The grants with stored credentials, read behind the store's back.
async fn stored_credentials(w: &World) -> Vec<String> {
    w.db.fetch_strings("SELECT grant_id FROM grant_credentials")
        .await
}

/// With no automatic flow the reconciler reads only the resources of live grants; a grant whose
/// resource is gone is still found and revoked, and the others are kept. Inventory changes made
/// while a sync runs are reconciled once it ends.
async fn without_automatic_flows_reconcile_reads_only_granted_resources(db: TestDb) {
    let w = world(db, 3).await;
    let t0 = stored_time(Utc::now());
    let a = enrolled(w.store.as_ref(), "edge-a", t0).await;
    let alice = ask(&w, "alice@example.com", 0, t0).await;
    let bob = ask(&w, "bob@example.com", 1, t0).await;
    for command in claim(w.store.as_ref(), &a, t0, 10).await {
        complete(w.store.as_ref(), &command.command.id, t0).await;
    }
    assert_eq!(
        w.store.live_grant_resource_ids().await.expect("ids").len(),
        2
    );
    assert!(
        w.lifecycle
            .reconcile(t0)
            .await
            .expect("reconcile")
            .is_empty()
    );

    let kept: Vec<ResourceRecord> = (1..3).map(static_account).collect();
    w.store
        .replace_resources(STATIC_SOURCE, &kept, "admin@example.com", t0)
        .await
        .expect("resources");
    // While a sync runs, the periodic reconcile waits for its end rather than re-reading a
    // half-written inventory.
    let running = w.lifecycle.sync_running();
    let waited = w.lifecycle.reconcile_periodic(t0).await.expect("periodic");
    assert!(waited.is_empty(), "{waited:?}");
    drop(running);
    let change = w.lifecycle.reconcile_periodic(t0).await.expect("periodic");
    assert_eq!(change.revoked_requests, vec![alice.clone()]);
    let state = |id: String| {
        let store = w.store.clone();
        async move {
            store
                .get_request(&id)
                .await
                .expect("read")
                .expect("exists")
                .request
                .state
        }
    };
    assert_eq!(state(alice).await, RequestState::Revoking);
    assert_eq!(state(bob).await, RequestState::Active);
}

async fn failed_grants_retry_then_fail_the_grant(db: TestDb) {
    let w = world(db, 2).await;
    let t0 = stored_time(Utc::now());
    let request = ask(&w, "alice@example.com", 0, t0).await;
    let a = enrolled(w.store.as_ref(), "edge-a", t0).await;
    let mut at = t0;
    let mut outcomes = Vec::new();
    for attempt in 1..=3 {
        let held = claim(w.store.as_ref(), &a, at, 10).await;
        assert_eq!(held.len(), 1, "attempt {attempt}");
        assert_eq!(held[0].attempt, attempt);
        let outcome = fail(
            w.store.as_ref(),
            &held[0].command.id,
            "AccessDenied: throttled",
            true,
            at,
        )
        .await;
        if let AttemptOutcome::Retrying { at: next } = outcome {
            assert!(
                claim(
                    w.store.as_ref(),
                    &a,
                    next - chrono::Duration::seconds(1),
                    10
                )
                .await
                .is_empty()
            );
            at = next;
        }
        outcomes.push(outcome);
    }
    assert_eq!(
        outcomes,
        [
            AttemptOutcome::Retrying {
                at: t0 + chrono::Duration::seconds(10)
            },
            AttemptOutcome::Retrying {
                at: t0 + chrono::Duration::seconds(30)
            },
            AttemptOutcome::GrantFailed,
        ]
    );
    let view = w.lifecycle.get(&request).await.expect("request");
    assert_eq!(view.grants[0].state, GrantState::Failed);
    assert_eq!(view.request.state, RequestState::Failed);
    assert!(w.store.open_commands(10).await.expect("open").is_empty());
    assert_eq!(
        audit_actions(w.store.as_ref(), &request).await,
        [
            "request.created",
            "request.granting",
            "command.attempt_failed",
            "command.attempt_failed",
            "command.attempt_failed",
            "command.completed",
            "request.failed"
        ]
    );

    // A failure not worth retrying fails at once; a late report of it is ignored.
    let second = ask(&w, "bob@example.com", 1, at).await;
    let held = claim(w.store.as_ref(), &a, at, 10).await;
    let outcome = fail(
        w.store.as_ref(),
        &held[0].command.id,
        "no such permission set",
        false,
        at,
    )
    .await;
    assert_eq!(outcome, AttemptOutcome::GrantFailed);
    assert_eq!(
        w.lifecycle
            .get(&second)
            .await
            .expect("request")
            .request
            .state,
        RequestState::Failed
    );
    assert_eq!(
        fail(w.store.as_ref(), &held[0].command.id, "again", true, at).await,
        AttemptOutcome::Ignored
    );
    assert!(matches!(
        refusal(
            w.store
                .fail_attempt(
                    "nope",
                    "x",
                    Retry::Backoff,
                    &policy(),
                    "connector:edge-a",
                    at
                )
                .await
        ),
        Refusal::NotFound(_)
    ));
    chain_is_intact(w.store.as_ref()).await;
}

async fn failed_revokes_are_never_given_up(db: TestDb) {
    let w = world(db, 1).await;
    let t0 = stored_time(Utc::now());
    let request = ask(&w, "alice@example.com", 0, t0).await;
    let a = enrolled(w.store.as_ref(), "edge-a", t0).await;
    let grant = claim(w.store.as_ref(), &a, t0, 10).await;
    complete(w.store.as_ref(), &grant[0].command.id, t0).await;
    revoke(&w, &request, t0).await;

    let mut at = t0;
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let held = claim(w.store.as_ref(), &a, at, 10).await;
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].command.kind, "revoke");
        // Even a failure the connector thinks final is retried: access must not stay.
        let outcome = fail(
            w.store.as_ref(),
            &held[0].command.id,
            "InternalError",
            false,
            at,
        )
        .await;
        match outcome {
            AttemptOutcome::Retrying { at: next }
            | AttemptOutcome::RevokeFailed { next_at: next } => at = next,
            ref other => panic!("{other:?}"),
        }
        outcomes.push(outcome);
    }
    let hour = t0 + chrono::Duration::seconds(30) + chrono::Duration::hours(1);
    assert_eq!(
        outcomes,
        [
            AttemptOutcome::Retrying {
                at: t0 + chrono::Duration::seconds(10)
            },
            AttemptOutcome::Retrying {
                at: t0 + chrono::Duration::seconds(30)
            },
            AttemptOutcome::RevokeFailed { next_at: hour },
        ]
    );
    let filter = GrantFilter {
        resource_id: Some(account(0)),
        ..GrantFilter::default()
    };
    let grants = w
        .store
        .list_grants(&filter, None, 10)
        .await
        .expect("grants");
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].state, GrantState::RevokeFailed);
    assert!(!grants[0].state.is_live());
    let none = GrantFilter {
        resource_id: Some("acct-999".into()),
        ..GrantFilter::default()
    };
    assert!(
        w.store
            .list_grants(&none, None, 10)
            .await
            .expect("grants")
            .is_empty()
    );
    let view = w.lifecycle.get(&request).await.expect("request");
    assert_eq!(view.request.state, RequestState::Revoking);
    assert_eq!(
        w.store.open_commands(10).await.expect("open").len(),
        1,
        "the revoke stays open"
    );
    let record = integration(w.store.as_ref(), t0).await;
    assert_eq!(record.active_grant_count, 1, "revoke_failed still counts");

    // Tried again an hour later; it goes through and ends the request.
    assert!(
        claim(
            w.store.as_ref(),
            &a,
            hour - chrono::Duration::seconds(1),
            10
        )
        .await
        .is_empty()
    );
    let held = claim(w.store.as_ref(), &a, hour, 10).await;
    assert_eq!(held[0].attempt, 4);
    complete(w.store.as_ref(), &held[0].command.id, hour).await;
    let view = w.lifecycle.get(&request).await.expect("request");
    assert_eq!(view.request.state, RequestState::Revoked);
    assert_eq!(view.grants[0].state, GrantState::Revoked);
    assert!(w.store.open_commands(10).await.expect("open").is_empty());
    let actions = audit_actions(w.store.as_ref(), &request).await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "grant.revoke_failed")
            .count(),
        1
    );
    assert_eq!(actions.last().map(String::as_str), Some("request.revoked"));
    chain_is_intact(w.store.as_ref()).await;
}

async fn ingest_writes_only_what_changed(db: TestDb) {
    let store = db.store();
    let now = stored_time(Utc::now());
    enrolled(store.as_ref(), "edge-a", now).await;
    let page = vec![
        synced("root", None, &[]),
        synced("ou-1", Some("root"), &[]),
        synced("acct-1", Some("ou-1"), &[("env", "prod")]),
    ];
    let epoch = resources_epoch(store.as_ref()).await;
    let changes = ingest(store.as_ref(), AWS, &page).await.expect("ingest");
    assert_eq!(
        (changes.added, changes.changed, changes.unchanged),
        (3, 0, 0)
    );
    assert_eq!(resources_epoch(store.as_ref()).await, epoch + 1);
    assert_eq!(
        store
            .type_permissions(AWS, "aws.account")
            .await
            .expect("permissions"),
        ["ReadOnlyAccess"]
    );

    // The same page again: nothing written, no epoch, no audit event.
    let events = audit_count(store.as_ref()).await;
    let again = ingest(store.as_ref(), AWS, &page).await.expect("ingest");
    assert_eq!((again.added, again.changed, again.unchanged), (0, 0, 3));
    assert_eq!(resources_epoch(store.as_ref()).await, epoch + 1);
    assert_eq!(audit_count(store.as_ref()).await, events);

    // A tag change is a change.
    let mut changed = page.clone();
    changed[2].tags.insert("env".into(), "staging".into());
    let third = ingest(store.as_ref(), AWS, &changed).await.expect("ingest");
    assert_eq!((third.added, third.changed, third.unchanged), (0, 1, 2));
    assert_eq!(resources_epoch(store.as_ref()).await, epoch + 2);
    let stored = store
        .resources_by_id(&["acct-1".into()])
        .await
        .expect("read")
        .pop()
        .expect("stored");
    assert_eq!(stored.tags.get("env").map(String::as_str), Some("staging"));
    assert_eq!(stored.integration, AWS);
    assert_eq!(stored.source, AWS);
    assert_eq!(stored.owners, ["owner@example.com"]);
    assert_eq!(
        audit_actions(store.as_ref(), AWS).await,
        [
            "integration.announced",
            "inventory.page_applied",
            "inventory.page_applied"
        ]
    );
    chain_is_intact(store.as_ref()).await;
}

async fn ingest_computes_ancestors_and_keeps_others_rows(db: TestDb) {
    let w = world(db, 1).await;
    let store = w.store.as_ref();
    let now = stored_time(Utc::now());
    enrolled(store, "edge-a", now).await;
    // Child before parent, in one page.
    let page = vec![
        synced("acct-1", Some("ou-1"), &[]),
        synced("ou-1", Some("root"), &[]),
        synced("root", None, &[]),
    ];
    ingest(store, AWS, &page).await.expect("ingest");
    assert_eq!(ancestors(store, "acct-1").await, ["ou-1", "root"]);
    assert_eq!(ancestors(store, "ou-1").await, ["root"]);
    assert!(ancestors(store, "root").await.is_empty());

    // A parent stored earlier; a child arriving before its parent in another page.
    ingest(store, AWS, &[synced("acct-2", Some("ou-1"), &[])])
        .await
        .expect("ingest");
    assert_eq!(ancestors(store, "acct-2").await, ["ou-1", "root"]);
    ingest(store, AWS, &[synced("acct-3", Some("ou-2"), &[])])
        .await
        .expect("ingest");
    assert_eq!(ancestors(store, "acct-3").await, ["ou-2"]);
    ingest(store, AWS, &[synced("ou-2", Some("root"), &[])])
        .await
        .expect("ingest");
    assert_eq!(ancestors(store, "acct-3").await, ["ou-2", "root"]);

    // An OU moves: the accounts under it move with it, though they did not change.
    let epoch = resources_epoch(store).await;
    ingest(store, AWS, &[synced("ou-1", Some("ou-2"), &[])])
        .await
        .expect("ingest");
    assert_eq!(ancestors(store, "ou-1").await, ["ou-2", "root"]);
    assert_eq!(ancestors(store, "acct-1").await, ["ou-1", "ou-2", "root"]);
    assert_eq!(ancestors(store, "acct-2").await, ["ou-1", "ou-2", "root"]);
    assert_eq!(resources_epoch(store).await, epoch + 1);

    // A cycle is refused.
    assert!(matches!(
        refusal(ingest(store, AWS, &[synced("ou-2", Some("acct-1"), &[])]).await),
        Refusal::InvalidArgument(_)
    ));

    // Ids another integration or the static inventory keeps are refused, and nothing is stored.
    let b = enrolled(store, "edge-b", now).await;
    let gcp = Announcement {
        name: "gcp-org".into(),
        kind: "gcp".into(),
        capabilities: vec![],
    };
    store
        .announce_integrations(&b, &[gcp], now)
        .await
        .expect("announce");
    let epoch = resources_epoch(store).await;
    match refusal(
        ingest(
            store,
            "gcp-org",
            &[synced("new-one", None, &[]), synced("acct-1", None, &[])],
        )
        .await,
    ) {
        Refusal::InvalidArgument(message) => {
            assert!(
                message.contains("\"acct-1\"") && message.contains(AWS),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    match refusal(ingest(store, AWS, &[synced(&account(0), None, &[])]).await) {
        Refusal::InvalidArgument(message) => assert!(message.contains("static"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(
        store
            .resources_by_id(&["new-one".into()])
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(resources_epoch(store).await, epoch);
    // An integration nobody announced has no inventory.
    assert!(matches!(
        refusal(ingest(store, "nope", &[synced("x", None, &[])]).await),
        Refusal::NotFound(_)
    ));
    chain_is_intact(store).await;
}

async fn a_full_sync_deletes_what_it_did_not_see(db: TestDb) {
    let w = world(db, 1).await;
    let store = w.store.as_ref();
    let now = stored_time(Utc::now());
    enrolled(store, "edge-a", now).await;
    let page = vec![
        synced("root", None, &[]),
        synced("acct-1", Some("root"), &[]),
        synced("acct-2", Some("root"), &[]),
    ];
    ingest(store, AWS, &page).await.expect("ingest");
    let identities = vec![
        SyncedIdentity {
            external_id: "u1".into(),
            email: "Alice@Example.com".into(),
            display_name: "Alice".into(),
        },
        SyncedIdentity {
            external_id: "u2".into(),
            email: String::new(),
            display_name: "robot".into(),
        },
    ];
    let seen: SeenIds = ["root".to_string(), "acct-1".to_string()]
        .into_iter()
        .collect();

    // A failed sync deletes nothing and keeps the identities as they were.
    let epoch = resources_epoch(store).await;
    let failed = SyncEnd {
        integration: AWS,
        sync_id: "s1",
        full: true,
        error: Some("AccessDenied"),
        seen: Some(&seen),
        identities: &identities,
        groups: &[],
        memberships: &[],
    };
    assert_eq!(finish(store, &failed, now).await, 0);
    let record = integration(store, now).await;
    assert_eq!(record.last_error.as_deref(), Some("AccessDenied"));
    assert_eq!(record.last_sync_at, None);
    assert_eq!(record.identity_count, 0);
    assert_eq!(record.resource_count, 4, "three synced, one static");
    assert_eq!(resources_epoch(store).await, epoch);

    let done = SyncEnd {
        error: None,
        sync_id: "s2",
        ..failed.clone()
    };
    assert_eq!(finish(store, &done, now).await, 1);
    assert!(
        store
            .resources_by_id(&["acct-2".into()])
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(
        store
            .resources_by_id(&[account(0)])
            .await
            .expect("read")
            .len(),
        1,
        "static rows are not the sync's to delete"
    );
    assert_eq!(resources_epoch(store).await, epoch + 1);
    let record = integration(store, now).await;
    assert_eq!(record.last_error, None);
    assert_eq!(record.last_sync_at, Some(now));
    assert_eq!(record.identity_count, 2);
    assert_eq!(record.identity_emails, ["alice@example.com"]);
    assert_eq!(record.resource_count, 3);

    // An incremental sync deletes nothing; identities are replaced.
    let incremental = SyncEnd {
        full: false,
        seen: None,
        sync_id: "s3",
        identities: &identities[..1],
        ..done.clone()
    };
    assert_eq!(finish(store, &incremental, now).await, 0);
    let record = integration(store, now).await;
    assert_eq!(record.identity_count, 1);
    assert_eq!(record.resource_count, 3);
    let events = store.audit_events(0, 1000).await.expect("events");
    let finished: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e.action == "inventory.sync_finished")
        .map(|e| &e.details)
        .collect();
    assert_eq!(finished.len(), 3);
    assert_eq!(finished[1]["deleted_ids"], serde_json::json!(["acct-2"]));
    chain_is_intact(store).await;
}

fn identity(id: &str, email: &str) -> SyncedIdentity {
    SyncedIdentity {
        external_id: id.into(),
        email: email.into(),
        display_name: format!("name of {id}"),
    }
}

fn group(id: &str) -> SyncedGroup {
    SyncedGroup {
        external_id: id.into(),
        display_name: format!("group {id}"),
    }
}

fn member(group_id: &str, identity_id: &str) -> SyncedMembership {
    SyncedMembership {
        group_id: group_id.into(),
        identity_id: identity_id.into(),
    }
}

/// Each group's display name with its members' ids, in the order the store lists them.
async fn groups_of(
    store: &dyn Store,
    after: Option<&str>,
    limit: u32,
) -> Vec<(String, Vec<String>)> {
    store
        .list_integration_groups(AWS, after, limit)
        .await
        .expect("groups")
        .into_iter()
        .map(|g| {
            let members = g.members.into_iter().map(|m| m.external_id).collect();
            (g.display_name, members)
        })
        .collect()
}

async fn groups_and_memberships_are_replaced_by_each_completed_sync(db: TestDb) {
    let store = db.store();
    let store = store.as_ref();
    let now = stored_time(Utc::now());
    enrolled(store, "edge-a", now).await;
    let identities = vec![
        identity("u1", "zoe@example.com"),
        identity("u2", "alice@example.com"),
        identity("u3", ""),
    ];
    let groups = vec![group("g1"), group("g2"), group("g3")];
    let memberships = vec![
        member("g1", "u1"),
        member("g1", "u2"),
        member("g1", "u3"),
        member("g1", "u2"), // twice: kept once
        member("g2", "u2"),
        member("g2", "gone"),   // an identity the sync did not report
        member("g-gone", "u1"), // a group the sync did not report
    ];
    let seen = SeenIds::default();
    let end = SyncEnd {
        integration: AWS,
        sync_id: "s1",
        full: true,
        error: None,
        seen: Some(&seen),
        identities: &identities,
        groups: &groups,
        memberships: &memberships,
    };
    finish(store, &end, now).await;
    let record = integration(store, now).await;
    assert_eq!((record.identity_count, record.group_count), (3, 3));
    // Members by email, those without one last; a group without members is listed too.
    assert_eq!(
        groups_of(store, None, 10).await,
        [
            (
                "group g1".to_string(),
                vec!["u2".to_string(), "u1".into(), "u3".into()]
            ),
            ("group g2".to_string(), vec!["u2".to_string()]),
            ("group g3".to_string(), vec![]),
        ]
    );
    let listed = store
        .list_integration_groups(AWS, None, 1)
        .await
        .expect("groups");
    assert_eq!(listed[0].members[0].email, "alice@example.com");
    assert_eq!(listed[0].members[0].display_name, "name of u2");
    // Pages by external id.
    assert_eq!(groups_of(store, None, 1).await.len(), 1);
    assert_eq!(
        groups_of(store, Some("g1"), 10)
            .await
            .into_iter()
            .map(|(name, _)| name)
            .collect::<Vec<_>>(),
        ["group g2", "group g3"]
    );
    assert!(groups_of(store, Some("g3"), 10).await.is_empty());
    let events = store.audit_events(0, 1000).await.expect("events");
    let finished = events
        .iter()
        .rfind(|e| e.action == "inventory.sync_finished")
        .expect("audited");
    assert_eq!(finished.details["groups"], 3);
    assert_eq!(finished.details["memberships"], 4);
    assert_eq!(finished.details["memberships_left_out"], 2);

    // A failed sync keeps them as they were.
    let failed = SyncEnd {
        sync_id: "s2",
        error: Some("throttled"),
        groups: &[],
        memberships: &[],
        ..end.clone()
    };
    finish(store, &failed, now).await;
    assert_eq!(integration(store, now).await.group_count, 3);

    // The next completed sync replaces them: u2 left g1, g3 is gone, g4 is new.
    let groups = vec![group("g1"), group("g2"), group("g4")];
    let memberships = vec![member("g1", "u1"), member("g4", "u3")];
    let next = SyncEnd {
        sync_id: "s3",
        groups: &groups,
        memberships: &memberships,
        ..end.clone()
    };
    finish(store, &next, now).await;
    assert_eq!(
        groups_of(store, None, 10).await,
        [
            ("group g1".to_string(), vec!["u1".to_string()]),
            ("group g2".to_string(), vec![]),
            ("group g4".to_string(), vec!["u3".to_string()]),
        ]
    );

    // A connector that reports no groups (an older one) leaves the integration without them.
    let without = SyncEnd {
        sync_id: "s4",
        groups: &[],
        memberships: &[],
        ..end.clone()
    };
    finish(store, &without, now).await;
    assert_eq!(integration(store, now).await.group_count, 0);
    assert!(groups_of(store, None, 10).await.is_empty());

    // Groups belong to their integration.
    assert!(matches!(
        refusal(store.list_integration_groups("nope", None, 10).await),
        Refusal::NotFound(_)
    ));
    chain_is_intact(store).await;
}

async fn resources_are_listed_by_tags_and_search(db: TestDb) {
    let store = db.store();
    let now = stored_time(Utc::now());
    enrolled(store.as_ref(), "edge-a", now).await;
    let page = vec![
        synced("arn:1", None, &[("env", "prod"), ("team", "web")]),
        synced("arn:2", None, &[("env", "production"), ("team", "web")]),
        synced("arn:3", None, &[("env", "prod"), ("team", "data")]),
        synced("arn:4", None, &[("team", "prod")]),
        synced("arn:5", None, &[("weird\"key", "a,\"env\":\"prod\"")]),
    ];
    ingest(store.as_ref(), AWS, &page).await.expect("ingest");
    let list =
        |tags: &[(&str, &str)], search: Option<&'static str>, after: Option<&'static str>| {
            let store = store.clone();
            let tags: BTreeMap<String, String> = tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            async move {
                store
                    .list_resources(after, 2, None, None, &tags, search)
                    .await
                    .expect("list")
                    .into_iter()
                    .map(|r| r.id)
                    .collect::<Vec<_>>()
            }
        };
    assert_eq!(
        list(&[("env", "prod")], None, None).await,
        ["arn:1", "arn:3"]
    );
    assert_eq!(
        list(&[("env", "prod"), ("team", "data")], None, None).await,
        ["arn:3"]
    );
    assert_eq!(
        list(&[("env", "prod")], None, Some("arn:1")).await,
        ["arn:3"]
    );
    assert!(list(&[("env", "Prod")], None, None).await.is_empty());
    assert_eq!(
        list(&[("weird\"key", "a,\"env\":\"prod\"")], None, None).await,
        ["arn:5"]
    );
    // Case-insensitive, in the id or the name.
    assert_eq!(list(&[], Some("NAME OF ARN:4"), None).await, ["arn:4"]);
    assert_eq!(
        list(&[], Some("ARN:"), Some("arn:3")).await,
        ["arn:4", "arn:5"]
    );
    assert_eq!(list(&[("team", "web")], Some("2"), None).await, ["arn:2"]);
    assert_eq!(list(&[], Some(""), None).await, ["arn:1", "arn:2"]);
}

contract!(
    enrollment_tokens_work_once,
    integrations_are_announced_owned_and_synced_on_request,
    concurrent_claims_give_each_command_to_one_connector,
    claims_skip_live_claims_and_retries_and_release_gives_them_back,
    a_superseded_command_in_flight_holds_back_the_revoke,
    credentials_are_kept_while_active_shown_audited_and_wiped_at_revoke,
    without_automatic_flows_reconcile_reads_only_granted_resources,
    failed_grants_retry_then_fail_the_grant,
    failed_revokes_are_never_given_up,
    ingest_writes_only_what_changed,
    ingest_computes_ancestors_and_keeps_others_rows,
    a_full_sync_deletes_what_it_did_not_see,
    groups_and_memberships_are_replaced_by_each_completed_sync,
    resources_are_listed_by_tags_and_search,
);

/// 1,000,000 resources with 8 tags each, in pages of 1000, on SQLite: the first sync writes them
/// all, a resync of unchanged pages costs only the lookups. Heavy, so not run by default:
/// `cargo test --release -p latch-server --test connector_contract -- --ignored --nocapture`
/// (`LATCH_INGEST_COUNT` changes the number).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "about a minute of work; run with --ignored"]
async fn sqlite_ingests_a_million_resources_in_time() {
    let db = TestDb::sqlite().await;
    let store = db.store();
    let now = Utc::now();
    enrolled(store.as_ref(), "edge-a", now).await;
    let count: usize = std::env::var("LATCH_INGEST_COUNT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let page_of = |first: usize| -> Vec<SyncedResource> {
        (first..(first + 1000).min(count))
            .map(|n| {
                if n == 0 {
                    return synced("org-root", None, &[]);
                }
                if n <= 50 {
                    return synced(&format!("ou-{n}"), Some("org-root"), &[]);
                }
                let mut resource = synced(
                    &format!("arn:aws:ec2:eu-west-1:123456789012:instance/i-{n:017x}"),
                    Some(&format!("ou-{}", n % 50 + 1)),
                    &[],
                );
                for k in 0..8 {
                    resource
                        .tags
                        .insert(format!("tag-key-{k}"), format!("value-{}-{}", k, n % 97));
                }
                resource
            })
            .collect()
    };
    let started = std::time::Instant::now();
    let mut added = 0;
    for first in (0..count).step_by(1000) {
        added += ingest(store.as_ref(), AWS, &page_of(first))
            .await
            .expect("ingest")
            .added;
    }
    let first_sync = started.elapsed();
    assert_eq!(added, count as u64);
    let started = std::time::Instant::now();
    let resync_pages = (count / 1000).clamp(1, 100);
    for page in 0..resync_pages {
        let changes = ingest(store.as_ref(), AWS, &page_of(page * 1000))
            .await
            .expect("ingest");
        assert_eq!(changes.unchanged as usize, page_of(page * 1000).len());
    }
    let resync = started.elapsed();
    // A full sync that no longer sees the last page deletes it.
    let last = (count - 1) / 1000 * 1000;
    let mut seen = SeenIds::with_capacity_and_hasher(count, Default::default());
    for first in (0..last).step_by(1000) {
        seen.extend(page_of(first).into_iter().map(|r| r.id));
    }
    let started = std::time::Instant::now();
    let end = SyncEnd {
        integration: AWS,
        sync_id: "full",
        full: true,
        error: None,
        seen: Some(&seen),
        identities: &[],
        groups: &[],
        memberships: &[],
    };
    let deleted = finish(store.as_ref(), &end, Utc::now()).await;
    let finish = started.elapsed();
    assert_eq!(deleted as usize, count - last);
    println!(
        "{count} resources: first sync {first_sync:?}; unchanged resync {:?} per page; \
         full sync end deleting {deleted} in {finish:?}",
        resync / resync_pages as u32
    );
    assert_eq!(
        ancestors(
            store.as_ref(),
            "arn:aws:ec2:eu-west-1:123456789012:instance/i-00000000000000033"
        )
        .await,
        ["ou-2", "org-root"]
    );
    assert!(
        first_sync < Duration::from_secs(90),
        "first sync took {first_sync:?}"
    );
}
