//! The issue's benchmark: a sync of an organization with 500 accounts in 10 OUs, 50 permission
//! sets, 20 tagged IAM roles and 20,000 tagged resources, in moto; its time, the API calls it
//! made per service, and whether each paced service kept to its quota. Baseline in the same
//! run: the same sync with pacing off, which is what moto itself takes to answer those calls.
//!
//! ```sh
//! eval "$(scripts/moto.sh start)"   # a fresh moto: restart it afterwards (see below)
//! LATCH_BENCH_RESOURCES=20000 cargo test -p latch-connector --lib \
//!     providers::aws::tests::bench -- --ignored --nocapture
//! ```
//!
//! **Resources.** All in the connector's own account (the tagging API answers for one account
//! and Region), spread over eight types roughly as an estate mixes them: S3 buckets 20 %, SSM
//! parameters 20 %, log groups 15 %, EC2 instances 10 %, SQS queues 10 %, SNS topics 10 %,
//! Secrets Manager secrets 10 %, KMS keys 5 %; each with two to four tags (`env`, `team`, and
//! for some `cost-center` and `Name`). They are made by raw requests, a few at a time; EC2
//! instances 500 per RunInstances, which moto makes slower as an account fills (a minute per
//! 500 past 10,000), hence the cheaper types for the rest.
//!
//! **Restart moto afterwards** (`scripts/moto.sh stop`, then `start`): with 500 more accounts,
//! every later AssumeRole with the fake base key makes moto visit them all, and the other tests
//! time out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::call_log::{CallLog, most_within};
use super::{
    Account, instance, member_account, organization_root, organizational_unit, permission_set,
    raw_request, role, settings_for, testing_credentials,
};
use crate::provider::Provider;
use crate::providers::aws::AwsProvider;
use crate::providers::aws::inventory::{OU_TYPE, ROLE_TYPE};
use crate::providers::aws::pacing::Quota;
use crate::providers::aws::settings::ACCOUNT_TYPE;
use crate::testing::CollectingSink;

const ACCOUNTS: usize = 500;
const OUS: usize = 10;
const PERMISSION_SETS: usize = 50;
const ROLES: usize = 20;
/// Instances per RunInstances.
const PER_RUN: usize = 500;
/// Seeding requests in flight at once; moto serves them in threads.
const SEEDERS: usize = 4;

