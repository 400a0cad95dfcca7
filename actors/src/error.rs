//! The one error type every handle in this crate returns.
//!
//! The service maps it to HTTP in one place: `Overloaded` -> 503 `overloaded` with
//! `Retry-After`, `CircuitOpen` -> 503 `dependency_unavailable` with `Retry-After`,
//! `ConcurrencyLimited` -> 429, `Unavailable` / `Timeout` -> 503, `Panicked` -> 500.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActorError {
    /// A bound was hit: mailbox full, bulkhead queue full, or its queue deadline passed.
    #[error("overloaded, retry after {retry_after:?}")]
    Overloaded { retry_after: Duration },
    /// The actor is stopped or restarting, or its mailbox is closed.
    #[error("actor unavailable")]
    Unavailable,
    /// The deadline passed while waiting for a reply.
    #[error("timed out waiting for an actor")]
    Timeout,
    /// The dependency's circuit is open (or its half-open trial slots are taken).
    #[error("circuit open, retry after {retry_after:?}")]
    CircuitOpen { retry_after: Duration },
    /// The key already has `concurrency_per_key` requests in flight.
    #[error("too many concurrent requests for this key")]
    ConcurrencyLimited,
    /// The handler panicked; the actor is being restarted by its supervisor.
    #[error("{actor} actor panicked while handling the request")]
    Panicked { actor: &'static str },
}

impl ActorError {
    /// Suggested `Retry-After`, when the error has one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Overloaded { retry_after } | Self::CircuitOpen { retry_after } => {
                Some(*retry_after)
            }
            Self::Unavailable | Self::Timeout | Self::ConcurrencyLimited => {
                Some(Duration::from_secs(1))
            }
            Self::Panicked { .. } => None,
        }
    }
}
