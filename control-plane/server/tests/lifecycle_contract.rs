//! The request lifecycle, end to end below the API: requests decided by the engine, approvals,
//! grants and the outbox, the clock, expiry, revocation, extension, automatic flows and the audit
//! chain. Every test runs on SQLite and on a fresh PostgreSQL database.
//!
//! No connector exists yet; `confirm` plays its part by reporting results through the same store
//! call the connector hub uses.

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use latch_core::request::RequestState;
use latch_server::lifecycle::{Actor, Ask, Lifecycle, STATIC_SOURCE, Settings};
use latch_server::store::{
    CommandResult, GrantState, NewRequest, Refusal, RequestFilter, RequestItem, RequestRecord,
    RequestView, ResourceRecord, Store, StoreError,
};

use common::{TestDb, apply_flows, audit_actions, chain_is_intact, refusal, set_directory};

const FLOWS: &str = r#"
name: reporting-read
kind: self_serve
requesters: { any_of: [{ group: engineering }] }
targets:
  - integration: pg-main
    resource_types: [postgres.database]
    include: { names: [reporting, app] }
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
    permissions: [ReadOnlyAccess]
duration: { default: 1h, max: 4h }
approval:
  mode: all_of
  groups:
    - { approvers: [manager], min: 1 }
    - { approvers: [{ group: sre-leads }, resource_owner], min: 1 }
---
name: oncall-db-write
kind: automatic
requesters: { any_of: [{ on_call: pagerduty/primary-sre }] }
targets:
  - integration: pg-main
    resource_types: [postgres.database]
    include: { names: [app] }
    permissions: [write]
---
name: sre-db-write
kind: self_serve
requesters: { any_of: [{ group: sre }] }
targets:
  - integration: pg-main
    resource_types: [postgres.database]
    include: { names: [app] }
    permissions: [write]
duration: { default: 1h, max: 4h }
approval: { mode: auto }
"#;

fn people(carol_shift: &str) -> String {
    format!(
        r#"
users:
  - {{ email: alice@example.com, manager: mallory@example.com, groups: [engineering] }}
  - {{ email: bob@example.com, manager: mallory@example.com, groups: [sre, sre-leads] }}
  - {{ email: carol@example.com, manager: mallory@example.com, groups: [sre] }}
  - {{ email: mallory@example.com, groups: [engineering] }}
  - {{ email: contractor@example.com, manager: mallory@example.com, groups: [engineering] }}
groups:
  - {{ name: engineering, groups: [sre] }}
on_call:
  - schedule: pagerduty/primary-sre
    shifts:
      - {{ user: carol@example.com, {carol_shift} }}
"#
    )
}

const CAROL_ALWAYS: &str = r#"from: "2020-01-01T00:00:00Z", to: "2040-01-01T00:00:00Z""#;

const PROD: &str = "111111111111";
const REPORTING: &str = "postgres://db/reporting";
const APP: &str = "postgres://db/app";

