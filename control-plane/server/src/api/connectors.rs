//! `ConnectorAdminService`: registering, listing and revoking connectors. Admin tokens only.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use latch_proto::v1 as pb;
use latch_proto::v1::connector_admin_service_server::ConnectorAdminService;
use tonic::{Request, Response, Status};

use crate::connectors::{DEFAULT_TOKEN_TTL, Hub, new_token};
use crate::store::{ConnectorRecord, NewConnector};

use super::auth_layer::admin;
use super::convert::timestamp;
use super::status::invalid_field;

/// Longest an enrollment token may work: it is a credential in transit.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

pub struct ConnectorAdminApi {
    hub: Arc<Hub>,
}

impl ConnectorAdminApi {
    pub fn new(hub: Arc<Hub>) -> Self {
        ConnectorAdminApi { hub }
    }

    fn store(&self) -> &Arc<dyn crate::store::Store> {
        self.hub.lifecycle().store()
    }
}

/// A connector name: what `latch connectors create` accepts.
fn check_name(name: &str) -> Result<(), Status> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if valid {
        Ok(())
    } else {
        Err(invalid_field(
            "name",
            format!(
                "{name:?} must be 1 to 63 lowercase letters, digits or dashes, not starting with a dash"
            ),
        ))
    }
}

pub fn connector(record: &ConnectorRecord, now: chrono::DateTime<Utc>) -> pb::Connector {
    pb::Connector {
        id: record.id.clone(),
        name: record.name.clone(),
        state: record.state.as_str().to_string(),
        connected: record.connected_until.is_some_and(|until| until > now)
            && record.state == crate::store::ConnectorState::Enrolled,
        version: record.version.clone().unwrap_or_default(),
        last_seen: record.last_seen.map(timestamp),
        integrations: record.integrations.clone(),
        created_at: Some(timestamp(record.created_at)),
        certificate_not_after: record.cert_not_after.map(timestamp),
    }
}

#[tonic::async_trait]
impl ConnectorAdminService for ConnectorAdminApi {
    async fn create_connector(
        &self,
        request: Request<pb::CreateConnectorRequest>,
    ) -> Result<Response<pb::CreateConnectorResponse>, Status> {
        let caller = admin(&request)?;
        let request = request.into_inner();
        check_name(&request.name)?;
        let ttl = match request.token_ttl_secs {
            0 => DEFAULT_TOKEN_TTL,
            secs => Duration::from_secs(secs),
        };
        if ttl > MAX_TOKEN_TTL {
            return Err(invalid_field(
                "token_ttl_secs",
                format!("{} is longer than the most, 7 days", request.token_ttl_secs),
            ));
        }
        let now = Utc::now();
        let (token, token_hash) = new_token(self.hub.ca().fingerprint());
        let token_expires_at = now + chrono::Duration::from_std(ttl).unwrap_or_default();
        let record = self
            .store()
            .create_connector(
                &NewConnector {
                    id: uuid::Uuid::now_v7().to_string(),
                    name: request.name,
                    token_hash,
                    token_expires_at,
                },
                &caller.user,
                now,
            )
            .await?;
        tracing::info!(connector = %record.name, actor = %caller.user, "connector created");
        Ok(Response::new(pb::CreateConnectorResponse {
            connector: Some(connector(&record, now)),
            token: token.to_string(),
            token_expires_at: Some(timestamp(token_expires_at)),
        }))
    }

    async fn list_connectors(
        &self,
        request: Request<pb::ListConnectorsRequest>,
    ) -> Result<Response<pb::ListConnectorsResponse>, Status> {
        admin(&request)?;
        let now = Utc::now();
        let records = self.store().list_connectors().await?;
        Ok(Response::new(pb::ListConnectorsResponse {
            connectors: records.iter().map(|r| connector(r, now)).collect(),
        }))
    }

    async fn revoke_connector(
        &self,
        request: Request<pb::RevokeConnectorRequest>,
    ) -> Result<Response<pb::RevokeConnectorResponse>, Status> {
        let caller = admin(&request)?;
        let name = request.into_inner().name;
        check_name(&name)?;
        let now = Utc::now();
        let record = self
            .store()
            .revoke_connector(&name, &caller.user, now)
            .await?;
        // This server's stream closes now; another server's within a heartbeat.
        self.hub
            .close(&record.id, crate::connectors::Close::Revoked);
        tracing::info!(connector = %record.name, actor = %caller.user, "connector revoked");
        Ok(Response::new(pb::RevokeConnectorResponse {
            connector: Some(connector(&record, now)),
        }))
    }
}
