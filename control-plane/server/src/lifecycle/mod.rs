//! The request lifecycle around the store: deciding requests with the engine, approvals, the expiry
//! sweeper and the reconciler. The rules are pure (`latch-core`); the store writes each change, its
//! audit events and its connector commands in one transaction. See docs/request-lifecycle.md.

mod context;
mod reconcile;
mod requests;
pub mod sweeper;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::store::Store;

pub use context::{Approvers, Context, ContextCache, STATIC_SOURCE};
pub use reconcile::{Inventory, RECONCILER, plan};
pub use requests::{Actor, Ask, Asked, request_digest, stored_decision};

/// Lifecycle settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a request may wait for approvals before it expires.
    pub pending_ttl: Duration,
    /// How often the sweeper looks for due requests.
    pub sweep_every: Duration,
    /// How often the reconciler runs without a change to prompt it.
    pub reconcile_every: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            pending_ttl: Duration::from_secs(24 * 3600),
            sweep_every: sweeper::SWEEP_EVERY,
            reconcile_every: sweeper::RECONCILE_EVERY,
        }
    }
}

/// The lifecycle of one server.
pub struct Lifecycle {
    store: Arc<dyn Store>,
    context: ContextCache,
    settings: Settings,
    /// Wakes the sweeper early (a new expiry may be sooner than its next tick).
    wake: Notify,
    /// Wakes the connector sessions: new commands may be in the outbox.
    outbox: Arc<Notify>,
    /// Writes new requests in groups.
    writer: writer::RequestWriter,
    /// The versions the last full reconcile saw.
    reconciled: std::sync::Mutex<Option<crate::store::CacheVersions>>,
    /// Inventory syncs running on this server: the periodic reconcile waits for them to end
    /// rather than re-reading a half-written inventory after every page.
    syncs_running: Arc<std::sync::atomic::AtomicUsize>,
}

/// Held while an inventory sync runs; see [`Lifecycle::sync_running`].
#[derive(Debug)]
pub struct SyncRunning(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for SyncRunning {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Lifecycle {
    /// Must be called inside a tokio runtime: it starts the request writer task.
    pub fn new(store: Arc<dyn Store>, settings: Settings) -> Self {
        Lifecycle {
            context: ContextCache::new(store.clone()),
            writer: writer::RequestWriter::start(store.clone()),
            reconciled: std::sync::Mutex::new(None),
            syncs_running: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            store,
            settings,
            wake: Notify::new(),
            outbox: Arc::new(Notify::new()),
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Reconciles after flows, the directory or the inventory changed. The change itself is
    /// already committed; if reconciling fails now, the sweeper's next run retries it.
    pub async fn after_change(&self) -> crate::store::ReconcilePlan {
        match self.reconcile(chrono::Utc::now()).await {
            Ok(applied) => applied,
            Err(err) => {
                tracing::error!(error = %err, "reconcile after a change failed; the next run retries");
                crate::store::ReconcilePlan::default()
            }
        }
    }

    /// After a change that may move an expiry or write commands: the sweeper looks again and
    /// the connector sessions claim what is new.
    fn wake_sweeper(&self) {
        self.wake.notify_one();
        self.commands_written();
    }

    /// Marks an inventory sync as running until the guard is dropped. Meanwhile the periodic
    /// reconcile does not react to inventory changes alone; the sync's end reconciles
    /// ([`after_change`](Self::after_change)).
    pub fn sync_running(&self) -> SyncRunning {
        self.syncs_running
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        SyncRunning(self.syncs_running.clone())
    }

    /// What connector sessions wait on for new commands.
    pub fn outbox(&self) -> Arc<Notify> {
        self.outbox.clone()
    }

    /// Wakes the connector sessions to claim new commands.
    pub fn commands_written(&self) {
        self.outbox.notify_waiters();
    }
}
