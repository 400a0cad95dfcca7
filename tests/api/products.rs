//! `/api/v1/products`: CRUD, rules, conditional requests, listing.

use crate::both_stores;
use crate::helpers::shop::{create_product, get_product, product_body};
use crate::helpers::{problem, TestApp};
use reqwest::{Method, Response};
use serde_json::{json, Value};

fn etag(res: &Response) -> String {
    res.headers()["etag"].to_str().unwrap().to_string()
}

async fn crud(app: &TestApp) {
    let admin = app.admin().await;
    let res = app
        .authed(Method::POST, "/api/v1/products", &admin.token)
        .json(
            &json!({"sku": "LAMP-1", "name": "  Desk lamp ", "description": "Warm\nlight",
                      "price_cents": 1999, "currency": "EUR", "stock": 5}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let tag = etag(&res);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let created: Value = res.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/api/v1/products/{id}"));
    assert_eq!(created["name"], "Desk lamp");
    assert_eq!(created["description"], "Warm\nlight");
    assert_eq!(created["price_cents"], 1999);
    assert_eq!(created["currency"], "EUR");
    assert_eq!(created["stock"], 5);
    assert_eq!(created["created_at"], created["updated_at"]);
    assert!(created.get("version").is_none());

    // Anonymous read, with its ETag; If-None-Match gives 304 without a body.
    let res = app.get(&location).await;
    assert_eq!(res.status(), 200);
    assert_eq!(etag(&res), tag);
    assert_eq!(res.json::<Value>().await.unwrap(), created);
    let res = app
        .request(Method::GET, &location)
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    assert_eq!(etag(&res), tag);
    assert!(res.bytes().await.unwrap().is_empty());

    // PUT replaces everything; a left-out description becomes empty.
    let res = app
        .authed(Method::PUT, &location, &admin.token)
        .header("if-match", &tag)
        .json(&product_body("LAMP-2", "Floor lamp", 4999, "USD", 2))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let tag2 = etag(&res);
    assert_ne!(tag2, tag);
    let put: Value = res.json().await.unwrap();
    assert_eq!(put["sku"], "LAMP-2");
    assert_eq!(put["description"], "");
    assert_eq!(put["created_at"], created["created_at"]);
    assert_ne!(put["updated_at"], created["updated_at"]);
    // The old ETag no longer names the resource.
    let res = app
        .request(Method::GET, &location)
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // PATCH (merge patch) changes only what it names.
    let res = app
        .authed(Method::PATCH, &location, &admin.token)
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"price_cents": 0, "description": "on sale"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let patched: Value = res.json().await.unwrap();
    assert_eq!(patched["price_cents"], 0);
    assert_eq!(patched["description"], "on sale");
    assert_eq!(patched["sku"], "LAMP-2");
    assert_eq!(patched["stock"], 2);
    // `null` removes the description (back to empty).
    let res = app
        .authed(Method::PATCH, &location, &admin.token)
        .json(&json!({"description": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["description"], "");
    assert_eq!(get_product(app, &id).await["price_cents"], 0);

    // DELETE is soft: 204, then 404, and the SKU is free again.
    let res = app
        .authed(Method::DELETE, &location, &admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    problem(app.get(&location).await, 404, "not_found").await;
    let res = app
        .authed(Method::DELETE, &location, &admin.token)
        .send()
        .await
        .unwrap();
    problem(res, 404, "not_found").await;
    let again = create_product(
        app,
        &admin.token,
        &product_body("LAMP-2", "New", 1, "EUR", 1),
    )
    .await;
    assert_ne!(again["id"], created["id"]);
}
both_stores!(products_crud, crud);

async fn who_may_write(app: &TestApp) {
    let admin = app.admin().await;
    let user = app.new_user().await;
    let p = create_product(app, &admin.token, &product_body("A-1", "A", 100, "EUR", 1)).await;
    let path = format!("/api/v1/products/{}", p["id"].as_str().unwrap());
    let body = product_body("A-2", "B", 100, "EUR", 1);

    let res = app.post_json("/api/v1/products", &body).await;
    let problem_body = problem(res, 401, "unauthenticated").await;
    assert!(problem_body["detail"].is_string());
    for method in [Method::PUT, Method::PATCH, Method::DELETE] {
        let res = app
            .request(method.clone(), &path)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(res.headers().contains_key("www-authenticate"));
        problem(res, 401, "unauthenticated").await;
        let res = app
            .authed(method, &path, &user.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        problem(res, 403, "forbidden").await;
    }
    // A non-admin is refused before the body is looked at.
    let res = app
        .authed(Method::POST, "/api/v1/products", &user.token)
        .json(&json!({"nonsense": true}))
        .send()
        .await
        .unwrap();
    problem(res, 403, "forbidden").await;
    // Reads are open to everyone.
    assert_eq!(app.get(&path).await.status(), 200);
    assert_eq!(app.get("/api/v1/products").await.status(), 200);
}
both_stores!(products_auth, who_may_write);

async fn conflicts_and_preconditions(app: &TestApp) {
    let admin = app.admin().await;
    let t = &admin.token;
    let a = create_product(app, t, &product_body("SKU-A", "A", 1, "EUR", 1)).await;
    create_product(app, t, &product_body("SKU-B", "B", 1, "EUR", 1)).await;
    let res = app
        .authed(Method::POST, "/api/v1/products", t)
        .json(&product_body("SKU-A", "Other", 1, "EUR", 1))
        .send()
        .await
        .unwrap();
    problem(res, 409, "duplicate_sku").await;
    let path = format!("/api/v1/products/{}", a["id"].as_str().unwrap());
    let res = app
        .authed(Method::PATCH, &path, t)
        .json(&json!({"sku": "SKU-B"}))
        .send()
        .await
        .unwrap();
    problem(res, 409, "duplicate_sku").await;
    // Keeping its own SKU is no conflict.
    let res = app
        .authed(Method::PATCH, &path, t)
        .json(&json!({"sku": "SKU-A"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let current = etag(&res);

    for (method, body) in [
        (Method::PUT, product_body("SKU-A", "A2", 2, "EUR", 2)),
        (Method::PATCH, json!({"stock": 9})),
        (Method::DELETE, json!({})),
    ] {
        let res = app
            .authed(method.clone(), &path, t)
            .header("if-match", "\"v1\"")
            .json(&body)
            .send()
            .await
            .unwrap();
        problem(res, 412, "precondition_failed").await;
        // A weak tag never matches If-Match.
        let res = app
            .authed(method, &path, t)
            .header("if-match", format!("W/{current}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        problem(res, 412, "precondition_failed").await;
    }
    assert_eq!(
        get_product(app, a["id"].as_str().unwrap()).await["stock"],
        1
    );
    let res = app
        .authed(Method::PATCH, &path, t)
        .header("if-match", format!("\"v0\", {current}"))
        .json(&json!({"stock": 9}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let newer = etag(&res);
    let res = app
        .authed(Method::DELETE, &path, t)
        .header("if-match", &newer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}
both_stores!(products_conflicts, conflicts_and_preconditions);
