//! The public API: gRPC services, health and reflection, plus HTTP `/healthz` and `/metrics`, all on
//! one port.

mod audit;
mod auth_layer;
mod connectors;
pub(crate) mod convert;
mod directory;
mod flows;
mod integrations;
mod page;
mod requests;
mod resources;
mod status;
mod tokens;

use std::sync::Arc;

use axum::routing::get;
use latch_proto::v1::access_flow_service_server::AccessFlowServiceServer;
use latch_proto::v1::access_request_service_server::AccessRequestServiceServer;
use latch_proto::v1::audit_service_server::AuditServiceServer;
use latch_proto::v1::connector_admin_service_server::ConnectorAdminServiceServer;
use latch_proto::v1::directory_service_server::DirectoryServiceServer;
use latch_proto::v1::integration_service_server::IntegrationServiceServer;
use latch_proto::v1::resource_service_server::ResourceServiceServer;
use latch_proto::v1::token_service_server::TokenServiceServer;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::lifecycle::Lifecycle;
use crate::store::Store;

pub use audit::AuditApi;
pub use auth_layer::caller;
pub use connectors::ConnectorAdminApi;
pub use directory::DirectoryApi;
pub use flows::FlowApi;
pub use integrations::IntegrationApi;
pub use requests::RequestApi;
pub use resources::ResourceApi;
pub use tokens::TokenApi;

/// gRPC paths that answer without a token: health probes (Kubernetes' native gRPC probes cannot send
/// one), and nothing else.
const UNAUTHENTICATED_PREFIXES: &[&str] = &["/grpc.health.v1.Health/"];

/// Builds the whole public router: Latch's services behind token authentication, health, reflection,
/// `/healthz` and `/metrics`.
pub fn router(
    store: Arc<dyn Store>,
    lifecycle: Arc<Lifecycle>,
    hub: Arc<crate::connectors::Hub>,
    metrics: PrometheusHandle,
) -> Result<axum::Router, tonic_reflection::server::Error> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    // The reporter only records state; setting it before the services exist is fine.
    let reporter = health_reporter.clone();
    tokio::spawn(async move {
        reporter
            .set_serving::<AccessFlowServiceServer<FlowApi>>()
            .await;
        reporter.set_serving::<TokenServiceServer<TokenApi>>().await;
        reporter.set_serving::<AuditServiceServer<AuditApi>>().await;
        reporter
            .set_serving::<DirectoryServiceServer<DirectoryApi>>()
            .await;
        reporter
            .set_serving::<AccessRequestServiceServer<RequestApi>>()
            .await;
        reporter
            .set_serving::<ResourceServiceServer<ResourceApi>>()
            .await;
        reporter
            .set_serving::<ConnectorAdminServiceServer<ConnectorAdminApi>>()
            .await;
        reporter
            .set_serving::<IntegrationServiceServer<IntegrationApi>>()
            .await;
    });
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(latch_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    // grpcio's Python reflection client still speaks v1alpha.
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(latch_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let grpc = tonic::service::Routes::builder()
        .add_service(AccessFlowServiceServer::new(FlowApi::new(
            store.clone(),
            lifecycle.clone(),
        )))
        .add_service(TokenServiceServer::new(TokenApi::new(store.clone())))
        .add_service(AuditServiceServer::new(AuditApi::new(store.clone())))
        .add_service(DirectoryServiceServer::new(DirectoryApi::new(
            store.clone(),
            lifecycle.clone(),
        )))
        .add_service(AccessRequestServiceServer::new(RequestApi::new(
            lifecycle.clone(),
            hub.vault().clone(),
        )))
        .add_service(ResourceServiceServer::new(ResourceApi::new(
            lifecycle.clone(),
        )))
        .add_service(ConnectorAdminServiceServer::new(ConnectorAdminApi::new(
            hub,
        )))
        .add_service(IntegrationServiceServer::new(IntegrationApi::new(
            lifecycle,
        )))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .clone()
        .routes()
        .prepare()
        .into_axum_router()
        .layer(axum::middleware::from_fn_with_state(
            store,
            auth_layer::authenticate,
        ));

    let http = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        );
    Ok(http
        .merge(grpc)
        .layer(axum::middleware::from_fn(crate::metrics::record_request)))
}
