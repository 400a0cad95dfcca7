//! Orders that arrive together share a transaction (the Postgres store's order writers),
//! and each keeps the outcome it would have had alone: against Postgres, below HTTP.
//!
//! A session of the test's own holds a product row, so the writer's first transaction
//! waits on it while the orders behind it queue; released, they go out together as the
//! writer's next batch. Orders of one transaction share its `created_at` (one clock
//! reading a transaction), which is how the test sees the batch.

use std::sync::Arc;
use std::time::Duration;

use bulkhead::config::{DatabaseConfig, EventsConfig, Secret};
use bulkhead::domain::order::{IdempotencyKey, IdempotentRequest, NewOrder, OrderLines, Placed};
use bulkhead::domain::product::{
    Currency, Description, NewProduct, PriceCents, ProductName, Sku, Stock,
};
use bulkhead::store::{Conflict, Store, StoreError};
use uuid::Uuid;

use crate::helpers::store::{new_product, pg_store_with_events, user};
use crate::helpers::TestDatabase;

/// One writer, so that every order queues behind the one that waits.
async fn store() -> (Arc<dyn Store>, TestDatabase, tokio_postgres::Client) {
    store_with_events(&EventsConfig::default()).await
}

async fn store_with_events(
    events: &EventsConfig,
) -> (Arc<dyn Store>, TestDatabase, tokio_postgres::Client) {
    let (store, db) = pg_store_with_events(
        DatabaseConfig {
            order_writers: 1,
            order_batch_max: 32,
            ..DatabaseConfig::default()
        },
        events,
    )
    .await;
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    (store, db, client)
}

async fn product(store: &Arc<dyn Store>, sku: &str, stock: i64) -> Uuid {
    store
        .create_product(new_product(sku, stock))
        .await
        .unwrap()
        .id
}

fn order(user_id: Uuid, lines: &[(Uuid, i64)]) -> NewOrder {
    NewOrder {
        user_id,
        lines: OrderLines::parse(lines).unwrap(),
    }
}

fn key(name: &str, hash: u8) -> Option<IdempotentRequest> {
    Some(IdempotentRequest {
        key: IdempotencyKey::parse(name).unwrap(),
        request_hash: vec![hash; 32],
    })
}

type Outcome = Result<Placed, StoreError>;

/// Place `orders` while `held`'s row is locked by another session: the first order
/// (which must name `held`) waits on it, the rest queue behind it; then the row is
/// released and every outcome collected, in the orders' order.
async fn behind_a_held_row(
    store: &Arc<dyn Store>,
    db: &mut tokio_postgres::Client,
    held: Uuid,
    orders: Vec<(NewOrder, Option<IdempotentRequest>)>,
) -> Vec<Outcome> {
    let lock = db.transaction().await.unwrap();
    lock.execute("SELECT 1 FROM products WHERE id = $1 FOR UPDATE", &[&held])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for (i, (new, key)) in orders.into_iter().enumerate() {
        let store = store.clone();
        tasks.push(tokio::spawn(
            async move { store.create_order(new, key).await },
        ));
        if i == 0 {
            // The first is the writer's: its transaction is the one waiting on the row.
            wait_for_lock_wait(&lock).await;
        }
    }
    // Every other order is queued well before the row is let go.
    tokio::time::sleep(Duration::from_millis(500)).await;
    lock.commit().await.unwrap();
    let mut outcomes = Vec::new();
    for t in tasks {
        let outcome = tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .expect("every queued order is answered")
            .unwrap();
        outcomes.push(outcome);
    }
    outcomes
}

