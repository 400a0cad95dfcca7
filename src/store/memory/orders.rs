use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::MemoryStore;
use crate::domain::order::{
    IdempotentRequest, NewOrder, Order, OrderItem, OrderQuery, OrderStatus, Placed,
};
use crate::domain::user::now;
use crate::events::EventKind;
use crate::store::{Conflict, OrderStore, StoreError};

#[async_trait]
impl OrderStore for MemoryStore {
    async fn create_order(
        &self,
        new: NewOrder,
        idempotency: Option<IdempotentRequest>,
    ) -> Result<Placed, StoreError> {
        let mut state = self.lock();
        let state = &mut *state;
        let at = now();
        // Every check before any mutation: under the one mutex, that is the transaction.
        state.orders.idempotency.purge(at);
        if let Some(req) = &idempotency {
            if let Some(replay) = state.orders.idempotency.find(new.user_id, req)? {
                return Ok(replay);
            }
        }
        let lines = new.lines.lines();
        let unknown: Vec<Uuid> = lines
            .iter()
            .map(|l| l.product_id)
            .filter(|id| !state.products.by_id.contains_key(id))
            .collect();
        if !unknown.is_empty() {
            return Err(StoreError::Conflict(Conflict::UnknownReferences(unknown)));
        }
        state.event_room()?;
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
        let body = order.to_json();
        if let Some(req) = &idempotency {
            state
                .orders
                .idempotency
                .insert(new.user_id, req, body.clone(), at);
        }
        state.orders.by_time.insert((order.created_at, order.id));
        state.orders.by_id.insert(order.id, order.clone());
        state.emit(EventKind::OrderPlaced, order.id, at, &order);
        self.emitted();
        Ok(Placed::Created { order, body })
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
        state.event_room()?;
        let Some(order) = state.orders.by_id.get_mut(&id) else {
            return Err(StoreError::NotFound);
        };
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
        let order = order.clone();
        state.emit(EventKind::OrderCancelled, id, at, &order);
        self.emitted();
        Ok(order)
    }

    async fn purge_idempotency_keys(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let purged = self.lock().orders.idempotency.purge_before(before, limit);
        Ok(u64::try_from(purged).unwrap_or(u64::MAX))
    }
}
