//! Connectors end to end: the real `latch-server`, `latch` and `latch-connector-fake` binaries,
//! started by the end-to-end harness (`latch-e2e`), on SQLite or a fresh PostgreSQL database.
//!
//! 1. **Inventory:** a fresh server, nothing applied; the fake connector (`noop`) starts with N
//!    things of 8 tags each, timed until the integration's `last_sync_at` is set; then the tags
//!    of 1 % of them change and a sync is asked for, timed until `last_sync_at` moves.
//! 2. **Floor:** a fresh database of the same backend, the same rows inserted directly into its
//!    `resources` table, 1,000 per multi-row `INSERT`, one transaction each.
//! 3. **Commands:** a fresh server with one user, one auto-approved flow and the connector's
//!    inventory synced; the connector stopped, requests made through the gRPC API, then the
//!    connector started, timed until every grant is active.
//! 4. **Baseline:** the same set-up on another fresh server, the same grant commands completed
//!    directly through the store, one after another, as the server does with the stream's results.
//!
//! The connector's memory is read from /proc: idle after its first sync of the commands set-up,
//! and its peak (VmHWM) after the big sync and after the resync. Each sync's time is split by the
//! connector's log (see [`phases`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use latch_e2e::fake_provider::{generated_tags, thing_id};
use latch_e2e::{Connector, ConnectorOptions, PgDatabase, Server, success};
use latch_proto::v1::access_request_service_client::AccessRequestServiceClient;
use latch_proto::v1::integration_service_client::IntegrationServiceClient;
use latch_proto::v1::{
    AccessItem, CreateAccessRequestRequest, GetIntegrationRequest, Integration,
    SyncIntegrationRequest,
};
use latch_server::store::{CommandResult, Store};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::lifecycle::{Backend, Database, Raw, on_raw, run_concurrently};
use crate::stats::{memory_of, pid_with_arg};

const INTEGRATION: &str = "fake-1";

/// How often the benchmark looks at the database while it waits.
const POLL: Duration = Duration::from_millis(50);

/// The longest any one wait may take before the run fails.
const PATIENCE: Duration = Duration::from_secs(1800);

/// How long the connector sits after its first sync before its idle memory is read.
const IDLE: Duration = Duration::from_secs(5);

const PEOPLE: &str = "users:\n  - { email: alice@example.com, groups: [engineering] }\n";

const FLOW: &str = r#"
name: fake-read
kind: self_serve
requesters: { any_of: [{ group: engineering }] }
targets:
  - integration: fake-1
    resource_types: [fake.thing]
    permissions: [read]
duration: { default: 1h, max: 1d }
approval: { mode: auto }
"#;

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub backend: Backend,
    /// Things in the big sync.
    pub resources: u64,
    /// Things whose tags change before the resync.
    pub changed: u64,
    /// Grant commands.
    pub requests: usize,
    /// The connector's `rate_limit_per_sec`.
    pub rate_limit: u32,
}

pub async fn run(shape: Shape) -> anyhow::Result<()> {
    let mut result = serde_json::json!({
        "benchmark": "connector",
        "backend": format!("{:?}", shape.backend).to_lowercase(),
        "resources": shape.resources,
        "changed": shape.changed,
        "requests": shape.requests,
        "rate_limit_per_sec": shape.rate_limit,
    });
    inventory(shape, &mut result).await?;
    floor(shape, &mut result).await?;
    commands(shape, &mut result).await?;
    println!("{result}");
    Ok(())
}

