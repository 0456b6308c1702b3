//! The `aws` provider end to end: the real `latch-server`, the shipped `latch-connector` and the
//! `latch` CLI against the moto AWS emulator at `LATCH_TEST_MOTO_URL`
//! (`eval "$(scripts/moto.sh start)"`; `scripts/test.sh` does it). Like the provider's own tests
//! (`connector/src/providers/aws/tests.rs`), they fail when it is not set: CI must run them.
//!
//! Each test seeds its own random 12-digit account through the AWS SDK, and its connector
//! assumes a role in that account (`assume_role_arn`), so the tests run side by side on one moto
//! that is never reset. The exception is the IAM enforcement test: moto's enforcement is global,
//! so that test holds a lock file alone while every other test here holds it shared
//! ([`MotoHold`]).

use std::fs::File;
use std::io::{Read, Write};
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sts::config::Credentials;
use latch_e2e::{Connector, ConnectorOptions, Server, json, success, wait_until};

/// How long anything the connector does may take here.
const PATIENCE: Duration = Duration::from_secs(40);
const INTEGRATION: &str = "aws-e2e";
const REGION: &str = "us-east-1";

fn moto_url() -> String {
    std::env::var("LATCH_TEST_MOTO_URL")
        .unwrap_or_else(|_| {
            panic!(
                "LATCH_TEST_MOTO_URL is not set: start the AWS emulator with \
                 `eval \"$(scripts/moto.sh start)\"` and run the tests again"
            )
        })
        .trim_end_matches('/')
        .to_string()
}

/// `host:port` of moto, for raw requests.
fn moto_host() -> String {
    let url = moto_url();
    url.strip_prefix("http://")
        .unwrap_or_else(|| panic!("LATCH_TEST_MOTO_URL {url:?} must be an http:// URL"))
        .to_string()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A test's hold on moto, for as long as the test uses it. moto's IAM enforcement
/// (`POST /moto-api/reset-auth`) is global: while one test has it on, every other test's fake
/// keys are refused. Tests hold a lock file shared; the enforcement test holds it exclusively.
/// A file lock rather than a static, so that runners that start one process per test are kept
/// apart too.
struct MotoHold {
    _file: File,
}

impl MotoHold {
    fn shared() -> MotoHold {
        let file = MotoHold::open();
        file.lock_shared().expect("lock the moto lock file shared");
        MotoHold { _file: file }
    }

    fn exclusive() -> MotoHold {
        let file = MotoHold::open();
        file.lock().expect("lock the moto lock file");
        MotoHold { _file: file }
    }

    /// One lock file per moto server.
    fn open() -> File {
        let name: String = moto_host()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = std::env::temp_dir().join(format!("latch-e2e-moto-{name}.lock"));
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|err| panic!("open {}: {err}", path.display()))
    }
}

/// Turns moto's IAM enforcement on; off again when dropped, so a failing test does not leave it
/// on.
struct EnforcementOn;

impl EnforcementOn {
    fn start() -> EnforcementOn {
        let (status, body) = moto_http("POST", "/moto-api/reset-auth", &[], "0");
        assert_eq!(status, 200, "reset-auth 0: {body}");
        EnforcementOn
    }
}

impl Drop for EnforcementOn {
    fn drop(&mut self) {
        let (status, body) = moto_http("POST", "/moto-api/reset-auth", &[], "inf");
        if status != 200 {
            eprintln!("turning moto's IAM enforcement off failed: {status} {body}");
        }
    }
}

