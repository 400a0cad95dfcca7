//! Orders: reading them, cancelling one, and `create_order`, which hands the order to the
//! order writers (`order_writer.rs`) or places it alone (`placing.rs`). Stock is taken in
//! the order's own transaction, after locking the product rows `FOR UPDATE` in id order:
//! concurrent orders serialise per product (no oversell), and a single lock order for
//! every writer of several products (create, cancel) rules out deadlocks.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use super::idempotency;
use super::order_writer;
use super::placing::Job;
use super::{pg_err, PgStore};
use crate::domain::order::{
    IdempotentRequest, NewOrder, Order, OrderItem, OrderQuery, OrderStatus, Placed,
};
use crate::domain::user::now;
use crate::events::{Event, EventKind};
use crate::store::{Conflict, OrderStore, StoreError};

const ORDER_COLUMNS: &str =
    "id, user_id, status, total_cents, currency, version, created_at, updated_at";

fn order_from_row(row: &Row, items: Vec<OrderItem>) -> Result<Order, StoreError> {
    let status: &str = row.get(2);
    Ok(Order {
        id: row.get(0),
        user_id: row.get(1),
        status: OrderStatus::parse(status)
            .ok_or_else(|| StoreError::Internal(format!("order status {status}")))?,
        items,
        total_cents: row.get(3),
        currency: row.get(4),
        version: row.get(5),
        created_at: row.get(6),
        updated_at: row.get(7),
    })
}

/// An order's columns then one item's, for reads that join the items to their orders
/// (one row per item, the order's columns repeated; an order without items, which
/// `place` never writes, comes as one row of NULL items).
const JOINED_COLUMNS: &str = "o.id, o.user_id, o.status, o.total_cents, o.currency, \
     o.version, o.created_at, o.updated_at, \
     i.product_id, i.sku, i.name, i.quantity, i.unit_price_cents";

/// Orders from rows of [`JOINED_COLUMNS`], each order's rows adjacent and its items in
/// position order: the orders in the rows' order.
fn orders_from_joined(rows: &[Row]) -> Result<Vec<Order>, StoreError> {
    let mut orders: Vec<Order> = Vec::new();
    for r in rows {
        let id: Uuid = r.get(0);
        if orders.last().is_none_or(|o| o.id != id) {
            orders.push(order_from_row(r, Vec::new())?);
        }
        let Some(product_id) = r.get::<_, Option<Uuid>>(8) else {
            continue;
        };
        let order = orders.last_mut().expect("pushed above");
        order.items.push(OrderItem {
            product_id,
            sku: r.get(9),
            name: r.get(10),
            quantity: r.get(11),
            unit_price_cents: r.get(12),
        });
    }
    Ok(orders)
}

#[async_trait]
impl OrderStore for PgStore {
    async fn create_order(
        &self,
        new: NewOrder,
        idempotency: Option<IdempotentRequest>,
    ) -> Result<Placed, StoreError> {
        let job = Job { new, idempotency };
        match self.order_writer() {
            Some(writer) => writer.place(job).await,
            None => order_writer::place_alone(&self.placing(), &job).await,
        }
    }

