//! Placing orders: one transaction for one order or a batch of them (`place`), each
//! order checked as if placed alone (`assemble`), in two round trips over arrays.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use super::idempotency;
use super::pg_err;
use super::pipelined::PipelinedTx;
use super::Outbox;
use crate::domain::order::{
    idempotency_cutoff, IdempotentRequest, NewOrder, Order, OrderItem, Placed,
};
use crate::domain::user::now;
use crate::events::{Event, EventKind};
use crate::store::{Conflict, StoreError};

/// One order to place: what `create_order` was asked.
pub(super) struct Job {
    pub new: NewOrder,
    pub idempotency: Option<IdempotentRequest>,
}

/// The order transaction's start. Its statements take arrays, whose length a generic
/// plan cannot see (it guesses 10 rows an array), so Postgres, comparing that guess with
/// the custom plans of one-element arrays, would plan every execution anew. Their
/// generic plans are the primary-key lookups the custom ones are (`EXPLAIN`); the
/// setting is the transaction's, so no other statement on the connection loses its
/// custom plans. Planning each time cost 27 % of the orders a second on one connection
/// (1,297 against 1,791, `ab`, 4 rounds, 2026-12-08), 15 CPU µs an order in the server.
const BEGIN: &str = "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan";

/// The keys' advisory locks, tried in the jobs' order (`(a, b)` pairs of
/// [`idempotency::lock_key`]): one `bool` a key.
const TAKE_KEYS: &str = "SELECT pg_try_advisory_xact_lock(k.a, k.b)
     FROM unnest($1::int4[], $2::int4[]) WITH ORDINALITY AS k(a, b, i) ORDER BY k.i";

/// The keys' earlier uses within the retention (`$3` the cutoff), by the key's 1-based
/// position in the arrays. Each key is read by its primary key in a `LATERAL` subquery
/// (its `LIMIT` keeps the planner from flattening it into a join), whatever the
/// statistics: a join of the arrays to the table was planned as a hash join over the
/// whole table while the table was young, and stayed so (0.25 ms an order and growing).
const LOOKUP_KEYS: &str = "SELECT k.i, r.request_hash, r.response_status, r.response_body
     FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS k(user_id, key, i)
     CROSS JOIN LATERAL (
         SELECT request_hash, response_status, response_body FROM idempotency_keys
         WHERE user_id = k.user_id AND key = k.key AND created_at >= $3 LIMIT 1) AS r";

/// The product rows of the orders, locked in id order, each line's only if its order's
/// key is this transaction's (`pg_try_advisory_xact_lock` again: granted again to the
/// holder, refused to anyone else) or the order has none (`a` NULL): a request whose key
/// is in use locks no product row, so its 409 never waits on the key's holder.
/// The ids are gathered first (an initplan) and looked up by the primary key (`= ANY`),
/// never joined, so no plan of a small table's statistics scans a large one.
const LOCK_PRODUCTS: &str = "SELECT id, sku, name, price_cents, currency, stock FROM products
     WHERE id = ANY(ARRAY(
             SELECT l.id FROM unnest($1::uuid[], $2::int4[], $3::int4[]) AS l(id, a, b)
             WHERE l.a IS NULL OR pg_try_advisory_xact_lock(l.a, l.b)))
       AND deleted_at IS NULL
     ORDER BY id FOR UPDATE";

