//! `AccessFlowService`: validate, apply, get, list and delete access flows.

use std::sync::Arc;

use latch_core::flow::{self, KnownNames, Parsed, Problem};
use latch_proto::v1 as pb;
use latch_proto::v1::access_flow_service_server::AccessFlowService;
use tonic::{Request, Response, Status};

use crate::lifecycle::Lifecycle;
use crate::store::{ApplyOutcome, FlowVersion, Store};

use super::auth_layer::{admin, caller};
use super::status::{invalid_field, invalid_flows};
use super::{convert, page};

/// The access-flow service over a store.
pub struct FlowApi {
    store: Arc<dyn Store>,
    lifecycle: Arc<Lifecycle>,
}

impl FlowApi {
    pub fn new(store: Arc<dyn Store>, lifecycle: Arc<Lifecycle>) -> Self {
        FlowApi { store, lifecycle }
    }

    /// Parses and validates a source, adding warnings for names Latch does not know yet.
    async fn check(&self, source: Option<pb::FlowSource>) -> Result<Parsed, Status> {
        let mut parsed = match source.and_then(|s| s.source) {
            Some(pb::flow_source::Source::Yaml(text)) => flow::parse_yaml(&text),
            Some(pb::flow_source::Source::Specs(list)) => flow::from_proto(&list.flows),
            None => {
                return Err(invalid_field(
                    "source",
                    "give the flows as `yaml` or as `specs`",
                ));
            }
        };
        if parsed.flows.is_empty() && parsed.problems.is_empty() {
            return Err(invalid_field("source", "contains no flow"));
        }
        // Names not in the directory or the inventory yet are warnings, never refusals: they may
        // arrive later (from connectors and identity sync).
        let directory = self.lifecycle.context().await?.directory;
        parsed.add_unknown_reference_warnings(&KnownNames {
            integrations: self.store.known_integrations().await?,
            users: directory.known_users().clone(),
            groups: directory.known_groups().clone(),
            schedules: directory.known_schedules().clone(),
        });
        Ok(parsed)
    }
}

#[tonic::async_trait]
impl AccessFlowService for FlowApi {
    async fn validate_flows(
        &self,
        request: Request<pb::ValidateFlowsRequest>,
    ) -> Result<Response<pb::ValidateFlowsResponse>, Status> {
        caller(&request)?;
        let parsed = self.check(request.into_inner().source).await?;
        let valid = !parsed.problems.iter().any(|p| p.is_error());
        Ok(Response::new(pb::ValidateFlowsResponse {
            valid,
            problems: parsed.problems.iter().map(Problem::to_proto).collect(),
            flows: if valid {
                parsed.flows.iter().map(|f| f.to_proto()).collect()
            } else {
                Vec::new()
            },
        }))
    }

    async fn apply_flows(
        &self,
        request: Request<pb::ApplyFlowsRequest>,
    ) -> Result<Response<pb::ApplyFlowsResponse>, Status> {
        let caller = admin(&request)?;
        let parsed = self.check(request.into_inner().source).await?;
        if parsed.problems.iter().any(|p| p.is_error()) {
            return Err(invalid_flows(&parsed.problems));
        }
        let versions: Vec<FlowVersion> = parsed.flows.into_iter().map(FlowVersion::new).collect();
        let applied = self
            .store
            .apply_flows(&versions, &caller.user, chrono::Utc::now())
            .await?;
        for flow in &applied {
            tracing::info!(flow = %flow.name, version = flow.version, outcome = ?flow.outcome, actor = %caller.user, "flow applied");
        }
        if applied
            .iter()
            .any(|flow| flow.outcome != ApplyOutcome::Unchanged)
        {
            // Automatic flows grant at once; narrowed flows revoke what they no longer allow.
            self.lifecycle.after_change().await;
        }
        Ok(Response::new(pb::ApplyFlowsResponse {
            flows: applied.iter().map(convert::applied).collect(),
            warnings: parsed.problems.iter().map(Problem::to_proto).collect(),
        }))
    }

    async fn get_flow(
        &self,
        request: Request<pb::GetFlowRequest>,
    ) -> Result<Response<pb::GetFlowResponse>, Status> {
        caller(&request)?;
        let request = request.into_inner();
        if request.name.is_empty() {
            return Err(invalid_field("name", "is required"));
        }
        match self.store.get_flow(&request.name, request.version).await? {
            Some(flow) => Ok(Response::new(pb::GetFlowResponse {
                flow: Some(convert::flow(&flow)),
            })),
            None => Err(Status::not_found(match request.version {
                Some(version) => format!("flow {:?} has no version {version}", request.name),
                None => format!("flow {:?} not found", request.name),
            })),
        }
    }

    async fn list_flows(
        &self,
        request: Request<pb::ListFlowsRequest>,
    ) -> Result<Response<pb::ListFlowsResponse>, Status> {
        caller(&request)?;
        let request = request.into_inner();
        let limit = page::size(request.page_size);
        let after = page::key(&request.page_token)?;
        let rows = self.store.list_flows(after.as_deref(), limit + 1).await?;
        let (rows, next_page_token) = page::split(rows, limit, |flow| flow.spec.name.clone());
        Ok(Response::new(pb::ListFlowsResponse {
            flows: rows.iter().map(convert::flow).collect(),
            next_page_token,
        }))
    }

    async fn delete_flow(
        &self,
        request: Request<pb::DeleteFlowRequest>,
    ) -> Result<Response<pb::DeleteFlowResponse>, Status> {
        let caller = admin(&request)?;
        let name = request.into_inner().name;
        if name.is_empty() {
            return Err(invalid_field("name", "is required"));
        }
        match self
            .store
            .delete_flow(&name, &caller.user, chrono::Utc::now())
            .await?
        {
            Some(flow) => {
                tracing::info!(flow = %name, version = flow.version, actor = %caller.user, "flow deleted");
                self.lifecycle.after_change().await;
                Ok(Response::new(pb::DeleteFlowResponse {
                    flow: Some(convert::flow(&flow)),
                }))
            }
            None => Err(Status::not_found(format!("flow {name:?} not found"))),
        }
    }
}
