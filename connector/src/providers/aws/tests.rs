//! Tests against the moto emulator at `LATCH_TEST_MOTO_URL` (start it with
//! `eval "$(scripts/moto.sh start)"`). They fail when it is not set or not reachable.
//!
//! Each test assumes a role in its own random 12-digit account, exactly as a connector with
//! `assume_role_arn` does: moto keeps state per account, so the tests run in parallel and never
//! reset the server. Seeding goes through the same SDK config, plus a few raw requests for S3
//! and EC2, whose SDK crates the connector does not otherwise need.
//!
//! [`call_log`] counts the provider's requests and injects throttling; [`bench`] is the issue's
//! benchmark (ignored unless asked for).

mod bench;
mod call_log;

use std::collections::BTreeMap;

use aws_sdk_sts::config::Credentials;
use chrono::{Duration as ChronoDuration, SubsecRound, Utc};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use self::call_log::{CallLog, most_within};
use super::AwsProvider;
use super::clients::{Clients, load_config};
use super::inventory::{ORGANIZATION_TYPE, OU_TYPE, ROLE_TYPE};
use super::policies::{REVOKE_SESSIONS_POLICY, decode_document, policy_document, policy_name};
use super::settings::{ACCOUNT_TYPE, AwsSettings};
use crate::config::IntegrationConfig;
use crate::provider::{GrantSpec, Provider, ProviderError, ProviderRegistry};
use crate::testing::CollectingSink;

pub(super) fn moto_url() -> String {
    std::env::var("LATCH_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!(
            "LATCH_TEST_MOTO_URL is not set: start the AWS emulator with \
             `eval \"$(scripts/moto.sh start)\"` and run the tests again"
        )
    })
}

/// A random account id for one test; never starts with 0 and is never moto's default.
pub(super) fn random_account() -> String {
    let mut rng = rand::rng();
    loop {
        let id = format!(
            "{}",
            rng.random_range(100_000_000_000u64..1_000_000_000_000)
        );
        if id != "123456789012" {
            return id;
        }
    }
}

pub(super) fn testing_credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "latch-tests")
}

/// An `aws` integration in `account`, parsed like a config file entry.
pub(super) fn settings_for(account: &str, extra: &str) -> AwsSettings {
    let text = format!(
        r#"
        region = "us-east-1"
        endpoint_url = "{}"
        assume_role_arn = "arn:aws:iam::{account}:role/latch-connector"
        external_id = "latch-tests"
        {extra}
        "#,
        moto_url()
    );
    let integration = IntegrationConfig {
        name: "aws-test".into(),
        kind: "aws".into(),
        rate_limit_per_sec: None,
        settings: text.parse().expect("test settings parse"),
    };
    AwsSettings::parse(&integration).expect("test settings are valid")
}

