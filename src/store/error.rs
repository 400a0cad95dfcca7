//! What a store call can fail with, and which backend answers.

/// Which backend answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Memory,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Memory => "memory",
        }
    }
}

/// A write the data refused: the request's fault, never the dependency's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// A live user already has this email.
    DuplicateEmail,
    /// A live product already has this SKU.
    DuplicateSku,
    /// Not enough stock for these products (ids).
    InsufficientStock(Vec<uuid::Uuid>),
    /// The record's state does not allow this transition.
    InvalidTransition { from: String, to: String },
    /// The `If-Match` version is not the current one.
    VersionMismatch,
    /// The Idempotency-Key's first request is still in flight.
    IdempotencyKeyInUse,
    /// The Idempotency-Key was used with a different request body.
    IdempotencyKeyMismatch,
    /// Referenced records do not exist (ids); e.g. unknown products in an order.
    UnknownReferences(Vec<uuid::Uuid>),
    /// An order's products are priced in more than one currency.
    MixedCurrency,
    /// The acting user's row is gone (a foreign key to `users` failed): the caller's
    /// account no longer exists, whatever a cached copy of it said.
    UserGone,
    /// The user is not active (or no longer live) where that was checked inside the
    /// write: a refresh token is stored only for an active account.
    AccountInactive,
    /// The user's credentials changed (its token epoch moved) since they were checked:
    /// a login that raced a password or email change gets no refresh token.
    CredentialsChanged,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The dependency did not answer in time or at all: pool timeout, connection lost.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The data refused the write (uniqueness, stock, state, version, idempotency).
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    /// The record does not exist (or is deleted).
    #[error("not found")]
    NotFound,
    /// Anything else: a bug or a broken invariant.
    #[error("store error: {0}")]
    Internal(String),
}

impl StoreError {
    /// Whether the failure is the dependency's (counts against its circuit).
    pub fn is_dependency_failure(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}
