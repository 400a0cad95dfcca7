//! The product cache: public product reads and list pages are served from a cache with the
//! same bytes, ETags, 304s and HEAD answers as uncached, and every write through this
//! instance (edit, replace, order, cancellation, new product, deletion) is seen by the
//! next read at once, by id and in list pages.

use crate::helpers::shop::{create_product, items, new_key, place, product_body};
use crate::helpers::{spawn_app_with, StoreKind, TestApp, TestUser};
use bulkhead::config::MAX_PRODUCT_AGE_MS;
use reqwest::{Method, Response};
use serde_json::{json, Value};

/// A list page that holds every product of the test (one database per test).
const LIST: &str = "/api/v1/products?sort=name&limit=100";

fn etag(res: &Response) -> String {
    res.headers()["etag"].to_str().unwrap().to_string()
}

/// `GET path` twice (a miss, then a hit): 200, one ETag, byte-identical bodies.
async fn read_twice(app: &TestApp, path: &str) -> (Option<String>, bytes::Bytes) {
    let first = app.get(path).await;
    assert_eq!(first.status(), 200, "{path}");
    assert_eq!(first.headers()["content-type"], "application/json");
    let tag = first.headers().get("etag").map(|_| etag(&first));
    let body = first.bytes().await.unwrap();
    let second = app.get(path).await;
    assert_eq!(second.status(), 200, "{path}");
    assert_eq!(second.headers().get("etag").map(|_| etag(&second)), tag);
    assert_eq!(
        second.bytes().await.unwrap(),
        body,
        "{path}: the hit's bytes"
    );
    (tag, body)
}

fn names_and_stock(list: &[u8]) -> Vec<(String, i64)> {
    let page: Value = serde_json::from_slice(list).unwrap();
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["stock"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    list.iter().map(|(n, s)| (n.to_string(), *s)).collect()
}

async fn write(
    app: &TestApp,
    admin: &TestUser,
    method: Method,
    path: &str,
    body: Value,
) -> Response {
    app.authed(method, path, &admin.token)
        .header("content-type", "application/merge-patch+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn cache_metric(app: &TestApp, cache: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    let sample = format!("bulkhead_cache_hits_total{{cache=\"{cache}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&sample))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

async fn writes_are_seen_at_once(app: &TestApp) {
    let admin = app.admin().await;
    let buyer = app.new_user().await;
    let lamp = create_product(
        app,
        &admin.token,
        &product_body("LAMP", "Lamp", 1999, "EUR", 10),
    )
    .await;
    let vase = create_product(
        app,
        &admin.token,
        &product_body("VASE", "Vase", 999, "EUR", 4),
    )
    .await;
    let lamp_path = format!("/api/v1/products/{}", lamp["id"].as_str().unwrap());
    let vase_path = format!("/api/v1/products/{}", vase["id"].as_str().unwrap());

    // Cached answers: the bytes the write answered (serialized uncached), one ETag, 304
    // for it, and HEAD with the same headers and no body.
    let (tag, body) = read_twice(app, &lamp_path).await;
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), lamp);
    let tag = tag.expect("a product has an ETag");
    let res = app
        .request(Method::GET, &lamp_path)
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    assert_eq!(etag(&res), tag);
    assert!(res.bytes().await.unwrap().is_empty());
    let res = app.request(Method::HEAD, &lamp_path).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(etag(&res), tag);
    assert_eq!(
        res.headers()["content-length"],
        body.len().to_string().as_str()
    );
    assert!(res.bytes().await.unwrap().is_empty());
    let (list_tag, list) = read_twice(app, LIST).await;
    assert_eq!(list_tag, None, "list pages carry no ETag");
    assert_eq!(names_and_stock(&list), pairs(&[("Lamp", 10), ("Vase", 4)]));

    // An edit: the next read by id serves exactly the bytes the PATCH answered.
    let res = write(
        app,
        &admin,
        Method::PATCH,
        &lamp_path,
        json!({"name": "Desk lamp"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let new_tag = etag(&res);
    let written = res.bytes().await.unwrap();
    let (tag, body) = read_twice(app, &lamp_path).await;
    assert_eq!(tag.as_deref(), Some(new_tag.as_str()));
    assert_eq!(body, written, "cached bytes are the uncached serialization");
    let (_, list) = read_twice(app, LIST).await;
    assert_eq!(
        names_and_stock(&list),
        pairs(&[("Desk lamp", 10), ("Vase", 4)])
    );

    // An order takes stock: seen at once by id and in the list.
    let res = place(app, &buyer.token, Some(&new_key()), &items(&[(&lamp, 3)])).await;
    assert_eq!(res.status(), 201);
    let order: Value = res.json().await.unwrap();
    let (_, body) = read_twice(app, &lamp_path).await;
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["stock"], 7);
    let (_, list) = read_twice(app, LIST).await;
    assert_eq!(
        names_and_stock(&list),
        pairs(&[("Desk lamp", 7), ("Vase", 4)])
    );

    // A cancellation gives it back.
    let res = app
        .authed(
            Method::POST,
            &format!("/api/v1/orders/{}/cancel", order["id"].as_str().unwrap()),
            &buyer.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, body) = read_twice(app, &lamp_path).await;
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["stock"], 10);

    // A new product is in the next list page; a deleted one is gone at once.
    create_product(
        app,
        &admin.token,
        &product_body("BOWL", "Bowl", 500, "EUR", 1),
    )
    .await;
    let (_, list) = read_twice(app, LIST).await;
    assert_eq!(
        names_and_stock(&list),
        pairs(&[("Bowl", 1), ("Desk lamp", 10), ("Vase", 4)])
    );
    read_twice(app, &vase_path).await;
    let res = app
        .authed(Method::DELETE, &vase_path, &admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.get(&vase_path).await.status(), 404);
    let (_, list) = read_twice(app, LIST).await;
    assert_eq!(
        names_and_stock(&list),
        pairs(&[("Bowl", 1), ("Desk lamp", 10)])
    );

    // The answers above came from the caches.
    assert!(cache_metric(app, "products").await >= 1.0);
    assert!(cache_metric(app, "product_lists").await >= 1.0);
}

/// The longest age the configuration allows, so that a read right after another is a hit
/// even on a loaded machine (the metric check at the end needs some hits).
async fn spawn(kind: StoreKind) -> TestApp {
    spawn_app_with(kind, |c| c.cache.products.max_age_ms = MAX_PRODUCT_AGE_MS).await
}

mod writes_are_seen_at_once_by_the_writing_instance {
    use super::*;

    #[actix_web::test]
    async fn postgres() {
        writes_are_seen_at_once(&spawn(StoreKind::Postgres).await).await;
    }

    #[actix_web::test]
    async fn memory() {
        writes_are_seen_at_once(&spawn(StoreKind::Memory).await).await;
    }
}
