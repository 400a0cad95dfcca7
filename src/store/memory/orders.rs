use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::MemoryStore;
use crate::domain::order::{
    IdempotentRequest, NewOrder, Order, OrderItem, OrderQuery, OrderStatus, Placed,
    IDEMPOTENCY_RETENTION,
};
use crate::domain::user::now;
use crate::events::EventKind;
use crate::store::{Conflict, OrderStore, StoreError};

/// The completed idempotency keys, kept for [`IDEMPOTENCY_RETENTION`] as Postgres keeps
/// them: every placement purges what has expired, oldest first, so the map never holds
/// more than the keys of the last 24 hours. There is no claim in flight to keep: a
/// placement runs under the store's one mutex from the key's lookup to its response.
#[derive(Default)]
pub(crate) struct Idempotency {
    records: HashMap<(Uuid, String), IdempotencyRecord>,
    /// `(created_at, user, key)` of every record, oldest first, for the purge.
    by_time: BTreeSet<(DateTime<Utc>, Uuid, String)>,
}

pub(crate) struct IdempotencyRecord {
    request_hash: Vec<u8>,
    status: u16,
    body: Vec<u8>,
    created_at: DateTime<Utc>,
}

impl Idempotency {
    /// Forget every record created before `at` minus the retention.
    pub(crate) fn purge(&mut self, at: DateTime<Utc>) {
        let Ok(retention) = chrono::Duration::from_std(IDEMPOTENCY_RETENTION) else {
            return;
        };
        let cutoff = at - retention;
        while let Some(first) = self.by_time.first() {
            if first.0 >= cutoff {
                break;
            }
            if let Some((_, user, key)) = self.by_time.pop_first() {
                self.records.remove(&(user, key));
            }
        }
    }

    /// The earlier use of `req`'s key by `user`: a replay, or a mismatch.
    fn find(&self, user: Uuid, req: &IdempotentRequest) -> Result<Option<Placed>, StoreError> {
        let Some(rec) = self.records.get(&(user, req.key.as_str().to_string())) else {
            return Ok(None);
        };
        if rec.request_hash != req.request_hash {
            return Err(StoreError::Conflict(Conflict::IdempotencyKeyMismatch));
        }
        Ok(Some(Placed::Replay {
            status: rec.status,
            body: rec.body.clone(),
        }))
    }

    fn insert(&mut self, user: Uuid, req: &IdempotentRequest, body: Vec<u8>, at: DateTime<Utc>) {
        let key = req.key.as_str().to_string();
        let old = self.records.insert(
            (user, key.clone()),
            IdempotencyRecord {
                request_hash: req.request_hash.clone(),
                status: 201,
                body,
                created_at: at,
            },
        );
        if let Some(old) = old {
            self.by_time.remove(&(old.created_at, user, key.clone()));
        }
        self.by_time.insert((at, user, key));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.records.len()
    }
}

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
        if let Some(req) = &idempotency {
            let body = order.to_json();
            state.orders.idempotency.insert(new.user_id, req, body, at);
        }
        state.orders.by_time.insert((order.created_at, order.id));
        state.orders.by_id.insert(order.id, order.clone());
        state.emit(EventKind::OrderPlaced, order.id, at, &order);
        self.emitted();
        Ok(Placed::Created(order))
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::order::IdempotencyKey;

    fn req(key: &str) -> IdempotentRequest {
        IdempotentRequest {
            key: IdempotencyKey::parse(key).unwrap(),
            request_hash: vec![1; 32],
        }
    }

    #[test]
    fn idempotency_records_expire_after_the_retention() {
        let mut idem = Idempotency::default();
        let user = Uuid::new_v4();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let day = chrono::Duration::from_std(IDEMPOTENCY_RETENTION).unwrap();
        idem.insert(user, &req("a"), b"{}".to_vec(), t0);
        idem.insert(
            user,
            &req("b"),
            b"{}".to_vec(),
            t0 + chrono::Duration::hours(1),
        );
        // Replaced: the older time of "a" must not purge its newer record.
        idem.insert(
            user,
            &req("a"),
            b"{}".to_vec(),
            t0 + chrono::Duration::hours(2),
        );
        idem.purge(t0 + day);
        assert_eq!(idem.len(), 2);
        assert!(matches!(
            idem.find(user, &req("a")),
            Ok(Some(Placed::Replay { .. }))
        ));
        idem.purge(t0 + day + chrono::Duration::minutes(61));
        assert_eq!(idem.len(), 1);
        assert!(matches!(idem.find(user, &req("b")), Ok(None)));
        idem.purge(t0 + day + chrono::Duration::minutes(121));
        assert_eq!(idem.len(), 0);
        assert_eq!(idem.by_time.len(), 0);
    }
}
