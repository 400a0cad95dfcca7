//! A database outage in the middle of an order must not strand its idempotency key: the
//! client that retries the same key after recovery gets its order at once, not 409
//! `idempotency_key_in_use` until a claim times out.

use std::time::Duration;

use bulkhead::config::DatabaseUrl;
use reqwest::Method;
use serde_json::{json, Value};

use super::eventually;
use crate::helpers::proxy::{host_port, Proxy};
use crate::helpers::{admin_url, spawn_app_with, StoreKind, TestApp, TestDatabase};

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    actix_web::rt::spawn(conn);
    client
}

fn order(app: &TestApp, token: &str, product: &str, key: &str) -> reqwest::RequestBuilder {
    app.authed(Method::POST, "/api/v1/orders", token)
        .header("idempotency-key", key)
        .json(&json!({"items": [{"product_id": product, "quantity": 2}]}))
}

#[actix_web::test]
async fn database_link_cut_mid_order_leaves_the_key_free() {
    let db = TestDatabase::create().await;
    let proxy = Proxy::start(host_port(&db.url)).await;
    let via_proxy = format!("postgres://postgres@127.0.0.1:{}/{}", proxy.port, db.name);
    let app = spawn_app_with(StoreKind::Memory, |c| {
        c.database.url = Some(DatabaseUrl::new(via_proxy.clone()));
        c.database.pool_wait_timeout_ms = 500;
        c.database.pool_create_timeout_ms = 500;
        c.rate_limits.enabled = false;
    })
    .await;
    let admin = app.admin().await;
    let buyer = app.new_user().await;
    let res = app
        .authed(Method::POST, "/api/v1/products", &admin.token)
        .json(&json!({"sku": "OUT-1", "name": "Lamp", "price_cents": 100, "currency": "EUR", "stock": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let product: Value = res.json().await.unwrap();
    let product = product["id"].as_str().unwrap().to_string();

    // Hold the product's row, so the order stops mid-transaction, after its key is taken.
    let direct = connect(&db.url).await;
    direct.batch_execute("BEGIN").await.unwrap();
    direct
        .execute(
            "SELECT 1 FROM products WHERE id = $1::text::uuid FOR UPDATE",
            &[&product],
        )
        .await
        .unwrap();
    let first = actix_web::rt::spawn(order(&app, &buyer.token, &product, "outage-1").send());
    let observer = connect(&admin_url()).await;
    let waiting = "SELECT count(*) FROM pg_stat_activity
                   WHERE datname = $1 AND application_name = 'bulkhead' AND wait_event_type = 'Lock'";
    assert!(
        eventually(Duration::from_secs(10), async || {
            let n: i64 = observer
                .query_one(waiting, &[&db.name])
                .await
                .unwrap()
                .get(0);
            n == 1
        })
        .await,
        "the order never reached the product lock"
    );

    // The link goes down under it: the order fails, and nothing can be cleaned up now.
    proxy.cut();
    let res = first.await.unwrap().unwrap();
    assert_eq!(res.status(), 503, "{:?}", res.text().await);
    // Postgres notices the dead client only when it next talks to it: end its backends,
    // as an outage does, then bring the link back.
    direct.batch_execute("ROLLBACK").await.unwrap();
    observer
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND application_name = 'bulkhead'",
            &[&db.name],
        )
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || {
            let n: i64 = observer
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'bulkhead'",
                    &[&db.name],
                )
                .await
                .unwrap()
                .get(0);
            n == 0
        })
        .await
    );
    proxy.restore();

    // The retry places the order: never 409 (a 503 while the circuit recovers is fair).
    let mut placed = None;
    assert!(
        eventually(Duration::from_secs(10), async || {
            let res = order(&app, &buyer.token, &product, "outage-1")
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            assert_ne!(status, 409, "the failed attempt stranded its key: {body}");
            if status == 201 {
                placed = Some(body);
            }
            status == 201
        })
        .await,
        "the retry never placed its order"
    );
    let placed = placed.unwrap();
    // And again: the replay, not a second order.
    let res = order(&app, &buyer.token, &product, "outage-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["idempotent-replayed"], "true");
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["id"], placed["id"]);
    let res = app.get(&format!("/api/v1/products/{product}")).await;
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["stock"], 3, "taken exactly once");
}
