//! Odd input reaching the store: NUL bytes and times Postgres cannot hold. Refused as
//! 4xx before any store, the same on both stores (once: 500 on Postgres, 200 in memory).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::both_stores;
use crate::helpers::{problem, TestApp};

fn cursor(sort: &str, value: Value) -> String {
    URL_SAFE_NO_PAD.encode(json!({"s": sort, "v": value, "i": Uuid::new_v4()}).to_string())
}

async fn nul_bytes_and_out_of_range_dates(app: &TestApp) {
    let admin = app.admin().await;
    let buyer = app.new_user().await;
    let far_past = json!("-10000-01-01T00:00:00Z");
    let far_future = json!("+10000-01-01T00:00:00Z");

    // Query text and cursors: 400 invalid_parameter.
    let mut queries: Vec<(String, &str)> = vec![
        ("/api/v1/products?q=a%00b".into(), ""),
        ("/api/v1/products?q=%00".into(), ""),
        (
            format!(
                "/api/v1/products?sort=name&cursor={}",
                cursor("name", json!("a\u{0}b"))
            ),
            "",
        ),
    ];
    for t in [&far_past, &far_future] {
        queries.push((
            format!(
                "/api/v1/products?cursor={}",
                cursor("-created_at", t.clone())
            ),
            "",
        ));
        queries.push((
            format!("/api/v1/orders?cursor={}", cursor("-created_at", t.clone())),
            "buyer",
        ));
        queries.push((
            format!("/api/v1/users?cursor={}", cursor("-created_at", t.clone())),
            "admin",
        ));
    }
    queries.push((
        format!(
            "/api/v1/users?sort=name&cursor={}",
            cursor("name", json!("\u{0}"))
        ),
        "admin",
    ));
    for (path, who) in &queries {
        let req = match *who {
            "admin" => app.authed(Method::GET, path, &admin.token),
            "buyer" => app.authed(Method::GET, path, &buyer.token),
            _ => app.request(Method::GET, path),
        };
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 400, "{path}");
        problem(res, 400, "invalid_parameter").await;
    }

    // Any text of a body: a 4xx problem, never a 5xx (and never stored).
    let nul = "x\u{0}y";
    let bodies: Vec<(Method, String, Value, Option<&str>)> = vec![
        (
            Method::POST,
            "/api/v1/users".into(),
            json!({"email": "a\u{0}@example.com", "name": "N", "password": "password-1"}),
            None,
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            json!({"email": "nul@example.com", "name": nul, "password": "password-1"}),
            None,
        ),
        (
            Method::POST,
            "/api/v1/auth/token".into(),
            json!({"email": "a\u{0}@example.com", "password": "password-1"}),
            None,
        ),
        (
            Method::POST,
            "/api/v1/auth/refresh".into(),
            json!({"refresh_token": nul}),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{}", buyer.id),
            json!({"name": nul}),
            Some(&buyer.token),
        ),
        (
            Method::POST,
            "/api/v1/products".into(),
            json!({"sku": "S\u{0}", "name": "P", "price_cents": 1, "currency": "EUR", "stock": 1}),
            Some(&admin.token),
        ),
        (
            Method::POST,
            "/api/v1/products".into(),
            json!({"sku": "S-1", "name": nul, "price_cents": 1, "currency": "EUR", "stock": 1}),
            Some(&admin.token),
        ),
        (
            Method::POST,
            "/api/v1/products".into(),
            json!({"sku": "S-1", "name": "P", "description": nul, "price_cents": 1, "currency": "EUR", "stock": 1}),
            Some(&admin.token),
        ),
        (
            Method::POST,
            "/api/v1/products".into(),
            json!({"sku": "S-1", "name": "P", "price_cents": 1, "currency": "E\u{0}R", "stock": 1}),
            Some(&admin.token),
        ),
        (
            Method::POST,
            format!("/api/v1/users/{}/status", buyer.id),
            json!({"status": "active\u{0}"}),
            Some(&admin.token),
        ),
    ];
    for (method, path, body, token) in bodies {
        let mut req = app.request(method.clone(), &path).json(&body);
        if method == Method::PATCH {
            req = req.header("content-type", "application/merge-patch+json");
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        assert!(
            (400..500).contains(&status),
            "{method} {path} {body}: {status}"
        );
        let ct = res.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(ct, "application/problem+json", "{method} {path}");
    }
    // Nothing of it was stored.
    let res = app
        .authed(Method::GET, "/api/v1/products", &admin.token)
        .send()
        .await
        .unwrap();
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 0, "{page}");
}
both_stores!(
    nul_bytes_and_out_of_range_dates_are_refused_before_the_store,
    nul_bytes_and_out_of_range_dates
);