fn resource(
    id: &str,
    integration: &str,
    kind: &str,
    name: &str,
    tags: &[(&str, &str)],
    owners: &[&str],
) -> ResourceRecord {
    let now = Utc::now();
    ResourceRecord {
        id: id.into(),
        integration: integration.into(),
        resource_type: kind.into(),
        name: name.into(),
        parent: None,
        ancestors: Vec::new(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        owners: owners.iter().map(|o| o.to_string()).collect(),
        source: STATIC_SOURCE.into(),
        first_seen: now,
        last_seen: now,
    }
}

fn inventory(prod_env: &str) -> Vec<ResourceRecord> {
    vec![
        resource(
            PROD,
            "aws-prod",
            "aws.account",
            "prod-web",
            &[("env", prod_env)],
            &["bob@example.com"],
        ),
        resource(
            REPORTING,
            "pg-main",
            "postgres.database",
            "reporting",
            &[],
            &[],
        ),
        resource(APP, "pg-main", "postgres.database", "app", &[], &[]),
    ]
}

struct World {
    db: TestDb,
    store: Arc<dyn Store>,
    lifecycle: Lifecycle,
}

async fn world(db: TestDb) -> World {
    let store = db.store();
    set_directory(store.as_ref(), &people(CAROL_ALWAYS)).await;
    apply_flows(store.as_ref(), FLOWS).await;
    store
        .replace_resources(
            STATIC_SOURCE,
            &inventory("prod"),
            "admin@example.com",
            Utc::now(),
        )
        .await
        .expect("resources");
    let lifecycle = Lifecycle::new(
        store.clone(),
        Settings {
            pending_ttl: Duration::from_secs(3600),
            ..Settings::default()
        },
    );
    World {
        db,
        store,
        lifecycle,
    }
}

fn user(email: &str) -> Actor {
    Actor {
        email: email.into(),
        admin: false,
    }
}

fn ask(resource: &str, permission: &str, duration: Option<u64>) -> Ask {
    Ask {
        items: vec![RequestItem {
            resource_id: resource.into(),
            permission: permission.into(),
        }],
        duration: duration.map(Duration::from_secs),
        justification: "testing".into(),
    }
}

/// Plays the connector: reports every open command as done at `at`; returns how many of each kind.
async fn confirm(store: &dyn Store, at: DateTime<Utc>) -> (usize, usize) {
    let mut counts = (0, 0);
    for command in store.open_commands(1000).await.expect("commands") {
        match command.kind.as_str() {
            "grant" => counts.0 += 1,
            _ => counts.1 += 1,
        }
        store
            .complete_command(&command.id, &CommandResult::Done, "connector", at)
            .await
            .expect("complete");
    }
    counts
}

async fn request(world: &World, id: &str) -> RequestView {
    world.lifecycle.get(id).await.expect("request")
}

// ---------------------------------------------------------------------------------------------

async fn granted_requests_wait_in_the_outbox_and_the_clock_starts_when_active(db: TestDb) {
    let w = world(db).await;
    let t0 = Utc::now();
    let asked = w
        .lifecycle
        .create(&user("alice@example.com"), ask(REPORTING, "read", None), t0)
        .await
        .expect("create");
    let id = asked.view.request.id.clone();
    assert_eq!(asked.view.request.state, RequestState::Granting);
    assert_eq!(asked.view.grants.len(), 1);
    assert_eq!(asked.view.grants[0].state, GrantState::Granting);
    assert_eq!(
        asked.view.request.expires_at, None,
        "no clock before the grant is active"
    );

    // Nothing takes the command: it stays in the outbox, and the grant stays granting.
    let open = w.store.open_commands(10).await.expect("commands");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].kind, "grant");
    assert_eq!(open[0].payload["identity"], "alice@example.com");
    assert_eq!(open[0].payload["resource_id"], REPORTING);
    assert_eq!(
        w.store
            .sweep_expired(t0 + chrono::Duration::days(30), 100)
            .await
            .expect("sweep")
            .expired_requests,
        0
    );
    assert_eq!(request(&w, &id).await.request.state, RequestState::Granting);

    // The connector confirms an hour later: the 8h clock starts then.
    let t1 = t0 + chrono::Duration::hours(1);
    assert_eq!(confirm(w.store.as_ref(), t1).await, (1, 0));
    let view = request(&w, &id).await;
    assert_eq!(view.request.state, RequestState::Active);
    let activated = view.request.activated_at.expect("activated");
    assert!(activated >= t1 - chrono::Duration::seconds(1));
    assert_eq!(
        view.request.expires_at,
        Some(activated + chrono::Duration::hours(8))
    );
    assert_eq!(view.grants[0].state, GrantState::Active);
    assert_eq!(view.grants[0].expires_at, view.request.expires_at);
    assert!(
        w.store
            .open_commands(10)
            .await
            .expect("commands")
            .is_empty()
    );
    assert_eq!(
        audit_actions(w.store.as_ref(), &id).await,
        [
            "request.created",
            "request.granting",
            "command.completed",
            "request.active"
        ]
    );
    chain_is_intact(w.store.as_ref()).await;
}

async fn expiry_revokes_ahead_of_grants_and_ends_the_request(db: TestDb) {
    let w = world(db).await;
    let t0 = Utc::now();
    let first = w
        .lifecycle
        .create(
            &user("alice@example.com"),
            ask(REPORTING, "read", Some(600)),
            t0,
        )
        .await
        .expect("create");
    confirm(w.store.as_ref(), t0).await;
    let expires = request(&w, &first.view.request.id)
        .await
        .request
        .expires_at
        .expect("expiry");
    // A later request leaves a grant command waiting.
    let mallory = w
        .lifecycle
        .create(&user("mallory@example.com"), ask(APP, "read", None), t0)
        .await
        .expect("create")
        .view
        .request
        .id;

    let early = w
        .store
        .sweep_expired(expires - chrono::Duration::seconds(1), 100)
        .await
        .expect("sweep");
    assert_eq!(early.expired_requests, 0);
    let due = w.store.sweep_expired(expires, 100).await.expect("sweep");
    assert_eq!(due.expired_requests, 1);
    assert_eq!(
        w.store
            .sweep_expired(expires, 100)
            .await
            .expect("sweep")
            .expired_requests,
        0,
        "handled once"
    );
    let view = request(&w, &first.view.request.id).await;
    assert_eq!(view.request.state, RequestState::Revoking);
    assert_eq!(view.grants[0].desired, "absent");
    assert_eq!(view.grants[0].generation, 2);

    let open = w.store.open_commands(10).await.expect("commands");
    let kinds: Vec<&str> = open.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(kinds, ["revoke", "grant"], "revokes go ahead of grants");
    assert_eq!(open[0].generation, 2);

    confirm(w.store.as_ref(), expires).await;
    let view = request(&w, &first.view.request.id).await;
    assert_eq!(view.request.state, RequestState::Expired);
    assert_eq!(view.grants[0].state, GrantState::Expired);
    assert_eq!(view.grants[0].observed, "absent");
    // The same confirmation made mallory's access active: hers is the next expiry.
    assert_eq!(
        w.store.next_expiry().await.expect("next"),
        request(&w, &mallory).await.request.expires_at
    );
    chain_is_intact(w.store.as_ref()).await;
}

