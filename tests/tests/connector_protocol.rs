//! The sync protocol against the real server, played by hand: versions are negotiated, a
//! protocol-1 connector's pages of resources are stored as before, and with protocol 2 the
//! server answers digest pages with only the resources it needs, and fails a sync that does not
//! send them.

use std::collections::BTreeMap;
use std::time::Duration;

use latch_e2e::{Server, json, success, wait_until};
use latch_proto::v1::{
    Hello, IntegrationAnnouncement, InventoryPage, OpenStreamRequest, ResourceDigest,
    ResourcesWanted, SyncDone, SyncedResource, open_stream_request::Message as Up,
    open_stream_response::Message as Down,
};

mod raw_connector;
use raw_connector::{
    Identity, Open, channel, client_config, create_connector, enroll, open_stream,
};

const INTEGRATION: &str = "proto-test";
const PATIENCE: Duration = Duration::from_secs(20);

fn hello(min_protocol: u32, max_protocol: u32) -> Hello {
    Hello {
        min_protocol,
        max_protocol,
        version: "test".into(),
        integrations: vec![IntegrationAnnouncement {
            name: INTEGRATION.into(),
            kind: "fake".into(),
            capabilities: vec!["sync".into()],
        }],
    }
}

/// A server, and a connector enrolled with it.
async fn start() -> (tempfile::TempDir, Server, Identity) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("data"), None);
    let token = create_connector(&server, "edge-1");
    let identity = enroll(&server, &token).await.expect("enrolled");
    (dir, server, identity)
}

/// Opens the stream with `min..=max`; returns the stream and the version the server chose.
async fn connect(
    server: &Server,
    identity: &Identity,
    min: u32,
    max: u32,
) -> Result<(Open, u32), tonic::Status> {
    let config = client_config(server, Some(identity), &[&rustls::version::TLS13]);
    let channel = channel(server, config).await.expect("handshake");
    open_stream(channel, hello(min, max))
        .await
        .map(|(open, welcome)| (open, welcome.protocol))
}

fn thing(id: &str, env: &str) -> SyncedResource {
    SyncedResource {
        id: id.into(),
        r#type: "fake.thing".into(),
        name: id.into(),
        tags: BTreeMap::from([("env".into(), env.into())]),
        ..Default::default()
    }
}

async fn send(open: &Open, message: Up) {
    open.1
        .send(OpenStreamRequest {
            message: Some(message),
        })
        .await
        .expect("stream open");
}

fn page(sync_id: &str, resources: Vec<SyncedResource>) -> Up {
    Up::InventoryPage(InventoryPage {
        sync_id: sync_id.into(),
        integration: INTEGRATION.into(),
        full: true,
        resources,
        ..Default::default()
    })
}

fn digest_page(sync_id: &str, number: u64, digests: &[(&str, &str)]) -> Up {
    Up::InventoryPage(InventoryPage {
        sync_id: sync_id.into(),
        integration: INTEGRATION.into(),
        full: true,
        digest_page: number,
        digests: digests
            .iter()
            .map(|(id, digest)| ResourceDigest {
                id: id.to_string(),
                digest: digest.to_string(),
            })
            .collect(),
        ..Default::default()
    })
}

fn done(sync_id: &str) -> Up {
    Up::SyncDone(SyncDone {
        sync_id: sync_id.into(),
        integration: INTEGRATION.into(),
        full: true,
        ..Default::default()
    })
}

/// The next `ResourcesWanted`, its ids sorted.
async fn wanted(open: &mut Open) -> ResourcesWanted {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let message = tokio::time::timeout_at(deadline, open.0.message())
            .await
            .expect("an answer in time")
            .expect("stream open")
            .expect("not ended");
        if let Some(Down::ResourcesWanted(mut wanted)) = message.message {
            wanted.ids.sort();
            return wanted;
        }
    }
}

