//! `ConnectorService` on the connector listener: enrollment, and the stream.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use latch_proto::connector_protocol::{
    EnrollmentToken, MAX_PROTOCOL, MIN_PROTOCOL, choose_protocol,
};
use latch_proto::v1::connector_service_server::ConnectorService;
use latch_proto::v1::{
    EnrollRequest, EnrollResponse, OpenStreamRequest, OpenStreamResponse, RefusedIntegration,
    Welcome, open_stream_request, open_stream_response,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::enrollment::hash_secret;
use super::hub::Hub;
use super::listener::Peer;
use super::session::{Session, response};
use crate::api::convert::timestamp;
use crate::store::{Announcement, ConnectorState};

/// How long a new stream may take to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The gRPC service connectors call.
#[derive(Clone)]
pub struct ConnectorApi {
    hub: Arc<Hub>,
}

impl ConnectorApi {
    pub fn new(hub: Arc<Hub>) -> ConnectorApi {
        ConnectorApi { hub }
    }
}

#[tonic::async_trait]
impl ConnectorService for ConnectorApi {
    async fn enroll(
        &self,
        request: Request<EnrollRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        let request = request.into_inner();
        let token: EnrollmentToken = request
            .token
            .parse()
            .map_err(|err| Status::unauthenticated(format!("token: {err}")))?;
        if token.ca_fingerprint != self.hub.ca.fingerprint() {
            return Err(Status::unauthenticated(
                "token: it was made by another Latch (its CA fingerprint is not this server's)",
            ));
        }
        // A bad CSR must not use up the token.
        self.hub
            .ca
            .check_csr(&request.csr_pem)
            .map_err(Status::invalid_argument)?;
        let now = Utc::now();
        let ttl = self.hub.settings.cert_ttl;
        let not_after =
            now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(24));
        let connector = self
            .hub
            .lifecycle
            .store()
            .enroll_connector(&hash_secret(&token.secret), not_after, now)
            .await?;
        let issued = self
            .hub
            .ca
            .issue_client(&request.csr_pem, &connector.id, now, ttl)
            .map_err(Status::internal)?;
        if !request.version.is_empty() {
            let _ = self
                .hub
                .lifecycle
                .store()
                .connector_seen(&connector.id, Some(&request.version), None, now)
                .await;
        }
        tracing::info!(connector = %connector.name, id = %connector.id, "a connector enrolled");
        Ok(Response::new(EnrollResponse {
            connector_id: connector.id,
            name: connector.name,
            certificate_pem: issued.pem,
            ca_bundle_pem: self.hub.ca.cert_pem().to_string(),
            command_signing_key: self.hub.signer.public_key().to_vec(),
            not_after: Some(timestamp(issued.not_after)),
        }))
    }

    type OpenStreamStream = ReceiverStream<Result<OpenStreamResponse, Status>>;

    async fn open_stream(
        &self,
        request: Request<Streaming<OpenStreamRequest>>,
    ) -> Result<Response<Self::OpenStreamStream>, Status> {
        let connector_id = request
            .extensions()
            .get::<Peer>()
            .and_then(|peer| peer.connector_id.clone())
            .ok_or_else(|| {
                Status::unauthenticated(
                    "a client certificate from Latch's connector CA is required; enroll first",
                )
            })?;
        let store = self.hub.lifecycle.store().clone();
        let connector = store
            .connector(&connector_id)
            .await?
            .ok_or_else(|| Status::unauthenticated("unknown connector"))?;
        if connector.state != ConnectorState::Enrolled {
            return Err(Status::permission_denied(format!(
                "connector {:?} is {}",
                connector.name,
                connector.state.as_str()
            )));
        }
        let mut inbound = request.into_inner();
        let (outbound, receiver) = tokio::sync::mpsc::channel(256);
        let hub = self.hub.clone();
        let span = tracing::info_span!("connector_stream", connector = %connector.name, id = %connector.id);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
                    Ok(Ok(Some(OpenStreamRequest {
                        message: Some(open_stream_request::Message::Hello(hello)),
                    }))) => hello,
                    _ => {
                        let _ = outbound
                            .send(Err(Status::failed_precondition(
                                "the first message on a stream must be hello",
                            )))
                            .await;
                        return;
                    }
                };
                let Some(protocol) = choose_protocol(hello.min_protocol, hello.max_protocol) else {
                    let _ = outbound
                        .send(Err(Status::failed_precondition(format!(
                            "protocol versions {}..={} are not spoken here; this server speaks {MIN_PROTOCOL}..={MAX_PROTOCOL}",
                            hello.min_protocol, hello.max_protocol
                        ))))
                        .await;
                    return;
                };
                let now = Utc::now();
                let announced: Vec<Announcement> = hello
                    .integrations
                    .iter()
                    .map(|i| Announcement {
                        name: i.name.clone(),
                        kind: i.kind.clone(),
                        capabilities: i.capabilities.clone(),
                    })
                    .collect();
                let refused = match store
                    .announce_integrations(&connector.id, &announced, now)
                    .await
                {
                    Ok(refused) => refused,
                    Err(err) => {
                        let _ = outbound.send(Err(Status::from(err))).await;
                        return;
                    }
                };
                let served: Vec<String> = announced
                    .iter()
                    .filter(|a| !refused.iter().any(|(name, _)| *name == a.name))
                    .map(|a| a.name.clone())
                    .collect();
                let heartbeat = hub.settings.heartbeat;
                let until = now + chrono::Duration::from_std(heartbeat * 3).unwrap_or_default();
                let _ = store
                    .connector_seen(&connector.id, Some(&hello.version), Some(until), now)
                    .await;
                let welcome = Welcome {
                    protocol,
                    connector_id: connector.id.clone(),
                    heartbeat_interval: prost_types::Duration::try_from(heartbeat).ok(),
                    server_version: env!("CARGO_PKG_VERSION").to_string(),
                    refused_integrations: refused
                        .into_iter()
                        .map(|(name, reason)| RefusedIntegration { name, reason })
                        .collect(),
                };
                if outbound
                    .send(Ok(response(open_stream_response::Message::Welcome(
                        welcome,
                    ))))
                    .await
                    .is_err()
                {
                    return;
                }
                tracing::info!(version = %hello.version, protocol, integrations = ?served, "a connector connected");
                Session::new(hub, connector, served, outbound)
                    .run(inbound)
                    .await;
            },
            span,
        ));
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}