async fn approvals_are_counted_per_person_and_bound_to_the_request(db: TestDb) {
    let w = world(db).await;
    let now = Utc::now();
    let asked = w
        .lifecycle
        .create(
            &user("alice@example.com"),
            ask(PROD, "ReadOnlyAccess", None),
            now,
        )
        .await
        .expect("create");
    let id = asked.view.request.id.clone();
    assert_eq!(asked.view.request.state, RequestState::Pending);
    assert!(asked.view.request.pending_expires_at.is_some());

    // No self-approval, not even through a different case of the address.
    let own = refusal(
        w.lifecycle
            .approve(&user("Alice@Example.com"), &id, "", now)
            .await,
    );
    assert!(
        matches!(own, Refusal::PermissionDenied(ref m) if m.contains("requester")),
        "{own:?}"
    );
    let outsider = refusal(
        w.lifecycle
            .approve(&user("carol@example.com"), &id, "", now)
            .await,
    );
    assert!(
        matches!(outsider, Refusal::PermissionDenied(ref m) if m.contains("not an approver")),
        "{outsider:?}"
    );

    // The manager's approval fills one group; the same person again is refused.
    let view = w
        .lifecycle
        .approve(&user("mallory@example.com"), &id, "ok", now)
        .await
        .expect("approve");
    assert_eq!(view.request.state, RequestState::Pending);
    let twice = refusal(
        w.lifecycle
            .approve(&user("mallory@example.com"), &id, "", now)
            .await,
    );
    assert!(
        matches!(twice, Refusal::FailedPrecondition(ref m) if m.contains("already answered")),
        "{twice:?}"
    );

    // An approval given for a different version of the request does not count.
    w.db.execute("UPDATE approvals SET request_digest = 'an-older-request'")
        .await;
    let view = w
        .lifecycle
        .approve(&user("bob@example.com"), &id, "", now)
        .await
        .expect("approve");
    assert_eq!(
        view.request.state,
        RequestState::Pending,
        "mallory's approval was for another digest"
    );
    assert!(view.approvals.iter().all(|a| a.request_id == id));

    // Approvals bound to the request as it is complete the plan, in either order.
    let fresh = w
        .lifecycle
        .create(
            &user("alice@example.com"),
            ask(PROD, "ReadOnlyAccess", Some(1800)),
            now,
        )
        .await
        .expect("create");
    let fid = fresh.view.request.id.clone();
    w.lifecycle
        .approve(&user("bob@example.com"), &fid, "", now)
        .await
        .expect("approve");
    let done = w
        .lifecycle
        .approve(&user("mallory@example.com"), &fid, "", now)
        .await
        .expect("approve");
    assert_eq!(done.request.state, RequestState::Granting);
    assert_eq!(done.grants.len(), 1);
    let late = refusal(
        w.lifecycle
            .approve(&user("bob@example.com"), &fid, "", now)
            .await,
    );
    assert!(matches!(late, Refusal::FailedPrecondition(_)), "{late:?}");
    let actions = audit_actions(w.store.as_ref(), &fid).await;
    assert_eq!(
        actions,
        [
            "request.created",
            "approval.given",
            "approval.given",
            "request.approved",
            "request.granting"
        ]
    );
}

async fn approvals_need_the_flow_the_request_was_decided_by(db: TestDb) {
    let w = world(db).await;
    let now = Utc::now();
    let id = w
        .lifecycle
        .create(
            &user("alice@example.com"),
            ask(PROD, "ReadOnlyAccess", None),
            now,
        )
        .await
        .expect("create")
        .view
        .request
        .id;
    // The flow changes while the request waits.
    apply_flows(
        w.store.as_ref(),
        &FLOWS.replace(
            "duration: { default: 1h, max: 4h }\napproval:\n  mode: all_of",
            "duration: { default: 1h, max: 2h }\napproval:\n  mode: all_of",
        ),
    )
    .await;
    assert_eq!(
        w.store
            .get_flow("prod-readonly", None)
            .await
            .expect("get")
            .expect("flow")
            .version,
        2
    );
    let stale = refusal(
        w.lifecycle
            .approve(&user("mallory@example.com"), &id, "", now)
            .await,
    );
    assert!(
        matches!(stale, Refusal::FailedPrecondition(ref m) if m.contains("changed after")),
        "{stale:?}"
    );
    let view = request(&w, &id).await;
    assert!(
        view.approvals.is_empty(),
        "a refused approval is not recorded"
    );
    assert_eq!(view.request.state, RequestState::Pending);
}

