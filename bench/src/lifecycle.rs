//! Lifecycle benchmarks on a real database: the durable request path against a raw insert loop,
//! and expiry (spread, burst, and overdue at start).
//!
//! Each run makes a fresh database: a SQLite file in a temporary folder with the server's own
//! settings (WAL, `synchronous=FULL`), or a new PostgreSQL database dropped afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use latch_core::directory::parse_directory_yaml;
use latch_core::flow::parse_yaml;
use latch_server::lifecycle::{Actor, Ask, Lifecycle, STATIC_SOURCE, Settings, sweeper};
use latch_server::store::{
    CommandResult, FlowVersion, PostgresStore, RequestItem, ResourceRecord, SqliteStore, Store,
    StoredDirectory,
};
use sqlx::{Connection, Row};

use crate::stats::Latencies;

/// Which database to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// People and resources the requests spread over; every (person, resource) pair is asked once.
const USERS: usize = 1000;
const RESOURCES: usize = 1000;

const FLOW: &str = r#"
name: bench-read
kind: self_serve
requesters: { any_of: [{ group: engineering }] }
targets:
  - integration: bench
    resource_types: [bench.db]
    permissions: [read]
duration: { default: 1h, max: 1d }
approval: { mode: auto }
"#;

/// A fresh database with the store on it, and a way to reach the same database directly.
pub struct Database {
    pub backend: Backend,
    pub store: Arc<dyn Store>,
    url: String,
    postgres_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

fn admin_url() -> String {
    std::env::var("LATCH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl Database {
    pub async fn create(backend: Backend) -> anyhow::Result<Database> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("latch.db");
                let store = SqliteStore::open(&path).await?;
                Ok(Database {
                    backend,
                    store: Arc::new(store),
                    url: format!("sqlite://{}", path.display()),
                    postgres_name: None,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => {
                let admin = admin_url();
                let name = format!("latch_bench_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .context("connecting to PostgreSQL at 127.0.0.1:5432")?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await?;
                let url = match admin.rsplit_once('/') {
                    Some((base, _)) => format!("{base}/{name}"),
                    None => anyhow::bail!("LATCH_TEST_POSTGRES_URL must end in /DATABASE"),
                };
                let store = PostgresStore::connect(&url).await?;
                Ok(Database {
                    backend,
                    store: Arc::new(store),
                    url,
                    postgres_name: Some(name),
                    _dir: None,
                })
            }
        }
    }

    /// Opens the store again, as a server starting on this database would.
    pub async fn reopen(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(match self.backend {
            Backend::Sqlite => {
                let path = self.url.trim_start_matches("sqlite://");
                Arc::new(SqliteStore::open(std::path::Path::new(path)).await?)
            }
            Backend::Postgres => Arc::new(PostgresStore::connect(&self.url).await?),
        })
    }

    /// Runs statements behind the store's back (benchmark set-up only).
    pub(crate) async fn raw(&self) -> anyhow::Result<Raw> {
        Raw::connect(self.backend, &self.url).await
    }

    pub async fn drop_database(mut self) {
        if let Some(name) = self.postgres_name.take()
            && let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url()).await
        {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await;
        }
    }
}

/// A direct pool on the benchmark's database.
pub(crate) enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Raw {
    /// A pool on the database at `url` (`sqlite://PATH` or `postgres://...`), with the server's
    /// SQLite settings.
    pub(crate) async fn connect(backend: Backend, url: &str) -> anyhow::Result<Raw> {
        Ok(match backend {
            Backend::Sqlite => Raw::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(8)
                    .connect_with(
                        url.parse::<sqlx::sqlite::SqliteConnectOptions>()?
                            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                            .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                            .busy_timeout(Duration::from_secs(10)),
                    )
                    .await?,
            ),
            Backend::Postgres => Raw::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(16)
                    .connect(url)
                    .await?,
            ),
        })
    }
}