/// One HTTP/1.1 request to moto; returns the status and the body.
fn moto_http(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let host = moto_host();
    let mut stream = std::net::TcpStream::connect(&host)
        .unwrap_or_else(|err| panic!("connecting to moto at {host}: {err}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .expect("request sent to moto");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("response read from moto");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

/// An S3 request to moto as `account`, with moto's fake keys: moto does not check signatures
/// while IAM enforcement is off, and takes the service from the credential scope.
fn s3_as_account(account: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    moto_http(
        method,
        path,
        &[
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, \
                 SignedHeaders=host, Signature=0",
            ),
            ("x-moto-account-id", account),
        ],
        body,
    )
}

/// A bodiless S3 request to moto signed (SigV4) with `keys`, as the user's own client sends it:
/// with IAM enforcement on, moto checks the signature and the user's policies.
fn s3_with_keys(keys: &Credentials, method: &str, path: &str) -> (u16, String) {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, SignableBody, SignableRequest, SigningParams, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    use aws_sigv4::sign::v4;

    let identity = keys.clone().into();
    let mut settings = SigningSettings::default();
    // As S3 clients sign: the payload hash in x-amz-content-sha256, the path as it is.
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params: SigningParams<'_> = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .expect("signing parameters")
        .into();
    let url = format!("{}{path}", moto_url());
    let request = SignableRequest::new(method, url, std::iter::empty(), SignableBody::Bytes(&[]))
        .expect("a signable request");
    let (instructions, _) = sign(request, &params)
        .expect("the request is signed")
        .into_parts();
    let headers: Vec<(&str, &str)> = instructions.headers().collect();
    moto_http(method, path, &headers, "")
}

/// The SDK config for moto with `credentials`.
async fn sdk_config(credentials: Credentials) -> SdkConfig {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(moto_url())
        .credentials_provider(credentials)
        .http_client(http_client)
        .load()
        .await
}

fn testing_credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "latch-e2e")
}

/// A random account id; never starts with 0 and is never moto's default.
fn random_account() -> String {
    loop {
        let n = uuid::Uuid::new_v4().as_u128() % 900_000_000_000 + 100_000_000_000;
        let id = n.to_string();
        if id != "123456789012" {
            return id;
        }
    }
}

/// A test's own account in moto, with SDK clients acting in it: moto's fake keys exchanged
/// through AssumeRole for a role in the account, as the connector does with `assume_role_arn`.
struct AwsAccount {
    id: String,
    organizations: aws_sdk_organizations::Client,
    sso_admin: aws_sdk_ssoadmin::Client,
    identity_store: aws_sdk_identitystore::Client,
    iam: aws_sdk_iam::Client,
}

impl AwsAccount {
    async fn new() -> AwsAccount {
        let id = random_account();
        let base = sdk_config(testing_credentials()).await;
        let assumed = aws_sdk_sts::Client::new(&base)
            .assume_role()
            .role_arn(format!("arn:aws:iam::{id}:role/latch-e2e-seeder"))
            .role_session_name("latch-e2e")
            .send()
            .await
            .expect("moto answers AssumeRole at LATCH_TEST_MOTO_URL");
        let keys = assumed.credentials().expect("assumed credentials");
        let config = sdk_config(Credentials::new(
            keys.access_key_id(),
            keys.secret_access_key(),
            Some(keys.session_token().to_string()),
            None,
            "latch-e2e",
        ))
        .await;
        let me = aws_sdk_sts::Client::new(&config)
            .get_caller_identity()
            .send()
            .await
            .expect("GetCallerIdentity");
        assert_eq!(me.account(), Some(id.as_str()), "the role was assumed");
        AwsAccount {
            organizations: aws_sdk_organizations::Client::new(&config),
            sso_admin: aws_sdk_ssoadmin::Client::new(&config),
            identity_store: aws_sdk_identitystore::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
            id,
        }
    }

    /// The connector's `[[integrations]]` entry: this account, through AssumeRole.
    fn integration(&self) -> String {
        format!(
            "[[integrations]]\nname = \"{INTEGRATION}\"\nkind = \"aws\"\nregion = \"{REGION}\"\n\
             endpoint_url = \"{}\"\n\
             assume_role_arn = \"arn:aws:iam::{}:role/latch-connector\"\n\
             external_id = \"latch-e2e\"\n",
            moto_url(),
            self.id
        )
    }

    /// The Identity Center instance moto made for the account: (instance ARN, identity store id).
    async fn instance(&self) -> (String, String) {
        let out = self
            .sso_admin
            .list_instances()
            .send()
            .await
            .expect("ListInstances");
        let first = out.instances().first().expect("moto makes one instance");
        (
            first.instance_arn().expect("instance ARN").to_string(),
            first.identity_store_id().expect("store id").to_string(),
        )
    }

