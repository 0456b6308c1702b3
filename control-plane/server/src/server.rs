//! Starting and stopping the server.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use latch_proto::v1::connector_service_server::ConnectorServiceServer;

use crate::config::{Config, Database};
use crate::connectors::{ConnectorApi, Connectors, listener};
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

    let connector_listener = TcpListener::bind(config.connector_listen)
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
    let connectors = Connectors::start(
        config.connectors.clone(),
        &config.data_dir,
        lifecycle.clone(),
    )
    .context("starting the connector side")?;
    // Expiry is swept from the database at once: access that fell due while the server was down
    // is revoked within moments of start.
    let (stop_sweeper, stopped) = tokio::sync::watch::channel(false);
    let sweeper = tokio::spawn(sweeper::run(lifecycle.clone(), stopped));
    let router = api::router(store, lifecycle, connectors.hub.clone(), metrics::handle())
        .context("building the API")?;
    let (stopping, mut stop_connectors) = tokio::sync::watch::channel(false);
    let stopping = Arc::new(stopping);
    let connector_server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(config.connectors.heartbeat))
        .http2_keepalive_timeout(Some(config.connectors.heartbeat * 2))
        // Room for several inventory pages (about 250 KiB each) in flight per stream, so the hub
        // finds the next pages already received when it stores one and stores them together. Not
        // more: what the window admits, the connector may hold encoded in memory.
        .initial_stream_window_size(Some(2 << 20))
        .initial_connection_window_size(Some(4 << 20))
        .add_service(ConnectorServiceServer::new(ConnectorApi::new(
            connectors.hub.clone(),
        )))
        .serve_with_incoming_shutdown(
            listener::accept(
                connector_listener,
                connectors.tls.clone(),
                connectors.ca.clone(),
            ),
            async move {
                let _ = stop_connectors.wait_for(|stop| *stop).await;
            },
        );
    let hub = connectors.hub.clone();
    let connector_task = tokio::spawn(async move {
        if let Err(err) = connector_server.await {
            tracing::error!(error = %err, "the connector listener failed");
        }
    });
    tracing::info!(listen = %listener.local_addr()?, connector_listen = %config.connector_listen, "latch-server is serving");
    let stop_listener = stopping.clone();
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Streams end with a goodbye before the listener stops, so connectors reconnect
            // (to another replica) at once instead of waiting for a dead peer.
            hub.close_all();
            let _ = stop_listener.send(true);
        })
        .await
        .context("serving the API");
    let _ = stopping.send(true);
    let _ = connector_task.await;
    served?;
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
