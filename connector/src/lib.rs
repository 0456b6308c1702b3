//! `latch-connector`: the agent that runs inside the customer's network, serves integrations
//! (clouds, databases, identity providers) with the credentials it holds there, and applies the
//! grants the Latch control plane decides. It dials out; nothing dials in.
//!
//! The pieces:
//! - [`provider`](crate::Provider): the one trait a cloud or database plugin implements (sync,
//!   grant, revoke, health check), its error kinds, and the [`ProviderRegistry`] that builds
//!   providers by `kind` from the config's `[[integrations]]`.
//! - `config`: the TOML config, validated at once with every problem named.
//! - `enroll`: trades a one-time token for a key and certificate, trusting the server only through
//!   the CA fingerprint in the token (`tls`).
//! - `state_dir` and `journal`: identity files written atomically, and the fsynced journal of
//!   finished commands that makes redelivery harmless and fences stale generations.
//! - `runtime`, `session`, `executor`, `sync`: the reconnecting stream to the control plane,
//!   heartbeats, signature checks (`signing`) and local `guardrails` before every command, per-grant
//!   ordering and concurrency and rate limits, bounded-memory inventory paging, certificate
//!   renewal at half-life, and a drain with `Goodbye` on SIGTERM.
//!
//! The shipped binary is `main_with(ProviderRegistry::shipped())`; tests start the same runtime
//! with extra providers through [`main_with`].

mod backoff;
mod cert;
mod cli;
mod config;
mod digest_pages;
mod enroll;
mod error;
mod executor;
mod guardrails;
mod journal;
mod malloc_arenas;
mod provider;
mod providers;
mod rate_limit;
mod runtime;
mod session;
mod signing;
mod state_dir;
mod sync;
mod tls;

#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod testing;

pub use config::IntegrationConfig;
pub use provider::{
    Capability, GrantSpec, Granted, IssuedCredentials, Provider, ProviderError, ProviderFactory,
    ProviderRegistry, ResourceTypePermissions, SyncSink, SyncedGroup, SyncedIdentity,
    SyncedMembership, SyncedResource,
};

use clap::Parser;

/// Runs the `latch-connector` command line with the provider kinds in `registry`: parses the
/// arguments, logs to stderr (filtered by `RUST_LOG`, default `info`), and runs `enroll`, `run` or
/// `check` on a multi-threaded tokio runtime. On glibc it first runs itself again with one malloc
/// arena (`malloc_arenas`), which holds its peak memory well below glibc's default.
///
/// Exit codes: 0 success (also after a drained shutdown on SIGTERM/SIGINT), 1 failure, 2 invalid
/// configuration.
pub fn main_with(registry: ProviderRegistry) -> std::process::ExitCode {
    let arenas_not_limited = malloc_arenas::limit();
    let cli = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // `try_init`: a test harness may have installed a subscriber already.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    if let Some(reason) = arenas_not_limited {
        tracing::warn!(%reason, "glibc's malloc arenas are not limited; memory use may be higher");
    }
    cli::execute(cli, registry)
}