/// Binds the same arguments to the same SQL on either pool (the SQL uses `$N` placeholders,
/// which both accept).
macro_rules! on_raw {
    ($raw:expr, |$pool:ident| $body:expr) => {
        match $raw {
            $crate::lifecycle::Raw::Sqlite($pool) => $body,
            $crate::lifecycle::Raw::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_raw;

/// Flows, people and resources for the benchmarks.
pub async fn seed(store: &dyn Store) -> anyhow::Result<()> {
    let mut people = String::from("users:\n");
    for n in 0..USERS {
        people.push_str(&format!(
            "  - {{ email: user{n}@example.com, groups: [engineering] }}\n"
        ));
    }
    let spec = parse_directory_yaml(&people).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    store
        .replace_directory(
            STATIC_SOURCE,
            None,
            &StoredDirectory {
                json: serde_json::to_string(&spec)?,
                digest: spec.digest(),
                applied_at: Utc::now(),
                applied_by: "bench".into(),
            },
            serde_json::json!({}),
        )
        .await?;
    let parsed = parse_yaml(FLOW);
    anyhow::ensure!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    let versions: Vec<FlowVersion> = parsed.flows.into_iter().map(FlowVersion::new).collect();
    store.apply_flows(&versions, "bench", Utc::now()).await?;
    let now = Utc::now();
    let resources: Vec<ResourceRecord> = (0..RESOURCES)
        .map(|n| ResourceRecord {
            id: format!("bench://db/{n}"),
            integration: "bench".into(),
            resource_type: "bench.db".into(),
            name: format!("db{n}"),
            parent: None,
            ancestors: Vec::new(),
            tags: Default::default(),
            owners: Vec::new(),
            source: STATIC_SOURCE.into(),
            first_seen: now,
            last_seen: now,
        })
        .collect();
    store
        .replace_resources(STATIC_SOURCE, &resources, "bench", now)
        .await?;
    Ok(())
}

fn ask_for(index: usize) -> (Actor, Ask) {
    let user = index % USERS;
    let resource = (index / USERS) % RESOURCES;
    (
        Actor {
            email: format!("user{user}@example.com"),
            admin: false,
        },
        Ask {
            items: vec![RequestItem {
                resource_id: format!("bench://db/{resource}"),
                permission: "read".into(),
            }],
            duration: None,
            justification: "benchmark".into(),
        },
    )
}

/// Runs `total` jobs on `concurrency` tasks; returns the wall time and each job's latency.
pub(crate) async fn run_concurrently<F, Fut>(
    total: usize,
    concurrency: usize,
    job: F,
) -> anyhow::Result<(Duration, Latencies)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let job = Arc::new(job);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let next = next.clone();
        let job = job.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    return anyhow::Ok(latencies);
                }
                let start = Instant::now();
                job(index).await?;
                latencies.push(start.elapsed());
            }
        }));
    }
    let mut all = Latencies::with_capacity(total);
    for task in tasks {
        for latency in task.await?? {
            all.push(latency);
        }
    }
    Ok((started.elapsed(), all))
}

/// The durable request path against a raw insert loop on the same database.
pub async fn requests(backend: Backend, total: usize, concurrency: usize) -> anyhow::Result<()> {
    let db = Database::create(backend).await?;
    seed(db.store.as_ref()).await?;
    let lifecycle = Arc::new(Lifecycle::new(db.store.clone(), Settings::default()));
    // Warm the engine and directory caches, as a running server has them.
    lifecycle.context().await?;

    let life = lifecycle.clone();
    let (elapsed, latencies) = run_concurrently(total, concurrency, move |index| {
        let life = life.clone();
        async move {
            let (actor, ask) = ask_for(index);
            let asked = life.create(&actor, ask, Utc::now()).await?;
            anyhow::ensure!(
                asked.view.request.state.as_str() == "granting",
                "request {index} ended {}",
                asked.view.request.state
            );
            Ok(())
        }
    })
    .await?;
    let ours = latencies.summary();
    let rate = total as f64 / elapsed.as_secs_f64();
    eprintln!(
        "requests: {total} in {:.2} s = {rate:.0}/s; p50 {:.2} ms, p99 {:.2} ms",
        elapsed.as_secs_f64(),
        ours.p50_us / 1000.0,
        ours.p99_us / 1000.0
    );

    // The floor: one row per transaction, with a payload the size of a stored decision.
    let raw = Arc::new(db.raw().await?);
    on_raw!(&*raw, |pool| sqlx::query(
        "CREATE TABLE bench_raw (id TEXT PRIMARY KEY, payload TEXT NOT NULL, at TEXT NOT NULL)"
    )
    .execute(pool)
    .await
    .map(|_| ()))?;
    let payload = Arc::new("x".repeat(2048));
    let raw_job = raw.clone();
    let (raw_elapsed, raw_latencies) = run_concurrently(total, concurrency, move |index| {
        let raw = raw_job.clone();
        let payload = payload.clone();
        async move {
            let id = format!("{index}");
            on_raw!(&*raw, |pool| sqlx::query(
                "INSERT INTO bench_raw (id, payload, at) VALUES ($1, $2, $3)"
            )
            .bind(&id)
            .bind(payload.as_str())
            .bind(Utc::now().to_rfc3339())
            .execute(pool)
            .await
            .map(|_| ()))?;
            Ok(())
        }
    })
    .await?;
    let floor = raw_latencies.summary();
    let raw_rate = total as f64 / raw_elapsed.as_secs_f64();
    eprintln!(
        "raw insert: {total} in {:.2} s = {raw_rate:.0}/s; p50 {:.2} ms, p99 {:.2} ms",
        raw_elapsed.as_secs_f64(),
        floor.p50_us / 1000.0,
        floor.p99_us / 1000.0
    );
    let audit_events = db.store.audit_head().await?.0;
    println!(
        "{}",
        serde_json::json!({
            "benchmark": "requests",
            "backend": format!("{backend:?}").to_lowercase(),
            "requests": total,
            "concurrency": concurrency,
            "requests_per_s": rate.round(),
            "p50_ms": (ours.p50_us / 10.0).round() / 100.0,
            "p99_ms": (ours.p99_us / 10.0).round() / 100.0,
            "raw_inserts_per_s": raw_rate.round(),
            "raw_p50_ms": (floor.p50_us / 10.0).round() / 100.0,
            "raw_p99_ms": (floor.p99_us / 10.0).round() / 100.0,
            "audit_events": audit_events,
        })
    );
    db.drop_database().await;
    Ok(())
}

