//! `/api/v1/orders`: placing, reading, listing, cancelling; rules and errors.

use crate::both_stores;
use crate::helpers::shop::{create_product, fields, items, new_key, place, product_body, stock};
use crate::helpers::{problem, TestApp};
use reqwest::{Method, Response};
use serde_json::{json, Value};
use uuid::Uuid;

async fn authed_get(app: &TestApp, path: &str, token: &str) -> Response {
    app.authed(Method::GET, path, token).send().await.unwrap()
}

async fn place_read_list(app: &TestApp) {
    let admin = app.admin().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let lamp = create_product(
        app,
        &admin.token,
        &product_body("LAMP", "Lamp", 1999, "EUR", 10),
    )
    .await;
    let bulb = create_product(
        app,
        &admin.token,
        &product_body("BULB", "Bulb", 250, "EUR", 100),
    )
    .await;

    let res = place(
        app,
        &alice.token,
        Some(&new_key()),
        &items(&[(&lamp, 2), (&bulb, 4)]),
    )
    .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let tag = res.headers()["etag"].to_str().unwrap().to_string();
    assert!(res.headers().get("idempotent-replayed").is_none());
    let order: Value = res.json().await.unwrap();
    let id = order["id"].as_str().unwrap();
    assert_eq!(location, format!("/api/v1/orders/{id}"));
    assert_eq!(order["user_id"], alice.id.to_string());
    assert_eq!(order["status"], "pending");
    assert_eq!(order["currency"], "EUR");
    assert_eq!(order["total_cents"], 2 * 1999 + 4 * 250);
    assert_eq!(
        order["items"],
        json!([
            {"product_id": lamp["id"], "sku": "LAMP", "name": "Lamp", "quantity": 2, "unit_price_cents": 1999},
            {"product_id": bulb["id"], "sku": "BULB", "name": "Bulb", "quantity": 4, "unit_price_cents": 250},
        ])
    );
    assert_eq!(stock(app, &lamp).await, 8);
    assert_eq!(stock(app, &bulb).await, 96);

    // Owner and admin see it; anyone else gets 404, as for a missing order.
    let res = authed_get(app, &location, &alice.token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"].to_str().unwrap(), tag);
    assert_eq!(res.json::<Value>().await.unwrap(), order);
    assert_eq!(authed_get(app, &location, &admin.token).await.status(), 200);
    problem(
        authed_get(app, &location, &bob.token).await,
        404,
        "not_found",
    )
    .await;
    problem(app.get(&location).await, 401, "unauthenticated").await;
    let missing = format!("/api/v1/orders/{}", Uuid::now_v7());
    problem(
        authed_get(app, &missing, &alice.token).await,
        404,
        "not_found",
    )
    .await;
    let res = app
        .authed(Method::GET, &location, &alice.token)
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);

    // Lists: own orders, newest first; admins see everyone's and may filter.
    let second = place(app, &alice.token, Some(&new_key()), &items(&[(&bulb, 1)])).await;
    let second: Value = second.json().await.unwrap();
    let bobs = place(app, &bob.token, Some(&new_key()), &items(&[(&bulb, 1)])).await;
    let bobs: Value = bobs.json().await.unwrap();
    let ids = |v: Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect()
    };
    let mine: Value = authed_get(app, "/api/v1/orders", &alice.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["next_cursor"], Value::Null);
    assert_eq!(ids(mine), [second["id"].as_str().unwrap(), id]);
    let all: Value = authed_get(app, "/api/v1/orders", &admin.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(all).len(), 3);
    let path = format!("/api/v1/orders?user_id={}", bob.id);
    let only_bob: Value = authed_get(app, &path, &admin.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(only_bob), [bobs["id"].as_str().unwrap()]);
    problem(authed_get(app, &path, &alice.token).await, 403, "forbidden").await;
    let own = format!("/api/v1/orders?user_id={}", alice.id);
    assert_eq!(authed_get(app, &own, &alice.token).await.status(), 200);

    // Pages of one, then the status filter.
    let first: Value = authed_get(app, "/api/v1/orders?limit=1", &alice.token)
        .await
        .json()
        .await
        .unwrap();
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let next: Value = authed_get(
        app,
        &format!("/api/v1/orders?limit=1&cursor={cursor}"),
        &alice.token,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(ids(next.clone()), [id]);
    assert_eq!(next["next_cursor"], Value::Null);
    let cancel = format!("/api/v1/orders/{id}/cancel");
    assert_eq!(
        app.authed(Method::POST, &cancel, &alice.token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let cancelled: Value = authed_get(app, "/api/v1/orders?status=cancelled", &alice.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(cancelled), [id]);
    let pending: Value = authed_get(app, "/api/v1/orders?status=pending", &admin.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(pending).len(), 2);
    for (q, param) in [
        ("status=shipped", "status"),
        ("user_id=nope", "user_id"),
        ("limit=0", "limit"),
        ("cursor=xyz", "cursor"),
        ("sort=name", "sort"),
    ] {
        let res = authed_get(app, &format!("/api/v1/orders?{q}"), &alice.token).await;
        let b = problem(res, 400, "invalid_parameter").await;
        assert_eq!(b["errors"][0]["field"], param, "{q}");
    }
    let res = app.request(Method::DELETE, &location).send().await.unwrap();
    assert_eq!(res.headers()["allow"], "GET, HEAD");
    problem(res, 405, "method_not_allowed").await;
    let res = app.request(Method::GET, &cancel).send().await.unwrap();
    assert_eq!(res.headers()["allow"], "POST");
    problem(res, 405, "method_not_allowed").await;
}
both_stores!(orders_place_read_list, place_read_list);

async fn cancel_restores_stock(app: &TestApp) {
    let admin = app.admin().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let lamp = create_product(app, &admin.token, &product_body("L", "Lamp", 100, "EUR", 5)).await;
    let res = place(app, &alice.token, Some(&new_key()), &items(&[(&lamp, 3)])).await;
    let order: Value = res.json().await.unwrap();
    assert_eq!(stock(app, &lamp).await, 2);
    let cancel = format!("/api/v1/orders/{}/cancel", order["id"].as_str().unwrap());

    problem(
        app.authed(Method::POST, &cancel, &bob.token)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    let res = app
        .authed(Method::POST, &cancel, &alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"v2\"");
    let cancelled: Value = res.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["items"], order["items"]);
    assert_eq!(stock(app, &lamp).await, 5);
    let res = app
        .authed(Method::POST, &cancel, &alice.token)
        .send()
        .await
        .unwrap();
    problem(res, 409, "invalid_transition").await;
    assert_eq!(stock(app, &lamp).await, 5);
    // An admin may cancel anyone's order.
    let res = place(app, &alice.token, Some(&new_key()), &items(&[(&lamp, 5)])).await;
    let order: Value = res.json().await.unwrap();
    assert_eq!(stock(app, &lamp).await, 0);
    let cancel = format!("/api/v1/orders/{}/cancel", order["id"].as_str().unwrap());
    assert_eq!(
        app.authed(Method::POST, &cancel, &admin.token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(stock(app, &lamp).await, 5);
    let missing = format!("/api/v1/orders/{}/cancel", Uuid::now_v7());
    problem(
        app.authed(Method::POST, &missing, &admin.token)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
}
both_stores!(orders_cancel, cancel_restores_stock);

async fn rules_and_refusals(app: &TestApp) {
    let admin = app.admin().await;
    let alice = app.new_user().await;
    let t = &alice.token;
    let eur = create_product(
        app,
        &admin.token,
        &product_body("E", "Euro thing", 100, "EUR", 3),
    )
    .await;
    let usd = create_product(
        app,
        &admin.token,
        &product_body("U", "Dollar thing", 100, "USD", 3),
    )
    .await;
    let gone = create_product(app, &admin.token, &product_body("G", "Gone", 100, "EUR", 3)).await;
    let gone_path = format!("/api/v1/products/{}", gone["id"].as_str().unwrap());
    let res = app
        .authed(Method::DELETE, &gone_path, &admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    // Who and which headers.
    let res = app.post_json("/api/v1/orders", &items(&[(&eur, 1)])).await;
    problem(res, 401, "unauthenticated").await;
    problem(
        place(app, t, None, &items(&[(&eur, 1)])).await,
        400,
        "idempotency_key_missing",
    )
    .await;
    for bad in ["k".repeat(256), "tab\tkey".to_string()] {
        let res = place(app, t, Some(&bad), &items(&[(&eur, 1)])).await;
        let b = problem(res, 400, "invalid_parameter").await;
        assert_eq!(b["errors"][0]["field"], "Idempotency-Key");
    }
    let res = app
        .authed(Method::POST, "/api/v1/orders", t)
        .header("idempotency-key", "k")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    problem(res, 415, "unsupported_media_type").await;

    // Structure: 400 naming the field.
    for (body, field, code) in [
        (json!({}), "items", "required"),
        (json!({"items": {}}), "items", "invalid_type"),
        (
            json!({"items": [{"product_id": eur["id"], "quantity": "1"}]}),
            "items[0].quantity",
            "invalid_type",
        ),
        (
            json!({"items": [{"product_id": eur["id"]}]}),
            "items[0].quantity",
            "required",
        ),
        (
            json!({"items": [], "coupon": "x"}),
            "coupon",
            "unknown_field",
        ),
    ] {
        let res = place(app, t, Some(&new_key()), &body).await;
        let b = problem(res, 400, "malformed_request").await;
        assert_eq!(
            fields(&b),
            [(field.to_string(), code.to_string())],
            "{body}"
        );
    }
    // Rules: 422 listing every violation.
    let many: Vec<Value> = (0..101)
        .map(|_| json!({"product_id": Uuid::now_v7(), "quantity": 1}))
        .collect();
    for (body, expected) in [
        (json!({"items": []}), vec!["items"]),
        (json!({"items": many}), vec!["items"]),
        (
            items(&[(&eur, 0), (&usd, 1001)]),
            vec!["items[0].quantity", "items[1].quantity"],
        ),
        (items(&[(&eur, 1), (&eur, 2)]), vec!["items[1].product_id"]),
        (
            json!({"items": [{"product_id": "nope", "quantity": 1}]}),
            vec!["items[0].product_id"],
        ),
        (
            json!({"items": [{"product_id": Uuid::now_v7(), "quantity": 1}]}),
            vec!["items"],
        ),
        (items(&[(&gone, 1)]), vec!["items"]),
        (items(&[(&eur, 1), (&usd, 1)]), vec!["items"]),
    ] {
        let res = place(app, t, Some(&new_key()), &body).await;
        let b = problem(res, 422, "validation_failed").await;
        let got: Vec<String> = fields(&b).into_iter().map(|(f, _)| f).collect();
        assert_eq!(got, expected, "{body}");
    }
    let res = place(app, t, Some(&new_key()), &items(&[(&eur, 1), (&usd, 1)])).await;
    let b = problem(res, 422, "validation_failed").await;
    assert_eq!(b["errors"][0]["code"], "mixed_currency");

    // Not enough stock: 409, nothing taken from any line.
    let other = create_product(
        app,
        &admin.token,
        &product_body("E2", "More", 100, "EUR", 10),
    )
    .await;
    let res = place(app, t, Some(&new_key()), &items(&[(&other, 2), (&eur, 4)])).await;
    let b = problem(res, 409, "insufficient_stock").await;
    assert_eq!(b["errors"].as_array().unwrap().len(), 1);
    assert_eq!(stock(app, &eur).await, 3);
    assert_eq!(stock(app, &other).await, 10);
    let res = place(app, t, Some(&new_key()), &items(&[(&eur, 3)])).await;
    assert_eq!(res.status(), 201);
    assert_eq!(stock(app, &eur).await, 0);
    let none: Value = authed_get(app, "/api/v1/orders", t)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        none["data"].as_array().unwrap().len(),
        1,
        "refused orders leave nothing"
    );
}
both_stores!(orders_rules, rules_and_refusals);

/// A user row removed under the service (by hand, a restore; the API deletes softly)
/// while the user is still cached: the order's foreign key to `users` fails, and the
/// caller gets 401 (its account is gone), never a 500.
#[actix_web::test]
async fn an_order_by_a_user_whose_row_vanished_is_401_not_500() {
    use crate::helpers::{spawn_app, StoreKind};
    let app = spawn_app(StoreKind::Postgres).await;
    let admin = app.admin().await;
    let lamp = create_product(
        &app,
        &admin.token,
        &product_body("GONE", "Lamp", 100, "EUR", 5),
    )
    .await;
    let user = app.new_user().await;
    // Cached now: authentication loads the user into the per-user cache.
    assert_eq!(
        authed_get(&app, "/api/v1/users/me", &user.token)
            .await
            .status(),
        200
    );
    let (client, conn) =
        tokio_postgres::connect(&app.database_url().unwrap(), tokio_postgres::NoTls)
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let id = user.id;
    client
        .execute("DELETE FROM refresh_tokens WHERE user_id = $1", &[&id])
        .await
        .unwrap();
    assert_eq!(
        client
            .execute("DELETE FROM users WHERE id = $1", &[&id])
            .await
            .unwrap(),
        1
    );
    drop(client);
    let _ = conn.await;

    let res = place(&app, &user.token, Some(&new_key()), &items(&[(&lamp, 1)])).await;
    problem(res, 401, "unauthenticated").await;
    assert_eq!(stock(&app, &lamp).await, 5, "nothing was sold");
}
