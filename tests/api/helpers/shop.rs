//! Products and orders through the API: bodies, creating and reading products, placing
//! orders, and the `errors` of a problem as `(field, code)` pairs.

use reqwest::{Method, Response};
use serde_json::{json, Value};
use uuid::Uuid;

use super::TestApp;

pub fn product_body(sku: &str, name: &str, price: i64, currency: &str, stock: i64) -> Value {
    json!({"sku": sku, "name": name, "price_cents": price, "currency": currency, "stock": stock})
}

/// Create a product as `admin_token`, asserting 201; the product's JSON.
pub async fn create_product(app: &TestApp, admin_token: &str, body: &Value) -> Value {
    let res = app
        .authed(Method::POST, "/api/v1/products", admin_token)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "creating {body}");
    res.json().await.unwrap()
}

pub async fn get_product(app: &TestApp, id: &str) -> Value {
    let res = app.get(&format!("/api/v1/products/{id}")).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

pub fn fields(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap().to_string(),
                        e["code"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `POST /api/v1/orders` with `body` and, if given, an `Idempotency-Key`.
pub async fn place(app: &TestApp, token: &str, key: Option<&str>, body: &Value) -> Response {
    let mut req = app.authed(Method::POST, "/api/v1/orders", token).json(body);
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    req.send().await.unwrap()
}

pub fn items(lines: &[(&Value, i64)]) -> Value {
    json!({"items": lines.iter().map(|(p, q)| json!({"product_id": p["id"], "quantity": q})).collect::<Vec<_>>()})
}

pub fn new_key() -> String {
    Uuid::new_v4().to_string()
}

pub async fn stock(app: &TestApp, product: &Value) -> i64 {
    get_product(app, product["id"].as_str().unwrap()).await["stock"]
        .as_i64()
        .unwrap()
}