/// The resource types seeded, with their share in percent and the synced type.
const MIX: [(Kind, usize, &str); 8] = [
    (Kind::Bucket, 20, "aws.s3.bucket"),
    (Kind::Parameter, 20, "aws.ssm.parameter"),
    (Kind::LogGroup, 15, "aws.logs.log-group"),
    (Kind::Instance, 10, "aws.ec2.instance"),
    (Kind::Queue, 10, "aws.sqs.queue"),
    (Kind::Topic, 10, "aws.sns.topic"),
    (Kind::Secret, 10, "aws.secretsmanager.secret"),
    (Kind::Key, 5, "aws.kms.key"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bucket,
    Parameter,
    LogGroup,
    Instance,
    Queue,
    Topic,
    Secret,
    Key,
}

/// How many of each kind make `total`; instances in whole RunInstances, the rest in buckets.
fn plan(total: usize) -> Vec<(Kind, usize, &'static str)> {
    let mut plan: Vec<_> = MIX
        .iter()
        .map(|&(kind, share, synced)| {
            let mut count = total * share / 100;
            if kind == Kind::Instance && count > PER_RUN {
                count -= count % PER_RUN;
            }
            (kind, count, synced)
        })
        .collect();
    let planned: usize = plan.iter().map(|(_, count, _)| count).sum();
    plan[0].1 += total - planned;
    plan
}

/// The tags of resource `i`: two to four, with a skew like real estates' (few values of
/// `env`, a few dozen teams, cost centres on some).
fn tags_of(i: usize) -> Vec<(String, String)> {
    let env = match i % 5 {
        0 | 1 => "prod",
        2 => "staging",
        _ => "dev",
    };
    let mut tags = vec![
        ("env".to_string(), env.to_string()),
        ("team".to_string(), format!("team-{:02}", (i * 7) % 25)),
    ];
    if i.is_multiple_of(2) {
        tags.push(("cost-center".to_string(), format!("cc-{}", 100 + i % 40)));
    }
    if i.is_multiple_of(3) {
        tags.push(("Name".to_string(), format!("res-{i}")));
    }
    tags
}

/// Makes resource `i` of `kind` in `account` with its tags; for instances, `n` of them.
async fn seed_one(account: &str, kind: Kind, i: usize, n: usize) {
    let tags = tags_of(i);
    let json_tags = |key: &str, value: &str| -> String {
        tags.iter()
            .map(|(k, v)| format!(r#"{{"{key}":"{k}","{value}":"{v}"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    };
    let query_tags = |prefix: &str| -> String {
        tags.iter()
            .enumerate()
            .map(|(n, (k, v))| format!("&{prefix}.{}.Key={k}&{prefix}.{}.Value={v}", n + 1, n + 1))
            .collect()
    };
    let form = "application/x-www-form-urlencoded";
    let json = "application/x-amz-json-1.1";
    let (service, content_type, target, body, path, method) = match kind {
        Kind::Bucket => {
            let name = format!("bench-{account}-{i}");
            let (status, text) = raw_request(
                "PUT",
                &format!("/{name}"),
                "s3",
                "",
                "",
                &[("x-moto-account-id", account)],
            )
            .await;
            assert_eq!(status, 200, "CreateBucket {name}: {text}");
            let tag_xml: String = tags
                .iter()
                .map(|(k, v)| format!("<Tag><Key>{k}</Key><Value>{v}</Value></Tag>"))
                .collect();
            (
                "s3",
                "application/xml",
                None,
                format!("<Tagging><TagSet>{tag_xml}</TagSet></Tagging>"),
                format!("/{name}?tagging"),
                "PUT",
            )
        }
        Kind::Parameter => (
            "ssm",
            json,
            Some("AmazonSSM.PutParameter"),
            format!(
                r#"{{"Name":"/bench/param-{i}","Value":"v","Type":"String","Tags":[{}]}}"#,
                json_tags("Key", "Value")
            ),
            "/".to_string(),
            "POST",
        ),
        Kind::LogGroup => {
            let map: Vec<String> = tags
                .iter()
                .map(|(k, v)| format!(r#""{k}":"{v}""#))
                .collect();
            (
                "logs",
                json,
                Some("Logs_20140328.CreateLogGroup"),
                format!(
                    r#"{{"logGroupName":"/bench/group-{i}","tags":{{{}}}}}"#,
                    map.join(",")
                ),
                "/".to_string(),
                "POST",
            )
        }
        Kind::Instance => (
            "ec2",
            form,
            None,
            format!(
                "Action=RunInstances&Version=2016-11-15&ImageId=ami-12c6146b\
                 &MinCount={n}&MaxCount={n}&TagSpecification.1.ResourceType=instance\
                 {}",
                query_tags("TagSpecification.1.Tag")
            ),
            "/".to_string(),
            "POST",
        ),
        Kind::Queue => {
            let map: Vec<String> = tags
                .iter()
                .map(|(k, v)| format!(r#""{k}":"{v}""#))
                .collect();
            (
                "sqs",
                "application/x-amz-json-1.0",
                Some("AmazonSQS.CreateQueue"),
                format!(
                    r#"{{"QueueName":"bench-queue-{i}","tags":{{{}}}}}"#,
                    map.join(",")
                ),
                "/".to_string(),
                "POST",
            )
        }
        Kind::Topic => (
            "sns",
            form,
            None,
            format!(
                "Action=CreateTopic&Version=2010-03-31&Name=bench-topic-{i}{}",
                query_tags("Tags.member")
            ),
            "/".to_string(),
            "POST",
        ),
        Kind::Secret => (
            "secretsmanager",
            json,
            Some("secretsmanager.CreateSecret"),
            format!(
                r#"{{"Name":"bench-secret-{i}","SecretString":"s","Tags":[{}]}}"#,
                json_tags("Key", "Value")
            ),
            "/".to_string(),
            "POST",
        ),
        Kind::Key => (
            "kms",
            json,
            Some("TrentService.CreateKey"),
            format!(r#"{{"Tags":[{}]}}"#, json_tags("TagKey", "TagValue")),
            "/".to_string(),
            "POST",
        ),
    };
    let mut headers = vec![("x-moto-account-id", account)];
    if let Some(target) = target {
        headers.push(("X-Amz-Target", target));
    }
    let (status, text) = raw_request(method, &path, service, content_type, &body, &headers).await;
    assert!(
        status == 200 || status == 204,
        "{kind:?} {i}: {status} {text}"
    );
}

/// Seeds the plan, [`SEEDERS`] requests at a time.
async fn seed_resources(account: &str, plan: &[(Kind, usize, &'static str)]) {
    let mut work = Vec::new();
    for &(kind, count, _) in plan {
        let step = if kind == Kind::Instance { PER_RUN } else { 1 };
        work.extend(
            (0..count)
                .step_by(step)
                .map(|i| (kind, i, step.min(count - i))),
        );
    }
    let work = Arc::new(work);
    let mut seeders = JoinSet::new();
    for seeder in 0..SEEDERS {
        let (work, account) = (work.clone(), account.to_string());
        seeders.spawn(async move {
            for &(kind, i, n) in work.iter().skip(seeder).step_by(SEEDERS) {
                seed_one(&account, kind, i, n).await;
            }
        });
    }
    while let Some(done) = seeders.join_next().await {
        done.expect("seeder");
    }
}

/// The organization: `OUS` OUs and `ACCOUNTS` accounts spread over them, all tagged.
async fn seed_organization(account: &Arc<Account>) {
    let admin = &account.admin;
    let root = organization_root(admin).await;
    let mut ous = Vec::new();
    for i in 0..OUS {
        let ou = organizational_unit(
            admin,
            &root,
            &format!("ou-{i}"),
            &[("index", &i.to_string())],
        )
        .await;
        ous.push(ou.id);
    }
    let ous = Arc::new(ous);
    let mut tasks = JoinSet::new();
    for worker in 0..SEEDERS {
        let (account, ous, root) = (account.clone(), ous.clone(), root.clone());
        tasks.spawn(async move {
            for i in (worker..ACCOUNTS).step_by(SEEDERS) {
                let env = if i.is_multiple_of(2) { "prod" } else { "dev" };
                let team = format!("team-{:02}", i % 25);
                member_account(
                    &account.admin,
                    &root,
                    &ous[i % ous.len()],
                    &format!("acct-{i}"),
                    &[("env", env), ("team", &team)],
                )
                .await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("seeding task");
    }
}

/// One sync's numbers.
struct Run {
    took: Duration,
    sink: CollectingSink,
    log: CallLog,
}

async fn sync(provider: &AwsProvider, log: &CallLog) -> Run {
    log.clear();
    let mut sink = CollectingSink::default();
    let started = Instant::now();
    provider.sync(&mut sink).await.expect("sync");
    Run {
        took: started.elapsed(),
        sink,
        log: log.clone(),
    }
}

/// The quota each signing name is paced at (`sts` and `identitystore` are not paced).
fn quota_of(service: &str) -> Option<Quota> {
    match service {
        "organizations" => Some(Quota::ORGANIZATIONS),
        "tagging" => Some(Quota::TAGGING),
        "iam" => Some(Quota::IAM),
        "sso" => Some(Quota::IDENTITY_CENTER),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: seeds 500 accounts and 20,000 resources into moto for minutes; run with --ignored"]
async fn bench_sync_500_accounts_50_permission_sets_20000_resources() {
    let resources: usize = std::env::var("LATCH_BENCH_RESOURCES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let plan = plan(resources);

    let account = Arc::new(Account::new().await);
    let paced_log = CallLog::default();
    let paced = AwsProvider::with_credentials(settings_for(&account.id, ""), testing_credentials())
        .intercepted(paced_log.interceptor());
    let unpaced_log = CallLog::default();
    let unpaced =
        AwsProvider::with_credentials(settings_for(&account.id, ""), testing_credentials())
            .intercepted(unpaced_log.interceptor())
            .unpaced();
    // Both providers assume their role now, before the 500 accounts exist: moto resolves the
    // base key of an AssumeRole by visiting every account's IAM backend, each of which loads
    // the 1,582 AWS-managed policies on first visit (minutes and gigabytes for 500 accounts).
    // The assumed credentials are cached for the whole benchmark.
    paced.health_check().await.expect("healthy");
    unpaced.health_check().await.expect("healthy");

    let seeding = Instant::now();
    seed_organization(&account).await;
    let (instance_arn, _) = instance(&account.admin).await;
    for i in 0..PERMISSION_SETS {
        permission_set(&account.admin, &instance_arn, &format!("Set{i:02}")).await;
    }
    for i in 0..ROLES {
        let team = format!("team-{:02}", i % 25);
        role(
            &account.admin,
            &format!("bench-role-{i}"),
            &[("team", team.as_str()), ("env", "prod"), ("tier", "2")],
        )
        .await;
    }
    let organization_seeded = seeding.elapsed();
    seed_resources(&account.id, &plan).await;
    let seeded = seeding.elapsed();
    println!(
        "bench: seeded {ACCOUNTS} accounts, {OUS} OUs, {PERMISSION_SETS} permission sets and \
         {ROLES} roles in {organization_seeded:.1?}, then {resources} resources \
         ({}) by {:.1?}",
        plan.iter()
            .map(|(kind, count, _)| format!("{kind:?} {count}"))
            .collect::<Vec<_>>()
            .join(", "),
        seeded
    );

    // Baseline, the paced sync, and the baseline again to see whether moto drifted.
    let baseline = sync(&unpaced, &unpaced_log).await;
    let baseline_calls = baseline.log.counts();
    let baseline_took = baseline.took;
    drop(baseline);
    let run = sync(&paced, &paced_log).await;
    let again = sync(&unpaced, &unpaced_log).await;

    let sink = &run.sink;
    let count = |kind: &str| {
        sink.resources
            .iter()
            .filter(|r| r.resource_type == kind)
            .count()
    };
    assert_eq!(
        count(ACCOUNT_TYPE),
        ACCOUNTS + 1,
        "the accounts and the management account"
    );
    assert_eq!(count(OU_TYPE), OUS);
    assert_eq!(count(ROLE_TYPE), ROLES);
    assert!(
        sink.resources
            .iter()
            .filter(|r| r.resource_type == ROLE_TYPE)
            .all(|r| r.tags.len() == 3),
        "every role has its three tags"
    );
    for &(_, seeded, synced) in &plan {
        assert_eq!(count(synced), seeded, "{synced}");
    }
    assert_eq!(sink.permissions_of(ACCOUNT_TYPE).len(), PERMISSION_SETS);
    assert!(sink.pages.iter().all(|&n| n <= 1000), "{:?}", sink.pages);
    assert_eq!(again.sink.resources.len(), sink.resources.len());

    let calls = run.log.counts();
    let total: usize = calls.values().sum();
    println!(
        "bench: paced sync of {} resources in {} pages took {:.1?} with {total} requests; \
         unpaced (moto alone) {baseline_took:.1?} before and {:.1?} after",
        sink.resources.len(),
        sink.pages.len(),
        run.took,
        again.took,
    );
    println!(
        "bench: | service | requests (paced) | requests (unpaced) | quota | pacing floor | \
         busiest 1 s | busiest 10 s | mean rate while active | throttled |"
    );
    let mut report = BTreeMap::new();
    for (service, &n) in &calls {
        let times = run.log.times(service);
        let busiest_1s = most_within(&times, Duration::from_secs(1));
        let busiest_10s = most_within(&times, Duration::from_secs(10));
        let span = times[times.len() - 1] - times[0];
        let mean = if span.is_zero() {
            0.0
        } else {
            (n - 1) as f64 / span.as_secs_f64()
        };
        let quota = quota_of(service);
        let floor = quota
            .map(|q| Duration::from_secs_f64(n.saturating_sub(1) as f64 / f64::from(q.per_second)));
        println!(
            "bench: | {service} | {n} | {} | {} | {} | {busiest_1s} | {busiest_10s} | {mean:.2}/s | {} |",
            baseline_calls.get(service).copied().unwrap_or(0),
            quota.map_or("not paced".to_string(), |q| format!("{}/s", q.per_second)),
            floor.map_or("-".to_string(), |f| format!("{f:.1?}")),
            run.log
                .throttled()
                .iter()
                .filter(|c| &c.service == service)
                .count(),
        );
        println!(
            "bench:   {service} operations: {:?}",
            run.log.operations(service)
        );
        if let Some(quota) = quota {
            // Evenly spaced: any one-second window holds at most `per_second` requests (plus one
            // for the clock at the window's edge).
            let bound = (quota.per_second + 1) as usize;
            assert!(
                busiest_1s <= bound,
                "{service}: {busiest_1s} requests in one second, quota {quota:?}"
            );
            assert!(
                busiest_10s <= (10 * quota.per_second + 1) as usize,
                "{service}: {busiest_10s} requests in ten seconds, quota {quota:?}"
            );
        }
        report.insert(
            service.clone(),
            serde_json::json!({
                "requests": n,
                "requests_unpaced": baseline_calls.get(service).copied().unwrap_or(0),
                "busiest_1s": busiest_1s,
                "busiest_10s": busiest_10s,
                "mean_per_s": (mean * 100.0).round() / 100.0,
            }),
        );
    }
    println!(
        "{}",
        serde_json::json!({
            "accounts": ACCOUNTS,
            "ous": OUS,
            "permission_sets": PERMISSION_SETS,
            "roles": ROLES,
            "resources": resources,
            "seeded_s": seeded.as_secs_f64().round(),
            "synced": sink.resources.len(),
            "paced_s": (run.took.as_secs_f64() * 10.0).round() / 10.0,
            "unpaced_before_s": (baseline_took.as_secs_f64() * 10.0).round() / 10.0,
            "unpaced_after_s": (again.took.as_secs_f64() * 10.0).round() / 10.0,
            "services": report,
        })
    );
}