/// The integration's resources: id to `env` tag.
fn resources(server: &Server) -> BTreeMap<String, String> {
    server
        .list_resources(&["--integration", INTEGRATION])
        .iter()
        .map(|r| {
            (
                r["id"].as_str().expect("id").to_string(),
                r["tags"]["env"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn wait_resources(server: &Server, expected: &[(&str, &str)]) {
    let expected: BTreeMap<String, String> = expected
        .iter()
        .map(|(id, env)| (id.to_string(), env.to_string()))
        .collect();
    wait_until(PATIENCE, "the synced resources", || {
        resources(server) == expected
    });
}

fn last_error(server: &Server) -> String {
    json(&success(&server.cli(
        Some(&server.admin_token()),
        &["-o", "json", "integrations", "show", INTEGRATION],
    )))["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_negotiated_and_protocol_1_pages_are_stored_as_before() {
    let (_dir, server, identity) = start().await;
    let refused = connect(&server, &identity, 3, 4)
        .await
        .expect_err("no common version");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("3..=4") && refused.message().contains("1..=2"),
        "{}",
        refused.message()
    );
    let (newer, chosen) = connect(&server, &identity, 1, 7).await.expect("welcome");
    assert_eq!(chosen, 2, "the highest version both speak");
    drop(newer);

    let (old, chosen) = connect(&server, &identity, 1, 1).await.expect("welcome");
    assert_eq!(chosen, 1);
    send(
        &old,
        page("s1", vec![thing("a", "prod"), thing("b", "dev")]),
    )
    .await;
    send(&old, done("s1")).await;
    wait_resources(&server, &[("a", "prod"), ("b", "dev")]);
    // The next full sync changes one, drops one, adds one.
    send(
        &old,
        page("s2", vec![thing("a", "dev"), thing("c", "prod")]),
    )
    .await;
    send(&old, done("s2")).await;
    wait_resources(&server, &[("a", "dev"), ("c", "prod")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_pages_bring_in_only_what_changed_and_a_sync_missing_some_fails() {
    let (_dir, server, identity) = start().await;
    let (mut open, chosen) = connect(&server, &identity, 1, 2).await.expect("welcome");
    assert_eq!(chosen, 2);

    // First sync: nothing is stored, so everything is asked for.
    send(&open, digest_page("s1", 1, &[("a", "a-1"), ("b", "b-1")])).await;
    send(&open, digest_page("s1", 2, &[("c", "c-1")])).await;
    let mut answered = Vec::new();
    let mut asked = Vec::new();
    while answered.len() < 2 {
        let answer = wanted(&mut open).await;
        assert_eq!(answer.sync_id, "s1");
        answered.extend(answer.digest_pages);
        asked.extend(answer.ids);
    }
    answered.sort();
    asked.sort();
    assert_eq!(answered, [1, 2]);
    assert_eq!(asked, ["a", "b", "c"]);
    let with_digest = |id: &str, env: &str, digest: &str| SyncedResource {
        digest: digest.into(),
        ..thing(id, env)
    };
    send(
        &open,
        page(
            "s1",
            vec![
                with_digest("a", "prod", "a-1"),
                with_digest("b", "prod", "b-1"),
                with_digest("c", "prod", "c-1"),
            ],
        ),
    )
    .await;
    send(&open, done("s1")).await;
    wait_resources(&server, &[("a", "prod"), ("b", "prod"), ("c", "prod")]);

    // Resync: `a` is unchanged, `b` has a new digest, `d` is new, `c` is gone.
    send(
        &open,
        digest_page("s2", 1, &[("a", "a-1"), ("b", "b-2"), ("d", "d-1")]),
    )
    .await;
    let answer = wanted(&mut open).await;
    assert_eq!(
        (answer.sync_id.as_str(), answer.digest_pages.as_slice()),
        ("s2", &[1][..])
    );
    assert_eq!(answer.ids, ["b", "d"], "only what changed is asked for");
    send(
        &open,
        page(
            "s2",
            vec![
                with_digest("b", "dev", "b-2"),
                with_digest("d", "dev", "d-1"),
            ],
        ),
    )
    .await;
    send(&open, done("s2")).await;
    wait_resources(&server, &[("a", "prod"), ("b", "dev"), ("d", "dev")]);
    assert_eq!(last_error(&server), "");

    // A sync that does not send what was asked for fails and deletes nothing.
    send(&open, digest_page("s3", 1, &[("a", "a-2")])).await;
    assert_eq!(wanted(&mut open).await.ids, ["a"]);
    send(&open, done("s3")).await;
    wait_until(PATIENCE, "the failed sync", || {
        last_error(&server).contains("asked for in full and not sent before the sync ended: 1")
    });
    wait_resources(&server, &[("a", "prod"), ("b", "dev"), ("d", "dev")]);

    // A bad digest page is still answered (nothing wanted), and fails its sync naming the field.
    send(&open, digest_page("s4", 1, &[("a", "a-1"), ("b", "")])).await;
    let answer = wanted(&mut open).await;
    assert_eq!(
        (answer.digest_pages.as_slice(), answer.ids.len()),
        (&[1][..], 0)
    );
    send(&open, done("s4")).await;
    wait_until(PATIENCE, "the refused sync", || {
        last_error(&server).contains("digests[1].digest: must be 1 to 128 characters")
    });
    wait_resources(&server, &[("a", "prod"), ("b", "dev"), ("d", "dev")]);
}
