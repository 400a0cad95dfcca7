//! `/api/v1/products`: structure (400/415), rules (422), 404 and 405.

use crate::both_stores;
use crate::helpers::shop::{create_product, fields, get_product, new_key, place, product_body};
use crate::helpers::{problem, TestApp};
use reqwest::{Method, Response};
use serde_json::json;

async fn post_raw(app: &TestApp, token: &str, ct: &str, body: &str) -> Response {
    app.authed(Method::POST, "/api/v1/products", token)
        .header("content-type", ct)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn structure_and_rules(app: &TestApp) {
    let admin = app.admin().await;
    let t = &admin.token;
    let json_ct = "application/json";
    problem(
        post_raw(app, t, json_ct, "{nope").await,
        400,
        "malformed_request",
    )
    .await;
    problem(
        post_raw(app, t, json_ct, "[1]").await,
        400,
        "malformed_request",
    )
    .await;
    let b = problem(
        post_raw(
            app,
            t,
            json_ct,
            r#"{"sku":"A","name":"A","currency":"EUR","stock":1}"#,
        )
        .await,
        400,
        "malformed_request",
    )
    .await;
    assert_eq!(fields(&b), [("price_cents".into(), "required".into())]);
    // A string where an integer belongs is structure (400), not a rule (422).
    let b = problem(
        post_raw(
            app,
            t,
            json_ct,
            r#"{"sku":"A","name":"A","price_cents":"12","currency":"EUR","stock":1}"#,
        )
        .await,
        400,
        "malformed_request",
    )
    .await;
    assert_eq!(fields(&b), [("price_cents".into(), "invalid_type".into())]);
    let b = problem(
        post_raw(
            app,
            t,
            json_ct,
            r#"{"sku":"A","name":"A","price_cents":1,"currency":"EUR","stock":1,"color":"red"}"#,
        )
        .await,
        400,
        "malformed_request",
    )
    .await;
    assert_eq!(fields(&b), [("color".into(), "unknown_field".into())]);
    problem(
        post_raw(app, t, "text/plain", r#"{"sku":"A"}"#).await,
        415,
        "unsupported_media_type",
    )
    .await;
    // merge-patch+json is for PATCH only.
    problem(
        post_raw(app, t, "application/merge-patch+json", "{}").await,
        415,
        "unsupported_media_type",
    )
    .await;

    // Every broken rule at once.
    let res = app
        .authed(Method::POST, "/api/v1/products", t)
        .json(
            &json!({"sku": "bad sku!", "name": "  ", "description": "x".repeat(2001),
                      "price_cents": -1, "currency": "eur", "stock": -5}),
        )
        .send()
        .await
        .unwrap();
    let b = problem(res, 422, "validation_failed").await;
    let got: Vec<String> = fields(&b).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        got,
        [
            "sku",
            "name",
            "description",
            "price_cents",
            "currency",
            "stock"
        ]
    );
    for (sku, ok) in [
        ("x".repeat(64), true),
        ("x".repeat(65), false),
        ("a_B-9".into(), true),
    ] {
        let res = app
            .authed(Method::POST, "/api/v1/products", t)
            .json(&product_body(&sku, "n", 1, "EUR", 0))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), if ok { 201 } else { 422 }, "{sku}");
    }
    let res = app
        .authed(Method::POST, "/api/v1/products", t)
        .json(&product_body("CTRL", "bell\u{7}", 1, "EUR", 0))
        .send()
        .await
        .unwrap();
    assert_eq!(
        fields(&problem(res, 422, "validation_failed").await)[0].0,
        "name"
    );

    // PUT needs every field but description; PATCH refuses null for required fields.
    let p = create_product(app, t, &product_body("R-1", "R", 1, "EUR", 1)).await;
    let path = format!("/api/v1/products/{}", p["id"].as_str().unwrap());
    let res = app
        .authed(Method::PUT, &path, t)
        .json(&json!({"sku": "R-1", "price_cents": 1, "currency": "EUR", "stock": 1}))
        .send()
        .await
        .unwrap();
    let b = problem(res, 400, "malformed_request").await;
    assert_eq!(fields(&b), [("name".into(), "required".into())]);
    let res = app
        .authed(Method::PATCH, &path, t)
        .json(&json!({"sku": null, "stock": -1}))
        .send()
        .await
        .unwrap();
    let b = problem(res, 422, "validation_failed").await;
    assert_eq!(
        fields(&b),
        [
            ("sku".into(), "required".into()),
            ("stock".into(), "range".into())
        ]
    );
    let res = app
        .authed(Method::PATCH, &path, t)
        .json(&json!({"stock": "3"}))
        .send()
        .await
        .unwrap();
    problem(res, 400, "malformed_request").await;
    let res = app
        .authed(Method::PATCH, &path, t)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    problem(res, 415, "unsupported_media_type").await;
    assert_eq!(get_product(app, p["id"].as_str().unwrap()).await, p);

    // Ids that do not exist, or are not UUIDs, are 404; unrouted methods 405 + Allow.
    let missing = format!("/api/v1/products/{}", uuid::Uuid::now_v7());
    problem(app.get(&missing).await, 404, "not_found").await;
    let res = app
        .authed(Method::PATCH, &missing, t)
        .json(&json!({"stock": 1}))
        .send()
        .await
        .unwrap();
    problem(res, 404, "not_found").await;
    problem(
        app.get("/api/v1/products/not-a-uuid").await,
        404,
        "not_found",
    )
    .await;
    let res = app
        .request(Method::DELETE, "/api/v1/products")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "GET, HEAD, POST");
    problem(res, 405, "method_not_allowed").await;
    let res = app.request(Method::POST, &path).send().await.unwrap();
    assert_eq!(res.headers()["allow"], "GET, HEAD, PUT, PATCH, DELETE");
    problem(res, 405, "method_not_allowed").await;
}
both_stores!(products_structure_and_rules, structure_and_rules);

/// JSON has one number type: `250.0` is the integer 250 where an integer is asked (the
/// OpenAPI document says `integer`, and generators write it either way); `2.5` is not.
async fn integral_numbers_are_integers(app: &TestApp) {
    let admin = app.admin().await;
    let t = &admin.token;
    let body = r#"{"sku":"INT-1","name":"Lamp","currency":"EUR","price_cents":250.0,"stock":3e0}"#;
    let res = post_raw(app, t, "application/json", body).await;
    assert_eq!(res.status(), 201);
    let product: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        (product["price_cents"].as_i64(), product["stock"].as_i64()),
        (Some(250), Some(3))
    );
    let res = app
        .authed(
            Method::PATCH,
            &format!("/api/v1/products/{}", product["id"].as_str().unwrap()),
            t,
        )
        .json(&json!({"stock": 7.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let order = json!({"items": [{"product_id": product["id"], "quantity": 2.0}]});
    let res = place(app, t, Some(&new_key()), &order).await;
    assert_eq!(res.status(), 201);
    let body = r#"{"sku":"INT-2","name":"Lamp","currency":"EUR","price_cents":2.5,"stock":1}"#;
    problem(
        post_raw(app, t, "application/json", body).await,
        400,
        "malformed_request",
    )
    .await;
}
both_stores!(integral_numbers, integral_numbers_are_integers);
