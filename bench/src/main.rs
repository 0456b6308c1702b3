//! `latch-bench`: Latch's benchmark binary. Run it in release mode:
//!
//! ```sh
//! cargo run --release -p latch-bench -- decide --flows 10000 --resources 1000000 --users 10000 --seed 1
//!
//! cargo run --release -p latch-bench -- requests --backend sqlite --requests 20000 --concurrency 16
//! cargo run --release -p latch-bench -- expiry --backend sqlite --spread 100000 --window 600 --burst 10000 --overdue 5000
//!
//! cargo build --release -p latch-server -p latch-cli -p latch-e2e -p latch-bench --bins
//! ./target/release/latch-bench connector --backend sqlite --resources 1000000 --requests 2000
//! ```
//!
//! The last line of output is one JSON object with the results.

mod cedar;
mod connector;
mod corpus;
mod lifecycle;
mod stats;

use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use latch_core::decide::{Engine, Outcome};

use crate::corpus::{Corpus, Shape};
use crate::stats::{Latencies, peak_rss_mib};

#[derive(Debug, Parser)]
#[command(name = "latch-bench", version, about = "Latch benchmarks", long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decision latency of the indexed engine, with Cedar on the same corpus as the baseline.
    Decide {
        /// Number of access flows.
        #[arg(long, default_value_t = 10_000)]
        flows: usize,
        /// Number of resources in the inventory.
        #[arg(long, default_value_t = 1_000_000)]
        resources: usize,
        /// Number of users.
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        /// Seed for the synthetic corpus.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Number of integrations the resources and flows spread over.
        #[arg(long, default_value_t = corpus::INTEGRATIONS)]
        integrations: usize,
        /// Requests decided by the engine (timed one by one, in one thread).
        #[arg(long, default_value_t = 100_000)]
        requests: usize,
        /// Requests decided by Cedar (a sample of the same requests: Cedar scans every policy, so
        /// a full run would take hours at 10,000 flows).
        #[arg(long, default_value_t = 2_000)]
        cedar_requests: usize,
    },
    /// The durable request path (decide, store request, decision, grants, outbox and audit
    /// event, commit) on an automatic flow, beside a raw insert loop on the same database.
    Requests {
        /// Database to run on (a fresh one either way).
        #[arg(long, value_enum, default_value_t = lifecycle::Backend::Sqlite)]
        backend: lifecycle::Backend,
        /// Requests to make.
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Expiry with the real sweeper: requests spread over a window, a burst in one second, and
    /// requests already overdue when a server starts.
    Expiry {
        /// Database to run on (a fresh one either way).
        #[arg(long, value_enum, default_value_t = lifecycle::Backend::Sqlite)]
        backend: lifecycle::Backend,
        /// Active requests expiring evenly over the window.
        #[arg(long, default_value_t = 100_000)]
        spread: usize,
        /// The window, in seconds.
        #[arg(long, default_value_t = 600)]
        window: u64,
        /// Active requests expiring in the same second.
        #[arg(long, default_value_t = 10_000)]
        burst: usize,
        /// Requests already overdue when the server starts.
        #[arg(long, default_value_t = 5_000)]
        overdue: usize,
    },
    /// Connectors end to end with the real binaries: inventory ingest and resync beside a raw
    /// bulk insert, grant commands beside completing them in the store, and connector memory.
    Connector {
        /// Database the server runs on (a fresh one either way).
        #[arg(long, value_enum, default_value_t = lifecycle::Backend::Sqlite)]
        backend: lifecycle::Backend,
        /// Resources the connector syncs (besides the root).
        #[arg(long, default_value_t = 1_000_000)]
        resources: u64,
        /// Resources whose tags change before the resync [default: 1 % of --resources].
        #[arg(long)]
        changed: Option<u64>,
        /// Grant commands, one request each.
        #[arg(long, default_value_t = 2_000)]
        requests: usize,
        /// The connector's `rate_limit_per_sec` (the connector's own default is 20, which would
        /// be all this measures).
        #[arg(long, default_value_t = 100_000)]
        rate_limit: u32,
    },
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Decide {
            flows,
            resources,
            users,
            seed,
            integrations,
            requests,
            cedar_requests,
        } => decide(
            Shape {
                flows,
                resources,
                users,
                requests,
                seed,
                integrations,
            },
            cedar_requests,
        ),
        Command::Requests {
            backend,
            requests,
            concurrency,
        } => runtime()?.block_on(lifecycle::requests(backend, requests, concurrency)),
        Command::Expiry {
            backend,
            spread,
            window,
            burst,
            overdue,
        } => runtime()?.block_on(lifecycle::expiry(
            backend,
            spread,
            std::time::Duration::from_secs(window),
            burst,
            overdue,
        )),
        Command::Connector {
            backend,
            resources,
            changed,
            requests,
            rate_limit,
        } => {
            rerun_from_deps()?;
            runtime()?.block_on(connector::run(connector::Shape {
                backend,
                resources,
                changed: changed.unwrap_or(resources / 100),
                requests,
                rate_limit,
            }))
        }
    }
}

