//! Group commit for new requests. Requests decided at the same moment are written in one
//! transaction: one commit (one fsync, one turn at the audit chain's head) for the lot, instead
//! of one each. Nobody waits for a batch to fill: while one batch commits, the next gathers.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};

use crate::store::{CreatedRequest, NewRequest, Store, StoreError};

/// Most requests written in one transaction.
const MAX_BATCH: usize = 64;

type Job = (
    NewRequest,
    oneshot::Sender<Result<CreatedRequest, StoreError>>,
);

/// Hands new requests to the writer task.
pub struct RequestWriter {
    jobs: mpsc::Sender<Job>,
}

impl RequestWriter {
    /// Starts the writer task; it stops when the writer is dropped.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(store, queue));
        RequestWriter { jobs }
    }

    /// Stores one request, with whatever else is waiting.
    pub async fn write(&self, new: NewRequest) -> Result<CreatedRequest, StoreError> {
        let (done, result) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the request writer has stopped".into());
        self.jobs.send((new, done)).await.map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }
}

async fn run(store: Arc<dyn Store>, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let (batch, waiting): (Vec<NewRequest>, Vec<_>) = jobs.into_iter().unzip();
        // The batch is stamped with the latest of its requests' times (each caller's clock
        // reading when it decided), so the stored times never run backwards.
        let now = batch
            .iter()
            .map(|new| new.record.created_at)
            .max()
            .unwrap_or_else(Utc::now);
        match store.create_requests(&batch, now).await {
            Ok(results) => {
                for (done, result) in waiting.into_iter().zip(results) {
                    // A caller that went away no longer needs its answer; the request is stored.
                    let _ = done.send(result);
                }
            }
            Err(err) => {
                // Nothing of the batch was stored; every caller learns so.
                tracing::error!(error = %err, requests = batch.len(), "storing requests failed");
                let message = err.to_string();
                for done in waiting {
                    let _ = done.send(Err(StoreError::Unavailable(message.clone())));
                }
            }
        }
    }
}
