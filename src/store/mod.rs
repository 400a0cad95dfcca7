//! The `Store`: every read and write of data, behind one trait with two backends.
//!
//! - [`postgres::PgStore`]: tokio-postgres over deadpool-postgres, with separate read and
//!   write pools and explicit wait/create/recycle timeouts; migrations in `sql/`.
//! - [`memory::MemoryStore`]: the embedded in-memory store used when no database is
//!   configured. Data is not kept across restarts.
//!
//! [`open::open`] opens the configured one. Both pass the same conformance suite (`tests/api/store_conformance.rs`). Errors say
//! whether the dependency failed ([`StoreError::Unavailable`], which the Postgres circuit
//! counts) or the request did (a conflict, which it does not).

mod error;
pub mod memory;
pub mod open;
mod orders;
pub mod postgres;
mod products;
mod refresh_tokens;
mod users;

use std::sync::Arc;

use async_trait::async_trait;

pub use error::{Backend, Conflict, StoreError};
pub use orders::OrderStore;
pub use products::ProductStore;
pub use refresh_tokens::{RefreshTokenStore, Rotation};
pub use users::{UserKey, UserListQuery, UserSort, UserStore};

/// All data access of the service.
#[async_trait]
pub trait Store:
    UserStore + RefreshTokenStore + ProductStore + OrderStore + Send + Sync + 'static
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

    /// The outbox the event relay drains; `None` when events are off.
    fn outbox_source(self: Arc<Self>) -> Option<Arc<dyn crate::events::source::OutboxSource>> {
        None
    }
}
