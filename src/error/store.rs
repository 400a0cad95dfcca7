//! The one mapping of store errors to answers. A failing database is 503
//! `dependency_unavailable` with `Retry-After`; conflicts are the request's fault.

use std::time::Duration;

use super::{ApiError, ErrorCode, FieldError};
use crate::store::{Conflict, StoreError};

/// `Retry-After` for a database that failed without saying when it will be back.
const DEPENDENCY_RETRY: Duration = Duration::from_secs(1);

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "store unavailable");
                ApiError::dependency_unavailable(DEPENDENCY_RETRY)
            }
            StoreError::NotFound => ApiError::not_found(),
            StoreError::Internal(detail) => {
                tracing::error!(%detail, "store error");
                ApiError::internal()
            }
            StoreError::Conflict(c) => conflict(c),
        }
    }
}

fn conflict(c: Conflict) -> ApiError {
    match c {
        Conflict::DuplicateEmail => ApiError::new(
            ErrorCode::DuplicateEmail,
            "a user with this email already exists",
        ),
        Conflict::DuplicateSku => ApiError::new(
            ErrorCode::DuplicateSku,
            "a product with this SKU already exists",
        ),
        Conflict::InsufficientStock(ids) => ApiError::new(
            ErrorCode::InsufficientStock,
            "not enough stock for one or more items",
        )
        .with_errors(
            ids.iter()
                .map(|id| FieldError::new("items", "insufficient_stock", format!("product {id}")))
                .collect(),
        ),
        Conflict::InvalidTransition { from, to } => ApiError::new(
            ErrorCode::InvalidTransition,
            format!("cannot go from {from} to {to}"),
        ),
        Conflict::VersionMismatch => ApiError::new(
            ErrorCode::PreconditionFailed,
            "the resource has changed since the ETag given in If-Match",
        ),
        Conflict::IdempotencyKeyInUse => ApiError::new(
            ErrorCode::IdempotencyKeyInUse,
            "a request with this Idempotency-Key is still in flight",
        ),
        Conflict::IdempotencyKeyMismatch => ApiError::new(
            ErrorCode::IdempotencyKeyMismatch,
            "this Idempotency-Key was used with a different request",
        ),
        Conflict::UnknownReferences(ids) => ApiError::validation(
            ids.iter()
                .map(|id| FieldError::new("items", "unknown_product", format!("no product {id}")))
                .collect(),
        ),
        Conflict::MixedCurrency => ApiError::validation(vec![FieldError::new(
            "items",
            "mixed_currency",
            "all products of an order must have the same currency",
        )]),
        Conflict::UserGone => ApiError::unauthenticated("the token's user no longer exists"),
        Conflict::AccountInactive => {
            ApiError::new(ErrorCode::AccountInactive, "the account is not active")
        }
        Conflict::CredentialsChanged => ApiError::new(
            ErrorCode::InvalidCredentials,
            "the account's credentials changed while they were checked",
        ),
    }
}
