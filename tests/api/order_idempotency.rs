//! Idempotent order creation and stock under concurrency.

use std::collections::HashSet;

use crate::both_stores;
use crate::helpers::shop::{create_product, product_body};
use crate::helpers::shop::{items, new_key, place, stock};
use crate::helpers::{problem, TestApp, TestUser};
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::Value;

async fn replay_and_mismatch(app: &TestApp) {
    let admin = app.admin().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let lamp = create_product(
        app,
        &admin.token,
        &product_body("L", "Lamp", 100, "EUR", 10),
    )
    .await;
    let key = new_key();
    let body = items(&[(&lamp, 2)]);

    let first = place(app, &alice.token, Some(&key), &body).await;
    assert_eq!(first.status(), 201);
    let location = first.headers()["location"].clone();
    let first = first.bytes().await.unwrap();
    // The same request again: the first response, byte for byte, marked as a replay.
    // Spacing and member order do not make it a different request.
    let res = app
        .authed(Method::POST, "/api/v1/orders", &alice.token)
        .header("idempotency-key", &key)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{ "items": [ {{ "quantity": 2, "product_id": "{}" }} ] }}"#,
            lamp["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["idempotent-replayed"], "true");
    assert_eq!(res.headers()["location"], location);
    assert_eq!(res.bytes().await.unwrap(), first);
    assert_eq!(stock(app, &lamp).await, 8, "stock taken once");

    // The same key with another body.
    let res = place(app, &alice.token, Some(&key), &items(&[(&lamp, 3)])).await;
    problem(res, 422, "idempotency_key_mismatch").await;
    // Keys are per user: Bob's use of the same key is his own.
    let res = place(app, &bob.token, Some(&key), &body).await;
    assert_eq!(res.status(), 201);
    assert!(res.headers().get("idempotent-replayed").is_none());
    assert_eq!(stock(app, &lamp).await, 6);
    // Even after a cancel, the replay is the first response.
    let order: Value = serde_json::from_slice(&first).unwrap();
    let cancel = format!("/api/v1/orders/{}/cancel", order["id"].as_str().unwrap());
    let res = app
        .authed(Method::POST, &cancel, &alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = place(app, &alice.token, Some(&key), &body).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.bytes().await.unwrap(), first);

    // A refused first attempt binds nothing: the same key works once stock is back.
    let scarce = create_product(
        app,
        &admin.token,
        &product_body("S", "Scarce", 100, "EUR", 1),
    )
    .await;
    let key = new_key();
    let res = place(app, &alice.token, Some(&key), &items(&[(&scarce, 2)])).await;
    problem(res, 409, "insufficient_stock").await;
    let path = format!("/api/v1/products/{}", scarce["id"].as_str().unwrap());
    let res = app
        .authed(Method::PATCH, &path, &admin.token)
        .json(&serde_json::json!({"stock": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = place(app, &alice.token, Some(&key), &items(&[(&scarce, 2)])).await;
    assert_eq!(res.status(), 201);
    assert_eq!(stock(app, &scarce).await, 0);
}
both_stores!(orders_idempotency, replay_and_mismatch);

/// 40 buyers race for 15 units, one unit each: exactly 15 win, the rest are told so,
/// and the stock ends at exactly 0.
async fn no_oversell(app: &TestApp) {
    const BUYERS: usize = 40;
    const STOCK: i64 = 15;
    let admin = app.admin().await;
    let lamp = create_product(
        app,
        &admin.token,
        &product_body("HOT", "Hot item", 100, "EUR", STOCK),
    )
    .await;
    let mut users = Vec::new();
    for _ in 0..4 {
        users.push(app.new_user().await);
    }
    let body = items(&[(&lamp, 1)]);
    let results = join_all((0..BUYERS).map(|i| {
        let token = users[i % users.len()].token.clone();
        let body = body.clone();
        async move {
            let res = place(app, &token, Some(&new_key()), &body).await;
            let status = res.status().as_u16();
            let v: Value = res.json().await.unwrap();
            (status, v)
        }
    }))
    .await;
    let won = results.iter().filter(|(s, _)| *s == 201).count();
    let lost = results
        .iter()
        .filter(|(s, v)| *s == 409 && v["code"] == "insufficient_stock")
        .count();
    assert_eq!(won, STOCK as usize, "{results:?}");
    assert_eq!(lost, BUYERS - STOCK as usize, "{results:?}");
    assert_eq!(stock(app, &lamp).await, 0);
    let sold: i64 = results
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, v)| v["items"][0]["quantity"].as_i64().unwrap())
        .sum();
    assert_eq!(sold, STOCK);
    let all: Value = app
        .authed(Method::GET, "/api/v1/orders?limit=100", &admin.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["data"].as_array().unwrap().len(), STOCK as usize);
}
both_stores!(orders_no_oversell, no_oversell);

/// 20 identical requests with one key at once: one order; every other answer is the
/// replay of its response or 409 `idempotency_key_in_use`.
async fn one_key_at_once(app: &TestApp) {
    let admin = app.admin().await;
    let alice = app.new_user().await;
    let lamp = create_product(
        app,
        &admin.token,
        &product_body("K", "Keyed", 100, "EUR", 50),
    )
    .await;
    let key = new_key();
    let body = items(&[(&lamp, 3)]);
    let results = join_all((0..20).map(|_| async {
        let res = place(app, &alice.token, Some(&key), &body).await;
        let status = res.status().as_u16();
        let replayed = res.headers().get("idempotent-replayed").is_some();
        let bytes = res.bytes().await.unwrap();
        (status, replayed, bytes)
    }))
    .await;
    let created: Vec<_> = results.iter().filter(|r| r.0 == 201).collect();
    let originals = created.iter().filter(|r| !r.1).count();
    assert_eq!(originals, 1, "exactly one request did the work");
    let bodies: HashSet<_> = created.iter().map(|r| r.2.clone()).collect();
    assert_eq!(bodies.len(), 1, "every 201 carries the same body");
    for (status, _, bytes) in results.iter().filter(|r| r.0 != 201) {
        assert_eq!(*status, 409);
        let v: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(v["code"], "idempotency_key_in_use");
    }
    assert_eq!(stock(app, &lamp).await, 47, "stock taken once");
    let mine: Value = app
        .authed(Method::GET, "/api/v1/orders", &alice.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["data"].as_array().unwrap().len(), 1);
    // Afterwards the key replays, at once: no answer leaves the key taken behind it.
    for _ in 0..3 {
        let res = place(app, &alice.token, Some(&key), &body).await;
        let status = res.status();
        let replayed = res.headers().get("idempotent-replayed").cloned();
        assert_eq!(
            replayed.as_ref().map(|v| v.to_str().unwrap()),
            Some("true"),
            "{status}"
        );
    }
}
both_stores!(orders_one_key_concurrently, one_key_at_once);

/// `UPDATE idempotency_keys SET created_at = now() - 25 h` for `user`'s keys, on the
/// app's own database; returns how many rows it aged.
async fn age_keys(db: &tokio_postgres::Client, user: uuid::Uuid) -> u64 {
    db.execute(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours'
         WHERE user_id = $1",
        &[&user],
    )
    .await
    .unwrap()
}

async fn keys_of(db: &tokio_postgres::Client, user: uuid::Uuid) -> i64 {
    db.query_one(
        "SELECT count(*) FROM idempotency_keys WHERE user_id = $1",
        &[&user],
    )
    .await
    .unwrap()
    .get(0)
}

/// A Postgres app, a client of its database, a user and a product (`sku`, 50 in stock).
async fn shop_on_postgres(sku: &str) -> (TestApp, tokio_postgres::Client, TestUser, Value) {
    let app = crate::helpers::spawn_app(crate::helpers::StoreKind::Postgres).await;
    let db = app.db().await;
    let admin = app.admin().await;
    let alice = app.new_user().await;
    let lamp = create_product(&app, &admin.token, &product_body(sku, sku, 100, "EUR", 50)).await;
    (app, db, alice, lamp)
}

/// A key past retention (24 h) is a fresh key: the same key with another body places a
/// new order instead of answering a mismatch. Its row is deleted by the janitor, not by
/// orders: a second instance on the same database purges it in its first pass, at start,
/// and leaves a key within retention alone.
#[actix_web::test]
async fn a_key_past_retention_is_forgotten_then_purged() {
    let (app, db, alice, lamp) = shop_on_postgres("R").await;
    let url = app.database_url().unwrap();
    let key = new_key();
    let res = place(&app, &alice.token, Some(&key), &items(&[(&lamp, 1)])).await;
    assert_eq!(res.status(), 201);
    assert_eq!(age_keys(&db, alice.id).await, 1);
    // Another body under the aged key: not a mismatch, a new order.
    let res = place(&app, &alice.token, Some(&key), &items(&[(&lamp, 2)])).await;
    assert_eq!(res.status(), 201);
    assert!(res.headers().get("idempotent-replayed").is_none());
    assert_eq!(stock(&app, &lamp).await, 47);
    // Within retention again: the new use replays.
    let res = place(&app, &alice.token, Some(&key), &items(&[(&lamp, 2)])).await;
    assert_eq!(res.headers()["idempotent-replayed"], "true");

    // Two keys past retention and one within it; orders leave them where they are.
    let res = place(&app, &alice.token, Some(&new_key()), &items(&[(&lamp, 1)])).await;
    assert_eq!(res.status(), 201);
    assert_eq!(age_keys(&db, alice.id).await, 2);
    let fresh = new_key();
    let res = place(&app, &alice.token, Some(&fresh), &items(&[(&lamp, 1)])).await;
    assert_eq!(res.status(), 201);
    assert_eq!(keys_of(&db, alice.id).await, 3, "an order purges nothing");

    // `Memory` creates no database of its own; the URL makes it Postgres on the first's.
    let second = crate::helpers::spawn_app_with(crate::helpers::StoreKind::Memory, |c| {
        c.database.url = Some(bulkhead::config::DatabaseUrl::new(url.clone()));
    })
    .await;
    let purged = async {
        while keys_of(&db, alice.id).await != 1 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), purged)
        .await
        .expect("the second instance's janitor purges the aged keys at start");
    let res = place(&second, &alice.token, Some(&fresh), &items(&[(&lamp, 1)])).await;
    assert_eq!(
        res.headers()["idempotent-replayed"],
        "true",
        "the fresh key stays"
    );
}

