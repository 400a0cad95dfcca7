//! Orders, and the idempotency keys of their creation.
//!
//! Creating an order with an `Idempotency-Key` is three steps: [`OrderStore::claim_idempotency_key`]
//! (committed on its own, so a concurrent request with the same key sees it in flight),
//! then [`OrderStore::create_order`] which checks and takes stock, writes the order and
//! stores the response in the key's row in ONE transaction, or, when the creation fails,
//! [`OrderStore::release_idempotency_key`] so the key can be used again.

use async_trait::async_trait;
use uuid::Uuid;

use super::error::StoreError;
use crate::domain::order::{
    Claim, ClaimToken, IdempotencyKey, IdempotentCompletion, NewOrder, Order, OrderQuery,
};

#[async_trait]
pub trait OrderStore: Send + Sync {
    /// Claim `key` for `user_id`'s request with `request_hash`, or find its earlier use:
    /// a completed first request gives [`Claim::Replay`]; a different hash is
    /// [`super::Conflict::IdempotencyKeyMismatch`]; a claim still in flight (younger than
    /// the claim timeout) is [`super::Conflict::IdempotencyKeyInUse`]. Expired keys and
    /// abandoned claims are taken over.
    async fn claim_idempotency_key(
        &self,
        user_id: Uuid,
        key: &IdempotencyKey,
        request_hash: &[u8],
    ) -> Result<Claim, StoreError>;

    /// Drop a claim that has no response (the request failed), if it is still ours.
    async fn release_idempotency_key(
        &self,
        user_id: Uuid,
        key: &IdempotencyKey,
        token: ClaimToken,
    ) -> Result<(), StoreError>;

    /// In one transaction: lock the products, refuse unknown or deleted ones
    /// ([`super::Conflict::UnknownReferences`]), more than one currency
    /// ([`super::Conflict::MixedCurrency`]) or too little stock
    /// ([`super::Conflict::InsufficientStock`]); take the stock, write the order, and
    /// store its response (201 and [`Order::to_json`]) in the claimed key, which must
    /// still be ours ([`super::Conflict::IdempotencyKeyInUse`] otherwise).
    async fn create_order(
        &self,
        new: NewOrder,
        idempotency: Option<IdempotentCompletion>,
    ) -> Result<Order, StoreError>;

    async fn get_order(&self, id: Uuid) -> Result<Option<Order>, StoreError>;

    /// Newest first (`created_at`, then id, descending), strictly before `query.before`.
    async fn list_orders(&self, query: OrderQuery) -> Result<Vec<Order>, StoreError>;

    /// pending -> cancelled and the stock of its items restored, in one transaction;
    /// any other status is [`super::Conflict::InvalidTransition`].
    async fn cancel_order(&self, id: Uuid) -> Result<Order, StoreError>;
}
