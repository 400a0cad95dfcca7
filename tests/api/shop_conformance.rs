//! Product and order store methods, the same cases against both backends, below HTTP.

use std::sync::Arc;

use bulkhead::config::DatabaseConfig;
use bulkhead::domain::order::{
    IdempotencyKey, IdempotentRequest, NewOrder, Order, OrderLines, OrderQuery, OrderStatus, Placed,
};
use bulkhead::domain::precondition::IfMatch;
use bulkhead::domain::product::{ProductChanges, Stock};
use bulkhead::store::memory::MemoryStore;
use bulkhead::store::{Conflict, Store, StoreError};
use uuid::Uuid;

use crate::helpers::store::{new_product, pg_store, pg_store_with, user};

macro_rules! conformance {
    ($name:ident, $case:path) => {
        mod $name {
            use super::*;

            #[actix_web::test]
            async fn postgres() {
                let (store, _db) = pg_store().await;
                $case(store).await;
            }

            /// Every order in a transaction of its own (no order writers).
            #[actix_web::test]
            async fn postgres_orders_alone() {
                let (store, _db) = pg_store_with(DatabaseConfig {
                    order_batch_max: 1,
                    ..DatabaseConfig::default()
                })
                .await;
                $case(store).await;
            }

            #[actix_web::test]
            async fn memory() {
                $case(Arc::new(MemoryStore::new())).await;
            }
        }
    };
}

fn order(user_id: Uuid, product: Uuid, quantity: i64) -> NewOrder {
    NewOrder {
        user_id,
        lines: OrderLines::parse(&[(product, quantity)]).unwrap(),
    }
}

fn conflict(e: StoreError) -> Conflict {
    match e {
        StoreError::Conflict(c) => c,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

async fn versions_and_soft_delete(store: Arc<dyn Store>) {
    let p = store.create_product(new_product("V-1", 1)).await.unwrap();
    assert_eq!(p.version, 1);
    let stale = IfMatch::Versions(vec![7]);
    let change = || ProductChanges {
        stock: Some(Stock::parse(4).unwrap()),
        ..ProductChanges::default()
    };
    let e = store
        .update_product(p.id, change(), &stale)
        .await
        .unwrap_err();
    assert_eq!(conflict(e), Conflict::VersionMismatch);
    let updated = store
        .update_product(p.id, change(), &IfMatch::Versions(vec![1]))
        .await
        .unwrap();
    assert_eq!((updated.version, updated.stock), (2, 4));
    assert_eq!(updated.sku, "V-1");
    let e = store.delete_product(p.id, &stale).await.unwrap_err();
    assert_eq!(conflict(e), Conflict::VersionMismatch);
    store.delete_product(p.id, &IfMatch::Any).await.unwrap();
    assert!(store.get_product(p.id).await.unwrap().is_none());
    let e = store
        .update_product(p.id, change(), &IfMatch::Absent)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound), "{e:?}");
    // The SKU of a deleted product is free again.
    store.create_product(new_product("V-1", 1)).await.unwrap();
    let e = store
        .create_product(new_product("V-1", 1))
        .await
        .unwrap_err();
    assert_eq!(conflict(e), Conflict::DuplicateSku);
}
conformance!(product_versions_and_soft_delete, versions_and_soft_delete);