/// A fresh server, with a direct pool on its database for watching it.
struct Setup {
    server: Server,
    raw: Raw,
    admin: String,
    _database: Option<PgDatabase>,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn start(backend: Backend) -> anyhow::Result<Setup> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let database = (backend == Backend::Postgres).then(PgDatabase::create);
        let url = database.as_ref().map(|db| db.url.clone());
        let server = Server::start(&data, url.as_deref());
        let url = url.unwrap_or_else(|| format!("sqlite://{}", data.join("latch.db").display()));
        Ok(Setup {
            raw: Raw::connect(backend, &url).await?,
            admin: server.admin_token(),
            server,
            _database: database,
            dir,
        })
    }

    async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(Channel::from_shared(self.server.url())?.connect().await?)
    }

    /// The integration as `IntegrationService.GetIntegration` shows it.
    async fn integration(&self) -> anyhow::Result<Integration> {
        let mut client =
            IntegrationServiceClient::with_interceptor(self.channel().await?, bearer(&self.admin)?);
        let name = INTEGRATION.to_string();
        client
            .get_integration(GetIntegrationRequest { name })
            .await?
            .into_inner()
            .integration
            .context("no integration in the answer")
    }

    /// `latch integrations sync fake-1`, through the gRPC API.
    async fn ask_for_sync(&self) -> anyhow::Result<()> {
        let mut client =
            IntegrationServiceClient::with_interceptor(self.channel().await?, bearer(&self.admin)?);
        let name = INTEGRATION.to_string();
        client
            .sync_integration(SyncIntegrationRequest { name })
            .await?;
        Ok(())
    }

    /// Waits until the integration's `last_sync_at` is set and later than `after`; fails if the
    /// connector exits first.
    async fn synced_after(
        &self,
        connector: &mut Connector,
        after: Option<DateTime<Utc>>,
    ) -> anyhow::Result<DateTime<Utc>> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let at: Option<Option<DateTime<Utc>>> = on_raw!(&self.raw, |pool| sqlx::query_scalar(
                "SELECT last_sync_at FROM integrations WHERE name = $1"
            )
            .bind(INTEGRATION)
            .fetch_optional(pool)
            .await)?;
            if let Some(at) = at.flatten()
                && after.is_none_or(|after| at > after)
            {
                return Ok(at);
            }
            anyhow::ensure!(connector.is_running(), "the connector exited");
            anyhow::ensure!(Instant::now() < deadline, "no sync within {PATIENCE:?}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// The number a `SELECT COUNT(*)` on the server's database answers.
    async fn count(&self, sql: &'static str) -> anyhow::Result<i64> {
        Ok(on_raw!(&self.raw, |pool| sqlx::query_scalar::<_, i64>(
            sql
        )
        .fetch_one(pool)
        .await)?)
    }
}

/// Adds `authorization: Bearer TOKEN` to every call, as the CLI does.
fn bearer(
    token: &str,
) -> anyhow::Result<
    impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone + use<>,
> {
    let value: MetadataValue<Ascii> = format!("Bearer {token}").parse()?;
    Ok(move |mut request: tonic::Request<()>| {
        request
            .metadata_mut()
            .insert("authorization", value.clone());
        Ok(request)
    })
}

/// The fake connector's `fake-1`: `resources` things, grants and revokes that change nothing.
fn fake(resources: u64, rate_limit: u32) -> ConnectorOptions {
    ConnectorOptions {
        integration: INTEGRATION.into(),
        resources,
        noop: true,
        rate_limit_per_sec: Some(rate_limit),
        ..ConnectorOptions::default()
    }
}

/// The connector's memory now and at its peak, in MiB.
fn connector_memory(connector: &Connector) -> anyhow::Result<(f64, f64)> {
    pid_with_arg(&connector.config_file)
        .and_then(memory_of)
        .context("reading the connector's memory in /proc")
}

/// Where the connector's last sync spent its time, in seconds, by the connector's log and the
/// integration's `last_sync_at` (which the server takes when the sync's end reaches it):
/// from `since` until the connector began the sync; its paging (each page waits for the server to
/// take it); the server taking the pages still queued after the last one was sent; and the
/// server's end of the sync (deleting what was not seen) until the benchmark saw it, `seen`.
fn phases(
    connector: &Connector,
    since: DateTime<Utc>,
    recorded: DateTime<Utc>,
    seen: DateTime<Utc>,
) -> serde_json::Value {
    let log = connector.log_text();
    let logged = |what: &str| -> Option<DateTime<Utc>> {
        let line = log.lines().rev().find(|line| line.contains(what))?;
        let stamp = DateTime::parse_from_rfc3339(line.split_whitespace().next()?).ok()?;
        Some(stamp.with_timezone(&Utc))
    };
    let (Some(started), Some(finished)) = (logged("sync started"), logged("sync finished")) else {
        return serde_json::Value::Null;
    };
    let secs = |from: DateTime<Utc>, to: DateTime<Utc>| round((to - from).as_seconds_f64());
    serde_json::json!({
        "until_started": secs(since, started),
        "paging": secs(started, finished),
        "queued_pages": secs(finished, recorded),
        "finishing": secs(recorded, seen),
    })
}