    async fn permission_set(&self, instance_arn: &str, name: &str) -> String {
        self.sso_admin
            .create_permission_set()
            .instance_arn(instance_arn)
            .name(name)
            // Without it moto answers with a number where the SDK expects ISO 8601.
            .session_duration("PT1H")
            .send()
            .await
            .expect("CreatePermissionSet")
            .permission_set()
            .and_then(|set| set.permission_set_arn())
            .expect("permission set ARN")
            .to_string()
    }

    /// An Identity Store user with `email` as primary email; returns the user's id.
    async fn identity_store_user(&self, store: &str, user: &str, email: &str) -> String {
        use aws_sdk_identitystore::types::{Email, Name};
        self.identity_store
            .create_user()
            .identity_store_id(store)
            .user_name(user)
            .display_name(user)
            .name(Name::builder().given_name(user).family_name("Test").build())
            .emails(
                Email::builder()
                    .value(email)
                    .primary(true)
                    .r#type("work")
                    .build(),
            )
            .send()
            .await
            .expect("CreateUser")
            .user_id()
            .to_string()
    }

    /// The users that hold `permission_set_arn` on `account`.
    async fn assigned_users(
        &self,
        instance_arn: &str,
        account: &str,
        permission_set_arn: &str,
    ) -> Vec<String> {
        self.sso_admin
            .list_account_assignments()
            .instance_arn(instance_arn)
            .account_id(account)
            .permission_set_arn(permission_set_arn)
            .send()
            .await
            .expect("ListAccountAssignments")
            .account_assignments()
            .iter()
            .filter_map(|a| a.principal_id().map(str::to_string))
            .collect()
    }

    async fn iam_user(&self, name: &str) {
        self.iam
            .create_user()
            .user_name(name)
            .send()
            .await
            .expect("CreateUser");
    }

    /// New access keys of IAM user `user`.
    async fn access_keys(&self, user: &str) -> Credentials {
        let out = self
            .iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .expect("CreateAccessKey");
        let key = out.access_key().expect("access key");
        Credentials::new(
            key.access_key_id(),
            key.secret_access_key(),
            None,
            None,
            "latch-e2e",
        )
    }

    /// A tagged S3 bucket; returns its ARN.
    fn bucket(&self, name: &str, tags: &[(&str, &str)]) -> String {
        let (status, body) = s3_as_account(&self.id, "PUT", &format!("/{name}"), "");
        assert_eq!(status, 200, "CreateBucket {name}: {body}");
        let tag_xml: String = tags
            .iter()
            .map(|(k, v)| format!("<Tag><Key>{k}</Key><Value>{v}</Value></Tag>"))
            .collect();
        let (status, body) = s3_as_account(
            &self.id,
            "PUT",
            &format!("/{name}?tagging"),
            &format!("<Tagging><TagSet>{tag_xml}</TagSet></Tagging>"),
        );
        assert!(
            status == 200 || status == 204,
            "PutBucketTagging {name}: {status} {body}"
        );
        format!("arn:aws:s3:::{name}")
    }
}

/// The inline policies on IAM user `user`.
async fn user_policies(iam: &aws_sdk_iam::Client, user: &str) -> Vec<String> {
    iam.list_user_policies()
        .user_name(user)
        .send()
        .await
        .expect("ListUserPolicies")
        .policy_names()
        .to_vec()
}

/// A policy document as IAM returns it: URL-encoded JSON (moto may leave it plain).
fn policy_json(text: &str) -> serde_json::Value {
    if let Ok(value) = serde_json::from_str(text) {
        return value;
    }
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    let decoded = String::from_utf8(decoded).expect("UTF-8 policy document");
    json(&decoded)
}

/// The directory: `users` (local parts) in engineering, managed by boss@example.com.
fn people(users: &[&str]) -> String {
    let mut text = String::from("users:\n");
    for user in users {
        text.push_str(&format!(
            "  - {{ email: {user}@example.com, manager: boss@example.com, groups: [engineering] }}\n"
        ));
    }
    text.push_str("  - { email: boss@example.com }\n");
    text
}