/// The orders' one write statement: the stock taken (summed by product), the orders,
/// their items and, for keyed orders, the response stored under the key (a row past
/// retention is replaced), as data-modifying `WITH` items of one statement over arrays
/// (Postgres runs each exactly once; the items' foreign key to their order is checked at
/// the statement's end, when the orders are in). `$3` is the time of every row.
const WRITE: &str = "WITH take AS (
    UPDATE products AS p
    SET stock = p.stock - u.q, version = p.version + 1, updated_at = $3
    FROM unnest($1::uuid[], $2::bigint[]) AS u(id, q) WHERE p.id = u.id
), placed AS (
    INSERT INTO orders (id, user_id, status, total_cents, currency, version, created_at,
                        updated_at)
    SELECT o.id, o.user_id, 'pending', o.total, o.currency, 1, $3, $3
    FROM unnest($4::uuid[], $5::uuid[], $6::bigint[], $7::text[])
         AS o(id, user_id, total, currency)
), items AS (
    INSERT INTO order_items (order_id, position, product_id, sku, name, quantity,
                             unit_price_cents)
    SELECT u.oid, u.pos, u.pid, u.sku, u.name, u.q, u.price
    FROM unnest($8::uuid[], $9::int[], $10::uuid[], $11::text[], $12::text[], $13::int[],
                $14::bigint[]) AS u(oid, pos, pid, sku, name, q, price)
), key AS (
    INSERT INTO idempotency_keys
        (user_id, key, request_hash, response_status, response_body, created_at)
    SELECT k.user_id, k.key, k.hash, 201, k.body, $3
    FROM unnest($15::uuid[], $16::text[], $17::bytea[], $18::bytea[])
         AS k(user_id, key, hash, body)
    ON CONFLICT (user_id, key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash,
        response_status = EXCLUDED.response_status,
        response_body = EXCLUDED.response_body,
        created_at = EXCLUDED.created_at
)
SELECT 1";

/// A product row locked for the transaction's orders, its stock what the orders placed
/// before in the same transaction left.
struct Locked {
    sku: String,
    name: String,
    price_cents: i64,
    currency: String,
    stock: i64,
}

/// `new` checked against the locked `products` as if placed alone after the orders
/// before it (unknown products, mixed currencies, short stock refuse it, in that order),
/// and its stock taken from them.
fn assemble(
    new: &NewOrder,
    products: &mut HashMap<Uuid, Locked>,
    at: DateTime<Utc>,
) -> Result<Order, StoreError> {
    let lines = new.lines.lines();
    let unknown: Vec<Uuid> = lines
        .iter()
        .map(|l| l.product_id)
        .filter(|id| !products.contains_key(id))
        .collect();
    if !unknown.is_empty() {
        return Err(StoreError::Conflict(Conflict::UnknownReferences(unknown)));
    }
    let currency = &products[&lines[0].product_id].currency;
    if lines
        .iter()
        .any(|l| &products[&l.product_id].currency != currency)
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
    let currency = currency.clone();
    let items = lines
        .iter()
        .map(|l| {
            let p = products.get_mut(&l.product_id).expect("checked above");
            p.stock -= i64::from(l.quantity.get());
            OrderItem {
                product_id: l.product_id,
                sku: p.sku.clone(),
                name: p.name.clone(),
                quantity: l.quantity.get(),
                unit_price_cents: p.price_cents,
            }
        })
        .collect();
    Ok(Order::pending(new.user_id, items, currency, at))
}

/// The parameters of [`WRITE`] for the orders placed, in columns.
#[derive(Default)]
struct Writes<'a> {
    taken: HashMap<Uuid, i64>,
    ids: Vec<Uuid>,
    users: Vec<Uuid>,
    totals: Vec<i64>,
    currencies: Vec<&'a str>,
    item_orders: Vec<Uuid>,
    positions: Vec<i32>,
    products: Vec<Uuid>,
    skus: Vec<&'a str>,
    names: Vec<&'a str>,
    quantities: Vec<i32>,
    prices: Vec<i64>,
    key_users: Vec<Uuid>,
    keys: Vec<&'a str>,
    hashes: Vec<&'a [u8]>,
    bodies: Vec<&'a [u8]>,
}

impl<'a> Writes<'a> {
    fn add(&mut self, order: &'a Order, key: Option<&'a IdempotentRequest>, body: &'a [u8]) {
        self.ids.push(order.id);
        self.users.push(order.user_id);
        self.totals.push(order.total_cents);
        self.currencies.push(&order.currency);
        for (pos, item) in (0..).zip(&order.items) {
            *self.taken.entry(item.product_id).or_default() += i64::from(item.quantity);
            self.item_orders.push(order.id);
            self.positions.push(pos);
            self.products.push(item.product_id);
            self.skus.push(&item.sku);
            self.names.push(&item.name);
            self.quantities.push(item.quantity);
            self.prices.push(item.unit_price_cents);
        }
        if let Some(req) = key {
            self.key_users.push(order.user_id);
            self.keys.push(req.key.as_str());
            self.hashes.push(&req.request_hash);
            self.bodies.push(body);
        }
    }
}

