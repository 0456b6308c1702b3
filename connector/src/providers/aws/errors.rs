//! How AWS SDK errors become [`ProviderError`]s. AWS services name their errors in a `code`
//! (`ThrottlingException`, `AccessDenied`, `NoSuchEntity`, ...) that differs between services
//! for the same meaning, so the mapping goes by code first and by HTTP status second.

use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};

use crate::provider::ProviderError;

/// Codes AWS services use to ask for a slower pace.
const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    // The Resource Groups Tagging API's.
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "RequestThrottled",
    "RequestThrottledException",
    "ProvisionedThroughputExceededException",
    "PriorRequestNotComplete",
];

const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthorizationError",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
];

const NOT_FOUND: &[&str] = &[
    "ResourceNotFoundException",
    "NoSuchEntity",
    "NoSuchEntityException",
    "NotFoundException",
    "NoSuchBucket",
    "AccountNotFoundException",
    "ParentNotFoundException",
];

/// Whether `code` is one of the throttling codes.
pub(crate) fn is_throttling(code: &str) -> bool {
    THROTTLING.contains(&code)
}

/// Classifies `err` from doing `what` (a phrase for the message, e.g. "listing IAM roles").
pub(crate) fn classify<E>(err: SdkError<E, HttpResponse>, what: &str) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ConstructionFailure(_) => ProviderError::invalid(format!(
            "{what}: the request could not be built: {}",
            aws_sdk_sts::error::DisplayErrorContext(&err)
        )),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ProviderError::transient(format!(
                "{what}: {}",
                aws_sdk_sts::error::DisplayErrorContext(&err)
            ))
        }
        SdkError::ServiceError(context) => {
            let status = context.raw().status().as_u16();
            let code = err.code().unwrap_or("").to_string();
            let message = format!(
                "{what}: {code}{}{}",
                if code.is_empty() { "" } else { ": " },
                err.message().unwrap_or("(no message)")
            );
            classify_code(&code, status, message)
        }
        _ => ProviderError::transient(format!(
            "{what}: {}",
            aws_sdk_sts::error::DisplayErrorContext(&err)
        )),
    }
}

/// The class of a service error with `code` and HTTP `status`.
pub(crate) fn classify_code(code: &str, status: u16, message: String) -> ProviderError {
    if is_throttling(code) || status == 429 {
        ProviderError::throttled(message, None)
    } else if DENIED.contains(&code) || status == 401 || status == 403 {
        ProviderError::denied(message)
    } else if NOT_FOUND.contains(&code) || code.ends_with("NotFoundException") || status == 404 {
        ProviderError::not_found(message)
    } else if code == "ConflictException" || status >= 500 {
        // A conflict in Identity Center is another operation on the same target still running:
        // it goes away by itself.
        ProviderError::transient(message)
    } else {
        // Validation and the remaining 4xx: the same request will fail the same way.
        ProviderError::invalid(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_classes() {
        let class = |code: &str, status: u16| classify_code(code, status, code.to_string());
        for code in [
            "ThrottlingException",
            "Throttling",
            "ThrottledException",
            "TooManyRequestsException",
            "SlowDown",
        ] {
            assert!(
                matches!(class(code, 400), ProviderError::Throttled { .. }),
                "{code}"
            );
        }
        assert!(matches!(class("", 429), ProviderError::Throttled { .. }));
        assert!(matches!(
            class("AccessDenied", 403),
            ProviderError::Denied { .. }
        ));
        assert!(matches!(
            class("AccessDeniedException", 400),
            ProviderError::Denied { .. }
        ));
        assert!(matches!(
            class("NoSuchEntity", 404),
            ProviderError::NotFound { .. }
        ));
        assert!(matches!(
            class("ResourceNotFoundException", 400),
            ProviderError::NotFound { .. }
        ));
        assert!(matches!(
            class("ValidationException", 400),
            ProviderError::Invalid { .. }
        ));
        assert!(matches!(
            class("MalformedPolicyDocument", 400),
            ProviderError::Invalid { .. }
        ));
        assert!(matches!(
            class("InternalServerException", 500),
            ProviderError::Transient { .. }
        ));
        assert!(matches!(
            class("ConflictException", 409),
            ProviderError::Transient { .. }
        ));
    }
}
