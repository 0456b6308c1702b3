//! The one place where internal errors become gRPC statuses.

use latch_core::flow::Problem;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::store::{Refusal, StoreError};

impl From<StoreError> for Status {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(what) => {
                Status::aborted(format!("conflicting concurrent change to {what}; retry"))
            }
            StoreError::Refused(refusal) => Status::from(refusal),
            StoreError::Unavailable(reason) => {
                tracing::error!(%reason, "store unavailable");
                Status::unavailable("the database is unavailable; nothing was changed, retry later")
            }
            other => {
                // Details stay in the server log; callers learn only that it failed and nothing changed.
                tracing::error!(error = %other, "store error");
                Status::internal("internal storage error; nothing was changed")
            }
        }
    }
}

impl From<Refusal> for Status {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::NotFound(message) => Status::not_found(message),
            Refusal::PermissionDenied(message) => Status::permission_denied(message),
            Refusal::FailedPrecondition(message) => Status::failed_precondition(message),
            Refusal::InvalidArgument(message) => Status::invalid_argument(message),
            Refusal::AlreadyExists(message) => Status::already_exists(message),
            Refusal::Unauthenticated(message) => Status::unauthenticated(message),
        }
    }
}

/// INVALID_ARGUMENT listing every problem, one per line, with each also as a field violation.
pub fn invalid_flows(problems: &[Problem]) -> Status {
    let errors: Vec<&Problem> = problems.iter().filter(|p| p.is_error()).collect();
    let lines: Vec<String> = errors.iter().map(|p| p.with_flow().to_string()).collect();
    let message = crate::problems::summary(&lines);
    let violations = errors
        .iter()
        .map(|p| FieldViolation::new(field_of(p), p.message.clone()))
        .collect::<Vec<_>>();
    Status::with_error_details(
        Code::InvalidArgument,
        message,
        ErrorDetails::with_bad_request(violations),
    )
}

/// `flows[i].path`, the problem's field in request terms.
fn field_of(problem: &Problem) -> String {
    if problem.path.is_empty() {
        format!("flows[{}]", problem.flow_index)
    } else {
        format!("flows[{}].{}", problem.flow_index, problem.path)
    }
}

/// INVALID_ARGUMENT for a refused document (directory, inventory), listing every problem.
pub fn invalid_document(problems: &[String]) -> Status {
    Status::invalid_argument(crate::problems::summary(problems))
}

/// INVALID_ARGUMENT naming a request field and its value.
pub fn invalid_field(field: &str, message: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {message}"))
}
