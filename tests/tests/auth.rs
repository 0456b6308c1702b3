//! Every RPC needs a bearer token: none or a wrong one is UNAUTHENTICATED, a non-admin token on an
//! admin RPC is PERMISSION_DENIED. Health answers without a token; reflection and metrics work.

use latch_e2e::{Server, failure, http_get, success};
use latch_proto::v1::access_flow_service_client::AccessFlowServiceClient;
use latch_proto::v1::{ApplyFlowsRequest, FlowSource, ListFlowsRequest, flow_source};
use tonic::Code;
use tonic::metadata::MetadataValue;

const FLOW: &str = "name: t\nkind: self_serve\nrequesters: { any_of: [everyone] }\ntargets: [{ integration: i, permissions: [read] }]\nduration: { default: 1h, max: 2h }\napproval: { mode: auto }\n";

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("metadata");
    request.metadata_mut().insert("authorization", value);
    request
}

fn apply_request() -> ApplyFlowsRequest {
    ApplyFlowsRequest {
        source: Some(FlowSource {
            source: Some(flow_source::Source::Yaml(FLOW.into())),
        }),
    }
}

#[tokio::test]
async fn tokens_guard_every_rpc() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"), None);
    let admin = server.admin_token();
    let mut client = AccessFlowServiceClient::connect(server.url())
        .await
        .expect("connect");

    let none = client
        .list_flows(ListFlowsRequest::default())
        .await
        .expect_err("no token");
    assert_eq!(none.code(), Code::Unauthenticated, "{none:?}");
    let wrong_shape = client
        .list_flows(with_token(ListFlowsRequest::default(), "hunter2"))
        .await
        .expect_err("bad");
    assert_eq!(wrong_shape.code(), Code::Unauthenticated);
    // Right shape and id, wrong secret.
    let mut forged = admin.clone();
    let last = forged.pop().expect("non-empty");
    forged.push(if last == '0' { '1' } else { '0' });
    let forged = client
        .list_flows(with_token(ListFlowsRequest::default(), &forged))
        .await
        .expect_err("forged");
    assert_eq!(forged.code(), Code::Unauthenticated);

    // A non-admin token reads but cannot change flows or manage tokens.
    let created = success(&server.cli(
        Some(&admin),
        &[
            "--output",
            "json",
            "tokens",
            "create",
            "--user",
            "alice@example.com",
            "--ttl",
            "1h",
        ],
    ));
    let created: serde_json::Value = serde_json::from_str(&created).expect("json");
    let alice = created["token"].as_str().expect("token").to_string();
    let alice_id = created["id"].as_str().expect("id").to_string();
    client
        .list_flows(with_token(ListFlowsRequest::default(), &alice))
        .await
        .expect("alice may list");
    let denied = client
        .apply_flows(with_token(apply_request(), &alice))
        .await
        .expect_err("not admin");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let stderr = failure(&server.cli(Some(&alice), &["tokens", "list"]));
    assert!(stderr.contains("not an admin"), "{stderr}");
    client
        .apply_flows(with_token(apply_request(), &admin))
        .await
        .expect("admin may apply");

    // Revocation takes effect at once.
    success(&server.cli(Some(&admin), &["tokens", "revoke", &alice_id]));
    let revoked = client
        .list_flows(with_token(ListFlowsRequest::default(), &alice))
        .await
        .expect_err("revoked");
    assert_eq!(revoked.code(), Code::Unauthenticated);
    let listed = success(&server.cli(Some(&admin), &["--output", "json", "tokens", "list"]));
    assert!(
        !listed.contains(&alice_id),
        "revoked tokens are not listed by default: {listed}"
    );
    let all = success(&server.cli(
        Some(&admin),
        &["--output", "json", "tokens", "list", "--all"],
    ));
    assert!(all.contains(&alice_id), "{all}");

    // The CLI reports refusals and exits non-zero.
    let stderr = failure(&server.cli(None, &["flows", "list"]));
    assert!(stderr.contains("bearer token"), "{stderr}");
}

#[tokio::test]
async fn health_reflection_and_metrics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"), None);

    let channel = tonic::transport::Channel::from_shared(server.url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "latch.v1.AccessFlowService".into(),
        })
        .await
        .expect("health needs no token")
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(with_token(
            tokio_stream::iter(vec![request]),
            &server.admin_token(),
        ))
        .await
        .expect("reflection")
        .into_inner();
    let response = stream
        .message()
        .await
        .expect("message")
        .expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response: {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "latch.v1.AccessFlowService",
        "latch.v1.TokenService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }

    let (code, body) = http_get(&server.listen, "/healthz").expect("healthz");
    assert_eq!((code, body.trim()), (200, "ok"));
    let (code, body) = http_get(&server.listen, "/metrics").expect("metrics");
    assert_eq!(code, 200);
    assert!(body.contains("latch_api_requests_total"), "{body}");
    assert!(body.contains("grpc.health.v1.Health/Check"), "{body}");
}

#[test]
fn bad_settings_are_refused_at_start_naming_each_one() {
    let output = std::process::Command::new(latch_e2e::bin_path("latch-server"))
        .args([
            "--listen",
            "localhost",
            "--database-url",
            "mysql://x/y",
            "--connector-listen",
            "127.0.0.1:99999",
        ])
        .env_remove("LATCH_DATABASE_URL")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(r#"listen: "localhost" is not an address"#),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"connector_listen: "127.0.0.1:99999" is not an address"#),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"database_url: unsupported scheme "mysql""#),
        "{stderr}"
    );

    let from_env = std::process::Command::new(latch_e2e::bin_path("latch-server"))
        .env("LATCH_LISTEN", "nowhere")
        .output()
        .expect("run");
    assert_eq!(from_env.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&from_env.stderr).contains(r#"listen: "nowhere""#));
}
