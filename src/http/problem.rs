//! Every error the API answers, as RFC 9457 problem+json, from one table of codes.
//!
//! Handlers and extractors return [`ApiError`]; its `error_response` marks the response
//! with a [`PendingProblem`] and the outermost middleware (`http::request`) renders the body,
//! because only it knows the request id and the path (`instance`). Framework errors that do
//! not come through here are rendered by the same middleware from their status.

use std::time::Duration;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

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
    RequestTimeout => ("request_timeout", StatusCode::REQUEST_TIMEOUT, "Request timeout"),
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
    pub fn from_status(status: StatusCode) -> ErrorCode {
        match status.as_u16() {
            400 => ErrorCode::MalformedRequest,
            401 => ErrorCode::Unauthenticated,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            408 => ErrorCode::RequestTimeout,
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

/// An error answer of the API.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
    headers: Vec<(HeaderName, HeaderValue)>,
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
            headers: Vec::new(),
        }
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// `Retry-After` in whole seconds, at least 1.
    pub fn with_retry_after(self, after: Duration) -> Self {
        let secs = retry_after_secs(after);
        self.with_header(header::RETRY_AFTER, HeaderValue::from(secs))
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
        Self::new(
            ErrorCode::MethodNotAllowed,
            format!("this resource allows {allow}"),
        )
        .with_header(header::ALLOW, HeaderValue::from_static(allow))
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, detail).with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"bulkhead\""),
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

/// The problem of a response, waiting for the request middleware to render it.
#[derive(Debug, Clone)]
pub struct PendingProblem {
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
}

/// The rendered body (RFC 9457 members plus `code`, `request_id`, `errors`).
#[derive(Serialize)]
pub struct ProblemBody<'a> {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: &'a str,
    pub instance: &'a str,
    pub code: &'static str,
    pub request_id: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    pub errors: &'a [FieldError],
}

impl PendingProblem {
    pub fn render(&self, instance: &str, request_id: &str) -> Vec<u8> {
        let body = ProblemBody {
            type_: self.code.type_uri(),
            title: self.code.title(),
            status: self.code.status().as_u16(),
            detail: &self.detail,
            instance,
            code: self.code.as_str(),
            request_id,
            errors: &self.errors,
        };
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec())
    }
}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.code.status());
        for (name, value) in &self.headers {
            res.insert_header((name.clone(), value.clone()));
        }
        res.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        if matches!(
            self.code,
            ErrorCode::InvalidCredentials | ErrorCode::RefreshTokenReused
        ) {
            res.insert_header((header::CACHE_CONTROL, "no-store"));
        }
        let mut res = res.finish();
        res.extensions_mut().insert(PendingProblem {
            code: self.code,
            detail: self.detail.clone(),
            errors: self.errors.clone(),
        });
        res
    }
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

    #[test]
    fn rendered_problem_has_every_member() {
        let p = PendingProblem {
            code: ErrorCode::ValidationFailed,
            detail: "bad".into(),
            errors: vec![FieldError::new("email", "format", "not an email")],
        };
        let v: serde_json::Value = serde_json::from_slice(&p.render("/x", "rid")).unwrap();
        for key in [
            "type",
            "title",
            "status",
            "detail",
            "instance",
            "code",
            "request_id",
            "errors",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["status"], 422);
        assert_eq!(v["errors"][0]["field"], "email");
    }
}
