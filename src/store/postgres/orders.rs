//! Orders. Stock is taken in the order's own transaction, after locking the product rows
//! `FOR UPDATE` in id order: concurrent orders serialise per product (no oversell), and a
//! single lock order for every writer of several products (create, cancel) rules out
//! deadlocks.

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use super::idempotency;
use super::pipelined::PipelinedTx;
use super::Outbox;
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

/// The product rows of an order, locked in id order.
const LOCK_PRODUCTS: &str = "SELECT id, sku, name, price_cents, currency, stock FROM products
     WHERE id = ANY($1) AND deleted_at IS NULL ORDER BY id FOR UPDATE";
/// The same, only if the idempotency key `($2, $3)` is this transaction's (an initplan,
/// evaluated once before the scan): a request whose key is in use locks no product row.
const LOCK_PRODUCTS_IF_CLAIMED: &str =
    "SELECT id, sku, name, price_cents, currency, stock FROM products
     WHERE id = ANY($1) AND deleted_at IS NULL AND (SELECT pg_try_advisory_xact_lock($2, $3))
     ORDER BY id FOR UPDATE";

/// The order in two round trips (each batch's statements are sent together: the futures
/// of a batch are joined, tokio-postgres sends a request when its future is first polled,
/// and every statement of a batch is prepared beforehand, so they run in their order):
/// 1. `BEGIN`, the idempotency key's advisory lock ([`idempotency::Claim`]), the key's
///    lookup and the product rows locked `FOR UPDATE` only if the lock was granted (a key
///    in use answers 409 without waiting on product rows; a replay held them until its
///    commit);
/// 2. one statement writing the stock taken, the order, its items and the key's response
///    ([`write_statement`]), the event, and `COMMIT`.
async fn place(
    tx: &PipelinedTx,
    outbox: Option<&Outbox>,
    new: NewOrder,
    idempotency: Option<&IdempotentRequest>,
) -> Result<Placed, StoreError> {
    let at = now();
    let lines = new.lines.lines();
    let ids: Vec<Uuid> = lines.iter().map(|l| l.product_id).collect();
    let c = tx.client();
    let rows = match idempotency {
        Some(req) => {
            let claim = idempotency::Claim::prepare(c, new.user_id, req).await?;
            let lock = c
                .prepare_cached(LOCK_PRODUCTS_IF_CLAIMED)
                .await
                .map_err(pg_err)?;
            let (k1, k2) = claim.lock_key();
            let lock_products = async { c.query(&lock, &[&ids, &k1, &k2]).await.map_err(pg_err) };
            let (_, (), earlier, rows) = futures_util::future::try_join4(
                tx.begin(),
                claim.take(c),
                claim.lookup(c, new.user_id, req, at),
                lock_products,
            )
            .await?;
            if let Some(replay) = earlier {
                // A replay wrote nothing; its commit ends the transaction.
                tx.commit().await?;
                return Ok(replay);
            }
            rows
        }
        None => {
            let lock = c.prepare_cached(LOCK_PRODUCTS).await.map_err(pg_err)?;
            let lock_products = async { c.query(&lock, &[&ids]).await.map_err(pg_err) };
            futures_util::future::try_join(tx.begin(), lock_products)
                .await?
                .1
        }
    };
    let products: HashMap<Uuid, &Row> = rows.iter().map(|r| (r.get(0), r)).collect();
    let unknown: Vec<Uuid> = ids
        .iter()
        .copied()
        .filter(|id| !products.contains_key(id))
        .collect();
    if !unknown.is_empty() {
        return Err(StoreError::Conflict(Conflict::UnknownReferences(unknown)));
    }
    let currency: String = products[&ids[0]].get(4);
    if products.values().any(|r| r.get::<_, &str>(4) != currency) {
        return Err(StoreError::Conflict(Conflict::MixedCurrency));
    }
    let short: Vec<Uuid> = lines
        .iter()
        .filter(|l| products[&l.product_id].get::<_, i64>(5) < i64::from(l.quantity.get()))
        .map(|l| l.product_id)
        .collect();
    if !short.is_empty() {
        return Err(StoreError::Conflict(Conflict::InsufficientStock(short)));
    }

    let items: Vec<OrderItem> = lines
        .iter()
        .map(|l| {
            let p = products[&l.product_id];
            OrderItem {
                product_id: l.product_id,
                sku: p.get(1),
                name: p.get(2),
                quantity: l.quantity.get(),
                unit_price_cents: p.get(3),
            }
        })
        .collect();
    let quantities: Vec<i64> = items.iter().map(|i| i64::from(i.quantity)).collect();
    let order = Order::pending(new.user_id, items, currency, at);

    // Every statement of the last batch is prepared first: the batch ends with COMMIT,
    // and a statement sent after it would run outside the transaction.
    let write = c
        .prepare_cached(write_statement(idempotency.is_some()))
        .await
        .map_err(pg_err)?;
    // The event with its statement, built before the batch.
    let event = match outbox {
        Some(outbox) => Some((
            outbox.prepare(c).await?,
            Event::new(EventKind::OrderPlaced, order.id, at, &order),
        )),
        None => None,
    };
    let body = order.to_json();
    let key = idempotency.map(|req| (req.key.as_str(), &req.request_hash, &body));
    let positions: Vec<i32> = (0..).take(order.items.len()).collect();
    let skus: Vec<&str> = order.items.iter().map(|i| i.sku.as_str()).collect();
    let names: Vec<&str> = order.items.iter().map(|i| i.name.as_str()).collect();
    let qty: Vec<i32> = order.items.iter().map(|i| i.quantity).collect();
    let prices: Vec<i64> = order.items.iter().map(|i| i.unit_price_cents).collect();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![
        &ids,
        &quantities,
        &at,
        &order.id,
        &order.user_id,
        &order.total_cents,
        &order.currency,
        &positions,
        &skus,
        &names,
        &qty,
        &prices,
    ];
    if let Some((key, hash, body)) = &key {
        params.extend::<[&(dyn ToSql + Sync); 3]>([key, hash, body]);
    }
    let write = async { c.execute(&write, &params).await.map_err(pg_err) };
    let event = async {
        match &event {
            Some((stmt, event)) => Outbox::insert(c, stmt, event).await,
            None => Ok(()),
        }
    };
    futures_util::future::try_join3(write, event, tx.commit()).await?;
    Ok(Placed::Created { order, body })
}

