//! Orders: placing one idempotently, reading, listing and cancelling.
//!
//! Placing is three store steps under one `db_write` admission: claim the
//! `Idempotency-Key` (committed on its own, so a concurrent duplicate sees it in flight),
//! create the order (its transaction stores the response in the claimed key), and, when
//! the creation fails, release the claim so the key can be used again. The flow runs in
//! a task of its own, so a caller that goes away (a client disconnecting) cannot cut it
//! short between the order's commit and the release of a failed claim.

use uuid::Uuid;

use super::guard::Guarded;
use super::services::Services;
use crate::domain::order::{
    Claim, IdempotencyKey, IdempotentCompletion, NewOrder, Order, OrderLines, OrderQuery,
};
use crate::error::ApiError;

/// What placing an order answered.
#[derive(Debug)]
pub enum Placed {
    /// The order, created now.
    Created(Order),
    /// The key's first request completed before: its status and body, to answer again.
    Replay { status: u16, body: Vec<u8> },
}

impl Services {
    /// Place `user_id`'s order of `lines`, idempotent per user and `key`.
    pub async fn place_order(
        &self,
        user_id: Uuid,
        key: IdempotencyKey,
        lines: OrderLines,
    ) -> Result<Placed, ApiError> {
        let db = self.db.clone();
        tokio::task::spawn_local(async move { place(&db, user_id, key, lines).await })
            .await
            .map_err(|_| ApiError::internal())?
    }

    /// Order `id`, whoever owns it (callers check visibility).
    pub async fn order(&self, id: Uuid) -> Result<Option<Order>, ApiError> {
        self.db.read(|s| s.get_order(id)).await
    }

    /// A page of orders (`query.limit` rows at most), newest first.
    pub async fn list_orders(&self, query: OrderQuery) -> Result<Vec<Order>, ApiError> {
        self.db.read(|s| s.list_orders(query)).await
    }

    /// pending -> cancelled, the stock restored.
    pub async fn cancel_order(&self, id: Uuid) -> Result<Order, ApiError> {
        self.db.write(|s| s.cancel_order(id)).await
    }
}

async fn place(
    db: &Guarded,
    user_id: Uuid,
    key: IdempotencyKey,
    lines: OrderLines,
) -> Result<Placed, ApiError> {
    let hash = lines.request_hash();
    let flow = db.hold_write().await?;
    let claim = flow
        .write(|s| s.claim_idempotency_key(user_id, &key, &hash))
        .await?;
    let token = match claim {
        Claim::Claimed(token) => token,
        Claim::Replay { status, body } => return Ok(Placed::Replay { status, body }),
    };
    let completion = IdempotentCompletion {
        key: key.clone(),
        token,
    };
    let new = NewOrder { user_id, lines };
    let created = flow.write(|s| s.create_order(new, Some(completion))).await;
    if created.is_err() {
        // Only successes are kept for replay: a refused creation (stock, unknown
        // products) leaves the key free for a retry once the cause is gone.
        if let Err(e) = flow
            .write(|s| s.release_idempotency_key(user_id, &key, token))
            .await
        {
            tracing::warn!(error = %e, "could not release an idempotency claim");
        }
    }
    created.map(Placed::Created)
}
