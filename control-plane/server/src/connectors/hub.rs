//! The hub: the connector streams this server holds. Each stream runs as a [`super::session`];
//! the hub knows them by connector id so that it can close one (a revoked connector, a newer
//! stream from the same connector, shutdown) and wake them all when new commands are written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};

use super::Settings;
use super::pki::ConnectorCa;
use super::signing::CommandSigner;
use super::vault::CredentialsVault;
use crate::lifecycle::Lifecycle;

/// Why the hub closes a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Close {
    Open,
    Revoked,
    Replaced,
    ShuttingDown,
}

/// Shared state of every session on this server.
pub struct Hub {
    pub(super) settings: Settings,
    pub(super) lifecycle: Arc<Lifecycle>,
    pub(super) ca: Arc<ConnectorCa>,
    pub(super) signer: Arc<CommandSigner>,
    pub(super) vault: Arc<CredentialsVault>,
    /// Wakes sessions to claim commands.
    pub(super) outbox: Arc<Notify>,
    sessions: Mutex<HashMap<String, (u64, watch::Sender<Close>)>>,
    next_session: std::sync::atomic::AtomicU64,
}

impl Hub {
    pub fn new(
        settings: Settings,
        lifecycle: Arc<Lifecycle>,
        ca: Arc<ConnectorCa>,
        signer: Arc<CommandSigner>,
        vault: Arc<CredentialsVault>,
    ) -> Hub {
        let outbox = lifecycle.outbox();
        Hub {
            settings,
            lifecycle,
            ca,
            signer,
            vault,
            outbox,
            sessions: Mutex::new(HashMap::new()),
            next_session: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// The key that seals and opens credentials connectors make for grants.
    pub fn vault(&self) -> &Arc<CredentialsVault> {
        &self.vault
    }

    /// Registers a new session of a connector; an older one of the same connector is closed (the
    /// connector reconnected and the old stream is dead or dying).
    pub(super) fn register(&self, connector_id: &str) -> (u64, watch::Receiver<Close>) {
        let number = self
            .next_session
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (sender, receiver) = watch::channel(Close::Open);
        let old = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(connector_id.to_string(), (number, sender));
        if let Some((_, old)) = old {
            let _ = old.send(Close::Replaced);
        }
        metrics::gauge!("latch_connector_streams").increment(1.0);
        (number, receiver)
    }

    /// Forgets a session that ended, unless a newer one took its place.
    pub(super) fn unregister(&self, connector_id: &str, number: u64) {
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if sessions
            .get(connector_id)
            .is_some_and(|(n, _)| *n == number)
        {
            sessions.remove(connector_id);
        }
        metrics::gauge!("latch_connector_streams").decrement(1.0);
    }

    /// Closes a connector's stream on this server now (other servers notice within a heartbeat).
    pub fn close(&self, connector_id: &str, why: Close) {
        let sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, sender)) = sessions.get(connector_id) {
            let _ = sender.send(why);
        }
    }

    /// Closes every stream (server shutdown).
    pub fn close_all(&self) {
        let sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (_, sender) in sessions.values() {
            let _ = sender.send(Close::ShuttingDown);
        }
    }

    /// How many streams this server holds.
    pub fn stream_count(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn lifecycle(&self) -> &Arc<Lifecycle> {
        &self.lifecycle
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn ca(&self) -> &Arc<ConnectorCa> {
        &self.ca
    }

    pub fn signer(&self) -> &Arc<CommandSigner> {
        &self.signer
    }
}
