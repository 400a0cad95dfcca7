use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::tables::IdempotencyRecord;
use super::MemoryStore;
use crate::domain::order::{
    Claim, ClaimToken, IdempotencyKey, IdempotentCompletion, NewOrder, Order, OrderItem,
    OrderQuery, OrderStatus, IDEMPOTENCY_CLAIM_TIMEOUT, IDEMPOTENCY_RETENTION,
};
use crate::domain::user::now;
use crate::store::{Conflict, OrderStore, StoreError};

fn older_than(t: DateTime<Utc>, age: std::time::Duration, at: DateTime<Utc>) -> bool {
    chrono::Duration::from_std(age).is_ok_and(|age| t + age < at)
}

#[async_trait]
impl OrderStore for MemoryStore {
    async fn claim_idempotency_key(
        &self,
        user_id: Uuid,
        key: &IdempotencyKey,
        request_hash: &[u8],
    ) -> Result<Claim, StoreError> {
        let mut state = self.lock();
        let at = now();
        let slot = (user_id, key.as_str().to_string());
        if let Some(rec) = state.orders.idempotency.get(&slot) {
            let expired = older_than(rec.created_at, IDEMPOTENCY_RETENTION, at);
            let abandoned =
                rec.response.is_none() && older_than(rec.created_at, IDEMPOTENCY_CLAIM_TIMEOUT, at);
            if !expired && !abandoned {
                if rec.request_hash != request_hash {
                    return Err(StoreError::Conflict(Conflict::IdempotencyKeyMismatch));
                }
                return match &rec.response {
                    Some((status, body)) => Ok(Claim::Replay {
                        status: *status,
                        body: body.clone(),
                    }),
                    None => Err(StoreError::Conflict(Conflict::IdempotencyKeyInUse)),
                };
            }
        }
        state.orders.idempotency.insert(
            slot,
            IdempotencyRecord {
                request_hash: request_hash.to_vec(),
                response: None,
                created_at: at,
            },
        );
        Ok(Claim::Claimed(ClaimToken(at)))
    }

    async fn release_idempotency_key(
        &self,
        user_id: Uuid,
        key: &IdempotencyKey,
        token: ClaimToken,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let slot = (user_id, key.as_str().to_string());
        if state
            .orders
            .idempotency
            .get(&slot)
            .is_some_and(|r| r.response.is_none() && r.created_at == token.0)
        {
            state.orders.idempotency.remove(&slot);
        }
        Ok(())
    }

    async fn create_order(
        &self,
        new: NewOrder,
        idempotency: Option<IdempotentCompletion>,
    ) -> Result<Order, StoreError> {
        let mut state = self.lock();
        let state = &mut *state;
        // Every check before any mutation: under the one mutex, that is the transaction.
        let slot = match &idempotency {
            Some(c) => {
                let slot = (new.user_id, c.key.as_str().to_string());
                let ours = state
                    .orders
                    .idempotency
                    .get(&slot)
                    .is_some_and(|r| r.response.is_none() && r.created_at == c.token.0);
                if !ours {
                    return Err(StoreError::Conflict(Conflict::IdempotencyKeyInUse));
                }
                Some(slot)
            }
            None => None,
        };
        let lines = new.lines.lines();
        let unknown: Vec<Uuid> = lines
            .iter()
            .map(|l| l.product_id)
            .filter(|id| !state.products.by_id.contains_key(id))
            .collect();
        if !unknown.is_empty() {
            return Err(StoreError::Conflict(Conflict::UnknownReferences(unknown)));
        }
        let products = &mut state.products.by_id;
        let currency = products[&lines[0].product_id].currency.clone();
        if lines
            .iter()
            .any(|l| products[&l.product_id].currency != currency)
        {
            return Err(StoreError::Conflict(Conflict::MixedCurrency));
        }
        let short: Vec<Uuid> = lines
            .iter()
            .filter(|l| products[&l.product_id].stock < i64::from(l.quantity.get()))
            .map(|l| l.product_id)
            .collect();
        if !short.is_empty() {
            return Err(StoreError::Conflict(Conflict::InsufficientStock(short)));
        }
        let at = now();
        let mut items = Vec::with_capacity(lines.len());
        for l in lines {
            let Some(p) = products.get_mut(&l.product_id) else {
                return Err(StoreError::Internal(
                    "product vanished under the lock".into(),
                ));
            };
            p.stock -= i64::from(l.quantity.get());
            p.version += 1;
            p.updated_at = at;
            items.push(OrderItem {
                product_id: p.id,
                sku: p.sku.clone(),
                name: p.name.clone(),
                quantity: l.quantity.get(),
                unit_price_cents: p.price_cents,
            });
        }
        let order = Order::pending(new.user_id, items, currency, at);
        if let Some(rec) = slot.and_then(|s| state.orders.idempotency.get_mut(&s)) {
            rec.response = Some((201, order.to_json()));
        }
        state.orders.by_time.insert((order.created_at, order.id));
        state.orders.by_id.insert(order.id, order.clone());
        Ok(order)
    }

    async fn get_order(&self, id: Uuid) -> Result<Option<Order>, StoreError> {
        Ok(self.lock().orders.by_id.get(&id).cloned())
    }

    async fn list_orders(&self, query: OrderQuery) -> Result<Vec<Order>, StoreError> {
        let state = self.lock();
        let upper = match query.before {
            Some(before) => std::ops::Bound::Excluded(before),
            None => std::ops::Bound::Unbounded,
        };
        Ok(state
            .orders
            .by_time
            .range((std::ops::Bound::Unbounded, upper))
            .rev()
            .filter_map(|(_, id)| state.orders.by_id.get(id))
            .filter(|o| query.user_id.is_none_or(|u| o.user_id == u))
            .filter(|o| query.status.is_none_or(|s| o.status == s))
            .take(query.limit as usize)
            .cloned()
            .collect())
    }

    async fn cancel_order(&self, id: Uuid) -> Result<Order, StoreError> {
        let mut state = self.lock();
        let state = &mut *state;
        let order = state
            .orders
            .by_id
            .get_mut(&id)
            .ok_or(StoreError::NotFound)?;
        if order.status != OrderStatus::Pending {
            return Err(StoreError::Conflict(Conflict::InvalidTransition {
                from: order.status.as_str().into(),
                to: OrderStatus::Cancelled.as_str().into(),
            }));
        }
        let at = now();
        order.status = OrderStatus::Cancelled;
        order.version += 1;
        order.updated_at = at;
        // A product deleted since keeps no live row here; its stock has nowhere to go.
        for item in &order.items {
            if let Some(p) = state.products.by_id.get_mut(&item.product_id) {
                p.stock += i64::from(item.quantity);
                p.version += 1;
                p.updated_at = at;
            }
        }
        Ok(order.clone())
    }
}
