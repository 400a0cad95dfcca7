//! Every error the API answers, from one table of codes (code, status, title), and the
//! mapping of each lower layer's errors onto it: [`From<StoreError>`](crate::store::StoreError)
//! in `store.rs`, [`From<ActorError>`](bulkhead_actors::ActorError) in `actors.rs`.
//!
//! Services, handlers and extractors return [`ApiError`]; it knows no HTTP framework (the
//! status is the `http` crate's `StatusCode`, a plain value type). Its
//! rendering as RFC 9457 problem+json (body, `Retry-After`, `Allow`, `WWW-Authenticate`)
//! is `http::problem`'s business, because only the HTTP layer knows the request id and the
//! path (`instance`).

mod actors;
mod store;

use std::time::Duration;

use ::http::StatusCode;
use serde::Serialize;

use crate::domain::user::UserStatus;

macro_rules! error_codes {
    ($($variant:ident => ($code:literal, $status:expr, $title:literal),)*) => {
        /// The stable, snake_case `code` of every problem the API answers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode { $($variant,)* }

        impl ErrorCode {
            /// Every code, for documentation and the OpenAPI document.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The HTTP status this code is answered with.
            pub fn status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            pub fn title(self) -> &'static str {
                match self { $(ErrorCode::$variant => $title,)* }
            }
        }
    };
}

error_codes! {
    MalformedRequest => ("malformed_request", StatusCode::BAD_REQUEST, "Malformed request"),
    InvalidParameter => ("invalid_parameter", StatusCode::BAD_REQUEST, "Invalid parameter"),
    IdempotencyKeyMissing => ("idempotency_key_missing", StatusCode::BAD_REQUEST, "Idempotency-Key header missing"),
    Unauthenticated => ("unauthenticated", StatusCode::UNAUTHORIZED, "Authentication required"),
    InvalidCredentials => ("invalid_credentials", StatusCode::UNAUTHORIZED, "Invalid credentials"),
    RefreshTokenReused => ("refresh_token_reused", StatusCode::UNAUTHORIZED, "Refresh token reused"),
    Forbidden => ("forbidden", StatusCode::FORBIDDEN, "Forbidden"),
    AccountInactive => ("account_inactive", StatusCode::FORBIDDEN, "Account inactive"),
    NotFound => ("not_found", StatusCode::NOT_FOUND, "Not found"),
    MethodNotAllowed => ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
    DuplicateEmail => ("duplicate_email", StatusCode::CONFLICT, "Email already registered"),
    DuplicateSku => ("duplicate_sku", StatusCode::CONFLICT, "SKU already exists"),
    InvalidTransition => ("invalid_transition", StatusCode::CONFLICT, "Invalid state transition"),
    InsufficientStock => ("insufficient_stock", StatusCode::CONFLICT, "Insufficient stock"),
    IdempotencyKeyInUse => ("idempotency_key_in_use", StatusCode::CONFLICT, "Idempotency key in use"),
    PreconditionFailed => ("precondition_failed", StatusCode::PRECONDITION_FAILED, "Precondition failed"),
    PayloadTooLarge => ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE, "Payload too large"),
    UnsupportedMediaType => ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type"),
    ValidationFailed => ("validation_failed", StatusCode::UNPROCESSABLE_ENTITY, "Validation failed"),
    IdempotencyKeyMismatch => ("idempotency_key_mismatch", StatusCode::UNPROCESSABLE_ENTITY, "Idempotency key reused with a different request"),
    RateLimited => ("rate_limited", StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
    Internal => ("internal_error", StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"),
    Overloaded => ("overloaded", StatusCode::SERVICE_UNAVAILABLE, "Service overloaded"),
    DependencyUnavailable => ("dependency_unavailable", StatusCode::SERVICE_UNAVAILABLE, "Dependency unavailable"),
}

impl ErrorCode {
    /// The problem `type` URI of this code.
    pub fn type_uri(self) -> String {
        format!("urn:bulkhead:problem:{}", self.as_str())
    }

    /// The code a bare status stands for, for framework errors that carry only a status.
    pub fn from_status(status: u16) -> ErrorCode {
        match status {
            400 => ErrorCode::MalformedRequest,
            401 => ErrorCode::Unauthenticated,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            412 => ErrorCode::PreconditionFailed,
            413 => ErrorCode::PayloadTooLarge,
            415 => ErrorCode::UnsupportedMediaType,
            422 => ErrorCode::ValidationFailed,
            429 => ErrorCode::RateLimited,
            503 => ErrorCode::Overloaded,
            _ => ErrorCode::Internal,
        }
    }
}

/// One rule a field broke (the `errors` member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// An error answer of the API. Besides its code, detail and field errors it carries the
/// facts some answers must state in headers: when to retry (`Retry-After`) and which
/// methods a resource allows (`Allow`). A 401 `unauthenticated` always names the bearer
/// scheme (`WWW-Authenticate`), so it needs no field.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// `Retry-After` in whole seconds (at least 1).
    pub retry_after_secs: Option<u64>,
    /// `Allow`: the methods of the resource (405 answers).
    pub allow: Option<&'static str>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after_secs: None,
            allow: None,
        }
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// `Retry-After` in whole seconds, at least 1.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after_secs = Some(retry_after_secs(after));
        self
    }

    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::MalformedRequest, detail)
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self::new(
            ErrorCode::ValidationFailed,
            "one or more fields break a rule; see `errors`",
        )
        .with_errors(errors)
    }

    pub fn invalid_parameter(name: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(
            ErrorCode::InvalidParameter,
            format!("query parameter `{name}`: {message}"),
        )
        .with_errors(vec![FieldError::new(name, "invalid", message)])
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "no such resource")
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut e = Self::new(
            ErrorCode::MethodNotAllowed,
            format!("this resource allows {allow}"),
        );
        e.allow = Some(allow);
        e
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, detail)
    }

    /// 403 `account_inactive`: the account exists but is not active.
    pub fn account_inactive(status: UserStatus) -> Self {
        Self::new(
            ErrorCode::AccountInactive,
            format!("the account is {}", status.as_str()),
        )
    }

    pub fn forbidden() -> Self {
        Self::new(ErrorCode::Forbidden, "not allowed for this account")
    }

    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "an unexpected error occurred")
    }

    pub fn overloaded(retry_after: Duration) -> Self {
        Self::new(
            ErrorCode::Overloaded,
            "the service is at capacity; retry later",
        )
        .with_retry_after(retry_after)
    }

    pub fn dependency_unavailable(retry_after: Duration) -> Self {
        Self::new(
            ErrorCode::DependencyUnavailable,
            "a dependency is unavailable; retry later",
        )
        .with_retry_after(retry_after)
    }
}

/// Whole seconds, rounded up, at least 1.
pub fn retry_after_secs(after: Duration) -> u64 {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_errors() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {}", code.as_str());
            assert!(code
                .as_str()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_'));
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }
}
