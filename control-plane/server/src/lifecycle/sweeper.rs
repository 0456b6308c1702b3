//! The expiry sweeper: revokes access whose time is up and times out pending requests.
//!
//! Expiry lives in the database; this loop only asks it, a few times a second, what is due (an
//! indexed query). After a restart the first sweep runs at once, so overdue access is revoked
//! within moments of start. Several servers may sweep the same database: rows are claimed with
//! `SKIP LOCKED`, so each expiry is handled once.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;

use super::Lifecycle;

/// Most rows one sweep transaction handles; a backlog is worked off in several.
const BATCH: u32 = 500;

/// Sweeps until `shutdown` is notified. Also reconciles on `reconcile_every`.
pub async fn run(lifecycle: Arc<Lifecycle>, shutdown: Arc<Notify>) {
    let settings = lifecycle.settings.clone();
    let mut last_reconcile: Option<tokio::time::Instant> = None;
    loop {
        loop {
            match lifecycle.store.sweep_expired(Utc::now(), BATCH).await {
                Ok(report) => {
                    if report.expired_requests + report.timed_out_requests > 0 {
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
                    // Fail closed is not possible for expiry: keep trying, loudly.
                    tracing::error!(error = %err, "expiry sweep failed; retrying");
                    break;
                }
            }
        }
        if last_reconcile.is_none_or(|at| at.elapsed() >= settings.reconcile_every) {
            if let Err(err) = lifecycle.reconcile(Utc::now()).await {
                tracing::error!(error = %err, "reconcile failed; retrying");
            }
            last_reconcile = Some(tokio::time::Instant::now());
        }
        tokio::select! {
            () = shutdown.notified() => return,
            () = lifecycle.wake.notified() => {}
            () = tokio::time::sleep(settings.sweep_every) => {}
        }
    }
}

/// How often the loop runs, by default.
pub const SWEEP_EVERY: Duration = Duration::from_millis(200);
/// How often the reconciler runs without a change to prompt it, by default.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(5);