/// 1. The big sync into a fresh server, then a resync with `changed` things retagged.
async fn inventory(shape: Shape, result: &mut serde_json::Value) -> anyhow::Result<()> {
    let setup = Setup::start(shape.backend).await?;
    let mut connector = Connector::create(
        &setup.server,
        "edge-1",
        fake(shape.resources, shape.rate_limit),
    );
    let (started, since) = (Instant::now(), Utc::now());
    connector.spawn();
    let first = setup.synced_after(&mut connector, None).await?;
    let ingest = started.elapsed().as_secs_f64();
    let ingest_phases = phases(&connector, since, first, Utc::now());
    let shown = setup.integration().await?;
    anyhow::ensure!(
        shown.resource_count == shape.resources + 1 && shown.last_error.is_empty(),
        "after the sync: {shown:?}"
    );
    let (_, connector_peak) = connector_memory(&connector)?;
    let server_peak = pid_with_arg(&setup.server.data_dir)
        .and_then(memory_of)
        .map_or(0.0, |(_, peak)| peak);
    eprintln!(
        "inventory: {} resources in {ingest:.1} s ({:.0}/s); connector peak RSS {connector_peak:.1} MiB, server peak RSS {server_peak:.0} MiB\n  phases (s): {ingest_phases}",
        shown.resource_count,
        shown.resource_count as f64 / ingest
    );

    // The resync: new tags on `changed` things spread evenly over the inventory.
    let overrides: serde_json::Map<String, serde_json::Value> = (0..shape.changed)
        .map(|k| {
            let i = k * shape.resources / shape.changed.max(1);
            (
                thing_id(INTEGRATION, i),
                serde_json::json!({ "env": "staging", "team": "moved" }),
            )
        })
        .collect();
    std::fs::write(
        &connector.tag_overrides_file,
        serde_json::to_vec(&overrides)?,
    )?;
    let (asked, since) = (Instant::now(), Utc::now());
    setup.ask_for_sync().await?;
    let second = setup.synced_after(&mut connector, Some(first)).await?;
    let resync = asked.elapsed().as_secs_f64();
    let resync_phases = phases(&connector, since, second, Utc::now());
    let retagged = setup
        .count(r#"SELECT COUNT(*) FROM resources WHERE tags LIKE '%"env":"staging"%'"#)
        .await?;
    anyhow::ensure!(
        retagged == shape.changed as i64,
        "{retagged} resources retagged, not {}",
        shape.changed
    );
    let (_, connector_peak_resync) = connector_memory(&connector)?;
    eprintln!(
        "resync: {} of {} changed, done {resync:.2} s after it was asked for; connector peak RSS {connector_peak_resync:.1} MiB\n  phases (s): {resync_phases}",
        shape.changed, shape.resources
    );
    result["ingest_s"] = round(ingest).into();
    result["resync_s"] = round(resync).into();
    result["ingest_phases_s"] = ingest_phases;
    result["resync_phases_s"] = resync_phases;
    result["connector_peak_rss_mib"] = round(connector_peak).into();
    result["connector_peak_rss_after_resync_mib"] = round(connector_peak_resync).into();
    result["server_peak_rss_mib"] = round(server_peak).into();
    Ok(())
}

/// 2. The floor: the same rows straight into a fresh `resources` table, 1,000 per transaction.
async fn floor(shape: Shape, result: &mut serde_json::Value) -> anyhow::Result<()> {
    struct Row {
        id: String,
        resource_type: &'static str,
        name: String,
        parent: Option<String>,
        ancestors: String,
        tags: String,
    }
    let root = format!("fake://{INTEGRATION}/root");
    let mut rows = vec![Row {
        id: root.clone(),
        resource_type: "fake.root",
        name: format!("{INTEGRATION} root"),
        parent: None,
        ancestors: "[]".into(),
        tags: "{}".into(),
    }];
    let ancestors = serde_json::to_string(&[&root])?;
    rows.extend((0..shape.resources).map(|i| Row {
        id: thing_id(INTEGRATION, i),
        resource_type: "fake.thing",
        name: format!("thing-{i:07}"),
        parent: Some(root.clone()),
        ancestors: ancestors.clone(),
        tags: serde_json::to_string(&generated_tags(i)).unwrap_or_default(),
    }));

    let db = Database::create(shape.backend).await?;
    let raw = db.raw().await?;
    let now = Utc::now();
    let started = Instant::now();
    for chunk in rows.chunks(1000) {
        on_raw!(&raw, |pool| {
            let mut tx = pool.begin().await?;
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO resources (id, integration, resource_type, name, parent, ancestors, \
                 tags, owners, source, first_seen, last_seen) ",
            );
            insert.push_values(chunk, |mut row, r| {
                row.push_bind(&r.id)
                    .push_bind(INTEGRATION)
                    .push_bind(r.resource_type)
                    .push_bind(&r.name)
                    .push_bind(r.parent.as_deref())
                    .push_bind(&r.ancestors)
                    .push_bind(&r.tags)
                    .push_bind("[]")
                    .push_bind(INTEGRATION)
                    .push_bind(now)
                    .push_bind(now);
            });
            insert.build().execute(&mut *tx).await?;
            tx.commit().await?;
            anyhow::Ok(())
        })?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "floor: {} rows inserted directly in {elapsed:.1} s ({:.0}/s)",
        rows.len(),
        rows.len() as f64 / elapsed
    );
    result["floor_insert_s"] = round(elapsed).into();
    drop(raw);
    db.drop_database().await;
    Ok(())
}