/// A flow on the integration with `targets` (YAML list items), at most 1 h, approved by the
/// manager (`manager = true`) or automatically.
fn flow(targets: &str, manager: bool) -> String {
    let approval = if manager {
        "approval:\n  mode: all_of\n  groups:\n    - { approvers: [manager], min: 1 }\n  requester_can_approve: false\n"
    } else {
        "approval: { mode: auto }\n"
    };
    format!(
        "name: aws-access\nkind: self_serve\nrequesters: {{ any_of: [{{ group: engineering }}] }}\n\
         targets:\n{targets}duration: {{ default: 10m, max: 1h }}\n{approval}"
    )
}

/// The shipped connector serving `integration` (raw TOML) with `keys` as its base credentials
/// (the environment, the first link of the standard chain), connected.
fn start_connector(server: &Server, integration: String, keys: &Credentials) -> Connector {
    let set = |name: &str, value: &str| (name.to_string(), Some(value.to_string()));
    let unset = |name: &str| (name.to_string(), None);
    let mut env = vec![
        set("AWS_ACCESS_KEY_ID", keys.access_key_id()),
        set("AWS_SECRET_ACCESS_KEY", keys.secret_access_key()),
        set("AWS_EC2_METADATA_DISABLED", "true"),
        unset("AWS_PROFILE"),
        unset("AWS_ROLE_ARN"),
        unset("AWS_WEB_IDENTITY_TOKEN_FILE"),
        unset("AWS_ENDPOINT_URL"),
    ];
    env.push(match keys.session_token() {
        Some(token) => set("AWS_SESSION_TOKEN", token),
        None => unset("AWS_SESSION_TOKEN"),
    });
    let options = ConnectorOptions {
        shipped_integrations: Some(integration),
        env,
        ..ConnectorOptions::default()
    };
    let mut edge = Connector::start(server, "edge-aws", options);
    edge.wait_connected(server, PATIENCE);
    edge
}

/// `latch resources list --integration aws-e2e` with `filters`, by id.
fn listed(
    server: &Server,
    filters: &[&str],
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut args = vec!["--integration", INTEGRATION];
    args.extend_from_slice(filters);
    server
        .list_resources(&args)
        .into_iter()
        .map(|r| (r["id"].as_str().expect("id").to_string(), r))
        .collect()
}