/// Makes `total` active requests through the real path: decided, stored, confirmed.
async fn make_active(
    lifecycle: &Arc<Lifecycle>,
    store: &Arc<dyn Store>,
    total: usize,
    offset: usize,
) -> anyhow::Result<Vec<String>> {
    let started = Instant::now();
    let ids = Arc::new(std::sync::Mutex::new(Vec::with_capacity(total)));
    let life = lifecycle.clone();
    let collected = ids.clone();
    run_concurrently(total, 16, move |index| {
        let life = life.clone();
        let collected = collected.clone();
        async move {
            let (actor, ask) = ask_for(index + offset);
            let asked = life.create(&actor, ask, Utc::now()).await?;
            collected
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .push(asked.view.request.id);
            Ok(())
        }
    })
    .await?;
    loop {
        let open = store.open_commands(5000).await?;
        if open.is_empty() {
            break;
        }
        let open = Arc::new(open);
        let store = store.clone();
        let commands = open.clone();
        run_concurrently(open.len(), 16, move |index| {
            let store = store.clone();
            let commands = commands.clone();
            async move {
                store
                    .complete_command(
                        &commands[index].id,
                        &CommandResult::Done,
                        "bench",
                        Utc::now(),
                    )
                    .await?;
                Ok(())
            }
        })
        .await?;
    }
    eprintln!(
        "set-up: {total} active requests in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let ids = ids.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    Ok(ids)
}

/// Moves the expiry of each request (and its grants) to the given time. Set-up only: the real
/// path sets expiry at activation, which in a benchmark happens all at once.
async fn reschedule(raw: &Raw, plan: &[(String, DateTime<Utc>)]) -> anyhow::Result<()> {
    for chunk in plan.chunks(1000) {
        on_raw!(raw, |pool| {
            let mut tx = pool.begin().await?;
            for (id, at) in chunk {
                sqlx::query("UPDATE access_requests SET expires_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(*at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE grants SET expires_at = $2 WHERE request_id = $1")
                    .bind(id)
                    .bind(*at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            anyhow::Ok(())
        })?;
    }
    Ok(())
}

/// For each request, how long after its expiry its revoke command was written, in ms.
async fn revoke_lags(raw: &Raw, ids: &[String]) -> anyhow::Result<Vec<f64>> {
    let mut lags = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT r.expires_at AS expires_at, c.created_at AS created_at FROM access_requests r \
             JOIN grants g ON g.request_id = r.id JOIN commands c ON c.grant_id = g.id AND c.kind = 'revoke' \
             WHERE r.id IN ({})",
            placeholders.join(", ")
        );
        on_raw!(raw, |pool| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for id in chunk {
                query = query.bind(id);
            }
            for row in query.fetch_all(pool).await? {
                let expires: DateTime<Utc> = row.try_get("expires_at")?;
                let created: DateTime<Utc> = row.try_get("created_at")?;
                lags.push(
                    (created - expires).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0,
                );
            }
            anyhow::Ok(())
        })?;
    }
    anyhow::ensure!(
        lags.len() == ids.len(),
        "{} of {} requests have a revoke command",
        lags.len(),
        ids.len()
    );
    lags.sort_by(f64::total_cmp);
    Ok(lags)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * q).ceil() as usize)
        .saturating_sub(1)
        .min(sorted.len() - 1);
    (sorted[index] * 10.0).round() / 10.0
}

async fn count_active(raw: &Raw) -> anyhow::Result<i64> {
    on_raw!(raw, |pool| Ok(sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM access_requests WHERE state = 'active'"
    )
    .fetch_one(pool)
    .await?))
}