async fn denial_needs_a_reason_and_an_approver(db: TestDb) {
    let w = world(db).await;
    let now = Utc::now();
    let id = w
        .lifecycle
        .create(
            &user("alice@example.com"),
            ask(PROD, "ReadOnlyAccess", None),
            now,
        )
        .await
        .expect("create")
        .view
        .request
        .id;
    let blank = refusal(
        w.lifecycle
            .deny(&user("mallory@example.com"), &id, "  ", now)
            .await,
    );
    assert!(
        matches!(blank, Refusal::InvalidArgument(ref m) if m.starts_with("reason:")),
        "{blank:?}"
    );
    let outsider = refusal(
        w.lifecycle
            .deny(&user("carol@example.com"), &id, "no", now)
            .await,
    );
    assert!(
        matches!(outsider, Refusal::PermissionDenied(_)),
        "{outsider:?}"
    );
    assert_eq!(
        request(&w, &id).await.request.state,
        RequestState::Pending,
        "refusals change nothing"
    );
    let view = w
        .lifecycle
        .deny(&user("mallory@example.com"), &id, "not today", now)
        .await
        .expect("deny");
    assert_eq!(view.request.state, RequestState::Denied);
    assert!(
        view.request
            .end_reason
            .as_deref()
            .is_some_and(|r| r.contains("not today"))
    );
    assert!(
        w.store
            .open_commands(10)
            .await
            .expect("commands")
            .is_empty()
    );
}

async fn refused_and_invalid_requests(db: TestDb) {
    let w = world(db).await;
    let now = Utc::now();
    // The engine refuses: stored as denied with its reasons, nothing to grant.
    let denied = w
        .lifecycle
        .create(
            &user("contractor@example.com"),
            ask(PROD, "ReadOnlyAccess", None),
            now,
        )
        .await
        .expect("create");
    assert_eq!(denied.view.request.state, RequestState::Denied);
    assert!(denied.view.grants.is_empty());
    assert!(denied.view.request.end_reason.is_some());
    // Bad input is refused with the field and the value, and nothing is stored.
    let unknown = refusal(
        w.lifecycle
            .create(
                &user("alice@example.com"),
                ask("no-such-thing", "read", None),
                now,
            )
            .await,
    );
    assert!(
        matches!(unknown, Refusal::InvalidArgument(ref m) if m.contains("items[0].resource_id") && m.contains("no-such-thing")),
        "{unknown:?}"
    );
    let zero = refusal(
        w.lifecycle
            .create(
                &user("alice@example.com"),
                ask(REPORTING, "read", Some(0)),
                now,
            )
            .await,
    );
    assert!(
        matches!(zero, Refusal::InvalidArgument(ref m) if m.starts_with("duration:")),
        "{zero:?}"
    );
    let all = w
        .store
        .list_requests(&RequestFilter::default(), None, 100)
        .await
        .expect("list");
    assert_eq!(all.len(), 1, "only the denied request was stored");
}

async fn cancel_and_revoke_rules(db: TestDb) {
    let w = world(db).await;
    let now = Utc::now();
    let pending = w
        .lifecycle
        .create(
            &user("alice@example.com"),
            ask(PROD, "ReadOnlyAccess", None),
            now,
        )
        .await
        .expect("create")
        .view
        .request
        .id;
    let other = refusal(
        w.lifecycle
            .cancel(&user("mallory@example.com"), &pending, now)
            .await,
    );
    assert!(matches!(other, Refusal::PermissionDenied(_)), "{other:?}");
    assert_eq!(
        w.lifecycle
            .cancel(&user("alice@example.com"), &pending, now)
            .await
            .expect("cancel")
            .request
            .state,
        RequestState::Cancelled
    );

    let active = w
        .lifecycle
        .create(
            &user("alice@example.com"),
            ask(REPORTING, "read", None),
            now,
        )
        .await
        .expect("create")
        .view
        .request
        .id;
    confirm(w.store.as_ref(), now).await;
    let cancel_active = refusal(
        w.lifecycle
            .cancel(&user("alice@example.com"), &active, now)
            .await,
    );
    assert!(
        matches!(cancel_active, Refusal::FailedPrecondition(ref m) if m.contains("latch revoke")),
        "{cancel_active:?}"
    );
    let stranger = refusal(
        w.lifecycle
            .revoke(&user("carol@example.com"), &active, "", now)
            .await,
    );
    assert!(
        matches!(stranger, Refusal::PermissionDenied(_)),
        "{stranger:?}"
    );
    let admin = Actor {
        email: "admin@example.com".into(),
        admin: true,
    };
    let view = w
        .lifecycle
        .revoke(&admin, &active, "incident over", now)
        .await
        .expect("revoke");
    assert_eq!(view.request.state, RequestState::Revoking);
    assert_eq!(confirm(w.store.as_ref(), now).await, (0, 1));
    let view = request(&w, &active).await;
    assert_eq!(view.request.state, RequestState::Revoked);
    assert_eq!(view.grants[0].state, GrantState::Revoked);
    assert_eq!(
        view.request.end_reason.as_deref(),
        Some("revoked by admin@example.com: incident over")
    );
}