fn tags(pairs: &[(&str, &str)]) -> serde_json::Value {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[test]
fn the_organization_is_listed_and_an_account_grant_is_an_assignment_until_expiry() {
    let _hold = MotoHold::shared();
    let rt = runtime();
    let account = rt.block_on(AwsAccount::new());

    // Organization: root → Engineering (env=prod) → prod-app (team=core); Identity Center: two
    // permission sets and alice; a tagged bucket.
    let (org_arn, ou_arn, prod_app, instance_arn, read_only, alice) = rt.block_on(async {
        use aws_sdk_organizations::types::{OrganizationFeatureSet, Tag};
        let orgs = &account.organizations;
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().expect("tag");
        orgs.create_organization()
            .feature_set(OrganizationFeatureSet::All)
            .send()
            .await
            .expect("CreateOrganization");
        let org = orgs
            .describe_organization()
            .send()
            .await
            .expect("DescribeOrganization");
        let org_arn = org
            .organization()
            .and_then(|o| o.arn())
            .expect("organization ARN")
            .to_string();
        let roots = orgs.list_roots().send().await.expect("ListRoots");
        let root = roots.roots()[0].id().expect("root id").to_string();
        let ou = orgs
            .create_organizational_unit()
            .parent_id(&root)
            .name("Engineering")
            .tags(tag("env", "prod"))
            .send()
            .await
            .expect("CreateOrganizationalUnit");
        let ou = ou.organizational_unit().expect("OU");
        let created = orgs
            .create_account()
            .email("prod-app@example.com")
            .account_name("prod-app")
            .tags(tag("team", "core"))
            .send()
            .await
            .expect("CreateAccount");
        let prod_app = created
            .create_account_status()
            .and_then(|s| s.account_id())
            .expect("account id")
            .to_string();
        orgs.move_account()
            .account_id(&prod_app)
            .source_parent_id(&root)
            .destination_parent_id(ou.id().expect("OU id"))
            .send()
            .await
            .expect("MoveAccount");
        let (instance_arn, store) = account.instance().await;
        let read_only = account.permission_set(&instance_arn, "ReadOnly").await;
        account.permission_set(&instance_arn, "Admin").await;
        let alice = account
            .identity_store_user(&store, "alice", "alice@example.com")
            .await;
        (
            org_arn,
            ou.arn().expect("OU ARN").to_string(),
            prod_app,
            instance_arn,
            read_only,
            alice,
        )
    });
    let bucket_name = format!("logs-{}", account.id);
    let bucket = account.bucket(&bucket_name, &[("env", "dev"), ("team", "data")]);

    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_applied(
        dir.path(),
        &people(&["alice"]),
        &flow(
            &format!(
                "  - integration: {INTEGRATION}\n    resource_types: [aws.account]\n    permissions: [ReadOnly]\n"
            ),
            true,
        ),
    );
    let _edge = start_connector(&server, account.integration(), &testing_credentials());
    server.wait_resource(&prod_app, PATIENCE);
    let admin = server.admin_token();
    let integration = || {
        json(&success(&server.cli(
            Some(&admin),
            &["-o", "json", "integrations", "show", INTEGRATION],
        )))
    };
    wait_until(PATIENCE, "alice's Identity Store user to be synced", || {
        integration()["linked_identity_count"] == 1
    });

    // Everything the sync found is listed, with its parent and tags.
    let resources = listed(&server, &[]);
    let ids: Vec<&String> = resources.keys().collect();
    let summary = |id: &str| {
        let r = resources
            .get(id)
            .unwrap_or_else(|| panic!("{id} is not listed; listed: {ids:?}"));
        (
            r["type"].as_str().unwrap_or_default().to_string(),
            r["name"].as_str().unwrap_or_default().to_string(),
            r["parent"].as_str().unwrap_or_default().to_string(),
            r["tags"].clone(),
        )
    };
    let organization = summary(&org_arn);
    assert_eq!(
        (organization.0.as_str(), organization.2.as_str()),
        ("aws.organization", ""),
        "{organization:?}"
    );
    assert_eq!(
        summary(&ou_arn),
        (
            "aws.ou".into(),
            "Engineering".into(),
            org_arn.clone(),
            tags(&[("env", "prod")])
        )
    );
    assert_eq!(
        summary(&prod_app),
        (
            "aws.account".into(),
            "prod-app".into(),
            ou_arn.clone(),
            tags(&[("team", "core")])
        )
    );
    let management = summary(&account.id);
    assert_eq!(
        (management.0.as_str(), management.2.as_str()),
        ("aws.account", org_arn.as_str())
    );
    assert_eq!(
        summary(&bucket),
        (
            "aws.s3.bucket".into(),
            bucket_name.clone(),
            account.id.clone(),
            tags(&[("env", "dev"), ("team", "data")])
        )
    );
    let dev = listed(&server, &["--tag", "env=dev"]);
    assert_eq!(dev.keys().collect::<Vec<_>>(), [&bucket], "tag filter");
    let found = listed(&server, &["--search", "PROD-APP"]);
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        [&prod_app],
        "search by name, ignoring case"
    );
    let accounts = listed(&server, &["--type", "aws.account"]);
    let mut expected = vec![account.id.clone(), prod_app.clone()];
    expected.sort();
    assert_eq!(accounts.keys().cloned().collect::<Vec<_>>(), expected);
    // The permission sets are the accounts' permissions; alice is linked to her directory user.
    let shown = json(&success(&server.cli(
        Some(&admin),
        &["-o", "json", "resources", "show", &prod_app],
    )));
    assert_eq!(
        shown["permissions"],
        serde_json::json!(["Admin", "ReadOnly"]),
        "{shown}"
    );
    let synced = integration();
    assert_eq!(
        (
            &synced["kind"],
            &synced["identity_count"],
            &synced["linked_identity_count"]
        ),
        (&"aws".into(), &1.into(), &1.into()),
        "{synced}"
    );

    // Alice asks for ReadOnly on prod-app; her manager approves; Identity Center assigns it.
    let alice_token = server.user_token("alice@example.com");
    let boss_token = server.user_token("boss@example.com");
    let id = server.request_access(&alice_token, &prod_app, "ReadOnly", "5s");
    assert_eq!(server.request(&alice_token, &id)["state"], "pending");
    let assigned = || rt.block_on(account.assigned_users(&instance_arn, &prod_app, &read_only));
    assert!(assigned().is_empty(), "nothing assigned before approval");
    success(&server.cli(Some(&boss_token), &["approve", &id]));
    server.wait_request_state(&alice_token, &id, "active", PATIENCE);
    assert_eq!(
        assigned(),
        std::slice::from_ref(&alice),
        "assigned while active"
    );

    // At expiry the connector deletes the assignment.
    server.wait_request_state(&alice_token, &id, "expired", PATIENCE);
    wait_until(PATIENCE, "the assignment to be deleted", || {
        assigned().is_empty()
    });
    success(&server.cli(Some(&admin), &["audit", "verify"]));
}