/// The order's one write statement: the stock taken, the order, its items and, with a
/// key, the response stored under it (`idempotency::STORE_RESPONSE`), as data-modifying
/// `WITH` items of one statement (Postgres runs each exactly once; the items' foreign
/// key to the order is checked at the statement's end, when the order is in).
fn write_statement(with_key: bool) -> &'static str {
    static SQL: LazyLock<[String; 2]> = LazyLock::new(|| {
        let order = "WITH take AS (
    UPDATE products AS p
    SET stock = p.stock - u.q, version = p.version + 1, updated_at = $3
    FROM unnest($1::uuid[], $2::bigint[]) AS u(id, q) WHERE p.id = u.id
), placed AS (
    INSERT INTO orders (id, user_id, status, total_cents, currency, version, created_at,
                        updated_at)
    VALUES ($4, $5, 'pending', $6, $7, 1, $3, $3)
), items AS (
    INSERT INTO order_items (order_id, position, product_id, sku, name, quantity,
                             unit_price_cents)
    SELECT $4, u.pos, u.pid, u.sku, u.name, u.q, u.price
    FROM unnest($8::int[], $1::uuid[], $9::text[], $10::text[], $11::int[], $12::bigint[])
         AS u(pos, pid, sku, name, q, price)
)";
        [
            format!("{order} SELECT 1"),
            format!("{order}, {} SELECT 1", idempotency::STORE_RESPONSE),
        ]
    });
    &SQL[usize::from(with_key)]
}

#[async_trait]
impl OrderStore for PgStore {
    async fn create_order(
        &self,
        new: NewOrder,
        idempotency: Option<IdempotentRequest>,
    ) -> Result<Placed, StoreError> {
        let mut tx = PipelinedTx::new(self.write_conn().await?);
        // Ended here, before the answer, whatever the outcome: a transaction left open
        // would hold the key's lock past the answer (a retry right after would find it in
        // use). A future dropped mid-way closes the connection instead (`PipelinedTx`).
        match place(&tx, self.outbox.as_ref(), new, idempotency.as_ref()).await {
            Ok(placed) => {
                tx.finish();
                if let (Some(outbox), Placed::Created { .. }) = (&self.outbox, &placed) {
                    outbox.committed();
                }
                Ok(placed)
            }
            Err(e) => {
                tx.rollback().await;
                Err(e)
            }
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