async fn asking_again_extends_within_the_flow_max(db: TestDb) {
    let w = world(db).await;
    let t0 = Utc::now();
    let alice = user("alice@example.com");
    let id = w
        .lifecycle
        .create(&alice, ask(REPORTING, "read", Some(3600)), t0)
        .await
        .expect("create")
        .view
        .request
        .id;
    confirm(w.store.as_ref(), t0).await;
    let activated = request(&w, &id).await.request.activated_at.expect("active");

    let t1 = t0 + chrono::Duration::minutes(30);
    let again = w
        .lifecycle
        .create(&alice, ask(REPORTING, "read", Some(4 * 3600)), t1)
        .await
        .expect("again");
    assert!(again.extended);
    assert_eq!(
        again.view.request.id, id,
        "the held request is extended, no new one"
    );
    assert_eq!(
        again.view.request.expires_at,
        Some(
            chrono::DurationRound::duration_trunc(t1, chrono::Duration::microseconds(1))
                .expect("trunc")
                + chrono::Duration::hours(4)
        )
    );
    // The flow's maximum (1 day) counts from activation.
    let capped = w
        .lifecycle
        .create(&alice, ask(REPORTING, "read", Some(24 * 3600)), t1)
        .await
        .expect("capped");
    assert_eq!(
        capped.view.request.expires_at,
        Some(activated + chrono::Duration::days(1))
    );
    assert_eq!(
        w.store
            .list_requests(&RequestFilter::default(), None, 10)
            .await
            .expect("list")
            .len(),
        1
    );
    assert!(
        w.store
            .open_commands(10)
            .await
            .expect("commands")
            .is_empty(),
        "nothing to send for an extension"
    );

    // `extend` goes through the flow: past the maximum it is refused with the engine's reason.
    let over = refusal(
        w.lifecycle
            .extend(&alice, &id, Duration::from_secs(600), "", t1)
            .await,
    );
    assert!(
        matches!(over, Refusal::FailedPrecondition(ref m) if m.contains("do not allow")),
        "{over:?}"
    );
    let stranger = refusal(
        w.lifecycle
            .extend(
                &user("mallory@example.com"),
                &id,
                Duration::from_secs(60),
                "",
                t1,
            )
            .await,
    );
    assert!(
        matches!(stranger, Refusal::PermissionDenied(_)),
        "{stranger:?}"
    );
    assert!(
        audit_actions(w.store.as_ref(), &id)
            .await
            .contains(&"request.extended".to_string())
    );
}

async fn extend_adds_time_through_the_flow(db: TestDb) {
    let w = world(db).await;
    let t0 = Utc::now();
    let carol = user("carol@example.com");
    let id = w
        .lifecycle
        .create(&carol, ask(REPORTING, "read", Some(3600)), t0)
        .await
        .expect("create")
        .view
        .request
        .id;
    confirm(w.store.as_ref(), t0).await;
    let before = request(&w, &id).await.request;
    let view = w
        .lifecycle
        .extend(&carol, &id, Duration::from_secs(1800), "", t0)
        .await
        .expect("extend");
    assert_eq!(view.request.state, RequestState::Active);
    assert_eq!(
        view.request.expires_at,
        before.expires_at.map(|e| e + chrono::Duration::minutes(30))
    );
    assert_eq!(view.grants[0].expires_at, view.request.expires_at);
}

async fn pending_requests_time_out(db: TestDb) {
    let w = world(db).await;
    let now = Utc::now();
    let id = w
        .lifecycle
        .create(
            &user("alice@example.com"),
            ask(PROD, "ReadOnlyAccess", None),
            now,
        )
        .await
        .expect("create")
        .view
        .request
        .id;
    assert_eq!(
        w.store
            .sweep_expired(now + chrono::Duration::minutes(59), 100)
            .await
            .expect("sweep")
            .timed_out_requests,
        0
    );
    assert_eq!(
        w.store
            .sweep_expired(now + chrono::Duration::minutes(61), 100)
            .await
            .expect("sweep")
            .timed_out_requests,
        1
    );
    let view = request(&w, &id).await;
    assert_eq!(view.request.state, RequestState::Expired);
    let late = refusal(
        w.lifecycle
            .approve(&user("mallory@example.com"), &id, "", now)
            .await,
    );
    assert!(matches!(late, Refusal::FailedPrecondition(_)), "{late:?}");
}

