//! `latch-connector run`: loads the config and the state directory, builds the providers, and
//! keeps one stream to the control plane open until SIGTERM or SIGINT, reconnecting with
//! full-jitter backoff (500ms doubling to 30s, reset after a stream that lived over a minute).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use tokio::sync::{mpsc, watch};

use crate::backoff::Backoff;
use crate::config::Config;
use crate::error::Error;
use crate::executor::Executor;
use crate::journal::Journal;
use crate::provider::{Capability, Provider, ProviderRegistry};
use crate::rate_limit::RateLimiter;
use crate::session::{self, SessionEnd};
use crate::state_dir::{ConnectorInfo, StateDir};

/// A stream that lived this long was healthy: the next reconnect starts from the smallest delay.
const HEALTHY_STREAM: Duration = Duration::from_secs(60);
/// Results waiting for a stream; commands block on a full outbox, which bounds memory.
const OUTBOX_CAPACITY: usize = 1024;

/// One configured integration and what serves it.
pub(crate) struct Integration {
    pub name: String,
    pub kind: String,
    pub provider: Arc<dyn Provider>,
    pub capabilities: Vec<Capability>,
    pub limiter: RateLimiter,
    /// Held while a sync of this integration runs: one at a time.
    pub sync_lock: Arc<tokio::sync::Mutex<()>>,
}

impl fmt::Debug for Integration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Integration")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("capabilities", &self.capabilities)
            .finish()
    }
}

/// What every stream of this process shares.
pub(crate) struct Context {
    pub config: Config,
    pub state: StateDir,
    pub info: ConnectorInfo,
    pub command_key: VerifyingKey,
    /// In config order, as announced in `Hello`.
    pub integrations: Vec<Arc<Integration>>,
    pub executor: Arc<Executor>,
    /// When the last completed full sync of each integration started.
    pub last_full_sync: Mutex<HashMap<String, Instant>>,
}

/// Builds every provider, or reports every one that cannot be built.
pub(crate) fn build_integrations(
    config: &Config,
    registry: &ProviderRegistry,
) -> Result<Vec<Arc<Integration>>, Error> {
    let mut problems = Vec::new();
    let mut integrations = Vec::new();
    for (i, integration) in config.integrations.iter().enumerate() {
        match registry.build(integration) {
            Ok(provider) => {
                if provider.kind() != integration.kind {
                    tracing::warn!(
                        integration = %integration.name,
                        configured = %integration.kind,
                        provider = %provider.kind(),
                        "the provider reports another kind than configured"
                    );
                }
                integrations.push(Arc::new(Integration {
                    name: integration.name.clone(),
                    kind: integration.kind.clone(),
                    capabilities: provider.capabilities(),
                    provider,
                    limiter: RateLimiter::new(integration.rate_limit()),
                    sync_lock: Arc::new(tokio::sync::Mutex::new(())),
                }))
            }
            Err(message) => problems.push(format!(
                "integrations[{i}] ({}): {message}",
                integration.name
            )),
        }
    }
    if problems.is_empty() {
        Ok(integrations)
    } else {
        Err(Error::Config(problems))
    }
}

/// Runs until `shutdown` turns true, then drains and returns.
pub(crate) async fn run(
    config: Config,
    registry: &ProviderRegistry,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let state = StateDir::new(&config.state_dir);
    let loader = state.clone();
    let (enrolled, journal) = tokio::task::spawn_blocking(move || {
        let enrolled = loader.load()?;
        let journal = Journal::open(&loader.journal_path())?;
        Ok::<_, Error>((enrolled, journal))
    })
    .await
    .map_err(|err| Error::state(state.path(), format!("loading did not finish: {err}")))??;
    if enrolled.info.server != config.server.url {
        tracing::warn!(
            enrolled_with = %enrolled.info.server,
            configured = %config.server.url,
            "the config names another server than the one this connector enrolled with"
        );
    }
    if let Ok(validity) = crate::cert::validity(&enrolled.credentials.cert_pem)
        && validity.not_after <= std::time::SystemTime::now()
    {
        tracing::error!(
            not_after = %humantime::format_rfc3339_seconds(validity.not_after),
            "the connector's certificate has expired; enroll again with a new token and --force"
        );
    }

    let integrations = build_integrations(&config, registry)?;
    for integration in &integrations {
        let integration = integration.clone();
        tokio::spawn(async move {
            integration.limiter.acquire().await;
            let checked =
                tokio::time::timeout(Duration::from_secs(30), integration.provider.health_check())
                    .await;
            match checked {
                Ok(Ok(())) => tracing::info!(integration = %integration.name, "provider healthy"),
                Ok(Err(err)) => {
                    tracing::warn!(integration = %integration.name, error = %err, "provider health check failed")
                }
                Err(_) => {
                    tracing::warn!(integration = %integration.name, "provider health check timed out")
                }
            }
        });
    }

    let (results_tx, mut results) = mpsc::channel(OUTBOX_CAPACITY);
    let executor = Arc::new(Executor::new(
        enrolled.info.connector_id.clone(),
        integrations
            .iter()
            .map(|i| (i.name.clone(), i.clone()))
            .collect(),
        config.guardrails.clone(),
        journal,
        config.max_concurrent_commands,
        results_tx,
    ));
    let context = Arc::new(Context {
        config,
        state,
        info: enrolled.info,
        command_key: enrolled.command_key,
        integrations,
        executor,
        last_full_sync: Mutex::new(HashMap::new()),
    });
    tracing::info!(
        connector_id = %context.info.connector_id,
        server = %context.config.server.url,
        integrations = context.integrations.len(),
        "connector starting"
    );

    let mut backoff = Backoff::reconnect();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let started = Instant::now();
        match session::run(&context, &mut results, &mut shutdown).await {
            SessionEnd::Shutdown => return Ok(()),
            SessionEnd::Lost(reason) => {
                tracing::warn!(%reason, connector_id = %context.info.connector_id, "stream lost")
            }
        }
        if started.elapsed() > HEALTHY_STREAM {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::info!(delay_ms = delay.as_millis() as u64, "reconnecting");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            () = session::stopped(&mut shutdown) => break,
        }
    }
    // Shut down while disconnected: let running commands finish (they will be redelivered and
    // answered from the journal), within the grace period.
    let grace = context.config.shutdown_grace;
    if tokio::time::timeout(grace, context.executor.idle())
        .await
        .is_err()
    {
        tracing::warn!("in-flight commands did not finish within the shutdown grace period");
    }
    Ok(())
}

/// Turns true on SIGTERM or SIGINT.
pub(crate) fn shutdown_on_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        let _ = tx.send(true);
        // Keep the sender alive so receivers do not see the channel close.
        std::future::pending::<()>().await;
    });
    rx
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM; only SIGINT stops the connector");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