    async fn get_order(&self, id: Uuid) -> Result<Option<Order>, StoreError> {
        let conn = self.read_conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {JOINED_COLUMNS} FROM orders AS o
                 LEFT JOIN order_items AS i ON i.order_id = o.id
                 WHERE o.id = $1 ORDER BY i.position"
            ))
            .await
            .map_err(pg_err)?;
        let rows = conn.query(&stmt, &[&id]).await.map_err(pg_err)?;
        Ok(orders_from_joined(&rows)?.pop())
    }

    async fn list_orders(&self, q: OrderQuery) -> Result<Vec<Order>, StoreError> {
        let conn = self.read_conn().await?;
        // Conditions are fixed fragments, present only when used, so each variant gets
        // a plan that can walk `orders_user_created` / `orders_status_created` backwards.
        let status = q.status.map(OrderStatus::as_str);
        let limit = i64::from(q.limit);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&limit];
        let mut conds = Vec::new();
        if let Some(user_id) = &q.user_id {
            params.push(user_id);
            conds.push(format!("user_id = ${}", params.len()));
        }
        if let Some(status) = &status {
            params.push(status);
            conds.push(format!("status = ${}", params.len()));
        }
        if let Some((at, id)) = &q.before {
            params.push(at);
            params.push(id);
            let n = params.len();
            conds.push(format!("(created_at, id) < (${}, ${n})", n - 1));
        }
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        // The page of orders (the index walk and the limit), then its items by the
        // items' primary key: one statement, one round trip.
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {JOINED_COLUMNS}
                 FROM (SELECT {ORDER_COLUMNS} FROM orders {filter}
                       ORDER BY created_at DESC, id DESC LIMIT $1) AS o
                 LEFT JOIN order_items AS i ON i.order_id = o.id
                 ORDER BY o.created_at DESC, o.id DESC, i.position"
            ))
            .await
            .map_err(pg_err)?;
        let rows = conn.query(&stmt, &params).await.map_err(pg_err)?;
        orders_from_joined(&rows)
    }

    async fn cancel_order(&self, id: Uuid) -> Result<Order, StoreError> {
        let mut conn = self.write_conn().await?;
        let tx = conn.transaction().await.map_err(pg_err)?;
        let at = now();
        // The cancelled order with its items, as the reads join them.
        let cancel = tx
            .prepare_cached(&format!(
                "WITH o AS (
                     UPDATE orders SET status = 'cancelled', version = version + 1,
                                       updated_at = $2
                     WHERE id = $1 AND status = 'pending' RETURNING {ORDER_COLUMNS})
                 SELECT {JOINED_COLUMNS} FROM o
                 LEFT JOIN order_items AS i ON i.order_id = o.id ORDER BY i.position"
            ))
            .await
            .map_err(pg_err)?;
        let rows = tx.query(&cancel, &[&id, &at]).await.map_err(pg_err)?;
        if rows.is_empty() {
            let status = tx
                .query_opt("SELECT status FROM orders WHERE id = $1", &[&id])
                .await
                .map_err(pg_err)?;
            return Err(match status {
                None => StoreError::NotFound,
                Some(r) => StoreError::Conflict(Conflict::InvalidTransition {
                    from: r.get(0),
                    to: OrderStatus::Cancelled.as_str().into(),
                }),
            });
        }
        let order = orders_from_joined(&rows)?
            .pop()
            .ok_or_else(|| StoreError::Internal("cancelled order vanished".into()))?;
        let mut ids: Vec<Uuid> = order.items.iter().map(|i| i.product_id).collect();
        ids.sort();
        let lock = tx
            .prepare_cached("SELECT id FROM products WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .await
            .map_err(pg_err)?;
        tx.query(&lock, &[&ids]).await.map_err(pg_err)?;
        let item_ids: Vec<Uuid> = order.items.iter().map(|i| i.product_id).collect();
        let quantities: Vec<i64> = order.items.iter().map(|i| i64::from(i.quantity)).collect();
        // A product deleted since gets nothing back, as in the memory store.
        let restore = tx
            .prepare_cached(
                "UPDATE products AS p
                 SET stock = p.stock + u.q, version = p.version + 1, updated_at = $3
                 FROM unnest($1::uuid[], $2::bigint[]) AS u(id, q)
                 WHERE p.id = u.id AND p.deleted_at IS NULL",
            )
            .await
            .map_err(pg_err)?;
        let restore = async {
            tx.execute(&restore, &[&item_ids, &quantities, &at])
                .await
                .map_err(pg_err)
        };
        match &self.outbox {
            Some(outbox) => {
                // After the UPDATE that locked the order: its seq follows order.placed.
                let event = Event::new(EventKind::OrderCancelled, order.id, at, &order);
                futures_util::future::try_join(restore, outbox.write(&tx, &event)).await?;
                tx.commit().await.map_err(pg_err)?;
                outbox.committed();
            }
            None => {
                restore.await?;
                tx.commit().await.map_err(pg_err)?;
            }
        }
        Ok(order)
    }

    async fn purge_idempotency_keys(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let conn = self.write_conn().await?;
        idempotency::purge(&conn, before, i64::from(limit)).await
    }
}