/// A fresh server with alice, the flow, and the connector's inventory of `requests` things
/// synced; the connector stopped after sitting idle, and `requests` requests made, so that their
/// grant commands wait. Returns the connector's memory when it was idle.
async fn commands_setup(shape: Shape) -> anyhow::Result<(Setup, Connector, (f64, f64))> {
    let setup = Setup::start(shape.backend).await?;
    for (file, text, command) in [
        ("people.yaml", PEOPLE, "directory"),
        ("flows.yaml", FLOW, "flows"),
    ] {
        let path = setup.dir.path().join(file);
        std::fs::write(&path, text)?;
        let path = path.display().to_string();
        success(
            &setup
                .server
                .cli(Some(&setup.admin), &[command, "apply", "-f", &path]),
        );
    }
    let created = success(&setup.server.cli(
        Some(&setup.admin),
        &[
            "-o",
            "json",
            "tokens",
            "create",
            "--user",
            "alice@example.com",
        ],
    ));
    let created: serde_json::Value = serde_json::from_str(&created)?;
    let alice = created["token"].as_str().context("no token")?.to_string();

    let mut connector = Connector::create(
        &setup.server,
        "edge-1",
        fake(shape.requests as u64, shape.rate_limit),
    );
    connector.spawn();
    setup.synced_after(&mut connector, None).await?;
    tokio::time::sleep(IDLE).await;
    let idle = connector_memory(&connector)?;
    connector.stop();

    let client =
        AccessRequestServiceClient::with_interceptor(setup.channel().await?, bearer(&alice)?);
    run_concurrently(shape.requests, 16, move |i| {
        let mut client = client.clone();
        async move {
            let asked = client
                .create_access_request(CreateAccessRequestRequest {
                    items: vec![AccessItem {
                        resource_id: thing_id(INTEGRATION, i as u64),
                        permission: "read".into(),
                    }],
                    duration: None,
                    justification: "benchmark".into(),
                })
                .await?
                .into_inner();
            let state = asked.request.map(|r| r.state).unwrap_or_default();
            anyhow::ensure!(state == "granting", "request {i} is {state}");
            Ok(())
        }
    })
    .await?;
    Ok((setup, connector, idle))
}

const ACTIVE: &str = "SELECT COUNT(*) FROM grants WHERE state = 'active'";

/// 3. and 4.: the grant commands through the connector, then directly through the store.
async fn commands(shape: Shape, result: &mut serde_json::Value) -> anyhow::Result<()> {
    let total = shape.requests as i64;
    let (setup, mut connector, (idle_rss, idle_peak)) = commands_setup(shape).await?;
    eprintln!(
        "connector idle: RSS {idle_rss:.1} MiB (peak {idle_peak:.1} MiB) after syncing {} resources",
        shape.requests + 1
    );
    let started = Instant::now();
    connector.spawn();
    let mut first = None;
    loop {
        let active = setup.count(ACTIVE).await?;
        if active > 0 && first.is_none() {
            first = Some(started.elapsed().as_secs_f64());
        }
        if active == total {
            break;
        }
        anyhow::ensure!(connector.is_running(), "the connector exited");
        anyhow::ensure!(
            started.elapsed() < PATIENCE,
            "{active} of {total} grants active after {PATIENCE:?}"
        );
        tokio::time::sleep(POLL).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let first = first.unwrap_or(elapsed);
    let rate = total as f64 / elapsed;
    eprintln!(
        "commands: {total} grants active {elapsed:.2} s after the connector started = {rate:.0}/s (first after {first:.2} s)"
    );
    drop(connector);
    drop(setup);

    let (setup, _connector, _) = commands_setup(shape).await?;
    let store: Arc<dyn Store> = setup.server.store().await;
    let started = Instant::now();
    let open = store.open_commands(shape.requests as u32 + 1).await?;
    anyhow::ensure!(open.len() == shape.requests, "{} open commands", open.len());
    for command in &open {
        store
            .complete_command(&command.id, &CommandResult::Done, "bench", Utc::now())
            .await?;
    }
    let floor = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        setup.count(ACTIVE).await? == total,
        "not every grant is active"
    );
    let floor_rate = total as f64 / floor;
    eprintln!("commands through the store: {total} in {floor:.2} s = {floor_rate:.0}/s");
    result["connector_idle_rss_mib"] = round(idle_rss).into();
    result["grants_s"] = round(elapsed).into();
    result["grants_per_s"] = rate.round().into();
    result["first_grant_s"] = round(first).into();
    result["store_grants_s"] = round(floor).into();
    result["store_grants_per_s"] = floor_rate.round().into();
    Ok(())
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}
