//! `AuditService`: list the audit log and verify its hash chain. Admin only.

use std::sync::Arc;

use latch_proto::v1 as pb;
use latch_proto::v1::audit_service_server::AuditService;
use tonic::{Request, Response, Status};

use crate::store::{AuditFilter, ChainBreak, ChainVerifier, Store};

use super::auth_layer::admin;
use super::status::invalid_field;
use super::{convert, page};

/// Events read per page while verifying.
const VERIFY_PAGE: u32 = 1000;

/// The audit service over a store.
pub struct AuditApi {
    store: Arc<dyn Store>,
}

impl AuditApi {
    pub fn new(store: Arc<dyn Store>) -> Self {
        AuditApi { store }
    }
}

impl AuditApi {
    /// Verifies every event, then compares with the log's head. Events appended while walking are
    /// walked too (the head is read after the events, and the walk continues until it catches up);
    /// an event past the head can only have been inserted behind the store's back.
    async fn walk_chain(&self) -> Result<(i64, Result<(), ChainBreak>), Status> {
        let mut verifier = ChainVerifier::default();
        let mut after = 0;
        loop {
            let events = self.store.audit_events(after, VERIFY_PAGE).await?;
            if let Some(last) = events.last() {
                after = last.seq;
                for event in &events {
                    if let Err(broken) = verifier.check(event) {
                        return Ok((verifier.checked(), Err(broken)));
                    }
                }
                continue;
            }
            let (head_seq, head_hash) = self.store.audit_head().await?;
            if head_seq > after && !self.store.audit_events(after, 1).await?.is_empty() {
                continue;
            }
            return Ok((verifier.checked(), verifier.finish(head_seq, &head_hash)));
        }
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        admin(&request)?;
        let request = request.into_inner();
        let limit = page::size(request.page_size);
        let after = match page::key(&request.page_token)? {
            Some(key) => key.parse::<i64>().map_err(|_| {
                invalid_field(
                    "page_token",
                    format!("{:?} is not a page token from this API", request.page_token),
                )
            })?,
            None => 0,
        };
        let since = match request.since {
            Some(ts) => Some(
                convert::from_timestamp(&ts)
                    .ok_or_else(|| invalid_field("since", format!("{ts} is not a valid time")))?,
            ),
            None => None,
        };
        let subject = Some(request.subject).filter(|s| !s.is_empty());
        let rows = self
            .store
            .find_audit_events(&AuditFilter { since, subject }, after, limit + 1)
            .await?;
        let (rows, next_page_token) = page::split(rows, limit, |event| event.seq);
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: rows.iter().map(convert::audit_event).collect(),
            next_page_token,
        }))
    }

    async fn verify_audit_chain(
        &self,
        request: Request<pb::VerifyAuditChainRequest>,
    ) -> Result<Response<pb::VerifyAuditChainResponse>, Status> {
        let caller = admin(&request)?;
        let outcome = self.walk_chain().await?;
        let response = match outcome {
            (checked, Ok(())) => pb::VerifyAuditChainResponse {
                intact: true,
                events_checked: checked,
                broken_at_seq: 0,
                problem: String::new(),
            },
            (checked, Err(broken)) => {
                tracing::warn!(seq = broken.seq, problem = %broken.problem, actor = %caller.user, "audit chain broken");
                pb::VerifyAuditChainResponse {
                    intact: false,
                    events_checked: checked,
                    broken_at_seq: broken.seq,
                    problem: broken.problem,
                }
            }
        };
        Ok(Response::new(response))
    }
}