/// Until a backend waits on a row lock (the writer's first transaction).
async fn wait_for_lock_wait(c: &tokio_postgres::Transaction<'_>) {
    for _ in 0..500 {
        let waiting: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE wait_event_type = 'Lock' AND datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the first order never waited on the held row");
}

fn created(outcome: &Outcome) -> &bulkhead::domain::order::Order {
    match outcome {
        Ok(Placed::Created { order, .. }) => order,
        other => panic!("expected a new order, got {other:?}"),
    }
}

fn refused(outcome: Outcome) -> Conflict {
    match outcome {
        Err(StoreError::Conflict(c)) => c,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// Transactions that wrote the orders `ids`: their distinct `created_at`.
async fn transactions(db: &tokio_postgres::Client, ids: &[Uuid]) -> i64 {
    db.query_one(
        "SELECT count(DISTINCT created_at) FROM orders WHERE id = ANY($1)",
        &[&ids],
    )
    .await
    .unwrap()
    .get(0)
}

#[actix_web::test]
async fn orders_placed_together_keep_the_outcomes_they_would_have_alone() {
    let (store, _db, mut db) = store().await;
    let (alice, bob) = (user(&store).await, user(&store).await);
    let held = product(&store, "B-HELD", 100).await;
    let scarce = product(&store, "B-SCARCE", 3).await;
    let plenty = product(&store, "B-PLENTY", 100).await;
    let dollars = store
        .create_product(NewProduct {
            sku: Sku::parse("B-USD").unwrap(),
            name: ProductName::parse("Thing").unwrap(),
            description: Description::default(),
            price_cents: PriceCents::parse(100).unwrap(),
            currency: Currency::parse("USD").unwrap(),
            stock: Stock::parse(5).unwrap(),
        })
        .await
        .unwrap()
        .id;
    // Keys used earlier, replayed and mismatched from inside the batch.
    let earlier = store
        .create_order(order(alice, &[(plenty, 1)]), key("earlier", 1))
        .await;
    let earlier = created(&earlier).clone();
    let older = store
        .create_order(order(alice, &[(plenty, 1)]), key("older", 1))
        .await;
    created(&older);

    let mut orders = vec![(order(alice, &[(held, 1)]), key("first", 1))];
    // Five orders of one for a stock of three: the first three in the batch get it.
    for i in 0..5 {
        orders.push((order(bob, &[(scarce, 1)]), key(&format!("scarce-{i}"), 1)));
    }
    orders.extend([
        // One key twice: the second is in use, as for two requests at once.
        (order(alice, &[(plenty, 2)]), key("twice", 1)),
        (order(alice, &[(plenty, 2)]), key("twice", 1)),
        // The same key name for another user is another key.
        (order(bob, &[(plenty, 2)]), key("twice", 1)),
        (order(alice, &[(plenty, 1)]), key("earlier", 1)),
        (order(alice, &[(plenty, 1)]), key("older", 2)),
        (order(alice, &[(Uuid::now_v7(), 1)]), key("unknown", 1)),
        (order(alice, &[(plenty, 1), (dollars, 1)]), key("mixed", 1)),
        // Two products, one of them scarce and gone by now: nothing of it is taken.
        (order(bob, &[(plenty, 1), (scarce, 1)]), key("short", 1)),
        (order(bob, &[(plenty, 3)]), None),
    ]);
    let mut outcomes = behind_a_held_row(&store, &mut db, held, orders)
        .await
        .into_iter();
    let mut placed = vec![created(&outcomes.next().unwrap()).id];
    for _ in 0..3 {
        placed.push(created(&outcomes.next().unwrap()).id);
    }
    for _ in 0..2 {
        let c = refused(outcomes.next().unwrap());
        assert_eq!(c, Conflict::InsufficientStock(vec![scarce]));
    }
    placed.push(created(&outcomes.next().unwrap()).id);
    assert_eq!(
        refused(outcomes.next().unwrap()),
        Conflict::IdempotencyKeyInUse
    );
    placed.push(created(&outcomes.next().unwrap()).id);
    assert_eq!(
        outcomes.next().unwrap().unwrap(),
        Placed::Replay {
            status: 201,
            body: earlier.to_json()
        }
    );
    assert_eq!(
        refused(outcomes.next().unwrap()),
        Conflict::IdempotencyKeyMismatch
    );
    assert!(matches!(
        refused(outcomes.next().unwrap()),
        Conflict::UnknownReferences(_)
    ));
    assert_eq!(refused(outcomes.next().unwrap()), Conflict::MixedCurrency);
    assert_eq!(
        refused(outcomes.next().unwrap()),
        Conflict::InsufficientStock(vec![scarce])
    );
    placed.push(created(&outcomes.next().unwrap()).id);
    assert!(outcomes.next().is_none());

    // Stock: held 1, scarce 3, plenty 2 + 2 + 3 (+ 2 earlier), dollars untouched.
    for (id, left) in [(held, 99), (scarce, 0), (plenty, 91), (dollars, 5)] {
        assert_eq!(store.get_product(id).await.unwrap().unwrap().stock, left);
    }
    // Every order placed reads back as it was answered.
    for id in &placed {
        let order = store.get_order(*id).await.unwrap().expect("placed");
        assert_eq!(order.id, *id);
    }
    // The held order alone, then the rest in one transaction.
    assert_eq!(transactions(&db, &placed[..1]).await, 1);
    assert_eq!(
        transactions(&db, &placed[1..]).await,
        1,
        "the orders queued behind the held row went out together"
    );
    // The new keys replay what they placed; the refused ones are free.
    let replay = store
        .create_order(order(bob, &[(plenty, 2)]), key("twice", 1))
        .await
        .unwrap();
    assert!(matches!(replay, Placed::Replay { status: 201, .. }));
    let again = store
        .create_order(order(alice, &[(plenty, 1)]), key("unknown", 1))
        .await;
    created(&again);
}

/// A batch the data refuses (one order's user was deleted under the service: its foreign
/// key fails the batch's statement) is placed order by order: only that order fails.
#[actix_web::test]
async fn one_refused_write_fails_only_its_own_order() {
    let (store, _db, mut db) = store().await;
    let (alice, gone) = (user(&store).await, user(&store).await);
    let held = product(&store, "R-HELD", 10).await;
    let plenty = product(&store, "R-PLENTY", 10).await;
    db.execute("DELETE FROM users WHERE id = $1", &[&gone])
        .await
        .unwrap();
    let orders = vec![
        (order(alice, &[(held, 1)]), key("first", 1)),
        (order(alice, &[(plenty, 1)]), key("a", 1)),
        (order(gone, &[(plenty, 1)]), key("b", 1)),
        (order(alice, &[(plenty, 1)]), key("c", 1)),
    ];
    let mut outcomes = behind_a_held_row(&store, &mut db, held, orders)
        .await
        .into_iter();
    created(&outcomes.next().unwrap());
    created(&outcomes.next().unwrap());
    assert_eq!(refused(outcomes.next().unwrap()), Conflict::UserGone);
    created(&outcomes.next().unwrap());
    assert_eq!(store.get_product(plenty).await.unwrap().unwrap().stock, 8);
    let keys: i64 = db
        .query_one("SELECT count(*) FROM idempotency_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(keys, 3, "the refused order's key was not stored");
}

/// A batch writes one `order.placed` event per order it placed, in the batch's order
/// (their `seq`s), and none for the orders it refused (the user's own event is left
/// out).
#[actix_web::test]
async fn a_batch_writes_one_event_per_order_placed_in_its_order() {
    let events = EventsConfig {
        // Events on; no relay runs here, so the rows stay in the outbox.
        nats_url: Some(Secret::new("nats://127.0.0.1:1")),
        ..EventsConfig::default()
    };
    let (store, _db, mut db) = store_with_events(&events).await;
    let alice = user(&store).await;
    let held = product(&store, "E-HELD", 10).await;
    let scarce = product(&store, "E-SCARCE", 2).await;
    let orders = (0..4)
        .map(|i| (order(alice, &[(scarce, 1)]), key(&format!("e-{i}"), 1)))
        .collect();
    let mut all = vec![(order(alice, &[(held, 1)]), key("first", 1))];
    all.extend::<Vec<_>>(orders);
    let outcomes = behind_a_held_row(&store, &mut db, held, all).await;
    let placed: Vec<Uuid> = outcomes
        .iter()
        .filter_map(|o| match o {
            Ok(Placed::Created { order, .. }) => Some(order.id),
            _ => None,
        })
        .collect();
    assert_eq!(placed.len(), 3, "the held order and two of the scarce four");
    let rows = db
        .query(
            "SELECT kind, (payload::json ->> 'subject') FROM outbox
             WHERE kind LIKE 'order.%' ORDER BY seq",
            &[],
        )
        .await
        .unwrap();
    let subjects: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
    let want: Vec<String> = placed.iter().map(Uuid::to_string).collect();
    assert_eq!(
        subjects, want,
        "one event an order placed, in the batch's order"
    );
    assert!(rows.iter().all(|r| r.get::<_, &str>(0) == "order.placed"));
}
