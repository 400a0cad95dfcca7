//! The actors' refusals as answers: a full bulkhead is 503 `overloaded`, an open circuit
//! 503 `dependency_unavailable`, both with `Retry-After`.

use std::time::Duration;

use bulkhead_actors::ActorError;

use super::{ApiError, ErrorCode};

impl From<ActorError> for ApiError {
    fn from(e: ActorError) -> Self {
        match e {
            ActorError::Overloaded { retry_after } => ApiError::overloaded(retry_after),
            ActorError::CircuitOpen { retry_after } => {
                ApiError::dependency_unavailable(retry_after)
            }
            ActorError::Unavailable | ActorError::Timeout => {
                ApiError::overloaded(Duration::from_secs(1))
            }
            ActorError::ConcurrencyLimited => ApiError::new(
                ErrorCode::RateLimited,
                "too many concurrent requests; retry when one finishes",
            )
            .with_retry_after(Duration::from_secs(1)),
            ActorError::Panicked { actor } => {
                tracing::error!(actor, "actor panicked while serving a request");
                ApiError::internal()
            }
        }
    }
}
