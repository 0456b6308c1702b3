//! Starting and stopping the server.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::{Config, Database};
use crate::lifecycle::{Lifecycle, sweeper};
use crate::{api, bootstrap, metrics, store};

/// Runs the server until `shutdown` completes, then drains in-flight requests.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let database_url = match &config.database {
        Database::Sqlite => None,
        Database::Postgres(url) => Some(url.as_str()),
    };
    let store = store::open(database_url, &config.data_dir)
        .await
        .context("opening the database")?;
    match &config.database {
        Database::Sqlite => {
            tracing::info!(path = %config.data_dir.join("latch.db").display(), "using SQLite")
        }
        Database::Postgres(_) => tracing::info!("using PostgreSQL"),
    }
    if let Some(path) = bootstrap::first_admin_token(store.as_ref(), &config.data_dir).await? {
        tracing::info!(path = %path.display(), user = bootstrap::FIRST_ADMIN, "created the first admin token");
    }

    // Bound now so that a taken port fails the start; the connector stream arrives in a later release.
    let _connector_listener = TcpListener::bind(config.connector_listen)
        .await
        .with_context(|| {
            format!(
                "binding the connector listener on {}",
                config.connector_listen
            )
        })?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the API listener on {}", config.listen))?;
    let lifecycle = Arc::new(Lifecycle::new(store.clone(), config.lifecycle.clone()));
    // Expiry is swept from the database at once: access that fell due while the server was down
    // is revoked within moments of start.
    let (stop_sweeper, stopped) = tokio::sync::watch::channel(false);
    let sweeper = tokio::spawn(sweeper::run(lifecycle.clone(), stopped));
    let router = api::router(store, lifecycle, metrics::handle()).context("building the API")?;
    tracing::info!(listen = %listener.local_addr()?, connector_listen = %config.connector_listen, "latch-server is serving");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving the API")?;
    let _ = stop_sweeper.send(true);
    if let Err(err) = sweeper.await {
        tracing::error!(error = %err, "the expiry sweeper stopped abnormally");
    }
    tracing::info!("latch-server stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("interrupted; shutting down"),
        () = terminate => tracing::info!("terminated; shutting down"),
    }
}