/// moto's IAM enforcement is global: while one test has it on, every other test's fake keys
/// are refused. Ordinary tests hold this lock shared, the enforcement test exclusively.
static MOTO_AUTH: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A test's hold on [`MOTO_AUTH`], kept for as long as the test uses moto.
#[allow(dead_code)]
enum MotoHold {
    Shared(tokio::sync::RwLockReadGuard<'static, ()>),
    Exclusive(tokio::sync::RwLockWriteGuard<'static, ()>),
}

/// A test's account: the provider under test and admin clients for seeding and checking.
pub(super) struct Account {
    pub id: String,
    pub provider: AwsProvider,
    pub admin: Clients,
    _hold: MotoHold,
}

impl Account {
    /// An account for a test that may run beside others.
    pub(super) async fn new() -> Self {
        Self::with_hold(MotoHold::Shared(MOTO_AUTH.read().await)).await
    }

    /// An account for a test that must run alone (it turns IAM enforcement on).
    async fn exclusive() -> Self {
        Self::with_hold(MotoHold::Exclusive(MOTO_AUTH.write().await)).await
    }

    async fn with_hold(hold: MotoHold) -> Self {
        let id = random_account();
        let settings = settings_for(&id, "");
        let admin = Clients::new(&load_config(&settings, Some(testing_credentials())).await);
        let me = admin
            .sts
            .get_caller_identity()
            .send()
            .await
            .expect("moto answers GetCallerIdentity at LATCH_TEST_MOTO_URL");
        assert_eq!(me.account(), Some(id.as_str()), "the role was assumed");
        Self {
            provider: AwsProvider::with_credentials(settings, testing_credentials()),
            id,
            admin,
            _hold: hold,
        }
    }

    /// A raw request to moto as this account, for services without an SDK crate here. moto
    /// does not check signatures (unless IAM enforcement is on) and takes the service from the
    /// credential scope.
    pub(super) async fn raw(
        &self,
        method: &str,
        path: &str,
        service: &str,
        content_type: &str,
        body: &str,
    ) -> (u16, String) {
        raw_request(
            method,
            path,
            service,
            content_type,
            body,
            &[("x-moto-account-id", &self.id)],
        )
        .await
    }

    /// A tagged S3 bucket; returns its ARN.
    async fn bucket(&self, name: &str, tags: &[(&str, &str)]) -> String {
        let (status, body) = self.raw("PUT", &format!("/{name}"), "s3", "", "").await;
        assert_eq!(status, 200, "CreateBucket {name}: {body}");
        let tag_xml: String = tags
            .iter()
            .map(|(k, v)| format!("<Tag><Key>{k}</Key><Value>{v}</Value></Tag>"))
            .collect();
        let (status, body) = self
            .raw(
                "PUT",
                &format!("/{name}?tagging"),
                "s3",
                "application/xml",
                &format!("<Tagging><TagSet>{tag_xml}</TagSet></Tagging>"),
            )
            .await;
        assert!(
            status == 200 || status == 204,
            "PutBucketTagging: {status} {body}"
        );
        format!("arn:aws:s3:::{name}")
    }
}

/// One HTTP/1.1 request to moto with a fake SigV4 `Authorization` scoped to `service`.
pub(super) async fn raw_request(
    method: &str,
    path: &str,
    service: &str,
    content_type: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let url = moto_url();
    let host = url
        .strip_prefix("http://")
        .expect("LATCH_TEST_MOTO_URL is http://")
        .trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .unwrap_or_else(|err| panic!("connecting to moto at {host}: {err}"));
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    if !content_type.is_empty() {
        request.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("response read");
    let text = String::from_utf8_lossy(&response).to_string();
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

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn org_tag(key: &str, value: &str) -> aws_sdk_organizations::types::Tag {
    aws_sdk_organizations::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
        .expect("tag")
}

/// Creates the organization (all features) and returns its root's id.
async fn organization_root(admin: &Clients) -> String {
    admin
        .organizations
        .create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .expect("CreateOrganization");
    let roots = admin
        .organizations
        .list_roots()
        .send()
        .await
        .expect("ListRoots");
    roots.roots()[0].id().expect("root id").to_string()
}

/// An organizational unit made for a test.
struct Ou {
    id: String,
    arn: String,
}

/// An OU `name` under `parent` (an id) with `ou_tags`.
async fn organizational_unit(
    admin: &Clients,
    parent: &str,
    name: &str,
    ou_tags: &[(&str, &str)],
) -> Ou {
    let mut create = admin
        .organizations
        .create_organizational_unit()
        .parent_id(parent)
        .name(name);
    for (key, value) in ou_tags {
        create = create.tags(org_tag(key, value));
    }
    let created = create.send().await.expect("CreateOrganizationalUnit");
    let ou = created.organizational_unit().expect("ou");
    Ou {
        id: ou.id().expect("ou id").to_string(),
        arn: ou.arn().expect("ou arn").to_string(),
    }
}

/// A member account `name` (`name@example.com`) with `account_tags`, created (it must succeed
/// at once, as in moto) and moved from the root to `parent`; returns its id.
async fn member_account(
    admin: &Clients,
    root: &str,
    parent: &str,
    name: &str,
    account_tags: &[(&str, &str)],
) -> String {
    use aws_sdk_organizations::types::CreateAccountState;
    let mut create = admin
        .organizations
        .create_account()
        .email(format!("{name}@example.com"))
        .account_name(name);
    for (key, value) in account_tags {
        create = create.tags(org_tag(key, value));
    }
    let created = create.send().await.expect("CreateAccount");
    let status = created.create_account_status().expect("status");
    assert_eq!(status.state(), Some(&CreateAccountState::Succeeded));
    let id = status.account_id().expect("account id").to_string();
    admin
        .organizations
        .move_account()
        .account_id(&id)
        .source_parent_id(root)
        .destination_parent_id(parent)
        .send()
        .await
        .expect("MoveAccount");
    id
}

/// The Identity Center instance moto made for the account: (instance ARN, identity store id).
async fn instance(admin: &Clients) -> (String, String) {
    let out = admin
        .sso_admin
        .list_instances()
        .send()
        .await
        .expect("ListInstances");
    let first = out.instances().first().expect("moto makes one instance");
    (
        first.instance_arn().expect("arn").to_string(),
        first.identity_store_id().expect("store").to_string(),
    )
}

async fn permission_set(admin: &Clients, instance_arn: &str, name: &str) -> String {
    admin
        .sso_admin
        .create_permission_set()
        .instance_arn(instance_arn)
        .name(name)
        // Without it moto stores the number 3600 and answers with it where AWS has an ISO 8601
        // string, which the SDK refuses to read (in DescribePermissionSet too).
        .session_duration("PT1H")
        .send()
        .await
        .expect("CreatePermissionSet")
        .permission_set()
        .and_then(|set| set.permission_set_arn())
        .expect("permission set ARN")
        .to_string()
}

async fn identity_store_user(admin: &Clients, store: &str, user: &str, email: &str) -> String {
    use aws_sdk_identitystore::types::{Email, Name};
    admin
        .identity_store
        .create_user()
        .identity_store_id(store)
        .user_name(user)
        .display_name(format!("{user} (test)"))
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

async fn identity_store_group(admin: &Clients, store: &str, name: &str) -> String {
    admin
        .identity_store
        .create_group()
        .identity_store_id(store)
        .display_name(name)
        .send()
        .await
        .expect("CreateGroup")
        .group_id()
        .to_string()
}

async fn add_member(admin: &Clients, store: &str, group: &str, user: &str) {
    admin
        .identity_store
        .create_group_membership()
        .identity_store_id(store)
        .group_id(group)
        .member_id(aws_sdk_identitystore::types::MemberId::UserId(user.into()))
        .send()
        .await
        .expect("CreateGroupMembership");
}

/// An IAM role anyone may assume, with `tags`; returns its ARN.
async fn role(admin: &Clients, name: &str, role_tags: &[(&str, &str)]) -> String {
    let mut request = admin
        .iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#,
        );
    for (key, value) in role_tags {
        request = request.tags(
            aws_sdk_iam::types::Tag::builder()
                .key(*key)
                .value(*value)
                .build()
                .expect("tag"),
        );
    }
    request
        .send()
        .await
        .expect("CreateRole")
        .role()
        .expect("role")
        .arn()
        .to_string()
}

#[test]
fn the_shipped_registry_builds_aws_integrations() {
    let registry = ProviderRegistry::shipped();
    assert!(registry.contains("aws"), "{:?}", registry.kinds());
    let integration = IntegrationConfig {
        name: "aws-org".into(),
        kind: "aws".into(),
        rate_limit_per_sec: None,
        settings: r#"
            region = "us-east-1"
            endpoint_url = "http://127.0.0.1:5055"
            assume_role_arn = "arn:aws:iam::111111111111:role/latch-connector"
            iam_user_template = "{local}"
            "#
        .parse()
        .expect("toml"),
    };
    let provider = registry
        .build(&integration)
        .expect("builds without network");
    assert_eq!(provider.kind(), "aws");
    let mut bad = integration.clone();
    bad.settings.remove("region");
    let err = registry.build(&bad).err().expect("region is required");
    assert!(err.contains("region: missing"), "{err}");
}

#[tokio::test]
async fn sync_reports_the_organization_permission_sets_resources_and_users() {
    let account = Account::new().await;
    let admin = &account.admin;

    // Organization: root → Engineering (env=prod) → Platform → prod-app (team=core).
    let root = organization_root(admin).await;
    let org = admin
        .organizations
        .describe_organization()
        .send()
        .await
        .expect("DescribeOrganization");
    let org_arn = org
        .organization()
        .and_then(|o| o.arn())
        .expect("org arn")
        .to_string();
    let engineering = organizational_unit(admin, &root, "Engineering", &[("env", "prod")]).await;
    let platform = organizational_unit(admin, &engineering.id, "Platform", &[]).await;
    let prod_app =
        member_account(admin, &root, &platform.id, "prod-app", &[("team", "core")]).await;

    // Identity Center: two permission sets and a user.
    let (instance_arn, store) = instance(admin).await;
    permission_set(admin, &instance_arn, "ReadOnly").await;
    permission_set(admin, &instance_arn, "Admin").await;
    let alice = identity_store_user(admin, &store, "alice", "alice@example.com").await;

    // Resources: a tagged bucket, a tagged EC2 instance and an IAM role.
    let bucket = account
        .bucket(
            &format!("logs-{}", account.id),
            &[("env", "dev"), ("team", "data")],
        )
        .await;
    let (status, body) = account
        .raw(
            "POST",
            "/",
            "ec2",
            "application/x-www-form-urlencoded",
            "Action=RunInstances&Version=2016-11-15&ImageId=ami-12c6146b&MinCount=1&MaxCount=1\
             &TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=Name\
             &TagSpecification.1.Tag.1.Value=web-1",
        )
        .await;
    assert_eq!(status, 200, "RunInstances: {body}");
    // Three tags: two ListRoleTags pages at the tests' page size of two.
    role(
        admin,
        "deployer",
        &[
            ("team", "platform"),
            ("env", "prod"),
            ("owner", "ops@example.com"),
        ],
    )
    .await;

    let mut sink = CollectingSink::default();
    account.provider.sync(&mut sink).await.expect("sync");

    let organization = sink.resource(&org_arn);
    assert_eq!(organization.resource_type, ORGANIZATION_TYPE);
    assert_eq!(organization.parent, None);
    let engineering_arn = engineering.arn.as_str();
    let eng = sink.resource(engineering_arn);
    assert_eq!(
        (
            eng.resource_type.as_str(),
            eng.name.as_str(),
            eng.parent.as_deref()
        ),
        (OU_TYPE, "Engineering", Some(org_arn.as_str()))
    );
    assert_eq!(eng.tags, tags(&[("env", "prod")]));
    let plat = sink.resource(&platform.arn);
    assert_eq!(plat.parent.as_deref(), Some(engineering_arn));
    let app = sink.resource(&prod_app);
    assert_eq!(
        (
            app.resource_type.as_str(),
            app.name.as_str(),
            app.parent.as_deref()
        ),
        (ACCOUNT_TYPE, "prod-app", Some(platform.arn.as_str()))
    );
    assert_eq!(app.tags, tags(&[("team", "core")]));
    // The management account sits in the root.
    let management = sink.resource(&account.id);
    assert_eq!(management.resource_type, ACCOUNT_TYPE);
    assert_eq!(management.parent.as_deref(), Some(org_arn.as_str()));
    assert_eq!(sink.permissions_of(ACCOUNT_TYPE), ["Admin", "ReadOnly"]);

    let synced_bucket = sink.resource(&bucket);
    assert_eq!(synced_bucket.resource_type, "aws.s3.bucket");
    assert_eq!(synced_bucket.parent.as_deref(), Some(account.id.as_str()));
    assert_eq!(
        synced_bucket.tags,
        tags(&[("env", "dev"), ("team", "data")])
    );
    assert_eq!(sink.permissions_of("aws.s3.bucket"), ["read", "write"]);
    let web = sink.named("aws.ec2.instance", "web-1");
    assert!(web.id.starts_with("arn:aws:ec2:us-east-1:"), "{web:?}");
    assert_eq!(web.parent.as_deref(), Some(account.id.as_str()));
    assert_eq!(sink.permissions_of("aws.ec2.instance"), ["read", "write"]);
    let role = sink.named(ROLE_TYPE, "deployer");
    assert_eq!(
        role.id,
        format!("arn:aws:iam::{}:role/deployer", account.id)
    );
    assert_eq!(
        role.tags,
        tags(&[
            ("team", "platform"),
            ("env", "prod"),
            ("owner", "ops@example.com")
        ])
    );
    assert_eq!(sink.permissions_of(ROLE_TYPE), ["assume", "read", "write"]);
    // Nothing twice.
    let mut ids: Vec<&str> = sink.resources.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "duplicate ids");

    let synced_alice = sink
        .identities
        .iter()
        .find(|i| i.external_id == alice)
        .expect("alice synced");
    assert_eq!(synced_alice.email.as_deref(), Some("alice@example.com"));
    assert_eq!(synced_alice.display_name, "alice (test)");

    account.provider.health_check().await.expect("healthy");
}

#[tokio::test]
async fn sync_reports_identity_store_groups_with_their_members() {
    use std::collections::BTreeSet;

    let account = Account::new().await;
    let admin = &account.admin;
    let (_, store) = instance(admin).await;
    let alice = identity_store_user(admin, &store, "alice", "alice@example.com").await;
    let bob = identity_store_user(admin, &store, "bob", "bob@example.com").await;
    let engineering = identity_store_group(admin, &store, "Engineering").await;
    let empty = identity_store_group(admin, &store, "Empty").await;
    let everyone = identity_store_group(admin, &store, "Everyone").await;
    add_member(admin, &store, &engineering, &alice).await;
    add_member(admin, &store, &engineering, &bob).await;
    // More members than one ListGroupMemberships call returns (100), and more users than one
    // ListUsers call returns: the provider must follow the pages.
    let mut all = BTreeSet::from([alice.clone(), bob.clone()]);
    for i in 0..99 {
        let user = format!("user{i:02}");
        all.insert(identity_store_user(admin, &store, &user, &format!("{user}@example.com")).await);
    }
    for user in &all {
        add_member(admin, &store, &everyone, user).await;
    }

    let mut sink = CollectingSink::default();
    account.provider.sync(&mut sink).await.expect("sync");

    let identities: BTreeSet<String> = sink
        .identities
        .iter()
        .map(|i| i.external_id.clone())
        .collect();
    assert_eq!(identities, all);
    let groups: BTreeMap<&str, &str> = sink
        .groups
        .iter()
        .map(|g| (g.external_id.as_str(), g.display_name.as_str()))
        .collect();
    assert_eq!(
        groups,
        BTreeMap::from([
            (engineering.as_str(), "Engineering"),
            (empty.as_str(), "Empty"),
            (everyone.as_str(), "Everyone"),
        ])
    );
    let members_of = |group: &str| -> Vec<String> {
        let mut members: Vec<String> = sink
            .memberships
            .iter()
            .filter(|m| m.group_external_id == group)
            .map(|m| m.identity_external_id.clone())
            .collect();
        members.sort();
        members
    };
    let mut pair = vec![alice.clone(), bob.clone()];
    pair.sort();
    assert_eq!(members_of(&engineering), pair);
    assert!(members_of(&empty).is_empty());
    assert_eq!(members_of(&everyone), all.into_iter().collect::<Vec<_>>());
    assert_eq!(sink.memberships.len(), 2 + 101, "each membership once");
}

#[tokio::test]
async fn without_an_organization_the_account_alone_is_reported() {
    let account = Account::new().await;
    let mut sink = CollectingSink::default();
    account.provider.sync(&mut sink).await.expect("sync");
    let only = sink.resource(&account.id);
    assert_eq!(only.resource_type, ACCOUNT_TYPE);
    assert_eq!(only.parent, None);
    assert!(
        sink.resources
            .iter()
            .all(|r| r.resource_type != ORGANIZATION_TYPE),
        "{:?}",
        sink.resources
    );
    assert!(sink.permissions_of(ACCOUNT_TYPE).is_empty());
}

/// moto never throttles, so the interceptor answers the first attempt of every Organizations
/// and tagging call, and every third IAM request, with the service's own throttling error. The sync still
/// reports exactly what an unthrottled sync of the same account reports, the pacers counted
/// the throttled attempts, and Organizations requests, retries included, stayed at 5 a second.
#[tokio::test]
async fn a_throttled_sync_backs_off_retries_and_loses_nothing() {
    let account = Account::new().await;
    let admin = &account.admin;
    let root = organization_root(admin).await;
    let ou = organizational_unit(admin, &root, "Workloads", &[("env", "prod")]).await;
    for name in ["billing", "search"] {
        member_account(admin, &root, &ou.id, name, &[("team", name)]).await;
    }
    for i in 0..3 {
        account
            .bucket(&format!("data-{i}-{}", account.id), &[("env", "dev")])
            .await;
    }
    let oncall = role(
        admin,
        "oncall",
        &[("team", "sre"), ("env", "prod"), ("tier", "1")],
    )
    .await;

    let mut plain = CollectingSink::default();
    account.provider.sync(&mut plain).await.expect("sync");

    let log = CallLog::default();
    log.throttle_every("organizations", 2);
    log.throttle_every("tagging", 2);
    log.throttle_every("iam", 3);
    let throttled =
        AwsProvider::with_credentials(settings_for(&account.id, ""), testing_credentials())
            .intercepted(log.interceptor());
    let mut sink = CollectingSink::default();
    throttled
        .sync(&mut sink)
        .await
        .expect("sync despite throttling");

    let sorted = |sink: &CollectingSink| {
        let mut resources: Vec<_> = sink
            .resources
            .iter()
            .map(|r| (r.id.clone(), r.parent.clone(), r.tags.clone()))
            .collect();
        resources.sort();
        resources
    };
    assert_eq!(sorted(&sink), sorted(&plain));
    assert_eq!(sink.resource(&ou.arn).tags, tags(&[("env", "prod")]));
    assert_eq!(
        sink.resource(&oncall).tags,
        tags(&[("team", "sre"), ("env", "prod"), ("tier", "1")])
    );
    assert_eq!(
        sink.resources
            .iter()
            .filter(|r| r.resource_type == "aws.s3.bucket")
            .count(),
        3
    );

    let injected = log.throttled();
    for service in ["organizations", "tagging", "iam"] {
        assert!(
            injected.iter().any(|call| call.service == service),
            "no {service} request was throttled: {:?}",
            log.counts()
        );
    }
    // Organizations and tagging have the SDK's retries off: each throttled answer is one the
    // pacer saw and retried. (IAM's are retried by the SDK first.)
    let connected = throttled.connected().await;
    let pacing = &connected.clients.pacing;
    for pacer in [&pacing.organizations, &pacing.tagging] {
        let counts = pacer.counts();
        let service = pacer.service();
        let injected = injected.iter().filter(|c| c.service == service).count() as u64;
        assert_eq!(counts.throttled, injected, "{service}: {counts:?}");
        assert_eq!(
            counts.attempts,
            log.counts()[service] as u64,
            "{service}: every request is a paced attempt"
        );
    }
    let organizations = log.times("organizations");
    let busiest = most_within(&organizations, std::time::Duration::from_secs(1));
    assert!(
        busiest <= 6,
        "{busiest} Organizations requests within one second (quota 5, evenly spaced)"
    );
}

fn account_grant(account: &str, permission: &str, email: &str) -> GrantSpec {
    GrantSpec {
        grant_id: format!("g-{}", uuid::Uuid::new_v4().simple()),
        identity: email.into(),
        resource_id: account.into(),
        resource_type: ACCOUNT_TYPE.into(),
        permission: permission.into(),
        expires_at: Some(Utc::now() + ChronoDuration::hours(1)),
        duration: Some(std::time::Duration::from_secs(3600)),
    }
}

/// The users holding `permission_set_arn` on `account`.
async fn assigned_users(
    admin: &Clients,
    instance_arn: &str,
    account: &str,
    permission_set_arn: &str,
) -> Vec<String> {
    let out = admin
        .sso_admin
        .list_account_assignments()
        .instance_arn(instance_arn)
        .account_id(account)
        .permission_set_arn(permission_set_arn)
        .send()
        .await
        .expect("ListAccountAssignments");
    out.account_assignments()
        .iter()
        .filter_map(|a| a.principal_id().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn an_account_grant_is_an_assignment_and_revoke_removes_it() {
    let account = Account::new().await;
    let admin = &account.admin;
    let (instance_arn, store) = instance(admin).await;
    let read_only = permission_set(admin, &instance_arn, "ReadOnly").await;
    let alice = identity_store_user(admin, &store, "alice", "alice@example.com").await;
    let grant = account_grant(&account.id, "ReadOnly", "alice@example.com");

    account.provider.grant(&grant).await.expect("granted");
    assert_eq!(
        assigned_users(admin, &instance_arn, &account.id, &read_only).await,
        std::slice::from_ref(&alice)
    );
    // A redelivered grant finds the assignment and does not add a second one (moto would).
    account.provider.grant(&grant).await.expect("granted again");
    assert_eq!(
        assigned_users(admin, &instance_arn, &account.id, &read_only).await,
        [alice]
    );

    account.provider.revoke(&grant).await.expect("revoked");
    assert!(
        assigned_users(admin, &instance_arn, &account.id, &read_only)
            .await
            .is_empty()
    );
    account
        .provider
        .revoke(&grant)
        .await
        .expect("revoked again");

    let nobody = account_grant(&account.id, "ReadOnly", "nobody@example.com");
    let err = account
        .provider
        .grant(&nobody)
        .await
        .expect_err("no such user");
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err:?}");
    let no_set = account_grant(&account.id, "PowerUser", "alice@example.com");
    let err = account
        .provider
        .grant(&no_set)
        .await
        .expect_err("no such set");
    assert!(err.to_string().contains("PowerUser"), "{err}");
}

/// IAM returns policy documents URL-encoded; moto may or may not.
fn decode_policy(text: &str) -> serde_json::Value {
    decode_document(text).unwrap_or_else(|| panic!("policy document {text:?} does not decode"))
}

#[tokio::test]
async fn a_resource_grant_is_an_inline_policy_until_the_expiry_and_revoke_removes_it() {
    let account = Account::new().await;
    let admin = &account.admin;
    admin
        .iam
        .create_user()
        .user_name("bob")
        .send()
        .await
        .expect("CreateUser");
    let bucket = account
        .bucket(&format!("data-{}", account.id), &[("env", "dev")])
        .await;
    let expires_at = (Utc::now() + ChronoDuration::hours(2)).trunc_subsecs(0);
    let grant = GrantSpec {
        grant_id: "grant/42".into(),
        identity: "bob@example.com".into(),
        resource_id: bucket.clone(),
        resource_type: "aws.s3.bucket".into(),
        permission: "read".into(),
        expires_at: Some(expires_at),
        duration: Some(std::time::Duration::from_secs(7200)),
    };
    let name = policy_name(&grant.grant_id);

    account.provider.grant(&grant).await.expect("granted");
    account.provider.grant(&grant).await.expect("granted again");
    let listed = admin
        .iam
        .list_user_policies()
        .user_name("bob")
        .send()
        .await
        .expect("ListUserPolicies");
    assert_eq!(listed.policy_names(), std::slice::from_ref(&name));
    let policy = admin
        .iam
        .get_user_policy()
        .user_name("bob")
        .policy_name(&name)
        .send()
        .await
        .expect("GetUserPolicy");
    let document = decode_policy(policy.policy_document());
    let expected = policy_document(
        &["s3:GetObject".to_string(), "s3:ListBucket".to_string()],
        "aws.s3.bucket",
        &bucket,
        Some(expires_at),
    );
    assert_eq!(document, expected);
    assert_eq!(
        document["Statement"][0]["Condition"]["DateLessThan"]["aws:CurrentTime"],
        expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );

    account.provider.revoke(&grant).await.expect("revoked");
    let listed = admin
        .iam
        .list_user_policies()
        .user_name("bob")
        .send()
        .await
        .expect("ListUserPolicies");
    assert!(listed.policy_names().is_empty(), "{listed:?}");
    account
        .provider
        .revoke(&grant)
        .await
        .expect("revoked again");

    // A user that does not exist is reported as such, naming the user and the template.
    let mut carol = grant.clone();
    carol.identity = "carol@example.com".into();
    let err = account
        .provider
        .grant(&carol)
        .await
        .expect_err("no IAM user carol");
    assert!(matches!(err, ProviderError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("\"carol\""), "{err}");
    // A permission the template does not offer is invalid before any call.
    let mut admin_grant = grant.clone();
    admin_grant.permission = "admin".into();
    let err = account
        .provider
        .grant(&admin_grant)
        .await
        .expect_err("no such permission");
    assert!(matches!(err, ProviderError::Invalid { .. }), "{err:?}");
}

/// Turns moto's IAM enforcement off when dropped, so a failing test does not leave it on for
/// the tests after it. Blocking I/O, because `Drop` cannot await.
struct EnforcementOn;

impl EnforcementOn {
    async fn start() -> Self {
        let (status, body) = raw_request("POST", "/moto-api/reset-auth", "iam", "", "0", &[]).await;
        assert_eq!(status, 200, "reset-auth 0: {body}");
        EnforcementOn
    }
}

impl Drop for EnforcementOn {
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let url = moto_url();
        let host = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let result = std::net::TcpStream::connect(&host).and_then(|mut stream| {
            write!(
                stream,
                "POST /moto-api/reset-auth HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
                 Content-Length: 3\r\n\r\ninf"
            )?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        });
        match result {
            Ok(response) if response.starts_with("HTTP/1.1 200") => {}
            other => eprintln!("turning moto's IAM enforcement off failed: {other:?}"),
        }
    }
}

/// With moto enforcing IAM and the user's own keys: denied before the grant, allowed during it,
/// denied after it ends. moto does not evaluate `aws:CurrentTime`, so the end is the connector's
/// revoke, which is what the control plane sends at expiry.
#[tokio::test]
async fn with_iam_enforced_the_user_is_denied_before_allowed_during_and_denied_after() {
    let account = Account::exclusive().await;
    let admin = &account.admin;
    let keys = |out: aws_sdk_iam::operation::create_access_key::CreateAccessKeyOutput| {
        let key = out.access_key().expect("access key");
        Credentials::new(
            key.access_key_id(),
            key.secret_access_key(),
            None,
            None,
            "latch-tests",
        )
    };
    // The connector's own user, allowed everything, and bob, allowed nothing.
    admin
        .iam
        .create_user()
        .user_name("latch-admin")
        .send()
        .await
        .expect("CreateUser");
    admin
        .iam
        .put_user_policy()
        .user_name("latch-admin")
        .policy_name("everything")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        )
        .send()
        .await
        .expect("PutUserPolicy");
    let admin_keys = keys(
        admin
            .iam
            .create_access_key()
            .user_name("latch-admin")
            .send()
            .await
            .expect("CreateAccessKey"),
    );
    admin
        .iam
        .create_user()
        .user_name("bob")
        .send()
        .await
        .expect("CreateUser");
    let bob_keys = keys(
        admin
            .iam
            .create_access_key()
            .user_name("bob")
            .send()
            .await
            .expect("CreateAccessKey"),
    );
    let role = admin
        .iam
        .create_role()
        .role_name("billing-reader")
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .expect("CreateRole");
    let role_arn = role.role().expect("role").arn().to_string();

    // Plain keys: moto finds the account from the access key, no role to assume.
    let integration = IntegrationConfig {
        name: "aws-test".into(),
        kind: "aws".into(),
        rate_limit_per_sec: None,
        settings: format!("region = \"us-east-1\"\nendpoint_url = \"{}\"", moto_url())
            .parse()
            .expect("toml"),
    };
    let plain = AwsSettings::parse(&integration).expect("settings");
    let provider = AwsProvider::with_credentials(plain.clone(), admin_keys);
    let bob = Clients::new(&load_config(&plain, Some(bob_keys)).await);
    let read_role = || bob.iam.get_role().role_name("billing-reader").send();

    let grant = GrantSpec {
        grant_id: "enforced-1".into(),
        identity: "bob@example.com".into(),
        resource_id: role_arn.clone(),
        resource_type: ROLE_TYPE.into(),
        permission: "read".into(),
        expires_at: Some(Utc::now() + ChronoDuration::hours(1)),
        duration: Some(std::time::Duration::from_secs(3600)),
    };

    let enforcement = EnforcementOn::start().await;
    let before = read_role()
        .await
        .expect_err("bob may not read the role yet");
    let before = super::errors::classify(before, "bob reading the role");
    assert!(matches!(before, ProviderError::Denied { .. }), "{before:?}");

    provider
        .grant(&grant)
        .await
        .expect("granted with the connector's keys");
    let during = read_role()
        .await
        .expect("bob reads the role during the grant");
    assert_eq!(during.role().map(|r| r.arn()), Some(role_arn.as_str()));

    provider.revoke(&grant).await.expect("revoked");
    let after = read_role()
        .await
        .expect_err("bob may not read the role after the grant");
    let after = super::errors::classify(after, "bob reading the role");
    assert!(matches!(after, ProviderError::Denied { .. }), "{after:?}");
    drop(enforcement);

    // Enforcement is off again: the fake keys work.
    account
        .admin
        .sts
        .get_caller_identity()
        .send()
        .await
        .expect("enforcement is off");
}

#[tokio::test]
async fn revoking_a_role_grant_ends_the_sessions_issued_before_it() {
    let account = Account::new().await;
    let admin = &account.admin;
    admin
        .iam
        .create_user()
        .user_name("dana")
        .send()
        .await
        .expect("CreateUser");
    let role = admin
        .iam
        .create_role()
        .role_name("oncall")
        .path("/teams/")
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .expect("CreateRole");
    let role_arn = role.role().expect("role").arn().to_string();
    let grant = GrantSpec {
        grant_id: "assume-1".into(),
        identity: "dana@example.com".into(),
        resource_id: role_arn.clone(),
        resource_type: ROLE_TYPE.into(),
        permission: "assume".into(),
        expires_at: Some(Utc::now() + ChronoDuration::hours(1)),
        duration: Some(std::time::Duration::from_secs(3600)),
    };
    account.provider.grant(&grant).await.expect("granted");
    let policy = admin
        .iam
        .get_user_policy()
        .user_name("dana")
        .policy_name(policy_name("assume-1"))
        .send()
        .await
        .expect("GetUserPolicy");
    let document = decode_policy(policy.policy_document());
    assert_eq!(
        document["Statement"][0]["Action"],
        serde_json::json!(["sts:AssumeRole"])
    );
    assert_eq!(
        document["Statement"][0]["Resource"],
        serde_json::json!([role_arn])
    );

    let before_revoke = Utc::now().trunc_subsecs(0);
    account.provider.revoke(&grant).await.expect("revoked");
    let deny = admin
        .iam
        .get_role_policy()
        .role_name("oncall")
        .policy_name(REVOKE_SESSIONS_POLICY)
        .send()
        .await
        .expect("the role carries the session deny");
    let deny = decode_policy(deny.policy_document());
    assert_eq!(deny["Statement"][0]["Effect"], "Deny");
    let issued_before = deny["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
        .as_str()
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
        .expect("an RFC 3339 time");
    assert!(
        issued_before >= before_revoke && issued_before <= Utc::now(),
        "{issued_before} is the revoke time"
    );
    let listed = admin
        .iam
        .list_user_policies()
        .user_name("dana")
        .send()
        .await
        .expect("ListUserPolicies");
    assert!(listed.policy_names().is_empty(), "{listed:?}");
}
