//! The background loops every server runs: the expiry sweeper and the periodic reconciler.
//!
//! Expiry lives in the database; the sweeper only asks it, a few times a second, what is due (an
//! indexed query). After a restart the first sweep runs at once, so overdue access is revoked
//! within moments of start. Several servers may sweep the same database: rows are claimed with
//! `SKIP LOCKED`, so each expiry is handled once.
//!
//! The reconciler runs in its own loop, so a long reconcile never delays an expiry.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::Lifecycle;

/// Most rows one sweep transaction handles; a backlog is worked off in several.
const BATCH: u32 = 500;

/// How often the sweeper runs, by default.
pub const SWEEP_EVERY: Duration = Duration::from_millis(200);
/// How often the reconciler runs without a change to prompt it, by default.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(5);

/// Runs the sweeper and the reconciler until `shutdown` turns true. They are separate tasks, so
/// that a long reconcile (its plan is computed in one go) never holds up an expiry.
pub async fn run(lifecycle: Arc<Lifecycle>, shutdown: watch::Receiver<bool>) {
    let sweeping = tokio::spawn(sweep_loop(lifecycle.clone(), shutdown.clone()));
    let reconciling = tokio::spawn(reconcile_loop(lifecycle, shutdown));
    for (name, task) in [("sweeper", sweeping), ("reconciler", reconciling)] {
        if let Err(err) = task.await {
            tracing::error!(error = %err, "the {name} stopped abnormally");
        }
    }
}

/// Sleeps for `pause` (or until woken); false once shutdown was asked for.
async fn pause(
    pause: Duration,
    wake: Option<&tokio::sync::Notify>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    let woken = async {
        match wake {
            Some(wake) => wake.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = shutdown.changed() => false,
        () = woken => true,
        () = tokio::time::sleep(pause) => true,
    }
}

async fn sweep_loop(lifecycle: Arc<Lifecycle>, mut shutdown: watch::Receiver<bool>) {
    let every = lifecycle.settings.sweep_every;
    loop {
        loop {
            match lifecycle.store.sweep_expired(Utc::now(), BATCH).await {
                Ok(report) => {
                    metrics::counter!("latch_expiry_requests_expired_total")
                        .increment(report.expired_requests as u64);
                    metrics::counter!("latch_expiry_requests_timed_out_total")
                        .increment(report.timed_out_requests as u64);
                    if report.expired_requests + report.timed_out_requests > 0 {
                        lifecycle.commands_written();
                        tracing::info!(
                            expired = report.expired_requests,
                            timed_out = report.timed_out_requests,
                            "swept due requests"
                        );
                    }
                    let full =
                        report.expired_requests.max(report.timed_out_requests) >= BATCH as usize;
                    if !full {
                        break;
                    }
                }
                Err(err) => {
                    // Failing closed is not possible for expiry: keep trying, loudly.
                    metrics::counter!("latch_expiry_sweep_failures_total").increment(1);
                    tracing::error!(error = %err, "expiry sweep failed; retrying");
                    break;
                }
            }
        }
        if !pause(every, Some(&lifecycle.wake), &mut shutdown).await {
            return;
        }
    }
}

async fn reconcile_loop(lifecycle: Arc<Lifecycle>, mut shutdown: watch::Receiver<bool>) {
    let every = lifecycle.settings.reconcile_every;
    loop {
        if let Err(err) = lifecycle.reconcile_periodic(Utc::now()).await {
            metrics::counter!("latch_expiry_sweep_failures_total").increment(1);
            tracing::error!(error = %err, "reconcile failed; retrying");
        }
        if !pause(every, None, &mut shutdown).await {
            return;
        }
    }
}