#[test]
fn a_bucket_grant_is_an_inline_policy_on_the_users_iam_user_until_expiry() {
    let _hold = MotoHold::shared();
    let rt = runtime();
    let account = rt.block_on(AwsAccount::new());
    rt.block_on(account.iam_user("bob"));
    let bucket = account.bucket(&format!("data-{}", account.id), &[("env", "dev")]);

    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_applied(
        dir.path(),
        &people(&["bob"]),
        &flow(
            &format!(
                "  - integration: {INTEGRATION}\n    resource_types: [aws.s3.bucket]\n    \
                 include: {{ tags: {{ env: dev }} }}\n    permissions: [read, write]\n"
            ),
            false,
        ),
    );
    let _edge = start_connector(&server, account.integration(), &testing_credentials());
    server.wait_resource(&bucket, PATIENCE);
    let shown = json(&success(&server.cli(
        Some(&server.admin_token()),
        &["-o", "json", "resources", "show", &bucket],
    )));
    assert_eq!(
        shown["permissions"],
        serde_json::json!(["read", "write"]),
        "{shown}"
    );

    let token = server.user_token("bob@example.com");
    let policies = || rt.block_on(user_policies(&account.iam, "bob"));
    assert!(policies().is_empty(), "no policy before the grant");
    let id = server.request_access(&token, &bucket, "read", "5s");
    server.wait_request_state(&token, &id, "active", PATIENCE);

    // While active: one inline policy named after the grant, read on the bucket and its objects,
    // until the request's expiry.
    let request = server.request(&token, &id);
    let grant_id = request["grants"][0]["id"].as_str().expect("grant id");
    let name = format!("latch-{grant_id}");
    assert_eq!(policies(), std::slice::from_ref(&name), "{request}");
    let document = rt.block_on(async {
        let out = account
            .iam
            .get_user_policy()
            .user_name("bob")
            .policy_name(&name)
            .send()
            .await
            .expect("GetUserPolicy");
        policy_json(out.policy_document())
    });
    let statement = &document["Statement"][0];
    assert_eq!(statement["Effect"], "Allow", "{document}");
    assert_eq!(
        statement["Action"],
        serde_json::json!(["s3:GetObject", "s3:ListBucket"]),
        "{document}"
    );
    assert_eq!(
        statement["Resource"],
        serde_json::json!([bucket.clone(), format!("{bucket}/*")]),
        "{document}"
    );
    let until = statement["Condition"]["DateLessThan"]["aws:CurrentTime"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("an aws:CurrentTime condition: {document}"));
    let expires = request["expires_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("the request's expiry: {request}"));
    assert!(
        (until - expires).num_seconds().abs() <= 1,
        "the policy ends at {until}, the request at {expires}"
    );

    // At expiry the connector deletes the policy.
    server.wait_request_state(&token, &id, "expired", PATIENCE);
    wait_until(PATIENCE, "the inline policy to be deleted", || {
        policies().is_empty()
    });
}

/// With moto enforcing IAM, bob uses his own access keys on a bucket: denied before the grant,
/// allowed during it, denied after its expiry. The connector works with its own keys (an IAM
/// user allowed everything), not moto's fake ones, which enforcement refuses. moto does not
/// evaluate `aws:CurrentTime`, so the end of access here is the connector's revoke at expiry.
#[test]
fn with_iam_enforced_a_user_is_denied_before_allowed_during_and_denied_after_expiry() {
    let _hold = MotoHold::exclusive();
    let rt = runtime();
    let account = rt.block_on(AwsAccount::new());
    let (connector_keys, bob_keys) = rt.block_on(async {
        account.iam_user("latch-connector").await;
        account
            .iam
            .put_user_policy()
            .user_name("latch-connector")
            .policy_name("everything")
            .policy_document(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
            )
            .send()
            .await
            .expect("PutUserPolicy");
        account.iam_user("bob").await;
        (
            account.access_keys("latch-connector").await,
            account.access_keys("bob").await,
        )
    });
    let bucket_name = format!("reports-{}", account.id);
    let bucket = account.bucket(&bucket_name, &[("env", "dev")]);
    let (status, body) = s3_as_account(
        &account.id,
        "PUT",
        &format!("/{bucket_name}/q1.csv"),
        "revenue,42\n",
    );
    assert_eq!(status, 200, "PutObject: {body}");
    let list = || s3_with_keys(&bob_keys, "GET", &format!("/{bucket_name}?list-type=2"));
    let get = || s3_with_keys(&bob_keys, "GET", &format!("/{bucket_name}/q1.csv"));
    let denied = |(status, body): (u16, String)| status == 403 && body.contains("AccessDenied");

    let enforcement = EnforcementOn::start();
    let (status, body) = s3_as_account(
        &account.id,
        "GET",
        &format!("/{bucket_name}?list-type=2"),
        "",
    );
    assert_eq!(
        status, 403,
        "moto's fake keys are refused while enforcing: {body}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_applied(
        dir.path(),
        &people(&["bob"]),
        &flow(
            &format!(
                "  - integration: {INTEGRATION}\n    resource_types: [aws.s3.bucket]\n    permissions: [read]\n"
            ),
            false,
        ),
    );
    // Plain keys: moto finds the account from the access key, no role to assume.
    let _edge = start_connector(
        &server,
        format!(
            "[[integrations]]\nname = \"{INTEGRATION}\"\nkind = \"aws\"\nregion = \"{REGION}\"\n\
             endpoint_url = \"{}\"\n",
            moto_url()
        ),
        &connector_keys,
    );
    server.wait_resource(&bucket, PATIENCE);

    // Before: his own, correctly signed requests are denied by policy.
    let before = list();
    assert!(denied(before.clone()), "list before the grant: {before:?}");
    let before = get();
    assert!(denied(before.clone()), "read before the grant: {before:?}");

    // During: he lists the bucket and reads the object.
    let token = server.user_token("bob@example.com");
    let id = server.request_access(&token, &bucket, "read", "8s");
    server.wait_request_state(&token, &id, "active", PATIENCE);
    let during = list();
    assert!(
        during.0 == 200 && during.1.contains("q1.csv"),
        "list during the grant: {during:?}"
    );
    let during = get();
    assert_eq!(
        during,
        (200, "revenue,42\n".to_string()),
        "read during the grant"
    );

    // After expiry: denied again.
    server.wait_request_state(&token, &id, "expired", PATIENCE);
    wait_until(PATIENCE, "bob to be denied after the expiry", || {
        denied(list()) && denied(get())
    });
    drop(enforcement);
    let (status, body) = s3_as_account(
        &account.id,
        "GET",
        &format!("/{bucket_name}?list-type=2"),
        "",
    );
    assert_eq!(status, 200, "enforcement is off again: {body}");
}
