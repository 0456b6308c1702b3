//! `TokenService`: admins create, list and revoke API tokens.

use std::sync::Arc;

use latch_proto::v1 as pb;
use latch_proto::v1::token_service_server::TokenService;
use tonic::{Request, Response, Status};

use crate::auth::{self, TokenRequest};
use crate::store::Store;

use super::auth_layer::admin;
use super::status::invalid_field;
use super::{convert, page};

const DEFAULT_TTL: chrono::Duration = chrono::Duration::hours(12);
const MAX_TTL: chrono::Duration = chrono::Duration::days(365);

/// The token service over a store.
pub struct TokenApi {
    store: Arc<dyn Store>,
}

impl TokenApi {
    pub fn new(store: Arc<dyn Store>) -> Self {
        TokenApi { store }
    }
}

fn ttl(requested: Option<prost_types::Duration>) -> Result<chrono::Duration, Status> {
    let Some(requested) = requested else {
        return Ok(DEFAULT_TTL);
    };
    let shown = format!("{}s", requested.seconds);
    let ttl = chrono::Duration::try_seconds(requested.seconds)
        .filter(|ttl| *ttl > chrono::Duration::zero() && requested.nanos >= 0)
        .ok_or_else(|| invalid_field("ttl", format!("{shown} is not a positive duration")))?;
    if ttl > MAX_TTL {
        return Err(invalid_field(
            "ttl",
            format!("{shown} is longer than the maximum of 365 days"),
        ));
    }
    Ok(ttl)
}

#[tonic::async_trait]
impl TokenService for TokenApi {
    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let caller = admin(&request)?;
        let request = request.into_inner();
        let user = request.user.trim();
        if !is_email(user) {
            return Err(invalid_field(
                "user",
                format!("{:?} is not an email address", request.user),
            ));
        }
        let issued = auth::issue(
            TokenRequest {
                user: user.to_string(),
                admin: request.admin,
                description: request.description,
                ttl: Some(ttl(request.ttl)?),
                created_by: caller.user.clone(),
            },
            chrono::Utc::now(),
        );
        self.store
            .create_token(&issued.record, &caller.user)
            .await?;
        tracing::info!(token_id = %issued.record.id, user = %issued.record.user, admin = issued.record.admin, actor = %caller.user, "token created");
        let stored = self
            .store
            .token(&issued.record.id)
            .await?
            .ok_or_else(|| Status::internal("the new token could not be read back"))?;
        Ok(Response::new(pb::CreateTokenResponse {
            token: Some(convert::token(&stored)),
            secret: issued.secret,
        }))
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        admin(&request)?;
        let request = request.into_inner();
        let limit = page::size(request.page_size);
        let before = page::key(&request.page_token)?;
        let rows = self
            .store
            .list_tokens(
                before.as_deref(),
                limit + 1,
                request.include_inactive,
                chrono::Utc::now(),
            )
            .await?;
        let (rows, next_page_token) = page::split(rows, limit, |token| token.id.clone());
        Ok(Response::new(pb::ListTokensResponse {
            tokens: rows.iter().map(convert::token).collect(),
            next_page_token,
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        let caller = admin(&request)?;
        let id = request.into_inner().id;
        if id.is_empty() {
            return Err(invalid_field("id", "is required"));
        }
        match self
            .store
            .revoke_token(&id, &caller.user, chrono::Utc::now())
            .await?
        {
            Some(token) => {
                tracing::info!(token_id = %id, actor = %caller.user, "token revoked");
                Ok(Response::new(pb::RevokeTokenResponse {
                    token: Some(convert::token(&token)),
                }))
            }
            None => Err(Status::not_found(format!("token {id:?} not found"))),
        }
    }
}

fn is_email(value: &str) -> bool {
    match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !value.contains(char::is_whitespace)
        }
        None => false,
    }
}
