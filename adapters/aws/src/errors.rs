//! Sorting SDK errors into the ports' error kinds.
//!
//! A call that may succeed later (throttling, a 5xx, a timeout, a dropped
//! connection) is transient. A request the service rejected for what it
//! contains is rejected. Authentication and permission errors count as
//! transient on purpose: retrying the event after the role is fixed is right,
//! while treating them as final could record a stop or a start as settled
//! when it never happened.

use std::error::Error;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use gpu_recovery_ports::{CallError, StoreError};

/// Error codes that mean "try again later", across the services used here.
const TRANSIENT_CODES: [&str; 22] = [
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "ServerException",
    "InternalServerError",
    "InternalServerException",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "AccessDeniedException",
    "AccessDenied",
    "AuthorizationError",
    "ExpiredTokenException",
];

/// What went wrong in one SDK call, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The service's error code, for service errors.
    pub code: Option<String>,
    pub message: String,
    pub transient: bool,
}

impl Failure {
    pub fn into_call_error(self, operation: &str) -> CallError {
        if self.transient {
            CallError::transient(operation, self.message)
        } else {
            CallError::rejected(operation, self.message)
        }
    }

    pub fn into_store_error(self, operation: &str) -> StoreError {
        StoreError::Unavailable {
            operation: operation.to_owned(),
            message: self.message,
        }
    }

    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

/// Sorts an SDK error into transient or rejected, keeping its code and message.
pub(crate) fn classify<E>(error: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + Error + 'static,
{
    match error {
        SdkError::ServiceError(context) => {
            let service_error = context.err();
            let code = service_error.code().map(str::to_owned);
            let status = context.raw().status().as_u16();
            let message = match (service_error.code(), service_error.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => format!("{code} (HTTP {status})"),
                _ => format!("HTTP {status}: {}", DisplayErrorContext(error)),
            };
            let transient = status >= 500
                || status == 429
                || code
                    .as_deref()
                    .is_some_and(|code| TRANSIENT_CODES.contains(&code));
            Failure {
                code,
                message,
                transient,
            }
        }
        // A request that could not be built is a bug in the request, and no
        // retry changes it.
        SdkError::ConstructionFailure(_) => Failure {
            code: None,
            message: format!(
                "the request could not be built: {}",
                DisplayErrorContext(error)
            ),
            transient: false,
        },
        SdkError::TimeoutError(_) => Failure {
            code: None,
            message: format!("timed out: {}", DisplayErrorContext(error)),
            transient: true,
        },
        _ => Failure {
            code: None,
            message: DisplayErrorContext(error).to_string(),
            transient: true,
        },
    }
}

/// Shorthand for the common case of turning an SDK error into a [`CallError`].
pub(crate) fn call_error<E>(operation: &str, error: &SdkError<E, HttpResponse>) -> CallError
where
    E: ProvideErrorMetadata + Error + 'static,
{
    classify(error).into_call_error(operation)
}
