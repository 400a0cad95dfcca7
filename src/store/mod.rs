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
pub mod postgres;
mod users;

use std::sync::Arc;

use async_trait::async_trait;

pub use users::UserStore;

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

/// A uniqueness rule a write broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    DuplicateEmail,
    DuplicateSku,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The dependency did not answer in time or at all: pool timeout, connection lost.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was broken by this request.
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
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
pub trait Store: UserStore + Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Cheap round trip proving the store answers (for `/ready`).
    async fn ping(&self) -> Result<(), StoreError>;
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
