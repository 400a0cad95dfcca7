//! The `Store`: every read and write of data, behind one trait with two backends.
//!
//! - [`postgres::PgStore`]: tokio-postgres over deadpool-postgres, with separate read and
//!   write pools and explicit wait/create/recycle timeouts; migrations in `sql/`.
//! - [`memory::MemoryStore`]: the embedded in-memory store used when no database is
//!   configured. Data is not kept across restarts.
//!
//! Both pass the same conformance suite (`tests/api/store_conformance.rs`). Errors say
//! whether the dependency failed ([`StoreError::Unavailable`], which the Postgres circuit
//! counts) or the request did (a conflict, which it does not).

pub mod memory;
mod orders;
pub mod postgres;
mod products;
mod tokens;
mod users;

use std::sync::Arc;

use async_trait::async_trait;

pub use orders::OrderStore;
pub use products::ProductStore;
pub use tokens::{Rotation, TokenStore};
pub use users::{UserKey, UserListQuery, UserSort, UserStore};

use crate::config::Config;

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
}

#[derive(Debug, thiserror::Error)]
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

/// All data access of the service.
#[async_trait]
pub trait Store:
    UserStore + TokenStore + ProductStore + OrderStore + Send + Sync + 'static
{
    fn backend(&self) -> Backend;

    /// Cheap round trip proving the store answers (for `/ready`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// New pool sizes from a reload (read, write); no-op for a backend without pools.
    fn resize_pools(&self, _read: usize, _write: usize) {}

    /// Connection pools by name with their size, available and waiting counts (metrics).
    fn pool_status(&self) -> Vec<(&'static str, deadpool_postgres::Status)> {
        Vec::new()
    }
}

/// Open the configured store: Postgres when `database.url` is set (applying migrations
/// when `database.migrate_on_start`), otherwise the in-memory store with a warning.
pub async fn open(config: &Config, migrate: bool) -> anyhow::Result<Arc<dyn Store>> {
    match &config.database.url {
        Some(_) => {
            let store = postgres::PgStore::connect(&config.database)?;
            if migrate {
                store.migrate().await?;
            }
            Ok(Arc::new(store))
        }
        None => {
            tracing::warn!(
                "no database.url configured: using the embedded in-memory store; \
                 data is NOT kept across restarts"
            );
            Ok(Arc::new(memory::MemoryStore::new()))
        }
    }
}