async fn wait_until_none_active(raw: &Raw, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while count_active(raw).await? > 0 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "requests still active after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Expiry: `spread` requests expiring evenly over `window`, `burst` expiring in the same second,
/// and `overdue` already due when a server starts.
pub async fn expiry(
    backend: Backend,
    spread: usize,
    window: Duration,
    burst: usize,
    overdue: usize,
) -> anyhow::Result<()> {
    let db = Database::create(backend).await?;
    seed(db.store.as_ref()).await?;
    let raw = db.raw().await?;
    let lifecycle = Arc::new(Lifecycle::new(db.store.clone(), Settings::default()));
    let mut result = serde_json::json!({
        "benchmark": "expiry",
        "backend": format!("{backend:?}").to_lowercase(),
    });

    // 1. Spread over the window, with the real sweeper running.
    if spread > 0 {
        let ids = make_active(&lifecycle, &db.store, spread, 0).await?;
        let start = Utc::now() + chrono::Duration::seconds(5);
        let step = window.as_secs_f64() / spread as f64;
        let plan: Vec<(String, DateTime<Utc>)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                (
                    id.clone(),
                    start + chrono::Duration::microseconds((i as f64 * step * 1e6) as i64),
                )
            })
            .collect();
        let rescheduling = Instant::now();
        reschedule(&raw, &plan).await?;
        eprintln!(
            "spread: expiries set in {:.1} s",
            rescheduling.elapsed().as_secs_f64()
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let sweeping = tokio::spawn(sweeper::run(lifecycle.clone(), stopped));
        eprintln!("spread: {spread} requests expiring over {window:?}; waiting");
        wait_until_none_active(&raw, window + Duration::from_secs(60)).await?;
        let _ = stop.send(true);
        sweeping.await?;
        let lags = revoke_lags(&raw, &ids).await?;
        eprintln!(
            "spread: revoke lag p50 {} ms, p99 {} ms, max {} ms",
            percentile(&lags, 0.5),
            percentile(&lags, 0.99),
            percentile(&lags, 1.0)
        );
        result["spread"] = serde_json::json!({
            "requests": spread,
            "window_s": window.as_secs(),
            "lag_p50_ms": percentile(&lags, 0.5),
            "lag_p99_ms": percentile(&lags, 0.99),
            "lag_max_ms": percentile(&lags, 1.0),
        });
    }

    // 2. A burst in the same second.
    if burst > 0 {
        let ids = make_active(&lifecycle, &db.store, burst, spread).await?;
        let at = Utc::now() + chrono::Duration::seconds(3);
        let plan: Vec<(String, DateTime<Utc>)> = ids.iter().map(|id| (id.clone(), at)).collect();
        reschedule(&raw, &plan).await?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let sweeping = tokio::spawn(sweeper::run(lifecycle.clone(), stopped));
        wait_until_none_active(&raw, Duration::from_secs(120)).await?;
        let _ = stop.send(true);
        sweeping.await?;
        let lags = revoke_lags(&raw, &ids).await?;
        eprintln!(
            "burst: {burst} in one second; last revoke {} ms after expiry (p50 {} ms)",
            percentile(&lags, 1.0),
            percentile(&lags, 0.5)
        );
        result["burst"] = serde_json::json!({
            "requests": burst,
            "lag_p50_ms": percentile(&lags, 0.5),
            "lag_max_ms": percentile(&lags, 1.0),
        });
    }

    // 3. Overdue when a server starts: open the store afresh and start the sweeper, as
    //    `latch-server` does, and time the first and the last revoke.
    if overdue > 0 {
        let ids = make_active(&lifecycle, &db.store, overdue, spread + burst).await?;
        let past = Utc::now() - chrono::Duration::minutes(5);
        let plan: Vec<(String, DateTime<Utc>)> = ids.iter().map(|id| (id.clone(), past)).collect();
        reschedule(&raw, &plan).await?;
        drop(lifecycle);
        let started = Instant::now();
        let store = db.reopen().await?;
        let restarted = Arc::new(Lifecycle::new(store, Settings::default()));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let sweeping = tokio::spawn(sweeper::run(restarted, stopped));
        let first = loop {
            let revokes: i64 = on_raw!(&raw, |pool| sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM commands WHERE kind = 'revoke'"
            )
            .fetch_one(pool)
            .await)?;
            if revokes > 0 {
                break started.elapsed();
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "no revoke within a minute of start"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        wait_until_none_active(&raw, Duration::from_secs(120)).await?;
        let all = started.elapsed();
        let _ = stop.send(true);
        sweeping.await?;
        eprintln!(
            "overdue at start: {overdue}; first revoke {:.0} ms after start, all by {:.0} ms",
            first.as_secs_f64() * 1000.0,
            all.as_secs_f64() * 1000.0
        );
        result["overdue"] = serde_json::json!({
            "requests": overdue,
            "first_revoke_ms": (first.as_secs_f64() * 1000.0).round(),
            "all_revoked_ms": (all.as_secs_f64() * 1000.0).round(),
        });
    }
    println!("{result}");
    db.drop_database().await;
    Ok(())
}