async fn a_failed_grant_fails_the_request_and_leaves_nothing_applied(db: TestDb) {
    let w = world(db).await;
    let now = Utc::now();
    let two = Ask {
        items: vec![
            RequestItem {
                resource_id: REPORTING.into(),
                permission: "read".into(),
            },
            RequestItem {
                resource_id: APP.into(),
                permission: "read".into(),
            },
        ],
        duration: None,
        justification: String::new(),
    };
    let id = w
        .lifecycle
        .create(&user("alice@example.com"), two, now)
        .await
        .expect("create")
        .view
        .request
        .id;
    let commands = w.store.open_commands(10).await.expect("commands");
    assert_eq!(commands.len(), 2);
    w.store
        .complete_command(&commands[0].id, &CommandResult::Done, "connector", now)
        .await
        .expect("done");
    w.store
        .complete_command(
            &commands[1].id,
            &CommandResult::Failed("role missing".into()),
            "connector",
            now,
        )
        .await
        .expect("failed");
    let view = request(&w, &id).await;
    assert_eq!(view.request.state, RequestState::Failed);
    assert!(
        view.request
            .end_reason
            .as_deref()
            .is_some_and(|r| r.contains("role missing"))
    );
    // The grant that did succeed is taken back.
    let open = w.store.open_commands(10).await.expect("commands");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].kind, "revoke");
    assert_eq!(open[0].grant_id, commands[0].grant_id);
}

async fn results_are_idempotent_and_fenced_by_generation(db: TestDb) {
    let w = world(db).await;
    let now = Utc::now();
    let id = w
        .lifecycle
        .create(
            &user("alice@example.com"),
            ask(REPORTING, "read", None),
            now,
        )
        .await
        .expect("create")
        .view
        .request
        .id;
    let grant_cmd = w.store.open_commands(10).await.expect("commands").remove(0);
    // Revoked before the connector got to it: the grant command is superseded.
    let admin = Actor {
        email: "admin@example.com".into(),
        admin: true,
    };
    w.lifecycle
        .revoke(&admin, &id, "changed my mind", now)
        .await
        .expect("revoke");
    let open = w.store.open_commands(10).await.expect("commands");
    assert_eq!(
        open.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(),
        ["revoke"]
    );
    // A late result for the stale grant command changes nothing.
    w.store
        .complete_command(&grant_cmd.id, &CommandResult::Done, "connector", now)
        .await
        .expect("stale");
    assert_eq!(request(&w, &id).await.grants[0].state, GrantState::Revoking);
    // The revoke result, delivered twice, ends the request once.
    w.store
        .complete_command(&open[0].id, &CommandResult::Done, "connector", now)
        .await
        .expect("done");
    w.store
        .complete_command(&open[0].id, &CommandResult::Done, "connector", now)
        .await
        .expect("again");
    let view = request(&w, &id).await;
    assert_eq!(view.request.state, RequestState::Revoked);
    let ends = audit_actions(w.store.as_ref(), &id)
        .await
        .iter()
        .filter(|a| *a == "request.revoked")
        .count();
    assert_eq!(ends, 1);
}

