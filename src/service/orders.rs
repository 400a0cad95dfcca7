//! Orders: placing one idempotently, reading, listing and cancelling.
//!
//! Placing is ONE store call, one transaction: it takes the `Idempotency-Key` (a
//! concurrent duplicate is refused at once), finds an earlier use (replay or mismatch),
//! creates the order and stores its response under the key. A failure of any kind rolls
//! the key back with the order, so there is no claim to release and none can be
//! stranded by an outage.

use uuid::Uuid;

use super::services::Services;
pub use crate::domain::order::Placed;
use crate::domain::order::{
    IdempotencyKey, IdempotentRequest, NewOrder, Order, OrderLines, OrderQuery,
};
use crate::error::ApiError;

impl Services {
    /// Place `user_id`'s order of `lines`, idempotent per user and `key`.
    pub async fn place_order(
        &self,
        user_id: Uuid,
        key: IdempotencyKey,
        lines: OrderLines,
    ) -> Result<Placed, ApiError> {
        let request_hash = lines.request_hash();
        let idempotency = IdempotentRequest { key, request_hash };
        let products: Vec<Uuid> = lines.lines().iter().map(|l| l.product_id).collect();
        let new = NewOrder { user_id, lines };
        let placed = self
            .db
            .write(|s| s.create_order(new, Some(idempotency)))
            .await;
        // Stock taken: the product cache drops what the order touched. A refusal (4xx)
        // or a replay changed nothing; a failure may have committed, so all goes.
        match &placed {
            Ok(Placed::Created { .. }) => self.products.written(products),
            Ok(Placed::Replay { .. }) => {}
            Err(e) if e.code.status().is_server_error() => self.products.clear(),
            Err(_) => {}
        }
        placed
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
        let cancelled = self.db.write(|s| s.cancel_order(id)).await;
        // Stock returned: the product cache drops the order's products.
        match &cancelled {
            Ok(order) => self
                .products
                .written(order.items.iter().map(|i| i.product_id)),
            Err(e) if e.code.status().is_server_error() => self.products.clear(),
            Err(_) => {}
        }
        cancelled
    }
}