/// What a job came to before the write: refused or replayed, or an order to write.
enum Outcome {
    Done(Result<Placed, StoreError>),
    Write(Order, Vec<u8>),
}

/// Place `jobs` in the transaction `tx` (one transaction whatever their number: the
/// order writer's batch, or one order alone), in two round trips (each batch's statements
/// are sent together: the futures of a batch are joined, tokio-postgres sends a request
/// when its future is first polled, and every statement of a batch is prepared
/// beforehand, so they run in their order):
/// 1. `BEGIN`, the keys' advisory locks ([`TAKE_KEYS`]: a key in use answers 409 at
///    once), their lookup (its snapshot after the locks, or a use committed meanwhile
///    would be missed) and the product rows locked `FOR UPDATE` ([`LOCK_PRODUCTS`]);
/// 2. one statement writing the stock taken, the orders, their items and the keys'
///    responses ([`WRITE`]), the events, and `COMMIT`.
///
/// Each job's outcome is what it would have been placed alone after the jobs before it:
/// a key used twice in `jobs` is in use for the second, stock taken by one is gone for
/// the next. `Err` is the transaction's failure, every job's.
pub(super) async fn place(
    tx: &PipelinedTx,
    outbox: Option<&Outbox>,
    jobs: &[Job],
) -> Result<Vec<Result<Placed, StoreError>>, StoreError> {
    let at = now();
    let c = tx.client();
    // The keys in the jobs' order (`slot[j]`: job j's position among them); a key a job
    // before already names is in use.
    let mut outcomes: Vec<Option<Outcome>> = jobs.iter().map(|_| None).collect();
    let mut slot: Vec<Option<usize>> = vec![None; jobs.len()];
    let mut keyed: Vec<usize> = Vec::new();
    let (mut key_a, mut key_b, mut key_users, mut key_names) = (vec![], vec![], vec![], vec![]);
    let mut seen: HashSet<(Uuid, &str)> = HashSet::new();
    for (j, job) in jobs.iter().enumerate() {
        let Some(req) = &job.idempotency else {
            continue;
        };
        let user = job.new.user_id;
        if !seen.insert((user, req.key.as_str())) {
            outcomes[j] = Some(Outcome::Done(Err(StoreError::Conflict(
                Conflict::IdempotencyKeyInUse,
            ))));
            continue;
        }
        let (a, b) = idempotency::lock_key(user, req.key.as_str());
        slot[j] = Some(keyed.len());
        keyed.push(j);
        key_a.push(a);
        key_b.push(b);
        key_users.push(user);
        key_names.push(req.key.as_str());
    }
    // Every line of the jobs still in play, with its job's key (NULL: no key).
    let (mut line_ids, mut line_a, mut line_b) = (vec![], vec![], vec![]);
    for (j, job) in jobs.iter().enumerate() {
        if outcomes[j].is_some() {
            continue;
        }
        let key = slot[j].map(|i| (key_a[i], key_b[i]));
        for l in job.new.lines.lines() {
            line_ids.push(l.product_id);
            line_a.push(key.map(|k| k.0));
            line_b.push(key.map(|k| k.1));
        }
    }

    let take = c.prepare_cached(TAKE_KEYS).await.map_err(pg_err)?;
    let lookup = c.prepare_cached(LOOKUP_KEYS).await.map_err(pg_err)?;
    let lock = c.prepare_cached(LOCK_PRODUCTS).await.map_err(pg_err)?;
    let live_since = idempotency_cutoff(at);
    let (_, taken, earlier, rows) = futures_util::future::try_join4(
        tx.begin(BEGIN),
        async { c.query(&take, &[&key_a, &key_b]).await.map_err(pg_err) },
        async {
            c.query(&lookup, &[&key_users, &key_names, &live_since])
                .await
                .map_err(pg_err)
        },
        async {
            c.query(&lock, &[&line_ids, &line_a, &line_b])
                .await
                .map_err(pg_err)
        },
    )
    .await?;
    if taken.len() != keyed.len() {
        return Err(StoreError::Internal(format!(
            "{} advisory locks answered for {} keys",
            taken.len(),
            keyed.len()
        )));
    }
    let mut replays: HashMap<usize, &Row> = HashMap::new();
    for r in &earlier {
        let i: i64 = r.get(0);
        let j = usize::try_from(i - 1)
            .ok()
            .and_then(|i| keyed.get(i))
            .ok_or_else(|| StoreError::Internal(format!("key lookup position {i}")))?;
        replays.insert(*j, r);
    }
    let mut products: HashMap<Uuid, Locked> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                Locked {
                    sku: r.get(1),
                    name: r.get(2),
                    price_cents: r.get(3),
                    currency: r.get(4),
                    stock: r.get(5),
                },
            )
        })
        .collect();

    for (j, job) in jobs.iter().enumerate() {
        if outcomes[j].is_some() {
            continue;
        }
        if let Some(i) = slot[j] {
            if !taken[i].get::<_, bool>(0) {
                outcomes[j] = Some(Outcome::Done(Err(StoreError::Conflict(
                    Conflict::IdempotencyKeyInUse,
                ))));
                continue;
            }
        }
        if let (Some(row), Some(req)) = (replays.get(&j), &job.idempotency) {
            match idempotency::replay(row, req) {
                Ok(None) => {}
                Ok(Some(replay)) => {
                    outcomes[j] = Some(Outcome::Done(Ok(replay)));
                    continue;
                }
                Err(e) => {
                    outcomes[j] = Some(Outcome::Done(Err(e)));
                    continue;
                }
            }
        }
        outcomes[j] = Some(match assemble(&job.new, &mut products, at) {
            Ok(order) => {
                let body = order.to_json();
                Outcome::Write(order, body)
            }
            Err(e) => Outcome::Done(Err(e)),
        });
    }
    let outcomes: Vec<Outcome> = outcomes.into_iter().map(|o| o.expect("decided")).collect();

    let mut writes = Writes::default();
    for (job, outcome) in jobs.iter().zip(&outcomes) {
        if let Outcome::Write(order, body) = outcome {
            writes.add(order, job.idempotency.as_ref(), body);
        }
    }
    if writes.ids.is_empty() {
        // Refusals and replays wrote nothing; the commit ends the transaction.
        tx.commit().await?;
    } else {
        // Every statement of the last batch is prepared first: the batch ends with
        // COMMIT, and a statement sent after it would run outside the transaction.
        let write = c.prepare_cached(WRITE).await.map_err(pg_err)?;
        // The events and their one statement, built before the batch, in the jobs' order
        // (after the product rows' locks: their seqs follow every earlier change).
        let events = match outbox {
            Some(outbox) => {
                let events: Vec<Event> = outcomes
                    .iter()
                    .filter_map(|o| match o {
                        Outcome::Write(order, _) => {
                            Some(Event::new(EventKind::OrderPlaced, order.id, at, order))
                        }
                        Outcome::Done(_) => None,
                    })
                    .collect();
                Some((outbox.prepare_many(c).await?, events))
            }
            None => None,
        };
        let (taken_ids, taken_qty): (Vec<Uuid>, Vec<i64>) = writes.taken.iter().unzip();
        let w = &writes;
        let params: [&(dyn ToSql + Sync); 18] = [
            &taken_ids,
            &taken_qty,
            &at,
            &w.ids,
            &w.users,
            &w.totals,
            &w.currencies,
            &w.item_orders,
            &w.positions,
            &w.products,
            &w.skus,
            &w.names,
            &w.quantities,
            &w.prices,
            &w.key_users,
            &w.keys,
            &w.hashes,
            &w.bodies,
        ];
        let write = async { c.execute(&write, &params).await.map_err(pg_err) };
        let events = async {
            match &events {
                Some((stmt, events)) => Outbox::insert_many(c, stmt, events).await,
                None => Ok(()),
            }
        };
        futures_util::future::try_join3(write, events, tx.commit()).await?;
    }
    Ok(outcomes
        .into_iter()
        .map(|o| match o {
            Outcome::Done(result) => result,
            Outcome::Write(order, body) => Ok(Placed::Created { order, body }),
        })
        .collect())
}