async fn automatic_flows_follow_the_directory(db: TestDb) {
    let w = world(db).await;
    let now = Utc::now();
    let first = w.lifecycle.reconcile(now).await.expect("reconcile");
    assert_eq!(first.grant.len(), 1, "carol is on shift");
    assert_eq!(first.grant[0].identity, "carol@example.com");
    assert_eq!(first.grant[0].permission, "write");
    assert!(
        w.lifecycle.reconcile(now).await.expect("again").is_empty(),
        "nothing changes twice"
    );
    confirm(w.store.as_ref(), now).await;

    // Carol's shift ended an hour ago and bob's started: bob gains write, carol loses it.
    let shifts = format!(
        "{}      - {{ user: bob@example.com, from: \"2020-01-01T00:00:00Z\", to: \"2040-01-01T00:00:00Z\" }}\n",
        people(&format!(
            "from: \"2020-01-01T00:00:00Z\", to: \"{}\"",
            (now - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ")
        ))
    );
    set_directory(w.store.as_ref(), &shifts).await;
    let change = w.lifecycle.reconcile(now).await.expect("reconcile");
    assert_eq!(
        change
            .grant
            .iter()
            .map(|g| g.identity.as_str())
            .collect::<Vec<_>>(),
        ["bob@example.com"]
    );
    assert_eq!(change.revoke.len(), 1);
    assert!(
        change.revoke[0]
            .1
            .contains("no longer entitles carol@example.com"),
        "{:?}",
        change.revoke
    );
    let open = w.store.open_commands(10).await.expect("commands");
    let summary: Vec<(String, String)> = open
        .iter()
        .map(|c| {
            (
                c.kind.clone(),
                c.payload["identity"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("revoke".to_string(), "carol@example.com".to_string()),
            ("grant".to_string(), "bob@example.com".to_string())
        ]
    );
}

async fn shifts_start_and_end_on_time_without_a_directory_change(db: TestDb) {
    let w = world(db).await;
    let now = Utc::now();
    let at = |minutes: i64| {
        (now + chrono::Duration::minutes(minutes))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    // Carol's shift runs from 10 to 20 minutes from now.
    set_directory(
        w.store.as_ref(),
        &people(&format!("from: \"{}\", to: \"{}\"", at(10), at(20))),
    )
    .await;
    let early = w
        .lifecycle
        .reconcile_periodic(now)
        .await
        .expect("reconcile");
    assert!(early.is_empty(), "not on shift yet: {early:?}");
    let during = w
        .lifecycle
        .reconcile_periodic(now + chrono::Duration::minutes(11))
        .await
        .expect("reconcile");
    assert_eq!(during.grant.len(), 1, "the shift started");
    let after = w
        .lifecycle
        .reconcile_periodic(now + chrono::Duration::minutes(21))
        .await
        .expect("reconcile");
    assert_eq!(after.revoke.len(), 1, "the shift ended");
}

async fn held_access_is_shared_not_duplicated(db: TestDb) {
    let w = world(db).await;
    let now = Utc::now();
    // Carol holds app write through the automatic flow.
    w.lifecycle.reconcile(now).await.expect("reconcile");
    confirm(w.store.as_ref(), now).await;
    // Asking for the same access through a self-serve flow: active at once, no command.
    let asked = w
        .lifecycle
        .create(&user("carol@example.com"), ask(APP, "write", None), now)
        .await
        .expect("create");
    assert_eq!(asked.view.request.state, RequestState::Active);
    assert!(
        w.store
            .open_commands(10)
            .await
            .expect("commands")
            .is_empty()
    );
    // The shift ends: the automatic grant ends without a revoke, the request still holds it.
    let ended = people(&format!(
        "from: \"2020-01-01T00:00:00Z\", to: \"{}\"",
        (now - chrono::Duration::minutes(1)).format("%Y-%m-%dT%H:%M:%SZ")
    ));
    set_directory(w.store.as_ref(), &ended).await;
    w.lifecycle.reconcile(now).await.expect("reconcile");
    assert!(
        w.store
            .open_commands(10)
            .await
            .expect("commands")
            .is_empty(),
        "still held by the request"
    );
    // When the request expires, the access is finally revoked.
    let expires = request(&w, &asked.view.request.id)
        .await
        .request
        .expires_at
        .expect("expiry");
    w.store.sweep_expired(expires, 100).await.expect("sweep");
    let open = w.store.open_commands(10).await.expect("commands");
    assert_eq!(
        open.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(),
        ["revoke"]
    );
}

async fn flow_and_tag_changes_revoke_what_is_no_longer_allowed(db: TestDb) {
    let w = world(db).await;
    let now = Utc::now();
    let alice = user("alice@example.com");
    let prod = w
        .lifecycle
        .create(&alice, ask(PROD, "ReadOnlyAccess", None), now)
        .await
        .expect("create")
        .view
        .request
        .id;
    w.lifecycle
        .approve(&user("mallory@example.com"), &prod, "", now)
        .await
        .expect("approve");
    w.lifecycle
        .approve(&user("bob@example.com"), &prod, "", now)
        .await
        .expect("approve");
    let reporting = w
        .lifecycle
        .create(&alice, ask(REPORTING, "read", None), now)
        .await
        .expect("create")
        .view
        .request
        .id;
    confirm(w.store.as_ref(), now).await;
    assert!(
        w.lifecycle
            .reconcile(now)
            .await
            .expect("reconcile")
            .revoke
            .is_empty(),
        "all still allowed"
    );

    // The account is re-tagged out of the flow's scope.
    w.store
        .replace_resources(
            STATIC_SOURCE,
            &inventory("staging"),
            "admin@example.com",
            now,
        )
        .await
        .expect("retag");
    let change = w.lifecycle.reconcile(now).await.expect("reconcile");
    assert_eq!(change.revoked_requests, std::slice::from_ref(&prod));
    let view = request(&w, &prod).await;
    assert_eq!(view.request.state, RequestState::Revoking);
    assert!(
        view.request
            .end_reason
            .as_deref()
            .is_some_and(|r| r.contains("no longer covers")),
        "{:?}",
        view.request.end_reason
    );

    // The flow behind the reporting access is deleted.
    w.store
        .delete_flow("reporting-read", "admin@example.com", now)
        .await
        .expect("delete");
    let change = w.lifecycle.reconcile(now).await.expect("reconcile");
    assert_eq!(change.revoked_requests, std::slice::from_ref(&reporting));
    let view = request(&w, &reporting).await;
    assert_eq!(
        view.request.end_reason.as_deref(),
        Some("flow \"reporting-read\" was deleted")
    );
    let actions = audit_actions(w.store.as_ref(), &reporting).await;
    assert!(
        actions.contains(&"request.revoking".to_string()),
        "{actions:?}"
    );
}

async fn concurrent_sweepers_handle_each_expiry_once(db: TestDb) {
    let w = world(db).await;
    let t0 = Utc::now();
    let ids: Vec<String> = (0..30).map(|n| format!("person{n}@example.com")).collect();
    // Thirty active requests from thirty people, all due at once.
    let mut yaml = String::from("users:\n");
    for email in &ids {
        yaml.push_str(&format!(
            "  - {{ email: {email}, groups: [engineering] }}\n"
        ));
    }
    set_directory(w.store.as_ref(), &yaml).await;
    for email in &ids {
        w.lifecycle
            .create(&user(email), ask(REPORTING, "read", Some(60)), t0)
            .await
            .expect("create");
    }
    confirm(w.store.as_ref(), t0).await;
    let due = t0 + chrono::Duration::minutes(5);
    let sweeps: Vec<_> = (0..4)
        .map(|_| {
            let store = w.store.clone();
            tokio::spawn(async move {
                let mut handled = 0;
                for _ in 0..10 {
                    handled += store
                        .sweep_expired(due, 7)
                        .await
                        .expect("sweep")
                        .expired_requests;
                }
                handled
            })
        })
        .collect();
    let mut total = 0;
    for sweep in sweeps {
        total += sweep.await.expect("join");
    }
    assert_eq!(total, 30, "every expiry handled exactly once");
    let revokes = w.store.open_commands(1000).await.expect("commands");
    assert_eq!(revokes.len(), 30, "one revoke per person's grant");
    assert!(revokes.iter().all(|c| c.kind == "revoke"));
    let expiring =
        w.db.fetch_strings("SELECT subject FROM audit_events WHERE action = 'request.expiring'")
            .await;
    assert_eq!(expiring.len(), 30);
    let distinct: std::collections::BTreeSet<&String> = expiring.iter().collect();
    assert_eq!(distinct.len(), 30, "no request expired twice");
}

async fn a_batch_stores_what_is_current_and_refuses_what_is_stale(db: TestDb) {
    let w = world(db).await;
    let now = Utc::now();
    let new = |version: u32| NewRequest {
        record: RequestRecord {
            id: uuid::Uuid::now_v7().to_string(),
            requester: "alice@example.com".into(),
            state: RequestState::Denied,
            items: vec![RequestItem {
                resource_id: REPORTING.into(),
                permission: "read".into(),
            }],
            requested_duration_secs: None,
            duration_secs: None,
            justification: String::new(),
            outcome: "deny".into(),
            decision: "{}".into(),
            digest: "d".into(),
            created_at: now,
            updated_at: now,
            pending_expires_at: None,
            activated_at: None,
            expires_at: None,
            end_reason: Some("test".into()),
        },
        flows: vec![latch_core::decide::FlowRef {
            name: "reporting-read".into(),
            version,
        }],
        grants: Vec::new(),
        audit_details: serde_json::json!({}),
        extension: None,
    };
    let results = w
        .store
        .create_requests(&[new(1), new(7), new(1)], now)
        .await
        .expect("batch");
    assert!(results[0].is_ok());
    assert!(
        matches!(&results[1], Err(StoreError::Conflict(m)) if m.contains("reporting-read")),
        "{:?}",
        results[1]
    );
    assert!(results[2].is_ok());
    let stored = w
        .store
        .list_requests(&RequestFilter::default(), None, 10)
        .await
        .expect("list");
    assert_eq!(stored.len(), 2, "the stale one was not stored");
    chain_is_intact(w.store.as_ref()).await;
}

contract!(
    a_batch_stores_what_is_current_and_refuses_what_is_stale,
    granted_requests_wait_in_the_outbox_and_the_clock_starts_when_active,
    expiry_revokes_ahead_of_grants_and_ends_the_request,
    approvals_are_counted_per_person_and_bound_to_the_request,
    approvals_need_the_flow_the_request_was_decided_by,
    denial_needs_a_reason_and_an_approver,
    refused_and_invalid_requests,
    cancel_and_revoke_rules,
    asking_again_extends_within_the_flow_max,
    extend_adds_time_through_the_flow,
    pending_requests_time_out,
    a_failed_grant_fails_the_request_and_leaves_nothing_applied,
    results_are_idempotent_and_fenced_by_generation,
    automatic_flows_follow_the_directory,
    shifts_start_and_end_on_time_without_a_directory_change,
    held_access_is_shared_not_duplicated,
    flow_and_tag_changes_revoke_what_is_no_longer_allowed,
    concurrent_sweepers_handle_each_expiry_once,
);
