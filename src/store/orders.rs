//! Orders, and the idempotency keys of their creation.
//!
//! Placing an order with an `Idempotency-Key` is ONE transaction: it takes the key (a
//! concurrent request with the same key is refused at once, not made to wait), finds an
//! earlier use of it (replay or mismatch), checks and takes stock, writes the order and
//! stores its response under the key. Whatever fails, a rollback takes the key with it:
//! a failed attempt leaves nothing behind, and a retry after an outage gets its order at
//! once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::error::StoreError;
use crate::domain::order::{IdempotentRequest, NewOrder, Order, OrderQuery, Placed};

#[async_trait]
pub trait OrderStore: Send + Sync {
    /// In one transaction: with `idempotency`, take its key for `new.user_id`
    /// ([`super::Conflict::IdempotencyKeyInUse`] at once while another request holds it)
    /// and answer an earlier completed use of it with [`Placed::Replay`] (a different
    /// request hash is [`super::Conflict::IdempotencyKeyMismatch`]; uses older than
    /// [`crate::domain::order::IDEMPOTENCY_RETENTION`] are forgotten). Then lock the
    /// products, refuse unknown or deleted ones ([`super::Conflict::UnknownReferences`]),
    /// more than one currency ([`super::Conflict::MixedCurrency`]) or too little stock
    /// ([`super::Conflict::InsufficientStock`]); take the stock, write the order and store
    /// its response (201 and [`Order::to_json`]) under the key. A failure stores nothing.
    async fn create_order(
        &self,
        new: NewOrder,
        idempotency: Option<IdempotentRequest>,
    ) -> Result<Placed, StoreError>;

    async fn get_order(&self, id: Uuid) -> Result<Option<Order>, StoreError>;

    /// Newest first (`created_at`, then id, descending), strictly before `query.before`.
    async fn list_orders(&self, query: OrderQuery) -> Result<Vec<Order>, StoreError>;

    /// pending -> cancelled and the stock of its items restored, in one transaction;
    /// any other status is [`super::Conflict::InvalidTransition`].
    async fn cancel_order(&self, id: Uuid) -> Result<Order, StoreError>;

    /// Forget at most `limit` idempotency keys created before `before`, oldest first
    /// (the janitor passes now minus the retention); returns how many went. A key past
    /// retention is already ignored by `create_order`: this only frees its storage.
    async fn purge_idempotency_keys(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;
}