async fn idempotency_keys(store: Arc<dyn Store>) {
    let buyer = user(&store).await;
    let p = store.create_product(new_product("I-1", 10)).await.unwrap();
    let req = |hash: u8| IdempotentRequest {
        key: IdempotencyKey::parse("key-1").unwrap(),
        request_hash: vec![hash; 32],
    };
    // A refused order leaves the key free: the same key then places the order.
    let e = store
        .create_order(order(buyer, p.id, 11), Some(req(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Conflict(Conflict::InsufficientStock(_))),
        "{e:?}"
    );
    let Placed::Created { order: created, .. } = store
        .create_order(order(buyer, p.id, 2), Some(req(1)))
        .await
        .unwrap()
    else {
        panic!("a fresh key places its order");
    };
    assert_eq!(store.get_product(p.id).await.unwrap().unwrap().stock, 8);
    let replay = store
        .create_order(order(buyer, p.id, 2), Some(req(1)))
        .await
        .unwrap();
    assert_eq!(
        replay,
        Placed::Replay {
            status: 201,
            body: created.to_json()
        }
    );
    assert_eq!(store.get_product(p.id).await.unwrap().unwrap().stock, 8);
    let e = store
        .create_order(order(buyer, p.id, 2), Some(req(2)))
        .await
        .unwrap_err();
    assert_eq!(conflict(e), Conflict::IdempotencyKeyMismatch);
    assert_eq!(store.get_order(created.id).await.unwrap().unwrap(), created);
}
conformance!(order_idempotency_keys, idempotency_keys);

async fn concurrent_orders_never_oversell(store: Arc<dyn Store>) {
    let buyer = user(&store).await;
    let a = store.create_product(new_product("C-A", 10)).await.unwrap();
    let b = store.create_product(new_product("C-B", 10)).await.unwrap();
    // Two products in both orders of appearance: a lock order that followed the request
    // would deadlock here.
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let store = store.clone();
            let lines = if i % 2 == 0 {
                [(a.id, 1), (b.id, 1)]
            } else {
                [(b.id, 1), (a.id, 1)]
            };
            actix_web::rt::spawn(async move {
                let new = NewOrder {
                    user_id: buyer,
                    lines: OrderLines::parse(&lines).unwrap(),
                };
                store.create_order(new, None).await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict(Conflict::InsufficientStock(_))) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 10);
    for id in [a.id, b.id] {
        assert_eq!(store.get_product(id).await.unwrap().unwrap().stock, 0);
    }
}
conformance!(
    no_oversell_under_concurrency,
    concurrent_orders_never_oversell
);

/// Orders of several items read back whole, items in the order placed, by id and in
/// listings: a whole list, a page and the page after its cursor, a status filter, and
/// another user's (empty). Postgres reads an order and its items in one statement.
async fn orders_read_back_with_items(store: Arc<dyn Store>) {
    let buyer = user(&store).await;
    let other = user(&store).await;
    let mut products = Vec::new();
    for sku in ["R-3", "R-1", "R-2"] {
        products.push(
            store
                .create_product(new_product(sku, 100))
                .await
                .unwrap()
                .id,
        );
    }
    let mut placed = Vec::new();
    for q in 1..=3 {
        let lines =
            OrderLines::parse(&[(products[0], q), (products[1], 2), (products[2], 3)]).unwrap();
        let new = NewOrder {
            user_id: buyer,
            lines,
        };
        let Placed::Created { order, .. } = store.create_order(new, None).await.unwrap() else {
            panic!("a new order")
        };
        assert_eq!(order.items.len(), 3);
        placed.push(order);
    }
    placed[1] = store.cancel_order(placed[1].id).await.unwrap();
    for o in &placed {
        assert_eq!(store.get_order(o.id).await.unwrap().as_ref(), Some(o));
    }
    assert_eq!(store.get_order(Uuid::new_v4()).await.unwrap(), None);

    let page = |user_id, status, before, limit| OrderQuery {
        user_id,
        status,
        before,
        limit,
    };
    let newest_first: Vec<Order> = placed.iter().rev().cloned().collect();
    let all = store.list_orders(page(Some(buyer), None, None, 10)).await;
    assert_eq!(all.unwrap(), newest_first);
    let first = store
        .list_orders(page(Some(buyer), None, None, 2))
        .await
        .unwrap();
    assert_eq!(first, newest_first[..2]);
    let cursor = Some((first[1].created_at, first[1].id));
    let rest = store.list_orders(page(Some(buyer), None, cursor, 2)).await;
    assert_eq!(rest.unwrap(), newest_first[2..]);
    let pending = store
        .list_orders(page(Some(buyer), Some(OrderStatus::Pending), None, 10))
        .await;
    assert_eq!(pending.unwrap(), vec![placed[2].clone(), placed[0].clone()]);
    let theirs = store.list_orders(page(Some(other), None, None, 10)).await;
    assert!(theirs.unwrap().is_empty());
}
conformance!(orders_read_with_items, orders_read_back_with_items);