/// A key in use answers 409 at once, even while the request holding it waits on a
/// product row: the second request neither waits for the row nor locks it. A session of
/// the test's own holds the product row; the first order (the key's holder) waits on it.
#[actix_web::test]
async fn a_key_in_use_answers_at_once_while_its_holder_waits_on_a_product() {
    let (app, mut db, alice, lamp) = shop_on_postgres("H").await;
    let id: uuid::Uuid = lamp["id"].as_str().unwrap().parse().unwrap();
    let row_lock = db.transaction().await.unwrap();
    row_lock
        .execute("SELECT 1 FROM products WHERE id = $1 FOR UPDATE", &[&id])
        .await
        .unwrap();
    let key = new_key();
    let body = items(&[(&lamp, 1)]);
    let holder = place(&app, &alice.token, Some(&key), &body);
    let second = async {
        // The holder's transaction has the key once its lock statement ran; until
        // then the second request may get the key itself and wait on the row too.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let res = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            place(&app, &alice.token, Some(&key), &body),
        )
        .await
        .expect("a key in use is answered without waiting on the product row");
        problem(res, 409, "idempotency_key_in_use").await;
        row_lock.commit().await.unwrap();
    };
    let (res, ()) = futures_util::future::join(holder, second).await;
    assert_eq!(
        res.status(),
        201,
        "the holder places its order once the row is free"
    );
    assert_eq!(stock(&app, &lamp).await, 49);
}