/// The end-to-end harness looks for `latch-server` and the other binaries one folder above the
/// running executable's, as tests run from `target/PROFILE/deps/`. Run as
/// `target/PROFILE/latch-bench`, this runs itself again from a hard link in `deps/`.
fn rerun_from_deps() -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let Some(dir) = exe.parent() else {
        return Ok(());
    };
    if dir.file_name() == Some("deps".as_ref()) || !dir.join("latch-server").exists() {
        return Ok(());
    }
    let link = dir.join("deps").join("latch-bench");
    let _ = std::fs::remove_file(&link);
    std::fs::hard_link(&exe, &link).context("linking latch-bench into deps/")?;
    let err = std::process::Command::new(&link)
        .args(std::env::args_os().skip(1))
        .exec();
    Err(err).context("running latch-bench from deps/")
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn decide(shape: Shape, cedar_requests: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let corpus = Corpus::generate(shape);
    eprintln!(
        "corpus: {} flows, {} resources, {} users, {} requests, generated in {:.1} s",
        corpus.flows.len(),
        corpus.resources.len(),
        corpus.user_groups.len(),
        corpus.requests.len(),
        started.elapsed().as_secs_f64()
    );

    let flows = corpus.flows.clone();
    let build = Instant::now();
    let engine = Engine::new(flows);
    let index_build_ms = build.elapsed().as_secs_f64() * 1000.0;
    eprintln!(
        "index: {} flows built in {index_build_ms:.1} ms",
        engine.flow_count()
    );

    // One untimed pass warms caches and counts outcomes.
    let mut outcomes = [0usize; 3];
    for request in &corpus.requests {
        outcomes[outcome_slot(engine.decide(request).outcome)] += 1;
    }
    let mut latencies = Latencies::with_capacity(corpus.requests.len());
    for request in &corpus.requests {
        let start = Instant::now();
        let decision = engine.decide(request);
        latencies.push(start.elapsed());
        std::hint::black_box(decision);
    }
    let ours = latencies.summary();
    eprintln!(
        "latch: allow_auto {} / needs_approval {} / deny {}; p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs",
        outcomes[0], outcomes[1], outcomes[2], ours.p50_us, ours.p99_us, ours.p999_us
    );

    let cedar_build = Instant::now();
    let specs: Vec<_> = corpus.flows.iter().map(|f| f.spec.clone()).collect();
    let cedar = cedar::CedarCorpus::new(&specs)?;
    eprintln!(
        "cedar: {} policies parsed in {:.1} s",
        cedar.policies.policies().count(),
        cedar_build.elapsed().as_secs_f64()
    );
    let sample = cedar_requests.min(corpus.requests.len());
    let prepared = corpus.requests[..sample]
        .iter()
        .map(|r| cedar.prepare(r))
        .collect::<anyhow::Result<Vec<_>>>()
        .context("preparing Cedar requests")?;
    // Cedar must agree with the engine on who may request what; a disagreement means the two
    // corpora are not the same, and the comparison would be meaningless.
    let mut disagreements = 0usize;
    let mut cedar_latencies = Latencies::with_capacity(sample);
    for (request, cedar_request) in corpus.requests[..sample].iter().zip(&prepared) {
        let start = Instant::now();
        let allowed = cedar.is_allowed(cedar_request);
        cedar_latencies.push(start.elapsed());
        if allowed != (engine.decide(request).outcome != Outcome::Deny) {
            disagreements += 1;
        }
    }
    let theirs = cedar_latencies.summary();
    eprintln!(
        "cedar: {sample} requests; p50 {:.2} µs, p99 {:.2} µs; disagreements with latch: {disagreements}",
        theirs.p50_us, theirs.p99_us
    );

    let result = serde_json::json!({
        "flows": shape.flows,
        "resources": shape.resources,
        "users": shape.users,
        "integrations": shape.integrations,
        "seed": shape.seed,
        "requests": corpus.requests.len(),
        "allow_auto": outcomes[0],
        "needs_approval": outcomes[1],
        "deny": outcomes[2],
        "p50_us": round(ours.p50_us),
        "p99_us": round(ours.p99_us),
        "p999_us": round(ours.p999_us),
        "cedar_requests": sample,
        "cedar_p50_us": round(theirs.p50_us),
        "cedar_p99_us": round(theirs.p99_us),
        "cedar_disagreements": disagreements,
        "index_build_ms": round(index_build_ms),
        "peak_rss_mib": round(peak_rss_mib()),
    });
    println!("{result}");
    anyhow::ensure!(
        disagreements == 0,
        "Cedar and the engine disagreed on {disagreements} requests"
    );
    Ok(())
}

fn outcome_slot(outcome: Outcome) -> usize {
    match outcome {
        Outcome::AllowAuto => 0,
        Outcome::NeedsApproval => 1,
        Outcome::Deny => 2,
    }
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}
