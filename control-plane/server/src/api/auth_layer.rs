//! Bearer-token authentication for every gRPC call, before any service sees it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tonic::Status;

use crate::auth::{self, Caller};
use crate::store::Store;

use super::UNAUTHENTICATED_PREFIXES;

/// Finds the caller from the `authorization: Bearer` header and hands it to the services as a request
/// extension; answers UNAUTHENTICATED when there is no valid token.
pub async fn authenticate(
    State(store): State<Arc<dyn Store>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if UNAUTHENTICATED_PREFIXES
        .iter()
        .any(|prefix| path.starts_with(prefix))
    {
        return next.run(request).await;
    }
    // Copied out of the request: the body is not `Sync`, so the request cannot be borrowed across an await.
    let header = request.headers().get(http::header::AUTHORIZATION).cloned();
    match caller_from_header(store.as_ref(), header).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(status) => status.into_http::<axum::body::Body>().into_response(),
    }
}

async fn caller_from_header(
    store: &dyn Store,
    header: Option<http::HeaderValue>,
) -> Result<Caller, Status> {
    let header = header.ok_or_else(|| {
        Status::unauthenticated("missing bearer token: send `authorization: Bearer <token>`")
    })?;
    let presented = header
        .to_str()
        .ok()
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| {
            Status::unauthenticated("the authorization header is not `Bearer <token>`")
        })?;
    let invalid = || Status::unauthenticated("invalid, expired or revoked token");
    let id = auth::token_id(presented).ok_or_else(invalid)?;
    let record = store.token(id).await.map_err(|err| {
        // Fail closed: without the store we cannot know who is calling.
        tracing::error!(error = %err, "token lookup failed");
        Status::unavailable("cannot check the token right now")
    })?;
    let now = chrono::Utc::now();
    match record {
        Some(record) if auth::verify(&record, presented, now) => Ok(Caller {
            user: record.user,
            admin: record.admin,
            token_id: record.id,
        }),
        _ => Err(invalid()),
    }
}

/// The authenticated caller of a request. The auth layer runs before every service, so a missing
/// caller means a wiring mistake; it is refused rather than trusted.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no authenticated caller"))
}

/// The caller, who must hold an admin token.
pub fn admin<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
    let caller = caller(request)?;
    if caller.admin {
        Ok(caller)
    } else {
        Err(Status::permission_denied(format!(
            "{} is not an admin; this call needs an admin token",
            caller.user
        )))
    }
}
